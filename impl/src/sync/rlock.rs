//! `RLock`: a recursive process-shared lock over the model's [`RawRLock`].

use core::cell::RefCell;
use core::time::Duration;

use procshare_model::rlock::{Acquired, RawRLock};

use super::{LockResult, OwnerDied, SyncError, TryLockError, TryLockResult};
use crate::platform::{current_tid, Shm, ShmThread};
use crate::shm::{ShmBox, ShmError, ShmSafe};

// SAFETY: RawRLock<Shm> is #[repr(C)]: a RawMutex<Shm> (a ShmWord32 and a ShmWord64) and a
// ShmWord32 count: no pointers, no drop glue, any bit pattern is a state the
// protocol handles (an unknown owner id is a live or dead tid, never memory).
unsafe impl ShmSafe for RawRLock<Shm> {}
// The layout documented in procshare_model::rlock (`mutex` at 0, `count` at 16).
crate::shm::layout::assert_shm_layout!(RawRLock<Shm> { size: 24, align: 8 });

/// A process-shared recursive lock (Python's `multiprocessing.RLock`): the
/// thread that holds it may acquire it again, and must release it as many
/// times; only the holder may release it.
///
/// Ownership is per *thread* (kernel thread id): a forked child does not own
/// an `RLock` its parent held at the fork. If a holder dies, the next acquirer
/// gets [`OwnerDied`] with depth 1 (the dead owner's depth is forgotten).
///
/// ```
/// use procshare::{RLock, SyncError};
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

thread_local! {
    /// The levels of `RLock`s that this thread holds through guards
    /// ([`RLockGuard`], and so `Value`/`Array` data guards): entries
    /// `(tid, address of the RawRLock, levels)`. Only the owning thread can
    /// acquire or release an `RLock`, so a thread-local count is exact for
    /// the owner. The tid tells a forked child's thread (which inherits this
    /// table from the forking thread, but not its ownership) to ignore it.
    /// Addresses identify locks: a process maps each segment once.
    static GUARD_LEVELS: RefCell<Vec<(u32, usize, u32)>> = const { RefCell::new(Vec::new()) };
}

/// This thread's guard levels of the lock at `addr` (`u32::MAX`, refusing
/// every explicit release, if the table is already destroyed at thread exit).
fn guard_levels(addr: usize) -> u32 {
    let me = current_tid();
    GUARD_LEVELS
        .try_with(|g| {
            g.borrow()
                .iter()
                .find(|e| e.0 == me && e.1 == addr)
                .map_or(0, |e| e.2)
        })
        .unwrap_or(u32::MAX)
}

/// Readies the calling thread's guard-level table for a child it is about
/// to fork (called by `Process::start`): the table's destructor is then
/// registered, and room made for a few levels, in this thread once, not in
/// every child whose target takes a guard (a registration there costs a
/// `calloc`, the C library's lazy binding of its helpers and a dozen page
/// faults; a first `push` a `malloc`).
pub(crate) fn ready_for_fork() {
    let _ = GUARD_LEVELS.try_with(|g| {
        if let Ok(mut g) = g.try_borrow_mut() {
            g.reserve(4);
        }
    });
}

/// Counts one more (`up`) or one fewer guard level of the lock at `addr` for
/// this thread.
fn add_guard_level(addr: usize, up: bool) {
    let me = current_tid();
    let _ = GUARD_LEVELS.try_with(|g| {
        let mut g = g.borrow_mut();
        g.retain(|e| e.0 == me); // a forked child's inherited entries
        match g.iter().position(|e| e.1 == addr) {
            Some(i) if up => g[i].2 += 1,
            Some(i) => {
                g[i].2 -= 1;
                if g[i].2 == 0 {
                    g.swap_remove(i);
                }
            }
            None if up => g.push((me, addr, 1)),
            None => {}
        }
    });
}

/// Holds one level of an [`RLock`]; releases it on drop.
///
/// A level held by a guard is released only by dropping the guard:
/// [`RLock::release`] refuses it ([`SyncError::HeldByGuard`]). That is what
/// makes a `Value`/`Array` guard's `&mut` sound: nothing can free the lock
/// under it.
#[must_use = "the lock is released when the guard is dropped"]
#[derive(Debug)]
pub struct RLockGuard<'a> {
    lock: &'a RLock,
    // Guards must be dropped by the thread that owns the lock.
    _not_send: core::marker::PhantomData<*const ()>,
}

impl Drop for RLockGuard<'_> {
    fn drop(&mut self) {
        // The guard's thread owns the lock (the guard is !Send) and its level
        // could not be released by `RLock::release`, so this succeeds.
        add_guard_level(self.lock.addr(), false);
        let _ = self.lock.raw.unlock(&ShmThread::current());
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
    #[doc(alias = "acquire")]
    pub fn try_acquire(&self) -> TryLockResult<()> {
        self.raw_acquire(None, true)
    }

    /// Acquires, waiting at most `timeout` (Python's `acquire(timeout=...)`).
    #[doc(alias = "acquire")]
    pub fn acquire_timeout(&self, timeout: Duration) -> TryLockResult<()> {
        self.raw_acquire(Some(timeout), false)
    }

    /// Releases one level. Only the owning thread may ([`SyncError::NotOwner`]),
    /// and only a level it took with `acquire`: a level held by a guard is
    /// released by dropping the guard ([`SyncError::HeldByGuard`]).
    ///
    /// ```
    /// use procshare::{RLock, SyncError};
    /// let r = RLock::new().unwrap();
    /// let g = r.lock().unwrap();
    /// assert!(matches!(r.release(), Err(SyncError::HeldByGuard)));
    /// r.acquire().unwrap();
    /// r.release().unwrap(); // the acquired level
    /// drop(g);
    /// ```
    pub fn release(&self) -> Result<(), SyncError> {
        let guarded = guard_levels(self.addr());
        // Levels are fungible: the guards' levels are safe while the depth
        // stays at least their number (`count` is exact for the owner, and
        // `guarded > 0` means this thread is the owner).
        if guarded > 0 && self.raw.count() <= guarded {
            return Err(SyncError::HeldByGuard);
        }
        #[cfg(feature = "history-mutants")]
        if crate::history_mutants::active(crate::history_mutants::RLOCK_RELEASE_DROPS_TWO)
            && self.raw.count() >= 2
        {
            let _ = self.raw.unlock(&ShmThread::current());
        }
        self.raw
            .unlock(&ShmThread::current())
            .map_err(|_| SyncError::NotOwner)
    }

    fn addr(&self) -> usize {
        self.raw.as_ptr() as usize
    }

    fn guard(&self) -> RLockGuard<'_> {
        add_guard_level(self.addr(), true);
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
    #[doc(alias = "locked")]
    pub fn is_locked(&self) -> bool {
        self.raw.is_locked()
    }

    /// Is it held by the calling thread? (Python's `_is_owned()`.)
    pub fn is_owned(&self) -> bool {
        self.raw.is_mine(&crate::platform::ShmThread::current())
    }

    /// The holder's kernel thread id, if held.
    pub fn owner(&self) -> Option<u32> {
        self.raw.owner().map(crate::platform::owner_tid)
    }

    /// The holder's recursion depth (0 when free; a snapshot for non-owners).
    pub fn count(&self) -> u32 {
        self.raw.count()
    }
}
