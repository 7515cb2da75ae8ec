//! CPython 3.11's `_TestQueue` (Lib/test/_test_multiprocessing.py), ported:
//! one Rust test per CPython test method, named after it, with CPython's
//! assertions, over real processes (forked children, the library's own
//! `Event`s to order them).
//!
//! Mapping: `put(x)`/`put(x, True)`/`put(x, True, None)` -> `put`;
//! `put(x, False, ...)`/`put_nowait` -> `try_put`; `put(x, True, t)` ->
//! `put_timeout`; the same for `get`; `pyqueue.Full`/`Empty` ->
//! `QueueError::Full`/`Empty`; `ValueError('... is closed')` ->
//! `QueueError::Closed` (whose message says "is closed"); `queue_empty` /
//! `queue_full` -> `is_empty` / `is_full`; `close_queue(q)` -> `close` (a
//! no-op in CPython's sense here: there is no feeder thread to join).
//!
//! Not ported as CPython asserts them:
//! * `assertTimingAlmostEqual(...)` after each `Full`/`Empty` (the elapsed
//!   time of a timed-out call): timing asserts are flaky on a shared machine
//!   and this project does not make them; the outcomes (`Full`/`Empty`) are
//!   asserted. `test_timeout`'s lower bound ("a 200 ms timeout does not
//!   return before 100 ms") is kept: it is the timeout's meaning, not a speed.
//! * `time.sleep(DELTA)` "so that values reach the pipe": `put` here copies
//!   the value into shared memory before it returns; there is nothing to wait for.
//!
//! Not applicable:
//! * `test_no_import_lock_contention`: about Python's import lock (a module
//!   that uses a queue while it is being imported, bpo-22853); Rust has no
//!   import-time code.
//! * `test_queue_feeder_on_queue_feeder_error`: tests the feeder thread's
//!   `_on_queue_feeder_error` hook, which is called with a value the feeder
//!   thread failed to pickle. There is no feeder thread: `put` serializes in
//!   the caller and returns the error ([`QueueError::Encode`]), which is what
//!   `test_queue_feeder_donot_stop_onexc` checks below (the serializer was
//!   called, the error reached the caller, the queue goes on).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use procshare::{Event, JoinableQueue, Process, Queue, QueueError};
use procshare_tests::quiet;

/// CPython's `TIMEOUT1` and `TIMEOUT3` (its `TIMEOUT2` is only passed
/// with `block=False`, which ignores it: those calls are `try_put`/`try_get`).
const TIMEOUT1: Duration = Duration::from_millis(100);
const TIMEOUT3: Duration = Duration::from_millis(100);
/// How long an `Event` wait may take before the test fails instead of hanging.
const GENEROUS: Duration = Duration::from_secs(60);

fn start(f: impl FnOnce() + Send + 'static) -> Process {
    let mut p = Process::new(f);
    p.start().unwrap();
    p
}

#[test]
fn test_put() {
    quiet();
    const MAXSIZE: usize = 6;
    let queue: Queue<u32> = Queue::with_maxsize(MAXSIZE).unwrap();
    let child_can_start = Event::new().unwrap();
    let parent_can_continue = Event::new().unwrap();
    let mut proc = start({
        let (queue, child_can_start, parent_can_continue) = (
            queue.clone(),
            child_can_start.clone(),
            parent_can_continue.clone(),
        );
        move || {
            assert!(child_can_start.wait_timeout(GENEROUS));
            for _ in 0..6 {
                queue.get().unwrap();
            }
            parent_can_continue.set();
        }
    });

    assert!(queue.is_empty());
    assert!(!queue.is_full());

    queue.put(&1).unwrap();
    queue.put(&2).unwrap(); // put(2, True)
    queue.put(&3).unwrap(); // put(3, True, None)
    queue.try_put(&4).unwrap(); // put(4, False)
    queue.try_put(&5).unwrap(); // put(5, False, None)
    queue.try_put(&6).unwrap(); // put_nowait(6)

    assert!(!queue.is_empty());
    assert!(queue.is_full());

    assert!(matches!(queue.try_put(&7), Err(QueueError::Full))); // put(7, False)
    assert!(matches!(queue.try_put(&7), Err(QueueError::Full))); // put(7, False, None)
    assert!(matches!(queue.try_put(&7), Err(QueueError::Full))); // put_nowait(7)
    assert!(matches!(
        queue.put_timeout(&7, TIMEOUT1),
        Err(QueueError::Full)
    ));
    assert!(matches!(queue.try_put(&7), Err(QueueError::Full))); // put(7, False, TIMEOUT2)
    assert!(matches!(
        queue.put_timeout(&7, TIMEOUT3),
        Err(QueueError::Full)
    ));

    child_can_start.set();
    assert!(parent_can_continue.wait_timeout(GENEROUS));

    assert!(queue.is_empty());
    assert!(!queue.is_full());

    assert_eq!(proc.join().unwrap(), 0);
    queue.close();
}

#[test]
fn test_get() {
    quiet();
    let queue: Queue<u32> = Queue::new().unwrap();
    let child_can_start = Event::new().unwrap();
    let parent_can_continue = Event::new().unwrap();
    let mut proc = start({
        let (queue, child_can_start, parent_can_continue) = (
            queue.clone(),
            child_can_start.clone(),
            parent_can_continue.clone(),
        );
        move || {
            assert!(child_can_start.wait_timeout(GENEROUS));
            for i in 2..=5 {
                queue.put(&i).unwrap();
            }
            parent_can_continue.set();
        }
    });

    assert!(queue.is_empty());

    child_can_start.set();
    assert!(parent_can_continue.wait_timeout(GENEROUS));

    assert!(!queue.is_empty());

    assert_eq!(queue.get().unwrap(), 2); // get(True, None)
    assert_eq!(queue.get().unwrap(), 3); // get(True)
    assert_eq!(queue.get_timeout(Duration::from_secs(1)).unwrap(), 4);
    assert_eq!(queue.try_get().unwrap(), 5); // get_nowait()

    assert!(queue.is_empty());

    assert!(matches!(queue.try_get(), Err(QueueError::Empty))); // get(False)
    assert!(matches!(queue.try_get(), Err(QueueError::Empty))); // get(False, None)
    assert!(matches!(queue.try_get(), Err(QueueError::Empty))); // get_nowait()
    assert!(matches!(
        queue.get_timeout(TIMEOUT1),
        Err(QueueError::Empty)
    ));
    assert!(matches!(queue.try_get(), Err(QueueError::Empty))); // get(False, TIMEOUT2)
    assert!(matches!(
        queue.get_timeout(TIMEOUT3),
        Err(QueueError::Empty)
    ));

    assert_eq!(proc.join().unwrap(), 0);
    queue.close();
}

#[test]
fn test_fork() {
    quiet();
    let queue: Queue<u32> = Queue::new().unwrap();
    // Put items on the queue before the fork.
    for i in 0..10 {
        queue.put(&i).unwrap();
    }
    let mut p = start({
        let queue = queue.clone();
        move || {
            for i in 10..20 {
                queue.put(&i).unwrap();
            }
        }
    });
    // Check that all expected items are in the queue.
    for i in 0..20 {
        assert_eq!(queue.get().unwrap(), i);
    }
    assert!(matches!(queue.try_get(), Err(QueueError::Empty)));
    assert_eq!(p.join().unwrap(), 0);
    queue.close();
}

#[test]
fn test_qsize() {
    let q: Queue<u32> = Queue::new().unwrap();
    assert_eq!(q.qsize(), 0);
    q.put(&1).unwrap();
    assert_eq!(q.qsize(), 1);
    q.put(&5).unwrap();
    assert_eq!(q.qsize(), 2);
    q.get().unwrap();
    assert_eq!(q.qsize(), 1);
    q.get().unwrap();
    assert_eq!(q.qsize(), 0);
    q.close();
}

#[test]
fn test_task_done() {
    quiet();
    let queue: JoinableQueue<Option<u32>> = JoinableQueue::new().unwrap();
    let mut workers: Vec<Process> = (0..4)
        .map(|_| {
            let q = queue.clone();
            start(move || {
                // for obj in iter(q.get, None): q.task_done()
                while q.get().unwrap().is_some() {
                    q.task_done().unwrap();
                }
            })
        })
        .collect();
    for i in 0..10 {
        queue.put(&Some(i)).unwrap();
    }
    assert!(queue.join_timeout(GENEROUS), "join never returned");
    for _ in &workers {
        queue.put(&None).unwrap();
    }
    for p in &mut workers {
        assert_eq!(p.join().unwrap(), 0);
    }
    queue.close();
}

#[test]
fn test_timeout() {
    let q: Queue<u32> = Queue::new().unwrap();
    let start = Instant::now();
    assert!(matches!(
        q.get_timeout(Duration::from_millis(200)),
        Err(QueueError::Empty)
    ));
    let delta = start.elapsed();
    assert!(delta >= Duration::from_millis(100), "{delta:?}");
    q.close();
}

/// A value whose serialization fails (CPython: `__reduce__` raises).
struct NotSerializable {
    reduce_was_called: AtomicBool,
}

impl serde::Serialize for NotSerializable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        self.reduce_was_called.store(true, Ordering::Relaxed);
        Err(serde::ser::Error::custom("AttributeError"))
    }
}

/// A value that fails to serialize, on a queue that also carries `bool`s
/// (CPython puts both on one queue).
#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
enum Item {
    Bad(Unpicklable),
    Flag(bool),
}

/// Fails to serialize; deserializes (never reached) as a unit struct.
#[derive(serde::Deserialize, Debug, PartialEq)]
struct Unpicklable;

impl serde::Serialize for Unpicklable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("AttributeError"))
    }
}

#[test]
fn test_queue_feeder_donot_stop_onexc() {
    quiet();
    let q: Queue<Item> = Queue::new().unwrap();
    // CPython's feeder thread reports the error on stderr and goes on; here
    // `put` returns it to the caller, and the queue goes on.
    assert!(matches!(
        q.put(&Item::Bad(Unpicklable)),
        Err(QueueError::Encode(_))
    ));
    q.put(&Item::Flag(true)).unwrap();
    assert_eq!(q.get_timeout(GENEROUS).unwrap(), Item::Flag(true));
    q.close();

    // bpo-33078: the queue size is correct after errors.
    let q: Queue<Item> = Queue::with_maxsize(1).unwrap();
    assert!(matches!(
        q.put(&Item::Bad(Unpicklable)),
        Err(QueueError::Encode(_))
    ));
    q.put(&Item::Flag(true)).unwrap();
    assert_eq!(q.qsize(), 1);
    assert_eq!(q.get_timeout(GENEROUS).unwrap(), Item::Flag(true));
    assert!(q.is_empty());
    q.close();

    // CPython's `reduce_was_called`: the serializer ran (in the caller).
    let v = NotSerializable {
        reduce_was_called: AtomicBool::new(false),
    };
    let q: Queue<NotSerializable> = Queue::new().unwrap();
    assert!(matches!(q.put(&v), Err(QueueError::Encode(_))));
    assert!(v.reduce_was_called.load(Ordering::Relaxed));
}

#[test]
fn test_closed_queue_put_get_exceptions() {
    let q: Queue<String> = Queue::new().unwrap();
    let j: JoinableQueue<String> = JoinableQueue::new().unwrap();
    q.close();
    j.close();
    for (put, get) in [
        (q.put(&"foo".into()), q.get()),
        (j.put(&"foo".into()), j.get()),
    ] {
        let e = put.unwrap_err();
        assert!(matches!(e, QueueError::Closed), "{e:?}");
        assert!(e.to_string().contains("is closed"), "{e}");
        let e = get.unwrap_err();
        assert!(matches!(e, QueueError::Closed), "{e:?}");
        assert!(e.to_string().contains("is closed"), "{e}");
    }
}
