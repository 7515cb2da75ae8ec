//! `AnyLock`: the lock of a synchronized `Value`/`Array` (an `RLock` by
//! default, or a caller-supplied `Lock` or `RLock`, as CPython's `lock=` argument).

use core::time::Duration;

use super::{Lock, LockGuard, LockResult, RLock, RLockGuard, TryLockResult};

/// A [`Lock`] or an [`RLock`] (what CPython's `Value(..., lock=...)` accepts).
///
/// ```
/// use procshare::{AnyLock, Lock};
/// let l: AnyLock = Lock::new().unwrap().into();
/// let g = l.lock().unwrap();
/// drop(g);
/// ```
#[derive(Debug, Clone)]
pub enum AnyLock {
    /// A non-recursive lock.
    Lock(Lock),
    /// A recursive lock (the default of `Value` and `Array`).
    RLock(RLock),
}

impl From<Lock> for AnyLock {
    fn from(l: Lock) -> Self {
        AnyLock::Lock(l)
    }
}

impl From<RLock> for AnyLock {
    fn from(l: RLock) -> Self {
        AnyLock::RLock(l)
    }
}

/// A guard of an [`AnyLock`].
#[must_use = "the lock is released when the guard is dropped"]
#[derive(Debug)]
pub enum AnyGuard<'a> {
    /// Of a [`Lock`].
    Lock(LockGuard<'a>),
    /// Of an [`RLock`].
    RLock(RLockGuard<'a>),
}

impl AnyLock {
    /// Acquires (see [`Lock::lock`], [`RLock::lock`]).
    pub fn lock(&self) -> LockResult<AnyGuard<'_>> {
        match self {
            AnyLock::Lock(l) => l
                .lock()
                .map(AnyGuard::Lock)
                .map_err(|o| o.map(AnyGuard::Lock)),
            AnyLock::RLock(l) => l
                .lock()
                .map(AnyGuard::RLock)
                .map_err(|o| o.map(AnyGuard::RLock)),
        }
    }

    /// Acquires without waiting.
    pub fn try_lock(&self) -> TryLockResult<AnyGuard<'_>> {
        match self {
            AnyLock::Lock(l) => l
                .try_lock()
                .map(AnyGuard::Lock)
                .map_err(|e| e.map(AnyGuard::Lock)),
            AnyLock::RLock(l) => l
                .try_lock()
                .map(AnyGuard::RLock)
                .map_err(|e| e.map(AnyGuard::RLock)),
        }
    }

    /// Acquires, waiting at most `timeout`.
    pub fn lock_timeout(&self, timeout: Duration) -> TryLockResult<AnyGuard<'_>> {
        match self {
            AnyLock::Lock(l) => l
                .lock_timeout(timeout)
                .map(AnyGuard::Lock)
                .map_err(|e| e.map(AnyGuard::Lock)),
            AnyLock::RLock(l) => l
                .lock_timeout(timeout)
                .map(AnyGuard::RLock)
                .map_err(|e| e.map(AnyGuard::RLock)),
        }
    }

    /// Is it held by anyone?
    #[doc(alias = "locked")]
    pub fn is_locked(&self) -> bool {
        match self {
            AnyLock::Lock(l) => l.is_locked(),
            AnyLock::RLock(l) => l.is_locked(),
        }
    }
}
