//! `Listener` and `Client`: connections by address, authenticated with the
//! mutual HMAC challenge of [`crate::codec::auth`] (the manager's, the one
//! implementation).

use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::Mutex;

use super::{Connection, PipeError, Sock};
use crate::codec::auth::{self, AuthKey};
use crate::manager::Address;

/// An address family (CPython's `family` argument: `'AF_UNIX'`, `'AF_INET'`;
/// abstract unix names are CPython's `AF_UNIX` addresses starting with `"\0"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Family {
    /// A unix socket with a path in the file system ([`Address::Unix`]).
    Unix,
    /// A unix socket in Linux's abstract namespace: no file
    /// ([`Address::Abstract`]).
    Abstract,
    /// TCP ([`Address::Tcp`]).
    Tcp,
}

impl Family {
    /// Every family (CPython's `connection.families`, with the abstract one).
    pub const ALL: [Family; 3] = [Family::Unix, Family::Abstract, Family::Tcp];

    /// The family of `address`.
    ///
    /// ```
    /// use procshare::{Address, Family};
    /// assert_eq!(Family::of(&Address::Abstract(b"x".to_vec())), Family::Abstract);
    /// ```
    pub fn of(address: &Address) -> Family {
        match address {
            Address::Unix(_) => Family::Unix,
            Address::Abstract(_) => Family::Abstract,
            Address::Tcp(_) => Family::Tcp,
        }
    }
}

#[derive(Debug)]
enum ListenSock {
    Unix(UnixListener),
    Tcp(TcpListener),
}

/// What a listener removes when it is closed: its socket file, and the private
/// directory it made for it. Only by the process that bound it (a forked
/// child drops a copy too).
#[derive(Debug)]
struct Cleanup {
    path: PathBuf,
    dir: Option<PathBuf>,
    owner: u32,
}

/// A bound, listening socket that accepts [`Connection`]s: Python's
/// `multiprocessing.connection.Listener`.
///
/// With an `authkey`, every accepted connection first passes the mutual HMAC
/// challenge (the server challenges first; then the client challenges the
/// server), as CPython's `Listener(authkey=...)` does; a client without the key
/// is refused ([`PipeError::Auth`]) and `accept` can be called again.
///
/// ```
/// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
/// use procshare::{AuthKey, Client, Family, Listener, Process};
/// let key = AuthKey::new("secret");
/// let l = Listener::new(Family::Unix, Some(key.clone())).unwrap();
/// let addr = l.address().clone();
/// let mut p = Process::new(move || {
///     let c = Client::connect::<String, _>(addr, Some(&key)).unwrap();
///     c.send(&"hello".to_string()).unwrap();
/// });
/// p.start().unwrap();
/// let conn = l.accept::<String>().unwrap();
/// assert_eq!(conn.recv().unwrap(), "hello");
/// assert_eq!(p.join().unwrap(), 0);
/// ```
///
/// Closing (dropping) a listener bound to a unix path removes the socket
/// file, as CPython does (only in the process that bound it).
#[derive(Debug)]
pub struct Listener {
    sock: ListenSock,
    address: Address,
    authkey: Option<AuthKey>,
    last_accepted: Mutex<Option<Address>>,
    cleanup: Option<Cleanup>,
}

impl Listener {
    /// Listens on a fresh address of `family` (CPython's `Listener(family=...)`
    /// with no address): a socket in a new private (`0700`) directory, a random
    /// abstract name, or `127.0.0.1` on a free port.
    ///
    /// ```
    /// use procshare::{Family, Listener};
    /// for f in Family::ALL {
    ///     let l = Listener::new(f, None).unwrap();
    ///     assert_eq!(Family::of(l.address()), f);
    /// }
    /// ```
    pub fn new(family: Family, authkey: Option<AuthKey>) -> Result<Listener, PipeError> {
        match family {
            Family::Unix => {
                let dir =
                    crate::sys::io::private_dir(&std::env::temp_dir(), "procshare-listener-")?;
                let path = dir.join("listener.sock");
                match Listener::bind(Address::Unix(path), authkey) {
                    Ok(mut l) => {
                        if let Some(c) = &mut l.cleanup {
                            c.dir = Some(dir);
                        }
                        Ok(l)
                    }
                    Err(e) => {
                        let _ = std::fs::remove_dir_all(&dir);
                        Err(e)
                    }
                }
            }
            Family::Abstract => {
                let mut r = [0u8; 12];
                crate::sys::getrandom(&mut r)?;
                let mut name = b"procshare-listener-".to_vec();
                name.extend(r.iter().flat_map(|b| format!("{b:02x}").into_bytes()));
                Listener::bind(Address::Abstract(name), authkey)
            }
            Family::Tcp => Listener::bind(
                Address::Tcp(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
                authkey,
            ),
        }
    }

    /// Listens on `address` (an [`Address`], or a string as Python writes
    /// one: `"/path"`, `"\0abstract"`, `"host:port"`). An address in use is
    /// an error ([`PipeError::Io`], CPython's `OSError`).
    ///
    /// ```
    /// use procshare::{Client, Listener};
    /// let l = Listener::bind("\0procshare-doc-listener", None).unwrap();
    /// assert!(Listener::bind(l.address().clone(), None).is_err()); // in use
    /// let c = Client::connect::<u8, _>(l.address().clone(), None).unwrap();
    /// let d = l.accept::<u8>().unwrap();
    /// c.send(&7).unwrap();
    /// assert_eq!(d.recv().unwrap(), 7);
    /// ```
    pub fn bind<A>(address: A, authkey: Option<AuthKey>) -> Result<Listener, PipeError>
    where
        A: TryInto<Address>,
        PipeError: From<A::Error>,
    {
        let address = address.try_into()?;
        let (sock, address, cleanup) = match address {
            Address::Unix(path) => {
                let l = UnixListener::bind(&path)?;
                let c = Cleanup {
                    path: path.clone(),
                    dir: None,
                    owner: std::process::id(),
                };
                (ListenSock::Unix(l), Address::Unix(path), Some(c))
            }
            Address::Abstract(name) => {
                let l = UnixListener::bind_addr(&UnixAddr::from_abstract_name(&name)?)?;
                (ListenSock::Unix(l), Address::Abstract(name), None)
            }
            Address::Tcp(a) => {
                let l = TcpListener::bind(a)?;
                let local = l.local_addr()?;
                (ListenSock::Tcp(l), Address::Tcp(local), None)
            }
        };
        Ok(Listener {
            sock,
            address,
            authkey,
            last_accepted: Mutex::new(None),
            cleanup,
        })
    }

    /// Waits for a client, authenticates it (with a key) and returns the
    /// connection (Python's `accept()`). A client that fails the handshake is
    /// [`PipeError::Auth`]; the listener goes on.
    pub fn accept<T>(&self) -> Result<Connection<T>, PipeError> {
        let (sock, peer) = match &self.sock {
            ListenSock::Unix(l) => {
                let (s, a) = l.accept()?;
                let peer = match (a.as_pathname(), a.as_abstract_name()) {
                    (Some(p), _) => Address::Unix(p.to_path_buf()),
                    (None, Some(n)) => Address::Abstract(n.to_vec()),
                    (None, None) => Address::Unix(PathBuf::new()),
                };
                (Sock::Unix(s), peer)
            }
            ListenSock::Tcp(l) => {
                let (s, a) = l.accept()?;
                s.set_nodelay(true)?;
                (Sock::Tcp(s), Address::Tcp(a))
            }
        };
        *self.last_accepted.lock().unwrap_or_else(|p| p.into_inner()) = Some(peer);
        if let Some(key) = &self.authkey {
            auth::server_handshake(&mut &sock, key)?;
        }
        Ok(Connection::from_sock(sock, true, true))
    }

    /// The address it listens on (for TCP port 0: the port chosen).
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// The address of the last accepted peer (Python's `last_accepted`):
    /// `None` before the first `accept`; an unnamed unix peer (what a
    /// [`Client`] is) is `Address::Unix("")`, as CPython's is `''`.
    pub fn last_accepted(&self) -> Option<Address> {
        self.last_accepted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Closes the listening socket (Python's `close()`): as dropping it.
    pub fn close(self) {}
}

impl AsFd for Listener {
    /// The listening socket: readable when a client waits (for [`wait`](super::wait)).
    fn as_fd(&self) -> BorrowedFd<'_> {
        match &self.sock {
            ListenSock::Unix(l) => l.as_fd(),
            ListenSock::Tcp(l) => l.as_fd(),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(c) = &self.cleanup {
            if c.owner == std::process::id() {
                let _ = std::fs::remove_file(&c.path);
                if let Some(d) = &c.dir {
                    let _ = std::fs::remove_dir(d);
                }
            }
        }
    }
}

/// Opens connections to a [`Listener`]: Python's
/// `multiprocessing.connection.Client` (a function there, a namespace here).
#[derive(Debug)]
pub enum Client {}

impl Client {
    /// Connects to `address` (an [`Address`] or a string, as for
    /// [`Listener::bind`]) and, with `authkey`, passes the mutual HMAC
    /// challenge (answering the listener's, then challenging it). A listener
    /// with another key is [`PipeError::Auth`].
    ///
    /// ```
    /// use procshare::{AuthKey, Client, Family, Listener, PipeError};
    /// let l = Listener::new(Family::Tcp, Some(AuthKey::new("right"))).unwrap();
    /// let addr = l.address().clone();
    /// let t = std::thread::spawn(move || l.accept::<u8>().map(|_| ()));
    /// let c = Client::connect::<u8, _>(addr, Some(&AuthKey::new("wrong")));
    /// assert!(matches!(c, Err(PipeError::Auth(_))));
    /// assert!(matches!(t.join().unwrap(), Err(PipeError::Auth(_))));
    /// ```
    pub fn connect<T, A>(address: A, authkey: Option<&AuthKey>) -> Result<Connection<T>, PipeError>
    where
        A: TryInto<Address>,
        PipeError: From<A::Error>,
    {
        let sock = match address.try_into()? {
            Address::Unix(p) => Sock::Unix(UnixStream::connect(p)?),
            Address::Abstract(n) => {
                Sock::Unix(UnixStream::connect_addr(&UnixAddr::from_abstract_name(n)?)?)
            }
            Address::Tcp(a) => {
                let s = TcpStream::connect(a)?;
                s.set_nodelay(true)?;
                Sock::Tcp(s)
            }
        };
        if let Some(key) = authkey {
            auth::client_handshake(&mut &sock, key)?;
        }
        Ok(Connection::from_sock(sock, true, true))
    }
}
