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
