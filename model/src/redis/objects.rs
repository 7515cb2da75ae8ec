//! The manager's data objects on Redis: a list in a Redis list, a dict in a
//! hash plus its insertion order, a value in a string, a namespace in a hash.
//! Every operation of the manager's protocol ([`Op`]) on one of them is one
//! script ([`data_call`]), so each is atomic on the server (Redis runs one
//! script at a time), and its reply becomes the same [`Response`] the local
//! manager's server gives ([`data_reply`]): the two backends answer alike,
//! which [`tests`](super) check against the local manager's own semantics
//! (`manager::apply`) over random operation sequences.
//!
//! | object | keys (`{p}` = `{namespace}:{kind}:{id}`) |
//! |---|---|
//! | list | `{p}` (list), `{p}:ver` (its version, bumped by every change: the sort's write-back checks it) |
//! | dict | `{p}:h` (hash key → value), `{p}:o` (sorted set key → insertion number, from 0 as the local dict's), `{p}:n` (insertion numbers handed out) |
//! | value | `{p}` (string) |
//! | namespace | as a dict (names are sorted when read, as the local namespace's) |
//!
//! A script's reply is `{1, ...}` on success or `{0, code, n}` for a
//! refusal the local manager also gives ([`OpError`]); a key of another type
//! is Redis's `WRONGTYPE` ([`ScriptError::WrongType`]).

use super::db::{Db, Resp, ScriptError};
use super::store::{arg_int, lua_int, BadReply, Call, ScriptDef};
use crate::manager::{Kind, Op, OpError, Response};
use crate::platform::Mutant;

/// Seeded bug 1208: a list insert before index `i` (`0 < i < len`) puts the
/// item one place too far (after item `i`).
#[doc(hidden)]
pub const MUTANT_INSERT_OFF_BY_ONE: Mutant = Mutant(1208);

/// Refusal codes in a script's `{0, code, n}` reply.
const OUT_OF_RANGE: i64 = 1;
const KEY_NOT_FOUND: i64 = 2;
const NOT_IN_LIST: i64 = 3;
const CONFLICT: i64 = 5;
const CHANGED_SIZE: i64 = 6;
const TOO_LARGE: i64 = 7;

fn ok(v: Vec<Resp>) -> Result<Resp, ScriptError> {
    let mut out = vec![Resp::Int(1)];
    out.extend(v);
    Ok(Resp::Array(out))
}

fn refuse(code: i64, n: i64) -> Result<Resp, ScriptError> {
    Ok(Resp::Array(vec![
        Resp::Int(0),
        Resp::Int(code),
        Resp::Int(n),
    ]))
}

fn bulk(v: Vec<Vec<u8>>) -> Resp {
    Resp::Array(v.into_iter().map(Resp::Bulk).collect())
}

/// Python's index `i` (negative: from the end) resolved against `n`
/// items, or `None` if out of range (the scripts' first lines).
fn resolve(i: i64, n: i64) -> Option<i64> {
    let j = if i < 0 { i + n } else { i };
    (0..n).contains(&j).then_some(j)
}

/// The Lua of [`resolve`]: `i` from `ARGV[1]`, `n` the list's length;
/// refuses with `{0, 1, n}` when out of range.
macro_rules! lua_resolve {
    () => {
        "local n = redis.call('LLEN', KEYS[1])\nlocal i = tonumber(ARGV[1])\nif i < 0 then i = i + n end\nif i < 0 or i >= n then return {0, 1, n} end\n"
    };
}

/// Append items: `KEYS` list, ver; `ARGV` the items. Replies `{1}`.
pub static LIST_PUSH: ScriptDef = ScriptDef {
    name: "list_push",
    lua: r#"
for i = 1, #ARGV do redis.call('RPUSH', KEYS[1], ARGV[i]) end
redis.call('INCR', KEYS[2])
return {1}
"#,
    run: |db, k, a| {
        for x in a {
            db.rpush(&k[0], x)?;
        }
        db.incrby(&k[1], 1)?;
        ok(vec![])
    },
};

/// The item at Python index `i`: `KEYS` list; `ARGV` i. Replies `{1, item}`.
pub static LIST_GET: ScriptDef = ScriptDef {
    name: "list_get",
    lua: concat!(
        lua_resolve!(),
        "return {1, redis.call('LINDEX', KEYS[1], i)}\n"
    ),
    run: |db, k, a| {
        let n = db.llen(&k[0])?;
        let Some(i) = resolve(arg_int(a, 0), n) else {
            return refuse(OUT_OF_RANGE, n);
        };
        let v = db.lindex(&k[0], i)?;
        ok(vec![v.map_or(Resp::Nil, Resp::Bulk)])
    },
};

/// Replace the item at Python index `i`: `KEYS` list, ver; `ARGV` i, item.
pub static LIST_SET: ScriptDef = ScriptDef {
    name: "list_set",
    lua: concat!(
        lua_resolve!(),
        "redis.call('LSET', KEYS[1], i, ARGV[2])\nredis.call('INCR', KEYS[2])\nreturn {1}\n"
    ),
    run: |db, k, a| {
        let n = db.llen(&k[0])?;
        let Some(i) = resolve(arg_int(a, 0), n) else {
            return refuse(OUT_OF_RANGE, n);
        };
        db.lset(&k[0], i, &a[1])?;
        db.incrby(&k[1], 1)?;
        ok(vec![])
    },
};

/// Remove and answer the item at Python index `i`: `KEYS` list, ver; `ARGV`
/// i. The items after it are moved down by rewriting the tail.
pub static LIST_DEL: ScriptDef = ScriptDef {
    name: "list_del",
    lua: concat!(
        lua_resolve!(),
        r#"local v = redis.call('LINDEX', KEYS[1], i)
local tail = redis.call('LRANGE', KEYS[1], i + 1, -1)
redis.call('LTRIM', KEYS[1], 0, i)
redis.call('RPOP', KEYS[1])
for _, x in ipairs(tail) do redis.call('RPUSH', KEYS[1], x) end
redis.call('INCR', KEYS[2])
return {1, v}
"#
    ),
    run: |db, k, a| {
        let n = db.llen(&k[0])?;
        let Some(i) = resolve(arg_int(a, 0), n) else {
            return refuse(OUT_OF_RANGE, n);
        };
        let v = db.lindex(&k[0], i)?;
        let tail = db.lrange(&k[0], i + 1, -1)?;
        db.ltrim(&k[0], 0, i)?;
        db.rpop(&k[0])?;
        for x in tail {
            db.rpush(&k[0], &x)?;
        }
        db.incrby(&k[1], 1)?;
        ok(vec![v.map_or(Resp::Nil, Resp::Bulk)])
    },
};

/// Insert before Python index `i` (clamped as Python's `insert`): `KEYS`
/// list, ver; `ARGV` i, item.
pub static LIST_INSERT: ScriptDef = ScriptDef {
    name: "list_insert",
    lua: r#"
local n = redis.call('LLEN', KEYS[1])
local i = tonumber(ARGV[1])
if i < 0 then
  i = i + n
  if i < 0 then i = 0 end
end
if i > n then i = n end
if i == n then redis.call('RPUSH', KEYS[1], ARGV[2])
elseif i == 0 then redis.call('LPUSH', KEYS[1], ARGV[2])
else
  local tail = redis.call('LRANGE', KEYS[1], i, -1)
  redis.call('LTRIM', KEYS[1], 0, i - 1)
  redis.call('RPUSH', KEYS[1], ARGV[2])
  for _, x in ipairs(tail) do redis.call('RPUSH', KEYS[1], x) end
end
redis.call('INCR', KEYS[2])
return {1}
"#,
    run: |db, k, a| {
        let n = db.llen(&k[0])?;
        let mut i = arg_int(a, 0);
        if i < 0 {
            i = (i + n).max(0);
        }
        i = i.min(n);
        if i == n {
            db.rpush(&k[0], &a[1])?;
        } else if i == 0 {
            db.lpush(&k[0], &a[1])?;
        } else {
            // The seeded bug 1208 keeps one item too many before the new one.
            let cut = if db.mutant == MUTANT_INSERT_OFF_BY_ONE.0 {
                i + 1
            } else {
                i
            };
            let tail = db.lrange(&k[0], cut, -1)?;
            db.ltrim(&k[0], 0, cut - 1)?;
            db.rpush(&k[0], &a[1])?;
            for x in tail {
                db.rpush(&k[0], &x)?;
            }
        }
        db.incrby(&k[1], 1)?;
        ok(vec![])
    },
};

/// Remove the first item equal to `x`: `KEYS` list, ver; `ARGV` x.
pub static LIST_REMOVE: ScriptDef = ScriptDef {
    name: "list_remove",
    lua: r#"
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return {0, 3, 0} end
redis.call('INCR', KEYS[2])
return {1}
"#,
    run: |db, k, a| {
        if db.lrem1(&k[0], &a[0])? == 0 {
            return refuse(NOT_IN_LIST, 0);
        }
        db.incrby(&k[1], 1)?;
        ok(vec![])
    },
};

/// The index of the first item equal to `x` (`ARGV[2] == "i"`) or the
/// number of items equal to it (`"c"`): `KEYS` list; `ARGV` x, mode.
pub static LIST_FIND: ScriptDef = ScriptDef {
    name: "list_find",
    lua: r#"
local c = 0
for i, y in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  if y == ARGV[1] then
    if ARGV[2] == 'i' then return {1, i - 1} end
    c = c + 1
  end
end
if ARGV[2] == 'i' then return {0, 3, 0} end
return {1, c}
"#,
    run: |db, k, a| {
        let mut c = 0;
        for (i, y) in db.lrange(&k[0], 0, -1)?.into_iter().enumerate() {
            if y == a[0] {
                if a[1] == b"i" {
                    return ok(vec![Resp::Int(i as i64)]);
                }
                c += 1;
            }
        }
        if a[1] == b"i" {
            return refuse(NOT_IN_LIST, 0);
        }
        ok(vec![Resp::Int(c)])
    },
};

/// Reverse in place: `KEYS` list, ver.
pub static LIST_REVERSE: ScriptDef = ScriptDef {
    name: "list_reverse",
    lua: r#"
local all = redis.call('LRANGE', KEYS[1], 0, -1)
redis.call('DEL', KEYS[1])
for i = #all, 1, -1 do redis.call('RPUSH', KEYS[1], all[i]) end
redis.call('INCR', KEYS[2])
return {1}
"#,
    run: |db, k, _| {
        let all = db.lrange(&k[0], 0, -1)?;
        db.del(&k[0]);
        for x in all.iter().rev() {
            db.rpush(&k[0], x)?;
        }
        db.incrby(&k[1], 1)?;
        ok(vec![])
    },
};

/// Every item and the list's version: `KEYS` list, ver. Replies `{1, ver, items}`.
pub static LIST_SNAPSHOT: ScriptDef = ScriptDef {
    name: "list_snapshot",
    lua: concat!(
        lua_int!(),
        r#"
local all = redis.call('LRANGE', KEYS[1], 0, -1)
return {1, int(KEYS[2]) or 0, all}
"#
    ),
    run: |db, k, _| {
        let all = db.lrange(&k[0], 0, -1)?;
        let ver = db.get_int(&k[1])?.unwrap_or(0);
        ok(vec![Resp::Int(ver), bulk(all)])
    },
};

/// Items `s..e` (clamped): `KEYS` list; `ARGV` s, e. Replies `{1, items}`.
pub static LIST_RANGE: ScriptDef = ScriptDef {
    name: "list_range",
    lua: r#"
local n = redis.call('LLEN', KEYS[1])
local s = math.min(tonumber(ARGV[1]), n)
local e = math.max(math.min(tonumber(ARGV[2]), n), s)
if s >= e then return {1, {}} end
return {1, redis.call('LRANGE', KEYS[1], s, e - 1)}
"#,
    run: |db, k, a| {
        let n = db.llen(&k[0])?;
        let s = arg_int(a, 0).min(n);
        let e = arg_int(a, 1).min(n).max(s);
        if s >= e {
            return ok(vec![Resp::Array(vec![])]);
        }
        ok(vec![bulk(db.lrange(&k[0], s, e - 1)?)])
    },
};

/// Replace items `s..e` (clamped) with the items given, if the version is
/// `ARGV[3]` (empty: whatever it is): `KEYS` list, ver; `ARGV` s, e, version,
/// items. Also the list's creation (`0..0`), `clear` (`0..len`, no items) and
/// the sort's write-back (`0..len` at the snapshot's version).
pub static LIST_SPLICE: ScriptDef = ScriptDef {
    name: "list_splice",
    lua: concat!(
        lua_int!(),
        r#"
if ARGV[3] ~= '' and tostring(int(KEYS[2]) or 0) ~= ARGV[3] then return {0, 5, 0} end
local n = redis.call('LLEN', KEYS[1])
local s = math.min(tonumber(ARGV[1]), n)
local e = math.max(math.min(tonumber(ARGV[2]), n), s)
local tail = redis.call('LRANGE', KEYS[1], e, -1)
if s == 0 then redis.call('DEL', KEYS[1]) else redis.call('LTRIM', KEYS[1], 0, s - 1) end
for i = 4, #ARGV do redis.call('RPUSH', KEYS[1], ARGV[i]) end
for _, x in ipairs(tail) do redis.call('RPUSH', KEYS[1], x) end
redis.call('INCR', KEYS[2])
return {1}
"#
    ),
    run: |db, k, a| {
        if !a[2].is_empty() {
            let ver = db.get_int(&k[1])?.unwrap_or(0);
            if ver.to_string().as_bytes() != &a[2][..] {
                return refuse(CONFLICT, 0);
            }
        }
        let n = db.llen(&k[0])?;
        let s = arg_int(a, 0).min(n);
        let e = arg_int(a, 1).min(n).max(s);
        let tail = db.lrange(&k[0], e, -1)?;
        if s == 0 {
            db.del(&k[0]);
        } else {
            db.ltrim(&k[0], 0, s - 1)?;
        }
        for x in &a[3..] {
            db.rpush(&k[0], x)?;
        }
        for x in tail {
            db.rpush(&k[0], &x)?;
        }
        db.incrby(&k[1], 1)?;
        ok(vec![])
    },
};

/// Repeat the list in place `ARGV[1]` times (`l *= n`; 0 clears), unless it
/// would hold more than `ARGV[2]` bytes (each item counted one byte over its
/// length, as the local manager counts): `KEYS` list, ver. Replies `{1}` or
/// `{0, 7, 0}` (too large).
pub static LIST_REPEAT: ScriptDef = ScriptDef {
    name: "list_repeat",
    lua: r#"
local n = tonumber(ARGV[1])
local all = redis.call('LRANGE', KEYS[1], 0, -1)
if n == 1 or #all == 0 then return {1} end
local bytes = 0
for _, x in ipairs(all) do bytes = bytes + #x + 1 end
if bytes * n > tonumber(ARGV[2]) then return {0, 7, 0} end
if n == 0 then
  redis.call('DEL', KEYS[1])
else
  for i = 2, n do
    for _, x in ipairs(all) do redis.call('RPUSH', KEYS[1], x) end
  end
end
redis.call('INCR', KEYS[2])
return {1}
"#,
    run: |db, k, a| {
        let n = arg_int(a, 0);
        let all = db.lrange(&k[0], 0, -1)?;
        if n == 1 || all.is_empty() {
            return ok(vec![]);
        }
        let bytes: i64 = all.iter().map(|x| x.len() as i64 + 1).sum();
        if bytes.saturating_mul(n) > arg_int(a, 1) {
            return refuse(TOO_LARGE, 0);
        }
        if n == 0 {
            db.del(&k[0]);
        } else {
            for _ in 1..n {
                for x in &all {
                    db.rpush(&k[0], x)?;
                }
            }
        }
        db.incrby(&k[1], 1)?;
        ok(vec![])
    },
};

/// The number of items of a list (also the manager queue's size): `KEYS` list.
pub static LIST_LEN: ScriptDef = ScriptDef {
    name: "list_len",
    lua: "return {1, redis.call('LLEN', KEYS[1])}\n",
    run: |db, k, _| ok(vec![Resp::Int(db.llen(&k[0])?)]),
};

/// A dict's (or namespace's) value for a key: `KEYS` h; `ARGV` key. Replies
/// `{1, value}` or `{0, 2, 0}` (absent).
pub static DICT_GET: ScriptDef = ScriptDef {
    name: "dict_get",
    lua: r#"
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return {0, 2, 0} end
return {1, v}
"#,
    run: |db, k, a| match db.hget(&k[0], &a[0])? {
        None => refuse(KEY_NOT_FOUND, 0),
        Some(v) => ok(vec![Resp::Bulk(v)]),
    },
};

/// Set keys to values, in order; a new key goes last in the order: `KEYS` h,
/// o, n; `ARGV` key, value, key, value, ... Replies `{1}` or `{1, the last
/// key's previous value}`.
pub static DICT_SET: ScriptDef = ScriptDef {
    name: "dict_set",
    lua: r#"
local prev = false
for i = 1, #ARGV, 2 do
  prev = redis.call('HGET', KEYS[1], ARGV[i])
  if not prev then redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[3]) - 1, ARGV[i]) end
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
if prev then return {1, prev} end
return {1}
"#,
    run: |db, k, a| {
        let mut prev = None;
        for kv in a.chunks(2) {
            let [key, v] = kv else {
                return Err(ScriptError::Corrupt(k[0].clone()));
            };
            prev = db.hget(&k[0], key)?;
            if prev.is_none() {
                let seq = db.incrby(&k[2], 1)? - 1;
                db.zadd(&k[1], seq, key, false)?;
            }
            db.hset(&k[0], key, v)?;
        }
        ok(prev.map(Resp::Bulk).into_iter().collect())
    },
};

/// Remove a key: `KEYS` h, o; `ARGV` key. Replies `{1, value}` or `{0, 2, 0}`.
pub static DICT_REMOVE: ScriptDef = ScriptDef {
    name: "dict_remove",
    lua: r#"
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return {0, 2, 0} end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return {1, v}
"#,
    run: |db, k, a| match db.hget(&k[0], &a[0])? {
        None => refuse(KEY_NOT_FOUND, 0),
        Some(v) => {
            db.hdel(&k[0], &a[0])?;
            db.zrem(&k[1], &a[0])?;
            ok(vec![Resp::Bulk(v)])
        }
    },
};

/// The value for a key, set to `default` first if absent: `KEYS` h, o, n;
/// `ARGV` key, default. Replies `{1, value}`.
pub static DICT_SETDEFAULT: ScriptDef = ScriptDef {
    name: "dict_setdefault",
    lua: r#"
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v then return {1, v} end
redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[3]) - 1, ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return {1, ARGV[2]}
"#,
    run: |db, k, a| {
        if let Some(v) = db.hget(&k[0], &a[0])? {
            return ok(vec![Resp::Bulk(v)]);
        }
        let seq = db.incrby(&k[2], 1)? - 1;
        db.zadd(&k[1], seq, &a[0], false)?;
        db.hset(&k[0], &a[0], &a[1])?;
        ok(vec![Resp::Bulk(a[1].clone())])
    },
};

/// Every pair, in insertion order: `KEYS` h, o. Replies `{1, {k, v, k, v, ...}}`.
pub static DICT_ITEMS: ScriptDef = ScriptDef {
    name: "dict_items",
    lua: r#"
local out = {}
for _, k in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  local v = redis.call('HGET', KEYS[1], k)
  if not v then return redis.error_reply('CORRUPT ' .. KEYS[2]) end
  out[#out + 1] = k
  out[#out + 1] = v
end
return {1, out}
"#,
    run: |db, k, _| {
        let mut out = vec![];
        for key in db.zmembers(&k[1])? {
            let Some(v) = db.hget(&k[0], &key)? else {
                return Err(ScriptError::Corrupt(k[1].clone()));
            };
            out.push(key);
            out.push(v);
        }
        ok(vec![bulk(out)])
    },
};

/// The number of keys: `KEYS` h.
pub static DICT_LEN: ScriptDef = ScriptDef {
    name: "dict_len",
    lua: "return {1, redis.call('HLEN', KEYS[1])}\n",
    run: |db, k, _| ok(vec![Resp::Int(db.hlen(&k[0])?)]),
};

/// Remove every key: `KEYS` h, o.
pub static DICT_CLEAR: ScriptDef = ScriptDef {
    name: "dict_clear",
    lua: r#"
redis.call('HLEN', KEYS[1])
redis.call('ZCARD', KEYS[2])
redis.call('DEL', KEYS[1], KEYS[2])
return {1}
"#,
    run: |db, k, _| {
        db.hlen(&k[0])?;
        db.zcard(&k[1])?;
        db.del(&k[0]);
        db.del(&k[1]);
        ok(vec![])
    },
};

/// Read a value: `KEYS` v. Replies `{1, value}`; `MISSING` if absent.
pub static VALUE_GET: ScriptDef = ScriptDef {
    name: "value_get",
    lua: r#"
local v = redis.call('GET', KEYS[1])
if not v then return redis.error_reply('MISSING ' .. KEYS[1]) end
return {1, v}
"#,
    run: |db, k, _| match db.get(&k[0])? {
        None => Err(ScriptError::Missing(k[0].clone())),
        Some(v) => ok(vec![Resp::Bulk(v)]),
    },
};

/// Write a value: `KEYS` v; `ARGV` value.
pub static VALUE_SET: ScriptDef = ScriptDef {
    name: "value_set",
    lua: r#"
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('STRLEN', KEYS[1]) end
redis.call('SET', KEYS[1], ARGV[1])
return {1}
"#,
    run: |db, k, a| {
        db.get(&k[0])?;
        db.set(&k[0], &a[0], None, false);
        ok(vec![])
    },
};

/// Remove and answer the pair inserted last: `KEYS` h, o. Replies `{1, k, v}`
/// or `{0, 2, 0}` (empty).
pub static DICT_POPITEM: ScriptDef = ScriptDef {
    name: "dict_popitem",
    lua: r#"
local last = redis.call('ZRANGE', KEYS[2], -1, -1)
if #last == 0 then return {0, 2, 0} end
local v = redis.call('HGET', KEYS[1], last[1])
if not v then return redis.error_reply('CORRUPT ' .. KEYS[2]) end
redis.call('HDEL', KEYS[1], last[1])
redis.call('ZREM', KEYS[2], last[1])
return {1, last[1], v}
"#,
    run: |db, k, _| {
        let Some(last) = db.zmembers(&k[1])?.pop() else {
            return refuse(KEY_NOT_FOUND, 0);
        };
        let Some(v) = db.hget(&k[0], &last)? else {
            return Err(ScriptError::Corrupt(k[1].clone()));
        };
        db.hdel(&k[0], &last)?;
        db.zrem(&k[1], &last)?;
        ok(vec![Resp::Bulk(last), Resp::Bulk(v)])
    },
};

/// Iteration: the first key inserted after position `ARGV[1]` (`-1`: the
/// first key), if the dict still has `ARGV[2]` keys: `KEYS` h, o. Replies
/// `{1, position, key}`, `{1}` at the end, or `{0, 6, 0}` (it changed size).
pub static DICT_KEY_AFTER: ScriptDef = ScriptDef {
    name: "dict_key_after",
    lua: r#"
if redis.call('HLEN', KEYS[1]) ~= tonumber(ARGV[2]) then return {0, 6, 0} end
local next = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. ARGV[1], '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
if #next == 0 then return {1} end
return {1, tonumber(next[2]), next[1]}
"#,
    run: |db, k, a| {
        if db.hlen(&k[0])? != arg_int(a, 1) {
            return refuse(CHANGED_SIZE, 0);
        }
        let after = arg_int(a, 0);
        let next = db
            .zscored(&k[1])?
            .into_iter()
            .find(|(_, score)| *score > after);
        match next {
            None => ok(vec![]),
            Some((key, score)) => ok(vec![Resp::Int(score), Resp::Bulk(key)]),
        }
    },
};

/// Is the manager queue full: `KEYS` items, maxsize. Replies `{1, 0|1}`.
pub static QUEUE_FULL: ScriptDef = ScriptDef {
    name: "queue_full",
    lua: concat!(
        lua_int!(),
        r#"
local max = int(KEYS[2]) or 0
if max > 0 and redis.call('LLEN', KEYS[1]) >= max then return {1, 1} end
return {1, 0}
"#
    ),
    run: |db, k, _| {
        let max = db.get_int(&k[1])?.unwrap_or(0);
        let full = max > 0 && db.llen(&k[0])? >= max;
        ok(vec![Resp::Int(full as i64)])
    },
};

/// The kind codes of object ids: an id is `n * 32 + code` (`n` from the
/// namespace's counter), so an id alone says which kind of object it names.
pub const KIND_CODES: &[(Kind, u64)] = &[
    (Kind::List, 1),
    (Kind::Dict, 2),
    (Kind::Value, 3),
    (Kind::Namespace, 4),
    (Kind::Lock, 5),
    (Kind::RLock, 6),
    (Kind::Semaphore, 7),
    (Kind::Event, 8),
    (Kind::Queue, 9),
    (Kind::Barrier, 10),
    (Kind::JoinableQueue, 11),
    (Kind::Condition, 12),
];

/// The code of a kind, if the Redis backend has it.
pub fn kind_code(k: Kind) -> Option<u64> {
    KIND_CODES.iter().find(|(x, _)| *x == k).map(|(_, c)| *c)
}

/// The kind an id names, if any.
///
/// ```
/// use procshare_model::manager::Kind;
/// use procshare_model::redis::objects::{id_kind, kind_code};
/// let id = 7 * 32 + kind_code(Kind::Dict).unwrap();
/// assert_eq!(id_kind(id), Some(Kind::Dict));
/// assert_eq!(id_kind(7 * 32), None);
/// ```
pub fn id_kind(id: u64) -> Option<Kind> {
    KIND_CODES
        .iter()
        .find(|(_, c)| *c == id % 32)
        .map(|(k, _)| *k)
}

/// The key prefix of object `id` under `namespace`: `{namespace}:{kind}:{id}`.
pub fn object_prefix(namespace: &str, id: u64) -> String {
    let kind = id_kind(id).map_or("unknown".to_string(), |k| format!("{k:?}").to_lowercase());
    format!("{namespace}:{kind}:{id}")
}

/// New id: `KEYS` the namespace's counter; `ARGV` kind code. Replies `{1, id}`.
pub static OBJ_NEW: ScriptDef = ScriptDef {
    name: "obj_new",
    lua: r#"
return {1, redis.call('INCR', KEYS[1]) * 32 + tonumber(ARGV[1])}
"#,
    run: |db, k, a| {
        let n = db.incrby(&k[0], 1)?;
        ok(vec![Resp::Int(n * 32 + arg_int(a, 0))])
    },
};

/// The id registered under a name, registering a new one of the kind given
/// if absent: `KEYS` the namespace's names (hash), counter; `ARGV` name, kind
/// code. Replies `{1, id}` (its kind is the id's: the caller checks it).
pub static OBJ_NAMED: ScriptDef = ScriptDef {
    name: "obj_named",
    lua: r#"
local id = redis.call('HGET', KEYS[1], ARGV[1])
if id then
  if not string.match(id, '^%d+$') then return redis.error_reply('NOTINT ' .. KEYS[1]) end
  return {1, tonumber(id)}
end
id = redis.call('INCR', KEYS[2]) * 32 + tonumber(ARGV[2])
redis.call('HSET', KEYS[1], ARGV[1], id)
return {1, id}
"#,
    run: |db, k, a| {
        if let Some(id) = db.hget(&k[0], &a[0])? {
            return match super::db::parse_int(&id).filter(|i| *i >= 0) {
                Some(i) => ok(vec![Resp::Int(i)]),
                None => Err(ScriptError::NotInteger(k[0].clone())),
            };
        }
        let id = db.incrby(&k[1], 1)? * 32 + arg_int(a, 1);
        db.hset(&k[0], &a[0], id.to_string().as_bytes())?;
        ok(vec![Resp::Int(id)])
    },
};

/// The data scripts, for the real store and the differential test.
pub static SCRIPTS: &[&ScriptDef] = &[
    &LIST_PUSH,
    &LIST_GET,
    &LIST_SET,
    &LIST_DEL,
    &LIST_INSERT,
    &LIST_REMOVE,
    &LIST_FIND,
    &LIST_REVERSE,
    &LIST_SNAPSHOT,
    &LIST_RANGE,
    &LIST_SPLICE,
    &LIST_LEN,
    &DICT_GET,
    &DICT_SET,
    &DICT_REMOVE,
    &DICT_SETDEFAULT,
    &DICT_ITEMS,
    &DICT_LEN,
    &DICT_CLEAR,
    &VALUE_GET,
    &VALUE_SET,
    &OBJ_NEW,
    &OBJ_NAMED,
    &DICT_POPITEM,
    &DICT_KEY_AFTER,
    &QUEUE_FULL,
    &LIST_REPEAT,
];

/// A `u64` argument clamped to what the scripts read (`i64`).
fn u(i: u64) -> Vec<u8> {
    i.min(i64::MAX as u64).to_string().into_bytes()
}

fn s(i: i64) -> Vec<u8> {
    i.to_string().into_bytes()
}

/// An unsigned index as Python's (past `i64::MAX`: out of range of every list).
fn signed(i: u64) -> i64 {
    i64::try_from(i).unwrap_or(i64::MAX)
}

/// The one script that performs `op` on the data object (list, dict, value,
/// namespace) whose keys start with `p`, or `None` if the Redis backend does
/// not have that operation for that kind (the caller answers
/// [`OpError::BadRequest`]).
pub fn data_call(kind: Kind, p: &str, op: &Op) -> Option<Call> {
    let list = || vec![p.to_string(), format!("{p}:ver")];
    let h = || vec![format!("{p}:h")];
    let ho = || vec![format!("{p}:h"), format!("{p}:o")];
    let hon = || vec![format!("{p}:h"), format!("{p}:o"), format!("{p}:n")];
    let c = |d: &'static ScriptDef, keys: Vec<String>, args: Vec<Vec<u8>>| {
        Some(Call::new(d, keys, args))
    };
    match (kind, op) {
        (Kind::List, Op::Append(x)) => c(&LIST_PUSH, list(), vec![x.clone()]),
        (Kind::List, Op::Extend(xs)) => c(&LIST_PUSH, list(), xs.clone()),
        (Kind::List, Op::GetAt(i)) => c(&LIST_GET, list(), vec![s(*i)]),
        (Kind::List, Op::Get(i)) => c(&LIST_GET, list(), vec![s(signed(*i))]),
        (Kind::List, Op::SetAt(i, x)) => c(&LIST_SET, list(), vec![s(*i), x.clone()]),
        (Kind::List, Op::Set(i, x)) => c(&LIST_SET, list(), vec![s(signed(*i)), x.clone()]),
        (Kind::List, Op::DeleteAt(i) | Op::PopAt(i)) => c(&LIST_DEL, list(), vec![s(*i)]),
        (Kind::List, Op::Delete(i) | Op::Pop(Some(i))) => c(&LIST_DEL, list(), vec![s(signed(*i))]),
        (Kind::List, Op::Pop(None)) => c(&LIST_DEL, list(), vec![s(-1)]),
        (Kind::List, Op::InsertAt(i, x)) => c(&LIST_INSERT, list(), vec![s(*i), x.clone()]),
        (Kind::List, Op::Insert(i, x)) => c(&LIST_INSERT, list(), vec![s(signed(*i)), x.clone()]),
        (Kind::List, Op::Remove(x)) => c(&LIST_REMOVE, list(), vec![x.clone()]),
        (Kind::List, Op::Index(x)) => c(&LIST_FIND, list(), vec![x.clone(), b"i".to_vec()]),
        (Kind::List, Op::Count(x)) => c(&LIST_FIND, list(), vec![x.clone(), b"c".to_vec()]),
        (Kind::List, Op::Reverse) => c(&LIST_REVERSE, list(), vec![]),
        (Kind::List, Op::Snapshot) => c(&LIST_SNAPSHOT, list(), vec![]),
        (Kind::List, Op::GetRange(a, b)) => c(&LIST_RANGE, list(), vec![u(*a), u(*b)]),
        (Kind::List, Op::SetRange(a, b, xs)) => {
            let mut args = vec![u(*a), u(*b), vec![]];
            args.extend(xs.iter().cloned());
            c(&LIST_SPLICE, list(), args)
        }
        (Kind::List, Op::ReplaceIf(ver, xs)) => {
            let mut args = vec![u(0), u(u64::MAX), ver.to_string().into_bytes()];
            args.extend(xs.iter().cloned());
            c(&LIST_SPLICE, list(), args)
        }
        (Kind::List, Op::Clear) => c(&LIST_SPLICE, list(), vec![u(0), u(u64::MAX), vec![]]),
        (Kind::List, Op::Len) => c(&LIST_LEN, list(), vec![]),
        (Kind::List, Op::ListRepeat(n)) => c(
            &LIST_REPEAT,
            list(),
            vec![u(*n), u(crate::manager::REPEAT_LIMIT)],
        ),
        (Kind::Dict, Op::DictGet(k) | Op::DictItem(k) | Op::DictContains(k)) => {
            c(&DICT_GET, h(), vec![k.clone()])
        }
        (Kind::Dict, Op::DictInsert(k, v)) => c(&DICT_SET, hon(), vec![k.clone(), v.clone()]),
        (Kind::Dict, Op::DictUpdate(pairs)) => c(
            &DICT_SET,
            hon(),
            pairs
                .iter()
                .flat_map(|(k, v)| [k.clone(), v.clone()])
                .collect(),
        ),
        (Kind::Dict, Op::DictRemove(k) | Op::DictPop(k)) => c(&DICT_REMOVE, ho(), vec![k.clone()]),
        (Kind::Dict, Op::DictSetDefault(k, d)) => {
            c(&DICT_SETDEFAULT, hon(), vec![k.clone(), d.clone()])
        }
        (Kind::Dict, Op::DictKeys | Op::DictValues | Op::DictItems) => c(&DICT_ITEMS, ho(), vec![]),
        (Kind::Dict | Kind::Namespace, Op::Len) => c(&DICT_LEN, h(), vec![]),
        (Kind::Dict, Op::Clear) => c(&DICT_CLEAR, ho(), vec![]),
        (Kind::Dict, Op::DictPopItem) => c(&DICT_POPITEM, ho(), vec![]),
        (Kind::Dict, Op::DictKeyAfter(after, len)) => {
            c(&DICT_KEY_AFTER, ho(), vec![after.map_or(s(-1), u), u(*len)])
        }
        // Computed from a read of the dict (it is not changed).
        (Kind::Dict, Op::DictOr(_)) => c(&DICT_ITEMS, ho(), vec![]),
        (Kind::Dict, Op::DictFromKeys(..)) => c(&DICT_LEN, h(), vec![]),
        (Kind::Value, Op::ValueGet) => c(&VALUE_GET, vec![p.to_string()], vec![]),
        (Kind::Value, Op::ValueSet(x)) => c(&VALUE_SET, vec![p.to_string()], vec![x.clone()]),
        (Kind::Namespace, Op::NsGet(n)) => c(&DICT_GET, h(), vec![n.as_bytes().to_vec()]),
        (Kind::Namespace, Op::NsSet(n, v)) => {
            c(&DICT_SET, hon(), vec![n.as_bytes().to_vec(), v.clone()])
        }
        (Kind::Namespace, Op::NsDel(n)) => c(&DICT_REMOVE, ho(), vec![n.as_bytes().to_vec()]),
        (Kind::Namespace, Op::NsItems) => c(&DICT_ITEMS, ho(), vec![]),
        _ => None,
    }
}

type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// The local manager's answer to `op` from the reply of its script
/// ([`data_call`]): the same [`Response`] (or refusal) the local server gives.
pub fn data_reply(op: &Op, r: Resp) -> Result<Response, BadReply> {
    let bad = |r: &Resp| BadReply {
        script: "data reply",
        reply: r.clone(),
    };
    let Resp::Array(v) = &r else {
        return Err(bad(&r));
    };
    let int = |i: usize| v.get(i).and_then(Resp::int).ok_or_else(|| bad(&r));
    let bytes = |i: usize| match v.get(i) {
        Some(Resp::Bulk(b)) => Ok(b.clone()),
        _ => Err(bad(&r)),
    };
    let list = |i: usize| match v.get(i) {
        Some(Resp::Array(a)) => a
            .iter()
            .map(|x| match x {
                Resp::Bulk(b) => Ok(b.clone()),
                _ => Err(bad(&r)),
            })
            .collect::<Result<Vec<_>, _>>(),
        _ => Err(bad(&r)),
    };
    let pairs = |i: usize| -> Result<Pairs, BadReply> {
        let l = list(i)?;
        if l.len() % 2 != 0 {
            return Err(bad(&r));
        }
        Ok(l.chunks(2).map(|p| (p[0].clone(), p[1].clone())).collect())
    };
    let count = |i: usize| u64::try_from(int(i)?).map_err(|_| bad(&r));
    if int(0)? == 0 {
        let code = int(1)?;
        let n = count(2)?;
        let e = match (code, op) {
            (OUT_OF_RANGE, Op::Pop(None)) => OpError::IndexOutOfRange { index: 0, len: n },
            (OUT_OF_RANGE, Op::GetAt(i) | Op::SetAt(i, _) | Op::DeleteAt(i) | Op::PopAt(i)) => {
                match u64::try_from(*i) {
                    Ok(index) => OpError::IndexOutOfRange { index, len: n },
                    Err(_) => OpError::SignedIndexOutOfRange { index: *i, len: n },
                }
            }
            (OUT_OF_RANGE, Op::Get(i) | Op::Set(i, _) | Op::Delete(i) | Op::Pop(Some(i))) => {
                OpError::IndexOutOfRange { index: *i, len: n }
            }
            (KEY_NOT_FOUND, Op::DictGet(_) | Op::DictRemove(_)) => {
                return Ok(Response::MaybeItem(None))
            }
            (KEY_NOT_FOUND, Op::DictContains(_)) => return Ok(Response::Bool(false)),
            (KEY_NOT_FOUND, Op::NsGet(n) | Op::NsDel(n)) => OpError::AttributeNotFound(n.clone()),
            (KEY_NOT_FOUND, _) => OpError::KeyNotFound,
            (NOT_IN_LIST, _) => OpError::ValueNotInList,
            (CONFLICT, _) => OpError::Conflict,
            (CHANGED_SIZE, _) => OpError::ChangedSize,
            (TOO_LARGE, Op::ListRepeat(n)) => OpError::BadRequest(format!(
                "l *= {n}: the list would hold more than {} bytes",
                crate::manager::REPEAT_LIMIT
            )),
            _ => return Err(bad(&r)),
        };
        return Ok(Response::Err(e));
    }
    if int(0)? != 1 {
        return Err(bad(&r));
    }
    Ok(match op {
        Op::GetAt(_)
        | Op::Get(_)
        | Op::DeleteAt(_)
        | Op::PopAt(_)
        | Op::Delete(_)
        | Op::Pop(_)
        | Op::DictItem(_)
        | Op::DictPop(_)
        | Op::DictSetDefault(..)
        | Op::ValueGet
        | Op::NsGet(_) => Response::Item(bytes(1)?),
        Op::DictGet(_) | Op::DictRemove(_) => Response::MaybeItem(Some(bytes(1)?)),
        Op::DictInsert(..) => Response::MaybeItem(if v.len() > 1 { Some(bytes(1)?) } else { None }),
        Op::DictContains(_) => Response::Bool(true),
        Op::Index(_) | Op::Count(_) | Op::Len => Response::Usize(count(1)?),
        Op::Snapshot => Response::Versioned(count(1)?, list(2)?),
        Op::GetRange(..) => Response::Items(list(1)?),
        Op::DictKeys => Response::Items(pairs(1)?.into_iter().map(|p| p.0).collect()),
        Op::DictValues => Response::Items(pairs(1)?.into_iter().map(|p| p.1).collect()),
        Op::DictItems => Response::Pairs(pairs(1)?),
        Op::DictPopItem => Response::Pairs(vec![(bytes(1)?, bytes(2)?)]),
        Op::DictKeyAfter(..) => Response::Next(if v.len() == 1 {
            None
        } else {
            Some((count(1)?, bytes(2)?))
        }),
        Op::DictOr(more) => {
            let mut out = pairs(1)?;
            for (k, x) in more {
                match out.iter_mut().find(|(y, _)| y == k) {
                    Some(slot) => slot.1 = x.clone(),
                    None => out.push((k.clone(), x.clone())),
                }
            }
            Response::Pairs(out)
        }
        Op::DictFromKeys(keys, x) => {
            let mut out: Pairs = vec![];
            for k in keys {
                if !out.iter().any(|(y, _)| y == k) {
                    out.push((k.clone(), x.clone()));
                }
            }
            Response::Pairs(out)
        }
        Op::NsItems => {
            let mut attrs = pairs(1)?
                .into_iter()
                .map(|(k, v)| Ok((String::from_utf8(k).map_err(|_| bad(&r))?, v)))
                .collect::<Result<Vec<_>, BadReply>>()?;
            attrs.sort();
            Response::Attrs(attrs)
        }
        _ => Response::Ok,
    })
}

/// Run `op` on the data object at `p` in a model keyspace, as the Redis
/// backend does on the server (one script, then its reply as a
/// [`Response`]). Errors of the keyspace (a key of the wrong type) are
/// [`Response::Err`] with [`OpError::BadRequest`].
///
/// ```
/// use procshare_model::manager::{Kind, Op, Response};
/// use procshare_model::redis::{objects::run_data_op, Db};
/// let mut db = Db::new();
/// run_data_op(&mut db, Kind::List, "ns:list:33", &Op::Append(vec![7]));
/// assert_eq!(run_data_op(&mut db, Kind::List, "ns:list:33", &Op::Len), Response::Usize(1));
/// ```
pub fn run_data_op(db: &mut Db, kind: Kind, p: &str, op: &Op) -> Response {
    let Some(call) = data_call(kind, p, op) else {
        return Response::Err(OpError::BadRequest(format!("{op:?} on a {kind:?}")));
    };
    match call.run_on(db) {
        Ok(r) => {
            data_reply(op, r).unwrap_or_else(|e| Response::Err(OpError::BadRequest(e.to_string())))
        }
        Err(e) => Response::Err(OpError::BadRequest(e.to_string())),
    }
}
