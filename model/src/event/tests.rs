//! loom and shuttle checks of the event, and proof that each seeded mutant is caught.

use super::*;
use crate::platform::{CellLike, Platform};
use crate::testkit::{every_crash_point, fails_with, shuttle_iters, shuttle_runs, Sched};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;

/// The event and a cell the setter writes before `set` (loom reports a waiter
/// that reads it without having synchronized with the set).
struct Shared<P: Platform> {
    e: RawEvent<P>,
    data: P::Cell<u32>,
}

impl<P: Platform> Shared<P> {
    fn new() -> Self {
        Shared {
            e: RawEvent::new(),
            data: P::Cell::new(0),
        }
    }

    /// The setter: publish the data, set, optionally clear again. A setter that
    /// clears first lets a waiter announce itself (otherwise a waiter that
    /// starts after set+clear rightly waits for the next set).
    fn setter(&self, t: &P::Thread, clear_after: bool, yield_now: fn()) {
        if clear_after {
            while self.e.state.load(core::sync::atomic::Ordering::Relaxed) & WAITERS == 0 {
                yield_now();
            }
        }
        // SAFETY: the protocol under check grants this access (exclusive for a write, no writer for a read); loom reports a race if it does not.
        self.data.with_mut(|p| unsafe { *p = 42 });
        self.e.set(t);
        if clear_after {
            self.e.clear();
        } else {
            crate::check!(self.e.is_set(), "set flag lost");
        }
    }

    /// A waiter: a blocking wait must return true and see the data.
    fn waiter(&self, t: &P::Thread, timeout: Option<core::time::Duration>) -> bool {
        let r = self.e.wait(t, timeout);
        crate::check!(
            r || timeout.is_some(),
            "a blocking wait returned without the event"
        );
        if r {
            crate::check!(
                // SAFETY: the protocol under check grants this access (exclusive for a write, no writer for a read); loom reports a race if it does not.
                self.data.with(|p| unsafe { *p }) == 42,
                "released before the setter's writes"
            );
        }
        r
    }
}

mod loom_checks {
    use super::*;
    use crate::loom_platform::{run, world, yield_now, Loom, ModelThread};

    /// A setter (thread 1, dies at its `crash`-th crash point if given, clears
    /// again if `clear_after`) and a waiter (main thread, timed if `timed`,
    /// n-th wait spurious if `spurious`). Two threads: exhaustive. Returns
    /// whether the setter died.
    pub(super) fn pair<const M: u32>(
        clear_after: bool,
        timed: bool,
        spurious: Option<u32>,
        crash: Option<u32>,
    ) -> bool {
        let crashed = Arc::new(AtomicBool::new(false));
        let c = crashed.clone();
        crate::testkit::loom(None).check(move || {
            let world = world();
            let s = Arc::new(Shared::<Loom<M>>::new());
            let h = {
                let (s, world) = (s.clone(), world.clone());
                loom::thread::spawn(move || {
                    let t = ModelThread::new(&world, 1).crash_at(crash);
                    run(&t, |t| s.setter(t, clear_after, yield_now))
                })
            };
            let t = ModelThread::new(&world, 2).spurious_at(spurious);
            let timeout = timed.then(|| core::time::Duration::from_millis(1));
            s.waiter(&t, timeout);
            if h.join().unwrap() {
                c.store(true, SeqCst);
            }
            if !clear_after {
                crate::check!(s.e.is_set(), "set flag lost");
            }
        });
        crashed.load(SeqCst)
    }

    /// One setter (main) and two blocking waiters: preemption bound 2.
    pub(super) fn two_waiters<const M: u32>() {
        crate::testkit::loom(Some(2)).check(move || {
            let world = world();
            let s = Arc::new(Shared::<Loom<M>>::new());
            let hs: Vec<_> = (1..=2u32)
                .map(|id| {
                    let (s, world) = (s.clone(), world.clone());
                    loom::thread::spawn(move || {
                        let t = ModelThread::new(&world, id);
                        s.waiter(&t, None);
                    })
                })
                .collect();
            let t = ModelThread::new(&world, 3);
            s.setter(&t, false, yield_now);
            for h in hs {
                h.join().unwrap();
            }
        });
    }

    #[test]
    fn loom_waiter_released_and_sees_data() {
        pair::<0>(false, false, None, None);
    }

    #[test]
    fn loom_set_then_clear_still_releases() {
        pair::<0>(true, false, None, None);
    }

    #[test]
    fn loom_timed_wait() {
        pair::<0>(false, true, None, None);
    }

    #[test]
    fn loom_spurious_wakeups_at_every_wait() {
        for n in 1..=2 {
            pair::<0>(true, false, Some(n), None);
        }
    }

    #[test]
    fn loom_two_waiters_bounded() {
        two_waiters::<0>();
    }

    #[test]
    fn loom_setter_death_at_every_crash_point() {
        let points = every_crash_point(|k| pair::<0>(false, false, None, Some(k)));
        assert!(points >= 1);
    }

    #[test]
    fn loom_catches_relaxed_set() {
        assert!(fails_with("Causality violation", || {
            pair::<{ MUTANT_RELAXED_SET.0 }>(false, false, None, None);
        }));
    }

    #[test]
    fn loom_catches_missing_wake() {
        assert!(fails_with("deadlock", || {
            pair::<{ MUTANT_NO_WAKE.0 }>(false, false, None, None);
        }));
    }

    #[test]
    fn loom_catches_racy_waiters_bit() {
        assert!(fails_with("set flag lost", || {
            pair::<{ MUTANT_WAITERS_STORE.0 }>(false, true, None, None);
        }));
    }
}

mod shuttle_checks {
    use super::*;
    use crate::shuttle_platform::{run, world, yield_now, ModelThread, Shuttle};

    /// One setter (set, clear, set again: a waiter that starts after the clear
    /// waits for the second set; the setter dies at its `crash`-th crash point if
    /// given) and `waiters` waiters, every third of them timed, each waiting
    /// twice. Every blocking wait returns true and sees the data.
    pub(super) fn body<const M: u32>(waiters: u32, crash: Option<u32>, died_seen: &AtomicBool) {
        let world = world();
        let s = Arc::new(Shared::<Shuttle<M>>::new());
        let hs: Vec<_> = (2..=waiters + 1)
            .map(|id| {
                let (s, world) = (s.clone(), world.clone());
                shuttle::thread::spawn(move || {
                    let t = ModelThread::new(&world, id);
                    let timeout = (id % 3 == 0).then(|| core::time::Duration::from_millis(1));
                    s.waiter(&t, timeout);
                    s.waiter(&t, timeout);
                })
            })
            .collect();
        let t = ModelThread::new(&world, 1).crash_at(crash);
        let died = run(&t, |t| {
            s.setter(t, false, yield_now);
            s.e.clear();
            s.setter(t, false, yield_now);
        });
        for h in hs {
            h.join().unwrap();
        }
        if died {
            died_seen.store(true, SeqCst);
        }
        crate::check!(died || s.e.is_set(), "set flag lost");
    }

    #[test]
    fn shuttle_random_five_waiters() {
        let d = AtomicBool::new(false);
        shuttle::check_random(move || body::<0>(5, None, &d), shuttle_iters());
    }

    #[test]
    fn shuttle_pct_five_waiters() {
        let d = AtomicBool::new(false);
        shuttle::check_pct(move || body::<0>(5, None, &d), shuttle_iters(), 3);
    }

    #[test]
    fn shuttle_setter_death_at_every_crash_point() {
        let points = every_crash_point(|k| {
            shuttle_runs(Sched::Pct, shuttle_iters(), move |d| {
                body::<0>(4, Some(k), d)
            })
        });
        // One crash point per set of a clear flag.
        assert_eq!(points, 2);
    }

    #[test]
    fn shuttle_catches_missing_wake() {
        assert!(fails_with("deadlock", || {
            shuttle::check_pct(
                || body::<{ MUTANT_NO_WAKE.0 }>(4, None, &AtomicBool::new(false)),
                shuttle_iters(),
                3,
            );
        }));
    }
}

/// Single-threaded scenarios of the event's flag, generation and accessors,
/// which the concurrent checks above do not look at (found by `scripts/mutants`:
/// each test here fails under a mutant that the checks above let pass).
mod unit {
    use super::*;
    use crate::loom_platform::{world, Loom, ModelThread};

    #[test]
    fn set_clear_and_wait_follow_the_flag_and_generation() {
        loom::model(|| {
            let world = world();
            let t = ModelThread::new(&world, 1);
            let e = RawEvent::<Loom>::new();
            assert!(!e.is_set());
            assert_eq!(format!("{e:?}"), "RawEvent { state: 0x0 }");
            assert!(
                !e.wait(&t, Some(Duration::from_millis(1))),
                "a clear event released"
            );
            e.set(&t);
            assert!(e.is_set());
            assert_eq!(
                format!("{e:?}"),
                "RawEvent { state: 0x3 }",
                "generation 1, SET"
            );
            e.set(&t);
            assert_eq!(
                format!("{e:?}"),
                "RawEvent { state: 0x3 }",
                "a set of a set flag"
            );
            assert!(e.wait(&t, None));
            e.clear();
            assert!(!e.is_set());
            assert_eq!(
                format!("{e:?}"),
                "RawEvent { state: 0x2 }",
                "the generation stays"
            );
            assert!(!e.wait(&t, Some(Duration::ZERO)));
            e.set(&t);
            assert_eq!(
                format!("{e:?}"),
                "RawEvent { state: 0x5 }",
                "generation 2, SET"
            );
        });
    }
}
