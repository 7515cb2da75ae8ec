//! A pool's workers exit when the pool's owner dies by `kill -9`, even when
//! another child of the owner (forked after the pool, so holding copies of the
//! pool's sockets) lives on. Before the workers watched their owner, they
//! waited forever for an end of file that the other child's copies prevented.
//!
//! No sleeps: the owner reports the pids through a `SimpleQueue` once the
//! pool and the other child run; the test opens a pidfd on each worker before
//! the kill and waits, with a generous bound, for each to become readable
//! (the process exited).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use procshare::{Event, Pool, Process, SimpleQueue};

/// The bound for "the worker exits": far more than needed, only a guard
/// against hanging the suite when it does not.
const GENEROUS: Duration = Duration::from_secs(30);

fn pidfd(pid: u32) -> OwnedFd {
    // SAFETY: a plain system call; the returned descriptor is checked and then
    // owned by the `OwnedFd`.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    assert!(
        fd >= 0,
        "pidfd_open({pid}): {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: `fd` is a fresh descriptor owned by nothing else.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

/// Waits at most `t` for the process behind `fd` to exit; whether it did.
fn exited_within(fd: &OwnedFd, t: Duration) -> bool {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let deadline = std::time::Instant::now() + t;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        // SAFETY: one valid pollfd, for the duration of the call.
        let rc = unsafe { libc::poll(&mut p, 1, left.as_millis().min(i32::MAX as u128) as i32) };
        if rc > 0 {
            return true;
        }
        if rc == 0 || left.is_zero() {
            return false;
        }
        // EINTR: wait again for the rest of the time.
    }
}

/// SIGKILLs the processes of its pidfds when dropped (also when an assertion
/// failed): the test leaves no process behind.
struct KillOnDrop(Vec<OwnedFd>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for fd in &self.0 {
            // SAFETY: a plain system call on a pidfd we own (an exited process
            // is an error we ignore; a pidfd never names a reused pid).
            unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    fd.as_raw_fd(),
                    libc::SIGKILL,
                    std::ptr::null::<libc::siginfo_t>(),
                    0,
                )
            };
        }
    }
}

fn double(x: u32) -> u32 {
    2 * x
}

#[test]
fn workers_exit_when_owner_killed_after_forking_another_child() {
    procshare_tests::quiet();
    let q: SimpleQueue<u32> = SimpleQueue::new().unwrap();
    let never = Event::new().unwrap();
    let (q2, never2) = (q.clone(), never.clone());
    let mut owner = Process::new(move || {
        let pool = Pool::new(2).unwrap();
        assert_eq!(pool.map(double, 0..8).unwrap(), [0, 2, 4, 6, 8, 10, 12, 14]);
        // Another long-lived child: it inherits the pool's descriptors.
        let never3 = never2.clone();
        let mut other = Process::new(move || never3.wait());
        other.start().unwrap();
        let pids = pool.worker_pids();
        q2.put(&(pids.len() as u32)).unwrap();
        for p in pids {
            q2.put(&p).unwrap();
        }
        q2.put(&other.pid().unwrap()).unwrap();
        // Only kill -9 ends this.
        never2.wait();
    });
    owner.start().unwrap();
    let n = q.get().unwrap();
    assert_eq!(n, 2);
    let workers: Vec<u32> = (0..n).map(|_| q.get().unwrap()).collect();
    let other = q.get().unwrap();
    // The pidfds are opened while the workers certainly live (the owner waits
    // and has not been killed yet): no pid reuse can fool the check.
    let fds: Vec<OwnedFd> = workers.iter().map(|&p| pidfd(p)).collect();
    let _cleanup = KillOnDrop(workers.iter().chain([&other]).map(|&p| pidfd(p)).collect());
    owner.kill().unwrap();
    assert_eq!(owner.join().unwrap(), -9);
    for (fd, pid) in fds.iter().zip(&workers) {
        assert!(
            exited_within(fd, GENEROUS),
            "pool worker {pid} still runs {GENEROUS:?} after its owner was killed"
        );
    }
}

/// This process's open descriptors: (number, what it is, e.g. `socket:[123]`).
fn open_fds() -> std::collections::BTreeSet<(i32, String)> {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            let n: i32 = e.file_name().to_str()?.parse().ok()?;
            let target = std::fs::read_link(e.path()).ok()?;
            Some((n, target.to_string_lossy().into_owned()))
        })
        .collect()
}

#[test]
fn children_forked_after_the_pool_do_not_hold_its_descriptors() {
    procshare_tests::quiet();
    // In a child of its own, so that no other test's descriptors mix in.
    let mut owner = Process::new(|| {
        let before = open_fds();
        let pool = Pool::new(2).unwrap();
        assert_eq!(pool.apply(double, 4), Ok(8));
        // The pool's sockets (one per worker) and its eventfd. (Each worker's
        // `Process` also holds a pidfd of its own, close-on-exec; a pidfd
        // keeps no worker alive, and those belong to the `Process` objects.)
        let pool_fds: Vec<(i32, String)> = open_fds()
            .difference(&before)
            .filter(|(_, what)| what.starts_with("socket:") || what.contains("eventfd"))
            .cloned()
            .collect();
        assert_eq!(pool_fds.len(), 3, "{pool_fds:?}");
        // A procshare child, and a plain fork of the program.
        let fds = pool_fds.clone();
        let mut other = Process::new(move || {
            let now = open_fds();
            let kept: Vec<_> = fds.iter().filter(|f| now.contains(f)).collect();
            assert!(kept.is_empty(), "the child holds pool descriptors {kept:?}");
        });
        other.start().unwrap();
        assert_eq!(other.join().unwrap(), 0, "procshare child");
        // SAFETY: the child only reads /proc and calls `_exit`.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let now = open_fds();
            let code = i32::from(pool_fds.iter().any(|f| now.contains(f)));
            // SAFETY: ends the forked child at once.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waits for the child just forked.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "a plain fork holds pool descriptors"
        );
        // The pool still works (its own descriptors are untouched here).
        assert_eq!(pool.map(double, 0..4), Ok(vec![0, 2, 4, 6]));
    });
    owner.start().unwrap();
    assert_eq!(owner.join().unwrap(), 0);
}
