//! The `pod_queue_ops` fuzz target's body (the target and its corpus replay
//! call it): [`PodQueue`] operations in one process, checked against a
//! `VecDeque`, and foreign writes to its shared words.

use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

use procshare_model::platform::Word64;

use super::pod::{PodQueue, SharedWord};
use super::QueueError;
use core::sync::atomic::Ordering::SeqCst;

/// What the run still promises, after the foreign writes so far.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Oracle {
    /// No foreign write: exactly a FIFO of `capacity` values.
    Exact,
    /// Hints overwritten: every value returned was put (and accepted), and
    /// none comes out twice; the order may change, `Corrupt` is allowed.
    Hints,
    /// A `seq` overwritten: only that every call returns, without a panic.
    Seq,
}

/// `pod_queue_ops`: a sequence of [`PodQueue<u64>`] operations in one process
/// (non-blocking or zero-timeout only, so nothing waits), checked against a
/// `VecDeque`. Panics on a mismatch.
///
/// Input: byte 0 picks `maxsize` (2..=64; the capacity is that rounded up to
/// a power of two), then each op is a byte, `op % 16`:
///
/// | op | operation | operands |
/// |---|---|---|
/// | 0, 1, 2 | `try_put` | |
/// | 3 | `put_timeout(ZERO)` | |
/// | 4, 5 | `try_get` | |
/// | 6 | `get_timeout(ZERO)` | |
/// | 7 | `qsize` | |
/// | 8 | `is_empty` | |
/// | 9 | `shutdown` if the byte is 9, else `is_shutdown` | |
/// | 10 | foreign write: `tail` hint := u64 | 8 bytes, little-endian |
/// | 11 | foreign write: `head` hint := u64 | 8 bytes |
/// | 12 | foreign write: slot `i`'s `seq` := u64 | 1 byte `i`, 8 bytes |
/// | 13 | foreign write: `tail` hint += i8 | 1 byte |
/// | 14 | foreign write: `head` hint += i8 | 1 byte |
/// | 15 | foreign write: slot `i`'s `seq` += i8 | 1 byte `i`, 1 byte |
///
/// Missing operand bytes read as 0. The values put are 1, 2, 3, ... (never
/// the zero of a fresh slot).
///
/// Before any foreign write the queue must be exactly a FIFO: `Full` exactly
/// when it holds `capacity` values, `Empty` exactly when none, `qsize` and
/// `is_empty` exact, and after `shutdown` (CPython 3.13's
/// `Queue.shutdown(immediate=False)`) `put` fails with `ShutDown` while `get`
/// drains what is queued and then fails with `ShutDown`. After a foreign
/// write to a hint: what `get` returns was put (by a `put` that returned
/// `Ok`) and comes out once (see the model's "Hints far behind, and foreign
/// writes": an overwritten hint loses and duplicates nothing but can change
/// the order); any error may come. After a foreign write to a `seq`: only
/// that every call returns without a panic. In every case a `put` after
/// `shutdown` fails with `ShutDown` (the closed flag is never overwritten).
pub fn pod_queue_ops(data: &[u8]) {
    let Some((&m, mut ops)) = data.split_first() else {
        return;
    };
    let maxsize = 2 + (m % 63) as usize;
    let q = PodQueue::<u64>::new(maxsize).expect("shared memory");
    let cap = q.capacity();
    assert!(cap >= maxsize && cap.is_power_of_two() && cap < 2 * maxsize);
    let mut oracle = Oracle::Exact;
    // Exact: the values queued, in order. Weaker oracles: the values put
    // (accepted) and not yet returned, in `out`.
    let mut model: VecDeque<u64> = VecDeque::new();
    let mut queued: BTreeSet<u64> = BTreeSet::new();
    let mut next = 1u64;
    let mut closed = false;

    let take = |n: usize, ops: &mut &[u8]| -> u64 {
        let k = n.min(ops.len());
        let mut b = [0u8; 8];
        b[..k].copy_from_slice(&ops[..k]);
        *ops = &ops[k..];
        u64::from_le_bytes(b)
    };

    while let [op, rest @ ..] = ops {
        ops = rest;
        match op % 16 {
            k @ 0..=3 => {
                let v = next;
                next += 1;
                let r = if k == 3 {
                    q.put_timeout(v, Duration::ZERO)
                } else {
                    q.try_put(v)
                };
                if closed {
                    assert!(
                        matches!(r, Err(QueueError::ShutDown)),
                        "put after shutdown: {r:?}"
                    );
                }
                match oracle {
                    Oracle::Exact => match r {
                        Ok(()) => {
                            assert!(model.len() < cap, "put into a full queue of {cap}");
                            model.push_back(v);
                        }
                        Err(QueueError::Full) => {
                            assert_eq!(model.len(), cap, "Full with {} of {cap}", model.len())
                        }
                        Err(QueueError::ShutDown) => assert!(closed, "ShutDown while open"),
                        Err(e) => panic!("put: {e:?}"),
                    },
                    Oracle::Hints | Oracle::Seq => {
                        if r.is_ok() {
                            queued.insert(v);
                        }
                    }
                }
            }
            k @ 4..=6 => {
                let r = if k == 6 {
                    q.get_timeout(Duration::ZERO)
                } else {
                    q.try_get()
                };
                check_get(r, oracle, closed, &mut model, &mut queued);
            }
            7 => {
                let n = q.qsize();
                match oracle {
                    Oracle::Exact => assert_eq!(n, model.len(), "qsize"),
                    _ => assert!(n <= cap, "qsize {n} > capacity {cap}"),
                }
            }
            8 => {
                let e = q.is_empty();
                if oracle == Oracle::Exact {
                    assert_eq!(e, model.is_empty(), "is_empty");
                }
            }
            9 => {
                if *op == 9 {
                    q.shutdown();
                    closed = true;
                }
                assert_eq!(q.is_shutdown(), closed, "is_shutdown");
            }
            k => {
                let w = match k {
                    10 | 13 => SharedWord::Tail,
                    11 | 14 => SharedWord::Head,
                    _ => SharedWord::Seq(take(1, &mut ops) as usize),
                };
                let word = q.shared_word(w);
                if k <= 12 {
                    word.store(take(8, &mut ops), SeqCst);
                } else {
                    let d = take(1, &mut ops) as u8 as i8;
                    word.store(word.load(SeqCst).wrapping_add_signed(d.into()), SeqCst);
                }
                let now = if matches!(w, SharedWord::Seq(_)) {
                    Oracle::Seq
                } else {
                    Oracle::Hints
                };
                if oracle == Oracle::Exact {
                    queued.extend(model.drain(..));
                }
                if oracle != Oracle::Seq {
                    oracle = now;
                }
            }
        }
    }

    // Everything accepted comes out, in order (exact); whatever comes out
    // was put, once (hints); every call returns (seq).
    match oracle {
        Oracle::Exact => {
            while let Some(want) = model.pop_front() {
                let got = q
                    .get_timeout(Duration::ZERO)
                    .expect("an accepted value is missing");
                assert_eq!(got, want, "wrong value");
            }
            let r = q.try_get();
            if closed {
                assert!(matches!(r, Err(QueueError::ShutDown)), "{r:?}");
            } else {
                assert!(matches!(r, Err(QueueError::Empty)), "{r:?}");
            }
        }
        Oracle::Hints | Oracle::Seq => {
            // Corrupt errors pass a slot each: a few laps at most.
            for _ in 0..4 * cap + 8 {
                let r = q.try_get();
                let stop = matches!(r, Err(QueueError::Empty | QueueError::ShutDown));
                check_get(r, oracle, closed, &mut model, &mut queued);
                if stop {
                    break;
                }
            }
        }
    }
}

/// Check what a `get` returned against the oracle.
fn check_get(
    r: Result<u64, QueueError>,
    oracle: Oracle,
    closed: bool,
    model: &mut VecDeque<u64>,
    queued: &mut BTreeSet<u64>,
) {
    match oracle {
        Oracle::Exact => match r {
            Ok(v) => {
                let want = model.pop_front().expect("got a value from an empty queue");
                assert_eq!(v, want, "wrong value");
            }
            Err(QueueError::Empty) => {
                assert!(!closed, "Empty (not ShutDown) after shutdown");
                assert!(model.is_empty(), "Empty with {} values", model.len());
            }
            Err(QueueError::ShutDown) => {
                assert!(closed, "ShutDown while open");
                assert!(model.is_empty(), "ShutDown with {} values", model.len());
            }
            Err(e) => panic!("get: {e:?}"),
        },
        Oracle::Hints => {
            if let Ok(v) = r {
                assert!(queued.remove(&v), "value {v} never put, or returned twice");
            }
        }
        Oracle::Seq => {}
    }
}
