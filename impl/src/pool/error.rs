//! [`PoolError`]: the errors of the pool and of its tasks.

use std::sync::Arc;

use crate::codec::wire::WireError;
use crate::process::ProcessError;

/// Errors of the pool and of its tasks.
/// (`Clone`: one error may fail several tasks; its sources are shared. See
/// the `PartialEq` impl for what equality means.)
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// `processes(0)` (CPython: `ValueError: Number of processes must be at least 1`).
    #[error("Number of processes must be at least 1")]
    NoProcesses,
    /// An initializer given by `PoolBuilder::initializer` (a closure over its
    /// `initargs`, which may hold manager proxies and other live handles)
    /// cannot cross an exec: with the spawn or forkserver start method the
    /// initializer must be given by `PoolBuilder::spawn_initializer`. This
    /// error, not a silently forked pool.
    #[error(
        "an initializer given by `initializer` runs under fork only, not {0:?}: \
         use `spawn_initializer`"
    )]
    UnsupportedStartMethod(crate::process::StartMethod),
    /// `maxtasksperchild(0)` (CPython: `maxtasksperchild must be a positive int or None`).
    #[error("maxtasksperchild must be a positive integer or None")]
    BadMaxTasks,
    /// `chunksize(0)`.
    #[error("Chunksize must be 1+, not 0")]
    BadChunksize,
    /// The pool was closed or terminated (CPython: `ValueError: Pool not running`).
    #[error("Pool not running")]
    NotRunning,
    /// `join` before `close`/`terminate` (CPython: `ValueError: Pool is still running`).
    #[error("Pool is still running")]
    StillRunning,
    /// A worker's initializer panicked (its message), or workers kept dying in it.
    #[error("pool initializer failed: {0}")]
    InitializerFailed(String),
    /// The task panicked with this message.
    #[error("task panicked: {0}")]
    TaskPanicked(String),
    /// The worker running the task died before answering.
    #[error("worker died (pid {pid}, exit code {exitcode:?}) while running this task")]
    WorkerDied {
        /// The worker's pid.
        pid: u32,
        /// Its exit code as Python reports it (`-9` after `kill -9`), if known.
        exitcode: Option<i32>,
    },
    /// The pool was terminated before the task finished.
    #[error("the pool was terminated before the task finished")]
    Terminated,
    /// `get_timeout` / `next_timeout` gave up (CPython: `multiprocessing.TimeoutError`).
    #[error("timed out waiting for the result")]
    Timeout,
    /// `successful()` before the result is ready (CPython: `ValueError`).
    #[error("the result is not ready")]
    NotReady,
    /// The result was already moved out (by `into_values`/`into_value`,
    /// `get_all`, or an `imap` iterator); `get` does not take it.
    #[error("the result was already taken")]
    AlreadyTaken,
    /// The items' iterator yielded more or fewer items than its exact
    /// `size_hint` promised (a `map` encodes items as they come and sizes its
    /// chunks from that promise).
    #[error("the items' iterator broke its size_hint: it promised exactly {promised} items")]
    BrokenSizeHint {
        /// The length the iterator promised.
        promised: usize,
    },
    /// A task argument could not be serialized (in this process; the
    /// serializer's message is kept: see [`WireError::Encode`]).
    #[error("cannot serialize a task argument: {0}")]
    Encode(#[source] Arc<WireError>),
    /// A task's result could not be serialized in the worker: the worker's
    /// message (it comes from the other process, so it is text).
    #[error("cannot serialize: {0}")]
    Serialize(String),
    /// A worker's answer could not be decoded: a task's result does not decode
    /// as the result type (postcard's error is the source), or the worker
    /// could not decode a task's argument, or sent a malformed frame (a
    /// description of what the other process sent).
    #[error("cannot decode: {what}")]
    Decode {
        /// What failed.
        what: String,
        /// The decoder's error, when this process's decoder failed.
        #[source]
        source: Option<Arc<postcard::Error>>,
    },
    /// Starting a worker failed.
    #[error("cannot start a worker: {0}")]
    Process(#[source] Arc<ProcessError>),
    /// The pool's dispatcher thread failed (a bug in procshare): every
    /// pending task fails with this.
    #[error("the pool's dispatcher thread failed")]
    DispatcherFailed,
    /// A system call failed.
    #[error("{what} failed: {source}")]
    Os {
        /// Which call.
        what: &'static str,
        /// The OS error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The input iterator of an `imap` panicked with this message: the
    /// results end with this error in its place (CPython re-raises the
    /// iterable's exception from the `imap` iterator's `next`).
    #[error("the input iterator panicked: {0}")]
    InputPanicked(String),
}

/// Two pool errors are equal when they are the same variant and display the
/// same text (every field is in the text; the sources, which have no equality
/// of their own, compare by their messages). This keeps
/// `assert_eq!(pool.apply(f, x), Ok(y))` working.
impl PartialEq for PoolError {
    fn eq(&self, other: &PoolError) -> bool {
        core::mem::discriminant(self) == core::mem::discriminant(other)
            && self.to_string() == other.to_string()
    }
}

impl Eq for PoolError {}

impl PoolError {
    pub(super) fn os(what: &'static str, e: std::io::Error) -> PoolError {
        PoolError::Os {
            what,
            source: Arc::new(e),
        }
    }

    /// A [`PoolError::Decode`] without a local decoder error.
    pub(crate) fn decode(what: impl Into<String>) -> PoolError {
        PoolError::Decode {
            what: what.into(),
            source: None,
        }
    }
}
