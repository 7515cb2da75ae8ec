//! Real-process histories of the manager's `list` and `dict` proxies: one
//! manager, several client processes, some killed with `kill -9` at random
//! operations (mid-request included), checked for linearizability
//! (DESIGN.md, "History checking"); each specification shown able to fail
//! (a deliberately broken variant). The same for the Redis manager's
//! objects (`list`, `dict`, `Value`, `Lock`, `RLock`, `Semaphore`, `Queue`,
//! `Event`)
//! against the redis-server of `PROCSHARE_REDIS_URL`.
//!
//! `PROCSHARE_HISTORY_SOAK_SECS=n` runs each object's test for about `n`
//! seconds of fresh seeds; `cargo test` runs one seed each. No sleeps, no
//! timing asserts: a victim reports its kill point through a `Semaphore`.

use std::cell::Cell;

use std::time::Duration;

use procshare::{Manager, ManagerError, OpError};
use procshare_tests::history::checker::{check, Spec};
use procshare_tests::history::manager_specs::{DictSpec, ListSpec};
use procshare_tests::history::specs::{LockSpec, QueueSpec, SemaphoreSpec, ValueSpec};
use procshare_tests::history::sync_specs::{EventSpec, RLockSpec};
use procshare_tests::history::{assert_linearizable, run, soak, Run};
use procshare_tests::{quiet, redis_url, RedisNs};
use rand::Rng;

const PROCS: usize = 3;
const OPS: usize = 150;
const VICTIMS: usize = 2;

/// Asserts that `spec` rejects `r` and prints the counterexample.
fn assert_caught<S: Spec>(what: &str, spec: &S, r: &Run) {
    let cx = check(spec, &r.history).expect_err(&format!("{what}: not caught (seed {})", r.seed));
    let text = cx.to_string();
    eprintln!("{what} caught (seed {}): {text}", r.seed);
    assert!(text.contains("not linearizable"), "{text}");
    assert!(!cx.window.is_empty(), "{text}");
}

/// `ERR` for an index out of range, -2 (never linearizable) for any other
/// error.
fn index_err(e: &ManagerError) -> i64 {
    match e.op_error() {
        Some(OpError::IndexOutOfRange { .. }) => ListSpec::ERR,
        _ => -2,
    }
}

/// Random appends, pops, gets, sets and lens. Each process keeps an
/// estimate of the length and pops instead of appending while it is
/// [`LIST_SHORT`] or more: the list empties often. (The order of concurrent
/// appends is a state the checker must carry until an op observes it; on a
/// long list an item's place is observed by a `get` or `pop` only long
/// after it was appended, and the search can go exponential in the number
/// of such pairs: a 416-op history with a ~90-item list took 11 s.)
fn list_run(m: &Manager, seed: u64, victims: usize) -> Run {
    let l = m.list::<i64>().unwrap();
    let len = Cell::new(0i64); // this process's estimate
    run(PROCS, OPS, victims, seed, move |p, w, rng| {
        // Unique, and small enough for `set`'s `i | v << 8`.
        let v = (p * 1000 + w.count()) as i64;
        let i = rng.gen_range(0..LIST_SHORT);
        let mut kind = rng.gen_range(0..10);
        if kind <= 3 && len.get() >= LIST_SHORT {
            kind = 4;
        }
        match kind {
            0..=3 => {
                w.call(0, ListSpec::APPEND, v, || match l.append(v) {
                    Ok(()) => 0,
                    Err(_) => -2,
                });
                len.set(len.get() + 1);
            }
            4 | 5 => {
                let r = w.call(0, ListSpec::POP, 0, || match l.pop() {
                    Ok(x) => x,
                    Err(e) => index_err(&e),
                });
                len.set(if r < 0 { 0 } else { len.get() - 1 });
            }
            6 => {
                let r = w.call(0, ListSpec::GET, i, || match l.get(i) {
                    Ok(x) => x,
                    Err(e) => index_err(&e),
                });
                if r < 0 {
                    len.set(len.get().min(i));
                }
            }
            7 => {
                w.call(0, ListSpec::SET, i | v << 8, || match l.set(i, v) {
                    Ok(()) => 0,
                    Err(e) => index_err(&e),
                });
            }
            _ => {
                len.set(w.call(0, ListSpec::LEN, 0, || match l.len() {
                    Ok(n) => n as i64,
                    Err(_) => -2,
                }));
            }
        }
    })
}

/// The length at which a list's processes stop appending.
const LIST_SHORT: i64 = 6;

#[test]
fn manager_list_is_linearizable_with_kill9_of_clients() {
    quiet();
    let m = Manager::start().unwrap();
    soak("manager list", 0x1157, |seed| {
        let r = list_run(&m, seed, VICTIMS);
        assert_linearizable("manager list", &ListSpec::default(), &r);
    });
    // The server outlived its killed clients.
    m.ping().unwrap();
}

#[test]
fn broken_list_spec_whose_pop_takes_the_first_item_is_caught() {
    quiet();
    let m = Manager::start().unwrap();
    let r = list_run(&m, 41, 0);
    assert_linearizable("manager list", &ListSpec::default(), &r);
    assert_caught(
        "list spec popping the first item",
        &ListSpec { pop_front: true },
        &r,
    );
}

fn dict_run(m: &Manager, seed: u64, victims: usize) -> Run {
    let d = m.dict::<i64, i64>().unwrap();
    run(PROCS, OPS, victims, seed, move |p, w, rng| {
        let v = (p * 1000 + w.count()) as i64;
        let k = rng.gen_range(0..DictSpec::KEYS as i64);
        let some = |x: Option<i64>| x.unwrap_or(DictSpec::NONE);
        match rng.gen_range(0..10) {
            0..=2 => {
                w.call(0, DictSpec::GET, k, || match d.get(&k) {
                    Ok(x) => some(x),
                    Err(_) => -2,
                });
            }
            3..=5 => {
                w.call(0, DictSpec::INSERT, k | v << 8, || match d.insert(k, v) {
                    Ok(x) => some(x),
                    Err(_) => -2,
                });
            }
            6..=7 => {
                w.call(0, DictSpec::REMOVE, k, || match d.remove(&k) {
                    Ok(x) => some(x),
                    Err(_) => -2,
                });
            }
            _ => {
                w.call(0, DictSpec::LEN, 0, || match d.len() {
                    Ok(n) => n as i64,
                    Err(_) => -2,
                });
            }
        }
    })
}

#[test]
fn manager_dict_is_linearizable_with_kill9_of_clients() {
    quiet();
    let m = Manager::start().unwrap();
    soak("manager dict", 0xd1c7, |seed| {
        let r = dict_run(&m, seed, VICTIMS);
        assert_linearizable("manager dict", &DictSpec::default(), &r);
    });
    m.ping().unwrap();
}

#[test]
fn broken_dict_spec_whose_remove_keeps_the_key_is_caught() {
    quiet();
    let m = Manager::start().unwrap();
    let r = dict_run(&m, 42, 0);
    assert_linearizable("manager dict", &DictSpec::default(), &r);
    assert_caught(
        "dict spec whose remove keeps the key",
        &DictSpec { remove_keeps: true },
        &r,
    );
}

// ------------------------------------------------------------------ Redis

/// A Redis manager in a fresh namespace (with the lease `lease`), or `None`
/// when no server is configured (see `redis_url`).
fn redis(test: &str, lease: Option<Duration>) -> Option<(Manager, RedisNs)> {
    let url = redis_url(test)?;
    let ns = RedisNs::new(&url, test);
    let m = match lease {
        Some(l) => Manager::redis_with_lease(&url, &ns.name, l).unwrap(),
        None => Manager::redis(&url, &ns.name).unwrap(),
    };
    Some((m, ns))
}

#[test]
fn redis_list_and_dict_are_linearizable_with_kill9_of_clients() {
    quiet();
    let Some((m, _ns)) = redis("history_redis_list_dict", None) else {
        return;
    };
    soak("redis list", 0x4ed1, |seed| {
        let r = list_run(&m, seed, VICTIMS);
        assert_linearizable("redis list", &ListSpec::default(), &r);
    });
    soak("redis dict", 0x4ed2, |seed| {
        let r = dict_run(&m, seed, VICTIMS);
        assert_linearizable("redis dict", &DictSpec::default(), &r);
    });
}

/// Two `Value`s, read and written (a manager's `Value` has no atomic add).
fn redis_value_run(m: &Manager, seed: u64, victims: usize) -> Run {
    let values = [m.value(0i64).unwrap(), m.value(0i64).unwrap()];
    run(PROCS, OPS, victims, seed, move |p, w, rng| {
        let key = rng.gen_range(0..values.len());
        let v = &values[key];
        if rng.gen_bool(0.5) {
            w.call(key as u32, ValueSpec::READ, 0, || v.get().unwrap_or(-2));
        } else {
            let x = (p * 1000 + w.count()) as i64;
            w.call(key as u32, ValueSpec::WRITE, x, || match v.set(&x) {
                Ok(()) => 0,
                Err(_) => -2,
            });
        }
    })
}

#[test]
fn redis_value_is_linearizable_with_kill9() {
    quiet();
    let Some((m, _ns)) = redis("history_redis_value", None) else {
        return;
    };
    soak("redis Value", 0x4ed3, |seed| {
        let r = redis_value_run(&m, seed, VICTIMS);
        assert_linearizable("redis Value", &ValueSpec::default(), &r);
    });
}

/// A lock whose killed holder's lease runs out (300 ms): the next acquirer
/// is told the owner died, as the specification of a robust lock says.
#[test]
fn redis_lock_is_linearizable_with_kill9_and_owner_died() {
    quiet();
    let Some((m, _ns)) = redis("history_redis_lock", Some(Duration::from_millis(300))) else {
        return;
    };
    soak("redis Lock", 0x4ed4, |seed| {
        let locks = [m.lock().unwrap(), m.lock().unwrap()];
        let r = run(PROCS, OPS / 2, VICTIMS, seed, move |_, w, rng| {
            let key = rng.gen_range(0..locks.len());
            let l = &locks[key];
            w.call(key as u32, LockSpec::ACQUIRE, 0, || match l.acquire() {
                Ok(()) => 0,
                Err(ManagerError::OwnerDied { .. }) => 1,
                Err(_) => 2,
            });
            w.call(key as u32, LockSpec::RELEASE, 0, || match l.release() {
                Ok(()) => 0,
                Err(_) => 2,
            });
        });
        let spec = LockSpec {
            killed: r.killed.clone(),
        };
        assert_linearizable("redis Lock", &spec, &r);
    });
}

/// A recursive lock taken 1–3 levels deep (sometimes by `try_acquire`,
/// falling back to `acquire`), then released level by level, sometimes once
/// too often (NotOwner); a killed holder's lease runs out (300 ms) and the
/// next acquirer is told the owner died. (The proxy has no `count`.)
fn redis_rlock_run(m: &Manager, seed: u64, victims: usize) -> Run {
    let locks = [m.rlock().unwrap(), m.rlock().unwrap()];
    run(PROCS, OPS / 2, victims, seed, move |_, w, rng| {
        let key = rng.gen_range(0..locks.len());
        let l = &locks[key];
        let k = key as u32;
        let depth = rng.gen_range(1..=3);
        for _ in 0..depth {
            let mut got = false;
            if rng.gen_bool(0.3) {
                let r = w.call(k, RLockSpec::TRY_ACQUIRE, 0, || match l.try_acquire() {
                    Ok(true) => 0,
                    Ok(false) => RLockSpec::WOULD_BLOCK,
                    Err(ManagerError::OwnerDied { .. }) => RLockSpec::OWNER_DIED,
                    Err(_) => -2,
                });
                got = r != RLockSpec::WOULD_BLOCK;
            }
            if !got {
                w.call(k, RLockSpec::ACQUIRE, 0, || match l.acquire() {
                    Ok(()) => 0,
                    Err(ManagerError::OwnerDied { .. }) => RLockSpec::OWNER_DIED,
                    Err(_) => -2,
                });
            }
        }
        let extra = usize::from(rng.gen_bool(0.1));
        for _ in 0..depth + extra {
            w.call(k, RLockSpec::RELEASE, 0, || match l.release() {
                Ok(()) => 0,
                Err(e) if e.op_error() == Some(&OpError::NotOwner) => RLockSpec::NOT_OWNER,
                Err(_) => -2,
            });
        }
    })
}

#[test]
fn redis_rlock_is_linearizable_with_kill9_and_owner_died() {
    quiet();
    let Some((m, _ns)) = redis("history_redis_rlock", Some(Duration::from_millis(300))) else {
        return;
    };
    soak("redis RLock", 0x4ed8, |seed| {
        let r = redis_rlock_run(&m, seed, VICTIMS);
        let spec = RLockSpec {
            killed: r.killed.clone(),
            ..RLockSpec::default()
        };
        assert_linearizable("redis RLock", &spec, &r);
    });
}

/// A semaphore of 2 whose killed holders' permits do not come back during
/// the run (a lease of an hour: the specification has no lease), tried and
/// released.
#[test]
fn redis_semaphore_is_linearizable_with_kill9() {
    quiet();
    let Some((m, _ns)) = redis("history_redis_semaphore", Some(Duration::from_secs(3600))) else {
        return;
    };
    soak("redis Semaphore", 0x4ed5, |seed| {
        let sem = m.semaphore(2).unwrap();
        let r = run(PROCS, OPS, VICTIMS, seed, move |_, w, rng| {
            let got = w.call(0, SemaphoreSpec::TRY_ACQUIRE, 0, || {
                match sem.try_acquire() {
                    Ok(b) => i64::from(b),
                    Err(_) => -2,
                }
            });
            if rng.gen_bool(0.5) {
                w.call(0, SemaphoreSpec::GET_VALUE, 0, || match sem.value() {
                    Ok(n) => n as i64,
                    Err(_) => -2,
                });
            }
            if got == 1 {
                w.call(0, SemaphoreSpec::RELEASE, 0, || match sem.release() {
                    Ok(()) => 0,
                    Err(_) => 2,
                });
            }
        });
        assert_linearizable("redis Semaphore", &SemaphoreSpec { initial: 2 }, &r);
    });
}

/// Puts of unique values and `get_nowait`s. Unlike the shared-memory queue,
/// a Redis queue's `try_get` is one server step: `Empty` only when empty
/// (no contended answer is allowed).
fn redis_queue_run(m: &Manager, seed: u64, victims: usize) -> Run {
    let q = m.queue::<i64>(None).unwrap();
    run(PROCS, OPS, victims, seed, move |p, w, rng| {
        if rng.gen_bool(0.5) {
            let v = ((p as i64) << 32) | w.count() as i64;
            w.call(0, QueueSpec::PUT, v, || match q.put(v) {
                Ok(()) => 0,
                Err(_) => 2,
            });
        } else {
            w.call(0, QueueSpec::TRY_GET, 0, || match q.try_get() {
                Ok(v) => v,
                Err(e) if e.op_error() == Some(&OpError::Timeout) => QueueSpec::EMPTY,
                Err(_) => -2,
            });
        }
    })
}

#[test]
fn redis_queue_is_linearizable_fifo_with_kill9() {
    quiet();
    let Some((m, _ns)) = redis("history_redis_queue", None) else {
        return;
    };
    soak("redis Queue", 0x4ed6, |seed| {
        let r = redis_queue_run(&m, seed, VICTIMS);
        assert_linearizable("redis Queue", &QueueSpec::default(), &r);
    });
}

fn redis_event_run(m: &Manager, seed: u64, victims: usize) -> Run {
    let ev = m.event().unwrap();
    run(PROCS, OPS, victims, seed, move |_, w, rng| {
        let ok = |r: Result<(), ManagerError>| if r.is_ok() { 0 } else { -2 };
        let flag = |r: Result<bool, ManagerError>| r.map_or(-2, i64::from);
        match rng.gen_range(0..4) {
            0 => w.call(0, EventSpec::SET, 0, || ok(ev.set())),
            1 => w.call(0, EventSpec::CLEAR, 0, || ok(ev.clear())),
            2 => w.call(0, EventSpec::IS_SET, 0, || flag(ev.is_set())),
            _ => w.call(0, EventSpec::WAIT, 1000, || {
                flag(ev.wait_timeout(Duration::from_micros(1000)))
            }),
        };
    })
}

#[test]
fn redis_event_is_linearizable_with_kill9() {
    quiet();
    let Some((m, _ns)) = redis("history_redis_event", None) else {
        return;
    };
    soak("redis Event", 0x4ed7, |seed| {
        let r = redis_event_run(&m, seed, VICTIMS);
        assert_linearizable("redis Event", &EventSpec::default(), &r);
    });
}

/// Each Redis history above checked against a deliberately broken
/// specification: the checker reports it.
#[test]
fn broken_specs_are_caught_on_redis_histories() {
    quiet();
    let Some((m, _ns)) = redis("history_redis_broken", None) else {
        return;
    };
    let r = list_run(&m, 43, 0);
    assert_linearizable("redis list", &ListSpec::default(), &r);
    assert_caught(
        "redis list spec popping the first item",
        &ListSpec { pop_front: true },
        &r,
    );
    let r = dict_run(&m, 44, 0);
    assert_linearizable("redis dict", &DictSpec::default(), &r);
    assert_caught(
        "redis dict spec whose remove keeps the key",
        &DictSpec { remove_keeps: true },
        &r,
    );
    let r = redis_queue_run(&m, 45, 0);
    assert_linearizable("redis Queue", &QueueSpec::default(), &r);
    assert_caught(
        "redis queue spec that is LIFO",
        &QueueSpec { lifo: true },
        &r,
    );
    let r = redis_rlock_run(&m, 47, 0);
    assert_linearizable("redis RLock", &RLockSpec::default(), &r);
    let spec = RLockSpec {
        not_recursive: true,
        ..RLockSpec::default()
    };
    assert_caught("redis RLock spec that is not recursive", &spec, &r);
    let r = redis_event_run(&m, 46, 0);
    assert_linearizable("redis Event", &EventSpec::default(), &r);
    assert_caught(
        "redis event spec whose clear does nothing",
        &EventSpec {
            clear_ignored: true,
        },
        &r,
    );
}
