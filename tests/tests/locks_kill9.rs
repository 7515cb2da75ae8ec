//! A process killed with `kill -9` while holding a `Lock` or an `RLock`: the
//! next acquirer gets the lock with an owner-died indication (promptly, not a
//! hang), and the protected data stays usable.
//!
//! Ordering: the victim signals "I hold the lock" through a pipe, then blocks
//! forever reading another pipe; the parent kills it. No sleeps.
//! Every acquisition in the parent has a generous timeout so that a regression
//! fails the test instead of hanging it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use procshare::shm::ShmBox;
use procshare::sync::{Lock, RLock, TryLockError};
use procshare::{Process, Value};

const GENEROUS: Duration = Duration::from_secs(60);

fn quiet() {
    procshare::process::set_fork_warning(false);
}

/// A pipe; both ends are closed when the value is dropped.
struct Pipe {
    r: i32,
    w: i32,
}

impl Pipe {
    fn new() -> Pipe {
        let mut f = [0; 2];
        // SAFETY: a valid 2-int array.
        assert_eq!(unsafe { libc::pipe2(f.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        Pipe { r: f[0], w: f[1] }
    }
    /// Blocks until one byte arrives; false on EOF or error.
    fn recv(&self) -> bool {
        let mut b = [0u8; 1];
        // SAFETY: valid fd and buffer.
        unsafe { libc::read(self.r, b.as_mut_ptr().cast(), 1) == 1 }
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        // SAFETY: our own fds, closed once.
        unsafe {
            libc::close(self.r);
            libc::close(self.w);
        }
    }
}

/// Writes one byte to `fd` (in a child).
fn signal(fd: i32) {
    // SAFETY: valid fd and buffer.
    unsafe { libc::write(fd, b"x".as_ptr().cast(), 1) };
}

/// Starts a child that runs `hold` (which acquires and returns with the lock
/// held), says so through a pipe, then blocks forever reading another pipe
/// (the parent keeps its write end open and never writes).
fn victim(hold: impl FnOnce() + Send + 'static) -> (Process, Pipe) {
    let held = Pipe::new();
    let never = Pipe::new();
    let (hw, nr) = (held.w, never.r);
    let mut p = Process::new(move || {
        hold();
        signal(hw);
        let mut b = [0u8; 1];
        // SAFETY: valid fd and buffer.
        unsafe { libc::read(nr, b.as_mut_ptr().cast(), 1) };
    });
    p.start().unwrap();
    assert!(held.recv(), "victim never acquired the lock");
    (p, never)
}

#[test]
fn lock_owner_killed_then_parent_acquires_with_owner_died() {
    quiet();
    let lock = Lock::new().unwrap();
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
    let waiting = Pipe::new();
    let (l2, ww) = (lock.clone(), waiting.w);
    let mut waiter = Process::new(move || {
        // SAFETY: valid fd and buffer.
        unsafe { libc::write(ww, b"x".as_ptr().cast(), 1) };
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
    assert!(waiting.recv());
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
    let r = rlock.clone();
    let (mut p, _never) = victim(move || {
        std::mem::forget(r.lock().unwrap());
        std::mem::forget(r.lock().unwrap()); // depth 2
    });
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
