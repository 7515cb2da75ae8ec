//! Seeded bugs in the shipped code, for the real-process history tests
//! (`tests/tests/history_*.rs`): each shows that the linearizability checker
//! catches a real bug in real processes, not only a broken specification.
//! Only with the `history-mutants` feature, and off until a process turns
//! one on with [`set`] (the tests do so in a forked child, so only that
//! process runs the bug). Not API.

use core::sync::atomic::{AtomicU32, Ordering::Relaxed};

/// No seeded bug (the default).
pub const NONE: u32 = 0;
/// `RLock::release` at depth 2 or more drops two levels instead of one.
pub const RLOCK_RELEASE_DROPS_TWO: u32 = 1;
/// `JoinableQueue::task_done` returns `Ok` without counting every fourth call
/// (a skipped decrement of the unfinished tasks).
pub const JOINABLE_SKIPS_TASK_DONE: u32 = 2;

static ACTIVE: AtomicU32 = AtomicU32::new(NONE);

/// Turns on seeded bug `m` in this process (and the children it forks
/// afterwards); [`NONE`] turns it off.
pub fn set(m: u32) {
    ACTIVE.store(m, Relaxed);
}

/// Is seeded bug `m` on in this process?
pub(crate) fn active(m: u32) -> bool {
    ACTIVE.load(Relaxed) == m
}
