//! A job's result slots in the parent: filled by the dispatcher thread, read by
//! [`AsyncResult`](super::AsyncResult), [`MapResult`](super::MapResult) and the
//! `imap` iterators.
//!
//! Values and errors are kept apart (`vals[i]` is a plain `Option<R>`, errors
//! sit in a small map) so that a million-item `map` costs a million `Option<R>`
//! and nothing per item for the rare error.

use std::collections::{BTreeMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Instant;

use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::worker::TaskFailure;
use super::PoolError;

/// What the dispatcher thread sees of a job: untyped delivery.
pub(crate) trait Sink: Send + Sync {
    /// Results of tasks `start..start + n` (a `Done` body).
    fn deliver(&self, start: usize, n: usize, body: &[u8]);
    /// Tasks `start..start + n` failed with `err`.
    fn fail(&self, start: usize, n: usize, err: PoolError);
}

pub(crate) type OkCallback<R> = Box<dyn FnOnce(&[R]) + Send>;
pub(crate) type ErrCallback = Box<dyn FnOnce(&PoolError) + Send>;

pub(crate) struct State<R> {
    /// `vals[i]`: task `i`'s value, once it arrived (and until taken).
    vals: Vec<Option<R>>,
    /// Failed tasks' errors (until taken).
    errs: BTreeMap<usize, PoolError>,
    /// Which tasks have a result (value or error) delivered.
    filled: Vec<bool>,
    /// Ranges `(start, n)` in the order they arrived (for `imap_unordered`).
    arrived: VecDeque<(usize, usize)>,
    remaining: usize,
    /// All results in and callbacks run.
    pub(crate) done: bool,
    /// `get` took the results.
    taken: bool,
    callback: Option<OkCallback<R>>,
    error_callback: Option<ErrCallback>,
}

impl<R> State<R> {
    pub(crate) fn len(&self) -> usize {
        self.filled.len()
    }

    pub(crate) fn is_filled(&self, i: usize) -> bool {
        self.filled.get(i).copied().unwrap_or(false)
    }

    pub(crate) fn has_arrivals(&self) -> bool {
        !self.arrived.is_empty()
    }

    /// The next index in arrival order.
    pub(crate) fn pop_arrival(&mut self) -> Option<usize> {
        let (s, n) = self.arrived.front_mut()?;
        let i = *s;
        *s += 1;
        *n -= 1;
        if *n == 0 {
            self.arrived.pop_front();
        }
        Some(i)
    }

    /// Take task `i`'s result.
    pub(crate) fn take_one(&mut self, i: usize) -> Result<R, PoolError> {
        if let Some(e) = self.errs.remove(&i) {
            return Err(e);
        }
        match self.vals.get_mut(i).and_then(Option::take) {
            Some(v) => Ok(v),
            None => Err(PoolError::AlreadyTaken),
        }
    }

    pub(crate) fn all_ok(&self) -> bool {
        self.errs.is_empty()
    }

    /// Every task has its result (callbacks may still be running; `get`
    /// waits for them, `ready`/`successful` do not need to).
    pub(crate) fn is_complete(&self) -> bool {
        self.remaining == 0
    }

    /// Take every result (once).
    pub(crate) fn take_all(&mut self) -> Result<Vec<Result<R, PoolError>>, PoolError> {
        if self.taken {
            return Err(PoolError::AlreadyTaken);
        }
        self.taken = true;
        let n = self.len();
        Ok((0..n).map(|i| self.take_one(i)).collect())
    }

    /// Take every value, or the first error (once).
    pub(crate) fn take_values(&mut self) -> Result<Vec<R>, PoolError> {
        if self.taken {
            return Err(PoolError::AlreadyTaken);
        }
        if let Some((_, e)) = self.errs.iter().next() {
            return Err(e.clone());
        }
        self.taken = true;
        let vals = std::mem::take(&mut self.vals);
        vals.into_iter()
            .map(|v| match v {
                Some(v) => Ok(v),
                None => Err(PoolError::AlreadyTaken),
            })
            .collect()
    }
}

/// A job of `n` tasks.
pub(crate) struct Job<R> {
    st: Mutex<State<R>>,
    cv: Condvar,
}

impl<R> Job<R> {
    pub(crate) fn new(
        n: usize,
        callback: Option<OkCallback<R>>,
        error_callback: Option<ErrCallback>,
    ) -> Self {
        let mut vals = Vec::with_capacity(n);
        vals.resize_with(n, || None);
        let job = Job {
            st: Mutex::new(State {
                vals,
                errs: BTreeMap::new(),
                filled: vec![false; n],
                arrived: VecDeque::new(),
                remaining: n,
                done: false,
                taken: false,
                callback,
                error_callback,
            }),
            cv: Condvar::new(),
        };
        if n == 0 {
            job.complete(job.lock());
        }
        job
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State<R>> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Claim slot `i` for a result; `false` if out of range or already filled.
    fn claim(g: &mut State<R>, i: usize) -> bool {
        match g.filled.get_mut(i) {
            Some(f @ false) => {
                *f = true;
                g.remaining -= 1;
                true
            }
            _ => false,
        }
    }

    /// Run the callbacks (without the lock: a callback may look at other
    /// results) and wake every waiter.
    fn complete<'a>(&'a self, mut g: MutexGuard<'a, State<R>>) {
        let cb = g.callback.take();
        let ecb = g.error_callback.take();
        let err = g.errs.values().next().cloned();
        // A panicking callback must not kill the dispatcher thread.
        match (err, cb, ecb) {
            (Some(e), _, Some(f)) => {
                drop(g);
                let _ = catch_unwind(AssertUnwindSafe(|| f(&e)));
                g = self.lock();
            }
            (None, Some(f), _) => {
                // Move the values out for the slice and back afterwards (no clone).
                let vals = std::mem::take(&mut g.vals);
                drop(g);
                let owned: Vec<R> = vals.into_iter().flatten().collect();
                let _ = catch_unwind(AssertUnwindSafe(|| f(&owned)));
                g = self.lock();
                g.vals = owned.into_iter().map(Some).collect();
            }
            _ => {}
        }
        g.done = true;
        drop(g);
        self.cv.notify_all();
    }

    /// Wait until `ready(state)` or the deadline; returns the guard and whether it is ready.
    pub(crate) fn wait_until(
        &self,
        deadline: Option<Instant>,
        ready: impl Fn(&State<R>) -> bool,
    ) -> (MutexGuard<'_, State<R>>, bool) {
        let mut g = self.lock();
        loop {
            if ready(&g) {
                return (g, true);
            }
            match deadline {
                None => g = self.cv.wait(g).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return (g, false);
                    }
                    g = self
                        .cv
                        .wait_timeout(g, d - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        }
    }

    fn after_put<'a>(&'a self, g: MutexGuard<'a, State<R>>) {
        if g.remaining == 0 && !g.done {
            self.complete(g);
        } else {
            drop(g);
            self.cv.notify_all();
        }
    }
}

impl<R: DeserializeOwned + Send> Sink for Job<R> {
    fn deliver(&self, start: usize, n: usize, body: &[u8]) {
        // Decode straight into the slots (the waiters sleep meanwhile).
        let mut g = self.lock();
        let mut any = false;
        match body.split_first() {
            Some((0, rest)) => {
                let mut de = postcard::Deserializer::from_bytes(rest);
                let mut broken = false;
                for i in start..start + n {
                    let r = if broken {
                        Err(postcard::Error::DeserializeUnexpectedEnd)
                    } else {
                        <Result<R, TaskFailure>>::deserialize(&mut de)
                    };
                    let v = match r {
                        Ok(v) => match v {
                            Ok(v) => Ok(v),
                            Err(TaskFailure::Panicked(m)) => Err(PoolError::TaskPanicked(m)),
                            Err(TaskFailure::Unserializable(m)) => Err(PoolError::Serialize(m)),
                        },
                        Err(e) => {
                            broken = true;
                            Err(PoolError::Decode(format!(
                                "cannot decode a task's result: {e}"
                            )))
                        }
                    };
                    if Self::claim(&mut g, i) {
                        any = true;
                        match v {
                            Ok(v) => g.vals[i] = Some(v),
                            Err(e) => {
                                g.errs.insert(i, e);
                            }
                        }
                    }
                }
            }
            Some((2, rest)) => {
                let mut de = postcard::Deserializer::from_bytes(rest);
                match <Vec<R>>::deserialize(&mut de) {
                    Ok(vs) if vs.len() == n => {
                        for (i, v) in (start..).zip(vs) {
                            if Self::claim(&mut g, i) {
                                any = true;
                                g.vals[i] = Some(v);
                            }
                        }
                    }
                    r => {
                        let m = match r {
                            Ok(vs) => format!("{} results for {n} tasks", vs.len()),
                            Err(e) => format!("cannot decode the tasks' results: {e}"),
                        };
                        for i in start..start + n {
                            if Self::claim(&mut g, i) {
                                any = true;
                                g.errs.insert(i, PoolError::Decode(m.clone()));
                            }
                        }
                    }
                }
            }
            other => {
                let m = match other {
                    Some((_, msg)) => String::from_utf8_lossy(msg).into_owned(),
                    None => "empty result frame".to_string(),
                };
                for i in start..start + n {
                    if Self::claim(&mut g, i) {
                        any = true;
                        g.errs.insert(i, PoolError::Decode(m.clone()));
                    }
                }
            }
        }
        if any {
            g.arrived.push_back((start, n));
        }
        self.after_put(g);
    }

    fn fail(&self, start: usize, n: usize, err: PoolError) {
        let mut g = self.lock();
        let mut any = false;
        for i in start..start + n {
            if Self::claim(&mut g, i) {
                any = true;
                g.errs.insert(i, err.clone());
            }
        }
        if any {
            g.arrived.push_back((start, n));
        }
        self.after_put(g);
    }
}
