//! `Barrier` over the model's [`RawBarrier`].

use core::time::Duration;

use procshare_model::barrier::RawBarrier;

use super::SyncError;
use crate::platform::{Shm, ShmThread};
use crate::shm::{ShmBox, ShmSafe};

// SAFETY: RawBarrier<Shm> is #[repr(C)]: two ShmWord32 (state, parties): no
// pointers, no drop glue; the protocol handles every state word.
unsafe impl ShmSafe for RawBarrier<Shm> {}

/// A process-shared, reusable barrier (Python's `multiprocessing.Barrier`,
/// without the `action` callback).
///
/// `parties` processes (or threads) call [`Barrier::wait`]; all are released
/// together once the last arrives. Each gets its arrival index
/// `0..parties`. A timeout, [`Barrier::abort`] or [`Barrier::reset`] while
/// parties wait breaks the barrier: waiters get [`SyncError::BrokenBarrier`]
/// (CPython's `BrokenBarrierError`) until `reset`.
///
/// A party that dies after arriving leaves its generation one short: the
/// others wait until their timeout (which breaks the barrier) or an `abort`.
///
/// ```
/// use procshare::sync::Barrier;
/// let b = Barrier::new(1).unwrap();
/// assert_eq!(b.wait().unwrap(), 0); // one party: passes at once
/// assert_eq!(b.parties(), 1);
/// ```
#[derive(Clone)]
pub struct Barrier {
    raw: ShmBox<RawBarrier<Shm>>,
}

impl core::fmt::Debug for Barrier {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Barrier")
            .field("parties", &self.raw.parties())
            .field("n_waiting", &self.raw.n_waiting())
            .field("broken", &self.raw.broken())
            .finish()
    }
}

impl Barrier {
    /// A barrier for `parties` parties ([`SyncError::InvalidArgument`] for 0
    /// or more than the protocol's maximum, 4095).
    pub fn new(parties: u32) -> Result<Barrier, SyncError> {
        let raw = RawBarrier::new(parties)
            .map_err(|_| SyncError::InvalidArgument("barrier parties must be 1..=4095"))?;
        Ok(Barrier {
            raw: ShmBox::new(raw)?,
        })
    }

    fn wait_inner(&self, timeout: Option<Duration>) -> Result<u32, SyncError> {
        self.raw
            .wait(&ShmThread::current(), timeout)
            .map_err(|_| SyncError::BrokenBarrier)
    }

    /// Waits until every party has arrived; returns this party's arrival index.
    pub fn wait(&self) -> Result<u32, SyncError> {
        self.wait_inner(None)
    }

    /// Waits at most `timeout`. On timeout the barrier breaks (for everyone)
    /// and this call returns [`SyncError::BrokenBarrier`], as in CPython.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<u32, SyncError> {
        self.wait_inner(Some(timeout))
    }

    /// Breaks the barrier: current and future waiters get
    /// [`SyncError::BrokenBarrier`] until [`Barrier::reset`].
    pub fn abort(&self) {
        self.raw.abort(&ShmThread::current())
    }

    /// Returns the barrier to its initial, empty state; parties waiting now get
    /// [`SyncError::BrokenBarrier`].
    pub fn reset(&self) {
        self.raw.reset(&ShmThread::current())
    }

    /// The number of parties.
    pub fn parties(&self) -> u32 {
        self.raw.parties()
    }

    /// Parties waiting now (a snapshot).
    pub fn n_waiting(&self) -> u32 {
        self.raw.n_waiting()
    }

    /// Is the barrier broken?
    pub fn is_broken(&self) -> bool {
        self.raw.broken()
    }
}
