//! TCP managers on 127.0.0.1, nested proxies, sync proxies across processes,
//! and the server's lifetime (exits when the process that started it dies).

use procshare::AuthKey;
use procshare::Process;
use procshare::{Address, ListProxy, Manager, ManagerError};
use procshare_tests::quiet;
use std::time::{Duration, Instant};

const GENEROUS: Duration = Duration::from_secs(30);

#[test]
fn tcp_remote_clients_in_other_processes() {
    quiet();
    let key = AuthKey::new("remote secret");
    let server = Manager::serve("127.0.0.1:0", key.clone()).unwrap();
    let addr = match server.address() {
        Address::Tcp(a) => *a,
        a => panic!("{a}"),
    };
    assert!(addr.ip().is_loopback() && addr.port() != 0);
    let results = server.list_named::<String>("results").unwrap();
    let mut clients: Vec<Process> = (0..3)
        .map(|i| {
            let key = key.clone();
            let mut p = Process::new(move || {
                // A fresh client: connects by address and key only.
                let m = Manager::connect(addr, key).unwrap();
                let l = m.list_named::<String>("results").unwrap();
                l.append(format!("client {i}")).unwrap();
            });
            p.start().unwrap();
            p
        })
        .collect();
    for c in &mut clients {
        assert_eq!(c.join().unwrap(), 0);
    }
    let mut got = results.to_vec().unwrap();
    got.sort();
    assert_eq!(got, ["client 0", "client 1", "client 2"]);
    let e = Manager::connect(addr, AuthKey::new("guess")).unwrap_err();
    assert!(matches!(e, ManagerError::Auth(_)), "{e:?}");
    // A name bound to another kind is a typed error.
    assert!(server.dict_named::<u8, u8>("results").is_err());
}

#[test]
fn nested_proxies_stay_proxies() {
    quiet();
    let m = Manager::start().unwrap();
    let inner = m.list_from([1, 2]).unwrap();
    let outer = m.list::<ListProxy<i32>>().unwrap();
    outer.append(&inner).unwrap();
    // Read back: still a proxy to the same list; writes through it reach it.
    let back = outer.get(0).unwrap();
    assert_eq!(back, inner);
    back.append(3).unwrap();
    assert_eq!(inner.to_vec().unwrap(), [1, 2, 3]);
    // Same from a child process, and through a dict.
    let d = m.dict::<String, ListProxy<i32>>().unwrap();
    d.insert("k".to_string(), &inner).unwrap();
    let d2 = d.clone();
    let mut p = Process::new(move || {
        d2.get(&"k".to_string())
            .unwrap()
            .unwrap()
            .append(4)
            .unwrap();
    });
    p.start().unwrap();
    assert_eq!(p.join().unwrap(), 0);
    assert_eq!(inner.to_vec().unwrap(), [1, 2, 3, 4]);
    // A list proxy read as a dict proxy is refused (wrong type), not misused.
    let wrong = m.list::<procshare::DictProxy<u8, u8>>().unwrap();
    let as_outer: ListProxy<ListProxy<i32>> =
        procshare::internals::wire::decode(&procshare::internals::wire::encode(&wrong).unwrap())
            .unwrap();
    as_outer.append(&inner).unwrap();
    assert!(matches!(
        wrong.get(0).unwrap_err(),
        ManagerError::WrongType { .. }
    ));
}

#[test]
fn locks_events_queues_across_processes() {
    quiet();
    let m = Manager::start().unwrap();
    let lock = m.lock().unwrap();
    let counter = m.value(0i64).unwrap();
    let go = m.event().unwrap();
    let q = m.queue::<u32>(Some(2)).unwrap();
    let mut procs: Vec<Process> = (0..3u32)
        .map(|i| {
            let (lock, counter, go, q) = (lock.clone(), counter.clone(), go.clone(), q.clone());
            let mut p = Process::new(move || {
                assert!(go.wait_timeout(GENEROUS).unwrap());
                for _ in 0..20 {
                    lock.acquire().unwrap();
                    // get/set is not atomic: only the lock makes the sum exact.
                    let v = counter.get().unwrap();
                    counter.set(&(v + 1)).unwrap();
                    lock.release().unwrap();
                }
                q.put(i).unwrap(); // blocks while the bounded queue is full
            });
            p.start().unwrap();
            p
        })
        .collect();
    go.set().unwrap();
    let mut got: Vec<u32> = (0..3).map(|_| q.get_timeout(GENEROUS).unwrap()).collect();
    for p in &mut procs {
        assert_eq!(p.join().unwrap(), 0);
    }
    got.sort();
    assert_eq!(got, [0, 1, 2]);
    assert_eq!(counter.get().unwrap(), 60);
}

#[test]
fn rlock_and_semaphore_across_processes() {
    quiet();
    let m = Manager::start().unwrap();
    let r = m.rlock().unwrap();
    let sem = m.bounded_semaphore(1).unwrap();
    let held = m.event().unwrap();
    let done = m.event().unwrap();
    r.acquire().unwrap();
    sem.acquire().unwrap();
    let (r2, s2, h2, d2) = (r.clone(), sem.clone(), held.clone(), done.clone());
    let mut p = Process::new(move || {
        // Not the owner: cannot release the parent's rlock nor take it now.
        assert!(r2.release().is_err());
        assert!(!r2.try_acquire().unwrap());
        h2.set().unwrap();
        assert!(r2.acquire_timeout(GENEROUS).unwrap());
        assert!(s2.acquire_timeout(GENEROUS).unwrap());
        d2.set().unwrap();
        r2.release().unwrap();
    });
    p.start().unwrap();
    assert!(held.wait_timeout(GENEROUS).unwrap());
    sem.release().unwrap();
    assert!(sem.release().is_err()); // bounded: over-release
    r.release().unwrap();
    assert!(done.wait_timeout(GENEROUS).unwrap());
    assert_eq!(p.join().unwrap(), 0);
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks existence.
    unsafe { libc::kill(pid, 0) == 0 }
}

#[test]
fn server_exits_when_its_parent_dies() {
    server_exits_when_parent_dies(false);
}

/// Started from a thread other than the main one: the server follows the
/// parent *process* (a pidfd), not the thread that forked it.
#[test]
fn server_started_from_a_thread_exits_when_its_parent_dies() {
    server_exits_when_parent_dies(true);
}

fn server_exits_when_parent_dies(from_thread: bool) {
    quiet();
    let m = Manager::start().unwrap();
    let report = m.queue::<(i32, String)>(None).unwrap();
    let release = m.event().unwrap();
    let (rep, rel) = (report.clone(), release.clone());
    // A child starts its own manager, reports the server's pid, and is
    // killed; its manager's Drop never runs.
    let mut p = Process::new(move || {
        let inner = if from_thread {
            std::thread::spawn(Manager::start).join().unwrap().unwrap()
        } else {
            Manager::start().unwrap()
        };
        let Address::Unix(sock) = inner.address().clone() else {
            unreachable!()
        };
        rep.put((inner.server_pid().unwrap(), sock.display().to_string()))
            .unwrap();
        rel.wait().unwrap();
    });
    p.start().unwrap();
    let (server, sock) = report.get_timeout(GENEROUS).unwrap();
    assert!(alive(server));
    let dir = std::path::Path::new(&sock).parent().unwrap().to_path_buf();
    assert!(dir.exists());
    p.kill().unwrap();
    assert_eq!(p.join().unwrap(), -9);
    // The orphaned server notices (pidfd) and exits; init reaps it. Poll its
    // existence with a generous deadline: this asserts an outcome, not a speed.
    let deadline = Instant::now() + GENEROUS;
    while alive(server) && Instant::now() < deadline {
        std::thread::yield_now();
    }
    assert!(
        !alive(server),
        "manager server {server} outlived its parent"
    );
    // It removed its private socket directory on the way out.
    assert!(!dir.exists(), "{} left behind", dir.display());
}

#[test]
fn barrier_and_condition_across_processes() {
    quiet();
    let m = Manager::start().unwrap();
    let barrier = m.barrier(4).unwrap();
    let cond = m.condition().unwrap();
    let items = m.list::<u32>().unwrap();
    let got = m.list::<u32>().unwrap();
    let indices = m.list::<u64>().unwrap();
    let mut procs: Vec<Process> = (0..3)
        .map(|_| {
            let (b, c, items, got, idx) = (
                barrier.clone(),
                cond.clone(),
                items.clone(),
                got.clone(),
                indices.clone(),
            );
            let mut p = Process::new(move || {
                // Three rounds through the barrier with the parent.
                for _ in 0..3 {
                    idx.append(b.wait_timeout(GENEROUS).unwrap()).unwrap();
                }
                // Consumers: take items under the condition until a 0 arrives.
                loop {
                    c.acquire().unwrap();
                    c.wait_for(|| Ok(!items.is_empty()?)).unwrap();
                    let x = items.pop_at(0).unwrap();
                    c.release().unwrap();
                    if x == 0 {
                        break;
                    }
                    got.append(x).unwrap();
                }
            });
            p.start().unwrap();
            p
        })
        .collect();
    for _ in 0..3 {
        indices
            .append(barrier.wait_timeout(GENEROUS).unwrap())
            .unwrap();
    }
    for x in (1..=30).chain([0, 0, 0]) {
        cond.acquire().unwrap();
        items.append(x).unwrap();
        cond.notify().unwrap();
        cond.release().unwrap();
    }
    for p in &mut procs {
        assert_eq!(p.join().unwrap(), 0);
    }
    // Every round handed out the indices 0..4 exactly once.
    let mut idx = indices.to_vec().unwrap();
    idx.sort();
    assert_eq!(idx, [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]);
    let mut g = got.to_vec().unwrap();
    g.sort();
    assert_eq!(g, (1..=30).collect::<Vec<_>>());
    assert!(!barrier.is_broken().unwrap());
}
