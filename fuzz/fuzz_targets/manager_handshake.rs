//! The manager's mutual HMAC handshake against a scripted hostile peer (the
//! body is `procshare::fuzzing::manager_handshake`, whose corpus
//! `cargo test` replays).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    procshare::fuzzing::manager_handshake(data);
});
