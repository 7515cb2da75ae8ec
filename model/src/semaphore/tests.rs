//! loom and shuttle checks of the semaphore, and proof that each seeded mutant
//! is caught.

use super::*;
use crate::platform::{CellLike, Platform};
use crate::testkit::{every_crash_point, fails, fails_with, shuttle_iters, shuttle_runs, Sched};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::SeqCst};
use std::sync::Arc;

/// The semaphore, a cell that a 1-permit semaphore protects (loom reports
/// unsynchronized access), and a witness of the permits held right now (a std
/// atomic, invisible to the checkers).
struct Shared<P: Platform> {
    s: RawSemaphore<P>,
    initial: u32,
    data: P::Cell<u32>,
    held: AtomicU32,
}

/// How a thread takes its permit.
#[derive(Clone, Copy, PartialEq)]
enum How {
    Block,
    Timed,
    Try,
}

impl<P: Platform> Shared<P> {
    fn new(value: u32, bound: Option<u32>) -> Self {
        Shared {
            s: RawSemaphore::new(value, bound),
            initial: value,
            data: P::Cell::new(0),
            held: AtomicU32::new(0),
        }
    }

    /// Take a permit, use it (the cell only when the semaphore is a mutex),
    /// give it back. Returns whether it got one.
    fn use_permit(&self, t: &P::Thread, how: How) -> bool {
        let r = match how {
            How::Block => self.s.acquire(t, None),
            How::Timed => self
                .s
                .acquire(t, Some(core::time::Duration::from_millis(1))),
            How::Try => self.s.try_acquire(t),
        };
        if r.is_err() {
            return false;
        }
        let held = self.held.fetch_add(1, SeqCst) + 1;
        crate::check!(
            held <= self.initial,
            "{held} permits held at once from a semaphore of {}",
            self.initial
        );
        t.crash_point();
        if self.initial == 1 {
            // SAFETY: the protocol under check grants this access (exclusive for a write, no writer for a read); loom reports a race if it does not.
            self.data.with_mut(|p| unsafe { *p += 1 });
        }
        t.crash_point();
        self.held.fetch_sub(1, SeqCst);
        crate::check!(
            self.s.release(t, 1).is_ok(),
            "returning a permit was refused"
        );
        crate::check!(
            self.s.bound().map_or(true, |b| self.s.value() <= b),
            "semaphore value above its bound"
        );
        true
    }
}

mod loom_checks {
    use super::*;
    use crate::loom_platform::{run, world, Loom, ModelThread};

    /// Two threads share a 1-permit bounded semaphore as a mutex, explored
    /// exhaustively; thread 2 takes its permit as `how2` says and its n-th wait
    /// may return spuriously.
    pub(super) fn two_threads<const M: u32>(spurious: Option<u32>, how2: How) {
        crate::testkit::loom(None).check(move || {
            let world = world();
            let s = Arc::new(Shared::<Loom<M>>::new(1, Some(1)));
            let hs: Vec<_> = (1..=2u32)
                .map(|id| {
                    let (s, world) = (s.clone(), world.clone());
                    loom::thread::spawn(move || {
                        let t = ModelThread::new(&world, id).spurious_at(if id == 2 {
                            spurious
                        } else {
                            None
                        });
                        let how = if id == 2 { how2 } else { How::Block };
                        let mut ran = false;
                        run(&t, |t| ran = s.use_permit(t, how));
                        ran as u32
                    })
                })
                .collect();
            let ran: u32 = hs.into_iter().map(|h| h.join().unwrap()).sum();
            // SAFETY: the protocol under check grants this access (exclusive for a write, no writer for a read); loom reports a race if it does not.
            crate::check!(s.data.with(|p| unsafe { *p }) == ran, "lost update");
            if how2 == How::Block {
                assert_eq!(ran, 2);
            }
            crate::check!(s.s.value() == 1, "a permit was lost or made up");
        });
    }

    /// Three threads (two spawned + main) share two permits: preemption bound 2.
    pub(super) fn three_threads<const M: u32>() {
        crate::testkit::loom(Some(2)).check(move || {
            let world = world();
            let s = Arc::new(Shared::<Loom<M>>::new(2, None));
            let hs: Vec<_> = (1..=2u32)
                .map(|id| {
                    let (s, world) = (s.clone(), world.clone());
                    loom::thread::spawn(move || {
                        let t = ModelThread::new(&world, id);
                        run(&t, |t| assert!(s.use_permit(t, How::Block)));
                    })
                })
                .collect();
            let t3 = ModelThread::new(&world, 3);
            assert!(s.use_permit(&t3, How::Block));
            for h in hs {
                h.join().unwrap();
            }
            crate::check!(s.s.value() == 2, "a permit was lost or made up");
        });
    }

    /// Two threads each release one permit into an empty semaphore bounded at
    /// 1: exactly one succeeds, the value never exceeds 1. Exhaustive.
    pub(super) fn over_release<const M: u32>() {
        crate::testkit::loom(None).check(move || {
            let world = world();
            let s = Arc::new(RawSemaphore::<Loom<M>>::new(0, Some(1)));
            let hs: Vec<_> = (1..=2u32)
                .map(|id| {
                    let (s, world) = (s.clone(), world.clone());
                    loom::thread::spawn(move || {
                        let t = ModelThread::new(&world, id);
                        let ok = s.release(&t, 1).is_ok();
                        crate::check!(s.value() <= 1, "semaphore value above its bound");
                        ok as u32
                    })
                })
                .collect();
            let ok: u32 = hs.into_iter().map(|h| h.join().unwrap()).sum();
            crate::check!(s.value() <= 1, "semaphore value above its bound");
            crate::check!(ok == 1, "{ok} releases succeeded into a bound of 1");
        });
    }

    /// A releaser and a sleeper with no spare permit: the release must wake it.
    /// Exhaustive (two threads).
    pub(super) fn handoff<const M: u32>() {
        crate::testkit::loom(None).check(move || {
            let world = world();
            let s = Arc::new(RawSemaphore::<Loom<M>>::new(0, None));
            let h = {
                let (s, world) = (s.clone(), world.clone());
                loom::thread::spawn(move || {
                    let t = ModelThread::new(&world, 1);
                    assert!(s.acquire(&t, None).is_ok());
                })
            };
            let t = ModelThread::new(&world, 2);
            assert!(s.release(&t, 1).is_ok());
            h.join().unwrap();
            crate::check!(s.value() == 0, "a permit was lost or made up");
        });
    }

    #[test]
    fn loom_mutual_exclusion_two_threads() {
        two_threads::<0>(None, How::Block);
    }

    #[test]
    fn loom_timed_and_try_two_threads() {
        two_threads::<0>(None, How::Timed);
        two_threads::<0>(None, How::Try);
    }

    #[test]
    fn loom_spurious_wakeups_at_every_wait() {
        for n in 1..=2 {
            two_threads::<0>(Some(n), How::Block);
        }
    }

    #[test]
    fn loom_three_threads_bounded() {
        three_threads::<0>();
    }

    #[test]
    fn loom_never_above_bound() {
        over_release::<0>();
    }

    #[test]
    fn loom_release_wakes_sleeper() {
        handoff::<0>();
    }

    #[test]
    fn loom_catches_relaxed_release() {
        assert!(fails_with("Causality violation", || two_threads::<
            { MUTANT_RELAXED_RELEASE.0 },
        >(
            None, How::Block
        )));
    }

    #[test]
    fn loom_catches_missing_wake() {
        assert!(fails_with("deadlock", handoff::<{ MUTANT_NO_WAKE.0 }>));
    }

    #[test]
    fn loom_catches_bound_race() {
        assert!(fails_with(
            "above its bound",
            over_release::<{ MUTANT_BOUND_RACE.0 }>
        ));
    }
}

mod shuttle_checks {
    use super::*;
    use crate::shuttle_platform::{run, world, ModelThread, Shuttle};

    /// `threads` threads × `rounds` uses of one of `permits` permits (blocking,
    /// timed and try in turn); thread 1 dies at its `crash`-th crash point if
    /// given. Afterwards the value is back to `permits`, less one if thread 1
    /// died holding a permit; nobody hangs. Records in `died` whether it died.
    pub(super) fn body<const M: u32>(
        threads: u32,
        rounds: u32,
        permits: u32,
        crash: Option<u32>,
        died: &AtomicBool,
    ) {
        let world = world();
        let s = Arc::new(Shared::<Shuttle<M>>::new(permits, Some(permits)));
        let hs: Vec<_> = (1..=threads)
            .map(|id| {
                let (s, world) = (s.clone(), world.clone());
                shuttle::thread::spawn(move || {
                    let t =
                        ModelThread::new(&world, id).crash_at(if id == 1 { crash } else { None });
                    run(&t, |t| {
                        for r in 0..rounds {
                            let how = match (r + id) % 3 {
                                0 => How::Block,
                                1 => How::Timed,
                                _ => How::Try,
                            };
                            s.use_permit(t, how);
                        }
                    })
                })
            })
            .collect();
        let mut any_died = false;
        for h in hs {
            any_died |= h.join().unwrap();
        }
        if any_died {
            died.store(true, SeqCst);
        }
        // A thread that died between taking and returning a permit took it along.
        let v = s.s.value();
        crate::check!(
            v == permits || (any_died && v + 1 == permits),
            "a permit was lost or made up: value {v} of {permits}"
        );
    }

    /// `threads` threads each release one permit into an empty semaphore
    /// bounded at `bound`: exactly `bound` succeed.
    pub(super) fn over_release<const M: u32>(threads: u32, bound: u32) {
        let world = world();
        let s = Arc::new(RawSemaphore::<Shuttle<M>>::new(0, Some(bound)));
        let ok = Arc::new(AtomicU32::new(0));
        let hs: Vec<_> = (1..=threads)
            .map(|id| {
                let (s, world, ok) = (s.clone(), world.clone(), ok.clone());
                shuttle::thread::spawn(move || {
                    let t = ModelThread::new(&world, id);
                    if s.release(&t, 1).is_ok() {
                        ok.fetch_add(1, SeqCst);
                    }
                    crate::check!(s.value() <= bound, "semaphore value above its bound");
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        let ok = ok.load(SeqCst);
        crate::check!(s.value() <= bound, "semaphore value above its bound");
        crate::check!(
            ok == bound,
            "{ok} releases succeeded into a bound of {bound}"
        );
    }

    pub(super) fn random<const M: u32>(threads: u32, rounds: u32, permits: u32) {
        shuttle_runs(Sched::Random, shuttle_iters(), move |d| {
            body::<M>(threads, rounds, permits, None, d)
        });
    }

    pub(super) fn pct<const M: u32>(
        threads: u32,
        rounds: u32,
        permits: u32,
        crash: Option<u32>,
    ) -> bool {
        shuttle_runs(Sched::Pct, shuttle_iters(), move |d| {
            body::<M>(threads, rounds, permits, crash, d)
        })
    }

    #[test]
    fn shuttle_random_five_threads_two_permits() {
        random::<0>(5, 3, 2);
    }

    #[test]
    fn shuttle_pct_five_threads_two_permits() {
        pct::<0>(5, 3, 2, None);
    }

    #[test]
    fn shuttle_death_at_every_crash_point_blocks_nobody() {
        let points = every_crash_point(|k| pct::<0>(4, 2, 2, Some(k)));
        assert!(points >= 4);
    }

    #[test]
    fn shuttle_never_above_bound() {
        shuttle::check_random(|| over_release::<0>(4, 2), shuttle_iters());
        shuttle::check_pct(|| over_release::<0>(4, 2), shuttle_iters(), 3);
    }

    #[test]
    fn shuttle_catches_missing_wake() {
        assert!(fails_with("deadlock", || {
            pct::<{ MUTANT_NO_WAKE.0 }>(4, 3, 1, None);
        }));
    }

    /// The spin path runs under shuttle (model threads spin two rounds), so a
    /// spin path that hands out a permit it did not take is caught.
    #[test]
    fn shuttle_catches_spin_path_without_take() {
        assert!(fails(|| {
            pct::<{ MUTANT_SPIN_NO_TAKE.0 }>(5, 3, 2, None);
        }));
    }

    #[test]
    fn shuttle_catches_bound_race() {
        assert!(fails_with("above its bound", || {
            shuttle::check_pct(
                || over_release::<{ MUTANT_BOUND_RACE.0 }>(4, 2),
                shuttle_iters(),
                3,
            );
        }));
    }
}

/// Single-threaded scenarios of the semaphore's accessors, its bound and its
/// error paths, which the concurrent checks above do not look at (found by
/// `scripts/mutants`: each test here fails under a mutant that the checks above
/// let pass).
mod unit {
    use super::*;
    use crate::loom_platform::{world, Loom, ModelThread};

    fn with_one(f: impl Fn(&ModelThread) + Send + Sync + 'static) {
        loom::model(move || {
            let world = world();
            f(&ModelThread::new(&world, 2));
        });
    }

    #[test]
    fn value_bound_and_debug_follow_the_permits() {
        with_one(|t| {
            let s = RawSemaphore::<Loom>::new(3, None);
            assert_eq!((s.value(), s.bound()), (3, None));
            assert_eq!(
                format!("{s:?}"),
                "RawSemaphore { value: 3, waiters: 0, bound: None }"
            );
            assert_eq!(s.try_acquire(t), Ok(()));
            assert_eq!(s.acquire(t, None), Ok(()));
            assert_eq!(s.value(), 1);
            let b = RawSemaphore::<Loom>::new(5, Some(2));
            assert_eq!((b.value(), b.bound()), (2, Some(2)), "clamped to the bound");
            assert_eq!(
                format!("{b:?}"),
                "RawSemaphore { value: 2, waiters: 0, bound: Some(2) }"
            );
        });
    }

    #[test]
    fn an_empty_semaphore_is_not_acquired() {
        with_one(|t| {
            let s = RawSemaphore::<Loom>::new(1, None);
            assert_eq!(s.try_acquire(t), Ok(()));
            assert_eq!(s.try_acquire(t), Err(Timeout));
            assert_eq!(s.acquire(t, Some(Duration::from_millis(1))), Err(Timeout));
            assert_eq!(s.value(), 0, "a failed acquire changed the value");
        });
    }

    #[test]
    fn release_respects_the_bound_and_counts() {
        with_one(|t| {
            let b = RawSemaphore::<Loom>::new(1, Some(3));
            assert_eq!(b.release(t, 0), Ok(()));
            assert_eq!(b.value(), 1, "releasing no permit changed the value");
            assert_eq!(b.release(t, 2), Ok(()), "up to the bound is allowed");
            assert_eq!(b.value(), 3);
            assert_eq!(b.release(t, 1), Err(OverRelease));
            assert_eq!(b.value(), 3, "a refused release changed the value");
            let s = RawSemaphore::<Loom>::new(u32::MAX - 1, None);
            assert_eq!(s.release(t, 2), Err(OverRelease), "the count would wrap");
            assert_eq!(s.release(t, 1), Ok(()));
        });
    }
}

/// A timed or non-blocking acquire of an empty semaphore by a thread that runs
/// the spin path first (odd model ids spin before sleeping) gives up: the spin is
/// bounded (found by `scripts/mutants`: with the spin counter stuck at 0 the
/// spinner never reaches its deadline).
#[test]
fn a_spinning_acquirer_of_an_empty_semaphore_gives_up() {
    use crate::loom_platform::{world, Loom, ModelThread};
    loom::model(|| {
        let world = world();
        let t = ModelThread::new(&world, 1).spins(2);
        let s = RawSemaphore::<Loom>::new(0, None);
        assert_eq!(s.acquire(&t, Some(Duration::from_millis(1))), Err(Timeout));
        assert_eq!(s.release(&t, 1), Ok(()));
        assert_eq!(s.acquire(&t, Some(Duration::from_millis(1))), Ok(()));
        assert_eq!(s.value(), 0);
    });
}
