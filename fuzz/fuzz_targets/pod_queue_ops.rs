//! `PodQueue` operation sequences (one process: full, empty, wrap-around,
//! shutdown, and foreign writes to the hints and slot sequences) against a
//! `VecDeque` model.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    procshare::fuzzing::pod_queue_ops(data);
});
