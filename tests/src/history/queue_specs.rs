//! Sequential specification of `JoinableQueue` (a `Pipe` is checked
//! against [`super::specs::QueueSpec`]: `send` is `put`, `recv_timeout` is
//! `try_get`).

use std::collections::VecDeque;

use super::checker::{Op, Spec};
use super::specs::{allows, describe_ret, fifo_precedence, resolve_pending_gets, ret, QueueSpec};

/// `JoinableQueue<i64>`: a FIFO queue (as [`QueueSpec`], with the same
/// kinds, values unique and non-negative, and the same rule for a contended
/// `try_get` -> Empty, marked by [`super::specs::mark_contended`]) plus a
/// count of unfinished tasks: `put` adds one, `task_done` removes one (or
/// fails when none is unfinished), `join_timeout` returns 1 only if none was
/// unfinished at some instant of its call, 0 only if some was.
#[derive(Clone, Copy, Debug, Default)]
pub struct JoinableSpec {
    /// A deliberately broken variant: `put` does not count a task.
    pub put_uncounted: bool,
}

impl JoinableSpec {
    /// `put(v)`
    pub const PUT: u32 = QueueSpec::PUT;
    /// `get() -> v`
    pub const GET: u32 = QueueSpec::GET;
    /// `try_get() -> v | EMPTY`
    pub const TRY_GET: u32 = QueueSpec::TRY_GET;
    /// `task_done() -> 0 | TOO_MANY`
    pub const TASK_DONE: u32 = 3;
    /// `join_timeout(arg microseconds) -> 1 (all done) | 0 (timed out)`
    pub const JOIN: u32 = 4;
    /// The result of `try_get` on an empty queue.
    pub const EMPTY: i64 = QueueSpec::EMPTY;
    /// The result of a `task_done` with no unfinished task.
    pub const TOO_MANY: i64 = 1;

    fn is_get(op: &Op) -> bool {
        op.kind == Self::GET || op.kind == Self::TRY_GET
    }
}

impl Spec for JoinableSpec {
    /// The queue's items and the unfinished tasks.
    type State = (VecDeque<i64>, u32);
    fn init(&self) -> Self::State {
        (VecDeque::new(), 0)
    }
    fn step(&self, s: &Self::State, op: &Op) -> Option<Self::State> {
        let (q, n) = s;
        match op.kind {
            Self::PUT | Self::GET | Self::TRY_GET => {
                let q = QueueSpec::default().step(q, op)?;
                let n = if op.kind == Self::PUT && !self.put_uncounted {
                    n + 1
                } else {
                    *n
                };
                Some((q, n))
            }
            Self::TASK_DONE if *n > 0 => allows(op, 0).then(|| (q.clone(), n - 1)),
            Self::TASK_DONE => allows(op, Self::TOO_MANY).then(|| s.clone()),
            Self::JOIN => allows(op, i64::from(*n == 0)).then(|| s.clone()),
            _ => None,
        }
    }
    fn describe(&self, op: &Op) -> String {
        match (op.kind, ret(op)) {
            (Self::TASK_DONE, Some(Self::TOO_MANY)) => "task_done() -> too many".into(),
            (Self::TASK_DONE, _) => format!("task_done(){}", describe_ret(op)),
            (Self::JOIN, Some(1)) => format!("join_timeout({}us) -> all done", op.arg),
            (Self::JOIN, Some(0)) => format!("join_timeout({}us) -> timed out", op.arg),
            (Self::JOIN, _) => format!("join_timeout({}us){}", op.arg, describe_ret(op)),
            _ => QueueSpec::default().describe(op),
        }
    }
    /// FIFO orders as for [`QueueSpec`] (`task_done` and `join` take no
    /// part in them).
    fn precedence(&self, ops: &[Op]) -> Vec<Vec<usize>> {
        fifo_precedence(ops, |o| o.kind == Self::PUT, Self::is_get)
    }
    /// Indeterminate gets resolved as for [`QueueSpec`] (an indeterminate
    /// `put` is kept: had it taken effect, its task stays unfinished, which
    /// `join` sees).
    fn alternatives(&self, ops: &[Op]) -> Vec<Vec<Op>> {
        resolve_pending_gets(ops, |o| o.kind == Self::PUT, Self::is_get)
    }
}
