//! The parent's side: spawn (a fresh exec) and the fork server's client.

use super::*;
use crate::sys::fork::ForkLocal;

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
    /// Forkserver children: the pid of the server that forked it (our child).
    pub(crate) server: Option<RawPid>,
}

pub(super) fn exec_self(env_value: String, keep: &[RawFd]) -> Result<RawPid, SpawnError> {
    let arg0 = std::env::args_os()
        .next()
        .unwrap_or_else(|| "procshare-spawn".into());
    // Nothing but what we pass crosses the exec (as Python's spawn).
    crate::sys::proc::exec_self(&arg0, (ENV, &env_value), keep)
        .map_err(os_err("exec of /proc/self/exe"))
}

pub(super) fn reap_now(pid: RawPid) {
    let _ = crate::sys::proc::wait_child(pid, true);
}

/// Starts `target` by spawn: a fresh exec of this binary.
pub(crate) fn spawn(
    target: &dyn FnTarget,
    info: &crate::process::me::ChildInfo,
) -> Result<Launched, SpawnError> {
    let req = Request::new(target, info)?;
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
        server: None,
    })
}

pub(super) struct ServerConn {
    pub(super) sock: OwnedFd,
    pub(super) pid: RawPid,
}

impl Drop for ServerConn {
    fn drop(&mut self) {
        crate::pool::fds::untrack(self.sock.as_raw_fd());
    }
}

/// This process's fork server (one per process: a forked child starts its
/// own on first use; it never touches its parent's, whose lock another
/// thread of the parent may have held at the fork, and it does not keep
/// the parent's connection open: see `start_server`).
pub(super) static SERVER: ForkLocal<Mutex<Option<ServerConn>>> =
    ForkLocal::new(|| Mutex::new(None));

pub(super) fn start_server() -> Result<ServerConn, SpawnError> {
    // The server's children are reparented to us if it dies, so that a child
    // that then dies by a signal still has an exit code (see `served_exit`).
    // Without it (an error: not expected on Linux) only that case is lost.
    let _ = crate::sys::proc::become_subreaper();
    let (mine, theirs) = seqpacket_pair()?;
    let pid = exec_self(
        format!("forkserver:{}", theirs.as_raw_fd()),
        &[theirs.as_raw_fd()],
    )?;
    // Closed in every child forked from now on (a child that kept a copy
    // would keep this server alive after we close ours). Untracked on drop.
    crate::pool::fds::track(mine.as_raw_fd());
    Ok(ServerConn { sock: mine, pid })
}

/// The fork server's pid, starting it if needed (Python's forkserver is also
/// started on first use). One server serves every thread of this process.
///
/// ```
/// let server = procshare::internals::forkserver_pid().unwrap();
/// assert_ne!(server, std::process::id());
/// assert_eq!(procshare::internals::forkserver_pid().unwrap(), server);
/// ```
#[cfg_attr(not(feature = "internals"), allow(dead_code))]
pub fn forkserver_pid() -> Result<u32, SpawnError> {
    let mut g = SERVER.get().lock().unwrap_or_else(|e| e.into_inner());
    if g.is_none() {
        *g = Some(start_server()?);
    }
    Ok(g.as_ref().expect("just set").pid as u32)
}

/// Runs `f` while this thread holds the lock of this process's fork server
/// connection (for a test: a fork made then must not leave the child with a
/// copy of the lock held by a thread it does not have). Not API.
#[cfg_attr(not(feature = "internals"), allow(dead_code))]
pub fn with_forkserver_lock_held<R>(f: impl FnOnce() -> R) -> R {
    let _g = SERVER.get().lock().unwrap_or_else(|e| e.into_inner());
    f()
}

/// Sends one start request to the fork server (starting it, or another one
/// if the current one is gone); returns the pid of the server that got it.
fn send_request(req: &Request, theirs: &OwnedFd) -> Result<RawPid, SpawnError> {
    let mut fds = vec![req.payload.as_fd(), theirs.as_fd()];
    fds.extend(req.segment_fds());
    let mut g = SERVER.get().lock().unwrap_or_else(|e| e.into_inner());
    let mut attempt = 0;
    loop {
        if g.is_none() {
            *g = Some(start_server()?);
        }
        let conn = g.as_ref().expect("just set");
        match send_msg(conn.sock.as_fd(), &Status::Started(None), &fds) {
            Ok(()) => return Ok(conn.pid),
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

/// Starts `target` by the fork server.
///
/// A server that dies after it was sent the request but before it served it
/// (killed a moment earlier: the send succeeded into its socket) closes the
/// request's status socket without a word: no child exists then (a child
/// holds that socket, and would have said `Started`). The request is sent
/// once more, to a new server.
pub(crate) fn forkserver(
    target: &dyn FnTarget,
    info: &crate::process::me::ChildInfo,
) -> Result<Launched, SpawnError> {
    let req = Request::new(target, info)?;
    let mut retried = false;
    let (mine, first, server) = loop {
        let (mine, theirs) = seqpacket_pair()?;
        let server = send_request(&req, &theirs)?;
        drop(theirs);
        match recv_status(mine.as_fd(), true)? {
            Some(m) => break (mine, m, server),
            None if !retried => {
                retried = true;
                let mut g = SERVER.get().lock().unwrap_or_else(|e| e.into_inner());
                if g.as_ref().is_some_and(|c| c.pid == server) {
                    if let Some(old) = g.take() {
                        let pid = old.pid;
                        drop(old); // a live server exits when its socket closes
                        reap_now(pid);
                    }
                }
            }
            None => return Err(SpawnError::ForkServerLost("status socket closed")),
        }
    };
    drop(req);
    let (mut pid, mut pidfd, mut started, mut exit) = (None, None, false, None);
    let mut next = Some(first);
    while pid.is_none() || !(started || exit.is_some()) {
        let msg = match next.take() {
            Some(m) => Some(m),
            None => recv_status(mine.as_fd(), true)?,
        };
        match msg {
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
        server: Some(server),
    })
}

/// The exit code of a forkserver child whose server died before reporting
/// it: the child was reparented to us (a child subreaper, see `start_server`)
/// and its status socket ended, so it has exited and `waitid` on its pidfd
/// reaps it. `None` if it is not our child (the subreaper attribute could not
/// be set) or there is no pidfd.
///
/// The socket ends when the server's copy closes, which is early in its
/// death: its children are reparented only at its end. A child that is not
/// ours yet (`ECHILD`) is asked again once the server (`server`, our child)
/// has finished dying (seen as a failure of a test that kills the server,
/// 2 of 100 runs of tests/start_methods.rs with 6 test threads; 0 of 100
/// with this).
fn orphan_exit(pidfd: Option<BorrowedFd<'_>>, server: Option<RawPid>) -> Option<Option<i32>> {
    let pidfd = pidfd?;
    let code = match crate::sys::proc::wait_pidfd(pidfd, true) {
        Ok(c) => c,
        Err(e) if crate::sys::proc::is_not_our_child(&e) => {
            // ECHILD from this too means it was reaped: its children are ours.
            let _ = crate::sys::proc::wait_exited_unreaped(server?);
            crate::sys::proc::wait_pidfd(pidfd, true).ok()?
        }
        Err(_) => return None,
    }?;
    Some(Some(code))
}

/// Reads a forkserver child's exit code from its status socket.
///
/// Two processes report it there: the child itself, just before it leaves
/// (after its target returned or panicked), and the fork server, which reaps
/// it (and alone knows a death by signal). The first report wins. So a child
/// still gets its exit code after the server died; only a child that dies by
/// a signal (or `std::process::exit`) after its server died has no report:
/// the socket then ends, and the child, reparented to this process (a child
/// subreaper), is reaped through its pidfd. Only if that fails is it
/// [`SpawnError::ForkServerLost`].
///
/// Without `block`, a child whose pidfd says it has exited is waited for
/// (its report is due: already queued if it sent it, else the server's
/// follows its reaping), so that a dead child is never reported running.
pub(crate) fn served_exit(
    status: BorrowedFd<'_>,
    pidfd: Option<BorrowedFd<'_>>,
    server: Option<RawPid>,
    block: bool,
) -> Result<Option<i32>, SpawnError> {
    loop {
        let mut wait = block;
        if !wait && !poll_in(&[status], Some(Duration::ZERO))?[0] {
            match pidfd {
                Some(p) if poll_in(&[p], Some(Duration::ZERO))?[0] => wait = true,
                _ => return Ok(None),
            }
        }
        match recv_status(status, wait)? {
            Some((Status::Exit(code), _)) => return Ok(Some(code)),
            Some(_) => continue,
            None if wait => {
                return orphan_exit(pidfd, server).ok_or(SpawnError::ForkServerLost(
                    "the child died by a signal after its fork server died",
                ));
            }
            None => {
                // Readable but nothing: end of stream.
                if poll_in(&[status], Some(Duration::ZERO))?[0] {
                    return orphan_exit(pidfd, server)
                        .ok_or(SpawnError::ForkServerLost("status socket closed"));
                }
                return Ok(None);
            }
        }
    }
}
