//! `Process` over real forked processes: exit codes as Python reports them,
//! join with a timeout, signals, and memory shared both ways.
//!
//! Ordering between processes uses pipes (a child blocks reading one until the
//! parent writes or closes it), never sleeps.

use procshare_tests::quiet;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
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

// ---------------------------------------------------------------------------
// Start-method inheritance, stdin, current/parent process, active children,
// daemons, interrupt, sentinel.

use procshare::{
    active_children, current_process, get_start_method, parent_process, Event, ProcessError, Queue,
    StartMethod,
};

const METHODS: [StartMethod; 3] = [
    StartMethod::Fork,
    StartMethod::Spawn,
    StartMethod::ForkServer,
];

fn report_method((q,): (Queue<String>,)) {
    q.put(&get_start_method().name().to_string()).unwrap();
}

/// A child reports its start method, then starts a grandchild with the
/// default method, which reports its own.
fn report_method_and_grandchild((q,): (Queue<String>,)) {
    report_method((q.clone(),));
    let mut g = Process::with_target(report_method, (q,));
    g.start().unwrap();
    assert_eq!(g.join().unwrap(), 0);
}

#[test]
fn start_method_is_inherited_by_the_child_and_its_children() {
    quiet();
    for m in [StartMethod::Spawn, StartMethod::ForkServer] {
        let q = Queue::new().unwrap();
        let mut p =
            Process::with_target(report_method_and_grandchild, (q.clone(),)).start_method(m);
        p.start().unwrap();
        assert_eq!(p.join().unwrap(), 0);
        let got = [q.get().unwrap(), q.get().unwrap()];
        assert_eq!(got, [m.name(), m.name()], "started by {m}");
    }
}

fn report_stdin((q,): (Queue<String>,)) {
    let link = std::fs::read_link("/proc/self/fd/0")
        .map(|p| p.display().to_string())
        .unwrap_or_else(|e| format!("no stdin: {e}"));
    q.put(&link).unwrap();
}

#[test]
fn children_get_dev_null_as_stdin() {
    quiet();
    let q: Queue<String> = Queue::new().unwrap();
    // A child whose stdin is a pipe starts a grandchild by each method.
    let mut p = Process::new({
        let q = q.clone();
        move || {
            let gate = Gate::new();
            // SAFETY: plain dup2 of a descriptor this process holds.
            assert_eq!(unsafe { libc::dup2(gate.r.as_raw_fd(), 0) }, 0);
            for m in METHODS {
                let mut g = Process::with_target(report_stdin, (q.clone(),)).start_method(m);
                g.start().unwrap();
                assert_eq!(g.join().unwrap(), 0);
            }
        }
    });
    p.start().unwrap();
    assert_eq!(p.join().unwrap(), 0);
    for m in METHODS {
        assert_eq!(
            q.get().unwrap(),
            "/dev/null",
            "stdin of a child started by {m}"
        );
    }
}

fn report_identity((q,): (Queue<String>,)) {
    let me = current_process();
    let parent = parent_process().expect("a child has a parent");
    q.put(&format!(
        "{} {} {} {} {} {}",
        me.name(),
        me.pid() == std::process::id(),
        me.daemon(),
        parent.pid(),
        parent.name(),
        parent.is_alive()
    ))
    .unwrap();
}

#[test]
fn current_and_parent_process_in_children() {
    quiet();
    assert_eq!(current_process().name(), "MainProcess");
    assert!(parent_process().is_none());
    for m in METHODS {
        let q = Queue::new().unwrap();
        let mut p = Process::with_target(report_identity, (q.clone(),))
            .start_method(m)
            .with_name(format!("kid-{m}"))
            .daemon(true);
        p.start().unwrap();
        assert_eq!(p.join().unwrap(), 0);
        assert_eq!(
            q.get().unwrap(),
            format!("kid-{m} true true {} MainProcess true", std::process::id()),
            "started by {m}"
        );
    }
}

fn wait_event((e,): (Event,)) {
    e.wait();
}

fn readable(fd: std::os::fd::BorrowedFd<'_>, timeout_ms: i32) -> bool {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut p, 1, timeout_ms) };
    n == 1
}

#[test]
fn active_children_lists_running_children_and_reaps_finished_ones() {
    quiet();
    for m in METHODS {
        let go = Event::new().unwrap();
        let mut p = Process::with_target(wait_event, (go.clone(),)).start_method(m);
        p.start().unwrap();
        let pid = p.pid().unwrap();
        let listed = active_children();
        let me = listed
            .iter()
            .find(|c| c.pid() == pid)
            .expect("listed while running");
        assert!(me.is_alive());
        assert_eq!(me.name(), p.name());
        // The sentinel is not readable while the child runs...
        assert!(!readable(p.sentinel().unwrap(), 0), "{m}");
        go.set();
        // ... and becomes readable when it exits (-1: no timeout).
        assert!(readable(p.sentinel().unwrap(), -1), "{m}");
        // active_children() reaps it: not listed, and its exit code is known.
        assert!(active_children().iter().all(|c| c.pid() != pid), "{m}");
        if m != StartMethod::ForkServer {
            // SAFETY: plain waitpid; the child was reaped, so: no such child.
            let r = unsafe { libc::waitpid(pid as i32, std::ptr::null_mut(), libc::WNOHANG) };
            assert_eq!(r, -1, "{m}: already reaped by active_children()");
        }
        assert_eq!(p.exitcode(), Some(0), "{m}");
        assert!(!p.is_alive());
    }
}

fn try_grandchild((q,): (Queue<String>,)) {
    let mut g = Process::with_target(report_method, (q.clone(),));
    let r = g.start().map_err(|e| e.to_string());
    q.put(&format!("{r:?}")).unwrap();
}

#[test]
fn daemonic_processes_are_not_allowed_to_have_children() {
    quiet();
    for m in METHODS {
        let q = Queue::new().unwrap();
        let mut p = Process::with_target(try_grandchild, (q.clone(),))
            .start_method(m)
            .daemon(true);
        p.start().unwrap();
        assert_eq!(p.join().unwrap(), 0);
        assert_eq!(
            q.get().unwrap(),
            "Err(\"daemonic processes are not allowed to have children\")",
            "{m}"
        );
    }
    // The error value itself.
    assert_eq!(
        ProcessError::DaemonChildren.to_string(),
        "daemonic processes are not allowed to have children"
    );
}

fn start_daemon_and_leave((q, go, hold): (Queue<u32>, Event, Event)) {
    let mut d = Process::with_target(wait_event, (hold,)).daemon(true);
    d.start().unwrap();
    q.put(&d.pid().unwrap()).unwrap();
    go.wait();
    // Returns without joining: the daemonic child must be terminated.
}

#[test]
fn a_daemonic_child_is_terminated_when_its_parent_exits() {
    quiet();
    for m in METHODS {
        let (q, go, hold) = (
            Queue::new().unwrap(),
            Event::new().unwrap(),
            Event::new().unwrap(),
        );
        let mut p = Process::with_target(start_daemon_and_leave, (q.clone(), go.clone(), hold))
            .start_method(m);
        p.start().unwrap();
        let pid = q.get().unwrap();
        // SAFETY: pidfd_open of the daemon, still alive (its parent waits on `go`).
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as i32, 0) };
        assert!(fd >= 0, "pidfd_open: {}", std::io::Error::last_os_error());
        // SAFETY: a fresh descriptor owned here only.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        go.set();
        assert_eq!(p.join().unwrap(), 0);
        // The daemon never returns by itself (`hold` is never set): it is gone
        // only if its parent terminated it. A generous bound, not a timing
        // assertion: it turns a bug into a failure instead of a hang.
        assert!(
            readable(fd.as_fd(), 60_000),
            "{m}: the daemon outlived its parent"
        );
    }
}

/// Whether this process ignores SIGINT (a job started with `&` by a shell
/// without job control does): its children inherit that, as CPython's do.
fn sigint_ignored() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let mask = status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .map(|h| u64::from_str_radix(h.trim(), 16).unwrap())
        .unwrap();
    mask & (1 << (2 - 1)) != 0
}

#[test]
fn interrupt_is_sigint() {
    quiet();
    let ignored = sigint_ignored();
    for m in METHODS {
        let go = Event::new().unwrap();
        let mut p = Process::with_target(wait_event, (go.clone(),)).start_method(m);
        assert!(matches!(p.interrupt(), Err(ProcessError::NotStarted(_))));
        p.start().unwrap();
        p.interrupt().unwrap();
        if ignored {
            // The child inherited SIG_IGN: the interrupt is ignored, as under
            // CPython; it ends normally once released (no hang).
            go.set();
            assert_eq!(p.join().unwrap(), 0, "{m} (SIGINT ignored)");
        } else {
            assert_eq!(p.join().unwrap(), -2, "{m}");
        }
        p.interrupt().unwrap(); // exited: a no-op, as terminate()
    }
}
