//! The pool driven by its callers alone (see `Shared::help`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use procshare_model::pool::Config;

use super::driver::{Driver, Shared};
use super::{Pool, PoolError};
use crate::process::StartMethod;

fn double(x: u64) -> u64 {
    2 * x
}

/// A pool of one worker whose dispatcher thread is never started: whatever
/// runs, runs because a caller submitted it (`Help::Submit`) and read the
/// answer itself while it waited (`Help::Read`). Callers spin up to `spin`.
fn pool_without_dispatcher_thread(spin: Duration) -> (Pool, Arc<Shared>) {
    let shared = Arc::new(Shared::new(spin).expect("eventfd").without_load_gate());
    let cfg = Config {
        processes: 1,
        maxtasksperchild: None,
        depth: 2,
    };
    let mut drv = Driver::new(
        cfg,
        shared.clone(),
        None,
        None,
        StartMethod::Fork,
        Duration::ZERO,
    );
    while drv.ready_workers() < 1 {
        assert!(drv.broken().is_none() && !drv.is_finished());
        drv.step(-1);
    }
    *shared.lock_driver() = Some(drv);
    let pool = Pool {
        shared: shared.clone(),
        thread: Mutex::new(None),
        processes: 1,
    };
    (pool, shared)
}

/// Kill the worker (the driver's drop) and break the pool's cycle
/// (`Shared` -> `Driver` -> `Shared`).
fn stop(pool: Pool, shared: &Shared) {
    let d = shared.lock_driver().take();
    drop(d);
    drop(pool);
}

#[test]
fn a_waiting_caller_submits_and_reads_the_answers_itself() {
    std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    // The spin outlasts any answer: a waiter that did not read the answers
    // itself would wait for the whole minute below (nobody else reads them)
    // and fail with `Timeout`.
    let (pool, shared) = pool_without_dispatcher_thread(Duration::from_secs(120));
    let minute = Duration::from_secs(60);
    for i in 0..20 {
        let r = pool.apply_async(double, i).expect("submitted");
        assert_eq!(r.get_timeout(minute), Ok(2 * i), "apply {i}");
    }
    // A map of many units: at most two are out at a time (the dispatcher's
    // depth), so the rest are sent by the waiter as answers come in.
    let m = pool
        .map_async(double, 0..1000u64, Some(7))
        .expect("submitted");
    let want: Vec<u64> = (0..1000).map(double).collect();
    assert_eq!(m.get_timeout(minute), Ok(want));
    stop(pool, &shared);
}

#[test]
fn callers_wait_without_spinning_when_the_pool_does_not_spin() {
    std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    let (pool, shared) = pool_without_dispatcher_thread(Duration::ZERO);
    assert_eq!(shared.may_spin(), None);
    // Submitted by this thread, but not read by it: with no dispatcher
    // thread, nobody reads the answer.
    let r = pool.apply_async(double, 1).expect("submitted");
    assert_eq!(
        r.get_timeout(Duration::from_millis(200)),
        Err(PoolError::Timeout)
    );
    // Read by hand: the answer comes.
    let give_up = std::time::Instant::now() + Duration::from_secs(60);
    while !r.ready() {
        assert!(shared.help(super::driver::Help::Read));
        assert!(std::time::Instant::now() < give_up, "no answer in a minute");
    }
    assert_eq!(r.get_timeout(Duration::ZERO), Ok(2));
    stop(pool, &shared);
}

/// Several threads at once submit and wait on a pool whose dispatcher thread
/// runs, every waiter reading answers itself (the load gate off): the driver
/// passes between the dispatcher thread and the callers, and every result
/// reaches its own caller.
#[test]
fn callers_and_the_dispatcher_thread_share_the_work() {
    std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    let mut b = Pool::builder()
        .processes(2)
        .idle_spin(Duration::from_millis(1));
    b.no_load_gate = true;
    let pool = b.build().expect("pool");
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let pool = &pool;
            s.spawn(move || {
                for i in 0..200 {
                    let x = t * 1000 + i;
                    assert_eq!(pool.apply(double, x), Ok(2 * x));
                }
                let xs: Vec<u64> = (0..3000).map(|i| i + t).collect();
                let want: Vec<u64> = xs.iter().copied().map(double).collect();
                assert_eq!(pool.map(double, xs.clone()), Ok(want.clone()));
                assert_eq!(pool.map_pod(double, &xs), Ok(want.clone()));
                let got: Vec<u64> = pool
                    .imap(double, xs, Some(7))
                    .expect("imap")
                    .map(|r| r.expect("a result"))
                    .collect();
                assert_eq!(got, want);
            });
        }
    });
    pool.close().unwrap();
    pool.join().unwrap();
}
