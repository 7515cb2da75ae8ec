//! Real-process histories of `JoinableQueue`, `PodQueue` and `Pipe`, some processes
//! killed with `kill -9` at random operations, checked for linearizability
//! (DESIGN.md, "History checking"); each specification shown able to fail
//! (a deliberately broken variant), and `JoinableQueue` with a real seeded
//! bug (`procshare/history-mutants`) caught in real processes.
//!
//! `PROCSHARE_HISTORY_SOAK_SECS=n` runs each object's test for about `n`
//! seconds of fresh seeds; `cargo test` runs one seed each. No sleeps, no
//! timing asserts: a victim reports its kill point through a `Semaphore`.

use std::cell::Cell;
use std::time::Duration;

use procshare::{Event, JoinableQueue, Pipe, PipeError, PodQueue, QueueError};
use procshare_tests::history::checker::{check, Spec};
use procshare_tests::history::queue_specs::JoinableSpec;
use procshare_tests::history::recorder::Writer;
use procshare_tests::history::specs::{mark_contended, QueueSpec};
use procshare_tests::history::{assert_linearizable, run, soak, Run};
use procshare_tests::quiet;
use rand::rngs::StdRng;
use rand::Rng;

const PROCS: usize = 3;
const OPS: usize = 200;
const VICTIMS: usize = 2;

/// Asserts that `spec` rejects `r` and prints the counterexample.
fn assert_caught<S: Spec>(what: &str, spec: &S, r: &Run) {
    let cx = check(spec, &r.history).expect_err(&format!("{what}: not caught (seed {})", r.seed));
    let text = cx.to_string();
    eprintln!("{what} caught (seed {}): {text}", r.seed);
    assert!(text.contains("not linearizable"), "{text}");
    assert!(!cx.window.is_empty(), "{text}");
}

/// A value no other op of the test puts: (process, op number).
fn unique(p: usize, n: usize) -> i64 {
    ((p as i64) << 32) | n as i64
}

// ---- JoinableQueue ----

fn try_get(q: &JoinableQueue<i64>) -> i64 {
    match q.try_get() {
        Ok(v) => v,
        Err(QueueError::Empty) => JoinableSpec::EMPTY,
        Err(_) => -2,
    }
}

fn task_done(q: &JoinableQueue<i64>) -> i64 {
    match q.task_done() {
        Ok(()) => 0,
        Err(QueueError::TaskDoneTooManyTimes) => JoinableSpec::TOO_MANY,
        Err(_) => -2,
    }
}

fn join(q: &JoinableQueue<i64>, us: i64) -> i64 {
    i64::from(q.join_timeout(Duration::from_micros(us as u64)))
}

/// Random puts, try_gets, task_dones (mostly of items this process took,
/// now and then one too many) and short joins.
fn joinable_run(seed: u64, victims: usize) -> Run {
    let q: JoinableQueue<i64> = JoinableQueue::new().unwrap();
    let held = Cell::new(0usize); // items this process took and has not marked done
    let mut r = run(PROCS, OPS, victims, seed, move |p, w, rng| {
        match rng.gen_range(0..20) {
            0..=5 => {
                let v = unique(p, w.count());
                w.call(0, JoinableSpec::PUT, v, || match q.put(&v) {
                    Ok(()) => 0,
                    Err(_) => -2,
                });
            }
            6..=11 => {
                if w.call(0, JoinableSpec::TRY_GET, 0, || try_get(&q)) >= 0 {
                    held.set(held.get() + 1);
                }
            }
            12..=16 => {
                if held.get() > 0 || rng.gen_bool(0.1) {
                    w.call(0, JoinableSpec::TASK_DONE, 0, || task_done(&q));
                    held.set(held.get().saturating_sub(1));
                }
            }
            _ => {
                let us = rng.gen_range(0..300);
                w.call(0, JoinableSpec::JOIN, us, || join(&q, us));
            }
        }
    });
    mark_contended(&mut r.history);
    r
}

#[test]
fn joinable_queue_is_linearizable_with_kill9() {
    quiet();
    soak("JoinableQueue", 0x701e, |seed| {
        let r = joinable_run(seed, VICTIMS);
        assert_linearizable("JoinableQueue", &JoinableSpec::default(), &r);
    });
}

#[test]
fn broken_joinable_spec_whose_put_counts_no_task_is_caught() {
    quiet();
    let r = joinable_run(31, 0);
    assert_linearizable("JoinableQueue", &JoinableSpec::default(), &r);
    assert_caught(
        "JoinableQueue spec whose put counts no task",
        &JoinableSpec {
            put_uncounted: true,
        },
        &r,
    );
}

#[test]
fn joinable_queue_that_skips_a_task_done_is_caught() {
    quiet();
    // Rounds of put, get, task_done, join: the last join to start begins
    // after every task was marked done, so with the seeded bug (every fourth
    // task_done not counted, on in the children only) it times out where
    // the specification says it returns.
    let q: JoinableQueue<i64> = JoinableQueue::new().unwrap();
    let round = move |mutant: u32| {
        let q = q.clone();
        move |p: usize, w: &mut Writer, _: &mut StdRng| {
            procshare::history_mutants::set(mutant);
            let v = unique(p, w.count());
            w.call(0, JoinableSpec::PUT, v, || match q.put(&v) {
                Ok(()) => 0,
                Err(_) => -2,
            });
            w.call(0, JoinableSpec::GET, 0, || q.get().unwrap_or(-2));
            w.call(0, JoinableSpec::TASK_DONE, 0, || task_done(&q));
            w.call(0, JoinableSpec::JOIN, 200, || join(&q, 200));
        }
    };
    // Without the bug the same workload is linearizable ...
    let r = run(PROCS, OPS, 0, 32, round(procshare::history_mutants::NONE));
    assert_linearizable("JoinableQueue rounds", &JoinableSpec::default(), &r);
    // ... with it, it is not.
    let r = run(
        PROCS,
        OPS,
        0,
        32,
        round(procshare::history_mutants::JOINABLE_SKIPS_TASK_DONE),
    );
    assert_caught(
        "JoinableQueue mutant (task_done skipped)",
        &JoinableSpec::default(),
        &r,
    );
}

// ---- PodQueue ----

/// Random `put`s and `try_get`s of unique values on a `PodQueue` with room
/// for every put (a `put` waits only for a slot another process holds). A
/// `try_get` that meets a slot another process holds answers Empty, as a
/// contended `Queue::try_get` does ([`mark_contended`]).
fn pod_queue_run(seed: u64, victims: usize) -> Run {
    let q: PodQueue<i64> = PodQueue::new(PROCS * OPS).unwrap();
    let mut r = run(PROCS, OPS, victims, seed, move |p, w, rng| {
        if rng.gen_bool(0.5) {
            let v = unique(p, w.count());
            w.call(0, QueueSpec::PUT, v, || match q.put(v) {
                Ok(()) => 0,
                Err(_) => -2,
            });
        } else {
            w.call(0, QueueSpec::TRY_GET, 0, || match q.try_get() {
                Ok(v) => v,
                Err(QueueError::Empty) => QueueSpec::EMPTY,
                Err(_) => -2,
            });
        }
    });
    mark_contended(&mut r.history);
    r
}

#[test]
fn pod_queue_is_linearizable_fifo_with_kill9() {
    quiet();
    soak("PodQueue", 0x90d0, |seed| {
        let r = pod_queue_run(seed, VICTIMS);
        assert_linearizable("PodQueue", &QueueSpec::default(), &r);
    });
}

#[test]
fn broken_lifo_pod_queue_spec_is_caught() {
    quiet();
    let r = pod_queue_run(21, 0);
    assert_linearizable("PodQueue", &QueueSpec::default(), &r);
    assert_caught("LIFO PodQueue spec", &QueueSpec { lifo: true }, &r);
}

// ---- Pipe ----

/// Pipes of one sender and one receiver each (processes 2k and 2k + 1):
/// the sender sends unique values, the receiver takes them with short
/// `recv_timeout`s (a timeout is an Empty `try_get`). Every process inherits
/// every end (they are forked), so no end-of-file is ever seen: a killed
/// sender's pipe just goes quiet. Frames are written with one `write`, so a
/// sender killed at any moment leaves whole frames only.
///
/// With `backlog`, each receiver starts only once its sender has sent that
/// many values (told through an `Event`), so several are queued at once.
fn pipe_run(seed: u64, victims: usize, backlog: usize) -> Run {
    const PIPES: usize = 2;
    let pipes: Vec<_> = (0..PIPES)
        .map(|_| Pipe::<i64>::new(false).unwrap())
        .collect();
    let started: Vec<Event> = (0..PIPES).map(|_| Event::new().unwrap()).collect();
    run(2 * PIPES, PIPE_OPS, victims, seed, move |p, w, rng| {
        let (rx, tx) = &pipes[p / 2];
        let key = (p / 2) as u32;
        let start = &started[p / 2];
        if p % 2 == 0 {
            if w.count() == backlog {
                start.set();
            }
            let v = unique(p, w.count());
            w.call(key, QueueSpec::PUT, v, || match tx.send(&v) {
                Ok(()) => 0,
                Err(_) => -2,
            });
        } else {
            if w.count() == 0 && backlog > 0 {
                start.wait();
            }
            let us = rng.gen_range(0..300);
            w.call(key, QueueSpec::TRY_GET, 0, || {
                match rx.recv_timeout(Duration::from_micros(us)) {
                    Ok(v) => v,
                    Err(PipeError::Timeout) => QueueSpec::EMPTY,
                    Err(_) => -2,
                }
            });
        }
    })
}

/// Sends per sender: few enough that a sender whose receiver was killed
/// never fills the socket buffer (small frames cost about 1 KiB each of
/// the default 208 KiB).
const PIPE_OPS: usize = 120;

#[test]
fn pipe_is_linearizable_fifo_with_kill9() {
    quiet();
    soak("Pipe", 0x919e, |seed| {
        let r = pipe_run(seed, VICTIMS, 0);
        assert_linearizable("Pipe", &QueueSpec::default(), &r);
    });
}

#[test]
fn broken_lifo_pipe_spec_is_caught() {
    quiet();
    // A backlog of 20 values, so a LIFO order differs from the FIFO one.
    let r = pipe_run(33, 0, 20);
    assert_linearizable("Pipe", &QueueSpec::default(), &r);
    assert_caught("LIFO pipe spec", &QueueSpec { lifo: true }, &r);
}
