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
//! Each sleep is capped at a *liveness poll interval* that starts at 1 ms and
//! doubles up to 50 ms while a thread keeps timing out (and starts again at
//! 1 ms after a real wake-up). When the cap, rather than a wake-up, ends a
//! sleep, `wait` returns [`Woke::TimedOut`]: the protocol then re-checks
//! whether the owner it waits for is still alive. So a lock whose owner was
//! killed with `kill -9` is recovered within about 50 ms at worst.
//!
//! # Identity and liveness
//!
//! A thread's owner id is its kernel thread id (`gettid`), cached in a
//! thread-local and reset in a forked child (by procshare's one fork and its
//! `pthread_atfork` child handler, see `sys::fork`). Linux tids are
//! below `2^22` by default (`/proc/sys/kernel/pid_max` can be at most `2^22`),
//! so they always fit [`OWNER_MASK`](procshare_model::platform::OWNER_MASK).
//!
//! [`ShmThread::is_alive`](Thread::is_alive) reads `/proc/<tid>/stat`: a
//! missing entry, or state `Z` (zombie) or `X` (dead), means dead. A process
//! killed with `kill -9` but not yet reaped by its parent is a zombie and
//! counts as dead.
//!
//! **Limitation (pid reuse):** the check is by number. If the owner died and
//! the kernel reused its tid for a new, live thread before a waiter looked,
//! the lock is considered still owned, and the waiters keep waiting until that
//! new thread exits. Pids are handed out cyclically up to `pid_max` (4 million
//! by default on 64-bit), so this needs millions of thread creations within
//! one poll interval, which does not happen in practice; a pidfd or a start
//! time check would close the gap at the cost of a wider lock word.

use core::cell::{Cell, UnsafeCell};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use core::time::Duration;
use std::time::Instant;

use crate::sys::thread::{futex_wait, futex_wake, FutexWait};
use procshare_model::platform::{CellLike, Platform, Thread, Woke, Word32, Word64};

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

/// First liveness poll interval of a wait sequence.
const POLL_MIN: Duration = Duration::from_millis(1);
/// Largest liveness poll interval.
const POLL_MAX: Duration = Duration::from_millis(50);
/// Spin iterations before a protocol goes to sleep (multi-CPU only).
const SPIN_LIMIT: u32 = 100;

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

/// Is the thread `tid` alive? Reads `/proc/<tid>/stat` (see the module docs
/// for the pid-reuse limitation). A missing entry or a zombie (`Z`, `X`) is dead.
///
/// ```
/// assert!(procshare::internals::tid_is_alive(procshare::internals::current_tid()));
/// assert!(!procshare::internals::tid_is_alive(0));
/// ```
pub fn tid_is_alive(tid: u32) -> bool {
    crate::sys::thread::tid_is_alive(tid)
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
    poll: Cell<Duration>,
}

impl ShmThread {
    /// The calling thread.
    #[inline]
    pub fn current() -> Self {
        ShmThread {
            tid: current_tid(),
            poll: Cell::new(POLL_MIN),
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
        let poll = self.poll.get();
        let mut sleep = poll;
        if let Some(d) = d {
            let now = Instant::now();
            if now >= *d {
                return Woke::TimedOut;
            }
            sleep = sleep.min(*d - now);
        }
        // No PRIVATE flag: the wait queue is keyed on the shared page.
        match futex_wait(&w.0, expected, Some(sleep)) {
            FutexWait::Woken => {
                self.poll.set(POLL_MIN);
                Woke::Woken
            }
            FutexWait::Mismatch => {
                self.poll.set(POLL_MIN);
                Woke::Mismatch
            }
            FutexWait::TimedOut => {
                self.poll.set((poll * 2).min(POLL_MAX));
                Woke::TimedOut
            }
        }
    }

    fn wake(&self, w: &ShmWord32, n: u32) -> usize {
        futex_wake(&w.0, n)
    }

    fn is_alive(&self, owner: u32) -> bool {
        tid_is_alive(owner)
    }

    #[inline]
    fn spin(&self, iteration: u32) -> bool {
        if iteration >= SPIN_LIMIT || cpus() <= 1 {
            return false;
        }
        for _ in 0..(1u32 << iteration.min(6)) {
            core::hint::spin_loop();
        }
        true
    }

    #[inline(always)]
    fn crash_point(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Shm`'s one-`memcpy` `write_cells`/`read_cells` against a byte-wise
    /// reference, for every offset and length over 1–4 cells of 16 and of 3
    /// bytes: the bytes land where they should and nothing else changes.
    #[test]
    fn bulk_cell_copies_match_bytewise() {
        fn check<const N: usize>() {
            for n in 1..=4usize {
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
                    }
                }
            }
        }
        check::<16>();
        check::<3>();
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
        // A thread that has exited is dead.
        let tid = std::thread::spawn(current_tid).join().unwrap();
        assert!(!tid_is_alive(tid));
        // Distinct threads have distinct ids.
        assert_ne!(tid, current_tid());
    }
}
