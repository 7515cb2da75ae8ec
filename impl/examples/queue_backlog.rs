//! The unbounded queue's memory: 10 M small messages (`u64`) put by one
//! process with nobody reading, then drained by another. Prints the peak
//! (`VmHWM`) and final (`VmRSS`) resident memory of both processes, read from
//! `/proc/<pid>/status`, and the memory the queue's ring holds (its memfd's
//! allocated blocks) before and after the drain.
//!
//! ```text
//! cargo run --release -p procshare --example queue_backlog [-- <messages>]
//! ```

use std::time::Instant;

use procshare::{Process, Queue};

/// `(VmHWM, VmRSS)` of this process, in KiB.
fn rss_kib() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let field = |name: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn main() {
    procshare::set_fork_warning(false);
    let n: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("a number of messages"))
        .unwrap_or(10_000_000);
    let q: Queue<u64> = Queue::new().expect("queue");
    // (who, seconds, VmHWM KiB, VmRSS KiB), from each child.
    let report: Queue<(String, f64, u64, u64)> = Queue::new().expect("queue");
    let ring = || q.raw().allocated_bytes().unwrap_or(0) as f64 / (1 << 20) as f64;
    println!(
        "messages: {n} u64, ring reserved: {} GiB of address space",
        q.raw().capacity_bytes() >> 30
    );
    println!("ring memory at start: {:.1} MiB", ring());

    let mut producer = Process::new({
        let (q, report) = (q.clone(), report.clone());
        move || {
            let t = Instant::now();
            for i in 0..n {
                q.put(&i).expect("put");
            }
            let secs = t.elapsed().as_secs_f64();
            let (hwm, rss) = rss_kib();
            report
                .put(&("producer".into(), secs, hwm, rss))
                .expect("report");
        }
    });
    producer.start().expect("start");
    assert_eq!(producer.join().expect("join"), 0, "producer failed");
    println!(
        "ring memory with {} messages in it: {:.1} MiB",
        q.qsize(),
        ring()
    );

    let mut consumer = Process::new({
        let (q, report) = (q.clone(), report.clone());
        move || {
            let t = Instant::now();
            for i in 0..n {
                assert_eq!(q.get().expect("get"), i);
            }
            let secs = t.elapsed().as_secs_f64();
            let (hwm, rss) = rss_kib();
            report
                .put(&("consumer".into(), secs, hwm, rss))
                .expect("report");
        }
    });
    consumer.start().expect("start");
    assert_eq!(consumer.join().expect("join"), 0, "consumer failed");
    println!("ring memory after the drain: {:.1} MiB", ring());
    for _ in 0..2 {
        let (who, secs, hwm, rss) = report.get().expect("report");
        println!(
            "{who}: {:.2} s ({:.0} ns/message), peak RSS (VmHWM) {:.1} MiB, final RSS (VmRSS) {:.1} MiB",
            secs,
            secs * 1e9 / n as f64,
            mib(hwm),
            mib(rss)
        );
    }
    let (hwm, rss) = rss_kib();
    println!(
        "parent: peak RSS {:.1} MiB, final RSS {:.1} MiB",
        mib(hwm),
        mib(rss)
    );
}
