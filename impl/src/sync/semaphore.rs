//! `Semaphore` and `BoundedSemaphore` over the model's [`RawSemaphore`].

use core::time::Duration;

use procshare_model::semaphore::RawSemaphore;

use super::SyncError;
use crate::platform::{Shm, ShmThread};
use crate::shm::{ShmBox, ShmError, ShmSafe};

// SAFETY: RawSemaphore<Shm> is #[repr(C)]: three ShmWord32 (value, waiters,
// bound): no pointers, no drop glue; the protocol keeps every state valid.
unsafe impl ShmSafe for RawSemaphore<Shm> {}
// The layout documented in procshare_model::semaphore (value 0, waiters 4, bound 8).
crate::shm::layout::assert_shm_layout!(RawSemaphore<Shm> { size: 12, align: 4 });

fn acquire_forever(raw: &RawSemaphore<Shm>) {
    let t = ShmThread::current();
    // Without a deadline the protocol only returns once it has a permit.
    while raw.acquire(&t, None).is_err() {}
}

/// A process-shared counting semaphore (Python's `multiprocessing.Semaphore`).
///
/// Permits have no owner: a process that dies holding one does not give it
/// back (as with CPython's and POSIX semaphores). `Clone` gives another handle
/// onto the same semaphore.
///
/// ```
/// use procshare::Semaphore;
/// let s = Semaphore::new(1).unwrap();
/// s.acquire();
/// assert!(!s.try_acquire());
/// s.release().unwrap();
/// assert_eq!(s.get_value(), 1);
/// ```
#[derive(Clone)]
pub struct Semaphore {
    pub(crate) raw: ShmBox<RawSemaphore<Shm>>,
}

impl core::fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Semaphore")
            .field("value", &self.raw.value())
            .finish()
    }
}

impl Semaphore {
    /// A semaphore holding `value` permits.
    pub fn new(value: u32) -> Result<Semaphore, ShmError> {
        Ok(Semaphore {
            raw: ShmBox::new(RawSemaphore::new(value, None))?,
        })
    }

    /// Takes a permit, waiting as long as needed.
    pub fn acquire(&self) {
        acquire_forever(&self.raw)
    }

    /// Takes a permit if one is available now (Python's `acquire(False)`).
    #[doc(alias = "acquire")]
    pub fn try_acquire(&self) -> bool {
        self.raw.try_acquire(&ShmThread::current()).is_ok()
    }

    /// Takes a permit, waiting at most `timeout`; `false` if none came.
    #[doc(alias = "acquire")]
    pub fn acquire_timeout(&self, timeout: Duration) -> bool {
        self.raw
            .acquire(&ShmThread::current(), Some(timeout))
            .is_ok()
    }

    /// Returns a permit, waking a waiter. [`SyncError::Overflow`] if the count
    /// would exceed `u32::MAX`.
    pub fn release(&self) -> Result<(), SyncError> {
        self.release_n(1)
    }

    /// Returns `n` permits at once (Python 3.9's `release(n)`).
    pub fn release_n(&self, n: u32) -> Result<(), SyncError> {
        self.raw
            .release(&ShmThread::current(), n)
            .map_err(|_| SyncError::Overflow)
    }

    /// Permits available now (Python's `get_value()`; a snapshot).
    pub fn get_value(&self) -> u32 {
        self.raw.value()
    }
}

/// A semaphore that refuses to be released above its initial value (Python's
/// `multiprocessing.BoundedSemaphore`).
///
/// ```
/// use procshare::{BoundedSemaphore, SyncError};
/// let s = BoundedSemaphore::new(1).unwrap();
/// assert!(matches!(s.release(), Err(SyncError::ReleasedTooManyTimes)));
/// s.acquire();
/// s.release().unwrap();
/// ```
#[derive(Clone)]
pub struct BoundedSemaphore {
    pub(crate) raw: ShmBox<RawSemaphore<Shm>>,
}

impl core::fmt::Debug for BoundedSemaphore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BoundedSemaphore")
            .field("value", &self.raw.value())
            .field("bound", &self.raw.bound())
            .finish()
    }
}

impl BoundedSemaphore {
    /// A semaphore holding `value` permits, never more.
    pub fn new(value: u32) -> Result<BoundedSemaphore, ShmError> {
        Ok(BoundedSemaphore {
            raw: ShmBox::new(RawSemaphore::new(value, Some(value)))?,
        })
    }

    /// Takes a permit, waiting as long as needed.
    pub fn acquire(&self) {
        acquire_forever(&self.raw)
    }

    /// Takes a permit if one is available now.
    #[doc(alias = "acquire")]
    pub fn try_acquire(&self) -> bool {
        self.raw.try_acquire(&ShmThread::current()).is_ok()
    }

    /// Takes a permit, waiting at most `timeout`; `false` if none came.
    #[doc(alias = "acquire")]
    pub fn acquire_timeout(&self, timeout: Duration) -> bool {
        self.raw
            .acquire(&ShmThread::current(), Some(timeout))
            .is_ok()
    }

    /// Returns a permit. [`SyncError::ReleasedTooManyTimes`] (nothing released)
    /// if that would exceed the initial value.
    pub fn release(&self) -> Result<(), SyncError> {
        self.raw
            .release(&ShmThread::current(), 1)
            .map_err(|_| SyncError::ReleasedTooManyTimes)
    }

    /// Permits available now (a snapshot).
    pub fn get_value(&self) -> u32 {
        self.raw.value()
    }

    /// The bound (the initial value).
    ///
    /// ```
    /// use procshare::BoundedSemaphore;
    /// let s = BoundedSemaphore::new(2).unwrap();
    /// assert_eq!(s.bound(), 2);
    /// s.acquire();
    /// assert_eq!((s.get_value(), s.bound()), (1, 2));
    /// ```
    pub fn bound(&self) -> u32 {
        self.raw.bound().unwrap_or(u32::MAX)
    }
}
