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
use std::sync::{Arc, Mutex};

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

/// A server and how to reach it.
pub(crate) struct Endpoint {
    /// Unique in this process: keys this thread's cached connection.
    pub uid: u64,
    pub address: Address,
    pub authkey: AuthKey,
    pub limit: usize,
}

/// Every endpoint this process knows, for deserializing proxies.
static ENDPOINTS: Mutex<Vec<Arc<Endpoint>>> = Mutex::new(Vec::new());

impl Endpoint {
    pub(crate) fn new(address: Address, authkey: AuthKey, limit: usize) -> Arc<Endpoint> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Arc::new(Endpoint {
            uid: NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            address,
            authkey,
            limit,
        })
    }
    /// Make `ep` the one proxies to its address deserialize with.
    pub(crate) fn publish(ep: &Arc<Endpoint>) {
        let mut all = ENDPOINTS.lock().unwrap_or_else(|p| p.into_inner());
        all.retain(|e| e.address != ep.address);
        all.push(ep.clone());
    }
    pub(crate) fn unregister(ep: &Endpoint) {
        let mut all = ENDPOINTS.lock().unwrap_or_else(|p| p.into_inner());
        all.retain(|e| e.uid != ep.uid);
    }
    pub(crate) fn find(address: &Address) -> Option<Arc<Endpoint>> {
        let all = ENDPOINTS.lock().unwrap_or_else(|p| p.into_inner());
        all.iter().find(|e| &e.address == address).cloned()
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

thread_local! {
    /// This thread's connections: endpoint uid -> (pid that opened it, stream).
    static CONNS: RefCell<HashMap<u64, (u32, Stream)>> = RefCell::new(HashMap::new());
}

/// Take this thread's connection to `ep` (opening one if there is none, or if
/// the one cached was opened by another process: we are a forked child).
fn take_conn(ep: &Endpoint) -> Result<Stream> {
    let pid = std::process::id();
    let cached = CONNS
        .try_with(|c| c.borrow_mut().remove(&ep.uid))
        .ok()
        .flatten();
    match cached {
        Some((p, s)) if p == pid => Ok(s),
        Some((_, stale)) => {
            // Our parent's connection, inherited by fork: close our copy of
            // the descriptor (the parent's stays open) and never use it.
            drop(stale);
            connect(ep)
        }
        None => connect(ep),
    }
}

fn put_conn(ep: &Endpoint, s: Stream) {
    let pid = std::process::id();
    let _ = CONNS.try_with(|c| c.borrow_mut().insert(ep.uid, (pid, s)));
}

/// Drop this thread's cached connection to `ep`.
pub(crate) fn forget_connection(ep: &Endpoint) {
    let _ = CONNS.try_with(|c| c.borrow_mut().remove(&ep.uid));
}

/// Leak every cached connection without closing it (the server child calls
/// this after fork: the descriptors are closed wholesale there).
pub(crate) fn leak_connections() {
    let _ = CONNS.try_with(|c| std::mem::forget(c.take()));
}

/// One request, one answer, on this thread's connection.
pub(crate) fn call(ep: &Endpoint, req: &Request) -> Result<Response> {
    let mut s = take_conn(ep)?;
    wire::write_frame(&mut s, req)?;
    let r: Response = wire::read_frame(&mut s, ep.limit)?;
    put_conn(ep, s);
    Ok(r)
}

/// Several requests written back to back, then all answers read (pipelining).
pub(crate) fn call_pipelined(ep: &Endpoint, reqs: &[Request]) -> Result<Vec<Response>> {
    let mut s = take_conn(ep)?;
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
        s.write_all(&buf)?;
        for _ in chunk {
            out.push(wire::read_frame(&mut s, ep.limit)?);
        }
    }
    put_conn(ep, s);
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

/// A reference to one object of one server.
#[derive(Clone)]
pub(crate) struct Handle {
    pub ep: Arc<Endpoint>,
    pub id: ObjId,
    pub kind: Kind,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}#{} at {}", self.kind, self.id, self.ep.address)
    }
}

impl Handle {
    pub(crate) fn create(ep: &Arc<Endpoint>, req: Request) -> Result<Handle> {
        match call(ep, &req)? {
            Response::Created(id, kind) => Ok(Handle {
                ep: ep.clone(),
                id,
                kind,
            }),
            Response::Err(e) => Err(e.into()),
            other => Err(ManagerError::Protocol(format!("create answered {other:?}"))),
        }
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
        Token {
            address: self.ep.address.clone(),
            id: self.id,
            kind: self.kind,
        }
        .serialize(s)
    }

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
        let ep = Endpoint::find(&t.address).ok_or_else(|| {
            D::Error::custom(format!(
                "proxy refers to the manager at {}, unknown in this process (use Manager::connect)",
                t.address
            ))
        })?;
        Ok(Handle {
            ep,
            id: t.id,
            kind: t.kind,
        })
    }
}

/// Unexpected answer.
pub(crate) fn unexpected<T>(r: Response) -> Result<T> {
    Err(ManagerError::Protocol(format!("{r:?}")))
}
