//! Process start+join under each start method: a child that increments a
//! shared `Value`, started and joined `RUNS` times per method (interleaved
//! rounds), beside a raw `fork`/`_exit`/`waitpid` loop and CPython's
//! `multiprocessing` under the same three methods when `python3` is present.
//!
//! ```text
//! cargo bench -p procshare --bench start_methods
//! ```

mod common;

use std::time::{Duration, Instant};

use procshare::{Process, StartMethod, Value};

const RUNS: usize = 100;
const ROUNDS: usize = 3;

fn work(v: (Value<u64>,)) {
    *v.0.lock().unwrap() += 1;
}

/// Durations of `RUNS` start+join of `work` under `m`.
fn procshare_runs(m: StartMethod, out: &mut Vec<Duration>) {
    let v = Value::new(0u64).unwrap();
    for _ in 0..RUNS {
        let t = Instant::now();
        let mut p = Process::with_target(work, (v.clone(),)).start_method(m);
        p.start().unwrap();
        assert_eq!(p.join().unwrap(), 0);
        out.push(t.elapsed());
    }
    assert_eq!(v.get(), RUNS as u64);
}

/// The floor: `fork`, `_exit(0)` in the child, `waitpid` in the parent.
fn raw_fork_runs(out: &mut Vec<Duration>) {
    for _ in 0..RUNS {
        let t = Instant::now();
        // SAFETY: the child only calls `_exit`.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            // SAFETY: ends the child at once.
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        // SAFETY: waits for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        out.push(t.elapsed());
    }
}

fn quantile(v: &mut [Duration], q: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * q) as usize]
}

/// CPython's start+join median for `method`, in seconds.
fn cpython(method: &str) -> Option<f64> {
    let script = format!(
        r#"
import multiprocessing as mp, time
def work(v):
    with v.get_lock():
        v.value += 1
if __name__ == '__main__':
    ctx = mp.get_context('{method}')
    v = ctx.Value('q', 0)
    ts = []
    for _ in range(30):
        t = time.perf_counter()
        p = ctx.Process(target=work, args=(v,))
        p.start(); p.join()
        ts.append(time.perf_counter() - t)
    ts.sort()
    print(ts[len(ts) // 2])
"#
    );
    common::python3(&["-c", &script])?.trim().parse().ok()
}

fn main() {
    std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
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
        raw_fork_runs(&mut raw);
        for ((_, m), out) in methods.iter().zip(runs.iter_mut()) {
            procshare_runs(*m, out);
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
        let py = cpython(name);
        let vs_py = py.map_or(String::from("(no python3)"), |s| {
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
