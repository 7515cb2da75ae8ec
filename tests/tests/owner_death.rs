//! Owner death learned by notification (issue 15).
//!
//! * An idle waiter costs nothing: a child blocked in `Lock::acquire`,
//!   `RLock::acquire`, `Semaphore::acquire`, `Event::wait`, `Barrier::wait`,
//!   `Queue::get` or `JoinableQueue::join` while nothing happens wakes up
//!   fewer than 5 times (its `voluntary_ctxt_switches`) while the parent
//!   waits 1.5 s on the library's own `Event::wait_timeout`. Before, each
//!   waiter polled `/proc` 20 times a second (about 30 wake-ups here).
//! * Pid reuse: a holder killed with `kill -9` whose pid is then given to an
//!   unrelated process (forced through `/proc/sys/kernel/ns_last_pid`, root
//!   only) does not make the next acquirer wait: it gets `OwnerDied`. Before,
//!   it waited for as long as the impostor lived.
//!
//! Ordering uses the library's own primitives and the child's state in
//! `/proc` (is it asleep in `futex`?); no sleeps.

use std::time::{Duration, Instant};

use procshare::{
    Barrier, Event, JoinableQueue, Lock, Process, Queue, RLock, Semaphore, TryLockError,
};

const GENEROUS: Duration = Duration::from_secs(60);

/// A child that is killed and reaped when the test ends.
struct Child(Process);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.join();
    }
}

fn start(f: impl FnOnce() + Send + 'static) -> Child {
    let mut p = Process::new(f);
    p.start().unwrap();
    Child(p)
}

/// The first number of `/proc/<pid>/syscall`: the system call the main
/// thread is blocked in (202: futex on x86_64), if readable.
fn blocked_in(pid: u32) -> Option<String> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/syscall")).ok()?;
    s.split_whitespace().next().map(str::to_owned)
}

fn voluntary_switches(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Starts `block` in a child, after `ready` is set there; waits until the
/// child sleeps in a futex, then counts its wake-ups while the parent waits
/// 1.5 s on an event nobody sets.
fn idle_wakeups(what: &str, block: impl FnOnce() + Send + 'static) -> u64 {
    let ready = Event::new().unwrap();
    let r = ready.clone();
    let child = start(move || {
        r.set();
        block();
    });
    assert!(ready.wait_timeout(GENEROUS), "{what}: child did not start");
    let pid = child.0.pid().unwrap();
    let since = Instant::now();
    let futex = if cfg!(target_arch = "x86_64") {
        "202"
    } else {
        "98"
    };
    // The child goes to sleep in the futex wait of `block` (after a spin).
    while blocked_in(pid).as_deref() != Some(futex) {
        assert!(since.elapsed() < GENEROUS, "{what}: child never slept");
        std::thread::yield_now();
    }
    let before = voluntary_switches(pid);
    let never = Event::new().unwrap();
    assert!(!never.wait_timeout(Duration::from_millis(1500)));
    let after = voluntary_switches(pid);
    after - before
}

#[test]
fn idle_waiters_do_not_wake_up() {
    let mut report = Vec::new();

    let lock = Lock::new().unwrap();
    let _held = lock.lock().unwrap();
    let l = lock.clone();
    report.push((
        "Lock::acquire",
        idle_wakeups("lock", move || drop(l.acquire())),
    ));

    let rlock = RLock::new().unwrap();
    rlock.acquire().unwrap();
    let r = rlock.clone();
    report.push((
        "RLock::acquire",
        idle_wakeups("rlock", move || drop(r.acquire())),
    ));

    let sem = Semaphore::new(0).unwrap();
    let s = sem.clone();
    report.push((
        "Semaphore::acquire",
        idle_wakeups("semaphore", move || s.acquire()),
    ));

    let event = Event::new().unwrap();
    let e = event.clone();
    report.push(("Event::wait", idle_wakeups("event", move || e.wait())));

    let barrier = Barrier::new(2).unwrap();
    let b = barrier.clone();
    report.push((
        "Barrier::wait",
        idle_wakeups("barrier", move || drop(b.wait())),
    ));

    let queue = Queue::<u32>::new().unwrap();
    let q = queue.clone();
    report.push(("Queue::get", idle_wakeups("queue", move || drop(q.get()))));

    let jq = JoinableQueue::<u32>::new().unwrap();
    jq.put(&1).unwrap();
    let j = jq.clone();
    report.push((
        "JoinableQueue::join",
        idle_wakeups("joinable", move || j.join()),
    ));

    eprintln!("wake-ups of an idle waiter over 1.5 s: {report:?}");
    for (what, n) in report {
        assert!(
            n < 5,
            "{what}: {n} wake-ups in 1.5 s while nothing happened"
        );
    }
}

/// Gives `pid` (free: its process was reaped) to a new `sleep` process by
/// writing `pid - 1` to `ns_last_pid`; retries when another fork took it
/// first. `None` if not allowed (not root).
fn impostor(pid: u32) -> Option<std::process::Child> {
    for _ in 0..200 {
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
    panic!("could not give pid {pid} to a new process in 200 tries");
}

#[test]
fn pid_reuse_next_acquirer_gets_owner_died() {
    if std::fs::OpenOptions::new()
        .write(true)
        .open("/proc/sys/kernel/ns_last_pid")
        .is_err()
    {
        eprintln!("skipped: needs root (writes /proc/sys/kernel/ns_last_pid)");
        return;
    }
    let lock = Lock::new().unwrap();
    let held = Event::new().unwrap();
    let never = Event::new().unwrap();
    let (l, h, n) = (lock.clone(), held.clone(), never.clone());
    let mut victim = Process::new(move || {
        std::mem::forget(l.lock().unwrap());
        h.set();
        n.wait();
    });
    victim.start().unwrap();
    assert!(held.wait_timeout(GENEROUS));
    let pid = victim.pid().unwrap();
    assert_eq!(lock.owner(), Some(pid));
    victim.kill().unwrap();
    victim.join().unwrap(); // reaped: the pid is free
    let Some(mut imp) = impostor(pid) else {
        eprintln!("skipped: ns_last_pid not writable");
        return;
    };
    // The impostor lives for two minutes: waiting for it is a failure.
    let got = lock.acquire_timeout(Duration::from_secs(10));
    let _ = imp.kill();
    let _ = imp.wait();
    match got {
        Err(TryLockError::OwnerDied(_)) => {}
        Ok(()) => panic!("acquired without OwnerDied"),
        Err(TryLockError::WouldBlock) => {
            panic!("the lock was taken for held by the process that reused pid {pid}")
        }
    }
    lock.release().unwrap();
}

/// Does this process have the death watcher's helper thread? (Its name,
/// "procshare-deathwatch", is cut to 15 bytes by the kernel.)
fn has_deathwatch_thread() -> bool {
    std::fs::read_dir("/proc/self/task").unwrap().any(|t| {
        let comm = std::fs::read_to_string(t.unwrap().path().join("comm")).unwrap_or_default();
        comm.starts_with("procshare-death")
    })
}

/// The helper thread is started by the first wait for a live owner (not
/// before), and a forked child that waits starts its own (the parent's is not
/// copied by `fork`); there, an owner's death still reaches the waiter.
#[test]
fn deathwatch_helper_on_demand_and_in_forked_children() {
    let lock = Lock::new().unwrap();
    let held = Event::new().unwrap();
    let never = Event::new().unwrap();
    let (l, h, n) = (lock.clone(), held.clone(), never.clone());
    let holder = start(move || {
        std::mem::forget(l.lock().unwrap());
        h.set();
        n.wait();
    });
    assert!(held.wait_timeout(GENEROUS));
    let asleep = Semaphore::new(0).unwrap();
    let (l, a) = (lock.clone(), asleep.clone());
    let mut outer = Process::new(move || {
        assert!(!has_deathwatch_thread(), "a helper before any wait");
        // A timed wait for the live holder starts the helper.
        assert!(matches!(
            l.acquire_timeout(Duration::from_millis(20)),
            Err(TryLockError::WouldBlock)
        ));
        assert!(has_deathwatch_thread(), "no helper after a wait");
        // A child forked now: it has no copy of the helper, and starts its own.
        let (l2, a2) = (l.clone(), a.clone());
        let mut inner = Process::new(move || {
            assert!(!has_deathwatch_thread());
            assert!(matches!(
                l2.acquire_timeout(Duration::from_millis(20)),
                Err(TryLockError::WouldBlock)
            ));
            assert!(
                has_deathwatch_thread(),
                "a forked child's wait did not start its own helper"
            );
            a2.release().unwrap();
            // Blocks until the holder is killed: the death is notified here too.
            assert!(l2.acquire().is_err(), "expected OwnerDied");
        });
        inner.start().unwrap();
        assert_eq!(inner.join().unwrap(), 0, "the inner child failed");
    });
    outer.start().unwrap();
    if !asleep.acquire_timeout(GENEROUS) {
        let _ = outer.kill();
        panic!(
            "exit code {:?}: a child failed (see its stderr)",
            outer.join()
        );
    }
    // The inner child is (or is about to be) asleep in `acquire`: kill the holder.
    holder.0.kill().unwrap();
    assert_eq!(outer.join().unwrap(), 0, "a child failed (see its stderr)");
    drop(holder);
}
