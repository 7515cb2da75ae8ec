//! The lock protocols (mutex, recursive lock, bounded semaphore) run by model
//! threads whose operations, crash points and schedule all come from the input
//! (the body is `procshare_model::fuzzing::lock_protocol`, whose corpus
//! `cargo test` replays). Run it without a sanitizer: `cargo +nightly fuzz run -s none
//! lock_protocol` (shuttle switches coroutine stacks, which ASan reports as
//! stack-buffer-underflow false positives).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    procshare_model::fuzzing::lock_protocol(data);
});
