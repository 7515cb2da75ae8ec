//! `Pool::map_pod`: plain-old-data items and results crossing as bytes
//! between real worker processes — the same answers as the serde `map`,
//! a panicking task failing the rest of its chunk (as CPython's chunk does),
//! and a worker killed with `kill -9` failing exactly its chunk while the
//! pool goes on.
//!
//! Ordering is by the library's own primitives, never by sleeping
//! (`procshare_tests::victim`).

use bytemuck::{Pod, Zeroable};
use procshare::{Pool, PoolError, StartMethod};
use procshare_tests::victim;

#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[repr(C)]
struct Particle {
    pos: [f32; 3],
    id: u32,
}

fn step(p: Particle) -> Particle {
    Particle {
        pos: [p.pos[0] + 1.0, p.pos[1] * 2.0, -p.pos[2]],
        id: p.id,
    }
}

fn mix(x: u64) -> u64 {
    x.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17) ^ x
}

fn widen(x: u8) -> [u16; 3] {
    [x as u16, x as u16 * 2, 0xffff - x as u16]
}

fn fail_at_10(x: u32) -> u32 {
    assert!(x != 10, "no ten");
    x
}

#[test]
fn map_pod_gives_what_map_gives() {
    std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    let pool = Pool::new(2).unwrap();
    // Enough items for many units of the default chunk size, odd-sized.
    let xs: Vec<u64> = (0..100_003).map(|i| i * 7919).collect();
    let want: Vec<u64> = xs.iter().copied().map(mix).collect();
    assert_eq!(pool.map_pod(mix, &xs).unwrap(), want);
    assert_eq!(pool.map(mix, xs.clone()).unwrap(), want);
    for cs in [1, 3, 1000, 200_000] {
        let r = pool.map_pod_async(mix, &xs[..2000], Some(cs)).unwrap();
        assert_eq!(r.get().unwrap(), want[..2000], "chunksize {cs}");
    }
    // A struct, results of another size than the items, nothing at all.
    let ps: Vec<Particle> = (0..500)
        .map(|i| Particle {
            pos: [i as f32, 0.5, -(i as f32)],
            id: i,
        })
        .collect();
    let got = pool.map_pod(step, &ps).unwrap();
    assert_eq!(got, ps.iter().copied().map(step).collect::<Vec<_>>());
    let bytes: Vec<u8> = (0..=255).collect();
    assert_eq!(
        pool.map_pod(widen, &bytes).unwrap(),
        bytes.iter().copied().map(widen).collect::<Vec<_>>()
    );
    assert_eq!(pool.map_pod(mix, &[]).unwrap(), Vec::<u64>::new());
    assert_eq!(
        pool.map_pod_async(mix, &xs, Some(0)).err(),
        Some(PoolError::BadChunksize)
    );
}

#[test]
fn map_pod_runs_in_spawned_workers() {
    std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    let pool = Pool::builder()
        .processes(2)
        .start_method(StartMethod::Spawn)
        .build()
        .unwrap();
    let xs: Vec<u64> = (0..10_000).collect();
    let want: Vec<u64> = xs.iter().copied().map(mix).collect();
    assert_eq!(pool.map_pod(mix, &xs).unwrap(), want);
}

#[test]
fn a_panic_fails_the_rest_of_its_chunk_and_map_pod_returns_it() {
    std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    let pool = Pool::new(2).unwrap();
    let xs: Vec<u32> = (0..40).collect();
    let no_ten = PoolError::TaskPanicked("no ten".into());
    assert_eq!(pool.map_pod(fail_at_10, &xs), Err(no_ten.clone()));
    let all = pool
        .map_pod_async(fail_at_10, &xs, Some(4))
        .unwrap()
        .get_all()
        .unwrap();
    for (i, r) in all.into_iter().enumerate() {
        // Task 10 is the third of chunk 8..12: 8 and 9 ran, 10 and 11 fail.
        let want = if (10..12).contains(&i) {
            Err(no_ten.clone())
        } else {
            Ok(i as u32)
        };
        assert_eq!(r, want, "task {i}");
    }
    // The pool goes on.
    assert_eq!(pool.map_pod(fail_at_10, &[1, 2]).unwrap(), [1, 2]);
}

const VICTIM: u32 = 13;

fn hang_at_victim(x: u32) -> u32 {
    if x == VICTIM {
        victim::report_and_wait();
    }
    x * 10
}

#[test]
fn kill9_fails_exactly_the_running_chunk() {
    std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    let ch = victim::channel();
    let pool = Pool::builder()
        .processes(2)
        .initializer(victim::init, ch.clone())
        .build()
        .unwrap();
    let xs: Vec<u32> = (0..40).collect();
    let r = pool.map_pod_async(hang_at_victim, &xs, Some(4)).unwrap();
    let pid = victim::kill_reported(&ch);
    let all = r.get_all().expect("the map returns");
    for (i, res) in all.into_iter().enumerate() {
        let want = if (12..16).contains(&i) {
            Err(PoolError::WorkerDied {
                pid,
                exitcode: Some(-9),
            })
        } else {
            Ok(i as u32 * 10)
        };
        assert_eq!(res, want, "task {i}");
    }
    assert_eq!(pool.map_pod(hang_at_victim, &[1, 2]).unwrap(), [10, 20]);
    assert!(
        !pool.worker_pids().contains(&pid),
        "the dead worker was replaced"
    );
}
