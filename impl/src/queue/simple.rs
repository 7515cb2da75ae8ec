//! `SimpleQueue<T>`: Python's `multiprocessing.SimpleQueue` (put, get,
//! is_empty, close), the same shared-memory ring as [`Queue`]
//! without an item bound.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::queue::{Queue, QueueError};

/// A process-shared FIFO queue with only `put`, `get`, `is_empty` and
/// `close` (Python's `SimpleQueue`). `Clone` gives another handle onto the
/// same queue; children inherit it.
///
/// `SimpleQueue<T>`: Python's `multiprocessing.SimpleQueue` (put, get,
/// is_empty, close), the same shared-memory ring as [`Queue`]
/// without an item bound.
///
/// ```
/// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
/// use procshare::{Process, SimpleQueue};
/// let q: SimpleQueue<(u32, f64)> = SimpleQueue::new().unwrap();
/// let mut p = Process::new({
///     let q = q.clone();
///     move || q.put(&(1, 0.5)).unwrap()
/// });
/// p.start().unwrap();
/// assert_eq!(q.get().unwrap(), (1, 0.5));
/// p.join().unwrap();
/// assert!(q.is_empty());
/// ```
pub struct SimpleQueue<T> {
    pub(crate) q: Queue<T>,
}

impl<T> Clone for SimpleQueue<T> {
    fn clone(&self) -> Self {
        SimpleQueue { q: self.q.clone() }
    }
}

impl<T> core::fmt::Debug for SimpleQueue<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SimpleQueue").field("q", &self.q).finish()
    }
}

impl<T> SimpleQueue<T> {
    /// A new, empty queue in shared memory.
    pub fn new() -> Result<SimpleQueue<T>, QueueError> {
        Ok(SimpleQueue { q: Queue::new()? })
    }

    /// Is it empty (approximate)?
    #[doc(alias = "empty")]
    pub fn is_empty(&self) -> bool {
        self.q.is_empty()
    }

    /// This process is done with the queue: its handles refuse `put` and
    /// `get` with [`QueueError::Closed`] (see [`Queue::close`]); other
    /// processes go on.
    pub fn close(&self) {
        self.q.close()
    }

    /// Has this process closed it ([`SimpleQueue::close`])?
    pub fn is_closed(&self) -> bool {
        self.q.is_closed()
    }

    /// Shut it down for every process; wakes every blocked caller (see
    /// [`Queue::shutdown`]).
    pub fn shutdown(&self) {
        self.q.shutdown()
    }
}

impl<T: Serialize> SimpleQueue<T> {
    /// Put a copy of `v`.
    pub fn put(&self, v: &T) -> Result<(), QueueError> {
        self.q.put(v)
    }
}

impl<T: DeserializeOwned> SimpleQueue<T> {
    /// Take the next item, waiting as long as needed.
    pub fn get(&self) -> Result<T, QueueError> {
        self.q.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Debug` names the type and shows the queue inside it.
    #[test]
    fn debug_shows_the_queue() {
        let q = SimpleQueue::<u8>::new().unwrap();
        let s = format!("{q:?}");
        assert!(s.starts_with("SimpleQueue { q: Queue { raw: "), "{s}");
    }
}
