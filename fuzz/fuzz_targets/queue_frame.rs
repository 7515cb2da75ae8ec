//! Arbitrary bytes as a typed queue message and as a wire frame: an error
//! value, never a panic, and the queue stays usable.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    procshare::fuzzing::queue_frame(data);
});
