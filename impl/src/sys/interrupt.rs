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

/// Waits until thread `tid` of this process sleeps in a read (`read` or
/// `recvfrom`: proc(5)'s `syscall` file starts with the number of the call a
/// blocked thread is in), sends it `SIGUSR2` (whose handler does nothing but
/// count, installed without `SA_RESTART`), and waits until the handler ran:
/// the read has then failed with `EINTR`.
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
    let reads = [libc::SYS_read, libc::SYS_recvfrom].map(|n| format!("{n} "));
    let path = format!("/proc/self/task/{tid}/syscall");
    while !reads
        .iter()
        .any(|r| std::fs::read_to_string(&path).unwrap().starts_with(r))
    {
        std::thread::yield_now();
    }
    let before = HANDLED.load(Ordering::SeqCst);
    // SAFETY: tgkill has no memory-safety preconditions; `tid` is a live
    // thread of this process, blocked in a read until the caller sends data.
    let rc = unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, libc::SIGUSR2) };
    assert_eq!(rc, 0, "tgkill");
    while HANDLED.load(Ordering::SeqCst) == before {
        std::thread::yield_now();
    }
}
