//! Sequential specifications of `RLock`, `Event` and `Array` (see
//! [`super::specs`] for the others). Each names its operation kinds and
//! result encodings; the tests record exactly these.

use super::checker::{Op, Spec};

use super::specs::{allows, describe_ret, ret};

/// `RLock`: the state is the owner and its recursion depth. The owner may
/// acquire again (depth + 1) and must release as many times; a release by
/// anyone else is `NotOwner`; `count()` by the owner is its depth. A process
/// that finds the holder dead (one of `killed`) takes the lock with
/// "owner died" and depth 1 (the dead owner's depth is forgotten).
#[derive(Clone, Debug, Default)]
pub struct RLockSpec {
    /// The processes killed during the test.
    pub killed: Vec<u32>,
    /// A deliberately broken variant: not recursive (the depth never goes
    /// above 1, so a second level is released by the first release).
    pub not_recursive: bool,
}

impl RLockSpec {
    /// `acquire() -> 0 (clean) | 1 (owner died)`
    pub const ACQUIRE: u32 = 0;
    /// `release() -> 0 | 2 (NotOwner)`
    pub const RELEASE: u32 = 1;
    /// `count() -> depth` (called by the owner only)
    pub const COUNT: u32 = 2;
    /// `try_acquire() -> 0 | 1 (owner died) | 3 (would block)`
    pub const TRY_ACQUIRE: u32 = 3;
    /// Result of `acquire`/`try_acquire` that recovered a dead owner's lock.
    pub const OWNER_DIED: i64 = 1;
    /// Result of `release` by a thread that does not hold the lock.
    pub const NOT_OWNER: i64 = 2;
    /// Result of `try_acquire` on a lock held by another.
    pub const WOULD_BLOCK: i64 = 3;
}

impl Spec for RLockSpec {
    /// `(owner, depth)`, or `None` when free.
    type State = Option<(u32, u32)>;
    fn init(&self) -> Self::State {
        None
    }
    fn step(&self, s: &Self::State, op: &Op) -> Option<Self::State> {
        let me = op.proc;
        match op.kind {
            Self::ACQUIRE | Self::TRY_ACQUIRE => match *s {
                None => allows(op, 0).then_some(Some((me, 1))),
                Some((o, d)) if o == me => {
                    let d = if self.not_recursive { 1 } else { d + 1 };
                    allows(op, 0).then_some(Some((me, d)))
                }
                Some((o, _)) => {
                    let dead = self.killed.contains(&o);
                    if dead && allows(op, Self::OWNER_DIED) {
                        Some(Some((me, 1)))
                    } else if op.kind == Self::TRY_ACQUIRE && allows(op, Self::WOULD_BLOCK) {
                        // Held by another (or by a dead one whose death is
                        // not yet seen: the kill time is not recorded).
                        Some(*s)
                    } else {
                        None
                    }
                }
            },
            Self::RELEASE => match *s {
                Some((o, d)) if o == me => {
                    allows(op, 0).then_some(if d > 1 { Some((o, d - 1)) } else { None })
                }
                _ => allows(op, Self::NOT_OWNER).then_some(*s),
            },
            Self::COUNT => match *s {
                Some((o, d)) if o == me => allows(op, i64::from(d)).then_some(*s),
                _ => None,
            },
            _ => None,
        }
    }
    fn describe(&self, op: &Op) -> String {
        match (op.kind, ret(op)) {
            (Self::ACQUIRE | Self::TRY_ACQUIRE, Some(Self::OWNER_DIED)) => {
                "acquire() -> owner died".into()
            }
            (Self::TRY_ACQUIRE, Some(Self::WOULD_BLOCK)) => "try_acquire() -> would block".into(),
            (Self::ACQUIRE, _) => format!("acquire(){}", describe_ret(op)),
            (Self::TRY_ACQUIRE, _) => format!("try_acquire(){}", describe_ret(op)),
            (Self::RELEASE, Some(Self::NOT_OWNER)) => "release() -> NotOwner".into(),
            (Self::RELEASE, _) => format!("release(){}", describe_ret(op)),
            (Self::COUNT, _) => format!("count(){}", describe_ret(op)),
            (k, _) => format!("unknown op {k}"),
        }
    }
}

/// `Event`: a flag. `set`, `clear`, `is_set() -> 0|1`, and
/// `wait_timeout(arg us) -> 0|1`: a `wait` that returns `true` saw the flag
/// set at some instant of its call (it is linearized there, for instance
/// right after the `set` that released it, even if a `clear` followed
/// before it ran again); one that returns `false` saw it clear.
#[derive(Clone, Copy, Debug, Default)]
pub struct EventSpec {
    /// A deliberately broken variant: `clear` does nothing.
    pub clear_ignored: bool,
}

impl EventSpec {
    /// `set()`
    pub const SET: u32 = 0;
    /// `clear()`
    pub const CLEAR: u32 = 1;
    /// `is_set() -> 0 | 1`
    pub const IS_SET: u32 = 2;
    /// `wait_timeout(arg microseconds) -> 0 (timed out) | 1 (set)`
    pub const WAIT: u32 = 3;
}

impl Spec for EventSpec {
    type State = bool;
    fn init(&self) -> bool {
        false
    }
    fn step(&self, s: &bool, op: &Op) -> Option<bool> {
        match op.kind {
            Self::SET => allows(op, 0).then_some(true),
            Self::CLEAR => allows(op, 0).then_some(*s && self.clear_ignored),
            Self::IS_SET | Self::WAIT => allows(op, i64::from(*s)).then_some(*s),
            _ => None,
        }
    }
    fn describe(&self, op: &Op) -> String {
        let r = describe_ret(op);
        match op.kind {
            Self::SET => "set()".into(),
            Self::CLEAR => "clear()".into(),
            Self::IS_SET => format!("is_set(){r}"),
            Self::WAIT => format!("wait_timeout({}us){r}", op.arg),
            k => format!("unknown op {k}"),
        }
    }
}

/// `Array<i64>` of [`ArraySpec::LEN`] slots: `get(i)`, `set(i, v)`, and
/// under the array's lock `add(i, d) -> new a[i]`, `move(i, j, d)` (`a[i] -=
/// d; a[j] += d`, two stores) and `snapshot()` (`to_vec`, the slots packed
/// as wrapping 16-bit fields: [`ArraySpec::pack`]). A process killed inside
/// `move` leaves it undone, half done (`a[i] -= d` only: the next locker
/// gets "owner died" and sees that), or done: the checker tries each.
#[derive(Clone, Copy, Debug, Default)]
pub struct ArraySpec {
    /// A deliberately broken variant: `move` changes nothing.
    pub forget_move: bool,
}

impl ArraySpec {
    /// Slots per array.
    pub const LEN: usize = 4;
    /// `get(arg = i) -> a[i]`
    pub const GET: u32 = 0;
    /// `set(arg = i | v << 8)`
    pub const SET: u32 = 1;
    /// `add(arg = i | d << 8) -> new a[i]`
    pub const ADD: u32 = 2;
    /// `move(arg = i | j << 4 | d << 8)`
    pub const MOVE: u32 = 3;
    /// `snapshot() -> pack(a)`
    pub const SNAPSHOT: u32 = 4;
    /// The first half of a `move` only (never recorded: an alternative for
    /// an indeterminate `move`).
    pub const HALF_MOVE: u32 = 5;

    /// The slots as wrapping 16-bit fields of one word.
    pub fn pack(a: &[i64]) -> i64 {
        a.iter()
            .enumerate()
            .fold(0u64, |w, (k, &v)| w | u64::from(v as u16) << (16 * k)) as i64
    }
}

impl Spec for ArraySpec {
    type State = [i64; ArraySpec::LEN];
    fn init(&self) -> Self::State {
        [0; ArraySpec::LEN]
    }
    fn step(&self, s: &Self::State, op: &Op) -> Option<Self::State> {
        let i = (op.arg & 0xf) as usize % Self::LEN;
        let j = ((op.arg >> 4) & 0xf) as usize % Self::LEN;
        let x = op.arg >> 8;
        let mut n = *s;
        match op.kind {
            Self::GET => allows(op, s[i]).then_some(n),
            Self::SET => {
                n[i] = x;
                allows(op, 0).then_some(n)
            }
            Self::ADD => {
                n[i] += x;
                allows(op, n[i]).then_some(n)
            }
            Self::MOVE | Self::HALF_MOVE => {
                if !self.forget_move {
                    n[i] -= x;
                    if op.kind == Self::MOVE {
                        n[j] += x;
                    }
                }
                allows(op, 0).then_some(n)
            }
            Self::SNAPSHOT => allows(op, Self::pack(s)).then_some(n),
            _ => None,
        }
    }
    fn describe(&self, op: &Op) -> String {
        let i = op.arg & 0xf;
        let j = (op.arg >> 4) & 0xf;
        let x = op.arg >> 8;
        let r = describe_ret(op);
        match op.kind {
            Self::GET => format!("get({i}){r}"),
            Self::SET => format!("set({i}, {x})"),
            Self::ADD => format!("add({i}, {x}){r}"),
            Self::MOVE => format!("move({i} -> {j}, {x})"),
            Self::HALF_MOVE => format!("half of move({i} -> {j}, {x})"),
            Self::SNAPSHOT => match ret(op) {
                Some(w) => format!("snapshot() -> {:?}", unpack(w)),
                None => "snapshot() -> ?".into(),
            },
            k => format!("unknown op {k}"),
        }
    }
    /// Each indeterminate `move` as a whole move, then as its first half
    /// alone (never taking effect at all is the checker's own choice).
    fn alternatives(&self, ops: &[Op]) -> Vec<Vec<Op>> {
        let pending: Vec<usize> = (0..ops.len())
            .filter(|&k| ops[k].kind == Self::MOVE && ops[k].ret.is_none())
            .collect();
        (0..1u32 << pending.len())
            .map(|mask| {
                let mut alt = ops.to_vec();
                for (b, &k) in pending.iter().enumerate() {
                    if mask >> b & 1 == 1 {
                        alt[k].kind = Self::HALF_MOVE;
                    }
                }
                alt
            })
            .collect()
    }
}

/// The slots of a packed snapshot.
fn unpack(w: i64) -> [u16; ArraySpec::LEN] {
    core::array::from_fn(|k| (w as u64 >> (16 * k)) as u16)
}
