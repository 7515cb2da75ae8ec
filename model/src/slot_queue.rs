//! The slot queue: a bounded multi-producer multi-consumer queue of
//! fixed-size (`Copy`) values in shared memory, with one robust lock per slot
//! and no queue-wide lock — the protocol behind `PodQueue`.
//!
//! The [ring](crate::ring) moves byte messages of any size, so each side takes
//! a queue-wide lock per message, and the consumer learns of a message by
//! reading the producers' `tail` word. For values of one fixed size this
//! protocol does what crossbeam-channel's array flavor does instead: each slot
//! carries a *sequence* (`seq`) that says what it holds, so a producer and a
//! consumer meet only on the slot they hand over, and an uncontended `put` or
//! `get` takes one slot lock (a CAS and a swap on the slot's own cache line)
//! and one `SeqCst` fence, which on x86-64 is the unlock's swap itself
//! (see [Sleeping](self#sleeping)).
//!
//! # Layout
//!
//! [`SlotHeader`] (`#[repr(C)]`, 384 bytes, aligned to 64: one line per field
//! group, by who writes it):
//!
//! | line | offset | field | written by | meaning / invariant |
//! |---|---|---|---|---|
//! | 0 | 0 | `tail: W64` | producers | a *hint*: the position after the last one some producer filled (never ahead of a position that was taken); `Release`-stored, `Acquire`-loaded |
//! | 1 | 64 | `head: W64` | consumers | a hint: the position after the last one some consumer emptied; `Release`/`Acquire` |
//! | 2 | 128 | `not_empty: W32` | producers, `close` | event counter `n << 1 \| WAITERS`: consumers sleep on it while the slot at their position is empty |
//! | 3 | 192 | `not_full: W32` | consumers, `close` | event counter: producers sleep on it while the slot at their position holds an earlier lap |
//! | 4 | 256 | `closed: W32` | `close` | 0 open, 1 closed (never reopens) |
//! | 4 | 264 | `slots: u64` | creator | the number of slots, a power of two in `2..=MAX_SLOTS`; constant |
//! | 5 | 320 | `pace: W32` | consumers | 1: consumers keeping up with a dense stream linger before looking at an empty slot again; 0: they look at once (as the ring's [Pacing](crate::ring#pacing)). A hint: any value is safe |
//!
//! [`Slot<P, T>`] (`#[repr(C)]`):
//!
//! | offset | field | meaning / invariant |
//! |---|---|---|
//! | 0 | `lock: RawMutex` (16 bytes) | held by whoever writes `value` or `seq` (a producer filling the slot, a consumer emptying it, a recoverer) |
//! | 16 | `seq: W64` | for the slot at index `i` and a position `p ≡ i (mod slots)`: `p` — free for position `p`; `p + 1` — holds position `p`'s value; `p + slots` — free for the next lap (emptied) |
//! | 24 | `value: Cell<T>` | written only under `lock` while `seq == p`; read only under `lock` while `seq == p + 1` |
//!
//! Invariants:
//! * `seq` only grows, and only under `lock`: `p → p + 1` (a producer filled
//!   it) and `p + 1 → p + slots` (a consumer emptied it).
//! * Nobody moves past a position before its slot says it was taken: a
//!   producer moves on from `p` only when `seq > p` (filled or emptied), a
//!   consumer only when `seq >= p + slots` (emptied).
//!   A slot that is locked is waited for (the lock's own wait, which watches
//!   the holder and takes over from a dead one), never passed. The hints
//!   only name positions after taken ones. So positions are taken in order,
//!   and a consumer that finds its slot free and unlocked knows that every
//!   later one is free too: the queue is empty there; and no value is ever
//!   left behind the consumers.
//! * The hints are `Release`-stored and `Acquire`-loaded: whoever starts at
//!   a hint sees every slot before it done with the earlier laps (a
//!   `Relaxed` hint lets a consumer read a slot's `seq` from before it was
//!   emptied, a lap behind its position: the model checks found that).
//!
//! # Owner death
//!
//! The slot lock is the robust [`RawMutex`]: a process killed while it holds
//! one is detected by the next one that takes the lock (`Acquired::OwnerDied`),
//! which then decides by `seq` alone:
//! * `seq == p` (a producer died filling it; its value was never
//!   acknowledged): a producer fills it; a consumer leaves it free (the
//!   queue is empty there: no producer went past it) and waits for the next
//!   `put`, which comes to this position.
//! * `seq == p + 1` (a producer died after publishing, or a consumer died
//!   before emptying): the value is delivered, to the next consumer.
//! * `seq == p + slots` (a consumer died after emptying it): nothing to do.
//!
//! So a kill at any step loses nothing a `put` acknowledged, except the one
//! value a consumer was returning when it died.
//!
//! # Hints far behind, and foreign writes
//!
//! A hint may be far behind the slots (a process preempted between its
//! unlock and its hint store while the others went many laps): a slot
//! more than a lap ahead of the position says how far the positions before
//! it went, and `put` / `get` jump there instead of walking one position at
//! a time.
//!
//! The shared memory is writable by every process that maps it, so a hint or
//! a `seq` may hold anything. What each side does about it (each step
//! reports [`RingError::Corrupt`]; the queue goes on):
//! * a slot that does not fit the position (a producer at `p` finding
//!   anything but `p - n + 1` or `p` and above; a consumer at `h` anything
//!   but `h`, `h + 1`, or `h + n` and above): the hint was overwritten or the
//!   `seq` was. Start once more from the other side's hint (`head` for
//!   producers; `tail - n` for consumers), neither of which is ever ahead of
//!   the position sought, without jumps; if the slot still does not fit, its
//!   `seq` was overwritten: the producer frees it for its position, the
//!   consumer passes it (what it held, if anything, is lost with its `seq`);
//! * a `tail` hint overwritten a little ahead (producers then fill positions
//!   after a free slot, where the consumers would stop): a consumer that
//!   finds its slot free and unlocked before giving up or sleeping reads
//!   `tail` (`Acquire`), then the slot again. In a sound run the slot cannot
//!   still be free for a position some producer went past (the hint is
//!   stored after the positions before it were taken), so it passes the
//!   slot, after looking once more under its lock;
//! * a `head` hint overwritten ahead of values (consumers then start after
//!   them, and the producers, coming round, find the queue full forever): a
//!   producer that finds its slot holding the previous lap, before giving up
//!   or sleeping, reads `head`, then the slot again, and if the consumers'
//!   hint is past that value moves it back to it (the first value left
//!   behind: producers come round in order).
//!
//! An overwritten hint loses and duplicates nothing, but can change the
//! order of values; an overwritten `seq` loses what its slot held. Every
//! call ends whatever the shared words hold: a jump never goes
//! `JUMP_LIMIT` (2^62) past the hint the call started from (`seq`s written
//! a quarter of the positions apart sent jumps round for ever), and a walk
//! started again goes at most two laps (from an overwritten hint it walked
//! towards `seq`s 2^40 positions away); beyond, the slot "does not fit". The
//! `pod_queue_ops` fuzz target found both (`fuzz/hangs/pod_queue_ops`).
//! Those checks cost nothing on the way of a value: they run only where a
//! side would give up or sleep.
//!
//! # Sleeping
//!
//! A waiter announces itself in an event word's `WAITERS` bit (CAS), then a
//! `SeqCst` fence, then looks at the slot again, then sleeps while the word
//! holds what it announced. A notifier changes the slot, then a `SeqCst`
//! fence, then reads the event word and bumps it (and wakes) only if the bit
//! is set. The two fences make either the notifier see the bit or the waiter
//! see the change (the store-buffering pattern): nobody pays a
//! read-modify-write on the event word while nobody sleeps. A waiter that
//! dies asleep leaves the bit set: the next notifier clears it.
//!
//! A `put` or `get` that moved a value places its notifier's fence right
//! after the slot unlock's swap, before its hint store:
//! [`Platform::fence_after_rmw`], which the model checkers run as a `SeqCst`
//! fence and which costs nothing on x86-64, where the swap (a locked
//! instruction) is already a full barrier. The checks then prove the
//! protocol with the fence where the real barrier is: a sleeper's recheck
//! may rely on the `seq` store (before the swap), not on the hint store
//! after it. Measured: `PROCSHARE_BENCH_ONLY=queue_pod` (see the README).

use core::mem::offset_of;
use core::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
use core::time::Duration;

use crate::mutex::{Acquired, RawMutex};
use crate::park;
use crate::platform::{mutant, CellLike, Mutant, Platform, Thread, Woke, Word32, Word64};
use crate::ring::{Padded, RingError, Wait};

/// The largest number of slots (2^32: positions stay far from wrapping).
pub const MAX_SLOTS: u64 = 1 << 32;

/// How far past its hint a `put` or `get` may jump: no sound run gets near
/// it (positions stay far from wrapping), and `seq`s overwritten far apart
/// cannot send the jumps round the positions for ever. A walk that started
/// again (after a slot that did not fit) goes at most two laps.
const JUMP_LIMIT: u64 = 1 << 62;

/// The waiters bit of an event word (the count moves in steps of 2).
const EV_WAITERS: u32 = 1;

/// Seeded bug: the `tail` and `head` hints are stored and loaded `Relaxed`
/// (a consumer that starts at another's hint may read a slot's `seq` from a
/// lap before: the bug the model checks found in the first version).
#[doc(hidden)]
pub const MUTANT_RELAXED_HINTS: Mutant = Mutant(1301);
/// Seeded bug: a producer does not check `seq` again under the slot lock
/// (two producers fill one slot: a value is overwritten).
#[doc(hidden)]
pub const MUTANT_NO_RECHECK: Mutant = Mutant(1302);
/// Seeded bug: the notifier reads the event word without the fence (a
/// sleeper's announcement and the slot change can pass each other).
#[doc(hidden)]
pub const MUTANT_NO_NOTIFY_FENCE: Mutant = Mutant(1303);
/// Seeded bug: a producer that takes over a dead producer's slot moves on
/// to the next position instead of filling it (it passes a free slot: the
/// consumers stop there and the values after it are left behind).
#[doc(hidden)]
pub const MUTANT_PASS_RECOVERED: Mutant = Mutant(1304);
/// Seeded bug: a consumer moves past a locked slot instead of waiting for
/// it (a value being published there is left behind).
#[doc(hidden)]
pub const MUTANT_PASS_LOCKED: Mutant = Mutant(1305);
/// Seeded bug: `close` does not wake sleepers.
#[doc(hidden)]
pub const MUTANT_CLOSE_NO_WAKE: Mutant = Mutant(1306);
/// Seeded bug: a consumer that passes a free slot behind a `tail` hint that
/// was overwritten does not look at the slot again under its lock (a value
/// a producer put there meanwhile is overwritten).
#[doc(hidden)]
pub const MUTANT_PASS_WITHOUT_RECHECK: Mutant = Mutant(1307);
/// Seeded bug: a producer that finds the queue full checks the consumers'
/// `head` hint without looking at the slot again after it (a slot emptied
/// meanwhile looks like a value behind the head: a spurious `Corrupt`).
#[doc(hidden)]
pub const MUTANT_STALE_HEAD_CHECK: Mutant = Mutant(1308);
/// Seeded bug: a lazy consumer looks at once, as an eager one (the linger
/// is never taken: see `pace`).
#[doc(hidden)]
pub const MUTANT_NEVER_LINGER: Mutant = Mutant(1309);
/// Seeded bug: a lazy consumer stays lazy after a linger that found a single
/// value (it does not look whether the next slot is published).
#[doc(hidden)]
pub const MUTANT_LAZY_WITHOUT_BATCH: Mutant = Mutant(1310);

/// The fixed part of a slot queue. See the [module docs](self).
#[repr(C)]
pub struct SlotHeader<P: Platform> {
    tail: Padded<P::W64>,
    head: Padded<P::W64>,
    not_empty: Padded<P::W32>,
    not_full: Padded<P::W32>,
    closed: Padded<Closed<P>>,
    pace: Padded<P::W32>,
}

/// The last line: the closed flag and the constant slot count.
#[repr(C)]
struct Closed<P: Platform> {
    closed: P::W32,
    slots: u64,
}

impl<P: Platform> core::fmt::Debug for SlotHeader<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SlotHeader")
            .field("slots", &self.closed.0.slots)
            .field("tail", &self.tail.0.load(Relaxed))
            .field("head", &self.head.0.load(Relaxed))
            .field("closed", &self.closed.0.closed.load(Relaxed))
            .finish()
    }
}

impl<P: Platform> SlotHeader<P> {
    /// The byte offset of each field of the layout table, as compiled (impl's
    /// layout check compares them with the table).
    #[doc(hidden)]
    pub const OFFSETS: &'static [(&'static str, usize)] = &[
        ("tail", offset_of!(Self, tail)),
        ("head", offset_of!(Self, head)),
        ("not_empty", offset_of!(Self, not_empty)),
        ("not_full", offset_of!(Self, not_full)),
        (
            "closed",
            offset_of!(Self, closed) + offset_of!(Closed<P>, closed),
        ),
        (
            "slots",
            offset_of!(Self, closed) + offset_of!(Closed<P>, slots),
        ),
        ("pace", offset_of!(Self, pace)),
    ];

    /// A header for `slots` slots (clamped to `2..=MAX_SLOTS`, rounded up to
    /// a power of two: see [`SlotHeader::slots`]). Two at least: with one,
    /// "holds position `p`" (`p + 1`) and "free for the next lap"
    /// (`p + slots`) would be the same `seq`.
    pub fn new(slots: u64) -> Self {
        let n = slots.clamp(2, MAX_SLOTS).next_power_of_two();
        SlotHeader {
            tail: Padded(P::W64::new(0)),
            head: Padded(P::W64::new(0)),
            not_empty: Padded(P::W32::new(0)),
            not_full: Padded(P::W32::new(0)),
            closed: Padded(Closed {
                closed: P::W32::new(0),
                slots: n,
            }),
            pace: Padded(P::W32::new(0)),
        }
    }

    /// The number of slots (a power of two).
    pub fn slots(&self) -> u64 {
        self.closed.0.slots
    }

    /// The `tail` and `head` hints, for tests and fuzz targets that write
    /// them as another process mapping the queue could (see
    /// [foreign writes](self#hints-far-behind-and-foreign-writes)).
    #[doc(hidden)]
    pub fn hint_words(&self) -> (&P::W64, &P::W64) {
        (&self.tail.0, &self.head.0)
    }
}

/// One slot. See the [module docs](self).
#[repr(C)]
pub struct Slot<P: Platform, T: Send> {
    lock: RawMutex<P>,
    seq: P::W64,
    value: P::Cell<T>,
}

impl<P: Platform, T: Send> core::fmt::Debug for Slot<P, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Slot")
            .field("lock", &self.lock)
            .field("seq", &self.seq.load(Relaxed))
            .finish_non_exhaustive()
    }
}

impl<P: Platform, T: Send> Slot<P, T> {
    /// The byte offset of each field of the layout table.
    #[doc(hidden)]
    pub const OFFSETS: &'static [(&'static str, usize)] = &[
        ("lock", offset_of!(Self, lock)),
        ("seq", offset_of!(Self, seq)),
        ("value", offset_of!(Self, value)),
    ];

    /// The slot's `seq`, for tests and fuzz targets that write it as another
    /// process mapping the queue could.
    #[doc(hidden)]
    pub fn seq_word(&self) -> &P::W64 {
        &self.seq
    }

    /// Slot `i` of a new queue, holding `v` (never read: the slot is free).
    pub fn new(i: u64, v: T) -> Self {
        Slot {
            lock: RawMutex::new(),
            seq: P::W64::new(i),
            value: P::Cell::new(v),
        }
    }
}

/// A slot queue: a header and its slots. See the [module docs](self).
pub struct SlotQueue<'a, P: Platform, T: Copy + Send> {
    h: &'a SlotHeader<P>,
    slots: &'a [Slot<P, T>],
    mask: u64,
}

impl<P: Platform, T: Copy + Send> core::fmt::Debug for SlotQueue<'_, P, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SlotQueue").field("h", self.h).finish()
    }
}

/// What a consumer found at its position.
enum Found<T> {
    Value(T),
    /// The slot is done with this position: look at the next one.
    Next,
    /// Nothing there yet (free and unlocked): the queue is empty.
    Empty,
    /// Locked by somebody else (`try`: do not wait).
    Busy,
}

impl<'a, P: Platform, T: Copy + Send> SlotQueue<'a, P, T> {
    /// The queue made of `h` and `slots` (`None` if their sizes disagree).
    pub fn new(h: &'a SlotHeader<P>, slots: &'a [Slot<P, T>]) -> Option<Self> {
        let n = h.slots();
        if !n.is_power_of_two() || !(2..=MAX_SLOTS).contains(&n) || slots.len() as u64 != n {
            return None;
        }
        Some(SlotQueue {
            h,
            slots,
            mask: n - 1,
        })
    }

    /// The queue made of `h` and `slots`, sized by `slots` alone (`None`
    /// unless its length is a power of two in `2..=MAX_SLOTS`): for a caller
    /// that checked the two with [`SlotQueue::new`] when it got them. The
    /// header's `slots` field lies in shared memory, where another process
    /// may overwrite it; the slice's length is the caller's own.
    #[inline]
    pub fn with_len(h: &'a SlotHeader<P>, slots: &'a [Slot<P, T>]) -> Option<Self> {
        let n = slots.len() as u64;
        if !n.is_power_of_two() || !(2..=MAX_SLOTS).contains(&n) {
            return None;
        }
        Some(SlotQueue {
            h,
            slots,
            mask: n - 1,
        })
    }

    #[inline]
    fn hint_load(&self) -> core::sync::atomic::Ordering {
        if mutant::<P>(MUTANT_RELAXED_HINTS) {
            Relaxed
        } else {
            Acquire
        }
    }

    #[inline]
    fn hint_store(&self) -> core::sync::atomic::Ordering {
        if mutant::<P>(MUTANT_RELAXED_HINTS) {
            Relaxed
        } else {
            Release
        }
    }

    #[inline]
    fn slot(&self, p: u64) -> &Slot<P, T> {
        &self.slots[(p & self.mask) as usize]
    }

    /// Has the queue been closed?
    pub fn is_closed(&self) -> bool {
        self.h.closed.0.closed.load(Acquire) != 0
    }

    /// Values in the queue (approximate: from the two hints).
    pub fn len(&self) -> usize {
        let t = self.h.tail.0.load(Acquire);
        let h = self.h.head.0.load(Acquire);
        (t.wrapping_sub(h) as i64).clamp(0, self.mask as i64 + 1) as usize
    }

    /// Is the queue empty (approximate)?
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Close: later and waiting `put`s fail with [`RingError::Closed`]; `get`s
    /// drain what is in the queue, then fail with `Closed`. Wakes every waiter.
    pub fn close(&self, t: &P::Thread) {
        self.h.closed.0.closed.store(1, Release);
        t.crash_point();
        if !mutant::<P>(MUTANT_CLOSE_NO_WAKE) {
            for w in [&self.h.not_empty.0, &self.h.not_full.0] {
                w.fetch_add(2, Release);
                t.wake(w, u32::MAX);
            }
        }
    }

    /// After changing a slot: wake the sleepers of `w` if any announced
    /// themselves (see [Sleeping](self#sleeping)).
    #[inline]
    fn notify(&self, t: &P::Thread, w: &P::W32) {
        if !mutant::<P>(MUTANT_NO_NOTIFY_FENCE) {
            P::fence(SeqCst);
        }
        self.notify_fenced(t, w);
    }

    /// The notifier's fence of a `put` or `get` that changed a slot and then
    /// released its lock (`unlocked`: the unlock's swap happened): the swap
    /// is the barrier on x86-64 ([`Platform::fence_after_rmw`]), so the value
    /// path pays no locked instruction of its own for its wake-up check. It
    /// comes before the hint store, where the swap is.
    #[inline]
    fn fence_after_unlock(unlocked: bool) {
        park::fence_after_unlock::<P>(unlocked, mutant::<P>(MUTANT_NO_NOTIFY_FENCE));
    }

    /// [`notify`](Self::notify) after [`fence_after_unlock`](Self::fence_after_unlock)
    /// ([`park::wake_announced`]).
    #[inline]
    fn notify_fenced(&self, t: &P::Thread, w: &P::W32) {
        park::wake_announced::<P>(t, w, EV_WAITERS);
    }

    /// Announce on `w`, then sleep unless `changed()` (looked at after the
    /// fence) or a `close`.
    fn sleep(
        &self,
        t: &P::Thread,
        w: &P::W32,
        changed: impl Fn() -> bool,
        dl: &<P::Thread as Thread>::Deadline,
    ) -> Woke {
        let seen = w.load(Acquire);
        let v = seen | EV_WAITERS;
        if seen & EV_WAITERS == 0 && w.cas(seen, v, Relaxed, Relaxed).is_err() {
            return Woke::Mismatch;
        }
        t.crash_point();
        P::fence(SeqCst);
        if changed() || self.is_closed() {
            return Woke::Mismatch;
        }
        t.wait(w, v, dl)
    }

    /// Before taking a slot lock that is held: spin a little, one pause at a
    /// time, while it is. The usual holder is the other side between its
    /// `seq` store and its unlock (a few instructions); the lock's own spin
    /// backs off exponentially, which would make every hand-over of a full
    /// (or empty) queue wait far longer than that.
    #[inline]
    fn until_unlocked(&self, t: &P::Thread, slot: &Slot<P, T>) {
        let mut k = 0;
        while slot.lock.word().load(Relaxed) != 0 && t.spin_flat(k) {
            k += 1;
        }
    }

    /// A producer at `p` found its slot holding position `p - n` (`seq ==
    /// s`, the queue full there) and is about to give up or sleep: is the
    /// consumers' `head` hint past that value? Consumers move past a
    /// position only after emptying it, and the hint is stored after that
    /// (`Release`, loaded `Acquire` here), so after reading such a hint the
    /// slot cannot still hold `p - n` — unless the hint was overwritten
    /// ahead of the values: then move it back to `p - n`, the first value
    /// left behind (producers fill positions in order, so the first
    /// stranded one is the first they come back to), and report it.
    fn head_ahead(
        &self,
        t: &P::Thread,
        slot: &Slot<P, T>,
        p: u64,
        s: u64,
    ) -> Result<(), RingError> {
        let n = self.mask + 1;
        let first = p.wrapping_sub(n);
        let hd = self.h.head.0.load(Acquire);
        if hd.wrapping_sub(first) as i64 <= 0 {
            return Ok(());
        }
        if !mutant::<P>(MUTANT_STALE_HEAD_CHECK) && slot.seq.load(Acquire) != s {
            return Ok(());
        }
        t.foreign_write("the consumers' head hint past a value");
        self.h.head.0.store(first, Release);
        self.notify(t, &self.h.not_empty.0);
        Err(RingError::Corrupt(
            "the consumers' head hint was past a value: moved back to it",
        ))
    }

    /// A consumer at `h` found its slot free and unlocked (`seq == h`) and is
    /// about to give up or sleep: is the producers' `tail` hint past it?
    /// Producers move past a position only after it was taken, and the hint
    /// is stored after that (`Release`, loaded `Acquire` here), so after
    /// reading such a hint the slot cannot still be free for `h` — unless
    /// the hint was overwritten ahead of the values and producers filled
    /// positions after a free one. Then mark this empty slot as passed
    /// (nothing was in it) so the consumers reach the values after it, and
    /// report it; a hint more than a lap ahead is moved back too.
    fn tail_ahead(&self, t: &P::Thread, slot: &Slot<P, T>, h: u64) -> Result<(), RingError> {
        let n = self.mask + 1;
        let tl = self.h.tail.0.load(Acquire);
        if tl.wrapping_sub(h) as i64 <= 0 {
            return Ok(());
        }
        if slot.seq.load(Acquire) != h {
            return Ok(());
        }
        if slot.lock.try_lock(t).is_err() {
            return Ok(()); // somebody is at it: no free slot to pass
        }
        let free = slot.seq.load(Relaxed) == h || mutant::<P>(MUTANT_PASS_WITHOUT_RECHECK);
        if free {
            slot.seq.store(h.wrapping_add(n), Release);
        }
        let _ = slot.lock.unlock(t);
        if !free {
            return Ok(());
        }
        t.foreign_write("a free slot behind the producers' tail hint");
        self.h.head.0.store(h.wrapping_add(1), Release);
        if tl.wrapping_sub(h) > n {
            self.h.tail.0.store(h.wrapping_add(1), Release);
        }
        self.notify(t, &self.h.not_full.0);
        Err(RingError::Corrupt(
            "a free slot behind the producers' tail hint: passed it",
        ))
    }

    /// Put `v`, waiting for a free slot as `wait` says ([`RingError::Full`]
    /// if none came; [`RingError::Closed`] once closed).
    pub fn put(&self, t: &P::Thread, v: T, wait: Wait) -> Result<(), RingError> {
        let dl = t.deadline(match wait {
            Wait::No => Some(Duration::ZERO),
            Wait::For(d) => d,
        });
        let n = self.mask + 1;
        let mut p = self.h.tail.0.load(self.hint_load());
        let start = p;
        let mut restarted = false;
        // Positions walked since the walk started again (see below).
        let mut walked = 0u64;
        let mut spins = 0;
        loop {
            if self.is_closed() {
                return Err(RingError::Closed);
            }
            let slot = self.slot(p);
            let s = slot.seq.load(Acquire);
            let d = s.wrapping_sub(p) as i64;
            if d > 0 {
                // Taken for `p` already. A slot more than a lap ahead of `p`
                // (a hint far behind) says that every position up to `s - n`
                // was taken (in order): go there, not one slot at a time —
                // unless this walk started again after a slot that did not
                // fit (a `seq` overwritten far ahead would send it there).
                // Never `JUMP_LIMIT` past the hint, and at most two laps in
                // a walk started again: beyond, the slot does not fit.
                if d > n as i64 && !restarted {
                    let to = s.wrapping_sub(n - 1);
                    if to.wrapping_sub(start) < JUMP_LIMIT {
                        p = to;
                        continue;
                    }
                } else if !(restarted && walked > 2 * n) {
                    walked += u64::from(restarted);
                    p = p.wrapping_add(1);
                    continue;
                }
            }
            if d == 0 {
                // Never pass a free slot (see the invariants): wait for its
                // lock (another producer filling it, the consumer that just
                // emptied it), as `wait` says.
                // Even a `try_put` waits here: the holder is handing the
                // slot over (a few instructions), or is dead, which the
                // lock's wait detects. Answering `Full` would be wrong: the
                // slot is free for `p`.
                self.until_unlocked(t, slot);
                let got = slot.lock.lock(
                    t,
                    match wait {
                        Wait::No => None,
                        Wait::For(d) => d,
                    },
                );
                match got {
                    Err(_) if self.is_closed() => return Err(RingError::Closed),
                    Err(_) => return Err(RingError::Full),
                    Ok(how) => {
                        // Under the lock (a dead holder's partial value is
                        // overwritten): still free for `p`?
                        if slot.seq.load(Relaxed) != p && !mutant::<P>(MUTANT_NO_RECHECK) {
                            let _ = slot.lock.unlock(t);
                            continue;
                        }
                        if how == Acquired::OwnerDied && mutant::<P>(MUTANT_PASS_RECOVERED) {
                            let _ = slot.lock.unlock(t);
                            p = p.wrapping_add(1);
                            continue;
                        }
                        slot.value.with_mut(|c| {
                            // SAFETY: `c` points to the slot's value, a live
                            // `T`; the slot lock is ours and `seq == p`, so
                            // nobody else reads or writes it (the invariants).
                            unsafe { c.write(v) }
                        });
                        t.crash_point();
                        slot.seq.store(p.wrapping_add(1), Release);
                        t.crash_point();
                        Self::fence_after_unlock(slot.lock.unlock(t).is_ok());
                        self.h.tail.0.store(p.wrapping_add(1), self.hint_store());
                        self.notify_fenced(t, &self.h.not_empty.0);
                        return Ok(());
                    }
                }
            }
            if d != 1 - n as i64 {
                // Not what the slot of a position after taken ones can say
                // (`p - n + 1`, holding the previous lap, or `p` and
                // above): foreign writes, to the `tail` hint or to `seq`.
                // Start once more from the consumers' `head` hint, which is
                // never ahead of a position that was taken; if the slot
                // still does not fit, its `seq` is what was overwritten:
                // free the slot for `p` (whatever it held is unreachable)
                // and report it.
                if !restarted {
                    t.foreign_write("slot sequence does not fit the producers' hint");
                    restarted = true;
                    p = self.h.head.0.load(Acquire);
                    continue;
                }
                t.foreign_write("slot sequence does not fit the producers' position");
                if slot.lock.try_lock(t).is_ok() {
                    if slot.seq.load(Relaxed) == s {
                        slot.seq.store(p, Release);
                    }
                    let _ = slot.lock.unlock(t);
                }
                return Err(RingError::Corrupt(
                    "slot sequence does not fit the producers' position",
                ));
            }
            // The slot still holds the previous lap: the queue is full here.
            if wait == Wait::No {
                self.head_ahead(t, slot, p, s)?;
                return Err(RingError::Full);
            }
            // Spin while the consumers free half of the queue (watching
            // their `head` hint, not the slot: looking at the slot would
            // pull its line away from the consumer emptying it, at every
            // value of a queue that stays full), then look again and put
            // into a half-free queue, where producers and consumers do not
            // meet.
            let want = p.wrapping_sub(n / 2);
            let mut spun = false;
            while t.spin_flat(spins) {
                spins += 1;
                spun = true;
                if self.h.head.0.load(Relaxed).wrapping_sub(want) as i64 >= 0 {
                    break;
                }
            }
            if spun {
                continue;
            }
            self.head_ahead(t, slot, p, s)?;
            let w = &self.h.not_full.0;
            if self.sleep(t, w, || slot.seq.load(Acquire) != s, &dl) == Woke::TimedOut
                && t.expired(&dl)
            {
                return Err(RingError::Full);
            }
        }
    }

    /// Take the next value, waiting for one as `wait` says
    /// ([`RingError::Empty`] if none came; [`RingError::Closed`] once closed
    /// and empty). With [`Wait::No`], a value another process is still
    /// publishing is not waited for (its `put` has not returned: `Empty`),
    /// but a slot whose value is published and that another process still
    /// holds (for a few instructions) is.
    pub fn get(&self, t: &P::Thread, wait: Wait) -> Result<T, RingError> {
        let timeout = match wait {
            Wait::No => Some(Duration::ZERO),
            Wait::For(d) => d,
        };
        let dl = t.deadline(timeout);
        let n = self.mask + 1;
        let mut h = self.h.head.0.load(self.hint_load());
        let start = h;
        let mut restarted = false;
        // Positions walked since the walk started again (see below).
        let mut walked = 0u64;
        let mut spins = 0;
        loop {
            let slot = self.slot(h);
            let s = slot.seq.load(Acquire);
            let d = s.wrapping_sub(h) as i64;
            let found = if d >= 2 * n as i64
                && !restarted
                && s.wrapping_sub(n).wrapping_sub(start) < JUMP_LIMIT
            {
                // More than a lap ahead of `h` (a hint far behind): every
                // position before `s - n` was emptied (in order): go there,
                // not one slot at a time (unless this walk started again,
                // as for `put`).
                h = s.wrapping_sub(n);
                continue;
            } else if d >= n as i64
                && (d < 2 * n as i64 || restarted)
                && !(restarted && walked > 2 * n)
            {
                walked += u64::from(restarted);
                Found::Next
            } else if !(0..=1).contains(&d) {
                // Between `h + 1` and `h + slots`, or behind `h`: not what
                // the slot of a position after emptied ones can say (foreign
                // writes, to the `head` hint or to `seq`). Start once more
                // from the producers' `tail` hint less a lap, never ahead of
                // a position still to empty; if the slot still does not fit,
                // its `seq` is what was overwritten: skip the slot.
                if !restarted {
                    t.foreign_write("slot sequence does not fit the consumers' hint");
                    restarted = true;
                    h = self.h.tail.0.load(Acquire).wrapping_sub(n);
                    continue;
                }
                t.foreign_write("slot sequence out of range");
                if slot.lock.try_lock(t).is_ok() {
                    if slot.seq.load(Relaxed) == s {
                        slot.seq.store(h.wrapping_add(n), Release);
                    }
                    let _ = slot.lock.unlock(t);
                }
                self.h.head.0.store(h.wrapping_add(1), Release);
                return Err(RingError::Corrupt("slot sequence out of range"));
            } else if d == 0 && slot.lock.word().load(Relaxed) & !crate::mutex::WAITERS == 0 {
                Found::Empty
            } else if mutant::<P>(MUTANT_PASS_LOCKED) && d == 0 {
                Found::Next
            } else {
                // A value, or a slot somebody holds (a producer filling it, a
                // consumer emptying it, a dead holder): take the lock.
                self.take(t, slot, h, d == 1, wait, timeout)
            };
            match found {
                Found::Value(v) => {
                    if spins > 0 {
                        self.pace_after_wait(h, spins);
                    }
                    // `take` fenced after its unlock.
                    self.h.head.0.store(h.wrapping_add(1), self.hint_store());
                    self.notify_fenced(t, &self.h.not_full.0);
                    return Ok(v);
                }
                Found::Next => {
                    h = h.wrapping_add(1);
                    spins = 0;
                }
                Found::Busy => return Err(RingError::Empty),
                Found::Empty => {
                    if self.is_closed() {
                        // `close` comes after the last put: look again now
                        // that its Acquire load made the slot visible.
                        if slot.seq.load(Acquire) == s {
                            return Err(RingError::Closed);
                        }
                        continue;
                    }
                    if wait == Wait::No {
                        self.tail_ahead(t, slot, h)?;
                        return Err(RingError::Empty);
                    }
                    // A consumer keeping up with a dense stream lingers
                    // before it looks again (see `pace`).
                    let looked = if spins == 0
                        && self.h.pace.0.load(Relaxed) != 0
                        && !mutant::<P>(MUTANT_NEVER_LINGER)
                    {
                        t.linger()
                    } else {
                        t.spin_flat(spins)
                    };
                    if looked {
                        spins += 1;
                        continue;
                    }
                    self.tail_ahead(t, slot, h)?;
                    let w = &self.h.not_empty.0;
                    let moved = || {
                        slot.seq.load(Acquire) != s
                            || slot.lock.word().load(Relaxed) & !crate::mutex::WAITERS != 0
                    };
                    if self.sleep(t, w, moved, &dl) == Woke::TimedOut && t.expired(&dl) {
                        return Err(RingError::Empty);
                    }
                }
            }
        }
    }

    /// The consumers' pace after a wait of `looks` looks that found position
    /// `h`'s value (the ring's [`pace_after_wait`](crate::ring::pace_after_wait),
    /// with the next position's value, if published, a second one ready).
    fn pace_after_wait(&self, h: u64, looks: u32) {
        let lazy = self.h.pace.0.load(Relaxed) != 0;
        let next = h.wrapping_add(1);
        let ready = 1 + u64::from(
            self.slot(next).seq.load(Relaxed) == next.wrapping_add(1)
                || mutant::<P>(MUTANT_LAZY_WITHOUT_BATCH),
        );
        let now = crate::ring::pace_after_wait(lazy, looks, ready);
        if now != lazy {
            self.h.pace.0.store(u32::from(now), Relaxed);
        }
    }

    /// Take slot `slot`'s lock (for position `h`) and empty it, if it holds
    /// `h`'s value.
    fn take(
        &self,
        t: &P::Thread,
        slot: &Slot<P, T>,
        h: u64,
        published: bool,
        wait: Wait,
        timeout: Option<Duration>,
    ) -> Found<T> {
        let got = match wait {
            // Nothing published yet: the holder is a producer filling the
            // slot (its `put` has not happened yet) or one that died there.
            Wait::No if !published => slot.lock.try_lock(t),
            // A value published: its holder is the producer between its `seq`
            // store and its unlock, or a consumer taking it — a few
            // instructions — or is dead, which the lock's wait detects. Even
            // a `try_get` waits: answering `Empty` with a value (and maybe
            // more behind it) in the queue would not be linearizable.
            Wait::No => {
                self.until_unlocked(t, slot);
                slot.lock.lock(t, None)
            }
            Wait::For(_) => {
                self.until_unlocked(t, slot);
                slot.lock.lock(t, timeout)
            }
        };
        if got.is_err() {
            return Found::Busy;
        }
        let s = slot.seq.load(Relaxed);
        let n = self.mask + 1;
        let r = if s == h.wrapping_add(1) {
            let v = slot.value.with(|c| {
                // SAFETY: `c` points to the slot's value, a live `T` (`Copy`);
                // the slot lock is ours and `seq == h + 1`: the value was
                // written before that `seq` and nobody else accesses it.
                unsafe { c.read() }
            });
            t.crash_point();
            slot.seq.store(h.wrapping_add(n), Release);
            Found::Value(v)
        } else if s == h {
            // Still free: its holder was a producer that found it filled
            // (not for `h`, then) or died filling it. Nobody went past it.
            Found::Empty
        } else {
            Found::Next
        };
        t.crash_point();
        let unlocked = slot.lock.unlock(t).is_ok();
        if let Found::Value(_) = r {
            // The notifier's fence (see `notify_fenced`).
            Self::fence_after_unlock(unlocked);
        }
        r
    }
}

#[cfg(all(test, feature = "checkers"))]
mod tests;
