//! A manager: a server process that owns shared objects, and proxies that
//! forward every operation to it (Python's `multiprocessing.Manager()`).

mod additions;
mod array;
mod client;
#[cfg(feature = "fuzzing")]
pub(crate) mod fuzzing;
mod joinable;
mod pool;
mod proxy;
#[cfg(feature = "redis")]
mod redis_backend;
mod register;
mod server;
mod set;
pub(crate) mod spawn;
mod start;
mod stored;
mod sync;

pub use additions::DictIter;
pub use array::ArrayProxy;
pub use client::{Address, AddressError, ManagerError};
pub use joinable::JoinableQueueProxy;
pub use pool::{AsyncResultProxy, PoolFn, PoolProxy};
pub use procshare_model::manager::{Kind, OpError};
pub use proxy::{DictProxy, ListIndex, ListIter, ListProxy, NamespaceProxy, ValueProxy};
pub use register::{Call, CustomProxy, Reply, Shared, TypedProxy};
pub use set::SetProxy;
pub use start::ManagerBuilder;
pub use sync::{
    BarrierProxy, ConditionProxy, EventProxy, LockProxy, QueueProxy, RLockProxy, SemaphoreProxy,
};

use crate::codec::auth::AuthKey;
use client::{Endpoint, Handle};
use procshare_model::manager::{Init, Op, Request, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;

/// A result with a [`ManagerError`].
pub(crate) type Result<T> = std::result::Result<T, ManagerError>;

struct ServerProc {
    pid: crate::sys::proc::RawPid,
    owner: u32,
    dir: Option<PathBuf>,
    /// A server started by spawn or forkserver: its `Process` (a forked
    /// one is reaped by pid).
    proc: Option<crate::process::Process>,
}

/// A handle on a manager server: creates shared objects and returns their proxies.
///
/// ```
/// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
/// let mut m = procshare::Manager::start().unwrap();
/// let v = m.value(5i64).unwrap();
/// v.set(&6).unwrap();
/// assert_eq!(v.get().unwrap(), 6);
/// m.shutdown().unwrap();
/// assert!(v.get().is_err()); // the server is gone: an error, not a hang
/// ```
///
/// A manager: a server process that owns shared objects, and proxies that
/// forward every operation to it (Python's `multiprocessing.Manager()`).
///
/// ```
/// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
/// use procshare::Manager;
/// let manager = Manager::start().unwrap();
/// let list = manager.list::<String>().unwrap();
/// list.append("one".to_string()).unwrap();
/// let l2 = list.clone(); // a clone (or a fork's copy) is the same shared list
/// l2.extend(["two".to_string(), "three".to_string()]).unwrap();
/// assert_eq!(list.to_vec().unwrap(), ["one", "two", "three"]);
/// let dict = manager.dict::<String, u32>().unwrap();
/// dict.insert("a".to_string(), 1).unwrap();
/// assert_eq!(dict.get(&"a".to_string()).unwrap(), Some(1));
/// ```
///
/// # The server
///
/// [`Manager::start`] forks a server process that owns the objects; it listens
/// on a unix socket in a private `0700` directory (removed at shutdown).
/// [`Manager::builder`] (and [`Context::manager`](crate::Context::manager),
/// CPython's `get_context(m).Manager()`) starts it by spawn or forkserver
/// instead (a fresh exec of the binary), with an initializer run in the server
/// before it serves (CPython's `initializer`/`initargs`).
/// [`Manager::serve`] does the same on a TCP address, for clients on other
/// machines, which join with [`Manager::connect`] (CPython's
/// `BaseManager(address, authkey)`). Every connection proves the auth key both
/// ways ([`AuthKey`](crate::AuthKey)); a wrong key is an [`AuthError`](crate::AuthError) for the client and a
/// logged refusal (on the server's stderr) in the server. Requests and answers
/// are length-prefixed frames (postcard; no decoding can run code, unlike
/// pickle), at most 64 MiB each.
///
/// The server ignores `SIGINT` (as CPython's does, so that Ctrl-C reaches the
/// program, not its manager), and exits when the process that started it dies
/// (a watcher thread polls a pidfd of the parent; without pidfds, `getppid`),
/// removing its socket directory. [`Manager::shutdown`]
/// or dropping the [`Manager`] in the process that started it stops it.
/// It serves each connection on its own thread; a client that sends garbage
/// (answered with [`OpError::BadRequest`]), an oversized or half frame, or
/// dies mid-request only loses its own connection.
///
/// # Proxies and processes
///
/// Proxies ([`ListProxy`], [`DictProxy`], [`ValueProxy`], [`NamespaceProxy`],
/// [`LockProxy`], [`RLockProxy`], [`SemaphoreProxy`], [`EventProxy`], [`ConditionProxy`], [`BarrierProxy`],
/// [`QueueProxy`], [`ArrayProxy`], [`JoinableQueueProxy`], [`SetProxy`]) are `Clone`,
/// `Send` and `Sync`, and work in every process forked after they were made:
/// each thread of each process opens its own connection on first use (a
/// fork is detected by a change of pid, and the child never uses its parent's
/// connection). A proxy is serializable: stored inside a managed list or
/// dict, it comes back as a proxy to the same object (nested proxies), in any
/// process that knows its manager (the one that started it, its forked
/// children, or one that called [`Manager::connect`]).
///
/// A proxy is also an argument of a child started by spawn or forkserver
/// ([`Process::with_target`](crate::Process::with_target), a pool's
/// `spawn_initializer`, a manager's initializer), alone or inside a value (a
/// `Vec` of proxies, a struct): the child learns the manager's address and
/// auth key from the start request (a private memfd, never the environment
/// or a file), as CPython's spawned children inherit the auth key, and its
/// proxy holds a reference of its own until the child exits (even by `kill -9`).
///
/// ```
/// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
/// use procshare::{ListProxy, Manager, Process, StartMethod};
/// fn worker((l, word): (ListProxy<String>, String)) {
///     l.append(word).unwrap();
/// }
/// let m = Manager::start().unwrap();
/// let l = m.list::<String>().unwrap();
/// let mut p = Process::with_target(worker, (l.clone(), "spawned".to_string()))
///     .start_method(StartMethod::Spawn);
/// p.start().unwrap();
/// assert_eq!(p.join().unwrap(), 0);
/// assert_eq!(l.to_vec().unwrap(), ["spawned"]);
/// ```
///
/// # Semantics
///
/// Values cross as serde (postcard) and are stored encoded: equality on the
/// server (`index`, `count`, `remove`, dict keys) is equality of encodings
/// (see [`procshare_model::manager`]). `sort` sorts with `T: Ord` in the
/// client and writes back only if the list did not change meanwhile (else it
/// retries), so it is atomic. Every failed operation returns a typed
/// [`ManagerError`] and leaves the object as it was.
///
/// # Lifetime of objects
///
/// Objects are reference counted as CPython's: the server frees an object
/// once no proxy to it remains in any process. Clones share one reference;
/// a proxy deserialized in another process (received through a queue, or read
/// back from a managed list) takes its own; a forked child's inherited
/// proxies are held for the child's whole life (its parent takes references
/// for it just before the fork, on a connection the child inherits); a
/// process that dies, even by `kill -9`, gives its references back when its
/// connections close. Objects got by name ([`Manager::list_named`], ...)
/// live until the server stops.
///
/// A proxy stored in a managed container (a list's `append`, `insert`,
/// `extend`, `l[i] =`, [`Manager::list_from`]; a dict's `d[k] =`,
/// `update`, `setdefault`, [`Manager::dict_from`]; a value's `set`; a
/// namespace attribute; a queue's `put`) keeps its object alive while the
/// container stores it, as in CPython; removing or overwriting the value,
/// or freeing the container, lets it go. A Redis manager's objects are not
/// reference counted.
///
/// Differences from CPython: a proxy's serialized form sent any other way
/// (bytes through a pipe or socket of the program's own) does not hold a
/// reference: it must be kept alive by its sender until it is read back,
/// else reading it back is an error (the object is gone); a connection that
/// closes releases the manager locks it held (CPython keeps them locked
/// forever).
pub struct Manager {
    ep: Arc<Endpoint>,
    server: Option<ServerProc>,
    /// The custom types this handle knows by name ([`Manager::make`]).
    types: register::Types,
    /// The server's exit code, once [`Manager::shutdown`] reaped it.
    exitcode: Option<i32>,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager")
            .field("address", &self.ep.address)
            .field("server_pid", &self.server_pid())
            .finish()
    }
}

impl Manager {
    /// Start a server process on a unix socket in a private directory, with a random auth key.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// let m = procshare::Manager::start().unwrap();
    /// assert!(m.server_pid().is_some());
    /// ```
    pub fn start() -> Result<Manager> {
        Self::start_with_key(AuthKey::random()?)
    }

    /// [`Manager::start`] with a given auth key.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// use procshare::{AuthKey, Manager};
    /// let m = Manager::start_with_key(AuthKey::new("k")).unwrap();
    /// m.ping().unwrap();
    /// ```
    pub fn start_with_key(authkey: AuthKey) -> Result<Manager> {
        Manager::builder().authkey(authkey).start()
    }

    /// Start a server process listening on a TCP address (port 0: any free
    /// port; [`Manager::address`] tells which), for clients on other machines.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// use procshare::{AuthKey, Manager};
    /// let server = Manager::serve("127.0.0.1:0", AuthKey::new("secret")).unwrap();
    /// let client = Manager::connect(server.address().clone(), AuthKey::new("secret")).unwrap();
    /// let l = client.list_named::<u8>("shared").unwrap();
    /// l.append(1).unwrap();
    /// assert_eq!(server.list_named::<u8>("shared").unwrap().to_vec().unwrap(), [1]);
    /// assert!(Manager::connect(server.address().clone(), AuthKey::new("wrong")).is_err());
    /// ```
    pub fn serve(addr: impl std::net::ToSocketAddrs, authkey: AuthKey) -> Result<Manager> {
        Manager::builder().authkey(authkey).serve(addr)
    }

    /// Join a running server (TCP or unix socket) with its auth key. The
    /// returned handle does not stop the server when dropped.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// use procshare::Manager;
    /// let m = Manager::start().unwrap();
    /// let c = Manager::connect(m.address().clone(), m.authkey().clone()).unwrap();
    /// c.ping().unwrap();
    ///
    /// // A remote server, by a string address as in Python:
    /// let key = procshare::AuthKey::random().unwrap();
    /// let s = Manager::serve("127.0.0.1:0", key.clone()).unwrap();
    /// let port = match s.address() {
    ///     procshare::Address::Tcp(a) => a.port(),
    ///     other => unreachable!("{other}"),
    /// };
    /// let c = Manager::connect(format!("127.0.0.1:{port}").as_str(), key).unwrap();
    /// c.ping().unwrap();
    /// assert!(Manager::connect("no port here", s.authkey().clone()).is_err());
    /// ```
    pub fn connect<A>(addr: A, authkey: AuthKey) -> Result<Manager>
    where
        A: TryInto<Address>,
        ManagerError: From<A::Error>,
    {
        let ep = Endpoint::new(addr.try_into()?, authkey, crate::codec::wire::DEFAULT_LIMIT);
        let m = Manager {
            ep,
            server: None,
            types: Default::default(),
            exitcode: None,
        };
        m.ping()?;
        Endpoint::publish(&m.ep);
        Ok(m)
    }

    /// The server's address.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// let m = procshare::Manager::start().unwrap();
    /// assert!(matches!(m.address(), procshare::Address::Unix(_)));
    /// ```
    pub fn address(&self) -> &Address {
        &self.ep.address
    }

    /// The auth key.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// use procshare::{AuthKey, Manager};
    /// let m = Manager::start_with_key(AuthKey::new("k")).unwrap();
    /// assert_eq!(m.authkey(), &AuthKey::new("k"));
    /// ```
    pub fn authkey(&self) -> &AuthKey {
        &self.ep.authkey
    }

    /// The server's pid, if this handle started it.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// let m = procshare::Manager::start().unwrap();
    /// assert_ne!(m.server_pid(), Some(std::process::id() as i32));
    /// ```
    pub fn server_pid(&self) -> Option<i32> {
        self.server.as_ref().map(|s| s.pid)
    }

    /// One round trip to the server.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// procshare::Manager::start().unwrap().ping().unwrap();
    /// ```
    pub fn ping(&self) -> Result<()> {
        match client::call(&self.ep, &Request::Ping)? {
            Response::Pong => Ok(()),
            other => Err(ManagerError::Protocol(format!("ping answered {other:?}"))),
        }
    }

    fn create(&self, init: Init) -> Result<Handle> {
        Handle::create(&self.ep, Request::Create(init))
    }

    fn named(&self, name: &str, init: Init) -> Result<Handle> {
        Handle::create(&self.ep, Request::Named(name.to_string(), init))
    }

    /// A new empty shared list (`manager.list()`).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// let m = procshare::Manager::start().unwrap();
    /// assert!(m.list::<u8>().unwrap().is_empty().unwrap());
    /// ```
    pub fn list<T: Serialize + DeserializeOwned>(&self) -> Result<ListProxy<T>> {
        Ok(ListProxy::from_handle(self.create(Init::List(Vec::new()))?))
    }

    /// A new shared list holding `items` (`manager.list(items)`).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// let m = procshare::Manager::start().unwrap();
    /// assert_eq!(m.list_from([1, 2]).unwrap().to_vec().unwrap(), [1, 2]);
    /// ```
    pub fn list_from<T: Serialize + DeserializeOwned>(
        &self,
        items: impl IntoIterator<Item = T>,
    ) -> Result<ListProxy<T>> {
        // Kept until the list holds them: an item may be the last proxy to
        // its object.
        let kept: Vec<T> = items.into_iter().collect();
        let (items, each) = stored::enc_each::<T, &T>(&self.ep.address, &kept)?;
        if !stored::holds_any(&each) {
            return Ok(ListProxy::from_handle(self.create(Init::List(items))?));
        }
        // Items embedding proxies: stored by one holding `extend` of the
        // new list (which only this handle names yet).
        let h = self.create(Init::List(Vec::new()))?;
        let r = h.op(stored::holding_each(each, Op::Extend(items)))?;
        drop(kept);
        match r {
            Response::Ok => Ok(ListProxy::from_handle(h)),
            r => client::unexpected(r),
        }
    }

    /// The list registered under `name`, created empty if absent (how remote
    /// clients find shared objects, like CPython's registered typeids).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// let m = procshare::Manager::start().unwrap();
    /// m.list_named::<u8>("x").unwrap().append(1).unwrap();
    /// assert_eq!(m.list_named::<u8>("x").unwrap().len().unwrap(), 1);
    /// ```
    pub fn list_named<T: Serialize + DeserializeOwned>(&self, name: &str) -> Result<ListProxy<T>> {
        Ok(ListProxy::from_handle(
            self.named(name, Init::List(Vec::new()))?,
        ))
    }

    /// A new empty shared dict (`manager.dict()`).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// let m = procshare::Manager::start().unwrap();
    /// assert_eq!(m.dict::<u8, u8>().unwrap().len().unwrap(), 0);
    /// ```
    pub fn dict<K: Serialize + DeserializeOwned, V: Serialize + DeserializeOwned>(
        &self,
    ) -> Result<DictProxy<K, V>> {
        Ok(DictProxy::from_handle(self.create(Init::Dict(Vec::new()))?))
    }

    /// The dict registered under `name`, created empty if absent.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// let m = procshare::Manager::start().unwrap();
    /// m.dict_named::<u8, u8>("d").unwrap().insert(1, 2).unwrap();
    /// assert_eq!(m.dict_named::<u8, u8>("d").unwrap().get(&1).unwrap(), Some(2));
    /// ```
    pub fn dict_named<K: Serialize + DeserializeOwned, V: Serialize + DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<DictProxy<K, V>> {
        Ok(DictProxy::from_handle(
            self.named(name, Init::Dict(Vec::new()))?,
        ))
    }

    /// A new shared value (`manager.Value(typecode, value)`).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// let m = procshare::Manager::start().unwrap();
    /// assert_eq!(m.value("x".to_string()).unwrap().get().unwrap(), "x");
    /// ```
    pub fn value<T: Serialize + DeserializeOwned>(&self, v: T) -> Result<ValueProxy<T>> {
        Ok(ValueProxy::from_handle(
            self.create(Init::Value(client::enc(&v)?))?,
        ))
    }

    /// A new empty namespace (`manager.Namespace()`).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// let m = procshare::Manager::start().unwrap();
    /// let ns = m.namespace().unwrap();
    /// ns.set("x", &1u8).unwrap();
    /// assert_eq!(ns.get::<u8>("x").unwrap(), 1);
    /// ```
    pub fn namespace(&self) -> Result<NamespaceProxy> {
        Ok(NamespaceProxy::from_handle(self.create(Init::Namespace)?))
    }

    /// A new manager lock (`manager.Lock()`).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// let m = procshare::Manager::start().unwrap();
    /// let l = m.lock().unwrap();
    /// l.acquire().unwrap();
    /// l.release().unwrap();
    /// ```
    pub fn lock(&self) -> Result<LockProxy> {
        Ok(LockProxy::from_handle(self.create(Init::Lock)?))
    }

    /// A new manager recursive lock (`manager.RLock()`).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// let m = procshare::Manager::start().unwrap();
    /// let l = m.rlock().unwrap();
    /// l.acquire().unwrap();
    /// l.acquire().unwrap();
    /// l.release().unwrap();
    /// l.release().unwrap();
    /// assert!(l.release().is_err());
    /// ```
    pub fn rlock(&self) -> Result<RLockProxy> {
        Ok(RLockProxy::from_handle(self.create(Init::RLock)?))
    }

    /// A new manager semaphore (`manager.Semaphore(value)`).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// let m = procshare::Manager::start().unwrap();
    /// let s = m.semaphore(1).unwrap();
    /// assert!(s.try_acquire().unwrap());
    /// assert!(!s.try_acquire().unwrap());
    /// ```
    pub fn semaphore(&self, value: u64) -> Result<SemaphoreProxy> {
        Ok(SemaphoreProxy::from_handle(
            self.create(Init::Semaphore { value, bound: None })?,
        ))
    }

    /// A new manager bounded semaphore (`manager.BoundedSemaphore(value)`).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// let m = procshare::Manager::start().unwrap();
    /// assert!(m.bounded_semaphore(1).unwrap().release().is_err());
    /// ```
    pub fn bounded_semaphore(&self, value: u64) -> Result<SemaphoreProxy> {
        Ok(SemaphoreProxy::from_handle(self.create(
            Init::Semaphore {
                value,
                bound: Some(value),
            },
        )?))
    }

    /// A new manager event (`manager.Event()`).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// let m = procshare::Manager::start().unwrap();
    /// let e = m.event().unwrap();
    /// e.set().unwrap();
    /// assert!(e.wait().unwrap());
    /// ```
    pub fn event(&self) -> Result<EventProxy> {
        Ok(EventProxy::from_handle(self.create(Init::Event)?))
    }

    /// A new manager condition variable with its own recursive lock (`manager.Condition()`).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// let m = procshare::Manager::start().unwrap();
    /// let c = m.condition().unwrap();
    /// c.acquire().unwrap();
    /// assert!(!c.wait_timeout(std::time::Duration::from_millis(1)).unwrap());
    /// c.release().unwrap();
    /// ```
    pub fn condition(&self) -> Result<ConditionProxy> {
        Ok(ConditionProxy::from_handle(self.create(Init::Condition)?))
    }

    /// A new manager barrier for `parties` parties (`manager.Barrier(parties)`).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// let m = procshare::Manager::start().unwrap();
    /// assert_eq!(m.barrier(1).unwrap().wait().unwrap(), 0);
    /// ```
    pub fn barrier(&self, parties: u64) -> Result<BarrierProxy> {
        Ok(BarrierProxy::from_handle(
            self.create(Init::Barrier { parties })?,
        ))
    }

    /// A new manager barrier whose proxy's [`BarrierProxy::wait`] waits at
    /// most `timeout` (`manager.Barrier(parties, timeout=t)`): on timeout
    /// the barrier breaks. (The default timeout belongs to this proxy and its
    /// clones, including a forked child's; a proxy deserialized elsewhere has none.)
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// let m = procshare::Manager::start().unwrap();
    /// let b = m.barrier_with_timeout(2, std::time::Duration::from_millis(10)).unwrap();
    /// assert!(b.wait().is_err());
    /// assert!(b.is_broken().unwrap());
    /// ```
    pub fn barrier_with_timeout(
        &self,
        parties: u64,
        timeout: std::time::Duration,
    ) -> Result<BarrierProxy> {
        Ok(self.barrier(parties)?.with_timeout(Some(timeout)))
    }

    /// A new manager queue (`manager.Queue(maxsize)`; `None`: unbounded).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// let m = procshare::Manager::start().unwrap();
    /// let q = m.queue::<String>(None).unwrap();
    /// q.put(&"x".to_string()).unwrap();
    /// assert_eq!(q.get().unwrap(), "x");
    /// ```
    pub fn queue<T: Serialize + DeserializeOwned>(
        &self,
        maxsize: Option<u64>,
    ) -> Result<QueueProxy<T>> {
        Ok(QueueProxy::from_handle(
            self.create(Init::Queue { maxsize })?,
        ))
    }

    /// Stop the server (only from the process that started it; elsewhere, and
    /// for a handle from [`Manager::connect`], this does nothing). Waits for the
    /// server process to exit and removes its socket directory. Proxies then
    /// fail with an error.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// let mut m = procshare::Manager::start().unwrap();
    /// m.shutdown().unwrap();
    /// m.shutdown().unwrap(); // idempotent
    /// ```
    pub fn shutdown(&mut self) -> Result<()> {
        let Some(sp) = self.server.take() else {
            return Ok(());
        };
        if sp.owner != std::process::id() {
            // A forked copy: the server belongs to the parent.
            std::mem::forget(sp);
            return Ok(());
        }
        let asked = client::request_shutdown(&self.ep);
        client::forget_connection(&self.ep);
        Endpoint::unregister(&self.ep);
        let reaped = match sp.proc {
            Some(mut p) => {
                if asked.is_err() {
                    let _ = p.kill();
                }
                Ok(p.join().ok())
            }
            None => server::reap(sp.pid, asked.is_err()),
        };
        if let Some(dir) = sp.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
        asked?;
        self.exitcode = reaped?;
        Ok(())
    }

    /// The server process's exit code, once [`Manager::shutdown`] (or the
    /// end of the scope that drops the handle) stopped it: 0 for a clean
    /// exit, `-N` if signal N killed it (CPython's `manager._process.exitcode`).
    /// `None` before, and for a handle that did not start the server.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// let mut m = procshare::Manager::start().unwrap();
    /// assert_eq!(m.exitcode(), None);
    /// m.shutdown().unwrap();
    /// assert_eq!(m.exitcode(), Some(0));
    /// ```
    pub fn exitcode(&self) -> Option<i32> {
        self.exitcode
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}
