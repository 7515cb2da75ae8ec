//! Manager proxies as arguments of children started by spawn and forkserver
//! (CPython pickles a proxy for a spawned child as its manager's address, the
//! auth key by inheritance and the object's id; the child reconnects).
//!
//! * every proxy type works in such a child: what the child does is seen by
//!   the parent through its own proxy (and the child blocks on what the parent
//!   holds), so the child's proxy refers to the very same object;
//! * the child's proxy holds a reference of its own: the object outlives the
//!   parent's last proxy while the child runs, and is freed once the child
//!   exits — normally, or killed with `kill -9`;
//! * a context carries its start method to the manager's server.
//!
//! Whether an object still exists is observed as in `manager_refcount.rs`:
//! the proxy's serialized token is deserialized again in the parent, which
//! takes a reference (and gives it back at once) and fails once the object
//! is gone. Ordering is by the library's own events, never by sleeping.

use procshare::internals::wire;
use procshare::{
    BarrierProxy, ConditionProxy, DictProxy, Event, EventProxy, ListProxy, LockProxy, Manager,
    NamespaceProxy, Process, QueueProxy, RLockProxy, SemaphoreProxy, StartMethod, ValueProxy,
};
use procshare_tests::quiet;
use serde::de::DeserializeOwned;
use serde::Serialize;

const METHODS: [StartMethod; 2] = [StartMethod::Spawn, StartMethod::ForkServer];

/// A started child, killed if the test fails before joining it (a child
/// waiting for an event the failed test never sets would outlive it).
struct Child(Process);

impl Drop for Child {
    fn drop(&mut self) {
        if self.0.exitcode().is_none() {
            let _ = self.0.kill();
            let _ = self.0.join();
        }
    }
}

/// The proxies a child gets, one of each type.
type All = (
    ListProxy<String>,
    DictProxy<String, u32>,
    ValueProxy<i64>,
    NamespaceProxy,
    LockProxy,
    RLockProxy,
    SemaphoreProxy,
    EventProxy,
    ConditionProxy,
    BarrierProxy,
    QueueProxy<String>,
);

/// The child: an operation on each proxy, each seen by the parent.
fn use_each(all: All) {
    let (list, dict, value, ns, lock, rlock, sem, event, cond, barrier, queue) = all;
    list.append("from the child".to_string()).unwrap();
    dict.insert("child".to_string(), 7).unwrap();
    value.set(&(value.get().unwrap() + 1)).unwrap();
    ns.set("x", &"child".to_string()).unwrap();
    // The parent holds both locks: the same objects, so they are taken.
    let locked = (lock.try_acquire().unwrap(), rlock.try_acquire().unwrap());
    list.append(format!("locks taken: {locked:?}")).unwrap();
    sem.release().unwrap();
    // The parent waits on the condition (which released its lock).
    cond.acquire().unwrap();
    cond.notify_all().unwrap();
    cond.release().unwrap();
    assert!(barrier.wait().unwrap() < 2);
    queue.put("queued".to_string()).unwrap();
    event.set().unwrap();
}

fn every_proxy_type_works_in_a_child(method: StartMethod) {
    quiet();
    let m = Manager::start().unwrap();
    let all: All = (
        m.list().unwrap(),
        m.dict().unwrap(),
        m.value(41).unwrap(),
        m.namespace().unwrap(),
        m.lock().unwrap(),
        m.rlock().unwrap(),
        m.semaphore(0).unwrap(),
        m.event().unwrap(),
        m.condition().unwrap(),
        m.barrier(2).unwrap(),
        m.queue(None).unwrap(),
    );
    let (list, dict, value, ns, lock, rlock, sem, event, cond, barrier, queue) = all.clone();
    lock.acquire().unwrap();
    rlock.acquire().unwrap();
    cond.acquire().unwrap();
    let mut p = Child(Process::with_target(use_each, all).start_method(method));
    p.0.start()
        .expect("a child with every proxy type as arguments");
    // Released while waiting; the child's notify wakes us.
    assert!(cond.wait().unwrap(), "the condition was not notified");
    cond.release().unwrap();
    assert!(barrier.wait().unwrap() < 2);
    assert_eq!(queue.get().unwrap(), "queued");
    assert!(event.wait().unwrap());
    assert!(sem.try_acquire().unwrap(), "the semaphore was not released");
    assert_eq!(p.0.join().unwrap(), 0, "the child failed");
    assert_eq!(
        list.to_vec().unwrap(),
        ["from the child", "locks taken: (false, false)"]
    );
    assert_eq!(dict.get(&"child".to_string()).unwrap(), Some(7));
    assert_eq!(value.get().unwrap(), 42);
    assert_eq!(ns.get::<String>("x").unwrap(), "child");
    lock.release().unwrap();
    rlock.release().unwrap();
}

#[test]
fn every_proxy_type_works_in_a_spawned_child() {
    every_proxy_type_works_in_a_child(StartMethod::Spawn);
}

#[test]
fn every_proxy_type_works_in_a_forkserver_child() {
    every_proxy_type_works_in_a_child(StartMethod::ForkServer);
}

/// Does the object behind this token (a proxy of type `P`) still exist?
fn exists<P: DeserializeOwned>(token: &[u8]) -> bool {
    wire::decode::<P>(token).is_ok()
}

/// Waits (by round trips to the server, no sleep) until the object is gone;
/// `false` if it never goes.
fn freed<P: DeserializeOwned>(m: &Manager, token: &[u8]) -> bool {
    for _ in 0..10_000 {
        if !exists::<P>(token) {
            return true;
        }
        m.ping().unwrap();
    }
    false
}

/// The child: hold the proxy until told to go (or until killed).
fn hold<P>((p, ready, go): (P, Event, Event)) {
    ready.set();
    go.wait();
    drop(p);
}

/// The object lives while only the child holds it, and is freed once the
/// child exits normally (`kill == false`) or is killed with `kill -9`.
fn child_holds<P, F>(method: StartMethod, kill: bool, make: F)
where
    P: Serialize + DeserializeOwned + Send + 'static,
    F: Fn(&Manager) -> P,
{
    quiet();
    let m = Manager::start().unwrap();
    let proxy = make(&m);
    let token = wire::encode(&proxy).unwrap();
    let (ready, go) = (Event::new().unwrap(), Event::new().unwrap());
    let mut p = Child(
        Process::with_target(hold::<P>, (proxy, ready.clone(), go.clone())).start_method(method),
    );
    p.0.start().expect("a child with a proxy argument");
    // `start` dropped the parent's arguments: the parent holds no proxy now.
    ready.wait();
    assert!(
        exists::<P>(&token),
        "{method}: the object died while the child held it"
    );
    if kill {
        p.0.kill().unwrap();
        assert_eq!(p.0.join().unwrap(), -9);
    } else {
        go.set();
        assert_eq!(p.0.join().unwrap(), 0);
    }
    assert!(
        freed::<P>(&m, &token),
        "{method}: the object outlived the child (kill -9: {kill}) that held it last"
    );
}

/// [`child_holds`] for every proxy type, under both methods.
fn for_each_type(kill: bool) {
    for method in METHODS {
        child_holds(method, kill, |m| m.list::<u8>().unwrap());
        child_holds(method, kill, |m| m.dict::<u8, u8>().unwrap());
        child_holds(method, kill, |m| m.value(1u8).unwrap());
        child_holds(method, kill, |m| m.namespace().unwrap());
        child_holds(method, kill, |m| m.lock().unwrap());
        child_holds(method, kill, |m| m.rlock().unwrap());
        child_holds(method, kill, |m| m.semaphore(1).unwrap());
        child_holds(method, kill, |m| m.event().unwrap());
        child_holds(method, kill, |m| m.condition().unwrap());
        child_holds(method, kill, |m| m.barrier(2).unwrap());
        child_holds(method, kill, |m| m.queue::<u8>(None).unwrap());
    }
}

#[test]
fn a_child_holds_its_own_reference_until_it_exits() {
    for_each_type(false);
}

#[test]
fn a_child_killed_with_sigkill_gives_its_reference_back() {
    for_each_type(true);
}

/// A proxy nested in a value (a `Vec` of proxies) crosses too.
fn sum_all((lists,): (Vec<ListProxy<u32>>,)) {
    for (i, l) in lists.iter().enumerate() {
        l.append(i as u32).unwrap();
    }
}

#[test]
fn proxies_nested_in_a_value_cross_too() {
    quiet();
    let m = Manager::start().unwrap();
    let lists: Vec<ListProxy<u32>> = (0..3).map(|_| m.list().unwrap()).collect();
    for method in METHODS {
        let mut p = Process::with_target(sum_all, (lists.clone(),)).start_method(method);
        p.start().unwrap();
        assert_eq!(p.join().unwrap(), 0);
    }
    for (i, l) in lists.iter().enumerate() {
        assert_eq!(l.to_vec().unwrap(), [i as u32, i as u32]);
    }
}

/// The auth key crosses in the start request's private memfd, never in the
/// child's environment or command line.
fn report_env((l,): (ListProxy<String>,)) {
    let env = std::fs::read("/proc/self/environ").unwrap();
    let cmdline = std::fs::read("/proc/self/cmdline").unwrap();
    let seen = String::from_utf8_lossy(&env) + String::from_utf8_lossy(&cmdline);
    l.append(seen.into_owned()).unwrap();
}

#[test]
fn the_auth_key_is_not_in_the_environment_or_command_line() {
    quiet();
    let key = procshare::AuthKey::new("a-very-recognizable-secret-key");
    let m = Manager::start_with_key(key).unwrap();
    let l = m.list::<String>().unwrap();
    for method in METHODS {
        let mut p = Process::with_target(report_env, (l.clone(),)).start_method(method);
        p.start().unwrap();
        assert_eq!(p.join().unwrap(), 0);
    }
    let seen = l.to_vec().unwrap();
    assert_eq!(seen.len(), 2);
    for s in seen {
        assert!(!s.contains("a-very-recognizable-secret-key"), "{s}");
    }
}
