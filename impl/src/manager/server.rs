//! The server process: fork, listen, authenticate, serve each connection on a thread.

use super::client::{self, Endpoint, ManagerError, Result, Stream};
use crate::codec::auth::{self, AuthKey};
use crate::codec::wire::{self, WireError};
use crate::sys::proc::RawPid;
use procshare_model::manager::{
    serve_connection, Incoming, Registry, Request, Response, Served, Server, StdSync, Transport,
};
use std::io::{self, Read, Write};
use std::net::TcpListener;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long an unauthenticated peer may take over the handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) enum Listener {
    Unix(UnixListener),
    Tcp(TcpListener),
}

impl Listener {
    /// The listening socket's descriptor, to cross an exec.
    pub(crate) fn into_fd(self) -> std::os::fd::OwnedFd {
        match self {
            Listener::Unix(l) => l.into(),
            Listener::Tcp(l) => l.into(),
        }
    }
    /// A listener from a descriptor made by [`Listener::into_fd`].
    pub(crate) fn from_fd(fd: std::os::fd::OwnedFd, tcp: bool) -> Listener {
        if tcp {
            Listener::Tcp(fd.into())
        } else {
            Listener::Unix(fd.into())
        }
    }
    fn fd(&self) -> i32 {
        match self {
            Listener::Unix(l) => l.as_raw_fd(),
            Listener::Tcp(l) => l.as_raw_fd(),
        }
    }
    fn accept(&self) -> io::Result<(Stream, String)> {
        match self {
            Listener::Unix(l) => l
                .accept()
                .map(|(s, _)| (Stream::Unix(s), "unix peer".into())),
            Listener::Tcp(l) => l.accept().map(|(s, a)| {
                let _ = s.set_nodelay(true);
                (Stream::Tcp(s), a.to_string())
            }),
        }
    }
}

/// A private `0700` directory for the socket (as `mkdtemp` makes one).
pub(crate) fn private_dir() -> Result<PathBuf> {
    crate::sys::io::private_dir(&std::env::temp_dir(), "procshare-manager-")
        .map_err(ManagerError::Io)
}

/// The server's diagnostics go to the [`log`] facade (target
/// `procshare::manager`), tagged with the server's pid.
fn log(msg: &str) {
    log::warn!(target: "procshare::manager", "manager[{}]: {msg}", std::process::id());
}

/// What the server runs before it serves (the manager's initializer).
pub(crate) type Init = Box<dyn FnOnce()>;

/// Fork the server process. In the parent: returns its pid (the listener is
/// closed in the parent) and the parent's end of the start-up socket (see
/// [`await_ready`]). The child never returns.
/// `dir`: the server's private socket directory, removed by the server if it
/// exits because its parent died (otherwise the parent removes it at shutdown).
/// `init`: run in the server before it serves (after it closed what it
/// inherited).
pub(crate) fn fork_server(
    listener: Listener,
    ep: &Endpoint,
    dir: Option<PathBuf>,
    init: Option<Init>,
    registry: Registry,
) -> Result<(RawPid, std::os::unix::net::UnixStream)> {
    let parent = crate::sys::proc::getpid();
    let key = ep.authkey.clone();
    let limit = ep.limit;
    let (mine, theirs) = std::os::unix::net::UnixStream::pair()?;
    // A panic in the initializer is reported without taking a lock.
    crate::process::install_panic_hook();
    // The child runs `child_main`, which never returns (it leaves with
    // `_exit`). In the parent the closure, and with it the parent's copy of the
    // listener and of the server's end of the start-up socket, is dropped unused.
    let pid = crate::sys::fork::fork(move |_| {
        child_main(listener, key, limit, parent, dir, theirs, init, registry)
    })
    .map_err(ManagerError::Io)?;
    Ok((pid, mine))
}

fn exit(code: i32) -> ! {
    // Ends the process without running the parent's destructors.
    crate::sys::proc::exit(code)
}

#[allow(clippy::too_many_arguments)]
fn child_main(
    listener: Listener,
    key: AuthKey,
    limit: usize,
    parent: RawPid,
    dir: Option<PathBuf>,
    ready: std::os::unix::net::UnixStream,
    init: Option<Init>,
    registry: Registry,
) -> ! {
    // Our copies of the parent's manager connections are closed below, wholesale.
    client::leak_connections();
    // Close every inherited descriptor but stdio, the listener and the
    // start-up socket, so the server does not keep the parent's pipes and
    // sockets open.
    let mut keep = [listener.fd() as u32, ready.as_raw_fd() as u32];
    keep.sort_unstable();
    let mut from = 3;
    for k in keep {
        if k > from {
            crate::sys::proc::close_range(from, k - 1);
        }
        from = from.max(k + 1);
    }
    crate::sys::proc::close_range(from, u32::MAX);
    run(
        listener, key, limit, parent, dir, false, ready, init, registry,
    )
}

/// The server process's life once started (by fork, spawn or the fork
/// server): ignore `SIGINT`, watch the owner, run the initializer, tell the
/// owner it is ready (the start-up socket), serve. Never returns.
/// `served`: started by the fork server, whose child it is (not the owner's).
#[allow(clippy::too_many_arguments)]
pub(crate) fn run(
    listener: Listener,
    key: AuthKey,
    limit: usize,
    owner: RawPid,
    dir: Option<PathBuf>,
    served: bool,
    mut ready: std::os::unix::net::UnixStream,
    init: Option<Init>,
    registry: Registry,
) -> ! {
    crate::sys::proc::ignore_signal(crate::sys::proc::Ignored::Int);
    watch_parent(owner, dir, served);
    if let Some(f) = init {
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err() {
            // The panic hook printed the message on stderr.
            let _ = ready.write_all(b"the initializer panicked");
            exit(1);
        }
    }
    let _ = ready.write_all(READY);
    drop(ready);
    let server = Arc::new(Server::<StdSync>::with_registry(registry));
    let key = Arc::new(key);
    let next_conn = AtomicU64::new(1);
    loop {
        let (stream, peer) = match listener.accept() {
            Ok(x) => x,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                log(&format!("accept failed: {e}"));
                // e.g. EMFILE: back off briefly instead of spinning.
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let conn = next_conn.fetch_add(1, Ordering::Relaxed);
        let server = server.clone();
        let key = key.clone();
        // procshare's own thread start (see `spawn_helper`: a forked server
        // must not take std's thread-start lock).
        let spawned = crate::sys::thread::spawn_helper(format!("conn-{conn}"), move || {
            serve(stream, &peer, conn, &server, &key, limit)
        });
        if let Err(e) = spawned {
            log(&format!("cannot spawn a connection thread: {e}"));
        }
    }
}

/// What a server that is ready to serve writes on its start-up socket.
const READY: &[u8] = b"ready";

/// In the owner: wait until the server is ready to serve (its initializer
/// ran), as CPython's `BaseManager.start` waits for the server's address. A
/// server that died first, or whose initializer panicked, is an error.
/// `pidfd`: the server's, so that its death ends the wait even if another
/// child forked meanwhile holds a copy of the server's end of the socket.
pub(crate) fn await_ready(
    mut s: std::os::unix::net::UnixStream,
    pidfd: Option<std::os::fd::BorrowedFd<'_>>,
) -> Result<()> {
    use crate::sys::io::{PollFd, PollFlags};
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        if got.starts_with(READY) {
            return Ok(());
        }
        let (readable, died) = {
            let mut p = vec![PollFd::new(&s, PollFlags::IN)];
            if let Some(fd) = &pidfd {
                p.push(PollFd::new(fd, PollFlags::IN));
            }
            crate::sys::io::poll(&mut p, None)?;
            (
                !p[0].revents().is_empty(),
                p.get(1).is_some_and(|x| !x.revents().is_empty()),
            )
        };
        if readable {
            let n = s.read(&mut buf)?;
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            if got.len() > 4096 {
                break;
            }
        } else if died {
            break;
        }
    }
    let why = if got.is_empty() {
        "it exited before it was ready".to_string()
    } else {
        String::from_utf8_lossy(&got).into_owned()
    };
    Err(ManagerError::Io(io::Error::other(format!(
        "the manager's server did not start: {why}"
    ))))
}

/// Exit when the owner dies (a pidfd becomes readable; without pidfds, poll
/// `getppid`). A server started by the fork server (`served`) is not the
/// owner's child: it watches the owner's pidfd all the same, and without one
/// its parent, the fork server, which exits when the owner dies.
fn watch_parent(parent: RawPid, dir: Option<PathBuf>, served: bool) {
    let leave = move || -> ! {
        if let Some(d) = &dir {
            if let Err(e) = std::fs::remove_dir_all(d) {
                log(&format!("cannot remove {}: {e}", d.display()));
            }
        }
        exit(0)
    };
    let pidfd = crate::sys::proc::pidfd_open(parent);
    let ppid = if served {
        crate::sys::proc::getppid()
    } else {
        parent
    };
    if crate::sys::proc::getppid() != ppid {
        leave();
    }
    let r = crate::sys::thread::spawn_helper("parent-watch".into(), move || loop {
        if let Some(fd) = &pidfd {
            if matches!(crate::sys::io::readable(fd.as_fd(), None), Ok(true)) {
                leave();
            }
        } else {
            std::thread::sleep(Duration::from_millis(200));
            if crate::sys::proc::getppid() != ppid {
                leave();
            }
        }
    });
    if r.is_err() {
        log("cannot start the parent watcher");
    }
}

/// An answer buffer above this capacity is not kept for the next answer.
const BIG_ANSWER: usize = 1 << 20;

/// A framed socket as the dispatch loop sees it. Its buffers live as long as
/// the connection: a request that arrived whole is read with one `read`
/// (pipelined ones together), and an answer is encoded into the same reused
/// buffer and written with one `write`, with no allocation for either.
struct Framed {
    s: Stream,
    limit: usize,
    rd: wire::FrameBuf,
    wr: Vec<u8>,
}

impl Transport for Framed {
    fn recv(&mut self) -> Incoming {
        match self.rd.read_frame(&mut self.s, self.limit) {
            Ok(b) => match wire::decode::<Request>(b) {
                Ok(r) => Incoming::Request(r),
                Err(e) => Incoming::Garbage(e.to_string()),
            },
            Err(WireError::Closed) => Incoming::Closed,
            Err(e) => Incoming::Fatal(e.to_string()),
        }
    }
    fn send(&mut self, r: &Response) -> bool {
        let sent =
            wire::encode_frame_into(r, &mut self.wr).is_ok() && self.s.write_all(&self.wr).is_ok();
        if self.wr.capacity() > BIG_ANSWER {
            // A large answer (a whole list, say) went: give its room back.
            self.wr = Vec::new();
        }
        sent
    }
    fn peer_gone(&self) -> bool {
        let fd = match &self.s {
            Stream::Unix(u) => u.as_fd(),
            Stream::Tcp(t) => t.as_fd(),
        };
        crate::sys::io::peer_hung_up(fd)
    }
}

fn set_timeout(s: &Stream, t: Option<Duration>) {
    let _ = match s {
        Stream::Unix(u) => u.set_read_timeout(t),
        Stream::Tcp(u) => u.set_read_timeout(t),
    };
}

fn serve(
    mut s: Stream,
    peer: &str,
    conn: u64,
    server: &Server<StdSync>,
    key: &AuthKey,
    limit: usize,
) {
    set_timeout(&s, Some(HANDSHAKE_TIMEOUT));
    if let Err(e) = auth::server_handshake(&mut s, key) {
        log(&format!("refused connection from {peer}: {e}"));
        return;
    }
    set_timeout(&s, None);
    let mut t = Framed {
        s,
        limit,
        rd: wire::FrameBuf::new(),
        wr: Vec::new(),
    };
    if serve_connection(server, conn, &mut t) == Served::Shutdown {
        exit(0);
    }
}

/// Wait for the server process to exit, killing it first if `kill` (it did
/// not acknowledge a shutdown request).
pub(crate) fn reap(pid: RawPid, kill: bool) -> Result<Option<i32>> {
    if kill {
        let _ = crate::sys::proc::send_signal(None, pid, crate::sys::proc::Sig::Kill);
    }
    // ECHILD: someone else reaped it; it is gone either way (code unknown).
    Ok(crate::sys::proc::wait_child(pid, true).ok().flatten())
}
