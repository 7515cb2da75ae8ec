//! Reference counting of manager objects, as CPython's: an object whose last
//! proxy (in any process) is dropped is freed by the server; clones, proxies
//! received by another process and proxies inherited by a forked child count;
//! a client killed with `kill -9` gives its references back.
//!
//! Whether an object still exists is observed through the public API: a
//! proxy's serialized token is deserialized again, which takes a reference
//! and fails if the object is gone.

use procshare::internals::wire;
use procshare::{Event, ListProxy, Manager, Process};
use procshare_tests::quiet;

/// Does the object behind this token still exist?
fn exists(token: &[u8]) -> bool {
    wire::decode::<ListProxy<u8>>(token).is_ok()
}

/// Is the object gone, once the server has settled every connection that
/// held it? Besides this process's session, a child that another test of
/// this binary forked meanwhile was lent a reference to every object this
/// process held (`lend_before_fork`); it gives it back when it exits, and
/// the server sees that connection end on its own time. So: poll, with a
/// bound that turns "never" into a failure (not a timing assertion).
fn freed(m: &Manager, token: &[u8]) -> bool {
    procshare_tests::eventually(std::time::Duration::from_secs(60), || {
        !exists(token) || {
            m.ping().unwrap();
            false
        }
    })
}

#[test]
fn last_proxy_dropped_frees_the_object() {
    quiet();
    let m = Manager::start().unwrap();
    let l = m.list_from([1u8]).unwrap();
    let token = wire::encode(&l).unwrap();
    let l2 = l.clone();
    drop(l);
    // A clone still holds it.
    assert!(exists(&token));
    l2.append(2).unwrap();
    let received = wire::decode::<ListProxy<u8>>(&token).unwrap();
    drop(l2);
    // A deserialized proxy holds a reference of its own.
    assert_eq!(received.to_vec().unwrap(), [1, 2]);
    drop(received);
    assert!(freed(&m, &token), "the list outlived its last proxy");
}

#[test]
fn a_forked_child_holds_what_it_inherited() {
    quiet();
    let m = Manager::start().unwrap();
    let l = m.list::<u8>().unwrap();
    let token = wire::encode(&l).unwrap();
    let parent_dropped = Event::new().unwrap();
    let pd = parent_dropped.clone();
    let child_l = l.clone();
    let mut p = Process::new(move || {
        // Our parent has dropped every proxy it had by now.
        pd.wait();
        child_l.append(7).unwrap();
        assert_eq!(child_l.to_vec().unwrap(), [7]);
    });
    p.start().unwrap();
    // (start dropped the parent's copy of the closure, and its proxy.)
    drop(l);
    parent_dropped.set();
    assert_eq!(p.join().unwrap(), 0, "the child lost the list it inherited");
    // The child exited: its references went with its connection.
    assert!(
        freed(&m, &token),
        "the list outlived the child that held it last"
    );
}

#[test]
fn a_killed_client_gives_its_references_back() {
    quiet();
    let m = Manager::start().unwrap();
    // The child publishes its list's token (a stored proxy would be held
    // by the dict: manager_stored_proxies.rs).
    let d = m.dict::<String, Vec<u8>>().unwrap();
    let ready = Event::new().unwrap();
    let never = Event::new().unwrap();
    let (r2, n2, d2) = (ready.clone(), never.clone(), d.clone());
    let (addr, key) = (m.address().clone(), m.authkey().clone());
    let mut p = Process::new(move || {
        // A list only this child holds; its token is published in `d`.
        let mine = Manager::connect(addr, key)
            .unwrap()
            .list_from([5u8])
            .unwrap();
        d2.insert("l".to_string(), wire::encode(&mine).unwrap())
            .unwrap();
        r2.set();
        n2.wait(); // killed here
    });
    p.start().unwrap();
    ready.wait();
    let token = d.get(&"l".to_string()).unwrap().unwrap();
    assert!(exists(&token));
    p.kill().unwrap();
    p.join().unwrap();
    assert!(freed(&m, &token), "a killed client's list was never freed");
}

/// The server's resident memory, in kB.
fn vm_rss_kb(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Create and drop `n` lists of a few hundred bytes each.
fn churn(m: &Manager, n: usize) {
    for i in 0..n {
        let l = m.list_from([i as u64; 32]).unwrap();
        drop(l);
    }
}

/// `PROCSHARE_REFCOUNT_CYCLES` (default 200,000) create/drop cycles keep the
/// server's memory flat (each list holds ~300 bytes: kept alive, 200,000 of
/// them would grow the server by 60 MB or more).
#[test]
fn create_drop_cycles_keep_server_memory_flat() {
    quiet();
    let n: usize = std::env::var("PROCSHARE_REFCOUNT_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let m = Manager::start().unwrap();
    let pid = m.server_pid().unwrap();
    // Warm up: the allocator's and the table's steady state.
    churn(&m, 20_000);
    let before = vm_rss_kb(pid);
    churn(&m, n);
    let after = vm_rss_kb(pid);
    eprintln!("{n} create/drop cycles: server VmRSS {before} kB -> {after} kB");
    assert!(
        after <= before + 4096,
        "the server grew from {before} kB to {after} kB over {n} create/drop cycles"
    );
}
