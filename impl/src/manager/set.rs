//! The set proxy (CPython 3.14's `SyncManager.set()` / `SetProxy`).

use super::client::{dec, enc, unexpected, Handle, Result};
use super::proxy::proxy_common;
use super::Manager;
use procshare_model::manager::{Init, Kind, Op, Response, SetAlg, SetCmp};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Borrow;
use std::marker::PhantomData;

fn encode_all<T: Serialize, B: Borrow<T>>(it: impl IntoIterator<Item = B>) -> Result<Vec<Vec<u8>>> {
    it.into_iter().map(|x| enc(x.borrow())).collect()
}

fn flag(r: Response) -> Result<bool> {
    match r {
        Response::Bool(b) => Ok(b),
        r => unexpected(r),
    }
}

fn ok(r: Response) -> Result<()> {
    match r {
        Response::Ok => Ok(()),
        r => unexpected(r),
    }
}

fn collect<T: DeserializeOwned, C: FromIterator<T>>(r: Response) -> Result<C> {
    match r {
        Response::Items(v) => v.iter().map(|b| dec(b)).collect(),
        r => unexpected(r),
    }
}

/// A proxy to a set in the manager (`manager.set()`, CPython 3.14).
///
/// Items are equal when their encodings are (as dict keys). Every operation
/// is one step of the server: the in-place ones (`update` for `|=`,
/// `intersection_update` for `&=`, `difference_update` for `-=`,
/// `symmetric_difference_update` for `^=`) are atomic. The others
/// (`union`, `intersection`, ..., `copy`) answer a plain collection of the
/// caller's choice (`HashSet`, `BTreeSet`, `Vec`, ...), as CPython's answer
/// a plain `set`. Iteration order (and `pop`'s choice) is insertion order.
///
/// ```
/// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
/// use procshare::{Manager, OpError};
/// use std::collections::BTreeSet;
/// let m = Manager::start().unwrap();
/// let s = m.set_from(["a", "b", "c"].map(String::from)).unwrap();
/// assert!(s.contains(&"a".to_string()).unwrap());
/// s.update(["d".to_string()]).unwrap(); // s |= {"d"}
/// let both: BTreeSet<String> = s.intersection(["b", "d", "x"].map(String::from)).unwrap();
/// assert_eq!(both, BTreeSet::from(["b".to_string(), "d".to_string()]));
/// let e = s.remove(&"x".to_string()).unwrap_err();
/// assert_eq!(e.op_error(), Some(&OpError::KeyNotFound)); // Python's KeyError
/// ```
pub struct SetProxy<T> {
    h: Handle,
    _t: PhantomData<fn() -> T>,
}
proxy_common!(SetProxy[T], Kind::Set);

impl Manager {
    /// A new empty shared set (`manager.set()`, CPython 3.14).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// let m = procshare::Manager::start().unwrap();
    /// let s = m.set::<u8>().unwrap();
    /// assert!(s.add(1).unwrap());
    /// assert!(!s.add(1).unwrap());
    /// assert_eq!(s.len().unwrap(), 1);
    /// ```
    pub fn set<T: Serialize + DeserializeOwned>(&self) -> Result<SetProxy<T>> {
        Ok(SetProxy::from_handle(self.create(Init::Set(Vec::new()))?))
    }

    /// A new shared set holding `items`, each once (`manager.set(items)`).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// let m = procshare::Manager::start().unwrap();
    /// assert_eq!(m.set_from([1, 2, 1]).unwrap().len().unwrap(), 2);
    /// ```
    pub fn set_from<T: Serialize + DeserializeOwned>(
        &self,
        items: impl IntoIterator<Item = T>,
    ) -> Result<SetProxy<T>> {
        let items = encode_all::<T, T>(items)?;
        Ok(SetProxy::from_handle(self.create(Init::Set(items))?))
    }
}

impl<T: Serialize + DeserializeOwned> SetProxy<T> {
    /// Add an item; `true` if it was not there (`s.add(x)`).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// let s = m.set::<String>().unwrap();
    /// assert!(s.add("a".to_string()).unwrap());
    /// assert!(!s.add(&"a".to_string()).unwrap());
    /// ```
    pub fn add(&self, v: impl Borrow<T>) -> Result<bool> {
        flag(self.h.op(Op::SetAdd(enc(v.borrow())?))?)
    }

    /// Remove an item if it is there; `true` if it was (`s.discard(x)`).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// let s = m.set_from([1]).unwrap();
    /// assert!(s.discard(&1).unwrap());
    /// assert!(!s.discard(&1).unwrap());
    /// ```
    pub fn discard(&self, v: &T) -> Result<bool> {
        flag(self.h.op(Op::SetDiscard(enc(v)?))?)
    }

    /// Remove an item; [`OpError::KeyNotFound`](crate::OpError::KeyNotFound)
    /// if it is not there (Python's `KeyError`).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// let s = m.set_from([1]).unwrap();
    /// s.remove(&1).unwrap();
    /// assert!(s.remove(&1).is_err());
    /// ```
    pub fn remove(&self, v: &T) -> Result<()> {
        ok(self.h.op(Op::SetRemove(enc(v)?))?)
    }

    /// Is the item there (`x in s`)?
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// assert!(m.set_from([1]).unwrap().contains(&1).unwrap());
    /// ```
    pub fn contains(&self, v: &T) -> Result<bool> {
        flag(self.h.op(Op::SetContains(enc(v)?))?)
    }

    /// Number of items.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// assert_eq!(m.set_from([1, 2]).unwrap().len().unwrap(), 2);
    /// ```
    pub fn len(&self) -> Result<usize> {
        match self.h.op(Op::Len)? {
            Response::Usize(n) => {
                usize::try_from(n).map_err(|_| super::ManagerError::Protocol(format!("count {n}")))
            }
            r => unexpected(r),
        }
    }

    /// Is the set empty?
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// assert!(m.set::<u8>().unwrap().is_empty().unwrap());
    /// ```
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Remove and return an item (the oldest);
    /// [`OpError::KeyNotFound`](crate::OpError::KeyNotFound) if empty.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// let s = m.set_from([7]).unwrap();
    /// assert_eq!(s.pop().unwrap(), 7);
    /// assert!(s.pop().is_err());
    /// ```
    pub fn pop(&self) -> Result<T> {
        match self.h.op(Op::SetPop)? {
            Response::Item(b) => dec(&b),
            r => unexpected(r),
        }
    }

    /// Remove every item.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// let s = m.set_from([7]).unwrap();
    /// s.clear().unwrap();
    /// assert!(s.is_empty().unwrap());
    /// ```
    pub fn clear(&self) -> Result<()> {
        ok(self.h.op(Op::Clear)?)
    }

    fn algebra<C: FromIterator<T>, B: Borrow<T>>(
        &self,
        alg: SetAlg,
        other: impl IntoIterator<Item = B>,
    ) -> Result<C> {
        collect(self.h.op(Op::SetAlgebra(alg, encode_all::<T, B>(other)?))?)
    }

    fn update_with<B: Borrow<T>>(
        &self,
        alg: SetAlg,
        other: impl IntoIterator<Item = B>,
    ) -> Result<()> {
        ok(self
            .h
            .op(Op::SetAlgebraUpdate(alg, encode_all::<T, B>(other)?))?)
    }

    fn compare<B: Borrow<T>>(
        &self,
        cmp: SetCmp,
        other: impl IntoIterator<Item = B>,
    ) -> Result<bool> {
        flag(self.h.op(Op::SetCompare(cmp, encode_all::<T, B>(other)?))?)
    }

    /// Add every item, in one step (`s.update(it)`, `s |= it`).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// let s = m.set_from([1]).unwrap();
    /// s.update([2, 3]).unwrap();
    /// assert_eq!(s.len().unwrap(), 3);
    /// ```
    #[doc(alias = "__ior__")]
    pub fn update<B: Borrow<T>>(&self, other: impl IntoIterator<Item = B>) -> Result<()> {
        self.update_with(SetAlg::Union, other)
    }

    /// Keep only the items also in `other`, in one step (`s &= other`).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// let s = m.set_from([1, 2]).unwrap();
    /// s.intersection_update([2, 3]).unwrap();
    /// assert_eq!(s.copy::<Vec<_>>().unwrap(), [2]);
    /// ```
    #[doc(alias = "__iand__")]
    pub fn intersection_update<B: Borrow<T>>(
        &self,
        other: impl IntoIterator<Item = B>,
    ) -> Result<()> {
        self.update_with(SetAlg::Intersection, other)
    }

    /// Remove the items in `other`, in one step (`s -= other`).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// let s = m.set_from([1, 2]).unwrap();
    /// s.difference_update([2, 3]).unwrap();
    /// assert_eq!(s.copy::<Vec<_>>().unwrap(), [1]);
    /// ```
    #[doc(alias = "__isub__")]
    pub fn difference_update<B: Borrow<T>>(
        &self,
        other: impl IntoIterator<Item = B>,
    ) -> Result<()> {
        self.update_with(SetAlg::Difference, other)
    }

    /// Keep the items in exactly one of the set and `other`, in one step (`s ^= other`).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// let s = m.set_from([1, 2]).unwrap();
    /// s.symmetric_difference_update([2, 3]).unwrap();
    /// assert_eq!(s.copy::<Vec<_>>().unwrap(), [1, 3]);
    /// ```
    #[doc(alias = "__ixor__")]
    pub fn symmetric_difference_update<B: Borrow<T>>(
        &self,
        other: impl IntoIterator<Item = B>,
    ) -> Result<()> {
        self.update_with(SetAlg::SymmetricDifference, other)
    }

    /// `s | other`, as a plain collection (the set is unchanged).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// use std::collections::HashSet;
    /// let s = m.set_from([1]).unwrap();
    /// let u: HashSet<i32> = s.union([2]).unwrap();
    /// assert_eq!(u, HashSet::from([1, 2]));
    /// ```
    #[doc(alias = "__or__")]
    pub fn union<C: FromIterator<T>, B: Borrow<T>>(
        &self,
        other: impl IntoIterator<Item = B>,
    ) -> Result<C> {
        self.algebra(SetAlg::Union, other)
    }

    /// `s & other`, as a plain collection.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// let s = m.set_from([1, 2]).unwrap();
    /// assert_eq!(s.intersection::<Vec<_>, _>([2, 3]).unwrap(), [2]);
    /// ```
    #[doc(alias = "__and__")]
    pub fn intersection<C: FromIterator<T>, B: Borrow<T>>(
        &self,
        other: impl IntoIterator<Item = B>,
    ) -> Result<C> {
        self.algebra(SetAlg::Intersection, other)
    }

    /// `s - other`, as a plain collection.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// let s = m.set_from([1, 2]).unwrap();
    /// assert_eq!(s.difference::<Vec<_>, _>([2, 3]).unwrap(), [1]);
    /// ```
    #[doc(alias = "__sub__")]
    pub fn difference<C: FromIterator<T>, B: Borrow<T>>(
        &self,
        other: impl IntoIterator<Item = B>,
    ) -> Result<C> {
        self.algebra(SetAlg::Difference, other)
    }

    /// `other - s` (Python's reflected `-`), as a plain collection.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// let s = m.set_from([1, 2]).unwrap();
    /// assert_eq!(s.difference_from::<Vec<_>, _>([2, 3]).unwrap(), [3]);
    /// ```
    #[doc(alias = "__rsub__")]
    pub fn difference_from<C: FromIterator<T>, B: Borrow<T>>(
        &self,
        other: impl IntoIterator<Item = B>,
    ) -> Result<C> {
        self.algebra(SetAlg::ReverseDifference, other)
    }

    /// `s ^ other`, as a plain collection.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// let s = m.set_from([1, 2]).unwrap();
    /// assert_eq!(s.symmetric_difference::<Vec<_>, _>([2, 3]).unwrap(), [1, 3]);
    /// ```
    #[doc(alias = "__xor__")]
    pub fn symmetric_difference<C: FromIterator<T>, B: Borrow<T>>(
        &self,
        other: impl IntoIterator<Item = B>,
    ) -> Result<C> {
        self.algebra(SetAlg::SymmetricDifference, other)
    }

    /// No item in common with `other`?
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// assert!(m.set_from([1]).unwrap().isdisjoint([2]).unwrap());
    /// ```
    pub fn isdisjoint<B: Borrow<T>>(&self, other: impl IntoIterator<Item = B>) -> Result<bool> {
        self.compare(SetCmp::IsDisjoint, other)
    }

    /// Is every item in `other` (`s <= other`)?
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// assert!(m.set_from([1]).unwrap().issubset([1, 2]).unwrap());
    /// ```
    #[doc(alias = "__le__")]
    pub fn issubset<B: Borrow<T>>(&self, other: impl IntoIterator<Item = B>) -> Result<bool> {
        self.compare(SetCmp::IsSubset, other)
    }

    /// Is every item of `other` in the set (`s >= other`)?
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// assert!(m.set_from([1, 2]).unwrap().issuperset([1]).unwrap());
    /// ```
    #[doc(alias = "__ge__")]
    pub fn issuperset<B: Borrow<T>>(&self, other: impl IntoIterator<Item = B>) -> Result<bool> {
        self.compare(SetCmp::IsSuperset, other)
    }

    /// `s < other`: a subset, and smaller.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// let s = m.set_from([1]).unwrap();
    /// assert!(s.is_proper_subset([1, 2]).unwrap());
    /// assert!(!s.is_proper_subset([1]).unwrap());
    /// ```
    #[doc(alias = "__lt__")]
    pub fn is_proper_subset<B: Borrow<T>>(
        &self,
        other: impl IntoIterator<Item = B>,
    ) -> Result<bool> {
        self.compare(SetCmp::IsProperSubset, other)
    }

    /// `s > other`: a superset, and bigger.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// assert!(m.set_from([1, 2]).unwrap().is_proper_superset([1]).unwrap());
    /// ```
    #[doc(alias = "__gt__")]
    pub fn is_proper_superset<B: Borrow<T>>(
        &self,
        other: impl IntoIterator<Item = B>,
    ) -> Result<bool> {
        self.compare(SetCmp::IsProperSuperset, other)
    }

    /// Does the set hold exactly the items of `other` (`s == other`)?
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// assert!(m.set_from([1, 2]).unwrap().equals([2, 1, 1]).unwrap());
    /// ```
    #[doc(alias = "__eq__")]
    pub fn equals<B: Borrow<T>>(&self, other: impl IntoIterator<Item = B>) -> Result<bool> {
        self.compare(SetCmp::Equal, other)
    }

    /// Every item, in one step, as a plain collection (`s.copy()`, `set(s)`).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// use std::collections::BTreeSet;
    /// let s = m.set_from([2, 1]).unwrap();
    /// assert_eq!(s.copy::<BTreeSet<_>>().unwrap(), BTreeSet::from([1, 2]));
    /// ```
    pub fn copy<C: FromIterator<T>>(&self) -> Result<C> {
        collect(self.h.op(Op::SetItems)?)
    }

    /// Iterate over a snapshot of the set taken in one step (`for x in s`;
    /// CPython iterates the live set and raises if it changes size meanwhile).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// let s = m.set_from([1, 2]).unwrap();
    /// assert_eq!(s.iter().unwrap().sum::<i32>(), 3);
    /// ```
    pub fn iter(&self) -> Result<std::vec::IntoIter<T>> {
        Ok(self.copy::<Vec<T>>()?.into_iter())
    }
}
