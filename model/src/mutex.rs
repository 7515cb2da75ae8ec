//! A robust futex mutex: the protocol behind `Lock`, the owner word of `RLock`,
//! and the lock of every synchronized `Value`/`Array`.
//!
//! # Layout
//!
//! ```text
//! RawMutex (4 bytes, #[repr(C)])
//!   word: u32   bit 31      WAITERS: somebody may be sleeping on the word
//!               bits 0..=29 owner id (kernel tid) of the holder, 0 = unlocked
//! ```
//!
//! The state machine is Drepper's "mutex2" (unlocked / locked / locked with
//! waiters) with the owner's id in the word instead of the constant 1, the
//! format the kernel's robust and PI futexes use. Putting the owner in the same
//! word as the state makes dead-owner recovery a single CAS.
//!
//! # Invariants
//!
//! * `word & OWNER_MASK == 0` ⇔ unlocked, and then `word == 0`.
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
//! A waiter whose wait ends with `TimedOut` (its owner's death is notified that
//! way) asks the platform whether the owner is alive. If not, it CASes the word from the dead owner's value to its
//! own id and returns [`Acquired::OwnerDied`]: it holds the lock, and the data the
//! lock protects may be half-updated (like `EOWNERDEAD` or std's `PoisonError`).
//! The recoverer is told once; the lock is not poisoned afterwards.

use core::mem::offset_of;
use core::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use core::time::Duration;

use crate::park::{park, Check, Waiters};
use crate::platform::{mutant, Mutant, Platform, Thread, Word32, OWNER_MASK};

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
    /// `owner id | WAITERS`, 0 when unlocked.
    word: P::W32,
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
            .finish()
    }
}

impl<P: Platform> RawMutex<P> {
    /// The byte offset of each field of the layout table (its names, its
    /// order), as compiled: impl's `layout.rs` checks them against the table
    /// and hashes them into its layout fingerprint.
    #[doc(hidden)]
    pub const OFFSETS: &'static [(&'static str, usize)] = &[("word", offset_of!(Self, word))];

    /// An unlocked mutex.
    pub fn new() -> Self {
        RawMutex {
            word: P::W32::new(0),
        }
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
        if self.word.cas(0, me, Acquire, Relaxed).is_ok() {
            t.crash_point();
            return Ok(Acquired::Clean);
        }
        self.lock_slow(t, me, t.deadline(timeout), true)
    }

    /// Acquire if that is possible without waiting (a dead holder's lock is
    /// taken over: [`Acquired::OwnerDied`]).
    pub fn try_lock(&self, t: &P::Thread) -> Result<Acquired, Timeout> {
        let me = t.id();
        if self.word.cas(0, me, Acquire, Relaxed).is_ok() {
            t.crash_point();
            return Ok(Acquired::Clean);
        }
        self.lock_slow(t, me, t.deadline(Some(Duration::ZERO)), false)
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
                t.crash_point();
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
                    return Check::Sleep;
                }
                // Free. Others may be asleep (we cannot tell), so take it with
                // WAITERS set: our unlock will wake one of them.
                match self.word.cas(v, me | WAITERS, Acquire, Relaxed) {
                    Ok(_) => {
                        t.crash_point();
                        Check::Done(Ok(Acquired::Clean))
                    }
                    Err(x) => Check::Look(x),
                }
            },
            |v, expired| {
                // A death notified (or the safety poll): is the holder still alive?
                let owner = v & OWNER_MASK;
                if owner != 0 && !mutant::<P>(MUTANT_NO_RECOVERY) && !t.is_alive(owner) {
                    return self.recover(t, me, owner).map(Ok);
                }
                expired.then_some(Err(Timeout))
            },
        )
    }

    /// Take the lock over from `dead`, if it still holds it.
    fn recover(&self, t: &P::Thread, me: u32, dead: u32) -> Option<Acquired> {
        let cur = self.word.load(Relaxed);
        if cur & OWNER_MASK != dead {
            return None; // released or already recovered by someone else
        }
        if mutant::<P>(MUTANT_RECOVER_STORE) {
            t.crash_point();
            self.word.store(me | WAITERS, Relaxed);
            return Some(Acquired::OwnerDied);
        }
        // The dead owner can no longer change the word and no other thread can
        // put `dead` back into it, so this CAS succeeds for exactly one recoverer.
        match self.word.cas(cur, me | WAITERS, Acquire, Relaxed) {
            Ok(_) => {
                t.crash_point();
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
        let prev = self.word.swap(0, order);
        if prev & OWNER_MASK == 0 {
            return Err(NotLocked); // a concurrent release won
        }
        t.crash_point();
        if prev & WAITERS != 0 && !mutant::<P>(MUTANT_NO_WAKE) {
            t.wake(&self.word, 1);
        }
        Ok(())
    }

    /// The raw word (for protocols built on this one, e.g. the recursive lock).
    pub fn word(&self) -> &P::W32 {
        &self.word
    }
}

#[cfg(all(test, feature = "checkers"))]
mod tests;
