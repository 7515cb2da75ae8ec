//! Hostile and broken clients: after each, the manager still serves a good
//! client, and the objects are as they were.
//!
//! Ordering between processes uses the manager's own queue (no sleeps); every
//! wait that could hang on a regression has a generous timeout.

use procshare::internals::client_handshake;
use procshare::internals::wire;
use procshare::AuthKey;
use procshare::Process;
use procshare::{Address, Manager, ManagerError, OpError};
use procshare_model::manager::{Op, Request, Response};
use procshare_tests::quiet;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

const GENEROUS: Duration = Duration::from_secs(30);

fn raw(m: &Manager) -> UnixStream {
    match m.address() {
        Address::Unix(p) => {
            let s = UnixStream::connect(p).unwrap();
            s.set_read_timeout(Some(GENEROUS)).unwrap();
            s
        }
        a => panic!("not a unix manager: {a}"),
    }
}

fn authed(m: &Manager) -> UnixStream {
    let mut s = raw(m);
    client_handshake(&mut s, m.authkey()).unwrap();
    s
}

/// A good client in a fresh thread (hence a fresh connection) still works, and the list is intact.
fn still_serves(m: &Manager, l: &procshare::ListProxy<i32>, expect: &[i32]) {
    let l = l.clone();
    let expect = expect.to_vec();
    std::thread::scope(|s| {
        s.spawn(|| {
            assert_eq!(l.to_vec().unwrap(), expect);
            l.append(99).unwrap();
            assert_eq!(l.pop().unwrap(), 99);
        });
    });
    m.ping().unwrap();
}

#[test]
fn garbage_frame_is_answered_and_connection_survives() {
    quiet();
    let m = Manager::start().unwrap();
    let l = m.list_from([1, 2]).unwrap();
    let mut s = authed(&m);
    wire::write_frame_bytes(&mut s, &[0xff, 0xfe, 0xfd, 0x00, 0x42]).unwrap();
    let r: Response = wire::read_frame(&mut s, wire::DEFAULT_LIMIT).unwrap();
    assert!(matches!(r, Response::Err(OpError::BadRequest(_))), "{r:?}");
    // The same connection still works after a decodable-frame-with-garbage.
    wire::write_frame(&mut s, &Request::Ping).unwrap();
    let r: Response = wire::read_frame(&mut s, wire::DEFAULT_LIMIT).unwrap();
    assert_eq!(r, Response::Pong);
    still_serves(&m, &l, &[1, 2]);
}

#[test]
fn garbage_before_auth_is_refused() {
    quiet();
    let m = Manager::start().unwrap();
    let l = m.list_from([1]).unwrap();
    let mut s = raw(&m);
    s.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    // The server refuses and closes: reading ends (challenge then EOF), no hang.
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    still_serves(&m, &l, &[1]);
}

#[test]
fn oversized_frame_is_refused_and_closed() {
    quiet();
    let m = Manager::start().unwrap();
    let l = m.list_from([1]).unwrap();
    let mut s = authed(&m);
    s.write_all(&u32::MAX.to_le_bytes()).unwrap();
    let r: Response = wire::read_frame(&mut s, wire::DEFAULT_LIMIT).unwrap();
    match r {
        Response::Err(OpError::BadRequest(msg)) => assert!(msg.contains("oversized"), "{msg}"),
        r => panic!("{r:?}"),
    }
    // Then the server closed this connection.
    assert!(matches!(
        wire::read_frame_bytes(&mut s, 16),
        Err(wire::WireError::Closed)
    ));
    still_serves(&m, &l, &[1]);
}

#[test]
fn half_frame_then_disconnect() {
    quiet();
    let m = Manager::start().unwrap();
    let l = m.list_from([1]).unwrap();
    {
        let mut s = authed(&m);
        let mut frame = Vec::new();
        wire::write_frame(&mut frame, &Request::Op(1, Op::Append(vec![7; 100]))).unwrap();
        s.write_all(&frame[..frame.len() / 2]).unwrap();
    } // closed mid-frame
    {
        let mut s = authed(&m);
        s.write_all(&[5, 0]).unwrap(); // half a header
    }
    still_serves(&m, &l, &[1]);
}

#[test]
fn wrong_key_is_an_auth_error() {
    quiet();
    let m = Manager::start().unwrap();
    let l = m.list_from([1]).unwrap();
    let e = Manager::connect(m.address().clone(), AuthKey::new("not the key")).unwrap_err();
    assert!(matches!(e, ManagerError::Auth(_)), "{e:?}");
    assert!(e.to_string().contains("authentication"), "{e}");
    still_serves(&m, &l, &[1]);
}

#[test]
fn typed_errors_leave_objects_unchanged() {
    quiet();
    let m = Manager::start().unwrap();
    let l = m.list_from([1, 2]).unwrap();
    let e = l.get(5).unwrap_err();
    assert_eq!(
        e.op_error(),
        Some(&OpError::IndexOutOfRange { index: 5, len: 2 })
    );
    assert_eq!(
        l.remove(&7).unwrap_err().op_error(),
        Some(&OpError::ValueNotInList)
    );
    assert!(l.set(2, 0).is_err());
    assert!(l.delete(9).is_err());
    assert!(l.pop_at(2).is_err());
    // Wrong type of object: a dict proxy deserialized from a list token is refused
    // at decode time; a request of the wrong kind sent raw is a typed error.
    let mut s = authed(&m);
    wire::write_frame(&mut s, &Request::Op(1, Op::DictKeys)).unwrap();
    let r: Response = wire::read_frame(&mut s, wire::DEFAULT_LIMIT).unwrap();
    assert!(
        matches!(r, Response::Err(OpError::WrongType { .. })),
        "{r:?}"
    );
    // Wrong value type: items are u32-encoded ints, read as String.
    let d = m.dict::<String, i32>().unwrap();
    assert_eq!(
        d.pop(&"x".into()).unwrap_err().op_error(),
        Some(&OpError::KeyNotFound)
    );
    let as_bytes = m.list_from([vec![0xffu8, 0xff]]).unwrap();
    let json: procshare::ListProxy<String> =
        wire::decode(&wire::encode(&as_bytes).unwrap()).unwrap();
    assert!(matches!(
        json.get(0).unwrap_err(),
        ManagerError::WrongType { .. }
    ));
    still_serves(&m, &l, &[1, 2]);
}

#[test]
fn client_killed_mid_request_frees_its_lock_and_server_goes_on() {
    quiet();
    let m = Manager::start().unwrap();
    let l = m.list_from([1]).unwrap();
    let lock = m.lock().unwrap();
    let never = m.event().unwrap();
    let ready = m.queue::<u32>(None).unwrap();
    let (lk, nv, rd, mm) = (
        lock.clone(),
        never.clone(),
        ready.clone(),
        m.address().clone(),
    );
    let key = m.authkey().clone();
    let mut victim = Process::new(move || {
        lk.acquire().unwrap();
        // Half a request on a raw authenticated connection...
        let Address::Unix(p) = mm else { unreachable!() };
        let mut s = UnixStream::connect(p).unwrap();
        client_handshake(&mut s, &key).unwrap();
        s.write_all(&[200, 0, 0, 0, 1, 2, 3]).unwrap();
        rd.put(std::process::id()).unwrap();
        // ...and a blocking request in flight on the proxy connection.
        nv.wait().unwrap();
        std::mem::forget(s);
    });
    victim.start().unwrap();
    assert_eq!(ready.get_timeout(GENEROUS).unwrap(), victim.pid().unwrap());
    assert!(lock.is_locked().unwrap());
    victim.kill().unwrap();
    assert_eq!(victim.join().unwrap(), -9);
    // The dead client's lock is released when its connection closes.
    assert!(lock.acquire_timeout(GENEROUS).unwrap());
    lock.release().unwrap();
    still_serves(&m, &l, &[1]);
}

#[test]
fn sigint_is_ignored_by_the_server() {
    quiet();
    let m = Manager::start().unwrap();
    let l = m.list_from([1]).unwrap();
    // SAFETY: kill(2) takes plain integers; the pid is our own child's.
    let rc = unsafe { libc::kill(m.server_pid().unwrap(), libc::SIGINT) };
    assert_eq!(rc, 0);
    still_serves(&m, &l, &[1]);
}

#[test]
fn shutdown_removes_the_socket_directory_and_proxies_fail_cleanly() {
    quiet();
    let mut m = Manager::start().unwrap();
    let l = m.list_from([1]).unwrap();
    let Address::Unix(p) = m.address().clone() else {
        unreachable!()
    };
    let dir = p.parent().unwrap().to_path_buf();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    m.shutdown().unwrap();
    assert!(!dir.exists());
    assert!(matches!(
        l.len().unwrap_err(),
        ManagerError::Wire(_) | ManagerError::Io(_)
    ));
    // An iterator gives the error once, then ends.
    let mut it = l.iter();
    assert!(matches!(it.next(), Some(Err(_))));
    assert!(it.next().is_none(), "the iterator went on after an error");
}
