//! Runs the seed documents' programs as Rust twins over real processes, under
//! one or all of Python's start methods, prints what each prints and a
//! verdict against what its document shows, then a summary line. Exits
//! non-zero if any run does not match.
//!
//! ```text
//! cargo run -p procshare-tests --bin scenarios                          # all, under fork
//! cargo run -p procshare-tests --bin scenarios -- --start-method all    # × fork, spawn, forkserver
//! cargo run -p procshare-tests --bin scenarios -- --start-method spawn seed002
//! cargo run -p procshare-tests --bin scenarios -- --list
//! cargo run -p procshare-tests --bin scenarios -- --expected-dir DIR    # other expected files
//! cargo run -p procshare-tests --bin scenarios -- --raw seed002/value   # output only, no verdict
//! ```
//!
//! Each run is a fresh process (this binary again, with `--raw`), so that no
//! run inherits another's state (a fork server, the start method); its
//! standard output is captured and judged (see
//! `procshare_tests::scenarios::verdict`). The expected lines are
//! `tests/src/scenarios/expected/*.txt`, built into the binary.

use std::process::Command;

use procshare::StartMethod;
use procshare_tests::scenarios::verdict::{judge, method_name, Verdict};
use procshare_tests::scenarios::{all, say, Scenario};

const METHODS: [StartMethod; 3] = [
    StartMethod::Fork,
    StartMethod::Spawn,
    StartMethod::ForkServer,
];

fn usage(msg: &str) -> ! {
    eprintln!(
        "{msg}\nusage: scenarios [--start-method fork|spawn|forkserver|all] \
         [--expected-dir DIR] [--raw] [--list] [NAME-PART...]"
    );
    std::process::exit(2)
}

struct Args {
    methods: Vec<StartMethod>,
    raw: bool,
    list: bool,
    expected_dir: Option<String>,
    filters: Vec<String>,
}

fn parse() -> Args {
    let mut a = Args {
        methods: vec![StartMethod::Fork],
        raw: false,
        list: false,
        expected_dir: None,
        filters: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        match x.as_str() {
            "--list" => a.list = true,
            "--raw" => a.raw = true,
            "--start-method" => {
                let m = it
                    .next()
                    .unwrap_or_else(|| usage("--start-method needs a value"));
                a.methods = match m.as_str() {
                    "all" => METHODS.to_vec(),
                    "fork" => vec![StartMethod::Fork],
                    "spawn" => vec![StartMethod::Spawn],
                    "forkserver" => vec![StartMethod::ForkServer],
                    _ => usage(&format!("unknown start method {m:?}")),
                };
            }
            "--expected-dir" => {
                a.expected_dir = Some(
                    it.next()
                        .unwrap_or_else(|| usage("--expected-dir needs a value")),
                );
            }
            _ if x.starts_with("--") => usage(&format!("unknown option {x:?}")),
            _ => a.filters.push(x),
        }
    }
    a
}

/// `--raw`: runs the scenarios here, printing `=== name` and their output.
fn raw(method: StartMethod, selected: &[Scenario]) {
    procshare::set_start_method(method);
    for s in selected {
        say(&format!("=== {}", s.name));
        (s.run)();
    }
}

/// One scenario under one method, in a fresh process: its output lines.
fn run_one(s: &Scenario, method: StartMethod) -> Result<Vec<String>, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let out = Command::new(exe)
        .args(["--raw", "--start-method", method_name(method), s.name])
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run the scenario: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = text.lines().map(str::to_string);
    let header = format!("=== {}", s.name);
    if lines.next().as_deref() != Some(header.as_str()) {
        return Err(format!("no `{header}` header; stdout: {text:?}"));
    }
    let lines: Vec<String> = lines.collect();
    if !out.status.success() {
        for l in &lines {
            say(l);
        }
        return Err(format!("the program failed ({})", out.status));
    }
    Ok(lines)
}

fn expected_text(s: &Scenario, dir: Option<&str>) -> Result<String, String> {
    match dir {
        None => Ok(s.expected.to_string()),
        Some(d) => {
            let path = std::path::Path::new(d).join(s.expected_file());
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))
        }
    }
}

fn main() {
    let args = parse();
    if args.list {
        for s in all() {
            println!("{:<24} {}", s.name, s.about);
        }
        return;
    }
    // A filter that is a scenario's full name selects that one only
    // (`seed002/value`, not `seed002/value_on_queue`); another selects every
    // name containing it.
    let names: Vec<&str> = all().iter().map(|s| s.name).collect();
    let selects = |name: &str, f: &str| {
        if names.contains(&f) {
            name == f
        } else {
            name.contains(f)
        }
    };
    let selected: Vec<Scenario> = all()
        .into_iter()
        .filter(|s| args.filters.is_empty() || args.filters.iter().any(|f| selects(s.name, f)))
        .collect();
    if selected.is_empty() {
        usage(&format!(
            "no scenario matches {:?}; try --list",
            args.filters
        ));
    }
    if args.raw {
        if args.methods.len() != 1 {
            usage("--raw runs under one start method");
        }
        raw(args.methods[0], &selected);
        return;
    }
    let (mut matched, mut failed, mut pending) = (0usize, 0usize, Vec::new());
    for &m in &args.methods {
        for s in &selected {
            say(&format!("=== {} [{}]", s.name, method_name(m)));
            if let Some(why) = s.pending(m) {
                say(&format!(
                    "--- PENDING: not run under {}: {why}",
                    method_name(m)
                ));
                pending.push(why);
                continue;
            }
            let verdict = expected_text(s, args.expected_dir.as_deref()).and_then(|exp| {
                let lines = run_one(s, m)?;
                for l in &lines {
                    say(l);
                }
                Ok(judge(&exp, m, s.freedoms, &lines))
            });
            let freedoms: Vec<&str> = s.freedoms.iter().map(|f| f.name()).collect();
            match verdict {
                Ok(Verdict::Match) => {
                    matched += 1;
                    let free = if freedoms.is_empty() {
                        "exact".to_string()
                    } else {
                        format!("freedoms: {}", freedoms.join(", "))
                    };
                    say(&format!(
                        "--- match: the document's lines ({}; {free})",
                        s.expected_file()
                    ));
                }
                Ok(Verdict::Mismatch {
                    why,
                    expected,
                    observed,
                }) => {
                    failed += 1;
                    say(&format!("--- MISMATCH ({}): {why}", s.expected_file()));
                    say("    expected:");
                    for l in &expected {
                        say(&format!("      {l}"));
                    }
                    say("    observed:");
                    for l in &observed {
                        say(&format!("      {l}"));
                    }
                }
                Err(why) => {
                    failed += 1;
                    say(&format!("--- MISMATCH: {why}"));
                }
            }
        }
    }
    let n_m = args.methods.len();
    let mut summary = format!(
        "{} scenario{} × {} start method{}: {matched} match",
        selected.len(),
        if selected.len() == 1 { "" } else { "s" },
        n_m,
        if n_m == 1 { "" } else { "s" },
    );
    if failed > 0 {
        summary.push_str(&format!(", {failed} MISMATCH"));
    }
    if !pending.is_empty() {
        let mut why = pending.clone();
        why.sort_unstable();
        why.dedup();
        summary.push_str(&format!(", {} pending ({})", pending.len(), why.join("; ")));
    }
    say(&summary);
    if failed > 0 {
        std::process::exit(1);
    }
}
