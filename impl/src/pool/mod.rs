//! A pool of worker processes (Python's `multiprocessing.pool.Pool`), with an
//! initializer that sets per-worker globals, and no hangs when a worker dies.

mod driver;
mod error;
pub(crate) mod fds;
mod job;
mod plain;
mod pod;
mod result;
mod stream;
pub(crate) mod worker;

#[cfg(feature = "internals")]
pub use driver::slot_frames;
pub use error::PoolError;
pub use result::{AsyncResult, Imap, MapResult};

use std::sync::{Arc, Mutex};

use procshare_model::pool::Config;
use serde::de::DeserializeOwned;
use serde::Serialize;

use driver::{Driver, Frame, Shared, Submission};
use job::{ErrCallback, Job, OkCallback};
use worker::Tramp;

/// How long an idle pool worker polls for work before it sleeps, by default
/// (see [`PoolBuilder::idle_spin`]).
const DEFAULT_IDLE_SPIN: core::time::Duration = core::time::Duration::from_micros(200);

/// The longest [`PoolBuilder::idle_spin`].
const MAX_IDLE_SPIN: core::time::Duration = core::time::Duration::from_millis(1);

/// Builder of a [`Pool`] (CPython's `Pool(processes, initializer, initargs, maxtasksperchild)`).
///
/// ```
/// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
/// use procshare::{Pool, PoolError};
/// assert_eq!(Pool::builder().processes(0).build().err(), Some(PoolError::NoProcesses));
/// assert_eq!(Pool::builder().maxtasksperchild(0).build().err(), Some(PoolError::BadMaxTasks));
/// ```
pub struct PoolBuilder {
    processes: Option<usize>,
    init: Option<worker::InitFn>,
    /// The initializer in a form that crosses an exec (`spawn_initializer`).
    spawn_init: Option<Arc<dyn worker::SpawnInit>>,
    maxtasks: Option<u64>,
    bad_maxtasks: bool,
    method: crate::process::StartMethod,
    idle_spin: Option<core::time::Duration>,
    /// Callers spin whatever the load (tests: see `Shared::without_load_gate`).
    #[cfg(test)]
    no_load_gate: bool,
}

impl core::fmt::Debug for PoolBuilder {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("processes", &self.processes)
            .field("initializer", &self.init.is_some())
            .field("maxtasksperchild", &self.maxtasks)
            .field("idle_spin", &self.idle_spin)
            .finish()
    }
}

impl PoolBuilder {
    /// Number of workers (default: [`crate::cpu_count`]).
    pub fn processes(mut self, n: usize) -> Self {
        self.processes = Some(n);
        self
    }

    /// Run `f(initargs.clone())` in each worker before its first task.
    /// `initargs` is cloned in the child after the fork: it may hold inherited
    /// objects (queues, values, proxies) and need not be serializable.
    ///
    /// Fork only: the closure over `initargs` cannot cross an exec, so with
    /// the spawn or forkserver start method `build` fails with
    /// [`PoolError::UnsupportedStartMethod`]; use
    /// [`spawn_initializer`](Self::spawn_initializer) there.
    pub fn initializer<A: Clone + Send + Sync + 'static>(mut self, f: fn(A), initargs: A) -> Self {
        self.init = Some(Arc::new(move || f(initargs.clone())));
        self.spawn_init = None;
        self
    }

    /// The initializer for every start method (CPython's
    /// `get_context("spawn").Pool(initializer=f, initargs=(...))`): `initargs`
    /// is a tuple of [`SpawnArg`](crate::SpawnArg)s, as
    /// [`Process::with_target`](crate::Process::with_target) takes — serde
    /// values (by copy) and shared objects (a `SimpleQueue`, a `Value`, a
    /// `Lock`, ...: handles onto the same shared memory). Under fork it is
    /// cloned in each worker as [`initializer`](Self::initializer) does; under
    /// spawn and forkserver each worker (and each replacement) receives it
    /// encoded and decodes its own copy. `f` is found in the worker by its
    /// offset in the executable.
    ///
    /// ```
    /// use procshare::{Pool, SimpleQueue, StartMethod};
    /// use std::sync::OnceLock;
    ///
    /// static Q: OnceLock<SimpleQueue<u32>> = OnceLock::new();
    /// fn init((q, _tag): (SimpleQueue<u32>, String)) {
    ///     let _ = Q.set(q);
    /// }
    /// fn task(x: u32) {
    ///     Q.get().unwrap().put(&(x * 10)).unwrap();
    /// }
    ///
    /// let q = SimpleQueue::new().unwrap();
    /// let pool = Pool::builder()
    ///     .processes(1)
    ///     .start_method(StartMethod::Spawn)
    ///     .spawn_initializer(init, (q.clone(), "tag".to_string()))
    ///     .build()
    ///     .unwrap();
    /// pool.apply(task, 4).unwrap();
    /// assert_eq!(q.get().unwrap(), 40);
    /// ```
    pub fn spawn_initializer<A: crate::SpawnArgs + Clone + Sync>(
        mut self,
        f: fn(A),
        initargs: A,
    ) -> Self {
        let fork_args = initargs.clone();
        self.init = Some(Arc::new(move || f(fork_args.clone())));
        self.spawn_init = Some(Arc::new(worker::InitCall { f, args: initargs }));
        self
    }

    /// Recycle each worker after `n` units of work (`n >= 1`).
    pub fn maxtasksperchild(mut self, n: u64) -> Self {
        self.bad_maxtasks = n == 0;
        self.maxtasks = Some(n);
        self
    }

    /// The workers' start method (CPython's `get_context(method).Pool(...)`):
    /// `fork` (the default), `spawn` or `forkserver`. Replacement workers
    /// (after `maxtasksperchild`, or a worker's death) are started the same
    /// way. Under spawn and forkserver an initializer must be given by
    /// [`spawn_initializer`](Self::spawn_initializer): one given by
    /// [`initializer`](Self::initializer) makes `build` fail with
    /// [`PoolError::UnsupportedStartMethod`].
    ///
    /// ```
    /// use procshare::{PoolError, Pool, StartMethod};
    /// fn double(x: u32) -> u32 {
    ///     2 * x
    /// }
    /// fn init(_: u8) {}
    /// let pool = Pool::builder().processes(1).start_method(StartMethod::Spawn).build().unwrap();
    /// assert_eq!(pool.map(double, 1..4).unwrap(), [2, 4, 6]);
    /// let r = Pool::builder()
    ///     .processes(1)
    ///     .start_method(StartMethod::ForkServer)
    ///     .initializer(init, 0)
    ///     .build();
    /// assert!(matches!(r, Err(PoolError::UnsupportedStartMethod(StartMethod::ForkServer))));
    /// ```
    pub fn start_method(mut self, m: crate::process::StartMethod) -> Self {
        self.method = m;
        self
    }

    /// How long an idle worker keeps polling its socket for the next unit of
    /// work before it sleeps in the kernel. A unit that arrives while the
    /// worker polls starts at once; one that arrives after it sleeps waits for
    /// the kernel to wake it, which on a virtual machine whose other CPU
    /// halted costs tens of microseconds (a sequence of
    /// `apply_async(..).get()` calls is then three times slower). The price is
    /// up to this much CPU time burnt each time a worker runs out of work, so
    /// a worker polls only while the machine has a CPU for it: its runnable
    /// tasks (`/proc/loadavg`, this worker included) are no more than its
    /// CPUs. On busy CPUs it would take one from the process that sends it
    /// the next unit.
    ///
    /// A thread of the program waiting for one of the pool's results (`get`,
    /// `wait`, `map`) polls the same way, for the same time and on the same
    /// condition, reading the workers' answers itself (see [`Pool`]).
    ///
    /// Default: 200 µs when the pool has at most as many
    /// workers as there are CPUs ([`cpu_count`](crate::cpu_count)), zero
    /// otherwise (an idle worker would take a CPU from a busy one).
    /// `Duration::ZERO` turns polling off; values above a millisecond are
    /// taken as a millisecond.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// use std::time::Duration;
    /// use procshare::Pool;
    /// fn inc(x: u64) -> u64 {
    ///     x + 1
    /// }
    /// let pool = Pool::builder().processes(1).idle_spin(Duration::ZERO).build().unwrap();
    /// assert_eq!(pool.apply(inc, 41).unwrap(), 42);
    /// ```
    pub fn idle_spin(mut self, d: core::time::Duration) -> Self {
        self.idle_spin = Some(d.min(MAX_IDLE_SPIN));
        self
    }

    /// Start the workers and wait until each has run its initializer.
    /// An initializer that panics is [`PoolError::InitializerFailed`].
    pub fn build(self) -> Result<Pool, PoolError> {
        let processes = self.processes.unwrap_or_else(crate::cpu_count);
        if processes == 0 {
            return Err(PoolError::NoProcesses);
        }
        if self.method != crate::process::StartMethod::Fork
            && self.init.is_some()
            && self.spawn_init.is_none()
        {
            return Err(PoolError::UnsupportedStartMethod(self.method));
        }
        if self.bad_maxtasks {
            return Err(PoolError::BadMaxTasks);
        }
        crate::process::install_panic_hook();
        let cfg = Config {
            processes,
            maxtasksperchild: self.maxtasks,
            depth: 2,
        };
        let spin = self
            .idle_spin
            .unwrap_or(if processes <= crate::cpu_count() {
                DEFAULT_IDLE_SPIN
            } else {
                core::time::Duration::ZERO
            });
        let shared = Shared::new(spin)?;
        #[cfg(test)]
        let shared = if self.no_load_gate {
            shared.without_load_gate()
        } else {
            shared
        };
        let shared = Arc::new(shared);
        let mut drv = Driver::new(
            cfg,
            shared.clone(),
            self.init,
            self.spawn_init,
            self.method,
            spin,
        );
        // Fork the first workers from this thread (the dispatcher thread does
        // not exist yet) and wait for their initializers.
        while drv.ready_workers() < processes && drv.broken().is_none() && !drv.is_finished() {
            drv.step(-1);
        }
        if let Some(msg) = drv.broken() {
            drv.terminate();
            while !drv.is_finished() {
                drv.step(-1);
            }
            drv.finish();
            return Err(PoolError::InitializerFailed(msg));
        }
        // The driver goes where callers can reach it (see `Shared::help`);
        // the dispatcher thread, a helper thread not counted by the fork
        // warning, drives it from now on.
        *shared.lock_driver() = Some(drv);
        let s2 = shared.clone();
        let thread = crate::sys::thread::spawn_helper("procshare-pool".into(), move || {
            driver::Driver::run(s2)
        })
        .map_err(|e| {
            // No thread: the driver's drop kills the workers.
            let d = shared.lock_driver().take();
            drop(d);
            PoolError::os("thread spawn", e)
        })?;
        Ok(Pool {
            shared,
            thread: Mutex::new(Some(thread)),
            processes,
        })
    }
}

/// A pool of worker processes. See the docs above.
///
/// A pool of worker processes (Python's `multiprocessing.pool.Pool`), with an
/// initializer that sets per-worker globals, and no hangs when a worker dies.
///
/// ```
/// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
/// use procshare::Pool;
///
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// let pool = Pool::builder().processes(2).build().unwrap();
/// assert_eq!(pool.map(square, 0..10).unwrap(), [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]);
/// assert_eq!(pool.apply(square, 7).unwrap(), 49);
/// let r = pool.apply_async(square, 8).unwrap();
/// assert_eq!(r.get().unwrap(), 64);
/// pool.close().unwrap();
/// pool.join().unwrap();
/// ```
///
/// # Tasks
///
/// A task is a plain function pointer `fn(T) -> R`, sent to the worker as its
/// offset in the executable (every worker runs the parent's executable,
/// forked, spawned or served by the fork server), so it names the same
/// function there. A closure that
/// captures anything is refused at compile time (a non-capturing closure
/// coerces to `fn` and is accepted). [`Pool::starmap`] takes a function of one
/// to four arguments over tuples of them ([`StarFn`]): a function item or a
/// closure that captures nothing (a zero-sized type; anything else is refused
/// when the program is built).
/// Arguments and results cross by serde (postcard frames); an
/// argument that fails to serialize is an error in the caller before anything
/// is sent, a result that fails to serialize is that task's error.
///
/// # Per-worker globals
///
/// [`PoolBuilder::initializer`] takes `fn(A)` and the `initargs: A`. Each worker
/// (a fork) clones `initargs` in the child and calls the initializer *before
/// its first task*; what the initializer stores (for instance in a
/// `static OnceLock`) is what every task of that worker sees. `A` need not be
/// serializable: inherited objects (a procshare queue, a `Value`, a manager
/// proxy) are passed as they are, as the document of seed 001 does.
///
/// # Start methods
///
/// [`PoolBuilder::start_method`] chooses how workers (and their
/// replacements) start: fork (the default), spawn or forkserver (CPython's
/// `get_context("spawn").Pool(...)`). A spawned worker is a fresh exec of
/// this binary; its socket is passed to it as a descriptor and its
/// initializer must be given by [`PoolBuilder::spawn_initializer`], whose
/// `initargs` are [`SpawnArgs`](crate::SpawnArgs) (serde values by copy,
/// shared objects as handles onto the same memory); a closure initializer
/// ([`PoolBuilder::initializer`]) is [`PoolError::UnsupportedStartMethod`].
/// The failure guarantees below hold for every start method.
///
/// # How it works
///
/// The parent runs one dispatcher thread. Each worker is a [`crate::Process`]
/// with its own socketpair to that thread: units of work (one `apply`, or one
/// chunk of a `map`) go out, results come back. The decisions — which unit goes
/// to which worker, what a worker's death means, when to recycle and stop —
/// are made by [`procshare_model::pool::Dispatcher`] and the worker's loop is
/// [`procshare_model::pool::worker_main`]: the very code the shuttle checks of
/// `procshare-model` run, with every worker killed at every step.
///
/// The dispatcher thread does this work while callers are busy elsewhere. A
/// caller that submits work while the dispatcher thread waits for events
/// sends the units itself, and a caller waiting for a result reads the
/// workers' answers itself for up to the pool's
/// [`idle_spin`](PoolBuilder::idle_spin) (when a CPU is spare, as for the
/// workers' poll) before it sleeps: a round trip then needs no thread to be
/// woken. One lock keeps one thread at a time at this work.
///
/// # Failures (where CPython hangs, this does not)
///
/// * A task that panics: its result is [`PoolError::TaskPanicked`] with the
///   panic message; the worker goes on.
/// * A worker killed (`kill -9`) mid-task: the unit it was running (one task,
///   or one chunk) fails with [`PoolError::WorkerDied`] — seen at once as the
///   end of stream on its socket or its pidfd, not after a timeout — and a new
///   worker (new pid, initializer run again) takes over the rest. CPython's
///   `map` hangs forever here (gh-66587).
/// * An initializer that panics: [`PoolBuilder::build`] returns
///   [`PoolError::InitializerFailed`]; if a replacement's initializer fails
///   later, every waiting task fails with that error and further calls are
///   refused. (CPython respawns such workers forever and its callers hang.)
/// * The pool's owner killed (`kill -9`): every worker exits, also when
///   another child of the owner lives on (each worker watches its owner with
///   a pidfd, and the owner's pool descriptors are closed in every child it
///   forks, so no other process holds the workers' sockets).
/// * `maxtasksperchild`: a worker is recycled after that many units (a chunk
///   counts as one, as in CPython).
/// * Any call after [`Pool::close`] or [`Pool::terminate`] is
///   [`PoolError::NotRunning`]; dropping the pool terminates it (leaving
///   `with Pool(...)` in Python does the same).
///
/// Workers do not print their tasks' panics (the results carry the
/// messages): the first `build` wraps the process's panic hook so that it is
/// silent in workers and unchanged in the parent.
///
/// The dispatcher thread forks replacement workers. It is one of procshare's
/// own helper threads, which the one-time warning about forking a
/// multi-threaded process (see [`Process`](crate::Process)) does not count: a second
/// pool, or a replacement worker, warns only if the program has threads of its
/// own. The initial workers are forked by the thread that calls `build`,
/// before the dispatcher thread exists.
pub struct Pool {
    shared: Arc<Shared>,
    thread: Mutex<Option<crate::sys::thread::Helper<()>>>,
    processes: usize,
}

impl core::fmt::Debug for Pool {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Pool")
            .field("processes", &self.processes)
            .field("pids", &self.worker_pids())
            .finish()
    }
}

mod sealed {
    /// The trampoline of a [`super::StarFn`] (not implementable outside).
    pub trait StarTramp<Args> {
        fn tramp() -> super::Tramp;
    }
}

/// A function [`Pool::starmap`] calls with the fields of each tuple: any
/// function item or closure that captures nothing, of one to four arguments
/// (`Fn(A) -> R` over `(A,)`, `Fn(A, B) -> R` over `(A, B)`, up to
/// `Fn(A, B, C, D) -> R`), whose arguments and result cross by serde.
///
/// The worker calls the function by its type, not through a pointer or
/// captured state: `F` must be zero-sized, which every function item and
/// non-capturing closure is. A capturing closure (or a function pointer
/// variable; pass the function's name instead) fails to build with
/// "starmap takes a function item or a closure that captures nothing".
///
/// ```
/// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
/// use procshare::{Pool, StarFn};
/// fn mul(a: u32, b: u32) -> u64 { a as u64 * b as u64 }
/// fn run<F: StarFn<(u32, u32), Output = u64>>(pool: &Pool, f: F) -> Vec<u64> {
///     pool.starmap(f, [(2, 3), (4, 5)]).unwrap()
/// }
/// assert_eq!(run(&Pool::new(1).unwrap(), mul), [6, 20]);
/// ```
///
/// A closure that captures something does not build:
///
/// ```compile_fail
/// use procshare::Pool;
/// let pool = Pool::new(1).unwrap();
/// let k = 3u32;
/// let _ = pool.starmap(move |a: u32, b: u32| a * b * k, [(1, 2)]);
/// ```
pub trait StarFn<Args>: sealed::StarTramp<Args> + Copy + 'static {
    /// The function's result.
    type Output: Serialize + DeserializeOwned + Send + 'static;
}

macro_rules! star_fn {
    ($tramp:ident: $($a:ident)+) => {
        impl<F, $($a,)+ R> sealed::StarTramp<($($a,)+)> for F
        where
            F: Fn($($a),+) -> R + Copy + 'static,
            $($a: DeserializeOwned,)+
            R: Serialize + DeserializeOwned + Send + 'static,
        {
            fn tramp() -> Tramp {
                worker::$tramp::<F, $($a,)+ R>
            }
        }

        impl<F, $($a,)+ R> StarFn<($($a,)+)> for F
        where
            F: Fn($($a),+) -> R + Copy + 'static,
            $($a: DeserializeOwned,)+
            R: Serialize + DeserializeOwned + Send + 'static,
        {
            type Output = R;
        }
    };
}

star_fn!(star1: A);
star_fn!(star2: A B);
star_fn!(star3: A B C);
star_fn!(star4: A B C D);

/// CPython's default chunk size for `map`: `ceil(len / (4 * workers))`.
fn default_chunksize(len: usize, workers: usize) -> usize {
    len.div_ceil(4 * workers).max(1)
}

impl Pool {
    /// A builder (CPython's `Pool(...)` arguments).
    pub fn builder() -> PoolBuilder {
        PoolBuilder {
            processes: None,
            init: None,
            spawn_init: None,
            maxtasks: None,
            bad_maxtasks: false,
            method: crate::process::StartMethod::Fork,
            idle_spin: None,
            #[cfg(test)]
            no_load_gate: false,
        }
    }

    /// A pool of `n` workers without initializer.
    pub fn new(n: usize) -> Result<Pool, PoolError> {
        Pool::builder().processes(n).build()
    }

    /// Number of workers.
    pub fn processes(&self) -> usize {
        self.processes
    }

    /// Pids of the live workers (they change when workers are replaced or recycled).
    pub fn worker_pids(&self) -> Vec<u32> {
        self.shared.lock().pids.clone()
    }

    /// Encode the `n` `items` in chunks and hand them to the dispatcher
    /// thread. An argument that fails to serialize is an error here; chunks
    /// before it may already run (their results are dropped with the job).
    fn submit<B: Serialize, R: DeserializeOwned + Send + 'static>(
        &self,
        tramp: Tramp,
        func: usize,
        items: impl Iterator<Item = B>,
        n: usize,
        chunksize: usize,
        job: Arc<Job<R>>,
    ) -> Result<(), PoolError> {
        if chunksize == 0 {
            return Err(PoolError::BadChunksize);
        }
        self.hand_over(Vec::new())?;
        // Hand chunks over as they are encoded (the workers start on the first
        // while the rest are encoded), in batches of about 256 KiB. Each chunk
        // is encoded into a recycled buffer (see `SpareFrames`).
        let mut items = items;
        let mut subs = Vec::new();
        let mut bytes = 0;
        let mut start = 0;
        let per_item = 1 + std::mem::size_of::<B>();
        while start < n {
            let unit = self.shared.new_id();
            let mut buf = driver::spare_frame(&self.shared.spare);
            let want = chunksize.min(n - start);
            let got =
                worker::unit_frame(&mut buf, unit, tramp, func, items.by_ref(), want, per_item)
                    .map_err(|e| PoolError::Encode(Arc::new(e)))?;
            if got < want {
                return Err(PoolError::BrokenSizeHint { promised: n });
            }
            let frame = Arc::new(Frame::recycled(buf, &self.shared.spare));
            bytes += frame.len();
            subs.push(Submission {
                unit,
                frame,
                sink: job.clone(),
                start,
                n: got,
                feed: None,
            });
            start += want;
            if bytes >= 256 << 10 || start >= n {
                if start >= n && items.next().is_some() {
                    return Err(PoolError::BrokenSizeHint { promised: n });
                }
                self.hand_over(std::mem::take(&mut subs))?;
                bytes = 0;
            }
        }
        if n == 0 && items.next().is_some() {
            return Err(PoolError::BrokenSizeHint { promised: 0 });
        }
        Ok(())
    }

    /// Queue `subs` for the dispatcher thread (an empty list: only check
    /// that the pool runs).
    fn hand_over(&self, subs: Vec<Submission>) -> Result<(), PoolError> {
        self.shared.hand_over(subs)
    }

    /// Run `f(arg)` in a worker and wait for the result (CPython's `apply`).
    pub fn apply<T, R>(&self, f: fn(T) -> R, arg: T) -> Result<R, PoolError>
    where
        T: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.apply_async(f, arg)?.into_value()
    }

    /// Start `f(arg)` in a worker (CPython's `apply_async`).
    pub fn apply_async<T, R>(&self, f: fn(T) -> R, arg: T) -> Result<AsyncResult<R>, PoolError>
    where
        T: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.apply_async_inner(f, arg, None, None)
    }

    /// [`Pool::apply_async`] with a `callback` (run with the result) and an
    /// `error_callback` (run with the error), on the pool's dispatcher thread
    /// (or on a thread of the program waiting for a result of the pool, which
    /// does the dispatcher thread's work meanwhile: see [`Pool`]), as in
    /// CPython: they must not block.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// use procshare::Pool;
    /// use std::sync::mpsc::channel;
    /// fn double(x: i32) -> i32 { x * 2 }
    /// let pool = Pool::new(1).unwrap();
    /// let (tx, rx) = channel();
    /// let r = pool
    ///     .apply_async_with(double, 21, move |v: &i32| tx.send(*v).unwrap(), |_e| {})
    ///     .unwrap();
    /// assert_eq!(rx.recv().unwrap(), 42);
    /// assert_eq!(r.get().unwrap(), 42);
    /// ```
    pub fn apply_async_with<T, R>(
        &self,
        f: fn(T) -> R,
        arg: T,
        callback: impl FnOnce(&R) + Send + 'static,
        error_callback: impl FnOnce(&PoolError) + Send + 'static,
    ) -> Result<AsyncResult<R>, PoolError>
    where
        T: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let cb: OkCallback<R> = Box::new(move |v: &[R]| {
            if let Some(v) = v.first() {
                callback(v)
            }
        });
        self.apply_async_inner(f, arg, Some(cb), Some(Box::new(error_callback)))
    }

    fn apply_async_inner<T, R>(
        &self,
        f: fn(T) -> R,
        arg: T,
        cb: Option<OkCallback<R>>,
        ecb: Option<ErrCallback>,
    ) -> Result<AsyncResult<R>, PoolError>
    where
        T: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let job =
            Arc::new(Job::new(1, 1, true, cb, ecb, job::decode_into::<R>).helped_by(&self.shared));
        self.submit(
            worker::tramp1::<T, R>,
            f as usize,
            std::iter::once(&arg),
            1,
            1,
            job.clone(),
        )?;
        Ok(AsyncResult {
            inner: MapResult { job },
        })
    }

    /// `f` applied to every item, in order, waiting for all (CPython's `map`,
    /// with its default chunk size `ceil(len / (4 * processes))`). The first
    /// failed task's error is returned; [`MapResult::get_all`] gives each.
    ///
    /// Items whose iterator knows its exact length (`size_hint`, as ranges,
    /// vectors and slices do) are encoded chunk by chunk as they come, the
    /// workers starting on the first chunk meanwhile; other iterators are
    /// collected first. An iterator that yields more or fewer items than its
    /// exact `size_hint` said is [`PoolError::BrokenSizeHint`].
    pub fn map<T, R>(
        &self,
        f: fn(T) -> R,
        items: impl IntoIterator<Item = T>,
    ) -> Result<Vec<R>, PoolError>
    where
        T: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.map_async(f, items, None)?.into_values()
    }

    /// Start a `map` (`chunksize: None` is CPython's default).
    pub fn map_async<T, R>(
        &self,
        f: fn(T) -> R,
        items: impl IntoIterator<Item = T>,
        chunksize: Option<usize>,
    ) -> Result<MapResult<R>, PoolError>
    where
        T: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.map_inner(
            worker::tramp1::<T, R>,
            f as usize,
            items,
            chunksize,
            None,
            true,
        )
    }

    /// [`Pool::map_async`] with a `callback` (run with all results, in order)
    /// and an `error_callback` (run with the first error), on the dispatcher
    /// thread (or on a thread waiting for a result: see [`Pool::apply_async_with`]).
    pub fn map_async_with<T, R>(
        &self,
        f: fn(T) -> R,
        items: impl IntoIterator<Item = T>,
        chunksize: Option<usize>,
        callback: impl FnOnce(&[R]) + Send + 'static,
        error_callback: impl FnOnce(&PoolError) + Send + 'static,
    ) -> Result<MapResult<R>, PoolError>
    where
        T: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.map_inner(
            worker::tramp1::<T, R>,
            f as usize,
            items,
            chunksize,
            Some((Box::new(callback), Box::new(error_callback))),
            true,
        )
    }

    /// Start a map job. Items whose iterator tells its exact length
    /// (`size_hint`) are encoded as they come, without a vector of them
    /// (an iterator that then breaks that promise is
    /// [`PoolError::BrokenSizeHint`]); the others are collected first.
    fn map_inner<In: Serialize, R: DeserializeOwned + Send + 'static>(
        &self,
        tramp: Tramp,
        func: usize,
        items: impl IntoIterator<Item = In>,
        chunksize: Option<usize>,
        callbacks: Option<(OkCallback<R>, ErrCallback)>,
        sequential: bool,
    ) -> Result<MapResult<R>, PoolError> {
        let it = items.into_iter();
        match it.size_hint() {
            (lo, Some(hi)) if lo == hi => {
                self.map_items(tramp, func, it, lo, chunksize, callbacks, sequential)
            }
            _ => {
                let v: Vec<In> = it.collect();
                let n = v.len();
                self.map_items(
                    tramp,
                    func,
                    v.into_iter(),
                    n,
                    chunksize,
                    callbacks,
                    sequential,
                )
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn map_items<In: Serialize, R: DeserializeOwned + Send + 'static>(
        &self,
        tramp: Tramp,
        func: usize,
        items: impl Iterator<Item = In>,
        n: usize,
        chunksize: Option<usize>,
        callbacks: Option<(OkCallback<R>, ErrCallback)>,
        sequential: bool,
    ) -> Result<MapResult<R>, PoolError> {
        let cs = chunksize.unwrap_or_else(|| default_chunksize(n, self.processes));
        let (cb, ecb) = match callbacks {
            Some((cb, ecb)) => (Some(cb), Some(ecb)),
            None => (None, None),
        };
        let job = Arc::new(
            Job::new(n, cs, sequential, cb, ecb, job::decode_into::<R>).helped_by(&self.shared),
        );
        self.submit(tramp, func, items, n, cs, job.clone())?;
        Ok(MapResult { job })
    }

    /// `f` applied to every item of a slice of plain-old-data items, in
    /// order, to plain-old-data results ([`bytemuck::Pod`]: numbers, arrays
    /// of them, `#[repr(C)]` structs without padding): the fast [`Pool::map`].
    ///
    /// Items and results cross as their bytes, with no encoding per item
    /// (one copy into a unit's frame, one out of the answer), which makes a
    /// `map` of a cheap function several times faster than through serde.
    /// The chunks are CPython's default (see [`Pool::map`]); a task that
    /// panics fails the rest of its chunk with it (CPython runs a chunk as
    /// `list(map(func, chunk))`: its first exception ends it), and the first
    /// failed task's error is returned. Every failure guarantee of
    /// [`Pool::map`] holds (a killed worker fails its chunk; the pool goes on).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// use procshare::{Pool, PoolError};
    /// fn square(x: u64) -> u64 { x * x }
    /// fn norm(p: [f32; 2]) -> f32 { (p[0] * p[0] + p[1] * p[1]).sqrt() }
    /// fn inverse(x: i32) -> i32 { 100 / x }
    /// let pool = Pool::new(2).unwrap();
    /// let xs: Vec<u64> = (0..1000).collect();
    /// assert_eq!(pool.map_pod(square, &xs).unwrap()[999], 998_001);
    /// assert_eq!(pool.map_pod(norm, &[[3.0, 4.0]]).unwrap(), [5.0]);
    /// assert!(matches!(pool.map_pod(inverse, &[1, 0]), Err(PoolError::TaskPanicked(_))));
    /// ```
    pub fn map_pod<T, R>(&self, f: fn(T) -> R, items: &[T]) -> Result<Vec<R>, PoolError>
    where
        T: bytemuck::Pod,
        R: bytemuck::Pod + Send,
    {
        self.map_pod_async(f, items, None)?.into_values()
    }

    /// Start a [`Pool::map_pod`] (`chunksize: None` is CPython's default).
    /// The items are copied before it returns.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// use procshare::Pool;
    /// fn half(x: f64) -> f64 { x / 2.0 }
    /// let pool = Pool::new(2).unwrap();
    /// let r = pool.map_pod_async(half, &[1.0, 2.0, 3.0], Some(2)).unwrap();
    /// assert_eq!(r.get().unwrap(), [0.5, 1.0, 1.5]);
    /// ```
    pub fn map_pod_async<T, R>(
        &self,
        f: fn(T) -> R,
        items: &[T],
        chunksize: Option<usize>,
    ) -> Result<MapResult<R>, PoolError>
    where
        T: bytemuck::Pod,
        R: bytemuck::Pod + Send,
    {
        let n = items.len();
        let cs = chunksize.unwrap_or_else(|| default_chunksize(n, self.processes));
        if cs == 0 {
            return Err(PoolError::BadChunksize);
        }
        self.hand_over(Vec::new())?;
        let job = Arc::new(
            Job::new(n, cs, true, None, None, pod::decode_pod_into::<R>).helped_by(&self.shared),
        );
        // As `submit`: handed over in batches of about 256 KiB, the workers
        // starting on the first while the rest are copied.
        let mut subs = Vec::new();
        let mut bytes = 0;
        for (i, chunk) in items.chunks(cs).enumerate() {
            let unit = self.shared.new_id();
            let mut buf = driver::spare_frame(&self.shared.spare);
            let raw: &[u8] = if size_of::<T>() == 0 {
                &[]
            } else {
                bytemuck::cast_slice(chunk)
            };
            pod::unit_frame(
                &mut buf,
                unit,
                pod::tramp_pod::<T, R>,
                f as usize,
                raw,
                chunk.len(),
            )
            .map_err(|e| PoolError::Encode(Arc::new(e)))?;
            let frame = Arc::new(Frame::recycled(buf, &self.shared.spare));
            bytes += frame.len();
            subs.push(Submission {
                unit,
                frame,
                sink: job.clone(),
                start: i * cs,
                n: chunk.len(),
                feed: None,
            });
            if bytes >= 256 << 10 {
                self.hand_over(std::mem::take(&mut subs))?;
                bytes = 0;
            }
        }
        if !subs.is_empty() {
            self.hand_over(subs)?;
        }
        Ok(MapResult { job })
    }

    /// `f(a, b, ..)` for every tuple `(a, b, ..)` of 1 to 4 arguments, in
    /// order (CPython's `starmap`). `f` is a function item or a closure that
    /// captures nothing (see [`StarFn`]).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// use procshare::Pool;
    /// fn neg(a: i32) -> i32 { -a }
    /// fn add(a: i32, b: i32) -> i32 { a + b }
    /// fn fma(a: f64, b: f64, c: f64) -> f64 { a * b + c }
    /// fn label(id: u8, name: String, x: i64, ok: bool) -> String { format!("{id}:{name}:{x}:{ok}") }
    /// let pool = Pool::new(2).unwrap();
    /// assert_eq!(pool.starmap(neg, [(1,), (2,)]).unwrap(), [-1, -2]);
    /// assert_eq!(pool.starmap(add, [(1, 2), (3, 4)]).unwrap(), [3, 7]);
    /// assert_eq!(pool.starmap(fma, [(2.0, 3.0, 1.0)]).unwrap(), [7.0]);
    /// assert_eq!(pool.starmap(label, [(7, "a".to_string(), -1, true)]).unwrap(), ["7:a:-1:true"]);
    /// assert_eq!(pool.starmap(|a: u8, b: u8| a.max(b), [(1, 9), (8, 2)]).unwrap(), [9, 8]);
    /// ```
    pub fn starmap<Args, F>(
        &self,
        f: F,
        items: impl IntoIterator<Item = Args>,
    ) -> Result<Vec<F::Output>, PoolError>
    where
        Args: Serialize,
        F: StarFn<Args>,
    {
        self.starmap_async(f, items, None)?.into_values()
    }

    /// Start a `starmap` (`chunksize: None` is CPython's default).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// use procshare::Pool;
    /// fn add(a: i32, b: i32) -> i32 { a + b }
    /// let pool = Pool::new(2).unwrap();
    /// let r = pool.starmap_async(add, [(1, 2), (3, 4)], None).unwrap();
    /// assert_eq!(r.get().unwrap(), [3, 7]);
    /// ```
    pub fn starmap_async<Args, F>(
        &self,
        f: F,
        items: impl IntoIterator<Item = Args>,
        chunksize: Option<usize>,
    ) -> Result<MapResult<F::Output>, PoolError>
    where
        Args: Serialize,
        F: StarFn<Args>,
    {
        // The function is its type (zero-sized): the worker's trampoline,
        // instantiated for `F`, makes its own copy (see `worker::conjure`).
        let _ = f;
        self.map_inner(
            <F as sealed::StarTramp<Args>>::tramp(),
            0,
            items,
            chunksize,
            None,
            true,
        )
    }

    /// Results in order, each as soon as it and those before it are done
    /// (CPython's `imap`). `chunksize: None` is CPython's default for
    /// `imap`, 1.
    ///
    /// The input is read by a thread of the pool as the results are taken:
    /// each chunk is sent as soon as it is read (the first result can come
    /// before the input ends, an endless iterator works), and at most
    /// 4 × `processes` chunks are read ahead of the results taken (memory
    /// stays bounded). So the iterator must be `Send + 'static` (collect a
    /// borrowing iterator into a `Vec` first). An input that panics, or an
    /// item that does not serialize, ends the results with that error
    /// ([`PoolError::InputPanicked`], [`PoolError::Encode`]) in its place.
    /// The reading thread ends at the end of the input, when the [`Imap`] is
    /// dropped, or when the pool refuses more work (terminated); an input
    /// that blocks in `next` keeps it (and a closed pool's `join`) waiting.
    /// A [`Pool::close`] after `imap` lets it run to the end of its input,
    /// and lifts the bound (as in CPython, `close(); join()` before taking
    /// the results then returns; with an endless input it would not);
    /// dropping the [`Imap`] stops the reading.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// use procshare::Pool;
    /// fn inc(x: u64) -> u64 { x + 1 }
    /// let pool = Pool::new(2).unwrap();
    /// let v: Vec<u64> = pool.imap(inc, 0..5, None).unwrap().map(Result::unwrap).collect();
    /// assert_eq!(v, [1, 2, 3, 4, 5]);
    /// // An endless input: only what is taken (and a bounded read-ahead) is computed.
    /// let v: Vec<u64> = pool.imap(inc, 0.., Some(4)).unwrap().take(3).map(Result::unwrap).collect();
    /// assert_eq!(v, [1, 2, 3]);
    /// let mut u: Vec<u64> = pool.imap_unordered(inc, 0..5, Some(2)).unwrap().map(Result::unwrap).collect();
    /// u.sort();
    /// assert_eq!(u, [1, 2, 3, 4, 5]);
    /// ```
    pub fn imap<T, R, I>(
        &self,
        f: fn(T) -> R,
        items: I,
        chunksize: Option<usize>,
    ) -> Result<Imap<R>, PoolError>
    where
        I: IntoIterator<Item = T>,
        I::IntoIter: Send + 'static,
        T: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.imap_inner(f, items.into_iter(), chunksize, true)
    }

    /// Results in the order they finish (CPython's `imap_unordered`;
    /// `chunksize: None` is 1, as there). The input is read as by [`Pool::imap`].
    pub fn imap_unordered<T, R, I>(
        &self,
        f: fn(T) -> R,
        items: I,
        chunksize: Option<usize>,
    ) -> Result<Imap<R>, PoolError>
    where
        I: IntoIterator<Item = T>,
        I::IntoIter: Send + 'static,
        T: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.imap_inner(f, items.into_iter(), chunksize, false)
    }

    fn imap_inner<T, R>(
        &self,
        f: fn(T) -> R,
        items: impl Iterator<Item = T> + Send + 'static,
        chunksize: Option<usize>,
        ordered: bool,
    ) -> Result<Imap<R>, PoolError>
    where
        T: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let chunk = chunksize.unwrap_or(1);
        if chunk == 0 {
            return Err(PoolError::BadChunksize);
        }
        let feed = self.shared.open_feed()?;
        let limit = stream::CHUNKS_AHEAD_PER_WORKER
            .saturating_mul(self.processes)
            .saturating_mul(chunk);
        let s = Arc::new(stream::Stream::new(chunk, limit));
        let weak: std::sync::Weak<dyn stream::Throttled> = Arc::downgrade(&s) as _;
        self.shared.add_stream(weak);
        // A close that came meanwhile (between `open_feed` and here).
        if self.shared.lock().close {
            self.shared.unthrottle();
        }
        let spec = stream::FeedSpec {
            tramp: worker::tramp1::<T, R>,
            func: f as usize,
            chunk,
            feed,
        };
        let (shared, s2) = (self.shared.clone(), s.clone());
        // One of procshare's helper threads (not counted by the fork warning).
        let r = crate::sys::thread::spawn_helper("procshare-imap".into(), move || {
            stream::feed(shared, s2, spec, items)
        });
        if let Err(e) = r {
            self.shared.close_feed(feed);
            return Err(PoolError::os("thread spawn", e));
        }
        Ok(Imap {
            stream: s,
            next: 0,
            ordered,
        })
    }

    /// No more tasks; the workers exit when the submitted ones are done
    /// (CPython's `close`). Calling it again is a no-op.
    pub fn close(&self) -> Result<(), PoolError> {
        self.shared.lock().close = true;
        self.shared.unthrottle();
        self.shared.wake();
        Ok(())
    }

    /// Stop now: unfinished tasks fail with [`PoolError::Terminated`] and the
    /// workers are killed (CPython's `terminate`).
    pub fn terminate(&self) -> Result<(), PoolError> {
        {
            let mut g = self.shared.lock();
            g.terminate = true;
            g.close = true;
        }
        self.shared.unthrottle();
        self.shared.wake();
        Ok(())
    }

    /// Wait for the workers to exit, after `close` or `terminate` (CPython's `join`).
    pub fn join(&self) -> Result<(), PoolError> {
        {
            let g = self.shared.lock();
            if !g.close && !g.terminate && !g.finished {
                return Err(PoolError::StillRunning);
            }
        }
        let t = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = t {
            let _ = t.join();
        }
        Ok(())
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let _ = self.terminate();
        let _ = self.join();
    }
}

#[cfg(test)]
mod tests;
