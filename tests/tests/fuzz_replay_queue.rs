//! Replays the corpora of the queue fuzz targets (`fuzz/corpus/ring_ops`,
//! `queue_protocol`, `queue_frame`) through the very functions the targets
//! call, so that `cargo test` on stable re-checks every input the fuzzers kept.

use std::path::PathBuf;

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "empty corpus {}", dir.display());
    files
}

#[test]
fn replay_ring_ops_corpus() {
    for (p, data) in corpus("ring_ops") {
        eprintln!("replaying {}", p.display());
        procshare::queue::fuzzing::ring_ops(&data);
    }
}

#[test]
fn replay_queue_protocol_corpus() {
    for (p, data) in corpus("queue_protocol") {
        eprintln!("replaying {}", p.display());
        procshare_model::ring::fuzzing::queue_protocol(&data);
    }
}

#[test]
fn replay_queue_frame_corpus() {
    for (p, data) in corpus("queue_frame") {
        eprintln!("replaying {}", p.display());
        procshare::queue::fuzzing::queue_frame(&data);
    }
}
