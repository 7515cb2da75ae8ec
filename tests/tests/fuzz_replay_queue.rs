//! Replays the corpora of the queue fuzz targets (`fuzz/corpus/ring_ops`,
//! `queue_protocol`, `queue_frame`, `pod_queue_ops`) through the very
//! functions the targets call, so that `cargo test` on stable re-checks every
//! input the fuzzers kept.

use procshare_tests::corpus::replay;

#[test]
fn replay_ring_ops_corpus() {
    replay("ring_ops", procshare::fuzzing::ring_ops);
}

#[test]
fn replay_queue_protocol_corpus() {
    replay(
        "queue_protocol",
        procshare_model::ring::fuzzing::queue_protocol,
    );
}

#[test]
fn replay_queue_frame_corpus() {
    replay("queue_frame", procshare::fuzzing::queue_frame);
}

#[test]
fn replay_pod_queue_ops_corpus() {
    let n = replay("pod_queue_ops", procshare::fuzzing::pod_queue_ops);
    assert!(n >= 12, "corpus too small: {n} inputs");
}
