//! The manager's joinable queue (`manager.JoinableQueue()`) and its proxy.

use super::client::{dec, unexpected, Handle, Result};
use super::proxy::proxy_common;
use super::Manager;
use procshare_model::manager::{Init, JoinableOp, Kind, Op, Response, Wait};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Borrow;
use std::marker::PhantomData;
use std::time::Duration;

impl Manager {
    /// A new manager joinable queue (`manager.JoinableQueue(maxsize)`;
    /// `None`: unbounded).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// let m = procshare::Manager::start().unwrap();
    /// let q = m.joinable_queue::<u8>(None).unwrap();
    /// q.put(1).unwrap();
    /// assert_eq!(q.get().unwrap(), 1);
    /// q.task_done().unwrap();
    /// q.join().unwrap();
    /// ```
    pub fn joinable_queue<T: Serialize + DeserializeOwned>(
        &self,
        maxsize: Option<u64>,
    ) -> Result<JoinableQueueProxy<T>> {
        Ok(JoinableQueueProxy::from_handle(
            self.create(Init::JoinableQueue { maxsize })?,
        ))
    }
}

/// A proxy to a joinable queue in the manager: a [`QueueProxy`](super::QueueProxy)
/// whose every `put` opens a task that [`task_done`](Self::task_done) closes;
/// [`join`](Self::join) waits until none is open (as the local
/// [`JoinableQueue`](crate::JoinableQueue), and CPython's `queue.Queue` in its
/// manager). A `task_done` with no task open is an error
/// ([`OpError::BadRequest`](super::OpError::BadRequest), CPython's `ValueError`).
///
/// ```
/// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
/// use std::time::Duration;
/// let m = procshare::Manager::start().unwrap();
/// let q = m.joinable_queue::<String>(None).unwrap();
/// q.put("job".to_string()).unwrap();
/// assert!(!q.join_timeout(Duration::from_millis(1)).unwrap()); // a task is open
/// let q2 = q.clone();
/// let worker = std::thread::spawn(move || {
///     let job = q2.get().unwrap();
///     q2.task_done().unwrap();
///     job
/// });
/// q.join().unwrap();
/// assert_eq!(worker.join().unwrap(), "job");
/// assert!(q.task_done().is_err()); // called too many times
/// ```
pub struct JoinableQueueProxy<T> {
    h: Handle,
    _t: PhantomData<fn() -> T>,
}
proxy_common!(JoinableQueueProxy[T], Kind::JoinableQueue);

fn ok(r: Response) -> Result<()> {
    match r {
        Response::Ok => Ok(()),
        r => unexpected(r),
    }
}

impl<T: Serialize + DeserializeOwned> JoinableQueueProxy<T> {
    super::sync::queue_methods!(joinable_queue);
    /// Close one task (an error if none is open).
    pub fn task_done(&self) -> Result<()> {
        ok(self.h.op(Op::Joinable(JoinableOp::TaskDone))?)
    }
    /// Wait until every task is closed.
    pub fn join(&self) -> Result<()> {
        ok(self.h.op(Op::Joinable(JoinableOp::Join(Wait::Forever)))?)
    }
    /// Wait at most `t` until every task is closed; `true` if they are.
    #[doc(alias = "join")]
    pub fn join_timeout(&self, t: Duration) -> Result<bool> {
        match self
            .h
            .op(Op::Joinable(JoinableOp::Join(Wait::from_timeout(Some(t)))))
        {
            Ok(r) => ok(r).map(|()| true),
            Err(super::ManagerError::Op(super::OpError::Timeout)) => Ok(false),
            Err(e) => Err(e),
        }
    }
    /// The number of tasks open (put and not yet `task_done`).
    pub fn unfinished_tasks(&self) -> Result<u64> {
        match self.h.op(Op::Joinable(JoinableOp::Unfinished))? {
            Response::Usize(n) => Ok(n),
            r => unexpected(r),
        }
    }
}
