//! Frame splitting, request/response decoding and the manager's dispatch loop
//! on arbitrary bytes (the body is `procshare::fuzzing::wire_frame`,
//! whose corpus `cargo test` replays).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    procshare::fuzzing::wire_frame(data);
});
