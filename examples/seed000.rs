//! Seed 000 ("Sharing Global Variables in Python using Multiprocessing"): the
//! two programs of the document, step for step, over real processes.
//!
//! 1. [`plain_list`]: two processes append five words each to a *plain* global
//!    list; each appends to its own copy (fork copies memory), so the parent
//!    prints `[]`.
//! 2. [`manager_list`]: the same with `manager.list()`: the parent prints the
//!    ten words. The document shows them in document order, which Python
//!    prints only when process 1 finishes before process 2 appends; any
//!    interleaving that keeps each worker's five words in order is correct
//!    (the scenario runner normalizes).
//!
//! Each function returns the lines the program prints.

use procshare::Process;
use procshare::{ListProxy, Manager};
use std::sync::Mutex;

const INPUT_LIST_ONE: [&str; 5] = ["one", "two", "three", "four", "five"];
const INPUT_LIST_TWO: [&str; 5] = ["six", "seven", "eight", "nine", "ten"];

/// `final_list = []`: a plain global, as in the document's first program.
static FINAL_LIST: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Python's `repr` of a `str`: single quotes unless the text contains a single
/// quote and no double quote; backslash escapes for quotes, `\\`, `\n`, `\r`,
/// `\t` and other control characters.
pub fn py_str_repr(s: &str) -> String {
    let q = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(q);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == q => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(q);
    out
}

/// Python's `print(list_of_str)` text: `['a', 'b']`.
pub fn py_list_repr<S: AsRef<str>>(items: &[S]) -> String {
    let inner: Vec<String> = items.iter().map(|s| py_str_repr(s.as_ref())).collect();
    format!("[{}]", inner.join(", "))
}

fn start_and_join(mut p1: Process, mut p2: Process) {
    // process1.start(); process2.start(); process1.join(); process2.join()
    p1.start().expect("start process1");
    p2.start().expect("start process2");
    let c1 = p1.join().expect("join process1");
    let c2 = p2.join().expect("join process2");
    assert_eq!((c1, c2), (0, 0), "a worker failed");
}

/// `def worker(data): for item in data: final_list.append(item)` — the
/// child's own copy of the plain global.
fn worker((data,): (Vec<String>,)) {
    for item in data {
        FINAL_LIST
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(item);
    }
}

/// The document's first program: a plain global list; the parent prints `[]`.
/// The workers are plain functions with their arguments, so they run under
/// whichever start method is set ([`procshare::set_start_method`]): under
/// fork each appends to its copy of the parent's list, under spawn and
/// forkserver to a list of its own; the parent's list stays empty either way.
pub fn plain_list() -> Vec<String> {
    let words = |w: [&str; 5]| (w.iter().map(|s| s.to_string()).collect::<Vec<_>>(),);
    let process1 = Process::with_target(worker, words(INPUT_LIST_ONE));
    let process2 = Process::with_target(worker, words(INPUT_LIST_TWO));
    start_and_join(process1, process2);
    let final_list = FINAL_LIST.lock().unwrap_or_else(|p| p.into_inner()).clone();
    vec![py_list_repr(&final_list)]
}

/// `def worker(data, final_list): for item in data: final_list.append(item)`
/// — the document's fix: the proxy is an argument, so the workers run under
/// whichever start method is set (a spawned or forkserver child reconnects to
/// the manager with the proxy's token, as CPython's does).
fn manager_worker((final_list, data): (ListProxy<String>, Vec<String>)) {
    for item in data {
        final_list.append(item).expect("append");
    }
}

/// The document's fix: `manager.list()`; the parent prints the ten words.
pub fn manager_list() -> Vec<String> {
    let manager = Manager::start().expect("start the manager");
    let final_list = manager.list::<String>().expect("manager.list()");
    let args = |w: [&str; 5]| {
        let words = w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        (final_list.clone(), words)
    };
    let process1 = Process::with_target(manager_worker, args(INPUT_LIST_ONE));
    let process2 = Process::with_target(manager_worker, args(INPUT_LIST_TWO));
    start_and_join(process1, process2);
    let items = final_list.to_vec().expect("read the list");
    vec![py_list_repr(&items)]
}

/// Does `line` print the ten words with each worker's five in order (any interleaving)?
pub fn is_valid_manager_output(line: &str) -> bool {
    let Some(inner) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) else {
        return false;
    };
    let words: Vec<&str> = inner.split(", ").map(|w| w.trim_matches('\'')).collect();
    if words.len() != 10 {
        return false;
    }
    let one: Vec<&str> = words
        .iter()
        .copied()
        .filter(|w| INPUT_LIST_ONE.contains(w))
        .collect();
    let two: Vec<&str> = words
        .iter()
        .copied()
        .filter(|w| INPUT_LIST_TWO.contains(w))
        .collect();
    one == INPUT_LIST_ONE && two == INPUT_LIST_TWO
}

/// Runs both programs of seed 000: the plain list, then the manager list. (`cargo run --example seed000`; the same code is the scenario
/// that `cargo run -p procshare-tests --bin scenarios` and the snapshot tests run.)
#[allow(dead_code)] // unused where this file is a module of `procshare_tests`
fn main() {
    for line in plain_list().into_iter().chain(manager_list()) {
        procshare_tests::say(&line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repr_like_python() {
        assert_eq!(py_list_repr(&["one", "two"]), "['one', 'two']");
        assert_eq!(py_list_repr::<&str>(&[]), "[]");
        assert_eq!(py_str_repr("it's"), "\"it's\"");
        assert_eq!(py_str_repr("a'\"b"), "'a\\'\"b'");
        assert_eq!(py_str_repr("a\nb\\"), "'a\\nb\\\\'");
    }

    #[test]
    fn validity_check_can_fail() {
        assert!(is_valid_manager_output(
            "['one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine', 'ten']"
        ));
        assert!(is_valid_manager_output(
            "['six', 'one', 'two', 'seven', 'three', 'four', 'eight', 'five', 'nine', 'ten']"
        ));
        assert!(!is_valid_manager_output(
            "['two', 'one', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine', 'ten']"
        ));
        assert!(!is_valid_manager_output("['one', 'two']"));
        assert!(!is_valid_manager_output("[]"));
    }
}
