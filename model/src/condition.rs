//! A condition variable (CPython's `multiprocessing.Condition`) over a lock
//! the caller holds: a [`RawMutex`] (`Lock`) or a [`RawRLock`] (`RLock`, the
//! default of `Condition()`), through [`CondLock`].
//!
//! ```
//! use procshare_model::condition::RawCondition;
//! use procshare_model::mutex::RawMutex;
//! use procshare_model::shuttle_platform::{world, ModelThread, Shuttle};
//! use std::sync::Arc;
//!
//! shuttle::check_random(|| {
//!     let w = world();
//!     let s = Arc::new((RawCondition::<Shuttle>::new(), RawMutex::<Shuttle>::new()));
//!     let (s2, w2) = (s.clone(), w.clone());
//!     let h = shuttle::thread::spawn(move || {
//!         let t = ModelThread::new(&w2, 2);
//!         let (c, l) = &*s2;
//!         l.lock(&t, None).unwrap();
//!         // Waits until notified (the lock is released meanwhile, held again on return).
//!         let r = c.wait(&t, l, None).unwrap();
//!         assert!(r.notified);
//!         l.unlock(&t).unwrap();
//!     });
//!     let t = ModelThread::new(&w, 1);
//!     let (c, l) = &*s;
//!     // Notify once the waiter waits (a real program checks a predicate instead).
//!     loop {
//!         l.lock(&t, None).unwrap();
//!         if c.waiting() == 1 {
//!             assert_eq!(c.notify(&t, l, 1), Ok(1));
//!             l.unlock(&t).unwrap();
//!             break;
//!         }
//!         l.unlock(&t).unwrap();
//!         shuttle::thread::yield_now();
//!     }
//!     h.join().unwrap();
//! }, 10);
//! ```
//!
//! # Layout
//!
//! ```text
//! RawCondition (16 bytes, #[repr(C)], align 8)
//!   state: u64   offset 0    bits  0..=20 pending:  notifications not yet taken
//!                            bits 21..=41 eligible: waiters registered before the
//!                                         latest notification, not yet gone
//!                            bits 42..=62 late:     waiters registered since it
//!                            bit  63      parity:   the parity of `seq` this state
//!                                         was written for
//!   seq:   u32   offset 8    the futex word: effective notifications so far (wrapping)
//!   spare: u32   offset 12   always 0 (keeps the struct free of padding)
//! ```
//!
//! # Protocol
//!
//! Every step that reads or writes `state` runs with the caller holding the
//! lock, and writes `state` with *one* store, so that a process that dies at
//! any point leaves a state some live process can go on from. Only sleeping
//! happens outside the lock:
//!
//! * **wait**: register (`late += 1`, remember `g = seq`), release the lock
//!   (every level of an `RLock`, as CPython does), sleep while `seq` is
//!   unchanged, re-acquire the lock, and *take* a notification if there is
//!   one and this waiter is *eligible* (`seq != g`: a notification took
//!   effect since it registered): `pending -= 1, eligible -= 1`. If there is
//!   none (others took them), sleep again. At the deadline (or when the lock
//!   was recovered from a dead holder) a waiter that finds no notification
//!   to take leaves: `eligible -= 1` or `late -= 1`.
//! * **notify(n)**: `eligible += late, late = 0, pending = min(pending + n,
//!   eligible)`, stored with the parity of `seq + 1`; then `seq += 1` and wake
//!   *every* sleeper (a waiter that cannot take a notification goes back to
//!   sleep). Nothing changes (and nobody is woken) if no waiter could take
//!   another notification.
//!
//! # Invariants
//!
//! * `pending <= eligible`: each notification can be taken by a distinct
//!   eligible waiter, so notify(n) releases `min(n, waiters)` waiters, never
//!   more (no spurious wake-ups while nobody dies).
//! * **No stolen wake-up**: a waiter registered after a notification took
//!   effect is not eligible for it (its `g` is that notification's `seq`), so
//!   notify(1) cannot be consumed by a later arrival while an earlier waiter
//!   stays asleep.
//! * **No lost wake-up**: a waiter remembers `g` while it still holds the
//!   lock, so a notification between its release of the lock and its sleep
//!   changes `seq` and the sleep returns at once.
//! * A waiter whose timeout races a notification takes it if it is still
//!   pending when it holds the lock again (`wait` returns `notified`): a
//!   notification is never lost to a timeout.
//! * The parity bit makes a notification that died between its store of
//!   `state` and its increment of `seq` recoverable: whoever holds the lock
//!   next (after recovering it) sees the parities differ and completes it
//!   (`seq += 1`, wake everyone) before anything else.
//!
//! # Deaths
//!
//! * A **waiter** that dies is never notified at the expense of a live one:
//!   notifications are not handed to a particular waiter, every eligible
//!   sleeper is woken and the live ones take them. Its registration stays
//!   counted, though, so after `d` waiter deaths a notify(n) may release up to
//!   `n + d` waiters (spurious wake-ups, which a caller that re-checks its
//!   predicate, as CPython's documentation asks, does not notice).
//! * A **notifier** holds the lock (notify requires it). If it dies, the
//!   sleepers learn it at their liveness poll, where each tries the lock
//!   without waiting: the lock's own recovery takes it over from the dead
//!   holder, and that waiter returns with [`Acquired::OwnerDied`]; a
//!   notification the dead notifier completed is taken as usual. (A sleeper
//!   that gets the lock cleanly there and finds nothing to take sleeps again.)
//!
//! [`RawMutex`]: crate::mutex::RawMutex
//! [`RawRLock`]: crate::rlock::RawRLock

use core::mem::offset_of;
use core::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use core::time::Duration;

use crate::mutex::{Acquired, RawMutex};
use crate::park::{park, Check, Waiters};
use crate::platform::{mutant, Mutant, Platform, Thread, Word32, Word64};
use crate::rlock::RawRLock;

/// Seeded bug (a lost notification): a waiter reads `seq` after it released
/// the lock instead of before, so a notification in between is slept through.
#[doc(hidden)]
pub const MUTANT_SEQ_AFTER_UNLOCK: Mutant = Mutant(1001);
/// Seeded bug (a stolen wake-up): a waiter takes a pending notification
/// whether or not it was waiting when the notification was made.
#[doc(hidden)]
pub const MUTANT_STEAL: Mutant = Mutant(1002);
/// Seeded bug (a lost notification): notify never wakes the sleepers.
#[doc(hidden)]
pub const MUTANT_NO_WAKE: Mutant = Mutant(1003);
/// Seeded bug: a sleeper does not try the lock at its liveness poll, so a
/// notifier that dies holding the lock before notifying leaves it asleep.
#[doc(hidden)]
pub const MUTANT_NO_OWNER_CHECK: Mutant = Mutant(1004);
/// Seeded bug: a notification whose notifier died between its store of
/// `state` and its increment of `seq` is never completed (no repair), so the
/// waiter that recovers the lock leaves it pending.
#[doc(hidden)]
pub const MUTANT_NO_REPAIR: Mutant = Mutant(1005);

const FIELD_BITS: u32 = 21;
/// The most waiters a condition counts at once (2^21 - 1).
pub const MAX_WAITERS: u32 = (1 << FIELD_BITS) - 1;
const PENDING_SHIFT: u32 = 0;
const ELIGIBLE_SHIFT: u32 = FIELD_BITS;
const LATE_SHIFT: u32 = 2 * FIELD_BITS;
const PARITY: u64 = 1 << 63;

/// The unpacked `state` word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct State {
    pending: u32,
    eligible: u32,
    late: u32,
    parity: bool,
}

impl State {
    fn unpack(v: u64) -> State {
        let f = |shift: u32| ((v >> shift) & MAX_WAITERS as u64) as u32;
        State {
            pending: f(PENDING_SHIFT),
            eligible: f(ELIGIBLE_SHIFT),
            late: f(LATE_SHIFT),
            parity: v & PARITY != 0,
        }
    }
    fn pack(self) -> u64 {
        let f = |x: u32, shift: u32| (x.min(MAX_WAITERS) as u64) << shift;
        f(self.pending, PENDING_SHIFT)
            | f(self.eligible, ELIGIBLE_SHIFT)
            | f(self.late, LATE_SHIFT)
            | if self.parity { PARITY } else { 0 }
    }
}

/// Why a condition operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CondError {
    /// The caller does not hold the lock (CPython: `AssertionError: must
    /// acquire() condition before using wait()` / `lock is not owned`).
    NotOwner,
    /// [`MAX_WAITERS`] threads already wait.
    TooManyWaiters,
}

/// How a [`RawCondition::wait`] ended. The caller holds the lock again in
/// every case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waited {
    /// Notified (`wait`), or the predicate's last value (`wait_for`);
    /// `false`: the timeout passed, or the lock's holder died.
    pub notified: bool,
    /// How the lock was re-acquired: [`Acquired::OwnerDied`] if a holder of the
    /// lock died while this thread waited (the data the lock protects may be
    /// inconsistent).
    pub acquired: Acquired,
}

/// The lock a condition is used with: what a condition needs from it.
///
/// Implemented by [`RawMutex`] (a `Lock`) and [`RawRLock`] (an `RLock`).
pub trait CondLock<P: Platform> {
    /// The holder's owner id, if held.
    fn holder(&self) -> Option<u32>;
    /// Is it held by the caller? (Its id in the lock word and, for the
    /// robust locks, its identity beside it: a dead holder whose id the
    /// caller was given is not the caller. No default: `holder() ==
    /// Some(t.id())` would be that mistake.)
    fn held_by(&self, t: &P::Thread) -> bool;
    /// Release every level the caller holds (it does hold the lock); returns
    /// how many, for [`CondLock::reacquire`].
    fn release_all(&self, t: &P::Thread) -> u32;
    /// Acquire again, `levels` times, waiting as long as needed.
    fn reacquire(&self, t: &P::Thread, levels: u32) -> Acquired;
    /// [`CondLock::reacquire`] if that is possible without waiting, which
    /// includes taking it over from a dead holder (the lock's own recovery).
    fn try_reacquire(&self, t: &P::Thread, levels: u32) -> Option<Acquired>;
}

fn lock_forever<P: Platform>(m: &RawMutex<P>, t: &P::Thread) -> Acquired {
    loop {
        // Without a deadline `lock` returns only once acquired.
        if let Ok(a) = m.lock(t, None) {
            return a;
        }
    }
}

impl<P: Platform> CondLock<P> for RawMutex<P> {
    fn holder(&self) -> Option<u32> {
        self.owner()
    }
    fn held_by(&self, t: &P::Thread) -> bool {
        self.held_by_me(t)
    }
    fn release_all(&self, t: &P::Thread) -> u32 {
        let _ = self.unlock(t);
        1
    }
    fn reacquire(&self, t: &P::Thread, _levels: u32) -> Acquired {
        lock_forever(self, t)
    }
    fn try_reacquire(&self, t: &P::Thread, _levels: u32) -> Option<Acquired> {
        self.try_lock(t).ok()
    }
}

impl<P: Platform> CondLock<P> for RawRLock<P> {
    fn holder(&self) -> Option<u32> {
        self.owner()
    }
    fn held_by(&self, t: &P::Thread) -> bool {
        self.is_mine(t)
    }
    fn release_all(&self, t: &P::Thread) -> u32 {
        let levels = self.count().max(1);
        for _ in 0..levels {
            let _ = self.unlock(t);
        }
        levels
    }
    fn reacquire(&self, t: &P::Thread, levels: u32) -> Acquired {
        let a = loop {
            if let Ok(a) = self.lock(t, None) {
                break a;
            }
        };
        for _ in 1..levels {
            // Re-entrant: never waits (the depth was at most this before).
            let _ = self.lock(t, None);
        }
        a
    }
    fn try_reacquire(&self, t: &P::Thread, levels: u32) -> Option<Acquired> {
        let a = self.try_lock(t).ok()?;
        for _ in 1..levels {
            let _ = self.lock(t, None);
        }
        Some(a)
    }
}

/// Why a sleeper stopped sleeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    Changed,
    TimedOut,
    /// The liveness poll took the lock (perhaps from a dead holder).
    Locked(Acquired),
}

/// A process-shared condition variable. See the module documentation.
#[repr(C)]
pub struct RawCondition<P: Platform> {
    /// `parity | late | eligible | pending` (see the layout).
    state: P::W64,
    /// Effective notifications (the futex word).
    seq: P::W32,
    /// Always 0.
    spare: P::W32,
}

impl<P: Platform> Default for RawCondition<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Platform> core::fmt::Debug for RawCondition<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let s = State::unpack(self.state.load(Relaxed));
        f.debug_struct("RawCondition")
            .field("pending", &s.pending)
            .field("eligible", &s.eligible)
            .field("late", &s.late)
            .field("seq", &self.seq.load(Relaxed))
            .finish()
    }
}

impl<P: Platform> RawCondition<P> {
    /// The byte offset of each field of the layout table (its names, its
    /// order), as compiled: impl checks them against the table.
    #[doc(hidden)]
    pub const OFFSETS: &'static [(&'static str, usize)] = &[
        ("state", offset_of!(Self, state)),
        ("seq", offset_of!(Self, seq)),
        ("spare", offset_of!(Self, spare)),
    ];

    /// A condition nobody waits on.
    pub fn new() -> Self {
        RawCondition {
            state: P::W64::new(0),
            seq: P::W32::new(0),
            spare: P::W32::new(0),
        }
    }

    /// Waiters registered and not yet gone (a snapshot; exact for the lock's
    /// holder while nobody dies: a dead waiter stays counted).
    pub fn waiting(&self) -> u32 {
        let s = State::unpack(self.state.load(Relaxed));
        (s.eligible - s.pending.min(s.eligible)).saturating_add(s.late)
    }

    /// Notifications made and not yet taken (a snapshot).
    pub fn pending(&self) -> u32 {
        State::unpack(self.state.load(Relaxed)).pending
    }

    /// Complete a notification whose notifier died between its store of
    /// `state` and its increment of `seq` (lock held).
    fn repair(&self, t: &P::Thread) {
        if mutant::<P>(MUTANT_NO_REPAIR) {
            return;
        }
        let s = State::unpack(self.state.load(Relaxed));
        if s.parity != (self.seq.load(Relaxed) & 1 == 1) {
            self.seq.fetch_add(1, Release);
            t.crash_point();
            t.wake(&self.seq, u32::MAX);
        }
    }

    /// Release the lock, wait until notified or `timeout` passes (`None`:
    /// forever), hold the lock again. The caller must hold `lock`
    /// ([`CondError::NotOwner`]). See [`Waited`].
    pub fn wait<L: CondLock<P>>(
        &self,
        t: &P::Thread,
        lock: &L,
        timeout: Option<Duration>,
    ) -> Result<Waited, CondError> {
        let dl = t.deadline(timeout);
        self.wait_until(t, lock, &dl)
    }

    /// Wait until `pred()` holds (checked first, and after each wake-up, with
    /// the lock held) or `timeout` passes, or the lock's holder dies. Returns
    /// the predicate's last value (CPython's `wait_for`).
    pub fn wait_for<L: CondLock<P>>(
        &self,
        t: &P::Thread,
        lock: &L,
        timeout: Option<Duration>,
        mut pred: impl FnMut() -> bool,
    ) -> Result<Waited, CondError> {
        if !lock.held_by(t) {
            return Err(CondError::NotOwner);
        }
        let dl = t.deadline(timeout);
        let mut acquired = Acquired::Clean;
        loop {
            if pred() {
                return Ok(Waited {
                    notified: true,
                    acquired,
                });
            }
            let w = self.wait_until(t, lock, &dl)?;
            if w.acquired == Acquired::OwnerDied {
                acquired = Acquired::OwnerDied;
            }
            if !w.notified {
                // Timed out, or the lock's holder died: one last look.
                return Ok(Waited {
                    notified: pred(),
                    acquired,
                });
            }
        }
    }

    fn wait_until<L: CondLock<P>>(
        &self,
        t: &P::Thread,
        lock: &L,
        dl: &<P::Thread as Thread>::Deadline,
    ) -> Result<Waited, CondError> {
        if !lock.held_by(t) {
            return Err(CondError::NotOwner);
        }
        // Register, lock held.
        self.repair(t);
        let mut s = State::unpack(self.state.load(Relaxed));
        if s.late >= MAX_WAITERS || s.eligible.saturating_add(s.late) >= MAX_WAITERS {
            return Err(CondError::TooManyWaiters);
        }
        let g = self.seq.load(Relaxed);
        s.late += 1;
        self.state.store(s.pack(), Relaxed);
        t.crash_point();
        let levels = lock.release_all(t);
        let mut seen = if mutant::<P>(MUTANT_SEQ_AFTER_UNLOCK) {
            self.seq.load(Acquire)
        } else {
            g
        };
        loop {
            let why = self.sleep(t, lock, levels, dl, seen);
            let acquired = match why {
                Why::Locked(a) => a,
                _ => lock.reacquire(t, levels),
            };
            self.repair(t);
            let mut s = State::unpack(self.state.load(Relaxed));
            let now = self.seq.load(Relaxed);
            let eligible = now != g || mutant::<P>(MUTANT_STEAL);
            if eligible && s.pending > 0 {
                // Take a notification (`pending <= eligible`: saturating only
                // against a corrupt word).
                s.pending -= 1;
                s.eligible = s.eligible.saturating_sub(1);
                self.state.store(s.pack(), Relaxed);
                t.crash_point();
                return Ok(Waited {
                    notified: true,
                    acquired,
                });
            }
            if why == Why::TimedOut || acquired == Acquired::OwnerDied {
                // Leave without a notification.
                if eligible {
                    s.eligible = s.eligible.saturating_sub(1);
                } else {
                    s.late = s.late.saturating_sub(1);
                }
                self.state.store(s.pack(), Relaxed);
                t.crash_point();
                return Ok(Waited {
                    notified: false,
                    acquired,
                });
            }
            // Woken, but the notifications were taken by others: sleep again.
            seen = now;
            lock.release_all(t);
        }
    }

    /// Sleep (lock released) while `seq == seen`, until the deadline, or a
    /// liveness poll at which the lock could be taken without waiting.
    fn sleep<L: CondLock<P>>(
        &self,
        t: &P::Thread,
        lock: &L,
        levels: u32,
        dl: &<P::Thread as Thread>::Deadline,
        seen: u32,
    ) -> Why {
        park::<P, _>(
            t,
            &self.seq,
            Waiters::NONE,
            dl,
            self.seq.load(Acquire),
            |v| {
                if v != seen {
                    Check::Done(Why::Changed)
                } else {
                    Check::Sleep
                }
            },
            |v, expired| {
                if v != seen {
                    return Some(Why::Changed);
                }
                if expired {
                    return Some(Why::TimedOut);
                }
                // The liveness poll: a holder of the lock that died (a
                // notifier, say) will never notify. Try the lock: its own
                // recovery takes it over from a dead holder (and reads the
                // word by RMW, so a holder is seen whatever this thread saw).
                if mutant::<P>(MUTANT_NO_OWNER_CHECK) {
                    return None;
                }
                lock.try_reacquire(t, levels).map(Why::Locked)
            },
        )
    }

    /// Wake up to `n` waiters (those waiting now; `u32::MAX`: all of them,
    /// CPython's `notify_all`). The caller must hold `lock`. Returns how many
    /// more waiters are now released (0 if nobody waits).
    pub fn notify<L: CondLock<P>>(
        &self,
        t: &P::Thread,
        lock: &L,
        n: u32,
    ) -> Result<u32, CondError> {
        if !lock.held_by(t) {
            return Err(CondError::NotOwner);
        }
        if n == 0 {
            return Ok(0);
        }
        self.repair(t);
        let s = State::unpack(self.state.load(Relaxed));
        let eligible = s.eligible.saturating_add(s.late).min(MAX_WAITERS);
        let pending = s.pending.saturating_add(n).min(eligible);
        if pending <= s.pending {
            return Ok(0); // every waiter already has a notification to take
        }
        let next = self.seq.load(Relaxed).wrapping_add(1);
        let new = State {
            pending,
            eligible,
            late: 0,
            parity: next & 1 == 1,
        };
        self.state.store(new.pack(), Relaxed);
        t.crash_point();
        self.seq.fetch_add(1, Release);
        t.crash_point();
        if !mutant::<P>(MUTANT_NO_WAKE) {
            t.wake(&self.seq, u32::MAX);
        }
        Ok(pending - s.pending)
    }

    /// [`RawCondition::notify`] of every waiter.
    pub fn notify_all<L: CondLock<P>>(&self, t: &P::Thread, lock: &L) -> Result<u32, CondError> {
        self.notify(t, lock, u32::MAX)
    }
}

#[cfg(all(test, feature = "checkers"))]
mod tests;
