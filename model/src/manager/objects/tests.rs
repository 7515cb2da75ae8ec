//! The sequential semantics of [`apply`], one object and one operation at a
//! time: each answer, whether it changed the object, and the state after it
//! (a list's version included), compared exactly. The checks drive `apply`
//! through the server under shuttle and loom; these pin down what a single
//! step does, including the branches no check reaches (bounds, foreign
//! owners, `Wait::No`, a reset barrier's generations).

use super::*;

const ME: ConnId = 1;
const OTHER: ConnId = 2;

fn b(x: u8) -> Bytes {
    vec![x]
}

fn bs(xs: &[u8]) -> Vec<Bytes> {
    xs.iter().map(|&x| b(x)).collect()
}

fn list(xs: &[u8]) -> Obj {
    Obj::List(bs(xs), 0)
}

/// A list's items and version.
fn list_state(o: &Obj) -> (Vec<Bytes>, u64) {
    match o {
        Obj::List(v, ver) => (v.clone(), *ver),
        o => panic!("not a list: {o:?}"),
    }
}

fn ok_changed() -> Step {
    Step::Done(Response::Ok, true)
}

fn error(e: OpError) -> Step {
    Step::Done(Response::Err(e), false)
}

// ----- helpers -----

#[test]
fn at_is_an_index_below_len() {
    assert_eq!(at(0, 0), None);
    assert_eq!(at(0, 1), Some(0));
    assert_eq!(at(1, 2), Some(1));
    assert_eq!(at(3, 5), Some(3));
    assert_eq!(at(2, 2), None);
    assert_eq!(at(5, 2), None);
    assert_eq!(at(u64::MAX, 5), None);
}

#[test]
fn signed_at_counts_negative_indices_from_the_end() {
    assert_eq!(signed_at(0, 3), Some(0));
    assert_eq!(signed_at(1, 3), Some(1));
    assert_eq!(signed_at(2, 3), Some(2));
    assert_eq!(signed_at(3, 3), None);
    assert_eq!(signed_at(-1, 3), Some(2));
    assert_eq!(signed_at(-3, 3), Some(0));
    assert_eq!(signed_at(-2, 5), Some(3));
    assert_eq!(signed_at(-4, 3), None);
    assert_eq!(signed_at(0, 0), None);
    assert_eq!(signed_at(-1, 0), None);
    assert_eq!(signed_at(i64::MIN, 3), None);
    assert_eq!(signed_at(i64::MAX, 3), None);
}

#[test]
fn clamp_is_pythons_slice_clamp() {
    assert_eq!(clamp(1, 3, 5), (1, 3));
    assert_eq!(clamp(2, 4, 5), (2, 4));
    assert_eq!(clamp(0, 9, 5), (0, 5));
    assert_eq!(clamp(4, 2, 5), (4, 4));
    assert_eq!(clamp(7, 9, 5), (5, 5));
    assert_eq!(clamp(u64::MAX, u64::MAX, 3), (3, 3));
}

#[test]
fn n_of_is_notifys_count_or_all() {
    assert_eq!(n_of(&Op::Notify(3)), 3);
    assert_eq!(n_of(&Op::Notify(0)), 0);
    assert_eq!(n_of(&Op::NotifyAll), u64::MAX);
}

#[test]
fn timeout_answers_and_waits_of_blocking_ops() {
    let w = Wait::Micros(7);
    assert_eq!(on_timeout(&Op::Acquire(w)), Response::Bool(false));
    assert_eq!(on_timeout(&Op::EventWait(w)), Response::Bool(false));
    for op in [Op::QGet(w), Op::Put(b(1), w), Op::BarrierAwait(0, w)] {
        assert_eq!(on_timeout(&op), Response::Err(OpError::Timeout), "{op:?}");
    }
    for op in [
        Op::Acquire(w),
        Op::EventWait(w),
        Op::Put(b(1), w),
        Op::QGet(w),
        Op::CondSleep(1, 1, w),
        Op::CondReacquire(1, 1, w),
        Op::BarrierAwait(0, w),
        Op::Joinable(super::super::joinable::JoinableOp::Join(w)),
    ] {
        assert_eq!(wait_of(&op), w, "{op:?}");
    }
    assert_eq!(wait_of(&Op::Acquire(Wait::Forever)), Wait::Forever);
    assert_eq!(wait_of(&Op::Len), Wait::No);
}

// ----- the ordered map -----

#[test]
fn ordered_map_keeps_insertion_order_and_answers_old_values() {
    let mut m = OrderedMap::default();
    assert_eq!(m.len(), 0);
    assert_eq!(m.insert(b(3), b(30)), None);
    assert_eq!(m.insert(b(1), b(10)), None);
    assert_eq!(m.insert(b(2), b(20)), None);
    assert_eq!(m.len(), 3);
    assert_eq!(m.get(&b(1)), Some(&b(10)));
    assert_eq!(m.get(&b(9)), None);
    // Replacing keeps the key's place.
    assert_eq!(m.insert(b(3), b(31)), Some(b(30)));
    assert_eq!(m.len(), 3);
    let pairs: Vec<_> = m.pairs().cloned().collect();
    assert_eq!(pairs, vec![(b(3), b(31)), (b(1), b(10)), (b(2), b(20))]);
    assert_eq!(m.remove(&b(1)), Some(b(10)));
    assert_eq!(m.remove(&b(1)), None);
    assert_eq!(m.len(), 2);
    // A key inserted again goes last.
    assert_eq!(m.insert(b(1), b(11)), None);
    let keys: Vec<_> = m.pairs().map(|(k, _)| k.clone()).collect();
    assert_eq!(keys, bs(&[3, 2, 1]));
    m.clear();
    assert_eq!(m.len(), 0);
    assert_eq!(m.pairs().count(), 0);
    assert_eq!(m.get(&b(3)), None);
}

// ----- lists -----

#[test]
fn list_mutations_answer_change_and_bump_the_version_once() {
    let mut o = list(&[]);
    let cases: Vec<(Op, Step, &[u8])> = vec![
        (Op::Append(b(1)), ok_changed(), &[1]),
        (Op::Extend(bs(&[2, 3])), ok_changed(), &[1, 2, 3]),
        (Op::Insert(1, b(4)), ok_changed(), &[1, 4, 2, 3]),
        (Op::Insert(99, b(5)), ok_changed(), &[1, 4, 2, 3, 5]),
        (
            Op::Pop(None),
            Step::Done(Response::Item(b(5)), true),
            &[1, 4, 2, 3],
        ),
        (
            Op::Pop(Some(1)),
            Step::Done(Response::Item(b(4)), true),
            &[1, 2, 3],
        ),
        (
            Op::Delete(0),
            Step::Done(Response::Item(b(1)), true),
            &[2, 3],
        ),
        (Op::Extend(bs(&[2, 7])), ok_changed(), &[2, 3, 2, 7]),
        (Op::Remove(b(2)), ok_changed(), &[3, 2, 7]),
        (Op::Set(1, b(8)), ok_changed(), &[3, 8, 7]),
        (Op::Reverse, ok_changed(), &[7, 8, 3]),
        (Op::SetRange(1, 2, bs(&[5, 6])), ok_changed(), &[7, 5, 6, 3]),
        (Op::SetAt(-1, b(9)), ok_changed(), &[7, 5, 6, 9]),
        (
            Op::DeleteAt(-4),
            Step::Done(Response::Item(b(7)), true),
            &[5, 6, 9],
        ),
        (
            Op::PopAt(1),
            Step::Done(Response::Item(b(6)), true),
            &[5, 9],
        ),
        (Op::InsertAt(-1, b(4)), ok_changed(), &[5, 4, 9]),
        (Op::InsertAt(-9, b(3)), ok_changed(), &[3, 5, 4, 9]),
        (Op::InsertAt(2, b(2)), ok_changed(), &[3, 5, 2, 4, 9]),
        (Op::InsertAt(99, b(1)), ok_changed(), &[3, 5, 2, 4, 9, 1]),
        (Op::InsertAt(0, b(0)), ok_changed(), &[0, 3, 5, 2, 4, 9, 1]),
        (Op::ReplaceIf(20, bs(&[6])), ok_changed(), &[6]),
        (Op::Clear, ok_changed(), &[]),
    ];
    for (i, (op, want, after)) in cases.into_iter().enumerate() {
        let name = format!("{op:?}");
        assert_eq!(apply(&mut o, ME, op), want, "{name}");
        assert_eq!(list_state(&o), (bs(after), i as u64 + 1), "{name}");
    }
}

#[test]
fn list_reads_answer_without_a_change() {
    let mut o = Obj::List(bs(&[4, 5, 4, 6]), 7);
    let cases = vec![
        (Op::Index(b(4)), Response::Usize(0)),
        (Op::Index(b(6)), Response::Usize(3)),
        (Op::Count(b(4)), Response::Usize(2)),
        (Op::Count(b(6)), Response::Usize(1)),
        (Op::Count(b(9)), Response::Usize(0)),
        (Op::Get(0), Response::Item(b(4))),
        (Op::Get(3), Response::Item(b(6))),
        (Op::GetAt(-1), Response::Item(b(6))),
        (Op::GetAt(1), Response::Item(b(5))),
        (Op::Snapshot, Response::Versioned(7, bs(&[4, 5, 4, 6]))),
        (Op::GetRange(1, 3), Response::Items(bs(&[5, 4]))),
        (Op::GetRange(3, 1), Response::Items(vec![])),
        (Op::Len, Response::Usize(4)),
    ];
    for (op, want) in cases {
        let name = format!("{op:?}");
        assert_eq!(apply(&mut o, ME, op), Step::Done(want, false), "{name}");
        assert_eq!(list_state(&o), (bs(&[4, 5, 4, 6]), 7), "{name}");
    }
}

#[test]
fn list_errors_leave_the_list_and_its_version() {
    let mut o = Obj::List(bs(&[4, 5]), 3);
    let oor = |index, len| error(OpError::IndexOutOfRange { index, len });
    let soor = |index, len| error(OpError::SignedIndexOutOfRange { index, len });
    let cases = vec![
        (Op::Pop(Some(2)), oor(2, 2)),
        (Op::Delete(7), oor(7, 2)),
        (Op::Get(2), oor(2, 2)),
        (Op::Set(2, b(1)), oor(2, 2)),
        (Op::Remove(b(9)), error(OpError::ValueNotInList)),
        (Op::Index(b(9)), error(OpError::ValueNotInList)),
        (Op::ReplaceIf(2, bs(&[1])), error(OpError::Conflict)),
        (Op::ReplaceIf(4, bs(&[1])), error(OpError::Conflict)),
        (Op::GetAt(2), oor(2, 2)),
        (Op::GetAt(-3), soor(-3, 2)),
        (Op::SetAt(-3, b(1)), soor(-3, 2)),
        (Op::DeleteAt(2), oor(2, 2)),
        (Op::PopAt(-3), soor(-3, 2)),
    ];
    for (op, want) in cases {
        let name = format!("{op:?}");
        assert_eq!(apply(&mut o, ME, op), want, "{name}");
        assert_eq!(list_state(&o), (bs(&[4, 5]), 3), "{name}");
    }
    let mut empty = list(&[]);
    assert_eq!(apply(&mut empty, ME, Op::Pop(None)), oor(0, 0));
    assert_eq!(list_state(&empty), (vec![], 0));
}

#[test]
fn a_wrong_kind_names_the_op() {
    let mut o = Obj::Value(b(1));
    assert_eq!(
        apply(&mut o, ME, Op::Append(b(2))),
        error(OpError::WrongType {
            found: Kind::Value,
            op: "Append".into()
        })
    );
    let mut l = list(&[1]);
    assert_eq!(
        apply(&mut l, ME, Op::EventSet),
        error(OpError::WrongType {
            found: Kind::List,
            op: "EventSet".into()
        })
    );
}

// ----- dicts, values, namespaces -----

#[test]
fn dict_operations() {
    let mut o = Obj::new(Init::Dict(vec![
        (b(1), b(10)),
        (b(2), b(20)),
        (b(1), b(11)),
    ]))
    .unwrap();
    assert_eq!(o.kind(), Kind::Dict);
    let d = |o: &mut Obj, op| apply(o, ME, op);
    assert_eq!(d(&mut o, Op::Len), Step::Done(Response::Usize(2), false));
    assert_eq!(
        d(&mut o, Op::DictGet(b(1))),
        Step::Done(Response::MaybeItem(Some(b(11))), false)
    );
    assert_eq!(
        d(&mut o, Op::DictGet(b(9))),
        Step::Done(Response::MaybeItem(None), false)
    );
    assert_eq!(
        d(&mut o, Op::DictItem(b(2))),
        Step::Done(Response::Item(b(20)), false)
    );
    assert_eq!(d(&mut o, Op::DictItem(b(9))), error(OpError::KeyNotFound));
    assert_eq!(
        d(&mut o, Op::DictContains(b(2))),
        Step::Done(Response::Bool(true), false)
    );
    assert_eq!(
        d(&mut o, Op::DictContains(b(9))),
        Step::Done(Response::Bool(false), false)
    );
    assert_eq!(
        d(&mut o, Op::DictInsert(b(3), b(30))),
        Step::Done(Response::MaybeItem(None), true)
    );
    assert_eq!(
        d(&mut o, Op::DictInsert(b(2), b(21))),
        Step::Done(Response::MaybeItem(Some(b(20))), true)
    );
    assert_eq!(
        d(&mut o, Op::DictKeys),
        Step::Done(Response::Items(bs(&[1, 2, 3])), false)
    );
    assert_eq!(
        d(&mut o, Op::DictValues),
        Step::Done(Response::Items(bs(&[11, 21, 30])), false)
    );
    assert_eq!(
        d(&mut o, Op::DictRemove(b(9))),
        Step::Done(Response::MaybeItem(None), false)
    );
    assert_eq!(
        d(&mut o, Op::DictRemove(b(1))),
        Step::Done(Response::MaybeItem(Some(b(11))), true)
    );
    assert_eq!(
        d(&mut o, Op::DictPop(b(2))),
        Step::Done(Response::Item(b(21)), true)
    );
    assert_eq!(d(&mut o, Op::DictPop(b(2))), error(OpError::KeyNotFound));
    assert_eq!(
        d(&mut o, Op::DictSetDefault(b(3), b(99))),
        Step::Done(Response::Item(b(30)), false)
    );
    assert_eq!(
        d(&mut o, Op::DictSetDefault(b(4), b(40))),
        Step::Done(Response::Item(b(40)), true)
    );
    assert_eq!(
        d(&mut o, Op::DictUpdate(vec![(b(5), b(50)), (b(3), b(31))])),
        ok_changed()
    );
    assert_eq!(
        d(&mut o, Op::DictItems),
        Step::Done(
            Response::Pairs(vec![(b(3), b(31)), (b(4), b(40)), (b(5), b(50))]),
            false
        )
    );
    assert_eq!(d(&mut o, Op::Clear), ok_changed());
    assert_eq!(d(&mut o, Op::Len), Step::Done(Response::Usize(0), false));
    assert_eq!(
        d(&mut o, Op::DictItems),
        Step::Done(Response::Pairs(vec![]), false)
    );
}

#[test]
fn value_and_namespace_operations() {
    let mut v = Obj::new(Init::Value(b(1))).unwrap();
    assert_eq!(
        apply(&mut v, ME, Op::ValueGet),
        Step::Done(Response::Item(b(1)), false)
    );
    assert_eq!(apply(&mut v, ME, Op::ValueSet(b(2))), ok_changed());
    assert_eq!(
        apply(&mut v, ME, Op::ValueGet),
        Step::Done(Response::Item(b(2)), false)
    );
    let mut n = Obj::new(Init::Namespace).unwrap();
    let missing = |s: &str| error(OpError::AttributeNotFound(s.into()));
    assert_eq!(apply(&mut n, ME, Op::NsGet("a".into())), missing("a"));
    assert_eq!(apply(&mut n, ME, Op::NsSet("b".into(), b(2))), ok_changed());
    assert_eq!(apply(&mut n, ME, Op::NsSet("a".into(), b(1))), ok_changed());
    assert_eq!(
        apply(&mut n, ME, Op::NsGet("a".into())),
        Step::Done(Response::Item(b(1)), false)
    );
    assert_eq!(
        apply(&mut n, ME, Op::Len),
        Step::Done(Response::Usize(2), false)
    );
    assert_eq!(
        apply(&mut n, ME, Op::NsItems),
        Step::Done(
            Response::Attrs(vec![("a".into(), b(1)), ("b".into(), b(2))]),
            false
        )
    );
    assert_eq!(apply(&mut n, ME, Op::NsDel("a".into())), ok_changed());
    assert_eq!(apply(&mut n, ME, Op::NsDel("a".into())), missing("a"));
}

// ----- locks, semaphores, events, queues -----

#[test]
fn a_lock_blocks_or_refuses_others_until_released() {
    let mut l = Obj::new(Init::Lock).unwrap();
    let yes = Step::Done(Response::Bool(true), true);
    let no = Step::Done(Response::Bool(false), false);
    assert_eq!(apply(&mut l, ME, Op::Locked), no);
    assert_eq!(apply(&mut l, ME, Op::Release), error(OpError::NotOwner));
    assert_eq!(apply(&mut l, ME, Op::Acquire(Wait::No)), yes);
    assert!(matches!(l, Obj::Lock(Some(ME))));
    assert_eq!(
        apply(&mut l, ME, Op::Locked),
        Step::Done(Response::Bool(true), false)
    );
    assert_eq!(apply(&mut l, OTHER, Op::Acquire(Wait::No)), no);
    assert_eq!(
        apply(&mut l, OTHER, Op::Acquire(Wait::Forever)),
        Step::Block
    );
    assert_eq!(
        apply(&mut l, OTHER, Op::Acquire(Wait::Micros(5))),
        Step::Block
    );
    assert_eq!(apply(&mut l, ME, Op::Release), ok_changed());
    assert_eq!(apply(&mut l, OTHER, Op::Acquire(Wait::Forever)), yes);
    assert!(matches!(l, Obj::Lock(Some(OTHER))));
}

#[test]
fn an_rlock_counts_its_holders_depth() {
    for init in [Init::RLock, Init::Condition] {
        let mut l = Obj::new(init).unwrap();
        let yes = Step::Done(Response::Bool(true), true);
        assert_eq!(apply(&mut l, ME, Op::Release), error(OpError::NotOwner));
        assert_eq!(apply(&mut l, ME, Op::Acquire(Wait::No)), yes);
        assert_eq!(apply(&mut l, ME, Op::Acquire(Wait::No)), yes);
        assert_eq!(apply(&mut l, ME, Op::Acquire(Wait::Forever)), yes);
        assert_eq!(
            apply(&mut l, OTHER, Op::Acquire(Wait::No)),
            Step::Done(Response::Bool(false), false)
        );
        assert_eq!(
            apply(&mut l, OTHER, Op::Acquire(Wait::Forever)),
            Step::Block
        );
        assert_eq!(apply(&mut l, OTHER, Op::Release), error(OpError::NotOwner));
        let owner = |l: &Obj| match l {
            Obj::RLock(h) => *h,
            Obj::Condition(c) => c.owner,
            o => panic!("{o:?}"),
        };
        assert_eq!(owner(&l), Some((ME, 3)));
        assert_eq!(apply(&mut l, ME, Op::Release), ok_changed());
        assert_eq!(owner(&l), Some((ME, 2)));
        assert_eq!(apply(&mut l, ME, Op::Release), ok_changed());
        assert_eq!(
            apply(&mut l, ME, Op::Locked),
            Step::Done(Response::Bool(true), false)
        );
        assert_eq!(apply(&mut l, ME, Op::Release), ok_changed());
        assert_eq!(owner(&l), None);
        assert_eq!(
            apply(&mut l, ME, Op::Locked),
            Step::Done(Response::Bool(false), false)
        );
        assert_eq!(apply(&mut l, ME, Op::Release), error(OpError::NotOwner));
        assert_eq!(apply(&mut l, OTHER, Op::Acquire(Wait::No)), yes);
        assert_eq!(owner(&l), Some((OTHER, 1)));
    }
}

#[test]
fn a_semaphore_counts_and_its_bound_refuses_over_release() {
    let mut s = Obj::new(Init::Semaphore {
        value: 1,
        bound: Some(2),
    })
    .unwrap();
    let value = |s: &mut Obj| apply(s, ME, Op::SemValue);
    let yes = Step::Done(Response::Bool(true), true);
    assert_eq!(value(&mut s), Step::Done(Response::Usize(1), false));
    assert_eq!(apply(&mut s, ME, Op::Release), ok_changed());
    assert_eq!(value(&mut s), Step::Done(Response::Usize(2), false));
    assert_eq!(apply(&mut s, ME, Op::Release), error(OpError::OverRelease));
    assert_eq!(value(&mut s), Step::Done(Response::Usize(2), false));
    assert_eq!(apply(&mut s, ME, Op::Acquire(Wait::No)), yes);
    assert_eq!(value(&mut s), Step::Done(Response::Usize(1), false));
    assert_eq!(apply(&mut s, OTHER, Op::Acquire(Wait::Forever)), yes);
    assert_eq!(value(&mut s), Step::Done(Response::Usize(0), false));
    assert_eq!(
        apply(&mut s, ME, Op::Acquire(Wait::No)),
        Step::Done(Response::Bool(false), false)
    );
    assert_eq!(apply(&mut s, ME, Op::Acquire(Wait::Forever)), Step::Block);
    assert_eq!(apply(&mut s, ME, Op::Acquire(Wait::Micros(1))), Step::Block);
    assert_eq!(value(&mut s), Step::Done(Response::Usize(0), false));

    // Unbounded: released up to u64::MAX, not past it.
    let mut u = Obj::new(Init::Semaphore {
        value: 0,
        bound: None,
    })
    .unwrap();
    assert_eq!(apply(&mut u, ME, Op::Release), ok_changed());
    assert_eq!(value(&mut u), Step::Done(Response::Usize(1), false));
    let mut full = Obj::Semaphore(u64::MAX - 1, None);
    assert_eq!(apply(&mut full, ME, Op::Release), ok_changed());
    assert_eq!(
        apply(&mut full, ME, Op::Release),
        error(OpError::OverRelease)
    );
    assert_eq!(
        value(&mut full),
        Step::Done(Response::Usize(u64::MAX), false)
    );
}

#[test]
fn an_event_is_set_cleared_and_waited_for() {
    let mut e = Obj::new(Init::Event).unwrap();
    let is = |b| Step::Done(Response::Bool(b), false);
    assert_eq!(apply(&mut e, ME, Op::EventIsSet), is(false));
    assert_eq!(apply(&mut e, ME, Op::EventWait(Wait::No)), is(false));
    assert_eq!(apply(&mut e, ME, Op::EventWait(Wait::Forever)), Step::Block);
    assert_eq!(
        apply(&mut e, ME, Op::EventWait(Wait::Micros(3))),
        Step::Block
    );
    assert_eq!(apply(&mut e, ME, Op::EventSet), ok_changed());
    assert_eq!(apply(&mut e, ME, Op::EventIsSet), is(true));
    assert_eq!(apply(&mut e, ME, Op::EventWait(Wait::Forever)), is(true));
    assert_eq!(apply(&mut e, ME, Op::EventWait(Wait::No)), is(true));
    assert_eq!(apply(&mut e, ME, Op::EventClear), ok_changed());
    assert_eq!(apply(&mut e, ME, Op::EventIsSet), is(false));
}

#[test]
fn a_bounded_queue_blocks_or_times_out_when_full_or_empty() {
    let mut q = Obj::new(Init::Queue { maxsize: Some(2) }).unwrap();
    let len = |q: &mut Obj| apply(q, ME, Op::Len);
    assert_eq!(
        apply(&mut q, ME, Op::QGet(Wait::No)),
        error(OpError::Timeout)
    );
    assert_eq!(apply(&mut q, ME, Op::QGet(Wait::Forever)), Step::Block);
    assert_eq!(apply(&mut q, ME, Op::QGet(Wait::Micros(9))), Step::Block);
    assert_eq!(apply(&mut q, ME, Op::Put(b(1), Wait::No)), ok_changed());
    assert_eq!(len(&mut q), Step::Done(Response::Usize(1), false));
    assert_eq!(
        apply(&mut q, ME, Op::Put(b(2), Wait::Forever)),
        ok_changed()
    );
    assert_eq!(
        apply(&mut q, ME, Op::Put(b(3), Wait::No)),
        error(OpError::Timeout)
    );
    assert_eq!(apply(&mut q, ME, Op::Put(b(3), Wait::Forever)), Step::Block);
    assert_eq!(
        apply(&mut q, ME, Op::Put(b(3), Wait::Micros(9))),
        Step::Block
    );
    assert_eq!(len(&mut q), Step::Done(Response::Usize(2), false));
    assert_eq!(
        apply(&mut q, ME, Op::QGet(Wait::No)),
        Step::Done(Response::Item(b(1)), true)
    );
    assert_eq!(
        apply(&mut q, ME, Op::QGet(Wait::Forever)),
        Step::Done(Response::Item(b(2)), true)
    );
    assert_eq!(len(&mut q), Step::Done(Response::Usize(0), false));
    // Unbounded.
    let mut u = Obj::new(Init::Queue { maxsize: None }).unwrap();
    for i in 0..5 {
        assert_eq!(apply(&mut u, ME, Op::Put(b(i), Wait::No)), ok_changed());
    }
    assert_eq!(len(&mut u), Step::Done(Response::Usize(5), false));
}

// ----- conditions -----

/// A condition's waiters and notified tickets.
fn cond(o: &Obj) -> &CondState {
    match o {
        Obj::Condition(c) => c,
        o => panic!("{o:?}"),
    }
}

#[test]
fn a_condition_wait_enters_sleeps_is_notified_and_reacquires() {
    let mut c = Obj::new(Init::Condition).unwrap();
    let yes = Step::Done(Response::Bool(true), true);
    // Entering needs the lock.
    assert_eq!(apply(&mut c, ME, Op::CondEnter), error(OpError::NotOwner));
    assert_eq!(apply(&mut c, ME, Op::Acquire(Wait::No)), yes);
    assert_eq!(apply(&mut c, ME, Op::Acquire(Wait::No)), yes);
    assert_eq!(
        apply(&mut c, OTHER, Op::CondEnter),
        error(OpError::NotOwner)
    );
    // Enter: a ticket, the depth, and the lock released.
    assert_eq!(
        apply(&mut c, ME, Op::CondEnter),
        Step::Done(Response::Arrived(0, 2), true)
    );
    assert_eq!(cond(&c).owner, None);
    assert_eq!(cond(&c).waiters, vec![(0, ME)]);
    // OTHER takes the lock and enters too.
    assert_eq!(apply(&mut c, OTHER, Op::Acquire(Wait::No)), yes);
    assert_eq!(
        apply(&mut c, OTHER, Op::CondEnter),
        Step::Done(Response::Arrived(1, 1), true)
    );
    assert_eq!(cond(&c).waiters, vec![(0, ME), (1, OTHER)]);
    // Not notified: sleep blocks, or times out.
    assert_eq!(
        apply(&mut c, ME, Op::CondSleep(0, 2, Wait::Forever)),
        Step::Block
    );
    assert_eq!(
        apply(&mut c, ME, Op::CondSleep(0, 2, Wait::Micros(4))),
        Step::Block
    );
    assert_eq!(
        apply(&mut c, ME, Op::CondSleep(0, 2, Wait::No)),
        error(OpError::Timeout)
    );
    assert_eq!(
        apply(&mut c, ME, Op::CondSleep(7, 2, Wait::No)),
        error(OpError::BadRequest("unknown ticket 7".into()))
    );
    // A third connection takes the lock and notifies one: the oldest.
    let third = 3;
    assert_eq!(apply(&mut c, third, Op::Acquire(Wait::No)), yes);
    assert_eq!(
        apply(&mut c, OTHER, Op::Notify(1)),
        error(OpError::NotOwner)
    );
    assert_eq!(apply(&mut c, third, Op::Notify(1)), ok_changed());
    assert_eq!(cond(&c).waiters, vec![(1, OTHER)]);
    assert_eq!(cond(&c).notified, vec![(0, ME)]);
    // Notified, but the lock is held: ME waits for it.
    assert_eq!(
        apply(&mut c, ME, Op::CondSleep(0, 2, Wait::No)),
        Step::Block
    );
    // OTHER is not notified yet.
    assert_eq!(
        apply(&mut c, OTHER, Op::CondSleep(1, 1, Wait::No)),
        error(OpError::Timeout)
    );
    assert_eq!(apply(&mut c, third, Op::Release), ok_changed());
    // ME gets the lock back at its depth.
    assert_eq!(apply(&mut c, ME, Op::CondSleep(0, 2, Wait::No)), yes);
    assert_eq!(cond(&c).owner, Some((ME, 2)));
    assert!(cond(&c).notified.is_empty());
    // Notify(0) wakes nobody and changes nothing.
    assert_eq!(
        apply(&mut c, ME, Op::Notify(0)),
        Step::Done(Response::Ok, false)
    );
    assert_eq!(cond(&c).waiters, vec![(1, OTHER)]);
    assert_eq!(apply(&mut c, ME, Op::NotifyAll), ok_changed());
    assert_eq!(cond(&c).notified, vec![(1, OTHER)]);
    assert_eq!(
        apply(&mut c, ME, Op::NotifyAll),
        Step::Done(Response::Ok, false)
    );
    assert_eq!(apply(&mut c, ME, Op::Release), ok_changed());
    assert_eq!(apply(&mut c, ME, Op::Release), ok_changed());
    // A depth of 0 is taken as 1.
    assert_eq!(apply(&mut c, OTHER, Op::CondSleep(1, 0, Wait::No)), yes);
    assert_eq!(cond(&c).owner, Some((OTHER, 1)));
    assert_eq!(apply(&mut c, OTHER, Op::Release), ok_changed());
    assert_eq!(cond(&c).owner, None);
}

#[test]
fn notify_wakes_as_many_as_asked_oldest_first() {
    let mut c = Obj::new(Init::Condition).unwrap();
    for conn in 1..=4 {
        apply(&mut c, conn, Op::Acquire(Wait::No));
        apply(&mut c, conn, Op::CondEnter);
    }
    apply(&mut c, 9, Op::Acquire(Wait::No));
    assert_eq!(apply(&mut c, 9, Op::Notify(2)), ok_changed());
    assert_eq!(cond(&c).notified, vec![(0, 1), (1, 2)]);
    assert_eq!(cond(&c).waiters, vec![(2, 3), (3, 4)]);
    assert_eq!(apply(&mut c, 9, Op::Notify(5)), ok_changed());
    assert_eq!(cond(&c).notified, vec![(0, 1), (1, 2), (2, 3), (3, 4)]);
    assert!(cond(&c).waiters.is_empty());
}

#[test]
fn a_condition_reacquire_takes_the_lock_back_and_says_if_notified() {
    let mut c = Obj::new(Init::Condition).unwrap();
    for conn in [ME, OTHER] {
        apply(&mut c, conn, Op::Acquire(Wait::No));
        apply(&mut c, conn, Op::CondEnter);
    }
    apply(&mut c, 9, Op::Acquire(Wait::No));
    apply(&mut c, 9, Op::Notify(1));
    // The lock is held: block, or time out.
    assert_eq!(
        apply(&mut c, OTHER, Op::CondReacquire(1, 1, Wait::Forever)),
        Step::Block
    );
    assert_eq!(
        apply(&mut c, OTHER, Op::CondReacquire(1, 1, Wait::Micros(2))),
        Step::Block
    );
    assert_eq!(
        apply(&mut c, OTHER, Op::CondReacquire(1, 1, Wait::No)),
        error(OpError::Timeout)
    );
    apply(&mut c, 9, Op::Release);
    // OTHER (timed out, not notified) gives up its place and takes the lock.
    assert_eq!(
        apply(&mut c, OTHER, Op::CondReacquire(1, 3, Wait::No)),
        Step::Done(Response::Bool(false), true)
    );
    assert_eq!(cond(&c).owner, Some((OTHER, 3)));
    assert!(cond(&c).waiters.is_empty());
    assert_eq!(cond(&c).notified, vec![(0, ME)]);
    for _ in 0..3 {
        assert_eq!(apply(&mut c, OTHER, Op::Release), ok_changed());
    }
    // ME (notified) takes it back, depth 0 as 1.
    assert_eq!(
        apply(&mut c, ME, Op::CondReacquire(0, 0, Wait::No)),
        Step::Done(Response::Bool(true), true)
    );
    assert_eq!(cond(&c).owner, Some((ME, 1)));
    assert!(cond(&c).notified.is_empty());
}

// ----- barriers -----

fn barrier(o: &Obj) -> &BarrierState {
    match o {
        Obj::Barrier(b) => b,
        o => panic!("{o:?}"),
    }
}

#[test]
fn a_barrier_releases_a_generation_when_all_parties_arrived() {
    let mut br = Obj::new(Init::Barrier { parties: 3 }).unwrap();
    let state = |br: &mut Obj| apply(br, ME, Op::BarrierState);
    let counts = |p, c, b| Step::Done(Response::Counts(vec![p, c, b]), false);
    assert_eq!(state(&mut br), counts(3, 0, 0));
    for i in 0..3 {
        assert_eq!(
            apply(&mut br, ME, Op::BarrierAwait(0, Wait::No)),
            error(OpError::Timeout)
        );
        assert_eq!(
            apply(&mut br, ME, Op::BarrierAwait(0, Wait::Forever)),
            Step::Block
        );
        assert_eq!(
            apply(&mut br, ME, Op::BarrierAwait(0, Wait::Micros(5))),
            Step::Block
        );
        assert_eq!(
            apply(&mut br, ME, Op::BarrierArrive),
            Step::Done(Response::Arrived(0, i), true)
        );
        assert_eq!(state(&mut br), counts(3, (i + 1) % 3, 0));
    }
    assert_eq!(barrier(&br).generation, 1);
    assert_eq!(
        apply(&mut br, ME, Op::BarrierAwait(0, Wait::No)),
        Step::Done(Response::Ok, false)
    );
    assert_eq!(
        apply(&mut br, ME, Op::BarrierArrive),
        Step::Done(Response::Arrived(1, 0), true)
    );
    // A one-party barrier (0 parties: 1) passes every arrival.
    let mut one = Obj::new(Init::Barrier { parties: 0 }).unwrap();
    for g in 0..3 {
        assert_eq!(
            apply(&mut one, ME, Op::BarrierArrive),
            Step::Done(Response::Arrived(g, 0), true)
        );
    }
    assert_eq!(state(&mut one), counts(1, 0, 0));
}

#[test]
fn an_aborted_barrier_is_broken_until_reset() {
    let mut br = Obj::new(Init::Barrier { parties: 2 }).unwrap();
    apply(&mut br, ME, Op::BarrierArrive);
    // abort_if names another generation: nothing happens.
    assert_eq!(
        apply(&mut br, ME, Op::BarrierAbortIf(5)),
        Step::Done(Response::Bool(false), false)
    );
    assert!(!barrier(&br).broken);
    assert_eq!(
        apply(&mut br, ME, Op::BarrierAbortIf(0)),
        Step::Done(Response::Bool(true), true)
    );
    assert!(barrier(&br).broken);
    assert_eq!(
        apply(&mut br, ME, Op::BarrierState),
        Step::Done(Response::Counts(vec![2, 1, 1]), false)
    );
    assert_eq!(
        apply(&mut br, OTHER, Op::BarrierArrive),
        error(OpError::BrokenBarrier)
    );
    assert_eq!(
        apply(&mut br, ME, Op::BarrierAwait(0, Wait::Forever)),
        error(OpError::BrokenBarrier)
    );
    // Reset with a party waiting: its generation is broken for good.
    assert_eq!(apply(&mut br, ME, Op::BarrierReset), ok_changed());
    let s = barrier(&br);
    assert_eq!((s.count, s.generation, s.broken), (0, 1, false));
    assert_eq!(s.reset_gens.iter().copied().collect::<Vec<_>>(), vec![0]);
    assert_eq!(
        apply(&mut br, ME, Op::BarrierAwait(0, Wait::No)),
        error(OpError::BrokenBarrier)
    );
    assert_eq!(
        apply(&mut br, ME, Op::BarrierAbortIf(0)),
        Step::Done(Response::Bool(true), false)
    );
    assert!(!barrier(&br).broken);
    // Reset with nobody waiting: no generation is broken.
    assert_eq!(apply(&mut br, ME, Op::BarrierReset), ok_changed());
    let s = barrier(&br);
    assert_eq!((s.count, s.generation), (0, 2));
    assert_eq!(s.reset_gens.len(), 1);
    assert_eq!(
        apply(&mut br, ME, Op::BarrierAwait(1, Wait::No)),
        Step::Done(Response::Ok, false)
    );
    // Abort.
    assert_eq!(apply(&mut br, ME, Op::BarrierAbort), ok_changed());
    assert_eq!(
        apply(&mut br, ME, Op::BarrierAwait(2, Wait::No)),
        error(OpError::BrokenBarrier)
    );
    assert_eq!(
        apply(&mut br, ME, Op::BarrierState),
        Step::Done(Response::Counts(vec![2, 0, 1]), false)
    );
}

#[test]
fn kinds_of_new_objects() {
    let cases = [
        (Init::List(vec![]), Kind::List),
        (Init::Dict(vec![]), Kind::Dict),
        (Init::Value(vec![]), Kind::Value),
        (Init::Namespace, Kind::Namespace),
        (Init::Lock, Kind::Lock),
        (Init::RLock, Kind::RLock),
        (
            Init::Semaphore {
                value: 0,
                bound: None,
            },
            Kind::Semaphore,
        ),
        (Init::Event, Kind::Event),
        (Init::Queue { maxsize: None }, Kind::Queue),
        (Init::Condition, Kind::Condition),
        (Init::Barrier { parties: 2 }, Kind::Barrier),
        (Init::Array(vec![]), Kind::Array),
        (Init::JoinableQueue { maxsize: None }, Kind::JoinableQueue),
        (Init::Set(vec![]), Kind::Set),
    ];
    for (init, kind) in cases {
        assert_eq!(Obj::new(init).unwrap().kind(), kind);
    }
    assert!(Obj::new(Init::Pool { processes: 1 }).is_none());
}
