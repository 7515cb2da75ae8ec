//! `AsyncResult` and `MapResult` read any number of times, as CPython's
//! `AsyncResult.get()` returns the same result on every call (before, the
//! second read was `AlreadyTaken`).

use std::time::Duration;

use procshare::{Pool, PoolError};
use procshare_tests::quiet;

const GENEROUS: Duration = Duration::from_secs(60);

fn square(x: i64) -> i64 {
    x * x
}

fn greet(n: usize) -> String {
    "hi".repeat(n)
}

fn fail_on_3(x: u32) -> u32 {
    if x == 3 {
        panic!("three");
    }
    x
}

#[test]
fn async_result_get_timeout_then_get_return_the_same_value() {
    quiet();
    let pool = Pool::new(2).unwrap();
    let r = pool.apply_async(greet, 3).unwrap();
    assert_eq!(r.get_timeout(GENEROUS), Ok("hihihi".to_string()));
    assert_eq!(r.get_timeout(GENEROUS), Ok("hihihi".to_string()));
    assert_eq!(r.get(), Ok("hihihi".to_string()));
    assert_eq!(r.get(), Ok("hihihi".to_string()));
    // ready / successful / wait(timeout) answer the same every time too.
    for _ in 0..2 {
        assert!(r.ready());
        assert_eq!(r.successful(), Ok(true));
        assert!(r.wait_timeout(Duration::ZERO));
    }
    assert_eq!(r.into_value(), Ok("hihihi".to_string()));
}

#[test]
fn async_result_error_is_returned_each_time() {
    quiet();
    let pool = Pool::new(1).unwrap();
    let r = pool.apply_async(fail_on_3, 3).unwrap();
    let want = Err(PoolError::TaskPanicked("three".into()));
    assert_eq!(r.get(), want);
    assert_eq!(r.get(), want);
    assert_eq!(r.get_timeout(GENEROUS), want);
    assert_eq!(r.successful(), Ok(false));
}

#[test]
fn map_result_get_is_repeatable() {
    quiet();
    let pool = Pool::new(2).unwrap();
    let want: Vec<i64> = (0..100).map(|x| x * x).collect();
    for chunksize in [1, 7, 100] {
        let r = pool.map_async(square, 0..100, Some(chunksize)).unwrap();
        assert_eq!(r.get_timeout(GENEROUS), Ok(want.clone()));
        assert_eq!(r.get(), Ok(want.clone()));
        assert_eq!(r.get(), Ok(want.clone()));
        assert_eq!(r.successful(), Ok(true));
        // And still all there for the per-task view.
        let all = r.get_all().unwrap();
        assert_eq!(all, want.iter().map(|&v| Ok(v)).collect::<Vec<_>>());
    }
    let r = pool.map_async(fail_on_3, 0..10, Some(2)).unwrap();
    let want = Err(PoolError::TaskPanicked("three".into()));
    assert_eq!(r.get(), want);
    assert_eq!(r.get_timeout(GENEROUS), want);
    assert_eq!(r.successful(), Ok(false));
    let r = pool.map_async(square, 0..10, None).unwrap();
    assert_eq!(r.get().unwrap().len(), 10);
    assert_eq!(r.into_values().unwrap()[9], 81);
}
