//! CPython 3.11's `multiprocessing.connection` tests, ported: `_TestConnection`,
//! `_TestListener`, `_TestListenerClient`, `_TestPoll`,
//! `_TestPicklingConnections` and `TestWait` of `Lib/test/_test_multiprocessing.py`,
//! one Rust test per CPython test method (a module per class, the test named
//! after the method), with CPython's assertions, over real (forked) processes.
//!
//! What differs, and why:
//! * Timing assertions (`assertTimingAlmostEqual`, `assertLess(delta, ...)`)
//!   are left out: this suite asserts no durations (a wait's lower bound, which
//!   the timeout guarantees, is kept). CPython's `time.sleep`s that only give a
//!   child time to get somewhere are replaced by an `Event` or a `join`; the
//!   ones that pace a child (`_child_strings`, the `slow` variants of
//!   `TestWait`) by a random number of `yield_now`s.
//! * Python's `conn.close()` followed by a use of `conn` (`test_context` of
//!   `_TestConnection` and `_TestListener`: `closed` becomes true, `recv`/`accept`
//!   raise `OSError`) cannot be written: `close` consumes the handle, and a use
//!   after it is a compile error. The `closed == False` assertions inside the
//!   `with` are kept.
//! * `test_connection` checks `type(conn.fileno()) == int`: here `AsFd`,
//!   checked as a descriptor that `wait` accepts.
//! * `test_missing_fd_transfer`: CPython's child writes one byte on the socket
//!   without framing; here every message is a frame, so the child sends a
//!   one-byte message without a descriptor (the same point: a message with no
//!   descriptor attached is an error from `recv_handle`).
//! * `test_wait_integer` waits on `Process::sentinel()` (the child's pidfd,
//!   readable once the child has ended), as CPython waits on `p.sentinel`.
//!
//! Not applicable: none of the 27 methods. Tests run one at a time (the
//! `SERIAL` lock): a child forked by one test inherits every descriptor of
//! the others, which would delay the end-of-file some of them wait for.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use procshare::{
    wait, Address, Client, Connection, Event, Family, Listener, Pipe, PipeError, Process, Semaphore,
};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    procshare::set_fork_warning(false);
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// CPython's `SENTINEL = latin('')`.
const SENTINEL: &[u8] = b"";

/// CPython's `_echo`: echo byte messages until the empty one.
fn echo(conn: &Connection<()>) {
    loop {
        let msg = conn.recv_bytes(None).unwrap();
        if msg == SENTINEL {
            break;
        }
        conn.send_bytes(&msg, 0, None).unwrap();
    }
}

fn forked(f: impl FnOnce() + Send + 'static) -> Process {
    let mut p = Process::new(f);
    p.start().unwrap();
    p
}

/// A few microseconds to a few milliseconds of delay, without sleeping.
fn dawdle() {
    use rand::Rng;
    for _ in 0..rand::thread_rng().gen_range(0..20_000) {
        std::thread::yield_now();
    }
}

fn i32s(b: &[u8]) -> Vec<i32> {
    b.chunks(4)
        .map(|c| i32::from_ne_bytes(c.try_into().unwrap()))
        .collect()
}

fn is_fd_assigned(fd: i32) -> bool {
    // SAFETY: F_GETFD reads the descriptor's flags; no memory is touched.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

fn temp_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("procshare-cpyconn-{}-{name}", std::process::id()))
}

mod _test_connection {
    use super::*;

    #[test]
    fn test_connection() {
        let _s = serial();
        let (conn, child_conn) = Pipe::<()>::new(true).unwrap();
        let mut p = forked(move || echo(&child_conn));

        let seq: Vec<Option<f64>> = vec![Some(1.0), Some(2.25), None];
        let msg = b"hello world".to_vec();
        let longmsg = msg.repeat(10);
        let arr: Vec<u8> = (0..4i32).flat_map(|i| i.to_ne_bytes()).collect();

        // type(conn.fileno()) == int: a descriptor `wait` takes.
        assert!(wait([&conn], Some(Duration::ZERO)).unwrap().is_empty());

        let seqc = conn.retype::<Vec<Option<f64>>>();
        seqc.send(&seq).unwrap();
        assert_eq!(seqc.recv().unwrap(), seq);

        conn.send_bytes(&msg, 0, None).unwrap();
        assert_eq!(conn.recv_bytes(None).unwrap(), msg);

        let mut buffer = [0u8; 40];
        let mut expected = vec![0, 1, 2, 3];
        expected.resize(10, 0);
        conn.send_bytes(&arr, 0, None).unwrap();
        assert_eq!(conn.recv_bytes_into(&mut buffer, 0).unwrap(), 16);
        assert_eq!(i32s(&buffer), expected);

        let mut buffer = [0u8; 40];
        let mut expected = vec![0, 0, 0, 0, 1, 2, 3];
        expected.resize(10, 0);
        conn.send_bytes(&arr, 0, None).unwrap();
        assert_eq!(conn.recv_bytes_into(&mut buffer, 3 * 4).unwrap(), 16);
        assert_eq!(i32s(&buffer), expected);

        let mut buffer = [b' '; 40];
        conn.send_bytes(&longmsg, 0, None).unwrap();
        match conn.recv_bytes_into(&mut buffer, 0) {
            Err(PipeError::BufferTooShort(m)) => assert_eq!(m, longmsg),
            other => panic!("expected BufferTooShort, got {other:?}"),
        }

        assert!(!conn.poll(Some(Duration::ZERO)).unwrap()); // poll()
        assert!(!conn.poll(Some(Duration::ZERO)).unwrap()); // poll(-1)
        assert!(!conn.poll(Some(Duration::from_millis(100))).unwrap()); // poll(TIMEOUT1)

        let nonec = conn.retype::<Option<()>>();
        nonec.send(&None).unwrap();
        // (CPython sleeps 0.1 s so that poll(TIMEOUT1) finds the echo.)
        assert!(conn.poll(Some(Duration::from_secs(60))).unwrap());
        assert_eq!(nonec.recv().unwrap(), None);

        let really_big_msg = vec![b'X'; 1024 * 1024 * 16];
        conn.send_bytes(&really_big_msg, 0, None).unwrap();
        assert!(conn.recv_bytes(None).unwrap() == really_big_msg);

        // Tell the child to quit. (child_conn.close(): the parent's copy was
        // dropped with the closure after start.)
        conn.send_bytes(SENTINEL, 0, None).unwrap();
        assert!(conn.readable());
        assert!(conn.writable());
        assert_eq!(p.join().unwrap(), 0);
        assert!(matches!(seqc.recv(), Err(PipeError::Closed)));
        assert!(matches!(conn.recv_bytes(None), Err(PipeError::Closed)));
    }

    #[test]
    fn test_duplex_false() {
        let _s = serial();
        let (reader, writer) = Pipe::<i32>::new(false).unwrap();
        writer.send(&1).unwrap();
        assert_eq!(reader.recv().unwrap(), 1);
        assert!(reader.readable());
        assert!(!reader.writable());
        assert!(!writer.readable());
        assert!(writer.writable());
        assert!(matches!(reader.send(&2), Err(PipeError::WrongDirection(_))));
        assert!(matches!(writer.recv(), Err(PipeError::WrongDirection(_))));
        assert!(matches!(
            writer.poll(Some(Duration::ZERO)),
            Err(PipeError::WrongDirection(_))
        ));
    }

    #[test]
    fn test_spawn_close() {
        let _s = serial();
        let (conn, child_conn) = Pipe::<()>::new(true).unwrap();
        let mut p = forked(move || echo(&child_conn));
        // child_conn.close(): the parent's copy went with the closure at start.
        let msg = b"hello";
        conn.send_bytes(msg, 0, None).unwrap();
        assert_eq!(conn.recv_bytes(None).unwrap(), msg);
        conn.send_bytes(SENTINEL, 0, None).unwrap();
        conn.close();
        assert_eq!(p.join().unwrap(), 0);
    }

    #[test]
    fn test_sendbytes() {
        let _s = serial();
        let msg = b"abcdefghijklmnopqrstuvwxyz";
        let (a, b) = Pipe::<()>::new(true).unwrap();

        a.send_bytes(msg, 0, None).unwrap();
        assert_eq!(b.recv_bytes(None).unwrap(), msg);

        a.send_bytes(msg, 5, None).unwrap();
        assert_eq!(b.recv_bytes(None).unwrap(), &msg[5..]);

        a.send_bytes(msg, 7, Some(8)).unwrap();
        assert_eq!(b.recv_bytes(None).unwrap(), &msg[7..7 + 8]);

        a.send_bytes(msg, 26, None).unwrap();
        assert_eq!(b.recv_bytes(None).unwrap(), b"");

        a.send_bytes(msg, 26, Some(0)).unwrap();
        assert_eq!(b.recv_bytes(None).unwrap(), b"");

        let range_err = |r| matches!(r, Err(PipeError::OutOfRange { .. }));
        assert!(range_err(a.send_bytes(msg, 27, None)));
        assert!(range_err(a.send_bytes(msg, 22, Some(5))));
        assert!(range_err(a.send_bytes(msg, 26, Some(1))));
        // send_bytes(msg, -1) and send_bytes(msg, 4, -1): a negative offset or
        // size is not a `usize` (a compile error); the largest ones are refused.
        assert!(range_err(a.send_bytes(msg, usize::MAX, None)));
        assert!(range_err(a.send_bytes(msg, 4, Some(usize::MAX))));
        // Nothing was sent by the refused calls.
        assert!(!b.poll(Some(Duration::ZERO)).unwrap());
    }

    /// CPython's `_writefd`: receive a descriptor, write `data` to it.
    fn writefd(conn: &Connection<()>, data: &[u8], create_dummy_fds: bool) {
        if create_dummy_fds {
            for i in 0..256 {
                if !is_fd_assigned(i) {
                    // SAFETY: dup2 onto a free descriptor number, which this
                    // child then never closes (it exits).
                    unsafe { libc::dup2(conn.as_fd().as_raw_fd(), i) };
                }
            }
        }
        let fd = conn.recv_handle().unwrap();
        std::fs::File::from(fd).write_all(data).unwrap();
    }

    #[test]
    fn test_fd_transfer() {
        let _s = serial();
        let (conn, child_conn) = Pipe::<()>::new(true).unwrap();
        let mut p = forked(move || writefd(&child_conn, b"foo", false));
        let path = temp_path("fd_transfer");
        {
            let f = std::fs::File::create(&path).unwrap();
            conn.send_handle(f.as_fd()).unwrap();
        }
        assert_eq!(p.join().unwrap(), 0);
        assert_eq!(std::fs::read(&path).unwrap(), b"foo");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn test_large_fd_transfer() {
        let _s = serial();
        let (conn, child_conn) = Pipe::<()>::new(true).unwrap();
        let mut p = forked(move || writefd(&child_conn, b"bar", true));
        let path = temp_path("large_fd_transfer");
        {
            let f = std::fs::File::create(&path).unwrap();
            let newfd = (256..65536).find(|&n| !is_fd_assigned(n)).unwrap();
            // SAFETY: dup2 onto a free descriptor number, owned from here on
            // by `large` (closed when it drops).
            let large = unsafe {
                assert_eq!(libc::dup2(f.as_raw_fd(), newfd), newfd);
                OwnedFd::from_raw_fd(newfd)
            };
            conn.send_handle(large.as_fd()).unwrap();
        }
        assert_eq!(p.join().unwrap(), 0);
        assert_eq!(std::fs::read(&path).unwrap(), b"bar");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn test_missing_fd_transfer() {
        let _s = serial();
        let (conn, child_conn) = Pipe::<()>::new(true).unwrap();
        let mut p = forked(move || child_conn.send_bytes(b"\0", 0, None).unwrap());
        assert!(matches!(conn.recv_handle(), Err(PipeError::NoHandle)));
        assert_eq!(p.join().unwrap(), 0);
    }

    #[test]
    fn test_context() {
        let _s = serial();
        let (a, b) = Pipe::<i32>::new(true).unwrap();
        {
            a.send(&1729).unwrap();
            assert_eq!(b.recv().unwrap(), 1729);
            assert!(!a.is_closed());
            assert!(!b.is_closed());
        }
        a.close();
        b.close();
        // (a.closed, b.closed, a.recv() -> OSError: a use after close does not compile.)
    }
}

mod _test_listener {
    use super::*;

    #[test]
    fn test_multiple_bind() {
        let _s = serial();
        for family in Family::ALL {
            let l = Listener::new(family, None).unwrap();
            assert!(matches!(
                Listener::bind(l.address().clone(), None),
                Err(PipeError::Io(_))
            ));
        }
    }

    #[test]
    fn test_context() {
        let _s = serial();
        {
            let l = Listener::new(Family::Unix, None).unwrap();
            let c = Client::connect::<i32, _>(l.address().clone(), None).unwrap();
            let d = l.accept::<i32>().unwrap();
            c.send(&1729).unwrap();
            assert_eq!(d.recv().unwrap(), 1729);
        }
        // (l.accept() after the with -> OSError: a use after close does not compile.)
    }

    #[test]
    fn test_abstract_socket() {
        let _s = serial();
        let name = format!("\0something-{}", std::process::id());
        {
            let listener = Listener::bind(name.as_str(), None).unwrap();
            assert!(matches!(listener.address(), Address::Abstract(_)));
            let client = Client::connect::<i32, _>(listener.address().clone(), None).unwrap();
            let d = listener.accept::<i32>().unwrap();
            client.send(&1729).unwrap();
            assert_eq!(d.recv().unwrap(), 1729);
        }
    }
}

mod _test_listener_client {
    use super::*;

    /// CPython's `_test`: connect, send 'hello', close.
    fn test_child(address: Address) {
        let conn = Client::connect::<String, _>(address, None).unwrap();
        conn.send(&"hello".to_string()).unwrap();
        conn.close();
    }

    #[test]
    fn test_listener_client() {
        let _s = serial();
        for family in Family::ALL {
            let l = Listener::new(family, None).unwrap();
            let addr = l.address().clone();
            let mut p = forked(move || test_child(addr));
            let conn = l.accept::<String>().unwrap();
            assert_eq!(conn.recv().unwrap(), "hello");
            assert_eq!(p.join().unwrap(), 0);
            l.close();
        }
    }

    #[test]
    fn test_issue14725() {
        let _s = serial();
        let l = Listener::new(Family::Unix, None).unwrap();
        let addr = l.address().clone();
        let mut p = forked(move || test_child(addr));
        // CPython sleeps 1 s so that the client has connected, written and
        // closed before the accept: joining it makes sure.
        assert_eq!(p.join().unwrap(), 0);
        let conn = l.accept::<String>().unwrap();
        assert_eq!(conn.recv().unwrap(), "hello");
        conn.close();
        l.close();
    }

    #[test]
    fn test_issue16955() {
        let _s = serial();
        for family in Family::ALL {
            let l = Listener::new(family, None).unwrap();
            let c = Client::connect::<(), _>(l.address().clone(), None).unwrap();
            let a = l.accept::<()>().unwrap();
            a.send_bytes(b"hello", 0, None).unwrap();
            assert!(c.poll(Some(Duration::from_secs(1))).unwrap());
            a.close();
            c.close();
            l.close();
        }
    }
}

mod _test_poll {
    use super::*;

    #[test]
    fn test_empty_string() {
        let _s = serial();
        let (a, b) = Pipe::<()>::new(true).unwrap();
        assert!(!a.poll(Some(Duration::ZERO)).unwrap());
        b.send_bytes(b"", 0, None).unwrap();
        assert!(a.poll(Some(Duration::ZERO)).unwrap());
        assert!(a.poll(Some(Duration::ZERO)).unwrap());
    }

    #[test]
    fn test_strings() {
        let _s = serial();
        let strings: [&[u8]; 8] = [b"hello", b"", b"a", b"b", b"", b"bye", b"", b"lop"];
        let (a, b) = Pipe::<()>::new(true).unwrap();
        let mut p = forked(move || {
            for s in strings {
                dawdle();
                b.send_bytes(s, 0, None).unwrap();
            }
            b.close();
        });
        for s in strings {
            for _ in 0..200 {
                if a.poll(Some(Duration::from_millis(10))).unwrap() {
                    break;
                }
            }
            let x = a.recv_bytes(None).unwrap();
            assert_eq!(s, x);
        }
        assert_eq!(p.join().unwrap(), 0);
    }

    #[test]
    fn test_boundaries() {
        let _s = serial();
        let (r, w) = Pipe::<()>::new(false).unwrap();
        let polling = Event::new().unwrap();
        let ev = polling.clone();
        let rc = r.clone();
        let mut p = forked(move || {
            // Polling must not pull in part of a message.
            ev.set();
            rc.poll(Some(Duration::from_secs(5))).unwrap();
        });
        // (CPython sleeps 2 s so that the child polls before the sends.)
        polling.wait();
        let l: [&[u8]; 2] = [b"first", b"second"];
        for obj in l {
            w.send_bytes(obj, 0, None).unwrap();
        }
        w.close();
        assert_eq!(p.join().unwrap(), 0);
        assert!(l.contains(&r.recv_bytes(None).unwrap().as_slice()));
    }

    #[test]
    fn test_dont_merge() {
        let _s = serial();
        let (a, b) = Pipe::<()>::new(true).unwrap();
        assert!(!a.poll(Some(Duration::ZERO)).unwrap());
        assert!(!a.poll(Some(Duration::from_millis(100))).unwrap());

        let mut p = forked(move || {
            b.send_bytes(b"a", 0, None).unwrap();
            b.send_bytes(b"b", 0, None).unwrap();
            b.send_bytes(b"cd", 0, None).unwrap();
        });

        assert_eq!(a.recv_bytes(None).unwrap(), b"a");
        assert!(a.poll(Some(Duration::from_secs(1))).unwrap());
        assert!(a.poll(Some(Duration::from_secs(1))).unwrap());
        assert_eq!(a.recv_bytes(None).unwrap(), b"b");
        assert!(a.poll(Some(Duration::from_secs(1))).unwrap());
        assert!(a.poll(Some(Duration::from_secs(1))).unwrap());
        assert!(a.poll(Some(Duration::ZERO)).unwrap());
        assert_eq!(a.recv_bytes(None).unwrap(), b"cd");

        assert_eq!(p.join().unwrap(), 0);
    }
}

mod _test_pickling_connections {
    use super::*;

    /// CPython's `_listener`: for each family, listen, send the address,
    /// accept, send the accepted connection; then the same with a plain TCP
    /// socket; then wait for the parent's word.
    fn listener(conn: Connection<Option<Address>>) {
        for family in Family::ALL {
            let l = Listener::new(family, None).unwrap();
            conn.send(&Some(l.address().clone())).unwrap();
            let new_conn = l.accept::<Vec<u8>>().unwrap();
            conn.send_connection(&new_conn).unwrap();
            new_conn.close();
            l.close();
        }
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        conn.send(&Some(Address::Tcp(l.local_addr().unwrap())))
            .unwrap();
        let (new_conn, _) = l.accept().unwrap();
        conn.send_handle(new_conn.as_fd()).unwrap();
        drop(new_conn);
        drop(l);
        conn.recv().unwrap();
    }

    /// CPython's `_remote`: for each (address, msg), connect and send
    /// msg.upper(); after `None`, once more over a plain TCP socket.
    fn remote(conn: Connection<Option<(Address, Vec<u8>)>>) {
        while let Some((address, msg)) = conn.recv().unwrap() {
            let client = Client::connect::<Vec<u8>, _>(address, None).unwrap();
            client.send(&msg.to_ascii_uppercase()).unwrap();
            client.close();
        }
        let (address, msg) = conn.recv().unwrap().unwrap();
        let Address::Tcp(a) = address else {
            panic!("not a TCP address: {address}")
        };
        let mut client = std::net::TcpStream::connect(a).unwrap();
        client.write_all(&msg.to_ascii_uppercase()).unwrap();
        drop(client);
        conn.close();
    }

    #[test]
    fn test_pickling() {
        let _s = serial();
        let (lconn, lconn0) = Pipe::<Option<Address>>::new(true).unwrap();
        let mut lp = forked(move || listener(lconn0));

        let (rconn, rconn0) = Pipe::<Option<(Address, Vec<u8>)>>::new(true).unwrap();
        let mut rp = forked(move || remote(rconn0));

        for family in Family::ALL {
            let msg = format!("This connection uses family {family:?}").into_bytes();
            let address = lconn.recv().unwrap().unwrap();
            rconn.send(&Some((address, msg.clone()))).unwrap();
            let new_conn = lconn.recv_connection::<Vec<u8>>().unwrap();
            assert_eq!(new_conn.recv().unwrap(), msg.to_ascii_uppercase());
        }

        rconn.send(&None).unwrap();

        let msg = b"This connection uses a normal socket".to_vec();
        let address = lconn.recv().unwrap().unwrap();
        rconn.send(&Some((address, msg.clone()))).unwrap();
        let mut new_conn = std::net::TcpStream::from(lconn.recv_handle().unwrap());
        let mut buf = Vec::new();
        loop {
            let mut s = [0u8; 100];
            let n = new_conn.read(&mut s).unwrap();
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&s[..n]);
        }
        assert_eq!(buf, msg.to_ascii_uppercase());
        drop(new_conn);

        lconn.send(&None).unwrap();

        rconn.close();
        lconn.close();

        assert_eq!(lp.join().unwrap(), 0);
        assert_eq!(rp.join().unwrap(), 0);
    }

    /// CPython's `child_access`.
    fn child_access(conn: Connection<String>) {
        let w = conn.recv_connection::<String>().unwrap();
        w.send(&"all is well".to_string()).unwrap();
        w.close();

        let r = conn.recv_connection::<String>().unwrap();
        let msg = r.recv().unwrap();
        conn.send(&msg.repeat(2)).unwrap();

        conn.close();
    }

    #[test]
    fn test_access() {
        let _s = serial();
        let (conn, child_conn) = Pipe::<String>::new(true).unwrap();
        let mut p = forked(move || child_access(child_conn));

        let (r, w) = Pipe::<String>::new(false).unwrap();
        conn.send_connection(&w).unwrap();
        w.close();
        assert_eq!(r.recv().unwrap(), "all is well");
        r.close();

        let (r, w) = Pipe::<String>::new(false).unwrap();
        conn.send_connection(&r).unwrap();
        r.close();
        w.send(&"foobar".to_string()).unwrap();
        w.close();
        assert_eq!(conn.recv().unwrap(), "foobar".repeat(2));

        assert_eq!(p.join().unwrap(), 0);
    }
}

mod test_wait {
    use super::*;

    /// CPython's `_child_test_wait`.
    fn child_test_wait(w: Connection<(u32, u32)>, slow: bool) {
        for i in 0..10 {
            if slow {
                dawdle();
            }
            w.send(&(i, std::process::id())).unwrap();
        }
        w.close();
    }

    fn run_test_wait(slow: bool) {
        let _s = serial();
        let mut readers = Vec::new();
        let mut procs = Vec::new();
        let mut messages = Vec::new();

        for _ in 0..4 {
            let (r, w) = Pipe::<(u32, u32)>::new(false).unwrap();
            procs.push(forked(move || child_test_wait(w, slow)));
            // w.close(): the parent's copy went with the closure at start.
            readers.push(r);
        }

        while !readers.is_empty() {
            let mut done = Vec::new();
            for r in wait(readers.iter(), None).unwrap() {
                match r.recv() {
                    Err(PipeError::Closed) => done.push(r as *const _),
                    msg => messages.push(msg.unwrap()),
                }
            }
            readers.retain(|r| !done.contains(&(r as *const _)));
        }

        messages.sort();
        let mut expected: Vec<(u32, u32)> = (0..10)
            .flat_map(|i| procs.iter().map(move |p| (i, p.pid().unwrap())))
            .collect();
        expected.sort();
        assert_eq!(messages, expected);
        for mut p in procs {
            assert_eq!(p.join().unwrap(), 0);
        }
    }

    /// CPython's `_child_test_wait_socket`.
    fn child_test_wait_socket(address: std::net::SocketAddr, slow: bool) {
        let mut s = std::net::TcpStream::connect(address).unwrap();
        for i in 0..10 {
            if slow {
                dawdle();
            }
            s.write_all(format!("{i}\n").as_bytes()).unwrap();
        }
    }

    fn run_test_wait_socket(slow: bool) {
        let _s = serial();
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let mut procs = Vec::new();
        for _ in 0..4 {
            procs.push(forked(move || child_test_wait_socket(addr, slow)));
        }
        let mut readers: Vec<(std::net::TcpStream, Vec<u8>)> = (0..4)
            .map(|_| (l.accept().unwrap().0, Vec::new()))
            .collect();
        drop(l);
        let mut open: Vec<usize> = (0..4).collect();
        while !open.is_empty() {
            let fds: Vec<_> = open.iter().map(|&i| readers[i].0.as_fd()).collect();
            let ready: Vec<usize> = wait(fds.iter(), None)
                .unwrap()
                .into_iter()
                .map(|f| open[fds.iter().position(|g| std::ptr::eq(g, f)).unwrap()])
                .collect();
            for i in ready {
                let mut msg = [0u8; 32];
                let n = readers[i].0.read(&mut msg).unwrap();
                if n == 0 {
                    open.retain(|&j| j != i);
                } else {
                    readers[i].1.extend_from_slice(&msg[..n]);
                }
            }
        }
        let expected: String = (0..10).map(|i| format!("{i}\n")).collect();
        for (_, v) in &readers {
            assert_eq!(v, expected.as_bytes());
        }
        for mut p in procs {
            assert_eq!(p.join().unwrap(), 0);
        }
    }

    #[test]
    fn test_wait() {
        run_test_wait(false);
    }

    #[test]
    fn test_wait_socket() {
        run_test_wait_socket(false);
    }

    #[test]
    fn test_wait_slow() {
        run_test_wait(true);
    }

    #[test]
    fn test_wait_socket_slow() {
        run_test_wait_socket(true);
    }

    #[test]
    fn test_wait_timeout() {
        let _s = serial();
        let timeout = Duration::from_millis(500); // CPython: 5 s
        let (a, b) = Pipe::<Option<()>>::new(true).unwrap();

        let start = Instant::now();
        let res = wait([&a, &b], Some(timeout)).unwrap();
        let delta = start.elapsed();

        assert!(res.is_empty());
        assert!(delta >= timeout, "returned after {delta:?}");

        b.send(&None).unwrap();
        let res = wait([&a, &b], Some(Duration::from_secs(20))).unwrap();
        assert_eq!(res.len(), 1);
        assert!(std::ptr::eq(res[0], &a));
    }

    #[test]
    fn test_wait_integer() {
        let _s = serial();
        let sem = Semaphore::new(0).unwrap();
        let (a, b) = Pipe::<Option<()>>::new(true).unwrap();
        let finish = Event::new().unwrap();
        let (s2, f2) = (sem.clone(), finish.clone());
        let mut p = forked(move || {
            // signal_and_sleep: CPython's child sleeps 3 s, so that the
            // sentinel is not ready yet when the wait starts; here it waits to
            // be told to end.
            s2.release().unwrap();
            f2.wait();
        });
        assert!(sem.acquire_timeout(Duration::from_secs(20)));
        {
            // p.sentinel: the child's pidfd, readable once the child is gone.
            let sentinel = p.sentinel().unwrap();
            let objs = || -> [&dyn AsFd; 3] { [&a, &sentinel, &b] };
            let pos = |res: Vec<&dyn AsFd>| -> Vec<usize> {
                let all = objs();
                res.into_iter()
                    .map(|r| {
                        all.iter()
                            .position(|o| {
                                std::ptr::addr_eq(*o as *const dyn AsFd, r as *const dyn AsFd)
                            })
                            .unwrap()
                    })
                    .collect()
            };

            assert!(wait(objs(), Some(Duration::ZERO)).unwrap().is_empty());
            finish.set();
            let res = wait(objs(), Some(Duration::from_secs(23))).unwrap();
            assert_eq!(pos(res), [1]); // [p.sentinel]

            a.send(&None).unwrap();
            let res = wait(objs(), Some(Duration::from_secs(20))).unwrap();
            assert_eq!(pos(res), [1, 2]); // [p.sentinel, b]

            b.send(&None).unwrap();
            let res = wait(objs(), Some(Duration::from_secs(20))).unwrap();
            assert_eq!(pos(res), [0, 1, 2]); // [a, p.sentinel, b]
        }
        assert_eq!(p.join().unwrap(), 0);
    }

    #[test]
    fn test_neg_timeout() {
        let _s = serial();
        let (a, b) = Pipe::<()>::new(true).unwrap();
        // timeout=-1: a negative `Duration` does not exist; zero is "do not wait".
        let res = wait([&a], Some(Duration::ZERO)).unwrap();
        assert!(res.is_empty());
        a.close();
        b.close();
    }
}
