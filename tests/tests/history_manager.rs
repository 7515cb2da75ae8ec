//! Real-process histories of the manager's `list` and `dict` proxies: one
//! manager, several client processes, some killed with `kill -9` at random
//! operations (mid-request included), checked for linearizability
//! (DESIGN.md, "History checking"); each specification shown able to fail
//! (a deliberately broken variant).
//!
//! `PROCSHARE_HISTORY_SOAK_SECS=n` runs each object's test for about `n`
//! seconds of fresh seeds; `cargo test` runs one seed each. No sleeps, no
//! timing asserts: a victim reports its kill point through a `Semaphore`.

use std::cell::Cell;

use procshare::{Manager, ManagerError, OpError};
use procshare_tests::history::checker::{check, Spec};
use procshare_tests::history::manager_specs::{DictSpec, ListSpec};
use procshare_tests::history::{assert_linearizable, run, soak, Run};
use procshare_tests::quiet;
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
