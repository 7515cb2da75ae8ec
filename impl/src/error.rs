//! The crate-level [`Error`]: every family of operations has its own error
//! type, and each converts into this one, so `?` works across a program that
//! uses queues, a pool, a manager, locks and processes.
//!
//! Sources are kept: [`std::error::Error::source`] walks from an [`Error`]
//! down through the family error to the OS or codec error that caused it.

use crate::codec::auth::AuthError;
use crate::codec::wire::WireError;
use crate::data::array::IndexError;
use crate::manager::{AddressError, ManagerError};
use crate::pool::PoolError;
use crate::process::spawn::SpawnError;
use crate::process::ProcessError;
use crate::queue::pipe::PipeError;
use crate::queue::QueueError;
use crate::shared_memory::SharedMemoryError;
use crate::shm::ShmError;
use crate::sync::SyncError;

/// Any procshare error: one variant per family, each displayed as (and with
/// the same source as) the family error it holds.
///
/// ```
/// use procshare::Manager;
/// use procshare::{Pool, Queue};
///
/// fn double(x: u32) -> u32 {
///     x * 2
/// }
///
/// fn main() -> Result<(), procshare::Error> {
/// #   std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
///     let q: Queue<u32> = Queue::new()?; // QueueError
///     let pool = Pool::new(2)?; // PoolError
///     let m = Manager::start()?; // ManagerError
///     let list = m.list::<u32>()?;
///     for r in pool.map(double, [1, 2, 3])? {
///         q.put(&r)?;
///         list.append(&q.get()?)?;
///     }
///     assert_eq!(list.len()?, 3);
///     pool.close()?;
///     pool.join()?;
///     Ok(())
/// }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A [`Queue`](crate::Queue), [`SimpleQueue`](crate::SimpleQueue) or
    /// [`JoinableQueue`](crate::JoinableQueue) operation failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// A [`Connection`](crate::Connection) operation failed.
    #[error(transparent)]
    Pipe(#[from] PipeError),
    /// A [`Pool`](crate::Pool) operation or one of its tasks failed.
    #[error(transparent)]
    Pool(#[from] PoolError),
    /// A manager operation failed.
    #[error(transparent)]
    Manager(#[from] ManagerError),
    /// A string is not a manager address.
    #[error(transparent)]
    Address(#[from] AddressError),
    /// A [`Process`](crate::Process) operation failed.
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// A spawn or forkserver start failed.
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    /// A lock, semaphore, event or barrier refused the operation.
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// An [`Array`](crate::Array) index was out of range.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// Shared memory for a procshare object could not be made or attached.
    #[error(transparent)]
    Shm(#[from] ShmError),
    /// A named [`SharedMemory`](crate::SharedMemory) block or
    /// [`ShareableList`](crate::ShareableList) operation failed.
    #[error(transparent)]
    SharedMemory(#[from] SharedMemoryError),
    /// A connection's handshake failed.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// A frame could not be read, written, encoded or decoded.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// A Redis backend operation failed (feature `redis`).
    #[cfg(feature = "redis")]
    #[error(transparent)]
    Redis(#[from] crate::redis::RedisError),
}
