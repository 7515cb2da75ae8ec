//! The event: a flag and a channel.
//!
//! | key | holds | written by |
//! |---|---|---|
//! | `{p}:flag` | `1` while set, else `0` or missing | set, clear |
//! | channel `{p}:chan` | a message per set | set |
//!
//! A waiter looks at the flag, subscribes, looks again, and sleeps until a
//! set's notification or its deadline ([`block_until`]). Nobody holds an
//! event, so a waiter whose process dies harms nobody, and a setter that dies
//! after its script has set it for everyone (the script is atomic).

use super::db::{Resp, ScriptError};
use super::lock::flag;
use super::store::{block_until, Attempt, Call, ScriptDef, Store};
use crate::platform::Mutant;

/// Seeded bug 1207: set raises the flag without notifying, so a waiter that
/// is already asleep is never woken.
#[doc(hidden)]
pub const MUTANT_SET_NO_NOTIFY: Mutant = Mutant(1207);

/// Set: `KEYS` flag, channel. Replies 1.
pub static EVENT_SET: ScriptDef = ScriptDef {
    name: "event_set",
    lua: r#"
redis.call('SET', KEYS[1], 1)
redis.call('PUBLISH', KEYS[2], 'set')
return 1
"#,
    run: |db, k, _| {
        db.set(&k[0], b"1", None, false);
        if db.mutant != MUTANT_SET_NO_NOTIFY.0 {
            db.publish(&k[1]);
        }
        Ok(Resp::Int(1))
    },
};

/// Clear: `KEYS` flag. Replies 1.
pub static EVENT_CLEAR: ScriptDef = ScriptDef {
    name: "event_clear",
    lua: r#"
redis.call('SET', KEYS[1], 0)
return 1
"#,
    run: |db, k, _| {
        db.set(&k[0], b"0", None, false);
        Ok(Resp::Int(1))
    },
};

/// Is it set: `KEYS` flag. Replies 1 or 0; a flag that is neither is `CORRUPT`.
pub static EVENT_IS_SET: ScriptDef = ScriptDef {
    name: "event_is_set",
    lua: r#"
local v = redis.call('GET', KEYS[1])
if not v or v == '0' then return 0 end
if v == '1' then return 1 end
return redis.error_reply('CORRUPT ' .. KEYS[1])
"#,
    run: |db, k, _| match db.get(&k[0])?.as_deref() {
        None | Some(b"0") => Ok(Resp::Int(0)),
        Some(b"1") => Ok(Resp::Int(1)),
        Some(_) => Err(ScriptError::Corrupt(k[0].clone())),
    },
};

/// An event named by its key prefix.
#[derive(Debug, Clone)]
pub struct Event {
    flag: String,
    chan: String,
}

impl Event {
    /// The event whose keys start with `prefix`.
    pub fn new(prefix: &str) -> Event {
        Event {
            flag: format!("{prefix}:flag"),
            chan: format!("{prefix}:chan"),
        }
    }

    /// The set step's call.
    pub fn set_call(&self) -> Call {
        Call::new(
            &EVENT_SET,
            vec![self.flag.clone(), self.chan.clone()],
            vec![],
        )
    }

    /// The clear step's call.
    pub fn clear_call(&self) -> Call {
        Call::new(&EVENT_CLEAR, vec![self.flag.clone()], vec![])
    }

    /// The is-set step's call.
    pub fn is_set_call(&self) -> Call {
        Call::new(&EVENT_IS_SET, vec![self.flag.clone()], vec![])
    }

    /// Python's `Event.set()`.
    pub fn set<S: Store>(&self, s: &S) -> Result<(), S::Error> {
        flag(EVENT_SET.name, s.eval(&self.set_call())?).map(|_| ())
    }

    /// Python's `Event.clear()`.
    pub fn clear<S: Store>(&self, s: &S) -> Result<(), S::Error> {
        flag(EVENT_CLEAR.name, s.eval(&self.clear_call())?).map(|_| ())
    }

    /// Python's `Event.is_set()`.
    pub fn is_set<S: Store>(&self, s: &S) -> Result<bool, S::Error> {
        flag(EVENT_IS_SET.name, s.eval(&self.is_set_call())?)
    }

    /// Python's `Event.wait(timeout)`: whether the event was set (`false`:
    /// timed out; `None`: wait for ever).
    pub fn wait<S: Store>(&self, s: &S, timeout_ms: Option<u64>) -> Result<bool, S::Error> {
        let r = block_until(s, &self.chan, timeout_ms, || {
            Ok(if self.is_set(s)? {
                Attempt::Done(())
            } else {
                Attempt::Retry(None)
            })
        })?;
        Ok(r.is_some())
    }
}
