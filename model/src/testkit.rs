//! Helpers shared by the loom and shuttle checks (and the lock fuzz target).

use std::panic::{catch_unwind, AssertUnwindSafe};

/// Iterations for each shuttle `check_random` / `check_pct` run: the
/// `PROCSHARE_SHUTTLE_ITERS` environment variable, default 1000 (AWS projects use
/// 1,000–10,000; raise it for a long soak: `PROCSHARE_SHUTTLE_ITERS=20000 cargo test`).
pub fn shuttle_iters() -> usize {
    std::env::var("PROCSHARE_SHUTTLE_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000)
}

/// A loom builder with an explicit preemption bound (`None`: exhaustive).
/// Never sets `max_duration`/`max_permutations`: a cut-off exploration would
/// look like a pass.
pub fn loom(preemption_bound: Option<usize>) -> loom::model::Builder {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = preemption_bound;
    b
}

/// How [`shuttle_runs`] schedules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sched {
    /// Uniformly random choices at every step.
    Random,
    /// PCT (probabilistic concurrency testing) with bug depth 3.
    Pct,
}

/// Run `body` under shuttle `iters` times with schedules of kind `sched`,
/// giving it a flag that an execution sets when one of its threads died.
/// Returns the flag: whether any execution reached its crash point (what
/// [`every_crash_point`] asks).
pub fn shuttle_runs(
    sched: Sched,
    iters: usize,
    body: impl Fn(&std::sync::atomic::AtomicBool) + Send + Sync + 'static,
) -> bool {
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    use std::sync::Arc;
    let died = Arc::new(AtomicBool::new(false));
    let d = died.clone();
    let f = move || body(&d);
    match sched {
        Sched::Random => shuttle::check_random(f, iters),
        Sched::Pct => shuttle::check_pct(f, iters, 3),
    }
    died.load(SeqCst)
}

/// Run `f` and report whether it panicked (a checker found a bug). Used to prove
/// that each seeded mutant is caught.
pub fn fails(f: impl FnOnce()) -> bool {
    catch_unwind(AssertUnwindSafe(f)).is_err()
}

/// Run `check(k)` for crash step k = 1, 2, ... until a run in which no thread
/// reached step k (`check` returns whether any execution crashed). Returns the
/// number of crash points enumerated. Every crash point of the protocol is
/// therefore checked, not one chosen point.
pub fn every_crash_point(mut check: impl FnMut(u32) -> bool) -> u32 {
    let mut k = 1;
    while check(k) {
        k += 1;
        assert!(k < 1000, "unbounded number of crash points");
    }
    k - 1
}

/// Report a broken property from inside a model check: records `msg` (so that
/// [`fails_with`] can tell why a check failed even under shuttle, which replaces
/// a task's panic payload with its own) and panics with it.
pub fn violation(msg: &str) -> ! {
    let _ = VIOLATIONS.try_with(|v| v.borrow_mut().push(msg.to_string()));
    panic!("{msg}")
}

/// Assert a property inside a model check (see [`violation`]).
#[macro_export]
macro_rules! check {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            $crate::testkit::violation(&format!($($msg)+));
        }
    };
}

std::thread_local! {
    static VIOLATIONS: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Run `f` and report whether it panicked with a message containing `needle`
/// (e.g. `"deadlock"`, `"Causality violation"`, or a property reported through
/// [`check!`]), so that a mutant is shown caught *for the right reason*.
pub fn fails_with(needle: &str, f: impl FnOnce()) -> bool {
    fails_with_any(&[needle], f)
}

/// [`fails_with`] for a mutant whose failure depends on the schedule: the
/// panic message must contain one of `needles`.
pub fn fails_with_any(needles: &[&str], f: impl FnOnce()) -> bool {
    VIOLATIONS.with(|v| v.borrow_mut().clear());
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(()) => false,
        Err(p) => {
            let payload = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            let seen = VIOLATIONS.with(|v| v.borrow().join("\n"));
            assert!(
                needles
                    .iter()
                    .any(|n| payload.contains(n) || seen.contains(n)),
                "failed, but not with any of {needles:?}: {payload}\n{seen}"
            );
            true
        }
    }
}

/// The pacing check of a queue whose consumers pace themselves (the ring's
/// [Pacing](crate::ring#pacing), the slot queue's `pace`): one shuttle
/// thread gets 8 messages while the test puts messages from inside its
/// spins and lingers ([`ModelThread::on_spin`]), and each wait's steps and the
/// pace after each `get` must be these. A consumer that finds the next
/// message at its first spin lingers before its next wait; it goes on
/// lingering while batches form, and looks at once again after a linger
/// that found one message, or none.
///
/// `make` builds the queue; `put` puts one message, `get` gets one and checks
/// it; `pace` reads the pace hint (0 eager, 1 lazy).
///
/// [`ModelThread::on_spin`]: crate::shuttle_platform::ModelThread::on_spin
pub fn check_pacing<Q: Send + Sync + 'static>(
    make: fn() -> Q,
    put: fn(&Q, &crate::shuttle_platform::ModelThread),
    get: fn(&Q, &crate::shuttle_platform::ModelThread),
    pace: fn(&Q) -> u32,
) {
    use crate::checkers::Spun::{Linger, Spin};
    use crate::shuttle_platform::{world, ModelThread};
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};
    shuttle::check_random(
        move || {
            let w = world();
            let q = Arc::new(make());
            // Messages put at each spin or linger, in turn; the steps seen.
            let plan = Arc::new(Mutex::new(VecDeque::from([1, 3, 1, 0, 0, 1, 1, 0, 1])));
            let seen = Arc::new(Mutex::new(Vec::new()));
            let t = {
                let (q, plan, seen) = (q.clone(), plan.clone(), seen.clone());
                ModelThread::new(&w, 1).spins(8).on_spin(move |t, spun| {
                    seen.lock().unwrap().push(spun);
                    let n = plan.lock().unwrap().pop_front().expect("a spin more");
                    for _ in 0..n {
                        put(&q, t);
                    }
                })
            };
            let mut paces = Vec::new();
            for _ in 0..8 {
                get(&q, &t);
                paces.push(pace(&q));
            }
            assert_eq!(
                *seen.lock().unwrap(),
                [
                    Spin(0), // 1: found at the first spin: lazy
                    Linger,  // 2: three came while lingering: still lazy
                    Linger,  // 5 (3 and 4 waited for nothing): one came: eager
                    Spin(0), // 6: found at the third spin: eager
                    Spin(1),
                    Spin(2),
                    Spin(0), // 7: lazy
                    Linger,  // 8: none came while lingering, then one: eager
                    Spin(1),
                ]
            );
            assert_eq!(paces, [1, 1, 1, 1, 0, 0, 1, 0]);
            assert!(plan.lock().unwrap().is_empty());
        },
        1,
    );
}
