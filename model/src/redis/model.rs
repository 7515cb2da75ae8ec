//! The model store the checks run the Redis protocols on: one keyspace
//! ([`Db`]) under a shuttle mutex (a script is one critical section: Redis
//! runs scripts one at a time), channels as publish counters with a shuttle
//! condition variable, and a model clock.
//!
//! # Time
//!
//! Model time passes in two ways, both explored by the checks:
//!
//! * **Idle time** (the clock thread, [`Options::clock`]): when every live
//!   client sleeps in [`Subscription::wait`] and none of them has been
//!   notified, the clock jumps to the earliest deadline among the sleepers
//!   (a lease that runs out, a caller's timeout). Real time passes that way
//!   while everybody sleeps; a client that sleeps without a deadline and
//!   without a notification to come is a deadlock, which shuttle reports.
//! * **A pause** ([`Options::jump_at`]): before the k-th script of the
//!   execution the clock jumps by [`Options::jump_ms`] (more than a lease),
//!   whatever the clients are doing: every lease not renewed since runs out,
//!   so whoever held one is now a paused holder. Checks enumerate k.
//!
//! Without the clock thread and without a jump, time never passes: a waiter
//! must then be woken by a notification (a lost one is a deadlock).
//!
//! # Deaths
//!
//! A client dies at its k-th crash point (before and after each script, at
//! each subscribe and wait) by unwinding with [`Crash`]; its leases are not
//! renewed any more, which is all a death is to Redis.

use super::db::{Db, Resp, ScriptError};
use super::store::{BadReply, Call, Store, Subscription};
use crate::checkers::Crash;
use crate::platform::{Mutant, Seeded};
use shuttle::sync::{Condvar, Mutex, MutexGuard};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;

/// One script as it ran, in the order the server ran them.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The client that ran it.
    pub client: u32,
    /// The model time it ran at.
    pub now: u64,
    /// The script's name.
    pub script: &'static str,
    /// Its keys.
    pub keys: Vec<String>,
    /// Its arguments.
    pub args: Vec<Vec<u8>>,
    /// Its reply.
    pub reply: Result<Resp, ScriptError>,
}

/// What one client does (its shuttle thread's body).
pub type ClientBody<const M: u32> = Box<dyn FnOnce(&ModelClient<M>) + Send>;

/// How a model execution runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Run the clock thread (idle time passes).
    pub clock: bool,
    /// Before the k-th script (1-based), the clock jumps by `jump_ms`.
    pub jump_at: Option<u64>,
    /// The pause's length.
    pub jump_ms: u64,
}

#[derive(Debug)]
struct Sleeper {
    id: u64,
    chan: String,
    seen: u64,
    deadline: Option<u64>,
}

#[derive(Debug)]
struct Inner {
    db: Db,
    published: BTreeMap<String, u64>,
    /// Clients running (not asleep in a wait, not finished).
    active: usize,
    /// Clients not finished.
    running: usize,
    sleepers: Vec<Sleeper>,
    next_sleeper: u64,
    steps: u64,
    jumped: bool,
    log: Vec<Entry>,
}

impl Inner {
    fn count(&self, chan: &str) -> u64 {
        self.published.get(chan).copied().unwrap_or(0)
    }
}

/// The model Redis of one execution, running seeded bug `M` (0: none).
#[derive(Debug)]
pub struct ModelRedis<const M: u32 = 0> {
    inner: Mutex<Inner>,
    /// Sleepers wait here: notified when something is published or time moves.
    cv: Condvar,
    /// The clock thread waits here: notified when a client sleeps or ends.
    clock_cv: Condvar,
    opts: Options,
}

/// A model error: a script refused, or a reply did not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelError {
    /// A script refused.
    Script(ScriptError),
    /// A reply did not decode.
    Reply(BadReply),
}

impl From<BadReply> for ModelError {
    fn from(e: BadReply) -> Self {
        ModelError::Reply(e)
    }
}

impl<const M: u32> ModelRedis<M> {
    /// A fresh, empty server at time 0.
    pub fn new(opts: Options) -> Arc<Self> {
        let mut db = Db::new();
        db.mutant = M;
        Arc::new(ModelRedis {
            inner: Mutex::new(Inner {
                db,
                published: BTreeMap::new(),
                active: 0,
                running: 0,
                sleepers: vec![],
                next_sleeper: 0,
                steps: 0,
                jumped: false,
                log: vec![],
            }),
            cv: Condvar::new(),
            clock_cv: Condvar::new(),
            opts,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The scripts run so far, in order.
    pub fn log(&self) -> Vec<Entry> {
        self.lock().log.clone()
    }

    /// Run `f` on the keyspace (the checks' final assertions).
    pub fn with_db<R>(&self, f: impl FnOnce(&mut Db) -> R) -> R {
        f(&mut self.lock().db)
    }

    /// Did the pause happen in this execution?
    pub fn jumped(&self) -> bool {
        self.lock().jumped
    }

    /// Run the clients (`crash_at`: the crash point each dies at) as shuttle
    /// threads, with the clock thread if asked, and join them. Sets `died`
    /// when a client reached its crash point. A check's own panic propagates.
    pub fn run(self: &Arc<Self>, clients: Vec<(Option<u32>, ClientBody<M>)>, died: &AtomicBool) {
        {
            let mut g = self.lock();
            g.active = clients.len();
            g.running = clients.len();
        }
        let clock = self.opts.clock.then(|| {
            let r = self.clone();
            shuttle::thread::spawn(move || r.clock())
        });
        let mut handles = vec![];
        for (i, (crash_at, body)) in clients.into_iter().enumerate() {
            let r = self.clone();
            handles.push(shuttle::thread::spawn(move || {
                let c = ModelClient {
                    redis: r.clone(),
                    id: i as u32 + 1,
                    at: Rc::new(Steps {
                        crash_at,
                        steps: Cell::new(0),
                    }),
                };
                let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(&c)));
                {
                    let mut g = r.lock();
                    g.active -= 1;
                    g.running -= 1;
                }
                r.clock_cv.notify_all();
                match out {
                    Ok(()) => false,
                    Err(p) if p.is::<Crash>() => true,
                    Err(p) => std::panic::resume_unwind(p),
                }
            }));
        }
        for h in handles {
            if h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)) {
                died.store(true, SeqCst);
            }
        }
        if let Some(c) = clock {
            c.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        }
    }

    /// The clock thread: while clients run, whenever all of them sleep and
    /// none has a notification or a passed deadline, move time to the
    /// earliest deadline.
    fn clock(&self) {
        let mut g = self.lock();
        loop {
            if g.running == 0 {
                return;
            }
            let now = g.db.now;
            let due = g
                .sleepers
                .iter()
                .any(|s| g.count(&s.chan) > s.seen || s.deadline.is_some_and(|d| d <= now));
            let next = g.sleepers.iter().filter_map(|s| s.deadline).min();
            if g.active == 0 && !due {
                if let Some(next) = next {
                    g.db.now = next;
                    self.cv.notify_all();
                    continue;
                }
            }
            g = self.clock_cv.wait(g).unwrap_or_else(|p| p.into_inner());
        }
    }
}

#[derive(Debug)]
struct Steps {
    crash_at: Option<u32>,
    steps: Cell<u32>,
}

impl Steps {
    fn crash_point(&self) {
        let n = self.steps.get() + 1;
        self.steps.set(n);
        if self.crash_at == Some(n) {
            std::panic::resume_unwind(Box::new(Crash));
        }
    }
}

/// One client of the model Redis (its connection), in one shuttle thread.
#[derive(Debug)]
pub struct ModelClient<const M: u32 = 0> {
    redis: Arc<ModelRedis<M>>,
    id: u32,
    at: Rc<Steps>,
}

impl<const M: u32> ModelClient<M> {
    /// This client's number (1-based, in the order given to [`ModelRedis::run`]).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Let `ms` of model time pass now, whatever the clients do (a pause of
    /// this client, as the server sees it: nothing renews meanwhile).
    pub fn pause(&self, ms: u64) {
        self.redis.lock().db.now += ms;
        self.redis.cv.notify_all();
    }
}

impl<const M: u32> Seeded for ModelClient<M> {
    const MUTANT: Mutant = Mutant(M);
}

impl<const M: u32> Store for ModelClient<M> {
    type Error = ModelError;

    fn eval(&self, call: &Call) -> Result<Resp, ModelError> {
        self.at.crash_point();
        let reply = {
            let r = &self.redis;
            let mut g = r.lock();
            g.steps += 1;
            if r.opts.jump_at == Some(g.steps) {
                g.db.now += r.opts.jump_ms;
                g.jumped = true;
                r.cv.notify_all();
            }
            g.db.published.clear();
            let reply = call.run_on(&mut g.db);
            let published = std::mem::take(&mut g.db.published);
            for ch in &published {
                *g.published.entry(ch.clone()).or_insert(0) += 1;
            }
            if !published.is_empty() {
                r.cv.notify_all();
            }
            let entry = Entry {
                client: self.id,
                now: g.db.now,
                script: call.script.name,
                keys: call.keys.clone(),
                args: call.args.clone(),
                reply: reply.clone(),
            };
            g.log.push(entry);
            reply
        };
        self.at.crash_point();
        reply.map_err(ModelError::Script)
    }

    fn subscribed<T>(
        &self,
        channel: &str,
        body: impl FnOnce(&mut dyn Subscription<Error = ModelError>) -> Result<T, ModelError>,
    ) -> Result<T, ModelError> {
        self.at.crash_point();
        let seen = self.redis.lock().count(channel);
        let mut sub = ModelSub {
            redis: self.redis.clone(),
            chan: channel.to_string(),
            seen,
            at: self.at.clone(),
        };
        body(&mut sub)
    }

    fn now_ms(&self) -> u64 {
        self.redis.lock().db.now
    }
}

/// A model subscription.
#[derive(Debug)]
pub struct ModelSub<const M: u32 = 0> {
    redis: Arc<ModelRedis<M>>,
    chan: String,
    seen: u64,
    at: Rc<Steps>,
}

impl<const M: u32> Subscription for ModelSub<M> {
    type Error = ModelError;

    fn wait(&mut self, timeout_ms: Option<u64>) -> Result<bool, ModelError> {
        self.at.crash_point();
        let r = &self.redis;
        let mut g = r.lock();
        let deadline = timeout_ms.map(|t| g.db.now.saturating_add(t));
        loop {
            let count = g.count(&self.chan);
            if count > self.seen {
                self.seen = count;
                return Ok(true);
            }
            if deadline.is_some_and(|d| g.db.now >= d) {
                return Ok(false);
            }
            let id = g.next_sleeper;
            g.next_sleeper += 1;
            g.sleepers.push(Sleeper {
                id,
                chan: self.chan.clone(),
                seen: self.seen,
                deadline,
            });
            g.active -= 1;
            r.clock_cv.notify_all();
            g = r.cv.wait(g).unwrap_or_else(|p| p.into_inner());
            g.active += 1;
            g.sleepers.retain(|s| s.id != id);
        }
    }
}
