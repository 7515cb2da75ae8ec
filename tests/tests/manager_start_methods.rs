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
    get_context, get_start_method, BarrierProxy, ConditionProxy, DictProxy, Event, EventProxy,
    ListProxy, LockProxy, Manager, NamespaceProxy, Process, QueueProxy, RLockProxy, SemaphoreProxy,
    StartMethod, Value, ValueProxy,
};
use procshare_tests::quiet;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::atomic::{AtomicU32, Ordering};

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
/// `false` if it never goes (a bound that turns "never" into a failure, not a
/// timing assertion: a child another test of this binary forked meanwhile
/// holds a lent reference until it exits).
fn freed<P: DeserializeOwned>(m: &Manager, token: &[u8]) -> bool {
    procshare_tests::eventually(std::time::Duration::from_secs(60), || {
        !exists::<P>(token) || {
            m.ping().unwrap();
            false
        }
    })
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

// ---------------------------------------------------------------------------
// A context carries its start method to the manager's server.

/// Set in the test process before a server starts: a forked server sees it
/// (a copy of this memory), a spawned or forkserver one does not (a fresh
/// exec of the binary).
static MARK: AtomicU32 = AtomicU32::new(0);

/// The server's initializer: what the server was started by, as it sees it.
fn report((method, mark, pid): (Value<u8>, Value<u32>, Value<u32>)) {
    let code = METHOD_NAMES
        .iter()
        .position(|m| *m == get_start_method().name())
        .unwrap_or(99);
    method.set(code as u8);
    mark.set(MARK.load(Ordering::SeqCst));
    pid.set(std::process::id());
}

const METHOD_NAMES: [&str; 3] = ["fork", "spawn", "forkserver"];

/// The parent pid of process `pid` (`/proc/PID/stat`, field 4).
fn ppid_of(pid: i32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    after.split(' ').nth(1).unwrap().parse().unwrap()
}

/// The environment process `pid` was exec'd with (`/proc/PID/environ`):
/// a spawned process's shows how procshare started it.
fn spawn_env_of(pid: i32) -> Option<String> {
    let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    env.split(|b| *b == 0)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .find(|v| v.starts_with("PROCSHARE_SPAWN="))
}

fn append4((l,): (ListProxy<u32>,)) {
    l.append(4).unwrap();
}

#[test]
fn a_context_starts_the_managers_server_by_its_method() {
    quiet();
    MARK.store(7, Ordering::SeqCst);
    for (code, name) in METHOD_NAMES.iter().enumerate() {
        let ctx = get_context(Some(name)).unwrap();
        let method = Value::new(99u8).unwrap();
        let (mark, pid) = (Value::new(0u32).unwrap(), Value::new(0u32).unwrap());
        let m = ctx
            .manager_builder()
            .initializer(report, (method.clone(), mark.clone(), pid.clone()))
            .start()
            .unwrap();
        let server = m.server_pid().unwrap();
        // The initializer ran in the server, before `start` returned.
        assert_eq!(pid.get() as i32, server, "{name}");
        assert_eq!(
            method.get() as usize,
            code,
            "{name}: the server's start method"
        );
        let forked = *name == "fork";
        assert_eq!(mark.get(), if forked { 7 } else { 0 }, "{name}");
        // Its parent: this process, or (forkserver) our fork server.
        let want_parent = if *name == "forkserver" {
            procshare::internals::forkserver_pid().unwrap()
        } else {
            std::process::id()
        };
        assert_eq!(ppid_of(server), want_parent, "{name}: the server's parent");
        match spawn_env_of(server) {
            None => assert!(forked, "{name}: the server was not exec'd"),
            Some(v) => assert!(v.starts_with(&format!("PROCSHARE_SPAWN={name}:")), "{v}"),
        }
        // It serves, and a child of the same method reaches it.
        let l = m.list_from([1u32, 2]).unwrap();
        l.append(3).unwrap();
        let mut p = ctx.process(append4, (l.clone(),));
        p.start().unwrap();
        assert_eq!(p.join().unwrap(), 0);
        assert_eq!(l.to_vec().unwrap(), [1, 2, 3, 4], "{name}");
    }
}

#[test]
fn context_manager_uses_the_contexts_method() {
    quiet();
    for name in ["spawn", "forkserver"] {
        let m = get_context(Some(name)).unwrap().manager().unwrap();
        let env = spawn_env_of(m.server_pid().unwrap()).expect("an exec'd server");
        assert!(
            env.starts_with(&format!("PROCSHARE_SPAWN={name}:")),
            "{env}"
        );
        let d = m.dict::<String, u8>().unwrap();
        d.insert("k".to_string(), 1).unwrap();
        assert_eq!(d.get(&"k".to_string()).unwrap(), Some(1));
    }
}

/// Waits for process `pid` (not our child) to exit: a pidfd, polled for at
/// most a minute (a bound for a hang, not a timing assertion).
fn exits(pid: i32) -> bool {
    // SAFETY: plain system calls on integers; the pidfd is closed below.
    unsafe {
        let fd = libc::syscall(libc::SYS_pidfd_open, pid, 0) as i32;
        if fd < 0 {
            return true; // already gone
        }
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let n = libc::poll(&mut p, 1, 60_000);
        libc::close(fd);
        n == 1
    }
}

#[test]
fn a_spawned_server_exits_when_its_owner_is_killed() {
    quiet();
    for name in ["spawn", "forkserver"] {
        let server = Value::new(0i32).unwrap();
        let (ready, never) = (Event::new().unwrap(), Event::new().unwrap());
        let (s2, r2, n2) = (server.clone(), ready.clone(), never.clone());
        let mut owner = Child(Process::new(move || {
            let m = get_context(Some(name)).unwrap().manager().unwrap();
            s2.set(m.server_pid().unwrap());
            r2.set();
            n2.wait(); // killed here
        }));
        owner.0.start().unwrap();
        ready.wait();
        let pid = server.get();
        assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
        owner.0.kill().unwrap();
        assert_eq!(owner.0.join().unwrap(), -9);
        assert!(exits(pid), "{name}: the server outlived its owner");
    }
}

/// The manager initializer's panic is `start`'s error.
fn panics((_,): (u8,)) {
    panic!("initializer failed on purpose");
}

#[test]
fn an_initializer_that_panics_fails_start() {
    quiet();
    for name in METHOD_NAMES {
        let r = get_context(Some(name))
            .unwrap()
            .manager_builder()
            .initializer(panics, (0,))
            .start();
        let e = r.expect_err("a server whose initializer panicked");
        assert!(
            e.to_string().contains("initializer panicked"),
            "{name}: {e}"
        );
    }
}

/// A pool worker's initializer (CPython's `Pool(initializer=f, initargs=(proxy,))`).
fn worker_init((l,): (ListProxy<u32>,)) {
    l.append(std::process::id()).unwrap();
}

fn double(x: u32) -> u32 {
    x * 2
}

#[test]
fn a_proxy_is_an_initarg_of_spawned_pool_workers() {
    quiet();
    let m = Manager::start().unwrap();
    let l = m.list::<u32>().unwrap();
    for method in METHODS {
        let pool = procshare::Pool::builder()
            .processes(2)
            .start_method(method)
            .spawn_initializer(worker_init, (l.clone(),))
            .build()
            .unwrap();
        assert_eq!(pool.map(double, 0..4u32).unwrap(), [0, 2, 4, 6]);
        let mut pids = pool.worker_pids();
        pids.sort_unstable();
        let mut seen = l.to_vec().unwrap();
        seen.sort_unstable();
        assert_eq!(seen, pids, "{method}: each worker ran its initializer once");
        l.clear().unwrap();
    }
}

/// In a child started by spawn (whose start method is then spawn, as
/// `set_start_method("spawn")` would make it), a manager started without a
/// chosen method follows it: CPython's `Manager()` follows the default
/// context.
fn start_default_manager((method, mark, pid): (Value<u8>, Value<u32>, Value<u32>)) {
    // A forked server would see this; an exec'd one starts from zero.
    MARK.store(7, Ordering::SeqCst);
    let m = procshare::Manager::builder()
        .initializer(report, (method, mark, pid))
        .start()
        .unwrap();
    drop(m);
}

#[test]
fn a_managers_default_start_method_is_the_processs() {
    quiet();
    let method = Value::new(99u8).unwrap();
    let (mark, pid) = (Value::new(0u32).unwrap(), Value::new(0u32).unwrap());
    let mut p = Process::with_target(
        start_default_manager,
        (method.clone(), mark.clone(), pid.clone()),
    )
    .start_method(StartMethod::Spawn);
    p.start().unwrap();
    assert_eq!(p.join().unwrap(), 0);
    assert_eq!(
        METHOD_NAMES[method.get() as usize],
        "spawn",
        "the server of a spawned child's default manager"
    );
    assert_eq!(
        mark.get(),
        0,
        "the default manager's server was forked, not spawned"
    );
}
