//! Shared memory over real forked processes: visibility both ways, the arena's
//! packing, exact sums under the lock (proptest), disjoint array writes, the
//! synchronization primitives across processes, and no leaks (fds, /dev/shm).
//!
//! Process ordering uses pipes (and, in the primitives' own tests, the
//! library's Event/Semaphore/Barrier), never sleeps.

use procshare_tests::quiet;
use std::sync::atomic::{AtomicU64, Ordering};

use proptest::prelude::*;

use procshare::internals::{arena_stats, ShmSlice};
use procshare::{Barrier, BoundedSemaphore, Event, Lock, RLock, Semaphore, SyncError};

const GENEROUS: std::time::Duration = std::time::Duration::from_secs(60);
use procshare::{Array, Process, RawArray, RawValue, Value};

/// A pipe used as a gate: `open(n)` lets `n` blocked `pass()` calls through.
/// Both ends are closed when the value is dropped.
struct Gate {
    r: i32,
    w: i32,
}

impl Gate {
    fn new() -> Gate {
        let mut f = [0; 2];
        // SAFETY: a valid 2-int array.
        assert_eq!(unsafe { libc::pipe2(f.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        Gate { r: f[0], w: f[1] }
    }
    /// Blocks until a byte arrives (usable from any process holding a copy).
    fn pass(&self) -> bool {
        let mut b = [0u8; 1];
        // SAFETY: valid fd and buffer.
        unsafe { libc::read(self.r, b.as_mut_ptr().cast(), 1) == 1 }
    }
    fn open(&self, n: usize) {
        for _ in 0..n {
            // SAFETY: valid fd and buffer.
            assert_eq!(unsafe { libc::write(self.w, b"x".as_ptr().cast(), 1) }, 1);
        }
    }
    /// A copy of the fds for a child (the parent's value still owns them).
    fn share(&self) -> GateRef {
        GateRef {
            r: self.r,
            w: self.w,
        }
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        // SAFETY: our own fds, closed once.
        unsafe {
            libc::close(self.r);
            libc::close(self.w);
        }
    }
}

/// The child's view of a [`Gate`] (does not close the fds).
#[derive(Clone, Copy)]
struct GateRef {
    r: i32,
    w: i32,
}

impl GateRef {
    fn pass(&self) -> bool {
        let mut b = [0u8; 1];
        // SAFETY: valid fd and buffer.
        unsafe { libc::read(self.r, b.as_mut_ptr().cast(), 1) == 1 }
    }
    fn open(&self) {
        // SAFETY: valid fd and buffer.
        unsafe { libc::write(self.w, b"x".as_ptr().cast(), 1) };
    }
}

fn run(f: impl FnOnce() + Send + 'static) -> Process {
    let mut p = Process::new(f);
    p.start().unwrap();
    p
}

#[test]
fn child_write_is_seen_by_parent_memfd_is_map_shared() {
    quiet();
    let s = ShmSlice::from_fn(1000, |_| AtomicU64::new(0)).unwrap();
    let c = s.clone();
    let mut p = run(move || {
        for (i, x) in c.iter().enumerate() {
            x.store(i as u64 * 3, Ordering::SeqCst);
        }
    });
    assert_eq!(p.join().unwrap(), 0);
    for (i, x) in s.iter().enumerate() {
        assert_eq!(x.load(Ordering::SeqCst), i as u64 * 3);
    }
}

#[test]
fn seed_002_value_and_array_programs() {
    quiet();
    // Python: var = Value('i', 5); child waits, sees 3 after the parent's change.
    let var = Value::new(5i32).unwrap();
    let arr = Array::from_values([1i32, 2, 3]).unwrap();
    let changed = Gate::new();
    let (v, a, s) = (var.clone(), arr.clone(), changed.share());
    let mut p = run(move || {
        assert!(s.pass());
        assert_eq!(v.get(), 3);
        assert_eq!(a.get(0).unwrap(), 100);
    });
    var.set(3);
    arr.set(0, 100).unwrap();
    changed.open(1);
    assert_eq!(p.join().unwrap(), 0);
}

#[test]
fn ten_thousand_values_share_pages() {
    let before = arena_stats();
    let vs: Vec<Value<i32>> = (0..10_000).map(|i| Value::new(i).unwrap()).collect();
    let after = arena_stats();
    // Each Value is a 16-byte data block plus a small RLock block: a few
    // hundred KiB, i.e. at most a couple of 1 MiB segments (other tests in
    // this binary allocate concurrently, so allow a little slack), never
    // 10,000 pages (40 MB).
    let new_segments = after.segments.saturating_sub(before.segments);
    let new_bytes = after.mapped_bytes.saturating_sub(before.mapped_bytes);
    assert!(
        new_segments <= 3,
        "{new_segments} segments for 10,000 values"
    );
    assert!(
        new_bytes <= 3 << 20,
        "{new_bytes} bytes mapped for 10,000 values"
    );
    assert!(vs.iter().enumerate().all(|(i, v)| v.get() == i as i32));
}

#[test]
fn raw_value_and_raw_array_are_shared() {
    quiet();
    let v = RawValue::new(1u64).unwrap();
    let a = RawArray::<u16>::zeroed(5).unwrap();
    let (v2, a2) = (v.clone(), a.clone());
    let mut p = run(move || {
        v2.set(v2.get() + 1);
        a2.set(4, 7).unwrap();
        assert!(a2.set(5, 1).is_err());
    });
    assert_eq!(p.join().unwrap(), 0);
    assert_eq!(v.get(), 2);
    assert_eq!(a.to_vec(), [0, 0, 0, 0, 7]);
}

#[test]
fn array_index_errors() {
    let a = Array::<i64>::zeroed(2).unwrap();
    let e = a.get(2).unwrap_err();
    assert_eq!((e.index, e.len), (2, 2));
    assert!(a.set(9, 1).is_err());
    assert_eq!(a.to_vec(), [0, 0]);
    let g = a.lock().unwrap();
    assert_eq!(g.len(), 2);
    assert_eq!(&g[..1], &[0]);
}

#[test]
fn value_with_caller_supplied_lock() {
    quiet();
    // An RLock: a plain Lock is refused at compile time (any thread could
    // release it under a guard; see `Value::with_lock`).
    let lock = RLock::new().unwrap();
    let a = Value::with_lock(0i64, lock.clone()).unwrap();
    let b = Value::with_lock(0i64, lock.clone()).unwrap();
    let g = a.lock().unwrap();
    // The shared lock is held: b cannot be locked either (by another thread:
    // this one may re-enter the RLock).
    std::thread::scope(|s| s.spawn(|| assert!(b.try_lock().is_err())).join().unwrap());
    assert!(lock.is_locked());
    drop(g);
    std::thread::scope(|s| s.spawn(|| assert!(b.try_lock().is_ok())).join().unwrap());
    // An RLock may be taken around get/set (Python's `with v.get_lock(): v.value += 1`).
    let r = Value::with_lock(1u8, RLock::new().unwrap()).unwrap();
    let outer = r.get_lock().lock().unwrap();
    r.set(r.get() + 1);
    drop(outer);
    assert_eq!(r.get(), 2);
}

#[test]
#[should_panic(expected = "already holds a guard")]
fn second_guard_from_same_thread_is_refused() {
    let v = Value::new(1i32).unwrap();
    let _g = v.lock().unwrap();
    let _h = v.lock(); // would alias the data through the recursive lock
}

fn add_in_processes(amounts: &[Vec<i16>]) -> i64 {
    let v = Value::new(0i64).unwrap();
    let go = Gate::new();
    let mut ps: Vec<_> = amounts
        .iter()
        .map(|mine| {
            let (v, go, mine) = (v.clone(), go.share(), mine.clone());
            run(move || {
                assert!(go.pass());
                for a in mine {
                    *v.lock().unwrap() += a as i64;
                }
            })
        })
        .collect();
    go.open(amounts.len());
    for p in &mut ps {
        assert_eq!(p.join().unwrap(), 0);
    }
    v.get()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn processes_adding_under_the_lock_give_the_exact_sum(
        amounts in prop::collection::vec(prop::collection::vec(any::<i16>(), 0..2000), 1..=8)
    ) {
        quiet();
        let expected: i64 = amounts.iter().flatten().map(|&a| a as i64).sum();
        prop_assert_eq!(add_in_processes(&amounts), expected);
    }

    #[test]
    fn disjoint_array_writes_are_all_seen(
        procs in 1usize..=6,
        len in 1usize..600,
        seed in any::<u64>(),
    ) {
        quiet();
        let a = Array::<u64>::zeroed(len).unwrap();
        let value = move |i: usize| seed.wrapping_mul(i as u64 + 1) | 1;
        let mut ps: Vec<_> = (0..procs)
            .map(|k| {
                let a = a.clone();
                run(move || {
                    for i in (k..len).step_by(procs) {
                        a.set(i, value(i)).unwrap();
                    }
                })
            })
            .collect();
        for p in &mut ps {
            prop_assert_eq!(p.join().unwrap(), 0);
        }
        let got = a.to_vec();
        for (i, g) in got.iter().enumerate() {
            prop_assert_eq!(*g, value(i));
        }
    }
}

fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn procshare_dev_shm_entries() -> Vec<String> {
    std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains("procshare"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn no_fd_leak_and_nothing_in_dev_shm() {
    quiet();
    // Counted in a single-threaded child, so that other test threads opening
    // files cannot disturb the count.
    let mut p = run(|| {
        let work = || {
            let v = Value::new(1i64).unwrap();
            let a = Array::<u8>::zeroed(100_000).unwrap(); // a dedicated segment
            let (l, r) = (Lock::new().unwrap(), RLock::new().unwrap());
            let (e, sem, bs, b) = (
                Event::new().unwrap(),
                Semaphore::new(1).unwrap(),
                BoundedSemaphore::new(1).unwrap(),
                Barrier::new(1).unwrap(),
            );
            e.set();
            assert!(e.wait_timeout(GENEROUS));
            sem.acquire();
            bs.acquire();
            bs.release().unwrap();
            b.wait().unwrap();
            let done = Gate::new();
            let (v2, a2, d2) = (v.clone(), a.clone(), done.share());
            let mut c = Process::new(move || {
                *v2.lock().unwrap() += 1;
                a2.set(99_999, 1).unwrap();
                d2.open();
            });
            c.start().unwrap();
            assert!(done.pass());
            assert_eq!(c.join().unwrap(), 0);
            drop((l.lock().unwrap(), r.lock().unwrap()));
            assert_eq!(v.get(), 2);
            assert_eq!(a.get(99_999).unwrap(), 1);
        };
        work(); // warm up the arena (its segments stay mapped, without fds)
        let before = fd_count();
        for _ in 0..20 {
            work();
        }
        let after = fd_count();
        // SAFETY: leave the child; exit code 3 reports a leak.
        unsafe { libc::_exit(if before == after { 0 } else { 3 }) }
    });
    assert_eq!(p.join().unwrap(), 0, "file descriptors leaked");
    assert!(procshare_dev_shm_entries().is_empty());
    // Our segments are memfds: visible in the maps as such, never as files.
    let _keep = Value::new(0u8).unwrap();
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    assert!(maps.contains("/memfd:procshare"));
    assert!(!maps.contains("/dev/shm/"));
}

#[test]
fn nothing_left_after_kill_9_of_a_process_that_made_objects() {
    quiet();
    let made = Gate::new();
    let never = Gate::new();
    let (m, n) = (made.share(), never.share());
    let mut p = run(move || {
        let _objs: Vec<_> = (0..100).map(|i| Value::new(i).unwrap()).collect();
        let _big = Array::<u64>::zeroed(1 << 16).unwrap();
        m.open();
        n.pass(); // never opened: blocks until killed
    });
    assert!(made.pass());
    p.kill().unwrap();
    assert_eq!(p.join().unwrap(), -9);
    assert!(procshare_dev_shm_entries().is_empty());
}

#[test]
fn futex_wake_reaches_a_waiter_in_another_process() {
    use procshare::internals::ShmBox;
    use procshare::internals::{ShmThread, ShmWord32};
    use procshare_model::platform::{Thread, Word32};
    quiet();
    // Without FUTEX_PRIVATE_FLAG the kernel keys the wait on the shared page,
    // so the parent's wake finds the child's waiter (it returns 1). With the
    // private flag it never would, and only the liveness poll would end sleeps.
    let word = ShmBox::new(ShmWord32::new(0)).unwrap();
    let w = word.clone();
    let mut p = run(move || {
        let t = ShmThread::current();
        while w.load(Ordering::Acquire) == 0 {
            t.wait(&w, 0, &None);
        }
    });
    let t = ShmThread::current();
    let guard = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut woke = 0;
    while woke == 0 && std::time::Instant::now() < guard {
        woke = t.wake(&word, 1);
        std::thread::yield_now();
    }
    word.store(1, Ordering::Release);
    t.wake(&word, u32::MAX);
    assert_eq!(p.join().unwrap(), 0);
    assert_eq!(
        woke, 1,
        "a cross-process futex wake never reached the waiter"
    );
}

#[test]
fn semaphore_across_processes() {
    quiet();
    let items = Semaphore::new(0).unwrap();
    let done = Semaphore::new(0).unwrap();
    assert!(!items.try_acquire());
    assert!(!items.acquire_timeout(std::time::Duration::from_millis(5)));
    let (i, d) = (items.clone(), done.clone());
    let mut p = run(move || {
        for _ in 0..100 {
            assert!(i.acquire_timeout(GENEROUS));
        }
        d.release().unwrap();
    });
    for _ in 0..100 {
        items.release().unwrap();
    }
    assert!(done.acquire_timeout(GENEROUS));
    assert_eq!(p.join().unwrap(), 0);
    assert_eq!(items.get_value(), 0);
}

#[test]
fn bounded_semaphore_refuses_over_release() {
    let s = BoundedSemaphore::new(2).unwrap();
    assert!(matches!(s.release(), Err(SyncError::ReleasedTooManyTimes)));
    s.acquire();
    s.release().unwrap();
    assert!(matches!(s.release(), Err(SyncError::ReleasedTooManyTimes)));
    assert_eq!(s.get_value(), 2);
}

#[test]
fn event_across_processes() {
    quiet();
    let ping = Event::new().unwrap();
    let pong = Event::new().unwrap();
    assert!(!ping.is_set());
    assert!(!ping.wait_timeout(std::time::Duration::from_millis(5)));
    let (a, b) = (ping.clone(), pong.clone());
    let mut p = run(move || {
        assert!(a.wait_timeout(GENEROUS));
        b.set();
    });
    ping.set();
    assert!(pong.wait_timeout(GENEROUS));
    assert_eq!(p.join().unwrap(), 0);
    ping.clear();
    assert!(!ping.is_set());
}

#[test]
fn barrier_across_processes() {
    quiet();
    let parties = 4;
    let b = Barrier::new(parties).unwrap();
    let hits = Value::new(0u32).unwrap();
    let mut ps: Vec<_> = (0..parties - 1)
        .map(|_| {
            let (b, hits) = (b.clone(), hits.clone());
            run(move || {
                for round in 0..3u32 {
                    *hits.lock().unwrap() += 1;
                    b.wait_timeout(GENEROUS).unwrap();
                    // Everybody's increment of this round is visible after the barrier.
                    assert!(hits.get() >= (round + 1) * 4);
                    b.wait_timeout(GENEROUS).unwrap();
                }
            })
        })
        .collect();
    for round in 0..3u32 {
        *hits.lock().unwrap() += 1;
        b.wait_timeout(GENEROUS).unwrap();
        assert!(hits.get() >= (round + 1) * 4);
        b.wait_timeout(GENEROUS).unwrap();
    }
    for p in &mut ps {
        assert_eq!(p.join().unwrap(), 0);
    }
    assert_eq!(hits.get(), 12);
}

#[test]
fn broken_barrier() {
    let b = Barrier::new(2).unwrap();
    // Nobody else comes: the timeout breaks the barrier, as in CPython.
    assert!(matches!(
        b.wait_timeout(std::time::Duration::from_millis(5)),
        Err(SyncError::BrokenBarrier)
    ));
    assert!(b.is_broken());
    assert!(matches!(b.wait(), Err(SyncError::BrokenBarrier)));
    b.reset();
    assert!(!b.is_broken());
    b.abort();
    assert!(matches!(b.wait(), Err(SyncError::BrokenBarrier)));
}

/// The shared counter the barrier actions below bump (set before forking, so
/// every party's action sees the same shared `Value`).
static ACTION_COUNT: std::sync::OnceLock<Value<u32>> = std::sync::OnceLock::new();

fn bump_action_count() {
    *ACTION_COUNT
        .get()
        .expect("set before the parties start")
        .lock()
        .unwrap() += 1;
}

/// Python's `Barrier(parties, action)`: in each generation the action runs
/// exactly once, after everyone arrived and before anyone is released, so
/// every party sees the count of the generations passed so far.
#[test]
fn barrier_action_runs_once_per_generation_before_release() {
    quiet();
    let parties = 4;
    let count = ACTION_COUNT.get_or_init(|| Value::new(0u32).unwrap());
    let b = Barrier::with_action(parties, bump_action_count).unwrap();
    let mut ps: Vec<_> = (0..parties - 1)
        .map(|_| {
            let b = b.clone();
            run(move || {
                for round in 1..=3u32 {
                    b.wait_timeout(GENEROUS).unwrap();
                    let seen = ACTION_COUNT.get().unwrap().get();
                    assert_eq!(seen, 2 * round - 1, "after generation {}", 2 * round - 1);
                    b.wait_timeout(GENEROUS).unwrap(); // a second generation per round
                }
            })
        })
        .collect();
    for round in 1..=3u32 {
        b.wait_timeout(GENEROUS).unwrap();
        assert_eq!(
            count.get(),
            2 * round - 1,
            "after generation {}",
            2 * round - 1
        );
        b.wait_timeout(GENEROUS).unwrap();
    }
    for p in &mut ps {
        assert_eq!(p.join().unwrap(), 0);
    }
    assert_eq!(count.get(), 6);
}

fn panicking_action() {
    panic!("the bell is broken");
}

/// An action that panics: the party that ran it gets the panic message, the
/// other gets `BrokenBarrier`, and nobody hangs.
#[test]
fn barrier_action_panic_breaks_the_barrier() {
    quiet();
    let b = Barrier::with_action(2, panicking_action).unwrap();
    // What the child's `wait` returned: 1 BrokenBarrier, 2 the action's panic, 3 other.
    let outcome = Value::new(0u32).unwrap();
    let mut p = run({
        let (b, outcome) = (b.clone(), outcome.clone());
        move || {
            outcome.set(match b.wait_timeout(GENEROUS) {
                Err(SyncError::BrokenBarrier) => 1,
                Err(SyncError::BarrierActionFailed(_)) => 2,
                _ => 3,
            })
        }
    });
    let mine = b.wait_timeout(GENEROUS);
    assert_eq!(p.join().unwrap(), 0);
    let theirs = outcome.get();
    match mine {
        Err(SyncError::BarrierActionFailed(m)) => {
            assert!(m.contains("the bell is broken"), "{m}");
            assert_eq!(theirs, 1, "the other party must see BrokenBarrier");
        }
        Err(SyncError::BrokenBarrier) => assert_eq!(theirs, 2, "the child ran the action"),
        other => panic!("{other:?}"),
    }
    assert!(b.is_broken());
}
