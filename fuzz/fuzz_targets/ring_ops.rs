//! Ring operation sequences (one process: sizes, wrap-around, streaming,
//! abandonment, close) against a `VecDeque` model.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    procshare::fuzzing::ring_ops(data);
});
