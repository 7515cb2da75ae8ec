//! [`PodQueue`]: a bounded queue of plain-data values (`T: Pod`) between
//! processes, one value per slot, no serialization and no queue-wide lock.
//!
//! The protocol is the model's [slot queue](procshare_model::slot_queue): each
//! slot has a robust lock and a sequence number, so a producer and a consumer
//! meet only on the slot they hand over. A process killed at any step loses
//! nothing a `put` acknowledged (except the one value a consumer was
//! returning when it died) and leaves the queue usable.

use core::fmt;
use core::marker::PhantomData;
use core::time::Duration;

use bytemuck::Pod;
use procshare_model::ring::Wait;
use procshare_model::slot_queue::{Slot, SlotHeader, SlotQueue, MAX_SLOTS};

use crate::platform::{Shm, ShmThread};
use crate::queue::QueueError;
use crate::shm::{ShmBox, ShmSafe, ShmSlice};

// SAFETY: SlotHeader<Shm> is #[repr(C)]: ShmWord32/ShmWord64 atomics in
// 64-byte lines and a `u64` written once before the header is shared. No
// pointers, no drop glue; any bit pattern is memory-safe (a slot count that
// disagrees with the slots is refused by `SlotQueue::new`).
unsafe impl ShmSafe for SlotHeader<Shm> {}
// The layout documented at procshare_model::slot_queue: five 64-byte lines
// (tail 0, head 64, not_empty 128, not_full 192, closed 256, slots 264).
crate::shm::layout::assert_shm_layout!(SlotHeader<Shm> { size: 384, align: 64 });

// SAFETY: Slot<Shm, T> is #[repr(C)]: a RawMutex<Shm> (atomics), a
// ShmWord64 and a ShmCell<T> of Pod data (valid for every bit pattern, no
// pointers, no drop glue). The cell is accessed only under the slot's lock.
unsafe impl<T: Pod + Send + Sync> ShmSafe for Slot<Shm, T> {}
// For a `u64` value: lock 0, seq 16, value 24 (32 bytes).
crate::shm::layout::assert_shm_layout!(Slot<Shm, u64> { size: 32, align: 8 });

/// A bounded multi-producer multi-consumer queue of `T: Pod` values in shared
/// memory: `put` copies the value into a slot, `get` copies it out. No
/// serialization, no queue-wide lock; the fast queue for numbers and plain
/// `#[repr(C)]` structs (for any `serde` type, use [`Queue`](crate::Queue)).
///
/// Like [`Queue`](crate::Queue) it is shared by forking (clone it, or just
/// use it in the child) or passed to a spawned process
/// ([`SpawnArg`](crate::SpawnArg)).
///
/// ```
/// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
/// use procshare::{PodQueue, Process};
///
/// let q = PodQueue::<u64>::new(1024).unwrap();
/// let mut p = Process::new({
///     let q = q.clone();
///     move || {
///         for i in 0..100 {
///             q.put(i).unwrap();
///         }
///     }
/// });
/// p.start().unwrap();
/// let sum: u64 = (0..100).map(|_| q.get().unwrap()).sum();
/// p.join().unwrap();
/// assert_eq!(sum, 4950);
/// ```
pub struct PodQueue<T: Pod + Send + Sync> {
    hdr: ShmBox<SlotHeader<Shm>>,
    slots: ShmSlice<Slot<Shm, T>>,
    _t: PhantomData<T>,
}

impl<T: Pod + Send + Sync> Clone for PodQueue<T> {
    fn clone(&self) -> Self {
        PodQueue {
            hdr: self.hdr.clone(),
            slots: self.slots.clone(),
            _t: PhantomData,
        }
    }
}

impl<T: Pod + Send + Sync> fmt::Debug for PodQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PodQueue")
            .field("capacity", &self.capacity())
            .field("qsize", &self.qsize())
            .field("shut_down", &self.is_shutdown())
            .finish()
    }
}

impl<T: Pod + Send + Sync> PodQueue<T> {
    /// A queue of at least `maxsize` slots (rounded up to a power of two, at
    /// least 2; [`PodQueue::capacity`] tells). Python's `Queue(maxsize)`,
    /// except that 0 does not mean unbounded: every slot is allocated up
    /// front.
    ///
    /// ```
    /// let q = procshare::PodQueue::<u32>::new(3).unwrap();
    /// assert_eq!(q.capacity(), 4);
    /// ```
    pub fn new(maxsize: usize) -> Result<PodQueue<T>, QueueError> {
        let n = (maxsize as u64).clamp(2, MAX_SLOTS).next_power_of_two();
        if maxsize as u64 > MAX_SLOTS {
            return Err(QueueError::TooLarge {
                len: maxsize,
                limit: MAX_SLOTS as usize,
            });
        }
        let header = SlotHeader::<Shm>::new(n);
        let slots = ShmSlice::from_fn(header.slots() as usize, |i| {
            Slot::new(i as u64, T::zeroed())
        })?;
        let hdr = ShmBox::new_aligned(header, 64)?;
        Ok(PodQueue {
            hdr,
            slots,
            _t: PhantomData,
        })
    }

    pub(crate) fn parts(&self) -> (&ShmBox<SlotHeader<Shm>>, &ShmSlice<Slot<Shm, T>>) {
        (&self.hdr, &self.slots)
    }

    /// Reassemble a queue from its parts (`None` if they disagree).
    pub(crate) fn from_parts(
        hdr: ShmBox<SlotHeader<Shm>>,
        slots: ShmSlice<Slot<Shm, T>>,
    ) -> Option<PodQueue<T>> {
        SlotQueue::new(&hdr, &slots)?;
        Some(PodQueue {
            hdr,
            slots,
            _t: PhantomData,
        })
    }

    #[inline]
    fn q(&self) -> SlotQueue<'_, Shm, T> {
        // `new` and `from_parts` checked the parts with `SlotQueue::new`;
        // `with_len` reads only this process's slice length (never the
        // shared header, which another process could overwrite).
        SlotQueue::with_len(&self.hdr, &self.slots).expect("slot count checked at construction")
    }

    /// The number of slots.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Put `v`, waiting for a free slot as long as needed.
    ///
    /// ```
    /// let q = procshare::PodQueue::<f64>::new(2).unwrap();
    /// q.put(1.5).unwrap();
    /// assert_eq!(q.get().unwrap(), 1.5);
    /// ```
    pub fn put(&self, v: T) -> Result<(), QueueError> {
        self.put_wait(v, Wait::For(None))
    }

    /// Put `v`, waiting at most `timeout` for a free slot ([`QueueError::Full`] then).
    ///
    /// ```
    /// use std::time::Duration;
    /// let q = procshare::PodQueue::<u8>::new(2).unwrap();
    /// q.put(1).unwrap();
    /// q.put(2).unwrap();
    /// let r = q.put_timeout(3, Duration::from_millis(10));
    /// assert!(matches!(r, Err(procshare::QueueError::Full)));
    /// ```
    pub fn put_timeout(&self, v: T, timeout: Duration) -> Result<(), QueueError> {
        self.put_wait(v, Wait::For(Some(timeout)))
    }

    /// Put `v` only if a slot is free now (Python's `put_nowait`). It does
    /// not wait for room, but does wait for a slot another process is
    /// handing over (a few instructions: another producer filling it, the
    /// consumer that just emptied it; a holder killed there is detected and
    /// taken over), so `Full` means the queue was full.
    ///
    /// ```
    /// let q = procshare::PodQueue::<u8>::new(2).unwrap();
    /// q.try_put(1).unwrap();
    /// q.try_put(2).unwrap();
    /// assert!(matches!(q.try_put(3), Err(procshare::QueueError::Full)));
    /// ```
    #[doc(alias = "put_nowait")]
    pub fn try_put(&self, v: T) -> Result<(), QueueError> {
        self.put_wait(v, Wait::No)
    }

    fn put_wait(&self, v: T, w: Wait) -> Result<(), QueueError> {
        let t = ShmThread::current();
        Ok(self.q().put(&t, v, w)?)
    }

    /// Take the next value, waiting as long as needed.
    ///
    /// ```
    /// let q = procshare::PodQueue::<[u16; 3]>::new(8).unwrap();
    /// q.put([1, 2, 3]).unwrap();
    /// assert_eq!(q.get().unwrap(), [1, 2, 3]);
    /// ```
    pub fn get(&self) -> Result<T, QueueError> {
        self.get_wait(Wait::For(None))
    }

    /// Take the next value, waiting at most `timeout` ([`QueueError::Empty`] then).
    ///
    /// ```
    /// use std::time::Duration;
    /// let q = procshare::PodQueue::<u32>::new(2).unwrap();
    /// let r = q.get_timeout(Duration::from_millis(10));
    /// assert!(matches!(r, Err(procshare::QueueError::Empty)));
    /// ```
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, QueueError> {
        self.get_wait(Wait::For(Some(timeout)))
    }

    /// Take the next value only if one is there now (Python's `get_nowait`).
    /// A value another process is still putting is not waited for (its `put`
    /// has not returned): `Empty`. A slot another process is handing over
    /// (a few instructions: the producer's unlock after it published, a
    /// consumer taking the value) is, so `Empty` means the queue was empty
    /// (a holder killed there is detected and taken over).
    ///
    /// ```
    /// let q = procshare::PodQueue::<i64>::new(2).unwrap();
    /// assert!(matches!(q.try_get(), Err(procshare::QueueError::Empty)));
    /// q.put(-7).unwrap();
    /// assert_eq!(q.try_get().unwrap(), -7);
    /// ```
    #[doc(alias = "get_nowait")]
    pub fn try_get(&self) -> Result<T, QueueError> {
        self.get_wait(Wait::No)
    }

    fn get_wait(&self, w: Wait) -> Result<T, QueueError> {
        let t = ShmThread::current();
        Ok(self.q().get(&t, w)?)
    }

    /// Values in the queue (approximate while others put and get).
    ///
    /// ```
    /// let q = procshare::PodQueue::<u64>::new(4).unwrap();
    /// q.put(1).unwrap();
    /// assert_eq!(q.qsize(), 1);
    /// ```
    pub fn qsize(&self) -> usize {
        self.q().len()
    }

    /// Is the queue empty (approximate)?
    ///
    /// ```
    /// let q = procshare::PodQueue::<u64>::new(4).unwrap();
    /// assert!(q.is_empty());
    /// ```
    #[doc(alias = "empty")]
    pub fn is_empty(&self) -> bool {
        self.q().is_empty()
    }

    /// Shut the queue down for every process: `put` fails with
    /// [`QueueError::ShutDown`] (waiting ones too); `get` drains what is
    /// queued, then fails with `ShutDown`.
    ///
    /// ```
    /// let q = procshare::PodQueue::<u64>::new(4).unwrap();
    /// q.put(1).unwrap();
    /// q.shutdown();
    /// assert!(matches!(q.put(2), Err(procshare::QueueError::ShutDown)));
    /// assert_eq!(q.get().unwrap(), 1);
    /// assert!(matches!(q.get(), Err(procshare::QueueError::ShutDown)));
    /// ```
    pub fn shutdown(&self) {
        self.q().close(&ShmThread::current())
    }

    /// Has the queue been shut down ([`PodQueue::shutdown`])?
    ///
    /// ```
    /// let q = procshare::PodQueue::<u64>::new(4).unwrap();
    /// assert!(!q.is_shutdown());
    /// ```
    pub fn is_shutdown(&self) -> bool {
        self.q().is_closed()
    }
}

/// A 64-bit word of a queue's shared memory, for the `pod_queue_ops` fuzz
/// target to overwrite as another process mapping it could (a "foreign
/// write": see [`procshare_model::slot_queue`], "Hints far behind, and
/// foreign writes").
#[cfg(feature = "fuzzing")]
#[derive(Clone, Copy, Debug)]
pub(crate) enum SharedWord {
    /// The producers' `tail` hint.
    Tail,
    /// The consumers' `head` hint.
    Head,
    /// The `seq` of slot `i` (taken modulo the capacity).
    Seq(usize),
}

#[cfg(feature = "fuzzing")]
impl<T: Pod + Send + Sync> PodQueue<T> {
    /// The shared word `w` of this queue, to load, store or swap like any
    /// other process mapping the queue could.
    pub(crate) fn shared_word(&self, w: SharedWord) -> &crate::platform::ShmWord64 {
        match w {
            SharedWord::Tail => self.hdr.hint_words().0,
            SharedWord::Head => self.hdr.hint_words().1,
            SharedWord::Seq(i) => self.slots[i % self.slots.len()].seq_word(),
        }
    }
}
