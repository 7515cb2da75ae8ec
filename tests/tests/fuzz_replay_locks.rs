//! Replays the corpus of the `lock_protocol` fuzz target
//! (`fuzz/corpus/lock_protocol`) through the very function the target calls,
//! so that `cargo test` on stable re-checks every input the fuzzer kept: each
//! is a set of model threads' lock operations, crash points and a schedule.

use procshare_tests::corpus::replay;

#[test]
fn replay_lock_protocol_corpus() {
    let n = replay("lock_protocol", procshare_model::fuzzing::lock_protocol);
    assert!(n >= 12, "corpus too small: {n} inputs");
}
