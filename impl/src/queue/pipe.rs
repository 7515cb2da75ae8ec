//! `Pipe<T>`: Python's `multiprocessing.Pipe`, a connected pair of
//! [`Connection`]s over a unix socket pair, carrying length-prefixed frames of
//! the wire codec ([`crate::codec::wire`]).

use core::marker::PhantomData;
use core::time::Duration;
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec::wire::{self, WireError};

/// Errors of [`Connection`] operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipeError {
    /// The peer closed its end (or died): Python's `EOFError` / `BrokenPipeError`.
    #[error("the other end of the pipe is closed")]
    Closed,
    /// Nothing arrived before the timeout.
    #[error("timed out")]
    Timeout,
    /// This end of a one-way pipe cannot do that (Python's `OSError: connection is write-only`).
    #[error("connection is {0}")]
    WrongDirection(&'static str),
    /// A frame was malformed, truncated or did not decode as `T`.
    #[error(transparent)]
    Wire(WireError),
    /// The socket failed.
    #[error("pipe i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl From<WireError> for PipeError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::Closed => PipeError::Closed,
            WireError::Io(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
                ) =>
            {
                PipeError::Closed
            }
            e => PipeError::Wire(e),
        }
    }
}

/// Makes connected pairs (Python's `Pipe(duplex=True)`).
///
/// `Pipe<T>`: Python's `multiprocessing.Pipe`, a connected pair of
/// [`Connection`]s over a unix socket pair, carrying length-prefixed frames of
/// the wire codec ([`crate::codec::wire`]).
///
/// ```
/// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
/// use procshare::{Pipe, Process};
/// let (parent, child) = Pipe::<String>::new(true).unwrap();
/// let mut p = Process::new(move || {
///     let s = child.recv().unwrap();
///     child.send(&format!("{s}!")).unwrap();
/// });
/// p.start().unwrap();
/// parent.send(&"hello".to_string()).unwrap();
/// assert_eq!(parent.recv().unwrap(), "hello!");
/// p.join().unwrap();
/// ```
///
/// # A dead peer
///
/// When every copy of the other end is closed (its process exited or was
/// killed), `recv` returns [`PipeError::Closed`] (Python's `EOFError`) and
/// `send` returns `Closed` (Python's `BrokenPipeError`): never a hang. As in
/// Python, a forked child inherits *both* ends; the end a process does not
/// use should be dropped there (the example moves `child` into the child, so
/// the parent's copy is dropped when the closure is, after `start`), or the
/// peer's death cannot be seen as end-of-file.
///
/// Shared objects (`Value`, `Array`, locks, queues) are not `Serialize` and
/// cannot be sent (a compile error: CPython's `RuntimeError` at compile time).
#[derive(Debug)]
pub struct Pipe<T>(PhantomData<fn(T) -> T>);

impl<T> Pipe<T> {
    /// A connected pair `(a, b)` (Python's `Pipe(duplex)` returns a pair too,
    /// hence `new` returning two connections). With `duplex`, both ends send and receive;
    /// without, `a` only receives and `b` only sends (as in Python).
    #[allow(clippy::new_ret_no_self)]
    pub fn new(duplex: bool) -> Result<(Connection<T>, Connection<T>), PipeError> {
        let (x, y) = UnixStream::pair()?;
        let a = Connection::from_stream(x, true, duplex);
        let b = Connection::from_stream(y, duplex, true);
        Ok((a, b))
    }
}

/// One end of a [`Pipe`]. `Clone` shares the same socket (do not `recv` on
/// two clones at once: frames would be split between them). Inherited by
/// forked children.
pub struct Connection<T> {
    sock: Arc<UnixStream>,
    readable: bool,
    writable: bool,
    limit: usize,
    _t: PhantomData<fn(T) -> T>,
}

impl<T> Clone for Connection<T> {
    fn clone(&self) -> Self {
        Connection {
            sock: self.sock.clone(),
            readable: self.readable,
            writable: self.writable,
            limit: self.limit,
            _t: PhantomData,
        }
    }
}

impl<T> core::fmt::Debug for Connection<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Connection")
            .field("readable", &self.readable)
            .field("writable", &self.writable)
            .finish()
    }
}

impl<T> Connection<T> {
    fn from_stream(s: UnixStream, readable: bool, writable: bool) -> Self {
        Connection {
            sock: Arc::new(s),
            readable,
            writable,
            limit: wire::DEFAULT_LIMIT,
            _t: PhantomData,
        }
    }

    /// Can this end receive?
    pub fn readable(&self) -> bool {
        self.readable
    }

    /// Can this end send?
    pub fn writable(&self) -> bool {
        self.writable
    }

    /// Is there something to receive (data or end-of-file) within `timeout`
    /// (`Duration::ZERO`: right now; `None`: wait)?
    pub fn poll(&self, timeout: Option<Duration>) -> Result<bool, PipeError> {
        if !self.readable {
            return Err(PipeError::WrongDirection("write-only"));
        }
        crate::sys::io::readable(self.sock.as_fd(), timeout).map_err(PipeError::Io)
    }
}

impl<T> Connection<T> {
    /// Send raw bytes as one frame, whatever they encode (interoperation and
    /// tests: a receiver that cannot decode them gets an error for that frame).
    ///
    /// ```
    /// let (a, b) = procshare::Pipe::<bool>::new(true).unwrap();
    /// a.send_bytes(&[7]).unwrap(); // not a bool
    /// assert!(b.recv().is_err());
    /// a.send_bytes(&[1]).unwrap();
    /// assert!(b.recv().unwrap());
    /// ```
    pub fn send_bytes(&self, payload: &[u8]) -> Result<(), PipeError> {
        if !self.writable {
            return Err(PipeError::WrongDirection("read-only"));
        }
        let mut w: &UnixStream = &self.sock;
        wire::write_frame_bytes(&mut w, payload)?;
        Ok(())
    }

    /// Send raw bytes with no framing at all (tests of truncated input).
    #[doc(hidden)]
    pub fn send_unframed(&self, bytes: &[u8]) -> Result<(), PipeError> {
        let mut w: &UnixStream = &self.sock;
        w.write_all(bytes)?;
        Ok(())
    }
}

impl<T: Serialize> Connection<T> {
    /// Send a copy of `v` as one frame.
    pub fn send(&self, v: &T) -> Result<(), PipeError> {
        if !self.writable {
            return Err(PipeError::WrongDirection("read-only"));
        }
        let mut w: &UnixStream = &self.sock;
        wire::write_frame(&mut w, v)?;
        w.flush()?;
        Ok(())
    }
}

impl<T: DeserializeOwned> Connection<T> {
    /// Receive the next value, waiting as long as needed; [`PipeError::Closed`]
    /// once the peer is gone and everything it sent was received.
    pub fn recv(&self) -> Result<T, PipeError> {
        if !self.readable {
            return Err(PipeError::WrongDirection("write-only"));
        }
        let mut r: &UnixStream = &self.sock;
        Ok(wire::read_frame(&mut r, self.limit)?)
    }

    /// Receive, waiting at most `timeout` for the frame to start arriving.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, PipeError> {
        if !self.poll(Some(timeout))? {
            return Err(PipeError::Timeout);
        }
        self.recv()
    }
}
