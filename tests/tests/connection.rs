//! Connections beyond the pipe basics (`pipe.rs`): raw byte messages and
//! their interplay with typed ones, the errors CPython gives (a message over
//! `maxlength`, a buffer too short), `Listener`/`Client` with a wrong key
//! refused on both sides, `wait`, and a `Connection` as an argument of a
//! spawned and a forkserver child.

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::Duration;

use procshare::internals::wire;
use procshare::{
    wait, Address, AuthError, AuthKey, Client, Connection, Event, Family, Listener, Pipe,
    PipeError, Process, StartMethod,
};
use procshare_tests::quiet;

#[test]
fn bytes_and_values_share_one_framing() {
    let (a, b) = Pipe::<(u32, String)>::new(true).unwrap();
    let v = (7u32, "seven".to_string());
    a.send(&v).unwrap();
    assert_eq!(b.recv_bytes(None).unwrap(), wire::encode(&v).unwrap());
    a.send_bytes(&wire::encode(&v).unwrap(), 0, None).unwrap();
    assert_eq!(b.recv().unwrap(), v);
    // Interleaved, in order.
    a.send_bytes(b"raw", 0, None).unwrap();
    a.send(&v).unwrap();
    a.send_bytes(b"", 0, None).unwrap();
    assert_eq!(b.recv_bytes(None).unwrap(), b"raw");
    assert_eq!(b.recv().unwrap(), v);
    assert_eq!(b.recv_bytes(Some(0)).unwrap(), b"");
}

#[test]
fn a_message_over_maxlength_makes_the_connection_unusable() {
    let (a, b) = Pipe::<u8>::new(true).unwrap();
    let b2 = b.clone();
    a.send_bytes(&[1; 10], 0, None).unwrap();
    a.send(&5).unwrap();
    match b.recv_bytes(Some(9)) {
        Err(PipeError::TooLong { len, maxlength }) => assert_eq!((len, maxlength), (10, 9)),
        other => panic!("expected TooLong, got {other:?}"),
    }
    // Out of step with its peer: every later operation is refused, on every clone.
    assert!(b.is_closed() && b2.is_closed());
    assert!(matches!(b.recv(), Err(PipeError::Unusable)));
    assert!(matches!(b2.recv_bytes(None), Err(PipeError::Unusable)));
    assert!(matches!(b2.send(&1), Err(PipeError::Unusable)));
    assert!(matches!(
        b2.poll(Some(Duration::ZERO)),
        Err(PipeError::Unusable)
    ));
    // A typed receive over the connection's own limit is refused the same way.
    let (a, b) = Pipe::<Vec<u8>>::new(true).unwrap();
    a.send_unframed(&u32::MAX.to_le_bytes()).unwrap();
    assert!(matches!(b.recv(), Err(PipeError::TooLong { .. })));
    assert!(matches!(b.recv(), Err(PipeError::Unusable)));
}

#[test]
fn a_buffer_too_short_gets_the_message_and_the_connection_goes_on() {
    let (a, b) = Pipe::<u8>::new(true).unwrap();
    let mut buf = [0u8; 4];
    a.send_bytes(b"hello", 0, None).unwrap();
    a.send(&9).unwrap();
    match b.recv_bytes_into(&mut buf, 0) {
        Err(PipeError::BufferTooShort(m)) => assert_eq!(m, b"hello"),
        other => panic!("expected BufferTooShort, got {other:?}"),
    }
    assert_eq!(buf, [0; 4]);
    assert_eq!(b.recv().unwrap(), 9);
    // At an offset: fits exactly, one byte too many, offset past the end.
    a.send_bytes(b"ab", 0, None).unwrap();
    assert_eq!(b.recv_bytes_into(&mut buf, 2).unwrap(), 2);
    assert_eq!(&buf, b"\0\0ab");
    a.send_bytes(b"abc", 0, None).unwrap();
    assert!(matches!(
        b.recv_bytes_into(&mut buf, 2),
        Err(PipeError::BufferTooShort(m)) if m == b"abc"
    ));
    assert!(matches!(
        b.recv_bytes_into(&mut buf, 5),
        Err(PipeError::OutOfRange { offset: 5, .. })
    ));
    assert!(!b.is_closed());
}

#[test]
fn a_client_with_the_wrong_key_is_refused_on_both_sides() {
    quiet();
    for family in Family::ALL {
        let l = Listener::new(family, Some(AuthKey::new("right"))).unwrap();
        let addr = l.address().clone();
        // The client, in a child: its exit code says what it saw (0: refused).
        let mut p = Process::new(move || {
            let c = Client::connect::<String, _>(addr, Some(&AuthKey::new("wrong")));
            let code = match c {
                Err(PipeError::Auth(AuthError::Refused)) => 0,
                Err(e) => {
                    eprintln!("client: unexpected error {e}");
                    2
                }
                Ok(_) => 3,
            };
            std::process::exit(code)
        });
        p.start().unwrap();
        let d = l.accept::<String>();
        assert!(
            matches!(d, Err(PipeError::Auth(AuthError::WrongDigest))),
            "{family:?}: {d:?}"
        );
        assert_eq!(p.join().unwrap(), 0, "{family:?}");
    }
}

#[test]
fn a_listener_without_the_key_is_refused_by_the_client() {
    quiet();
    // A listener that knows no key at all: it sends no challenge, the client
    // (with a key) refuses it.
    let l = Listener::new(Family::Unix, None).unwrap();
    let addr = l.address().clone();
    let mut p = Process::new(move || {
        let c = Client::connect::<String, _>(addr, Some(&AuthKey::new("k")));
        std::process::exit(if matches!(c, Err(PipeError::Auth(_))) {
            0
        } else {
            2
        })
    });
    p.start().unwrap();
    let d = l.accept::<String>().unwrap();
    d.send(&"no challenge here".to_string()).unwrap();
    assert_eq!(p.join().unwrap(), 0);

    // A server that welcomes any answer but cannot answer the client's
    // challenge (it does not hold the key): the client's own check refuses it.
    let dir = std::env::temp_dir().join(format!("procshare-conn-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("liar.sock");
    let _ = std::fs::remove_file(&path);
    let raw = UnixListener::bind(&path).unwrap();
    let liar = Process::new(move || {
        let (mut s, _) = raw.accept().unwrap();
        wire::write_frame_bytes(
            &mut s,
            b"#CHALLENGE#{sha256}0123456789abcdef0123456789abcdef",
        )
        .unwrap();
        let _answer = wire::read_frame_bytes(&mut s, 256).unwrap();
        wire::write_frame_bytes(&mut s, b"#WELCOME#").unwrap();
        let _challenge = wire::read_frame_bytes(&mut s, 256).unwrap();
        wire::write_frame_bytes(&mut s, b"{sha256}not-the-mac").unwrap();
        let verdict = wire::read_frame_bytes(&mut s, 256).unwrap();
        std::process::exit(if verdict == b"#FAILURE#" { 0 } else { 4 });
    });
    let mut liar = liar;
    liar.start().unwrap();
    let c = Client::connect::<String, _>(path.as_path(), Some(&AuthKey::new("k")));
    assert!(
        matches!(c, Err(PipeError::Auth(AuthError::WrongDigest))),
        "{c:?}"
    );
    assert_eq!(liar.join().unwrap(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_right_key_connects_every_family_and_records_the_peer() {
    quiet();
    let key = AuthKey::random().unwrap();
    for family in Family::ALL {
        let l = Listener::new(family, Some(key.clone())).unwrap();
        assert!(l.last_accepted().is_none());
        let addr = l.address().clone();
        let k = key.clone();
        let mut p = Process::new(move || {
            let c = Client::connect::<String, _>(addr, Some(&k)).unwrap();
            let s = c.recv().unwrap();
            c.send(&s.to_uppercase()).unwrap();
        });
        p.start().unwrap();
        let d = l.accept::<String>().unwrap();
        d.send(&format!("{family:?}")).unwrap();
        assert_eq!(d.recv().unwrap(), format!("{family:?}").to_uppercase());
        assert_eq!(p.join().unwrap(), 0);
        let peer = l.last_accepted().unwrap();
        match family {
            Family::Tcp => assert!(matches!(peer, Address::Tcp(a) if a.ip().is_loopback())),
            _ => assert_eq!(peer, Address::Unix("".into())),
        }
    }
}

#[test]
fn abstract_addresses_parse_and_print_as_cpython_writes_them() {
    let a: Address = "\0name".parse().unwrap();
    assert_eq!(a, Address::Abstract(b"name".to_vec()));
    assert_eq!(a.to_string(), "abstract:name");
    assert_eq!(a.to_string().parse::<Address>().unwrap(), a);
    let l = Listener::new(Family::Abstract, None).unwrap();
    let s = l.address().to_string();
    let c = Client::connect::<u8, _>(s.as_str(), None).unwrap();
    let d = l.accept::<u8>().unwrap();
    d.send(&3).unwrap();
    assert_eq!(c.recv().unwrap(), 3);
}

#[test]
fn a_unix_listener_removes_its_socket_file_when_closed() {
    let l = Listener::new(Family::Unix, None).unwrap();
    let Address::Unix(path) = l.address().clone() else {
        unreachable!()
    };
    assert!(path.exists());
    l.close();
    assert!(!path.exists());
    assert!(!path.parent().unwrap().exists());
}

#[test]
fn wait_returns_the_ready_connections_listeners_and_sentinels() {
    quiet();
    let (a, b) = Pipe::<u8>::new(true).unwrap();
    let l = Listener::new(Family::Abstract, None).unwrap();
    // A sentinel: the read end of a pipe whose only write end a child holds.
    let (sentinel, held) = Pipe::<u8>::new(false).unwrap();
    let go = Event::new().unwrap();
    let g = go.clone();
    let mut p = Process::new(move || {
        let _held = held;
        g.wait();
    });
    p.start().unwrap();
    let objs = || -> [&dyn AsFd; 4] { [&a, &b, &l, &sentinel] };
    let ready = |v: Vec<&dyn AsFd>| -> Vec<usize> {
        let all = objs();
        v.iter()
            .map(|r| {
                all.iter()
                    .position(|o| std::ptr::addr_eq(*o as *const dyn AsFd, *r as *const dyn AsFd))
                    .unwrap()
            })
            .collect()
    };
    assert!(wait(objs(), Some(Duration::ZERO)).unwrap().is_empty());
    assert!(wait(objs(), Some(Duration::from_millis(20)))
        .unwrap()
        .is_empty());
    b.send(&1).unwrap();
    assert_eq!(ready(wait(objs(), None).unwrap()), [0]);
    let c = Client::connect::<u8, _>(l.address().clone(), None).unwrap();
    assert_eq!(ready(wait(objs(), None).unwrap()), [0, 2]);
    go.set();
    assert_eq!(p.join().unwrap(), 0);
    assert_eq!(ready(wait(objs(), None).unwrap()), [0, 2, 3]);
    assert_eq!(a.recv().unwrap(), 1);
    let d = l.accept::<u8>().unwrap();
    assert_eq!(ready(wait(objs(), None).unwrap()), [3]);
    d.send(&2).unwrap();
    assert_eq!(wait([&a, &c], None).unwrap().len(), 1);
    assert!(std::ptr::eq(wait([&a, &c], None).unwrap()[0], &c));
}

/// A spawned child's target: echoes strings back until the empty one.
fn echo((conn,): (Connection<String>,)) {
    loop {
        let s = conn.recv().unwrap();
        if s.is_empty() {
            break;
        }
        conn.send(&format!("echo: {s}")).unwrap();
    }
}

#[test]
fn a_spawned_child_echoes_over_a_connection_it_received() {
    quiet();
    for method in [StartMethod::Spawn, StartMethod::ForkServer] {
        let (mine, theirs) = Pipe::<String>::new(true).unwrap();
        let mut p = Process::with_target(echo, (theirs,)).start_method(method);
        p.start().unwrap();
        for s in ["one", "two"] {
            mine.send(&s.to_string()).unwrap();
            assert_eq!(mine.recv().unwrap(), format!("echo: {s}"));
        }
        mine.send(&String::new()).unwrap();
        assert_eq!(p.join().unwrap(), 0, "{method:?}");
        // The child's copy is closed with it, and the parent's was dropped
        // after start: end-of-file.
        assert!(matches!(mine.recv(), Err(PipeError::Closed)), "{method:?}");
    }
}

/// A spawned child's target: sends over a TCP connection it received.
fn greet_over_tcp((conn,): (Connection<String>,)) {
    conn.send(&"hello over tcp".to_string()).unwrap();
}

#[test]
fn a_tcp_connection_travels_to_a_spawned_child() {
    quiet();
    let l = Listener::new(Family::Tcp, None).unwrap();
    let c = Client::connect::<String, _>(l.address().clone(), None).unwrap();
    let d = l.accept::<String>().unwrap();
    let mut p = Process::with_target(greet_over_tcp, (d,)).start_method(StartMethod::Spawn);
    p.start().unwrap();
    assert_eq!(c.recv().unwrap(), "hello over tcp");
    assert_eq!(p.join().unwrap(), 0);
    assert!(matches!(c.recv(), Err(PipeError::Closed)));
}

#[test]
fn a_descriptor_message_read_as_a_value_is_an_error_and_the_stream_goes_on() {
    let (a, b) = Pipe::<u32>::new(true).unwrap();
    let (x, y) = UnixStream::pair().unwrap();
    a.send_handle(x.as_fd()).unwrap();
    a.send(&3).unwrap();
    // A typed receive of the descriptor message: not a u32 (the kernel closes
    // the descriptor that rode along).
    assert!(matches!(b.recv(), Err(PipeError::Wire(_))));
    assert_eq!(b.recv().unwrap(), 3);
    // And a handle receive of a plain message: no descriptor.
    a.send(&4).unwrap();
    assert!(matches!(b.recv_handle(), Err(PipeError::NoHandle)));
    a.send_handle(x.as_fd()).unwrap();
    let mut x2 = UnixStream::from(b.recv_handle().unwrap());
    x2.write_all(b"ok").unwrap();
    let mut got = [0u8; 2];
    (&y).read_exact(&mut got).unwrap();
    assert_eq!(&got, b"ok");
}

#[test]
fn a_client_killed_mid_handshake_is_an_error_from_accept_not_a_hang() {
    quiet();
    let l = Listener::new(Family::Unix, Some(AuthKey::new("k"))).unwrap();
    let addr = l.address().clone();
    let challenged = Event::new().unwrap();
    let ev = challenged.clone();
    let mut p = Process::new(move || {
        let Address::Unix(path) = addr else {
            unreachable!()
        };
        let mut s = UnixStream::connect(path).unwrap();
        let _challenge = wire::read_frame_bytes(&mut s, 256).unwrap();
        ev.set();
        loop {
            std::thread::park(); // killed here, the challenge unanswered
        }
    });
    p.start().unwrap();
    let killer = std::thread::spawn(move || {
        challenged.wait();
        p.kill().unwrap();
        p.join().unwrap()
    });
    let d = l.accept::<u8>();
    assert!(matches!(d, Err(PipeError::Auth(_))), "{d:?}");
    assert_eq!(killer.join().unwrap(), -9);
}

/// A peer that announces a 100-byte message, sends 10 bytes of it and goes
/// away: `recv` reports the message truncated (what was announced, what
/// came), and the connection is unusable after (it is out of step).
#[test]
fn a_message_cut_short_by_the_peer_is_truncated_and_poisons() {
    let (a, b) = Pipe::<Vec<u8>>::new(true).unwrap();
    let mut m = 100u32.to_le_bytes().to_vec();
    m.extend_from_slice(&[1; 10]);
    a.send_unframed(&m).unwrap();
    drop(a);
    match b.recv_bytes(None) {
        Err(PipeError::Wire(procshare::WireError::Truncated {
            expected: 100,
            got: 10,
        })) => {}
        other => panic!("{other:?}"),
    }
    assert!(b.is_closed(), "usable after a truncated message");
}

/// A peer that closes its end with a message it never read makes the
/// kernel reset the connection (`ECONNRESET` on the next read): to `recv`
/// that is the peer gone, `Closed` (as CPython's `EOFError`/`ConnectionResetError`
/// both end a reader), and the connection stays unusable after.
#[test]
fn a_reset_connection_is_closed() {
    let (a, b) = Pipe::<u8>::new(true).unwrap();
    b.send(&1).unwrap(); // into `a`'s queue, never read
    drop(a);
    match b.recv() {
        Err(PipeError::Closed) => {}
        other => panic!("{other:?}"),
    }
    assert!(matches!(b.recv(), Err(PipeError::Closed)));
}
