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
//! last arrival at a barrier). An idle waiter therefore wakes at most once a
//! second (it woke 20 times a second before).
//!
//! # Identity and liveness
//!
//! A thread's owner id ([`ShmThread::id`](Thread::id)) is its kernel thread
//! id (`gettid`, below `2^22` on Linux) in bits 0..22, and a tag of its
//! identity in bits 22..30 (within
//! [`OWNER_MASK`](procshare_model::platform::OWNER_MASK)); it is cached in a
//! thread-local and reset in a forked child (by procshare's one fork and its
//! `pthread_atfork` child handler, see `sys::fork`).
//!
//! [`ShmThread::is_alive`](Thread::is_alive) reads `/proc/<tid>/stat`: a
//! missing entry, state `Z` (zombie) or `X` (dead), or **another identity
//! tag** means dead. So a lock whose owner was killed and whose tid the
//! kernel then gave to an unrelated process is recovered, not taken for held
//! by the newcomer. The tag is the inode number of a pidfd for the thread
//! modulo 255, plus 1 (Linux 6.9+: pidfs gives every pid it hands out its own
//! number); before 6.9, the thread's start time in clock ticks modulo 255,
//! plus 1. A newcomer whose number equals the owner's modulo 255 would still
//! be mistaken for it (a 1 in 255 chance per reuse).

use core::cell::{Cell, UnsafeCell};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use core::time::Duration;
use std::time::Instant;

use crate::sys::deathwatch::{watch, Watch};
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

/// First liveness poll interval of a wait for an owner that cannot be
/// watched (no pidfd for it).
const POLL_MIN: Duration = Duration::from_millis(1);
/// Largest such liveness poll interval.
const POLL_MAX: Duration = Duration::from_millis(50);
/// The longest sleep of any wait (see the module docs).
pub const SAFETY_POLL: Duration = Duration::from_secs(1);
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

/// The calling thread's owner id (its tid and a tag of its start time; see
/// the module docs): what lock words record.
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

/// Is the thread with owner id `owner` alive (its tid exists, is not a
/// zombie, and has the owner's start time)?
pub fn owner_is_alive(owner: u32) -> bool {
    crate::sys::thread::owner_is_alive(owner)
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
            tid: current_owner_id(),
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
        let Some(sleep) = cap(SAFETY_POLL, d) else {
            return Woke::TimedOut;
        };
        // No PRIVATE flag: the wait queue is keyed on the shared page.
        woke(futex_wait(&w.0, expected, Some(sleep)))
    }

    fn wait_owned(&self, w: &ShmWord32, expected: u32, owner: u32, d: &Option<Instant>) -> Woke {
        if owner == 0 || owner == self.tid {
            return self.wait(w, expected, d);
        }
        match watch(owner, &w.0) {
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

    /// `Shm`'s one-`memcpy` `write_cells`/`read_cells` against a byte-wise
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
        // An owner id: our tid and our identity tag. The same tid with
        // another tag (a later thread that reuses the tid) is not us.
        let me = current_owner_id();
        assert_eq!(owner_tid(me), current_tid());
        assert!(owner_is_alive(me));
        let tag = 1u32 << crate::sys::thread::TID_BITS;
        let other = if me & (0xff * tag) == tag {
            me + tag
        } else {
            (me & !(0xff * tag)) | tag
        };
        assert_eq!(owner_tid(other), current_tid());
        assert!(!owner_is_alive(other), "an impostor's tag passed for ours");
        // Distinct threads have distinct ids.
        assert_ne!(tid, current_tid());
    }
}
