//! Test support: interrupt a thread blocked in a read with a signal whose
//! handler was installed without `SA_RESTART`, so that the read fails with
//! `EINTR` (what a program's own signal handler does to procshare's reads).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;

/// Signals handled so far.
static HANDLED: AtomicU32 = AtomicU32::new(0);

extern "C" fn count(_: libc::c_int) {
    HANDLED.fetch_add(1, Ordering::SeqCst); // async-signal-safe
}

/// The id of the calling thread, for [`interrupt_read`].
pub(crate) fn tid() -> i32 {
    rustix::thread::gettid().as_raw_nonzero().get()
}

/// A blocking system call a test waits for a thread to be in.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Call {
    /// A read of a socket (`read`, or std's `recv`, which is `recvfrom`).
    Read,
    /// A `recvmsg` (a read that may carry descriptors).
    RecvMsg,
}

/// Waits until thread `tid` of this process sleeps in `call` (proc(5)'s
/// `syscall` file starts with the number of the call a blocked thread is in).
pub(crate) fn wait_blocked(tid: i32, call: Call) {
    let calls: &[libc::c_long] = match call {
        Call::Read => &[libc::SYS_read, libc::SYS_recvfrom],
        Call::RecvMsg => &[libc::SYS_recvmsg],
    };
    let calls: Vec<String> = calls.iter().map(|n| format!("{n} ")).collect();
    let path = format!("/proc/self/task/{tid}/syscall");
    while !calls
        .iter()
        .any(|c| std::fs::read_to_string(&path).unwrap().starts_with(c))
    {
        std::thread::yield_now();
    }
}

/// Waits until thread `tid` sleeps in a read ([`wait_blocked`]), sends it
/// `SIGUSR2` (whose handler does nothing but count, installed without
/// `SA_RESTART`), and waits until the handler ran: the read has then failed
/// with `EINTR`.
pub(crate) fn interrupt_read(tid: i32) {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // SAFETY: a handler that only increments an atomic; SIGUSR2 is
        // used by nothing else in the test binary; no SA_RESTART on purpose.
        unsafe {
            let mut sa: libc::sigaction = core::mem::zeroed();
            sa.sa_sigaction = count as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            assert_eq!(
                libc::sigaction(libc::SIGUSR2, &sa, core::ptr::null_mut()),
                0
            );
        }
    });
    wait_blocked(tid, Call::Read);
    let before = HANDLED.load(Ordering::SeqCst);
    // SAFETY: tgkill has no memory-safety preconditions; `tid` is a live
    // thread of this process, blocked in a read until the caller sends data.
    let rc = unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, libc::SIGUSR2) };
    assert_eq!(rc, 0, "tgkill");
    while HANDLED.load(Ordering::SeqCst) == before {
        std::thread::yield_now();
    }
}
