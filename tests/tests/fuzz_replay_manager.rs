//! Replays the corpora of the manager's fuzz targets (`fuzz/corpus/wire_frame`,
//! `fuzz/corpus/manager_handshake`) through the very functions the targets
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
fn replay_wire_frame_corpus() {
    for (p, data) in corpus("wire_frame") {
        eprintln!("replaying {}", p.display());
        procshare::manager::fuzzing::wire_frame(&data);
    }
}

#[test]
fn replay_manager_handshake_corpus() {
    for (p, data) in corpus("manager_handshake") {
        eprintln!("replaying {}", p.display());
        procshare::manager::fuzzing::manager_handshake(&data);
    }
}
