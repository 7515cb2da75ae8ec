//! The semaphore: a counter of free permits and a lease per holder.
//!
//! | key | holds | written by |
//! |---|---|---|
//! | `{p}:value` | free permits | create (`SET NX`), acquire (`DECR`, `INCRBY` of reaped permits), release (`INCR`) |
//! | `{p}:holders` | sorted set: holder token → lease end (server ms) | acquire (`ZADD`, reaping), renew (`ZADD XX`), release (`ZREM`) |
//! | `{p}:token` | the last holder token | acquire (`INCR`) |
//! | channel `{p}:chan` | a message per permit given back | release, and an acquire that reaped |
//!
//! Invariant: `value + |holders| ==` the permits made (the initial value plus
//! every [`Semaphore::release_new`]). A holder that dies stops renewing; the
//! next acquire finds its lease ended, removes it and gives its permit back
//! (reaping happens inside acquire, atomically, so no permit is lost and none
//! is counted twice). A waiter sleeps until a permit is given back or the
//! earliest lease would run out.

use super::db::{Db, Resp, ScriptError};
use super::lock::flag;
use super::store::{
    arg_int, block_until, ints, lua_int, lua_now, retry_ms, Attempt, BadReply, Call, ScriptDef,
    Store,
};
use crate::platform::Mutant;

/// Seeded bug 1205: acquire removes the holders whose lease ran out but does
/// not give their permits back (a dead holder's permits are lost for good).
#[doc(hidden)]
pub const MUTANT_REAP_LOSES_PERMIT: Mutant = Mutant(1205);

/// Create: `KEYS` value; `ARGV` initial value. Replies 1 (made) or 0 (it existed).
pub static SEM_CREATE: ScriptDef = ScriptDef {
    name: "sem_create",
    lua: r#"
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then return 1 end
return 0
"#,
    run: |db, k, a| Ok(Resp::Int(db.set(&k[0], &a[0], None, true) as i64)),
};

/// Acquire: `KEYS` value, holders, token, channel; `ARGV` lease_ms. Replies
/// `{1, token, permits reaped}` or `{0, ms until the earliest lease ends (-1: none)}`.
pub static SEM_ACQUIRE: ScriptDef = ScriptDef {
    name: "sem_acquire",
    lua: concat!(
        lua_now!(),
        lua_int!(),
        r#"
local dead = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for _, h in ipairs(dead) do redis.call('ZREM', KEYS[2], h) end
if #dead > 0 then
  redis.call('INCRBY', KEYS[1], #dead)
  redis.call('PUBLISH', KEYS[4], 'reaped')
end
local v = int(KEYS[1])
if not v then return redis.error_reply('MISSING ' .. KEYS[1]) end
if v > 0 then
  redis.call('DECR', KEYS[1])
  local token = redis.call('INCR', KEYS[3])
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[1]), token)
  return {1, token, #dead}
end
local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if #first == 0 then return {0, -1} end
return {0, tonumber(first[2]) - now}
"#
    ),
    run: sem_acquire,
};

fn sem_acquire(db: &mut Db, k: &[String], a: &[Vec<u8>]) -> Result<Resp, ScriptError> {
    let now = db.time_ms();
    let dead = db.zrange_upto(&k[1], now)?;
    for h in &dead {
        db.zrem(&k[1], h)?;
    }
    if !dead.is_empty() {
        if db.mutant != MUTANT_REAP_LOSES_PERMIT.0 {
            db.incrby(&k[0], dead.len() as i64)?;
        }
        db.publish(&k[3]);
    }
    let v = db
        .get_int(&k[0])?
        .ok_or_else(|| ScriptError::Missing(k[0].clone()))?;
    if v > 0 {
        db.incrby(&k[0], -1)?;
        let token = db.incrby(&k[2], 1)?;
        db.zadd(
            &k[1],
            now + arg_int(a, 0),
            token.to_string().as_bytes(),
            false,
        )?;
        return Ok(Resp::Array(vec![
            Resp::Int(1),
            Resp::Int(token),
            Resp::Int(dead.len() as i64),
        ]));
    }
    match db.zfirst(&k[1])? {
        None => Ok(Resp::Array(vec![Resp::Int(0), Resp::Int(-1)])),
        Some((_, score)) => Ok(Resp::Array(vec![Resp::Int(0), Resp::Int(score - now)])),
    }
}

/// Renew: `KEYS` holders; `ARGV` token, lease_ms. Replies 1, or 0 if the
/// holder's lease had run out (its permit is, or is about to be, given back).
pub static SEM_RENEW: ScriptDef = ScriptDef {
    name: "sem_renew",
    lua: concat!(
        lua_now!(),
        r#"
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if s and tonumber(s) > now then
  redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
  return 1
end
return 0
"#
    ),
    run: |db, k, a| {
        let now = db.time_ms();
        match db.zscore(&k[0], &a[0])? {
            Some(s) if s > now => {
                db.zadd(&k[0], now + arg_int(a, 1), &a[0], true)?;
                Ok(Resp::Int(1))
            }
            _ => Ok(Resp::Int(0)),
        }
    },
};

/// Release a held permit: `KEYS` value, holders, channel; `ARGV` token.
/// Replies 1, or 0 if the holder's lease had run out and its permit was
/// reaped already (it is not given back twice).
pub static SEM_RELEASE: ScriptDef = ScriptDef {
    name: "sem_release",
    lua: r#"
if redis.call('ZREM', KEYS[2], ARGV[1]) == 1 then
  redis.call('INCR', KEYS[1])
  redis.call('PUBLISH', KEYS[3], 'released')
  return 1
end
return 0
"#,
    run: |db, k, a| {
        if db.zrem(&k[1], &a[0])? {
            db.incrby(&k[0], 1)?;
            db.publish(&k[2]);
            return Ok(Resp::Int(1));
        }
        Ok(Resp::Int(0))
    },
};

/// Add a permit nobody held (Python's `release()` without an `acquire()`):
/// `KEYS` value, holders, channel; `ARGV` bound (0: none). Replies the new
/// free count, or -1 if that would go above the bound (a bounded semaphore's
/// `ValueError`).
pub static SEM_RELEASE_NEW: ScriptDef = ScriptDef {
    name: "sem_release_new",
    lua: concat!(
        lua_int!(),
        r#"
local v = int(KEYS[1])
if not v then return redis.error_reply('MISSING ' .. KEYS[1]) end
local bound = tonumber(ARGV[1])
if bound > 0 and v + redis.call('ZCARD', KEYS[2]) >= bound then return -1 end
redis.call('PUBLISH', KEYS[3], 'released')
return redis.call('INCR', KEYS[1])
"#
    ),
    run: |db, k, a| {
        let v = db
            .get_int(&k[0])?
            .ok_or_else(|| ScriptError::Missing(k[0].clone()))?;
        let bound = arg_int(a, 0);
        if bound > 0 && v + db.zcard(&k[1])? >= bound {
            return Ok(Resp::Int(-1));
        }
        db.publish(&k[2]);
        Ok(Resp::Int(db.incrby(&k[0], 1)?))
    },
};

/// A semaphore named by its key prefix.
#[derive(Debug, Clone)]
pub struct Semaphore {
    value: String,
    holders: String,
    token: String,
    chan: String,
    lease_ms: u64,
}

/// A held permit (its holder token; its lease is renewed while held).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permit {
    /// The holder token.
    pub token: u64,
    /// Permits of dead holders this acquisition gave back first.
    pub reaped: u64,
}

impl Semaphore {
    /// The semaphore whose keys start with `prefix`, holders leased for `lease_ms`.
    pub fn new(prefix: &str, lease_ms: u64) -> Semaphore {
        Semaphore {
            value: format!("{prefix}:value"),
            holders: format!("{prefix}:holders"),
            token: format!("{prefix}:token"),
            chan: format!("{prefix}:chan"),
            lease_ms,
        }
    }

    /// The create step's call.
    pub fn create_call(&self, value: u64) -> Call {
        Call::new(
            &SEM_CREATE,
            vec![self.value.clone()],
            vec![value.to_string().into_bytes()],
        )
    }

    /// The acquire step's call.
    pub fn acquire_call(&self) -> Call {
        Call::new(
            &SEM_ACQUIRE,
            vec![
                self.value.clone(),
                self.holders.clone(),
                self.token.clone(),
                self.chan.clone(),
            ],
            vec![self.lease_ms.to_string().into_bytes()],
        )
    }

    /// The renew step's call.
    pub fn renew_call(&self, token: u64) -> Call {
        Call::new(
            &SEM_RENEW,
            vec![self.holders.clone()],
            vec![
                token.to_string().into_bytes(),
                self.lease_ms.to_string().into_bytes(),
            ],
        )
    }

    /// The release step's call.
    pub fn release_call(&self, token: u64) -> Call {
        Call::new(
            &SEM_RELEASE,
            vec![self.value.clone(), self.holders.clone(), self.chan.clone()],
            vec![token.to_string().into_bytes()],
        )
    }

    /// The release-without-acquire step's call (`bound` 0: unbounded).
    pub fn release_new_call(&self, bound: u64) -> Call {
        Call::new(
            &SEM_RELEASE_NEW,
            vec![self.value.clone(), self.holders.clone(), self.chan.clone()],
            vec![bound.to_string().into_bytes()],
        )
    }

    /// Make the semaphore with `value` permits unless it exists. `Ok(false)`: it existed.
    pub fn create<S: Store>(&self, s: &S, value: u64) -> Result<bool, S::Error> {
        flag(SEM_CREATE.name, s.eval(&self.create_call(value))?)
    }

    /// One try.
    pub fn try_once<S: Store>(&self, s: &S) -> Result<Attempt<Permit>, S::Error> {
        let r = s.eval(&self.acquire_call())?;
        let name = SEM_ACQUIRE.name;
        if matches!(&r, Resp::Array(v) if v.len() == 2) {
            let [_, ms] = ints::<2>(name, r)?;
            return Ok(Attempt::Retry(retry_ms(ms)));
        }
        match ints::<3>(name, r.clone())? {
            [1, token, reaped] if token > 0 && reaped >= 0 => Ok(Attempt::Done(Permit {
                token: token as u64,
                reaped: reaped as u64,
            })),
            _ => Err(BadReply {
                script: name,
                reply: r,
            }
            .into()),
        }
    }

    /// Acquire a permit, waiting at most `timeout_ms` (`None`: for ever).
    /// `Ok(None)`: timed out.
    pub fn acquire<S: Store>(
        &self,
        s: &S,
        timeout_ms: Option<u64>,
    ) -> Result<Option<Permit>, S::Error> {
        block_until(s, &self.chan, timeout_ms, || self.try_once(s))
    }

    /// Renew a holder's lease. `Ok(false)`: it had run out.
    pub fn renew<S: Store>(&self, s: &S, token: u64) -> Result<bool, S::Error> {
        flag(SEM_RENEW.name, s.eval(&self.renew_call(token))?)
    }

    /// Give a held permit back. `Ok(false)`: its lease had run out and it was
    /// given back already.
    pub fn release<S: Store>(&self, s: &S, token: u64) -> Result<bool, S::Error> {
        flag(SEM_RELEASE.name, s.eval(&self.release_call(token))?)
    }

    /// Add a permit (Python's `release()` by a process that holds none).
    /// `Ok(None)`: above `bound` (0: no bound); else the free permits now.
    pub fn release_new<S: Store>(&self, s: &S, bound: u64) -> Result<Option<u64>, S::Error> {
        let r = s.eval(&self.release_new_call(bound))?;
        match super::store::int(SEM_RELEASE_NEW.name, r.clone())? {
            -1 => Ok(None),
            n if n >= 0 => Ok(Some(n as u64)),
            _ => Err(BadReply {
                script: SEM_RELEASE_NEW.name,
                reply: r,
            }
            .into()),
        }
    }
}

/// The value (free permits, counting those of holders whose lease ran out):
/// `KEYS` value, holders. Replies `{1, value}`; `MISSING` if never made.
pub static SEM_VALUE: ScriptDef = ScriptDef {
    name: "sem_value",
    lua: concat!(
        lua_now!(),
        lua_int!(),
        r#"
local v = int(KEYS[1])
if not v then return redis.error_reply('MISSING ' .. KEYS[1]) end
return {1, v + redis.call('ZCOUNT', KEYS[2], '-inf', now)}
"#
    ),
    run: |db, k, _| {
        let now = db.time_ms();
        let Some(v) = db.get_int(&k[0])? else {
            return Err(ScriptError::Missing(k[0].clone()));
        };
        let dead = db.zcount_upto(&k[1], now)?;
        Ok(Resp::Array(vec![Resp::Int(1), Resp::Int(v + dead)]))
    },
};

impl Semaphore {
    /// The value step's call.
    pub fn value_call(&self) -> Call {
        Call::new(
            &SEM_VALUE,
            vec![self.value.clone(), self.holders.clone()],
            vec![],
        )
    }

    /// The value now (free permits, and those a dead holder will give back).
    pub fn value<S: Store>(&self, s: &S) -> Result<u64, S::Error> {
        let r = s.eval(&self.value_call())?;
        match ints::<2>(SEM_VALUE.name, r.clone())? {
            [1, v] if v >= 0 => Ok(v as u64),
            _ => Err(BadReply {
                script: SEM_VALUE.name,
                reply: r,
            }
            .into()),
        }
    }
}
