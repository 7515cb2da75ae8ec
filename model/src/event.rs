//! An event flag (CPython's `Event`): `set` releases every waiter, `clear` resets it.
//!
//! ```
//! use procshare_model::event::RawEvent;
//! use procshare_model::shuttle_platform::{world, ModelThread, Shuttle};
//! use std::sync::Arc;
//!
//! shuttle::check_random(|| {
//!     let w = world();
//!     let e = Arc::new(RawEvent::<Shuttle>::new());
//!     let (e2, w2) = (e.clone(), w.clone());
//!     let h = shuttle::thread::spawn(move || e2.wait(&ModelThread::new(&w2, 2), None));
//!     e.set(&ModelThread::new(&w, 1));
//!     assert!(h.join().unwrap() && e.is_set());
//!     e.clear();
//!     assert!(!e.is_set());
//! }, 10);
//! ```
//!
//! # Layout
//!
//! ```text
//! RawEvent (4 bytes, #[repr(C)])
//!   state: u32   bit 0       SET: the flag
//!                bits 1..=30 generation: incremented (wrapping) by every set of a clear flag
//!                bit 31      WAITERS: somebody may be sleeping on the word
//! ```
//!
//! # Invariants
//!
//! * A waiter sleeps only while the word holds the exact value it read with
//!   `SET` clear and `WAITERS` set. Every `set` of a clear flag changes the
//!   generation, so it either makes that sleep return `Mismatch` or, having seen
//!   `WAITERS`, wakes every sleeper.
//! * A waiter returns `true` once the flag is set *or* the generation differs
//!   from the one it started with: a `set` immediately followed by `clear` still
//!   releases everyone who was waiting (CPython's semantics: `wait` returns
//!   `True` when woken by `set`, whatever the flag is by then).
//! * `set` publishes with `Release` and waiters read with `Acquire`: what the
//!   setter wrote before `set` is visible to every released waiter.
//! * A setter that dies between its CAS and its wake-up leaves sleepers asleep
//!   only until the platform's liveness poll, after which they re-read the word
//!   (with an RMW, so that they read the latest value) and see the new generation.
//! * The generation wraps after 2^30 sets; a waiter that sleeps through exactly
//!   a multiple of 2^30 sets (while the flag is clear each time it looks) would
//!   miss them. That is not a practical concern.

use core::mem::offset_of;
use core::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use core::time::Duration;

use crate::park::{park, Check, Waiters};
use crate::platform::{mutant, Mutant, Platform, Thread, Word32};

/// The flag bit.
pub const SET: u32 = 1;
/// Somebody may be sleeping on the word.
pub const WAITERS: u32 = 0x8000_0000;
const GEN_MASK: u32 = 0x7fff_fffe;

/// Seeded bug: `set` publishes with `Relaxed` instead of `Release`.
#[doc(hidden)]
pub const MUTANT_RELAXED_SET: Mutant = Mutant(401);
/// Seeded bug: `set` never wakes the sleepers.
#[doc(hidden)]
pub const MUTANT_NO_WAKE: Mutant = Mutant(402);
/// Seeded bug: a waiter announces itself with a plain store of the value it
/// read plus `WAITERS` (check-then-act), which can undo a concurrent `set`.
#[doc(hidden)]
pub const MUTANT_WAITERS_STORE: Mutant = Mutant(403);

/// A process-shared event flag. See the module documentation.
#[repr(C)]
pub struct RawEvent<P: Platform> {
    /// `WAITERS | generation << 1 | SET`.
    state: P::W32,
}

impl<P: Platform> Default for RawEvent<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Platform> core::fmt::Debug for RawEvent<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RawEvent")
            .field("state", &format_args!("{:#x}", self.state.load(Relaxed)))
            .finish()
    }
}

impl<P: Platform> RawEvent<P> {
    /// The byte offset of each field of the layout table (its names, its
    /// order), as compiled: impl's `layout.rs` checks them against the table
    /// and hashes them into its layout fingerprint.
    #[doc(hidden)]
    pub const OFFSETS: &'static [(&'static str, usize)] = &[("state", offset_of!(Self, state))];

    /// A clear event.
    pub fn new() -> Self {
        RawEvent {
            state: P::W32::new(0),
        }
    }

    /// Is the flag set?
    pub fn is_set(&self) -> bool {
        self.state.load(Acquire) & SET != 0
    }

    /// Set the flag and release every waiter. Setting a set flag does nothing.
    pub fn set(&self, t: &P::Thread) {
        let order = if mutant::<P>(MUTANT_RELAXED_SET) {
            Relaxed
        } else {
            Release
        };
        let mut v = self.state.load(Relaxed);
        loop {
            if v & SET != 0 {
                return;
            }
            let new = (v.wrapping_add(2) & GEN_MASK) | SET;
            match self.state.cas(v, new, order, Relaxed) {
                Ok(_) => break,
                Err(x) => v = x,
            }
        }
        t.crash_point();
        if v & WAITERS != 0 && !mutant::<P>(MUTANT_NO_WAKE) {
            t.wake(&self.state, u32::MAX);
        }
    }

    /// Clear the flag (the generation and the waiters bit stay).
    pub fn clear(&self) {
        self.state.fetch_and(!SET, Relaxed);
    }

    /// Wait until the flag is set, at most `timeout` (`None`: forever). Returns
    /// `true` if it was set before or during the wait (even if cleared again
    /// since), `false` on timeout — CPython's `Event.wait`.
    pub fn wait(&self, t: &P::Thread, timeout: Option<Duration>) -> bool {
        let v = self.state.load(Acquire);
        if v & SET != 0 {
            return true;
        }
        let gen = v & GEN_MASK;
        let dl = t.deadline(timeout);
        let released = |v: u32| v & SET != 0 || v & GEN_MASK != gen;
        park::<P, _>(
            t,
            &self.state,
            Waiters::bit(WAITERS).by_store(mutant::<P>(MUTANT_WAITERS_STORE)),
            &dl,
            v,
            |v| {
                if released(v) {
                    Check::Done(true)
                } else {
                    Check::Sleep
                }
            },
            |v, expired| expired.then(|| released(v)),
        )
    }
}

#[cfg(all(test, feature = "checkers"))]
mod tests;
