//! The condition variable on Redis: a recursive lease lock ([`super::rlock`])
//! plus tickets. The manager's condition protocol (`CondEnter`, `CondSleep`,
//! `CondReacquire`, `Notify`; the client sequence is
//! `manager::condition_wait`, written once) answered by one script each
//! ([`Condition::cond_op`]), so the same client code runs over the local server and
//! over Redis.
//!
//! | key | holds | written by |
//! |---|---|---|
//! | the lock's keys (`{p}:lease`, `:token`, `:owner`, `:holder`, `:depth`) | as the recursive lock's | acquire and release, and enter / take / reacquire below |
//! | `{p}:ticket` | the last ticket handed out | enter (`INCR`) |
//! | `{p}:waiters` | tickets waiting, oldest first | enter (`RPUSH`), notify (`LPOP`), reacquire (`LREM`) |
//! | `{p}:notified` | hash: notified ticket → 1 | notify (`HSET`), take and reacquire (`HDEL`) |
//! | channel `{p}:chan` | a message per release, enter and notify | those steps |
//!
//! A waiter that dies keeps its ticket: a notify may go to it and be lost (as
//! in Python, where a notify wakes whichever waiter it picks).

use super::db::{Db, Resp, ScriptError};
use super::rlock::RLeaseLock;
use super::store::{arg_int, block_until, lua_int, Attempt, BadReply, Call, ScriptDef, Store};
use crate::manager::{Op, OpError, Response, Wait};
use crate::platform::Mutant;

/// Seeded bug 1212: a notified waiter takes the lock back without checking
/// that it is free (two holders: the notifier, still inside, and the waiter).
#[doc(hidden)]
pub const MUTANT_TAKE_HELD_LOCK: Mutant = Mutant(1212);

/// The Lua that takes the lock at depth `ARGV[3]` for `ARGV[1]` with a lease
/// of `ARGV[2]` ms (`KEYS[1..5]` the lock's), leaving `token` and `died`.
macro_rules! lua_take_lock {
    () => {
        "local died = redis.call('EXISTS', KEYS[3])\nlocal token = redis.call('INCR', KEYS[2])\nredis.call('SET', KEYS[1], token, 'PX', ARGV[2])\nredis.call('SET', KEYS[3], token)\nredis.call('SET', KEYS[4], ARGV[1])\nredis.call('SET', KEYS[5], ARGV[3])\n"
    };
}

fn take_lock(db: &mut Db, k: &[String], a: &[Vec<u8>]) -> Result<(i64, i64), ScriptError> {
    let died = db.exists(&k[2]) as i64;
    let token = db.incrby(&k[1], 1)?;
    let t = token.to_string();
    db.set(&k[0], t.as_bytes(), Some(arg_int(a, 1) as u64), false);
    db.set(&k[2], t.as_bytes(), None, false);
    db.set(&k[3], &a[0], None, false);
    db.set(&k[4], &a[2], None, false);
    Ok((token, died))
}

fn holds(db: &mut Db, k: &[String], me: &[u8]) -> Result<bool, ScriptError> {
    Ok(db.pttl(&k[0]) >= 0 && db.get(&k[3])?.as_deref() == Some(me))
}

/// Enter a wait: `KEYS` the lock's five, ticket, waiters, channel; `ARGV`
/// me. The caller must hold the lock: it is released entirely and a ticket
/// queued. Replies `{1, ticket, depth}` or `{0}` (not the holder).
pub static COND_ENTER: ScriptDef = ScriptDef {
    name: "cond_enter",
    lua: concat!(
        lua_int!(),
        r#"
if redis.call('PTTL', KEYS[1]) < 0 or redis.call('GET', KEYS[4]) ~= ARGV[1] then return {0} end
local depth = int(KEYS[5]) or 1
local t = redis.call('INCR', KEYS[6])
redis.call('RPUSH', KEYS[7], t)
redis.call('DEL', KEYS[1], KEYS[3], KEYS[4], KEYS[5])
redis.call('PUBLISH', KEYS[8], 'entered')
return {1, t, depth}
"#
    ),
    run: |db, k, a| {
        if !holds(db, k, &a[0])? {
            return Ok(Resp::Array(vec![Resp::Int(0)]));
        }
        let depth = db.get_int(&k[4])?.unwrap_or(1);
        let t = db.incrby(&k[5], 1)?;
        db.rpush(&k[6], t.to_string().as_bytes())?;
        for i in [0, 2, 3, 4] {
            db.del(&k[i]);
        }
        db.publish(&k[7]);
        Ok(Resp::Array(vec![
            Resp::Int(1),
            Resp::Int(t),
            Resp::Int(depth),
        ]))
    },
};

/// After a notify, take the lock back: `KEYS` the lock's five, waiters,
/// notified; `ARGV` me, lease_ms, depth, ticket. Replies `{1, token, died}`
/// (notified, and the lock was free: taken), `{0, ms}` (notified, the lock
/// is held for `ms` more at most), `{0, -1}` (not notified yet), or `{-1}`
/// (an unknown ticket).
pub static COND_TAKE: ScriptDef = ScriptDef {
    name: "cond_take",
    lua: concat!(
        r#"
if redis.call('HGET', KEYS[7], ARGV[4]) then
  local pttl = redis.call('PTTL', KEYS[1])
  if pttl >= 0 then return {0, pttl} end
  redis.call('HDEL', KEYS[7], ARGV[4])
"#,
        lua_take_lock!(),
        r#"  return {1, token, died}
end
for _, t in ipairs(redis.call('LRANGE', KEYS[6], 0, -1)) do
  if t == ARGV[4] then return {0, -1} end
end
return {-1}
"#
    ),
    run: |db, k, a| {
        if db.hget(&k[6], &a[3])?.is_some() {
            let pttl = db.pttl(&k[0]);
            if pttl >= 0 && db.mutant != MUTANT_TAKE_HELD_LOCK.0 {
                return Ok(Resp::Array(vec![Resp::Int(0), Resp::Int(pttl)]));
            }
            db.hdel(&k[6], &a[3])?;
            let (token, died) = take_lock(db, k, a)?;
            return Ok(Resp::Array(vec![
                Resp::Int(1),
                Resp::Int(token),
                Resp::Int(died),
            ]));
        }
        if db.lrange(&k[5], 0, -1)?.iter().any(|t| t == &a[3]) {
            return Ok(Resp::Array(vec![Resp::Int(0), Resp::Int(-1)]));
        }
        Ok(Resp::Array(vec![Resp::Int(-1)]))
    },
};

/// After a timeout, take the lock back whether notified or not, and forget
/// the ticket: `KEYS` the lock's five, waiters, notified; `ARGV` me,
/// lease_ms, depth, ticket. Replies `{1, token, died, notified meanwhile}`
/// or `{0, ms}` (the lock is held).
pub static COND_REACQUIRE: ScriptDef = ScriptDef {
    name: "cond_reacquire",
    lua: concat!(
        r#"
local pttl = redis.call('PTTL', KEYS[1])
if pttl >= 0 then return {0, pttl} end
local was = redis.call('HDEL', KEYS[7], ARGV[4])
redis.call('LREM', KEYS[6], 1, ARGV[4])
"#,
        lua_take_lock!(),
        r#"return {1, token, died, was}
"#
    ),
    run: |db, k, a| {
        let pttl = db.pttl(&k[0]);
        if pttl >= 0 {
            return Ok(Resp::Array(vec![Resp::Int(0), Resp::Int(pttl)]));
        }
        let was = db.hdel(&k[6], &a[3])? as i64;
        db.lrem1(&k[5], &a[3])?;
        let (token, died) = take_lock(db, k, a)?;
        Ok(Resp::Array(vec![
            Resp::Int(1),
            Resp::Int(token),
            Resp::Int(died),
            Resp::Int(was),
        ]))
    },
};

/// Notify up to `ARGV[2]` waiters (oldest first): `KEYS` the lock's five,
/// waiters, notified, channel; `ARGV` me, n. The caller must hold the lock.
/// Replies `{1, woken}` or `{0}` (not the holder).
pub static COND_NOTIFY: ScriptDef = ScriptDef {
    name: "cond_notify",
    lua: r#"
if redis.call('PTTL', KEYS[1]) < 0 or redis.call('GET', KEYS[4]) ~= ARGV[1] then return {0} end
local n = 0
while n < tonumber(ARGV[2]) do
  local t = redis.call('LPOP', KEYS[6])
  if not t then break end
  redis.call('HSET', KEYS[7], t, 1)
  n = n + 1
end
if n > 0 then redis.call('PUBLISH', KEYS[8], 'notified') end
return {1, n}
"#,
    run: |db, k, a| {
        if !holds(db, k, &a[0])? {
            return Ok(Resp::Array(vec![Resp::Int(0)]));
        }
        let mut n = 0;
        while n < arg_int(a, 1) {
            let Some(t) = db.lpop(&k[5])? else { break };
            db.hset(&k[6], &t, b"1")?;
            n += 1;
        }
        if n > 0 {
            db.publish(&k[7]);
        }
        Ok(Resp::Array(vec![Resp::Int(1), Resp::Int(n)]))
    },
};

/// A condition named by its key prefix, seen by holder `me`.
#[derive(Debug, Clone)]
pub struct Condition {
    lock: RLeaseLock,
    keys: Vec<String>,
    me: String,
    lease_ms: u64,
}

/// What a condition step did to the lock, for the caller's lease keeper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockChange {
    /// Nothing.
    None,
    /// This holder took the lock with this token (its previous holder lost
    /// its lease while holding it if `owner_died`).
    Took {
        /// The fencing token.
        token: u64,
        /// The previous holder's lease ran out while it held the lock.
        owner_died: bool,
    },
    /// This holder gave the lock up.
    Gave,
}

impl Condition {
    /// The condition at `prefix`, as holder `me`, with leases of `lease_ms`.
    pub fn new(prefix: &str, me: &str, lease_ms: u64) -> Condition {
        let k = |s: &str| format!("{prefix}:{s}");
        Condition {
            lock: RLeaseLock::new(prefix, me, lease_ms),
            keys: vec![
                k("lease"),
                k("token"),
                k("owner"),
                k("holder"),
                k("depth"),
                k("ticket"),
                k("waiters"),
                k("notified"),
                k("chan"),
            ],
            me: me.to_string(),
            lease_ms,
        }
    }

    /// The condition's recursive lock (acquire, release).
    pub fn lock(&self) -> &RLeaseLock {
        &self.lock
    }

    fn lock_keys(&self) -> Vec<String> {
        self.keys[..5].to_vec()
    }

    /// The enter step's call.
    pub fn enter_call(&self) -> Call {
        let mut keys = self.lock_keys();
        keys.extend([
            self.keys[5].clone(),
            self.keys[6].clone(),
            self.keys[8].clone(),
        ]);
        Call::new(&COND_ENTER, keys, vec![self.me.clone().into_bytes()])
    }

    fn take_args(&self, depth: u64, ticket: u64) -> Vec<Vec<u8>> {
        vec![
            self.me.clone().into_bytes(),
            self.lease_ms.to_string().into_bytes(),
            depth.max(1).to_string().into_bytes(),
            ticket.to_string().into_bytes(),
        ]
    }

    /// The take step's call.
    pub fn take_call(&self, depth: u64, ticket: u64) -> Call {
        let mut keys = self.lock_keys();
        keys.extend([self.keys[6].clone(), self.keys[7].clone()]);
        Call::new(&COND_TAKE, keys, self.take_args(depth, ticket))
    }

    /// The reacquire step's call.
    pub fn reacquire_call(&self, depth: u64, ticket: u64) -> Call {
        let mut keys = self.lock_keys();
        keys.extend([self.keys[6].clone(), self.keys[7].clone()]);
        Call::new(&COND_REACQUIRE, keys, self.take_args(depth, ticket))
    }

    /// The notify step's call.
    pub fn notify_call(&self, n: u64) -> Call {
        let mut keys = self.lock_keys();
        keys.extend([
            self.keys[6].clone(),
            self.keys[7].clone(),
            self.keys[8].clone(),
        ]);
        Call::new(
            &COND_NOTIFY,
            keys,
            vec![
                self.me.clone().into_bytes(),
                n.min(i64::MAX as u64).to_string().into_bytes(),
            ],
        )
    }

    /// Answer one of the manager's condition operations (`CondEnter`,
    /// `CondSleep`, `CondReacquire`, `Notify`, `NotifyAll`) as the local
    /// server does, each by its one step (waits through [`block_until`]);
    /// `None` for another operation. Also says what happened to the lock.
    pub fn cond_op<S: Store>(
        &self,
        s: &S,
        op: &Op,
    ) -> Option<Result<(Response, LockChange), S::Error>> {
        Some(match op {
            Op::CondEnter => self.enter(s),
            Op::CondSleep(t, depth, w) => self.sleep(s, *t, *depth, *w),
            Op::CondReacquire(t, depth, w) => self.reacquire(s, *t, *depth, *w),
            Op::Notify(n) => self.notify(s, *n),
            Op::NotifyAll => self.notify(s, u64::MAX),
            _ => return None,
        })
    }

    fn bad<E: From<BadReply>>(script: &'static str, r: Resp) -> E {
        BadReply { script, reply: r }.into()
    }

    fn enter<S: Store>(&self, s: &S) -> Result<(Response, LockChange), S::Error> {
        let r = s.eval(&self.enter_call())?;
        match &r {
            Resp::Array(v) if v == &[Resp::Int(0)] => {
                Ok((Response::Err(OpError::NotOwner), LockChange::None))
            }
            Resp::Array(v) => match (
                v.first(),
                v.get(1).and_then(Resp::int),
                v.get(2).and_then(Resp::int),
            ) {
                (Some(Resp::Int(1)), Some(t), Some(d)) if t > 0 && d > 0 => {
                    Ok((Response::Arrived(t as u64, d as u64), LockChange::Gave))
                }
                _ => Err(Self::bad(COND_ENTER.name, r)),
            },
            _ => Err(Self::bad(COND_ENTER.name, r)),
        }
    }

    fn took(script: &'static str, r: &Resp) -> Option<LockChange> {
        let Resp::Array(v) = r else { return None };
        match (v.get(1).and_then(Resp::int), v.get(2).and_then(Resp::int)) {
            (Some(token), Some(died)) if token > 0 && (died == 0 || died == 1) => {
                let _ = script;
                Some(LockChange::Took {
                    token: token as u64,
                    owner_died: died == 1,
                })
            }
            _ => None,
        }
    }

    fn sleep<S: Store>(
        &self,
        s: &S,
        t: u64,
        depth: u64,
        w: Wait,
    ) -> Result<(Response, LockChange), S::Error> {
        let call = self.take_call(depth, t);
        let timeout = w.timeout_ms();
        let r = block_until(s, &self.keys[8], timeout, || {
            let r = s.eval(&call)?;
            match &r {
                Resp::Array(v) if v == &[Resp::Int(-1)] => Ok(Attempt::Done(None)),
                Resp::Array(v) if v.first() == Some(&Resp::Int(0)) && v.len() == 2 => {
                    match v[1].int() {
                        Some(-1) => Ok(Attempt::Retry(None)),
                        Some(ms) if ms >= 0 => Ok(Attempt::Retry(Some(ms as u64))),
                        _ => Err(Self::bad(COND_TAKE.name, r)),
                    }
                }
                Resp::Array(v) if v.first() == Some(&Resp::Int(1)) => {
                    match Self::took(COND_TAKE.name, &r) {
                        Some(c) => Ok(Attempt::Done(Some(c))),
                        None => Err(Self::bad(COND_TAKE.name, r)),
                    }
                }
                _ => Err(Self::bad(COND_TAKE.name, r)),
            }
        })?;
        Ok(match r {
            None => (Response::Err(OpError::Timeout), LockChange::None),
            Some(None) => (
                Response::Err(OpError::BadRequest(format!("unknown ticket {t}"))),
                LockChange::None,
            ),
            Some(Some(c)) => (Response::Bool(true), c),
        })
    }

    fn reacquire<S: Store>(
        &self,
        s: &S,
        t: u64,
        depth: u64,
        w: Wait,
    ) -> Result<(Response, LockChange), S::Error> {
        let call = self.reacquire_call(depth, t);
        let timeout = w.timeout_ms();
        let r = block_until(s, &self.keys[8], timeout, || {
            let r = s.eval(&call)?;
            match &r {
                Resp::Array(v) if v.first() == Some(&Resp::Int(0)) && v.len() == 2 => {
                    match v[1].int() {
                        Some(ms) if ms >= 0 => Ok(Attempt::Retry(Some(ms as u64))),
                        _ => Err(Self::bad(COND_REACQUIRE.name, r)),
                    }
                }
                Resp::Array(v) if v.first() == Some(&Resp::Int(1)) && v.len() == 4 => {
                    match (Self::took(COND_REACQUIRE.name, &r), v[3].int()) {
                        (Some(c), Some(was)) => Ok(Attempt::Done((c, was == 1))),
                        _ => Err(Self::bad(COND_REACQUIRE.name, r)),
                    }
                }
                _ => Err(Self::bad(COND_REACQUIRE.name, r)),
            }
        })?;
        Ok(match r {
            None => (Response::Err(OpError::Timeout), LockChange::None),
            Some((c, was)) => (Response::Bool(was), c),
        })
    }

    fn notify<S: Store>(&self, s: &S, n: u64) -> Result<(Response, LockChange), S::Error> {
        let r = s.eval(&self.notify_call(n))?;
        match &r {
            Resp::Array(v) if v == &[Resp::Int(0)] => {
                Ok((Response::Err(OpError::NotOwner), LockChange::None))
            }
            Resp::Array(v) if v.len() == 2 && v[0] == Resp::Int(1) => {
                Ok((Response::Ok, LockChange::None))
            }
            _ => Err(Self::bad(COND_NOTIFY.name, r)),
        }
    }
}
