//! Starting a manager's server: by fork, spawn or the fork server (a
//! context's start method, CPython's `get_context("spawn").Manager()`), with
//! an initializer run in the server before it serves (CPython's
//! `Manager(initializer=f, initargs=a)`).
//!
//! A server started by spawn or forkserver is a [`Process`] running
//! [`spawned_server`] with one argument ([`ServerArg`]): the listening
//! socket's and the start-up socket's descriptors (`SCM_RIGHTS`, or kept
//! across the exec), the auth key and the owner's pid by copy, in the start
//! request's private payload memfd (the key is never in the environment, the
//! command line or a file), and the initializer as a function and its
//! arguments, as a pool's `spawn_initializer` crosses.
//!
//! Custom types registered on the builder (CPython's `BaseManager.register`)
//! have factories, closures only a forked server inherits: a builder with
//! any refuses spawn and forkserver.

use super::client::{Endpoint, ManagerError, Result};
use super::register::{Shared, Types};
use super::server::{self, Listener};
use super::{Manager, ServerProc};
use crate::codec::auth::AuthKey;
use crate::pool::worker::{put_init, take_init, InitCall, InitOnce, SpawnInit};
use crate::process::spawn::{Exporter, Importer, SpawnArg, SpawnArgs, SpawnError};
use crate::process::{Process, StartMethod};
use procshare_model::manager::Registry;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;

/// An initializer in both forms: run in a forked server, or sent across an exec.
#[derive(Clone)]
struct ServerInit {
    here: Arc<dyn Fn() + Send + Sync>,
    spawn: Arc<dyn SpawnInit>,
}

/// How to start a manager's server (see [`Manager::builder`]), or to join
/// one: its start method, auth key and initializer, and the custom types it
/// serves or (as a client) knows: register each type under a name
/// (CPython's `typeid`), then start, serve or connect.
///
/// ```
/// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
/// use procshare::{AuthKey, Manager, StartMethod};
/// let m = Manager::builder()
///     .start_method(StartMethod::Spawn)
///     .authkey(AuthKey::new("k"))
///     .start()
///     .unwrap();
/// m.ping().unwrap();
/// ```
///
/// With a custom type, served on TCP and joined by a client:
///
/// ```
/// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
/// use procshare::{AuthKey, Manager};
/// #[derive(Default)]
/// pub struct Counter(i64);
/// impl Counter {
///     fn incr(&mut self) -> i64 { self.0 += 1; self.0 }
/// }
/// procshare::shared! {
///     /// A proxy to a [`Counter`].
///     pub struct CounterProxy for Counter {
///         fn incr() -> i64;
///     }
/// }
/// // The server, on TCP, with the factory:
/// let key = AuthKey::new("abracadabra");
/// let server = Manager::builder()
///     .register("Counter", Counter::default)
///     .authkey(key.clone())
///     .serve("127.0.0.1:0")
///     .unwrap();
/// // A client: the same name, no factory (`register('Counter')`).
/// let client = Manager::builder()
///     .register_remote::<Counter>("Counter")
///     .authkey(key)
///     .connect(server.address().clone())
///     .unwrap();
/// let c: CounterProxy = client.make("Counter").unwrap();
/// assert_eq!(c.incr().unwrap(), 1);
/// ```
#[must_use]
pub struct ManagerBuilder {
    /// `None`: see [`ManagerBuilder::method`].
    method: Option<StartMethod>,
    authkey: Option<AuthKey>,
    init: Option<ServerInit>,
    /// The factories of the types this builder's server serves.
    pub(super) registry: Registry,
    /// The types the built handle knows by name ([`Manager::make`]).
    pub(super) types: Types,
    /// The functions this builder's server's pools run ([`ManagerBuilder::function`]).
    pub(super) functions: super::pool::Functions,
}

impl std::fmt::Debug for ManagerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagerBuilder")
            .field("method", &self.method())
            .field("initializer", &self.init.is_some())
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

impl Manager {
    /// A builder: the server's start method, auth key, initializer and
    /// custom types (CPython's `Manager(initializer=, initargs=)`,
    /// `get_context(m).Manager()`, `BaseManager.register`). The default
    /// start method is this process's ([`set_start_method`](crate::set_start_method),
    /// fork unless changed), as CPython's `Manager()` follows the default
    /// context; fork when types are registered with factories.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// use procshare::{Manager, StartMethod, Value};
    /// // Runs once in the server process, before it serves.
    /// fn init((pid,): (Value<u32>,)) {
    ///     pid.set(std::process::id());
    /// }
    /// let pid = Value::new(0u32).unwrap();
    /// let m = Manager::builder()
    ///     .start_method(StartMethod::ForkServer)
    ///     .initializer(init, (pid.clone(),))
    ///     .start()
    ///     .unwrap();
    /// assert_eq!(Some(pid.get() as i32), m.server_pid());
    /// ```
    pub fn builder() -> ManagerBuilder {
        ManagerBuilder {
            method: None,
            authkey: None,
            init: None,
            registry: Registry::default(),
            types: Types::default(),
            functions: Default::default(),
        }
    }
}

impl ManagerBuilder {
    /// The start method of the server process (fork, spawn or forkserver).
    /// Under spawn and forkserver the server is a fresh exec of this binary,
    /// as a [`Process`] started by that method is: it holds no copy of this
    /// process's memory, threads or descriptors.
    ///
    /// Types registered with a factory ([`ManagerBuilder::register`]) need
    /// fork: [`ManagerBuilder::start`] and [`ManagerBuilder::serve`] refuse
    /// spawn and forkserver then (a factory is a closure, which a fresh exec
    /// cannot receive).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// use procshare::{Manager, StartMethod};
    /// pub struct Unit;
    /// impl Unit { fn ping(&self) -> u8 { 1 } }
    /// procshare::shared! {
    ///     /// A proxy to a [`Unit`].
    ///     pub struct UnitProxy for Unit { fn ping() -> u8; }
    /// }
    /// let e = Manager::builder()
    ///     .start_method(StartMethod::Spawn)
    ///     .register("Unit", || Unit)
    ///     .start()
    ///     .unwrap_err();
    /// assert!(e.to_string().contains("needs the fork start method"), "{e}");
    /// ```
    pub fn start_method(mut self, method: StartMethod) -> Self {
        self.method = Some(method);
        self
    }

    /// The auth key (default for [`ManagerBuilder::start`] and
    /// [`ManagerBuilder::serve`]: 32 random bytes; [`ManagerBuilder::connect`]
    /// needs it).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// use procshare::{AuthKey, Manager};
    /// let m = Manager::builder().authkey(AuthKey::new("k")).start().unwrap();
    /// assert_eq!(m.authkey(), &AuthKey::new("k"));
    /// ```
    pub fn authkey(mut self, key: AuthKey) -> Self {
        self.authkey = Some(key);
        self
    }

    /// Run `f(initargs)` once in the server process before it serves
    /// (CPython's `initializer`/`initargs`). `initargs` is a tuple of
    /// [`SpawnArg`]s, as a [`Process::with_target`]'s arguments: serde values
    /// by copy, shared objects (a `Value`, a `Queue`, another manager's proxy)
    /// as handles onto the same objects. [`ManagerBuilder::start`] returns once
    /// it has run; if it panics, `start` fails.
    pub fn initializer<A: SpawnArgs + Clone + Sync>(mut self, f: fn(A), initargs: A) -> Self {
        let here_args = initargs.clone();
        self.init = Some(ServerInit {
            here: Arc::new(move || f(here_args.clone())),
            spawn: Arc::new(InitCall { f, args: initargs }),
        });
        self
    }

    /// Serve type `T` under `typeid`: [`Manager::make`] asks the server
    /// for a new object, which `factory` makes in the server process
    /// (CPython's `register(typeid, callable)`). The factory is inherited by
    /// the forked server: it may capture anything (an `Arc` shared by the
    /// objects it makes, as `lambda: queue` shares one queue). A later
    /// registration of the same name replaces the earlier one. Such a server
    /// needs the fork start method (see [`ManagerBuilder::start_method`]).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// use procshare::Manager;
    /// pub struct Greeter(String);
    /// impl Greeter {
    ///     fn greet(&self, who: String) -> String { format!("{} {who}", self.0) }
    /// }
    /// procshare::shared! {
    ///     /// A proxy to a [`Greeter`].
    ///     pub struct GreeterProxy for Greeter {
    ///         fn greet(who: String) -> String;
    ///     }
    /// }
    /// let m = Manager::builder()
    ///     .register("Greeter", || Greeter("hello".into()))
    ///     .start()
    ///     .unwrap();
    /// let g: GreeterProxy = m.make("Greeter").unwrap();
    /// assert_eq!(g.greet("world".into()).unwrap(), "hello world");
    /// ```
    pub fn register<T: Shared>(
        mut self,
        typeid: &str,
        factory: impl Fn() -> T + Send + Sync + 'static,
    ) -> Self {
        self.registry
            .register(typeid, T::METHODS, super::register::factory(factory));
        self.types.add::<T>(typeid);
        self
    }

    /// Know type `T` under `typeid` without serving it: for a client of a
    /// remote server that registered it with a factory (CPython's
    /// `register('get_queue')` on the client's manager class).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// use procshare::{Manager, OpError};
    /// #[derive(Default)]
    /// pub struct Unit;
    /// impl Unit { fn ping(&self) -> u8 { 1 } }
    /// procshare::shared! {
    ///     /// A proxy to a [`Unit`].
    ///     pub struct UnitProxy for Unit { fn ping() -> u8; }
    /// }
    /// // A server that does not serve `Unit`: the client's create is refused.
    /// let m = Manager::builder().register_remote::<Unit>("Unit").start().unwrap();
    /// let e = m.make::<UnitProxy>("Unit").unwrap_err();
    /// assert_eq!(e.op_error(), Some(&OpError::UnknownType("Unit".into())));
    /// ```
    pub fn register_remote<T: Shared>(mut self, typeid: &str) -> Self {
        self.types.add::<T>(typeid);
        self
    }

    /// Start the server on a unix socket in a private `0700` directory (as
    /// [`Manager::start`]); returns once the server serves. Fails without
    /// starting anything if types are registered with a factory and the
    /// start method is not fork (see [`ManagerBuilder::start_method`]).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// let m = procshare::Manager::builder().start().unwrap();
    /// assert_eq!(m.list_from([1]).unwrap().to_vec().unwrap(), [1]);
    /// ```
    pub fn start(self) -> Result<Manager> {
        self.check_registry()?;
        let authkey = match self.authkey.clone() {
            Some(k) => k,
            None => AuthKey::random()?,
        };
        let dir = server::private_dir()?;
        let path = dir.join("manager.sock");
        let started = std::os::unix::net::UnixListener::bind(&path)
            .map_err(ManagerError::from)
            .and_then(|l| {
                let ep = Endpoint::new(
                    super::Address::Unix(path),
                    authkey,
                    crate::codec::wire::DEFAULT_LIMIT,
                );
                let (sp, types) = self.launch(Listener::Unix(l), &ep, Some(dir.clone()))?;
                Ok(Manager {
                    ep,
                    server: Some(sp),
                    types,
                    exitcode: None,
                })
            });
        match started {
            Ok(m) => {
                Endpoint::publish(&m.ep);
                Ok(m)
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                Err(e)
            }
        }
    }

    /// Start the server on a TCP address (as [`Manager::serve`]). Fails as
    /// [`ManagerBuilder::start`] with registered types and a start method
    /// other than fork.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// use procshare::{AuthKey, Manager, StartMethod};
    /// let m = Manager::builder()
    ///     .start_method(StartMethod::ForkServer)
    ///     .authkey(AuthKey::new("secret"))
    ///     .serve("127.0.0.1:0")
    ///     .unwrap();
    /// let c = Manager::connect(m.address().clone(), AuthKey::new("secret")).unwrap();
    /// c.ping().unwrap();
    /// ```
    pub fn serve(self, addr: impl std::net::ToSocketAddrs) -> Result<Manager> {
        self.check_registry()?;
        let authkey = match self.authkey.clone() {
            Some(k) => k,
            None => AuthKey::random()?,
        };
        let listener = std::net::TcpListener::bind(addr)?;
        let local = listener.local_addr()?;
        let ep = Endpoint::new(
            super::Address::Tcp(local),
            authkey,
            crate::codec::wire::DEFAULT_LIMIT,
        );
        let (sp, types) = self.launch(Listener::Tcp(listener), &ep, None)?;
        Endpoint::publish(&ep);
        Ok(Manager {
            ep,
            server: Some(sp),
            types,
            exitcode: None,
        })
    }

    /// Join a running server with the auth key given to
    /// [`ManagerBuilder::authkey`] ([`Manager::connect`]); the types
    /// registered here (with or without a factory: the server's are what
    /// count) are the ones [`Manager::make`] accepts.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// use procshare::Manager;
    /// let s = Manager::start().unwrap();
    /// let c = Manager::builder()
    ///     .authkey(s.authkey().clone())
    ///     .connect(s.address().clone())
    ///     .unwrap();
    /// c.ping().unwrap();
    /// assert!(Manager::builder().connect(s.address().clone()).is_err()); // no key
    /// ```
    pub fn connect<A>(self, addr: A) -> Result<Manager>
    where
        A: TryInto<super::Address>,
        super::ManagerError: From<A::Error>,
    {
        let key = self.authkey.ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "connecting to a manager needs its auth key (ManagerBuilder::authkey)",
            )
        })?;
        let mut m = Manager::connect(addr, key)?;
        m.types = self.types;
        Ok(m)
    }

    /// The server's start method: the one chosen with
    /// [`ManagerBuilder::start_method`]; else fork when types are registered
    /// with factories (only a forked server has them); else this process's
    /// start method ([`get_start_method`](crate::get_start_method), as
    /// CPython's `Manager()` follows the default context).
    fn method(&self) -> StartMethod {
        self.method.unwrap_or_else(|| {
            if self.registry.is_empty() && self.functions.is_empty() {
                crate::process::get_start_method()
            } else {
                StartMethod::Fork
            }
        })
    }

    /// Refuse a registry a server started by spawn or forkserver cannot get.
    fn check_registry(&self) -> Result<()> {
        if self.method() == StartMethod::Fork
            || (self.registry.is_empty() && self.functions.is_empty())
        {
            return Ok(());
        }
        if self.registry.is_empty() {
            return Err(ManagerError::Io(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                format!(
                    "a manager whose pools run registered functions ({}) needs the fork start \
                     method, not {:?}: they are closures, which only a forked server inherits",
                    self.functions.names().join(", "),
                    self.method()
                ),
            )));
        }
        Err(ManagerError::Io(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            format!(
                "a manager serving registered types ({}) needs the fork start method, not {:?}: \
                 their factories are closures, which only a forked server inherits",
                self.registry.names().join(", "),
                self.method()
            ),
        )))
    }

    /// Start the server process on `listener` and wait until it serves; also
    /// the types the handle knows.
    fn launch(
        self,
        listener: Listener,
        ep: &Endpoint,
        dir: Option<PathBuf>,
    ) -> Result<(ServerProc, Types)> {
        let owner = crate::sys::proc::getpid();
        let method = self.method();
        let types = self.types;
        if method == StartMethod::Fork {
            let init = self.init.map(|i| {
                let f = i.here;
                Box::new(move || f()) as server::Init
            });
            let mut registry = self.registry;
            registry.set_pools(super::pool::pool_factory(self.functions));
            let (pid, ready) = server::fork_server(listener, ep, dir.clone(), init, registry)?;
            let pidfd = crate::sys::proc::pidfd_open(pid);
            if let Err(e) = server::await_ready(ready, pidfd.as_ref().map(|p| p.as_fd())) {
                let _ = server::reap(pid, true);
                return Err(e);
            }
            let sp = ServerProc {
                pid,
                owner: std::process::id(),
                dir,
                proc: None,
            };
            return Ok((sp, types));
        }
        let (mine, theirs) = UnixStream::pair()?;
        let arg = ServerArg::Out {
            tcp: matches!(listener, Listener::Tcp(_)),
            listener: listener.into_fd(),
            ready: OwnedFd::from(theirs),
            key: ep.authkey.as_bytes().to_vec(),
            limit: ep.limit as u64,
            owner,
            dir: dir.clone(),
            served: method == StartMethod::ForkServer,
            init: self.init.map(|i| i.spawn),
        };
        let mut p = Process::with_target(spawned_server, (arg,))
            .start_method(method)
            .daemon(false)
            .with_name("SyncManager");
        // `start` drops the parent's copies of the listener and of the
        // server's end of the start-up socket (the target's arguments).
        p.start()
            .map_err(|e| ManagerError::Io(std::io::Error::other(e)))?;
        if let Err(e) = server::await_ready(mine, p.sentinel().ok()) {
            let _ = p.kill();
            let _ = p.join();
            return Err(e);
        }
        let sp = ServerProc {
            pid: p.pid().unwrap_or(0) as i32,
            owner: std::process::id(),
            dir,
            proc: Some(p),
        };
        Ok((sp, types))
    }
}

/// The one argument of a server started by spawn or forkserver.
enum ServerArg {
    /// The owner's side (exported).
    Out {
        listener: OwnedFd,
        tcp: bool,
        ready: OwnedFd,
        key: Vec<u8>,
        limit: u64,
        owner: crate::sys::proc::RawPid,
        dir: Option<PathBuf>,
        served: bool,
        init: Option<Arc<dyn SpawnInit>>,
    },
    /// The server's side (imported).
    In {
        listener: OwnedFd,
        tcp: bool,
        ready: OwnedFd,
        key: Vec<u8>,
        limit: u64,
        owner: crate::sys::proc::RawPid,
        dir: Option<PathBuf>,
        served: bool,
        init: Option<InitOnce>,
    },
}

impl SpawnArg for ServerArg {
    fn export(&self, ex: &mut Exporter) -> std::result::Result<(), SpawnError> {
        let ServerArg::Out {
            listener,
            tcp,
            ready,
            key,
            limit,
            owner,
            dir,
            served,
            init,
        } = self
        else {
            return Err(SpawnError::BadRequest("a server's own arguments exported"));
        };
        ex.fd(listener.as_fd())?;
        ex.fd(ready.as_fd())?;
        ex.put(&(*tcp, key, *limit, *owner, dir, *served))?;
        // The initializer last: its own trampoline decodes its arguments.
        put_init(ex, init.as_deref())
    }

    fn import(im: &mut Importer) -> std::result::Result<Self, SpawnError> {
        let listener = im.take_fd()?;
        let ready = im.take_fd()?;
        let (tcp, key, limit, owner, dir, served) = im.take()?;
        let init = take_init(im)?;
        Ok(ServerArg::In {
            listener,
            tcp,
            ready,
            key,
            limit,
            owner,
            dir,
            served,
            init,
        })
    }
}

/// The target of a server started by spawn or forkserver. Never returns.
fn spawned_server((arg,): (ServerArg,)) {
    if let ServerArg::In {
        listener,
        tcp,
        ready,
        key,
        limit,
        owner,
        dir,
        served,
        init,
    } = arg
    {
        server::run(
            Listener::from_fd(listener, tcp),
            AuthKey::new(key),
            usize::try_from(limit).unwrap_or(usize::MAX),
            owner,
            dir,
            served,
            UnixStream::from(ready),
            init.map(|f| f as server::Init),
            // No factories cross an exec (`check_registry`); pools, with no
            // functions, are made there too.
            {
                let mut r = Registry::default();
                r.set_pools(super::pool::pool_factory(Default::default()));
                r
            },
        )
    }
}
