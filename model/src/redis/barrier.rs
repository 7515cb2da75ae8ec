//! The barrier: a generation number and an arrival count, broken on timeout.
//!
//! | key | holds | written by |
//! |---|---|---|
//! | `{p}:gen` | the current generation (missing: 0) | the last arrival and reset (`+1`) |
//! | `{p}:count` | arrivals in the current generation | arrive (`INCR`), the last arrival and reset (`SET 0`) |
//! | `{p}:broken` | the generation that was broken (missing: none) | a waiter that timed out, abort, reset |
//! | channel `{p}:chan` | a message when a generation passes or breaks | those steps |
//!
//! A party of generation `g` has passed iff `gen > g` and `broken != g`; it
//! is broken iff `broken == g`. The step that decides (the last arrival, or a
//! timed-out waiter's abort) is one script, so all parties of a generation
//! agree. A party that dies before arriving holds the others until their
//! timeouts (as in Python: a barrier has no owner to watch); one that dies
//! after arriving was counted and harms nobody.

use super::db::{Db, Resp, ScriptError};
use super::store::{
    arg_int, block_until, ints, lua_int, Attempt, BadReply, Call, ScriptDef, Store,
};
use crate::platform::{mutant, Mutant};

/// Seeded bug 1206: a waiter that timed out reports the barrier broken
/// without breaking it, so the parties of one generation disagree.
#[doc(hidden)]
pub const MUTANT_TIMEOUT_NO_BREAK: Mutant = Mutant(1206);

fn gen_of(db: &mut Db, k: &str) -> Result<i64, ScriptError> {
    Ok(db.get_int(k)?.unwrap_or(0))
}

/// Arrive: `KEYS` gen, count, broken, channel; `ARGV` parties. Replies
/// `{-1, g}` (generation `g` is broken), `{1, g, index}` (the last arrival: it
/// passed), or `{0, g, index}` (wait for generation `g` to pass).
pub static BARRIER_ARRIVE: ScriptDef = ScriptDef {
    name: "barrier_arrive",
    lua: concat!(
        lua_int!(),
        r#"
local g = int(KEYS[1]) or 0
if redis.call('GET', KEYS[3]) == tostring(g) then return {-1, g} end
local c = redis.call('INCR', KEYS[2])
if c >= tonumber(ARGV[1]) then
  redis.call('SET', KEYS[2], 0)
  redis.call('SET', KEYS[1], g + 1)
  redis.call('PUBLISH', KEYS[4], 'passed')
  return {1, g, c - 1}
end
return {0, g, c - 1}
"#
    ),
    run: |db, k, a| {
        let g = gen_of(db, &k[0])?;
        if db.get(&k[2])?.as_deref() == Some(g.to_string().as_bytes()) {
            return Ok(Resp::Array(vec![Resp::Int(-1), Resp::Int(g)]));
        }
        let c = db.incrby(&k[1], 1)?;
        if c >= arg_int(a, 0) {
            db.set(&k[1], b"0", None, false);
            db.set(&k[0], (g + 1).to_string().as_bytes(), None, false);
            db.publish(&k[3]);
            return Ok(Resp::Array(vec![
                Resp::Int(1),
                Resp::Int(g),
                Resp::Int(c - 1),
            ]));
        }
        Ok(Resp::Array(vec![
            Resp::Int(0),
            Resp::Int(g),
            Resp::Int(c - 1),
        ]))
    },
};

/// Look: `KEYS` gen, broken; `ARGV` g. Replies -1 (broken), 1 (passed), 0 (not yet).
pub static BARRIER_CHECK: ScriptDef = ScriptDef {
    name: "barrier_check",
    lua: concat!(
        lua_int!(),
        r#"
if redis.call('GET', KEYS[2]) == ARGV[1] then return -1 end
local g = int(KEYS[1]) or 0
if g > tonumber(ARGV[1]) then return 1 end
return 0
"#
    ),
    run: |db, k, a| {
        if db.get(&k[1])?.as_deref() == Some(&a[0][..]) {
            return Ok(Resp::Int(-1));
        }
        Ok(Resp::Int((gen_of(db, &k[0])? > arg_int(a, 0)) as i64))
    },
};

/// Break generation `g` unless it passed: `KEYS` gen, broken, channel;
/// `ARGV` g. Replies 1 (it had passed) or 0 (it is broken). A timed-out
/// waiter runs this (and Python's `abort`).
pub static BARRIER_ABORT: ScriptDef = ScriptDef {
    name: "barrier_abort",
    lua: concat!(
        lua_int!(),
        r#"
local g = int(KEYS[1]) or 0
if g > tonumber(ARGV[1]) and redis.call('GET', KEYS[2]) ~= ARGV[1] then return 1 end
redis.call('SET', KEYS[2], ARGV[1])
redis.call('PUBLISH', KEYS[3], 'broken')
return 0
"#
    ),
    run: |db, k, a| {
        let g = gen_of(db, &k[0])?;
        if g > arg_int(a, 0) && db.get(&k[1])?.as_deref() != Some(&a[0][..]) {
            return Ok(Resp::Int(1));
        }
        db.set(&k[1], &a[0], None, false);
        db.publish(&k[2]);
        Ok(Resp::Int(0))
    },
};

/// Reset (Python's `reset`): `KEYS` gen, count, broken, channel. The current
/// generation's waiters are broken; a fresh generation starts. Replies the
/// new generation.
pub static BARRIER_RESET: ScriptDef = ScriptDef {
    name: "barrier_reset",
    lua: concat!(
        lua_int!(),
        r#"
local g = int(KEYS[1]) or 0
redis.call('SET', KEYS[3], g)
redis.call('SET', KEYS[1], g + 1)
redis.call('SET', KEYS[2], 0)
redis.call('PUBLISH', KEYS[4], 'reset')
return g + 1
"#
    ),
    run: |db, k, _| {
        let g = gen_of(db, &k[0])?;
        db.set(&k[2], g.to_string().as_bytes(), None, false);
        db.set(&k[0], (g + 1).to_string().as_bytes(), None, false);
        db.set(&k[1], b"0", None, false);
        db.publish(&k[3]);
        Ok(Resp::Int(g + 1))
    },
};

/// How a party's wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Passage {
    /// Generation passed; the party's arrival index (0 .. parties).
    Passed(u64),
    /// The generation was broken (a timeout, an abort or a reset).
    Broken,
}

/// A barrier for `parties`, named by its key prefix.
#[derive(Debug, Clone)]
pub struct Barrier {
    gen: String,
    count: String,
    broken: String,
    chan: String,
    parties: u64,
}

impl Barrier {
    /// The barrier whose keys start with `prefix`.
    pub fn new(prefix: &str, parties: u64) -> Barrier {
        Barrier {
            gen: format!("{prefix}:gen"),
            count: format!("{prefix}:count"),
            broken: format!("{prefix}:broken"),
            chan: format!("{prefix}:chan"),
            parties,
        }
    }

    /// The arrive step's call.
    pub fn arrive_call(&self) -> Call {
        Call::new(
            &BARRIER_ARRIVE,
            vec![
                self.gen.clone(),
                self.count.clone(),
                self.broken.clone(),
                self.chan.clone(),
            ],
            vec![self.parties.to_string().into_bytes()],
        )
    }

    /// The check step's call for generation `g`.
    pub fn check_call(&self, g: i64) -> Call {
        Call::new(
            &BARRIER_CHECK,
            vec![self.gen.clone(), self.broken.clone()],
            vec![g.to_string().into_bytes()],
        )
    }

    /// The abort step's call for generation `g`.
    pub fn abort_call(&self, g: i64) -> Call {
        Call::new(
            &BARRIER_ABORT,
            vec![self.gen.clone(), self.broken.clone(), self.chan.clone()],
            vec![g.to_string().into_bytes()],
        )
    }

    /// The reset step's call.
    pub fn reset_call(&self) -> Call {
        Call::new(
            &BARRIER_RESET,
            vec![
                self.gen.clone(),
                self.count.clone(),
                self.broken.clone(),
                self.chan.clone(),
            ],
            vec![],
        )
    }

    /// Python's `Barrier.wait(timeout)`: arrive, and wait for the other
    /// parties at most `timeout_ms` (`None`: for ever). A timeout breaks the
    /// generation (unless it passed meanwhile) and reports [`Passage::Broken`].
    pub fn wait<S: Store>(&self, s: &S, timeout_ms: Option<u64>) -> Result<Passage, S::Error> {
        let r = s.eval(&self.arrive_call())?;
        let name = BARRIER_ARRIVE.name;
        if matches!(&r, Resp::Array(v) if v.len() == 2) {
            return match ints::<2>(name, r.clone())? {
                [-1, _] => Ok(Passage::Broken),
                _ => Err(BadReply {
                    script: name,
                    reply: r,
                }
                .into()),
            };
        }
        let (g, index) = match ints::<3>(name, r.clone())? {
            [1, _, i] if i >= 0 => return Ok(Passage::Passed(i as u64)),
            [0, g, i] if i >= 0 => (g, i as u64),
            _ => {
                return Err(BadReply {
                    script: name,
                    reply: r,
                }
                .into())
            }
        };
        let done = block_until(s, &self.chan, timeout_ms, || {
            let r = s.eval(&self.check_call(g))?;
            match super::store::int(BARRIER_CHECK.name, r.clone())? {
                -1 => Ok(Attempt::Done(Passage::Broken)),
                1 => Ok(Attempt::Done(Passage::Passed(index))),
                0 => Ok(Attempt::Retry(None)),
                _ => Err(BadReply {
                    script: BARRIER_CHECK.name,
                    reply: r,
                }
                .into()),
            }
        })?;
        if let Some(p) = done {
            return Ok(p);
        }
        if mutant::<S>(MUTANT_TIMEOUT_NO_BREAK) {
            return Ok(Passage::Broken);
        }
        let r = s.eval(&self.abort_call(g))?;
        match super::store::int(BARRIER_ABORT.name, r.clone())? {
            1 => Ok(Passage::Passed(index)),
            0 => Ok(Passage::Broken),
            _ => Err(BadReply {
                script: BARRIER_ABORT.name,
                reply: r,
            }
            .into()),
        }
    }

    /// Python's `Barrier.reset()`: the current generation's waiters are
    /// broken, and the barrier is empty again.
    pub fn reset<S: Store>(&self, s: &S) -> Result<(), S::Error> {
        let r = s.eval(&self.reset_call())?;
        super::store::int(BARRIER_RESET.name, r)?;
        Ok(())
    }
}

/// Break the current generation (Python's `abort()`): `KEYS` gen, broken,
/// channel. Replies the generation broken.
pub static BARRIER_BREAK: ScriptDef = ScriptDef {
    name: "barrier_break",
    lua: concat!(
        lua_int!(),
        r#"
local g = int(KEYS[1]) or 0
redis.call('SET', KEYS[2], g)
redis.call('PUBLISH', KEYS[3], 'broken')
return g
"#
    ),
    run: |db, k, _| {
        let g = gen_of(db, &k[0])?;
        db.set(&k[1], g.to_string().as_bytes(), None, false);
        db.publish(&k[2]);
        Ok(Resp::Int(g))
    },
};

/// The state: `KEYS` gen, count, broken. Replies `{arrivals waiting, 1 if
/// the current generation is broken}`.
pub static BARRIER_STATE: ScriptDef = ScriptDef {
    name: "barrier_state",
    lua: concat!(
        lua_int!(),
        r#"
local g = int(KEYS[1]) or 0
local c = int(KEYS[2]) or 0
if redis.call('GET', KEYS[3]) == tostring(g) then return {c, 1} end
return {c, 0}
"#
    ),
    run: |db, k, _| {
        let g = gen_of(db, &k[0])?;
        let c = db.get_int(&k[1])?.unwrap_or(0);
        let b = db.get(&k[2])?.as_deref() == Some(g.to_string().as_bytes());
        Ok(Resp::Array(vec![Resp::Int(c), Resp::Int(b as i64)]))
    },
};

impl Barrier {
    /// The break step's call.
    pub fn break_call(&self) -> Call {
        Call::new(
            &BARRIER_BREAK,
            vec![self.gen.clone(), self.broken.clone(), self.chan.clone()],
            vec![],
        )
    }

    /// The state step's call.
    pub fn state_call(&self) -> Call {
        Call::new(
            &BARRIER_STATE,
            vec![self.gen.clone(), self.count.clone(), self.broken.clone()],
            vec![],
        )
    }

    /// Python's `abort()`: break the current generation.
    pub fn abort<S: Store>(&self, s: &S) -> Result<(), S::Error> {
        let r = s.eval(&self.break_call())?;
        super::store::int(BARRIER_BREAK.name, r)?;
        Ok(())
    }

    /// `(arrivals waiting in the current generation, is it broken)`.
    pub fn state<S: Store>(&self, s: &S) -> Result<(u64, bool), S::Error> {
        let r = s.eval(&self.state_call())?;
        match ints::<2>(BARRIER_STATE.name, r.clone())? {
            [c, b] if c >= 0 && (b == 0 || b == 1) => Ok((c as u64, b == 1)),
            _ => Err(BadReply {
                script: BARRIER_STATE.name,
                reply: r,
            }
            .into()),
        }
    }

    /// One arrival (the first half of [`Barrier::wait`], for a caller that
    /// waits on its own): `Ok(None)` if the generation is broken, else the
    /// generation and the arrival index (the last arrival passed it).
    pub fn arrive<S: Store>(&self, s: &S) -> Result<Option<(i64, u64)>, S::Error> {
        let r = s.eval(&self.arrive_call())?;
        let name = BARRIER_ARRIVE.name;
        if matches!(&r, Resp::Array(v) if v.len() == 2) {
            return match ints::<2>(name, r.clone())? {
                [-1, _] => Ok(None),
                _ => Err(BadReply {
                    script: name,
                    reply: r,
                }
                .into()),
            };
        }
        match ints::<3>(name, r.clone())? {
            [0 | 1, g, i] if i >= 0 && g >= 0 => Ok(Some((g, i as u64))),
            _ => Err(BadReply {
                script: name,
                reply: r,
            }
            .into()),
        }
    }

    /// Wait for generation `g` to pass, at most `timeout_ms`: `Ok(Some(true))`
    /// passed, `Ok(Some(false))` broken, `Ok(None)` timed out (the caller
    /// then breaks it with the abort step, as [`Barrier::wait`] does).
    pub fn await_gen<S: Store>(
        &self,
        s: &S,
        g: i64,
        timeout_ms: Option<u64>,
    ) -> Result<Option<bool>, S::Error> {
        block_until(s, &self.chan, timeout_ms, || {
            let r = s.eval(&self.check_call(g))?;
            match super::store::int(BARRIER_CHECK.name, r.clone())? {
                -1 => Ok(Attempt::Done(false)),
                1 => Ok(Attempt::Done(true)),
                0 => Ok(Attempt::Retry(None)),
                _ => Err(BadReply {
                    script: BARRIER_CHECK.name,
                    reply: r,
                }
                .into()),
            }
        })
    }

    /// Break generation `g` unless it passed (a timed-out waiter's step):
    /// `Ok(true)` if it passed after all.
    pub fn abort_if<S: Store>(&self, s: &S, g: i64) -> Result<bool, S::Error> {
        let r = s.eval(&self.abort_call(g))?;
        match super::store::int(BARRIER_ABORT.name, r.clone())? {
            1 => Ok(true),
            0 => Ok(false),
            _ => Err(BadReply {
                script: BARRIER_ABORT.name,
                reply: r,
            }
            .into()),
        }
    }
}
