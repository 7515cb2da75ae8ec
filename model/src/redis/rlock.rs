//! The recursive lease lock: the lease lock ([`super::lock`]) plus who holds
//! it and how deep.
//!
//! | key | holds | written by |
//! |---|---|---|
//! | `{p}:lease`, `{p}:token`, `{p}:owner`, channel `{p}:chan` | as the lease lock's | as the lease lock's (renewal is the lease lock's `LOCK_RENEW`) |
//! | `{p}:holder` | the holder's identity (host, process, thread) | acquire (first level), release (last level) |
//! | `{p}:depth` | how many times the holder acquired it and has not released | acquire (`INCR`), release (`DECR`) |
//!
//! Invariant: while `lease` exists, `holder` names its holder and `depth >= 1`.
//! Only the holder goes deeper or releases; the last release deletes the
//! lease and publishes. A holder whose lease ran out is no longer the holder:
//! its release is refused, and the next acquirer is told the owner died.

use super::db::{Db, Resp, ScriptError};
use super::lock::Held;
use super::store::{
    arg_int, block_until, ints, lua_int, retry_ms, Attempt, BadReply, Call, ScriptDef, Store,
};
use crate::platform::Mutant;

/// Seeded bug 1209: an acquire while the lock is held goes one level deeper
/// without checking that the caller is the holder (two holders at once).
#[doc(hidden)]
pub const MUTANT_REENTER_ANY: Mutant = Mutant(1209);

/// Acquire: `KEYS` lease, token, owner, holder, depth; `ARGV` me, lease_ms.
/// Replies `{1, token, owner_died, depth}` or `{0, ms until the lease runs out}`.
pub static RLOCK_ACQUIRE: ScriptDef = ScriptDef {
    name: "rlock_acquire",
    lua: concat!(
        lua_int!(),
        r#"
local pttl = redis.call('PTTL', KEYS[1])
if pttl >= 0 then
  if redis.call('GET', KEYS[4]) == ARGV[1] then
    local d = redis.call('INCR', KEYS[5])
    return {1, int(KEYS[1]), 0, d}
  end
  return {0, pttl}
end
if pttl == -1 then return redis.error_reply('CORRUPT ' .. KEYS[1]) end
local died = redis.call('EXISTS', KEYS[3])
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], token, 'PX', ARGV[2])
redis.call('SET', KEYS[3], token)
redis.call('SET', KEYS[4], ARGV[1])
redis.call('SET', KEYS[5], 1)
return {1, token, died, 1}
"#
    ),
    run: rlock_acquire,
};

fn rlock_acquire(db: &mut Db, k: &[String], a: &[Vec<u8>]) -> Result<Resp, ScriptError> {
    let pttl = db.pttl(&k[0]);
    if pttl >= 0 {
        if db.mutant == MUTANT_REENTER_ANY.0 || db.get(&k[3])?.as_deref() == Some(&a[0][..]) {
            let d = db.incrby(&k[4], 1)?;
            let token = db.get_int(&k[0])?.unwrap_or(0);
            return Ok(Resp::Array(vec![
                Resp::Int(1),
                Resp::Int(token),
                Resp::Int(0),
                Resp::Int(d),
            ]));
        }
        return Ok(Resp::Array(vec![Resp::Int(0), Resp::Int(pttl)]));
    }
    if pttl == -1 {
        return Err(ScriptError::Corrupt(k[0].clone()));
    }
    let died = db.exists(&k[2]) as i64;
    let token = db.incrby(&k[1], 1)?;
    let t = token.to_string();
    db.set(&k[0], t.as_bytes(), Some(arg_int(a, 1) as u64), false);
    db.set(&k[2], t.as_bytes(), None, false);
    db.set(&k[3], &a[0], None, false);
    db.set(&k[4], b"1", None, false);
    Ok(Resp::Array(vec![
        Resp::Int(1),
        Resp::Int(token),
        Resp::Int(died),
        Resp::Int(1),
    ]))
}

/// Release one level: `KEYS` lease, owner, holder, depth, channel; `ARGV`
/// me. Replies `{1, depth left}` or `{0}` (not the holder: never acquired,
/// another's, or the lease ran out).
pub static RLOCK_RELEASE: ScriptDef = ScriptDef {
    name: "rlock_release",
    lua: r#"
if redis.call('PTTL', KEYS[1]) < 0 or redis.call('GET', KEYS[3]) ~= ARGV[1] then return {0} end
local d = redis.call('DECR', KEYS[4])
if d > 0 then return {1, d} end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
redis.call('PUBLISH', KEYS[5], 'released')
return {1, 0}
"#,
    run: |db, k, a| {
        if db.pttl(&k[0]) < 0 || db.get(&k[2])?.as_deref() != Some(&a[0][..]) {
            return Ok(Resp::Array(vec![Resp::Int(0)]));
        }
        let d = db.incrby(&k[3], -1)?;
        if d > 0 {
            return Ok(Resp::Array(vec![Resp::Int(1), Resp::Int(d)]));
        }
        for key in &k[..4] {
            db.del(key);
        }
        db.publish(&k[4]);
        Ok(Resp::Array(vec![Resp::Int(1), Resp::Int(0)]))
    },
};

/// A recursive lease lock named by its key prefix, seen by one holder
/// identity `me` (unique per host, process and thread).
#[derive(Debug, Clone)]
pub struct RLeaseLock {
    keys: [String; 6],
    me: String,
    lease_ms: u64,
}

/// An acquisition of a recursive lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RHeld {
    /// The fencing token and whether the previous holder lost its lease.
    pub held: Held,
    /// The depth now (1: first level).
    pub depth: u64,
}

impl RLeaseLock {
    /// The lock at `prefix`, as holder `me`, with leases of `lease_ms`.
    pub fn new(prefix: &str, me: &str, lease_ms: u64) -> RLeaseLock {
        let k = |s: &str| format!("{prefix}:{s}");
        RLeaseLock {
            keys: [
                k("lease"),
                k("token"),
                k("owner"),
                k("holder"),
                k("depth"),
                k("chan"),
            ],
            me: me.to_string(),
            lease_ms,
        }
    }

    /// The lease lock under it (its renew step, its channel).
    pub fn lease(&self, prefix: &str) -> super::lock::LeaseLock {
        super::lock::LeaseLock::new(prefix, self.lease_ms)
    }

    /// The acquire step's call.
    pub fn acquire_call(&self) -> Call {
        Call::new(
            &RLOCK_ACQUIRE,
            self.keys[..5].to_vec(),
            vec![
                self.me.clone().into_bytes(),
                self.lease_ms.to_string().into_bytes(),
            ],
        )
    }

    /// The release step's call.
    pub fn release_call(&self) -> Call {
        Call::new(
            &RLOCK_RELEASE,
            vec![
                self.keys[0].clone(),
                self.keys[2].clone(),
                self.keys[3].clone(),
                self.keys[4].clone(),
                self.keys[5].clone(),
            ],
            vec![self.me.clone().into_bytes()],
        )
    }

    /// One try.
    pub fn try_once<S: Store>(&self, s: &S) -> Result<Attempt<RHeld>, S::Error> {
        let r = s.eval(&self.acquire_call())?;
        let name = RLOCK_ACQUIRE.name;
        if matches!(&r, Resp::Array(v) if v.len() == 2) {
            let [_, pttl] = ints::<2>(name, r)?;
            return Ok(Attempt::Retry(retry_ms(pttl)));
        }
        match ints::<4>(name, r.clone())? {
            [1, token, died, depth] if token >= 0 && (died == 0 || died == 1) && depth >= 1 => {
                Ok(Attempt::Done(RHeld {
                    held: Held {
                        token: token as u64,
                        owner_died: died == 1,
                    },
                    depth: depth as u64,
                }))
            }
            _ => Err(BadReply {
                script: name,
                reply: r,
            }
            .into()),
        }
    }

    /// Acquire (one level deeper if `me` holds it), waiting at most
    /// `timeout_ms` (`None`: for ever). `Ok(None)`: timed out.
    pub fn acquire<S: Store>(
        &self,
        s: &S,
        timeout_ms: Option<u64>,
    ) -> Result<Option<RHeld>, S::Error> {
        block_until(s, &self.keys[5], timeout_ms, || self.try_once(s))
    }

    /// Release one level: `Ok(Some(depth left))`, or `Ok(None)` if `me` does
    /// not hold it (never did, or its lease ran out).
    pub fn release<S: Store>(&self, s: &S) -> Result<Option<u64>, S::Error> {
        let r = s.eval(&self.release_call())?;
        match &r {
            Resp::Array(v) if v == &[Resp::Int(0)] => Ok(None),
            _ => match ints::<2>(RLOCK_RELEASE.name, r.clone())? {
                [1, d] if d >= 0 => Ok(Some(d as u64)),
                _ => Err(BadReply {
                    script: RLOCK_RELEASE.name,
                    reply: r,
                }
                .into()),
            },
        }
    }
}
