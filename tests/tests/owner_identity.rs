//! The identity of a lock's holder cannot be confused with a later process
//! (issue 15): a holder killed with `kill -9` whose pid is then given to an
//! unrelated process (forced through `/proc/sys/kernel/ns_last_pid`, root
//! only) is recovered by the next acquirer (`OwnerDied`), even when the
//! newcomer would have carried the dead holder's 8-bit identity tag.
//!
//! Owner ids used to be the tid plus an 8-bit tag of the thread's pidfs
//! inode number, and a newcomer whose tag equalled the dead owner's (1 in 255
//! per reuse) was taken for it. The test hook
//! `internals::force_tag_collision` makes every liveness answer what that
//! scheme answered for a colliding newcomer ("a thread has the tid: alive"):
//! with it on, the acquirer is confused (it times out while the impostor
//! lives); with it off, the holder's 64-bit identity recorded beside the lock
//! word tells the impostor apart.
//!
//! In its own test binary: the hook is process-wide.

use std::time::Duration;

use procshare::internals::{force_tag_collision, identity_of};
use procshare::{Event, Lock, Process, RLock, TryLockError};
use procshare_model::platform::Occupant;

const GENEROUS: Duration = Duration::from_secs(60);

/// Gives `pid` (free: its process was reaped) to a new `sleep` process by
/// writing `pid - 1` to `ns_last_pid`; retries when another fork took it
/// first. `None` if not allowed (not root).
fn impostor(pid: u32) -> Option<std::process::Child> {
    // Each try is a fork and exec of `sleep`; other processes forking
    // meanwhile take the pid first now and then (a loaded machine: 200 tries
    // were once not enough).
    for _ in 0..5000 {
        std::fs::write("/proc/sys/kernel/ns_last_pid", format!("{}", pid - 1)).ok()?;
        let mut c = std::process::Command::new("sleep")
            .arg("120")
            .spawn()
            .unwrap();
        if c.id() == pid {
            return Some(c);
        }
        let _ = c.kill();
        let _ = c.wait();
    }
    panic!("could not give pid {pid} to a new process in 5000 tries");
}

/// The tests of this binary run one at a time: a freed pid is taken for good
/// by any thread or process the other test starts right after `impostor`
/// writes `ns_last_pid` (seen: 5000 tries failing, about one run in ten).
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn root() -> bool {
    let ok = std::fs::OpenOptions::new()
        .write(true)
        .open("/proc/sys/kernel/ns_last_pid")
        .is_ok();
    if !ok {
        eprintln!("skipped: needs root (writes /proc/sys/kernel/ns_last_pid)");
    }
    ok
}

/// A process that takes the lock (through `take`), says so, and is killed
/// holding it; returns its pid, reaped (free for reuse).
fn killed_holder(take: impl FnOnce() + Send + 'static) -> u32 {
    let held = Event::new().unwrap();
    let never = Event::new().unwrap();
    let (h, n) = (held.clone(), never.clone());
    let mut victim = Process::new(move || {
        take();
        h.set();
        n.wait();
    });
    victim.start().unwrap();
    assert!(held.wait_timeout(GENEROUS));
    let pid = victim.pid().unwrap();
    victim.kill().unwrap();
    victim.join().unwrap();
    pid
}

#[test]
fn colliding_tag_confuses_the_old_scheme_not_the_identity_word() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if !root() {
        return;
    }
    let lock = Lock::new().unwrap();
    let l = lock.clone();
    let pid = killed_holder(move || std::mem::forget(l.lock().unwrap()));
    assert_eq!(lock.owner(), Some(pid));
    let Some(mut imp) = impostor(pid) else {
        eprintln!("skipped: ns_last_pid not writable");
        return;
    };
    assert!(matches!(identity_of(pid), Occupant::Is(_)));
    // The old scheme, tags colliding: the impostor passes for the holder.
    force_tag_collision(true);
    let confused = lock.acquire_timeout(Duration::from_millis(300));
    force_tag_collision(false);
    // The identity word: the impostor is not the holder.
    let got = lock.acquire_timeout(Duration::from_secs(10));
    let _ = imp.kill();
    let _ = imp.wait();
    assert!(
        matches!(confused, Err(TryLockError::WouldBlock)),
        "with colliding tags the impostor should have passed for the holder: {confused:?}"
    );
    match got {
        Err(TryLockError::OwnerDied(_)) => {}
        Ok(()) => panic!("acquired without OwnerDied"),
        Err(TryLockError::WouldBlock) => {
            panic!("the lock was taken for held by the process that reused pid {pid}")
        }
    }
    lock.release().unwrap();
}

/// The same for a recursive lock held twice by the killed owner: the next
/// acquirer recovers it (depth 1, not the dead owner's 2) although a live
/// process has the dead owner's pid.
#[test]
fn rlock_dead_owner_with_reused_pid_is_recovered() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if !root() {
        return;
    }
    let lock = RLock::new().unwrap();
    let l = lock.clone();
    let pid = killed_holder(move || {
        std::mem::forget(l.lock().unwrap());
        std::mem::forget(l.lock().unwrap()); // depth 2
    });
    let Some(mut imp) = impostor(pid) else {
        eprintln!("skipped: ns_last_pid not writable");
        return;
    };
    let got = lock.acquire_timeout(Duration::from_secs(10));
    let _ = imp.kill();
    let _ = imp.wait();
    assert!(
        matches!(got, Err(TryLockError::OwnerDied(_))),
        "the rlock was taken for held by the process that reused pid {pid}: {got:?}"
    );
    assert!(lock.is_owned());
    lock.release().unwrap();
    assert!(!lock.is_owned());
}
