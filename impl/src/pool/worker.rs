//! The worker's side: frame formats, the task trampolines, and the child's main.
//!
//! # Frames (each a [`crate::codec::wire`] frame: 4-byte length, then the payload)
//!
//! ```text
//! to a worker   [1] unit:u64 tramp:u64 func:u64 n:u32 args...   run a unit
//!               [2]                                             the stop sentinel
//! from a worker [1]                                             Ready
//!               [2] message (UTF-8)                              InitFailed
//!               [3] unit:u64                                     Started
//!               [4] unit:u64 results...                          Done
//!
//! in a slot     [3] slot:u32 len:u32     (to a worker)    its unit frame is in input slot `slot`
//!               [5] slot:u32 len:u32     (from a worker)  its Done frame is in output slot `slot`
//! ```
//!
//! A unit frame or a `Done` frame of at least [`SLOT_MIN`] bytes (a `map`'s
//! chunk and its answer) does not cross the socket when the worker has slots
//! ([`crate::shm::slots`]): its payload (the tag onwards) is copied into the
//! slot that the dispatcher gave the unit (`Action::Send`'s `slot`, the unit's
//! answer in the output slot of the same index), and the socket carries only
//! the short note `[3]`/`[5]` with its length. The reader decodes it in place,
//! safe by protocol (`procshare_model::pool`, "Slots"): a slot is written
//! only when its reader is done with it. A note naming a slot that does not
//! exist, a length that does not fit, or a frame that is not a unit (resp. a
//! `Done`) is a protocol violation, handled as a corrupt frame is.
//!
//! Integers are little-endian. `args` is `p:u32`, then `n` arguments (`T`
//! each), one after the other: the first `p` as plain bytes (see [`super::plain`]:
//! a `u64` is its 8 bytes), the others postcard-encoded (the first argument
//! that is not plain, and every one after it). `results` is one status byte:
//!
//! * `0`: `k:u32 p:u32`, then `k` `R` values (tasks `0..k`, all succeeded; the
//!   first `p <= k` of them plain bytes, the others postcard), then one
//!   postcard `Result<R, TaskFailure>` for each of tasks `k..n`. A unit whose
//!   tasks all succeed has `k = n`: one value per task, nothing else; the
//!   first task that panics (or whose result does not serialize) ends the
//!   successful prefix.
//! * `1`: the whole unit failed (UTF-8 message follows).
//!
//! `tramp` and `func` name functions of this very binary by their offsets
//! from an anchor function ([`crate::process::spawn::fn_offset`]), the same
//! in every process running this executable: a forked worker and a spawned
//! (or forkserver) one resolve them alike, whatever the address-space
//! randomization.
//!
//! Arguments are decoded and results encoded one at a time, straight from and
//! into buffers that the worker keeps from one unit to the next: a `map` chunk
//! costs no allocation and no page fault in the worker once the first chunk
//! has sized the buffers.

use core::time::Duration;
use std::cell::RefCell;
use std::io::Read;
use std::os::fd::{AsFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

use procshare_model::pool::{worker_main, FromWorker, ToWorker, UnitId, WorkerIo};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::codec::wire::{self, WireError};
use crate::panic_message;
use crate::process::spawn::{checked_fn_at, fn_at, fn_offset};
use crate::process::spawn::{Exporter, Importer, SpawnArg, SpawnArgs, SpawnError};
use crate::shm::slots::{Side, Slots};
use std::sync::Arc;

/// Frames larger than this are refused (a hostile or broken peer cannot make us allocate more).
pub(crate) const FRAME_LIMIT: usize = wire::DEFAULT_LIMIT;

pub(crate) const TO_UNIT: u8 = 1;
pub(crate) const TO_STOP: u8 = 2;
pub(crate) const FROM_READY: u8 = 1;
pub(crate) const FROM_INIT_FAILED: u8 = 2;
pub(crate) const FROM_STARTED: u8 = 3;
pub(crate) const FROM_DONE: u8 = 4;
pub(crate) const TO_SLOT: u8 = 3;
pub(crate) const FROM_SLOT: u8 = 5;

/// A frame (payload) at least this long crosses in a slot when it can; a
/// shorter one (an `apply`, a small chunk) crosses the socket, which costs no
/// more than the note would.
pub(crate) const SLOT_MIN: usize = 16 << 10;

/// Bytes per slot: the largest frame that crosses in one (a default-chunked
/// `map` of up to about 4 M `u64`s over two workers).
pub(crate) const SLOT_SIZE: usize = 4 << 20;

/// A slot note (`[3]`/`[5]` above), whole frame: length 9, tag, slot, length.
pub(crate) fn slot_note(tag: u8, slot: usize, len: usize) -> [u8; 13] {
    let mut f = [0u8; 13];
    f[..4].copy_from_slice(&9u32.to_le_bytes());
    f[4] = tag;
    f[5..9].copy_from_slice(&(slot as u32).to_le_bytes());
    f[9..].copy_from_slice(&(len as u32).to_le_bytes());
    f
}

/// The slot and length of a slot note's payload (`f`, tag included).
pub(crate) fn parse_slot_note(f: &[u8]) -> Option<(usize, usize)> {
    if f.len() != 9 {
        return None;
    }
    let s = u32::from_le_bytes(f[1..5].try_into().ok()?) as usize;
    let n = u32::from_le_bytes(f[5..9].try_into().ok()?) as usize;
    Some((s, n))
}

/// Bytes reserved in front of a trampoline's output for the `Done` frame's
/// header (length, tag, unit id).
pub(crate) const DONE_HEADER: usize = 4 + 1 + 8;

/// Status byte of a `Done` body: a plain prefix, then per-task results.
pub(crate) const DONE_RESULTS: u8 = 0;
/// Status byte of a `Done` body: the whole unit failed (message follows).
pub(crate) const DONE_FAILED: u8 = 1;

/// A trampoline: decodes a unit's arguments (`n:u32 p:u32` then the arguments),
/// calls the task function at address `func` on each, and writes the `Done`
/// body (status byte onwards) into `out` after its first [`DONE_HEADER`]
/// bytes (`out` is cut to the end of the body).
pub(crate) type Tramp = fn(usize, &[u8], &mut Vec<u8>);

/// Why one task produced no value (crosses the socket inside a `Done` frame).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub(crate) enum TaskFailure {
    /// The task panicked with this message.
    Panicked(String),
    /// Its result could not be serialized.
    Unserializable(String),
    /// Its argument could not be decoded (the task did not run).
    BadArgument(String),
}

/// Run `call` on every argument of `data` (`n:u32 p:u32`, then `n` `In`: `p`
/// plain, the rest postcard)
/// and append the `Done` body to `out`. A panic becomes
/// [`TaskFailure::Panicked`], a result that fails to serialize
/// [`TaskFailure::Unserializable`] and an argument that does not decode (with
/// every one after it) [`TaskFailure::BadArgument`], for those tasks alone.
fn run_items<In: DeserializeOwned, R: Serialize>(
    data: &[u8],
    out: &mut Vec<u8>,
    call: impl FnMut(In) -> R,
) {
    // After the Done frame's header; what `out` holds beyond is slack (kept,
    // not zeroed again next time): the frame's length, written into its
    // header, says where the body ends.
    let mut o = Out::at(out, DONE_HEADER);
    results_into(&mut o, data, call);
    let end = o.keep();
    let len = u32::try_from(end - 4).unwrap_or(u32::MAX);
    out[..4].copy_from_slice(&len.to_le_bytes());
}

/// The body of [`run_items`], into `out`.
fn results_into<In: DeserializeOwned, R: Serialize>(
    out: &mut Out<'_>,
    data: &[u8],
    mut call: impl FnMut(In) -> R,
) {
    let n = match data.get(..4) {
        Some(h) => u32::from_le_bytes(h.try_into().expect("4 bytes")),
        None => {
            out.bytes(&[DONE_FAILED]);
            out.bytes(b"cannot decode the task arguments: no count");
            return;
        }
    };
    out.bytes(&[DONE_RESULTS]);
    let k_at = out.pos();
    out.bytes(&n.to_le_bytes());
    out.bytes(&n.to_le_bytes());
    let p_at = k_at + 4;
    // The first `plain_in` arguments are plain bytes, the rest postcard.
    let plain_in = data
        .get(4..8)
        .map_or(0, |h| u32::from_le_bytes(h.try_into().expect("4 bytes")));
    let mut plain = super::plain::PlainDe::new(data.get(8..).unwrap_or(&[]));
    // The common case first, in a loop of its own: plain arguments to plain
    // results, no task failing. The tasks from `start` on, and what became
    // of task `start` if that loop stopped at it, are handled below.
    let (start, mut left) = plain_run(out, &mut plain, plain_in.min(n), &mut call);
    let mut de = postcard::Deserializer::from_bytes(&[]);
    // `Some(k)`: tasks from `k` on are sent as `Result`s.
    let mut split: Option<u32> = None;
    // Results are written plain while they are (`Some(p)`: from `p` on, postcard).
    let mut plain_out: Option<u32> = None;
    for i in start..n {
        if i == plain_in {
            de = postcard::Deserializer::from_bytes(plain.rest());
        }
        let outcome = match left.take() {
            Some(o) => o,
            None => {
                let item = if i < plain_in {
                    In::deserialize(&mut plain).map_err(|e| e.to_string())
                } else {
                    In::deserialize(&mut de).map_err(|e| e.to_string())
                };
                item.map(|item| catch_unwind(AssertUnwindSafe(|| call(item))))
            }
        };
        let r = match outcome {
            Ok(r) => r,
            Err(e) => {
                // Cannot go on decoding: this task and the rest fail.
                let k = *split.get_or_insert(i);
                out.patch(k_at, &k.to_le_bytes());
                let p = *plain_out.get_or_insert(k);
                out.patch(p_at, &p.to_le_bytes());
                let msg = format!("cannot decode the task argument: {e}");
                for _ in i..n {
                    push_result::<R>(out, Err(TaskFailure::BadArgument(msg.clone())));
                }
                return;
            }
        };
        if split.is_none() {
            if let Ok(v) = &r {
                if plain_out.is_none() {
                    if out.put_plain(v) {
                        continue;
                    }
                    plain_out = Some(i);
                    out.patch(p_at, &i.to_le_bytes());
                }
                if out.put(v).is_ok() {
                    continue;
                }
            }
            split = Some(i);
            out.patch(k_at, &i.to_le_bytes());
            if plain_out.is_none() {
                plain_out = Some(i);
                out.patch(p_at, &i.to_le_bytes());
            }
        }
        match &r {
            Ok(v) => push_result::<R>(out, Ok(v)),
            Err(p) => push_result::<R>(out, Err(TaskFailure::Panicked(panic_message(&**p)))),
        }
    }
}

/// What became of a task that ended [`plain_run`]: its argument's decode
/// error, or its call's outcome (a panic, or a value that is not plain).
type Outcome<R> = Result<std::thread::Result<R>, String>;

/// The common run of [`results_into`]: tasks `0..plain_in` while each one's
/// argument decodes from plain bytes, its call returns and its result is
/// plain, each result written plain into `out`. Returns the first task not
/// written, and what became of it if it was reached (`None`: every task
/// below `plain_in` was written).
///
/// It writes through a copy of `out`'s cursor that is only used by inlined
/// calls (see [`Out::grow`]), and reads through a copy of `plain`: for
/// scalar items both stay in registers across the task's call, where
/// `results_into`'s own cursor (passed to postcard) takes a store and a
/// reload per task.
fn plain_run<In: DeserializeOwned, R: Serialize>(
    out: &mut Out<'_>,
    plain: &mut super::plain::PlainDe<'_>,
    plain_in: u32,
    call: &mut impl FnMut(In) -> R,
) -> (u32, Option<Outcome<R>>) {
    let mut o = Out {
        buf: &mut *out.buf,
        pos: out.pos,
        keep: true,
    };
    let mut de = plain.clone();
    let mut i = 0;
    let mut left = None;
    while i < plain_in {
        let item = match In::deserialize(&mut de) {
            Ok(item) => item,
            Err(e) => {
                left = Some(Err(e.to_string()));
                break;
            }
        };
        match catch_unwind(AssertUnwindSafe(|| call(item))) {
            Ok(ref v) if o.put_plain(v) => i += 1,
            r => {
                left = Some(Ok(r));
                break;
            }
        }
    }
    out.pos = o.pos;
    *plain = de;
    (i, left)
}

/// Append one task's `Result` (an unserializable value becomes its error).
fn push_result<R: Serialize>(out: &mut Out<'_>, res: Result<&R, TaskFailure>) {
    if let Err(e) = out.put(&res) {
        let f: Result<(), TaskFailure> = Err(TaskFailure::Unserializable(format!(
            "cannot serialize the task's result: {e}"
        )));
        let _ = out.put(&f);
    }
}

/// Slack kept beyond the written bytes of an [`Out`], so that a varint (at
/// most 10 bytes) is written with fixed-size stores.
const SLACK: usize = 16;

/// Appends postcard values to a `Vec<u8>` without a per-value buffer.
///
/// The vector is kept longer than what was written (zeroed slack) and cut to
/// the written length when the `Out` is dropped: each byte is then a plain
/// store, where `Vec::push` would reload and store the length per byte and a
/// variable-length `extend_from_slice` costs a `memmove` call per varint (that
/// was a fifth of a `map`'s CPU).
pub(crate) struct Out<'a> {
    buf: &'a mut Vec<u8>,
    pos: usize,
    /// Leave `buf` as long as it is when dropped (see [`Out::keep`]).
    keep: bool,
}

impl<'a> Out<'a> {
    /// Write from `pos` on (`buf` is cut there when the `Out` is dropped):
    /// the bytes `buf` holds beyond `pos` are reused as slack, so a recycled
    /// buffer is not zeroed again.
    pub(crate) fn at(buf: &'a mut Vec<u8>, pos: usize) -> Out<'a> {
        if buf.len() < pos {
            buf.resize(pos, 0);
        }
        Out {
            buf,
            pos,
            keep: false,
        }
    }

    /// Done: the written length. `buf` is left as long as it is (the bytes
    /// beyond stay as the slack of its next use, not zeroed again): the
    /// caller records the length itself (the frames do in their header).
    pub(crate) fn keep(mut self) -> usize {
        self.keep = true;
        self.pos
    }

    /// Bytes written so far (including what `buf` held).
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Append raw bytes.
    pub(crate) fn bytes(&mut self, d: &[u8]) {
        self.extend(d);
    }

    /// Append `N` bytes (a plain scalar): one bounds check and a fixed-size
    /// store, inlined into the caller's loop.
    #[inline(always)]
    pub(crate) fn array<const N: usize>(&mut self, d: [u8; N]) {
        if self.buf.len() < self.pos + N.max(SLACK) {
            Self::grow(self.buf, self.pos, N);
        }
        self.buf[self.pos..self.pos + N].copy_from_slice(&d);
        self.pos += N;
    }

    /// Append `n` bytes to be written in place (their old contents are
    /// slack: anything); the caller fills the returned slice.
    pub(crate) fn space(&mut self, n: usize) -> &mut [u8] {
        if self.buf.len() < self.pos + n.max(SLACK) {
            Self::grow(self.buf, self.pos, n);
        }
        self.pos += n;
        &mut self.buf[self.pos - n..self.pos]
    }

    /// Forget what was written from `mark` on.
    pub(crate) fn rewind(&mut self, mark: usize) {
        self.pos = mark;
    }

    /// Overwrite already written bytes at `at`.
    pub(crate) fn patch(&mut self, at: usize, d: &[u8]) {
        self.buf[at..at + d.len()].copy_from_slice(d);
    }

    /// Append `v` (postcard); on error nothing is appended.
    pub(crate) fn put<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), WireError> {
        let mark = self.pos;
        let r = postcard::serialize_with_flavor(v, Cursor(self));
        if r.is_err() {
            self.pos = mark;
        }
        r.map_err(|e| crate::codec::wire::encode_error(v, e))
    }

    /// Make room for `need` bytes at `pos`, and the slack beyond.
    ///
    /// It takes the vector and the position, not `&mut self`: an `Out` whose
    /// other calls are all inlined then never has its address taken, so its
    /// position stays in a register across the opaque calls of a loop (a
    /// task's function) instead of a store and a reload per value.
    #[cold]
    fn grow(buf: &mut Vec<u8>, pos: usize, need: usize) {
        let want = (pos + need + SLACK).max(buf.len() * 2).max(4096);
        buf.resize(want, 0);
    }

    #[inline]
    fn extend(&mut self, d: &[u8]) {
        let n = d.len();
        if self.buf.len() < self.pos + n.max(SLACK) {
            Self::grow(self.buf, self.pos, n);
        }
        let w = &mut self.buf[self.pos..];
        // Fixed-size copies for the short slices (varints): no call.
        macro_rules! fixed {
            ($($k:literal)*) => {
                match n {
                    $($k => w[..$k].copy_from_slice(&d[..$k]),)*
                    _ => w[..n].copy_from_slice(d),
                }
            };
        }
        fixed!(1 2 3 4 5 6 7 8 9 10);
        self.pos += n;
    }
}

impl Drop for Out<'_> {
    fn drop(&mut self) {
        if !self.keep {
            self.buf.truncate(self.pos);
        }
    }
}

/// The postcard flavor behind [`Out::put`]: writes at `pos`, growing the
/// vector (zero-filled) to keep [`SLACK`] bytes beyond it.
struct Cursor<'x, 'a>(&'x mut Out<'a>);

impl postcard::ser_flavors::Flavor for Cursor<'_, '_> {
    type Output = ();
    #[inline]
    fn try_push(&mut self, b: u8) -> postcard::Result<()> {
        let o = &mut *self.0;
        if o.buf.len() <= o.pos {
            Out::grow(o.buf, o.pos, 1);
        }
        o.buf[o.pos] = b;
        o.pos += 1;
        Ok(())
    }
    #[inline]
    fn try_extend(&mut self, d: &[u8]) -> postcard::Result<()> {
        self.0.extend(d);
        Ok(())
    }
    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Trampoline for `fn(T) -> R`.
pub(crate) fn tramp1<T: DeserializeOwned, R: Serialize>(
    func: usize,
    data: &[u8],
    out: &mut Vec<u8>,
) {
    // SAFETY: `func` was produced by `func as usize` from an `fn(T) -> R` in the
    // parent (see `Pool::map_inner`), paired with this very instantiation of
    // the trampoline, and sent over the pool's private socketpair as its
    // offset in this executable (the worker runs the same file: a fork, or a
    // spawned child that checked the binary's identity at start), resolved
    // back by `recv`: the address is that function.
    let f: fn(T) -> R = unsafe { std::mem::transmute::<usize, fn(T) -> R>(func) };
    run_items(data, out, f)
}

/// A copy of the zero-sized function `F` (a function item or a closure that
/// captures nothing): the function is its type.
fn conjure<F: Copy>() -> F {
    const {
        assert!(
            std::mem::size_of::<F>() == 0,
            "starmap takes a function item or a closure that captures nothing"
        )
    };
    // SAFETY: `F` is zero-sized (checked at compile time just above), so a
    // read touches no memory and a dangling, aligned pointer is valid for it;
    // it is `Copy`, so duplicating it skips no destructor. Its only values
    // are the function (a function item or capture-less closure type has no
    // state), the same one the parent passed to `starmap`.
    unsafe { std::ptr::NonNull::<F>::dangling().as_ptr().read() }
}

/// Trampoline for `F: Fn(A) -> R` over 1-tuples (starmap).
pub(crate) fn star1<F, A, R>(_func: usize, data: &[u8], out: &mut Vec<u8>)
where
    F: Fn(A) -> R + Copy,
    A: DeserializeOwned,
    R: Serialize,
{
    let f = conjure::<F>();
    run_items(data, out, |(a,): (A,)| f(a))
}

/// Trampoline for `F: Fn(A, B) -> R` over pairs (starmap).
pub(crate) fn star2<F, A, B, R>(_func: usize, data: &[u8], out: &mut Vec<u8>)
where
    F: Fn(A, B) -> R + Copy,
    A: DeserializeOwned,
    B: DeserializeOwned,
    R: Serialize,
{
    let f = conjure::<F>();
    run_items(data, out, |(a, b): (A, B)| f(a, b))
}

/// Trampoline for `F: Fn(A, B, C) -> R` over triples (starmap).
pub(crate) fn star3<F, A, B, C, R>(_func: usize, data: &[u8], out: &mut Vec<u8>)
where
    F: Fn(A, B, C) -> R + Copy,
    A: DeserializeOwned,
    B: DeserializeOwned,
    C: DeserializeOwned,
    R: Serialize,
{
    let f = conjure::<F>();
    run_items(data, out, |(a, b, c): (A, B, C)| f(a, b, c))
}

/// Trampoline for `F: Fn(A, B, C, D) -> R` over 4-tuples (starmap).
pub(crate) fn star4<F, A, B, C, D, R>(_func: usize, data: &[u8], out: &mut Vec<u8>)
where
    F: Fn(A, B, C, D) -> R + Copy,
    A: DeserializeOwned,
    B: DeserializeOwned,
    C: DeserializeOwned,
    D: DeserializeOwned,
    R: Serialize,
{
    let f = conjure::<F>();
    run_items(data, out, |(a, b, c, d): (A, B, C, D)| f(a, b, c, d))
}

/// A unit as the worker receives it: the whole frame payload; the
/// arguments start at byte [`UNIT_DATA`].
pub(crate) struct UnitMsg {
    tramp: usize,
    func: usize,
    /// The payload is `frame[..len]` (the buffer may be longer: it is reused
    /// without being cut, so that its bytes are not zeroed again); or, when
    /// `slot` is set, the first `len` bytes of that input slot.
    frame: Vec<u8>,
    len: usize,
    slot: Option<usize>,
}

/// Offset of the arguments (`n:u32` onwards) in a unit frame's payload.
pub(crate) const UNIT_DATA: usize = 1 + 24;

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at + 8)
        .map(|s| u64::from_le_bytes(s.try_into().expect("8 bytes")))
}

/// Encode a unit frame (with its 4-byte header) into `buf` (overwritten; it
/// may stay longer than the frame, whose end its header gives):
/// at most `max` arguments taken from `items`, serialized in place (plain
/// bytes while they are plain, then postcard). Returns how many were taken.
/// `per_item` is a size hint (bytes per argument).
pub(crate) fn unit_frame<B: Serialize>(
    buf: &mut Vec<u8>,
    unit: UnitId,
    tramp: Tramp,
    func: usize,
    items: impl Iterator<Item = B>,
    max: usize,
    per_item: usize,
) -> Result<usize, WireError> {
    // A size hint, capped: a chunk of large items grows the buffer as it goes.
    let hint = max.saturating_mul(per_item).min(4 << 20);
    buf.reserve(4 + UNIT_DATA + 4 + SLACK + hint);
    let mut out = Out::at(buf, 0);
    unit_header(&mut out, unit, tramp, func);
    // The count and the plain count, patched below.
    out.bytes(&[0u8; 8]);
    let max = max.min(u32::MAX as usize) as u32;
    let mut items = items;
    // The arguments are plain bytes while they are (a loop of its own):
    // `first` is the first that is not, and the rest follow in postcard.
    let (mut n, first) = plain_items(&mut out, &mut items, max);
    let plain = first.is_some().then_some(n);
    if let Some(item) = first {
        out.put(&item)?;
        n += 1;
        for item in items.take((max - n) as usize) {
            out.put(&item)?;
            n += 1;
        }
    }
    out.patch(4 + UNIT_DATA, &n.to_le_bytes());
    out.patch(4 + UNIT_DATA + 4, &plain.unwrap_or(n).to_le_bytes());
    let len = (out.pos() - 4) as u32;
    out.patch(0, &len.to_le_bytes());
    // `buf` stays longer than the frame (its slack is reused without
    // zeroing): the header's length says where the frame ends (`Frame`).
    out.keep();
    Ok(n as usize)
}

/// Up to `max` items of `items` written plain into `out` (the common run
/// of [`unit_frame`]): how many were, and the item that stopped the run by
/// not being plain (taken from `items`, not written). As [`plain_run`], it
/// writes through a copy of the cursor that stays in a register.
fn plain_items<B: Serialize>(
    out: &mut Out<'_>,
    items: &mut impl Iterator<Item = B>,
    max: u32,
) -> (u32, Option<B>) {
    let mut o = Out {
        buf: &mut *out.buf,
        pos: out.pos,
        keep: true,
    };
    let mut n = 0;
    let mut first = None;
    while n < max {
        let Some(item) = items.next() else { break };
        if !o.put_plain(&item) {
            first = Some(item);
            break;
        }
        n += 1;
    }
    out.pos = o.pos;
    (n, first)
}

/// A unit frame's first bytes: the length (0, patched once known), the tag,
/// the unit, the trampoline's and the function's offsets. The trampoline's
/// data follow (`n:u32 p:u32` and the arguments).
pub(crate) fn unit_header(out: &mut Out<'_>, unit: UnitId, tramp: Tramp, func: usize) {
    out.bytes(&[0u8; 4]);
    out.bytes(&[TO_UNIT]);
    out.bytes(&unit.to_le_bytes());
    out.bytes(&fn_offset(tramp as usize).to_le_bytes());
    out.bytes(&fn_offset(func).to_le_bytes());
}

/// The stop sentinel frame.
pub(crate) fn stop_frame() -> Vec<u8> {
    vec![1, 0, 0, 0, TO_STOP]
}

/// Buffers a worker keeps between units (received frames and results).
type Spare = Rc<RefCell<Vec<Vec<u8>>>>;

/// How many spare buffers a worker keeps, and up to which size each.
const SPARE_BUFS: usize = 4;
const SPARE_BUF_MAX: usize = 8 << 20;

fn spare_take(s: &Spare) -> Vec<u8> {
    s.borrow_mut().pop().unwrap_or_default()
}

/// Keep `b` for reuse (its bytes stay: they serve as [`Out`]'s slack).
fn spare_give(s: &Spare, b: Vec<u8>) {
    let mut s = s.borrow_mut();
    if s.len() < SPARE_BUFS && b.capacity() <= SPARE_BUF_MAX {
        s.push(b);
    }
}

/// The worker's end of its socketpair.
struct SockIo {
    sock: UnixStream,
    spare: Spare,
    /// How long to poll the socket before a blocking read.
    spin: Duration,
    /// Whether to poll now (`None`: the pool does not spin).
    spare_cpu: Option<crate::sys::proc::SpareCpu>,
    /// Bytes read ahead: `stash[lo..hi]` are received and not consumed. A
    /// small unit frame (an `apply`) then arrives in one `read` with its
    /// header, and a prefetched second frame is often already here.
    stash: Box<[u8; STASH]>,
    lo: usize,
    hi: usize,
    /// This worker's slots, shared with the dispatcher (`None`: every frame
    /// crosses the socket).
    slots: Option<Arc<Slots>>,
}

/// Size of a worker's read-ahead buffer.
const STASH: usize = 4096;

impl SockIo {
    fn new(sock: UnixStream, spare: Spare, spin: Duration, slots: Option<Arc<Slots>>) -> SockIo {
        SockIo {
            sock,
            spare,
            spin,
            spare_cpu: (!spin.is_zero()).then(crate::sys::proc::SpareCpu::new),
            stash: Box::new([0; STASH]),
            lo: 0,
            hi: 0,
            slots,
        }
    }

    /// Read once more into the stash (blocking, after polling for up to
    /// `spin`: see [`PoolBuilder::idle_spin`](super::PoolBuilder::idle_spin));
    /// `false` at end of stream or on an error.
    fn fill(&mut self) -> bool {
        if self.lo > 0 {
            self.stash.copy_within(self.lo..self.hi, 0);
            self.hi -= self.lo;
            self.lo = 0;
        }
        if !self.spin.is_zero() && self.spare_cpu.as_ref().is_some_and(|g| g.now()) {
            use crate::sys::io::{recv_nonblocking, Received};
            let start = std::time::Instant::now();
            loop {
                match recv_nonblocking(self.sock.as_fd(), &mut self.stash[self.hi..]) {
                    Received::Bytes(0) | Received::Failed => return false,
                    Received::Bytes(n) => {
                        self.hi += n;
                        return true;
                    }
                    Received::WouldBlock => {}
                }
                if start.elapsed() >= self.spin {
                    break;
                }
                std::hint::spin_loop();
            }
        }
        loop {
            match self.sock.read(&mut self.stash[self.hi..]) {
                Ok(0) => return false,
                Ok(n) => {
                    self.hi += n;
                    return true;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return false,
            }
        }
    }

    /// One frame's payload into a spare buffer, and its length (the buffer
    /// may be longer); `None` at end of stream, on an error or an oversized
    /// frame.
    fn read_frame(&mut self) -> Option<(Vec<u8>, usize)> {
        while self.hi - self.lo < 4 {
            if !self.fill() {
                return None;
            }
        }
        let h: [u8; 4] = self.stash[self.lo..self.lo + 4]
            .try_into()
            .expect("4 bytes");
        self.lo += 4;
        let len = u32::from_le_bytes(h) as usize;
        if len > FRAME_LIMIT {
            return None;
        }
        let mut f = spare_take(&self.spare);
        // A reused buffer keeps its length: only its growth is zeroed, once.
        if f.len() < len {
            f.resize(len, 0);
        }
        let have = len.min(self.hi - self.lo);
        f[..have].copy_from_slice(&self.stash[self.lo..self.lo + have]);
        self.lo += have;
        if have < len && self.sock.read_exact(&mut f[have..len]).is_err() {
            return None;
        }
        Some((f, len))
    }
}

impl WorkerIo for SockIo {
    type Payload = UnitMsg;
    type Results = Vec<u8>;

    fn recv(&mut self) -> Option<ToWorker<UnitMsg>> {
        let (f, len) = self.read_frame()?;
        match *f[..len].first()? {
            TO_STOP => Some(ToWorker::Stop),
            TO_UNIT => {
                let unit = u64_at(&f[..len], 1)?;
                let tramp = fn_at(u64_at(&f[..len], 9)? as i64);
                let func = fn_at(u64_at(&f[..len], 17)? as i64);
                Some(ToWorker::Unit {
                    unit,
                    slot: None,
                    payload: UnitMsg {
                        tramp,
                        func,
                        frame: f,
                        len,
                        slot: None,
                    },
                })
            }
            TO_SLOT => {
                let (slot, n) = parse_slot_note(&f[..len])?;
                spare_give(&self.spare, f);
                // SAFETY: the dispatcher wrote this unit's frame into input
                // slot `slot` before it sent the note just received, and
                // writes that slot again only after this worker answers the
                // unit (slot protocol, rule 8): no write while `b` lives (it
                // is dropped below; the unit reads the slot again, in
                // `run_worker`, before its answer).
                let b = unsafe { self.slots.as_ref()?.read(Side::Input, slot, n)? };
                if b.first() != Some(&TO_UNIT) {
                    return None;
                }
                let unit = u64_at(b, 1)?;
                let tramp = fn_at(u64_at(b, 9)? as i64);
                let func = fn_at(u64_at(b, 17)? as i64);
                Some(ToWorker::Unit {
                    unit,
                    slot: Some(slot),
                    payload: UnitMsg {
                        tramp,
                        func,
                        frame: Vec::new(),
                        len: n,
                        slot: Some(slot),
                    },
                })
            }
            _ => None,
        }
    }

    fn send(&mut self, m: FromWorker<Vec<u8>>) -> bool {
        let mut p = Vec::new();
        match m {
            FromWorker::Ready => p.push(FROM_READY),
            FromWorker::InitFailed(msg) => {
                p.push(FROM_INIT_FAILED);
                p.extend_from_slice(msg.as_bytes());
            }
            FromWorker::Started { unit } => {
                // Once per unit: one write from the stack, no allocation.
                let mut f = [0u8; 4 + 1 + 8];
                f[..4].copy_from_slice(&9u32.to_le_bytes());
                f[4] = FROM_STARTED;
                f[5..].copy_from_slice(&unit.to_le_bytes());
                return std::io::Write::write_all(&mut self.sock, &f).is_ok();
            }
            FromWorker::Done {
                unit,
                slot,
                mut results,
            } => {
                // The trampoline left DONE_HEADER bytes in front, the
                // frame's length first (the buffer may be longer: slack).
                let end = match results.get(..4) {
                    Some(h) => 4 + u32::from_le_bytes(h.try_into().expect("4 bytes")) as usize,
                    None => return false,
                };
                if end < DONE_HEADER || end > results.len() {
                    return false;
                }
                results[4] = FROM_DONE;
                results[5..DONE_HEADER].copy_from_slice(&unit.to_le_bytes());
                let body = &results[4..end];
                let in_slot = match (slot, &self.slots) {
                    (Some(s), Some(sl)) if body.len() >= SLOT_MIN => {
                        // SAFETY: `s` is the unit's own slot (`worker_main`
                        // answers in it, never another), and the dispatcher
                        // reads output slot `s` only while it handles the
                        // note sent below, and the previous answer in it
                        // before it sent this unit (slot protocol, rule 8):
                        // nobody reads it now.
                        unsafe { sl.write(Side::Output, s, body) }.then_some(s)
                    }
                    _ => None,
                };
                let ok = match in_slot {
                    Some(s) => {
                        let note = slot_note(FROM_SLOT, s, body.len());
                        std::io::Write::write_all(&mut self.sock, &note).is_ok()
                    }
                    None => std::io::Write::write_all(&mut self.sock, &results[..end]).is_ok(),
                };
                spare_give(&self.spare, results);
                return ok;
            }
        }
        wire::write_frame_bytes(&mut self.sock, &p).is_ok()
    }
}

/// The initializer as the worker runs it (the initargs are cloned in the child).
pub(crate) type InitFn = std::sync::Arc<dyn Fn() + Send + Sync>;

/// An initializer whose arguments can cross an exec (given by
/// `PoolBuilder::spawn_initializer`): what a spawned or forkserver worker
/// receives instead of the closure.
pub(crate) trait SpawnInit: Send + Sync {
    /// Encodes the initargs.
    fn export(&self, ex: &mut Exporter) -> Result<(), SpawnError>;
    /// (trampoline offset, function offset): see [`init_tramp`].
    fn offsets(&self) -> (i64, i64);
}

/// `f(args)`, the initializer and its arguments.
pub(crate) struct InitCall<A> {
    pub(crate) f: fn(A),
    pub(crate) args: A,
}

impl<A: SpawnArgs + Sync> SpawnInit for InitCall<A> {
    fn export(&self, ex: &mut Exporter) -> Result<(), SpawnError> {
        self.args.export_all(ex)
    }
    fn offsets(&self) -> (i64, i64) {
        let t: InitTramp = init_tramp::<A>;
        (fn_offset(t as usize), fn_offset(self.f as usize))
    }
}

/// The initializer as a spawned worker runs it (once).
pub(crate) type InitOnce = Box<dyn FnOnce() + Send>;

/// Decodes an initializer's arguments and pairs them with the function at
/// address `f` (a `fn(A)`).
type InitTramp = fn(&mut Importer, usize) -> Result<InitOnce, SpawnError>;

fn init_tramp<A: SpawnArgs>(im: &mut Importer, f: usize) -> Result<InitOnce, SpawnError> {
    let args = A::import_all(im)?;
    // SAFETY: `f` is the address of a `fn(A)` of this binary: the parent took
    // its offset from a `fn(A)` paired with this very `init_tramp::<A>`
    // (`InitCall::offsets`); the child runs the parent's executable (checked
    // by the spawn machinery at start) and `checked_fn_at` found the address
    // in its code.
    let f = unsafe { std::mem::transmute::<usize, fn(A)>(f) };
    Ok(Box::new(move || f(args)))
}

/// Exports an optional initializer: its function and trampoline offsets, then
/// its arguments (last: [`take_init`] decodes them with the initializer's own
/// trampoline). Also used by the manager's server (its initializer).
pub(crate) fn put_init(ex: &mut Exporter, init: Option<&dyn SpawnInit>) -> Result<(), SpawnError> {
    match init {
        None => ex.put(&None::<(i64, i64)>),
        Some(i) => {
            ex.put(&Some(i.offsets()))?;
            i.export(ex)
        }
    }
}

/// Imports what [`put_init`] exported.
pub(crate) fn take_init(im: &mut Importer) -> Result<Option<InitOnce>, SpawnError> {
    match im.take::<Option<(i64, i64)>>()? {
        None => Ok(None),
        Some((t, f)) => {
            let t = checked_fn_at(t)?;
            let f = checked_fn_at(f)?;
            // SAFETY: `t` is the address of an `init_tramp::<A>` of this
            // binary: the parent took its offset from one
            // (`InitCall::offsets`), this process runs the same file and
            // the address lies in its code.
            let t = unsafe { std::mem::transmute::<usize, InitTramp>(t) };
            Ok(Some(t(im, f)?))
        }
    }
}

/// The one argument of a spawned (or forkserver) worker: its end of the
/// socketpair (a descriptor), the owner's pid, whether its parent is the fork
/// server, and the initializer with its arguments (last: they are decoded by
/// the initializer's own trampoline).
pub(crate) enum SpawnedWorker {
    /// The parent's side (exported).
    Out {
        sock: OwnedFd,
        owner: crate::sys::proc::RawPid,
        served: bool,
        spin: Duration,
        slots: Option<Arc<Slots>>,
        init: Option<std::sync::Arc<dyn SpawnInit>>,
    },
    /// The worker's side (imported).
    In {
        sock: OwnedFd,
        owner: crate::sys::proc::RawPid,
        served: bool,
        spin: Duration,
        slots: Option<Arc<Slots>>,
        init: Option<InitOnce>,
    },
}

impl SpawnArg for SpawnedWorker {
    fn export(&self, ex: &mut Exporter) -> Result<(), SpawnError> {
        let SpawnedWorker::Out {
            sock,
            owner,
            served,
            spin,
            slots,
            init,
        } = self
        else {
            return Err(SpawnError::BadRequest("a worker's own arguments exported"));
        };
        ex.fd(sock.as_fd())?;
        // The slots' shape, then their memfd (when they have one).
        let slots = slots
            .as_ref()
            .and_then(|s| s.fd().map(|fd| (fd, (s.depth(), s.size()))));
        ex.put(&(*owner, *served, *spin, slots.map(|s| s.1)))?;
        if let Some((fd, _)) = slots {
            ex.fd(fd)?;
        }
        put_init(ex, init.as_deref())
    }
    fn import(im: &mut Importer) -> Result<Self, SpawnError> {
        let sock = im.take_fd()?;
        let (owner, served, spin, shape): (_, _, _, Option<(usize, usize)>) = im.take()?;
        let slots = match shape {
            Some((depth, size)) => Some(Arc::new(Slots::attach(im.take_fd()?, depth, size)?)),
            None => None,
        };
        let init = take_init(im)?;
        Ok(SpawnedWorker::In {
            sock,
            owner,
            served,
            spin,
            slots,
            init,
        })
    }
}

/// The target of a spawned (or forkserver) worker.
pub(crate) fn spawned_main((w,): (SpawnedWorker,)) {
    if let SpawnedWorker::In {
        sock,
        owner,
        served,
        spin,
        slots,
        init,
    } = w
    {
        let init = init.map(|f| f as Box<dyn FnOnce()>);
        run_worker(UnixStream::from(sock), init, owner, served, spin, slots);
    }
}

/// Ends this worker when its owner (the process that made the pool, whose
/// pid is `owner`) dies, by any death, `kill -9` included.
///
/// The end of file on the worker's socket is not enough: another child that
/// the owner forked after the pool holds copies of the pool's end of the
/// socketpairs, and then no end of file ever comes. So the worker watches its
/// owner itself, as the manager's server does: a pidfd, readable once the
/// owner exited, waited on by one of procshare's helper threads (blocked in
/// `poll` without a timeout: nothing is spent while the owner lives). Without
/// pidfds (Linux before 5.3) the thread checks `getppid` every 200 ms.
///
/// A forkserver worker (`served`) is the fork server's child, not the
/// owner's: it watches the owner through a pidfd all the same (an owner that
/// is already gone has no pidfd: the worker ends), and without pidfds it
/// watches its parent, the server, which exits when the owner dies.
///
/// The worker then ends at once with `_exit` (code 0, as the manager's
/// server does): a task still running is abandoned, as it would be by a
/// `kill -9`; nobody is left to take its result.
fn watch_owner(owner: crate::sys::proc::RawPid, served: bool) {
    use std::os::fd::AsFd;
    // The pidfd first, then the parent check: an owner that died before the
    // pidfd was opened is seen by `getppid` (this process was reparented), one
    // that dies afterwards by the pidfd.
    let pidfd = crate::sys::proc::pidfd_open(owner);
    // Without a pidfd, a change of this parent means the owner is gone.
    let parent = if served {
        crate::sys::proc::getppid()
    } else {
        owner
    };
    if !served && crate::sys::proc::getppid() != owner {
        crate::sys::proc::exit(0);
    }
    if served && pidfd.is_none() && !crate::sys::proc::process_exists(owner) {
        crate::sys::proc::exit(0);
    }
    let watch = move || loop {
        match &pidfd {
            Some(fd) => {
                if matches!(crate::sys::io::readable(fd.as_fd(), None), Ok(true)) {
                    crate::sys::proc::exit(0);
                }
            }
            None => {
                std::thread::sleep(std::time::Duration::from_millis(200));
                if crate::sys::proc::getppid() != parent {
                    crate::sys::proc::exit(0);
                }
            }
        }
    };
    // A helper thread: not counted by the fork warning if a task forks.
    if crate::sys::thread::spawn_helper("procshare-owner".into(), watch).is_err() {
        // Without the watcher the worker still ends at the end of file of
        // its socket (the common case); say so rather than fail the worker.
        crate::sys::write_stderr_raw(
            b"procshare: a pool worker cannot watch its owner (thread spawn failed)\n",
        );
    }
}

/// The body of a forked worker: never returns into pool code (the `Process`
/// closure returns and the child `_exit`s). `owner` is the pid of the
/// process that made the pool (see [`watch_owner`]).
pub(crate) fn child_main(
    fd: RawFd,
    close: &[RawFd],
    init: Option<InitFn>,
    owner: crate::sys::proc::RawPid,
    spin: Duration,
    slots: Option<Arc<Slots>>,
) {
    // The child's copies of the parent's pool descriptors (other workers'
    // sockets, pidfds, the wake-up eventfd): the child never uses them and the
    // parent's copies are unaffected.
    crate::sys::io::close_inherited(close);
    // SAFETY: `fd` is this worker's end of its socketpair, inherited by fork and
    // owned by nothing else in the child.
    let sock = unsafe { UnixStream::from_raw_fd(fd) };
    let init = init.map(|f| Box::new(move || f()) as Box<dyn FnOnce()>);
    run_worker(sock, init, owner, false, spin, slots);
}

/// A worker (forked or spawned) on its socket, which it polls for up to
/// `spin` when idle before it sleeps, and its slots (if any).
fn run_worker(
    sock: UnixStream,
    init: Option<Box<dyn FnOnce()>>,
    owner: crate::sys::proc::RawPid,
    served: bool,
    spin: Duration,
    slots: Option<Arc<Slots>>,
) {
    watch_owner(owner, served);
    // Task panics are reported to the parent with their message; do not also
    // print them in the worker (see `process::install_panic_hook` for why this
    // is a mode and not a `set_hook`). A forked worker inherited the hook;
    // a spawned one installs its own.
    crate::process::install_panic_hook();
    crate::process::set_panic_mode(crate::process::PANIC_SILENT);
    let _ = sock.set_nonblocking(false);
    let spare: Spare = Rc::default();
    let mut io = SockIo::new(sock, spare.clone(), spin, slots.clone());
    worker_main::<_, 0>(
        &mut io,
        move || match init {
            None => Ok(()),
            Some(f) => catch_unwind(AssertUnwindSafe(f)).map_err(|p| panic_message(&*p)),
        },
        |_unit, m: UnitMsg| {
            // SAFETY: `m.tramp` is the address of a `Tramp` of this binary
            // (see `unit_frame`'s caller), sent by the parent over the pool's
            // private socketpair as an offset and resolved in this process
            // (which runs the parent's executable: see `tramp1`).
            let t: Tramp = unsafe { std::mem::transmute::<usize, Tramp>(m.tramp) };
            // Room for the Done frame's header, filled in by `send` (no copy).
            let mut out = spare_take(&spare);
            let data = match (m.slot, &slots) {
                // SAFETY: as in `SockIo::recv`: the unit's input slot is not
                // written until this worker answers the unit, after `t`
                // returns (slot protocol, rule 8). The arguments are decoded
                // in place.
                (Some(s), Some(sl)) => unsafe { sl.read(Side::Input, s, m.len) },
                _ => m.frame.get(..m.len),
            };
            t(
                m.func,
                data.and_then(|d| d.get(UNIT_DATA..)).unwrap_or(&[]),
                &mut out,
            );
            spare_give(&spare, m.frame);
            out
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A worker's blocking read interrupted by a signal (a handler without
    /// `SA_RESTART`, as a program's initializer may install) reads on: the
    /// bytes sent after the signal arrive, not an end of stream.
    #[test]
    fn a_read_interrupted_by_a_signal_goes_on() {
        let (mut tx, rx) = UnixStream::pair().unwrap();
        let (id_tx, id_rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            id_tx.send(crate::sys::interrupt::tid()).unwrap();
            let mut io = SockIo::new(rx, Spare::default(), Duration::ZERO, None);
            let ok = io.fill();
            (ok, io.stash[io.lo..io.hi].to_vec())
        });
        crate::sys::interrupt::interrupt_read(id_rx.recv().unwrap());
        tx.write_all(b"abc").unwrap();
        assert_eq!(t.join().unwrap(), (true, b"abc".to_vec()));
    }

    /// A unit frame of `n` payload bytes (tag onwards) whose tramp and func
    /// are `tramp1::<u64, u64>`'s and an anchor's (any function of this
    /// binary: `recv` only resolves them).
    fn unit_payload(unit: UnitId, n: usize) -> Vec<u8> {
        let mut buf = Vec::new();
        let mut o = Out::at(&mut buf, 0);
        unit_header(
            &mut o,
            unit,
            tramp1::<u64, u64> as Tramp,
            stop_frame as *const () as usize,
        );
        o.keep();
        buf.resize(4 + n, 0xAB);
        buf.split_off(4)
    }

    fn read_all(sock: &mut UnixStream, n: usize) -> Vec<u8> {
        let mut b = vec![0; n];
        sock.read_exact(&mut b).unwrap();
        b
    }

    /// A unit announced by a slot note is read from that input slot, in
    /// place; its answer, large, goes into the output slot of the same index
    /// with a note; a small answer, or one to a unit that came inline, goes
    /// on the socket.
    #[test]
    fn a_unit_in_a_slot_is_read_there_and_answered_in_the_same_slot() {
        let (mut tx, rx) = UnixStream::pair().unwrap();
        // A frame that never comes fails the test instead of hanging it.
        tx.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let slots = Arc::new(Slots::create(2, 64 << 10).unwrap());
        let mut io = SockIo::new(rx, Spare::default(), Duration::ZERO, Some(slots.clone()));
        let unit = unit_payload(77, 40_000);
        // SAFETY: one thread; the worker reads the slot after the note.
        assert!(unsafe { slots.write(Side::Input, 1, &unit) });
        tx.write_all(&slot_note(TO_SLOT, 1, unit.len())).unwrap();
        // The next message, which must be a unit: its id, slot and payload.
        let unit_of = |m: Option<ToWorker<UnitMsg>>| match m {
            Some(ToWorker::Unit {
                unit,
                slot,
                payload,
            }) => (unit, slot, payload),
            _ => panic!("a unit"),
        };
        let (u, slot, payload) = unit_of(io.recv());
        assert_eq!(
            (u, slot, payload.slot, payload.len),
            (77, Some(1), Some(1), 40_000)
        );
        assert_eq!(payload.tramp, tramp1::<u64, u64> as *const () as usize);
        // A unit inline, on the socket: no slot.
        let inline = unit_payload(78, 100);
        let mut frame = (inline.len() as u32).to_le_bytes().to_vec();
        frame.extend_from_slice(&inline);
        tx.write_all(&frame).unwrap();
        let (u, slot, payload) = unit_of(io.recv());
        assert_eq!((u, slot, payload.slot, payload.len), (78, None, None, 100));
        assert_eq!(&payload.frame[..100], &inline[..]);
        // A large answer: in output slot 1, a note on the socket.
        let mut done = vec![0u8; DONE_HEADER + 20_000];
        done[..4].copy_from_slice(&((DONE_HEADER - 4 + 20_000) as u32).to_le_bytes());
        done[DONE_HEADER..].fill(0xCD);
        assert!(io.send(FromWorker::Done {
            unit: 77,
            slot: Some(1),
            results: done.clone()
        }));
        let note = read_all(&mut tx, 13);
        assert_eq!(note, slot_note(FROM_SLOT, 1, 9 + 20_000));
        // SAFETY: as above.
        let body = unsafe { slots.read(Side::Output, 1, 9 + 20_000) }.unwrap();
        assert_eq!(body[0], FROM_DONE);
        assert_eq!(&body[1..9], &77u64.to_le_bytes());
        assert!(body[9..].iter().all(|&b| b == 0xCD));
        // The same answer to a unit that came inline: on the socket.
        assert!(io.send(FromWorker::Done {
            unit: 78,
            slot: None,
            results: done.clone()
        }));
        let f = read_all(&mut tx, DONE_HEADER + 20_000);
        assert_eq!(
            (&f[4..5], &f[5..13]),
            (&[FROM_DONE][..], &78u64.to_le_bytes()[..])
        );
        // A small answer in a slotted unit: on the socket.
        let mut small = vec![0u8; DONE_HEADER + 3];
        small[..4].copy_from_slice(&(DONE_HEADER as u32 - 1).to_le_bytes());
        assert!(io.send(FromWorker::Done {
            unit: 79,
            slot: Some(0),
            results: small
        }));
        let f = read_all(&mut tx, DONE_HEADER + 3);
        assert_eq!(f[4], FROM_DONE);
    }

    /// Bad slot notes end the worker's reading (`None`: it exits, as on any
    /// corrupt frame), never a panic or a read out of bounds: no such slot,
    /// a length above the slot's size, a slot that does not hold a unit, a
    /// note to a worker without slots, a note of the wrong length.
    #[test]
    fn bad_slot_notes_are_refused() {
        let slots = Arc::new(Slots::create(2, 64 << 10).unwrap());
        // SAFETY: one thread.
        assert!(unsafe { slots.write(Side::Input, 0, &[TO_STOP; 40]) });
        // SAFETY: as above.
        assert!(unsafe { slots.write(Side::Input, 1, &unit_payload(5, 40)) });
        let mut bad_len = slot_note(TO_SLOT, 0, 30).to_vec();
        bad_len[0] = 10;
        bad_len.push(0);
        for (note, with_slots) in [
            (slot_note(TO_SLOT, 2, 100).to_vec(), true),
            (slot_note(TO_SLOT, 0, (64 << 10) + 1).to_vec(), true),
            (slot_note(TO_SLOT, 0, 40).to_vec(), true),
            (slot_note(TO_SLOT, 1, 20).to_vec(), true),
            (slot_note(TO_SLOT, 0, 40).to_vec(), false),
            (bad_len, true),
        ] {
            let (mut tx, rx) = UnixStream::pair().unwrap();
            let mut io = SockIo::new(
                rx,
                Spare::default(),
                Duration::ZERO,
                with_slots.then(|| slots.clone()),
            );
            tx.write_all(&note).unwrap();
            // The end of stream after it: a note taken for a frame's start
            // ends the read instead of waiting for more.
            drop(tx);
            assert!(io.recv().is_none(), "{note:?} {with_slots}");
        }
    }

    /// A frame whose header arrives in two parts, read with and without the
    /// idle poll: the polled read appends to what the stash already holds.
    #[test]
    fn a_frame_split_across_reads_is_whole_with_or_without_the_idle_poll() {
        for spin in [Duration::ZERO, Duration::from_millis(1)] {
            let (mut tx, rx) = UnixStream::pair().unwrap();
            let mut io = SockIo::new(rx, Spare::default(), spin, None);
            let payload: Vec<u8> = (0..100u8).collect();
            let mut frame = (payload.len() as u32).to_le_bytes().to_vec();
            frame.extend_from_slice(&payload);
            tx.write_all(&frame[..2]).unwrap();
            assert!(io.fill(), "{spin:?}");
            assert_eq!(io.hi - io.lo, 2, "{spin:?}");
            tx.write_all(&frame[2..]).unwrap();
            // The end of stream after it: a miscounted read fails (rather
            // than waits for bytes that never come).
            drop(tx);
            let (f, len) = io.read_frame().expect("a whole frame");
            assert_eq!(&f[..len], &payload[..], "{spin:?}");
            // The end of stream ends the next read, polled or not.
            assert!(io.read_frame().is_none(), "{spin:?}");
        }
    }
}
