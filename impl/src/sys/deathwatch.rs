//! Owner-death notification: a waiter that sleeps on a lock word held by
//! another thread registers the owner here; one helper thread per process
//! watches every registered owner through a pidfd (`epoll`) and, when one
//! dies, wakes the futex words its watchers sleep on. So a waiter sleeps
//! without a timeout while its owner lives, and learns of its death at once.
//!
//! * The pidfd is a *thread* pidfd (`PIDFD_THREAD`, Linux 6.9), or on older
//!   kernels a process pidfd, which only a thread-group leader has (a lock
//!   taken by a non-main thread on such a kernel is [`Watch::Unsupported`]:
//!   the caller then polls, as before).
//! * The owner is named by its tid and identified by its identity
//!   (`thread::identity_of`: the pidfs inode number, never reused): after the
//!   pidfd is opened the thread it names is checked to have the owner's
//!   identity, so a pidfd of a later thread that reuses the tid is never
//!   watched in its place. Entries are keyed by identity.
//! * Pidfds stay open (and watched) while nobody waits, for the next wait on
//!   the same owner, up to [`IDLE_CACHE`] owners; a dead owner's entry is
//!   dropped once its last watcher has looked.
//! * A death can come between a waiter's registration and its futex sleep:
//!   the helper then wakes the words of a dead owner again every millisecond
//!   until their watchers have gone, so no wake-up is lost.
//! * The helper is started on the first registration (never in a process
//!   that does not wait on a live owner), is counted as one of procshare's
//!   own threads (no fork warning), and is started afresh in a forked child
//!   (which has no copy of it): the watcher of each fork generation is a new
//!   one; the parent's copy is left behind, its descriptors closed if its
//!   lock was free at the fork.

use core::sync::atomic::{AtomicPtr, AtomicU32, Ordering};
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::{Mutex, MutexGuard};

use rustix::event::epoll;
use rustix::process::{Pid, PidfdFlags};

/// Idle entries (owners nobody waits for right now) kept for the next wait.
const IDLE_CACHE: usize = 64;
/// `PIDFD_THREAD` (`O_EXCL`): a pidfd for a thread rather than a process.
const PIDFD_THREAD: u32 = libc::O_EXCL as u32;

/// What [`watch`] found.
#[derive(Debug)]
pub(crate) enum Watch {
    /// The owner is dead already (or the thread with its tid is another).
    Dead,
    /// No pidfd for it (an old kernel): the caller has to poll.
    Unsupported,
    /// Watched until the registration is dropped.
    Watching(Registration),
}

/// One watched owner.
#[derive(Debug)]
struct Entry {
    pidfd: OwnedFd,
    /// Addresses of the futex words its watchers sleep on (one per watcher).
    words: Vec<usize>,
    /// It died.
    fired: bool,
}

#[derive(Debug)]
struct Watcher {
    /// The fork generation this watcher (and its helper thread) belongs to.
    generation: u64,
    epoll: OwnedFd,
    entries: Mutex<HashMap<u64, Entry>>,
}

impl Watcher {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

static WATCHER: AtomicPtr<Watcher> = AtomicPtr::new(core::ptr::null_mut());

/// This process's watcher, started on first use (`None`: no epoll or no thread).
fn watcher() -> Option<&'static Watcher> {
    let generation = super::fork::generation();
    let p = WATCHER.load(Ordering::Acquire);
    // SAFETY: only leaked `Box<Watcher>`s are stored, never freed.
    if let Some(old) = unsafe { p.as_ref() } {
        if old.generation == generation {
            return Some(old);
        }
    }
    let epoll = epoll::create(epoll::CreateFlags::CLOEXEC).ok()?;
    let new = Box::into_raw(Box::new(Watcher {
        generation,
        epoll,
        entries: Mutex::new(HashMap::new()),
    }));
    if let Err(cur) = WATCHER.compare_exchange(p, new, Ordering::AcqRel, Ordering::Acquire) {
        // SAFETY: `new` was never shared: this thread still owns it.
        drop(unsafe { Box::from_raw(new) });
        // SAFETY: only leaked `Box<Watcher>`s are stored, never freed.
        return unsafe { cur.as_ref() }.filter(|w| w.generation == generation);
    }
    // SAFETY: published above, never freed from now on.
    let w: &'static Watcher = unsafe { &*new };
    // SAFETY: as above.
    if let Some(old) = unsafe { p.as_ref() } {
        // The parent's watcher, copied by a fork: its helper does not exist
        // here. Close its descriptors if nobody held its lock at the fork.
        if let Ok(mut m) = old.entries.try_lock() {
            m.clear();
        }
    }
    // If the thread cannot start, registrations still work but nobody wakes
    // them: the waiters' safety poll is then what notices a death.
    let _ = super::thread::spawn_helper("procshare-deathwatch".into(), move || helper(w));
    Some(w)
}

/// The helper thread: waits for pidfds to become readable (their thread
/// exited), marks their entries, and wakes the words of dead owners until
/// their watchers are gone.
fn helper(w: &'static Watcher) {
    let mut events = [core::mem::MaybeUninit::<epoll::Event>::uninit(); 16];
    let mut pending = false; // dead owners still have watchers
    loop {
        let ms = rustix::time::Timespec {
            tv_sec: 0,
            tv_nsec: 1_000_000,
        };
        let n = match epoll::wait(&w.epoll, &mut events[..], pending.then_some(&ms)) {
            Ok((ready, _)) => {
                let owners: Vec<u64> = ready.iter().map(|e| e.data.u64()).collect();
                owners
            }
            Err(rustix::io::Errno::INTR) => Vec::new(),
            Err(_) => return,
        };
        let mut m = w.lock();
        for owner in n {
            if let Some(e) = m.get_mut(&owner) {
                e.fired = true;
                let _ = epoll::delete(&w.epoll, &e.pidfd);
            }
        }
        m.retain(|_, e| !(e.fired && e.words.is_empty()));
        pending = false;
        for e in m.values().filter(|e| e.fired) {
            pending = true;
            for &addr in &e.words {
                // SAFETY: `addr` is the address of a live `AtomicU32`: it is
                // listed only while a `Registration` exists for it, whose
                // creator borrows the word for as long as it exists, and the
                // registration removes it under this lock (held here).
                let word = unsafe { &*(addr as *const AtomicU32) };
                super::thread::futex_wake(word, u32::MAX);
            }
        }
    }
}

/// A waiter's registration: while it exists, the owner's death wakes the word.
#[derive(Debug)]
pub(crate) struct Registration {
    w: &'static Watcher,
    owner: u64,
    word: usize,
}

impl Registration {
    /// Has the owner died?
    pub(crate) fn fired(&self) -> bool {
        self.w.lock().get(&self.owner).map_or(true, |e| e.fired)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut m = self.w.lock();
        if let Some(e) = m.get_mut(&self.owner) {
            if let Some(i) = e.words.iter().position(|&a| a == self.word) {
                e.words.swap_remove(i);
            }
            if e.fired && e.words.is_empty() {
                m.remove(&self.owner);
            }
        }
        // Keep at most IDLE_CACHE idle owners (closing a pidfd removes it
        // from the epoll set).
        if m.len() > IDLE_CACHE {
            let idle: Vec<u64> = m
                .iter()
                .filter(|(_, e)| e.words.is_empty())
                .map(|(&o, _)| o)
                .take(m.len() - IDLE_CACHE)
                .collect();
            for o in idle {
                m.remove(&o);
            }
        }
    }
}

/// A pidfd of thread `tid`: a thread pidfd, or a process pidfd if the
/// kernel has no thread pidfds (then only for a thread-group leader).
fn thread_pidfd(tid: u32) -> Result<OwnedFd, rustix::io::Errno> {
    let pid = Pid::from_raw(tid as i32).ok_or(rustix::io::Errno::SRCH)?;
    match rustix::process::pidfd_open(pid, PidfdFlags::from_bits_retain(PIDFD_THREAD)) {
        Err(rustix::io::Errno::INVAL) => rustix::process::pidfd_open(pid, PidfdFlags::empty()),
        r => r,
    }
}

/// Watch the thread with tid `tid` and identity `ident` (see
/// `thread::identity_of`; 0: unknown, then [`Watch::Unsupported`]) for a
/// waiter sleeping on `word`.
pub(crate) fn watch(tid: u32, ident: u64, word: &AtomicU32) -> Watch {
    if ident == 0 {
        return Watch::Unsupported;
    }
    let Some(w) = watcher() else {
        return Watch::Unsupported;
    };
    let owner = ident;
    let addr = word as *const AtomicU32 as usize;
    let registered = |m: &mut HashMap<u64, Entry>| {
        let e = m.get_mut(&owner)?;
        if e.fired {
            return Some(Watch::Dead);
        }
        e.words.push(addr);
        Some(Watch::Watching(Registration {
            w,
            owner,
            word: addr,
        }))
    };
    if let Some(r) = registered(&mut w.lock()) {
        return r;
    }
    let pidfd = match thread_pidfd(tid & super::thread::TID_MASK) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::SRCH) => return Watch::Dead,
        Err(_) => return Watch::Unsupported,
    };
    // The pidfd names the thread that has the tid now: the owner itself iff
    // that thread has the owner's identity (a pidfs inode number is the
    // pidfd's own; a start time is read after the pidfd was opened: if the
    // thread it names died since, the pidfd fires at once).
    let same = if ident >> 63 == 0 {
        matches!(rustix::fs::fstat(&pidfd), Ok(st) if st.st_ino == ident)
    } else {
        super::thread::identity_of(tid) == procshare_model::platform::Occupant::Is(ident)
    };
    if !same {
        return Watch::Dead;
    }
    let mut m = w.lock();
    if let Some(r) = registered(&mut m) {
        return r; // another waiter registered it meanwhile
    }
    if epoll::add(
        &w.epoll,
        &pidfd,
        epoll::EventData::new_u64(owner),
        epoll::EventFlags::IN,
    )
    .is_err()
    {
        return Watch::Unsupported;
    }
    m.insert(
        owner,
        Entry {
            pidfd,
            words: vec![addr],
            fired: false,
        },
    );
    Watch::Watching(Registration {
        w,
        owner,
        word: addr,
    })
}
