//! Sequential specifications of procshare's shared objects, for the
//! linearizability checker. Each names its operation kinds and result
//! encodings; the tests record exactly these.

use std::collections::VecDeque;

use super::checker::{Op, Spec};

/// `Value<i64>` used under its lock: read, write, add (returns the sum).
#[derive(Clone, Copy, Debug, Default)]
pub struct ValueSpec {
    /// A deliberately broken variant: `add` changes nothing.
    pub forget_add: bool,
}

impl ValueSpec {
    /// `read() -> v`
    pub const READ: u32 = 0;
    /// `write(v)`
    pub const WRITE: u32 = 1;
    /// `add(d) -> new value`
    pub const ADD: u32 = 2;
}

impl Spec for ValueSpec {
    type State = i64;
    fn init(&self) -> i64 {
        0
    }
    fn step(&self, s: &i64, op: &Op) -> Option<i64> {
        let ret = op.ret.map(|(_, r)| r);
        match op.kind {
            Self::READ => (ret.is_none() || ret == Some(*s)).then_some(*s),
            Self::WRITE => Some(op.arg),
            Self::ADD => {
                let n = if self.forget_add {
                    *s
                } else {
                    s.wrapping_add(op.arg)
                };
                (ret.is_none() || ret == Some(n)).then_some(n)
            }
            _ => None,
        }
    }
    fn describe(&self, op: &Op) -> String {
        let r = describe_ret(op);
        match op.kind {
            Self::READ => format!("read(){r}"),
            Self::WRITE => format!("write({})", op.arg),
            Self::ADD => format!("add({}){r}", op.arg),
            k => format!("unknown op {k}"),
        }
    }
}

fn describe_ret(op: &Op) -> String {
    match op.ret {
        Some((_, r)) => format!(" -> {r}"),
        None => " -> ?".to_string(),
    }
}

/// `Lock`: acquire (result 0 = clean, 1 = owner died) and release. The
/// state is the owner; "owner died" is allowed only when the owner is one of
/// the processes that were killed.
#[derive(Clone, Debug, Default)]
pub struct LockSpec {
    /// The processes that were killed during the test.
    pub killed: Vec<u32>,
}

impl LockSpec {
    /// `acquire() -> 0 (clean) | 1 (owner died)`
    pub const ACQUIRE: u32 = 0;
    /// `release()`
    pub const RELEASE: u32 = 1;
}

impl Spec for LockSpec {
    type State = Option<u32>;
    fn init(&self) -> Option<u32> {
        None
    }
    fn step(&self, s: &Option<u32>, op: &Op) -> Option<Option<u32>> {
        let ret = op.ret.map(|(_, r)| r);
        match op.kind {
            Self::ACQUIRE => {
                let got = match *s {
                    None => 0,
                    Some(q) if q != op.proc && self.killed.contains(&q) => 1,
                    Some(_) => return None,
                };
                (ret.is_none() || ret == Some(got)).then_some(Some(op.proc))
            }
            Self::RELEASE => (*s == Some(op.proc) && matches!(ret, None | Some(0))).then_some(None),
            _ => None,
        }
    }
    fn describe(&self, op: &Op) -> String {
        match (op.kind, op.ret) {
            (Self::ACQUIRE, Some((_, 1))) => "acquire() -> owner died".into(),
            (Self::ACQUIRE, _) => format!("acquire(){}", describe_ret(op)),
            (Self::RELEASE, _) => format!("release(){}", describe_ret(op)),
            (k, _) => format!("unknown op {k}"),
        }
    }
}

/// `Semaphore` with an initial value: try_acquire (1 = got it), release,
/// get_value.
#[derive(Clone, Copy, Debug)]
pub struct SemaphoreSpec {
    /// The initial value.
    pub initial: i64,
}

impl SemaphoreSpec {
    /// `try_acquire() -> 0 | 1`
    pub const TRY_ACQUIRE: u32 = 0;
    /// `release()`
    pub const RELEASE: u32 = 1;
    /// `get_value() -> n`
    pub const GET_VALUE: u32 = 2;
}

impl Spec for SemaphoreSpec {
    type State = i64;
    fn init(&self) -> i64 {
        self.initial
    }
    fn step(&self, s: &i64, op: &Op) -> Option<i64> {
        let ret = op.ret.map(|(_, r)| r);
        match op.kind {
            Self::TRY_ACQUIRE => {
                let (got, n) = if *s > 0 { (1, s - 1) } else { (0, *s) };
                (ret.is_none() || ret == Some(got)).then_some(n)
            }
            Self::RELEASE => matches!(ret, None | Some(0)).then_some(s + 1),
            Self::GET_VALUE => (ret.is_none() || ret == Some(*s)).then_some(*s),
            _ => None,
        }
    }
    fn describe(&self, op: &Op) -> String {
        let r = describe_ret(op);
        match op.kind {
            Self::TRY_ACQUIRE => format!("try_acquire(){r}"),
            Self::RELEASE => format!("release(){r}"),
            Self::GET_VALUE => format!("get_value(){r}"),
            k => format!("unknown op {k}"),
        }
    }
}

/// A FIFO queue (`Queue`, `SimpleQueue`): put(v), get() -> v, try_get() ->
/// v or [`QueueSpec::EMPTY`]. Values must be unique and non-negative; then
/// FIFO order (per producer, and across producers by linearization), no
/// loss and no duplicate all follow. Any other result (an error) is never
/// linearizable.
///
/// `try_get` is Python's `get_nowait`: like CPython's, it reports Empty when
/// another consumer holds the queue's read side at that moment, even if
/// messages are waiting. So an Empty result is allowed on a non-empty queue
/// only for a `try_get` that overlapped another process's get in real time;
/// [`mark_contended`] marks those (with `arg = 1`) before checking.
#[derive(Clone, Copy, Debug, Default)]
pub struct QueueSpec {
    /// A deliberately broken variant: last in, first out.
    pub lifo: bool,
}

impl QueueSpec {
    /// `put(v)`
    pub const PUT: u32 = 0;
    /// `get() -> v` (blocking: not linearizable on an empty queue)
    pub const GET: u32 = 1;
    /// `try_get() -> v | EMPTY`
    pub const TRY_GET: u32 = 2;
    /// The result of `try_get` on an empty queue.
    pub const EMPTY: i64 = -1;
}

impl Spec for QueueSpec {
    type State = VecDeque<i64>;
    fn init(&self) -> VecDeque<i64> {
        VecDeque::new()
    }
    fn step(&self, s: &VecDeque<i64>, op: &Op) -> Option<VecDeque<i64>> {
        let ret = op.ret.map(|(_, r)| r);
        match op.kind {
            Self::PUT => {
                let mut n = s.clone();
                n.push_back(op.arg);
                matches!(ret, None | Some(0)).then_some(n)
            }
            Self::GET | Self::TRY_GET => {
                let mut n = s.clone();
                let head = if self.lifo {
                    n.pop_back()
                } else {
                    n.pop_front()
                };
                match head {
                    Some(v) => (ret.is_none() || ret == Some(v)).then_some(n),
                    None if op.kind == Self::TRY_GET => {
                        (ret.is_none() || ret == Some(Self::EMPTY)).then_some(n)
                    }
                    None => None,
                }
                .or_else(|| {
                    // A contended get_nowait may fail whatever the queue holds.
                    let contended = op.kind == Self::TRY_GET && op.arg == 1;
                    (contended && ret == Some(Self::EMPTY)).then(|| s.clone())
                })
            }
            _ => None,
        }
    }
    fn describe(&self, op: &Op) -> String {
        let r = describe_ret(op);
        match op.kind {
            Self::PUT => format!("put({}){r}", op.arg),
            Self::GET => format!("get(){r}"),
            Self::TRY_GET if op.ret.map(|(_, r)| r) == Some(Self::EMPTY) => {
                "try_get() -> Empty".into()
            }
            Self::TRY_GET => format!("try_get(){r}"),
            k => format!("unknown op {k}"),
        }
    }
}

/// Marks (`arg = 1`) each `try_get` that returned Empty while another
/// process's get or try_get overlapped it in real time (an indeterminate one
/// overlaps everything after its invocation): see [`QueueSpec`].
pub fn mark_contended(history: &mut [Op]) {
    let end = |o: &Op| o.ret.map_or(u64::MAX, |(t, _)| t);
    let gets: Vec<Op> = history
        .iter()
        .filter(|o| o.kind == QueueSpec::GET || o.kind == QueueSpec::TRY_GET)
        .copied()
        .collect();
    for op in history.iter_mut() {
        if op.kind == QueueSpec::TRY_GET && op.ret.map(|(_, r)| r) == Some(QueueSpec::EMPTY) {
            let overlaps = gets.iter().any(|g| {
                g.proc != op.proc && g.key == op.key && g.call < end(op) && op.call < end(g)
            });
            op.arg = i64::from(overlaps);
        }
    }
}
