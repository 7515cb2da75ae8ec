//! The server process: fork, listen, authenticate, serve each connection on a thread.

use super::client::{self, Endpoint, ManagerError, Result, Stream};
use crate::codec::auth::{self, AuthKey};
use crate::codec::wire::{self, WireError};
use crate::sys::proc::RawPid;
use procshare_model::manager::{
    serve_connection, Incoming, Registry, Request, Response, Served, Server, StdSync, Transport,
};
use std::io;
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

/// Fork the server process. In the parent: returns its pid (the listener is
/// closed in the parent). The child never returns.
/// `dir`: the server's private socket directory, removed by the server if it
/// exits because its parent died (otherwise the parent removes it at shutdown).
pub(crate) fn fork_server(
    listener: Listener,
    ep: &Endpoint,
    dir: Option<PathBuf>,
    registry: Registry,
) -> Result<RawPid> {
    let parent = crate::sys::proc::getpid();
    let key = ep.authkey.clone();
    let limit = ep.limit;
    // The child runs `child_main`, which never returns (it leaves with
    // `_exit`). In the parent the closure, and with it the parent's copy of the
    // listener, is dropped unused.
    crate::sys::fork::fork(move |_| child_main(listener, key, limit, parent, dir, registry))
        .map_err(ManagerError::Io)
}

fn exit(code: i32) -> ! {
    // Ends the process without running the parent's destructors.
    crate::sys::proc::exit(code)
}

fn child_main(
    listener: Listener,
    key: AuthKey,
    limit: usize,
    parent: RawPid,
    dir: Option<PathBuf>,
    registry: Registry,
) -> ! {
    // Our copies of the parent's cached connections are closed below, wholesale.
    client::leak_connections();
    crate::sys::proc::ignore_signal(crate::sys::proc::Ignored::Int);
    // Close every inherited descriptor but stdio and the listener, so the
    // server does not keep the parent's pipes and sockets open.
    let lfd = listener.fd() as u32;
    if lfd > 3 {
        crate::sys::proc::close_range(3, lfd - 1);
    }
    crate::sys::proc::close_range(lfd + 1, u32::MAX);
    watch_parent(parent, dir);
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
        let spawned = std::thread::Builder::new()
            .name(format!("conn-{conn}"))
            .spawn(move || serve(stream, &peer, conn, &server, &key, limit));
        if let Err(e) = spawned {
            log(&format!("cannot spawn a connection thread: {e}"));
        }
    }
}

/// Exit when the parent process dies (a pidfd becomes readable; without
/// pidfds, poll `getppid`).
fn watch_parent(parent: RawPid, dir: Option<PathBuf>) {
    let leave = move || -> ! {
        if let Some(d) = &dir {
            if let Err(e) = std::fs::remove_dir_all(d) {
                log(&format!("cannot remove {}: {e}", d.display()));
            }
        }
        exit(0)
    };
    let pidfd = crate::sys::proc::pidfd_open(parent);
    if crate::sys::proc::getppid() != parent {
        leave();
    }
    let r = std::thread::Builder::new()
        .name("parent-watch".into())
        .spawn(move || loop {
            if let Some(fd) = &pidfd {
                if matches!(crate::sys::io::readable(fd.as_fd(), None), Ok(true)) {
                    leave();
                }
            } else {
                std::thread::sleep(Duration::from_millis(200));
                if crate::sys::proc::getppid() != parent {
                    leave();
                }
            }
        });
    if r.is_err() {
        log("cannot start the parent watcher");
    }
}

/// A framed socket as the dispatch loop sees it.
struct Framed {
    s: Stream,
    limit: usize,
}

impl Transport for Framed {
    fn recv(&mut self) -> Incoming {
        match wire::read_frame_bytes(&mut self.s, self.limit) {
            Ok(b) => match wire::decode::<Request>(&b) {
                Ok(r) => Incoming::Request(r),
                Err(e) => Incoming::Garbage(e.to_string()),
            },
            Err(WireError::Closed) => Incoming::Closed,
            Err(e) => Incoming::Fatal(e.to_string()),
        }
    }
    fn send(&mut self, r: &Response) -> bool {
        wire::write_frame(&mut self.s, r).is_ok()
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
    let mut t = Framed { s, limit };
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
