//! Processes: wait statuses, signals, pidfds, exit, identity.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use rustix::process::{Pid, Signal, WaitOptions, WaitStatus};

/// A raw process id as the kernel reports it.
pub(crate) type RawPid = i32;

fn pid(raw: RawPid) -> io::Result<Pid> {
    Pid::from_raw(raw).ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))
}

/// An exit code as Python reports it from a wait status: the exit status, or
/// `-N` after death by signal `N`.
pub(crate) fn exit_code(status: WaitStatus) -> i32 {
    if let Some(code) = status.exit_status() {
        code
    } else if let Some(sig) = status.terminating_signal() {
        -sig
    } else {
        // Stopped/continued are not reported with the options we use.
        status.as_raw()
    }
}

/// Waits for the child `pid` (`block == false`: `WNOHANG`), retrying on
/// `EINTR`. `Ok(Some(code))` once it has exited (as [`exit_code`] reports it),
/// `Ok(None)` while it runs (`block == false` only).
pub(crate) fn wait_child(pid_raw: RawPid, block: bool) -> io::Result<Option<i32>> {
    let p = pid(pid_raw)?;
    let opts = if block {
        WaitOptions::empty()
    } else {
        WaitOptions::NOHANG
    };
    loop {
        match rustix::process::waitpid(Some(p), opts) {
            Ok(Some((_, st))) => return Ok(Some(exit_code(st))),
            Ok(None) => return Ok(None),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Make this process a child subreaper (`PR_SET_CHILD_SUBREAPER`): an orphaned
/// descendant (a fork server's child after the server died) is reparented to
/// it, so that [`wait_pidfd`] can still learn how it ended.
pub(crate) fn become_subreaper() -> io::Result<()> {
    // Any nonzero argument sets the attribute; our own pid is one.
    Ok(rustix::process::set_child_subreaper(Some(
        rustix::process::getpid(),
    ))?)
}

/// Waits (`WNOHANG` unless `block`) for the process behind `pidfd`, which must
/// be a child of this process by now (for example reparented to this
/// subreaper): its exit code as [`exit_code`] reports it, `Ok(None)` while it
/// runs; `ECHILD` if it is not our child.
pub(crate) fn wait_pidfd(pidfd: impl AsFd, block: bool) -> io::Result<Option<i32>> {
    use rustix::process::{WaitId, WaitIdOptions};
    let mut opts = WaitIdOptions::EXITED;
    if !block {
        opts |= WaitIdOptions::NOHANG;
    }
    loop {
        match rustix::process::waitid(WaitId::PidFd(pidfd.as_fd()), opts) {
            Ok(Some(st)) => {
                if let Some(code) = st.exit_status() {
                    return Ok(Some(code));
                }
                if let Some(sig) = st.terminating_signal() {
                    return Ok(Some(-sig));
                }
                return Ok(None);
            }
            Ok(None) => return Ok(None),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Is `e` a wait's `ECHILD` (no such child of this process)?
pub(crate) fn is_not_our_child(e: &io::Error) -> bool {
    e.raw_os_error() == Some(rustix::io::Errno::CHILD.raw_os_error())
}

/// Waits until the child `pid_raw` has exited, without reaping it
/// (`WNOWAIT`): once this returns, its own children have been reparented.
/// `ECHILD` if it is not (or no longer) our child.
pub(crate) fn wait_exited_unreaped(pid_raw: RawPid) -> io::Result<()> {
    use rustix::process::{WaitId, WaitIdOptions};
    let p = pid(pid_raw)?;
    loop {
        match rustix::process::waitid(
            WaitId::Pid(p),
            WaitIdOptions::EXITED | WaitIdOptions::NOWAIT,
        ) {
            Ok(_) => return Ok(()),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// A signal procshare sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sig {
    /// `SIGTERM`.
    Term,
    /// `SIGKILL`.
    Kill,
}

impl Sig {
    fn raw(self) -> Signal {
        match self {
            Sig::Term => Signal::TERM,
            Sig::Kill => Signal::KILL,
        }
    }
}

/// Sends `sig` to a process, through its pidfd if there is one (race-free),
/// else by pid (the caller guarantees the pid is not reaped yet). A process
/// that is already gone (`ESRCH`) is not an error.
pub(crate) fn send_signal(pidfd: Option<&OwnedFd>, pid_raw: RawPid, sig: Sig) -> io::Result<()> {
    let res = match pidfd {
        Some(fd) => rustix::process::pidfd_send_signal(fd, sig.raw()),
        None => match Pid::from_raw(pid_raw) {
            Some(p) => rustix::process::kill_process(p, sig.raw()),
            None => Ok(()),
        },
    };
    match res {
        Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// A pidfd of `pid` (`None` if the kernel refuses one: too old, or the
/// process is gone).
pub(crate) fn pidfd_open(pid_raw: RawPid) -> Option<OwnedFd> {
    Pid::from_raw(pid_raw)
        .and_then(|p| rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok())
}

/// Does a process `pid` exist (`kill(pid, 0)` is not `ESRCH`; a zombie
/// counts, as does a process we may not signal)?
pub(crate) fn process_exists(pid: RawPid) -> bool {
    match Pid::from_raw(pid) {
        Some(p) => rustix::process::test_kill_process(p) != Err(rustix::io::Errno::SRCH),
        None => false,
    }
}

/// This process's pid.
pub(crate) fn getpid() -> RawPid {
    rustix::process::getpid().as_raw_nonzero().get()
}

/// The parent's pid (0 if there is none, e.g. the parent of init).
pub(crate) fn getppid() -> RawPid {
    Pid::as_raw(rustix::process::getppid())
}

/// Ends the process at once with `code` (`_exit`): no destructors, no atexit
/// handlers, no flushing of std's buffers.
pub(crate) fn exit(code: i32) -> ! {
    // SAFETY: `_exit` has no preconditions. libc: see the module table of `sys`.
    unsafe { libc::_exit(code) }
}

/// A signal whose disposition procshare sets to "ignore".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ignored {
    /// `SIGPIPE` (as Rust's `main` does).
    Pipe,
    /// `SIGINT` (the manager's server: a Ctrl-C is for its parent).
    Int,
}

/// Sets the disposition of `sig` to `SIG_IGN` in this process.
pub(crate) fn ignore_signal(sig: Ignored) {
    let raw = match sig {
        Ignored::Pipe => libc::SIGPIPE,
        Ignored::Int => libc::SIGINT,
    };
    // SAFETY: SIG_IGN is a valid disposition for these catchable signals, and
    // no handler code is installed. libc: see the module table of `sys`.
    unsafe { libc::signal(raw, libc::SIG_IGN) };
}

/// Closes every descriptor of this process in `first..=last` (`close_range`).
///
/// Async-signal-safe (one system call): usable between fork and exec.
pub(crate) fn close_range(first: u32, last: u32) {
    if first > last {
        return;
    }
    // SAFETY: close_range only closes descriptors; the caller owns every
    // descriptor in the range (this process's copies after a fork) and no Rust
    // object that would close one again is used afterwards. A raw syscall:
    // rustix has no close_range, and libc's wrapper needs glibc 2.34 at link
    // time (the system call itself is Linux 5.9).
    unsafe { libc::syscall(libc::SYS_close_range, first, last, 0u32) };
}

/// Marks every descriptor from `first` up close-on-exec
/// (`close_range(first, ~0, CLOSE_RANGE_CLOEXEC)`). Async-signal-safe.
pub(crate) fn cloexec_from(first: u32) {
    // SAFETY: only sets a flag on descriptors. A raw syscall: see `close_range`.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
}

/// Sets (`true`) or clears (`false`) close-on-exec on `fd`. Async-signal-safe.
pub(crate) fn set_cloexec(fd: impl AsFd, on: bool) -> io::Result<()> {
    let flags = if on {
        rustix::io::FdFlags::CLOEXEC
    } else {
        rustix::io::FdFlags::empty()
    };
    rustix::io::fcntl_setfd(fd, flags).map_err(Into::into)
}

/// Starts a fresh exec of this program's own binary (`/proc/self/exe`) with
/// `arg0`, the environment variable `env` set, and, of all this process's
/// descriptors, only stdio and `keep` inherited (everything else is made
/// close-on-exec between fork and exec, as Python's spawn does). Returns the
/// child's pid; the child is not reaped here (std's `Child` is dropped without
/// waiting): the caller reaps it with [`wait_child`].
pub(crate) fn exec_self(
    arg0: &std::ffi::OsStr,
    env: (&str, &str),
    keep: &[std::os::fd::RawFd],
) -> io::Result<RawPid> {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new("/proc/self/exe");
    cmd.arg0(arg0);
    cmd.env(env.0, env.1);
    let keep = keep.to_vec();
    // SAFETY: the closure runs between fork and exec and only makes
    // async-signal-safe system calls (close_range, fcntl) on integers, without
    // allocating.
    unsafe {
        cmd.pre_exec(move || {
            cloexec_from(3);
            for &fd in &keep {
                // SAFETY: `fd` is one of this (pre-exec) process's open
                // descriptors, listed by the caller; it is only borrowed for
                // the fcntl.
                let b = std::os::fd::BorrowedFd::borrow_raw(fd);
                set_cloexec(b, false)?;
            }
            Ok(())
        })
    };
    let child = cmd.spawn()?;
    Ok(child.id() as RawPid)
}

/// The metadata of this process's executable file (`stat` of `/proc/self/exe`).
pub(crate) fn self_exe_metadata() -> io::Result<std::fs::Metadata> {
    std::fs::metadata("/proc/self/exe")
}

/// Is `addr` inside an executable mapping of the file with inode `ino`
/// (from `/proc/self/maps`)? `false` if the maps cannot be read.
pub(crate) fn in_executable_mapping(addr: usize, ino: u64) -> bool {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return false;
    };
    maps.lines().any(|l| {
        let mut it = l.split_ascii_whitespace();
        let (Some(range), Some(perms), _, _, Some(inode)) =
            (it.next(), it.next(), it.next(), it.next(), it.next())
        else {
            return false;
        };
        let Some((a, b)) = range.split_once('-') else {
            return false;
        };
        let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) else {
            return false;
        };
        perms.as_bytes().get(2) == Some(&b'x') && inode.parse() == Ok(ino) && (a..b).contains(&addr)
    })
}

/// The machine's runnable tasks (running or waiting for a CPU) right now,
/// from the fourth field of `/proc/loadavg` (`"0.20 0.75 0.50 3/345 12345"`:
/// 3), read through `fd` (that file, opened by [`open_loadavg`]); `None` if
/// it cannot be read or parsed.
pub(crate) fn runnable_tasks(fd: impl AsFd) -> Option<u32> {
    let mut buf = [0u8; 128];
    let n = rustix::io::pread(fd, &mut buf, 0).ok()?;
    parse_runnable(&buf[..n])
}

/// `/proc/loadavg`, opened close-on-exec, for [`runnable_tasks`].
pub(crate) fn open_loadavg() -> Option<OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    rustix::fs::open(
        "/proc/loadavg",
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()
}

/// Whether the machine has a CPU to spare right now, for a bounded poll
/// (a pool's idle worker, or a caller waiting for a pool's answer): yes when
/// its runnable tasks (`/proc/loadavg`, the asker included) are no more than
/// its CPUs, or when `/proc` cannot be read. Polling while every CPU is wanted
/// takes one from the process that would send what the poller waits for (on
/// two busy vCPUs, unconditional polling halved `apply_async` round trips).
pub(crate) struct SpareCpu {
    loadavg: Option<OwnedFd>,
    cpus: u32,
}

impl SpareCpu {
    /// Opens `/proc/loadavg` once (close-on-exec).
    pub(crate) fn new() -> SpareCpu {
        SpareCpu {
            loadavg: open_loadavg(),
            cpus: u32::try_from(crate::cpu_count()).unwrap_or(u32::MAX),
        }
    }

    /// A gate that always says yes (tests that must not depend on the load).
    #[cfg(test)]
    pub(crate) fn always() -> SpareCpu {
        SpareCpu {
            loadavg: None,
            cpus: 0,
        }
    }

    /// Is there a CPU to spare now?
    pub(crate) fn now(&self) -> bool {
        match self.loadavg.as_ref().and_then(runnable_tasks) {
            Some(r) => r <= self.cpus,
            None => true,
        }
    }
}

/// The runnable count of a `/proc/loadavg` line (see [`runnable_tasks`]).
pub(crate) fn parse_runnable(line: &[u8]) -> Option<u32> {
    let field = line.split(|&b| b == b' ').nth(3)?;
    let running = field.split(|&b| b == b'/').next()?;
    core::str::from_utf8(running).ok()?.parse().ok()
}

#[cfg(test)]
mod loadavg_tests {
    use super::*;

    #[test]
    fn the_runnable_count_is_the_fourth_fields_numerator() {
        assert_eq!(parse_runnable(b"0.20 0.75 0.50 3/345 12345\n"), Some(3));
        assert_eq!(parse_runnable(b"1.00 2.00 3.00 17/2000 1\n"), Some(17));
        assert_eq!(parse_runnable(b"0.20 0.75 0.50"), None);
        assert_eq!(parse_runnable(b"0.20 0.75 0.50 x/345 1"), None);
        assert_eq!(parse_runnable(b""), None);
        // This machine's own file reads, and counts at least this thread.
        let fd = open_loadavg().expect("/proc/loadavg");
        assert!(runnable_tasks(&fd).expect("a count") >= 1);
        // The gate: this thread is runnable, so a machine of no CPU has none
        // to spare, and one of u32::MAX CPUs has; without `/proc`, yes.
        let gate = |cpus| SpareCpu {
            loadavg: open_loadavg(),
            cpus,
        };
        assert!(!gate(0).now());
        assert!(gate(u32::MAX).now());
        assert!(SpareCpu::always().now());
    }
}
