//! The manager's Redis backend (feature `redis`, [`Manager::redis`](super::Manager::redis)):
//! the same requests the proxies send to a manager server
//! ([`Request`]/[`Op`]), each answered by one atomic step on a Redis server,
//! the model's (`procshare_model::redis`): its Lua text through a
//! [`RedisStore`], never a read-modify-write across round trips.
//!
//! * Objects live under keys `{namespace}:{kind}:{id}`; an id is
//!   `n * 32 + kind code` (`n` from `{namespace}:ids`), so an id names its
//!   kind. Named objects are registered in the hash `{namespace}:names`.
//! * Blocking operations (lock, recursive lock and semaphore acquire, event
//!   wait, queue put and get) use the model's one wait loop: pub/sub, a
//!   second look after subscribing, a sleep until a notification, a lease's
//!   end or the caller's deadline; never a polling loop.
//! * Each thread of each process has its own [`RedisStore`] (a wait holds its
//!   subscriber connection); a forked child opens its own (the cache is
//!   keyed by pid).
//! * Leases (locks, recursive locks, semaphore permits) are renewed by one
//!   keeper thread per process, every third of a lease, while held. A process
//!   that dies stops renewing: its leases run out, and the next acquirer of a
//!   lock is told the owner died ([`ManagerError::OwnerDied`]); a dead
//!   holder's permit comes back to the semaphore.

use super::client::{ManagerError, Result};
use crate::redis::{RedisError, RedisStore};
use procshare_model::manager::{Init, JoinableOp, Kind, ObjId, Op, OpError, Request, Response};
use procshare_model::redis::condition::{Condition, LockChange};
use procshare_model::redis::lock::LeaseLock;
use procshare_model::redis::objects::{self, data_call, data_reply, id_kind, kind_code};
use procshare_model::redis::queue::ManagerQueue;
use procshare_model::redis::rlock::RLeaseLock;
use procshare_model::redis::semaphore::Semaphore;
use procshare_model::redis::{barrier::Barrier, event::Event, Call, Resp, Store};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// The default lease of locks and permits ([`Manager::redis`](super::Manager::redis)).
pub(crate) const DEFAULT_LEASE: Duration = Duration::from_secs(10);
/// The timeout of each request to the server.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// One Redis manager: a server and a namespace.
#[derive(Debug)]
pub(crate) struct Backend {
    uid: u64,
    pub(crate) url: String,
    pub(crate) ns: String,
    lease_ms: u64,
}

impl Backend {
    /// A backend for `namespace` on the server at `url` (connects once, so
    /// that a server that is down is reported now).
    pub(crate) fn open(url: &str, ns: &str, lease: Duration) -> Result<Backend> {
        check_namespace(ns)?;
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let b = Backend {
            uid: NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            url: url.to_string(),
            ns: ns.to_string(),
            lease_ms: (lease.as_millis() as u64).max(30),
        };
        b.store()?;
        Ok(b)
    }

    /// This thread's store (opened on first use, and again in a forked child).
    fn store(&self) -> Result<Arc<RedisStore>> {
        let pid = std::process::id();
        if let Ok(Some(s)) = STORES.try_with(|m| {
            m.borrow()
                .get(&self.uid)
                .filter(|(p, _)| *p == pid)
                .map(|(_, s)| s.clone())
        }) {
            return Ok(s);
        }
        let s = Arc::new(RedisStore::open(&self.url, REQUEST_TIMEOUT)?);
        let _ = STORES.try_with(|m| m.borrow_mut().insert(self.uid, (pid, s.clone())));
        Ok(s)
    }

    fn prefix(&self, id: ObjId) -> String {
        objects::object_prefix(&self.ns, id)
    }

    fn eval(&self, call: &Call) -> Result<Resp> {
        Ok(self.store()?.eval(call)?)
    }

    /// A request, as the server would answer it.
    pub(crate) fn request(&self, req: &Request) -> Result<Response> {
        match req {
            Request::Ping => {
                self.store()?.command(&[b"PING"])?;
                Ok(Response::Pong)
            }
            Request::Create(init) => self.create(init),
            Request::Named(name, init) => self.named(name, init),
            Request::Describe(id) => match id_kind(*id) {
                Some(k) => Ok(Response::Created(*id, k)),
                None => Ok(Response::Err(OpError::NoSuchObject(*id))),
            },
            Request::Op(id, op) => self.op(*id, op),
            // Nothing is counted: objects live until the namespace is cleared.
            Request::Incref(_) | Request::Decref(_) | Request::Shutdown => Ok(Response::Ok),
        }
    }

    fn create(&self, init: &Init) -> Result<Response> {
        let kind = init.kind();
        let Some(code) = kind_code(kind) else {
            return Ok(unsupported(&format!("a {kind:?}")));
        };
        let r = self.eval(&Call::new(
            &objects::OBJ_NEW,
            vec![format!("{}:ids", self.ns)],
            vec![code.to_string().into_bytes()],
        ))?;
        let id = new_id(r)?;
        // The object is nobody else's until its proxy is returned: its
        // initial state may take a step of its own.
        let p = self.prefix(id);
        let set = |key: String, v: Vec<u8>| {
            self.eval(&Call::new(&objects::VALUE_SET, vec![key], vec![v]))
                .map(drop)
        };
        match init {
            Init::List(items) if !items.is_empty() => {
                self.data(kind, &p, &Op::Extend(items.clone()))?;
            }
            Init::Dict(pairs) if !pairs.is_empty() => {
                self.data(kind, &p, &Op::DictUpdate(pairs.clone()))?;
            }
            Init::Value(v) => set(p.clone(), v.clone())?,
            Init::Barrier { parties } => {
                set(format!("{p}:parties"), parties.to_string().into_bytes())?;
            }
            Init::Semaphore { value, bound } => {
                Semaphore::new(&p, self.lease_ms).create(&*self.store()?, *value)?;
                set(
                    format!("{p}:bound"),
                    bound.unwrap_or(0).to_string().into_bytes(),
                )?;
            }
            Init::Queue {
                maxsize: Some(m), ..
            }
            | Init::JoinableQueue { maxsize: Some(m) }
                if *m > 0 =>
            {
                set(
                    ManagerQueue::new(&p).max_key().to_string(),
                    m.to_string().into_bytes(),
                )?;
            }
            _ => {}
        }
        Ok(Response::Created(id, kind))
    }

    fn named(&self, name: &str, init: &Init) -> Result<Response> {
        let kind = init.kind();
        let empty = match init {
            Init::List(v) => v.is_empty(),
            Init::Dict(v) => v.is_empty(),
            Init::Namespace | Init::Lock | Init::RLock | Init::Event => true,
            _ => false,
        };
        let Some(code) = kind_code(kind).filter(|_| empty) else {
            return Ok(unsupported(&format!("a named {kind:?}")));
        };
        let r = self.eval(&Call::new(
            &objects::OBJ_NAMED,
            vec![format!("{}:names", self.ns), format!("{}:ids", self.ns)],
            vec![name.as_bytes().to_vec(), code.to_string().into_bytes()],
        ))?;
        let id = new_id(r)?;
        match id_kind(id) {
            Some(found) if found == kind => Ok(Response::Created(id, kind)),
            Some(found) => Ok(Response::Err(OpError::NameTaken {
                name: name.to_string(),
                found,
            })),
            None => Ok(Response::Err(OpError::NoSuchObject(id))),
        }
    }

    fn data(&self, kind: Kind, p: &str, op: &Op) -> Result<Response> {
        match data_call(kind, p, op) {
            None => Ok(unsupported(&format!("{} on a {kind:?}", op_name(op)))),
            Some(call) => Ok(data_reply(op, self.eval(&call)?).map_err(RedisError::from)?),
        }
    }

    fn op(&self, id: ObjId, op: &Op) -> Result<Response> {
        let Some(kind) = id_kind(id) else {
            return Ok(Response::Err(OpError::NoSuchObject(id)));
        };
        let p = self.prefix(id);
        match kind {
            Kind::List | Kind::Dict | Kind::Value | Kind::Namespace => self.data(kind, &p, op),
            Kind::Lock => self.lock_op(id, &p, op),
            Kind::RLock => self.rlock_op(id, &p, op),
            Kind::Condition => {
                let c = Condition::new(&p, &me(), self.lease_ms);
                let s = self.store()?;
                match c.cond_op(&*s, op) {
                    None => self.rlock_op(id, &p, op),
                    Some(r) => {
                        let (resp, change) = r?;
                        match change {
                            LockChange::Took { token, .. } => {
                                let renew = c.lock().lease(&p).renew_call(token);
                                hold(self, rlock_slot(id), token, renew);
                            }
                            LockChange::Gave => {
                                unhold(self, rlock_slot(id));
                            }
                            LockChange::None => {}
                        }
                        Ok(resp)
                    }
                }
            }
            Kind::Semaphore => self.sem_op(id, &p, op),
            Kind::Barrier => self.barrier_op(&p, op),
            Kind::Event => {
                let e = Event::new(&p);
                let s = self.store()?;
                match op {
                    Op::EventSet => e.set(&*s).map(|_| Response::Ok),
                    Op::EventClear => e.clear(&*s).map(|_| Response::Ok),
                    Op::EventIsSet => e.is_set(&*s).map(Response::Bool),
                    Op::EventWait(w) => e.wait(&*s, w.timeout_ms()).map(Response::Bool),
                    _ => return Ok(unsupported(&format!("{} on an Event", op_name(op)))),
                }
                .map_err(Into::into)
            }
            Kind::Queue | Kind::JoinableQueue => {
                let q = ManagerQueue::new(&p);
                let s = self.store()?;
                match (kind, op) {
                    (Kind::JoinableQueue, Op::Joinable(JoinableOp::TaskDone)) => {
                        return Ok(match q.task_done(&*s)? {
                            Some(_) => Response::Ok,
                            None => Response::Err(OpError::BadRequest(
                                "task_done() called too many times".into(),
                            )),
                        })
                    }
                    (Kind::JoinableQueue, Op::Joinable(JoinableOp::Join(w))) => {
                        return Ok(if q.join(&*s, w.timeout_ms())? {
                            Response::Ok
                        } else {
                            Response::Err(OpError::Timeout)
                        })
                    }
                    (Kind::JoinableQueue, Op::Joinable(JoinableOp::Unfinished)) => {
                        return Ok(Response::Usize(q.unfinished(&*s)?))
                    }
                    _ => {}
                }
                match op {
                    Op::Put(x, w) => Ok(if q.put(&*s, x, w.timeout_ms())? {
                        Response::Ok
                    } else {
                        Response::Err(OpError::Timeout)
                    }),
                    Op::QGet(w) => Ok(match q.get(&*s, w.timeout_ms())? {
                        Some(x) => Response::Item(x),
                        None => Response::Err(OpError::Timeout),
                    }),
                    Op::Len => self.data(Kind::List, q.items_key(), &Op::Len),
                    Op::QFull => {
                        let r = self.eval(&Call::new(
                            &objects::QUEUE_FULL,
                            vec![q.items_key().to_string(), q.max_key().to_string()],
                            vec![],
                        ))?;
                        match &r {
                            Resp::Array(v) if v.len() == 2 && v[0] == Resp::Int(1) => {
                                Ok(Response::Bool(v[1] == Resp::Int(1)))
                            }
                            _ => Err(bad_reply("queue_full", r)),
                        }
                    }
                    _ => Ok(unsupported(&format!("{} on a Queue", op_name(op)))),
                }
            }
            other => Ok(unsupported(&format!("a {other:?}"))),
        }
    }

    fn lock_op(&self, id: ObjId, p: &str, op: &Op) -> Result<Response> {
        let l = LeaseLock::new(p, self.lease_ms);
        let s = self.store()?;
        match op {
            Op::Acquire(w) => match l.acquire(&*s, w.timeout_ms())? {
                None => Ok(Response::Bool(false)),
                Some(h) => {
                    hold(self, id, h.token, l.renew_call(h.token));
                    if h.owner_died {
                        return Err(ManagerError::OwnerDied { token: h.token });
                    }
                    Ok(Response::Bool(true))
                }
            },
            Op::Release => match unhold(self, id) {
                Some(token) if l.release(&*s, token)? => Ok(Response::Ok),
                _ => Ok(Response::Err(OpError::NotOwner)),
            },
            Op::Locked => Ok(Response::Bool(l.locked(&*s)?)),
            _ => Ok(unsupported(&format!("{} on a Lock", op_name(op)))),
        }
    }

    fn rlock_op(&self, id: ObjId, p: &str, op: &Op) -> Result<Response> {
        let kind = id_kind(id).unwrap_or(Kind::RLock);
        let l = RLeaseLock::new(p, &me(), self.lease_ms);
        let s = self.store()?;
        match op {
            Op::Acquire(w) => match l.acquire(&*s, w.timeout_ms())? {
                None => Ok(Response::Bool(false)),
                Some(h) => {
                    if h.depth == 1 {
                        let renew = l.lease(p).renew_call(h.held.token);
                        hold(self, rlock_slot(id), h.held.token, renew);
                    }
                    if h.held.owner_died {
                        return Err(ManagerError::OwnerDied {
                            token: h.held.token,
                        });
                    }
                    Ok(Response::Bool(true))
                }
            },
            Op::Release => match l.release(&*s)? {
                None => Ok(Response::Err(OpError::NotOwner)),
                Some(left) => {
                    if left == 0 {
                        unhold(self, rlock_slot(id));
                    }
                    Ok(Response::Ok)
                }
            },
            Op::Locked => Ok(Response::Bool(l.lease(p).locked(&*s)?)),
            _ => Ok(unsupported(&format!("{} on an {kind:?}", op_name(op)))),
        }
    }

    /// The barrier: the local manager's steps (arrive, await, abort-if; see
    /// `procshare_model::manager::barrier_wait`) over the model's Redis barrier.
    fn barrier_op(&self, p: &str, op: &Op) -> Result<Response> {
        let parties = match self.eval(&Call::new(
            &objects::VALUE_GET,
            vec![format!("{p}:parties")],
            vec![],
        ))? {
            Resp::Array(v) => v.get(1).and_then(Resp::int).unwrap_or(0).max(0) as u64,
            _ => 0,
        };
        let b = Barrier::new(p, parties);
        let s = self.store()?;
        let broken = || Response::Err(OpError::BrokenBarrier);
        Ok(match op {
            Op::BarrierArrive => match b.arrive(&*s)? {
                None => broken(),
                Some((g, i)) => Response::Arrived(g as u64, i),
            },
            Op::BarrierAwait(g, w) => match b.await_gen(&*s, *g as i64, w.timeout_ms())? {
                Some(true) => Response::Ok,
                Some(false) => broken(),
                None => Response::Err(OpError::Timeout),
            },
            Op::BarrierAbortIf(g) => Response::Bool(!b.abort_if(&*s, *g as i64)?),
            Op::BarrierAbort => {
                b.abort(&*s)?;
                Response::Ok
            }
            Op::BarrierReset => {
                b.reset(&*s)?;
                Response::Ok
            }
            Op::BarrierState => {
                let (waiting, is_broken) = b.state(&*s)?;
                Response::Counts(vec![parties, waiting, is_broken as u64])
            }
            _ => unsupported(&format!("{} on a Barrier", op_name(op))),
        })
    }

    fn sem_op(&self, id: ObjId, p: &str, op: &Op) -> Result<Response> {
        let sem = Semaphore::new(p, self.lease_ms);
        let s = self.store()?;
        match op {
            Op::Acquire(w) => match sem.acquire(&*s, w.timeout_ms())? {
                None => Ok(Response::Bool(false)),
                Some(permit) => {
                    hold(self, id, permit.token, sem.renew_call(permit.token));
                    Ok(Response::Bool(true))
                }
            },
            Op::Release => {
                if let Some(token) = unhold(self, id) {
                    // `false`: its lease ran out and the permit came back
                    // already; giving it back twice would add one.
                    sem.release(&*s, token)?;
                    return Ok(Response::Ok);
                }
                let bound = match self.eval(&Call::new(
                    &objects::VALUE_GET,
                    vec![format!("{p}:bound")],
                    vec![],
                ))? {
                    Resp::Array(v) => v.get(1).and_then(Resp::int).unwrap_or(0).max(0) as u64,
                    _ => 0,
                };
                Ok(match sem.release_new(&*s, bound)? {
                    Some(_) => Response::Ok,
                    None => Response::Err(OpError::OverRelease),
                })
            }
            Op::SemValue => Ok(Response::Usize(sem.value(&*s)?)),
            _ => Ok(unsupported(&format!("{} on a Semaphore", op_name(op)))),
        }
    }
}

impl Backend {
    /// The fencing token of this process's latest held acquisition of lock
    /// (or recursive lock) `id`.
    pub(crate) fn token(&self, id: ObjId, kind: Kind) -> Option<u64> {
        let slot = if matches!(kind, Kind::RLock | Kind::Condition) {
            rlock_slot(id)
        } else {
            id
        };
        let g = lock_holdings();
        g.held.get(&(self.uid, slot))?.last().map(|(_, t)| *t)
    }

    /// Write value `id` on behalf of the acquisition with `token`, unless a
    /// later acquisition's token wrote it already (the model's `fenced_set`).
    pub(crate) fn fenced_set(&self, id: ObjId, token: u64, v: &[u8]) -> Result<bool> {
        if id_kind(id) != Some(Kind::Value) {
            return Err(ManagerError::Op(OpError::WrongType {
                found: id_kind(id).unwrap_or(Kind::Value),
                op: "fenced set".into(),
            }));
        }
        let p = self.prefix(id);
        let s = self.store()?;
        Ok(procshare_model::redis::lock::fenced_set(&*s, &p, token, v)?)
    }
}

/// Delete every key of `namespace` on the server at `url` (what
/// [`Manager::redis_clear`](Self::redis_clear)(super::Manager::redis_clear) does). Returns how
/// many keys were deleted.
pub(crate) fn clear(url: &str, ns: &str) -> Result<u64> {
    check_namespace(ns)?;
    let s = RedisStore::open(url, REQUEST_TIMEOUT)?;
    let pattern = format!("{ns}:*");
    let mut cursor = b"0".to_vec();
    let mut n = 0;
    loop {
        let r = s.command(&[
            b"SCAN",
            &cursor,
            b"MATCH",
            pattern.as_bytes(),
            b"COUNT",
            b"1000",
        ])?;
        let Resp::Array(v) = r else {
            return Err(bad_reply("SCAN", r));
        };
        let (Some(Resp::Bulk(next)), Some(Resp::Array(keys))) = (v.first(), v.get(1)) else {
            return Err(bad_reply("SCAN", Resp::Array(v)));
        };
        for k in keys {
            if let Resp::Bulk(k) = k {
                if let Resp::Int(d) = s.command(&[b"UNLINK", k])? {
                    n += d as u64;
                }
            }
        }
        if next == b"0" {
            return Ok(n);
        }
        cursor = next.clone();
    }
}

fn bad_reply(script: &'static str, reply: Resp) -> ManagerError {
    RedisError::from(procshare_model::redis::BadReply { script, reply }).into()
}

/// A namespace is a key prefix and a `SCAN` pattern: no glob characters.
fn check_namespace(ns: &str) -> Result<()> {
    if ns.is_empty()
        || ns
            .chars()
            .any(|c| "*?[]\\".contains(c) || c.is_whitespace())
    {
        return Err(ManagerError::Op(OpError::BadRequest(format!(
            "{ns:?} is not a Redis manager namespace (non-empty, without spaces or *?[]\\)"
        ))));
    }
    Ok(())
}

fn new_id(r: Resp) -> Result<ObjId> {
    match &r {
        Resp::Array(v) if v.len() == 2 && v[0] == Resp::Int(1) => match v[1].int() {
            Some(id) if id > 0 => Ok(id as ObjId),
            _ => Err(bad_reply("obj_new", r)),
        },
        _ => Err(bad_reply("obj_new", r)),
    }
}

fn unsupported(what: &str) -> Response {
    Response::Err(OpError::BadRequest(format!(
        "{what} is not supported by the Redis backend"
    )))
}

fn op_name(op: &Op) -> String {
    let s = format!("{op:?}");
    s.split(['(', ' ', '{']).next().unwrap_or("op").to_string()
}

/// This thread's identity as a recursive-lock holder: unique per host,
/// process (a forked child gets a fresh nonce) and thread.
fn me() -> String {
    let (pid, nonce) = *IDENTITY.get();
    format!("{pid}:{nonce:016x}:{:?}", std::thread::current().id())
}

/// A recursive lock's slot in the holdings (apart from a lock's of the same id space).
fn rlock_slot(id: ObjId) -> ObjId {
    id | (1 << 63)
}

static IDENTITY: crate::sys::fork::ForkLocal<(u32, u64)> = crate::sys::fork::ForkLocal::new(|| {
    use std::hash::{BuildHasher, Hasher};
    // RandomState's keys come from the OS's randomness.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    (std::process::id(), h.finish())
});

thread_local! {
    /// This thread's stores: backend uid -> (pid that opened it, store).
    static STORES: RefCell<HashMap<u64, (u32, Arc<RedisStore>)>> = RefCell::new(HashMap::new());
}

/// What this process holds: per object, a stack of (lease handle, token),
/// and the leases the keeper renews.
#[derive(Default)]
struct Holdings {
    next: u64,
    held: HashMap<(u64, ObjId), Vec<(u64, u64)>>,
    /// handle -> (url, renew call, lease ms).
    leases: HashMap<u64, (String, Call, u64)>,
    keeper: bool,
}

struct Keeper {
    h: Mutex<Holdings>,
    wake: Condvar,
}

static KEEPER: crate::sys::fork::ForkLocal<Keeper> = crate::sys::fork::ForkLocal::new(|| Keeper {
    h: Mutex::new(Holdings::default()),
    wake: Condvar::new(),
});

fn lock_holdings() -> std::sync::MutexGuard<'static, Holdings> {
    KEEPER.get().h.lock().unwrap_or_else(|p| p.into_inner())
}

/// Record a held lease (token) of object `id`, renewed by `renew` until released.
fn hold(b: &Backend, id: ObjId, token: u64, renew: Call) {
    let mut g = lock_holdings();
    g.next += 1;
    let handle = g.next;
    g.held.entry((b.uid, id)).or_default().push((handle, token));
    g.leases.insert(handle, (b.url.clone(), renew, b.lease_ms));
    if !g.keeper {
        g.keeper = crate::sys::thread::spawn_helper("procshare-redis-leases".into(), keep).is_ok();
    }
    drop(g);
    KEEPER.get().wake.notify_all();
}

/// Forget the latest held lease of `id`; its token.
fn unhold(b: &Backend, id: ObjId) -> Option<u64> {
    let mut g = lock_holdings();
    let stack = g.held.get_mut(&(b.uid, id))?;
    let (handle, token) = stack.pop()?;
    if stack.is_empty() {
        g.held.remove(&(b.uid, id));
    }
    g.leases.remove(&handle);
    Some(token)
}

/// The keeper: renews every held lease every third of its length; sleeps
/// without a timeout while nothing is held.
fn keep() {
    let k = KEEPER.get();
    let mut stores: HashMap<String, RedisStore> = HashMap::new();
    loop {
        let (batch, period) = {
            let mut g = k.h.lock().unwrap_or_else(|p| p.into_inner());
            while g.leases.is_empty() {
                g = k.wake.wait(g).unwrap_or_else(|p| p.into_inner());
            }
            let period = g.leases.values().map(|l| l.2).min().unwrap_or(1000) / 3;
            (g.leases.keys().copied().collect::<Vec<_>>(), period)
        };
        std::thread::sleep(Duration::from_millis(period.max(1)));
        for handle in batch {
            let Some((url, call, _)) = lock_holdings().leases.get(&handle).cloned() else {
                continue; // released meanwhile
            };
            if !stores.contains_key(&url) {
                match RedisStore::open(&url, REQUEST_TIMEOUT) {
                    Ok(s) => {
                        stores.insert(url.clone(), s);
                    }
                    Err(_) => continue, // tried again next period
                }
            }
            let s = &stores[&url];
            match s.eval(&call) {
                // The lease ran out: this holder lost it; stop renewing.
                Ok(Resp::Int(0)) => {
                    lock_holdings().leases.remove(&handle);
                }
                Ok(_) => {}
                Err(_) => {
                    stores.remove(&url);
                }
            }
        }
    }
}

impl super::Manager {
    /// A manager whose shared objects live on a Redis server, under the key
    /// prefix `namespace` (Python programs reach for Redis when they outgrow
    /// one machine): the same proxies as [`Manager::start`](super::Manager::start)'s,
    /// for every process on every host that calls this with the same URL
    /// and namespace. `list`, `dict`, `value`, `namespace`, `lock`,
    /// `rlock`, `semaphore`, `bounded_semaphore`, `event`, `queue`,
    /// `list_named` and `dict_named` are there; the other kinds, and a few
    /// operations (see the README's "Across machines"), answer
    /// [`OpError::BadRequest`] "not supported by the Redis backend".
    ///
    /// * Each operation is one Lua script, so it is atomic on the server.
    /// * Locks and semaphore permits are held by a lease of 10 s
    ///   ([`Manager::redis_with_lease`](Self::redis_with_lease) to choose it) that a background
    ///   thread renews while they are held. A holder that dies, or whose host
    ///   is cut off, loses its lock when the lease runs out; the next acquirer
    ///   gets [`ManagerError::OwnerDied`] (the lock held) with a larger
    ///   fencing token.
    /// * Blocking calls wait on pub/sub notifications, never by polling, and
    ///   every call has a timeout (5 s per request).
    /// * Objects are not reference counted: they stay under the namespace
    ///   until [`Manager::redis_clear`](Self::redis_clear) deletes it.
    /// * [`Manager::address`](super::Manager::address) is a label,
    ///   `abstract:procshare-redis:{url}#{namespace}`; a proxy read back
    ///   from a managed list, or received by another process (a child
    ///   started by spawn or forkserver, say), finds its manager by it,
    ///   connecting if the process has none yet (then with the default
    ///   lease).
    ///
    /// ```no_run
    /// use procshare::Manager;
    /// # fn main() -> Result<(), procshare::ManagerError> {
    /// let m = Manager::redis("redis://127.0.0.1:6379/", "myapp")?;
    /// let l = m.list::<String>()?;
    /// l.append("one".to_string())?;
    /// assert_eq!(l.to_vec()?, ["one"]);
    /// Manager::redis_clear("redis://127.0.0.1:6379/", "myapp")?;
    /// # Ok(()) }
    /// ```
    ///
    /// A server that is not there is an error, not a hang:
    ///
    /// ```
    /// let e = procshare::Manager::redis("redis://127.0.0.1:1/", "ns").unwrap_err();
    /// assert!(matches!(e, procshare::ManagerError::Redis(procshare::RedisError::Down { .. })));
    /// ```
    pub fn redis(url: &str, namespace: &str) -> Result<super::Manager> {
        Self::redis_with_lease(url, namespace, DEFAULT_LEASE)
    }

    /// [`Manager::redis`](Self::redis) with locks and permits held by leases of `lease`
    /// (at least 30 ms): how long a dead holder keeps them.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), procshare::ManagerError> {
    /// let m = procshare::Manager::redis_with_lease(
    ///     "redis://127.0.0.1:6379/",
    ///     "myapp",
    ///     std::time::Duration::from_secs(2),
    /// )?;
    /// let l = m.lock()?;
    /// l.acquire()?;
    /// l.release()?;
    /// # Ok(()) }
    /// ```
    pub fn redis_with_lease(url: &str, namespace: &str, lease: Duration) -> Result<super::Manager> {
        let ep = super::client::Endpoint::new_redis(Backend::open(url, namespace, lease)?);
        super::client::Endpoint::publish(&ep);
        Ok(super::Manager {
            ep,
            server: None,
            types: Default::default(),
            exitcode: None,
        })
    }

    /// Delete every object of `namespace` on the Redis server at `url` (every
    /// key starting with `{namespace}:`); returns how many keys went. Not
    /// atomic: run it when no process uses the namespace.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), procshare::ManagerError> {
    /// let n = procshare::Manager::redis_clear("redis://127.0.0.1:6379/", "myapp")?;
    /// # Ok(()) }
    /// ```
    pub fn redis_clear(url: &str, namespace: &str) -> Result<u64> {
        clear(url, namespace)
    }
}
