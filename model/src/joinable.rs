//! The joinable queue (Python's `JoinableQueue`) as one protocol: a queue
//! [`Ring`] plus a `task_done` counter, where the number of unfinished tasks
//! is *derived* from the ring's own commit instead of being counted by a
//! separate step of `put`.
//!
//! ```text
//! unfinished = committed - done        (modulo 2^24)
//! ```
//!
//! * `committed` is the message count the ring keeps in `tail`: it rises in
//!   the very store that publishes a message's `LAST` piece (the store that
//!   makes the message visible to consumers). A task is counted exactly when
//!   its message exists.
//! * `done` ([`Tasks`], one futex word) counts successful `task_done` calls.
//!
//! So a producer that dies anywhere in `put` (for instance blocked on a full
//! queue) leaves either no message and no task, or a message and its task:
//! never a task without a message, which would make `join` wait for ever
//! (what CPython's `JoinableQueue` does: its `put` counts the task, then
//! puts, and a producer killed in between leaves the count one too high).
//! A message abandoned half-way (a streamed message whose producer died or
//! timed out) never had its `LAST` piece published, so it never counted.
//!
//! ```
//! use procshare_model::joinable::{Joinable, Tasks};
//! use procshare_model::ring::{fuzzing::Q, Wait};
//! use procshare_model::shuttle_platform::{world, ModelThread, Shuttle};
//! use std::sync::Arc;
//!
//! shuttle::check_random(|| {
//!     let w = world();
//!     let (q, tasks) = (Arc::new(Q::<Shuttle>::new(4, 0)), Arc::new(Tasks::<Shuttle>::new()));
//!     let t = ModelThread::new(&w, 1);
//!     let jq = Joinable::new(q.ring(), &tasks);
//!     jq.put(&t, b"ab", Wait::No).unwrap();
//!     jq.put(&t, b"cd", Wait::No).unwrap();
//!     let (q2, tasks2, w2) = (q.clone(), tasks.clone(), w.clone());
//!     let h = shuttle::thread::spawn(move || {
//!         let t = ModelThread::new(&w2, 2);
//!         let jq = Joinable::new(q2.ring(), &tasks2);
//!         let mut b = Vec::new();
//!         for _ in 0..2 {
//!             jq.ring().get(&t, &mut b, Wait::For(None)).unwrap();
//!             jq.task_done(&t).unwrap();
//!         }
//!     });
//!     assert!(jq.join(&t, None));
//!     assert_eq!(jq.unfinished(), 0);
//!     assert!(jq.task_done(&t).is_err()); // Python's ValueError
//!     h.join().unwrap();
//! }, 10);
//! ```
//!
//! # Layout
//!
//! ```text
//! Tasks (4 bytes, #[repr(C)])
//!   done: u32   successful task_done calls (wrapping; compared modulo 2^24)
//! ```
//!
//! # Invariants
//!
//! * `done <= committed` (as counts; both modulo 2^24): `task_done` raises
//!   `done` by a CAS from a value it checked to be below the committed count
//!   it read after; `committed` never falls. A `task_done` with nothing
//!   unfinished is refused ([`TooManyDone`], Python's `ValueError`), even when
//!   calls race.
//! * `committed - done < 2^24`: the ring's producer refuses a message (`Full`)
//!   when [`MAX_UNFINISHED`](crate::ring::MAX_UNFINISHED) tasks are unfinished (the ring's `put_counted`).
//! * Every `task_done` is an `AcqRel` RMW of `done`, so they form one release
//!   sequence: a `join` that reads the final value with `Acquire` sees what
//!   was written before *every* `task_done`.
//! * `join` reads `done`, then `committed`; it returns when they are equal.
//!   It can only become true by a `task_done` (a commit only moves `committed`
//!   away), so `join` sleeps on `done` while it holds the value read. The
//!   `task_done` that makes `done` equal to the committed count it reads after
//!   its CAS wakes every sleeper (no waiters flag: one wake-up per drain, which
//!   is rare compared with puts and gets).
//! * A `task_done` that dies between its CAS and its wake-up leaves sleepers
//!   asleep only until the platform's liveness poll, after which they re-read
//!   `done` with an RMW (the latest value) and the committed count.
//! * A task whose message was taken by a consumer that then died before
//!   `task_done` stays unfinished (a blocking `join` waits for ever, as in
//!   Python; use a timeout). So does a message that a consumer's death or a
//!   size limit made the ring drop after it was committed: it was taken.
//!
//! # A consumer that dies holding a task
//!
//! CPython's `join` waits for ever when a consumer is killed between `get`
//! and `task_done`. This protocol does not name the dead consumer either,
//! and that is a decision, not an omission:
//!
//! * **`task_done` is anonymous.** Python lets any process mark any task
//!   done: a worker may hand an item to a helper process that calls
//!   `task_done`, or a supervisor may call it for a worker. "Which process
//!   owes a task" is not defined by the API, so a per-taker count (tasks
//!   taken minus `task_done`s called, per process) blames the wrong process
//!   in those programs: the taker looks in debt, the helper in credit. An
//!   error from `join` naming a process must be true, and this one would not be.
//! * **Attribution cannot be atomic with the take without a cost on every
//!   `get`.** The message leaves the ring in the consumer's `head` store. A
//!   taker count kept beside it is raised either before that store (a
//!   consumer that dies inside `get`, before taking anything, is blamed for
//!   a task another consumer will finish) or after it (one that dies in
//!   between owes a task nobody sees). Making the take and its attribution
//!   one store means writing the taker into the ring's `head` word (or a
//!   per-consumer log the next `cons` holder replays), on the hot path of
//!   every `get` of every queue.
//!
//! What the protocol gives instead: `join` with a timeout (never a hang in
//! the real platform's API), [`Joinable::unfinished`] (how many tasks are
//! missing), and the recovery a program that knows a worker died can make:
//! `task_done` for the lost tasks, after which `join` returns. The pool
//! ([`crate::pool`]) attributes tasks to workers itself, where the API does
//! say who owes what.

use core::mem::offset_of;
use core::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use core::time::Duration;

use crate::park::{park, Check, Waiters};
use crate::platform::{mutant, Mutant, Platform, Thread, Word32};
use crate::ring::{Message, Ring, RingError, Wait};

/// Seeded bug: `task_done` increments `done` with `Relaxed` instead of `AcqRel`.
#[doc(hidden)]
pub const MUTANT_RELAXED_DONE: Mutant = Mutant(901);
/// Seeded bug: `task_done` never wakes the joiners when the last task is done.
#[doc(hidden)]
pub const MUTANT_NO_WAKE: Mutant = Mutant(902);
/// Seeded bug: `task_done` increments with a load then a plain store
/// (check-then-act), so two racing calls can both succeed on one task.
#[doc(hidden)]
pub const MUTANT_LOAD_STORE_DONE: Mutant = Mutant(903);
/// Seeded bug: the old order, "count the task, then put": `put` counts the
/// task by a separate step before the ring put (here: lowering `done` by one,
/// which raises `committed - done`), and takes that count back once the
/// ring's commit has counted the message. A producer that dies in between
/// (blocked on a full queue, say) leaves the count one too high.
#[doc(hidden)]
pub const MUTANT_COUNT_THEN_PUT: Mutant = Mutant(904);
/// Seeded bug: "put, then count": `put` hides the coming commit from the
/// count (raising `done` by one) and counts the task only after the ring put
/// returned. A producer that dies in between leaves a message whose task is
/// not counted: `join` returns while it is unfinished.
#[doc(hidden)]
pub const MUTANT_PUT_THEN_COUNT: Mutant = Mutant(905);

/// Counts are compared modulo 2^24 (the ring's message count).
const COUNT_MASK: u32 = (1 << 24) - 1;

/// `task_done` was called more times than tasks were committed (Python's
/// `ValueError: task_done() called too many times`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyDone;

impl core::fmt::Display for TooManyDone {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("task_done() called too many times")
    }
}

impl std::error::Error for TooManyDone {}

/// The shared state a joinable queue adds to its ring: the `task_done` count.
/// See the [module docs](self).
#[repr(C)]
pub struct Tasks<P: Platform> {
    /// Successful `task_done` calls; the futex word `join` sleeps on.
    done: P::W32,
}

impl<P: Platform> Default for Tasks<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Platform> core::fmt::Debug for Tasks<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Tasks")
            .field("done", &self.done.load(Relaxed))
            .finish()
    }
}

impl<P: Platform> Tasks<P> {
    /// The byte offset of each field of the layout table (its names, its
    /// order), as compiled: impl's `layout.rs` checks them against the table
    /// and hashes them into its layout fingerprint.
    #[doc(hidden)]
    pub const OFFSETS: &'static [(&'static str, usize)] = &[("done", offset_of!(Self, done))];

    /// No task done yet (for a ring with no message committed yet).
    pub fn new() -> Self {
        Tasks {
            done: P::W32::new(0),
        }
    }
}

/// A joinable queue: a ring and its task count. See the [module docs](self).
pub struct Joinable<'a, P: Platform> {
    ring: Ring<'a, P>,
    tasks: &'a Tasks<P>,
}

impl<P: Platform> core::fmt::Debug for Joinable<'_, P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Joinable")
            .field("ring", &self.ring)
            .field("tasks", self.tasks)
            .finish()
    }
}

impl<'a, P: Platform> Joinable<'a, P> {
    /// A joinable queue over `ring` and `tasks` (created together, both fresh).
    pub fn new(ring: Ring<'a, P>, tasks: &'a Tasks<P>) -> Self {
        Joinable { ring, tasks }
    }

    /// The ring underneath (`get`, `len`, `close`, ...: a joinable queue's
    /// `get` is the ring's).
    pub fn ring(&self) -> &Ring<'a, P> {
        &self.ring
    }

    /// Unfinished tasks: committed messages not yet marked done (a snapshot).
    pub fn unfinished(&self) -> u32 {
        let d = self.tasks.done.load(Acquire);
        self.ring.committed().wrapping_sub(d) & COUNT_MASK
    }

    /// Put one message: [`Ring::put`], whose commit counts the task. `Full`
    /// also when [`MAX_UNFINISHED`](crate::ring::MAX_UNFINISHED) tasks are unfinished.
    pub fn put(&self, t: &P::Thread, msg: &[u8], wait: Wait) -> Result<(), RingError> {
        self.put_message(t, Message::Bytes(msg), wait)
    }

    /// [`Joinable::put`] of a [`Message`] (see [`Ring::put_message`]).
    pub fn put_message(
        &self,
        t: &P::Thread,
        msg: Message<'_>,
        wait: Wait,
    ) -> Result<(), RingError> {
        let done = &self.tasks.done;
        if mutant::<P>(MUTANT_COUNT_THEN_PUT) {
            done.fetch_sub(1, AcqRel); // "count" first
            let r = self.ring.put_counted(t, msg, wait, None);
            done.fetch_add(1, AcqRel); // the commit counted it (or nothing was put)
            return r;
        }
        if mutant::<P>(MUTANT_PUT_THEN_COUNT) {
            done.fetch_add(1, AcqRel); // not counted until the put returns
            let r = self.ring.put_counted(t, msg, wait, None);
            done.fetch_sub(1, AcqRel);
            return r;
        }
        self.ring.put_counted(t, msg, wait, Some(done))
    }

    /// Mark one task done; wakes every joiner when none is left. Fails
    /// (changing nothing) if no task is unfinished.
    pub fn task_done(&self, t: &P::Thread) -> Result<(), TooManyDone> {
        let done = &self.tasks.done;
        let unfinished = |d: u32| self.ring.committed().wrapping_sub(d) & COUNT_MASK != 0;
        let mut d = done.load(Relaxed);
        if mutant::<P>(MUTANT_LOAD_STORE_DONE) {
            if !unfinished(d) {
                return Err(TooManyDone);
            }
            t.crash_point();
            done.store(d.wrapping_add(1), Release);
        } else {
            let order = if mutant::<P>(MUTANT_RELAXED_DONE) {
                Relaxed
            } else {
                AcqRel
            };
            loop {
                // `committed` is read after `d`: it never falls, so a task
                // unfinished then is unfinished at the CAS.
                if !unfinished(d) {
                    return Err(TooManyDone);
                }
                match done.cas(d, d.wrapping_add(1), order, Relaxed) {
                    Ok(_) => break,
                    Err(v) => d = v,
                }
            }
        }
        t.crash_point();
        // The last one (by the committed count read now): joiners can return.
        if !unfinished(d.wrapping_add(1)) && !mutant::<P>(MUTANT_NO_WAKE) {
            t.wake(done, u32::MAX);
        }
        Ok(())
    }

    /// Wait until every committed task is done, at most `timeout` (`None`:
    /// for ever). Returns whether they were; what was written before every
    /// `task_done` is then visible.
    pub fn join(&self, t: &P::Thread, timeout: Option<Duration>) -> bool {
        let done = &self.tasks.done;
        let all_done = |d: u32| self.ring.committed().wrapping_sub(d) & COUNT_MASK == 0;
        let d = done.load(Acquire);
        if all_done(d) {
            return true;
        }
        let dl = t.deadline(timeout);
        // No waiters bit: the `task_done` that drains the count wakes all.
        park::<P, _>(
            t,
            done,
            Waiters::NONE,
            &dl,
            d,
            |d| {
                if all_done(d) {
                    Check::Done(true)
                } else {
                    Check::Sleep
                }
            },
            |d, expired| expired.then(|| all_done(d)),
        )
    }
}

#[cfg(all(test, feature = "checkers"))]
mod tests;
