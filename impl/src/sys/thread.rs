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
    /// This thread's owner id (0: not read yet, or reset after a fork).
    static OWNER: Cell<u32> = const { Cell::new(0) };
}

/// Bits of an owner id that hold the kernel tid: tids are below
/// `PID_MAX_LIMIT`, `2^22` on 64-bit Linux (`pid_max` cannot be set higher).
pub(crate) const TID_BITS: u32 = 22;
/// The tid part of an owner id.
pub(crate) const TID_MASK: u32 = (1 << TID_BITS) - 1;
/// The start-time tag of an owner id: bits 22..=29, below the model's
/// `OWNER_MASK` (30 bits).
const TAG_MASK: u32 = 0xff;

/// The owner id of the calling thread, as stored in lock words: its tid in
/// bits 0..22 and, in bits 22..30, a tag of its identity: the inode number
/// of a pidfd for it modulo 255, plus 1 (Linux 6.9+: pidfs numbers every pid
/// the kernel hands out, without reuse), or on older kernels its start time
/// (clock ticks since boot, field 22 of `/proc/<tid>/stat`) modulo 255,
/// plus 1; 0 if neither could be read. A later thread that is given the same
/// tid (pid reuse) has another inode number, so [`owner_is_alive`] tells it
/// from the owner unless the two numbers are equal modulo 255 (a multiple of
/// 255 pids handed out in between). Cached per thread, reset in a forked
/// child.
pub(crate) fn current_owner_id() -> u32 {
    let cached = OWNER.with(|c| c.get());
    if cached != 0 {
        return cached;
    }
    let tid = current_tid();
    let tag = match pidfs_tag(tid) {
        Tag::Is(t) => t,
        Tag::NoThreadPidfd => match read_stat(tid) {
            Stat::Live { start } => tag_of(start),
            _ => 0,
        },
        // Cannot tell: no tag.
        Tag::Gone | Tag::Unknown => 0,
    };
    let id = (tid & TID_MASK) | tag << TID_BITS;
    OWNER.with(|c| c.set(id));
    id
}

/// Is the thread with owner id `owner` (see [`current_owner_id`]) alive: a
/// thread with its tid exists, is not a zombie, and has its start-time tag?
/// Allocation-free; an error that does not tell counts as alive.
pub(crate) fn owner_is_alive(owner: u32) -> bool {
    match read_stat(owner & TID_MASK) {
        Stat::Dead => false,
        Stat::Unknown => true,
        Stat::Live { start } => match (owner >> TID_BITS) & TAG_MASK {
            0 => true, // no tag (its identity could not be read)
            tag => match pidfs_tag(owner & TID_MASK) {
                Tag::Is(t) => t == tag,
                Tag::Gone => false,
                Tag::NoThreadPidfd => tag_of(start) == tag,
                Tag::Unknown => true,
            },
        },
    }
}

/// The identity tag of a thread, as [`pidfs_tag`] finds it.
enum Tag {
    /// From the inode number of its pidfd.
    Is(u32),
    /// No such thread.
    Gone,
    /// The kernel has no thread pidfds (before 6.9): tags come from start times.
    NoThreadPidfd,
    /// Cannot tell now (out of descriptors, ...).
    Unknown,
}

/// The tag of thread `tid` from the inode number of a pidfd for it: on
/// Linux 6.9 and later (pidfs, which also brought thread pidfds) every pid
/// the kernel hands out has its own 64-bit inode number, never reused until
/// reboot, so a later thread given the same tid has another one.
fn pidfs_tag(tid: u32) -> Tag {
    let Some(pid) = rustix::process::Pid::from_raw(tid as i32) else {
        return Tag::Gone;
    };
    // PIDFD_THREAD is O_EXCL.
    let flags = rustix::process::PidfdFlags::from_bits_retain(libc::O_EXCL as u32);
    match rustix::process::pidfd_open(pid, flags) {
        Ok(fd) => match rustix::fs::fstat(&fd) {
            Ok(st) => Tag::Is((st.st_ino % 255) as u32 + 1),
            Err(_) => Tag::Unknown,
        },
        Err(rustix::io::Errno::SRCH) => Tag::Gone,
        Err(rustix::io::Errno::INVAL) => Tag::NoThreadPidfd,
        Err(_) => Tag::Unknown,
    }
}

/// The tag of a start time: 1..=255 (0 means "no tag").
fn tag_of(start: u64) -> u32 {
    (start % 255) as u32 + 1
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
    let _ = OWNER.try_with(|c| c.set(0));
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

/// The number of threads of this process (field 20, `num_threads`, of
/// `/proc/self/stat`), 0 if unknown. Called before every fork: one `open`,
/// one `read` into a stack buffer and one `close` (reading `/proc/self/status`
/// with `read_to_string` took a dozen system calls and a much longer text for
/// the kernel to format).
pub(crate) fn thread_count() -> usize {
    let Ok(fd) = rustix::fs::open(
        c"/proc/self/stat",
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    ) else {
        return 0;
    };
    let mut buf = [0u8; 1024];
    let Ok(n) = rustix::io::read(&fd, &mut buf) else {
        return 0;
    };
    let buf = &buf[..n];
    // "pid (comm) S ...": comm may hold ')' and spaces, so start after the last ')'.
    let Some(close) = buf.iter().rposition(|&b| b == b')') else {
        return 0;
    };
    // Field 3 (the state) follows ") ".
    buf.get(close + 2..)
        .unwrap_or(&[])
        .split(|&b| b == b' ')
        .nth(20 - 3)
        .and_then(|f| core::str::from_utf8(f).ok())
        .and_then(|f| f.parse().ok())
        .unwrap_or(0)
}

/// Is the thread `tid` alive? Reads `/proc/<tid>/stat`: a missing entry, or
/// state `Z` (zombie) or `X` (dead), is dead. An error that does not tell
/// (`EMFILE`, ...) counts as alive, so that a waiter keeps waiting rather than
/// steal a lock. Allocation-free. (By number only: [`owner_is_alive`] also
/// tells a later thread that reuses the tid.)
#[cfg_attr(not(feature = "internals"), allow(dead_code))]
pub(crate) fn tid_is_alive(tid: u32) -> bool {
    !matches!(read_stat(tid), Stat::Dead)
}

/// What `/proc/<tid>/stat` says.
enum Stat {
    /// No such thread, or a zombie.
    Dead,
    /// It could not be read (not a reason to call it dead).
    Unknown,
    /// Running (or sleeping), started `start` clock ticks after boot.
    Live { start: u64 },
}

/// Reads `/proc/<tid>/stat` without allocating.
fn read_stat(tid: u32) -> Stat {
    if tid == 0 || tid > i32::MAX as u32 {
        return Stat::Dead;
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
        return Stat::Unknown;
    };
    let fd = match rustix::fs::open(
        cpath,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    ) {
        Ok(fd) => fd,
        // No such thread.
        Err(rustix::io::Errno::NOENT) | Err(rustix::io::Errno::SRCH) => return Stat::Dead,
        Err(_) => return Stat::Unknown,
    };
    let mut buf = [0u8; 1024];
    let r = match rustix::io::read(&fd, &mut buf) {
        // The thread vanished between open and read (ESRCH), or the entry is empty.
        Ok(0) | Err(_) => return Stat::Dead,
        Ok(r) => r,
    };
    let buf = &buf[..r];
    // Format: "tid (comm) S ...": comm may contain ')' and spaces, so take the last ')'.
    let Some(close) = buf.iter().rposition(|&b| b == b')') else {
        return Stat::Unknown;
    };
    if matches!(buf.get(close + 2), Some(b'Z') | Some(b'X') | Some(b'x')) {
        return Stat::Dead;
    }
    // Field 3 (the state) follows ") "; field 22 is the start time.
    let rest = buf.get(close + 2..).unwrap_or(&[]);
    let start = rest
        .split(|&b| b == b' ')
        .nth(22 - 3)
        .and_then(|f| core::str::from_utf8(f).ok())
        .and_then(|f| f.parse::<u64>().ok());
    match start {
        Some(start) => Stat::Live { start },
        None => Stat::Unknown,
    }
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
