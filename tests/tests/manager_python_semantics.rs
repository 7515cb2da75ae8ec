//! Manager proxies behave as CPython's where CPython's own tests found that
//! they did not: a barrier's `reset` breaks its waiting parties, a list
//! proxy's iterator sees later writes, negative list indices, and the
//! timeout forms of `Condition.wait_for` and `Barrier`.

use procshare::{Manager, OpError};
use procshare_tests::quiet;
use std::time::Duration;

/// Ask the server until `f` holds (each try is a round trip; no sleeping),
/// with a bound that turns "never" into a failure (not a timing assertion).
fn until(mut f: impl FnMut() -> bool) {
    let held = procshare_tests::eventually(Duration::from_secs(60), || {
        f() || {
            std::thread::yield_now();
            false
        }
    });
    assert!(held, "condition never held");
}

#[test]
fn barrier_reset_breaks_the_waiting_parties() {
    quiet();
    let m = Manager::start().unwrap();
    let b = m.barrier(2).unwrap();
    let b2 = b.clone();
    let waiter = std::thread::spawn(move || b2.wait());
    until(|| b.n_waiting().unwrap() == 1);
    b.reset().unwrap();
    let r = waiter.join().unwrap();
    assert_eq!(
        r.as_ref().map_err(|e| e.op_error()),
        Err(Some(&OpError::BrokenBarrier)),
        "a party waiting across reset() passed: {r:?}"
    );
    // After the reset the barrier works again.
    assert!(!b.is_broken().unwrap());
    let b2 = b.clone();
    let t = std::thread::spawn(move || b2.wait().unwrap());
    let mine = b.wait().unwrap();
    assert_eq!(mine + t.join().unwrap(), 1);
}

#[test]
fn list_iterator_sees_later_writes() {
    quiet();
    let m = Manager::start().unwrap();
    let l = m.list_from([1, 2, 3]).unwrap();
    let mut it = l.iter();
    assert_eq!(it.next().unwrap().unwrap(), 1);
    l.set(1, 20).unwrap();
    l.append(4).unwrap();
    let rest: Vec<i32> = it.map(|x| x.unwrap()).collect();
    assert_eq!(rest, [20, 3, 4]);
}

#[test]
fn negative_indices_as_in_python() {
    quiet();
    let m = Manager::start().unwrap();
    let l = m.list_from([1, 2, 3]).unwrap();
    assert_eq!(l.get(-1).unwrap(), 3);
    assert_eq!(l.get(-3).unwrap(), 1);
    l.set(-1, 30).unwrap();
    assert_eq!(l.to_vec().unwrap(), [1, 2, 30]);
    l.insert(-1, 25).unwrap(); // before the last, as list.insert(-1, x)
    assert_eq!(l.to_vec().unwrap(), [1, 2, 25, 30]);
    l.insert(-99, 0).unwrap(); // clamped to the front
    assert_eq!(l.to_vec().unwrap(), [0, 1, 2, 25, 30]);
    assert_eq!(l.pop_at(-2).unwrap(), 25);
    l.delete(-1).unwrap();
    assert_eq!(l.to_vec().unwrap(), [0, 1, 2]);
    let e = l.get(-4).unwrap_err();
    assert_eq!(
        e.op_error(),
        Some(&OpError::SignedIndexOutOfRange { index: -4, len: 3 })
    );
    assert_eq!(
        l.get(3usize).unwrap_err().op_error(),
        Some(&OpError::IndexOutOfRange { index: 3, len: 3 })
    );
    assert_eq!(
        l.to_vec().unwrap(),
        [0, 1, 2],
        "a failed op changed the list"
    );
}

#[test]
fn condition_wait_for_with_a_timeout() {
    quiet();
    let m = Manager::start().unwrap();
    let c = m.condition().unwrap();
    let flag = m.value(false).unwrap();
    c.acquire().unwrap();
    // Never true: false after the timeout, the lock held again.
    assert!(!c
        .wait_for_timeout(|| flag.get(), Duration::from_millis(20))
        .unwrap());
    c.release().unwrap();
    // Made true by another thread: true.
    let (c2, f2) = (c.clone(), flag.clone());
    c.acquire().unwrap();
    let t = std::thread::spawn(move || {
        c2.acquire().unwrap();
        f2.set(&true).unwrap();
        c2.notify_all().unwrap();
        c2.release().unwrap();
    });
    assert!(c
        .wait_for_timeout(|| flag.get(), Duration::from_secs(60))
        .unwrap());
    c.release().unwrap();
    t.join().unwrap();
}

#[test]
fn barrier_with_timeout_breaks_when_the_timeout_passes() {
    quiet();
    let m = Manager::start().unwrap();
    let b = m
        .barrier_with_timeout(2, Duration::from_millis(20))
        .unwrap();
    let e = b.wait().unwrap_err();
    assert_eq!(e.op_error(), Some(&OpError::BrokenBarrier));
    assert!(b.is_broken().unwrap());
    b.reset().unwrap();
    // A clone keeps the timeout.
    assert!(b.clone().wait().is_err());
}
