//! Connections: Python's `multiprocessing.connection`. [`Pipe`] makes a
//! connected pair of [`Connection`]s over a unix socket pair; a [`Listener`]
//! accepts them and [`Client`] opens them by address (unix path, abstract unix
//! name, TCP), authenticated with an [`AuthKey`](crate::AuthKey); [`wait`]
//! waits for any of several connections, listeners or process sentinels.
//!
//! Every message is one length-prefixed frame of the wire codec
//! ([`crate::codec::wire`]): `send`/`recv` carry a postcard-encoded value,
//! `send_bytes`/`recv_bytes` the bytes as they are. Both framings are one: a
//! `recv_bytes` of a `send` gets the value's encoding, as CPython's
//! `recv_bytes` of a `send` gets the pickle.

mod listener;
mod spawn_arg;
mod wait;

pub use listener::{Client, Family, Listener};
pub use wait::wait;

use core::marker::PhantomData;
use core::time::Duration;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec::auth::AuthError;
use crate::codec::wire::{self, WireError, HEADER_LEN};
use crate::manager::AddressError;

/// Errors of [`Connection`], [`Listener`] and [`Client`] operations.
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
    /// The next message is longer than the `maxlength` given to
    /// [`Connection::recv_bytes`] (or than the connection's size limit).
    /// CPython's `OSError: bad message length`. The message was not read, so
    /// the connection is out of step with its peer: as CPython closes it, every
    /// later operation on it (and on its clones) is [`PipeError::Unusable`].
    #[error("bad message length: {len} bytes, at most {maxlength} accepted; the connection is now unusable")]
    TooLong {
        /// The length the message announced.
        len: u64,
        /// The most that was accepted.
        maxlength: usize,
    },
    /// An earlier message was refused in the middle ([`PipeError::TooLong`], or
    /// a read failed inside a frame): the connection cannot be used any more
    /// (CPython's `OSError: handle is closed` after it closed the connection).
    #[error("the connection is unusable (an earlier message was refused half-read)")]
    Unusable,
    /// The message does not fit in the buffer given to
    /// [`Connection::recv_bytes_into`] from its offset. CPython's
    /// `BufferTooShort`, which likewise holds the whole message: it was
    /// received (the connection goes on), and is here.
    #[error("buffer too short for a message of {} bytes", .0.len())]
    BufferTooShort(Vec<u8>),
    /// `offset`/`size` given to [`Connection::send_bytes`] or
    /// [`Connection::recv_bytes_into`] lie outside the buffer (CPython's
    /// `ValueError`). Nothing was sent or received.
    #[error("offset {offset} and size {size:?} outside a buffer of {len} bytes")]
    OutOfRange {
        /// The offset given.
        offset: usize,
        /// The size given (`None`: the rest of the buffer).
        size: Option<usize>,
        /// The buffer's length.
        len: usize,
    },
    /// The peer's authentication failed, or it refused ours (wrong key on
    /// either side): CPython's `AuthenticationError`. The connection is dropped.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The message received carries no descriptor (or not a connection, for
    /// [`Connection::recv_connection`]): CPython's `RuntimeError` from
    /// `reduction.recv_handle`. The message was consumed.
    #[error("the message carries no descriptor of the expected kind")]
    NoHandle,
    /// The string given is not an address.
    #[error(transparent)]
    Address(#[from] AddressError),
}

impl From<WireError> for PipeError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::Closed => PipeError::Closed,
            WireError::Io(e) if is_gone(&e) => PipeError::Closed,
            e => PipeError::Wire(e),
        }
    }
}

impl From<std::convert::Infallible> for PipeError {
    fn from(e: std::convert::Infallible) -> Self {
        match e {}
    }
}

fn is_gone(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
    )
}

fn io_err(e: io::Error) -> PipeError {
    if is_gone(&e) {
        PipeError::Closed
    } else {
        PipeError::Io(e)
    }
}

/// Makes connected pairs (Python's `Pipe(duplex=True)`).
///
/// `Pipe<T>`: Python's `multiprocessing.Pipe`, a connected pair of
/// [`Connection`]s over a unix socket pair, carrying length-prefixed frames of
/// the wire codec (a 4-byte little-endian length, then the payload).
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
/// A `Connection` itself can travel: as an argument of a spawned or
/// forkserver child, or over another connection
/// ([`Connection::send_connection`]), its descriptor passed with `SCM_RIGHTS`.
#[derive(Debug)]
pub struct Pipe<T>(PhantomData<fn(T) -> T>);

impl<T> Pipe<T> {
    /// A connected pair `(a, b)` (Python's `Pipe(duplex)` returns a pair too,
    /// hence `new` returning two connections). With `duplex`, both ends send and receive;
    /// without, `a` only receives and `b` only sends (as in Python).
    #[allow(clippy::new_ret_no_self)]
    pub fn new(duplex: bool) -> Result<(Connection<T>, Connection<T>), PipeError> {
        let (x, y) = UnixStream::pair()?;
        let a = Connection::from_sock(Sock::Unix(x), true, duplex);
        let b = Connection::from_sock(Sock::Unix(y), duplex, true);
        Ok((a, b))
    }
}

/// The socket under a connection.
#[derive(Debug)]
pub(crate) enum Sock {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Sock {
    /// The kind's tag where a connection travels (fd passing, spawn arguments).
    fn kind(&self) -> u8 {
        match self {
            Sock::Unix(_) => KIND_UNIX,
            Sock::Tcp(_) => KIND_TCP,
        }
    }

    fn from_kind(kind: u8, fd: OwnedFd) -> Option<Sock> {
        match kind {
            KIND_UNIX => Some(Sock::Unix(UnixStream::from(fd))),
            KIND_TCP => Some(Sock::Tcp(TcpStream::from(fd))),
            _ => None,
        }
    }
}

const KIND_HANDLE: u8 = 0;
const KIND_UNIX: u8 = 1;
const KIND_TCP: u8 = 2;
/// First payload byte of a frame that carries a descriptor.
const HANDLE_TAG: u8 = b'H';
/// A descriptor frame's payload: tag, kind, readable, writable.
const HANDLE_FRAME_LEN: usize = 4;

impl AsFd for Sock {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Sock::Unix(s) => s.as_fd(),
            Sock::Tcp(s) => s.as_fd(),
        }
    }
}

impl Read for &Sock {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Sock::Unix(s) => (&*s).read(buf),
            Sock::Tcp(s) => (&*s).read(buf),
        }
    }
}

impl Write for &Sock {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sock::Unix(s) => (&*s).write(buf),
            Sock::Tcp(s) => (&*s).write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[derive(Debug)]
struct Shared {
    sock: Sock,
    /// Set once a frame was refused or broken half-read: the stream is out of step.
    unusable: AtomicBool,
}

/// One end of a [`Pipe`], or a connection made by a [`Listener`] or a
/// [`Client`]. `Clone` shares the same socket (do not `recv` on
/// two clones at once: frames would be split between them). Inherited by
/// forked children; passed to spawned and forkserver children as an
/// argument; sent over another connection with
/// [`send_connection`](Connection::send_connection).
///
/// Dropping the last clone in a process closes this process's descriptor
/// (Python's `close()`; here [`Connection::close`] consumes the handle).
pub struct Connection<T> {
    inner: Arc<Shared>,
    readable: bool,
    writable: bool,
    limit: usize,
    _t: PhantomData<fn(T) -> T>,
}

impl<T> Clone for Connection<T> {
    fn clone(&self) -> Self {
        Connection {
            inner: self.inner.clone(),
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
            .field("unusable", &self.is_closed())
            .finish()
    }
}

impl<T> AsFd for Connection<T> {
    /// The socket (Python's `fileno()`), e.g. for [`wait`].
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.sock.as_fd()
    }
}

/// Reads into `buf` until full or end of stream; returns the bytes read.
fn read_full(mut r: &Sock, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

impl<T> Connection<T> {
    pub(crate) fn from_sock(s: Sock, readable: bool, writable: bool) -> Self {
        Connection {
            inner: Arc::new(Shared {
                sock: s,
                unusable: AtomicBool::new(false),
            }),
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

    /// Was this connection made unusable by a message refused half-read
    /// ([`PipeError::TooLong`])? CPython's `closed` after it closed the
    /// connection; an open, usable connection is `false`.
    pub fn is_closed(&self) -> bool {
        self.inner.unusable.load(Ordering::Relaxed)
    }

    /// Closes this handle (Python's `close()`): the descriptor is closed once
    /// the last clone in this process is dropped too.
    pub fn close(self) {}

    /// The same connection, carrying values of another type (the socket is
    /// shared, as with `clone`).
    ///
    /// ```
    /// let (a, b) = procshare::Pipe::<u8>::new(true).unwrap();
    /// a.retype::<String>().send(&"x".to_string()).unwrap();
    /// assert_eq!(b.retype::<String>().recv().unwrap(), "x");
    /// ```
    pub fn retype<U>(&self) -> Connection<U> {
        Connection {
            inner: self.inner.clone(),
            readable: self.readable,
            writable: self.writable,
            limit: self.limit,
            _t: PhantomData,
        }
    }

    fn check_read(&self) -> Result<(), PipeError> {
        if self.is_closed() {
            return Err(PipeError::Unusable);
        }
        if !self.readable {
            return Err(PipeError::WrongDirection("write-only"));
        }
        Ok(())
    }

    fn check_write(&self) -> Result<(), PipeError> {
        if self.is_closed() {
            return Err(PipeError::Unusable);
        }
        if !self.writable {
            return Err(PipeError::WrongDirection("read-only"));
        }
        Ok(())
    }

    fn poison(&self) {
        self.inner.unusable.store(true, Ordering::Relaxed);
    }

    /// Is there something to receive (data or end-of-file) within `timeout`
    /// (`Duration::ZERO`: right now, Python's `poll()`; `None`: wait, Python's
    /// `poll(None)`)?
    ///
    /// ```
    /// use std::time::Duration;
    /// let (a, b) = procshare::Pipe::<u8>::new(true).unwrap();
    /// assert!(!a.poll(Some(Duration::ZERO)).unwrap());
    /// b.send_bytes(b"", 0, None).unwrap();
    /// assert!(a.poll(Some(Duration::ZERO)).unwrap());
    /// ```
    pub fn poll(&self, timeout: Option<Duration>) -> Result<bool, PipeError> {
        self.check_read()?;
        crate::sys::io::readable(self.as_fd(), timeout).map_err(PipeError::Io)
    }

    /// Sends `buf[offset..offset + size]` (`size: None`: to the end) as one
    /// message, whatever it encodes (Python's `send_bytes(buf, offset, size)`).
    /// A range outside `buf` is [`PipeError::OutOfRange`] and sends nothing.
    ///
    /// ```
    /// let (a, b) = procshare::Pipe::<bool>::new(true).unwrap();
    /// a.send_bytes(b"abcdefgh", 2, Some(3)).unwrap();
    /// assert_eq!(b.recv_bytes(None).unwrap(), b"cde");
    /// assert!(a.send_bytes(b"ab", 1, Some(2)).is_err());
    /// a.send_bytes(&[7], 0, None).unwrap(); // not a bool
    /// assert!(b.recv().is_err());
    /// a.send_bytes(&[1], 0, None).unwrap(); // the encoding of `true`
    /// assert!(b.recv().unwrap());
    /// ```
    pub fn send_bytes(
        &self,
        buf: &[u8],
        offset: usize,
        size: Option<usize>,
    ) -> Result<(), PipeError> {
        let range = || PipeError::OutOfRange {
            offset,
            size,
            len: buf.len(),
        };
        let rest = buf.get(offset..).ok_or_else(range)?;
        let payload = match size {
            None => rest,
            Some(n) => rest.get(..n).ok_or_else(range)?,
        };
        self.check_write()?;
        let mut w: &Sock = &self.inner.sock;
        wire::write_frame_bytes(&mut w, payload)?;
        Ok(())
    }

    /// Receives the next message's bytes (Python's `recv_bytes(maxlength)`),
    /// whatever sent it (`send_bytes`, or `send`: then its encoding).
    /// `maxlength: None` accepts up to the connection's limit (64 MiB). A longer
    /// message is [`PipeError::TooLong`], and the connection is unusable
    /// afterwards (as CPython closes it); [`PipeError::Closed`] once the peer
    /// is gone and everything it sent was received.
    ///
    /// ```
    /// let (a, b) = procshare::Pipe::<u32>::new(true).unwrap();
    /// a.send_bytes(b"hello", 0, None).unwrap();
    /// assert_eq!(b.recv_bytes(Some(5)).unwrap(), b"hello");
    /// a.send_bytes(b"hello", 0, None).unwrap();
    /// assert!(matches!(b.recv_bytes(Some(4)), Err(procshare::PipeError::TooLong { len: 5, .. })));
    /// assert!(b.is_closed());
    /// ```
    pub fn recv_bytes(&self, maxlength: Option<usize>) -> Result<Vec<u8>, PipeError> {
        self.check_read()?;
        let len = self.recv_header(maxlength.unwrap_or(self.limit).min(self.limit))?;
        let mut v = vec![0u8; len];
        self.recv_payload(&mut v)?;
        Ok(v)
    }

    /// Receives the next message into `buf` from `offset` on (Python's
    /// `recv_bytes_into(buf, offset)`); returns its length. A message that does
    /// not fit is [`PipeError::BufferTooShort`] holding the message (it was
    /// received; the connection goes on); an `offset` past the end of `buf` is
    /// [`PipeError::OutOfRange`] and receives nothing.
    ///
    /// ```
    /// let (a, b) = procshare::Pipe::<u8>::new(true).unwrap();
    /// let mut buf = [0u8; 6];
    /// a.send_bytes(b"abc", 0, None).unwrap();
    /// assert_eq!(b.recv_bytes_into(&mut buf, 2).unwrap(), 3);
    /// assert_eq!(&buf, b"\0\0abc\0");
    /// a.send_bytes(b"abcdefg", 0, None).unwrap();
    /// match b.recv_bytes_into(&mut buf, 0) {
    ///     Err(procshare::PipeError::BufferTooShort(m)) => assert_eq!(m, b"abcdefg"),
    ///     other => panic!("{other:?}"),
    /// }
    /// ```
    pub fn recv_bytes_into(&self, buf: &mut [u8], offset: usize) -> Result<usize, PipeError> {
        let len_buf = buf.len();
        let room = buf.get_mut(offset..).ok_or(PipeError::OutOfRange {
            offset,
            size: None,
            len: len_buf,
        })?;
        self.check_read()?;
        let len = self.recv_header(self.limit)?;
        match room.get_mut(..len) {
            Some(dst) => {
                self.recv_payload(dst)?;
                Ok(len)
            }
            None => {
                let mut v = vec![0u8; len];
                self.recv_payload(&mut v)?;
                Err(PipeError::BufferTooShort(v))
            }
        }
    }

    /// Reads a frame header; refuses (and poisons) a frame over `maxlength`.
    fn recv_header(&self, maxlength: usize) -> Result<usize, PipeError> {
        let mut h = [0u8; HEADER_LEN];
        let got = read_full(&self.inner.sock, &mut h).map_err(io_err)?;
        self.header_of(&h, got, maxlength)
    }

    /// The payload length announced by the `got` bytes of header `h`.
    fn header_of(
        &self,
        h: &[u8; HEADER_LEN],
        got: usize,
        maxlength: usize,
    ) -> Result<usize, PipeError> {
        if got == 0 {
            return Err(PipeError::Closed);
        }
        if got < HEADER_LEN {
            self.poison();
            return Err(PipeError::Wire(WireError::Truncated {
                expected: HEADER_LEN,
                got,
            }));
        }
        let len = u32::from_le_bytes(*h) as usize;
        if len > maxlength {
            self.poison();
            return Err(PipeError::TooLong {
                len: len as u64,
                maxlength,
            });
        }
        Ok(len)
    }

    /// Reads a payload of exactly `dst.len()` bytes; a short or failed read
    /// poisons the connection (it is out of step).
    fn recv_payload(&self, dst: &mut [u8]) -> Result<(), PipeError> {
        match read_full(&self.inner.sock, dst) {
            Ok(n) if n == dst.len() => Ok(()),
            Ok(n) => {
                self.poison();
                Err(PipeError::Wire(WireError::Truncated {
                    expected: dst.len(),
                    got: n,
                }))
            }
            Err(e) => {
                self.poison();
                Err(io_err(e))
            }
        }
    }

    /// Send raw bytes with no framing at all (tests of truncated input).
    #[doc(hidden)]
    pub fn send_unframed(&self, bytes: &[u8]) -> Result<(), PipeError> {
        let mut w: &Sock = &self.inner.sock;
        w.write_all(bytes).map_err(io_err)?;
        Ok(())
    }

    /// Sends a descriptor (`SCM_RIGHTS`) as one message: CPython's
    /// `multiprocessing.reduction.send_handle(conn, fd, pid)`. The receiver
    /// gets its own copy with [`recv_handle`](Connection::recv_handle). Only
    /// over unix-socket connections (a [`Pipe`], or a unix-family [`Listener`]).
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use std::os::fd::AsFd;
    /// let (a, b) = procshare::Pipe::<()>::new(true).unwrap();
    /// let (x, y) = std::os::unix::net::UnixStream::pair().unwrap();
    /// a.send_handle(x.as_fd()).unwrap();
    /// drop(x);
    /// let mut x2 = std::os::unix::net::UnixStream::from(b.recv_handle().unwrap());
    /// x2.write_all(b"hi").unwrap();
    /// let mut got = [0u8; 2];
    /// (&y).read_exact(&mut got).unwrap();
    /// assert_eq!(&got, b"hi");
    /// ```
    pub fn send_handle(&self, fd: BorrowedFd<'_>) -> Result<(), PipeError> {
        self.send_fd(fd, KIND_HANDLE, false, false)
    }

    /// Receives a descriptor sent by [`send_handle`](Connection::send_handle)
    /// (or a connection's, sent by
    /// [`send_connection`](Connection::send_connection)): CPython's
    /// `reduction.recv_handle(conn)`. A message without one is
    /// [`PipeError::NoHandle`] (CPython's `RuntimeError`).
    pub fn recv_handle(&self) -> Result<OwnedFd, PipeError> {
        self.recv_fd().map(|(fd, _, _, _)| fd)
    }

    /// Sends a connection (its descriptor, with `SCM_RIGHTS`, and its
    /// direction) as one message: CPython pickles a `Connection` this way.
    /// The receiver gets a connection onto the same socket with
    /// [`recv_connection`](Connection::recv_connection). Only over unix-socket
    /// connections; the connection sent may be a unix or TCP one.
    ///
    /// ```
    /// let (a, b) = procshare::Pipe::<()>::new(true).unwrap();
    /// let (r, w) = procshare::Pipe::<String>::new(false).unwrap();
    /// a.send_connection(&w).unwrap();
    /// drop(w);
    /// let w2 = b.recv_connection::<String>().unwrap();
    /// assert!(w2.writable() && !w2.readable());
    /// w2.send(&"via a sent connection".to_string()).unwrap();
    /// assert_eq!(r.recv().unwrap(), "via a sent connection");
    /// ```
    pub fn send_connection<U>(&self, c: &Connection<U>) -> Result<(), PipeError> {
        self.send_fd(c.as_fd(), c.inner.sock.kind(), c.readable, c.writable)
    }

    /// Receives a connection sent by [`send_connection`](Connection::send_connection).
    /// A message that carries none is [`PipeError::NoHandle`].
    pub fn recv_connection<U>(&self) -> Result<Connection<U>, PipeError> {
        let (fd, kind, r, w) = self.recv_fd()?;
        let sock = Sock::from_kind(kind, fd).ok_or(PipeError::NoHandle)?;
        Ok(Connection::from_sock(sock, r, w))
    }

    fn send_fd(
        &self,
        fd: BorrowedFd<'_>,
        kind: u8,
        readable: bool,
        writable: bool,
    ) -> Result<(), PipeError> {
        self.check_write()?;
        if !matches!(self.inner.sock, Sock::Unix(_)) {
            return Err(PipeError::Io(io::Error::new(
                io::ErrorKind::Unsupported,
                "descriptors travel over unix-socket connections only",
            )));
        }
        let mut frame = (HANDLE_FRAME_LEN as u32).to_le_bytes().to_vec();
        frame.extend_from_slice(&[HANDLE_TAG, kind, readable as u8, writable as u8]);
        crate::sys::io::send_with_fds(self.as_fd(), &frame, &[fd]).map_err(io_err)
    }

    fn recv_fd(&self) -> Result<(OwnedFd, u8, bool, bool), PipeError> {
        self.check_read()?;
        let mut h = [0u8; HEADER_LEN];
        // The descriptors ride on the frame's first bytes: take them with the header.
        let (mut got, fds) = match crate::sys::io::recv_with_fds(self.as_fd(), true, &mut h) {
            Ok(Some(m)) => m,
            Ok(None) => return Err(PipeError::Closed),
            Err(e) => return Err(io_err(e)),
        };
        if got > 0 && got < HEADER_LEN {
            got += read_full(&self.inner.sock, &mut h[got..]).map_err(io_err)?;
        }
        // At most a handle frame's length: a longer message is out of step
        // (never a descriptor message).
        let len = self.header_of(&h, got, self.limit)?;
        let mut payload = vec![0u8; len];
        self.recv_payload(&mut payload)?;
        let fd = fds.into_iter().next();
        match (fd, payload.as_slice()) {
            (Some(fd), &[HANDLE_TAG, kind, r, w]) => Ok((fd, kind, r != 0, w != 0)),
            _ => Err(PipeError::NoHandle),
        }
    }
}

impl<T: Serialize> Connection<T> {
    /// Send a copy of `v` as one frame.
    pub fn send(&self, v: &T) -> Result<(), PipeError> {
        self.check_write()?;
        let mut w: &Sock = &self.inner.sock;
        wire::write_frame(&mut w, v)?;
        Ok(())
    }
}

impl<T: DeserializeOwned> Connection<T> {
    /// Receive the next value, waiting as long as needed; [`PipeError::Closed`]
    /// once the peer is gone and everything it sent was received. A message
    /// that does not decode as `T` is [`PipeError::Wire`] (it was consumed;
    /// the connection goes on).
    pub fn recv(&self) -> Result<T, PipeError> {
        let b = self.recv_bytes(None)?;
        Ok(wire::decode(&b)?)
    }

    /// Receive, waiting at most `timeout` for the frame to start arriving.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, PipeError> {
        if !self.poll(Some(timeout))? {
            return Err(PipeError::Timeout);
        }
        self.recv()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::interrupt::{interrupt_read, tid, wait_blocked, Call};

    /// A `recv` blocked in its read when a signal arrives (its handler
    /// installed without `SA_RESTART`, so the read fails with `EINTR`) goes on
    /// reading: the message sent after the signal is received, not an error.
    #[test]
    fn a_receive_interrupted_by_a_signal_goes_on() {
        let (a, b) = Pipe::<u64>::new(true).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            tx.send(tid()).unwrap();
            b.recv()
        });
        interrupt_read(rx.recv().unwrap());
        a.send(&7).unwrap();
        assert_eq!(t.join().unwrap().unwrap(), 7);
    }

    /// A handle message whose 4-byte header comes in two reads (1 byte with
    /// the `recvmsg` that would carry a descriptor, then the other 3): the
    /// header is assembled whole, and a message that carries no descriptor is
    /// `NoHandle` (not a truncated or corrupt header).
    #[test]
    fn a_handle_message_whose_header_comes_in_pieces_is_read_whole() {
        let (a, b) = Pipe::<()>::new(true).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            tx.send(tid()).unwrap();
            b.recv_handle()
        });
        let t_id = rx.recv().unwrap();
        let header = (HANDLE_FRAME_LEN as u32).to_le_bytes();
        wait_blocked(t_id, Call::RecvMsg);
        a.send_unframed(&header[..1]).unwrap();
        // The first byte was taken by `recvmsg`; the rest is read by a plain read.
        wait_blocked(t_id, Call::Read);
        let mut rest = header[1..].to_vec();
        rest.extend_from_slice(&[HANDLE_TAG, b'x', 0, 0]);
        a.send_unframed(&rest).unwrap();
        match t.join().unwrap() {
            Err(PipeError::NoHandle) => {}
            other => panic!("{other:?}"),
        }
    }
}
