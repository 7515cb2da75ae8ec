//! `Array<T>` and `RawArray<T>`: a fixed-length array of plain data in shared
//! memory (Python's `multiprocessing.Array` and `RawArray`).

use core::ops::{Deref, DerefMut};
use std::time::Duration;

use bytemuck::Pod;

use crate::data::value::{load_relaxed, lock_any, map_lock, map_try, store_relaxed, GuardOwner};
use crate::platform::ShmCell;
use crate::shm::{ShmError, ShmSlice};
use crate::sync::{AnyGuard, AnyLock, LockResult, RLock, TryLockResult};

/// An index past the end (Python's `IndexError: array index out of range`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
#[error("array index {index} out of range (length {len})")]
pub struct IndexError {
    /// The index asked for.
    pub index: usize,
    /// The array's length.
    pub len: usize,
}

/// A fixed-length array of `T` in shared memory, without a lock (Python's `RawArray`).
///
/// Element accesses are unsynchronized copies through relaxed atomics, word by
/// word: an element written concurrently may be read torn (as in Python), but
/// concurrent accesses from any number of threads are never a data race.
///
/// ```
/// let a = procshare::RawArray::<u8>::zeroed(4).unwrap();
/// a.set(1, 9).unwrap();
/// assert_eq!(a.to_vec(), [0, 9, 0, 0]);
/// ```
pub struct RawArray<T: Pod + Send> {
    pub(crate) cells: ShmSlice<ShmCell<T>>,
}

impl<T: Pod + Send> Clone for RawArray<T> {
    fn clone(&self) -> Self {
        RawArray {
            cells: self.cells.clone(),
        }
    }
}

impl<T: Pod + Send + core::fmt::Debug> core::fmt::Debug for RawArray<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_tuple("RawArray").field(&self.to_vec()).finish()
    }
}

impl<T: Pod + Send> RawArray<T> {
    /// `len` zeroed elements (Python's `RawArray(t, len)`).
    pub fn zeroed(len: usize) -> Result<RawArray<T>, ShmError> {
        use procshare_model::platform::CellLike;
        Ok(RawArray {
            cells: ShmSlice::from_fn(len, |_| ShmCell::new(T::zeroed()))?,
        })
    }

    /// The elements of `values` (Python's `RawArray(t, sequence)`).
    pub fn from_values(values: impl IntoIterator<Item = T>) -> Result<RawArray<T>, ShmError> {
        use procshare_model::platform::CellLike;
        Ok(RawArray {
            cells: ShmSlice::from_values(values.into_iter().map(ShmCell::new))?,
        })
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.cells.len()
    }

    /// Is it empty?
    #[doc(alias = "empty")]
    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    /// Where the first element lives in this process.
    pub fn as_ptr(&self) -> *mut T {
        self.cells.as_ptr() as *mut T
    }

    fn check(&self, index: usize) -> Result<(), IndexError> {
        if index < self.len() {
            Ok(())
        } else {
            Err(IndexError {
                index,
                len: self.len(),
            })
        }
    }

    /// Element `index` (unsynchronized).
    pub fn get(&self, index: usize) -> Result<T, IndexError> {
        self.check(index)?;
        // SAFETY: in bounds (checked), so valid and aligned while `self` lives;
        // derived from the ShmCell (UnsafeCell); concurrent accesses of a
        // RawArray's elements are these relaxed per-element copies only.
        Ok(unsafe { load_relaxed(self.as_ptr().add(index)) })
    }

    /// Sets element `index` (unsynchronized).
    pub fn set(&self, index: usize, value: T) -> Result<(), IndexError> {
        self.check(index)?;
        // SAFETY: as in `get`.
        unsafe { store_relaxed(self.as_ptr().add(index), value) };
        Ok(())
    }

    /// A copy of all elements (unsynchronized: each element is copied
    /// atomically as in [`RawArray::get`], the whole is not a snapshot).
    pub fn to_vec(&self) -> Vec<T> {
        (0..self.len())
            // SAFETY: in bounds; as in `get` (element by element, so every
            // access has the granularity of one T at its own address).
            .map(|i| unsafe { load_relaxed(self.as_ptr().add(i)) })
            .collect()
    }
}

/// A fixed-length array of `T` in shared memory with a lock (Python's
/// synchronized `Array`). The lock is a new [`RLock`] unless one is given.
///
/// ```
/// use procshare::Array;
/// let a = Array::<f64>::zeroed(3).unwrap();
/// {
///     let mut g = a.lock().unwrap();
///     g[1] = 2.0;
///     g[2] = g[1] * 2.0;
///     assert_eq!(&g[..], &[0.0, 2.0, 4.0]);
/// }
/// assert_eq!(a.len(), 3);
/// assert_eq!(a.get(2).unwrap(), 4.0);
/// ```
///
/// `Array<T>` and `RawArray<T>`: a fixed-length array of plain data in shared
/// memory (Python's `multiprocessing.Array` and `RawArray`).
///
/// ```
/// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
/// use procshare::{Array, Process};
/// let a = Array::from_values([1i32, 2, 3]).unwrap();
/// let c = a.clone();
/// let mut p = Process::new(move || {
///     c.set(0, 100).unwrap();
/// });
/// p.start().unwrap();
/// p.join().unwrap();
/// assert_eq!(a.to_vec(), [100, 2, 3]);
/// assert!(a.get(3).is_err()); // index out of range
/// ```
///
/// Element-wise [`Array::get`]/[`Array::set`] each take the lock for one
/// element; hold [`Array::lock`]'s guard (which derefs to `[T]`) to read or
/// update several elements atomically. Only [`bytemuck::Pod`] element types
/// are accepted (checked at compile time).
pub struct Array<T: Pod + Send> {
    pub(crate) raw: RawArray<T>,
    pub(crate) lock: AnyLock,
    pub(crate) guard_owner: GuardOwner,
}

impl<T: Pod + Send> Clone for Array<T> {
    fn clone(&self) -> Self {
        Array {
            raw: self.raw.clone(),
            lock: self.lock.clone(),
            guard_owner: self.guard_owner.clone(),
        }
    }
}

impl<T: Pod + Send + core::fmt::Debug> core::fmt::Debug for Array<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Array")
            .field("len", &self.len())
            .field("lock", &self.lock)
            .finish_non_exhaustive()
    }
}

impl<T: Pod + Send> Array<T> {
    /// `len` zeroed elements with a new [`RLock`] (Python's `Array(t, len)`).
    pub fn zeroed(len: usize) -> Result<Array<T>, ShmError> {
        Ok(Self::from_raw(RawArray::zeroed(len)?, RLock::new()?))
    }

    /// The elements of `values` with a new [`RLock`] (Python's `Array(t, sequence)`).
    pub fn from_values(values: impl IntoIterator<Item = T>) -> Result<Array<T>, ShmError> {
        Ok(Self::from_raw(
            RawArray::from_values(values)?,
            RLock::new()?,
        ))
    }

    /// The elements of `values` guarded by `lock` (Python's
    /// `Array(t, sequence, lock=lock)`); several arrays and values may share
    /// one lock.
    ///
    /// The lock must be an [`RLock`], for the reason given at
    /// [`Value::with_lock`](crate::Value::with_lock): a plain
    /// [`Lock`](crate::sync::Lock) could be released by another thread while
    /// a guard's `&mut [T]` lives.
    ///
    /// ```
    /// use procshare::{RLock, Array};
    /// let a = Array::with_lock([1u8, 2], RLock::new().unwrap()).unwrap();
    /// assert_eq!(a.to_vec(), [1, 2]);
    /// ```
    ///
    /// ```compile_fail
    /// use procshare::{Lock, Array};
    /// let a = Array::with_lock([1u8, 2], Lock::new().unwrap()).unwrap();
    /// ```
    pub fn with_lock(
        values: impl IntoIterator<Item = T>,
        lock: RLock,
    ) -> Result<Array<T>, ShmError> {
        Ok(Self::from_raw(RawArray::from_values(values)?, lock))
    }

    /// An array over `raw` guarded by `lock`. Not public: a caller keeping a
    /// clone of `raw` could access the data while a guard's `&mut [T]` lives.
    fn from_raw(raw: RawArray<T>, lock: RLock) -> Array<T> {
        Array {
            raw,
            lock: lock.into(),
            guard_owner: GuardOwner::default(),
        }
    }

    /// The lock (Python's `get_lock()`).
    pub fn get_lock(&self) -> &AnyLock {
        &self.lock
    }

    /// The unsynchronized array underneath (Python's `get_obj()`).
    ///
    /// # Safety
    ///
    /// While the returned handle (or a clone of it) is used to read or write,
    /// no thread of this process may hold a guard of this array
    /// ([`Array::lock`] and variants): the guard's `&mut [T]` would alias the
    /// unsynchronized access (a data race). [`Array::get`]/[`Array::set`]/
    /// [`Array::to_vec`] copy atomically and may run concurrently with it.
    pub unsafe fn get_obj(&self) -> &RawArray<T> {
        &self.raw
    }

    /// Where the first element lives in this process (its identity; reading
    /// or writing through it needs the lock).
    pub fn as_ptr(&self) -> *mut T {
        self.raw.as_ptr()
    }

    /// The number of elements (Python's `len(a)`).
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// Is it empty?
    #[doc(alias = "empty")]
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    fn guard<'a>(&'a self, me: u32, g: AnyGuard<'a>) -> ArrayGuard<'a, T> {
        self.guard_owner.enter(me, "Array");
        ArrayGuard {
            array: self,
            _lock: g,
        }
    }

    /// Locks and returns a guard that derefs to `[T]`.
    ///
    /// # Panics
    ///
    /// If this thread already holds a guard of this array.
    pub fn lock(&self) -> LockResult<ArrayGuard<'_, T>> {
        let me = self.guard_owner.check("Array");
        map_lock(self.lock.lock(), |g| self.guard(me, g))
    }

    /// [`Array::lock`] without waiting.
    pub fn try_lock(&self) -> TryLockResult<ArrayGuard<'_, T>> {
        let me = self.guard_owner.check("Array");
        map_try(self.lock.try_lock(), |g| self.guard(me, g))
    }

    /// [`Array::lock`] waiting at most `timeout`.
    pub fn lock_timeout(&self, timeout: Duration) -> TryLockResult<ArrayGuard<'_, T>> {
        let me = self.guard_owner.check("Array");
        map_try(self.lock.lock_timeout(timeout), |g| self.guard(me, g))
    }

    /// Element `index`, read under the lock (Python's `a[i]`).
    ///
    /// # Panics
    ///
    /// If this thread holds a guard of this array (use the guard).
    pub fn get(&self, index: usize) -> Result<T, IndexError> {
        self.guard_owner.check("Array");
        let _g = lock_any(&self.lock);
        self.raw.get(index)
    }

    /// Sets element `index` under the lock (Python's `a[i] = x`).
    ///
    /// # Panics
    ///
    /// If this thread holds a guard of this array (use the guard).
    pub fn set(&self, index: usize, value: T) -> Result<(), IndexError> {
        self.guard_owner.check("Array");
        let _g = lock_any(&self.lock);
        self.raw.set(index, value)
    }

    /// A copy of all elements, taken under the lock (Python's `a[:]`).
    ///
    /// # Panics
    ///
    /// If this thread holds a guard of this array (use the guard).
    pub fn to_vec(&self) -> Vec<T> {
        self.guard_owner.check("Array");
        let _g = lock_any(&self.lock);
        self.raw.to_vec()
    }
}

/// The array, locked. Derefs to `[T]` (slices, iteration, indexing); unlocks on drop.
#[must_use = "the lock is released when the guard is dropped"]
pub struct ArrayGuard<'a, T: Pod + Send> {
    array: &'a Array<T>,
    _lock: AnyGuard<'a>,
}

impl<T: Pod + Send> Drop for ArrayGuard<'_, T> {
    fn drop(&mut self) {
        self.array.guard_owner.exit();
    }
}

impl<T: Pod + Send> Deref for ArrayGuard<'_, T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: the lock is held and cannot be released under this guard (an
        // RLock: only this thread may release it, and not the guard's level);
        // this is the thread's only guard (GuardOwner); unsynchronized handles
        // come only from the unsafe `get_obj`. ShmCell<T> is transparent over
        // T, so the cells are `len` valid Ts.
        unsafe { core::slice::from_raw_parts(self.array.raw.as_ptr(), self.array.len()) }
    }
}

impl<T: Pod + Send> DerefMut for ArrayGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`; `&mut self` makes the borrow unique.
        unsafe { core::slice::from_raw_parts_mut(self.array.raw.as_ptr(), self.array.len()) }
    }
}

impl<T: Pod + Send + core::fmt::Debug> core::fmt::Debug for ArrayGuard<'_, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_tuple("ArrayGuard").field(&&**self).finish()
    }
}
