//! The default queue is unbounded in shared memory (Python's `Queue()`): a
//! producer's `put` never waits for room, whether or not anybody reads, and
//! the memory the backlog took is given back as it is drained. And `close`
//! is per process (Python's `Queue.close`), `shutdown` for everyone.
//!
//! Every wait on another process has a generous timeout, so that a
//! regression fails the test instead of hanging it.

use std::time::Duration;

use procshare::{Event, Process, Queue, QueueError, RawArray, RawQueue, Semaphore, SimpleQueue};
use procshare_tests::quiet;

const GENEROUS: Duration = Duration::from_secs(60);

/// A child process that is killed and reaped when the test ends, even when it
/// fails (so that no child outlives the test binary).
struct Child(Process);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.join();
    }
}

/// A child puts 200,000 items with nobody reading and exits; then the parent
/// reads them all, in order. (With the old 1 MiB ring, the child blocked for
/// ever at the 65,536th item.)
#[test]
fn a_child_puts_200000_items_with_no_reader_and_exits_then_the_parent_reads_them_all() {
    quiet();
    const N: u64 = 200_000;
    let q: Queue<u64> = Queue::new().unwrap();
    let mut child = Child(Process::new({
        let q = q.clone();
        move || {
            for i in 0..N {
                q.put(&i).unwrap();
            }
        }
    }));
    child.0.start().unwrap();
    assert_eq!(
        child.0.join_timeout(GENEROUS).unwrap(),
        Some(0),
        "the child did not finish putting {N} items with nobody reading"
    );
    assert_eq!(q.qsize(), N as usize);
    for i in 0..N {
        assert_eq!(q.try_get().unwrap(), i);
    }
    assert!(matches!(q.try_get(), Err(QueueError::Empty)));
}

/// The backlog's memory is the ring's memfd's allocated blocks: they grow
/// with what is put, and fall back when it is read (consumed pages are
/// punched out of the file), here after a drain by another process.
#[test]
fn draining_gives_the_memory_back() {
    quiet();
    let q = RawQueue::new(procshare::internals::DEFAULT_CAPACITY, 0).unwrap();
    let before = q.allocated_bytes().expect("a ring of its own");
    let msg = [7u8; 1000];
    for _ in 0..20_000 {
        q.put_bytes(&msg, None).unwrap();
    }
    let full = q.allocated_bytes().unwrap();
    assert!(
        full >= before + 20_000 * 1000,
        "20 MB put but the ring holds {full} bytes (from {before})"
    );
    let mut consumer = Child(Process::new({
        let q = q.clone();
        move || {
            let mut out = Vec::new();
            for _ in 0..20_000 {
                q.get_bytes(&mut out, None).unwrap();
                assert_eq!(out, [7u8; 1000]);
            }
        }
    }));
    consumer.0.start().unwrap();
    assert_eq!(consumer.0.join_timeout(GENEROUS).unwrap(), Some(0));
    assert!(q.is_empty());
    let drained = q.allocated_bytes().unwrap();
    // What stays: the kept start of the lap (1 MiB, reused by the next
    // messages) and the unit being read (64 KiB).
    assert!(
        drained <= (1 << 20) + (128 << 10),
        "after draining, the ring still holds {drained} bytes (it held {full})"
    );
}

/// Minor page faults of the calling thread so far (`/proc/thread-self/stat`,
/// field 10: other test threads' faults are not counted).
fn thread_minor_faults() -> u64 {
    let s = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    // The fields after the command name (in parentheses, which may hold spaces).
    let rest = &s[s.rfind(')').unwrap() + 2..];
    rest.split(' ').nth(7).unwrap().parse().unwrap()
}

/// A stream through an unbounded queue whose consumer keeps up reuses the
/// same memory: the ring keeps the start of every lap and a producer that
/// finds the queue empty goes on there, instead of writing each 4 KiB into a
/// page just given back (a page fault, a fresh zeroed page and a hole punched
/// per 4 KiB, ten times the copy). 16 MB through the queue here: almost no
/// faults, against one per message without the wrap.
#[test]
fn a_stream_the_consumer_keeps_up_with_reuses_its_memory() {
    let q = RawQueue::new(procshare::internals::DEFAULT_CAPACITY, 0).unwrap();
    let msg = [7u8; 4000];
    let mut out = Vec::new();
    let mut round = |n: usize| {
        for _ in 0..n {
            q.put_bytes(&msg, None).unwrap();
            q.get_bytes(&mut out, None).unwrap();
            assert_eq!(out.len(), msg.len());
        }
    };
    round(1000); // the kept start is touched once
    let before = thread_minor_faults();
    round(4000);
    let faults = thread_minor_faults() - before;
    // 16 MB is 15 laps of the kept start: fewer faults than laps, as each
    // lap's wrap marker lies in the kept start too (16 when each lap's
    // marker took a fresh page past it).
    assert!(
        faults < 8,
        "4000 messages of 4000 bytes took {faults} page faults"
    );
    let held = q.allocated_bytes().unwrap();
    assert!(
        held <= (1 << 20) + (128 << 10),
        "the ring holds {held} bytes"
    );
}

/// A wrap from past the kept start, after a backlog, gives back all but the
/// kept start: 2 MiB put with nobody reading, then read, then one message
/// more, which wraps onto the empty queue from where the backlog ended;
/// reading it follows the wrap marker, which gives back the unit the marker
/// is in (it held the backlog's end) but not the lap's rest, which the wrap
/// skipped (holes already).
#[test]
fn a_wrap_after_a_backlog_gives_back_all_but_the_kept_start() {
    let q = RawQueue::new(procshare::internals::DEFAULT_CAPACITY, 0).unwrap();
    let before = q.allocated_bytes().unwrap();
    let msg = [7u8; 4000];
    let mut out = Vec::new();
    for _ in 0..520 {
        q.put_bytes(&msg, None).unwrap();
    }
    for _ in 0..520 {
        q.get_bytes(&mut out, None).unwrap();
    }
    q.put_bytes(&msg, None).unwrap();
    q.get_bytes(&mut out, None).unwrap();
    assert_eq!(out.len(), msg.len());
    assert!(q.is_empty());
    let held = q.allocated_bytes().unwrap();
    assert_eq!(held, before + (1 << 20), "the ring holds {held} bytes");
}

/// A value whose `Serialize` fails when the queue writes it into the ring
/// (its third run, after the try on the stack and the sizing pass), after
/// its 400 KiB body was written: chunks past `tail` written and never
/// published.
struct FailsWhenWritten(std::sync::atomic::AtomicU32);

impl serde::Serialize for FailsWhenWritten {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let call = self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut t = s.serialize_tuple(2)?;
        t.serialize_element(serde_bytes::Bytes::new(&[5u8; 400 << 10]))?;
        if call == 2 {
            return Err(serde::ser::Error::custom("refused after the body"));
        }
        t.serialize_element(&0u8)?;
        t.end()
    }
}

/// A writer that fails past the kept start, after writing 400 KiB into the
/// ring, leaves those chunks written and unpublished; a stream that wraps
/// afterwards writes over them before it wraps (the ring's `dirty`), so
/// once it has, the ring holds the kept start and nothing more. (Before,
/// the next message wrapped from where the failed writer began, and all but
/// the wrap marker's unit of its 400 KiB stayed allocated: 1,425,408 bytes
/// against 1,052,672.)
#[test]
fn a_failed_writers_chunks_do_not_stay_allocated_after_a_wrap() {
    let q: Queue<FailsWhenWritten> = Queue::new().unwrap();
    let raw = q.raw();
    let before = raw.allocated_bytes().unwrap();
    let msg = [7u8; 4000];
    let mut out = Vec::new();
    // A backlog past the kept start (1 MiB), then the failed writer after it.
    for _ in 0..300 {
        raw.put_bytes(&msg, None).unwrap();
    }
    let e = q.put(&FailsWhenWritten(Default::default())).unwrap_err();
    assert!(matches!(e, QueueError::Encode(_)), "{e:?}");
    for _ in 0..300 {
        raw.get_bytes(&mut out, None).unwrap();
    }
    // A stream read as it goes, long enough to pass the failed writer's
    // chunks (400 KiB), then to wrap.
    for _ in 0..150 {
        raw.put_bytes(&msg, None).unwrap();
        raw.get_bytes(&mut out, None).unwrap();
        assert_eq!(out.len(), msg.len());
    }
    assert!(raw.is_empty());
    let held = raw.allocated_bytes().unwrap();
    assert_eq!(held, before + (1 << 20), "the ring holds {held} bytes");
}

/// `put` of a message that can never be in the unbounded ring at once (with
/// its message limit raised past the ring) is its own error, not `Full`, and
/// not a wait; `try_put` of one larger than a small byte-bounded ring too.
#[test]
fn a_message_larger_than_any_bound_is_never_fits_not_full() {
    let mut q = RawQueue::new(1 << 20, 0).unwrap();
    q.set_message_limit(usize::MAX);
    let e = q.try_put_bytes(&vec![0u8; 2 << 20]).unwrap_err();
    assert!(
        matches!(e, QueueError::NeverFits { streams: true, .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("never fit"), "{e}");
    // `put` streams it through the bounded ring (nothing to show here without
    // a reader); the unbounded queue refuses to, rather than wait.
    let q: Queue<Vec<u8>> = Queue::builder()
        .message_limit(usize::MAX)
        .capacity_bytes(64 << 20)
        .build()
        .unwrap();
    let e = q.put(&vec![1u8; 65 << 20]).unwrap_err();
    assert!(
        matches!(e, QueueError::NeverFits { streams: false, .. }),
        "{e:?}"
    );
    q.put(&vec![1u8; 10]).unwrap();
    assert_eq!(q.get().unwrap(), vec![1u8; 10]);
}

/// Two producer processes each close their own handle when done (Python's
/// "no more data will be put on this queue by the current process"); the
/// consumer still receives the other's items, put after the first closed.
#[test]
fn each_producer_closes_its_own_end_and_the_consumer_still_gets_the_others_items() {
    quiet();
    let q: Queue<(u8, u32)> = Queue::new().unwrap();
    let first_closed = Event::new().unwrap();
    let producer = |id: u8, wait: Option<Event>, done: Option<Event>| {
        let q = q.clone();
        Process::new(move || {
            if let Some(e) = wait {
                assert!(e.wait_timeout(GENEROUS), "the other producer never closed");
            }
            for i in 0..100 {
                q.put(&(id, i)).unwrap();
            }
            q.close();
            assert!(q.is_closed());
            assert!(matches!(q.put(&(id, 999)), Err(QueueError::Closed)));
            if let Some(e) = done {
                e.set();
            }
        })
    };
    let mut a = Child(producer(1, None, Some(first_closed.clone())));
    let mut b = Child(producer(2, Some(first_closed.clone()), None));
    a.0.start().unwrap();
    b.0.start().unwrap();
    let mut got = [0u32; 3];
    for _ in 0..200 {
        let (id, i) = q.get_timeout(GENEROUS).unwrap();
        assert_eq!(got[id as usize], i, "producer {id}'s items out of order");
        got[id as usize] += 1;
    }
    assert_eq!(got, [0, 100, 100]);
    assert_eq!(a.0.join_timeout(GENEROUS).unwrap(), Some(0));
    assert_eq!(b.0.join_timeout(GENEROUS).unwrap(), Some(0));
    // The parent never closed: its handle still puts.
    assert!(!q.is_closed());
    q.put(&(0, 1)).unwrap();
    assert_eq!(q.get().unwrap(), (0, 1));
}

/// `close` in one process does not reach its clones in another, but does
/// reach the clones in the same process (`put` and `get` there fail, as
/// CPython's raise `ValueError`); `shutdown` reaches everyone.
#[test]
fn close_is_per_process_shutdown_is_for_everyone() {
    quiet();
    let q: SimpleQueue<u32> = SimpleQueue::new().unwrap();
    let here = q.clone();
    let mut child = Child(Process::new({
        let q = q.clone();
        move || {
            q.close();
            assert!(matches!(q.put(&1), Err(QueueError::Closed)));
        }
    }));
    child.0.start().unwrap();
    assert_eq!(child.0.join_timeout(GENEROUS).unwrap(), Some(0));
    q.put(&2).unwrap();
    here.close();
    assert!(q.is_closed());
    assert!(matches!(q.put(&3), Err(QueueError::Closed)));
    assert!(matches!(q.get(), Err(QueueError::Closed)));
    // A child forked after the close starts with its handles open (CPython's
    // `Queue._after_fork`).
    let mut child = Child(Process::new({
        let q = q.clone();
        move || assert_eq!(q.get().unwrap(), 2)
    }));
    child.0.start().unwrap();
    assert_eq!(child.0.join_timeout(GENEROUS).unwrap(), Some(0));
    let other: Queue<u32> = Queue::new().unwrap();
    let mut child = Child(Process::new({
        let other = other.clone();
        move || other.shutdown()
    }));
    child.0.start().unwrap();
    assert_eq!(child.0.join_timeout(GENEROUS).unwrap(), Some(0));
    assert!(other.is_shutdown());
    assert!(matches!(other.put(&4), Err(QueueError::ShutDown)));
    assert!(matches!(other.get(), Err(QueueError::ShutDown)));
}

fn put_many((q, n): (Queue<u64>, u64)) {
    for i in 0..n {
        q.put(&i).unwrap();
    }
}

fn drain((q, n): (Queue<u64>, u64)) {
    for i in 0..n {
        assert_eq!(q.get().unwrap(), i);
    }
}

/// Children started by `spawn` and `forkserver` attach the queue's sparse
/// ring from its memfd (passed by `SCM_RIGHTS`): one puts 100,000 items with
/// nobody reading, another drains them, and the ring's memory falls back.
#[test]
fn spawn_and_forkserver_children_put_without_a_reader_and_drain() {
    quiet();
    const N: u64 = 300_000;
    for m in [
        procshare::StartMethod::Spawn,
        procshare::StartMethod::ForkServer,
    ] {
        let q: Queue<u64> = Queue::new().unwrap();
        let mut p = Child(Process::with_target(put_many, (q.clone(), N)).start_method(m));
        p.0.start().unwrap();
        assert_eq!(p.0.join_timeout(GENEROUS).unwrap(), Some(0), "{m:?}");
        assert_eq!(q.qsize(), N as usize, "{m:?}");
        let full = q.raw().allocated_bytes().unwrap();
        let mut c = Child(Process::with_target(drain, (q.clone(), N)).start_method(m));
        c.0.start().unwrap();
        assert_eq!(c.0.join_timeout(GENEROUS).unwrap(), Some(0), "{m:?}");
        assert!(q.is_empty(), "{m:?}");
        let drained = q.raw().allocated_bytes().unwrap();
        // Drained: the kept start of the lap and the unit being read stay.
        assert!(
            full >= N * 16 && drained <= (1 << 20) + (128 << 10),
            "{m:?}: the ring held {full} bytes full, {drained} drained"
        );
    }
}

/// Message `i` of [`a_consumer_killed_mid_stream_loses_at_most_its_message`]:
/// 4000 bytes that say which they are.
fn numbered(i: u64) -> Vec<u8> {
    let mut m = vec![(i % 251) as u8; 4000];
    m[..8].copy_from_slice(&i.to_le_bytes());
    m
}

/// A stream of 4000-byte messages through the unbounded queue (12 MB, its
/// memory given back unit by unit as it is read) while its consumer is
/// killed with `kill -9` part-way, at whatever step it is in (reading a
/// message, between its `head` store and its reclaim step, ...). The
/// consumer that takes over gets every message the dead one had not taken,
/// whole and in order; only the message the dead one was taking when it died
/// may be missing; nothing is delivered twice. (The first consumer stops
/// before the last 500 messages: on a busy machine the kill could otherwise
/// come after it had taken them all, and the taker-over would wait in vain.)
#[test]
fn a_consumer_killed_mid_stream_loses_at_most_its_message() {
    quiet();
    const N: u64 = 3000;
    let q = RawQueue::new(procshare::internals::DEFAULT_CAPACITY, 0).unwrap();
    let taken = RawArray::<u8>::zeroed(N as usize).unwrap(); // by the first consumer
    let progress = Semaphore::new(0).unwrap();
    // Released by nobody: the first consumer stops on it before the end of
    // the stream, so that it is killed before it has taken everything
    // (however late the kill comes on a busy machine).
    let never = Semaphore::new(0).unwrap();
    let mut producer = Child(Process::new({
        let q = q.clone();
        move || {
            for i in 0..N {
                q.put_bytes(&numbered(i), None).unwrap();
            }
        }
    }));
    let mut first = Child(Process::new({
        let (q, taken, progress, never) =
            (q.clone(), taken.clone(), progress.clone(), never.clone());
        move || {
            let mut out = Vec::new();
            loop {
                q.get_bytes(&mut out, None).unwrap();
                let i = u64::from_le_bytes(out[..8].try_into().unwrap());
                assert_eq!(out, numbered(i), "message {i} torn");
                taken.set(i as usize, 1).unwrap();
                if i % 100 == 0 {
                    progress.release().unwrap();
                }
                if i == N - 500 {
                    never.acquire();
                }
            }
        }
    }));
    producer.0.start().unwrap();
    first.0.start().unwrap();
    for _ in 0..4 {
        progress.acquire(); // it is a few laps in
    }
    first.0.kill().unwrap();
    assert_eq!(first.0.join_timeout(GENEROUS).unwrap(), Some(-9));
    let mut mine = Vec::new();
    let mut out = Vec::new();
    loop {
        if let Err(e) = q.get_bytes(&mut out, Some(GENEROUS)) {
            panic!("after {:?}: {e}; {q:?}", mine.last());
        }
        let i = u64::from_le_bytes(out[..8].try_into().unwrap());
        assert_eq!(out, numbered(i), "message {i} torn");
        mine.push(i);
        if i == N - 1 {
            break;
        }
    }
    assert_eq!(producer.0.join_timeout(GENEROUS).unwrap(), Some(0));
    assert!(
        mine.windows(2).all(|w| w[0] < w[1]),
        "out of order or twice"
    );
    let theirs: Vec<u64> = (0..N)
        .filter(|&i| taken.get(i as usize).unwrap() == 1)
        .collect();
    assert!(
        theirs.len() >= 301,
        "the first consumer took {}",
        theirs.len()
    );
    let both: Vec<u64> = mine
        .iter()
        .copied()
        .filter(|i| theirs.contains(i))
        .collect();
    assert!(both.is_empty(), "delivered twice: {both:?}");
    let missing = N as usize - mine.len() - theirs.len();
    assert!(missing <= 1, "{missing} messages lost");
    assert!(q.is_empty());
}

/// After its consumer has kept up with a stream for a while and then stops
/// reading, the unbounded queue's producer still never waits for room: 1.6 MB
/// more go in with a zero timeout (`Full` would mean a wait). A guard for the
/// unbounded promise against memory-reuse schemes that bound the producer by
/// what the consumer freed last (session 8's early wrap let the producer fill
/// about 1 MiB, then wait). The consumer stops after 300 to 599 messages: at
/// every step of the producer's cycle through the lap's kept start (a wrap
/// every 1 MiB or so), so also right where the producer's next message wraps
/// early and leaves a wrap marker that nobody follows.
#[test]
fn a_producer_never_waits_after_its_consumer_stops_reading() {
    let msg = [7u8; 4000];
    let mut out = Vec::new();
    for stop in 300..600 {
        let q = RawQueue::new(procshare::internals::DEFAULT_CAPACITY, 0).unwrap();
        for _ in 0..stop {
            q.put_bytes(&msg, None).unwrap();
            q.get_bytes(&mut out, None).unwrap();
        }
        for i in 0..400 {
            if let Err(e) = q.put_bytes(&msg, Some(Duration::ZERO)) {
                panic!("put {i} after the consumer stopped reading (at {stop}): {e}");
            }
        }
        for _ in 0..400 {
            q.get_bytes(&mut out, Some(Duration::ZERO)).unwrap();
            assert_eq!(out, msg);
        }
        assert!(q.is_empty());
    }
}
