//! `JoinableQueue<T>`: a [`Queue`] that counts unfinished
//! tasks (Python's `multiprocessing.JoinableQueue`): every `put` adds one,
//! every `task_done` removes one, and `join` waits until none is left.

use core::time::Duration;

use procshare_model::joinable::{Joinable, Tasks};
use procshare_model::ring::{Ring, Wait};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::platform::{Shm, ShmThread};
use crate::queue::{Queue, QueueError, RawQueue};
use crate::shm::{ShmBox, ShmSafe};

// SAFETY: Tasks<Shm> is #[repr(C)]: one ShmWord32 (the task_done count): no
// pointers, no drop glue, every bit pattern is a valid count (an inconsistent
// one makes `join` wait or `task_done` fail, never undefined behaviour).
unsafe impl ShmSafe for Tasks<Shm> {}
// The layout documented in procshare_model::joinable (`done` at 0).
crate::shm::layout::assert_shm_layout!(Tasks<Shm> { size: 4, align: 4 });

/// A [`Queue`] with `task_done` and `join`. `Clone` gives another handle onto
/// the same queue and counter.
///
/// `JoinableQueue<T>`: a [`Queue`] that counts unfinished
/// tasks (Python's `multiprocessing.JoinableQueue`): every `put` adds one,
/// every `task_done` removes one, and `join` waits until none is left.
///
/// ```
/// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
/// use procshare::{JoinableQueue, Process};
/// let q: JoinableQueue<u32> = JoinableQueue::new().unwrap();
/// for i in 0..3 {
///     q.put(&i).unwrap();
/// }
/// let mut worker = Process::new({
///     let q = q.clone();
///     move || {
///         for _ in 0..3 {
///             q.get().unwrap();
///             q.task_done().unwrap();
///         }
///     }
/// });
/// worker.start().unwrap();
/// q.join(); // returns once the worker marked all three done
/// worker.join().unwrap();
/// assert!(q.task_done().is_err()); // too many task_done
/// ```
///
/// The protocol is the model's [`Joinable`] (checked by loom and shuttle
/// with producers and consumers dying at every step): the unfinished tasks
/// are not a counter that `put` raises but the difference between the
/// ring's committed-message count, which rises in the very store that makes
/// a message visible, and a `task_done` count (one futex word in shared
/// memory). So a producer killed inside `put` (for instance blocked on a
/// full queue) leaves no task behind without its message, and `join`
/// returns once every message put has been taken and marked done. CPython's
/// `put` counts the task, then puts: a producer killed in between makes
/// every later `join` wait for ever.
///
/// A task whose message was taken by a process that died before calling
/// `task_done` stays unfinished, as in Python: `join` does not name the dead
/// process, because `task_done` is anonymous (any process may mark any task
/// done), so no process owes a task (the reasons are in
/// [`procshare_model::joinable`], "A consumer that dies holding a task").
/// Use [`JoinableQueue::join_timeout`], [`JoinableQueue::unfinished`], and
/// `task_done` for tasks known lost.
/// So does one whose `get` failed after taking the message
/// ([`QueueError::Decode`], [`QueueError::TooLarge`]): call `task_done` for it.
pub struct JoinableQueue<T> {
    pub(crate) q: Queue<T>,
    /// The `task_done` count (the unfinished tasks are the ring's committed
    /// messages minus this).
    pub(crate) unfinished: ShmBox<Tasks<Shm>>,
}

impl<T> Clone for JoinableQueue<T> {
    fn clone(&self) -> Self {
        JoinableQueue {
            q: self.q.clone(),
            unfinished: self.unfinished.clone(),
        }
    }
}

impl<T> core::fmt::Debug for JoinableQueue<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("JoinableQueue")
            .field("q", &self.q)
            .field("unfinished", &self.unfinished())
            .finish()
    }
}

impl<T> JoinableQueue<T> {
    /// A new, empty, unbounded joinable queue.
    pub fn new() -> Result<JoinableQueue<T>, QueueError> {
        Self::from_queue(Queue::new()?)
    }

    /// A joinable queue of at most `maxsize` items (0: unbounded).
    pub fn with_maxsize(maxsize: usize) -> Result<JoinableQueue<T>, QueueError> {
        Self::from_queue(Queue::with_maxsize(maxsize)?)
    }

    fn from_queue(q: Queue<T>) -> Result<JoinableQueue<T>, QueueError> {
        Ok(JoinableQueue {
            q,
            unfinished: ShmBox::new(Tasks::new())?,
        })
    }

    /// The queue underneath (`try_get`, `get_timeout`, `qsize`, ...). Every
    /// item that enters the ring is a task, whichever handle put it: a `put`
    /// through this queue counts one too (the count is the ring's own).
    pub fn queue(&self) -> &Queue<T> {
        &self.q
    }

    /// The protocol over this queue's ring and task count.
    fn protocol<'a>(&'a self, ring: Ring<'a, Shm>) -> Joinable<'a, Shm> {
        Joinable::new(ring, &self.unfinished)
    }

    /// Unfinished tasks: items put and not yet marked done.
    pub fn unfinished(&self) -> u32 {
        self.protocol(self.q.raw().ring()).unfinished()
    }

    /// Mark one task done; too many calls are
    /// [`QueueError::TaskDoneTooManyTimes`] (Python's `ValueError`).
    pub fn task_done(&self) -> Result<(), QueueError> {
        #[cfg(feature = "history-mutants")]
        if crate::history_mutants::active(crate::history_mutants::JOINABLE_SKIPS_TASK_DONE) {
            static CALLS: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);
            if CALLS.fetch_add(1, core::sync::atomic::Ordering::Relaxed) % 4 == 3 {
                return Ok(());
            }
        }
        self.protocol(self.q.raw().ring())
            .task_done(&ShmThread::current())
            .map_err(|_| QueueError::TaskDoneTooManyTimes)
    }

    /// Wait until every item put has been marked done.
    pub fn join(&self) {
        self.join_inner(None);
    }

    /// Like [`JoinableQueue::join`], at most `timeout`; returns whether all were done.
    #[doc(alias = "join")]
    pub fn join_timeout(&self, timeout: Duration) -> bool {
        self.join_inner(Some(timeout))
    }

    fn join_inner(&self, timeout: Option<Duration>) -> bool {
        self.protocol(self.q.raw().ring())
            .join(&ShmThread::current(), timeout)
    }

    /// This process is done with the queue (see [`Queue::close`]).
    pub fn close(&self) {
        self.q.close()
    }

    /// Shut the queue down for every process (see [`Queue::shutdown`]).
    pub fn shutdown(&self) {
        self.q.shutdown()
    }
}

impl<T: Serialize> JoinableQueue<T> {
    /// Encode `v` and put it with the joinable protocol, whose commit counts
    /// the task (`Full` also when 2^24 - 1 tasks are unfinished).
    fn put_wait(&self, v: &T, w: Wait) -> Result<(), QueueError> {
        self.q.put_with(v, |raw: &RawQueue, m| {
            raw.put_via(m, w, |ring, t, m| self.protocol(ring).put_message(t, m, w))
        })
    }

    /// Put a copy of `v`; its task is counted when it is in the queue.
    pub fn put(&self, v: &T) -> Result<(), QueueError> {
        self.put_wait(v, Wait::For(None))
    }

    /// Put with a timeout (see [`Queue::put_timeout`]).
    #[doc(alias = "put")]
    pub fn put_timeout(&self, v: &T, timeout: Duration) -> Result<(), QueueError> {
        self.put_wait(v, Wait::For(Some(timeout)))
    }

    /// Put without waiting (see [`Queue::try_put`]).
    #[doc(alias = "put_nowait")]
    pub fn try_put(&self, v: &T) -> Result<(), QueueError> {
        self.put_wait(v, Wait::No)
    }
}

impl<T: DeserializeOwned> JoinableQueue<T> {
    /// Take the next item (see [`Queue::get`]).
    pub fn get(&self) -> Result<T, QueueError> {
        self.q.get()
    }

    /// Take the next item, waiting at most `timeout`.
    #[doc(alias = "get")]
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, QueueError> {
        self.q.get_timeout(timeout)
    }

    /// Take the next item if one is there now.
    #[doc(alias = "get_nowait")]
    pub fn try_get(&self) -> Result<T, QueueError> {
        self.q.try_get()
    }
}
