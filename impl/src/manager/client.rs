//! The client side: addresses, endpoints, per-thread-per-process connections.

use crate::codec::auth::{self, AuthError, AuthKey};
use crate::codec::wire::{self, WireError};
use procshare_model::manager::{Kind, ObjId, OpError, Request, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

/// Where a manager server or a [`Listener`](crate::Listener) listens.
///
/// ```
/// use procshare::Address;
/// let a: Address = "127.0.0.1:5000".parse::<std::net::SocketAddr>().unwrap().into();
/// assert_eq!(a.to_string(), "tcp:127.0.0.1:5000");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Address {
    /// A unix socket path.
    Unix(PathBuf),
    /// A TCP address.
    Tcp(SocketAddr),
    /// A unix socket name in Linux's abstract namespace (no file; CPython's
    /// addresses starting with `"\0"`; written `abstract:NAME`).
    Abstract(Vec<u8>),
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Address::Unix(p) => write!(f, "unix:{}", p.display()),
            Address::Tcp(a) => write!(f, "tcp:{a}"),
            Address::Abstract(n) => write!(f, "abstract:{}", String::from_utf8_lossy(n)),
        }
    }
}

impl From<SocketAddr> for Address {
    fn from(a: SocketAddr) -> Self {
        Address::Tcp(a)
    }
}

impl From<PathBuf> for Address {
    fn from(p: PathBuf) -> Self {
        Address::Unix(p)
    }
}

impl From<&Path> for Address {
    fn from(p: &Path) -> Self {
        Address::Unix(p.to_path_buf())
    }
}

/// A string that is not a manager address (see [`Address`]'s `FromStr`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
#[error("not a manager address: {addr:?} ({why})")]
pub struct AddressError {
    /// The string given.
    pub addr: String,
    /// Why it was refused.
    #[source]
    pub why: io::Error,
}

impl std::str::FromStr for Address {
    type Err = AddressError;

    /// `"unix:PATH"` or a string starting with `/` or `.` is a unix socket
    /// path; `"tcp:HOST:PORT"` or `"HOST:PORT"` is a TCP address (a host name
    /// is resolved, and its first address taken) — the two forms of Python's
    /// `address` argument.
    /// `"abstract:NAME"` or a string starting with `"\0"` is an abstract unix
    /// name (as CPython writes it).
    ///
    /// ```
    /// use procshare::Address;
    /// let a: Address = "127.0.0.1:5000".parse().unwrap();
    /// assert_eq!(a.to_string(), "tcp:127.0.0.1:5000");
    /// let u: Address = "unix:/tmp/m.sock".parse().unwrap();
    /// assert_eq!(u, Address::Unix("/tmp/m.sock".into()));
    /// assert!("no port here".parse::<Address>().is_err());
    /// ```
    fn from_str(s: &str) -> std::result::Result<Address, AddressError> {
        use std::net::ToSocketAddrs;
        if let Some(p) = s.strip_prefix("unix:") {
            return Ok(Address::Unix(PathBuf::from(p)));
        }
        if let Some(n) = s.strip_prefix("abstract:").or_else(|| s.strip_prefix('\0')) {
            return Ok(Address::Abstract(n.as_bytes().to_vec()));
        }
        if s.starts_with('/') || s.starts_with('.') {
            return Ok(Address::Unix(PathBuf::from(s)));
        }
        let hostport = s.strip_prefix("tcp:").unwrap_or(s);
        let fail = |why: io::Error| AddressError {
            addr: s.to_string(),
            why,
        };
        hostport
            .to_socket_addrs()
            .map_err(fail)?
            .next()
            .map(Address::Tcp)
            .ok_or_else(|| {
                fail(io::Error::new(
                    io::ErrorKind::NotFound,
                    "the host name has no address",
                ))
            })
    }
}

impl TryFrom<&str> for Address {
    type Error = AddressError;
    fn try_from(s: &str) -> std::result::Result<Address, AddressError> {
        s.parse()
    }
}

impl TryFrom<String> for Address {
    type Error = AddressError;
    fn try_from(s: String) -> std::result::Result<Address, AddressError> {
        s.parse()
    }
}

/// Errors of manager operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManagerError {
    /// The server refused the operation (index out of range, key not found,
    /// value not in list, wrong object type, ...). Nothing changed.
    #[error("{0}")]
    Op(#[from] OpError),
    /// The connection could not be authenticated (wrong auth key).
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The connection failed (the server is gone, or sent a bad frame).
    #[error("manager connection: {0}")]
    Wire(#[from] WireError),
    /// A value from the server does not decode as the requested type.
    #[error("a value from the manager does not decode as {ty}: {source}")]
    WrongType {
        /// The requested type.
        ty: &'static str,
        /// The decoder's error.
        #[source]
        source: WireError,
    },
    /// A value could not be encoded (the serializer's message is kept: see
    /// [`WireError::Encode`]).
    #[error("cannot encode a value for the manager: {0}")]
    Encode(#[source] WireError),
    /// The server answered something that does not fit the request (a
    /// description of that answer: it comes from the other process).
    #[error("unexpected answer from the manager: {0}")]
    Protocol(String),
    /// A system call failed.
    #[error("manager: {0}")]
    Io(#[from] io::Error),
    /// The address given is not one.
    #[error(transparent)]
    Address(#[from] AddressError),
    /// A lock of a Redis manager (`Manager::redis`, feature `redis`)
    /// was acquired, and is held now, but its previous holder lost its lease
    /// without releasing it (it died, or was paused or cut off): what the
    /// lock protects may be half-updated (the local lock's
    /// [`OwnerDied`](crate::OwnerDied)). `token` is this acquisition's fencing token.
    #[error("the lock was acquired (fencing token {token}), but its previous holder's lease ran out while it held it")]
    OwnerDied {
        /// This acquisition's fencing token.
        token: u64,
    },
    /// The Redis server of a Redis manager failed (down, a timeout, a key of
    /// the wrong type under the namespace, a reply that does not decode).
    #[cfg(feature = "redis")]
    #[error(transparent)]
    Redis(#[from] crate::RedisError),
}

impl From<std::convert::Infallible> for ManagerError {
    fn from(e: std::convert::Infallible) -> Self {
        match e {}
    }
}

impl ManagerError {
    /// The server's refusal, if that is what this error is.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// use procshare::{Manager, OpError};
    /// let m = Manager::start().unwrap();
    /// let e = m.list::<u8>().unwrap().get(3).unwrap_err();
    /// assert_eq!(e.op_error(), Some(&OpError::IndexOutOfRange { index: 3, len: 0 }));
    /// ```
    pub fn op_error(&self) -> Option<&OpError> {
        match self {
            ManagerError::Op(e) => Some(e),
            _ => None,
        }
    }
}

pub(crate) type Result<T> = std::result::Result<T, ManagerError>;

pub(crate) fn enc<T: Serialize + ?Sized>(v: &T) -> Result<Vec<u8>> {
    wire::encode(v).map_err(ManagerError::Encode)
}

pub(crate) fn dec<T: DeserializeOwned>(b: &[u8]) -> Result<T> {
    wire::decode(b).map_err(|e| ManagerError::WrongType {
        ty: std::any::type_name::<T>(),
        source: e,
    })
}

/// A server and how to reach it, and this process's connections to it.
///
/// Each thread of each process talks to the server on a connection of its own
/// (manager locks are owned by connections, so a thread's requests must all
/// go through one). The connection is cached in a slot that the thread owns
/// (its thread-local map holds the only strong reference, so a thread that
/// exits closes it) and that the endpoint knows weakly, so that dropping the
/// last handle on the endpoint (the [`Manager`](super::Manager) and every
/// proxy made through it) closes every thread's connection to it: the server
/// then ends the threads serving them. (Before, a `Manager::connect` + drop
/// left a connection open in the client and a thread in the server.)
pub(crate) struct Endpoint {
    /// Unique in this process: keys this thread's cached connection.
    pub uid: u64,
    pub address: Address,
    pub authkey: AuthKey,
    pub limit: usize,
    /// Every thread's connection slot (see [`Slot`]); dead ones are pruned.
    slots: Mutex<Vec<Weak<Slot>>>,
    /// This process's session: the connection that holds the process's
    /// references to objects (see [`Handle`]). See [`Session`].
    session: Mutex<Session>,
    /// Signalled when the session connection is put back.
    session_free: std::sync::Condvar,
    /// Live handles of this process to this endpoint's objects: id -> count
    /// (each holds one server reference; a fork lends them to the child).
    live: Mutex<HashMap<ObjId, u64>>,
    /// A Redis manager's backend: every request goes there instead (see
    /// `redis_backend`; then `address` is only a label).
    #[cfg(feature = "redis")]
    pub(crate) redis: Option<Arc<super::redis_backend::Backend>>,
}

/// A process's session connection. The lock is never held across I/O (a
/// thread takes the stream out, marking it in use by its pid, and puts it
/// back), so a child forked while another thread of its parent was mid-request
/// does not inherit a held lock: it sees the stream in use by another pid,
/// which is a thread it does not have, and opens its own.
#[derive(Default)]
struct Session {
    /// The connection and the pid that opened it (`None` while in use).
    stream: Option<(u32, Stream)>,
    /// The pid of the process one of whose threads has the stream out.
    busy: Option<u32>,
}

/// One thread's cached connection (see [`Conn`]).
type Slot = Mutex<Option<Conn>>;

/// A thread's connection to a server, with its buffers (kept from one call
/// to the next: a call allocates nothing for its frames, and reads an answer
/// that arrived whole with one `read`), and the fork generation of the
/// process that opened it (see [`crate::sys::fork::generation`]: it differs
/// in every forked child, so a child never uses a connection it inherited;
/// unlike a pid, it is known without a system call).
pub(crate) struct Conn {
    generation: u64,
    s: Stream,
    rd: wire::FrameBuf,
    wr: Vec<u8>,
}

impl Conn {
    /// Write `req` as one frame.
    fn send(&mut self, req: &Request) -> Result<()> {
        wire::encode_frame_into(req, &mut self.wr)?;
        self.s.write_all(&self.wr)?;
        Ok(())
    }
    /// Read one answer.
    fn recv(&mut self, limit: usize) -> Result<Response> {
        Ok(wire::decode(self.rd.read_frame(&mut self.s, limit)?)?)
    }
}

/// A connection's write buffer above this capacity is not kept.
const BIG_REQUEST: usize = 1 << 20;

impl Drop for Endpoint {
    fn drop(&mut self) {
        let slots = std::mem::take(self.slots.get_mut().unwrap_or_else(|p| p.into_inner()));
        for s in slots.iter().filter_map(Weak::upgrade) {
            // Closes the connection (in a forked child: our copy of it).
            drop(s.lock().unwrap_or_else(|p| p.into_inner()).take());
        }
    }
}

/// Every endpoint this process knows, for deserializing proxies (weakly: an
/// endpoint lives as long as a manager handle or a proxy uses it).
static ENDPOINTS: Mutex<Vec<Weak<Endpoint>>> = Mutex::new(Vec::new());

/// [`ENDPOINTS`], locked, the fork hook that holds it across forks
/// registered first (see [`hold_across_fork`]).
fn endpoints() -> std::sync::MutexGuard<'static, Vec<Weak<Endpoint>>> {
    crate::sys::fork::register(&LEND_AT_FORK);
    ENDPOINTS.lock().unwrap_or_else(|p| p.into_inner())
}

impl Endpoint {
    pub(crate) fn new(address: Address, authkey: AuthKey, limit: usize) -> Arc<Endpoint> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Arc::new(Endpoint {
            uid: NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            address,
            authkey,
            limit,
            slots: Mutex::new(Vec::new()),
            session: Mutex::new(Session::default()),
            session_free: std::sync::Condvar::new(),
            live: Mutex::new(HashMap::new()),
            #[cfg(feature = "redis")]
            redis: None,
        })
    }
    /// An endpoint whose requests a Redis backend answers, labelled
    /// `abstract:procshare-redis:{url}#{namespace}` (no socket has it).
    #[cfg(feature = "redis")]
    pub(crate) fn new_redis(b: super::redis_backend::Backend) -> Arc<Endpoint> {
        let label = format!("procshare-redis:{}#{}", b.url, b.ns);
        let mut ep = Endpoint::new(Address::Abstract(label.into_bytes()), AuthKey::new(""), 0);
        if let Some(e) = Arc::get_mut(&mut ep) {
            e.redis = Some(Arc::new(b));
        }
        ep
    }
    /// A Redis manager's endpoint from its label (a proxy that reached a
    /// process that has none: a spawned child, say), with the default lease.
    #[cfg(feature = "redis")]
    fn redis_by_label(a: &Address) -> Option<Arc<Endpoint>> {
        let Address::Abstract(label) = a else {
            return None;
        };
        let label = std::str::from_utf8(label).ok()?;
        let (url, ns) = label.strip_prefix("procshare-redis:")?.rsplit_once('#')?;
        let b = super::redis_backend::Backend::open(url, ns, super::redis_backend::DEFAULT_LEASE)
            .ok()?;
        let ep = Endpoint::new_redis(b);
        Endpoint::publish(&ep);
        Some(ep)
    }
    /// The Redis backend, if this endpoint is a Redis manager's.
    #[cfg(feature = "redis")]
    fn redis(&self) -> Option<&super::redis_backend::Backend> {
        self.redis.as_deref()
    }
    #[cfg(not(feature = "redis"))]
    fn redis(&self) -> Option<&std::convert::Infallible> {
        None
    }
    /// Make `ep` the one proxies to its address deserialize with (the most
    /// recently published live endpoint of an address is the one found).
    pub(crate) fn publish(ep: &Arc<Endpoint>) {
        let mut all = endpoints();
        all.retain(|e| e.strong_count() > 0);
        all.push(Arc::downgrade(ep));
    }
    pub(crate) fn unregister(ep: &Endpoint) {
        let mut all = endpoints();
        all.retain(|e| e.upgrade().is_some_and(|e| e.uid != ep.uid));
    }
    pub(crate) fn find(address: &Address) -> Option<Arc<Endpoint>> {
        let all = endpoints();
        all.iter()
            .rev()
            .filter_map(Weak::upgrade)
            .find(|e| &e.address == address)
    }
    /// This thread's slot for this endpoint (made and registered on first use).
    fn slot(self: &Arc<Self>) -> Option<Arc<Slot>> {
        CONNS
            .try_with(|c| {
                let mut c = c.borrow_mut();
                if let Some((_, s)) = c.get(&self.uid) {
                    return s.clone();
                }
                // Forget the slots of endpoints that are gone (their
                // connections were closed when they were dropped).
                c.retain(|_, (e, _)| e.strong_count() > 0);
                let s = Arc::new(Slot::new(None));
                let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
                slots.retain(|w| w.strong_count() > 0);
                slots.push(Arc::downgrade(&s));
                c.insert(self.uid, (Arc::downgrade(self), s.clone()));
                s
            })
            .ok()
    }
}

pub(crate) enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(buf),
            Stream::Tcp(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A fresh authenticated connection.
pub(crate) fn connect(ep: &Endpoint) -> Result<Stream> {
    let mut s = match &ep.address {
        Address::Unix(p) => Stream::Unix(UnixStream::connect(p)?),
        Address::Abstract(n) => {
            use std::os::linux::net::SocketAddrExt;
            let a = std::os::unix::net::SocketAddr::from_abstract_name(n)?;
            Stream::Unix(UnixStream::connect_addr(&a)?)
        }
        Address::Tcp(a) => {
            let t = TcpStream::connect(a)?;
            t.set_nodelay(true)?;
            Stream::Tcp(t)
        }
    };
    auth::client_handshake(&mut s, &ep.authkey)?;
    Ok(s)
}

/// A thread's connection slots: endpoint uid -> (endpoint, slot).
type Slots = HashMap<u64, (Weak<Endpoint>, Arc<Slot>)>;

thread_local! {
    /// This thread's connection slots.
    static CONNS: RefCell<Slots> = RefCell::new(HashMap::new());
}

/// Take this thread's connection to `ep` (opening one if there is none, or if
/// the one cached was opened by another process: we are a forked child).
fn take_conn(ep: &Arc<Endpoint>) -> Result<(Option<Arc<Slot>>, Conn)> {
    settle_lent();
    // A child forked by anyone (the program's own `fork` too) bumps the
    // generation once this handler is registered, which it is before the
    // first connection is opened (a `OnceLock` load once it is).
    crate::sys::fork::ensure_atfork();
    let generation = crate::sys::fork::generation();
    let slot = ep.slot();
    let cached = slot
        .as_ref()
        .and_then(|s| s.lock().unwrap_or_else(|p| p.into_inner()).take());
    let c = match cached {
        Some(c) if c.generation == generation => c,
        Some(stale) => {
            // Our parent's connection, inherited by fork: close our copy of
            // the descriptor (the parent's stays open) and never use it.
            drop(stale);
            fresh_conn(ep, generation)?
        }
        None => fresh_conn(ep, generation)?,
    };
    Ok((slot, c))
}

fn fresh_conn(ep: &Endpoint, generation: u64) -> Result<Conn> {
    Ok(Conn {
        generation,
        s: connect(ep)?,
        rd: wire::FrameBuf::new(),
        wr: Vec::new(),
    })
}

/// Put a connection back in its slot, once every answer it was sent has been
/// read: a byte left over would be the server speaking out of turn, and the
/// connection is then dropped (closed) instead.
fn put_conn(slot: Option<Arc<Slot>>, mut c: Conn) -> Result<()> {
    if !c.rd.is_empty() {
        return Err(ManagerError::Protocol(
            "the manager sent more than the answers asked for".into(),
        ));
    }
    if c.wr.capacity() > BIG_REQUEST {
        c.wr = Vec::new();
    }
    // Without a slot (thread-locals being destroyed) the connection closes here.
    if let Some(slot) = slot {
        *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(c);
    }
    Ok(())
}

/// Drop this thread's cached connection to `ep`.
pub(crate) fn forget_connection(ep: &Endpoint) {
    let _ = CONNS.try_with(|c| c.borrow_mut().remove(&ep.uid));
}

/// Leak every connection this process inherited without closing it (the
/// server child calls this after fork: the descriptors are closed wholesale
/// there): this thread's cached ones, the ones lent to it, and every known
/// endpoint's session and thread slots, so that no later drop (a proxy
/// the server's initializer uses, say) closes a descriptor number that has
/// been reused meanwhile. Locks another thread of the parent held at the fork
/// are skipped (what they guard is then in use by that thread, absent here).
pub(crate) fn leak_connections() {
    use std::sync::TryLockError;
    fn lock<T>(m: &Mutex<T>) -> Option<std::sync::MutexGuard<'_, T>> {
        match m.try_lock() {
            Ok(g) => Some(g),
            Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }
    let _ = CONNS.try_with(|c| std::mem::forget(c.take()));
    let _ = LENT.try_with(|l| std::mem::forget(l.take()));
    let eps: Vec<Arc<Endpoint>> = match lock(&ENDPOINTS) {
        Some(all) => all.iter().filter_map(Weak::upgrade).collect(),
        None => Vec::new(),
    };
    for ep in eps {
        if let Some(mut g) = lock(&ep.session) {
            std::mem::forget(g.stream.take());
        }
        if let Some(slots) = lock(&ep.slots) {
            for s in slots.iter().filter_map(Weak::upgrade) {
                if let Some(mut g) = lock(&s) {
                    std::mem::forget(g.take());
                }
            }
        }
    }
}

/// One request, one answer, on this thread's connection.
pub(crate) fn call(ep: &Arc<Endpoint>, req: &Request) -> Result<Response> {
    #[cfg(feature = "redis")]
    if let Some(b) = ep.redis() {
        return b.request(req);
    }
    let (slot, mut c) = take_conn(ep)?;
    c.send(req)?;
    let r = c.recv(ep.limit)?;
    put_conn(slot, c)?;
    Ok(r)
}

/// Several requests written back to back, then all answers read (pipelining).
pub(crate) fn call_pipelined(ep: &Arc<Endpoint>, reqs: &[Request]) -> Result<Vec<Response>> {
    #[cfg(feature = "redis")]
    if let Some(b) = ep.redis() {
        return reqs.iter().map(|r| b.request(r)).collect();
    }
    let (slot, mut c) = take_conn(ep)?;
    // Write all, then read all. The server answers in order; a writer that got
    // far ahead is bounded by the socket buffers, and the server thread always
    // drains requests while we are still writing only if it can write its
    // answers: write in windows so neither side's buffer fills.
    const WINDOW: usize = 64;
    let mut out = Vec::with_capacity(reqs.len());
    for chunk in reqs.chunks(WINDOW) {
        let mut buf = Vec::new();
        for r in chunk {
            wire::write_frame(&mut buf, r)?;
        }
        c.s.write_all(&buf)?;
        for _ in chunk {
            out.push(c.recv(ep.limit)?);
        }
    }
    put_conn(slot, c)?;
    Ok(out)
}

/// Ask the server to exit, on a connection of its own.
pub(crate) fn request_shutdown(ep: &Endpoint) -> Result<()> {
    let mut s = connect(ep)?;
    wire::write_frame(&mut s, &Request::Shutdown)?;
    match wire::read_frame::<_, Response>(&mut s, ep.limit)? {
        Response::Ok => Ok(()),
        other => Err(ManagerError::Protocol(format!(
            "shutdown answered {other:?}"
        ))),
    }
}

/// What a proxy serializes as.
#[derive(Serialize, Deserialize)]
struct Token {
    address: Address,
    id: ObjId,
    kind: Kind,
}

/// One request, one answer, on this process's session connection to `ep`
/// (the connection holding the process's references).
pub(crate) fn session_call(ep: &Endpoint, req: &Request) -> Result<Response> {
    #[cfg(feature = "redis")]
    if let Some(b) = ep.redis() {
        return b.request(req);
    }
    settle_lent();
    let pid = std::process::id();
    let taken = {
        let mut g = ep.session.lock().unwrap_or_else(|p| p.into_inner());
        while g.busy == Some(pid) {
            g = ep.session_free.wait(g).unwrap_or_else(|p| p.into_inner());
        }
        g.busy = Some(pid);
        g.stream.take()
    };
    let r = session_request(ep, pid, taken, req);
    let mut g = ep.session.lock().unwrap_or_else(|p| p.into_inner());
    g.busy = None;
    let (r, s) = match r {
        Ok((r, s)) => (Ok(r), Some((pid, s))),
        Err(e) => (Err(e), None),
    };
    g.stream = s;
    drop(g);
    ep.session_free.notify_all();
    r
}

/// [`session_call`]'s round trip on the taken stream (opening one if there
/// is none, or if it is our parent's).
fn session_request(
    ep: &Endpoint,
    pid: u32,
    taken: Option<(u32, Stream)>,
    req: &Request,
) -> Result<(Response, Stream)> {
    let mut s = match taken {
        Some((p, s)) if p == pid => s,
        stale => {
            // None, or our parent's session inherited by fork (closing our
            // copy of it leaves the parent's open).
            drop(stale);
            connect(ep)?
        }
    };
    wire::write_frame(&mut s, req)?;
    let r: Response = wire::read_frame(&mut s, ep.limit)?;
    Ok((r, s))
}

thread_local! {
    /// Connections this thread opened just before forking, each holding a
    /// reference to every object this process had a handle to then, on behalf
    /// of the child (see [`lend_before_fork`]), with the pid that opened them.
    static LENT: RefCell<Vec<(u32, Stream)>> = const { RefCell::new(Vec::new()) };
}

/// Close this thread's copies of the connections it lent to its forked
/// children (they are past the fork now); keep, open for the rest of the
/// process's life, the ones inherited from the parent (this process is the
/// child they hold references for).
fn settle_lent() {
    let _ = LENT.try_with(|l| {
        let mut l = l.borrow_mut();
        if l.is_empty() {
            return;
        }
        // (Asked only here: `getpid` is a system call, and every call comes by.)
        let pid = std::process::id();
        for (p, s) in l.drain(..) {
            if p == pid {
                drop(s);
            } else {
                std::mem::forget(s);
            }
        }
    });
}

/// Before a fork (in the parent): for every manager this process holds
/// handles to, open a connection and take on it a reference to each object
/// held. The child inherits the connection's descriptor and never closes it;
/// the parent closes its copy after the fork. So the connection, and with it
/// the references, lasts exactly as long as the child (even `kill -9`): the
/// parent dropping its handles right after the fork cannot free what the
/// child inherited, and a child that exits gives them back.
fn lend_before_fork() {
    settle_lent();
    let eps: Vec<Arc<Endpoint>> = {
        let all = ENDPOINTS.lock().unwrap_or_else(|p| p.into_inner());
        all.iter().filter_map(Weak::upgrade).collect()
    };
    for ep in eps {
        let ids: Vec<ObjId> = {
            let live = ep.live.lock().unwrap_or_else(|p| p.into_inner());
            live.keys().copied().collect()
        };
        if ids.is_empty() || ep.redis().is_some() {
            continue;
        }
        let lent = connect(&ep).and_then(|mut s| {
            wire::write_frame(&mut s, &Request::Incref(ids))?;
            match wire::read_frame::<_, Response>(&mut s, ep.limit)? {
                Response::Ok => Ok(s),
                other => Err(ManagerError::Protocol(format!("incref answered {other:?}"))),
            }
        });
        match lent {
            Ok(s) => {
                let _ = LENT.try_with(|l| l.borrow_mut().push((std::process::id(), s)));
            }
            Err(e) => {
                log::warn!(target: "procshare::manager", "lending proxies to a child: {e}")
            }
        }
    }
}

fn nothing_in_child() {}

/// Around every fork: holds the endpoint list and each endpoint's session,
/// thread-slot and reference-count locks across it, released on both sides
/// after. Other threads take each of these alone and briefly (never while
/// waiting for the server: a session call marks the session busy and
/// releases the lock for its round trip), so this waits at most for such a
/// step; and a child never inherits one of them held by a thread it does not
/// have (seen: a forked child hung for good in its own first fork, on the
/// endpoint list another test thread held at the moment it was forked).
fn hold_across_fork(fork: &mut dyn FnMut()) {
    let all = ENDPOINTS.lock().unwrap_or_else(|p| p.into_inner());
    let eps: Vec<Arc<Endpoint>> = all.iter().filter_map(Weak::upgrade).collect();
    {
        let held: Vec<_> = eps
            .iter()
            .map(|ep| {
                (
                    ep.session.lock().unwrap_or_else(|p| p.into_inner()),
                    ep.slots.lock().unwrap_or_else(|p| p.into_inner()),
                    ep.live.lock().unwrap_or_else(|p| p.into_inner()),
                )
            })
            .collect();
        fork();
        drop(held);
    }
    // The list's lock before the endpoints: dropping the last handle of one
    // unregisters it, which takes the list's lock.
    drop(all);
    drop(eps);
}

/// The manager's entry in the fork registry (see `sys::fork`).
static LEND_AT_FORK: crate::sys::fork::AtFork = crate::sys::fork::AtFork {
    name: "manager proxies lent to the child; the client's locks held across the fork",
    prepare: Some(lend_before_fork),
    child: nothing_in_child,
    around: Some(hold_across_fork),
};

/// A reference to one object of one server, counted as CPython's proxies
/// are: the process holds one server reference per live [`Held`] (clones of
/// a proxy share it), taken when the object is created or a proxy is
/// deserialized, and given back when the last clone is dropped; a forked
/// child's inherited handles are covered, for the child's life, by the
/// references its parent took for it on a connection it inherits (see
/// [`lend_before_fork`]). The
/// server frees an object once no process holds it (a process that dies gives
/// its references back when its session connection closes).
#[derive(Clone)]
pub(crate) struct Handle(Arc<Held>);

/// What a [`Handle`] refers to; dropping the last one gives the reference back.
pub(crate) struct Held {
    pub ep: Arc<Endpoint>,
    pub id: ObjId,
    pub kind: Kind,
    /// The process whose session holds this handle's reference (a forked
    /// child's inherited copy gives nothing back: its reference is the
    /// inherited connection's, released when the child exits).
    pid: u32,
}

impl std::ops::Deref for Handle {
    type Target = Held;
    fn deref(&self) -> &Held {
        &self.0
    }
}

impl Held {
    /// A handle for a reference the session just took.
    fn handle(ep: &Arc<Endpoint>, id: ObjId, kind: Kind) -> Handle {
        crate::sys::fork::register(&LEND_AT_FORK);
        *ep.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(id)
            .or_insert(0) += 1;
        Handle(Arc::new(Held {
            ep: ep.clone(),
            id,
            kind,
            pid: std::process::id(),
        }))
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        {
            let mut live = self.ep.live.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = live.get_mut(&self.id) {
                *n -= 1;
                if *n == 0 {
                    live.remove(&self.id);
                }
            }
        }
        if self.pid == std::process::id() {
            // A server that is gone has freed everything anyway.
            let _ = session_call(&self.ep, &Request::Decref(vec![self.id]));
        }
    }
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}#{} at {}", self.kind, self.id, self.ep.address)
    }
}

impl Handle {
    /// Create (or look up by name) an object; the session holds its reference.
    pub(crate) fn create(ep: &Arc<Endpoint>, req: Request) -> Result<Handle> {
        match session_call(ep, &req)? {
            Response::Created(id, kind) => Ok(Held::handle(ep, id, kind)),
            Response::Err(e) => Err(e.into()),
            other => Err(ManagerError::Protocol(format!("create answered {other:?}"))),
        }
    }

    /// The fencing token of this process's held acquisition of this lock
    /// (Redis managers only).
    pub(crate) fn fencing_token(&self) -> Option<u64> {
        #[cfg(feature = "redis")]
        if let Some(b) = self.ep.redis() {
            return b.token(self.id, self.kind);
        }
        None
    }

    /// A fenced write of this value (Redis managers only; see
    /// `ValueProxy::set_fenced`).
    pub(crate) fn fenced_set(&self, token: u64, v: &[u8]) -> Result<bool> {
        #[cfg(feature = "redis")]
        if let Some(b) = self.ep.redis() {
            return b.fenced_set(self.id, token, v);
        }
        let _ = (token, v);
        Err(ManagerError::Op(OpError::BadRequest(
            "a fenced write needs a Redis manager (Manager::redis)".into(),
        )))
    }

    /// Apply `op`; a refusal becomes `ManagerError::Op`.
    pub(crate) fn op(&self, op: procshare_model::manager::Op) -> Result<Response> {
        match call(&self.ep, &Request::Op(self.id, op))? {
            Response::Err(e) => Err(e.into()),
            r => Ok(r),
        }
    }

    pub(crate) fn serialize<S: serde::Serializer>(
        &self,
        s: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        // A child's arguments being exported: it will need the manager (a
        // Redis manager's proxy finds its server by its label instead).
        if self.ep.redis().is_none() {
            super::spawn::note(&self.ep);
            // A value being stored in a container: the container holds the
            // object (the unix/TCP server only; see `stored`).
            super::stored::note(&self.ep.address, self.id);
        }
        Token {
            address: self.ep.address.clone(),
            id: self.id,
            kind: self.kind,
        }
        .serialize(s)
    }

    /// A proxy from its token: takes a reference for this process (an error
    /// if the object is gone: every proxy to it was dropped meanwhile).
    pub(crate) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
        want: Kind,
    ) -> std::result::Result<Handle, D::Error> {
        use serde::de::Error;
        let t = Token::deserialize(d)?;
        if t.kind != want {
            return Err(D::Error::custom(format!(
                "expected a proxy to a {want:?}, found one to a {:?}",
                t.kind
            )));
        }
        #[cfg(feature = "redis")]
        let found = Endpoint::find(&t.address).or_else(|| Endpoint::redis_by_label(&t.address));
        #[cfg(not(feature = "redis"))]
        let found = Endpoint::find(&t.address);
        let ep = found.ok_or_else(|| {
            D::Error::custom(format!(
                "proxy refers to the manager at {}, unknown in this process (use Manager::connect)",
                t.address
            ))
        })?;
        match session_call(&ep, &Request::Incref(vec![t.id])) {
            Ok(Response::Ok) => Ok(Held::handle(&ep, t.id, t.kind)),
            Ok(r) => Err(D::Error::custom(format!(
                "proxy to {:?}#{} at {}: {r:?}",
                t.kind, t.id, t.address
            ))),
            Err(e) => Err(D::Error::custom(format!(
                "proxy to {:?}#{} at {}: {e}",
                t.kind, t.id, t.address
            ))),
        }
    }
}

/// Unexpected answer.
pub(crate) fn unexpected<T>(r: Response) -> Result<T> {
    Err(ManagerError::Protocol(format!("{r:?}")))
}
