//! A job's result slots in the parent: filled by the dispatcher thread, read by
//! [`AsyncResult`](super::AsyncResult), [`MapResult`](super::MapResult) and the
//! `imap` iterators.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Instant;

use serde::de::DeserializeOwned;

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
    pub(crate) slots: Vec<Option<Result<R, PoolError>>>,
    /// Indices in the order their results arrived (for `imap_unordered`).
    pub(crate) arrived: VecDeque<usize>,
    remaining: usize,
    /// All results in and callbacks run.
    pub(crate) done: bool,
    callback: Option<OkCallback<R>>,
    error_callback: Option<ErrCallback>,
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
        let mut slots = Vec::with_capacity(n);
        slots.resize_with(n, || None);
        let job = Job {
            st: Mutex::new(State {
                slots,
                arrived: VecDeque::new(),
                remaining: n,
                done: false,
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

    fn put(&self, g: &mut State<R>, i: usize, v: Result<R, PoolError>) -> bool {
        match g.slots.get_mut(i) {
            Some(s @ None) => {
                *s = Some(v);
                g.arrived.push_back(i);
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
        if cb.is_some() || ecb.is_some() {
            let mut slots = std::mem::take(&mut g.slots);
            drop(g);
            let err = slots.iter().find_map(|s| match s {
                Some(Err(e)) => Some(e.clone()),
                _ => None,
            });
            // A panicking callback must not kill the dispatcher thread.
            match (err, cb, ecb) {
                (Some(e), _, Some(f)) => {
                    let _ = catch_unwind(AssertUnwindSafe(|| f(&e)));
                }
                (None, Some(f), _) => {
                    // Move the values out for the slice and back afterwards (no clone).
                    let owned: Vec<R> = slots
                        .iter_mut()
                        .filter_map(|s| match s.take() {
                            Some(Ok(v)) => Some(v),
                            _ => None,
                        })
                        .collect();
                    let _ = catch_unwind(AssertUnwindSafe(|| f(&owned)));
                    for (s, v) in slots.iter_mut().zip(owned) {
                        *s = Some(Ok(v));
                    }
                }
                _ => {}
            }
            g = self.lock();
            g.slots = slots;
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
        let mut g = self.lock();
        match body.split_first() {
            Some((0, mut rest)) => {
                for i in start..start + n {
                    let v = match postcard::take_from_bytes::<Result<R, TaskFailure>>(rest) {
                        Ok((v, r)) => {
                            rest = r;
                            match v {
                                Ok(v) => Ok(v),
                                Err(TaskFailure::Panicked(m)) => Err(PoolError::TaskPanicked(m)),
                                Err(TaskFailure::Unserializable(m)) => Err(PoolError::Serialize(m)),
                            }
                        }
                        Err(e) => {
                            rest = &[];
                            Err(PoolError::Decode(format!(
                                "cannot decode a task's result: {e}"
                            )))
                        }
                    };
                    self.put(&mut g, i, v);
                }
            }
            Some((_, msg)) => {
                let m = String::from_utf8_lossy(msg).into_owned();
                for i in start..start + n {
                    self.put(&mut g, i, Err(PoolError::Decode(m.clone())));
                }
            }
            None => {
                for i in start..start + n {
                    self.put(
                        &mut g,
                        i,
                        Err(PoolError::Decode("empty result frame".into())),
                    );
                }
            }
        }
        self.after_put(g);
    }

    fn fail(&self, start: usize, n: usize, err: PoolError) {
        let mut g = self.lock();
        for i in start..start + n {
            self.put(&mut g, i, Err(err.clone()));
        }
        self.after_put(g);
    }
}
