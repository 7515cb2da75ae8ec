//! A worker killed with `kill -9` in the middle of a `map`: exactly the task
//! (or chunk) it was running fails with "worker died", every other task
//! completes, the worker is replaced, and nothing hangs (CPython's `map` hangs
//! here: gh-66587).
//!
//! Ordering is by the library's own primitives, never by sleeping: the victim
//! task puts its pid on a `SimpleQueue` and then waits on an `Event` that
//! nobody sets (both in shared memory, inherited through `initargs`); the
//! test takes the pid from the queue and kills that process.

use std::sync::OnceLock;

use procshare::{Event, SimpleQueue};
use procshare::{Pool, PoolError};

const VICTIM: u32 = 13;

static SHARED: OnceLock<(SimpleQueue<u32>, Event)> = OnceLock::new();

fn init(args: (SimpleQueue<u32>, Event)) {
    let _ = SHARED.set(args);
}

fn task(x: u32) -> u32 {
    if x == VICTIM {
        let (q, ev) = SHARED.get().expect("initializer ran");
        q.put(&std::process::id()).expect("report my pid");
        // Wait for an event that is never set: only kill -9 ends this task.
        ev.wait();
        unreachable!("the event is never set");
    }
    x * 10
}

fn kill9(pid: u32) {
    // SAFETY: sending SIGKILL to a pid we just learned is our own live worker
    // (it is blocked in the task, so it has not exited and cannot be reused).
    let rc = unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    assert_eq!(rc, 0, "kill -9 {pid}");
}

fn run(chunksize: usize) {
    std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    let q: SimpleQueue<u32> = SimpleQueue::new().unwrap();
    let ev = Event::new().unwrap();
    let pool = Pool::builder()
        .processes(2)
        .initializer(init, (q.clone(), ev.clone()))
        .build()
        .unwrap();
    let before = pool.worker_pids();
    let r = pool.map_async(task, 0..40, Some(chunksize)).unwrap();
    let pid = q.get().unwrap();
    assert!(
        before.contains(&pid),
        "the victim is one of the pool's workers"
    );
    kill9(pid);
    let all = r.get_all().expect("the map returns");
    let victim_chunk =
        (VICTIM as usize / chunksize) * chunksize..((VICTIM as usize / chunksize) + 1) * chunksize;
    for (i, res) in all.iter().enumerate() {
        if victim_chunk.contains(&i) {
            assert_eq!(
                *res,
                Err(PoolError::WorkerDied {
                    pid,
                    exitcode: Some(-9)
                }),
                "task {i}"
            );
        } else {
            assert_eq!(*res, Ok(i as u32 * 10), "task {i}");
        }
    }
    // The pool replaced the worker and goes on.
    assert_eq!(
        pool.map(task, 0..10).unwrap(),
        (0..10).map(|x| x * 10).collect::<Vec<_>>()
    );
    let after = pool.worker_pids();
    assert_eq!(after.len(), 2);
    assert!(!after.contains(&pid), "the dead worker was replaced");
    pool.close().unwrap();
    pool.join().unwrap();
}

#[test]
fn kill9_fails_exactly_the_running_task() {
    run(1);
}

#[test]
fn kill9_fails_exactly_the_running_chunk() {
    run(4);
}
