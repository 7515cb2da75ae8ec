//! Sequential specifications of the manager's `list` and `dict` proxies.

use super::checker::{Op, Spec};
use super::specs::{allows, describe_ret, ret};

/// A `ListProxy<i64>`: `append(v)`, `pop() -> v | ERR` (last item; `ERR`:
/// empty), `get(i) -> v | ERR` (`ERR`: out of range), `set(i, v) -> 0 |
/// ERR`, `len() -> n`. Values are unique and non-negative; `set`'s argument
/// is `i | v << 8`.
#[derive(Clone, Copy, Debug, Default)]
pub struct ListSpec {
    /// A deliberately broken variant: `pop` takes the first item.
    pub pop_front: bool,
}

impl ListSpec {
    /// `append(v)`
    pub const APPEND: u32 = 0;
    /// `pop() -> v | ERR`
    pub const POP: u32 = 1;
    /// `get(i) -> v | ERR`
    pub const GET: u32 = 2;
    /// `set(arg = i | v << 8) -> 0 | ERR`
    pub const SET: u32 = 3;
    /// `len() -> n`
    pub const LEN: u32 = 4;
    /// The result of `pop` on an empty list, or an index out of range.
    pub const ERR: i64 = -1;
}

impl Spec for ListSpec {
    type State = Vec<i64>;
    fn init(&self) -> Vec<i64> {
        Vec::new()
    }
    fn step(&self, s: &Vec<i64>, op: &Op) -> Option<Vec<i64>> {
        let i = (op.arg & 0xff) as usize;
        match op.kind {
            Self::APPEND => {
                let mut n = s.clone();
                n.push(op.arg);
                allows(op, 0).then_some(n)
            }
            Self::POP if s.is_empty() => allows(op, Self::ERR).then(|| s.clone()),
            Self::POP => {
                let mut n = s.clone();
                let v = if self.pop_front {
                    n.remove(0)
                } else {
                    n.pop().unwrap()
                };
                allows(op, v).then_some(n)
            }
            Self::GET => allows(op, s.get(i).copied().unwrap_or(Self::ERR)).then(|| s.clone()),
            Self::SET if i < s.len() => {
                let mut n = s.clone();
                n[i] = op.arg >> 8;
                allows(op, 0).then_some(n)
            }
            Self::SET => allows(op, Self::ERR).then(|| s.clone()),
            Self::LEN => allows(op, s.len() as i64).then(|| s.clone()),
            _ => None,
        }
    }
    fn describe(&self, op: &Op) -> String {
        let r = match ret(op) {
            Some(Self::ERR) => " -> IndexError".into(),
            _ => describe_ret(op),
        };
        let i = op.arg & 0xff;
        match op.kind {
            Self::APPEND => format!("append({})", op.arg),
            Self::POP => format!("pop(){r}"),
            Self::GET => format!("get({i}){r}"),
            Self::SET => format!("set({i}, {}){r}", op.arg >> 8),
            Self::LEN => format!("len(){r}"),
            k => format!("unknown op {k}"),
        }
    }
}

/// A `DictProxy<i64, i64>` over keys `0..KEYS`: `get(k) -> v | NONE`,
/// `insert(k, v) -> previous | NONE`, `remove(k) -> previous | NONE`,
/// `len() -> n`. Values non-negative; `insert`'s argument is `k | v << 8`.
#[derive(Clone, Copy, Debug, Default)]
pub struct DictSpec {
    /// A deliberately broken variant: `remove` returns the value but keeps
    /// the key.
    pub remove_keeps: bool,
}

impl DictSpec {
    /// Keys used.
    pub const KEYS: usize = 4;
    /// `get(k) -> v | NONE`
    pub const GET: u32 = 0;
    /// `insert(arg = k | v << 8) -> previous | NONE`
    pub const INSERT: u32 = 1;
    /// `remove(k) -> previous | NONE`
    pub const REMOVE: u32 = 2;
    /// `len() -> n`
    pub const LEN: u32 = 3;
    /// No value.
    pub const NONE: i64 = -1;
}

impl Spec for DictSpec {
    type State = [Option<i64>; DictSpec::KEYS];
    fn init(&self) -> Self::State {
        [None; DictSpec::KEYS]
    }
    fn step(&self, s: &Self::State, op: &Op) -> Option<Self::State> {
        let k = (op.arg & 0xff) as usize % Self::KEYS;
        let had = s[k].unwrap_or(Self::NONE);
        let mut n = *s;
        match op.kind {
            Self::GET => {}
            Self::INSERT => n[k] = Some(op.arg >> 8),
            Self::REMOVE if !self.remove_keeps => n[k] = None,
            Self::REMOVE => {}
            Self::LEN => {
                let len = s.iter().flatten().count() as i64;
                return allows(op, len).then_some(n);
            }
            _ => return None,
        }
        allows(op, had).then_some(n)
    }
    fn describe(&self, op: &Op) -> String {
        let r = match ret(op) {
            Some(Self::NONE) => " -> None".into(),
            _ => describe_ret(op),
        };
        let k = op.arg & 0xff;
        match op.kind {
            Self::GET => format!("get({k}){r}"),
            Self::INSERT => format!("insert({k}, {}){r}", op.arg >> 8),
            Self::REMOVE => format!("remove({k}){r}"),
            Self::LEN => format!("len(){r}"),
            k => format!("unknown op {k}"),
        }
    }
}
