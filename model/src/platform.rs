//! The platform abstraction every protocol is written against.
//!
//! A protocol (mutex, semaphore, queue ring, ...) is a `#[repr(C)]` struct of
//! [`Word32`]/[`Word64`] atomics and [`CellLike`] cells, plus methods that take the
//! calling thread's context ([`Thread`]). Three platforms implement this trait:
//!
//! * `procshare::platform::Shm` (in `impl/`): the atomics are plain
//!   `AtomicU32`/`AtomicU64` placed in a `MAP_SHARED` mapping, waits are Linux
//!   `FUTEX_WAIT`/`FUTEX_WAKE` *without* `FUTEX_PRIVATE_FLAG` so that they work
//!   across processes, identities are kernel thread ids and liveness is read
//!   from `/proc`.
//! * [`crate::loom_platform::Loom`]: loom atomics, futexes emulated with a
//!   per-word loom `Mutex` + `Condvar`, deaths injected at every crash point.
//! * [`crate::shuttle_platform::Shuttle`]: the same over shuttle.
//!
//! Only the real platform's types may ever live in shared memory.
//!
//! # Time
//!
//! Protocols never read a clock. A blocking operation turns the caller's
//! optional timeout into a [`Thread::Deadline`] once, passes it to every
//! [`Thread::wait`], and asks [`Thread::expired`] after a wait returns
//! [`Woke::TimedOut`]. `TimedOut` has two meanings: the caller's deadline
//! passed, *or* a death may have happened that the waiter must look at (a
//! protocol that can be blocked by a dead owner re-checks
//! [`Thread::is_alive`] then).
//!
//! # Deaths arrive as wake-ups
//!
//! A waiter that waits for an *owner* (the holder of a lock word) says so:
//! [`Thread::wait_owned`]. The platform then notifies the owner's death: the
//! sleep ends with [`Woke::TimedOut`] when that owner dies, and at once if it is
//! already dead. The real platform watches the owner through a pidfd (one
//! helper thread per process, `epoll`), so a waiter whose owner lives sleeps
//! without a timeout; the model platforms wake the watchers of a thread when
//! it dies ([`MUTANT_DEATH_NOT_NOTIFIED`] leaves that out, and the checks prove
//! that a lock's recovery then hangs).
//!
//! # Who holds a lock word: the owner's identity
//!
//! A lock word holds its holder's owner id ([`Thread::id`]: the kernel thread
//! id on the real platform), and a kernel reuses thread ids. So a lock records
//! beside its word the holder's full *identity* ([`Thread::identity`]: 64 bits
//! that no later thread ever has; the pidfs inode number of a thread pidfd on
//! the real platform), and a waiter that finds the word held asks the
//! platform for the identity of the thread that has that id *now*
//! ([`Thread::occupant`]): another identity means the holder died and its id
//! went to a newcomer. The holder writes its identity right after it wins the
//! word; for the moment in between (and the one in `unlock` between clearing
//! the identity and freeing the word) it marks the word as *pending*
//! ([`Thread::publishing`]): if it dies there, the platform marks the word
//! [`OWNER_DIED`] and clears its id before the id can be given to anyone else
//! (the kernel's robust-futex `list_op_pending` on the real platform). The
//! protocol steps are the mutex's (`crate::mutex`).
//!
//! A plain [`Thread::wait`] has no owner to watch. One death no
//! notification can report remains: a notifier that dies between changing a
//! word and waking its sleepers (an `Event::set`, a semaphore `release`, the
//! barrier's last arrival; for a lock, a releaser that dies between freeing
//! the word and waking a sleeper, when another thread took the free word
//! before the releaser's exit: while the word is still free, the pending
//! mark has the kernel wake a sleeper). For that window every sleep also ends at a
//! *safety poll* (1 s on the real platform, so an idle waiter costs at most one
//! wake-up a second); the model platforms return `TimedOut` once per death
//! that the waiter has not been told about, which is what that poll would do.

use core::sync::atomic::Ordering;
use core::time::Duration;

/// A 32-bit atomic word that can be waited on (a futex word).
pub trait Word32: Send + Sync {
    /// A new word holding `v` (the real platform writes these into shared memory in place).
    fn new(v: u32) -> Self
    where
        Self: Sized;
    /// Atomic load.
    fn load(&self, o: Ordering) -> u32;
    /// Atomic store.
    fn store(&self, v: u32, o: Ordering);
    /// Atomic swap; returns the previous value.
    fn swap(&self, v: u32, o: Ordering) -> u32;
    /// Strong compare-and-swap: `Ok(previous)` on success, `Err(actual)` on failure.
    fn cas(&self, cur: u32, new: u32, s: Ordering, f: Ordering) -> Result<u32, u32>;
    /// Wrapping atomic add; returns the previous value.
    fn fetch_add(&self, v: u32, o: Ordering) -> u32;
    /// Wrapping atomic subtract; returns the previous value.
    fn fetch_sub(&self, v: u32, o: Ordering) -> u32;
    /// Atomic bitwise or; returns the previous value.
    fn fetch_or(&self, v: u32, o: Ordering) -> u32;
    /// Atomic bitwise and; returns the previous value.
    fn fetch_and(&self, v: u32, o: Ordering) -> u32;
}

/// A 64-bit atomic word (positions and counters that must not wrap in practice).
/// It cannot be waited on.
pub trait Word64: Send + Sync {
    /// A new word holding `v`.
    fn new(v: u64) -> Self
    where
        Self: Sized;
    /// Atomic load.
    fn load(&self, o: Ordering) -> u64;
    /// Atomic store.
    fn store(&self, v: u64, o: Ordering);
    /// Atomic swap; returns the previous value.
    fn swap(&self, v: u64, o: Ordering) -> u64;
    /// Strong compare-and-swap: `Ok(previous)` on success, `Err(actual)` on failure.
    fn cas(&self, cur: u64, new: u64, s: Ordering, f: Ordering) -> Result<u64, u64>;
    /// Wrapping atomic add; returns the previous value.
    fn fetch_add(&self, v: u64, o: Ordering) -> u64;
    /// Wrapping atomic subtract; returns the previous value.
    fn fetch_sub(&self, v: u64, o: Ordering) -> u64;
}

/// A cell whose accesses are guarded by a protocol (loom's `UnsafeCell` API).
///
/// Under loom, every access is tracked and two unsynchronized accesses (one of
/// them a write) fail the check: that is how a mutex's mutual exclusion and a
/// ring's publication are proven.
pub trait CellLike<T>: Send + Sync {
    /// A new cell holding `v`.
    fn new(v: T) -> Self
    where
        Self: Sized;
    /// Shared access through a raw pointer.
    fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R;
    /// Exclusive access through a raw pointer.
    fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R;
}

/// Why a [`Thread::wait`] returned. Any return may be spurious: callers re-check the word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woke {
    /// Woken by [`Thread::wake`] (or spuriously).
    Woken,
    /// The word did not hold the expected value when the wait began.
    Mismatch,
    /// The deadline or the liveness poll interval passed.
    TimedOut,
}

/// A seeded bug, by number. Each protocol module defines its own mutants as
/// constants (numbered by protocol: mutex 1xx, rlock 2xx, semaphore 3xx, event
/// 4xx, barrier 5xx, queue ring 6xx, manager 7xx, pool 8xx, joinable 9xx, condition
/// 10xx, platform 11xx, redis 12xx, slot queue 13xx) and asks
/// [`mutant`] at the point where the bug would be. On the real platform it is
/// [`Mutant::NONE`] and every such branch is compiled away. The test suite
/// proves that loom or shuttle catches every mutant.
///
/// Not part of the API: it exists so that the checks can prove they can fail.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mutant(pub u32);

impl Mutant {
    /// The correct protocol.
    pub const NONE: Mutant = Mutant(0);
}

/// Whatever selects the seeded bug a protocol runs with: every [`Platform`],
/// and the instantiations of the protocols that are not written against a
/// platform (the manager's `ServerSync`, the pool's dispatcher and worker loop,
/// which take a [`WithMutant`]). Read it with [`mutant`].
#[doc(hidden)]
pub trait Seeded {
    /// The seeded bug ([`Mutant::NONE`]: the correct protocol).
    const MUTANT: Mutant;
}

impl<P: Platform> Seeded for P {
    const MUTANT: Mutant = <P as Platform>::MUTANT;
}

/// The [`Seeded`] choice of mutant number `N` for a protocol that is not
/// generic over a [`Platform`] (`WithMutant<0>`, the default: the correct one).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, Default)]
pub struct WithMutant<const N: u32>;

impl<const N: u32> Seeded for WithMutant<N> {
    const MUTANT: Mutant = Mutant(N);
}

/// The per-thread context every protocol operation receives.
///
/// It carries the caller's identity (the owner id stored in lock words), the
/// futex operations and the liveness oracle. Model platforms also count steps
/// here to inject a crash at any [`Thread::crash_point`].
pub trait Thread {
    /// The futex word type of this platform.
    type Word: Word32;
    /// An absolute deadline (or none).
    type Deadline: Copy;
    /// The caller's owner id: nonzero and below [`OWNER_MASK`]. Unique among live
    /// threads of all processes (the real platform uses the kernel thread id).
    fn id(&self) -> u32;
    /// Turn a relative timeout into a deadline (`None`: wait forever).
    fn deadline(&self, timeout: Option<Duration>) -> Self::Deadline;
    /// Has `d` passed? Called after a wait returns [`Woke::TimedOut`].
    fn expired(&self, d: &Self::Deadline) -> bool;
    /// Sleep while `*w == expected`, until woken, `d` passes, or the
    /// platform's safety poll (see the [module docs](self)). May return
    /// spuriously.
    fn wait(&self, w: &Self::Word, expected: u32, d: &Self::Deadline) -> Woke;
    /// [`Thread::wait`], watching the thread with owner id `owner` (as stored
    /// in a lock word; 0: nobody, a plain `wait`) and identity `ident` (as
    /// [`Thread::occupant`] reported it; 0: unknown): the sleep also ends, with
    /// [`Woke::TimedOut`], when that thread dies, and returns `TimedOut` at
    /// once if it is already dead (or if the thread with id `owner` now has
    /// another identity). The caller then looks at the word's holder again.
    /// (The default, for a platform without death notification, is a plain
    /// `wait`: its safety poll is then the only way a death is noticed.)
    fn wait_owned(
        &self,
        w: &Self::Word,
        expected: u32,
        owner: u32,
        ident: u64,
        d: &Self::Deadline,
    ) -> Woke {
        let _ = (owner, ident);
        self.wait(w, expected, d)
    }
    /// [`Thread::wait_owned`] under [`MUTANT_DEATH_NOT_NOTIFIED`]: the owner's
    /// death is not notified (model platforms only; the default is
    /// `wait_owned`). Not part of the API.
    #[doc(hidden)]
    fn wait_owned_unnotified(
        &self,
        w: &Self::Word,
        expected: u32,
        owner: u32,
        ident: u64,
        d: &Self::Deadline,
    ) -> Woke {
        self.wait_owned(w, expected, owner, ident, d)
    }
    /// Wake up to `n` waiters of `w` (`u32::MAX`: all). Returns how many were woken.
    fn wake(&self, w: &Self::Word, n: u32) -> usize;
    /// Is a thread with owner id `owner` alive? By id only: a later thread
    /// that was given a dead thread's id passes (a zombie does not). Protocols
    /// that record an owner ask [`Thread::occupant`] and compare identities.
    fn is_alive(&self, owner: u32) -> bool {
        !matches!(self.occupant(owner), Occupant::Nobody)
    }
    /// The caller's identity: nonzero, and never the identity of another
    /// thread, living or dead (until reboot, on the real platform: the pidfs
    /// inode number of a pidfd for the thread, or before Linux 6.9 its tid
    /// with its start time).
    fn identity(&self) -> u64;
    /// May owner id `owner` have been given to more than one thread? The
    /// real platform cannot know (`true`, the default); a model platform
    /// knows, and when it says `false` a word that holds `owner` was written
    /// by the one thread that ever had it, so a protocol may skip comparing
    /// identities, which cannot change its answer (for a model checker, a
    /// scheduling point that changes nothing).
    fn id_reused(&self, owner: u32) -> bool {
        let _ = owner;
        true
    }
    /// Who has owner id `owner` now: nobody (no such thread, or a zombie),
    /// the thread with this identity, or unknown (the platform could not
    /// tell: callers take the thread for alive). Learning that a thread died
    /// synchronizes with everything it wrote before it died.
    fn occupant(&self, owner: u32) -> Occupant;
    /// Mark `w` as the word the caller is between winning (or releasing) and
    /// publishing its identity for (`None`: no longer). If the caller dies
    /// while `w` is marked and `w`'s owner bits ([`OWNER_MASK`]) hold its id,
    /// the platform replaces them, atomically and before the id can be given
    /// to another thread, by [`OWNER_DIED`] (keeping bit 31, the waiters bit)
    /// and wakes a sleeper of `w` (the kernel's robust-futex
    /// `list_op_pending`).
    fn publishing(&self, w: Option<&Self::Word>);
    /// One iteration of a bounded spin before sleeping. Returns `false` when the
    /// caller should stop spinning and sleep (always on a single CPU, and at once
    /// under a model checker, where a spin is a yield).
    fn spin(&self, iteration: u32) -> bool;
    /// Wait about a microsecond without touching shared memory, then return
    /// `true` (`false`: the caller should not spin, as with [`Thread::spin`]).
    /// A consumer keeping up with a dense stream lingers before it looks for
    /// the next message (see the ring's [Pacing](crate::ring#pacing)): each
    /// look pulls the producer's line to the consumer's core, and a look per
    /// message makes every message pay a line transfer. The model platforms
    /// take it as one spin.
    fn linger(&self) -> bool {
        self.spin(0)
    }
    /// One iteration of a bounded spin *without* backoff (one pause each),
    /// for a waiter whose wait is a hand-over that another CPU completes in
    /// well under a microsecond (the slot queue's full or empty slot, a slot
    /// lock held between a `seq` store and its unlock): an exponential
    /// backoff would make it look again long after the hand-over. Returns
    /// `false` when the caller should sleep. The model platforms spin as in
    /// [`Thread::spin`] (a bounded number of yields).
    fn spin_flat(&self, iteration: u32) -> bool {
        self.spin(iteration)
    }
    /// A point where the calling process may die (model platforms unwind here
    /// at a chosen step; the real platform does nothing).
    fn crash_point(&self);
    /// The protocol met a state that no run of it reaches (shared memory
    /// written by something else: a hint or a sequence that does not fit)
    /// and is recovering from it. The model platforms fail the run unless
    /// the thread was built to expect such writes: a sound run never gets
    /// here, so a bug that the recovery would hide still shows. The real
    /// platform logs it.
    fn foreign_write(&self, what: &'static str) {
        let _ = what;
    }
}

/// Seeded bug of the model platforms (platform mutants are 11xx): the death of
/// a thread is not notified to the waiters that watch it
/// ([`Thread::wait_owned`]); only the deaths of others reach them (as the
/// safety poll). A lock whose owner dies is then never recovered.
#[doc(hidden)]
pub const MUTANT_DEATH_NOT_NOTIFIED: Mutant = Mutant(1101);

/// Seeded bug of the lock protocols (platform mutants are 11xx): the holder of
/// a lock word is taken for alive when a thread with its owner id lives,
/// whatever that thread's identity ([`Thread::occupant`] is not compared with
/// the identity the holder recorded): a dead holder whose id went to a
/// newcomer is never recovered.
#[doc(hidden)]
pub const MUTANT_TRUST_TID: Mutant = Mutant(1102);

/// Seeded bug of the lock protocols: the holder does not mark the moment
/// between winning a lock word and recording its identity
/// ([`Thread::publishing`]): a holder that dies there is taken for alive when
/// its id goes to a newcomer.
#[doc(hidden)]
pub const MUTANT_NO_PENDING: Mutant = Mutant(1103);

/// Bits of a lock word below this mask hold the owner id (the kernel's
/// `FUTEX_TID_MASK`).
pub const OWNER_MASK: u32 = 0x3fff_ffff;

/// Set in a lock word, with its owner bits cleared, by the platform when its
/// holder died while the word was marked [`Thread::publishing`] (the kernel's
/// `FUTEX_OWNER_DIED`): the lock is free, and its next holder learns that the
/// previous one died.
pub const OWNER_DIED: u32 = 0x4000_0000;

/// Who has an owner id now ([`Thread::occupant`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Occupant {
    /// No live thread has it.
    Nobody,
    /// The live thread with this identity ([`Thread::identity`]) has it.
    Is(u64),
    /// The platform cannot tell now (taken for alive).
    Unknown,
}

/// A platform: the types a protocol is instantiated with.
pub trait Platform: Sized + Send + Sync + 'static {
    /// A 32-bit futex word.
    type W32: Word32;
    /// A 64-bit word.
    type W64: Word64;
    /// A protocol-guarded cell.
    type Cell<T: Send>: CellLike<T>;
    /// The per-thread context.
    type Thread: Thread<Word = Self::W32>;
    /// A memory fence (`core::sync::atomic::fence`; the model platforms use
    /// their checker's, which loom and shuttle track). A protocol that skips a
    /// read-modify-write when nobody waits needs `SeqCst` fences on both sides
    /// (the store-buffering pattern): the slot queue's wake-ups.
    fn fence(o: Ordering);
    /// A `SeqCst` fence placed right after a read-modify-write this thread
    /// just did (Linux's `smp_mb__after_atomic`). On x86-64 a locked
    /// instruction is already a full barrier (no load after it is performed
    /// before a store ahead of it is visible: "reads or writes cannot be
    /// reordered with locked instructions", Intel SDM vol. 3, "Memory
    /// Ordering in P6 and More Recent Processor Families"), so the real
    /// platform only keeps the compiler from moving accesses across
    /// it; everywhere else, and on the model platforms, it is
    /// [`fence(SeqCst)`](Platform::fence). The model's fence right after the
    /// read-modify-write promises no more than the locked instruction does,
    /// so what the checkers prove with it holds for the real platform.
    fn fence_after_rmw() {
        Self::fence(Ordering::SeqCst)
    }
    /// The seeded bug this platform runs with (always [`Mutant::NONE`] for the real one).
    #[doc(hidden)]
    const MUTANT: Mutant = Mutant::NONE;
    /// Does [`Thread::wait_owned`] use the identity it is given? The real
    /// platform watches the owner by it; a model platform whose death
    /// notification does not depend on it says `false`, and the protocols then
    /// skip the load that only feeds the watch (for a model checker, a
    /// scheduling point that changes nothing).
    #[doc(hidden)]
    const WATCHES_IDENTITY: bool = true;

    /// Copy `src` into a run of byte cells, viewed as one array of
    /// `cells.len() * N` bytes, starting `skip` bytes in.
    ///
    /// The default goes cell by cell through [`CellLike::with_mut`], so a
    /// model checker tracks every access to every cell; a platform whose cells
    /// are plain memory overrides it with one `memcpy` (the ring moves its
    /// payload through this).
    ///
    /// Panics if `skip + src.len() > cells.len() * N`.
    ///
    /// # Safety
    /// The caller has exclusive access to the cells the bytes land in (the
    /// same duty as for a write through `with_mut`).
    unsafe fn write_cells<const N: usize>(cells: &[Self::Cell<[u8; N]>], skip: usize, src: &[u8]) {
        assert!(
            skip + src.len() <= cells.len() * N,
            "write_cells out of range"
        );
        let (mut at, mut done) = (skip, 0);
        while done < src.len() {
            let n = (N - at % N).min(src.len() - done);
            cells[at / N].with_mut(|c| {
                // SAFETY: exclusive access is the caller's duty; `at % N + n <= N`.
                let c = unsafe { &mut *c };
                c[at % N..at % N + n].copy_from_slice(&src[done..done + n]);
            });
            at += n;
            done += n;
        }
    }

    /// A hint that this thread is about to write `cells` (a ring producer,
    /// the room after the message it just published: the next one's): a
    /// platform of plain memory fetches their cache lines for writing now,
    /// so that its bulk copy into them does not wait for them one by one,
    /// and the full barrier after that copy (releasing the lock) drains
    /// sooner. Changes no value any thread can see; the default does nothing.
    fn prefetch_write<const N: usize>(cells: &[Self::Cell<[u8; N]>]) {
        let _ = cells;
    }

    /// Copy bytes out of a run of byte cells into `dst` (the reverse of
    /// [`Platform::write_cells`]).
    ///
    /// Panics if `skip + dst.len() > cells.len() * N`.
    ///
    /// # Safety
    /// Nobody writes the cells the bytes come from while this runs (the duty
    /// of a read through `with`).
    unsafe fn read_cells<const N: usize>(
        cells: &[Self::Cell<[u8; N]>],
        skip: usize,
        dst: &mut [u8],
    ) {
        assert!(
            skip + dst.len() <= cells.len() * N,
            "read_cells out of range"
        );
        let (mut at, mut done) = (skip, 0);
        while done < dst.len() {
            let n = (N - at % N).min(dst.len() - done);
            cells[at / N].with(|c| {
                // SAFETY: no concurrent writer is the caller's duty; `at % N + n <= N`.
                let c = unsafe { &*c };
                dst[done..done + n].copy_from_slice(&c[at % N..at % N + n]);
            });
            at += n;
            done += n;
        }
    }

    /// Run `f` on `len` bytes of a run of byte cells, from `skip` bytes in,
    /// seen as one slice, and return what it returns.
    ///
    /// The default copies the bytes out first (through
    /// [`Platform::read_cells`], so a model checker tracks every read, all of
    /// them before `f` runs and before the caller's next step); a platform
    /// whose cells are plain memory lends `f` the bytes where they lie (no
    /// copy). What a checker proves with the default holds for the loan as
    /// long as the caller's duty below lasts until `view_cells` returns.
    ///
    /// Panics if `skip + len > cells.len() * N`.
    ///
    /// # Safety
    /// As for [`Platform::read_cells`], for as long as `view_cells` runs:
    /// nobody writes those cells until it has returned.
    unsafe fn view_cells<const N: usize, R>(
        cells: &[Self::Cell<[u8; N]>],
        skip: usize,
        len: usize,
        f: impl FnOnce(&[u8]) -> R,
    ) -> R {
        let mut copy = vec![0u8; len];
        // SAFETY: the caller's duty, passed on.
        unsafe { Self::read_cells(cells, skip, &mut copy) };
        f(&copy)
    }

    /// Append `len` bytes of a run of byte cells, from `skip` bytes in, to
    /// `out` (what [`Platform::read_cells`] does into the vector's new end).
    /// The default zero-fills the new end, then reads over it; a platform
    /// whose cells are plain memory copies straight into the spare capacity
    /// (one pass over the bytes instead of two).
    ///
    /// Panics if `skip + len > cells.len() * N`.
    ///
    /// # Safety
    /// As for [`Platform::read_cells`].
    unsafe fn append_cells<const N: usize>(
        cells: &[Self::Cell<[u8; N]>],
        skip: usize,
        len: usize,
        out: &mut Vec<u8>,
    ) {
        let old = out.len();
        out.resize(old + len, 0);
        // SAFETY: the caller's duty, passed on.
        unsafe { Self::read_cells(cells, skip, &mut out[old..]) }
    }
}

/// Is mutant `m` active in `P` (a [`Platform`], or another [`Seeded`] choice)?
#[doc(hidden)]
#[inline(always)]
pub const fn mutant<P: Seeded + ?Sized>(m: Mutant) -> bool {
    P::MUTANT.0 == m.0
}

#[cfg(test)]
mod tests;
