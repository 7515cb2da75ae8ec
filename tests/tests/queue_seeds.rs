//! Seed 002's and seed 003's queue programs, run over real processes.

#[test]
fn seed002_queue_child_keeps_its_copy() {
    std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    let lines = procshare_tests::scenarios::seed002_queue::run();
    assert_eq!(lines.len(), 5, "{lines:?}");
    assert_eq!(
        lines[0],
        format!("This machine has {} CPUs", procshare::cpu_count())
    );
    let parent_id = lines[1]
        .strip_prefix("Parent process puts item on queue with id ")
        .expect("parent id line");
    let child = lines[2]
        .strip_prefix("Child process received var = {'key': 'value'} with id ")
        .and_then(|s| s.strip_suffix(" from queue"))
        .expect("child line");
    // Two distinct objects: the child got a copy.
    assert_ne!(parent_id, child);
    assert_eq!(
        lines[3],
        "Parent process changed the enqueued item to {'key': 'new-value'}"
    );
    assert_eq!(
        lines[4],
        "After changes by parent process var in child process = {'key': 'value'}"
    );
}

#[test]
fn seed003_queue_every_item_processed_once_in_whole_lines() {
    std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    let lines = procshare_tests::scenarios::seed003_queue::run();
    assert_eq!(lines.len(), 10, "{lines:?}");
    let mut seen = vec![0; 10];
    for l in &lines {
        let rest = l.strip_prefix("Processed ").expect("whole line");
        let (i, r) = rest.split_once(" Result ").expect("whole line");
        let (i, r): (usize, usize) = (i.parse().expect("item"), r.parse().expect("result"));
        assert_eq!(r, 2 * i, "{l}");
        seen[i] += 1;
    }
    assert_eq!(seen, vec![1; 10], "{lines:?}");
}
