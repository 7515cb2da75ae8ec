//! Checks a history dumped by a history test (`PROCSHARE_HISTORY_DUMP=dir`)
//! against a specification and prints the verdict and the checker's time:
//! the checker's benchmark on a fixed history.
//!
//! ```text
//! cargo run --release -p procshare-tests --bin history_check -- list 'dir/manager list-123.txt'
//! ```
//!
//! Specifications: value, lock, semaphore2, queue, list, dict, array,
//! rlock, event, joinable. `lock`/`rlock` take the killed processes as a
//! third argument (`0,2`; default: those with an indeterminate op).

use std::time::Instant;

use procshare_tests::history::checker::{check, Op, Spec};
use procshare_tests::history::load;
use procshare_tests::history::manager_specs::{DictSpec, ListSpec};
use procshare_tests::history::queue_specs::JoinableSpec;
use procshare_tests::history::specs::{LockSpec, QueueSpec, SemaphoreSpec, ValueSpec};
use procshare_tests::history::sync_specs::{ArraySpec, EventSpec, RLockSpec};

fn time<S: Spec>(spec: &S, h: &[Op]) {
    let t = Instant::now();
    let r = check(spec, h);
    let took = t.elapsed();
    match r {
        Ok(s) => println!(
            "linearizable: {} ops ({} indeterminate, {} objects), checked in {took:?}",
            s.ops, s.pending, s.partitions
        ),
        Err(cx) => println!("{cx}\nchecked in {took:?}"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: history_check SPEC FILE [KILLED]");
        std::process::exit(2);
    }
    let text = std::fs::read_to_string(&args[2]).expect("read the history");
    let h = load(&text);
    let killed: Vec<u32> = match args.get(3) {
        Some(s) => s
            .split(',')
            .map(|p| p.parse().expect("a process"))
            .collect(),
        None => {
            let mut k: Vec<u32> = h
                .iter()
                .filter(|o| o.ret.is_none())
                .map(|o| o.proc)
                .collect();
            k.dedup();
            k
        }
    };
    match args[1].as_str() {
        "value" => time(&ValueSpec::default(), &h),
        "lock" => time(&LockSpec { killed }, &h),
        "semaphore2" => time(&SemaphoreSpec { initial: 2 }, &h),
        "queue" => time(&QueueSpec::default(), &h),
        "list" => time(&ListSpec::default(), &h),
        "dict" => time(&DictSpec::default(), &h),
        "array" => time(&ArraySpec::default(), &h),
        "rlock" => time(
            &RLockSpec {
                killed,
                ..RLockSpec::default()
            },
            &h,
        ),
        "event" => time(&EventSpec::default(), &h),
        "joinable" => time(&JoinableSpec::default(), &h),
        s => {
            eprintln!("unknown specification {s}");
            std::process::exit(2);
        }
    }
}
