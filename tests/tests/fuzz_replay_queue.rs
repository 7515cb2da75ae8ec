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

/// The inputs of `fuzz/hangs/pod_queue_ops` (see its README): after foreign
/// writes to the slot queue's hints or `seq`s, a non-blocking `PodQueue` call
/// walked or jumped for ever until the slot queue bounded its jumps
/// (`JUMP_LIMIT`) and a walk started again (two laps). Each runs on a thread
/// of its own, given 10 seconds (a watchdog: each returns in microseconds;
/// before the bound, all six were still running after 10 seconds).
#[test]
fn pod_queue_ops_known_hangs_return() {
    use std::sync::mpsc;
    use std::time::Duration;

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/hangs/pod_queue_ops");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("read hangs directory").path())
        .filter(|p| p.is_file() && p.extension().is_none())
        .collect();
    files.sort();
    assert!(files.len() >= 6, "hang inputs missing: {files:?}");
    let mut stuck = Vec::new();
    for p in files {
        let data = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let (tx, rx) = mpsc::channel();
        // A hung thread is left spinning; the test process ends after the
        // assertion below.
        std::thread::spawn(move || {
            procshare::fuzzing::pod_queue_ops(&data);
            let _ = tx.send(());
        });
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(()) => eprintln!("{}: returned", p.display()),
            Err(mpsc::RecvTimeoutError::Timeout) => stuck.push(p),
            Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{}: panicked", p.display()),
        }
    }
    assert!(stuck.is_empty(), "never returned: {stuck:?}");
}
