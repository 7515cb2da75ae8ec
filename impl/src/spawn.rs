//! The `spawn` and `forkserver` start methods: a child that is a fresh exec of
//! this program's own binary, not a copy of the parent's memory.
//!
//! ```
//! use procshare::process::{Process, StartMethod};
//! use procshare::Value;
//!
//! fn child((v, add): (Value<u64>, u64)) {
//!     *v.lock().unwrap() += add;
//! }
//!
//! let v = Value::new(1u64).unwrap();
//! let mut p = Process::with_target(child, (v.clone(), 41)).start_method(StartMethod::Spawn);
//! p.start().unwrap();
//! assert_eq!(p.join().unwrap(), 0);
//! assert_eq!(v.get(), 42);
//! ```
//!
//! # What the child runs
//!
//! A closure cannot cross an `exec`, so a spawned child runs a plain function
//! `fn(A)` given to [`Process::with_target`](crate::Process::with_target) with
//! arguments `A`, a tuple of [`SpawnArg`]s: any `Serialize + DeserializeOwned`
//! value (sent by copy, postcard-encoded, as Python pickles arguments) and the
//! shared objects ([`Value`], [`RawValue`], [`Array`], [`RawArray`], [`Lock`],
//! [`RLock`], [`Semaphore`], [`BoundedSemaphore`], [`Event`], [`Barrier`],
//! [`Queue`], [`SimpleQueue`], [`JoinableQueue`]), which are sent as handles
//! onto the *same* shared memory: each is exported as (segment memfd, offset,
//! length) and mapped again in the child, as Python duplicates their handles.
//! Shared objects still are not `Serialize`: they cannot be put on a queue.
//!
//! The function is found in the child by its offset from an anchor function of
//! this crate. The binary is mapped whole, so the offset is the same in every
//! process running the same executable, whatever the address-space
//! randomization. The child checks that it runs the very file its parent runs
//! (device, inode, size and modification time of `/proc/self/exe`) and that the
//! addresses fall inside that file's executable mapping, and refuses to start
//! otherwise ([`SpawnError::BinaryChanged`]).
//!
//! # What the user's binary needs
//!
//! Nothing. procshare places an entry function in the binary's `.init_array`,
//! which the loader runs before `main` (before libtest's `main` in test and
//! doctest binaries too). In an ordinary start it reads one environment
//! variable (`PROCSHARE_SPAWN`), finds it unset and returns. In a spawned child
//! it removes the variable, runs the target and leaves with `_exit`: `main`
//! never runs. Exit codes are those of forked children: `0`, `1` after a panic
//! (its message on stderr) or when the child cannot start (the reason on
//! stderr, and as an error from `start`), the code given to
//! `std::process::exit`, `-N` after death by signal `N`.
//!
//! The function runs before Rust's runtime set-up of the main thread, like code
//! in a `#[ctor]`: std works (threads, I/O, allocation), but the main thread has
//! no name and a stack overflow is reported as a plain `SIGSEGV`. `SIGPIPE` is
//! ignored, as Rust's `main` does.
//!
//! # Start-up handshake
//!
//! `start` returns once the child has decoded its arguments: a child that
//! cannot start (binary replaced, an argument that does not decode, a shared
//! object whose memory cannot be mapped) makes `start` return
//! [`ProcessError::Spawn`](crate::process::ProcessError::Spawn) with the
//! child's own message ([`SpawnError::Child`]), never hang. An `exec` that
//! fails is an error from `start` as well.
//!
//! # Forkserver
//!
//! The first `forkserver` start of a process spawns a server (a fresh exec of
//! the binary, so single-threaded and holding no lock) and keeps a unix
//! `SOCK_SEQPACKET` socket to it. Each start sends the server one message: the
//! payload memfd, a status socket, and the shared segments' memfds
//! (`SCM_RIGHTS`, at most [`MAX_SEGMENTS`] segments). The server forks a child
//! per request, sends back the child's pid and a pidfd (so that `terminate` and
//! `kill` signal exactly that process), reaps it, and reports its exit code on
//! the status socket: `join` reads it there. The child's parent is the server.
//! The server exits when its parent's socket closes (the parent exited).

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytemuck::Pod;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::array::{Array, RawArray};
use crate::joinable_queue::JoinableQueue;
use crate::queue::{Queue, RawQueue};
use crate::shm::{Segment, ShmBox, ShmError, ShmSafe, ShmSlice};
use crate::simple_queue::SimpleQueue;
use crate::sync::{AnyLock, Barrier, BoundedSemaphore, Event, Lock, RLock, Semaphore};
use crate::sys::proc::RawPid;
use crate::value::{GuardOwner, RawValue, Value};

/// The most shared-memory segments one start may pass (the kernel's limit on
/// descriptors in one `SCM_RIGHTS` message is 253; two carry the request).
pub const MAX_SEGMENTS: usize = 250;

/// The environment variable that turns a start of this binary into a spawned child.
const ENV: &str = "PROCSHARE_SPAWN";

/// "PRSPAWN" + format version 1.
const PAYLOAD_MAGIC: u64 = 0x5052_5350_4157_4e01;

/// Why a spawned (or forkserver) child could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpawnError {
    /// A closure was given to `Process::new` and a start method other than fork chosen.
    #[error(
        "a closure cannot cross an exec: use Process::with_target(function, args) \
         with the spawn and forkserver start methods"
    )]
    ClosureTarget,
    /// An argument could not be encoded.
    #[error("cannot encode a spawn argument: {0}")]
    Encode(#[source] postcard::Error),
    /// The child could not decode its arguments.
    #[error("cannot decode the spawn arguments: {0}")]
    Decode(String),
    /// The arguments hold more shared segments than one start can pass.
    #[error("the arguments use {0} shared-memory segments, at most {MAX_SEGMENTS} can be passed")]
    TooManySegments(usize),
    /// A shared object could not be mapped in the child.
    #[error("cannot attach a shared object: {0}")]
    Shm(#[from] ShmError),
    /// The child runs another binary than its parent (the file was replaced).
    #[error(
        "the child's binary ({found}) is not its parent's ({expected}): was the \
         program rebuilt or replaced while running?"
    )]
    BinaryChanged {
        /// The parent's `/proc/self/exe` identity.
        expected: String,
        /// The child's.
        found: String,
    },
    /// The request received by the child is malformed.
    #[error("malformed spawn request: {0}")]
    BadRequest(&'static str),
    /// A system call failed.
    #[error("{what} failed: {source}")]
    Os {
        /// Which call.
        what: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The fork server is gone (killed, or it exited).
    #[error("the fork server is gone ({0})")]
    ForkServerLost(&'static str),
    /// The child reported that it could not start (its message).
    #[error("the child could not start: {0}")]
    Child(String),
    /// procshare's code is not part of the running executable (it was loaded
    /// as a shared library, e.g. into a Python interpreter): an exec of
    /// `/proc/self/exe` would not run procshare's entry.
    #[error(
        "spawn and forkserver need procshare linked into the executable itself          (here it is in a shared library); use the fork start method"
    )]
    NotInExecutable,
}

fn os_err(what: &'static str) -> impl FnOnce(std::io::Error) -> SpawnError {
    move |source| SpawnError::Os { what, source }
}

// ---------------------------------------------------------------------------
// Arguments.

/// What a spawned child's arguments are encoded into (see [`SpawnArg`]).
#[derive(Debug, Default)]
pub struct Exporter {
    bytes: Vec<u8>,
    segments: Vec<Arc<Segment>>,
}

impl Exporter {
    /// Appends a value by copy (postcard).
    pub fn put<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SpawnError> {
        let bytes = core::mem::take(&mut self.bytes);
        self.bytes = postcard::to_extend(value, bytes).map_err(SpawnError::Encode)?;
        Ok(())
    }

    /// Appends an argument (by copy or as a shared handle).
    pub fn arg<A: SpawnArg>(&mut self, a: &A) -> Result<(), SpawnError> {
        a.export(self)
    }

    fn segment(&mut self, seg: &Arc<Segment>) -> Result<u32, SpawnError> {
        let i = match self.segments.iter().position(|s| Arc::ptr_eq(s, seg)) {
            Some(i) => i,
            None => {
                if seg.fd().is_none() {
                    return Err(SpawnError::BadRequest("a shared segment has no descriptor"));
                }
                self.segments.push(seg.clone());
                self.segments.len() - 1
            }
        };
        Ok(i as u32)
    }

    pub(crate) fn shm_box<T: ShmSafe>(&mut self, b: &ShmBox<T>) -> Result<(), SpawnError> {
        let (seg, off) = b.placement();
        let i = self.segment(seg)?;
        self.put(&(i, off))
    }

    pub(crate) fn shm_slice<T: ShmSafe>(&mut self, s: &ShmSlice<T>) -> Result<(), SpawnError> {
        let (seg, off) = s.placement();
        let i = self.segment(seg)?;
        self.put(&(i, off, s.len() as u64))
    }
}

/// What a spawned child decodes its arguments from (see [`SpawnArg`]).
#[derive(Debug)]
pub struct Importer {
    bytes: Vec<u8>,
    pos: usize,
    segments: Vec<Arc<Segment>>,
}

impl Importer {
    /// Takes a value sent by [`Exporter::put`].
    pub fn take<T: DeserializeOwned>(&mut self) -> Result<T, SpawnError> {
        let rest = self.bytes.get(self.pos..).unwrap_or_default();
        let (v, left) = postcard::take_from_bytes::<T>(rest)
            .map_err(|e| SpawnError::Decode(format!("{e} (at byte {})", self.pos)))?;
        self.pos = self.bytes.len() - left.len();
        Ok(v)
    }

    /// Takes an argument sent by [`Exporter::arg`].
    pub fn take_arg<A: SpawnArg>(&mut self) -> Result<A, SpawnError> {
        A::import(self)
    }

    fn segment(&self, i: u32) -> Result<Arc<Segment>, SpawnError> {
        self.segments
            .get(i as usize)
            .cloned()
            .ok_or(SpawnError::BadRequest(
                "a shared object names a segment that was not sent",
            ))
    }

    pub(crate) fn shm_box<T: ShmSafe>(&mut self) -> Result<ShmBox<T>, SpawnError> {
        let (i, off): (u32, u64) = self.take()?;
        Ok(ShmBox::attach(self.segment(i)?, off)?)
    }

    pub(crate) fn shm_slice<T: ShmSafe>(&mut self) -> Result<ShmSlice<T>, SpawnError> {
        let (i, off, len): (u32, u64, u64) = self.take()?;
        Ok(ShmSlice::attach(self.segment(i)?, off, len)?)
    }

    fn finish(&self) -> Result<(), SpawnError> {
        if self.pos != self.bytes.len() {
            return Err(SpawnError::Decode(format!(
                "{} bytes left over after the arguments",
                self.bytes.len() - self.pos
            )));
        }
        Ok(())
    }
}

/// One argument of a spawned child: a serde value (by copy), or a shared
/// object (a handle onto the same shared memory).
///
/// Implemented for every `T: Serialize + DeserializeOwned` and for the shared
/// types. Implement it for a struct of your own that holds shared objects by
/// exporting and importing its fields in order:
///
/// ```
/// use procshare::spawn::{Exporter, Importer, SpawnArg, SpawnError};
/// use procshare::{Lock, Value};
/// struct Counter { n: Value<u32>, lock: Lock, label: String }
/// impl SpawnArg for Counter {
///     fn export(&self, ex: &mut Exporter) -> Result<(), SpawnError> {
///         ex.arg(&self.n)?;
///         ex.arg(&self.lock)?;
///         ex.put(&self.label)
///     }
///     fn import(im: &mut Importer) -> Result<Self, SpawnError> {
///         Ok(Counter { n: im.take_arg()?, lock: im.take_arg()?, label: im.take()? })
///     }
/// }
/// ```
pub trait SpawnArg: Sized {
    /// Encodes `self` for the child.
    fn export(&self, ex: &mut Exporter) -> Result<(), SpawnError>;
    /// Decodes it in the child.
    fn import(im: &mut Importer) -> Result<Self, SpawnError>;
}

impl<T: Serialize + DeserializeOwned> SpawnArg for T {
    fn export(&self, ex: &mut Exporter) -> Result<(), SpawnError> {
        ex.put(self)
    }
    fn import(im: &mut Importer) -> Result<Self, SpawnError> {
        im.take()
    }
}

/// The arguments of a spawned child: a flat tuple of up to 12 [`SpawnArg`]s.
/// A single argument is a 1-tuple: `(x,)`.
///
/// Tuples nested inside it are plain serde values: they may not hold shared
/// objects (a tuple cannot be both a serde value and a tuple of handles;
/// write a [`SpawnArg`] struct instead, or flatten the tuple).
///
/// ```
/// use procshare::process::{Process, StartMethod};
/// use procshare::{Event, Lock};
/// fn child((lock, done, label, n): (Lock, Event, String, u8)) {
///     let _g = lock.lock().unwrap();
///     assert_eq!((label.as_str(), n), ("job", 3));
///     done.set();
/// }
/// let (lock, done) = (Lock::new().unwrap(), Event::new().unwrap());
/// let args = (lock.clone(), done.clone(), "job".to_string(), 3u8);
/// let mut p = Process::with_target(child, args).start_method(StartMethod::ForkServer);
/// p.start().unwrap();
/// assert_eq!(p.join().unwrap(), 0);
/// assert!(done.is_set());
/// ```
pub trait SpawnArgs: Sized + Send + 'static {
    /// Encodes every argument, in order.
    fn export_all(&self, ex: &mut Exporter) -> Result<(), SpawnError>;
    /// Decodes them in the child.
    fn import_all(im: &mut Importer) -> Result<Self, SpawnError>;
}

macro_rules! spawn_args_tuple {
    ($($n:ident),*) => {
        impl<$($n: SpawnArg + Send + 'static),*> SpawnArgs for ($($n,)*) {
            #[allow(non_snake_case, unused_variables)]
            fn export_all(&self, ex: &mut Exporter) -> Result<(), SpawnError> {
                let ($($n,)*) = self;
                $( $n.export(ex)?; )*
                Ok(())
            }
            #[allow(unused_variables)]
            fn import_all(im: &mut Importer) -> Result<Self, SpawnError> {
                Ok(($($n::import(im)?,)*))
            }
        }
    };
}
spawn_args_tuple!();
spawn_args_tuple!(A);
spawn_args_tuple!(A, B);
spawn_args_tuple!(A, B, C);
spawn_args_tuple!(A, B, C, D);
spawn_args_tuple!(A, B, C, D, E);
spawn_args_tuple!(A, B, C, D, E, F);
spawn_args_tuple!(A, B, C, D, E, F, G);
spawn_args_tuple!(A, B, C, D, E, F, G, H);
spawn_args_tuple!(A, B, C, D, E, F, G, H, I);
spawn_args_tuple!(A, B, C, D, E, F, G, H, I, J);
spawn_args_tuple!(A, B, C, D, E, F, G, H, I, J, K);
spawn_args_tuple!(A, B, C, D, E, F, G, H, I, J, K, L);

// The shared types: handles onto shared memory.

macro_rules! spawn_arg_box {
    ($($t:ty),*) => { $(
        impl SpawnArg for $t {
            fn export(&self, ex: &mut Exporter) -> Result<(), SpawnError> {
                ex.shm_box(&self.raw)
            }
            fn import(im: &mut Importer) -> Result<Self, SpawnError> {
                Ok(Self { raw: im.shm_box()? })
            }
        }
    )* };
}
spawn_arg_box!(Lock, RLock, Semaphore, BoundedSemaphore, Event);

impl SpawnArg for Barrier {
    fn export(&self, ex: &mut Exporter) -> Result<(), SpawnError> {
        ex.shm_box(&self.raw)?;
        // The action, a plain function, crosses like a target: by its offset.
        ex.put(&self.action.map(|f| offset_of(f as usize)))
    }
    fn import(im: &mut Importer) -> Result<Self, SpawnError> {
        let raw = im.shm_box()?;
        let action = match im.take::<Option<i64>>()? {
            None => None,
            Some(off) => {
                let addr = anchor_addr().wrapping_add(off as usize);
                if !in_exe_code(addr, ExeId::current()?.ino) {
                    return Err(SpawnError::BadRequest(
                        "barrier action outside the binary's code",
                    ));
                }
                // SAFETY: the parent took this offset from a `fn()` of this
                // binary (the child checked it runs the same file) and the
                // address lies in the binary's code.
                Some(unsafe { core::mem::transmute::<usize, fn()>(addr) })
            }
        };
        Ok(Barrier { raw, action })
    }
}

impl SpawnArg for AnyLock {
    fn export(&self, ex: &mut Exporter) -> Result<(), SpawnError> {
        match self {
            AnyLock::Lock(l) => {
                ex.put(&0u8)?;
                l.export(ex)
            }
            AnyLock::RLock(l) => {
                ex.put(&1u8)?;
                l.export(ex)
            }
        }
    }
    fn import(im: &mut Importer) -> Result<Self, SpawnError> {
        match im.take::<u8>()? {
            0 => Ok(AnyLock::Lock(Lock::import(im)?)),
            1 => Ok(AnyLock::RLock(RLock::import(im)?)),
            _ => Err(SpawnError::BadRequest("unknown lock kind")),
        }
    }
}

impl<T: Pod + Send> SpawnArg for RawValue<T> {
    fn export(&self, ex: &mut Exporter) -> Result<(), SpawnError> {
        ex.shm_box(&self.cell)
    }
    fn import(im: &mut Importer) -> Result<Self, SpawnError> {
        Ok(RawValue {
            cell: im.shm_box()?,
        })
    }
}

impl<T: Pod + Send> SpawnArg for Value<T> {
    fn export(&self, ex: &mut Exporter) -> Result<(), SpawnError> {
        self.raw.export(ex)?;
        self.lock.export(ex)
    }
    fn import(im: &mut Importer) -> Result<Self, SpawnError> {
        Ok(Value {
            raw: RawValue::import(im)?,
            lock: AnyLock::import(im)?,
            guard_owner: GuardOwner::default(),
        })
    }
}

impl<T: Pod + Send> SpawnArg for RawArray<T> {
    fn export(&self, ex: &mut Exporter) -> Result<(), SpawnError> {
        ex.shm_slice(&self.cells)
    }
    fn import(im: &mut Importer) -> Result<Self, SpawnError> {
        Ok(RawArray {
            cells: im.shm_slice()?,
        })
    }
}

impl<T: Pod + Send> SpawnArg for Array<T> {
    fn export(&self, ex: &mut Exporter) -> Result<(), SpawnError> {
        self.raw.export(ex)?;
        self.lock.export(ex)
    }
    fn import(im: &mut Importer) -> Result<Self, SpawnError> {
        Ok(Array {
            raw: RawArray::import(im)?,
            lock: AnyLock::import(im)?,
            guard_owner: GuardOwner::default(),
        })
    }
}

impl SpawnArg for RawQueue {
    fn export(&self, ex: &mut Exporter) -> Result<(), SpawnError> {
        let (hdr, slots, limit) = self.parts();
        ex.shm_box(hdr)?;
        ex.shm_slice(slots)?;
        ex.put(&(limit as u64))
    }
    fn import(im: &mut Importer) -> Result<Self, SpawnError> {
        let hdr = im.shm_box()?;
        let slots = im.shm_slice()?;
        let limit = usize::try_from(im.take::<u64>()?).unwrap_or(usize::MAX);
        RawQueue::from_parts(hdr, slots, limit).ok_or(SpawnError::BadRequest(
            "queue ring header disagrees with its chunks",
        ))
    }
}

impl<T> SpawnArg for Queue<T> {
    fn export(&self, ex: &mut Exporter) -> Result<(), SpawnError> {
        self.raw().export(ex)
    }
    fn import(im: &mut Importer) -> Result<Self, SpawnError> {
        Ok(RawQueue::import(im)?.typed())
    }
}

impl<T> SpawnArg for SimpleQueue<T> {
    fn export(&self, ex: &mut Exporter) -> Result<(), SpawnError> {
        self.q.export(ex)
    }
    fn import(im: &mut Importer) -> Result<Self, SpawnError> {
        Ok(SimpleQueue {
            q: Queue::import(im)?,
        })
    }
}

impl<T> SpawnArg for JoinableQueue<T> {
    fn export(&self, ex: &mut Exporter) -> Result<(), SpawnError> {
        self.q.export(ex)?;
        ex.shm_box(&self.unfinished)
    }
    fn import(im: &mut Importer) -> Result<Self, SpawnError> {
        Ok(JoinableQueue {
            q: Queue::import(im)?,
            unfinished: im.shm_box()?,
        })
    }
}

// ---------------------------------------------------------------------------
// Targets: a function and its arguments.

/// The anchor function offsets are measured from.
#[inline(never)]
extern "C" fn anchor() {}

fn anchor_addr() -> usize {
    anchor as *const () as usize
}

fn offset_of(addr: usize) -> i64 {
    addr.wrapping_sub(anchor_addr()) as i64
}

type Trampoline = fn(&mut Importer, usize) -> Result<Box<dyn FnOnce()>, SpawnError>;

fn trampoline<A: SpawnArgs>(im: &mut Importer, f: usize) -> Result<Box<dyn FnOnce()>, SpawnError> {
    let args = A::import_all(im)
        .and_then(|a| im.finish().map(|()| a))
        .map_err(|e| match e {
            SpawnError::Decode(m) => {
                SpawnError::Decode(format!("{m}, arguments {}", core::any::type_name::<A>()))
            }
            e => e,
        })?;
    // SAFETY: `f` is the address of a `fn(A)` of this binary: the parent took
    // it from a `fn(A)` and paired it with this very trampoline::<A>; the child
    // checked that it runs the same file and that `f` lies in its code.
    let f = unsafe { core::mem::transmute::<usize, fn(A)>(f) };
    Ok(Box::new(move || f(args)))
}

/// A function target (what `Process::with_target` stores).
pub(crate) trait FnTarget: Send {
    /// Runs it here (fork start method).
    fn run(self: Box<Self>);
    /// Encodes the arguments.
    fn export(&self, ex: &mut Exporter) -> Result<(), SpawnError>;
    /// (trampoline offset, function offset).
    fn offsets(&self) -> (i64, i64);
}

pub(crate) struct FnCall<A> {
    pub(crate) f: fn(A),
    pub(crate) args: A,
}

impl<A: SpawnArgs> FnTarget for FnCall<A> {
    fn run(self: Box<Self>) {
        (self.f)(self.args)
    }
    fn export(&self, ex: &mut Exporter) -> Result<(), SpawnError> {
        self.args.export_all(ex)
    }
    fn offsets(&self) -> (i64, i64) {
        let t: Trampoline = trampoline::<A>;
        (offset_of(t as usize), offset_of(self.f as usize))
    }
}

// ---------------------------------------------------------------------------
// The request.

/// Identity of the running executable file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct ExeId {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
}

impl ExeId {
    fn current() -> Result<ExeId, SpawnError> {
        let m = std::fs::metadata("/proc/self/exe").map_err(os_err("stat /proc/self/exe"))?;
        Ok(ExeId {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: m.mtime(),
            mtime_nsec: m.mtime_nsec(),
        })
    }
}

impl core::fmt::Display for ExeId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "dev {:#x} inode {} size {} mtime {}.{:09}",
            self.dev, self.ino, self.size, self.mtime, self.mtime_nsec
        )
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Payload {
    magic: u64,
    exe: ExeId,
    trampoline: i64,
    function: i64,
    args: Vec<u8>,
}

/// Messages on a child's status socket.
#[derive(Debug, Serialize, Deserialize)]
enum Status {
    /// From the fork server: the child's pid (a pidfd rides along).
    Pid(i32),
    /// From the child: `None` if it decoded its arguments and runs the target,
    /// else why it could not start.
    Started(Option<String>),
    /// From the fork server: the child's exit code (Python's convention).
    Exit(i32),
}

/// An encoded start request: the payload memfd and the segments.
pub(crate) struct Request {
    payload: OwnedFd,
    segments: Vec<Arc<Segment>>,
}

/// Is procshare's code part of the executable file (so that an exec of
/// `/proc/self/exe` runs [`spawn_entry`])? Checked once.
fn check_in_executable() -> Result<(), SpawnError> {
    static IN_EXE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *IN_EXE
        .get_or_init(|| ExeId::current().is_ok_and(|exe| in_exe_code(anchor_addr(), exe.ino)));
    if ok {
        Ok(())
    } else {
        Err(SpawnError::NotInExecutable)
    }
}

impl Request {
    pub(crate) fn new(target: &dyn FnTarget) -> Result<Request, SpawnError> {
        check_in_executable()?;
        let mut ex = Exporter::default();
        target.export(&mut ex)?;
        if ex.segments.len() > MAX_SEGMENTS {
            return Err(SpawnError::TooManySegments(ex.segments.len()));
        }
        let (trampoline, function) = target.offsets();
        let payload = Payload {
            magic: PAYLOAD_MAGIC,
            exe: ExeId::current()?,
            trampoline,
            function,
            args: ex.bytes,
        };
        let bytes = postcard::to_stdvec(&payload).map_err(SpawnError::Encode)?;
        let fd = crate::sys::io::memfd(c"procshare-spawn", 0).map_err(os_err("memfd_create"))?;
        let file = std::fs::File::from(fd);
        file.write_all_at(&bytes, 0)
            .map_err(os_err("write spawn payload"))?;
        Ok(Request {
            payload: file.into(),
            segments: ex.segments,
        })
    }

    fn segment_fds(&self) -> Vec<BorrowedFd<'_>> {
        self.segments
            .iter()
            .map(|s| s.fd().expect("checked by Exporter::segment"))
            .collect()
    }
}

fn seqpacket_pair() -> Result<(OwnedFd, OwnedFd), SpawnError> {
    crate::sys::io::seqpacket_pair().map_err(os_err("socketpair"))
}

fn send_msg(fd: BorrowedFd<'_>, msg: &Status, fds: &[BorrowedFd<'_>]) -> Result<(), SpawnError> {
    let bytes = postcard::to_stdvec(msg).map_err(SpawnError::Encode)?;
    crate::sys::io::send_with_fds(fd, &bytes, fds).map_err(os_err("sendmsg"))
}

/// Receives one message and its descriptors (`Ok(None)`: end of stream, or
/// nothing there with `block == false`).
fn recv_raw(
    fd: BorrowedFd<'_>,
    block: bool,
    buf: &mut [u8],
) -> Result<Option<(usize, Vec<OwnedFd>)>, SpawnError> {
    crate::sys::io::recv_with_fds(fd, block, buf).map_err(os_err("recvmsg"))
}

/// Receives one status message: `Ok(None)` on end of stream (or nothing yet,
/// without `block`).
fn recv_status(
    fd: BorrowedFd<'_>,
    block: bool,
) -> Result<Option<(Status, Vec<OwnedFd>)>, SpawnError> {
    let mut buf = [0u8; 4096];
    let Some((n, fds)) = recv_raw(fd, block, &mut buf)? else {
        return Ok(None);
    };
    let st = postcard::from_bytes(&buf[..n])
        .map_err(|_| SpawnError::BadRequest("malformed status message"))?;
    Ok(Some((st, fds)))
}

/// Which of `fds` are readable (or hung up) within `timeout` (`None`: wait).
fn poll_in(fds: &[BorrowedFd<'_>], timeout: Option<Duration>) -> Result<Vec<bool>, SpawnError> {
    use crate::sys::io::{PollFd, PollFlags};
    let mut p: Vec<PollFd<'_>> = fds.iter().map(|f| PollFd::new(f, PollFlags::IN)).collect();
    crate::sys::io::poll(&mut p, timeout).map_err(os_err("poll"))?;
    Ok(p.iter().map(|x| !x.revents().is_empty()).collect())
}

fn pidfd_of(pid: RawPid) -> Option<OwnedFd> {
    crate::sys::proc::pidfd_open(pid)
}

// ---------------------------------------------------------------------------
// Parent side.

/// A started child: its pid, a pidfd, and (forkserver) the status socket on
/// which its exit code arrives.
pub(crate) struct Launched {
    pub(crate) pid: RawPid,
    pub(crate) pidfd: Option<OwnedFd>,
    pub(crate) status: Option<OwnedFd>,
    /// Already known exit code (the child died before starting the target).
    pub(crate) exit: Option<i32>,
}

fn exec_self(env_value: String, keep: &[RawFd]) -> Result<RawPid, SpawnError> {
    let arg0 = std::env::args_os()
        .next()
        .unwrap_or_else(|| "procshare-spawn".into());
    // Nothing but what we pass crosses the exec (as Python's spawn).
    crate::sys::proc::exec_self(&arg0, (ENV, &env_value), keep)
        .map_err(os_err("exec of /proc/self/exe"))
}

fn reap_now(pid: RawPid) {
    let _ = crate::sys::proc::wait_child(pid, true);
}

/// Starts `target` by spawn: a fresh exec of this binary.
pub(crate) fn spawn(target: &dyn FnTarget) -> Result<Launched, SpawnError> {
    let req = Request::new(target)?;
    let (mine, theirs) = seqpacket_pair()?;
    let mut keep = vec![req.payload.as_raw_fd(), theirs.as_raw_fd()];
    keep.extend(req.segment_fds().iter().map(|f| f.as_raw_fd()));
    let value = format!(
        "spawn:{}",
        keep.iter()
            .map(|f| f.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    let pid = exec_self(value, &keep)?;
    drop(theirs);
    drop(req);
    let pidfd = pidfd_of(pid);
    // Wait for the child's handshake, or its death (another thread's fork may
    // hold a copy of its status socket, so end of stream alone is not enough).
    loop {
        let ready = match &pidfd {
            Some(p) => poll_in(&[mine.as_fd(), p.as_fd()], None)?,
            None => poll_in(&[mine.as_fd()], None)?,
        };
        if ready[0] {
            match recv_status(mine.as_fd(), false)? {
                Some((Status::Started(None), _)) => break,
                Some((Status::Started(Some(msg)), _)) => {
                    reap_now(pid);
                    return Err(SpawnError::Child(msg));
                }
                Some(_) => continue,
                None => break, // the child died (join reports how) or closed it
            }
        } else if ready.get(1) == Some(&true) {
            break;
        }
    }
    Ok(Launched {
        pid,
        pidfd,
        status: None,
        exit: None,
    })
}

struct ServerConn {
    sock: OwnedFd,
    pid: RawPid,
}

static SERVER: Mutex<Option<ServerConn>> = Mutex::new(None);

fn start_server() -> Result<ServerConn, SpawnError> {
    let (mine, theirs) = seqpacket_pair()?;
    let pid = exec_self(
        format!("forkserver:{}", theirs.as_raw_fd()),
        &[theirs.as_raw_fd()],
    )?;
    Ok(ServerConn { sock: mine, pid })
}

/// The fork server's pid, starting it if needed (Python's forkserver is also
/// started on first use). One server serves every thread of this process.
///
/// ```
/// let server = procshare::spawn::forkserver_pid().unwrap();
/// assert_ne!(server, std::process::id());
/// assert_eq!(procshare::spawn::forkserver_pid().unwrap(), server);
/// ```
pub fn forkserver_pid() -> Result<u32, SpawnError> {
    let mut g = SERVER.lock().unwrap_or_else(|e| e.into_inner());
    if g.is_none() {
        *g = Some(start_server()?);
    }
    Ok(g.as_ref().expect("just set").pid as u32)
}

/// Starts `target` by the fork server.
pub(crate) fn forkserver(target: &dyn FnTarget) -> Result<Launched, SpawnError> {
    let req = Request::new(target)?;
    let (mine, theirs) = seqpacket_pair()?;
    let mut fds = vec![req.payload.as_fd(), theirs.as_fd()];
    fds.extend(req.segment_fds());
    {
        let mut g = SERVER.lock().unwrap_or_else(|e| e.into_inner());
        let mut attempt = 0;
        loop {
            if g.is_none() {
                *g = Some(start_server()?);
            }
            let conn = g.as_ref().expect("just set");
            match send_msg(conn.sock.as_fd(), &Status::Started(None), &fds) {
                Ok(()) => break,
                Err(e) if attempt > 0 => return Err(e),
                Err(_) => {
                    // The server died: reap it and start another one.
                    if let Some(old) = g.take() {
                        reap_now(old.pid);
                    }
                    attempt += 1;
                }
            }
        }
    }
    drop(theirs);
    drop(req);
    let (mut pid, mut pidfd, mut started, mut exit) = (None, None, false, None);
    while pid.is_none() || !(started || exit.is_some()) {
        match recv_status(mine.as_fd(), true)? {
            Some((Status::Pid(p), fds)) => {
                pid = Some(p);
                pidfd = fds.into_iter().next();
            }
            Some((Status::Started(None), _)) => started = true,
            Some((Status::Started(Some(msg)), _)) => {
                // Let the server reap it and report; then give the reason.
                while let Some((st, _)) = recv_status(mine.as_fd(), true)? {
                    if matches!(st, Status::Exit(_)) {
                        break;
                    }
                }
                return Err(SpawnError::Child(msg));
            }
            Some((Status::Exit(code), _)) => exit = Some(code),
            None => return Err(SpawnError::ForkServerLost("status socket closed")),
        }
    }
    Ok(Launched {
        pid: pid.expect("loop condition"),
        pidfd,
        status: Some(mine),
        exit,
    })
}

/// Reads a forkserver child's exit code from its status socket.
pub(crate) fn served_exit(status: BorrowedFd<'_>, block: bool) -> Result<Option<i32>, SpawnError> {
    loop {
        if !block && !poll_in(&[status], Some(Duration::ZERO))?[0] {
            return Ok(None);
        }
        match recv_status(status, block)? {
            Some((Status::Exit(code), _)) => return Ok(Some(code)),
            Some(_) => continue,
            None if block => {
                return Err(SpawnError::ForkServerLost("status socket closed"));
            }
            None => {
                // Readable but nothing: end of stream.
                if poll_in(&[status], Some(Duration::ZERO))?[0] {
                    return Err(SpawnError::ForkServerLost("status socket closed"));
                }
                return Ok(None);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Child side.

/// Is `addr` inside an executable mapping of the file `ino`?
fn in_exe_code(addr: usize, ino: u64) -> bool {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return false;
    };
    maps.lines().any(|l| {
        let mut it = l.split_ascii_whitespace();
        let (Some(range), Some(perms), _, _, Some(inode)) =
            (it.next(), it.next(), it.next(), it.next(), it.next())
        else {
            return false;
        };
        let Some((a, b)) = range.split_once('-') else {
            return false;
        };
        let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) else {
            return false;
        };
        perms.as_bytes().get(2) == Some(&b'x') && inode.parse() == Ok(ino) && (a..b).contains(&addr)
    })
}

/// Decodes the request: the function to run, with its arguments.
fn prepare(payload: OwnedFd, segments: Vec<OwnedFd>) -> Result<Box<dyn FnOnce()>, SpawnError> {
    let file = std::fs::File::from(payload);
    let len = file.metadata().map_err(os_err("fstat payload"))?.len();
    if len > 1 << 32 {
        return Err(SpawnError::BadRequest("payload too large"));
    }
    let mut bytes = vec![0u8; len as usize];
    file.read_exact_at(&mut bytes, 0)
        .map_err(os_err("read payload"))?;
    let p: Payload = postcard::from_bytes(&bytes)
        .map_err(|_| SpawnError::BadRequest("payload does not decode"))?;
    if p.magic != PAYLOAD_MAGIC {
        return Err(SpawnError::BadRequest("bad payload magic"));
    }
    let me = ExeId::current()?;
    if me != p.exe {
        return Err(SpawnError::BinaryChanged {
            expected: p.exe.to_string(),
            found: me.to_string(),
        });
    }
    let base = anchor_addr();
    let t = base.wrapping_add(p.trampoline as usize);
    let f = base.wrapping_add(p.function as usize);
    if !in_exe_code(t, me.ino) || !in_exe_code(f, me.ino) {
        return Err(SpawnError::BadRequest(
            "target address outside the binary's code",
        ));
    }
    let segments = segments
        .into_iter()
        .map(|fd| Segment::attach(fd).map(Arc::new))
        .collect::<Result<Vec<_>, _>>()?;
    let mut im = Importer {
        bytes: p.args,
        pos: 0,
        segments,
    };
    // SAFETY: `t` is the address of `trampoline::<A>` in this binary (same file
    // as the parent's, checked above; the offset was taken by the parent from
    // that function), so it has the `Trampoline` signature.
    let t = unsafe { core::mem::transmute::<usize, Trampoline>(t) };
    t(&mut im, f)
}

/// Runs a child: decode, report, run, exit. Never returns.
fn child_run(payload: OwnedFd, status: OwnedFd, segments: Vec<OwnedFd>, how: &str) -> ! {
    let code = match catch_unwind(AssertUnwindSafe(|| prepare(payload, segments))) {
        Ok(Ok(run)) => {
            let _ = send_msg(status.as_fd(), &Status::Started(None), &[]);
            drop(status);
            match catch_unwind(AssertUnwindSafe(run)) {
                Ok(()) => 0,
                Err(_) => 1, // the panic hook printed the message
            }
        }
        Ok(Err(e)) => {
            // The child's own exit report (as a panic message is), not a
            // library diagnostic: written to its stderr, where the module
            // docs promise it (no logger exists yet in a spawned child).
            crate::sys::write_stderr_raw(
                format!(
                    "procshare: the {how} child (pid {}) cannot start: {e}\n",
                    std::process::id()
                )
                .as_bytes(),
            );
            let _ = send_msg(status.as_fd(), &Status::Started(Some(e.to_string())), &[]);
            1
        }
        Err(_) => {
            let msg = "an argument's decoding panicked".to_string();
            let _ = send_msg(status.as_fd(), &Status::Started(Some(msg)), &[]);
            1
        }
    };
    let _ = catch_unwind(|| {
        let _ = std::io::stdout().lock().flush();
    });
    crate::sys::proc::exit(code)
}

struct Kid {
    pid: RawPid,
    pidfd: OwnedFd,
    status: OwnedFd,
}

/// The fork server's loop. Never returns.
fn server_main(ctl: OwnedFd) -> ! {
    let mut kids: Vec<Kid> = Vec::new();
    loop {
        let ready = {
            let mut fds = vec![ctl.as_fd()];
            fds.extend(kids.iter().map(|k| k.pidfd.as_fd()));
            match poll_in(&fds, None) {
                Ok(r) => r,
                Err(_) => break,
            }
        };
        // Children that exited: reap them and report.
        let mut i = kids.len();
        while i > 0 {
            i -= 1;
            if ready[i + 1] {
                let k = kids.swap_remove(i);
                let code = match crate::sys::proc::wait_child(k.pid, true) {
                    Ok(Some(code)) => code,
                    _ => 255,
                };
                let _ = send_msg(k.status.as_fd(), &Status::Exit(code), &[]);
            }
        }
        if !ready[0] {
            continue;
        }
        let mut buf = [0u8; 64];
        let (_, mut fds) = match recv_raw(ctl.as_fd(), false, &mut buf) {
            Ok(Some(m)) => m,
            Ok(None) => {
                // End of stream: the parent is gone (or nothing was there).
                if matches!(
                    poll_in(&[ctl.as_fd()], Some(Duration::ZERO)).as_deref(),
                    Ok([true])
                ) {
                    break;
                }
                continue;
            }
            Err(_) => break,
        };
        if fds.len() < 2 {
            continue; // malformed request: ignore it
        }
        let segments = fds.split_off(2);
        let status = fds.pop().expect("two fds");
        let payload = fds.pop().expect("two fds");
        // The server is single-threaded (a fresh exec that started no thread),
        // so the child may run anything; it leaves by `child_run`, which never
        // returns. In the server the closure (its copies of the request's
        // descriptors) is dropped unused.
        // The child closes its copies of the server's own descriptors (the
        // control socket, other children's pidfds and status sockets), whose
        // owners are never dropped there.
        let mut servers: Vec<RawFd> = vec![ctl.as_raw_fd()];
        for k in &kids {
            servers.push(k.pidfd.as_raw_fd());
            servers.push(k.status.as_raw_fd());
        }
        let forked = crate::sys::fork::fork(|_| {
            crate::sys::io::close_inherited(&servers);
            // The child's own copy of its status socket, which `child_run`
            // closes once it has reported; the server's copy (in this
            // process's memory, never dropped here) is closed now.
            let Ok(mine) = status.try_clone() else {
                return 1;
            };
            crate::sys::io::close_inherited(&[status.as_raw_fd()]);
            let status = mine;
            child_run(payload, status, segments, "forkserver")
        });
        let pid = match forked {
            Ok(pid) => pid,
            Err(e) => {
                let msg = format!("fork failed: {e}");
                let _ = send_msg(status.as_fd(), &Status::Started(Some(msg)), &[]);
                continue;
            }
        };
        let Some(pidfd) = pidfd_of(pid) else {
            // Cannot watch it: wait for it here (rare: no pidfd support).
            let _ = send_msg(status.as_fd(), &Status::Pid(pid), &[]);
            let code = crate::sys::proc::wait_child(pid, true)
                .ok()
                .flatten()
                .unwrap_or(255);
            let _ = send_msg(status.as_fd(), &Status::Exit(code), &[]);
            continue;
        };
        let _ = send_msg(status.as_fd(), &Status::Pid(pid), &[pidfd.as_fd()]);
        kids.push(Kid { pid, pidfd, status });
    }
    // Ends the server at once.
    crate::sys::proc::exit(0)
}

fn parse_fds(s: &str) -> Option<Vec<OwnedFd>> {
    s.split(',')
        .map(|x| {
            let fd: RawFd = x.parse().ok()?;
            if fd < 0 {
                return None;
            }
            // SAFETY: the parent passed us this descriptor for us alone (a
            // number that is not open fails the set_cloexec below).
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            // Close-on-exec again: a program the target runs must not keep it.
            if crate::sys::proc::set_cloexec(fd.as_fd(), true).is_err() {
                // Not an open descriptor: do not let the OwnedFd close it.
                core::mem::forget(fd);
                return None;
            }
            Some(fd)
        })
        .collect()
}

/// Run by the loader before `main` in every process of a binary linked with
/// procshare: turns a spawned start into the child (or the fork server).
extern "C" fn spawn_entry() {
    // Before main: no other thread exists to read or modify the environment
    // concurrently.
    let Some(v) = std::env::var_os(ENV) else {
        return;
    };
    let value = v.to_string_lossy().into_owned();
    std::env::remove_var(ENV);
    // As Rust's main does.
    crate::sys::proc::ignore_signal(crate::sys::proc::Ignored::Pipe);
    let bad = |what: &str| -> ! {
        // The child's exit report (see `child_run`), on its stderr.
        crate::sys::write_stderr_raw(
            format!("procshare: malformed {ENV}={value:?}: {what}\n").as_bytes(),
        );
        crate::sys::proc::exit(1)
    };
    if let Some(rest) = value.strip_prefix("spawn:") {
        let Some(mut fds) = parse_fds(rest).filter(|f| f.len() >= 2) else {
            bad("expected descriptors");
        };
        let segments = fds.split_off(2);
        let status = fds.pop().expect("two fds");
        let payload = fds.pop().expect("two fds");
        child_run(payload, status, segments, "spawn");
    }
    if let Some(rest) = value.strip_prefix("forkserver:") {
        let Some(mut fds) = parse_fds(rest).filter(|f| f.len() == 1) else {
            bad("expected one descriptor");
        };
        let ctl = fds.pop().expect("one fd");
        server_main(ctl);
    }
    bad("unknown mode");
}

#[used]
#[link_section = ".init_array"]
static SPAWN_ENTRY: extern "C" fn() = spawn_entry;

#[cfg(test)]
mod tests {
    use super::*;

    fn memfd_with(bytes: &[u8]) -> OwnedFd {
        let seg = Segment::create(4096).unwrap();
        let fd = seg.fd().unwrap().try_clone_to_owned().unwrap();
        let f = std::fs::File::from(fd);
        f.set_len(0).unwrap();
        f.write_all_at(bytes, 0).unwrap();
        f.into()
    }

    fn payload(exe: ExeId, trampoline: i64, function: i64) -> Vec<u8> {
        postcard::to_stdvec(&Payload {
            magic: PAYLOAD_MAGIC,
            exe,
            trampoline,
            function,
            args: Vec::new(),
        })
        .unwrap()
    }

    fn unit((): ()) {}

    fn offsets() -> (i64, i64) {
        FnCall { f: unit, args: () }.offsets()
    }

    #[test]
    fn garbage_payload_is_an_error() {
        let r = prepare(memfd_with(b"not a payload"), Vec::new());
        assert!(matches!(r, Err(SpawnError::BadRequest(_))), "{:?}", r.err());
        let mut p = payload(ExeId::current().unwrap(), 0, 0);
        p[0] ^= 1; // the magic
        let r = prepare(memfd_with(&p), Vec::new());
        assert!(matches!(r, Err(SpawnError::BadRequest(_))));
    }

    #[test]
    fn another_binary_is_refused() {
        let mut exe = ExeId::current().unwrap();
        exe.mtime_nsec += 1; // rebuilt in place
        let (t, f) = offsets();
        let r = prepare(memfd_with(&payload(exe, t, f)), Vec::new());
        match r {
            Err(e @ SpawnError::BinaryChanged { .. }) => {
                assert!(e.to_string().contains("rebuilt or replaced"), "{e}")
            }
            other => panic!("{:?}", other.err()),
        }
    }

    #[test]
    fn targets_outside_the_code_are_refused() {
        let exe = ExeId::current().unwrap();
        let (t, f) = offsets();
        for (t, f) in [(t, 1 << 40), (1 << 40, f), (t, -(1 << 40))] {
            let r = prepare(memfd_with(&payload(exe, t, f)), Vec::new());
            assert!(matches!(r, Err(SpawnError::BadRequest(_))), "{:?}", r.err());
        }
        // The genuine offsets pass and the function runs here.
        let run = prepare(memfd_with(&payload(exe, t, f)), Vec::new()).unwrap();
        run();
        let ino = exe.ino;
        assert!(in_exe_code(anchor_addr(), ino));
        let heap = Box::new(0u8);
        assert!(!in_exe_code(&*heap as *const u8 as usize, ino));
    }

    /// Export in this process, import back: handles onto the same memory.
    fn round_trip<A: SpawnArgs>(a: &A) -> Result<A, SpawnError> {
        let mut ex = Exporter::default();
        a.export_all(&mut ex)?;
        let segments = ex
            .segments
            .iter()
            .map(|s| Segment::attach(s.fd().unwrap().try_clone_to_owned().unwrap()).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        let mut im = Importer {
            bytes: ex.bytes,
            pos: 0,
            segments,
        };
        let out = A::import_all(&mut im)?;
        im.finish()?;
        Ok(out)
    }

    #[test]
    fn shared_objects_round_trip_onto_the_same_memory() {
        let v = Value::new(5u32).unwrap();
        let q: Queue<String> = Queue::new().unwrap();
        let (v2, q2, s) = round_trip(&(v.clone(), q.clone(), "x".to_string())).unwrap();
        *v2.lock().unwrap() += 1;
        assert_eq!(v.get(), 6);
        q2.put(&s).unwrap();
        assert_eq!(q.get().unwrap(), "x");
        // Values and their locks share one segment: it is sent once.
        let mut ex = Exporter::default();
        (v.clone(), v.clone()).export_all(&mut ex).unwrap();
        assert_eq!(ex.segments.len(), 1);
    }

    #[test]
    fn bad_handles_are_errors() {
        let seg = Arc::new(Segment::create(4096).unwrap());
        let im = |bytes: Vec<u8>| Importer {
            bytes,
            pos: 0,
            segments: vec![seg.clone()],
        };
        let enc = |v: &(u32, u64)| postcard::to_stdvec(v).unwrap();
        // Out of bounds, misaligned, inside the header, unknown segment.
        for (i, off) in [(0, 4096u64), (0, 4093), (0, 65), (0, 8), (1, 64)] {
            let r = im(enc(&(i, off))).shm_box::<core::sync::atomic::AtomicU32>();
            assert!(r.is_err(), "({i}, {off}) accepted");
        }
        assert!(im(enc(&(0, 64)))
            .shm_box::<core::sync::atomic::AtomicU32>()
            .is_ok());
        // Trailing bytes.
        let mut i = im(vec![1, 2]);
        assert_eq!(i.take::<u8>().unwrap(), 1);
        assert!(matches!(i.finish(), Err(SpawnError::Decode(_))));
        // A queue whose header and chunks disagree.
        let q1: Queue<u8> = Queue::<u8>::builder().capacity_bytes(64).build().unwrap();
        let q2: Queue<u8> = Queue::<u8>::builder().capacity_bytes(128).build().unwrap();
        let mut ex = Exporter::default();
        ex.shm_box(q1.raw().parts().0).unwrap();
        ex.shm_slice(q2.raw().parts().1).unwrap();
        ex.put(&0u64).unwrap();
        let mut i = Importer {
            bytes: ex.bytes,
            pos: 0,
            segments: ex.segments,
        };
        assert!(matches!(
            RawQueue::import(&mut i),
            Err(SpawnError::BadRequest(_))
        ));
    }
}
