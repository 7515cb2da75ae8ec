//! Two processes incrementing one `Value<i64>` under its lock (the default
//! `RLock`, and a separate one), against `std::sync::Mutex<i64>` between two
//! threads and glibc's robust process-shared `pthread_mutex_t` between two
//! processes, in the same run. `cargo bench -p procshare --bench value_lock`.
//! (Process start+join: `--bench start_methods`; both are in `--bench table`.)

mod common;

use common::locks::{robust_pthread, std_mutex, value};
use procshare::{RLock, Value};

const INCREMENTS: u64 = 2_000_000; // per worker
const ROUNDS: usize = 3;

fn main() {
    procshare::set_fork_warning(false);
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for the list
    }
    println!("procshare value_lock bench: medians of {ROUNDS} interleaved rounds, {INCREMENTS} increments per worker");
    let [std_ops, pthread, rlock_ops, lock_ops] = common::rounds(
        ROUNDS,
        [
            &|| std_mutex(INCREMENTS),
            &|| robust_pthread(INCREMENTS),
            &|| value(INCREMENTS, || Value::new(0).unwrap()),
            &|| {
                value(INCREMENTS, || {
                    Value::with_lock(0, RLock::new().unwrap()).unwrap()
                })
            },
        ],
    )
    .map(|v| common::median(&v));
    println!();
    println!("| measurement | rate | ratio to std | ratio to pthread |");
    println!("|---|---|---|---|");
    let row = |name: &str, r: f64| {
        println!(
            "| {name} | {:.2} M ops/s | {:.2}x | {:.2}x |",
            r / 1e6,
            r / std_ops,
            r / pthread
        )
    };
    row("std::sync::Mutex<i64>, 2 threads", std_ops);
    row("robust pshared pthread_mutex, 2 processes", pthread);
    row("Value<i64> (default RLock), 2 processes", rlock_ops);
    row("Value<i64> with a separate RLock, 2 processes", lock_ops);
}
