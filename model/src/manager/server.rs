//! The manager server: the blocking retry loop ([`block_on`]), the object
//! table ([`Server`]) and the per-connection serve loop ([`serve_connection`]).
//! What each operation does to an object is [`apply`].

use super::custom::{self, Registry};
use super::joinable::{apply_ext, JoinableOp};
use super::objects::*;
use super::protocol::*;
use crate::platform::{mutant, Mutant, Seeded};
use std::collections::HashMap;
use std::ops::DerefMut;
use std::time::{Duration, Instant};

/// Seeded bug 701: `pop` reads the last item in one critical section and
/// removes the last item in a second one (check-then-act): two concurrent pops
/// can return the same item and lose another.
#[doc(hidden)]
pub const MUTANT_SPLIT_POP: Mutant = Mutant(701);
/// Seeded bug 702: `extend` appends its items one critical section at a time,
/// so a concurrent reader can see half of an extend.
#[doc(hidden)]
pub const MUTANT_SPLIT_EXTEND: Mutant = Mutant(702);
/// Seeded bug 703: state changes never wake blocked requests (lost wake-up: a
/// `get` on an empty queue sleeps through the `put`).
#[doc(hidden)]
pub const MUTANT_NO_NOTIFY: Mutant = Mutant(703);

/// Seeded bug 707: a decref frees the object once the decrefing connection
/// holds no reference to it, whatever other connections hold (an object
/// another client still uses disappears under it).
#[doc(hidden)]
pub const MUTANT_DECREF_FREES: Mutant = Mutant(707);

/// Seeded bug 782: any change of a container gives back the references of
/// every proxy stored in it, still stored or not (an object reachable only
/// through a container is freed while stored).
#[doc(hidden)]
pub const MUTANT_STORED_DROPPED: Mutant = Mutant(782);
/// Seeded bug 708: a barrier's `reset` starts a fresh generation without
/// breaking the parties waiting in the current one (they pass, where
/// CPython's get `BrokenBarrierError`).
#[doc(hidden)]
pub const MUTANT_RESET_PASSES: Mutant = Mutant(708);

/// Why a [`ServerSync::wait`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slept {
    /// Notified (or spuriously woken): try again.
    Woken,
    /// A liveness poll interval ([`GONE_POLL`]) passed: ask whether the
    /// requester is still there, then try again.
    Poll,
    /// The deadline passed: try once more, then give up.
    Expired,
}

/// The mutex and condition variable a server guards its table with, and its
/// clock. The retry loop over them is written once ([`block_on`]); an
/// instantiation only says how to lock, sleep and tell time.
///
/// Its [`Seeded`] choice is the mutant the server (and, in the checks, the
/// model's clients) run with: [`StdSync`] is always the correct protocol.
pub trait ServerSync: Seeded + Send + Sync + 'static {
    /// A mutex holding `T`.
    type Mutex<T: Send + 'static>: Send + Sync;
    /// The guard of a locked [`ServerSync::Mutex`].
    type Guard<'a, T: Send + 'static>: DerefMut<Target = T>;
    /// A condition variable.
    type Condvar: Send + Sync;
    /// An absolute deadline (or none).
    type Deadline;
    /// A new mutex.
    fn mutex<T: Send + 'static>(v: T) -> Self::Mutex<T>;
    /// A new condition variable.
    fn condvar() -> Self::Condvar;
    /// Lock `m` (a poisoned mutex is recovered: dispatch never panics, and the
    /// table stays consistent because every operation validates before it mutates).
    fn lock<T: Send + 'static>(m: &Self::Mutex<T>) -> Self::Guard<'_, T>;
    /// The deadline `timeout` from now (`None`: forever).
    fn deadline(timeout: Option<Duration>) -> Self::Deadline;
    /// Release `g` (a guard of `m`), sleep on `cv` until notified, `d` passes or
    /// a liveness poll interval passes, and lock `m` again.
    fn wait<'a, T: Send + 'static>(
        m: &'a Self::Mutex<T>,
        cv: &Self::Condvar,
        g: Self::Guard<'a, T>,
        d: &Self::Deadline,
    ) -> (Self::Guard<'a, T>, Slept);
    /// Wake every waiter of `cv`.
    fn notify_all(cv: &Self::Condvar);
    /// Run `f` with the lock held.
    fn with<T: Send + 'static, R>(m: &Self::Mutex<T>, f: impl FnOnce(&mut T) -> R) -> R {
        let mut g = Self::lock(m);
        f(&mut g)
    }
}

/// Run `f` with the lock held until it returns `Some`, waiting on `cv` between
/// tries (with the lock released), for at most `timeout` (`None`: forever).
/// Returns `None` if the timeout passed (after one last try), or if `gone()`
/// (asked at every liveness poll while waiting) says the requester has
/// disconnected.
pub fn block_on<S: ServerSync, T: Send + 'static, R>(
    m: &S::Mutex<T>,
    cv: &S::Condvar,
    timeout: Option<Duration>,
    gone: &dyn Fn() -> bool,
    mut f: impl FnMut(&mut T) -> Option<R>,
) -> Option<R> {
    let d = S::deadline(timeout);
    let mut g = S::lock(m);
    loop {
        if let Some(r) = f(&mut g) {
            return Some(r);
        }
        let (g2, slept) = S::wait(m, cv, g, &d);
        g = g2;
        match slept {
            Slept::Woken => {}
            Slept::Poll => {
                if gone() {
                    return None;
                }
            }
            Slept::Expired => return f(&mut g),
        }
    }
}

/// How often a blocked request checks that its client is still connected.
pub const GONE_POLL: Duration = Duration::from_millis(100);

/// [`ServerSync`] over `std::sync` and the monotonic clock (the shipped server).
#[derive(Debug)]
pub struct StdSync;

impl Seeded for StdSync {
    const MUTANT: Mutant = Mutant::NONE;
}

impl ServerSync for StdSync {
    type Mutex<T: Send + 'static> = std::sync::Mutex<T>;
    type Guard<'a, T: Send + 'static> = std::sync::MutexGuard<'a, T>;
    type Condvar = std::sync::Condvar;
    /// `None`: no deadline, or one too far to represent.
    type Deadline = Option<Instant>;
    fn mutex<T: Send + 'static>(v: T) -> Self::Mutex<T> {
        std::sync::Mutex::new(v)
    }
    fn condvar() -> Self::Condvar {
        std::sync::Condvar::new()
    }
    fn lock<T: Send + 'static>(m: &Self::Mutex<T>) -> Self::Guard<'_, T> {
        m.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn deadline(timeout: Option<Duration>) -> Self::Deadline {
        timeout.and_then(|t| Instant::now().checked_add(t))
    }
    fn wait<'a, T: Send + 'static>(
        _m: &'a Self::Mutex<T>,
        cv: &Self::Condvar,
        g: Self::Guard<'a, T>,
        d: &Self::Deadline,
    ) -> (Self::Guard<'a, T>, Slept) {
        let slice = match d {
            Some(d) => {
                let now = Instant::now();
                if now >= *d {
                    return (g, Slept::Expired);
                }
                (*d - now).min(GONE_POLL)
            }
            None => GONE_POLL,
        };
        let (g, to) = cv.wait_timeout(g, slice).unwrap_or_else(|p| p.into_inner());
        let slept = if !to.timed_out() {
            Slept::Woken
        } else if d.is_some_and(|d| Instant::now() >= d) {
            Slept::Expired
        } else {
            Slept::Poll
        };
        (g, slept)
    }
    fn notify_all(cv: &Self::Condvar) {
        cv.notify_all();
    }
}

/// The server's table of objects.
#[derive(Debug, Default)]
pub struct Table {
    objects: HashMap<ObjId, Obj>,
    names: HashMap<String, ObjId>,
    next_id: ObjId,
    /// Requests asleep on the condition variable (see `Server::op`).
    waiting: usize,
    /// Every object's reference count (the references connections hold,
    /// plus one for a name). An object is freed when it reaches 0.
    refs: HashMap<ObjId, u64>,
    /// The references each connection holds: connection -> object -> count.
    held: HashMap<ConnId, HashMap<ObjId, u64>>,
    /// Objects of registered types freed under the lock, to be dropped
    /// after it (their `Drop` is user code): see [`Server::bury`].
    freed: Vec<Obj>,
    /// Values stored by [`Op::Holding`] in each container, with the objects
    /// each embeds proxies to. Each entry holds one reference to each of
    /// those objects (counted in `refs`, held by no connection) while the
    /// container holds a value equal to it (see [`Table::prune`]).
    stored: HashMap<ObjId, Vec<(Bytes, Vec<ObjId>)>>,
    /// References of stored values that a connection's request removed,
    /// given back at that connection's next operation (or when it closes):
    /// the removed value may be the answer (`pop`), and the client takes
    /// its own reference to each proxy in it before its next request.
    deferred: HashMap<ConnId, Vec<ObjId>>,
}

impl Table {
    /// A new object, with one reference held by `conn`.
    fn create(&mut self, conn: ConnId, obj: Obj) -> (ObjId, Kind) {
        self.next_id += 1;
        let id = self.next_id;
        let kind = obj.kind();
        self.objects.insert(id, obj);
        self.refs.insert(id, 0);
        self.hold(conn, id);
        (id, kind)
    }
    /// `conn` takes one reference to `id` (which exists).
    fn hold(&mut self, conn: ConnId, id: ObjId) {
        *self.refs.entry(id).or_insert(0) += 1;
        *self.held.entry(conn).or_default().entry(id).or_insert(0) += 1;
    }
    /// The first of `ids` that does not exist, if any.
    fn missing(&self, ids: &[ObjId]) -> Option<ObjId> {
        ids.iter()
            .copied()
            .find(|id| !self.objects.contains_key(id))
    }
    /// Drop one reference to `id` (its holder's count already lowered);
    /// frees the object at 0. Returns whether it was freed.
    fn unref(&mut self, id: ObjId) -> bool {
        let Some(n) = self.refs.get_mut(&id) else {
            return false;
        };
        *n = n.saturating_sub(1);
        if *n == 0 {
            self.refs.remove(&id);
            // A freed container gives back what its stored values held.
            if let Some(entries) = self.stored.remove(&id) {
                for (_, ids) in entries {
                    for i in ids {
                        self.unref(i);
                    }
                }
            }
            if let Some(o @ (Obj::Custom(_) | Obj::Pool(_))) = self.objects.remove(&id) {
                self.freed.push(o);
            }
            return true;
        }
        false
    }
    /// `conn` gives back one reference to `id`, if it holds one. Returns
    /// whether the object was freed.
    fn release<S: Seeded>(&mut self, conn: ConnId, id: ObjId) -> bool {
        let Some(mine) = self.held.get_mut(&conn) else {
            return false;
        };
        let Some(n) = mine.get_mut(&id) else {
            return false;
        };
        *n -= 1;
        if *n == 0 {
            mine.remove(&id);
            if mine.is_empty() {
                self.held.remove(&conn);
            }
            if mutant::<S>(MUTANT_DECREF_FREES) {
                self.refs.remove(&id);
                self.objects.remove(&id);
                return true;
            }
        }
        self.unref(id)
    }
    /// The container `id` stores `item`, embedding proxies to `ids`: one
    /// reference to each, held by the container.
    fn store(&mut self, id: ObjId, item: Bytes, ids: Vec<ObjId>) {
        for &i in &ids {
            *self.refs.entry(i).or_insert(0) += 1;
        }
        self.stored.entry(id).or_default().push((item, ids));
    }

    /// The first object held by one of `hold`'s values that does not
    /// exist, if any.
    fn missing_held(&self, hold: &[(Bytes, Vec<ObjId>)]) -> Option<ObjId> {
        hold.iter().find_map(|(_, ids)| self.missing(ids))
    }

    /// After a request answered `r` on container `id`: unless it failed,
    /// the container stores each of `hold`'s values (see [`Table::store`]).
    /// Returns whether it stored any.
    fn store_all(&mut self, id: ObjId, r: &Response, hold: Vec<(Bytes, Vec<ObjId>)>) -> bool {
        if hold.is_empty() || matches!(r, Response::Err(_)) {
            return false;
        }
        for (item, ids) in hold {
            self.store(id, item, ids);
        }
        true
    }

    /// Container `id` changed: give back the references of the stored
    /// values it no longer holds. A value is still stored while the
    /// container holds as many values equal to it (as bytes: a proxy's
    /// encoding names its object) as there are entries of it.
    fn prune<S: Seeded>(&mut self, conn: ConnId, id: ObjId) {
        let Some(entries) = self.stored.get_mut(&id) else {
            return;
        };
        let mut avail: HashMap<&Bytes, usize> = HashMap::new();
        if !mutant::<S>(MUTANT_STORED_DROPPED) {
            if let Some(obj) = self.objects.get(&id) {
                for v in stored_values(obj) {
                    *avail.entry(v).or_insert(0) += 1;
                }
            }
        }
        let mut gone = Vec::new();
        entries.retain(|(b, ids)| match avail.get_mut(b) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => {
                gone.extend(ids.iter().copied());
                false
            }
        });
        if entries.is_empty() {
            self.stored.remove(&id);
        }
        if !gone.is_empty() {
            self.deferred.entry(conn).or_default().extend(gone);
        }
    }

    /// Give back the references [`Table::prune`] deferred for `conn`.
    fn settle(&mut self, conn: ConnId) {
        if self.deferred.is_empty() {
            return;
        }
        if let Some(ids) = self.deferred.remove(&conn) {
            for i in ids {
                self.unref(i);
            }
        }
    }

    /// Connection `conn` is gone: give back every reference it holds.
    /// Returns whether an object was freed.
    fn release_all(&mut self, conn: ConnId) -> bool {
        let mut freed = false;
        if let Some(mine) = self.held.remove(&conn) {
            for (id, n) in mine {
                for _ in 0..n {
                    freed |= self.unref(id);
                }
            }
        }
        freed
    }
}

/// Every value a container holds (for [`Table::prune`]).
fn stored_values(obj: &Obj) -> Vec<&Bytes> {
    match obj {
        Obj::List(v, _) | Obj::Array(v) => v.iter().collect(),
        Obj::Dict(m) => m.pairs().flat_map(|(k, v)| [k, v]).collect(),
        Obj::Set(m) => m.pairs().map(|(k, _)| k).collect(),
        Obj::Value(v) => vec![v],
        Obj::Namespace(n) => n.values().collect(),
        Obj::Queue(q, _) => q.iter().collect(),
        Obj::Joinable(j) => j.q.iter().collect(),
        _ => Vec::new(),
    }
}

/// The one value `op` stores, if it is an op [`Op::Holding`] may wrap.
fn stored_by(op: &Op) -> Option<&Bytes> {
    match op {
        Op::Append(x)
        | Op::Insert(_, x)
        | Op::InsertAt(_, x)
        | Op::Set(_, x)
        | Op::SetAt(_, x)
        | Op::DictInsert(_, x)
        | Op::ValueSet(x)
        | Op::NsSet(_, x)
        | Op::DictSetDefault(_, x)
        | Op::Put(x, _) => Some(x),
        _ => None,
    }
}

/// The values `op` stores, one per item, if it is an op
/// [`Op::HoldingEach`] may wrap.
fn stored_each(op: &Op) -> Option<Vec<&Bytes>> {
    match op {
        Op::Extend(xs) => Some(xs.iter().collect()),
        Op::DictUpdate(pairs) => Some(pairs.iter().map(|(_, v)| v).collect()),
        _ => None,
    }
}

/// Seeded bug (checks): [`Op::HoldingEach`] holds only its first item's
/// objects (the other items are stored unheld).
pub const MUTANT_HOLD_FIRST_ONLY: Mutant = Mutant(783);

/// `op` without its [`Op::Holding`]/[`Op::HoldingEach`] wrapper, and the
/// values it stores that hold objects, each with the objects it holds.
/// A wrapper around an op that stores no such values is a `BadRequest`.
#[allow(clippy::type_complexity)]
fn unwrap_holding<S: Seeded>(op: Op) -> Result<(Op, Vec<(Bytes, Vec<ObjId>)>), OpError> {
    match op {
        Op::Holding(ids, inner) => match stored_by(&inner) {
            Some(x) => {
                let x = x.clone();
                Ok((*inner, vec![(x, ids)]))
            }
            None => Err(OpError::BadRequest(format!(
                "{inner:?} stores no single value: it cannot hold proxies"
            ))),
        },
        Op::HoldingEach(each, inner) => {
            let Some(xs) = stored_each(&inner) else {
                return Err(OpError::BadRequest(format!(
                    "{inner:?} stores no list of values: it cannot hold proxies per item"
                )));
            };
            if xs.len() != each.len() {
                return Err(OpError::BadRequest(format!(
                    "{} lists of held objects for {} stored values",
                    each.len(),
                    xs.len()
                )));
            }
            let first_only = mutant::<S>(MUTANT_HOLD_FIRST_ONLY);
            let hold = xs
                .into_iter()
                .zip(each)
                .enumerate()
                .filter(|(i, (_, ids))| !ids.is_empty() && (!first_only || *i == 0))
                .map(|(_, (x, ids))| (x.clone(), ids))
                .collect();
            Ok((*inner, hold))
        }
        op => Ok((op, Vec::new())),
    }
}

/// A manager server: the object table and the dispatch.
pub struct Server<S: ServerSync> {
    table: S::Mutex<Table>,
    cv: S::Condvar,
    /// The registered types ([`custom`]); fixed when the server starts.
    registry: Registry,
}

impl<S: ServerSync> core::fmt::Debug for Server<S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Server").finish_non_exhaustive()
    }
}

impl<S: ServerSync> Default for Server<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: ServerSync> Server<S> {
    /// How many objects the table holds (for checks and tests).
    pub fn live_objects(&self) -> usize {
        S::with(&self.table, |t| t.objects.len())
    }

    /// An empty server.
    pub fn new() -> Self {
        Self::with_registry(Registry::default())
    }

    /// An empty server that makes objects of the types in `registry`.
    pub fn with_registry(registry: Registry) -> Self {
        Server {
            table: S::mutex(Table::default()),
            cv: S::condvar(),
            registry,
        }
    }

    /// A new object from `init` (built-in, or by a registered factory).
    /// Runs without the table lock: a factory is user code.
    fn make(&self, init: Init) -> Result<Obj, OpError> {
        match init {
            Init::Custom { typeid, methods } => self
                .registry
                .make::<S>(&typeid, &methods, None)
                .map(Obj::Custom),
            Init::CustomWith {
                typeid,
                methods,
                args,
            } => self
                .registry
                .make::<S>(&typeid, &methods, Some(&args))
                .map(Obj::Custom),
            Init::Pool { processes } => self.registry.make_pool::<S>(processes).map(Obj::Pool),
            init => Obj::new(init).ok_or_else(|| OpError::BadRequest("no such object".into())),
        }
    }

    /// Apply one request for connection `conn` and answer it. Blocking
    /// operations wait here (the table unlocked) up to their timeout.
    pub fn handle(&self, conn: ConnId, req: Request) -> Response {
        self.handle_until(conn, req, &|| false)
    }

    /// [`Server::handle`], giving up a blocking wait once `gone()` says the
    /// client disconnected (then the answer is the timeout answer, which
    /// nobody will read).
    pub fn handle_until(&self, conn: ConnId, req: Request, gone: &dyn Fn() -> bool) -> Response {
        match req {
            Request::Ping => Response::Pong,
            Request::Shutdown => Response::Ok,
            Request::Create(init) => match self.make(init) {
                Ok(obj) => {
                    let (id, k) = S::with(&self.table, |t| t.create(conn, obj));
                    Response::Created(id, k)
                }
                Err(e) => Response::Err(e),
            },
            Request::Incref(ids) => S::with(&self.table, |t| {
                if let Some(id) = t.missing(&ids) {
                    return Response::Err(OpError::NoSuchObject(id));
                }
                for id in ids {
                    t.hold(conn, id);
                }
                Response::Ok
            }),
            Request::Decref(ids) => {
                let (freed, dead) = S::with(&self.table, |t| {
                    let mut freed = false;
                    for id in ids {
                        freed |= t.release::<S>(conn, id);
                    }
                    (freed && t.waiting > 0, std::mem::take(&mut t.freed))
                });
                Self::bury(dead);
                if freed {
                    // A request blocked on a freed object learns it is gone.
                    self.notify();
                }
                Response::Ok
            }
            Request::Named(name, init) => {
                let kind = init.kind();
                let found = S::with(&self.table, |t| t.names.contains_key(&name));
                // A registered type's factory runs without the table lock;
                // a racing creator of the same name may win (then this object is dropped).
                let made = match (&init, found) {
                    (Init::Custom { .. } | Init::CustomWith { .. } | Init::Pool { .. }, false) => {
                        match self.make(init.clone()) {
                            Ok(o) => Some(o),
                            Err(e) => return Response::Err(e),
                        }
                    }
                    _ => None,
                };
                self.named(conn, name, init, kind, made)
            }
            Request::Describe(id) => S::with(&self.table, |t| match t.objects.get(&id) {
                Some(o) => Response::Created(id, o.kind()),
                None => Response::Err(OpError::NoSuchObject(id)),
            }),
            Request::Op(id, op) => self.op(conn, id, op, gone),
        }
    }

    /// `Request::Named`: the object named `name`, made from `made` (or
    /// `init`) if absent.
    fn named(
        &self,
        conn: ConnId,
        name: String,
        init: Init,
        kind: Kind,
        made: Option<Obj>,
    ) -> Response {
        S::with(&self.table, |t| {
            if let Some(&id) = t.names.get(&name) {
                return match t.objects.get(&id) {
                    Some(o) if o.kind() == kind => {
                        let k = o.kind();
                        t.hold(conn, id);
                        Response::Created(id, k)
                    }
                    Some(o) => Response::Err(OpError::NameTaken {
                        name,
                        found: o.kind(),
                    }),
                    None => Response::Err(OpError::NoSuchObject(id)),
                };
            }
            let obj = match made.or_else(|| Obj::new(init)) {
                Some(o) => o,
                // A custom type named by a racing creator meanwhile.
                None => return Response::Err(OpError::BadRequest("name raced".into())),
            };
            let (id, k) = t.create(conn, obj);
            // The name holds a reference of its own, for the server's life.
            *t.refs.entry(id).or_insert(0) += 1;
            t.names.insert(name, id);
            Response::Created(id, k)
        })
    }

    fn op(&self, conn: ConnId, id: ObjId, op: Op, gone: &dyn Fn() -> bool) -> Response {
        if let Op::Call(method, args) = &op {
            return self.call(id, method, args);
        }
        if let Op::Pool(p) = op {
            return self.pool(id, p);
        }
        match &op {
            Op::Pop(None) if mutant::<S>(MUTANT_SPLIT_POP) => return self.split_pop(id),
            Op::BarrierReset if mutant::<S>(MUTANT_RESET_PASSES) => {
                S::with(&self.table, |t| {
                    if let Some(Obj::Barrier(b)) = t.objects.get_mut(&id) {
                        b.broken = false;
                        b.count = 0;
                        b.generation += 1;
                    }
                });
                self.notify();
                return Response::Ok;
            }
            Op::DictUpdate(pairs) if mutant::<S>(super::containers::MUTANT_SPLIT_IOR) => {
                for (k, v) in pairs {
                    let r = self.op(conn, id, Op::DictInsert(k.clone(), v.clone()), gone);
                    if matches!(r, Response::Err(_)) {
                        return r;
                    }
                }
                return Response::Ok;
            }
            Op::SetAlgebraUpdate(SetAlg::Union, xs)
                if mutant::<S>(super::containers::MUTANT_SPLIT_SET_IOR) =>
            {
                for x in xs {
                    let r = self.op(conn, id, Op::SetAdd(x.clone()), gone);
                    if matches!(r, Response::Err(_)) {
                        return r;
                    }
                }
                return Response::Ok;
            }
            Op::Extend(xs) if mutant::<S>(MUTANT_SPLIT_EXTEND) => {
                for x in xs {
                    let r = self.op(conn, id, Op::Append(x.clone()), gone);
                    if r != Response::Ok {
                        return r;
                    }
                }
                return Response::Ok;
            }
            _ => {}
        }
        // A store holding proxies: the stored values with the objects each
        // holds (empty: an ordinary op).
        let (op, mut hold) = match unwrap_holding::<S>(op) {
            Ok(x) => x,
            Err(e) => return Response::Err(e),
        };
        let blocking = matches!(
            op,
            Op::Acquire(_)
                | Op::EventWait(_)
                | Op::Put(..)
                | Op::QGet(_)
                | Op::CondSleep(..)
                | Op::CondReacquire(..)
                | Op::BarrierAwait(..)
                | Op::Joinable(JoinableOp::Join(_))
        );
        if !blocking {
            // One critical section; the op (and its payload) moves in, no copy.
            let (r, notify, dead) = S::with(&self.table, |t| {
                t.settle(conn);
                if let Some(m) = t.missing_held(&hold) {
                    return (Response::Err(OpError::NoSuchObject(m)), false, Vec::new());
                }
                let waiting = t.waiting;
                let (r, ch) = match t.objects.get_mut(&id) {
                    None => (Response::Err(OpError::NoSuchObject(id)), false),
                    Some(obj) => match apply_ext::<S>(obj, conn, op) {
                        Step::Done(r, ch) => (r, ch),
                        // Only the blocking operations above can block.
                        Step::Block => (Response::Err(OpError::Timeout), false),
                    },
                };
                // In the same critical section: a held object is never
                // unheld in between.
                let stored = t.store_all(id, &r, hold);
                if ch || stored {
                    t.prune::<S>(conn, id);
                }
                (r, ch && waiting > 0, std::mem::take(&mut t.freed))
            });
            Self::bury(dead);
            if notify {
                self.notify();
            }
            return r;
        }
        let wait = wait_of(&op);
        let timeout_answer = on_timeout(&op);
        // `registered`: this request is counted in `Table::waiting` (it is, or
        // is about to be, asleep on the condition variable). Every state
        // change made while someone waits notifies; with nobody waiting the
        // (costly) wake-up call is skipped. Registration happens under the
        // table lock before the wait releases it, so no wake-up is lost.
        let mut registered = false;
        let r = block_on::<S, _, _>(&self.table, &self.cv, wait.timeout(), gone, |t| {
            if registered {
                t.waiting -= 1;
                registered = false;
            }
            let waiting = t.waiting;
            if let Some(m) = t.missing_held(&hold) {
                return Some((Response::Err(OpError::NoSuchObject(m)), false));
            }
            let Some(obj) = t.objects.get_mut(&id) else {
                return Some((Response::Err(OpError::NoSuchObject(id)), false));
            };
            match apply_ext::<S>(obj, conn, op.clone()) {
                Step::Done(r, ch) => {
                    let stored = t.store_all(id, &r, std::mem::take(&mut hold));
                    if ch || stored {
                        // (A freed registered object here is dropped with
                        // the table: only containers of values prune.)
                        t.prune::<S>(conn, id);
                    }
                    Some((r, ch && waiting > 0))
                }
                Step::Block => {
                    t.waiting += 1;
                    registered = true;
                    None
                }
            }
        });
        match r {
            Some((r, notify)) => {
                if notify {
                    self.notify();
                }
                r
            }
            None => {
                if registered {
                    S::with(&self.table, |t| t.waiting -= 1);
                }
                timeout_answer
            }
        }
    }

    /// A registered type's method call ([`custom`]): the object's cell is
    /// taken under the table lock, the call runs under the object's own lock.
    fn call(&self, id: ObjId, method: &str, args: &[u8]) -> Response {
        let find = |t: &mut Table| match t.objects.get(&id) {
            Some(Obj::Custom(c)) => Ok(c.clone()),
            Some(o) => Err(OpError::WrongType {
                found: o.kind(),
                op: "Call".into(),
            }),
            None => Err(OpError::NoSuchObject(id)),
        };
        if mutant::<S>(custom::MUTANT_CALL_UNDER_TABLE) {
            return S::with(&self.table, |t| match find(t) {
                Ok(c) => custom::call::<S>(&c, method, args),
                Err(e) => Response::Err(e),
            });
        }
        match S::with(&self.table, find) {
            Ok(c) => custom::call::<S>(&c, method, args),
            Err(e) => Response::Err(e),
        }
    }

    /// A pool operation ([`pool`](super::pool)): the pool's cell is taken
    /// under the table lock, the operation (and any wait for its results)
    /// runs without it.
    fn pool(&self, id: ObjId, op: super::pool::PoolOp) -> Response {
        let find = |t: &mut Table| match t.objects.get(&id) {
            Some(Obj::Pool(c)) => Ok(c.clone()),
            Some(o) => Err(OpError::WrongType {
                found: o.kind(),
                op: "Pool".into(),
            }),
            None => Err(OpError::NoSuchObject(id)),
        };
        if mutant::<S>(super::pool::MUTANT_POOL_UNDER_TABLE) {
            return S::with(&self.table, |t| match find(t) {
                Ok(c) => c.step(op),
                Err(e) => Response::Err(e),
            });
        }
        match S::with(&self.table, find) {
            Ok(c) => c.step(op),
            Err(e) => Response::Err(e),
        }
    }

    fn notify(&self) {
        if !mutant::<S>(MUTANT_NO_NOTIFY) {
            S::notify_all(&self.cv);
        }
    }

    /// Mutant 701: pop in two critical sections.
    fn split_pop(&self, id: ObjId) -> Response {
        let peeked = S::with(&self.table, |t| match t.objects.get(&id) {
            Some(Obj::List(v, _)) => v.last().cloned(),
            _ => None,
        });
        let Some(x) = peeked else {
            return Response::Err(OpError::IndexOutOfRange { index: 0, len: 0 });
        };
        S::with(&self.table, |t| {
            if let Some(Obj::List(v, ver)) = t.objects.get_mut(&id) {
                v.pop();
                *ver += 1;
            }
        });
        Response::Item(x)
    }

    /// Connection `conn` is gone: release every lock it holds (waking
    /// waiters), and every reference it holds or lent unclaimed (freeing the
    /// objects nobody else holds).
    pub fn disconnect(&self, conn: ConnId) {
        let (released, dead) = S::with(&self.table, |t| {
            t.settle(conn);
            let mut any = t.release_all(conn);
            for o in t.objects.values_mut() {
                match o {
                    Obj::Lock(h) if *h == Some(conn) => {
                        *h = None;
                        any = true;
                    }
                    Obj::RLock(h) if h.is_some_and(|(o, _)| o == conn) => {
                        *h = None;
                        any = true;
                    }
                    Obj::Condition(c) => {
                        if c.owner.is_some_and(|(o, _)| o == conn) {
                            c.owner = None;
                            any = true;
                        }
                        c.waiters.retain(|x| x.1 != conn);
                        c.notified.retain(|x| x.1 != conn);
                    }
                    _ => {}
                }
            }
            (any, std::mem::take(&mut t.freed))
        });
        Self::bury(dead);
        if released {
            self.notify();
        }
    }

    /// Drop freed objects of registered types, without the table lock (a
    /// slow `Drop` holds up nobody; a panicking one is caught by the cell).
    fn bury(dead: Vec<Obj>) {
        drop(dead);
    }
}

/// What a [`Transport`] received.
#[derive(Debug)]
pub enum Incoming {
    /// A well-formed request.
    Request(Request),
    /// A frame that did not decode: answer `BadRequest` and keep serving.
    Garbage(String),
    /// The stream cannot go on (oversized frame, truncated frame, I/O error):
    /// answer `BadRequest` if possible and close.
    Fatal(String),
    /// The peer closed the connection.
    Closed,
}

/// One connection's request stream, as the server sees it.
pub trait Transport {
    /// Receive the next request.
    fn recv(&mut self) -> Incoming;
    /// Send a response; `false` if the peer is gone.
    fn send(&mut self, r: &Response) -> bool;
    /// Has the peer hung up? (Polled while a request of this connection
    /// waits, so that a client killed mid-request frees what it held.)
    fn peer_gone(&self) -> bool {
        false
    }
}

/// How [`serve_connection`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// The client disconnected (or broke the stream).
    Disconnected,
    /// The client asked the server to shut down (the answer was sent).
    Shutdown,
}

/// Serve one connection until it closes or asks for shutdown. Locks held by the
/// connection are released when it ends.
pub fn serve_connection<S: ServerSync>(
    server: &Server<S>,
    conn: ConnId,
    t: &mut impl Transport,
) -> Served {
    let end = loop {
        match t.recv() {
            Incoming::Request(Request::Shutdown) => {
                t.send(&Response::Ok);
                break Served::Shutdown;
            }
            Incoming::Request(req) => {
                let r = {
                    let tr: &dyn Transport = t;
                    server.handle_until(conn, req, &|| tr.peer_gone())
                };
                if !t.send(&r) {
                    break Served::Disconnected;
                }
            }
            Incoming::Garbage(m) => {
                if !t.send(&Response::Err(OpError::BadRequest(m))) {
                    break Served::Disconnected;
                }
            }
            Incoming::Fatal(m) => {
                t.send(&Response::Err(OpError::BadRequest(m)));
                break Served::Disconnected;
            }
            Incoming::Closed => break Served::Disconnected,
        }
    };
    server.disconnect(conn);
    end
}

#[cfg(test)]
mod tests;
