//! The `spawn` and `forkserver` start methods: a child that is a fresh exec of
//! this program's own binary, not a copy of the parent's memory.
//!
//! ```
//! use procshare::{Process, StartMethod};
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
//! Manager proxies ([`ListProxy`](crate::ListProxy), ...) are serde values
//! and cross too, alone or inside a value: the managers of the proxies
//! serialized during the export (address, auth key) travel in the request's
//! private payload, and the child reconnects (see [`Manager`](crate::Manager)).
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

use crate::data::array::{Array, RawArray};
use crate::data::value::{GuardOwner, RawValue, Value};
use crate::queue::joinable::JoinableQueue;
use crate::queue::pod::PodQueue;
use crate::queue::simple::SimpleQueue;
use crate::queue::{Queue, RawQueue};
use crate::shm::{Segment, ShmBox, ShmError, ShmSafe, ShmSlice};
use crate::sync::{AnyLock, Barrier, BoundedSemaphore, Event, Lock, RLock, Semaphore};
use crate::sys::proc::RawPid;

/// The most shared-memory segments one start may pass (the kernel's limit on
/// descriptors in one `SCM_RIGHTS` message is 253; two carry the request).
pub(crate) const MAX_SEGMENTS: usize = 250;

/// The environment variable that turns a start of this binary into a spawned child.
const ENV: &str = "PROCSHARE_SPAWN";

/// "PRSPAWN" + format version 3 (2: the child's identity, `Payload::info`;
/// 3: the managers of proxy arguments, `Payload::managers`).
const PAYLOAD_MAGIC: u64 = 0x5052_5350_4157_4e03;

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
    /// An argument could not be encoded (the serializer's message is kept:
    /// see [`WireError::Encode`](crate::codec::wire::WireError::Encode)).
    #[error("cannot encode a spawn argument: {0}")]
    Encode(#[source] crate::codec::wire::WireError),
    /// The child could not decode its arguments.
    #[error("cannot decode the spawn arguments: {what}")]
    Decode {
        /// What failed, and where.
        what: String,
        /// The decoder's error, if it was one.
        #[source]
        source: Option<postcard::Error>,
    },
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
    /// The child reported that it could not start (its message: it comes
    /// from the other process, so it is text).
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

mod args;
mod child;
mod parent;
mod request;
#[cfg(test)]
mod tests;

pub(crate) use args::{checked_fn_at, fn_at, fn_offset};
pub use args::{Exporter, Importer, SpawnArg, SpawnArgs};
pub(crate) use args::{FnCall, FnTarget};
pub(crate) use parent::{forkserver, served_exit, spawn};
#[cfg(feature = "internals")]
pub use parent::{forkserver_pid, with_forkserver_lock_held};
use {args::*, child::*, request::*};
