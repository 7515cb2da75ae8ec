//! Data proxies: list, dict, value, namespace.

use super::client::{dec, enc, unexpected, Handle, ManagerError, Result};
use super::stored::{enc_each, enc_holding, enc_pairs_holding, holding, holding_each};
use procshare_model::manager::{Kind, Op, OpError, Request, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Borrow;
use std::marker::PhantomData;
use std::ops::Range;

/// Define a proxy type's shared boilerplate: Clone, Debug, serde as a token.
macro_rules! proxy_common {
    ($name:ident [$($p:ident),*], $kind:expr) => {
        impl<$($p),*> Clone for $name<$($p),*> {
            fn clone(&self) -> Self {
                Self { h: self.h.clone(), _t: PhantomData }
            }
        }
        impl<$($p),*> std::fmt::Debug for $name<$($p),*> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.h)
            }
        }
        impl<$($p),*> PartialEq for $name<$($p),*> {
            /// Two proxies are equal when they refer to the same object.
            fn eq(&self, o: &Self) -> bool {
                self.h.id == o.h.id && self.h.ep.address == o.h.ep.address
            }
        }
        impl<$($p),*> Serialize for $name<$($p),*> {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                self.h.serialize(s)
            }
        }
        impl<'de, $($p),*> Deserialize<'de> for $name<$($p),*> {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                Ok(Self { h: Handle::deserialize(d, $kind)?, _t: PhantomData })
            }
        }
        impl<$($p),*> $name<$($p),*> {
            pub(crate) fn from_handle(h: Handle) -> Self {
                Self { h, _t: PhantomData }
            }
        }
    };
}
pub(crate) use proxy_common;

fn ok(r: Response) -> Result<()> {
    match r {
        Response::Ok => Ok(()),
        r => unexpected(r),
    }
}
fn item(r: Response) -> Result<Vec<u8>> {
    match r {
        Response::Item(b) => Ok(b),
        r => unexpected(r),
    }
}
fn usize_(r: Response) -> Result<usize> {
    match r {
        Response::Usize(n) => {
            usize::try_from(n).map_err(|_| ManagerError::Protocol(format!("count {n}")))
        }
        r => unexpected(r),
    }
}
fn items<T: DeserializeOwned>(r: Response) -> Result<Vec<T>> {
    match r {
        Response::Items(v) => v.iter().map(|b| dec(b)).collect(),
        r => unexpected(r),
    }
}
fn maybe<T: DeserializeOwned>(r: Response) -> Result<Option<T>> {
    match r {
        Response::MaybeItem(v) => v.map(|b| dec(&b)).transpose(),
        r => unexpected(r),
    }
}
fn idx(i: usize) -> u64 {
    i as u64
}

/// An index accepted by a list proxy: Python's, so negative indices count
/// from the end (`-1` is the last item). Implemented for the integer types.
pub trait ListIndex: Copy {
    /// The index as an `i64` (an unsigned index past `i64::MAX` saturates:
    /// it is out of range of every list).
    fn to_i64(self) -> i64;
}

macro_rules! list_index {
    ($($t:ty),*) => {$(
        impl ListIndex for $t {
            fn to_i64(self) -> i64 {
                i64::try_from(self).unwrap_or(i64::MAX)
            }
        }
    )*};
}
list_index!(usize, isize, i32, i64, u32, u64);

/// An iterator over a [`ListProxy`] by index (see [`ListProxy::iter`]).
#[derive(Debug)]
pub struct ListIter<'a, T> {
    l: &'a ListProxy<T>,
    next: i64,
}

impl<T: Serialize + DeserializeOwned> Iterator for ListIter<'_, T> {
    type Item = Result<T>;
    fn next(&mut self) -> Option<Result<T>> {
        if self.next < 0 {
            return None;
        }
        match self.l.h.op(Op::GetAt(self.next)) {
            Ok(r) => {
                self.next += 1;
                Some(item(r).and_then(|b| dec(&b)))
            }
            Err(ManagerError::Op(OpError::IndexOutOfRange { .. })) => {
                self.next = -1;
                None
            }
            Err(e) => {
                self.next = -1;
                Some(Err(e))
            }
        }
    }
}

/// A proxy to a list in the manager (`manager.list()`).
///
/// Indices are Python's ([`ListIndex`]: `-1` is the last item); ranges are
/// `usize` and clamped like Python slices. A value is equal to an item when their encodings are equal.
///
/// ```
/// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
/// use procshare::{Manager, OpError};
/// let m = Manager::start().unwrap();
/// let l = m.list_from([3, 1, 2]).unwrap();
/// l.sort().unwrap();
/// assert_eq!(l.to_vec().unwrap(), [1, 2, 3]);
/// assert_eq!(l.index(&2).unwrap(), 1);
/// assert_eq!(l.remove(&9).unwrap_err().op_error(), Some(&OpError::ValueNotInList));
/// assert_eq!(l.pop().unwrap(), 3);
/// ```
pub struct ListProxy<T> {
    pub(super) h: Handle,
    _t: PhantomData<fn() -> T>,
}
proxy_common!(ListProxy[T], Kind::List);

impl<T: Serialize + DeserializeOwned> ListProxy<T> {
    /// Append an item.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// let l = m.list::<String>().unwrap();
    /// l.append("a".to_string()).unwrap();
    /// l.append(&"b".to_string()).unwrap();
    /// assert_eq!(l.len().unwrap(), 2);
    /// ```
    pub fn append(&self, v: impl Borrow<T>) -> Result<()> {
        let (b, ids) = enc_holding(&self.h.ep.address, v.borrow())?;
        ok(self.h.op(holding(ids, Op::Append(b)))?)
    }

    /// Append several items in one request, atomically (no other operation
    /// sees part of them).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// let l = m.list::<u8>().unwrap();
    /// l.extend([1, 2, 3]).unwrap();
    /// assert_eq!(l.to_vec().unwrap(), [1, 2, 3]);
    /// ```
    pub fn extend<B: Borrow<T>>(&self, it: impl IntoIterator<Item = B>) -> Result<()> {
        let (v, each) = enc_each::<T, B>(&self.h.ep.address, it)?;
        ok(self.h.op(holding_each(each, Op::Extend(v)))?)
    }

    /// Append items one request each, pipelined: requests are written without
    /// waiting for each answer (in windows of 64). Each append is atomic on its
    /// own; others may interleave between them.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// let l = m.list::<u8>().unwrap();
    /// l.append_pipelined([1, 2]).unwrap();
    /// assert_eq!(l.to_vec().unwrap(), [1, 2]);
    /// ```
    pub fn append_pipelined<B: Borrow<T>>(&self, it: impl IntoIterator<Item = B>) -> Result<()> {
        let reqs = it
            .into_iter()
            .map(|x| Ok(Request::Op(self.h.id, Op::Append(enc(x.borrow())?))))
            .collect::<Result<Vec<_>>>()?;
        for r in super::client::call_pipelined(&self.h.ep, &reqs)? {
            match r {
                Response::Ok => {}
                Response::Err(e) => return Err(e.into()),
                r => return unexpected(r),
            }
        }
        Ok(())
    }

    /// Insert before index `i` (an index past the end appends, as in Python).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// let l = m.list_from([1, 3]).unwrap();
    /// l.insert(1, 2).unwrap();
    /// l.insert(99, 4).unwrap();
    /// assert_eq!(l.to_vec().unwrap(), [1, 2, 3, 4]);
    /// ```
    pub fn insert(&self, i: impl ListIndex, v: impl Borrow<T>) -> Result<()> {
        let (b, ids) = enc_holding(&self.h.ep.address, v.borrow())?;
        ok(self.h.op(holding(ids, Op::InsertAt(i.to_i64(), b)))?)
    }

    /// Remove and return the last item (`IndexOutOfRange` if empty).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// let l = m.list_from([1]).unwrap();
    /// assert_eq!(l.pop().unwrap(), 1);
    /// assert!(l.pop().is_err());
    /// ```
    pub fn pop(&self) -> Result<T> {
        dec(&item(self.h.op(Op::Pop(None))?)?)
    }

    /// Remove and return the item at `i`.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// let l = m.list_from([1, 2]).unwrap();
    /// assert_eq!(l.pop_at(0).unwrap(), 1);
    /// ```
    pub fn pop_at(&self, i: impl ListIndex) -> Result<T> {
        dec(&item(self.h.op(Op::PopAt(i.to_i64()))?)?)
    }

    /// Remove the first item equal to `v` (`ValueNotInList` if none).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// let l = m.list_from([1, 2, 1]).unwrap();
    /// l.remove(&1).unwrap();
    /// assert_eq!(l.to_vec().unwrap(), [2, 1]);
    /// ```
    pub fn remove(&self, v: &T) -> Result<()> {
        ok(self.h.op(Op::Remove(enc(v)?))?)
    }

    /// Index of the first item equal to `v` (`ValueNotInList` if none).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// assert_eq!(m.list_from([5, 6]).unwrap().index(&6).unwrap(), 1);
    /// ```
    pub fn index(&self, v: &T) -> Result<usize> {
        usize_(self.h.op(Op::Index(enc(v)?))?)
    }

    /// Number of items equal to `v`.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// assert_eq!(m.list_from([5, 6, 5]).unwrap().count(&5).unwrap(), 2);
    /// ```
    pub fn count(&self, v: &T) -> Result<usize> {
        usize_(self.h.op(Op::Count(enc(v)?))?)
    }

    /// The item at `i` (`IndexOutOfRange` if none).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// assert_eq!(m.list_from([5]).unwrap().get(0).unwrap(), 5);
    /// ```
    pub fn get(&self, i: impl ListIndex) -> Result<T> {
        dec(&item(self.h.op(Op::GetAt(i.to_i64()))?)?)
    }

    /// Replace the item at `i`.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// let l = m.list_from([5]).unwrap();
    /// l.set(0, 6).unwrap();
    /// assert!(l.set(1, 7).is_err());
    /// assert_eq!(l.to_vec().unwrap(), [6]);
    /// ```
    pub fn set(&self, i: impl ListIndex, v: impl Borrow<T>) -> Result<()> {
        let (b, ids) = enc_holding(&self.h.ep.address, v.borrow())?;
        ok(self.h.op(holding(ids, Op::SetAt(i.to_i64(), b)))?)
    }

    /// Delete the item at `i` (`del l[i]`).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// let l = m.list_from([5, 6]).unwrap();
    /// l.delete(0).unwrap();
    /// assert_eq!(l.to_vec().unwrap(), [6]);
    /// ```
    pub fn delete(&self, i: impl ListIndex) -> Result<()> {
        item(self.h.op(Op::DeleteAt(i.to_i64()))?).map(drop)
    }

    /// Number of items.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// assert_eq!(m.list_from([5, 6]).unwrap().len().unwrap(), 2);
    /// ```
    pub fn len(&self) -> Result<usize> {
        usize_(self.h.op(Op::Len)?)
    }

    /// Is the list empty?
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// assert!(m.list::<u8>().unwrap().is_empty().unwrap());
    /// ```
    #[doc(alias = "empty")]
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Remove every item.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// let l = m.list_from([5]).unwrap();
    /// l.clear().unwrap();
    /// assert!(l.is_empty().unwrap());
    /// ```
    pub fn clear(&self) -> Result<()> {
        ok(self.h.op(Op::Clear)?)
    }

    /// Reverse in place.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// let l = m.list_from([1, 2]).unwrap();
    /// l.reverse().unwrap();
    /// assert_eq!(l.to_vec().unwrap(), [2, 1]);
    /// ```
    pub fn reverse(&self) -> Result<()> {
        ok(self.h.op(Op::Reverse)?)
    }

    /// All items (a copy).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// assert_eq!(m.list_from(["a".to_string()]).unwrap().to_vec().unwrap(), ["a"]);
    /// ```
    pub fn to_vec(&self) -> Result<Vec<T>> {
        Ok(self.snapshot()?.1)
    }

    fn snapshot(&self) -> Result<(u64, Vec<T>)> {
        match self.h.op(Op::Snapshot)? {
            Response::Versioned(ver, v) => {
                Ok((ver, v.iter().map(|b| dec(b)).collect::<Result<_>>()?))
            }
            r => unexpected(r),
        }
    }

    /// Iterate over the live list by index, as CPython's list proxy does
    /// (one round trip per item; an item written meanwhile is seen, the
    /// iteration ends at the first index past the end). For a consistent
    /// copy, use [`ListProxy::to_vec`].
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// let l = m.list_from([1, 2]).unwrap();
    /// let sum: i32 = l.iter().map(|x| x.unwrap()).sum();
    /// assert_eq!(sum, 3);
    /// let mut it = l.iter();
    /// assert_eq!(it.next().unwrap().unwrap(), 1);
    /// l.append(3).unwrap(); // seen by the running iteration
    /// assert_eq!(it.map(|x| x.unwrap()).collect::<Vec<_>>(), [2, 3]);
    /// ```
    pub fn iter(&self) -> ListIter<'_, T> {
        ListIter { l: self, next: 0 }
    }

    /// Items in `r` (clamped, as `l[a:b]`).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// assert_eq!(m.list_from([1, 2, 3]).unwrap().get_range(1..9).unwrap(), [2, 3]);
    /// ```
    pub fn get_range(&self, r: Range<usize>) -> Result<Vec<T>> {
        items(self.h.op(Op::GetRange(idx(r.start), idx(r.end)))?)
    }

    /// Replace the items in `r` (clamped) with `it` (`l[a:b] = it`).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// let l = m.list_from([1, 2, 3]).unwrap();
    /// l.set_range(0..2, [9]).unwrap();
    /// assert_eq!(l.to_vec().unwrap(), [9, 3]);
    /// ```
    pub fn set_range<B: Borrow<T>>(
        &self,
        r: Range<usize>,
        it: impl IntoIterator<Item = B>,
    ) -> Result<()> {
        let v = it
            .into_iter()
            .map(|x| enc(x.borrow()))
            .collect::<Result<Vec<_>>>()?;
        ok(self.h.op(Op::SetRange(idx(r.start), idx(r.end), v))?)
    }

    /// Sort by `T: Ord` (stable). The client sorts a snapshot and writes it
    /// back only if the list has not changed since (else it retries): the sort
    /// is atomic with respect to every other operation.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// let l = m.list_from(["b".to_string(), "a".to_string()]).unwrap();
    /// l.sort().unwrap();
    /// assert_eq!(l.to_vec().unwrap(), ["a", "b"]);
    /// ```
    pub fn sort(&self) -> Result<()>
    where
        T: Ord,
    {
        procshare_model::manager::sort_list(&self.h, |items| {
            let mut v = items
                .iter()
                .map(|b| dec::<T>(b))
                .collect::<Result<Vec<_>>>()?;
            v.sort();
            v.iter().map(|x| enc(x)).collect()
        })
    }
}

/// A proxy to an insertion-ordered dict in the manager (`manager.dict()`).
/// Keys are compared by their encodings.
///
/// ```
/// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
/// use procshare::{Manager, OpError};
/// let m = Manager::start().unwrap();
/// let d = m.dict::<String, i32>().unwrap();
/// d.insert("b".to_string(), 2).unwrap();
/// d.insert("a".to_string(), 1).unwrap();
/// assert_eq!(d.keys().unwrap(), ["b", "a"]); // insertion order, as Python
/// assert_eq!(d.pop(&"x".into()).unwrap_err().op_error(), Some(&OpError::KeyNotFound));
/// ```
pub struct DictProxy<K, V> {
    pub(super) h: Handle,
    _t: PhantomData<fn() -> (K, V)>,
}
proxy_common!(DictProxy[K, V], Kind::Dict);

impl<K: Serialize + DeserializeOwned, V: Serialize + DeserializeOwned> DictProxy<K, V> {
    /// The value for `k`, if any.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// let d = m.dict::<u8, u8>().unwrap();
    /// assert_eq!(d.get(&1).unwrap(), None);
    /// ```
    pub fn get(&self, k: &K) -> Result<Option<V>> {
        maybe(self.h.op(Op::DictGet(enc(k)?))?)
    }

    /// The value for `k`; `KeyNotFound` if absent (`d[k]`).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// let d = m.dict::<u8, u8>().unwrap();
    /// assert!(d.item(&1).is_err());
    /// ```
    pub fn item(&self, k: &K) -> Result<V> {
        dec(&item(self.h.op(Op::DictItem(enc(k)?))?)?)
    }

    /// Set `k` to `v`; returns the previous value.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// let d = m.dict::<u8, u8>().unwrap();
    /// assert_eq!(d.insert(1, 2).unwrap(), None);
    /// assert_eq!(d.insert(1, 3).unwrap(), Some(2));
    /// ```
    pub fn insert(&self, k: impl Borrow<K>, v: impl Borrow<V>) -> Result<Option<V>> {
        let (b, ids) = enc_holding(&self.h.ep.address, v.borrow())?;
        maybe(
            self.h
                .op(holding(ids, Op::DictInsert(enc(k.borrow())?, b)))?,
        )
    }

    /// Remove `k`; returns its value, if it was there.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// let d = m.dict::<u8, u8>().unwrap();
    /// d.insert(1, 2).unwrap();
    /// assert_eq!(d.remove(&1).unwrap(), Some(2));
    /// assert_eq!(d.remove(&1).unwrap(), None);
    /// ```
    pub fn remove(&self, k: &K) -> Result<Option<V>> {
        maybe(self.h.op(Op::DictRemove(enc(k)?))?)
    }

    /// Remove `k` and return its value; `KeyNotFound` if absent (`d.pop(k)`).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// let d = m.dict::<u8, u8>().unwrap();
    /// d.insert(1, 2).unwrap();
    /// assert_eq!(d.pop(&1).unwrap(), 2);
    /// assert!(d.pop(&1).is_err());
    /// ```
    pub fn pop(&self, k: &K) -> Result<V> {
        dec(&item(self.h.op(Op::DictPop(enc(k)?))?)?)
    }

    /// Is `k` present?
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// let d = m.dict::<u8, u8>().unwrap();
    /// assert!(!d.contains_key(&1).unwrap());
    /// ```
    pub fn contains_key(&self, k: &K) -> Result<bool> {
        match self.h.op(Op::DictContains(enc(k)?))? {
            Response::Bool(b) => Ok(b),
            r => unexpected(r),
        }
    }

    /// Number of entries.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// assert_eq!(m.dict::<u8, u8>().unwrap().len().unwrap(), 0);
    /// ```
    pub fn len(&self) -> Result<usize> {
        usize_(self.h.op(Op::Len)?)
    }

    /// Is the dict empty?
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// assert!(m.dict::<u8, u8>().unwrap().is_empty().unwrap());
    /// ```
    #[doc(alias = "empty")]
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// All keys, in insertion order.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// let d = m.dict::<u8, u8>().unwrap();
    /// d.update([(2, 0), (1, 0)]).unwrap();
    /// assert_eq!(d.keys().unwrap(), [2, 1]);
    /// ```
    pub fn keys(&self) -> Result<Vec<K>> {
        items(self.h.op(Op::DictKeys)?)
    }

    /// All values, in insertion order.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// let d = m.dict::<u8, u8>().unwrap();
    /// d.update([(2, 5), (1, 6)]).unwrap();
    /// assert_eq!(d.values().unwrap(), [5, 6]);
    /// ```
    pub fn values(&self) -> Result<Vec<V>> {
        items(self.h.op(Op::DictValues)?)
    }

    /// All pairs, in insertion order.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// let d = m.dict::<u8, u8>().unwrap();
    /// d.insert(1, 2).unwrap();
    /// assert_eq!(d.items().unwrap(), [(1, 2)]);
    /// ```
    pub fn items(&self) -> Result<Vec<(K, V)>> {
        match self.h.op(Op::DictItems)? {
            Response::Pairs(v) => v.iter().map(|(k, v)| Ok((dec(k)?, dec(v)?))).collect(),
            r => unexpected(r),
        }
    }

    /// Insert every pair, atomically.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// let d = m.dict::<u8, u8>().unwrap();
    /// d.update([(1, 1), (1, 2)]).unwrap();
    /// assert_eq!(d.items().unwrap(), [(1, 2)]);
    /// ```
    pub fn update<BK: Borrow<K>, BV: Borrow<V>>(
        &self,
        it: impl IntoIterator<Item = (BK, BV)>,
    ) -> Result<()> {
        let (pairs, each) = enc_pairs_holding::<K, V, BK, BV>(&self.h.ep.address, it)?;
        ok(self.h.op(holding_each(each, Op::DictUpdate(pairs)))?)
    }

    /// Remove every entry.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// let d = m.dict::<u8, u8>().unwrap();
    /// d.insert(1, 1).unwrap();
    /// d.clear().unwrap();
    /// assert!(d.is_empty().unwrap());
    /// ```
    pub fn clear(&self) -> Result<()> {
        ok(self.h.op(Op::Clear)?)
    }

    /// The value for `k`, inserting `default` first if absent (`d.setdefault(k, default)`).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// let d = m.dict::<u8, u8>().unwrap();
    /// assert_eq!(d.setdefault(1, 5).unwrap(), 5);
    /// assert_eq!(d.setdefault(1, 6).unwrap(), 5);
    /// ```
    pub fn setdefault(&self, k: impl Borrow<K>, default: impl Borrow<V>) -> Result<V> {
        let (b, ids) = enc_holding(&self.h.ep.address, default.borrow())?;
        dec(&item(self.h.op(holding(
            ids,
            Op::DictSetDefault(enc(k.borrow())?, b),
        ))?)?)
    }
}

/// A proxy to a single value in the manager (`manager.Value`).
///
/// ```
/// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
/// let m = procshare::Manager::start().unwrap();
/// let v = m.value(vec![1, 2]).unwrap();
/// v.set(&vec![3]).unwrap();
/// assert_eq!(v.get().unwrap(), [3]);
/// ```
pub struct ValueProxy<T> {
    h: Handle,
    _t: PhantomData<fn() -> T>,
}
proxy_common!(ValueProxy[T], Kind::Value);

impl<T: Serialize + DeserializeOwned> ValueProxy<T> {
    /// Read the value.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// assert_eq!(m.value(1u8).unwrap().get().unwrap(), 1);
    /// ```
    pub fn get(&self) -> Result<T> {
        dec(&item(self.h.op(Op::ValueGet)?)?)
    }

    /// Write the value.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// let v = m.value(1u8).unwrap();
    /// v.set(&2).unwrap();
    /// assert_eq!(v.get().unwrap(), 2);
    /// ```
    pub fn set(&self, v: &T) -> Result<()> {
        let (b, ids) = enc_holding(&self.h.ep.address, v)?;
        ok(self.h.op(holding(ids, Op::ValueSet(b)))?)
    }

    /// Write the value on behalf of the lock acquisition whose fencing token
    /// is `token` ([`LockProxy::fencing_token`](super::LockProxy::fencing_token)),
    /// unless a write with a larger token came first: `Ok(false)` then, and
    /// nothing is written. This is what makes a holder that was paused past
    /// its lease harmless: its late write carries a smaller token than the
    /// next holder's. Redis managers only (a local manager answers
    /// [`OpError::BadRequest`]).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// let v = m.value(1u8).unwrap();
    /// assert!(v.set_fenced(1, &2).is_err()); // a local manager has no tokens
    /// ```
    pub fn set_fenced(&self, token: u64, v: &T) -> Result<bool> {
        self.h.fenced_set(token, &enc(v)?)
    }
}

/// A proxy to a namespace in the manager (`manager.Namespace()`): named
/// attributes of any serde type (each read names its type).
///
/// ```
/// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
/// use procshare::{Manager, OpError};
/// let m = Manager::start().unwrap();
/// let ns = m.namespace().unwrap();
/// ns.set("x", &1i32).unwrap();
/// ns.set("name", &"n".to_string()).unwrap();
/// assert_eq!(ns.get::<String>("name").unwrap(), "n");
/// assert!(matches!(ns.get::<i32>("y").unwrap_err().op_error(), Some(OpError::AttributeNotFound(_))));
/// assert_eq!(ns.names().unwrap(), ["name", "x"]);
/// ```
pub struct NamespaceProxy {
    h: Handle,
    _t: PhantomData<()>,
}
proxy_common!(NamespaceProxy[], Kind::Namespace);

impl NamespaceProxy {
    /// Read attribute `name` as a `T`.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// let ns = m.namespace().unwrap();
    /// ns.set("a", &[1u8, 2]).unwrap();
    /// assert_eq!(ns.get::<[u8; 2]>("a").unwrap(), [1, 2]);
    /// ```
    pub fn get<T: DeserializeOwned>(&self, name: &str) -> Result<T> {
        dec(&item(self.h.op(Op::NsGet(name.to_string()))?)?)
    }

    /// Write attribute `name`.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// m.namespace().unwrap().set("a", &1u8).unwrap();
    /// ```
    pub fn set<T: Serialize + ?Sized>(&self, name: &str, v: &T) -> Result<()> {
        let (b, ids) = enc_holding(&self.h.ep.address, v)?;
        ok(self.h.op(holding(ids, Op::NsSet(name.to_string(), b)))?)
    }

    /// Delete attribute `name`.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// let ns = m.namespace().unwrap();
    /// ns.set("a", &1u8).unwrap();
    /// ns.del("a").unwrap();
    /// assert!(ns.del("a").is_err());
    /// ```
    pub fn del(&self, name: &str) -> Result<()> {
        ok(self.h.op(Op::NsDel(name.to_string()))?)
    }

    /// Attribute names, sorted.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// assert!(m.namespace().unwrap().names().unwrap().is_empty());
    /// ```
    pub fn names(&self) -> Result<Vec<String>> {
        match self.h.op(Op::NsItems)? {
            Response::Attrs(v) => Ok(v.into_iter().map(|(k, _)| k).collect()),
            r => unexpected(r),
        }
    }
}
