//! `PodQueue` over real processes: values cross fork and spawn exactly once
//! and in each producer's order, and `kill -9` of producers and consumers at
//! arbitrary steps loses nothing a `put` acknowledged (beyond the one value a
//! killed consumer was returning) and leaves the queue usable.

use procshare::{Array, PodQueue, Process, QueueError, Semaphore, StartMethod};
use procshare_tests::quiet;

/// `p << 32 | seq`.
fn value(p: u64, seq: u64) -> u64 {
    p << 32 | seq
}

/// Check what a consumer received: per producer, sequence numbers strictly
/// rising (no duplicate, no reordering).
fn check_order(got: &[u64], producers: u64) -> Vec<Vec<u64>> {
    let mut per: Vec<Vec<u64>> = vec![Vec::new(); producers as usize];
    for &v in got {
        let (p, seq) = (v >> 32, v & 0xffff_ffff);
        assert!(p < producers, "a value nobody put: {v:#x}");
        if let Some(&last) = per[p as usize].last() {
            assert!(last < seq, "producer {p}: {seq} after {last}");
        }
        per[p as usize].push(seq);
    }
    per
}

fn produce((q, p, n): (PodQueue<u64>, u64, u64)) {
    for seq in 0..n {
        q.put(value(p, seq)).unwrap();
    }
}

/// Two producer processes (forked, spawned), one consumer (this process):
/// every value arrives once, in each producer's order, through 4 slots
/// (both sides wait on each other thousands of times).
#[test]
fn values_cross_processes_once_and_in_order() {
    quiet();
    const N: u64 = 20_000;
    for m in [StartMethod::Fork, StartMethod::Spawn] {
        let q = PodQueue::<u64>::new(4).unwrap();
        let mut ps: Vec<Process> = (0..2)
            .map(|p| Process::with_target(produce, (q.clone(), p, N)).start_method(m))
            .collect();
        for p in &mut ps {
            p.start().unwrap();
        }
        let got: Vec<u64> = (0..2 * N).map(|_| q.get().unwrap()).collect();
        for p in &mut ps {
            assert_eq!(p.join().unwrap(), 0, "{m:?}");
        }
        let per = check_order(&got, 2);
        for (p, seqs) in per.iter().enumerate() {
            assert_eq!(seqs.len() as u64, N, "{m:?}: producer {p}");
        }
        assert!(matches!(q.try_get(), Err(QueueError::Empty)));
    }
}

/// A producer that records, after each `put` returns, how many it put.
fn produce_acked((q, acked, p, started): (PodQueue<u64>, Array<u64>, u64, Semaphore)) {
    started.release().unwrap();
    for seq in 0.. {
        q.put(value(p, seq)).unwrap();
        acked.set(p as usize, seq + 1).unwrap();
    }
}

/// Two producers are killed with `kill -9` while they stream into 8 slots
/// that this process keeps emptying (so they are mostly inside `put`, not
/// waiting for room): a killer thread kills each once it has acknowledged a
/// pseudo-random number of values. Every value whose `put` returned is
/// received exactly once, in order; a value whose `put` a kill cut short may
/// be received too (it was published), and the slot a producer died in is
/// skipped. The queue works afterwards. 60 rounds.
#[test]
fn killed_producers_lose_nothing_acknowledged() {
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    use std::sync::Arc;
    quiet();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for round in 0..60 {
        let q = PodQueue::<u64>::new(8).unwrap();
        let acked = Array::from_values([0u64, 0]).unwrap();
        let started = Semaphore::new(0).unwrap();
        let mut ps: Vec<Process> = (0..2)
            .map(|p| {
                Process::with_target(
                    produce_acked,
                    (q.clone(), acked.clone(), p, started.clone()),
                )
            })
            .collect();
        for p in &mut ps {
            p.start().unwrap();
        }
        for _ in 0..2 {
            started.acquire();
        }
        let mut at = [0u64; 2];
        for a in &mut at {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            *a = 1 + seed % 2000;
        }
        let done = Arc::new(AtomicBool::new(false));
        let killer = {
            let (acked, done) = (acked.clone(), done.clone());
            std::thread::spawn(move || {
                for (i, p) in ps.iter_mut().enumerate() {
                    // Wait (spinning on the shared count) until producer i
                    // has acknowledged `at[i]` values, then kill it there.
                    while acked.get(i).unwrap() < at[i] {
                        std::hint::spin_loop();
                    }
                    p.kill().unwrap();
                    assert_eq!(p.join().unwrap(), -9);
                }
                done.store(true, SeqCst);
            })
        };
        let mut got = Vec::new();
        loop {
            let finished = done.load(SeqCst);
            match q.try_get() {
                Ok(v) => got.push(v),
                // Both producers are dead and nothing is left.
                Err(QueueError::Empty) if finished => break,
                Err(QueueError::Empty) => std::hint::spin_loop(),
                Err(e) => panic!("round {round}: {e}"),
            }
        }
        killer.join().unwrap();
        let per = check_order(&got, 2);
        for (p, seqs) in per.iter().enumerate() {
            let a = acked.get(p).unwrap();
            // Every acknowledged value, and perhaps the one in flight.
            let gap = seqs.iter().enumerate().find(|&(i, &s)| s != i as u64);
            assert_eq!(gap, None, "round {round}: producer {p} (acked {a}): a gap");
            assert!(
                seqs.len() as u64 == a || seqs.len() as u64 == a + 1,
                "round {round}: producer {p}: acked {a}, received {}",
                seqs.len()
            );
        }
        // The queue goes on.
        q.put(7).unwrap();
        assert_eq!(q.get().unwrap(), 7);
    }
}

/// A consumer that counts each value it receives (`seen[v]`), until the
/// queue is shut down.
fn consume((q, seen, started): (PodQueue<u64>, Array<u8>, Semaphore)) {
    started.release().unwrap();
    loop {
        match q.get() {
            Ok(v) => {
                let old = seen.get(v as usize).unwrap();
                seen.set(v as usize, old + 1).unwrap();
            }
            Err(QueueError::ShutDown) => return,
            Err(e) => panic!("{e}"),
        }
    }
}

/// Two consumers take 3,000 values; one is killed with `kill -9` after a
/// pseudo-random number of puts, and a new one takes its place. Nothing is
/// received twice, and at most the one value in the killed consumer's hands
/// is missing. 20 rounds.
#[test]
fn a_killed_consumer_loses_at_most_the_value_it_was_taking() {
    quiet();
    const N: usize = 3_000;
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for round in 0..20 {
        let q = PodQueue::<u64>::new(4).unwrap();
        let seen = Array::from_values(vec![0u8; N]).unwrap();
        let started = Semaphore::new(0).unwrap();
        let spawn = |q: &PodQueue<u64>| {
            let mut c = Process::with_target(consume, (q.clone(), seen.clone(), started.clone()));
            c.start().unwrap();
            started.acquire();
            c
        };
        let mut a = spawn(&q);
        let mut b = spawn(&q);
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let kill_at = (seed % N as u64) as usize;
        for v in 0..N {
            if v == kill_at {
                a.kill().unwrap();
                assert_eq!(a.join().unwrap(), -9);
                a = spawn(&q);
            }
            q.put(v as u64).unwrap();
        }
        q.shutdown();
        assert_eq!(a.join().unwrap(), 0);
        assert_eq!(b.join().unwrap(), 0);
        let counts = seen.to_vec();
        let twice: Vec<usize> = (0..N).filter(|&v| counts[v] > 1).collect();
        let missing: Vec<usize> = (0..N).filter(|&v| counts[v] == 0).collect();
        assert!(twice.is_empty(), "round {round}: received twice: {twice:?}");
        assert!(
            missing.len() <= 1,
            "round {round}: missing {missing:?} (kill at {kill_at})"
        );
    }
}
