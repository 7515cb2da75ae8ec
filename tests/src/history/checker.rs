//! A linearizability checker: Wing–Gong's search with Lowe's memoization of
//! (linearized set, state) pairs (as described by Horn and Kroening, and as
//! Porcupine implements it), with P-compositionality: a history is split by
//! [`Op::key`] (one independent object per key) and each part is checked
//! alone.
//!
//! An operation whose process was killed before it returned is
//! *indeterminate* ([`Op::ret`] is `None`): the search may linearize it at
//! any point after its invocation (with whatever result the specification
//! gives it there), or never.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::hash::Hash;

/// One recorded operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Op {
    /// The process (index in the test) that ran it.
    pub proc: u32,
    /// The object it ran on: histories are partitioned by key.
    pub key: u32,
    /// Which operation (meaning given by the specification).
    pub kind: u32,
    /// Its argument.
    pub arg: i64,
    /// Invocation time (CLOCK_MONOTONIC, nanoseconds).
    pub call: u64,
    /// Response time and result; `None` when the process died first.
    pub ret: Option<(u64, i64)>,
}

/// A sequential specification.
pub trait Spec {
    /// The object's abstract state.
    type State: Clone + Eq + Hash + fmt::Debug;
    /// The state before any operation.
    fn init(&self) -> Self::State;
    /// Applies `op` to `state`: the state after it if `op`'s recorded result
    /// is what the specification gives there (any result when `op.ret` is
    /// `None`), or `None` if `op` cannot take effect in `state`.
    fn step(&self, state: &Self::State, op: &Op) -> Option<Self::State>;
    /// `op` for a human (`put(3)`, `get() -> 3`).
    fn describe(&self, op: &Op) -> String;
    /// Orders that every linearization of `ops` (one partition, sorted by
    /// invocation) obeys beyond real time, derived from the specification:
    /// `before[i]` lists ops that must be linearized before op `i` (for a
    /// FIFO queue with unique values: `put(b)` before `put(a)` when `get(b)`
    /// returned before `get(a)` was invoked). The search never linearizes
    /// an op before its predecessors: a sound pruning that cuts the orders
    /// it would otherwise explore and refute only much later. The default
    /// is none (an empty vector).
    fn precedence(&self, _ops: &[Op]) -> Vec<Vec<usize>> {
        Vec::new()
    }
    /// Removes from one partition's ops those whose presence cannot change
    /// the verdict (a sound and complete pruning, specific to the object),
    /// to keep the search small. The default keeps everything.
    fn prune(&self, _ops: &mut Vec<Op>) {}
    /// Histories, one of which is linearizable if and only if `ops` is (for
    /// example with an indeterminate op resolved to each result it can have
    /// had, or dropped): the checker tries each. The default is `ops` alone.
    fn alternatives(&self, ops: &[Op]) -> Vec<Vec<Op>> {
        vec![ops.to_vec()]
    }
}

/// What a successful check did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Operations checked (including indeterminate ones).
    pub ops: usize,
    /// Indeterminate operations among them.
    pub pending: usize,
    /// Partitions (independent objects).
    pub partitions: usize,
}

/// A non-linearizable history, narrowed down for a human.
#[derive(Clone, Debug)]
pub struct Counterexample {
    /// The partition (object key) that failed.
    pub key: u32,
    /// The shortest failing prefix (by invocation time) found by bisection,
    /// each op described, in invocation order.
    pub window: Vec<String>,
    /// How many of the window's ops the longest partial linearization took,
    /// and the state it reached.
    pub best: (usize, String),
}

impl fmt::Display for Counterexample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "history of object {} is not linearizable; smallest failing window ({} ops, \
             invocation order; times in us from the window's first invocation):",
            self.key,
            self.window.len()
        )?;
        for line in &self.window {
            writeln!(f, "  {line}")?;
        }
        write!(
            f,
            "longest partial linearization: {} ops, ending in state {}",
            self.best.0, self.best.1
        )
    }
}

/// Checks `history` against `spec`, partitioned by key.
pub fn check<S: Spec>(spec: &S, history: &[Op]) -> Result<Stats, Counterexample> {
    let mut parts: BTreeMap<u32, Vec<Op>> = BTreeMap::new();
    for op in history {
        parts.entry(op.key).or_default().push(*op);
    }
    let mut stats = Stats {
        ops: history.len(),
        pending: history.iter().filter(|o| o.ret.is_none()).count(),
        partitions: parts.len(),
    };
    for (key, mut ops) in parts {
        spec.prune(&mut ops);
        ops.sort_by_key(|o| o.call);
        let alts = spec.alternatives(&ops);
        if !alts.into_iter().any(|mut alt| {
            alt.sort_by_key(|o| o.call);
            search(spec, &alt).is_ok()
        }) {
            return Err(narrow(spec, key, &ops));
        }
    }
    stats.partitions = stats.partitions.max(1);
    Ok(stats)
}

/// The shortest failing prefix (by bisection over prefix lengths), described.
fn narrow<S: Spec>(spec: &S, key: u32, ops: &[Op]) -> Counterexample {
    // Invariant: prefix `hi` fails, prefix `lo` passes (0 passes).
    let (mut lo, mut hi) = (0, ops.len());
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if search(spec, &ops[..mid]).is_err() {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    let window = &ops[..hi];
    let (best_len, best_state) = match search(spec, window) {
        Err(best) => best,
        Ok(()) => (window.len(), String::from("?")),
    };
    // Show only the tail that overlaps the last failing op's neighbourhood:
    // ops that return after the first invocation of the last few ops.
    let from = hi.saturating_sub(12);
    let t0 = window[from].call;
    let us = |t: u64| (t as i128 - t0 as i128) as f64 / 1000.0;
    let mut lines = Vec::new();
    if from > 0 {
        lines.push(format!("... {from} earlier ops (all linearizable) ..."));
    }
    for op in &window[from..] {
        let when = match op.ret {
            Some((t, _)) => format!("[{:>10.1} .. {:>10.1}]", us(op.call), us(t)),
            None => format!("[{:>10.1} .. killed    ]", us(op.call)),
        };
        lines.push(format!("{when} p{} {}", op.proc, spec.describe(op)));
    }
    Counterexample {
        key,
        window: lines,
        best: (best_len, best_state),
    }
}

/// `state` for a human, cut to a few hundred characters (a queue's state
/// can hold hundreds of items).
fn show<T: fmt::Debug>(state: &T) -> String {
    const MAX: usize = 300;
    let s = format!("{state:?}");
    match s.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{} ... ({} characters)", &s[..cut], s.len()),
        None => s,
    }
}

/// One entry of the search's doubly linked event list.
#[derive(Clone, Copy)]
struct Entry {
    op: usize,
    is_call: bool,
    /// For a call: the index of its return entry.
    ret: usize,
    prev: usize,
    next: usize,
}

const NIL: usize = usize::MAX;

/// Wing–Gong–Lowe over one partition (ops sorted by call time). `Err` gives
/// the longest partial linearization's length and final state.
fn search<S: Spec>(spec: &S, ops: &[Op]) -> Result<(), (usize, String)> {
    // Events: calls and returns, by time; indeterminate ops return after
    // everything (Porcupine's convention), so they never constrain others.
    let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * ops.len());
    for (i, op) in ops.iter().enumerate() {
        events.push((op.call, true, i));
        let t = op.ret.map_or(u64::MAX, |(t, _)| t);
        events.push((t, false, i));
    }
    // At equal times, returns go first (they did not overlap).
    events.sort_by_key(|&(t, is_call, i)| (t, is_call, i));
    // Head sentinel at index events.len().
    let head = events.len();
    let mut list: Vec<Entry> = events
        .iter()
        .enumerate()
        .map(|(k, &(_, is_call, op))| Entry {
            op,
            is_call,
            ret: NIL,
            prev: if k == 0 { head } else { k - 1 },
            next: if k + 1 == events.len() { NIL } else { k + 1 },
        })
        .collect();
    let mut ret_of = vec![NIL; ops.len()];
    for (k, e) in list.iter().enumerate() {
        if !e.is_call {
            ret_of[e.op] = k;
        }
    }
    for e in list.iter_mut() {
        if e.is_call {
            e.ret = ret_of[e.op];
        }
    }
    list.push(Entry {
        op: NIL,
        is_call: false,
        ret: NIL,
        prev: NIL,
        next: if events.is_empty() { NIL } else { 0 },
    });

    let n_done = ops.iter().filter(|o| o.ret.is_some()).count();
    let words = ops.len().div_ceil(64).max(1);
    // Each op's predecessors (see `Spec::precedence`) as a bit set.
    let before: Vec<Vec<u64>> = spec
        .precedence(ops)
        .into_iter()
        .map(|pre| {
            let mut bits = vec![0u64; words];
            for j in pre {
                bits[j / 64] |= 1 << (j % 64);
            }
            bits
        })
        .collect();
    let mut linearized = vec![0u64; words];
    let mut done_linearized = 0usize;
    let mut state = spec.init();
    let mut cache: HashSet<(Vec<u64>, S::State)> = HashSet::new();
    let mut stack: Vec<(usize, S::State)> = Vec::new();
    let mut best = (0usize, show(&state));

    let lift = |list: &mut Vec<Entry>, k: usize| {
        for j in [k, list[k].ret] {
            let (p, n) = (list[j].prev, list[j].next);
            list[p].next = n;
            if n != NIL {
                list[n].prev = p;
            }
        }
    };
    let unlift = |list: &mut Vec<Entry>, k: usize| {
        for j in [list[k].ret, k] {
            let (p, n) = (list[j].prev, list[j].next);
            list[p].next = j;
            if n != NIL {
                list[n].prev = j;
            }
        }
    };

    let mut entry = list[head].next;
    loop {
        if done_linearized == n_done {
            return Ok(());
        }
        if entry == NIL {
            // Unreachable: while a completed op is unlinearized, its return
            // entry lies ahead (indeterminate returns come last).
            return Err(best);
        }
        let e = list[entry];
        if e.is_call {
            let op = &ops[e.op];
            let ready = before.get(e.op).map_or(true, |pre| {
                pre.iter().zip(&linearized).all(|(p, l)| p & !l == 0)
            });
            if !ready {
                entry = e.next;
                continue;
            }
            if let Some(next) = spec.step(&state, op) {
                let mut lin = linearized.clone();
                lin[e.op / 64] |= 1 << (e.op % 64);
                if cache.insert((lin.clone(), next.clone())) {
                    stack.push((entry, state));
                    state = next;
                    linearized = lin;
                    if op.ret.is_some() {
                        done_linearized += 1;
                    }
                    lift(&mut list, entry);
                    if stack.len() > best.0 {
                        best = (stack.len(), show(&state));
                    }
                    entry = list[head].next;
                    continue;
                }
            }
            entry = e.next;
        } else {
            // A return whose call is not linearized: undo the last choice.
            match stack.pop() {
                None => return Err(best),
                Some((k, prev_state)) => {
                    state = prev_state;
                    let o = list[k].op;
                    linearized[o / 64] &= !(1 << (o % 64));
                    if ops[o].ret.is_some() {
                        done_linearized -= 1;
                    }
                    unlift(&mut list, k);
                    entry = list[k].next;
                }
            }
        }
    }
}
