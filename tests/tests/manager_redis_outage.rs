//! A Redis manager whose server stops answering, or drops its connections:
//! each call ends with a typed error within its timeout (never a hang), and
//! the next call after the server is back works. Its own test binary: it
//! pauses the whole server (`CLIENT PAUSE`), which would disturb the other
//! Redis tests if they ran beside it.

use procshare::internals::RedisStore;
use procshare::{Manager, ManagerError, RedisError};
use std::time::Duration;

#[test]
fn a_paused_or_dropping_server_is_a_typed_error_not_a_hang() {
    procshare_tests::quiet();
    let Some(url) = procshare_tests::redis_url("manager_redis_outage") else {
        return;
    };
    let ns = format!("procshare-test:outage:{}", std::process::id());
    // Cleared even when the test fails.
    struct Clear(String, String);
    impl Drop for Clear {
        fn drop(&mut self) {
            let _ = Manager::redis_clear(&self.0, &self.1);
        }
    }
    let _clear = Clear(url.clone(), ns.clone());
    let m = Manager::redis(&url, &ns).unwrap();
    let l = m.list::<u8>().unwrap();
    l.append(1).unwrap();
    let admin = RedisStore::open(&url, Duration::from_secs(5)).unwrap();

    // The server stops answering for longer than a request's timeout (5 s).
    admin
        .command(&[b"CLIENT", b"PAUSE", b"7000", b"ALL"])
        .unwrap();
    // Ended by the request's timeout (without one it would wait out the
    // pause and succeed).
    let e = l.append(2).unwrap_err();
    assert!(
        matches!(e, ManagerError::Redis(RedisError::Timeout { .. })),
        "{e:?}"
    );
    admin.command(&[b"CLIENT", b"UNPAUSE"]).unwrap();
    // The timed-out append may or may not have run (its reply was lost).
    let items = l.to_vec().unwrap();
    assert!(items == [1] || items == [1, 2], "{items:?}");

    // The server drops every connection (as a restart does): one typed
    // error for the call whose connection broke, then a fresh connection.
    admin
        .command(&[b"CLIENT", b"KILL", b"TYPE", b"normal"])
        .unwrap();
    match l.len() {
        Ok(n) => assert!(n >= 1),
        Err(e) => assert!(
            matches!(e, ManagerError::Redis(RedisError::Down { .. })),
            "{e:?}"
        ),
    }
    assert!(l.len().unwrap() >= 1);
}
