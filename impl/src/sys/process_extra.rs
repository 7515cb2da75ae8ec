//! Process calls the `process` module needs beyond [`super::proc`]: a child's
//! standard input on `/dev/null`, its parent's pidfd, `SIGINT`, and an exit
//! hook.

use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{BorrowedFd, FromRawFd, IntoRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};

use rustix::process::{Pid, Signal};

use super::proc::RawPid;

/// Makes descriptor 0 `/dev/null` (read-only), as CPython does in every child
/// it starts (`sys.stdin = open(os.devnull)`). Async-signal-safe (no
/// allocation): usable right after a `fork`.
pub(crate) fn stdin_to_devnull() -> io::Result<()> {
    let null = rustix::fs::open(
        c"/dev/null",
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    // SAFETY: descriptor 0 is only named here as the target of `dup2` (which
    // replaces whatever it was, atomically); ManuallyDrop keeps this OwnedFd
    // from ever closing it.
    let mut zero = ManuallyDrop::new(unsafe { OwnedFd::from_raw_fd(0) });
    // dup2 onto 0 clears close-on-exec on the new descriptor, as stdin needs.
    rustix::io::dup2(&null, &mut zero)?;
    Ok(())
}

/// This process's pidfd of its parent (`-1`: none). Set in a child before its
/// target runs; a descriptor stored here is never closed (it lives as long as
/// the process, as `parent_process()` does).
static PARENT_PIDFD: AtomicI32 = AtomicI32::new(-1);

/// Records `fd` as this process's pidfd of its parent (`None`: there is
/// none), in place of one inherited from an ancestor (which stays open, as
/// the ancestor's identity stays allocated). No allocation, no lock: usable
/// right after a `fork`.
pub(crate) fn set_parent_pidfd(fd: Option<OwnedFd>) {
    PARENT_PIDFD.store(fd.map_or(-1, IntoRawFd::into_raw_fd), Ordering::Release);
}

/// The pidfd recorded by [`set_parent_pidfd`], if any.
pub(crate) fn parent_pidfd() -> Option<BorrowedFd<'static>> {
    let fd = PARENT_PIDFD.load(Ordering::Acquire);
    // SAFETY: a nonnegative value was stored from `into_raw_fd` of an open
    // descriptor this process owns, and nothing ever closes it: it stays open
    // for the rest of the process.
    (fd >= 0).then(|| unsafe { BorrowedFd::borrow_raw(fd) })
}

/// This process's pidfd of itself, for its forked children to inherit as
/// their parent's (`ParentPidfd::for_children`): the fork generation
/// ([`super::fork::generation`]) that opened it in the high 32 bits, the
/// descriptor plus one in the low 32 (0: none yet). A forked child inherits its
/// parent's value, whose generation is then not its own: it opens its own on
/// its first start of a child. Once published, the descriptor is never closed.
static OWN_PIDFD: AtomicU64 = AtomicU64::new(0);

/// A pidfd of this process, made (once per process) for its forked children:
/// each adopts it as its parent's ([`ParentPidfd::adopt`]) with no system
/// call of its own. Under fork, the child's inherited copy of the descriptor
/// refers to the process that opened it, its parent, whatever happens to
/// the parent afterwards, as a pipe CPython's parent makes before `fork`
/// does for its `parent_sentinel`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ParentPidfd(i32);

impl ParentPidfd {
    /// This process's pidfd for its children (opened on the first call in
    /// each process; no descriptor if the kernel refuses one: the children
    /// then have no parent pidfd, as when they could not open one).
    pub(crate) fn for_children() -> ParentPidfd {
        let gen = super::fork::generation() as u32 as u64;
        let cur = OWN_PIDFD.load(Ordering::Acquire);
        if cur >> 32 == gen && cur as u32 != 0 {
            return ParentPidfd((cur as u32 - 1) as i32);
        }
        let Some(fd) = super::proc::pidfd_open(super::proc::getpid()) else {
            return ParentPidfd(-1);
        };
        let raw = fd.into_raw_fd();
        match OWN_PIDFD.compare_exchange(
            cur,
            gen << 32 | (raw as u32 + 1) as u64,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => ParentPidfd(raw),
            Err(now) => {
                // SAFETY: `raw` came from `into_raw_fd` just above and was
                // never published (the exchange failed): this closes it once.
                drop(unsafe { OwnedFd::from_raw_fd(raw) });
                if now >> 32 == gen && now as u32 != 0 {
                    // Another thread of this process published its own.
                    ParentPidfd((now as u32 - 1) as i32)
                } else {
                    // Only a thread of this process stores here, and only a
                    // descriptor of this generation: not reached.
                    ParentPidfd(-1)
                }
            }
        }
    }

    /// In a forked child, records the inherited descriptor as this process's
    /// pidfd of its parent ([`parent_pidfd`]). No system call, no allocation.
    pub(crate) fn adopt(self) {
        PARENT_PIDFD.store(self.0, Ordering::Release);
    }
}

/// Sends `SIGINT` (Python 3.14's `Process.interrupt()`), through the pidfd if
/// there is one, else by pid (the caller guarantees the pid is not reaped yet).
/// A process that is already gone is not an error.
pub(crate) fn send_sigint(pidfd: Option<&OwnedFd>, pid_raw: RawPid) -> io::Result<()> {
    let res = match pidfd {
        Some(fd) => rustix::process::pidfd_send_signal(fd, Signal::INT),
        None => match Pid::from_raw(pid_raw) {
            Some(p) => rustix::process::kill_process(p, Signal::INT),
            None => Ok(()),
        },
    };
    match res {
        Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Registers `f` to run when the process exits normally (`exit(3)`, which a
/// return from `main` and `std::process::exit` call), as Python's `atexit`
/// runs `multiprocessing`'s exit function. Not run by `_exit` or a signal.
pub(crate) fn at_exit(f: extern "C" fn()) -> io::Result<()> {
    // A libc facility, not a system call (rustix has none).
    // SAFETY: `f` is a plain `extern "C" fn()` with no captured state, which is
    // what atexit requires.
    let rc = unsafe { libc::atexit(f) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::other("atexit refused the handler"))
    }
}
