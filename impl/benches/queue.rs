//! Queue throughput, with the variants the table leaves out: one producer
//! process and one consumer process moving `u64`s and 4 KiB messages through
//! a `procshare::Queue` (unbounded and 1 MiB bounded; `Vec<u8>` and
//! `ByteBuf`) and the untyped `RawQueue`, with the ratio to
//! `crossbeam_channel::bounded` between two threads and to CPython's
//! `multiprocessing.Queue` (when `python3` is present), measured in the same run.
//!
//! ```text
//! cargo bench -p procshare --bench queue [-- small|big]
//! ```

mod common;

use std::time::Duration;

use common::queue::{big_of, bytebuf, crossbeam, raw, small, BIG};
use procshare::Queue;

const SMALL_N: u64 = 2_000_000;
const BIG_N: u64 = 50_000;

/// Rounds per measurement: each figure is the median of this many
/// interleaved runs.
const ROUNDS: usize = 3;

fn report(name: &str, n: u64, bytes: usize, d: &[Duration]) -> f64 {
    let rate = common::rate(n, common::median(d));
    println!(
        "{name:<40} {:>12.0} msgs/s {:>10.1} MB/s",
        rate,
        rate * bytes as f64 / 1e6
    );
    rate
}

fn cpython(n: u64, size: usize) -> Option<f64> {
    let out = common::cpython("queue", &[&n.to_string(), &size.to_string()])?;
    common::key(&out, "queue")
}

fn main() {
    procshare::set_fork_warning(false);
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for the list
    }
    let want = |part: &str| {
        !args.iter().any(|a| a == "small" || a == "big") || args.iter().any(|a| a == part)
    };
    println!("queue throughput, one producer process -> one consumer process");
    println!("(medians of {ROUNDS} interleaved rounds)");
    if want("small") {
        let [ps, cb, pr, psb] = common::rounds(
            ROUNDS,
            [
                &|| small(Queue::new().unwrap(), SMALL_N),
                &|| crossbeam(SMALL_N, |i| i),
                &|| raw(SMALL_N, 8),
                // A 1 MiB byte-bounded ring keeps its pages (the default
                // queue gives consumed memory back and faults fresh pages in).
                &|| {
                    let q = Queue::builder().capacity_bytes(1 << 20).build().unwrap();
                    small(q, SMALL_N)
                },
            ],
        );
        let ps = report("procshare Queue<u64>", SMALL_N, 8, &ps);
        let psb = report("procshare Queue<u64>, 1 MiB bounded ring", SMALL_N, 8, &psb);
        println!("  ratio unbounded / 1 MiB bounded (u64): {:.2}x", ps / psb);
        let cb = report("crossbeam bounded(1024) u64, 2 threads", SMALL_N, 8, &cb);
        println!("  ratio procshare / crossbeam (u64): {:.2}x", ps / cb);
        let pr = report("procshare RawQueue 8 bytes (no serde)", SMALL_N, 8, &pr);
        println!("  ratio RawQueue / crossbeam (8 bytes): {:.2}x", pr / cb);
        match cpython(200_000, 0) {
            Some(py) => {
                println!(
                    "{:<40} {py:>12.0} msgs/s",
                    "CPython multiprocessing.Queue int"
                );
                println!("  ratio procshare / CPython (u64): {:.1}x", ps / py);
            }
            None => println!("  (python3 not available: no CPython comparison)"),
        }
    }
    if want("big") {
        let [pb, cbb, pbb, pr] = common::rounds(
            ROUNDS,
            [
                &|| big_of(BIG_N, || vec![7u8; BIG], |v| v.len()),
                &|| crossbeam(BIG_N, |_| vec![7u8; BIG]),
                &|| bytebuf(BIG_N),
                &|| raw(BIG_N, BIG),
            ],
        );
        let pb = report("procshare Queue<Vec<u8>> 4 KiB", BIG_N, BIG, &pb);
        let cbb = report("crossbeam bounded(1024) 4 KiB, 2 threads", BIG_N, BIG, &cbb);
        println!("  ratio procshare / crossbeam (4 KiB): {:.2}x", pb / cbb);
        let pbb = report(
            "procshare Queue<ByteBuf> 4 KiB (serde_bytes)",
            BIG_N,
            BIG,
            &pbb,
        );
        println!(
            "  ratio Queue<ByteBuf> / crossbeam (4 KiB): {:.2}x",
            pbb / cbb
        );
        let pr = report(
            "procshare RawQueue 4 KiB (bytes, no serde)",
            BIG_N,
            BIG,
            &pr,
        );
        println!("  ratio RawQueue / crossbeam (4 KiB): {:.2}x", pr / cbb);
        if let Some(py) = cpython(20_000, BIG) {
            println!(
                "{:<40} {py:>12.0} msgs/s",
                "CPython multiprocessing.Queue 4 KiB"
            );
            println!("  ratio procshare / CPython (4 KiB): {:.1}x", pb / py);
            println!("  ratio Queue<ByteBuf> / CPython (4 KiB): {:.1}x", pbb / py);
            println!("  ratio RawQueue / CPython (4 KiB): {:.1}x", pr / py);
        }
    }
}
