//! Seed 001: "share a global variable with all workers in the process pool".
//!
//! The document's program, step for step:
//!
//! ```python
//! def init_worker(shared_queue):
//!     global queue
//!     queue = shared_queue
//!
//! def task(identifier):
//!     value = random() * 5
//!     sleep(value)
//!     global queue
//!     queue.put((identifier, value))
//!
//! if __name__ == '__main__':
//!     shared_queue = SimpleQueue()
//!     with Pool(initializer=init_worker, initargs=(shared_queue,)) as pool:
//!         _ = pool.map_async(task, range(10))
//!         for i in range(10):
//!             result = shared_queue.get()
//!             print(f'Got {result}', flush=True)
//! ```
//!
//! The shared queue is procshare's `SimpleQueue` (shared memory), given to
//! each worker through `initargs`, as the document passes its own (inherited
//! by a forked worker, sent as a handle to a spawned one).
//! The sleep *is* the document's simulated work; `sleep_scale` shrinks it so
//! that a test runs fast (1.0 is the document's program).

use std::sync::OnceLock;
use std::time::Duration;

use procshare::Pool;
use procshare::SimpleQueue;
use rand::{Rng, SeedableRng};

/// What each worker's initializer stores: the document's `global queue`
/// (and the sleep scale, which the document does not have).
static QUEUE: OnceLock<(SimpleQueue<(u32, f64)>, f64)> = OnceLock::new();

/// `init_worker(shared_queue)`: store the inherited queue as this worker's global.
fn init_worker(args: (SimpleQueue<(u32, f64)>, f64)) {
    let _ = QUEUE.set(args);
}

/// `task(identifier)`: a random value in [0, 5), sleep that long (scaled),
/// put `(identifier, value)` on the global queue.
fn task(identifier: u32) {
    // A fresh generator from the OS: forked workers must not share a stream.
    let value = rand::rngs::StdRng::from_entropy().gen::<f64>() * 5.0;
    let (queue, scale) = QUEUE.get().expect("init_worker ran before any task");
    std::thread::sleep(Duration::from_secs_f64(value * scale));
    queue
        .put(&(identifier, value))
        .expect("put on the shared queue");
}

/// Python's `repr` of a float (shortest round-trip digits, always a `.` or
/// an exponent; exponents with at least two digits).
pub fn py_float(v: f64) -> String {
    let a = v.abs();
    if a != 0.0 && !(1e-4..1e16).contains(&a) {
        let s = format!("{v:e}");
        let (m, e) = s.split_once('e').expect("exponent");
        let e: i32 = e.parse().expect("exponent digits");
        let sign = if e < 0 { '-' } else { '+' };
        return format!("{m}e{sign}{:02}", e.abs());
    }
    let s = format!("{v}");
    if s.contains('.') || s.contains("inf") || s.contains("NaN") {
        s
    } else {
        format!("{s}.0")
    }
}

/// Runs the program and returns the lines it prints (`Got (i, value)`), in
/// the order the results arrived.
pub fn run(sleep_scale: f64) -> Vec<String> {
    // shared_queue = SimpleQueue()
    let shared_queue: SimpleQueue<(u32, f64)> = SimpleQueue::new().expect("a shared queue");
    let mut lines = Vec::new();
    {
        // with Pool(initializer=init_worker, initargs=(shared_queue,)) as pool:
        // (the start method set by `procshare::set_start_method`, fork by default)
        let pool = Pool::builder()
            .start_method(procshare::get_start_method())
            .spawn_initializer(init_worker, (shared_queue.clone(), sleep_scale))
            .build()
            .expect("build the pool");
        // _ = pool.map_async(task, range(10))
        let _r = pool
            .map_async(task, 0..10u32, None)
            .expect("issue the tasks");
        // for i in range(10): result = shared_queue.get(); print(f'Got {result}')
        for _ in 0..10 {
            let (i, value) = shared_queue.get().expect("get a result");
            lines.push(format!("Got ({i}, {})", py_float(value)));
        }
        // leaving `with` terminates the pool (Drop)
    }
    lines
}

/// Runs seed 001's program at the document's own sleep times. (`cargo run --example seed001`; the same code is the scenario
/// that `cargo run -p procshare-tests --bin scenarios` and the snapshot tests run.)
#[allow(dead_code)] // unused where this file is a module of `procshare_tests`
fn main() {
    for line in run(1.0) {
        procshare_tests::say(&line);
    }
}

#[cfg(test)]
mod tests {
    use super::py_float;

    #[test]
    fn floats_print_as_python() {
        assert_eq!(py_float(0.38947694846648895), "0.38947694846648895");
        assert_eq!(py_float(3.0), "3.0");
        assert_eq!(py_float(0.0), "0.0");
        assert_eq!(py_float(1.5e-5), "1.5e-05");
        assert_eq!(py_float(4.282642869898409), "4.282642869898409");
    }
}
