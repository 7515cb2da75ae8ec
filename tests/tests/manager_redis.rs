//! The Redis manager (`Manager::redis`) against a real redis-server (the one
//! `.ci/run` starts; its address in `PROCSHARE_REDIS_URL`):
//!
//! * differential: the same random operation sequence on the proxies of a
//!   local manager and of a Redis manager gives the same answers (values
//!   and refusals alike);
//! * `kill -9` of a process holding a Redis-manager lock: the next acquirer
//!   gets the lock once the lease ran out, told that the owner died, with a
//!   larger fencing token;
//! * blocking operations across processes (queue, semaphore, event, lock);
//! * bad input: a key of the wrong type under the namespace, a value that
//!   does not decode, a server that is down: typed errors, no panic, no hang.
//!
//! Without `PROCSHARE_REDIS_URL` each test says it was skipped, or fails when
//! `PROCSHARE_REQUIRE_REDIS` is set (CI sets both).

use procshare::internals::RedisStore;
use procshare::{Event, Manager, ManagerError, OpError, Process, RedisError, Value};
use proptest::prelude::*;
use std::fmt::Debug;
use std::time::Duration;

const GENEROUS: Duration = Duration::from_secs(60);

use procshare_tests::redis_url;

use procshare_tests::RedisNs as Ns;

// ------------------------------------------------------------ differential

#[derive(Debug, Clone)]
enum Step {
    Append(i32),
    Extend(Vec<i32>),
    Insert(i64, i32),
    Pop,
    PopAt(i64),
    Remove(i32),
    Index(i32),
    Count(i32),
    Get(i64),
    Set(i64, i32),
    Delete(i64),
    ListLen,
    ListClear,
    Reverse,
    Sort,
    ToVec,
    GetRange(usize, usize),
    SetRange(usize, usize, Vec<i32>),
    DInsert(u8, i32),
    DGet(u8),
    DItem(u8),
    DRemove(u8),
    DPop(u8),
    DContains(u8),
    DLen,
    DItems,
    DKeys,
    DValues,
    DUpdate(Vec<(u8, i32)>),
    DClear,
    DSetDefault(u8, i32),
    VGet,
    VSet(i32),
    NsSet(u8, i32),
    NsGet(u8),
    NsDel(u8),
    NsNames,
    LockTry,
    LockRelease,
    LockLocked,
    RLockTry,
    RLockRelease,
    SemTry(bool),
    SemRelease(bool),
    SemValue(bool),
    EvSet,
    EvClear,
    EvIsSet,
    EvWait0,
    QTryPut(i32),
    QTryGet,
    QSize,
    BarWait0,
    Bar1Wait,
    BarReset,
    BarAbort,
    BarState,
    JqPut(i32),
    JqGet,
    JqTaskDone,
    JqUnfinished,
    JqJoin0,
    CondAcquire,
    CondRelease,
    CondWait0,
    CondNotify,
    CondNotifyAll,
    DPopItem,
    DIterKeys,
    DOr(Vec<(u8, i32)>),
    DFromKeys(Vec<u8>, i32),
    QFull,
    RLockLocked,
    Repeat(usize),
}

fn step() -> impl Strategy<Value = Step> {
    let i = -4i64..5;
    let x = 0i32..4;
    let xs = prop::collection::vec(0i32..4, 0..3);
    let k = 0u8..4;
    prop_oneof![
        x.clone().prop_map(Step::Append),
        xs.clone().prop_map(Step::Extend),
        (i.clone(), x.clone()).prop_map(|(i, x)| Step::Insert(i, x)),
        Just(Step::Pop),
        i.clone().prop_map(Step::PopAt),
        x.clone().prop_map(Step::Remove),
        x.clone().prop_map(Step::Index),
        x.clone().prop_map(Step::Count),
        i.clone().prop_map(Step::Get),
        (i.clone(), x.clone()).prop_map(|(i, x)| Step::Set(i, x)),
        i.clone().prop_map(Step::Delete),
        Just(Step::ListLen),
        Just(Step::ListClear),
        Just(Step::Reverse),
        Just(Step::Sort),
        Just(Step::ToVec),
        (0usize..5, 0usize..5).prop_map(|(a, b)| Step::GetRange(a, b)),
        (0usize..5, 0usize..5, xs.clone()).prop_map(|(a, b, v)| Step::SetRange(a, b, v)),
        (k.clone(), x.clone()).prop_map(|(k, v)| Step::DInsert(k, v)),
        k.clone().prop_map(Step::DGet),
        k.clone().prop_map(Step::DItem),
        k.clone().prop_map(Step::DRemove),
        k.clone().prop_map(Step::DPop),
        k.clone().prop_map(Step::DContains),
        Just(Step::DLen),
        Just(Step::DItems),
        Just(Step::DKeys),
        Just(Step::DValues),
        prop::collection::vec((k.clone(), x.clone()), 0..3).prop_map(Step::DUpdate),
        Just(Step::DClear),
        (k.clone(), x.clone()).prop_map(|(k, v)| Step::DSetDefault(k, v)),
        Just(Step::VGet),
        x.clone().prop_map(Step::VSet),
        (k.clone(), x.clone()).prop_map(|(k, v)| Step::NsSet(k, v)),
        k.clone().prop_map(Step::NsGet),
        k.clone().prop_map(Step::NsDel),
        Just(Step::NsNames),
        Just(Step::LockTry),
        Just(Step::LockRelease),
        Just(Step::LockLocked),
        Just(Step::RLockTry),
        Just(Step::RLockRelease),
        any::<bool>().prop_map(Step::SemTry),
        any::<bool>().prop_map(Step::SemRelease),
        any::<bool>().prop_map(Step::SemValue),
        Just(Step::EvSet),
        Just(Step::EvClear),
        Just(Step::EvIsSet),
        Just(Step::EvWait0),
        x.prop_map(Step::QTryPut),
        Just(Step::QTryGet),
        Just(Step::QSize),
        Just(Step::BarWait0),
        Just(Step::Bar1Wait),
        Just(Step::BarReset),
        Just(Step::BarAbort),
        Just(Step::BarState),
        (0i32..4).prop_map(Step::JqPut),
        Just(Step::JqGet),
        Just(Step::JqTaskDone),
        Just(Step::JqUnfinished),
        Just(Step::JqJoin0),
        Just(Step::CondAcquire),
        Just(Step::CondRelease),
        Just(Step::CondWait0),
        Just(Step::CondNotify),
        Just(Step::CondNotifyAll),
        Just(Step::DPopItem),
        Just(Step::DIterKeys),
        prop::collection::vec((0u8..4, 0i32..4), 0..3).prop_map(Step::DOr),
        (prop::collection::vec(0u8..4, 0..4), 0i32..4).prop_map(|(k, v)| Step::DFromKeys(k, v)),
        Just(Step::QFull),
        Just(Step::RLockLocked),
        (0usize..4).prop_map(Step::Repeat),
    ]
}

/// One manager's objects, each made the same way.
struct Objs {
    l: procshare::ListProxy<i32>,
    d: procshare::DictProxy<u8, i32>,
    v: procshare::ValueProxy<i32>,
    ns: procshare::NamespaceProxy,
    lock: procshare::LockProxy,
    rlock: procshare::RLockProxy,
    sem: procshare::SemaphoreProxy,
    bsem: procshare::SemaphoreProxy,
    ev: procshare::EventProxy,
    q: procshare::QueueProxy<i32>,
    bar: procshare::BarrierProxy,
    bar1: procshare::BarrierProxy,
    jq: procshare::JoinableQueueProxy<i32>,
    cond: procshare::ConditionProxy,
}

impl Objs {
    fn new(m: &Manager) -> Objs {
        Objs {
            l: m.list_from([1, 2]).unwrap(),
            d: m.dict().unwrap(),
            v: m.value(7).unwrap(),
            ns: m.namespace().unwrap(),
            lock: m.lock().unwrap(),
            rlock: m.rlock().unwrap(),
            sem: m.semaphore(2).unwrap(),
            bsem: m.bounded_semaphore(2).unwrap(),
            ev: m.event().unwrap(),
            q: m.queue(Some(2)).unwrap(),
            bar: m.barrier(2).unwrap(),
            bar1: m.barrier(1).unwrap(),
            jq: m.joinable_queue(Some(2)).unwrap(),
            cond: m.condition().unwrap(),
        }
    }

    /// The answer to `s`: a value, or the refusal (any other error is shown
    /// whole, and differs).
    fn run(&self, s: &Step) -> String {
        fn show<T: Debug>(r: Result<T, ManagerError>) -> String {
            match r {
                Ok(v) => format!("{v:?}"),
                Err(e) => match e.op_error() {
                    Some(oe) => format!("refused {oe:?}"),
                    None => format!("ERROR {e}"),
                },
            }
        }
        let name = |k: &u8| format!("a{k}");
        let sem = |b: &bool| if *b { &self.bsem } else { &self.sem };
        match s {
            Step::Append(x) => show(self.l.append(x)),
            Step::Extend(xs) => show(self.l.extend(xs)),
            Step::Insert(i, x) => show(self.l.insert(*i, x)),
            Step::Pop => show(self.l.pop()),
            Step::PopAt(i) => show(self.l.pop_at(*i)),
            Step::Remove(x) => show(self.l.remove(x)),
            Step::Index(x) => show(self.l.index(x)),
            Step::Count(x) => show(self.l.count(x)),
            Step::Get(i) => show(self.l.get(*i)),
            Step::Set(i, x) => show(self.l.set(*i, x)),
            Step::Delete(i) => show(self.l.delete(*i)),
            Step::ListLen => show(self.l.len()),
            Step::ListClear => show(self.l.clear()),
            Step::Reverse => show(self.l.reverse()),
            Step::Sort => show(self.l.sort()),
            Step::ToVec => show(self.l.to_vec()),
            Step::GetRange(a, b) => show(self.l.get_range(*a..*b)),
            Step::SetRange(a, b, v) => show(self.l.set_range(*a..*b, v)),
            Step::DInsert(k, v) => show(self.d.insert(k, v)),
            Step::DGet(k) => show(self.d.get(k)),
            Step::DItem(k) => show(self.d.item(k)),
            Step::DRemove(k) => show(self.d.remove(k)),
            Step::DPop(k) => show(self.d.pop(k)),
            Step::DContains(k) => show(self.d.contains_key(k)),
            Step::DLen => show(self.d.len()),
            Step::DItems => show(self.d.items()),
            Step::DKeys => show(self.d.keys()),
            Step::DValues => show(self.d.values()),
            Step::DUpdate(v) => show(self.d.update(v.iter().map(|(k, v)| (k, v)))),
            Step::DClear => show(self.d.clear()),
            Step::DSetDefault(k, v) => show(self.d.setdefault(k, v)),
            Step::VGet => show(self.v.get()),
            Step::VSet(x) => show(self.v.set(x)),
            Step::NsSet(k, v) => show(self.ns.set(&name(k), v)),
            Step::NsGet(k) => show(self.ns.get::<i32>(&name(k))),
            Step::NsDel(k) => show(self.ns.del(&name(k))),
            Step::NsNames => show(self.ns.names()),
            Step::LockTry => show(self.lock.try_acquire()),
            Step::LockRelease => show(self.lock.release()),
            Step::LockLocked => show(self.lock.is_locked()),
            Step::RLockTry => show(self.rlock.try_acquire()),
            Step::RLockRelease => show(self.rlock.release()),
            Step::SemTry(b) => show(sem(b).try_acquire()),
            Step::SemRelease(b) => show(sem(b).release()),
            Step::SemValue(b) => show(sem(b).value()),
            Step::EvSet => show(self.ev.set()),
            Step::EvClear => show(self.ev.clear()),
            Step::EvIsSet => show(self.ev.is_set()),
            Step::EvWait0 => show(self.ev.wait_timeout(Duration::ZERO)),
            Step::QTryPut(x) => show(self.q.try_put(x)),
            Step::QTryGet => show(self.q.try_get()),
            Step::QSize => show(self.q.qsize()),
            Step::BarWait0 => show(self.bar.wait_timeout(Duration::ZERO)),
            Step::Bar1Wait => show(self.bar1.wait()),
            Step::BarReset => show(self.bar.reset()),
            Step::BarAbort => show(self.bar.abort()),
            Step::DPopItem => show(self.d.popitem()),
            Step::DIterKeys => show(
                self.d
                    .iter()
                    .and_then(|it| it.collect::<Result<Vec<u8>, _>>()),
            ),
            Step::DOr(v) => show(self.d.or::<Vec<(u8, i32)>, _, _>(v.iter().copied())),
            Step::DFromKeys(k, v) => {
                show(self.d.fromkeys::<Vec<(u8, i32)>, _>(k.iter().copied(), v))
            }
            Step::QFull => show(self.q.is_full()),
            Step::RLockLocked => show(self.rlock.is_locked()),
            Step::Repeat(n) => show(self.l.repeat_in_place(*n)),
            Step::CondAcquire => show(self.cond.try_acquire()),
            Step::CondRelease => show(self.cond.release()),
            Step::CondWait0 => show(self.cond.wait_timeout(Duration::ZERO)),
            Step::CondNotify => show(self.cond.notify()),
            Step::CondNotifyAll => show(self.cond.notify_all()),
            Step::JqPut(x) => show(self.jq.try_put(x)),
            Step::JqGet => show(self.jq.try_get()),
            Step::JqTaskDone => show(self.jq.task_done()),
            Step::JqUnfinished => show(self.jq.unfinished_tasks()),
            Step::JqJoin0 => show(self.jq.join_timeout(Duration::ZERO)),
            Step::BarState => show(
                self.bar
                    .parties()
                    .and_then(|p| Ok((p, self.bar.n_waiting()?, self.bar.is_broken()?))),
            ),
        }
    }
}

#[test]
fn local_and_redis_managers_answer_alike() {
    procshare_tests::quiet();
    let Some(url) = redis_url("manager_redis::differential") else {
        return;
    };
    let local = Manager::start().unwrap();
    let cfg = ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(48),
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(cfg, |(steps in prop::collection::vec(step(), 1..60))| {
        let ns = Ns::new(&url, "diff");
        let redis = Manager::redis(&url, &ns.name).unwrap();
        let (a, b) = (Objs::new(&local), Objs::new(&redis));
        for (n, s) in steps.iter().enumerate() {
            let (want, got) = (a.run(s), b.run(s));
            prop_assert_eq!(&got, &want, "step {} {:?} of {:?}", n, s, steps);
        }
        // Leave nothing held in the local manager for the next case.
        while a.rlock.release().is_ok() {}
        while a.cond.release().is_ok() {}
        let _ = a.lock.release();
    });
}

// ------------------------------------------------------------- kill -9

/// A child that is killed and reaped when the test ends, even when it fails.
struct Victim(Process);

impl Drop for Victim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.join();
    }
}

#[test]
fn lock_holder_killed_next_acquirer_gets_owner_died() {
    procshare_tests::quiet();
    let Some(url) = redis_url("manager_redis::kill9") else {
        return;
    };
    let ns = Ns::new(&url, "kill9");
    let m = Manager::redis_with_lease(&url, &ns.name, Duration::from_millis(300)).unwrap();
    let lock = m.lock().unwrap();
    let rlock = m.rlock().unwrap();
    let held = Event::new().unwrap();
    let never = Event::new().unwrap();
    let (h, n, l, r) = (held.clone(), never.clone(), lock.clone(), rlock.clone());
    let mut child = Process::new(move || {
        l.acquire().unwrap();
        r.acquire().unwrap();
        r.acquire().unwrap();
        h.set();
        // Holds both (the keeper renews the leases) until killed.
        n.wait();
    });
    child.start().unwrap();
    let mut child = Victim(child);
    assert!(held.wait_timeout(GENEROUS), "the child never acquired");
    // Held by the living child, past several leases (they are renewed).
    assert!(!lock.acquire_timeout(Duration::from_millis(700)).unwrap());
    assert!(!rlock.try_acquire().unwrap());
    assert!(lock.is_locked().unwrap());
    assert_eq!(
        rlock.release().unwrap_err().op_error(),
        Some(&OpError::NotOwner)
    );
    child.0.kill().unwrap();
    child.0.join().unwrap();
    assert_eq!(child.0.exitcode(), Some(-9));

    // The leases run out (nobody renews them); the waiters wake then.
    let died = lock.acquire().unwrap_err();
    let ManagerError::OwnerDied { token } = died else {
        panic!("the next acquirer is not told the owner died: {died:?}");
    };
    assert!(token >= 2, "token {token}");
    assert_eq!(lock.fencing_token(), Some(token));
    assert!(
        lock.is_locked().unwrap(),
        "OwnerDied comes with the lock held"
    );
    lock.release().unwrap();
    assert!(matches!(
        rlock.acquire_timeout(GENEROUS),
        Err(ManagerError::OwnerDied { .. })
    ));
    rlock.release().unwrap();
    // Released cleanly: the next acquirer is not told of a death.
    assert!(lock.try_acquire().unwrap());
    lock.release().unwrap();
}

/// A process killed while it holds a semaphore's permit and waits on a
/// queue: its permit comes back once its lease runs out, and the other
/// waiters are not held up by it.
#[test]
fn semaphore_holder_killed_its_permit_comes_back() {
    procshare_tests::quiet();
    let Some(url) = redis_url("manager_redis::sem_kill9") else {
        return;
    };
    let ns = Ns::new(&url, "semkill9");
    let m = Manager::redis_with_lease(&url, &ns.name, Duration::from_millis(300)).unwrap();
    let sem = m.semaphore(1).unwrap();
    let q = m.queue::<u8>(None).unwrap();
    let held = Event::new().unwrap();
    let (s2, q2, h) = (sem.clone(), q.clone(), held.clone());
    let mut child = Process::new(move || {
        s2.acquire().unwrap();
        h.set();
        // Holds the permit and waits on the queue until killed.
        let _ = q2.get();
    });
    child.start().unwrap();
    let mut child = Victim(child);
    assert!(held.wait_timeout(GENEROUS), "the child never acquired");
    assert!(!sem.acquire_timeout(Duration::from_millis(700)).unwrap());
    child.0.kill().unwrap();
    child.0.join().unwrap();
    // The dead waiter does not hold up the queue's other getters.
    q.put(7).unwrap();
    assert_eq!(q.get_timeout(GENEROUS).unwrap(), 7);
    // Its permit comes back when its lease runs out.
    assert!(sem.acquire_timeout(GENEROUS).unwrap());
    assert_eq!(sem.value().unwrap(), 0);
    sem.release().unwrap();
    assert_eq!(sem.value().unwrap(), 1);
}

/// A holder paused (SIGSTOP) past its lease: the next acquirer gets the lock
/// with a larger fencing token, and the paused holder's late fenced write,
/// made after it is continued, is rejected.
#[test]
fn paused_holders_late_write_is_rejected_by_its_token() {
    procshare_tests::quiet();
    let Some(url) = redis_url("manager_redis::pause") else {
        return;
    };
    let ns = Ns::new(&url, "pause");
    let m = Manager::redis_with_lease(&url, &ns.name, Duration::from_millis(300)).unwrap();
    let lock = m.lock().unwrap();
    let account = m.value(0u32).unwrap();
    let held = Event::new().unwrap();
    let go = Event::new().unwrap();
    let token = Value::new(0u64).unwrap();
    let accepted = Value::new(2u8).unwrap();
    let (l, a, h, g, t, acc) = (
        lock.clone(),
        account.clone(),
        held.clone(),
        go.clone(),
        token.clone(),
        accepted.clone(),
    );
    let mut child = Process::new(move || {
        l.acquire().unwrap();
        let mine = l.fencing_token().expect("held here");
        t.set(mine);
        h.set();
        // Paused here by the parent; continued after the next holder wrote.
        g.wait();
        acc.set(a.set_fenced(mine, &1).unwrap() as u8);
    });
    child.start().unwrap();
    let mut child = Victim(child);
    assert!(held.wait_timeout(GENEROUS), "the child never acquired");
    let pid = child.0.pid().unwrap().to_string();
    let stop = std::process::Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap();
    assert!(stop.success());
    // Its keeper is stopped with it: the lease runs out.
    let e = lock.acquire().unwrap_err();
    assert!(matches!(e, ManagerError::OwnerDied { .. }), "{e:?}");
    let mine = lock.fencing_token().expect("held here");
    assert!(mine > token.get(), "token {mine} after {}", token.get());
    assert!(account.set_fenced(mine, &2).unwrap());
    go.set();
    let cont = std::process::Command::new("kill")
        .args(["-CONT", &pid])
        .status()
        .unwrap();
    assert!(cont.success());
    child.0.join().unwrap();
    assert_eq!(child.0.exitcode(), Some(0));
    assert_eq!(
        accepted.get(),
        0,
        "the paused holder's late write was accepted"
    );
    assert_eq!(account.get().unwrap(), 2);
    lock.release().unwrap();
    assert_eq!(lock.fencing_token(), None);
}

// ------------------------------------------------- blocking across processes

#[test]
fn blocking_operations_wake_across_processes() {
    procshare_tests::quiet();
    let Some(url) = redis_url("manager_redis::blocking") else {
        return;
    };
    let ns = Ns::new(&url, "blocking");
    let m = Manager::redis(&url, &ns.name).unwrap();
    let q = m.queue::<u32>(Some(1)).unwrap();
    let back = m.queue::<u32>(None).unwrap();
    let sem = m.semaphore(0).unwrap();
    let ev = m.event().unwrap();
    let bar = m.barrier(2).unwrap();
    let (q2, b2, s2, e2, bar2) = (
        q.clone(),
        back.clone(),
        sem.clone(),
        ev.clone(),
        bar.clone(),
    );
    let mut child = Process::new(move || {
        let i = bar2.wait_timeout(GENEROUS).unwrap();
        b2.put(100 + i as u32).unwrap();
        // Woken by the parent's event set, then its puts, its release.
        assert!(e2.wait().unwrap());
        for _ in 0..3 {
            let x = q2.get().unwrap();
            b2.put(x * 10).unwrap();
        }
        s2.release().unwrap();
    });
    child.start().unwrap();
    let mut child = Victim(child);
    let i = bar.wait_timeout(GENEROUS).unwrap();
    assert_eq!(back.get_timeout(GENEROUS).unwrap(), 100 + (1 - i) as u32);
    ev.set().unwrap();
    // A queue of one: each put after the first waits for the child's get.
    for x in 1..=3 {
        q.put_timeout(x, GENEROUS).unwrap();
    }
    assert_eq!(
        (0..3)
            .map(|_| back.get_timeout(GENEROUS).unwrap())
            .collect::<Vec<_>>(),
        [10, 20, 30]
    );
    assert!(sem.acquire_timeout(GENEROUS).unwrap());
    child.0.join().unwrap();
    assert_eq!(child.0.exitcode(), Some(0));
    // Timeouts: a full queue, an empty one, an unset event, no permit.
    q.put(9).unwrap();
    assert_eq!(
        q.put_timeout(9, Duration::from_millis(20))
            .unwrap_err()
            .op_error(),
        Some(&OpError::Timeout)
    );
    assert_eq!(
        back.get_timeout(Duration::from_millis(20))
            .unwrap_err()
            .op_error(),
        Some(&OpError::Timeout)
    );
    ev.clear().unwrap();
    assert!(!ev.wait_timeout(Duration::from_millis(20)).unwrap());
    assert!(!sem.acquire_timeout(Duration::from_millis(20)).unwrap());
}

/// A child waits on a Redis condition until the parent sets a flag and
/// notifies (the local manager's condition protocol, over Redis).
#[test]
fn condition_wakes_a_waiter_in_another_process() {
    procshare_tests::quiet();
    let Some(url) = redis_url("manager_redis::condition") else {
        return;
    };
    let ns = Ns::new(&url, "condition");
    let m = Manager::redis(&url, &ns.name).unwrap();
    let cond = m.condition().unwrap();
    let ready = m.value(false).unwrap();
    let waiting = m.event().unwrap();
    let (c2, r2, w2) = (cond.clone(), ready.clone(), waiting.clone());
    let mut child = Process::new(move || {
        c2.acquire().unwrap();
        w2.set().unwrap();
        c2.wait_for(|| r2.get()).unwrap();
        assert!(r2.get().unwrap());
        c2.release().unwrap();
    });
    child.start().unwrap();
    let mut child = Victim(child);
    assert!(waiting.wait_timeout(GENEROUS).unwrap());
    cond.acquire().unwrap();
    ready.set(&true).unwrap();
    cond.notify_all().unwrap();
    cond.release().unwrap();
    child.0.join().unwrap();
    assert_eq!(child.0.exitcode(), Some(0));
    assert_eq!(
        cond.notify().unwrap_err().op_error(),
        Some(&OpError::NotOwner)
    );
}

/// Two handles on the same URL and namespace (two hosts, say) find named
/// objects by name.
#[test]
fn named_objects_are_shared_between_managers() {
    procshare_tests::quiet();
    let Some(url) = redis_url("manager_redis::named") else {
        return;
    };
    let ns = Ns::new(&url, "named");
    let a = Manager::redis(&url, &ns.name).unwrap();
    let b = Manager::redis(&url, &ns.name).unwrap();
    a.list_named::<String>("jobs")
        .unwrap()
        .append("x".to_string())
        .unwrap();
    assert_eq!(
        b.list_named::<String>("jobs").unwrap().to_vec().unwrap(),
        ["x"]
    );
    let e = b.dict_named::<u8, u8>("jobs").unwrap_err();
    assert!(
        matches!(e.op_error(), Some(OpError::NameTaken { .. })),
        "{e:?}"
    );
}

// ------------------------------------------------------------- seed 000

#[path = "../../examples/seed000_redis.rs"]
mod seed000_redis;

/// The seed 000 program over Redis (`cargo run --example seed000_redis`),
/// its workers separate processes: the parent reads the ten words.
#[test]
fn seed000_over_redis_prints_ten_words() {
    procshare_tests::quiet();
    let Some(url) = redis_url("manager_redis::seed000") else {
        return;
    };
    let ns = Ns::new(&url, "seed000");
    let lines = seed000_redis::manager_list_redis(&url, &ns.name, procshare::StartMethod::Fork);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        procshare_tests::seed000::is_valid_manager_output(&lines[0]),
        "{}",
        lines[0]
    );
}

/// The same under the spawn start method: the proxies travel to a fresh
/// program, which finds the Redis manager by the proxy's label.
#[test]
fn seed000_over_redis_with_spawned_workers() {
    procshare_tests::quiet();
    let Some(url) = redis_url("manager_redis::seed000_spawn") else {
        return;
    };
    let ns = Ns::new(&url, "seed000spawn");
    let lines = seed000_redis::manager_list_redis(&url, &ns.name, procshare::StartMethod::Spawn);
    assert!(
        procshare_tests::seed000::is_valid_manager_output(&lines[0]),
        "{}",
        lines[0]
    );
}

// ------------------------------------------------------------- bad input

#[test]
fn typed_errors_for_bad_keys_bad_values_and_a_server_down() {
    procshare_tests::quiet();
    // A server that is down: refused at once, a typed error.
    let e = Manager::redis("redis://127.0.0.1:1/", "x").unwrap_err();
    assert!(
        matches!(e, ManagerError::Redis(RedisError::Down { .. })),
        "{e:?}"
    );
    assert!(Manager::redis("not a url", "x").is_err());
    let Some(url) = redis_url("manager_redis::bad_input") else {
        return;
    };
    assert!(Manager::redis(&url, "bad*namespace").is_err());
    let ns = Ns::new(&url, "bad");
    let m = Manager::redis(&url, &ns.name).unwrap();
    let store = RedisStore::open(&url, Duration::from_secs(5)).unwrap();
    let l = m.list::<u32>().unwrap();
    l.append(1).unwrap();
    let d = m.dict::<u8, u8>().unwrap();
    let v = m.value(1u64).unwrap();
    let q = m.queue::<u8>(None).unwrap();
    // Which keys are whose: the one list key, the dict's hash, and so on.
    let keys = match store
        .command(&[b"KEYS", format!("{}:*", ns.name).as_bytes()])
        .unwrap()
    {
        procshare_model::redis::Resp::Array(v) => v,
        r => panic!("{r:?}"),
    };
    let key = |suffix: &str, kind: &str| {
        keys.iter()
            .filter_map(|k| match k {
                procshare_model::redis::Resp::Bulk(b) => {
                    Some(String::from_utf8(b.clone()).unwrap())
                }
                _ => None,
            })
            .find(|k| k.contains(&format!(":{kind}:")) && k.ends_with(suffix))
            .unwrap_or_else(|| panic!("no {kind} key ending {suffix:?} in {keys:?}"))
    };
    let list_key = key("", "list");
    let list_key = list_key.trim_end_matches(":ver").to_string();
    let value_key = key("", "value");
    // Another program wrote a string where the list is.
    store.command(&[b"DEL", list_key.as_bytes()]).unwrap();
    store
        .command(&[b"SET", list_key.as_bytes(), b"not a list"])
        .unwrap();
    let is_wrong_type = |e: ManagerError| match e {
        ManagerError::Redis(RedisError::Script { source, .. }) => {
            matches!(source, procshare_model::redis::ScriptError::WrongType(_))
        }
        _ => false,
    };
    assert!(is_wrong_type(l.append(2).unwrap_err()));
    assert!(is_wrong_type(l.to_vec().unwrap_err()));
    assert!(is_wrong_type(l.len().unwrap_err()));
    // A value that does not decode as the proxy's type.
    store.command(&[b"SET", value_key.as_bytes(), b""]).unwrap();
    assert!(matches!(
        v.get().unwrap_err(),
        ManagerError::WrongType { .. }
    ));
    // The namespace flushed under a live value: a clear error, not a panic.
    Manager::redis_clear(&url, &ns.name).unwrap();
    let e = v.get().unwrap_err();
    assert!(
        matches!(
            &e,
            ManagerError::Redis(RedisError::Script {
                source: procshare_model::redis::ScriptError::Missing(_),
                ..
            })
        ),
        "{e:?}"
    );
    // What still works after the flush works on empty objects.
    assert_eq!(d.len().unwrap(), 0);
    assert_eq!(q.try_get().unwrap_err().op_error(), Some(&OpError::Timeout));
    // A kind the backend does not have is refused, not a hang.
    let e = m.array([1u8]).unwrap_err();
    assert!(
        matches!(e.op_error(), Some(OpError::BadRequest(_))),
        "{e:?}"
    );
    let _ = Value::new(0u8);
}

/// The Redis queue delivers at most once (as CPython's queue): two getters
/// share a queue of `N` items; one is killed (`kill -9`) mid-stream. No item
/// reaches two getters, and every item but the one the killed getter may have
/// had in hand (taken, not yet recorded) reaches the survivor.
#[test]
fn queue_delivers_at_most_once_when_a_getter_is_killed() {
    procshare_tests::quiet();
    let Some(url) = redis_url("manager_redis::at_most_once") else {
        return;
    };
    const N: usize = 400;
    let ns = Ns::new(&url, "at_most_once");
    let m = Manager::redis(&url, &ns.name).unwrap();
    let q = m.queue::<Option<u32>>(None).unwrap();
    for i in 0..N as u32 {
        q.put(Some(i)).unwrap();
    }
    // Each getter marks what it got in its own array; the victim also
    // releases `taken` once per item.
    let (seen_victim, seen_survivor) = (
        procshare::Array::<u8>::zeroed(N).unwrap(),
        procshare::Array::<u8>::zeroed(N).unwrap(),
    );
    let taken = procshare::Semaphore::new(0).unwrap();
    let getter = |seen: procshare::Array<u8>, taken: Option<procshare::Semaphore>| {
        let q = q.clone();
        Process::new(move || {
            while let Some(i) = q.get().unwrap() {
                let i = i as usize;
                seen.set(i, seen.get(i).unwrap() + 1).unwrap();
                if let Some(t) = &taken {
                    t.release().unwrap();
                }
            }
        })
    };
    let mut victim = Victim(getter(seen_victim.clone(), Some(taken.clone())));
    victim.0.start().unwrap();
    // The victim is well into the stream before the survivor starts.
    for _ in 0..N / 8 {
        taken.acquire();
    }
    let mut survivor = getter(seen_survivor.clone(), None);
    survivor.start().unwrap();
    for _ in 0..N / 8 {
        taken.acquire();
    }
    victim.0.kill().unwrap();
    victim.0.join().unwrap();
    q.put(None).unwrap();
    survivor.join().unwrap();
    assert_eq!(survivor.exitcode(), Some(0));
    let (v, s) = (seen_victim.to_vec(), seen_survivor.to_vec());
    let twice: Vec<usize> = (0..N).filter(|&i| v[i] + s[i] > 1).collect();
    assert!(
        twice.is_empty(),
        "items delivered more than once: {twice:?}"
    );
    let lost: Vec<usize> = (0..N).filter(|&i| v[i] + s[i] == 0).collect();
    assert!(
        lost.len() <= 1,
        "items lost beyond the one in hand: {lost:?}"
    );
    assert!(
        v.iter().map(|&x| x as usize).sum::<usize>() >= N / 4,
        "the victim was killed mid-stream"
    );
}
