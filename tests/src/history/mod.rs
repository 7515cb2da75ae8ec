//! History checking (DESIGN.md, "History checking"): real processes run
//! random operations on a shared object while some of them are killed with
//! `kill -9`; each records what it invoked and observed in a shared-memory
//! log ([`recorder`]); the history is then checked for linearizability
//! ([`checker`]) against a sequential specification ([`specs`]).

pub mod checker;
pub mod manager_specs;
pub mod queue_specs;
pub mod recorder;
pub mod specs;
pub mod sync_specs;

use std::time::{Duration, Instant};

use procshare::{Barrier, Process, Semaphore};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use checker::{Op, Spec, Stats};
use recorder::{Kill, Log, Writer};

/// How long the parent waits for a victim to reach its kill point.
const GENEROUS: Duration = Duration::from_secs(60);

/// What a run produced.
#[derive(Debug)]
pub struct Run {
    /// Every recorded operation.
    pub history: Vec<Op>,
    /// The processes that died of `kill -9`.
    pub killed: Vec<u32>,
    /// The seed, to replay it.
    pub seed: u64,
}

/// Children killed and reaped if the test fails half-way.
struct Children(Vec<Process>);

impl Drop for Children {
    fn drop(&mut self) {
        for p in &mut self.0 {
            if p.exitcode().is_none() {
                let _ = p.kill();
                let _ = p.join();
            }
        }
    }
}

/// Runs `procs` processes, each calling `worker(proc, writer, rng)` until it
/// has recorded `ops` operations (a worker call may record a few). `victims`
/// of them (chosen by `seed`) are killed with SIGKILL at a random operation:
/// by themselves just before or just after it takes effect, or by the parent
/// when they reach it (wherever they then are).
pub fn run<F>(procs: usize, ops: usize, victims: usize, seed: u64, worker: F) -> Run
where
    F: Fn(usize, &mut Writer, &mut StdRng) + Clone + Send + 'static,
{
    let mut rng = StdRng::seed_from_u64(seed);
    let log = Log::new(procs, ops + 8);
    let mut plan = vec![Kill::Never; procs];
    for slot in plan.iter_mut().take(victims.min(procs)) {
        let n = rng.gen_range(0..ops);
        *slot = match rng.gen_range(0..3) {
            0 => Kill::BeforeOp(n),
            1 => Kill::AfterOp(n),
            _ => Kill::ByParent(n),
        };
    }
    // Victims are the first processes in the plan; shuffle who they are.
    for i in (1..procs).rev() {
        plan.swap(i, rng.gen_range(0..=i));
    }
    let mut children = Children(Vec::new());
    let mut reached = Vec::new();
    // Every process starts its operations at once (forks are staggered by
    // ~0.1 ms each, longer than many a whole run of fast operations).
    let gate = Barrier::new(procs as u32).unwrap();
    for (p, &kill) in plan.iter().enumerate() {
        let sem = Semaphore::new(0).unwrap();
        reached.push(sem.clone());
        let mut w = log.writer(p, kill, sem);
        let worker = worker.clone();
        let gate = gate.clone();
        let child_seed = seed ^ (p as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut child = Process::new(move || {
            let mut rng = StdRng::seed_from_u64(child_seed);
            gate.wait().unwrap();
            while w.count() < ops {
                worker(p, &mut w, &mut rng);
            }
        });
        child.start().unwrap();
        children.0.push(child);
    }
    for (p, &kill) in plan.iter().enumerate() {
        if let Kill::ByParent(_) = kill {
            assert!(
                reached[p].acquire_timeout(GENEROUS),
                "process {p} never reached its kill point (seed {seed})"
            );
            let _ = children.0[p].kill();
        }
    }
    let mut killed = Vec::new();
    for (p, child) in children.0.iter_mut().enumerate() {
        let code = child.join().unwrap();
        match (code, plan[p]) {
            (-9, Kill::Never) => panic!("process {p} died of SIGKILL unplanned (seed {seed})"),
            (-9, _) => killed.push(p as u32),
            (0, Kill::Never | Kill::ByParent(_)) => {}
            (c, k) => panic!("process {p} (kill plan {k:?}) exited with {c} (seed {seed})"),
        }
    }
    Run {
        history: log.history(),
        killed,
        seed,
    }
}

/// Checks `run`'s history against `spec`; panics with the counterexample
/// (and the seed) if it is not linearizable. Prints the figures.
pub fn assert_linearizable<S: Spec>(name: &str, spec: &S, run: &Run) -> Stats {
    if let Ok(dir) = std::env::var("PROCSHARE_HISTORY_DUMP") {
        let path = format!("{dir}/{name}-{}.txt", run.seed);
        std::fs::write(&path, dump(&run.history)).unwrap();
        eprintln!("{name}: history written to {path}");
    }
    let t = Instant::now();
    let r = checker::check(spec, &run.history);
    let took = t.elapsed();
    match r {
        Ok(stats) => {
            let slowest = run
                .history
                .iter()
                .filter_map(|o| o.ret.map(|(t, _)| (t - o.call, o)))
                .max_by_key(|&(d, _)| d)
                .map(|(d, o)| format!("p{} {} took {d} ns", o.proc, spec.describe(o)))
                .unwrap_or_default();
            eprintln!(
                "{name}: seed {}: {} ops ({} indeterminate, {} objects, {} processes killed, \
                 {:.0}% overlapping another process's op) linearizable, checked in {took:?}; \
                 slowest op: {slowest}",
                run.seed,
                stats.ops,
                stats.pending,
                stats.partitions,
                run.killed.len(),
                100.0 * overlapping(&run.history)
            );
            stats
        }
        Err(cx) => panic!("{name}: seed {}: {cx}", run.seed),
    }
}

/// The fraction of `history`'s ops whose interval overlaps an op of
/// another process (the concurrency a check actually saw).
pub fn overlapping(history: &[Op]) -> f64 {
    if history.is_empty() {
        return 0.0;
    }
    let end = |o: &Op| o.ret.map_or(u64::MAX, |(t, _)| t);
    let mut by_call: Vec<&Op> = history.iter().collect();
    by_call.sort_by_key(|o| o.call);
    let mut n = 0usize;
    for (k, o) in by_call.iter().enumerate() {
        // Ops are short: look at the neighbours by invocation time until one
        // starts after `o` ends, and back while one could still be running.
        let after = by_call[k + 1..]
            .iter()
            .take_while(|q| q.call < end(o))
            .any(|q| q.proc != o.proc);
        let before = by_call[..k]
            .iter()
            .rev()
            .take(64)
            .any(|q| q.proc != o.proc && end(q) > o.call);
        n += usize::from(after || before);
    }
    n as f64 / history.len() as f64
}

/// The seeds to run: one in `cargo test` (`base_seed`, or
/// `PROCSHARE_HISTORY_SEED` to replay a failure); with
/// `PROCSHARE_HISTORY_SOAK_SECS=n`, new seeds for about `n` seconds (the
/// clock only decides when to stop, never what passes).
pub fn soak(name: &str, base_seed: u64, mut round: impl FnMut(u64)) {
    let secs: u64 = std::env::var("PROCSHARE_HISTORY_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let start = Instant::now();
    let mut seed = std::env::var("PROCSHARE_HISTORY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(base_seed);
    let mut rounds = 0u64;
    let mut slowest = (Duration::ZERO, seed);
    loop {
        let t = Instant::now();
        round(seed);
        slowest = slowest.max((t.elapsed(), seed));
        rounds += 1;
        if start.elapsed() >= Duration::from_secs(secs) {
            break;
        }
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
    }
    if secs > 0 {
        eprintln!(
            "soak {name}: {rounds} rounds in {:?}; slowest round {:?} (seed {})",
            start.elapsed(),
            slowest.0,
            slowest.1
        );
    }
}

/// `history` as text, one op a line: `proc key kind arg call ret_time ret`
/// (`- -` for an indeterminate op); [`load`] reads it back.
pub fn dump(history: &[Op]) -> String {
    let mut s = String::new();
    for o in history {
        let (rt, r) = match o.ret {
            Some((t, r)) => (t.to_string(), r.to_string()),
            None => ("-".into(), "-".into()),
        };
        s += &format!(
            "{} {} {} {} {} {rt} {r}\n",
            o.proc, o.key, o.kind, o.arg, o.call
        );
    }
    s
}

/// Reads a history written by [`dump`].
pub fn load(text: &str) -> Vec<Op> {
    text.lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Op {
                proc: f[0].parse().unwrap(),
                key: f[1].parse().unwrap(),
                kind: f[2].parse().unwrap(),
                arg: f[3].parse().unwrap(),
                call: f[4].parse().unwrap(),
                ret: (f[5] != "-").then(|| (f[5].parse().unwrap(), f[6].parse().unwrap())),
            }
        })
        .collect()
}
