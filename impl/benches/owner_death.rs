//! Time from `kill -9` of a `Lock`'s holder to the next acquirer holding the
//! lock, over 1,000 rounds with 2, 3 and 4 contenders (children blocked in
//! `Lock::acquire`): median, p99 and max. `cargo bench -p procshare --bench
//! owner_death` (`OWNER_DEATH_ROUNDS=n` to change the number of rounds).
//!
//! A round: a victim child takes the lock and blocks; the contenders check in
//! through a semaphore and call `acquire`; once each one sleeps in `futex`
//! (read from `/proc/<pid>/syscall`) the parent reads the monotonic clock and
//! kills the victim; the first contender to get the lock (`OwnerDied`) writes
//! the clock into shared memory, and every contender releases in turn.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use procshare::internals::ShmBox;
use procshare::{Event, Lock, Process, Semaphore};

fn now_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

fn in_futex(pid: u32) -> bool {
    let futex = if cfg!(target_arch = "x86_64") {
        "202"
    } else {
        "98"
    };
    std::fs::read_to_string(format!("/proc/{pid}/syscall"))
        .map(|s| s.split_whitespace().next() == Some(futex))
        .unwrap_or(false)
}

/// One round with `k` contenders: the latency in nanoseconds.
fn round(k: usize) -> u64 {
    let lock = Lock::new().unwrap();
    let held = Event::new().unwrap();
    let never = Event::new().unwrap();
    let ready = Semaphore::new(0).unwrap();
    let first = ShmBox::new(AtomicU64::new(0)).unwrap();
    let (l, h, n) = (lock.clone(), held.clone(), never.clone());
    let mut victim = Process::new(move || {
        std::mem::forget(l.lock().unwrap());
        h.set();
        n.wait();
    });
    victim.start().unwrap();
    assert!(held.wait_timeout(Duration::from_secs(60)));
    let mut cs: Vec<Process> = (0..k)
        .map(|_| {
            let (l, r, f) = (lock.clone(), ready.clone(), first.clone());
            let mut p = Process::new(move || {
                r.release().unwrap();
                let _ = l.acquire(); // OwnerDied for the first one
                let _ = f.compare_exchange(0, now_ns(), Ordering::AcqRel, Ordering::Acquire);
                l.release().unwrap();
            });
            p.start().unwrap();
            p
        })
        .collect();
    for _ in 0..k {
        ready.acquire();
    }
    for c in &cs {
        let pid = c.pid().unwrap();
        while !in_futex(pid) {
            std::thread::yield_now();
        }
    }
    let t0 = now_ns();
    victim.kill().unwrap();
    for c in &mut cs {
        assert_eq!(c.join().unwrap(), 0);
    }
    victim.join().unwrap();
    first.load(Ordering::Acquire) - t0
}

fn main() {
    let rounds: usize = std::env::var("OWNER_DEATH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let mut all = Vec::with_capacity(rounds);
    for i in 0..rounds {
        all.push(round(2 + i % 3));
    }
    all.sort_unstable();
    let at = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)] as f64 / 1e6;
    println!(
        "kill -9 of a Lock holder -> next acquirer holds it, {} rounds, 2-4 contenders: \
         median {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        all.len(),
        at(0.5),
        at(0.99),
        *all.last().unwrap() as f64 / 1e6
    );
}
