//! loom and shuttle checks of the task counter, and proof that each seeded
//! mutant is caught.

use super::*;
use crate::platform::{CellLike, Platform};
use crate::testkit::{every_crash_point, fails_with, shuttle_iters, shuttle_runs, Sched};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::SeqCst};
use std::sync::Arc;

/// The counter and a cell a worker writes between its `add` and its `done`s
/// (loom reports a joiner that reads it without having synchronized with the
/// last `done`).
struct Shared<P: Platform> {
    c: RawTaskCounter<P>,
    data: P::Cell<u32>,
}

impl<P: Platform> Shared<P> {
    fn new() -> Self {
        Shared {
            c: RawTaskCounter::new(),
            data: P::Cell::new(0),
        }
    }

    /// A worker: one more task, write the data, finish both its task and the
    /// one the joiner added; a third `done` must be refused.
    fn worker(&self, t: &P::Thread) {
        crate::check!(self.c.add(1).is_ok(), "add refused");
        self.data.with_mut(|p| unsafe { *p = 42 });
        crate::check!(self.c.done(t).is_ok(), "done refused");
        crate::check!(self.c.done(t).is_ok(), "done refused");
        crate::check!(self.c.done(t).is_err(), "done took the count below zero");
    }

    /// The joiner: a blocking wait returns true, and a true return means the
    /// count is 0 and the worker's writes are visible.
    fn joiner(&self, t: &P::Thread, timeout: Option<Duration>) -> bool {
        let r = self.c.wait_zero(t, timeout);
        crate::check!(r || timeout.is_some(), "a blocking join returned early");
        if r {
            crate::check!(self.c.count() == 0, "joined with tasks left");
            crate::check!(
                self.data.with(|p| unsafe { *p }) == 42,
                "joined before the worker's writes"
            );
        }
        r
    }
}

mod loom_checks {
    use super::*;
    use crate::loom_platform::{run, world, Loom, ModelThread};

    /// The joiner (main thread) adds one task, a worker (thread 1, dies at its
    /// `crash`-th crash point if given) adds one and finishes both; the joiner
    /// waits (timed if `timed`, n-th wait spurious if `spurious`). Two
    /// threads: exhaustive. Returns whether the worker died.
    pub fn pair<const M: u32>(timed: bool, spurious: Option<u32>, crash: Option<u32>) -> bool {
        let crashed = Arc::new(AtomicBool::new(false));
        let c = crashed.clone();
        crate::testkit::loom(None).check(move || {
            let world = world();
            let s = Arc::new(Shared::<Loom<M>>::new());
            s.c.add(1).unwrap();
            let h = {
                let (s, world) = (s.clone(), world.clone());
                loom::thread::spawn(move || {
                    let t = ModelThread::new(&world, 1).crash_at(crash);
                    run(&t, |t| s.worker(t))
                })
            };
            let t = ModelThread::new(&world, 2).spurious_at(spurious);
            let timeout = timed.then(|| Duration::from_millis(1));
            s.joiner(&t, timeout);
            let died = h.join().unwrap();
            if died {
                c.store(true, SeqCst);
            } else {
                crate::check!(s.c.count() == 0, "count not back to zero");
                crate::check!(s.c.done(&t).is_err(), "done took the count below zero");
            }
        });
        crashed.load(SeqCst)
    }

    /// Two racing `done`s on a count of 1: exactly one succeeds.
    pub fn racing_done<const M: u32>() {
        crate::testkit::loom(None).check(move || {
            let world = world();
            let s = Arc::new(RawTaskCounter::<Loom<M>>::new());
            s.add(1).unwrap();
            let h = {
                let (s, world) = (s.clone(), world.clone());
                loom::thread::spawn(move || s.done(&ModelThread::new(&world, 1)).is_ok())
            };
            let mine = s.done(&ModelThread::new(&world, 2)).is_ok();
            let theirs = h.join().unwrap();
            crate::check!(!(mine && theirs), "done took the count below zero");
            crate::check!(mine || theirs, "both done calls refused");
            crate::check!(s.count() == 0, "count not back to zero");
        });
    }

    #[test]
    fn loom_join_released_and_sees_data() {
        pair::<0>(false, None, None);
    }

    #[test]
    fn loom_timed_join() {
        pair::<0>(true, None, None);
    }

    #[test]
    fn loom_spurious_wakeups_at_every_wait() {
        for n in 1..=2 {
            pair::<0>(false, Some(n), None);
        }
    }

    #[test]
    fn loom_racing_done_never_below_zero() {
        racing_done::<0>();
    }

    #[test]
    fn loom_worker_death_at_every_crash_point() {
        // A timed joiner: a worker that dies before its last `done` leaves a
        // task unfinished for ever (as in Python).
        let points = every_crash_point(|k| pair::<0>(true, None, Some(k)));
        // One crash point per successful `done`.
        assert_eq!(points, 2);
    }

    #[test]
    fn loom_death_between_last_done_and_wake_still_releases() {
        // A blocking joiner: the liveness poll re-reads the word and sees 0.
        assert!(pair::<0>(false, None, Some(2)));
    }

    #[test]
    fn loom_catches_relaxed_done() {
        assert!(fails_with("Causality violation", || {
            pair::<{ MUTANT_RELAXED_DONE.0 }>(false, None, None);
        }));
    }

    #[test]
    fn loom_catches_missing_wake() {
        assert!(fails_with("deadlock", || {
            pair::<{ MUTANT_NO_WAKE.0 }>(false, None, None);
        }));
    }

    #[test]
    fn loom_catches_load_store_done() {
        assert!(fails_with("done took the count below zero", || {
            racing_done::<{ MUTANT_LOAD_STORE_DONE.0 }>();
        }));
    }
}

mod shuttle_checks {
    use super::*;
    use crate::shuttle_platform::{run, world, ModelThread, Shuttle};

    /// The main thread adds `workers` tasks; each worker (ids 2..) adds one
    /// more, then finishes two, bumping a witness before each `done`
    /// (worker 2 dies at its `crash`-th crash point if given). The main thread
    /// and a second joiner wait (the second timed; the main one too when a
    /// worker may die). A successful join sees every `done`'s witness.
    pub fn body<const M: u32>(workers: u32, crash: Option<u32>, died_seen: &AtomicBool) {
        let world = world();
        let c = Arc::new(RawTaskCounter::<Shuttle<M>>::new());
        let witness = Arc::new(AtomicU32::new(0));
        c.add(workers).unwrap();
        let mut hs: Vec<_> = (2..workers + 2)
            .map(|id| {
                let (c, world, witness) = (c.clone(), world.clone(), witness.clone());
                shuttle::thread::spawn(move || {
                    let t = ModelThread::new(&world, id).crash_at(crash.filter(|_| id == 2));
                    run(&t, |t| {
                        crate::check!(c.add(1).is_ok(), "add refused");
                        for _ in 0..2 {
                            witness.fetch_add(1, SeqCst);
                            crate::check!(c.done(t).is_ok(), "done refused");
                        }
                    })
                })
            })
            .collect();
        let total = 2 * workers;
        let joiner = |c: &RawTaskCounter<Shuttle<M>>, t: &ModelThread, timeout| {
            let r = c.wait_zero(t, timeout);
            crate::check!(r || timeout.is_some(), "a blocking join returned early");
            if r {
                crate::check!(witness.load(SeqCst) == total, "joined before every done");
            }
        };
        {
            let (c, world, witness) = (c.clone(), world.clone(), witness.clone());
            hs.push(shuttle::thread::spawn(move || {
                let t = ModelThread::new(&world, 100);
                let r = c.wait_zero(&t, Some(Duration::from_millis(1)));
                crate::check!(
                    !r || witness.load(SeqCst) == total,
                    "joined before every done"
                );
                false
            }));
        }
        let t = ModelThread::new(&world, 1);
        joiner(&c, &t, crash.map(|_| Duration::from_millis(1)));
        let mut died = false;
        for h in hs {
            died |= h.join().unwrap();
        }
        if died {
            died_seen.store(true, SeqCst);
        } else {
            crate::check!(c.count() == 0, "count not back to zero");
            crate::check!(c.done(&t).is_err(), "done took the count below zero");
        }
    }

    #[test]
    fn shuttle_random_three_workers_two_joiners() {
        let d = AtomicBool::new(false);
        shuttle::check_random(move || body::<0>(3, None, &d), shuttle_iters());
    }

    #[test]
    fn shuttle_pct_three_workers_two_joiners() {
        let d = AtomicBool::new(false);
        shuttle::check_pct(move || body::<0>(3, None, &d), shuttle_iters(), 3);
    }

    #[test]
    fn shuttle_worker_death_at_every_crash_point() {
        let points = every_crash_point(|k| {
            shuttle_runs(Sched::Pct, shuttle_iters(), move |d| {
                body::<0>(3, Some(k), d)
            })
        });
        // One crash point per successful `done`.
        assert_eq!(points, 2);
    }

    #[test]
    fn shuttle_catches_missing_wake() {
        assert!(fails_with("deadlock", || {
            shuttle::check_pct(
                || body::<{ MUTANT_NO_WAKE.0 }>(3, None, &AtomicBool::new(false)),
                shuttle_iters(),
                3,
            );
        }));
    }
}
