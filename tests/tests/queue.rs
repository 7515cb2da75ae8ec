//! Queue, SimpleQueue and JoinableQueue over real processes: copies, large
//! values, close and shutdown, bad input, and `kill -9` of a producer and a consumer in
//! the middle of an operation.

use procshare_tests::{get_from, quiet};
use std::time::{Duration, Instant};

use procshare::Semaphore;
use procshare::{JoinableQueue, Process, Queue, SimpleQueue};
use procshare::{QueueError, RawQueue};

fn big(n: usize, salt: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(salt))
        .collect()
}

#[test]
fn values_larger_than_the_ring_pass_whole_between_processes() {
    quiet();
    let q: Queue<Vec<u8>> = Queue::<Vec<u8>>::builder()
        .capacity_bytes(1024)
        .build()
        .unwrap();
    let mut p = Process::new({
        let q = q.clone();
        move || {
            for k in 0..5u8 {
                q.put(&big(10_000 * k as usize + 7, k)).unwrap();
            }
        }
    });
    p.start().unwrap();
    for k in 0..5u8 {
        assert_eq!(get_from(&q, &p), big(10_000 * k as usize + 7, k));
    }
    assert_eq!(p.join().unwrap(), 0);
    assert!(q.is_empty());
}

#[test]
fn maxsize_try_and_timeouts() {
    let q: Queue<u64> = Queue::with_maxsize(2).unwrap();
    q.put(&1).unwrap();
    q.try_put(&2).unwrap();
    assert!(q.is_full());
    assert!(matches!(q.try_put(&3), Err(QueueError::Full)));
    assert!(matches!(
        q.put_timeout(&3, Duration::from_millis(5)),
        Err(QueueError::Full)
    ));
    assert_eq!(q.qsize(), 2);
    assert_eq!(q.get_timeout(Duration::from_millis(5)).unwrap(), 1);
    assert_eq!(q.try_get().unwrap(), 2);
    assert!(matches!(q.try_get(), Err(QueueError::Empty)));
    assert!(matches!(
        q.get_timeout(Duration::from_millis(5)),
        Err(QueueError::Empty)
    ));
}

#[test]
fn shutdown_wakes_a_blocked_consumer_in_another_process() {
    quiet();
    let q: Queue<u32> = Queue::new().unwrap();
    let ready = Semaphore::new(0).unwrap();
    let mut p = Process::new({
        let (q, ready) = (q.clone(), ready.clone());
        move || {
            ready.release().unwrap();
            match q.get() {
                Err(QueueError::ShutDown) => std::process::exit(7),
                _ => std::process::exit(1),
            }
        }
    });
    p.start().unwrap();
    ready.acquire();
    q.shutdown();
    assert_eq!(p.join().unwrap(), 7);
    assert!(matches!(q.put(&1), Err(QueueError::ShutDown)));
}

#[test]
fn bad_bytes_are_an_error_for_that_get_and_the_queue_goes_on() {
    let q: Queue<(u32, String)> = Queue::new().unwrap();
    q.raw()
        .put_bytes(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff], None)
        .unwrap();
    q.raw().put_bytes(&[], None).unwrap();
    assert!(matches!(q.get(), Err(QueueError::Decode(_))));
    assert!(matches!(q.get(), Err(QueueError::Decode(_))));
    q.put(&(5, "ok".into())).unwrap();
    assert_eq!(q.get().unwrap(), (5, "ok".to_string()));
}

#[test]
fn oversized_values_are_refused_in_the_caller() {
    let q: Queue<Vec<u8>> = Queue::<Vec<u8>>::builder()
        .message_limit(100)
        .build()
        .unwrap();
    assert!(matches!(
        q.put(&vec![0u8; 200]),
        Err(QueueError::TooLarge { .. })
    ));
    q.put(&vec![1u8; 10]).unwrap();
    assert_eq!(q.get().unwrap(), vec![1u8; 10]);
}

/// Wait (yielding, not sleeping) until `cond`, failing after a generous bound
/// instead of hanging.
fn until(what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(60), "never: {what}");
        std::thread::yield_now();
    }
}

#[test]
fn kill_9_of_a_producer_mid_put_leaves_no_partial_message() {
    quiet();
    let q = RawQueue::new(4096, 0).unwrap();
    let started = Semaphore::new(0).unwrap();
    let mut p = Process::new({
        let (q, started) = (q.clone(), started.clone());
        move || {
            started.release().unwrap();
            // Far larger than the ring and nobody reads: blocks half-way.
            q.put_bytes(&big(1 << 20, 1), None).unwrap();
        }
    });
    p.start().unwrap();
    started.acquire();
    until("the producer filled the ring", || q.is_full());
    p.kill().unwrap();
    assert_eq!(p.join().unwrap(), -9);
    // A new producer takes the dead one's lock over; the consumer discards
    // the dead producer's partial message and gets the new one, whole.
    // (The ring is full of the partial message: the put needs the consumer,
    // so it runs on a thread; no fork happens after this point.)
    let producer = std::thread::spawn({
        let q = q.clone();
        move || q.put_bytes(b"after", None).unwrap()
    });
    let mut out = Vec::new();
    q.get_bytes(&mut out, None).unwrap();
    assert_eq!(out, b"after");
    producer.join().unwrap();
    assert!(q.is_empty());
}

#[test]
fn kill_9_of_a_consumer_mid_get_leaves_the_queue_usable() {
    quiet();
    let q = RawQueue::new(4096, 0).unwrap();
    let started = Semaphore::new(0).unwrap();
    // A consumer waiting inside `get` (holding the consumer lock).
    let mut c = Process::new({
        let (q, started) = (q.clone(), started.clone());
        move || {
            started.release().unwrap();
            let mut out = Vec::new();
            let _ = q.get_bytes(&mut out, None);
            std::process::exit(3);
        }
    });
    c.start().unwrap();
    started.acquire();
    // A producer streaming a large message that the consumer is receiving.
    let m1 = big(300_000, 2);
    let mut p = Process::new({
        let (q, m1) = (q.clone(), m1.clone());
        move || {
            q.put_bytes(&m1, None).unwrap();
            q.put_bytes(b"second", None).unwrap();
        }
    });
    p.start().unwrap();
    c.kill().unwrap();
    let code = c.join().unwrap();
    assert!(code == -9 || code == 3, "{code}");
    // The next consumer recovers the lock: it gets m1 whole (if the dead one
    // had not started on it), and then "second"; never a part of m1.
    let mut out = Vec::new();
    q.get_bytes(&mut out, None).unwrap();
    if out == m1 {
        q.get_bytes(&mut out, None).unwrap();
    }
    if code == -9 {
        assert_eq!(out, b"second", "a partial message was delivered");
    }
    assert_eq!(p.join().unwrap(), 0);
    q.put_bytes(b"usable", None).unwrap();
    q.get_bytes(&mut out, None).unwrap();
    assert_eq!(out, b"usable");
}

#[test]
fn simple_queue_and_joinable_queue() {
    quiet();
    let s: SimpleQueue<String> = SimpleQueue::new().unwrap();
    s.put(&"x".into()).unwrap();
    assert!(!s.is_empty());
    assert_eq!(s.get().unwrap(), "x");
    s.shutdown();
    assert!(matches!(s.get(), Err(QueueError::ShutDown)));

    let j: JoinableQueue<u32> = JoinableQueue::new().unwrap();
    for i in 0..10 {
        j.put(&i).unwrap();
    }
    assert!(!j.join_timeout(Duration::from_millis(1)));
    let mut workers: Vec<Process> = (0..2)
        .map(|_| {
            let j = j.clone();
            Process::new(move || {
                while j.try_get().is_ok() {
                    j.task_done().unwrap();
                }
            })
        })
        .collect();
    for w in &mut workers {
        w.start().unwrap();
    }
    for w in &mut workers {
        assert_eq!(w.join().unwrap(), 0);
    }
    j.join();
    assert_eq!(j.unfinished(), 0);
    assert!(matches!(
        j.task_done(),
        Err(QueueError::TaskDoneTooManyTimes)
    ));
}

/// A consumer that only polls with `try_get` still receives a message larger
/// than the ring (which is never complete in the ring at once): `try_get`
/// takes a message that has begun to arrive and waits for its rest.
#[test]
fn try_get_only_consumer_receives_a_message_larger_than_the_ring() {
    procshare::set_fork_warning(false);
    let q: Queue<Vec<u8>> = Queue::<Vec<u8>>::builder()
        .capacity_bytes(256)
        .build()
        .unwrap();
    let started = procshare::Event::new().unwrap();
    let mut p = Process::new({
        let (q, started) = (q.clone(), started.clone());
        move || {
            started.set();
            q.put(&vec![5u8; 1000]).unwrap();
        }
    });
    p.start().unwrap();
    started.wait();
    // Wait until the first piece is in the ring: the producer then stays
    // blocked in `put` (the rest does not fit) until someone takes it.
    until("the first piece is in the ring", || !q.raw().is_empty());
    // So the message has begun to arrive and is not complete in the ring: one
    // `try_get` must take it (and wait for its rest), not report `Empty`.
    let got = q.try_get();
    if got.is_err() {
        let _ = p.kill(); // do not leave it blocked in `put` behind a failed test
    }
    let got = got.expect("try_get of a message that has begun to arrive");
    assert_eq!(got, vec![5u8; 1000]);
    assert_eq!(p.join().unwrap(), 0);
}

/// A consumer's message limit protects it from a producer process that sends
/// more than it will buffer: that message is `TooLarge` for the `get` that
/// meets it (single-piece or streamed through a small ring), and the next
/// message arrives whole.
#[test]
fn consumer_limit_drops_an_oversized_message_and_goes_on() {
    procshare::set_fork_warning(false);
    for capacity in [64 * 1024, 256] {
        let producer: Queue<Vec<u8>> = Queue::<Vec<u8>>::builder()
            .capacity_bytes(capacity)
            .build()
            .unwrap();
        let mut consumer = producer.clone();
        consumer.set_message_limit(100);
        let mut p = Process::new(move || {
            producer.put(&vec![9u8; 5000]).unwrap();
            producer.put(&vec![1u8; 50]).unwrap();
        });
        p.start().unwrap();
        match consumer.get() {
            Err(QueueError::TooLarge { len, limit: 100 }) => assert!(len > 100, "len {len}"),
            other => {
                let _ = p.kill();
                let other = other.map(|v| format!("a message of {} bytes", v.len()));
                panic!("capacity {capacity}: expected TooLarge, got {other:?}");
            }
        }
        let next = consumer.get();
        if next.is_err() {
            let _ = p.kill();
        }
        assert_eq!(next.unwrap(), vec![1u8; 50], "capacity {capacity}");
        assert_eq!(p.join().unwrap(), 0);
    }
}
