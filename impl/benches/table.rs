//! The one table: every figure of the README's "Performance" section, each
//! beside its reference measured in the same run (in-process, and CPython's
//! `multiprocessing` when `python3` is present), with the ratios. Figures are
//! medians of interleaved rounds (each round runs every measurement once, so
//! that a burst of load from elsewhere hits both sides of a ratio).
//!
//! ```text
//! cargo bench -p procshare --bench table
//! PROCSHARE_BENCH_QUICK=1 cargo bench -p procshare --bench table   # one short round
//! ```
//!
//! `PROCSHARE_BENCH_ONLY=queue_u64` (or `queue_1p`: put+get in one process;
//! `queue_pod`, `pod_1p`: the same through a `PodQueue`; `cb_u64`: the crossbeam reference;
//! `bytebuf`: the 4 KiB `ByteBuf` row; `raw4k`: 4 KiB through the untyped
//! `RawQueue`; `start`; `pool_map`; `pool_map_pod`; `apply_async`; `value_lock`;
//! `manager_append`; `rtt_queue`: the round trip through two `Queue`s, peer
//! running, beside crossbeam's; `rtt_asleep`: the peer-asleep round trips
//! through two `Queue`s, a `Pipe` and a unix socket) runs
//! that one measurement alone, for a profiler
//! (`valgrind --tool=callgrind`) or an A/B comparison on a busy machine.
//!
//! The load average is printed first, with a warning when it exceeds 1: the
//! figures of a busy machine are not the library's.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{latency, locks, manager, pool, queue, rate, start};
use procshare::{Queue, StartMethod};

/// How much work each measurement does.
struct Sizes {
    rounds: usize,
    small: u64,
    big: u64,
    map: u64,
    trips: u64,
    starts: usize,
    increments: u64,
    appends: usize,
    rtt: u64,
    rtt_asleep: u64,
}

impl Sizes {
    fn new() -> Sizes {
        let full = Sizes {
            rounds: 5,
            small: 2_000_000,
            big: 50_000,
            map: 1_000_000,
            trips: 5_000,
            starts: 200,
            increments: 2_000_000,
            appends: 20_000,
            rtt: 10_000,
            rtt_asleep: 300,
        };
        if !common::quick() {
            return full;
        }
        Sizes {
            rounds: 1,
            small: full.small / 10,
            big: full.big / 10,
            map: full.map,
            trips: full.trips / 10,
            starts: full.starts / 10,
            increments: full.increments / 10,
            appends: full.appends / 10,
            rtt: full.rtt / 10,
            rtt_asleep: full.rtt_asleep / 10,
        }
    }
}

/// How long the client sleeps before a round trip in the "peer asleep" rows:
/// well past any spin, so that the echo side sleeps in the kernel.
const ASLEEP_GAP: Duration = Duration::from_millis(1);

/// Each measurement's figures over the rounds: rates per second, or seconds.
type Figures = BTreeMap<&'static str, Vec<f64>>;

/// Runs per round of each pool figure: CPython's `pool` takes the best of 3
/// (1 in a quick run).
fn pool_runs() -> usize {
    if common::quick() {
        1
    } else {
        3
    }
}

fn one_round(s: &Sizes, p: &procshare::Pool, f: &mut Figures) {
    let mut put = |k: &'static str, v: f64| f.entry(k).or_default().push(v);
    let secs = |d: Duration| d.as_secs_f64();

    put(
        "queue_u64",
        rate(s.small, queue::small(Queue::new().unwrap(), s.small)),
    );
    put("cb_u64", rate(s.small, queue::crossbeam(s.small, |i| i)));
    put("queue_pod", rate(s.small, queue::pod(s.small)));
    put("queue_4k", rate(s.big, queue::bytebuf(s.big)));
    put(
        "cb_4k",
        rate(s.big, queue::crossbeam(s.big, |_| vec![7u8; queue::BIG])),
    );

    // Each pool figure is the best of 3 consecutive runs, as CPython's (see
    // `common::best_of`).
    let best = |f: &dyn Fn() -> Duration| common::best_of(pool_runs(), f);
    put("map", rate(s.map, best(&|| pool::map(p, s.map))));
    put("map_pod", rate(s.map, best(&|| pool::map_pod(p, s.map))));
    put(
        "threads_map",
        rate(s.map, best(&|| pool::threads_map(s.map))),
    );
    put(
        "apply",
        rate(s.trips, best(&|| pool::round_trips(p, s.trips))),
    );
    put("pp1", manager::ping_pong(1, s.trips as usize));

    let (mut ps, mut raw) = (Vec::new(), Vec::new());
    start::interleaved(StartMethod::Fork, s.starts, &mut ps, &mut raw);
    put("start", secs(common::median(&ps)));
    put("raw_fork", secs(common::median(&raw)));

    put(
        "value",
        locks::value(s.increments, || procshare::Value::new(0).unwrap()),
    );
    put("std_mutex", locks::std_mutex(s.increments));
    put("pthread", locks::robust_pthread(s.increments));

    put(
        "append",
        manager::managed(2, s.appends, manager::Mode::Append),
    );
    put("pp2", manager::ping_pong(2, s.appends));

    for (asleep, n, gap) in [(false, s.rtt, None), (true, s.rtt_asleep, Some(ASLEEP_GAP))] {
        let k =
            |running: &'static str, sleeping: &'static str| if asleep { sleeping } else { running };
        put(k("rtt_queue", "rtt_queue_z"), secs(latency::queues(n, gap)));
        put(k("rtt_pipe", "rtt_pipe_z"), secs(latency::pipe(n, gap)));
        put(
            k("rtt_manager", "rtt_manager_z"),
            secs(latency::manager(n, gap)),
        );
        put(k("rtt_unix", "rtt_unix_z"), secs(latency::unix(n, gap)));
        put(k("rtt_cb", "rtt_cb_z"), secs(latency::crossbeam(n, gap)));
    }

    let q = if common::quick() { "1" } else { "0" };
    if let Some(out) = common::cpython("all", &[q]) {
        for (k, v) in out {
            let k: &'static str = Box::leak(format!("py_{k}").into_boxed_str());
            put(k, v);
        }
    }
}

/// What a row's figures are.
#[derive(Clone, Copy)]
enum Unit {
    /// Events per second, named (higher is better).
    Rate(&'static str),
    /// Seconds (lower is better).
    Time,
}

/// One row: procshare's figure, the reference's, CPython's, the target.
struct Row {
    work: &'static str,
    unit: Unit,
    ours: &'static str,
    reference: (&'static str, &'static str),
    py: Option<&'static str>,
    target: &'static str,
}

const ROWS: &[Row] = &[
    Row {
        work: "Queue<u64>, 1 producer process -> 1 consumer",
        unit: Unit::Rate("msgs/s"),
        ours: "queue_u64",
        reference: ("crossbeam bounded, 2 threads", "cb_u64"),
        py: Some("py_queue"),
        target: ">= 0.5x crossbeam",
    },
    Row {
        work: "PodQueue<u64>, 1 producer process -> 1 consumer",
        unit: Unit::Rate("msgs/s"),
        ours: "queue_pod",
        reference: ("crossbeam bounded, 2 threads", "cb_u64"),
        py: Some("py_queue"),
        target: ">= 0.5x crossbeam",
    },
    Row {
        work: "4 KiB ByteBuf messages, 1 -> 1 process",
        unit: Unit::Rate("msgs/s"),
        ours: "queue_4k",
        reference: ("crossbeam moving Vecs, 2 threads", "cb_4k"),
        py: Some("py_queue_4k"),
        target: ">= 2x crossbeam, >= 20x CPython",
    },
    Row {
        work: "Pool(2).map, trivial fn, 1 M u64",
        unit: Unit::Rate("items/s"),
        ours: "map",
        reference: ("same map on 2 std threads", "threads_map"),
        py: Some("py_map"),
        target: ">= 20x CPython",
    },
    Row {
        work: "Pool(2).map_pod, trivial fn, 1 M u64",
        unit: Unit::Rate("items/s"),
        ours: "map_pod",
        reference: ("same map on 2 std threads", "threads_map"),
        py: Some("py_map"),
        target: ">= 20x CPython",
    },
    Row {
        work: "apply_async().get() round trips",
        unit: Unit::Rate("trips/s"),
        ours: "apply",
        reference: ("unix-socket ping-pong, 1 pair", "pp1"),
        py: Some("py_apply"),
        target: ">= 10x CPython",
    },
    Row {
        work: "process start + join (fork)",
        unit: Unit::Time,
        ours: "start",
        reference: ("raw fork/_exit/waitpid", "raw_fork"),
        py: Some("py_start"),
        target: "<= 1.25x raw",
    },
    Row {
        work: "Value lock, 2 processes",
        unit: Unit::Rate("ops/s"),
        ours: "value",
        reference: ("std Mutex, 2 threads", "std_mutex"),
        py: Some("py_value_lock"),
        target: ">= 1.0x std",
    },
    Row {
        work: "Value lock, 2 processes",
        unit: Unit::Rate("ops/s"),
        ours: "value",
        reference: ("glibc robust pshared pthread_mutex, 2 procs", "pthread"),
        py: None,
        target: ">= 1.0x pthread",
    },
    Row {
        work: "manager list append, 2 processes",
        unit: Unit::Rate("ops/s"),
        ours: "append",
        reference: ("unix-socket ping-pong, 2 pairs", "pp2"),
        py: Some("py_manager"),
        target: ">= 1.0x ping-pong",
    },
    Row {
        work: "round trip via 2 Queues, peer running",
        unit: Unit::Time,
        ours: "rtt_queue",
        reference: ("crossbeam bounded(1) x2, 2 threads", "rtt_cb"),
        py: Some("py_queue_rtt"),
        target: "<= 2 us",
    },
    Row {
        work: "round trip via Pipe, peer running",
        unit: Unit::Time,
        ours: "rtt_pipe",
        reference: ("unix-socket ping-pong", "rtt_unix"),
        py: Some("py_pipe_rtt"),
        target: "",
    },
    Row {
        work: "round trip via manager ping, peer running",
        unit: Unit::Time,
        ours: "rtt_manager",
        reference: ("unix-socket ping-pong", "rtt_unix"),
        py: None,
        target: "",
    },
    Row {
        work: "round trip via 2 Queues, peer asleep",
        unit: Unit::Time,
        ours: "rtt_queue_z",
        reference: ("crossbeam bounded(1) x2, 2 threads", "rtt_cb_z"),
        py: None,
        target: "",
    },
    Row {
        work: "round trip via Pipe, peer asleep",
        unit: Unit::Time,
        ours: "rtt_pipe_z",
        reference: ("unix-socket ping-pong", "rtt_unix_z"),
        py: None,
        target: "",
    },
    Row {
        work: "round trip via manager ping, peer asleep",
        unit: Unit::Time,
        ours: "rtt_manager_z",
        reference: ("unix-socket ping-pong", "rtt_unix_z"),
        py: None,
        target: "",
    },
];

/// `v` as a short figure in `unit`.
fn show(v: f64, unit: Unit) -> String {
    match unit {
        Unit::Rate(u) if v >= 1e6 => format!("{:.2} M {u}", v / 1e6),
        Unit::Rate(u) => format!("{:.1} k {u}", v / 1e3),
        Unit::Time if v >= 1e-3 => format!("{:.2} ms", v * 1e3),
        Unit::Time => format!("{:.1} us", v * 1e6),
    }
}

/// The first line of `/proc/cpuinfo` naming `field`, and the CPU count.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let n = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{n} CPUs ({cpu}), Linux {}", kernel.trim())
}

/// One measurement alone (`PROCSHARE_BENCH_ONLY`), for a profiler.
fn profile_one(only: &str, s: &Sizes) {
    match only {
        "queue_u64" => {
            let d = queue::small(Queue::new().unwrap(), s.small);
            println!("queue_u64: {:.0} msgs/s", rate(s.small, d));
        }
        "queue_pod" => {
            let d = queue::pod(s.small);
            println!("queue_pod: {:.0} msgs/s", rate(s.small, d));
        }
        "pod_1p" => {
            let best = (0..5)
                .map(|_| queue::pod_one_process(s.small))
                .min()
                .expect("runs");
            let ns = best.as_nanos() as f64 / s.small as f64;
            println!("pod_1p: put+get of a u64 through a PodQueue in one process: {ns:.1} ns (best of 5)");
        }
        "cb_u64" => {
            let d = queue::crossbeam(s.small, |i| i);
            println!("cb_u64: {:.0} msgs/s", rate(s.small, d));
        }
        "bytebuf" => {
            let d = queue::bytebuf(s.big);
            println!("bytebuf: {:.0} msgs/s", rate(s.big, d));
        }
        "raw4k" => {
            let d = queue::raw(s.big, queue::BIG);
            println!("raw4k: {:.0} msgs/s", rate(s.big, d));
        }
        "queue_1p" => {
            let best = (0..5)
                .map(|_| queue::one_process(s.small))
                .min()
                .expect("runs");
            let ns = best.as_nanos() as f64 / s.small as f64;
            println!("queue_1p: put+get of a u64 in one process: {ns:.1} ns (best of 5)");
        }
        "start" => {
            let (mut ps, mut raw) = (Vec::new(), Vec::new());
            // Page faults (minor) per start, in this process and in the children.
            let (mut fps, mut fraw) = ((0, 0), (0, 0));
            for _ in 0..s.rounds {
                // The ratio from pairs in turn (as the table takes it); the
                // page faults from a block of each.
                start::interleaved(StartMethod::Fork, s.starts, &mut ps, &mut raw);
                let f0 = start::faults();
                start::raw_fork(s.starts, &mut Vec::new());
                let f1 = start::faults();
                start::procshare(StartMethod::Fork, s.starts, &mut Vec::new());
                let f2 = start::faults();
                fraw = (fraw.0 + f1.0 - f0.0, fraw.1 + f1.1 - f0.1);
                fps = (fps.0 + f2.0 - f1.0, fps.1 + f2.1 - f1.1);
            }
            let (ps, raw) = (common::median(&ps), common::median(&raw));
            let ratio = ps.as_secs_f64() / raw.as_secs_f64();
            let n = (s.rounds * s.starts) as f64;
            println!("start: median {ps:?}, raw fork {raw:?}: {ratio:.2}x");
            println!(
                "minor page faults per start (parent, child): procshare ({:.1}, {:.1}), raw ({:.1}, {:.1})",
                fps.0 as f64 / n,
                fps.1 as f64 / n,
                fraw.0 as f64 / n,
                fraw.1 as f64 / n
            );
        }
        // `Pool(2).map` of `s.map` u64s / `apply_async(..).get()` round
        // trips one at a time, each after a warm-up (the workers' buffers
        // sized), `s.rounds` times (`PROCSHARE_BENCH_HOLD`: see `hold`).
        "pool_map" => pool_rounds(s, "pool_map", "items", (s.map, s.map), pool::map),
        "pool_map_pod" => pool_rounds(s, "pool_map_pod", "items", (s.map, s.map), pool::map_pod),
        "apply_async" => pool_rounds(s, "apply_async", "trips", (100, s.trips), pool::round_trips),
        "value_lock" => {
            // `PROCSHARE_BENCH_ONLY=value_lock`: the two `Value` lock rows
            // alone, `s.rounds` interleaved rounds with their references.
            for _ in 0..s.rounds {
                let v = locks::value(s.increments, || procshare::Value::new(0).unwrap());
                let p = locks::robust_pthread(s.increments);
                let m = locks::std_mutex(s.increments);
                println!(
                    "value_lock: {v:.0} ops/s, glibc robust {p:.0} ({:.2}x), std Mutex {m:.0} ({:.2}x)",
                    v / p,
                    v / m
                );
            }
        }
        "manager_append" => {
            // `PROCSHARE_BENCH_ONLY=manager_append`: the table's "manager
            // list append, 2 processes" row alone, `s.rounds` times (each
            // round a fresh manager); `PROCSHARE_BENCH_APPENDS=N` sets the
            // appends per process (for callgrind), `PROCSHARE_BENCH_REF=1`
            // runs its reference (2-pair ping-pong) after each round.
            let n = std::env::var("PROCSHARE_BENCH_APPENDS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(s.appends);
            let with_ref = std::env::var_os("PROCSHARE_BENCH_REF").is_some_and(|v| v == "1");
            for _ in 0..s.rounds {
                let a = manager::managed(2, n, manager::Mode::Append);
                if with_ref {
                    let r = manager::ping_pong(2, n);
                    println!(
                        "manager_append: {a:.0} appends/s, ping-pong {r:.0}/s: {:.2}x",
                        a / r
                    );
                } else {
                    println!("manager_append: {a:.0} appends/s");
                }
            }
        }
        "rtt_queue" => {
            let q = latency::queues(s.rtt, None).as_secs_f64() * 1e6;
            let c = latency::crossbeam(s.rtt, None).as_secs_f64() * 1e6;
            println!("rtt_queue: round trip via 2 Queues, peer running: {q:.2} us (crossbeam {c:.2} us)");
        }
        "rtt_asleep" => {
            let gap = Some(ASLEEP_GAP);
            let us = |d: Duration| d.as_secs_f64() * 1e6;
            let q = us(latency::queues(s.rtt_asleep, gap));
            let p = us(latency::pipe(s.rtt_asleep, gap));
            let u = us(latency::unix(s.rtt_asleep, gap));
            println!("rtt_asleep: round trip, peer asleep: 2 Queues {q:.1} us, Pipe {p:.1} us, unix socket {u:.1} us");
        }
        _ => eprintln!(
            "PROCSHARE_BENCH_ONLY: queue_u64, queue_1p, queue_pod, pod_1p, cb_u64, bytebuf, raw4k, start, pool_map, pool_map_pod, apply_async, value_lock, manager_append, rtt_queue or rtt_asleep"
        ),
    }
}

/// A `PROCSHARE_BENCH_ONLY` pool mode: `run(pool, warm)` once to warm up,
/// then `run(pool, n)` `s.rounds` times, each rate printed; then the pool is
/// closed.
fn pool_rounds(
    s: &Sizes,
    name: &str,
    unit: &str,
    (warm, n): (u64, u64),
    run: impl Fn(&procshare::Pool, u64) -> std::time::Duration,
) {
    let p = pool::two_workers();
    let _ = run(&p, warm);
    for _ in 0..s.rounds {
        let d = run(&p, n);
        println!("{name}: {:.0} {unit}/s", rate(n, d));
    }
    hold(&p);
    p.close().expect("close");
    p.join().expect("join");
}

fn main() {
    procshare::set_fork_warning(false);
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for the list
    }
    let s = Sizes::new();
    if let Ok(only) = std::env::var("PROCSHARE_BENCH_ONLY") {
        return profile_one(&only, &s);
    }
    let load = common::load_average();
    println!("procshare: one table ({})", machine());
    match load {
        Some(l) if l > 1.0 => println!(
            "WARNING: load average {l:.2} > 1 at start: the machine is busy, \
             these figures are not the library's"
        ),
        Some(l) => println!("load average at start: {l:.2}"),
        None => println!("load average: unknown"),
    }
    println!(
        "medians of {} interleaved rounds{}; ratio = procshare / reference \
         (rates: higher is better; times: lower is better)\n",
        s.rounds,
        if common::quick() {
            " (PROCSHARE_BENCH_QUICK: a smoke run, not figures)"
        } else {
            ""
        }
    );
    let p = pool::two_workers();
    let _ = pool::map(&p, s.map); // warm the workers up
    let mut f = Figures::new();
    for _ in 0..s.rounds {
        one_round(&s, &p, &mut f);
    }
    drop(p);
    let med = |k: &str| f.get(k).map(|v| common::median(v));
    println!("| work | procshare | reference (same run) | ratio | CPython | ratio | target |");
    println!("|---|---|---|---|---|---|---|");
    for r in ROWS {
        let Some(ours) = med(r.ours) else { continue };
        let (rname, rkey) = r.reference;
        let refv = med(rkey).expect("every reference is measured");
        let (py, pyr) = match r.py.and_then(med) {
            Some(py) => (show(py, r.unit), format!("{:.2}x", ours / py)),
            None => ("-".into(), "-".into()),
        };
        println!(
            "| {} | {} | {rname}: {} | {:.2}x | {py} | {pyr} | {} |",
            r.work,
            show(ours, r.unit),
            show(refv, r.unit),
            ours / refv,
            r.target
        );
    }
    if f.keys().all(|k| !k.starts_with("py_")) {
        println!("\n(python3 not available: no CPython figures)");
    }
    if let Some(l) = common::load_average() {
        println!("\nload average at the end: {l:.2}");
    }
}

/// With `PROCSHARE_BENCH_HOLD` set: print the workers' pids and wait for a
/// line on stdin before the pool closes, so that a profiler can be told to
/// write the workers' profiles (`callgrind_control --dump PID`): a worker
/// that ends is killed by the pool once its socket closes, often before
/// valgrind has written its file.
fn hold(p: &procshare::Pool) {
    if std::env::var_os("PROCSHARE_BENCH_HOLD").is_some() {
        println!("workers: {:?}", p.worker_pids());
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    }
}
