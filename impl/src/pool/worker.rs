//! The worker's side: frame formats, the task trampolines, and the child's main.
//!
//! # Frames (each a [`crate::wire`] frame: 4-byte length, then the payload)
//!
//! ```text
//! to a worker   [1] unit:u64 tramp:u64 func:u64 data...   run a unit
//!               [2]                                       the stop sentinel
//! from a worker [1]                                       Ready
//!               [2] message (UTF-8)                        InitFailed
//!               [3] unit:u64                               Started
//!               [4] unit:u64 results...                    Done
//! ```
//!
//! Integers are little-endian. `data` is the postcard encoding of the unit's
//! argument list (`[T]`); `results` is one status byte — `2`: every task
//! succeeded, the postcard `[R]` follows; `0`: one postcard
//! `Result<R, TaskFailure>` per argument, in order; `1`: the whole unit failed
//! (UTF-8 message follows). `tramp` and `func` are addresses of functions of
//! this very binary (a forked worker has the parent's address space layout).

use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::panic::{catch_unwind, AssertUnwindSafe};

use procshare_model::pool::{worker_main, FromWorker, ToWorker, UnitId, WorkerIo};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::wire;

/// Frames larger than this are refused (a hostile or broken peer cannot make us allocate more).
pub(crate) const FRAME_LIMIT: usize = wire::DEFAULT_LIMIT;

pub(crate) const TO_UNIT: u8 = 1;
pub(crate) const TO_STOP: u8 = 2;
pub(crate) const FROM_READY: u8 = 1;
pub(crate) const FROM_INIT_FAILED: u8 = 2;
pub(crate) const FROM_STARTED: u8 = 3;
pub(crate) const FROM_DONE: u8 = 4;

/// Bytes reserved in front of a trampoline's output for the `Done` frame's
/// header (length, tag, unit id).
pub(crate) const DONE_HEADER: usize = 4 + 1 + 8;

/// A trampoline: decodes a unit's arguments, calls the task function at
/// address `func` on each, encodes the results after [`DONE_HEADER`]
/// reserved bytes.
pub(crate) type Tramp = fn(usize, &[u8]) -> Vec<u8>;

/// Why one task produced no value (crosses the socket inside a `Done` frame).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub(crate) enum TaskFailure {
    /// The task panicked with this message.
    Panicked(String),
    /// Its result could not be serialized.
    Unserializable(String),
}

/// The panic message of a caught panic payload.
pub(crate) fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}

/// Run `call` on every argument of `data` (a postcard `[In]`) and encode the
/// results as a `Done` body. A panic becomes [`TaskFailure::Panicked`] and a
/// result that fails to serialize [`TaskFailure::Unserializable`], for that
/// task alone.
fn run_items<In: DeserializeOwned, R: Serialize>(
    data: &[u8],
    mut call: impl FnMut(In) -> R,
) -> Vec<u8> {
    let items: Vec<In> = match wire::decode(data) {
        Ok(v) => v,
        Err(e) => {
            let mut out = vec![0u8; DONE_HEADER];
            out.push(1u8);
            out.extend_from_slice(format!("cannot decode the task arguments: {e}").as_bytes());
            return out;
        }
    };
    // Room for the Done frame's header, filled in by the sender (no copy).
    let mut out =
        Vec::with_capacity(DONE_HEADER + 1 + items.len() * (2 + std::mem::size_of::<R>()));
    out.resize(DONE_HEADER, 0);
    // Fast path: while no task panics, keep the values and send them as one
    // sequence (status 2); the first panic switches to one `Result` per task
    // (status 0) for the whole unit.
    let mut vals: Vec<R> = Vec::with_capacity(items.len());
    let mut per_task = false;
    for item in items {
        let r = catch_unwind(AssertUnwindSafe(|| call(item)));
        match r {
            Ok(v) if !per_task => vals.push(v),
            r => {
                if !per_task {
                    per_task = true;
                    out.push(0u8);
                    for v in vals.drain(..) {
                        push_result::<R>(&mut out, Ok(&v));
                    }
                }
                match &r {
                    Ok(v) => push_result::<R>(&mut out, Ok(v)),
                    Err(p) => {
                        push_result::<R>(&mut out, Err(TaskFailure::Panicked(panic_message(&**p))))
                    }
                }
            }
        }
    }
    if !per_task {
        out.push(2u8);
        if postcard::serialize_with_flavor(&vals, Append(&mut out)).is_err() {
            // Some value does not serialize: say which, one by one.
            out.truncate(DONE_HEADER);
            out.push(0u8);
            for v in &vals {
                push_result::<R>(&mut out, Ok(v));
            }
        }
    }
    out
}

/// Append one task's `Result` (an unserializable value becomes its error).
fn push_result<R: Serialize>(out: &mut Vec<u8>, res: Result<&R, TaskFailure>) {
    let mark = out.len();
    if let Err(e) = postcard::serialize_with_flavor(&res, Append(out)) {
        out.truncate(mark);
        let f: Result<(), TaskFailure> = Err(TaskFailure::Unserializable(format!(
            "cannot serialize the task's result: {e}"
        )));
        let _ = postcard::serialize_with_flavor(&f, Append(out));
    }
}

/// A postcard output that appends to a borrowed `Vec` (no per-value buffer).
pub(crate) struct Append<'a>(pub(crate) &'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for Append<'_> {
    type Output = ();
    fn try_push(&mut self, b: u8) -> postcard::Result<()> {
        self.0.push(b);
        Ok(())
    }
    fn try_extend(&mut self, d: &[u8]) -> postcard::Result<()> {
        // Varints are 1-10 bytes: `extend` over a trusted-length iterator
        // reserves once and copies in a loop, without a `memmove` call.
        self.0.extend(d.iter().copied());
        Ok(())
    }
    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Trampoline for `fn(T) -> R`.
pub(crate) fn tramp1<T: DeserializeOwned, R: Serialize>(func: usize, data: &[u8]) -> Vec<u8> {
    // SAFETY: `func` was produced by `func as usize` from an `fn(T) -> R` in the
    // parent (see `Pool::submit_units`), paired with this very instantiation of
    // the trampoline, and sent over the pool's private socketpair; a forked
    // worker has the parent's address space, so the address is that function.
    let f: fn(T) -> R = unsafe { std::mem::transmute::<usize, fn(T) -> R>(func) };
    run_items(data, f)
}

/// Trampoline for `fn(A, B) -> R` (starmap).
pub(crate) fn tramp2<A: DeserializeOwned, B: DeserializeOwned, R: Serialize>(
    func: usize,
    data: &[u8],
) -> Vec<u8> {
    // SAFETY: as in `tramp1`, for an `fn(A, B) -> R`.
    let f: fn(A, B) -> R = unsafe { std::mem::transmute::<usize, fn(A, B) -> R>(func) };
    run_items(data, |(a, b): (A, B)| f(a, b))
}

/// A unit as the worker receives it: the whole frame payload; the
/// arguments start at byte [`UNIT_DATA`].
pub(crate) struct UnitMsg {
    tramp: usize,
    func: usize,
    frame: Vec<u8>,
}

/// Offset of the arguments in a unit frame's payload.
const UNIT_DATA: usize = 1 + 24;

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at + 8)
        .map(|s| u64::from_le_bytes(s.try_into().expect("8 bytes")))
}

/// Encode a unit frame (with its 4-byte header), the arguments serialized in place.
pub(crate) fn unit_frame<T: Serialize>(
    unit: UnitId,
    tramp: Tramp,
    func: usize,
    args: &[T],
) -> Result<Vec<u8>, postcard::Error> {
    let mut f = Vec::with_capacity(4 + UNIT_DATA + 8 + args.len() * (1 + std::mem::size_of::<T>()));
    f.extend_from_slice(&[0u8; 4]);
    f.push(TO_UNIT);
    f.extend_from_slice(&unit.to_le_bytes());
    f.extend_from_slice(&(tramp as usize as u64).to_le_bytes());
    f.extend_from_slice(&(func as u64).to_le_bytes());
    postcard::serialize_with_flavor(args, Append(&mut f))?;
    let len = (f.len() - 4) as u32;
    f[..4].copy_from_slice(&len.to_le_bytes());
    Ok(f)
}

/// The stop sentinel frame.
pub(crate) fn stop_frame() -> Vec<u8> {
    vec![1, 0, 0, 0, TO_STOP]
}

/// The worker's end of its socketpair.
struct SockIo {
    sock: UnixStream,
}

impl WorkerIo for SockIo {
    type Payload = UnitMsg;
    type Results = Vec<u8>;

    fn recv(&mut self) -> Option<ToWorker<UnitMsg>> {
        let f = wire::read_frame_bytes(&mut self.sock, FRAME_LIMIT).ok()?;
        match *f.first()? {
            TO_STOP => Some(ToWorker::Stop),
            TO_UNIT => {
                let unit = u64_at(&f, 1)?;
                let tramp = u64_at(&f, 9)? as usize;
                let func = u64_at(&f, 17)? as usize;
                Some(ToWorker::Unit {
                    unit,
                    payload: UnitMsg {
                        tramp,
                        func,
                        frame: f,
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
                p.push(FROM_STARTED);
                p.extend_from_slice(&unit.to_le_bytes());
            }
            FromWorker::Done { unit, mut results } => {
                // The trampoline left DONE_HEADER bytes in front.
                if results.len() < DONE_HEADER {
                    return false;
                }
                let len = (results.len() - 4) as u32;
                results[..4].copy_from_slice(&len.to_le_bytes());
                results[4] = FROM_DONE;
                results[5..DONE_HEADER].copy_from_slice(&unit.to_le_bytes());
                return std::io::Write::write_all(&mut self.sock, &results).is_ok();
            }
        }
        wire::write_frame_bytes(&mut self.sock, &p).is_ok()
    }
}

/// The initializer as the worker runs it (the initargs are cloned in the child).
pub(crate) type InitFn = std::sync::Arc<dyn Fn() + Send + Sync>;

/// The body of a forked worker: never returns into pool code (the `Process`
/// closure returns and the child `_exit`s).
pub(crate) fn child_main(fd: RawFd, close: &[RawFd], init: Option<InitFn>) {
    for &c in close {
        // SAFETY: closing the child's copies of the parent's pool descriptors
        // (other workers' sockets, pidfds, the wake-up eventfd); the child
        // never uses them and the parent's copies are unaffected.
        unsafe { libc::close(c) };
    }
    // Task panics are reported to the parent with their message; do not also
    // print them in the worker.
    std::panic::set_hook(Box::new(|_| {}));
    // SAFETY: `fd` is this worker's end of its socketpair, inherited by fork and
    // owned by nothing else in the child.
    let sock = unsafe { UnixStream::from_raw_fd(fd) };
    let _ = sock.set_nonblocking(false);
    let mut io = SockIo { sock };
    worker_main::<_, 0>(
        &mut io,
        || match init {
            None => Ok(()),
            Some(f) => catch_unwind(AssertUnwindSafe(|| f())).map_err(|p| panic_message(&*p)),
        },
        |_unit, m: UnitMsg| {
            // SAFETY: `m.tramp` is the address of a `Tramp` of this binary
            // (see `unit_frame`'s caller), sent by the parent over the pool's
            // private socketpair.
            let t: Tramp = unsafe { std::mem::transmute::<usize, Tramp>(m.tramp) };
            t(m.func, m.frame.get(UNIT_DATA..).unwrap_or(&[]))
        },
    );
}
