//! Contexts (Python's `multiprocessing.get_context(method)`): an object that
//! carries a start method to everything created from it.

use super::spawn::SpawnArgs;
use super::{Process, ProcessError, StartMethod};

/// The start methods this platform supports, the default first (Python's
/// `multiprocessing.get_all_start_methods()`; on Linux 3.11 prints
/// `['fork', 'spawn', 'forkserver']`).
///
/// ```
/// use procshare::{get_all_start_methods, StartMethod};
/// assert_eq!(
///     get_all_start_methods(),
///     [StartMethod::Fork, StartMethod::Spawn, StartMethod::ForkServer]
/// );
/// ```
pub fn get_all_start_methods() -> Vec<StartMethod> {
    vec![
        StartMethod::Fork,
        StartMethod::Spawn,
        StartMethod::ForkServer,
    ]
}

/// A context for the start method `method` (Python's
/// `multiprocessing.get_context(method)`): `"fork"`, `"spawn"` or
/// `"forkserver"`; `None` is the current default ([`super::get_start_method`]).
/// Another name is [`ProcessError::UnknownStartMethod`] (Python: `ValueError`).
///
/// ```
/// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
/// use procshare::{get_context, StartMethod};
/// fn child((n,): (u32,)) { assert_eq!(n, 7); }
/// let ctx = get_context(Some("spawn")).unwrap();
/// assert_eq!(ctx.get_start_method(), StartMethod::Spawn);
/// let mut p = ctx.process(child, (7,));
/// assert_eq!(p.get_start_method(), StartMethod::Spawn);
/// p.start().unwrap();
/// assert_eq!(p.join().unwrap(), 0);
/// assert!(get_context(Some("vfork")).is_err());
/// ```
pub fn get_context(method: Option<&str>) -> Result<Context, ProcessError> {
    let method = match method {
        None => super::get_start_method(),
        Some(name) => name.parse()?,
    };
    Ok(Context { method })
}

/// A start method carried to what is created from it (see [`get_context`]).
///
/// Processes ([`Context::process`]), pools ([`Context::pool`]) and managers'
/// servers ([`Context::manager`]) take it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context {
    method: StartMethod,
}

impl Context {
    /// A context for `method`.
    pub fn new(method: StartMethod) -> Context {
        Context { method }
    }

    /// Python's `ctx.get_context(method)`: this context for `None`, else the
    /// context of `method` (as [`get_context`]).
    pub fn get_context(&self, method: Option<&str>) -> Result<Context, ProcessError> {
        match method {
            None => Ok(*self),
            Some(_) => get_context(method),
        }
    }

    /// The context's start method (Python's `ctx.get_start_method()`).
    pub fn get_start_method(&self) -> StartMethod {
        self.method
    }

    /// A process that will run `f(args)` by this context's start method
    /// (Python's `ctx.Process(target=f, args=args)`).
    pub fn process<A: SpawnArgs>(&self, f: fn(A), args: A) -> Process {
        Process::with_target(f, args).start_method(self.method)
    }

    /// A process running a closure (fork only: under another start method its
    /// `start` fails with [`SpawnError::ClosureTarget`](crate::SpawnError::ClosureTarget),
    /// see [`Process::new`]).
    pub fn process_closure<F: FnOnce() + Send + 'static>(&self, f: F) -> Process {
        Process::new(f).start_method(self.method)
    }

    /// A pool builder whose workers start by this context's method (Python's
    /// `ctx.Pool(processes)`).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// use procshare::get_context;
    /// fn square(x: u64) -> u64 { x * x }
    /// let pool = get_context(Some("fork")).unwrap().pool().processes(2).build().unwrap();
    /// assert_eq!(pool.map(square, 0..4u64).unwrap(), [0, 1, 4, 9]);
    /// ```
    pub fn pool(&self) -> crate::PoolBuilder {
        crate::Pool::builder().start_method(self.method)
    }

    /// A manager whose server process is started by this context's method
    /// (Python's `ctx.Manager()`).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// use procshare::get_context;
    /// let m = get_context(Some("forkserver")).unwrap().manager().unwrap();
    /// assert_eq!(m.list_from([1, 2]).unwrap().to_vec().unwrap(), [1, 2]);
    /// ```
    pub fn manager(&self) -> Result<crate::Manager, crate::ManagerError> {
        self.manager_builder().start()
    }

    /// A manager builder whose server starts by this context's method
    /// (Python's `ctx.Manager(initializer=f, initargs=a)`: see
    /// [`ManagerBuilder`](crate::ManagerBuilder)).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// use procshare::{get_context, StartMethod};
    /// let b = get_context(Some("spawn")).unwrap().manager_builder();
    /// let m = b.start().unwrap();
    /// m.ping().unwrap();
    /// ```
    pub fn manager_builder(&self) -> crate::ManagerBuilder {
        crate::Manager::builder().start_method(self.method)
    }
}
