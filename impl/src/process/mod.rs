//! Processes (Python's `multiprocessing.Process`), started by one of Python's
//! three start methods ([`StartMethod`]): `fork` (the default), `spawn` and
//! `forkserver` (see [`crate::process::spawn`] for the last two).

mod context;
mod me;
pub(crate) mod spawn;

pub use context::{get_all_start_methods, get_context, Context};
pub(crate) use me::latest_running_child;
pub use me::{
    active_children, current_process, parent_process, ActiveChild, CurrentProcess, ParentProcess,
};

use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use crate::process::spawn::{FnCall, FnTarget, SpawnArgs, SpawnError};
use crate::sys::fork::AtFork;
use crate::sys::proc::{RawPid, Sig};
use std::sync::{Arc, Mutex, Once};

use crate::process::me::{Child, ChildInfo, ForkedMe};
use std::time::{Duration, Instant};

/// Errors of process management.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProcessError {
    /// `start` was called twice (Python: `AssertionError: cannot start a process twice`).
    #[error("cannot start a process twice")]
    AlreadyStarted,
    /// `join`, `terminate` or `kill` before `start` (Python: `can only join a started process`).
    #[error("can only {0} a started process")]
    NotStarted(&'static str),
    /// A system call failed.
    #[error("{what} failed: {source}")]
    Os {
        /// Which call.
        what: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A spawn or forkserver start failed (including a child that reported it
    /// could not start: [`SpawnError::Child`]).
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    /// `start` in a daemonic process (Python: `AssertionError: daemonic
    /// processes are not allowed to have children`).
    #[error("daemonic processes are not allowed to have children")]
    DaemonChildren,
    /// [`get_context`] with a name that is not a start method (Python:
    /// `ValueError: cannot find context for 'x'`).
    #[error("cannot find context for {0:?}")]
    UnknownStartMethod(String),
    /// `sentinel` of a process that has no pidfd (a kernel older than 5.3).
    #[error("this process has no pidfd to wait on")]
    NoSentinel,
}

fn os(what: &'static str) -> impl FnOnce(std::io::Error) -> ProcessError {
    move |source| ProcessError::Os { what, source }
}

/// How a child process is started (Python's start methods).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum StartMethod {
    /// `fork()`: the child is a copy of the parent and runs the closure
    /// (Python's default on Linux before 3.14).
    #[default]
    Fork,
    /// A fresh exec of this binary that runs a function target with its
    /// arguments: it inherits no memory, thread or lock of the parent.
    Spawn,
    /// A fork of a server process started once by spawn (single-threaded):
    /// cheap like fork, clean like spawn. The child's parent is the server.
    ForkServer,
}

/// The process-wide default start method: 0 fork, 1 spawn, 2 forkserver.
static DEFAULT_METHOD: AtomicU8 = AtomicU8::new(0);

pub(crate) fn method_code(m: StartMethod) -> u8 {
    match m {
        StartMethod::Fork => 0,
        StartMethod::Spawn => 1,
        StartMethod::ForkServer => 2,
    }
}

pub(crate) fn method_of(code: u8) -> StartMethod {
    match code {
        1 => StartMethod::Spawn,
        2 => StartMethod::ForkServer,
        _ => StartMethod::Fork,
    }
}

impl StartMethod {
    /// Python's name: `"fork"`, `"spawn"` or `"forkserver"`.
    ///
    /// ```
    /// assert_eq!(procshare::StartMethod::ForkServer.name(), "forkserver");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            StartMethod::Fork => "fork",
            StartMethod::Spawn => "spawn",
            StartMethod::ForkServer => "forkserver",
        }
    }
}

impl core::fmt::Display for StartMethod {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

impl core::str::FromStr for StartMethod {
    type Err = ProcessError;
    /// Python's names (`"fork"`, `"spawn"`, `"forkserver"`).
    fn from_str(s: &str) -> Result<StartMethod, ProcessError> {
        match s {
            "fork" => Ok(StartMethod::Fork),
            "spawn" => Ok(StartMethod::Spawn),
            "forkserver" => Ok(StartMethod::ForkServer),
            _ => Err(ProcessError::UnknownStartMethod(s.to_string())),
        }
    }
}

/// Sets the start method of processes created afterwards by
/// [`Process::with_target`] (Python's `multiprocessing.set_start_method`,
/// without its "only once" rule). Closures ([`Process::new`]) and the
/// [`Pool`](crate::Pool)'s workers are always forked.
///
/// ```
/// use procshare::{get_start_method, set_start_method, StartMethod};
/// set_start_method(StartMethod::Spawn);
/// assert_eq!(get_start_method(), StartMethod::Spawn);
/// set_start_method(StartMethod::Fork);
/// ```
pub fn set_start_method(method: StartMethod) {
    DEFAULT_METHOD.store(method_code(method), Ordering::Relaxed);
}

/// The start method new processes get (Python's `get_start_method()`).
///
/// A child inherits it: a child started by spawn or forkserver reports that
/// method (and starts its own children with it), a forked child `fork`.
///
/// ```
/// assert_eq!(procshare::get_start_method(), procshare::StartMethod::Fork);
/// ```
pub fn get_start_method() -> StartMethod {
    method_of(DEFAULT_METHOD.load(Ordering::Relaxed))
}

/// The number of CPUs in the system (Python's `multiprocessing.cpu_count()`), at least 1.
///
/// ```
/// assert!(procshare::cpu_count() >= 1);
/// ```
pub fn cpu_count() -> usize {
    crate::sys::thread::cpus_online()
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Turns the "forking a multi-threaded process" warning on or off for this
/// process (it is on unless `PROCSHARE_NO_FORK_WARNING=1` is set). The warning
/// is a `warn`-level record of the [`log`] facade, raised once per process by
/// the first fork that finds threads of the program's own besides the forking
/// one (procshare's helper threads do not count).
///
/// ```
/// procshare::set_fork_warning(false);
/// ```
pub fn set_fork_warning(enabled: bool) {
    crate::sys::fork::set_warning(enabled);
}

/// Reaps the children that have exited (dropped `Process`es included) and
/// forgets them (see the module docs).
fn reap_orphans() {
    me::sweep();
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

enum Target {
    /// `Process::new`: fork only.
    Closure(Box<dyn FnOnce() + Send + 'static>),
    /// `Process::with_target`: any start method.
    Function(Box<dyn FnTarget>),
}

/// A child process (Python's `multiprocessing.Process`), started by fork,
/// spawn or forkserver ([`StartMethod`]).
///
/// ```
/// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
/// use procshare::Process;
/// use std::time::Duration;
/// let mut p = Process::new(|| panic!("boom"));
/// p.start().unwrap();
/// assert_eq!(p.join_timeout(Duration::from_secs(10)).unwrap(), Some(1));
/// assert!(!p.is_alive());
/// ```
///
/// Processes (Python's `multiprocessing.Process`), started by one of Python's
/// three start methods ([`StartMethod`]): `fork` (the default), `spawn` and
/// `forkserver` (see [`SpawnArg`](crate::SpawnArg) for the last two).
///
/// ```
/// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
/// use procshare::Process;
/// let mut p = Process::new(|| {}).with_name("worker");
/// p.start().unwrap();
/// assert_eq!(p.join().unwrap(), 0);
/// assert_eq!(p.exitcode(), Some(0));
/// assert_eq!(p.name(), "worker");
/// ```
///
/// The same child under the three start methods: a plain function and its
/// arguments ([`Process::with_target`]) run under any of them; a closure
/// ([`Process::new`]) only under `fork`.
///
/// ```
/// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
/// use procshare::{Process, StartMethod};
/// use procshare::{Queue, Value};
///
/// fn work((n, q): (Value<u32>, Queue<u32>)) {
///     let mut g = n.lock().unwrap();
///     *g += 1;
///     q.put(&*g).unwrap();
/// }
///
/// let (n, q) = (Value::new(0u32).unwrap(), Queue::new().unwrap());
/// for m in [StartMethod::Fork, StartMethod::Spawn, StartMethod::ForkServer] {
///     let mut p = Process::with_target(work, (n.clone(), q.clone())).start_method(m);
///     p.start().unwrap();
///     assert_eq!(p.join().unwrap(), 0);
/// }
/// assert_eq!(n.get(), 3);
/// assert_eq!([q.get().unwrap(), q.get().unwrap(), q.get().unwrap()], [1, 2, 3]);
/// ```
///
/// # What a forked child runs
///
/// The child is a `fork` of the caller. It runs the closure under
/// `catch_unwind`, flushes its standard output and leaves with `_exit`: it
/// never returns into the parent's code and never runs the destructors of the
/// parent's objects (which it holds copies of). Exit codes are Python's: `0`,
/// `1` after a panic (the panic message goes to stderr through the panic hook),
/// the code given to `std::process::exit`, or `-N` after death by signal `N`.
///
/// # Forking a multi-threaded process
///
/// Only the forking thread exists in the child; a lock that another thread
/// held at the fork stays locked there forever (stdout's lock, a `Mutex` of
/// the program...). As Python 3.12 does, every fork procshare makes warns once
/// (a `warn`-level record of the [`log`] facade) when the process has threads
/// of the program's own besides the forking one; procshare's own helper
/// threads (a [`Pool`](crate::Pool)'s dispatcher) do not count. Set the
/// environment variable `PROCSHARE_NO_FORK_WARNING=1` or call
/// [`set_fork_warning`]`(false)` to silence it. procshare's own state is
/// fork-safe: the allocator and the thread-id cache are reset in the child. The child flushes stdout at exit
/// only if the parent was single-threaded at the fork (otherwise stdout's lock
/// could be held by a thread that does not exist in the child; lines written
/// with `println!` are flushed at each newline anyway).
///
/// # Drop
///
/// Dropping a `Process` neither waits for nor kills the child (Python's
/// non-daemon processes are not killed either). A child that has already
/// exited is reaped at once; one still running is remembered and reaped by a
/// later [`Process::start`] or `drop` of any `Process` once it has exited, so
/// zombies do not accumulate. Call [`Process::join`] (or
/// [`Process::terminate`] then `join`) to be sure. A forkserver child is the
/// server's child: the server reaps it and reports its exit code to the
/// `Process` (dropping the `Process` just stops listening).
pub struct Process {
    name: String,
    target: Option<Target>,
    running: Option<Arc<Child>>,
    daemon: bool,
    method: StartMethod,
    /// Its start number, once started (see `me::Child::seq`).
    seq: u64,
}

impl core::fmt::Debug for Process {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Process")
            .field("name", &self.name)
            .field("pid", &self.pid())
            .field(
                "exitcode",
                &self
                    .running
                    .as_ref()
                    .and_then(|c| *c.exit.lock().unwrap_or_else(|e| e.into_inner())),
            )
            .finish()
    }
}

impl Process {
    /// A process that will run the closure `f` once started. Its default name
    /// is `Process-N`, as in Python. A closure can only cross a fork, so its
    /// start method is [`StartMethod::Fork`] whatever the process-wide default
    /// ([`set_start_method`] applies to [`Process::with_target`]); choosing
    /// another one with [`Process::start_method`] makes `start` return
    /// [`SpawnError::ClosureTarget`], as Python's spawn refuses a lambda it
    /// cannot pickle.
    pub fn new<F: FnOnce() + Send + 'static>(f: F) -> Process {
        let mut p = Self::with(Target::Closure(Box::new(f)));
        p.method = StartMethod::Fork;
        p
    }

    /// A process that will run `f(args)`, under any start method. `args` is a
    /// tuple of [`SpawnArg`](crate::process::spawn::SpawnArg)s (serde values by copy,
    /// shared objects by handle); a single argument is written `(x,)`.
    ///
    /// ```
    /// use procshare::{Process, StartMethod};
    /// fn greet((who, times): (String, u32)) {
    ///     assert_eq!((who.as_str(), times), ("world", 2));
    /// }
    /// let mut p = Process::with_target(greet, ("world".to_string(), 2))
    ///     .start_method(StartMethod::Spawn);
    /// p.start().unwrap();
    /// assert_eq!(p.join().unwrap(), 0);
    /// ```
    pub fn with_target<A: SpawnArgs>(f: fn(A), args: A) -> Process {
        Self::with(Target::Function(Box::new(FnCall { f, args })))
    }

    fn with(target: Target) -> Process {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed) + 1;
        Process {
            name: format!("Process-{n}"),
            target: Some(target),
            running: None,
            // As Python: the current process's daemon flag by default.
            daemon: me::is_daemon(),
            method: get_start_method(),
            seq: 0,
        }
    }

    /// Builder: sets the name (a label only, as in Python's `name=`).
    pub fn with_name(mut self, name: impl Into<String>) -> Process {
        self.name = name.into();
        self
    }

    /// Renames the process (Python's `p.name = ...`).
    pub fn set_name(&mut self, name: impl Into<String>) {
        self.name = name.into();
    }

    /// Builder: makes the child daemonic or not (Python's `daemon`; the
    /// default is the current process's flag, so `false` where a process may
    /// start children). A daemonic child is terminated (`SIGTERM`, then
    /// reaped) when this process exits normally (`main` returns or
    /// `std::process::exit`), and may not start children of its own
    /// ([`ProcessError::DaemonChildren`]).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// use procshare::{Process, ProcessError};
    /// let mut p = Process::new(|| {
    ///     let mut grandchild = Process::new(|| {});
    ///     assert!(matches!(grandchild.start(), Err(ProcessError::DaemonChildren)));
    /// })
    /// .daemon(true);
    /// assert!(p.is_daemon());
    /// p.start().unwrap();
    /// assert_eq!(p.join().unwrap(), 0);
    /// ```
    pub fn daemon(mut self, daemon: bool) -> Process {
        self.daemon = daemon;
        self
    }

    /// Sets the daemon flag before `start` (Python's `p.daemon = ...`; see
    /// [`Process::daemon`]). Ignored once started (Python asserts).
    pub fn set_daemon(&mut self, daemon: bool) {
        if self.running.is_none() {
            self.daemon = daemon;
        }
    }

    /// Is (or will) the child be daemonic?
    pub fn is_daemon(&self) -> bool {
        self.daemon
    }

    /// The start method this process is (or will be) started by.
    pub fn get_start_method(&self) -> StartMethod {
        self.method
    }

    /// Sets the start method (the default is [`get_start_method`]).
    pub fn start_method(mut self, method: StartMethod) -> Process {
        self.method = method;
        self
    }

    /// The name (Python's `name`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The child's pid, once started.
    pub fn pid(&self) -> Option<u32> {
        self.running.as_ref().map(|r| r.pid as u32)
    }

    /// A descriptor that becomes readable when the child exits (a pidfd;
    /// Python's `sentinel`), for `poll` or a `wait` over several objects. Only
    /// readiness is meaningful: read the exit code with
    /// [`Process::join`]/[`Process::exitcode`].
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// use procshare::Process;
    /// use std::os::fd::AsRawFd;
    /// let mut p = Process::new(|| {});
    /// assert!(p.sentinel().is_err()); // not started
    /// p.start().unwrap();
    /// assert!(p.sentinel().unwrap().as_raw_fd() >= 0);
    /// assert_eq!(p.join().unwrap(), 0);
    /// ```
    pub fn sentinel(&self) -> Result<BorrowedFd<'_>, ProcessError> {
        let r = self.running("sentinel")?;
        r.pidfd
            .as_ref()
            .map(|f| f.as_fd())
            .ok_or(ProcessError::NoSentinel)
    }

    /// Starts the child by the chosen start method (see the module docs, and
    /// [`SpawnArg`](crate::SpawnArg) for spawn and forkserver, where `start` returns once
    /// the child has decoded its arguments).
    pub fn start(&mut self) -> Result<(), ProcessError> {
        if self.running.is_some() || self.target.is_none() {
            return Err(ProcessError::AlreadyStarted);
        }
        if me::is_daemon() {
            return Err(ProcessError::DaemonChildren);
        }
        reap_orphans();
        // Shared memory made before this start is not recycled while the
        // child runs (it may use it); see `shm::child_starting`.
        struct Starting(u64);
        impl Drop for Starting {
            fn drop(&mut self) {
                crate::shm::child_started();
            }
        }
        let starting = Starting(crate::shm::child_starting());
        self.seq = starting.0;
        if self.method != StartMethod::Fork {
            let info = ChildInfo::for_child(&self.name, self.daemon, self.method);
            let Some(Target::Function(f)) = &self.target else {
                return Err(SpawnError::ClosureTarget.into());
            };
            let l = if self.method == StartMethod::Spawn {
                crate::process::spawn::spawn(&**f, &info)?
            } else {
                crate::process::spawn::forkserver(&**f, &info)?
            };
            self.started(l.pid, l.pidfd, l.status, l.server, l.exit);
            self.target = None;
            return Ok(());
        }
        install_panic_hook();
        // Built here, so that the child allocates nothing to learn who it is.
        let me = ForkedMe::new(&self.name, self.daemon);
        // A child whose target locks a `Value` uses this thread's table.
        crate::sync::ready_for_fork();
        // The child runs `child_main`, which never returns (it leaves with `_exit`).
        let target = &mut self.target;
        let pid = crate::sys::fork::fork(|c| child_main(target.take(), c.parent_threads == 1, me))
            .map_err(os("fork"))?;
        // Parent.
        let pidfd = crate::sys::proc::pidfd_open(pid);
        self.started(pid, pidfd, None, None, None);
        // The parent's copy of the closure (and what it captured) is dropped here.
        self.target = None;
        Ok(())
    }

    fn started(
        &mut self,
        pid: RawPid,
        pidfd: Option<std::os::fd::OwnedFd>,
        status: Option<std::os::fd::OwnedFd>,
        server: Option<RawPid>,
        exit: Option<i32>,
    ) {
        let child = Arc::new(Child {
            pid,
            pidfd,
            status,
            server,
            exit: Mutex::new(exit),
            name: self.name.clone(),
            daemon: self.daemon,
            seq: self.seq,
        });
        me::register(child.clone());
        self.running = Some(child);
    }

    fn running(&self, what: &'static str) -> Result<&Child, ProcessError> {
        self.running
            .as_deref()
            .ok_or(ProcessError::NotStarted(what))
    }

    /// Reaps the child if it has exited (`block`: wait for it).
    fn try_reap(&self, block: bool) -> Result<Option<i32>, ProcessError> {
        match &self.running {
            Some(c) => c.try_reap(block),
            None => Ok(None),
        }
    }

    /// Waits for the child to exit and returns its exit code.
    pub fn join(&mut self) -> Result<i32, ProcessError> {
        self.running("join")?;
        Ok(self.try_reap(true)?.expect("blocking waitpid reaps"))
    }

    /// Waits at most `timeout` for the child to exit: `Some(exit code)`, or
    /// `None` if it is still running. Sleeps in `poll` on a pidfd (no polling loop).
    #[doc(alias = "join")]
    pub fn join_timeout(&mut self, timeout: Duration) -> Result<Option<i32>, ProcessError> {
        let r = self.running("join")?;
        if let Some(code) = self.try_reap(false)? {
            return Ok(Some(code));
        }
        let Some(fd) = r.status.as_ref().or(r.pidfd.as_ref()) else {
            // No pidfd (very old kernel): fall back to a coarse wait loop.
            let deadline = Instant::now() + timeout;
            while Instant::now() < deadline {
                if let Some(code) = self.try_reap(false)? {
                    return Ok(Some(code));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            return self.try_reap(false);
        };
        let deadline = Instant::now().checked_add(timeout);
        loop {
            let left = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()),
                None => Duration::from_secs(3600),
            };
            let ready = crate::sys::io::readable(fd.as_fd(), Some(left)).map_err(os("poll"))?;
            if let Some(code) = self.try_reap(false)? {
                return Ok(Some(code));
            }
            if !ready && deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
        }
    }

    /// The exit code if the child has exited (Python's `exitcode`): `None`
    /// while it runs or before `start`; `0`; `1` after a panic; `-N` after signal `N`.
    pub fn exitcode(&self) -> Option<i32> {
        self.try_reap(false).ok().flatten()
    }

    /// Started and not yet exited?
    pub fn is_alive(&self) -> bool {
        // An error means the child is gone (a forkserver child whose exit
        // code was lost with its server).
        self.running.is_some() && matches!(self.try_reap(false), Ok(None))
    }

    fn signal(&self, what: &'static str, sig: Sig) -> Result<(), ProcessError> {
        let r = self.running(what)?;
        if self.exitcode().is_some() {
            return Ok(()); // already gone, as in Python
        }
        // Not reaped yet, so the pid cannot have been reused.
        crate::sys::proc::send_signal(r.pidfd.as_ref(), r.pid, sig).map_err(os("kill"))
    }

    /// Sends `SIGTERM` (Python's `terminate()`); a no-op if the child has exited.
    pub fn terminate(&self) -> Result<(), ProcessError> {
        self.signal("terminate", Sig::Term)
    }

    /// Sends `SIGKILL` (Python's `kill()`); a no-op if the child has exited.
    pub fn kill(&self) -> Result<(), ProcessError> {
        self.signal("kill", Sig::Kill)
    }

    /// Sends `SIGINT` (Python 3.14's `interrupt()`); a no-op if the child has
    /// exited. A child that does not handle it dies with exit code `-2`.
    pub fn interrupt(&self) -> Result<(), ProcessError> {
        let r = self.running("interrupt")?;
        if self.exitcode().is_some() {
            return Ok(());
        }
        crate::sys::process_extra::send_sigint(r.pidfd.as_ref(), r.pid).map_err(os("kill"))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // A child still running stays in the registry, reaped by a later sweep.
        if let Some(c) = &self.running {
            me::forget_if_finished(c);
        }
        reap_orphans();
    }
}

/// What the panic hook does in this process (see [`install_panic_hook`]).
static PANIC_MODE: AtomicU8 = AtomicU8::new(PANIC_DEFAULT);
/// The program's own hook runs (the parent, spawned children).
const PANIC_DEFAULT: u8 = 0;
/// A forked child: the message goes straight to fd 2.
const PANIC_RAW: u8 = 1;
/// A pool worker: nothing is printed (the task's result carries the message).
pub(crate) const PANIC_SILENT: u8 = 2;

/// Wrap the process's panic hook, once, in the parent before its first fork.
///
/// A forked child must not run the default hook: it takes std's stderr and
/// backtrace locks, and another thread of the parent may have held one at
/// the moment of the fork (it was printing its own panic). The child would
/// then wait for it forever. So in a child the wrapper writes the message with
/// one `write(2)` and takes no lock; elsewhere it calls the hook it wrapped.
/// Children switch modes with [`set_panic_mode`] — an atomic store, not
/// `set_hook`, whose lock could be held by the same parent thread.
///
/// A hook the program sets later replaces the wrapper (and runs in the
/// children forked after that).
///
/// Once installed, every child of procshare's fork starts in the raw mode
/// (an entry of the fork registry, `sys::fork`).
pub(crate) fn install_panic_hook() {
    static ONCE: Once = Once::new();
    static RAW_IN_CHILD: AtFork = AtFork {
        name: "panic hook: raw mode in a forked child",
        prepare: None,
        child: || set_panic_mode(PANIC_RAW),
        around: None,
    };
    ONCE.call_once(|| {
        crate::sys::fork::register(&RAW_IN_CHILD);
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            match PANIC_MODE.load(Ordering::Relaxed) {
                PANIC_DEFAULT => prev(info),
                PANIC_RAW => {
                    let msg = crate::panic_message(info.payload());
                    let at = info
                        .location()
                        .map(|l| format!(" at {}:{}:{}", l.file(), l.line(), l.column()))
                        .unwrap_or_default();
                    let line = format!("process {} panicked{at}:\n{msg}\n", std::process::id());
                    // Raw write(2)s, no lock (see above).
                    crate::sys::write_stderr_raw(line.as_bytes());
                }
                _ => {}
            }
        }));
    });
}

/// Set what this (forked) process's panic hook does.
pub(crate) fn set_panic_mode(mode: u8) {
    PANIC_MODE.store(mode, Ordering::Relaxed);
}

/// What a spawned or forkserver child does before its target (a forked
/// child: `child_main`): its identity (and start method), and standard input
/// on `/dev/null`, as CPython's children.
pub(crate) fn child_setup(info: ChildInfo) {
    me::become_child(info);
    let _ = crate::sys::process_extra::stdin_to_devnull();
}

/// The child's side of `start`: never returns. Allocates nothing of its own
/// (its identity was built by the parent; the target runs where it is).
fn child_main(target: Option<Target>, flush_stdout: bool, me: ForkedMe) -> ! {
    set_panic_mode(PANIC_RAW);
    me::become_forked_child(me);
    let _ = crate::sys::process_extra::stdin_to_devnull();
    let ran = match target {
        Some(Target::Closure(f)) => catch_unwind(AssertUnwindSafe(f)),
        Some(Target::Function(f)) => catch_unwind(AssertUnwindSafe(move || f.run())),
        None => Ok(()),
    };
    // After a panic, the panic hook (`install_panic_hook`) printed the
    // message on stderr.
    let code = if ran.is_ok() { 0 } else { 1 };
    me::terminate_daemons();
    if flush_stdout {
        let _ = catch_unwind(|| {
            let _ = std::io::stdout().lock().flush();
        });
    }
    // Ends the child at once, without running the parent's destructors or
    // atexit handlers.
    crate::sys::proc::exit(code)
}
