//! The lease lock on Redis, held: the model's `LeaseLock` steps over a
//! [`RedisStore`], and a renewer thread that renews the lease every third of
//! it while the guard lives (so a holder that dies, or whose host is cut off,
//! loses the lock within one lease, and a live one keeps it).

use super::{RedisError, RedisStore};
use procshare_model::redis::lock::LeaseLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::Duration;

/// A lease lock on a Redis server (the object the manager's Redis lock
/// proxy will hold).
///
/// ```no_run
/// use procshare::internals::RedisLock;
/// use std::time::Duration;
/// # fn main() -> Result<(), procshare::RedisError> {
/// let l = RedisLock::new("redis://127.0.0.1:6379/", "ns:lock:a", Duration::from_secs(5))?;
/// let g = l.acquire(None)?.expect("no timeout");
/// // Writes to other resources carry g.token(), which they check.
/// assert!(g.release()?);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct RedisLock {
    store: Arc<RedisStore>,
    lock: LeaseLock,
    lease: Duration,
}

/// A held [`RedisLock`]: its fencing token, whether the previous holder lost
/// its lease, and a renewer thread. Dropping it releases the lock.
#[derive(Debug)]
pub struct RedisLockGuard {
    token: u64,
    owner_died: bool,
    lost: Arc<AtomicBool>,
    stop: Option<(Sender<()>, crate::sys::thread::Helper<()>)>,
    store: Arc<RedisStore>,
    lock: LeaseLock,
}

/// The timeout of each request of a lock (and of its renewer) to the server.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

impl RedisLock {
    /// The lock whose keys start with `prefix` on the server at `url`, held
    /// by leases of `lease` (at least 30 ms).
    pub fn new(url: &str, prefix: &str, lease: Duration) -> Result<RedisLock, RedisError> {
        let lease = lease.max(Duration::from_millis(30));
        Ok(RedisLock {
            store: Arc::new(RedisStore::open(url, REQUEST_TIMEOUT)?),
            lock: LeaseLock::new(prefix, lease.as_millis() as u64),
            lease,
        })
    }

    /// Acquire, waiting at most `timeout` (`None`: for ever). `Ok(None)`:
    /// timed out. The guard's renewer keeps the lease until it is dropped.
    pub fn acquire(&self, timeout: Option<Duration>) -> Result<Option<RedisLockGuard>, RedisError> {
        let ms = timeout.map(|t| t.as_millis().min(u64::MAX as u128) as u64);
        let Some(held) = self.lock.acquire(&*self.store, ms)? else {
            return Ok(None);
        };
        let lost = Arc::new(AtomicBool::new(false));
        let (tx, rx) = channel::<()>();
        let (url, lock, lost2, period) = (
            self.store.url().to_string(),
            self.lock.clone(),
            lost.clone(),
            self.lease / 3,
        );
        let token = held.token;
        // procshare's own thread start (see `sys::thread::spawn_helper`).
        let renewer = crate::sys::thread::spawn_helper("procshare-redis-renew".into(), move || {
            let store = RedisStore::open(&url, REQUEST_TIMEOUT);
            loop {
                match rx.recv_timeout(period) {
                    Err(RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
                // A renewal that fails to reach the server is tried
                // again next period; one that finds the lease gone ends.
                if let Ok(s) = &store {
                    if let Ok(false) = lock.renew(s, token) {
                        lost2.store(true, Ordering::SeqCst);
                        return;
                    }
                }
            }
        })
        .map_err(|e| RedisError::Down {
            url: self.store.url().to_string(),
            source: Box::new(e),
        })?;
        Ok(Some(RedisLockGuard {
            token,
            owner_died: held.owner_died,
            lost,
            stop: Some((tx, renewer)),
            store: self.store.clone(),
            lock: self.lock.clone(),
        }))
    }
}

impl RedisLockGuard {
    /// The fencing token: larger than every earlier acquisition's.
    pub fn token(&self) -> u64 {
        self.token
    }

    /// The previous holder lost its lease while holding the lock (it died,
    /// or was paused or cut off): what it protected may be half-updated.
    pub fn owner_died(&self) -> bool {
        self.owner_died
    }

    /// Has the renewer found the lease gone (this holder was paused or cut
    /// off past its lease)? Its writes are then rejected by their token.
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    fn stop_renewer(&mut self) {
        if let Some((tx, h)) = self.stop.take() {
            drop(tx);
            let _ = h.join();
        }
    }

    /// Release. `Ok(false)`: the lease had run out (the next acquirer is
    /// told the owner died).
    pub fn release(mut self) -> Result<bool, RedisError> {
        self.stop_renewer();
        let r = self.lock.release(&*self.store, self.token);
        self.token = 0;
        r
    }
}

impl Drop for RedisLockGuard {
    fn drop(&mut self) {
        self.stop_renewer();
        if self.token != 0 {
            let _ = self.lock.release(&*self.store, self.token);
        }
    }
}
