//! A process killed with `kill -9` while holding a `Lock` or an `RLock`: the
//! next acquirer gets the lock with an owner-died indication (promptly, not a
//! hang), and the protected data stays usable.
//!
//! Ordering: the victim signals "I hold the lock" through the library's own
//! `Event`, then blocks forever on another `Event`; the parent kills it
//! (a waiter child checks in through a `Semaphore`). No sleeps.
//! Every acquisition in the parent has a generous timeout so that a regression
//! fails the test instead of hanging it.

use procshare_tests::quiet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use procshare::internals::ShmBox;
use procshare::{Event, Lock, RLock, Semaphore, TryLockError};
use procshare::{Process, Value};

const GENEROUS: Duration = Duration::from_secs(60);

/// Starts a child that runs `hold` (which acquires and returns with the lock
/// held), sets `held`, then blocks forever on `never` (which nobody sets).
fn victim(hold: impl FnOnce() + Send + 'static) -> (Victim, Event) {
    let held = Event::new().unwrap();
    let never = Event::new().unwrap();
    let (h, n) = (held.clone(), never.clone());
    let mut p = Process::new(move || {
        hold();
        h.set();
        n.wait();
    });
    p.start().unwrap();
    let p = Victim(p);
    assert!(
        held.wait_timeout(GENEROUS),
        "victim never acquired the lock"
    );
    (p, never)
}

/// A victim process that is killed and reaped when the test ends, even when
/// it fails (so that no child outlives the test binary).
struct Victim(Process);

impl std::ops::Deref for Victim {
    type Target = Process;
    fn deref(&self) -> &Process {
        &self.0
    }
}

impl std::ops::DerefMut for Victim {
    fn deref_mut(&mut self) -> &mut Process {
        &mut self.0
    }
}

impl Drop for Victim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.join();
    }
}

#[test]
fn lock_owner_killed_then_parent_acquires_with_owner_died() {
    quiet();
    let lock = Lock::new().unwrap();
    // The parent uses the lock first, so that this thread's id is cached when
    // it forks: the child must still use its own id, not the cached one.
    drop(lock.lock().unwrap());
    let data = ShmBox::new(AtomicU64::new(0)).unwrap();
    let (l, d) = (lock.clone(), data.clone());
    let (mut p, _never) = victim(move || {
        std::mem::forget(l.lock().unwrap());
        d.store(13, Ordering::SeqCst); // half-way through an update
    });
    assert!(lock.is_locked());
    assert_eq!(lock.owner(), p.pid());
    p.kill().unwrap();
    // Not reaped yet: the victim is a zombie and must count as dead.
    let g = match lock.lock_timeout(GENEROUS) {
        Err(TryLockError::OwnerDied(o)) => o.into_inner(),
        Ok(_) => panic!("acquired cleanly: the owner's death was not reported"),
        Err(TryLockError::WouldBlock) => panic!("timed out: a dead owner blocks the lock"),
    };
    assert_eq!(data.load(Ordering::SeqCst), 13);
    data.store(14, Ordering::SeqCst);
    drop(g);
    assert_eq!(p.join().unwrap(), -9);
    // Recovered once; later acquisitions are clean.
    assert!(lock.lock().is_ok());
}

#[test]
fn lock_waiter_asleep_when_owner_is_killed() {
    quiet();
    let lock = Lock::new().unwrap();
    let (l, _) = (lock.clone(), ());
    let (mut victim_p, _never) = victim(move || std::mem::forget(l.lock().unwrap()));
    // A second child blocks in lock(); it reports how it got the lock through its exit code.
    let waiting = Semaphore::new(0).unwrap();
    let (l2, w2) = (lock.clone(), waiting.clone());
    let mut waiter = Process::new(move || {
        w2.release().unwrap();
        let code = match l2.lock_timeout(GENEROUS) {
            Err(TryLockError::OwnerDied(o)) => {
                std::mem::forget(o); // exit holding it
                0
            }
            Ok(_) => 2,
            Err(TryLockError::WouldBlock) => 3,
        };
        // SAFETY: leaves the child at once.
        unsafe { libc::_exit(code) }
    });
    waiter.start().unwrap();
    assert!(waiting.acquire_timeout(GENEROUS));
    victim_p.kill().unwrap();
    assert_eq!(waiter.join().unwrap(), 0, "waiter did not get OwnerDied");
    assert_eq!(victim_p.join().unwrap(), -9);
    // The waiter exited (normally) holding the lock: we recover it in turn.
    assert!(matches!(
        lock.lock_timeout(GENEROUS),
        Err(TryLockError::OwnerDied(_))
    ));
}

#[test]
fn rlock_owner_killed_while_holding_recursively() {
    quiet();
    let rlock = RLock::new().unwrap();
    drop(rlock.lock().unwrap()); // caches this thread's id before the fork
    let r = rlock.clone();
    let (mut p, _never) = victim(move || {
        std::mem::forget(r.lock().unwrap());
        std::mem::forget(r.lock().unwrap()); // depth 2
    });
    assert_eq!(rlock.owner(), p.pid());
    assert!(!rlock.is_owned());
    p.kill().unwrap();
    let g = match rlock.lock_timeout(GENEROUS) {
        Err(TryLockError::OwnerDied(o)) => o.into_inner(),
        Ok(_) => panic!("acquired cleanly: the owner's death was not reported"),
        Err(TryLockError::WouldBlock) => panic!("timed out: a dead owner blocks the rlock"),
    };
    // We own it with depth 1: re-entry works and one release per acquire frees it.
    let g2 = rlock.lock().unwrap();
    drop(g2);
    drop(g);
    assert!(!rlock.is_locked());
    assert_eq!(p.join().unwrap(), -9);
}

#[test]
fn value_stays_usable_after_holder_killed() {
    quiet();
    let v = Value::new(100i64).unwrap();
    let c = v.clone();
    let (mut p, _never) = victim(move || {
        let mut g = c.lock().unwrap();
        *g += 1;
        std::mem::forget(g);
    });
    p.kill().unwrap();
    let mut g = match v.lock_timeout(GENEROUS) {
        Err(TryLockError::OwnerDied(o)) => o.into_inner(),
        other => panic!("expected OwnerDied, got {:?}", other.map(|g| *g)),
    };
    assert_eq!(*g, 101);
    *g += 1;
    drop(g);
    assert_eq!(v.get(), 102);
    assert_eq!(p.join().unwrap(), -9);
}
