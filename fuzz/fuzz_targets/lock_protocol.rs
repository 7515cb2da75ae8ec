//! The lock protocols (mutex, recursive lock, bounded semaphore) run by model
//! threads whose operations, crash points and schedule all come from the input
//! (the body is `procshare_model::fuzzing::lock_protocol`, whose corpus
//! `cargo test` replays).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    procshare_model::fuzzing::lock_protocol(data);
});
