//! What the benches share: each bench includes it with `mod common;` and calls
//! the measurements it reports (so a bench leaves the others' unused).
//! Every measurement lives here once; `table.rs` puts them side by side, the
//! per-topic benches print their extra variants.
#![allow(dead_code)]

pub(crate) mod latency;
pub(crate) mod locks;
pub(crate) mod manager;
pub(crate) mod pool;
pub(crate) mod queue;
pub(crate) mod start;

use std::time::Duration;

/// Run `python3` with `args`: its standard output if it ran and succeeded;
/// `None` (with its stderr printed) if python3 is missing or failed, so that
/// a bench without CPython still reports its own figures.
pub(crate) fn python3(args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("python3")
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("python3 failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Run one work of `impl/benches/cpython.py` (CPython's side of every bench):
/// its `key value` lines, or `None` without python3.
pub(crate) fn cpython(work: &str, args: &[&str]) -> Option<Vec<(String, f64)>> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/cpython.py");
    let mut all = vec![script, work];
    all.extend_from_slice(args);
    let out = python3(&all)?;
    Some(
        out.lines()
            .filter_map(|l| {
                let (k, v) = l.split_once(' ')?;
                Some((k.to_string(), v.trim().parse().ok()?))
            })
            .collect(),
    )
}

/// The value under `key` in [`cpython`]'s output.
pub(crate) fn key(out: &[(String, f64)], key: &str) -> Option<f64> {
    out.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
}

/// `PROCSHARE_BENCH_QUICK=1`: one round of smaller runs (a smoke run, not figures).
pub(crate) fn quick() -> bool {
    std::env::var("PROCSHARE_BENCH_QUICK").is_ok_and(|v| v != "0" && !v.is_empty())
}

/// The 1-minute load average (`/proc/loadavg`), if readable.
pub(crate) fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The median of `v` (the upper one of an even count).
pub(crate) fn median<T: PartialOrd + Copy>(v: &[T]) -> T {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[v.len() / 2]
}

/// The `q` quantile of `v` (0.5: the median).
pub(crate) fn quantile(v: &mut [Duration], q: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * q) as usize]
}

/// `rounds` interleaved rounds of each closure (so that a burst of load from
/// elsewhere hits both sides of a ratio): each closure's figures, in order.
pub(crate) fn rounds<T, const K: usize>(rounds: usize, fs: [&dyn Fn() -> T; K]) -> [Vec<T>; K] {
    let mut runs: [Vec<T>; K] = std::array::from_fn(|_| Vec::new());
    for _ in 0..rounds {
        for (f, r) in fs.iter().zip(runs.iter_mut()) {
            r.push(f());
        }
    }
    runs
}

/// The shortest of `runs` consecutive runs of `f`: how `impl/benches/cpython.py`
/// measures CPython's pool (best of 3 `map`s, and of 3 series of `apply`s, on
/// one pool), so that the pool rows compare like with like. The first run of
/// a series after other work pays for fresh memory (its 8 MB result vector
/// faults in page by page while glibc's heap has not yet grown to hold it:
/// about 2 ms here, a third of a `map`), on both sides alike.
pub(crate) fn best_of(runs: usize, f: impl Fn() -> Duration) -> Duration {
    (0..runs).map(|_| f()).min().expect("at least one run")
}

/// Events per second of `n` events in `d`.
pub(crate) fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}
