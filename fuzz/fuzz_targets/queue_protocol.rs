//! The queue protocol: model producers and consumers (with an optional death)
//! under a shuttle schedule chosen by the input bytes.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    procshare_model::ring::fuzzing::queue_protocol(data);
});
