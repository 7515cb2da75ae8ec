//! Seed 003 ("Sharing data between processes in Python"), its `Value` counter:
//! ten processes each take the counter's lock and add one; the parent prints
//! `Counter: 10`.

use procshare::{Process, Value};
use procshare_tests::say;

/// The document's program.
pub fn run() {
    let counter = Value::<i32>::new(0).expect("shared memory");
    let mut processes: Vec<Process> = (0..10)
        .map(|_| {
            let counter = counter.clone();
            // def increment(counter): with counter.get_lock(): counter.value += 1
            Process::new(move || {
                let mut value = counter.lock().unwrap_or_else(|died| died.into_inner());
                *value += 1;
            })
        })
        .collect();
    for process in &mut processes {
        process.start().expect("start");
    }
    for process in &mut processes {
        process.join().expect("join");
    }
    say(&format!("Counter: {}", counter.get()));
}

/// Runs seed 003's counter program. (`cargo run --example seed003_counter`; the same code is the scenario
/// that `cargo run -p procshare-tests --bin scenarios` and the snapshot tests run.)
#[allow(dead_code)] // unused where this file is a module of `procshare_tests`
fn main() {
    run();
}
