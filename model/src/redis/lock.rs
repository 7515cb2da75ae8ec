//! The lease lock with a fencing token.
//!
//! | key | holds | written by |
//! |---|---|---|
//! | `{p}:lease` | the holder's token, with an expiry (the lease) | acquire (`SET PX`), renew (`PEXPIRE`), release (`DEL`) |
//! | `{p}:token` | the last token handed out (grows by one per acquisition) | acquire (`INCR`) |
//! | `{p}:owner` | the token of an acquisition not yet released | acquire (`SET`), release (`DEL`) |
//! | channel `{p}:chan` | a message per release | release (`PUBLISH`) |
//!
//! Invariants: `lease` exists iff some acquisition holds the lock now; then
//! `lease == owner == token`. `owner` without `lease` means the last holder's
//! lease ran out before it released (it died, or was paused or cut off): the
//! next acquirer is told so ([`Held::owner_died`]), as the local lock reports
//! `OwnerDied`. The token the next acquirer gets is larger, so a resource
//! that keeps the largest token it has seen ([`fenced_set`]) rejects the late
//! writes of the holder that lost its lease.
//!
//! What this does not give: mutual exclusion in real time. A holder paused
//! past its lease still believes it holds the lock until its next renew or
//! release fails; only the token makes its late writes harmless, and only to
//! resources that check it.

use super::db::{Db, Resp, ScriptError};
use super::store::{
    arg_int, block_until, int, ints, lua_int, retry_ms, Attempt, Call, ScriptDef, Store,
};
use crate::platform::Mutant;

/// Seeded bug 1201: acquisition does not advance the token (every holder
/// gets the same one), so fencing cannot tell a paused holder from the next:
/// the paused holder's late write is accepted.
#[doc(hidden)]
pub const MUTANT_NO_FENCING: Mutant = Mutant(1201);
/// Seeded bug 1202: release deletes the lease whoever holds it, so a holder
/// whose lease ran out frees the lock of the next holder.
#[doc(hidden)]
pub const MUTANT_RELEASE_ANY: Mutant = Mutant(1202);

/// Acquire: `KEYS` lease, token, owner; `ARGV` lease_ms.
/// Replies `{1, token, owner_died}` or `{0, ms until the lease runs out}`.
pub static LOCK_ACQUIRE: ScriptDef = ScriptDef {
    name: "lock_acquire",
    lua: r#"
local pttl = redis.call('PTTL', KEYS[1])
if pttl >= 0 then return {0, pttl} end
if pttl == -1 then return redis.error_reply('CORRUPT ' .. KEYS[1]) end
local died = redis.call('EXISTS', KEYS[3])
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], token, 'PX', ARGV[1])
redis.call('SET', KEYS[3], token)
return {1, token, died}
"#,
    run: lock_acquire,
};

fn lock_acquire(db: &mut Db, k: &[String], a: &[Vec<u8>]) -> Result<Resp, ScriptError> {
    let pttl = db.pttl(&k[0]);
    if pttl >= 0 {
        return Ok(Resp::Array(vec![Resp::Int(0), Resp::Int(pttl)]));
    }
    if pttl == -1 {
        return Err(ScriptError::Corrupt(k[0].clone()));
    }
    let died = db.exists(&k[2]) as i64;
    let token = if db.mutant == MUTANT_NO_FENCING.0 {
        db.get_int(&k[1])?.unwrap_or(0)
    } else {
        db.incrby(&k[1], 1)?
    };
    db.set(
        &k[0],
        token.to_string().as_bytes(),
        Some(arg_int(a, 0) as u64),
        false,
    );
    db.set(&k[2], token.to_string().as_bytes(), None, false);
    Ok(Resp::Array(vec![
        Resp::Int(1),
        Resp::Int(token),
        Resp::Int(died),
    ]))
}

/// Renew: `KEYS` lease; `ARGV` token, lease_ms. Replies 1 (renewed) or 0 (the
/// lease ran out: the lock is no longer this holder's).
pub static LOCK_RENEW: ScriptDef = ScriptDef {
    name: "lock_renew",
    lua: r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"#,
    run: lock_renew,
};

fn lock_renew(db: &mut Db, k: &[String], a: &[Vec<u8>]) -> Result<Resp, ScriptError> {
    if db.get(&k[0])?.as_deref() == Some(&a[0][..]) {
        db.pexpire(&k[0], arg_int(a, 1) as u64);
        return Ok(Resp::Int(1));
    }
    Ok(Resp::Int(0))
}

/// Release: `KEYS` lease, owner, channel; `ARGV` token. Replies 1 (released)
/// or 0 (the lease had run out; nothing changed, so the next acquirer learns
/// that this holder lost it).
pub static LOCK_RELEASE: ScriptDef = ScriptDef {
    name: "lock_release",
    lua: r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('DEL', KEYS[2])
  redis.call('PUBLISH', KEYS[3], 'released')
  return 1
end
return 0
"#,
    run: lock_release,
};

fn lock_release(db: &mut Db, k: &[String], a: &[Vec<u8>]) -> Result<Resp, ScriptError> {
    if db.mutant == MUTANT_RELEASE_ANY.0 || db.get(&k[0])?.as_deref() == Some(&a[0][..]) {
        db.del(&k[0]);
        db.del(&k[1]);
        db.publish(&k[2]);
        return Ok(Resp::Int(1));
    }
    Ok(Resp::Int(0))
}

/// A fenced write, the resource's side of fencing: `KEYS` value, fence;
/// `ARGV` token, value. Sets the value only if `token` is at least the largest
/// token seen (kept in `fence`). Replies 1 (written) or 0 (a stale token).
pub static FENCED_SET: ScriptDef = ScriptDef {
    name: "fenced_set",
    lua: concat!(
        lua_int!(),
        r#"
local top = int(KEYS[2]) or 0
if tonumber(ARGV[1]) < top then return 0 end
redis.call('SET', KEYS[2], ARGV[1])
redis.call('SET', KEYS[1], ARGV[2])
return 1
"#
    ),
    run: fenced_set_run,
};

fn fenced_set_run(db: &mut Db, k: &[String], a: &[Vec<u8>]) -> Result<Resp, ScriptError> {
    let top = db.get_int(&k[1])?.unwrap_or(0);
    if arg_int(a, 0) < top {
        return Ok(Resp::Int(0));
    }
    db.set(&k[1], &a[0], None, false);
    db.set(&k[0], &a[1], None, false);
    Ok(Resp::Int(1))
}

/// An acquisition: the fencing token, and whether the previous holder lost
/// its lease without releasing (it died, or was paused or cut off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// Grows with every acquisition of this lock.
    pub token: u64,
    /// The previous holder's lease ran out while it held the lock.
    pub owner_died: bool,
}

/// A lease lock named by its key prefix.
#[derive(Debug, Clone)]
pub struct LeaseLock {
    lease: String,
    token: String,
    owner: String,
    chan: String,
    lease_ms: u64,
}

impl LeaseLock {
    /// The lock whose keys start with `prefix` (e.g. `"ns:lock:name"`), held
    /// by a lease of `lease_ms` milliseconds that its holder renews.
    pub fn new(prefix: &str, lease_ms: u64) -> LeaseLock {
        LeaseLock {
            lease: format!("{prefix}:lease"),
            token: format!("{prefix}:token"),
            owner: format!("{prefix}:owner"),
            chan: format!("{prefix}:chan"),
            lease_ms,
        }
    }

    /// The channel a release is published on.
    pub fn channel(&self) -> &str {
        &self.chan
    }

    /// The lease length.
    pub fn lease_ms(&self) -> u64 {
        self.lease_ms
    }

    /// The acquire step's call.
    pub fn acquire_call(&self) -> Call {
        Call::new(
            &LOCK_ACQUIRE,
            vec![self.lease.clone(), self.token.clone(), self.owner.clone()],
            vec![self.lease_ms.to_string().into_bytes()],
        )
    }

    /// The renew step's call.
    pub fn renew_call(&self, token: u64) -> Call {
        Call::new(
            &LOCK_RENEW,
            vec![self.lease.clone()],
            vec![
                token.to_string().into_bytes(),
                self.lease_ms.to_string().into_bytes(),
            ],
        )
    }

    /// The release step's call.
    pub fn release_call(&self, token: u64) -> Call {
        Call::new(
            &LOCK_RELEASE,
            vec![self.lease.clone(), self.owner.clone(), self.chan.clone()],
            vec![token.to_string().into_bytes()],
        )
    }

    /// One try: the acquisition, or how long the current lease still runs.
    pub fn try_once<S: Store>(&self, s: &S) -> Result<Attempt<Held>, S::Error> {
        let r = s.eval(&self.acquire_call())?;
        let name = LOCK_ACQUIRE.name;
        if let Resp::Array(v) = &r {
            if v.len() == 2 {
                let [_, pttl] = ints::<2>(name, r)?;
                return Ok(Attempt::Retry(retry_ms(pttl)));
            }
        }
        match ints::<3>(name, r.clone())? {
            [1, token, died] if token >= 0 && (died == 0 || died == 1) => Ok(Attempt::Done(Held {
                token: token as u64,
                owner_died: died == 1,
            })),
            _ => Err(super::store::BadReply {
                script: name,
                reply: r,
            }
            .into()),
        }
    }

    /// Acquire, waiting at most `timeout_ms` (`None`: for ever; `Some(0)`: a
    /// single try). `Ok(None)`: timed out. A waiter sleeps until a release is
    /// published or the holder's lease would run out (a dead holder's lease
    /// is not renewed), never in a polling loop.
    pub fn acquire<S: Store>(
        &self,
        s: &S,
        timeout_ms: Option<u64>,
    ) -> Result<Option<Held>, S::Error> {
        block_until(s, &self.chan, timeout_ms, || self.try_once(s))
    }

    /// Renew the lease of acquisition `token` (what the holder's background
    /// renewer does every third of a lease). `Ok(false)`: the lease had run
    /// out; the lock is no longer held by this acquisition.
    pub fn renew<S: Store>(&self, s: &S, token: u64) -> Result<bool, S::Error> {
        flag(LOCK_RENEW.name, s.eval(&self.renew_call(token))?)
    }

    /// Release acquisition `token`. `Ok(false)`: its lease had run out (the
    /// lock was left as it was; the next acquirer is told the owner died).
    pub fn release<S: Store>(&self, s: &S, token: u64) -> Result<bool, S::Error> {
        flag(LOCK_RELEASE.name, s.eval(&self.release_call(token))?)
    }
}

/// Write `value` to the resource at `key` (its largest token kept at
/// `{key}:fence`) on behalf of the acquisition with `token`: `Ok(false)` if a
/// later acquisition has written it already (a stale holder's write, rejected).
pub fn fenced_set<S: Store>(s: &S, key: &str, token: u64, value: &[u8]) -> Result<bool, S::Error> {
    flag(
        FENCED_SET.name,
        s.eval(&fenced_set_call(key, token, value))?,
    )
}

/// The fenced write's call.
pub fn fenced_set_call(key: &str, token: u64, value: &[u8]) -> Call {
    Call::new(
        &FENCED_SET,
        vec![key.to_string(), format!("{key}:fence")],
        vec![token.to_string().into_bytes(), value.to_vec()],
    )
}

pub(crate) fn flag<E: From<super::store::BadReply>>(
    name: &'static str,
    r: Resp,
) -> Result<bool, E> {
    match int(name, r.clone())? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(super::store::BadReply {
            script: name,
            reply: r,
        }
        .into()),
    }
}

/// Is the lock held now: `KEYS` lease. Replies `{1, 0|1}`.
pub static LOCK_LOCKED: ScriptDef = ScriptDef {
    name: "lock_locked",
    lua: "return {1, redis.call('EXISTS', KEYS[1])}\n",
    run: |db, k, _| {
        Ok(Resp::Array(vec![
            Resp::Int(1),
            Resp::Int(db.exists(&k[0]) as i64),
        ]))
    },
};

impl LeaseLock {
    /// The locked step's call.
    pub fn locked_call(&self) -> Call {
        Call::new(&LOCK_LOCKED, vec![self.lease.clone()], vec![])
    }

    /// Is it held now (by anyone whose lease runs)?
    pub fn locked<S: Store>(&self, s: &S) -> Result<bool, S::Error> {
        let r = s.eval(&self.locked_call())?;
        match ints::<2>(LOCK_LOCKED.name, r)? {
            [1, b] => Ok(b == 1),
            other => Err(super::store::BadReply {
                script: LOCK_LOCKED.name,
                reply: Resp::Array(other.iter().map(|i| Resp::Int(*i)).collect()),
            }
            .into()),
        }
    }
}
