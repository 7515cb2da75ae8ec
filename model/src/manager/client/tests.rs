//! `wait_for`'s loops on a scripted server: the predicate decides, and a
//! wait is asked for only while it is false.

use super::*;
use std::cell::RefCell;

/// A server that lets every condition wait be notified at once, and records
/// the operations asked for.
#[derive(Default)]
struct Notifying(RefCell<Vec<Op>>);

impl Requester for Notifying {
    type Error = ClientError;
    fn request(&self, op: Op) -> Result<Response, ClientError> {
        let r = match op {
            Op::CondEnter => Response::Arrived(1, 1),
            _ => Response::Bool(true),
        };
        self.0.borrow_mut().push(op);
        Ok(r)
    }
}

/// A predicate false `n` times, then true.
fn true_after(n: u32) -> impl FnMut() -> Result<bool, ClientError> {
    let mut calls = 0;
    move || {
        calls += 1;
        Ok(calls > n)
    }
}

#[test]
fn wait_for_waits_until_the_predicate_holds() {
    let c = Notifying::default();
    condition_wait_for(&c, true_after(2)).unwrap();
    assert_eq!(c.0.borrow().len(), 4, "two waits (enter, sleep each)");
}

#[test]
fn wait_for_timeout_returns_the_predicates_last_value() {
    let c = Notifying::default();
    let long = std::time::Duration::from_secs(3600);
    assert!(condition_wait_for_timeout(&c, true_after(1), long).unwrap());
    assert_eq!(c.0.borrow().len(), 2, "one wait");
    // No time left: the predicate's (false) answer, without waiting.
    let c = Notifying::default();
    let zero = std::time::Duration::ZERO;
    assert!(!condition_wait_for_timeout(&c, true_after(5), zero).unwrap());
    assert!(c.0.borrow().is_empty());
}
