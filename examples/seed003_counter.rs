//! Seed 003 ("Sharing data between processes in Python"), its `Value` counter:
//! ten processes each take the counter's lock and add one; the parent prints
//! `Counter: 10`.

use procshare::{Process, Value};
use procshare_tests::say;

/// `def increment(counter): with counter.get_lock(): counter.value += 1`
fn increment((counter,): (Value<i32>,)) {
    let mut value = counter.lock().unwrap_or_else(|died| died.into_inner());
    *value += 1;
}

/// The document's program, under whichever start method is set
/// ([`procshare::set_start_method`]).
pub fn run() {
    let counter = Value::<i32>::new(0).expect("shared memory");
    let mut processes: Vec<Process> = (0..10)
        .map(|_| Process::with_target(increment, (counter.clone(),)))
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
