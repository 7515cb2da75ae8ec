//! This process as `multiprocessing` sees it: its own identity
//! ([`current_process`]), its parent ([`parent_process`]), and the children
//! it started ([`active_children`]), with the exit hook that terminates its
//! daemonic children (Python's `util._exit_function`).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{os, ProcessError, StartMethod};
use crate::sys::proc::RawPid;

/// What a child is told about itself and its parent at start (by memory
/// under fork, in the spawn payload under spawn and forkserver).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ChildInfo {
    pub(crate) name: String,
    pub(crate) daemon: bool,
    pub(crate) parent_pid: i32,
    pub(crate) parent_name: String,
    /// 0 fork, 1 spawn, 2 forkserver: how the child was started.
    pub(crate) method: u8,
}

impl ChildInfo {
    /// The info for a child of this process.
    pub(crate) fn for_child(name: &str, daemon: bool, method: StartMethod) -> ChildInfo {
        ChildInfo {
            name: name.to_string(),
            daemon,
            parent_pid: crate::sys::proc::getpid(),
            parent_name: my_name(),
            method: super::method_code(method),
        }
    }
}

/// This process's name (`MainProcess`, or the name it was started with).
fn my_name() -> String {
    me().map_or_else(|| MAIN_NAME.to_string(), |m| m.name.clone())
}

/// Python's name for the main process.
const MAIN_NAME: &str = "MainProcess";

/// This process, if it is a child started by procshare.
pub(crate) struct Me {
    name: String,
    daemon: bool,
    parent: Parent,
}

/// A child's parent. Its pidfd is kept apart, in
/// [`crate::sys::process_extra::parent_pidfd`], so that a forked child
/// installs an identity its parent built without writing to it.
#[derive(Debug)]
struct Parent {
    pid: RawPid,
    name: String,
}

/// Set once in a child, before the target runs (a leaked box: the child's
/// identity lives as long as the process; a fork child replaces its parent's).
static ME: AtomicPtr<Me> = AtomicPtr::new(core::ptr::null_mut());

fn me() -> Option<&'static Me> {
    let p = ME.load(Ordering::Acquire);
    // SAFETY: only pointers from `Box::into_raw` are stored, and never freed.
    (!p.is_null()).then(|| unsafe { &*p })
}

/// Records this child's identity (in a spawned or forkserver child, before
/// its target runs; a forked child: [`become_forked_child`]). The parent is
/// alive when this runs (it waits in `start` for the child's handshake).
pub(crate) fn become_child(info: ChildInfo) {
    let me = Box::new(Me {
        name: info.name,
        daemon: info.daemon,
        parent: Parent {
            pid: info.parent_pid,
            name: info.parent_name,
        },
    });
    install(me, info.method);
}

/// A forked child's identity, built by the parent before the fork: the child
/// only installs it ([`become_forked_child`]), without allocating (a
/// `malloc` in the child writes to heap and arena pages it shares with its
/// parent: each first write is a copy-on-write page fault) and without a
/// system call (its parent's pidfd is one the parent opened on itself).
pub(crate) struct ForkedMe(Box<Me>, crate::sys::process_extra::ParentPidfd);

impl ForkedMe {
    /// The identity of a child of this process named `name`.
    pub(crate) fn new(name: &str, daemon: bool) -> ForkedMe {
        let me = Box::new(Me {
            name: name.to_string(),
            daemon,
            parent: Parent {
                pid: crate::sys::proc::getpid(),
                name: my_name(),
            },
        });
        ForkedMe(me, crate::sys::process_extra::ParentPidfd::for_children())
    }
}

/// [`become_child`] for a forked child, with the identity its parent built.
/// No allocation, no system call: the parent frees its own copy.
pub(crate) fn become_forked_child(me: ForkedMe) {
    me.1.adopt();
    publish(me.0, StartMethod::Fork);
}

fn install(me: Box<Me>, method: u8) {
    // The parent waits for this child's handshake (see `become_child`): the
    // pidfd is the parent's. (Were this a forked child, its parent could have
    // died already: the pidfd is the parent's if that is still our OS parent.)
    let parent_fd = crate::sys::proc::pidfd_open(me.parent.pid)
        .filter(|_| method != 0 || crate::sys::proc::getppid() == me.parent.pid);
    crate::sys::process_extra::set_parent_pidfd(parent_fd);
    publish(me, super::method_of(method));
}

fn publish(me: Box<Me>, method: StartMethod) {
    super::set_start_method(method);
    ME.store(Box::into_raw(me), Ordering::Release);
    // A child's children are its own, not its parent's: the registry is a
    // `ForkLocal` (a forked child's first use makes its own), and the daemon
    // mark (`DAEMONS_IN`) is per process.
}

/// Is this process a daemonic child (which may not start children)?
pub(crate) fn is_daemon() -> bool {
    me().is_some_and(|m| m.daemon)
}

/// This process (Python's `multiprocessing.current_process()`): its name
/// (`MainProcess` in the main process, the [`Process`](crate::Process)'s name
/// in a child), pid and daemon flag.
///
/// ```
/// let me = procshare::current_process();
/// assert_eq!(me.name(), "MainProcess");
/// assert_eq!(me.pid(), std::process::id());
/// assert!(!me.daemon());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentProcess {
    name: String,
    pid: u32,
    daemon: bool,
}

impl CurrentProcess {
    /// The name (Python's `name`).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The pid (Python's `pid`).
    pub fn pid(&self) -> u32 {
        self.pid
    }
    /// Was this process started as a daemon (Python's `daemon`)?
    pub fn daemon(&self) -> bool {
        self.daemon
    }
    /// The pid (Python's `ident`, an alias of `pid`).
    pub fn ident(&self) -> u32 {
        self.pid
    }
    /// Always `true`: this process runs (Python's `is_alive()` of the current process).
    pub fn is_alive(&self) -> bool {
        true
    }
    /// Always `None`: this process has not exited (Python's `exitcode`).
    pub fn exitcode(&self) -> Option<i32> {
        None
    }
}

/// This process: see [`CurrentProcess`].
pub fn current_process() -> CurrentProcess {
    CurrentProcess {
        name: me().map_or_else(|| MAIN_NAME.to_string(), |m| m.name.clone()),
        pid: std::process::id(),
        daemon: is_daemon(),
    }
}

/// The process that started this one (Python's
/// `multiprocessing.parent_process()`, 3.8+): `None` in the main process.
///
/// ```
/// assert!(procshare::parent_process().is_none());
/// ```
pub fn parent_process() -> Option<ParentProcess> {
    me().map(|m| ParentProcess { p: &m.parent })
}

/// The parent of this process (see [`parent_process`]).
#[derive(Debug, Clone, Copy)]
pub struct ParentProcess {
    p: &'static Parent,
}

impl ParentProcess {
    /// The parent's pid (for a forkserver child too: the process that asked
    /// the server, not the server).
    pub fn pid(&self) -> u32 {
        self.p.pid as u32
    }
    /// The parent's name (`MainProcess` for the main process).
    pub fn name(&self) -> &str {
        &self.p.name
    }
    /// A descriptor that becomes readable when the parent exits (a pidfd;
    /// Python's `sentinel`). `None` if the kernel has no pidfds. (A forked
    /// child's is a pidfd its parent opened on itself before the fork, and
    /// shares with its other forked children; a spawned or forkserver child
    /// opens its own while its parent waits for it to start.)
    pub fn sentinel(&self) -> Option<BorrowedFd<'_>> {
        crate::sys::process_extra::parent_pidfd()
    }
    /// Is the parent still running?
    pub fn is_alive(&self) -> bool {
        match crate::sys::process_extra::parent_pidfd() {
            Some(fd) => !crate::sys::io::readable(fd, Some(Duration::ZERO)).unwrap_or(true),
            None => false,
        }
    }
    /// Waits at most `timeout` (`None`: forever) for the parent to exit;
    /// returns whether it has (Python's `join(timeout)`, which returns nothing).
    pub fn join_timeout(&self, timeout: Option<Duration>) -> bool {
        match crate::sys::process_extra::parent_pidfd() {
            Some(fd) => crate::sys::io::readable(fd, timeout).unwrap_or(true),
            None => true,
        }
    }
}

// ---------------------------------------------------------------------------
// The children this process started.

/// A started child, shared by its [`Process`](crate::Process) and the registry.
#[derive(Debug)]
pub(crate) struct Child {
    pub(crate) pid: RawPid,
    /// A pidfd (None if the kernel refused one): poll()able for exit, and a
    /// race-free target for signals.
    pub(crate) pidfd: Option<OwnedFd>,
    /// Forkserver children: the socket on which the server reports the exit
    /// code (the child is the server's, not ours: no waitpid here).
    pub(crate) status: Option<OwnedFd>,
    /// Forkserver children: the server that forked it (our child).
    pub(crate) server: Option<RawPid>,
    pub(crate) exit: Mutex<Option<i32>>,
    pub(crate) name: String,
    pub(crate) daemon: bool,
    /// Its number among this process's starts (`shm::child_starting`): the
    /// shared memory made before it may be in use by it.
    pub(crate) seq: u64,
}

impl Child {
    /// Reaps the child if it has exited (`block`: wait for it).
    pub(crate) fn try_reap(&self, block: bool) -> Result<Option<i32>, ProcessError> {
        let mut exit = self.exit.lock().unwrap_or_else(|e| e.into_inner());
        self.reap_locked(&mut exit, block)
    }

    fn reap_locked(
        &self,
        exit: &mut Option<i32>,
        block: bool,
    ) -> Result<Option<i32>, ProcessError> {
        if exit.is_some() {
            return Ok(*exit);
        }
        if let Some(st) = &self.status {
            let pidfd = self.pidfd.as_ref().map(|p| p.as_fd());
            *exit = crate::process::spawn::served_exit(st.as_fd(), pidfd, self.server, block)?;
            return Ok(*exit);
        }
        *exit = crate::sys::proc::wait_child(self.pid, block).map_err(os("waitpid"))?;
        Ok(*exit)
    }

    /// Has it exited? Never blocks. While another thread holds the exit
    /// code's lock (joining it, or checking it as here), the pidfd answers:
    /// readable once the child has exited (without a pidfd it counts as
    /// running). Answering "running" then made `active_children` list a child
    /// that had exited whenever another thread's check overlapped.
    fn finished(&self) -> bool {
        match self.exit.try_lock() {
            Ok(mut exit) => !matches!(self.reap_locked(&mut exit, false), Ok(None)),
            Err(_) => self.pidfd.as_ref().is_some_and(|p| {
                crate::sys::io::readable(p.as_fd(), Some(std::time::Duration::ZERO))
                    .unwrap_or(false)
            }),
        }
    }
}

/// The registry of started children, per process: a fork child gets a fresh
/// one (the parent's copy, whose lock another thread may have held at the
/// fork, is never touched there).
static REGISTRY: crate::sys::fork::ForkLocal<Mutex<Vec<Arc<Child>>>> =
    crate::sys::fork::ForkLocal::new(|| Mutex::new(Vec::new()));

fn registry() -> &'static Mutex<Vec<Arc<Child>>> {
    REGISTRY.get()
}

/// `1 + ` the fork generation ([`crate::sys::fork::generation`]) of the
/// process that registered a daemonic child (0: none did). A forked child
/// inherits its parent's mark, which then names another generation: it has
/// no daemonic children until it registers one.
static DAEMONS_IN: AtomicU64 = AtomicU64::new(0);

/// Has this process started a daemonic child?
fn has_daemons() -> bool {
    DAEMONS_IN.load(Ordering::Acquire) == crate::sys::fork::generation() + 1
}

/// Records a started child.
pub(crate) fn register(child: Arc<Child>) {
    if child.daemon {
        DAEMONS_IN.store(crate::sys::fork::generation() + 1, Ordering::Release);
        install_exit_hook();
    }
    registry()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(child);
}

/// Reaps and forgets the children that have exited. Waits for the registry
/// (held only for short pushes and scans: a `try_lock` here let a call of
/// another thread make `active_children` list a child that had exited), never
/// for a child.
pub(crate) fn sweep() {
    registry()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|c| !c.finished());
}

/// The largest start number (`Child::seq`) of a child of this process that
/// has not exited (conservatively: one being joined by another thread counts
/// as running), if any.
pub(crate) fn latest_running_child() -> Option<u64> {
    let kids = registry().lock().unwrap_or_else(|e| e.into_inner());
    kids.iter().filter(|c| !c.finished()).map(|c| c.seq).max()
}

/// Forgets `child` if it has exited (a dropped [`Process`](crate::Process)).
pub(crate) fn forget_if_finished(child: &Arc<Child>) {
    if child.finished() {
        if let Ok(mut kids) = registry().try_lock() {
            kids.retain(|c| !Arc::ptr_eq(c, child));
        }
    }
}

/// A running child of this process, as [`active_children`] lists it.
#[derive(Debug, Clone)]
pub struct ActiveChild {
    child: Arc<Child>,
}

impl ActiveChild {
    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.pid as u32
    }
    /// Its name.
    pub fn name(&self) -> &str {
        &self.child.name
    }
    /// Was it started as a daemon?
    pub fn daemon(&self) -> bool {
        self.child.daemon
    }
    /// Still running? (Never blocks.)
    pub fn is_alive(&self) -> bool {
        !self.child.finished()
    }
    /// Its exit code once it has exited (never blocks).
    pub fn exitcode(&self) -> Option<i32> {
        self.child
            .finished()
            .then(|| *self.child.exit.lock().unwrap_or_else(|e| e.into_inner()))
            .flatten()
    }
}

/// The children of this process still running (Python's
/// `multiprocessing.active_children()`), in start order. As in Python, it
/// reaps the children that have finished first (their
/// [`Process::exitcode`](crate::Process::exitcode) is then known).
///
/// ```
/// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
/// use procshare::{active_children, Event, Process};
/// let go = Event::new().unwrap();
/// let mut p = Process::new({ let go = go.clone(); move || go.wait() });
/// p.start().unwrap();
/// assert!(active_children().iter().any(|c| Some(c.pid()) == p.pid()));
/// go.set();
/// p.join().unwrap();
/// assert!(active_children().iter().all(|c| Some(c.pid()) != p.pid()));
/// ```
pub fn active_children() -> Vec<ActiveChild> {
    sweep();
    registry()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|c| ActiveChild { child: c.clone() })
        .collect()
}

/// Terminates this process's running daemonic children and reaps them
/// (Python's exit function). Run at a normal exit of the process (`exit(3)`),
/// and by a child before it `_exit`s.
pub(crate) fn terminate_daemons() {
    // Most children start none: they then leave without making a registry.
    if !has_daemons() {
        return;
    }
    let kids: Vec<Arc<Child>> = match registry().lock() {
        Ok(k) => k.clone(),
        Err(e) => e.into_inner().clone(),
    };
    for c in kids.iter().filter(|c| c.daemon && !c.finished()) {
        let _ = crate::sys::proc::send_signal(c.pidfd.as_ref(), c.pid, crate::sys::proc::Sig::Term);
    }
    for c in kids.iter().filter(|c| c.daemon) {
        let _ = c.try_reap(true);
    }
}

extern "C" fn at_exit() {
    // Never unwind out of an atexit handler.
    let _ = std::panic::catch_unwind(terminate_daemons);
}

fn install_exit_hook() {
    static DONE: AtomicBool = AtomicBool::new(false);
    if !DONE.swap(true, Ordering::AcqRel) {
        let _ = crate::sys::process_extra::at_exit(at_exit);
    }
}
