//! loom and shuttle checks of the barrier, and proof that each seeded mutant is caught.

use super::*;
use crate::platform::{CellLike, Platform};
use crate::testkit::{every_crash_point, fails_with, shuttle_iters};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::SeqCst};
use std::sync::Arc;

const ROUNDS: usize = 3;
const THREADS: usize = 5;

/// The barrier; one cell per (round, party) that the party writes before the
/// barrier and everybody reads after it (loom reports a read that did not
/// synchronize with the write); witnesses (std atomics, invisible to the
/// checkers): arrivals per round, and the arrival indices handed out per round.
struct Shared<P: Platform> {
    b: RawBarrier<P>,
    parties: u32,
    cells: Vec<P::Cell<u32>>,
    arrived: [AtomicU32; ROUNDS],
    indices: [AtomicU32; ROUNDS],
    released: [AtomicU32; ROUNDS],
    broken: [AtomicU32; ROUNDS],
    /// Pass with `wait_with` and an action that writes `action_cells[r]`
    /// (read by every party after the barrier) and counts its runs.
    with_action: bool,
    action_cells: Vec<P::Cell<u32>>,
    action_runs: [AtomicU32; ROUNDS],
}

impl<P: Platform> Shared<P> {
    fn new(parties: u32) -> Self {
        Shared {
            b: RawBarrier::new(parties).unwrap(),
            parties,
            cells: (0..ROUNDS * THREADS).map(|_| P::Cell::new(0)).collect(),
            arrived: Default::default(),
            indices: Default::default(),
            released: Default::default(),
            broken: Default::default(),
            with_action: false,
            action_cells: (0..ROUNDS).map(|_| P::Cell::new(0)).collect(),
            action_runs: Default::default(),
        }
    }

    fn with_action(parties: u32) -> Self {
        Shared {
            with_action: true,
            ..Self::new(parties)
        }
    }

    /// The action of round `r`: runs after every party arrived.
    fn action(&self, r: usize) -> bool {
        crate::check!(
            self.arrived[r].load(SeqCst) >= self.parties,
            "the action ran before all parties arrived"
        );
        // SAFETY: the protocol under check grants this access (exclusive for a write, no writer for a read); loom reports a race if it does not.
        self.action_cells[r].with_mut(|p| unsafe { *p += 1 });
        self.action_runs[r].fetch_add(1, SeqCst);
        true
    }

    /// Party `me` (0-based) passes the barrier in round `r`. Returns the outcome.
    fn pass(
        &self,
        t: &P::Thread,
        me: usize,
        r: usize,
        timeout: Option<core::time::Duration>,
    ) -> Result<u32, BarrierError> {
        // SAFETY: the protocol under check grants this access (exclusive for a write, no writer for a read); loom reports a race if it does not.
        self.cells[r * THREADS + me].with_mut(|p| unsafe { *p = r as u32 + 1 });
        self.arrived[r].fetch_add(1, SeqCst);
        let res = if self.with_action {
            self.b.wait_with(t, timeout, || self.action(r))
        } else {
            self.b.wait(t, timeout)
        };
        match res {
            Ok(i) => {
                if self.with_action {
                    let runs = self.action_runs[r].load(SeqCst);
                    crate::check!(runs == 1, "released after {runs} runs of the action");
                    // SAFETY: the protocol under check grants this access (exclusive for a write, no writer for a read); loom reports a race if it does not.
                    let x = self.action_cells[r].with(|p| unsafe { *p });
                    crate::check!(x == 1, "released before the action's writes");
                }
                self.released[r].fetch_add(1, SeqCst);
                crate::check!(
                    self.arrived[r].load(SeqCst) >= self.parties,
                    "released before all parties arrived"
                );
                crate::check!(i < self.parties, "arrival index {i} out of range");
                let prev = self.indices[r].fetch_or(1 << i, SeqCst);
                crate::check!(prev & (1 << i) == 0, "two parties got arrival index {i}");
                for other in 0..self.parties as usize {
                    // SAFETY: the protocol under check grants this access (exclusive for a write, no writer for a read); loom reports a race if it does not.
                    let x = self.cells[r * THREADS + other].with(|p| unsafe { *p });
                    crate::check!(x == r as u32 + 1, "released before a party's writes");
                }
            }
            Err(_) => {
                self.broken[r].fetch_add(1, SeqCst);
            }
        }
        crate::check!(
            self.released[r].load(SeqCst) == 0 || self.broken[r].load(SeqCst) == 0,
            "a generation was both released and broken"
        );
        res
    }

    /// After every party has finished round `r` without error: released
    /// exactly once each, with indices 0..parties.
    fn round_complete(&self, r: usize) {
        crate::check!(
            self.released[r].load(SeqCst) == self.parties
                && self.indices[r].load(SeqCst) == (1 << self.parties) - 1,
            "a generation did not release every party exactly once"
        );
    }
}

mod loom_checks {
    use super::*;
    use crate::loom_platform::{run, world, Loom, ModelThread};

    /// `n` parties (`n - 1` spawned threads and the main thread) pass the
    /// barrier `rounds` times. `bound`: the preemption bound.
    pub(super) fn parties<const M: u32>(n: u32, rounds: usize, bound: Option<usize>) {
        parties_with::<M>(n, rounds, bound, false)
    }

    /// As [`parties`], `action`: with `wait_with` and an action.
    pub(super) fn parties_with<const M: u32>(
        n: u32,
        rounds: usize,
        bound: Option<usize>,
        action: bool,
    ) {
        crate::testkit::loom(bound).check(move || {
            let world = world();
            let s = Arc::new(if action {
                Shared::<Loom<M>>::with_action(n)
            } else {
                Shared::<Loom<M>>::new(n)
            });
            let hs: Vec<_> = (1..n)
                .map(|id| {
                    let (s, world) = (s.clone(), world.clone());
                    loom::thread::spawn(move || {
                        let t = ModelThread::new(&world, id);
                        for r in 0..rounds {
                            crate::check!(s.pass(&t, id as usize, r, None).is_ok(), "broken");
                        }
                    })
                })
                .collect();
            let t = ModelThread::new(&world, n);
            for r in 0..rounds {
                crate::check!(s.pass(&t, 0, r, None).is_ok(), "broken");
            }
            for h in hs {
                h.join().unwrap();
            }
            for r in 0..rounds {
                s.round_complete(r);
            }
        });
    }

    /// Two parties, the main one timed: both pass, or the timed one times out
    /// (breaking the barrier) and the other finds it broken. Exhaustive.
    pub(super) fn timed<const M: u32>() {
        crate::testkit::loom(None).check(move || {
            let world = world();
            let s = Arc::new(Shared::<Loom<M>>::new(2));
            let h = {
                let (s, world) = (s.clone(), world.clone());
                loom::thread::spawn(move || {
                    let t = ModelThread::new(&world, 1);
                    s.pass(&t, 1, 0, None)
                })
            };
            let t = ModelThread::new(&world, 2);
            let mine = s.pass(&t, 0, 0, Some(core::time::Duration::from_millis(1)));
            let other = h.join().unwrap();
            match (mine, other) {
                (Ok(_), Ok(_)) => s.round_complete(0),
                (Err(BarrierError::Timeout), Err(BarrierError::Broken)) => {
                    assert!(s.b.broken())
                }
                x => crate::check!(false, "inconsistent outcomes {x:?}"),
            }
        });
    }

    /// Two parties; party 1 dies at its `k`-th crash point, which is always
    /// after its arrival (so the generation completes). Party 2 waits
    /// (blocking) and must be released even when party 1 arrived last and died
    /// before waking it. Exhaustive. Returns whether party 1 died.
    pub(super) fn crash<const M: u32>(k: u32) -> bool {
        let crashed = Arc::new(AtomicBool::new(false));
        let c = crashed.clone();
        crate::testkit::loom(None).check(move || {
            let world = world();
            let s = Arc::new(Shared::<Loom<M>>::new(2));
            let h1 = {
                let (s, world) = (s.clone(), world.clone());
                loom::thread::spawn(move || {
                    let t = ModelThread::new(&world, 1).crash_at(Some(k));
                    run(&t, |t| {
                        let _ = s.pass(t, 1, 0, None);
                    })
                })
            };
            let t = ModelThread::new(&world, 2);
            let r2 = s.pass(&t, 0, 0, None);
            if h1.join().unwrap() {
                c.store(true, SeqCst);
            }
            crate::check!(r2.is_ok(), "the surviving party was not released: {r2:?}");
        });
        crashed.load(SeqCst)
    }

    /// A barrier of 3 parties; party 1 arrives and waits alone. Once it has
    /// arrived, the main thread resets the barrier (breaking that generation),
    /// then with `twice` aborts and resets again, so two generations end broken
    /// while party 1 may sleep through both (the word's "broken ends" count is
    /// what tells it). Party 1 must get `Broken` either way (CPython: `reset`
    /// breaks the waiters). Exhaustive.
    pub(super) fn reset_breaks_a_waiter<const M: u32>(twice: bool) {
        crate::testkit::loom(None).check(move || {
            let world = world();
            let b = Arc::new(RawBarrier::<Loom<M>>::new(3).unwrap());
            let h = {
                let (b, world) = (b.clone(), world.clone());
                loom::thread::spawn(move || b.wait(&ModelThread::new(&world, 1), None))
            };
            let t = ModelThread::new(&world, 2);
            while b.n_waiting() == 0 {
                loom::thread::yield_now();
            }
            b.reset(&t);
            if twice {
                b.abort(&t);
                b.reset(&t);
            }
            let r = h.join().unwrap();
            crate::check!(
                r == Err(BarrierError::Broken),
                "a waiter through {} reset(s) got {r:?}",
                if twice { 2 } else { 1 }
            );
            crate::check!(
                !b.broken() && b.n_waiting() == 0,
                "the barrier is not empty after reset"
            );
        });
    }

    #[test]
    fn loom_reset_breaks_a_waiter() {
        reset_breaks_a_waiter::<0>(false);
        reset_breaks_a_waiter::<0>(true);
    }

    /// The action fails: the last arrival (which ran it) gets `ActionFailed`,
    /// the other party `Broken`, and the barrier stays broken. Exhaustive.
    #[test]
    fn loom_failed_action_breaks_the_barrier() {
        crate::testkit::loom(None).check(|| {
            let world = world();
            let b = Arc::new(RawBarrier::<Loom>::new(2).unwrap());
            let h = {
                let (b, world) = (b.clone(), world.clone());
                loom::thread::spawn(move || {
                    b.wait_with(&ModelThread::new(&world, 1), None, || false)
                })
            };
            let mine = b.wait_with(&ModelThread::new(&world, 2), None, || false);
            let other = h.join().unwrap();
            crate::check!(
                matches!(
                    (&mine, &other),
                    (Err(BarrierError::ActionFailed), Err(BarrierError::Broken))
                        | (Err(BarrierError::Broken), Err(BarrierError::ActionFailed))
                ),
                "a failed action: {mine:?} and {other:?}"
            );
            crate::check!(
                b.broken(),
                "the barrier is not broken after a failed action"
            );
        });
    }

    #[test]
    fn loom_two_parties_two_rounds() {
        parties::<0>(2, 2, None);
    }

    #[test]
    fn loom_three_parties_bounded() {
        // Preemption bound 2: three threads, two rounds.
        parties::<0>(3, 2, Some(2));
    }

    #[test]
    fn loom_timeout_breaks_consistently() {
        timed::<0>();
    }

    #[test]
    fn loom_death_at_every_crash_point() {
        let points = every_crash_point(crash::<0>);
        assert!(points >= 1);
    }

    /// The action runs once per generation, after every arrival and before
    /// any release, and its writes are visible to all parties. Two parties,
    /// two rounds: exhaustive; three parties: preemption bound 2.
    #[test]
    fn loom_action_runs_once_before_release() {
        parties_with::<0>(2, 2, None, true);
        parties_with::<0>(3, 1, Some(2), true);
    }

    #[test]
    fn loom_catches_504_action_after_release() {
        // A released party reads the action's cell while the action writes it.
        assert!(fails_with("Causality violation", || parties_with::<
            { MUTANT_ACTION_AFTER_RELEASE.0 },
        >(
            2, 1, None, true
        )));
    }

    #[test]
    fn loom_catches_relaxed_arrival() {
        assert!(fails_with("Causality violation", || parties::<
            { MUTANT_RELAXED_ARRIVAL.0 },
        >(2, 1, None)));
    }

    #[test]
    fn loom_catches_missing_wake() {
        assert!(fails_with("deadlock", || parties::<{ MUTANT_NO_WAKE.0 }>(
            2, 1, None
        )));
    }

    #[test]
    fn loom_catches_racy_arrival() {
        assert!(fails_with("deadlock", || parties::<
            { MUTANT_ARRIVAL_STORE.0 },
        >(2, 1, None)));
    }
}

mod shuttle_checks {
    use super::*;
    use crate::shuttle_platform::{world, ModelThread, Shuttle};

    /// `THREADS` parties, `ROUNDS` generations; every generation releases every
    /// party exactly once, after all arrived, with indices 0..parties.
    pub(super) fn body<const M: u32>() {
        body_with::<M>(false)
    }

    /// [`body`] with `wait_with` and an action.
    pub(super) fn body_action<const M: u32>() {
        body_with::<M>(true)
    }

    fn body_with<const M: u32>(action: bool) {
        let world = world();
        let n = THREADS as u32;
        let s = Arc::new(if action {
            Shared::<Shuttle<M>>::with_action(n)
        } else {
            Shared::<Shuttle<M>>::new(n)
        });
        let hs: Vec<_> = (0..n)
            .map(|id| {
                let (s, world) = (s.clone(), world.clone());
                shuttle::thread::spawn(move || {
                    let t = ModelThread::new(&world, id + 1);
                    for r in 0..ROUNDS {
                        crate::check!(s.pass(&t, id as usize, r, None).is_ok(), "broken");
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        for r in 0..ROUNDS {
            s.round_complete(r);
        }
    }

    /// Four parties; in round 0 party 0 aborts instead of waiting, so the
    /// others all get `Broken`; the main thread resets; then one more round
    /// with a timed party: all released, or none.
    pub(super) fn abort_reset<const M: u32>() {
        let world = world();
        let s = Arc::new(Shared::<Shuttle<M>>::new(4));
        let hs: Vec<_> = (1..4u32)
            .map(|id| {
                let (s, world) = (s.clone(), world.clone());
                shuttle::thread::spawn(move || {
                    let t = ModelThread::new(&world, id + 1);
                    crate::check!(
                        s.pass(&t, id as usize, 0, None) == Err(BarrierError::Broken),
                        "passed an aborted barrier"
                    );
                })
            })
            .collect();
        let t = ModelThread::new(&world, 1);
        s.b.abort(&t);
        for h in hs {
            h.join().unwrap();
        }
        s.b.reset(&t);
        crate::check!(!s.b.broken() && s.b.n_waiting() == 0, "reset failed");
        let hs: Vec<_> = (1..4u32)
            .map(|id| {
                let (s, world) = (s.clone(), world.clone());
                shuttle::thread::spawn(move || {
                    let t = ModelThread::new(&world, id + 1);
                    let timeout = (id == 3).then(|| core::time::Duration::from_millis(1));
                    s.pass(&t, id as usize, 1, timeout)
                })
            })
            .collect();
        let mine = s.pass(&t, 0, 1, None);
        let all_ok = hs.into_iter().all(|h| h.join().unwrap().is_ok()) && mine.is_ok();
        if all_ok {
            s.round_complete(1);
        } else {
            crate::check!(s.released[1].load(SeqCst) == 0, "partly released");
        }
    }

    #[test]
    fn shuttle_random_five_parties() {
        shuttle::check_random(body::<0>, shuttle_iters());
    }

    #[test]
    fn shuttle_pct_five_parties() {
        shuttle::check_pct(body::<0>, shuttle_iters(), 3);
    }

    #[test]
    fn shuttle_five_parties_with_action() {
        shuttle::check_random(body_action::<0>, shuttle_iters());
        shuttle::check_pct(body_action::<0>, shuttle_iters(), 3);
    }

    #[test]
    fn shuttle_catches_504_action_after_release() {
        assert!(fails_with("the action", || shuttle::check_pct(
            body_action::<{ MUTANT_ACTION_AFTER_RELEASE.0 }>,
            shuttle_iters(),
            3
        )));
    }

    #[test]
    fn shuttle_abort_reset_timeout() {
        shuttle::check_random(abort_reset::<0>, shuttle_iters());
        shuttle::check_pct(abort_reset::<0>, shuttle_iters(), 3);
    }

    #[test]
    fn shuttle_catches_missing_wake() {
        assert!(fails_with("deadlock", || shuttle::check_pct(
            body::<{ MUTANT_NO_WAKE.0 }>,
            shuttle_iters(),
            3
        )));
    }

    #[test]
    fn shuttle_catches_racy_arrival() {
        assert!(fails_with("deadlock", || shuttle::check_random(
            body::<{ MUTANT_ARRIVAL_STORE.0 }>,
            shuttle_iters(),
        )));
    }
}

/// Single-threaded scenarios of what the concurrent checks do not look at.
mod unit {
    use super::*;
    use crate::loom_platform::{world, Loom, ModelThread};

    /// `Debug` shows the parties, the count, the generation and the broken flag
    /// as they change.
    #[test]
    fn debug_follows_the_word() {
        loom::model(|| {
            let world = world();
            let t = ModelThread::new(&world, 1);
            let show = |b: &RawBarrier<Loom>| format!("{b:?}");
            let three = RawBarrier::<Loom>::new(3).unwrap();
            assert_eq!(three.parties(), 3);
            assert_eq!(
                show(&three),
                "RawBarrier { parties: 3, count: 0, generation: 0, broken: false }"
            );
            let b = RawBarrier::<Loom>::new(1).unwrap();
            assert_eq!(
                show(&b),
                "RawBarrier { parties: 1, count: 0, generation: 0, broken: false }"
            );
            assert_eq!(b.wait(&t, None), Ok(0));
            assert_eq!(
                show(&b),
                "RawBarrier { parties: 1, count: 0, generation: 1, broken: false }"
            );
            // Resetting an empty, unbroken barrier changes nothing.
            b.reset(&t);
            assert_eq!(
                show(&b),
                "RawBarrier { parties: 1, count: 0, generation: 1, broken: false }"
            );
            b.abort(&t);
            assert_eq!(
                show(&b),
                "RawBarrier { parties: 1, count: 0, generation: 1, broken: true }"
            );
        });
    }
}
