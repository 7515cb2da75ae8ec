//! `Condition` with processes killed by `kill -9`:
//!
//! * a waiter killed while it waits does not swallow `notify(1)`: the live
//!   waiter gets it (notifications are not handed to a particular waiter);
//! * a notifier killed while it holds the lock, before or after notifying,
//!   does not leave the waiters asleep: one of them recovers the lock
//!   (`OwnerDied`), and a completed notification is still delivered.
//!
//! Ordering: a waiter releases a `Semaphore` while it holds the condition's
//! lock, just before `wait`; the parent then takes the lock, which it can only
//! get once the waiter released it inside `wait` (so the waiter is
//! registered). The victim notifier signals through an `Event` and blocks on
//! another. No sleeps. Every wait has a generous timeout, so that a
//! regression fails (a waiter's exit code says how its wait ended) rather than
//! hangs.

use std::time::Duration;

use procshare::{Condition, Event, OwnerDied, Process, Semaphore};
use procshare_tests::quiet;

const GENEROUS: Duration = Duration::from_secs(30);

/// Exit codes of a waiter child: how its `wait_timeout` ended.
const NOTIFIED: i32 = 20;
const TIMED_OUT: i32 = 30;
/// Recovered the lock from a dead holder (and notified everyone), without a notification.
const OWNER_DIED: i32 = 10;
/// Recovered the lock from a dead holder, with a notification.
const OWNER_DIED_NOTIFIED: i32 = 11;

/// A child that locks `cond`, releases `registered`, waits (at most
/// [`GENEROUS`]) and exits with a code saying how the wait ended. If it
/// recovered the lock from a dead holder, it wakes the others (whose
/// notifier died) before it exits.
fn waiter(cond: &Condition, registered: &Semaphore) -> Process {
    let (cond, registered) = (cond.clone(), registered.clone());
    let mut p = Process::new(move || {
        let g = cond.lock().unwrap();
        registered.release().unwrap();
        // Every guard is dropped (the lock released) before the exit.
        let code = match cond.wait_timeout(g, GENEROUS) {
            Ok((_, true)) => NOTIFIED,
            Ok((_, false)) => TIMED_OUT,
            Err(o) => {
                let (g, notified) = o.into_inner();
                cond.notify_all().unwrap();
                drop(g);
                if notified {
                    OWNER_DIED_NOTIFIED
                } else {
                    OWNER_DIED
                }
            }
        };
        // SAFETY: leaves the child at once (no guard is alive).
        unsafe { libc::_exit(code) }
    });
    p.start().unwrap();
    p
}

/// Kills and reaps a child when the test ends, even when it fails.
struct Reaped(Process);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.join();
    }
}

#[test]
fn waiter_killed_while_waiting_does_not_swallow_notify() {
    quiet();
    let cond = Condition::new().unwrap();
    let registered = Semaphore::new(0).unwrap();
    let mut doomed = Reaped(waiter(&cond, &registered));
    assert!(registered.acquire_timeout(GENEROUS));
    let mut live = Reaped(waiter(&cond, &registered));
    assert!(registered.acquire_timeout(GENEROUS));
    // Both wait (each released the lock inside `wait` for us to get it).
    let g = cond.lock().unwrap();
    assert_eq!(cond.n_waiting(), 2);
    doomed.0.kill().unwrap();
    assert_eq!(doomed.0.join().unwrap(), -9);
    // One notification, two registered waiters, one of them dead.
    cond.notify(1).unwrap();
    drop(g);
    assert_eq!(
        live.0.join().unwrap(),
        NOTIFIED,
        "the live waiter did not get notify(1)"
    );
}

#[test]
fn notifier_killed_holding_the_lock_before_notifying() {
    quiet();
    let cond = Condition::new().unwrap();
    let registered = Semaphore::new(0).unwrap();
    let mut a = Reaped(waiter(&cond, &registered));
    let mut b = Reaped(waiter(&cond, &registered));
    for _ in 0..2 {
        assert!(registered.acquire_timeout(GENEROUS));
    }
    // The notifier takes the lock (so after both waiters registered) and dies
    // holding it, without notifying.
    let (held, never) = (Event::new().unwrap(), Event::new().unwrap());
    let mut notifier = Reaped({
        let (c, h, n) = (cond.clone(), held.clone(), never.clone());
        let mut p = Process::new(move || {
            std::mem::forget(c.lock().unwrap_or_else(OwnerDied::into_inner));
            h.set();
            n.wait();
        });
        p.start().unwrap();
        p
    });
    assert!(held.wait_timeout(GENEROUS));
    notifier.0.kill().unwrap();
    assert_eq!(notifier.0.join().unwrap(), -9);
    // One waiter recovers the lock (OwnerDied, not notified) and wakes the other.
    let mut codes = [a.0.join().unwrap(), b.0.join().unwrap()];
    codes.sort();
    assert_eq!(
        codes,
        [OWNER_DIED, NOTIFIED],
        "10: OwnerDied, 20: notified, 30: timed out"
    );
}

#[test]
fn notifier_killed_holding_the_lock_after_notifying() {
    quiet();
    let cond = Condition::new().unwrap();
    let registered = Semaphore::new(0).unwrap();
    let mut a = Reaped(waiter(&cond, &registered));
    let mut b = Reaped(waiter(&cond, &registered));
    for _ in 0..2 {
        assert!(registered.acquire_timeout(GENEROUS));
    }
    let (held, never) = (Event::new().unwrap(), Event::new().unwrap());
    let mut notifier = Reaped({
        let (c, h, n) = (cond.clone(), held.clone(), never.clone());
        let mut p = Process::new(move || {
            let g = c.lock().unwrap_or_else(OwnerDied::into_inner);
            c.notify_all().unwrap();
            std::mem::forget(g); // dies holding the lock, after notifying
            h.set();
            n.wait();
        });
        p.start().unwrap();
        p
    });
    assert!(held.wait_timeout(GENEROUS));
    notifier.0.kill().unwrap();
    assert_eq!(notifier.0.join().unwrap(), -9);
    // Both were notified; the first to take the lock recovers it.
    let mut codes = [a.0.join().unwrap(), b.0.join().unwrap()];
    codes.sort();
    assert_eq!(
        codes,
        [OWNER_DIED_NOTIFIED, NOTIFIED],
        "11: OwnerDied and notified, 20: notified"
    );
}
