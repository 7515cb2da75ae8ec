//! Synchronization proxies and the manager queue. Blocking operations wait in
//! the server (on the connection's own server thread), not in the client.
//! The owner of a manager lock is the connection (one per thread per
//! process); a connection that closes releases what it held.

use super::client::{dec, unexpected, Handle, Result};
use super::proxy::proxy_common;
use procshare_model::manager::{self as model, Kind, Op, Response, Wait};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Borrow;
use std::marker::PhantomData;
use std::time::Duration;

/// The model's client sequences (condition wait, barrier wait, list sort)
/// run over a handle's connection: one request per call.
impl model::Requester for Handle {
    type Error = super::ManagerError;
    fn request(&self, op: Op) -> Result<Response> {
        super::client::call(&self.ep, &model::Request::Op(self.id, op))
    }
}

impl From<model::ClientError> for super::ManagerError {
    fn from(e: model::ClientError) -> Self {
        match e {
            model::ClientError::Op(e) => super::ManagerError::Op(e),
            model::ClientError::Unexpected(r) => super::ManagerError::Protocol(format!("{r:?}")),
        }
    }
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

macro_rules! acquire_release {
    ($name:ident) => {
        impl $name {
            /// Acquire, waiting as long as it takes.
            pub fn acquire(&self) -> Result<()> {
                flag(self.h.op(Op::Acquire(Wait::Forever))?).map(drop)
            }
            /// Acquire if possible without waiting; `true` if acquired.
            #[doc(alias = "acquire")]
            pub fn try_acquire(&self) -> Result<bool> {
                flag(self.h.op(Op::Acquire(Wait::No))?)
            }
            /// Acquire, waiting at most `t`; `true` if acquired.
            #[doc(alias = "acquire")]
            pub fn acquire_timeout(&self, t: Duration) -> Result<bool> {
                flag(self.h.op(Op::Acquire(Wait::from_timeout(Some(t))))?)
            }
            /// Release (an error if not held, as CPython's `RuntimeError`).
            pub fn release(&self) -> Result<()> {
                ok(self.h.op(Op::Release)?)
            }
        }
    };
}

/// A manager lock (`manager.Lock()`): any holder of the proxy may release it.
///
/// ```
/// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
/// let m = procshare::Manager::start().unwrap();
/// let l = m.lock().unwrap();
/// assert!(l.try_acquire().unwrap());
/// assert!(l.is_locked().unwrap());
/// assert!(!l.acquire_timeout(std::time::Duration::from_millis(1)).unwrap());
/// l.release().unwrap();
/// assert!(l.release().is_err());
/// ```
pub struct LockProxy {
    h: Handle,
    _t: PhantomData<()>,
}
proxy_common!(LockProxy[], Kind::Lock);
acquire_release!(LockProxy);

impl LockProxy {
    /// The fencing token of this process's acquisition, while it holds the
    /// lock of a Redis manager (`Manager::redis`, feature `redis`):
    /// larger than every earlier acquisition's. Give it to the resources you
    /// write ([`ValueProxy::set_fenced`](super::ValueProxy::set_fenced)):
    /// they reject the late writes of a holder that lost its lease. `None`
    /// when not held here, and for a local manager (whose locks end with
    /// their holder's connection).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// let m = procshare::Manager::start().unwrap();
    /// let l = m.lock().unwrap();
    /// l.acquire().unwrap();
    /// assert_eq!(l.fencing_token(), None); // a local manager's lock
    /// ```
    pub fn fencing_token(&self) -> Option<u64> {
        self.h.fencing_token()
    }

    /// Is it held?
    #[doc(alias = "locked")]
    pub fn is_locked(&self) -> Result<bool> {
        flag(self.h.op(Op::Locked)?)
    }
}

/// A manager recursive lock (`manager.RLock()`), owned by the connection
/// (thread and process) that acquired it.
///
/// ```
/// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
/// let m = procshare::Manager::start().unwrap();
/// let l = m.rlock().unwrap();
/// l.acquire().unwrap();
/// let l2 = l.clone();
/// let other = std::thread::spawn(move || l2.try_acquire().unwrap());
/// assert!(!other.join().unwrap()); // another thread: another owner
/// l.release().unwrap();
/// ```
pub struct RLockProxy {
    pub(super) h: Handle,
    _t: PhantomData<()>,
}
proxy_common!(RLockProxy[], Kind::RLock);
acquire_release!(RLockProxy);

impl RLockProxy {
    /// The fencing token of this thread's acquisition of a Redis manager's
    /// recursive lock (see [`LockProxy::fencing_token`]); `None` when not
    /// held here, and for a local manager.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// let m = procshare::Manager::start().unwrap();
    /// assert_eq!(m.rlock().unwrap().fencing_token(), None);
    /// ```
    pub fn fencing_token(&self) -> Option<u64> {
        self.h.fencing_token()
    }
}

/// A manager semaphore (`manager.Semaphore()` / `BoundedSemaphore()`).
///
/// ```
/// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
/// let m = procshare::Manager::start().unwrap();
/// let s = m.semaphore(2).unwrap();
/// s.acquire().unwrap();
/// assert_eq!(s.value().unwrap(), 1);
/// s.release().unwrap();
/// ```
pub struct SemaphoreProxy {
    h: Handle,
    _t: PhantomData<()>,
}
proxy_common!(SemaphoreProxy[], Kind::Semaphore);
acquire_release!(SemaphoreProxy);

impl SemaphoreProxy {
    /// The current value.
    pub fn value(&self) -> Result<u64> {
        match self.h.op(Op::SemValue)? {
            Response::Usize(n) => Ok(n),
            r => unexpected(r),
        }
    }
}

/// A manager event (`manager.Event()`).
///
/// ```
/// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
/// let m = procshare::Manager::start().unwrap();
/// let e = m.event().unwrap();
/// assert!(!e.wait_timeout(std::time::Duration::from_millis(1)).unwrap());
/// let e2 = e.clone();
/// std::thread::spawn(move || e2.set().unwrap());
/// assert!(e.wait().unwrap());
/// e.clear().unwrap();
/// assert!(!e.is_set().unwrap());
/// ```
pub struct EventProxy {
    h: Handle,
    _t: PhantomData<()>,
}
proxy_common!(EventProxy[], Kind::Event);

impl EventProxy {
    /// Set the flag, waking every waiter.
    pub fn set(&self) -> Result<()> {
        ok(self.h.op(Op::EventSet)?)
    }
    /// Clear the flag.
    pub fn clear(&self) -> Result<()> {
        ok(self.h.op(Op::EventClear)?)
    }
    /// Is the flag set?
    pub fn is_set(&self) -> Result<bool> {
        flag(self.h.op(Op::EventIsSet)?)
    }
    /// Wait until the flag is set; returns `true`.
    pub fn wait(&self) -> Result<bool> {
        flag(self.h.op(Op::EventWait(Wait::Forever))?)
    }
    /// Wait at most `t`; returns the flag.
    #[doc(alias = "wait")]
    pub fn wait_timeout(&self, t: Duration) -> Result<bool> {
        flag(self.h.op(Op::EventWait(Wait::from_timeout(Some(t))))?)
    }
}

/// A manager queue (`manager.Queue(maxsize)`): FIFO, shared by every process.
/// A `put` on a full queue or `get` on an empty one that cannot complete in
/// time fails with [`super::OpError::Timeout`] (Python's `Full`/`Empty`).
///
/// ```
/// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
/// use procshare::OpError;
/// let m = procshare::Manager::start().unwrap();
/// let q = m.queue::<u32>(Some(1)).unwrap();
/// q.put(1).unwrap();
/// assert_eq!(q.try_put(2).unwrap_err().op_error(), Some(&OpError::Timeout));
/// assert_eq!(q.qsize().unwrap(), 1);
/// assert_eq!(q.get().unwrap(), 1);
/// assert!(q.get_timeout(std::time::Duration::from_millis(1)).is_err());
/// ```
pub struct QueueProxy<T> {
    pub(super) h: Handle,
    _t: PhantomData<fn() -> T>,
}
proxy_common!(QueueProxy[T], Kind::Queue);

/// The queue operations a manager queue and a manager joinable queue share
/// (one copy for both proxies; each has `h: Handle`, and `ok`, `dec`,
/// `unexpected`, `Op`, `Response`, `Wait` in scope where it is used).
macro_rules! queue_methods {
    ($new:ident) => {
        /// Put an item, waiting while the queue is full.
        /// (A proxy of this manager in the item keeps its object alive
        /// while the queue holds the item.)
        pub fn put(&self, v: impl Borrow<T>) -> Result<()> {
            self.put_with(v.borrow(), Wait::Forever)
        }
        /// Put an item if there is room now.
        #[doc(alias = "put_nowait")]
        pub fn try_put(&self, v: impl Borrow<T>) -> Result<()> {
            self.put_with(v.borrow(), Wait::No)
        }
        /// Put an item, waiting at most `t` for room.
        #[doc(alias = "put")]
        pub fn put_timeout(&self, v: impl Borrow<T>, t: Duration) -> Result<()> {
            self.put_with(v.borrow(), Wait::from_timeout(Some(t)))
        }
        fn put_with(&self, v: &T, w: Wait) -> Result<()> {
            let (b, ids) = super::stored::enc_holding(&self.h.ep.address, v)?;
            ok(self.h.op(super::stored::holding(ids, Op::Put(b, w)))?)
        }
        /// Get an item, waiting while the queue is empty.
        pub fn get(&self) -> Result<T> {
            self.get_with(Wait::Forever)
        }
        /// Get an item if there is one now.
        #[doc(alias = "get_nowait")]
        pub fn try_get(&self) -> Result<T> {
            self.get_with(Wait::No)
        }
        /// Get an item, waiting at most `t`.
        #[doc(alias = "get")]
        pub fn get_timeout(&self, t: Duration) -> Result<T> {
            self.get_with(Wait::from_timeout(Some(t)))
        }
        fn get_with(&self, w: Wait) -> Result<T> {
            match self.h.op(Op::QGet(w))? {
                Response::Item(b) => dec(&b),
                r => unexpected(r),
            }
        }
        /// Number of items now.
        pub fn qsize(&self) -> Result<usize> {
            match self.h.op(Op::Len)? {
                Response::Usize(n) => Ok(n as usize),
                r => unexpected(r),
            }
        }
        /// Is it empty now?
        #[doc(alias = "empty")]
        pub fn is_empty(&self) -> Result<bool> {
            Ok(self.qsize()? == 0)
        }
        /// Is the queue full now (`q.full()`; an unbounded queue never is)?
        ///
        /// ```
        /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
        /// # let m = procshare::Manager::start().unwrap();
        #[doc = concat!("let q = m.", stringify!($new), "::<u8>(Some(1)).unwrap();")]
        /// assert!(!q.is_full().unwrap());
        /// q.put(1).unwrap();
        /// assert!(q.is_full().unwrap());
        /// assert_eq!(q.qsize().unwrap(), 1);
        /// ```
        #[doc(alias = "full")]
        pub fn is_full(&self) -> Result<bool> {
            match self.h.op(Op::QFull)? {
                Response::Bool(b) => Ok(b),
                r => unexpected(r),
            }
        }
    };
}
pub(super) use queue_methods;

impl<T: Serialize + DeserializeOwned> QueueProxy<T> {
    queue_methods!(queue);
}

/// A manager condition variable (`manager.Condition()`), with its own
/// recursive lock, owned by the connection (thread and process) that took it.
///
/// ```
/// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
/// let m = procshare::Manager::start().unwrap();
/// let cond = m.condition().unwrap();
/// let ready = m.value(false).unwrap();
/// let (c2, r2) = (cond.clone(), ready.clone());
/// let t = std::thread::spawn(move || {
///     c2.acquire().unwrap();
///     r2.set(&true).unwrap();
///     c2.notify_all().unwrap();
///     c2.release().unwrap();
/// });
/// cond.acquire().unwrap();
/// while !ready.get().unwrap() {
///     cond.wait().unwrap();
/// }
/// cond.release().unwrap();
/// t.join().unwrap();
/// assert!(cond.notify().is_err()); // not holding the lock
/// ```
pub struct ConditionProxy {
    h: Handle,
    _t: PhantomData<()>,
}
proxy_common!(ConditionProxy[], Kind::Condition);
acquire_release!(ConditionProxy);

impl ConditionProxy {
    /// Release the lock, sleep until notified, take the lock again (the
    /// caller must hold it). Returns `true`.
    pub fn wait(&self) -> Result<bool> {
        self.wait_with(Wait::Forever)
    }

    /// [`ConditionProxy::wait`] for at most `t`; returns `false` if not notified in
    /// time (the lock is held again either way, as in Python).
    #[doc(alias = "wait")]
    pub fn wait_timeout(&self, t: Duration) -> Result<bool> {
        self.wait_with(Wait::from_timeout(Some(t)))
    }

    fn wait_with(&self, w: Wait) -> Result<bool> {
        model::condition_wait(&self.h, w)
    }

    /// Wait until `pred()` holds (checked with the lock held), as Python's `wait_for`.
    pub fn wait_for(&self, pred: impl FnMut() -> Result<bool>) -> Result<()> {
        model::condition_wait_for(&self.h, pred)
    }

    /// Python's `wait_for(predicate, timeout)`: wait until `pred()` holds or
    /// `t` passes; returns the predicate's last value (the lock is held
    /// again either way).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// let m = procshare::Manager::start().unwrap();
    /// let c = m.condition().unwrap();
    /// c.acquire().unwrap();
    /// let t = std::time::Duration::from_millis(10);
    /// assert!(!c.wait_for_timeout(|| Ok(false), t).unwrap());
    /// assert!(c.wait_for_timeout(|| Ok(true), t).unwrap());
    /// c.release().unwrap();
    /// ```
    #[doc(alias = "wait_for")]
    pub fn wait_for_timeout(
        &self,
        pred: impl FnMut() -> Result<bool>,
        t: Duration,
    ) -> Result<bool> {
        model::condition_wait_for_timeout(&self.h, pred, t)
    }

    /// Wake one waiter (the caller must hold the lock).
    pub fn notify(&self) -> Result<()> {
        ok(self.h.op(Op::Notify(1))?)
    }

    /// Wake up to `n` waiters (the caller must hold the lock).
    pub fn notify_n(&self, n: u64) -> Result<()> {
        ok(self.h.op(Op::Notify(n))?)
    }

    /// Wake every waiter (the caller must hold the lock).
    pub fn notify_all(&self) -> Result<()> {
        ok(self.h.op(Op::NotifyAll)?)
    }
}

/// A manager barrier (`manager.Barrier(parties)`).
///
/// ```
/// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
/// let m = procshare::Manager::start().unwrap();
/// let b = m.barrier(2).unwrap();
/// let b2 = b.clone();
/// let t = std::thread::spawn(move || b2.wait().unwrap());
/// let mine = b.wait().unwrap();
/// let theirs = t.join().unwrap();
/// assert_eq!(mine + theirs, 1); // arrival indices 0 and 1
/// // A timed-out wait breaks the barrier, as in Python.
/// assert!(b.wait_timeout(std::time::Duration::from_millis(1)).is_err());
/// assert!(b.is_broken().unwrap());
/// b.reset().unwrap();
/// assert!(!b.is_broken().unwrap());
/// ```
pub struct BarrierProxy {
    h: Handle,
    /// The default timeout of [`BarrierProxy::wait`] (`Barrier(timeout=)`).
    timeout: Option<Duration>,
}

impl Clone for BarrierProxy {
    fn clone(&self) -> Self {
        BarrierProxy {
            h: self.h.clone(),
            timeout: self.timeout,
        }
    }
}

impl std::fmt::Debug for BarrierProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BarrierProxy({:?})", self.h)
    }
}

impl PartialEq for BarrierProxy {
    /// Two proxies are equal when they refer to the same object.
    fn eq(&self, o: &Self) -> bool {
        self.h.id == o.h.id && self.h.ep.address == o.h.ep.address
    }
}

impl Serialize for BarrierProxy {
    /// The default timeout is the proxy's, not the object's: it is not sent.
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.h.serialize(s)
    }
}

impl<'de> Deserialize<'de> for BarrierProxy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(Self::from_handle(Handle::deserialize(d, Kind::Barrier)?))
    }
}

impl BarrierProxy {
    pub(crate) fn from_handle(h: Handle) -> Self {
        BarrierProxy { h, timeout: None }
    }

    pub(crate) fn with_timeout(mut self, t: Option<Duration>) -> Self {
        self.timeout = t;
        self
    }

    /// Wait until all parties have arrived; returns this party's arrival index
    /// (`0..parties`). `BrokenBarrier` if the barrier is or becomes broken
    /// (also when the proxy's default timeout, see
    /// [`Manager::barrier_with_timeout`](super::Manager::barrier_with_timeout), passes).
    pub fn wait(&self) -> Result<u64> {
        self.wait_with(Wait::from_timeout(self.timeout))
    }

    /// [`BarrierProxy::wait`] for at most `t`; on timeout the barrier breaks and
    /// this returns `BrokenBarrier` (Python's behaviour).
    #[doc(alias = "wait")]
    pub fn wait_timeout(&self, t: Duration) -> Result<u64> {
        self.wait_with(Wait::from_timeout(Some(t)))
    }

    fn wait_with(&self, w: Wait) -> Result<u64> {
        model::barrier_wait(&self.h, w)
    }

    fn state(&self) -> Result<Vec<u64>> {
        match self.h.op(Op::BarrierState)? {
            Response::Counts(v) if v.len() == 3 => Ok(v),
            r => unexpected(r),
        }
    }

    /// Number of parties.
    pub fn parties(&self) -> Result<u64> {
        Ok(self.state()?[0])
    }

    /// Parties waiting now.
    pub fn n_waiting(&self) -> Result<u64> {
        Ok(self.state()?[1])
    }

    /// Is it broken?
    #[doc(alias = "broken")]
    pub fn is_broken(&self) -> Result<bool> {
        Ok(self.state()?[2] != 0)
    }

    /// Break it: current and future waiters get `BrokenBarrier` until `reset`.
    pub fn abort(&self) -> Result<()> {
        ok(self.h.op(Op::BarrierAbort)?)
    }

    /// Return to the initial state (unbroken, nobody waiting); parties
    /// waiting now get `BrokenBarrier`, as in Python.
    pub fn reset(&self) -> Result<()> {
        ok(self.h.op(Op::BarrierReset)?)
    }
}
