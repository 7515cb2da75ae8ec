//! The manager on Redis, next to `redis-benchmark` on the same server and to
//! the local manager, in the same run.
//!
//! `cargo bench -p procshare --features redis --bench redis` (env `N`:
//! operations per measurement, default 20000; `ROUNDS`, default 5). The server
//! is `PROCSHARE_REDIS_URL` if set (`redis://HOST:PORT/`), else a
//! `redis-server` this bench starts on a free loopback port (nothing
//! persisted) and stops. Each row is the median of `ROUNDS` interleaved rounds
//! (every measurement once per round), one client:
//! * `redis-benchmark -t rpush -c 1`, unpipelined and with `-P 16` (if
//!   `redis-benchmark` is installed);
//! * `ListProxy::append` and `extend` (batches of 100) of a Redis manager;
//! * `LockProxy::acquire` + `release` of a Redis manager;
//! * `ListProxy::append` of a local manager (unix socket, its own server).
//!
//! Then the ratios the README quotes: append over unpipelined `RPUSH` (target
//! ≤ 1.3), and `extend` per item over pipelined `RPUSH` per command.

use procshare::Manager;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// A `redis-server` this bench started: stopped on drop.
struct OwnServer(Child);

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The server's host and port, and the server if this bench started it.
fn server() -> (String, u16, Option<OwnServer>) {
    if let Ok(url) = std::env::var("PROCSHARE_REDIS_URL") {
        let hp = url
            .trim_start_matches("redis://")
            .trim_end_matches('/')
            .to_string();
        let (h, p) = hp
            .rsplit_once(':')
            .expect("PROCSHARE_REDIS_URL: redis://HOST:PORT/");
        return (h.to_string(), p.parse().expect("a port"), None);
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no", "--loglevel", "warning"])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server (Debian: apt-get install redis-server), or set PROCSHARE_REDIS_URL");
    let own = OwnServer(child);
    // Wait until it answers (a connection is accepted).
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "redis-server did not start"
        );
        std::thread::yield_now();
    }
    ("127.0.0.1".into(), port, Some(own))
}

/// µs per command of `redis-benchmark -t rpush -c 1 -n n [-P pipeline]`, or
/// `None` without `redis-benchmark`.
fn redis_benchmark(host: &str, port: u16, n: usize, pipeline: usize) -> Option<f64> {
    let out = Command::new("redis-benchmark")
        .args([
            "-h",
            host,
            "-p",
            &port.to_string(),
            "-t",
            "rpush",
            "-c",
            "1",
        ])
        .args(["-n", &n.to_string(), "-P", &pipeline.to_string(), "-q"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "RPUSH: 57339.45 requests per second, p50=0.015 msec" (the last
    // progress line, after carriage returns).
    let line = text.rsplit('\r').next()?;
    let rps: f64 = line
        .split("RPUSH: ")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(1e6 / rps)
}

fn per_op(n: usize, f: impl FnOnce()) -> f64 {
    let t0 = Instant::now();
    f();
    t0.elapsed().as_secs_f64() * 1e6 / n as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let n = env_usize("N", 20_000);
    let rounds = env_usize("ROUNDS", 5);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load1: f64 = load
        .split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.0);
    let (host, port, _own) = server();
    let url = format!("redis://{host}:{port}/");
    let ns = format!("procshare-bench-{}", std::process::id());
    let redis = Manager::redis(&url, &ns).expect("Manager::redis");
    let local = Manager::start().expect("Manager::start");

    let names = [
        "redis-benchmark RPUSH, unpipelined (µs/cmd)",
        "redis-benchmark RPUSH, -P 16 (µs/cmd)",
        "Redis manager: list append (µs/op)",
        "Redis manager: list extend, 100 per call (µs/item)",
        "Redis manager: lock acquire + release (µs/pair)",
        "local manager: list append (µs/op)",
    ];
    let mut runs: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    for _ in 0..rounds {
        if let Some(us) = redis_benchmark(&host, port, n, 1) {
            runs[0].push(us);
        }
        if let Some(us) = redis_benchmark(&host, port, n * 4, 16) {
            runs[1].push(us);
        }
        let l = redis.list::<u64>().unwrap();
        runs[2].push(per_op(n, || {
            for i in 0..n as u64 {
                l.append(i).unwrap();
            }
        }));
        let l = redis.list::<u64>().unwrap();
        let batches = (n * 4).div_ceil(100);
        runs[3].push(per_op(batches * 100, || {
            for b in 0..batches as u64 {
                l.extend(b * 100..b * 100 + 100).unwrap();
            }
        }));
        let lock = redis.lock().unwrap();
        runs[4].push(per_op(n / 4, || {
            for _ in 0..n / 4 {
                lock.acquire().unwrap();
                lock.release().unwrap();
            }
        }));
        let l = local.list::<u64>().unwrap();
        runs[5].push(per_op(n, || {
            for i in 0..n as u64 {
                l.append(i).unwrap();
            }
        }));
    }
    let _ = Manager::redis_clear(&url, &ns);

    println!(
        "manager on Redis, {rounds} interleaved rounds, N = {n}, load average at start: {}",
        load.trim()
    );
    if load1 > 1.0 {
        println!("WARNING: the machine was busy (load {load1:.2} > 1): figures are noisy");
    }
    let med: Vec<Option<f64>> = runs
        .iter()
        .map(|r| (!r.is_empty()).then(|| median(r.clone())))
        .collect();
    for (name, m) in names.iter().zip(&med) {
        match m {
            Some(us) => println!("  {name:<52} {us:>8.2}"),
            None => println!("  {name:<52} {:>8}", "n/a (no redis-benchmark)"),
        }
    }
    if let (Some(rpush), Some(append)) = (med[0], med[2]) {
        println!(
            "  append / unpipelined RPUSH: {:.2}× (target ≤ 1.3×)",
            append / rpush
        );
    }
    if let (Some(piped), Some(extend)) = (med[1], med[3]) {
        println!(
            "  extend per item / pipelined RPUSH per command: {:.2}×",
            extend / piped
        );
    }
    if let (Some(local), Some(append)) = (med[5], med[2]) {
        println!("  Redis append / local append: {:.2}×", append / local);
    }
}
