//! A robust recursive lock (CPython's `RLock`): the owner may acquire it again,
//! and it is free again once the owner has released it as many times.
//!
//! It is *not* a second lock algorithm: the owner word is a [`RawMutex`] (whose
//! word holds the owner's id, so "do I own it?" is one load and dead-owner
//! recovery is the mutex's), plus a recursion count that only the owner touches.
//!
//! ```
//! use procshare_model::rlock::{Acquired, NotOwner, RawRLock};
//! use procshare_model::shuttle_platform::{world, ModelThread, Shuttle};
//!
//! shuttle::check_random(|| {
//!     let w = world();
//!     let (a, b) = (ModelThread::new(&w, 1), ModelThread::new(&w, 2));
//!     let l = RawRLock::<Shuttle>::new();
//!     assert_eq!(l.lock(&a, None), Ok(Acquired::Clean));
//!     assert_eq!(l.lock(&a, None), Ok(Acquired::Clean)); // re-entrant
//!     assert_eq!(l.count(), 2);
//!     assert_eq!(l.unlock(&b), Err(NotOwner)); // not b's to release
//!     assert!(l.try_lock(&b).is_err());
//!     l.unlock(&a).unwrap();
//!     l.unlock(&a).unwrap();
//!     assert!(l.try_lock(&b).is_ok() && l.is_owned_by(2));
//! }, 1);
//! ```
//!
//! # Layout
//!
//! ```text
//! RawRLock (24 bytes, #[repr(C)], align 8)
//!   mutex: RawMutex   offset 0   the owner word (`owner id | WAITERS`, 0 when
//!                                free) and the owner's identity
//!   count: u32        offset 16  recursion depth of the current owner
//! ```
//!
//! # Invariants
//!
//! * `mutex` follows the [`RawMutex`] invariants; its owner id is the rlock's owner.
//! * `count` is read and written only by the thread whose id is in `mutex`, while
//!   it is there; its accesses are ordered by the mutex's Acquire/Release handoff,
//!   so `Relaxed` suffices.
//! * While the owner is between operations, `count >= 1`. The owner stores 0
//!   before it releases the mutex, and a new owner (or a recoverer) stores 1 right
//!   after acquiring it, so a stale value is never *used*: a recoverer resets the
//!   dead owner's depth rather than adding to it.
//! * "Is it mine?" is `mutex.owner() == Some(me)` *and* the mutex's identity
//!   word holds the caller's identity ([`RawMutex::held_by_me`]): a dead
//!   owner whose kernel id the caller was given wrote the same id, but not
//!   the same identity. Only the owner publishes its identity, right after
//!   winning the word, so `Relaxed` loads that return both are exact.
//!
//! # Owner death
//!
//! As for the mutex: the next acquirer learns that the owner died
//! ([`Acquired::OwnerDied`]), holds the lock with depth 1, and the dead owner's
//! recursion depth is forgotten.

use core::mem::offset_of;
use core::sync::atomic::Ordering::Relaxed;
use core::time::Duration;

use crate::mutex::RawMutex;
pub use crate::mutex::{Acquired, Timeout};
use crate::platform::{mutant, Mutant, Platform, Thread, Word32};

/// Seeded bug: `unlock` does not check the owner (any thread may release).
#[doc(hidden)]
pub const MUTANT_UNLOCK_ANY: Mutant = Mutant(201);
/// Seeded bug: a recoverer adds to the dead owner's recursion depth instead of
/// resetting it, so its own release leaves the lock held forever.
#[doc(hidden)]
pub const MUTANT_KEEP_DEAD_COUNT: Mutant = Mutant(202);
/// Seeded bug: the re-entrancy test is "locked by anyone" instead of "locked by
/// me" (a check-then-act race that lets a second thread in).
#[doc(hidden)]
pub const MUTANT_REENTER_ANY: Mutant = Mutant(203);

/// `unlock` by a thread that does not hold the lock (CPython: `RuntimeError:
/// cannot release un-acquired lock`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotOwner;

/// A robust, process-shared recursive lock. See the module documentation.
#[repr(C)]
pub struct RawRLock<P: Platform> {
    /// The owner word (a [`RawMutex`]).
    mutex: RawMutex<P>,
    /// The owner's recursion depth; touched only by the owner.
    count: P::W32,
}

impl<P: Platform> Default for RawRLock<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Platform> core::fmt::Debug for RawRLock<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RawRLock")
            .field("owner", &self.mutex.owner())
            .field("count", &self.count.load(Relaxed))
            .finish()
    }
}

impl<P: Platform> RawRLock<P> {
    /// The byte offset of each field of the layout table (its names, its
    /// order), as compiled: impl's `layout.rs` checks them against the table
    /// and hashes them into its layout fingerprint.
    #[doc(hidden)]
    pub const OFFSETS: &'static [(&'static str, usize)] = &[
        ("mutex", offset_of!(Self, mutex)),
        ("count", offset_of!(Self, count)),
    ];

    /// An unlocked recursive lock.
    pub fn new() -> Self {
        RawRLock {
            mutex: RawMutex::new(),
            count: P::W32::new(0),
        }
    }

    fn mine(&self, t: &P::Thread) -> bool {
        if mutant::<P>(MUTANT_REENTER_ANY) {
            return self.mutex.owner().is_some();
        }
        self.mutex.held_by_me(t)
    }

    /// Is it held by the caller (its id in the word and its identity
    /// published: a dead owner whose id the caller was given is not the
    /// caller)?
    pub fn is_mine(&self, t: &P::Thread) -> bool {
        self.mutex.held_by_me(t)
    }

    /// Acquire (again, if the caller already owns it), waiting at most `timeout`
    /// (`None`: forever). A re-entrant acquisition never waits and is always
    /// [`Acquired::Clean`]; the depth saturates at `u32::MAX`, beyond which
    /// acquisitions fail with [`Timeout`] (CPython raises `OverflowError`).
    pub fn lock(&self, t: &P::Thread, timeout: Option<Duration>) -> Result<Acquired, Timeout> {
        if self.mine(t) {
            return self.reenter(t);
        }
        let a = self.mutex.lock(t, timeout)?;
        self.first(t, a)
    }

    /// Acquire if that is possible without waiting (re-entrantly, or taking over
    /// a dead owner's lock: [`Acquired::OwnerDied`]).
    pub fn try_lock(&self, t: &P::Thread) -> Result<Acquired, Timeout> {
        if self.mine(t) {
            return self.reenter(t);
        }
        let a = self.mutex.try_lock(t)?;
        self.first(t, a)
    }

    fn reenter(&self, t: &P::Thread) -> Result<Acquired, Timeout> {
        let c = self.count.load(Relaxed);
        let Some(n) = c.checked_add(1) else {
            return Err(Timeout);
        };
        self.count.store(n, Relaxed);
        t.crash_point();
        Ok(Acquired::Clean)
    }

    fn first(&self, t: &P::Thread, a: Acquired) -> Result<Acquired, Timeout> {
        let depth = if a == Acquired::OwnerDied && mutant::<P>(MUTANT_KEEP_DEAD_COUNT) {
            self.count.load(Relaxed).saturating_add(1)
        } else {
            1
        };
        self.count.store(depth, Relaxed);
        t.crash_point();
        Ok(a)
    }

    /// Release once. Only the owner may release ([`NotOwner`] otherwise, and
    /// when the lock is not held at all); the lock is free once every
    /// acquisition has been released.
    pub fn unlock(&self, t: &P::Thread) -> Result<(), NotOwner> {
        if !mutant::<P>(MUTANT_UNLOCK_ANY) && !self.mutex.held_by_me(t) {
            return Err(NotOwner);
        }
        let c = self.count.load(Relaxed);
        if c > 1 {
            self.count.store(c - 1, Relaxed);
            t.crash_point();
            return Ok(());
        }
        self.count.store(0, Relaxed);
        t.crash_point();
        self.mutex.unlock(t).map_err(|_| NotOwner)
    }

    /// The current owner's recursion depth (0 when free). Exact for the owner;
    /// for any other thread a snapshot that may already be stale.
    pub fn count(&self) -> u32 {
        if self.mutex.is_locked() {
            self.count.load(Relaxed)
        } else {
            0
        }
    }

    /// Is the lock held by the thread with owner id `id`? (`t.id()` for "by me".)
    pub fn is_owned_by(&self, id: u32) -> bool {
        self.mutex.owner() == Some(id)
    }

    /// The owner's id, if held.
    pub fn owner(&self) -> Option<u32> {
        self.mutex.owner()
    }

    /// Is it held (by anyone)?
    pub fn is_locked(&self) -> bool {
        self.mutex.is_locked()
    }
}

#[cfg(all(test, feature = "checkers"))]
mod tests;
