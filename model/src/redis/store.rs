//! Redis as the protocols see it: a linearizable store whose scripts run
//! atomically ([`Store::eval`]), plus notifications on channels
//! ([`Store::subscribe`], Redis's pub/sub), and the one blocking loop every
//! waiting operation uses ([`block_until`]).

use super::db::{Db, Resp, ScriptError};
use crate::platform::{mutant, Mutant, Seeded};

/// A script's Rust transcription: keyspace, `KEYS`, `ARGV` to its reply.
pub type ScriptFn = fn(&mut Db, &[String], &[Vec<u8>]) -> Result<Resp, ScriptError>;

/// One protocol step: a script that runs atomically on the server.
///
/// The step is written twice, side by side, in the same words: `lua` is what
/// the real store sends to Redis (`EVALSHA`), `run` is its line-by-line
/// transcription over the model's [`Db`], which the checks run. A
/// differential test (procshare's `redis_differential`) runs both on the same
/// calls and compares their replies.
#[derive(Debug)]
pub struct ScriptDef {
    /// The step's name (in errors and the model's log).
    pub name: &'static str,
    /// The script's text, run by Redis with `KEYS` and `ARGV`.
    pub lua: &'static str,
    /// The same script over the model's keyspace (`keys`, `args`).
    pub run: ScriptFn,
}

/// A script with its keys and arguments: one atomic step.
#[derive(Debug, Clone)]
pub struct Call {
    /// The script.
    pub script: &'static ScriptDef,
    /// Its `KEYS`.
    pub keys: Vec<String>,
    /// Its `ARGV`.
    pub args: Vec<Vec<u8>>,
}

impl Call {
    /// A call of `script` with `keys` and `args`.
    pub fn new(script: &'static ScriptDef, keys: Vec<String>, args: Vec<Vec<u8>>) -> Call {
        Call { script, keys, args }
    }

    /// Run this call on a model keyspace (what the model store does under its lock).
    ///
    /// ```
    /// use procshare_model::redis::{lock, Db, Resp};
    /// let mut db = Db::new();
    /// let l = lock::LeaseLock::new("ns:lock:a", 1000);
    /// let r = l.acquire_call().run_on(&mut db).unwrap();
    /// assert_eq!(r, Resp::Array(vec![Resp::Int(1), Resp::Int(1), Resp::Int(0)]));
    /// ```
    pub fn run_on(&self, db: &mut Db) -> Result<Resp, ScriptError> {
        (self.script.run)(db, &self.keys, &self.args)
    }
}

/// A reply that does not have the shape the step returns: another program
/// wrote the keys, or a script and its caller disagree. Never a panic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadReply {
    /// The step.
    pub script: &'static str,
    /// What came back.
    pub reply: Resp,
}

impl std::fmt::Display for BadReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the Redis step {:?} replied {:?}, which it never returns",
            self.script, self.reply
        )
    }
}

impl std::error::Error for BadReply {}

/// Redis as the protocols use it. The real store (procshare's, behind its
/// `redis` feature) sends each [`Call`] as one `EVALSHA` over a connection
/// with timeouts; the model store runs it under one lock against a model clock.
///
/// The seeded bug ([`Seeded`]) is the model's choice; the real store's is none.
pub trait Store: Seeded {
    /// A failed call: the server is down or timed out, or a script refused
    /// ([`ScriptError`]), or a reply did not decode ([`BadReply`]).
    type Error: From<BadReply>;
    /// Run one step atomically.
    fn eval(&self, call: &Call) -> Result<Resp, Self::Error>;
    /// Subscribe to `channel`, run `body` with the subscription (it receives
    /// every notification published from the moment of subscribing), then
    /// unsubscribe. (A scope rather than a value: a real subscription holds
    /// a connection in subscriber mode for exactly that long.)
    fn subscribed<T>(
        &self,
        channel: &str,
        body: impl FnOnce(&mut dyn Subscription<Error = Self::Error>) -> Result<T, Self::Error>,
    ) -> Result<T, Self::Error>;
    /// The caller's clock, in milliseconds (its deadlines are measured on it).
    fn now_ms(&self) -> u64;
}

/// Notifications of one channel, from the moment of subscribing
/// ([`Store::subscribed`]): a notification published after that is never
/// missed (Redis buffers it on the subscriber's connection).
pub trait Subscription {
    /// As the store's.
    type Error;
    /// Sleep until a notification arrives (`Ok(true)`, all that arrived are
    /// consumed) or `timeout_ms` passes (`Ok(false)`; `None`: no timeout).
    fn wait(&mut self, timeout_ms: Option<u64>) -> Result<bool, Self::Error>;
}

/// Seeded bug 1203: a waiter subscribes after its failed try and sleeps
/// without trying again, so a notification published between the two is
/// lost (it sleeps until a lease or its deadline runs out, or forever).
#[doc(hidden)]
pub const MUTANT_LOST_NOTIFICATION: Mutant = Mutant(1203);

/// What one try of a blocking step found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt<T> {
    /// Done, with this result.
    Done(T),
    /// Not yet: wait for a notification, at most this many milliseconds (a
    /// lease that may run out then; `None`: only a notification can help).
    Retry(Option<u64>),
}

/// The one blocking loop: try; if not done, subscribe to `channel` and try
/// again (so that nothing published after the first try is missed), then
/// sleep until a notification, the retry time the try gave, or the deadline
/// (`timeout_ms` from now; `None`: none), and try again. Never polls: a sleep
/// ends only by a notification, a lease's expiry or the caller's deadline.
/// `Ok(None)`: the deadline passed.
pub fn block_until<S: Store, T>(
    s: &S,
    channel: &str,
    timeout_ms: Option<u64>,
    mut attempt: impl FnMut() -> Result<Attempt<T>, S::Error>,
) -> Result<Option<T>, S::Error> {
    let deadline = timeout_ms.map(|t| s.now_ms().saturating_add(t));
    let mut retry = match attempt()? {
        Attempt::Done(t) => return Ok(Some(t)),
        Attempt::Retry(r) => r,
    };
    if timeout_ms == Some(0) {
        return Ok(None);
    }
    s.subscribed(channel, |sub| {
        // Subscribed: whatever is published from now on reaches us, so look
        // again before the first sleep (the seeded bug 1203 does not).
        let mut look = !mutant::<S>(MUTANT_LOST_NOTIFICATION);
        loop {
            if look {
                retry = match attempt()? {
                    Attempt::Done(t) => return Ok(Some(t)),
                    Attempt::Retry(r) => r,
                };
            }
            look = true;
            let left = match deadline {
                None => None,
                Some(d) => {
                    let now = s.now_ms();
                    if now >= d {
                        return Ok(None);
                    }
                    Some(d - now)
                }
            };
            let sleep = match (left, retry) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            sub.wait(sleep)?;
        }
    })
}

/// The integers of an array reply, or [`BadReply`].
pub(crate) fn ints<const N: usize>(script: &'static str, r: Resp) -> Result<[i64; N], BadReply> {
    let bad = |r: Resp| BadReply { script, reply: r };
    match r {
        Resp::Array(v) if v.len() == N => {
            let mut out = [0; N];
            for (o, x) in out.iter_mut().zip(&v) {
                *o = x.int().ok_or_else(|| bad(Resp::Array(v.clone())))?;
            }
            Ok(out)
        }
        r => Err(bad(r)),
    }
}

/// An integer reply, or [`BadReply`].
pub(crate) fn int(script: &'static str, r: Resp) -> Result<i64, BadReply> {
    r.int().ok_or(BadReply { script, reply: r })
}

/// A retry time from a script (`-1`: none; negative otherwise: at once).
pub(crate) fn retry_ms(ms: i64) -> Option<u64> {
    if ms == -1 {
        None
    } else {
        Some(ms.max(0) as u64)
    }
}

/// The Lua prelude of the scripts that read the server's clock.
macro_rules! lua_now {
    () => {
        "local t = redis.call('TIME')\nlocal now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    };
}
pub(crate) use lua_now;

/// The Lua prelude of the scripts that read a counter: `int(key)` is the
/// key's integer (nil when missing), and a value that is not one (`^-?%d+$`)
/// is the error `NOTINT key` (`Db::get_int`'s `NotInteger`).
macro_rules! lua_int {
    () => {
        "local function int(key)\n  local v = redis.call('GET', key)\n  if not v then return nil end\n  if not string.match(v, '^%-?%d+$') then error({err = 'NOTINT ' .. key}) end\n  return tonumber(v)\nend\n"
    };
}
pub(crate) use lua_int;

/// `ARGV[i]` as an integer (`tonumber(ARGV[i])`); the protocols only pass integers there.
pub(crate) fn arg_int(args: &[Vec<u8>], i: usize) -> i64 {
    super::db::parse_int(&args[i]).unwrap_or(0)
}
