//! A `Queue` encodes a value that fits one piece of its ring straight into
//! the ring (sized first, then written while the producer holds the ring)
//! and decodes a message where it lies (while the consumer holds the ring).
//! User code (`Serialize`, `Deserialize`) then runs inside the ring's
//! critical sections: a value that encodes differently the second time, or
//! that panics there, must publish nothing and leave the queue usable, and a
//! `Deserialize` that panics must consume its message and leave the queue
//! usable. Also: values of every size around the ring's edges, between two
//! processes.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU32, Ordering};

use procshare::{Process, Queue, QueueError};
use procshare_tests::{get_from, quiet};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a [`Fickle`] does when it is written into the ring (after a try on
/// the stack and a sizing pass).
#[derive(Clone, Copy)]
enum Second {
    Same,
    Fails,
    Shorter,
    Longer,
    Panics,
}

/// A value of 200 bytes of 9s whose write into the ring may misbehave.
struct Fickle {
    calls: AtomicU32,
    second: Second,
}

impl Fickle {
    fn new(second: Second) -> Self {
        Fickle {
            calls: AtomicU32::new(0),
            second,
        }
    }
}

impl Serialize for Fickle {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Call 0 is the try on the stack (64 bytes: too small), 1 sizes
        // the value, 2 writes it into the ring.
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        let len = match (n, self.second) {
            (0 | 1, _) | (_, Second::Same) => 200,
            (_, Second::Fails) => return Err(serde::ser::Error::custom("write refused")),
            (_, Second::Shorter) => 150,
            (_, Second::Longer) => 250,
            (_, Second::Panics) => panic!("write panicked"),
        };
        serde_bytes::Bytes::new(&vec![9u8; len]).serialize(s)
    }
}

fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s += &format!(": {c}");
        src = c.source();
    }
    s
}

/// Each misbehaving write is an error of that `put` (or its panic),
/// and the queue holds nothing; afterwards a `try_put` (which would find the
/// producers' lock still held, were it not released) goes through.
#[test]
fn a_value_that_encodes_differently_when_written_publishes_nothing() {
    let q: Queue<Fickle> = Queue::new().unwrap();
    for (second, want) in [
        (Second::Fails, "write refused"),
        (Second::Shorter, "other bytes than when it was sized"),
        (Second::Longer, "cannot serialize"),
    ] {
        let e = q.put(&Fickle::new(second)).unwrap_err();
        assert!(matches!(e, QueueError::Encode(_)), "{e:?}");
        assert!(chain(&e).contains(want), "{}", chain(&e));
        assert!(q.is_empty());
    }
    let p = catch_unwind(AssertUnwindSafe(|| q.put(&Fickle::new(Second::Panics))));
    let msg = *p.unwrap_err().downcast::<&str>().unwrap();
    assert_eq!(msg, "write panicked");
    assert!(q.is_empty(), "nothing published");
    q.try_put(&Fickle::new(Second::Same)).unwrap();
    let mut out = Vec::new();
    q.raw().try_get_bytes(&mut out).unwrap();
    assert_eq!(out[..2], [200, 1], "the varint length 200");
    assert_eq!(out[2..], [9u8; 200]);
    assert!(q.is_empty());
}

/// A value whose `Deserialize` panics on a marked message.
#[derive(Debug, PartialEq, Serialize)]
struct Bomb(#[serde(with = "serde_bytes")] Vec<u8>);

impl<'de> Deserialize<'de> for Bomb {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let b = serde_bytes::ByteBuf::deserialize(d)?.into_vec();
        assert!(b.first() != Some(&0xBB), "a bomb");
        Ok(Bomb(b))
    }
}

/// A `get` whose `Deserialize` panics (the message read in place, a small
/// one read from its first chunk, and one too large for a slice of the ring)
/// panics in the caller, and the message is consumed: the next `try_get`
/// (which would find the consumers' lock still held, were it not released)
/// takes the message after it.
#[test]
fn a_deserialize_that_panics_consumes_its_message_and_leaves_the_queue_usable() {
    let q: Queue<Bomb> = Queue::new().unwrap();
    for len in [1usize, 300, 100_000] {
        let mut bomb = vec![1u8; len];
        bomb[0] = 0xBB;
        q.put(&Bomb(bomb)).unwrap();
        q.put(&Bomb(vec![2u8; len])).unwrap();
        let p = catch_unwind(AssertUnwindSafe(|| q.get()));
        assert!(p.is_err(), "len {len}: the panic reaches the caller");
        assert_eq!(q.try_get().unwrap(), Bomb(vec![2u8; len]), "len {len}");
        assert!(q.is_empty());
    }
}

/// Values of every size around a small ring's edges (a piece ending at the
/// array end, one crossing it, one as large as a piece can be, one streamed)
/// cross between two processes whole and in order.
#[test]
fn values_of_every_size_around_the_ring_edges_cross_whole() {
    quiet();
    let q: Queue<serde_bytes::ByteBuf> = Queue::builder().capacity_bytes(4096).build().unwrap();
    let sizes: Vec<usize> = (0..600).map(|i| (i * 37) % 4200).collect();
    let value = |i: usize, n: usize| {
        serde_bytes::ByteBuf::from((0..n).map(|j| (i * 7 + j) as u8).collect::<Vec<u8>>())
    };
    let mut p = Process::new({
        let (q, sizes) = (q.clone(), sizes.clone());
        move || {
            for (i, &n) in sizes.iter().enumerate() {
                q.put(&value(i, n)).unwrap();
            }
        }
    });
    p.start().unwrap();
    for (i, &n) in sizes.iter().enumerate() {
        assert_eq!(get_from(&q, &p), value(i, n), "value {i} of {n} bytes");
    }
    p.join().unwrap();
    assert_eq!(p.exitcode(), Some(0));
}
