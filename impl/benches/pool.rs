//! Pool throughput: `map` of a trivial function over 1,000,000 items on two
//! workers (items/s), beside the same map on two std threads (the in-process
//! limit) and CPython's `Pool.map` (default chunking) when `python3` is
//! present; and `apply_async(...).get()` round trips per second, one at a
//! time, beside CPython's. Every figure is taken in the same run.
//!
//! ```text
//! cargo bench -p procshare --bench pool
//! ```
//!
//! `POOL_BENCH_MAP_ONLY=1` or `POOL_BENCH_APPLY_ONLY=1` runs one part alone
//! (for profiling); `POOL_BENCH_NO_PYTHON=1` skips CPython.

mod common;

use std::time::{Duration, Instant};

use procshare::Pool;

const N: u64 = 1_000_000;
const ROUND_TRIPS: u32 = 5_000;
const RUNS: usize = 5;

fn inc(x: u64) -> u64 {
    x.wrapping_add(1)
}

/// Best of `RUNS` (the least disturbed by the other tenants of the machine).
fn best(mut f: impl FnMut() -> Duration) -> Duration {
    (0..RUNS).map(|_| f()).min().expect("runs")
}

fn rate(n: f64, d: Duration) -> f64 {
    n / d.as_secs_f64()
}

fn threads_map() -> Duration {
    let items: Vec<u64> = (0..N).collect();
    let t = Instant::now();
    let (a, b) = items.split_at(items.len() / 2);
    let (ra, rb) = std::thread::scope(|s| {
        let ha = s.spawn(|| {
            a.iter()
                .map(|&x| std::hint::black_box(inc(x)))
                .collect::<Vec<_>>()
        });
        let hb = s.spawn(|| {
            b.iter()
                .map(|&x| std::hint::black_box(inc(x)))
                .collect::<Vec<_>>()
        });
        (ha.join().expect("thread"), hb.join().expect("thread"))
    });
    let mut out = ra;
    out.extend(rb);
    let d = t.elapsed();
    assert_eq!(out.len() as u64, N);
    assert_eq!(out[N as usize - 1], N);
    d
}

fn pool_map(pool: &Pool) -> Duration {
    let t = Instant::now();
    let out = pool.map(inc, 0..N).expect("map");
    let d = t.elapsed();
    assert_eq!(out.len() as u64, N);
    assert_eq!(out[N as usize - 1], N);
    d
}

fn pool_round_trips(pool: &Pool) -> Duration {
    let t = Instant::now();
    for i in 0..ROUND_TRIPS as u64 {
        let r = pool
            .apply_async(inc, i)
            .expect("apply_async")
            .get()
            .expect("get");
        assert_eq!(r, i + 1);
    }
    t.elapsed()
}

const PY: &str = r#"
import sys, time
from multiprocessing import Pool
def f(x):
    return x + 1
if __name__ == '__main__':
    n, trips, runs = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    with Pool(2) as pool:
        best = None
        for _ in range(runs):
            t = time.perf_counter(); r = pool.map(f, range(n)); d = time.perf_counter() - t
            assert len(r) == n
            best = d if best is None else min(best, d)
        print("map", n / best)
        best = None
        for _ in range(runs):
            t = time.perf_counter()
            for i in range(trips):
                pool.apply_async(f, (i,)).get()
            d = time.perf_counter() - t
            best = d if best is None else min(best, d)
        print("apply", trips / best)
"#;

/// CPython's (map items/s, apply round trips/s), if python3 runs.
fn cpython() -> Option<(f64, f64)> {
    let s = common::python3(&[
        "-c",
        PY,
        &N.to_string(),
        &(ROUND_TRIPS / 5).to_string(),
        &RUNS.to_string(),
    ])?;
    let get = |k: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    Some((get("map ")?, get("apply ")?))
}

fn main() {
    std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    let pool = Pool::builder().processes(2).build().expect("pool");
    if std::env::var_os("POOL_BENCH_APPLY_ONLY").is_some() {
        let apply = rate(ROUND_TRIPS as f64, best(|| pool_round_trips(&pool)));
        println!("apply: {apply:.0} round trips/s");
        return;
    }
    let _ = pool_map(&pool); // warm up
    let map = rate(N as f64, best(|| pool_map(&pool)));
    if std::env::var_os("POOL_BENCH_MAP_ONLY").is_some() {
        println!("pool map: {map:.0} items/s");
        return;
    }
    let threads = rate(N as f64, best(threads_map));
    let apply = rate(ROUND_TRIPS as f64, best(|| pool_round_trips(&pool)));
    drop(pool);
    println!("pool map, 1,000,000 items, 2 workers, default chunks: {map:>14.0} items/s");
    println!("same map on 2 std threads (the limit):                 {threads:>14.0} items/s");
    println!(
        "  ratio procshare / threads:                           {:>14.3}",
        map / threads
    );
    println!("apply_async(...).get() one at a time:                  {apply:>14.0} round trips/s");
    if std::env::var_os("POOL_BENCH_NO_PYTHON").is_some() {
        return;
    }
    match cpython() {
        Some((pmap, papply)) => {
            println!("CPython Pool(2).map, default chunks:                   {pmap:>14.0} items/s");
            println!("CPython apply_async(...).get():                        {papply:>14.0} round trips/s");
            println!(
                "  ratio procshare / CPython, map:                      {:>14.1}x",
                map / pmap
            );
            println!(
                "  ratio procshare / CPython, apply_async:              {:>14.1}x",
                apply / papply
            );
        }
        None => println!("python3 not available: no CPython comparison"),
    }
}
