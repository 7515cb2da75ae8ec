//! The request a parent sends a child (payload memfd, status socket, segments)
//! and the status messages on that socket.

use super::*;

// ---------------------------------------------------------------------------
// The request.

/// Identity of the running executable file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct ExeId {
    pub(super) dev: u64,
    pub(super) ino: u64,
    pub(super) size: u64,
    pub(super) mtime: i64,
    pub(super) mtime_nsec: i64,
}

impl ExeId {
    pub(super) fn current() -> Result<ExeId, SpawnError> {
        let m = crate::sys::proc::self_exe_metadata().map_err(os_err("stat /proc/self/exe"))?;
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
pub(super) struct Payload {
    pub(super) magic: u64,
    pub(super) exe: ExeId,
    pub(super) trampoline: i64,
    pub(super) function: i64,
    pub(super) args: Vec<u8>,
    /// How many of the descriptors after the segments' are plain ones
    /// ([`Exporter::fd`]): they come last.
    pub(super) fds: u32,
    /// The child's identity and its parent's (see `process::me`).
    pub(super) info: crate::process::me::ChildInfo,
    /// The managers of the proxies among the arguments, with their auth keys
    /// (see `manager::spawn`): this payload is a private memfd.
    pub(super) managers: Vec<u8>,
}

/// Messages on a child's status socket.
#[derive(Debug, Serialize, Deserialize)]
pub(super) enum Status {
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
    pub(super) payload: OwnedFd,
    pub(super) segments: Vec<Arc<Segment>>,
    pub(super) fds: Vec<OwnedFd>,
}

/// Is procshare's code part of the executable file (so that an exec of
/// `/proc/self/exe` runs [`spawn_entry`])? Checked once.
pub(super) fn check_in_executable() -> Result<(), SpawnError> {
    // Not a `OnceLock`: a forked child needs it too (`LazyFlag` says why).
    static IN_EXE: crate::sys::fork::LazyFlag = crate::sys::fork::LazyFlag::new();
    let ok = IN_EXE
        .get_or_compute(|| ExeId::current().is_ok_and(|exe| in_exe_code(anchor_addr(), exe.ino)));
    if ok {
        Ok(())
    } else {
        Err(SpawnError::NotInExecutable)
    }
}

impl Request {
    pub(crate) fn new(
        target: &dyn FnTarget,
        info: &crate::process::me::ChildInfo,
    ) -> Result<Request, SpawnError> {
        check_in_executable()?;
        let mut ex = Exporter::default();
        let collect = crate::manager::spawn::Collect::begin();
        target.export(&mut ex)?;
        let managers = collect.finish();
        if ex.segments.len() + ex.fds.len() > MAX_SEGMENTS {
            return Err(SpawnError::TooManySegments(
                ex.segments.len() + ex.fds.len(),
            ));
        }
        let (trampoline, function) = target.offsets();
        let payload = Payload {
            magic: PAYLOAD_MAGIC,
            exe: ExeId::current()?,
            trampoline,
            function,
            args: ex.bytes,
            fds: ex.fds.len() as u32,
            info: info.clone(),
            managers,
        };
        let bytes = crate::codec::wire::encode(&payload).map_err(SpawnError::Encode)?;
        let fd = crate::sys::io::memfd(c"procshare-spawn", 0).map_err(os_err("memfd_create"))?;
        let file = std::fs::File::from(fd);
        file.write_all_at(&bytes, 0)
            .map_err(os_err("write spawn payload"))?;
        Ok(Request {
            payload: file.into(),
            segments: ex.segments,
            fds: ex.fds,
        })
    }

    /// The segments' descriptors, then the plain ones ([`Exporter::fd`]).
    pub(super) fn segment_fds(&self) -> Vec<BorrowedFd<'_>> {
        self.segments
            .iter()
            .map(|s| s.fd().expect("checked by Exporter::segment"))
            .chain(self.fds.iter().map(|f| f.as_fd()))
            .collect()
    }
}

pub(super) fn seqpacket_pair() -> Result<(OwnedFd, OwnedFd), SpawnError> {
    crate::sys::io::seqpacket_pair().map_err(os_err("socketpair"))
}

pub(super) fn send_msg(
    fd: BorrowedFd<'_>,
    msg: &Status,
    fds: &[BorrowedFd<'_>],
) -> Result<(), SpawnError> {
    let bytes = crate::codec::wire::encode(msg).map_err(SpawnError::Encode)?;
    crate::sys::io::send_with_fds(fd, &bytes, fds).map_err(os_err("sendmsg"))
}

/// Receives one message and its descriptors (`Ok(None)`: end of stream, or
/// nothing there with `block == false`).
pub(super) fn recv_raw(
    fd: BorrowedFd<'_>,
    block: bool,
    buf: &mut [u8],
) -> Result<Option<(usize, Vec<OwnedFd>)>, SpawnError> {
    crate::sys::io::recv_with_fds(fd, block, buf).map_err(os_err("recvmsg"))
}

/// Receives one status message: `Ok(None)` on end of stream (or nothing yet,
/// without `block`).
pub(super) fn recv_status(
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
pub(super) fn poll_in(
    fds: &[BorrowedFd<'_>],
    timeout: Option<Duration>,
) -> Result<Vec<bool>, SpawnError> {
    use crate::sys::io::{PollFd, PollFlags};
    let mut p: Vec<PollFd<'_>> = fds.iter().map(|f| PollFd::new(f, PollFlags::IN)).collect();
    crate::sys::io::poll(&mut p, timeout).map_err(os_err("poll"))?;
    Ok(p.iter().map(|x| !x.revents().is_empty()).collect())
}

pub(super) fn pidfd_of(pid: RawPid) -> Option<OwnedFd> {
    crate::sys::proc::pidfd_open(pid)
}
