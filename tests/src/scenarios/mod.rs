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

pub mod verdict;
pub use verdict::Freedom;

use procshare::StartMethod;

// ---------------------------------------------------------------------------
// THE CHECKS THE LEAD FLIPS. A scenario that needs one of these features runs
// under fork only while its flag is `false`; under spawn and forkserver the
// runner says plainly that it is pending (it neither runs nor fails). Flip a
// flag to `true` once the feature is merged (and make the scenario's twin use
// it: see the note beside each flag).

/// Manager proxies as spawn arguments (the `mgrspawn` branch):
/// `examples/seed000.rs::manager_list` passes the proxy with
/// `Process::with_target(manager_worker, (final_list.clone(), words))`.
pub const MANAGER_PROXIES_AS_SPAWN_ARGS: bool = true;

/// A `Pool` started by spawn or forkserver (the `pspawn` branch).
/// `examples/seed001.rs` asks the pool for the current start method and
/// gives its initializer by `spawn_initializer`.
pub const POOL_UNDER_SPAWN_AND_FORKSERVER: bool = true;

// ---------------------------------------------------------------------------

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
    /// The program. It runs under the start method set by
    /// [`procshare::set_start_method`] (the runner's `--start-method`).
    pub run: fn(),
    /// The lines the document shows (an `expected/*.txt` file, see [`verdict`]).
    pub expected: &'static str,
    /// What the document leaves free in them.
    pub freedoms: &'static [Freedom],
    /// `Some(reason)` if the scenario cannot run under spawn and forkserver yet
    /// (see the flags above).
    pub pending_beyond_fork: Option<&'static str>,
}

impl Scenario {
    /// The expected file's name (`seed002/value` -> `seed002_value.txt`).
    pub fn expected_file(&self) -> String {
        format!("{}.txt", self.name.replace('/', "_"))
    }

    /// Why this scenario cannot run under `method` yet, if it cannot.
    pub fn pending(&self, method: StartMethod) -> Option<&'static str> {
        if method == StartMethod::Fork {
            None
        } else {
            self.pending_beyond_fork
        }
    }
}

fn pending_unless(flag: bool, why: &'static str) -> Option<&'static str> {
    if flag {
        None
    } else {
        Some(why)
    }
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
            expected: include_str!("expected/seed000_plain_list.txt"),
            freedoms: &[],
            pending_beyond_fork: None,
        },
        Scenario {
            name: "seed000/manager_list",
            about: "a manager list filled by two processes holds the ten words",
            run: || print_lines(seed000::manager_list()),
            expected: include_str!("expected/seed000_manager_list.txt"),
            freedoms: &[Freedom::Interleaving],
            pending_beyond_fork: pending_unless(
                MANAGER_PROXIES_AS_SPAWN_ARGS,
                "needs manager proxies as spawn arguments (MANAGER_PROXIES_AS_SPAWN_ARGS)",
            ),
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
            expected: include_str!("expected/seed001_pool_globals.txt"),
            freedoms: &[Freedom::Random, Freedom::Order],
            pending_beyond_fork: pending_unless(
                POOL_UNDER_SPAWN_AND_FORKSERVER,
                "needs a Pool started by spawn/forkserver (POOL_UNDER_SPAWN_AND_FORKSERVER)",
            ),
        },
        Scenario {
            name: "seed002/queue",
            about: "a dict passed through a Queue is a copy: the parent's change does not reach the child",
            run: seed002_queue::program,
            expected: include_str!("expected/seed002_queue.txt"),
            freedoms: &[Freedom::Cpus, Freedom::Ids],
            pending_beyond_fork: None,
        },
        Scenario {
            name: "seed002/value",
            about: "a shared Value: the child sees the parent's `var.value += 2`",
            run: seed002_shared::value,
            expected: include_str!("expected/seed002_value.txt"),
            freedoms: &[Freedom::Cpus, Freedom::Ids],
            pending_beyond_fork: None,
        },
        Scenario {
            name: "seed002/array",
            about: "a shared Array: the child sees the parent's `arr[0] += 100`",
            run: seed002_shared::array,
            expected: include_str!("expected/seed002_array.txt"),
            freedoms: &[Freedom::Cpus, Freedom::Ids],
            pending_beyond_fork: None,
        },
        Scenario {
            name: "seed002/value_on_queue",
            about: "a shared Value cannot go on a Queue (refused at compile time); passed by inheritance",
            run: seed002_shared::value_on_queue,
            expected: include_str!("expected/seed002_value_on_queue.txt"),
            freedoms: &[Freedom::Cpus, Freedom::Ids],
            pending_beyond_fork: None,
        },
        Scenario {
            name: "seed003/counter",
            about: "ten processes increment a Value under its lock",
            run: seed003_counter::run,
            expected: include_str!("expected/seed003_counter.txt"),
            freedoms: &[],
            pending_beyond_fork: None,
        },
        Scenario {
            name: "seed003/queue",
            about: "four workers take ten items and a None sentinel each from a Queue",
            run: seed003_queue::program,
            expected: include_str!("expected/seed003_queue.txt"),
            freedoms: &[Freedom::Order],
            pending_beyond_fork: None,
        },
    ]
}
