//! Replays the corpus of the `lock_protocol` fuzz target
//! (`fuzz/corpus/lock_protocol`) through the very function the target calls,
//! so that `cargo test` on stable re-checks every input the fuzzer kept: each
//! is a set of model threads' lock operations, crash points and a schedule.

use std::path::PathBuf;

#[test]
fn replay_lock_protocol_corpus() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/lock_protocol");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(files.len() >= 12, "corpus too small: {}", dir.display());
    for p in files {
        eprintln!("replaying {}", p.display());
        let data = std::fs::read(&p).unwrap();
        procshare_model::fuzzing::lock_protocol(&data);
    }
}
