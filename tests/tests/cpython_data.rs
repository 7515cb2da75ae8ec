//! CPython 3.11's `_TestValue` and `_TestArray` (Lib/test/_test_multiprocessing.py),
//! ported: one test per CPython test method, named after it, with CPython's
//! assertions, over a real (forked) child process where CPython uses one.
//!
//! Python's type codes become Rust types: `'i'` `i32`, `'d'` `f64`, `'h'`
//! `i16`, `'q'` `i64`, `'c'` `u8`. Parts that cannot apply, all in
//! `test_getobj_getlock` / `test_getobj_getlock_obj`:
//! * `lock=Lock()`: a `Value`/`Array` hands out `&mut` data through its lock,
//!   so it takes an `RLock` (which knows its owner) only — `with_lock(.., Lock)`
//!   does not compile (see the `compile_fail` doctests of `with_lock`); the
//!   port gives an `RLock` and checks that it is the one used.
//! * `lock=False` and `RawValue`/`RawArray` "have no `get_lock`/`get_obj`", and
//!   `lock='navalue'` raises `AttributeError`: both are compile-time facts in
//!   Rust (the raw types have no such methods; `lock` is typed), not run-time
//!   checks.
//! * `get_obj()`: there is no separate ctypes object; `as_ptr` is the closest.

use procshare::{Array, Process, RLock, RawArray, RawValue, Value};
use procshare_tests::quiet;

fn run_child(f: impl FnOnce() + Send + 'static) {
    quiet();
    let mut p = Process::new(f);
    p.start().unwrap();
    assert_eq!(p.join().unwrap(), 0);
}

// --------------------------------------------------------------- _TestValue

macro_rules! value_test {
    ($ty:ident) => {{
        let i = $ty::new(4343i32).unwrap();
        let d = $ty::new(3.625f64).unwrap();
        let h = $ty::new(-232i16).unwrap();
        let q = $ty::new(1i64 << 33).unwrap();
        let c = $ty::new(b'x').unwrap();
        assert_eq!(i.get(), 4343);
        assert_eq!(d.get(), 3.625);
        assert_eq!(h.get(), -232);
        assert_eq!(q.get(), 1 << 33);
        assert_eq!(c.get(), b'x');
        run_child({
            let (i, d, h, q, c) = (i.clone(), d.clone(), h.clone(), q.clone(), c.clone());
            move || {
                i.set(24234);
                d.set(-4.25);
                h.set(234);
                q.set(1 << 34);
                c.set(b'y');
            }
        });
        assert_eq!(i.get(), 24234);
        assert_eq!(d.get(), -4.25);
        assert_eq!(h.get(), 234);
        assert_eq!(q.get(), 1 << 34);
        assert_eq!(c.get(), b'y');
    }};
}

#[test]
fn test_value() {
    value_test!(Value);
}

#[test]
fn test_rawvalue() {
    value_test!(RawValue);
}

#[test]
fn test_getobj_getlock() {
    let val1 = Value::new(5i32).unwrap();
    let _lock1 = val1.get_lock();
    let _obj1 = val1.as_ptr();
    // lock=None: the default lock.
    let val2 = Value::new(5i32).unwrap();
    let _lock2 = val2.get_lock();
    // lock=lock: that very lock is used.
    let lock = RLock::new().unwrap();
    let val3 = Value::with_lock(5i32, lock.clone()).unwrap();
    let g = val3.lock().unwrap();
    assert!(lock.is_owned());
    assert!(val3.get_lock().is_locked());
    drop(g);
    assert!(!lock.is_locked());
    // lock=False / RawValue: no lock at all.
    let arr5 = RawValue::new(5i32).unwrap();
    assert_eq!(arr5.get(), 5);
}

// --------------------------------------------------------------- _TestArray

/// CPython's `_TestArray.f`: prefix sums in place.
fn f(seq: &mut [i32]) {
    for i in 1..seq.len() {
        seq[i] += seq[i - 1];
    }
}

const SEQ: [i32; 10] = [680, 626, 934, 821, 150, 233, 548, 982, 714, 831];

#[test]
fn test_array() {
    let mut seq = SEQ.to_vec();
    let arr = Array::from_values(seq.clone()).unwrap();
    assert_eq!(arr.len(), seq.len());
    assert_eq!(arr.get(3).unwrap(), seq[3]);
    assert_eq!(arr.to_vec()[2..7], seq[2..7]);
    {
        let mut g = arr.lock().unwrap();
        g[4..8].copy_from_slice(&[1, 2, 3, 4]);
    }
    seq[4..8].copy_from_slice(&[1, 2, 3, 4]);
    assert_eq!(arr.to_vec(), seq);
    f(&mut seq);
    run_child({
        let arr = arr.clone();
        move || f(&mut arr.lock().unwrap())
    });
    assert_eq!(arr.to_vec(), seq);
}

#[test]
fn test_array_from_size() {
    let size = 10;
    for _ in 0..3 {
        let arr = Array::<i32>::zeroed(size).unwrap();
        assert_eq!(arr.len(), size);
        assert_eq!(arr.to_vec(), vec![0; size]);
        arr.lock()
            .unwrap()
            .copy_from_slice(&(0..10).collect::<Vec<i32>>());
        assert_eq!(arr.to_vec(), (0..10).collect::<Vec<i32>>());
        drop(arr);
    }
}

#[test]
fn test_rawarray() {
    let mut seq = SEQ.to_vec();
    let arr = RawArray::from_values(seq.clone()).unwrap();
    assert_eq!(arr.len(), seq.len());
    assert_eq!(arr.get(3).unwrap(), seq[3]);
    assert_eq!(arr.to_vec()[2..7], seq[2..7]);
    for (k, v) in [1, 2, 3, 4].into_iter().enumerate() {
        arr.set(4 + k, v).unwrap();
    }
    seq[4..8].copy_from_slice(&[1, 2, 3, 4]);
    assert_eq!(arr.to_vec(), seq);
    f(&mut seq);
    run_child({
        let arr = arr.clone();
        move || {
            for i in 1..arr.len() {
                let v = arr.get(i).unwrap() + arr.get(i - 1).unwrap();
                arr.set(i, v).unwrap();
            }
        }
    });
    assert_eq!(arr.to_vec(), seq);
}

#[test]
fn test_getobj_getlock_obj() {
    let arr1 = Array::from_values(0..10i32).unwrap();
    let _lock1 = arr1.get_lock();
    let _obj1 = arr1.as_ptr();
    let arr2 = Array::from_values(0..10i32).unwrap();
    let _lock2 = arr2.get_lock();
    let lock = RLock::new().unwrap();
    let arr3 = Array::with_lock(0..10i32, lock.clone()).unwrap();
    let g = arr3.lock().unwrap();
    assert!(lock.is_owned());
    drop(g);
    assert!(!lock.is_locked());
    let arr5 = RawArray::from_values(0..10i32).unwrap();
    assert_eq!(arr5.len(), 10);
}
