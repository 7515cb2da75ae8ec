//! Integration tests and the seed scenarios of procshare.
// The examples (`../examples/*.rs`) are modules of this crate and also
// binaries that depend on it: both name it `procshare_tests`.
extern crate self as procshare_tests;

pub mod corpus;
pub mod history;
pub mod scenarios;
pub mod victim;
pub use scenarios::{say, seed000};

/// Silences procshare's "forking a multi-threaded process" warning for this
/// test process: test binaries run their tests on several threads, so every
/// fork would warn.
pub fn quiet() {
    procshare::set_fork_warning(false);
}

/// Calls `f` until it returns `true` or `limit` has passed; whether it did.
/// For outcomes that come a moment later (a server settling a connection
/// that ended): a bound that turns "never" into a failure, not a timing
/// assertion. `f` itself must make progress (a round trip, a yield).
pub fn eventually(limit: std::time::Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if f() {
            return true;
        }
    }
    f()
}

/// The next value `producer` puts into `q`, waiting as `get` does; if the
/// producer exits without having put it (it failed: a panic, an error
/// unwrapped), a failure that says so, instead of a wait forever. The
/// producer's puts all finish before it exits, so a value it put is in the
/// queue by the time its exit is seen.
pub fn get_from<T: serde::de::DeserializeOwned>(
    q: &procshare::Queue<T>,
    producer: &procshare::Process,
) -> T {
    use procshare::QueueError;
    loop {
        // The bound is how often the producer's exit is looked at, not a
        // timing assertion.
        match q.get_timeout(std::time::Duration::from_millis(50)) {
            Ok(v) => return v,
            Err(QueueError::Empty) => {
                if let Some(code) = producer.exitcode() {
                    return q.try_get().unwrap_or_else(|e| {
                        panic!("the producer exited ({code}) before putting the next value: {e}")
                    });
                }
            }
            Err(e) => panic!("get: {e}"),
        }
    }
}

/// The URL of the redis-server the Redis tests use (`PROCSHARE_REDIS_URL`,
/// which `.ci/run` sets), or `None` after saying plainly on the standard
/// error (not captured by the test harness) that `test` was skipped. When
/// `PROCSHARE_REQUIRE_REDIS` is set (CI), a missing server fails the test
/// instead: no silent skip there.
pub fn redis_url(test: &str) -> Option<String> {
    match std::env::var("PROCSHARE_REDIS_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            assert!(
                std::env::var_os("PROCSHARE_REQUIRE_REDIS").is_none(),
                "{test}: PROCSHARE_REQUIRE_REDIS is set but PROCSHARE_REDIS_URL is not"
            );
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: no PROCSHARE_REDIS_URL (start a redis-server and set it)"
            );
            None
        }
    }
}

/// A Redis namespace no other test (or run) uses, cleared when dropped.
#[derive(Debug)]
pub struct RedisNs {
    /// The server's URL.
    pub url: String,
    /// The namespace.
    pub name: String,
}

impl RedisNs {
    /// A fresh namespace for `test` on the server at `url`.
    pub fn new(url: &str, test: &str) -> RedisNs {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        RedisNs {
            url: url.to_string(),
            name: format!(
                "procshare-test:{test}:{}:{nanos}:{}",
                std::process::id(),
                N.fetch_add(1, Ordering::SeqCst)
            ),
        }
    }
}

impl Drop for RedisNs {
    fn drop(&mut self) {
        let _ = procshare::Manager::redis_clear(&self.url, &self.name);
    }
}
