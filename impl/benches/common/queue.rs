//! Queue throughput: one producer process -> one consumer process through a
//! `procshare::Queue` / `RawQueue`, and crossbeam's bounded channel between
//! two threads (the in-process reference).

use std::time::{Duration, Instant};

use procshare::{Process, Queue, RawQueue};

/// The size of the "big" messages.
pub(crate) const BIG: usize = 4096;

/// `n` `u64`s (`0..n`) from a child process, which calls `put` for each, to
/// this one, which calls `get` `n` times; the sum is checked. Timed from the
/// first item's arrival (a `0` put first, untimed), as every queue row and
/// CPython's: the throughput, not the process start (its own row).
fn child_to_parent(
    n: u64,
    put: impl Fn(u64) + Send + 'static,
    mut get: impl FnMut() -> u64,
) -> Duration {
    let mut p = Process::new(move || {
        put(0);
        for i in 0..n {
            put(i);
        }
    });
    p.start().unwrap();
    assert_eq!(get(), 0);
    let t = Instant::now();
    let mut sum = 0u64;
    for _ in 0..n {
        sum = sum.wrapping_add(get());
    }
    let d = t.elapsed();
    assert_eq!(sum, n * (n - 1) / 2);
    p.join().unwrap();
    d
}

/// `n` `u64`s through `q` from a child process to this one.
pub(crate) fn small(q: Queue<u64>, n: u64) -> Duration {
    let tx = q.clone();
    child_to_parent(n, move |i| tx.put(&i).unwrap(), || q.get().unwrap())
}

/// `n` `u64`s through a `PodQueue` of 1024 slots (crossbeam's bound in
/// [`crossbeam`]) from a child process to this one.
pub(crate) fn pod(n: u64) -> Duration {
    let q = procshare::PodQueue::<u64>::new(1024).unwrap();
    let tx = q.clone();
    child_to_parent(n, move |i| tx.put(i).unwrap(), || q.get().unwrap())
}

/// `n` rounds of `put` then `get` of one `u64` through a `PodQueue` in this
/// process.
pub(crate) fn pod_one_process(n: u64) -> Duration {
    let q = procshare::PodQueue::<u64>::new(1024).unwrap();
    let t = Instant::now();
    let mut sum = 0u64;
    for i in 0..n {
        q.put(i).unwrap();
        sum = sum.wrapping_add(q.get().unwrap());
    }
    let d = t.elapsed();
    assert_eq!(sum, n * (n - 1) / 2);
    d
}

/// `n` rounds of `put` then `get` of one `u64` in this process: the path's
/// own cost, without a second CPU (a figure that a busy machine disturbs less).
pub(crate) fn one_process(n: u64) -> Duration {
    let q: Queue<u64> = Queue::new().unwrap();
    let t = Instant::now();
    let mut sum = 0u64;
    for i in 0..n {
        q.put(&i).unwrap();
        sum = sum.wrapping_add(q.get().unwrap());
    }
    let d = t.elapsed();
    assert_eq!(sum, n * (n - 1) / 2);
    d
}

/// `n` 4 KiB messages of type `M` (a `Vec<u8>`, which serde encodes element
/// by element, or a `serde_bytes::ByteBuf`, which it encodes as one byte
/// string — Python's `bytes`) from a child process to this one, timed from
/// the arrival of one more put first.
pub(crate) fn big_of<M>(n: u64, make: fn() -> M, len: fn(&M) -> usize) -> Duration
where
    M: serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    let q: Queue<M> = Queue::new().unwrap();
    let mut p = Process::new({
        let q = q.clone();
        move || {
            let v = make();
            for _ in 0..=n {
                q.put(&v).unwrap();
            }
        }
    });
    p.start().unwrap();
    assert_eq!(len(&q.get().unwrap()), BIG);
    let t = Instant::now();
    for _ in 0..n {
        assert_eq!(len(&q.get().unwrap()), BIG);
    }
    let d = t.elapsed();
    p.join().unwrap();
    d
}

/// `n` 4 KiB `ByteBuf`s (the table's row).
pub(crate) fn bytebuf(n: u64) -> Duration {
    big_of(
        n,
        || serde_bytes::ByteBuf::from(vec![7u8; BIG]),
        |v| v.len(),
    )
}

/// `n` messages of `size` bytes through the untyped byte queue (no serde: the
/// ring's own cost); `size` 8 carries the counter, as [`small`] does. Timed
/// from the arrival of one more put first.
pub(crate) fn raw(n: u64, size: usize) -> Duration {
    let q = RawQueue::new(procshare::internals::DEFAULT_CAPACITY, 0).unwrap();
    let mut p = Process::new({
        let q = q.clone();
        move || {
            let mut v = vec![7u8; size];
            q.put_bytes(&v, None).unwrap();
            for i in 0..n {
                if size == 8 {
                    v.copy_from_slice(&i.to_le_bytes());
                }
                q.put_bytes(&v, None).unwrap();
            }
        }
    });
    p.start().unwrap();
    let mut out = Vec::with_capacity(size);
    q.get_bytes(&mut out, None).unwrap();
    let t = Instant::now();
    let mut sum = 0u64;
    for _ in 0..n {
        q.get_bytes(&mut out, None).unwrap();
        assert_eq!(out.len(), size);
        if size == 8 {
            sum = sum.wrapping_add(u64::from_le_bytes(out[..].try_into().unwrap()));
        }
    }
    let d = t.elapsed();
    if size == 8 {
        assert_eq!(sum, n * (n - 1) / 2);
    }
    p.join().unwrap();
    d
}

/// `n` items made by `make` through `crossbeam_channel::bounded(1024)` from a
/// second thread to this one, timed from the arrival of one more sent first.
pub(crate) fn crossbeam<T: Send + 'static>(
    n: u64,
    make: impl Fn(u64) -> T + Send + 'static,
) -> Duration {
    let (s, r) = crossbeam_channel::bounded::<T>(1024);
    let h = std::thread::spawn(move || {
        s.send(make(0)).unwrap();
        for i in 0..n {
            s.send(make(i)).unwrap();
        }
    });
    std::hint::black_box(r.recv().unwrap());
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(r.recv().unwrap());
    }
    let d = t.elapsed();
    h.join().unwrap();
    d
}
