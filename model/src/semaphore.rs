//! A counting semaphore, optionally bounded: the protocol behind `Semaphore` and
//! `BoundedSemaphore`.
//!
//! ```
//! use procshare_model::semaphore::{OverRelease, RawSemaphore};
//! use procshare_model::shuttle_platform::{world, ModelThread, Shuttle};
//!
//! shuttle::check_random(|| {
//!     let w = world();
//!     let t = ModelThread::new(&w, 1);
//!     let s = RawSemaphore::<Shuttle>::new(1, Some(1)); // a BoundedSemaphore(1)
//!     s.acquire(&t, None).unwrap();
//!     assert!(s.try_acquire(&t).is_err());
//!     s.release(&t, 1).unwrap();
//!     assert_eq!(s.release(&t, 1), Err(OverRelease)); // released too many times
//!     assert_eq!(s.value(), 1);
//! }, 1);
//! ```
//!
//! # Layout
//!
//! ```text
//! RawSemaphore (12 bytes, #[repr(C)])
//!   value:   u32   offset 0   permits available now (the futex word)
//!   waiters: u32   offset 4   threads in the slow path of `acquire` (a hint)
//!   bound:   u32   offset 8   the most permits `value` may hold; u32::MAX: unbounded
//! ```
//!
//! # Invariants
//!
//! * `0 <= value <= bound` at all times: `acquire` decrements only a nonzero
//!   value and `release` adds only by a CAS that re-checks the bound against the
//!   value it replaces, so concurrent releases can never overshoot it.
//! * `bound` never changes after `new`.
//! * A thread sleeps only on `value == 0`, and only after it has counted itself
//!   in `waiters` (a `SeqCst` RMW). `release` changes `value` and *then* reads
//!   `waiters` with a `SeqCst` RMW: of two RMWs on `waiters` one reads the
//!   other, so either the releaser sees the sleeper and wakes it, or the sleeper
//!   is ordered after the release and its futex wait sees `value != 0`. No
//!   wake-up is lost.
//! * `waiters` may over-count (a waiter that died inside `acquire` is never
//!   subtracted): that only costs a spare wake-up call.
//!
//! # Owner death
//!
//! Permits have no owner (as with POSIX semaphores and CPython's): a process that
//! dies holding a permit leaves the count one lower for good. Use a lock
//! ([`crate::mutex`], [`crate::rlock`]) when the holder must be recoverable.

use core::mem::offset_of;
use core::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
use core::time::Duration;

pub use crate::mutex::Timeout;
use crate::park::{park, Check, Waiters};
use crate::platform::{mutant, Mutant, Platform, Thread, Word32};

/// Seeded bug: `release` publishes the permit with `Relaxed` instead of `Release`.
#[doc(hidden)]
pub const MUTANT_RELAXED_RELEASE: Mutant = Mutant(301);
/// Seeded bug: `release` never wakes a sleeper.
#[doc(hidden)]
pub const MUTANT_NO_WAKE: Mutant = Mutant(302);
/// Seeded bug: `release` checks the bound, then adds (check-then-act): two
/// concurrent releases can push the value above the bound.
#[doc(hidden)]
pub const MUTANT_BOUND_RACE: Mutant = Mutant(303);
/// Seeded bug: the spin path of `acquire` hands out a permit when it sees one
/// without taking it (`||` for `&&`: a permit seen is taken for granted).
#[doc(hidden)]
pub const MUTANT_SPIN_NO_TAKE: Mutant = Mutant(304);

/// `release` would raise the value above the bound (CPython's
/// `BoundedSemaphore`: `ValueError: Semaphore released too many times`), or
/// above `u32::MAX` for an unbounded semaphore. Nothing was released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverRelease;

/// A process-shared counting semaphore. See the module documentation.
#[repr(C)]
pub struct RawSemaphore<P: Platform> {
    /// Permits available (futex word).
    value: P::W32,
    /// Threads in the slow path of `acquire` (may over-count).
    waiters: P::W32,
    /// Upper bound of `value` (`u32::MAX`: none).
    bound: P::W32,
}

impl<P: Platform> core::fmt::Debug for RawSemaphore<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RawSemaphore")
            .field("value", &self.value.load(Relaxed))
            .field("waiters", &self.waiters.load(Relaxed))
            .field("bound", &self.bound())
            .finish()
    }
}

impl<P: Platform> RawSemaphore<P> {
    /// The byte offset of each field of the layout table (its names, its
    /// order), as compiled: impl's `layout.rs` checks them against the table
    /// and hashes them into its layout fingerprint.
    #[doc(hidden)]
    pub const OFFSETS: &'static [(&'static str, usize)] = &[
        ("value", offset_of!(Self, value)),
        ("waiters", offset_of!(Self, waiters)),
        ("bound", offset_of!(Self, bound)),
    ];

    /// A semaphore holding `value` permits; with `bound`, releases may never
    /// raise it above `bound` (a `BoundedSemaphore` uses `bound = Some(value)`).
    /// A `value` above the bound is clamped to it.
    pub fn new(value: u32, bound: Option<u32>) -> Self {
        let bound = bound.unwrap_or(u32::MAX);
        RawSemaphore {
            value: P::W32::new(value.min(bound)),
            waiters: P::W32::new(0),
            bound: P::W32::new(bound),
        }
    }

    /// The bound, if bounded.
    pub fn bound(&self) -> Option<u32> {
        match self.bound.load(Relaxed) {
            u32::MAX => None,
            b => Some(b),
        }
    }

    /// Permits available now (a snapshot).
    pub fn value(&self) -> u32 {
        self.value.load(Relaxed)
    }

    /// Take one permit if one is available now.
    fn take(&self, t: &P::Thread) -> Result<(), u32> {
        let mut v = self.value.load(Relaxed);
        while v != 0 {
            match self.value.cas(v, v - 1, Acquire, Relaxed) {
                Ok(_) => {
                    t.crash_point();
                    return Ok(());
                }
                Err(x) => v = x,
            }
        }
        Err(0)
    }

    /// Take one permit if that is possible without waiting.
    pub fn try_acquire(&self, t: &P::Thread) -> Result<(), Timeout> {
        self.take(t).map_err(|_| Timeout)
    }

    /// Take one permit, waiting at most `timeout` (`None`: forever).
    pub fn acquire(&self, t: &P::Thread, timeout: Option<Duration>) -> Result<(), Timeout> {
        if self.take(t).is_ok() {
            return Ok(());
        }
        let mut i = 0;
        while t.spin(i) {
            i += 1;
            let seen = self.value.load(Relaxed) != 0;
            if mutant::<P>(MUTANT_SPIN_NO_TAKE) {
                if seen || self.take(t).is_ok() {
                    return Ok(());
                }
            } else if seen && self.take(t).is_ok() {
                return Ok(());
            }
        }
        let dl = t.deadline(timeout);
        // The announcement is the count in `waiters`, not a bit of the futex
        // word: the loop is `park`'s with no waiters bit.
        self.waiters.fetch_add(1, SeqCst);
        t.crash_point();
        let r = park::<P, _>(
            t,
            &self.value,
            Waiters::NONE,
            &dl,
            self.value.load(Relaxed),
            |v| {
                if v == 0 {
                    return Check::Sleep;
                }
                match self.value.cas(v, v - 1, Acquire, Relaxed) {
                    Ok(_) => {
                        t.crash_point();
                        Check::Done(Ok(()))
                    }
                    Err(x) => Check::Look(x),
                }
            },
            // At the deadline, one last try: a permit released just now is
            // taken; otherwise it is left for the others.
            |_, expired| expired.then(|| self.take(t).map_err(|_| Timeout)),
        );
        self.waiters.fetch_sub(1, Relaxed);
        t.crash_point();
        r
    }

    /// Return `n` permits and wake up to `n` sleepers. Fails, releasing
    /// nothing, if that would raise the value above the bound.
    pub fn release(&self, t: &P::Thread, n: u32) -> Result<(), OverRelease> {
        if n == 0 {
            return Ok(());
        }
        let bound = self.bound.load(Relaxed);
        let order = if mutant::<P>(MUTANT_RELAXED_RELEASE) {
            Relaxed
        } else {
            Release
        };
        if mutant::<P>(MUTANT_BOUND_RACE) {
            let v = self.value.load(Relaxed);
            if !matches!(v.checked_add(n), Some(x) if x <= bound) {
                return Err(OverRelease);
            }
            t.crash_point();
            self.value.fetch_add(n, order);
        } else {
            let mut v = self.value.load(Relaxed);
            loop {
                let new = match v.checked_add(n) {
                    Some(x) if x <= bound => x,
                    _ => return Err(OverRelease),
                };
                match self.value.cas(v, new, order, Relaxed) {
                    Ok(_) => break,
                    Err(x) => v = x,
                }
            }
        }
        t.crash_point();
        // An RMW, not a load: it reads the latest count (see the invariants).
        if self.waiters.fetch_add(0, SeqCst) != 0 && !mutant::<P>(MUTANT_NO_WAKE) {
            t.wake(&self.value, n);
        }
        Ok(())
    }
}

#[cfg(all(test, feature = "checkers"))]
mod tests;
