//! loom and shuttle checks of the joinable queue, and proof that each seeded
//! mutant (9xx) is caught.
//!
//! The property, checked after a producer or a consumer died at every one of
//! its crash points: once every message that was committed and taken is
//! marked done, `join` returns (it never waits for a task whose message does
//! not exist), and `join` never returns while a task is unfinished (a joiner
//! sees every `task_done` that a delivered message needed); `task_done` is
//! refused exactly when nothing is unfinished.

use super::*;
use crate::platform::CellLike;
use crate::ring::fuzzing::{account, lock, message, received, Log, Spec, Q};
use crate::testkit::{every_crash_point, fails_with, shuttle_iters, shuttle_runs, Sched};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::SeqCst};
use std::sync::{Arc, Mutex as StdMutex};

/// A ring, its task count, and a cell every consumer bumps before each
/// `task_done` (loom reports a joiner that reads it without having
/// synchronized with every `task_done`; its value counts them).
struct Shared<P: Platform> {
    q: Q<P>,
    tasks: Tasks<P>,
    data: P::Cell<u32>,
}

impl<P: Platform> Shared<P> {
    fn new(cap: u64, max_items: u32) -> Self {
        Shared {
            q: Q::new(cap, max_items),
            tasks: Tasks::new(),
            data: P::Cell::new(0),
        }
    }

    fn jq(&self) -> Joinable<'_, P> {
        Joinable::new(self.q.ring(), &self.tasks)
    }

    /// A consumer: get until `Closed`; bump the witness (`witness` and the
    /// cell) before marking each message done, which must be accepted.
    /// Returns how many it got.
    fn consume(&self, t: &P::Thread, witness: &AtomicU32, mut got: impl FnMut(&[u8])) -> u32 {
        let jq = self.jq();
        let mut b = Vec::new();
        let mut n = 0;
        loop {
            match jq.ring().get(t, &mut b, Wait::For(None)) {
                Ok(()) => {
                    got(&b);
                    n += 1;
                    witness.fetch_add(1, SeqCst);
                    // Consumers take turns (loom checks it: one consumer
                    // there; shuttle threads are coroutines on one OS thread).
                    // SAFETY: the protocol under check grants this access (exclusive for a write, no writer for a read); loom reports a race if it does not.
                    self.data.with_mut(|p| unsafe { *p += 1 });
                    crate::check!(
                        jq.task_done(t).is_ok(),
                        "task_done refused for a delivered message"
                    );
                }
                Err(RingError::Closed) => return n,
                Err(e) => crate::testkit::violation(&format!("get failed: {e:?}")),
            }
        }
    }
}

mod loom_checks {
    use super::*;
    use crate::loom_platform::{run, world, Loom, ModelThread};

    /// The kill -9 case: a queue of `maxsize` 1, full (the main thread put
    /// one message); a producer (thread 2) blocks in `put` and dies at its
    /// `crash`-th crash point (if given); a consumer (thread 3) gets until
    /// `Closed` and marks each message done. The main thread joins the
    /// producer, closes the queue, then `join`s it (blocking: a count left
    /// too high is a deadlock) while the consumer works, checks that it saw
    /// every `task_done`, and checks the final count. Three threads,
    /// preemption bound `bound`. Returns whether the producer died.
    ///
    /// (The close comes before the join because loom may let the consumer's
    /// loads of `tail` return a stale value for ever: a producer that died
    /// between its commit and its notification is noticed through `close`,
    /// or the next producer's takeover, not through the liveness poll. On
    /// real hardware the poll's load sees the commit. An RMW would read the
    /// latest value, but loom lets a concurrent plain store slip between an
    /// RMW's read and write (tokio-rs/loom#254), so the ring does not use one.)
    pub(super) fn blocked_producer<const M: u32>(
        crash: Option<u32>,
        spurious: Option<u32>,
        bound: Option<usize>,
    ) -> bool {
        let crashed = Arc::new(AtomicBool::new(false));
        let c = crashed.clone();
        crate::testkit::loom(bound).check(move || {
            let world = world();
            let s = Arc::new(Shared::<Loom<M>>::new(2, 1));
            let t = ModelThread::new(&world, 1).spurious_at(spurious);
            crate::check!(s.jq().put(&t, &[0, 0], Wait::No).is_ok(), "first put");
            let prod = {
                let (s, world) = (s.clone(), world.clone());
                loom::thread::spawn(move || {
                    let t = ModelThread::new(&world, 2).crash_at(crash);
                    run(&t, |t| {
                        let r = s.jq().put(t, &[1, 1], Wait::For(None));
                        crate::check!(r.is_ok(), "blocking put: {r:?}");
                    })
                })
            };
            let cons = {
                let (s, world) = (s.clone(), world.clone());
                loom::thread::spawn(move || {
                    let t = ModelThread::new(&world, 3);
                    s.consume(&t, &AtomicU32::new(0), |_| {})
                })
            };
            let died = prod.join().unwrap();
            let jq = s.jq();
            // The supervisor closes the queue once the producer is gone (so
            // that the consumer ends), then joins while the consumer works.
            jq.ring().close(&t);
            crate::check!(jq.join(&t, None), "a blocking join returned false");
            // SAFETY: the protocol under check grants this access (exclusive for a write, no writer for a read); loom reports a race if it does not.
            let seen = s.data.with(|p| unsafe { *p });
            let got = cons.join().unwrap();
            crate::check!(
                seen == got,
                "joined having seen {seen} task_done of {got} delivered messages"
            );
            crate::check!(died || got == 2, "a message was lost");
            crate::check!(jq.unfinished() == 0, "unfinished tasks left");
            crate::check!(
                jq.task_done(&t).is_err(),
                "task_done accepted with nothing unfinished"
            );
            if died {
                c.store(true, SeqCst);
            }
        });
        crashed.load(SeqCst)
    }

    /// One message; two racing `task_done`s: exactly one succeeds.
    pub(super) fn racing_done<const M: u32>() {
        crate::testkit::loom(None).check(move || {
            let world = world();
            let s = Arc::new(Shared::<Loom<M>>::new(2, 0));
            let t = ModelThread::new(&world, 1);
            s.jq().put(&t, &[0, 0], Wait::No).unwrap();
            let h = {
                let (s, world) = (s.clone(), world.clone());
                loom::thread::spawn(move || s.jq().task_done(&ModelThread::new(&world, 2)).is_ok())
            };
            let mine = s.jq().task_done(&t).is_ok();
            let theirs = h.join().unwrap();
            crate::check!(!(mine && theirs), "task_done took the count below zero");
            crate::check!(mine || theirs, "both task_done calls refused");
            crate::check!(s.jq().unfinished() == 0, "count not back to zero");
        });
    }

    #[test]
    fn loom_join_released_and_sees_every_task_done() {
        blocked_producer::<0>(None, None, Some(2));
    }

    #[test]
    fn loom_spurious_wakeups_at_every_wait() {
        for n in 1..=3 {
            blocked_producer::<0>(None, Some(n), Some(2));
        }
    }

    #[test]
    fn loom_racing_task_done_never_below_zero() {
        racing_done::<0>();
    }

    /// The producer blocked on the full queue dies at every crash point of
    /// its `put`: `join` still returns once the consumer is done.
    #[test]
    fn loom_blocked_producer_dies_at_every_crash_point() {
        let n = every_crash_point(|k| blocked_producer::<0>(Some(k), None, Some(2)));
        assert!(n >= 4, "only {n} crash points");
    }

    #[test]
    fn loom_catches_901_relaxed_done() {
        assert!(fails_with("Causality violation", || {
            blocked_producer::<{ MUTANT_RELAXED_DONE.0 }>(None, None, Some(2));
        }));
    }

    #[test]
    fn loom_catches_902_missing_wake() {
        assert!(fails_with("deadlock", || {
            blocked_producer::<{ MUTANT_NO_WAKE.0 }>(None, None, Some(2));
        }));
    }

    #[test]
    fn loom_catches_903_load_store_done() {
        assert!(fails_with("task_done took the count below zero", || {
            racing_done::<{ MUTANT_LOAD_STORE_DONE.0 }>();
        }));
    }

    /// The old order: a producer killed while blocked in `put` leaves the
    /// count one too high, and the blocking `join` never returns.
    #[test]
    fn loom_catches_904_count_then_put() {
        assert!(fails_with("deadlock", || {
            every_crash_point(|k| {
                blocked_producer::<{ MUTANT_COUNT_THEN_PUT.0 }>(Some(k), None, Some(2))
            });
        }));
    }

    /// A producer killed after its commit but before it counted the task:
    /// the main thread's `join` returns while the consumer still works on
    /// that message (loom sees the join's read of the cell race with the
    /// consumer's write).
    #[test]
    fn loom_catches_905_put_then_count() {
        assert!(fails_with("Causality violation", || {
            every_crash_point(|k| {
                blocked_producer::<{ MUTANT_PUT_THEN_COUNT.0 }>(Some(k), None, Some(2))
            });
        }));
    }
}

mod shuttle_checks {
    use super::*;
    use crate::shuttle_platform::{run, world, ModelThread, Shuttle};

    /// Two producers (one streams a message larger than the ring) and two
    /// consumers on a 4-chunk ring of `maxsize` 2, a concurrent joiner and
    /// the main thread as the final joiner. Thread `crash.0` (producers 0,
    /// 1, consumers 2, 3) dies at its `crash.1`-th crash point.
    fn spec(crash: Option<(usize, u32)>) -> Spec {
        Spec {
            cap: 4,
            max_items: 2,
            producers: vec![vec![6, 90], vec![6, 6]],
            consumers: 2,
            crash,
            mixed: false,
            spurious: None,
            reclaim: 0,
            written: false,
        }
    }

    pub(super) fn body<const M: u32>(spec: Spec, died_seen: &AtomicBool) {
        let world = world();
        let s = Arc::new(Shared::<Shuttle<M>>::new(spec.cap, spec.max_items));
        let log = Arc::new(StdMutex::new(Log::default()));
        // Bumped before each task_done / after each successful put.
        let witness = Arc::new(AtomicU32::new(0));
        let puts = Arc::new(AtomicU32::new(0));
        let consumer_may_die = spec.crash.is_some_and(|c| c.0 >= spec.producers.len());
        let nprod = spec.producers.len();
        let prods: Vec<_> = (0..nprod)
            .map(|p| {
                let (s, world, spec, log, puts) = (
                    s.clone(),
                    world.clone(),
                    spec.clone(),
                    log.clone(),
                    puts.clone(),
                );
                shuttle::thread::spawn(move || {
                    let crash = spec.crash.filter(|c| c.0 == p).map(|c| c.1);
                    let t = ModelThread::new(&world, 1 + p as u32).crash_at(crash);
                    let died = run(&t, |t| {
                        for (seq, &len) in spec.producers[p].iter().enumerate() {
                            let m = message(p as u8, seq as u8, len);
                            let r = s.jq().put(t, &m, Wait::For(None));
                            crate::check!(r.is_ok(), "blocking put: {r:?}");
                            lock(&log).put_ok.insert((p as u8, seq as u8));
                            puts.fetch_add(1, SeqCst);
                        }
                    });
                    if died {
                        lock(&log).dead_producers.insert(p as u8);
                    }
                    died
                })
            })
            .collect();
        let conss: Vec<_> = (0..spec.consumers as usize)
            .map(|c| {
                let (s, world, spec, log, witness) = (
                    s.clone(),
                    world.clone(),
                    spec.clone(),
                    log.clone(),
                    witness.clone(),
                );
                shuttle::thread::spawn(move || {
                    let crash = spec.crash.filter(|x| x.0 == nprod + c).map(|x| x.1);
                    let t = ModelThread::new(&world, 20 + c as u32).crash_at(crash);
                    let mut last = vec![None; spec.producers.len()];
                    let died = run(&t, |t| {
                        s.consume(t, &witness, |m| received(&log, &spec, &mut last, m));
                    });
                    if died {
                        lock(&log).dead_consumers += 1;
                    }
                    died
                })
            })
            .collect();
        // A concurrent joiner: a join that returns true has seen the
        // task_done of every message put before it began.
        let joiner = {
            let (s, world, witness, puts) =
                (s.clone(), world.clone(), witness.clone(), puts.clone());
            shuttle::thread::spawn(move || {
                let t = ModelThread::new(&world, 50);
                let before = puts.load(SeqCst);
                let timeout = consumer_may_die.then_some(Duration::from_millis(1));
                let r = s.jq().join(&t, timeout);
                crate::check!(r || timeout.is_some(), "a blocking join returned false");
                crate::check!(
                    !r || witness.load(SeqCst) >= before,
                    "joined while a task put before the join was unfinished"
                );
            })
        };
        let t = ModelThread::new(&world, 60);
        let mut died = false;
        for h in prods {
            died |= h.join().unwrap();
        }
        let jq = s.jq();
        if !consumer_may_die {
            // Every message committed will be taken and marked done.
            crate::check!(jq.join(&t, None), "a blocking join returned false");
            let seen = witness.load(SeqCst);
            jq.ring().close(&t);
            for h in conss {
                died |= h.join().unwrap();
            }
            let got = lock(&log).got.len() as u32;
            crate::check!(
                seen == got,
                "joined having seen {seen} task_done of {got} delivered messages"
            );
        } else {
            jq.ring().close(&t);
            for h in conss {
                died |= h.join().unwrap();
            }
        }
        joiner.join().unwrap();
        let log = lock(&log);
        account(&spec, &log);
        // No producer died in the executions where a consumer may have: the
        // committed messages are those put. Those not delivered were taken
        // by the dead consumer (at most one), and remain unfinished.
        let lost = if consumer_may_die {
            log.put_ok.iter().filter(|m| !log.got.contains(m)).count() as u32
        } else {
            0
        };
        crate::check!(
            jq.unfinished() == lost,
            "{} unfinished tasks, {lost} taken by a dead consumer",
            jq.unfinished()
        );
        if lost == 0 {
            crate::check!(jq.join(&t, None), "a blocking join returned false");
            crate::check!(
                jq.task_done(&t).is_err(),
                "task_done accepted with nothing unfinished"
            );
        } else {
            crate::check!(
                !jq.join(&t, Some(Duration::ZERO)),
                "joined with a task left"
            );
        }
        if died {
            died_seen.store(true, SeqCst);
        }
    }

    #[test]
    fn shuttle_random_two_producers_two_consumers_two_joiners() {
        shuttle_runs(Sched::Random, shuttle_iters(), |d| body::<0>(spec(None), d));
    }

    #[test]
    fn shuttle_pct_two_producers_two_consumers_two_joiners() {
        shuttle_runs(Sched::Pct, shuttle_iters(), |d| body::<0>(spec(None), d));
    }

    /// A producer (one streaming a message through the ring), then a
    /// consumer, dies at every one of its crash points.
    #[test]
    fn shuttle_deaths_at_every_crash_point() {
        let iters = (shuttle_iters() / 10).max(50);
        for who in [0usize, 2] {
            let n = every_crash_point(|k| {
                shuttle_runs(Sched::Pct, iters, move |d| {
                    body::<0>(spec(Some((who, k))), d)
                })
            });
            assert!(n >= 4, "thread {who}: only {n} crash points");
        }
    }

    #[test]
    fn shuttle_catches_902_missing_wake() {
        assert!(fails_with("deadlock", || {
            shuttle_runs(Sched::Pct, shuttle_iters(), |d| {
                body::<{ MUTANT_NO_WAKE.0 }>(spec(None), d)
            });
        }));
    }

    #[test]
    fn shuttle_catches_904_count_then_put() {
        assert!(fails_with("deadlock", || {
            every_crash_point(|k| {
                shuttle_runs(Sched::Pct, shuttle_iters() / 10, move |d| {
                    body::<{ MUTANT_COUNT_THEN_PUT.0 }>(spec(Some((0, k))), d)
                })
            });
        }));
    }

    #[test]
    fn shuttle_catches_905_put_then_count() {
        assert!(fails_with(
            "task_done refused for a delivered message",
            || {
                every_crash_point(|k| {
                    shuttle_runs(Sched::Pct, shuttle_iters() / 10, move |d| {
                        body::<{ MUTANT_PUT_THEN_COUNT.0 }>(spec(Some((0, k))), d)
                    })
                });
            }
        ));
    }
}

/// Single-threaded scenarios of the task count (`unfinished`, `task_done`
/// refused, `join` both ways, the Display/Debug texts), which the concurrent
/// checks above do not look at (found by `scripts/mutants`: each test here fails
/// under a mutant that the checks above let pass).
mod unit {
    use super::*;
    use crate::loom_platform::{world, Loom, ModelThread};

    #[test]
    fn the_task_count_follows_puts_and_task_dones() {
        loom::model(|| {
            let world = world();
            let t = ModelThread::new(&world, 1);
            let s = Shared::<Loom>::new(64, 4);
            let jq = s.jq();
            assert_eq!(jq.unfinished(), 0);
            assert_eq!(jq.task_done(&t), Err(TooManyDone));
            assert!(jq.join(&t, Some(Duration::ZERO)));
            jq.put(&t, &message(1, 0, 4), Wait::No).unwrap();
            jq.put(&t, &message(1, 1, 4), Wait::No).unwrap();
            assert_eq!(jq.unfinished(), 2);
            assert_eq!(jq.ring().committed(), 2);
            assert!(
                !jq.join(&t, Some(Duration::ZERO)),
                "joined with 2 unfinished"
            );
            assert_eq!(jq.task_done(&t), Ok(()));
            assert_eq!(jq.unfinished(), 1);
            assert_eq!(format!("{:?}", s.tasks), "Tasks { done: 1 }");
            assert!(
                !jq.join(&t, Some(Duration::ZERO)),
                "joined with 1 unfinished"
            );
            assert_eq!(jq.task_done(&t), Ok(()));
            assert_eq!(jq.unfinished(), 0);
            assert!(jq.join(&t, None));
            assert_eq!(jq.task_done(&t), Err(TooManyDone));
            assert_eq!(format!("{:?}", s.tasks), "Tasks { done: 2 }");
            let dbg = format!("{jq:?}");
            assert!(
                dbg.starts_with("Joinable { ring: ")
                    && dbg.ends_with(", tasks: Tasks { done: 2 } }"),
                "{dbg}"
            );
        });
        assert_eq!(
            TooManyDone.to_string(),
            "task_done() called too many times",
            "Python's ValueError text"
        );
    }
}
