//! Pool throughput: `map` (and `map_pod`) of a trivial function over `u64`s on two workers,
//! beside the same map on two std threads; `apply_async(...).get()` round trips.

use std::time::{Duration, Instant};

use procshare::Pool;

fn inc(x: u64) -> u64 {
    x.wrapping_add(1)
}

/// A pool of two workers.
pub(crate) fn two_workers() -> Pool {
    Pool::builder().processes(2).build().expect("pool")
}

/// `pool.map(inc, 0..n)` (default chunks).
pub(crate) fn map(pool: &Pool, n: u64) -> Duration {
    let t = Instant::now();
    let out = pool.map(inc, 0..n).expect("map");
    let d = t.elapsed();
    assert_eq!(out.len() as u64, n);
    assert_eq!(out[n as usize - 1], n);
    d
}

/// `pool.map_pod(inc, &items)` of the `n` u64s `0..n` (default chunks; the
/// vector is made before the clock starts, as for the threads below).
pub(crate) fn map_pod(pool: &Pool, n: u64) -> Duration {
    let items: Vec<u64> = (0..n).collect();
    let t = Instant::now();
    let out = pool.map_pod(inc, &items).expect("map_pod");
    let d = t.elapsed();
    assert_eq!(out.len() as u64, n);
    assert_eq!(out[n as usize - 1], n);
    d
}

/// The same map on two std threads (the in-process limit).
pub(crate) fn threads_map(n: u64) -> Duration {
    let items: Vec<u64> = (0..n).collect();
    let t = Instant::now();
    let (a, b) = items.split_at(items.len() / 2);
    let half = |s: &[u64]| {
        s.iter()
            .map(|&x| std::hint::black_box(inc(x)))
            .collect::<Vec<_>>()
    };
    let (ra, rb) = std::thread::scope(|s| {
        let ha = s.spawn(|| half(a));
        let hb = s.spawn(|| half(b));
        (ha.join().expect("thread"), hb.join().expect("thread"))
    });
    let mut out = ra;
    out.extend(rb);
    let d = t.elapsed();
    assert_eq!(out.len() as u64, n);
    assert_eq!(out[n as usize - 1], n);
    d
}

/// `trips` calls of `apply_async(inc, i).get()`, one at a time.
pub(crate) fn round_trips(pool: &Pool, trips: u64) -> Duration {
    let t = Instant::now();
    for i in 0..trips {
        let r = pool
            .apply_async(inc, i)
            .expect("apply_async")
            .get()
            .expect("get");
        assert_eq!(r, i + 1);
    }
    t.elapsed()
}
