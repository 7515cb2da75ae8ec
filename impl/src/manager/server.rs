//! The server process: fork, listen, authenticate, serve each connection on a thread.

use super::client::{self, Endpoint, ManagerError, Result, Stream};
use crate::auth::{self, AuthKey};
use crate::wire::{self, WireError};
use procshare_model::manager::{
    serve_connection, Incoming, Request, Response, Served, Server, StdSync, Transport,
};
use std::io;
use std::net::TcpListener;
use std::os::fd::AsRawFd;
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

/// A private `0700` directory for the socket (`mkdtemp`).
pub(crate) fn private_dir() -> Result<PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    let template = std::env::temp_dir().join("procshare-manager-XXXXXX");
    let mut buf = template.into_os_string().into_vec();
    if buf.contains(&0) {
        return Err(ManagerError::Io(io::Error::other(
            "temp dir path contains NUL",
        )));
    }
    buf.push(0);
    // SAFETY: `buf` is a NUL-terminated, writable template; mkdtemp creates a
    // directory with mode 0700 and rewrites the X's in place.
    let p = unsafe { libc::mkdtemp(buf.as_mut_ptr().cast()) };
    if p.is_null() {
        return Err(ManagerError::Io(io::Error::last_os_error()));
    }
    buf.pop();
    Ok(PathBuf::from(std::ffi::OsString::from_vec(buf)))
}

/// Write a line to stderr with a raw `write(2)` (no std lock: the server is a
/// forked child, and std's stderr lock may have been held by a parent thread).
fn log(msg: &str) {
    let line = format!("procshare manager[{}]: {msg}\n", std::process::id());
    let b = line.as_bytes();
    // SAFETY: writing a valid buffer to fd 2; failure is ignored.
    unsafe {
        libc::write(2, b.as_ptr().cast(), b.len());
    }
}

/// Fork the server process. In the parent: returns its pid (the listener is
/// closed in the parent). The child never returns.
/// `dir`: the server's private socket directory, removed by the server if it
/// exits because its parent died (otherwise the parent removes it at shutdown).
pub(crate) fn fork_server(
    listener: Listener,
    ep: &Endpoint,
    dir: Option<PathBuf>,
) -> Result<libc::pid_t> {
    // SAFETY: getpid is a plain syscall.
    let parent = unsafe { libc::getpid() };
    let key = ep.authkey.clone();
    let limit = ep.limit;
    crate::platform::before_fork();
    // SAFETY: fork; the child runs only `child_main`, which never returns and
    // leaves with `_exit`. It touches no lock another parent thread may hold
    // (glibc's malloc is reset by its own atfork handlers; logging uses raw write).
    match unsafe { nix::unistd::fork() } {
        Err(e) => Err(ManagerError::Io(e.into())),
        Ok(nix::unistd::ForkResult::Child) => child_main(listener, key, limit, parent, dir),
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            drop(listener);
            Ok(child.as_raw())
        }
    }
}

fn exit(code: i32) -> ! {
    // SAFETY: _exit ends the process without running the parent's destructors.
    unsafe { libc::_exit(code) }
}

fn child_main(
    listener: Listener,
    key: AuthKey,
    limit: usize,
    parent: libc::pid_t,
    dir: Option<PathBuf>,
) -> ! {
    // Our copies of the parent's cached connections are closed below, wholesale.
    client::leak_connections();
    // SAFETY: a signal disposition is a process-wide setting of our own process.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
    }
    // Close every inherited descriptor but stdio and the listener, so the
    // server does not keep the parent's pipes and sockets open.
    let lfd = listener.fd() as libc::c_uint;
    // SAFETY: closing descriptors we own (this process's copies after fork);
    // nothing in this process uses them afterwards.
    unsafe {
        if lfd > 3 {
            libc::syscall(
                libc::SYS_close_range,
                3 as libc::c_uint,
                lfd - 1,
                0 as libc::c_uint,
            );
        }
        libc::syscall(
            libc::SYS_close_range,
            lfd + 1,
            libc::c_uint::MAX,
            0 as libc::c_uint,
        );
    }
    watch_parent(parent, dir);
    let server = Arc::new(Server::<StdSync>::new());
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
fn watch_parent(parent: libc::pid_t, dir: Option<PathBuf>) {
    let leave = move || -> ! {
        if let Some(d) = &dir {
            if let Err(e) = std::fs::remove_dir_all(d) {
                log(&format!("cannot remove {}: {e}", d.display()));
            }
        }
        exit(0)
    };
    // SAFETY: pidfd_open on a pid; returns a new fd or -1.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, parent, 0) } as i32;
    // SAFETY: getppid is a plain syscall.
    if unsafe { libc::getppid() } != parent {
        leave();
    }
    let r = std::thread::Builder::new()
        .name("parent-watch".into())
        .spawn(move || loop {
            if pidfd >= 0 {
                let mut p = libc::pollfd {
                    fd: pidfd,
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: poll on one valid pollfd.
                let n = unsafe { libc::poll(&mut p, 1, -1) };
                if n > 0 {
                    leave();
                }
            } else {
                std::thread::sleep(Duration::from_millis(200));
                // SAFETY: getppid is a plain syscall.
                if unsafe { libc::getppid() } != parent {
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
            Stream::Unix(u) => u.as_raw_fd(),
            Stream::Tcp(t) => t.as_raw_fd(),
        };
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLRDHUP,
            revents: 0,
        };
        // SAFETY: poll on one valid pollfd, without waiting.
        let n = unsafe { libc::poll(&mut p, 1, 0) };
        n > 0 && p.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0
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
pub(crate) fn reap(pid: libc::pid_t, kill: bool) -> Result<()> {
    if kill {
        // SAFETY: kill our own child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    loop {
        let mut status = 0;
        // SAFETY: waitpid on our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if r < 0 && e.kind() == io::ErrorKind::Interrupted {
            continue;
        }
        // ECHILD: someone else reaped it; it is gone either way.
        return Ok(());
    }
}
