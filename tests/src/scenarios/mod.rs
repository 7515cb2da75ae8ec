//! The seed documents' programs, as Rust twins over real processes.
//!
//! Every program of the four seed documents (see `shared/seeds/`) has a
//! function here that follows it step for step. The `scenarios` binary runs
//! them (`cargo run -p procshare-tests --bin scenarios`), and
//! `tests/tests/scenarios.rs` runs that binary as a real process and checks its
//! output against snapshots written from the documents.
//!
//! Output goes through [`say`]: one `write(2)` per line on file descriptor 1,
//! like Python's `print(..., flush=True)`, so lines printed by different
//! processes never interleave within a line and nothing sits in a buffer that
//! a forked child would copy.

// The programs themselves live in the workspace's `examples/` (each is also
// `cargo run --example <name>`); they are compiled here as modules too.
#[path = "../../../examples/seed000.rs"]
pub mod seed000;
#[path = "../../../examples/seed001.rs"]
pub mod seed001;
#[path = "../../../examples/seed002_queue.rs"]
pub mod seed002_queue;
#[path = "../../../examples/seed002_shared.rs"]
pub mod seed002_shared;
#[path = "../../../examples/seed003_counter.rs"]
pub mod seed003_counter;
#[path = "../../../examples/seed003_queue.rs"]
pub mod seed003_queue;

/// Print one whole line with a single `write(2)` to standard output (retrying
/// on a short write), bypassing Rust's buffered, locked `Stdout` — safe in a
/// forked child whatever other threads of the parent held.
pub fn say(line: &str) {
    let mut buf = Vec::with_capacity(line.len() + 1);
    buf.extend_from_slice(line.as_bytes());
    buf.push(b'\n');
    let mut rest = &buf[..];
    while !rest.is_empty() {
        // SAFETY: `rest` is a valid, initialized byte slice for the duration of
        // the call; fd 1 is only written, never closed, here.
        let n = unsafe { libc::write(1, rest.as_ptr().cast(), rest.len()) };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return; // stdout closed: nothing sensible to do in a scenario
        }
        rest = &rest[n as usize..];
    }
}

/// A runnable scenario: its name (`seedNNN/program`) and its body, which prints
/// through [`say`].
#[derive(Debug)]
pub struct Scenario {
    /// `seedNNN/program`, as the snapshot files are named.
    pub name: &'static str,
    /// What the document's program does, in one line.
    pub about: &'static str,
    /// The program.
    pub run: fn(),
}

fn print_lines(lines: Vec<String>) {
    for l in lines {
        say(&l);
    }
}

/// Every scenario, in document order.
pub fn all() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "seed000/plain_list",
            about: "a plain global list filled by two processes stays empty in the parent",
            run: || print_lines(seed000::plain_list()),
        },
        Scenario {
            name: "seed000/manager_list",
            about: "a manager list filled by two processes holds the ten words",
            run: || print_lines(seed000::manager_list()),
        },
        Scenario {
            name: "seed001/pool_globals",
            about:
                "pool workers' initializer stores a shared queue as a global; ten tasks put on it",
            run: || {
                let scale = std::env::var("SEED001_SLEEP_SCALE")
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(1.0);
                print_lines(seed001::run(scale))
            },
        },
        Scenario {
            name: "seed002/queue",
            about: "a dict passed through a Queue is a copy: the parent's change does not reach the child",
            run: || print_lines(seed002_queue::run()),
        },
        Scenario {
            name: "seed002/value",
            about: "a shared Value: the child sees the parent's `var.value += 2`",
            run: seed002_shared::value,
        },
        Scenario {
            name: "seed002/array",
            about: "a shared Array: the child sees the parent's `arr[0] += 100`",
            run: seed002_shared::array,
        },
        Scenario {
            name: "seed003/counter",
            about: "ten processes increment a Value under its lock",
            run: seed003_counter::run,
        },
        Scenario {
            name: "seed003/queue",
            about: "four workers take ten items and a None sentinel each from a Queue",
            run: || print_lines(seed003_queue::run()),
        },
    ]
}
