//! Shuttle instantiation of the manager server and its linearizability checks.
//!
//! Several model clients, each with its own connection (a pair of shuttle
//! channels served by its own server thread running the shipped
//! [`serve_connection`] loop), run concurrent list or dict operations. Every
//! operation's invocation and response are stamped with a global logical
//! clock; the history must be linearizable against a sequential `Vec`/`HashMap`
//! (a search over the orders the real-time order allows). The clients'
//! multi-request sequences ([`condition_wait`], [`barrier_wait`],
//! [`sort_list`]) run over the in-process server ([`Direct`]) under loom and
//! shuttle, each timeout branch included. Every seeded mutant (7xx) is proven
//! caught.

use super::*;
use crate::platform::{Mutant, Seeded};
use shuttle::sync::mpsc::{channel, Receiver, Sender};
use std::time::Duration;

/// [`ServerSync`] over shuttle's `Mutex` and `Condvar`, running mutant
/// `Mutant(M)` (0: the correct protocol).
///
/// shuttle's `Condvar::wait_timeout` never times out, so a finite deadline is
/// modelled here instead: such a wait releases the lock, yields, and then
/// either expires or retries, a choice shuttle's scheduler makes (so a finite
/// wait may expire at any point where it would sleep, or be satisfied).
#[derive(Debug)]
pub struct ShuttleSync<const M: u32 = 0>;

impl<const M: u32> Seeded for ShuttleSync<M> {
    const MUTANT: Mutant = Mutant(M);
}

impl<const M: u32> ServerSync for ShuttleSync<M> {
    type Mutex<T: Send + 'static> = shuttle::sync::Mutex<T>;
    type Guard<'a, T: Send + 'static> = shuttle::sync::MutexGuard<'a, T>;
    type Condvar = shuttle::sync::Condvar;
    type Deadline = Option<Duration>;
    fn mutex<T: Send + 'static>(v: T) -> Self::Mutex<T> {
        shuttle::sync::Mutex::new(v)
    }
    fn condvar() -> Self::Condvar {
        shuttle::sync::Condvar::new()
    }
    fn lock<T: Send + 'static>(m: &Self::Mutex<T>) -> Self::Guard<'_, T> {
        m.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn deadline(timeout: Option<Duration>) -> Self::Deadline {
        timeout
    }
    fn wait<'a, T: Send + 'static>(
        m: &'a Self::Mutex<T>,
        cv: &Self::Condvar,
        g: Self::Guard<'a, T>,
        d: &Self::Deadline,
    ) -> (Self::Guard<'a, T>, Slept) {
        use shuttle::rand::Rng;
        match d {
            None => (cv.wait(g).unwrap_or_else(|p| p.into_inner()), Slept::Woken),
            Some(t) if t.is_zero() => (g, Slept::Expired),
            Some(_) => {
                drop(g);
                shuttle::thread::yield_now();
                let g = Self::lock(m);
                if shuttle::rand::thread_rng().gen::<bool>() {
                    (g, Slept::Expired)
                } else {
                    (g, Slept::Woken)
                }
            }
        }
    }
    fn notify_all(cv: &Self::Condvar) {
        cv.notify_all();
    }
}

/// [`ServerSync`] over loom's `Mutex` and `Condvar`, running mutant
/// `Mutant(M)`. loom's condition variable ignores timeouts, so the outcome of
/// a finite wait is chosen outside the model: with `EXPIRE` every finite wait
/// expires wherever it would sleep, without it every finite wait lasts until
/// it is satisfied. A check runs both.
#[derive(Debug)]
pub struct LoomSync<const M: u32 = 0, const EXPIRE: bool = false>;

impl<const M: u32, const EXPIRE: bool> Seeded for LoomSync<M, EXPIRE> {
    const MUTANT: Mutant = Mutant(M);
}

impl<const M: u32, const EXPIRE: bool> ServerSync for LoomSync<M, EXPIRE> {
    type Mutex<T: Send + 'static> = loom::sync::Mutex<T>;
    type Guard<'a, T: Send + 'static> = loom::sync::MutexGuard<'a, T>;
    type Condvar = loom::sync::Condvar;
    type Deadline = Option<Duration>;
    fn mutex<T: Send + 'static>(v: T) -> Self::Mutex<T> {
        loom::sync::Mutex::new(v)
    }
    fn condvar() -> Self::Condvar {
        loom::sync::Condvar::new()
    }
    fn lock<T: Send + 'static>(m: &Self::Mutex<T>) -> Self::Guard<'_, T> {
        m.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn deadline(timeout: Option<Duration>) -> Self::Deadline {
        timeout
    }
    fn wait<'a, T: Send + 'static>(
        _m: &'a Self::Mutex<T>,
        cv: &Self::Condvar,
        g: Self::Guard<'a, T>,
        d: &Self::Deadline,
    ) -> (Self::Guard<'a, T>, Slept) {
        match d {
            Some(t) if t.is_zero() || EXPIRE => (g, Slept::Expired),
            _ => (cv.wait(g).unwrap_or_else(|p| p.into_inner()), Slept::Woken),
        }
    }
    fn notify_all(cv: &Self::Condvar) {
        cv.notify_all();
    }
}

struct Chan {
    rx: Receiver<Request>,
    tx: Sender<Response>,
}

impl Transport for Chan {
    fn recv(&mut self) -> Incoming {
        match self.rx.recv() {
            Ok(r) => Incoming::Request(r),
            Err(_) => Incoming::Closed,
        }
    }
    fn send(&mut self, r: &Response) -> bool {
        self.tx.send(r.clone()).is_ok()
    }
}

/// A client's connection in the model.
struct Client {
    tx: Sender<Request>,
    rx: Receiver<Response>,
}

impl Client {
    fn call(&self, r: Request) -> Response {
        self.tx.send(r).expect("server thread alive");
        self.rx.recv().expect("server answers")
    }
}

/// A model client's requests about one object, over its connection (served by
/// the shipped [`serve_connection`] loop), with the mutant of the server's
/// instantiation `S`.
struct Remote<'a, S> {
    client: &'a Client,
    id: ObjId,
    _s: std::marker::PhantomData<S>,
}

impl<'a, S> Remote<'a, S> {
    fn new(client: &'a Client, id: ObjId) -> Self {
        Remote {
            client,
            id,
            _s: std::marker::PhantomData,
        }
    }
}

impl<S: ServerSync> Requester for Remote<'_, S> {
    type Error = ClientError;
    const MUTANT: Mutant = S::MUTANT;
    fn request(&self, op: Op) -> Result<Response, ClientError> {
        Ok(self.client.call(Request::Op(self.id, op)))
    }
}

/// One completed operation of a history.
#[derive(Debug, Clone)]
struct Event {
    inv: u64,
    res: u64,
    op: Op,
    out: Response,
}

/// A sequential specification.
trait Spec: Clone + std::fmt::Debug {
    fn step(&mut self, op: &Op) -> Response;
}

/// A plain `Vec` of one-byte items.
#[derive(Clone, Debug, Default)]
struct VecSpec(Vec<Bytes>);

impl Spec for VecSpec {
    fn step(&mut self, op: &Op) -> Response {
        let v = &mut self.0;
        match op {
            Op::Append(x) => {
                v.push(x.clone());
                Response::Ok
            }
            Op::Extend(xs) => {
                v.extend(xs.iter().cloned());
                Response::Ok
            }
            Op::Pop(None) => match v.pop() {
                Some(x) => Response::Item(x),
                None => Response::Err(OpError::IndexOutOfRange { index: 0, len: 0 }),
            },
            Op::Len => Response::Usize(v.len() as u64),
            Op::Snapshot => Response::Items(v.clone()),
            Op::Insert(i, x) => {
                let i = (*i as usize).min(v.len());
                v.insert(i, x.clone());
                Response::Ok
            }
            Op::Remove(x) => match v.iter().position(|y| y == x) {
                Some(i) => {
                    v.remove(i);
                    Response::Ok
                }
                None => Response::Err(OpError::ValueNotInList),
            },
            Op::Get(i) => match v.get(*i as usize) {
                Some(x) => Response::Item(x.clone()),
                None => Response::Err(OpError::IndexOutOfRange {
                    index: *i,
                    len: v.len() as u64,
                }),
            },
            Op::ListRepeat(n) => {
                *v = (0..*n).flat_map(|_| v.iter().cloned()).collect();
                Response::Ok
            }
            Op::Clear => {
                v.clear();
                Response::Ok
            }
            other => unreachable!("not in the list spec: {other:?}"),
        }
    }
}

/// A plain `HashMap`.
#[derive(Clone, Debug, Default)]
struct MapSpec(std::collections::HashMap<Bytes, Bytes>);

impl Spec for MapSpec {
    fn step(&mut self, op: &Op) -> Response {
        let m = &mut self.0;
        match op {
            Op::DictInsert(k, v) => Response::MaybeItem(m.insert(k.clone(), v.clone())),
            Op::DictRemove(k) => Response::MaybeItem(m.remove(k)),
            Op::DictGet(k) => Response::MaybeItem(m.get(k).cloned()),
            Op::Len => Response::Usize(m.len() as u64),
            Op::DictSetDefault(k, d) => {
                Response::Item(m.entry(k.clone()).or_insert_with(|| d.clone()).clone())
            }
            Op::DictPop(k) => match m.remove(k) {
                Some(v) => Response::Item(v),
                None => Response::Err(OpError::KeyNotFound),
            },
            other => unreachable!("not in the dict spec: {other:?}"),
        }
    }
}

/// The server's answer in the spec's terms (a snapshot's version is not observable in the spec).
fn normalize(r: &Response) -> Response {
    match r {
        Response::Versioned(_, items) => Response::Items(items.clone()),
        other => other.clone(),
    }
}

/// Is there an order of `h`, consistent with real time, in which `spec` gives every answer?
fn linearizable<S: Spec>(spec: &S, h: &[Event]) -> bool {
    fn go<S: Spec>(spec: &S, h: &[Event], done: u64) -> bool {
        if done.count_ones() as usize == h.len() {
            return true;
        }
        // An op may go next only if no pending op responded before it was invoked.
        let min_res = h
            .iter()
            .enumerate()
            .filter(|(i, _)| done & (1 << i) == 0)
            .map(|(_, e)| e.res)
            .min()
            .unwrap_or(u64::MAX);
        for (i, e) in h.iter().enumerate() {
            if done & (1 << i) != 0 || e.inv > min_res {
                continue;
            }
            let mut s = spec.clone();
            if s.step(&e.op) == normalize(&e.out) && go(&s, h, done | (1 << i)) {
                return true;
            }
        }
        false
    }
    assert!(h.len() < 64);
    go(spec, h, 0)
}

/// Run `scripts` (one per client, each a list of ops on object `init`) against a
/// server, then check the history linearizable against `spec` (starting from `spec0`).
fn run_history<S: ServerSync, P: Spec + Send + 'static>(
    init: Init,
    spec0: P,
    scripts: Vec<Vec<Op>>,
) {
    let server = std::sync::Arc::new(Server::<S>::new());
    let id = match server.handle(0, Request::Create(init)) {
        Response::Created(id, _) => id,
        other => panic!("create failed: {other:?}"),
    };
    let clock = std::sync::Arc::new(shuttle::sync::atomic::AtomicU64::new(0));
    let mut servers = Vec::new();
    let mut clients = Vec::new();
    for (c, script) in scripts.into_iter().enumerate() {
        let (qtx, qrx) = channel::<Request>();
        let (rtx, rrx) = channel::<Response>();
        let srv = server.clone();
        servers.push(shuttle::thread::spawn(move || {
            let mut t = Chan { rx: qrx, tx: rtx };
            serve_connection(&srv, c as u64 + 1, &mut t)
        }));
        let clock = clock.clone();
        clients.push(shuttle::thread::spawn(move || {
            let cl = Client { tx: qtx, rx: rrx };
            let mut h = Vec::new();
            for op in script {
                let inv = clock.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let out = cl.call(Request::Op(id, op.clone()));
                let res = clock.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                h.push(Event { inv, res, op, out });
            }
            h
        }));
    }
    let mut history = Vec::new();
    for c in clients {
        history.extend(c.join().expect("client thread"));
    }
    for s in servers {
        assert_eq!(s.join().expect("server thread"), Served::Disconnected);
    }
    crate::check!(
        linearizable(&spec0, &history),
        "history not linearizable against the sequential spec {spec0:?}: {history:#?}"
    );
}

fn b(x: u8) -> Bytes {
    vec![x]
}

/// The list workload (one shuttle execution): 3 clients, each with its own
/// connection, run pops, appends, an extend, snapshots, a remove and a get on
/// one list; panics unless the history is linearizable against a `Vec`.
pub fn list_workload<S: ServerSync>() {
    run_history::<S, _>(
        Init::List(vec![b(1), b(2)]),
        VecSpec(vec![b(1), b(2)]),
        vec![
            vec![Op::Pop(None), Op::Append(b(10)), Op::Snapshot],
            vec![Op::Pop(None), Op::Extend(vec![b(20), b(21)]), Op::Len],
            vec![Op::Snapshot, Op::Remove(b(10)), Op::Pop(None), Op::Get(0)],
        ],
    );
}

/// The dict workload (one shuttle execution): 3 clients on overlapping keys;
/// panics unless the history is linearizable against a `HashMap`.
pub fn dict_workload<S: ServerSync>() {
    run_history::<S, _>(
        Init::Dict(vec![(b(1), b(1))]),
        MapSpec([(b(1), b(1))].into_iter().collect()),
        vec![
            vec![Op::DictInsert(b(2), b(20)), Op::DictPop(b(1)), Op::Len],
            vec![Op::DictSetDefault(b(2), b(21)), Op::DictRemove(b(2))],
            vec![
                Op::DictGet(b(1)),
                Op::DictInsert(b(1), b(11)),
                Op::DictGet(b(2)),
            ],
        ],
    );
}

/// The blocking workload (one shuttle execution): a consumer gets three items
/// from a queue of capacity 1 that a producer fills, both waiting without a
/// timeout, while a third client takes and releases a lock the others also
/// take. Panics if an item is lost, duplicated or reordered; a lost wake-up
/// leaves every thread asleep, which shuttle reports as a deadlock.
pub fn blocking_workload<S: ServerSync>() {
    let server = std::sync::Arc::new(Server::<S>::new());
    let created = |init| match server.handle(0, Request::Create(init)) {
        Response::Created(id, _) => id,
        other => panic!("create failed: {other:?}"),
    };
    let q = created(Init::Queue { maxsize: Some(1) });
    let lock = created(Init::Lock);
    let scripts: Vec<Vec<Op>> = vec![
        (0..3).map(|_| Op::QGet(Wait::Forever)).collect(),
        vec![
            Op::Put(b(1), Wait::Forever),
            Op::Acquire(Wait::Forever),
            Op::Release,
            Op::Put(b(2), Wait::Forever),
            Op::Put(b(3), Wait::Forever),
        ],
        vec![Op::Acquire(Wait::Forever), Op::Release],
    ];
    let mut servers = Vec::new();
    let mut clients = Vec::new();
    for (c, script) in scripts.into_iter().enumerate() {
        let (qtx, qrx) = channel::<Request>();
        let (rtx, rrx) = channel::<Response>();
        let srv = server.clone();
        servers.push(shuttle::thread::spawn(move || {
            let mut t = Chan { rx: qrx, tx: rtx };
            serve_connection(&srv, c as u64 + 1, &mut t)
        }));
        clients.push(shuttle::thread::spawn(move || {
            let cl = Client { tx: qtx, rx: rrx };
            script
                .into_iter()
                .map(|op| {
                    let id = if matches!(op, Op::Acquire(_) | Op::Release) {
                        lock
                    } else {
                        q
                    };
                    cl.call(Request::Op(id, op))
                })
                .collect::<Vec<_>>()
        }));
    }
    let outs: Vec<Vec<Response>> = clients
        .into_iter()
        .map(|c| c.join().expect("client"))
        .collect();
    for s in servers {
        s.join().expect("server thread");
    }
    let got: Vec<Response> = outs[0].clone();
    assert_eq!(
        got,
        vec![
            Response::Item(b(1)),
            Response::Item(b(2)),
            Response::Item(b(3))
        ],
        "queue lost, duplicated or reordered items"
    );
    assert!(outs[1]
        .iter()
        .chain(&outs[2])
        .all(|r| matches!(r, Response::Ok | Response::Bool(true))));
}

/// A client connection in the model: a server thread running the shipped loop.
fn model_conn<S: ServerSync>(
    server: &std::sync::Arc<Server<S>>,
    conn: ConnId,
) -> (Client, shuttle::thread::JoinHandle<Served>) {
    let (qtx, qrx) = channel::<Request>();
    let (rtx, rrx) = channel::<Response>();
    let srv = server.clone();
    let h = shuttle::thread::spawn(move || {
        let mut t = Chan { rx: qrx, tx: rtx };
        serve_connection(&srv, conn, &mut t)
    });
    (Client { tx: qtx, rx: rrx }, h)
}

fn create<S: ServerSync>(server: &Server<S>, init: Init) -> ObjId {
    match server.handle(0, Request::Create(init)) {
        Response::Created(id, _) => id,
        other => panic!("create failed: {other:?}"),
    }
}

/// The barrier workload (one shuttle execution): 3 clients pass a 3-party
/// barrier twice (arrive, then await the generation). Panics unless every
/// generation hands out the indices 0, 1, 2 exactly once and nobody passes
/// early; a lost wake-up is a deadlock.
pub fn barrier_workload<S: ServerSync>() {
    let server = std::sync::Arc::new(Server::<S>::new());
    let bar = create(&server, Init::Barrier { parties: 3 });
    let passed = std::sync::Arc::new(shuttle::sync::atomic::AtomicU64::new(0));
    let arrived = std::sync::Arc::new(shuttle::sync::atomic::AtomicU64::new(0));
    let mut hs = Vec::new();
    for c in 0..3u64 {
        let (cl, srv) = model_conn(&server, c + 1);
        let (passed, arrived) = (passed.clone(), arrived.clone());
        hs.push((
            shuttle::thread::spawn(move || {
                let mut mine = Vec::new();
                for round in 0..2u64 {
                    arrived.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let i = barrier_wait(&Remote::<S>::new(&cl, bar), Wait::Forever);
                    let i = i.unwrap_or_else(|e| panic!("barrier wait: {e:?}"));
                    // Nobody passes generation `round` before all 3 arrived in it.
                    assert!(
                        arrived.load(std::sync::atomic::Ordering::SeqCst) >= 3 * (round + 1),
                        "passed the barrier early"
                    );
                    passed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    mine.push((round, i));
                }
                drop(cl);
                mine
            }),
            srv,
        ));
    }
    let mut all = Vec::new();
    for (h, srv) in hs {
        all.extend(h.join().expect("client"));
        srv.join().expect("server thread");
    }
    all.sort();
    assert_eq!(all, [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]);
}

/// The condition workload (one shuttle execution): a waiter checks a flag
/// under the condition's lock and waits until it is set; a setter sets it
/// under the lock and notifies. A lost wake-up is a deadlock; the waiter must
/// hold the lock again (at its depth) when it returns.
pub fn condition_workload<S: ServerSync>() {
    let server = std::sync::Arc::new(Server::<S>::new());
    let cond = create(&server, Init::Condition);
    let flag = create(&server, Init::Value(vec![0]));
    let (a, sa) = model_conn(&server, 1);
    let (b, sb) = model_conn(&server, 2);
    let waiter = shuttle::thread::spawn(move || {
        let call = |op| a.call(Request::Op(cond, op));
        assert_eq!(call(Op::Acquire(Wait::Forever)), Response::Bool(true));
        assert_eq!(call(Op::Acquire(Wait::Forever)), Response::Bool(true)); // depth 2
                                                                            // Each wait retakes the lock at depth 2: two releases below.
        let waited = condition_wait_for(&Remote::<S>::new(&a, cond), || {
            Ok(a.call(Request::Op(flag, Op::ValueGet)) == Response::Item(vec![1]))
        });
        assert_eq!(waited, Ok(()));
        assert_eq!(call(Op::Release), Response::Ok);
        assert_eq!(call(Op::Release), Response::Ok);
        assert!(matches!(
            call(Op::Release),
            Response::Err(OpError::NotOwner)
        ));
    });
    let setter = shuttle::thread::spawn(move || {
        let call = |op| b.call(Request::Op(cond, op));
        assert!(matches!(
            call(Op::NotifyAll),
            Response::Err(OpError::NotOwner)
        ));
        assert_eq!(call(Op::Acquire(Wait::Forever)), Response::Bool(true));
        assert_eq!(
            b.call(Request::Op(flag, Op::ValueSet(vec![1]))),
            Response::Ok
        );
        assert_eq!(call(Op::NotifyAll), Response::Ok);
        assert_eq!(call(Op::Release), Response::Ok);
    });
    waiter.join().expect("waiter");
    setter.join().expect("setter");
    sa.join().expect("server a");
    sb.join().expect("server b");
}

/// A model client's requests about one object, applied to the in-process
/// server on the calling thread (a blocking request waits there, on the
/// server's condition variable). The client sequences run with the mutant of
/// the server's instantiation `S`.
pub struct Direct<S: ServerSync> {
    server: std::sync::Arc<Server<S>>,
    conn: ConnId,
    id: ObjId,
}

impl<S: ServerSync> core::fmt::Debug for Direct<S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Direct").finish_non_exhaustive()
    }
}

impl<S: ServerSync> Direct<S> {
    /// Connection `conn`'s requests about object `id`.
    pub fn new(server: &std::sync::Arc<Server<S>>, conn: ConnId, id: ObjId) -> Self {
        Direct {
            server: server.clone(),
            conn,
            id,
        }
    }
}

impl<S: ServerSync> Requester for Direct<S> {
    type Error = ClientError;
    const MUTANT: Mutant = S::MUTANT;
    fn request(&self, op: Op) -> Result<Response, ClientError> {
        Ok(self.server.handle(self.conn, Request::Op(self.id, op)))
    }
}

/// How a check runs two model threads: `a` on the current one, `b` on a new one.
pub trait Threads {
    /// Run `a` and `b` concurrently; both results.
    fn both<A: Send + 'static, B: Send + 'static>(
        a: impl FnOnce() -> A + Send + 'static,
        b: impl FnOnce() -> B + Send + 'static,
    ) -> (A, B);
}

/// loom threads.
#[derive(Debug)]
pub struct LoomThreads;

impl Threads for LoomThreads {
    fn both<A: Send + 'static, B: Send + 'static>(
        a: impl FnOnce() -> A + Send + 'static,
        b: impl FnOnce() -> B + Send + 'static,
    ) -> (A, B) {
        let h = loom::thread::spawn(b);
        let ra = a();
        (ra, h.join().expect("model thread"))
    }
}

/// shuttle threads.
#[derive(Debug)]
pub struct ShuttleThreads;

impl Threads for ShuttleThreads {
    fn both<A: Send + 'static, B: Send + 'static>(
        a: impl FnOnce() -> A + Send + 'static,
        b: impl FnOnce() -> B + Send + 'static,
    ) -> (A, B) {
        let h = shuttle::thread::spawn(b);
        let ra = a();
        (ra, h.join().expect("model thread"))
    }
}

/// The outcomes a check's executions reached (to show that a check exercised
/// both the expired and the satisfied branch of a finite wait).
pub type Seen = std::sync::Arc<std::sync::Mutex<std::collections::BTreeSet<&'static str>>>;

fn saw(seen: &Seen, what: &'static str) {
    seen.lock().unwrap_or_else(|p| p.into_inner()).insert(what);
}

/// Condition wait with a finite timeout (one model execution): a waiter takes
/// the condition's lock and, unless a flag is already set, waits for at most
/// 1 ms; a setter sets the flag under the lock and notifies. Whatever the wait
/// answers (notified, or timed out), the waiter must hold the lock again:
/// its release must succeed. Records `"notified"`, `"timed out"` or
/// `"flag set first"` in `seen`.
pub fn condition_timeout_workload<S: ServerSync, T: Threads>(seen: &Seen) {
    let server = std::sync::Arc::new(Server::<S>::new());
    let cond = create(&server, Init::Condition);
    let flag = create(&server, Init::Value(vec![0]));
    let (waiter, setter) = (Direct::new(&server, 1, cond), Direct::new(&server, 2, cond));
    let (wflag, sflag) = (Direct::new(&server, 1, flag), Direct::new(&server, 2, flag));
    let (outcome, ()) = T::both(
        move || {
            let take = waiter.request(Op::Acquire(Wait::Forever));
            crate::check!(take == Ok(Response::Bool(true)), "acquire: {take:?}");
            let outcome = if wflag.request(Op::ValueGet) == Ok(Response::Item(vec![1])) {
                "flag set first"
            } else {
                match condition_wait(&waiter, Wait::Micros(1000)) {
                    Ok(true) => "notified",
                    Ok(false) => "timed out",
                    Err(e) => crate::testkit::violation(&format!("condition wait: {e:?}")),
                }
            };
            let released = waiter.request(Op::Release);
            crate::check!(
                released == Ok(Response::Ok),
                "condition wait ({outcome}) returned without the lock: release answered {released:?}"
            );
            outcome
        },
        move || {
            let take = setter.request(Op::Acquire(Wait::Forever));
            crate::check!(take == Ok(Response::Bool(true)), "acquire: {take:?}");
            let set = sflag.request(Op::ValueSet(vec![1]));
            crate::check!(set == Ok(Response::Ok), "set: {set:?}");
            let n = setter.request(Op::NotifyAll);
            crate::check!(n == Ok(Response::Ok), "notify: {n:?}");
            let r = setter.request(Op::Release);
            crate::check!(r == Ok(Response::Ok), "release: {r:?}");
        },
    );
    saw(seen, outcome);
}

/// Barrier wait with a finite timeout (one model execution): two parties of
/// a 2-party barrier, one waiting at most 1 ms, the other without a timeout.
/// Either both pass (with arrival indices 0 and 1) or both learn the barrier
/// broke: never one of each. Records `"passed"` or `"broken"` in `seen`.
pub fn barrier_timeout_workload<S: ServerSync, T: Threads>(seen: &Seen) {
    let server = std::sync::Arc::new(Server::<S>::new());
    let bar = create(&server, Init::Barrier { parties: 2 });
    let (a, b) = (Direct::new(&server, 1, bar), Direct::new(&server, 2, bar));
    let got = T::both(
        move || barrier_wait(&a, Wait::Micros(1000)),
        move || barrier_wait(&b, Wait::Forever),
    );
    let broken = Err(ClientError::Op(OpError::BrokenBarrier));
    match got {
        (Ok(i), Ok(j)) => {
            crate::check!(i + j == 1 && i != j, "arrival indices {i} and {j}");
            saw(seen, "passed");
        }
        (ref x, ref y) if *x == broken && *y == broken => saw(seen, "broken"),
        other => crate::testkit::violation(&format!(
            "the parties of one generation disagree: {other:?}"
        )),
    }
}

/// Sort against a concurrent append (one model execution): one client sorts
/// the list `[3, 1, 2]` while another appends `0`. The sort is atomic: the
/// list ends `[1, 2, 3, 0]` (sort first) or `[0, 1, 2, 3]` (append first).
/// Records which in `seen`.
pub fn sort_workload<S: ServerSync, T: Threads>(seen: &Seen) {
    let server = std::sync::Arc::new(Server::<S>::new());
    let list = create(&server, Init::List(vec![b(3), b(1), b(2)]));
    let (a, c) = (Direct::new(&server, 1, list), Direct::new(&server, 2, list));
    let (sorted, appended) = T::both(
        move || {
            sort_list(&a, |mut v| {
                v.sort();
                Ok(v)
            })
        },
        move || c.request(Op::Append(b(0))),
    );
    crate::check!(sorted == Ok(()), "sort: {sorted:?}");
    crate::check!(appended == Ok(Response::Ok), "append: {appended:?}");
    let end = match server.handle(3, Request::Op(list, Op::Snapshot)) {
        Response::Versioned(_, items) => items,
        r => crate::testkit::violation(&format!("snapshot: {r:?}")),
    };
    if end == [b(1), b(2), b(3), b(0)] {
        saw(seen, "sort first");
    } else if end == [b(0), b(1), b(2), b(3)] {
        saw(seen, "append first");
    } else {
        crate::testkit::violation(&format!("sort was not atomic: the list ended {end:?}"));
    }
}

/// The reference-counting workload (one shuttle execution). A list is held
/// by three parties: its creator A (connection 1), B (connection 2, which
/// took a reference as a proxy's receiver does) and a forked child C, covered
/// by the reference its parent took for it on a connection the child
/// inherits (connection 3; it closes when the child exits), which uses the
/// list on a connection of its own (4). Concurrently: A uses the list, gives
/// its reference back and disconnects; B uses it and dies without giving
/// anything back (`kill -9`: its connection just closes); C uses it and exits.
/// Panics unless every use succeeds (no object is freed while someone holds
/// it) and the list is freed once all three are done (no reference outlives
/// its holder).
pub fn refcount_workload<S: ServerSync>() {
    let server = std::sync::Arc::new(Server::<S>::new());
    let id = match server.handle(1, Request::Create(Init::List(Vec::new()))) {
        Response::Created(id, _) => id,
        other => panic!("create failed: {other:?}"),
    };
    assert_eq!(server.handle(2, Request::Incref(vec![id])), Response::Ok);
    let use_it = move |cl: &Client, who: &str| {
        let r = cl.call(Request::Op(id, Op::Append(vec![1])));
        crate::check!(
            r == Response::Ok,
            "{who} could not use a list it holds: {r:?}"
        );
        let r = cl.call(Request::Op(id, Op::Len));
        crate::check!(
            matches!(r, Response::Usize(1..=3)),
            "{who} could not use a list it holds: {r:?}"
        );
    };
    let mut hs = Vec::new();
    let (lease, lease_srv) = model_conn(&server, 3);
    assert_eq!(lease.call(Request::Incref(vec![id])), Response::Ok);
    let mut lease = Some(lease);
    for c in [1u64, 2, 4] {
        let (cl, srv) = model_conn(&server, c);
        let inherited = if c == 4 { lease.take() } else { None };
        hs.push((
            shuttle::thread::spawn(move || match c {
                1 => {
                    use_it(&cl, "the creator");
                    assert_eq!(cl.call(Request::Decref(vec![id])), Response::Ok);
                }
                2 => use_it(&cl, "a receiver"),
                _ => {
                    use_it(&cl, "a child");
                    // The child exits: every connection it had closes.
                    drop(inherited);
                }
            }),
            srv,
        ));
    }
    for (h, srv) in hs {
        h.join().expect("client");
        assert_eq!(srv.join().expect("server thread"), Served::Disconnected);
    }
    assert_eq!(
        lease_srv.join().expect("server thread"),
        Served::Disconnected
    );
    let live = server.live_objects();
    crate::check!(live == 0, "{live} object(s) outlived every reference");
}

/// The barrier reset workload (one shuttle execution): party A waits on a
/// 2-party barrier; B, once it sees A arrived, resets the barrier. Panics
/// unless A's wait fails with `BrokenBarrier` (CPython's `reset`).
pub fn barrier_reset_workload<S: ServerSync>() {
    let server = std::sync::Arc::new(Server::<S>::new());
    let bar = create(&server, Init::Barrier { parties: 2 });
    let (a, sa) = model_conn(&server, 1);
    let (b, sb) = model_conn(&server, 2);
    let ha = shuttle::thread::spawn(move || {
        let r = barrier_wait(&Remote::<S>::new(&a, bar), Wait::Forever);
        drop(a);
        r
    });
    let hb = shuttle::thread::spawn(move || {
        loop {
            match b.call(Request::Op(bar, Op::BarrierState)) {
                Response::Counts(v) if v.get(1) == Some(&1) => break,
                _ => shuttle::thread::yield_now(),
            }
        }
        assert_eq!(b.call(Request::Op(bar, Op::BarrierReset)), Response::Ok);
        drop(b);
    });
    hb.join().expect("resetter");
    let r = ha.join().expect("waiter");
    crate::check!(
        r == Err(ClientError::Op(OpError::BrokenBarrier)),
        "a party waiting across reset passed: {r:?}"
    );
    sa.join().expect("server thread");
    sb.join().expect("server thread");
}

// ---- registered types (custom objects) ---------------------------------

/// The gate workload (one shuttle execution), the docs' remote-queue shape:
/// one factory makes objects that share state (CPython's
/// `register('get_queue', callable=lambda: queue)`). Client A calls `wait`
/// on its object, which blocks until client B, through an object of its own,
/// calls `open`. Panics (a deadlock) if a blocking call holds up the other
/// objects (mutant 760), or if a call fails.
pub fn custom_gate_workload<S: ServerSync>() {
    use shuttle::sync::{Condvar, Mutex};
    struct Gate(std::sync::Arc<(Mutex<bool>, Condvar)>);
    impl CustomObject for Gate {
        fn call(&mut self, method: &str, _args: &[u8]) -> Result<Bytes, OpError> {
            let (m, cv) = &*self.0;
            let mut open = m.lock().unwrap_or_else(|p| p.into_inner());
            if method == "open" {
                *open = true;
                cv.notify_all();
            } else {
                while !*open {
                    open = cv.wait(open).unwrap_or_else(|p| p.into_inner());
                }
            }
            Ok(vec![u8::from(*open)])
        }
    }
    let shared = std::sync::Arc::new((Mutex::new(false), Condvar::new()));
    let mut reg = Registry::default();
    reg.register(
        "gate",
        &["wait", "open"],
        std::sync::Arc::new(move || Box::new(Gate(shared.clone())) as Box<dyn CustomObject>),
    );
    let server = std::sync::Arc::new(Server::<S>::with_registry(reg));
    let init = Init::Custom {
        typeid: "gate".into(),
        methods: vec!["wait".into(), "open".into()],
    };
    let mut hs = Vec::new();
    for (c, method) in [(1u64, "wait"), (2, "open")] {
        let (cl, srv) = model_conn(&server, c);
        let init = init.clone();
        hs.push((
            shuttle::thread::spawn(move || {
                let id = match cl.call(Request::Create(init)) {
                    Response::Created(id, Kind::Custom) => id,
                    other => panic!("create failed: {other:?}"),
                };
                let r = cl.call(Request::Op(id, Op::Call(method.into(), Vec::new())));
                crate::check!(r == Response::Item(vec![1]), "{method} answered {r:?}");
            }),
            srv,
        ));
    }
    for (h, srv) in hs {
        h.join().expect("client");
        srv.join().expect("server thread");
    }
    let live = server.live_objects();
    crate::check!(live == 0, "{live} object(s) outlived their connections");
}

/// The serialization workload (one shuttle execution): two clients call
/// `incr` twice each on one object, whose method reads, yields, and writes
/// (a lost update unless calls on one object run one at a time). Panics
/// unless every call succeeds and the count ends at 4.
pub fn custom_serial_workload<S: ServerSync>() {
    struct Counter(u8);
    impl CustomObject for Counter {
        fn call(&mut self, method: &str, _args: &[u8]) -> Result<Bytes, OpError> {
            if method == "incr" {
                let v = self.0;
                shuttle::thread::yield_now();
                self.0 = v + 1;
            }
            Ok(vec![self.0])
        }
    }
    let mut reg = Registry::default();
    reg.register(
        "counter",
        &["incr", "get"],
        std::sync::Arc::new(|| Box::new(Counter(0)) as Box<dyn CustomObject>),
    );
    let server = std::sync::Arc::new(Server::<S>::with_registry(reg));
    let id = create(
        &server,
        Init::Custom {
            typeid: "counter".into(),
            methods: vec!["incr".into(), "get".into()],
        },
    );
    let mut hs = Vec::new();
    for c in [1u64, 2] {
        let (cl, srv) = model_conn(&server, c);
        hs.push((
            shuttle::thread::spawn(move || {
                for _ in 0..2 {
                    let r = cl.call(Request::Op(id, Op::Call("incr".into(), Vec::new())));
                    crate::check!(matches!(r, Response::Item(_)), "a call failed: {r:?}");
                }
            }),
            srv,
        ));
    }
    for (h, srv) in hs {
        h.join().expect("client");
        srv.join().expect("server thread");
    }
    let r = server.handle(0, Request::Op(id, Op::Call("get".into(), Vec::new())));
    crate::check!(
        r == Response::Item(vec![4]),
        "calls were not serialized: {r:?}"
    );
}

/// Iterations per shuttle check: `PROCSHARE_SHUTTLE_ITERS`, default 1000.
pub fn iterations() -> usize {
    crate::testkit::shuttle_iters()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_linearizable_random() {
        shuttle::check_random(list_workload::<ShuttleSync>, iterations());
    }

    #[test]
    fn list_linearizable_pct() {
        shuttle::check_pct(list_workload::<ShuttleSync>, iterations(), 3);
    }

    #[test]
    fn dict_linearizable_random() {
        shuttle::check_random(dict_workload::<ShuttleSync>, iterations());
    }

    #[test]
    fn dict_linearizable_pct() {
        shuttle::check_pct(dict_workload::<ShuttleSync>, iterations(), 3);
    }

    /// Does shuttle catch `f`, for the reason `why`?
    fn caught(why: &str, f: impl Fn() + Send + Sync + 'static) -> bool {
        crate::testkit::fails_with(why, || shuttle::check_random(f, iterations()))
    }

    #[test]
    fn refcount_frees_exactly_when_unreferenced_random() {
        shuttle::check_random(refcount_workload::<ShuttleSync>, iterations());
    }

    #[test]
    fn refcount_frees_exactly_when_unreferenced_pct() {
        shuttle::check_pct(refcount_workload::<ShuttleSync>, iterations(), 3);
    }

    #[test]
    fn mutant_707_decref_frees_a_held_object_is_caught() {
        assert!(caught(
            "could not use a list it holds",
            refcount_workload::<ShuttleSync<{ MUTANT_DECREF_FREES.0 }>>
        ));
    }

    #[test]
    fn barrier_reset_breaks_waiters_random() {
        shuttle::check_random(barrier_reset_workload::<ShuttleSync>, iterations());
    }

    #[test]
    fn barrier_reset_breaks_waiters_pct() {
        shuttle::check_pct(barrier_reset_workload::<ShuttleSync>, iterations(), 3);
    }

    #[test]
    fn mutant_708_reset_lets_waiters_pass_is_caught() {
        assert!(caught(
            "a party waiting across reset passed",
            barrier_reset_workload::<ShuttleSync<{ MUTANT_RESET_PASSES.0 }>>
        ));
    }

    #[test]
    fn mutant_701_split_pop_is_caught() {
        assert!(caught(
            "not linearizable",
            list_workload::<ShuttleSync<{ MUTANT_SPLIT_POP.0 }>>
        ));
    }

    #[test]
    fn blocking_ops_no_lost_wakeup_random() {
        shuttle::check_random(blocking_workload::<ShuttleSync>, iterations());
    }

    #[test]
    fn blocking_ops_no_lost_wakeup_pct() {
        shuttle::check_pct(blocking_workload::<ShuttleSync>, iterations(), 3);
    }

    #[test]
    fn mutant_703_no_notify_is_caught() {
        assert!(caught(
            "deadlock",
            blocking_workload::<ShuttleSync<{ MUTANT_NO_NOTIFY.0 }>>
        ));
        assert!(caught(
            "deadlock",
            barrier_workload::<ShuttleSync<{ MUTANT_NO_NOTIFY.0 }>>
        ));
        assert!(caught(
            "deadlock",
            condition_workload::<ShuttleSync<{ MUTANT_NO_NOTIFY.0 }>>
        ));
    }

    #[test]
    fn barrier_releases_each_generation_once() {
        shuttle::check_random(barrier_workload::<ShuttleSync>, iterations());
        shuttle::check_pct(barrier_workload::<ShuttleSync>, iterations(), 3);
    }

    #[test]
    fn condition_no_lost_wakeup() {
        shuttle::check_random(condition_workload::<ShuttleSync>, iterations());
        shuttle::check_pct(condition_workload::<ShuttleSync>, iterations(), 3);
    }

    #[test]
    fn mutant_702_split_extend_is_caught() {
        assert!(caught(
            "not linearizable",
            list_workload::<ShuttleSync<{ MUTANT_SPLIT_EXTEND.0 }>>
        ));
    }

    // ---- the client sequences, over loom and shuttle ----------------------

    use crate::testkit::{fails_with, loom as loom_builder};

    fn seen() -> Seen {
        Seen::default()
    }

    fn outcomes(seen: &Seen) -> Vec<&'static str> {
        seen.lock().unwrap().iter().copied().collect()
    }

    /// Every loom check below has 2 threads (main and one spawned) making
    /// 1-5 requests each: small enough to explore exhaustively (no
    /// preemption bound; each check completes in about a second).
    fn loom_check(f: impl Fn() + Sync + Send + 'static) {
        loom_builder(None).check(f);
    }

    fn loom_seen<F: Fn(&Seen) + Sync + Send + 'static>(f: F) -> Vec<&'static str> {
        let s = seen();
        let s2 = s.clone();
        loom_check(move || f(&s2));
        outcomes(&s)
    }

    fn shuttle_seen<F: Fn(&Seen) + Sync + Send + 'static>(f: F) -> Vec<&'static str> {
        let s = seen();
        let (s1, s2) = (s.clone(), s.clone());
        let f = std::sync::Arc::new(f);
        let f2 = f.clone();
        shuttle::check_random(move || f(&s1), iterations());
        shuttle::check_pct(move || f2(&s2), iterations(), 3);
        outcomes(&s)
    }

    #[test]
    fn condition_wait_timeout_loom() {
        // Every finite wait expires where it would sleep: the timeout branch
        // (CondReacquire) runs, and the waiter holds the lock again.
        let got = loom_seen(condition_timeout_workload::<LoomSync<0, true>, LoomThreads>);
        assert!(got.contains(&"timed out"), "{got:?}");
        // Every finite wait lasts until notified.
        let got = loom_seen(condition_timeout_workload::<LoomSync<0, false>, LoomThreads>);
        assert!(got.contains(&"notified"), "{got:?}");
        assert!(!got.contains(&"timed out"), "{got:?}");
    }

    #[test]
    fn condition_wait_timeout_shuttle() {
        let got = shuttle_seen(condition_timeout_workload::<ShuttleSync, ShuttleThreads>);
        assert!(
            got.contains(&"timed out") && got.contains(&"notified"),
            "{got:?}"
        );
    }

    #[test]
    fn barrier_wait_timeout_loom() {
        let got = loom_seen(barrier_timeout_workload::<LoomSync<0, true>, LoomThreads>);
        assert!(got.contains(&"broken"), "{got:?}");
        let got = loom_seen(barrier_timeout_workload::<LoomSync<0, false>, LoomThreads>);
        assert_eq!(got, ["passed"]);
    }

    #[test]
    fn barrier_wait_timeout_shuttle() {
        let got = shuttle_seen(barrier_timeout_workload::<ShuttleSync, ShuttleThreads>);
        assert_eq!(got, ["broken", "passed"]);
    }

    #[test]
    fn sort_is_atomic_loom() {
        let got = loom_seen(sort_workload::<LoomSync, LoomThreads>);
        assert_eq!(got, ["append first", "sort first"]);
    }

    #[test]
    fn sort_is_atomic_shuttle() {
        let got = shuttle_seen(sort_workload::<ShuttleSync, ShuttleThreads>);
        assert_eq!(got, ["append first", "sort first"]);
    }

    #[test]
    fn mutant_704_cond_no_reacquire_is_caught() {
        const M: u32 = MUTANT_COND_NO_REACQUIRE.0;
        assert!(fails_with("returned without the lock", || {
            loom_seen(condition_timeout_workload::<LoomSync<M, true>, LoomThreads>);
        }));
        assert!(fails_with("returned without the lock", || {
            shuttle_seen(condition_timeout_workload::<ShuttleSync<M>, ShuttleThreads>);
        }));
    }

    #[test]
    fn mutant_705_barrier_no_abort_is_caught() {
        const M: u32 = MUTANT_BARRIER_NO_ABORT.0;
        assert!(fails_with("disagree", || {
            loom_seen(barrier_timeout_workload::<LoomSync<M, true>, LoomThreads>);
        }));
        assert!(fails_with("disagree", || {
            shuttle_seen(barrier_timeout_workload::<ShuttleSync<M>, ShuttleThreads>);
        }));
    }

    #[test]
    fn mutant_706_sort_no_retry_is_caught() {
        const M: u32 = MUTANT_SORT_NO_RETRY.0;
        assert!(fails_with("not atomic", || {
            loom_seen(sort_workload::<LoomSync<M>, LoomThreads>);
        }));
        assert!(fails_with("not atomic", || {
            shuttle_seen(sort_workload::<ShuttleSync<M>, ShuttleThreads>);
        }));
    }

    #[test]
    fn custom_blocking_call_holds_only_its_object_random() {
        shuttle::check_random(custom_gate_workload::<ShuttleSync>, iterations());
    }

    #[test]
    fn custom_blocking_call_holds_only_its_object_pct() {
        shuttle::check_pct(custom_gate_workload::<ShuttleSync>, iterations(), 3);
    }

    #[test]
    fn mutant_760_call_under_table_lock_is_caught() {
        assert!(caught(
            "deadlock",
            custom_gate_workload::<ShuttleSync<{ MUTANT_CALL_UNDER_TABLE.0 }>>
        ));
    }

    #[test]
    fn custom_calls_on_one_object_are_serialized_random() {
        shuttle::check_random(custom_serial_workload::<ShuttleSync>, iterations());
    }

    #[test]
    fn custom_calls_on_one_object_are_serialized_pct() {
        shuttle::check_pct(custom_serial_workload::<ShuttleSync>, iterations(), 3);
    }

    #[test]
    fn mutant_761_call_unlocked_is_caught() {
        assert!(caught(
            "a call failed",
            custom_serial_workload::<ShuttleSync<{ MUTANT_CALL_UNLOCKED.0 }>>
        ));
    }

    #[test]
    fn custom_errors_are_answers_and_the_server_keeps_serving() {
        struct Obj;
        impl Drop for Obj {
            fn drop(&mut self) {
                panic!("a Drop that panics");
            }
        }
        impl CustomObject for Obj {
            fn call(&mut self, method: &str, args: &[u8]) -> Result<Bytes, OpError> {
                match method {
                    "echo" if args.len() == 1 => Ok(args.to_vec()),
                    "echo" => Err(OpError::BadArgument {
                        method: method.into(),
                        why: "one byte".into(),
                    }),
                    "fail" => Err(OpError::MethodFailed {
                        method: method.into(),
                        message: "boom".into(),
                    }),
                    _ => panic!("the method panicked"),
                }
            }
        }
        let methods = ["echo", "fail", "panic"];
        let mut reg = Registry::default();
        reg.register(
            "obj",
            &methods,
            std::sync::Arc::new(|| Box::new(Obj) as Box<dyn CustomObject>),
        );
        let server = Server::<StdSync>::with_registry(reg);
        let init = |t: &str, ms: &[&str]| Init::Custom {
            typeid: t.into(),
            methods: ms.iter().map(|m| m.to_string()).collect(),
        };
        assert_eq!(
            server.handle(1, Request::Create(init("nope", &methods))),
            Response::Err(OpError::UnknownType("nope".into()))
        );
        assert!(matches!(
            server.handle(1, Request::Create(init("obj", &["echo"]))),
            Response::Err(OpError::TypeMismatch { .. })
        ));
        let id = match server.handle(1, Request::Create(init("obj", &methods))) {
            Response::Created(id, Kind::Custom) => id,
            other => panic!("{other:?}"),
        };
        let call =
            |m: &str, a: &[u8]| server.handle(1, Request::Op(id, Op::Call(m.into(), a.to_vec())));
        assert_eq!(call("echo", &[7]), Response::Item(vec![7]));
        assert!(matches!(
            call("nope", &[]),
            Response::Err(OpError::UnknownMethod { .. })
        ));
        assert!(matches!(
            call("echo", &[]),
            Response::Err(OpError::BadArgument { .. })
        ));
        assert!(matches!(
            call("fail", &[]),
            Response::Err(OpError::MethodFailed { message, .. }) if message == "boom"
        ));
        assert!(matches!(
            call("panic", &[]),
            Response::Err(OpError::MethodFailed { message, .. }) if message.contains("the method panicked")
        ));
        // The object and the server still work.
        assert_eq!(call("echo", &[8]), Response::Item(vec![8]));
        // Built-in objects refuse calls; custom objects refuse built-in ops.
        let list = match server.handle(1, Request::Create(Init::List(vec![]))) {
            Response::Created(l, _) => l,
            other => panic!("{other:?}"),
        };
        assert!(matches!(
            server.handle(1, Request::Op(list, Op::Call("echo".into(), vec![1]))),
            Response::Err(OpError::WrongType { .. })
        ));
        assert!(matches!(
            server.handle(1, Request::Op(id, Op::Len)),
            Response::Err(OpError::WrongType { .. })
        ));
        // A named object of a registered type is made once.
        let named =
            |n: &str| match server.handle(2, Request::Named(n.into(), init("obj", &methods))) {
                Response::Created(id, Kind::Custom) => id,
                other => panic!("{other:?}"),
            };
        let n1 = named("one");
        assert_eq!(named("one"), n1);
        assert!(matches!(
            server.handle(2, Request::Named("one".into(), Init::Lock)),
            Response::Err(OpError::NameTaken {
                found: Kind::Custom,
                ..
            })
        ));
        assert!(matches!(
            server.handle(2, Request::Named("two".into(), init("nope", &methods))),
            Response::Err(OpError::UnknownType(_))
        ));
        server.disconnect(2);
        assert_eq!(server.live_objects(), 3, "a named object lives on");
        // Refcounting as the built-ins: the last reference frees it.
        assert_eq!(server.live_objects(), 3);
        assert_eq!(server.handle(1, Request::Decref(vec![id])), Response::Ok);
        assert_eq!(server.live_objects(), 2);
        assert_eq!(call("echo", &[1]), Response::Err(OpError::NoSuchObject(id)));
        // Its Drop panicked (caught); the server serves on.
        assert_eq!(server.handle(1, Request::Ping), Response::Pong);
    }

    #[test]
    fn checker_rejects_a_bad_history() {
        // Sanity of the checker itself: two sequential pops cannot both return 2.
        let h = vec![
            Event {
                inv: 0,
                res: 1,
                op: Op::Pop(None),
                out: Response::Item(b(2)),
            },
            Event {
                inv: 2,
                res: 3,
                op: Op::Pop(None),
                out: Response::Item(b(2)),
            },
        ];
        assert!(!linearizable(&VecSpec(vec![b(1), b(2)]), &h));
        // Overlapping, they may come in either order.
        let h = vec![
            Event {
                inv: 0,
                res: 3,
                op: Op::Append(b(3)),
                out: Response::Ok,
            },
            Event {
                inv: 1,
                res: 2,
                op: Op::Len,
                out: Response::Usize(3),
            },
        ];
        assert!(linearizable(&VecSpec(vec![b(1), b(2)]), &h));
    }
}

/// The joinable queue workload (one shuttle execution): a producer puts two
/// items on a joinable queue, then joins it; a consumer gets each item,
/// counts it processed, then calls `task_done`. Panics if `join` returns
/// before both items are processed or a `task_done` beyond the puts is
/// accepted; a `join` whose wake-up is lost sleeps forever, which shuttle
/// reports as a deadlock.
pub fn joinable_workload<S: ServerSync>() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let server = std::sync::Arc::new(Server::<S>::new());
    let q = create(&server, Init::JoinableQueue { maxsize: Some(1) });
    let processed = std::sync::Arc::new(AtomicU64::new(0));
    let (p, sp) = model_conn(&server, 1);
    let (c, sc) = model_conn(&server, 2);
    let seen = processed.clone();
    let hc = shuttle::thread::spawn(move || {
        for want in [1u8, 2] {
            let r = c.call(Request::Op(q, Op::QGet(Wait::Forever)));
            assert_eq!(r, Response::Item(b(want)), "queue lost or reordered items");
            seen.fetch_add(1, Ordering::SeqCst);
            let r = c.call(Request::Op(q, Op::Joinable(JoinableOp::TaskDone)));
            crate::check!(
                r == Response::Ok,
                "tasks miscounted: the task_done of a taken item was refused: {r:?}"
            );
        }
        drop(c);
    });
    let hp = shuttle::thread::spawn(move || {
        for x in [1u8, 2] {
            let r = p.call(Request::Op(q, Op::Put(b(x), Wait::Forever)));
            assert_eq!(r, Response::Ok);
        }
        let r = p.call(Request::Op(
            q,
            Op::Joinable(JoinableOp::Join(Wait::Forever)),
        ));
        assert_eq!(r, Response::Ok);
        let n = processed.load(Ordering::SeqCst);
        crate::check!(
            n == 2,
            "tasks miscounted: join returned with {n} of 2 tasks done"
        );
        drop(p);
    });
    hp.join().expect("producer");
    hc.join().expect("consumer");
    sp.join().expect("server thread");
    sc.join().expect("server thread");
    let r = server.handle(3, Request::Op(q, Op::Joinable(JoinableOp::TaskDone)));
    crate::check!(
        matches!(r, Response::Err(OpError::BadRequest(_))),
        "a task_done beyond the puts was accepted: {r:?}"
    );
}

/// A bounded FIFO queue whose puts open tasks: the joinable queue's
/// sequential specification (non-blocking ops only), written independently
/// of `joinable`.
#[derive(Clone, Debug)]
struct JoinableSpec {
    q: std::collections::VecDeque<Bytes>,
    max: u64,
    open: u64,
}

impl Spec for JoinableSpec {
    fn step(&mut self, op: &Op) -> Response {
        match op {
            Op::Put(_, Wait::No) if self.q.len() as u64 >= self.max => {
                Response::Err(OpError::Timeout)
            }
            Op::Put(x, Wait::No) => {
                self.q.push_back(x.clone());
                self.open += 1;
                Response::Ok
            }
            Op::QGet(Wait::No) => match self.q.pop_front() {
                Some(x) => Response::Item(x),
                None => Response::Err(OpError::Timeout),
            },
            Op::Len => Response::Usize(self.q.len() as u64),
            Op::QFull => Response::Bool(self.q.len() as u64 >= self.max),
            Op::Joinable(JoinableOp::TaskDone) if self.open == 0 => Response::Err(
                OpError::BadRequest("task_done() called too many times".into()),
            ),
            Op::Joinable(JoinableOp::TaskDone) => {
                self.open -= 1;
                Response::Ok
            }
            Op::Joinable(JoinableOp::Unfinished) => Response::Usize(self.open),
            other => unreachable!("not in the joinable spec: {other:?}"),
        }
    }
}

/// Two clients on a joinable queue of bound 2 (one shuttle execution): a
/// producer puts two items and asks `full()` and `qsize()`; a consumer asks
/// `full()`, takes an item, closes its task, asks `full()` and the open
/// task count. The history must be linearizable against `JoinableSpec`:
/// `full()`, `qsize()` and `empty()` (`qsize() == 0`) see the queue's own
/// items, as CPython's (`queue.Queue` in its manager).
pub fn joinable_queue_ops_workload<S: ServerSync>() {
    run_history::<S, _>(
        Init::JoinableQueue { maxsize: Some(2) },
        JoinableSpec {
            q: Default::default(),
            max: 2,
            open: 0,
        },
        vec![
            vec![
                Op::Put(b(1), Wait::No),
                Op::Put(b(2), Wait::No),
                Op::QFull,
                Op::Len,
            ],
            vec![
                Op::QFull,
                Op::QGet(Wait::No),
                Op::Joinable(JoinableOp::TaskDone),
                Op::QFull,
                Op::Joinable(JoinableOp::Unfinished),
            ],
        ],
    );
}

#[cfg(test)]
mod joinable_tests {
    use super::*;

    fn caught(why: &str, f: impl Fn() + Send + Sync + 'static) -> bool {
        crate::testkit::fails_with(why, || shuttle::check_random(f, iterations()))
    }

    #[test]
    fn joinable_join_waits_for_every_task_random() {
        shuttle::check_random(joinable_workload::<ShuttleSync>, iterations());
    }

    #[test]
    fn joinable_join_waits_for_every_task_pct() {
        shuttle::check_pct(joinable_workload::<ShuttleSync>, iterations(), 3);
    }

    #[test]
    fn mutant_721_task_done_no_wake_is_caught() {
        assert!(caught(
            "deadlock",
            joinable_workload::<
                ShuttleSync<{ crate::manager::joinable::MUTANT_TASK_DONE_NO_WAKE.0 }>,
            >
        ));
    }

    #[test]
    fn joinable_queue_ops_linearizable_random() {
        shuttle::check_random(joinable_queue_ops_workload::<ShuttleSync>, iterations());
    }

    #[test]
    fn joinable_queue_ops_linearizable_pct() {
        shuttle::check_pct(joinable_queue_ops_workload::<ShuttleSync>, iterations(), 3);
    }

    #[test]
    fn mutant_906_queue_ops_by_name_is_caught() {
        assert!(caught(
            "not linearizable",
            joinable_queue_ops_workload::<
                ShuttleSync<{ crate::manager::joinable::MUTANT_QUEUE_OPS_BY_NAME.0 }>,
            >
        ));
    }

    #[test]
    fn mutant_722_put_uncounted_is_caught() {
        assert!(caught(
            "tasks miscounted",
            joinable_workload::<ShuttleSync<{ crate::manager::joinable::MUTANT_PUT_UNCOUNTED.0 }>>
        ));
    }
}

// ---- CPython 3.14's container additions: sets, dict `|`/`|=`, list `*=` ----

/// A plain insertion-ordered set (a `Vec` without duplicates): the set's
/// sequential specification, written independently of `containers`.
#[derive(Clone, Debug, Default)]
struct SetSpec(Vec<Bytes>);

impl SetSpec {
    fn has(&self, x: &Bytes) -> bool {
        self.0.contains(x)
    }
    fn algebra(&self, alg: SetAlg, o: &[Bytes]) -> Vec<Bytes> {
        let mut r: Vec<Bytes> = Vec::new();
        let mut push = |x: &Bytes| {
            if !r.contains(x) {
                r.push(x.clone())
            }
        };
        match alg {
            SetAlg::Union => self.0.iter().chain(o).for_each(&mut push),
            SetAlg::Intersection => self.0.iter().filter(|x| o.contains(x)).for_each(&mut push),
            SetAlg::Difference => self.0.iter().filter(|x| !o.contains(x)).for_each(&mut push),
            SetAlg::SymmetricDifference => {
                self.0.iter().filter(|x| !o.contains(x)).for_each(&mut push);
                o.iter().filter(|x| !self.has(x)).for_each(&mut push);
            }
            SetAlg::ReverseDifference => o.iter().filter(|x| !self.has(x)).for_each(&mut push),
        }
        r
    }
}

impl Spec for SetSpec {
    fn step(&mut self, op: &Op) -> Response {
        match op {
            Op::SetAdd(x) => {
                let new = !self.has(x);
                if new {
                    self.0.push(x.clone());
                }
                Response::Bool(new)
            }
            Op::SetDiscard(x) => {
                let was = self.has(x);
                self.0.retain(|y| y != x);
                Response::Bool(was)
            }
            Op::SetRemove(x) => {
                if !self.has(x) {
                    return Response::Err(OpError::KeyNotFound);
                }
                self.0.retain(|y| y != x);
                Response::Ok
            }
            Op::SetContains(x) => Response::Bool(self.has(x)),
            Op::SetPop => {
                if self.0.is_empty() {
                    Response::Err(OpError::KeyNotFound)
                } else {
                    Response::Item(self.0.remove(0))
                }
            }
            Op::SetItems => Response::Items(self.0.clone()),
            Op::Len => Response::Usize(self.0.len() as u64),
            Op::SetAlgebra(alg, o) => Response::Items(self.algebra(*alg, o)),
            Op::SetAlgebraUpdate(alg, o) => {
                let r = self.algebra(*alg, o);
                // Items that stay keep their places; new ones go last.
                let mut next: Vec<Bytes> =
                    self.0.iter().filter(|x| r.contains(x)).cloned().collect();
                for x in r {
                    if !next.contains(&x) {
                        next.push(x);
                    }
                }
                self.0 = next;
                Response::Ok
            }
            Op::SetCompare(SetCmp::IsSuperset, o) => Response::Bool(o.iter().all(|x| self.has(x))),
            Op::SetCompare(SetCmp::IsSubset, o) => {
                Response::Bool(self.0.iter().all(|x| o.contains(x)))
            }
            other => unreachable!("not in the set spec: {other:?}"),
        }
    }
}

/// A plain insertion-ordered dict (a `Vec` of pairs): the specification of
/// the dict operations whose answers show order (`|`, `items`, `popitem`).
#[derive(Clone, Debug, Default)]
struct OrderedDictSpec(Vec<(Bytes, Bytes)>);

impl OrderedDictSpec {
    fn put(v: &mut Vec<(Bytes, Bytes)>, k: &Bytes, x: &Bytes) -> Option<Bytes> {
        match v.iter_mut().find(|(q, _)| q == k) {
            Some(slot) => Some(std::mem::replace(&mut slot.1, x.clone())),
            None => {
                v.push((k.clone(), x.clone()));
                None
            }
        }
    }
}

impl Spec for OrderedDictSpec {
    fn step(&mut self, op: &Op) -> Response {
        match op {
            Op::DictInsert(k, x) => Response::MaybeItem(Self::put(&mut self.0, k, x)),
            Op::DictUpdate(pairs) => {
                for (k, x) in pairs {
                    Self::put(&mut self.0, k, x);
                }
                Response::Ok
            }
            Op::DictOr(pairs) => {
                let mut r = self.0.clone();
                for (k, x) in pairs {
                    Self::put(&mut r, k, x);
                }
                Response::Pairs(r)
            }
            Op::DictItems => Response::Pairs(self.0.clone()),
            Op::DictPopItem => match self.0.pop() {
                Some(p) => Response::Pairs(vec![p]),
                None => Response::Err(OpError::KeyNotFound),
            },
            Op::DictFromKeys(ks, x) => {
                let mut r = Vec::new();
                for k in ks {
                    Self::put(&mut r, k, x);
                }
                Response::Pairs(r)
            }
            Op::Len => Response::Usize(self.0.len() as u64),
            other => unreachable!("not in the ordered dict spec: {other:?}"),
        }
    }
}

/// The set workload (one shuttle execution): 3 clients on one set `{1, 2}`
/// run adds, removes, pops, in-place `|=` and `-=`, `&`, comparisons and
/// snapshots; panics unless the history is linearizable against
/// `SetSpec`. A `|=` that is not one step (mutant 741) shows half of it.
pub fn set_workload<S: ServerSync>() {
    run_history::<S, _>(
        Init::Set(vec![b(1), b(2)]),
        SetSpec(vec![b(1), b(2)]),
        vec![
            vec![
                Op::SetAlgebraUpdate(SetAlg::Union, vec![b(3), b(4)]),
                Op::SetPop,
                Op::Len,
            ],
            vec![
                Op::SetItems,
                Op::SetAdd(b(5)),
                Op::SetCompare(SetCmp::IsSuperset, vec![b(3), b(4)]),
            ],
            vec![
                Op::SetAlgebra(SetAlg::Intersection, vec![b(1), b(3), b(4)]),
                Op::SetRemove(b(1)),
                Op::SetAlgebraUpdate(SetAlg::Difference, vec![b(3)]),
                Op::SetContains(b(4)),
            ],
        ],
    );
}

/// The dict `|`/`|=` workload (one shuttle execution): one client does
/// `d |= {2: 20, 3: 30}` (an `update`) then `popitem`, another `d | {4: 40}`
/// and `items()`, a third sets key 2, counts, and calls `fromkeys`; panics
/// unless the history is linearizable against `OrderedDictSpec`. An `|=`
/// that is not one step (mutant 740) shows half of it.
pub fn dict_or_workload<S: ServerSync>() {
    run_history::<S, _>(
        Init::Dict(vec![(b(1), b(10))]),
        OrderedDictSpec(vec![(b(1), b(10))]),
        vec![
            vec![
                Op::DictUpdate(vec![(b(2), b(20)), (b(3), b(30))]),
                Op::DictPopItem,
            ],
            vec![Op::DictOr(vec![(b(4), b(40))]), Op::DictItems],
            vec![
                Op::DictInsert(b(2), b(21)),
                Op::Len,
                Op::DictFromKeys(vec![b(5), b(5)], b(0)),
            ],
        ],
    );
}

/// The list `*=` workload (one shuttle execution): one client repeats the
/// list `[1]` in place twice while others append, pop and take snapshots;
/// panics unless the history is linearizable against a `Vec`.
pub fn list_repeat_workload<S: ServerSync>() {
    run_history::<S, _>(
        Init::List(vec![b(1)]),
        VecSpec(vec![b(1)]),
        vec![
            vec![Op::ListRepeat(2), Op::Snapshot],
            vec![Op::Append(b(2)), Op::ListRepeat(0), Op::Len],
            vec![Op::Snapshot, Op::Pop(None)],
        ],
    );
}

#[cfg(test)]
mod container_tests {
    use super::*;

    fn caught(why: &str, f: impl Fn() + Send + Sync + 'static) -> bool {
        crate::testkit::fails_with(why, || shuttle::check_random(f, iterations()))
    }

    #[test]
    fn set_linearizable_random() {
        shuttle::check_random(set_workload::<ShuttleSync>, iterations());
    }

    #[test]
    fn set_linearizable_pct() {
        shuttle::check_pct(set_workload::<ShuttleSync>, iterations(), 3);
    }

    #[test]
    fn dict_or_linearizable_random() {
        shuttle::check_random(dict_or_workload::<ShuttleSync>, iterations());
    }

    #[test]
    fn dict_or_linearizable_pct() {
        shuttle::check_pct(dict_or_workload::<ShuttleSync>, iterations(), 3);
    }

    #[test]
    fn list_repeat_linearizable() {
        shuttle::check_random(list_repeat_workload::<ShuttleSync>, iterations());
        shuttle::check_pct(list_repeat_workload::<ShuttleSync>, iterations(), 3);
    }

    #[test]
    fn mutant_740_split_dict_ior_is_caught() {
        assert!(caught(
            "not linearizable",
            dict_or_workload::<ShuttleSync<{ MUTANT_SPLIT_IOR.0 }>>
        ));
    }

    #[test]
    fn mutant_741_split_set_ior_is_caught() {
        assert!(caught(
            "not linearizable",
            set_workload::<ShuttleSync<{ MUTANT_SPLIT_SET_IOR.0 }>>
        ));
    }
}

// ---- a pool in the server (`manager.Pool()`) ----

/// A gate: a flag and its condition variable (shuttle's).
type Gate = std::sync::Arc<(shuttle::sync::Mutex<bool>, shuttle::sync::Condvar)>;

fn gate_wait(g: &Gate) {
    let (m, cv) = &**g;
    let mut open = m.lock().unwrap_or_else(|p| p.into_inner());
    while !*open {
        open = cv.wait(open).unwrap_or_else(|p| p.into_inner());
    }
}

fn gate_open(g: &Gate) {
    let (m, cv) = &**g;
    *m.lock().unwrap_or_else(|p| p.into_inner()) = true;
    cv.notify_all();
}

/// A model task's result: set once by its worker thread.
#[derive(Default)]
struct ModelPending(
    shuttle::sync::Mutex<Option<Result<Bytes, OpError>>>,
    shuttle::sync::Condvar,
);

impl Pending for ModelPending {
    fn wait(&self, w: Wait) -> Option<Result<Bytes, OpError>> {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        while g.is_none() && w == Wait::Forever {
            g = self.1.wait(g).unwrap_or_else(|p| p.into_inner());
        }
        g.clone()
    }
}

/// The model pool: each submitted task runs on a checker thread of its own.
/// Its functions: `wait` (waits for the gate, answers its argument),
/// `double` (answers each byte doubled), `fail` (fails).
struct ModelPool {
    gate: Gate,
    threads: shuttle::sync::Mutex<Vec<shuttle::thread::JoinHandle<()>>>,
}

impl Runner for ModelPool {
    fn submit(&self, function: &str, args: Bytes) -> Result<std::sync::Arc<dyn Pending>, OpError> {
        if !["wait", "double", "fail"].contains(&function) {
            return Err(OpError::UnknownFunction(function.to_string()));
        }
        let p = std::sync::Arc::new(ModelPending::default());
        let (p2, gate, f) = (p.clone(), self.gate.clone(), function.to_string());
        let h = shuttle::thread::spawn(move || {
            let r = match f.as_str() {
                "wait" => {
                    gate_wait(&gate);
                    Ok(args)
                }
                "double" => Ok(args.iter().map(|x| x.wrapping_mul(2)).collect()),
                _ => Err(OpError::MethodFailed {
                    method: f,
                    message: "no luck".into(),
                }),
            };
            *p2.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
            p2.1.notify_all();
        });
        self.threads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(h);
        Ok(p)
    }
    fn terminate(&self) {}
}

/// The pool workload (one shuttle execution). Client 1 submits a task that
/// waits for a gate and waits for its result. Client 2 appends to a list,
/// submits a task to the same pool and fetches its result, then opens the
/// gate (as another process would set an event the first task waits for).
/// Client 2's steps need the table and the pool's tickets while client 1
/// waits: if waiting held either lock, nobody would open the gate (shuttle
/// reports the deadlock). Then: results are what the functions answer,
/// `map` keeps order, a failing task's error and an unknown function are
/// answers, a forgotten ticket is gone, and the pool is freed with its last
/// reference.
pub fn pool_workload<S: ServerSync>() {
    let gate: Gate = Default::default();
    let mut reg = Registry::default();
    let runners = std::sync::Arc::new(shuttle::sync::Mutex::new(Vec::new()));
    let (g, rs) = (gate.clone(), runners.clone());
    reg.set_pools(std::sync::Arc::new(move |_n| {
        let r = std::sync::Arc::new(ModelPool {
            gate: g.clone(),
            threads: Default::default(),
        });
        rs.lock().unwrap_or_else(|p| p.into_inner()).push(r.clone());
        Ok(r as std::sync::Arc<dyn Runner>)
    }));
    let server = std::sync::Arc::new(Server::<S>::with_registry(reg));
    let pool = create(&server, Init::Pool { processes: 2 });
    let list = create(&server, Init::List(Vec::new()));
    let (c1, s1) = model_conn(&server, 1);
    let (c2, s2) = model_conn(&server, 2);
    let pool_op = move |op| Request::Op(pool, Op::Pool(op));
    let h1 = shuttle::thread::spawn(move || {
        let t = match c1.call(pool_op(PoolOp::Submit("wait".into(), b(7)))) {
            Response::Usize(t) => t,
            r => panic!("submit answered {r:?}"),
        };
        let r = c1.call(pool_op(PoolOp::Get(t, Wait::Forever)));
        crate::check!(r == Response::Item(b(7)), "get answered {r:?}");
        let r = c1.call(pool_op(PoolOp::Get(t, Wait::No)));
        crate::check!(r == Response::Item(b(7)), "a second get answered {r:?}");
        c1.call(pool_op(PoolOp::Forget(t)));
        let r = c1.call(pool_op(PoolOp::Ready(t)));
        crate::check!(
            matches!(r, Response::Err(OpError::BadRequest(_))),
            "a forgotten ticket answered {r:?}"
        );
    });
    let g2 = gate.clone();
    let h2 = shuttle::thread::spawn(move || {
        let r = c2.call(Request::Op(list, Op::Append(b(1))));
        crate::check!(r == Response::Ok, "append answered {r:?}");
        let t = match c2.call(pool_op(PoolOp::Submit("double".into(), b(3)))) {
            Response::Usize(t) => t,
            r => panic!("submit answered {r:?}"),
        };
        let r = c2.call(pool_op(PoolOp::Get(t, Wait::Forever)));
        crate::check!(r == Response::Item(b(6)), "get answered {r:?}");
        gate_open(&g2);
        let r = c2.call(pool_op(PoolOp::Map(
            "double".into(),
            vec![b(1), b(2), b(3)],
        )));
        crate::check!(
            r == Response::Items(vec![b(2), b(4), b(6)]),
            "map answered {r:?}"
        );
        let r = c2.call(pool_op(PoolOp::Apply("fail".into(), b(0))));
        crate::check!(
            matches!(r, Response::Err(OpError::MethodFailed { .. })),
            "a failing task answered {r:?}"
        );
        let r = c2.call(pool_op(PoolOp::Apply("nope".into(), b(0))));
        crate::check!(
            r == Response::Err(OpError::UnknownFunction("nope".into())),
            "an unknown function answered {r:?}"
        );
    });
    h1.join().expect("client 1");
    h2.join().expect("client 2");
    s1.join().expect("server thread");
    s2.join().expect("server thread");
    server.handle(0, Request::Decref(vec![pool, list]));
    let live = server.live_objects();
    crate::check!(live == 0, "{live} object(s) outlived their references");
    for r in runners.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        for h in r
            .threads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            h.join().expect("task");
        }
    }
}

#[cfg(test)]
mod pool_tests {
    use super::*;

    fn caught(why: &str, f: impl Fn() + Send + Sync + 'static) -> bool {
        crate::testkit::fails_with(why, || shuttle::check_random(f, iterations()))
    }

    #[test]
    fn pool_work_holds_no_server_lock_random() {
        shuttle::check_random(pool_workload::<ShuttleSync>, iterations());
    }

    #[test]
    fn pool_work_holds_no_server_lock_pct() {
        shuttle::check_pct(pool_workload::<ShuttleSync>, iterations(), 3);
    }

    #[test]
    fn mutant_780_wait_under_tickets_is_caught() {
        assert!(caught(
            "deadlock",
            pool_workload::<ShuttleSync<{ crate::manager::MUTANT_WAIT_UNDER_TICKETS.0 }>>
        ));
    }

    #[test]
    fn mutant_781_pool_under_table_is_caught() {
        assert!(caught(
            "deadlock",
            pool_workload::<ShuttleSync<{ crate::manager::MUTANT_POOL_UNDER_TABLE.0 }>>
        ));
    }
}

// ---- proxies stored in containers ----

/// Is object `id` in the server's table?
fn exists<S: ServerSync>(server: &Server<S>, id: ObjId) -> bool {
    matches!(
        server.handle(0, Request::Describe(id)),
        Response::Created(..)
    )
}

/// The stored-proxy workload (one shuttle execution). Client 1 stores a
/// value embedding a proxy to `inner` in a list (`Holding`), then drops its
/// own reference to `inner`; client 2 meanwhile appends and removes other
/// items of the list, sets a dict entry holding `inner2` twice over (the
/// second store replaces the first), then drops its reference to `inner2`.
/// Then: `inner` lives while the list
/// stores it and is freed once its value is popped (at the popper's next
/// operation: the popper may take its own reference first); `inner2` lives while
/// the dict stores it and is freed with the dict.
pub fn stored_proxy_workload<S: ServerSync>() {
    let server = std::sync::Arc::new(Server::<S>::new());
    let inner = create(&server, Init::Value(b(1)));
    let inner2 = create(&server, Init::Value(b(2)));
    let list = create(&server, Init::List(Vec::new()));
    let dict = create(&server, Init::Dict(Vec::new()));
    // The values embedding the proxies (their bytes name the objects).
    let (x, x2) = (b(100), b(102));
    let (c1, s1) = model_conn(&server, 1);
    let (c2, s2) = model_conn(&server, 2);
    // Each client holds the creator's reference to the object it stores.
    for (c, i) in [(&c1, inner), (&c2, inner2)] {
        assert_eq!(c.call(Request::Incref(vec![i])), Response::Ok);
        server.handle(0, Request::Decref(vec![i]));
    }
    let x1 = x.clone();
    let h1 = shuttle::thread::spawn(move || {
        let r = c1.call(Request::Op(
            list,
            Op::Holding(vec![inner], Box::new(Op::Append(x1))),
        ));
        crate::check!(r == Response::Ok, "a holding append answered {r:?}");
        c1.call(Request::Decref(vec![inner]));
        drop(c1);
    });
    let x2b = x2.clone();
    let h2 = shuttle::thread::spawn(move || {
        for y in [b(7), b(8)] {
            c2.call(Request::Op(list, Op::Append(y.clone())));
            c2.call(Request::Op(list, Op::Remove(y)));
        }
        for _ in 0..2 {
            let r = c2.call(Request::Op(
                dict,
                Op::Holding(vec![inner2], Box::new(Op::DictInsert(b(0), x2b.clone()))),
            ));
            crate::check!(
                matches!(r, Response::MaybeItem(_)),
                "a holding insert answered {r:?}"
            );
        }
        c2.call(Request::Decref(vec![inner2]));
        drop(c2);
    });
    h1.join().expect("client 1");
    h2.join().expect("client 2");
    s1.join().expect("server thread");
    s2.join().expect("server thread");
    // Client 1 is gone: `inner` is reachable only through the list, and
    // `inner2` only through the dict.
    crate::check!(
        exists(&server, inner),
        "stored proxy dropped: an object the list stores was freed"
    );
    crate::check!(
        exists(&server, inner2),
        "stored proxy dropped: an object the dict stores was freed"
    );
    let r = server.handle(0, Request::Op(list, Op::Pop(None)));
    crate::check!(r == Response::Item(x), "pop answered {r:?}");
    // The popper may still take its own reference to the popped proxy...
    crate::check!(
        exists(&server, inner),
        "stored proxy dropped: the popped value's object was freed before its popper could take it"
    );
    // ...until its next operation.
    server.handle(0, Request::Op(list, Op::Len));
    crate::check!(
        !exists(&server, inner),
        "stored proxy leaked: the popped value's object lives on"
    );
    server.handle(0, Request::Decref(vec![dict]));
    crate::check!(
        !exists(&server, inner2),
        "stored proxy leaked: the freed dict's object lives on"
    );
}

/// The stored-proxy workload for the other stores (one shuttle execution).
/// Client 1 extends a list with three values, the first and the last
/// embedding proxies (`HoldingEach`), then puts a value holding `c` into a
/// full queue (its `put` blocks until client 2 takes the queue's item).
/// Client 2 meanwhile takes that item, updates a dict with two pairs, the
/// first holding `d` (`HoldingEach`), `setdefault`s a new key holding `e`
/// and an existing key with a value holding `f` (not stored: `f` is not
/// held). Each client then drops its own references and closes. Then:
/// `a`, `b`, `c`, `d` and `e` live while their containers store them; `f`
/// is freed; removing each value (list `pop`, queue `get`) or freeing its
/// container lets its object go.
pub fn stored_many_workload<S: ServerSync>() {
    let server = std::sync::Arc::new(Server::<S>::new());
    let [a, bb, c, d, e, f] = [1, 2, 3, 4, 5, 6].map(|i| create(&server, Init::Value(b(i))));
    let list = create(&server, Init::List(Vec::new()));
    let dict = create(&server, Init::Dict(Vec::new()));
    let queue = create(&server, Init::Queue { maxsize: Some(1) });
    let r = server.handle(0, Request::Op(queue, Op::Put(b(50), Wait::No)));
    assert_eq!(r, Response::Ok);
    let r = server.handle(0, Request::Op(dict, Op::DictInsert(b(60), b(61))));
    assert!(matches!(r, Response::MaybeItem(_)), "{r:?}");
    // The values embedding the proxies (their bytes name the objects).
    let [xa, xb, xc, xd, xe, xf] = [101, 102, 103, 104, 105, 106].map(b);
    let (c1, s1) = model_conn(&server, 1);
    let (c2, s2) = model_conn(&server, 2);
    // Each client holds the creator's reference to the objects it stores.
    for (cl, ids) in [(&c1, vec![a, bb, c]), (&c2, vec![d, e, f])] {
        assert_eq!(cl.call(Request::Incref(ids.clone())), Response::Ok);
        server.handle(0, Request::Decref(ids));
    }
    let (xa1, xb1, xc1) = (xa.clone(), xb.clone(), xc.clone());
    let h1 = shuttle::thread::spawn(move || {
        let r = c1.call(Request::Op(
            list,
            Op::HoldingEach(
                vec![vec![a], vec![], vec![bb]],
                Box::new(Op::Extend(vec![xa1, b(9), xb1])),
            ),
        ));
        crate::check!(r == Response::Ok, "a holding extend answered {r:?}");
        let r = c1.call(Request::Op(
            queue,
            Op::Holding(vec![c], Box::new(Op::Put(xc1, Wait::Forever))),
        ));
        crate::check!(r == Response::Ok, "a holding put answered {r:?}");
        c1.call(Request::Decref(vec![a, bb, c]));
        drop(c1);
    });
    let (xd2, xe2, xf2) = (xd.clone(), xe.clone(), xf.clone());
    let h2 = shuttle::thread::spawn(move || {
        let r = c2.call(Request::Op(queue, Op::QGet(Wait::Forever)));
        crate::check!(r == Response::Item(b(50)), "get answered {r:?}");
        let r = c2.call(Request::Op(
            dict,
            Op::HoldingEach(
                vec![vec![d], vec![]],
                Box::new(Op::DictUpdate(vec![(b(0), xd2), (b(1), b(9))])),
            ),
        ));
        crate::check!(r == Response::Ok, "a holding update answered {r:?}");
        let r = c2.call(Request::Op(
            dict,
            Op::Holding(vec![e], Box::new(Op::DictSetDefault(b(2), xe2.clone()))),
        ));
        crate::check!(
            r == Response::Item(xe2),
            "a holding setdefault answered {r:?}"
        );
        let r = c2.call(Request::Op(
            dict,
            Op::Holding(vec![f], Box::new(Op::DictSetDefault(b(60), xf2))),
        ));
        crate::check!(
            r == Response::Item(b(61)),
            "setdefault of a key answered {r:?}"
        );
        c2.call(Request::Decref(vec![d, e, f]));
        drop(c2);
    });
    h1.join().expect("client 1");
    h2.join().expect("client 2");
    s1.join().expect("server thread");
    s2.join().expect("server thread");
    // Both clients are gone: each object is reachable only through the
    // container that stores it.
    for (i, what) in [
        (a, "the list's first extended item"),
        (bb, "the list's last extended item"),
        (c, "the queue's put item"),
        (d, "the dict's updated value"),
        (e, "the dict's setdefault value"),
    ] {
        crate::check!(
            exists(&server, i),
            "stored proxy dropped: {what}'s object was freed"
        );
    }
    crate::check!(
        !exists(&server, f),
        "stored proxy leaked: a setdefault that stored nothing holds its object"
    );
    let r = server.handle(0, Request::Op(list, Op::PopAt(-1)));
    crate::check!(r == Response::Item(xb), "pop answered {r:?}");
    let r = server.handle(0, Request::Op(queue, Op::QGet(Wait::No)));
    crate::check!(r == Response::Item(xc), "get answered {r:?}");
    // The next operation gives the removed values' references back.
    server.handle(0, Request::Op(list, Op::Len));
    crate::check!(
        !exists(&server, bb) && !exists(&server, c),
        "stored proxy leaked: a popped or got value's object lives on"
    );
    crate::check!(
        exists(&server, a),
        "stored proxy dropped: the list's first item's object"
    );
    server.handle(0, Request::Decref(vec![list, dict]));
    crate::check!(
        !exists(&server, a) && !exists(&server, d) && !exists(&server, e),
        "stored proxy leaked: a freed container's object lives on"
    );
    let _ = xa;
}

#[cfg(test)]
mod stored_tests {
    use super::*;

    fn caught(why: &str, f: impl Fn() + Send + Sync + 'static) -> bool {
        crate::testkit::fails_with(why, || shuttle::check_random(f, iterations()))
    }

    #[test]
    fn stored_proxies_keep_their_objects_random() {
        shuttle::check_random(stored_proxy_workload::<ShuttleSync>, iterations());
    }

    #[test]
    fn stored_proxies_keep_their_objects_pct() {
        shuttle::check_pct(stored_proxy_workload::<ShuttleSync>, iterations(), 3);
    }

    #[test]
    fn stored_many_keep_their_objects_random() {
        shuttle::check_random(stored_many_workload::<ShuttleSync>, iterations());
    }

    #[test]
    fn stored_many_keep_their_objects_pct() {
        shuttle::check_pct(stored_many_workload::<ShuttleSync>, iterations(), 3);
    }

    #[test]
    fn mutant_783_hold_first_only_is_caught() {
        assert!(caught(
            "stored proxy dropped",
            stored_many_workload::<ShuttleSync<{ crate::manager::server::MUTANT_HOLD_FIRST_ONLY.0 }>>
        ));
    }

    #[test]
    fn mutant_782_on_the_other_stores_is_caught() {
        assert!(caught(
            "stored proxy dropped",
            stored_many_workload::<ShuttleSync<{ crate::manager::server::MUTANT_STORED_DROPPED.0 }>>
        ));
    }

    #[test]
    fn mutant_782_stored_dropped_is_caught() {
        assert!(caught(
            "stored proxy dropped",
            stored_proxy_workload::<ShuttleSync<{ crate::manager::server::MUTANT_STORED_DROPPED.0 }>>
        ));
    }
}
