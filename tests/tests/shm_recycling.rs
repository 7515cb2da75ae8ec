//! Shared memory that a running child may use is not recycled by its parent.
//!
//! A handle passed to a child is often the parent's last one (moved into the
//! arguments, dropped by `start`). The arena must not hand that memory to the
//! parent's next object while the child runs: the child would see the new
//! object's state as its own (seen: a grandchild's parent, blocked on an
//! `Event` nobody sets, woke up because its event's memory had become
//! another test's event, which was set).

use procshare::{Event, Process, Queue, StartMethod};
use procshare_tests::quiet;

fn report((never, go, q): (Event, Event, Queue<bool>)) {
    go.wait();
    q.put(&never.is_set()).unwrap();
}

#[test]
fn memory_a_running_child_uses_is_not_recycled() {
    quiet();
    for m in [
        StartMethod::Fork,
        StartMethod::Spawn,
        StartMethod::ForkServer,
    ] {
        let never = Event::new().unwrap();
        let go = Event::new().unwrap();
        let q = Queue::new().unwrap();
        // `never` is moved into the arguments: after `start` the parent has
        // no handle on it, only the child has.
        let mut p = Process::with_target(report, (never, go.clone(), q.clone())).start_method(m);
        p.start().unwrap();
        // New objects of the same size: a recycled block would be among them.
        let others: Vec<Event> = (0..64).map(|_| Event::new().unwrap()).collect();
        for e in &others {
            e.set();
        }
        go.set();
        let seen_set = q.get().unwrap();
        assert_eq!(p.join().unwrap(), 0, "{m}");
        assert!(
            !seen_set,
            "{m}: the child's event was recycled into one of the parent's new events"
        );
    }
}
