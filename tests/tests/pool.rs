//! Pool behaviour over real forked workers: results, errors, initializer,
//! recycling, close/terminate, callbacks.

use procshare_tests::quiet;
use std::sync::mpsc::channel;
use std::sync::OnceLock;
use std::time::Duration;

use procshare::{Pool, PoolError};
use serde::{Serialize, Serializer};

fn square(x: i64) -> i64 {
    x * x
}

fn panic_on_odd(x: u32) -> u32 {
    if x % 2 == 1 {
        panic!("odd input {x}");
    }
    x
}

#[test]
fn map_apply_starmap_imap() {
    quiet();
    let pool = Pool::builder().processes(2).build().unwrap();
    assert_eq!(pool.processes(), 2);
    let want: Vec<i64> = (0..1000).map(|x| x * x).collect();
    assert_eq!(pool.map(square, 0..1000).unwrap(), want);
    assert_eq!(
        pool.map_async(square, 0..1000, Some(7))
            .unwrap()
            .get()
            .unwrap(),
        want
    );
    assert_eq!(
        pool.map(square, Vec::<i64>::new()).unwrap(),
        Vec::<i64>::new()
    );
    assert_eq!(pool.apply(square, -3).unwrap(), 9);
    fn sub(a: i64, b: i64) -> i64 {
        a - b
    }
    assert_eq!(pool.starmap(sub, [(5, 1), (1, 5)]).unwrap(), [4, -4]);
    let v: Vec<i64> = pool
        .imap(square, 0..50, Some(3))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(v, want[..50]);
    let mut u: Vec<i64> = pool
        .imap_unordered(square, 0..50, None)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    u.sort();
    assert_eq!(u, want[..50]);
    pool.close().unwrap();
    pool.join().unwrap();
}

#[test]
fn panicking_task_is_an_error_and_the_pool_goes_on() {
    quiet();
    let pool = Pool::new(2).unwrap();
    let all = pool
        .map_async(panic_on_odd, 0..10, Some(3))
        .unwrap()
        .get_all()
        .unwrap();
    for (i, r) in all.iter().enumerate() {
        if i % 2 == 1 {
            assert_eq!(*r, Err(PoolError::TaskPanicked(format!("odd input {i}"))));
        } else {
            assert_eq!(*r, Ok(i as u32));
        }
    }
    // get() reports the first error
    assert_eq!(
        pool.map(panic_on_odd, [0, 2, 3, 5]),
        Err(PoolError::TaskPanicked("odd input 3".into()))
    );
    assert_eq!(pool.apply(panic_on_odd, 4), Ok(4));
}

static INIT: OnceLock<(u32, String)> = OnceLock::new();

fn init_store(tag: String) {
    // SAFETY-free: getpid has no preconditions.
    let _ = INIT.set((std::process::id(), tag));
}

/// (this worker's pid, pid recorded by its initializer, the tag it stored)
fn who(_: u32) -> (u32, u32, String) {
    let (pid, tag) = INIT.get().cloned().unwrap_or((0, String::new()));
    (std::process::id(), pid, tag)
}

#[test]
fn initializer_sets_per_worker_globals() {
    quiet();
    let pool = Pool::builder()
        .processes(2)
        .initializer(init_store, "hello".to_string())
        .build()
        .unwrap();
    let pids = pool.worker_pids();
    assert_eq!(pids.len(), 2);
    for (pid, init_pid, tag) in pool.map_async(who, 0..20, Some(1)).unwrap().get().unwrap() {
        assert_eq!(
            pid, init_pid,
            "the initializer ran in the task's own process"
        );
        assert_eq!(tag, "hello");
        assert!(pids.contains(&pid));
        assert_ne!(pid, std::process::id());
    }
    // The parent's global is untouched.
    assert!(INIT.get().is_none());
}

#[test]
fn maxtasksperchild_recycles_workers_and_reruns_the_initializer() {
    quiet();
    let pool = Pool::builder()
        .processes(2)
        .maxtasksperchild(1)
        .initializer(init_store, "again".to_string())
        .build()
        .unwrap();
    let r = pool.map_async(who, 0..6, Some(1)).unwrap().get().unwrap();
    let mut pids: Vec<u32> = r.iter().map(|x| x.0).collect();
    for (pid, init_pid, tag) in &r {
        assert_eq!(pid, init_pid);
        assert_eq!(tag, "again");
    }
    pids.sort();
    pids.dedup();
    assert_eq!(pids.len(), 6, "one unit per worker: six distinct processes");
}

fn init_panics(_: ()) {
    panic!("cannot initialize");
}

#[test]
fn initializer_panic_fails_build() {
    quiet();
    let e = Pool::builder()
        .processes(2)
        .initializer(init_panics, ())
        .build()
        .unwrap_err();
    assert_eq!(e, PoolError::InitializerFailed("cannot initialize".into()));
}

fn init_exits(_: ()) {
    std::process::exit(3);
}

#[test]
fn initializer_that_exits_fails_build_instead_of_respawning_forever() {
    quiet();
    let e = Pool::builder()
        .processes(1)
        .initializer(init_exits, ())
        .build()
        .unwrap_err();
    assert!(matches!(e, PoolError::InitializerFailed(_)), "{e}");
}

#[test]
fn bad_arguments() {
    quiet();
    assert_eq!(
        Pool::builder().processes(0).build().unwrap_err(),
        PoolError::NoProcesses
    );
    assert_eq!(
        Pool::builder().maxtasksperchild(0).build().unwrap_err(),
        PoolError::BadMaxTasks
    );
    let pool = Pool::new(1).unwrap();
    assert_eq!(
        pool.map_async(square, 0..3, Some(0)).unwrap_err(),
        PoolError::BadChunksize
    );
    assert_eq!(pool.join(), Err(PoolError::StillRunning));
}

/// A value whose serialization always fails.
#[derive(Debug, serde::Deserialize)]
struct NoSer(u8);
impl Serialize for NoSer {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("NoSer refuses"))
    }
}

fn make_noser(x: u8) -> NoSer {
    NoSer(x)
}

fn take_noser(x: NoSer) -> u8 {
    x.0
}

#[test]
fn unserializable_argument_and_result_are_errors_in_the_caller() {
    quiet();
    let pool = Pool::new(1).unwrap();
    let e = pool.apply_async(take_noser, NoSer(1)).unwrap_err();
    assert!(
        matches!(e, PoolError::Encode(_)) && e.to_string().contains("argument"),
        "{e}"
    );
    let e = pool.apply(make_noser, 1).unwrap_err();
    assert!(
        matches!(e, PoolError::Serialize(ref m) if m.contains("result")),
        "{e}"
    );
    // and the pool goes on
    assert_eq!(pool.apply(square, 5), Ok(25));
}

#[test]
fn calls_after_close_or_terminate_are_errors() {
    quiet();
    let pool = Pool::new(1).unwrap();
    pool.close().unwrap();
    assert_eq!(pool.apply(square, 1), Err(PoolError::NotRunning));
    assert_eq!(pool.map(square, 0..3), Err(PoolError::NotRunning));
    pool.join().unwrap();
    assert_eq!(pool.apply(square, 1), Err(PoolError::NotRunning));

    let pool = Pool::new(1).unwrap();
    pool.terminate().unwrap();
    assert_eq!(pool.apply(square, 1), Err(PoolError::NotRunning));
    pool.join().unwrap();
    assert!(pool.worker_pids().is_empty());
}

fn block_forever(_: ()) -> u8 {
    loop {
        std::thread::park();
    }
}

#[test]
fn terminate_fails_unfinished_tasks_and_get_timeout_times_out() {
    quiet();
    let pool = Pool::new(1).unwrap();
    let r = pool.apply_async(block_forever, ()).unwrap();
    assert_eq!(
        r.get_timeout(Duration::from_millis(20)),
        Err(PoolError::Timeout)
    );
    assert!(!r.ready());
    assert_eq!(r.successful(), Err(PoolError::NotReady));
    pool.terminate().unwrap();
    assert_eq!(r.get(), Err(PoolError::Terminated));
    pool.join().unwrap();
}

#[test]
fn drop_terminates() {
    quiet();
    let pool = Pool::new(1).unwrap();
    let r = pool.apply_async(block_forever, ()).unwrap();
    let pids = pool.worker_pids();
    drop(pool);
    assert_eq!(r.get(), Err(PoolError::Terminated));
    for pid in pids {
        // SAFETY: kill with signal 0 only checks existence.
        let alive = unsafe { libc::kill(pid as i32, 0) } == 0;
        assert!(!alive, "worker {pid} still exists after drop");
    }
}

#[test]
fn callbacks_run_with_results_and_errors() {
    quiet();
    let pool = Pool::new(2).unwrap();
    let (tx, rx) = channel();
    let tx2 = tx.clone();
    let r = pool
        .map_async_with(
            square,
            0..10,
            None,
            move |v: &[i64]| tx.send(Ok(v.to_vec())).unwrap(),
            move |e: &PoolError| tx2.send(Err(e.clone())).unwrap(),
        )
        .unwrap();
    assert_eq!(
        rx.recv().unwrap(),
        Ok((0..10).map(|x| x * x).collect::<Vec<_>>())
    );
    assert!(r.successful().unwrap());
    let (tx, rx) = channel();
    let r = pool
        .apply_async_with(
            panic_on_odd,
            3,
            |_| panic!("not this one"),
            move |e| tx.send(e.clone()).unwrap(),
        )
        .unwrap();
    assert_eq!(
        rx.recv().unwrap(),
        PoolError::TaskPanicked("odd input 3".into())
    );
    assert_eq!(r.successful(), Ok(false));
}

/// An iterator whose exact `size_hint` is a lie (`promised` items, yields `real`).
struct Liar {
    promised: usize,
    real: std::ops::Range<i64>,
}

impl Iterator for Liar {
    type Item = i64;
    fn next(&mut self) -> Option<i64> {
        self.real.next()
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.promised, Some(self.promised))
    }
}

#[test]
fn items_without_exact_length_and_iterators_that_lie_about_it() {
    quiet();
    let pool = Pool::new(2).unwrap();
    // No exact size_hint: collected first, the same results.
    let want: Vec<i64> = (0..300).filter(|x| x % 3 == 0).map(|x| x * x).collect();
    assert_eq!(
        pool.map(square, (0..300).filter(|x| x % 3 == 0)).unwrap(),
        want
    );
    // Fewer or more items than promised: an error, never a hang or a short result.
    for (promised, real) in [(10, 0..7), (10, 0..13), (1, 0..0), (0, 0..2)] {
        let e = pool
            .map_async(square, Liar { promised, real }, Some(3))
            .unwrap_err();
        assert_eq!(e, PoolError::BrokenSizeHint { promised });
    }
    // and the pool goes on
    assert_eq!(pool.map(square, 0..4).unwrap(), [0, 1, 4, 9]);
}

/// Serializes like `u8`, except the value 3, which refuses.
#[derive(Debug, PartialEq, serde::Deserialize)]
struct NoSerThree(u8);
impl Serialize for NoSerThree {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 == 3 {
            return Err(serde::ser::Error::custom("three refuses"));
        }
        s.serialize_u8(self.0)
    }
}

fn make_noser_three(x: u8) -> NoSerThree {
    NoSerThree(x)
}

#[test]
fn an_unserializable_result_inside_a_chunk_fails_that_task_alone() {
    quiet();
    let pool = Pool::new(1).unwrap();
    let got = pool
        .map_async(make_noser_three, 0..7u8, Some(7))
        .unwrap()
        .get_all()
        .unwrap();
    for (i, r) in got.into_iter().enumerate() {
        if i == 3 {
            assert!(
                matches!(r, Err(PoolError::Serialize(ref m)) if m.contains("result")),
                "{r:?}"
            );
        } else {
            assert_eq!(r, Ok(NoSerThree(i as u8)));
        }
    }
    let e = pool.map(make_noser_three, 0..7u8).unwrap_err();
    assert!(matches!(e, PoolError::Serialize(_)), "{e}");
}

fn one(a: u8) -> u16 {
    a as u16 * 10
}

fn three(a: i32, b: String, c: bool) -> String {
    format!("{a}{b}{c}")
}

fn four(a: u8, b: u16, c: u32, d: u64) -> u64 {
    if a == 0 {
        panic!("four got a zero");
    }
    a as u64 + b as u64 + c as u64 + d
}

#[test]
fn starmap_takes_functions_of_one_to_four_arguments() {
    quiet();
    let pool = Pool::new(2).unwrap();
    assert_eq!(pool.starmap(one, [(1,), (2,), (3,)]).unwrap(), [10, 20, 30]);
    assert_eq!(
        pool.starmap(
            three,
            [(1, "x".to_string(), true), (-2, String::new(), false)]
        )
        .unwrap(),
        ["1xtrue", "-2false"]
    );
    let items: Vec<(u8, u16, u32, u64)> = (1..=40).map(|i| (i, 1, 2, 3)).collect();
    let want: Vec<u64> = (1..=40).map(|i| i + 6).collect();
    assert_eq!(pool.starmap(four, items.clone()).unwrap(), want);
    assert_eq!(
        pool.starmap_async(four, items, Some(3))
            .unwrap()
            .get()
            .unwrap(),
        want
    );
    // A closure that captures nothing is a function too.
    assert_eq!(
        pool.starmap(|a: i64, b: i64| a * b, [(3, 4), (-1, 5)])
            .unwrap(),
        [12, -5]
    );
    // A panicking task fails alone, with its message.
    let got = pool
        .starmap_async(four, [(1, 0, 0, 0), (0, 0, 0, 0), (2, 0, 0, 0)], Some(3))
        .unwrap()
        .get_all()
        .unwrap();
    assert_eq!(
        got,
        [
            Ok(1),
            Err(PoolError::TaskPanicked("four got a zero".into())),
            Ok(2)
        ]
    );
}
