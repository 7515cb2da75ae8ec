//! The history recorder: every process writes its operations into its own
//! region of one shared-memory log (a [`RawArray<u64>`]), which survives the
//! process's `kill -9`.
//!
//! Region of process `p`: word 0 is the number of published records; record
//! `i` is [`WORDS`] words: invocation time, `kind | key << 32`, argument,
//! response time (0 until the response is written), result. The invocation
//! is written, then published (count incremented), then the operation runs;
//! the result is written, then its time (non-zero) last. A process killed in
//! between leaves a published record with no response time: an
//! indeterminate operation. The log is read only after every writer has
//! exited, so plain writes suffice.

use procshare::{RawArray, Semaphore};

use super::checker::Op;

/// Words per record.
pub const WORDS: usize = 5;

/// CLOCK_MONOTONIC in nanoseconds (one clock for every process on the
/// machine, unlike `Instant`'s opaque values), never 0.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_MONOTONIC) failed");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64 + 1
}

/// The shared log of a test: `procs` regions of `cap` records each.
#[derive(Clone, Debug)]
pub struct Log {
    words: RawArray<u64>,
    procs: usize,
    cap: usize,
}

/// Where and when a process is killed (see [`Writer`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kill {
    /// It runs to the end.
    Never,
    /// It kills itself (SIGKILL) right after publishing the invocation of
    /// operation `n`, before running it.
    BeforeOp(usize),
    /// It kills itself after operation `n` took effect, before its response
    /// is recorded.
    AfterOp(usize),
    /// It tells the parent (through a semaphore) when it invokes operation
    /// `n`, and goes on; the parent kills it with `kill -9`, wherever it is.
    ByParent(usize),
}

impl Log {
    /// A zeroed log in shared memory.
    pub fn new(procs: usize, cap: usize) -> Log {
        let words = RawArray::zeroed(procs * (1 + cap * WORDS)).expect("history log");
        Log { words, procs, cap }
    }

    fn base(&self, proc: usize) -> usize {
        proc * (1 + self.cap * WORDS)
    }

    /// The writer for process `proc`.
    pub fn writer(&self, proc: usize, kill: Kill, reached: Semaphore) -> Writer {
        assert!(proc < self.procs);
        Writer {
            log: self.clone(),
            proc,
            n: 0,
            kill,
            reached,
        }
    }

    /// Every published operation (call after every writer has exited).
    pub fn history(&self) -> Vec<Op> {
        let mut out = Vec::new();
        for p in 0..self.procs {
            let base = self.base(p);
            let count = self.words.get(base).unwrap() as usize;
            assert!(count <= self.cap, "corrupt log count {count}");
            for i in 0..count {
                let r = base + 1 + i * WORDS;
                let w = |k| self.words.get(r + k).unwrap();
                let ret_ns = w(3);
                out.push(Op {
                    proc: p as u32,
                    kind: w(1) as u32,
                    key: (w(1) >> 32) as u32,
                    arg: w(2) as i64,
                    call: w(0),
                    ret: (ret_ns != 0).then(|| (ret_ns, w(4) as i64)),
                });
            }
        }
        out
    }
}

/// One process's end of the log.
#[derive(Debug)]
pub struct Writer {
    log: Log,
    proc: usize,
    n: usize,
    kill: Kill,
    reached: Semaphore,
}

fn kill_self() -> ! {
    // SAFETY: plain syscalls on our own pid; SIGKILL cannot be caught.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
        libc::_exit(99)
    }
}

impl Writer {
    /// Records the invocation, runs `f`, records its result.
    pub fn call(&mut self, key: u32, kind: u32, arg: i64, f: impl FnOnce() -> i64) -> i64 {
        let i = self.n;
        assert!(i < self.log.cap, "history log full");
        let base = self.log.base(self.proc);
        let r = base + 1 + i * WORDS;
        let words = &self.log.words;
        words.set(r, now_ns()).unwrap();
        words.set(r + 1, kind as u64 | (key as u64) << 32).unwrap();
        words.set(r + 2, arg as u64).unwrap();
        words.set(r + 3, 0).unwrap();
        words.set(base, (i + 1) as u64).unwrap(); // published
        self.n += 1;
        match self.kill {
            Kill::BeforeOp(n) if n == i => kill_self(),
            Kill::ByParent(n) if n == i => self.reached.release().unwrap(),
            _ => {}
        }
        let ret = f();
        if self.kill == Kill::AfterOp(i) {
            kill_self();
        }
        let t = now_ns();
        words.set(r + 4, ret as u64).unwrap();
        words.set(r + 3, t).unwrap();
        ret
    }

    /// Operations recorded so far.
    pub fn count(&self) -> usize {
        self.n
    }
}
