//! The manager's joinable queue (`manager.JoinableQueue()`, a `queue.Queue`
//! in CPython's server): a FIFO queue whose `put`s each open a task that a
//! `task_done` closes; `join` waits until every task is closed. `put`, `get`,
//! `len` and `full` are the manager queue's ([`Obj::Queue`]); [`apply`] adds the
//! count of open tasks. [`apply_ext`] is the server's dispatch for the
//! objects of this module and of [`super::array`] (seeded, so that their
//! mutants reach the server the checks run).

use super::array::{self, ArrayOp};
use super::objects::{apply as apply_base, Obj, Step};
use super::protocol::{Bytes, ConnId, Op, OpError, Response, Wait};
use crate::platform::{mutant, Mutant, Seeded};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Seeded bug 721: the `task_done` that closes the last task changes the
/// count without waking the joiners (a lost wake-up: `join` sleeps forever).
#[doc(hidden)]
pub const MUTANT_TASK_DONE_NO_WAKE: Mutant = Mutant(721);
/// Seeded bug 722: a `put` does not open a task, so `join` returns before
/// the item is processed.
#[doc(hidden)]
pub const MUTANT_PUT_UNCOUNTED: Mutant = Mutant(722);
/// Seeded bug 906: only the ops listed by name reach the joinable queue's
/// items; any other queue op (`full()`) is answered for an empty unbounded
/// queue (the bug the session before this one shipped: `full()` was always
/// `false`).
#[doc(hidden)]
pub const MUTANT_QUEUE_OPS_BY_NAME: Mutant = Mutant(906);

/// An operation of a joinable queue besides the queue's own.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum JoinableOp {
    /// Close one task (`OpError::BadRequest("task_done() called too many
    /// times")` if none is open, CPython's `ValueError`).
    TaskDone,
    /// Wait until no task is open.
    Join(Wait),
    /// The number of open tasks.
    Unfinished,
}

/// A joinable queue's state.
#[derive(Debug, Clone, Default)]
pub struct JoinableState {
    /// The items.
    pub(super) q: VecDeque<Bytes>,
    /// The bound, in items (`None`: unbounded).
    pub(super) max: Option<u64>,
    /// Tasks opened by a `put` and not yet closed by a `task_done`.
    pub(super) unfinished: u64,
}

impl JoinableState {
    /// An empty queue with this bound.
    pub fn new(max: Option<u64>) -> Self {
        JoinableState {
            q: VecDeque::new(),
            max,
            unfinished: 0,
        }
    }
}

/// Apply `op` to a joinable queue on behalf of `conn`. Never panics; on
/// error the queue is unchanged.
pub fn apply<S: Seeded>(j: &mut JoinableState, conn: ConnId, op: Op) -> Step {
    match op {
        Op::Joinable(JoinableOp::TaskDone) => {
            if j.unfinished == 0 {
                return Step::Done(
                    Response::Err(OpError::BadRequest(
                        "task_done() called too many times".into(),
                    )),
                    false,
                );
            }
            j.unfinished -= 1;
            let wake = !(j.unfinished == 0 && mutant::<S>(MUTANT_TASK_DONE_NO_WAKE));
            Step::Done(Response::Ok, wake)
        }
        Op::Joinable(JoinableOp::Join(w)) => {
            if j.unfinished == 0 {
                Step::Done(Response::Ok, false)
            } else if w == Wait::No {
                Step::Done(Response::Err(OpError::Timeout), false)
            } else {
                Step::Block
            }
        }
        Op::Joinable(JoinableOp::Unfinished) => Step::Done(Response::Usize(j.unfinished), false),
        op @ (Op::Put(..) | Op::QGet(_) | Op::Len | Op::QFull) => {
            if matches!(op, Op::QFull) && mutant::<S>(MUTANT_QUEUE_OPS_BY_NAME) {
                return apply_base(&mut Obj::Queue(VecDeque::new(), None), conn, op);
            }
            let put = matches!(op, Op::Put(..));
            // The queue's own semantics, on the items moved in and back.
            let mut o = Obj::Queue(std::mem::take(&mut j.q), j.max);
            let step = apply_base(&mut o, conn, op);
            if let Obj::Queue(q, _) = o {
                j.q = q;
            }
            if put
                && matches!(step, Step::Done(Response::Ok, _))
                && !mutant::<S>(MUTANT_PUT_UNCOUNTED)
            {
                j.unfinished += 1;
            }
            step
        }
        // Not a queue op: the queue's own `WrongType` answer.
        op => apply_base(&mut Obj::Queue(VecDeque::new(), None), conn, op),
    }
}

/// The server's dispatch: the array and the joinable queue here, every
/// other object by [`super::objects::apply`].
pub fn apply_ext<S: Seeded>(obj: &mut Obj, conn: ConnId, op: Op) -> Step {
    match obj {
        Obj::Joinable(j) => apply::<S>(j, conn, op),
        Obj::Array(v) => {
            let a = match op {
                Op::Array(a) => a,
                Op::Len => ArrayOp::Len,
                op => return apply_base(&mut Obj::Array(Vec::new()), conn, op),
            };
            let (r, changed) = array::apply::<S>(v, a);
            Step::Done(r, changed)
        }
        obj => apply_base(obj, conn, op),
    }
}
