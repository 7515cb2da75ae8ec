//! A process pool in the manager's server (`Manager::pool`, CPython's
//! `manager.Pool()`), over real processes: the manager's server, its pool's
//! workers (forked from the server), forked and spawned clients.
//!
//! * work handed over from any process runs on the server's workers, with
//!   the functions registered on the builder;
//! * a task that waits for another client holds no server lock: while it
//!   runs, another process uses the table (a list) and the same pool (the
//!   model's `pool_workload` checks every interleaving; this is the shipped
//!   server doing it);
//! * a panicking function fails its task only; an unknown function and a
//!   wrong argument type are typed errors;
//! * the pool's workers exit when the last proxy to it is dropped.
//!
//! Ordering is by the library's own events, never by sleeping.

use procshare::{Event, Manager, OpError, PoolFn, PoolProxy, Process, StartMethod};
use procshare_tests::quiet;
use std::time::Duration;

const SQUARE: PoolFn<u64, u64> = PoolFn::new("square");
const PID: PoolFn<(), u32> = PoolFn::new("pid");
const ODD_PANICS: PoolFn<u32, u32> = PoolFn::new("odd_panics");
/// Sets `started`, then waits for `gate`: a task that needs another client.
const GATED: PoolFn<(), u8> = PoolFn::new("gated");

fn square(x: u64) -> u64 {
    x * x
}

/// A started child, killed if the test fails before joining it.
struct Child(Process);

impl Child {
    fn start(mut p: Process) -> Child {
        p.start().unwrap();
        Child(p)
    }
    /// Its exit code; a child still running after a minute is a hang (the
    /// bug this file looks for): `unblock` runs (so that the server's
    /// blocked work ends and the test's teardown does not hang too), the
    /// child is killed and the test fails.
    fn join_or(mut self, unblock: impl FnOnce()) -> i32 {
        match self.0.join_timeout(Duration::from_secs(60)).unwrap() {
            Some(code) => code,
            None => {
                unblock();
                panic!("the child hangs: a server lock is held while pool work runs")
            }
        }
    }
    fn join(self) -> i32 {
        self.join_or(|| {})
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.0.exitcode().is_none() {
            let _ = self.0.kill();
            let _ = self.0.join();
        }
    }
}

fn manager(gate: &Event, started: &Event) -> Manager {
    quiet();
    let (gate, started) = (gate.clone(), started.clone());
    Manager::builder()
        .function(SQUARE, square)
        .function(PID, |()| std::process::id())
        .function(ODD_PANICS, |x: u32| {
            assert!(x % 2 == 0, "{x} is odd");
            x
        })
        .function(GATED, move |()| {
            started.set();
            gate.wait();
            1
        })
        .start()
        .unwrap()
}

fn events() -> (Event, Event) {
    (Event::new().unwrap(), Event::new().unwrap())
}

#[test]
fn pool_runs_registered_functions_for_any_process() {
    let (g, s) = events();
    let m = manager(&g, &s);
    let pool = m.pool(2).unwrap();
    assert_eq!(pool.apply(SQUARE, 7).unwrap(), 49);
    let p2 = pool.clone();
    let child = Child::start(Process::new(move || {
        assert_eq!(p2.map(SQUARE, 0..5u64).unwrap(), [0, 1, 4, 9, 16]);
        let r = p2.apply_async(SQUARE, 11).unwrap();
        assert_eq!(r.get().unwrap(), 121);
        assert_eq!(r.get().unwrap(), 121, "get is repeatable");
        assert!(r.ready().unwrap());
    }));
    assert_eq!(child.join(), 0);
    // The work ran in the pool's workers: processes other than the server
    // and this one.
    let worker = pool.apply(PID, ()).unwrap();
    assert_ne!(Some(worker as i32), m.server_pid());
    assert_ne!(worker, std::process::id());
}

fn spawned_child((pool,): (PoolProxy,)) {
    assert_eq!(pool.map(SQUARE, [2u64, 3]).unwrap(), [4, 9]);
}

#[test]
fn pool_proxy_is_an_argument_of_a_spawned_child() {
    let (g, s) = events();
    let m = manager(&g, &s);
    let pool = m.pool(1).unwrap();
    let p = Process::with_target(spawned_child, (pool.clone(),)).start_method(StartMethod::Spawn);
    assert_eq!(Child::start(p).join(), 0);
}

#[test]
fn a_waiting_task_holds_no_server_lock() {
    let (gate, started) = events();
    let m = manager(&gate, &started);
    let pool = m.pool(2).unwrap();
    let list = m.list::<u8>().unwrap();
    let (p2, l2, s2, g2) = (pool.clone(), list.clone(), started.clone(), gate.clone());
    // The child waits until the gated task runs (so this process's request
    // is inside the server: submitted, and waited for from then on), uses
    // the table and the same pool, then opens the gate.
    let child = Child::start(Process::new(move || {
        s2.wait();
        l2.append(1).unwrap();
        assert_eq!(l2.len().unwrap(), 1);
        assert_eq!(p2.apply(SQUARE, 3).unwrap(), 9);
        let r = p2.apply_async(SQUARE, 4).unwrap();
        assert_eq!(r.get().unwrap(), 16);
        g2.set();
    }));
    // This process's request waits in the server (on a thread, so that a
    // hang is seen by the child's bounded join, not waited for forever).
    let waiter = std::thread::spawn(move || pool.apply(GATED, ()).unwrap());
    assert_eq!(child.join_or(|| gate.set()), 0);
    assert_eq!(waiter.join().unwrap(), 1);
    assert_eq!(list.to_vec().unwrap(), [1]);
}

#[test]
fn a_panicking_function_fails_its_task_and_the_pool_goes_on() {
    let (g, s) = events();
    let m = manager(&g, &s);
    let pool = m.pool(1).unwrap();
    let e = pool.apply(ODD_PANICS, 3).unwrap_err();
    assert!(
        matches!(e.op_error(), Some(OpError::MethodFailed { message, .. }) if message.contains("3 is odd")),
        "{e}"
    );
    let r = pool.apply_async(ODD_PANICS, 5).unwrap();
    assert!(matches!(
        r.get().unwrap_err().op_error(),
        Some(OpError::MethodFailed { .. })
    ));
    assert!(pool.map(ODD_PANICS, [2u32, 4, 7]).is_err());
    assert_eq!(pool.apply(ODD_PANICS, 4).unwrap(), 4);
}

#[test]
fn unknown_functions_and_wrong_argument_types_are_typed_errors() {
    let (g, s) = events();
    let m = manager(&g, &s);
    let pool = m.pool(1).unwrap();
    const MISSING: PoolFn<u8, u8> = PoolFn::new("missing");
    let e = pool.apply(MISSING, 1).unwrap_err();
    assert_eq!(
        e.op_error(),
        Some(&OpError::UnknownFunction("missing".into()))
    );
    assert!(pool.apply_async(MISSING, 1).is_err());
    // A client whose declaration of "square" disagrees with the server's.
    const WRONG: PoolFn<String, u64> = PoolFn::new("square");
    let e = pool.apply(WRONG, "x".to_string()).unwrap_err();
    assert!(
        matches!(e.op_error(), Some(OpError::BadArgument { method, .. }) if method == "square"),
        "{e}"
    );
}

/// Does process `pid` exit (or is it gone already) within a generous bound?
/// (A bound that turns "never" into a failure, not a timing assertion.)
fn exits(pid: u32) -> bool {
    // SAFETY: pidfd_open takes a pid and flags; a pid that is gone is ESRCH.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as i32, 0) };
    if fd < 0 {
        return std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
    }
    // SAFETY: a fresh descriptor, owned here only.
    let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) };
    let mut p = libc::pollfd {
        fd: std::os::fd::AsRawFd::as_raw_fd(&fd),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut p, 1, 60_000) == 1 }
}

/// Has process `pid` exited already (gone, or a zombie)?
fn exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // The state follows the parenthesized command name.
        Ok(s) => s
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

#[test]
fn the_pool_stops_with_its_last_proxy() {
    let (g, s) = events();
    let m = manager(&g, &s);
    let pool = m.pool(1).unwrap();
    let worker = pool.apply(PID, ()).unwrap();
    assert!(!exited(worker));
    let p2 = pool.clone();
    drop(pool);
    assert!(!exited(worker), "a proxy is left");
    drop(p2);
    // The server drops the pool (which terminates and joins its workers)
    // once no process holds it. Usually that is this last decref; but a
    // child another test of this binary forked meanwhile was lent a
    // reference to every object this process held (`lend_before_fork`),
    // given back when the server sees that connection end, which may come
    // just after the decref's answer.
    assert!(
        exits(worker),
        "the pool's worker {worker} outlived its last proxy"
    );
    // The manager serves on.
    assert_eq!(m.pool(1).unwrap().apply(SQUARE, 2).unwrap(), 4);
}

#[test]
fn functions_need_a_forked_server() {
    quiet();
    let e = Manager::builder()
        .function(SQUARE, square)
        .start_method(StartMethod::Spawn)
        .start()
        .unwrap_err();
    assert!(e.to_string().contains("square"), "{e}");
}
