//! Replays the corpora of the manager's fuzz targets (`fuzz/corpus/wire_frame`,
//! `fuzz/corpus/manager_handshake`) through the very functions the targets
//! call, so that `cargo test` on stable re-checks every input the fuzzers kept.

use procshare_tests::corpus::replay;

#[test]
fn replay_wire_frame_corpus() {
    replay("wire_frame", procshare::fuzzing::wire_frame);
}

#[test]
fn replay_manager_handshake_corpus() {
    replay("manager_handshake", procshare::fuzzing::manager_handshake);
}
