//! Seed 001's pool program (`scenarios seed001/pool_globals`), run as a real
//! process: ten `Got (i, value)` lines, each identifier 0–9 exactly once, each
//! value a Python float in [0, 5). The snapshot holds the lines sorted by
//! identifier with the random values redacted (the document says "the
//! specific results will differ each time"); the order of arrival is free.

use std::process::Command;

fn run() -> Vec<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_scenarios"))
        .args(["--raw", "seed001/pool_globals"])
        .env("PROCSHARE_NO_FORK_WARNING", "1")
        .env("SEED001_SLEEP_SCALE", "0.02")
        .output()
        .expect("run the scenarios binary");
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    assert!(
        out.status.success(),
        "{:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("=== seed001/pool_globals"));
    lines.map(str::to_string).collect()
}

#[test]
fn seed001_every_identifier_once_values_in_range() {
    let lines = run();
    assert_eq!(lines.len(), 10, "{lines:#?}");
    let mut seen = [0u32; 10];
    let mut redacted = Vec::new();
    for l in &lines {
        let inner = l
            .strip_prefix("Got (")
            .and_then(|s| s.strip_suffix(')'))
            .unwrap_or_else(|| panic!("not a `Got (i, value)` line: {l}"));
        let (i, v) = inner.split_once(", ").expect("a pair");
        let i: usize = i.parse().expect("an integer identifier");
        assert!(
            v.contains('.') || v.contains('e'),
            "not a Python float: {v}"
        );
        let v: f64 = v.parse().expect("a float value");
        assert!((0.0..5.0).contains(&v), "value {v} out of [0, 5)");
        seen[i] += 1;
        redacted.push((i, format!("Got ({i}, <value>)")));
    }
    assert_eq!(seen, [1; 10], "each identifier exactly once: {lines:#?}");
    redacted.sort();
    let text: String = redacted.into_iter().map(|(_, l)| l + "\n").collect();
    insta::assert_snapshot!("seed001_pool_globals", text);
}
