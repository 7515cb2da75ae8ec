//! A pool task to be killed with `kill -9` while it runs, ordered by the
//! library's own primitives, never by sleeping: the victim puts its pid on a
//! `SimpleQueue` and then waits on an `Event` that nobody sets (both in shared
//! memory, given to the workers through `initargs`); the test takes the pid
//! from the queue and kills that process.
//!
//! ```text
//! let pool = Pool::builder().initializer(victim::init, victim::channel()).build()?;
//! // in the task: `if x == VICTIM { victim::report_and_wait() }`
//! let pid = victim::killed(&pool_channel)?;
//! ```

use std::sync::OnceLock;

use procshare::{Event, SimpleQueue};

/// The pid queue and the never-set event, as the workers' `initargs`.
pub type Channel = (SimpleQueue<u32>, Event);

static SHARED: OnceLock<Channel> = OnceLock::new();

/// A new channel: give a clone to the pool's initializer ([`init`]) and keep
/// one to take the victim's pid ([`kill_reported`]).
pub fn channel() -> Channel {
    (SimpleQueue::new().unwrap(), Event::new().unwrap())
}

/// The workers' initializer: keeps the channel for [`report_and_wait`].
pub fn init(args: Channel) {
    let _ = SHARED.set(args);
}

/// In the victim task: reports this worker's pid and waits for an event that
/// is never set — only `kill -9` ends it.
pub fn report_and_wait() -> ! {
    let (q, ev) = SHARED.get().expect("initializer ran");
    q.put(&std::process::id()).expect("report my pid");
    ev.wait();
    unreachable!("the event is never set");
}

/// Takes the pid a victim reported (waiting for it), kills that process with
/// `SIGKILL` and returns the pid.
pub fn kill_reported(ch: &Channel) -> u32 {
    let pid = ch.0.get().expect("a victim reports its pid");
    // SAFETY: `kill` has no memory-safety preconditions. The pid is that of a
    // live worker blocked in `report_and_wait` (it cannot have exited, so the
    // pid cannot have been reused).
    let rc = unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    assert_eq!(rc, 0, "kill -9 {pid}");
    pid
}

/// Checks a `map`'s per-task results after its victim (task `victim`, in
/// chunks of `chunksize`) was killed with `kill -9` as worker `pid`: exactly
/// the victim's chunk failed with `WorkerDied { pid, exitcode: Some(-9) }`,
/// every other task `i` gave `ok(i)`.
pub fn assert_only_the_victims_chunk_failed<T: PartialEq + std::fmt::Debug>(
    all: &[Result<T, procshare::PoolError>],
    victim: usize,
    chunksize: usize,
    pid: u32,
    ok: impl Fn(usize) -> T,
) {
    let c = victim / chunksize;
    let victim_chunk = c * chunksize..(c + 1) * chunksize;
    for (i, res) in all.iter().enumerate() {
        if victim_chunk.contains(&i) {
            assert_eq!(
                *res,
                Err(procshare::PoolError::WorkerDied {
                    pid,
                    exitcode: Some(-9)
                }),
                "task {i}"
            );
        } else {
            assert_eq!(*res, Ok(ok(i)), "task {i}");
        }
    }
}
