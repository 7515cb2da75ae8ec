//! loom and shuttle checks of the recursive lock, and proof that each seeded
//! mutant is caught.

use super::*;
use crate::platform::{CellLike, Platform};
use crate::testkit::{every_crash_point, fails_with, shuttle_iters, shuttle_runs, Sched};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::SeqCst};
use std::sync::Arc;

/// The rlock, the data it protects (a checker cell: loom reports unsynchronized
/// access) and an in-critical-section witness (a std atomic: invisible to the
/// checkers, so it adds no interleavings).
struct Shared<P: Platform> {
    l: RawRLock<P>,
    data: P::Cell<u32>,
    inside: AtomicU32,
    /// Run the non-owner release probe before each critical section.
    probe: bool,
    /// Non-owner release probes in progress (a std atomic, like `inside`):
    /// the witness that lets a check that fails in *another* thread name the
    /// cause (see [`Shared::check`]).
    probing: AtomicU32,
}

/// How a critical section acquires the lock the first time.
#[derive(Clone, Copy, PartialEq)]
enum How {
    Block,
    Timed,
    Try,
}

impl<P: Platform> Shared<P> {
    fn new() -> Self {
        Shared {
            l: RawRLock::new(),
            data: P::Cell::new(0),
            inside: AtomicU32::new(0),
            probe: true,
            probing: AtomicU32::new(0),
        }
    }

    /// Without the non-owner release probe (fewer steps for the 3-thread loom run).
    fn light() -> Self {
        Shared {
            probe: false,
            ..Self::new()
        }
    }

    /// One critical section entered twice (re-entrantly): a release by a
    /// non-owner first (must fail), then lock, lock again, the protected
    /// update, unlock (still owned), unlock. Returns whether it ran.
    fn critical(&self, t: &P::Thread, how: How) -> bool {
        let me = t.id();
        if self.probe && !self.l.is_owned_by(me) {
            self.probing.fetch_add(1, SeqCst);
            crate::check!(self.l.unlock(t).is_err(), "a non-owner released the lock");
            self.probing.fetch_sub(1, SeqCst);
        }
        let a = match how {
            How::Block => self.l.lock(t, None),
            How::Timed => self.l.lock(t, Some(core::time::Duration::from_millis(1))),
            How::Try => self.l.try_lock(t),
        };
        let a = match a {
            Ok(a) => a,
            Err(Timeout) => return false,
        };
        if a == Acquired::OwnerDied {
            self.inside.store(0, SeqCst); // the previous holder died inside
        }
        self.check(
            self.inside.fetch_add(1, SeqCst) == 0,
            "two threads in the critical section",
        );
        self.check(
            self.l.lock(t, None) == Ok(Acquired::Clean),
            "re-entrant acquisition failed",
        );
        self.check(
            self.l.is_owned_by(me),
            "two threads in the critical section (another owner after re-entry)",
        );
        self.check(self.l.count() == 2, "wrong recursion depth after re-entry");
        t.crash_point();
        // SAFETY: the protocol under check grants this access (exclusive for a write, no writer for a read); loom reports a race if it does not.
        self.data.with_mut(|p| unsafe { *p += 1 });
        t.crash_point();
        self.check(self.l.unlock(t).is_ok(), "inner unlock by the owner failed");
        self.check(
            self.l.is_owned_by(me),
            "the lock was freed before the outermost release",
        );
        self.inside.fetch_sub(1, SeqCst);
        self.check(self.l.unlock(t).is_ok(), "outer unlock by the owner failed");
        true
    }

    /// A check of the critical section. A non-owner release that succeeds
    /// (a mutant) is reported by the prober's own check, unless the scheduler
    /// runs another thread first, between the release's last step and that
    /// check: then the owner (or a thread the release let in) sees a
    /// consequence first (a wrong depth, a failed unlock, a lost lock, two
    /// threads inside). So while a probe is in progress a failed check also
    /// names it. With correct code a probe changes nothing, and no check fails.
    fn check(&self, ok: bool, what: &str) {
        if ok {
            return;
        }
        if self.probing.load(SeqCst) != 0 {
            crate::testkit::violation(&format!(
                "{what}, during a release by a non-owner (a non-owner released the lock)"
            ));
        }
        crate::testkit::violation(what)
    }

    fn count(&self) -> u32 {
        // SAFETY: the protocol under check grants this access (exclusive for a write, no writer for a read); loom reports a race if it does not.
        self.data.with(|p| unsafe { *p })
    }
}

mod loom_checks {
    use super::*;
    use crate::loom_platform::{run, world, Loom, ModelThread};

    /// Two threads, one re-entrant critical section each, explored
    /// exhaustively; thread 2's n-th wait may return spuriously and thread 2
    /// acquires as `how2` says.
    pub(super) fn two_threads<const M: u32>(spurious: Option<u32>, how2: How) {
        crate::testkit::loom(None).check(move || {
            let world = world();
            let s = Arc::new(Shared::<Loom<M>>::new());
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
                        run(&t, |t| ran = s.critical(t, how));
                        ran as u32
                    })
                })
                .collect();
            let ran: u32 = hs.into_iter().map(|h| h.join().unwrap()).sum();
            crate::check!(s.count() == ran, "lost update");
            if how2 == How::Block {
                assert_eq!(ran, 2);
            }
            crate::check!(!s.l.is_locked(), "lock left held");
        });
    }

    /// Three threads (two spawned + main), one critical section each (without
    /// the non-owner probe, which the two-thread runs cover): preemption bound 2.
    pub(super) fn three_threads<const M: u32>() {
        crate::testkit::loom(Some(2)).check(move || {
            let world = world();
            let s = Arc::new(Shared::<Loom<M>>::light());
            let hs: Vec<_> = (1..=2u32)
                .map(|id| {
                    let (s, world) = (s.clone(), world.clone());
                    loom::thread::spawn(move || {
                        let t = ModelThread::new(&world, id);
                        run(&t, |t| assert!(s.critical(t, How::Block)));
                    })
                })
                .collect();
            let t3 = ModelThread::new(&world, 3);
            assert!(s.critical(&t3, How::Block));
            for h in hs {
                h.join().unwrap();
            }
            crate::check!(s.count() == 3, "lost update");
            crate::check!(!s.l.is_locked(), "lock left held");
        });
    }

    /// Thread 1 dies at its `k`-th crash point (possibly holding the lock
    /// twice); the main thread then runs one critical section and must get
    /// through, recovering if needed, with the dead owner's depth forgotten.
    /// Two threads, explored exhaustively (no preemption bound). The race
    /// between two recoverers is the mutex's, checked by
    /// `mutex::tests::loom_recovery_at_every_crash_point` with three threads;
    /// here a 3-thread run with preemption bound 2 takes ~40 s per sweep.
    /// Returns whether thread 1 died in some execution.
    pub(super) fn crash<const M: u32>(k: u32) -> bool {
        let crashed = Arc::new(AtomicBool::new(false));
        let c = crashed.clone();
        crate::testkit::loom(None).check(move || {
            let world = world();
            let s = Arc::new(Shared::<Loom<M>>::new());
            let h1 = {
                let (s, world) = (s.clone(), world.clone());
                loom::thread::spawn(move || {
                    let t = ModelThread::new(&world, 1).crash_at(Some(k));
                    run(&t, |t| {
                        s.critical(t, How::Block);
                    })
                })
            };
            let t2 = ModelThread::new(&world, 2);
            assert!(s.critical(&t2, How::Block));
            let died = h1.join().unwrap();
            if died {
                c.store(true, SeqCst);
            }
            crate::check!(s.count() >= 1, "a surviving critical section was lost");
            crate::check!(
                s.l.owner().is_none() || (died && s.l.owner() == Some(1)),
                "lock left held by a survivor"
            );
        });
        crashed.load(SeqCst)
    }

    #[test]
    fn loom_mutual_exclusion_and_reentry_two_threads() {
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
    fn loom_recovery_at_every_crash_point() {
        let points = every_crash_point(crash::<0>);
        assert!(
            points >= 6,
            "expected at least 6 crash points, found {points}"
        );
    }

    #[test]
    fn loom_catches_release_by_non_owner() {
        assert!(fails_with("a non-owner released the lock", || {
            two_threads::<{ MUTANT_UNLOCK_ANY.0 }>(None, How::Block)
        }));
    }

    #[test]
    fn loom_catches_reentry_by_another_thread() {
        assert!(fails_with("two threads in the critical section", || {
            two_threads::<{ MUTANT_REENTER_ANY.0 }>(None, How::Block)
        }));
    }

    #[test]
    fn loom_catches_dead_owner_depth_kept() {
        assert!(fails_with("wrong recursion depth after re-entry", || {
            every_crash_point(crash::<{ MUTANT_KEEP_DEAD_COUNT.0 }>);
        }));
    }
}

mod shuttle_checks {
    use super::*;
    use crate::shuttle_platform::{run, world, ModelThread, Shuttle};

    /// `threads` threads × `rounds` re-entrant critical sections (blocking,
    /// timed and try in turn); thread 1 dies at its `crash`-th crash point if given.
    pub(super) fn body<const M: u32>(
        threads: u32,
        rounds: u32,
        crash: Option<u32>,
        died: &AtomicBool,
    ) {
        let world = world();
        let s = Arc::new(Shared::<Shuttle<M>>::new());
        let completed = Arc::new(AtomicU32::new(0));
        let hs: Vec<_> = (1..=threads)
            .map(|id| {
                let (s, world, completed) = (s.clone(), world.clone(), completed.clone());
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
                            if s.critical(t, how) {
                                completed.fetch_add(1, SeqCst);
                            }
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
        let done = completed.load(SeqCst);
        let count = s.count();
        crate::check!(
            count == done || (any_died && count == done + 1),
            "count {count} vs completed {done}"
        );
        // A survivor can always get the lock afterwards.
        let t = ModelThread::new(&world, threads + 1);
        crate::check!(s.critical(&t, How::Block), "survivor could not lock");
    }

    pub(super) fn random<const M: u32>(threads: u32, rounds: u32, crash: Option<u32>) -> bool {
        shuttle_runs(Sched::Random, shuttle_iters(), move |d| {
            body::<M>(threads, rounds, crash, d)
        })
    }

    pub(super) fn pct<const M: u32>(threads: u32, rounds: u32, crash: Option<u32>) -> bool {
        shuttle_runs(Sched::Pct, shuttle_iters(), move |d| {
            body::<M>(threads, rounds, crash, d)
        })
    }

    #[test]
    fn shuttle_random_four_threads() {
        random::<0>(4, 3, None);
    }

    #[test]
    fn shuttle_pct_four_threads() {
        pct::<0>(4, 3, None);
    }

    #[test]
    fn shuttle_recovery_at_every_crash_point() {
        let points = every_crash_point(|k| pct::<0>(4, 2, Some(k)));
        assert!(points >= 6);
    }

    /// Every failure here names the non-owner release: the prober's own check,
    /// or (in about 0.4% of runs, when another thread sees the consequence
    /// first) a check that fails while the probe is in progress
    /// ([`Shared::check`]).
    #[test]
    fn shuttle_catches_release_by_non_owner() {
        assert!(fails_with("non-owner", || {
            pct::<{ MUTANT_UNLOCK_ANY.0 }>(4, 3, None);
        }));
    }

    #[test]
    fn shuttle_catches_reentry_by_another_thread() {
        assert!(fails_with("two threads in the critical section", || {
            random::<{ MUTANT_REENTER_ANY.0 }>(4, 3, None);
        }));
    }
}

/// Single-threaded scenarios of the recursive lock's accessors and error paths,
/// which the concurrent checks above do not look at (found by `scripts/mutants`:
/// each test here fails under a mutant that the checks above let pass).
mod unit {
    use super::*;
    use crate::loom_platform::{world, Loom, ModelThread};

    #[test]
    fn owner_count_and_debug_follow_the_acquisitions() {
        loom::model(|| {
            let world = world();
            let (t, u) = (ModelThread::new(&world, 5), ModelThread::new(&world, 6));
            let l = RawRLock::<Loom>::new();
            assert_eq!((l.owner(), l.count(), l.is_locked()), (None, 0, false));
            assert!(!l.is_owned_by(5));
            assert_eq!(format!("{l:?}"), "RawRLock { owner: None, count: 0 }");
            assert_eq!(l.lock(&t, None), Ok(Acquired::Clean));
            assert_eq!(l.try_lock(&t), Ok(Acquired::Clean));
            assert_eq!((l.owner(), l.count(), l.is_locked()), (Some(5), 2, true));
            assert!(l.is_owned_by(5) && !l.is_owned_by(6));
            assert_eq!(format!("{l:?}"), "RawRLock { owner: Some(5), count: 2 }");
            assert_eq!(l.try_lock(&u), Err(Timeout), "another thread got in");
            assert_eq!(l.unlock(&u), Err(NotOwner));
            assert_eq!(l.unlock(&t), Ok(()));
            assert_eq!((l.owner(), l.count()), (Some(5), 1));
            assert_eq!(l.unlock(&t), Ok(()));
            assert_eq!((l.owner(), l.count(), l.is_locked()), (None, 0, false));
            assert_eq!(l.unlock(&t), Err(NotOwner), "released more than acquired");
            assert_eq!(l.try_lock(&u), Ok(Acquired::Clean));
            assert_eq!((l.owner(), l.count()), (Some(6), 1));
        });
    }

    /// `is_mine` (what a condition asks of its `RLock`) is the caller's hold
    /// alone: not before, not another thread's, not after the last release,
    /// and not a dead holder's whose id the caller was given.
    #[test]
    fn is_mine_is_the_callers_hold() {
        loom::model(|| {
            let world = world();
            let (t, u) = (ModelThread::new(&world, 5), ModelThread::new(&world, 6));
            let l = RawRLock::<Loom>::new();
            assert!(!l.is_mine(&t), "free, yet mine");
            l.lock(&t, None).unwrap();
            l.lock(&t, None).unwrap();
            assert!(l.is_mine(&t), "held twice, yet not mine");
            assert!(!l.is_mine(&u), "another thread's hold is mine");
            l.unlock(&t).unwrap();
            assert!(l.is_mine(&t), "not mine after the inner release");
            l.unlock(&t).unwrap();
            assert!(!l.is_mine(&t), "mine after the last release");
            // A holder that dies leaves its id in the word; a later thread
            // given that id is not the holder.
            l.lock(&u, None).unwrap();
            let v = u.reborn();
            assert!(
                !l.is_mine(&v),
                "a dead holder's hold is its id's next thread's"
            );
        });
    }
}
