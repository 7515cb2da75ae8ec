//! The Redis backend's store (feature `redis`): the model's Redis protocols
//! (`procshare_model::redis`) over a real server.
//!
//! [`RedisStore`] implements the model's `Store`: each protocol step is one
//! `EVALSHA` of the step's Lua text (loaded once per connection with
//! `SCRIPT LOAD`, again after `NOSCRIPT` when the server restarted or its
//! script cache was flushed), and a wait is a pub/sub subscription on a
//! second connection. Every call has a timeout: connecting, each request and
//! each reply ([`RedisStore::open`]'s `timeout`); a wait for a notification
//! is bounded by its caller's deadline and, for waits without one, re-checks
//! the object every [`SAFETY_WAIT`] (a connection cut off without a reset
//! cannot hold a waiter for ever).
//!
//! A step that timed out may or may not have run on the server (its reply was
//! lost): it is reported as [`RedisError::Timeout`] and never retried here,
//! since steps are not idempotent.

use procshare_model::platform::{Mutant, Seeded};
use procshare_model::redis::{BadReply, Call, Resp, ScriptError, Store, Subscription};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub(crate) mod lock;

/// The longest a wait without a deadline sleeps before it looks at its
/// object again (its safety poll; a notification ends it at once).
pub const SAFETY_WAIT: Duration = Duration::from_secs(10);

/// A Redis backend operation failed.
///
/// ```
/// use procshare::RedisError;
/// // A URL that is not one is refused before anything is sent.
/// let e = procshare::internals::RedisStore::open("not a url", std::time::Duration::from_secs(1))
///     .unwrap_err();
/// assert!(matches!(e, RedisError::Url { .. }));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisError {
    /// The URL is not a Redis URL.
    #[error("{url:?} is not a Redis URL: {source}")]
    Url {
        /// The URL given.
        url: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The server could not be reached, or the connection broke.
    #[error("Redis at {url} is unreachable: {source}")]
    Down {
        /// The server.
        url: String,
        /// The connection's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The server did not answer in time. A step that timed out may or may
    /// not have run.
    #[error("Redis at {url} did not answer within {timeout:?}")]
    Timeout {
        /// The server.
        url: String,
        /// The timeout.
        timeout: Duration,
    },
    /// A step found its keys in a state it never leaves them in: a key of
    /// the wrong type (the namespace is used by something else), a value that
    /// is not a number, a key that is missing (the object was never made
    /// there, or the server lost it: a restart without persistence, a flush,
    /// a failover), or a lease without an expiry.
    #[error("Redis step {script}: {source}")]
    Script {
        /// The step.
        script: &'static str,
        /// What it found.
        #[source]
        source: ScriptError,
    },
    /// A reply that the step never gives: it does not decode.
    #[error(transparent)]
    Reply(#[from] BadReply),
    /// The server refused a step for another reason (out of memory, a
    /// read-only replica, a script error).
    #[error("Redis refused step {script}: {message}")]
    Server {
        /// The step.
        script: &'static str,
        /// The server's message.
        message: String,
    },
}

/// One client of a Redis server: a command connection, a subscriber
/// connection for waits (made when first needed), and the loaded scripts.
/// Each thread uses its own (a wait holds the subscriber connection).
pub struct RedisStore {
    client: redis::Client,
    url: String,
    timeout: Duration,
    con: Mutex<Option<redis::Connection>>,
    sub: Mutex<Option<redis::Connection>>,
    shas: Mutex<HashMap<&'static str, String>>,
    epoch: Instant,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.url)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A store for the server at `url` (`redis://host:port/db`), every
    /// request bounded by `timeout`. Connects at once, so a server that is
    /// down is reported here.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), procshare::RedisError> {
    /// let s = procshare::internals::RedisStore::open(
    ///     "redis://127.0.0.1:6379/",
    ///     std::time::Duration::from_secs(2),
    /// )?;
    /// # Ok(()) }
    /// ```
    pub fn open(url: &str, timeout: Duration) -> Result<RedisStore, RedisError> {
        let client = redis::Client::open(url).map_err(|e| RedisError::Url {
            url: url.to_string(),
            source: Box::new(e),
        })?;
        let s = RedisStore {
            client,
            url: url.to_string(),
            timeout,
            con: Mutex::new(None),
            sub: Mutex::new(None),
            shas: Mutex::new(HashMap::new()),
            epoch: Instant::now(),
        };
        let c = s.connect()?;
        *lock(&s.con) = Some(c);
        Ok(s)
    }

    /// The server's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn connect(&self) -> Result<redis::Connection, RedisError> {
        let c = self
            .client
            .get_connection_with_timeout(self.timeout)
            .map_err(|e| self.io(e))?;
        c.set_read_timeout(Some(self.timeout))
            .map_err(|e| self.io(e))?;
        c.set_write_timeout(Some(self.timeout))
            .map_err(|e| self.io(e))?;
        Ok(c)
    }

    fn io(&self, e: redis::RedisError) -> RedisError {
        if e.is_timeout() {
            RedisError::Timeout {
                url: self.url.clone(),
                timeout: self.timeout,
            }
        } else {
            RedisError::Down {
                url: self.url.clone(),
                source: Box::new(e),
            }
        }
    }

    /// Run a raw command on the command connection (tests and tools: the
    /// protocols use [`Store::eval`] only).
    pub fn command(&self, args: &[&[u8]]) -> Result<Resp, RedisError> {
        let mut cmd = redis::cmd(std::str::from_utf8(args[0]).unwrap_or("?"));
        for a in &args[1..] {
            cmd.arg(*a);
        }
        self.on_connection(|c| cmd.query::<redis::Value>(c))
            .and_then(|r| match r {
                Ok(v) => to_resp("command", v),
                Err(e) => Err(self.server_error("command", e)),
            })
    }

    /// Run `f` on the command connection (connecting again if the last one
    /// broke). The inner result is the server's answer; an I/O failure or
    /// timeout drops the connection and is the outer error.
    fn on_connection<T>(
        &self,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<redis::RedisResult<T>, RedisError> {
        let mut g = lock(&self.con);
        if g.is_none() {
            *g = Some(self.connect()?);
            lock(&self.shas).clear();
        }
        let c = g.as_mut().expect("connected above");
        match f(c) {
            Err(e) if e.is_timeout() || e.is_io_error() || e.is_connection_dropped() => {
                *g = None;
                Err(self.io(e))
            }
            r => Ok(r),
        }
    }

    fn sha(&self, call: &Call) -> Result<String, RedisError> {
        if let Some(s) = lock(&self.shas).get(call.script.name) {
            return Ok(s.clone());
        }
        let sha = self
            .on_connection(|c| {
                redis::cmd("SCRIPT")
                    .arg("LOAD")
                    .arg(call.script.lua)
                    .query::<String>(c)
            })?
            .map_err(|e| self.server_error(call.script.name, e))?;
        lock(&self.shas).insert(call.script.name, sha.clone());
        Ok(sha)
    }

    fn server_error(&self, script: &'static str, e: redis::RedisError) -> RedisError {
        let code = e.code().unwrap_or("");
        let detail = e.detail().unwrap_or("");
        let key = detail.split_whitespace().next().unwrap_or("").to_string();
        let script_error = match code {
            "WRONGTYPE" => Some(ScriptError::WrongType(key)),
            "MISSING" => Some(ScriptError::Missing(key)),
            "NOTINT" => Some(ScriptError::NotInteger(key)),
            "CORRUPT" => Some(ScriptError::Corrupt(key)),
            _ if detail.contains("not an integer") => Some(ScriptError::NotInteger(key)),
            _ => None,
        };
        match script_error {
            Some(source) => RedisError::Script { script, source },
            None => RedisError::Server {
                script,
                message: e.to_string(),
            },
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A reply as the model's [`Resp`]; a kind of reply no step gives is a [`BadReply`].
fn to_resp(script: &'static str, v: redis::Value) -> Result<Resp, RedisError> {
    use redis::Value as V;
    Ok(match v {
        V::Nil => Resp::Nil,
        V::Int(i) => Resp::Int(i),
        V::BulkString(b) => Resp::Bulk(b),
        V::SimpleString(s) => Resp::Bulk(s.into_bytes()),
        V::Okay => Resp::Bulk(b"OK".to_vec()),
        V::Array(a) => Resp::Array(
            a.into_iter()
                .map(|v| to_resp(script, v))
                .collect::<Result<_, _>>()?,
        ),
        other => {
            return Err(BadReply {
                script,
                reply: Resp::Bulk(format!("{other:?}").into_bytes()),
            }
            .into())
        }
    })
}

impl Seeded for RedisStore {
    const MUTANT: Mutant = Mutant::NONE;
}

impl Store for RedisStore {
    type Error = RedisError;

    fn eval(&self, call: &Call) -> Result<Resp, RedisError> {
        let name = call.script.name;
        let run = |sha: &str| {
            self.on_connection(|c| {
                redis::cmd("EVALSHA")
                    .arg(sha)
                    .arg(call.keys.len())
                    .arg(&call.keys)
                    .arg(&call.args)
                    .query::<redis::Value>(c)
            })
        };
        let mut r = run(&self.sha(call)?)?;
        if matches!(&r, Err(e) if e.code() == Some("NOSCRIPT")) {
            // The server lost its script cache (a restart, SCRIPT FLUSH): load again.
            lock(&self.shas).remove(name);
            r = run(&self.sha(call)?)?;
        }
        match r {
            Ok(v) => to_resp(name, v),
            Err(e) => Err(self.server_error(name, e)),
        }
    }

    fn subscribed<T>(
        &self,
        channel: &str,
        body: impl FnOnce(&mut dyn Subscription<Error = RedisError>) -> Result<T, RedisError>,
    ) -> Result<T, RedisError> {
        let taken = lock(&self.sub).take();
        let mut con = match taken {
            Some(c) => c,
            None => self.connect()?,
        };
        let (out, healthy) = {
            let mut ps = con.as_pubsub();
            match ps.subscribe(channel) {
                Err(e) => (Err(self.io(e)), false),
                Ok(()) => {
                    let mut sub = RedisSub {
                        ps,
                        store: self,
                        healthy: true,
                    };
                    let out = body(&mut sub);
                    (out, sub.healthy)
                }
            }
            // Dropping the subscription unsubscribes.
        };
        if healthy {
            *lock(&self.sub) = Some(con);
        }
        out
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }
}

/// A subscription on the store's subscriber connection.
struct RedisSub<'a> {
    ps: redis::PubSub<'a>,
    store: &'a RedisStore,
    healthy: bool,
}

impl Subscription for RedisSub<'_> {
    type Error = RedisError;

    fn wait(&mut self, timeout_ms: Option<u64>) -> Result<bool, RedisError> {
        let t = timeout_ms
            .map(|ms| Duration::from_millis(ms.max(1)))
            .map_or(SAFETY_WAIT, |t| t.min(SAFETY_WAIT));
        if let Err(e) = self.ps.set_read_timeout(Some(t)) {
            self.healthy = false;
            return Err(self.store.io(e));
        }
        match self.ps.get_message() {
            Ok(_) => Ok(true),
            Err(e) if e.is_timeout() => Ok(false),
            Err(e) => {
                self.healthy = false;
                Err(self.store.io(e))
            }
        }
    }
}
