//! # procshare
//!
//! Python's `multiprocessing` shared-state toolkit for Rust, over real OS processes.
#![deny(missing_docs)]

pub use procshare_model as model;
pub mod auth;
pub mod wire;
pub mod platform;
pub mod shm;
pub mod process;
pub use process::{cpu_count, Process};
pub mod sync;
pub mod manager;
pub mod value;
pub mod array;
pub use array::{Array, RawArray};
pub use value::{RawValue, Value};
pub use sync::{Barrier, BoundedSemaphore, Event, Lock, RLock, Semaphore};
pub mod pool;
pub use pool::Pool;
pub mod queue;
pub use queue::{Queue, QueueError};
pub mod simple_queue;
pub use simple_queue::SimpleQueue;
pub mod joinable_queue;
pub use joinable_queue::JoinableQueue;
pub mod pipe;
pub use pipe::{Connection, Pipe};
