//! The manager's array (`manager.Array(typecode, sequence)`) and its proxy.

use super::client::{dec, enc, unexpected, Handle, Result};
use super::proxy::proxy_common;
use super::Manager;
use procshare_model::manager::{ArrayOp, Init, Kind, Op, Response, Slice};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Borrow;
use std::marker::PhantomData;

impl Manager {
    /// A new shared array holding `items` (`manager.Array(typecode,
    /// sequence)`; the element type plays the typecode: `i32` for `'i'`,
    /// `f64` for `'d'`, ...).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// let m = procshare::Manager::start().unwrap();
    /// let a = m.array::<i32>([1, 2, 3]).unwrap(); // manager.Array('i', [1, 2, 3])
    /// assert_eq!(a.len().unwrap(), 3);
    /// assert_eq!(a.get(-1).unwrap(), 3);
    /// ```
    pub fn array<T: Serialize + DeserializeOwned>(
        &self,
        items: impl IntoIterator<Item = T>,
    ) -> Result<ArrayProxy<T>> {
        let items = items
            .into_iter()
            .map(|x| enc(&x))
            .collect::<Result<Vec<_>>>()?;
        Ok(ArrayProxy::from_handle(self.create(Init::Array(items))?))
    }
}

/// A proxy to an array in the manager (`manager.Array(...)`: CPython's
/// `ArrayProxy`, with `len(a)`, `a[i]`, `a[i] = x` and slices). Indices are
/// Python's (`-1` is the last item); slices take Python's `start`, `stop`
/// and `step` (`None` where Python's are omitted) with Python's clamping.
///
/// ```
/// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
/// let m = procshare::Manager::start().unwrap();
/// let a = m.array::<i64>(0..5).unwrap();
/// a.set(-1, 40).unwrap();                                       // a[-1] = 40
/// assert_eq!(a.slice(Some(1), Some(-1), None).unwrap(), [1, 2, 3]); // a[1:-1]
/// assert_eq!(a.slice(None, None, Some(-2)).unwrap(), [40, 2, 0]); // a[::-2]
/// a.set_slice(Some(0), Some(2), None, [7]).unwrap();            // a[0:2] = array('q', [7])
/// assert_eq!(a.to_vec().unwrap(), [7, 2, 3, 40]);
/// assert!(a.get(9).is_err());                                   // IndexError
/// ```
pub struct ArrayProxy<T> {
    h: Handle,
    _t: PhantomData<fn() -> T>,
}
proxy_common!(ArrayProxy[T], Kind::Array);

impl<T: Serialize + DeserializeOwned> ArrayProxy<T> {
    fn op(&self, a: ArrayOp) -> Result<Response> {
        self.h.op(Op::Array(a))
    }

    /// The number of items (`len(a)`).
    pub fn len(&self) -> Result<usize> {
        match self.op(ArrayOp::Len)? {
            Response::Usize(n) => Ok(n as usize),
            r => unexpected(r),
        }
    }

    /// Is it empty?
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// The item at `i` (`a[i]`; negative: from the end).
    pub fn get(&self, i: i64) -> Result<T> {
        match self.op(ArrayOp::Get(i))? {
            Response::Item(b) => dec(&b),
            r => unexpected(r),
        }
    }

    /// Replace the item at `i` (`a[i] = v`).
    pub fn set(&self, i: i64, v: impl Borrow<T>) -> Result<()> {
        match self.op(ArrayOp::Set(i, enc(v.borrow())?))? {
            Response::Ok => Ok(()),
            r => unexpected(r),
        }
    }

    /// The items of `a[start:stop:step]`.
    pub fn slice(
        &self,
        start: Option<i64>,
        stop: Option<i64>,
        step: Option<i64>,
    ) -> Result<Vec<T>> {
        match self.op(ArrayOp::GetSlice(Slice { start, stop, step }))? {
            Response::Items(v) => v.iter().map(|b| dec(b)).collect(),
            r => unexpected(r),
        }
    }

    /// `a[start:stop:step] = values`: with step 1 (or `None`) any number of
    /// values replaces the slice (the array grows or shrinks); an extended
    /// slice takes exactly as many values as it selects (else an error, and
    /// nothing changes). Atomic.
    pub fn set_slice<B: Borrow<T>>(
        &self,
        start: Option<i64>,
        stop: Option<i64>,
        step: Option<i64>,
        values: impl IntoIterator<Item = B>,
    ) -> Result<()> {
        let v = values
            .into_iter()
            .map(|x| enc(x.borrow()))
            .collect::<Result<Vec<_>>>()?;
        match self.op(ArrayOp::SetSlice(Slice { start, stop, step }, v))? {
            Response::Ok => Ok(()),
            r => unexpected(r),
        }
    }

    /// Every item (`a[:]`), in one request.
    pub fn to_vec(&self) -> Result<Vec<T>> {
        self.slice(None, None, None)
    }
}
