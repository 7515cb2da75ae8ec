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

/// `op`'s result, `None` when indeterminate.
pub(crate) fn ret(op: &Op) -> Option<i64> {
    op.ret.map(|(_, r)| r)
}

/// ` -> r`, or ` -> ?` for an indeterminate op.
pub(crate) fn describe_ret(op: &Op) -> String {
    match op.ret {
        Some((_, r)) => format!(" -> {r}"),
        None => " -> ?".to_string(),
    }
}

/// Does the recorded result allow `r` (any result for an indeterminate op)?
pub(crate) fn allows(op: &Op, r: i64) -> bool {
    match ret(op) {
        None => true,
        Some(x) => x == r,
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
    /// FIFO with unique values: `put(b)` precedes `put(a)` when `get(b)`
    /// returned before `get(a)` was invoked, or when `b` was got and `a`
    /// never was (had `a` gone in first, `b` could not come out before it);
    /// `get(b)` precedes `get(a)` when `put(b)` returned before `put(a)` was
    /// invoked. (A 360-op history with up to 32 items queued took the search
    /// 7.8 s without these; the order of concurrent puts was refuted only
    /// when their values came out.)
    fn precedence(&self, ops: &[Op]) -> Vec<Vec<usize>> {
        if self.lifo {
            return Vec::new();
        }
        fifo_precedence(ops, |o| o.kind == Self::PUT, |o| o.kind != Self::PUT)
    }
    /// Drops each indeterminate put whose value no get returned: had it
    /// taken effect, its value stayed in the queue to the end behind every
    /// value that was taken, so removing it changes no other op's result
    /// (an Empty seen while it was queued would be non-linearizable either
    /// way). Without this, the search tries it at every position and only
    /// fails once it reaches the head, exponentially often.
    fn prune(&self, ops: &mut Vec<Op>) {
        if self.lifo {
            return; // the argument above is FIFO's
        }
        let got: std::collections::HashSet<i64> = ops
            .iter()
            .filter(|o| o.kind != Self::PUT)
            .filter_map(|o| o.ret.map(|(_, r)| r))
            .collect();
        ops.retain(|o| !(o.kind == Self::PUT && o.ret.is_none() && !got.contains(&o.arg)));
    }
    /// Resolves each indeterminate get: it took nothing (dropped), or it
    /// took a value nobody else got. With `k` indeterminate gets, those that
    /// took effect took the earliest-enqueued of the never-got values, so a
    /// candidate's put cannot come after `k` other never-got puts completed.
    /// Trying each resolution keeps the search from placing an unknown get
    /// everywhere and failing only much later.
    fn alternatives(&self, ops: &[Op]) -> Vec<Vec<Op>> {
        if self.lifo {
            return vec![ops.to_vec()];
        }
        resolve_pending_gets(ops, |o| o.kind == Self::PUT, |o| o.kind != Self::PUT)
    }
}

/// [`QueueSpec::precedence`] for any FIFO specification whose `put` ops
/// satisfy `is_put` (argument: the value, unique) and whose `get` ops
/// satisfy `is_get` (result: the value, or a negative "nothing").
pub fn fifo_precedence(
    ops: &[Op],
    is_put: impl Fn(&Op) -> bool,
    is_get: impl Fn(&Op) -> bool,
) -> Vec<Vec<usize>> {
    let got_at: std::collections::HashMap<i64, usize> = (0..ops.len())
        .filter(|&i| is_get(&ops[i]))
        .filter_map(|i| ops[i].ret.map(|(_, r)| (r, i)))
        .filter(|&(r, _)| r >= 0)
        .collect();
    let put_at: std::collections::HashMap<i64, usize> = (0..ops.len())
        .filter(|&i| is_put(&ops[i]))
        .map(|i| (ops[i].arg, i))
        .collect();
    let returned_before = |x: &Op, y: &Op| matches!(x.ret, Some((t, _)) if t < y.call);
    let mut before = vec![Vec::new(); ops.len()];
    for (&a, &pa) in &put_at {
        let ga = got_at.get(&a).map(|&g| &ops[g]);
        for (&b, &pb) in &put_at {
            let Some(&gb) = got_at.get(&b) else { continue };
            if a != b && ga.map_or(true, |ga| returned_before(&ops[gb], ga)) {
                before[pa].push(pb);
            }
        }
        if let Some(&ga) = got_at.get(&a) {
            for (&b, &gb) in &got_at {
                let Some(&pb) = put_at.get(&b) else { continue };
                if a != b && returned_before(&ops[pb], &ops[pa]) {
                    before[ga].push(gb);
                }
            }
        }
    }
    before
}

/// [`QueueSpec::alternatives`] for any FIFO specification whose `put` ops
/// satisfy `is_put` (argument: the value) and whose `get` ops satisfy
/// `is_get` (result: the value, or a negative "nothing"). Each
/// indeterminate get is resolved: it took nothing (dropped), or it took a
/// value nobody else got. With `k` indeterminate gets, those that took
/// effect took the earliest-enqueued of the never-got values, so a
/// candidate's put cannot come after `k` other never-got puts completed.
pub fn resolve_pending_gets(
    ops: &[Op],
    is_put: impl Fn(&Op) -> bool,
    is_get: impl Fn(&Op) -> bool,
) -> Vec<Vec<Op>> {
    let pending: Vec<usize> = (0..ops.len())
        .filter(|&i| is_get(&ops[i]) && ops[i].ret.is_none())
        .collect();
    if pending.is_empty() {
        return vec![ops.to_vec()];
    }
    let got: std::collections::HashSet<i64> = ops
        .iter()
        .filter(|o| is_get(o))
        .filter_map(|o| o.ret.map(|(_, r)| r))
        .collect();
    let unseen: Vec<&Op> = ops
        .iter()
        .filter(|o| is_put(o) && !got.contains(&o.arg))
        .collect();
    let k = pending.len();
    let candidates: Vec<i64> = unseen
        .iter()
        .filter(|u| {
            let before = unseen
                .iter()
                .filter(|w| w.ret.is_some_and(|(t, _)| t < u.call))
                .count();
            before < k
        })
        .map(|u| u.arg)
        .collect();
    // Each pending get: None (dropped) or a distinct candidate.
    let mut out = Vec::new();
    let mut choice = vec![None; k];
    fn rec(
        i: usize,
        choice: &mut Vec<Option<i64>>,
        candidates: &[i64],
        ops: &[Op],
        pending: &[usize],
        out: &mut Vec<Vec<Op>>,
    ) {
        if i == choice.len() {
            let mut alt = Vec::with_capacity(ops.len());
            for (j, op) in ops.iter().enumerate() {
                match pending.iter().position(|&p| p == j) {
                    None => alt.push(*op),
                    Some(c) => {
                        if let Some(v) = choice[c] {
                            alt.push(Op {
                                ret: Some((u64::MAX, v)),
                                ..*op
                            });
                        }
                    }
                }
            }
            out.push(alt);
            return;
        }
        // Likeliest first (the checker stops at the first that passes):
        // the earliest candidates, then "took nothing".
        for c in candidates
            .iter()
            .map(|&v| Some(v))
            .chain(std::iter::once(None))
        {
            if c.is_some() && choice[..i].contains(&c) {
                continue;
            }
            choice[i] = c;
            rec(i + 1, choice, candidates, ops, pending, out);
        }
        choice[i] = None;
    }
    rec(0, &mut choice, &candidates, ops, &pending, &mut out);
    out
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
