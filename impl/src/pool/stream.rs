//! A streaming `imap`: its input is read by a feeder thread, a bounded number
//! of chunks ahead of the results the caller has taken, and each chunk is
//! submitted as soon as it is read (as a unit of a *feed*, see
//! [`procshare_model::pool`], step 6).
//!
//! So the first result can arrive before the input ends, an endless input
//! works, and memory stays bounded: at most [`CHUNKS_AHEAD_PER_WORKER`] ×
//! `processes` chunks are read and not yet taken (submitted, running, or
//! results waiting to be taken).

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use procshare_model::pool::FeedId;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::driver::{self, Frame, Shared, Submission};
use super::job::{decode, Arrived, Results, Sink};
use super::worker::{self, Tramp};
use super::PoolError;

/// How many chunks per worker a streaming `imap` reads ahead of the results
/// taken: enough for each worker's unit in flight and its prefetched next
/// one, and for results waiting to be taken.
pub(crate) const CHUNKS_AHEAD_PER_WORKER: usize = 4;

/// A unit's results, once they arrived; `Taken` once all are taken.
enum Slot<R> {
    Pending,
    Arrived(Arrived<R>),
    Taken,
}

pub(crate) struct StreamState<R> {
    /// Tasks per unit (only the last unit may have fewer).
    chunk: usize,
    /// At most this many tasks read and not taken.
    limit: usize,
    /// The unit index of `units.front()`; units before it are all taken.
    base: usize,
    units: VecDeque<Slot<R>>,
    /// Tasks submitted so far.
    n: usize,
    /// Tasks taken by the iterator.
    taken: usize,
    /// No more units will be submitted.
    ended: bool,
    /// What ended the input early (an item that does not serialize, a pool
    /// that stopped): the result after the last task.
    tail: Option<PoolError>,
    /// Ranges `(start, n)` in the order they arrived (for `imap_unordered`).
    arrived: VecDeque<(usize, usize)>,
    /// The iterator was dropped: read no further.
    stop: bool,
}

impl<R> StreamState<R> {
    fn slot(&mut self, i: usize) -> Option<&mut Slot<R>> {
        let k = (i / self.chunk).checked_sub(self.base)?;
        self.units.get_mut(k)
    }

    /// Has task `i`'s unit arrived?
    pub(crate) fn is_filled(&mut self, i: usize) -> bool {
        i < self.n && matches!(self.slot(i), Some(Slot::Arrived(_)))
    }

    /// Take task `i`'s result (tasks of a unit are taken in order).
    fn take(&mut self, i: usize) -> Result<R, PoolError> {
        let end = ((i / self.chunk + 1) * self.chunk).min(self.n);
        let r = match self.slot(i) {
            Some(Slot::Arrived(a)) => a.take(i),
            _ => Err(PoolError::AlreadyTaken),
        };
        self.taken += 1;
        if i + 1 == end {
            if let Some(s) = self.slot(i) {
                *s = Slot::Taken;
            }
            while let Some(Slot::Taken) = self.units.front() {
                self.units.pop_front();
                self.base += 1;
            }
        }
        r
    }
}

/// The results of a streaming `imap`, filled by the dispatcher thread, read
/// by [`Imap`](super::Imap), and throttling the feeder thread.
pub(crate) struct Stream<R> {
    st: Mutex<StreamState<R>>,
    cv: Condvar,
}

impl<R> Stream<R> {
    pub(crate) fn new(chunk: usize, limit: usize) -> Stream<R> {
        Stream {
            st: Mutex::new(StreamState {
                chunk: chunk.max(1),
                limit: limit.max(1),
                base: 0,
                units: VecDeque::new(),
                n: 0,
                taken: 0,
                ended: false,
                tail: None,
                arrived: VecDeque::new(),
                stop: false,
            }),
            cv: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, StreamState<R>> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wait until `ready(state)` or the deadline; the guard and whether it is ready.
    fn wait_until(
        &self,
        deadline: Option<Instant>,
        ready: impl Fn(&mut StreamState<R>) -> bool,
    ) -> (MutexGuard<'_, StreamState<R>>, bool) {
        let mut g = self.lock();
        loop {
            if ready(&mut g) {
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

    /// The next result in order (`ordered`) or of arrival: `None` at the end,
    /// `Some(Err(Timeout))` if none came by `deadline`.
    pub(crate) fn next(
        &self,
        next: &mut usize,
        ordered: bool,
        deadline: Option<Instant>,
    ) -> Option<Result<R, PoolError>> {
        let i = *next;
        let (mut g, ok) = if ordered {
            self.wait_until(deadline, |s| s.is_filled(i) || (s.ended && i >= s.n))
        } else {
            self.wait_until(deadline, |s| {
                !s.arrived.is_empty() || (s.ended && s.taken >= s.n)
            })
        };
        if !ok {
            return Some(Err(PoolError::Timeout));
        }
        let idx = if ordered {
            (i < g.n).then_some(i)
        } else {
            pop_arrival(&mut g.arrived)
        };
        let r = match idx {
            Some(idx) => {
                *next += 1;
                g.take(idx)
            }
            // The end: what ended the input early, once.
            None => return g.tail.take().map(Err),
        };
        drop(g);
        // Room for the feeder.
        self.cv.notify_all();
        Some(r)
    }

    /// The iterator is gone: the feeder stops reading.
    pub(crate) fn stop(&self) {
        self.lock().stop = true;
        self.cv.notify_all();
    }

    /// The feeder: wait for room; `false` if the iterator is gone.
    fn wait_room(&self) -> bool {
        let (g, _) = self.wait_until(None, |s| s.stop || s.n - s.taken < s.limit);
        !g.stop
    }

    /// The feeder read a unit of `n` tasks: its first task's index.
    fn add_unit(&self, n: usize) -> usize {
        let mut g = self.lock();
        let start = g.n;
        g.n += n;
        g.units.push_back(Slot::Pending);
        start
    }

    /// The feeder stops (`tail`: why, if early).
    fn end(&self, tail: Option<PoolError>) {
        let mut g = self.lock();
        g.ended = true;
        if g.tail.is_none() {
            g.tail = tail;
        }
        drop(g);
        self.cv.notify_all();
    }

    fn put(&self, start: usize, n: usize, results: Results<R>) {
        let mut g = self.lock();
        if start % g.chunk != 0 {
            return;
        }
        if let Some(s @ Slot::Pending) = g.slot(start) {
            *s = Slot::Arrived(Arrived {
                next: start,
                results,
            });
            if n > 0 {
                g.arrived.push_back((start, n));
            }
        }
        drop(g);
        self.cv.notify_all();
    }
}

/// A stream whose read-ahead bound can be lifted (see [`Shared::unthrottle`]).
pub(crate) trait Throttled: Send + Sync {
    /// Read the rest of the input without waiting for results to be taken.
    fn unthrottle(&self);
}

impl<R: Send> Throttled for Stream<R> {
    fn unthrottle(&self) {
        self.lock().limit = usize::MAX;
        self.cv.notify_all();
    }
}

/// The next index in arrival order.
fn pop_arrival(arrived: &mut VecDeque<(usize, usize)>) -> Option<usize> {
    let (s, n) = arrived.front_mut()?;
    let i = *s;
    *s += 1;
    *n -= 1;
    if *n == 0 {
        arrived.pop_front();
    }
    Some(i)
}

impl<R: DeserializeOwned + Send> Sink for Stream<R> {
    fn deliver(&self, start: usize, n: usize, body: &[u8]) {
        // Decode without the lock.
        let (results, _) = decode::<R>(start, n, body);
        self.put(start, n, results);
    }

    fn fail(&self, start: usize, n: usize, err: PoolError) {
        self.put(start, n, Results::Failed { err, left: n });
    }
}

/// What the feeder thread needs to encode units.
pub(crate) struct FeedSpec {
    pub(crate) tramp: Tramp,
    pub(crate) func: usize,
    pub(crate) chunk: usize,
    pub(crate) feed: FeedId,
}

/// The feeder thread's body: read `items` a chunk at a time while there is
/// room, submit each chunk as a unit of feed `spec.feed`, and close the feed
/// at the end of the input, when the iterator is dropped, or on an error.
pub(crate) fn feed<B: Serialize, R: DeserializeOwned + Send + 'static>(
    shared: Arc<Shared>,
    stream: Arc<Stream<R>>,
    spec: FeedSpec,
    mut items: impl Iterator<Item = B>,
) {
    // A panicking input iterator ends the results with its message (and the
    // feed is closed all the same: a closed pool still finishes).
    let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        read_units(&shared, &stream, &spec, &mut items)
    }));
    let tail = match read {
        Ok(tail) => tail,
        Err(p) => Some(PoolError::InputPanicked(crate::panic_message(&*p))),
    };
    shared.close_feed(spec.feed);
    stream.end(tail);
}

/// The feeder's loop (see [`feed`]); what ended the input early, if anything.
fn read_units<B: Serialize, R: DeserializeOwned + Send + 'static>(
    shared: &Arc<Shared>,
    stream: &Arc<Stream<R>>,
    spec: &FeedSpec,
    items: &mut impl Iterator<Item = B>,
) -> Option<PoolError> {
    let per_item = 1 + std::mem::size_of::<B>();
    let mut tail = None;
    while stream.wait_room() {
        let unit = shared.new_id();
        let mut buf = driver::spare_frame(&shared.spare);
        let got = match worker::unit_frame(
            &mut buf,
            unit,
            spec.tramp,
            spec.func,
            items.by_ref(),
            spec.chunk,
            per_item,
        ) {
            Ok(got) => got,
            Err(e) => {
                // The chunk holding an item that does not serialize is not
                // run: its place ends the results with the error.
                tail = Some(PoolError::Encode(Arc::new(e)));
                break;
            }
        };
        if got == 0 {
            break;
        }
        let start = stream.add_unit(got);
        let sink: Arc<dyn Sink> = stream.clone();
        let sub = Submission {
            unit,
            frame: Arc::new(Frame::recycled(buf, &shared.spare)),
            sink,
            start,
            n: got,
            feed: Some(spec.feed),
        };
        if let Err(e) = shared.hand_over(vec![sub]) {
            stream.fail(start, got, e);
            break;
        }
        if got < spec.chunk {
            break;
        }
    }
    tail
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A unit whose tasks are all taken leaves the window (`units` keeps
    /// only what is not taken yet: memory stays bounded on an endless input).
    #[test]
    fn taken_units_leave_the_window() {
        let mut st = StreamState::<u32> {
            chunk: 2,
            limit: 8,
            base: 0,
            units: VecDeque::new(),
            n: 4,
            taken: 0,
            ended: true,
            tail: None,
            arrived: VecDeque::new(),
            stop: false,
        };
        for u in 0..2u32 {
            st.units.push_back(Slot::Arrived(Arrived {
                next: u as usize * 2,
                results: Results::Values(vec![u * 10, u * 10 + 1].into_iter()),
            }));
        }
        assert!(st.is_filled(0) && st.is_filled(3) && !st.is_filled(4));
        assert_eq!(st.take(0), Ok(0));
        assert_eq!((st.units.len(), st.base), (2, 0));
        assert_eq!(st.take(1), Ok(1));
        assert_eq!((st.units.len(), st.base), (1, 1), "a taken unit stayed");
        assert_eq!(st.take(2), Ok(10));
        assert_eq!(st.take(3), Ok(11));
        assert_eq!((st.units.len(), st.base, st.taken), (0, 2, 4));
        assert_eq!(st.take(3), Err(PoolError::AlreadyTaken));
    }
}
