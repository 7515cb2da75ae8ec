//! The queue's take and ack: a reliable queue with a processing list per
//! consumer. Delivery is **at least once**: an item a consumer took stays in
//! that consumer's processing list until it acks it; a consumer that dies
//! (or is paused or cut off past its lease) has its unacknowledged items put
//! back at the head of the queue, in their order, by the next take, and they
//! are delivered again. A late ack from a consumer whose items were put back
//! returns `false` (the item may then be processed twice; CPython's queue
//! would instead have lost it).
//!
//! | key | holds | written by |
//! |---|---|---|
//! | `{p}:items` | the items ready to take, oldest first | put (`RPUSH`), take (`LMOVE` out, redelivery in at the head) |
//! | `{p}:proc:{consumer}` | what `consumer` took and has not acked, oldest first | take (`LMOVE` in), ack (`LREM`), redelivery (emptied) |
//! | `{p}:consumers` | sorted set: consumer → lease end (server ms), for consumers holding items | take (`ZADD`), renew (`ZADD XX`), ack of the last item (`ZREM`), redelivery (`ZREM`) |
//! | channel `{p}:chan` | a message when items become ready | put, a take that redelivered |
//!
//! Invariant: every item put and not acked is in `items` or in exactly one
//! processing list; a consumer with a nonempty processing list is in
//! `consumers`.

use super::db::{Db, Resp, ScriptError};
use super::lock::flag;
use super::store::{
    arg_int, block_until, lua_now, retry_ms, Attempt, BadReply, Call, ScriptDef, Store,
};
use crate::platform::Mutant;

/// Seeded bug 1204: take pops the item without moving it to a processing
/// list, so an item whose consumer dies before acking it is lost.
#[doc(hidden)]
pub const MUTANT_TAKE_NO_PROCESSING_LIST: Mutant = Mutant(1204);

/// Put: `KEYS` items, channel; `ARGV` item. Replies the queue's length.
pub static QUEUE_PUT: ScriptDef = ScriptDef {
    name: "queue_put",
    lua: r#"
local n = redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('PUBLISH', KEYS[2], 'put')
return n
"#,
    run: |db, k, a| {
        let n = db.rpush(&k[0], &a[0])?;
        db.publish(&k[1]);
        Ok(Resp::Int(n))
    },
};

/// Take: `KEYS` items, consumers, my processing list, channel; `ARGV`
/// consumer, lease_ms, processing-list prefix. First puts back the items of
/// every consumer whose lease ran out, then moves the head item to my
/// processing list. Replies `{1, item, items put back}` or `{0, ms until the
/// earliest lease of a consumer holding items ends (-1: none)}`.
pub static QUEUE_TAKE: ScriptDef = ScriptDef {
    name: "queue_take",
    lua: concat!(
        lua_now!(),
        r#"
local back = 0
for _, c in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)) do
  while redis.call('LMOVE', ARGV[3] .. c, KEYS[1], 'RIGHT', 'LEFT') do back = back + 1 end
  redis.call('ZREM', KEYS[2], c)
end
if back > 0 then redis.call('PUBLISH', KEYS[4], 'redelivered') end
local v = redis.call('LMOVE', KEYS[1], KEYS[3], 'LEFT', 'RIGHT')
if v then
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[1])
  return {1, v, back}
end
local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if #first == 0 then return {0, -1} end
return {0, tonumber(first[2]) - now}
"#
    ),
    run: queue_take,
};

fn queue_take(db: &mut Db, k: &[String], a: &[Vec<u8>]) -> Result<Resp, ScriptError> {
    let now = db.time_ms();
    let mut back = 0;
    for c in db.zrange_upto(&k[1], now)? {
        let pl = format!(
            "{}{}",
            String::from_utf8_lossy(&a[2]),
            String::from_utf8_lossy(&c)
        );
        while db.lmove(&pl, &k[0], false, true)?.is_some() {
            back += 1;
        }
        db.zrem(&k[1], &c)?;
    }
    if back > 0 {
        db.publish(&k[3]);
    }
    let v = if db.mutant == MUTANT_TAKE_NO_PROCESSING_LIST.0 {
        db.lpop(&k[0])?
    } else {
        db.lmove(&k[0], &k[2], true, false)?
    };
    if let Some(v) = v {
        db.zadd(&k[1], now + arg_int(a, 1), &a[0], false)?;
        return Ok(Resp::Array(vec![
            Resp::Int(1),
            Resp::Bulk(v),
            Resp::Int(back),
        ]));
    }
    match db.zfirst(&k[1])? {
        None => Ok(Resp::Array(vec![Resp::Int(0), Resp::Int(-1)])),
        Some((_, s)) => Ok(Resp::Array(vec![Resp::Int(0), Resp::Int(s - now)])),
    }
}

/// Ack: `KEYS` my processing list, consumers; `ARGV` consumer, item. Replies
/// 1, or 0 if the item is no longer mine (my lease ran out and it was put back).
pub static QUEUE_ACK: ScriptDef = ScriptDef {
    name: "queue_ack",
    lua: r#"
if redis.call('LREM', KEYS[1], 1, ARGV[2]) == 0 then return 0 end
if redis.call('LLEN', KEYS[1]) == 0 then redis.call('ZREM', KEYS[2], ARGV[1]) end
return 1
"#,
    run: |db, k, a| {
        if db.mutant == MUTANT_TAKE_NO_PROCESSING_LIST.0 {
            return Ok(Resp::Int(1));
        }
        if db.lrem1(&k[0], &a[1])? == 0 {
            return Ok(Resp::Int(0));
        }
        if db.llen(&k[0])? == 0 {
            db.zrem(&k[1], &a[0])?;
        }
        Ok(Resp::Int(1))
    },
};

/// Renew a consumer's lease: `KEYS` consumers; `ARGV` consumer, lease_ms.
/// Replies 1, or 0 (it had run out, or the consumer holds nothing).
pub static QUEUE_RENEW: ScriptDef = ScriptDef {
    name: "queue_renew",
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

/// A taken item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    /// The item.
    pub item: Vec<u8>,
    /// How many items of dead consumers this take put back first.
    pub redelivered: u64,
}

/// A reliable queue named by its key prefix, seen by one consumer.
#[derive(Debug, Clone)]
pub struct ReliableQueue {
    items: String,
    consumers: String,
    proc_prefix: String,
    mine: String,
    chan: String,
    consumer: String,
    lease_ms: u64,
}

impl ReliableQueue {
    /// The queue whose keys start with `prefix`, as consumer `consumer` (unique
    /// among the consumers: a host, process and thread identity) whose
    /// lease is `lease_ms`.
    pub fn new(prefix: &str, consumer: &str, lease_ms: u64) -> ReliableQueue {
        ReliableQueue {
            items: format!("{prefix}:items"),
            consumers: format!("{prefix}:consumers"),
            proc_prefix: format!("{prefix}:proc:"),
            mine: format!("{prefix}:proc:{consumer}"),
            chan: format!("{prefix}:chan"),
            consumer: consumer.to_string(),
            lease_ms,
        }
    }

    /// The put step's call.
    pub fn put_call(&self, item: &[u8]) -> Call {
        Call::new(
            &QUEUE_PUT,
            vec![self.items.clone(), self.chan.clone()],
            vec![item.to_vec()],
        )
    }

    /// The take step's call.
    pub fn take_call(&self) -> Call {
        Call::new(
            &QUEUE_TAKE,
            vec![
                self.items.clone(),
                self.consumers.clone(),
                self.mine.clone(),
                self.chan.clone(),
            ],
            vec![
                self.consumer.clone().into_bytes(),
                self.lease_ms.to_string().into_bytes(),
                self.proc_prefix.clone().into_bytes(),
            ],
        )
    }

    /// The ack step's call.
    pub fn ack_call(&self, item: &[u8]) -> Call {
        Call::new(
            &QUEUE_ACK,
            vec![self.mine.clone(), self.consumers.clone()],
            vec![self.consumer.clone().into_bytes(), item.to_vec()],
        )
    }

    /// The renew step's call.
    pub fn renew_call(&self) -> Call {
        Call::new(
            &QUEUE_RENEW,
            vec![self.consumers.clone()],
            vec![
                self.consumer.clone().into_bytes(),
                self.lease_ms.to_string().into_bytes(),
            ],
        )
    }

    /// Put an item; returns the queue's length.
    pub fn put<S: Store>(&self, s: &S, item: &[u8]) -> Result<u64, S::Error> {
        let r = s.eval(&self.put_call(item))?;
        match super::store::int(QUEUE_PUT.name, r.clone())? {
            n if n > 0 => Ok(n as u64),
            _ => Err(BadReply {
                script: QUEUE_PUT.name,
                reply: r,
            }
            .into()),
        }
    }

    /// One try at taking.
    pub fn try_once<S: Store>(&self, s: &S) -> Result<Attempt<Taken>, S::Error> {
        let r = s.eval(&self.take_call())?;
        let bad = |r: Resp| BadReply {
            script: QUEUE_TAKE.name,
            reply: r,
        };
        match &r {
            Resp::Array(v) => match &v[..] {
                [Resp::Int(1), Resp::Bulk(item), back] => match back.int() {
                    Some(n) if n >= 0 => Ok(Attempt::Done(Taken {
                        item: item.clone(),
                        redelivered: n as u64,
                    })),
                    _ => Err(bad(r.clone()).into()),
                },
                [Resp::Int(0), ms] => match ms.int() {
                    Some(ms) => Ok(Attempt::Retry(retry_ms(ms))),
                    None => Err(bad(r.clone()).into()),
                },
                _ => Err(bad(r.clone()).into()),
            },
            _ => Err(bad(r).into()),
        }
    }

    /// Take the head item, waiting at most `timeout_ms` (`None`: for ever).
    /// The item stays this consumer's until [`ack`](Self::ack)ed (renew the
    /// lease meanwhile). `Ok(None)`: timed out.
    pub fn take<S: Store>(
        &self,
        s: &S,
        timeout_ms: Option<u64>,
    ) -> Result<Option<Taken>, S::Error> {
        block_until(s, &self.chan, timeout_ms, || self.try_once(s))
    }

    /// Acknowledge a taken item. `Ok(false)`: it was put back already (this
    /// consumer's lease ran out); it will be, or was, delivered again.
    pub fn ack<S: Store>(&self, s: &S, item: &[u8]) -> Result<bool, S::Error> {
        flag(QUEUE_ACK.name, s.eval(&self.ack_call(item))?)
    }

    /// Renew this consumer's lease. `Ok(false)`: it had run out (or it holds nothing).
    pub fn renew<S: Store>(&self, s: &S) -> Result<bool, S::Error> {
        flag(QUEUE_RENEW.name, s.eval(&self.renew_call())?)
    }
}

// ------------------------------------------------------ the manager's queue

/// Seeded bug 1210: a get does not announce the room it made, so a put
/// waiting on a full queue sleeps on (a lost wake-up).
#[doc(hidden)]
pub const MUTANT_GET_NO_SPACE_NOTICE: Mutant = Mutant(1210);

/// The manager queue's put: `KEYS` items, channel, space channel, maxsize
/// (0 or absent: unbounded), unfinished (the joinable queue's count of
/// items put and not yet `task_done`); `ARGV` item. Replies `{1}`, or `{0}`
/// if full.
pub static MQ_PUT: ScriptDef = ScriptDef {
    name: "mq_put",
    lua: concat!(
        super::store::lua_int!(),
        r#"
local max = int(KEYS[4]) or 0
if max > 0 and redis.call('LLEN', KEYS[1]) >= max then return {0} end
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('INCR', KEYS[5])
redis.call('PUBLISH', KEYS[2], 'put')
return {1}
"#
    ),
    run: |db, k, a| {
        let max = db.get_int(&k[3])?.unwrap_or(0);
        if max > 0 && db.llen(&k[0])? >= max {
            return Ok(Resp::Array(vec![Resp::Int(0)]));
        }
        db.rpush(&k[0], &a[0])?;
        db.incrby(&k[4], 1)?;
        db.publish(&k[1]);
        Ok(Resp::Array(vec![Resp::Int(1)]))
    },
};

/// The manager queue's get: `KEYS` items, space channel. Replies `{1,
/// item}`, or `{0}` if empty. The item is the getter's from then on (at most
/// once, as CPython's queue: a getter that dies after this loses it).
pub static MQ_GET: ScriptDef = ScriptDef {
    name: "mq_get",
    lua: r#"
local v = redis.call('LPOP', KEYS[1])
if not v then return {0} end
redis.call('PUBLISH', KEYS[2], 'got')
return {1, v}
"#,
    run: |db, k, _| match db.lpop(&k[0])? {
        None => Ok(Resp::Array(vec![Resp::Int(0)])),
        Some(v) => {
            if db.mutant != MUTANT_GET_NO_SPACE_NOTICE.0 {
                db.publish(&k[1]);
            }
            Ok(Resp::Array(vec![Resp::Int(1), Resp::Bulk(v)]))
        }
    },
};

/// The manager's queue (`Manager::queue(maxsize)` on Redis): FIFO, a put
/// waits while `maxsize` items are queued, a get while none is. Its items
/// are the reliable queue's `{p}:items` list.
#[derive(Debug, Clone)]
pub struct ManagerQueue {
    items: String,
    chan: String,
    space: String,
    max: String,
    unfinished: String,
    joined: String,
}

impl ManagerQueue {
    /// The queue whose keys start with `prefix`.
    pub fn new(prefix: &str) -> ManagerQueue {
        ManagerQueue {
            items: format!("{prefix}:items"),
            chan: format!("{prefix}:chan"),
            space: format!("{prefix}:space"),
            max: format!("{prefix}:max"),
            unfinished: format!("{prefix}:unfinished"),
            joined: format!("{prefix}:joined"),
        }
    }

    /// The key holding `maxsize` (written once, when the queue is made).
    pub fn max_key(&self) -> &str {
        &self.max
    }

    /// The key of the items (its length is the queue's size).
    pub fn items_key(&self) -> &str {
        &self.items
    }

    /// The put step's call.
    pub fn put_call(&self, item: &[u8]) -> Call {
        Call::new(
            &MQ_PUT,
            vec![
                self.items.clone(),
                self.chan.clone(),
                self.space.clone(),
                self.max.clone(),
                self.unfinished.clone(),
            ],
            vec![item.to_vec()],
        )
    }

    /// The get step's call.
    pub fn get_call(&self) -> Call {
        Call::new(
            &MQ_GET,
            vec![self.items.clone(), self.space.clone()],
            vec![],
        )
    }

    /// Put, waiting at most `timeout_ms` for room (`None`: for ever).
    /// `Ok(false)`: still full at the deadline.
    pub fn put<S: Store>(
        &self,
        s: &S,
        item: &[u8],
        timeout_ms: Option<u64>,
    ) -> Result<bool, S::Error> {
        let call = self.put_call(item);
        let r = block_until(s, &self.space, timeout_ms, || {
            let r = s.eval(&call)?;
            match &r {
                Resp::Array(v) if v == &[Resp::Int(1)] => Ok(Attempt::Done(())),
                Resp::Array(v) if v == &[Resp::Int(0)] => Ok(Attempt::Retry(None)),
                _ => Err(BadReply {
                    script: MQ_PUT.name,
                    reply: r,
                }
                .into()),
            }
        })?;
        Ok(r.is_some())
    }

    /// Get, waiting at most `timeout_ms` for an item (`None`: for ever).
    /// `Ok(None)`: still empty at the deadline.
    pub fn get<S: Store>(
        &self,
        s: &S,
        timeout_ms: Option<u64>,
    ) -> Result<Option<Vec<u8>>, S::Error> {
        let call = self.get_call();
        block_until(s, &self.chan, timeout_ms, || {
            let r = s.eval(&call)?;
            match &r {
                Resp::Array(v) => match &v[..] {
                    [Resp::Int(1), Resp::Bulk(item)] => Ok(Attempt::Done(item.clone())),
                    [Resp::Int(0)] => Ok(Attempt::Retry(None)),
                    _ => Err(BadReply {
                        script: MQ_GET.name,
                        reply: r.clone(),
                    }
                    .into()),
                },
                _ => Err(BadReply {
                    script: MQ_GET.name,
                    reply: r,
                }
                .into()),
            }
        })
    }
}

/// Seeded bug 1211: the `task_done` that finishes the last task does not
/// announce it, so a `join` sleeps on (a lost wake-up).
#[doc(hidden)]
pub const MUTANT_TASK_DONE_SILENT: Mutant = Mutant(1211);

/// The joinable queue's `task_done`: `KEYS` unfinished, joined channel.
/// Replies `{1, tasks left}`, or `{0}` if none was unfinished (Python's
/// `ValueError: task_done() called too many times`).
pub static JQ_TASK_DONE: ScriptDef = ScriptDef {
    name: "jq_task_done",
    lua: concat!(
        super::store::lua_int!(),
        r#"
local n = int(KEYS[1]) or 0
if n <= 0 then return {0} end
n = redis.call('DECR', KEYS[1])
if n == 0 then redis.call('PUBLISH', KEYS[2], 'joined') end
return {1, n}
"#
    ),
    run: |db, k, _| {
        let n = db.get_int(&k[0])?.unwrap_or(0);
        if n <= 0 {
            return Ok(Resp::Array(vec![Resp::Int(0)]));
        }
        let n = db.incrby(&k[0], -1)?;
        if n == 0 && db.mutant != MUTANT_TASK_DONE_SILENT.0 {
            db.publish(&k[1]);
        }
        Ok(Resp::Array(vec![Resp::Int(1), Resp::Int(n)]))
    },
};

/// The joinable queue's count of unfinished tasks: `KEYS` unfinished. Replies `{1, n}`.
pub static JQ_UNFINISHED: ScriptDef = ScriptDef {
    name: "jq_unfinished",
    lua: concat!(super::store::lua_int!(), "return {1, int(KEYS[1]) or 0}\n"),
    run: |db, k, _| {
        Ok(Resp::Array(vec![
            Resp::Int(1),
            Resp::Int(db.get_int(&k[0])?.unwrap_or(0)),
        ]))
    },
};

impl ManagerQueue {
    /// The `task_done` step's call.
    pub fn task_done_call(&self) -> Call {
        Call::new(
            &JQ_TASK_DONE,
            vec![self.unfinished.clone(), self.joined.clone()],
            vec![],
        )
    }

    /// The unfinished step's call.
    pub fn unfinished_call(&self) -> Call {
        Call::new(&JQ_UNFINISHED, vec![self.unfinished.clone()], vec![])
    }

    /// Mark one task done: `Ok(None)` if none was unfinished, else how many are left.
    pub fn task_done<S: Store>(&self, s: &S) -> Result<Option<u64>, S::Error> {
        let r = s.eval(&self.task_done_call())?;
        match &r {
            Resp::Array(v) if v == &[Resp::Int(0)] => Ok(None),
            _ => match super::store::ints::<2>(JQ_TASK_DONE.name, r.clone())? {
                [1, n] if n >= 0 => Ok(Some(n as u64)),
                _ => Err(BadReply {
                    script: JQ_TASK_DONE.name,
                    reply: r,
                }
                .into()),
            },
        }
    }

    /// Tasks put and not yet done.
    pub fn unfinished<S: Store>(&self, s: &S) -> Result<u64, S::Error> {
        let r = s.eval(&self.unfinished_call())?;
        match super::store::ints::<2>(JQ_UNFINISHED.name, r.clone())? {
            [1, n] if n >= 0 => Ok(n as u64),
            _ => Err(BadReply {
                script: JQ_UNFINISHED.name,
                reply: r,
            }
            .into()),
        }
    }

    /// Python's `join()`: wait until every task put is done, at most
    /// `timeout_ms` (`None`: for ever). `Ok(false)`: timed out.
    pub fn join<S: Store>(&self, s: &S, timeout_ms: Option<u64>) -> Result<bool, S::Error> {
        let r = block_until(s, &self.joined, timeout_ms, || {
            Ok(if self.unfinished(s)? == 0 {
                Attempt::Done(())
            } else {
                Attempt::Retry(None)
            })
        })?;
        Ok(r.is_some())
    }
}
