//! Soundness of the public API (issue 9): no safe sequence yields two live
//! `&mut` to one datum, and unsynchronized `RawValue`/`RawArray` accesses from
//! several threads at once are relaxed atomic copies (torn, never UB).
//!
//! Threads are ordered with the library's own `Event`, never with sleeps. The
//! data-race freedom of the copies themselves is checked under Miri by the
//! unit tests in `impl/src/value.rs` (Miri cannot map shared memory).

use procshare::{AnyLock, Event, RLock, SyncError, TryLockError};
use procshare::{Array, RawArray, RawValue, Value};

fn rlock(l: &AnyLock) -> &RLock {
    match l {
        AnyLock::RLock(r) => r,
        AnyLock::Lock(_) => panic!("a Value's lock is an RLock"),
    }
}

/// Today's bug: a thread holding a `ValueGuard` releases the lock by hand
/// (`get_lock().release()`); another thread then locks the value too, and two
/// `&mut i64` to one datum are live. The release must be refused.
#[test]
fn release_under_a_value_guard_is_refused() {
    let v = Value::new(0i64).unwrap();
    let mut g = v.lock().unwrap();
    let r = rlock(v.get_lock());
    assert!(matches!(r.release(), Err(SyncError::HeldByGuard)));
    // The lock is still held: another thread cannot build a second guard.
    std::thread::scope(|s| {
        s.spawn(|| {
            assert!(
                matches!(v.try_lock(), Err(TryLockError::WouldBlock)),
                "a second guard of the value while the first lives"
            )
        })
        .join()
        .unwrap()
    });
    *g += 1;
    drop(g);
    assert_eq!(v.get(), 1);
    // The guard's level went with the guard: nothing is left to release.
    assert!(matches!(r.release(), Err(SyncError::NotOwner)));
}

/// The same through a caller-supplied lock shared by two values and an array,
/// with an explicitly acquired level on top: only that level may be released.
#[test]
fn only_explicitly_acquired_levels_are_released() {
    let lock = RLock::new().unwrap();
    let v = Value::with_lock(0u32, lock.clone()).unwrap();
    let a = Array::with_lock([0u8; 4], lock.clone()).unwrap();
    let mut gv = v.lock().unwrap();
    let mut ga = a.lock().unwrap();
    lock.acquire().unwrap();
    assert_eq!(lock.count(), 3);
    lock.release().unwrap();
    assert!(matches!(lock.release(), Err(SyncError::HeldByGuard)));
    *gv = 7; // both guards are still valid after the refused release
    ga[3] = 9;
    drop(gv);
    assert!(matches!(lock.release(), Err(SyncError::HeldByGuard)));
    std::thread::scope(|s| {
        s.spawn(|| assert!(matches!(a.try_lock(), Err(TryLockError::WouldBlock))))
            .join()
            .unwrap()
    });
    drop(ga);
    assert!(!lock.is_locked());
    assert_eq!((v.get(), a.to_vec()), (7, vec![0, 0, 0, 9]));
}

/// Two writers and two readers use one `RawValue` and one `RawArray` at once,
/// unsynchronized. Each `u64` is copied as one relaxed word, so no read is
/// torn; the `[u64; 2]` elements may tear across words, but every word read is
/// one a writer wrote.
#[test]
fn concurrent_raw_accesses_from_threads() {
    const ROUNDS: u64 = 20_000;
    let v = RawValue::new(0u64).unwrap();
    let a = RawArray::<[u64; 2]>::zeroed(3).unwrap();
    let go = Event::new().unwrap();
    let pattern = |k: u64| 0x0101_0101_0101_0101u64 * k;
    std::thread::scope(|s| {
        for k in 1..=2 {
            let (v, a, go) = (&v, &a, &go);
            s.spawn(move || {
                go.wait();
                for i in 0..ROUNDS {
                    v.set(pattern(k));
                    a.set((i % 3) as usize, [pattern(k); 2]).unwrap();
                }
            });
        }
        for _ in 0..2 {
            let (v, a, go) = (&v, &a, &go);
            s.spawn(move || {
                go.wait();
                for i in 0..ROUNDS {
                    let x = v.get();
                    assert!([0, pattern(1), pattern(2)].contains(&x), "torn u64 {x:#x}");
                    let words = if i % 2 == 0 {
                        a.get((i % 3) as usize).unwrap().to_vec()
                    } else {
                        a.to_vec().concat()
                    };
                    for w in words {
                        assert!([0, pattern(1), pattern(2)].contains(&w), "bad word {w:#x}");
                    }
                }
            });
        }
        go.set();
    });
}

/// A child forked while the parent holds a guard inherits the parent thread's
/// record of guard levels, but not the lock's ownership: once it owns the
/// lock itself, its explicitly acquired level is released normally.
#[test]
fn a_forked_child_releases_its_own_levels() {
    procshare::set_fork_warning(false);
    let v = Value::new(0u8).unwrap();
    let g = v.lock().unwrap();
    let mut p = procshare::Process::new({
        let v = v.clone();
        move || {
            let r = rlock(v.get_lock());
            r.acquire().unwrap(); // waits for the parent's guard to go
            r.release().expect("the child's own level");
        }
    });
    p.start().unwrap();
    drop(g);
    assert_eq!(p.join().unwrap(), 0);
    assert!(!v.get_lock().is_locked());
}

/// A guard leaked by a thread that then exits (its `&mut` handed back to the
/// spawner): the lock's owner is dead, and owner-death recovery would give a
/// second guard while the leaked `&mut` lives. It is refused.
#[test]
#[should_panic(expected = "was leaked by a thread that has exited")]
fn no_guard_after_one_leaked_by_an_exited_thread() {
    let v = Value::new(0u64).unwrap();
    let leaked: &mut u64 = std::thread::scope(|s| {
        s.spawn(|| &mut **Box::leak(Box::new(v.lock().unwrap())))
            .join()
            .unwrap()
    });
    let mut g = v.lock().unwrap_or_else(procshare::OwnerDied::into_inner);
    *g += 1; // two live `&mut u64` to one datum
    *leaked += 1;
}
