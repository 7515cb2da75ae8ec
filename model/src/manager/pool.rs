//! A process pool living in the manager's server (CPython's
//! `SyncManager.Pool`): clients hand it work by the name of a function
//! registered on the server, and fetch the results by ticket.
//!
//! The pool itself (its workers, its dispatch) is a [`Runner`]: `procshare`
//! gives the server a real `Pool` forked from the server process; the checks
//! give it a model pool of checker threads. This module is the server's side:
//! the *hand-off step*, written once.
//!
//! A pool object is an [`Obj::Pool`](super::Obj::Pool) holding a
//! [`PoolCell`]: the runner and its ticket table (ticket -> [`Pending`]),
//! guarded by a lock of its own. For `Request::Op(id, Op::Pool(op))`:
//!
//! 1. under the server's table lock: find the pool and clone its cell (an
//!    `Arc`: a concurrent decref that frees the pool leaves the request its
//!    cell); the table lock is released;
//! 2. [`PoolOp::Submit`]: the runner takes the work ([`Runner::submit`]
//!    never waits for the work itself), then, under the ticket lock, the
//!    pending result gets the next ticket, which is the answer;
//! 3. [`PoolOp::Get`]: under the ticket lock, the ticket's pending result is
//!    cloned; the lock is released; *then* the request waits for the result.
//!    [`PoolOp::Apply`] and [`PoolOp::Map`] submit and wait the same way,
//!    without a ticket.
//!
//! So work running on the pool (and a client waiting for it) holds no lock:
//! the other objects, and other clients' submissions to the same pool, go on.
//! A result stays until its ticket is forgotten ([`PoolOp::Forget`], sent by
//! the client's result handle when dropped), or the pool is freed.
//!
//! Seeded bugs: 780 waits for a result with the ticket lock held (a client
//! waiting for a task that needs another client's submission deadlocks);
//! 781 runs the whole operation under the server's table lock (a task that
//! needs any other object's operation deadlocks).

use super::protocol::{Bytes, OpError, Response, Wait};
use super::server::ServerSync;
use crate::platform::{mutant, Mutant};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

/// Seeded bug 780: `Get` waits for the result under the pool's ticket lock.
#[doc(hidden)]
pub const MUTANT_WAIT_UNDER_TICKETS: Mutant = Mutant(780);
/// Seeded bug 781: the server runs a pool operation (and its wait) under its
/// table lock.
#[doc(hidden)]
pub const MUTANT_POOL_UNDER_TABLE: Mutant = Mutant(781);

/// An operation on a manager pool.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum PoolOp {
    /// Hand the encoded argument `.1` to the function registered as `.0`;
    /// answers `Usize(ticket)` (CPython's `apply_async`).
    Submit(String, Bytes),
    /// The result of ticket `.0`, waiting at most `.1`: `Item(result)`, the
    /// function's error, or `Timeout` if it is not in by then (it stays).
    Get(u64, Wait),
    /// Is ticket `.0`'s result in? `Bool`.
    Ready(u64),
    /// Forget ticket `.0` (its handle is gone). `Ok`, known or not.
    Forget(u64),
    /// Submit and wait, in one request (CPython's `apply`): `Item(result)`.
    Apply(String, Bytes),
    /// Submit each argument of `.1` to function `.0`, then wait for every
    /// result (CPython's `map`): `Items(results in order)`, or the first
    /// failed task's error.
    Map(String, Vec<Bytes>),
    /// Stop the pool now: unfinished work fails (CPython's `terminate`). `Ok`.
    Terminate,
}

/// A result not yet (or already) in: a submitted task.
pub trait Pending: Send + Sync + 'static {
    /// The result, waiting at most `w` for it: `None` if it is not in by
    /// then. Callable any number of times (the same result each time).
    fn wait(&self, w: Wait) -> Option<Result<Bytes, OpError>>;
}

/// The pool the server hands work to.
pub trait Runner: Send + Sync + 'static {
    /// Start `function(args)` on a worker; never waits for the work itself.
    /// [`OpError::UnknownFunction`] if no function is registered under that
    /// name; an error once the pool is terminated.
    fn submit(&self, function: &str, args: Bytes) -> Result<Arc<dyn Pending>, OpError>;
    /// Stop now: unfinished tasks fail, the workers exit.
    fn terminate(&self);
}

/// Makes the server's pools: `processes` workers (0: one per CPU).
pub type PoolFactory = Arc<dyn Fn(u64) -> Result<Arc<dyn Runner>, OpError> + Send + Sync>;

/// The tickets of one pool: the next one and the results not forgotten.
#[derive(Default)]
struct Tickets {
    next: u64,
    results: HashMap<u64, Arc<dyn Pending>>,
}

struct State<S: ServerSync> {
    runner: Arc<dyn Runner>,
    tickets: S::Mutex<Tickets>,
}

impl<S: ServerSync> Drop for State<S> {
    /// The pool is freed: its work stops (the runner's own `Drop`, which
    /// may join the workers, runs after the server dropped the table lock;
    /// see `Server::bury`).
    fn drop(&mut self) {
        self.runner.terminate();
    }
}

/// What a cell does, whatever the server's [`ServerSync`].
trait Step: Send + Sync {
    fn step(&self, op: PoolOp) -> Response;
}

/// A pool in the server's table.
#[derive(Clone)]
pub struct PoolCell(Arc<dyn Step>);

impl std::fmt::Debug for PoolCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PoolCell")
    }
}

impl PoolCell {
    /// A pool cell handing work to `runner`.
    pub(super) fn new<S: ServerSync>(runner: Arc<dyn Runner>) -> PoolCell {
        PoolCell(Arc::new(State::<S> {
            runner,
            tickets: S::mutex(Tickets::default()),
        }))
    }

    /// Apply `op` (the cell found and cloned under the table lock, which is
    /// released). Never panics.
    pub(super) fn step(&self, op: PoolOp) -> Response {
        self.0.step(op)
    }
}

fn answer(r: Option<Result<Bytes, OpError>>) -> Response {
    match r {
        Some(Ok(b)) => Response::Item(b),
        Some(Err(e)) => Response::Err(e),
        None => Response::Err(OpError::Timeout),
    }
}

impl<S: ServerSync> Step for State<S> {
    fn step(&self, op: PoolOp) -> Response {
        match op {
            PoolOp::Submit(f, args) => match self.runner.submit(&f, args) {
                Ok(p) => S::with(&self.tickets, |t| {
                    t.next += 1;
                    let id = t.next;
                    t.results.insert(id, p);
                    Response::Usize(id)
                }),
                Err(e) => Response::Err(e),
            },
            PoolOp::Get(id, w) => {
                if mutant::<S>(MUTANT_WAIT_UNDER_TICKETS) {
                    return S::with(&self.tickets, |t| match t.results.get(&id) {
                        Some(p) => answer(p.wait(w)),
                        None => Response::Err(unknown(id)),
                    });
                }
                let p = S::with(&self.tickets, |t| t.results.get(&id).cloned());
                match p {
                    Some(p) => answer(p.wait(w)),
                    None => Response::Err(unknown(id)),
                }
            }
            PoolOp::Ready(id) => {
                let p = S::with(&self.tickets, |t| t.results.get(&id).cloned());
                match p {
                    Some(p) => Response::Bool(p.wait(Wait::No).is_some()),
                    None => Response::Err(unknown(id)),
                }
            }
            PoolOp::Forget(id) => {
                // Dropped after the lock: a result's drop may be heavy.
                let gone = S::with(&self.tickets, |t| t.results.remove(&id));
                drop(gone);
                Response::Ok
            }
            PoolOp::Apply(f, args) => match self.runner.submit(&f, args) {
                Ok(p) => answer(p.wait(Wait::Forever)),
                Err(e) => Response::Err(e),
            },
            PoolOp::Map(f, args) => {
                let mut pending = Vec::with_capacity(args.len());
                for a in args {
                    match self.runner.submit(&f, a) {
                        Ok(p) => pending.push(p),
                        Err(e) => return Response::Err(e),
                    }
                }
                let mut out = Vec::with_capacity(pending.len());
                for p in pending {
                    match answer(p.wait(Wait::Forever)) {
                        Response::Item(b) => out.push(b),
                        r => return r,
                    }
                }
                Response::Items(out)
            }
            PoolOp::Terminate => {
                self.runner.terminate();
                Response::Ok
            }
        }
    }
}

fn unknown(id: u64) -> OpError {
    OpError::BadRequest(format!("no pool result with ticket {id} (forgotten?)"))
}
