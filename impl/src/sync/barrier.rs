//! `Barrier` over the model's [`RawBarrier`].

use core::time::Duration;

use procshare_model::barrier::{BarrierError, RawBarrier};

use super::SyncError;
use crate::platform::{Shm, ShmThread};
use crate::shm::{ShmBox, ShmSafe};

// SAFETY: RawBarrier<Shm> is #[repr(C)]: two ShmWord32 (state, parties): no
// pointers, no drop glue; the protocol handles every state word.
unsafe impl ShmSafe for RawBarrier<Shm> {}
// The layout documented in procshare_model::barrier (state 0, parties 4).
crate::shm::layout::assert_shm_layout!(RawBarrier<Shm> { size: 8, align: 4 });

/// A process-shared, reusable barrier (Python's `multiprocessing.Barrier`).
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
/// [`Barrier::with_action`] gives it CPython's `action`: a function that the
/// last party to arrive runs before anyone is released.
///
/// ```
/// use procshare::Barrier;
/// let b = Barrier::new(1).unwrap();
/// assert_eq!(b.wait().unwrap(), 0); // one party: passes at once
/// assert_eq!(b.parties(), 1);
/// ```
#[derive(Clone)]
pub struct Barrier {
    pub(crate) raw: ShmBox<RawBarrier<Shm>>,
    /// Run by the last arrival (a plain `fn`: valid in every forked process).
    pub(crate) action: Option<fn()>,
    /// The timeout of [`Barrier::wait`] (CPython's `timeout=`); `None`: forever.
    pub(crate) default_timeout: Option<Duration>,
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
            action: None,
            default_timeout: None,
        })
    }

    /// A barrier whose [`Barrier::wait`] waits at most `timeout` (Python's
    /// `Barrier(parties, timeout=timeout)`): when it passes, the barrier
    /// breaks and `wait` returns [`SyncError::BrokenBarrier`].
    /// [`Barrier::wait_timeout`] still uses its own timeout.
    ///
    /// ```
    /// use procshare::{Barrier, SyncError};
    /// use std::time::Duration;
    /// let b = Barrier::with_timeout(2, Duration::from_millis(10)).unwrap();
    /// assert!(matches!(b.wait(), Err(SyncError::BrokenBarrier))); // nobody came
    /// assert!(b.is_broken());
    /// assert_eq!(b.default_timeout(), Some(Duration::from_millis(10)));
    /// ```
    pub fn with_timeout(parties: u32, timeout: Duration) -> Result<Barrier, SyncError> {
        Ok(Barrier {
            default_timeout: Some(timeout),
            ..Barrier::new(parties)?
        })
    }

    /// This handle (and the clones made from it afterwards) with `timeout`
    /// as the timeout of [`Barrier::wait`] (`None`: forever), e.g. for a
    /// barrier with both an action and a timeout:
    /// `Barrier::with_action(3, f)?.set_default_timeout(Some(t))`.
    pub fn set_default_timeout(mut self, timeout: Option<Duration>) -> Barrier {
        self.default_timeout = timeout;
        self
    }

    /// The timeout of [`Barrier::wait`] (Python's `barrier._timeout`).
    pub fn default_timeout(&self) -> Option<Duration> {
        self.default_timeout
    }

    /// A barrier whose last arriving party runs `action` after all parties
    /// arrived and before any is released (Python's `Barrier(parties,
    /// action)`), once per generation. What the action writes to shared memory
    /// is visible to every party after `wait`. If it panics, that party's
    /// `wait` returns [`SyncError::BarrierActionFailed`] and the others
    /// [`SyncError::BrokenBarrier`].
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// use procshare::Barrier;
    /// use procshare::Process;
    /// fn bell() {
    ///     println!("all here");
    /// }
    /// let b = Barrier::with_action(2, bell).unwrap();
    /// let mut p = Process::new({
    ///     let b = b.clone();
    ///     move || {
    ///         b.wait().unwrap();
    ///     }
    /// });
    /// p.start().unwrap();
    /// b.wait().unwrap(); // "all here" is printed once, by whichever came last
    /// p.join().unwrap();
    /// ```
    pub fn with_action(parties: u32, action: fn()) -> Result<Barrier, SyncError> {
        Ok(Barrier {
            action: Some(action),
            ..Barrier::new(parties)?
        })
    }

    fn wait_inner(&self, timeout: Option<Duration>) -> Result<u32, SyncError> {
        let t = ShmThread::current();
        let Some(action) = self.action else {
            return self
                .raw
                .wait(&t, timeout)
                .map_err(|_| SyncError::BrokenBarrier);
        };
        let mut panicked = None;
        let r = self
            .raw
            .wait_with(&t, timeout, || match std::panic::catch_unwind(action) {
                Ok(()) => true,
                Err(p) => {
                    panicked = Some(crate::panic_message(&*p));
                    false
                }
            });
        r.map_err(|e| match (e, panicked) {
            (BarrierError::ActionFailed, Some(m)) => SyncError::BarrierActionFailed(m),
            _ => SyncError::BrokenBarrier,
        })
    }

    /// Waits until every party has arrived; returns this party's arrival index.
    /// With a default timeout ([`Barrier::with_timeout`]) it waits at most
    /// that long, as [`Barrier::wait_timeout`] does.
    pub fn wait(&self) -> Result<u32, SyncError> {
        self.wait_inner(self.default_timeout)
    }

    /// Waits at most `timeout`. On timeout the barrier breaks (for everyone)
    /// and this call returns [`SyncError::BrokenBarrier`], as in CPython.
    #[doc(alias = "wait")]
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
    #[doc(alias = "broken")]
    pub fn is_broken(&self) -> bool {
        self.raw.broken()
    }
}
