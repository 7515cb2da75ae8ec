//! # procshare-model
//!
//! Every concurrency protocol of `procshare`, written once, generic over a
//! [`Platform`](platform::Platform). The shipped crate instantiates these protocols over
//! shared memory and futexes; the `checkers` feature (on by default) adds the
//! [loom](https://docs.rs/loom) and [shuttle](https://docs.rs/shuttle) platforms
//! under which the very same code is model-checked by a plain `cargo test`.
#![deny(missing_docs)]

pub mod platform;
pub mod manager;
