//! `Lock`: a non-recursive process-shared lock over the model's [`RawMutex`].

use core::time::Duration;

use procshare_model::mutex::{Acquired, RawMutex};

use super::{LockResult, OwnerDied, SyncError, TryLockError, TryLockResult};
use crate::platform::{Shm, ShmThread};
use crate::shm::{ShmBox, ShmError, ShmSafe};

// SAFETY: RawMutex<Shm> is #[repr(C)]: a ShmWord32 (an AtomicU32) and a
// ShmWord64 (the holder's identity): no pointers, no drop glue, valid for any
// bit pattern (an unknown owner id or identity is treated as a live or dead
// thread by the protocol, never as memory).
unsafe impl ShmSafe for RawMutex<Shm> {}
// The layout documented in procshare_model::mutex (`word` at 0, `ident` at 8).
crate::shm::layout::assert_shm_layout!(RawMutex<Shm> { size: 16, align: 8 });

/// A process-shared lock (Python's `multiprocessing.Lock`): not recursive, and
/// any thread or process may release it.
///
/// `Clone` gives another handle onto the same lock; pass a clone to a child
/// process by capturing it. If a holder dies, the next acquirer gets
/// [`OwnerDied`] (see [`OwnerDied`]'s docs).
///
/// ```
/// use procshare::Lock;
/// let lock = Lock::new().unwrap();
/// {
///     let _g = lock.lock().unwrap();
///     assert!(lock.is_locked());
///     assert!(lock.try_lock().is_err()); // not recursive
/// }
/// assert!(!lock.is_locked());
/// // Python style:
/// lock.acquire().unwrap();
/// lock.release().unwrap();
/// assert!(lock.release().is_err()); // release unlocked lock
/// ```
#[derive(Clone)]
pub struct Lock {
    pub(crate) raw: ShmBox<RawMutex<Shm>>,
}

impl core::fmt::Debug for Lock {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Lock")
            .field("owner", &self.raw.owner())
            .finish()
    }
}

/// Holds a [`Lock`]; releases it on drop.
#[must_use = "the lock is released when the guard is dropped"]
#[derive(Debug)]
pub struct LockGuard<'a> {
    lock: &'a Lock,
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        // Cannot fail unless someone released the lock behind the guard's back
        // (any thread may release a Lock, as in Python); nothing to do then.
        let _ = self.lock.release();
    }
}

impl LockGuard<'_> {
    /// The lock this guard holds.
    pub fn lock(&self) -> &Lock {
        self.lock
    }
}

impl Lock {
    /// A new, unlocked lock in shared memory.
    pub fn new() -> Result<Lock, ShmError> {
        Ok(Lock {
            raw: ShmBox::new(RawMutex::new())?,
        })
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

    /// Acquires, waiting as long as needed.
    pub fn acquire(&self) -> LockResult<()> {
        match self.raw_acquire(None, false) {
            Ok(()) => Ok(()),
            Err(TryLockError::OwnerDied(o)) => Err(o),
            Err(TryLockError::WouldBlock) => {
                unreachable!("a lock without timeout does not time out")
            }
        }
    }

    /// Acquires if possible without waiting (Python's `acquire(False)`).
    #[doc(alias = "acquire")]
    pub fn try_acquire(&self) -> TryLockResult<()> {
        self.raw_acquire(None, true)
    }

    /// Acquires, waiting at most `timeout` (Python's `acquire(timeout=...)`).
    #[doc(alias = "acquire")]
    pub fn acquire_timeout(&self, timeout: Duration) -> TryLockResult<()> {
        self.raw_acquire(Some(timeout), false)
    }

    /// Releases (any thread or process may). Releasing an unlocked lock is
    /// [`SyncError::ReleaseUnlocked`].
    pub fn release(&self) -> Result<(), SyncError> {
        self.raw
            .unlock(&ShmThread::current())
            .map_err(|_| SyncError::ReleaseUnlocked)
    }

    /// Acquires and returns a guard that releases on drop.
    pub fn lock(&self) -> LockResult<LockGuard<'_>> {
        self.acquire()
            .map(|()| self.guard())
            .map_err(|o| o.map(|()| self.guard()))
    }

    /// [`Lock::lock`] without waiting.
    pub fn try_lock(&self) -> TryLockResult<LockGuard<'_>> {
        self.try_acquire()
            .map(|()| self.guard())
            .map_err(|e| e.map(|()| self.guard()))
    }

    /// [`Lock::lock`] waiting at most `timeout`.
    pub fn lock_timeout(&self, timeout: Duration) -> TryLockResult<LockGuard<'_>> {
        self.acquire_timeout(timeout)
            .map(|()| self.guard())
            .map_err(|e| e.map(|()| self.guard()))
    }

    fn guard(&self) -> LockGuard<'_> {
        LockGuard { lock: self }
    }

    /// Is it held (by anyone)?
    #[doc(alias = "locked")]
    pub fn is_locked(&self) -> bool {
        self.raw.is_locked()
    }

    /// The holder's kernel thread id, if held.
    pub fn owner(&self) -> Option<u32> {
        self.raw.owner().map(crate::platform::owner_tid)
    }
}
