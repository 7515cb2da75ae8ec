//! The Redis backend's store against a real redis-server (the one `.ci/run`
//! starts; its address in `PROCSHARE_REDIS_URL`):
//!
//! * differential: random sequences of protocol steps give the same replies
//!   (and the same typed errors, after keys are corrupted) from the real
//!   server running each step's Lua text and from the model keyspace running
//!   its Rust transcription;
//!   The steps include the manager's objects' (list, dict, value, namespace
//!   operations, the recursive lock, the manager queue, `lock_locked`,
//!   `sem_value`).
//! * typed errors: a server that is down, a key of the wrong type, a value
//!   that is not a number, a key that is missing;
//! * `kill -9` of a lease-lock holder: the next acquirer gets the lock once
//!   the lease ran out, told that the owner died, with a larger token.
//!
//! Without `PROCSHARE_REDIS_URL` each test says it was skipped, or fails when
//! `PROCSHARE_REQUIRE_REDIS` is set (CI sets both).

use procshare::internals::{RedisLock, RedisStore};
use procshare::{Event, Process, RedisError, Value};
use procshare_model::manager::{Kind, Op as MOp};
use procshare_model::redis::barrier::Barrier;
use procshare_model::redis::condition::Condition;
use procshare_model::redis::event::Event as RedisEvent;
use procshare_model::redis::lock::{fenced_set_call, LeaseLock};
use procshare_model::redis::objects;
use procshare_model::redis::queue::ManagerQueue;
use procshare_model::redis::queue::ReliableQueue;
use procshare_model::redis::rlock::RLeaseLock;
use procshare_model::redis::semaphore::Semaphore;
use procshare_model::redis::{Call, Db, Resp, ScriptError, Store};
use proptest::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(5);
const GENEROUS: Duration = Duration::from_secs(60);

use procshare_tests::redis_url;

/// A namespace of keys no other test (or run) uses.
fn namespace(test: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "procshare-test:{test}:{}:{nanos}:{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

// ------------------------------------------------------------ differential

const LEASE: u64 = 60_000;

#[derive(Debug, Clone)]
enum Op {
    LockAcquire,
    LockRenew(u64),
    LockRelease(u64),
    Fenced(u64, u8),
    SemCreate(u64),
    SemAcquire,
    SemRenew(u64),
    SemRelease(u64),
    SemReleaseNew(u64),
    EventSet,
    EventClear,
    EventIsSet,
    BarArrive,
    BarCheck(i64),
    BarAbort(i64),
    BarReset,
    Put(u8),
    Take(u8),
    Ack(u8, u8),
    QRenew(u8),
    /// The lock's lease runs out (its key is deleted, as expiry does).
    LockExpire,
    /// Acquire with a lease of 0 ms: reaped by the next step that looks.
    SemAcquireShort,
    /// Take with a lease of 0 ms: redelivered by the next take.
    TakeShort(u8),
    /// Overwrite one of the objects' keys with a list (wrong type) or a
    /// string that is not a number.
    Corrupt(u8, bool),
    /// The recursive lock, by holder 0 or 1.
    RLockAcquire(u8),
    RLockRelease(u8),
    LockLocked,
    SemValue,
    /// The manager queue (its maxsize set to 2 by `MqMax`).
    MqPut(u8),
    MqGet,
    MqMax,
    BarBreak,
    BarState,
    JqTaskDone,
    JqUnfinished,
    /// The condition's steps by holder 0 or 1 (the lock is the recursive
    /// lock's: `RLockAcquire` takes it), with a ticket 1..4.
    CondEnter(u8),
    CondTake(u8, u64),
    CondReacquire(u8, u64),
    CondNotify(u8, u64),
    /// A manager operation on a data object (list, dict, value, namespace).
    Data(Kind, MOp),
}

/// A manager operation on a data object of one of the four kinds.
fn data_op() -> impl Strategy<Value = Op> {
    let b = || prop::collection::vec(0u8..3, 1..2);
    let bs = || prop::collection::vec(b(), 0..3);
    let i = || -3i64..4;
    let u = || 0u64..4;
    let name = || prop_oneof![Just("a".to_string()), Just("b".to_string())];
    let list = prop_oneof![
        b().prop_map(MOp::Append),
        bs().prop_map(MOp::Extend),
        (i(), b()).prop_map(|(i, x)| MOp::InsertAt(i, x)),
        Just(MOp::Pop(None)),
        i().prop_map(MOp::PopAt),
        b().prop_map(MOp::Remove),
        b().prop_map(MOp::Index),
        b().prop_map(MOp::Count),
        i().prop_map(MOp::GetAt),
        (i(), b()).prop_map(|(i, x)| MOp::SetAt(i, x)),
        Just(MOp::Reverse),
        Just(MOp::Snapshot),
        (u(), u()).prop_map(|(a, z)| MOp::GetRange(a, z)),
        (u(), u(), bs()).prop_map(|(a, z, v)| MOp::SetRange(a, z, v)),
        (0u64..3, bs()).prop_map(|(v, xs)| MOp::ReplaceIf(v, xs)),
        Just(MOp::Len),
        Just(MOp::Clear),
        (0u64..4).prop_map(MOp::ListRepeat),
        Just(MOp::ListRepeat(u64::MAX)),
    ]
    .prop_map(|o| Op::Data(Kind::List, o));
    let dict = prop_oneof![
        b().prop_map(MOp::DictGet),
        (b(), b()).prop_map(|(k, v)| MOp::DictInsert(k, v)),
        b().prop_map(MOp::DictRemove),
        b().prop_map(MOp::DictPop),
        b().prop_map(MOp::DictContains),
        Just(MOp::DictItems),
        prop::collection::vec((b(), b()), 0..3).prop_map(MOp::DictUpdate),
        (b(), b()).prop_map(|(k, v)| MOp::DictSetDefault(k, v)),
        Just(MOp::Len),
        Just(MOp::Clear),
        Just(MOp::DictPopItem),
        (prop::option::of(0u64..4), 0u64..4).prop_map(|(a, n)| MOp::DictKeyAfter(a, n)),
    ]
    .prop_map(|o| Op::Data(Kind::Dict, o));
    let value = prop_oneof![Just(MOp::ValueGet), b().prop_map(MOp::ValueSet)]
        .prop_map(|o| Op::Data(Kind::Value, o));
    let ns = prop_oneof![
        name().prop_map(MOp::NsGet),
        (name(), b()).prop_map(|(n, v)| MOp::NsSet(n, v)),
        name().prop_map(MOp::NsDel),
        Just(MOp::NsItems),
    ]
    .prop_map(|o| Op::Data(Kind::Namespace, o));
    prop_oneof![3 => list, 2 => dict, 1 => value, 1 => ns]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::LockAcquire),
        1 => (0..4u64).prop_map(Op::LockRenew),
        2 => (0..4u64).prop_map(Op::LockRelease),
        2 => (0..4u64, any::<u8>()).prop_map(|(t, v)| Op::Fenced(t, v)),
        1 => (0..3u64).prop_map(Op::SemCreate),
        3 => Just(Op::SemAcquire),
        1 => (0..5u64).prop_map(Op::SemRenew),
        2 => (0..5u64).prop_map(Op::SemRelease),
        1 => (0..4u64).prop_map(Op::SemReleaseNew),
        1 => Just(Op::EventSet),
        1 => Just(Op::EventClear),
        1 => Just(Op::EventIsSet),
        3 => Just(Op::BarArrive),
        1 => (0..3i64).prop_map(Op::BarCheck),
        1 => (0..3i64).prop_map(Op::BarAbort),
        1 => Just(Op::BarReset),
        3 => (0..4u8).prop_map(Op::Put),
        3 => (0..2u8).prop_map(Op::Take),
        2 => (0..2u8, 0..4u8).prop_map(|(c, i)| Op::Ack(c, i)),
        1 => (0..2u8).prop_map(Op::QRenew),
        1 => Just(Op::LockExpire),
        1 => Just(Op::SemAcquireShort),
        1 => (0..2u8).prop_map(Op::TakeShort),
        1 => (0..9u8, any::<bool>()).prop_map(|(k, l)| Op::Corrupt(k, l)),
        2 => (0..2u8).prop_map(Op::RLockAcquire),
        2 => (0..2u8).prop_map(Op::RLockRelease),
        1 => Just(Op::LockLocked),
        1 => Just(Op::SemValue),
        2 => (0..4u8).prop_map(Op::MqPut),
        2 => Just(Op::MqGet),
        1 => Just(Op::MqMax),
        1 => Just(Op::BarBreak),
        1 => Just(Op::BarState),
        2 => Just(Op::JqTaskDone),
        1 => Just(Op::JqUnfinished),
        2 => (0..2u8).prop_map(Op::CondEnter),
        2 => (0..2u8, 1..4u64).prop_map(|(h, t)| Op::CondTake(h, t)),
        1 => (0..2u8, 1..4u64).prop_map(|(h, t)| Op::CondReacquire(h, t)),
        2 => (0..2u8, 0..3u64).prop_map(|(h, n)| Op::CondNotify(h, n)),
        12 => data_op(),
    ]
}

struct Objects {
    lock: LeaseLock,
    resource: String,
    sem: Semaphore,
    sem_short: Semaphore,
    event: RedisEvent,
    bar: Barrier,
    queues: [ReliableQueue; 2],
    queues_short: [ReliableQueue; 2],
    corruptible: [String; 9],
    rlocks: [RLeaseLock; 2],
    conds: [Condition; 2],
    mq: ManagerQueue,
    ns: String,
}

impl Objects {
    fn new(ns: &str) -> Objects {
        Objects {
            lock: LeaseLock::new(&format!("{ns}:lock:l"), LEASE),
            resource: format!("{ns}:resource"),
            sem: Semaphore::new(&format!("{ns}:sem:s"), LEASE),
            sem_short: Semaphore::new(&format!("{ns}:sem:s"), 0),
            event: RedisEvent::new(&format!("{ns}:event:e")),
            bar: Barrier::new(&format!("{ns}:barrier:b"), 3),
            queues: [
                ReliableQueue::new(&format!("{ns}:queue:q"), "c0", LEASE),
                ReliableQueue::new(&format!("{ns}:queue:q"), "c1", LEASE),
            ],
            queues_short: [
                ReliableQueue::new(&format!("{ns}:queue:q"), "c0", 0),
                ReliableQueue::new(&format!("{ns}:queue:q"), "c1", 0),
            ],
            corruptible: [
                format!("{ns}:lock:l:lease"),
                format!("{ns}:lock:l:token"),
                format!("{ns}:sem:s:value"),
                format!("{ns}:barrier:b:gen"),
                format!("{ns}:queue:q:items"),
                format!("{ns}:resource:fence"),
                format!("{ns}:list:33"),
                format!("{ns}:dict:34:h"),
                format!("{ns}:value:35"),
            ],
            rlocks: [
                RLeaseLock::new(&format!("{ns}:rlock:r"), "h0", LEASE),
                RLeaseLock::new(&format!("{ns}:rlock:r"), "h1", LEASE),
            ],
            mq: ManagerQueue::new(&format!("{ns}:mq:q")),
            conds: [
                Condition::new(&format!("{ns}:rlock:r"), "h0", LEASE),
                Condition::new(&format!("{ns}:rlock:r"), "h1", LEASE),
            ],
            ns: ns.to_string(),
        }
    }

    fn call(&self, op: &Op) -> Option<Call> {
        let item = |i: u8| vec![b'i', i];
        Some(match op {
            Op::LockAcquire => self.lock.acquire_call(),
            Op::LockRenew(t) => self.lock.renew_call(*t),
            Op::LockRelease(t) => self.lock.release_call(*t),
            Op::Fenced(t, v) => fenced_set_call(&self.resource, *t, &[*v]),
            Op::SemCreate(v) => self.sem.create_call(*v),
            Op::SemAcquire => self.sem.acquire_call(),
            Op::SemRenew(t) => self.sem.renew_call(*t),
            Op::SemRelease(t) => self.sem.release_call(*t),
            Op::SemReleaseNew(b) => self.sem.release_new_call(*b),
            Op::EventSet => self.event.set_call(),
            Op::EventClear => self.event.clear_call(),
            Op::EventIsSet => self.event.is_set_call(),
            Op::BarArrive => self.bar.arrive_call(),
            Op::BarCheck(g) => self.bar.check_call(*g),
            Op::BarAbort(g) => self.bar.abort_call(*g),
            Op::BarReset => self.bar.reset_call(),
            Op::Put(i) => self.queues[0].put_call(&item(*i)),
            Op::Take(c) => self.queues[*c as usize].take_call(),
            Op::Ack(c, i) => self.queues[*c as usize].ack_call(&item(*i)),
            Op::QRenew(c) => self.queues[*c as usize].renew_call(),
            Op::SemAcquireShort => self.sem_short.acquire_call(),
            Op::TakeShort(c) => self.queues_short[*c as usize].take_call(),
            Op::RLockAcquire(h) => self.rlocks[*h as usize].acquire_call(),
            Op::RLockRelease(h) => self.rlocks[*h as usize].release_call(),
            Op::LockLocked => self.lock.locked_call(),
            Op::BarBreak => self.bar.break_call(),
            Op::BarState => self.bar.state_call(),
            Op::JqTaskDone => self.mq.task_done_call(),
            Op::CondEnter(h) => self.conds[*h as usize].enter_call(),
            Op::CondTake(h, t) => self.conds[*h as usize].take_call(1, *t),
            Op::CondReacquire(h, t) => self.conds[*h as usize].reacquire_call(2, *t),
            Op::CondNotify(h, n) => self.conds[*h as usize].notify_call(*n),
            Op::JqUnfinished => self.mq.unfinished_call(),
            Op::SemValue => self.sem.value_call(),
            Op::MqPut(i) => self.mq.put_call(&item(*i)),
            Op::MqGet => self.mq.get_call(),
            Op::MqMax => Call::new(
                &objects::VALUE_SET,
                vec![self.mq.max_key().to_string()],
                vec![b"2".to_vec()],
            ),
            Op::Data(kind, op) => {
                let id = match kind {
                    Kind::List => 33,
                    Kind::Dict => 34,
                    Kind::Value => 35,
                    _ => 36,
                };
                let p = format!("{}:{}:{id}", self.ns, format!("{kind:?}").to_lowercase());
                return objects::data_call(*kind, &p, op);
            }
            Op::Corrupt(..) | Op::LockExpire => return None,
        })
    }
}

/// Replies that carry a time left (`{0, ms}` of an acquire or take) are
/// compared by shape: the real server's clock moved while the model's did not.
fn normalize(script: &str, r: Resp) -> Resp {
    match (script, r) {
        (
            "lock_acquire" | "sem_acquire" | "queue_take" | "rlock_acquire" | "cond_take"
            | "cond_reacquire",
            Resp::Array(v),
        ) if v.len() == 2 && v[0] == Resp::Int(0) => {
            let t = match v[1] {
                Resp::Int(ms) if (0..=LEASE as i64).contains(&ms) => {
                    Resp::Bulk(b"<time left>".to_vec())
                }
                ref other => other.clone(),
            };
            Resp::Array(vec![Resp::Int(0), t])
        }
        (_, r) => r,
    }
}

/// The kind of a step's refusal (the real server does not name the key of a
/// `WRONGTYPE`).
fn kind(e: &ScriptError) -> &'static str {
    match e {
        ScriptError::WrongType(_) => "wrong type",
        ScriptError::NotInteger(_) => "not an integer",
        ScriptError::Missing(_) => "missing",
        ScriptError::Corrupt(_) => "corrupt",
    }
}

fn differential(url: &str, ops: &[Op]) -> Result<(), TestCaseError> {
    let ns = namespace("diff");
    let store = RedisStore::open(url, TIMEOUT).expect("connect");
    let _cleanup = Cleanup(&store, ns.clone());
    let objs = Objects::new(&ns);
    let mut db = Db::new();
    for (n, op) in ops.iter().enumerate() {
        if let Op::LockExpire = op {
            let key = &objs.corruptible[0];
            store.command(&[b"DEL", key.as_bytes()]).unwrap();
            db.del(key);
            continue;
        }
        if let Op::Corrupt(k, as_list) = op {
            let key = &objs.corruptible[*k as usize];
            store.command(&[b"DEL", key.as_bytes()]).unwrap();
            db.del(key);
            if *as_list {
                store.command(&[b"RPUSH", key.as_bytes(), b"x"]).unwrap();
                db.rpush(key, b"x").unwrap();
            } else {
                store.command(&[b"SET", key.as_bytes(), b"nan"]).unwrap();
                db.set(key, b"nan", None, false);
            }
            continue;
        }
        let call = objs.call(op).expect("not a corruption");
        let name = call.script.name;
        let model = call.run_on(&mut db);
        let real = match store.eval(&call) {
            Ok(r) => Ok(r),
            Err(RedisError::Script { source, .. }) => Err(source),
            Err(e) => return Err(TestCaseError::fail(format!("step {n} {op:?}: {e}"))),
        };
        match (model, real) {
            (Ok(m), Ok(r)) => prop_assert_eq!(
                normalize(name, m),
                normalize(name, r),
                "step {} {:?} ({}) of {:?}",
                n,
                op,
                name,
                ops
            ),
            (Err(m), Err(r)) => {
                prop_assert_eq!(kind(&m), kind(&r), "step {} {:?} of {:?}", n, op, ops)
            }
            (m, r) => prop_assert!(
                false,
                "step {n} {op:?} ({name}): model {m:?}, redis {r:?}; ops {ops:?}"
            ),
        }
    }
    Ok(())
}

/// Deletes a namespace's keys when dropped (a failing case leaves nothing behind).
struct Cleanup<'a>(&'a RedisStore, String);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if let Ok(Resp::Array(keys)) = self
            .0
            .command(&[b"KEYS", format!("{}:*", self.1).as_bytes()])
        {
            for k in keys {
                if let Resp::Bulk(k) = k {
                    let _ = self.0.command(&[b"DEL", &k]);
                }
            }
        }
    }
}

#[test]
fn lua_steps_equal_their_model_transcriptions() {
    let Some(url) = redis_url("redis_store::lua_steps_equal_their_model_transcriptions") else {
        return;
    };
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(64);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(cases));
    let ops = prop::collection::vec(op(), 1..40);
    if let Err(e) = runner.run(&ops, |ops| differential(&url, &ops)) {
        panic!("{e}");
    }
}

// ---------------------------------------------------------- typed errors

#[test]
fn typed_errors_for_a_server_down_and_bad_keys() {
    // A port nobody listens on: Down, at once.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let e = RedisStore::open(&format!("redis://127.0.0.1:{port}/"), TIMEOUT).unwrap_err();
    assert!(matches!(e, RedisError::Down { .. }), "{e}");
    assert!(e.to_string().contains("unreachable"), "{e}");
    let e: procshare::Error = e.into();
    assert!(e.to_string().contains("unreachable"));

    let Some(url) = redis_url("redis_store::typed_errors") else {
        return;
    };
    let ns = namespace("errors");
    let store = RedisStore::open(&url, TIMEOUT).unwrap();
    let _cleanup = Cleanup(&store, ns.clone());
    let sem = Semaphore::new(&format!("{ns}:sem"), LEASE);
    // Never made (or lost by a flush or restart): Missing.
    let e = sem.acquire(&store, Some(0)).unwrap_err();
    assert!(
        matches!(&e, RedisError::Script { source: ScriptError::Missing(k), .. } if k.ends_with(":sem:value")),
        "{e}"
    );
    // A value that is not a number.
    store
        .command(&[b"SET", format!("{ns}:sem:value").as_bytes(), b"many"])
        .unwrap();
    let e = sem.acquire(&store, Some(0)).unwrap_err();
    assert!(
        matches!(
            &e,
            RedisError::Script {
                source: ScriptError::NotInteger(_),
                ..
            }
        ),
        "{e}"
    );
    // A key of the wrong type.
    let q = ReliableQueue::new(&format!("{ns}:q"), "c", LEASE);
    store
        .command(&[b"SET", format!("{ns}:q:items").as_bytes(), b"x"])
        .unwrap();
    let e = q.put(&store, b"item").unwrap_err();
    assert!(
        matches!(
            &e,
            RedisError::Script {
                source: ScriptError::WrongType(_),
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("wrong type"), "{e}");
    // A lease without an expiry.
    let l = LeaseLock::new(&format!("{ns}:lock"), LEASE);
    store
        .command(&[b"SET", format!("{ns}:lock:lease").as_bytes(), b"7"])
        .unwrap();
    let e = l.acquire(&store, Some(0)).unwrap_err();
    assert!(
        matches!(
            &e,
            RedisError::Script {
                source: ScriptError::Corrupt(_),
                ..
            }
        ),
        "{e}"
    );
    for k in ["sem:value", "q:items", "lock:lease"] {
        store
            .command(&[b"DEL", format!("{ns}:{k}").as_bytes()])
            .unwrap();
    }
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
fn lease_lock_holder_killed_next_acquirer_gets_owner_died_and_a_larger_token() {
    procshare_tests::quiet();
    let Some(url) = redis_url("redis_store::kill9") else {
        return;
    };
    let ns = namespace("kill9");
    let store = RedisStore::open(&url, TIMEOUT).unwrap();
    let _cleanup = Cleanup(&store, ns.clone());
    let prefix = format!("{ns}:lock");
    let lease = Duration::from_millis(300);
    let held = Event::new().unwrap();
    let never = Event::new().unwrap();
    let token = Value::new(0u64).unwrap();
    let (h, n, t, u, p) = (
        held.clone(),
        never.clone(),
        token.clone(),
        url.clone(),
        prefix.clone(),
    );
    let mut child = Process::new(move || {
        let l = RedisLock::new(&u, &p, lease).unwrap();
        let g = l.acquire(Some(GENEROUS)).unwrap().expect("free lock");
        t.set(g.token());
        h.set();
        // Holds the lock (its renewer keeps the lease) until killed.
        n.wait();
        drop(g);
    });
    child.start().unwrap();
    let mut child = Victim(child);
    assert!(
        held.wait_timeout(GENEROUS),
        "the child never acquired the lock"
    );
    let first = token.get();
    assert!(first > 0);

    let l = RedisLock::new(&url, &prefix, lease).unwrap();
    // Held by the living child.
    assert!(l.acquire(Some(Duration::ZERO)).unwrap().is_none());
    child.0.kill().unwrap();
    child.0.join().unwrap();
    assert_eq!(child.0.exitcode(), Some(-9));

    // Its lease runs out (nobody renews it); the waiter wakes then.
    let g = l
        .acquire(Some(GENEROUS))
        .unwrap()
        .expect("the dead holder's lease ran out");
    assert!(g.owner_died(), "the next acquirer is told the owner died");
    assert!(g.token() > first, "token {} after {first}", g.token());
    assert!(g.release().unwrap());
    // Released cleanly: the next acquirer is not told of a death.
    let g2 = l.acquire(Some(Duration::ZERO)).unwrap().unwrap();
    assert!(!g2.owner_died() && g2.token() > first + 1);
    assert!(g2.release().unwrap());
    let store = RedisStore::open(&url, TIMEOUT).unwrap();
    for k in ["lease", "token", "owner"] {
        store
            .command(&[b"DEL", format!("{prefix}:{k}").as_bytes()])
            .unwrap();
    }
}

// ------------------------------------------------- waits end by notification

/// A subscribed waiter is woken by the release's notification (a wait ends
/// with `true` only when a message arrived; without one it would end with
/// `false` after its timeout), and then finds the lock free.
#[test]
fn a_release_notifies_a_subscribed_waiter() {
    let Some(url) = redis_url("redis_store::release_notifies_waiter") else {
        return;
    };
    let ns = namespace("wake");
    let store = RedisStore::open(&url, TIMEOUT).unwrap();
    let _cleanup = Cleanup(&store, ns.clone());
    let holder = RedisStore::open(&url, TIMEOUT).unwrap();
    let l = LeaseLock::new(&format!("{ns}:lock"), 60_000);
    let held = l.acquire(&holder, Some(0)).unwrap().unwrap();
    let (woken, after) = store
        .subscribed(l.channel(), |sub| {
            assert_eq!(l.acquire(&store, Some(0))?, None, "held");
            assert!(l.release(&holder, held.token)?);
            let woken = sub.wait(Some(60_000))?;
            Ok((woken, l.acquire(&store, Some(0))?))
        })
        .unwrap();
    assert!(woken, "the release's notification did not arrive");
    let after = after.expect("free after the release");
    assert!(!after.owner_died && after.token > held.token);
}

// ------------------------------------------------ queue: kill -9 of a consumer

/// A consumer killed with an item taken and not acked: the item is delivered
/// again (at least once) after the consumer's lease, to the next taker, and
/// the queue's order is kept (the redelivered item comes first).
#[test]
fn a_killed_consumers_item_is_delivered_again() {
    procshare_tests::quiet();
    let Some(url) = redis_url("redis_store::queue_kill9") else {
        return;
    };
    let ns = namespace("qkill9");
    let store = RedisStore::open(&url, TIMEOUT).unwrap();
    let _cleanup = Cleanup(&store, ns.clone());
    let prefix = format!("{ns}:queue");
    let producer = ReliableQueue::new(&prefix, "producer", 300);
    for item in [b"a", b"b"] {
        producer.put(&store, item).unwrap();
    }
    let took = Event::new().unwrap();
    let never = Event::new().unwrap();
    let (t, n, u, p) = (took.clone(), never.clone(), url.clone(), prefix.clone());
    let mut child = Process::new(move || {
        let s = RedisStore::open(&u, TIMEOUT).unwrap();
        let q = ReliableQueue::new(&p, "victim", 300);
        let item = q.take(&s, Some(60_000)).unwrap().expect("an item");
        assert_eq!(item.item, b"a");
        t.set();
        n.wait();
    });
    child.start().unwrap();
    let mut child = Victim(child);
    assert!(took.wait_timeout(GENEROUS), "the child never took an item");
    child.0.kill().unwrap();
    child.0.join().unwrap();

    // The survivor takes both: b at once, and a when the victim's lease has
    // run out (a take sleeps until then), put back by the take that found it
    // ended (which one depends on how fast this runs).
    let q = ReliableQueue::new(&prefix, "survivor", 60_000);
    let mut items = vec![];
    let mut redelivered = 0;
    for _ in 0..2 {
        let t = q.take(&store, Some(60_000)).unwrap().expect("an item");
        assert!(q.ack(&store, &t.item).unwrap());
        redelivered += t.redelivered;
        items.push(t.item);
    }
    items.sort();
    assert_eq!(items, [b"a".to_vec(), b"b".to_vec()]);
    assert_eq!(redelivered, 1, "a was put back once");
    assert_eq!(q.take(&store, Some(0)).unwrap(), None);
}
