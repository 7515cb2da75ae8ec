//! The manager's request/response protocol, its server-side dispatch and its
//! clients' multi-request sequences.
//!
//! * [`protocol`]: what travels on a connection.
//! * [`server`]: the object table, the dispatch and the serve loop.
//! * [`client`]: the operations a client performs as several requests
//!   (condition wait and `wait_for`, barrier wait, list sort), written once against a
//!   [`Requester`]: `procshare` runs them over its socket connection, the
//!   checks over the model's in-process server.
//!
//! A manager server owns objects (lists, dicts, values, namespaces, locks,
//! events, semaphores, queues, sets) and applies the operations its clients
//! send. [`containers`] holds CPython 3.14's additions (sets, list `*=`, dict
//! `|`, `fromkeys`, `popitem`, iteration), each one step of the server.
//! Each client connection is served by one server thread running
//! [`serve_connection`]: receive a [`Request`], apply it with
//! [`Server::handle`], send the [`Response`], repeat. This module is that loop
//! and that dispatch, written once and generic over:
//!
//! * [`ServerSync`]: the mutex and condition variable guarding the server's
//!   object table, and its clock. The shipped server (`procshare::manager`)
//!   runs a process of its own with OS threads, so it uses [`StdSync`]
//!   (`std::sync`); the checks use `ShuttleSync` and `LoomSync` (the checkers'
//!   `Mutex`/`Condvar`, finite timeouts modelled), under which several
//!   clients' histories are checked linearizable and the client sequences
//!   correct, every timeout branch included (see `checks`). The retry loop of
//!   a blocked request ([`block_on`]) is written once over it.
//! * [`Transport`]: how requests arrive (framed sockets in `procshare`, shuttle
//!   channels in the checks).
//!
//! # Values
//!
//! Values are stored as the opaque bytes of their codec encoding ([`Bytes`]);
//! the server never decodes them (no code runs on deserialization, and the
//! server needs no type). Therefore **equality on the server is equality of
//! encodings**: `index`, `count`, `remove` and dict keys compare encoded bytes.
//! For the codec `procshare` uses (postcard, deterministic) two values of the
//! same type are equal as bytes iff their serde data model values are equal; a
//! type whose `PartialEq` is looser than its serialized form (e.g. `f64`'s
//! `0.0 == -0.0`, or a `HashMap` whose iteration order varies) compares by
//! its encoding instead. Ordering (`sort`) is done by the client with `T: Ord`
//! and written back with a version check ([`Op::ReplaceIf`]), so it is
//! atomic with respect to every other operation.
//!
//! # Errors
//!
//! Every failed operation answers [`Response::Err`] with an [`OpError`] and
//! leaves the object exactly as it was.
//!
//! # Blocking operations
//!
//! Lock acquisition, event waits, semaphore acquisition and queue get/put may
//! have to wait. [`apply`] then returns [`Step::Block`] without changing
//! anything; [`Server::handle`] waits ([`block_on`]) on the server's condition variable
//! (without holding the table lock) and retries until the operation completes
//! or its timeout passes. Every state change notifies all waiters. A
//! connection that closes releases every lock it held ([`Server::disconnect`]),
//! so a client killed with `kill -9` while holding a manager lock does not
//! block the others (CPython's manager keeps such a lock forever).

pub mod array;
pub mod client;
pub mod containers;
pub mod custom;
pub mod joinable;
pub mod objects;
pub mod pool;
pub mod protocol;
pub mod server;

pub use array::{ArrayOp, Slice};
pub use client::*;
pub use containers::*;
pub use custom::{ArgsFactory, CustomCell, CustomObject, Factory, Registry};
#[doc(hidden)]
pub use custom::{MUTANT_CALL_UNDER_TABLE, MUTANT_CALL_UNLOCKED};
pub use joinable::{JoinableOp, JoinableState};
pub use objects::*;
pub use pool::{Pending, PoolFactory, PoolOp, Runner};
#[doc(hidden)]
pub use pool::{MUTANT_POOL_UNDER_TABLE, MUTANT_WAIT_UNDER_TICKETS};
pub use protocol::*;
pub use server::*;

#[cfg(feature = "checkers")]
pub mod checks;
