//! The owner's pool descriptors (each worker's socket and pidfd, the
//! dispatcher's eventfd), and its connection to its fork server
//! (`process::spawn`), closed in every child the owner forks — a
//! `Process`, another pool's worker, a manager's server, or a plain `fork`
//! of the program (through the `pthread_atfork` child handler of
//! [`crate::sys::fork`]).
//!
//! A child that kept copies of a pool's sockets would keep the workers'
//! end-of-file from coming when the owner dies (the workers also watch the
//! owner itself: see `worker::watch_owner`), and would hold the pool's
//! resources for its whole life. The descriptors are also close-on-exec
//! (std creates sockets so, eventfds and pidfds are made so).
//!
//! The table is fixed (the child reads it without locking or allocating);
//! a descriptor that finds no free slot is not tracked ([`track`] says so)
//! and is closed the old way, by the child that knows it (a worker).
//! A descriptor is tracked after it is created and untracked before it is
//! closed: a fork in between leaves a copy in that child (a leak, never
//! the closing of a descriptor the child opened itself).

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, Ordering};

use crate::sys::fork::AtFork;

/// Room for the descriptors of the process's pools (two per worker, one
/// per pool).
const SLOTS: usize = 1024;

static FDS: [AtomicI32; SLOTS] = [const { AtomicI32::new(-1) }; SLOTS];

static AT_FORK: AtFork = AtFork {
    name: "pool descriptors",
    prepare: None,
    child: close_in_child,
    around: None,
};

/// Close `fd` in every child forked from now on; `false` if the table is full.
pub(crate) fn track(fd: RawFd) -> bool {
    crate::sys::fork::register(&AT_FORK);
    crate::sys::fork::ensure_atfork();
    FDS.iter().any(|s| {
        s.compare_exchange(-1, fd, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    })
}

/// `fd` is about to be closed: children no longer close it.
pub(crate) fn untrack(fd: RawFd) {
    for s in &FDS {
        if s.compare_exchange(fd, -1, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            return;
        }
    }
}

/// The fork child hook: close every tracked descriptor (they belong to the
/// parent's pools) and empty the table (this process's own pools start
/// afresh). Async-signal-safe: atomics and `close`.
fn close_in_child() {
    for s in &FDS {
        let fd = s.swap(-1, Ordering::AcqRel);
        if fd >= 0 {
            crate::sys::io::close_inherited(&[fd]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A forked child closes a tracked descriptor and starts with an empty
    /// table (its own pools start afresh; a slot left holding anything but
    /// -1 would close that descriptor in the child's own children).
    #[test]
    fn a_forked_child_closes_the_tracked_descriptors_and_empties_the_table() {
        use std::os::fd::AsRawFd;
        let (r, w) = std::os::unix::net::UnixStream::pair().unwrap();
        let fd = r.as_raw_fd();
        assert!(track(fd));
        let pid = crate::sys::fork::fork(|_| {
            // `stat` of the descriptor's entry (opens no descriptor itself).
            let closed = !std::path::Path::new(&format!("/proc/self/fd/{fd}")).exists();
            let empty = FDS.iter().all(|s| s.load(Ordering::Relaxed) == -1);
            i32::from(!closed) | i32::from(!empty) << 1
        })
        .unwrap();
        let code = crate::sys::proc::wait_child(pid, true).unwrap();
        untrack(fd);
        drop((r, w));
        assert_eq!(
            code,
            Some(0),
            "1: not closed in the child; 2: table not emptied"
        );
    }
}
