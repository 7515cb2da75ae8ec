//! The seed scenarios, run as real processes (the `scenarios` binary, one
//! scenario per run), checked against snapshots written from the documents.
//!
//! The snapshot files in `snapshots/` were written by hand from what the seed
//! documents show (and what CPython 3.11 prints for the programs whose output
//! the document describes but does not show); they are not recorded from this
//! code. Only what a document leaves free is normalized, and each
//! normalization first checks the property that makes it legitimate:
//!
//! * `id(...)` numbers become `<id 1>`, `<id 2>`, ... in order of first
//!   appearance, so equal ids stay equal and different ids stay different;
//! * the CPU count becomes `<cpus>` after checking it is this machine's;
//! * the order of lines printed by different workers (seed 003's queue, seed
//!   001's pool) is sorted, after checking each line is whole;
//! * seed 000's manager list is put in document order after checking each
//!   worker's five words appear exactly once and in that worker's order;
//! * seed 001's random sleep values become `<value>` after checking they lie in [0, 5).

use std::process::Command;

fn run(name: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_scenarios"))
        .args(["--raw", name])
        .env("PROCSHARE_NO_FORK_WARNING", "1")
        .output()
        .expect("run the scenarios binary");
    let stdout = String::from_utf8(out.stdout).expect("utf-8 output");
    assert!(
        out.status.success(),
        "scenario {name} failed: {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some(format!("=== {name}").as_str()), "header");
    lines.map(|l| format!("{l}\n")).collect()
}

fn ids(text: &str) -> String {
    let mut seen: Vec<String> = Vec::new();
    let mut out = String::new();
    for line in text.lines() {
        let words: Vec<String> = line
            .split(' ')
            .enumerate()
            .map(|(i, w)| {
                let prev = line.split(' ').nth(i.wrapping_sub(1)).unwrap_or("");
                if prev == "id" && !w.is_empty() && w.chars().all(|c| c.is_ascii_digit()) {
                    let n = match seen.iter().position(|s| s == w) {
                        Some(n) => n,
                        None => {
                            seen.push(w.to_string());
                            seen.len() - 1
                        }
                    };
                    format!("<id {}>", n + 1)
                } else {
                    w.to_string()
                }
            })
            .collect();
        out.push_str(&words.join(" "));
        out.push('\n');
    }
    out
}

fn cpus(text: &str) -> String {
    let n = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let want = format!("This machine has {n} CPUs");
    text.lines()
        .map(|l| {
            if l.starts_with("This machine has ") {
                assert_eq!(l, want, "CPU count");
                "This machine has <cpus> CPUs\n".to_string()
            } else {
                format!("{l}\n")
            }
        })
        .collect()
}

#[test]
fn seed000_plain_list() {
    insta::assert_snapshot!("seed000_plain_list", run("seed000/plain_list"));
}

#[test]
fn seed000_manager_list() {
    let out = run("seed000/manager_list");
    let line = out.trim_end();
    let words: Vec<&str> = line
        .strip_prefix('[')
        .and_then(|l| l.strip_suffix(']'))
        .expect("a Python list")
        .split(", ")
        .map(|w| w.trim_matches('\''))
        .collect();
    let one = ["one", "two", "three", "four", "five"];
    let two = ["six", "seven", "eight", "nine", "ten"];
    let of = |set: &[&str]| {
        words
            .iter()
            .copied()
            .filter(|w| set.contains(w))
            .collect::<Vec<_>>()
    };
    assert_eq!(words.len(), 10, "{line}");
    assert_eq!(of(&one), one, "worker one's words out of order: {line}");
    assert_eq!(of(&two), two, "worker two's words out of order: {line}");
    // Any interleaving of the two workers is what Python may print too.
    let doc: Vec<String> = one
        .iter()
        .chain(two.iter())
        .map(|w| format!("'{w}'"))
        .collect();
    insta::assert_snapshot!("seed000_manager_list", format!("[{}]\n", doc.join(", ")));
}

#[test]
fn seed003_counter() {
    insta::assert_snapshot!("seed003_counter", run("seed003/counter"));
}

#[test]
fn seed002_value() {
    insta::assert_snapshot!("seed002_value", ids(&cpus(&run("seed002/value"))));
}

#[test]
fn seed002_array() {
    insta::assert_snapshot!("seed002_array", ids(&cpus(&run("seed002/array"))));
}

#[test]
fn seed002_queue() {
    insta::assert_snapshot!("seed002_queue", ids(&cpus(&run("seed002/queue"))));
}

#[test]
fn seed003_queue() {
    let out = run("seed003/queue");
    let mut items: Vec<u32> = out
        .lines()
        .map(|l| {
            let rest = l
                .strip_prefix("Processed ")
                .unwrap_or_else(|| panic!("not a whole line: {l:?}"));
            let (i, r) = rest
                .split_once(" Result ")
                .unwrap_or_else(|| panic!("not a whole line: {l:?}"));
            let (i, r): (u32, u32) = (i.parse().expect("item"), r.parse().expect("result"));
            assert_eq!(r, 2 * i, "{l}");
            i
        })
        .collect();
    // The order across the four workers is free; every line is whole.
    items.sort_unstable();
    let sorted: String = items
        .iter()
        .map(|i| format!("Processed {i} Result {}\n", 2 * i))
        .collect();
    insta::assert_snapshot!("seed003_queue", sorted);
}
