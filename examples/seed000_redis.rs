//! Seed 000's manager program ("Sharing Global Variables in Python using
//! Multiprocessing") with its list on Redis: the one-line change from
//! `Manager::start()` to `Manager::redis(url, namespace)`. Two worker
//! processes append five words each to the shared list; the parent prints
//! the ten words (each worker's five in order, in any interleaving).
//!
//! `PROCSHARE_REDIS_URL` names the server (default `redis://127.0.0.1:6379/`):
//!
//! ```text
//! redis-server --port 6379 --save '' --appendonly no --daemonize yes
//! cargo run --example seed000_redis
//! ```

use procshare::{ListProxy, Manager, Process, StartMethod};
use procshare_tests::seed000::py_list_repr;

const INPUT_LIST_ONE: [&str; 5] = ["one", "two", "three", "four", "five"];
const INPUT_LIST_TWO: [&str; 5] = ["six", "seven", "eight", "nine", "ten"];

/// `def worker(data, final_list): for item in data: final_list.append(item)`.
fn manager_worker((final_list, data): (ListProxy<String>, Vec<String>)) {
    for item in data {
        final_list.append(item).expect("append");
    }
}

/// The document's fix with the list on Redis under `namespace`, the workers
/// started by `method`; returns the line the parent prints. The namespace's
/// keys are deleted afterwards.
pub(crate) fn manager_list_redis(url: &str, namespace: &str, method: StartMethod) -> Vec<String> {
    // The one line that differs from seed 000's `Manager::start()`:
    let manager = Manager::redis(url, namespace).expect("reach the Redis server");
    let final_list = manager.list::<String>().expect("manager.list()");
    let args = |w: [&str; 5]| {
        let words = w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        (final_list.clone(), words)
    };
    let mut process1 =
        Process::with_target(manager_worker, args(INPUT_LIST_ONE)).start_method(method);
    let mut process2 =
        Process::with_target(manager_worker, args(INPUT_LIST_TWO)).start_method(method);
    process1.start().expect("start process1");
    process2.start().expect("start process2");
    let codes = (
        process1.join().expect("join"),
        process2.join().expect("join"),
    );
    assert_eq!(codes, (0, 0), "a worker failed");
    let items = final_list.to_vec().expect("read the list");
    Manager::redis_clear(url, namespace).expect("clear the namespace");
    vec![py_list_repr(&items)]
}

#[allow(dead_code)] // unused where this file is a module of a test
fn main() {
    procshare::set_fork_warning(false);
    let url = std::env::var("PROCSHARE_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_string());
    let ns = format!("seed000-{}", std::process::id());
    for line in manager_list_redis(&url, &ns, procshare::get_start_method()) {
        procshare_tests::say(&line);
    }
}
