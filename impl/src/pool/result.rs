//! The handles of submitted work: [`MapResult`], [`AsyncResult`], [`Imap`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::job::Job;
use super::stream::Stream;
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

    /// Wait for every result (until `deadline`), then `f` of the values.
    fn with_values<T>(
        &self,
        deadline: Option<Instant>,
        f: impl FnOnce(&[R]) -> T,
    ) -> Result<T, PoolError> {
        let (mut g, ok) = self.job.wait_until(deadline, |s| s.done);
        if !ok {
            return Err(PoolError::Timeout);
        }
        g.with_values(f)
    }

    /// Every task's own result, in order (errors where tasks failed).
    pub fn get_all(self) -> Result<Vec<Result<R, PoolError>>, PoolError> {
        let (mut g, _) = self.job.wait_until(None, |s| s.done);
        g.take_all()
    }

    /// Wait for all results; the first failed task's error if any failed.
    ///
    /// As CPython's `get`, it may be called any number of times and returns
    /// the same results each time (copies: `R: Clone`; the results stay in
    /// the `MapResult`). [`MapResult::into_values`] moves them out instead,
    /// for results that are not `Clone` or too large to copy.
    pub fn get(&self) -> Result<Vec<R>, PoolError>
    where
        R: Clone,
    {
        self.with_values(None, <[R]>::to_vec)
    }

    /// [`MapResult::get`] waiting at most `t` ([`PoolError::Timeout`] if
    /// the results are not all in by then; they stay for a later call).
    pub fn get_timeout(&self, t: Duration) -> Result<Vec<R>, PoolError>
    where
        R: Clone,
    {
        self.with_values(Instant::now().checked_add(t), <[R]>::to_vec)
    }

    /// Wait for all results and move them out (no copy, no `Clone` bound);
    /// the first failed task's error if any failed.
    pub fn into_values(self) -> Result<Vec<R>, PoolError> {
        let (mut g, _) = self.job.wait_until(None, |s| s.done);
        g.take_values()
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
    ///
    /// As CPython's `get`, it may be called any number of times (also after
    /// [`AsyncResult::get_timeout`]) and returns the same result each time:
    /// a copy (`R: Clone`), the value staying in the `AsyncResult`.
    /// [`AsyncResult::into_value`] moves it out instead, for a result that is
    /// not `Clone` or too large to copy.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// use procshare::Pool;
    /// fn hello(n: usize) -> String { "hi".repeat(n) }
    /// let pool = Pool::new(1).unwrap();
    /// let r = pool.apply_async(hello, 2).unwrap();
    /// assert_eq!(r.get().unwrap(), "hihi");
    /// assert_eq!(r.get().unwrap(), "hihi");
    /// assert_eq!(r.into_value().unwrap(), "hihi");
    /// ```
    pub fn get(&self) -> Result<R, PoolError>
    where
        R: Clone,
    {
        self.inner.with_values(None, first_clone)?
    }

    /// [`AsyncResult::get`] waiting at most `t` ([`PoolError::Timeout`] if
    /// the result is not in by then; it stays for a later call).
    pub fn get_timeout(&self, t: Duration) -> Result<R, PoolError>
    where
        R: Clone,
    {
        self.inner
            .with_values(Instant::now().checked_add(t), first_clone)?
    }

    /// Wait for the result and move it out (no copy, no `Clone` bound).
    pub fn into_value(self) -> Result<R, PoolError> {
        self.inner
            .into_values()?
            .into_iter()
            .next()
            .ok_or(PoolError::AlreadyTaken)
    }
}

/// The one value of an `apply`'s job.
fn first_clone<R: Clone>(v: &[R]) -> Result<R, PoolError> {
    v.first().cloned().ok_or(PoolError::AlreadyTaken)
}

/// The iterator of [`Pool::imap`] and [`Pool::imap_unordered`]: one
/// `Result` per task. Dropping it stops the reading of the input (the
/// chunks already read still run; their results are dropped).
pub struct Imap<R> {
    pub(super) stream: Arc<Stream<R>>,
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
        self.stream
            .next(&mut self.next, self.ordered, Instant::now().checked_add(t))
    }
}

impl<R> Iterator for Imap<R> {
    type Item = Result<R, PoolError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.stream.next(&mut self.next, self.ordered, None)
    }
}

impl<R> Drop for Imap<R> {
    fn drop(&mut self) {
        self.stream.stop();
    }
}
