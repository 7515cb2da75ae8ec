//! A proxy stored in a managed container keeps its object alive, as in
//! CPython (whose server keeps the stored proxy objects, and with them their
//! referents): the container holds a reference to each object a stored value
//! embeds a proxy to, while it stores that value. Overwriting or removing the
//! value gives the references back at the remover's next operation (so
//! that the remover can take the removed proxy first: `pop`); freeing the
//! container gives them back at once.
//!
//! Whether an object still exists is observed as in `manager_refcount.rs`:
//! the proxy's serialized token is deserialized again, which takes a
//! reference (and gives it back at once) and fails once the object is gone.
//! Ordering is by the library's own events, never by sleeping.

use procshare::internals::wire;
use procshare::{DictProxy, Event, Manager, Process, ValueProxy};
use procshare_tests::quiet;

type Inner = DictProxy<String, i32>;

fn exists(token: &[u8]) -> bool {
    wire::decode::<Inner>(token).is_ok()
}

/// Is the object gone, once the server has settled what the remover's
/// connection deferred? The removal's references go at that connection's
/// next operation, which the test makes; but this thread's connection may
/// be replaced meanwhile (a parallel test forked: connections lent to a
/// child are reopened), and the old one's references then go when the
/// server sees it close. Likewise a dropped container's last reference, if
/// the connection that took it was replaced. So: poll, bounded, as
/// manager_refcount.rs does.
fn freed(m: &Manager, token: &[u8]) -> bool {
    procshare_tests::eventually(std::time::Duration::from_secs(60), || {
        !exists(token) || {
            m.ping().unwrap();
            false
        }
    })
}

fn manager() -> Manager {
    quiet();
    Manager::start().unwrap()
}

fn inner(m: &Manager, v: i32) -> (Inner, Vec<u8>) {
    let d = m.dict::<String, i32>().unwrap();
    d.insert("a".to_string(), v).unwrap();
    let token = wire::encode(&d).unwrap();
    (d, token)
}

#[test]
fn a_proxy_stored_in_a_list_keeps_its_object() {
    let m = manager();
    let l = m.list::<Inner>().unwrap();
    let (d, token) = inner(&m, 1);
    l.append(&d).unwrap();
    drop(d); // the list is the object's only holder now
    assert!(exists(&token), "the object a list stores was freed");
    let l2 = l.clone();
    let mut p = Process::new(move || {
        let d = l2.get(0).unwrap();
        assert_eq!(d.get(&"a".to_string()).unwrap(), Some(1));
        d.insert("b".to_string(), 2).unwrap();
    });
    p.start().unwrap();
    assert_eq!(p.join().unwrap(), 0);
    assert_eq!(l.get(0).unwrap().get(&"b".to_string()).unwrap(), Some(2));
    // Overwritten: the list gives its reference back.
    let (other, other_token) = inner(&m, 3);
    l.set(0, &other).unwrap();
    l.len().unwrap(); // the next operation
    assert!(
        freed(&m, &token),
        "an overwritten stored proxy's object lives on"
    );
    drop(other);
    assert!(exists(&other_token));
    // The list freed: so is what it stored.
    drop(l);
    assert!(
        freed(&m, &other_token),
        "a freed list's stored object lives on"
    );
}

#[test]
fn a_proxy_stored_in_a_dict_value_or_namespace_keeps_its_object() {
    let m = manager();
    let dict = m.dict::<String, Inner>().unwrap();
    let value = m.value::<Option<Inner>>(None).unwrap();
    let ns = m.namespace().unwrap();
    let (d1, t1) = inner(&m, 1);
    let (d2, t2) = inner(&m, 2);
    let (d3, t3) = inner(&m, 3);
    dict.insert("k".to_string(), &d1).unwrap();
    value.set(&Some(d2.clone())).unwrap();
    ns.set("x", &d3).unwrap();
    drop((d1, d2, d3));
    assert!(exists(&t1) && exists(&t2) && exists(&t3));
    // The removed value is the answer: a proxy again.
    let back = dict.remove(&"k".to_string()).unwrap().unwrap();
    assert_eq!(back.get(&"a".to_string()).unwrap(), Some(1));
    drop(back);
    dict.len().unwrap();
    assert!(freed(&m, &t1), "a removed dict value's object lives on");
    value.set(&None).unwrap();
    value.get().unwrap();
    assert!(freed(&m, &t2), "an overwritten value's object lives on");
    assert!(exists(&t3));
    ns.del("x").unwrap();
    ns.names().unwrap();
    assert!(freed(&m, &t3), "a deleted attribute's object lives on");
}

#[test]
fn a_killed_client_s_stored_proxy_lives_on_in_the_container() {
    let m = manager();
    let l = m.list::<ValueProxy<u8>>().unwrap();
    let (ready, never) = (Event::new().unwrap(), Event::new().unwrap());
    let (r2, n2, l2) = (ready.clone(), never.clone(), l.clone());
    let (addr, key) = (m.address().clone(), m.authkey().clone());
    let mut p = Process::new(move || {
        // A value only this child holds, stored in the list.
        let mine = Manager::connect(addr, key).unwrap().value(7u8).unwrap();
        l2.append(&mine).unwrap();
        r2.set();
        n2.wait(); // killed here
    });
    p.start().unwrap();
    ready.wait();
    p.kill().unwrap();
    p.join().unwrap();
    assert_eq!(l.get(0).unwrap().get().unwrap(), 7);
}

#[test]
fn a_proxy_stored_by_setdefault_keeps_its_object() {
    let m = manager();
    let dict = m.dict::<String, Inner>().unwrap();
    let (d, t) = inner(&m, 1);
    let got = dict.setdefault("k".to_string(), &d).unwrap();
    drop((d, got));
    assert!(exists(&t), "the object setdefault stored was freed");
    // A setdefault of a present key stores nothing: its object is not held.
    let (other, other_t) = inner(&m, 2);
    let got = dict.setdefault("k".to_string(), &other).unwrap();
    assert_eq!(got.get(&"a".to_string()).unwrap(), Some(1));
    drop((other, got));
    dict.len().unwrap();
    assert!(
        freed(&m, &other_t),
        "a default setdefault did not store lives on"
    );
    assert!(exists(&t));
    dict.remove(&"k".to_string()).unwrap();
    dict.len().unwrap();
    assert!(
        freed(&m, &t),
        "a removed setdefault value's object lives on"
    );
}

#[test]
fn a_proxy_put_in_a_queue_keeps_its_object() {
    let m = manager();
    let q = m.queue::<Inner>(None).unwrap();
    let jq = m.joinable_queue::<Inner>(None).unwrap();
    let (d1, t1) = inner(&m, 1);
    let (d2, t2) = inner(&m, 2);
    // A child puts them (and drops its copies when it exits).
    let (q2, jq2) = (q.clone(), jq.clone());
    let mut p = Process::new(move || {
        q2.put(&d1).unwrap();
        jq2.put(&d2).unwrap();
    });
    p.start().unwrap();
    assert_eq!(p.join().unwrap(), 0);
    // The parent's copies went with the closure: the queues are the only
    // holders now.
    assert!(exists(&t1), "the object a queue holds was freed");
    assert!(exists(&t2), "the object a joinable queue holds was freed");
    let got = q.get().unwrap();
    assert_eq!(got.get(&"a".to_string()).unwrap(), Some(1));
    drop(got);
    q.qsize().unwrap();
    assert!(freed(&m, &t1), "a got queue item's object lives on");
    let got = jq.get().unwrap();
    jq.task_done().unwrap();
    assert_eq!(got.get(&"a".to_string()).unwrap(), Some(2));
    drop(got);
    jq.qsize().unwrap();
    assert!(
        freed(&m, &t2),
        "a got joinable queue item's object lives on"
    );
}

#[test]
fn every_proxy_extend_or_update_stores_keeps_its_object() {
    let m = manager();
    let l = m.list::<Inner>().unwrap();
    let dict = m.dict::<String, Inner>().unwrap();
    let (d1, t1) = inner(&m, 1);
    let (d2, t2) = inner(&m, 2);
    let (d3, t3) = inner(&m, 3);
    let (d4, t4) = inner(&m, 4);
    l.extend([&d1, &d2]).unwrap();
    dict.update([("a".to_string(), &d3), ("b".to_string(), &d4)])
        .unwrap();
    drop((d1, d2, d3, d4));
    for (t, what) in [
        (&t1, "extend's first"),
        (&t2, "extend's last"),
        (&t3, "update's first"),
        (&t4, "update's last"),
    ] {
        assert!(exists(t), "the object of {what} item was freed");
    }
    drop(l.pop().unwrap());
    l.len().unwrap();
    assert!(freed(&m, &t2), "a popped extended item's object lives on");
    dict.remove(&"a".to_string()).unwrap();
    dict.len().unwrap();
    assert!(freed(&m, &t3), "a removed updated value's object lives on");
    drop((l, dict));
    assert!(
        freed(&m, &t1) && freed(&m, &t4),
        "a freed container's object lives on"
    );
}

#[test]
fn every_proxy_a_container_is_created_with_keeps_its_object() {
    let m = manager();
    let (d1, t1) = inner(&m, 1);
    let (d2, t2) = inner(&m, 2);
    let (d3, t3) = inner(&m, 3);
    let l = m.list_from([d1, d2]).unwrap();
    let dict = m
        .dict_from::<String, Inner, _, _>([("a".to_string(), d3)])
        .unwrap();
    assert!(exists(&t1), "list_from's first item's object was freed");
    assert!(exists(&t2), "list_from's last item's object was freed");
    assert!(exists(&t3), "dict_from's value's object was freed");
    assert_eq!(l.get(1).unwrap().get(&"a".to_string()).unwrap(), Some(2));
    drop(l.pop().unwrap());
    l.len().unwrap();
    assert!(freed(&m, &t2), "a popped list_from item's object lives on");
    drop((l, dict));
    assert!(
        freed(&m, &t1) && freed(&m, &t3),
        "a freed container's object lives on"
    );
}

/// A Redis manager's objects are not reference counted: its proxies are
/// not noted, so none of the stores above sends it a holding op (which its
/// backend would refuse). Against the redis-server in `PROCSHARE_REDIS_URL`;
/// skipped without it (a failure when `PROCSHARE_REQUIRE_REDIS` is set).
#[test]
fn a_redis_manager_is_sent_no_holding_op() {
    quiet();
    let Some(url) = procshare_tests::redis_url("a_redis_manager_is_sent_no_holding_op") else {
        return;
    };
    let ns = format!("procshare-test:stored-proxies:{}", std::process::id());
    let m = Manager::redis(&url, &ns).unwrap();
    let v = m.value(7i32).unwrap();
    let l = m.list::<ValueProxy<i32>>().unwrap();
    l.extend([&v, &v]).unwrap();
    l.append(&v).unwrap();
    let d = m.dict::<String, ValueProxy<i32>>().unwrap();
    d.update([("a".to_string(), &v)]).unwrap();
    assert_eq!(d.setdefault("b".to_string(), &v).unwrap().get().unwrap(), 7);
    let q = m.queue::<ValueProxy<i32>>(None).unwrap();
    q.put(&v).unwrap();
    assert_eq!(q.get().unwrap().get().unwrap(), 7);
    let l2 = m.list_from([v.clone()]).unwrap();
    let d2 = m
        .dict_from::<String, ValueProxy<i32>, _, _>([("c".to_string(), &v)])
        .unwrap();
    assert_eq!(l.len().unwrap(), 3);
    assert_eq!(l2.get(0).unwrap().get().unwrap(), 7);
    assert_eq!(d2.len().unwrap(), 1);
    drop((v, l, d, q, l2, d2, m));
    let _ = Manager::redis_clear(&url, &ns);
}
