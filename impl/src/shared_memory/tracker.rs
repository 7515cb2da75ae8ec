//! The tracker of a tracked block, and the server of a
//! [`SharedMemoryManager`](super::SharedMemoryManager): small processes that
//! are this binary re-executed (see the module docs of
//! [`crate::shared_memory`]).
//!
//! Tracker protocol, on a `SOCK_SEQPACKET` connection to the block's abstract
//! address (one request, one answer `K`, then the connection closes):
//! - `A` + a pidfd (`SCM_RIGHTS`): the sender is a tracked user from now on;
//! - `P`: ping (the creator's check that the tracker runs);
//! - `U`: the name was unlinked; the tracker exits if the name no longer
//!   refers to its block.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Mutex;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::{Result, SharedMemoryError};
use crate::sys::posix_shm::{self as sys, FileId};

/// The environment variable that turns a start of this binary into a tracker
/// (or a manager server).
pub(super) const ENV: &str = "PROCSHARE_SHM_HELPER";

/// How long the tracker waits for a connected client's request.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `create` waits for a new tracker to answer its ping.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Helpers this process started, reaped once they exit (no zombies pile up).
/// Per process: a forked child's helpers are its own, and it never touches
/// its parent's list (whose lock another thread may have held at the fork).
static HELPERS: crate::sys::fork::ForkLocal<Mutex<Vec<std::process::Child>>> =
    crate::sys::fork::ForkLocal::new(|| Mutex::new(Vec::new()));

pub(super) fn keep_child(child: std::process::Child) {
    let mut g = HELPERS.get().lock().unwrap_or_else(|e| e.into_inner());
    g.retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_)) | Err(_)));
    g.push(child);
}

/// The abstract socket address of the tracker of block (`name`, `id`).
fn address(name: &str, id: FileId) -> Vec<u8> {
    let h = Sha256::digest(name.as_bytes());
    let mut s = format!("procshare-shm/{:x}/{:x}/", id.dev, id.ino);
    for b in &h[..16] {
        s.push_str(&format!("{b:02x}"));
    }
    s.into_bytes()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn tracker_err(name: &str, what: &str, source: Option<io::Error>) -> SharedMemoryError {
    SharedMemoryError::Tracker {
        name: name.to_string(),
        what: what.to_string(),
        source,
    }
}

/// One request and its one-byte answer (`None`: no tracker, or it went away).
fn request(addr: &[u8], op: u8, fd: Option<BorrowedFd<'_>>) -> Option<u8> {
    let conn = sys::connect_abstract(addr).ok()?;
    let fds: Vec<BorrowedFd<'_>> = fd.into_iter().collect();
    sys::send_with_fds(conn.as_fd(), &[op], &fds).ok()?;
    let mut b = [0u8; 1];
    match sys::recv_with_fds(conn.as_fd(), &mut b) {
        Ok((1, _)) => Some(b[0]),
        _ => None,
    }
}

/// Starts the tracker of a block just created by this process (which is its
/// first tracked user), and returns once it runs.
pub(super) fn start(name: &str, id: FileId) -> Result<()> {
    let addr = address(name, id);
    let listener =
        sys::listen_abstract(&addr).map_err(|e| tracker_err(name, "bind its socket", Some(e)))?;
    let me = sys::pidfd_self().map_err(|e| tracker_err(name, "pidfd_open", Some(e)))?;
    let env = format!(
        "tracker:{},{},{},{},{}",
        listener.as_raw_fd(),
        me.as_raw_fd(),
        id.dev,
        id.ino,
        hex(name.as_bytes())
    );
    let child = sys::exec_self_with((ENV, &env), &[listener.as_fd(), me.as_fd()])
        .map_err(|e| tracker_err(name, "start", Some(e)))?;
    let pid = child.id();
    keep_child(child);
    drop(listener);
    drop(me);
    // Ping: the answer proves the tracker runs (and is this binary's code).
    let conn =
        sys::connect_abstract(&addr).map_err(|e| tracker_err(name, "connect to it", Some(e)))?;
    sys::send_with_fds(conn.as_fd(), b"P", &[]).map_err(|e| tracker_err(name, "ping", Some(e)))?;
    let helper = sys::pidfd_of(pid);
    let mut watch = vec![conn.as_fd()];
    if let Some(h) = &helper {
        watch.push(h.as_fd());
    }
    let ready = sys::poll_readable(&watch, Some(START_TIMEOUT))
        .map_err(|e| tracker_err(name, "poll", Some(e)))?;
    let mut b = [0u8; 1];
    if ready[0] {
        if let Ok((1, _)) = sys::recv_with_fds(conn.as_fd(), &mut b) {
            if b[0] == b'K' {
                return Ok(());
            }
        }
    }
    Err(tracker_err(
        name,
        "it did not start (is procshare part of this executable?)",
        None,
    ))
}

/// Registers this process as a tracked user of block (`name`, `id`): `true`
/// if the block has a running tracker that acknowledged it.
pub(super) fn register(name: &str, id: FileId) -> bool {
    let Ok(me) = sys::pidfd_self() else {
        return false;
    };
    request(&address(name, id), b'A', Some(me.as_fd())) == Some(b'K')
}

/// Tells the tracker of block (`name`, `id`), if any, that its name is gone.
pub(super) fn notify_unlinked(name: &str, id: FileId) {
    let _ = request(&address(name, id), b'U', None);
}

/// Whether `name` still refers to the block (`dev`, `ino`).
fn name_is(name: &str, dev: u64, ino: u64) -> bool {
    let Some(path) = sys::shm_path(name) else {
        return false;
    };
    match sys::shm_open_existing(&path, false) {
        Ok(fd) => sys::fstat(fd.as_fd()).is_ok_and(|f| f.dev == dev && f.ino == ino),
        Err(_) => false,
    }
}

/// The tracker's loop (in the tracker process): see the module docs.
fn tracker_main(listener: OwnedFd, creator: OwnedFd, name: &str, dev: u64, ino: u64) {
    sys::setsid();
    let mut users: Vec<OwnedFd> = vec![creator];
    loop {
        let ready = {
            let mut fds: Vec<BorrowedFd<'_>> = vec![listener.as_fd()];
            fds.extend(users.iter().map(|u| u.as_fd()));
            match sys::poll_readable(&fds, None) {
                Ok(r) => r,
                Err(_) => break,
            }
        };
        // Every pending registration first, then the exits: a user that
        // registered before the last exit keeps the name alive. The answers
        // go out after this round's decision, so a client that has its `K`
        // knows the tracker has acted on every exit it was woken for; if the
        // tracker ends in this round, the pending clients get no answer (an
        // untracked attach to a block whose name is going away).
        let old = users.len();
        let mut unlinked = false;
        let mut answer = Vec::new();
        if ready[0] {
            while let Ok(Some(conn)) = sys::accept(listener.as_fd(), CLIENT_TIMEOUT) {
                let mut b = [0u8; 1];
                let Ok((n, mut fds)) = sys::recv_with_fds(conn.as_fd(), &mut b) else {
                    continue;
                };
                let ok = match (n, b[0]) {
                    (1, b'A') if fds.len() == 1 => {
                        users.push(fds.pop().expect("one fd"));
                        true
                    }
                    (1, b'P') => true,
                    (1, b'U') => {
                        unlinked = !name_is(name, dev, ino);
                        true
                    }
                    _ => false,
                };
                if ok {
                    answer.push(conn);
                }
            }
        }
        let mut i = 0;
        users.retain(|_| {
            i += 1;
            !(i <= old && ready[i])
        });
        if unlinked {
            return;
        }
        if users.is_empty() {
            break;
        }
        for conn in answer {
            let _ = sys::send_with_fds(conn.as_fd(), b"K", &[]);
        }
    }
    // Close the socket first: a late registration finds no tracker (and a
    // block re-created under this name may bind its own address).
    drop(listener);
    if name_is(name, dev, ino) {
        if let Some(path) = sys::shm_path(name) {
            let _ = sys::shm_unlink(&path);
        }
    }
}

/// Run by the loader before `main` in every process of a binary linked with
/// procshare: turns a start with [`ENV`] set into a tracker or a manager
/// server, which exits without ever returning to `main`.
extern "C" fn helper_entry() {
    let Some(value) = std::env::var_os(ENV) else {
        return;
    };
    std::env::remove_var(ENV);
    let value = value.to_string_lossy().into_owned();
    let code = run_helper(&value).map_or(1, |()| 0);
    std::process::exit(code);
}

fn run_helper(value: &str) -> Option<()> {
    let (mode, rest) = value.split_once(':')?;
    let parts: Vec<&str> = rest.split(',').collect();
    let fd = |s: &str| {
        s.parse::<i32>()
            .ok()
            .and_then(|n| sys::adopt_inherited_fd(n).ok())
    };
    match (mode, parts.as_slice()) {
        ("tracker", [l, c, dev, ino, name]) => {
            let name = String::from_utf8(unhex(name)?).ok()?;
            let (dev, ino) = (dev.parse().ok()?, ino.parse().ok()?);
            tracker_main(fd(l)?, fd(c)?, &name, dev, ino);
            Some(())
        }
        ("manager", [ctl, owner]) => {
            super::manager::server_main(fd(ctl)?, fd(owner)?);
            Some(())
        }
        _ => None,
    }
}

#[used]
#[link_section = ".init_array"]
static HELPER_ENTRY: extern "C" fn() = helper_entry;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        assert_eq!(unhex(&hex(b"psm_12ab")).unwrap(), b"psm_12ab");
        assert!(unhex("abc").is_none());
        assert!(unhex("zz").is_none());
    }

    #[test]
    fn address_fits_an_abstract_socket_name() {
        let a = address(
            &"x".repeat(255),
            FileId {
                size: 0,
                dev: u64::MAX,
                ino: u64::MAX,
            },
        );
        assert!(a.len() < 108, "{}", a.len());
    }
}
