//! Property test: random sequences of set operations on a real manager's
//! [`SetProxy`] give the answers of a plain insertion-ordered set (a `Vec`
//! without duplicates), order included; and random `l *= n`, `d | o`,
//! `d |= o`, `fromkeys`, `popitem` on list and dict proxies those of a `Vec`
//! and an insertion-ordered map. (Concurrency is the model checks' work:
//! `procshare-model`'s `manager::checks`.)

use procshare::{Manager, OpError, SetProxy};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum SOp {
    Add(u8),
    Discard(u8),
    Remove(u8),
    Contains(u8),
    Pop,
    Len,
    Clear,
    Copy,
    Update(Vec<u8>),
    IntersectionUpdate(Vec<u8>),
    DifferenceUpdate(Vec<u8>),
    SymmetricDifferenceUpdate(Vec<u8>),
    Union(Vec<u8>),
    Intersection(Vec<u8>),
    Difference(Vec<u8>),
    DifferenceFrom(Vec<u8>),
    SymmetricDifference(Vec<u8>),
    IsDisjoint(Vec<u8>),
    IsSubset(Vec<u8>),
    IsSuperset(Vec<u8>),
    IsProperSubset(Vec<u8>),
    IsProperSuperset(Vec<u8>),
    Equals(Vec<u8>),
}

#[derive(Debug, PartialEq)]
enum Out {
    Unit,
    Bool(bool),
    Item(u8),
    Len(usize),
    Items(Vec<u8>),
    KeyNotFound,
}

fn item() -> impl Strategy<Value = u8> {
    0u8..6
}

fn items() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(item(), 0..5)
}

fn sop() -> impl Strategy<Value = SOp> {
    prop_oneof![
        3 => item().prop_map(SOp::Add),
        1 => item().prop_map(SOp::Discard),
        1 => item().prop_map(SOp::Remove),
        1 => item().prop_map(SOp::Contains),
        1 => Just(SOp::Pop),
        1 => Just(SOp::Len),
        1 => Just(SOp::Clear),
        1 => Just(SOp::Copy),
        2 => items().prop_map(SOp::Update),
        1 => items().prop_map(SOp::IntersectionUpdate),
        1 => items().prop_map(SOp::DifferenceUpdate),
        1 => items().prop_map(SOp::SymmetricDifferenceUpdate),
        1 => items().prop_map(SOp::Union),
        1 => items().prop_map(SOp::Intersection),
        1 => items().prop_map(SOp::Difference),
        1 => items().prop_map(SOp::DifferenceFrom),
        1 => items().prop_map(SOp::SymmetricDifference),
        1 => items().prop_map(SOp::IsDisjoint),
        1 => items().prop_map(SOp::IsSubset),
        1 => items().prop_map(SOp::IsSuperset),
        1 => items().prop_map(SOp::IsProperSubset),
        1 => items().prop_map(SOp::IsProperSuperset),
        1 => items().prop_map(SOp::Equals),
    ]
}

/// The sequential specification: an insertion-ordered set.
#[derive(Default)]
struct Model(Vec<u8>);

fn uniq(xs: impl IntoIterator<Item = u8>) -> Vec<u8> {
    let mut r = Vec::new();
    for x in xs {
        if !r.contains(&x) {
            r.push(x);
        }
    }
    r
}

impl Model {
    fn has(&self, x: u8) -> bool {
        self.0.contains(&x)
    }
    fn minus(&self, o: &[u8]) -> Vec<u8> {
        self.0.iter().copied().filter(|x| !o.contains(x)).collect()
    }
    fn new_in_other(&self, o: &[u8]) -> Vec<u8> {
        uniq(o.iter().copied().filter(|x| !self.has(*x)))
    }
    /// Items that stay keep their places; new ones go last, in order.
    fn become_(&mut self, r: Vec<u8>) {
        let mut next: Vec<u8> = self.0.iter().copied().filter(|x| r.contains(x)).collect();
        for x in r {
            if !next.contains(&x) {
                next.push(x);
            }
        }
        self.0 = next;
    }
    fn union(&self, o: &[u8]) -> Vec<u8> {
        [self.0.clone(), self.new_in_other(o)].concat()
    }
    fn inter(&self, o: &[u8]) -> Vec<u8> {
        self.0.iter().copied().filter(|x| o.contains(x)).collect()
    }
    fn sym(&self, o: &[u8]) -> Vec<u8> {
        [self.minus(o), self.new_in_other(o)].concat()
    }
    fn step(&mut self, op: &SOp) -> Out {
        let o_set = |o: &[u8]| uniq(o.iter().copied());
        match op {
            SOp::Add(x) => {
                let new = !self.has(*x);
                if new {
                    self.0.push(*x);
                }
                Out::Bool(new)
            }
            SOp::Discard(x) => {
                let was = self.has(*x);
                self.0.retain(|y| y != x);
                Out::Bool(was)
            }
            SOp::Remove(x) => {
                if !self.has(*x) {
                    return Out::KeyNotFound;
                }
                self.0.retain(|y| y != x);
                Out::Unit
            }
            SOp::Contains(x) => Out::Bool(self.has(*x)),
            SOp::Pop => {
                if self.0.is_empty() {
                    Out::KeyNotFound
                } else {
                    Out::Item(self.0.remove(0))
                }
            }
            SOp::Len => Out::Len(self.0.len()),
            SOp::Clear => {
                self.0.clear();
                Out::Unit
            }
            SOp::Copy => Out::Items(self.0.clone()),
            SOp::Update(o) => {
                let r = self.union(o);
                self.become_(r);
                Out::Unit
            }
            SOp::IntersectionUpdate(o) => {
                let r = self.inter(o);
                self.become_(r);
                Out::Unit
            }
            SOp::DifferenceUpdate(o) => {
                let r = self.minus(o);
                self.become_(r);
                Out::Unit
            }
            SOp::SymmetricDifferenceUpdate(o) => {
                let r = self.sym(o);
                self.become_(r);
                Out::Unit
            }
            SOp::Union(o) => Out::Items(self.union(o)),
            SOp::Intersection(o) => Out::Items(self.inter(o)),
            SOp::Difference(o) => Out::Items(self.minus(o)),
            SOp::DifferenceFrom(o) => Out::Items(self.new_in_other(o)),
            SOp::SymmetricDifference(o) => Out::Items(self.sym(o)),
            SOp::IsDisjoint(o) => Out::Bool(self.inter(o).is_empty()),
            SOp::IsSubset(o) => Out::Bool(self.minus(o).is_empty()),
            SOp::IsSuperset(o) => Out::Bool(self.new_in_other(o).is_empty()),
            SOp::IsProperSubset(o) => {
                Out::Bool(self.minus(o).is_empty() && self.0.len() < o_set(o).len())
            }
            SOp::IsProperSuperset(o) => {
                Out::Bool(self.new_in_other(o).is_empty() && self.0.len() > o_set(o).len())
            }
            SOp::Equals(o) => {
                Out::Bool(self.minus(o).is_empty() && self.new_in_other(o).is_empty())
            }
        }
    }
}

fn run(s: &SetProxy<u8>, op: &SOp) -> Out {
    fn unit(r: Result<(), procshare::ManagerError>) -> Out {
        match r {
            Ok(()) => Out::Unit,
            Err(e) if e.op_error() == Some(&OpError::KeyNotFound) => Out::KeyNotFound,
            Err(e) => panic!("{e}"),
        }
    }
    let v = |o: &Vec<u8>| o.clone();
    match op {
        SOp::Add(x) => Out::Bool(s.add(x).unwrap()),
        SOp::Discard(x) => Out::Bool(s.discard(x).unwrap()),
        SOp::Remove(x) => unit(s.remove(x)),
        SOp::Contains(x) => Out::Bool(s.contains(x).unwrap()),
        SOp::Pop => match s.pop() {
            Ok(x) => Out::Item(x),
            Err(e) if e.op_error() == Some(&OpError::KeyNotFound) => Out::KeyNotFound,
            Err(e) => panic!("{e}"),
        },
        SOp::Len => Out::Len(s.len().unwrap()),
        SOp::Clear => unit(s.clear()),
        SOp::Copy => Out::Items(s.copy().unwrap()),
        SOp::Update(o) => unit(s.update(v(o))),
        SOp::IntersectionUpdate(o) => unit(s.intersection_update(v(o))),
        SOp::DifferenceUpdate(o) => unit(s.difference_update(v(o))),
        SOp::SymmetricDifferenceUpdate(o) => unit(s.symmetric_difference_update(v(o))),
        SOp::Union(o) => Out::Items(s.union(v(o)).unwrap()),
        SOp::Intersection(o) => Out::Items(s.intersection(v(o)).unwrap()),
        SOp::Difference(o) => Out::Items(s.difference(v(o)).unwrap()),
        SOp::DifferenceFrom(o) => Out::Items(s.difference_from(v(o)).unwrap()),
        SOp::SymmetricDifference(o) => Out::Items(s.symmetric_difference(v(o)).unwrap()),
        SOp::IsDisjoint(o) => Out::Bool(s.isdisjoint(v(o)).unwrap()),
        SOp::IsSubset(o) => Out::Bool(s.issubset(v(o)).unwrap()),
        SOp::IsSuperset(o) => Out::Bool(s.issuperset(v(o)).unwrap()),
        SOp::IsProperSubset(o) => Out::Bool(s.is_proper_subset(v(o)).unwrap()),
        SOp::IsProperSuperset(o) => Out::Bool(s.is_proper_superset(v(o)).unwrap()),
        SOp::Equals(o) => Out::Bool(s.equals(v(o)).unwrap()),
    }
}

#[derive(Debug, Clone)]
enum DOp {
    Insert(u8, i32),
    Or(Vec<(u8, i32)>),
    Ror(Vec<(u8, i32)>),
    Ior(Vec<(u8, i32)>),
    FromKeys(Vec<u8>, i32),
    PopItem,
    Items,
}

fn dop() -> impl Strategy<Value = DOp> {
    let pairs = || prop::collection::vec((item(), any::<i32>()), 0..4);
    prop_oneof![
        (item(), any::<i32>()).prop_map(|(k, v)| DOp::Insert(k, v)),
        pairs().prop_map(DOp::Or),
        pairs().prop_map(DOp::Ror),
        pairs().prop_map(DOp::Ior),
        (items(), any::<i32>()).prop_map(|(k, v)| DOp::FromKeys(k, v)),
        Just(DOp::PopItem),
        Just(DOp::Items),
    ]
}

fn put(m: &mut Vec<(u8, i32)>, k: u8, v: i32) {
    match m.iter_mut().find(|(q, _)| *q == k) {
        Some(slot) => slot.1 = v,
        None => m.push((k, v)),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn set_ops_equal_an_ordered_set(init in items(), ops in prop::collection::vec(sop(), 1..40)) {
        procshare_tests::quiet();
        let m = Manager::start().unwrap();
        let s = m.set_from(init.clone()).unwrap();
        let mut model = Model(uniq(init));
        for op in &ops {
            let want = model.step(op);
            let got = run(&s, op);
            prop_assert_eq!(got, want, "after {:?}", op);
        }
        let end: Vec<u8> = s.copy().unwrap();
        prop_assert_eq!(end, model.0);
    }

    #[test]
    fn list_repeat_equals_vec(init in prop::collection::vec(any::<i16>(), 0..5), ns in prop::collection::vec(0usize..4, 1..4)) {
        procshare_tests::quiet();
        let m = Manager::start().unwrap();
        let l = m.list_from(init.clone()).unwrap();
        let mut model = init;
        for n in ns {
            l.repeat_in_place(n).unwrap();
            model = model.repeat(n);
            prop_assert_eq!(l.copy().unwrap(), model.clone());
        }
    }

    #[test]
    fn dict_additions_equal_an_ordered_map(ops in prop::collection::vec(dop(), 1..30)) {
        procshare_tests::quiet();
        let m = Manager::start().unwrap();
        let d = m.dict::<u8, i32>().unwrap();
        let mut model: Vec<(u8, i32)> = Vec::new();
        for op in &ops {
            match op {
                DOp::Insert(k, v) => {
                    d.insert(k, v).unwrap();
                    put(&mut model, *k, *v);
                }
                DOp::Or(o) => {
                    let got: Vec<(u8, i32)> = d.or(o.clone()).unwrap();
                    let mut want = model.clone();
                    o.iter().for_each(|(k, v)| put(&mut want, *k, *v));
                    prop_assert_eq!(got, want);
                }
                DOp::Ror(o) => {
                    let got: Vec<(u8, i32)> = d.ror(o.clone()).unwrap();
                    let mut want = Vec::new();
                    o.iter().chain(&model).for_each(|(k, v)| put(&mut want, *k, *v));
                    prop_assert_eq!(got, want);
                }
                DOp::Ior(o) => {
                    d.ior(o.clone()).unwrap();
                    o.iter().for_each(|(k, v)| put(&mut model, *k, *v));
                }
                DOp::FromKeys(ks, v) => {
                    let got: Vec<(u8, i32)> = d.fromkeys(ks.clone(), v).unwrap();
                    let want: Vec<(u8, i32)> = uniq(ks.iter().copied()).into_iter().map(|k| (k, *v)).collect();
                    prop_assert_eq!(got, want);
                }
                DOp::PopItem => match (d.popitem(), model.pop()) {
                    (Ok(got), Some(want)) => prop_assert_eq!(got, want),
                    (Err(e), None) => prop_assert_eq!(e.op_error(), Some(&OpError::KeyNotFound)),
                    (got, want) => prop_assert!(false, "popitem: {:?}, model {:?}", got, want),
                },
                DOp::Items => prop_assert_eq!(d.items().unwrap(), model.clone()),
            }
        }
    }
}
