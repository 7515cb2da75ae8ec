//! The manager's mutual HMAC handshake against a scripted hostile peer (the
//! body is `procshare::manager::fuzzing::manager_handshake`, whose corpus
//! `cargo test` replays).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    procshare::manager::fuzzing::manager_handshake(data);
});
