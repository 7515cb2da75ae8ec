//! Queue throughput: one producer process and one consumer process moving
//! `u64` messages and 4 KiB messages through a `procshare::Queue`, with the
//! ratio to `crossbeam_channel::bounded` between two threads and to CPython's
//! `multiprocessing.Queue` (when `python3` is present), measured in the same run.
//!
//! ```text
//! cargo bench -p procshare --bench queue
//! ```

mod common;

use std::time::{Duration, Instant};

use procshare::{Process, Queue};

const SMALL_N: u64 = 2_000_000;
const BIG_N: u64 = 50_000;
const BIG: usize = 4096;

fn procshare_small() -> Duration {
    procshare_small_on(Queue::new().unwrap())
}

/// The same through a 1 MiB byte-bounded ring, which keeps its pages (the
/// default queue is unbounded: it gives consumed memory back and faults
/// fresh pages in as it goes).
fn procshare_small_bounded() -> Duration {
    procshare_small_on(Queue::builder().capacity_bytes(1 << 20).build().unwrap())
}

fn procshare_small_on(q: Queue<u64>) -> Duration {
    let mut p = Process::new({
        let q = q.clone();
        move || {
            for i in 0..SMALL_N {
                q.put(&i).unwrap();
            }
        }
    });
    let t = Instant::now();
    p.start().unwrap();
    let mut sum = 0u64;
    for _ in 0..SMALL_N {
        sum = sum.wrapping_add(q.get().unwrap());
    }
    let d = t.elapsed();
    assert_eq!(sum, SMALL_N * (SMALL_N - 1) / 2);
    p.join().unwrap();
    d
}

fn procshare_big() -> Duration {
    procshare_big_of(|| vec![7u8; BIG], |v| v.len())
}

/// 4 KiB messages of type `M` (a `Vec<u8>`, which serde encodes element by
/// element, or a `serde_bytes::ByteBuf`, which it encodes as one byte string —
/// Python's `bytes`).
fn procshare_big_of<M>(make: fn() -> M, len: fn(&M) -> usize) -> Duration
where
    M: serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    let q: Queue<M> = Queue::new().unwrap();
    let mut p = Process::new({
        let q = q.clone();
        move || {
            let v = make();
            for _ in 0..BIG_N {
                q.put(&v).unwrap();
            }
        }
    });
    let t = Instant::now();
    p.start().unwrap();
    for _ in 0..BIG_N {
        assert_eq!(len(&q.get().unwrap()), BIG);
    }
    let d = t.elapsed();
    p.join().unwrap();
    d
}

/// The same through the untyped byte queue (no serde: the ring's own cost;
/// postcard encodes a `Vec<u8>` element by element).
fn procshare_raw_big() -> Duration {
    let q = procshare::RawQueue::new(procshare::internals::DEFAULT_CAPACITY, 0).unwrap();
    let mut p = Process::new({
        let q = q.clone();
        move || {
            let v = vec![7u8; BIG];
            for _ in 0..BIG_N {
                q.put_bytes(&v, None).unwrap();
            }
        }
    });
    let t = Instant::now();
    p.start().unwrap();
    let mut out = Vec::with_capacity(BIG);
    for _ in 0..BIG_N {
        q.get_bytes(&mut out, None).unwrap();
        assert_eq!(out.len(), BIG);
    }
    let d = t.elapsed();
    p.join().unwrap();
    d
}

/// `u64`-sized messages through the untyped byte queue (the ring's own cost,
/// without serde).
fn procshare_raw_small() -> Duration {
    let q = procshare::RawQueue::new(procshare::internals::DEFAULT_CAPACITY, 0).unwrap();
    let mut p = Process::new({
        let q = q.clone();
        move || {
            for i in 0..SMALL_N {
                q.put_bytes(&i.to_le_bytes(), None).unwrap();
            }
        }
    });
    let t = Instant::now();
    p.start().unwrap();
    let mut out = Vec::with_capacity(8);
    let mut sum = 0u64;
    for _ in 0..SMALL_N {
        q.get_bytes(&mut out, None).unwrap();
        sum = sum.wrapping_add(u64::from_le_bytes(out[..].try_into().unwrap()));
    }
    let d = t.elapsed();
    assert_eq!(sum, SMALL_N * (SMALL_N - 1) / 2);
    p.join().unwrap();
    d
}

fn crossbeam<T: Send + 'static>(n: u64, make: impl Fn(u64) -> T + Send + 'static) -> Duration {
    let (s, r) = crossbeam_channel::bounded::<T>(1024);
    let t = Instant::now();
    let h = std::thread::spawn(move || {
        for i in 0..n {
            s.send(make(i)).unwrap();
        }
    });
    for _ in 0..n {
        std::hint::black_box(r.recv().unwrap());
    }
    let d = t.elapsed();
    h.join().unwrap();
    d
}

fn cpython(n: u64, size: usize) -> Option<Duration> {
    let script = format!(
        r#"
import multiprocessing as mp, time
def prod(q, n, size):
    v = b'x' * size if size else 0
    for i in range(n):
        q.put(v if size else i)
if __name__ == '__main__':
    mp.set_start_method('fork')
    q = mp.Queue()
    p = mp.Process(target=prod, args=(q, {n}, {size}))
    t = time.perf_counter()
    p.start()
    for _ in range({n}):
        q.get()
    print(time.perf_counter() - t)
    p.join()
"#
    );
    let secs: f64 = common::python3(&["-c", &script])?.trim().parse().ok()?;
    Some(Duration::from_secs_f64(secs))
}

fn report(name: &str, n: u64, bytes: usize, d: Duration) -> f64 {
    let rate = n as f64 / d.as_secs_f64();
    println!(
        "{name:<40} {:>12.0} msgs/s {:>10.1} MB/s",
        rate,
        rate * bytes as f64 / 1e6
    );
    rate
}

/// Rounds per measurement: each figure is the median of this many runs, the
/// runs of the things compared being interleaved (so that a burst of load
/// from elsewhere hits both sides of a ratio).
const ROUNDS: usize = 3;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Medians of interleaved rounds of each closure.
fn rounds<const K: usize>(fs: [&dyn Fn() -> Duration; K]) -> [Duration; K] {
    let mut runs: [Vec<Duration>; K] = std::array::from_fn(|_| Vec::new());
    for _ in 0..ROUNDS {
        for (f, r) in fs.iter().zip(runs.iter_mut()) {
            r.push(f());
        }
    }
    runs.map(median)
}

fn main() {
    std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for the list
    }
    // `cargo bench -p procshare --bench queue -- small` (or `big`): one half only.
    let want = |part: &str| {
        !args.iter().any(|a| a == "small" || a == "big") || args.iter().any(|a| a == part)
    };
    println!("queue throughput, one producer process -> one consumer process");
    println!("(medians of {ROUNDS} interleaved rounds)");
    if want("small") {
        let [ps, cb, pr, psb] = rounds([
            &procshare_small,
            &|| crossbeam(SMALL_N, |i| i),
            &procshare_raw_small,
            &procshare_small_bounded,
        ]);
        let ps = report("procshare Queue<u64>", SMALL_N, 8, ps);
        let psb = report("procshare Queue<u64>, 1 MiB bounded ring", SMALL_N, 8, psb);
        println!("  ratio unbounded / 1 MiB bounded (u64): {:.2}x", ps / psb);
        let cb = report("crossbeam bounded(1024) u64, 2 threads", SMALL_N, 8, cb);
        println!("  ratio procshare / crossbeam (u64): {:.2}x", ps / cb);
        let pr = report("procshare RawQueue 8 bytes (no serde)", SMALL_N, 8, pr);
        println!("  ratio RawQueue / crossbeam (8 bytes): {:.2}x", pr / cb);
        let py_n = 200_000;
        if let Some(d) = cpython(py_n, 0) {
            let py = report("CPython multiprocessing.Queue int", py_n, 8, d);
            println!("  ratio procshare / CPython (u64): {:.1}x", ps / py);
        } else {
            println!("  (python3 not available: no CPython comparison)");
        }
    }
    if want("big") {
        let [pb, cbb, pbb, pr] = rounds([
            &procshare_big,
            &|| crossbeam(BIG_N, |_| vec![7u8; BIG]),
            &|| procshare_big_of(|| serde_bytes::ByteBuf::from(vec![7u8; BIG]), |v| v.len()),
            &procshare_raw_big,
        ]);
        let pb = report("procshare Queue<Vec<u8>> 4 KiB", BIG_N, BIG, pb);
        let cbb = report("crossbeam bounded(1024) 4 KiB, 2 threads", BIG_N, BIG, cbb);
        println!("  ratio procshare / crossbeam (4 KiB): {:.2}x", pb / cbb);
        let pbb = report(
            "procshare Queue<ByteBuf> 4 KiB (serde_bytes)",
            BIG_N,
            BIG,
            pbb,
        );
        println!(
            "  ratio Queue<ByteBuf> / crossbeam (4 KiB): {:.2}x",
            pbb / cbb
        );
        let pr = report("procshare RawQueue 4 KiB (bytes, no serde)", BIG_N, BIG, pr);
        println!("  ratio RawQueue / crossbeam (4 KiB): {:.2}x", pr / cbb);
        if let Some(d) = cpython(20_000, BIG) {
            let py = report("CPython multiprocessing.Queue 4 KiB bytes", 20_000, BIG, d);
            println!("  ratio procshare / CPython (4 KiB): {:.1}x", pb / py);
            println!("  ratio Queue<ByteBuf> / CPython (4 KiB): {:.1}x", pbb / py);
            println!("  ratio RawQueue / CPython (4 KiB): {:.1}x", pr / py);
        }
    }
}
