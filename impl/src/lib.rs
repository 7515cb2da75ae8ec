//! # procshare
//!
//! Python's `multiprocessing` shared-state toolkit for Rust, over real OS processes.
//!
//! | Python | procshare |
//! |---|---|
//! | `Process`, `cpu_count`, `set_start_method` | [`Process`], [`cpu_count`], [`set_start_method`] |
//! | `Value`, `RawValue`, `Array`, `RawArray` | [`Value`], [`RawValue`], [`Array`], [`RawArray`] |
//! | `Lock`, `RLock`, `Semaphore`, `BoundedSemaphore`, `Event`, `Barrier` | [`Lock`], [`RLock`], [`Semaphore`], [`BoundedSemaphore`], [`Event`], [`Barrier`] |
//! | `Queue`, `SimpleQueue`, `JoinableQueue`, `Pipe` | [`Queue`], [`SimpleQueue`], [`JoinableQueue`], [`Pipe`] |
//! | `connection.Listener`, `Client`, `wait` | [`Listener`], [`Client`], [`wait`] |
//! | `Manager()`, `BaseManager` and its proxies | [`Manager`] and the `*Proxy` types |
//! | `Pool` | [`Pool`] |
//! | `shared_memory.SharedMemory`, `ShareableList`, `SharedMemoryManager` | [`SharedMemory`], [`ShareableList`], [`SharedMemoryManager`] |
//!
//! Every shared-memory protocol (locks, events, queues, ...) is written once in
//! the `procshare-model` crate and model-checked there with loom and shuttle;
//! this crate instantiates it over shared memory and futexes. See the
//! repository's `ARCHITECTURE.md` for the layers.
#![deny(missing_docs)]
// What only the `internals` feature re-exports (for procshare's own tests and
// benches) is unreachable without it; the workspace build, which enables it,
// still checks `unreachable_pub` everywhere.
#![cfg_attr(not(feature = "internals"), allow(unreachable_pub))]

// The layers, bottom up: system calls; shared memory and the real platform;
// the codec; the shared objects; processes, pools and managers.
mod sys;

mod platform;
mod shm;

mod codec;
mod connection;
mod error;

mod data;
mod queue;
mod shared_memory;
mod sync;

mod manager;
mod pool;
mod process;
#[cfg(feature = "redis")]
mod redis;

pub use crate::codec::auth::{AuthError, AuthKey};
pub use crate::codec::wire::WireError;
pub use crate::connection::{wait, Client, Family, Listener};
pub use crate::data::array::{Array, ArrayGuard, IndexError, RawArray};
pub use crate::data::value::{RawValue, Value, ValueGuard};
pub use crate::error::Error;
pub use crate::manager::{
    Address, AddressError, BarrierProxy, ConditionProxy, DictProxy, EventProxy, Kind, ListProxy,
    LockProxy, Manager, ManagerError, NamespaceProxy, OpError, QueueProxy, RLockProxy,
    SemaphoreProxy, ValueProxy,
};
pub use crate::manager::{ArrayProxy, JoinableQueueProxy, ManagerBuilder};
pub use crate::manager::{AsyncResultProxy, PoolFn, PoolProxy};
pub use crate::manager::{Call, CustomProxy, Reply, Shared, TypedProxy};
pub use crate::manager::{DictIter, ListIndex, ListIter, SetProxy};
pub use crate::pool::{AsyncResult, Imap, MapResult, Pool, PoolBuilder, PoolError, StarFn};
pub use crate::process::spawn::{Exporter, Importer, SpawnArg, SpawnArgs, SpawnError};
pub use crate::process::{
    active_children, current_process, get_all_start_methods, get_context, parent_process,
    ActiveChild, Context, CurrentProcess, ParentProcess,
};
pub use crate::process::{
    cpu_count, get_start_method, set_fork_warning, set_start_method, Process, ProcessError,
    StartMethod,
};
pub use crate::queue::joinable::JoinableQueue;
pub use crate::queue::pipe::{Connection, Pipe, PipeError};
pub use crate::queue::pod::PodQueue;
pub use crate::queue::simple::SimpleQueue;
pub use crate::queue::{Queue, QueueBuilder, QueueError, RawQueue};
#[cfg(feature = "redis")]
pub use crate::redis::RedisError;
pub use crate::shared_memory::{
    Item, PodView, ShareableList, SharedMemory, SharedMemoryError, SharedMemoryManager,
};
pub use crate::shm::ShmError;
pub use crate::sync::{
    AnyGuard, AnyLock, Barrier, BoundedSemaphore, Event, Lock, LockGuard, LockResult, OwnerDied,
    RLock, RLockGuard, Semaphore, SyncError, TryLockError, TryLockResult,
};
pub use crate::sync::{Condition, ConditionGuard};
#[doc(hidden)]
pub use serde as __serde;

/// The fuzz targets' bodies (the `fuzz/` crate and the corpus replay tests
/// call these). Not API: only with the `fuzzing` feature.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::manager::fuzzing::{manager_handshake, wire_frame, FUZZ_LIMIT};
    pub use crate::queue::fuzzing::{queue_frame, ring_ops};
    pub use crate::queue::pod_fuzzing::pod_queue_ops;
}

// Seeded bugs for the real-process history tests (documented inside). Not
// API: only with the `history-mutants` feature.
#[cfg(feature = "history-mutants")]
#[doc(hidden)]
pub mod history_mutants;

/// procshare's own tests and benches reach inside through this module. Not
/// API: only with the `internals` feature.
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod internals {
    pub use crate::codec::auth::{
        answer_challenge, client_handshake, deliver_challenge, server_handshake, ScriptedPeer,
    };
    pub use crate::codec::wire;
    pub use crate::platform::{current_identity, force_tag_collision, identity_of};
    pub use crate::platform::{current_owner_id, owner_is_alive, owner_tid, SAFETY_POLL};
    pub use crate::platform::{
        current_tid, tid_is_alive, Shm, ShmCell, ShmThread, ShmWord32, ShmWord64,
    };
    pub use crate::pool::slot_frames as pool_slot_frames;
    pub use crate::process::spawn::{forkserver_pid, with_forkserver_lock_held};
    pub use crate::queue::DEFAULT_CAPACITY;
    #[cfg(feature = "redis")]
    pub use crate::redis::{
        lock::{RedisLock, RedisLockGuard},
        RedisStore, SAFETY_WAIT as REDIS_SAFETY_WAIT,
    };
    pub use crate::shm::{arena_stats, Segment, ShmBox, ShmSlice};
}

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
