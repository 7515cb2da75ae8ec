//! Process calls the `process` module needs beyond [`super::proc`]: a child's
//! standard input on `/dev/null`, `SIGINT`, and an exit hook.

use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{FromRawFd, OwnedFd};

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
