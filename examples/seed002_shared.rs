//! Seed 002 ("Sharing State"), its `Value` and `Array` programs, step for step.
//!
//! Two `Semaphore(0)`s order the two processes exactly as in the document;
//! the child then sees the parent's change because the object lives in shared
//! memory (`var = 3`, `arr[0] = 100`).
//!
//! Python prints `id(var)`, the address of the wrapper object, and the same
//! number in both processes (the child is a fork). The twin prints the address
//! of the shared memory holding the value, which is likewise the same in both
//! processes; snapshots replace each distinct id by `<id N>` so that equal ids
//! stay visibly equal.
//!
//! The children are plain functions with their arguments, so the programs run
//! under whichever start method is set ([`procshare::set_start_method`]). The
//! document: "if you uncomment the start method line 14 to change it to
//! "spawn" and rerun the program, the IDs will be different but the output
//! will be the same". Under spawn (and forkserver) the child maps the same
//! shared memory again at an address of its own: the ids differ, the values
//! printed are the same.

use procshare::Semaphore;
use procshare::{cpu_count, Array, Process, Queue, RawValue, Value};
use procshare_tests::say;

/// `This machine has N CPUs`.
pub fn cpu_line() -> String {
    format!("This machine has {} CPUs", cpu_count())
}

/// `def child_process(sem1, sem2, var)` of the `Value` program.
fn value_child((sem1, sem2, var): (Semaphore, Semaphore, Value<u32>)) {
    let id = var.as_ptr() as usize;
    say(&format!(
        "Child process received var = {} with id {id} from queue",
        var.get()
    ));
    sem2.release().expect("release");
    sem1.acquire();
    say(&format!(
        "After changes by parent process var = {}",
        var.get()
    ));
}

/// `def child_process(sem1, sem2, arr)` of the `Array` program.
fn array_child((sem1, sem2, arr): (Semaphore, Semaphore, Array<i32>)) {
    let id = arr.as_ptr() as usize;
    say(&format!(
        "Child process received var = {} with id {id} from queue",
        arr.get(0).expect("index 0")
    ));
    sem1.release().expect("release");
    sem2.acquire();
    say(&format!(
        "After changes by parent process, child process sees var as = {}",
        arr.get(0).expect("index 0")
    ));
}

/// The document's `Value` program (`Value('I', 1)`, the parent does `var.value += 2`).
pub fn value() {
    let sem1 = Semaphore::new(0).expect("semaphore");
    let sem2 = Semaphore::new(0).expect("semaphore");
    say(&cpu_line());
    let var = Value::<u32>::new(1).expect("shared memory");
    let id = var.as_ptr() as usize;
    say(&format!("Parent process puts item on queue with id {id}"));
    let mut process = Process::with_target(value_child, (sem1.clone(), sem2.clone(), var.clone()));
    process.start().expect("start");
    sem2.acquire();
    // `var.value += 2`: a get and a set, each under the lock (not atomic as a whole).
    var.set(var.get() + 2);
    say(&format!(
        "Parent process changed the enqueued item to {}",
        var.get()
    ));
    sem1.release().expect("release");
    process.join().expect("join");
}

/// The document's `Array` program (`Array('i', range(5))`, the parent does `arr[0] += 100`).
pub fn array() {
    let sem1 = Semaphore::new(0).expect("semaphore");
    let sem2 = Semaphore::new(0).expect("semaphore");
    say(&cpu_line());
    let arr = Array::<i32>::from_values(0..5).expect("shared memory");
    let id = arr.as_ptr() as usize;
    say(&format!("Parent process puts item on queue with id {id}"));
    let mut process = Process::with_target(array_child, (sem1.clone(), sem2.clone(), arr.clone()));
    process.start().expect("start");
    sem1.acquire();
    // `arr[0] += 100`
    arr.set(0, arr.get(0).expect("index 0") + 100)
        .expect("index 0");
    say(&format!(
        "Parent process changed the enqueued item to {}",
        arr.get(0).expect("index 0")
    ));
    sem2.release().expect("release");
    process.join().expect("join");
}

/// `def child_process(var, q)` of the document's fourth program.
fn value_on_queue_child((var, _q): (RawValue<u32>, Queue<u32>)) {
    say(&format!(
        "Child process received var = {} with id {} from queue",
        var.get(),
        var.as_ptr() as usize
    ));
}

/// The document's fourth program: "these shared state objects can only be
/// inherited by the child process. Trying to pass them via a Queue or a Pipe
/// will result in an error": `var = Value('I', 1, lock=False)`, then
/// `q.put(var)  # generates error`.
///
/// In Rust that line does not compile: a shared object is not `Serialize`
/// (`tests/ui/queue_shared_object.rs` proves the refusal). The twin is the
/// rest of the program, which passes `var` to the child by inheritance, as
/// the document says it must be. CPython 3.11 prints the same three lines
/// for the document's program (its `q.put` fails in the queue's feeder
/// thread, which does not stop the program).
pub fn value_on_queue() {
    let q: Queue<u32> = Queue::new().expect("queue");
    say(&cpu_line());
    let var = RawValue::<u32>::new(1).expect("shared memory");
    // q.put(var): refused at compile time (see above).
    say(&format!(
        "Parent process puts item on queue with id {}",
        var.as_ptr() as usize
    ));
    let mut process = Process::with_target(value_on_queue_child, (var.clone(), q.clone()));
    process.start().expect("start");
    process.join().expect("join");
}

/// Runs seed 002's `Value` program, then its `Array` program. (`cargo run --example seed002_shared`; the same code is the scenario
/// that `cargo run -p procshare-tests --bin scenarios` and the snapshot tests run.)
#[allow(dead_code)] // unused where this file is a module of `procshare_tests`
fn main() {
    value();
    array();
    value_on_queue();
}
