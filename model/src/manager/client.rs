//! The client side of the operations that take several requests: a condition
//! wait (and `wait_for`), a barrier wait and a list sort. Each is written once here, generic
//! over a [`Requester`] (how a request reaches the server): `procshare` calls
//! these very functions over its socket connection, the checks call them over
//! the model's in-process server, with every timeout branch exercised.

use super::protocol::{Bytes, Op, OpError, Response, Wait};
use crate::platform::{mutant, Mutant, Seeded};
use std::marker::PhantomData;

/// Seeded bug 704: a condition wait whose sleep timed out returns without
/// taking the lock again (the caller believes it holds a lock it does not).
#[doc(hidden)]
pub const MUTANT_COND_NO_REACQUIRE: Mutant = Mutant(704);
/// Seeded bug 705: a barrier wait that timed out reports the barrier broken
/// without breaking it: a party arriving later passes alone, so the parties of
/// one generation disagree on whether it passed.
#[doc(hidden)]
pub const MUTANT_BARRIER_NO_ABORT: Mutant = Mutant(705);
/// Seeded bug 706: a sort whose write-back met a concurrent change gives up
/// silently instead of retrying (the list is left unsorted).
#[doc(hidden)]
pub const MUTANT_SORT_NO_RETRY: Mutant = Mutant(706);

/// Why a client sequence failed, before the requester's own error type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    /// The server refused a request.
    Op(OpError),
    /// The server answered something that does not fit the request.
    Unexpected(Response),
}

/// How a client issues requests about one object to the server.
pub trait Requester {
    /// A failed request (the connection broke, ...), or a [`ClientError`].
    type Error: From<ClientError>;
    /// The seeded bug the sequences run with (checks only).
    #[doc(hidden)]
    const MUTANT: Mutant = Mutant::NONE;
    /// Apply `op` to the object; the server's answer as it came
    /// ([`Response::Err`] included).
    fn request(&self, op: Op) -> Result<Response, Self::Error>;
}

/// The [`Seeded`] choice of a [`Requester`].
struct Of<C>(PhantomData<C>);

impl<C: Requester> Seeded for Of<C> {
    const MUTANT: Mutant = C::MUTANT;
}

/// The error for an answer that is not the expected one.
fn fail<E: From<ClientError>>(r: Response) -> E {
    match r {
        Response::Err(e) => ClientError::Op(e).into(),
        r => ClientError::Unexpected(r).into(),
    }
}

fn flag<E: From<ClientError>>(r: Response) -> Result<bool, E> {
    match r {
        Response::Bool(b) => Ok(b),
        r => Err(fail(r)),
    }
}

/// Condition wait (the caller holds the condition's lock): release the lock,
/// sleep until notified or until `w` passes, take the lock again at the same
/// depth. Returns whether this waiter was notified; the lock is held again
/// either way (Python's `Condition.wait`).
pub fn condition_wait<C: Requester>(c: &C, w: Wait) -> Result<bool, C::Error> {
    let (ticket, depth) = match c.request(Op::CondEnter)? {
        Response::Arrived(t, d) => (t, d),
        r => return Err(fail(r)),
    };
    match c.request(Op::CondSleep(ticket, depth, w))? {
        Response::Err(OpError::Timeout) => {
            if mutant::<Of<C>>(MUTANT_COND_NO_REACQUIRE) {
                return Ok(false);
            }
            // Not notified in time: retake the lock (however long the
            // holder keeps it), learning whether a notify came meanwhile.
            flag(c.request(Op::CondReacquire(ticket, depth, Wait::Forever))?)
        }
        r => flag(r),
    }
}

/// Python's `Condition.wait_for` (the caller holds the condition's lock):
/// wait until `pred()`, evaluated with the lock held, is true.
pub fn condition_wait_for<C: Requester>(
    c: &C,
    mut pred: impl FnMut() -> Result<bool, C::Error>,
) -> Result<(), C::Error> {
    while !pred()? {
        condition_wait(c, Wait::Forever)?;
    }
    Ok(())
}

/// Python's `Condition.wait_for(predicate, timeout)` (the caller holds the
/// condition's lock): wait until `pred()` holds or `timeout` passes, counted
/// from the call; returns the predicate's last value (CPython's loop: the
/// predicate is evaluated once more after each wait, with the lock held).
pub fn condition_wait_for_timeout<C: Requester>(
    c: &C,
    mut pred: impl FnMut() -> Result<bool, C::Error>,
    timeout: std::time::Duration,
) -> Result<bool, C::Error> {
    let end = std::time::Instant::now().checked_add(timeout);
    loop {
        if pred()? {
            return Ok(true);
        }
        let w = match end {
            None => Wait::Forever,
            Some(end) => {
                let left = end.saturating_duration_since(std::time::Instant::now());
                if left.is_zero() {
                    return Ok(false);
                }
                Wait::from_timeout(Some(left))
            }
        };
        condition_wait(c, w)?;
    }
}

/// Barrier wait: arrive, then wait for the generation to pass, for at most
/// `w`. Returns this party's arrival index. A wait that times out breaks the
/// generation (Python's behaviour) and fails with
/// [`OpError::BrokenBarrier`] — unless the generation passed just as it timed
/// out, in which case this party passed too.
pub fn barrier_wait<C: Requester>(c: &C, w: Wait) -> Result<u64, C::Error> {
    let (generation, index) = match c.request(Op::BarrierArrive)? {
        Response::Arrived(g, i) => (g, i),
        r => return Err(fail(r)),
    };
    match c.request(Op::BarrierAwait(generation, w))? {
        Response::Ok => Ok(index),
        Response::Err(OpError::Timeout) => {
            if mutant::<Of<C>>(MUTANT_BARRIER_NO_ABORT) {
                return Err(ClientError::Op(OpError::BrokenBarrier).into());
            }
            match c.request(Op::BarrierAbortIf(generation))? {
                // The generation passed just as we timed out: we passed too.
                Response::Bool(false) => Ok(index),
                Response::Bool(true) => Err(ClientError::Op(OpError::BrokenBarrier).into()),
                r => Err(fail(r)),
            }
        }
        r => Err(fail(r)),
    }
}

/// Sort a list atomically: take a snapshot with its version, let `reorder`
/// compute the new items, write them back only if the list has not changed
/// since ([`Op::ReplaceIf`]); on a conflict, start again.
pub fn sort_list<C: Requester>(
    c: &C,
    mut reorder: impl FnMut(Vec<Bytes>) -> Result<Vec<Bytes>, C::Error>,
) -> Result<(), C::Error> {
    loop {
        let (version, items) = match c.request(Op::Snapshot)? {
            Response::Versioned(v, items) => (v, items),
            r => return Err(fail(r)),
        };
        let items = reorder(items)?;
        match c.request(Op::ReplaceIf(version, items))? {
            Response::Ok => return Ok(()),
            Response::Err(OpError::Conflict) if mutant::<Of<C>>(MUTANT_SORT_NO_RETRY) => {
                return Ok(())
            }
            Response::Err(OpError::Conflict) => continue,
            r => return Err(fail(r)),
        }
    }
}

#[cfg(test)]
mod tests;
