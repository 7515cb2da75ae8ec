//! [`SharedMemoryManager`]: a server process that owns the blocks made through
//! it (CPython's `multiprocessing.managers.SharedMemoryManager`).

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::Mutex;

use super::tracker::ENV;
use super::{Item, Result, ShareableList, SharedMemory, SharedMemoryError};
use crate::sys::posix_shm as sys;

/// A server process that keeps the names of the blocks and lists made through
/// it, and unlinks all of them when it is shut down, when the manager is
/// dropped, or when the process that started it dies (`kill -9` included: the
/// server watches its owner by pidfd). As in CPython, the blocks are created
/// by the caller (so they are mapped here at once) and registered with the
/// server; they are not tracked otherwise (the manager decides their life,
/// even while other processes still use them, as CPython's does).
///
/// ```
/// use procshare::{Item, SharedMemory, SharedMemoryError, SharedMemoryManager};
///
/// let mut smm = SharedMemoryManager::new();
/// assert!(matches!(smm.shared_memory(9), Err(SharedMemoryError::ManagerNotRunning(_))));
/// smm.start().unwrap();
/// let shm = smm.shared_memory(128).unwrap();
/// let sl = smm.shareable_list(&[Item::Int(1), Item::from("howdy")]).unwrap();
/// assert_eq!(smm.list_segments().unwrap().len(), 2);
/// let name = shm.name().to_string();
/// smm.shutdown().unwrap();
/// assert!(matches!(SharedMemory::attach(&name), Err(SharedMemoryError::NotFound { .. })));
/// assert_eq!(sl.get(1).unwrap(), Item::from("howdy")); // mappings stay valid
/// ```
#[derive(Debug, Default)]
pub struct SharedMemoryManager {
    state: Mutex<Option<Running>>,
    started: bool,
}

#[derive(Debug)]
struct Running {
    conn: OwnedFd,
    child: std::process::Child,
}

fn mgr_err(what: &str, source: Option<io::Error>) -> SharedMemoryError {
    SharedMemoryError::Manager {
        what: what.to_string(),
        source,
    }
}

impl SharedMemoryManager {
    /// A manager, not started yet.
    ///
    /// ```
    /// let smm = procshare::SharedMemoryManager::new();
    /// assert_eq!(smm.pid(), None);
    /// ```
    pub fn new() -> SharedMemoryManager {
        SharedMemoryManager::default()
    }

    /// Starts the server process (once).
    ///
    /// ```
    /// let mut smm = procshare::SharedMemoryManager::new();
    /// smm.start().unwrap();
    /// assert!(smm.pid().is_some());
    /// assert!(smm.start().is_err()); // CPython: "Already started SharedMemoryServer"
    /// ```
    pub fn start(&mut self) -> Result<()> {
        if self.started {
            return Err(SharedMemoryError::ManagerNotRunning(
                "already started (a manager starts once)",
            ));
        }
        let (mine, theirs) = sys::seqpacket_pair().map_err(|e| mgr_err("socketpair", Some(e)))?;
        let me = sys::pidfd_self().map_err(|e| mgr_err("pidfd_open", Some(e)))?;
        let env = format!("manager:{},{}", theirs.as_raw_fd(), me.as_raw_fd());
        let child = sys::exec_self_with((ENV, &env), &[theirs.as_fd(), me.as_fd()])
            .map_err(|e| mgr_err("start the server", Some(e)))?;
        drop(theirs);
        let running = Running { conn: mine, child };
        match call(&running.conn, b"P") {
            Ok(_) => {}
            Err(e) => {
                super::tracker::keep_child(running.child);
                return Err(e);
            }
        }
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = Some(running);
        self.started = true;
        Ok(())
    }

    /// The server's pid, while it runs.
    ///
    /// ```
    /// let mut smm = procshare::SharedMemoryManager::new();
    /// smm.start().unwrap();
    /// assert_ne!(smm.pid(), Some(std::process::id()));
    /// ```
    pub fn pid(&self) -> Option<u32> {
        let g = self.state.lock().unwrap_or_else(|e| e.into_inner());
        g.as_ref().map(|r| r.child.id())
    }

    fn request(&self, msg: &[u8]) -> Result<Vec<u8>> {
        let g = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let Some(r) = g.as_ref() else {
            return Err(SharedMemoryError::ManagerNotRunning(if self.started {
                "it has shut down"
            } else {
                "not started"
            }));
        };
        call(&r.conn, msg)
    }

    fn track(&self, name: &str) -> Result<()> {
        let mut m = b"T".to_vec();
        m.extend_from_slice(name.as_bytes());
        self.request(&m).map(|_| ())
    }

    /// A new block of `size` bytes with a random name, owned by the manager
    /// (Python: `smm.SharedMemory(size)`).
    ///
    /// ```
    /// let mut smm = procshare::SharedMemoryManager::new();
    /// smm.start().unwrap();
    /// let shm = smm.shared_memory(32).unwrap();
    /// assert!(shm.size() >= 32);
    /// ```
    pub fn shared_memory(&self, size: usize) -> Result<SharedMemory> {
        self.request(b"P")?;
        let shm = SharedMemory::create_untracked(None, size)?;
        if let Err(e) = self.track(shm.name()) {
            let _ = shm.unlink();
            return Err(e);
        }
        Ok(shm)
    }

    /// A new [`ShareableList`] of `items`, owned by the manager (Python:
    /// `smm.ShareableList(sequence)`).
    ///
    /// ```
    /// use procshare::{Item, SharedMemoryManager};
    ///
    /// let mut smm = SharedMemoryManager::new();
    /// smm.start().unwrap();
    /// let sl = smm.shareable_list(&[Item::Int(0), Item::Int(1)]).unwrap();
    /// assert_eq!(sl.len(), 2);
    /// ```
    pub fn shareable_list(&self, items: &[Item]) -> Result<ShareableList> {
        self.request(b"P")?;
        let sl = ShareableList::create_untracked(None, items)?;
        if let Err(e) = self.track(sl.shm().name()) {
            let _ = sl.shm().unlink();
            return Err(e);
        }
        Ok(sl)
    }

    /// The names of the blocks the server owns (Python: `list_segments`).
    ///
    /// ```
    /// let mut smm = procshare::SharedMemoryManager::new();
    /// smm.start().unwrap();
    /// let a = smm.shared_memory(8).unwrap();
    /// assert_eq!(smm.list_segments().unwrap(), [a.name()]);
    /// ```
    pub fn list_segments(&self) -> Result<Vec<String>> {
        let r = self.request(b"L")?;
        let s = String::from_utf8_lossy(&r);
        Ok(s.split('\n')
            .filter(|x| !x.is_empty())
            .map(str::to_string)
            .collect())
    }

    /// Unlinks one owned block now and forgets it (Python: `release_segment`).
    ///
    /// ```
    /// let mut smm = procshare::SharedMemoryManager::new();
    /// smm.start().unwrap();
    /// let a = smm.shared_memory(8).unwrap();
    /// smm.release_segment(a.name()).unwrap();
    /// assert!(smm.list_segments().unwrap().is_empty());
    /// assert!(a.unlink().is_err()); // already gone
    /// ```
    pub fn release_segment(&self, name: &str) -> Result<()> {
        let mut m = b"R".to_vec();
        m.extend_from_slice(name.as_bytes());
        self.request(&m).map(|_| ())
    }

    /// Unlinks every owned block and stops the server (Python: `shutdown()`).
    /// Idempotent.
    ///
    /// ```
    /// let mut smm = procshare::SharedMemoryManager::new();
    /// smm.start().unwrap();
    /// smm.shutdown().unwrap();
    /// smm.shutdown().unwrap();
    /// assert!(smm.shared_memory(8).is_err());
    /// ```
    pub fn shutdown(&mut self) -> Result<()> {
        let running = self
            .state
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let Some(mut r) = running else {
            return Ok(());
        };
        let res = call(&r.conn, b"S").map(|_| ());
        drop(r.conn);
        let _ = r.child.wait();
        res
    }
}

impl Drop for SharedMemoryManager {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// One request on the server connection and its answer (`K` + payload).
fn call(conn: &OwnedFd, msg: &[u8]) -> Result<Vec<u8>> {
    sys::send_with_fds(conn.as_fd(), msg, &[]).map_err(|e| mgr_err("send", Some(e)))?;
    let mut buf = vec![0u8; 1 << 16];
    let (n, _) =
        sys::recv_with_fds(conn.as_fd(), &mut buf).map_err(|e| mgr_err("receive", Some(e)))?;
    match buf.get(..n) {
        Some([b'K', rest @ ..]) => Ok(rest.to_vec()),
        Some([b'E', rest @ ..]) => Err(mgr_err(&String::from_utf8_lossy(rest), None)),
        _ => Err(mgr_err("the server went away", None)),
    }
}

fn unlink_name(name: &str) -> std::result::Result<(), String> {
    let path = sys::shm_path(name).ok_or("a name with a NUL byte")?;
    sys::shm_unlink(&path).map_err(|e| format!("unlink {name:?}: {e}"))
}

/// The server's loop (in the server process).
pub(super) fn server_main(ctl: OwnedFd, owner: OwnedFd) {
    sys::setsid();
    let mut names: Vec<String> = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    while let Ok(ready) = sys::poll_readable(&[ctl.as_fd(), owner.as_fd()], None) {
        if ready[1] {
            break; // the owner died
        }
        let Ok((n, _)) = sys::recv_with_fds(ctl.as_fd(), &mut buf) else {
            break;
        };
        if n == 0 {
            break; // the owner closed (dropped without shutdown)
        }
        let (op, arg) = (buf[0], &buf[1..n]);
        let reply: Vec<u8> = match op {
            b'P' => b"K".to_vec(),
            b'T' => {
                names.push(String::from_utf8_lossy(arg).into_owned());
                b"K".to_vec()
            }
            b'R' => {
                let name = String::from_utf8_lossy(arg).into_owned();
                match names.iter().position(|x| *x == name) {
                    Some(i) => {
                        names.remove(i);
                        match unlink_name(&name) {
                            Ok(()) => b"K".to_vec(),
                            Err(e) => [b"E".as_slice(), e.as_bytes()].concat(),
                        }
                    }
                    None => [
                        b"E".as_slice(),
                        format!("{name:?} is not a segment of this manager").as_bytes(),
                    ]
                    .concat(),
                }
            }
            b'L' => {
                let mut r = b"K".to_vec();
                r.extend_from_slice(names.join("\n").as_bytes());
                r
            }
            b'S' => {
                for n in names.drain(..) {
                    let _ = unlink_name(&n);
                }
                let _ = sys::send_with_fds(ctl.as_fd(), b"K", &[]);
                return;
            }
            _ => b"Eunknown request".to_vec(),
        };
        let _ = sys::send_with_fds(ctl.as_fd(), &reply, &[]);
    }
    for n in names {
        let _ = unlink_name(&n);
    }
}
