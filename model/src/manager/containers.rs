//! CPython 3.14's container additions to the manager: the set
//! (`SyncManager.set()`), list `*=`, dict `|`, `fromkeys`, `popitem` and
//! iteration, queue `full`. Each operation is one step of the server (one
//! critical section of [`apply`](super::objects::apply)), so a compound one (`|=`, `&=`,
//! `intersection_update`, ...) is atomic: no client ever sees half of it.
//!
//! A set is stored as an insertion-ordered map of encoded items (values
//! empty), so equality is equality of encodings (as for dict keys), and its
//! order (of iteration, of `pop`) is insertion order, where CPython's is the
//! hash order. Results of read-only operations (`union`, `intersection`, ...)
//! are answered as items in order; the client collects them into whichever
//! plain collection it wants (CPython returns a plain `set`).

use super::objects::{changed, done, err, Obj, OrderedMap, Step};
use super::protocol::*;
use crate::platform::Mutant;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// Seeded bug 740: a dict's `update` (and so `|=`) inserts its pairs one
/// critical section at a time: a concurrent reader sees half of it.
#[doc(hidden)]
pub const MUTANT_SPLIT_IOR: Mutant = Mutant(740);
/// Seeded bug 741: a set's `|=` (`SetAlgebraUpdate(Union, ..)`) adds its items
/// one critical section at a time: a concurrent reader sees half of it.
#[doc(hidden)]
pub const MUTANT_SPLIT_SET_IOR: Mutant = Mutant(741);

/// A set operation between the managed set `s` and other items `o`.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SetAlg {
    /// `s | o`: `s`'s items, then `o`'s not in `s`.
    Union,
    /// `s & o`: `s`'s items that are in `o`.
    Intersection,
    /// `s - o`: `s`'s items not in `o`.
    Difference,
    /// `s ^ o`: `s`'s items not in `o`, then `o`'s not in `s`.
    SymmetricDifference,
    /// `o - s` (Python's reflected `-`): `o`'s items not in `s`.
    ReverseDifference,
}

/// A comparison between the managed set `s` and other items `o` (as a set).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SetCmp {
    /// No item in common (`isdisjoint`).
    IsDisjoint,
    /// `s <= o` (`issubset`).
    IsSubset,
    /// `s >= o` (`issuperset`).
    IsSuperset,
    /// `s < o`.
    IsProperSubset,
    /// `s > o`.
    IsProperSuperset,
    /// `s == o`.
    Equal,
}

/// A set of these items (later duplicates dropped).
pub(super) fn set_of(items: Vec<Bytes>) -> OrderedMap {
    let mut m = OrderedMap::default();
    for x in items {
        if m.get(&x).is_none() {
            m.insert(x, Vec::new());
        }
    }
    m
}

fn keys(m: &OrderedMap) -> impl Iterator<Item = &Bytes> {
    m.pairs().map(|(k, _)| k)
}

/// `o`'s items, each once, in order.
fn dedup(o: &[Bytes]) -> Vec<&Bytes> {
    let mut seen = HashSet::new();
    o.iter().filter(|x| seen.insert(*x)).collect()
}

/// The items of `alg` applied to `s` and `o`, in order.
pub fn set_algebra(s: &OrderedMap, alg: SetAlg, o: &[Bytes]) -> Vec<Bytes> {
    let other: HashSet<&Bytes> = o.iter().collect();
    let mine = |x: &Bytes| s.get(x).is_some();
    let from_s = |keep_if_in_o: bool| {
        keys(s)
            .filter(|x| other.contains(x) == keep_if_in_o)
            .cloned()
            .collect::<Vec<_>>()
    };
    let from_o = || {
        dedup(o)
            .into_iter()
            .filter(|x| !mine(x))
            .cloned()
            .collect::<Vec<_>>()
    };
    match alg {
        SetAlg::Union => keys(s).cloned().chain(from_o()).collect(),
        SetAlg::Intersection => from_s(true),
        SetAlg::Difference => from_s(false),
        SetAlg::SymmetricDifference => from_s(false).into_iter().chain(from_o()).collect(),
        SetAlg::ReverseDifference => from_o(),
    }
}

/// `cmp` between `s` and `o` (as a set).
pub fn set_compare(s: &OrderedMap, cmp: SetCmp, o: &[Bytes]) -> bool {
    let other: HashSet<&Bytes> = o.iter().collect();
    let sub = keys(s).all(|x| other.contains(x));
    let sup = other.iter().all(|x| s.get(x).is_some());
    match cmp {
        SetCmp::IsDisjoint => !keys(s).any(|x| other.contains(x)),
        SetCmp::IsSubset => sub,
        SetCmp::IsSuperset => sup,
        SetCmp::IsProperSubset => sub && s.len() < other.len(),
        SetCmp::IsProperSuperset => sup && s.len() > other.len(),
        SetCmp::Equal => sub && s.len() == other.len(),
    }
}

/// The most bytes `l *= n` may make a list hold (a bigger one is refused,
/// where CPython raises `MemoryError`): 64 MiB, procshare's default frame
/// limit, beyond which the list could not be read back in one answer
/// anyway; it also bounds what one small request can make the server allocate.
pub const REPEAT_LIMIT: u64 = 64 << 20;

/// Apply one of this module's operations (or `Len`/`Clear` on a set);
/// `Err(op)` if `op` does not apply to `obj`. Never panics; on error the
/// object is unchanged.
pub(super) fn apply_container(obj: &mut Obj, op: Op) -> Result<Step, Op> {
    Ok(match (obj, op) {
        // ----- sets -----
        (Obj::Set(s), Op::Len) => done(Response::Usize(s.len() as u64)),
        (Obj::Set(s), Op::Clear) => {
            let ch = s.len() > 0;
            s.clear();
            Step::Done(Response::Ok, ch)
        }
        (Obj::Set(s), Op::SetAdd(x)) => {
            if s.get(&x).is_some() {
                done(Response::Bool(false))
            } else {
                s.insert(x, Vec::new());
                changed(Response::Bool(true))
            }
        }
        (Obj::Set(s), Op::SetDiscard(x)) => {
            let was = s.remove(&x).is_some();
            Step::Done(Response::Bool(was), was)
        }
        (Obj::Set(s), Op::SetRemove(x)) => match s.remove(&x) {
            Some(_) => changed(Response::Ok),
            None => err(OpError::KeyNotFound),
        },
        (Obj::Set(s), Op::SetContains(x)) => done(Response::Bool(s.get(&x).is_some())),
        (Obj::Set(s), Op::SetPop) => {
            let first = keys(s).next().cloned();
            match first {
                Some(k) => {
                    s.remove(&k);
                    changed(Response::Item(k))
                }
                None => err(OpError::KeyNotFound),
            }
        }
        (Obj::Set(s), Op::SetItems) => done(Response::Items(keys(s).cloned().collect())),
        (Obj::Set(s), Op::SetAlgebra(alg, o)) => done(Response::Items(set_algebra(s, alg, &o))),
        (Obj::Set(s), Op::SetAlgebraUpdate(alg, o)) => {
            let result = set_algebra(s, alg, &o);
            if result.len() == s.len() && keys(s).eq(result.iter()) {
                return Ok(done(Response::Ok));
            }
            if alg == SetAlg::Union {
                // Only additions: the items already there keep their places.
                for x in result.into_iter().skip(s.len()) {
                    s.insert(x, Vec::new());
                }
            } else {
                let keep: HashSet<&Bytes> = result.iter().collect();
                let gone: Vec<Bytes> = keys(s).filter(|x| !keep.contains(x)).cloned().collect();
                for x in gone {
                    s.remove(&x);
                }
                for x in result {
                    if s.get(&x).is_none() {
                        s.insert(x, Vec::new());
                    }
                }
            }
            changed(Response::Ok)
        }
        (Obj::Set(s), Op::SetCompare(cmp, o)) => done(Response::Bool(set_compare(s, cmp, &o))),
        // ----- lists -----
        (Obj::List(v, ver), Op::ListRepeat(n)) => {
            if n == 1 || v.is_empty() {
                return Ok(done(Response::Ok));
            }
            let bytes: u64 = v.iter().map(|x| x.len() as u64 + 1).sum();
            if bytes.saturating_mul(n) > REPEAT_LIMIT {
                return Ok(err(OpError::BadRequest(format!(
                    "l *= {n}: the list would hold more than {REPEAT_LIMIT} bytes"
                ))));
            }
            let len = v.len();
            if n == 0 {
                v.clear();
            } else {
                // n * bytes is bounded above, so n * len fits.
                v.reserve(len * (n as usize - 1));
                for _ in 1..n {
                    v.extend_from_within(..len);
                }
            }
            *ver += 1;
            changed(Response::Ok)
        }
        // ----- dicts -----
        (Obj::Dict(m), Op::DictOr(pairs)) => {
            let mut r = m.clone();
            for (k, v) in pairs {
                r.insert(k, v);
            }
            done(Response::Pairs(r.pairs().cloned().collect()))
        }
        (Obj::Dict(_), Op::DictFromKeys(ks, v)) => {
            let r = set_of(ks);
            done(Response::Pairs(
                keys(&r).map(|k| (k.clone(), v.clone())).collect(),
            ))
        }
        (Obj::Dict(m), Op::DictPopItem) => match m.order.last_key_value() {
            Some((_, (k, _))) => {
                let k = k.clone();
                match m.remove(&k) {
                    Some(v) => changed(Response::Pairs(vec![(k, v)])),
                    None => err(OpError::KeyNotFound),
                }
            }
            None => err(OpError::KeyNotFound),
        },
        (Obj::Dict(m), Op::DictKeyAfter(after, len)) => {
            if m.len() as u64 != len {
                return Ok(err(OpError::ChangedSize));
            }
            let next = match after {
                None => m.order.iter().next(),
                Some(a) => a
                    .checked_add(1)
                    .and_then(|from| m.order.range(from..).next()),
            };
            done(Response::Next(next.map(|(s, (k, _))| (*s, k.clone()))))
        }
        // ----- queues -----
        (Obj::Queue(q, max), Op::QFull) => {
            done(Response::Bool(max.is_some_and(|m| q.len() as u64 >= m)))
        }
        (_, op) => return Err(op),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(x: u8) -> Bytes {
        vec![x]
    }

    fn set(xs: &[u8]) -> Obj {
        Obj::new(Init::Set(xs.iter().map(|&x| b(x)).collect())).expect("a built-in")
    }

    fn items(o: &mut Obj) -> Vec<Bytes> {
        match apply_container(o, Op::SetItems) {
            Ok(Step::Done(Response::Items(v), _)) => v,
            r => panic!("{r:?}"),
        }
    }

    fn bs(xs: &[u8]) -> Vec<Bytes> {
        xs.iter().map(|&x| b(x)).collect()
    }

    #[test]
    fn set_algebra_follows_python() {
        // {1,2,3} op {2,3,4}
        let s = set_of(bs(&[1, 2, 3, 1]));
        let o = bs(&[2, 3, 4, 4]);
        assert_eq!(set_algebra(&s, SetAlg::Union, &o), bs(&[1, 2, 3, 4]));
        assert_eq!(set_algebra(&s, SetAlg::Intersection, &o), bs(&[2, 3]));
        assert_eq!(set_algebra(&s, SetAlg::Difference, &o), bs(&[1]));
        assert_eq!(
            set_algebra(&s, SetAlg::SymmetricDifference, &o),
            bs(&[1, 4])
        );
        assert_eq!(set_algebra(&s, SetAlg::ReverseDifference, &o), bs(&[4]));
        assert!(set_compare(&s, SetCmp::IsSubset, &bs(&[1, 2, 3, 4])));
        assert!(set_compare(&s, SetCmp::IsProperSubset, &bs(&[1, 2, 3, 4])));
        assert!(!set_compare(&s, SetCmp::IsProperSubset, &bs(&[1, 2, 3])));
        assert!(set_compare(&s, SetCmp::Equal, &bs(&[3, 2, 1, 1])));
        assert!(set_compare(&s, SetCmp::IsDisjoint, &bs(&[5])));
        assert!(set_compare(&s, SetCmp::IsProperSuperset, &bs(&[1])));
    }

    #[test]
    fn set_updates_in_place() {
        let mut o = set(&[1, 2, 3]);
        let r = apply_container(
            &mut o,
            Op::SetAlgebraUpdate(SetAlg::Intersection, bs(&[3, 2, 9])),
        );
        assert_eq!(r.unwrap(), Step::Done(Response::Ok, true));
        assert_eq!(items(&mut o), bs(&[2, 3]));
        let r = apply_container(&mut o, Op::SetAlgebraUpdate(SetAlg::Union, bs(&[2, 3])));
        assert_eq!(r.unwrap(), Step::Done(Response::Ok, false));
        let r = apply_container(&mut o, Op::SetRemove(b(9)));
        assert_eq!(
            r.unwrap(),
            Step::Done(Response::Err(OpError::KeyNotFound), false)
        );
        assert!(matches!(
            apply_container(&mut o, Op::SetPop),
            Ok(Step::Done(Response::Item(x), true)) if x == b(2)
        ));
    }

    #[test]
    fn list_repeat_is_bounded() {
        let mut o = Obj::new(Init::List(bs(&[1, 2]))).expect("a built-in");
        assert_eq!(
            apply_container(&mut o, Op::ListRepeat(2)).unwrap(),
            Step::Done(Response::Ok, true)
        );
        assert!(matches!(
            apply_container(&mut o, Op::ListRepeat(u64::MAX)),
            Ok(Step::Done(Response::Err(OpError::BadRequest(_)), false))
        ));
        assert!(matches!(
            apply_container(&mut o, Op::Snapshot),
            Err(Op::Snapshot) // not this module's
        ));
    }
}
