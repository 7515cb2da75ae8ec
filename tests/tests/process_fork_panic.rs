//! A forked child panics while another thread of the parent is inside the
//! program's panic hook, holding a lock that hook takes (as std's default hook
//! holds the stderr and backtrace locks while it prints). The child's copy of
//! that lock stays held forever: the child must report its panic without
//! running that hook, and exit with code 1. Its own test binary: it sets the
//! program's panic hook before the first `Process::start` wraps it.

use std::sync::mpsc::channel;
use std::sync::Mutex;
use std::time::Duration;

use procshare::Process;

/// The lock the program's hook takes while it reports a panic.
static REPORTING: Mutex<()> = Mutex::new(());

#[test]
fn a_child_panics_while_another_thread_is_in_the_panic_hook() {
    std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    let (in_hook_tx, in_hook_rx) = channel::<()>();
    let (release_tx, release_rx) = channel::<()>();
    let in_hook_tx = Mutex::new(Some(in_hook_tx));
    let release_rx = Mutex::new(release_rx);
    std::panic::set_hook(Box::new(move |_| {
        let _reporting = REPORTING.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = in_hook_tx.lock().unwrap().take() {
            tx.send(()).unwrap();
            let _ = release_rx.lock().unwrap().recv();
        }
    }));
    // The first start wraps the hook above.
    let mut warmup = Process::new(|| {});
    warmup.start().unwrap();
    assert_eq!(warmup.join().unwrap(), 0);

    let panicker = std::thread::spawn(|| panic!("held in the hook"));
    in_hook_rx.recv().unwrap();
    // The other thread is in the hook, holding REPORTING: fork a child that panics.
    let mut child = Process::new(|| panic!("the child's own panic"));
    child.start().unwrap();
    // A hang guard, not a timing assertion: the child needs microseconds.
    let code = child.join_timeout(Duration::from_secs(60)).unwrap();
    if code.is_none() {
        let _ = child.kill();
    }
    release_tx.send(()).unwrap();
    assert!(panicker.join().is_err());
    assert_eq!(code, Some(1), "the child hung in the panic hook");
}
