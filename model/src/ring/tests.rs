//! loom and shuttle checks of the queue ring, and proof that each seeded
//! mutant (6xx) is caught.
//!
//! Every message carries its producer and sequence number and is fully
//! determined by them (see [`message`]), so a consumer checks on receipt that
//! it is exactly one `put`'s bytes (not torn, not partial, not mixed), and
//! that each producer's sequence numbers rise (no duplicate, no reordering).
//! At the end, the delivered set is compared with what the producers
//! successfully put (no loss), allowing only for the message a dead process
//! had in flight.

use super::fuzzing::{body, message, Spec, Q};
use super::*;
use crate::testkit::{
    every_crash_point, fails_with, fails_with_any, shuttle_iters, shuttle_runs, Sched,
};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;

/// Sizes used with a 2-chunk ring (32 bytes; one piece carries up to 24):
/// one chunk, a full ring, and a message streamed in two pieces.
const SMALL: usize = 6;
const FULL_RING: usize = 24;
const STREAMED: usize = 30;

mod loom_checks {
    use super::*;
    use crate::loom_platform::Loom;

    pub(super) fn check<const M: u32>(spec: Spec, bound: Option<usize>) -> bool {
        let died = Arc::new(AtomicBool::new(false));
        let d = died.clone();
        crate::testkit::loom(bound).check(move || {
            body!(loom, loom_platform, Loom<M>, spec.clone(), d);
        });
        died.load(SeqCst)
    }

    fn spsc(sizes: Vec<usize>) -> Spec {
        Spec {
            cap: 2,
            max_items: 0,
            producers: vec![sizes],
            consumers: 1,
            crash: None,
            mixed: false,
            spurious: None,
            reclaim: 0,
            written: false,
        }
    }

    /// One producer, one consumer (plus the closer, which runs on the
    /// producer's thread). Bounded: unbounded exploration of even one message
    /// exceeds millions of executions (every relaxed load may read any earlier
    /// store, and each futex is a loom mutex + condvar). One message:
    /// preemption bound 3; two messages, and a full ring followed by a message
    /// streamed through it (the ring wraps, both sides block): bound 2.
    #[test]
    fn loom_spsc() {
        check::<0>(spsc(vec![SMALL]), Some(3));
        check::<0>(spsc(vec![SMALL, SMALL]), Some(2));
        check::<0>(spsc(vec![FULL_RING, STREAMED]), Some(2));
    }

    /// Spurious returns at each of the consumer's first waits. Preemption bound 2.
    #[test]
    fn loom_spsc_spurious_wakeups() {
        for n in 1..=2 {
            let mut s = spsc(vec![FULL_RING, SMALL]);
            s.spurious = Some(n);
            check::<0>(s, Some(2));
        }
    }

    /// Two producers, one consumer, item bound 1. Preemption bound 2.
    #[test]
    fn loom_two_producers_bounded() {
        let s = Spec {
            cap: 2,
            max_items: 1,
            producers: vec![vec![SMALL], vec![SMALL]],
            consumers: 1,
            crash: None,
            mixed: false,
            spurious: None,
            reclaim: 0,
            written: false,
        };
        check::<0>(s, Some(2));
    }

    /// Timed and non-blocking puts and gets (model time: a finite deadline has
    /// always passed, so every "gave up" path runs): a blocking put, a timed
    /// put of a streamed message, a non-blocking put; a timed and a
    /// non-blocking get. Preemption bound 1 (bound 2 takes minutes).
    #[test]
    fn loom_timeouts_and_try() {
        let mut s = spsc(vec![SMALL, STREAMED, SMALL]);
        s.mixed = true;
        check::<0>(s, Some(1));
    }

    /// Close wakes every waiter: two consumers blocked on an empty ring (one
    /// sleeping in the ring, one queued on the consumer lock) and, separately,
    /// two producers blocked on a full ring. Preemption bound 3.
    #[test]
    fn loom_close_wakes_everyone() {
        close_wakes::<0>();
    }

    pub(super) fn close_wakes<const M: u32>() {
        use crate::loom_platform::{world, ModelThread};
        crate::testkit::loom(Some(3)).check(|| {
            let world = world();
            let q = Arc::new(Q::<Loom<M>>::new(1, 0));
            let hs: Vec<_> = (0..2u32)
                .map(|i| {
                    let (q, world) = (q.clone(), world.clone());
                    loom::thread::spawn(move || {
                        let t = ModelThread::new(&world, 10 + i);
                        let mut b = Vec::new();
                        let r = q.ring().get(&t, &mut b, Wait::For(None));
                        crate::check!(r == Err(RingError::Closed), "get after close: {r:?}");
                    })
                })
                .collect();
            q.ring().close(&ModelThread::new(&world, 1));
            for h in hs {
                h.join().unwrap();
            }
        });
        crate::testkit::loom(Some(3)).check(|| {
            let world = world();
            let q = Arc::new(Q::<Loom<M>>::new(1, 0));
            let t0 = ModelThread::new(&world, 1);
            q.ring().put(&t0, &[1], Wait::No).unwrap(); // now full
            let hs: Vec<_> = (0..2u32)
                .map(|i| {
                    let (q, world) = (q.clone(), world.clone());
                    loom::thread::spawn(move || {
                        let t = ModelThread::new(&world, 10 + i);
                        let r = q.ring().put(&t, &[2], Wait::For(None));
                        crate::check!(r == Err(RingError::Closed), "put after close: {r:?}");
                    })
                })
                .collect();
            q.ring().close(&t0);
            for h in hs {
                h.join().unwrap();
            }
            // What was in the ring is still delivered, then Closed.
            let mut b = Vec::new();
            assert_eq!(q.ring().get(&t0, &mut b, Wait::For(None)), Ok(()));
            assert_eq!(b, [1]);
            assert_eq!(
                q.ring().get(&t0, &mut b, Wait::For(None)),
                Err(RingError::Closed)
            );
        });
    }

    /// A waiter that died right after announcing itself (its CAS set
    /// `WAITERS`; no fence followed) leaves the announcement to the next
    /// waiter, which must fence before its check (`watch`): otherwise the
    /// notifier may miss the announcement while the next waiter misses the
    /// message, and it sleeps through it (C11 allows it; x86-64 does not).
    /// The dead waiter is emulated by a thread that only sets the bit.
    /// Preemption bound 3.
    #[test]
    fn loom_a_waiter_after_a_dead_announcer_is_woken() {
        dead_announcer::<0>();
    }

    pub(super) fn dead_announcer<const M: u32>() {
        use crate::loom_platform::{world, ModelThread};
        crate::testkit::loom(Some(3)).check(|| {
            let world = world();
            let q = Arc::new(Q::<Loom<M>>::new(2, 0));
            let dead = {
                let q = q.clone();
                loom::thread::spawn(move || {
                    let w = &q.ring().h.tail.0.event;
                    let _ = w.cas(0, EV_WAITERS, Relaxed, Relaxed);
                })
            };
            let producer = {
                let (q, world) = (q.clone(), world.clone());
                loom::thread::spawn(move || {
                    let t = ModelThread::new(&world, 11);
                    q.ring().put(&t, &[7; SMALL], Wait::For(None)).unwrap();
                })
            };
            let t = ModelThread::new(&world, 12);
            let mut b = Vec::new();
            assert_eq!(q.ring().get(&t, &mut b, Wait::For(None)), Ok(()));
            assert_eq!(b, [7; SMALL]);
            dead.join().unwrap();
            producer.join().unwrap();
        });
    }

    /// Without the waiter's fence (seeded bug 619), the next waiter sleeps
    /// through the message.
    #[test]
    fn loom_catches_619_after_a_dead_announcer() {
        assert!(fails_with(
            "deadlock",
            dead_announcer::<{ MUTANT_NO_WAIT_FENCE.0 }>
        ));
    }

    fn crash_spec(who: usize, k: u32) -> Spec {
        Spec {
            cap: 2,
            max_items: 0,
            producers: vec![vec![STREAMED], vec![SMALL]],
            consumers: 1,
            crash: Some((who, k)),
            mixed: false,
            spurious: None,
            reclaim: 0,
            written: false,
        }
    }

    /// A producer streaming a message dies at every crash point; the other
    /// producer and the consumer go on, and no partial message is delivered.
    /// Preemption bound 1 (three threads; bound 2 takes minutes per point).
    pub(super) fn producer_crash<const M: u32>() -> u32 {
        every_crash_point(|k| check::<M>(crash_spec(0, k), Some(1)))
    }

    /// One of two consumers dies at every crash point; the other drains the
    /// queue (at most the message in flight is lost, never a partial one
    /// delivered). Preemption bound 1.
    pub(super) fn consumer_crash<const M: u32>() -> u32 {
        every_crash_point(|k| {
            let s = Spec {
                cap: 2,
                max_items: 0,
                producers: vec![vec![STREAMED]],
                consumers: 2,
                crash: Some((1, k)),
                mixed: false,
                spurious: None,
                reclaim: 0,
                written: false,
            };
            check::<M>(s, Some(1))
        })
    }

    #[test]
    fn loom_producer_dies_at_every_crash_point() {
        let n = producer_crash::<0>();
        assert!(n >= 6, "only {n} crash points");
    }

    #[test]
    fn loom_consumer_dies_at_every_crash_point() {
        let n = consumer_crash::<0>();
        assert!(n >= 6, "only {n} crash points");
    }

    #[test]
    fn loom_catches_601_relaxed_head() {
        assert!(fails_with("Causality violation", || {
            check::<{ MUTANT_RELAXED_HEAD.0 }>(spsc(vec![FULL_RING, STREAMED]), Some(2));
        }));
    }

    #[test]
    fn loom_catches_602_relaxed_tail() {
        assert!(fails_with("Causality violation", || {
            check::<{ MUTANT_RELAXED_TAIL.0 }>(spsc(vec![SMALL]), None);
        }));
    }

    /// A consumer that does not notify `not_full` after a message's last
    /// piece: the producer waiting for room sleeps on.
    #[test]
    fn loom_catches_624_no_notify_not_full() {
        assert!(fails_with("deadlock", || {
            check::<{ MUTANT_NO_NOTIFY_NOT_FULL.0 }>(spsc(vec![FULL_RING, FULL_RING]), Some(2));
        }));
    }

    #[test]
    fn loom_catches_603_no_notify() {
        assert!(fails_with("deadlock", || {
            // (Streamed: the consumer must be woken by a piece, not by `close`.)
            check::<{ MUTANT_NO_NOTIFY_NOT_EMPTY.0 }>(spsc(vec![FULL_RING, STREAMED]), Some(2));
        }));
    }

    #[test]
    fn loom_catches_604_keep_abandoned() {
        assert!(fails_with("torn", || {
            producer_crash::<{ MUTANT_KEEP_ABANDONED.0 }>();
        }));
    }

    #[test]
    fn loom_catches_605_no_skip() {
        assert!(fails_with("torn", || {
            consumer_crash::<{ MUTANT_NO_SKIP.0 }>();
        }));
    }

    #[test]
    fn loom_catches_606_close_no_wake() {
        assert!(fails_with(
            "deadlock",
            close_wakes::<{ MUTANT_CLOSE_NO_WAKE.0 }>
        ));
    }

    /// A notifier that reads the event word without its fence misses the
    /// waiter's announcement while the waiter's second look misses its
    /// change (store buffering): only a model of weak memory finds it.
    #[test]
    fn loom_catches_618_no_notify_fence() {
        assert!(fails_with("deadlock", || {
            check::<{ MUTANT_NO_NOTIFY_FENCE.0 }>(spsc(vec![FULL_RING, STREAMED]), Some(2));
        }));
    }

    /// A waiter that sleeps right after announcing, without a second look.
    #[test]
    fn loom_catches_621_sleep_without_recheck() {
        assert!(fails_with("deadlock", || {
            check::<{ MUTANT_SLEEP_WITHOUT_RECHECK.0 }>(spsc(vec![FULL_RING, STREAMED]), Some(2));
        }));
    }

    /// A producer that takes over a dead one's lock and trusts the copy of
    /// `tail` that the dead one had not stored yet writes over its
    /// published piece: loom sees it write the chunks the consumer reads.
    #[test]
    fn loom_catches_620_dead_copy_kept() {
        assert!(fails_with("Causality violation", || {
            producer_crash::<{ MUTANT_DEAD_COPY_KEPT.0 }>();
        }));
    }

    /// The mirror image: a waiter that looks again without its fence.
    #[test]
    fn loom_catches_619_no_wait_fence() {
        assert!(fails_with("deadlock", || {
            check::<{ MUTANT_NO_WAIT_FENCE.0 }>(spsc(vec![FULL_RING, STREAMED]), Some(2));
        }));
    }

    /// Messages that fill the ring again and again: a producer that trusts
    /// its stale `head_seen` hint never sees the room the consumer made.
    #[test]
    fn loom_catches_609_head_hint_not_reloaded() {
        assert!(fails_with("deadlock", || {
            check::<{ MUTANT_HINT_NOT_RELOADED.0 }>(spsc(vec![FULL_RING, FULL_RING]), Some(2));
        }));
    }

    /// A consumer that trusts its stale `tail_seen` hint never sees the
    /// message that is already there (a livelock: it keeps looking).
    #[test]
    fn loom_catches_610_tail_hint_not_reloaded() {
        // It spins on `closed` forever once the producer has closed the ring.
        assert!(fails_with("maximum number of branches", || {
            check::<{ MUTANT_TAIL_HINT_NOT_RELOADED.0 }>(spsc(vec![SMALL]), Some(2));
        }));
    }

    /// `get_limited`: a message over the limit (here one streamed in two
    /// pieces) is `TooLarge` for the `get` that meets it, its rest is
    /// skipped, and the next message comes through whole. Preemption bound 2.
    #[test]
    fn loom_size_limit_skips_and_goes_on() {
        size_limit::<0>();
    }

    pub(super) fn size_limit<const M: u32>() {
        use crate::loom_platform::{world, ModelThread};
        crate::testkit::loom(Some(2)).check(|| {
            let world = world();
            let q = Arc::new(Q::<Loom<M>>::new(2, 0));
            let h = {
                let (q, world) = (q.clone(), world.clone());
                loom::thread::spawn(move || {
                    let t = ModelThread::new(&world, 2);
                    for m in [&[3u8; STREAMED][..], &[4; 4]] {
                        q.ring().put(&t, m, Wait::For(None)).unwrap();
                    }
                })
            };
            let t = ModelThread::new(&world, 1);
            let mut b = Vec::new();
            let mut got = Vec::new();
            for _ in 0..2 {
                match q.ring().get_limited(&t, &mut b, Wait::For(None), 8) {
                    Ok(()) => got.push(b.clone()),
                    Err(RingError::TooLarge(n)) => {
                        crate::check!(n > 8, "TooLarge({n}) under the limit");
                        got.push(Vec::new());
                    }
                    Err(e) => crate::check!(false, "get: {e:?}"),
                }
            }
            crate::check!(
                got == [vec![], vec![4; 4]],
                "limited gets delivered {got:?}"
            );
            h.join().unwrap();
        });
    }

    #[test]
    fn loom_catches_611_limit_keeps_piece() {
        assert!(fails_with(
            "limited gets delivered",
            size_limit::<{ MUTANT_LIMIT_KEEPS_PIECE.0 }>
        ));
    }

    /// A ring of 4 chunks that reclaims in units of 2: one producer, one
    /// consumer, messages of 1, 2 and 1 chunks then 2 and 2 (the ring wraps
    /// into units given back). Preemption bound 2.
    fn reclaiming(sizes: Vec<usize>) -> Spec {
        let mut s = spsc(sizes);
        s.cap = 4;
        s.reclaim = 1;
        s
    }

    #[test]
    fn loom_spsc_reclaiming() {
        check::<0>(reclaiming(vec![SMALL, FULL_RING, SMALL]), Some(2));
        check::<0>(reclaiming(vec![FULL_RING, FULL_RING, FULL_RING]), Some(2));
    }

    /// Messages of 3 chunks in a ring of 4 reclaiming units of 2: after the
    /// first, the producer has room only once the unit below `head` is given
    /// back. One of two consumers dies at every crash point (between its
    /// `head` store and its `reclaimed` store among them); the other must
    /// finish the reclaim step, or the producer waits for ever. Bound 1.
    pub(super) fn reclaim_crash<const M: u32>() -> u32 {
        every_crash_point(|k| {
            let mut s = reclaiming(vec![40, 40]);
            s.consumers = 2;
            s.crash = Some((1, k));
            check::<M>(s, Some(1))
        })
    }

    #[test]
    fn loom_reclaiming_consumer_dies_at_every_crash_point() {
        let n = reclaim_crash::<0>();
        assert!(n >= 8, "only {n} crash points");
    }

    /// Giving back the unit `head` is in zeroes a message not yet read.
    #[test]
    fn loom_catches_612_reclaim_unit_being_read() {
        // The consumer meets the zeroed rest of a unit it had not read.
        assert!(fails_with("bad piece header", || {
            check::<{ MUTANT_RECLAIM_READING.0 }>(
                reclaiming(vec![SMALL, FULL_RING, SMALL]),
                Some(2),
            );
        }));
    }

    /// Publishing `reclaimed` before giving the units back: the producer
    /// writes into a unit that is then zeroed (loom sees the two writes race).
    #[test]
    fn loom_catches_613_reclaimed_published_first() {
        assert!(fails_with("Concurrent write accesses", || {
            check::<{ MUTANT_RECLAIMED_FIRST.0 }>(
                reclaiming(vec![FULL_RING, FULL_RING, FULL_RING]),
                Some(2),
            );
        }));
    }

    /// A consumer that takes over from one that died in the reclaim step and
    /// does not finish it: the producer never gets its room back.
    #[test]
    fn loom_catches_614_no_reclaim_recovery() {
        assert!(fails_with("deadlock", || {
            reclaim_crash::<{ MUTANT_NO_RECLAIM_RECOVERY.0 }>();
        }));
    }

    /// A ring of 8 chunks reclaiming units of 2 that keeps the first unit of
    /// every lap: one-chunk messages wrap early to the next lap's start
    /// whenever the consumer has passed it (see `wraps_early_to_the_kept_start`).
    fn keeping(sizes: Vec<usize>) -> Spec {
        let mut s = spsc(sizes);
        s.cap = 8;
        s.reclaim = 1;
        s
    }

    /// One producer of three one-chunk messages and one consumer on a ring
    /// that wraps early (the third goes to the next lap's start when the
    /// consumer has read the first two). Preemption bound 2.
    #[test]
    fn loom_spsc_wrapping_early() {
        check::<0>(keeping(vec![SMALL; 3]), Some(2));
    }

    /// The producer dies at every crash point of a ring that wraps early
    /// (between writing the wrap marker and publishing among them): nothing
    /// half-made is delivered and the consumer goes on. Bound 1. (Consumers
    /// dying at every step of a ring that wraps early, between their `head`
    /// store past a marker and the reclaim step among them, are the shuttle
    /// check `shuttle_wrapping_deaths_at_every_crash_point`: with two
    /// consumers loom takes over ten minutes here.)
    pub(super) fn wrap_crash<const M: u32>() -> u32 {
        every_crash_point(|k| {
            let mut s = keeping(vec![SMALL; 3]);
            s.crash = Some((0, k));
            check::<M>(s, Some(1))
        })
    }

    #[test]
    fn loom_wrapping_early_deaths_at_every_crash_point() {
        let n = wrap_crash::<0>();
        assert!(n >= 8, "only {n} crash points");
    }

    /// The sweep above catches the misplaced message of seeded bug 615.
    #[test]
    fn loom_wrapping_early_deaths_catch_615() {
        assert!(fails_with("bad wrap marker", || {
            wrap_crash::<{ MUTANT_WRAP_OFF_BY_ONE.0 }>();
        }));
    }

    /// A message put one chunk before the lap's start is never read: the
    /// consumer follows the wrap marker past it.
    #[test]
    fn loom_catches_615_wrap_off_by_one() {
        assert!(fails_with("bad wrap marker", || {
            check::<{ MUTANT_WRAP_OFF_BY_ONE.0 }>(keeping(vec![SMALL; 3]), Some(2));
        }));
    }

    /// [`spsc`] with written messages and in-place reads (see [`Spec::written`]).
    fn written(sizes: Vec<usize>) -> Spec {
        Spec {
            written: true,
            ..spsc(sizes)
        }
    }

    /// A written message fills the ring, then one is written after a writer
    /// that failed, then one is streamed (too large for a writer: bytes);
    /// the consumer reads in place where it can.
    #[test]
    fn loom_spsc_written() {
        check::<0>(written(vec![FULL_RING, SMALL]), Some(2));
        check::<0>(written(vec![SMALL, FULL_RING, STREAMED]), Some(1));
    }

    /// A producer of written messages, and a consumer reading in place, die
    /// at every crash point (one of two consumers; preemption bound 1).
    #[test]
    fn loom_written_deaths_at_every_crash_point() {
        let n = every_crash_point(|k| {
            let s = Spec {
                producers: vec![vec![FULL_RING, SMALL], vec![SMALL]],
                crash: Some((0, k)),
                ..written(vec![])
            };
            check::<0>(s, Some(1))
        });
        assert!(n >= 6, "producer: only {n} crash points");
        let n = every_crash_point(|k| {
            let s = Spec {
                consumers: 2,
                crash: Some((1, k)),
                ..written(vec![FULL_RING, FULL_RING])
            };
            check::<0>(s, Some(1))
        });
        assert!(n >= 6, "consumer: only {n} crash points");
    }

    /// A writer that gave up half-way is published (seeded bug 625): its
    /// `put` reports success, and the consumer gets the half-written bytes.
    #[test]
    fn loom_catches_625_unwritten_published() {
        assert!(fails_with_any(&["a writer that failed", "torn"], || {
            check::<{ MUTANT_UNWRITTEN_PUBLISHED.0 }>(written(vec![SMALL, FULL_RING]), Some(1));
        }));
    }

    /// A producer whose prefetch of the next room is not bounded by the free
    /// room (seeded bug 628) touches the chunk of a message the consumer
    /// is still reading (the model platforms check a prefetch as a write of
    /// garbage): loom sees the race, or the consumer the garbage.
    #[test]
    fn loom_catches_628_prefetch_unread() {
        assert!(fails_with_any(
            &["Causality violation", "torn", "bad piece header"],
            || {
                check::<{ MUTANT_PREFETCH_UNREAD.0 }>(spsc(vec![SMALL; 3]), Some(2));
            }
        ));
    }

    /// A consumer that reads a message in place after freeing its chunks
    /// (seeded bug 626): the producer waiting for room writes the next
    /// message into them while it reads, and loom sees the race.
    #[test]
    fn loom_catches_626_view_after_free() {
        assert!(fails_with("Causality violation", || {
            check::<{ MUTANT_VIEW_AFTER_FREE.0 }>(written(vec![FULL_RING, FULL_RING]), Some(2));
        }));
    }

    #[test]
    fn loom_catches_608_deliver_partial() {
        assert!(fails_with("torn", || {
            producer_crash::<{ MUTANT_DELIVER_PARTIAL.0 }>();
        }));
    }
}

/// Positions are 40-bit chunk counters that wrap after 16 TiB of traffic:
/// a ring asked for 3 chunks (a capacity that does not divide 2^40) carries
/// messages across the wrap without mixing them up, with up to three
/// messages in it at once. One thread, so one shuttle iteration suffices.
#[test]
fn positions_wrap_around() {
    use crate::shuttle_platform::{world, ModelThread, Shuttle};
    shuttle::check_random(
        || {
            let w = world();
            let t = ModelThread::new(&w, 1);
            let q = Q::<Shuttle<0>>::with_header(RingHeader::new(3, 0).starting_at((1 << 40) - 7));
            let mut model = std::collections::VecDeque::new();
            let mut out = Vec::new();
            for i in 0..60u8 {
                let m = message(1, i, 2 + (i as usize * 7) % 20);
                if q.ring().put(&t, &m, Wait::No).is_ok() {
                    model.push_back(m);
                }
                if i % 3 == 2 {
                    while let Some(want) = model.pop_front() {
                        q.ring()
                            .get(&t, &mut out, Wait::No)
                            .expect("a message put is there");
                        assert_eq!(out, want, "message {i} came out wrong");
                    }
                }
            }
            assert!(q.ring().len() == model.len());
        },
        1,
    );
}

/// The wrap itself, step by step on one thread: a ring of 8 chunks keeping
/// 2 (one reclaim unit) at each lap's start. Messages at 0, 1 and 2 (the
/// kept start is unread: no wrap); once read, a message at 3 (mid-unit: the
/// producer does not look) and, read too, one at a unit's first chunk with
/// the queue empty: it goes to 8 behind a wrap marker at 4. Then the
/// consumer stops reading *before* the marker: the producer still gets the
/// whole ring — it follows the marker itself when it runs out of room — and
/// only a full ring (8 unread chunks) says Full.
/// On session 8's design (seeded bug 616: wrap while messages are unread,
/// room from the previous lap) the puts stop after 4 chunks.
fn wraps_early_then_the_consumer_stops<const M: u32>() {
    use crate::shuttle_platform::{world, ModelThread, Shuttle};
    shuttle::check_random(
        || {
            let w = world();
            let t = ModelThread::new(&w, 1);
            let q = Q::<Shuttle<M>>::with_header(RingHeader::new(8, 0).with_reclaim(1));
            let r = q.ring();
            assert_eq!(r.keep, 2);
            let positions = |r: &Ring<'_, Shuttle<M>>| {
                let d = format!("{r:?}");
                let field = |name: &str| {
                    let at = d.find(&format!("{name}: 0x")).expect(name) + name.len() + 4;
                    let hex: String = d[at..]
                        .chars()
                        .take_while(|c| c.is_ascii_hexdigit())
                        .collect();
                    u64::from_str_radix(&hex, 16).unwrap() & ((1 << 40) - 1)
                };
                (field("tail"), field("head"))
            };
            let mut out = Vec::new();
            let put = |i: u8, len: usize| r.put(&t, &message(1, i, len), Wait::No);
            let get = |out: &mut Vec<u8>, i: u8, len: usize| {
                r.get(&t, out, Wait::No).unwrap();
                assert_eq!(*out, message(1, i, len), "message {i}");
            };
            put(0, SMALL).unwrap();
            put(1, SMALL).unwrap();
            put(2, SMALL).unwrap();
            assert_eq!(positions(&r), (3, 0), "wrapped over unread messages");
            for i in 0..3 {
                get(&mut out, i, SMALL);
            }
            // Mid-unit: the producer does not look at the consumer's side.
            put(3, SMALL).unwrap();
            assert_eq!(positions(&r), (4, 3), "looked mid-unit");
            // At a unit's start with message 3 unread: no wrap.
            put(4, SMALL).unwrap();
            assert_eq!(positions(&r), (5, 3), "wrapped over an unread message");
            get(&mut out, 3, SMALL);
            get(&mut out, 4, SMALL);
            // 5 is mid-unit; at 6, a unit's start, the queue is empty.
            put(5, SMALL).unwrap();
            get(&mut out, 5, SMALL);
            put(6, SMALL).unwrap();
            assert_eq!(positions(&r), (9, 6), "did not wrap to the kept start");
            // The consumer stops here, before the marker. Every put goes in
            // until the whole ring is unread: 8 chunks (once the marker is
            // followed, `head` and `reclaimed` are at the lap's start).
            let first = 6;
            let mut n = 1; // message `first` is in
            while put(first + n, SMALL).is_ok() {
                n += 1;
                assert!(n <= 8, "more than the ring holds");
            }
            assert_eq!(n, 8, "the producer stopped with {n} chunks unread");
            // The consumer comes back: everything, in order.
            for i in first..first + 8 {
                get(&mut out, i, SMALL);
            }
            assert_eq!(r.len(), 0);
            // A message too large for the kept start (3 chunks) never wraps.
            let (tw, _) = positions(&r);
            put(100, 40).unwrap();
            assert_eq!(positions(&r).0, tw + 3);
            get(&mut out, 100, 40);
        },
        1,
    );
}

#[test]
fn wraps_early_then_the_consumer_stops_and_the_producer_goes_on() {
    wraps_early_then_the_consumer_stops::<0>();
}

/// The test above catches the design taken out in session 8 (616) and a
/// producer that never follows a marker itself (617).
#[test]
fn a_stopped_consumer_catches_616_and_617() {
    for m in [MUTANT_WRAP_NOT_EMPTY.0, MUTANT_NO_FINISH_WRAP.0] {
        let r = std::panic::catch_unwind(|| match m {
            616 => wraps_early_then_the_consumer_stops::<616>(),
            _ => wraps_early_then_the_consumer_stops::<617>(),
        });
        assert!(r.is_err(), "mutant {m} not caught");
    }
}

mod shuttle_checks {
    use super::*;
    use crate::shuttle_platform::Shuttle;

    /// Each thread of `who` dies at every one of its crash points (at least
    /// 4) of the spec `spec(crash)` builds, under PCT.
    fn deaths_at_every_crash_point(who: &[usize], spec: impl Fn(Option<(usize, u32)>) -> Spec) {
        deaths::<0>(who, spec);
    }

    /// [`deaths_at_every_crash_point`] under the seeded bug `M`.
    fn deaths<const M: u32>(who: &[usize], spec: impl Fn(Option<(usize, u32)>) -> Spec) {
        let iters = (shuttle_iters() / 10).max(50);
        for &who in who {
            let n = every_crash_point(|k| {
                let spec = spec(Some((who, k)));
                shuttle_runs(Sched::Pct, iters, move |d| {
                    body!(shuttle, shuttle_platform, Shuttle<M>, spec.clone(), d)
                })
            });
            assert!(n >= 4, "thread {who}: only {n} crash points");
        }
    }

    pub(super) fn random<const M: u32>(spec: Spec) -> bool {
        shuttle_runs(Sched::Random, shuttle_iters(), move |d| {
            body!(shuttle, shuttle_platform, Shuttle<M>, spec.clone(), d)
        })
    }

    pub(super) fn pct<const M: u32>(spec: Spec) -> bool {
        shuttle_runs(Sched::Pct, shuttle_iters(), move |d| {
            body!(shuttle, shuttle_platform, Shuttle<M>, spec.clone(), d)
        })
    }

    /// Three producers (small, ring-filling and streamed messages) and two
    /// consumers on a 4-chunk ring with an item bound.
    pub(super) fn mpmc(mixed: bool, crash: Option<(usize, u32)>) -> Spec {
        Spec {
            cap: 4,
            max_items: 3,
            producers: vec![vec![6, 90, 2], vec![56, 6], vec![2, 130]],
            consumers: 2,
            crash,
            mixed,
            spurious: None,
            reclaim: 0,
            written: false,
        }
    }

    #[test]
    fn shuttle_random_mpmc() {
        random::<0>(mpmc(false, None));
        random::<0>(mpmc(true, None));
    }

    /// [`mpmc`] on a ring that reclaims memory in units of 2 chunks.
    fn mpmc_reclaiming(mixed: bool, crash: Option<(usize, u32)>) -> Spec {
        let mut s = mpmc(mixed, crash);
        s.reclaim = 1;
        s
    }

    #[test]
    fn shuttle_mpmc_reclaiming() {
        random::<0>(mpmc_reclaiming(false, None));
        pct::<0>(mpmc_reclaiming(true, None));
    }

    /// Each consumer and a producer die at every crash point of a reclaiming ring.
    #[test]
    fn shuttle_reclaiming_deaths_at_every_crash_point() {
        deaths_at_every_crash_point(&[0, 3, 4], |c| mpmc_reclaiming(false, c));
    }

    /// [`mpmc`] on a ring of 8 chunks reclaiming units of 2 that keeps the
    /// first unit of every lap: the small messages (up to 2 chunks) wrap
    /// early whenever the consumers have passed the lap's start.
    fn mpmc_wrapping(mixed: bool, crash: Option<(usize, u32)>) -> Spec {
        let mut s = mpmc(mixed, crash);
        s.cap = 8;
        s.reclaim = 1;
        s
    }

    /// One producer of 20 one-chunk messages and two consumers on a ring of
    /// 8 chunks that keeps 2 at each lap's start: the producer outruns the
    /// consumers, wraps, and runs out of room with a wrap marker at `head`,
    /// which it follows itself when no consumer holds `cons`
    /// (`Ring::finish_wrap`). (Two consumers: one may die and the other
    /// reads the rest.)
    fn spsc_filling_wrap(crash: Option<(usize, u32)>) -> Spec {
        let mut s = mpmc(false, crash);
        s.cap = 8;
        s.reclaim = 1;
        s.max_items = 0;
        s.producers = vec![vec![SMALL; 20]];
        s.consumers = 2;
        s
    }

    #[test]
    fn shuttle_filling_a_ring_that_wraps_early() {
        random::<0>(spsc_filling_wrap(None));
        pct::<0>(spsc_filling_wrap(None));
    }

    /// The producer (thread 0), then a consumer (thread 1), dies at every
    /// crash point, those of a producer following a marker under `cons`
    /// among them.
    #[test]
    fn shuttle_filling_a_ring_that_wraps_early_deaths_at_every_crash_point() {
        deaths_at_every_crash_point(&[0, 1], spsc_filling_wrap);
    }

    /// A producer that follows a marker must not take a message for one:
    /// the checks catch 615 (the message one chunk before the lap's start)
    /// on the filling ring too.
    #[test]
    fn shuttle_filling_catches_615() {
        assert!(fails_with("bad wrap marker", || {
            random::<{ MUTANT_WRAP_OFF_BY_ONE.0 }>(spsc_filling_wrap(None));
        }));
    }

    #[test]
    fn shuttle_mpmc_wrapping_early() {
        random::<0>(mpmc_wrapping(false, None));
        pct::<0>(mpmc_wrapping(true, None));
    }

    /// Each consumer and a producer die at every crash point of a ring that
    /// wraps early.
    #[test]
    fn shuttle_wrapping_deaths_at_every_crash_point() {
        deaths_at_every_crash_point(&[0, 3, 4], |c| mpmc_wrapping(false, c));
    }

    /// Which check fires depends on the random schedule: mostly "bad wrap
    /// marker", sometimes a message goes missing ("lost": a run of `.ci/run`
    /// on 2026-12-06 met that one, and the single needle failed the test).
    #[test]
    fn shuttle_catches_615_wrap_off_by_one() {
        assert!(fails_with_any(&["bad wrap marker", "lost"], || {
            random::<{ MUTANT_WRAP_OFF_BY_ONE.0 }>(mpmc_wrapping(false, None));
        }));
    }

    #[test]
    fn shuttle_catches_612_reclaim_unit_being_read() {
        // Which check fires depends on the random schedule: a message in
        // the zeroed unit is lost, or the consumer meets zeroed or torn
        // headers ("lost", "bad piece header", "out of range"); loom pins it.
        assert!(fails_with("", || {
            random::<{ MUTANT_RECLAIM_READING.0 }>(mpmc_reclaiming(false, None));
        }));
    }

    /// [`mpmc`] with written messages and in-place reads.
    fn mpmc_written(mixed: bool, crash: Option<(usize, u32)>) -> Spec {
        Spec {
            written: true,
            ..mpmc(mixed, crash)
        }
    }

    #[test]
    fn shuttle_mpmc_written() {
        random::<0>(mpmc_written(false, None));
        pct::<0>(mpmc_written(true, None));
        pct::<0>(Spec {
            written: true,
            ..mpmc_reclaiming(true, None)
        });
    }

    /// A producer and each consumer die at every crash point, with written
    /// messages and in-place reads.
    #[test]
    fn shuttle_written_deaths_at_every_crash_point() {
        deaths_at_every_crash_point(&[0, 3, 4], |c| mpmc_written(false, c));
    }

    /// A prefetch not bounded by the free room (seeded bug 628) lands, on
    /// the model platforms, as garbage in a message still unread.
    #[test]
    fn shuttle_catches_628_prefetch_unread() {
        assert!(fails_with_any(
            &["torn", "bad piece header", "lost"],
            || {
                random::<{ MUTANT_PREFETCH_UNREAD.0 }>(mpmc(false, None));
            }
        ));
    }

    #[test]
    fn shuttle_catches_625_unwritten_published() {
        assert!(fails_with_any(&["a writer that failed", "torn"], || {
            random::<{ MUTANT_UNWRITTEN_PUBLISHED.0 }>(mpmc_written(false, None));
        }));
    }

    #[test]
    fn shuttle_pct_mpmc() {
        pct::<0>(mpmc(false, None));
        pct::<0>(mpmc(true, None));
    }

    /// Each of the five threads dies at every one of its crash points.
    #[test]
    fn shuttle_deaths_at_every_crash_point() {
        deaths_at_every_crash_point(&[0, 2, 3], |c| mpmc(false, c));
    }

    #[test]
    fn shuttle_catches_620_dead_copy_kept() {
        // The overwritten piece shows as a bad header or a lost message, as
        // the schedule goes; loom pins the race itself.
        assert!(fails_with_any(
            &["bad piece header", "lost", "out of range", "torn"],
            || {
                deaths::<{ MUTANT_DEAD_COPY_KEPT.0 }>(&[0, 1, 2], |c| mpmc(false, c));
            }
        ));
    }

    #[test]
    fn shuttle_catches_621_sleep_without_recheck() {
        assert!(fails_with("deadlock", || {
            random::<{ MUTANT_SLEEP_WITHOUT_RECHECK.0 }>(mpmc(false, None));
        }));
    }

    #[test]
    fn shuttle_catches_624_no_notify_not_full() {
        assert!(fails_with("deadlock", || {
            pct::<{ MUTANT_NO_NOTIFY_NOT_FULL.0 }>(mpmc(false, None));
        }));
    }

    #[test]
    fn shuttle_catches_603_no_notify() {
        assert!(fails_with("deadlock", || {
            pct::<{ MUTANT_NO_NOTIFY_NOT_EMPTY.0 }>(mpmc(false, None));
        }));
    }
}

/// Deterministic scenarios (one model thread, or two whose order the test
/// fixes) of the ring's limits, header, accessors, error answers and corner
/// cases, which the concurrent checks above do not look at (found by
/// cargo-mutants, issue 14: each test here fails under a mutant of ring.rs
/// that the checks above let pass).
mod unit {
    use super::*;
    use crate::platform::CellLike;
    use crate::shuttle_platform::{world, ModelThread, Shuttle};

    type S = Shuttle<0>;

    /// `small_le` reads every length up to 8 as a plain copy would.
    #[test]
    fn small_le_is_a_little_endian_copy() {
        let bytes: Vec<u8> = (1..=8).map(|i| i * 0x11).collect();
        for n in 0..=8 {
            let mut want = [0u8; 8];
            want[..n].copy_from_slice(&bytes[..n]);
            assert_eq!(
                super::super::small_le(&bytes[..n]),
                u64::from_le_bytes(want),
                "{n} bytes"
            );
        }
    }

    /// Run `f` once on one model thread.
    fn one_thread(f: impl Fn(&ModelThread) + Send + Sync + 'static) {
        shuttle::check_random(
            move || {
                let w = world();
                f(&ModelThread::new(&w, 1));
            },
            1,
        );
    }

    fn slots(h: &RingHeader<S>) -> Vec<<S as Platform>::Cell<Chunk>> {
        (0..h.capacity)
            .map(|_| CellLike::new([0u8; CHUNK]))
            .collect()
    }

    /// A ring's header and chunks owned together (to share with a model
    /// thread's spin hook).
    struct Owned<P: Platform>(RingHeader<P>, Vec<P::Cell<Chunk>>);

    impl<P: Platform> Owned<P> {
        fn new(h: RingHeader<P>) -> Self {
            let s = (0..h.capacity)
                .map(|_| CellLike::new([0u8; CHUNK]))
                .collect();
            Owned(h, s)
        }
        fn ring(&self) -> Ring<'_, P> {
            Ring::new(&self.0, &self.1).unwrap()
        }
    }

    /// The address of `field` in `h`, from `h`'s start.
    fn at<T>(h: &RingHeader<S>, field: &T) -> usize {
        field as *const T as usize - h as *const RingHeader<S> as usize
    }

    #[test]
    fn limits_positions_and_the_layout_table() {
        // Clamped to the largest ring and item bound.
        let h = RingHeader::<S>::new(u64::MAX, u32::MAX);
        assert_eq!(h.capacity(), 1 << 36);
        assert_eq!(h.max_items(), 1 << 22);
        assert_eq!(MAX_UNFINISHED, 0xff_ffff, "24-bit counts");
        // The largest piece: a `len: u32`, whole chunks, nothing larger.
        assert!(MAX_PIECE <= u32::MAX as usize && MAX_PIECE % CHUNK == 0);
        assert!(MAX_PIECE + CHUNK > u32::MAX as usize);
        // 40-bit positions and 24-bit counts, packed and unpacked.
        assert_eq!(pos(u64::MAX), (1 << 40) - 1);
        assert_eq!(cnt(u64::MAX), (1 << 24) - 1);
        assert_eq!(pack(5, 7), 5 << 40 | 7);
        assert_eq!(pack((1 << 24) | 5, (1 << 40) | 7), pack(5, 7));
        assert_eq!((cnt(pack(9, 3)), pos(pack(9, 3))), (9, 3));
        assert_eq!(floor_unit(37, 2), 36);
        assert_eq!(floor_unit(36, 2), 36);
        assert_eq!(floor_unit(u64::MAX, 3), ((1 << 40) - 1) & !7);
        assert_eq!(floor_unit(37, 0), 37);
        for (len, k) in [(0, 1), (8, 1), (9, 2), (24, 2), (25, 3), (56, 4)] {
            assert_eq!(chunks_for(len), k, "chunks_for({len})");
        }
        // `OFFSETS` (what impl's layout check hashes) is where the fields are.
        let h = RingHeader::<S>::new(4, 0);
        let want = [
            ("prod", at(&h, &h.prod.0.lock)),
            ("head_seen", at(&h, &h.prod.0.seen)),
            ("tail_own", at(&h, &h.prod.0.tail)),
            ("resynced", at(&h, &h.prod.0.resynced)),
            ("dirty", at(&h, &h.prod.0.dirty)),
            ("tail", at(&h, &h.tail.0.pos)),
            ("not_empty", at(&h, &h.tail.0.event)),
            ("cons", at(&h, &h.cons.0.lock)),
            ("tail_seen", at(&h, &h.cons.0.seen)),
            ("pace", at(&h, &h.cons.0.pace)),
            ("head", at(&h, &h.head.0.pos)),
            ("not_full", at(&h, &h.head.0.event)),
            ("closed", at(&h, &h.closed.0)),
            ("capacity", at(&h, &h.capacity)),
            ("max_items", at(&h, &h.max_items)),
            ("reclaim_shift", at(&h, &h.reclaim_shift)),
            ("reclaimed", at(&h, &h.reclaimed)),
        ];
        assert_eq!(RingHeader::<S>::OFFSETS, &want[..]);
    }

    #[test]
    fn headers_are_clamped_and_reclaim_only_in_units_they_can_hold() {
        one_thread(|_| headers_clamped());
    }

    fn headers_clamped() {
        let h = RingHeader::<S>::new(0, 0);
        assert_eq!((h.capacity(), h.max_items()), (1, 0));
        let h = RingHeader::<S>::new(5, 7);
        assert_eq!((h.capacity(), h.max_items()), (8, 7));
        // Units of up to half the ring; none, too large, or absurd: off.
        let unit = |cap: u64, shift: u32| RingHeader::<S>::new(cap, 0).with_reclaim(shift);
        assert_eq!(unit(16, 3).reclaim_shift, 3);
        assert_eq!(unit(16, 3).reclaim_unit(), 8);
        assert_eq!(unit(16, 1).reclaim_unit(), 2);
        for (cap, shift) in [(16, 0), (16, 4), (16, 5), (16, 40), (16, 50), (1 << 36, 36)] {
            let h = unit(cap, shift);
            assert_eq!(h.reclaim_shift, 0, "cap {cap} shift {shift}");
            assert_eq!(
                (h.reclaim_unit(), h.keep()),
                (0, 0),
                "cap {cap} shift {shift}"
            );
        }
        assert_eq!(unit(1 << 36, 35).reclaim_unit(), 1 << 35);
        // The kept start: KEEP_UNITS units, at most a quarter of the ring.
        assert_eq!(unit(8, 1).keep(), 2);
        assert_eq!(unit(1024, 2).keep(), 64);
        assert_eq!(unit(64, 2).keep(), 16);
        // `reclaimed` starts at the unit `head` is in, and so does the hint.
        let h = RingHeader::<S>::new(16, 0).starting_at(13).with_reclaim(2);
        assert_eq!(h.reclaimed.load(Relaxed), 12);
        assert_eq!(h.prod.0.seen.load(Relaxed), 12);
        // `starting_at` takes the position modulo 2^40.
        let h = RingHeader::<S>::new(16, 0).starting_at((1 << 40) + 5);
        for w in [&h.tail.0.pos, &h.head.0.pos, &h.prod.0.seen, &h.cons.0.seen] {
            assert_eq!(w.load(Relaxed), 5);
        }
        assert_eq!(h.reclaimed.load(Relaxed), 5, "unit 1: every position");
    }

    #[test]
    fn a_ring_refuses_a_header_that_does_not_fit_it() {
        let ok = RingHeader::<S>::new(8, 2);
        assert!(Ring::new(&ok, &slots(&ok)).is_some());
        let short: Vec<_> = slots(&ok).into_iter().take(4).collect();
        assert!(Ring::new(&ok, &short).is_none(), "4 chunks for 8");
        let bad = |f: &dyn Fn(&mut RingHeader<S>)| {
            let mut h = RingHeader::<S>::new(8, 2);
            f(&mut h);
            let s: Vec<_> = (0..h.capacity.min(64))
                .map(|_| CellLike::new([0u8; CHUNK]))
                .collect();
            Ring::new(&h, &s).is_none()
        };
        assert!(bad(&|h| h.capacity = 6), "not a power of two");
        assert!(bad(&|h| h.max_items = MAX_ITEMS + 1));
        assert!(!bad(&|h| h.max_items = MAX_ITEMS));
        assert!(bad(&|h| h.reclaim_shift = 3), "a unit of the whole ring");
        assert!(!bad(&|h| h.reclaim_shift = 2));
        assert!(bad(&|h| h.reclaim_shift = 40));
        // The capacity bound (a header's word, not the slots', decides).
        let mut h = RingHeader::<S>::new(8, 0);
        h.capacity = MAX_CAPACITY * 2;
        assert!(Ring::new(&h, &[]).is_none());
    }

    #[test]
    fn accessors_follow_puts_and_gets() {
        one_thread(|t| {
            let h = RingHeader::<S>::new(4, 3);
            let s = slots(&h);
            let r = Ring::new(&h, &s).unwrap();
            assert_eq!((r.capacity(), r.max_single_piece()), (4, 4 * CHUNK - 8));
            assert_eq!((r.len(), r.used_chunks()), (0, 0));
            assert!(r.is_empty() && !r.is_full() && !r.is_closed());
            r.put(t, &[1; 6], Wait::No).unwrap();
            assert_eq!((r.len(), r.used_chunks()), (1, 1));
            assert!(!r.is_empty() && !r.is_full());
            r.put(t, &[2; 6], Wait::No).unwrap();
            r.put(t, &[3; 6], Wait::No).unwrap();
            // At the item bound with a chunk free.
            assert_eq!((r.len(), r.used_chunks()), (3, 3));
            assert!(r.is_full());
            assert_eq!(r.put(t, &[4; 6], Wait::No), Err(RingError::Full));
            let mut out = Vec::new();
            r.get(t, &mut out, Wait::No).unwrap();
            assert_eq!(out, [1; 6]);
            assert_eq!((r.len(), r.used_chunks()), (2, 2));
            assert!(!r.is_full());
            assert_eq!(
                format!("{r:?}"),
                "RingHeader { capacity: 4, max_items: 3, tail: 0x30000000003, \
                 head: 0x10000000001, closed: 0, reclaimed: 0x0, prod: 0x0, cons: 0x0 }"
            );
            r.close(t);
            assert!(r.is_closed());
            assert_eq!(r.put(t, &[5; 6], Wait::No), Err(RingError::Closed));
            assert_eq!(format!("{r:?}").matches("closed: 1").count(), 1);

            // Unbounded: full by chunks (a 3-chunk message, then one more chunk).
            let h = RingHeader::<S>::new(4, 0);
            let s = slots(&h);
            let r = Ring::new(&h, &s).unwrap();
            r.put(t, &[6; 40], Wait::No).unwrap();
            assert_eq!((r.len(), r.used_chunks()), (1, 3));
            assert!(!r.is_full());
            r.put(t, &[7; 8], Wait::No).unwrap();
            assert_eq!((r.len(), r.used_chunks()), (2, 4));
            assert!(r.is_full());
            // Reclaiming in units of 2 of 8: an empty ring is sure of 7 chunks
            // for one piece (the consumed chunk of `head`'s unit is not free).
            let h = RingHeader::<S>::new(8, 0).with_reclaim(1);
            let s = slots(&h);
            let r = Ring::new(&h, &s).unwrap();
            assert_eq!(r.max_single_piece(), 7 * CHUNK - 8);
            assert_eq!(r.single_cap(), 7);
            let h = RingHeader::<S>::new(16, 0).with_reclaim(2);
            let s = slots(&h);
            assert_eq!(Ring::new(&h, &s).unwrap().single_cap(), 13);
        });
    }

    /// Publish a piece written by hand at `at` (what a producer half-way
    /// through a message leaves): `tail`, and the producers' copy of it, to `to`.
    fn publish(r: &Ring<'_, S>, at: u64, flags: u32, payload: &[u8], to: u64) {
        r.write_piece(at, flags, payload);
        r.h.tail.0.pos.store(to, Release);
        r.h.prod.0.tail.store(to, Relaxed);
    }

    /// The ring's consumers pace themselves (see [Pacing](super::super#pacing)
    /// and [`crate::testkit::check_pacing`]).
    fn pacing<const M: u32>() {
        crate::testkit::check_pacing(
            || Owned::<Shuttle<M>>::new(RingHeader::new(64, 0)),
            |r, t| r.ring().put(t, &[7; 4], Wait::No).unwrap(),
            |r, t| {
                let mut out = Vec::new();
                r.ring().get(t, &mut out, Wait::For(None)).unwrap();
                assert_eq!(out, [7; 4]);
            },
            |r| r.0.cons.0.pace.load(Relaxed),
        );
    }

    #[test]
    fn a_dense_stream_makes_the_consumers_linger_and_a_sparse_one_does_not() {
        pacing::<0>();
    }

    #[test]
    fn catches_622_never_linger() {
        assert!(fails_with("assertion", pacing::<{ MUTANT_NEVER_LINGER.0 }>));
    }

    #[test]
    fn catches_623_lazy_without_batch() {
        assert!(fails_with(
            "assertion",
            pacing::<{ MUTANT_LAZY_WITHOUT_BATCH.0 }>
        ));
    }

    #[test]
    fn corrupt_pieces_and_positions_are_reported_and_skipped() {
        one_thread(|t| {
            let h = RingHeader::<S>::new(4, 0);
            let s = slots(&h);
            let r = Ring::new(&h, &s).unwrap();
            let mut out = Vec::new();
            // An unknown flag; a length beyond the ring; more chunks than published.
            for (flags, len, chunks) in [
                (FIRST | LAST | 8, 4, 1),
                (FIRST | LAST, 90, 1),
                (FIRST | LAST, 30, 2),
            ] {
                let at = pos(h.tail.0.pos.load(Relaxed));
                let mut first = [0u8; CHUNK];
                first[..4].copy_from_slice(&(len as u32).to_le_bytes());
                first[4..8].copy_from_slice(&flags.to_le_bytes());
                // SAFETY: one thread; the chunk is beyond `tail`.
                unsafe { r.write_bytes((at & 3) as usize * CHUNK, &first) };
                h.tail.0.pos.store(pack(0, at + chunks), Release);
                let e = r.get(t, &mut out, Wait::No);
                assert_eq!(
                    e,
                    Err(RingError::Corrupt("bad piece header")),
                    "{flags} {len}"
                );
                assert!(out.is_empty());
                assert!(r.is_empty(), "the bad piece is skipped");
                // The ring goes on.
                r.put(t, &[9; 12], Wait::No).unwrap();
                assert_eq!(r.get(t, &mut out, Wait::No), Ok(()));
                assert_eq!(out, [9; 12]);
            }
            // `tail` more than the ring ahead of `head`. The producers go on
            // from their own copy: their next piece overwrites it.
            let tw = h.tail.0.pos.load(Relaxed);
            h.tail.0.pos.store(tw + 5, Release);
            r.put(t, &[1; 4], Wait::No).unwrap();
            assert_eq!(r.get(t, &mut out, Wait::No), Ok(()));
            assert_eq!(out, [1; 4]);
            // The consumers look first: they say so and skip to it; the
            // producers, told so, go on from there.
            let tw = h.tail.0.pos.load(Relaxed);
            h.tail.0.pos.store(tw + 5, Release);
            assert_eq!(
                r.get(t, &mut out, Wait::No),
                Err(RingError::Corrupt("ring positions out of range"))
            );
            assert!(r.is_empty() && r.used_chunks() == 0);
            r.put(t, &[2; 4], Wait::No).unwrap();
            assert_eq!(h.prod.0.resynced.load(Relaxed), 0, "request taken");
            assert_eq!(r.get(t, &mut out, Wait::No), Ok(()));
            assert_eq!(out, [2; 4]);
            // The producers' copy more than the ring ahead of `head`: the
            // producer says so, and the next one goes on from `tail`.
            let tw = h.prod.0.tail.load(Relaxed);
            h.prod.0.tail.store(tw + 5, Relaxed);
            assert_eq!(
                r.put(t, &[3; 4], Wait::No),
                Err(RingError::Corrupt("ring positions out of range"))
            );
            assert_eq!(h.prod.0.tail.load(Relaxed), tw);
            r.put(t, &[4; 4], Wait::No).unwrap();
            assert_eq!(r.get(t, &mut out, Wait::No), Ok(()));
            assert_eq!(out, [4; 4]);
        });
    }

    #[test]
    fn a_wrap_marker_whose_lap_start_is_not_published_is_corrupt() {
        one_thread(|t| {
            let h = RingHeader::<S>::new(8, 0).starting_at(3).with_reclaim(1);
            let s = slots(&h);
            let r = Ring::new(&h, &s).unwrap();
            let mut out = Vec::new();
            // A marker at 3 whose lap start (8) lies beyond `tail` (5).
            publish(&r, 3, WRAP, &[], pack(0, 5));
            assert_eq!(
                r.get(t, &mut out, Wait::No),
                Err(RingError::Corrupt("bad wrap marker"))
            );
            assert!(r.is_empty());
            // A marker whose lap start is published: followed.
            publish(&r, 5, WRAP, &[], pack(0, 6));
            publish(&r, 8, FIRST | LAST, &[7; 4], pack(1, 9));
            assert_eq!(r.get(t, &mut out, Wait::No), Ok(()));
            assert_eq!(out, [7; 4]);
            assert_eq!(pos(h.head.0.pos.load(Relaxed)), 9);
            assert_eq!(h.reclaimed.load(Relaxed), 8);
        });
    }

    #[test]
    fn try_operations_take_only_whole_messages() {
        one_thread(|t| {
            let h = RingHeader::<S>::new(2, 0);
            let s = slots(&h);
            let r = Ring::new(&h, &s).unwrap();
            let mut out = Vec::new();
            // A message larger than one piece of the ring: never at once.
            assert_eq!(r.put(t, &[1; 25], Wait::No), Err(RingError::Full));
            r.put(t, &[1; 24], Wait::No).unwrap();
            assert_eq!(r.put(t, &[1; 1], Wait::No), Err(RingError::Full));
            assert_eq!(r.get(t, &mut out, Wait::No), Ok(()));
            // The first piece of a streamed message, its producer still on it.
            publish(&r, 2, FIRST, &[2; 8], pack(1, 3));
            assert_eq!(r.get(t, &mut out, Wait::No), Err(RingError::Empty));
            assert_eq!(pos(h.head.0.pos.load(Relaxed)), 2, "nothing consumed");
            publish(&r, 3, LAST, &[3; 4], pack(2, 4));
            assert_eq!(r.get(t, &mut out, Wait::No), Ok(()));
            assert_eq!(out, [[2; 8], [3; 8]].concat()[..12]);
            // A consumer lock held elsewhere: Empty, or Closed once closed and empty.
            h.cons.0.lock.try_lock(t).unwrap();
            assert_eq!(r.get(t, &mut out, Wait::No), Err(RingError::Empty));
            r.put(t, &[4; 4], Wait::No).unwrap();
            r.close(t);
            assert_eq!(
                r.get(t, &mut out, Wait::No),
                Err(RingError::Empty),
                "not empty"
            );
            h.cons.0.lock.unlock(t).unwrap();
            assert_eq!(r.get(t, &mut out, Wait::No), Ok(()));
            h.cons.0.lock.try_lock(t).unwrap();
            assert_eq!(r.get(t, &mut out, Wait::No), Err(RingError::Closed));
            h.cons.0.lock.unlock(t).unwrap();
            assert_eq!(r.get(t, &mut out, Wait::No), Err(RingError::Closed));
        });
    }

    #[test]
    fn a_size_limit_counts_the_whole_message() {
        one_thread(|t| {
            let h = RingHeader::<S>::new(8, 0);
            let s = slots(&h);
            let r = Ring::new(&h, &s).unwrap();
            let mut out = Vec::new();
            r.put(t, &[1; 10], Wait::No).unwrap();
            assert_eq!(r.get_limited(t, &mut out, Wait::No, 10), Ok(()));
            r.put(t, &[2; 10], Wait::No).unwrap();
            assert_eq!(
                r.get_limited(t, &mut out, Wait::No, 9),
                Err(RingError::TooLarge(10))
            );
            assert!(out.is_empty() && r.is_empty());
            // Streamed by hand: 20 bytes, then 10 more; the limit is passed in
            // the second piece, whose size counts.
            let tw = pos(h.tail.0.pos.load(Relaxed));
            publish(&r, tw, FIRST, &[3; 20], pack(2, tw + 2));
            publish(&r, tw + 2, LAST, &[4; 10], pack(3, tw + 4));
            assert_eq!(
                r.get_limited(t, &mut out, Wait::No, 25),
                Err(RingError::TooLarge(30))
            );
            assert!(r.is_empty());
            r.put(t, &[5; 3], Wait::No).unwrap();
            assert_eq!(r.get_limited(t, &mut out, Wait::No, 3), Ok(()));
            assert_eq!(out, [5; 3]);
        });
    }

    #[test]
    fn a_joinable_put_is_refused_at_max_unfinished() {
        one_thread(|t| {
            let h = RingHeader::<S>::new(8, 0);
            let s = slots(&h);
            let r = Ring::new(&h, &s).unwrap();
            // committed 0, done 1: 2^24 - 1 unfinished (modulo 2^24).
            let done = <S as Platform>::W32::new(1);
            assert_eq!(
                r.put_counted(t, Message::Bytes(&[1]), Wait::No, Some(&done)),
                Err(RingError::Full)
            );
            assert_eq!(r.len(), 0);
            done.store(2, Relaxed);
            assert_eq!(
                r.put_counted(t, Message::Bytes(&[1]), Wait::No, Some(&done)),
                Ok(())
            );
            assert_eq!(r.committed(), 1);
            // 1 - 2: exactly MAX_UNFINISHED again.
            assert_eq!(
                r.put_counted(t, Message::Bytes(&[1]), Wait::No, Some(&done)),
                Err(RingError::Full)
            );
        });
    }

    /// A message that fits the ring as one piece (it is not streamed) waits
    /// for room for all of it: a try or timed `put` that finds less room
    /// writes nothing (no first half left behind, abandoned).
    #[test]
    fn a_message_that_fits_the_ring_is_written_whole_or_not_at_all() {
        one_thread(|t| {
            let h = RingHeader::<S>::new(4, 0);
            let s = slots(&h);
            let r = Ring::new(&h, &s).unwrap();
            let mut out = Vec::new();
            r.put(t, &[1; 20], Wait::No).unwrap(); // 2 chunks: half the ring free
            let soon = Wait::For(Some(Duration::from_millis(1)));
            for wait in [Wait::No, soon] {
                // 3 chunks: fits the ring, not the room.
                assert_eq!(r.put(t, &[2; 40], wait), Err(RingError::Full));
                assert_eq!((r.len(), r.used_chunks()), (1, 2), "nothing written");
            }
            r.get(t, &mut out, Wait::No).unwrap();
            assert_eq!(out, [1; 20]);
            assert!(r.is_empty());
            r.put(t, &[2; 40], Wait::No).unwrap();
            assert_eq!((r.len(), r.used_chunks()), (1, 3), "one piece");
            r.get(t, &mut out, Wait::No).unwrap();
            assert_eq!(out, [2; 40]);
        });
    }

    /// A written message is published only if its writer wrote exactly the
    /// bytes it announced and said so: a writer that stops short, one that
    /// writes past its length (the sink refuses the bytes) and one that
    /// fails publish nothing, and the ring goes on; a written message larger
    /// than one piece is refused before anything is written. Read back in
    /// place, a message lying across the array end is assembled in `out`.
    #[test]
    fn a_written_message_is_published_only_whole() {
        one_thread(|t| {
            let h = RingHeader::<S>::new(4, 0); // 64 bytes
            let s = slots(&h);
            let r = Ring::new(&h, &s).unwrap();
            let mut out = Vec::new();
            type Writer = Box<dyn FnMut(&mut dyn Sink) -> bool>;
            let put = |len: usize, mut write: Writer| {
                let msg = Message::Written {
                    len,
                    write: &mut *write,
                };
                r.put_message(t, msg, Wait::No)
            };
            let short = Box::new(|s: &mut dyn Sink| s.write(&[7; 19]));
            assert_eq!(put(20, short), Err(RingError::Unwritten));
            let long = Box::new(|s: &mut dyn Sink| {
                assert!(s.write(&[7; 20]));
                assert!(!s.write(&[7]), "a byte past the length is refused");
                true
            });
            assert_eq!(put(20, long), Err(RingError::Unwritten));
            let failed = Box::new(|s: &mut dyn Sink| {
                assert!(s.write(&[7; 20]));
                false
            });
            assert_eq!(put(20, failed), Err(RingError::Unwritten));
            let big = Box::new(|_: &mut dyn Sink| panic!("written before the size check"));
            assert_eq!(put(57, big), Err(RingError::TooLarge(57)));
            assert!(r.is_empty(), "nothing published");
            // Two chunks, three across the array end, two, two across it.
            for (len, byte) in [(20, 1u8), (40, 2), (20, 3), (20, 4)] {
                let whole = Box::new(move |s: &mut dyn Sink| {
                    s.write(&vec![byte; len / 2]) && s.write(&vec![byte; len - len / 2])
                });
                put(len, whole).unwrap();
                let got = r.get_view(t, &mut out, Wait::No, usize::MAX, |m| m.to_vec());
                assert_eq!(got.unwrap(), vec![byte; len]);
                // In place (nothing in `out`), or assembled there.
                assert_eq!(out.is_empty(), byte % 2 == 1, "message {byte}");
            }
            assert_eq!(out, [4; 20]);
            // A message's length and its debug form (its length, not its bytes).
            let mut w = |_: &mut dyn Sink| true;
            let written = Message::Written {
                len: 3,
                write: &mut w,
            };
            assert_eq!((written.is_empty(), written.len()), (false, 3));
            assert_eq!(format!("{written:?}"), "Written { len: 3 }");
            assert!(Message::Bytes(&[]).is_empty());
            assert_eq!(format!("{:?}", Message::Bytes(&[1, 2])), "Bytes(2)");
        });
    }

    /// A consumer assembling a streamed message whose producer (alive, still
    /// holding `prod`) is slow to write the next piece: a liveness poll (here
    /// after another thread's death) ends its sleep, and it asks whether the
    /// producer is alive before it gives the message up: it waits on and gets
    /// the message whole. The producer writes its last piece once the
    /// consumer sleeps (or has returned), so every schedule is this one (20
    /// of them run; 300 were, by hand).
    #[test]
    fn a_liveness_poll_does_not_give_up_a_live_producers_message() {
        shuttle::check_random(
            || {
                let w = world();
                let dead = ModelThread::new(&w, 3).crash_at(Some(1));
                assert!(crate::shuttle_platform::run(&dead, |t| t.crash_point()));
                let q = Arc::new(Q::<S>::new(4, 0));
                let t = ModelThread::new(&w, 2);
                let r = q.ring();
                // The producer holds `prod` and published its first piece.
                r.h.prod.0.lock.try_lock(&t).unwrap();
                publish(&r, 0, FIRST, &[1; 8], pack(0, 1));
                let done = Arc::new(AtomicBool::new(false));
                let consumer = {
                    let (w, q, done) = (w.clone(), q.clone(), done.clone());
                    shuttle::thread::spawn(move || {
                        let t = ModelThread::new(&w, 1);
                        let mut out = Vec::new();
                        let soon = Wait::For(Some(Duration::from_millis(1)));
                        let got = q.ring().get(&t, &mut out, soon);
                        done.store(true, SeqCst);
                        (got, out)
                    })
                };
                let ev = &r.h.tail.0.event as *const _ as usize;
                let asleep = || {
                    let inner = w.inner.lock().unwrap();
                    inner.sleeping_on.iter().any(|&(a, _)| a == ev)
                };
                while !done.load(SeqCst) && !asleep() {
                    shuttle::thread::yield_now();
                }
                publish(&r, 1, LAST, &[2; 4], pack(1, 2));
                r.notify(&t, &r.h.tail.0.event);
                r.h.prod.0.lock.unlock(&t).unwrap();
                let (got, out) = consumer.join().unwrap();
                assert_eq!(got, Ok(()), "the message was given up");
                assert_eq!(out, [&[1; 8][..], &[2; 4]].concat());
            },
            20,
        );
    }

    /// Records what a reclaiming ring gives back.
    #[derive(Default)]
    struct Recorder(std::sync::Mutex<Vec<(usize, usize)>>);

    impl Reclaim for Recorder {
        fn reclaim(&self, first: usize, chunks: usize) {
            self.0.lock().unwrap().push((first, chunks));
        }
    }

    #[test]
    fn consumed_units_are_given_back_but_not_the_kept_start() {
        one_thread(|t| {
            // 8 chunks, units of 2, the first unit of every lap kept.
            let h = RingHeader::<S>::new(8, 0).with_reclaim(1);
            let s = slots(&h);
            let rec = Recorder::default();
            let r = Ring::new(&h, &s).unwrap().with_reclaimer(&rec);
            let mut out = Vec::new();
            let mut gave = Vec::new();
            // 3-chunk messages (too large for the kept start: never wrap early).
            for (i, want) in [
                (0u8, vec![]),
                (1, vec![(2, 4)]),
                (2, vec![(6, 2)]),
                (3, vec![(2, 2)]),
            ] {
                r.put(t, &[i; 40], Wait::No).unwrap();
                r.get(t, &mut out, Wait::No).unwrap();
                assert_eq!(out, [i; 40]);
                gave.extend(want);
                assert_eq!(*rec.0.lock().unwrap(), gave, "after message {i}");
                assert_eq!(
                    h.reclaimed.load(Relaxed),
                    pos(h.head.0.pos.load(Relaxed)) & !1
                );
            }
            // A `reclaimed` this protocol did not write: nothing given back, reset.
            h.reclaimed.store(9, Relaxed);
            r.put(t, &[4; 40], Wait::No).unwrap();
            r.get(t, &mut out, Wait::No).unwrap();
            // (Then [12, 14), which `head` passed, as usual.)
            gave.push((4, 2));
            assert_eq!(*rec.0.lock().unwrap(), gave);
            assert_eq!(h.reclaimed.load(Relaxed), 14);
            // The model's own give-back zeroes the units, keeps the lap's start.
            let h = RingHeader::<S>::new(8, 0).with_reclaim(1);
            let s = slots(&h);
            let r = Ring::new(&h, &s).unwrap();
            // SAFETY: one thread, no operation running: nobody writes the chunk.
            let chunk = |i: usize| s[i].with(|p| unsafe { *p });
            r.put(t, &[7; 100], Wait::No).unwrap(); // 7 chunks
            r.get(t, &mut out, Wait::No).unwrap();
            assert_eq!(h.reclaimed.load(Relaxed), 6);
            assert_ne!(chunk(0), [0; CHUNK], "the kept start");
            assert_ne!(chunk(1), [0; CHUNK], "the kept start");
            for i in 2..6 {
                assert_eq!(chunk(i), [0; CHUNK], "chunk {i}");
            }
            assert_eq!(chunk(6)[..12], [7; 12], "head's unit");
        });
    }

    /// Where two messages go, and what following their wrap markers gives
    /// back, on rings of 64 chunks in units of 8 (the first 16 kept), with
    /// the seeded bug `M`: (1) a 6-chunk message at 13 would end past the
    /// kept start: it wraps from there onto the empty queue (the marker in
    /// memory that stays), and following the marker gives nothing back (the
    /// units past it are holes); (2) a 1-chunk message at 40, past the kept
    /// start, wraps too, and following its marker gives back the unit it is
    /// in, `[40, 48)`, not the holes after it; (3) so does a marker in a
    /// unit's last chunk (at 47).
    fn marker_give_backs<const M: u32>() -> (u64, Vec<(usize, usize)>) {
        let result = Arc::new(std::sync::Mutex::new(None));
        let res = result.clone();
        shuttle::check_random(
            move || {
                let w = world();
                let t = &ModelThread::new(&w, 1);
                let mut out = Vec::new();
                let h = RingHeader::<Shuttle<M>>::new(64, 0).with_reclaim(3);
                assert_eq!(h.keep(), 16);
                let s: Vec<_> = (0..64).map(|_| CellLike::new([0u8; CHUNK])).collect();
                let rec = Recorder::default();
                let r = Ring::new(&h, &s).unwrap().with_reclaimer(&rec);
                r.put(t, &[1; 13 * CHUNK - 8], Wait::No).unwrap();
                r.get(t, &mut out, Wait::No).unwrap();
                r.put(t, &[2; 6 * CHUNK - 8], Wait::No).unwrap();
                let tail = pos(h.tail.0.pos.load(Relaxed));
                r.get(t, &mut out, Wait::No).unwrap();
                assert_eq!(out, [2; 6 * CHUNK - 8]);
                let first = std::mem::take(&mut *rec.0.lock().unwrap());
                assert_eq!(first, [], "after the wrap from the kept start");
                // (2): two 20-chunk messages (too large to wrap early), read.
                let h = RingHeader::<Shuttle<M>>::new(64, 0).with_reclaim(3);
                let r = Ring::new(&h, &s).unwrap().with_reclaimer(&rec);
                r.put(t, &[3; 20 * CHUNK - 8], Wait::No).unwrap();
                r.put(t, &[4; 20 * CHUNK - 8], Wait::No).unwrap();
                r.get(t, &mut out, Wait::No).unwrap();
                r.get(t, &mut out, Wait::No).unwrap();
                r.put(t, &[5; 4], Wait::No).unwrap();
                assert_eq!(pos(h.tail.0.pos.load(Relaxed)), 65, "wrapped from 40");
                r.get(t, &mut out, Wait::No).unwrap();
                assert_eq!(out, [5; 4]);
                assert_eq!(h.reclaimed.load(Relaxed), 64);
                // (3): 20, 20 and 7 chunks put before any is read (no wrap),
                // read; then 8 chunks, from 47: the marker ends at a unit's
                // end, and its unit only is given back.
                let h = RingHeader::<Shuttle<M>>::new(64, 0).with_reclaim(3);
                let r = Ring::new(&h, &s).unwrap().with_reclaimer(&rec);
                for (v, k) in [(6, 20), (7, 20), (8, 7)] {
                    r.put(t, &vec![v; k * CHUNK - 8], Wait::No).unwrap();
                }
                for _ in 0..3 {
                    r.get(t, &mut out, Wait::No).unwrap();
                }
                r.put(t, &[9; 8 * CHUNK - 8], Wait::No).unwrap();
                assert_eq!(pos(h.tail.0.pos.load(Relaxed)), 72, "wrapped from 47");
                r.get(t, &mut out, Wait::No).unwrap();
                assert_eq!(out, [9; 8 * CHUNK - 8]);
                *res.lock().unwrap() = Some((tail, rec.0.lock().unwrap().clone()));
            },
            1,
        );
        let r = result.lock().unwrap().take().unwrap();
        r
    }

    #[test]
    fn a_wrap_marker_lies_in_the_kept_start_and_holes_are_not_given_back() {
        assert_eq!(
            marker_give_backs::<0>(),
            (70, vec![(16, 24), (40, 8), (16, 24), (40, 8)])
        );
    }

    /// The seeded bug 627 (the marker's own unit taken for a hole) is caught:
    /// `[40, 48)`, which held the second 20-chunk message's end, is never
    /// given back.
    #[test]
    fn catches_627_marker_unit_kept() {
        assert_eq!(
            marker_give_backs::<{ MUTANT_MARKER_UNIT_KEPT.0 }>(),
            (70, vec![(16, 24), (16, 24), (40, 8)])
        );
    }

    /// A ring of 64 keeping 16, units of 8: a 20-chunk message at 0, unread,
    /// then a written one of 20 chunks whose writer fails (at 20: its chunks
    /// `[20, 40)` are written and not published), then one-chunk messages,
    /// each read, until one wraps early: where it wraps from, and the chunks
    /// given back. The producers do not wrap while the failed writer's chunks
    /// lie ahead (not at 24 or 32, the looks before 40): they write over
    /// them, and every unit past the kept start up to the marker's is given
    /// back.
    fn failed_writer_give_backs<const M: u32>() -> (u64, Vec<(usize, usize)>) {
        use std::sync::Mutex;
        let result = Arc::new(Mutex::new(None));
        let res = result.clone();
        shuttle::check_random(
            move || {
                let w = world();
                let t = &ModelThread::new(&w, 1);
                let mut out = Vec::new();
                let h = RingHeader::<Shuttle<M>>::new(64, 0).with_reclaim(3);
                assert_eq!(h.keep(), 16);
                let s: Vec<_> = (0..64).map(|_| CellLike::new([0u8; CHUNK])).collect();
                let rec = Recorder::default();
                let r = Ring::new(&h, &s).unwrap().with_reclaimer(&rec);
                r.put(t, &[1; 20 * CHUNK - 8], Wait::No).unwrap();
                // Writes some of its bytes, then fails.
                let mut fail = |k: &mut dyn Sink| {
                    assert!(k.write(&[2; 100]));
                    false
                };
                let msg = Message::Written {
                    len: 20 * CHUNK - 8,
                    write: &mut fail,
                };
                assert_eq!(r.put_message(t, msg, Wait::No), Err(RingError::Unwritten));
                assert_eq!(pos(h.tail.0.pos.load(Relaxed)), 20, "nothing published");
                r.get(t, &mut out, Wait::No).unwrap();
                let from = loop {
                    let before = pos(h.tail.0.pos.load(Relaxed));
                    r.put(t, &[3; 4], Wait::No).unwrap();
                    r.get(t, &mut out, Wait::No).unwrap();
                    assert_eq!(out, [3; 4]);
                    if pos(h.tail.0.pos.load(Relaxed)) > 64 {
                        break before;
                    }
                    assert!(before < 64, "no wrap");
                };
                let mut gave = rec.0.lock().unwrap().clone();
                gave.sort();
                *res.lock().unwrap() = Some((from, gave));
            },
            1,
        );
        let r = result.lock().unwrap().take().unwrap();
        r
    }

    /// Fails on the ring before `dirty` (and with the seeded bug 629): the
    /// producers wrap from 24 and `[32, 40)`, which the failed writer wrote,
    /// is never given back.
    #[test]
    fn a_failed_writers_chunks_are_not_left_behind_by_a_wrap() {
        let (from, gave) = failed_writer_give_backs::<0>();
        assert_eq!(from, 40, "wrapped from");
        let mut covered = vec![false; 64];
        for (first, n) in gave {
            covered[first..first + n].iter_mut().for_each(|c| *c = true);
        }
        assert!(
            covered[16..48].iter().all(|&c| c),
            "given back: {covered:?}"
        );
    }

    #[test]
    fn catches_629_dirty_skipped() {
        let (from, gave) = failed_writer_give_backs::<{ MUTANT_DIRTY_SKIPPED.0 }>();
        assert_eq!(from, 24);
        assert!(
            !gave.iter().any(|&(first, n)| first < 40 && first + n > 32),
            "{gave:?}"
        );
    }

    /// A writer that fails after its message wrapped (its chunks at the next
    /// lap's start, in the kept start) does not hold the next wrap back: the
    /// next message wraps from the same place (`dirty`, 66, lies ahead of
    /// `tail`, 16, but in the next lap). Fails if `dirty` is taken as ahead
    /// anywhere within a ring's length: the message goes at 16.
    #[test]
    fn a_writer_that_failed_after_a_wrap_does_not_hold_the_next_one_back() {
        one_thread(|t| {
            let h = RingHeader::<S>::new(64, 0).with_reclaim(3);
            assert_eq!(h.keep(), 16);
            let s = slots(&h);
            let r = Ring::new(&h, &s).unwrap();
            let mut out = Vec::new();
            for i in 0..16u8 {
                r.put(t, &[i; 4], Wait::No).unwrap();
                r.get(t, &mut out, Wait::No).unwrap();
            }
            assert_eq!(pos(h.tail.0.pos.load(Relaxed)), 16);
            let mut fail = |_: &mut dyn Sink| false;
            let msg = Message::Written {
                len: 2 * CHUNK - 8,
                write: &mut fail,
            };
            assert_eq!(r.put_message(t, msg, Wait::No), Err(RingError::Unwritten));
            assert_eq!(
                pos(h.prod.0.dirty.load(Relaxed)),
                66,
                "it wrapped, then failed"
            );
            r.put(t, &[9; 4], Wait::No).unwrap();
            assert_eq!(pos(h.tail.0.pos.load(Relaxed)), 65, "wrapped");
            r.get(t, &mut out, Wait::No).unwrap();
            assert_eq!(out, [9; 4]);
        });
    }

    /// After a message of at least 64 chunks (1 KiB), or half the ring, the
    /// producer prefetches the room the next one of that size would take:
    /// from `tail`, at most 256 chunks, within the free room by its hint of
    /// `head`, up to the array end; after a smaller one, nothing.
    #[test]
    fn a_producer_prefetches_the_next_messages_room_within_the_free_room() {
        one_thread(|t| {
            let h = RingHeader::<S>::new(1024, 0);
            let s = slots(&h);
            let r = Ring::new(&h, &s).unwrap();
            let base = s.as_ptr() as usize;
            let cell = core::mem::size_of_val(&s[0]);
            let put = |fill: u8, chunks: usize| {
                crate::checkers::record_prefetches();
                r.put(t, &vec![fill; chunks * CHUNK - 8], Wait::No).unwrap();
                crate::checkers::prefetched()
                    .into_iter()
                    .map(|(a, n)| ((a - base) / cell, n))
                    .collect::<Vec<_>>()
            };
            let mut out = Vec::new();
            assert_eq!(put(1, 63), [], "below 1 KiB");
            r.get(t, &mut out, Wait::No).unwrap(); // `head` at 63; the hint stays 0
            assert_eq!(put(2, 70), [(133, 70)], "as much as the message");
            assert_eq!(put(3, 300), [(433, 256)], "at most 4 KiB");
            // Free by the hint (0): 91 chunks, up to the array end.
            assert_eq!(put(4, 500), [(933, 91)], "up to the array end");
            // No room by the hint: it reloads it (63); free 54 from 1033 (9).
            assert_eq!(put(5, 100), [(9, 54)], "within the free room");
            // Half a ring of 8 chunks is a large message there.
            let h = RingHeader::<S>::new(8, 0);
            let s8 = slots(&h);
            let r = Ring::new(&h, &s8).unwrap();
            let base = s8.as_ptr() as usize;
            crate::checkers::record_prefetches();
            r.put(t, &[6; 4 * CHUNK - 8], Wait::No).unwrap();
            let p = crate::checkers::prefetched();
            assert_eq!(p, [(base + 4 * cell, 4)]);
            crate::checkers::record_prefetches();
            r.get(t, &mut out, Wait::No).unwrap();
            r.put(t, &[7; 3 * CHUNK - 8], Wait::No).unwrap();
            assert_eq!(crate::checkers::prefetched(), [], "3 of 8 chunks");
        });
    }

    /// Where a stream of one-chunk messages, each put while the one before is
    /// still unread until `tail` passes `lag_until`, then put onto an empty
    /// queue, first wraps early: the position it jumps from.
    fn first_wrap_from(t: &ModelThread, h: &RingHeader<S>, lag_until: u64) -> u64 {
        let s = slots(h);
        let r = Ring::new(h, &s).unwrap();
        let mut out = Vec::new();
        r.put(t, &[0; 4], Wait::No).unwrap(); // the lag
        loop {
            let before = pos(h.tail.0.pos.load(Relaxed));
            if before >= lag_until && !r.is_empty() {
                r.get(t, &mut out, Wait::No).unwrap();
            }
            r.put(t, &[1; 4], Wait::No).unwrap();
            if pos(h.tail.0.pos.load(Relaxed)) > h.capacity {
                return before;
            }
            r.get(t, &mut out, Wait::No).unwrap();
            assert!(before < h.capacity, "no wrap");
        }
    }

    /// A ring of 8192 chunks reclaiming units of 1024 (keeping 2 of them): a
    /// producer past the kept start looks for the lap's start every
    /// `WRAP_LOOK` (256) chunks, not only at a unit's start: the first look
    /// onto an empty queue after 2048 + 256 is at 2560, in the middle of a
    /// unit (a look that finds the consumer behind costs a page of fresh
    /// memory, not a unit of 16).
    #[test]
    fn a_producer_looks_for_the_lap_start_every_wrap_look_chunks() {
        one_thread(|t| {
            let h = RingHeader::<S>::new(8192, 0).with_reclaim(10);
            assert_eq!((h.reclaim_unit(), h.keep()), (1024, 2048));
            assert_eq!(first_wrap_from(t, &h, 2048 + 257), 2560);
        });
    }

    /// A producer at a look (at `n`, a unit's start past the kept start of
    /// 16, after `n` one-chunk messages of which all but `unread` are read)
    /// spins while the consumer is reading: holding `cons`, or having moved
    /// `head` since the first look. The consumer here reads inside the
    /// producer's spins, by `plan` (messages per spin); `hold`: the test holds
    /// `cons` meanwhile. Returns where the message went and the spins.
    fn wrap_spins(
        (n, unread): (u8, usize),
        plan: &[usize],
        hold: bool,
    ) -> (u64, Vec<crate::checkers::Spun>) {
        use std::sync::Mutex;
        let result = Arc::new(Mutex::new(None));
        let (plan, res) = (plan.to_vec(), result.clone());
        shuttle::check_random(
            move || {
                let w = world();
                let q = Arc::new(Owned::<S>::new(RingHeader::new(64, 0).with_reclaim(1)));
                let plan = Arc::new(Mutex::new(std::collections::VecDeque::from(plan.clone())));
                let spun = Arc::new(Mutex::new(Vec::new()));
                let t = {
                    let (q, plan, spun) = (q.clone(), plan.clone(), spun.clone());
                    ModelThread::new(&w, 1).spins(32).on_spin(move |t, s| {
                        spun.lock().unwrap().push(s);
                        let r = q.ring();
                        let mut out = Vec::new();
                        for _ in 0..plan.lock().unwrap().pop_front().expect("a spin more") {
                            r.get(t, &mut out, Wait::No).unwrap();
                        }
                    })
                };
                let r = q.ring();
                let mut out = Vec::new();
                for i in 0..n {
                    r.put(&t, &[i; 4], Wait::No).unwrap();
                }
                for _ in 0..n as usize - unread {
                    r.get(&t, &mut out, Wait::No).unwrap();
                }
                let held = ModelThread::new(&w, 2);
                if hold {
                    q.0.cons.0.lock.try_lock(&held).unwrap();
                }
                r.put(&t, &[n; 4], Wait::For(None)).unwrap();
                if hold {
                    q.0.cons.0.lock.unlock(&held).unwrap();
                }
                assert!(plan.lock().unwrap().is_empty(), "spins left over");
                let tail = pos(q.0.tail.0.pos.load(Relaxed));
                *res.lock().unwrap() = Some((tail, spun.lock().unwrap().clone()));
            },
            1,
        );
        let r = result.lock().unwrap().take().unwrap();
        r
    }

    /// The lap-jump spins: a consumer between two `get`s (not holding `cons`)
    /// that reads is waited for and the producer wraps (to 64); one that has
    /// neither held `cons` nor moved `head` for `WRAP_IDLE_SPINS` (3) spins
    /// is not reading: the producer goes on at 18 without wrapping. One that
    /// holds `cons` is waited for `WRAP_SPINS` (8), or `WRAP_FIRST_SPINS` (24)
    /// at the lap's first look.
    #[test]
    fn a_producer_spins_for_a_consumer_between_two_gets() {
        use crate::checkers::Spun::Spin;
        assert_eq!(WRAP_IDLE_SPINS, 3);
        // Both read at the first spin: empty, wrapped.
        let two = (18, 2); // at 18, two unread
        assert_eq!(wrap_spins(two, &[2], false), (65, vec![Spin(0)]));
        // Nobody reads: three spins, not wrapped.
        assert_eq!(
            wrap_spins(two, &[0, 0, 0], false),
            (19, vec![Spin(0), Spin(1), Spin(2)])
        );
        // One read at the first spin (`head` moved), the other at the fifth:
        // reading all along, wrapped.
        assert_eq!(
            wrap_spins(two, &[1, 0, 0, 0, 1], false),
            (65, (0..5).map(Spin).collect())
        );
        // `cons` held, nothing read: reading (by `cons`) for all WRAP_SPINS
        // (8) spins, then not wrapped.
        assert_eq!(
            wrap_spins(two, &[0; 8], true),
            (19, (0..8).map(Spin).collect())
        );
        // At the lap's first look (at 16, the kept start's end) the same
        // consumer is waited for WRAP_FIRST_SPINS (24) spins.
        assert_eq!(WRAP_FIRST_SPINS, 24);
        assert_eq!(
            wrap_spins((16, 2), &[0; 24], true),
            (17, (0..24).map(Spin).collect())
        );
        // One read at the first spin, the other at the 24th: wrapped.
        let mut plan = vec![1];
        plan.extend([0; 22]);
        plan.push(1);
        assert_eq!(
            wrap_spins((16, 2), &plan, false),
            (65, (0..24).map(Spin).collect())
        );
        // A consumer more than twice the kept start (32) behind is not waited
        // for, reading or not; at exactly 32 it is.
        assert_eq!(wrap_spins((50, 33), &[], true), (51, vec![]));
        assert_eq!(wrap_spins((50, 32), &[32], false), (65, vec![Spin(0)]));
    }

    /// A ring keeping 8 units of 2 (16 chunks of 64): a producer inside the
    /// kept start never wraps, even at a unit's start with the queue empty
    /// and room at the next lap's start.
    #[test]
    fn no_wrap_from_inside_the_kept_start() {
        one_thread(|t| {
            let h = RingHeader::<S>::new(64, 0).with_reclaim(1);
            assert_eq!(h.keep(), 16);
            let s = slots(&h);
            let r = Ring::new(&h, &s).unwrap();
            let mut out = Vec::new();
            for i in 0..20u8 {
                r.put(t, &[i; 4], Wait::No).unwrap();
                // Every message at the next position up to the kept start's
                // end (16); the one at 16 wraps to 64.
                let want = if i < 16 {
                    u64::from(i) + 1
                } else {
                    65 + u64::from(i) - 16
                };
                assert_eq!(pos(h.tail.0.pos.load(Relaxed)), want, "message {i}");
                r.get(t, &mut out, Wait::No).unwrap();
                assert_eq!(out, [i; 4]);
            }
        });
    }

    /// A producer out of room follows only a wrap marker at `head`, not an
    /// empty message (`len` 0 too) with the next lap's start published.
    #[test]
    fn a_producer_out_of_room_does_not_take_an_empty_message_for_a_marker() {
        one_thread(|t| {
            let h = RingHeader::<S>::new(8, 0).with_reclaim(1);
            let s = slots(&h);
            let r = Ring::new(&h, &s).unwrap();
            let mut out = Vec::new();
            // Messages at 0, 1 and 2 (not wrapped: 1 is unread when 2 is put).
            for i in 0..2u8 {
                r.put(t, &[i; 4], Wait::No).unwrap();
            }
            r.get(t, &mut out, Wait::No).unwrap();
            r.put(t, &[2; 4], Wait::No).unwrap();
            r.get(t, &mut out, Wait::No).unwrap();
            r.get(t, &mut out, Wait::No).unwrap();
            assert_eq!(pos(h.tail.0.pos.load(Relaxed)), 3);
            // An empty message at 3, then one-chunk messages at 4..10, past
            // the next lap's start (8): the ring is full.
            r.put(t, &[], Wait::No).unwrap();
            for i in 4..10u8 {
                r.put(t, &[i; 4], Wait::No).unwrap();
            }
            assert_eq!((r.len(), r.used_chunks()), (7, 7));
            assert_eq!(r.put(t, &[10; 4], Wait::No), Err(RingError::Full));
            r.get(t, &mut out, Wait::No).unwrap();
            assert!(out.is_empty());
            for i in 4..10u8 {
                r.get(t, &mut out, Wait::No).unwrap();
                assert_eq!(out, [i; 4]);
            }
            assert!(r.is_empty());
        });
    }

    /// A consumer that died between its `head` store and the reclaim step
    /// left `reclaimed` behind: the next `get` finishes the step first, even
    /// with nothing to read (or the producers never get the room back).
    #[test]
    fn a_get_finishes_a_dead_consumers_reclaim_step() {
        one_thread(|t| {
            let h = RingHeader::<S>::new(8, 0).with_reclaim(1);
            let s = slots(&h);
            let rec = Recorder::default();
            let r = Ring::new(&h, &s).unwrap().with_reclaimer(&rec);
            let mut out = Vec::new();
            r.put(t, &[1; 40], Wait::No).unwrap();
            r.get(t, &mut out, Wait::No).unwrap();
            r.put(t, &[2; 40], Wait::No).unwrap();
            assert_eq!(h.reclaimed.load(Relaxed), 2);
            // The dead consumer read [3, 6) and stored `head`, no more.
            h.head.0.pos.store(pack(2, 6), Release);
            assert_eq!(r.get(t, &mut out, Wait::No), Err(RingError::Empty));
            assert_eq!(h.reclaimed.load(Relaxed), 6);
            assert_eq!(*rec.0.lock().unwrap(), [(2, 4)]);

            // A whole ring read by a consumer that died before the step:
            // `head` a capacity past `reclaimed`, every unit given back.
            let h = RingHeader::<S>::new(8, 0).with_reclaim(1);
            let s = slots(&h);
            let rec = Recorder::default();
            let r = Ring::new(&h, &s).unwrap().with_reclaimer(&rec);
            r.put(t, &[1; 100], Wait::No).unwrap(); // 7 chunks
            r.get(t, &mut out, Wait::No).unwrap();
            r.put(t, &[2; 100], Wait::No).unwrap(); // [7, 14)
            assert_eq!(h.reclaimed.load(Relaxed), 6);
            h.head.0.pos.store(pack(2, 14), Release);
            assert_eq!(r.get(t, &mut out, Wait::No), Err(RingError::Empty));
            assert_eq!(h.reclaimed.load(Relaxed), 14);
            assert_eq!(*rec.0.lock().unwrap(), [(2, 4), (6, 2), (2, 4)]);
        });
    }

    /// A ring that keeps no lap's start (here: reclaim units too large for
    /// one) never has a wrap marker to follow, and its producers leave the
    /// consumers' side alone: a dead consumer's reclaim step is finished by
    /// the next consumer, not by a producer out of room.
    #[test]
    fn a_producer_of_a_ring_that_keeps_nothing_leaves_the_consumers_side_alone() {
        one_thread(|t| {
            let h = RingHeader::<S>::new(4, 0).with_reclaim(1);
            assert_eq!((h.reclaim_unit(), h.keep()), (2, 0));
            let s = slots(&h);
            let r = Ring::new(&h, &s).unwrap();
            let mut out = Vec::new();
            r.put(t, &[1; 40], Wait::No).unwrap(); // [0, 3)
            r.get(t, &mut out, Wait::No).unwrap();
            r.put(t, &[2; 20], Wait::No).unwrap(); // [3, 5)
            assert_eq!(h.reclaimed.load(Relaxed), 2);
            // A consumer read it and died before its reclaim step.
            h.head.0.pos.store(pack(2, 5), Release);
            assert_eq!(r.put(t, &[3; 20], Wait::No), Err(RingError::Full));
            assert_eq!(h.reclaimed.load(Relaxed), 2, "a producer took `cons`");
            assert_eq!(r.get(t, &mut out, Wait::No), Err(RingError::Empty));
            assert_eq!(h.reclaimed.load(Relaxed), 4);
            r.put(t, &[3; 20], Wait::No).unwrap();
        });
    }

    /// A timed `get` on an empty ring and a timed `put` on a full one, by a
    /// thread that spins before it sleeps: each spins a bounded number of
    /// rounds, then sleeps, and gives up at its deadline (model time: at once).
    #[test]
    fn timed_operations_spin_a_while_then_time_out() {
        shuttle::check_random(
            || {
                let w = world();
                let t = ModelThread::new(&w, 1).spins(4);
                let h = RingHeader::<S>::new(2, 0);
                let s = slots(&h);
                let r = Ring::new(&h, &s).unwrap();
                let mut out = Vec::new();
                let soon = Wait::For(Some(Duration::from_millis(1)));
                assert_eq!(r.get(&t, &mut out, soon), Err(RingError::Empty));
                r.put(&t, &[1; 24], Wait::No).unwrap();
                assert_eq!(r.put(&t, &[2; 4], soon), Err(RingError::Full));
                assert_eq!(r.get(&t, &mut out, soon), Ok(()));
                assert_eq!(out, [1; 24]);
            },
            1,
        );
    }

    /// A producer about to wrap early while a consumer holds `cons` close
    /// behind spins for it a bounded while (WRAP_SPINS rounds), then writes
    /// at `tail`: here the "consumer" holding `cons` is this thread, so it
    /// never catches up (as a consumer that died holding `cons`).
    #[test]
    fn a_producer_spins_a_bounded_while_for_a_consumer_close_behind() {
        shuttle::check_random(
            || {
                let w = world();
                let t = ModelThread::new(&w, 1).spins(64);
                let h = RingHeader::<S>::new(8, 0).with_reclaim(1);
                let s = slots(&h);
                let r = Ring::new(&h, &s).unwrap();
                let mut out = Vec::new();
                let soon = Wait::For(Some(Duration::from_millis(1)));
                r.put(&t, &[0; 4], soon).unwrap();
                r.get(&t, &mut out, Wait::No).unwrap();
                r.put(&t, &[1; 4], soon).unwrap(); // at 1, unread
                h.cons.0.lock.try_lock(&t).unwrap();
                r.put(&t, &[2; 4], soon).unwrap(); // at 2, a unit's start
                assert_eq!(pos(h.tail.0.pos.load(Relaxed)), 3, "no wrap");
                h.cons.0.lock.unlock(&t).unwrap();
                for i in 1..3 {
                    r.get(&t, &mut out, Wait::No).unwrap();
                    assert_eq!(out, [i; 4]);
                }
            },
            1,
        );
    }

    /// The model's give-back zeroes exactly the stretch, also one longer than
    /// its 16-chunk block of zeros, and a message of exactly the kept start's
    /// size wraps early.
    #[test]
    fn a_long_stretch_is_zeroed_exactly_and_a_kept_start_sized_message_wraps() {
        one_thread(|t| {
            // 64 chunks, units of 8, 16 kept: a 40-chunk message, then one more.
            let h = RingHeader::<S>::new(64, 0).with_reclaim(3);
            assert_eq!(h.keep(), 16);
            let s = slots(&h);
            let r = Ring::new(&h, &s).unwrap();
            let mut out = Vec::new();
            r.put(t, &[1; 40 * CHUNK - 8], Wait::No).unwrap();
            r.put(t, &[2; 4], Wait::No).unwrap(); // at 40
            r.get(t, &mut out, Wait::No).unwrap();
            assert_eq!(h.reclaimed.load(Relaxed), 40);
            r.get(t, &mut out, Wait::No).unwrap();
            assert_eq!(out, [2; 4], "the chunk past the stretch");
            // 8 chunks, units of 2, 2 kept: a 2-chunk message at a unit's
            // start past the kept start, the queue empty: to the next lap.
            let h = RingHeader::<S>::new(8, 0).with_reclaim(1);
            let s = slots(&h);
            let r = Ring::new(&h, &s).unwrap();
            r.put(t, &[3; 24], Wait::No).unwrap();
            r.get(t, &mut out, Wait::No).unwrap();
            r.put(t, &[4; 24], Wait::No).unwrap();
            assert_eq!(pos(h.tail.0.pos.load(Relaxed)), 10, "did not wrap");
            r.get(t, &mut out, Wait::No).unwrap();
            assert_eq!(out, [4; 24]);
        });
    }
}
