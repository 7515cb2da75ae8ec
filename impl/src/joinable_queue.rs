//! `JoinableQueue<T>`: a [`Queue`] that counts unfinished
//! tasks (Python's `multiprocessing.JoinableQueue`): every `put` adds one,
//! every `task_done` removes one, and `join` waits until none is left.
//!
//! ```
//! # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
//! use procshare::{JoinableQueue, Process};
//! let q: JoinableQueue<u32> = JoinableQueue::new().unwrap();
//! for i in 0..3 {
//!     q.put(&i).unwrap();
//! }
//! let mut worker = Process::new({
//!     let q = q.clone();
//!     move || {
//!         for _ in 0..3 {
//!             q.get().unwrap();
//!             q.task_done().unwrap();
//!         }
//!     }
//! });
//! worker.start().unwrap();
//! q.join(); // returns once the worker marked all three done
//! worker.join().unwrap();
//! assert!(q.task_done().is_err()); // too many task_done
//! ```
//!
//! The counter is the model's [`RawTaskCounter`] (one futex word in shared
//! memory, checked by loom and shuttle): `task_done` decrements it by CAS
//! (refusing to go below zero) and wakes `join`ers when it reaches zero;
//! `join` sleeps while it is nonzero.

use core::time::Duration;

use procshare_model::task_counter::RawTaskCounter;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::platform::{Shm, ShmThread};
use crate::queue::{Queue, QueueError};
use crate::shm::{ShmBox, ShmSafe};

// SAFETY: RawTaskCounter<Shm> is #[repr(C)]: one ShmWord32 (the unfinished-task
// count): no pointers, no drop glue, every bit pattern is a valid count.
unsafe impl ShmSafe for RawTaskCounter<Shm> {}
// The layout documented in procshare_model::task_counter (`count` at 0).
crate::layout::assert_shm_layout!(RawTaskCounter<Shm> { size: 4, align: 4 });

/// A [`Queue`] with `task_done` and `join`. `Clone` gives another handle onto
/// the same queue and counter.
pub struct JoinableQueue<T> {
    pub(crate) q: Queue<T>,
    /// Unfinished tasks: incremented before each put, decremented by `task_done`.
    pub(crate) unfinished: ShmBox<RawTaskCounter<Shm>>,
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
            .field("unfinished", &self.unfinished.count())
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
            unfinished: ShmBox::new(RawTaskCounter::new())?,
        })
    }

    /// The queue underneath (`try_get`, `get_timeout`, `qsize`, ...).
    pub fn queue(&self) -> &Queue<T> {
        &self.q
    }

    /// Unfinished tasks.
    pub fn unfinished(&self) -> u32 {
        self.unfinished.count()
    }

    /// Mark one task done; too many calls are
    /// [`QueueError::TaskDoneTooManyTimes`] (Python's `ValueError`).
    pub fn task_done(&self) -> Result<(), QueueError> {
        self.unfinished
            .done(&ShmThread::current())
            .map_err(|_| QueueError::TaskDoneTooManyTimes)
    }

    /// Wait until every item put has been marked done.
    pub fn join(&self) {
        self.join_inner(None);
    }

    /// Like [`JoinableQueue::join`], at most `timeout`; returns whether all were done.
    pub fn join_timeout(&self, timeout: Duration) -> bool {
        self.join_inner(Some(timeout))
    }

    fn join_inner(&self, timeout: Option<Duration>) -> bool {
        self.unfinished.wait_zero(&ShmThread::current(), timeout)
    }

    /// Close the queue (see [`Queue::close`]).
    pub fn close(&self) {
        self.q.close()
    }
}

impl<T: Serialize> JoinableQueue<T> {
    /// Count one unfinished task before a put (an overflowing count is
    /// [`QueueError::Full`]: 2^32 - 1 unfinished tasks).
    fn count_one(&self) -> Result<(), QueueError> {
        self.unfinished.add(1).map_err(|_| QueueError::Full)
    }

    fn counted(&self, r: Result<(), QueueError>) -> Result<(), QueueError> {
        if r.is_err() {
            // Not put: undo the count (waking joiners if it hit zero). It cannot
            // be refused unless another process called task_done too many
            // times, which that process was told about.
            let _ = self.unfinished.done(&ShmThread::current());
        }
        r
    }

    /// Put a copy of `v` and count one unfinished task.
    pub fn put(&self, v: &T) -> Result<(), QueueError> {
        self.count_one()?;
        self.counted(self.q.put(v))
    }

    /// Put with a timeout (see [`Queue::put_timeout`]).
    pub fn put_timeout(&self, v: &T, timeout: Duration) -> Result<(), QueueError> {
        self.count_one()?;
        self.counted(self.q.put_timeout(v, timeout))
    }

    /// Put without waiting (see [`Queue::try_put`]).
    pub fn try_put(&self, v: &T) -> Result<(), QueueError> {
        self.count_one()?;
        self.counted(self.q.try_put(v))
    }
}

impl<T: DeserializeOwned> JoinableQueue<T> {
    /// Take the next item (see [`Queue::get`]).
    pub fn get(&self) -> Result<T, QueueError> {
        self.q.get()
    }

    /// Take the next item, waiting at most `timeout`.
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, QueueError> {
        self.q.get_timeout(timeout)
    }

    /// Take the next item if one is there now.
    pub fn try_get(&self) -> Result<T, QueueError> {
        self.q.try_get()
    }
}
