//! CPython 3.14's additions to the list and dict proxies (list `copy`, `*=`;
//! dict `|`, `|=`, `fromkeys`, `popitem`, `reversed`, iteration), and
//! `manager.dict(pairs)`, which CPython's manager tests use (the queue's
//! `full` is with the queue's other methods, in `sync`). Each is one step of the server.

use super::client::{dec, enc, unexpected, Result};
use super::proxy::{DictProxy, ListProxy};
use super::stored;
use super::sync::RLockProxy;
use super::{Manager, ManagerError};
use procshare_model::manager::{Init, Op, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::borrow::Borrow;

fn pairs<K: DeserializeOwned, V: DeserializeOwned, C: FromIterator<(K, V)>>(
    r: Response,
) -> Result<C> {
    match r {
        Response::Pairs(v) => v.iter().map(|(k, v)| Ok((dec(k)?, dec(v)?))).collect(),
        r => unexpected(r),
    }
}

fn encode_pairs<K: Serialize, V: Serialize, BK: Borrow<K>, BV: Borrow<V>>(
    it: impl IntoIterator<Item = (BK, BV)>,
) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    it.into_iter()
        .map(|(k, v)| Ok((enc(k.borrow())?, enc(v.borrow())?)))
        .collect()
}

impl Manager {
    /// A new shared dict holding `pairs` (later duplicates win, as in
    /// Python's `manager.dict(pairs)` / `manager.dict(a=1, b=2)`).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// let m = procshare::Manager::start().unwrap();
    /// let s = String::from;
    /// let d = m.dict_from::<String, i32, _, _>([(s("a"), 1), (s("b"), 2), (s("a"), 3)]).unwrap();
    /// assert_eq!(d.items().unwrap(), [("a".to_string(), 3), ("b".to_string(), 2)]);
    /// ```
    pub fn dict_from<K, V, BK, BV>(
        &self,
        pairs: impl IntoIterator<Item = (BK, BV)>,
    ) -> Result<DictProxy<K, V>>
    where
        K: Serialize + DeserializeOwned,
        V: Serialize + DeserializeOwned,
        BK: Borrow<K>,
        BV: Borrow<V>,
    {
        // Kept until the dict holds them: a value may be the last proxy to
        // its object.
        let kept: Vec<(BK, BV)> = pairs.into_iter().collect();
        let refs = kept.iter().map(|(k, v)| (k.borrow(), v.borrow()));
        let (pairs, each) = stored::enc_pairs_holding::<K, V, &K, &V>(&self.ep.address, refs)?;
        if !stored::holds_any(&each) {
            return Ok(DictProxy::from_handle(self.create(Init::Dict(pairs))?));
        }
        // Values embedding proxies: stored by one holding `update` of the
        // new dict (which only this handle names yet).
        let h = self.create(Init::Dict(Vec::new()))?;
        let r = h.op(stored::holding_each(each, Op::DictUpdate(pairs)))?;
        drop(kept);
        match r {
            Response::Ok => Ok(DictProxy::from_handle(h)),
            r => unexpected(r),
        }
    }
}

impl<T: Serialize + DeserializeOwned> ListProxy<T> {
    /// A plain copy of the list, in one step (`l.copy()`, CPython 3.14).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// let l = m.list_from([1, 2]).unwrap();
    /// let mut c = l.copy().unwrap();
    /// c.push(3); // a plain Vec: the shared list is unchanged
    /// assert_eq!(l.len().unwrap(), 2);
    /// ```
    pub fn copy(&self) -> Result<Vec<T>> {
        self.to_vec()
    }

    /// Repeat the list in place, in one step (`l *= n`; `0` empties it). A
    /// list that would hold more than 64 MiB (encoded) is refused
    /// ([`OpError::BadRequest`](crate::OpError::BadRequest); CPython raises `MemoryError`).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// let l = m.list_from([5, 7]).unwrap();
    /// l.repeat_in_place(2).unwrap();
    /// assert_eq!(l.to_vec().unwrap(), [5, 7, 5, 7]);
    /// assert!(l.repeat_in_place(usize::MAX).is_err()); // refused, not an OOM
    /// assert_eq!(l.len().unwrap(), 4);
    /// ```
    #[doc(alias = "__imul__")]
    pub fn repeat_in_place(&self, n: usize) -> Result<()> {
        match self.h.op(Op::ListRepeat(n as u64))? {
            Response::Ok => Ok(()),
            r => unexpected(r),
        }
    }
}

/// An iterator over a [`DictProxy`]'s keys (see [`DictProxy::iter`]).
#[derive(Debug)]
pub struct DictIter<'a, K, V> {
    d: &'a DictProxy<K, V>,
    /// The position of the last key yielded (`None`: none yet).
    after: Option<u64>,
    /// The dict's size when the iteration started.
    len: u64,
    done: bool,
}

impl<K: Serialize + DeserializeOwned, V: Serialize + DeserializeOwned> Iterator
    for DictIter<'_, K, V>
{
    type Item = Result<K>;
    fn next(&mut self) -> Option<Result<K>> {
        if self.done {
            return None;
        }
        let r = match self.d.h.op(Op::DictKeyAfter(self.after, self.len)) {
            Ok(Response::Next(Some((pos, k)))) => {
                self.after = Some(pos);
                return Some(dec(&k));
            }
            Ok(Response::Next(None)) => {
                self.done = true;
                return None;
            }
            Ok(r) => unexpected(r),
            Err(e) => Err(e),
        };
        self.done = true;
        Some(r)
    }
}

impl<K: Serialize + DeserializeOwned, V: Serialize + DeserializeOwned> DictProxy<K, V> {
    /// Iterate over the live dict's keys in insertion order, as CPython's
    /// dict proxy does (one round trip per key). If the dict changes size
    /// meanwhile, the next item is [`OpError::ChangedSize`](crate::OpError::ChangedSize) (Python's
    /// `RuntimeError: dictionary changed size during iteration`) and the
    /// iteration ends. For a consistent copy, use [`DictProxy::keys`].
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// use procshare::OpError;
    /// # let m = procshare::Manager::start().unwrap();
    /// let d = m.dict_from::<i32, char, _, _>([(1, 'a'), (2, 'b')]).unwrap();
    /// let keys: Vec<i32> = d.iter().unwrap().map(|k| k.unwrap()).collect();
    /// assert_eq!(keys, [1, 2]);
    /// let mut it = d.iter().unwrap();
    /// d.clear().unwrap();
    /// let e = it.next().unwrap().unwrap_err();
    /// assert_eq!(e.op_error(), Some(&OpError::ChangedSize));
    /// ```
    pub fn iter(&self) -> Result<DictIter<'_, K, V>> {
        let len = match self.h.op(Op::Len)? {
            Response::Usize(n) => n,
            r => return unexpected(r),
        };
        Ok(DictIter {
            d: self,
            after: None,
            len,
            done: false,
        })
    }

    /// A plain copy of the dict, in one step, into the map of the caller's
    /// choice (`d.copy()`; a `Vec<(K, V)>` keeps the insertion order).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// use std::collections::HashMap;
    /// let s = String::from;
    /// let d = m.dict_from::<String, i32, _, _>([(s("foo"), 5)]).unwrap();
    /// let c: HashMap<String, i32> = d.copy().unwrap();
    /// assert_eq!(c, HashMap::from([("foo".to_string(), 5)]));
    /// ```
    pub fn copy<C: FromIterator<(K, V)>>(&self) -> Result<C> {
        pairs(self.h.op(Op::DictItems)?)
    }

    /// `d | other`: the dict's pairs updated with `other`'s, in one step,
    /// as a plain map (the shared dict is unchanged; CPython 3.14).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// let s = String::from;
    /// let d = m.dict_from::<String, i32, _, _>([(s("foo"), 5), (s("bar"), 6)]).unwrap();
    /// let x: Vec<(String, i32)> = d.or([(s("bar"), 7), (s("baz"), 7)]).unwrap();
    /// assert_eq!(x, [("foo".into(), 5), ("bar".into(), 7), ("baz".into(), 7)]);
    /// ```
    #[doc(alias = "__or__")]
    pub fn or<C, BK, BV>(&self, other: impl IntoIterator<Item = (BK, BV)>) -> Result<C>
    where
        C: FromIterator<(K, V)>,
        BK: Borrow<K>,
        BV: Borrow<V>,
    {
        pairs(
            self.h
                .op(Op::DictOr(encode_pairs::<K, V, BK, BV>(other)?))?,
        )
    }

    /// `other | d` (Python's reflected `|`): `other`'s pairs updated with the
    /// dict's (read in one step), as a plain map.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// let s = String::from;
    /// let d = m.dict_from::<String, i32, _, _>([(s("foo"), 5), (s("bar"), 6)]).unwrap();
    /// let x: Vec<(String, i32)> = d.ror([(s("bar"), 7), (s("baz"), 7)]).unwrap();
    /// assert_eq!(x, [("bar".into(), 6), ("baz".into(), 7), ("foo".into(), 5)]);
    /// ```
    #[doc(alias = "__ror__")]
    pub fn ror<C, BK, BV>(&self, other: impl IntoIterator<Item = (BK, BV)>) -> Result<C>
    where
        C: FromIterator<(K, V)>,
        BK: Borrow<K>,
        BV: Borrow<V>,
    {
        // `other` with the dict's pairs over it, keys compared by encoding
        // (as the server does), in Python's order.
        let mut out: Vec<(Vec<u8>, Vec<u8>)> = encode_pairs::<K, V, BK, BV>(other)?;
        let mine = match self.h.op(Op::DictItems)? {
            Response::Pairs(v) => v,
            r => return unexpected(r),
        };
        let mut dedup: Vec<(Vec<u8>, Vec<u8>)> = Vec::with_capacity(out.len() + mine.len());
        for (k, v) in out.drain(..).chain(mine) {
            match dedup.iter_mut().find(|(q, _)| *q == k) {
                Some(slot) => slot.1 = v,
                None => dedup.push((k, v)),
            }
        }
        dedup.iter().map(|(k, v)| Ok((dec(k)?, dec(v)?))).collect()
    }

    /// `d |= other`: insert every pair of `other`, in one step (the same
    /// request as [`DictProxy::update`]).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// let s = String::from;
    /// let d = m.dict_from::<String, i32, _, _>([(s("foo"), 5)]).unwrap();
    /// d.ior([(s("bar"), 6)]).unwrap();
    /// assert_eq!(d.len().unwrap(), 2);
    /// ```
    #[doc(alias = "__ior__")]
    pub fn ior<BK: Borrow<K>, BV: Borrow<V>>(
        &self,
        other: impl IntoIterator<Item = (BK, BV)>,
    ) -> Result<()> {
        self.update(other)
    }

    /// `d.fromkeys(keys, value)`: a plain map of `keys` (each once) to
    /// `value`; the shared dict is unchanged.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// let d = m.dict::<String, i32>().unwrap();
    /// let x: Vec<(String, i32)> = d.fromkeys(["bar"].map(String::from), &6).unwrap();
    /// assert_eq!(x, [("bar".to_string(), 6)]);
    /// assert!(d.is_empty().unwrap());
    /// ```
    pub fn fromkeys<C, BK>(&self, keys: impl IntoIterator<Item = BK>, value: &V) -> Result<C>
    where
        C: FromIterator<(K, V)>,
        BK: Borrow<K>,
    {
        let keys = keys
            .into_iter()
            .map(|k| enc(k.borrow()))
            .collect::<Result<Vec<_>>>()?;
        pairs(self.h.op(Op::DictFromKeys(keys, enc(value)?))?)
    }

    /// Remove and return the last inserted pair (`d.popitem()`);
    /// [`OpError::KeyNotFound`](crate::OpError::KeyNotFound) if the dict is empty (Python's `KeyError`).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// let d = m.dict_from::<i32, char, _, _>([(1, 'a'), (2, 'b')]).unwrap();
    /// assert_eq!(d.popitem().unwrap(), (2, 'b'));
    /// ```
    pub fn popitem(&self) -> Result<(K, V)> {
        let v: Vec<(K, V)> = pairs(self.h.op(Op::DictPopItem)?)?;
        v.into_iter()
            .next()
            .ok_or_else(|| ManagerError::Protocol("popitem answered no pair".into()))
    }

    /// The keys, last inserted first, read in one step (`reversed(d)`).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// let d = m.dict_from::<i32, char, _, _>([(1, 'a'), (2, 'b')]).unwrap();
    /// assert_eq!(d.reversed().unwrap(), [2, 1]);
    /// ```
    pub fn reversed(&self) -> Result<Vec<K>> {
        let mut k = self.keys()?;
        k.reverse();
        Ok(k)
    }
}

impl RLockProxy {
    /// Is the recursive lock held, by anyone (`locked()`, CPython 3.14)?
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// # let m = procshare::Manager::start().unwrap();
    /// let l = m.rlock().unwrap();
    /// l.acquire().unwrap();
    /// assert!(l.is_locked().unwrap());
    /// l.release().unwrap();
    /// assert!(!l.is_locked().unwrap());
    /// ```
    #[doc(alias = "locked")]
    pub fn is_locked(&self) -> Result<bool> {
        match self.h.op(Op::Locked)? {
            Response::Bool(b) => Ok(b),
            r => unexpected(r),
        }
    }
}
