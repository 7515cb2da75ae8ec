//! Manager throughput, side by side in one run with the transport's limit.
//!
//! `cargo bench -p procshare --bench manager` (env `N`: appends per process,
//! default 20000). Prints:
//! * bare ping-pong over a unix socket (same framing, an echo process): round trips/s,
//!   with one pair and with two pairs at once (two clients, as below);
//! * the manager: `ping` and one-at-a-time `append` from one process, and from
//!   two processes appending to one list at once;
//! * the batched path (`extend` in batches of 100) and the pipelined path
//!   (`append_pipelined`, windows of 64), two processes;
//! * CPython's `Manager().list()` append with two processes, if `python3` is
//!   present (impl/benches/cpython.py), and the ratios.

mod common;

use common::manager::{managed, ping_pong, Mode};

fn n() -> usize {
    std::env::var("N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000)
}

fn cpython(per: usize) -> Option<f64> {
    common::key(&common::cpython("manager", &[&per.to_string()])?, "manager")
}

fn main() {
    procshare::set_fork_warning(false);
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for a list: nothing to list.
    }
    let n = n();
    // Each figure is the best of `REPS` runs, the runs of different kinds
    // interleaved (where the scheduler puts 3 processes on 2 vCPUs changes
    // a round trip several-fold from one run to the next).
    let reps: usize = std::env::var("REPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let (mut pp1, mut pp2, mut ping1, mut app1, mut app2, mut ext2, mut pip2) =
        (0f64, 0f64, 0f64, 0f64, 0f64, 0f64, 0f64);
    for _ in 0..reps {
        pp1 = pp1.max(ping_pong(1, n));
        ping1 = ping1.max(managed(1, n, Mode::Ping));
        app1 = app1.max(managed(1, n, Mode::Append));
        pp2 = pp2.max(ping_pong(2, n));
        app2 = app2.max(managed(2, n, Mode::Append));
        ext2 = ext2.max(managed(2, n * 5, Mode::Extend(100)));
        pip2 = pip2.max(managed(2, n, Mode::Pipelined));
    }
    println!("manager bench, N = {n} ops per process, best of {reps} (ops/s; higher is better)");
    println!("  bare ping-pong, unix socket, 1 pair        {pp1:>12.0}");
    println!("  bare ping-pong, unix socket, 2 pairs       {pp2:>12.0}");
    println!(
        "  manager ping, 1 process                    {ping1:>12.0}  ({:.2}x 1-pair ping-pong)",
        ping1 / pp1
    );
    println!(
        "  manager append, 1 process                  {app1:>12.0}  ({:.2}x 1-pair ping-pong)",
        app1 / pp1
    );
    println!(
        "  manager append, 2 processes                {app2:>12.0}  ({:.2}x 2-pair ping-pong)",
        app2 / pp2
    );
    println!("  manager extend (batches of 100), 2 procs   {ext2:>12.0}");
    println!("  manager append_pipelined, 2 procs         {pip2:>12.0}");
    match cpython(n / 2) {
        Some(py) => {
            println!("  CPython Manager().list().append, 2 procs   {py:>12.0}");
            println!(
                "  ratios to CPython: append {:.1}x, extend {:.1}x, pipelined {:.1}x",
                app2 / py,
                ext2 / py,
                pip2 / py
            );
        }
        None => println!("  (python3 not available: no CPython comparison)"),
    }
}
