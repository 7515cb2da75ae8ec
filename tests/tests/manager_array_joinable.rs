//! The manager's array (`manager.Array`) and joinable queue
//! (`manager.JoinableQueue`) over real processes: forked and spawned children
//! see the same objects; the array's indexing and slices are Python's; `join`
//! returns once every task put was done. `test_task_done` is CPython 3.11's
//! `_TestQueue.test_task_done` in its manager flavour (`manager.JoinableQueue()`).

use procshare::{
    ArrayProxy, JoinableQueueProxy, ListProxy, Manager, OpError, Process, StartMethod,
};
use procshare_tests::quiet;
use std::time::Duration;

fn bump((a, i): (ArrayProxy<i64>, i64)) {
    let v = a.get(i).unwrap();
    a.set(i, v + 100).unwrap();
}

#[test]
fn a_child_of_every_start_method_sets_the_same_array() {
    quiet();
    let m = Manager::start().unwrap();
    let a = m.array::<i64>([0, 1, 2]).unwrap();
    for (i, method) in [
        StartMethod::Fork,
        StartMethod::Spawn,
        StartMethod::ForkServer,
    ]
    .into_iter()
    .enumerate()
    {
        let mut p = Process::with_target(bump, (a.clone(), -(i as i64) - 1)).start_method(method);
        p.start().unwrap();
        assert_eq!(p.join().unwrap(), 0);
    }
    assert_eq!(a.to_vec().unwrap(), [100, 101, 102]);
}

#[test]
fn array_indexing_and_slices_are_pythons() {
    quiet();
    let m = Manager::start().unwrap();
    let a = m.array::<f64>([0.0, 1.0, 2.0, 3.0, 4.0]).unwrap(); // Array('d', range(5))
    assert_eq!(a.len().unwrap(), 5);
    assert_eq!(a.get(-2).unwrap(), 3.0);
    let e = a.get(5).unwrap_err();
    assert!(
        matches!(
            e.op_error(),
            Some(OpError::SignedIndexOutOfRange { .. }) | Some(OpError::IndexOutOfRange { .. })
        ),
        "{e}"
    );
    assert!(a.get(-6).is_err());
    assert!(a.set(5, 1.0).is_err());
    assert_eq!(a.slice(Some(-3), None, None).unwrap(), [2.0, 3.0, 4.0]); // a[-3:]
    assert_eq!(a.slice(Some(-9), Some(2), None).unwrap(), [0.0, 1.0]); // a[-9:2]
    assert_eq!(
        a.slice(None, None, Some(-1)).unwrap(),
        [4.0, 3.0, 2.0, 1.0, 0.0]
    ); // a[::-1]
    assert_eq!(a.slice(Some(4), Some(1), None).unwrap(), Vec::<f64>::new()); // a[4:1]
                                                                             // a[::2] = array('d', [7, 8]) is refused: that slice has 3 items. Nothing changes.
    assert!(a.set_slice(None, None, Some(2), [7.0, 8.0]).is_err());
    assert!(a.slice(None, None, Some(0)).is_err()); // slice step cannot be zero
    assert_eq!(a.to_vec().unwrap(), [0.0, 1.0, 2.0, 3.0, 4.0]);
    a.set_slice(None, None, Some(2), [7.0, 8.0, 9.0]).unwrap();
    assert_eq!(a.to_vec().unwrap(), [7.0, 1.0, 8.0, 3.0, 9.0]);
    a.set_slice(Some(1), Some(4), None, [0.5]).unwrap(); // a[1:4] = array('d', [0.5])
    assert_eq!(a.to_vec().unwrap(), [7.0, 0.5, 9.0]);
    // A proxy to an array is not a proxy to a list.
    let token = procshare::internals::wire::encode(&a).unwrap();
    assert!(procshare::internals::wire::decode::<ListProxy<f64>>(&token).is_err());
}

/// `_test_task_done`: `for obj in iter(q.get, None): q.task_done()`, and the
/// number of items done, for the check.
fn task_worker((q, done): (JoinableQueueProxy<Option<u32>>, ListProxy<u32>)) {
    while let Some(obj) = q.get().unwrap() {
        done.append(obj).unwrap();
        q.task_done().unwrap();
    }
}

fn task_done_under(method: StartMethod) {
    quiet();
    let m = Manager::start().unwrap();
    let queue = m.joinable_queue::<Option<u32>>(None).unwrap();
    let done = m.list::<u32>().unwrap();
    let mut workers: Vec<Process> = (0..4)
        .map(|_| {
            Process::with_target(task_worker, (queue.clone(), done.clone()))
                .start_method(method)
                .daemon(true)
        })
        .collect();
    for p in &mut workers {
        p.start().unwrap();
    }
    for i in 0..10 {
        queue.put(Some(i)).unwrap();
    }
    queue.join().unwrap();
    // Every task was done before `join` returned (each worker records the
    // item before its task_done).
    let mut got = done.to_vec().unwrap();
    got.sort_unstable();
    assert_eq!(got, (0..10).collect::<Vec<_>>());
    assert_eq!(queue.unfinished_tasks().unwrap(), 0);
    for _ in &workers {
        queue.put(None).unwrap();
    }
    for p in &mut workers {
        assert_eq!(p.join().unwrap(), 0);
    }
}

#[test]
fn test_task_done() {
    task_done_under(StartMethod::Fork);
}

#[test]
fn test_task_done_spawn_and_forkserver() {
    task_done_under(StartMethod::Spawn);
    task_done_under(StartMethod::ForkServer);
}

#[test]
fn join_waits_for_open_tasks_and_task_done_is_counted() {
    quiet();
    let m = Manager::start().unwrap();
    let q = m.joinable_queue::<u8>(Some(2)).unwrap();
    q.join().unwrap(); // nothing open
    q.put(1).unwrap();
    q.put(2).unwrap();
    assert_eq!(
        q.try_put(3).unwrap_err().op_error(),
        Some(&OpError::Timeout)
    ); // full
    assert_eq!(q.unfinished_tasks().unwrap(), 2);
    assert!(!q.join_timeout(Duration::from_millis(1)).unwrap());
    assert_eq!(q.get().unwrap(), 1);
    q.task_done().unwrap();
    assert!(!q.join_timeout(Duration::from_millis(1)).unwrap());
    assert_eq!(q.get().unwrap(), 2);
    q.task_done().unwrap();
    assert!(q.join_timeout(Duration::from_millis(1)).unwrap());
    let e = q.task_done().unwrap_err(); // ValueError: task_done() called too many times
    assert!(
        e.to_string().contains("task_done() called too many times"),
        "{e}"
    );
    assert_eq!(q.unfinished_tasks().unwrap(), 0);
}
