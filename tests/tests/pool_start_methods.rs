//! A `Pool` whose workers are started by spawn or forkserver (CPython's
//! `get_context("spawn").Pool(...)`): map/apply/imap, an initializer whose
//! arguments cross the exec (`spawn_initializer`), a worker killed with
//! `kill -9` (its chunk fails, a spawned replacement takes over) and
//! replacements after `maxtasksperchild`, all started by the pool's method.
//!
//! Each worker reports the start method it was started by
//! (`get_start_method()` is inherited by spawn and forkserver children, and is
//! `fork` in a forked one): a pool that silently forked would fail here.
//!
//! Ordering is by the library's own primitives, never by sleeping (the
//! victim puts its pid on a `SimpleQueue` and waits on an `Event` nobody sets).

use std::sync::OnceLock;

use procshare::{get_start_method, Event, Pool, PoolError, SimpleQueue, StartMethod};
use procshare_tests::victim;

/// What a worker was started by, and its pid.
fn whoami(x: u32) -> (String, u32, u32) {
    (
        format!("{:?}", get_start_method()),
        std::process::id(),
        x * 2,
    )
}

fn square(x: u64) -> u64 {
    x * x
}

fn pool(m: StartMethod, n: usize) -> Pool {
    Pool::builder()
        .processes(n)
        .start_method(m)
        .build()
        .expect("a pool under this start method")
}

fn map_apply_imap(m: StartMethod) {
    let p = pool(m, 2);
    let want = format!("{m:?}");
    let r = p.map(whoami, 0..20).unwrap();
    for (i, (method, pid, v)) in r.iter().enumerate() {
        assert_eq!(
            *method, want,
            "task {i} ran in a worker started by {method}"
        );
        assert_eq!(*v, 2 * i as u32);
        assert!(p.worker_pids().contains(pid));
    }
    assert_eq!(p.apply(square, 7).unwrap(), 49);
    assert_eq!(p.apply_async(square, 8).unwrap().get().unwrap(), 64);
    let got: Vec<u64> = p
        .imap(square, 0..50u64, Some(3))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(got, (0..50u64).map(|x| x * x).collect::<Vec<_>>());
    let mut un: Vec<u64> = p
        .imap_unordered(square, 0..30u64, None)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    un.sort_unstable();
    assert_eq!(un, (0..30u64).map(|x| x * x).collect::<Vec<_>>());
    p.close().unwrap();
    p.join().unwrap();
}

#[test]
fn test_map_apply_imap_spawn() {
    map_apply_imap(StartMethod::Spawn);
}

#[test]
fn test_map_apply_imap_forkserver() {
    map_apply_imap(StartMethod::ForkServer);
}

// --- Per-worker globals set by an initializer whose arguments cross the exec
// (seed 001's pattern: the initializer stores a shared queue as a global).

static GLOBAL: OnceLock<(SimpleQueue<(u32, u32)>, u32)> = OnceLock::new();

fn init_global(args: (SimpleQueue<(u32, u32)>, u32)) {
    let _ = GLOBAL.set(args);
}

fn put_on_global(x: u32) {
    let (q, base) = GLOBAL.get().expect("the initializer ran before the task");
    q.put(&(x, base + x)).expect("put on the shared queue");
}

fn initializer_globals(m: StartMethod) {
    let q = SimpleQueue::new().unwrap();
    let p = Pool::builder()
        .processes(2)
        .start_method(m)
        .spawn_initializer(init_global, (q.clone(), 1000))
        .build()
        .unwrap();
    let r = p.map_async(put_on_global, 0..10, None).unwrap();
    let mut got: Vec<(u32, u32)> = (0..10).map(|_| q.get().unwrap()).collect();
    got.sort_unstable();
    assert_eq!(got, (0..10).map(|x| (x, 1000 + x)).collect::<Vec<_>>());
    r.get().unwrap();
    p.close().unwrap();
    p.join().unwrap();
}

#[test]
fn test_initializer_globals_spawn() {
    initializer_globals(StartMethod::Spawn);
}

#[test]
fn test_initializer_globals_forkserver() {
    initializer_globals(StartMethod::ForkServer);
}

#[test]
fn test_initializer_globals_fork_via_spawn_initializer() {
    std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    initializer_globals(StartMethod::Fork);
}

/// An initializer given as a closure cannot cross an exec: refused, not forked.
#[test]
fn test_closure_initializer_refused_under_spawn() {
    fn init(_: u8) {}
    for m in [StartMethod::Spawn, StartMethod::ForkServer] {
        let r = Pool::builder()
            .processes(1)
            .start_method(m)
            .initializer(init, 0)
            .build();
        assert!(
            matches!(r, Err(PoolError::UnsupportedStartMethod(x)) if x == m),
            "{m:?}: {:?}",
            r.err()
        );
    }
}

// --- A worker killed with kill -9 under spawn.

const VICTIM: u32 = 13;

fn victim_task(x: u32) -> (u32, String) {
    if x == VICTIM {
        victim::report_and_wait();
    }
    (x * 10, format!("{:?}", get_start_method()))
}

fn killed_worker(m: StartMethod) {
    let chunksize = 4;
    let ch = victim::channel();
    let p = Pool::builder()
        .processes(2)
        .start_method(m)
        .spawn_initializer(victim::init, ch.clone())
        .build()
        .unwrap();
    let before = p.worker_pids();
    let r = p.map_async(victim_task, 0..40, Some(chunksize)).unwrap();
    let pid = victim::kill_reported(&ch);
    assert!(
        before.contains(&pid),
        "the victim is one of the pool's workers"
    );
    let all = r.get_all().expect("the map returns");
    victim::assert_only_the_victims_chunk_failed(&all, VICTIM as usize, chunksize, pid, |i| {
        (i as u32 * 10, format!("{m:?}"))
    });
    // Replaced, by the same start method, with the initializer run again:
    // every task of a new map runs (each needs the initializer's globals).
    let again = p.map(victim_task, 0..10).unwrap();
    assert_eq!(
        again,
        (0..10)
            .map(|x| (x * 10, format!("{m:?}")))
            .collect::<Vec<_>>()
    );
    let after = p.worker_pids();
    assert!(
        !after.contains(&pid),
        "the killed worker is gone: {after:?}"
    );
    p.close().unwrap();
    p.join().unwrap();
}

#[test]
fn test_killed_worker_spawn() {
    killed_worker(StartMethod::Spawn);
}

#[test]
fn test_killed_worker_forkserver() {
    killed_worker(StartMethod::ForkServer);
}

/// `maxtasksperchild`: the replacements are started by the pool's method too.
#[test]
fn test_maxtasksperchild_spawn() {
    let p = Pool::builder()
        .processes(2)
        .maxtasksperchild(2)
        .start_method(StartMethod::Spawn)
        .build()
        .unwrap();
    let r = p.map_async(whoami, 0..20, Some(1)).unwrap().get().unwrap();
    let pids: std::collections::HashSet<u32> = r.iter().map(|(_, pid, _)| *pid).collect();
    assert!(pids.len() >= 10, "20 tasks, 2 per worker: {pids:?}");
    for (method, _, _) in &r {
        assert_eq!(method, "Spawn");
    }
    p.close().unwrap();
    p.join().unwrap();
}

// --- The owner killed with kill -9: spawned and forkserver workers exit.

/// A pidfd on `pid` (opened while the process certainly lives).
fn pidfd(pid: u32) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: a plain system call; the returned descriptor is checked and then
    // owned by the `OwnedFd`.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    assert!(
        fd >= 0,
        "pidfd_open({pid}): {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: `fd` is a fresh descriptor owned by nothing else.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) }
}

/// Whether the process behind `fd` exits within `t` (a guard against hanging
/// the suite, not a timing assert: the exit is expected at once).
fn exited_within(fd: &std::os::fd::OwnedFd, t: std::time::Duration) -> bool {
    use std::os::fd::AsRawFd;
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
    }
}

/// SIGKILLs the process of its pidfd when dropped (also after a failed assert).
struct KillOnDrop(std::os::fd::OwnedFd);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        // SAFETY: a plain system call on a pidfd we own (never a reused pid).
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.0.as_raw_fd(),
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
    }
}

fn double(x: u32) -> u32 {
    2 * x
}

fn owner_killed(m: StartMethod) {
    procshare_tests::quiet();
    let q: SimpleQueue<u32> = SimpleQueue::new().unwrap();
    let never = Event::new().unwrap();
    let (q2, never2) = (q.clone(), never.clone());
    let mut owner = procshare::Process::new(move || {
        let pool = Pool::builder()
            .processes(2)
            .start_method(m)
            .build()
            .unwrap();
        assert_eq!(pool.map(double, 0..4).unwrap(), [0, 2, 4, 6]);
        // A holder of the pool's end of every worker's socket that outlives
        // the owner: a raw `clone` (no fork handlers run, so the pool's
        // descriptors are not closed in it). The workers then get no end of
        // file when the owner dies: only their watch of the owner ends them.
        // SAFETY: a fork by raw system call; the child only calls `pause`
        // (async-signal-safe) until it is killed.
        let holder = unsafe { libc::syscall(libc::SYS_clone, libc::SIGCHLD, 0, 0, 0, 0) };
        if holder == 0 {
            loop {
                // SAFETY: async-signal-safe; ends only by a signal.
                unsafe { libc::pause() };
            }
        }
        assert!(holder > 0, "clone: {}", std::io::Error::last_os_error());
        q2.put(&(holder as u32)).unwrap();
        for p in pool.worker_pids() {
            q2.put(&p).unwrap();
        }
        // Only kill -9 ends this.
        never2.wait();
    });
    owner.start().unwrap();
    let holder = pidfd(q.get().unwrap());
    let workers: Vec<u32> = (0..2).map(|_| q.get().unwrap()).collect();
    let fds: Vec<_> = workers.iter().map(|&p| pidfd(p)).collect();
    let _holder = KillOnDrop(holder);
    owner.kill().unwrap();
    assert_eq!(owner.join().unwrap(), -9);
    for (fd, pid) in fds.iter().zip(&workers) {
        let gone = exited_within(fd, std::time::Duration::from_secs(30));
        if !gone {
            // Leave nothing behind before failing.
            drop(KillOnDrop(pidfd(*pid)));
        }
        assert!(gone, "{m:?} pool worker {pid} outlived its killed owner");
    }
}

#[test]
fn test_owner_killed_spawn() {
    owner_killed(StartMethod::Spawn);
}

#[test]
fn test_owner_killed_forkserver() {
    owner_killed(StartMethod::ForkServer);
}

/// An initializer that panics in a spawned worker fails `build`, as under fork.
#[test]
fn test_initializer_panics_spawn() {
    procshare_tests::quiet();
    fn bad_init((msg,): (String,)) {
        panic!("{msg}");
    }
    for m in [StartMethod::Spawn, StartMethod::ForkServer] {
        let r = Pool::builder()
            .processes(1)
            .start_method(m)
            .spawn_initializer(bad_init, ("no globals today".to_string(),))
            .build();
        match r {
            Err(PoolError::InitializerFailed(msg)) => {
                assert!(msg.contains("no globals today"), "{m:?}: {msg}")
            }
            other => panic!("{m:?}: {:?}", other.err()),
        }
    }
}

/// A task that panics in a spawned worker is that task's error; the worker goes on.
#[test]
fn test_task_panics_spawn() {
    fn boom(x: u32) -> u32 {
        if x == 3 {
            panic!("task {x} failed");
        }
        x
    }
    let p = pool(StartMethod::Spawn, 1);
    let before = p.worker_pids();
    assert_eq!(
        p.apply(boom, 3),
        Err(PoolError::TaskPanicked("task 3 failed".into()))
    );
    assert_eq!(p.apply(boom, 4), Ok(4));
    assert_eq!(p.worker_pids(), before);
}
