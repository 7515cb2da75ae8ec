//! loom and shuttle checks of the mutex, and proof that each seeded mutant is caught.

use super::*;
use crate::platform::{CellLike, Platform};
use crate::testkit::{every_crash_point, fails_with, shuttle_iters, shuttle_runs, Sched};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::SeqCst};
use std::sync::Arc;

/// The state every check shares: the mutex, the data it protects (a checker
/// cell: loom reports unsynchronized access) and an in-critical-section witness
/// (std atomic, invisible to the checkers, so it adds no interleavings).
struct Shared<P: Platform> {
    m: RawMutex<P>,
    data: P::Cell<u32>,
    inside: AtomicU32,
}

impl<P: Platform> Shared<P> {
    fn new() -> Self {
        Shared {
            m: RawMutex::new(),
            data: P::Cell::new(0),
            inside: AtomicU32::new(0),
        }
    }

    /// One critical section; `timeout` for the timed variant. Returns whether it ran.
    fn critical(&self, t: &P::Thread, timeout: Option<core::time::Duration>) -> bool {
        let a = match self.m.lock(t, timeout) {
            Ok(a) => a,
            Err(Timeout) => return false,
        };
        if a == Acquired::OwnerDied {
            self.inside.store(0, SeqCst); // the previous holder died inside
        }
        crate::check!(
            self.inside.fetch_add(1, SeqCst) == 0,
            "two threads in the critical section"
        );
        t.crash_point();
        // SAFETY: the protocol under check grants this access (exclusive for a write, no writer for a read); loom reports a race if it does not.
        self.data.with_mut(|p| unsafe { *p += 1 });
        t.crash_point();
        self.inside.fetch_sub(1, SeqCst);
        crate::check!(
            self.m.unlock(t).is_ok(),
            "the holder's unlock failed: the critical section was shared"
        );
        true
    }

    fn count(&self) -> u32 {
        // SAFETY: the protocol under check grants this access (exclusive for a write, no writer for a read); loom reports a race if it does not.
        self.data.with(|p| unsafe { *p })
    }
}

mod loom_checks {
    use super::*;
    use crate::loom_platform::{run, world, Loom, ModelThread};

    /// Two threads, `rounds` critical sections each; thread 2's n-th wait may
    /// return spuriously. One round is explored exhaustively; more rounds use
    /// preemption bound 4 (unbounded, two rounds exceed a million executions
    /// because every relaxed load may read any earlier store).
    pub(super) fn two_threads<const M: u32>(rounds: u32, spurious: Option<u32>) {
        let bound = if rounds > 1 { Some(4) } else { None };
        crate::testkit::loom(bound).check(move || {
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
                        run(&t, |t| {
                            for _ in 0..rounds {
                                assert!(s.critical(t, None));
                            }
                        });
                    })
                })
                .collect();
            for h in hs {
                h.join().unwrap();
            }
            assert_eq!(s.count(), 2 * rounds);
            assert!(!s.m.is_locked());
        });
    }

    /// Thread 1 dies at its `k`-th crash point; thread 2 and the main thread
    /// each run one critical section and must get through (recovering if needed).
    /// Preemption bound 2 (three participants). Returns whether thread 1 died
    /// in some execution.
    pub(super) fn crash<const M: u32>(k: u32) -> bool {
        let crashed = Arc::new(AtomicBool::new(false));
        let c = crashed.clone();
        crate::testkit::loom(Some(2)).check(move || {
            let world = world();
            let s = Arc::new(Shared::<Loom<M>>::new());
            let h1 = {
                let (s, world) = (s.clone(), world.clone());
                loom::thread::spawn(move || {
                    let t = ModelThread::new(&world, 1).crash_at(Some(k));
                    run(&t, |t| {
                        s.critical(t, None);
                    })
                })
            };
            let h2 = {
                let (s, world) = (s.clone(), world.clone());
                loom::thread::spawn(move || {
                    let t = ModelThread::new(&world, 2);
                    run(&t, |t| assert!(s.critical(t, None)))
                })
            };
            let t3 = ModelThread::new(&world, 3);
            assert!(s.critical(&t3, None));
            let died = h1.join().unwrap();
            assert!(!h2.join().unwrap());
            if died {
                c.store(true, SeqCst);
            }
            assert!(s.count() >= 2, "a surviving critical section was lost");
            // Free, or still held by the dead thread if it died after the others finished.
            assert!(s.m.owner().is_none() || (died && s.m.owner() == Some(1)));
        });
        crashed.load(SeqCst)
    }

    /// Thread id reuse: thread 1 dies at its `k`-th crash point and its id
    /// is then given to a newcomer (same id, another identity: a kernel that
    /// reuses a dead thread's tid) which runs one critical section; thread 2
    /// runs one too. Both must get through: a dead holder is never taken for
    /// the newcomer, by the newcomer itself nor by thread 2. Preemption bound
    /// 2. Returns whether thread 1 died in some execution.
    pub(super) fn reuse<const M: u32>(k: u32) -> bool {
        let crashed = Arc::new(AtomicBool::new(false));
        let c = crashed.clone();
        crate::testkit::loom(Some(2)).check(move || {
            let world = world();
            let s = Arc::new(Shared::<Loom<M>>::new());
            let h1 = {
                let (s, world) = (s.clone(), world.clone());
                loom::thread::spawn(move || {
                    let t = ModelThread::new(&world, 1).crash_at(Some(k));
                    let died = run(&t, |t| {
                        s.critical(t, None);
                    });
                    if died {
                        let newcomer = t.reborn();
                        assert_ne!(newcomer.identity_of(), t.identity_of());
                        assert!(!run(&newcomer, |t| assert!(s.critical(t, None))));
                    }
                    died
                })
            };
            let t2 = ModelThread::new(&world, 2);
            assert!(s.critical(&t2, None));
            let died = h1.join().unwrap();
            if died {
                c.store(true, SeqCst);
            }
            assert!(s.count() >= 1, "a surviving critical section was lost");
        });
        crashed.load(SeqCst)
    }

    /// A timed acquirer against a holder: gives up or gets in, never both in.
    /// Preemption bound 4 (two rounds per thread).
    pub(super) fn timed<const M: u32>() {
        crate::testkit::loom(Some(4)).check(move || {
            let world = world();
            let s = Arc::new(Shared::<Loom<M>>::new());
            let h = {
                let (s, world) = (s.clone(), world.clone());
                loom::thread::spawn(move || {
                    let t = ModelThread::new(&world, 1);
                    s.critical(&t, None);
                    s.critical(&t, None);
                })
            };
            let t = ModelThread::new(&world, 2);
            let mut ran = 0;
            for _ in 0..2 {
                ran += s.critical(&t, Some(core::time::Duration::from_millis(1))) as u32;
            }
            h.join().unwrap();
            assert_eq!(s.count(), 2 + ran);
            assert!(!s.m.is_locked());
        });
    }

    #[test]
    fn loom_mutual_exclusion_two_threads() {
        two_threads::<0>(1, None);
        two_threads::<0>(2, None);
    }

    #[test]
    fn loom_spurious_wakeups_at_every_wait() {
        for n in 1..=3 {
            two_threads::<0>(2, Some(n));
        }
    }

    #[test]
    fn loom_recovery_at_every_crash_point() {
        let points = every_crash_point(crash::<0>);
        assert!(
            points >= 4,
            "expected at least 4 crash points, found {points}"
        );
    }

    #[test]
    fn loom_timeouts() {
        timed::<0>();
    }

    /// A dead holder's id given to a newcomer, at every crash point of the
    /// holder (the moment between winning the word and publishing its
    /// identity, and the one in `unlock` between clearing it and freeing the
    /// word, included).
    #[test]
    fn loom_recovery_with_id_reuse_at_every_crash_point() {
        let points = every_crash_point(reuse::<0>);
        assert!(
            points >= 6,
            "expected at least 6 crash points, found {points}"
        );
    }

    /// Mutant 1102: the holder is taken for alive when a thread has its id.
    #[test]
    fn loom_catches_trusting_the_tid() {
        assert!(fails_with("deadlock", || {
            every_crash_point(reuse::<{ crate::platform::MUTANT_TRUST_TID.0 }>);
        }));
    }

    /// Mutant 1103: the moment between winning the word and publishing the
    /// identity is not marked pending. Only a death at that one crash point
    /// shows it.
    #[test]
    fn loom_catches_unmarked_publication_window() {
        assert!(fails_with("deadlock", || {
            every_crash_point(reuse::<{ crate::platform::MUTANT_NO_PENDING.0 }>);
        }));
    }

    #[test]
    fn loom_catches_relaxed_unlock() {
        assert!(fails_with("Causality violation", || two_threads::<
            { MUTANT_RELAXED_UNLOCK.0 },
        >(1, None)));
    }

    #[test]
    fn loom_catches_missing_wake() {
        assert!(fails_with(
            "deadlock",
            || two_threads::<{ MUTANT_NO_WAKE.0 }>(1, None)
        ));
    }

    #[test]
    fn loom_catches_missing_recovery() {
        assert!(fails_with("deadlock", || {
            every_crash_point(crash::<{ MUTANT_NO_RECOVERY.0 }>);
        }));
    }

    /// The platform's mutant: a dead owner's watchers are not woken by its
    /// death (they would have to poll). The waiters then sleep for ever.
    #[test]
    fn loom_catches_unnotified_death() {
        assert!(fails_with("deadlock", || {
            every_crash_point(crash::<{ crate::platform::MUTANT_DEATH_NOT_NOTIFIED.0 }>);
        }));
    }

    #[test]
    fn loom_catches_racy_recovery() {
        assert!(fails_with("Causality violation", || {
            every_crash_point(crash::<{ MUTANT_RECOVER_STORE.0 }>);
        }));
    }
}

mod shuttle_checks {
    use super::*;
    use crate::shuttle_platform::{run, world, ModelThread, Shuttle};

    /// `threads` threads × `rounds` critical sections (a third of them timed);
    /// thread 1 dies at its `crash`-th crash point if given. Returns whether it died.
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
                            let timeout =
                                (r % 3 == 2).then(|| core::time::Duration::from_millis(5));
                            if s.critical(t, timeout) {
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
        assert!(
            count == done || (any_died && count == done + 1),
            "count {count} vs completed {done}"
        );
        // A survivor can always get the lock afterwards.
        let t = ModelThread::new(&world, threads + 1);
        assert!(s.critical(&t, None));
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
        assert!(points >= 4);
    }

    #[test]
    fn shuttle_catches_missing_wake() {
        assert!(fails_with("deadlock", || {
            pct::<{ MUTANT_NO_WAKE.0 }>(4, 3, None);
        }));
    }

    #[test]
    fn shuttle_catches_unnotified_death() {
        assert!(fails_with("deadlock", || {
            every_crash_point(|k| {
                pct::<{ crate::platform::MUTANT_DEATH_NOT_NOTIFIED.0 }>(4, 2, Some(k))
            });
        }));
    }

    #[test]
    fn shuttle_catches_racy_recovery() {
        assert!(fails_with("critical section", || {
            every_crash_point(|k| pct::<{ MUTANT_RECOVER_STORE.0 }>(4, 2, Some(k)));
        }));
    }
}

/// Single-threaded scenarios of the mutex's accessors and error paths, which the
/// concurrent checks above do not look at (found by `scripts/mutants`: each test
/// here fails under a mutant that every check above let pass).
mod unit {
    use super::*;
    use crate::loom_platform::{run, world, Loom, ModelThread};

    /// A mutex and one thread context inside one loom execution (one thread: one
    /// execution).
    fn with_one(f: impl Fn(&RawMutex<Loom>, &ModelThread) + Send + Sync + 'static) {
        loom::model(move || {
            let world = world();
            let m = RawMutex::<Loom>::new();
            f(&m, &ModelThread::new(&world, 5));
        });
    }

    #[test]
    fn owner_and_is_locked_follow_the_word() {
        with_one(|m, t| {
            assert_eq!(m.owner(), None);
            assert!(!m.is_locked());
            assert_eq!(m.lock(t, None), Ok(Acquired::Clean));
            assert_eq!(m.owner(), Some(5));
            assert!(m.is_locked());
            assert_eq!(m.word().load(SeqCst), 5);
            let held = format!("{m:?}");
            assert_eq!(
                held,
                format!("RawMutex {{ word: 0x5, ident: {:#x} }}", t.identity())
            );
            assert_eq!(m.unlock(t), Ok(()));
            assert_eq!(m.owner(), None);
            assert!(!m.is_locked());
            assert!(format!("{m:?}").starts_with("RawMutex { word: 0x0,"));
        });
    }

    #[test]
    fn unlock_of_an_unlocked_mutex_is_an_error() {
        with_one(|m, t| {
            assert_eq!(m.unlock(t), Err(NotLocked));
            assert_eq!(m.word().load(SeqCst), 0);
            assert_eq!(m.try_lock(t), Ok(Acquired::Clean));
            assert_eq!(m.unlock(t), Ok(()));
            assert_eq!(m.unlock(t), Err(NotLocked));
        });
    }

    #[test]
    fn try_lock_of_a_live_holders_lock_times_out() {
        loom::model(|| {
            // Both threads live in one world: a thread of another world is
            // unknown to this one's liveness oracle (dead to it).
            let world = world();
            let m = RawMutex::<Loom>::new();
            let t = &ModelThread::new(&world, 5);
            assert_eq!(m.lock(t, None), Ok(Acquired::Clean));
            let other = ModelThread::new(&world, 6);
            assert_eq!(m.try_lock(&other), Err(Timeout));
            assert_eq!(m.lock(&other, Some(Duration::from_millis(1))), Err(Timeout));
            assert_eq!(m.owner(), Some(5), "a failed try_lock changed the owner");
        });
    }

    #[test]
    fn a_dead_holders_lock_is_taken_over_once() {
        loom::model(|| {
            let world = world();
            let m = RawMutex::<Loom>::new();
            let dead = ModelThread::new(&world, 7).crash_at(Some(2));
            assert!(run(&dead, |t| {
                m.lock(t, None).unwrap();
                t.crash_point();
            }));
            let t = ModelThread::new(&world, 8);
            assert_eq!(m.try_lock(&t), Ok(Acquired::OwnerDied));
            assert_eq!(m.owner(), Some(8));
            assert_eq!(m.word().load(SeqCst), 8 | WAITERS);
            assert_eq!(m.unlock(&t), Ok(()));
            assert_eq!(m.word().load(SeqCst), 0);
            assert_eq!(m.try_lock(&t), Ok(Acquired::Clean));
        });
    }
}

/// Two threads release one held lock at once (any thread may release, as with
/// CPython's `Lock`): exactly one release succeeds, the other is `NotLocked`,
/// whichever way their load and swap interleave (loom, exhaustive). Catches an
/// `unlock` that does not look at what its swap took (found by `scripts/mutants`:
/// the single-threaded scenarios only reach the first, early test).
#[test]
fn loom_two_releases_of_one_hold_one_succeeds() {
    use crate::loom_platform::{world, Loom, ModelThread};
    crate::testkit::loom(None).check(|| {
        let world = world();
        let m = Arc::new(RawMutex::<Loom>::new());
        m.lock(&ModelThread::new(&world, 3), None).unwrap();
        let hs: Vec<_> = (1..=2u32)
            .map(|id| {
                let (m, world) = (m.clone(), world.clone());
                loom::thread::spawn(move || m.unlock(&ModelThread::new(&world, id)).is_ok())
            })
            .collect();
        let ok = hs.into_iter().map(|h| h.join().unwrap());
        assert_eq!(ok.filter(|&o| o).count(), 1, "one hold released twice");
        assert!(!m.is_locked());
    });
}
