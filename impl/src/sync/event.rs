//! `Event` over the model's [`RawEvent`].

use core::time::Duration;

use procshare_model::event::RawEvent;

use crate::platform::{Shm, ShmThread};
use crate::shm::{ShmBox, ShmError, ShmSafe};

// SAFETY: RawEvent<Shm> is #[repr(C)]: one ShmWord32 (flag, generation,
// waiters bit): no pointers, no drop glue, every bit pattern is a valid state.
unsafe impl ShmSafe for RawEvent<Shm> {}
// The layout documented in procshare_model::event (`state` at 0).
crate::shm::layout::assert_shm_layout!(RawEvent<Shm> { size: 4, align: 4 });

/// A process-shared event flag (Python's `multiprocessing.Event`): [`set`]
/// releases every waiter, [`clear`] resets the flag.
///
/// `Clone` gives another handle onto the same event.
///
/// [`set`]: Event::set
/// [`clear`]: Event::clear
///
/// ```
/// use procshare::Event;
/// use std::time::Duration;
/// let e = Event::new().unwrap();
/// assert!(!e.wait_timeout(Duration::from_millis(1)));
/// e.set();
/// e.wait(); // returns at once
/// assert!(e.is_set());
/// e.clear();
/// assert!(!e.is_set());
/// ```
#[derive(Clone)]
pub struct Event {
    pub(crate) raw: ShmBox<RawEvent<Shm>>,
}

impl core::fmt::Debug for Event {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Event")
            .field("set", &self.raw.is_set())
            .finish()
    }
}

impl Event {
    /// A new, clear event.
    pub fn new() -> Result<Event, ShmError> {
        Ok(Event {
            raw: ShmBox::new(RawEvent::new())?,
        })
    }

    /// Is the flag set?
    pub fn is_set(&self) -> bool {
        self.raw.is_set()
    }

    /// Sets the flag and wakes every waiter. What the caller wrote before is
    /// visible to every released waiter.
    pub fn set(&self) {
        self.raw.set(&ShmThread::current())
    }

    /// Clears the flag.
    pub fn clear(&self) {
        self.raw.clear()
    }

    /// Waits until the flag is set (at once if it is).
    pub fn wait(&self) {
        let t = ShmThread::current();
        // Without a deadline the protocol returns only once released.
        while !self.raw.wait(&t, None) {}
    }

    /// Waits at most `timeout`; `true` if released by a `set` (Python's
    /// `wait(timeout)` return value).
    #[doc(alias = "wait")]
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.raw.wait(&ShmThread::current(), Some(timeout))
    }
}
