//! `Process` over real forked processes: exit codes as Python reports them,
//! join with a timeout, signals, and memory shared both ways.
//!
//! Ordering between processes uses pipes (a child blocks reading one until the
//! parent writes or closes it), never sleeps.

use procshare_tests::quiet;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use procshare::internals::ShmBox;
use procshare::Process;

/// A pipe: the child blocks in `wait()` until the parent calls `release()`.
struct Gate {
    r: OwnedFd,
    w: Option<OwnedFd>,
}

impl Gate {
    fn new() -> Gate {
        let mut fds = [0; 2];
        // SAFETY: fds is a valid 2-int array.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: fresh fds owned by nobody else.
        unsafe {
            Gate {
                r: OwnedFd::from_raw_fd(fds[0]),
                w: Some(OwnedFd::from_raw_fd(fds[1])),
            }
        }
    }
    fn release(&mut self) {
        if let Some(w) = &self.w {
            // SAFETY: valid buffer and fd.
            unsafe { libc::write(w.as_raw_fd(), b"x".as_ptr().cast(), 1) };
        }
    }
}

#[test]
fn exit_code_zero() {
    quiet();
    let mut p = Process::new(|| {});
    assert_eq!(p.exitcode(), None);
    assert!(!p.is_alive());
    p.start().unwrap();
    assert!(p.pid().is_some());
    assert_eq!(p.join().unwrap(), 0);
    assert_eq!(p.exitcode(), Some(0));
    assert!(!p.is_alive());
}

#[test]
fn panic_is_exit_code_one() {
    quiet();
    let mut p = Process::new(|| panic!("intentional panic in a child"));
    p.start().unwrap();
    assert_eq!(p.join().unwrap(), 1);
}

#[test]
fn explicit_exit_code() {
    quiet();
    // SAFETY: _exit in the child only.
    let mut p = Process::new(|| unsafe { libc::_exit(7) });
    p.start().unwrap();
    assert_eq!(p.join().unwrap(), 7);
}

#[test]
fn kill_is_minus_nine_and_terminate_minus_fifteen() {
    quiet();
    for (sig, expect) in [("kill", -9), ("terminate", -15)] {
        let gate = Gate::new();
        let g = gate.r.as_raw_fd();
        let mut p = Process::new(move || {
            let mut b = [0u8; 1];
            // Blocks forever: the parent never writes (it keeps the write end open).
            // SAFETY: valid fd and buffer.
            unsafe { libc::read(g, b.as_mut_ptr().cast(), 1) };
        });
        p.start().unwrap();
        assert!(p.is_alive());
        match sig {
            "kill" => p.kill().unwrap(),
            _ => p.terminate().unwrap(),
        }
        assert_eq!(p.join().unwrap(), expect, "{sig}");
        assert!(!p.is_alive());
        // Signalling an exited process is a no-op, as in Python.
        p.kill().unwrap();
        drop(gate);
    }
}

#[test]
fn join_timeout_on_blocked_child() {
    quiet();
    let mut gate = Gate::new();
    let r = gate.r.as_raw_fd();
    let mut p = Process::new(move || {
        let mut b = [0u8; 1];
        // SAFETY: valid fd and buffer.
        unsafe { libc::read(r, b.as_mut_ptr().cast(), 1) };
    })
    .with_name("blocked");
    p.start().unwrap();
    assert_eq!(p.name(), "blocked");
    // The child cannot exit before the gate opens: join_timeout must time out.
    assert_eq!(p.join_timeout(Duration::from_millis(30)).unwrap(), None);
    assert!(p.is_alive());
    gate.release();
    assert_eq!(p.join_timeout(Duration::from_secs(60)).unwrap(), Some(0));
    assert_eq!(p.exitcode(), Some(0));
}

#[test]
fn errors_before_start_and_twice() {
    quiet();
    let mut p = Process::new(|| {});
    assert!(matches!(
        p.join(),
        Err(procshare::ProcessError::NotStarted(_))
    ));
    assert!(p.kill().is_err());
    p.start().unwrap();
    assert!(matches!(
        p.start(),
        Err(procshare::ProcessError::AlreadyStarted)
    ));
    assert_eq!(p.join().unwrap(), 0);
}

#[test]
fn child_sees_parent_writes_and_vice_versa() {
    quiet();
    let cell = ShmBox::new(AtomicU64::new(0)).unwrap();
    cell.store(41, Ordering::SeqCst);
    let c = cell.clone();
    let mut p = Process::new(move || {
        // Exit code 1 (a panic) if the child did not see the parent's write.
        assert_eq!(c.load(Ordering::SeqCst), 41);
        c.store(42, Ordering::SeqCst);
    });
    p.start().unwrap();
    assert_eq!(p.join().unwrap(), 0);
    assert_eq!(cell.load(Ordering::SeqCst), 42);
}

#[test]
fn child_allocations_do_not_alias_parent_blocks() {
    quiet();
    // A freed block in the parent's arena: a child allocating must not get it.
    let keep = ShmBox::new(AtomicU64::new(7)).unwrap();
    let freed = ShmBox::new(AtomicU64::new(0)).unwrap();
    let freed_addr = freed.as_ptr() as usize;
    drop(freed);
    let k = keep.clone();
    let mut p = Process::new(move || {
        let mine: Vec<_> = (0..64)
            .map(|_| ShmBox::new(AtomicU64::new(0xbad)).unwrap())
            .collect();
        assert!(mine.iter().all(|b| b.as_ptr() as usize != freed_addr));
        assert_eq!(k.load(Ordering::SeqCst), 7);
        std::mem::forget(mine);
    });
    p.start().unwrap();
    assert_eq!(p.join().unwrap(), 0);
    assert_eq!(keep.load(Ordering::SeqCst), 7);
}

#[test]
fn many_children_in_parallel() {
    quiet();
    let counter = ShmBox::new(AtomicU64::new(0)).unwrap();
    let mut ps: Vec<_> = (0..8)
        .map(|i| {
            let c = counter.clone();
            Process::new(move || {
                c.fetch_add(1 << i, Ordering::SeqCst);
            })
        })
        .collect();
    for p in &mut ps {
        p.start().unwrap();
    }
    for p in &mut ps {
        assert_eq!(p.join().unwrap(), 0);
    }
    assert_eq!(counter.load(Ordering::SeqCst), 0xff);
}

#[test]
fn cpu_count_is_positive() {
    assert!(procshare::cpu_count() >= 1);
}
