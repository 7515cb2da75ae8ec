//! A process pool living in the manager's server (CPython's
//! `SyncManager.Pool`): [`Manager::pool`], its [`PoolProxy`], the
//! [`PoolFn`] names of the functions it runs and
//! [`ManagerBuilder::function`] that registers them.
//!
//! The server's side of every operation (find the pool, hand it the work,
//! keep the pending result under a ticket, wait for it without any server
//! lock) is the model's [`procshare_model::manager::pool`] step; this module
//! is its [`Runner`]: a [`Pool`] forked from the server process, whose
//! workers run the functions registered on the builder.

use super::client::{dec, enc, unexpected, Handle, ManagerError, Result};
use super::proxy::proxy_common;
use super::start::ManagerBuilder;
use super::Manager;
use crate::pool::{AsyncResult, Pool, PoolError};
use crate::process::StartMethod;
use procshare_model::manager::{
    Init, Kind, Op, OpError, Pending, PoolFactory, PoolOp, Response, Runner, Wait,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Borrow;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The name of a function that a manager's pools run, with its argument and
/// result types: the link between [`ManagerBuilder::function`] (the server's
/// side: the body) and [`PoolProxy::apply`] / [`PoolProxy::apply_async`] /
/// [`PoolProxy::map`] (any client's side: the name). Declare it once, as a
/// `const`, where both sides see it: the types then agree at compile time.
///
/// A manager's pool cannot run a closure sent by a client (its workers are
/// other processes, maybe on another machine): as a registered type, a
/// function is registered on the server and called by name.
///
/// ```
/// use procshare::PoolFn;
/// const SQUARE: PoolFn<u64, u64> = PoolFn::new("square");
/// assert_eq!(SQUARE.name(), "square");
/// ```
pub struct PoolFn<T, R> {
    name: &'static str,
    _t: PhantomData<fn(T) -> R>,
}

impl<T, R> PoolFn<T, R> {
    /// The function registered (or to be registered) as `name`.
    ///
    /// ```
    /// const UPPER: procshare::PoolFn<String, String> = procshare::PoolFn::new("upper");
    /// # let _ = UPPER;
    /// ```
    pub const fn new(name: &'static str) -> Self {
        PoolFn {
            name,
            _t: PhantomData,
        }
    }

    /// Its name.
    ///
    /// ```
    /// const F: procshare::PoolFn<(), ()> = procshare::PoolFn::new("f");
    /// assert_eq!(F.name(), "f");
    /// ```
    pub const fn name(&self) -> &'static str {
        self.name
    }
}

impl<T, R> Clone for PoolFn<T, R> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T, R> Copy for PoolFn<T, R> {}
impl<T, R> std::fmt::Debug for PoolFn<T, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PoolFn({:?})", self.name)
    }
}

/// A registered function over encoded values.
type Erased = Arc<dyn Fn(&[u8]) -> std::result::Result<Vec<u8>, OpError> + Send + Sync>;

/// The functions a server's pools run, by name.
#[derive(Clone, Default)]
pub(crate) struct Functions(Arc<HashMap<String, Erased>>);

impl Functions {
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub(crate) fn names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.0.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }
}

/// The server process's functions, set when its first pool is made (before
/// that pool forks its workers, which inherit them). Set once and then only
/// read, so a fork never copies it half-written or locked.
static FUNCTIONS: OnceLock<Functions> = OnceLock::new();

/// A pool task: run the function named `name` of the server's functions.
/// The worker's panic is the pool's to catch (a `TaskPanicked` answer).
fn run_task((name, args): (String, Vec<u8>)) -> std::result::Result<Vec<u8>, OpError> {
    match FUNCTIONS.get().and_then(|f| f.0.get(&name)) {
        Some(f) => f(&args),
        None => Err(OpError::UnknownFunction(name)),
    }
}

/// The server's pools: `processes` workers forked from the server process.
pub(crate) fn pool_factory(functions: Functions) -> PoolFactory {
    Arc::new(move |processes| {
        let mine = FUNCTIONS.get_or_init(|| functions.clone());
        // The server's other threads are procshare's own (one per
        // connection, none holding a lock a worker could need): forking
        // this pool's workers from it is by design, not the user's fork of
        // a multi-threaded program that the warning is about.
        crate::process::set_fork_warning(false);
        let mut b = Pool::builder().start_method(StartMethod::Fork);
        if processes > 0 {
            b = b.processes(usize::try_from(processes).unwrap_or(usize::MAX));
        }
        let pool = b.build().map_err(|e| OpError::MethodFailed {
            method: "Pool".into(),
            message: e.to_string(),
        })?;
        Ok(Arc::new(Served {
            pool,
            functions: mine.clone(),
        }) as Arc<dyn Runner>)
    })
}

/// A pool as the model's server sees it.
struct Served {
    pool: Pool,
    functions: Functions,
}

impl Runner for Served {
    fn submit(
        &self,
        function: &str,
        args: Vec<u8>,
    ) -> std::result::Result<Arc<dyn Pending>, OpError> {
        if !self.functions.0.contains_key(function) {
            return Err(OpError::UnknownFunction(function.to_string()));
        }
        let r = self
            .pool
            .apply_async(run_task, (function.to_string(), args))
            .map_err(|e| failed(function, e))?;
        Ok(Arc::new(Task {
            function: function.to_string(),
            r,
        }))
    }
    fn terminate(&self) {
        let _ = self.pool.terminate();
    }
}

fn failed(function: &str, e: PoolError) -> OpError {
    OpError::MethodFailed {
        method: function.to_string(),
        message: e.to_string(),
    }
}

/// A submitted task.
struct Task {
    function: String,
    r: AsyncResult<std::result::Result<Vec<u8>, OpError>>,
}

impl Pending for Task {
    fn wait(&self, w: Wait) -> Option<std::result::Result<Vec<u8>, OpError>> {
        let r = match w {
            Wait::No if !self.r.ready() => return None,
            Wait::No | Wait::Forever => self.r.get(),
            Wait::Micros(us) => self.r.get_timeout(Duration::from_micros(us)),
        };
        match r {
            Ok(r) => Some(r),
            Err(PoolError::Timeout) => None,
            Err(e) => Some(Err(failed(&self.function, e))),
        }
    }
}

impl ManagerBuilder {
    /// Register `body` as the function `f` names, for this server's pools
    /// ([`Manager::pool`]); a later registration of the same name replaces
    /// it. As registered types, functions need a forked server (the
    /// default when any is registered; [`ManagerBuilder::start`] refuses
    /// spawn and forkserver with a clear error): `body` is a closure, which
    /// only a forked server, and its forked pool workers, inherit.
    ///
    /// `body` runs in a pool worker process. A panic in it fails that task
    /// ([`OpError::MethodFailed`] with the panic's message); the worker is
    /// replaced and the pool goes on.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// use procshare::{Manager, PoolFn};
    /// const WORDS: PoolFn<String, usize> = PoolFn::new("words");
    /// let m = Manager::builder()
    ///     .function(WORDS, |s: String| s.split_whitespace().count())
    ///     .start()
    ///     .unwrap();
    /// let pool = m.pool(1).unwrap();
    /// assert_eq!(pool.apply(WORDS, "a b c".to_string()).unwrap(), 3);
    /// ```
    pub fn function<T, R>(
        mut self,
        f: PoolFn<T, R>,
        body: impl Fn(T) -> R + Send + Sync + 'static,
    ) -> Self
    where
        T: DeserializeOwned,
        R: Serialize,
    {
        let name = f.name;
        let erased: Erased = Arc::new(move |args: &[u8]| {
            let a: T = crate::codec::wire::decode(args).map_err(|e| OpError::BadArgument {
                method: name.to_string(),
                why: e.to_string(),
            })?;
            crate::codec::wire::encode(&body(a)).map_err(|e| OpError::MethodFailed {
                method: name.to_string(),
                message: format!("cannot encode the result: {e}"),
            })
        });
        Arc::make_mut(&mut self.functions.0).insert(name.to_string(), erased);
        self
    }
}

impl Manager {
    /// A new process pool of `processes` workers (0: one per CPU) living in
    /// the manager's server (CPython's `manager.Pool(processes)`), and its
    /// proxy. Any process holding the proxy (a forked or spawned child, a
    /// remote client) hands it work by the [`PoolFn`] name of a function
    /// registered on the server with [`ManagerBuilder::function`]. The pool
    /// stops (its unfinished tasks fail, its workers exit) when the last
    /// proxy to it, in any process, is dropped, or at
    /// [`PoolProxy::terminate`].
    ///
    /// Work runs outside every lock of the server: a long task, and a client
    /// waiting for it, hold up no other object and no other client of the
    /// pool.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// use procshare::{Manager, PoolFn, Process};
    /// const SQUARE: PoolFn<u64, u64> = PoolFn::new("square");
    /// let m = Manager::builder().function(SQUARE, |x| x * x).start().unwrap();
    /// let pool = m.pool(2).unwrap();
    /// let p2 = pool.clone();
    /// let mut child = Process::new(move || {
    ///     assert_eq!(p2.map(SQUARE, 0..4u64).unwrap(), [0, 1, 4, 9]);
    /// });
    /// child.start().unwrap();
    /// assert_eq!(child.join().unwrap(), 0);
    /// let r = pool.apply_async(SQUARE, 12).unwrap();
    /// assert_eq!(r.get().unwrap(), 144);
    /// ```
    pub fn pool(&self, processes: usize) -> Result<PoolProxy> {
        let h = self.create(Init::Pool {
            processes: processes as u64,
        })?;
        if h.kind != Kind::Pool {
            return Err(ManagerError::Protocol(format!(
                "create answered a {:?}",
                h.kind
            )));
        }
        Ok(PoolProxy::from_handle(h))
    }
}

/// A proxy to a process pool in a manager's server ([`Manager::pool`];
/// CPython's `manager.Pool()`): `Clone` (clones share one server reference),
/// `Send`, `Sync`, usable in forked and spawned children, serializable.
///
/// Errors, inside [`ManagerError::Op`]: [`OpError::UnknownFunction`] (no
/// function of that name on the server), [`OpError::BadArgument`] (the
/// server's function takes another argument type),
/// [`OpError::MethodFailed`] (the function panicked, or the pool was
/// terminated), or the connection's.
///
/// ```
/// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
/// use procshare::{Manager, OpError, PoolFn};
/// const HALF: PoolFn<u32, u32> = PoolFn::new("half");
/// const MISSING: PoolFn<u32, u32> = PoolFn::new("missing");
/// let m = Manager::builder()
///     .function(HALF, |x: u32| {
///         assert!(x % 2 == 0, "{x} is odd");
///         x / 2
///     })
///     .start()
///     .unwrap();
/// let pool = m.pool(1).unwrap();
/// assert_eq!(pool.apply(HALF, 8).unwrap(), 4);
/// let e = pool.apply(HALF, 3).unwrap_err();
/// assert!(matches!(e.op_error(), Some(OpError::MethodFailed { message, .. }) if message.contains("3 is odd")));
/// let e = pool.apply(MISSING, 1).unwrap_err();
/// assert_eq!(e.op_error(), Some(&OpError::UnknownFunction("missing".into())));
/// ```
pub struct PoolProxy {
    h: Handle,
    _t: PhantomData<()>,
}
proxy_common!(PoolProxy[], Kind::Pool);

impl PoolProxy {
    fn op(&self, op: PoolOp) -> Result<Response> {
        self.h.op(Op::Pool(op))
    }

    /// Run `f(arg)` on a worker and wait for its result (CPython's `apply`).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// use procshare::{Manager, PoolFn};
    /// const ADD: PoolFn<(i32, i32), i32> = PoolFn::new("add");
    /// let m = Manager::builder().function(ADD, |(a, b)| a + b).start().unwrap();
    /// assert_eq!(m.pool(1).unwrap().apply(ADD, (2, 3)).unwrap(), 5);
    /// ```
    pub fn apply<T: Serialize, R: DeserializeOwned>(
        &self,
        f: PoolFn<T, R>,
        arg: impl Borrow<T>,
    ) -> Result<R> {
        match self.op(PoolOp::Apply(f.name.to_string(), enc(arg.borrow())?))? {
            Response::Item(b) => dec(&b),
            r => unexpected(r),
        }
    }

    /// Start `f(arg)` on a worker (CPython's `apply_async`); the result
    /// stays in the server until its [`AsyncResultProxy`] is dropped.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// use procshare::{Manager, PoolFn};
    /// const NEG: PoolFn<i8, i8> = PoolFn::new("neg");
    /// let m = Manager::builder().function(NEG, |x: i8| -x).start().unwrap();
    /// let r = m.pool(1).unwrap().apply_async(NEG, 5).unwrap();
    /// r.wait().unwrap();
    /// assert!(r.ready().unwrap());
    /// assert_eq!(r.get().unwrap(), -5);
    /// ```
    pub fn apply_async<T: Serialize, R: DeserializeOwned>(
        &self,
        f: PoolFn<T, R>,
        arg: impl Borrow<T>,
    ) -> Result<AsyncResultProxy<R>> {
        match self.op(PoolOp::Submit(f.name.to_string(), enc(arg.borrow())?))? {
            Response::Usize(ticket) => Ok(AsyncResultProxy {
                pool: self.clone(),
                ticket,
                _r: PhantomData,
            }),
            r => unexpected(r),
        }
    }

    /// `f` of every item, on the workers, in the items' order (CPython's
    /// `map`): all are handed to the pool in one request, then awaited.
    /// The first failed task's error if any fails.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// use procshare::{Manager, PoolFn};
    /// const LEN: PoolFn<String, usize> = PoolFn::new("len");
    /// let m = Manager::builder().function(LEN, |s: String| s.len()).start().unwrap();
    /// let pool = m.pool(2).unwrap();
    /// assert_eq!(pool.map(LEN, ["a", "bcd", ""].map(String::from)).unwrap(), [1, 3, 0]);
    /// ```
    pub fn map<T: Serialize, R: DeserializeOwned>(
        &self,
        f: PoolFn<T, R>,
        items: impl IntoIterator<Item = impl Borrow<T>>,
    ) -> Result<Vec<R>> {
        let args = items
            .into_iter()
            .map(|x| enc(x.borrow()))
            .collect::<Result<Vec<_>>>()?;
        match self.op(PoolOp::Map(f.name.to_string(), args))? {
            Response::Items(v) => v.iter().map(|b| dec(b)).collect(),
            r => unexpected(r),
        }
    }

    /// Stop the pool now, for every proxy: unfinished tasks fail, the
    /// workers exit (CPython's `terminate`, what leaving `with pool:` does).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// use procshare::{Manager, OpError, PoolFn};
    /// const ID: PoolFn<u8, u8> = PoolFn::new("id");
    /// let m = Manager::builder().function(ID, |x: u8| x).start().unwrap();
    /// let pool = m.pool(1).unwrap();
    /// pool.terminate().unwrap();
    /// let e = pool.apply(ID, 1).unwrap_err();
    /// assert!(matches!(e.op_error(), Some(OpError::MethodFailed { .. })));
    /// ```
    pub fn terminate(&self) -> Result<()> {
        match self.op(PoolOp::Terminate)? {
            Response::Ok => Ok(()),
            r => unexpected(r),
        }
    }
}

/// The result of [`PoolProxy::apply_async`], kept by the server until this
/// handle is dropped (CPython's `AsyncResult` proxy). [`get`](Self::get) may
/// be called any number of times.
///
/// ```
/// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
/// use procshare::{Manager, PoolFn};
/// use std::time::Duration;
/// const TWICE: PoolFn<String, String> = PoolFn::new("twice");
/// let m = Manager::builder().function(TWICE, |s: String| s.repeat(2)).start().unwrap();
/// let r = m.pool(1).unwrap().apply_async(TWICE, "ab".to_string()).unwrap();
/// assert_eq!(r.get_timeout(Duration::from_secs(60)).unwrap(), Some("abab".to_string()));
/// assert_eq!(r.get().unwrap(), "abab");
/// ```
pub struct AsyncResultProxy<R> {
    pool: PoolProxy,
    ticket: u64,
    _r: PhantomData<fn() -> R>,
}

impl<R> std::fmt::Debug for AsyncResultProxy<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "AsyncResultProxy({:?}, ticket {})",
            self.pool, self.ticket
        )
    }
}

impl<R: DeserializeOwned> AsyncResultProxy<R> {
    fn get_with(&self, w: Wait) -> Result<Option<R>> {
        match self.pool.op(PoolOp::Get(self.ticket, w)) {
            Ok(Response::Item(b)) => dec(&b).map(Some),
            Ok(r) => unexpected(r),
            Err(ManagerError::Op(OpError::Timeout)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Wait for the result.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// use procshare::{Manager, PoolFn};
    /// const ONE: PoolFn<(), u8> = PoolFn::new("one");
    /// let m = Manager::builder().function(ONE, |()| 1).start().unwrap();
    /// assert_eq!(m.pool(1).unwrap().apply_async(ONE, ()).unwrap().get().unwrap(), 1);
    /// ```
    pub fn get(&self) -> Result<R> {
        self.get_with(Wait::Forever)?
            .ok_or_else(|| ManagerError::Protocol("get answered no result".into()))
    }

    /// Wait at most `t` for the result: `None` if it is not in by then (it
    /// stays for a later call).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// use procshare::{Manager, PoolFn};
    /// use std::time::Duration;
    /// const ONE: PoolFn<(), u8> = PoolFn::new("one");
    /// let m = Manager::builder().function(ONE, |()| 1).start().unwrap();
    /// let r = m.pool(1).unwrap().apply_async(ONE, ()).unwrap();
    /// assert_eq!(r.get_timeout(Duration::from_secs(60)).unwrap(), Some(1));
    /// ```
    #[doc(alias = "get")]
    pub fn get_timeout(&self, t: Duration) -> Result<Option<R>> {
        self.get_with(Wait::from_timeout(Some(t)))
    }

    /// Is the result in (a value or an error)?
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// use procshare::{Manager, PoolFn};
    /// const ONE: PoolFn<(), u8> = PoolFn::new("one");
    /// let m = Manager::builder().function(ONE, |()| 1).start().unwrap();
    /// let r = m.pool(1).unwrap().apply_async(ONE, ()).unwrap();
    /// r.wait().unwrap();
    /// assert!(r.ready().unwrap());
    /// ```
    pub fn ready(&self) -> Result<bool> {
        match self.pool.op(PoolOp::Ready(self.ticket))? {
            Response::Bool(b) => Ok(b),
            r => unexpected(r),
        }
    }

    /// Wait until the result is in, without fetching it.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// use procshare::{Manager, PoolFn};
    /// const ONE: PoolFn<(), u8> = PoolFn::new("one");
    /// let m = Manager::builder().function(ONE, |()| 1).start().unwrap();
    /// m.pool(1).unwrap().apply_async(ONE, ()).unwrap().wait().unwrap();
    /// ```
    pub fn wait(&self) -> Result<()> {
        match self.pool.op(PoolOp::Get(self.ticket, Wait::Forever)) {
            Ok(_) | Err(ManagerError::Op(OpError::MethodFailed { .. })) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl<R> Drop for AsyncResultProxy<R> {
    /// The server forgets the result (best effort: if the connection is
    /// gone, so is the server or the pool).
    fn drop(&mut self) {
        let _ = self.pool.op(PoolOp::Forget(self.ticket));
    }
}
