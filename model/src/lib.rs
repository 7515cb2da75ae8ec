//! # procshare-model
//!
//! Every concurrency protocol of `procshare`, written once, generic over a
//! [`Platform`](platform::Platform). The shipped crate instantiates these protocols over
//! shared memory and futexes; the `checkers` feature (on by default) adds the
//! [loom](https://docs.rs/loom) and [shuttle](https://docs.rs/shuttle) platforms
//! under which the very same code is model-checked by a plain `cargo test`.
#![deny(missing_docs)]

#[cfg(feature = "checkers")]
pub mod checkers;
pub mod platform;
#[cfg(feature = "checkers")]
pub use checkers::{loom_platform, shuttle_platform};
#[cfg(feature = "checkers")]
pub mod testkit;

pub mod barrier;
pub mod condition;
pub mod event;
#[cfg(feature = "checkers")]
pub mod fuzzing;
pub mod joinable;
pub mod manager;
pub mod mutex;
pub mod park;
pub mod pool;
pub mod redis;
pub mod ring;
pub mod rlock;
pub mod semaphore;
pub mod slot_queue;
