//! The unfinished-task counter of a joinable queue (Python's
//! `JoinableQueue`): `add` counts new tasks, `done` marks one finished and
//! refuses to go below zero, `wait_zero` sleeps until none is left.
//!
//! ```
//! use procshare_model::task_counter::RawTaskCounter;
//! use procshare_model::shuttle_platform::{world, ModelThread, Shuttle};
//! use std::sync::Arc;
//!
//! shuttle::check_random(|| {
//!     let w = world();
//!     let c = Arc::new(RawTaskCounter::<Shuttle>::new());
//!     c.add(2).unwrap();
//!     let (c2, w2) = (c.clone(), w.clone());
//!     let h = shuttle::thread::spawn(move || {
//!         let t = ModelThread::new(&w2, 2);
//!         c2.done(&t).unwrap();
//!         c2.done(&t).unwrap();
//!     });
//!     assert!(c.wait_zero(&ModelThread::new(&w, 1), None));
//!     assert_eq!(c.count(), 0);
//!     assert!(c.done(&ModelThread::new(&w, 1)).is_err());
//!     h.join().unwrap();
//! }, 10);
//! ```
//!
//! # Layout
//!
//! ```text
//! RawTaskCounter (4 bytes, #[repr(C)])
//!   count: u32   the number of unfinished tasks (all 32 bits; never wraps)
//! ```
//!
//! # Invariants
//!
//! * `count` only changes by read-modify-write operations (CAS loops), so it
//!   never wraps: `add` refuses to pass `u32::MAX` ([`Overflow`]) and `done`
//!   refuses to pass zero ([`TooManyDone`]), even when callers race.
//! * Every modification is an RMW with `Release` (and `Acquire`) ordering, so
//!   all of them form one release sequence: a waiter that reads 0 with
//!   `Acquire` sees everything written before *every* `done`, not only the
//!   last one.
//! * A waiter sleeps only while the word holds the nonzero value it read. The
//!   `done` that takes the count to 0 changes the word first (so a sleep that
//!   has not begun returns `Mismatch`) and then wakes every sleeper: no
//!   wake-up is lost. There is no waiters flag: the wake-all is one syscall per
//!   drain to zero, which is rare compared with `add`/`done`.
//! * A `done` that dies between its CAS and its wake-up leaves sleepers asleep
//!   only until the platform's liveness poll, after which they re-read the
//!   word with an RMW (the latest value) and see 0.
//! * A task whose worker dies is never marked done: `wait_zero(None)` then
//!   waits forever, exactly as Python's `JoinableQueue.join` does; use a
//!   timeout to give up.

use core::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use core::time::Duration;

use crate::platform::{mutant, Mutant, Platform, Thread, Woke, Word32};

/// Seeded bug: `done` decrements with `Relaxed` instead of `Release`.
pub const MUTANT_RELAXED_DONE: Mutant = Mutant(901);
/// Seeded bug: `done` never wakes the waiters when the count reaches zero.
pub const MUTANT_NO_WAKE: Mutant = Mutant(902);
/// Seeded bug: `done` decrements with a load then a plain store (check-then-act),
/// so two racing calls can both succeed on a count of 1.
pub const MUTANT_LOAD_STORE_DONE: Mutant = Mutant(903);

/// `add` would take the count past `u32::MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overflow;

impl core::fmt::Display for Overflow {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "too many unfinished tasks (the counter would pass {})",
            u32::MAX
        )
    }
}

impl std::error::Error for Overflow {}

/// `done` was called more times than tasks were added (Python's
/// `ValueError: task_done() called too many times`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyDone;

impl core::fmt::Display for TooManyDone {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("task_done() called too many times")
    }
}

impl std::error::Error for TooManyDone {}

/// A process-shared unfinished-task counter. See the module documentation.
#[repr(C)]
pub struct RawTaskCounter<P: Platform> {
    /// Unfinished tasks; the futex word `wait_zero` sleeps on.
    count: P::W32,
}

impl<P: Platform> Default for RawTaskCounter<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Platform> core::fmt::Debug for RawTaskCounter<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RawTaskCounter")
            .field("count", &self.count.load(Relaxed))
            .finish()
    }
}

impl<P: Platform> RawTaskCounter<P> {
    /// A counter at zero.
    pub fn new() -> Self {
        RawTaskCounter {
            count: P::W32::new(0),
        }
    }

    /// The number of unfinished tasks (a snapshot).
    pub fn count(&self) -> u32 {
        self.count.load(Acquire)
    }

    /// Count `n` more unfinished tasks. Fails (changing nothing) if the count
    /// would pass `u32::MAX`.
    pub fn add(&self, n: u32) -> Result<(), Overflow> {
        let mut cur = self.count.load(Relaxed);
        loop {
            let new = cur.checked_add(n).ok_or(Overflow)?;
            match self.count.cas(cur, new, AcqRel, Relaxed) {
                Ok(_) => return Ok(()),
                Err(v) => cur = v,
            }
        }
    }

    /// Mark one task finished; wakes every waiter when the count reaches 0.
    /// Fails (changing nothing) if the count is already 0.
    pub fn done(&self, t: &P::Thread) -> Result<(), TooManyDone> {
        let mut cur = self.count.load(Relaxed);
        if mutant::<P>(MUTANT_LOAD_STORE_DONE) {
            if cur == 0 {
                return Err(TooManyDone);
            }
            t.crash_point();
            self.count.store(cur - 1, Release);
        } else {
            let order = if mutant::<P>(MUTANT_RELAXED_DONE) {
                Relaxed
            } else {
                AcqRel
            };
            loop {
                if cur == 0 {
                    return Err(TooManyDone);
                }
                match self.count.cas(cur, cur - 1, order, Relaxed) {
                    Ok(_) => break,
                    Err(v) => cur = v,
                }
            }
        }
        t.crash_point();
        if cur == 1 && !mutant::<P>(MUTANT_NO_WAKE) {
            t.wake(&self.count, u32::MAX);
        }
        Ok(())
    }

    /// Wait until the count is 0, at most `timeout` (`None`: forever). Returns
    /// whether it was 0; what was written before every `done` is then visible.
    pub fn wait_zero(&self, t: &P::Thread, timeout: Option<Duration>) -> bool {
        let mut v = self.count.load(Acquire);
        if v == 0 {
            return true;
        }
        let dl = t.deadline(timeout);
        loop {
            if v == 0 {
                return true;
            }
            if t.wait(&self.count, v, &dl) == Woke::TimedOut {
                // The deadline or the liveness poll (a `done` may have died
                // between its CAS and its wake-up): re-read with an RMW, which
                // returns the latest value, not merely a recent one.
                v = self.count.fetch_add(0, Acquire);
                if t.expired(&dl) {
                    return v == 0;
                }
                continue;
            }
            v = self.count.load(Acquire);
        }
    }
}

#[cfg(all(test, feature = "checkers"))]
mod tests;
