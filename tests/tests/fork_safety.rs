//! A child forked while another thread of its parent is inside one of
//! procshare's short critical sections (a manager call, a proxy made or
//! dropped) must not inherit that lock held: the thread that would release
//! it does not exist in the child, which would then wait forever.
//!
//! Each child here is waited for with a generous bound that turns such a
//! hang into a failure (not a timing assertion).

use procshare::{Manager, Process};
use procshare_tests::quiet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[test]
fn a_child_forked_during_another_threads_manager_calls_can_use_the_manager() {
    quiet();
    let m = Manager::start().unwrap();
    let shared = m.value(0u64).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    // Another thread makes, uses and drops proxies without pause: the
    // manager client's endpoint, session and reference-count locks are taken
    // and released over and over.
    let busy = {
        let (addr, key, stop) = (m.address().clone(), m.authkey().clone(), stop.clone());
        let shared = shared.clone();
        std::thread::spawn(move || {
            let m = Manager::connect(addr, key).unwrap();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // A proxy of the parent's endpoint, one of this thread's own.
                shared.set(&n).unwrap();
                drop(shared.clone());
                let v = m.value(n).unwrap();
                v.set(&(n + 1)).unwrap();
                drop(v);
                n += 1;
            }
            n
        })
    };
    let mut hung = Vec::new();
    for i in 0..300u64 {
        let shared2 = shared.clone();
        let (addr, key) = (m.address().clone(), m.authkey().clone());
        let mut p = Process::new(move || {
            let m2 = Manager::connect(addr, key).unwrap();
            // An inherited proxy, a new one, and a drop: each takes the locks.
            shared2.set(&i).unwrap();
            let mine = m2.value(i).unwrap();
            assert_eq!(mine.get().unwrap(), i);
        });
        p.start().unwrap();
        match p.join_timeout(Duration::from_secs(60)).unwrap() {
            Some(code) => assert_eq!(code, 0, "child {i} failed (see its stderr)"),
            None => {
                p.kill().unwrap();
                let _ = p.join();
                hung.push(i);
                break;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let calls = busy.join().unwrap();
    assert!(calls > 0);
    assert!(
        hung.is_empty(),
        "children {hung:?} hung on a manager lock another thread held at the fork"
    );
}
