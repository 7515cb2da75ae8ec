//! Process-shared synchronization primitives (Python's `multiprocessing`
//! `Lock`, `RLock`, `Semaphore`, `BoundedSemaphore`, `Event`, `Barrier`).
//!
//! Each type is a cheap handle (`Clone`: another handle onto the *same*
//! primitive) onto a protocol struct from [`procshare_model`] placed in shared
//! memory by the [arena](crate::shm) and instantiated over the real platform
//! [`Shm`](crate::platform::Shm): the algorithms are the model-checked ones,
//! not copies. Handles reach child processes by inheritance (capture a clone
//! in the closure given to [`Process`](crate::Process)).
//!
//! Every blocking operation has a `try_` variant (no waiting) and a
//! `_timeout` variant.
//!
//! # Owner death
//!
//! If a process dies (even by `kill -9`) while holding a [`Lock`] or an
//! [`RLock`], the next acquirer gets the lock *and* learns that its previous
//! owner died, within about 50 ms of the death, like `std::sync::PoisonError`
//! or `EOWNERDEAD`: the result is `Err(`[`OwnerDied`]`(guard))`, and
//! [`OwnerDied::into_inner`] returns the guard. The data the lock protects may
//! be half-updated; check it, then go on. The indication is given once: the
//! lock is not poisoned for later acquirers. (CPython deadlocks here.)
//!
//! ```
//! use procshare::{Lock, OwnerDied};
//! let lock = Lock::new().unwrap();
//! // Treat "owner died" like success after repairing the data:
//! let guard = lock.lock().unwrap_or_else(OwnerDied::into_inner);
//! drop(guard);
//! ```

mod any;
mod barrier;
mod condition;
mod event;
mod lock;
mod rlock;
mod semaphore;

pub use any::{AnyGuard, AnyLock};
pub use barrier::Barrier;
pub use condition::{Condition, ConditionGuard};
pub use event::Event;
pub use lock::{Lock, LockGuard};
pub(crate) use rlock::ready_for_fork;
pub use rlock::{RLock, RLockGuard};
pub use semaphore::{BoundedSemaphore, Semaphore};

use crate::shm::ShmError;

/// The previous holder of a lock died while holding it. The lock is now held
/// by the caller: [`OwnerDied::into_inner`] gives the guard (or `()` for the
/// explicit `acquire` calls). The protected data may be inconsistent.
pub struct OwnerDied<G> {
    guard: G,
}

impl<G> OwnerDied<G> {
    pub(crate) fn new(guard: G) -> Self {
        OwnerDied { guard }
    }
    /// The guard: the caller holds the lock.
    pub fn into_inner(self) -> G {
        self.guard
    }
    /// A reference to the guard.
    pub fn get_ref(&self) -> &G {
        &self.guard
    }
    /// A mutable reference to the guard.
    pub fn get_mut(&mut self) -> &mut G {
        &mut self.guard
    }
    pub(crate) fn map<H>(self, f: impl FnOnce(G) -> H) -> OwnerDied<H> {
        OwnerDied {
            guard: f(self.guard),
        }
    }
}

impl<G> core::fmt::Debug for OwnerDied<G> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("OwnerDied").finish_non_exhaustive()
    }
}

impl<G> core::fmt::Display for OwnerDied<G> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(
            "the previous owner of the lock died while holding it; \
             the lock is now held, but the data it protects may be inconsistent",
        )
    }
}

impl<G> std::error::Error for OwnerDied<G> {}

/// A blocking lock: the guard, or [`OwnerDied`] (which holds the guard too).
pub type LockResult<G> = Result<G, OwnerDied<G>>;

/// Why a `try_`/`_timeout` acquisition did not return a clean guard.
///
/// Deliberately exhaustive (unlike the other error types), as
/// `std::sync::TryLockError`: an acquisition either did not happen or
/// happened from a dead owner, and callers match both to get at the guard.
pub enum TryLockError<G> {
    /// Not acquired: the lock was held (`try_`) or the timeout passed.
    WouldBlock,
    /// Acquired, from a dead owner (see [`OwnerDied`]).
    OwnerDied(OwnerDied<G>),
}

impl<G> TryLockError<G> {
    pub(crate) fn map<H>(self, f: impl FnOnce(G) -> H) -> TryLockError<H> {
        match self {
            TryLockError::WouldBlock => TryLockError::WouldBlock,
            TryLockError::OwnerDied(o) => TryLockError::OwnerDied(o.map(f)),
        }
    }
}

impl<G> From<OwnerDied<G>> for TryLockError<G> {
    fn from(o: OwnerDied<G>) -> Self {
        TryLockError::OwnerDied(o)
    }
}

impl<G> core::fmt::Debug for TryLockError<G> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            TryLockError::WouldBlock => f.write_str("WouldBlock"),
            TryLockError::OwnerDied(o) => o.fmt(f),
        }
    }
}

impl<G> core::fmt::Display for TryLockError<G> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            TryLockError::WouldBlock => {
                f.write_str("the lock could not be acquired without blocking or before the timeout")
            }
            TryLockError::OwnerDied(o) => o.fmt(f),
        }
    }
}

impl<G> std::error::Error for TryLockError<G> {}

/// A `try_`/`_timeout` acquisition: the guard, or why not.
pub type TryLockResult<G> = Result<G, TryLockError<G>>;

/// The errors CPython raises from these primitives, as values.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// `Lock::release` of an unlocked lock (CPython: `ValueError: semaphore or
    /// lock released too many times`).
    #[error("release unlocked lock")]
    ReleaseUnlocked,
    /// `RLock::release` by a thread that does not hold it (CPython:
    /// `AssertionError: attempt to release recursive lock not owned by thread`).
    #[error("attempt to release recursive lock not owned by thread")]
    NotOwner,
    /// `RLock::release` of a level held by a guard (`RLockGuard`, or a
    /// `Value`/`Array` guard): drop the guard instead. Releasing it would let
    /// another thread lock the data while the guard's `&mut` lives.
    #[error("this level of the recursive lock is held by a guard: drop the guard to release it")]
    HeldByGuard,
    /// `BoundedSemaphore::release` above the initial value (CPython:
    /// `ValueError: semaphore or lock released too many times`).
    #[error("semaphore or lock released too many times")]
    ReleasedTooManyTimes,
    /// A semaphore's counter would overflow.
    #[error("semaphore value would overflow")]
    Overflow,
    /// The barrier is broken (aborted, reset while waited on, or a wait timed
    /// out): CPython's `threading.BrokenBarrierError`.
    #[error("the barrier is broken")]
    BrokenBarrier,
    /// This process was the last to arrive at a barrier and its action
    /// panicked (the panic's message: a panic payload is not an error to
    /// keep as a source); the barrier is broken for the other parties
    /// (CPython: the action's exception here, `BrokenBarrierError` there).
    #[error("the barrier action panicked: {0}")]
    BarrierActionFailed(String),
    /// An argument is out of range (e.g. a barrier of 0 parties).
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    /// Shared memory could not be allocated.
    #[error(transparent)]
    Shm(#[from] ShmError),
}
