//! Coverage-guided search over lock-protocol runs: the body of the
//! `lock_protocol` cargo-fuzz target, and of the `cargo test` that replays its
//! corpus (`tests/tests/fuzz_replay_locks.rs`).
//!
//! The input bytes choose the protocol (the mutex, the recursive lock or a
//! bounded semaphore), the model threads, each thread's operations (acquire,
//! try, timed acquire, release, recursive acquire, die while holding) and
//! crash step, and — through [`ByteScheduler`], a shuttle
//! [`Scheduler`] — every scheduling decision of
//! the run. The run checks the properties the model checks check: mutual
//! exclusion, release only by the owner (recursive lock), the recursion depth,
//! permits held at once never above the semaphore's value nor its value above
//! its bound, recovery after a holder's death, and (shuttle's deadlock
//! detection) no lost wake-up. A broken property panics, which is what the
//! fuzzer reports.
//!
//! # Input format
//!
//! ```text
//! byte 0        protocol: % 3 = 0 mutex, 1 recursive lock, 2 bounded semaphore
//! byte 1        threads: 2 + b % 3; semaphore permits: 1 + (b / 3) % 3
//! per thread    crash byte (0: none, else dies at crash step 1 + b % 16;
//!               never for the semaphore), op count (1 + b % 8), one byte per op
//!               (b % 6: 0 acquire, 1 try, 2 timed, 3 release, 4 recursive
//!               acquire, 5 die now)
//! rest          the schedule: each decision picks runnable task b % n; once
//!               the bytes run out, the current task keeps running
//! ```
//!
//! Missing bytes read as 0, so every input is valid.
//!
//! ```
//! // Two threads contending for the recursive lock, one of them dying inside.
//! procshare_model::fuzzing::lock_protocol(&[1, 0, 3, 3, 0, 4, 5, 0, 2, 0, 3, 1, 0, 1, 1]);
//! ```

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::Arc;

use shuttle::scheduler::{Schedule, Scheduler, Task, TaskId};

use crate::mutex::{Acquired, RawMutex};
use crate::platform::Thread;
use crate::rlock::RawRLock;
use crate::semaphore::RawSemaphore;
use crate::shuttle_platform::{run, world, ModelThread, Shuttle};

/// A shuttle scheduler whose every decision is read from bytes.
#[derive(Debug, Clone)]
pub struct ByteScheduler {
    bytes: Vec<u8>,
    pos: usize,
    started: bool,
}

impl ByteScheduler {
    /// A scheduler for one execution, driven by `bytes`.
    pub fn new(bytes: &[u8]) -> Self {
        ByteScheduler {
            bytes: bytes.to_vec(),
            pos: 0,
            started: false,
        }
    }

    fn next_byte(&mut self) -> Option<u8> {
        let b = self.bytes.get(self.pos).copied();
        self.pos += 1;
        b
    }
}

impl Scheduler for ByteScheduler {
    fn new_execution(&mut self) -> Option<Schedule> {
        if self.started {
            return None;
        }
        self.started = true;
        Some(Schedule::new(0))
    }

    fn next_task(
        &mut self,
        runnable: &[&Task],
        current: Option<TaskId>,
        is_yielding: bool,
    ) -> Option<TaskId> {
        match self.next_byte() {
            Some(b) => Some(runnable[b as usize % runnable.len()].id()),
            None => {
                // Out of bytes: keep running the current task (fewest switches),
                // unless it yields.
                let cur = current.filter(|c| !is_yielding && runnable.iter().any(|t| t.id() == *c));
                Some(cur.unwrap_or_else(|| {
                    let i = if is_yielding { runnable.len() - 1 } else { 0 };
                    runnable[i].id()
                }))
            }
        }
    }

    fn next_u64(&mut self) -> u64 {
        self.next_byte().unwrap_or(0) as u64
    }
}

/// One decoded operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Acquire,
    Try,
    Timed,
    Release,
    Recursive,
    Die,
}

/// The protocol under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    Mutex,
    RLock,
    Semaphore(u32),
}

#[derive(Debug, Clone, PartialEq)]
struct Plan {
    proto: Proto,
    threads: Vec<(Option<u32>, Vec<Op>)>,
    schedule: Vec<u8>,
}

fn decode(data: &[u8]) -> Plan {
    let mut pos = 0usize;
    let mut next = || {
        let b = data.get(pos).copied().unwrap_or(0);
        pos += 1;
        b
    };
    let p = next();
    let t = next();
    let proto = match p % 3 {
        0 => Proto::Mutex,
        1 => Proto::RLock,
        _ => Proto::Semaphore(1 + (t as u32 / 3) % 3),
    };
    let n = 2 + t % 3;
    let threads = (0..n)
        .map(|_| {
            let c = next();
            let crash =
                (c != 0 && !matches!(proto, Proto::Semaphore(_))).then(|| 1 + c as u32 % 16);
            let count = 1 + next() % 8;
            let ops = (0..count)
                .map(|_| match next() % 6 {
                    0 => Op::Acquire,
                    1 => Op::Try,
                    2 => Op::Timed,
                    3 => Op::Release,
                    4 => Op::Recursive,
                    _ => Op::Die,
                })
                .collect();
            (crash, ops)
        })
        .collect();
    // Everything after the decoded prefix is the schedule.
    Plan {
        proto,
        threads,
        schedule: data.get(pos..).unwrap_or(&[]).to_vec(),
    }
}

/// The objects of one run, and the witnesses (std atomics: invisible to shuttle).
struct World3<const M: u32> {
    m: RawMutex<Shuttle<M>>,
    r: RawRLock<Shuttle<M>>,
    s: RawSemaphore<Shuttle<M>>,
    /// Threads inside the critical section (mutex / recursive lock), or
    /// permits held (semaphore).
    inside: AtomicU32,
}

fn check(cond: bool, msg: &str) {
    if !cond {
        crate::testkit::violation(msg);
    }
}

/// Run one thread's operations; returns when done (releasing what it holds) or
/// dies (unwinding with [`crate::checkers::Crash`]).
fn thread_body<const M: u32>(w: &World3<M>, proto: Proto, t: &ModelThread, ops: &[Op]) {
    let me = t.id();
    let mut depth = 0u32; // acquisitions held (recursion depth; 0/1 for the others)
    let timeout = Some(core::time::Duration::from_millis(1));
    let enter = |a: Acquired| {
        if a == Acquired::OwnerDied {
            w.inside.store(0, SeqCst); // the previous holder died inside
        }
        check(
            w.inside.fetch_add(1, SeqCst) == 0,
            "two threads in the critical section",
        );
    };
    for &op in ops {
        match (proto, op) {
            (Proto::Semaphore(_), Op::Die) => {
                // Permits have no owner: a dead holder's permit is lost for
                // good (documented), and the others could then wait forever.
                // So a thread gives its permit back before it dies.
                if depth == 1 {
                    w.inside.fetch_sub(1, SeqCst);
                    check(w.s.release(t, 1).is_ok(), "the holder's release failed");
                }
                std::panic::resume_unwind(Box::new(crate::checkers::Crash))
            }
            (_, Op::Die) => std::panic::resume_unwind(Box::new(crate::checkers::Crash)),
            (Proto::Mutex, Op::Release) | (Proto::Semaphore(_), Op::Release) => {
                if depth == 1 {
                    w.inside.fetch_sub(1, SeqCst);
                    let ok = match proto {
                        Proto::Mutex => w.m.unlock(t).is_ok(),
                        _ => w.s.release(t, 1).is_ok(),
                    };
                    check(ok, "the holder's release failed");
                    depth = 0;
                }
            }
            (Proto::Mutex, _) => {
                if depth == 0 {
                    let r = match op {
                        Op::Acquire | Op::Recursive => w.m.lock(t, None),
                        Op::Try => w.m.try_lock(t),
                        _ => w.m.lock(t, timeout),
                    };
                    if let Ok(a) = r {
                        enter(a);
                        depth = 1;
                    }
                }
            }
            (Proto::Semaphore(permits), _) => {
                if depth == 0 {
                    let r = match op {
                        Op::Acquire | Op::Recursive => w.s.acquire(t, None),
                        Op::Try => w.s.try_acquire(t),
                        _ => w.s.acquire(t, timeout),
                    };
                    if r.is_ok() {
                        let held = w.inside.fetch_add(1, SeqCst) + 1;
                        check(held <= permits, "more permits held than the semaphore has");
                        check(w.s.value() <= permits, "semaphore value above its bound");
                        depth = 1;
                    }
                }
            }
            (Proto::RLock, Op::Release) => {
                if depth == 0 {
                    check(w.r.unlock(t).is_err(), "a non-owner released the lock");
                } else {
                    if depth == 1 {
                        w.inside.fetch_sub(1, SeqCst); // before the lock is free
                    }
                    check(w.r.unlock(t).is_ok(), "the owner's release failed");
                    depth -= 1;
                }
            }
            (Proto::RLock, _) => {
                if depth > 0 && op != Op::Recursive {
                    continue; // keep the plan simple: only explicit re-entry
                }
                let r = match op {
                    Op::Acquire | Op::Recursive => w.r.lock(t, None),
                    Op::Try => w.r.try_lock(t),
                    _ => w.r.lock(t, timeout),
                };
                if let Ok(a) = r {
                    if depth == 0 {
                        enter(a);
                    } else {
                        check(a == Acquired::Clean, "re-entry reported a dead owner");
                    }
                    depth += 1;
                    check(w.r.is_owned_by(me), "two threads in the critical section");
                    check(w.r.count() == depth, "wrong recursion depth");
                }
            }
        }
    }
    // Release whatever is still held.
    while depth > 0 {
        if depth == 1 {
            w.inside.fetch_sub(1, SeqCst);
        }
        let ok = match proto {
            Proto::Mutex => w.m.unlock(t).is_ok(),
            Proto::RLock => w.r.unlock(t).is_ok(),
            Proto::Semaphore(_) => w.s.release(t, 1).is_ok(),
        };
        check(ok, "the holder's release failed");
        depth -= 1;
    }
}

fn execution<const M: u32>(plan: &Plan) {
    let world = world();
    let permits = match plan.proto {
        Proto::Semaphore(p) => p,
        _ => 1,
    };
    let w = Arc::new(World3::<M> {
        m: RawMutex::new(),
        r: RawRLock::new(),
        s: RawSemaphore::new(permits, Some(permits)),
        inside: AtomicU32::new(0),
    });
    let n = plan.threads.len() as u32;
    let hs: Vec<_> = plan
        .threads
        .iter()
        .enumerate()
        .map(|(i, (crash, ops))| {
            let (w, world, ops, crash, proto) =
                (w.clone(), world.clone(), ops.clone(), *crash, plan.proto);
            shuttle::thread::spawn(move || {
                let t = ModelThread::new(&world, i as u32 + 1).crash_at(crash);
                run(&t, |t| thread_body(&w, proto, t, &ops))
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    // A survivor can always take the lock afterwards (recovering a dead
    // holder's); the semaphore is back to its value, less the permits of the dead.
    let t = ModelThread::new(&world, n + 1);
    match plan.proto {
        Proto::Mutex => {
            check(w.m.lock(&t, None).is_ok(), "survivor could not lock");
            check(w.m.unlock(&t).is_ok(), "survivor could not unlock");
        }
        Proto::RLock => {
            check(w.r.lock(&t, None).is_ok(), "survivor could not lock");
            check(w.r.count() == 1, "wrong recursion depth after recovery");
            check(w.r.unlock(&t).is_ok(), "survivor could not unlock");
            check(!w.r.is_locked(), "lock left held");
        }
        Proto::Semaphore(p) => {
            check(
                w.s.value() == p && w.inside.load(SeqCst) == 0,
                "a permit was lost or made up",
            );
        }
    }
}

/// Decode `data` (see the module documentation) and run it once under the
/// schedule it encodes. Panics if a property breaks or the run deadlocks.
pub fn lock_protocol(data: &[u8]) {
    lock_protocol_with::<0>(data)
}

/// [`lock_protocol`] on the platform with seeded bug `M` (used to show that
/// the fuzz body catches the protocols' mutants).
pub fn lock_protocol_with<const M: u32>(data: &[u8]) {
    let plan = decode(data);
    let mut config = shuttle::Config::default();
    config.max_steps = shuttle::MaxSteps::FailAfter(100_000);
    config.silence_warnings = true;
    let sched = ByteScheduler::new(&plan.schedule);
    shuttle::Runner::new(sched, config).run(move || execution::<M>(&plan));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::fails_with;

    #[test]
    fn decodes_threads_ops_and_schedule() {
        let p = decode(&[1, 1, 0, 1, 4, 3, 2, 0, 5, 0, 0, 3, 9]);
        assert_eq!(p.proto, Proto::RLock);
        assert_eq!(p.threads.len(), 3);
        assert_eq!(p.threads[0], (None, vec![Op::Recursive, Op::Release]));
        assert_eq!(p.threads[1], (Some(3), vec![Op::Die]));
        assert_eq!(p.threads[2], (None, vec![Op::Release]));
        assert_eq!(p.schedule, vec![9]);
    }

    #[test]
    fn empty_and_short_inputs_run() {
        lock_protocol(&[]);
        lock_protocol(&[2]);
        lock_protocol(&[1, 0, 7]);
    }

    /// Every schedule of `len` binary choices appended to `prefix`.
    fn schedules(prefix: &[u8], len: u32) -> impl Iterator<Item = Vec<u8>> + '_ {
        (0..1u32 << len).map(move |bits| {
            let mut v = prefix.to_vec();
            v.extend((0..len).map(|i| (bits >> i & 1) as u8));
            v
        })
    }

    /// Two threads acquire the recursive lock and release it: under some
    /// schedule the "re-enter if locked by anyone" mutant lets both in, and
    /// under none does the correct lock.
    #[test]
    fn catches_rlock_reentry_mutant() {
        // rlock, 2 threads; each: no crash, 2 ops: acquire, release.
        let prefix = [1, 0, 0, 1, 0, 3, 0, 1, 0, 3];
        let mut caught = 0;
        for input in schedules(&prefix, 8) {
            lock_protocol(&input);
            caught += fails_with("two threads in the critical section", || {
                lock_protocol_with::<{ crate::rlock::MUTANT_REENTER_ANY.0 }>(&input)
            }) as u32;
        }
        assert!(caught > 0);
    }

    /// Two threads take the mutex in turn: under some schedule one sleeps and
    /// the "no wake" mutant never wakes it.
    #[test]
    fn catches_mutex_missing_wake() {
        let prefix = [0, 0, 0, 1, 0, 3, 0, 1, 0, 3];
        let mut caught = 0;
        for input in schedules(&prefix, 8) {
            lock_protocol(&input);
            caught += fails_with("deadlock", || {
                lock_protocol_with::<{ crate::mutex::MUTANT_NO_WAKE.0 }>(&input)
            }) as u32;
        }
        assert!(caught > 0);
    }
}
