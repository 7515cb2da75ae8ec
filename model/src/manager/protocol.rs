//! The manager protocol: what travels on a connection ([`Request`], [`Op`],
//! [`Response`], [`OpError`]) and the values requests carry.

use serde::{Deserialize, Serialize};
use std::time::Duration;

pub use super::containers::{SetAlg, SetCmp};

/// An object's id in the server's table.
pub type ObjId = u64;
/// A connection's id (server-assigned; the owner of locks it holds).
pub type ConnId = u64;
/// An encoded value.
pub type Bytes = Vec<u8>;

/// The kind of a managed object.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A list.
    List,
    /// A dict (insertion-ordered, as Python's).
    Dict,
    /// A single value.
    Value,
    /// A namespace of named attributes.
    Namespace,
    /// A non-recursive lock.
    Lock,
    /// A recursive lock.
    RLock,
    /// A counting semaphore (optionally bounded).
    Semaphore,
    /// An event.
    Event,
    /// A FIFO queue.
    Queue,
    /// A condition variable with its own recursive lock.
    Condition,
    /// A barrier for a number of parties.
    Barrier,
    /// A typed array (`manager.Array`).
    Array,
    /// A joinable queue (`manager.JoinableQueue`).
    JoinableQueue,
    /// A set (CPython 3.14's `SyncManager.set()`; insertion-ordered here).
    Set,
    /// An object of a type registered on the server ([`super::custom`]).
    Custom,
    /// A process pool in the server (`manager.Pool()`, [`super::pool`]).
    Pool,
}

/// The initial state of a new object.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Init {
    /// A list holding these items.
    List(Vec<Bytes>),
    /// A dict holding these pairs (later duplicates win, as in Python).
    Dict(Vec<(Bytes, Bytes)>),
    /// A value.
    Value(Bytes),
    /// An empty namespace.
    Namespace,
    /// An unlocked lock.
    Lock,
    /// An unlocked recursive lock.
    RLock,
    /// A semaphore with this initial value and an optional bound.
    Semaphore {
        /// Initial value.
        value: u64,
        /// `Some(b)`: a bounded semaphore (releasing above `b` is an error).
        bound: Option<u64>,
    },
    /// An unset event.
    Event,
    /// An empty queue with an optional maximum size in items.
    Queue {
        /// `None`: unbounded.
        maxsize: Option<u64>,
    },
    /// A condition variable (its recursive lock unlocked).
    Condition,
    /// A barrier for `parties` parties (at least 1).
    Barrier {
        /// Parties that must arrive to release a generation.
        parties: u64,
    },
    /// An array holding these items.
    Array(Vec<Bytes>),
    /// An empty joinable queue with an optional maximum size in items.
    JoinableQueue {
        /// `None`: unbounded.
        maxsize: Option<u64>,
    },
    /// A set holding these items (duplicates, by encoding, kept once).
    Set(Vec<Bytes>),
    /// An object of the type registered under `typeid`, made by its factory
    /// (CPython's `manager.typeid()`). `methods`: the methods the client
    /// knows the type by; they must be the server's (else `TypeMismatch`).
    Custom {
        /// The registered name.
        typeid: String,
        /// The exposed methods, as the client's registration lists them.
        methods: Vec<String>,
    },
    /// A process pool of `processes` workers (0: one per CPU) in the
    /// server, running the functions registered on it ([`super::pool`]).
    Pool {
        /// Worker processes.
        processes: u64,
    },
    /// [`Init::Custom`] made by a factory that takes arguments (CPython's
    /// `manager.typeid(*args)`): `args`, encoded, are the factory's.
    CustomWith {
        /// The registered name.
        typeid: String,
        /// The exposed methods, as the client's registration lists them.
        methods: Vec<String>,
        /// The factory's encoded arguments.
        args: Bytes,
    },
}

impl Init {
    /// The kind of object this creates.
    pub fn kind(&self) -> Kind {
        match self {
            Init::List(_) => Kind::List,
            Init::Dict(_) => Kind::Dict,
            Init::Value(_) => Kind::Value,
            Init::Namespace => Kind::Namespace,
            Init::Lock => Kind::Lock,
            Init::RLock => Kind::RLock,
            Init::Semaphore { .. } => Kind::Semaphore,
            Init::Event => Kind::Event,
            Init::Queue { .. } => Kind::Queue,
            Init::Condition => Kind::Condition,
            Init::Barrier { .. } => Kind::Barrier,
            Init::Array(_) => Kind::Array,
            Init::JoinableQueue { .. } => Kind::JoinableQueue,
            Init::Set(_) => Kind::Set,
            Init::Custom { .. } => Kind::Custom,
            Init::Pool { .. } => Kind::Pool,
            Init::CustomWith { .. } => Kind::Custom,
        }
    }
}

/// How long a blocking operation may wait.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Do not wait (`block=False`).
    No,
    /// Wait at most this many microseconds.
    Micros(u64),
    /// Wait as long as it takes.
    Forever,
}

impl Wait {
    /// The timeout as a `Duration` (`None`: forever).
    pub fn timeout(self) -> Option<Duration> {
        match self {
            Wait::No => Some(Duration::ZERO),
            Wait::Micros(us) => Some(Duration::from_micros(us)),
            Wait::Forever => None,
        }
    }
    /// The timeout in whole milliseconds, rounded up (`None`: forever), as
    /// the Redis protocols' waits take it.
    pub fn timeout_ms(self) -> Option<u64> {
        self.timeout()
            .map(|d| u64::try_from(d.as_micros().div_ceil(1000)).unwrap_or(u64::MAX))
    }
    /// From an optional timeout (`None`: forever).
    pub fn from_timeout(t: Option<Duration>) -> Self {
        match t {
            None => Wait::Forever,
            Some(d) => Wait::Micros(u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
        }
    }
}

/// One operation on one object. Indices of the unsigned ops follow Rust's
/// conventions (the `*At` ops take Python's signed indices); ranges are clamped to the list like Python slices.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Op {
    // --- lists ---
    /// Append an item.
    Append(Bytes),
    /// Append several items, in order, atomically.
    Extend(Vec<Bytes>),
    /// Insert before index `i` (clamped to the length, as Python's `insert`).
    Insert(u64, Bytes),
    /// Remove and return the last item (`None`) or the item at an index.
    Pop(Option<u64>),
    /// Remove the first item equal to this one.
    Remove(Bytes),
    /// Index of the first item equal to this one.
    Index(Bytes),
    /// Number of items equal to this one.
    Count(Bytes),
    /// The item at an index.
    Get(u64),
    /// Replace the item at an index.
    Set(u64, Bytes),
    /// Delete the item at an index.
    Delete(u64),
    /// Reverse in place.
    Reverse,
    /// All items with the list's version.
    Snapshot,
    /// Items `start..end` (clamped).
    GetRange(u64, u64),
    /// Replace items `start..end` (clamped) with these.
    SetRange(u64, u64, Vec<Bytes>),
    /// Replace all items if the version is still this one (sort's write-back).
    ReplaceIf(u64, Vec<Bytes>),
    // --- lists and dicts and queues ---
    /// Number of items (list, dict, namespace, queue).
    Len,
    /// Remove every item (list, dict).
    Clear,
    // --- dicts ---
    /// The value for a key, if any.
    DictGet(Bytes),
    /// Set a key; answers the previous value, if any.
    DictInsert(Bytes, Bytes),
    /// Remove a key; answers its value, if any.
    DictRemove(Bytes),
    /// Remove a key; `KeyNotFound` if absent (Python's `pop(k)`).
    DictPop(Bytes),
    /// The value for a key; `KeyNotFound` if absent (Python's `d[k]`).
    DictItem(Bytes),
    /// Is the key present?
    DictContains(Bytes),
    /// All keys, in insertion order.
    DictKeys,
    /// All values, in insertion order.
    DictValues,
    /// All pairs, in insertion order.
    DictItems,
    /// Insert every pair, in order, atomically.
    DictUpdate(Vec<(Bytes, Bytes)>),
    /// The value for the key, inserting this default first if absent.
    DictSetDefault(Bytes, Bytes),
    // --- values ---
    /// Read the value.
    ValueGet,
    /// Write the value.
    ValueSet(Bytes),
    // --- namespaces ---
    /// Read an attribute.
    NsGet(String),
    /// Write an attribute.
    NsSet(String, Bytes),
    /// Delete an attribute.
    NsDel(String),
    /// All attributes, sorted by name.
    NsItems,
    // --- synchronization ---
    /// Acquire a lock / recursive lock / semaphore; answers whether it was acquired.
    Acquire(Wait),
    /// Release a lock / recursive lock / semaphore.
    Release,
    /// Is the lock held (lock, recursive lock)?
    Locked,
    /// Semaphore: current value.
    SemValue,
    /// Event: set the flag.
    EventSet,
    /// Event: clear the flag.
    EventClear,
    /// Event: is the flag set?
    EventIsSet,
    /// Event: wait for the flag; answers the flag.
    EventWait(Wait),
    // --- queues ---
    /// Put an item (waits while the queue is full).
    Put(Bytes, Wait),
    /// Get an item (waits while the queue is empty).
    QGet(Wait),
    // --- conditions (also Acquire/Release/Locked on the condition's lock) ---
    /// Start a wait: the caller must hold the lock; it is released entirely and
    /// a ticket registered. Answers `Arrived(ticket, depth)`.
    CondEnter,
    /// Sleep until ticket `.0` is notified, then retake the lock at depth `.1`.
    /// Answers `Bool(true)`; `Timeout` if not notified in time.
    CondSleep(u64, u64, Wait),
    /// After a timeout: retake the lock at depth `.1` and forget ticket `.0`.
    /// Answers `Bool(notified meanwhile)`.
    CondReacquire(u64, u64, Wait),
    /// Wake up to `n` waiters (the caller must hold the lock).
    Notify(u64),
    /// Wake every waiter (the caller must hold the lock).
    NotifyAll,
    // --- barriers ---
    /// Arrive; answers `Arrived(generation, index)`. The party with index
    /// `parties - 1` released the generation; the others then `BarrierAwait`.
    BarrierArrive,
    /// Wait for generation `.0` to pass; `BrokenBarrier` if it breaks.
    BarrierAwait(u64, Wait),
    /// Break generation `.0` if it has not passed yet (a waiter timed out);
    /// answers `Bool(broke it)`.
    BarrierAbortIf(u64),
    /// Break the barrier (`abort()`).
    BarrierAbort,
    /// Undo a break: a fresh generation with no party waiting.
    BarrierReset,
    /// Answers `Counts([parties, n_waiting, broken])`.
    BarrierState,
    // --- lists, Python's signed indices (resolved against the live length) ---
    /// The item at an index (`-1`: the last).
    GetAt(i64),
    /// Replace the item at an index.
    SetAt(i64, Bytes),
    /// Delete the item at an index (answers it).
    DeleteAt(i64),
    /// Remove and return the item at an index.
    PopAt(i64),
    /// Insert before an index (clamped as Python's `insert`: `-k` counts from
    /// the end, then `0..=len`).
    InsertAt(i64, Bytes),
    // --- arrays (see `array`) ---
    /// An array operation.
    Array(super::array::ArrayOp),
    // --- joinable queues (see `joinable`; also Put, QGet, Len) ---
    /// A joinable queue's own operation.
    Joinable(super::joinable::JoinableOp),
    // --- sets (also `Len`, `Clear`); see `containers` ---
    /// Add an item; answers `Bool(it was absent)`.
    SetAdd(Bytes),
    /// Remove an item if present; answers `Bool(it was present)`.
    SetDiscard(Bytes),
    /// Remove an item; `KeyNotFound` if absent (Python's `KeyError`).
    SetRemove(Bytes),
    /// Is the item present?
    SetContains(Bytes),
    /// Remove and return an item (the oldest); `KeyNotFound` if empty.
    SetPop,
    /// All items, in insertion order.
    SetItems,
    /// The set combined with other items (`|`, `&`, `-`, `^`, reflected `-`);
    /// answers `Items`; the set is unchanged.
    SetAlgebra(SetAlg, Vec<Bytes>),
    /// Make the set the result of [`Op::SetAlgebra`] (`update`/`|=`,
    /// `intersection_update`/`&=`, ...), in one step.
    SetAlgebraUpdate(SetAlg, Vec<Bytes>),
    /// Compare the set with other items (`isdisjoint`, `issubset`, `<`, ...); answers `Bool`.
    SetCompare(SetCmp, Vec<Bytes>),
    // --- list, dict and queue additions ---
    /// List: repeat in place (`l *= n`; `0` clears).
    ListRepeat(u64),
    /// Dict: `d | other`, as pairs in order; the dict is unchanged.
    DictOr(Vec<(Bytes, Bytes)>),
    /// Dict: `d.fromkeys(keys, value)`, as pairs in order; the dict is unchanged.
    DictFromKeys(Vec<Bytes>, Bytes),
    /// Dict: remove and return the last inserted pair (`popitem`);
    /// `KeyNotFound` if empty. Answers `Pairs` with one pair.
    DictPopItem,
    /// Dict iteration: the first key inserted after position `.0` (`None`:
    /// the first key) with its position, if the dict still has `.1` entries
    /// (else `ChangedSize`, Python's `RuntimeError`). Answers `Next`.
    DictKeyAfter(Option<u64>, u64),
    /// Queue: is it full?
    QFull,
    // --- objects of registered types ---
    /// Call method `.0` of a registered type's object with the encoded
    /// arguments `.1`; answers `Item(encoded result)`.
    Call(String, Bytes),
    // --- pools ---
    /// An operation on a pool ([`super::pool`]).
    Pool(super::pool::PoolOp),
    // --- proxies stored in containers ---
    /// Apply `.1`, which stores one value embedding proxies to the objects
    /// `.0` (list `append`/`insert`/`x[i] =`, dict `d[k] =`/`setdefault`,
    /// value `set`, namespace attribute, queue `put`): while that value is stored, the container
    /// holds a reference to each of them (CPython's server keeps the proxy
    /// objects, and with them their referents). A `put` may block: the
    /// objects are held once it has stored its value.
    Holding(Vec<ObjId>, Box<Op>),
    /// Apply `.1`, which stores a list of values (list `extend`, dict
    /// `update`: the pairs' values), the `i`th embedding proxies to the
    /// objects `.0[i]`: as [`Op::Holding`], for each value. `.0` has one
    /// entry per stored value (else `BadRequest`).
    HoldingEach(Vec<Vec<ObjId>>, Box<Op>),
}

/// A request on a connection.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Answer [`Response::Pong`] (liveness check, latency bench).
    Ping,
    /// Create an object; answers [`Response::Created`].
    Create(Init),
    /// Get the object registered under this name, creating it from `Init` if absent.
    Named(String, Init),
    /// Is object `ObjId` there, and of which kind? Answers [`Response::Created`].
    Describe(ObjId),
    /// Apply an operation to an object.
    Op(ObjId, Op),
    /// Stop the server (answers `Ok`, then the server exits).
    Shutdown,
    /// Take one more reference to each object, held by this connection
    /// (answers `Ok`; `NoSuchObject` and no reference taken if one is gone).
    Incref(Vec<ObjId>),
    /// Give back one reference this connection holds to each object (a
    /// reference it does not hold is ignored); an object whose last reference
    /// goes is freed. Answers `Ok`.
    Decref(Vec<ObjId>),
}

/// The answer to a [`Request`].
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// Done, nothing to return.
    Ok,
    /// Answer to [`Request::Ping`].
    Pong,
    /// An object's id and kind.
    Created(ObjId, Kind),
    /// One item.
    Item(Bytes),
    /// An optional item.
    MaybeItem(Option<Bytes>),
    /// Several items.
    Items(Vec<Bytes>),
    /// All items of a list and its version.
    Versioned(u64, Vec<Bytes>),
    /// Key/value pairs.
    Pairs(Vec<(Bytes, Bytes)>),
    /// Namespace attributes.
    Attrs(Vec<(String, Bytes)>),
    /// A count or an index.
    Usize(u64),
    /// A flag.
    Bool(bool),
    /// A ticket or generation and an index or depth.
    Arrived(u64, u64),
    /// Several numbers.
    Counts(Vec<u64>),
    /// The operation failed; nothing changed.
    Err(OpError),
    /// The next key of an iteration and its position, or `None` at the end.
    Next(Option<(u64, Bytes)>),
}

/// Why an operation failed. The object is as it was before the request.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum OpError {
    /// List index out of range (also: pop from an empty list).
    IndexOutOfRange {
        /// The index asked for.
        index: u64,
        /// The list's length.
        len: u64,
    },
    /// Dict key not found.
    KeyNotFound,
    /// `remove`/`index`: no item equals the value.
    ValueNotInList,
    /// Namespace attribute not found.
    AttributeNotFound(String),
    /// The operation does not apply to this kind of object.
    WrongType {
        /// The object's kind.
        found: Kind,
        /// The operation's name.
        op: String,
    },
    /// No object has this id.
    NoSuchObject(ObjId),
    /// A name is registered with an object of another kind.
    NameTaken {
        /// The name.
        name: String,
        /// The kind of the object registered under it.
        found: Kind,
    },
    /// `ReplaceIf`: the list changed since the snapshot.
    Conflict,
    /// Release of a lock that is not held, or of a recursive lock held by another connection.
    NotOwner,
    /// Release of a bounded semaphore above its bound.
    OverRelease,
    /// A blocking operation's timeout passed (queue `Full`/`Empty`).
    Timeout,
    /// The request could not be decoded or is not valid.
    BadRequest(String),
    /// The barrier is broken (Python's `BrokenBarrierError`).
    BrokenBarrier,
    /// A signed list index out of range.
    SignedIndexOutOfRange {
        /// The index asked for.
        index: i64,
        /// The list's length.
        len: u64,
    },
    /// A dict changed size during an iteration (Python's `RuntimeError`).
    ChangedSize,
    /// No type is registered under this name (on the server, or, for a
    /// client's own check, in its registrations).
    UnknownType(String),
    /// The type registered under `typeid` exposes other methods than the
    /// client's registration says (a client built from other code).
    TypeMismatch {
        /// The registered name.
        typeid: String,
        /// The methods the server's type exposes.
        methods: Vec<String>,
    },
    /// The object's type exposes no method of this name.
    UnknownMethod {
        /// The object's registered type name.
        typeid: String,
        /// The method asked for.
        method: String,
    },
    /// A call's arguments do not decode as the method's parameters.
    BadArgument {
        /// The method called.
        method: String,
        /// The decoder's message.
        why: String,
    },
    /// The method ran and failed (or panicked): its error message.
    MethodFailed {
        /// The method called.
        method: String,
        /// The method's error, as it displays.
        message: String,
    },
    /// No function is registered under this name for the server's pools.
    UnknownFunction(String),
}

impl std::fmt::Display for OpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpError::IndexOutOfRange { index, len } => {
                write!(f, "list index {index} out of range (len {len})")
            }
            OpError::KeyNotFound => f.write_str("key not found"),
            OpError::ValueNotInList => f.write_str("value not in list"),
            OpError::AttributeNotFound(n) => write!(f, "namespace has no attribute {n:?}"),
            OpError::WrongType { found, op } => write!(f, "{op} does not apply to a {found:?}"),
            OpError::NoSuchObject(id) => write!(f, "no managed object with id {id}"),
            OpError::NameTaken { name, found } => {
                write!(f, "name {name:?} is taken by a {found:?}")
            }
            OpError::Conflict => f.write_str("list changed concurrently"),
            OpError::NotOwner => f.write_str("release of an unacquired or foreign lock"),
            OpError::OverRelease => f.write_str("semaphore released too many times"),
            OpError::Timeout => f.write_str("timed out"),
            OpError::BadRequest(m) => write!(f, "bad request: {m}"),
            OpError::BrokenBarrier => f.write_str("broken barrier"),
            OpError::SignedIndexOutOfRange { index, len } => {
                write!(f, "list index {index} out of range (len {len})")
            }
            OpError::ChangedSize => f.write_str("dictionary changed size during iteration"),
            OpError::UnknownType(t) => write!(f, "no type is registered as {t:?}"),
            OpError::TypeMismatch { typeid, methods } => write!(
                f,
                "the type registered as {typeid:?} on the server exposes other methods: {methods:?}"
            ),
            OpError::UnknownMethod { typeid, method } => {
                write!(f, "{typeid:?} exposes no method {method:?}")
            }
            OpError::BadArgument { method, why } => {
                write!(f, "bad arguments for method {method:?}: {why}")
            }
            OpError::MethodFailed { method, message } => {
                write!(f, "method {method:?} failed: {message}")
            }
            OpError::UnknownFunction(name) => {
                write!(
                    f,
                    "no function is registered as {name:?} for the manager's pools"
                )
            }
        }
    }
}

impl std::error::Error for OpError {}

#[cfg(test)]
mod tests;
