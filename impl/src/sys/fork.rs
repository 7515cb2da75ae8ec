//! The one `fork` of procshare, and the registry of what a forked child resets.
//!
//! Every fork site (a [`Process`](crate::Process) start, the pool's workers,
//! which are `Process`es, the manager's server, the fork server's children)
//! calls [`fork`]. It:
//!
//! 1. **prepares** in the parent: finishes the process-wide lazily initialized
//!    values a child may use (a `OnceLock` that another thread is initializing
//!    at the moment of the fork stays "being initialized" forever in the
//!    child's copy, and a child that needs it waits forever — seen as a hang:
//!    a child blocked in `cpus()`), runs the registered `prepare` hooks, warns
//!    once about forking a multi-threaded process, flushes stdout and holds
//!    the stdout and stderr locks until just after the fork (on both sides);
//!    then runs the fork inside every registered `around` hook, which holds
//!    the locks of its module's state across it (no lock another thread
//!    takes briefly is ever inherited held);
//! 2. forks (glibc's `fork`, so glibc's own atfork work runs);
//! 3. **resets** in the child, before anything else runs there: the cached
//!    thread id, the count of helper threads, the fork generation, then the
//!    registered `child` hooks (the shared-memory arena's lock, the panic
//!    hook's mode, ...).
//!
//! The child reset also runs, through a `pthread_atfork` child handler, in
//! children forked by anyone else (the program's own `fork`), once per child.
//!
//! A module that owns process-local state a child must reset registers an
//! [`AtFork`] with [`register`] (once; it is kept for the process's life).
//! A `child` hook must be async-signal-safe: atomics and thread-locals only,
//! no lock, no allocation.

use core::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU64, Ordering};
use std::io::Write;
use std::sync::OnceLock;

/// What one module resets around a fork (see the [module docs](self)).
#[derive(Debug)]
pub(crate) struct AtFork {
    /// For the reader: what the hook resets.
    #[allow(dead_code)]
    pub(crate) name: &'static str,
    /// Run in the parent just before the fork (may lock and allocate).
    pub(crate) prepare: Option<fn()>,
    /// Run in the child just after the fork (async-signal-safe only).
    pub(crate) child: fn(),
    /// Runs the fork itself (its argument, to be called exactly once) while
    /// holding the locks this module's state is behind, so that no other
    /// thread holds one at the fork; releases them after it returns, in the
    /// parent and in the child alike. For locks other threads take only
    /// briefly, never while waiting for anything (a lock held across a
    /// blocking call would stall every fork of the process). Runs after
    /// every `prepare`.
    pub(crate) around: Option<fn(&mut dyn FnMut())>,
}

/// Room for the registered hooks (a fixed table: the child reads it without
/// locking or allocating).
const MAX_HOOKS: usize = 8;
static HOOKS: [AtomicPtr<AtFork>; MAX_HOOKS] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_HOOKS];

/// Forks under way in this process (in [`fork`], from reading the hooks to
/// the fork itself).
static FORKING: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

std::thread_local! {
    /// Is this thread inside [`fork`] (a hook registering another must not
    /// wait for its own fork)?
    static IN_FORK: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
}

/// Registers `hook` (idempotent: a hook already registered is not added twice).
///
/// Callers register before they first take what the hook guards. A first
/// registration waits until the forks under way in other threads are done:
/// one of them may have read the hooks before this one was there, and must
/// not fork while the caller holds what the hook would have taken care of
/// (a child would inherit that lock held). Forks that start later see it.
///
/// # Panics
/// If more than `MAX_HOOKS` distinct hooks are registered (a bug of this crate).
pub(crate) fn register(hook: &'static AtFork) {
    let p = hook as *const AtFork as *mut AtFork;
    // Cheap when already registered (loads only): callers register on use.
    if HOOKS.iter().any(|s| s.load(Ordering::Acquire) == p) {
        return;
    }
    let added = HOOKS.iter().any(|slot| {
        match slot.compare_exchange(
            core::ptr::null_mut(),
            p,
            Ordering::SeqCst,
            Ordering::Acquire,
        ) {
            Ok(_) => true,
            Err(cur) => cur == p,
        }
    });
    if !added {
        panic!("procshare: too many fork hooks");
    }
    if !IN_FORK.with(|f| f.get()) {
        while FORKING.load(Ordering::SeqCst) != 0 {
            std::thread::yield_now();
        }
    }
}

fn hooks() -> impl Iterator<Item = &'static AtFork> {
    HOOKS.iter().filter_map(|s| {
        let p = s.load(Ordering::Acquire);
        // SAFETY: only `&'static AtFork`s are ever stored.
        (!p.is_null()).then(|| unsafe { &*p })
    })
}

/// A process-wide value of which every forked process has its own copy,
/// made afresh (by `init`) on its first use there.
///
/// For state behind a lock that a child must not inherit: another thread of
/// the parent may hold the lock at the moment of the fork, and that thread
/// does not exist in the child, so the child's copy of the lock would stay
/// held forever (seen: a forked child blocked for good on the fork server's
/// connection while another thread of its parent was starting a process).
/// The parent's copy is never touched in the child, and is leaked there.
pub(crate) struct ForkLocal<T: 'static> {
    /// A leaked `Box<(generation, value)>`, or null before the first use.
    cur: AtomicPtr<(u64, T)>,
    init: fn() -> T,
}

impl<T: Send + Sync + 'static> ForkLocal<T> {
    /// A value made by `init` on first use in each process.
    pub(crate) const fn new(init: fn() -> T) -> Self {
        ForkLocal {
            cur: AtomicPtr::new(core::ptr::null_mut()),
            init,
        }
    }

    /// This process's value.
    pub(crate) fn get(&'static self) -> &'static T {
        let g = generation();
        loop {
            let p = self.cur.load(Ordering::Acquire);
            // SAFETY: only pointers from `Box::into_raw` are stored in `cur`,
            // and none is ever freed (a replaced one is leaked), so `p` points
            // to a live, initialized pair for the rest of the process.
            if let Some((gen, v)) = (!p.is_null()).then(|| unsafe { &*p }) {
                if *gen == g {
                    return v;
                }
            }
            let fresh = Box::into_raw(Box::new((g, (self.init)())));
            if self
                .cur
                .compare_exchange(p, fresh, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                // SAFETY: `fresh` came from `Box::into_raw` just above and was
                // never shared (the exchange failed).
                drop(unsafe { Box::from_raw(fresh) });
            }
        }
    }
}

/// A lazily computed `bool` that a forked child can always read or compute.
///
/// Not a `OnceLock`: a `OnceLock` that another thread of the parent was
/// initializing at the moment of the fork stays "running" in the child,
/// whose copy has no thread to finish it, so the child's first use waits
/// forever (seen: a forked child hung in `fork`'s prepare step, on the
/// "is procshare in the executable" check another test thread was making).
/// A fork prepare hook that completes the value does not close that gap: a
/// thread can start initializing after the hooks ran and before the fork.
///
/// Here nobody waits: two threads (or a child and nobody) that find it unset
/// both compute it, and both store the same answer, so `compute` must be a
/// function of the process only (what the executable is, never what time
/// it is).
pub(crate) struct LazyFlag(core::sync::atomic::AtomicU8);

impl LazyFlag {
    const UNSET: u8 = 0;
    const FALSE: u8 = 1;
    const TRUE: u8 = 2;

    /// An unset flag.
    pub(crate) const fn new() -> Self {
        LazyFlag(core::sync::atomic::AtomicU8::new(Self::UNSET))
    }

    /// The flag, computing it with `compute` if no thread has stored it yet.
    pub(crate) fn get_or_compute(&self, compute: impl FnOnce() -> bool) -> bool {
        match self.0.load(Ordering::Acquire) {
            Self::TRUE => true,
            Self::FALSE => false,
            _ => {
                let v = compute();
                self.0
                    .store(if v { Self::TRUE } else { Self::FALSE }, Ordering::Release);
                v
            }
        }
    }
}

/// Incremented in every forked child (see [`generation`]).
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// How many times this process's ancestry has forked into it: 0 in the
/// original process, bumped once in each forked child. Process-local
/// allocators use it to notice that they run in a copy of their parent's memory.
pub(crate) fn generation() -> u64 {
    GENERATION.load(Ordering::Acquire)
}

/// The pid for which the child reset last ran (so it runs once per child,
/// whether the atfork handler, [`fork`], or both call it).
static RESET_FOR: AtomicI32 = AtomicI32::new(0);

/// The child side of every fork: resets process-local state, once per
/// process. Async-signal-safe (a `getpid` system call, atomics, thread-locals).
fn child_reset() {
    let me = rustix::process::getpid().as_raw_nonzero().get();
    if RESET_FOR.swap(me, Ordering::AcqRel) == me {
        return;
    }
    super::thread::reset_tid_cache();
    super::thread::reset_helpers();
    // The forks under way were the parent's threads' (this one's included).
    FORKING.store(0, Ordering::SeqCst);
    GENERATION.fetch_add(1, Ordering::AcqRel);
    for h in hooks() {
        (h.child)();
    }
}

extern "C" fn atfork_child() {
    child_reset();
}

/// Registers the `pthread_atfork` child handler (once per process), so that
/// children forked outside procshare reset too.
pub(crate) fn ensure_atfork() {
    static REGISTERED: OnceLock<()> = OnceLock::new();
    REGISTERED.get_or_init(|| {
        // SAFETY: registers a handler that only makes async-signal-safe calls
        // (see `child_reset`); the function lives forever. libc: see the
        // module table of `sys` (not a system call).
        let rc = unsafe { libc::pthread_atfork(None, None, Some(atfork_child)) };
        debug_assert_eq!(rc, 0);
    });
}

/// What a forked child learns about its fork.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Child {
    /// How many threads the parent had at the fork (0 if unknown; 1: no lock
    /// of the parent can be held by a thread that is missing here).
    pub(crate) parent_threads: usize,
}

static WARN_ENABLED: AtomicBool = AtomicBool::new(true);
static WARNED: AtomicBool = AtomicBool::new(false);

/// Turns the "forking a multi-threaded process" warning on or off.
pub(crate) fn set_warning(enabled: bool) {
    WARN_ENABLED.store(enabled, Ordering::Relaxed);
}

/// Is a fork with `threads` threads in the process, `helpers` of them
/// procshare's own helper threads, worth the warning? Only the program's own
/// threads count: procshare's helpers (a pool's dispatcher) never hold a lock
/// across a fork that a child could need.
pub(crate) fn warrants_warning(threads: usize, helpers: usize) -> bool {
    threads.saturating_sub(helpers) > 1
}

fn maybe_warn(threads: usize) {
    if !WARN_ENABLED.load(Ordering::Relaxed) {
        return;
    }
    let helpers = super::thread::helper_threads();
    if !warrants_warning(threads, helpers) {
        return;
    }
    if std::env::var_os("PROCSHARE_NO_FORK_WARNING").is_some_and(|v| v == "1") {
        return;
    }
    if WARNED.swap(true, Ordering::Relaxed) {
        return;
    }
    log::warn!(
        "this process (pid={}) is multi-threaded ({} threads besides procshare's own), \
         use of fork() may lead to deadlocks in the child. \
         (Set PROCSHARE_NO_FORK_WARNING=1 to silence this warning.)",
        std::process::id(),
        threads - helpers
    );
}

/// Forks the calling process (see the [module docs](self) for what happens
/// around the fork) and runs `child` in the new process, which then ends with
/// `_exit` and the code `child` returns (1 if it panics: a panic never unwinds
/// into the parent's code in the child). Returns the child's pid, in the parent.
///
/// In a multi-threaded parent, `child` should keep to what cannot need a lock
/// held by a thread that does not exist in the child (as POSIX says of
/// `fork`); a lock held so is a hang, never undefined behaviour.
pub(crate) fn fork(child: impl FnOnce(Child) -> i32) -> std::io::Result<super::proc::RawPid> {
    // Prepare.
    ensure_atfork();
    let _ = super::thread::cpus();
    // std's stdout handle is a lazily initialized static too (a child that
    // prints would wait for it).
    let _ = std::io::stdout();
    // Announced before the hooks are read (see `register`), by this thread
    // (a hook that registers another must not wait for this fork).
    FORKING.fetch_add(1, Ordering::SeqCst);
    let was_in_fork = IN_FORK.with(|f| f.replace(true));
    let forked = prepare_and_fork();
    IN_FORK.with(|f| f.set(was_in_fork));
    let (pid, threads) = match forked {
        Ok(x) => x,
        Err(e) => {
            FORKING.fetch_sub(1, Ordering::SeqCst);
            return Err(e);
        }
    };
    if pid == 0 {
        let info = Child {
            parent_threads: threads,
        };
        let code =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| child(info))).unwrap_or(1);
        super::proc::exit(code);
    }
    FORKING.fetch_sub(1, Ordering::SeqCst);
    Ok(pid)
}

/// [`fork`]'s middle: the `prepare` hooks, the warning, then the fork inside
/// every `around` hook with stdout and stderr held. Returns the pid (0 in
/// the child, reset already) and the parent's thread count.
fn prepare_and_fork() -> std::io::Result<(super::proc::RawPid, usize)> {
    for h in hooks() {
        if let Some(p) = h.prepare {
            p();
        }
    }
    let threads = super::thread::thread_count();
    maybe_warn(threads);
    let arounds: Vec<fn(&mut dyn FnMut())> = hooks().filter_map(|h| h.around).collect();
    // stdout and stderr are held across the fork, as glibc holds its stdio
    // locks: another thread that held either at the fork does not exist in
    // the child, whose copy of the lock would stay held forever (seen: a
    // child hung in its own flush while the test harness's thread was
    // printing). Held by this thread, it is this thread's in the child too
    // (std's locks are reentrant, owned by the thread), and released on both
    // sides just after. Taken before the hooks' locks: a thread may hold
    // stdout while it makes a manager call (which takes one of those), never
    // the other way round. Flushed first, so that buffered output is not
    // written twice.
    let mut out = std::io::stdout().lock();
    let _ = out.flush();
    let err = std::io::stderr().lock();
    let mut forked: Option<std::io::Result<super::proc::RawPid>> = None;
    nest(&arounds, &mut || {
        // SAFETY: in the child, only the reset, the releases of the locks
        // this thread holds and then the caller's closure run, and the
        // process ends with `_exit` (see `fork`): control never returns
        // into the parent's code, whose objects the child only holds copies
        // of. libc, not rustix: see the module table of `sys` (glibc's fork
        // keeps malloc and stdio consistent).
        let pid = unsafe { libc::fork() };
        let r = if pid < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(pid)
        };
        if pid == 0 {
            child_reset();
        }
        forked = Some(r);
    });
    drop(err);
    drop(out);
    let pid = forked.unwrap_or_else(|| Err(std::io::Error::other("a fork hook did not fork")))?;
    Ok((pid, threads))
}

/// Runs `f` inside every hook of `arounds`, the first outermost.
fn nest(arounds: &[fn(&mut dyn FnMut())], f: &mut dyn FnMut()) {
    match arounds.split_first() {
        Some((first, rest)) => first(&mut || nest(rest, f)),
        None => f(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::sync::atomic::AtomicUsize;

    /// Fork warnings logged in this process (by the test logger below).
    static WARNINGS: AtomicUsize = AtomicUsize::new(0);

    struct Capture;
    impl log::Log for Capture {
        fn enabled(&self, _: &log::Metadata<'_>) -> bool {
            true
        }
        fn log(&self, r: &log::Record<'_>) {
            if r.level() == log::Level::Warn && r.args().to_string().contains("multi-threaded") {
                WARNINGS.fetch_add(1, Ordering::SeqCst);
            }
        }
        fn flush(&self) {}
    }

    fn double(x: u32) -> u32 {
        2 * x
    }

    /// Runs in a spawned child: a fresh exec, single-threaded when it starts.
    fn pools_do_not_warn_child(_: (u8,)) {
        std::env::remove_var("PROCSHARE_NO_FORK_WARNING");
        set_warning(true);
        log::set_logger(&Capture).unwrap();
        log::set_max_level(log::LevelFilter::Trace);
        // A first pool: its dispatcher thread runs from here on.
        let a = crate::Pool::new(1).unwrap();
        assert_eq!(a.apply(double, 1).unwrap(), 2);
        // A second pool forks its worker from the main thread while the first
        // pool's dispatcher exists.
        let b = crate::Pool::new(1).unwrap();
        assert_eq!(b.apply(double, 2).unwrap(), 4);
        assert_eq!(WARNINGS.load(Ordering::SeqCst), 0, "a second Pool warned");
        // A worker killed: its replacement is forked by the dispatcher thread
        // (the task below can only finish on a replacement).
        let pid = b.worker_pids()[0] as i32;
        crate::sys::proc::send_signal(None, pid, crate::sys::proc::Sig::Kill).unwrap();
        assert_eq!(b.apply(double, 3).unwrap(), 6);
        assert_eq!(
            WARNINGS.load(Ordering::SeqCst),
            0,
            "a replaced worker warned"
        );
        // A thread of the program's own: now a fork warns (once).
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let user = std::thread::spawn(move || rx.recv());
        let mut p = crate::Process::new(|| {});
        p.start().unwrap();
        assert_eq!(p.join().unwrap(), 0);
        assert_eq!(
            WARNINGS.load(Ordering::SeqCst),
            1,
            "a user thread did not warn"
        );
        drop(tx);
        let _ = user.join();
    }

    #[test]
    fn pools_warn_only_about_the_programs_threads() {
        // In a spawned child: this test binary has libtest's threads.
        let mut p = crate::Process::with_target(pools_do_not_warn_child, (0,))
            .start_method(crate::process::StartMethod::Spawn);
        p.start().unwrap();
        assert_eq!(
            p.join().unwrap(),
            0,
            "the child's assertion failed (see its stderr)"
        );
    }

    /// A child learns exactly how many threads its parent had at the fork
    /// (`thread_count`): 1 from a single-threaded process, 2 while a second
    /// thread runs. (Forked from a child: the test harness has threads of its own.)
    #[test]
    fn children_learn_the_parents_thread_count() {
        let outer = fork(|_| {
            let child_saw = |n: usize| {
                let pid = fork(move |c| i32::from(c.parent_threads != n)).unwrap();
                super::super::proc::wait_child(pid, true).unwrap() == Some(0)
            };
            let single = child_saw(1);
            let (tx, rx) = std::sync::mpsc::channel::<()>();
            let t = std::thread::spawn(move || rx.recv());
            let two = child_saw(2);
            drop(tx);
            let _ = t.join();
            i32::from(!single) | i32::from(!two) << 1
        })
        .unwrap();
        assert_eq!(
            super::super::proc::wait_child(outer, true).unwrap(),
            Some(0),
            "1: a single-threaded parent not counted as 1; 2: two threads not counted as 2"
        );
    }

    /// Waits for our child `pid` at most `secs` seconds (a bound that turns a
    /// hang into a failure, not a timing assertion), killing it if it is
    /// still there; whether it exited by itself, and its exit code.
    fn exits_within(pid: super::super::proc::RawPid, secs: i64) -> (bool, Option<i32>) {
        let pidfd = super::super::proc::pidfd_open(pid).expect("pidfd of our child");
        let exited = rustix::event::poll(
            &mut [rustix::event::PollFd::new(
                &pidfd,
                rustix::event::PollFlags::IN,
            )],
            Some(&rustix::time::Timespec {
                tv_sec: secs,
                tv_nsec: 0,
            }),
        )
        .unwrap()
            == 1;
        if !exited {
            let _ = super::super::proc::send_signal(None, pid, super::super::proc::Sig::Kill);
        }
        (exited, super::super::proc::wait_child(pid, true).unwrap())
    }

    /// A child forked while another thread of its parent is in the middle
    /// of computing a `LazyFlag` computes it itself instead of waiting for a
    /// thread it does not have. (With a `OnceLock` in its place the child
    /// waits forever: the bounded wait below then fails the test.)
    #[test]
    fn a_lazy_flag_being_computed_at_the_fork_does_not_block_the_child() {
        static FLAG: LazyFlag = LazyFlag::new();
        let (entered_tx, entered_rx) = std::sync::mpsc::channel::<()>();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let computing = std::thread::spawn(move || {
            FLAG.get_or_compute(|| {
                entered_tx.send(()).unwrap();
                release_rx.recv().unwrap();
                true
            })
        });
        entered_rx.recv().unwrap();
        // The other thread is inside `compute` now, until released.
        let pid = fork(|_| i32::from(!FLAG.get_or_compute(|| true))).unwrap();
        let (exited, code) = exits_within(pid, 60);
        release_tx.send(()).unwrap();
        assert!(computing.join().unwrap());
        assert!(
            exited,
            "the child waited for a computation of a thread it does not have"
        );
        assert_eq!(code, Some(0), "the child read the flag wrong");
    }

    /// A child forked while another thread of its parent takes and releases
    /// the stdout and stderr locks over and over can still use both: the fork
    /// never happens while that thread holds one. (With the locks only taken
    /// for the flush before the fork, a child inherits a held copy about
    /// every other time and waits forever: the bounded wait below fails.)
    #[test]
    fn a_child_can_print_whatever_another_thread_does_with_stdout() {
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let busy = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let o = std::io::stdout().lock();
                    let e = std::io::stderr().lock();
                    drop((o, e));
                }
            })
        };
        let mut hung = 0;
        for _ in 0..50 {
            let pid = fork(|_| {
                let _ = std::io::stdout().lock().flush();
                let _ = std::io::stderr().lock().flush();
                0
            })
            .unwrap();
            if !exits_within(pid, 30).0 {
                hung += 1;
            }
            if hung > 0 {
                break;
            }
        }
        stop.store(true, Ordering::Relaxed);
        busy.join().unwrap();
        assert_eq!(
            hung, 0,
            "a child waited for a stdout/stderr lock of a thread it does not have"
        );
    }

    #[test]
    fn only_the_programs_own_threads_warrant_the_warning() {
        assert!(!warrants_warning(1, 0));
        // The main thread and a pool's dispatcher: procshare's thread, no warning.
        assert!(!warrants_warning(2, 1));
        // A user thread besides the main one.
        assert!(warrants_warning(2, 0));
        assert!(warrants_warning(3, 1));
        // Unknown thread count (0): no warning.
        assert!(!warrants_warning(0, 0));
    }
}
