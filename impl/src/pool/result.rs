//! The handles of submitted work: [`MapResult`], [`AsyncResult`], [`Imap`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::job::Job;
#[cfg(doc)]
use super::Pool;
use super::PoolError;

/// The result of [`Pool::map_async`] / [`Pool::starmap_async`] (CPython's
/// `MapResult`).
pub struct MapResult<R> {
    pub(super) job: Arc<Job<R>>,
}

impl<R> core::fmt::Debug for MapResult<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MapResult")
            .field("ready", &self.ready())
            .finish()
    }
}

impl<R> MapResult<R> {
    /// Are all results in?
    pub fn ready(&self) -> bool {
        self.job.lock().is_complete()
    }

    /// Wait until all results are in.
    pub fn wait(&self) {
        let _ = self.job.wait_until(None, |s| s.done);
    }

    /// Wait at most `t`; returns whether all results are in.
    pub fn wait_timeout(&self, t: Duration) -> bool {
        self.job
            .wait_until(Instant::now().checked_add(t), |s| s.done)
            .1
    }

    /// Did every task succeed? [`PoolError::NotReady`] before [`MapResult::ready`].
    pub fn successful(&self) -> Result<bool, PoolError> {
        let g = self.job.lock();
        if !g.is_complete() {
            return Err(PoolError::NotReady);
        }
        Ok(g.all_ok())
    }

    fn values(&self, deadline: Option<Instant>) -> Result<Vec<R>, PoolError> {
        let (mut g, ok) = self.job.wait_until(deadline, |s| s.done);
        if !ok {
            return Err(PoolError::Timeout);
        }
        g.take_values()
    }

    /// Every task's own result, in order (errors where tasks failed).
    pub fn get_all(self) -> Result<Vec<Result<R, PoolError>>, PoolError> {
        let (mut g, _) = self.job.wait_until(None, |s| s.done);
        g.take_all()
    }

    /// Wait for all results; the first failed task's error if any failed.
    pub fn get(self) -> Result<Vec<R>, PoolError> {
        self.values(None)
    }

    /// [`MapResult::get`] waiting at most `t` ([`PoolError::Timeout`]; the
    /// results stay for a later call). On success the results are moved out.
    pub fn get_timeout(&self, t: Duration) -> Result<Vec<R>, PoolError> {
        self.values(Instant::now().checked_add(t))
    }
}

/// The result of [`Pool::apply_async`] (CPython's `AsyncResult`).
///
/// ```
/// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
/// use procshare::{Pool, PoolError};
/// use std::time::Duration;
/// fn boom(_: ()) -> u8 { panic!("no luck") }
/// let pool = Pool::new(1).unwrap();
/// let r = pool.apply_async(boom, ()).unwrap();
/// r.wait();
/// assert!(r.ready());
/// assert_eq!(r.successful(), Ok(false));
/// assert_eq!(r.get_timeout(Duration::from_secs(5)), Err(PoolError::TaskPanicked("no luck".into())));
/// ```
pub struct AsyncResult<R> {
    pub(super) inner: MapResult<R>,
}

impl<R> core::fmt::Debug for AsyncResult<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AsyncResult")
            .field("ready", &self.ready())
            .finish()
    }
}

impl<R> AsyncResult<R> {
    /// Is the result in?
    pub fn ready(&self) -> bool {
        self.inner.ready()
    }

    /// Wait for the result.
    pub fn wait(&self) {
        self.inner.wait()
    }

    /// Wait at most `t`; returns whether the result is in.
    pub fn wait_timeout(&self, t: Duration) -> bool {
        self.inner.wait_timeout(t)
    }

    /// Did the task succeed? [`PoolError::NotReady`] before it finished.
    pub fn successful(&self) -> Result<bool, PoolError> {
        self.inner.successful()
    }

    /// Wait for the result.
    pub fn get(self) -> Result<R, PoolError> {
        first(self.inner.values(None)?)
    }

    /// Wait at most `t` for the result ([`PoolError::Timeout`]: it stays for a
    /// later call). On success the value is moved out.
    pub fn get_timeout(&self, t: Duration) -> Result<R, PoolError> {
        first(self.inner.values(Instant::now().checked_add(t))?)
    }
}

fn first<R>(v: Vec<R>) -> Result<R, PoolError> {
    v.into_iter().next().ok_or(PoolError::AlreadyTaken)
}

/// The iterator of [`Pool::imap`] and [`Pool::imap_unordered`]: one
/// `Result` per task.
pub struct Imap<R> {
    pub(super) job: Arc<Job<R>>,
    pub(super) next: usize,
    pub(super) ordered: bool,
}

impl<R> core::fmt::Debug for Imap<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Imap")
            .field("next", &self.next)
            .field("ordered", &self.ordered)
            .finish()
    }
}

impl<R> Imap<R> {
    /// The next result, waiting at most `t` (CPython's `next(timeout)`):
    /// `None` at the end, `Some(Err(Timeout))` if it is not there in time.
    pub fn next_timeout(&mut self, t: Duration) -> Option<Result<R, PoolError>> {
        self.next_inner(Instant::now().checked_add(t))
    }

    fn next_inner(&mut self, deadline: Option<Instant>) -> Option<Result<R, PoolError>> {
        let n = self.job.lock().len();
        if self.next >= n {
            return None;
        }
        let i = self.next;
        let (mut g, ok) = if self.ordered {
            self.job.wait_until(deadline, |s| s.is_filled(i))
        } else {
            self.job.wait_until(deadline, |s| s.has_arrivals())
        };
        if !ok {
            return Some(Err(PoolError::Timeout));
        }
        self.next += 1;
        let idx = if self.ordered {
            i
        } else {
            g.pop_arrival().expect("checked")
        };
        Some(g.take_one(idx))
    }
}

impl<R> Iterator for Imap<R> {
    type Item = Result<R, PoolError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_inner(None)
    }
}
