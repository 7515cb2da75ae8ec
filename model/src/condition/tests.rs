//! loom and shuttle checks of the condition variable, and proof that each
//! seeded mutant is caught.

use super::*;
use crate::platform::{CellLike, Platform};
use crate::testkit::{every_crash_point, fails_with, shuttle_iters, shuttle_runs, Sched};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::SeqCst};
use std::sync::Arc;

/// What the checks need from a lock besides [`CondLock`]: acquire (an `RLock`
/// twice, so that `wait` must release and restore two levels) and release.
trait TestLock<P: Platform>: CondLock<P> + Send + Sync + 'static {
    fn fresh() -> Self;
    fn enter(&self, t: &P::Thread) -> Acquired;
    fn leave(&self, t: &P::Thread);
}

impl<P: Platform> TestLock<P> for RawMutex<P> {
    fn fresh() -> Self {
        RawMutex::new()
    }
    fn enter(&self, t: &P::Thread) -> Acquired {
        self.reacquire(t, 1)
    }
    fn leave(&self, t: &P::Thread) {
        crate::check!(self.unlock(t).is_ok(), "the lock was not held on return");
    }
}

impl<P: Platform> TestLock<P> for RawRLock<P> {
    fn fresh() -> Self {
        RawRLock::new()
    }
    fn enter(&self, t: &P::Thread) -> Acquired {
        self.reacquire(t, 2)
    }
    fn leave(&self, t: &P::Thread) {
        crate::check!(
            self.count() == 2,
            "wait did not restore the recursion depth"
        );
        crate::check!(self.unlock(t).is_ok(), "the lock was not held on return");
        crate::check!(self.unlock(t).is_ok(), "the lock was not held on return");
    }
}

/// The condition, its lock, the predicate's data (a checker cell: loom
/// reports an access the lock does not order), and witnesses (std atomics,
/// invisible to the checkers): who registered, how many notifications were
/// issued, how many waiters returned notified, how many returned at all (a
/// waiter also returns, without a notification, when it recovers the lock
/// from a dead holder).
struct Shared<P: Platform, L> {
    c: RawCondition<P>,
    l: L,
    flag: P::Cell<u32>,
    registered: [AtomicBool; 8],
    issued: AtomicU32,
    returned: AtomicU32,
    ended: [AtomicBool; 8],
}

impl<P: Platform, L: TestLock<P>> Shared<P, L> {
    fn new() -> Self {
        Shared {
            c: RawCondition::new(),
            l: L::fresh(),
            flag: P::Cell::new(0),
            registered: Default::default(),
            issued: AtomicU32::new(0),
            returned: AtomicU32::new(0),
            ended: Default::default(),
        }
    }

    fn flag(&self) -> u32 {
        // SAFETY: the protocol under check grants this access (exclusive for a write, no writer for a read); loom reports a race if it does not.
        self.flag.with(|p| unsafe { *p })
    }

    fn set_flag(&self, v: u32) {
        // SAFETY: as in `flag`.
        self.flag.with_mut(|p| unsafe { *p = v });
    }

    /// The classic waiter: `with cond: while not flag: cond.wait()`. Stops
    /// early if the lock's holder died (then it cannot expect a notification).
    /// Returns whether it saw the flag.
    fn waiter(&self, t: &P::Thread, timeout: Option<Duration>) -> bool {
        if self.l.enter(t) == Acquired::OwnerDied {
            self.l.leave(t);
            return false;
        }
        let mut seen = true;
        while self.flag() == 0 {
            let w = self.c.wait(t, &self.l, timeout).unwrap();
            if w.acquired == Acquired::OwnerDied || (timeout.is_some() && !w.notified) {
                seen = self.flag() != 0;
                break;
            }
            crate::check!(
                w.notified,
                "a blocking wait returned without a notification"
            );
        }
        self.l.leave(t);
        seen
    }

    /// The classic notifier: `with cond: flag = 1; cond.notify()`.
    fn notifier(&self, t: &P::Thread) {
        self.l.enter(t);
        self.set_flag(1);
        self.c.notify(t, &self.l, 1).unwrap();
        self.l.leave(t);
    }

    /// A notifier that died before it held the lock (its crash point after
    /// announcing itself on the lock word) never notified and cannot be
    /// detected through the lock: the waiters rightly wait for another
    /// notifier. This is it (another process, `t`). A notifier that died
    /// holding the lock is left to the waiters to detect.
    fn rescue_if_never_held(&self, died: bool, t: &P::Thread) {
        // The dead notifier ran on this checker thread: this load sees its
        // last write to the lock word, or a later one.
        if died && self.l.holder() != Some(1) {
            self.notifier(t);
        }
    }

    /// Wait (spinning on the lock) until `ready()` holds, lock held on return.
    fn lock_when(&self, t: &P::Thread, yield_now: fn(), ready: impl Fn() -> bool) {
        loop {
            self.l.enter(t);
            if ready() {
                return;
            }
            self.l.leave(t);
            yield_now();
        }
    }

    /// A waiter that registers (witness `registered[i]`) and waits once.
    fn wait_once(&self, t: &P::Thread, i: usize, deaths_allowed: u32) {
        self.l.enter(t);
        self.registered[i].store(true, SeqCst);
        let w = self.c.wait(t, &self.l, None).unwrap();
        self.ended[i].store(true, SeqCst);
        if w.acquired == Acquired::Clean {
            crate::check!(
                w.notified,
                "a blocking wait returned without a notification"
            );
        }
        if w.notified {
            let n = self.returned.fetch_add(1, SeqCst) + 1;
            crate::check!(
                n <= self.issued.load(SeqCst) + deaths_allowed,
                "more waiters released than notified"
            );
        }
        self.l.leave(t);
    }

    /// A waiter that arrives after a notification: a timed wait (under a
    /// checker it times out at once) must not take that notification.
    fn late_waiter(&self, t: &P::Thread) {
        self.l.enter(t);
        let w = self
            .c
            .wait(t, &self.l, Some(Duration::from_millis(1)))
            .unwrap();
        crate::check!(
            !w.notified,
            "a waiter that arrived after notify(1) took the notification"
        );
        self.l.leave(t);
    }
}

mod loom_checks {
    use super::*;
    use crate::loom_platform::{run, world, yield_now, Loom, ModelThread};

    /// The preemption bound of every loom check here: a wait is five lock
    /// operations and a sleep, so the unbounded exploration of even the
    /// two-thread pair takes ~20 s, and ~2 min per crash-point sweep.
    const BOUND: usize = 3;

    /// A notifier (thread 1; dies at its `crash`-th crash point if given) and
    /// the classic waiter (main; timed if `timed`, its n-th wait spurious if
    /// `spurious`). Two threads, exhaustive. Afterwards nothing is left
    /// pending or counted. Returns whether the notifier died.
    pub(super) fn pair<const M: u32, L: TestLock<Loom<M>>>(
        timed: bool,
        spurious: Option<u32>,
        crash: Option<u32>,
    ) -> bool {
        let crashed = Arc::new(AtomicBool::new(false));
        let c = crashed.clone();
        crate::testkit::loom(Some(BOUND)).check(move || {
            let world = world();
            let s = Arc::new(Shared::<Loom<M>, L>::new());
            let h = {
                let (s, world) = (s.clone(), world.clone());
                loom::thread::spawn(move || {
                    let t = ModelThread::new(&world, 1).crash_at(crash);
                    let died = run(&t, |t| s.notifier(t));
                    s.rescue_if_never_held(died, &ModelThread::new(&world, 3));
                    died
                })
            };
            let t = ModelThread::new(&world, 2).spurious_at(spurious);
            let timeout = timed.then(|| Duration::from_millis(1));
            let seen = s.waiter(&t, timeout);
            let died = h.join().unwrap();
            if died {
                c.store(true, SeqCst);
            }
            crate::check!(
                seen || timed || died,
                "the waiter returned without the notification"
            );
            // Everyone is gone: nothing left counted. (A notifier that died
            // between its store of the state and its `seq += 1` left its
            // notification half made: the waiter that recovers the lock
            // completes it and takes it.)
            crate::check!(s.c.pending() == 0, "a notification was left pending");
            crate::check!(s.c.waiting() == 0, "a waiter was left counted");
        });
        crashed.load(SeqCst)
    }

    /// A waiter (thread 1) waits; the main thread notifies once it waits,
    /// then waits itself with a timeout: it arrived after the notification
    /// and must not take it (thread 1 would sleep forever). Two threads,
    /// exhaustive.
    pub(super) fn stolen<const M: u32>() {
        crate::testkit::loom(Some(BOUND)).check(move || {
            let world = world();
            let s = Arc::new(Shared::<Loom<M>, RawMutex<Loom<M>>>::new());
            let h = {
                let (s, world) = (s.clone(), world.clone());
                loom::thread::spawn(move || {
                    let t = ModelThread::new(&world, 1);
                    s.issued.store(1, SeqCst);
                    s.wait_once(&t, 0, 0);
                })
            };
            let t = ModelThread::new(&world, 2);
            s.lock_when(&t, yield_now, || s.registered[0].load(SeqCst));
            crate::check!(s.c.notify(&t, &s.l, 1) == Ok(1), "notify released nobody");
            s.l.leave(&t);
            s.late_waiter(&t);
            h.join().unwrap();
        });
    }

    /// A waiter (thread 1) dies at its `k`-th crash point; the main thread
    /// notifies once it waits (or died), then the condition must still work:
    /// a new waiter (thread 3, started after thread 1 ended) is notified.
    /// At most two threads at a time, exhaustive. Returns whether thread 1 died.
    pub(super) fn waiter_dies<const M: u32>(k: u32) -> bool {
        let crashed = Arc::new(AtomicBool::new(false));
        let c = crashed.clone();
        crate::testkit::loom(Some(BOUND)).check(move || {
            let world = world();
            let s = Arc::new(Shared::<Loom<M>, RawMutex<Loom<M>>>::new());
            s.issued.store(1, SeqCst);
            let h = {
                let (s, world) = (s.clone(), world.clone());
                loom::thread::spawn(move || {
                    let t = ModelThread::new(&world, 1).crash_at(Some(k));
                    run(&t, |t| s.wait_once(t, 0, 0))
                })
            };
            let t = ModelThread::new(&world, 2);
            s.lock_when(&t, yield_now, || {
                s.registered[0].load(SeqCst) || world.is_dead(1)
            });
            s.c.notify(&t, &s.l, 1).unwrap();
            s.l.leave(&t);
            if h.join().unwrap() {
                c.store(true, SeqCst);
            }
            // Still usable: a new waiter is notified (perhaps spuriously,
            // by the dead waiter's notification: allowed one extra).
            s.issued.store(2, SeqCst);
            let h3 = {
                let (s, world) = (s.clone(), world.clone());
                loom::thread::spawn(move || {
                    let t = ModelThread::new(&world, 3);
                    s.wait_once(&t, 1, 1);
                })
            };
            s.lock_when(&t, yield_now, || s.registered[1].load(SeqCst));
            s.c.notify(&t, &s.l, 1).unwrap();
            s.l.leave(&t);
            h3.join().unwrap();
        });
        crashed.load(SeqCst)
    }

    #[test]
    fn loom_notify_wakes_waiter_lock() {
        pair::<0, RawMutex<Loom>>(false, None, None);
    }

    #[test]
    fn loom_notify_wakes_waiter_rlock() {
        pair::<0, RawRLock<Loom>>(false, None, None);
    }

    #[test]
    fn loom_timed_wait() {
        pair::<0, RawMutex<Loom>>(true, None, None);
    }

    #[test]
    fn loom_spurious_wakeups_at_every_wait() {
        for n in 1..=3 {
            pair::<0, RawMutex<Loom>>(false, Some(n), None);
        }
    }

    #[test]
    fn loom_no_stolen_wakeup() {
        stolen::<0>();
    }

    #[test]
    fn loom_notifier_death_at_every_crash_point() {
        let points = every_crash_point(|k| pair::<0, RawMutex<Loom>>(false, None, Some(k)));
        assert!(
            points >= 4,
            "expected at least 4 crash points, found {points}"
        );
    }

    #[test]
    fn loom_notifier_death_at_every_crash_point_rlock() {
        let points = every_crash_point(|k| pair::<0, RawRLock<Loom>>(false, None, Some(k)));
        assert!(
            points >= 4,
            "expected at least 4 crash points, found {points}"
        );
    }

    #[test]
    fn loom_waiter_death_at_every_crash_point() {
        let points = every_crash_point(waiter_dies::<0>);
        assert!(
            points >= 5,
            "expected at least 5 crash points, found {points}"
        );
    }

    #[test]
    fn loom_catches_1001_seq_read_after_unlock() {
        assert!(fails_with("deadlock", || {
            pair::<{ MUTANT_SEQ_AFTER_UNLOCK.0 }, RawMutex<Loom<{ MUTANT_SEQ_AFTER_UNLOCK.0 }>>>(
                false, None, None,
            );
        }));
    }

    #[test]
    fn loom_catches_1002_stolen_wakeup() {
        assert!(fails_with("took the notification", || {
            stolen::<{ MUTANT_STEAL.0 }>();
        }));
    }

    #[test]
    fn loom_catches_1003_missing_wake() {
        assert!(fails_with("deadlock", || {
            pair::<{ MUTANT_NO_WAKE.0 }, RawMutex<Loom<{ MUTANT_NO_WAKE.0 }>>>(false, None, None);
        }));
    }

    #[test]
    fn loom_catches_1004_dead_holder_ignored() {
        assert!(fails_with("deadlock", || {
            every_crash_point(|k| {
                pair::<{ MUTANT_NO_OWNER_CHECK.0 }, RawMutex<Loom<{ MUTANT_NO_OWNER_CHECK.0 }>>>(
                    false,
                    None,
                    Some(k),
                )
            });
        }));
    }

    #[test]
    fn loom_catches_1005_half_made_notification_left() {
        assert!(fails_with("a notification was left pending", || {
            every_crash_point(|k| {
                pair::<{ MUTANT_NO_REPAIR.0 }, RawMutex<Loom<{ MUTANT_NO_REPAIR.0 }>>>(
                    false,
                    None,
                    Some(k),
                )
            });
        }));
    }

    #[test]
    fn loom_waiter_death_check_catches_1001() {
        assert!(fails_with("deadlock", || {
            every_crash_point(waiter_dies::<{ MUTANT_SEQ_AFTER_UNLOCK.0 }>);
        }));
    }
}

mod shuttle_checks {
    use super::*;
    use crate::shuttle_platform::{run, world, yield_now, ModelThread, Shuttle};

    const WAITERS: usize = 4;

    /// `WAITERS` waiters (thread 1 dies at its `crash`-th crash point if
    /// given) wait once each; the main thread, once all wait (or died),
    /// notifies 1, checks that a waiter that arrives later does not take it,
    /// waits until it was taken (by a live waiter, or by thread 1 before it
    /// died), notifies 2 more, then all. Witnesses: no more waiters return
    /// than were notified (one more per death), and every live one returns.
    pub(super) fn body<const M: u32>(crash: Option<u32>, died_seen: &AtomicBool) {
        type L<const M: u32> = RawRLock<Shuttle<M>>;
        let world = world();
        let s = Arc::new(Shared::<Shuttle<M>, L<M>>::new());
        let allowance = crash.is_some() as u32;
        let hs: Vec<_> = (0..WAITERS)
            .map(|i| {
                let (s, world) = (s.clone(), world.clone());
                shuttle::thread::spawn(move || {
                    let id = i as u32 + 1;
                    let t =
                        ModelThread::new(&world, id).crash_at(if id == 1 { crash } else { None });
                    run(&t, |t| s.wait_once(t, i, allowance))
                })
            })
            .collect();
        let t = ModelThread::new(&world, 10);
        let gone = |s: &Shared<Shuttle<M>, L<M>>, i: usize| {
            s.registered[i].load(SeqCst) || world.is_dead(i as u32 + 1)
        };
        s.lock_when(&t, yield_now, || (0..WAITERS).all(|i| gone(&s, i)));
        s.issued.store(1, SeqCst);
        s.c.notify(&t, &s.l, 1).unwrap();
        s.l.leave(&t);
        // A late waiter must not take it.
        let late = {
            let (s, world) = (s.clone(), world.clone());
            shuttle::thread::spawn(move || s.late_waiter(&ModelThread::new(&world, 20)))
        };
        late.join().unwrap();
        // notify(1) is not swallowed: a live waiter takes it, unless thread 1
        // took it before it died.
        s.lock_when(&t, yield_now, || {
            s.returned.load(SeqCst) >= 1 || (world.is_dead(1) && s.c.pending() == 0)
        });
        s.issued.store(3, SeqCst);
        s.c.notify(&t, &s.l, 2).unwrap();
        s.l.leave(&t);
        s.l.enter(&t);
        s.issued.store(WAITERS as u32, SeqCst);
        s.c.notify_all(&t, &s.l).unwrap();
        s.l.leave(&t);
        for (i, h) in hs.into_iter().enumerate() {
            if h.join().unwrap() {
                died_seen.store(true, SeqCst);
            } else {
                crate::check!(s.ended[i].load(SeqCst), "a live waiter was not released");
            }
        }
    }

    fn random<const M: u32>(crash: Option<u32>) -> bool {
        shuttle_runs(Sched::Random, shuttle_iters(), move |d| body::<M>(crash, d))
    }

    fn pct<const M: u32>(crash: Option<u32>) -> bool {
        shuttle_runs(Sched::Pct, shuttle_iters(), move |d| body::<M>(crash, d))
    }

    #[test]
    fn shuttle_random_four_waiters() {
        random::<0>(None);
    }

    #[test]
    fn shuttle_pct_four_waiters() {
        pct::<0>(None);
    }

    #[test]
    fn shuttle_waiter_death_at_every_crash_point() {
        let points = every_crash_point(|k| pct::<0>(Some(k)));
        assert!(
            points >= 5,
            "expected at least 5 crash points, found {points}"
        );
    }

    #[test]
    fn shuttle_catches_1002_stolen_wakeup() {
        assert!(fails_with("took the notification", || {
            random::<{ MUTANT_STEAL.0 }>(None);
        }));
    }

    /// The schedule text of a shuttle failure: shuttle's default
    /// `FailurePersistence::Print` puts it in the failure's message between
    /// `failing schedule:` and `pass that string to shuttle::replay`.
    fn failing_schedule(f: impl FnOnce()) -> String {
        let p = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
            .expect_err("the mutant was not caught");
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        let start = msg
            .find("failing schedule:")
            .unwrap_or_else(|| panic!("no schedule in the failure: {msg}"));
        let rest = &msg[start..];
        let open = rest.find('"').expect("schedule opens with a quote") + 1;
        let close = open
            + rest[open..]
                .find('"')
                .expect("schedule closes with a quote");
        rest[open..close].trim().to_string()
    }

    /// A shuttle failure prints the schedule that reproduces it, and
    /// `shuttle::replay` of that schedule fails again for the same reason
    /// (the stolen wake-up of mutant 1002: `fails_with` checks the reason, so
    /// a replay that diverged from the schedule would not count).
    #[test]
    fn shuttle_failure_replays_from_its_printed_schedule() {
        let schedule = failing_schedule(|| {
            random::<{ MUTANT_STEAL.0 }>(None);
        });
        assert!(!schedule.is_empty());
        assert!(fails_with("took the notification", || {
            let d = AtomicBool::new(false);
            shuttle::replay(move || body::<{ MUTANT_STEAL.0 }>(None, &d), &schedule);
        }));
    }

    #[test]
    fn shuttle_catches_1001_lost_notification() {
        assert!(fails_with("deadlock", || {
            pct::<{ MUTANT_SEQ_AFTER_UNLOCK.0 }>(None);
        }));
    }
}

/// Single-threaded scenarios of the condition's state word, accessors, error
/// paths and notification counts, which the concurrent checks above do not
/// look at (found by `scripts/mutants`: each test here fails under a mutant
/// of `condition.rs` that the checks above let pass).
mod unit {
    use super::*;
    use crate::loom_platform::{world, Loom, ModelThread};

    type C = RawCondition<Loom>;

    fn st(pending: u32, eligible: u32, late: u32, parity: bool) -> State {
        State {
            pending,
            eligible,
            late,
            parity,
        }
    }

    /// The state word as stored.
    fn state(c: &C) -> State {
        State::unpack(c.state.load(Relaxed))
    }

    /// Runs `f` in a loom model, on a model thread that holds a fresh mutex
    /// throughout (released after `f`).
    fn with_lock_held(f: fn(&ModelThread, &RawMutex<Loom>)) {
        loom::model(move || {
            let world = world();
            let t = ModelThread::new(&world, 5);
            let l = RawMutex::<Loom>::new();
            l.enter(&t);
            f(&t, &l);
            l.leave(&t);
        });
    }

    /// Store a state and a `seq` (as a run of the protocol could have left them).
    fn set(c: &C, s: State, seq: u32) {
        c.state.store(s.pack(), Relaxed);
        c.seq.store(seq, Relaxed);
    }

    /// The layout table's bits: each field where the table says, and back.
    #[test]
    fn the_state_word_keeps_each_field_in_its_bits() {
        assert_eq!(MAX_WAITERS, (1 << 21) - 1);
        assert_eq!(
            st(1, 2, 3, true).pack(),
            1 | 2 << 21 | 3 << 42 | 1 << 63,
            "a field out of its bits"
        );
        let m = MAX_WAITERS;
        for s in [
            st(m, 0, 0, false),
            st(0, m, 0, false),
            st(0, 0, m, false),
            st(0, 0, 0, true),
            st(m, m, m, true),
            st(5, m - 1, 7, false),
        ] {
            assert_eq!(State::unpack(s.pack()), s, "{s:?} does not round-trip");
        }
        // A count beyond the field saturates rather than spilling over.
        assert_eq!(
            State::unpack(st(m + 5, 1, 0, false).pack()),
            st(m, 1, 0, false)
        );
    }

    #[test]
    fn waiting_pending_and_debug_read_the_state_word() {
        loom::model(|| {
            let c = C::new();
            assert_eq!((c.waiting(), c.pending()), (0, 0));
            assert_eq!(
                format!("{c:?}"),
                "RawCondition { pending: 0, eligible: 0, late: 0, seq: 0 }"
            );
            // 5 eligible waiters, 2 of them with a notification to take, 1 late.
            set(&c, st(2, 5, 1, true), 7);
            assert_eq!((c.waiting(), c.pending()), (4, 2));
            assert_eq!(
                format!("{c:?}"),
                "RawCondition { pending: 2, eligible: 5, late: 1, seq: 7 }"
            );
        });
    }

    /// wait, wait_for and notify by a thread that does not hold the lock
    /// (free, or another's) are refused, and change nothing; `holder` names
    /// the holder.
    fn refused_without_the_lock<L: TestLock<Loom>>() {
        loom::model(|| {
            let world = world();
            let (t, u) = (ModelThread::new(&world, 5), ModelThread::new(&world, 6));
            let (c, l) = (C::new(), L::fresh());
            let ms = Some(Duration::from_millis(1));
            for holder in [None, Some(&u)] {
                if let Some(u) = holder {
                    l.enter(u);
                }
                assert_eq!(l.holder(), holder.map(|u| u.id()));
                assert!(!l.held_by(&t));
                assert_eq!(c.wait(&t, &l, ms), Err(CondError::NotOwner));
                assert_eq!(c.wait(&t, &l, None), Err(CondError::NotOwner));
                let mut asked = false;
                let r = c.wait_for(&t, &l, ms, || {
                    asked = true;
                    true
                });
                assert_eq!(r, Err(CondError::NotOwner));
                assert!(!asked, "the predicate was evaluated without the lock");
                assert_eq!(c.notify(&t, &l, 1), Err(CondError::NotOwner));
                assert_eq!(c.notify_all(&t, &l), Err(CondError::NotOwner));
                assert_eq!((c.state.load(Relaxed), c.seq.load(Relaxed)), (0, 0));
                assert_eq!(l.holder(), holder.map(|u| u.id()), "the lock changed hands");
            }
            l.leave(&u);
            assert_eq!(l.holder(), None);
        });
    }

    #[test]
    fn calls_without_the_lock_are_refused_lock() {
        refused_without_the_lock::<RawMutex<Loom>>();
    }

    #[test]
    fn calls_without_the_lock_are_refused_rlock() {
        refused_without_the_lock::<RawRLock<Loom>>();
    }

    /// A wait that would count a `MAX_WAITERS + 1`-th waiter is refused (the
    /// lock still held, nothing changed); one below the limit waits.
    #[test]
    fn too_many_waiters_is_refused_at_the_limit() {
        with_lock_held(|t, l| {
            let c = C::new();
            let ms = Some(Duration::from_millis(1));
            let m = MAX_WAITERS;
            for full in [
                st(0, m - 1, 1, false),
                st(0, 0, m, false),
                st(1, m, 0, false),
            ] {
                set(&c, full, 0);
                assert_eq!(c.wait(t, l, ms), Err(CondError::TooManyWaiters), "{full:?}");
                assert_eq!((state(&c), l.held_by(t)), (full, true));
            }
            let below = st(0, m - 2, 1, false);
            set(&c, below, 0);
            let w = c.wait(t, l, ms).unwrap();
            assert_eq!((w.notified, w.acquired), (false, Acquired::Clean));
            assert_eq!((state(&c), l.held_by(t)), (below, true));
        });
    }

    /// wait_for asks the predicate before it waits (true: returns at once,
    /// nothing registered) and once more when the wait times out, and says
    /// the lock was re-acquired cleanly.
    #[test]
    fn wait_for_asks_first_and_once_more_at_the_deadline() {
        with_lock_held(|t, l| {
            let c = C::new();
            let ms = Some(Duration::from_millis(1));
            let clean = |notified| {
                Ok(Waited {
                    notified,
                    acquired: Acquired::Clean,
                })
            };
            assert_eq!(c.wait_for(t, l, ms, || true), clean(true));
            assert_eq!((c.state.load(Relaxed), c.seq.load(Relaxed)), (0, 0));
            // True from its third evaluation on: the timed wait ends with the
            // second (false), not a third.
            let mut asked = 0;
            let r = c.wait_for(t, l, ms, || {
                asked += 1;
                asked >= 3
            });
            assert_eq!((r, asked), (clean(false), 2));
            assert_eq!((c.state.load(Relaxed), l.held_by(t)), (0, true));
        });
    }

    /// notify(n) releases at most the waiters without a notification (and
    /// says how many), moves the late waiters to the eligible, and makes its
    /// notification effective (`seq` advanced, its parity in the word) from
    /// any `seq`, across the wrap.
    #[test]
    fn notify_releases_at_most_the_waiters_and_keeps_the_parity() {
        with_lock_held(|t, l| {
            for seq in [0, 1, 2, u32::MAX] {
                let c = C::new();
                let odd = |n: u32| n & 1 == 1;
                set(&c, st(0, 0, 3, odd(seq)), seq);
                assert_eq!(c.notify(t, l, 0), Ok(0));
                assert_eq!(
                    (state(&c), c.seq.load(Relaxed)),
                    (st(0, 0, 3, odd(seq)), seq)
                );
                let s1 = seq.wrapping_add(1);
                assert_eq!(c.notify(t, l, 2), Ok(2), "seq {seq}");
                assert_eq!((state(&c), c.seq.load(Relaxed)), (st(2, 3, 0, odd(s1)), s1));
                let s2 = seq.wrapping_add(2);
                assert_eq!(c.notify(t, l, 5), Ok(1), "seq {seq}");
                assert_eq!((state(&c), c.seq.load(Relaxed)), (st(3, 3, 0, odd(s2)), s2));
                assert_eq!(c.notify(t, l, 1), Ok(0), "nobody left to release");
                assert_eq!(c.notify_all(t, l), Ok(0), "nobody left to release");
                assert_eq!((state(&c), c.seq.load(Relaxed)), (st(3, 3, 0, odd(s2)), s2));
                // Two more arrive: notify_all releases them.
                set(&c, st(3, 3, 2, odd(s2)), s2);
                let s3 = seq.wrapping_add(3);
                assert_eq!(c.notify_all(t, l), Ok(2), "seq {seq}");
                assert_eq!((state(&c), c.seq.load(Relaxed)), (st(5, 5, 0, odd(s3)), s3));
            }
        });
    }

    /// A notifier that died between its store of the state and its increment
    /// of `seq` left the parities different: the next holder completes that
    /// notification (once) before anything else; a state whose parity matches
    /// `seq` is left alone.
    #[test]
    fn a_half_made_notification_is_completed_once() {
        with_lock_held(|t, l| {
            for seq in [0, 1, 2, 3, u32::MAX] {
                let c = C::new();
                let odd = |n: u32| n & 1 == 1;
                // Complete: nothing to repair (notify finds nobody to release).
                set(&c, st(1, 1, 0, odd(seq)), seq);
                assert_eq!(c.notify(t, l, 1), Ok(0));
                assert_eq!(c.seq.load(Relaxed), seq, "repaired a complete notification");
                // Half made (the state written for `seq + 1`): completed once.
                let half = st(1, 1, 0, !odd(seq));
                set(&c, half, seq);
                assert_eq!(c.notify(t, l, 1), Ok(0));
                assert_eq!(c.notify(t, l, 1), Ok(0));
                assert_eq!(
                    (state(&c), c.seq.load(Relaxed)),
                    (half, seq.wrapping_add(1))
                );
                // A waiter registering after it is not eligible for it.
                set(&c, half, seq);
                let w = c.wait(t, l, Some(Duration::from_millis(1))).unwrap();
                assert!(!w.notified, "took a notification made before it waited");
                assert_eq!(
                    (state(&c), c.seq.load(Relaxed)),
                    (half, seq.wrapping_add(1))
                );
            }
        });
    }
}
