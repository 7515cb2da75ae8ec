//! A robust futex mutex: the protocol behind `Lock`, the owner word of `RLock`,
//! and the lock of every synchronized `Value`/`Array`.
//!
//! # Layout
//!
//! ```text
//! RawMutex (16 bytes, #[repr(C)], align 8)
//!   word:  u32  offset 0  bit 31      WAITERS: somebody may be sleeping on the word
//!                         bit 30      OWNER_DIED: the last holder died while the
//!                                     word was pending (set by the platform; then
//!                                     bits 0..=29 are 0: the lock is free)
//!                         bits 0..=29 owner id (kernel tid) of the holder, 0 = unlocked
//!   (4 bytes of padding)
//!   ident: u64  offset 8  the holder's identity (`Thread::identity`), 0 = not
//!                         published yet (or being released)
//! ```
//!
//! The state machine is Drepper's "mutex2" (unlocked / locked / locked with
//! waiters) with the owner's id in the word instead of the constant 1, the
//! format the kernel's robust and PI futexes use. Putting the owner in the same
//! word as the state makes dead-owner recovery a single CAS.
//!
//! # Invariants
//!
//! * `word & OWNER_MASK == 0` ⇔ unlocked, and then `word` is 0 or
//!   `OWNER_DIED` (perhaps with `WAITERS`).
//! * `ident != 0` ⇒ it is the identity of the holder named by `word` (the
//!   thread that won the word and then published it). It is written only by
//!   that holder (right after it wins the word, and 0 right before any
//!   release frees the word), or cleared by a recoverer (CAS from the dead
//!   holder's identity, before it takes the word over).
//! * The holder marks the word *pending* ([`Thread::publishing`]) from before
//!   it tries to win the word until it has published its identity, and from
//!   before it clears `ident` until it has freed the word: a holder that dies
//!   while `ident` does not name it is turned by the platform into
//!   `OWNER_DIED`, before its id can be given to another thread.
//! * So the holder `h` of a word is alive iff the thread that now has `h`'s
//!   id has the identity in `ident`, or `ident` is 0 (the holder is in a
//!   pending moment: if it died there, the word would no longer name it).
//!   A bare id is never trusted ([`MUTANT_TRUST_TID`]: a dead holder whose id
//!   went to a newcomer is then taken for alive; [`MUTANT_NO_PENDING`]: one
//!   that died right after winning the word is).
//! * Only the holder (or a releaser, for a non-owned `Lock`) clears the owner;
//!   only a recoverer replaces a *dead* owner's id, by CAS from the exact value it
//!   observed, so exactly one recoverer wins.
//! * A sleeper sleeps only while the word holds `owner | WAITERS`, so any change
//!   of the word (release, recovery) either wakes it or makes its sleep return
//!   `Mismatch`; and it sleeps watching `owner` ([`Waiters::owner`]), so an
//!   owner that dies without releasing wakes it (the platform notifies the
//!   death; nothing is polled while the owner lives).
//!
//! # Owner death
//!
//! Before it sleeps, and whenever a wait ends with `TimedOut` (its owner's
//! death is notified that way), a waiter decides whether the holder is alive
//! ([`RawMutex::holder`]). If not, it clears `ident` (CAS from the dead
//! holder's identity), CASes the word from the dead owner's value to its own
//! id and returns [`Acquired::OwnerDied`]: it holds the lock, and the data the
//! lock protects may be half-updated (like `EOWNERDEAD` or std's
//! `PoisonError`). A free word marked `OWNER_DIED` is taken the same way. The
//! recoverer is told once; the lock is not poisoned afterwards.
//!
//! Why a separate identity word, written after the CAS, rather than the
//! identity in the word: a futex word has 32 bits, a kernel tid needs 22 and
//! a thread identity that is never reused needs 64. The pending mark covers
//! the moments when the two words disagree.

use core::mem::offset_of;
use core::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use core::time::Duration;

use crate::park::{park, Check, Waiters};
use crate::platform::{
    mutant, Mutant, Occupant, Platform, Thread, Word32, Word64, MUTANT_NO_PENDING,
    MUTANT_TRUST_TID, OWNER_DIED, OWNER_MASK,
};

/// Bit set in the lock word while some thread may be sleeping on it.
pub const WAITERS: u32 = 0x8000_0000;

/// Seeded bug: unlock clears the word with `Relaxed` instead of `Release`.
#[doc(hidden)]
pub const MUTANT_RELAXED_UNLOCK: Mutant = Mutant(101);
/// Seeded bug: unlock never wakes a sleeper.
#[doc(hidden)]
pub const MUTANT_NO_WAKE: Mutant = Mutant(102);
/// Seeded bug: a recoverer takes a dead owner's lock with a plain store (check-then-act).
#[doc(hidden)]
pub const MUTANT_RECOVER_STORE: Mutant = Mutant(103);
/// Seeded bug: a dead owner is never detected.
#[doc(hidden)]
pub const MUTANT_NO_RECOVERY: Mutant = Mutant(104);

/// How a lock was acquired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquired {
    /// From a live previous holder (or free).
    Clean,
    /// Taken over from a holder that died while holding it: the protected data
    /// may be inconsistent.
    OwnerDied,
}

/// The lock was not acquired before the deadline (or at once, for `try_lock`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeout;

/// `unlock` of a mutex that is not locked (CPython: `ValueError: semaphore or
/// lock released too many times`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotLocked;

/// A robust, process-shared mutex word. See the module documentation.
#[repr(C)]
pub struct RawMutex<P: Platform> {
    /// `owner id | WAITERS`, 0 (or `OWNER_DIED`) when unlocked.
    word: P::W32,
    /// The holder's identity, 0 while not published (see the invariants).
    ident: P::W64,
}

impl<P: Platform> Default for RawMutex<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Platform> core::fmt::Debug for RawMutex<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RawMutex")
            .field("word", &format_args!("{:#x}", self.word.load(Relaxed)))
            .field("ident", &format_args!("{:#x}", self.ident.load(Relaxed)))
            .finish()
    }
}

impl<P: Platform> RawMutex<P> {
    /// The byte offset of each field of the layout table (its names, its
    /// order), as compiled: impl's `layout.rs` checks them against the table
    /// and hashes them into its layout fingerprint.
    #[doc(hidden)]
    pub const OFFSETS: &'static [(&'static str, usize)] = &[
        ("word", offset_of!(Self, word)),
        ("ident", offset_of!(Self, ident)),
    ];

    /// An unlocked mutex.
    pub fn new() -> Self {
        RawMutex {
            word: P::W32::new(0),
            ident: P::W64::new(0),
        }
    }

    /// Mark the word pending (see the invariants), unless the seeded bug
    /// leaves it out.
    #[inline(always)]
    fn pending(&self, t: &P::Thread, on: bool) {
        if !mutant::<P>(MUTANT_NO_PENDING) {
            t.publishing(on.then_some(&self.word));
        }
    }

    /// Just won the word: publish the caller's identity, end the pending mark.
    #[inline(always)]
    fn publish(&self, t: &P::Thread) {
        t.crash_point(); // between the CAS and the publication
        self.ident.store(t.identity(), Relaxed);
        self.pending(t, false);
    }

    /// Is the lock held by the caller? Its id in the word and its identity
    /// published (a dead holder that had the caller's id is not the caller).
    pub fn held_by_me(&self, t: &P::Thread) -> bool {
        if self.owner() != Some(t.id()) {
            return false;
        }
        mutant::<P>(MUTANT_TRUST_TID)
            || !t.id_reused(t.id())
            || self.ident.load(Relaxed) == t.identity()
    }

    /// Is the holder named by `v` (a value of the word, with an owner id)
    /// alive? `Some(identity)` (the identity to watch it by, 0 if unknown):
    /// alive, or the word no longer holds `v`; `None`: dead (the word held
    /// `v` after that was learned). The protocol's liveness decision: see the
    /// invariants.
    pub fn holder(&self, t: &P::Thread, v: u32) -> Option<u64> {
        let owner = v & OWNER_MASK;
        if owner == 0 {
            return Some(0);
        }
        let occupant = t.occupant(owner);
        if let Occupant::Is(x) = occupant {
            if !t.id_reused(owner) {
                // The one thread that ever had the id wrote it: the holder.
                return Some(x);
            }
        }
        // Read after the occupant: if the holder died after publishing, its
        // identity is visible now.
        let ident = self.ident.load(Acquire);
        let alive = match occupant {
            Occupant::Nobody => return self.still(v),
            Occupant::Unknown => return Some(0),
            Occupant::Is(x) => {
                if ident == 0 || ident == x || mutant::<P>(MUTANT_TRUST_TID) {
                    return Some(x);
                }
                None
            }
        };
        // `ident` names another thread than the one with the holder's id:
        // dead, if `ident` belonged to the holder of `v` (the word still
        // holds `v`).
        alive.or_else(|| self.still(v))
    }

    /// The identity the holder published (0: none yet). A hint for watching
    /// it; [`RawMutex::holder`] decides.
    /// (0 without reading it on a platform that does not watch by identity:
    /// [`Platform::WATCHES_IDENTITY`].)
    pub fn published(&self) -> u64 {
        if !P::WATCHES_IDENTITY {
            return 0;
        }
        self.ident.load(Acquire)
    }

    /// `None` ("dead") if the word still holds `v`, else `Some(0)` (look again).
    fn still(&self, v: u32) -> Option<u64> {
        (self.word.fetch_or(0, Acquire) != v).then_some(0)
    }

    /// The holder's owner id, if locked.
    pub fn owner(&self) -> Option<u32> {
        match self.word.load(Relaxed) & OWNER_MASK {
            0 => None,
            o => Some(o),
        }
    }

    /// Is it locked (by anyone)?
    pub fn is_locked(&self) -> bool {
        self.owner().is_some()
    }

    /// Acquire, waiting at most `timeout` (`None`: forever).
    pub fn lock(&self, t: &P::Thread, timeout: Option<Duration>) -> Result<Acquired, Timeout> {
        let me = t.id();
        self.pending(t, true);
        if self.word.cas(0, me, Acquire, Relaxed).is_ok() {
            self.publish(t);
            return Ok(Acquired::Clean);
        }
        let r = self.lock_slow(t, me, t.deadline(timeout), true);
        self.pending(t, false);
        r
    }

    /// Acquire if that is possible without waiting (a dead holder's lock is
    /// taken over: [`Acquired::OwnerDied`]).
    pub fn try_lock(&self, t: &P::Thread) -> Result<Acquired, Timeout> {
        let me = t.id();
        self.pending(t, true);
        if self.word.cas(0, me, Acquire, Relaxed).is_ok() {
            self.publish(t);
            return Ok(Acquired::Clean);
        }
        let r = self.lock_slow(t, me, t.deadline(Some(Duration::ZERO)), false);
        self.pending(t, false);
        r
    }

    #[cold]
    fn lock_slow(
        &self,
        t: &P::Thread,
        me: u32,
        dl: <P::Thread as Thread>::Deadline,
        spin: bool,
    ) -> Result<Acquired, Timeout> {
        // Spin briefly while the holder (likely running on another CPU) finishes.
        let mut i = 0;
        while spin && t.spin(i) {
            i += 1;
            let v = self.word.load(Relaxed);
            if v == 0 && self.word.cas(0, me, Acquire, Relaxed).is_ok() {
                self.publish(t);
                return Ok(Acquired::Clean);
            }
        }
        let v = self.word.load(Relaxed);
        park::<P, _>(
            t,
            &self.word,
            Waiters::bit(WAITERS).owner(OWNER_MASK),
            &dl,
            v,
            |v| {
                if v & OWNER_MASK != 0 {
                    // Held: sleep watching the holder by the identity it
                    // published (0 while pending: then the platform polls).
                    // Its death ends the sleep, and then it is decided.
                    return Check::SleepOn(self.published());
                }
                // Free. Others may be asleep (we cannot tell), so take it with
                // WAITERS set: our unlock will wake one of them. A free word
                // marked OWNER_DIED: its holder died pending.
                match self.word.cas(v, me | WAITERS, Acquire, Relaxed) {
                    Ok(_) => {
                        self.publish(t);
                        Check::Done(Ok(if v & OWNER_DIED != 0 {
                            Acquired::OwnerDied
                        } else {
                            Acquired::Clean
                        }))
                    }
                    Err(x) => Check::Look(x),
                }
            },
            |v, expired| {
                // A death notified (or the safety poll): is the holder still alive?
                if v & OWNER_MASK != 0
                    && !mutant::<P>(MUTANT_NO_RECOVERY)
                    && self.holder(t, v).is_none()
                {
                    if let Some(a) = self.recover(t, me, v) {
                        return Some(Ok(a));
                    }
                }
                expired.then_some(Err(Timeout))
            },
        )
    }

    /// Take the lock over from the dead holder named by `dead` (a value of
    /// the word), if it still holds it.
    fn recover(&self, t: &P::Thread, me: u32, dead: u32) -> Option<Acquired> {
        let cur = self.word.load(Relaxed);
        if cur & OWNER_MASK != dead & OWNER_MASK {
            return None; // released or already recovered by someone else
        }
        if mutant::<P>(MUTANT_RECOVER_STORE) {
            t.crash_point();
            self.word.store(me | WAITERS, Relaxed);
            self.publish(t);
            return Some(Acquired::OwnerDied);
        }
        // Clear the dead holder's identity first, so that `ident` never names
        // another thread than the word's holder: from the value read now, which
        // is the dead holder's (0, or its identity: nobody else publishes while
        // the word names it, and identities are never reused).
        let ident = self.ident.load(Acquire);
        if self.word.load(Acquire) != cur {
            return None;
        }
        if ident != 0 && self.ident.cas(ident, 0, Relaxed, Relaxed).is_err() {
            return None;
        }
        t.crash_point();
        // The dead owner can no longer change the word and no other thread can
        // put `dead` back into it, so this CAS succeeds for exactly one
        // recoverer. AcqRel: whoever sees the new value sees `ident` cleared.
        self.pending(t, true);
        match self.word.cas(cur, me | WAITERS, AcqRel, Relaxed) {
            Ok(_) => {
                self.publish(t);
                Some(Acquired::OwnerDied)
            }
            Err(_) => None,
        }
    }

    /// Release. Any thread may release (as with CPython's `Lock`); releasing an
    /// unlocked mutex is [`NotLocked`].
    pub fn unlock(&self, t: &P::Thread) -> Result<(), NotLocked> {
        if self.word.load(Relaxed) & OWNER_MASK == 0 {
            return Err(NotLocked);
        }
        let order = if mutant::<P>(MUTANT_RELAXED_UNLOCK) {
            Relaxed
        } else {
            Release
        };
        // Clear the identity before the word is free (pending meanwhile: a
        // holder that dies here is turned into OWNER_DIED). The mark stays
        // until after the wake: a releaser that dies between freeing the word
        // and waking a sleeper has the kernel wake one instead, if the word
        // is still free then (its owner bits 0).
        self.pending(t, true);
        self.ident.store(0, Relaxed);
        t.crash_point();
        let prev = self.word.swap(0, order);
        if prev & OWNER_MASK == 0 {
            self.pending(t, false);
            return Err(NotLocked); // a concurrent release won
        }
        t.crash_point();
        if prev & WAITERS != 0 && !mutant::<P>(MUTANT_NO_WAKE) {
            t.wake(&self.word, 1);
        }
        self.pending(t, false);
        Ok(())
    }

    /// The raw word (for protocols built on this one, e.g. the recursive lock).
    pub fn word(&self) -> &P::W32 {
        &self.word
    }
}

#[cfg(all(test, feature = "checkers"))]
mod tests;
