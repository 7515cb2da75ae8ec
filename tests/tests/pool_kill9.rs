//! A worker killed with `kill -9` in the middle of a `map`: exactly the task
//! (or chunk) it was running fails with "worker died", every other task
//! completes, the worker is replaced, and nothing hangs (CPython's `map` hangs
//! here: gh-66587).
//!
//! Ordering is by the library's own primitives, never by sleeping
//! (`procshare_tests::victim`).

use procshare::Pool;
use procshare_tests::victim;

const VICTIM: u32 = 13;

fn task(x: u32) -> u32 {
    if x == VICTIM {
        victim::report_and_wait();
    }
    x * 10
}

fn run(chunksize: usize) {
    std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    let ch = victim::channel();
    let pool = Pool::builder()
        .processes(2)
        .initializer(victim::init, ch.clone())
        .build()
        .unwrap();
    let before = pool.worker_pids();
    let r = pool.map_async(task, 0..40, Some(chunksize)).unwrap();
    let pid = victim::kill_reported(&ch);
    assert!(
        before.contains(&pid),
        "the victim is one of the pool's workers"
    );
    let all = r.get_all().expect("the map returns");
    victim::assert_only_the_victims_chunk_failed(&all, VICTIM as usize, chunksize, pid, |i| {
        i as u32 * 10
    });
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
