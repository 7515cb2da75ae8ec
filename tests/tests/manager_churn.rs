//! A long-running manager under connect/drop churn keeps constant file
//! descriptors and threads, in the server and in the client.

use procshare::Manager;
use procshare_tests::quiet;

/// Entries of `/proc/<pid>/<dir>` (open descriptors, or threads).
fn count(pid: i32, dir: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/{dir}"))
        .unwrap()
        .count()
}

/// Wait (by asking the server, which answers only once it has served the
/// previous connections' ends) until the server's counts settle to at most
/// `fds`/`threads`; returns the last counts seen. Connection threads exit
/// asynchronously after the client closes, so a few round trips are allowed.
fn settled(m: &Manager, pid: i32, fds: usize, threads: usize) -> (usize, usize) {
    let mut last = (0, 0);
    for _ in 0..2000 {
        m.ping().unwrap();
        last = (count(pid, "fd"), count(pid, "task"));
        if last.0 <= fds && last.1 <= threads {
            break;
        }
        std::thread::yield_now();
    }
    last
}

#[test]
fn connect_drop_churn_holds_fds_and_threads_constant() {
    quiet();
    let m = Manager::start().unwrap();
    let pid = m.server_pid().unwrap();
    let me = std::process::id() as i32;
    m.ping().unwrap();
    // Warm up once (lazily opened descriptors of this process).
    drop(Manager::connect(m.address().clone(), m.authkey().clone()).unwrap());
    let (fd0, th0) = settled(&m, pid, usize::MAX, usize::MAX);
    let (fd0, th0) = settled(&m, pid, fd0, th0);
    let my_fd0 = count(me, "fd");
    for _ in 0..1000 {
        let c = Manager::connect(m.address().clone(), m.authkey().clone()).unwrap();
        c.ping().unwrap();
        drop(c);
    }
    let my_fd1 = count(me, "fd");
    let (fd1, th1) = settled(&m, pid, fd0, th0);
    eprintln!(
        "server fds {fd0} -> {fd1}, server threads {th0} -> {th1}, client fds {my_fd0} -> {my_fd1}"
    );
    assert!(my_fd1 <= my_fd0, "client fds {my_fd0} -> {my_fd1}");
    assert!(fd1 <= fd0, "server fds {fd0} -> {fd1}");
    assert!(th1 <= th0, "server threads {th0} -> {th1}");
}

#[test]
fn proxies_of_a_dropped_connect_handle_keep_working() {
    quiet();
    let m = Manager::start().unwrap();
    let c = Manager::connect(m.address().clone(), m.authkey().clone()).unwrap();
    let l = c.list_from([1u8, 2]).unwrap();
    drop(c);
    // The proxy holds the connection's endpoint: still usable.
    l.append(3).unwrap();
    assert_eq!(l.to_vec().unwrap(), [1, 2, 3]);
    // And from another thread (a connection of its own).
    let l2 = l.clone();
    std::thread::spawn(move || l2.append(4).unwrap())
        .join()
        .unwrap();
    assert_eq!(l.len().unwrap(), 4);
}
