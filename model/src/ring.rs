//! The queue ring: a byte ring of framed, variable-size messages in shared
//! memory, for many producers and many consumers (the protocol behind
//! `Queue`, `SimpleQueue` and `JoinableQueue`).
//!
//! # Shape
//!
//! The ring is two parts: a fixed [`RingHeader`] (locks, positions, futex
//! words) and an array of `capacity` byte *chunks* of [`CHUNK`] bytes, each a
//! [`Platform::Cell`] (so loom tracks every access to every chunk). A
//! [`Ring`] borrows both. Positions count chunks, not bytes.
//!
//! The byte stream is a sequence of **pieces**. A piece starts at a chunk
//! boundary and occupies `chunks_for(len)` whole chunks (wrapping around the
//! array end chunk by chunk):
//!
//! ```text
//! piece = [len: u32 LE][flags: u32 LE][len payload bytes][padding to a chunk boundary]
//! flags = FIRST (1): the first piece of a message
//!       | LAST  (2): the last piece of a message
//! ```
//!
//! A message that fits in the ring is one piece (`FIRST|LAST`). A larger one is
//! *streamed*: its producer publishes pieces as space frees up and the
//! consumer reads them as they come, so a message of any size passes through
//! a ring of any capacity.
//!
//! # Two locks, and why messages are never torn or interleaved
//!
//! A producer holds `prod` (a robust [`RawMutex`]) from its message's first
//! piece to its last; a consumer holds `cons` from its first piece read to
//! its last. So the pieces of one message are contiguous in the stream, and
//! a message is read by one consumer.
//!
//! A piece is *published* by one `Release` store of `tail` after its chunks
//! are written, and *freed* by one `Release` store of `head` after its chunks
//! are read. Those two stores are the only changes to the ring's state: a
//! process that dies anywhere else leaves nothing half-done in shared memory.
//! (The producers' own copy of `tail`, stored after it, is behind it only
//! when its holder died in between: the lock's next taker reads `tail`;
//! the seeded bug 620 does not.)
//!
//! **Delivery rule.** A consumer delivers a message iff it read a `FIRST`
//! piece, then zero or more pieces without `FIRST`, then one with `LAST`. A
//! `FIRST` while assembling means the previous message was *abandoned*: its
//! assembled bytes are dropped. Pieces without `FIRST` read while not
//! assembling belong to a message whose beginning someone else consumed (a
//! consumer that died or gave up): they are skipped. Since one producer holds
//! `prod` throughout a message and every new holder starts with `FIRST`, a
//! delivered message holds exactly the bytes of one `put`, in order. A
//! partial message is never delivered; this is what the crash checks prove at
//! every crash point.
//!
//! **Abandonment** (a producer that died, timed out or saw `close` in the
//! middle of a streamed message) is noticed by the assembling consumer in one
//! of three ways: a new `FIRST` piece; `prod` free with no data left (every
//! producer that releases `prod` then notifies `not_empty`, so a sleeping
//! consumer wakes up to look); or `prod` held by a dead owner (the liveness
//! poll).
//!
//! # Counting messages
//!
//! `tail` and `head` each pack a 40-bit chunk position and a 24-bit message
//! count (messages whose `LAST` piece was published / freed). `qsize` is the
//! difference of the counts, and the optional `max_items` bound (Python's
//! `maxsize`) is checked by the `prod` holder before the first piece of each
//! message: only the holder increments the published count, so the bound
//! cannot be overshot. A message abandoned without `LAST` is never counted.
//!
//! # Waiting
//!
//! `not_empty` and `not_full` are event counters (`counter << 1 | WAITERS`),
//! bumped only when somebody sleeps on them, so that a message moves
//! without a read-modify-write on them (the store-buffering pattern, as the
//! slot queue's [Sleeping](crate::slot_queue#sleeping)):
//!
//! - A **waiter** loads the word, then checks its condition. To sleep, it
//!   *announces* itself: sets `WAITERS` by CAS from the value it loaded, then
//!   a `SeqCst` fence, then checks its condition again (the caller's loop),
//!   and sleeps while the word holds the announced value (the shared waiting
//!   step, [`crate::park::sleep_owned`]). A waiter that loads a word already
//!   announced fences before its check, too.
//! - A **notifier** changes the condition, then a `SeqCst` fence, then reads
//!   the word: only if `WAITERS` is set does it add 2, clear the bit and wake
//!   every sleeper.
//!
//! The two fences make either the notifier see the announcement or the
//! waiter's check see the change; a bump after the waiter's load makes its
//! sleep return at once. So no wake-up is lost (the seeded bugs 618 and 619
//! drop one fence each, and loom finds the sleeper that never wakes; 621
//! sleeps without the second look, and loom and shuttle find it). A
//! producer's release of `prod`, and a consumer's of `cons` after the last
//! piece of a message, is its notifier's barrier on x86-64 (the unlock's
//! swap: [`Platform::fence_after_rmw`]), so neither a `put` nor a `get` pays
//! a locked instruction for its wake-up check. A waiter that dies asleep leaves the
//! bit set: the next notifier clears it. The only sleepers on `not_empty`
//! are `cons` holders and on `not_full` `prod` holders (the others sleep in
//! the mutexes), so "wake all" wakes one. Before sleeping, a waiter spins
//! briefly ([`Thread::spin`]).
//!
//! A process can die between its `tail`/`head` store and its notification.
//! Whoever takes its lock over ([`Acquired::OwnerDied`]) notifies for it;
//! sleepers also wake at every liveness poll of the real platform, which
//! covers a death between the release of the lock and the notification (the
//! checkers give every sleeper such a poll after each death).
//!
//! `close` sets `closed` and notifies both words. Producers then fail with
//! [`RingError::Closed`]; consumers get the messages still in the ring, then
//! `Closed`. Threads queued on a mutex get in one after the other and see
//! `closed` too.
//!
//! # Pacing
//!
//! A consumer that has caught up looks at `tail` until the next piece is
//! there. Each look pulls line 1 to its core, so the producer's next `tail`
//! store waits for the line to come back, and its unlock's swap waits for that
//! store: with a consumer faster than its producer, every message paid a line
//! transfer and the producer ran at half speed. So the `cons` holder keeps a
//! hint, `pace`, of how the last wait went ([`pace_after_wait`]):
//!
//! - **eager** (0): it looks at once and then backs off ([`Thread::spin`]). A
//!   wait that ends within [`FAST_LOOKS`] looks means a dense stream: the next
//!   wait is lazy.
//! - **lazy** (1): it first lingers ([`Thread::linger`], a microsecond on the
//!   real platform) without looking, then goes on as an eager wait. It stays
//!   lazy while the linger alone was enough and more than one message had
//!   come meanwhile; otherwise it is eager again.
//!
//! So a dense stream is read in batches, a message waits at most one linger
//! longer, and a request/reply exchange (one message per wait, each a round
//! trip apart) stays eager. `pace` only decides when to look: any value is
//! safe, and the model platforms take a linger as one spin.
//!
//! # Reclaiming memory
//!
//! A ring can be far larger than what it holds: the real platform reserves
//! many GiB of address space over a sparse file, and only the chunks between
//! `head` and `tail` need memory. So a ring may *reclaim* ([`RingHeader::with_reclaim`]):
//! its chunks are grouped into units of `2^reclaim_shift` chunks, and the
//! consumer gives every unit that `head` has passed back (a [`Reclaim`]: the
//! real platform punches a hole in the file, after which the unit reads as
//! zeros and holds no memory until written again).
//!
//! A unit below `head` is consumed but, without more, already free: a
//! producer could be writing into it. So a third position, `reclaimed`
//! (a whole number of units, `reclaimed <= head`), marks what is given back,
//! and producers measure their room from it instead of from `head`
//! (`tail - reclaimed <= capacity`). The chunks in `[reclaimed, head)` are
//! then touched by nobody but the `cons` holder, which, after each `head`
//! store, gives back the whole units in `[reclaimed, floor_unit(head))` and
//! publishes that with one `Release` store of `reclaimed` (then notifies
//! `not_full`). A consumer that dies half-way leaves `reclaimed` behind:
//! the next `cons` holder redoes the step first thing (a unit given back
//! twice is still just zeros). The unit `head` is in is never given back: its
//! rest is still to be read (the seeded bug 612 does, and is caught).
//!
//! # Keeping a lap's start
//!
//! Positions only grow, so a reclaiming ring (many GiB of positions) would
//! write every message into memory that was just given back: the real
//! platform then takes a page fault, a fresh zeroed page and a hole punch per
//! 4 KiB moved, about 2.5 µs each on a VM — ten times the copy. So a
//! reclaiming ring *keeps* the first [`RingHeader::keep`] chunks of every
//! lap (a lap: `capacity` positions; up to [`KEEP_UNITS`] reclaim units, at
//! most a quarter of the ring): the reclaim step never gives them back, and a
//! producer about to put a message that would end past them goes on at the
//! next lap's start instead, where the same chunks are — still in memory — if the queue
//! is **empty** (`head` is at `tail`: every piece consumed) and the message
//! fits there (the ordinary room check, from `reclaimed`). It looks at the
//! consumer's side for that first at the message that would cross the kept
//! start's end, then about once per 4 KiB it passes (`WRAP_LOOK`
//! chunks, or a reclaim unit if smaller: a look that fails costs a page of
//! fresh memory), and when it finds a consumer reading close behind (holding
//! `cons` or moving `head`, at most `2 * keep` chunks back) it spins a moment
//! for it to catch up. All of this only chooses
//! *where* the message goes; the room check decides whether it may.
//!
//! It writes a **wrap marker** (a piece of flags [`WRAP`], `len` 0) at
//! `tail` (at the first look, inside the kept start: memory that stays, so
//! neither the marker nor the lap costs a fresh page), then the message's
//! piece at the lap's start, and publishes both
//! with its one `Release` store of `tail` (the count as for the message
//! alone): a producer that dies before it leaves nothing published. A
//! consumer that reads a wrap marker at `head` stores `head` at the next
//! lap's start (count unchanged) and runs the reclaim step, which gives back
//! the units up to the marker's own (past the kept start: they hold the
//! messages before it) and passes the stretch the marker skipped without a
//! call: it holds no memory, and giving it back would cost a call over the
//! rest of the lap, with the page-table walk and the other processes' TLB
//! flush that come with it, once per lap (the seeded bug 627 takes the
//! marker's unit for a hole too). Chunks written past `tail` and never
//! published — by a writer that failed ([`RingError::Unwritten`]) or a
//! producer that died before its `tail` store — would lie in that stretch,
//! and stay allocated: so every producer stores where the piece it is about
//! to write ends (`dirty`, in its own line) before writing it, and a
//! producer does not wrap early while `dirty` lies ahead of `tail`: it writes
//! over those chunks, which are then published, read and given back as any
//! (the seeded bug 629 wraps anyway). A consumer that dies in between leaves
//! the reclaim step to the next `cons` holder, as anywhere else, which gives
//! the whole stretch back (it does not know where the marker was; holes,
//! harmless). While the consumer keeps up, a stream of
//! messages thus cycles through the same `keep` chunks; when it falls
//! behind, the producers go on past them into the rest of the ring as
//! before. Only single-piece messages of at most `keep` chunks wrap early.
//!
//! Why only onto an empty queue, and who follows the marker: until the
//! marker is followed, the producer's room is measured from `reclaimed`,
//! still in the previous lap, so a producer that wrapped can write only up
//! to where the consumer had freed. A consumer that stops reading right
//! after the wrap would then bound the producer by a megabyte — the
//! unbounded queue's promise broken (session 8's design did this; seeded bug
//! 616). So a producer wraps only when nothing is unread (then the marker is
//! the next thing at `head`), and a producer that finds no room while nobody
//! holds `cons` follows a marker at `head` itself, as a consumer would, under
//! `cons` (taken with `try_lock`: producers never wait for consumers; lock
//! order `prod` then `cons`), and goes on with the whole ring as room
//! (seeded bug 617 does not). A consumer that holds `cons` has the marker to
//! read and follows it.
//! (The seeded bug 615 puts the message one chunk before the lap's start.)
//!
//! # Written messages and reads in place
//!
//! A message that a producer would encode into a buffer and then copy into
//! the ring can instead be *written* into it ([`Message::Written`]): the
//! producer announces its length (it sized it first), takes `prod`, waits
//! for room for that one piece as for any message, and hands its writer a
//! [`Sink`] over the piece's chunks, which lie in the free region that only
//! the `prod` holder touches. The piece is published, by the one `tail`
//! store, only if the writer wrote exactly the announced bytes and said it
//! succeeded; otherwise nothing is published ([`RingError::Unwritten`]) and
//! the chunks stay free, as when a producer dies before its store (the
//! seeded bug 625 publishes anyway, and the consumer's check finds the
//! half-written message). Only a message that fits one piece can be written
//! (a streamed message is bytes).
//!
//! Symmetrically, a consumer may *read a message in place*
//! ([`Ring::get_view`]): a message that is one piece (`FIRST|LAST`) lying in
//! one stretch of the array (not across its end) is handed to the caller's
//! function as a slice of the ring itself, while the consumer holds `cons`
//! and **before** its `head` store frees the chunks. Published chunks are
//! written by nobody until they are freed (producers write only in the free
//! region; other consumers wait for `cons`), so the bytes cannot change
//! under the reader: the double-fetch safety that a copy out of the ring
//! would give is given by the protocol (the seeded bug 626 reads after
//! freeing, and loom sees the producer's write race with the read). Any
//! other message is assembled into the caller's buffer as by
//! [`Ring::get_limited`] and the function runs on that. A consumer that dies
//! after reading in place and before its `head` store leaves the message to
//! the next one, as a consumer that dies after copying it out does.
//!
//! The model platforms' [`Platform::view_cells`] copies the cells out
//! (through their tracked reads) before calling the function, so the
//! checkers see every read at the point where the real platform's loan
//! begins, and the loan ends before the `head` store.
//!
//! # Prefetching the next room
//!
//! A producer that published a large message (at least 1 KiB, or half the
//! ring) asks the platform ([`Platform::prefetch_write`]) for the room the
//! next message of that size would take — up to 4 KiB after `tail`, within
//! the free room by its hint of `head` (which is never ahead of `head`), up
//! to the array end — before it releases `prod`. On the real platform that
//! is a `prefetchw` per cache line: the lines, which the consumer read a lap
//! ago, are taken into the producer's cache while it releases the lock and
//! encodes the next value, instead of one by one under the next copy, and
//! the full barrier of the release (the unlock's swap, which waits for every
//! store before it) waits less. Nothing any thread can see changes; the
//! model platforms check a prefetch, more strictly, as a *write of garbage*
//! to those chunks, so loom proves that they are the producer's alone, as
//! the chunks it writes are, and both checkers that nobody reads them before
//! they are written again (the seeded bug 628 does not bound the prefetch by
//! the free room: loom sees it race with the consumer's read of a message
//! still there, shuttle the consumer find the garbage).
//!
//! # Deadlines
//!
//! A producer's deadline applies to every wait: a streamed message that times
//! out half-way is abandoned (and discarded by the consumer). A consumer's
//! deadline applies until it reads a message's `FIRST` piece; after that it
//! waits for the rest (or for the producer's abandonment), so that a timed
//! `get` never throws away a message that is still arriving.

use core::mem::offset_of;
use core::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
use core::time::Duration;

use crate::mutex::{Acquired, RawMutex};
use crate::park::{self, Waiters};
use crate::platform::{
    mutant, CellLike, Mutant, Platform, Thread, Woke, Word32, Word64, OWNER_MASK,
};

/// Bytes per chunk (the unit of ring space and of loom's access tracking).
pub const CHUNK: usize = 16;
/// One chunk of the ring.
pub type Chunk = [u8; CHUNK];

/// Up to 8 bytes as a little-endian word (zero above them), without a copy
/// through memory: two overlapping 4-byte loads, or three single bytes.
#[inline]
fn small_le(b: &[u8]) -> u64 {
    let n = b.len();
    debug_assert!(n <= 8);
    if n >= 4 {
        let lo = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64;
        let hi = u32::from_le_bytes([b[n - 4], b[n - 3], b[n - 2], b[n - 1]]) as u64;
        // The two halves overlap when n < 8: the same bytes at the same places.
        lo | hi << ((n - 4) * 8)
    } else if n > 0 {
        b[0] as u64 | (b[n / 2] as u64) << (n / 2 * 8) | (b[n - 1] as u64) << ((n - 1) * 8)
    } else {
        0
    }
}
/// Bytes of a piece header (`len: u32`, `flags: u32`).
pub const PIECE_HEADER: usize = 8;
/// Piece flag: first piece of a message.
pub const FIRST: u32 = 1;
/// Piece flag: last piece of a message.
pub const LAST: u32 = 2;
/// Piece flag: a *wrap marker* (alone, `len` 0): the stream goes on at the
/// start of the next lap (the next position that is a multiple of the
/// capacity). See [Keeping a lap's start](self#keeping-a-laps-start).
pub const WRAP: u32 = 4;
/// How many times a producer about to wrap early spins for a consumer that
/// reads close behind to catch up (the real platform's first 8 spins are
/// 255 `pause`s in all, a few microseconds: a consumer that is running
/// catches up by then; one that is not would cost the producer far more).
const WRAP_SPINS: u32 = 8;
/// The same at the first look of a lap (the message that would end past the
/// kept start): 24 spins, 4,351 `pause`s on the real platform, about 95 µs
/// on a VM (some 190 4 KiB messages read, three quarters of a lap of them):
/// a consumer that reads close behind a producer faster than it has the
/// producer's lead of the whole lap to catch up, and a lap that does not
/// wrap there costs its pages fresh, a fault each and their give back, on
/// the consumer's side. (With 12 spins, about 25 µs, the 4 KiB row's runs
/// made 10 to 263 hole punches, four runs; 7 and 12 with 30 and 24.) Below
/// the real platform's spin limit (31).
const WRAP_FIRST_SPINS: u32 = 24;
/// Of those, how many a producer spins for a consumer that is not reading
/// (neither holds `cons` nor has moved `head` since its first look) before it
/// gives up (7 `pause`s on the real platform).
const WRAP_IDLE_SPINS: u32 = 3;
/// How often (in chunks passed: 4 KiB, a page of the real platform) a
/// producer past a lap's kept start looks whether it can wrap early.
const WRAP_LOOK: u64 = 256;
/// A producer that published a message of at least this many chunks (1 KiB),
/// or of half the ring, asks for the room of the next one
/// ([`Ring::prefetch_next`]).
const PREFETCH_MIN_CHUNKS: u64 = 64;
/// At most this many chunks of it (4 KiB).
const PREFETCH_CHUNKS: u64 = 256;
/// Reclaim units at the start of every lap that a reclaiming ring keeps
/// (never gives back), at most a quarter of the ring.
pub const KEEP_UNITS: u64 = 16;
/// Largest ring, in chunks (positions are 40 bits and must not alias).
pub const MAX_CAPACITY: u64 = 1 << 36;
/// Largest `max_items` (message counts are 24 bits).
pub const MAX_ITEMS: u32 = 1 << 22;
/// Most unfinished tasks of a joinable queue (committed messages not yet
/// marked done; the counts are 24 bits and their difference must not wrap).
pub const MAX_UNFINISHED: u32 = (1 << 24) - 1;
/// Largest payload of one piece (longer messages are streamed in pieces).
pub const MAX_PIECE: usize = (u32::MAX as usize) & !(CHUNK - 1);

const POS_BITS: u32 = 40;
const POS_MASK: u64 = (1 << POS_BITS) - 1;
const CNT_MASK: u64 = (1 << (64 - POS_BITS)) - 1;
const EV_WAITERS: u32 = 1;
/// Spins before sleeping (each [`Thread::spin`] iteration backs off).
const SPINS: u32 = 64;

/// Seeded bug: the consumer frees chunks (`head`) with `Relaxed` instead of `Release`.
#[doc(hidden)]
pub const MUTANT_RELAXED_HEAD: Mutant = Mutant(601);
/// Seeded bug: the producer publishes (`tail`) with `Relaxed` instead of `Release`.
#[doc(hidden)]
pub const MUTANT_RELAXED_TAIL: Mutant = Mutant(602);
/// Seeded bug: the producer never notifies `not_empty`.
#[doc(hidden)]
pub const MUTANT_NO_NOTIFY_NOT_EMPTY: Mutant = Mutant(603);
/// Seeded bug: a consumer assembling a message appends a new `FIRST` piece to
/// it instead of discarding the abandoned part.
#[doc(hidden)]
pub const MUTANT_KEEP_ABANDONED: Mutant = Mutant(604);
/// Seeded bug: a consumer that is not assembling treats a piece without
/// `FIRST` as the start of a message (delivers the tail of a message).
#[doc(hidden)]
pub const MUTANT_NO_SKIP: Mutant = Mutant(605);
/// Seeded bug: `close` does not wake anybody.
#[doc(hidden)]
pub const MUTANT_CLOSE_NO_WAKE: Mutant = Mutant(606);
/// Seeded bug: a consumer that finds the producer gone delivers the part it assembled.
#[doc(hidden)]
pub const MUTANT_DELIVER_PARTIAL: Mutant = Mutant(608);
/// Seeded bug: a producer whose `head_seen` hint shows no room waits without
/// reading `head` itself (trusts a stale hint).
#[doc(hidden)]
pub const MUTANT_HINT_NOT_RELOADED: Mutant = Mutant(609);
/// Seeded bug: a consumer whose `tail_seen` hint shows nothing to read waits
/// without reading `tail` itself.
#[doc(hidden)]
pub const MUTANT_TAIL_HINT_NOT_RELOADED: Mutant = Mutant(610);
/// Seeded bug: a `get` that meets a message over its size limit reports it
/// without freeing the piece (the next `get` meets it again).
#[doc(hidden)]
pub const MUTANT_LIMIT_KEEPS_PIECE: Mutant = Mutant(611);

/// Seeded bug: the reclaim step counts the unit that `head` is in as
/// consumed (gives back a unit whose rest is still to be read).
#[doc(hidden)]
pub const MUTANT_RECLAIM_READING: Mutant = Mutant(612);
/// Seeded bug: the reclaim step publishes `reclaimed` before giving the
/// units back (a producer may write into a unit that is then zeroed).
#[doc(hidden)]
pub const MUTANT_RECLAIMED_FIRST: Mutant = Mutant(613);
/// Seeded bug: a consumer that takes `cons` over does not finish the reclaim
/// step its dead predecessor left half-done.
#[doc(hidden)]
pub const MUTANT_NO_RECLAIM_RECOVERY: Mutant = Mutant(614);
/// Seeded bug: a producer that wraps early puts the message one chunk
/// before the next lap's start, where the consumer does not look after the
/// wrap marker.
#[doc(hidden)]
pub const MUTANT_WRAP_OFF_BY_ONE: Mutant = Mutant(615);
/// Seeded bug: a producer wraps early while the queue still holds messages
/// (the condition of the design taken out in session 8: a consumer that then
/// stops reading bounds the producer by what it freed in the previous lap).
#[doc(hidden)]
pub const MUTANT_WRAP_NOT_EMPTY: Mutant = Mutant(616);
/// Seeded bug: a producer with no room never follows a wrap marker itself,
/// so a consumer that stopped right before one bounds it.
#[doc(hidden)]
pub const MUTANT_NO_FINISH_WRAP: Mutant = Mutant(617);
/// Seeded bug: a notifier reads the event word for announced waiters
/// without the `SeqCst` fence after its change (its read can come before
/// the change is visible, and a waiter's check before it: the waiter sleeps
/// through the change).
#[doc(hidden)]
pub const MUTANT_NO_NOTIFY_FENCE: Mutant = Mutant(618);
/// Seeded bug: a waiter checks its condition again after announcing itself
/// without the `SeqCst` fence (the mirror image of 618).
#[doc(hidden)]
pub const MUTANT_NO_WAIT_FENCE: Mutant = Mutant(619);
/// Seeded bug: the taker of a dead producer's lock goes on from the
/// producers' copy of `tail`, which is behind `tail` if the holder died
/// between the two stores (it writes over a published piece).
#[doc(hidden)]
pub const MUTANT_DEAD_COPY_KEPT: Mutant = Mutant(620);
/// Seeded bug: the reclaim step after a wrap marker skips the marker's own
/// unit as if the wrap had skipped it, though messages before the marker
/// were written there: that unit is never given back.
#[doc(hidden)]
pub const MUTANT_MARKER_UNIT_KEPT: Mutant = Mutant(627);
/// Seeded bug: a waiter that announced itself sleeps at once, without
/// looking at its condition again (a change whose notifier saw no
/// announcement is slept through).
#[doc(hidden)]
pub const MUTANT_SLEEP_WITHOUT_RECHECK: Mutant = Mutant(621);
/// Seeded bug: a lazy consumer looks at once, as an eager one (the linger
/// is never taken: see [Pacing](self#pacing)).
#[doc(hidden)]
pub const MUTANT_NEVER_LINGER: Mutant = Mutant(622);
/// Seeded bug: a lazy consumer stays lazy after a linger that found a single
/// message (no batch: a request/reply exchange would linger on every wait).
#[doc(hidden)]
pub const MUTANT_LAZY_WITHOUT_BATCH: Mutant = Mutant(623);
/// Seeded bug: a consumer that took a message's last piece does not notify
/// `not_full` after releasing `cons` (a producer waiting for room sleeps on).
#[doc(hidden)]
pub const MUTANT_NO_NOTIFY_NOT_FULL: Mutant = Mutant(624);
/// Seeded bug: a producer publishes a written message whose writer failed
/// or wrote fewer bytes than it announced (the consumer reads what the
/// chunks held before).
#[doc(hidden)]
pub const MUTANT_UNWRITTEN_PUBLISHED: Mutant = Mutant(625);
/// Seeded bug: a consumer that reads a message in place frees its chunks
/// (stores `head`) before it has read them (a producer may write into them
/// while it reads).
#[doc(hidden)]
pub const MUTANT_VIEW_AFTER_FREE: Mutant = Mutant(626);
/// Seeded bug: a producer asks for the next message's room without
/// bounding it by the free room (past the array's end of the free region:
/// chunks a consumer is still reading).
#[doc(hidden)]
pub const MUTANT_PREFETCH_UNREAD: Mutant = Mutant(628);
/// Seeded bug: a producer wraps early while a failed writer's unpublished
/// chunks lie past `tail` (they stay allocated: following the marker does
/// not give them back).
#[doc(hidden)]
pub const MUTANT_DIRTY_SKIPPED: Mutant = Mutant(629);

/// Why a ring operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingError {
    /// `put`: no room before the deadline (or at once, for `try`); a streamed
    /// message that timed out half-way was abandoned.
    Full,
    /// `get`: no message before the deadline (or at once, for `try`).
    Empty,
    /// The ring was closed (`put`: always; `get`: once it is empty).
    Closed,
    /// The shared state is inconsistent (something other than this protocol
    /// wrote to the ring): the ring skipped to the end of what was published.
    Corrupt(&'static str),
    /// `get_limited`: the message passed the size limit (at least this many
    /// bytes); it was consumed, the ring goes on. `put_message`: a
    /// [`Message::Written`] of this many bytes is larger than one piece.
    TooLarge(usize),
    /// `put_message`: the writer of a [`Message::Written`] failed, or wrote
    /// other than the bytes it announced; nothing was published.
    Unwritten,
}

/// Where the writer of a [`Message::Written`] puts its bytes: straight into
/// the ring's chunks, in order.
pub trait Sink {
    /// Append `bytes` to the message. `false` (and nothing written) if they
    /// would take it past its announced length.
    fn write(&mut self, bytes: &[u8]) -> bool;
}

/// A message to put ([`Ring::put_message`]).
pub enum Message<'m> {
    /// These bytes, copied into the ring (streamed in pieces if larger than
    /// the ring).
    Bytes(&'m [u8]),
    /// `len` bytes that `write` produces straight into the ring's chunks (an
    /// encoder that would otherwise encode into a buffer first, then be
    /// copied): one piece, so at most [`Ring::max_single_piece`] bytes.
    /// `write` runs while the producer holds `prod`, after the room check,
    /// and must write exactly `len` bytes into the [`Sink`] and return
    /// `true`; otherwise nothing is published ([`RingError::Unwritten`]).
    Written {
        /// The bytes `write` announces.
        len: usize,
        /// Writes them.
        write: &'m mut dyn FnMut(&mut dyn Sink) -> bool,
    },
}

impl Message<'_> {
    /// The message's length in bytes.
    pub fn len(&self) -> usize {
        match self {
            Message::Bytes(b) => b.len(),
            Message::Written { len, .. } => *len,
        }
    }

    /// Is it empty?
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl core::fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Message::Bytes(b) => f.debug_tuple("Bytes").field(&b.len()).finish(),
            Message::Written { len, .. } => f.debug_struct("Written").field("len", len).finish(),
        }
    }
}

/// What a `get` may run on a message where it lies ([`Ring::get_view`]).
type View<'v> = Option<&'v mut dyn FnMut(&[u8])>;

/// The [`Sink`] of a written piece: the payload's bytes from byte position
/// `at`, `left` of them still to come.
struct PieceSink<'r, 'a, P: Platform> {
    ring: &'r Ring<'a, P>,
    at: usize,
    left: usize,
    /// A write was refused (past the announced length).
    over: bool,
}

impl<P: Platform> Sink for PieceSink<'_, '_, P> {
    fn write(&mut self, bytes: &[u8]) -> bool {
        if bytes.len() > self.left {
            self.over = true;
            return false;
        }
        // SAFETY: the bytes land in the piece's payload (`left` bounds them
        // by its announced length), whose chunks lie in the free region,
        // which only the `prod` holder accesses: the sink exists only inside
        // `write_written`, called by the holder after its room check.
        unsafe { self.ring.write_bytes(self.at, bytes) };
        self.at += bytes.len();
        self.left -= bytes.len();
        true
    }
}

/// How long an operation may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Not at all (`try_put` / `try_get`): a message larger than the free
    /// space (`put`), or not complete in the ring (`get`), is `Full`/`Empty`.
    No,
    /// Up to this long (`None`: forever).
    For(Option<Duration>),
}

/// A cache-line aligned wrapper (keeps producers' and consumers' hot words apart).
#[repr(C, align(64))]
#[derive(Debug)]
pub struct Padded<T>(pub T);

/// The fixed part of a ring. See the [module docs](self).
///
/// Layout (`#[repr(C)]`, 384 bytes, aligned to 64; every field but the three
/// constants is an atomic or a lock, so the struct is valid for any bit
/// pattern in the sense that no value can cause undefined behaviour;
/// inconsistent values are reported as [`RingError::Corrupt`]). Fields are
/// grouped into cache lines by who writes them, so that in the steady state a
/// message moves without a line bouncing between the producer's and the
/// consumer's cores:
///
/// | line | offset | field | written by | meaning / invariant |
/// |---|---|---|---|---|
/// | 0 | 0 | `prod: RawMutex` (16 bytes: word and holder identity) | producers | held from a message's first piece to its last (or its abandonment) |
/// | 0 | 16 | `head_seen: W64` | `prod` holder only | a `head` value some producer loaded (with reclaiming: `head`'s count and `reclaimed`'s position): a *hint*, never ahead of either; read again whenever it shows no room or an impossible distance |
/// | 0 | 24 | `tail_own: W64` | `prod` holder only | the producers' own copy of `tail`, stored after it: where the next piece goes. Equal to `tail` whenever `prod` was released by a live holder; a taker of a dead holder's lock, a holder that finds it out of range, and one told `resynced` read `tail` instead. So the producers never read line 1, which the consumers poll |
/// | 0 | 32 | `resynced: W32` | a consumer that resynchronised (sets 1), the `prod` holder (swaps 0) | the consumers moved `head` to `tail` after foreign writes: the producers' copy may be what was written over |
/// | 0 | 40 | `dirty: W64` | `prod` holder only (a reclaiming ring) | the end of the last piece a producer started writing, stored before its chunks: past `tail` only if that piece was not published (a failed writer, a dead producer). A hint: a producer does not wrap early while it lies ahead (see [Keeping a lap's start](self#keeping-a-laps-start)) |
/// | 1 | 64 | `tail: W64` | `prod` holder only | `published_msgs << 40 \| published_pos`; `Release`-stored after a piece's chunks are written |
/// | 1 | 72 | `not_empty: W32` | producers, `close`; consumers announce | event counter `n << 1 \| WAITERS`; notified after every `tail` store and after every release of `prod` (bumped only if `WAITERS`: see [Waiting](self#waiting)) |
/// | 2 | 128 | `cons: RawMutex` (16 bytes) | consumers | held from a message's first piece read to its last (or its discard) |
/// | 2 | 144 | `tail_seen: W64` | `cons` holder only | a `tail` value some consumer loaded: a hint, never ahead of `tail`; read again from `tail` when it shows nothing to read or an impossible distance |
/// | 2 | 152 | `pace: W32` | `cons` holder only | 1: the consumers are keeping up with a dense stream and linger before looking at `tail` (see [Pacing](self#pacing)); 0: they look at once. A hint: any value is safe |
/// | 3 | 192 | `head: W64` | `cons` holder only | `freed_msgs << 40 \| freed_pos`; `Release`-stored after a piece's chunks are read |
/// | 3 | 200 | `not_full: W32` | consumers, `close`; producers announce | event counter; notified after every `head` store |
/// | 4 | 256 | `closed: W32` | `close` | 0 open, 1 closed (never reopens) |
/// | 5 | 320 | `capacity: u64` | creator | number of chunks, `1..=MAX_CAPACITY`; constant |
/// | 5 | 328 | `max_items: u32` | creator | 0 unbounded, else `1..=MAX_ITEMS`; constant |
/// | 5 | 332 | `reclaim_shift: u32` | creator | 0: no reclaiming, else log2 of the chunks per reclaim unit (`2^shift <= capacity / 2`); constant |
/// | 5 | 336 | `reclaimed: W64` | `cons` holder only | chunk position (a multiple of the unit, `<= head`'s) below which consumed units were given back; `Release`-stored after they were; unused without reclaiming |
///
/// Invariants: `0 <= published_pos - freed_pos <= capacity` (mod 2^40),
/// and with reclaiming `0 <= published_pos - reclaimed <= capacity`;
/// `freed_msgs <= published_msgs` (mod 2^24); the chunks in
/// `[freed_pos, published_pos)` hold whole published pieces and are only read
/// (by the `cons` holder); the chunks outside are only written (by the `prod`
/// holder).
///
/// The two hints are passed from one lock holder to the next through the
/// lock (or, after a holder's death, through the takeover), so data that a
/// hint vouches for is visible to whoever uses it. A stale hint is merely
/// conservative (less room or fewer messages than there are); one left by a
/// holder that died half-way, or overwritten, can be ahead of or far behind
/// the real value, which shows as a distance larger than the ring: then the
/// real word is read.
#[repr(C)]
pub struct RingHeader<P: Platform> {
    prod: Padded<Producers<P>>,
    tail: Padded<Counted<P>>,
    cons: Padded<Side<P>>,
    head: Padded<Counted<P>>,
    closed: Padded<P::W32>,
    capacity: u64,
    max_items: u32,
    reclaim_shift: u32,
    reclaimed: P::W64,
}

/// The consumers' line: their lock, their hint of `tail` and their
/// [pace](self#pacing) (see [`RingHeader`]).
#[repr(C)]
struct Side<P: Platform> {
    lock: RawMutex<P>,
    seen: P::W64,
    pace: P::W32,
}

/// The producers' line: their lock, their hint of `head`, their own copy of
/// `tail` and the consumers' request to read `tail` again (see
/// [`RingHeader`]).
#[repr(C)]
struct Producers<P: Platform> {
    lock: RawMutex<P>,
    seen: P::W64,
    tail: P::W64,
    resynced: P::W32,
    dirty: P::W64,
}

/// A position word and the event counter bumped after it changes.
#[repr(C)]
struct Counted<P: Platform> {
    pos: P::W64,
    event: P::W32,
}

impl<P: Platform> core::fmt::Debug for RingHeader<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RingHeader")
            .field("capacity", &self.capacity)
            .field("max_items", &self.max_items)
            .field(
                "tail",
                &format_args!("{:#x}", self.tail.0.pos.load(Relaxed)),
            )
            .field(
                "head",
                &format_args!("{:#x}", self.head.0.pos.load(Relaxed)),
            )
            .field("closed", &self.closed.0.load(Relaxed))
            .field(
                "reclaimed",
                &format_args!("{:#x}", self.reclaimed.load(Relaxed)),
            )
            .field(
                "prod",
                &format_args!("{:#x}", self.prod.0.lock.word().load(Relaxed)),
            )
            .field(
                "cons",
                &format_args!("{:#x}", self.cons.0.lock.word().load(Relaxed)),
            )
            .finish()
    }
}

/// Chunks a piece carrying `len` payload bytes occupies.
#[inline]
pub const fn chunks_for(len: usize) -> u64 {
    (len + PIECE_HEADER).div_ceil(CHUNK) as u64
}

/// A wait that found a piece within this many looks (the first one and its
/// next spin: about 3 `pause`s) was for a dense stream (see
/// [Pacing](self#pacing)).
pub const FAST_LOOKS: u32 = 2;

/// The consumers' pace after a wait of `looks` looks (spins, a linger
/// counted as one) that ended with `ready` complete messages in the ring:
/// lazy (`true`) after a fast wait, and then for as long as the linger alone
/// was enough and a batch had formed (see [Pacing](self#pacing)).
///
/// ```
/// use procshare_model::ring::pace_after_wait;
/// assert!(pace_after_wait(false, 1, 1)); // caught up with a dense stream
/// assert!(pace_after_wait(true, 1, 5)); // a batch formed while lingering
/// assert!(!pace_after_wait(true, 1, 1)); // one message: no batch
/// assert!(!pace_after_wait(false, 9, 1)); // a reply a round trip away
/// ```
#[inline]
pub fn pace_after_wait(lazy: bool, looks: u32, ready: u64) -> bool {
    if lazy {
        looks == 1 && ready >= 2
    } else {
        looks <= FAST_LOOKS
    }
}

#[inline]
fn pos(w: u64) -> u64 {
    w & POS_MASK
}
#[inline]
fn cnt(w: u64) -> u64 {
    w >> POS_BITS
}
#[inline]
fn pack(cnt: u64, pos: u64) -> u64 {
    ((cnt & CNT_MASK) << POS_BITS) | (pos & POS_MASK)
}
/// Chunk position `p` rounded down to a reclaim unit of `2^shift` chunks.
#[inline]
fn floor_unit(p: u64, shift: u32) -> u64 {
    p & !((1u64 << shift) - 1) & POS_MASK
}

impl<P: Platform> RingHeader<P> {
    /// The byte offset of each field of the layout table (its names, its
    /// order; a field inside a line's wrapper at the wrapper's offset plus
    /// its own), as compiled: impl's `layout.rs` checks them against the
    /// table and hashes them into its layout fingerprint.
    #[doc(hidden)]
    pub const OFFSETS: &'static [(&'static str, usize)] = &[
        ("prod", offset_of!(Self, prod) + Self::PROD_LOCK),
        ("head_seen", offset_of!(Self, prod) + Self::PROD_SEEN),
        ("tail_own", offset_of!(Self, prod) + Self::PROD_TAIL),
        ("resynced", offset_of!(Self, prod) + Self::PROD_RESYNCED),
        ("dirty", offset_of!(Self, prod) + Self::PROD_DIRTY),
        ("tail", offset_of!(Self, tail) + Self::COUNTED_POS),
        ("not_empty", offset_of!(Self, tail) + Self::COUNTED_EVENT),
        ("cons", offset_of!(Self, cons) + Self::SIDE_LOCK),
        ("tail_seen", offset_of!(Self, cons) + Self::SIDE_SEEN),
        ("pace", offset_of!(Self, cons) + Self::SIDE_PACE),
        ("head", offset_of!(Self, head) + Self::COUNTED_POS),
        ("not_full", offset_of!(Self, head) + Self::COUNTED_EVENT),
        (
            "closed",
            offset_of!(Self, closed) + offset_of!(Padded<P::W32>, 0),
        ),
        ("capacity", offset_of!(Self, capacity)),
        ("max_items", offset_of!(Self, max_items)),
        ("reclaim_shift", offset_of!(Self, reclaim_shift)),
        ("reclaimed", offset_of!(Self, reclaimed)),
    ];
    // Nested `offset_of!` (`prod.0.seen`) needs Rust 1.82; the MSRV is 1.80.
    const PROD_LOCK: usize = offset_of!(Padded<Producers<P>>, 0) + offset_of!(Producers<P>, lock);
    const PROD_SEEN: usize = offset_of!(Padded<Producers<P>>, 0) + offset_of!(Producers<P>, seen);
    const PROD_TAIL: usize = offset_of!(Padded<Producers<P>>, 0) + offset_of!(Producers<P>, tail);
    const PROD_RESYNCED: usize =
        offset_of!(Padded<Producers<P>>, 0) + offset_of!(Producers<P>, resynced);
    const PROD_DIRTY: usize = offset_of!(Padded<Producers<P>>, 0) + offset_of!(Producers<P>, dirty);
    const SIDE_LOCK: usize = offset_of!(Padded<Side<P>>, 0) + offset_of!(Side<P>, lock);
    const SIDE_SEEN: usize = offset_of!(Padded<Side<P>>, 0) + offset_of!(Side<P>, seen);
    const SIDE_PACE: usize = offset_of!(Padded<Side<P>>, 0) + offset_of!(Side<P>, pace);
    const COUNTED_POS: usize = offset_of!(Padded<Counted<P>>, 0) + offset_of!(Counted<P>, pos);
    const COUNTED_EVENT: usize = offset_of!(Padded<Counted<P>>, 0) + offset_of!(Counted<P>, event);

    /// A ring header for `capacity` chunks (clamped to `1..=MAX_CAPACITY`,
    /// then rounded up to a power of two: see [`RingHeader::capacity`]) and at
    /// most `max_items` messages (0: unbounded; clamped to `MAX_ITEMS`).
    pub fn new(capacity: u64, max_items: u32) -> Self {
        RingHeader {
            prod: Padded(Producers {
                lock: RawMutex::new(),
                seen: P::W64::new(0),
                tail: P::W64::new(0),
                resynced: P::W32::new(0),
                dirty: P::W64::new(0),
            }),
            tail: Padded(Counted {
                pos: P::W64::new(0),
                event: P::W32::new(0),
            }),
            cons: Padded(Side {
                lock: RawMutex::new(),
                seen: P::W64::new(0),
                pace: P::W32::new(0),
            }),
            head: Padded(Counted {
                pos: P::W64::new(0),
                event: P::W32::new(0),
            }),
            closed: Padded(P::W32::new(0)),
            capacity: capacity.clamp(1, MAX_CAPACITY).next_power_of_two(),
            max_items: max_items.min(MAX_ITEMS),
            reclaim_shift: 0,
            reclaimed: P::W64::new(0),
        }
    }

    /// Reclaim the ring's memory in units of `2^shift` chunks as it is
    /// consumed (see [Reclaiming memory](self#reclaiming-memory)); 0: never.
    /// A unit larger than half the ring is no unit: reclaiming stays off.
    pub fn with_reclaim(mut self, shift: u32) -> Self {
        self.reclaim_shift = if shift != 0 && shift < 40 && (1u64 << shift) <= self.capacity / 2 {
            shift
        } else {
            0
        };
        self.sync_reclaimed();
        self
    }

    /// `reclaimed` (and the producers' hint, which must not be ahead of it)
    /// at the unit of `head`, for a ring that nobody uses yet.
    fn sync_reclaimed(&self) {
        let h = self.head.0.pos.load(Relaxed);
        let r = floor_unit(pos(h), self.reclaim_shift);
        self.reclaimed.store(r, Relaxed);
        self.prod.0.seen.store(pack(cnt(h), r), Relaxed);
    }

    /// Chunks kept at the start of every lap (whole reclaim units, never
    /// given back; 0: none, and the producers never wrap early): up to
    /// [`KEEP_UNITS`] units, at most a quarter of the ring. See [Keeping a
    /// lap's start](self#keeping-a-laps-start).
    pub fn keep(&self) -> u64 {
        match self.reclaim_shift {
            0 => 0,
            s => (KEEP_UNITS << s).min(floor_unit(self.capacity / 4, s)),
        }
    }

    /// Chunks per reclaim unit (0: the ring never reclaims memory).
    pub fn reclaim_unit(&self) -> u64 {
        if self.reclaim_shift == 0 {
            0
        } else {
            1 << self.reclaim_shift
        }
    }

    /// Number of chunks: a power of two, so that it divides the 2^40 range of
    /// positions and a position's chunk (`pos mod capacity`) stays consecutive
    /// when positions wrap around (after 16 TiB of traffic).
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// The item bound (0: none).
    pub fn max_items(&self) -> u32 {
        self.max_items
    }

    /// Start an empty ring at chunk position `pos` instead of 0 (tests: run
    /// the ring across the wrap-around of positions without 16 TiB of traffic).
    #[doc(hidden)]
    pub fn starting_at(self, pos: u64) -> Self {
        let p = pos & POS_MASK;
        for w in [
            &self.tail.0.pos,
            &self.prod.0.tail,
            &self.head.0.pos,
            &self.prod.0.seen,
            &self.cons.0.seen,
        ] {
            w.store(p, Relaxed);
        }
        self.sync_reclaimed();
        self
    }
}

/// What gives a reclaim unit's memory back (see [Reclaiming
/// memory](self#reclaiming-memory)): the real platform punches a hole in the
/// file behind the ring. Afterwards the chunks read as zeros.
pub trait Reclaim: Sync {
    /// Release `chunks` chunks from chunk index `first` (`first + chunks` is
    /// at most the capacity; both are multiples of the reclaim unit). Only
    /// the `cons` holder calls it, on chunks that nobody else accesses.
    fn reclaim(&self, first: usize, chunks: usize);
}

/// A ring: its header and its chunks. See the [module docs](self).
pub struct Ring<'a, P: Platform> {
    h: &'a RingHeader<P>,
    slots: &'a [P::Cell<Chunk>],
    cap: u64,
    /// Chunks kept at the start of every lap (0: the ring never wraps early).
    keep: u64,
    reclaimer: Option<&'a dyn Reclaim>,
}

impl<P: Platform> core::fmt::Debug for Ring<'_, P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.h.fmt(f)
    }
}

impl<'a, P: Platform> Ring<'a, P> {
    /// Combine a header and its chunks. `None` if the header's capacity is not
    /// `slots.len()`, not a power of two, or out of range (a header from
    /// elsewhere is not trusted).
    pub fn new(h: &'a RingHeader<P>, slots: &'a [P::Cell<Chunk>]) -> Option<Self> {
        let cap = h.capacity;
        let shift = h.reclaim_shift;
        if !cap.is_power_of_two()
            || cap > MAX_CAPACITY
            || cap != slots.len() as u64
            || h.max_items > MAX_ITEMS
            || (shift != 0 && (shift >= 40 || (1u64 << shift) > cap / 2))
        {
            return None;
        }
        Some(Ring {
            h,
            slots,
            cap,
            keep: h.keep(),
            reclaimer: None,
        })
    }

    /// Give consumed reclaim units back with `r` (without one, a unit's
    /// chunks are zeroed in place: what the model checks).
    pub fn with_reclaimer(mut self, r: &'a dyn Reclaim) -> Self {
        self.reclaimer = Some(r);
        self
    }

    /// Capacity in chunks.
    pub fn capacity(&self) -> u64 {
        self.cap
    }

    /// The largest payload that goes through as a single piece (without streaming).
    pub fn max_single_piece(&self) -> usize {
        self.single_cap() as usize * CHUNK - PIECE_HEADER
    }

    /// The chunks an empty ring is sure to have free for one piece: all of
    /// them, less (when it reclaims) the consumed part of the unit `head`
    /// is in, which is not given back until `head` leaves it.
    fn single_cap(&self) -> u64 {
        match self.h.reclaim_shift {
            0 => self.cap,
            s => self.cap - (1u64 << s) + 1,
        }
    }

    /// Messages in the ring (complete ones: approximate while others work, as
    /// Python's `qsize`).
    pub fn len(&self) -> usize {
        let h = self.h.head.0.pos.load(Acquire);
        let t = self.h.tail.0.pos.load(Acquire);
        (cnt(t).wrapping_sub(cnt(h)) & CNT_MASK) as usize
    }

    /// No complete message and no bytes in the ring (approximate).
    pub fn is_empty(&self) -> bool {
        let h = self.h.head.0.pos.load(Acquire);
        let t = self.h.tail.0.pos.load(Acquire);
        h == t
    }

    /// Chunks in use (approximate).
    pub fn used_chunks(&self) -> u64 {
        let h = self.h.head.0.pos.load(Acquire);
        let t = self.h.tail.0.pos.load(Acquire);
        pos(t).wrapping_sub(pos(h)) & POS_MASK
    }

    /// At the item bound, or without a free chunk (approximate).
    pub fn is_full(&self) -> bool {
        let m = self.h.max_items;
        (m != 0 && self.len() >= m as usize) || self.used_chunks() >= self.cap
    }

    /// Has [`Ring::close`] been called?
    pub fn is_closed(&self) -> bool {
        self.h.closed.0.load(Acquire) != 0
    }

    /// Close the ring: later and waiting `put`s fail with [`RingError::Closed`];
    /// `get`s drain what is in the ring, then fail with `Closed`. Wakes every waiter.
    pub fn close(&self, t: &P::Thread) {
        self.h.closed.0.store(1, Release);
        t.crash_point();
        if !mutant::<P>(MUTANT_CLOSE_NO_WAKE) {
            self.notify(t, &self.h.tail.0.event);
            self.notify(t, &self.h.head.0.event);
        }
    }

    // ---- event counters -------------------------------------------------

    /// After changing a condition: wake the sleepers of `w` if any announced
    /// themselves (see [Waiting](self#waiting)).
    #[inline]
    fn notify(&self, t: &P::Thread, w: &P::W32) {
        if !mutant::<P>(MUTANT_NO_NOTIFY_FENCE) {
            P::fence(SeqCst);
        }
        self.notify_fenced(t, w);
    }

    /// [`notify`](Self::notify) after the barrier ([`park::wake_announced`]).
    #[inline]
    fn notify_fenced(&self, t: &P::Thread, w: &P::W32) {
        park::wake_announced::<P>(t, w, EV_WAITERS);
    }

    /// Load `w` before checking the condition it announces. If a waiter
    /// announced itself on it, a `SeqCst` fence follows, so that the check
    /// sees every change whose notifier saw no announcement (see
    /// [Waiting](self#waiting)).
    #[inline]
    fn watch(&self, w: &P::W32) -> u32 {
        let v = w.load(Acquire);
        if v & EV_WAITERS != 0 && !mutant::<P>(MUTANT_NO_WAIT_FENCE) {
            P::fence(SeqCst);
        }
        v
    }

    /// Sleep on `w` if it still holds `seen` (loaded by
    /// [`watch`](Self::watch) before the condition was checked), watching
    /// `owner` (0: nobody; see [`park::sleep_owned`]). If `seen` has no
    /// `WAITERS`: announce (set it by CAS from `seen`), fence, and return
    /// [`Woke::Mismatch`] without sleeping, so that the caller checks its
    /// condition again, then sleeps on the announced word.
    fn sleep(
        &self,
        t: &P::Thread,
        w: &P::W32,
        seen: u32,
        owner: (u32, u64),
        dl: &<P::Thread as Thread>::Deadline,
    ) -> Woke {
        if seen & EV_WAITERS == 0 {
            let v = seen | EV_WAITERS;
            if w.cas(seen, v, Relaxed, Relaxed).is_err() {
                return Woke::Mismatch; // changed since the check: look again
            }
            t.crash_point();
            if !mutant::<P>(MUTANT_NO_WAIT_FENCE) {
                P::fence_after_rmw();
            }
            if !mutant::<P>(MUTANT_SLEEP_WITHOUT_RECHECK) {
                return Woke::Mismatch;
            }
            return park::sleep_owned::<P>(t, w, v, Waiters::bit(EV_WAITERS), owner.0, owner.1, dl);
        }
        park::sleep_owned::<P>(t, w, seen, Waiters::bit(EV_WAITERS), owner.0, owner.1, dl)
    }

    // ---- chunks ----------------------------------------------------------

    /// Copy `src` into the ring's bytes at byte position `at` (taken modulo the
    /// ring's size, a power of two), wrapping around the array end: at most two bulk copies.
    ///
    /// # Safety
    /// Those bytes lie in the free region, which only the `prod` holder
    /// accesses: the caller holds `prod`, and the consumer freed them with a
    /// `Release` store of `head` that the caller's `Acquire` load observed.
    unsafe fn write_bytes(&self, at: usize, src: &[u8]) {
        let total = self.slots.len() * CHUNK;
        // `total` is a power of two (`Ring::new` checks the capacity), so a
        // mask, not a division (two per message on each side, in the hot path).
        let b = at & (total - 1);
        let (a, rest) = src.split_at(src.len().min(total - b));
        // SAFETY: the caller's exclusive access (above); both ranges are in
        // bounds because `b + a.len() <= total` and `rest.len() < total`.
        unsafe {
            P::write_cells(
                &self.slots[b / CHUNK..(b + a.len()).div_ceil(CHUNK)],
                b % CHUNK,
                a,
            );
            if !rest.is_empty() {
                P::write_cells(&self.slots[..rest.len().div_ceil(CHUNK)], 0, rest);
            }
        }
    }

    /// Append `len` of the ring's bytes at byte position `at` (modulo its
    /// size) to `out`, wrapping around the array end: at most two bulk copies.
    ///
    /// # Safety
    /// Those bytes are published (below a `tail` the caller loaded with
    /// `Acquire`) and not yet freed: only the `cons` holder (the caller) reads
    /// them and nobody writes them.
    unsafe fn append_bytes(&self, at: usize, len: usize, out: &mut Vec<u8>) {
        let total = self.slots.len() * CHUNK;
        // `total` is a power of two (`Ring::new` checks the capacity), so a
        // mask, not a division.
        let b = at & (total - 1);
        let n = len.min(total - b);
        // SAFETY: the caller's guarantee (above); both ranges are in bounds
        // because `b + n <= total` and `len - n < total`.
        unsafe {
            P::append_cells(
                &self.slots[b / CHUNK..(b + n).div_ceil(CHUNK)],
                b % CHUNK,
                n,
                out,
            );
            if n < len {
                P::append_cells(&self.slots[..(len - n).div_ceil(CHUNK)], 0, len - n, out);
            }
        }
    }

    /// Write one piece at chunk position `at`. Caller holds `prod` and the
    /// chunks are free. The first chunk (header and the payload's first
    /// `CHUNK - PIECE_HEADER` bytes) is written whole, so a small message
    /// takes one copy.
    fn write_piece(&self, at: u64, flags: u32, payload: &[u8]) -> u64 {
        let (head, rest) = payload.split_at(payload.len().min(CHUNK - PIECE_HEADER));
        // Built in registers: a copy of a few bytes into a stack array and a
        // wide load of it back stall on store forwarding (a profile of the
        // producer showed it as its second-hottest instruction).
        let header = payload.len() as u32 as u64 | (flags as u64) << 32;
        let mut first = [0u8; CHUNK];
        first[..PIECE_HEADER].copy_from_slice(&header.to_le_bytes());
        first[PIECE_HEADER..].copy_from_slice(&small_le(head).to_le_bytes());
        let i = (at & (self.cap - 1)) as usize;
        // The first chunk as one value (a small message: one 16-byte store,
        // no bulk copy), the rest in bulk.
        // SAFETY: the piece's chunks (all of them: a piece occupies whole
        // chunks, at least one) lie in the free region, which only the `prod`
        // holder (us) accesses; the consumer freed them with a Release store
        // of `head` that our Acquire load observed. `i < cap`, the number of
        // chunks (`Ring::new` checks it), and the pointer is the cell's.
        unsafe {
            self.slots[i].with_mut(|c| c.write(first));
            if !rest.is_empty() {
                self.write_bytes((i + 1) * CHUNK, rest);
            }
        }
        chunks_for(payload.len())
    }

    /// Write one piece at chunk position `at` whose `len` payload bytes
    /// `write` produces (a [`Message::Written`]). Caller holds `prod` and the
    /// chunks are free. `None` if the writer failed or wrote other than
    /// `len` bytes: then the piece must not be published.
    fn write_written(
        &self,
        at: u64,
        flags: u32,
        len: usize,
        write: &mut dyn FnMut(&mut dyn Sink) -> bool,
    ) -> Option<u64> {
        let at = (at & (self.cap - 1)) as usize * CHUNK;
        let header = len as u32 as u64 | (flags as u64) << 32;
        // SAFETY: as in `write_piece`: the piece's chunks are free and ours.
        unsafe { self.write_bytes(at, &header.to_le_bytes()) };
        let mut sink = PieceSink {
            ring: self,
            at: at + PIECE_HEADER,
            left: len,
            over: false,
        };
        let wrote = write(&mut sink);
        let whole = wrote && !sink.over && sink.left == 0;
        (whole || mutant::<P>(MUTANT_UNWRITTEN_PUBLISHED)).then_some(chunks_for(len))
    }

    /// Read the first chunk of the piece at `at`: its header (`len`, `flags`)
    /// and the chunk itself, which holds the payload's first
    /// `CHUNK - PIECE_HEADER` bytes (the whole payload of a small message).
    fn piece_header(&self, at: u64) -> (usize, u32, Chunk) {
        // SAFETY: the chunk is published (below `tail`, which we loaded with
        // Acquire) and not freed: only the `cons` holder (us) reads it and
        // nobody writes it. A piece occupies whole chunks, so all of this
        // chunk is the piece's. The index is below `cap`, the number of
        // chunks, and the pointer is the cell's. One value: a 16-byte load.
        let c = self.slots[(at & (self.cap - 1)) as usize].with(|c| unsafe { c.read() });
        let len = u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as usize;
        let flags = u32::from_le_bytes([c[4], c[5], c[6], c[7]]);
        (len, flags, c)
    }

    /// Append the payload of the piece at `at` (header already parsed, its
    /// first chunk `first`) to `out`: from `first` if it fits there, else
    /// read from the ring.
    fn read_payload(&self, at: u64, len: usize, first: &Chunk, out: &mut Vec<u8>) {
        if len <= CHUNK - PIECE_HEADER {
            out.extend_from_slice(&first[PIECE_HEADER..PIECE_HEADER + len]);
            return;
        }
        // SAFETY: as in `piece_header`: published, not yet freed, ours to read.
        unsafe {
            self.append_bytes(
                (at & (self.cap - 1)) as usize * CHUNK + PIECE_HEADER,
                len,
                out,
            )
        };
    }

    /// Can the payload of the piece at `at`, `len` bytes, be seen as one
    /// slice: does it lie in one stretch of the ring (not across the array
    /// end)? (A payload that fits the first chunk always does.)
    fn in_one_stretch(&self, at: u64, len: usize) -> bool {
        (at & (self.cap - 1)) as usize * CHUNK + PIECE_HEADER + len <= self.slots.len() * CHUNK
    }

    /// Run `view` on the payload of the piece at `at` (header parsed, first
    /// chunk `first`) where it lies; [`Ring::in_one_stretch`] said it can.
    fn view_payload(&self, at: u64, len: usize, first: &Chunk, view: &mut dyn FnMut(&[u8])) {
        if len <= CHUNK - PIECE_HEADER {
            return view(&first[PIECE_HEADER..PIECE_HEADER + len]);
        }
        let b = (at & (self.cap - 1)) as usize * CHUNK + PIECE_HEADER;
        // SAFETY: as in `piece_header`: the chunks are published and not
        // freed, ours to read, and nobody writes them until we store `head`,
        // which comes after this returns; `b + len` is within the ring
        // (`in_one_stretch`), and `view_cells` checks it again.
        unsafe {
            P::view_cells(
                &self.slots[b / CHUNK..(b + len).div_ceil(CHUNK)],
                b % CHUNK,
                len,
                view,
            )
        }
    }

    // ---- put -------------------------------------------------------------

    /// Put one message (any length up to `u32::MAX` bytes per piece; longer
    /// messages are streamed). See the module docs for deadlines.
    pub fn put(&self, t: &P::Thread, msg: &[u8], wait: Wait) -> Result<(), RingError> {
        self.put_counted(t, Message::Bytes(msg), wait, None)
    }

    /// Put one message: bytes (as [`Ring::put`]), or a
    /// [`Message::Written`], whose writer writes it straight into the
    /// ring's chunks once there is room (one copy where an encoder into a
    /// buffer and [`Ring::put`] make two). A written message larger than one
    /// piece is refused at once ([`RingError::TooLarge`]).
    pub fn put_message(
        &self,
        t: &P::Thread,
        msg: Message<'_>,
        wait: Wait,
    ) -> Result<(), RingError> {
        self.put_counted(t, msg, wait, None)
    }

    /// The number of messages committed so far (their `LAST` piece published),
    /// modulo 2^24: the count in `tail`. A joinable queue's unfinished tasks are
    /// derived from it (see [`crate::joinable`]).
    pub(crate) fn committed(&self) -> u32 {
        cnt(self.h.tail.0.pos.load(Acquire)) as u32
    }

    /// [`Ring::put`] for a joinable queue whose `task_done` count is `done`
    /// (modulo 2^24, as the committed count): the `prod` holder refuses the
    /// message ([`RingError::Full`], at once, whatever `wait` says) if
    /// `committed - done` (the unfinished tasks) is already [`MAX_UNFINISHED`],
    /// so that the difference never wraps. Only the `prod` holder raises the
    /// committed count, so the check cannot be overshot.
    pub(crate) fn put_counted(
        &self,
        t: &P::Thread,
        msg: Message<'_>,
        wait: Wait,
        done: Option<&P::W32>,
    ) -> Result<(), RingError> {
        if self.is_closed() {
            return Err(RingError::Closed);
        }
        let single = msg.len() <= MAX_PIECE && chunks_for(msg.len()) <= self.single_cap();
        if !single && matches!(msg, Message::Written { .. }) {
            return Err(RingError::TooLarge(msg.len()));
        }
        let timeout = match wait {
            Wait::No => {
                if !single {
                    return Err(RingError::Full);
                }
                Some(Duration::ZERO)
            }
            Wait::For(d) => d,
        };
        let dl = t.deadline(timeout);
        let got = match wait {
            Wait::No => self.h.prod.0.lock.try_lock(t),
            Wait::For(d) => self.h.prod.0.lock.lock(t, d),
        };
        match got {
            Err(_) => {
                return Err(if self.is_closed() {
                    RingError::Closed
                } else {
                    RingError::Full
                })
            }
            // The previous holder died, perhaps between publishing a piece and
            // notifying, or between its `tail` store and its own copy's:
            // notify for it (we learnt of the death, so its stores are
            // visible to us and, through this RMW, to the consumer) and go
            // on from `tail`.
            Ok(Acquired::OwnerDied) => {
                if !mutant::<P>(MUTANT_DEAD_COPY_KEPT) {
                    self.reload_tail();
                }
                self.notify(t, &self.h.tail.0.event);
            }
            Ok(Acquired::Clean) => {
                // A consumer that resynchronised the ring (foreign writes)
                // moved `head` to `tail`: go on from there.
                if self.h.prod.0.resynced.load(Relaxed) != 0
                    && self.h.prod.0.resynced.swap(0, Acquire) != 0
                {
                    self.reload_tail();
                }
            }
        }
        // `prod` is ours. Whatever a dead previous holder left is consistent:
        // its unpublished chunks are beyond `tail` and get overwritten, and a
        // partial message it published is discarded by the consumer when it
        // reads our FIRST piece.
        let mut hint = self.h.prod.0.seen.load(Relaxed); // see `RingHeader`
        let over = done.is_some_and(|d| {
            let tw = self.h.tail.0.pos.load(Relaxed); // only the prod holder writes it
                                                      // A stale `done` only overestimates the unfinished tasks.
            cnt(tw).wrapping_sub(d.load(Relaxed) as u64) & CNT_MASK >= MAX_UNFINISHED as u64
        });
        let r = if over {
            Err(RingError::Full)
        } else {
            self.put_locked(t, msg, wait, single, &dl, &mut hint)
        };
        self.h.prod.0.seen.store(hint, Relaxed);
        self.release_prod(t);
        r
    }

    /// Room for the next piece of a message (`remaining` bytes left of it)
    /// if `head` were `hw`: the piece's payload bytes and chunks, or `None`
    /// (no room, or a distance larger than the ring: a stale hint).
    #[inline]
    fn room(
        &self,
        tw: u64,
        hw: u64,
        first: bool,
        remaining: usize,
        single: bool,
    ) -> Option<(usize, u64)> {
        let cap = self.cap;
        let used = pos(tw).wrapping_sub(pos(hw)) & POS_MASK;
        if used >= cap {
            return None;
        }
        let free = cap - used;
        let items = cnt(tw).wrapping_sub(cnt(hw)) & CNT_MASK;
        let items_ok = !first || self.h.max_items == 0 || items < self.h.max_items as u64;
        if !items_ok {
            return None;
        }
        // Payload bytes that fit in the free chunks as one piece.
        let fit = (free as usize * CHUNK)
            .saturating_sub(PIECE_HEADER)
            .min(MAX_PIECE);
        if remaining <= fit {
            return Some((remaining, chunks_for(remaining)));
        }
        // Stream a message larger than the ring in pieces of at least half
        // the ring (fewer, larger copies).
        if !single && free >= (cap / 2).max(1) {
            return Some((fit, chunks_for(fit)));
        }
        None
    }

    /// The `prod` holder's copy of `tail` from `tail` itself (after a
    /// holder's death, a resynchronisation, or a copy out of range).
    fn reload_tail(&self) {
        let tw = self.h.tail.0.pos.load(Acquire);
        self.h.prod.0.tail.store(tw, Relaxed);
    }

    fn release_prod(&self, t: &P::Thread) {
        let unlocked = self.h.prod.0.lock.unlock(t).is_ok();
        // Wake a consumer that may be assembling a message we (or a previous
        // holder) abandoned, or waiting for the piece we published: it
        // re-checks `prod` and `tail`. The unlock's swap is the notifier's
        // barrier (see [Waiting](self#waiting)).
        if !mutant::<P>(MUTANT_NO_NOTIFY_NOT_EMPTY) {
            park::fence_after_unlock::<P>(unlocked, mutant::<P>(MUTANT_NO_NOTIFY_FENCE));
            self.notify_fenced(t, &self.h.tail.0.event);
        }
    }

    fn put_locked(
        &self,
        t: &P::Thread,
        mut msg: Message<'_>,
        wait: Wait,
        single: bool,
        dl: &<P::Thread as Thread>::Deadline,
        hw: &mut u64,
    ) -> Result<(), RingError> {
        let cap = self.cap;
        let mut off = 0usize;
        let mut first = true;
        // Our own copy of `tail` (equal to it: see `RingHeader`), so that the
        // consumers' line is only written here, never read.
        let mut tw = self.h.prod.0.tail.load(Relaxed);

        // Past the kept start of the lap: go on at the next lap's start if
        // the whole message fits there now (a wrap marker here says so).
        let mut wrap_at = None;
        if let Some(to) = self.lap_jump(t, tw, hw, msg.len(), single, wait != Wait::No) {
            wrap_at = Some(pos(tw));
            tw = to;
        }
        let mut finishing_tried = false;
        loop {
            // Wait for room for the next piece.
            let mut spins = 0;
            let (bytes, k) = loop {
                if let Some(r) = self.room(tw, *hw, first, msg.len() - off, single) {
                    if !self.is_closed() {
                        break r;
                    }
                }
                // No room by the hint: look at `head` itself, after loading
                // the event counter, so that chunks freed (or a `close`)
                // after this load end the sleep below.
                let ev = self.watch(&self.h.head.0.event);
                if self.is_closed() {
                    return Err(RingError::Closed);
                }
                if !mutant::<P>(MUTANT_HINT_NOT_RELOADED) {
                    *hw = self.load_limit();
                }
                if pos(tw).wrapping_sub(pos(*hw)) & POS_MASK > cap {
                    // Our copy of `tail` or `head` was written from outside:
                    // the next holder goes on from `tail`.
                    self.reload_tail();
                    return Err(RingError::Corrupt("ring positions out of range"));
                }
                if let Some(r) = self.room(tw, *hw, first, msg.len() - off, single) {
                    break r;
                }
                // No room: perhaps only because nobody followed a wrap
                // marker yet (once per wait: `cons` is the consumers' line).
                if self.keep != 0 && !finishing_tried {
                    finishing_tried = true;
                    if self.finish_wrap(t, tw) {
                        *hw = self.load_limit();
                        continue;
                    }
                }
                if wait == Wait::No {
                    return Err(RingError::Full);
                }
                if t.spin(spins) && spins < SPINS {
                    spins += 1;
                    continue;
                }
                finishing_tried = false;
                if self.sleep(t, &self.h.head.0.event, ev, (0, 0), dl) == Woke::TimedOut
                    && t.expired(dl)
                {
                    // A streamed message that times out half-way is abandoned.
                    return Err(RingError::Full);
                }
            };
            let mut flags = if first { FIRST } else { 0 };
            let last = off + bytes == msg.len();
            if last {
                flags |= LAST;
            }
            if self.keep != 0 {
                self.mark_dirty((pos(tw) + k) & POS_MASK);
            }
            if let Some(w) = wrap_at.take() {
                // Published with the message by the one `tail` store below.
                self.write_piece(w, WRAP, &[]);
                t.crash_point();
            }
            let written = match &mut msg {
                Message::Bytes(b) => self.write_piece(pos(tw), flags, &b[off..off + bytes]),
                // One piece (`put_counted` checked): `off` is 0, `bytes` all.
                Message::Written { write, .. } => {
                    match self.write_written(pos(tw), flags, bytes, *write) {
                        Some(k) => k,
                        // Nothing published: the chunks are still free, the
                        // next holder writes over them.
                        None => return Err(RingError::Unwritten),
                    }
                }
            };
            debug_assert_eq!(written, k);
            t.crash_point();
            tw = pack(cnt(tw) + last as u64, pos(tw) + k);
            let order = if mutant::<P>(MUTANT_RELAXED_TAIL) {
                Relaxed
            } else {
                Release
            };
            self.h.tail.0.pos.store(tw, order);
            t.crash_point();
            self.h.prod.0.tail.store(tw, Relaxed);
            off += bytes;
            first = false;
            if last {
                self.prefetch_next(tw, *hw, k);
                return Ok(()); // `release_prod` notifies
            }
            if !mutant::<P>(MUTANT_NO_NOTIFY_NOT_EMPTY) {
                self.notify(t, &self.h.tail.0.event);
            }
        }
    }

    /// After publishing a large message (`k` chunks, up to `tw`): ask the
    /// platform for the room the next one of that size would take (up to
    /// [`PREFETCH_CHUNKS`], within the free room by the hint `hw`, up to the
    /// array end), before `release_prod`'s barrier. See
    /// [Prefetching the next room](self#prefetching-the-next-room).
    #[inline]
    fn prefetch_next(&self, tw: u64, hw: u64, k: u64) {
        if k < PREFETCH_MIN_CHUNKS.min(self.cap / 2) {
            return;
        }
        let used = pos(tw).wrapping_sub(pos(hw)) & POS_MASK;
        let free = if mutant::<P>(MUTANT_PREFETCH_UNREAD) {
            self.cap
        } else {
            self.cap.saturating_sub(used)
        };
        let at = pos(tw) & (self.cap - 1);
        let n = k.min(PREFETCH_CHUNKS).min(free).min(self.cap - at);
        P::prefetch_write(&self.slots[at as usize..(at + n) as usize]);
    }

    /// Before writing a piece whose chunks end at `end`: raise `dirty` (see
    /// `RingHeader`) to it, unless it already lies further ahead (a piece
    /// written and not published, past this one, within a lap).
    #[inline]
    fn mark_dirty(&self, end: u64) {
        let d = self.h.prod.0.dirty.load(Relaxed); // only the prod holder writes it
        let past = d.wrapping_sub(end) & POS_MASK;
        if past == 0 || past > self.cap {
            self.h.prod.0.dirty.store(end, Relaxed);
        }
    }

    /// Where a message of `len` bytes starts instead of `tw` when it wraps
    /// early (see [Keeping a lap's start](self#keeping-a-laps-start)):
    /// `tw`'s count at the next lap's start, if the ring keeps a lap's
    /// start, `tw` is past it, the queue is empty (`head` is at `tw`: every
    /// piece consumed) and the message fits at the lap's start whole now
    /// (measured from `reclaimed`, as every room). `None`: the message goes
    /// at `tw`. Refreshes the hint `hw`.
    #[inline]
    fn lap_jump(
        &self,
        t: &P::Thread,
        tw: u64,
        hw: &mut u64,
        len: usize,
        single: bool,
        may_spin: bool,
    ) -> Option<u64> {
        let k = chunks_for(len);
        let lap_pos = pos(tw) & (self.cap - 1);
        if self.keep == 0 || lap_pos + k <= self.keep || k > self.keep || !single {
            return None;
        }
        // Look at the consumer's side about once per `WRAP_LOOK` chunks (or
        // reclaim unit, if smaller) that `tw` passes (when a message starts
        // within the first `k` chunks of one), not at every message (its hot
        // line, read per message, would slow both sides). A look that finds
        // the consumer behind costs the stretch up to the next look: memory
        // just given back (a page of it on the real platform).
        // The first look is at the message that would end past the kept
        // start (its marker then lies in the kept start: memory that stays).
        if lap_pos >= self.keep && pos(tw) & (self.h.reclaim_unit().min(WRAP_LOOK) - 1) >= k {
            return None;
        }
        // Chunks past `tail` in this lap that a producer wrote and did not
        // publish (a failed writer, a dead producer) would lie in the
        // stretch that the wrap skips, which following the marker does not
        // give back: write over them instead (they are then published, read
        // and given back). (Chunks such a producer wrote at the next lap's
        // start lie in the kept start: nothing to give back.)
        let dirty = self.h.prod.0.dirty.load(Relaxed);
        let ahead = dirty.wrapping_sub(pos(tw)) & POS_MASK;
        if ahead != 0 && ahead <= self.cap - lap_pos && !mutant::<P>(MUTANT_DIRTY_SKIPPED) {
            return None;
        }
        let to = if mutant::<P>(MUTANT_WRAP_OFF_BY_ONE) {
            pack(cnt(tw), pos(tw) | (self.cap - 1))
        } else {
            pack(cnt(tw), (pos(tw) | (self.cap - 1)).wrapping_add(1))
        };
        let fits = |hw: u64| matches!(self.room(to, hw, true, len, true), Some((b, _)) if b == len);
        // A consumer that is reading (it holds `cons`) close behind (at most
        // twice the kept start): wait a moment (spin; not in a `try` put) for
        // it to catch up rather than write into memory just given back.
        // The first look of a lap (the message that ends past the kept
        // start, or starts at its end) waits longer than later ones: the
        // lap's fresh pages are still to be saved.
        let budget = if lap_pos <= self.keep {
            WRAP_FIRST_SPINS
        } else {
            WRAP_SPINS
        };
        let mut spins = 0;
        let mut first_head = None;
        loop {
            let head = self.h.head.0.pos.load(Acquire);
            *hw = self.load_limit();
            let behind = pos(tw).wrapping_sub(pos(head)) & POS_MASK;
            if behind == 0 || mutant::<P>(MUTANT_WRAP_NOT_EMPTY) {
                // Empty: nothing unread lies anywhere in the ring, so after the
                // jump the producer's room is the whole ring once the marker is
                // followed — by a consumer, or by a producer that runs out of
                // room before one comes (`finish_wrap`).
                return fits(*hw).then_some(to);
            }
            // Reading: holding `cons`, or `head` moved since the first look. A
            // consumer that takes one message per `get` is between two of them
            // (not holding `cons`) at some looks; only one that has neither
            // held `cons` nor moved `head` for a few spins is not reading.
            let first = *first_head.get_or_insert(head);
            let reading = self.h.cons.0.lock.word().load(Relaxed) != 0 || head != first;
            if !may_spin
                || behind > 2 * self.keep
                || (!reading && spins >= WRAP_IDLE_SPINS)
                || spins >= budget
                || !t.spin(spins)
            {
                return None;
            }
            spins += 1;
        }
    }

    /// A producer (holding `prod`; its `tail` is `tw`) that found no room:
    /// if the consumers' side stops at a wrap marker that no consumer is
    /// following (nobody holds `cons`, or its holder died), follow it as a
    /// consumer would: `head` to the next lap's start and the reclaim step.
    /// Then the whole ring is room again, whether or not anybody reads. (A
    /// consumer that holds `cons` follows the marker itself: there is
    /// something to read.) Also finishes a dead consumer's reclaim step.
    /// Returns whether `head` or `reclaimed` moved.
    fn finish_wrap(&self, t: &P::Thread, tw: u64) -> bool {
        match self.h.cons.0.lock.try_lock(t) {
            Err(_) => return false,
            Ok(Acquired::OwnerDied) => self.notify(t, &self.h.head.0.event),
            Ok(Acquired::Clean) => {}
        }
        let hw = self.h.head.0.pos.load(Relaxed); // only the cons holder (us) writes it
        let mut moved = self.reclaim_upto(t, hw);
        let avail = pos(tw).wrapping_sub(pos(hw)) & POS_MASK;
        if avail > 0 && avail <= self.cap && !mutant::<P>(MUTANT_NO_FINISH_WRAP) {
            // Published (below our own `tail`) and not freed: ours to read.
            let (len, flags, _) = self.piece_header(pos(hw));
            if flags == WRAP && len == 0 {
                moved |= self.follow_marker(t, hw, avail).is_some();
            }
        }
        if moved {
            self.notify(t, &self.h.head.0.event);
        }
        let _ = self.h.cons.0.lock.unlock(t);
        moved
    }

    /// Follow the wrap marker at `head` (`hw`; `avail` chunks published
    /// from it), holding `cons`: `head` to the next lap's start, then the
    /// reclaim step. `None` (nothing changed) if the lap's start lies beyond
    /// what is published: not a marker this protocol wrote.
    fn follow_marker(&self, t: &P::Thread, hw: u64, avail: u64) -> Option<u64> {
        let at = pos(hw);
        let to = (at | (self.cap - 1)).wrapping_add(1) & POS_MASK;
        if to.wrapping_sub(at) & POS_MASK >= avail {
            return None;
        }
        let hw = pack(cnt(hw), to);
        self.h.head.0.pos.store(hw, Release);
        t.crash_point();
        // The marker is one chunk; nothing was written past it in this lap.
        if self.reclaim_written(t, hw, (at + 1) & POS_MASK) {
            self.notify(t, &self.h.head.0.event);
        }
        Some(hw)
    }

    /// What a producer's room is measured from: `head` (its message count
    /// counts against `max_items`) with, when the ring reclaims memory, the
    /// position of `reclaimed` instead of `head`'s (chunks between the two
    /// are consumed but may still be being given back).
    fn load_limit(&self) -> u64 {
        let hw = self.h.head.0.pos.load(Acquire);
        if self.h.reclaim_shift == 0 {
            return hw;
        }
        // Acquire: the consumer gave the units back before its Release store.
        pack(cnt(hw), self.h.reclaimed.load(Acquire))
    }

    /// The reclaim step (`cons` holder only): give back every whole unit
    /// below `head` (`hw`, just stored or found) that is not yet given back,
    /// then publish that with one `Release` store of `reclaimed`. Also the
    /// recovery of a consumer that died half-way through it: the next holder
    /// redoes the units from `reclaimed` on (giving a unit back twice is
    /// harmless: nobody else touches it until `reclaimed` passes it).
    /// Returns whether `reclaimed` moved.
    #[inline]
    fn reclaim_upto(&self, t: &P::Thread, hw: u64) -> bool {
        self.reclaim_written(t, hw, pos(hw))
    }

    /// [`Ring::reclaim_upto`] knowing that nothing was written at positions
    /// from `written_end` (a wrap marker's end) up to `head` since they were
    /// last given back: the units wholly past it are holes, passed without
    /// a call (see [Keeping a lap's start](self#keeping-a-laps-start)).
    #[inline]
    fn reclaim_written(&self, t: &P::Thread, hw: u64, written_end: u64) -> bool {
        let shift = self.h.reclaim_shift;
        if shift == 0 {
            return false;
        }
        // The common case, inlined: `head` is still in the unit `reclaimed`
        // is at (nothing to give back).
        if !mutant::<P>(MUTANT_RECLAIM_READING)
            && self.h.reclaimed.load(Relaxed) == floor_unit(pos(hw), shift)
        {
            return false;
        }
        self.reclaim_units(t, hw, shift, written_end)
    }

    /// [`Ring::reclaim_written`] past its common case.
    #[inline(never)]
    fn reclaim_units(&self, t: &P::Thread, hw: u64, shift: u32, written_end: u64) -> bool {
        let unit = 1u64 << shift;
        let target = if mutant::<P>(MUTANT_RECLAIM_READING) {
            // Seeded bug: the unit `head` is in counts as consumed.
            floor_unit(pos(hw) + unit - 1, shift)
        } else {
            floor_unit(pos(hw), shift)
        };
        let mut r = self.h.reclaimed.load(Relaxed); // only the cons holder writes it
        if r == target {
            return false;
        }
        if (target.wrapping_sub(r) & POS_MASK) > self.cap || r & (unit - 1) != 0 {
            // Not something this protocol wrote: give nothing back, go on.
            self.h.reclaimed.store(target, Release);
            return true;
        }
        if mutant::<P>(MUTANT_RECLAIMED_FIRST) {
            self.h.reclaimed.store(target, Release);
        }
        // Up to the end of the unit `written_end` is in: past it, a wrap
        // skipped the positions, whose chunks were given back a lap ago (or
        // are kept) and not published since (a failed or dead producer's
        // unpublished chunks may stay allocated: see the module docs).
        let written = if mutant::<P>(MUTANT_MARKER_UNIT_KEPT) {
            floor_unit(written_end, shift)
        } else {
            floor_unit(written_end + unit - 1, shift)
        };
        let dist = target.wrapping_sub(r) & POS_MASK;
        let give = (r + (written.wrapping_sub(r) & POS_MASK).min(dist)) & POS_MASK;
        // One stretch per lap (at most two: the distance is at most the
        // capacity), less the lap's kept start.
        while r != give {
            let idx = r & (self.cap - 1);
            let n = (give.wrapping_sub(r) & POS_MASK).min(self.cap - idx);
            let from = idx.max(self.keep);
            if from < idx + n {
                let (first, chunks) = (from as usize, (idx + n - from) as usize);
                match self.reclaimer {
                    Some(f) => f.reclaim(first, chunks),
                    None => self.zero_chunks(first, chunks),
                }
                t.crash_point();
            }
            r = (r + n) & POS_MASK;
        }
        self.h.reclaimed.store(target, Release);
        t.crash_point();
        true
    }

    /// The model's "give back": zero the chunks (a write loom tracks).
    fn zero_chunks(&self, first: usize, chunks: usize) {
        const Z: [u8; 16 * CHUNK] = [0; 16 * CHUNK];
        let bytes = chunks * CHUNK;
        let mut done = 0;
        while done < bytes {
            let n = (bytes - done).min(Z.len());
            // SAFETY: the chunks are consumed (below `head`) and not yet
            // given back (not below `reclaimed`): only the `cons` holder (the
            // caller) may access them; producers stay below `reclaimed + cap`.
            unsafe { self.write_bytes(first * CHUNK + done, &Z[..n]) };
            done += n;
        }
    }

    // ---- get -------------------------------------------------------------

    /// Get one message into `out` (cleared first). See the module docs for
    /// deadlines and the delivery rule.
    pub fn get(&self, t: &P::Thread, out: &mut Vec<u8>, wait: Wait) -> Result<(), RingError> {
        self.get_limited(t, out, wait, usize::MAX)
    }

    /// [`Ring::get`] of a message of at most `limit` bytes. A longer one fails
    /// with [`RingError::TooLarge`] as soon as its assembled size passes the
    /// limit: the pieces read so far are freed and its rest is skipped by the
    /// next `get` (as for a consumer that died half-way), so a producer that
    /// streams without end cannot make a consumer buffer without end.
    pub fn get_limited(
        &self,
        t: &P::Thread,
        out: &mut Vec<u8>,
        wait: Wait,
        limit: usize,
    ) -> Result<(), RingError> {
        self.get_inner(t, out, wait, limit, None)
    }

    /// Get one message of at most `limit` bytes (as [`Ring::get_limited`])
    /// and run `f` on its bytes: **in place** when the message is one piece
    /// lying in one stretch of the ring (no copy: `f` runs while this
    /// consumer holds `cons` and before it frees the chunks, so no producer
    /// writes them meanwhile — safe by the protocol, not by a copy), else on
    /// `out`, where it was assembled. `f` runs once, only for a message
    /// delivered (`Ok`). It must not unwind: a panic would leave `cons` held
    /// by a live thread, and the ring's other consumers waiting for it (the
    /// shipped queue catches the panic and resumes it after the `get`).
    pub fn get_view<R>(
        &self,
        t: &P::Thread,
        out: &mut Vec<u8>,
        wait: Wait,
        limit: usize,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, RingError> {
        let mut f = Some(f);
        let mut seen = None;
        let mut view = |b: &[u8]| {
            if let Some(f) = f.take() {
                seen = Some(f(b));
            }
        };
        self.get_inner(t, out, wait, limit, Some(&mut view))?;
        match (seen, f) {
            (Some(r), _) => Ok(r),
            (None, Some(f)) => Ok(f(out)),
            // `view` ran without storing (cannot happen: it stores whenever
            // it takes `f`).
            (None, None) => Err(RingError::Corrupt("view ran without a result")),
        }
    }

    fn get_inner(
        &self,
        t: &P::Thread,
        out: &mut Vec<u8>,
        wait: Wait,
        limit: usize,
        view: View<'_>,
    ) -> Result<(), RingError> {
        out.clear();
        let timeout = match wait {
            Wait::No => Some(Duration::ZERO),
            Wait::For(d) => d,
        };
        let dl = t.deadline(timeout);
        let got = match wait {
            Wait::No => self.h.cons.0.lock.try_lock(t),
            Wait::For(d) => self.h.cons.0.lock.lock(t, d),
        };
        match got {
            Err(_) => {
                return Err(if self.is_closed() && self.is_empty() {
                    RingError::Closed
                } else {
                    RingError::Empty
                })
            }
            // The previous holder died, perhaps between freeing chunks and
            // notifying: notify for it.
            Ok(Acquired::OwnerDied) => self.notify(t, &self.h.head.0.event),
            Ok(Acquired::Clean) => {}
        }
        // `cons` is ours. A dead previous holder may have read (and freed) the
        // first pieces of a message: we skip the rest of it (no FIRST).
        let mut hint = self.h.cons.0.seen.load(Relaxed); // see `RingHeader`
        let was_lazy = self.h.cons.0.pace.load(Relaxed) != 0;
        let mut lazy = was_lazy;
        let r = self.get_locked(t, (out, view), wait, &dl, limit, (&mut hint, &mut lazy));
        self.h.cons.0.seen.store(hint, Relaxed);
        if lazy != was_lazy {
            self.h.cons.0.pace.store(lazy as u32, Relaxed);
        }
        let unlocked = self.h.cons.0.lock.unlock(t).is_ok();
        if r.is_ok() && !mutant::<P>(MUTANT_NO_NOTIFY_NOT_FULL) {
            // The message's last piece freed its chunks: notify `not_full`
            // (`get_locked` left it to us), with the unlock's swap as the
            // notifier's barrier, as a producer's release of `prod` is.
            park::fence_after_unlock::<P>(unlocked, mutant::<P>(MUTANT_NO_NOTIFY_FENCE));
            self.notify_fenced(t, &self.h.head.0.event);
        }
        if r.is_err() {
            out.clear();
        }
        r
    }

    fn get_locked(
        &self,
        t: &P::Thread,
        (out, mut view): (&mut Vec<u8>, View<'_>),
        wait: Wait,
        dl: &<P::Thread as Thread>::Deadline,
        limit: usize,
        (tw, lazy): (&mut u64, &mut bool),
    ) -> Result<(), RingError> {
        let cap = self.cap;
        let forever = t.deadline(None);
        let mut assembling = false;
        let mut hw = self.h.head.0.pos.load(Relaxed); // only the cons holder writes it
                                                      // Finish what a dead previous holder left half-done (or nothing).
        if !mutant::<P>(MUTANT_NO_RECLAIM_RECOVERY) && self.reclaim_upto(t, hw) {
            self.notify(t, &self.h.head.0.event);
        }
        let mut spins = 0;
        let mut polled = false; // the last sleep ended with the liveness poll
        let dist = |tw: u64, hw: u64| pos(tw).wrapping_sub(pos(hw)) & POS_MASK;
        loop {
            let mut avail = dist(*tw, hw);
            if avail == 0 || avail > cap {
                // Nothing by the hint: look at `tail` itself, after loading
                // the event counter, so that a piece published (or a
                // `close`) after this load ends the sleep below.
                let ev = self.watch(&self.h.tail.0.event);
                if !mutant::<P>(MUTANT_TAIL_HINT_NOT_RELOADED) || avail > cap {
                    *tw = self.h.tail.0.pos.load(Acquire);
                }
                avail = dist(*tw, hw);
                if avail > cap {
                    return Err(self.resync(t, *tw, "ring positions out of range"));
                }
                if avail == 0 {
                    // Nothing to read.
                    let mut watch = (0, 0); // the producer whose message we assemble
                    if assembling {
                        // Is the message's producer still there?
                        let pw = self.h.prod.0.lock.word().load(Acquire);
                        let owner = pw & OWNER_MASK;
                        let gone = if owner == 0 {
                            // Released: finished (then its pieces are visible now) or abandoned.
                            self.h.tail.0.pos.load(Acquire) == *tw
                        } else {
                            // Held: by a dead process (the lock's own liveness
                            // decision, asked only after a liveness poll, which is
                            // when a death can have happened), or by a live
                            // producer that will go on or start a new message
                            // (FIRST): sleep watching it.
                            watch = (owner, self.h.prod.0.lock.published());
                            polled && self.h.prod.0.lock.holder(t, pw).is_none()
                        };
                        polled = false;
                        if gone {
                            if mutant::<P>(MUTANT_DELIVER_PARTIAL) {
                                return Ok(());
                            }
                            out.clear();
                            assembling = false;
                            continue;
                        }
                    } else if self.is_closed() {
                        // `close` comes after the last put: look at `tail` again, now
                        // that the Acquire load of `closed` has made it visible.
                        if self.h.tail.0.pos.load(Acquire) == *tw {
                            return Err(RingError::Closed);
                        }
                        continue;
                    }
                    if wait == Wait::No && !assembling {
                        return Err(RingError::Empty);
                    }
                    let looked = if spins == 0 && *lazy && !mutant::<P>(MUTANT_NEVER_LINGER) {
                        t.linger()
                    } else {
                        t.spin(spins)
                    };
                    if looked && spins < SPINS {
                        spins += 1;
                        continue;
                    }
                    let d = if assembling { &forever } else { dl };
                    if self.sleep(t, &self.h.tail.0.event, ev, watch, d) == Woke::TimedOut {
                        polled = true;
                        if !assembling && t.expired(dl) {
                            return Err(RingError::Empty);
                        }
                    }
                    continue;
                }
            }
            if spins > 0 {
                let mut ready = cnt(*tw).wrapping_sub(cnt(hw)) & CNT_MASK;
                if mutant::<P>(MUTANT_LAZY_WITHOUT_BATCH) {
                    ready = ready.max(2);
                }
                *lazy = pace_after_wait(*lazy, spins, ready);
            }
            spins = 0;
            let at = pos(hw);
            let (len, flags, first) = self.piece_header(at);
            if flags == WRAP && len == 0 {
                // A wrap marker: the stream goes on at the next lap's start,
                // which the producer published together with (below) a
                // message's first piece. Nothing between is anybody's.
                match self.follow_marker(t, hw, avail) {
                    Some(h) => hw = h,
                    None => {
                        let tw = self.h.tail.0.pos.load(Acquire);
                        return Err(self.resync(t, tw, "bad wrap marker"));
                    }
                }
                continue;
            }
            let k = chunks_for(len);
            if len > cap as usize * CHUNK || k > avail || flags & !(FIRST | LAST) != 0 {
                let tw = self.h.tail.0.pos.load(Acquire);
                return Err(self.resync(t, tw, "bad piece header"));
            }
            let is_first = flags & FIRST != 0;
            let is_last = flags & LAST != 0;
            if wait == Wait::No && is_first && !assembling {
                // Only take a message that is complete in the ring (the
                // hint may be behind: count with `tail` itself).
                *tw = self.h.tail.0.pos.load(Acquire);
                if cnt(*tw).wrapping_sub(cnt(hw)) & CNT_MASK == 0 {
                    return Err(RingError::Empty);
                }
            }
            if is_first {
                if assembling && !mutant::<P>(MUTANT_KEEP_ABANDONED) {
                    out.clear(); // the previous message was abandoned
                }
                assembling = true;
            } else if !assembling && mutant::<P>(MUTANT_NO_SKIP) {
                assembling = true;
            }
            let too_large = assembling && len > limit.saturating_sub(out.len());
            if too_large && mutant::<P>(MUTANT_LIMIT_KEEPS_PIECE) {
                return Err(RingError::TooLarge(out.len().saturating_add(len)));
            }
            // A whole message in one stretch is read where it lies, by
            // `view` if the caller gave one, before `head` frees it.
            let in_place =
                is_first && is_last && !too_large && view.is_some() && self.in_one_stretch(at, len);
            let late = mutant::<P>(MUTANT_VIEW_AFTER_FREE);
            if in_place {
                if let (Some(v), false) = (view.as_mut(), late) {
                    self.view_payload(at, len, &first, *v);
                }
            } else if assembling && !too_large {
                self.read_payload(at, len, &first, out);
            }
            t.crash_point();
            hw = pack(cnt(hw) + is_last as u64, at + k);
            let order = if mutant::<P>(MUTANT_RELAXED_HEAD) {
                Relaxed
            } else {
                Release
            };
            self.h.head.0.pos.store(hw, order);
            if let (Some(v), true) = (view.as_mut(), late && in_place) {
                self.view_payload(at, len, &first, *v);
            }
            t.crash_point();
            let _ = self.reclaim_upto(t, hw);
            if is_last && assembling && !too_large {
                // `get_limited` notifies after releasing `cons` (one barrier
                // for both). A consumer that dies first leaves `cons` to a
                // taker that notifies for it.
                return Ok(());
            }
            self.notify(t, &self.h.head.0.event);
            if too_large {
                // Its rest (if any) has no FIRST: the next `get` skips it.
                return Err(RingError::TooLarge(out.len().saturating_add(len)));
            }
        }
    }

    /// The published region is inconsistent (foreign writes): free all of it
    /// so that the ring can go on, and report it.
    fn resync(&self, t: &P::Thread, tw: u64, what: &'static str) -> RingError {
        self.h.head.0.pos.store(tw, Release);
        // The producers' copy of `tail` may be what was written over.
        self.h.prod.0.resynced.store(1, Release);
        let _ = self.reclaim_upto(t, tw);
        self.notify(t, &self.h.head.0.event);
        RingError::Corrupt(what)
    }
}

/// Fuzzing entry points (behind the `checkers` feature).
#[cfg(feature = "checkers")]
pub mod fuzzing;

#[cfg(all(test, feature = "checkers"))]
mod tests;
