//! `Queue<T>`: Python's `multiprocessing.Queue` over a ring in shared memory.

pub(crate) mod joinable;
pub(crate) mod pipe;
pub(crate) mod pod;
#[cfg(feature = "fuzzing")]
pub(crate) mod pod_fuzzing;
pub(crate) mod simple;

use core::marker::PhantomData;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::Arc;

use procshare_model::ring::{
    Chunk, Message, Reclaim, Ring, RingError, RingHeader, Sink, Wait, CHUNK, MAX_ITEMS,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec::wire::{self, WireError};
use crate::platform::{Shm, ShmCell, ShmThread};
use crate::shm::{Segment, ShmBox, ShmError, ShmSafe, ShmSlice};

// SAFETY: RingHeader<Shm> is #[repr(C)]: two RawMutex<Shm> (an AtomicU32 and an AtomicU64 each),
// ShmWord32/ShmWord64 atomics, and two plain integers written once before the
// header is shared. No pointers, no drop glue; any bit pattern is memory-safe
// (inconsistent positions are detected and reported as `Corrupt`).
unsafe impl ShmSafe for RingHeader<Shm> {}
// The layout documented at procshare_model::ring::RingHeader: five 64-byte
// lines (prod 0, tail 64, cons 128, head 192, closed 256), then capacity 320,
// max_items 328, reclaim_shift 332, reclaimed 336.
crate::shm::layout::assert_shm_layout!(RingHeader<Shm> { size: 384, align: 64 });

/// Default ring size: 16 GiB of *address space* over a sparse memfd, which
/// holds memory only for what is in the queue (consumed pages are given back
/// as they are read). A queue of this size is, in practice, unbounded: `put`
/// never waits for room (Python's `Queue()`); only `maxsize` bounds it.
pub const DEFAULT_CAPACITY: usize = 16 << 30;

/// Rings of at least this many bytes give consumed memory back, in units of
/// `RECLAIM_UNIT` (smaller rings keep their pages: they are bounded anyway).
pub(crate) const RECLAIM_ABOVE: usize = 16 << 20;

/// The unit in which a large ring gives consumed memory back (64 KiB: one
/// `fallocate(PUNCH_HOLE)` per 64 KiB read).
pub(crate) const RECLAIM_UNIT: usize = 64 << 10;

/// Errors of queue and pipe operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// No room before the timeout, or at once for `try_put` (Python's `queue.Full`).
    #[error("queue is full")]
    Full,
    /// No item before the timeout, or at once for `try_get` (Python's `queue.Empty`).
    #[error("queue is empty")]
    Empty,
    /// `put` or `get` through a handle whose process called [`Queue::close`]
    /// (Python's `ValueError: Queue ... is closed`).
    #[error("queue is closed (this process called close())")]
    Closed,
    /// The queue was shut down for every process ([`Queue::shutdown`]):
    /// `put` always, `get` once it is empty (Python 3.13's `queue.ShutDown`).
    #[error("queue was shut down")]
    ShutDown,
    /// The message can never be in the ring at once. `try_put` cannot
    /// stream it; `put` on a ring of 16 MiB or more (the default, unbounded
    /// queue among them: its `put` never waits for room) does not stream
    /// either; a smaller, byte-bounded ring streams it through. Not "full":
    /// no amount of waiting would make room.
    #[error("message of {len} bytes can never fit in the queue's ring of {capacity} bytes at once{}",
        if *.streams { " (try_put cannot stream it; put can)" } else { "" })]
    NeverFits {
        /// Encoded size.
        len: usize,
        /// The ring's size in bytes.
        capacity: usize,
        /// Would `put` (waiting) stream it through the ring?
        streams: bool,
    },
    /// The value could not be serialized (an error in the caller, not in a
    /// background thread as in CPython).
    #[error("cannot serialize the value: {0}")]
    Encode(#[source] WireError),
    /// The message does not decode as `T`; it was consumed, the queue goes on.
    #[error("cannot decode the message: {0}")]
    Decode(#[source] WireError),
    /// The encoded value is larger than the size limit (`put`: nothing was
    /// sent; `get`: the message was consumed and dropped as soon as it passed
    /// the limit, and the queue goes on).
    #[error("message of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Encoded size.
        len: usize,
        /// The queue's limit.
        limit: usize,
    },
    /// The ring's shared state was inconsistent (overwritten by something
    /// else); it skipped what was in it and goes on.
    #[error("corrupt queue state: {0}")]
    Corrupt(&'static str),
    /// `JoinableQueue::task_done` called more times than items were put
    /// (Python: `ValueError: task_done() called too many times`).
    #[error("task_done() called too many times")]
    TaskDoneTooManyTimes,
    /// Shared memory could not be allocated.
    #[error(transparent)]
    Shm(#[from] ShmError),
}

impl From<RingError> for QueueError {
    fn from(e: RingError) -> Self {
        match e {
            RingError::Full => QueueError::Full,
            RingError::Empty => QueueError::Empty,
            RingError::Closed => QueueError::ShutDown,
            RingError::Corrupt(w) => QueueError::Corrupt(w),
            RingError::TooLarge(len) => QueueError::TooLarge { len, limit: 0 },
            RingError::Unwritten => QueueError::Encode(WireError::Encode {
                message: "the value encoded to other bytes than when it was sized \
                          (a Serialize implementation that is not deterministic)"
                    .into(),
                source: postcard::Error::SerializeBufferFull,
            }),
        }
    }
}

/// Configures a [`Queue`] (see [`Queue::builder`]).
///
/// ```
/// let q = procshare::Queue::<u8>::builder().maxsize(2).capacity_bytes(4096).build().unwrap();
/// q.put(&1).unwrap();
/// q.put(&2).unwrap();
/// assert!(q.is_full());
/// assert!(matches!(q.try_put(&3), Err(procshare::QueueError::Full)));
/// ```
///
/// The builder carries the queue's item type, so a mismatch is a compile error:
///
/// ```compile_fail
/// let q = procshare::Queue::<u64>::builder().build().unwrap();
/// q.put(&1u32).unwrap(); // expected `&u64`
/// ```
pub struct QueueBuilder<T> {
    maxsize: usize,
    capacity: usize,
    limit: usize,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for QueueBuilder<T> {
    fn clone(&self) -> Self {
        QueueBuilder { ..*self }
    }
}

impl<T> core::fmt::Debug for QueueBuilder<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("QueueBuilder")
            .field("maxsize", &self.maxsize)
            .field("capacity", &self.capacity)
            .field("limit", &self.limit)
            .finish()
    }
}

impl<T> QueueBuilder<T> {
    /// Python's `maxsize`: at most this many items (0: no bound). At most 4,194,304.
    pub fn maxsize(mut self, n: usize) -> Self {
        self.maxsize = n;
        self
    }

    /// The ring's size in bytes (rounded up to a power of two, at least 16;
    /// default 16 GiB of address space, in practice unbounded). A smaller ring
    /// bounds the queue by bytes: `put` waits for room, and values larger
    /// than the ring still pass, streamed in pieces. Rings of
    /// 16 MiB or more give consumed memory back (in units of 64 KiB).
    pub fn capacity_bytes(mut self, n: usize) -> Self {
        self.capacity = n;
        self
    }

    /// The largest encoded value accepted (default 64 MiB, the wire format's limit),
    /// by `put` and by `get`: a consumer stops receiving a longer message from
    /// a misbehaving producer once it passes the limit, instead of buffering it.
    pub fn message_limit(mut self, n: usize) -> Self {
        self.limit = n;
        self
    }

    /// Allocates the queue in shared memory.
    pub fn build(&self) -> Result<Queue<T>, QueueError> {
        let chunks = self.capacity.max(CHUNK).div_ceil(CHUNK);
        let maxsize = u32::try_from(self.maxsize)
            .ok()
            .filter(|&m| m <= MAX_ITEMS)
            .ok_or(QueueError::TooLarge {
                len: self.maxsize,
                limit: MAX_ITEMS as usize,
            })?;
        let mut header = RingHeader::<Shm>::new(chunks as u64, maxsize);
        if header.capacity() as usize * CHUNK >= RECLAIM_ABOVE {
            header = header.with_reclaim((RECLAIM_UNIT / CHUNK).trailing_zeros());
        }
        // The header rounds the capacity up to a power of two of chunks.
        // SAFETY: all-zero bytes are a valid ShmCell<[u8; CHUNK]>. (Not
        // written: a large ring is a sparse memfd of its own, mapped whole
        // and holding no memory until used.)
        let slots = unsafe { ShmSlice::<ShmCell<Chunk>>::zeroed(header.capacity() as usize)? };
        let hdr = ShmBox::new_aligned(header, 64)?;
        Ok(Queue {
            raw: RawQueue::assemble(hdr, slots, self.limit),
            _t: PhantomData,
        })
    }
}

/// The untyped queue: a ring of byte messages in shared memory (what
/// [`Queue`], [`SimpleQueue`](crate::SimpleQueue) and
/// [`JoinableQueue`](crate::JoinableQueue) are made of).
#[derive(Clone)]
pub struct RawQueue {
    hdr: ShmBox<RingHeader<Shm>>,
    slots: ShmSlice<ShmCell<Chunk>>,
    limit: usize,
    /// Gives consumed units back (rings that reclaim, in their own segment).
    punch: Option<Punch>,
    /// The fork generation in which this process closed its handles
    /// ([`RawQueue::close`]; `u64::MAX`: open). Shared by the clones in this
    /// process; a forked child, whose generation differs, starts open (as
    /// CPython's `Queue._after_fork` reopens it).
    closed: Arc<AtomicU64>,
}

/// The real platform's [`Reclaim`]: punch a hole in the ring's memfd.
#[derive(Clone)]
struct Punch {
    seg: Arc<Segment>,
    /// Byte offset of chunk 0 in the segment (page-aligned).
    base: u64,
}

impl Reclaim for Punch {
    fn reclaim(&self, first: usize, chunks: usize) {
        if let Some(fd) = self.seg.fd() {
            // A failure gives nothing back, and changes nothing else: the
            // protocol never reads a unit it gave back before writing it.
            let _ = crate::sys::mem::punch_hole(
                fd,
                self.base + (first * CHUNK) as u64,
                (chunks * CHUNK) as u64,
            );
        }
    }
}

impl core::fmt::Debug for RawQueue {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RawQueue")
            .field("ring", &*self.hdr)
            .finish()
    }
}

// For crate::process::spawn: a queue's parts, and a queue rebuilt from parts received
// from another process (the ring header is checked against its chunks).
impl RawQueue {
    pub(crate) fn parts(&self) -> (&ShmBox<RingHeader<Shm>>, &ShmSlice<ShmCell<Chunk>>, usize) {
        (&self.hdr, &self.slots, self.limit)
    }
    pub(crate) fn from_parts(
        hdr: ShmBox<RingHeader<Shm>>,
        slots: ShmSlice<ShmCell<Chunk>>,
        limit: usize,
    ) -> Option<RawQueue> {
        Ring::new(&hdr, &slots)?;
        Some(RawQueue::assemble(hdr, slots, limit))
    }

    /// A handle on a ring whose parts agree; reclaiming through a hole punch
    /// when the ring reclaims and its chunks start on a page of a segment
    /// with a memfd (otherwise consumed units are zeroed in place).
    fn assemble(
        hdr: ShmBox<RingHeader<Shm>>,
        slots: ShmSlice<ShmCell<Chunk>>,
        limit: usize,
    ) -> RawQueue {
        let punch = (hdr.reclaim_unit() != 0)
            .then(|| slots.placement())
            .filter(|(seg, base)| seg.fd().is_some() && base % 4096 == 0)
            .map(|(seg, base)| Punch {
                seg: seg.clone(),
                base,
            });
        RawQueue {
            hdr,
            slots,
            limit,
            punch,
            closed: Arc::new(AtomicU64::new(u64::MAX)),
        }
    }
    pub(crate) fn typed<T>(self) -> Queue<T> {
        Queue {
            raw: self,
            _t: PhantomData,
        }
    }
}

impl RawQueue {
    /// A byte queue of `capacity_bytes` (see [`QueueBuilder`]).
    ///
    /// ```
    /// let q = procshare::RawQueue::new(1024, 0).unwrap();
    /// q.put_bytes(b"abc", None).unwrap();
    /// let mut out = Vec::new();
    /// q.get_bytes(&mut out, None).unwrap();
    /// assert_eq!(out, b"abc");
    /// ```
    pub fn new(capacity_bytes: usize, maxsize: usize) -> Result<RawQueue, QueueError> {
        Ok(Queue::<()>::builder()
            .capacity_bytes(capacity_bytes)
            .maxsize(maxsize)
            .build()?
            .raw)
    }

    #[inline]
    pub(crate) fn ring(&self) -> Ring<'_, Shm> {
        // Both parts were made together by `build`: the capacities agree.
        let r = Ring::new(&self.hdr, &self.slots).expect("ring header and chunks agree");
        match &self.punch {
            Some(p) => r.with_reclaimer(p),
            None => r,
        }
    }

    /// Put one message (`None`: wait forever; `Some(Duration::ZERO)` still
    /// streams; use [`RawQueue::try_put_bytes`] for "no waiting").
    pub fn put_bytes(&self, msg: &[u8], timeout: Option<Duration>) -> Result<(), QueueError> {
        self.put_wait(msg, Wait::For(timeout))
    }

    /// Put one message if that is possible without waiting.
    pub fn try_put_bytes(&self, msg: &[u8]) -> Result<(), QueueError> {
        self.put_wait(msg, Wait::No)
    }

    fn put_wait(&self, msg: &[u8], w: Wait) -> Result<(), QueueError> {
        self.put_message(Message::Bytes(msg), w)
    }

    /// Put a [`Message`]: bytes, or a writer (see [`Ring::put_message`]).
    pub(crate) fn put_message(&self, msg: Message<'_>, w: Wait) -> Result<(), QueueError> {
        self.put_via(msg, w, |ring, t, msg| ring.put_message(t, msg, w))
    }

    /// Check `msg` against the size limit, then `put` it into the ring (the
    /// plain ring put, or a joinable queue's).
    pub(crate) fn put_via(
        &self,
        msg: Message<'_>,
        wait: Wait,
        put: impl FnOnce(Ring<'_, Shm>, &ShmThread, Message<'_>) -> Result<(), RingError>,
    ) -> Result<(), QueueError> {
        if self.is_closed() {
            return Err(QueueError::Closed);
        }
        if msg.len() > self.limit {
            return Err(QueueError::TooLarge {
                len: msg.len(),
                limit: self.limit,
            });
        }
        let ring = self.ring();
        // An unbounded (reclaiming) queue never waits for room, so it does
        // not stream either; `try_put` never streams.
        let unbounded = self.hdr.reclaim_unit() != 0;
        if msg.len() > ring.max_single_piece() && (wait == Wait::No || unbounded) {
            return Err(QueueError::NeverFits {
                len: msg.len(),
                capacity: self.capacity_bytes(),
                streams: !unbounded,
            });
        }
        let t = ShmThread::current();
        Ok(put(ring, &t, msg)?)
    }

    /// Get one message into `out` (`None`: wait forever).
    pub fn get_bytes(
        &self,
        out: &mut Vec<u8>,
        timeout: Option<Duration>,
    ) -> Result<(), QueueError> {
        self.get_wait(out, Wait::For(timeout))
    }

    fn get_wait(&self, out: &mut Vec<u8>, w: Wait) -> Result<(), QueueError> {
        self.get_via(|ring, t, limit| ring.get_limited(t, out, w, limit))
    }

    /// Get one message and run `f` on its bytes, where they lie in the ring
    /// if they are in one stretch (else in `out`): see
    /// [`Ring::get_view`]. `f` must not unwind.
    pub(crate) fn get_view<R>(
        &self,
        out: &mut Vec<u8>,
        w: Wait,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, QueueError> {
        self.get_via(|ring, t, limit| ring.get_view(t, out, w, limit, f))
    }

    /// Run a ring `get` (given the ring, this thread and the size limit) on
    /// an open queue, with the queue's errors.
    fn get_via<R>(
        &self,
        get: impl FnOnce(Ring<'_, Shm>, &ShmThread, usize) -> Result<R, RingError>,
    ) -> Result<R, QueueError> {
        if self.is_closed() {
            return Err(QueueError::Closed);
        }
        let t = ShmThread::current();
        get(self.ring(), &t, self.limit).map_err(|e| match e {
            RingError::TooLarge(len) => QueueError::TooLarge {
                len,
                limit: self.limit,
            },
            e => e.into(),
        })
    }

    /// Get one message if one has begun to arrive, without waiting for one to
    /// begin (Python's `get_nowait`). A message already streaming through the
    /// ring (one larger than the ring arrives in pieces) is taken and its rest
    /// waited for: a consumer that only polls must still be able to receive a
    /// message that can never be complete in the ring at once.
    pub fn try_get_bytes(&self, out: &mut Vec<u8>) -> Result<(), QueueError> {
        self.get_wait(out, Wait::For(Some(Duration::ZERO)))
    }

    /// Complete messages in the queue (approximate).
    pub fn qsize(&self) -> usize {
        self.ring().len()
    }

    /// Is the queue empty (approximate)?
    #[doc(alias = "empty")]
    pub fn is_empty(&self) -> bool {
        self.ring().is_empty()
    }

    /// Is the queue full (approximate)?
    #[doc(alias = "full")]
    pub fn is_full(&self) -> bool {
        self.ring().is_full()
    }

    /// This process is done with this queue (Python's `Queue.close`): its
    /// handles here, the clones included, refuse `put` and `get` with
    /// [`QueueError::Closed`]; other processes go on.
    pub fn close(&self) {
        self.closed
            .store(crate::sys::fork::generation(), Ordering::Relaxed);
    }

    /// Has this process closed its handles ([`RawQueue::close`])?
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed) == crate::sys::fork::generation()
    }

    /// Shut the queue down for every process and wake every waiter: `put`s
    /// fail with [`QueueError::ShutDown`], `get`s return what is left, then
    /// `ShutDown` (Python 3.13's `Queue.shutdown()`).
    pub fn shutdown(&self) {
        self.ring().close(&ShmThread::current());
    }

    /// Has the queue been shut down ([`RawQueue::shutdown`])?
    pub fn is_shutdown(&self) -> bool {
        self.ring().is_closed()
    }

    /// Bytes of memory the ring holds now (its memfd's allocated blocks;
    /// `None` for a ring in a shared small-object segment). Falls as the
    /// queue drains.
    pub fn allocated_bytes(&self) -> Option<u64> {
        let p = self.punch.as_ref()?;
        crate::sys::mem::allocated_bytes(p.seg.fd()?).ok()
    }

    /// The ring's capacity in bytes.
    pub fn capacity_bytes(&self) -> usize {
        self.hdr.capacity() as usize * CHUNK
    }

    /// The item bound (0: none).
    pub fn maxsize(&self) -> usize {
        self.hdr.max_items() as usize
    }

    /// The message size limit in bytes.
    pub fn message_limit(&self) -> usize {
        self.limit
    }

    /// Set this handle's message size limit (other handles keep theirs): a
    /// consumer can protect itself from a producer that sends more than it
    /// is willing to buffer (see [`QueueError::TooLarge`]).
    pub fn set_message_limit(&mut self, n: usize) {
        self.limit = n;
    }
}

/// A process-shared FIFO queue of `T` (Python's `multiprocessing.Queue`).
/// See the type docs above for how it differs from CPython's.
///
/// `Clone` gives another handle onto the same queue; a forked child inherits
/// the handles it captures.
///
/// ```
/// use procshare::Queue;
/// use std::time::Duration;
/// let q: Queue<String> = Queue::new().unwrap();
/// q.put(&"hello".to_string()).unwrap();
/// assert_eq!(q.qsize(), 1);
/// assert_eq!(q.get().unwrap(), "hello");
/// assert!(q.try_get().is_err());
/// assert!(q.get_timeout(Duration::from_millis(1)).is_err());
/// ```
///
/// `Queue<T>`: Python's `multiprocessing.Queue` over a ring in shared memory.
///
/// A queue is a [`Ring`] (the model-checked protocol of
/// [`procshare_model::ring`]) placed in shared memory by the
/// arena: a header ([`RingHeader`]) and an array of 16-byte
/// chunks. Values cross by copy: `put` encodes the value with the wire codec
/// (postcard, the wire format's encoding) straight into shared memory, and `get`
/// decodes a fresh value, so what a consumer gets is a copy taken at `put`.
///
/// ```
/// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
/// use procshare::{Process, Queue};
/// let q: Queue<Vec<u32>> = Queue::new().unwrap();
/// let mut p = Process::new({
///     let q = q.clone();
///     move || q.put(&vec![1, 2, 3]).unwrap()
/// });
/// p.start().unwrap();
/// assert_eq!(q.get().unwrap(), vec![1, 2, 3]);
/// p.join().unwrap();
/// ```
///
/// # Differences from CPython
///
/// * **No feeder thread.** CPython's `put` appends to a buffer that a
///   background thread pickles and writes to a pipe later: a process that
///   exits right after `put` can lose the item, and an item that cannot be
///   pickled fails silently in that thread (gh-84376). Here `put` serializes
///   and copies the bytes into shared memory itself before it returns: once
///   `put` returned `Ok`, the item is in the queue whatever happens to the
///   producer, and a value that fails to serialize is an error in the caller.
/// * **Shared objects cannot be put.** `Value`, `Array`, locks and queues do
///   not implement `Serialize`, so `q.put(&lock)` does not compile: the
///   compile-time form of CPython's `RuntimeError: Synchronized objects should
///   only be shared between processes through inheritance`. Pass them to a
///   child by capturing a clone, as Python requires.
/// * **Dead processes do not wedge the queue.** A producer or consumer killed
///   in the middle of an operation (even by `kill -9`) leaves the queue usable
///   for the others, and a partially written message is never delivered
///   (CPython's queue lock would stay held forever).
/// * **Unbounded in shared memory.** `Queue::new()` reserves a large sparse
///   ring (16 GiB of address space, mapped once, so forked
///   children inherit it): `put` never waits for room, memory grows with the
///   backlog and is given back to the OS as consumers read (CPython keeps
///   the backlog in the producer's feeder buffer and the pipe).
/// * **`close`** is per process, as in CPython; [`Queue::shutdown`] closes
///   the queue for every process (Python 3.13's `Queue.shutdown`).
/// * With a byte bound ([`QueueBuilder::capacity_bytes`]), values larger
///   than the ring are streamed through it in pieces; a `get_timeout` that
///   has started receiving such a value waits for its end. `try_put` of a
///   value larger than the ring is [`QueueError::NeverFits`].
///
/// # Performance
///
/// * A small value (64 bytes encoded) is encoded on the stack and copied
///   into the ring. A larger one that fits one piece of the ring is sized
///   first, then encoded **straight into the ring** while the producer holds
///   it (one copy of its bytes); a value the ring streams is encoded into a
///   per-thread scratch buffer and copied in. A `get` decodes a message
///   **where it lies in the ring** when it is one piece in one stretch,
///   while the consumer holds the ring and before it frees the bytes; other
///   messages are assembled in a scratch buffer and decoded there. A steady
///   stream of messages allocates nothing but the values returned.
/// * Decoding in place keeps the double-fetch safety a copy would give by
///   the ring's protocol: no producer writes a published message's bytes
///   before the consumer frees them, and no other consumer reads them
///   ([`procshare_model::ring`], "Written messages and reads in place").
///   So a value's `Serialize` (its last run: a larger value is serialized
///   up to three times, a try on the stack, a sizing pass, the write) and
///   `Deserialize` run while the ring's producer or consumer lock is held: a
///   panic in them is caught, the message is not published (or is
///   consumed), the lock released, and the panic resumed in the caller. A
///   `Serialize` whose write differs from its sizing pass is refused
///   ([`QueueError::Encode`]) and nothing is published. (Calling the same
///   queue from inside a `Serialize` or `Deserialize` would wait for the
///   lock this thread holds.)
/// * The ring's hot words are grouped into cache lines by the side that
///   writes them, and each side keeps a hint of the other's position, so in
///   the steady state a message crosses between cores as its own bytes plus
///   about one line of bookkeeping ([`procshare_model::ring`] has the layout).
/// * Byte payloads: serde encodes a `Vec<u8>` element by element (a list of
///   ints, in Python terms) and a [`serde_bytes::ByteBuf`](https://docs.rs/serde_bytes)
///   (or a field marked `#[serde(with = "serde_bytes")]`) as one byte
///   string, like Python's `bytes` — about 10× faster at 4 KiB.
///   [`RawQueue`] moves bytes without serde.
///
/// `cargo bench -p procshare --bench queue` measures all of these against
/// crossbeam between threads and CPython's `multiprocessing.Queue`.
///
/// # Bad input
///
/// Bytes that do not decode as `T` (another process put a different type, or
/// wrote over the ring) are an error for that `get` ([`QueueError::Decode`] or
/// [`QueueError::Corrupt`]); the message is consumed and the queue stays usable.
/// A message longer than the consumer's [message limit](Queue::set_message_limit)
/// is [`QueueError::TooLarge`] for that `get` as soon as the limit is passed:
/// a producer that streams without end cannot make a consumer buffer without end.
pub struct Queue<T> {
    raw: RawQueue,
    _t: PhantomData<fn(T) -> T>,
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue {
            raw: self.raw.clone(),
            _t: PhantomData,
        }
    }
}

impl<T> core::fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Queue").field("raw", &self.raw).finish()
    }
}

impl<T> Queue<T> {
    /// A builder: `maxsize`, ring capacity, message size limit.
    pub fn builder() -> QueueBuilder<T> {
        QueueBuilder {
            maxsize: 0,
            capacity: DEFAULT_CAPACITY,
            limit: wire::DEFAULT_LIMIT,
            _t: PhantomData,
        }
    }

    /// A queue with the default capacity and no item bound (Python's `Queue()`).
    pub fn new() -> Result<Queue<T>, QueueError> {
        Self::builder().build()
    }

    /// A queue of at most `maxsize` items (Python's `Queue(maxsize)`; 0: unbounded).
    pub fn with_maxsize(maxsize: usize) -> Result<Queue<T>, QueueError> {
        Self::builder().maxsize(maxsize).build()
    }

    /// The untyped queue underneath.
    pub fn raw(&self) -> &RawQueue {
        &self.raw
    }

    /// Set this handle's message size limit, for `put` and `get` (other
    /// handles keep theirs).
    ///
    /// ```
    /// use procshare::{Queue, QueueError};
    /// let producer: Queue<Vec<u8>> = Queue::new().unwrap();
    /// let mut consumer = producer.clone();
    /// consumer.set_message_limit(100);
    /// producer.put(&vec![0u8; 1000]).unwrap();
    /// producer.put(&vec![1u8; 10]).unwrap();
    /// // The large message is consumed and dropped; the queue goes on.
    /// assert!(matches!(consumer.get(), Err(QueueError::TooLarge { limit: 100, .. })));
    /// assert_eq!(consumer.get().unwrap(), vec![1u8; 10]);
    /// ```
    pub fn set_message_limit(&mut self, n: usize) {
        self.raw.set_message_limit(n)
    }

    /// Approximate number of items (Python's `qsize()`).
    pub fn qsize(&self) -> usize {
        self.raw.qsize()
    }

    /// Is it empty (approximate, as in Python)?
    #[doc(alias = "empty")]
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// Is it full (approximate, as in Python)?
    #[doc(alias = "full")]
    pub fn is_full(&self) -> bool {
        self.raw.is_full()
    }

    /// Indicate that no more data will be put on this queue by the current
    /// process (Python's `Queue.close`): this process's handles (this one
    /// and its clones here) refuse `put` and `get` with [`QueueError::Closed`]
    /// from now on, as CPython's raise `ValueError`. Other processes go on
    /// putting and getting, so "each producer closes its end when done" works
    /// as in Python. (Items this process put stay in the queue: there is no
    /// feeder thread to flush, and nothing to join.)
    ///
    /// ```
    /// use procshare::{Queue, QueueError};
    /// let q: Queue<u32> = Queue::new().unwrap();
    /// q.put(&1).unwrap();
    /// q.close();
    /// assert!(matches!(q.put(&2), Err(QueueError::Closed)));
    /// assert!(matches!(q.get(), Err(QueueError::Closed)));
    /// ```
    pub fn close(&self) {
        self.raw.close()
    }

    /// Has this process closed the queue ([`Queue::close`])?
    pub fn is_closed(&self) -> bool {
        self.raw.is_closed()
    }

    /// Shut the queue down for every process (Python 3.13's
    /// `queue.Queue.shutdown()`): every `put`, here and elsewhere, fails with
    /// [`QueueError::ShutDown`]; `get`s return what is left, then
    /// `ShutDown`; every blocked `put`/`get` wakes up.
    ///
    /// ```
    /// use procshare::{Queue, QueueError};
    /// let q: Queue<u32> = Queue::new().unwrap();
    /// let other = q.clone();
    /// q.put(&1).unwrap();
    /// q.shutdown();
    /// assert!(matches!(other.put(&2), Err(QueueError::ShutDown)));
    /// assert_eq!(other.get().unwrap(), 1);
    /// assert!(matches!(other.get(), Err(QueueError::ShutDown)));
    /// ```
    pub fn shutdown(&self) {
        self.raw.shutdown()
    }

    /// Has the queue been shut down ([`Queue::shutdown`])?
    pub fn is_shutdown(&self) -> bool {
        self.raw.is_shutdown()
    }
}

/// Scratch buffers kept above this size are dropped after use (a rare huge
/// message does not pin its memory in every thread that sent one).
const SCRATCH_KEEP: usize = 1 << 20;

std::thread_local! {
    /// This thread's reusable encode/decode buffer: a `put` serializes into
    /// it and a `get` assembles into it, so a steady stream of messages
    /// allocates nothing but the values it returns.
    static SCRATCH: core::cell::RefCell<Vec<u8>> = const { core::cell::RefCell::new(Vec::new()) };
}

/// Run `f` with this thread's scratch buffer, emptied (a fresh one if the
/// buffer is in use: a `Serialize` impl that itself uses a queue).
fn with_scratch<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    SCRATCH.with(|c| match c.try_borrow_mut() {
        Ok(mut b) => {
            b.clear();
            let r = f(&mut b);
            if b.capacity() > SCRATCH_KEEP {
                *b = Vec::new();
            }
            r
        }
        Err(_) => f(&mut Vec::new()),
    })
}

impl<T: Serialize> Queue<T> {
    /// Encode `v` and hand it to `put` as a [`Message`]: bytes encoded on
    /// the stack (a small value), a writer that encodes it straight into
    /// the ring (a larger value that fits one piece: sized first, then
    /// written while the producer holds the ring), or bytes encoded into
    /// the thread's scratch buffer (a value the ring streams).
    pub(crate) fn put_with(
        &self,
        v: &T,
        put: impl FnOnce(&RawQueue, Message<'_>) -> Result<(), QueueError>,
    ) -> Result<(), QueueError> {
        let mut small = [0u8; 64];
        if let Some(b) = wire::encode_small(v, &mut small) {
            return put(&self.raw, Message::Bytes(b));
        }
        let len = wire::encoded_len(v).map_err(QueueError::Encode)?;
        if len <= self.raw.ring().max_single_piece() {
            // The writer runs user code (`Serialize`) while this thread
            // holds the producers' lock: a panic is caught there (the ring
            // publishes nothing, releases the lock) and resumed here.
            let mut failed = None;
            let mut panicked = None;
            let mut write = |sink: &mut dyn Sink| match catch_unwind(AssertUnwindSafe(|| {
                wire::encode_to_sink(v, sink)
            })) {
                Ok(Ok(())) => true,
                Ok(Err(e)) => {
                    failed = Some(e);
                    false
                }
                Err(p) => {
                    panicked = Some(p);
                    false
                }
            };
            let r = put(
                &self.raw,
                Message::Written {
                    len,
                    write: &mut write,
                },
            );
            if let Some(p) = panicked {
                resume_unwind(p);
            }
            return match (r, failed) {
                (Err(QueueError::Encode(_)), Some(e)) => {
                    Err(QueueError::Encode(wire::encode_error(v, e)))
                }
                (r, _) => r,
            };
        }
        with_scratch(|buf| {
            wire::encode_into(v, buf).map_err(QueueError::Encode)?;
            put(&self.raw, Message::Bytes(buf))
        })
    }

    /// Put `v` (a copy), waiting for room as long as needed.
    pub fn put(&self, v: &T) -> Result<(), QueueError> {
        self.put_with(v, |q, m| q.put_message(m, Wait::For(None)))
    }

    /// Put `v`, waiting at most `timeout` for room ([`QueueError::Full`] then).
    #[doc(alias = "put")]
    pub fn put_timeout(&self, v: &T, timeout: Duration) -> Result<(), QueueError> {
        self.put_with(v, |q, m| q.put_message(m, Wait::For(Some(timeout))))
    }

    /// Put `v` only if there is room now (Python's `put_nowait`).
    #[doc(alias = "put_nowait")]
    pub fn try_put(&self, v: &T) -> Result<(), QueueError> {
        self.put_with(v, |q, m| q.put_message(m, Wait::No))
    }
}

impl<T: DeserializeOwned> Queue<T> {
    /// Receive a message and decode it: where it lies in the ring when it
    /// is one piece in one stretch (while this thread holds the consumers'
    /// lock, before the ring frees it), else from the thread's scratch
    /// buffer, where the ring assembled it. A panic in the value's
    /// `Deserialize` is caught there (the message is consumed, the lock
    /// released) and resumed here.
    fn get_with(&self, w: Wait) -> Result<T, QueueError> {
        with_scratch(|buf| {
            let decode = |b: &[u8]| catch_unwind(AssertUnwindSafe(|| wire::decode::<T>(b)));
            match self.raw.get_view(buf, w, decode)? {
                Ok(v) => v.map_err(QueueError::Decode),
                Err(p) => resume_unwind(p),
            }
        })
    }

    /// Take the next item, waiting as long as needed.
    pub fn get(&self) -> Result<T, QueueError> {
        self.get_with(Wait::For(None))
    }

    /// Take the next item, waiting at most `timeout` ([`QueueError::Empty`] then).
    #[doc(alias = "get")]
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, QueueError> {
        self.get_with(Wait::For(Some(timeout)))
    }

    /// Take the next item only if one is there now (Python's `get_nowait`):
    /// [`QueueError::Empty`] when no message has begun to arrive; a message
    /// that is still streaming in (larger than the ring) is taken and awaited.
    ///
    /// Like CPython's `get(block=False)`, it does not wait for another
    /// consumer either: while another process is taking a message, `try_get`
    /// may answer `Empty` although messages are queued (the history checker
    /// of `tests/tests/history_linearizable.rs` found this; its queue
    /// specification allows exactly that case).
    #[doc(alias = "get_nowait")]
    pub fn try_get(&self) -> Result<T, QueueError> {
        self.get_with(Wait::For(Some(Duration::ZERO)))
    }
}

/// Fuzzing entry points (the `ring_ops` and `queue_frame` fuzz targets and
/// their corpus replay call these).
#[cfg(feature = "fuzzing")]
pub(crate) mod fuzzing {
    use super::*;
    use std::collections::VecDeque;

    /// `ring_ops`: a sequence of ring operations in one process (non-blocking
    /// and zero-timeout, so nothing waits), checked against a `VecDeque`.
    /// Input: byte 0 picks the capacity (1..=32 chunks), then each op is a byte
    /// (kind) and a byte (size factor). Panics on a mismatch.
    pub fn ring_ops(data: &[u8]) {
        let Some((&c, mut ops)) = data.split_first() else {
            return;
        };
        let cap = (1 + (c % 32) as usize) * CHUNK;
        let q = RawQueue::new(cap, 0).expect("shared memory");
        let mut model: VecDeque<Vec<u8>> = VecDeque::new();
        let mut seq = 0u32;
        let mut out = Vec::new();
        let mut closed = false;
        while let [kind, size, rest @ ..] = ops {
            ops = rest;
            let len = (*size as usize * 3 * cap) / 255;
            let mut msg = vec![(seq & 0xff) as u8; len];
            if len >= 4 {
                msg[..4].copy_from_slice(&seq.to_le_bytes());
            }
            seq += 1;
            let was_empty = q.is_empty() && model.is_empty();
            // The high bit: a put writes the message through a writer (in
            // two parts) when it fits one piece, a get reads it in place.
            let written = kind & 0x80 != 0 && len <= q.ring().max_single_piece();
            let mut write = |s: &mut dyn Sink| {
                let (a, b) = msg.split_at(len / 2);
                s.write(a) && s.write(b)
            };
            let put = |w: Wait, write: &mut dyn FnMut(&mut dyn Sink) -> bool| match written {
                true => q.put_message(Message::Written { len, write }, w),
                false => q.put_message(Message::Bytes(&msg), w),
            };
            match kind % 6 {
                0 => match put(Wait::No, &mut write) {
                    Ok(()) => {
                        assert!(!closed, "put after close succeeded");
                        model.push_back(msg)
                    }
                    Err(QueueError::Full) => assert!(
                        !(was_empty && len + 8 <= cap),
                        "try_put of {len} bytes into an empty ring of {cap} failed"
                    ),
                    Err(QueueError::NeverFits { .. }) => {
                        assert!(len + 8 > cap, "try_put of {len} bytes never fits in {cap}")
                    }
                    Err(QueueError::ShutDown) => assert!(closed),
                    Err(e) => panic!("try_put: {e}"),
                },
                1 => match put(Wait::For(Some(Duration::ZERO)), &mut write) {
                    Ok(()) => {
                        assert!(!closed, "put after close succeeded");
                        model.push_back(msg)
                    }
                    Err(QueueError::Full) => {}
                    Err(QueueError::ShutDown) => assert!(closed),
                    Err(e) => panic!("put_timeout: {e}"),
                },
                2 | 3 => {
                    // `try_get_bytes` and `get_bytes` with no time to wait.
                    let w = Wait::For(Some(Duration::ZERO));
                    let r = match kind & 0x80 {
                        0 => q.get_wait(&mut out, w),
                        _ => q.get_view(&mut out, w, |m| m.to_vec()).map(|m| out = m),
                    };
                    match r {
                        Ok(()) => {
                            let want = model.pop_front().expect("got a message never put");
                            assert_eq!(out, want, "wrong message");
                        }
                        Err(QueueError::Empty) | Err(QueueError::ShutDown) => {
                            assert!(model.is_empty(), "{} messages not delivered", model.len())
                        }
                        Err(e) => panic!("get: {e}"),
                    }
                }
                4 => {
                    assert_eq!(q.qsize(), model.len());
                }
                _ => {
                    if *size == 0 {
                        q.shutdown();
                        closed = true;
                    }
                }
            }
        }
        // Everything accepted comes out, in order.
        while let Some(want) = model.pop_front() {
            q.get_bytes(&mut out, Some(Duration::ZERO))
                .expect("an accepted message is missing");
            assert_eq!(out, want);
        }
    }

    /// `queue_frame`: arbitrary bytes as a message of a typed queue, and as a
    /// wire frame: decoding is an error value, never a panic, and the queue
    /// stays usable. Panics on a bug.
    pub fn queue_frame(data: &[u8]) {
        let q: Queue<(u32, String, Vec<u8>, Option<bool>)> = Queue::builder()
            .capacity_bytes(data.len() + 256)
            .build()
            .expect("shared memory");
        q.raw().try_put_bytes(data).expect("room");
        let _ = q.try_get(); // Ok or Decode, never a panic
        let v = (7u32, "x".to_string(), vec![1u8], Some(true));
        q.put(&v).expect("queue usable after bad input");
        assert_eq!(q.try_get().expect("queue usable after bad input"), v);
        let _ = wire::split_frame(data, 1 << 16);
        let _ = wire::decode::<(u32, String, Vec<u8>, Option<bool>)>(data);
    }
}
