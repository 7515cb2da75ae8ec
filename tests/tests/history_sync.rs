//! Real-process histories of `Array`, `RLock` and `Event`, some processes
//! killed with `kill -9` at random operations, checked for linearizability
//! (DESIGN.md, "History checking"); each specification shown able to fail
//! (a deliberately broken variant), and `RLock` with a real seeded bug
//! (`procshare/history-mutants`) caught in real processes.
//!
//! `Condition` is not here: `wait` releases the lock, sleeps and takes it
//! again (two linearization points, with other processes' critical sections
//! in between), may return spuriously (as Python's), and `notify(n)` wakes
//! "up to n of the waiters present", which depends on who was parked, not
//! on a sequential state. Its guarantees (no lost notification to a live
//! waiter, recovery from a dead notifier) are model-checked in
//! `model/src/condition.rs` and killed for real in `condition_kill9.rs`.
//!
//! `PROCSHARE_HISTORY_SOAK_SECS=n` runs each object's test for about `n`
//! seconds of fresh seeds; `cargo test` runs one seed each. No sleeps, no
//! timing asserts: a victim reports its kill point through a `Semaphore`.

use std::time::Duration;

use procshare::{Array, Event, RLock, TryLockError};
use procshare_tests::history::checker::{check, Op};
use procshare_tests::history::sync_specs::{ArraySpec, EventSpec, RLockSpec};
use procshare_tests::history::{assert_linearizable, run, soak, Run};
use procshare_tests::quiet;
use rand::Rng;

const PROCS: usize = 3;
const OPS: usize = 200;
const VICTIMS: usize = 2;

/// Asserts that `spec` rejects `r` and prints the counterexample.
fn assert_caught<S: procshare_tests::history::checker::Spec>(what: &str, spec: &S, r: &Run) {
    let cx = check(spec, &r.history).expect_err(&format!("{what}: not caught (seed {})", r.seed));
    let text = cx.to_string();
    eprintln!("{what} caught (seed {}): {text}", r.seed);
    assert!(text.contains("not linearizable"), "{text}");
    assert!(!cx.window.is_empty(), "{text}");
}

// ---- Array ----

fn array_run(seed: u64, victims: usize) -> Run {
    let arrays = [
        Array::<i64>::zeroed(ArraySpec::LEN).unwrap(),
        Array::<i64>::zeroed(ArraySpec::LEN).unwrap(),
    ];
    run(PROCS, OPS, victims, seed, move |_, w, rng| {
        let key = rng.gen_range(0..arrays.len());
        let a = &arrays[key];
        let i = rng.gen_range(0..ArraySpec::LEN);
        let j = (i + rng.gen_range(1..ArraySpec::LEN)) % ArraySpec::LEN;
        let x: i64 = rng.gen_range(1..10);
        let guard = || a.lock().unwrap_or_else(|died| died.into_inner());
        match rng.gen_range(0..6) {
            0 => {
                w.call(key as u32, ArraySpec::GET, i as i64, || a.get(i).unwrap());
            }
            1 => {
                let v = rng.gen_range(0..1000);
                w.call(key as u32, ArraySpec::SET, i as i64 | v << 8, || {
                    a.set(i, v).unwrap();
                    0
                });
            }
            2 => {
                w.call(key as u32, ArraySpec::ADD, i as i64 | x << 8, || {
                    let mut g = guard();
                    g[i] += x;
                    g[i]
                });
            }
            3 | 4 => {
                let arg = i as i64 | (j as i64) << 4 | x << 8;
                w.call(key as u32, ArraySpec::MOVE, arg, || {
                    let mut g = guard();
                    g[i] -= x;
                    // A kill between the two stores leaves the move half
                    // done: the next locker gets "owner died" and sees it.
                    g[j] += x;
                    0
                });
            }
            _ => {
                w.call(key as u32, ArraySpec::SNAPSHOT, 0, || {
                    ArraySpec::pack(&a.to_vec())
                });
            }
        }
    })
}

#[test]
fn checker_lets_a_killed_move_be_half_done() {
    // p0 was killed inside move(0 -> 1, 5): a later snapshot may see it
    // undone, done, or half done (slot 0 taken from, slot 1 not yet given
    // to), never the second half alone.
    let op = |proc, kind, arg, call, ret| Op {
        proc,
        key: 0,
        kind,
        arg,
        call,
        ret,
    };
    let killed = op(0, ArraySpec::MOVE, 1 << 4 | 5 << 8, 10, None);
    for (seen, ok) in [
        ([0, 0, 0, 0], true),
        ([-5, 5, 0, 0], true),
        ([-5, 0, 0, 0], true),
        ([0, 5, 0, 0], false),
    ] {
        let snap = op(
            1,
            ArraySpec::SNAPSHOT,
            0,
            20,
            Some((30, ArraySpec::pack(&seen))),
        );
        assert_eq!(
            check(&ArraySpec::default(), &[killed, snap]).is_ok(),
            ok,
            "snapshot {seen:?}"
        );
    }
}

#[test]
fn array_slots_are_linearizable_with_kill9() {
    quiet();
    soak("Array", 0xa77a, |seed| {
        let r = array_run(seed, VICTIMS);
        assert_linearizable("Array", &ArraySpec::default(), &r);
    });
}

#[test]
fn broken_array_spec_that_forgets_move_is_caught() {
    quiet();
    let r = array_run(21, 0);
    assert_linearizable("Array", &ArraySpec::default(), &r);
    assert_caught(
        "Array spec without move",
        &ArraySpec { forget_move: true },
        &r,
    );
}

// ---- RLock ----

/// Each round: take one of two locks 1–3 levels deep (sometimes with
/// `try_acquire`, falling back to `acquire` if it would block), read the
/// depth, release every level; sometimes one release too many (NotOwner).
fn rlock_run(seed: u64, victims: usize, mutant: u32) -> Run {
    let locks = [RLock::new().unwrap(), RLock::new().unwrap()];
    run(PROCS, OPS, victims, seed, move |_, w, rng| {
        procshare::history_mutants::set(mutant);
        let key = rng.gen_range(0..locks.len());
        let l = &locks[key];
        let k = key as u32;
        let depth = rng.gen_range(1..=3);
        for _ in 0..depth {
            let mut got = false;
            if rng.gen_bool(0.3) {
                let r = w.call(k, RLockSpec::TRY_ACQUIRE, 0, || match l.try_acquire() {
                    Ok(()) => 0,
                    Err(TryLockError::OwnerDied(_)) => RLockSpec::OWNER_DIED,
                    Err(TryLockError::WouldBlock) => RLockSpec::WOULD_BLOCK,
                });
                got = r != RLockSpec::WOULD_BLOCK;
            }
            if !got {
                w.call(k, RLockSpec::ACQUIRE, 0, || match l.acquire() {
                    Ok(()) => 0,
                    Err(_owner_died) => RLockSpec::OWNER_DIED,
                });
            }
        }
        w.call(k, RLockSpec::COUNT, 0, || i64::from(l.count()));
        let extra = usize::from(rng.gen_bool(0.1));
        for _ in 0..depth + extra {
            w.call(k, RLockSpec::RELEASE, 0, || match l.release() {
                Ok(()) => 0,
                Err(_) => RLockSpec::NOT_OWNER,
            });
        }
    })
}

#[test]
fn rlock_is_linearizable_with_kill9_and_owner_died() {
    quiet();
    soak("RLock", 0x41c0, |seed| {
        let r = rlock_run(seed, VICTIMS, procshare::history_mutants::NONE);
        let spec = RLockSpec {
            killed: r.killed.clone(),
            ..RLockSpec::default()
        };
        assert_linearizable("RLock", &spec, &r);
    });
}

#[test]
fn broken_rlock_spec_that_is_not_recursive_is_caught() {
    quiet();
    let r = rlock_run(22, 0, procshare::history_mutants::NONE);
    assert_linearizable("RLock", &RLockSpec::default(), &r);
    let spec = RLockSpec {
        not_recursive: true,
        ..RLockSpec::default()
    };
    assert_caught("non-recursive RLock spec", &spec, &r);
}

#[test]
fn rlock_whose_release_drops_two_levels_is_caught() {
    quiet();
    // The real RLock with a seeded bug (a release at depth >= 2 drops two
    // levels), on in the children only.
    let r = rlock_run(23, 0, procshare::history_mutants::RLOCK_RELEASE_DROPS_TWO);
    assert_caught(
        "RLock mutant (release drops two levels)",
        &RLockSpec::default(),
        &r,
    );
}

// ---- Event ----

fn event_run(seed: u64, victims: usize) -> Run {
    let e = Event::new().unwrap();
    run(PROCS, OPS, victims, seed, move |_, w, rng| {
        match rng.gen_range(0..5) {
            0 => {
                w.call(0, EventSpec::SET, 0, || {
                    e.set();
                    0
                });
            }
            1 => {
                w.call(0, EventSpec::CLEAR, 0, || {
                    e.clear();
                    0
                });
            }
            2 => {
                w.call(0, EventSpec::IS_SET, 0, || i64::from(e.is_set()));
            }
            _ => {
                let us = rng.gen_range(0..500);
                w.call(0, EventSpec::WAIT, us, || {
                    i64::from(e.wait_timeout(Duration::from_micros(us as u64)))
                });
            }
        }
    })
}

#[test]
fn event_is_linearizable_with_kill9() {
    quiet();
    soak("Event", 0xe7e1, |seed| {
        let r = event_run(seed, VICTIMS);
        assert_linearizable("Event", &EventSpec::default(), &r);
    });
}

#[test]
fn broken_event_spec_whose_clear_does_nothing_is_caught() {
    quiet();
    let r = event_run(24, 0);
    assert_linearizable("Event", &EventSpec::default(), &r);
    assert_caught(
        "Event spec without clear",
        &EventSpec {
            clear_ignored: true,
        },
        &r,
    );
}
