//! A job's result slots in the parent: filled by the dispatcher thread, read by
//! [`AsyncResult`](super::AsyncResult), [`MapResult`](super::MapResult) and the
//! `imap` iterators.
//!
//! Results are kept per unit (one `apply`, or one chunk of a `map`), in the
//! form they arrive: a chunk whose tasks all succeeded is one `Vec<R>`
//! decoded straight from the worker's answer, so a million-item `map` costs
//! its values and nothing per item for the rare error. Unit `k` of a job
//! holds tasks `k * chunksize ..` (the submitter cuts the items that way).
//!
//! A job read as a whole (`map`, `apply`; not `imap`) is *sequential*: the
//! units that arrive in order are decoded straight into one vector of all the
//! values (`seq`), and a unit that arrives early waits as its own vector until
//! those before it are in. `get` then hands out `seq` itself: no copy, no
//! second allocation.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::Instant;

use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::driver::{Help, Shared};
use super::worker::{TaskFailure, DONE_FAILED, DONE_RESULTS};
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

/// One unit's results that have not been taken yet.
pub(super) enum Results<R> {
    /// Every task succeeded: their values, in order.
    Values(std::vec::IntoIter<R>),
    /// Each task's own result, in order.
    Each(std::vec::IntoIter<Result<R, PoolError>>),
    /// Every task failed with this error; `left` of them are not taken yet.
    Failed { err: PoolError, left: usize },
}

/// A unit whose results arrived.
pub(super) struct Arrived<R> {
    /// The next task (job index) to be taken from `results`.
    pub(super) next: usize,
    pub(super) results: Results<R>,
}

impl<R> Arrived<R> {
    /// Take task `i`'s result; tasks are taken in order within a unit.
    pub(super) fn take(&mut self, i: usize) -> Result<R, PoolError> {
        if i != self.next {
            return Err(PoolError::AlreadyTaken);
        }
        let r = match &mut self.results {
            Results::Values(it) => it.next().map(Ok),
            Results::Each(it) => it.next(),
            Results::Failed { err, left } => (*left > 0).then(|| {
                *left -= 1;
                Err(err.clone())
            }),
        };
        let r = r.unwrap_or(Err(PoolError::AlreadyTaken));
        self.next += 1;
        r
    }
}

pub(crate) struct State<R> {
    /// Number of tasks.
    n: usize,
    /// Tasks per unit (the last unit may have fewer).
    chunk: usize,
    /// Decode units in order into `seq` (see the module documentation).
    sequential: bool,
    /// The values of units `0..seq_units`, in order (sequential jobs only).
    seq: Vec<R>,
    seq_units: usize,
    /// `units[k]` (`k >= seq_units`): unit `k`'s results, once they arrived.
    units: Vec<Option<Arrived<R>>>,
    /// The failed task with the lowest index, and its error.
    first_err: Option<(usize, PoolError)>,
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
    /// Take task `i`'s result (tasks of a unit are taken in order, as `imap`
    /// and `imap_unordered` do).
    pub(crate) fn take_one(&mut self, i: usize) -> Result<R, PoolError> {
        match self.units.get_mut(i / self.chunk) {
            Some(Some(a)) if i < self.n => a.take(i),
            _ => Err(PoolError::AlreadyTaken),
        }
    }

    pub(crate) fn all_ok(&self) -> bool {
        self.first_err.is_none()
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
        let seq = std::mem::take(&mut self.seq);
        let m = seq.len();
        let mut all = Vec::with_capacity(self.n);
        all.extend(seq.into_iter().map(Ok));
        all.extend((m..self.n).map(|i| self.take_one(i)));
        Ok(all)
    }

    /// Move every value out, in order, if every task succeeded (and none was taken).
    fn gather(&mut self) -> Result<Vec<R>, PoolError> {
        if let Some((_, e)) = &self.first_err {
            return Err(e.clone());
        }
        // A sequential job whose units are all in `seq`: that very vector.
        let mut out = std::mem::take(&mut self.seq);
        if self.units.len() > self.seq_units {
            out.reserve_exact(self.n.saturating_sub(out.len()));
        }
        for u in self.units.iter_mut().skip(self.seq_units) {
            match u.take() {
                Some(Arrived {
                    results: Results::Values(it),
                    ..
                }) => out.extend(it),
                _ => return Err(PoolError::AlreadyTaken),
            }
        }
        self.seq_units = self.units.len();
        if out.len() != self.n {
            return Err(PoolError::AlreadyTaken);
        }
        Ok(out)
    }

    /// Put gathered values back (as the job's sequence).
    fn put_back(&mut self, vals: Vec<R>) {
        self.seq = vals;
        self.seq_units = self.units.len();
    }

    /// Move the units that arrived early into `seq` once those before them are in.
    fn absorb(&mut self) {
        while self.sequential && self.seq_units < self.units.len() {
            match &mut self.units[self.seq_units] {
                Some(Arrived {
                    results: Results::Values(it),
                    ..
                }) => {
                    self.seq.extend(it);
                    self.units[self.seq_units] = None;
                    self.seq_units += 1;
                }
                // Not arrived yet; or a unit with failures, which stays as it
                // is (`get` returns the error, `get_all` reads each task).
                _ => break,
            }
        }
    }

    /// `f` of every value, in order, or the first error. The values are
    /// gathered into one vector (once; moved, not copied) and stay there.
    pub(crate) fn with_values<T>(&mut self, f: impl FnOnce(&[R]) -> T) -> Result<T, PoolError> {
        if self.taken {
            return Err(PoolError::AlreadyTaken);
        }
        if let Some((_, e)) = &self.first_err {
            return Err(e.clone());
        }
        let vals = self.gather()?;
        let out = f(&vals);
        self.put_back(vals);
        Ok(out)
    }

    /// Take every value, or the first error (once).
    pub(crate) fn take_values(&mut self) -> Result<Vec<R>, PoolError> {
        if self.taken {
            return Err(PoolError::AlreadyTaken);
        }
        if let Some((_, e)) = &self.first_err {
            return Err(e.clone());
        }
        self.taken = true;
        self.gather()
    }

    /// Record that unit `k` (tasks `start..start + n`) arrived; `first_err`
    /// is the index of its first failed task, if any, and that error.
    fn arrive(
        &mut self,
        start: usize,
        n: usize,
        a: Arrived<R>,
        first_err: Option<(usize, PoolError)>,
    ) {
        let k = start / self.chunk;
        if let Some(slot @ None) = self.units.get_mut(k) {
            *slot = Some(a);
            self.remaining -= n;
            if n > 0 {
                self.arrived.push_back((start, n));
            }
            self.absorb();
            if let Some((i, e)) = first_err {
                let earlier = match &self.first_err {
                    Some((j, _)) => i < *j,
                    None => true,
                };
                if earlier {
                    self.first_err = Some((i, e));
                }
            }
        }
    }

    /// The next unit in order arrived (already decoded into `seq`).
    fn arrive_in_order(&mut self, start: usize, n: usize) {
        self.seq_units += 1;
        self.remaining -= n;
        if n > 0 {
            self.arrived.push_back((start, n));
        }
        self.absorb();
    }

    /// Is `(start, n)` a unit of this job that has not arrived?
    fn expects(&self, start: usize, n: usize) -> bool {
        let k = start / self.chunk;
        start % self.chunk == 0
            && n == self.chunk.min(self.n.saturating_sub(start))
            && k >= self.seq_units
            && matches!(self.units.get(k), Some(None))
    }
}

/// A job of `n` tasks in units of `chunk` tasks.
pub(crate) struct Job<R> {
    st: Mutex<State<R>>,
    cv: Condvar,
    /// The pool, whose workers' answers a waiter may read itself before it
    /// sleeps (see [`Job::wait_until`]).
    pool: Option<Weak<Shared>>,
    /// How a unit's `Done` body is decoded (serde, or `Pod` bytes).
    decode_into: DecodeInto<R>,
}

/// Decodes a unit's `Done` body (see [`decode_into`]).
pub(crate) type DecodeInto<R> = fn(usize, usize, &[u8], &mut Vec<R>) -> Option<Decoded<R>>;

impl<R> Job<R> {
    /// `sequential`: the results are read as a whole (`map`, `apply`), not
    /// one by one (`imap`).
    pub(crate) fn new(
        n: usize,
        chunk: usize,
        sequential: bool,
        callback: Option<OkCallback<R>>,
        error_callback: Option<ErrCallback>,
        decode_into: DecodeInto<R>,
    ) -> Self {
        let chunk = chunk.max(1);
        let mut units = Vec::new();
        units.resize_with(n.div_ceil(chunk), || None);
        let job = Job {
            st: Mutex::new(State {
                n,
                chunk,
                sequential,
                seq: Vec::new(),
                seq_units: 0,
                units,
                first_err: None,
                arrived: VecDeque::new(),
                remaining: n,
                done: false,
                taken: false,
                callback,
                error_callback,
            }),
            cv: Condvar::new(),
            pool: None,
            decode_into,
        };
        if n == 0 {
            job.complete(job.lock());
        }
        job
    }

    /// Let waiters read `pool`'s answers themselves (see [`Job::wait_until`]).
    pub(crate) fn helped_by(mut self, pool: &Arc<Shared>) -> Self {
        self.pool = Some(Arc::downgrade(pool));
        self
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State<R>> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Run the callbacks (without the lock: a callback may look at other
    /// results) and wake every waiter.
    fn complete<'a>(&'a self, mut g: MutexGuard<'a, State<R>>) {
        let cb = g.callback.take();
        let ecb = g.error_callback.take();
        let err = g.first_err.as_ref().map(|(_, e)| e.clone());
        // A panicking callback must not kill the dispatcher thread.
        match (err, cb, ecb) {
            (Some(e), _, Some(f)) => {
                drop(g);
                let _ = catch_unwind(AssertUnwindSafe(|| f(&e)));
                g = self.lock();
            }
            (None, Some(f), _) => {
                // Move the values out for the slice and back afterwards (no clone).
                if let Ok(vals) = g.gather() {
                    drop(g);
                    let _ = catch_unwind(AssertUnwindSafe(|| f(&vals)));
                    g = self.lock();
                    g.put_back(vals);
                }
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
        if ready(&g) {
            return (g, true);
        }
        // Before sleeping, read the workers' answers from this thread for a
        // while (when a CPU is spare: see `Shared::may_spin`): the answer is
        // then taken as soon as it is sent, without waking the dispatcher
        // thread and then this one (two wake-ups that cost tens of µs each
        // where an idle CPU must be woken).
        if let Some(pool) = self.pool.as_ref().and_then(Weak::upgrade) {
            if let Some(spin) = pool.may_spin() {
                let start = Instant::now();
                loop {
                    drop(g);
                    pool.help(Help::Read);
                    g = self.lock();
                    if ready(&g) {
                        return (g, true);
                    }
                    let now = Instant::now();
                    if now.duration_since(start) >= spin || deadline.is_some_and(|d| now >= d) {
                        break;
                    }
                    std::hint::spin_loop();
                }
            }
        }
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

/// A unit's results and its first failed task (index and error), if any.
pub(super) type Decoded<R> = (Results<R>, Option<(usize, PoolError)>);

/// Decode a `Done` body for `n` tasks starting at job index `start` (see
/// the frame formats in `worker`): the unit's results and its first failed
/// task. Never panics on bad input: what does not decode is a
/// [`PoolError::Decode`] for the tasks concerned.
pub(super) fn decode<R: DeserializeOwned>(start: usize, n: usize, body: &[u8]) -> Decoded<R> {
    let mut vals = Vec::new();
    match decode_into(start, n, body, &mut vals) {
        None => (Results::Values(vals.into_iter()), None),
        Some(r) => r,
    }
}

/// [`decode`], appending the values to `vals` if every task succeeded
/// (`None`); otherwise `vals` is left as it was and the unit's results are
/// returned.
/// Every one of the `n` tasks from job index `start` failed with the
/// decode error `m` (a `Done` body that does not decode, or the worker's
/// message for a unit it could not run).
pub(super) fn unit_failed<R>(start: usize, n: usize, m: String) -> Decoded<R> {
    let err = PoolError::decode(m);
    let first = (n > 0).then(|| (start, err.clone()));
    (Results::Failed { err, left: n }, first)
}

/// The head of a `Done` body for `n` tasks from job index `start` (see the
/// frame formats in `worker`): the count of tasks that succeeded, how many
/// of their results are plain, and the bytes after both counts; or the
/// unit's failed results (the worker's `DONE_FAILED` message, or a body that
/// does not decode).
pub(super) fn done_counts<R>(
    start: usize,
    n: usize,
    body: &[u8],
) -> Result<(usize, usize, &[u8]), Decoded<R>> {
    let (status, rest) = match body.split_first() {
        Some((s, rest)) => (*s, rest),
        None => return Err(unit_failed(start, n, "empty result frame".to_string())),
    };
    if status == DONE_FAILED {
        return Err(unit_failed(
            start,
            n,
            String::from_utf8_lossy(rest).into_owned(),
        ));
    }
    let u32_at = |at: usize| {
        rest.get(at..at + 4)
            .map(|h| u32::from_le_bytes(h.try_into().expect("4 bytes")) as usize)
    };
    match (u32_at(0), u32_at(4)) {
        (Some(k), Some(p)) if status == DONE_RESULTS => Ok((k, p, &rest[8..])),
        _ => Err(unit_failed(
            start,
            n,
            format!("bad result frame (status {status})"),
        )),
    }
}

/// Append `p` plain values read from `de` to `vals`, which has room for
/// them; `false` at the first that does not decode (those before it are
/// appended).
///
/// A loop of its own in which nothing can grow `vals` (the room is checked
/// first): the vector's length then stays in a register, where a `push` that
/// may reallocate stores and reloads it per value.
fn plain_values<R: DeserializeOwned>(
    vals: &mut Vec<R>,
    de: &mut super::plain::PlainDe<'_>,
    p: usize,
) -> bool {
    vals.reserve(p);
    let mut d = de.clone();
    let mut ok = true;
    for _ in 0..p {
        if vals.len() == vals.capacity() {
            // Not reached (reserved above); keeps `push` from growing.
            ok = false;
            break;
        }
        match R::deserialize(&mut d) {
            Ok(v) => vals.push(v),
            Err(_) => {
                ok = false;
                break;
            }
        }
    }
    *de = d;
    ok
}

pub(super) fn decode_into<R: DeserializeOwned>(
    start: usize,
    n: usize,
    body: &[u8],
    vals: &mut Vec<R>,
) -> Option<Decoded<R>> {
    let (k, p, rest) = match done_counts(start, n, body) {
        Ok(c) => c,
        Err(failed) => return Some(failed),
    };
    if k > n || p > k {
        return Some(unit_failed(
            start,
            n,
            format!("{k} results ({p} plain) for {n} tasks"),
        ));
    }
    // The successful prefix: values of tasks 0..k, decoded straight into
    // their vector; the first `p` of them plain bytes, the rest postcard.
    let old = vals.len();
    vals.reserve(k);
    let mut bad: Option<PoolError> = None;
    let mut plain = super::plain::PlainDe::new(rest);
    if !plain_values(vals, &mut plain, p) {
        bad = Some(PoolError::decode(format!(
            "a task's result does not decode as {} (plain bytes)",
            core::any::type_name::<R>()
        )));
    }
    let mut de = postcard::Deserializer::from_bytes(plain.rest());
    let bad_result = |e: postcard::Error| PoolError::Decode {
        what: format!(
            "a task's result does not decode as {}: {e}",
            core::any::type_name::<R>()
        ),
        source: Some(std::sync::Arc::new(e)),
    };
    for _ in p..if bad.is_none() { k } else { p } {
        match R::deserialize(&mut de) {
            Ok(v) => vals.push(v),
            Err(e) => {
                bad = Some(bad_result(e));
                break;
            }
        }
    }
    if bad.is_none() && k == n {
        return None;
    }
    // Some task failed: each task's own result.
    let mut each: Vec<Result<R, PoolError>> = Vec::with_capacity(n);
    each.extend(vals.drain(old..).map(Ok));
    let mut first: Option<(usize, PoolError)> = None;
    while each.len() < n {
        let r = match &bad {
            Some(e) => Err(e.clone()),
            None => match <Result<R, TaskFailure>>::deserialize(&mut de) {
                Ok(Ok(v)) => Ok(v),
                Ok(Err(TaskFailure::Panicked(m))) => Err(PoolError::TaskPanicked(m)),
                Ok(Err(TaskFailure::Unserializable(m))) => Err(PoolError::Serialize(m)),
                Ok(Err(TaskFailure::BadArgument(m))) => Err(PoolError::decode(m)),
                Err(e) => {
                    let e = bad_result(e);
                    bad = Some(e.clone());
                    Err(e)
                }
            },
        };
        if let (Err(e), None) = (&r, &first) {
            first = Some((start + each.len(), e.clone()));
        }
        each.push(r);
    }
    Some((Results::Each(each.into_iter()), first))
}

impl<R: Send + 'static> Sink for Job<R> {
    fn deliver(&self, start: usize, n: usize, body: &[u8]) {
        // Decode without the lock: waiters and `imap` readers go on meanwhile
        // (only this thread delivers, and nobody reads `seq` before the job is
        // complete).
        let mut g = self.lock();
        if !g.expects(start, n) {
            return;
        }
        if g.sequential && start / g.chunk == g.seq_units {
            // The next unit in order: straight into `seq`.
            let mut seq = std::mem::take(&mut g.seq);
            let total = g.n;
            drop(g);
            if seq.capacity() == 0 {
                seq.reserve_exact(total);
            }
            let r = (self.decode_into)(start, n, body, &mut seq);
            g = self.lock();
            g.seq = seq;
            match r {
                None => g.arrive_in_order(start, n),
                Some((results, first_err)) => {
                    let a = Arrived {
                        next: start,
                        results,
                    };
                    g.arrive(start, n, a, first_err)
                }
            }
        } else {
            drop(g);
            let mut vals = Vec::new();
            let (results, first_err) = match (self.decode_into)(start, n, body, &mut vals) {
                None => (Results::Values(vals.into_iter()), None),
                Some(r) => r,
            };
            g = self.lock();
            let a = Arrived {
                next: start,
                results,
            };
            g.arrive(start, n, a, first_err);
        }
        self.after_put(g);
    }

    fn fail(&self, start: usize, n: usize, err: PoolError) {
        let mut g = self.lock();
        if !g.expects(start, n) {
            return;
        }
        let first = (n > 0).then(|| (start, err.clone()));
        g.arrive(
            start,
            n,
            Arrived {
                next: start,
                results: Results::Failed { err, left: n },
            },
            first,
        );
        self.after_put(g);
    }
}
