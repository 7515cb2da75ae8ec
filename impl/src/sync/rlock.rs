//! `RLock`: a recursive process-shared lock over the model's [`RawRLock`].

use core::time::Duration;

use procshare_model::rlock::{Acquired, RawRLock};

use super::{LockResult, OwnerDied, SyncError, TryLockError, TryLockResult};
use crate::platform::{current_tid, Shm, ShmThread};
use crate::shm::{ShmBox, ShmError, ShmSafe};

// SAFETY: RawRLock<Shm> is #[repr(C)]: a RawMutex<Shm> (one ShmWord32) and a
// ShmWord32 count: no pointers, no drop glue, any bit pattern is a state the
// protocol handles (an unknown owner id is a live or dead tid, never memory).
unsafe impl ShmSafe for RawRLock<Shm> {}

/// A process-shared recursive lock (Python's `multiprocessing.RLock`): the
/// thread that holds it may acquire it again, and must release it as many
/// times; only the holder may release it.
///
/// Ownership is per *thread* (kernel thread id): a forked child does not own
/// an `RLock` its parent held at the fork. If a holder dies, the next acquirer
/// gets [`OwnerDied`] with depth 1 (the dead owner's depth is forgotten).
///
/// ```
/// use procshare::sync::{RLock, SyncError};
/// let r = RLock::new().unwrap();
/// let a = r.lock().unwrap();
/// let b = r.lock().unwrap(); // re-entrant
/// assert_eq!(r.count(), 2);
/// drop(b);
/// drop(a);
/// assert!(!r.is_locked());
/// assert!(matches!(r.release(), Err(SyncError::NotOwner)));
/// ```
#[derive(Clone)]
pub struct RLock {
    pub(crate) raw: ShmBox<RawRLock<Shm>>,
}

impl core::fmt::Debug for RLock {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RLock")
            .field("owner", &self.raw.owner())
            .field("count", &self.raw.count())
            .finish()
    }
}

/// Holds one level of an [`RLock`]; releases it on drop.
#[must_use = "the lock is released when the guard is dropped"]
#[derive(Debug)]
pub struct RLockGuard<'a> {
    lock: &'a RLock,
    // Guards must be dropped by the thread that owns the lock.
    _not_send: core::marker::PhantomData<*const ()>,
}

impl Drop for RLockGuard<'_> {
    fn drop(&mut self) {
        // The guard's thread owns the lock (the guard is !Send), so this succeeds.
        let _ = self.lock.release();
    }
}

impl RLockGuard<'_> {
    /// The lock this guard holds.
    pub fn lock(&self) -> &RLock {
        self.lock
    }
}

impl RLock {
    /// A new, unlocked recursive lock in shared memory.
    pub fn new() -> Result<RLock, ShmError> {
        Ok(RLock {
            raw: ShmBox::new(RawRLock::new())?,
        })
    }

    /// An `RLock` over a protocol struct already placed in shared memory (for
    /// objects that keep their lock next to their data).
    pub(crate) fn from_box(raw: ShmBox<RawRLock<Shm>>) -> RLock {
        RLock { raw }
    }

    fn raw_acquire(&self, timeout: Option<Duration>, try_only: bool) -> TryLockResult<()> {
        let t = ShmThread::current();
        let r = if try_only {
            self.raw.try_lock(&t)
        } else {
            self.raw.lock(&t, timeout)
        };
        match r {
            Ok(Acquired::Clean) => Ok(()),
            Ok(Acquired::OwnerDied) => Err(TryLockError::OwnerDied(OwnerDied::new(()))),
            Err(_) => Err(TryLockError::WouldBlock),
        }
    }

    /// Acquires (again), waiting as long as needed.
    ///
    /// # Panics
    ///
    /// If the caller already holds it `u32::MAX` times (CPython: `OverflowError`).
    pub fn acquire(&self) -> LockResult<()> {
        match self.raw_acquire(None, false) {
            Ok(()) => Ok(()),
            Err(TryLockError::OwnerDied(o)) => Err(o),
            Err(TryLockError::WouldBlock) => panic!("RLock recursion depth overflow"),
        }
    }

    /// Acquires if possible without waiting (Python's `acquire(False)`).
    pub fn try_acquire(&self) -> TryLockResult<()> {
        self.raw_acquire(None, true)
    }

    /// Acquires, waiting at most `timeout` (Python's `acquire(timeout=...)`).
    pub fn acquire_timeout(&self, timeout: Duration) -> TryLockResult<()> {
        self.raw_acquire(Some(timeout), false)
    }

    /// Releases one level. Only the owning thread may ([`SyncError::NotOwner`]).
    pub fn release(&self) -> Result<(), SyncError> {
        self.raw
            .unlock(&ShmThread::current())
            .map_err(|_| SyncError::NotOwner)
    }

    fn guard(&self) -> RLockGuard<'_> {
        RLockGuard {
            lock: self,
            _not_send: core::marker::PhantomData,
        }
    }

    /// Acquires (again) and returns a guard that releases one level on drop.
    ///
    /// # Panics
    ///
    /// As [`RLock::acquire`].
    pub fn lock(&self) -> LockResult<RLockGuard<'_>> {
        self.acquire()
            .map(|()| self.guard())
            .map_err(|o| o.map(|()| self.guard()))
    }

    /// [`RLock::lock`] without waiting.
    pub fn try_lock(&self) -> TryLockResult<RLockGuard<'_>> {
        self.try_acquire()
            .map(|()| self.guard())
            .map_err(|e| e.map(|()| self.guard()))
    }

    /// [`RLock::lock`] waiting at most `timeout`.
    pub fn lock_timeout(&self, timeout: Duration) -> TryLockResult<RLockGuard<'_>> {
        self.acquire_timeout(timeout)
            .map(|()| self.guard())
            .map_err(|e| e.map(|()| self.guard()))
    }

    /// Is it held (by anyone)?
    pub fn is_locked(&self) -> bool {
        self.raw.is_locked()
    }

    /// Is it held by the calling thread? (Python's `_is_owned()`.)
    pub fn is_owned(&self) -> bool {
        self.raw.is_owned_by(current_tid())
    }

    /// The holder's owner id (kernel thread id), if held.
    pub fn owner(&self) -> Option<u32> {
        self.raw.owner()
    }

    /// The holder's recursion depth (0 when free; a snapshot for non-owners).
    pub fn count(&self) -> u32 {
        self.raw.count()
    }
}
