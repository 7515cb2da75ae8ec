//! The protocols of the manager's shared objects on Redis, written once
//! against a [`Store`]: Redis seen as a linearizable store whose scripts run
//! atomically, with notifications on channels (pub/sub).
//!
//! Each protocol step is one script ([`ScriptDef`]): its Lua text, which the
//! real store (procshare's `redis` feature) sends to Redis, beside its
//! line-by-line Rust transcription over the model keyspace ([`Db`]), which
//! the shuttle checks run. Everything between the steps (retries, waits,
//! deciding what a reply means) is written once here and runs unchanged over
//! both stores.
//!
//! | module | protocol | mutants |
//! |---|---|---|
//! | [`lock`] | lease lock with a fencing token; a lost lease is the next acquirer's `owner_died` | 1201 no fencing, 1202 release deletes another holder's lease |
//! | [`semaphore`] | free-permit counter + a lease per holder; a dead holder's permit comes back when its lease ends | 1205 a reaped permit is lost |
//! | [`event`] | flag + channel; a waiter sleeps until a set's notification | 1207 set without a notification |
//! | [`barrier`] | generation + arrival count; a timeout breaks the generation | 1206 a timeout reports broken without breaking |
//! | [`queue`] | reliable queue: take moves the item to the consumer's processing list under a lease, ack removes it; at-least-once | 1204 take without a processing list |
//! | [`rlock`] | the lease lock plus its holder and depth | 1209 re-entry without checking the holder |
//! | [`queue`] (`ManagerQueue`) | the manager's bounded FIFO: put waits for room, get for an item | 1210 a get without its room notification |
//! | [`condition`] | the recursive lease lock plus tickets: enter, take (when notified and free), reacquire (after a timeout), notify | 1212 a notified waiter takes a held lock |
//! | [`objects`] | list, dict, value, namespace: each manager operation one script, answering as the local manager | 1208 an insert one place off |
//! | `store` | the one blocking loop ([`block_until`]): subscribe, look again, sleep until a notification, a lease's end or the deadline | 1203 a lost notification |
//!
//! # What Redis promises here, and what it does not
//!
//! One Redis server, not a cluster (scripts name keys they compute, under one
//! namespace). Scripts run one at a time, so each step is atomic and the
//! steps are linearizable *while the server keeps its data*. A restart
//! without persistence, a `FLUSHALL`, or a failover to a replica (whose
//! replication is asynchronous) can lose acknowledged writes: then a step
//! finds its keys missing and fails with [`ScriptError::Missing`], or a lock
//! looks free. Leases are measured on the server's clock. The lease is what
//! makes a dead or cut-off holder recoverable (its lease runs out); the
//! fencing token is what makes a paused holder harmless (its late writes
//! carry a smaller token than the next holder's), to resources that check
//! tokens ([`lock::fenced_set`]).
//!
//! # Example: the lease lock over the model keyspace
//!
//! ```
//! use procshare_model::redis::{lock::LeaseLock, Db, Resp};
//! let mut db = Db::new();
//! let l = LeaseLock::new("ns:lock:a", 1000);
//! // Acquire: token 1, nobody died.
//! assert_eq!(
//!     l.acquire_call().run_on(&mut db).unwrap(),
//!     Resp::Array(vec![Resp::Int(1), Resp::Int(1), Resp::Int(0)])
//! );
//! // The holder is paused past its lease: the next acquirer is told the
//! // owner died, and gets a larger token.
//! db.now += 1001;
//! assert_eq!(
//!     l.acquire_call().run_on(&mut db).unwrap(),
//!     Resp::Array(vec![Resp::Int(1), Resp::Int(2), Resp::Int(1)])
//! );
//! // The paused holder's release is refused.
//! assert_eq!(l.release_call(1).run_on(&mut db).unwrap(), Resp::Int(0));
//! ```

pub mod barrier;
pub mod condition;
mod db;
pub mod event;
pub mod lock;
#[cfg(feature = "checkers")]
pub mod model;
pub mod objects;
pub mod queue;
pub mod rlock;
pub mod semaphore;
mod store;

pub use db::{parse_int, Db, Resp, ScriptError};
pub use store::{
    block_until, Attempt, BadReply, Call, ScriptDef, ScriptFn, Store, Subscription,
    MUTANT_LOST_NOTIFICATION,
};

/// Every script, for the real store to load (`SCRIPT LOAD`) and the
/// differential test to run.
pub static SCRIPTS: &[&ScriptDef] = &[
    &lock::LOCK_ACQUIRE,
    &lock::LOCK_RENEW,
    &lock::LOCK_RELEASE,
    &lock::FENCED_SET,
    &semaphore::SEM_CREATE,
    &semaphore::SEM_ACQUIRE,
    &semaphore::SEM_RENEW,
    &semaphore::SEM_RELEASE,
    &semaphore::SEM_RELEASE_NEW,
    &event::EVENT_SET,
    &event::EVENT_CLEAR,
    &event::EVENT_IS_SET,
    &barrier::BARRIER_ARRIVE,
    &barrier::BARRIER_CHECK,
    &barrier::BARRIER_ABORT,
    &barrier::BARRIER_RESET,
    &queue::QUEUE_PUT,
    &queue::QUEUE_TAKE,
    &queue::QUEUE_ACK,
    &queue::QUEUE_RENEW,
    &lock::LOCK_LOCKED,
    &rlock::RLOCK_ACQUIRE,
    &rlock::RLOCK_RELEASE,
    &semaphore::SEM_VALUE,
    &queue::MQ_PUT,
    &queue::MQ_GET,
    &barrier::BARRIER_BREAK,
    &barrier::BARRIER_STATE,
    &queue::JQ_TASK_DONE,
    &queue::JQ_UNFINISHED,
    &condition::COND_ENTER,
    &condition::COND_TAKE,
    &condition::COND_REACQUIRE,
    &condition::COND_NOTIFY,
];

#[cfg(all(test, feature = "checkers"))]
mod tests;
#[cfg(all(test, feature = "checkers"))]
mod tests_objects;
