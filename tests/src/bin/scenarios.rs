//! Runs the seed documents' programs as Rust twins over real processes and
//! prints what each prints, under a `=== name` header.
//!
//! ```text
//! cargo run -p procshare-tests --bin scenarios            # all of them
//! cargo run -p procshare-tests --bin scenarios -- seed002  # those whose name contains "seed002"
//! cargo run -p procshare-tests --bin scenarios -- --list
//! ```

use procshare_tests::scenarios::{all, say};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        for s in all() {
            println!("{:<24} {}", s.name, s.about);
        }
        return;
    }
    let selected: Vec<_> = all()
        .into_iter()
        .filter(|s| args.is_empty() || args.iter().any(|a| s.name.contains(a.as_str())))
        .collect();
    if selected.is_empty() {
        eprintln!("no scenario matches {args:?}; try --list");
        std::process::exit(2);
    }
    for s in selected {
        say(&format!("=== {}", s.name));
        (s.run)();
    }
}
