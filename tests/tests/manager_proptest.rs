//! Property tests: random operation sequences on list and dict proxies,
//! executed by 1–4 real processes, equal a sequential `Vec` / insertion-ordered
//! map model; and concurrent appends from several processes lose nothing and
//! keep each process's order.
//!
//! In the sequential properties the parent hands each operation to the process
//! chosen for it through that process's manager queue and waits for its result
//! on a results queue before handing out the next: the order is the model's, the
//! connections and processes are real and different.

use procshare::Process;
use procshare::{DictProxy, ListProxy, Manager, ManagerError, QueueProxy};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use std::time::Duration;

const GENEROUS: Duration = Duration::from_secs(60);
const STOP: u64 = u64::MAX;

#[derive(Debug, Clone, Serialize, Deserialize)]
enum LOp {
    Append(i32),
    Extend(Vec<i32>),
    Insert(usize, i32),
    Pop,
    PopAt(usize),
    Remove(i32),
    Index(i32),
    Count(i32),
    Get(usize),
    Set(usize, i32),
    Delete(usize),
    Len,
    Clear,
    Reverse,
    Sort,
    ToVec,
    GetRange(usize, usize),
    SetRange(usize, usize, Vec<i32>),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum DOp {
    Insert(u8, i32),
    Get(u8),
    Item(u8),
    Remove(u8),
    Pop(u8),
    Contains(u8),
    Len,
    Keys,
    Values,
    Items,
    Update(Vec<(u8, i32)>),
    Clear,
    SetDefault(u8, i32),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Out {
    Unit,
    Val(i32),
    Opt(Option<i32>),
    Size(usize),
    Bool(bool),
    Vals(Vec<i32>),
    Keys(Vec<u8>),
    Pairs(Vec<(u8, i32)>),
    Err(String),
}

fn out<T>(r: Result<T, ManagerError>, f: impl FnOnce(T) -> Out) -> Out {
    match r {
        Ok(v) => f(v),
        Err(ManagerError::Op(e)) => Out::Err(format!("{e:?}")),
        Err(e) => panic!("transport error: {e}"),
    }
}

fn oob(index: usize, len: usize) -> Out {
    Out::Err(format!(
        "{:?}",
        procshare::OpError::IndexOutOfRange {
            index: index as u64,
            len: len as u64
        }
    ))
}

fn run_list(l: &ListProxy<i32>, op: &LOp) -> Out {
    match op {
        LOp::Append(x) => out(l.append(x), |_| Out::Unit),
        LOp::Extend(xs) => out(l.extend(xs), |_| Out::Unit),
        LOp::Insert(i, x) => out(l.insert(*i, x), |_| Out::Unit),
        LOp::Pop => out(l.pop(), Out::Val),
        LOp::PopAt(i) => out(l.pop_at(*i), Out::Val),
        LOp::Remove(x) => out(l.remove(x), |_| Out::Unit),
        LOp::Index(x) => out(l.index(x), Out::Size),
        LOp::Count(x) => out(l.count(x), Out::Size),
        LOp::Get(i) => out(l.get(*i), Out::Val),
        LOp::Set(i, x) => out(l.set(*i, x), |_| Out::Unit),
        LOp::Delete(i) => out(l.delete(*i), |_| Out::Unit),
        LOp::Len => out(l.len(), Out::Size),
        LOp::Clear => out(l.clear(), |_| Out::Unit),
        LOp::Reverse => out(l.reverse(), |_| Out::Unit),
        LOp::Sort => out(l.sort(), |_| Out::Unit),
        LOp::ToVec => out(l.to_vec(), Out::Vals),
        LOp::GetRange(a, b) => out(l.get_range(*a..*b), Out::Vals),
        LOp::SetRange(a, b, xs) => out(l.set_range(*a..*b, xs), |_| Out::Unit),
    }
}

fn model_list(v: &mut Vec<i32>, op: &LOp) -> Out {
    let n = v.len();
    let clamp = |a: usize, b: usize| {
        let a = a.min(n);
        (a, b.min(n).max(a))
    };
    match op {
        LOp::Append(x) => {
            v.push(*x);
            Out::Unit
        }
        LOp::Extend(xs) => {
            v.extend(xs);
            Out::Unit
        }
        LOp::Insert(i, x) => {
            v.insert((*i).min(n), *x);
            Out::Unit
        }
        LOp::Pop => v.pop().map(Out::Val).unwrap_or_else(|| oob(0, 0)),
        LOp::PopAt(i) | LOp::Delete(i) if *i >= n => oob(*i, n),
        LOp::PopAt(i) => Out::Val(v.remove(*i)),
        LOp::Delete(i) => {
            v.remove(*i);
            Out::Unit
        }
        LOp::Remove(x) => match v.iter().position(|y| y == x) {
            Some(i) => {
                v.remove(i);
                Out::Unit
            }
            None => Out::Err("ValueNotInList".into()),
        },
        LOp::Index(x) => match v.iter().position(|y| y == x) {
            Some(i) => Out::Size(i),
            None => Out::Err("ValueNotInList".into()),
        },
        LOp::Count(x) => Out::Size(v.iter().filter(|y| *y == x).count()),
        LOp::Get(i) => v
            .get(*i)
            .copied()
            .map(Out::Val)
            .unwrap_or_else(|| oob(*i, n)),
        LOp::Set(i, x) => match v.get_mut(*i) {
            Some(y) => {
                *y = *x;
                Out::Unit
            }
            None => oob(*i, n),
        },
        LOp::Len => Out::Size(n),
        LOp::Clear => {
            v.clear();
            Out::Unit
        }
        LOp::Reverse => {
            v.reverse();
            Out::Unit
        }
        LOp::Sort => {
            v.sort();
            Out::Unit
        }
        LOp::ToVec => Out::Vals(v.clone()),
        LOp::GetRange(a, b) => {
            let (a, b) = clamp(*a, *b);
            Out::Vals(v[a..b].to_vec())
        }
        LOp::SetRange(a, b, xs) => {
            let (a, b) = clamp(*a, *b);
            v.splice(a..b, xs.iter().copied());
            Out::Unit
        }
    }
}

fn run_dict(d: &DictProxy<u8, i32>, op: &DOp) -> Out {
    match op {
        DOp::Insert(k, v) => out(d.insert(k, v), Out::Opt),
        DOp::Get(k) => out(d.get(k), Out::Opt),
        DOp::Item(k) => out(d.item(k), Out::Val),
        DOp::Remove(k) => out(d.remove(k), Out::Opt),
        DOp::Pop(k) => out(d.pop(k), Out::Val),
        DOp::Contains(k) => out(d.contains_key(k), Out::Bool),
        DOp::Len => out(d.len(), Out::Size),
        DOp::Keys => out(d.keys(), Out::Keys),
        DOp::Values => out(d.values(), Out::Vals),
        DOp::Items => out(d.items(), Out::Pairs),
        DOp::Update(kv) => out(d.update(kv.iter().map(|(k, v)| (k, v))), |_| Out::Unit),
        DOp::Clear => out(d.clear(), |_| Out::Unit),
        DOp::SetDefault(k, v) => out(d.setdefault(k, v), Out::Val),
    }
}

/// An insertion-ordered map (Python's dict) as a plain `Vec` of pairs.
fn model_dict(m: &mut Vec<(u8, i32)>, op: &DOp) -> Out {
    let pos = |m: &Vec<(u8, i32)>, k: u8| m.iter().position(|(x, _)| *x == k);
    let insert = |m: &mut Vec<(u8, i32)>, k: u8, v: i32| match pos(m, k) {
        Some(i) => Some(std::mem::replace(&mut m[i].1, v)),
        None => {
            m.push((k, v));
            None
        }
    };
    match op {
        DOp::Insert(k, v) => Out::Opt(insert(m, *k, *v)),
        DOp::Get(k) => Out::Opt(pos(m, *k).map(|i| m[i].1)),
        DOp::Item(k) => pos(m, *k)
            .map(|i| Out::Val(m[i].1))
            .unwrap_or(Out::Err("KeyNotFound".into())),
        DOp::Remove(k) => Out::Opt(pos(m, *k).map(|i| m.remove(i).1)),
        DOp::Pop(k) => pos(m, *k)
            .map(|i| Out::Val(m.remove(i).1))
            .unwrap_or(Out::Err("KeyNotFound".into())),
        DOp::Contains(k) => Out::Bool(pos(m, *k).is_some()),
        DOp::Len => Out::Size(m.len()),
        DOp::Keys => Out::Keys(m.iter().map(|p| p.0).collect()),
        DOp::Values => Out::Vals(m.iter().map(|p| p.1).collect()),
        DOp::Items => Out::Pairs(m.clone()),
        DOp::Update(kv) => {
            for (k, v) in kv {
                insert(m, *k, *v);
            }
            Out::Unit
        }
        DOp::Clear => {
            m.clear();
            Out::Unit
        }
        DOp::SetDefault(k, v) => match pos(m, *k) {
            Some(i) => Out::Val(m[i].1),
            None => {
                m.push((*k, *v));
                Out::Val(*v)
            }
        },
    }
}

fn small() -> impl Strategy<Value = i32> {
    -3i32..6
}
fn idx() -> impl Strategy<Value = usize> {
    0usize..8
}

fn lop() -> impl Strategy<Value = LOp> {
    prop_oneof![
        small().prop_map(LOp::Append),
        small().prop_map(LOp::Append),
        prop::collection::vec(small(), 0..4).prop_map(LOp::Extend),
        (idx(), small()).prop_map(|(i, x)| LOp::Insert(i, x)),
        Just(LOp::Pop),
        idx().prop_map(LOp::PopAt),
        small().prop_map(LOp::Remove),
        small().prop_map(LOp::Index),
        small().prop_map(LOp::Count),
        idx().prop_map(LOp::Get),
        (idx(), small()).prop_map(|(i, x)| LOp::Set(i, x)),
        idx().prop_map(LOp::Delete),
        Just(LOp::Len),
        Just(LOp::Clear),
        Just(LOp::Reverse),
        Just(LOp::Sort),
        Just(LOp::ToVec),
        (idx(), idx()).prop_map(|(a, b)| LOp::GetRange(a, b)),
        (idx(), idx(), prop::collection::vec(small(), 0..3))
            .prop_map(|(a, b, x)| LOp::SetRange(a, b, x)),
    ]
}

fn key() -> impl Strategy<Value = u8> {
    0u8..5
}

fn dop() -> impl Strategy<Value = DOp> {
    prop_oneof![
        (key(), small()).prop_map(|(k, v)| DOp::Insert(k, v)),
        (key(), small()).prop_map(|(k, v)| DOp::Insert(k, v)),
        key().prop_map(DOp::Get),
        key().prop_map(DOp::Item),
        key().prop_map(DOp::Remove),
        key().prop_map(DOp::Pop),
        key().prop_map(DOp::Contains),
        Just(DOp::Len),
        Just(DOp::Keys),
        Just(DOp::Values),
        Just(DOp::Items),
        prop::collection::vec((key(), small()), 0..3).prop_map(DOp::Update),
        Just(DOp::Clear),
        (key(), small()).prop_map(|(k, v)| DOp::SetDefault(k, v)),
    ]
}

/// Run `ops[k]` in process `who[k]`, one at a time, and return the outcomes in order.
fn run_in_processes<O, P>(
    m: &Manager,
    nprocs: usize,
    ops: Vec<(usize, O)>,
    proxy: P,
    run: fn(&P, &O) -> Out,
) -> Vec<Out>
where
    O: Clone + Send + 'static,
    P: Clone + Send + 'static,
{
    let tokens: Vec<QueueProxy<u64>> = (0..nprocs).map(|_| m.queue(None).unwrap()).collect();
    let results: QueueProxy<(u64, Out)> = m.queue(None).unwrap();
    let all: Vec<O> = ops.iter().map(|(_, o)| o.clone()).collect();
    let mut procs: Vec<Process> = (0..nprocs)
        .map(|i| {
            let (tok, res, all, proxy) = (
                tokens[i].clone(),
                results.clone(),
                all.clone(),
                proxy.clone(),
            );
            let mut p = Process::new(move || loop {
                let k = tok.get().unwrap();
                if k == STOP {
                    break;
                }
                res.put((k, run(&proxy, &all[k as usize]))).unwrap();
            });
            p.start().unwrap();
            p
        })
        .collect();
    let mut outs = Vec::new();
    for (k, (who, _)) in ops.iter().enumerate() {
        tokens[*who].put(k as u64).unwrap();
        let (j, o) = results.get_timeout(GENEROUS).unwrap();
        assert_eq!(j, k as u64);
        outs.push(o);
    }
    for t in &tokens {
        t.put(STOP).unwrap();
    }
    for p in &mut procs {
        assert_eq!(p.join().unwrap(), 0);
    }
    outs
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn list_ops_from_processes_match_vec(
        nprocs in 1usize..=4,
        ops in prop::collection::vec((0usize..4, lop()), 1..30),
    ) {
        procshare::set_fork_warning(false);
        let ops: Vec<(usize, LOp)> = ops.into_iter().map(|(w, o)| (w % nprocs, o)).collect();
        let m = Manager::start().unwrap();
        let l = m.list::<i32>().unwrap();
        let outs = run_in_processes(&m, nprocs, ops.clone(), l.clone(), run_list);
        let mut model = Vec::new();
        for ((who, op), got) in ops.iter().zip(&outs) {
            let want = model_list(&mut model, op);
            prop_assert_eq!(got, &want, "op {:?} in process {}", op, who);
        }
        prop_assert_eq!(l.to_vec().unwrap(), model);
    }

    #[test]
    fn dict_ops_from_processes_match_ordered_map(
        nprocs in 1usize..=4,
        ops in prop::collection::vec((0usize..4, dop()), 1..30),
    ) {
        procshare::set_fork_warning(false);
        let ops: Vec<(usize, DOp)> = ops.into_iter().map(|(w, o)| (w % nprocs, o)).collect();
        let m = Manager::start().unwrap();
        let d = m.dict::<u8, i32>().unwrap();
        let outs = run_in_processes(&m, nprocs, ops.clone(), d.clone(), run_dict);
        let mut model = Vec::new();
        for ((who, op), got) in ops.iter().zip(&outs) {
            let want = model_dict(&mut model, op);
            prop_assert_eq!(got, &want, "op {:?} in process {}", op, who);
        }
        prop_assert_eq!(d.items().unwrap(), model);
    }

    #[test]
    fn concurrent_appends_keep_every_item_and_each_process_order(
        lens in prop::collection::vec(0usize..40, 1..=4),
    ) {
        procshare::set_fork_warning(false);
        let m = Manager::start().unwrap();
        let l = m.list::<(u8, u32)>().unwrap();
        let mut procs: Vec<Process> = lens.iter().enumerate().map(|(p, &n)| {
            let l = l.clone();
            let mut pr = Process::new(move || {
                for i in 0..n as u32 {
                    l.append((p as u8, i)).unwrap();
                }
            });
            pr.start().unwrap();
            pr
        }).collect();
        for p in &mut procs {
            prop_assert_eq!(p.join().unwrap(), 0);
        }
        let items = l.to_vec().unwrap();
        prop_assert_eq!(items.len(), lens.iter().sum::<usize>());
        for (p, &n) in lens.iter().enumerate() {
            let mine: Vec<u32> = items.iter().filter(|(q, _)| *q as usize == p).map(|x| x.1).collect();
            prop_assert_eq!(mine, (0..n as u32).collect::<Vec<_>>());
        }
    }
}
