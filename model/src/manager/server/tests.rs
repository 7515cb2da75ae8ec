//! The server's dispatch and bookkeeping one request at a time, on the
//! shipped [`StdSync`]: ids, reference counts, names, the `Holding` wrappers
//! and what a container's stored values keep alive, what a disconnect
//! releases, the serve loop's answers, and `StdSync`'s own waits. The
//! wake-ups of requests blocked on an object that is freed are checked under
//! shuttle (a missing wake-up is a deadlock there).

use super::*;

type Srv = Server<StdSync>;

fn b(x: u8) -> Bytes {
    vec![x]
}

fn create(s: &Srv, conn: ConnId, init: Init) -> ObjId {
    match s.handle(conn, Request::Create(init)) {
        Response::Created(id, _) => id,
        r => panic!("create answered {r:?}"),
    }
}

fn op(s: &Srv, conn: ConnId, id: ObjId, op: Op) -> Response {
    s.handle(conn, Request::Op(id, op))
}

/// `id`'s reference count (`None`: freed).
fn refs(s: &Srv, id: ObjId) -> Option<u64> {
    StdSync::with(&s.table, |t| t.refs.get(&id).copied())
}

/// The references `conn` holds to `id`.
fn held(s: &Srv, conn: ConnId, id: ObjId) -> u64 {
    StdSync::with(&s.table, |t| {
        t.held
            .get(&conn)
            .and_then(|m| m.get(&id))
            .copied()
            .unwrap_or(0)
    })
}

/// The values stored in container `id` and the objects each holds.
fn stored(s: &Srv, id: ObjId) -> Vec<(Bytes, Vec<ObjId>)> {
    StdSync::with(&s.table, |t| t.stored.get(&id).cloned().unwrap_or_default())
}

fn bad_request(r: &Response) -> String {
    match r {
        Response::Err(OpError::BadRequest(m)) => m.clone(),
        r => panic!("not a BadRequest: {r:?}"),
    }
}

#[test]
fn pings_creates_and_describes() {
    let s = Srv::new();
    assert_eq!(s.handle(1, Request::Ping), Response::Pong);
    assert_eq!(s.handle(1, Request::Shutdown), Response::Ok);
    assert_eq!(
        s.handle(1, Request::Create(Init::List(vec![]))),
        Response::Created(1, Kind::List)
    );
    assert_eq!(
        s.handle(2, Request::Create(Init::Lock)),
        Response::Created(2, Kind::Lock)
    );
    assert_eq!(
        s.handle(2, Request::Create(Init::Event)),
        Response::Created(3, Kind::Event)
    );
    assert_eq!(s.live_objects(), 3);
    assert_eq!(
        s.handle(3, Request::Describe(2)),
        Response::Created(2, Kind::Lock)
    );
    assert_eq!(
        s.handle(3, Request::Describe(9)),
        Response::Err(OpError::NoSuchObject(9))
    );
    assert_eq!(
        op(&s, 1, 9, Op::Len),
        Response::Err(OpError::NoSuchObject(9))
    );
    assert!(format!("{s:?}").starts_with("Server"));
    assert_eq!(s.live_objects(), 3);
}

#[test]
fn references_are_counted_per_connection_and_free_the_object_at_zero() {
    let s = Srv::new();
    let l = create(&s, 1, Init::List(vec![]));
    let other = create(&s, 1, Init::Event);
    assert_eq!((refs(&s, l), held(&s, 1, l)), (Some(1), 1));
    assert_eq!(s.handle(2, Request::Incref(vec![l])), Response::Ok);
    assert_eq!(s.handle(2, Request::Incref(vec![l])), Response::Ok);
    assert_eq!((refs(&s, l), held(&s, 2, l)), (Some(3), 2));
    // An incref naming a missing object takes nothing.
    assert_eq!(
        s.handle(2, Request::Incref(vec![l, 99])),
        Response::Err(OpError::NoSuchObject(99))
    );
    assert_eq!((refs(&s, l), held(&s, 2, l)), (Some(3), 2));
    // A decref by a connection that holds nothing gives nothing back.
    assert_eq!(s.handle(3, Request::Decref(vec![l])), Response::Ok);
    assert_eq!(refs(&s, l), Some(3));
    assert_eq!(s.handle(1, Request::Decref(vec![l])), Response::Ok);
    assert_eq!((refs(&s, l), held(&s, 1, l)), (Some(2), 0));
    assert_eq!(s.handle(2, Request::Decref(vec![l])), Response::Ok);
    assert_eq!((refs(&s, l), s.live_objects()), (Some(1), 2));
    assert_eq!(op(&s, 2, l, Op::Append(b(1))), Response::Ok);
    assert_eq!(s.handle(2, Request::Decref(vec![l])), Response::Ok);
    assert_eq!((refs(&s, l), s.live_objects()), (None, 1));
    assert_eq!(
        op(&s, 2, l, Op::Len),
        Response::Err(OpError::NoSuchObject(l))
    );
    assert_eq!(s.handle(2, Request::Decref(vec![l])), Response::Ok);
    // Connection 1 still holds the other object; connection 2 holds nothing.
    assert_eq!(held(&s, 1, other), 1);
    StdSync::with(&s.table, |t| assert!(!t.held.contains_key(&2)));
}

#[test]
fn a_name_holds_a_reference_of_its_own_and_its_kind() {
    let s = Srv::new();
    let named = |conn, init| s.handle(conn, Request::Named("x".into(), init));
    assert_eq!(
        named(1, Init::List(vec![])),
        Response::Created(1, Kind::List)
    );
    assert_eq!(refs(&s, 1), Some(2));
    assert_eq!(
        named(2, Init::List(vec![b(5)])),
        Response::Created(1, Kind::List)
    );
    assert_eq!((refs(&s, 1), held(&s, 2, 1)), (Some(3), 1));
    assert_eq!(
        named(2, Init::Dict(vec![])),
        Response::Err(OpError::NameTaken {
            name: "x".into(),
            found: Kind::List
        })
    );
    assert_eq!(refs(&s, 1), Some(3));
    assert_eq!(s.handle(1, Request::Decref(vec![1])), Response::Ok);
    assert_eq!(s.handle(2, Request::Decref(vec![1])), Response::Ok);
    assert_eq!((refs(&s, 1), s.live_objects()), (Some(1), 1));
    // A registered type that does not exist: the registry's answer.
    let custom = Init::Custom {
        typeid: "nope".into(),
        methods: vec![],
    };
    assert_eq!(
        s.handle(1, Request::Named("y".into(), custom.clone())),
        Response::Err(OpError::UnknownType("nope".into()))
    );
    assert_eq!(
        s.handle(1, Request::Create(custom)),
        Response::Err(OpError::UnknownType("nope".into()))
    );
}

#[test]
fn ops_a_seeded_bug_reroutes_are_the_ops_themselves() {
    let s = Srv::new();
    let d = create(&s, 1, Init::Dict(vec![]));
    let l = create(&s, 1, Init::List(vec![b(1)]));
    let wrong = |found, op: &str| {
        Response::Err(OpError::WrongType {
            found,
            op: op.into(),
        })
    };
    assert_eq!(op(&s, 1, d, Op::Pop(None)), wrong(Kind::Dict, "Pop"));
    assert_eq!(
        op(&s, 1, l, Op::BarrierReset),
        wrong(Kind::List, "BarrierReset")
    );
    assert_eq!(
        op(&s, 1, l, Op::DictUpdate(vec![])),
        wrong(Kind::List, "DictUpdate")
    );
    assert_eq!(
        op(&s, 1, l, Op::SetAlgebraUpdate(SetAlg::Union, vec![])),
        wrong(Kind::List, "SetAlgebraUpdate")
    );
    assert_eq!(
        op(&s, 1, d, Op::Extend(vec![])),
        wrong(Kind::Dict, "Extend")
    );
    assert_eq!(op(&s, 1, l, Op::Pop(None)), Response::Item(b(1)));
    assert_eq!(op(&s, 1, l, Op::Snapshot), Response::Versioned(1, vec![]));
    // A reset breaks the generation a party waits in.
    let br = create(&s, 1, Init::Barrier { parties: 2 });
    assert_eq!(op(&s, 1, br, Op::BarrierArrive), Response::Arrived(0, 0));
    assert_eq!(op(&s, 2, br, Op::BarrierReset), Response::Ok);
    assert_eq!(
        op(&s, 1, br, Op::BarrierAwait(0, Wait::No)),
        Response::Err(OpError::BrokenBarrier)
    );
}

#[test]
fn a_blocking_op_waits_out_its_timeout_and_answers_the_timeout_answer() {
    let s = Srv::new();
    let l = create(&s, 1, Init::Lock);
    let q = create(&s, 1, Init::Queue { maxsize: None });
    assert_eq!(op(&s, 1, l, Op::Acquire(Wait::No)), Response::Bool(true));
    assert_eq!(
        op(&s, 2, l, Op::Acquire(Wait::Micros(2000))),
        Response::Bool(false)
    );
    assert_eq!(
        op(&s, 2, q, Op::QGet(Wait::Micros(2000))),
        Response::Err(OpError::Timeout)
    );
    StdSync::with(&s.table, |t| assert_eq!(t.waiting, 0));
    assert_eq!(op(&s, 1, q, Op::Put(b(3), Wait::Forever)), Response::Ok);
    assert_eq!(op(&s, 2, q, Op::QGet(Wait::Forever)), Response::Item(b(3)));
}

#[test]
fn holding_wrappers_must_wrap_a_store_of_as_many_values() {
    let s = Srv::new();
    let l = create(&s, 1, Init::List(vec![]));
    let inner = create(&s, 1, Init::Event);
    let m = bad_request(&op(&s, 1, l, Op::Holding(vec![inner], Box::new(Op::Len))));
    assert_eq!(m, "Len stores no single value: it cannot hold proxies");
    let m = bad_request(&op(
        &s,
        1,
        l,
        Op::HoldingEach(vec![vec![inner]], Box::new(Op::Append(b(1)))),
    ));
    assert!(m.contains("stores no list of values"), "{m}");
    let m = bad_request(&op(
        &s,
        1,
        l,
        Op::HoldingEach(vec![vec![inner]], Box::new(Op::Extend(vec![b(1), b(2)]))),
    ));
    assert_eq!(m, "1 lists of held objects for 2 stored values");
    // A held object that does not exist: nothing is stored.
    assert_eq!(
        op(&s, 1, l, Op::Holding(vec![99], Box::new(Op::Append(b(1))))),
        Response::Err(OpError::NoSuchObject(99))
    );
    // A failed store holds nothing, even when the list holds a value equal
    // to the one it would have stored.
    assert_eq!(op(&s, 1, l, Op::Append(b(1))), Response::Ok);
    assert_eq!(
        op(
            &s,
            1,
            l,
            Op::Holding(vec![inner], Box::new(Op::Set(5, b(1))))
        ),
        Response::Err(OpError::IndexOutOfRange { index: 5, len: 1 })
    );
    assert_eq!(
        op(&s, 1, l, Op::Snapshot),
        Response::Versioned(1, vec![b(1)])
    );
    assert_eq!(refs(&s, inner), Some(1));
    assert!(stored(&s, l).is_empty());
}

#[test]
fn every_store_may_hold_and_holds_exactly_its_value() {
    let s = Srv::new();
    let inner = create(&s, 1, Init::Event);
    let x = b(7);
    let cases: Vec<(Init, Op)> = vec![
        (Init::List(vec![]), Op::Append(x.clone())),
        (Init::List(vec![]), Op::Insert(0, x.clone())),
        (Init::List(vec![]), Op::InsertAt(0, x.clone())),
        (Init::List(vec![b(0)]), Op::Set(0, x.clone())),
        (Init::List(vec![b(0)]), Op::SetAt(-1, x.clone())),
        (Init::Dict(vec![]), Op::DictInsert(b(1), x.clone())),
        (Init::Dict(vec![]), Op::DictSetDefault(b(1), x.clone())),
        (Init::Value(b(0)), Op::ValueSet(x.clone())),
        (Init::Namespace, Op::NsSet("a".into(), x.clone())),
        (Init::Queue { maxsize: None }, Op::Put(x.clone(), Wait::No)),
        (
            Init::JoinableQueue { maxsize: None },
            Op::Put(x.clone(), Wait::No),
        ),
    ];
    let mut n = 1;
    for (init, store) in cases {
        let name = format!("{store:?}");
        let c = create(&s, 1, init);
        let r = op(&s, 1, c, Op::Holding(vec![inner], Box::new(store)));
        assert!(!matches!(r, Response::Err(_)), "{name}: {r:?}");
        n += 1;
        assert_eq!(stored(&s, c), vec![(x.clone(), vec![inner])], "{name}");
        assert_eq!(refs(&s, inner), Some(n), "{name}");
    }
    // Per item: only the items that hold objects are stored.
    let per_item: Vec<(Init, Op)> = vec![
        (Init::List(vec![]), Op::Extend(vec![b(1), b(2)])),
        (
            Init::Dict(vec![]),
            Op::DictUpdate(vec![(b(0), b(1)), (b(9), b(2))]),
        ),
    ];
    for (init, store) in per_item {
        let name = format!("{store:?}");
        let c = create(&s, 1, init);
        let r = op(
            &s,
            1,
            c,
            Op::HoldingEach(vec![vec![], vec![inner]], Box::new(store)),
        );
        assert_eq!(r, Response::Ok, "{name}");
        n += 1;
        assert_eq!(stored(&s, c), vec![(b(2), vec![inner])], "{name}");
        assert_eq!(refs(&s, inner), Some(n), "{name}");
    }
}

/// Store a value holding a fresh object in `c` (by `store`), drop the
/// creator's own reference, run `keep` (a change that leaves the value),
/// then `remove` (a change that takes it out): the object lives while the
/// value is there, and is freed at the remover's next request.
fn stored_value_keeps_its_object(init: Init, store: Op, keep: Op, remove: Op) {
    let name = format!("{store:?}");
    let s = Srv::new();
    let c = create(&s, 1, init);
    let inner = create(&s, 1, Init::Event);
    let r = op(&s, 1, c, Op::Holding(vec![inner], Box::new(store)));
    assert!(!matches!(r, Response::Err(_)), "{name}: {r:?}");
    assert_eq!(s.handle(1, Request::Decref(vec![inner])), Response::Ok);
    assert_eq!(refs(&s, inner), Some(1), "{name}");
    let r = op(&s, 2, c, keep);
    assert!(!matches!(r, Response::Err(_)), "{name}: {r:?}");
    assert_eq!(
        op(&s, 2, inner, Op::EventIsSet),
        Response::Bool(false),
        "{name}"
    );
    assert_eq!(refs(&s, inner), Some(1), "{name}: kept");
    let r = op(&s, 2, c, remove);
    assert!(!matches!(r, Response::Err(_)), "{name}: {r:?}");
    // The removed value may be the answer: its references are given back
    // at the remover's next request.
    assert_eq!(refs(&s, inner), Some(1), "{name}: deferred");
    op(&s, 3, c, Op::Len);
    assert_eq!(
        refs(&s, inner),
        Some(1),
        "{name}: another connection's request"
    );
    op(&s, 2, c, Op::Len);
    assert_eq!(refs(&s, inner), None, "{name}: given back");
    assert!(stored(&s, c).is_empty(), "{name}");
}

#[test]
fn a_stored_value_keeps_its_object_while_the_container_holds_it() {
    let x = b(7);
    stored_value_keeps_its_object(
        Init::List(vec![]),
        Op::Append(x.clone()),
        Op::Append(b(1)),
        Op::Remove(x.clone()),
    );
    stored_value_keeps_its_object(
        Init::Dict(vec![]),
        Op::DictInsert(b(1), x.clone()),
        Op::DictInsert(b(2), b(2)),
        Op::DictInsert(b(1), b(3)),
    );
    stored_value_keeps_its_object(
        Init::Value(b(0)),
        Op::ValueSet(x.clone()),
        Op::ValueSet(x.clone()),
        Op::ValueSet(b(1)),
    );
    stored_value_keeps_its_object(
        Init::Namespace,
        Op::NsSet("a".into(), x.clone()),
        Op::NsSet("b".into(), b(1)),
        Op::NsDel("a".into()),
    );
    stored_value_keeps_its_object(
        Init::Queue { maxsize: None },
        Op::Put(x.clone(), Wait::No),
        Op::Put(b(1), Wait::No),
        Op::QGet(Wait::No),
    );
    stored_value_keeps_its_object(
        Init::JoinableQueue { maxsize: None },
        Op::Put(x.clone(), Wait::No),
        Op::Put(b(1), Wait::No),
        Op::QGet(Wait::Forever),
    );
}

#[test]
fn equal_values_each_keep_their_own_reference() {
    let s = Srv::new();
    let l = create(&s, 1, Init::List(vec![]));
    let inner = create(&s, 1, Init::Event);
    let x = b(7);
    for _ in 0..2 {
        let r = op(
            &s,
            1,
            l,
            Op::Holding(vec![inner], Box::new(Op::Append(x.clone()))),
        );
        assert_eq!(r, Response::Ok);
    }
    assert_eq!(refs(&s, inner), Some(3));
    assert_eq!(op(&s, 1, l, Op::Remove(x.clone())), Response::Ok);
    op(&s, 1, l, Op::Len);
    assert_eq!(refs(&s, inner), Some(2));
    assert_eq!(stored(&s, l), vec![(x.clone(), vec![inner])]);
    // Freeing the container gives back what its values held.
    assert_eq!(s.handle(1, Request::Decref(vec![l])), Response::Ok);
    assert_eq!(refs(&s, inner), Some(1));
}

#[test]
fn a_disconnect_releases_the_connections_locks_and_references_only() {
    let s = Srv::new();
    let keeper = 9;
    let lock = create(&s, 1, Init::Lock);
    let rlock = create(&s, 1, Init::RLock);
    let cond = create(&s, 1, Init::Condition);
    let theirs = create(&s, 2, Init::Lock);
    let their_r = create(&s, 2, Init::RLock);
    let their_c = create(&s, 2, Init::Condition);
    let mine_only = create(&s, 1, Init::Event);
    let all = vec![lock, rlock, cond, theirs, their_r, their_c];
    assert_eq!(s.handle(keeper, Request::Incref(all)), Response::Ok);
    assert_eq!(op(&s, 1, lock, Op::Acquire(Wait::No)), Response::Bool(true));
    assert_eq!(
        op(&s, 1, rlock, Op::Acquire(Wait::No)),
        Response::Bool(true)
    );
    assert_eq!(
        op(&s, 1, rlock, Op::Acquire(Wait::No)),
        Response::Bool(true)
    );
    assert_eq!(
        op(&s, 2, theirs, Op::Acquire(Wait::No)),
        Response::Bool(true)
    );
    assert_eq!(
        op(&s, 2, their_r, Op::Acquire(Wait::No)),
        Response::Bool(true)
    );
    assert_eq!(
        op(&s, 2, their_c, Op::Acquire(Wait::No)),
        Response::Bool(true)
    );
    // On `cond`: 1 waits (notified), 2 waits twice, 1 waits again and then
    // holds its lock.
    for conn in [1, 2] {
        op(&s, conn, cond, Op::Acquire(Wait::No));
        op(&s, conn, cond, Op::CondEnter);
    }
    op(&s, 3, cond, Op::Acquire(Wait::No));
    assert_eq!(op(&s, 3, cond, Op::Notify(1)), Response::Ok);
    op(&s, 3, cond, Op::Release);
    for conn in [2, 1] {
        op(&s, conn, cond, Op::Acquire(Wait::No));
        op(&s, conn, cond, Op::CondEnter);
    }
    assert_eq!(op(&s, 1, cond, Op::Acquire(Wait::No)), Response::Bool(true));
    let places = |s: &Srv| {
        StdSync::with(&s.table, |t| match t.objects.get(&cond) {
            Some(Obj::Condition(c)) => (c.waiters.clone(), c.notified.clone()),
            o => panic!("{o:?}"),
        })
    };
    assert_eq!(places(&s), (vec![(1, 2), (2, 2), (3, 1)], vec![(0, 1)]));
    s.disconnect(1);
    // Its locks are free, its places in the condition gone.
    assert_eq!(op(&s, 3, lock, Op::Acquire(Wait::No)), Response::Bool(true));
    assert_eq!(
        op(&s, 3, rlock, Op::Acquire(Wait::No)),
        Response::Bool(true)
    );
    assert_eq!(op(&s, 3, cond, Op::Locked), Response::Bool(false));
    assert_eq!(places(&s), (vec![(1, 2), (2, 2)], vec![]));
    // Its references are given back; the others' locks are still held.
    assert_eq!(refs(&s, mine_only), None);
    assert_eq!(refs(&s, lock), Some(1));
    assert_eq!(op(&s, 3, theirs, Op::Locked), Response::Bool(true));
    assert_eq!(
        op(&s, 3, their_r, Op::Acquire(Wait::No)),
        Response::Bool(false)
    );
    assert_eq!(
        op(&s, 3, their_c, Op::Acquire(Wait::No)),
        Response::Bool(false)
    );
    s.disconnect(2);
    assert_eq!(
        op(&s, 3, theirs, Op::Acquire(Wait::No)),
        Response::Bool(true)
    );
    assert_eq!(places(&s), (vec![], vec![]));
}

/// A scripted connection: what it receives, and whether each send succeeds.
struct Script {
    incoming: std::collections::VecDeque<Incoming>,
    sent: Vec<Response>,
    sends_ok: usize,
}

impl Transport for Script {
    fn recv(&mut self) -> Incoming {
        self.incoming.pop_front().unwrap_or(Incoming::Closed)
    }
    fn send(&mut self, r: &Response) -> bool {
        self.sent.push(r.clone());
        self.sent.len() <= self.sends_ok
    }
}

fn script(incoming: Vec<Incoming>, sends_ok: usize) -> Script {
    Script {
        incoming: incoming.into(),
        sent: Vec::new(),
        sends_ok,
    }
}

#[test]
fn the_serve_loop_answers_until_the_stream_ends() {
    let s = Srv::new();
    let lock = create(&s, 9, Init::Lock);
    let req = |r| Incoming::Request(r);
    let mut t = script(
        vec![
            req(Request::Op(lock, Op::Acquire(Wait::No))),
            Incoming::Garbage("junk".into()),
            req(Request::Ping),
            Incoming::Closed,
            req(Request::Ping),
        ],
        usize::MAX,
    );
    assert_eq!(serve_connection(&s, 1, &mut t), Served::Disconnected);
    assert_eq!(
        t.sent,
        vec![
            Response::Bool(true),
            Response::Err(OpError::BadRequest("junk".into())),
            Response::Pong
        ]
    );
    // Its lock was released when it ended.
    assert_eq!(op(&s, 2, lock, Op::Locked), Response::Bool(false));
    // A fatal frame is answered, and ends the connection.
    let mut t = script(vec![Incoming::Fatal("cut".into()), req(Request::Ping)], 9);
    assert_eq!(serve_connection(&s, 1, &mut t), Served::Disconnected);
    assert_eq!(
        t.sent,
        vec![Response::Err(OpError::BadRequest("cut".into()))]
    );
    // Shutdown is answered.
    let mut t = script(vec![req(Request::Shutdown), req(Request::Ping)], 9);
    assert_eq!(serve_connection(&s, 1, &mut t), Served::Shutdown);
    assert_eq!(t.sent, vec![Response::Ok]);
    // A failed send ends it.
    for first in [req(Request::Ping), Incoming::Garbage("junk".into())] {
        let mut t = script(vec![first, req(Request::Ping)], 0);
        assert_eq!(serve_connection(&s, 1, &mut t), Served::Disconnected);
        assert_eq!(t.sent.len(), 1);
    }
    // A transport's peer is there unless it says otherwise.
    assert!(!script(vec![], 0).peer_gone());
}

#[test]
fn std_sync_locks_and_deadlines() {
    let m = StdSync::mutex(5u32);
    assert_eq!(*StdSync::lock(&m), 5);
    assert_eq!(StdSync::with(&m, |v| *v + 1), 6);
    assert!(StdSync::deadline(None).is_none());
    let d = StdSync::deadline(Some(Duration::from_secs(3600))).expect("a deadline");
    assert!(d > Instant::now() + Duration::from_secs(3000));
    assert!(StdSync::deadline(Some(Duration::MAX)).is_none());
}

#[test]
fn std_sync_wait_tells_an_expired_deadline_from_a_poll() {
    let m = StdSync::mutex(());
    let cv = StdSync::condvar();
    let wait = |d: Option<Instant>| StdSync::wait(&m, &cv, StdSync::lock(&m), &d).1;
    // Nobody notifies: a deadline within the poll interval expires, a later
    // one (or none) is a poll.
    assert_eq!(
        wait(Some(Instant::now() + Duration::from_millis(1))),
        Slept::Expired
    );
    assert_eq!(wait(Some(Instant::now())), Slept::Expired);
    assert_eq!(
        wait(Some(Instant::now() + Duration::from_secs(3600))),
        Slept::Poll
    );
    assert_eq!(wait(None), Slept::Poll);
}

#[test]
fn std_sync_notify_all_wakes_a_waiter() {
    #[derive(Default)]
    struct State {
        waiting: bool,
        gave_up: bool,
    }
    let shared = std::sync::Arc::new((StdSync::mutex(State::default()), StdSync::condvar()));
    let s2 = shared.clone();
    let waiter = std::thread::spawn(move || {
        let (m, cv) = &*s2;
        let mut g = StdSync::lock(m);
        loop {
            g.waiting = true;
            let (g2, slept) = StdSync::wait(m, cv, g, &None);
            g = g2;
            if slept == Slept::Woken {
                return true;
            }
            if g.gave_up {
                return false;
            }
        }
    });
    // Notify each time the waiter is asleep (it sets `waiting` under the
    // lock, and releases the lock only by sleeping); a waiter whose poll
    // interval ran out first sleeps again. Twenty polls without a wake-up
    // (2 s): the notifications do not wake it.
    let (m, cv) = &*shared;
    let mut polls = 0;
    while !waiter.is_finished() {
        {
            let mut g = StdSync::lock(m);
            if g.waiting {
                g.waiting = false;
                polls += 1;
                if polls > 20 {
                    g.gave_up = true;
                } else {
                    StdSync::notify_all(cv);
                }
            }
        }
        std::thread::yield_now();
    }
    assert!(waiter.join().unwrap(), "notify_all woke no waiter");
}

#[cfg(feature = "checkers")]
mod wake_ups {
    //! A request blocked on an object that is freed meanwhile learns it is
    //! gone: the free wakes it (under shuttle a missing wake-up is a
    //! deadlock, which fails the check).
    use super::super::*;
    use crate::manager::checks::{iterations, ShuttleSync};
    use std::sync::Arc;

    fn freed_object_wakes_its_waiter(free: fn(&Server<ShuttleSync<0>>, ObjId)) {
        let s = Arc::new(Server::<ShuttleSync<0>>::new());
        let q = match s.handle(1, Request::Create(Init::Queue { maxsize: None })) {
            Response::Created(id, _) => id,
            r => panic!("{r:?}"),
        };
        let s2 = s.clone();
        let getter =
            shuttle::thread::spawn(move || s2.handle(2, Request::Op(q, Op::QGet(Wait::Forever))));
        // Free it once the getter sleeps on it.
        while <ShuttleSync<0> as ServerSync>::with(&s.table, |t| t.waiting) == 0 {
            shuttle::thread::yield_now();
        }
        free(&s, q);
        assert_eq!(
            getter.join().unwrap(),
            Response::Err(OpError::NoSuchObject(q))
        );
    }

    #[test]
    fn a_decref_that_frees_an_object_wakes_its_waiters() {
        shuttle::check_random(
            || {
                freed_object_wakes_its_waiter(|s, q| {
                    assert_eq!(s.handle(1, Request::Decref(vec![q])), Response::Ok)
                })
            },
            iterations(),
        );
    }

    #[test]
    fn a_disconnect_that_frees_an_object_wakes_its_waiters() {
        shuttle::check_random(
            || freed_object_wakes_its_waiter(|s, _| s.disconnect(1)),
            iterations(),
        );
    }
}
