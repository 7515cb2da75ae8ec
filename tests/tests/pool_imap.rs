//! `imap` and `imap_unordered` stream: the input is read as results are
//! taken (a bounded number of chunks ahead), so an endless input works, the
//! first result comes before the input ends, and memory stays bounded.
//! Before, an input without an exact length was collected first (an endless
//! one: "capacity overflow"; one that waits for a result: never returns).
//!
//! Ordering is by procshare `Event`s, never by sleeping.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::OnceLock;
use std::time::Duration;

use procshare::{Event, Pool, PoolError};
use procshare_tests::quiet;

const GENEROUS: Duration = Duration::from_secs(30);

fn double(x: u64) -> u64 {
    2 * x
}

fn with_pid(x: u64) -> (u64, u32) {
    (x, std::process::id())
}

/// At most this many items are read and not yet taken (the documented
/// bound: 4 chunks per worker), plus the chunk being read.
fn bound(processes: usize, chunk: usize) -> usize {
    4 * processes * chunk + chunk
}

#[test]
fn endless_input_take_1000() {
    quiet();
    static PULLED: AtomicUsize = AtomicUsize::new(0);
    let pool = Pool::new(2).unwrap();
    for chunk in [1, 7] {
        PULLED.store(0, SeqCst);
        let input = (0u64..).inspect(|_| {
            PULLED.fetch_add(1, SeqCst);
        });
        let got: Vec<u64> = pool
            .imap(double, input, Some(chunk))
            .unwrap()
            .take(1000)
            .map(Result::unwrap)
            .collect();
        assert_eq!(got, (0..1000).map(|x| 2 * x).collect::<Vec<_>>());
        // The Imap is dropped: the input is read no further.
        let pulled = PULLED.load(SeqCst);
        assert!(
            pulled <= 1000 + bound(2, chunk),
            "read {pulled} items for 1000 results (chunksize {chunk})"
        );
        let mut u: Vec<u64> = pool
            .imap_unordered(double, 0u64.., Some(chunk))
            .unwrap()
            .take(1000)
            .map(Result::unwrap)
            .collect();
        u.sort();
        // Unordered: 1000 distinct doubled values, read ahead at most the bound.
        u.dedup();
        assert_eq!(u.len(), 1000);
        assert!(u
            .iter()
            .all(|v| v % 2 == 0 && *v < 2 * (1000 + bound(2, chunk) as u64)));
    }
    pool.close().unwrap();
    pool.join().unwrap();
}

/// The input yields one chunk, then waits (at most `GENEROUS`) for `ev`,
/// which the test sets only once it has received the first result.
fn first_result_before_input_ends(ordered: bool, chunk: usize) {
    quiet();
    let pool = Pool::new(2).unwrap();
    let ev = Event::new().unwrap();
    let timed_out = std::sync::Arc::new(AtomicBool::new(false));
    let (ev2, t2) = (ev.clone(), timed_out.clone());
    let input = (0..20u64).inspect(move |&i| {
        if i == chunk as u64 && !ev2.wait_timeout(GENEROUS) {
            t2.store(true, SeqCst);
        }
    });
    let mut it = if ordered {
        pool.imap(with_pid, input, Some(chunk)).unwrap()
    } else {
        pool.imap_unordered(with_pid, input, Some(chunk)).unwrap()
    };
    let first = it.next_timeout(GENEROUS).expect("a result").unwrap();
    // Only the first chunk was readable: the first result is from it.
    assert!(first.0 < chunk as u64, "first result {first:?}");
    ev.set();
    let mut all: Vec<(u64, u32)> = vec![first];
    all.extend(it.map(Result::unwrap));
    assert!(
        !timed_out.load(SeqCst),
        "the input waited for a result that only came after the input ended"
    );
    let mut xs: Vec<u64> = all.iter().map(|p| p.0).collect();
    if ordered {
        assert_eq!(xs, (0..20).collect::<Vec<_>>());
    } else {
        xs.sort();
        assert_eq!(xs, (0..20).collect::<Vec<_>>());
    }
    // Chunks are units: the tasks of one chunk ran in one worker.
    for c in all.chunks(1) {
        let (x, pid) = c[0];
        let same = all
            .iter()
            .filter(|p| p.0 / chunk as u64 == x / chunk as u64);
        assert!(
            same.clone().all(|p| p.1 == pid),
            "chunk of {x} split: {all:?}"
        );
    }
}

#[test]
fn imap_first_result_before_input_ends() {
    first_result_before_input_ends(true, 1);
    first_result_before_input_ends(true, 3);
}

#[test]
fn imap_unordered_first_result_before_input_ends() {
    first_result_before_input_ends(false, 1);
    first_result_before_input_ends(false, 3);
}

static GATE: OnceLock<Event> = OnceLock::new();

fn init_gate(ev: Event) {
    let _ = GATE.set(ev);
}

/// Task 0 finishes only after task 5 ran (in the other worker).
fn gated(x: u64) -> u64 {
    let ev = GATE.get().expect("initializer ran");
    match x {
        0 => assert!(ev.wait_timeout(GENEROUS), "task 5 never ran"),
        5 => ev.set(),
        _ => {}
    }
    x * 10
}

#[test]
fn imap_keeps_input_order_when_results_come_out_of_order() {
    quiet();
    let ev = Event::new().unwrap();
    let pool = Pool::builder()
        .processes(2)
        .initializer(init_gate, ev)
        .build()
        .unwrap();
    // An input without an exact length (the streaming path).
    let input = (0..12u64).filter(|_| true);
    let got: Vec<u64> = pool
        .imap(gated, input, None)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(got, (0..12).map(|x| x * 10).collect::<Vec<_>>());
}

#[test]
fn close_after_imap_lets_it_run_to_the_end() {
    quiet();
    let pool = Pool::new(2).unwrap();
    // 500 chunks: far more than the read-ahead, so most are read after close.
    let it = pool
        .imap(double, (0..500u64).filter(|_| true), Some(1))
        .unwrap();
    pool.close().unwrap();
    assert_eq!(pool.apply(double, 1), Err(PoolError::NotRunning));
    let got: Vec<u64> = it.map(Result::unwrap).collect();
    assert_eq!(got, (0..500).map(|x| 2 * x).collect::<Vec<_>>());
    pool.join().unwrap();
}

#[test]
fn input_that_panics_ends_the_results_with_its_error() {
    quiet();
    let pool = Pool::new(2).unwrap();
    let input = (0..10u64).inspect(|&i| {
        if i == 4 {
            panic!("bad input {i}");
        }
    });
    let got: Vec<Result<u64, PoolError>> = pool.imap(double, input, Some(2)).unwrap().collect();
    assert_eq!(
        got,
        [
            Ok(0),
            Ok(2),
            Ok(4),
            Ok(6),
            Err(PoolError::InputPanicked("bad input 4".into()))
        ]
    );
    // The pool goes on.
    assert_eq!(pool.apply(double, 21), Ok(42));
}

#[test]
fn terminate_ends_a_streaming_imap() {
    quiet();
    let pool = Pool::new(1).unwrap();
    let mut it = pool.imap(double, 0u64.., Some(1)).unwrap();
    assert_eq!(it.next(), Some(Ok(0)));
    pool.terminate().unwrap();
    // Whatever was in flight fails or was done; then the end, no hang.
    let rest: Vec<Result<u64, PoolError>> = it.collect();
    assert!(rest.len() <= bound(1, 1) + 1, "{rest:?}");
    for r in &rest {
        assert!(
            matches!(
                r,
                Ok(_) | Err(PoolError::Terminated) | Err(PoolError::NotRunning)
            ),
            "{r:?}"
        );
    }
    pool.join().unwrap();
}

#[test]
fn close_and_join_before_taking_the_results() {
    quiet();
    let pool = std::sync::Arc::new(Pool::new(2).unwrap());
    // 300 chunks: far more than the read-ahead bound.
    let it = pool
        .imap(double, (0..300u64).filter(|_| true), Some(1))
        .unwrap();
    pool.close().unwrap();
    // join must return although no result was taken (CPython's
    // `close(); join()` then iterate). In a thread, to fail instead of hanging.
    let (tx, rx) = std::sync::mpsc::channel();
    let p2 = pool.clone();
    std::thread::spawn(move || tx.send(p2.join()).unwrap());
    assert_eq!(rx.recv_timeout(GENEROUS), Ok(Ok(())), "join hangs");
    let got: Vec<u64> = it.map(Result::unwrap).collect();
    assert_eq!(got, (0..300).map(|x| 2 * x).collect::<Vec<_>>());
}
