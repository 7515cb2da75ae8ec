//! The manager's shared objects and the sequential semantics of every
//! operation on them ([`apply`]): what the server does under its lock.

use super::protocol::*;
use std::collections::{BTreeMap, HashMap};

/// An insertion-ordered map of encoded keys (Python's dict order).
#[derive(Debug, Default, Clone)]
pub struct OrderedMap {
    /// key -> insertion sequence number.
    pub(super) index: HashMap<Bytes, u64>,
    /// insertion sequence number -> (key, value).
    pub(super) order: BTreeMap<u64, (Bytes, Bytes)>,
    pub(super) next: u64,
}

impl OrderedMap {
    pub(super) fn get(&self, k: &[u8]) -> Option<&Bytes> {
        self.index
            .get(k)
            .and_then(|s| self.order.get(s))
            .map(|(_, v)| v)
    }
    pub(super) fn insert(&mut self, k: Bytes, v: Bytes) -> Option<Bytes> {
        if let Some(s) = self.index.get(&k) {
            let slot = self.order.get_mut(s)?;
            return Some(std::mem::replace(&mut slot.1, v));
        }
        let s = self.next;
        self.next += 1;
        self.index.insert(k.clone(), s);
        self.order.insert(s, (k, v));
        None
    }
    pub(super) fn remove(&mut self, k: &[u8]) -> Option<Bytes> {
        let s = self.index.remove(k)?;
        self.order.remove(&s).map(|(_, v)| v)
    }
    pub(super) fn len(&self) -> usize {
        self.index.len()
    }
    pub(super) fn clear(&mut self) {
        self.index.clear();
        self.order.clear();
    }
    pub(super) fn pairs(&self) -> impl Iterator<Item = &(Bytes, Bytes)> {
        self.order.values()
    }
}

/// A managed object.
#[derive(Debug, Clone)]
pub enum Obj {
    /// A list and its version (bumped by every mutation).
    List(Vec<Bytes>, u64),
    /// A dict.
    Dict(OrderedMap),
    /// A value.
    Value(Bytes),
    /// A namespace.
    Namespace(BTreeMap<String, Bytes>),
    /// A lock: its holder.
    Lock(Option<ConnId>),
    /// A recursive lock: holder and depth.
    RLock(Option<(ConnId, u64)>),
    /// A semaphore: value and optional bound.
    Semaphore(u64, Option<u64>),
    /// An event flag.
    Event(bool),
    /// A queue and its bound.
    Queue(std::collections::VecDeque<Bytes>, Option<u64>),
    /// A condition variable.
    Condition(CondState),
    /// A barrier.
    Barrier(BarrierState),
    /// An array's items (see `array`).
    Array(Vec<Bytes>),
    /// A joinable queue (see `joinable`).
    Joinable(super::joinable::JoinableState),
    /// A set: its items are the keys (values empty), in insertion order.
    Set(OrderedMap),
    /// An object of a registered type (its calls: [`super::custom`]).
    Custom(super::custom::CustomCell),
    /// A process pool (its operations: [`super::pool`]).
    Pool(super::pool::PoolCell),
}

/// A condition variable's state.
#[derive(Debug, Clone, Default)]
pub struct CondState {
    /// The recursive lock: holder and depth.
    pub(super) owner: Option<(ConnId, u64)>,
    /// Registered, not yet notified: (ticket, connection), oldest first.
    pub(super) waiters: Vec<(u64, ConnId)>,
    /// Notified, not yet holding the lock again.
    pub(super) notified: Vec<(u64, ConnId)>,
    pub(super) next_ticket: u64,
}

/// A barrier's state.
#[derive(Debug, Clone)]
pub struct BarrierState {
    pub(super) parties: u64,
    /// Parties arrived in the current generation.
    pub(super) count: u64,
    pub(super) generation: u64,
    pub(super) broken: bool,
    /// Generations that a `reset` ended while parties waited in them: their
    /// waiters get `BrokenBarrier` (Python's `reset`), not a pass. One entry
    /// per such reset.
    pub(super) reset_gens: std::collections::BTreeSet<u64>,
}

impl Obj {
    /// A new built-in object (`None` for [`Init::Custom`] and
    /// [`Init::Pool`]: the server's registry makes those).
    pub fn new(init: Init) -> Option<Obj> {
        Some(match init {
            Init::List(v) => Obj::List(v, 0),
            Init::Dict(pairs) => {
                let mut m = OrderedMap::default();
                for (k, v) in pairs {
                    m.insert(k, v);
                }
                Obj::Dict(m)
            }
            Init::Value(v) => Obj::Value(v),
            Init::Namespace => Obj::Namespace(BTreeMap::new()),
            Init::Lock => Obj::Lock(None),
            Init::RLock => Obj::RLock(None),
            Init::Semaphore { value, bound } => Obj::Semaphore(value, bound),
            Init::Event => Obj::Event(false),
            Init::Queue { maxsize } => Obj::Queue(Default::default(), maxsize),
            Init::Condition => Obj::Condition(CondState::default()),
            Init::Barrier { parties } => Obj::Barrier(BarrierState {
                parties: parties.max(1),
                count: 0,
                generation: 0,
                broken: false,
                reset_gens: Default::default(),
            }),
            Init::Array(v) => Obj::Array(v),
            Init::JoinableQueue { maxsize } => {
                Obj::Joinable(super::joinable::JoinableState::new(maxsize))
            }
            Init::Set(items) => Obj::Set(super::containers::set_of(items)),
            Init::Custom { .. } | Init::CustomWith { .. } | Init::Pool { .. } => return None,
        })
    }
    /// The object's kind.
    pub fn kind(&self) -> Kind {
        match self {
            Obj::List(..) => Kind::List,
            Obj::Dict(_) => Kind::Dict,
            Obj::Value(_) => Kind::Value,
            Obj::Namespace(_) => Kind::Namespace,
            Obj::Lock(_) => Kind::Lock,
            Obj::RLock(_) => Kind::RLock,
            Obj::Semaphore(..) => Kind::Semaphore,
            Obj::Event(_) => Kind::Event,
            Obj::Queue(..) => Kind::Queue,
            Obj::Condition(_) => Kind::Condition,
            Obj::Barrier(_) => Kind::Barrier,
            Obj::Array(_) => Kind::Array,
            Obj::Joinable(_) => Kind::JoinableQueue,
            Obj::Set(_) => Kind::Set,
            Obj::Custom(_) => Kind::Custom,
            Obj::Pool(_) => Kind::Pool,
        }
    }
}

/// The result of applying an operation once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The answer; `changed` tells whether any state changed (waiters are then notified).
    Done(Response, bool),
    /// The operation must wait; nothing changed.
    Block,
}

pub(super) fn done(r: Response) -> Step {
    Step::Done(r, false)
}
pub(super) fn changed(r: Response) -> Step {
    Step::Done(r, true)
}
pub(super) fn err(e: OpError) -> Step {
    Step::Done(Response::Err(e), false)
}

fn out_of_range(index: u64, len: usize) -> Step {
    err(OpError::IndexOutOfRange {
        index,
        len: len as u64,
    })
}

/// Index `i` as a `usize` if it is within `0..len`.
fn at(i: u64, len: usize) -> Option<usize> {
    usize::try_from(i).ok().filter(|&i| i < len)
}

/// Python's index `i` (negative: from the end) as a `usize` within `0..len`.
fn signed_at(i: i64, len: usize) -> Option<usize> {
    let len = i64::try_from(len).ok()?;
    let j = if i < 0 { i.checked_add(len)? } else { i };
    (0..len).contains(&j).then_some(j as usize)
}

fn signed_out_of_range(index: i64, len: usize) -> Step {
    match u64::try_from(index) {
        Ok(index) => out_of_range(index, len),
        Err(_) => err(OpError::SignedIndexOutOfRange {
            index,
            len: len as u64,
        }),
    }
}

/// Clamp a slice range to `0..=len`, Python style (`start > end` is an empty range at `start`).
fn clamp(start: u64, end: u64, len: usize) -> (usize, usize) {
    let s = usize::try_from(start).unwrap_or(usize::MAX).min(len);
    let e = usize::try_from(end).unwrap_or(usize::MAX).min(len).max(s);
    (s, e)
}

/// Apply `op` to `obj` on behalf of connection `conn`: the sequential semantics
/// of every operation. Never panics; on error the object is unchanged.
pub fn apply(obj: &mut Obj, conn: ConnId, op: Op) -> Step {
    let kind = obj.kind();
    let wrong = |op: &Op| {
        let name = format!("{op:?}");
        let name = name
            .split(['(', ' ', '{'])
            .next()
            .unwrap_or("op")
            .to_string();
        err(OpError::WrongType {
            found: kind,
            op: name,
        })
    };
    match (obj, op) {
        // ----- lists -----
        (Obj::List(v, ver), Op::Append(x)) => {
            v.push(x);
            *ver += 1;
            changed(Response::Ok)
        }
        (Obj::List(v, ver), Op::Extend(xs)) => {
            v.extend(xs);
            *ver += 1;
            changed(Response::Ok)
        }
        (Obj::List(v, ver), Op::Insert(i, x)) => {
            let i = usize::try_from(i).unwrap_or(usize::MAX).min(v.len());
            v.insert(i, x);
            *ver += 1;
            changed(Response::Ok)
        }
        (Obj::List(v, ver), Op::Pop(None)) => match v.pop() {
            Some(x) => {
                *ver += 1;
                changed(Response::Item(x))
            }
            None => out_of_range(0, 0),
        },
        (Obj::List(v, ver), Op::Pop(Some(i))) | (Obj::List(v, ver), Op::Delete(i)) => {
            // (Delete answers the removed item too; the proxy drops it.)
            match at(i, v.len()) {
                Some(i) => {
                    *ver += 1;
                    changed(Response::Item(v.remove(i)))
                }
                None => out_of_range(i, v.len()),
            }
        }
        (Obj::List(v, ver), Op::Remove(x)) => match v.iter().position(|y| *y == x) {
            Some(i) => {
                v.remove(i);
                *ver += 1;
                changed(Response::Ok)
            }
            None => err(OpError::ValueNotInList),
        },
        (Obj::List(v, _), Op::Index(x)) => match v.iter().position(|y| *y == x) {
            Some(i) => done(Response::Usize(i as u64)),
            None => err(OpError::ValueNotInList),
        },
        (Obj::List(v, _), Op::Count(x)) => {
            done(Response::Usize(v.iter().filter(|y| **y == x).count() as u64))
        }
        (Obj::List(v, _), Op::Get(i)) => match at(i, v.len()) {
            Some(i) => done(Response::Item(v[i].clone())),
            None => out_of_range(i, v.len()),
        },
        (Obj::List(v, ver), Op::Set(i, x)) => match at(i, v.len()) {
            Some(i) => {
                v[i] = x;
                *ver += 1;
                changed(Response::Ok)
            }
            None => out_of_range(i, v.len()),
        },
        (Obj::List(v, ver), Op::Reverse) => {
            v.reverse();
            *ver += 1;
            changed(Response::Ok)
        }
        (Obj::List(v, ver), Op::Snapshot) => done(Response::Versioned(*ver, v.clone())),
        (Obj::List(v, _), Op::GetRange(s, e)) => {
            let (s, e) = clamp(s, e, v.len());
            done(Response::Items(v[s..e].to_vec()))
        }
        (Obj::List(v, ver), Op::SetRange(s, e, xs)) => {
            let (s, e) = clamp(s, e, v.len());
            v.splice(s..e, xs);
            *ver += 1;
            changed(Response::Ok)
        }
        (Obj::List(v, ver), Op::ReplaceIf(expect, xs)) => {
            if *ver != expect {
                return err(OpError::Conflict);
            }
            *v = xs;
            *ver += 1;
            changed(Response::Ok)
        }
        (Obj::List(v, _), Op::Len) => done(Response::Usize(v.len() as u64)),
        (Obj::List(v, ver), Op::Clear) => {
            v.clear();
            *ver += 1;
            changed(Response::Ok)
        }
        // ----- dicts -----
        (Obj::Dict(m), Op::Len) => done(Response::Usize(m.len() as u64)),
        (Obj::Dict(m), Op::Clear) => {
            m.clear();
            changed(Response::Ok)
        }
        (Obj::Dict(m), Op::DictGet(k)) => done(Response::MaybeItem(m.get(&k).cloned())),
        (Obj::Dict(m), Op::DictItem(k)) => match m.get(&k) {
            Some(v) => done(Response::Item(v.clone())),
            None => err(OpError::KeyNotFound),
        },
        (Obj::Dict(m), Op::DictInsert(k, v)) => changed(Response::MaybeItem(m.insert(k, v))),
        (Obj::Dict(m), Op::DictRemove(k)) => {
            let old = m.remove(&k);
            let ch = old.is_some();
            Step::Done(Response::MaybeItem(old), ch)
        }
        (Obj::Dict(m), Op::DictPop(k)) => match m.remove(&k) {
            Some(v) => changed(Response::Item(v)),
            None => err(OpError::KeyNotFound),
        },
        (Obj::Dict(m), Op::DictContains(k)) => done(Response::Bool(m.get(&k).is_some())),
        (Obj::Dict(m), Op::DictKeys) => {
            done(Response::Items(m.pairs().map(|(k, _)| k.clone()).collect()))
        }
        (Obj::Dict(m), Op::DictValues) => {
            done(Response::Items(m.pairs().map(|(_, v)| v.clone()).collect()))
        }
        (Obj::Dict(m), Op::DictItems) => done(Response::Pairs(m.pairs().cloned().collect())),
        (Obj::Dict(m), Op::DictUpdate(pairs)) => {
            for (k, v) in pairs {
                m.insert(k, v);
            }
            changed(Response::Ok)
        }
        (Obj::Dict(m), Op::DictSetDefault(k, d)) => match m.get(&k) {
            Some(v) => done(Response::Item(v.clone())),
            None => {
                m.insert(k, d.clone());
                changed(Response::Item(d))
            }
        },
        // ----- values -----
        (Obj::Value(v), Op::ValueGet) => done(Response::Item(v.clone())),
        (Obj::Value(v), Op::ValueSet(x)) => {
            *v = x;
            changed(Response::Ok)
        }
        // ----- namespaces -----
        (Obj::Namespace(n), Op::NsGet(name)) => match n.get(&name) {
            Some(v) => done(Response::Item(v.clone())),
            None => err(OpError::AttributeNotFound(name)),
        },
        (Obj::Namespace(n), Op::NsSet(name, v)) => {
            n.insert(name, v);
            changed(Response::Ok)
        }
        (Obj::Namespace(n), Op::NsDel(name)) => match n.remove(&name) {
            Some(_) => changed(Response::Ok),
            None => err(OpError::AttributeNotFound(name)),
        },
        (Obj::Namespace(n), Op::NsItems) => done(Response::Attrs(
            n.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        )),
        (Obj::Namespace(n), Op::Len) => done(Response::Usize(n.len() as u64)),
        // ----- locks -----
        (Obj::Lock(h), Op::Acquire(w)) => match h {
            None => {
                *h = Some(conn);
                changed(Response::Bool(true))
            }
            Some(_) if w == Wait::No => done(Response::Bool(false)),
            Some(_) => Step::Block,
        },
        (Obj::Lock(h), Op::Release) => match h.take() {
            Some(_) => changed(Response::Ok),
            None => err(OpError::NotOwner),
        },
        (Obj::Lock(h), Op::Locked) => done(Response::Bool(h.is_some())),
        (Obj::RLock(h), Op::Acquire(w)) => rlock_acquire(h, conn, w),
        (Obj::RLock(h), Op::Release) => rlock_release(h, conn),
        (Obj::RLock(h), Op::Locked) => done(Response::Bool(h.is_some())),
        (Obj::Semaphore(v, _), Op::Acquire(w)) => {
            if *v > 0 {
                *v -= 1;
                changed(Response::Bool(true))
            } else if w == Wait::No {
                done(Response::Bool(false))
            } else {
                Step::Block
            }
        }
        (Obj::Semaphore(v, b), Op::Release) => {
            if b.is_some_and(|b| *v >= b) || *v == u64::MAX {
                return err(OpError::OverRelease);
            }
            *v += 1;
            changed(Response::Ok)
        }
        (Obj::Semaphore(v, _), Op::SemValue) => done(Response::Usize(*v)),
        // ----- events -----
        (Obj::Event(f), Op::EventSet) => {
            *f = true;
            changed(Response::Ok)
        }
        (Obj::Event(f), Op::EventClear) => {
            *f = false;
            changed(Response::Ok)
        }
        (Obj::Event(f), Op::EventIsSet) => done(Response::Bool(*f)),
        (Obj::Event(f), Op::EventWait(w)) => {
            if *f || w == Wait::No {
                done(Response::Bool(*f))
            } else {
                Step::Block
            }
        }
        // ----- queues -----
        (Obj::Queue(q, max), Op::Put(x, w)) => {
            if max.is_some_and(|m| q.len() as u64 >= m) {
                if w == Wait::No {
                    err(OpError::Timeout)
                } else {
                    Step::Block
                }
            } else {
                q.push_back(x);
                changed(Response::Ok)
            }
        }
        (Obj::Queue(q, _), Op::QGet(w)) => match q.pop_front() {
            Some(x) => changed(Response::Item(x)),
            None if w == Wait::No => err(OpError::Timeout),
            None => Step::Block,
        },
        (Obj::Queue(q, _), Op::Len) => done(Response::Usize(q.len() as u64)),
        // ----- conditions -----
        (Obj::Condition(c), Op::Acquire(w)) => rlock_acquire(&mut c.owner, conn, w),
        (Obj::Condition(c), Op::Release) => rlock_release(&mut c.owner, conn),
        (Obj::Condition(c), Op::Locked) => done(Response::Bool(c.owner.is_some())),
        (Obj::Condition(c), Op::CondEnter) => match c.owner {
            Some((o, depth)) if o == conn => {
                let t = c.next_ticket;
                c.next_ticket += 1;
                c.owner = None;
                c.waiters.push((t, conn));
                changed(Response::Arrived(t, depth))
            }
            _ => err(OpError::NotOwner),
        },
        (Obj::Condition(c), Op::CondSleep(t, depth, w)) => {
            if let Some(i) = c.notified.iter().position(|x| x.0 == t) {
                if c.owner.is_none() {
                    c.notified.remove(i);
                    c.owner = Some((conn, depth.max(1)));
                    return changed(Response::Bool(true));
                }
                return Step::Block; // notified; waiting for the lock
            }
            if !c.waiters.iter().any(|x| x.0 == t) {
                return err(OpError::BadRequest(format!("unknown ticket {t}")));
            }
            if w == Wait::No {
                err(OpError::Timeout)
            } else {
                Step::Block
            }
        }
        (Obj::Condition(c), Op::CondReacquire(t, depth, w)) => {
            if c.owner.is_some() {
                return if w == Wait::No {
                    err(OpError::Timeout)
                } else {
                    Step::Block
                };
            }
            let was = c.notified.iter().any(|x| x.0 == t);
            c.notified.retain(|x| x.0 != t);
            c.waiters.retain(|x| x.0 != t);
            c.owner = Some((conn, depth.max(1)));
            changed(Response::Bool(was))
        }
        (Obj::Condition(c), Op::Notify(_) | Op::NotifyAll)
            if !c.owner.is_some_and(|(o, _)| o == conn) =>
        {
            err(OpError::NotOwner)
        }
        (Obj::Condition(c), op @ (Op::Notify(_) | Op::NotifyAll)) => {
            let n = usize::try_from(n_of(&op))
                .unwrap_or(usize::MAX)
                .min(c.waiters.len());
            let woken: Vec<_> = c.waiters.drain(..n).collect();
            c.notified.extend(woken);
            Step::Done(Response::Ok, n > 0)
        }
        // ----- barriers -----
        (Obj::Barrier(b), Op::BarrierArrive) => {
            if b.broken {
                return err(OpError::BrokenBarrier);
            }
            let index = b.count;
            let generation = b.generation;
            b.count += 1;
            if b.count >= b.parties {
                b.count = 0;
                b.generation += 1;
            }
            changed(Response::Arrived(generation, index))
        }
        (Obj::Barrier(b), Op::BarrierAwait(g, w)) => {
            if b.reset_gens.contains(&g) {
                err(OpError::BrokenBarrier)
            } else if b.generation != g {
                done(Response::Ok)
            } else if b.broken {
                err(OpError::BrokenBarrier)
            } else if w == Wait::No {
                err(OpError::Timeout)
            } else {
                Step::Block
            }
        }
        (Obj::Barrier(b), Op::BarrierAbortIf(g)) => {
            if b.generation == g {
                b.broken = true;
                changed(Response::Bool(true))
            } else if b.reset_gens.contains(&g) {
                done(Response::Bool(true))
            } else {
                done(Response::Bool(false))
            }
        }
        (Obj::Barrier(b), Op::BarrierAbort) => {
            b.broken = true;
            changed(Response::Ok)
        }
        (Obj::Barrier(b), Op::BarrierReset) => {
            if b.count > 0 {
                // Parties wait in this generation: they are broken out of it.
                b.reset_gens.insert(b.generation);
            }
            b.broken = false;
            b.count = 0;
            b.generation += 1;
            changed(Response::Ok)
        }
        (Obj::Barrier(b), Op::BarrierState) => {
            done(Response::Counts(vec![b.parties, b.count, b.broken as u64]))
        }
        (Obj::List(v, _), Op::GetAt(i)) => match signed_at(i, v.len()) {
            Some(i) => done(Response::Item(v[i].clone())),
            None => signed_out_of_range(i, v.len()),
        },
        (Obj::List(v, ver), Op::SetAt(i, x)) => match signed_at(i, v.len()) {
            Some(i) => {
                v[i] = x;
                *ver += 1;
                changed(Response::Ok)
            }
            None => signed_out_of_range(i, v.len()),
        },
        (Obj::List(v, ver), Op::DeleteAt(i) | Op::PopAt(i)) => match signed_at(i, v.len()) {
            Some(i) => {
                *ver += 1;
                changed(Response::Item(v.remove(i)))
            }
            None => signed_out_of_range(i, v.len()),
        },
        (Obj::List(v, ver), Op::InsertAt(i, x)) => {
            let len = v.len() as i64;
            let i = if i < 0 { (i + len).max(0) } else { i.min(len) };
            v.insert(i as usize, x);
            *ver += 1;
            changed(Response::Ok)
        }
        (obj, op) => match super::containers::apply_container(obj, op) {
            Ok(step) => step,
            Err(op) => wrong(&op),
        },
    }
}

fn n_of(op: &Op) -> u64 {
    match op {
        Op::Notify(n) => *n,
        _ => u64::MAX,
    }
}

fn rlock_acquire(h: &mut Option<(ConnId, u64)>, conn: ConnId, w: Wait) -> Step {
    match h {
        None => {
            *h = Some((conn, 1));
            changed(Response::Bool(true))
        }
        Some((o, d)) if *o == conn => {
            *d = d.saturating_add(1);
            changed(Response::Bool(true))
        }
        Some(_) if w == Wait::No => done(Response::Bool(false)),
        Some(_) => Step::Block,
    }
}

fn rlock_release(h: &mut Option<(ConnId, u64)>, conn: ConnId) -> Step {
    match h {
        Some((o, d)) if *o == conn => {
            *d -= 1;
            if *d == 0 {
                *h = None;
            }
            changed(Response::Ok)
        }
        _ => err(OpError::NotOwner),
    }
}

/// The answer of a blocking operation whose timeout passed.
pub(super) fn on_timeout(op: &Op) -> Response {
    match op {
        Op::Acquire(_) | Op::EventWait(_) => Response::Bool(false),
        _ => Response::Err(OpError::Timeout),
    }
}

pub(super) fn wait_of(op: &Op) -> Wait {
    match op {
        Op::Acquire(w)
        | Op::EventWait(w)
        | Op::Put(_, w)
        | Op::QGet(w)
        | Op::CondSleep(_, _, w)
        | Op::CondReacquire(_, _, w)
        | Op::BarrierAwait(_, w)
        | Op::Joinable(super::joinable::JoinableOp::Join(w)) => *w,
        _ => Wait::No,
    }
}

#[cfg(test)]
mod tests;
