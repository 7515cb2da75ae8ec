//! The real platform: the model's protocols instantiated over shared memory,
//! Linux futexes and kernel thread ids.
//!
//! [`Shm`] implements [`procshare_model::platform::Platform`]:
//!
//! | model type | here | what it is |
//! |---|---|---|
//! | `W32` | [`ShmWord32`] | `#[repr(transparent)]` `AtomicU32`, a cross-process futex word |
//! | `W64` | [`ShmWord64`] | `#[repr(transparent)]` `AtomicU64` |
//! | `Cell<T>` | [`ShmCell<T>`] | `#[repr(transparent)]` `UnsafeCell<T>` |
//! | `Thread` | [`ShmThread`] | the calling thread: its kernel tid, futex calls, `/proc` liveness |
//!
//! # Futexes
//!
//! [`ShmThread::wait`](Thread::wait) and [`ShmThread::wake`](Thread::wake) call
//! `FUTEX_WAIT`/`FUTEX_WAKE` **without** `FUTEX_PRIVATE_FLAG`: the kernel then
//! keys the wait queue on the physical page, so waiters in different processes
//! that map the same shared page meet on the same queue.
//!
//! # Owner death
//!
//! A waiter for a lock word ([`Thread::wait_owned`]) registers the word's
//! owner with the process's death watcher (`sys::deathwatch`: a pidfd per
//! owner, one helper thread per process, `epoll`) and sleeps **without a
//! timeout** while the owner lives: its death wakes the word, and the wait
//! returns [`Woke::TimedOut`] so that the protocol recovers the lock. On a
//! kernel without pidfds for threads, a lock held by a non-main thread is
//! polled as before (1 ms doubling up to 50 ms).
//!
//! Every sleep is also capped at a *safety poll* of 1 s ([`SAFETY_POLL`]):
//! the one death nothing notifies is a notifier's that dies between changing
//! a word and waking its sleepers (an `Event::set`, a semaphore release, the
//! last arrival at a barrier, a `Condition::notify`; and for a lock, a
//! releaser killed between its swap that frees the word and its
//! `FUTEX_WAKE`, when another thread took the free word by the fast path
//! before the kernel ran the releaser's exit: if the word is still free
//! then, the kernel's robust-futex pending op wakes one sleeper). An idle
//! waiter therefore wakes at most once a second (it woke 20 times a second
//! before).
//!
//! # Identity and liveness
//!
//! A thread's owner id ([`ShmThread::id`](Thread::id)) is its kernel thread
//! id (`gettid`, below `2^22` on Linux), cached in a thread-local and reset
//! in a forked child (by procshare's one fork and its `pthread_atfork` child
//! handler, see `sys::fork`). A lock word holds it; beside it the lock
//! records its holder's *identity* ([`ShmThread::identity`](Thread::identity)):
//! the inode number of a pidfd for the thread (Linux 6.9+: pidfs gives every
//! pid the kernel hands out its own 64-bit number, never reused until
//! reboot), or before 6.9 the thread's tid with its start time.
//! [`ShmThread::occupant`](Thread::occupant) tells which thread has a tid
//! now (a pidfd for it, or `/proc/<tid>/stat`; an exited thread is nobody),
//! so a lock whose holder was killed and whose tid the kernel then gave to
//! an unrelated process is recovered, never taken for held by the newcomer
//! (the model's mutex decides; see `procshare_model::mutex`).
//!
//! The moments when a lock word names a holder whose identity is not beside
//! it yet (between its CAS and its publication, and in `unlock`) are marked
//! in the thread's robust-futex list head (`list_op_pending`, the kernel's
//! mechanism for glibc's robust mutexes,
//! [`ShmThread::publishing`](Thread::publishing)): a holder killed there has
//! its word turned into `OWNER_DIED` by the kernel before its tid can be
//! reused.

use core::cell::{Cell, UnsafeCell};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use core::time::Duration;
use std::time::Instant;

use crate::sys::deathwatch::{watch, Watch};
use crate::sys::thread::{futex_wait, futex_wake, FutexWait, Me};
use procshare_model::platform::{CellLike, Occupant, Platform, Thread, Woke, Word32, Word64};

/// The shared-memory platform (a marker type; see this module's docs).
///
/// ```
/// use procshare::internals::{Shm, ShmThread};
/// use procshare_model::platform::Thread;
/// let t = ShmThread::current();
/// assert!(t.id() > 0);
/// assert!(t.is_alive(t.id()));
/// # let _ = core::marker::PhantomData::<Shm>;
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Shm;

impl Platform for Shm {
    type W32 = ShmWord32;
    type W64 = ShmWord64;
    type Cell<T: Send> = ShmCell<T>;
    type Thread = ShmThread;

    #[inline(always)]
    fn fence(o: core::sync::atomic::Ordering) {
        crate::sys::fence(o)
    }

    #[inline(always)]
    fn fence_after_rmw() {
        crate::sys::fence_after_rmw()
    }

    /// One `memcpy`: a slice of `ShmCell<[u8; N]>` is `len * N` contiguous bytes.
    unsafe fn write_cells<const N: usize>(cells: &[ShmCell<[u8; N]>], skip: usize, src: &[u8]) {
        assert!(
            skip <= cells.len() * N && src.len() <= cells.len() * N - skip,
            "write_cells out of range"
        );
        // SAFETY: `ShmCell<[u8; N]>` is `#[repr(transparent)]` over
        // `UnsafeCell<[u8; N]>`, so the slice is `cells.len() * N` contiguous
        // bytes and writing through the `UnsafeCell` is interior mutation; the
        // range is checked above; the caller has exclusive access to it (the
        // protocol's duty, as for `with_mut`), and `src` cannot overlap it
        // (it is a shared borrow of other memory).
        unsafe {
            let base =
                UnsafeCell::raw_get(cells.as_ptr().cast::<UnsafeCell<[u8; N]>>()).cast::<u8>();
            core::ptr::copy_nonoverlapping(src.as_ptr(), base.add(skip), src.len());
        }
    }

    /// One `prefetchw` per 64-byte line of the cells.
    #[inline]
    fn prefetch_write<const N: usize>(cells: &[ShmCell<[u8; N]>]) {
        let base = cells.as_ptr().cast::<u8>();
        let len = core::mem::size_of_val(cells);
        // Addresses only (a hint reads nothing): `wrapping_add` within or
        // one past the slice.
        for off in (0..len).step_by(64) {
            crate::sys::prefetch_write(base.wrapping_add(off));
        }
    }

    /// One `memcpy` (see [`Shm::write_cells`]).
    unsafe fn read_cells<const N: usize>(cells: &[ShmCell<[u8; N]>], skip: usize, dst: &mut [u8]) {
        assert!(
            skip <= cells.len() * N && dst.len() <= cells.len() * N - skip,
            "read_cells out of range"
        );
        // SAFETY: as in `write_cells`: contiguous bytes, range checked, and no
        // concurrent writer (the caller's duty, as for `with`); `dst` is an
        // exclusive borrow of other memory.
        unsafe {
            let base =
                UnsafeCell::raw_get(cells.as_ptr().cast::<UnsafeCell<[u8; N]>>()).cast::<u8>();
            core::ptr::copy_nonoverlapping(base.add(skip), dst.as_mut_ptr(), dst.len());
        }
    }

    /// No copy: `f` reads the bytes where they lie in the shared mapping.
    unsafe fn view_cells<const N: usize, R>(
        cells: &[ShmCell<[u8; N]>],
        skip: usize,
        len: usize,
        f: impl FnOnce(&[u8]) -> R,
    ) -> R {
        assert!(
            skip <= cells.len() * N && len <= cells.len() * N - skip,
            "view_cells out of range"
        );
        // SAFETY: as in `read_cells`: contiguous bytes and the range checked
        // above; nobody writes them until we return (the caller's duty), so
        // a shared slice over them holds for the whole of `f`, which cannot
        // keep it longer (it is a borrow for the call only).
        let bytes = unsafe {
            let base =
                UnsafeCell::raw_get(cells.as_ptr().cast::<UnsafeCell<[u8; N]>>()).cast::<u8>();
            core::slice::from_raw_parts(base.add(skip).cast_const(), len)
        };
        f(bytes)
    }

    /// One `memcpy` into `out`'s spare capacity (no zero-filling first).
    unsafe fn append_cells<const N: usize>(
        cells: &[ShmCell<[u8; N]>],
        skip: usize,
        len: usize,
        out: &mut Vec<u8>,
    ) {
        assert!(
            skip <= cells.len() * N && len <= cells.len() * N - skip,
            "append_cells out of range"
        );
        out.reserve(len);
        // SAFETY: as in `read_cells` for the source (contiguous bytes, range
        // checked, no concurrent writer: the caller's duty); the destination
        // is `out`'s spare capacity, at least `len` bytes after `reserve`,
        // which the copy initializes before `set_len` exposes it.
        unsafe {
            let base =
                UnsafeCell::raw_get(cells.as_ptr().cast::<UnsafeCell<[u8; N]>>()).cast::<u8>();
            let end = out.len();
            core::ptr::copy_nonoverlapping(base.add(skip), out.as_mut_ptr().add(end), len);
            out.set_len(end + len);
        }
    }
}

/// A 32-bit futex word that may live in shared memory (`#[repr(transparent)]`
/// over [`AtomicU32`]: 4 bytes, 4-aligned, no pointers).
///
/// ```
/// use procshare::internals::ShmWord32;
/// use procshare_model::platform::Word32;
/// use core::sync::atomic::Ordering;
/// let w = ShmWord32::new(1);
/// assert_eq!(w.fetch_add(2, Ordering::SeqCst), 1);
/// assert_eq!(w.load(Ordering::SeqCst), 3);
/// ```
#[repr(transparent)]
#[derive(Debug, Default)]
pub struct ShmWord32(AtomicU32);

impl Word32 for ShmWord32 {
    #[inline(always)]
    fn new(v: u32) -> Self {
        ShmWord32(AtomicU32::new(v))
    }
    #[inline(always)]
    fn load(&self, o: Ordering) -> u32 {
        self.0.load(o)
    }
    #[inline(always)]
    fn store(&self, v: u32, o: Ordering) {
        self.0.store(v, o)
    }
    #[inline(always)]
    fn swap(&self, v: u32, o: Ordering) -> u32 {
        self.0.swap(v, o)
    }
    #[inline(always)]
    fn cas(&self, cur: u32, new: u32, s: Ordering, f: Ordering) -> Result<u32, u32> {
        self.0.compare_exchange(cur, new, s, f)
    }
    #[inline(always)]
    fn fetch_add(&self, v: u32, o: Ordering) -> u32 {
        self.0.fetch_add(v, o)
    }
    #[inline(always)]
    fn fetch_sub(&self, v: u32, o: Ordering) -> u32 {
        self.0.fetch_sub(v, o)
    }
    #[inline(always)]
    fn fetch_or(&self, v: u32, o: Ordering) -> u32 {
        self.0.fetch_or(v, o)
    }
    #[inline(always)]
    fn fetch_and(&self, v: u32, o: Ordering) -> u32 {
        self.0.fetch_and(v, o)
    }
}

/// A 64-bit atomic word that may live in shared memory (`#[repr(transparent)]`
/// over [`AtomicU64`]: 8 bytes, 8-aligned, no pointers).
///
/// ```
/// use procshare::internals::ShmWord64;
/// use procshare_model::platform::Word64;
/// use core::sync::atomic::Ordering;
/// let w = ShmWord64::new(7);
/// assert_eq!(w.swap(9, Ordering::SeqCst), 7);
/// ```
#[repr(transparent)]
#[derive(Debug, Default)]
pub struct ShmWord64(AtomicU64);

impl Word64 for ShmWord64 {
    #[inline(always)]
    fn new(v: u64) -> Self {
        ShmWord64(AtomicU64::new(v))
    }
    #[inline(always)]
    fn load(&self, o: Ordering) -> u64 {
        self.0.load(o)
    }
    #[inline(always)]
    fn store(&self, v: u64, o: Ordering) {
        self.0.store(v, o)
    }
    #[inline(always)]
    fn swap(&self, v: u64, o: Ordering) -> u64 {
        self.0.swap(v, o)
    }
    #[inline(always)]
    fn cas(&self, cur: u64, new: u64, s: Ordering, f: Ordering) -> Result<u64, u64> {
        self.0.compare_exchange(cur, new, s, f)
    }
    #[inline(always)]
    fn fetch_add(&self, v: u64, o: Ordering) -> u64 {
        self.0.fetch_add(v, o)
    }
    #[inline(always)]
    fn fetch_sub(&self, v: u64, o: Ordering) -> u64 {
        self.0.fetch_sub(v, o)
    }
}

/// A protocol-guarded cell that may live in shared memory
/// (`#[repr(transparent)]` over [`UnsafeCell<T>`]: same size and alignment as `T`).
///
/// The protocol that owns the cell decides who may access it; the cell itself
/// checks nothing.
///
/// ```
/// use procshare::internals::ShmCell;
/// use procshare_model::platform::CellLike;
/// let c = ShmCell::new(5u32);
/// // SAFETY: no other access to `c` exists.
/// c.with_mut(|p| unsafe { *p += 1 });
/// assert_eq!(c.with(|p| unsafe { *p }), 6);
/// ```
#[repr(transparent)]
#[derive(Debug, Default)]
pub struct ShmCell<T>(UnsafeCell<T>);

// SAFETY: every access goes through `with`/`with_mut`, whose callers (the model's
// protocols) guarantee exclusion; the cell only hands out raw pointers.
unsafe impl<T: Send> Send for ShmCell<T> {}
// SAFETY: as above: the protocol serializes accesses across threads and processes.
unsafe impl<T: Send> Sync for ShmCell<T> {}

impl<T: Send> CellLike<T> for ShmCell<T> {
    #[inline(always)]
    fn new(v: T) -> Self {
        ShmCell(UnsafeCell::new(v))
    }
    #[inline(always)]
    fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }
    #[inline(always)]
    fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

/// First liveness poll interval of a wait for an owner that cannot be
/// watched (no pidfd for it).
const POLL_MIN: Duration = Duration::from_millis(1);
/// Largest such liveness poll interval.
const POLL_MAX: Duration = Duration::from_millis(50);
/// The longest sleep of any wait (see the module docs).
pub const SAFETY_POLL: Duration = Duration::from_secs(1);
/// Spin iterations before a protocol goes to sleep (multi-CPU only). With
/// [`SPIN_BACKOFF_MAX`], about 6,100 `pause`s in all (as 100 iterations
/// capped at 64 were): the same budget before sleeping, spent with fewer,
/// sparser looks at the contended line.
const SPIN_LIMIT: u32 = 31;
/// log2 of the most `pause`s between two looks of a spinning waiter (the
/// backoff doubles up to it). 8 rather than 6: a waiter that looks less often
/// lets the holder keep the lock's line, and two processes incrementing a
/// `Value` under its lock went from 0.91x to 1.18x glibc's robust
/// process-shared mutex (medians of 15 interleaved rounds,
/// `PROCSHARE_BENCH_ONLY=value_lock cargo bench -p procshare --bench table`);
/// with a cap of 2 the same work fell to 0.34x.
const SPIN_BACKOFF_MAX: u32 = 8;

/// How long [`ShmThread::linger`] waits: what a consumer keeping up with a
/// dense stream adds, at most, to a message's delivery (see the ring's
/// Pacing). Measured with `PROCSHARE_BENCH_ONLY=queue_u64` and `rtt_queue`
/// (`cargo bench -p procshare --bench table`): see the README's figures.
const LINGER: Duration = Duration::from_micros(1);
/// `pause`s between two looks at the clock while lingering.
const LINGER_PAUSES: u32 = 8;

/// Iterations of [`ShmThread::spin_flat`] (one `pause` each, about 40 ns on
/// this generation of x86: some 20 µs in all) before the waiter sleeps.
const SPIN_FLAT_LIMIT: u32 = 512;

/// How many times this process's ancestry has forked into it: 0 in the
/// original process, bumped once in each forked child (by procshare's one
/// fork, `sys::fork`, and by its `pthread_atfork` child handler for
/// other forks). Process-local allocators use it to notice that they are
/// running in a copy of their parent's memory.
pub(crate) fn fork_generation() -> u64 {
    crate::sys::fork::generation()
}

/// The kernel thread id of the calling thread (cached; the cache is reset in a
/// forked child).
#[inline]
pub fn current_tid() -> u32 {
    crate::sys::thread::current_tid()
}

/// The number of CPUs this process may run on (cached; at least 1).
pub(crate) fn cpus() -> usize {
    crate::sys::thread::cpus()
}

/// Is the thread `tid` alive? Reads `/proc/<tid>/stat`. A missing entry or a
/// zombie (`Z`, `X`) is dead. By number only: [`owner_is_alive`] also tells
/// a later thread that was given the same tid.
///
/// ```
/// assert!(procshare::internals::tid_is_alive(procshare::internals::current_tid()));
/// assert!(!procshare::internals::tid_is_alive(0));
/// ```
#[cfg_attr(not(feature = "internals"), allow(dead_code))]
pub fn tid_is_alive(tid: u32) -> bool {
    crate::sys::thread::tid_is_alive(tid)
}

/// The calling thread's owner id (its kernel tid; see the module docs): what
/// lock words record.
///
/// ```
/// use procshare::internals::{current_owner_id, current_tid, owner_is_alive, owner_tid};
/// assert_eq!(owner_tid(current_owner_id()), current_tid());
/// assert!(owner_is_alive(current_owner_id()));
/// ```
pub fn current_owner_id() -> u32 {
    crate::sys::thread::current_owner_id()
}

/// The kernel thread id in an owner id.
pub fn owner_tid(owner: u32) -> u32 {
    owner & crate::sys::thread::TID_MASK
}

/// Is a thread with owner id `owner` alive (its tid exists and is not a
/// zombie)? By tid only: lock words record their holder's identity beside
/// the id, which [`ShmThread`] compares.
pub fn owner_is_alive(owner: u32) -> bool {
    crate::sys::thread::owner_is_alive(owner)
}

/// The calling thread's identity (see the module docs): nonzero, never the
/// identity of another thread (until reboot); 0 if it could not be read.
///
/// ```
/// use procshare::internals::{current_identity, current_tid, identity_of};
/// use procshare_model::platform::Occupant;
/// assert_ne!(current_identity(), 0);
/// assert_eq!(identity_of(current_tid()), Occupant::Is(current_identity()));
/// ```
#[cfg_attr(not(feature = "internals"), allow(dead_code))]
pub fn current_identity() -> u64 {
    crate::sys::thread::me().ident
}

/// The identity of the thread that has tid `tid` now (see the module docs).
#[cfg_attr(not(feature = "internals"), allow(dead_code))]
pub fn identity_of(tid: u32) -> Occupant {
    crate::sys::thread::occupant(tid)
}

/// Test hook: make [`identity_of`] (and so every liveness decision) answer
/// "alive, identity unknown" for whatever thread has a tid, as the 8-bit
/// identity tags of owner ids did when a newcomer's tag collided with a dead
/// owner's. Process-wide; for tests of that confusion only.
#[cfg_attr(not(feature = "internals"), allow(dead_code))]
pub fn force_tag_collision(on: bool) {
    crate::sys::thread::force_tag_collision(on)
}

/// The calling thread as the model's protocols see it: its owner id (kernel
/// tid), futex calls, liveness oracle and spin policy.
///
/// Cheap: [`ShmThread::current`] reads a thread-local. Holds the current
/// liveness poll interval of a wait sequence, so create one per operation.
///
/// ```
/// use procshare::internals::ShmThread;
/// use procshare_model::platform::{Thread, Woke, Word32};
/// use procshare::internals::ShmWord32;
/// let t = ShmThread::current();
/// let w = ShmWord32::new(1);
/// // The word is not 0, so the wait returns at once.
/// assert_eq!(t.wait(&w, 0, &t.deadline(None)), Woke::Mismatch);
/// ```
#[derive(Debug)]
pub struct ShmThread {
    tid: u32,
    me: Me,
    poll: Cell<Duration>,
    /// Neither `Send` nor `Sync`: `me` names this thread's robust-futex head.
    _here: core::marker::PhantomData<*const ()>,
}

impl ShmThread {
    /// The calling thread.
    #[inline]
    pub fn current() -> Self {
        ShmThread {
            tid: current_owner_id(),
            me: crate::sys::thread::me(),
            poll: Cell::new(POLL_MIN),
            _here: core::marker::PhantomData,
        }
    }
}

impl Thread for ShmThread {
    type Word = ShmWord32;
    type Deadline = Option<Instant>;

    #[inline(always)]
    fn id(&self) -> u32 {
        self.tid
    }

    fn deadline(&self, timeout: Option<Duration>) -> Option<Instant> {
        // A timeout too large to represent is "forever".
        timeout.and_then(|t| Instant::now().checked_add(t))
    }

    fn expired(&self, d: &Option<Instant>) -> bool {
        d.is_some_and(|d| Instant::now() >= d)
    }

    fn wait(&self, w: &ShmWord32, expected: u32, d: &Option<Instant>) -> Woke {
        let Some(sleep) = cap(SAFETY_POLL, d) else {
            return Woke::TimedOut;
        };
        // No PRIVATE flag: the wait queue is keyed on the shared page.
        woke(futex_wait(&w.0, expected, Some(sleep)))
    }

    fn wait_owned(
        &self,
        w: &ShmWord32,
        expected: u32,
        owner: u32,
        ident: u64,
        d: &Option<Instant>,
    ) -> Woke {
        if owner == 0 || (owner == self.tid && ident == self.me.ident) {
            return self.wait(w, expected, d);
        }
        match watch(owner, ident, &w.0) {
            Watch::Dead => Woke::TimedOut,
            Watch::Watching(reg) => {
                let Some(sleep) = cap(SAFETY_POLL, d) else {
                    return Woke::TimedOut;
                };
                let r = woke(futex_wait(&w.0, expected, Some(sleep)));
                if reg.fired() {
                    Woke::TimedOut // the owner died: the protocol recovers
                } else {
                    r
                }
            }
            Watch::Unsupported => {
                // No pidfd for this owner: poll its liveness, as before.
                let poll = self.poll.get();
                let Some(sleep) = cap(poll, d) else {
                    return Woke::TimedOut;
                };
                let r = woke(futex_wait(&w.0, expected, Some(sleep)));
                self.poll.set(if r == Woke::TimedOut {
                    (poll * 2).min(POLL_MAX)
                } else {
                    POLL_MIN
                });
                r
            }
        }
    }

    fn wake(&self, w: &ShmWord32, n: u32) -> usize {
        futex_wake(&w.0, n)
    }

    fn is_alive(&self, owner: u32) -> bool {
        owner_is_alive(owner)
    }

    #[inline(always)]
    fn identity(&self) -> u64 {
        self.me.ident
    }

    fn occupant(&self, owner: u32) -> Occupant {
        crate::sys::thread::occupant(owner)
    }

    #[inline(always)]
    fn publishing(&self, w: Option<&ShmWord32>) {
        crate::sys::thread::set_pending(&self.me, w.map(|w| &w.0));
    }

    #[inline]
    fn spin(&self, iteration: u32) -> bool {
        if iteration >= SPIN_LIMIT || cpus() <= 1 {
            return false;
        }
        for _ in 0..(1u32 << iteration.min(SPIN_BACKOFF_MAX)) {
            core::hint::spin_loop();
        }
        true
    }

    #[inline]
    fn linger(&self) -> bool {
        if cpus() <= 1 {
            return false;
        }
        // Time, not a count of `pause`s: a `pause` takes 10 to 140 cycles
        // depending on the CPU generation.
        let end = Instant::now() + LINGER;
        loop {
            for _ in 0..LINGER_PAUSES {
                core::hint::spin_loop();
            }
            if Instant::now() >= end {
                return true;
            }
        }
    }

    #[inline]
    fn spin_flat(&self, iteration: u32) -> bool {
        if iteration >= SPIN_FLAT_LIMIT || cpus() <= 1 {
            return false;
        }
        core::hint::spin_loop();
        true
    }

    #[inline(always)]
    fn crash_point(&self) {}

    #[cold]
    fn foreign_write(&self, what: &'static str) {
        log::warn!("procshare: shared memory written from outside the protocol: {what}");
    }
}

/// How long to sleep: `max`, or less if the deadline `d` comes first
/// (`None`: it has passed).
fn cap(max: Duration, d: &Option<Instant>) -> Option<Duration> {
    match d {
        None => Some(max),
        Some(d) => {
            let now = Instant::now();
            (now < *d).then(|| max.min(*d - now))
        }
    }
}

fn woke(r: FutexWait) -> Woke {
    match r {
        FutexWait::Woken => Woke::Woken,
        FutexWait::Mismatch => Woke::Mismatch,
        FutexWait::TimedOut => Woke::TimedOut,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Shm`'s one-`memcpy` `write_cells`/`read_cells`/`append_cells` against a byte-wise
    /// reference, for every offset and length over 1–4 cells of 16 and of 3
    /// bytes: the bytes land where they should and nothing else changes.
    #[test]
    fn bulk_cell_copies_match_bytewise() {
        fn check<const N: usize>() {
            // Miri (see .ci/run) interprets every byte copy: fewer cells there.
            let cells_max = if cfg!(miri) { 2 } else { 4usize };
            for n in 1..=cells_max {
                let total = n * N;
                for skip in 0..=total {
                    for len in 0..=total - skip {
                        let cells: Vec<ShmCell<[u8; N]>> =
                            (0..n).map(|i| ShmCell::new([0xA0 + i as u8; N])).collect();
                        let mut want: Vec<u8> = (0..total).map(|b| 0xA0 + (b / N) as u8).collect();
                        let src: Vec<u8> = (0..len).map(|i| i as u8).collect();
                        want[skip..skip + len].copy_from_slice(&src);
                        // SAFETY: the cells are local to this test: no other access.
                        unsafe { Shm::write_cells(&cells, skip, &src) };
                        // SAFETY: as above.
                        let got: Vec<u8> = cells
                            .iter()
                            .flat_map(|c| c.with(|p| unsafe { *p }))
                            .collect();
                        assert_eq!(got, want, "write N={N} n={n} skip={skip} len={len}");
                        let mut back = vec![0u8; len];
                        // SAFETY: as above.
                        unsafe { Shm::read_cells(&cells, skip, &mut back) };
                        assert_eq!(back, src, "read N={N} n={n} skip={skip} len={len}");
                        // Appended after what a vector holds, with and
                        // without spare capacity.
                        for spare in [0, len + 5] {
                            let mut out = Vec::with_capacity(3 + spare);
                            out.extend_from_slice(&[1, 2, 3]);
                            // SAFETY: as above.
                            unsafe { Shm::append_cells(&cells, skip, len, &mut out) };
                            assert_eq!(out[..3], [1, 2, 3], "append kept N={N} len={len}");
                            assert_eq!(out[3..], src, "append N={N} n={n} skip={skip} len={len}");
                        }
                    }
                }
            }
        }
        check::<16>();
        check::<3>();
    }

    /// Each word operation does what its name says and returns the value
    /// before it (the protocols read those returns: a count's previous value,
    /// a CAS's witness).
    #[test]
    fn word_operations_return_the_previous_value() {
        use Ordering::SeqCst;
        let w = ShmWord32::new(5);
        assert_eq!(w.load(SeqCst), 5);
        w.store(6, SeqCst);
        assert_eq!(w.swap(7, SeqCst), 6);
        assert_eq!(w.cas(7, 8, SeqCst, SeqCst), Ok(7));
        assert_eq!(w.cas(7, 9, SeqCst, SeqCst), Err(8));
        assert_eq!(w.fetch_add(4, SeqCst), 8);
        assert_eq!(w.fetch_sub(2, SeqCst), 12);
        assert_eq!(w.fetch_or(0b1_0000, SeqCst), 10);
        assert_eq!(w.fetch_and(0b1_0010, SeqCst), 26);
        assert_eq!(w.load(SeqCst), 18);
        let w = ShmWord64::new(1 << 40);
        assert_eq!(w.load(SeqCst), 1 << 40);
        w.store(6, SeqCst);
        assert_eq!(w.swap(7, SeqCst), 6);
        assert_eq!(w.cas(7, 8, SeqCst, SeqCst), Ok(7));
        assert_eq!(w.cas(7, 9, SeqCst, SeqCst), Err(8));
        assert_eq!(w.fetch_add(1 << 33, SeqCst), 8);
        assert_eq!(w.fetch_sub(3, SeqCst), (1 << 33) + 8);
        assert_eq!(w.load(SeqCst), (1 << 33) + 5);
    }

    #[test]
    fn layout_is_transparent() {
        assert_eq!(core::mem::size_of::<ShmWord32>(), 4);
        assert_eq!(core::mem::align_of::<ShmWord32>(), 4);
        assert_eq!(core::mem::size_of::<ShmWord64>(), 8);
        assert_eq!(core::mem::size_of::<ShmCell<[u8; 3]>>(), 3);
    }

    #[test]
    fn timeout_returns_timed_out_and_expires() {
        let t = ShmThread::current();
        let w = ShmWord32::new(0);
        let d = t.deadline(Some(Duration::from_millis(5)));
        let mut timed_out = 0;
        while !t.expired(&d) {
            if t.wait(&w, 0, &d) == Woke::TimedOut {
                timed_out += 1;
            }
        }
        assert!(timed_out >= 1);
        assert_eq!(t.wait(&w, 0, &d), Woke::TimedOut);
    }

    #[test]
    fn wake_all_wakes_waiters() {
        let w = std::sync::Arc::new(ShmWord32::new(0));
        let w2 = w.clone();
        let h = std::thread::spawn(move || {
            let t = ShmThread::current();
            while w2.load(Ordering::Acquire) == 0 {
                t.wait(&w2, 0, &None);
            }
        });
        w.store(1, Ordering::Release);
        ShmThread::current().wake(&w, u32::MAX);
        h.join().unwrap();
    }

    #[test]
    fn liveness() {
        assert!(tid_is_alive(current_tid()));
        assert!(!tid_is_alive(0));
        // A thread that has exited is dead, and nobody has its tid.
        let (tid, ident) = std::thread::spawn(|| (current_tid(), current_identity()))
            .join()
            .unwrap();
        // Joined: its code has ended, but the join wakes at the kernel's
        // clearing of its tid, a moment before the kernel has removed it
        // (seen under 12 test threads). A bound that turns "never" into a
        // failure, not a timing assertion.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while tid_is_alive(tid) && std::time::Instant::now() < deadline {
            std::thread::yield_now();
        }
        assert!(!tid_is_alive(tid));
        assert_eq!(identity_of(tid), Occupant::Nobody);
        // Our identity: nonzero, ours only.
        let me = current_identity();
        assert_ne!(me, 0);
        assert_ne!(ident, me);
        assert_eq!(identity_of(current_tid()), Occupant::Is(me));
        assert_eq!(owner_tid(current_owner_id()), current_tid());
        // Distinct threads have distinct ids.
        assert_ne!(tid, current_tid());
    }
}
