//! Process start+join: procshare's `Process` under a start method, and the
//! floor, a raw `fork`/`_exit`/`waitpid`.

use std::time::{Duration, Instant};

use procshare::{Process, StartMethod, Value};

fn work(v: (Value<u64>,)) {
    *v.0.lock().unwrap() += 1;
}

/// Appends to `out` the durations of `runs` start+join, under `m`, of a child
/// that increments a shared `Value`.
pub(crate) fn procshare(m: StartMethod, runs: usize, out: &mut Vec<Duration>) {
    starts(m, runs, out, || {});
}

/// `runs` start+join as [`procshare`], each followed by `after()`.
fn starts(m: StartMethod, runs: usize, out: &mut Vec<Duration>, mut after: impl FnMut()) {
    let v = Value::new(0u64).unwrap();
    for _ in 0..runs {
        let t = Instant::now();
        let mut p = Process::with_target(work, (v.clone(),)).start_method(m);
        p.start().unwrap();
        assert_eq!(p.join().unwrap(), 0);
        out.push(t.elapsed());
        after();
    }
    assert_eq!(v.get(), runs as u64);
}

/// Appends to `out` the durations of `runs` raw `fork`, `_exit(0)` in the
/// child, `waitpid` in the parent.
pub(crate) fn raw_fork(runs: usize, out: &mut Vec<Duration>) {
    for _ in 0..runs {
        let t = Instant::now();
        // SAFETY: the child only calls `_exit`.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            // SAFETY: ends the child at once.
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        // SAFETY: waits for our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert_eq!(status, 0);
        out.push(t.elapsed());
    }
}

/// `runs` pairs of a start+join under `m` (as [`procshare`]) and a raw
/// fork (as [`raw_fork`]), one of each in turn, appended to `ours` and
/// `raw`: each pair meets the same process (its size sets what a `fork`
/// costs: page tables to copy, pages to copy on write) and the same moment
/// of a busy VM. Measured in blocks of 200 instead, the ratio swung from
/// 1.05 to 1.5 between runs of the table.
pub(crate) fn interleaved(
    m: StartMethod,
    runs: usize,
    ours: &mut Vec<Duration>,
    raw: &mut Vec<Duration>,
) {
    starts(m, runs, ours, || raw_fork(1, raw));
}

/// Minor page faults so far: (this process, its reaped children).
pub(crate) fn faults() -> (i64, i64) {
    let get = |who| {
        // SAFETY: getrusage fills the struct it is given.
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: as above; `who` is RUSAGE_SELF or RUSAGE_CHILDREN.
        assert_eq!(unsafe { libc::getrusage(who, &mut u) }, 0);
        u.ru_minflt
    };
    (get(libc::RUSAGE_SELF), get(libc::RUSAGE_CHILDREN))
}
