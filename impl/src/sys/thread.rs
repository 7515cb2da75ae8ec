//! Threads: cross-process futexes, kernel thread ids, and the library's own
//! helper threads (counted, so that the fork warning is about the program's
//! threads only).

use core::cell::Cell;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

use core::time::Duration;
use procshare_model::platform::Occupant;

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
    /// This thread's identity and robust-futex slot (`ident == 0`: not read
    /// yet, or reset after a fork).
    static ME: Cell<Me> = const { Cell::new(Me { ident: 0, slot: 0, offset: 0 }) };
}

/// Bits of an owner id that hold the kernel tid: tids are below
/// `PID_MAX_LIMIT`, `2^22` on 64-bit Linux (`pid_max` cannot be set higher).
pub(crate) const TID_BITS: u32 = 22;
/// The tid part of an owner id (all of it: owner ids are tids).
pub(crate) const TID_MASK: u32 = (1 << TID_BITS) - 1;

/// What the calling thread needs to take a lock: its identity and where it
/// marks a lock word pending.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Me {
    /// [`identity_of`] this thread (0 if it could not be read).
    pub(crate) ident: u64,
    /// Address of `list_op_pending` in this thread's robust-futex list head
    /// (0: none could be found or registered).
    pub(crate) slot: usize,
    /// The head's `futex_offset`: the kernel looks at `list_op_pending + offset`.
    pub(crate) offset: isize,
}

/// The owner id of the calling thread, as stored in lock words: its kernel
/// tid (the lock's identity word beside it tells it from a later thread that
/// is given the same tid). Cached per thread, reset in a forked child.
pub(crate) fn current_owner_id() -> u32 {
    current_tid() & TID_MASK
}

/// The calling thread's identity and robust-futex slot, read on first use
/// (cached; reset in a forked child).
#[inline]
pub(crate) fn me() -> Me {
    let m = ME.with(|c| c.get());
    if m.ident != 0 {
        return m;
    }
    me_slow()
}

#[cold]
fn me_slow() -> Me {
    let ident = match own_identity(current_tid()) {
        Occupant::Is(i) => i,
        _ => 0,
    };
    let (slot, offset) = robust_slot();
    let m = Me {
        ident,
        slot,
        offset,
    };
    if ident != 0 {
        ME.with(|c| c.set(m));
    }
    m
}

/// The kernel's `struct robust_list_head` (include/uapi/linux/futex.h).
#[repr(C)]
struct RobustListHead {
    list: *mut core::ffi::c_void,
    futex_offset: core::ffi::c_long,
    list_op_pending: *mut core::ffi::c_void,
}

thread_local! {
    /// The head registered for this thread if it had none (glibc registers
    /// one for every thread it starts, so this is for other C libraries).
    /// Never dropped while the thread runs: the kernel reads it at its exit.
    static OWN_HEAD: core::cell::UnsafeCell<RobustListHead> = const {
        core::cell::UnsafeCell::new(RobustListHead {
            list: core::ptr::null_mut(),
            futex_offset: 0,
            list_op_pending: core::ptr::null_mut(),
        })
    };
}

/// This thread's robust-futex list head: the address of its
/// `list_op_pending` field and its `futex_offset` ((0, 0) if there is none
/// and none could be registered).
fn robust_slot() -> (usize, isize) {
    let mut head: *mut RobustListHead = core::ptr::null_mut();
    let mut len: usize = 0;
    // SAFETY: get_robust_list(0, ..) writes the calling thread's head pointer
    // and its length into the two locals, which live across the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_get_robust_list,
            0,
            &mut head as *mut *mut RobustListHead,
            &mut len as *mut usize,
        )
    };
    if r != 0 {
        return (0, 0);
    }
    if head.is_null() {
        // No C library head: register one of our own, an empty list.
        let own = OWN_HEAD.with(|h| h.get());
        // SAFETY: `own` is this thread's own head (a thread-local that lives
        // until the thread exits, never moved); only this thread writes it.
        unsafe {
            (*own).list = core::ptr::addr_of_mut!((*own).list).cast();
            (*own).futex_offset = 0;
            (*own).list_op_pending = core::ptr::null_mut();
        }
        // SAFETY: registers `own` (valid until the thread exits) as the
        // calling thread's robust list head.
        let r = unsafe {
            libc::syscall(
                libc::SYS_set_robust_list,
                own,
                core::mem::size_of::<RobustListHead>(),
            )
        };
        if r != 0 {
            return (0, 0);
        }
        head = own;
    }
    // SAFETY: `head` is this thread's registered head (glibc's, in its thread
    // control block, or ours): readable for as long as the thread runs.
    let offset = unsafe { (*head).futex_offset } as isize;
    // SAFETY: as above; the address of a field, not a read.
    let slot = unsafe { core::ptr::addr_of_mut!((*head).list_op_pending) } as usize;
    (slot, offset)
}

/// Mark `word` as the lock word the calling thread is between winning (or
/// releasing) and publishing its identity for (`None`: clear the mark), in
/// its robust-futex list head's `list_op_pending`: if the thread dies while
/// the mark is set and the word's low 30 bits are its tid, the kernel sets
/// `FUTEX_OWNER_DIED` (bit 30) in the word, clears the tid and wakes a
/// waiter, before the tid can be given to another thread.
#[inline(always)]
pub(crate) fn set_pending(me: &Me, word: Option<&AtomicU32>) {
    if me.slot == 0 {
        return;
    }
    let v = word.map_or(0, |w| {
        (w as *const AtomicU32 as isize).wrapping_sub(me.offset) as usize
    });
    // The mark must be set before the CAS and cleared after the
    // publication, in program order (only this thread, or the kernel acting
    // for it at its exit, reads it).
    core::sync::atomic::compiler_fence(Ordering::SeqCst);
    // SAFETY: `me.slot` is the address of `list_op_pending` in this thread's
    // robust list head (`robust_slot`, for the thread that calls: `Me` is
    // read per thread and `ShmThread`, which carries it, is neither Send nor
    // Sync); the head outlives the thread; only this thread writes the field
    // (glibc sets and clears it inside its own robust mutex calls, which do
    // not run while this mark is set).
    unsafe { core::ptr::write_volatile(me.slot as *mut usize, v) };
    core::sync::atomic::compiler_fence(Ordering::SeqCst);
}

/// Test hook (the `internals` feature): make [`occupant`] answer as the
/// 8-bit tags of owner ids did when a newcomer's tag collided with a dead
/// owner's: "alive" for whatever thread has the tid.
static FORCE_TAG_COLLISION: AtomicBool = AtomicBool::new(false);

/// Set the [`FORCE_TAG_COLLISION`] test hook.
#[cfg_attr(not(feature = "internals"), allow(dead_code))]
pub(crate) fn force_tag_collision(on: bool) {
    FORCE_TAG_COLLISION.store(on, Ordering::Relaxed);
}

/// Who has tid `tid` now: nobody (no such thread, or one that has exited),
/// the thread with this identity ([`identity_of`]), or unknown.
pub(crate) fn occupant(tid: u32) -> Occupant {
    if FORCE_TAG_COLLISION.load(Ordering::Relaxed) {
        return match read_stat(tid) {
            Stat::Dead => Occupant::Nobody,
            _ => Occupant::Unknown,
        };
    }
    identity_of(tid)
}

/// The identity of the thread with tid `tid`: the inode number of a thread
/// pidfd for it (Linux 6.9+: pidfs gives every pid the kernel hands out its
/// own 64-bit inode number, never reused until reboot); before 6.9, bit 63
/// set, its start time (clock ticks since boot) in bits 22..63 and its tid in
/// bits 0..22. Nobody if there is no such thread (or it has exited); unknown
/// if it cannot be told now (out of descriptors, ...).
pub(crate) fn identity_of(tid: u32) -> Occupant {
    let Some(pid) = rustix::process::Pid::from_raw(tid as i32) else {
        return Occupant::Nobody;
    };
    // PIDFD_THREAD is O_EXCL.
    let flags = rustix::process::PidfdFlags::from_bits_retain(libc::O_EXCL as u32);
    match rustix::process::pidfd_open(pid, flags) {
        Ok(fd) => {
            if pidfd_exited(&fd) {
                return Occupant::Nobody;
            }
            inode_identity(&fd)
        }
        Err(rustix::io::Errno::SRCH) => Occupant::Nobody,
        Err(rustix::io::Errno::INVAL) => match read_stat(tid) {
            Stat::Dead => Occupant::Nobody,
            Stat::Unknown => Occupant::Unknown,
            Stat::Live { start } => {
                Occupant::Is(1 << 63 | (start & ((1 << 41) - 1)) << TID_BITS | tid as u64)
            }
        },
        Err(_) => Occupant::Unknown,
    }
}

/// [`identity_of`] the calling thread, whose tid is `tid`: the same answer
/// without asking whether the thread has exited (it is running this), one
/// `poll` fewer on every thread's (and forked child's) first lock.
fn own_identity(tid: u32) -> Occupant {
    let Some(pid) = rustix::process::Pid::from_raw(tid as i32) else {
        return Occupant::Nobody;
    };
    // PIDFD_THREAD is O_EXCL.
    let flags = rustix::process::PidfdFlags::from_bits_retain(libc::O_EXCL as u32);
    match rustix::process::pidfd_open(pid, flags) {
        Ok(fd) => inode_identity(&fd),
        Err(rustix::io::Errno::INVAL) => identity_of(tid),
        Err(_) => Occupant::Unknown,
    }
}

/// The identity a thread pidfd gives: its pidfs inode number (Linux 6.9+).
fn inode_identity(fd: &std::os::fd::OwnedFd) -> Occupant {
    match rustix::fs::fstat(fd) {
        Ok(st) if st.st_ino != 0 && st.st_ino >> 63 == 0 => Occupant::Is(st.st_ino),
        _ => Occupant::Unknown,
    }
}

/// Has the thread (or process) of `fd` exited (its pidfd is readable)?
pub(crate) fn pidfd_exited(fd: &std::os::fd::OwnedFd) -> bool {
    use std::os::fd::AsFd;
    super::io::readable(fd.as_fd(), Some(Duration::ZERO)).unwrap_or(false)
}

/// Is a thread with owner id `owner` alive (by tid only)? Allocation-free;
/// an error that does not tell counts as alive.
pub(crate) fn owner_is_alive(owner: u32) -> bool {
    !matches!(read_stat(owner & TID_MASK), Stat::Dead)
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
    let _ = ME.try_with(|c| {
        c.set(Me {
            ident: 0,
            slot: 0,
            offset: 0,
        })
    });
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

/// Starts one of procshare's own helper threads (a pool's dispatcher, a
/// manager server's connection threads, ...).
/// It is counted from before it exists until its body has returned, so that
/// the fork warning ([`super::fork`]) is raised only about the program's own
/// threads, never about procshare's.
///
/// The count drops when the body returns, a moment before the kernel removes
/// the thread: a fork in that moment sees one thread more than is counted and
/// may warn (once per process, as for any warning).
///
/// A `pthread_create` of our own, not `std::thread`: std's thread start and
/// exit take a process-wide lock (its stack-overflow handler's thread table),
/// and a forked child whose parent had a thread starting or ending at the
/// moment of the fork inherits that lock held: every `std::thread` the child
/// then starts waits forever (seen: a manager server forked from a test
/// binary with 8 test threads, its connection threads stuck in
/// `stack_overflow::thread_info::set_current_info`). procshare's children
/// start their threads here, so they never take it. (A thread started so has
/// no stack-overflow message; it still has a guard page.)
pub(crate) fn spawn_helper<F, T>(name: String, f: F) -> std::io::Result<Helper<T>>
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
    let slot: std::sync::Arc<std::sync::Mutex<Option<std::thread::Result<T>>>> =
        std::sync::Arc::default();
    let out = slot.clone();
    let mut cname = name.into_bytes();
    cname.truncate(15); // the kernel's limit, without the NUL
    cname.retain(|&b| b != 0);
    let cname = std::ffi::CString::new(cname).ok();
    let body: Box<dyn FnOnce() + Send> = Box::new(move || {
        let _counted = counted;
        // Named by itself before its body runs (named by the spawner, it
        // could run a while under the spawner's name).
        if let Some(c) = cname {
            // SAFETY: `pthread_self()` is this live thread and `c` a
            // NUL-terminated string of at most 16 bytes. Failure only leaves
            // the thread unnamed.
            unsafe { libc::pthread_setname_np(libc::pthread_self(), c.as_ptr()) };
        }
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        *out.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
    });
    // On a start error the body, and with it `counted`, is dropped: the
    // count is restored.
    let id = start_raw(body)?;
    Ok(Helper { id: Some(id), slot })
}

/// Starts `body` on a new thread (`pthread_create`, default attributes).
fn start_raw(body: Box<dyn FnOnce() + Send>) -> std::io::Result<libc::pthread_t> {
    extern "C" fn run(arg: *mut libc::c_void) -> *mut libc::c_void {
        // SAFETY: `arg` is the `Box<Box<dyn FnOnce()>>` leaked by `start_raw`
        // for this thread alone, taken back exactly once here.
        let body = unsafe { Box::from_raw(arg.cast::<Box<dyn FnOnce() + Send>>()) };
        // Never unwinds: the body catches its closure's panic (see
        // `spawn_helper`); a panic elsewhere aborts, as it must in `extern "C"`.
        body();
        core::ptr::null_mut()
    }
    let arg = Box::into_raw(Box::new(body)).cast::<libc::c_void>();
    let mut id: libc::pthread_t = 0;
    // SAFETY: `run` has the signature pthread_create expects and takes
    // ownership of `arg`; `id` is written on success.
    let rc = unsafe { libc::pthread_create(&mut id, core::ptr::null(), run, arg) };
    if rc != 0 {
        // SAFETY: the thread was not created, so `arg` is still ours alone.
        drop(unsafe { Box::from_raw(arg.cast::<Box<dyn FnOnce() + Send>>()) });
        return Err(std::io::Error::from_raw_os_error(rc));
    }
    Ok(id)
}

/// A helper thread started by [`spawn_helper`]: [`Helper::join`] waits for it
/// and gives its result (`Err` with the payload if it panicked), as
/// `std::thread::JoinHandle::join`; dropped unjoined, it is detached.
pub(crate) struct Helper<T> {
    id: Option<libc::pthread_t>,
    slot: std::sync::Arc<std::sync::Mutex<Option<std::thread::Result<T>>>>,
}

impl<T> Helper<T> {
    /// Waits for the thread to end; its body's result.
    pub(crate) fn join(mut self) -> std::thread::Result<T> {
        if let Some(id) = self.id.take() {
            // SAFETY: `id` is a thread of ours that was neither joined nor
            // detached (`id` is taken once).
            unsafe { libc::pthread_join(id, core::ptr::null_mut()) };
        }
        self.slot
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_else(|| Err(Box::new("the helper thread ended without a result")))
    }
}

impl<T> Drop for Helper<T> {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            // SAFETY: as in `join`: never joined nor detached before.
            unsafe { libc::pthread_detach(id) };
        }
    }
}

impl<T> std::fmt::Debug for Helper<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Helper")
            .field("joined", &self.id.is_none())
            .finish()
    }
}

/// The number of threads of this process, 0 if unknown. Called before every
/// fork, so cheap: one `stat` of `/proc/self/task`, whose link count procfs
/// makes 2 plus the number of threads (`proc_task_getattr`), ≈ 2 µs; reading
/// field 20 (`num_threads`) of `/proc/self/stat` instead, the fallback, costs
/// an `open`, a `read` and a `close`, ≈ 6 µs (the kernel formats the whole
/// line).
pub(crate) fn thread_count() -> usize {
    match rustix::fs::stat(c"/proc/self/task") {
        Ok(st) if st.st_nlink > 2 => st.st_nlink as usize - 2,
        _ => thread_count_from_stat(),
    }
}

/// [`thread_count`] from field 20 of `/proc/self/stat`: one `open`, one
/// `read` into a stack buffer and one `close`.
fn thread_count_from_stat() -> usize {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A helper thread gives its body's result to `join`, or its panic as
    /// `Err`; it runs under its name; it is counted as procshare's while it
    /// runs.
    #[test]
    fn helper_threads_join_name_and_count() {
        let before = helper_threads();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let h = spawn_helper("ps-test-helper".into(), move || {
            let comm = std::fs::read_to_string(format!(
                "/proc/self/task/{}/comm",
                rustix::thread::gettid().as_raw_nonzero()
            ))
            .unwrap();
            let _ = rx.recv();
            comm.trim().to_string()
        })
        .unwrap();
        assert!(helper_threads() > before, "not counted while it runs");
        drop(tx);
        assert_eq!(h.join().unwrap(), "ps-test-helper");
        let p = spawn_helper("ps-test-panic".into(), || -> u8 { panic!("on purpose") }).unwrap();
        let e = p.join().unwrap_err();
        assert_eq!(e.downcast_ref::<&str>(), Some(&"on purpose"));
        // Dropped unjoined: detached, and it still runs to its end.
        let (tx, rx) = std::sync::mpsc::channel();
        drop(spawn_helper("ps-test-detach".into(), move || tx.send(7).unwrap()).unwrap());
        assert_eq!(rx.recv().unwrap(), 7);
    }

    /// The link count of `/proc/self/task` counts the threads exactly as
    /// `num_threads` of `/proc/self/stat` does: 1 in a single-threaded
    /// process, 3 with two more threads. (In a forked child: the test
    /// harness starts and ends threads of its own meanwhile.)
    #[test]
    fn thread_count_by_link_count_is_exact() {
        let pid = super::super::fork::fork(|_| {
            let one = (thread_count(), thread_count_from_stat());
            let (tx, rx) = std::sync::mpsc::channel::<()>();
            let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
            let ts: Vec<_> = (0..2)
                .map(|_| {
                    let rx = rx.clone();
                    std::thread::spawn(move || {
                        let _ = rx.lock().map(|r| r.recv());
                    })
                })
                .collect();
            // Both threads exist once spawn has returned.
            let three = (thread_count(), thread_count_from_stat());
            drop(tx);
            for t in ts {
                let _ = t.join();
            }
            i32::from(one != (1, 1)) | i32::from(three != (3, 3)) << 1
        })
        .unwrap();
        assert_eq!(
            super::super::proc::wait_child(pid, true).unwrap(),
            Some(0),
            "1: one thread not counted 1 by both ways; 2: three threads not counted 3"
        );
    }

    /// `read_stat` answers with field 22 of proc(5)'s `stat` line (the start
    /// time in clock ticks since boot), read here the plain way; no thread, or
    /// tid 0, is `Dead`.
    #[test]
    fn read_stat_gives_the_start_time_field() {
        let pid = std::process::id();
        let line = std::fs::read_to_string("/proc/self/stat").unwrap();
        let after = &line[line.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = after.split_whitespace().collect();
        // `after` starts at field 3 (the state): field 22 is at index 19.
        let want: u64 = fields[22 - 3].parse().unwrap();
        match read_stat(pid) {
            Stat::Live { start } => assert_eq!(start, want, "field 22 of {line:?}"),
            Stat::Dead => panic!("this process read as dead"),
            Stat::Unknown => panic!("this process's stat could not be read"),
        }
        assert!(matches!(read_stat(0), Stat::Dead));
        // Above the kernel's pid_max limit (2^22): no such thread.
        assert!(matches!(read_stat((1 << 22) + 1), Stat::Dead));
    }

    /// The kernel's part of the pending mark: a process killed while it has
    /// marked a word (whose low bits hold its tid) pending gets the word
    /// turned into `FUTEX_OWNER_DIED` (tid cleared) by the kernel at its
    /// exit; a word it did not mark keeps its tid.
    #[test]
    fn kernel_marks_a_pending_word_of_a_killed_thread() {
        const OWNER_DIED: u32 = 0x4000_0000;
        // Three words in a shared anonymous mapping: the marked word, an
        // unmarked one, and a "ready" flag.
        // SAFETY: a fresh anonymous shared mapping of one page; unmapped below.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        // SAFETY: the page is mapped, zeroed, 4-aligned, and lives until the
        // munmap below; AtomicU32 has the layout of u32.
        let words = unsafe { core::slice::from_raw_parts(p as *const AtomicU32, 3) };
        let (marked, unmarked, ready) = (&words[0], &words[1], &words[2]);
        // SAFETY: the child reads its tid and robust-list head (`me()`, reset
        // by the fork: read afresh there, as after any fork), stores to the
        // shared page and never returns; the test binary's other threads do
        // not exist in it.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let tid = current_tid();
            let me = me();
            marked.store(tid, Ordering::SeqCst);
            unmarked.store(tid, Ordering::SeqCst);
            set_pending(&me, Some(marked));
            ready.store(1, Ordering::SeqCst);
            futex_wake(ready, 1);
            loop {
                // SAFETY: pause has no preconditions.
                unsafe { libc::pause() };
            }
        }
        while ready.load(Ordering::SeqCst) == 0 {
            futex_wait(ready, 0, None);
        }
        // SAFETY: kill and waitpid of our own child.
        unsafe {
            assert_eq!(libc::kill(pid, libc::SIGKILL), 0);
            assert_eq!(libc::waitpid(pid, core::ptr::null_mut(), 0), pid);
        }
        assert_eq!(unmarked.load(Ordering::SeqCst), pid as u32);
        assert_eq!(
            marked.load(Ordering::SeqCst),
            OWNER_DIED,
            "the kernel did not mark the pending word of the killed process"
        );
        // SAFETY: the mapping made above; `words` is not used after this.
        unsafe { libc::munmap(p, 4096) };
    }
}
