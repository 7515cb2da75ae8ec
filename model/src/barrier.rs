//! A reusable barrier (CPython's `Barrier`): `parties` threads call
//! [`RawBarrier::wait`]; all are released together once the last arrives, and
//! the barrier is ready for the next generation. With
//! [`RawBarrier::wait_with`], the last arrival runs an *action* before anyone
//! is released (CPython's `action=`).
//!
//! ```
//! use procshare_model::barrier::{BarrierError, RawBarrier};
//! use procshare_model::shuttle_platform::{world, ModelThread, Shuttle};
//! use std::sync::Arc;
//!
//! shuttle::check_random(|| {
//!     let w = world();
//!     let b = Arc::new(RawBarrier::<Shuttle>::new(2).unwrap());
//!     let (b2, w2) = (b.clone(), w.clone());
//!     let h = shuttle::thread::spawn(move || b2.wait(&ModelThread::new(&w2, 2), None));
//!     let mine = b.wait(&ModelThread::new(&w, 1), None).unwrap();
//!     let theirs = h.join().unwrap().unwrap();
//!     assert_eq!(mine + theirs, 1); // arrival indices 0 and 1
//!     let t = ModelThread::new(&w, 1);
//!     b.abort(&t);
//!     assert_eq!(b.wait(&t, None), Err(BarrierError::Broken));
//!     b.reset(&t);
//!     assert!(!b.broken());
//! }, 10);
//! ```
//!
//! # Layout
//!
//! ```text
//! RawBarrier (8 bytes, #[repr(C)])
//!   state:   u32   offset 0   the futex word:
//!                    bits 0..=11   count: parties arrived in this generation;
//!                                  `parties` while the last arrival runs the action
//!                    bits 12..=27  generation (wrapping, 16 bits)
//!                    bits 28..=30  broken ends: how many of the most recent
//!                                  generations ended broken (by `reset` of a
//!                                  broken or occupied barrier), saturating at 7;
//!                                  0 after a release
//!                    bit 31        BROKEN: this generation is broken
//!   parties: u32   offset 4   1..=MAX_PARTIES, never changes
//! ```
//!
//! # Invariants
//!
//! * `count < parties`. Arrival is one CAS that adds 1 to `count` of the very
//!   generation the caller saw, so arrival indices in a generation are distinct
//!   and dense; the arrival that would make `count == parties` instead ends the
//!   generation (count 0, generation + 1, broken ends 0) and wakes everyone.
//! * A generation ends exactly once: by that release, or broken (`abort`, a
//!   timeout, then `reset`). A waiter of generation `g` that sees generation
//!   `g' != g` with `s` broken ends knows the generations `g'-s .. g'-1` ended
//!   broken: it returns [`BarrierError::Broken`] if `g'-g <= s`, else released.
//!   This is exact whenever at most `parties` threads use the barrier (a later
//!   generation cannot be *released* without the waiter); with more, a waiter
//!   that sleeps through a reset and then a release reports released.
//! * **Action.** The last arrival of a [`RawBarrier::wait_with`] first moves
//!   `count` to `parties` (everyone has arrived; nobody is released yet), runs
//!   the action, then ends the generation with a CAS from that word. So the
//!   action runs once per generation, after every party arrived and before any
//!   is released, and its writes are visible to every party after `wait`. If
//!   the action fails, the generation ends broken instead. A waiter that times
//!   out (or an `abort`/`reset`) while the action runs breaks the generation as
//!   usual; the last arrival's CAS then fails and it reports `Broken` too.
//!   Further arrivals (more than `parties` users) wait for the generation to end.
//! * A waiter sleeps only on the exact word it read; every change of the word
//!   that concerns it (release, `BROKEN`, reset) is followed by a wake of all.
//!   The waits are [`crate::park::park`]'s loop, with no waiters bit (every
//!   change that ends a generation wakes everyone).
//! * Arrival CASes are `AcqRel` and waiters read with `Acquire`: every party's
//!   writes before `wait` are visible to every party after it.
//!
//! # Deaths
//!
//! A barrier has no owner. A party that dies after arriving leaves its
//! generation one short: the others wait until their timeout (which breaks the
//! barrier, as in CPython) or an `abort`. A last arrival that dies between its
//! release and its wake-up releases the others all the same (they see the new
//! generation at the platform's liveness poll).

use core::mem::offset_of;
use core::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed};
use core::time::Duration;

use crate::park::{park, Check, Waiters};
use crate::platform::{mutant, Mutant, Platform, Thread, Word32};

/// Where an arrival left a party.
enum Arrival {
    /// Done with this `wait` (the last arrival, broken, or timed out).
    Done(Result<u32, BarrierError>),
    /// Arrived with index `index` in generation `gen`, whose word is now
    /// `word` (at least): wait for the generation to end.
    Waiting { gen: u32, index: u32, word: u32 },
}

/// The most parties a barrier can have.
pub const MAX_PARTIES: u32 = COUNT_MASK;
const COUNT_MASK: u32 = 0xfff;
const GEN_SHIFT: u32 = 12;
const GEN_MASK: u32 = 0xffff << GEN_SHIFT;
const ENDS_SHIFT: u32 = 28;
const ENDS_MASK: u32 = 0x7 << ENDS_SHIFT;
/// This generation is broken.
pub const BROKEN: u32 = 0x8000_0000;

/// Seeded bug: arrivals use `Relaxed` CASes and waiters `Relaxed` loads (the
/// re-reads inside [`crate::park`] stay `Acquire`, which cannot synchronize
/// with a `Relaxed` CAS, so the arrivals still publish nothing).
#[doc(hidden)]
pub const MUTANT_RELAXED_ARRIVAL: Mutant = Mutant(501);
/// Seeded bug: the last arrival never wakes the waiters.
#[doc(hidden)]
pub const MUTANT_NO_WAKE: Mutant = Mutant(502);
/// Seeded bug: an arrival reads the count, then stores count + 1 (check-then-act).
#[doc(hidden)]
pub const MUTANT_ARRIVAL_STORE: Mutant = Mutant(503);
/// Seeded bug: the last arrival releases the others before it runs the action.
#[doc(hidden)]
pub const MUTANT_ACTION_AFTER_RELEASE: Mutant = Mutant(504);

/// Why [`RawBarrier::wait`] did not pass the barrier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarrierError {
    /// The barrier is (or became, while waiting) broken: aborted, reset, or
    /// another party timed out (CPython: `BrokenBarrierError`).
    Broken,
    /// This party's timeout passed; it broke the barrier for the others
    /// (CPython raises `BrokenBarrierError` here too).
    Timeout,
    /// This party was the last to arrive and its action failed; the
    /// generation ended broken (CPython: the action's exception in that
    /// thread, `BrokenBarrierError` in the others).
    ActionFailed,
}

/// `parties` is 0 or above [`MAX_PARTIES`] (CPython: `ValueError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidParties;

fn count(v: u32) -> u32 {
    v & COUNT_MASK
}
fn gen(v: u32) -> u32 {
    (v & GEN_MASK) >> GEN_SHIFT
}
fn ends(v: u32) -> u32 {
    (v & ENDS_MASK) >> ENDS_SHIFT
}
fn pack(gen: u32, ends: u32, count: u32) -> u32 {
    ((gen << GEN_SHIFT) & GEN_MASK) | (ends.min(7) << ENDS_SHIFT) | count
}

/// A process-shared, reusable barrier. See the module documentation.
#[repr(C)]
pub struct RawBarrier<P: Platform> {
    /// `BROKEN | broken ends | generation | count`.
    state: P::W32,
    /// The number of parties.
    parties: P::W32,
}

impl<P: Platform> core::fmt::Debug for RawBarrier<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let v = self.state.load(Relaxed);
        f.debug_struct("RawBarrier")
            .field("parties", &self.parties())
            .field("count", &count(v))
            .field("generation", &gen(v))
            .field("broken", &(v & BROKEN != 0))
            .finish()
    }
}

impl<P: Platform> RawBarrier<P> {
    /// The byte offset of each field of the layout table (its names, its
    /// order), as compiled: impl's `layout.rs` checks them against the table
    /// and hashes them into its layout fingerprint.
    #[doc(hidden)]
    pub const OFFSETS: &'static [(&'static str, usize)] = &[
        ("state", offset_of!(Self, state)),
        ("parties", offset_of!(Self, parties)),
    ];

    /// A barrier for `parties` parties (1..=[`MAX_PARTIES`]).
    pub fn new(parties: u32) -> Result<Self, InvalidParties> {
        if parties == 0 || parties > MAX_PARTIES {
            return Err(InvalidParties);
        }
        Ok(RawBarrier {
            state: P::W32::new(0),
            parties: P::W32::new(parties),
        })
    }

    /// The number of parties.
    pub fn parties(&self) -> u32 {
        self.parties.load(Relaxed)
    }

    /// Parties waiting in the current generation (a snapshot; 0 when broken).
    pub fn n_waiting(&self) -> u32 {
        let v = self.state.load(Relaxed);
        if v & BROKEN != 0 {
            0
        } else {
            count(v)
        }
    }

    /// Is the barrier broken?
    pub fn broken(&self) -> bool {
        self.state.load(Relaxed) & BROKEN != 0
    }

    /// Wait until all parties have arrived, at most `timeout` (`None`: forever).
    /// Returns this party's arrival index, `0..parties` (distinct in each
    /// generation; the last arrival gets `parties - 1`), as CPython's
    /// `Barrier.wait` does. A timeout breaks the barrier.
    pub fn wait(&self, t: &P::Thread, timeout: Option<Duration>) -> Result<u32, BarrierError> {
        self.wait_inner(t, timeout, None::<fn() -> bool>)
    }

    /// [`RawBarrier::wait`] where the last party to arrive runs `action` after
    /// everyone arrived and before anyone is released. `action` returns
    /// `false` if it failed: the generation then ends broken and this party
    /// gets [`BarrierError::ActionFailed`] (the others `Broken`).
    pub fn wait_with(
        &self,
        t: &P::Thread,
        timeout: Option<Duration>,
        action: impl FnOnce() -> bool,
    ) -> Result<u32, BarrierError> {
        self.wait_inner(t, timeout, Some(action))
    }

    fn wait_inner(
        &self,
        t: &P::Thread,
        timeout: Option<Duration>,
        mut action: Option<impl FnOnce() -> bool>,
    ) -> Result<u32, BarrierError> {
        let relaxed = mutant::<P>(MUTANT_RELAXED_ARRIVAL);
        let (acqrel, acquire) = if relaxed {
            (Relaxed, Relaxed)
        } else {
            (AcqRel, Acquire)
        };
        let parties = self.parties.load(Relaxed);
        let dl = t.deadline(timeout);
        // Arrive: one CAS on the word of the generation seen. A party too many
        // (everyone arrived and the action is running) waits for the
        // generation to end; at its deadline it gives up.
        let arrived = park::<P, _>(
            t,
            &self.state,
            Waiters::NONE,
            &dl,
            self.state.load(acquire),
            |v| self.arrive(t, v, parties, &mut action, acqrel, acquire),
            |_, expired| expired.then_some(Arrival::Done(Err(BarrierError::Timeout))),
        );
        let (g, index, v) = match arrived {
            Arrival::Done(r) => return r,
            Arrival::Waiting { gen, index, word } => (gen, index, word),
        };
        // Wait for generation `g` to end (released or broken).
        park::<P, _>(
            t,
            &self.state,
            Waiters::NONE,
            &dl,
            v,
            |v| match self.ended(g, v, index) {
                Some(r) => Check::Done(r),
                None => Check::Sleep,
            },
            |mut v, expired| loop {
                // Deadline or liveness poll (the last arrival may have died
                // before waking us): `v` is the latest word.
                if let Some(r) = self.ended(g, v, index) {
                    return Some(r);
                }
                if !expired {
                    return None;
                }
                // Give up and break the barrier for everyone in this generation.
                match self.state.cas(v, v | BROKEN, acqrel, acquire) {
                    Ok(_) => {
                        t.crash_point();
                        t.wake(&self.state, u32::MAX);
                        return Some(Err(BarrierError::Timeout));
                    }
                    Err(x) => v = x,
                }
            },
        )
    }

    /// One arrival attempt on word `v`: [`Check::Look`] if the CAS lost a race.
    fn arrive(
        &self,
        t: &P::Thread,
        v: u32,
        parties: u32,
        action: &mut Option<impl FnOnce() -> bool>,
        acqrel: core::sync::atomic::Ordering,
        acquire: core::sync::atomic::Ordering,
    ) -> Check<Arrival> {
        if v & BROKEN != 0 {
            return Check::Done(Arrival::Done(Err(BarrierError::Broken)));
        }
        let c = count(v);
        if c >= parties {
            // Everyone has arrived and the action is running: this is a
            // party too many; wait for the generation to end.
            return Check::Sleep;
        }
        if c + 1 >= parties && action.is_some() {
            let released = pack(gen(v) + 1, 0, 0);
            if mutant::<P>(MUTANT_ACTION_AFTER_RELEASE) {
                if let Err(x) = self.state.cas(v, released, acqrel, acquire) {
                    return Check::Look(x);
                }
                t.wake(&self.state, u32::MAX);
                action.take().map(|a| a());
                return Check::Done(Arrival::Done(Ok(c)));
            }
            // The last arrival: announce that all arrived (nobody is
            // released yet), then run the action.
            if let Err(x) = self.state.cas(v, v + 1, acqrel, acquire) {
                return Check::Look(x);
            }
            let r = self.finish_with_action(t, v + 1, action.take(), acqrel, acquire);
            return Check::Done(Arrival::Done(r));
        }
        if c + 1 >= parties {
            // The last arrival: end this generation.
            if let Err(x) = self.state.cas(v, pack(gen(v) + 1, 0, 0), acqrel, acquire) {
                return Check::Look(x);
            }
            t.crash_point();
            if !mutant::<P>(MUTANT_NO_WAKE) {
                t.wake(&self.state, u32::MAX);
            }
            return Check::Done(Arrival::Done(Ok(c)));
        }
        if mutant::<P>(MUTANT_ARRIVAL_STORE) {
            self.state.store(v + 1, Relaxed);
        } else if let Err(x) = self.state.cas(v, v + 1, acqrel, acquire) {
            return Check::Look(x);
        }
        t.crash_point();
        Check::Done(Arrival::Waiting {
            gen: gen(v),
            index: c,
            word: v + 1,
        })
    }

    /// Has generation `g` ended, seen from word `v`? How, for the party with
    /// arrival index `index`.
    fn ended(&self, g: u32, v: u32, index: u32) -> Option<Result<u32, BarrierError>> {
        if gen(v) != g {
            Some(self.outcome(g, v, index))
        } else if v & BROKEN != 0 {
            Some(Err(BarrierError::Broken))
        } else {
            None
        }
    }

    /// The last arrival of a `wait_with` stored `all` (`count == parties`):
    /// run the action, then end the generation from that word (released, or
    /// broken if the action failed).
    fn finish_with_action(
        &self,
        t: &P::Thread,
        all: u32,
        action: Option<impl FnOnce() -> bool>,
        acqrel: core::sync::atomic::Ordering,
        acquire: core::sync::atomic::Ordering,
    ) -> Result<u32, BarrierError> {
        t.crash_point();
        let ok = action.map_or(true, |a| a());
        let end = if ok {
            pack(gen(all) + 1, 0, 0)
        } else {
            all | BROKEN
        };
        let r = self.state.cas(all, end, acqrel, acquire);
        t.crash_point();
        t.wake(&self.state, u32::MAX);
        match (r, ok) {
            (Err(_), _) => Err(BarrierError::Broken), // broken while the action ran
            (Ok(_), true) => Ok(count(all) - 1),
            (Ok(_), false) => Err(BarrierError::ActionFailed),
        }
    }

    /// How generation `g` ended, seen from word `v` of a later generation.
    fn outcome(&self, g: u32, v: u32, index: u32) -> Result<u32, BarrierError> {
        let d = gen(v).wrapping_sub(g) & (GEN_MASK >> GEN_SHIFT);
        if d <= ends(v) {
            Err(BarrierError::Broken)
        } else {
            Ok(index)
        }
    }

    /// Break the barrier: every current and future waiter gets
    /// [`BarrierError::Broken`] until [`RawBarrier::reset`].
    pub fn abort(&self, t: &P::Thread) {
        let prev = self.state.fetch_or(BROKEN, AcqRel);
        t.crash_point();
        if prev & BROKEN == 0 {
            t.wake(&self.state, u32::MAX);
        }
    }

    /// Return the barrier to its empty, unbroken state. Parties waiting in the
    /// current generation get [`BarrierError::Broken`] (as in CPython).
    pub fn reset(&self, t: &P::Thread) {
        let mut v = self.state.load(Relaxed);
        loop {
            if v & BROKEN == 0 && count(v) == 0 {
                return; // already empty
            }
            let new = pack(gen(v) + 1, ends(v) + 1, 0);
            match self.state.cas(v, new, AcqRel, Relaxed) {
                Ok(_) => break,
                Err(x) => v = x,
            }
        }
        t.crash_point();
        t.wake(&self.state, u32::MAX);
    }
}

#[cfg(all(test, feature = "checkers"))]
mod tests;
