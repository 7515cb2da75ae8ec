//! The one waiting mechanism of every protocol: sleep on a futex word until a
//! condition on its value holds (the role of `parking_lot_core::park`, with
//! the futex word itself as the parking spot).
//!
//! A waiter
//!
//! 1. loads the word and checks its condition on that value ([`Check`]);
//! 2. if it must wait, *announces* itself: sets the protocol's waiters bit
//!    ([`Waiters`]) by a CAS from the value it checked, so that a change in
//!    between makes the CAS fail and the waiter look again (a check-then-act
//!    store here is the classic lost wake-up, a seeded mutant of several
//!    protocols: [`Waiters::by_store`]);
//! 3. sleeps while the word holds that value ([`Thread::wait`]: any change of
//!    the word after the check makes the sleep return at once, so a notifier
//!    that changes the word, then wakes the sleepers it sees announced, never
//!    loses a wake-up); a word that records its owner ([`Waiters::owner`])
//!    is slept on *watching* that owner ([`Thread::wait_owned`]): its death
//!    ends the sleep, so nothing is polled while it lives;
//! 4. after a wake-up (perhaps spurious) re-loads the word and goes to 1; after
//!    [`Woke::TimedOut`] (the caller's deadline, a watched owner's death, or
//!    the platform's safety poll) re-reads it with an RMW, which returns the latest value rather
//!    than merely a recent one, and lets the protocol decide
//!    (`timed_out`): recover from a dead owner, give up at the deadline, or
//!    look again.
//!
//! [`park`] is that loop; [`sleep`] is steps 2–3 alone, for a protocol whose
//! condition spans several words and whose loop is its own (the queue ring).
//! A word without a waiters bit ([`Waiters::NONE`]) is woken by every
//! notifier that makes a condition true (the joinable queue's `join`, the
//! barrier), or announces its waiters elsewhere (the semaphore's `waiters`
//! count, raised before [`park`]).
//!
//! The event counters of the queues (the slot queue's and the ring's
//! `counter << 1 | WAITERS` words) are bumped only for announced waiters:
//! their notifiers fence, then [`wake_announced`]; a notifier whose change
//! ended with a lock's release fences with [`fence_after_unlock`].

use core::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};

use crate::platform::{mutant, Platform, Thread, Woke, Word32, MUTANT_DEATH_NOT_NOTIFIED};

/// A notifier's wake-up, after its change and its `SeqCst` fence, on an
/// event counter `n << 1 | bit`: reads `w`, and only if a waiter announced
/// itself (`bit` set) bumps the count, clears the bit and wakes every
/// sleeper. So nobody pays a read-modify-write on the word while nobody
/// sleeps. A waiter that died asleep leaves the bit set: the next notifier
/// clears it.
#[inline]
pub fn wake_announced<P: Platform>(t: &P::Thread, w: &P::W32, bit: u32) {
    if w.load(Relaxed) & bit != 0 {
        w.fetch_add(2, Release);
        w.fetch_and(!bit, Relaxed);
        t.wake(w, u32::MAX);
    }
}

/// A notifier's fence right after it released a lock (`unlocked`: the
/// unlock's swap happened): [`Platform::fence_after_rmw`] after the swap,
/// which on x86-64 is already the barrier, so the value path pays no locked
/// instruction of its own for its wake-up check; a `SeqCst` fence when there
/// was no swap. `skip`: a seeded bug that drops the fence.
#[inline]
pub fn fence_after_unlock<P: Platform>(unlocked: bool, skip: bool) {
    match (skip, unlocked) {
        (true, _) => {}
        (false, true) => P::fence_after_rmw(),
        (false, false) => P::fence(SeqCst),
    }
}

/// What a waiter's condition says about a value of the word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check<R> {
    /// Done: [`park`] returns this.
    Done(R),
    /// Not yet: sleep while the word holds the value checked.
    Sleep,
    /// Not yet: sleep while the word holds the value checked, watching its
    /// owner (with [`Waiters::owner`]), whose identity is this (as
    /// [`Thread::occupant`] reported it; 0: unknown).
    SleepOn(u64),
    /// The word changed under the check (a CAS of the protocol failed): check
    /// this value instead.
    Look(u32),
}

/// How a waiter announces itself in the word before it sleeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waiters {
    bit: u32,
    by_store: bool,
    owner: u32,
}

impl Waiters {
    /// No waiters bit: notifiers wake whenever they make a condition true.
    pub const NONE: Waiters = Waiters {
        bit: 0,
        by_store: false,
        owner: 0,
    };

    /// The waiters bit `bit` (notifiers wake only when it is set, and clear it).
    pub const fn bit(bit: u32) -> Waiters {
        Waiters {
            bit,
            by_store: false,
            owner: 0,
        }
    }

    /// The word records its owner in the bits of `mask` (a lock word:
    /// [`crate::platform::OWNER_MASK`]): a waiter sleeps watching the owner
    /// of the value it checked ([`Thread::wait_owned`]), so the owner's death
    /// wakes it.
    pub const fn owner(self, mask: u32) -> Waiters {
        Waiters {
            bit: self.bit,
            by_store: self.by_store,
            owner: mask,
        }
    }

    /// Seeded bug (a protocol passes its mutant here): set the bit with a
    /// plain store of the value checked, instead of a CAS from it
    /// (check-then-act: a notification in between is lost, or undone).
    pub const fn by_store(self, bug: bool) -> Waiters {
        Waiters {
            bit: self.bit,
            by_store: bug,
            owner: self.owner,
        }
    }
}

/// Announce (set the waiters bit by CAS from `seen`, the value the caller's
/// condition was checked on), then sleep while the word holds `seen` with
/// the bit, until woken, the deadline `dl`, the death of the word's owner
/// (with [`Waiters::owner`]) or the safety poll. Returns [`Woke::Mismatch`]
/// at once if the word is no longer `seen`. Crash point after the
/// announcement.
pub fn sleep<P: Platform>(
    t: &P::Thread,
    w: &P::W32,
    seen: u32,
    how: Waiters,
    dl: &<P::Thread as Thread>::Deadline,
) -> Woke {
    sleep_owned::<P>(t, w, seen, how, seen & how.owner, 0, dl)
}

/// [`sleep`], watching `owner` (an owner id recorded in another word, e.g.
/// the holder of a producers' lock while a consumer waits for the rest of its
/// message; 0: nobody) with identity `ident` (0: unknown): its death ends the
/// sleep with [`Woke::TimedOut`].
pub fn sleep_owned<P: Platform>(
    t: &P::Thread,
    w: &P::W32,
    seen: u32,
    how: Waiters,
    owner: u32,
    ident: u64,
    dl: &<P::Thread as Thread>::Deadline,
) -> Woke {
    let mut v = seen;
    if how.bit != 0 && v & how.bit == 0 {
        if how.by_store {
            t.crash_point();
            w.store(v | how.bit, Relaxed);
        } else if w.cas(v, v | how.bit, Acquire, Acquire).is_err() {
            return Woke::Mismatch; // changed since the check: look again
        }
        t.crash_point();
        v |= how.bit;
    }
    if owner != 0 {
        if mutant::<P>(MUTANT_DEATH_NOT_NOTIFIED) {
            return t.wait_owned_unnotified(w, v, owner, ident, dl);
        }
        t.wait_owned(w, v, owner, ident, dl)
    } else {
        t.wait(w, v, dl)
    }
}

/// Wait on `w` until `check` says [`Check::Done`], starting from `v` (the
/// caller's load of the word). After each [`Woke::TimedOut`], `timed_out`
/// gets the word's latest value (read by RMW) and whether the deadline `dl`
/// has passed, and may end the wait (`Some`) — on a deadline, or after
/// recovering from a dead owner; with `None` the loop checks that value.
pub fn park<P: Platform, R>(
    t: &P::Thread,
    w: &P::W32,
    how: Waiters,
    dl: &<P::Thread as Thread>::Deadline,
    mut v: u32,
    mut check: impl FnMut(u32) -> Check<R>,
    mut timed_out: impl FnMut(u32, bool) -> Option<R>,
) -> R {
    loop {
        let ident = match check(v) {
            Check::Done(r) => return r,
            Check::Look(x) => {
                v = x;
                continue;
            }
            Check::Sleep => 0,
            Check::SleepOn(ident) => ident,
        };
        if sleep_owned::<P>(t, w, v, how, v & how.owner, ident, dl) == Woke::TimedOut {
            // The deadline, a watched owner's death, or the safety poll (a
            // notifier may have died between changing the word and waking us).
            v = w.fetch_or(0, Acquire);
            if let Some(r) = timed_out(v, t.expired(dl)) {
                return r;
            }
        } else {
            v = w.load(Acquire);
        }
    }
}

#[cfg(test)]
mod tests;
