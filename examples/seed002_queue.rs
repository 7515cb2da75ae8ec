//! Seed 002 ("Sharing State"), its queue program, step for step: the parent
//! puts a dict on a `Queue`, the child gets it, the parent changes *its* copy,
//! and the child still sees `{'key': 'value'}` — a queue passes a copy.
//!
//! Two `Semaphore(0)`s order the processes as in the document (never a
//! sleep). The child's lines travel back to the parent through a [`Pipe`] so
//! that [`run`] can return every line in the order the processes printed
//! them (the semaphores fix that order).
//!
//! **`id(var)`.** CPython prints the address of the dict object: the child's
//! is a different object (a copy), so its id differs from the parent's. The
//! twin prints the address of the map's value buffer (`var["key"]`'s heap
//! bytes) in each process. In the child the parent's map still exists (the
//! child is a fork), so the child's freshly decoded copy necessarily lives at
//! another address: the two ids differ, as in the document, and for the same
//! reason.

use std::collections::BTreeMap;

use procshare::Semaphore;
use procshare::{cpu_count, Pipe, Process, Queue};

/// Python's `str(dict)` for a map of strings: `{'key': 'value'}`.
pub fn py_dict(m: &BTreeMap<String, String>) -> String {
    let items: Vec<String> = m.iter().map(|(k, v)| format!("'{k}': '{v}'")).collect();
    format!("{{{}}}", items.join(", "))
}

fn id(m: &BTreeMap<String, String>) -> usize {
    m.get("key").map_or(0, |v| v.as_ptr() as usize)
}

/// Runs the program; returns the lines both processes printed, in order.
pub fn run() -> Vec<String> {
    let mut out = Vec::new();
    let q: Queue<BTreeMap<String, String>> = Queue::new().expect("queue");
    let sem1 = Semaphore::new(0).expect("semaphore");
    let sem2 = Semaphore::new(0).expect("semaphore");
    out.push(format!("This machine has {} CPUs", cpu_count()));
    let mut var = BTreeMap::from([("key".to_string(), "value".to_string())]);
    out.push(format!(
        "Parent process puts item on queue with id {}",
        id(&var)
    ));
    q.put(&var).expect("put");
    let (from_child, child_end) = Pipe::<String>::new(false).expect("pipe");
    let mut process = Process::new({
        let (q, sem1, sem2) = (q.clone(), sem1.clone(), sem2.clone());
        move || {
            let var = q.get().expect("get");
            let say = |l: String| child_end.send(&l).expect("send");
            say(format!(
                "Child process received var = {} with id {} from queue",
                py_dict(&var),
                id(&var)
            ));
            sem2.release().expect("release");
            sem1.acquire();
            say(format!(
                "After changes by parent process var in child process = {}",
                py_dict(&var)
            ));
        }
    });
    process.start().expect("start");
    sem2.acquire();
    out.push(from_child.recv().expect("child line"));
    // change the dictionary object
    var.insert("key".to_string(), "new-value".to_string());
    out.push(format!(
        "Parent process changed the enqueued item to {}",
        py_dict(&var)
    ));
    sem1.release().expect("release");
    process.join().expect("join");
    out.push(from_child.recv().expect("child line"));
    out
}

/// `def child_process(q, sem1, sem2)`, printing straight to standard output
/// as the document's child does (see [`program`]).
fn child_process((q, sem1, sem2): (Queue<BTreeMap<String, String>>, Semaphore, Semaphore)) {
    let var = q.get().expect("get");
    procshare_tests::say(&format!(
        "Child process received var = {} with id {} from queue",
        py_dict(&var),
        id(&var)
    ));
    sem2.release().expect("release");
    sem1.acquire();
    procshare_tests::say(&format!(
        "After changes by parent process var in child process = {}",
        py_dict(&var)
    ));
}

/// The document's program as it is written: both processes print to
/// standard output (one `write(2)` per line), in the order the semaphores
/// fix. The child is a plain function with its arguments, so it runs under
/// whichever start method is set ([`procshare::set_start_method`]). This is
/// what the scenario runner runs; [`run`] is the same program returning the
/// lines (the child sends its lines back through a pipe, fork only).
pub fn program() {
    use procshare_tests::say;
    let q: Queue<BTreeMap<String, String>> = Queue::new().expect("queue");
    let sem1 = Semaphore::new(0).expect("semaphore");
    let sem2 = Semaphore::new(0).expect("semaphore");
    say(&format!("This machine has {} CPUs", cpu_count()));
    let mut var = BTreeMap::from([("key".to_string(), "value".to_string())]);
    say(&format!(
        "Parent process puts item on queue with id {}",
        id(&var)
    ));
    q.put(&var).expect("put");
    let mut process = Process::with_target(child_process, (q.clone(), sem1.clone(), sem2.clone()));
    process.start().expect("start");
    sem2.acquire();
    // change the dictionary object
    var.insert("key".to_string(), "new-value".to_string());
    say(&format!(
        "Parent process changed the enqueued item to {}",
        py_dict(&var)
    ));
    sem1.release().expect("release");
    process.join().expect("join");
}

/// Runs seed 002's queue program. (`cargo run --example seed002_queue`; the same code is the scenario
/// that `cargo run -p procshare-tests --bin scenarios` and the snapshot tests run.)
#[allow(dead_code)] // unused where this file is a module of `procshare_tests`
fn main() {
    program();
}
