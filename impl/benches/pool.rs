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

use std::time::Duration;

use common::pool::{map, round_trips, threads_map, two_workers};
use common::rate;

const N: u64 = 1_000_000;
const ROUND_TRIPS: u64 = 5_000;
const RUNS: usize = 5;

/// Best of `RUNS` (the least disturbed by the other tenants of the machine).
fn best(mut f: impl FnMut() -> Duration) -> Duration {
    (0..RUNS).map(|_| f()).min().expect("runs")
}

fn main() {
    procshare::set_fork_warning(false);
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for the list
    }
    let pool = two_workers();
    if std::env::var_os("POOL_BENCH_APPLY_ONLY").is_some() {
        let apply = rate(ROUND_TRIPS, best(|| round_trips(&pool, ROUND_TRIPS)));
        println!("apply: {apply:.0} round trips/s");
        return;
    }
    let _ = map(&pool, N); // warm up
    let m = rate(N, best(|| map(&pool, N)));
    if std::env::var_os("POOL_BENCH_MAP_ONLY").is_some() {
        println!("pool map: {m:.0} items/s");
        return;
    }
    let threads = rate(N, best(|| threads_map(N)));
    let apply = rate(ROUND_TRIPS, best(|| round_trips(&pool, ROUND_TRIPS)));
    drop(pool);
    println!("pool map, 1,000,000 items, 2 workers, default chunks: {m:>14.0} items/s");
    println!("same map on 2 std threads (the limit):                 {threads:>14.0} items/s");
    println!(
        "  ratio procshare / threads:                           {:>14.3}",
        m / threads
    );
    println!("apply_async(...).get() one at a time:                  {apply:>14.0} round trips/s");
    if std::env::var_os("POOL_BENCH_NO_PYTHON").is_some() {
        return;
    }
    let args = [
        N.to_string(),
        (ROUND_TRIPS / 5).to_string(),
        RUNS.to_string(),
    ];
    let py = common::cpython("pool", &[&args[0], &args[1], &args[2]]);
    match py.and_then(|o| Some((common::key(&o, "map")?, common::key(&o, "apply")?))) {
        Some((pmap, papply)) => {
            println!("CPython Pool(2).map, default chunks:                   {pmap:>14.0} items/s");
            println!("CPython apply_async(...).get():                        {papply:>14.0} round trips/s");
            println!(
                "  ratio procshare / CPython, map:                      {:>14.1}x",
                m / pmap
            );
            println!(
                "  ratio procshare / CPython, apply_async:              {:>14.1}x",
                apply / papply
            );
        }
        None => println!("python3 not available: no CPython comparison"),
    }
}
