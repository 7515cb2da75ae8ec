//! Seed 003 ("Sharing data between processes"), its `Queue` program, step for
//! step: ten items and one `None` sentinel per worker are put on a queue
//! (`Option<u32>` in Rust), four workers each take items until they get
//! `None` and print `Processed i Result 2i`.
//!
//! The lines are printed by the children. Each child writes each line with a
//! single `write(2)` ([`procshare_tests::say`]), so lines from different workers never
//! mix within a line. [`run`] starts the workers with their standard output
//! redirected into a pipe and returns what they printed, in the order it
//! arrived (the order across workers is free, as in the document).

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use procshare::{Process, Queue};

/// The worker: `while True: item = queue.get(); if item is None: break; print(...)`.
pub fn worker(queue: &Queue<Option<u32>>) {
    loop {
        let item = queue.get().expect("get");
        let Some(item) = item else { break };
        let result = item * 2;
        procshare_tests::say(&format!("Processed {item} Result {result}"));
    }
}

/// Runs the program; returns the lines the workers printed.
pub fn run() -> Vec<String> {
    let queue: Queue<Option<u32>> = Queue::new().expect("queue");
    let mut fds = [0; 2];
    // SAFETY: `fds` is a writable array of two ints.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just created and are owned only here.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let wr_raw = wr.as_raw_fd();
    let mut processes: Vec<Process> = (0..4)
        .map(|_| {
            let queue = queue.clone();
            Process::new(move || {
                // The child's stdout becomes the pipe (dup2 clears CLOEXEC on fd 1).
                // SAFETY: plain dup2 of a descriptor this process holds.
                unsafe { libc::dup2(wr_raw, 1) };
                worker(&queue);
            })
        })
        .collect();
    for i in 0..10 {
        queue.put(&Some(i)).expect("put");
    }
    for _ in 0..processes.len() {
        queue.put(&None).expect("put");
    }
    for p in &mut processes {
        p.start().expect("start");
    }
    drop(wr); // only the children hold the write end now: EOF when they exit
    let mut text = String::new();
    std::fs::File::from(rd)
        .read_to_string(&mut text)
        .expect("read the workers' output");
    for p in &mut processes {
        p.join().expect("join");
    }
    text.lines().map(str::to_string).collect()
}

/// `worker(queue)` as a plain function with its argument (see [`program`]).
fn worker_target((queue,): (Queue<Option<u32>>,)) {
    worker(&queue);
}

/// The document's program as it is written: the workers print straight to
/// standard output (one `write(2)` per line, so lines never mix). They are
/// plain functions with their arguments, so they run under whichever start
/// method is set ([`procshare::set_start_method`]). This is what the scenario
/// runner runs; [`run`] is the same program returning the lines (fork only).
pub fn program() {
    let queue: Queue<Option<u32>> = Queue::new().expect("queue");
    let mut processes: Vec<Process> = (0..4)
        .map(|_| Process::with_target(worker_target, (queue.clone(),)))
        .collect();
    for i in 0..10 {
        queue.put(&Some(i)).expect("put");
    }
    for _ in 0..processes.len() {
        queue.put(&None).expect("put");
    }
    for p in &mut processes {
        p.start().expect("start");
    }
    for p in &mut processes {
        p.join().expect("join");
    }
}

/// Runs seed 003's queue program. (`cargo run --example seed003_queue`; the same code is the scenario
/// that `cargo run -p procshare-tests --bin scenarios` and the snapshot tests run.)
#[allow(dead_code)] // unused where this file is a module of `procshare_tests`
fn main() {
    program();
}
