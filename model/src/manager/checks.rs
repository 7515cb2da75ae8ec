//! Shuttle instantiation of the manager server and its linearizability checks.
//!
//! Several model clients, each with its own connection (a pair of shuttle
//! channels served by its own server thread running the shipped
//! [`serve_connection`] loop), run concurrent list or dict operations. Every
//! operation's invocation and response are stamped with a global logical
//! clock; the history must be linearizable against a sequential `Vec`/`HashMap`
//! (a search over the orders the real-time order allows). Seeded mutants
//! ([`ManagerMutant`]) are proven caught.

use super::*;
use shuttle::sync::mpsc::{channel, Receiver, Sender};
use std::marker::PhantomData;

/// Which [`ManagerMutant`] a [`ShuttleSync`] instantiation runs with.
pub trait MutantChoice: Send + Sync + 'static {
    /// The mutant.
    const M: ManagerMutant;
}

/// The correct server.
#[derive(Debug)]
pub struct Correct;
impl MutantChoice for Correct {
    const M: ManagerMutant = ManagerMutant::None;
}

/// Mutant 701 ([`ManagerMutant::SplitPop`]).
#[derive(Debug)]
pub struct SplitPop;
impl MutantChoice for SplitPop {
    const M: ManagerMutant = ManagerMutant::SplitPop;
}

/// Mutant 702 ([`ManagerMutant::SplitExtend`]).
#[derive(Debug)]
pub struct SplitExtend;
impl MutantChoice for SplitExtend {
    const M: ManagerMutant = ManagerMutant::SplitExtend;
}

/// Mutant 703 ([`ManagerMutant::NoNotify`]).
#[derive(Debug)]
pub struct NoNotify;
impl MutantChoice for NoNotify {
    const M: ManagerMutant = ManagerMutant::NoNotify;
}

/// [`ServerSync`] over shuttle's `Mutex` and `Condvar`, running mutant `M::M`.
#[derive(Debug)]
pub struct ShuttleSync<M: MutantChoice = Correct>(PhantomData<M>);

impl<M: MutantChoice> ServerSync for ShuttleSync<M> {
    type Mutex<T: Send + 'static> = shuttle::sync::Mutex<T>;
    type Condvar = shuttle::sync::Condvar;
    const MUTANT: ManagerMutant = M::M;
    fn mutex<T: Send + 'static>(v: T) -> Self::Mutex<T> {
        shuttle::sync::Mutex::new(v)
    }
    fn condvar() -> Self::Condvar {
        shuttle::sync::Condvar::new()
    }
    fn with<T: Send + 'static, R>(m: &Self::Mutex<T>, f: impl FnOnce(&mut T) -> R) -> R {
        let mut g = m.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }
    fn block_on<T: Send + 'static, R>(
        m: &Self::Mutex<T>,
        cv: &Self::Condvar,
        timeout: Option<Duration>,
        _gone: &dyn Fn() -> bool,
        mut f: impl FnMut(&mut T) -> Option<R>,
    ) -> Option<R> {
        let mut g = m.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(r) = f(&mut g) {
                return Some(r);
            }
            match timeout {
                None => g = cv.wait(g).unwrap_or_else(|p| p.into_inner()),
                Some(t) if t.is_zero() => return None,
                // shuttle may time a wait out at any point: that is one of the
                // schedules explored.
                Some(t) => {
                    let (g2, to) = cv.wait_timeout(g, t).unwrap_or_else(|p| p.into_inner());
                    g = g2;
                    if to.timed_out() {
                        return f(&mut g);
                    }
                }
            }
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
    assert!(
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
                    let (g, i) = match cl.call(Request::Op(bar, Op::BarrierArrive)) {
                        Response::Arrived(g, i) => (g, i),
                        r => panic!("{r:?}"),
                    };
                    assert_eq!(g, round);
                    assert_eq!(
                        cl.call(Request::Op(bar, Op::BarrierAwait(g, Wait::Forever))),
                        Response::Ok
                    );
                    // Nobody passes generation g before all 3 arrived in it.
                    assert!(
                        arrived.load(std::sync::atomic::Ordering::SeqCst) >= 3 * (round + 1),
                        "passed the barrier early"
                    );
                    passed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    mine.push((g, i));
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
        loop {
            if a.call(Request::Op(flag, Op::ValueGet)) == Response::Item(vec![1]) {
                break;
            }
            let (t, d) = match call(Op::CondEnter) {
                Response::Arrived(t, d) => (t, d),
                r => panic!("{r:?}"),
            };
            assert_eq!(d, 2);
            assert_eq!(
                call(Op::CondSleep(t, d, Wait::Forever)),
                Response::Bool(true)
            );
        }
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

/// Iterations per shuttle check: `PROCSHARE_SHUTTLE_ITERS`, default 1000.
pub fn iterations() -> usize {
    std::env::var("PROCSHARE_SHUTTLE_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000)
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

    fn caught(f: impl Fn() + Send + Sync + std::panic::RefUnwindSafe + 'static) -> bool {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            shuttle::check_random(f, iterations())
        }))
        .is_err()
    }

    #[test]
    fn mutant_split_pop_is_caught() {
        assert!(caught(list_workload::<ShuttleSync<SplitPop>>));
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
    fn mutant_no_notify_is_caught() {
        assert!(caught(blocking_workload::<ShuttleSync<NoNotify>>));
        assert!(caught(barrier_workload::<ShuttleSync<NoNotify>>));
        assert!(caught(condition_workload::<ShuttleSync<NoNotify>>));
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
    fn mutant_split_extend_is_caught() {
        assert!(caught(list_workload::<ShuttleSync<SplitExtend>>));
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
