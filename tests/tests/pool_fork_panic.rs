//! A pool builds while another thread of the parent is inside the panic hook
//! (a worker forked at that moment must not wait for the hook's lock, which
//! stays held in its copy of memory forever). Its own test binary: it sets a
//! panic hook that blocks.

use std::sync::mpsc::channel;
use std::sync::{Arc, Mutex};

use procshare::Pool;

fn inc(x: u32) -> u32 {
    x + 1
}

#[test]
fn a_pool_builds_while_another_thread_is_panicking() {
    std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    // The first pool wraps the panic hook; then a hook that blocks the
    // panicking thread until released replaces it.
    let first = Pool::new(1).unwrap();
    assert_eq!(first.map(inc, 0..3).unwrap(), [1, 2, 3]);
    drop(first);
    let (in_hook_tx, in_hook_rx) = channel::<()>();
    let (release_tx, release_rx) = channel::<()>();
    let in_hook_tx = Mutex::new(Some(in_hook_tx));
    let release_rx = Mutex::new(release_rx);
    std::panic::set_hook(Box::new(move |_| {
        if let Some(tx) = in_hook_tx.lock().unwrap().take() {
            tx.send(()).unwrap();
            let _ = release_rx.lock().unwrap().recv();
        }
    }));
    let panicker = std::thread::spawn(|| panic!("held in the hook"));
    in_hook_rx.recv().unwrap();
    // The other thread is inside the hook now: the workers are forked with
    // the hook's lock taken. They must still start and work.
    let pool = Arc::new(Pool::new(2).unwrap());
    assert_eq!(pool.map(inc, 0..100).unwrap(), (1..101).collect::<Vec<_>>());
    release_tx.send(()).unwrap();
    assert!(panicker.join().is_err());
    pool.close().unwrap();
    pool.join().unwrap();
}
