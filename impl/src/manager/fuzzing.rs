//! The bodies of the manager's fuzz targets, as plain functions so that
//! `cargo test` replays their corpora on stable (`tests/tests/fuzz_replay_manager.rs`)
//! through exactly the code the fuzzers run.
//!
//! ```
//! procshare::fuzzing::wire_frame(b"\x01\x00\x00\x00\x00");
//! procshare::fuzzing::manager_handshake(b"garbage");
//! ```

use crate::codec::auth::{client_handshake, server_handshake, AuthKey, ScriptedPeer};
use crate::codec::wire::{self, WireError};
use procshare_model::manager::{
    serve_connection, Incoming, Op, Request, Response, Server, StdSync, Transport, Wait,
};

/// Frame limit used by the targets (small, so that the limit path is reached).
pub const FUZZ_LIMIT: usize = 1 << 16;

/// Never let a fuzzed request wait: a blocking operation becomes a try.
fn no_wait(r: Request) -> Request {
    let w = |_: Wait| Wait::No;
    match r {
        Request::Op(id, op) => Request::Op(
            id,
            match op {
                Op::Acquire(x) => Op::Acquire(w(x)),
                Op::EventWait(x) => Op::EventWait(w(x)),
                Op::Put(b, x) => Op::Put(b, w(x)),
                Op::QGet(x) => Op::QGet(w(x)),
                Op::CondSleep(t, d, x) => Op::CondSleep(t, d, w(x)),
                Op::CondReacquire(t, d, x) => Op::CondReacquire(t, d, w(x)),
                Op::BarrierAwait(g, x) => Op::BarrierAwait(g, w(x)),
                other => other,
            },
        ),
        other => other,
    }
}

/// Feeds frames split from an in-memory buffer to the dispatch loop.
struct Frames<'a> {
    rest: &'a [u8],
    sent: usize,
}

impl Transport for Frames<'_> {
    fn recv(&mut self) -> Incoming {
        match wire::split_frame(self.rest, FUZZ_LIMIT) {
            Ok((payload, rest)) => {
                self.rest = rest;
                match wire::decode::<Request>(payload) {
                    Ok(r) => Incoming::Request(no_wait(r)),
                    Err(e) => Incoming::Garbage(e.to_string()),
                }
            }
            Err(WireError::Closed) => Incoming::Closed,
            Err(e) => Incoming::Fatal(e.to_string()),
        }
    }
    fn send(&mut self, r: &Response) -> bool {
        // Every answer must encode and decode back to itself.
        let b = wire::encode(r).expect("a response always encodes");
        let back: Response = wire::decode(&b).expect("a response decodes");
        assert_eq!(&back, r);
        self.sent += 1;
        true
    }
}

/// Fuzz target `wire_frame`: split `data` into frames (with a limit), decode
/// each as a [`Request`] and as a [`Response`], check that what decodes
/// re-encodes to a value that decodes equal, and run the request stream
/// through a real server's dispatch loop (blocking operations made
/// non-blocking). Must never panic, hang or allocate beyond the limit.
pub fn wire_frame(data: &[u8]) {
    // Frame reader over a stream.
    let mut r = data;
    while let Ok(p) = wire::read_frame_bytes(&mut r, FUZZ_LIMIT) {
        if let Ok(req) = wire::decode::<Request>(&p) {
            let again: Request = wire::decode(&wire::encode(&req).expect("encodes"))
                .expect("re-encoded request decodes");
            assert_eq!(again, req);
        }
        if let Ok(resp) = wire::decode::<Response>(&p) {
            let again: Response = wire::decode(&wire::encode(&resp).expect("encodes"))
                .expect("re-encoded response decodes");
            assert_eq!(again, resp);
        }
    }
    // The dispatch loop on the same bytes.
    let server = Server::<StdSync>::new();
    let mut t = Frames {
        rest: data,
        sent: 0,
    };
    let _ = serve_connection(&server, 1, &mut t);
}

/// Fuzz target `manager_handshake`: `data` is everything a hostile peer sends.
/// Played against the server's and the client's side of the handshake, it
/// must be refused (nobody can answer a fresh random challenge without the
/// key) and never panic or hang.
pub fn manager_handshake(data: &[u8]) {
    let key = AuthKey::new(b"fuzz key");
    let mut peer = ScriptedPeer::new(data);
    assert!(
        server_handshake(&mut peer, &key).is_err(),
        "server accepted a scripted peer"
    );
    let mut peer = ScriptedPeer::new(data);
    assert!(
        client_handshake(&mut peer, &key).is_err(),
        "client accepted a scripted server"
    );
}
