//! # procshare
//!
//! Python's `multiprocessing` shared-state toolkit for Rust, over real OS processes.
#![deny(missing_docs)]

pub mod auth;
mod error;
pub use error::Error;
mod layout;
pub mod platform;
pub mod process;
pub mod shm;
pub(crate) mod sys;
pub mod wire;
pub use process::{cpu_count, Process, StartMethod};
pub mod array;
pub mod manager;
pub mod sync;
pub mod value;
pub use array::{Array, RawArray};
pub use sync::{Barrier, BoundedSemaphore, Event, Lock, RLock, Semaphore};
pub use value::{RawValue, Value};
pub mod pool;
pub use pool::Pool;
pub mod queue;
pub use queue::{Queue, QueueError};
pub mod simple_queue;
pub use simple_queue::SimpleQueue;
pub mod joinable_queue;
pub use joinable_queue::JoinableQueue;
pub mod pipe;
pub mod spawn;
pub use pipe::{Connection, Pipe};
pub mod shared_memory;
pub use shared_memory::{
    Item, ShareableList, SharedMemory, SharedMemoryError, SharedMemoryManager,
};

/// The message of a caught panic payload (`&str` or `String`; anything else
/// is described as such).
pub(crate) fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}
