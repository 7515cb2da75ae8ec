//! POSIX named shared memory (`shm_open` names: files under `/dev/shm`, as glibc
//! implements them) and the few
//! calls its tracker needs: abstract unix sockets carrying pidfds, `poll`,
//! `setsid`, and the start of the tracker process.
//!
//! Every function here is a thin, typed wrapper; the policy (names, tracking,
//! layout) lives in [`crate::shared_memory`].

use std::ffi::{CStr, CString};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::fs::Mode;
use rustix::fs::OFlags;
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketAddrUnix, SocketFlags, SocketType,
};

/// `shm_open(name, O_CREAT|O_EXCL|O_RDWR, 0600)`: a new object. `path` is
/// `/dev/shm/<name>` ([`shm_path`]): glibc's `shm_open` is this very `open`
/// (with `O_NOFOLLOW|O_CLOEXEC`), which CPython calls. (rustix's `shm::open`
/// counts the leading `/` in the 255-byte limit, so it refuses names of 255
/// bytes that glibc and CPython accept.)
pub(crate) fn shm_create_excl(path: &CStr) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        path,
        OFlags::CREATE | OFlags::EXCL | OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )?)
}

/// `shm_open(name, O_RDWR)` (`write`) or `O_RDONLY`: an existing object.
pub(crate) fn shm_open_existing(path: &CStr, write: bool) -> io::Result<OwnedFd> {
    let rw = if write { OFlags::RDWR } else { OFlags::RDONLY };
    Ok(rustix::fs::open(
        path,
        rw | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// `shm_unlink(name)` (`path` from [`shm_path`]).
pub(crate) fn shm_unlink(path: &CStr) -> io::Result<()> {
    Ok(rustix::fs::unlink(path)?)
}

/// `ftruncate(fd, len)`.
pub(crate) fn ftruncate(fd: BorrowedFd<'_>, len: u64) -> io::Result<()> {
    Ok(rustix::fs::ftruncate(fd, len)?)
}

/// What `fstat` says about an object: its size and identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileId {
    /// `st_size`.
    pub(crate) size: u64,
    /// `st_dev`.
    pub(crate) dev: u64,
    /// `st_ino`.
    pub(crate) ino: u64,
}

/// `fstat(fd)`: size, device and inode.
pub(crate) fn fstat(fd: BorrowedFd<'_>) -> io::Result<FileId> {
    let st = rustix::fs::fstat(fd)?;
    Ok(FileId {
        size: st.st_size as u64,
        dev: st.st_dev,
        ino: st.st_ino,
    })
}

/// A shared, readable and writable mapping of a whole shared-memory object.
///
/// The mapping is never turned into a Rust reference here: other processes
/// write the same bytes at any time, so its users access it through raw
/// pointers with atomic operations (see `crate::shared_memory`'s soundness
/// notes). An empty object is represented without a mapping (`mmap` refuses
/// length 0), by a dangling, well-aligned pointer.
#[derive(Debug)]
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: a Mapping is a base address and a length; all accesses through it
// are atomic (see `crate::shared_memory`), so sharing it between threads is
// as sound as sharing it between processes.
unsafe impl Send for Mapping {}
// SAFETY: as above.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// `mmap(NULL, len, PROT_READ|PROT_WRITE, MAP_SHARED, fd, 0)`.
    pub(crate) fn map_shared(fd: BorrowedFd<'_>, len: usize) -> io::Result<Mapping> {
        if len == 0 {
            return Ok(Mapping {
                ptr: NonNull::<u64>::dangling().cast(),
                len: 0,
            });
        }
        // SAFETY: a fresh mapping chosen by the kernel (NULL hint, no
        // MAP_FIXED), so no existing Rust object is affected; the result is
        // only dereferenced within `len` bytes while `self` lives.
        let p = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::SHARED,
                fd,
                0,
            )?
        };
        let ptr = NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave NULL"))?;
        Ok(Mapping { ptr, len })
    }

    /// The base address (page-aligned, or dangling and 8-aligned when empty).
    pub(crate) fn ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The mapped length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Copies `out.len()` bytes at `off` into `out`, with relaxed atomic
    /// loads (8 bytes at a time where the address is 8-aligned, else one byte
    /// at a time): another process may write them concurrently, which is then
    /// not a data race; an aligned 8-byte value is never torn.
    ///
    /// Panics if the range is not inside the mapping.
    pub(crate) fn read(&self, off: usize, out: &mut [u8]) {
        let end = off.checked_add(out.len()).expect("range overflow");
        assert!(
            end <= self.len,
            "range {off}..{end} outside a mapping of {} bytes",
            self.len
        );
        let mut i = 0;
        while i < out.len() {
            let p = self.ptr.as_ptr().wrapping_add(off + i);
            if p as usize % 8 == 0 && out.len() - i >= 8 {
                // SAFETY: `p` is 8-aligned and `p..p+8` lies inside the live
                // mapping (checked above); the memory is only ever accessed
                // atomically by this crate, and AtomicU64 has u64's layout.
                let v = unsafe { (*p.cast::<AtomicU64>()).load(Ordering::Relaxed) };
                out[i..i + 8].copy_from_slice(&v.to_ne_bytes());
                i += 8;
            } else {
                // SAFETY: `p` lies inside the live mapping; AtomicU8 has no
                // alignment requirement beyond 1.
                out[i] = unsafe { (*p.cast::<AtomicU8>()).load(Ordering::Relaxed) };
                i += 1;
            }
        }
    }

    /// Copies `data` to `off`, with relaxed atomic stores (8 bytes at a time
    /// where the address is 8-aligned): see [`Mapping::read`].
    ///
    /// Panics if the range is not inside the mapping.
    pub(crate) fn write(&self, off: usize, data: &[u8]) {
        let end = off.checked_add(data.len()).expect("range overflow");
        assert!(
            end <= self.len,
            "range {off}..{end} outside a mapping of {} bytes",
            self.len
        );
        let mut i = 0;
        while i < data.len() {
            let p = self.ptr.as_ptr().wrapping_add(off + i);
            if p as usize % 8 == 0 && data.len() - i >= 8 {
                let v = u64::from_ne_bytes(data[i..i + 8].try_into().expect("8 bytes"));
                // SAFETY: as in `read`: aligned, inside the live mapping.
                unsafe { (*p.cast::<AtomicU64>()).store(v, Ordering::Relaxed) };
                i += 8;
            } else {
                // SAFETY: as in `read`: inside the live mapping.
                unsafe { (*p.cast::<AtomicU8>()).store(data[i], Ordering::Relaxed) };
                i += 1;
            }
        }
    }

    /// The whole mapping as a byte slice.
    ///
    /// # Safety
    /// For as long as the slice lives, no process (this one included) may
    /// write the mapping.
    pub(crate) unsafe fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr..ptr+len` is a live mapping (or an empty dangling
        // range); the caller promises no writer while the borrow lives.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The whole mapping as a mutable byte slice.
    ///
    /// # Safety
    /// For as long as the slice lives, no process (this one included) may
    /// read or write the mapping other than through it.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn bytes_mut(&self) -> &mut [u8] {
        // SAFETY: as `bytes`, with exclusive access promised by the caller.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: unmaps exactly the range mmap returned; no reference
            // into it outlives `self` (accessors borrow the owner).
            let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
        }
    }
}

/// A unix `SOCK_SEQPACKET` socket bound to an abstract address and listening
/// (close-on-exec, non-blocking accept).
pub(crate) fn listen_abstract(name: &[u8]) -> io::Result<OwnedFd> {
    let addr = SocketAddrUnix::new_abstract_name(name)?;
    let fd = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?;
    rustix::net::bind(&fd, &addr)?;
    rustix::net::listen(&fd, 128)?;
    Ok(fd)
}

/// Connects a `SOCK_SEQPACKET` socket to an abstract address (close-on-exec).
pub(crate) fn connect_abstract(name: &[u8]) -> io::Result<OwnedFd> {
    let addr = SocketAddrUnix::new_abstract_name(name)?;
    let fd = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?;
    rustix::net::connect(&fd, &addr)?;
    Ok(fd)
}

/// Accepts one connection if one is waiting (`Ok(None)` otherwise). The
/// accepted socket blocks, with `timeout` on its receives.
pub(crate) fn accept(listener: BorrowedFd<'_>, timeout: Duration) -> io::Result<Option<OwnedFd>> {
    match rustix::net::accept_with(listener, SocketFlags::CLOEXEC) {
        Ok(fd) => {
            rustix::net::sockopt::set_socket_timeout(
                &fd,
                rustix::net::sockopt::Timeout::Recv,
                Some(timeout),
            )?;
            Ok(Some(fd))
        }
        Err(rustix::io::Errno::AGAIN) | Err(rustix::io::Errno::INTR) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Sends one message carrying `fds` (`SCM_RIGHTS`, at most 4).
pub(crate) fn send_with_fds(
    sock: BorrowedFd<'_>,
    bytes: &[u8],
    fds: &[BorrowedFd<'_>],
) -> io::Result<()> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(4))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::other("too many descriptors for one message"));
    }
    loop {
        match rustix::net::sendmsg(
            sock,
            &[io::IoSlice::new(bytes)],
            &mut control,
            SendFlags::NOSIGNAL,
        ) {
            Ok(_) => return Ok(()),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Receives one message and the descriptors it carries (at most 4 kept).
/// `Ok((0, []))` is the end of the stream.
pub(crate) fn recv_with_fds(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(4))];
    loop {
        let mut control = RecvAncillaryBuffer::new(&mut space);
        match rustix::net::recvmsg(
            sock,
            &mut [io::IoSliceMut::new(buf)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Ok(m) => {
                let mut fds = Vec::new();
                for msg in control.drain() {
                    if let RecvAncillaryMessage::ScmRights(it) = msg {
                        fds.extend(it);
                    }
                }
                return Ok((m.bytes, fds));
            }
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// A pidfd of the calling process.
pub(crate) fn pidfd_self() -> io::Result<OwnedFd> {
    Ok(rustix::process::pidfd_open(
        rustix::process::getpid(),
        rustix::process::PidfdFlags::empty(),
    )?)
}

/// A pidfd of process `pid` (`None` if it does not exist).
pub(crate) fn pidfd_of(pid: u32) -> Option<OwnedFd> {
    let pid = rustix::process::Pid::from_raw(i32::try_from(pid).ok()?)?;
    rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()
}

/// Waits until one of `fds` is readable (or hung up), or `timeout` passes.
/// Returns which are ready (all `false` on time-out).
pub(crate) fn poll_readable(
    fds: &[BorrowedFd<'_>],
    timeout: Option<Duration>,
) -> io::Result<Vec<bool>> {
    let mut p: Vec<PollFd<'_>> = fds.iter().map(|f| PollFd::new(f, PollFlags::IN)).collect();
    let ts = timeout.map(|t| Timespec {
        tv_sec: t.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: t.subsec_nanos() as _,
    });
    loop {
        match rustix::event::poll(&mut p, ts.as_ref()) {
            Ok(_) => return Ok(p.iter().map(|x| !x.revents().is_empty()).collect()),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// `setsid()`: leave the caller's session and process group (so a Ctrl-C
/// sent to the terminal's foreground group does not reach the caller).
pub(crate) fn setsid() {
    let _ = rustix::process::setsid();
}

/// Starts `/proc/self/exe` (this very binary) with `env` set and the
/// descriptors `keep` inherited (every other close-on-exec descriptor is
/// closed by the exec; standard input, output and error are `/dev/null`).
pub(crate) fn exec_self_with(
    env: (&str, &str),
    keep: &[BorrowedFd<'_>],
) -> io::Result<std::process::Child> {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new("/proc/self/exe");
    cmd.arg0("procshare-shm-tracker")
        .env(env.0, env.1)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let keep: Vec<i32> = keep.iter().map(|f| f.as_raw_fd()).collect();
    // SAFETY: the closure runs between fork and exec and makes only
    // async-signal-safe system calls (fcntl) on descriptor numbers that stay
    // open in the parent for the duration of `spawn`.
    unsafe {
        cmd.pre_exec(move || {
            for &fd in &keep {
                let b = BorrowedFd::borrow_raw(fd);
                rustix::io::fcntl_setfd(b, rustix::io::FdFlags::empty())?;
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// Takes ownership of an inherited descriptor number (in the tracker process,
/// which was given it by [`exec_self_with`]) and makes it close-on-exec again.
pub(crate) fn adopt_inherited_fd(fd: i32) -> io::Result<OwnedFd> {
    if fd < 3 {
        return Err(io::Error::other("not an inherited descriptor"));
    }
    // SAFETY: checks that `fd` is open before taking it: F_GETFD fails on a
    // closed descriptor. The descriptor was passed to this process for it alone.
    let owned = unsafe {
        let b = BorrowedFd::borrow_raw(fd);
        rustix::io::fcntl_getfd(b)?;
        std::os::fd::FromRawFd::from_raw_fd(fd)
    };
    let owned: OwnedFd = owned;
    rustix::io::fcntl_setfd(owned.as_fd(), rustix::io::FdFlags::CLOEXEC)?;
    Ok(owned)
}

/// The file of shared-memory object `name` (CPython's `"/" + name`):
/// `/dev/shm/<name>` (`None` if `name` holds a NUL byte).
pub(crate) fn shm_path(name: &str) -> Option<CString> {
    CString::new(format!("/dev/shm/{name}")).ok()
}

/// A connected pair of unix `SOCK_SEQPACKET` sockets (close-on-exec).
pub(crate) fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?)
}
