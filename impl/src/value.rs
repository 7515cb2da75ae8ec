//! `Value<T>` and `RawValue<T>`: one plain-data value in shared memory
//! (Python's `multiprocessing.Value` and `RawValue`).
//!
//! ```
//! # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
//! use procshare::{Process, Value};
//! let v = Value::new(0i64).unwrap();
//! let c = v.clone();
//! let mut p = Process::new(move || {
//!     *c.lock().unwrap() += 5; // atomic read-modify-write under the lock
//! });
//! p.start().unwrap();
//! p.join().unwrap();
//! assert_eq!(v.get(), 5);
//! ```
//!
//! # `v.set(v.get() + 1)` is not atomic
//!
//! [`Value::get`] and [`Value::set`] each take the value's lock, but only for
//! their own duration: between the `get` and the `set`, another process may
//! write, and its update is lost. That is Python's `v.value += 1`, which is
//! not atomic either. Hold the lock across the whole update instead:
//! `*v.lock().unwrap() += 1`, or (Python's idiom `with v.get_lock(): v.value += 1`)
//! take [`Value::get_lock`] and call `get`/`set` inside — the default lock is
//! recursive, so they may take it again.
//!
//! # Only plain data
//!
//! `T` must be [`bytemuck::Pod`]: no pointers, references, `String`, `Vec` or
//! `Drop` — they would be meaningless in another process. This is checked at
//! compile time:
//!
//! ```compile_fail
//! let v = procshare::Value::new(String::from("no"));
//! ```

use core::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytemuck::Pod;

use procshare_model::rlock::RawRLock;

use crate::platform::{current_tid, Shm, ShmCell};
use crate::shm::{ShmBox, ShmError, ShmSafe};
use crate::sync::{AnyGuard, AnyLock, LockResult, OwnerDied, RLock, TryLockResult};

/// Process-local record of which thread holds a data guard (`ValueGuard`,
/// `ArrayGuard`) of an object, so that a second guard from the same thread —
/// which a recursive lock would allow — is refused instead of creating two
/// `&mut` to the same data.
#[derive(Debug, Clone, Default)]
pub(crate) struct GuardOwner(Arc<AtomicU32>);

impl GuardOwner {
    /// Panics if the calling thread already holds a data guard of this
    /// object; returns the caller's tid for [`GuardOwner::enter`].
    #[inline]
    pub(crate) fn check(&self, what: &str) -> u32 {
        let me = current_tid();
        if self.0.load(Ordering::Relaxed) == me {
            panic!(
                "this thread already holds a guard of this {what}: a second guard would \
                 alias the data (drop the first guard, or use the guard you have)"
            );
        }
        me
    }
    /// Records the calling thread `me` (the lock is held).
    #[inline]
    pub(crate) fn enter(&self, me: u32) {
        self.0.store(me, Ordering::Relaxed);
    }
    /// Clears the record (before the lock is released).
    pub(crate) fn exit(&self) {
        self.0.store(0, Ordering::Relaxed);
    }
}

/// Maps a lock result to a data guard built by `f`.
pub(crate) fn map_lock<'a, G>(
    r: LockResult<AnyGuard<'a>>,
    f: impl FnOnce(AnyGuard<'a>) -> G,
) -> LockResult<G> {
    match r {
        Ok(g) => Ok(f(g)),
        Err(o) => Err(o.map(f)),
    }
}

/// Maps a try-lock result to a data guard built by `f`.
pub(crate) fn map_try<'a, G>(
    r: TryLockResult<AnyGuard<'a>>,
    f: impl FnOnce(AnyGuard<'a>) -> G,
) -> TryLockResult<G> {
    match r {
        Ok(g) => Ok(f(g)),
        Err(e) => Err(e.map(f)),
    }
}

/// Acquires `lock`; an owner-died result is accepted (the data is plain bytes).
pub(crate) fn lock_any(lock: &AnyLock) -> AnyGuard<'_> {
    lock.lock().unwrap_or_else(OwnerDied::into_inner)
}

/// A value and its default lock, in one block.
///
/// Layout (`#[repr(C)]`): `lock` at offset 0 (a [`RawRLock`], 8 bytes), then
/// `data` at the next multiple of `align_of::<T>()`. Invariant: `data` is
/// only accessed while `lock` is held (or through `RawValue`, unsynchronized,
/// by explicit choice).
#[repr(C)]
struct Colocated<T> {
    lock: RawRLock<Shm>,
    data: ShmCell<T>,
}

// SAFETY: a #[repr(C)] pair of ShmSafe parts (the RLock protocol struct and a
// cell of Pod data): no pointers, no drop glue.
unsafe impl<T: Pod + Send> ShmSafe for Colocated<T> {}

/// One `T` in shared memory, without a lock (Python's `RawValue`).
///
/// Reads and writes are single volatile accesses of the whole `T`: another
/// process writing at the same time can leave a torn value (for `T` wider
/// than the machine word). Use [`Value`] when several processes write.
///
/// ```
/// let v = procshare::RawValue::new(1.5f64).unwrap();
/// v.set(2.5);
/// assert_eq!(v.get(), 2.5);
/// ```
pub struct RawValue<T: Pod + Send> {
    pub(crate) cell: ShmBox<ShmCell<T>>,
}

impl<T: Pod + Send> Clone for RawValue<T> {
    fn clone(&self) -> Self {
        RawValue {
            cell: self.cell.clone(),
        }
    }
}

impl<T: Pod + Send + core::fmt::Debug> core::fmt::Debug for RawValue<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_tuple("RawValue").field(&self.get()).finish()
    }
}

impl<T: Pod + Send> RawValue<T> {
    /// A new value in shared memory.
    pub fn new(value: T) -> Result<RawValue<T>, ShmError> {
        use procshare_model::platform::CellLike;
        Ok(RawValue {
            cell: ShmBox::new(ShmCell::new(value))?,
        })
    }

    /// Where the value lives in this process.
    pub fn as_ptr(&self) -> *mut T {
        self.cell.as_ptr() as *mut T
    }

    /// Reads the value (unsynchronized).
    pub fn get(&self) -> T {
        // SAFETY: the pointer is valid and aligned; T is Pod, so any bytes
        // (even torn by a concurrent writer in another process) are a valid T.
        unsafe { self.as_ptr().read_volatile() }
    }

    /// Writes the value (unsynchronized).
    pub fn set(&self, value: T) {
        // SAFETY: as in `get`; a volatile write of plain data.
        unsafe { self.as_ptr().write_volatile(value) }
    }
}

/// One `T` in shared memory with a lock (Python's synchronized `Value`).
///
/// The lock is a new [`RLock`] unless one is given ([`Value::with_lock`]).
/// `Clone` gives another handle onto the same value and lock.
///
/// ```
/// use procshare::Value;
/// let v = Value::new(10u32).unwrap();
/// {
///     let mut g = v.lock().unwrap();
///     *g += 1;
/// }
/// assert_eq!(v.get(), 11);
/// // Python: with v.get_lock(): v.value += 1
/// let g = v.get_lock().lock().unwrap();
/// v.set(v.get() + 1); // atomic here: we hold the (recursive) lock
/// drop(g);
/// assert_eq!(v.get(), 12);
/// ```
pub struct Value<T: Pod + Send> {
    pub(crate) raw: RawValue<T>,
    pub(crate) lock: AnyLock,
    pub(crate) guard_owner: GuardOwner,
}

impl<T: Pod + Send> Clone for Value<T> {
    fn clone(&self) -> Self {
        Value {
            raw: self.raw.clone(),
            lock: self.lock.clone(),
            guard_owner: self.guard_owner.clone(),
        }
    }
}

impl<T: Pod + Send + core::fmt::Debug> core::fmt::Debug for Value<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Value")
            .field("lock", &self.lock)
            .finish_non_exhaustive()
    }
}

impl<T: Pod + Send> Value<T> {
    /// A new value with its own [`RLock`] (Python's `Value(t, v)`).
    ///
    /// The lock and the value share one 64-byte-aligned block, so that
    /// (for `T` up to 56 bytes) they travel between CPUs as one cache line.
    pub fn new(value: T) -> Result<Value<T>, ShmError> {
        use procshare_model::platform::CellLike;
        let both = ShmBox::new_aligned(
            Colocated {
                lock: RawRLock::new(),
                data: ShmCell::new(value),
            },
            64,
        )?;
        let lock = both.project(|c| &c.lock).expect("field of the block");
        let cell = both.project(|c| &c.data).expect("field of the block");
        Ok(Value {
            raw: RawValue { cell },
            lock: RLock::from_box(lock).into(),
            guard_owner: GuardOwner::default(),
        })
    }

    /// A new value guarded by `lock` (Python's `Value(t, v, lock=lock)`);
    /// several values may share one lock.
    pub fn with_lock(value: T, lock: impl Into<AnyLock>) -> Result<Value<T>, ShmError> {
        Ok(Value {
            raw: RawValue::new(value)?,
            lock: lock.into(),
            guard_owner: GuardOwner::default(),
        })
    }

    /// The lock (Python's `get_lock()`).
    pub fn get_lock(&self) -> &AnyLock {
        &self.lock
    }

    /// The unsynchronized value underneath (Python's `get_obj()`).
    pub fn get_obj(&self) -> &RawValue<T> {
        &self.raw
    }

    fn guard<'a>(&'a self, me: u32, g: AnyGuard<'a>) -> ValueGuard<'a, T> {
        self.guard_owner.enter(me);
        ValueGuard {
            value: self,
            _lock: g,
        }
    }

    /// Locks and returns a guard that derefs to the value.
    /// [`OwnerDied`] (still holding the guard) if a holder died.
    ///
    /// # Panics
    ///
    /// If this thread already holds a guard of this value (a second one
    /// would alias it).
    pub fn lock(&self) -> LockResult<ValueGuard<'_, T>> {
        let me = self.guard_owner.check("Value");
        map_lock(self.lock.lock(), |g| self.guard(me, g))
    }

    /// [`Value::lock`] without waiting.
    pub fn try_lock(&self) -> TryLockResult<ValueGuard<'_, T>> {
        let me = self.guard_owner.check("Value");
        map_try(self.lock.try_lock(), |g| self.guard(me, g))
    }

    /// [`Value::lock`] waiting at most `timeout`.
    pub fn lock_timeout(&self, timeout: Duration) -> TryLockResult<ValueGuard<'_, T>> {
        let me = self.guard_owner.check("Value");
        map_try(self.lock.lock_timeout(timeout), |g| self.guard(me, g))
    }

    /// Reads the value under the lock (Python's `v.value`). A dead previous
    /// holder is ignored here; use [`Value::lock`] to learn about it.
    ///
    /// # Panics
    ///
    /// If this thread holds a guard of this value (use the guard).
    pub fn get(&self) -> T {
        self.guard_owner.check("Value");
        let _g = lock_any(&self.lock);
        self.raw.get()
    }

    /// Writes the value under the lock (Python's `v.value = x`). Not atomic
    /// together with a preceding `get`: see the [module docs](self).
    ///
    /// # Panics
    ///
    /// If this thread holds a guard of this value (use the guard).
    pub fn set(&self, value: T) {
        self.guard_owner.check("Value");
        let _g = lock_any(&self.lock);
        self.raw.set(value)
    }
}

/// The value, locked. Derefs to `T`; unlocks on drop.
#[must_use = "the lock is released when the guard is dropped"]
pub struct ValueGuard<'a, T: Pod + Send> {
    value: &'a Value<T>,
    _lock: AnyGuard<'a>,
}

impl<T: Pod + Send> Drop for ValueGuard<'_, T> {
    fn drop(&mut self) {
        // Runs before `_lock` is dropped (released).
        self.value.guard_owner.exit();
    }
}

impl<T: Pod + Send> Deref for ValueGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the lock is held, and no other guard of this value exists in
        // this process (GuardOwner); other processes take the same lock.
        unsafe { &*self.value.raw.as_ptr() }
    }
}

impl<T: Pod + Send> DerefMut for ValueGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this borrow unique.
        unsafe { &mut *self.value.raw.as_ptr() }
    }
}

impl<T: Pod + Send + core::fmt::Debug> core::fmt::Debug for ValueGuard<'_, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_tuple("ValueGuard").field(&**self).finish()
    }
}
