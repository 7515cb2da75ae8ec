//! Threads: cross-process futexes, kernel thread ids, and the library's own
//! helper threads (counted, so that the fork warning is about the program's
//! threads only).

use core::cell::Cell;
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use core::time::Duration;

use rustix::thread::futex;

/// How a [`futex_wait`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FutexWait {
    /// Woken by a [`futex_wake`] (or a signal: callers treat it as spurious).
    Woken,
    /// The word did not hold the expected value.
    Mismatch,
    /// The timeout passed.
    TimedOut,
}

/// `FUTEX_WAIT` on `word` while it holds `expected`, at most `timeout`
/// (`None`: no limit). **Without** `FUTEX_PRIVATE_FLAG`: the kernel keys the
/// wait queue on the physical page, so waiters in different processes that map
/// the same shared page meet on the same queue.
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> FutexWait {
    let ts = timeout.map(|t| futex::Timespec {
        tv_sec: t.as_secs().min(i64::MAX as u64) as _,
        tv_nsec: t.subsec_nanos() as _,
    });
    match futex::wait(word, futex::Flags::empty(), expected, ts.as_ref()) {
        Ok(()) => FutexWait::Woken,
        Err(rustix::io::Errno::AGAIN) => FutexWait::Mismatch,
        Err(rustix::io::Errno::TIMEDOUT) => FutexWait::TimedOut,
        // EINTR (a signal) and anything unexpected: a spurious wake-up.
        Err(_) => FutexWait::Woken,
    }
}

/// `FUTEX_WAKE` of at most `n` waiters of `word` (without the PRIVATE flag, see
/// [`futex_wait`]); returns how many were woken.
pub(crate) fn futex_wake(word: &AtomicU32, n: u32) -> usize {
    // The kernel reads the count as a signed int: u32::MAX would mean -1 (one waiter).
    let n = n.min(i32::MAX as u32);
    futex::wake(word, futex::Flags::empty(), n).unwrap_or(0)
}

thread_local! {
    /// This thread's kernel tid (0: not read yet, or reset after a fork).
    static TID: Cell<u32> = const { Cell::new(0) };
}

/// The kernel thread id of the calling thread (cached in a thread-local; the
/// cache is reset in a forked child by [`super::fork`]).
#[inline]
pub(crate) fn current_tid() -> u32 {
    let cached = TID.with(|c| c.get());
    if cached != 0 {
        return cached;
    }
    super::fork::ensure_atfork();
    let tid = rustix::thread::gettid().as_raw_nonzero().get() as u32;
    TID.with(|c| c.set(tid));
    tid
}

/// Forgets the cached tid (a forked child's thread has a new one).
/// Async-signal-safe: a thread-local store.
pub(super) fn reset_tid_cache() {
    let _ = TID.try_with(|c| c.set(0));
}

/// How many of this process's threads are procshare's own helpers (started by
/// [`spawn_helper`] and still running).
static HELPERS: AtomicUsize = AtomicUsize::new(0);

/// The number of procshare helper threads of this process that are running.
pub(crate) fn helper_threads() -> usize {
    HELPERS.load(Ordering::Acquire)
}

/// Forgets the parent's helper threads in a forked child (only the forking
/// thread exists there). Async-signal-safe.
pub(super) fn reset_helpers() {
    HELPERS.store(0, Ordering::Release);
}

/// Starts one of procshare's own helper threads (a pool's dispatcher, ...).
/// It is counted from before it exists until its body has returned, so that
/// the fork warning ([`super::fork`]) is raised only about the program's own
/// threads, never about procshare's.
///
/// The count drops when the body returns, a moment before the kernel removes
/// the thread: a fork in that moment sees one thread more than is counted and
/// may warn (once per process, as for any warning).
pub(crate) fn spawn_helper<F, T>(name: String, f: F) -> std::io::Result<std::thread::JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    struct Counted;
    impl Drop for Counted {
        fn drop(&mut self) {
            HELPERS.fetch_sub(1, Ordering::AcqRel);
        }
    }
    HELPERS.fetch_add(1, Ordering::AcqRel);
    let counted = Counted;
    std::thread::Builder::new().name(name).spawn(move || {
        let _counted = counted;
        f()
    })
    // On a spawn error the closure, and with it `counted`, is dropped: the
    // count is restored.
}

/// The number of threads of this process (`Threads:` of `/proc/self/status`),
/// 0 if unknown.
pub(crate) fn thread_count() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Is the thread `tid` alive? Reads `/proc/<tid>/stat`: a missing entry, or
/// state `Z` (zombie) or `X` (dead), is dead. An error that does not tell
/// (`EMFILE`, ...) counts as alive, so that a waiter keeps waiting rather than
/// steal a lock. Allocation-free.
pub(crate) fn tid_is_alive(tid: u32) -> bool {
    if tid == 0 || tid > i32::MAX as u32 {
        return false;
    }
    // Build "/proc/<tid>/stat" without allocating.
    let mut path = [0u8; 32];
    let prefix = b"/proc/";
    path[..prefix.len()].copy_from_slice(prefix);
    let mut n = prefix.len();
    let mut digits = [0u8; 10];
    let mut d = 0;
    let mut v = tid;
    while v > 0 {
        digits[d] = b'0' + (v % 10) as u8;
        v /= 10;
        d += 1;
    }
    while d > 0 {
        d -= 1;
        path[n] = digits[d];
        n += 1;
    }
    let suffix = b"/stat";
    path[n..n + suffix.len()].copy_from_slice(suffix);
    n += suffix.len();
    let Ok(cpath) = core::ffi::CStr::from_bytes_with_nul(&path[..=n]) else {
        return true;
    };
    let fd = match rustix::fs::open(
        cpath,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    ) {
        Ok(fd) => fd,
        // No such thread.
        Err(rustix::io::Errno::NOENT) | Err(rustix::io::Errno::SRCH) => return false,
        Err(_) => return true,
    };
    let mut buf = [0u8; 512];
    let r = match rustix::io::read(&fd, &mut buf) {
        // The thread vanished between open and read (ESRCH), or the entry is empty.
        Ok(0) | Err(_) => return false,
        Ok(r) => r,
    };
    let buf = &buf[..r];
    // Format: "tid (comm) S ...": comm may contain ')' and spaces, so take the last ')'.
    let Some(close) = buf.iter().rposition(|&b| b == b')') else {
        return true;
    };
    !matches!(buf.get(close + 2), Some(b'Z') | Some(b'X') | Some(b'x'))
}

/// The number of CPUs this process may run on (cached; at least 1).
pub(crate) fn cpus() -> usize {
    static N: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *N.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The number of CPUs online in the system (`sysconf(_SC_NPROCESSORS_ONLN)`,
/// what Python's `os.cpu_count()` reports); `None` if unknown.
pub(crate) fn cpus_online() -> Option<usize> {
    // SAFETY: sysconf has no preconditions (libc: see the module table).
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    (n >= 1).then_some(n as usize)
}
