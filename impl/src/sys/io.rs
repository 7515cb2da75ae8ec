//! Descriptors: poll, eventfd, sockets and their options, `SCM_RIGHTS`,
//! memfd, shared mappings, private directories.

use core::mem::MaybeUninit;
use core::ptr::NonNull;
use core::time::Duration;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Instant;

pub(crate) use rustix::event::{PollFd, PollFlags};

/// `poll(2)` on `fds` for at most `timeout` (`None`: no limit), retrying on
/// `EINTR` with the time left. Returns how many entries are ready (0: the
/// timeout passed); each entry's `revents()` tells what.
pub(crate) fn poll(fds: &mut [PollFd<'_>], timeout: Option<Duration>) -> io::Result<usize> {
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    loop {
        let left = match (timeout, deadline) {
            (None, _) => None,
            (Some(_), Some(d)) => Some(d.saturating_duration_since(Instant::now())),
            // A timeout too large to add to now: practically forever.
            (Some(_), None) => None,
        };
        let ts = left.map(|l| rustix::event::Timespec {
            tv_sec: l.as_secs().min(i64::MAX as u64) as _,
            tv_nsec: l.subsec_nanos() as _,
        });
        match rustix::event::poll(fds, ts.as_ref()) {
            Ok(n) => return Ok(n),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Is `fd` readable (data, end of stream, hang-up or error) within `timeout`?
pub(crate) fn readable(fd: BorrowedFd<'_>, timeout: Option<Duration>) -> io::Result<bool> {
    let mut p = [PollFd::new(&fd, PollFlags::IN)];
    Ok(poll(&mut p, timeout)? > 0)
}

/// Has the peer of the stream socket `fd` hung up (or the socket failed)?
/// Does not wait.
pub(crate) fn peer_hung_up(fd: BorrowedFd<'_>) -> bool {
    let mut p = [PollFd::new(&fd, PollFlags::RDHUP)];
    matches!(poll(&mut p, Some(Duration::ZERO)), Ok(n) if n > 0)
        && p[0]
            .revents()
            .intersects(PollFlags::RDHUP | PollFlags::HUP | PollFlags::ERR)
}

/// A non-blocking, close-on-exec eventfd used as a doorbell: [`ring`] it from
/// any thread, poll it for [`PollFlags::IN`], [`drain`] it.
pub(crate) fn doorbell() -> io::Result<OwnedFd> {
    use rustix::event::EventfdFlags;
    rustix::event::eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK).map_err(Into::into)
}

/// Rings a [`doorbell`] (adds 1; a saturated counter is readable anyway).
pub(crate) fn ring(fd: BorrowedFd<'_>) {
    let _ = rustix::io::write(fd, &1u64.to_ne_bytes());
}

/// Resets a [`doorbell`] to zero (non-blocking).
pub(crate) fn drain(fd: BorrowedFd<'_>) {
    let mut b = [0u8; 8];
    let _ = rustix::io::read(fd, &mut b);
}

/// Asks for `bytes` of send and receive buffer on the socket `fd` (best effort:
/// a refusal leaves the default sizes).
pub(crate) fn set_socket_buffers(fd: BorrowedFd<'_>, bytes: usize) {
    let _ = rustix::net::sockopt::set_socket_send_buffer_size(fd, bytes);
    let _ = rustix::net::sockopt::set_socket_recv_buffer_size(fd, bytes);
}

/// What a non-blocking [`send_nonblocking`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sent {
    /// This many bytes were taken.
    Bytes(usize),
    /// The socket's buffer is full.
    WouldBlock,
    /// The peer is gone (`EPIPE`, `ECONNRESET`, ...).
    Gone,
}

/// Sends from `buf` on the stream socket `fd` without blocking and without
/// `SIGPIPE` (a dead peer is [`Sent::Gone`]), retrying on `EINTR`.
pub(crate) fn send_nonblocking(fd: BorrowedFd<'_>, buf: &[u8]) -> Sent {
    use rustix::net::SendFlags;
    loop {
        match rustix::net::send(fd, buf, SendFlags::NOSIGNAL | SendFlags::DONTWAIT) {
            Ok(n) => return Sent::Bytes(n),
            Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::AGAIN) => return Sent::WouldBlock,
            Err(_) => return Sent::Gone,
        }
    }
}

/// What [`recv_nonblocking`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Received {
    /// This many bytes (0: the end of stream).
    Bytes(usize),
    /// Nothing is queued yet.
    WouldBlock,
    /// The socket failed (the peer reset it, ...).
    Failed,
}

/// Receives into `buf` from the stream socket `fd` without blocking (whatever
/// the descriptor's mode), retrying on `EINTR`.
pub(crate) fn recv_nonblocking(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Received {
    use rustix::net::RecvFlags;
    loop {
        match rustix::net::recv(fd, &mut *buf, RecvFlags::DONTWAIT) {
            Ok((n, _)) => return Received::Bytes(n),
            Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::AGAIN) => return Received::WouldBlock,
            Err(_) => return Received::Failed,
        }
    }
}

/// A connected pair of close-on-exec `AF_UNIX` `SOCK_SEQPACKET` sockets.
pub(crate) fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType};
    rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(Into::into)
}

/// The most descriptors one [`recv_with_fds`] accepts.
pub(crate) const MAX_FDS: usize = 253;

/// Sends `bytes` as one message on the socket `fd`, with `fds` attached
/// (`SCM_RIGHTS`); no `SIGPIPE`; retries on `EINTR`.
pub(crate) fn send_with_fds(
    fd: BorrowedFd<'_>,
    bytes: &[u8],
    fds: &[BorrowedFd<'_>],
) -> io::Result<()> {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    if fds.len() > MAX_FDS {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    let mut space = vec![MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(fds.len()))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    let iov = [io::IoSlice::new(bytes)];
    loop {
        match rustix::net::sendmsg(fd, &iov, &mut control, SendFlags::NOSIGNAL) {
            Ok(_) => return Ok(()),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Receives one message from the socket `fd` into `buf`, with the
/// descriptors attached to it (close-on-exec). `Ok(None)`: end of stream, or
/// (`block == false`) nothing there yet. Retries on `EINTR`.
pub(crate) fn recv_with_fds(
    fd: BorrowedFd<'_>,
    block: bool,
    buf: &mut [u8],
) -> io::Result<Option<(usize, Vec<OwnedFd>)>> {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    let mut space = vec![MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut flags = RecvFlags::CMSG_CLOEXEC;
    if !block {
        flags |= RecvFlags::DONTWAIT;
    }
    loop {
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let mut iov = [io::IoSliceMut::new(buf)];
        match rustix::net::recvmsg(fd, &mut iov, &mut control, flags) {
            Ok(m) => {
                let mut fds = Vec::new();
                for c in control.drain() {
                    if let RecvAncillaryMessage::ScmRights(it) = c {
                        fds.extend(it);
                    }
                }
                if m.bytes == 0 && fds.is_empty() {
                    return Ok(None);
                }
                return Ok(Some((m.bytes, fds)));
            }
            Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::AGAIN) if !block => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
}

/// A new close-on-exec memfd named `name`, `size` bytes long (zero-filled).
pub(crate) fn memfd(name: &core::ffi::CStr, size: u64) -> io::Result<OwnedFd> {
    let fd = rustix::fs::memfd_create(name, rustix::fs::MemfdFlags::CLOEXEC)?;
    rustix::fs::ftruncate(&fd, size)?;
    Ok(fd)
}

/// The size of the file behind `fd` (`fstat`).
pub(crate) fn file_size(fd: BorrowedFd<'_>) -> io::Result<u64> {
    Ok(rustix::fs::fstat(fd)?.st_size as u64)
}

/// A read-write `MAP_SHARED` mapping of a whole file, unmapped on drop.
#[derive(Debug)]
pub(crate) struct SharedMap {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory (shared with other processes anyway);
// the struct only hands out its address, and unmaps it once, on drop.
unsafe impl Send for SharedMap {}
// SAFETY: as above: `&SharedMap` only reads the address and length.
unsafe impl Sync for SharedMap {}

impl SharedMap {
    /// Maps the first `len` bytes of `fd` (`len > 0`, at most the file's size).
    /// The mapping stays valid as long as nobody truncates the file (a shorter
    /// file makes accesses past its end fault with `SIGBUS`).
    pub(crate) fn new(fd: BorrowedFd<'_>, len: usize) -> io::Result<SharedMap> {
        use rustix::mm::{MapFlags, ProtFlags};
        if len == 0 {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        // SAFETY: a fresh mapping at an address the kernel chooses (null hint):
        // it aliases no Rust object. Accesses through the pointer are the
        // callers' (shared-memory code's) responsibility.
        let p = unsafe {
            rustix::mm::mmap(
                core::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                fd,
                0,
            )
        }?;
        let ptr =
            NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(SharedMap { ptr, len })
    }

    /// The first byte (page-aligned).
    pub(crate) fn ptr(&self) -> NonNull<u8> {
        self.ptr
    }

    /// The length in bytes.
    #[allow(dead_code)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for SharedMap {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`, once; its owner
        // (a shared-memory segment) drops it only when no reference into it is
        // left.
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Creates a new private directory (mode `0700`) `<parent>/<prefix><random>`
/// (as `mkdtemp` does: a fresh random name until one does not exist yet).
pub(crate) fn private_dir(parent: &Path, prefix: &str) -> io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    for _ in 0..100 {
        let mut r = [0u8; 8];
        super::getrandom(&mut r)?;
        let suffix: String = r
            .iter()
            .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
            .collect();
        let path = parent.join(format!("{prefix}{suffix}"));
        match std::fs::DirBuilder::new().mode(0o700).create(&path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::from(io::ErrorKind::AlreadyExists))
}

/// Closes this process's copies of the descriptors `fds`, inherited through a
/// fork and owned by no Rust object here (the objects that own them are the
/// parent's, copied in memory, and are never dropped in the child).
///
/// A number that is not open is skipped (`EBADF`, ignored). That happens:
/// the kernel's `fork` copies the descriptor table before the memory, so a
/// descriptor another thread opened and recorded in between (`pool::fds`'
/// table of numbers to close in children) is in the child's copy of the
/// table but not among its descriptors (measured with an instrumented build:
/// about once in 3 runs of tests/cpython_pool.rs with 8 test threads, always a
/// pool's just-made wake-up eventfd). Not rustix's `close`: in a debug build
/// it asserts that the call succeeded, and this runs in the fork child
/// handler, an `extern "C"` function, where that panic aborted the child
/// (SIGABRT).
pub(crate) fn close_inherited(fds: &[std::os::fd::RawFd]) {
    for &fd in fds {
        // SAFETY: per the contract above, nothing in this process owns or uses
        // `fd` afterwards; closing an fd number has no memory effect. libc:
        // see the module table of `sys` (the error is ignored on purpose).
        unsafe { libc::close(fd) };
    }
}

#[cfg(test)]
mod close_tests {
    /// A number that is not open is skipped, in a debug build too (rustix's
    /// `close` panicked there: `assertion failed: !(-4095..0).contains(..)`).
    #[test]
    fn closing_a_number_that_is_not_open_is_not_an_error() {
        // Far above any descriptor this test binary opens (a just-closed
        // number could be another test thread's by now).
        super::close_inherited(&[1 << 20]);
    }
}
