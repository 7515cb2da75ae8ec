//! `Condition` over the model's [`RawCondition`].

use core::cell::RefCell;
use core::time::Duration;

use procshare_model::condition::{CondError, RawCondition, Waited};
use procshare_model::mutex::Acquired;

use super::{AnyGuard, AnyLock, LockResult, OwnerDied, RLock, SyncError, TryLockResult};
use crate::platform::{current_tid, Shm, ShmThread};
use crate::shm::{ShmBox, ShmError, ShmSafe};

// SAFETY: RawCondition<Shm> is #[repr(C)]: a ShmWord64 (state) and two
// ShmWord32 (seq, spare): no pointers, no padding, no drop glue; every bit
// pattern is a state the protocol handles (counters saturate, never index).
unsafe impl ShmSafe for RawCondition<Shm> {}
// The layout documented in procshare_model::condition (state 0, seq 8, spare 12).
crate::shm::layout::assert_shm_layout!(RawCondition<Shm> { size: 16, align: 8 });
// Its field offsets are stated in shm/layout.rs (`assert_model_offsets!`).

thread_local! {
    /// The levels of a condition's `RLock` this thread holds through the
    /// condition (its guards and `acquire`): `(tid, address of the lock's
    /// RawRLock, levels)`. `wait` releases every level of the lock, which is
    /// sound only if none of them is held by another guard (a `Value`'s
    /// `&mut T`): it checks that the lock's depth equals these levels. The
    /// tid makes a forked child ignore its parent's entries.
    static COND_LEVELS: RefCell<Vec<(u32, usize, u32)>> = const { RefCell::new(Vec::new()) };
}

fn cond_levels(addr: usize) -> u32 {
    let me = current_tid();
    COND_LEVELS
        .try_with(|c| {
            c.borrow()
                .iter()
                .find(|e| e.0 == me && e.1 == addr)
                .map_or(0, |e| e.2)
        })
        .unwrap_or(0)
}

fn add_cond_level(addr: usize, up: bool) {
    let me = current_tid();
    let _ = COND_LEVELS.try_with(|c| {
        let mut c = c.borrow_mut();
        c.retain(|e| e.0 == me);
        match c.iter().position(|e| e.1 == addr) {
            Some(i) if up => c[i].2 += 1,
            Some(i) => {
                c[i].2 -= 1;
                if c[i].2 == 0 {
                    c.swap_remove(i);
                }
            }
            None if up => c.push((me, addr, 1)),
            None => {}
        }
    });
}

/// A process-shared condition variable (Python's `multiprocessing.Condition`).
///
/// It is used with a lock: its own [`RLock`] ([`Condition::new`], CPython's
/// `Condition()`), or a given [`Lock`](crate::Lock) or [`RLock`]
/// ([`Condition::with_lock`], CPython's `Condition(lock)`). Lock it
/// ([`Condition::lock`]), check your predicate, and [`wait`](Condition::wait)
/// (which releases the lock while it sleeps and holds it again on return);
/// another process changes the state under the lock and
/// [`notify`](Condition::notify)s.
///
/// ```
/// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
/// use procshare::{Condition, Process, Value};
/// let cond = Condition::new().unwrap();
/// let ready = Value::new(0u8).unwrap();
/// let mut p = Process::new({
///     let (cond, ready) = (cond.clone(), ready.clone());
///     move || {
///         let _g = cond.lock().unwrap();
///         ready.set(1);
///         cond.notify(1).unwrap();
///     }
/// });
/// p.start().unwrap();
/// let mut g = cond.lock().unwrap();
/// while ready.get() == 0 {
///     g = cond.wait(g).unwrap();
/// }
/// drop(g);
/// p.join().unwrap();
/// ```
///
/// # Semantics
///
/// * `notify(n)` releases `min(n, waiting)` of the waiters waiting *now*; a
///   waiter that starts waiting later never takes it (no stolen wake-ups),
///   and a notification that races a waiter's timeout is taken, not lost.
/// * **A waiter killed while it waits** (even by `kill -9`) does not swallow
///   a notification: notifications are not handed to a particular waiter,
///   every waiter is woken and the live ones take them. Its registration stays
///   counted, so after `d` such deaths a `notify(n)` may release up to `n + d`
///   waiters: re-check your predicate after `wait` (or use
///   [`wait_for`](Condition::wait_for)), as CPython's documentation asks.
/// * **A holder of the lock that dies** (a notifier killed before it
///   notified, say) does not leave the waiters asleep: one of them recovers the
///   lock and its `wait` returns [`OwnerDied`] (holding the guard), as
///   [`Lock::lock`](crate::Lock::lock) does. CPython hangs in both cases.
/// * `notify` does not wait for the woken waiters (CPython's does, which is
///   why it hangs when a woken waiter dies).
///
/// `Clone` gives another handle onto the same condition (and lock).
#[derive(Clone)]
pub struct Condition {
    raw: ShmBox<RawCondition<Shm>>,
    lock: AnyLock,
}

impl core::fmt::Debug for Condition {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Condition")
            .field("lock", &self.lock)
            .field("waiting", &self.raw.waiting())
            .finish()
    }
}

/// Holds a [`Condition`]'s lock; releases it on drop. Pass it to
/// [`Condition::wait`] and friends.
#[must_use = "the lock is released when the guard is dropped"]
#[derive(Debug)]
pub struct ConditionGuard<'a> {
    cond: &'a Condition,
    guard: Option<AnyGuard<'a>>,
    // Held by the thread that locked (the lock knows its owner thread).
    _not_send: core::marker::PhantomData<*const ()>,
}

impl Drop for ConditionGuard<'_> {
    fn drop(&mut self) {
        if let AnyLock::RLock(r) = &self.cond.lock {
            add_cond_level(rlock_addr(r), false);
        }
        drop(self.guard.take());
    }
}

impl ConditionGuard<'_> {
    /// The condition this guard holds the lock of.
    pub fn condition(&self) -> &Condition {
        self.cond
    }
}

fn rlock_addr(r: &RLock) -> usize {
    r.raw.as_ptr() as usize
}

fn lock_addr(l: &AnyLock) -> usize {
    match l {
        AnyLock::Lock(l) => l.raw.as_ptr() as usize,
        AnyLock::RLock(r) => rlock_addr(r),
    }
}

impl Condition {
    /// A new condition with its own new [`RLock`] (Python's `Condition()`).
    pub fn new() -> Result<Condition, ShmError> {
        Self::with_lock(RLock::new()?)
    }

    /// A new condition over `lock`, a [`Lock`](crate::Lock) or an [`RLock`]
    /// (Python's `Condition(lock)`). Other handles onto the lock keep working
    /// as usual, and several conditions may share one lock:
    ///
    /// ```
    /// use procshare::{Condition, Lock};
    /// use std::time::Duration;
    /// let lock = Lock::new().unwrap();
    /// let not_empty = Condition::with_lock(lock.clone()).unwrap();
    /// let not_full = Condition::with_lock(lock).unwrap();
    /// let g = not_empty.lock().unwrap();
    /// // The guard holds the lock both conditions use.
    /// let (g, notified) = not_full.wait_timeout(g, Duration::from_millis(1)).unwrap();
    /// assert!(!notified);
    /// not_full.notify(1).unwrap();
    /// drop(g);
    /// assert!(not_full.notify(1).is_err()); // the lock is not held any more
    /// ```
    pub fn with_lock(lock: impl Into<AnyLock>) -> Result<Condition, ShmError> {
        Ok(Condition {
            raw: ShmBox::new(RawCondition::new())?,
            lock: lock.into(),
        })
    }

    /// The lock (Python's `cond._lock`).
    pub fn get_lock(&self) -> &AnyLock {
        &self.lock
    }

    fn guard<'a>(&'a self, g: AnyGuard<'a>) -> ConditionGuard<'a> {
        if let AnyLock::RLock(r) = &self.lock {
            add_cond_level(rlock_addr(r), true);
        }
        ConditionGuard {
            cond: self,
            guard: Some(g),
            _not_send: core::marker::PhantomData,
        }
    }

    /// Acquires the lock (Python's `with cond:` / `cond.acquire()`).
    /// [`OwnerDied`] (holding the guard) if a holder died.
    pub fn lock(&self) -> LockResult<ConditionGuard<'_>> {
        self.lock
            .lock()
            .map(|g| self.guard(g))
            .map_err(|o| o.map(|g| self.guard(g)))
    }

    /// [`Condition::lock`] without waiting.
    pub fn try_lock(&self) -> TryLockResult<ConditionGuard<'_>> {
        self.lock
            .try_lock()
            .map(|g| self.guard(g))
            .map_err(|e| e.map(|g| self.guard(g)))
    }

    /// [`Condition::lock`] waiting at most `timeout`.
    pub fn lock_timeout(&self, timeout: Duration) -> TryLockResult<ConditionGuard<'_>> {
        self.lock
            .lock_timeout(timeout)
            .map(|g| self.guard(g))
            .map_err(|e| e.map(|g| self.guard(g)))
    }

    /// Runs the model's wait (`pred`: `wait_for`'s predicate) with the lock
    /// held by `g`; `(notified, acquired)`.
    fn raw_wait(
        &self,
        g: &ConditionGuard<'_>,
        timeout: Option<Duration>,
        pred: Option<&mut dyn FnMut() -> bool>,
    ) -> (bool, Acquired) {
        // A guard of any condition over the same lock will do (CPython's
        // several conditions sharing one lock).
        assert!(
            lock_addr(&g.cond.lock) == lock_addr(&self.lock),
            "the guard given to Condition::wait does not hold this condition's lock"
        );
        let t = ShmThread::current();
        let r = match &self.lock {
            AnyLock::Lock(l) => match pred {
                Some(p) => self.raw.wait_for(&t, &*l.raw, timeout, p),
                None => self.raw.wait(&t, &*l.raw, timeout),
            },
            AnyLock::RLock(r) => {
                // Waiting releases every level: none may be another guard's.
                assert!(
                    r.count() <= cond_levels(rlock_addr(r)),
                    "Condition::wait while this thread holds the condition's RLock through \
                     something else than the condition (a Value/Array guard, an RLock guard or \
                     acquire): waiting would release that level too"
                );
                match pred {
                    Some(p) => self.raw.wait_for(&t, &*r.raw, timeout, p),
                    None => self.raw.wait(&t, &*r.raw, timeout),
                }
            }
        };
        match r {
            Ok(Waited { notified, acquired }) => (notified, acquired),
            // The lock was released behind the guard's back (any thread may
            // release a `Lock`): nothing was waited for.
            Err(CondError::NotOwner) => (false, Acquired::Clean),
            // More than 2^21 - 1 waiters: treated as a spurious wake-up.
            Err(CondError::TooManyWaiters) => (false, Acquired::Clean),
        }
    }

    /// Releases the lock, waits until notified, holds the lock again
    /// (Python's `cond.wait()`). [`OwnerDied`] (holding the guard) if a holder
    /// of the lock died meanwhile: then this call returns without a
    /// notification (the dead holder may have been the notifier).
    ///
    /// # Panics
    ///
    /// If `g` does not hold this condition's lock (a guard of another
    /// condition over the same lock will do). If the lock is an [`RLock`]
    /// that this thread also holds other than through a condition (a `Value`
    /// guard over the same lock, say): waiting releases every level, which
    /// would free that guard's data.
    ///
    /// ```should_panic
    /// use procshare::{Condition, RLock, Value};
    /// let l = RLock::new().unwrap();
    /// let v = Value::with_lock(0i32, l.clone()).unwrap();
    /// let c = Condition::with_lock(l).unwrap();
    /// let g = c.lock().unwrap();
    /// let data = v.lock().unwrap(); // a `&mut i32` through the same RLock
    /// // Panics: waiting would let other processes write `*data` meanwhile.
    /// let _ = c.wait_timeout(g, std::time::Duration::from_millis(1));
    /// ```
    pub fn wait<'a>(&'a self, g: ConditionGuard<'a>) -> LockResult<ConditionGuard<'a>> {
        let (_, a) = self.raw_wait(&g, None, None);
        match a {
            Acquired::Clean => Ok(g),
            Acquired::OwnerDied => Err(OwnerDied::new(g)),
        }
    }

    /// [`Condition::wait`] at most `timeout`; the `bool` is `false` if the
    /// timeout passed without a notification (Python's `cond.wait(timeout)`).
    pub fn wait_timeout<'a>(
        &'a self,
        g: ConditionGuard<'a>,
        timeout: Duration,
    ) -> LockResult<(ConditionGuard<'a>, bool)> {
        let (n, a) = self.raw_wait(&g, Some(timeout), None);
        match a {
            Acquired::Clean => Ok((g, n)),
            Acquired::OwnerDied => Err(OwnerDied::new((g, n))),
        }
    }

    /// Waits until `pred()` is true (checked first, then after each
    /// notification, always with the lock held), at most `timeout` (`None`:
    /// forever); returns the predicate's last value (Python's
    /// `cond.wait_for(predicate, timeout)`). Stops early with [`OwnerDied`] if
    /// a holder of the lock died.
    ///
    /// ```
    /// use procshare::Condition;
    /// use std::time::Duration;
    /// let c = Condition::new().unwrap();
    /// let g = c.lock().unwrap();
    /// let (g, ok) = c.wait_for(g, Some(Duration::from_millis(10)), || false).unwrap();
    /// assert!(!ok); // timed out
    /// drop(g);
    /// ```
    pub fn wait_for<'a>(
        &'a self,
        g: ConditionGuard<'a>,
        timeout: Option<Duration>,
        mut pred: impl FnMut() -> bool,
    ) -> LockResult<(ConditionGuard<'a>, bool)> {
        let (n, a) = self.raw_wait(&g, timeout, Some(&mut pred));
        match a {
            Acquired::Clean => Ok((g, n)),
            Acquired::OwnerDied => Err(OwnerDied::new((g, n))),
        }
    }

    fn raw_notify(&self, n: u32) -> Result<u32, SyncError> {
        let t = ShmThread::current();
        let r = match &self.lock {
            AnyLock::Lock(l) => self.raw.notify(&t, &*l.raw, n),
            AnyLock::RLock(r) => self.raw.notify(&t, &*r.raw, n),
        };
        r.map_err(|_| SyncError::NotOwner)
    }

    /// Wakes up to `n` of the processes (threads) waiting now (Python's
    /// `cond.notify(n)`). The calling thread must hold the lock
    /// ([`SyncError::NotOwner`], CPython's `AssertionError: lock is not
    /// owned`). Returns at once: it does not wait for the woken waiters.
    pub fn notify(&self, n: u32) -> Result<(), SyncError> {
        self.raw_notify(n).map(|_| ())
    }

    /// Wakes every process (thread) waiting now (Python's `cond.notify_all()`).
    pub fn notify_all(&self) -> Result<(), SyncError> {
        self.raw_notify(u32::MAX).map(|_| ())
    }

    /// Waiters registered now (a snapshot; a waiter that died while waiting
    /// stays counted).
    pub fn n_waiting(&self) -> u32 {
        self.raw.waiting()
    }
}
