//! The model platforms: [`loom_platform::Loom`] and [`shuttle_platform::Shuttle`].
//!
//! Both are generated from one macro because the two checkers expose the same
//! `Mutex`/`Condvar`/atomics API; only the cell type and the yield differ.
//!
//! # How a futex is modelled
//!
//! Each [`Word32`] carries the checker's `Mutex<()>` + `Condvar`. `wait` takes the
//! mutex, returns [`Woke::Mismatch`] if the word differs from `expected`, and
//! otherwise sleeps on the condvar; `wake(1)` is `notify_one` taken under the same
//! mutex (never `notify_all`, which would hide stolen-wake-up bugs). This gives
//! the futex guarantee that a wake after the word changed cannot slip in between
//! the waiter's check and its sleep.
//!
//! # Time, deaths and spurious wake-ups
//!
//! Neither checker models time, so the platform does it explicitly:
//!
//! * A finite deadline (`Some(_)` timeout) makes every wait return
//!   [`Woke::TimedOut`] at once, and [`Thread::expired`] is then true: the model
//!   explores the "gave up" path of every timed operation.
//! * A thread dies by unwinding from [`Thread::crash_point`] at the step chosen by
//!   [`ModelThread::crash_at`]; [`run`](loom_platform::run) catches the unwind inside that thread
//!   and marks it dead in the [`World`], then wakes the sleepers (a death
//!   arrives as a wake-up). A death is the only event that changes liveness,
//!   so each sleeping (or later sleeping) waiter gets exactly one
//!   [`Woke::TimedOut`] per death it has not seen yet: for a waiter that
//!   watches the dead thread ([`Thread::wait_owned`]) that is the real
//!   platform's death notification (pidfd), for the others its safety poll.
//!   Under [`MUTANT_DEATH_NOT_NOTIFIED`] the watchers of a thread are not told
//!   of its death (only of the deaths of others).
//! * [`ModelThread::spurious_at`] makes the n-th wait of a thread return
//!   [`Woke::Woken`] without sleeping; checks enumerate it outside the model.
//!
//! [`ModelThread::crash_at`]: loom_platform::ModelThread::crash_at
//! [`ModelThread::spurious_at`]: loom_platform::ModelThread::spurious_at
//! [`Word32`]: crate::platform::Word32
//! [`Woke::Mismatch`]: crate::platform::Woke::Mismatch
//! [`Woke::TimedOut`]: crate::platform::Woke::TimedOut
//! [`Woke::Woken`]: crate::platform::Woke::Woken
//! [`Thread::expired`]: crate::platform::Thread::expired
//! [`Thread::crash_point`]: crate::platform::Thread::crash_point
//! [`Thread::wait_owned`]: crate::platform::Thread::wait_owned
//! [`MUTANT_DEATH_NOT_NOTIFIED`]: crate::platform::MUTANT_DEATH_NOT_NOTIFIED

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex as StdMutex;

std::thread_local! {
    /// The prefetches this thread asked a model platform for since
    /// [`record_prefetches`] (`None`: not recording): (the address of the
    /// first cell, the number of cells).
    static PREFETCHED: std::cell::RefCell<Option<Vec<(usize, usize)>>> =
        const { std::cell::RefCell::new(None) };
}

/// Record the prefetches this thread asks a model platform for
/// ([`crate::platform::Platform::prefetch_write`]) from now on, until
/// [`prefetched`] takes them.
pub fn record_prefetches() {
    PREFETCHED.with(|p| *p.borrow_mut() = Some(Vec::new()));
}

/// Take the prefetches recorded since [`record_prefetches`] and stop
/// recording: (the address of the first cell, the number of cells), in
/// order.
pub fn prefetched() -> Vec<(usize, usize)> {
    PREFETCHED.with(|p| p.borrow_mut().take().unwrap_or_default())
}

/// Which waiting step a [`ModelThread::on_spin`] hook runs at.
///
/// [`ModelThread::on_spin`]: crate::shuttle_platform::ModelThread::on_spin
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spun {
    /// A spin ([`Thread::spin`]) of this iteration.
    ///
    /// [`Thread::spin`]: crate::platform::Thread::spin
    Spin(u32),
    /// A linger ([`Thread::linger`]).
    ///
    /// [`Thread::linger`]: crate::platform::Thread::linger
    Linger,
}

/// The payload a model thread unwinds with when it "dies" at a crash point.
#[derive(Debug)]
pub struct Crash;

/// What the checkers share across the threads of one execution: which threads
/// are dead, how many deaths happened, and which words have sleepers that a
/// death must wake.
///
/// Only std types live here and no checker operation runs while its mutex is
/// held, so it adds no interleavings of its own (loom and shuttle threads are
/// coroutines on one OS thread).
#[derive(Debug, Default)]
pub struct WorldInner {
    /// Owner ids of the threads that died (and were not given to a new thread).
    pub dead: BTreeSet<u32>,
    /// Number of deaths so far.
    pub epoch: u64,
    /// Identities of the threads that died, in the order they died.
    pub deaths: Vec<u64>,
    /// The identity of the live thread that has each owner id (a thread ends
    /// without dying by returning: it stays here, as a process that goes on
    /// with something else).
    pub occupants: BTreeMap<u32, u64>,
    /// The last identity handed out (identities are never reused).
    pub last_identity: u64,
    /// How many threads were ever given each owner id.
    pub given: BTreeMap<u32, u32>,
    /// Addresses of words that have at least one sleeper, with the sleeper count.
    pub sleeping_on: Vec<(usize, usize)>,
}

/// Shared state of one model execution (create one per execution, in the model body).
#[derive(Debug, Default)]
pub struct World {
    /// The state; see [`WorldInner`].
    pub inner: StdMutex<WorldInner>,
    /// The checker atomic through which a death synchronizes with its observers
    /// (created by the platform's `world()`).
    pub fence: StdMutex<Option<std::sync::Arc<dyn std::any::Any + Send + Sync>>>,
}

impl World {
    /// A fresh world: nobody dead. Use the platform's `world()`, which also
    /// creates the death fence.
    fn new() -> std::sync::Arc<World> {
        std::sync::Arc::new(World::default())
    }

    /// Is `id` dead?
    pub fn is_dead(&self, id: u32) -> bool {
        self.lock().dead.contains(&id)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, WorldInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

macro_rules! model_platform {
    ($(#[$doc:meta])* $modname:ident, $Plat:ident, $checker:ident, cell = $cell:ty, cells = $cells:ident, yield = $yield:path, spins = $spins:expr) => {
        $(#[$doc])*
        pub mod $modname {
            use core::marker::PhantomData;
            use core::sync::atomic::Ordering;
            use core::time::Duration;
            use std::cell::Cell as StdCell;
            use std::sync::Arc;

            use $checker::sync::atomic::{AtomicU32, AtomicU64};
            use $checker::sync::{Condvar, Mutex};

            pub use crate::checkers::Spun;
            use crate::checkers::{Crash, World};
            use crate::checkers::$cells::{cell_with, cell_with_mut};
            use crate::platform::{CellLike, Mutant, Occupant, Platform, Thread, Woke, Word32, Word64};

            /// The platform, parameterized by the number of a seeded [`Mutant`]
            /// (0, [`Mutant::NONE`], is the correct protocol).
            #[derive(Debug)]
            pub struct $Plat<const M: u32 = 0>(PhantomData<()>);

            impl<const M: u32> Platform for $Plat<M> {
                type W32 = MWord32;
                type W64 = MWord64;
                type Cell<T: Send> = MCell<T>;
                type Thread = ModelThread;
                const MUTANT: Mutant = Mutant(M);
                // The watched identity is used only to leave its death
                // unnotified (`sleep`'s `notified == false`).
                const WATCHES_IDENTITY: bool = M == crate::platform::MUTANT_DEATH_NOT_NOTIFIED.0;
                fn fence(o: Ordering) {
                    $checker::sync::atomic::fence(o)
                }
                /// Checked as a write of garbage to each cell: the cells must
                /// be the caller's alone, as those it writes are (loom sees
                /// any other access race with it), and hold nothing anybody
                /// reads before writing it (a consumer that reads them sees
                /// the garbage: shuttle's checks see it too). Stricter than
                /// the real prefetch, which changes no value. Recorded for
                /// the thread when it asked
                /// ([`crate::checkers::record_prefetches`]).
                fn prefetch_write<const N: usize>(cells: &[Self::Cell<[u8; N]>]) {
                    for c in cells {
                        // SAFETY: exclusive access to the cell is what is
                        // checked (loom reports any access that is not).
                        c.with_mut(|p| unsafe { *p = [0xA5; N] });
                    }
                    crate::checkers::PREFETCHED.with(|p| {
                        if let Some(v) = p.borrow_mut().as_mut() {
                            v.push((cells.as_ptr() as usize, cells.len()));
                        }
                    });
                }
            }

            /// A futex word: the checker's atomic plus a mutex and condvar emulating the futex queue.
            #[derive(Debug)]
            pub struct MWord32 {
                a: AtomicU32,
                m: Mutex<()>,
                cv: Condvar,
            }

            impl Word32 for MWord32 {
                fn new(v: u32) -> Self {
                    MWord32 { a: AtomicU32::new(v), m: Mutex::new(()), cv: Condvar::new() }
                }
                fn load(&self, o: Ordering) -> u32 {
                    self.a.load(o)
                }
                fn store(&self, v: u32, o: Ordering) {
                    self.a.store(v, o)
                }
                fn swap(&self, v: u32, o: Ordering) -> u32 {
                    self.a.swap(v, o)
                }
                fn cas(&self, c: u32, n: u32, s: Ordering, f: Ordering) -> Result<u32, u32> {
                    self.a.compare_exchange(c, n, s, f)
                }
                fn fetch_add(&self, v: u32, o: Ordering) -> u32 {
                    self.a.fetch_add(v, o)
                }
                fn fetch_sub(&self, v: u32, o: Ordering) -> u32 {
                    self.a.fetch_sub(v, o)
                }
                fn fetch_or(&self, v: u32, o: Ordering) -> u32 {
                    self.a.fetch_or(v, o)
                }
                fn fetch_and(&self, v: u32, o: Ordering) -> u32 {
                    self.a.fetch_and(v, o)
                }
            }

            /// A 64-bit word.
            #[derive(Debug)]
            pub struct MWord64(AtomicU64);

            impl Word64 for MWord64 {
                fn new(v: u64) -> Self {
                    MWord64(AtomicU64::new(v))
                }
                fn load(&self, o: Ordering) -> u64 {
                    self.0.load(o)
                }
                fn store(&self, v: u64, o: Ordering) {
                    self.0.store(v, o)
                }
                fn swap(&self, v: u64, o: Ordering) -> u64 {
                    self.0.swap(v, o)
                }
                fn cas(&self, c: u64, n: u64, s: Ordering, f: Ordering) -> Result<u64, u64> {
                    self.0.compare_exchange(c, n, s, f)
                }
                fn fetch_add(&self, v: u64, o: Ordering) -> u64 {
                    self.0.fetch_add(v, o)
                }
                fn fetch_sub(&self, v: u64, o: Ordering) -> u64 {
                    self.0.fetch_sub(v, o)
                }
            }

            /// A protocol-guarded cell.
            #[derive(Debug)]
            pub struct MCell<T>($cell);

            // SAFETY: access to the inner value is serialized by the protocol under
            // test; loom's cell reports any access that is not.
            unsafe impl<T: Send> Sync for MCell<T> {}

            impl<T: Send> CellLike<T> for MCell<T> {
                fn new(v: T) -> Self {
                    MCell(<$cell>::new(v))
                }
                fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
                    cell_with(&self.0, f)
                }
                fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
                    cell_with_mut(&self.0, f)
                }
            }

            /// A finite or infinite model deadline (model time does not advance).
            #[derive(Debug, Clone, Copy, PartialEq, Eq)]
            pub struct Deadline {
                finite: bool,
            }

            /// One model thread's context: its identity, the shared [`World`], and
            /// the fault-injection knobs.
            #[derive(Debug)]
            pub struct ModelThread {
                id: u32,
                ident: u64,
                pending: StdCell<usize>,
                fence: Arc<AtomicU32>,
                world: Arc<World>,
                last_poll: StdCell<(u64, usize, u32)>,
                steps: StdCell<u32>,
                waits: StdCell<u32>,
                /// Die (unwind with [`Crash`]) when the step counter reaches this value.
                pub crash_at: Option<u32>,
                /// The n-th wait (1-based) of this thread returns spuriously.
                pub spurious_at: Option<u32>,
                /// How many rounds of a protocol's spin loop (`Thread::spin`) this
                /// thread runs before it sleeps: the spin fast paths that ship on a
                /// multi-core machine are checked too. Each round is a yield.
                pub spins: u32,
                /// Shared memory written by the test itself: `Thread::foreign_write`
                /// is expected, not a failure.
                pub foreign_writes: bool,
                on_spin: Option<SpinHook>,
            }

            /// What a test runs at each of a thread's spins and lingers (see
            /// [`ModelThread::on_spin`]).
            #[derive(Clone)]
            pub struct SpinHook(Arc<dyn Fn(&ModelThread, Spun) + Send + Sync>);

            impl core::fmt::Debug for SpinHook {
                fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                    f.write_str("SpinHook")
                }
            }

            impl ModelThread {
                /// A context for thread `id` (nonzero) in `world`.
                pub fn new(world: &Arc<World>, id: u32) -> Self {
                    assert!(id != 0 && id <= crate::platform::OWNER_MASK);
                    let fence = {
                        let f = world.fence.lock().unwrap_or_else(|e| e.into_inner());
                        let any = f.clone().expect("create the world with this platform's `world()`");
                        any.downcast::<AtomicU32>().expect("one world per platform")
                    };
                    let ident = {
                        let mut w = world.lock();
                        w.last_identity += 1;
                        let ident = w.last_identity;
                        w.occupants.insert(id, ident);
                        *w.given.entry(id).or_insert(0) += 1;
                        w.dead.remove(&id);
                        ident
                    };
                    ModelThread {
                        id,
                        ident,
                        pending: StdCell::new(0),
                        fence,
                        world: world.clone(),
                        last_poll: StdCell::new((0, 0, 0)),
                        steps: StdCell::new(0),
                        waits: StdCell::new(0),
                        crash_at: None,
                        spurious_at: None,
                        // Odd threads run the spin path, even ones sleep at once:
                        // both paths meet in every execution (all spinning would
                        // make a lost wake-up rare: a spinner needs no wake).
                        spins: if id % 2 == 1 { DEFAULT_SPINS } else { 0 },
                        foreign_writes: false,
                        on_spin: None,
                    }
                }
                /// A new thread that is given this (dead) thread's owner id, as a
                /// kernel gives a dead thread's tid to a later thread: same id,
                /// another identity. Call it after this thread died.
                pub fn reborn(&self) -> ModelThread {
                    ModelThread::new(&self.world, self.id).spins(self.spins)
                }
                /// This thread's identity ([`Thread::identity`]).
                pub fn identity_of(&self) -> u64 {
                    self.ident
                }
                /// Builder: run `n` rounds of each spin loop before sleeping
                /// (default: [`DEFAULT_SPINS`] for odd thread ids, 0 for even ones).
                pub fn spins(mut self, n: u32) -> Self {
                    self.spins = n;
                    self
                }
                /// Builder: run `f` at each spin ([`Thread::spin`]) and linger
                /// ([`Thread::linger`]) of this thread, before its yield: a test
                /// makes something happen while a protocol waits.
                pub fn on_spin(mut self, f: impl Fn(&ModelThread, Spun) + Send + Sync + 'static) -> Self {
                    self.on_spin = Some(SpinHook(Arc::new(f)));
                    self
                }
                /// Builder: the test writes the shared memory itself, so the
                /// protocol's recovery from foreign writes is expected.
                pub fn foreign_writes(mut self) -> Self {
                    self.foreign_writes = true;
                    self
                }
                /// Builder: die at step `k` (1-based).
                pub fn crash_at(mut self, k: Option<u32>) -> Self {
                    self.crash_at = k;
                    self
                }
                /// Builder: the `n`-th wait returns spuriously.
                pub fn spurious_at(mut self, n: Option<u32>) -> Self {
                    self.spurious_at = n;
                    self
                }
                /// How many crash points this thread has passed.
                pub fn steps(&self) -> u32 {
                    self.steps.get()
                }
                /// Mark this thread dead and give every sleeper one timeout (the
                /// liveness poll). Called by [`run`] after a [`Crash`].
                fn die(&self) {
                    // A process's exit is a full barrier: whatever it wrote to shared
                    // memory is visible to whoever learns that it died.
                    self.fence.fetch_add(1, Ordering::Release);
                    // The kernel's robust-futex `list_op_pending`: a word marked
                    // pending whose owner bits are this thread's id becomes
                    // OWNER_DIED (the waiters bit kept), before the id can be
                    // given to another thread.
                    let p = self.pending.get();
                    if p != 0 {
                        // SAFETY: as for the sleepers' words below: a pending word
                        // belongs to a protocol object the harness keeps alive.
                        let w = unsafe { &*(p as *const MWord32) };
                        let mut v = w.a.load(Ordering::Relaxed);
                        while v & crate::platform::OWNER_MASK == self.id {
                            let died = (v & 0x8000_0000) | crate::platform::OWNER_DIED;
                            match w.a.compare_exchange(v, died, Ordering::AcqRel, Ordering::Relaxed) {
                                Ok(_) => break,
                                Err(x) => v = x,
                            }
                        }
                    }
                    let addrs: Vec<usize> = {
                        let mut w = self.world.lock();
                        w.dead.insert(self.id);
                        if w.occupants.get(&self.id) == Some(&self.ident) {
                            w.occupants.remove(&self.id);
                        }
                        w.deaths.push(self.ident);
                        w.epoch += 1;
                        let mut a: Vec<usize> = w.sleeping_on.iter().map(|&(a, _)| a).collect();
                        if p != 0 && !a.contains(&p) {
                            a.push(p);
                        }
                        a
                    };
                    for a in addrs {
                        // SAFETY: a word is listed only while a thread sleeps on it, and
                        // the harness keeps every protocol object alive (in an `Arc`
                        // held by each model thread, this dying one included) until
                        // all threads end, so the address is a live `MWord32`.
                        let w = unsafe { &*(a as *const MWord32) };
                        let _g = w.m.lock().unwrap();
                        w.cv.notify_all();
                    }
                }
                fn register(&self, w: &MWord32, delta: isize) {
                    let a = w as *const MWord32 as usize;
                    let mut inner = self.world.lock();
                    let list = &mut inner.sleeping_on;
                    match list.iter().position(|&(x, _)| x == a) {
                        Some(i) => {
                            let n = (list[i].1 as isize + delta) as usize;
                            if n == 0 {
                                list.swap_remove(i);
                            } else {
                                list[i].1 = n;
                            }
                        }
                        None => {
                            assert!(delta > 0);
                            list.push((a, delta as usize));
                        }
                    }
                }
                /// Should this wait return `TimedOut` for the liveness poll? Yes when a
                /// death happened that this thread has not been told about while
                /// waiting for this value of this word. Re-waiting for the same
                /// value of the same word after the same deaths blocks, so a waiter
                /// cannot spin forever, while a waiter that meets a new value (a new
                /// owner, who may be dead), or the same value in another word (the
                /// slot queue's slot locks: one dead holder's id in two of them), is
                /// told again — as the real poll, which keeps firing, would.
                fn poll_fires(&self, w: &MWord32, expected: u32, watched: u64, notified: bool) -> bool {
                    let e = {
                        let w = self.world.lock();
                        if !notified && watched != 0 {
                            // The watched owner's death is not notified.
                            w.deaths.iter().filter(|&&d| d != watched).count() as u64
                        } else {
                            w.epoch
                        }
                    };
                    let at = w as *const MWord32 as usize;
                    if e > 0 && self.last_poll.get() != (e, at, expected) {
                        self.last_poll.set((e, at, expected));
                        // The real platform polls again and again; this one
                        // poll stands for the first that comes after the
                        // death, when the dead process's stores (its exit is a
                        // full barrier) are visible to every later load.
                        self.fence.fetch_add(0, Ordering::Acquire);
                        true
                    } else {
                        false
                    }
                }
            }

            impl Thread for ModelThread {
                type Word = MWord32;
                type Deadline = Deadline;

                fn id(&self) -> u32 {
                    self.id
                }
                fn deadline(&self, timeout: Option<Duration>) -> Deadline {
                    Deadline { finite: timeout.is_some() }
                }
                fn expired(&self, d: &Deadline) -> bool {
                    d.finite
                }
                fn wait(&self, w: &MWord32, expected: u32, d: &Deadline) -> Woke {
                    self.sleep(w, expected, 0, true, d)
                }
                fn wait_owned(&self, w: &MWord32, expected: u32, _owner: u32, ident: u64, d: &Deadline) -> Woke {
                    self.sleep(w, expected, ident, true, d)
                }
                fn wait_owned_unnotified(
                    &self,
                    w: &MWord32,
                    expected: u32,
                    _owner: u32,
                    ident: u64,
                    d: &Deadline,
                ) -> Woke {
                    self.sleep(w, expected, ident, false, d)
                }
                fn identity(&self) -> u64 {
                    self.ident
                }
                fn id_reused(&self, owner: u32) -> bool {
                    self.world.lock().given.get(&owner).is_some_and(|&n| n > 1)
                }
                fn occupant(&self, owner: u32) -> Occupant {
                    let (o, deaths) = {
                        let w = self.world.lock();
                        (w.occupants.get(&owner).copied(), w.epoch > 0)
                    };
                    if deaths {
                        // Learning who has an id (the real platform asks the
                        // kernel) synchronizes with the deaths before it; an RMW
                        // reads the latest value.
                        self.fence.fetch_add(0, Ordering::Acquire);
                    }
                    o.map_or(Occupant::Nobody, Occupant::Is)
                }
                fn publishing(&self, w: Option<&MWord32>) {
                    self.pending.set(w.map_or(0, |w| w as *const MWord32 as usize));
                }
                fn spin(&self, iteration: u32) -> bool {
                    if iteration < self.spins {
                        if let Some(f) = &self.on_spin {
                            (f.0)(self, Spun::Spin(iteration));
                        }
                        $yield();
                        true
                    } else {
                        false
                    }
                }
                fn linger(&self) -> bool {
                    if self.spins > 0 {
                        if let Some(f) = &self.on_spin {
                            (f.0)(self, Spun::Linger);
                        }
                        $yield();
                        true
                    } else {
                        false
                    }
                }
                fn crash_point(&self) {
                    let s = self.steps.get() + 1;
                    self.steps.set(s);
                    if self.crash_at == Some(s) {
                        std::panic::resume_unwind(Box::new(Crash));
                    }
                }
                fn wake(&self, w: &MWord32, n: u32) -> usize {
                    self.wake_n(w, n)
                }
                fn foreign_write(&self, what: &'static str) {
                    if !self.foreign_writes {
                        crate::testkit::violation(&format!("foreign write in a sound run: {what}"));
                    }
                }
            }

            impl ModelThread {
                /// A wait, watching the thread with identity `owner` (0: nobody);
                /// `notified`: its death is told to this waiter (false only under
                /// the platform mutant).
                fn sleep(&self, w: &MWord32, expected: u32, owner: u64, notified: bool, d: &Deadline) -> Woke {
                    let n = self.waits.get() + 1;
                    self.waits.set(n);
                    let g = w.m.lock().unwrap();
                    if w.a.load(Ordering::SeqCst) != expected {
                        return Woke::Mismatch;
                    }
                    if self.spurious_at == Some(n) {
                        return Woke::Woken;
                    }
                    if d.finite || self.poll_fires(w, expected, owner, notified) {
                        return Woke::TimedOut;
                    }
                    self.register(w, 1);
                    let g = w.cv.wait(g).unwrap();
                    self.register(w, -1);
                    drop(g);
                    if self.poll_fires(w, expected, owner, notified) {
                        Woke::TimedOut
                    } else {
                        Woke::Woken
                    }
                }
                fn wake_n(&self, w: &MWord32, n: u32) -> usize {
                    let _g = w.m.lock().unwrap();
                    if n == u32::MAX {
                        w.cv.notify_all();
                    } else {
                        for _ in 0..n {
                            w.cv.notify_one();
                        }
                    }
                    // The model does not count sleepers; protocols must not depend on it.
                    n as usize
                }
            }

            /// A fresh world for one execution of this checker (create it in the
            /// model body, before spawning threads).
            pub fn world() -> Arc<World> {
                let w = World::new();
                *w.fence.lock().unwrap() = Some(Arc::new(AtomicU32::new(0)));
                w
            }

            /// Run `f` as the body of model thread `t`. If `f` dies at a crash point,
            /// the death is recorded in the world (waking sleepers for their
            /// liveness check) and `true` is returned. Any other panic (a failed
            /// assertion, the checker's own deadlock report) propagates.
            pub fn run(t: &ModelThread, f: impl FnOnce(&ModelThread)) -> bool {
                match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(t))) {
                    Ok(()) => false,
                    Err(p) if p.is::<Crash>() => {
                        t.die();
                        true
                    }
                    Err(p) => std::panic::resume_unwind(p),
                }
            }

            /// Spin rounds a model thread runs by default (see [`ModelThread::spins`]).
            pub const DEFAULT_SPINS: u32 = $spins;

            /// Yield to the checker's scheduler.
            pub fn yield_now() {
                $yield()
            }
        }
    };
}

#[inline]
fn loom_cell_with<T, R>(c: &loom::cell::UnsafeCell<T>, f: impl FnOnce(*const T) -> R) -> R {
    c.with(f)
}
#[inline]
fn loom_cell_with_mut<T, R>(c: &loom::cell::UnsafeCell<T>, f: impl FnOnce(*mut T) -> R) -> R {
    c.with_mut(f)
}
#[inline]
fn std_cell_with<T, R>(c: &core::cell::UnsafeCell<T>, f: impl FnOnce(*const T) -> R) -> R {
    f(c.get())
}
#[inline]
fn std_cell_with_mut<T, R>(c: &core::cell::UnsafeCell<T>, f: impl FnOnce(*mut T) -> R) -> R {
    f(c.get())
}

mod loom_cells {
    pub(super) use super::loom_cell_with as cell_with;
    pub(super) use super::loom_cell_with_mut as cell_with_mut;
}
mod std_cells {
    pub(super) use super::std_cell_with as cell_with;
    pub(super) use super::std_cell_with_mut as cell_with_mut;
}

model_platform!(
    /// The loom platform: exhaustive (bounded) exploration with a memory model
    /// that catches ordering bugs and unsynchronized cell access. Model threads
    /// do not spin unless a check asks (`ModelThread::spins`): every spin round
    /// multiplies the exhaustive state space.
    loom_platform, Loom, loom, cell = loom::cell::UnsafeCell<T>, cells = loom_cells, yield = loom::thread::yield_now, spins = 0
);
model_platform!(
    /// The shuttle platform: randomized and PCT scheduling over many threads
    /// (every atomic is SeqCst; cells are not tracked — checks use witnesses).
    /// Model threads with an odd id run two rounds of every spin loop before
    /// they sleep, so the spin fast paths run under every shuttle check.
    shuttle_platform, Shuttle, shuttle, cell = core::cell::UnsafeCell<T>, cells = std_cells, yield = shuttle::thread::yield_now, spins = 2
);
