//! The model of a Redis server's data: the few commands the protocols' scripts
//! use, with Redis's semantics (missing keys, wrong types, integer parsing,
//! key expiry against a clock), so that each script's Rust text can be read
//! line by line against its Lua text.
//!
//! Time is the model's: [`Db::now`] in milliseconds, advanced by the store
//! that owns the `Db` (the checks' clock), never read from the OS. A key whose
//! expiry time is at or before `now` does not exist, as in Redis.

use std::collections::{BTreeMap, VecDeque};

/// A reply as Redis gives it (RESP): what a script returns, in both stores.
/// A Lua `false` is [`Resp::Nil`], a Lua number an [`Resp::Int`] (truncated),
/// a Lua string a [`Resp::Bulk`], a Lua table an [`Resp::Array`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resp {
    /// Nil (a missing value, Lua `false`).
    Nil,
    /// An integer.
    Int(i64),
    /// A byte string.
    Bulk(Vec<u8>),
    /// An array.
    Array(Vec<Resp>),
}

impl Resp {
    /// The integer this reply holds (an integer, or a byte string of digits).
    ///
    /// ```
    /// use procshare_model::redis::Resp;
    /// assert_eq!(Resp::Int(3).int(), Some(3));
    /// assert_eq!(Resp::Bulk(b"42".to_vec()).int(), Some(42));
    /// assert_eq!(Resp::Nil.int(), None);
    /// ```
    pub fn int(&self) -> Option<i64> {
        match self {
            Resp::Int(i) => Some(*i),
            Resp::Bulk(b) => std::str::from_utf8(b).ok()?.parse().ok(),
            _ => None,
        }
    }
}

/// A command refused inside a script. Redis aborts the script there (the
/// writes it made before stay, as in Redis) and the caller gets the error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptError {
    /// `WRONGTYPE`: the key holds another kind of value (the namespace was
    /// used by something else).
    WrongType(String),
    /// `ERR value is not an integer`: a counter key holds something else.
    NotInteger(String),
    /// A key the protocol needs was never made (the object was not created,
    /// or the server was flushed or restarted since).
    Missing(String),
    /// A key holds a value the protocol never writes there (a lease without
    /// an expiry, a negative count).
    Corrupt(String),
}

impl std::fmt::Display for ScriptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScriptError::WrongType(k) => {
                write!(f, "key {k:?} holds a value of the wrong type")
            }
            ScriptError::NotInteger(k) => write!(f, "key {k:?} does not hold an integer"),
            ScriptError::Corrupt(k) => {
                write!(f, "key {k:?} holds a value this object never stores")
            }
            ScriptError::Missing(k) => write!(
                f,
                "key {k:?} is missing (the object was not created here, or the server lost it)"
            ),
        }
    }
}

impl std::error::Error for ScriptError {}

#[derive(Debug, Clone)]
enum Val {
    Str(Vec<u8>),
    List(VecDeque<Vec<u8>>),
    /// member -> score (integer milliseconds in every use here).
    ZSet(BTreeMap<Vec<u8>, i64>),
    /// field -> value (Redis keeps no order the scripts rely on).
    Hash(BTreeMap<Vec<u8>, Vec<u8>>),
}

/// The model's Redis keyspace.
#[derive(Debug, Clone, Default)]
pub struct Db {
    /// The server's clock, in milliseconds.
    pub now: u64,
    keys: BTreeMap<String, (Val, Option<u64>)>,
    /// Channels published to by the running script (the store delivers them).
    pub published: Vec<String>,
    /// The seeded bug the scripts run with (checks only; 0: none).
    pub mutant: u32,
}

type R<T> = Result<T, ScriptError>;

impl Db {
    /// An empty keyspace at time 0.
    pub fn new() -> Db {
        Db::default()
    }

    fn live(&mut self, k: &str) -> Option<&mut (Val, Option<u64>)> {
        let now = self.now;
        if matches!(self.keys.get(k), Some((_, Some(t))) if *t <= now) {
            self.keys.remove(k);
        }
        self.keys.get_mut(k)
    }

    /// The keys that exist now (for the checks' assertions).
    pub fn key_names(&mut self) -> Vec<String> {
        let now = self.now;
        self.keys.retain(|_, (_, t)| t.map_or(true, |t| t > now));
        self.keys.keys().cloned().collect()
    }

    /// `TIME`, as the scripts read it: milliseconds.
    pub fn time_ms(&self) -> i64 {
        self.now as i64
    }

    /// `EXISTS k`.
    pub fn exists(&mut self, k: &str) -> bool {
        self.live(k).is_some()
    }

    /// `GET k`.
    pub fn get(&mut self, k: &str) -> R<Option<Vec<u8>>> {
        match self.live(k) {
            None => Ok(None),
            Some((Val::Str(s), _)) => Ok(Some(s.clone())),
            Some(_) => Err(ScriptError::WrongType(k.into())),
        }
    }

    /// `GET k` read as an integer (`tonumber` in the Lua text); a missing key is `None`.
    pub fn get_int(&mut self, k: &str) -> R<Option<i64>> {
        match self.get(k)? {
            None => Ok(None),
            Some(b) => parse_int(&b)
                .map(Some)
                .ok_or_else(|| ScriptError::NotInteger(k.into())),
        }
    }

    /// `SET k v [PX ms] [NX]`: returns whether it was set.
    pub fn set(&mut self, k: &str, v: &[u8], px: Option<u64>, nx: bool) -> bool {
        if nx && self.exists(k) {
            return false;
        }
        let exp = px.map(|ms| self.now + ms);
        self.keys.insert(k.into(), (Val::Str(v.to_vec()), exp));
        true
    }

    /// `INCRBY k n`.
    pub fn incrby(&mut self, k: &str, n: i64) -> R<i64> {
        let (v, exp) = match self.live(k) {
            None => (0, None),
            Some((Val::Str(s), e)) => (
                parse_int(s).ok_or_else(|| ScriptError::NotInteger(k.into()))?,
                *e,
            ),
            Some(_) => return Err(ScriptError::WrongType(k.into())),
        };
        let n = v + n;
        self.keys
            .insert(k.into(), (Val::Str(n.to_string().into_bytes()), exp));
        Ok(n)
    }

    /// `DEL k`: returns whether it existed.
    pub fn del(&mut self, k: &str) -> bool {
        let had = self.exists(k);
        self.keys.remove(k);
        had
    }

    /// `PTTL k`: -2 missing, -1 no expiry, else milliseconds left.
    pub fn pttl(&mut self, k: &str) -> i64 {
        let now = self.now;
        match self.live(k) {
            None => -2,
            Some((_, None)) => -1,
            Some((_, Some(t))) => (*t - now) as i64,
        }
    }

    /// `PEXPIRE k ms`: returns whether the key exists.
    pub fn pexpire(&mut self, k: &str, ms: u64) -> bool {
        let now = self.now;
        match self.live(k) {
            None => false,
            Some((_, e)) => {
                *e = Some(now + ms);
                true
            }
        }
    }

    fn list(&mut self, k: &str) -> R<Option<&mut VecDeque<Vec<u8>>>> {
        match self.live(k) {
            None => Ok(None),
            Some((Val::List(l), _)) => Ok(Some(l)),
            Some(_) => Err(ScriptError::WrongType(k.into())),
        }
    }

    fn list_or_new(&mut self, k: &str) -> R<&mut VecDeque<Vec<u8>>> {
        if self.list(k)?.is_none() {
            self.keys
                .insert(k.into(), (Val::List(VecDeque::new()), None));
        }
        Ok(self.list(k)?.expect("just made"))
    }

    /// Drop `k` if it is an empty list or sorted set (Redis never keeps one).
    fn gc(&mut self, k: &str) {
        let empty = match self.keys.get(k) {
            Some((Val::List(l), _)) => l.is_empty(),
            Some((Val::ZSet(z), _)) => z.is_empty(),
            Some((Val::Hash(h), _)) => h.is_empty(),
            _ => false,
        };
        if empty {
            self.keys.remove(k);
        }
    }

    /// `RPUSH k v`: the new length.
    pub fn rpush(&mut self, k: &str, v: &[u8]) -> R<i64> {
        let l = self.list_or_new(k)?;
        l.push_back(v.to_vec());
        Ok(l.len() as i64)
    }

    /// `LLEN k`.
    pub fn llen(&mut self, k: &str) -> R<i64> {
        Ok(self.list(k)?.map_or(0, |l| l.len() as i64))
    }

    /// `LMOVE src dst LEFT|RIGHT LEFT|RIGHT` (`from_left`, `to_left`).
    pub fn lmove(
        &mut self,
        src: &str,
        dst: &str,
        from_left: bool,
        to_left: bool,
    ) -> R<Option<Vec<u8>>> {
        // Redis checks both keys' types before it moves anything.
        self.list(dst)?;
        let v = match self.list(src)? {
            None => return Ok(None),
            Some(l) => {
                if from_left {
                    l.pop_front()
                } else {
                    l.pop_back()
                }
            }
        };
        self.gc(src);
        let Some(v) = v else { return Ok(None) };
        let d = self.list_or_new(dst)?;
        if to_left {
            d.push_front(v.clone());
        } else {
            d.push_back(v.clone());
        }
        Ok(Some(v))
    }

    /// `LPOP k`.
    pub fn lpop(&mut self, k: &str) -> R<Option<Vec<u8>>> {
        let v = self.list(k)?.and_then(|l| l.pop_front());
        self.gc(k);
        Ok(v)
    }

    /// `LPUSH k v`: the new length.
    pub fn lpush(&mut self, k: &str, v: &[u8]) -> R<i64> {
        let l = self.list_or_new(k)?;
        l.push_front(v.to_vec());
        Ok(l.len() as i64)
    }

    /// `RPOP k`.
    pub fn rpop(&mut self, k: &str) -> R<Option<Vec<u8>>> {
        let v = self.list(k)?.and_then(|l| l.pop_back());
        self.gc(k);
        Ok(v)
    }

    /// Redis's resolution of a range `start..=stop` (negative: from the end)
    /// against a list of `n` items, as `LRANGE`/`LTRIM` do: `None` if empty.
    fn span(start: i64, stop: i64, n: i64) -> Option<(usize, usize)> {
        let s = if start < 0 { (start + n).max(0) } else { start };
        let e = if stop < 0 { stop + n } else { stop.min(n - 1) };
        (s <= e && s < n && e >= 0).then_some((s as usize, e as usize))
    }

    /// `LRANGE k start stop`.
    pub fn lrange(&mut self, k: &str, start: i64, stop: i64) -> R<Vec<Vec<u8>>> {
        Ok(match self.list(k)? {
            None => vec![],
            Some(l) => match Self::span(start, stop, l.len() as i64) {
                None => vec![],
                Some((s, e)) => l.range(s..=e).cloned().collect(),
            },
        })
    }

    /// `LTRIM k start stop`.
    pub fn ltrim(&mut self, k: &str, start: i64, stop: i64) -> R<()> {
        if let Some(l) = self.list(k)? {
            match Self::span(start, stop, l.len() as i64) {
                None => l.clear(),
                Some((s, e)) => {
                    l.truncate(e + 1);
                    l.drain(..s);
                }
            }
        }
        self.gc(k);
        Ok(())
    }

    /// `LINDEX k i` (`0 <= i`).
    pub fn lindex(&mut self, k: &str, i: i64) -> R<Option<Vec<u8>>> {
        Ok(self
            .list(k)?
            .and_then(|l| usize::try_from(i).ok().and_then(|i| l.get(i).cloned())))
    }

    /// `LSET k i v` (`0 <= i < LLEN`, which the scripts check first).
    pub fn lset(&mut self, k: &str, i: i64, v: &[u8]) -> R<()> {
        let slot = self
            .list(k)?
            .and_then(|l| usize::try_from(i).ok().and_then(|i| l.get_mut(i)));
        match slot {
            Some(s) => {
                *s = v.to_vec();
                Ok(())
            }
            None => Err(ScriptError::Missing(k.into())),
        }
    }

    /// `ZCOUNT k -inf max`.
    pub fn zcount_upto(&mut self, k: &str, max: i64) -> R<i64> {
        Ok(self.zrange_upto(k, max)?.len() as i64)
    }

    /// `ZRANGE k 0 -1 WITHSCORES`: every member and its score, by score.
    pub fn zscored(&mut self, k: &str) -> R<Vec<(Vec<u8>, i64)>> {
        self.zsorted(k)
    }

    /// `ZRANGE k 0 -1`: every member, by score.
    pub fn zmembers(&mut self, k: &str) -> R<Vec<Vec<u8>>> {
        Ok(self.zsorted(k)?.into_iter().map(|(m, _)| m).collect())
    }

    fn hash(&mut self, k: &str) -> R<Option<&mut BTreeMap<Vec<u8>, Vec<u8>>>> {
        match self.live(k) {
            None => Ok(None),
            Some((Val::Hash(h), _)) => Ok(Some(h)),
            Some(_) => Err(ScriptError::WrongType(k.into())),
        }
    }

    /// `HGET k f`.
    pub fn hget(&mut self, k: &str, f: &[u8]) -> R<Option<Vec<u8>>> {
        Ok(self.hash(k)?.and_then(|h| h.get(f).cloned()))
    }

    /// `HSET k f v`: whether the field is new.
    pub fn hset(&mut self, k: &str, f: &[u8], v: &[u8]) -> R<bool> {
        if self.hash(k)?.is_none() {
            self.keys
                .insert(k.into(), (Val::Hash(BTreeMap::new()), None));
        }
        let h = self.hash(k)?.expect("just made");
        Ok(h.insert(f.to_vec(), v.to_vec()).is_none())
    }

    /// `HDEL k f`: whether it was there.
    pub fn hdel(&mut self, k: &str, f: &[u8]) -> R<bool> {
        let had = self.hash(k)?.is_some_and(|h| h.remove(f).is_some());
        self.gc(k);
        Ok(had)
    }

    /// `HLEN k`.
    pub fn hlen(&mut self, k: &str) -> R<i64> {
        Ok(self.hash(k)?.map_or(0, |h| h.len() as i64))
    }

    /// `HKEYS k` (the model's order: by field; Redis's is its own, so the
    /// scripts never rely on it).
    pub fn hkeys(&mut self, k: &str) -> R<Vec<Vec<u8>>> {
        Ok(self
            .hash(k)?
            .map_or(vec![], |h| h.keys().cloned().collect()))
    }

    /// `LREM k 1 v`: how many were removed (0 or 1).
    pub fn lrem1(&mut self, k: &str, v: &[u8]) -> R<i64> {
        let n = match self.list(k)? {
            None => 0,
            Some(l) => match l.iter().position(|x| x == v) {
                Some(i) => {
                    l.remove(i);
                    1
                }
                None => 0,
            },
        };
        self.gc(k);
        Ok(n)
    }

    fn zset(&mut self, k: &str) -> R<Option<&mut BTreeMap<Vec<u8>, i64>>> {
        match self.live(k) {
            None => Ok(None),
            Some((Val::ZSet(z), _)) => Ok(Some(z)),
            Some(_) => Err(ScriptError::WrongType(k.into())),
        }
    }

    /// `ZADD k [XX] score member`: whether the member is new.
    pub fn zadd(&mut self, k: &str, score: i64, m: &[u8], xx: bool) -> R<bool> {
        if self.zset(k)?.is_none() {
            if xx {
                return Ok(false);
            }
            self.keys
                .insert(k.into(), (Val::ZSet(BTreeMap::new()), None));
        }
        let z = self.zset(k)?.expect("just made");
        if xx && !z.contains_key(m) {
            return Ok(false);
        }
        Ok(z.insert(m.to_vec(), score).is_none())
    }

    /// `ZSCORE k m`.
    pub fn zscore(&mut self, k: &str, m: &[u8]) -> R<Option<i64>> {
        Ok(self.zset(k)?.and_then(|z| z.get(m).copied()))
    }

    /// `ZREM k m`: whether it was there.
    pub fn zrem(&mut self, k: &str, m: &[u8]) -> R<bool> {
        let had = self.zset(k)?.is_some_and(|z| z.remove(m).is_some());
        self.gc(k);
        Ok(had)
    }

    /// `ZCARD k`.
    pub fn zcard(&mut self, k: &str) -> R<i64> {
        Ok(self.zset(k)?.map_or(0, |z| z.len() as i64))
    }

    /// `ZRANGEBYSCORE k -inf max`: members by score, then member (Redis's order).
    pub fn zrange_upto(&mut self, k: &str, max: i64) -> R<Vec<Vec<u8>>> {
        Ok(self
            .zsorted(k)?
            .into_iter()
            .filter(|(_, s)| *s <= max)
            .map(|(m, _)| m)
            .collect())
    }

    /// `ZRANGE k 0 0 WITHSCORES`: the lowest-scored member and its score.
    pub fn zfirst(&mut self, k: &str) -> R<Option<(Vec<u8>, i64)>> {
        Ok(self.zsorted(k)?.into_iter().next())
    }

    fn zsorted(&mut self, k: &str) -> R<Vec<(Vec<u8>, i64)>> {
        let mut v: Vec<(Vec<u8>, i64)> = match self.zset(k)? {
            None => vec![],
            Some(z) => z.iter().map(|(m, s)| (m.clone(), *s)).collect(),
        };
        v.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
        Ok(v)
    }

    /// `PUBLISH ch msg` (the message is not modelled: every message is a wake-up).
    pub fn publish(&mut self, ch: &str) {
        self.published.push(ch.into());
    }
}

/// A counter's value as the scripts read it (`^-?[0-9]+$`, within `i64`).
///
/// ```
/// use procshare_model::redis::parse_int;
/// assert_eq!(parse_int(b"-12"), Some(-12));
/// assert_eq!(parse_int(b"nan"), None);
/// assert_eq!(parse_int(b"+1"), None);
/// ```
pub fn parse_int(b: &[u8]) -> Option<i64> {
    let digits = b.strip_prefix(b"-").unwrap_or(b);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}
