//! A producer killed with `kill -9` while blocked in `JoinableQueue::put` on
//! a full queue leaves no phantom task behind: once the items that are in the
//! queue are taken and marked done, `join` returns. (CPython's `put` counts
//! the task, then puts: its `join` would wait for ever.)
//!
//! Ordering: the child tells the parent it is about to put through the
//! library's own `Event`; the parent then waits until the child's main thread
//! is asleep in a futex wait (read from `/proc/<pid>/task/<pid>/syscall`):
//! after the `Event`, the only futex wait the child makes is the one inside
//! `put`, waiting for room. No sleeps. Every wait in the parent has a
//! generous timeout, so that a regression fails the test instead of hanging it.

use std::time::{Duration, Instant};

use procshare::Event;
use procshare::{JoinableQueue, Process};

const GENEROUS: Duration = Duration::from_secs(30);

/// A child process that is killed and reaped when the test ends, even when it
/// fails (so that no child outlives the test binary).
struct Victim(Process);

impl Drop for Victim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.join();
    }
}

/// Is thread `pid` of process `pid` blocked in the `futex` system call?
/// (`/proc/<pid>/task/<pid>/syscall` starts with the number of the system
/// call the thread is blocked in, or says `running`.)
fn in_futex_wait(pid: u32) -> bool {
    let path = format!("/proc/{pid}/task/{pid}/syscall");
    let Ok(s) = std::fs::read_to_string(path) else {
        return false;
    };
    s.split_whitespace().next() == Some(&libc::SYS_futex.to_string())
}

#[test]
fn producer_killed_while_blocked_in_put_leaves_no_phantom_task() {
    procshare::set_fork_warning(false);
    let q: JoinableQueue<u32> = JoinableQueue::with_maxsize(1).unwrap();
    q.put(&1).unwrap(); // full now
    let about_to_put = Event::new().unwrap();
    let (q2, e2) = (q.clone(), about_to_put.clone());
    let mut p = Process::new(move || {
        e2.set();
        let _ = q2.put(&2); // blocks: the queue is full and nobody takes
        unreachable!("the queue stays full until this process is killed");
    });
    p.start().unwrap();
    let pid = p.pid().expect("started");
    let mut victim = Victim(p);
    assert!(
        about_to_put.wait_timeout(GENEROUS),
        "the child never got to its put"
    );
    // Wait until the child is asleep inside `put` (the item bound is checked
    // before it sleeps: it is past every step that a fast kill could skip).
    let start = Instant::now();
    while !in_futex_wait(pid) {
        assert!(start.elapsed() < GENEROUS, "the child never blocked in put");
        std::thread::yield_now();
    }
    assert_eq!(
        q.queue().qsize(),
        1,
        "the blocked put must not have put anything"
    );
    victim.0.kill().unwrap();
    assert_eq!(victim.0.join().unwrap(), -9);

    // Drain what is in the queue and mark it done: join must return.
    assert_eq!(q.get_timeout(GENEROUS).unwrap(), 1);
    q.task_done().unwrap();
    assert!(
        q.join_timeout(GENEROUS),
        "join waits for a task that no longer exists ({} unfinished)",
        q.unfinished()
    );
    assert_eq!(q.unfinished(), 0);
    assert!(
        q.task_done().is_err(),
        "task_done accepted with nothing unfinished"
    );

    // The queue goes on: the dead producer's lock is recovered by the next put.
    q.put_timeout(&3, GENEROUS).unwrap();
    assert_eq!(q.unfinished(), 1);
    assert_eq!(q.get_timeout(GENEROUS).unwrap(), 3);
    q.task_done().unwrap();
    assert!(q.join_timeout(GENEROUS));
}

/// A consumer killed with `kill -9` between `get` and `task_done`: its task
/// stays unfinished (the documented behaviour, as in CPython: `task_done` is
/// anonymous, so no process "owes" a task; see `procshare_model::joinable`,
/// "A consumer that dies holding a task"). What procshare adds: `join` has a
/// timeout that returns instead of hanging, `unfinished` tells how many
/// tasks are missing, and a survivor that knows the task is lost can mark it
/// done, after which `join` returns, and the queue and its lock go on.
#[test]
fn consumer_killed_between_get_and_task_done_leaves_its_task_unfinished_and_recoverable() {
    procshare::set_fork_warning(false);
    let q: JoinableQueue<u32> = JoinableQueue::new().unwrap();
    q.put(&1).unwrap();
    q.put(&2).unwrap();
    let got_it = Event::new().unwrap();
    let never = Event::new().unwrap();
    let (q2, g2, n2) = (q.clone(), got_it.clone(), never.clone());
    let mut p = Process::new(move || {
        assert_eq!(q2.get().unwrap(), 1);
        g2.set();
        n2.wait(); // never set: killed here, holding task 1
        unreachable!("the event is never set");
    });
    p.start().unwrap();
    let mut victim = Victim(p);
    assert!(
        got_it.wait_timeout(GENEROUS),
        "the child never took its item"
    );
    victim.0.kill().unwrap();
    assert_eq!(victim.0.join().unwrap(), -9);

    // The other task is taken and marked done by a live consumer.
    assert_eq!(q.get_timeout(GENEROUS).unwrap(), 2);
    q.task_done().unwrap();
    // The dead consumer's task is still unfinished: join does not pretend.
    assert_eq!(q.unfinished(), 1);
    assert!(!q.join_timeout(Duration::from_millis(50)));
    // A survivor that knows the task is lost marks it done: join returns.
    q.task_done().unwrap();
    assert!(q.join_timeout(GENEROUS));
    assert_eq!(q.unfinished(), 0);
    // The dead consumer held the consumer lock in no operation (it was
    // between get and task_done), and the queue goes on.
    q.put(&3).unwrap();
    assert_eq!(q.get_timeout(GENEROUS).unwrap(), 3);
    q.task_done().unwrap();
    assert!(q.join_timeout(GENEROUS));
}
