//! Process start+join under each start method: a child that increments a
//! shared `Value`, started and joined `RUNS` times per method (interleaved
//! rounds), beside a raw `fork`/`_exit`/`waitpid` loop and CPython's
//! `multiprocessing` under the same three methods when `python3` is present.
//!
//! ```text
//! cargo bench -p procshare --bench start_methods
//! ```

mod common;

use std::time::Duration;

use common::quantile;
use procshare::StartMethod;

const RUNS: usize = 100;
const ROUNDS: usize = 3;

/// CPython's start+join median for `method`, in seconds.
fn cpython(method: &str) -> Option<f64> {
    common::key(&common::cpython("start", &[method, "30"])?, "start")
}

fn main() {
    procshare::set_fork_warning(false);
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for the list
    }
    let methods = [
        ("fork", StartMethod::Fork),
        ("forkserver", StartMethod::ForkServer),
        ("spawn", StartMethod::Spawn),
    ];
    let mut raw = Vec::new();
    let mut runs: Vec<Vec<Duration>> = vec![Vec::new(); methods.len()];
    for _ in 0..ROUNDS {
        common::start::raw_fork(RUNS, &mut raw);
        for ((_, m), out) in methods.iter().zip(runs.iter_mut()) {
            common::start::procshare(*m, RUNS, out);
        }
    }
    let raw_med = quantile(&mut raw, 0.5);
    println!(
        "start+join of a child that increments a Value ({} runs each, interleaved)",
        RUNS * ROUNDS
    );
    println!("raw fork+_exit+waitpid:       median {:>9.1?}", raw_med);
    for ((name, _), r) in methods.iter().zip(runs.iter_mut()) {
        let med = quantile(r, 0.5);
        let p90 = quantile(r, 0.9);
        let vs_py = cpython(name).map_or(String::from("(no python3)"), |s| {
            format!(
                "CPython {:.2?}: {:.1}x faster",
                Duration::from_secs_f64(s),
                s / med.as_secs_f64()
            )
        });
        println!(
            "procshare {name:<11} median {med:>9.1?}  p90 {p90:>9.1?}  {:.2}x raw fork;  {vs_py}",
            med.as_secs_f64() / raw_med.as_secs_f64()
        );
    }
}
