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
//!   present (impl/benches/manager_cpython.py), and the ratios.

mod common;

use procshare::internals::wire;
use procshare::Manager;
use procshare::Process;
use std::os::unix::net::UnixStream;
use std::time::Instant;

fn n() -> usize {
    std::env::var("N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000)
}

/// Round trips/s of `pairs` concurrent echo pairs over unix stream sockets, 8-byte payloads.
fn ping_pong(pairs: usize, rounds: usize) -> f64 {
    let mut echoes = Vec::new();
    let mut clients = Vec::new();
    for _ in 0..pairs {
        let (a, b) = UnixStream::pair().unwrap();
        let mut echo = Process::new(move || {
            let mut b = b;
            // An empty frame ends it (other processes hold copies of the
            // client's end, so end-of-stream would never come).
            while let Ok(p) = wire::read_frame_bytes(&mut b, 64) {
                if p.is_empty() || wire::write_frame_bytes(&mut b, &p).is_err() {
                    break;
                }
            }
        });
        echo.start().unwrap();
        echoes.push(echo);
        clients.push(a);
    }
    let go = procshare::Manager::start().unwrap();
    let ev = go.event().unwrap();
    let mut procs: Vec<Process> = clients
        .into_iter()
        .map(|mut a| {
            let ev = ev.clone();
            let mut p = Process::new(move || {
                ev.wait().unwrap();
                for i in 0..rounds as u64 {
                    wire::write_frame_bytes(&mut a, &i.to_le_bytes()).unwrap();
                    wire::read_frame_bytes(&mut a, 64).unwrap();
                }
                wire::write_frame_bytes(&mut a, &[]).unwrap();
            });
            p.start().unwrap();
            p
        })
        .collect();
    let t = Instant::now();
    ev.set().unwrap();
    for p in &mut procs {
        assert_eq!(p.join().unwrap(), 0);
    }
    let dt = t.elapsed().as_secs_f64();
    for e in &mut echoes {
        e.join().unwrap();
    }
    (pairs * rounds) as f64 / dt
}

#[derive(Clone, Copy)]
enum Mode {
    Ping,
    Append,
    Extend(usize),
    Pipelined,
}

/// Ops/s of `procs` processes doing `per` operations each on one managed list.
fn managed(procs: usize, per: usize, mode: Mode) -> f64 {
    let m = Manager::start().unwrap();
    let l = m.list::<u64>().unwrap();
    let go = m.event().unwrap();
    let ready = m.queue::<u8>(None).unwrap();
    let mut ps: Vec<Process> = (0..procs)
        .map(|w| {
            let (l, go, ready, m_addr, key) = (
                l.clone(),
                go.clone(),
                ready.clone(),
                m.address().clone(),
                m.authkey().clone(),
            );
            let mut p = Process::new(move || {
                let pinger = Manager::connect(m_addr, key).unwrap();
                // Warm the connection before the clock starts.
                l.len().unwrap();
                ready.put(0).unwrap();
                go.wait().unwrap();
                let base = (w as u64) << 32;
                match mode {
                    Mode::Ping => (0..per).for_each(|_| pinger.ping().unwrap()),
                    Mode::Append => (0..per as u64).for_each(|i| l.append(base + i).unwrap()),
                    Mode::Extend(b) => {
                        for c in (0..per as u64).collect::<Vec<_>>().chunks(b) {
                            l.extend(c.iter().map(|i| base + i)).unwrap();
                        }
                    }
                    Mode::Pipelined => l
                        .append_pipelined((0..per as u64).map(|i| base + i))
                        .unwrap(),
                }
                std::mem::forget(pinger);
            });
            p.start().unwrap();
            p
        })
        .collect();
    for _ in 0..procs {
        ready.get().unwrap();
    }
    let t = Instant::now();
    go.set().unwrap();
    for p in &mut ps {
        assert_eq!(p.join().unwrap(), 0);
    }
    let dt = t.elapsed().as_secs_f64();
    if !matches!(mode, Mode::Ping) {
        assert_eq!(l.len().unwrap(), procs * per);
    }
    (procs * per) as f64 / dt
}

fn cpython(per: usize) -> Option<f64> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/manager_cpython.py");
    common::python3(&[script, &per.to_string()])?
        .trim()
        .parse()
        .ok()
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
