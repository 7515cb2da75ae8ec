//! Large chunks and their answers cross in the workers' slots (shared
//! memory) instead of their sockets: under every start method, with
//! `kill -9` of a worker whose chunk lies in a slot (exactly that chunk
//! fails, the prefetched one in its other slot runs elsewhere, the pool goes
//! on with the replacement's new slots), and mixed with small frames, which
//! stay on the socket.
//!
//! One test function per binary step, in order (the slot counter is per
//! process: tests running beside each other would blur it).

use procshare::internals::pool_slot_frames;
use procshare::{Pool, StartMethod};
use procshare_tests::victim;

fn square(x: u64) -> u64 {
    x.wrapping_mul(x)
}

/// A `u64` argument crosses as 8 bytes: 4,000 of them make a 32 KB unit
/// frame (at least `SLOT_MIN`, 16 KiB) and a 32 KB answer.
const BIG_CHUNK: usize = 4_000;

fn every_start_method() {
    for m in [
        StartMethod::Fork,
        StartMethod::Spawn,
        StartMethod::ForkServer,
    ] {
        let pool = Pool::builder()
            .processes(2)
            .start_method(m)
            .build()
            .unwrap();
        let before = pool_slot_frames();
        let n = 10 * BIG_CHUNK as u64;
        let out = pool.map_async(square, 0..n, Some(BIG_CHUNK)).unwrap();
        let out = out.get().unwrap();
        assert_eq!(out, (0..n).map(square).collect::<Vec<_>>(), "{m:?}");
        // 10 units out and 10 answers back, all in slots.
        assert_eq!(pool_slot_frames() - before, 20, "{m:?}");
        // Small chunks stay on the socket; large ones again after them.
        let before = pool_slot_frames();
        let small = pool.map_async(square, 0..1000, Some(100)).unwrap();
        assert_eq!(
            small.get().unwrap(),
            (0..1000).map(square).collect::<Vec<_>>()
        );
        assert_eq!(pool_slot_frames(), before, "{m:?}: small frames in slots");
        let again = pool.map_async(square, 0..n, Some(BIG_CHUNK)).unwrap();
        assert_eq!(again.get().unwrap().len(), n as usize);
        assert_eq!(pool_slot_frames() - before, 20, "{m:?}");
        pool.close().unwrap();
        pool.join().unwrap();
    }
}

const VICTIM: u64 = 3 * BIG_CHUNK as u64 + 17;

fn task(x: u64) -> u64 {
    if x == VICTIM {
        victim::report_and_wait();
    }
    x * 10
}

fn kill9_with_chunks_in_slots() {
    let ch = victim::channel();
    let pool = Pool::builder()
        .processes(2)
        .initializer(victim::init, ch.clone())
        .build()
        .unwrap();
    let n = 12 * BIG_CHUNK as u64;
    let before = pool_slot_frames();
    let r = pool.map_async(task, 0..n, Some(BIG_CHUNK)).unwrap();
    let pid = victim::kill_reported(&ch);
    let all = r.get_all().expect("the map returns");
    victim::assert_only_the_victims_chunk_failed(&all, VICTIM as usize, BIG_CHUNK, pid, |i| {
        i as u64 * 10
    });
    // Every unit went out in a slot (12, the one the victim's prefetched
    // twice: it goes out again to another worker), every answer but the
    // victim's came back in one (11).
    let k = pool_slot_frames() - before;
    assert!((12 + 11..=13 + 11).contains(&k), "{k} frames in slots");
    // The replacement has slots of its own.
    assert!(!pool.worker_pids().contains(&pid), "replaced");
    let before = pool_slot_frames();
    // (Three chunks: all before the victim's task.)
    let m = 3 * BIG_CHUNK as u64;
    let r = pool.map_async(task, 0..m, Some(BIG_CHUNK)).unwrap();
    assert_eq!(r.get().unwrap(), (0..m).map(|x| x * 10).collect::<Vec<_>>());
    assert_eq!(pool_slot_frames() - before, 6);
    pool.close().unwrap();
    pool.join().unwrap();
}

#[test]
fn large_frames_cross_in_slots() {
    std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    every_start_method();
    kill9_with_chunks_in_slots();
}
