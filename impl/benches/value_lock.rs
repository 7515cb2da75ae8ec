//! Two processes incrementing one `Value<i64>` under its lock, against
//! `std::sync::Mutex<i64>` between two threads; and `Process` start+join
//! against a raw `fork`/`_exit`/`waitpid` loop. Both comparisons are measured
//! in the same run. `cargo bench -p procshare --bench value_lock`.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use std::sync::atomic::{AtomicU32, Ordering};

use procshare::internals::ShmBox;
use procshare::RLock;
use procshare::{Process, Value};

const INCREMENTS: u64 = 2_000_000; // per worker
const STARTS: u32 = 2_000;
const ROUNDS: usize = 3;

fn std_mutex() -> f64 {
    let m = Arc::new(Mutex::new(0i64));
    let t0 = Instant::now();
    let hs: Vec<_> = (0..2)
        .map(|_| {
            let m = m.clone();
            std::thread::spawn(move || {
                for _ in 0..INCREMENTS {
                    *m.lock().unwrap() += 1;
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    let dt = t0.elapsed();
    assert_eq!(*m.lock().unwrap(), 2 * INCREMENTS as i64);
    (2 * INCREMENTS) as f64 / dt.as_secs_f64()
}

fn value_procs<F>(make: F) -> f64
where
    F: Fn() -> Value<i64>,
{
    let v = make();
    // Start line: both children check in, then spin until the parent says go,
    // so that the timed part has both incrementing at once.
    let ready = ShmBox::new(AtomicU32::new(0)).unwrap();
    let go = ShmBox::new(AtomicU32::new(0)).unwrap();
    let mut ps: Vec<_> = (0..2)
        .map(|_| {
            let (v, go, ready) = (v.clone(), go.clone(), ready.clone());
            Process::new(move || {
                ready.fetch_add(1, Ordering::AcqRel);
                while go.load(Ordering::Acquire) == 0 {
                    std::hint::spin_loop();
                }
                for _ in 0..INCREMENTS {
                    *v.lock().unwrap() += 1;
                }
            })
        })
        .collect();
    for p in &mut ps {
        p.start().unwrap();
    }
    while ready.load(Ordering::Acquire) < 2 {
        std::thread::yield_now();
    }
    let t0 = Instant::now();
    go.store(1, Ordering::Release);
    for p in &mut ps {
        assert_eq!(p.join().unwrap(), 0);
    }
    let dt = t0.elapsed();
    assert_eq!(v.get(), 2 * INCREMENTS as i64);
    (2 * INCREMENTS) as f64 / dt.as_secs_f64()
}

fn process_starts() -> f64 {
    let t0 = Instant::now();
    for _ in 0..STARTS {
        let mut p = Process::new(|| {});
        p.start().unwrap();
        assert_eq!(p.join().unwrap(), 0);
    }
    STARTS as f64 / t0.elapsed().as_secs_f64()
}

fn raw_forks() -> f64 {
    let t0 = Instant::now();
    for _ in 0..STARTS {
        // SAFETY: the child only calls _exit.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: leave the child at once.
            unsafe { libc::_exit(0) };
        }
        assert!(pid > 0);
        let mut status = 0;
        // SAFETY: waiting for our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert_eq!(status, 0);
    }
    STARTS as f64 / t0.elapsed().as_secs_f64()
}

fn best(f: impl Fn() -> f64) -> f64 {
    (0..ROUNDS).map(|_| f()).fold(0.0, f64::max)
}

fn main() {
    procshare::set_fork_warning(false);
    println!("procshare value_lock bench: best of {ROUNDS} rounds, {INCREMENTS} increments per worker, {STARTS} starts");
    let std_ops = best(std_mutex);
    let rlock_ops = best(|| value_procs(|| Value::new(0).unwrap()));
    let lock_ops = best(|| value_procs(|| Value::with_lock(0, RLock::new().unwrap()).unwrap()));
    // Interleaved, so that both see the same machine load.
    let (mut starts, mut raw) = (0.0f64, 0.0f64);
    for _ in 0..ROUNDS + 2 {
        raw = raw.max(raw_forks());
        starts = starts.max(process_starts());
    }
    println!();
    println!("| measurement | rate | ratio |");
    println!("|---|---|---|");
    println!(
        "| std::sync::Mutex<i64>, 2 threads | {:.2} M ops/s | 1.00 |",
        std_ops / 1e6
    );
    println!(
        "| Value<i64> (default RLock), 2 processes | {:.2} M ops/s | {:.2}x std |",
        rlock_ops / 1e6,
        rlock_ops / std_ops
    );
    println!(
        "| Value<i64> with a separate RLock, 2 processes | {:.2} M ops/s | {:.2}x std |",
        lock_ops / 1e6,
        lock_ops / std_ops
    );
    println!("| raw fork/_exit/waitpid | {raw:.0} /s | 1.00 |");
    println!(
        "| Process start+join | {starts:.0} /s | {:.2}x raw |",
        starts / raw
    );
}
