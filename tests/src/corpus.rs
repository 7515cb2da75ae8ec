//! The fuzz corpora, for the replay tests (`tests/tests/fuzz_replay_*.rs`):
//! `cargo test` on stable feeds every input the fuzzers kept through the very
//! function each cargo-fuzz target calls.

use std::path::PathBuf;

/// Every file of `fuzz/corpus/<target>/`, sorted by path, with its bytes.
/// Panics (failing the replay test) if the directory is missing or empty.
pub fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("read corpus directory").path())
        .filter(|p| p.is_file())
        .map(|p| {
            let b = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, b)
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "empty corpus {}", dir.display());
    files
}

/// Replay every input of `target`'s corpus through `run`, naming each on stderr
/// (so a failing input is identified).
pub fn replay(target: &str, run: impl Fn(&[u8])) -> usize {
    let files = corpus(target);
    for (p, data) in &files {
        eprintln!("replaying {}", p.display());
        run(data);
    }
    files.len()
}
