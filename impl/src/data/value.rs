//! `Value<T>` and `RawValue<T>`: one plain-data value in shared memory
//! (Python's `multiprocessing.Value` and `RawValue`).

use core::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytemuck::Pod;

use procshare_model::rlock::RawRLock;

use crate::platform::{current_tid, fork_generation, Shm, ShmCell};
use crate::shm::{ShmBox, ShmError, ShmSafe};
use crate::sync::{AnyGuard, AnyLock, LockResult, OwnerDied, RLock, TryLockResult};

/// Process-local record of which thread holds a data guard (`ValueGuard`,
/// `ArrayGuard`) of an object: `fork generation << 32 | tid`, 0 when none.
///
/// It refuses two things that would create a second `&mut` to the data:
/// * a second guard from the thread that holds one (which a recursive lock
///   would allow);
/// * any guard after a guard of this process was leaked (`mem::forget`,
///   `Box::leak`) by a thread that then exited: the lock's owner is dead, so
///   owner-death recovery would hand the lock on while the leaked `&mut` may
///   still be in use. A record left over from before a `fork` belongs to the
///   parent (another generation) and is ignored.
#[derive(Debug, Clone, Default)]
pub(crate) struct GuardOwner(Arc<AtomicU64>);

impl GuardOwner {
    fn word(tid: u32) -> u64 {
        (fork_generation() as u32 as u64) << 32 | tid as u64
    }

    /// Panics if the calling thread already holds a data guard of this
    /// object; returns the caller's tid for [`GuardOwner::enter`].
    #[inline]
    pub(crate) fn check(&self, what: &str) -> u32 {
        let me = current_tid();
        if self.0.load(Ordering::Relaxed) == Self::word(me) {
            panic!(
                "this thread already holds a guard of this {what}: a second guard would \
                 alias the data (drop the first guard, or use the guard you have)"
            );
        }
        me
    }
    /// Records the calling thread `me` (the lock is held).
    ///
    /// # Panics
    ///
    /// If a guard of this process was leaked by a thread that has exited
    /// (the lock is then released by the unwinding).
    #[inline]
    pub(crate) fn enter(&self, me: u32, what: &str) {
        let prev = self.0.swap(Self::word(me), Ordering::Relaxed);
        // Holding the lock, we find a guard recorded: its holder cannot be a
        // live thread (it would hold the lock), so it leaked its guard and
        // exited, and we got the lock by owner-death recovery.
        if prev != 0 && prev >> 32 == Self::word(0) >> 32 {
            self.0.store(prev, Ordering::Relaxed);
            panic!(
                "a guard of this {what} was leaked by a thread that has exited: its data may \
                 still be borrowed through the leaked guard, so no other guard is given"
            );
        }
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

/// `lock` if a data guard may be built over it (an [`RLock`], whose guarded
/// levels cannot be released behind the guard); `None` for a plain `Lock`
/// (for a spawned child's import: the constructors accept only an `RLock`).
pub(crate) fn data_lock(lock: AnyLock) -> Option<AnyLock> {
    match lock {
        AnyLock::RLock(_) => Some(lock),
        AnyLock::Lock(_) => None,
    }
}

/// Acquires `lock`; an owner-died result is accepted (the data is plain bytes).
pub(crate) fn lock_any(lock: &AnyLock) -> AnyGuard<'_> {
    lock.lock().unwrap_or_else(OwnerDied::into_inner)
}

/// Reads `*src` with relaxed atomic loads (word-wise where aligned, byte-wise
/// at the edges: [`atomic_memcpy::atomic_load`]).
///
/// This is how every *unsynchronized* read of `Value`/`Array` data is done
/// (`RawValue::get`, `RawArray::get`/`to_vec`, and `Value::get`/`Array::get`
/// under the lock, which may race with an unsynchronized writer elsewhere):
/// a concurrent [`store_relaxed`] of the same `T` at the same address may
/// leave the result torn (some words old, some new), as in Python, but there
/// is no data race, so no undefined behaviour.
///
/// # Safety
///
/// `src` is valid for reads of a `T`, aligned, and derived from an
/// `UnsafeCell` (`ShmCell`); every access that may run concurrently with this
/// one is a [`load_relaxed`]/[`store_relaxed`] of the same `T` at the same
/// address (the only other access, a guard's `&mut T`, exists only while the
/// object's lock is held, and `Value::get_obj`/`Array::get_obj` are `unsafe`).
#[inline]
pub(crate) unsafe fn load_relaxed<T: Pod>(src: *const T) -> T {
    // SAFETY: the caller's contract is atomic_load's (valid, aligned,
    // UnsafeCell, only atomic_* accesses of the same granularity concurrently).
    let v = unsafe { atomic_memcpy::atomic_load(src, Ordering::Relaxed) };
    // SAFETY: T is Pod: no padding, so every byte was initialized by the
    // writer, and any bytes (even torn) are a valid T.
    unsafe { v.assume_init() }
}

/// Writes `value` to `*dst` with relaxed atomic stores (see [`load_relaxed`]).
///
/// # Safety
///
/// As [`load_relaxed`], with `dst` valid for writes.
#[inline]
pub(crate) unsafe fn store_relaxed<T: Pod>(dst: *mut T, value: T) {
    // SAFETY: the caller's contract is atomic_store's; T is Pod, so it holds
    // no uninitialized bytes.
    unsafe { atomic_memcpy::atomic_store(dst, value, Ordering::Relaxed) }
}

/// A value and its default lock, in one block (64-byte aligned by
/// [`Value::new`]).
///
/// Layout (`#[repr(C)]`; checked at compile time below and in
/// [`crate::shm::layout`]):
///
/// | offset | field | meaning |
/// |---|---|---|
/// | 0 | `lock: RawRLock<Shm>` (24 bytes, align 8) | the value's default lock |
/// | 24 rounded up to `align_of::<T>()` | `data: ShmCell<T>` | the value |
///
/// Size: `data`'s offset plus `size_of::<T>()`, rounded up to
/// `max(8, align_of::<T>())`. Invariant: `data` is accessed by reference
/// only while `lock` is held (a guard); unlocked accesses are the relaxed
/// atomic copies of [`RawValue`].
#[repr(C)]
pub(crate) struct Colocated<T> {
    pub(crate) lock: RawRLock<Shm>,
    pub(crate) data: ShmCell<T>,
}

crate::shm::layout::assert_shm_layout!(Colocated<u8> { size: 32, align: 8, lock: 0, data: 24 });
crate::shm::layout::assert_shm_layout!(Colocated<u64> { size: 32, align: 8, lock: 0, data: 24 });
crate::shm::layout::assert_shm_layout!(Colocated<u128> { size: 48, align: 16, lock: 0, data: 32 });

// SAFETY: a #[repr(C)] pair of ShmSafe parts (the RLock protocol struct and a
// cell of Pod data): no pointers, no drop glue.
unsafe impl<T: Pod + Send> ShmSafe for Colocated<T> {}

/// One `T` in shared memory, without a lock (Python's `RawValue`).
///
/// Reads and writes are copies through relaxed atomics, word by word: a
/// thread or process writing at the same time can leave a torn value (for `T`
/// wider than the machine word, as in Python), but concurrent `get`/`set` from
/// any number of threads is never a data race. Use [`Value`] when several
/// processes write.
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

    /// Reads the value (unsynchronized: may be torn by a concurrent `set`).
    #[doc(alias = "value")]
    pub fn get(&self) -> T {
        // SAFETY: the pointer comes from the ShmCell (an UnsafeCell), is valid
        // and aligned while `self` lives; the only concurrent accesses of a
        // RawValue's data are these relaxed copies (see `load_relaxed`).
        unsafe { load_relaxed(self.as_ptr()) }
    }

    /// Writes the value (unsynchronized).
    pub fn set(&self, value: T) {
        // SAFETY: as in `get`.
        unsafe { store_relaxed(self.as_ptr(), value) }
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
///
/// `Value<T>` and `RawValue<T>`: one plain-data value in shared memory
/// (Python's `multiprocessing.Value` and `RawValue`).
///
/// ```
/// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
/// use procshare::{Process, Value};
/// let v = Value::new(0i64).unwrap();
/// let c = v.clone();
/// let mut p = Process::new(move || {
///     *c.lock().unwrap() += 5; // atomic read-modify-write under the lock
/// });
/// p.start().unwrap();
/// p.join().unwrap();
/// assert_eq!(v.get(), 5);
/// ```
///
/// # `v.set(v.get() + 1)` is not atomic
///
/// [`Value::get`] and [`Value::set`] each take the value's lock, but only for
/// their own duration: between the `get` and the `set`, another process may
/// write, and its update is lost. That is Python's `v.value += 1`, which is
/// not atomic either. Hold the lock across the whole update instead:
/// `*v.lock().unwrap() += 1`, or (Python's idiom `with v.get_lock(): v.value += 1`)
/// take [`Value::get_lock`] and call `get`/`set` inside — the default lock is
/// recursive, so they may take it again.
///
/// # Only plain data
///
/// `T` must be [`bytemuck::Pod`]: no pointers, references, `String`, `Vec` or
/// `Drop` — they would be meaningless in another process. This is checked at
/// compile time:
///
/// ```compile_fail
/// let v = procshare::Value::new(String::from("no"));
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
    ///
    /// The lock must be an [`RLock`]: [`Value::lock`] hands out a `&mut T`,
    /// which is sound only while the lock cannot be released behind the
    /// guard's back. An `RLock` knows its owner (only the holding thread may
    /// release it) and refuses to release a level held by a guard
    /// ([`SyncError::HeldByGuard`](crate::sync::SyncError::HeldByGuard)); a
    /// plain [`Lock`](crate::sync::Lock) may be released by any thread or
    /// process, as in Python, so it is refused at compile time:
    ///
    /// ```compile_fail
    /// use procshare::{Lock, Value};
    /// let v = Value::with_lock(0u32, Lock::new().unwrap()).unwrap();
    /// ```
    pub fn with_lock(value: T, lock: RLock) -> Result<Value<T>, ShmError> {
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
    ///
    /// # Safety
    ///
    /// While the returned handle (or a clone of it) is used to read or write,
    /// no thread of this process may hold a guard of this value
    /// ([`Value::lock`] and variants): the guard's `&mut T` would alias the
    /// unsynchronized access (a data race). [`Value::get`]/[`Value::set`]
    /// copy atomically and may run concurrently with it.
    pub unsafe fn get_obj(&self) -> &RawValue<T> {
        &self.raw
    }

    /// Where the value lives in this process (its identity; reading or
    /// writing through it needs the lock).
    pub fn as_ptr(&self) -> *mut T {
        self.raw.as_ptr()
    }

    fn guard<'a>(&'a self, me: u32, g: AnyGuard<'a>) -> ValueGuard<'a, T> {
        self.guard_owner.enter(me, "Value");
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
    #[doc(alias = "value")]
    pub fn get(&self) -> T {
        self.guard_owner.check("Value");
        let _g = lock_any(&self.lock);
        self.raw.get()
    }

    /// Writes the value under the lock (Python's `v.value = x`). Not atomic
    /// together with a preceding `get`: see the type docs above.
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
        // SAFETY: the lock is held and cannot be released under this guard
        // (an RLock: only this thread may release it, and not the guard's
        // level); no other guard of this value exists in this thread
        // (GuardOwner); other threads and processes take the same lock, and
        // unsynchronized handles come only from the unsafe `get_obj`.
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

#[cfg(test)]
mod tests {
    use super::{load_relaxed, store_relaxed};
    use core::cell::UnsafeCell;

    /// Plain heap memory shared by threads (Miri cannot map shared memory;
    /// the copies are the same ones `RawValue`/`RawArray` use).
    struct Shared<T>(UnsafeCell<T>);
    // SAFETY: every access in these tests goes through load_relaxed/store_relaxed.
    unsafe impl<T: Send> Sync for Shared<T> {}
    impl<T> Shared<T> {
        fn ptr(&self) -> *mut T {
            self.0.get()
        }
    }

    /// Two writers and a reader copy the same `T` at once: under Miri this
    /// is a data-race check (a volatile copy is reported as a race), and each
    /// word read is one some writer wrote (torn across words, never garbage).
    fn race<T: bytemuck::Pod + Send + Sync>(patterns: [T; 2], words: impl Fn(&T) -> bool + Sync) {
        const ROUNDS: usize = if cfg!(miri) { 20 } else { 2000 };
        let cell = Shared(UnsafeCell::new(patterns[0]));
        std::thread::scope(|s| {
            for p in patterns {
                let cell = &cell;
                s.spawn(move || {
                    for _ in 0..ROUNDS {
                        // SAFETY: a valid aligned UnsafeCell pointer; only
                        // relaxed copies of T touch it concurrently.
                        unsafe { store_relaxed(cell.ptr(), p) };
                    }
                });
            }
            s.spawn(|| {
                for _ in 0..ROUNDS {
                    // SAFETY: as above.
                    let v = unsafe { load_relaxed(cell.ptr()) };
                    assert!(words(&v), "a word no writer wrote");
                }
            });
        });
    }

    #[test]
    fn relaxed_copies_of_words_race_without_ub() {
        race([[1u64; 3], [2u64; 3]], |v| {
            v.iter().all(|w| *w == 1 || *w == 2)
        });
    }

    #[test]
    fn relaxed_copies_of_bytes_race_without_ub() {
        race([[1u8; 5], [2u8; 5]], |v| {
            v.iter().all(|w| *w == 1 || *w == 2)
        });
    }

    #[test]
    fn relaxed_copy_of_one_word_is_never_torn() {
        let (a, b) = (0x1111_1111_1111_1111u64, 0x2222_2222_2222_2222u64);
        race([a, b], |v| *v == a || *v == b);
    }
}
