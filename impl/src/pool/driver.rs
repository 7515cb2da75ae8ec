//! The dispatcher thread: the model's [`Dispatcher`] driven by `poll(2)` over
//! each worker's socket and pidfd and an eventfd that callers ring when they
//! submit work, close or terminate.

use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use procshare_model::pool::{
    Action, Config, Dispatcher, Failure, FeedId, Refused, UnitId, WorkerId,
};

use super::job::Sink;
use super::worker::{self, InitFn, SpawnInit, FRAME_LIMIT};
use super::PoolError;
use crate::process::StartMethod;
use crate::shm::slots::{Side, Slots};
use crate::sys::io::Sent;
use crate::Process;

/// Frames that crossed in a worker's slots instead of its socket, in this
/// process (units sent, answers received): see [`slot_frames`].
static SLOT_FRAMES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many unit frames and answers crossed in the workers' slots (shared
/// memory) rather than their sockets, in this process, over every pool
/// (for the tests: the large frames must take the slots).
#[cfg_attr(not(feature = "internals"), allow(dead_code))]
pub fn slot_frames() -> u64 {
    SLOT_FRAMES.load(std::sync::atomic::Ordering::Relaxed)
}

/// Unit frame buffers no longer in use, for the next submissions: a `map`
/// encodes its chunks into memory that is already mapped (a fresh
/// megabyte-sized buffer costs a page fault per 4 KiB).
pub(crate) type SpareFrames = Arc<Mutex<Vec<Vec<u8>>>>;

/// How many spare frame buffers are kept, and up to which size each (at
/// most 32 MiB stay allocated for reuse).
const SPARE_FRAMES: usize = 8;
const SPARE_FRAME_MAX: usize = 4 << 20;

/// A frame on its way to a worker (header included). Its buffer goes back to
/// the spare list when the last reference (the dispatcher's payload, or the
/// connection's output queue) is dropped.
///
/// The buffer may be longer than the frame (a recycled buffer is not cut, so
/// that its bytes serve again without being zeroed): the frame is
/// `buf[..len]`, `len` read from its header.
pub(crate) struct Frame {
    buf: Vec<u8>,
    len: usize,
    spare: Option<SpareFrames>,
}

/// The length of the frame at the start of `buf` (header included), at most
/// `buf.len()`.
fn frame_len(buf: &[u8]) -> usize {
    let n = buf.get(..4).map_or(0, |h| {
        u32::from_le_bytes(h.try_into().expect("4 bytes")) as usize
    });
    (4 + n).min(buf.len())
}

impl Frame {
    /// A frame (at the start of `buf`) whose buffer is recycled into `spare`.
    pub(crate) fn recycled(buf: Vec<u8>, spare: &SpareFrames) -> Frame {
        Frame {
            len: frame_len(&buf),
            buf,
            spare: Some(spare.clone()),
        }
    }

    /// A frame (at the start of `buf`) whose buffer is just freed.
    pub(crate) fn plain(buf: Vec<u8>) -> Frame {
        Frame {
            len: frame_len(&buf),
            buf,
            spare: None,
        }
    }
}

impl std::ops::Deref for Frame {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for Frame {
    fn drop(&mut self) {
        if let Some(s) = &self.spare {
            if self.buf.capacity() <= SPARE_FRAME_MAX {
                let mut s = s.lock().unwrap_or_else(|e| e.into_inner());
                if s.len() < SPARE_FRAMES {
                    s.push(std::mem::take(&mut self.buf));
                }
            }
        }
    }
}

/// Take a spare frame buffer (or a new, empty one).
pub(crate) fn spare_frame(spare: &SpareFrames) -> Vec<u8> {
    spare
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .pop()
        .unwrap_or_default()
}

/// A unit handed to the dispatcher thread.
pub(crate) struct Submission {
    pub(crate) unit: UnitId,
    /// The whole unit frame (header included).
    pub(crate) frame: Arc<Frame>,
    pub(crate) sink: Arc<dyn Sink>,
    /// The unit's first task index in its job, and its number of tasks.
    pub(crate) start: usize,
    pub(crate) n: usize,
    /// The feed (a streaming `imap`) this unit belongs to, if any.
    pub(crate) feed: Option<FeedId>,
}

/// What callers and the dispatcher thread share (under one mutex).
#[derive(Default)]
pub(crate) struct Inbox {
    pub(crate) subs: VecDeque<Submission>,
    /// Feeds opened and closed since the dispatcher thread last looked (it
    /// opens these before taking `subs`, and closes those after).
    pub(crate) feeds_opened: Vec<FeedId>,
    pub(crate) feeds_closed: Vec<FeedId>,
    pub(crate) close: bool,
    pub(crate) terminate: bool,
    /// The dispatcher thread has finished: nothing more will run.
    pub(crate) finished: bool,
    /// An initializer failed.
    pub(crate) broken: Option<String>,
    /// Pids of the live workers.
    pub(crate) pids: Vec<u32>,
}

pub(crate) struct Shared {
    pub(crate) inbox: Mutex<Inbox>,
    /// Frame buffers to reuse.
    pub(crate) spare: SpareFrames,
    pub(crate) finished_cv: Condvar,
    /// An eventfd: written by callers, polled by the dispatcher thread.
    wake: OwnedFd,
    /// The next unit (and feed) id.
    pub(crate) next_unit: std::sync::atomic::AtomicU64,
    /// `wake` is closed in forked children by the fork hook (see `fds`).
    wake_tracked: bool,
    /// The streaming `imap`s whose input is still read, to unthrottle at `close`.
    streams: Mutex<Vec<std::sync::Weak<dyn super::stream::Throttled>>>,
    /// The driver while the dispatcher thread runs (`None` before it starts
    /// and once it has finished). The dispatcher thread holds the lock while
    /// it works and leaves it while it waits in `poll`; meanwhile a caller
    /// that submits work, or waits for a result, may do the driver's work
    /// itself (see [`Shared::help`]).
    driver: Mutex<Option<Driver>>,
    /// How long a caller waiting for a result polls the workers' sockets
    /// itself before it sleeps (the pool's `idle_spin`), and what tells
    /// whether a CPU is spare for that (see [`Shared::may_spin`]).
    spin: std::time::Duration,
    spare_cpu: crate::sys::proc::SpareCpu,
}

impl Drop for Shared {
    fn drop(&mut self) {
        if self.wake_tracked {
            super::fds::untrack(self.wake.as_raw_fd());
        }
    }
}

impl Shared {
    pub(crate) fn new(spin: std::time::Duration) -> Result<Shared, PoolError> {
        let wake = crate::sys::io::doorbell().map_err(|e| PoolError::os("eventfd", e))?;
        let wake_tracked = super::fds::track(wake.as_raw_fd());
        Ok(Shared {
            driver: Mutex::new(None),
            spin,
            spare_cpu: crate::sys::proc::SpareCpu::new(),
            wake_tracked,
            inbox: Mutex::new(Inbox::default()),
            spare: SpareFrames::default(),
            finished_cv: Condvar::new(),
            wake,
            next_unit: std::sync::atomic::AtomicU64::new(1),
            streams: Mutex::new(Vec::new()),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inbox> {
        self.inbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A fresh unit (or feed) id.
    pub(crate) fn new_id(&self) -> u64 {
        self.next_unit
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// Queue `subs` for the dispatcher thread (an empty list: only check
    /// that the pool runs). Units of a feed are accepted after `close`
    /// (the dispatcher knows whether their feed is open).
    pub(crate) fn hand_over(&self, subs: Vec<Submission>) -> Result<(), PoolError> {
        {
            let mut g = self.lock();
            if let Some(b) = &g.broken {
                return Err(PoolError::InitializerFailed(b.clone()));
            }
            let fed = !subs.is_empty() && subs.iter().all(|s| s.feed.is_some());
            if (g.close && !fed) || g.terminate || g.finished {
                return Err(PoolError::NotRunning);
            }
            if subs.is_empty() {
                return Ok(());
            }
            g.subs.extend(subs);
        }
        // Send the units at once if the dispatcher thread waits in `poll`
        // (saves its wake-up: the workers' answers wake it anyway), else ring it.
        if !self.help(Help::Submit) {
            self.wake();
        }
        Ok(())
    }

    /// Open a feed (refused once the pool is closed).
    pub(crate) fn open_feed(&self) -> Result<FeedId, PoolError> {
        self.hand_over(Vec::new())?;
        let id = self.new_id();
        {
            let mut g = self.lock();
            if g.close || g.terminate || g.finished {
                return Err(PoolError::NotRunning);
            }
            g.feeds_opened.push(id);
        }
        self.wake();
        Ok(id)
    }

    /// Remember a streaming `imap` for [`Shared::unthrottle`].
    pub(crate) fn add_stream(&self, s: std::sync::Weak<dyn super::stream::Throttled>) {
        let mut v = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        v.retain(|w| w.strong_count() > 0);
        v.push(s);
    }

    /// At `close` (or `terminate`): every streaming `imap` reads the rest of
    /// its input without waiting for its results to be taken, as CPython's
    /// does, so that `close(); join()` before taking the results returns
    /// (the pool finishes only once every feed is closed).
    pub(crate) fn unthrottle(&self) {
        let v = std::mem::take(&mut *self.streams.lock().unwrap_or_else(|e| e.into_inner()));
        for s in v.iter().filter_map(std::sync::Weak::upgrade) {
            s.unthrottle();
        }
    }

    /// Close a feed: its units already handed over still run.
    pub(crate) fn close_feed(&self, id: FeedId) {
        self.lock().feeds_closed.push(id);
        self.wake();
    }

    /// Ring the dispatcher thread.
    pub(crate) fn wake(&self) {
        crate::sys::io::ring(self.wake.as_fd());
    }

    fn drain_wake(&self) {
        crate::sys::io::drain(self.wake.as_fd());
    }

    /// Callers spin whatever the machine's load (for tests: the gate would
    /// make what they test depend on the load).
    #[cfg(test)]
    pub(crate) fn without_load_gate(mut self) -> Self {
        self.spare_cpu = crate::sys::proc::SpareCpu::always();
        self
    }

    pub(crate) fn lock_driver(&self) -> MutexGuard<'_, Option<Driver>> {
        self.driver.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Do the dispatcher thread's work from this thread if the driver is free
    /// (the dispatcher thread is waiting in `poll`, or between two rounds):
    /// take the inbox ([`Help::Submit`]) or read what the workers sent
    /// ([`Help::Read`], delivering results and sending the next units), then
    /// carry out the actions that follow. Whatever needs the dispatcher
    /// thread's `poll` to look again (a worker that died or was started, a
    /// frame only partly sent, the end of the pool) rings it. `false` if the
    /// driver was busy or not running: nothing was done.
    ///
    /// Only the dispatcher thread buries workers (closes their descriptors),
    /// so the descriptors it polls stay open while a caller works.
    pub(crate) fn help(&self, what: Help) -> bool {
        let mut g = match self.driver.try_lock() {
            Ok(g) => g,
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return false,
        };
        let Some(d) = g.as_mut() else {
            return false;
        };
        if d.d.is_finished() {
            return false;
        }
        let workers = d.conns.len();
        let mut repoll = false;
        match what {
            Help::Submit => repoll = d.take_inbox(),
            Help::Read => {
                for i in 0..d.conns.len() {
                    d.read_conn(i);
                }
            }
        }
        d.run_actions();
        repoll |= d.d.is_finished()
            || d.conns.len() != workers
            || d.conns.iter().any(|c| c.dead || !c.out.is_empty());
        drop(g);
        if repoll {
            self.wake();
        }
        true
    }

    /// May a caller waiting for a result poll the workers' sockets (see
    /// [`Shared::help`]) for up to [`Shared::spin`] before it sleeps? When the
    /// pool has a spin time and the machine's runnable tasks are no more than
    /// its CPUs (as for an idle worker's poll: taking a CPU someone wants
    /// would slow the round trip down).
    pub(crate) fn may_spin(&self) -> Option<std::time::Duration> {
        (!self.spin.is_zero() && self.spare_cpu.now()).then_some(self.spin)
    }
}

/// What a caller does for the dispatcher thread (see [`Shared::help`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Help {
    /// Hand the submitted units to the workers.
    Submit,
    /// Read the workers' answers.
    Read,
}

/// One worker as the dispatcher thread sees it.
struct Conn {
    id: WorkerId,
    proc: Process,
    pid: u32,
    /// Shared with the dispatcher thread's poll set while it waits (see
    /// [`Polled`]); closed when the `Conn` is buried.
    sock: Arc<UnixStream>,
    pidfd: Option<Arc<OwnedFd>>,
    /// Receive buffer; `inbuf[..filled]` holds received, unhandled bytes.
    inbuf: Vec<u8>,
    filled: usize,
    out: VecDeque<Arc<Frame>>,
    /// Bytes of `out.front()` already written.
    out_off: usize,
    dead: bool,
    /// The worker's slots (`None`: they could not be made; every frame
    /// crosses the socket).
    slots: Option<Arc<Slots>>,
    /// `sock` and `pidfd` are closed in forked children by the fork hook
    /// (see `fds`); the others are closed by the workers themselves.
    sock_tracked: bool,
    pidfd_tracked: bool,
}

impl Drop for Conn {
    /// Untrack the descriptors before they are closed.
    fn drop(&mut self) {
        if self.sock_tracked {
            super::fds::untrack(self.sock.as_raw_fd());
        }
        if let (true, Some(p)) = (self.pidfd_tracked, &self.pidfd) {
            super::fds::untrack(p.as_raw_fd());
        }
    }
}

/// What the dispatcher thread owns.
pub(crate) struct Driver {
    d: Dispatcher<Arc<Frame>>,
    conns: Vec<Conn>,
    units: HashMap<UnitId, (Arc<dyn Sink>, usize, usize)>,
    /// Pid and exit code of workers that died, for error messages.
    dead: HashMap<WorkerId, (u32, Option<i32>)>,
    shared: Arc<Shared>,
    init: Option<InitFn>,
    /// The initializer in a form that crosses an exec (spawn, forkserver).
    spawn_init: Option<Arc<dyn SpawnInit>>,
    /// How workers are started (the first ones and their replacements).
    method: StartMethod,
    /// How long an idle worker polls its socket before it sleeps.
    spin: std::time::Duration,
    /// Units in flight per worker (the slots per side of each worker).
    depth: usize,
}

fn failure_error(f: Failure, dead: &HashMap<WorkerId, (u32, Option<i32>)>) -> PoolError {
    match f {
        Failure::WorkerDied { worker } => {
            let (pid, code) = dead.get(&worker).copied().unwrap_or((0, None));
            PoolError::WorkerDied {
                pid,
                exitcode: code,
            }
        }
        Failure::InitFailed(m) => PoolError::InitializerFailed(m),
        Failure::Terminated => PoolError::Terminated,
    }
}

impl Driver {
    pub(crate) fn new(
        cfg: Config,
        shared: Arc<Shared>,
        init: Option<InitFn>,
        spawn_init: Option<Arc<dyn SpawnInit>>,
        method: StartMethod,
        spin: std::time::Duration,
    ) -> Driver {
        Driver {
            depth: cfg.depth.max(1),
            d: Dispatcher::new(cfg),
            conns: Vec::new(),
            units: HashMap::new(),
            dead: HashMap::new(),
            shared,
            init,
            spawn_init,
            method,
            spin,
        }
    }

    pub(crate) fn broken(&self) -> Option<String> {
        self.d.broken().map(str::to_string)
    }

    pub(crate) fn ready_workers(&self) -> usize {
        self.d.ready_workers()
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.d.is_finished()
    }

    /// Terminate from the thread that owns the driver (a failed `build`).
    pub(crate) fn terminate(&mut self) {
        self.d.terminate();
    }

    fn conn(&mut self, w: WorkerId) -> Option<&mut Conn> {
        self.conns.iter_mut().find(|c| c.id == w)
    }

    fn spawn(&mut self, w: WorkerId) -> Result<(), PoolError> {
        let (parent, child) = UnixStream::pair().map_err(|e| PoolError::os("socketpair", e))?;
        crate::sys::io::set_socket_buffers(parent.as_fd(), SOCK_BUF);
        crate::sys::io::set_socket_buffers(child.as_fd(), SOCK_BUF);
        // The child closes its copies of every pool descriptor but its own
        // socket: the fork hook closes the tracked ones (see `fds`), the
        // child those that are not (this new socket's other end, and any that
        // found no room in the table).
        let mut close: Vec<RawFd> = vec![parent.as_raw_fd()];
        if !self.shared.wake_tracked {
            close.push(self.shared.wake.as_raw_fd());
        }
        for c in &self.conns {
            if !c.sock_tracked {
                close.push(c.sock.as_raw_fd());
            }
            if let (false, Some(p)) = (c.pidfd_tracked, &c.pidfd) {
                close.push(p.as_raw_fd());
            }
            if let Some(fd) = c.slots.as_ref().and_then(|s| s.fd()) {
                close.push(fd.as_raw_fd());
            }
        }
        // The workers watch this process, the pool's owner, and exit when it dies.
        let owner = crate::sys::proc::getpid();
        // Large frames cross in the worker's slots; without them (no memfd),
        // in the socket.
        let slots = Slots::create(self.depth, worker::SLOT_SIZE)
            .ok()
            .map(Arc::new);
        let mut child = Some(child);
        let mut p = if self.method == StartMethod::Fork {
            let cfd = child.as_ref().map_or(-1, |c| c.as_raw_fd());
            let init = self.init.clone();
            let spin = self.spin;
            // The child inherits the mapping itself (MAP_SHARED survives a
            // fork), and the memfd with it: its `Slots` owns that descriptor
            // and closes it when the worker ends (so it is not in `close`,
            // where a second close could hit a reused number).
            let sl = slots.clone();
            Process::new(move || worker::child_main(cfd, &close, init, owner, spin, sl))
        } else {
            // A fresh exec of this binary: it inherits no descriptor (all the
            // pool's are close-on-exec) but its socket, passed as an
            // argument; the initializer crosses as a function and its
            // arguments (`spawn_initializer`; `build` refused a closure).
            let arg = worker::SpawnedWorker::Out {
                sock: OwnedFd::from(child.take().expect("not taken yet")),
                owner,
                served: self.method == StartMethod::ForkServer,
                spin: self.spin,
                slots: slots.clone(),
                init: self.spawn_init.clone(),
            };
            Process::with_target(worker::spawned_main, (arg,)).start_method(self.method)
        }
        .with_name(format!("PoolWorker-{w}"));
        // The spawn target (holding the child's end) is dropped by `start`.
        p.start().map_err(|e| PoolError::Process(Arc::new(e)))?;
        drop(child);
        parent
            .set_nonblocking(true)
            .map_err(|e| PoolError::os("fcntl", e))?;
        let pid = p.pid().unwrap_or(0);
        let pidfd = crate::sys::proc::pidfd_open(pid as i32).map(Arc::new);
        let sock_tracked = super::fds::track(parent.as_raw_fd());
        let pidfd_tracked = pidfd
            .as_ref()
            .is_some_and(|p| super::fds::track(p.as_raw_fd()));
        self.shared.lock().pids.push(pid);
        self.conns.push(Conn {
            id: w,
            proc: p,
            pid,
            sock: Arc::new(parent),
            pidfd,
            inbuf: Vec::new(),
            filled: 0,
            out: VecDeque::new(),
            out_off: 0,
            dead: false,
            slots,
            sock_tracked,
            pidfd_tracked,
        });
        Ok(())
    }

    /// Carry out the dispatcher's actions until it has none.
    fn run_actions(&mut self) {
        while let Some(a) = self.d.next_action() {
            match a {
                Action::Spawn { worker } => {
                    if self.spawn(worker).is_err() {
                        // Could not fork: the same as a worker that died at once.
                        self.dead.insert(worker, (0, None));
                        self.d.on_died(worker);
                    }
                }
                Action::Send { worker, unit, slot } => {
                    let f = self.d.payload(unit).cloned();
                    if let (Some(f), Some(c)) = (f, self.conn(worker)) {
                        let body = &f[4..];
                        let in_slot = match &c.slots {
                            Some(sl) if body.len() >= worker::SLOT_MIN => {
                                // SAFETY: `slot` is the dispatcher's for this
                                // unit: the unit that had input slot `slot`
                                // before it was answered (at most `depth` in
                                // flight), and the worker reads a unit's
                                // input slot only until it answers it (slot
                                // protocol, rule 8): nobody reads it now.
                                unsafe { sl.write(Side::Input, slot, body) }
                            }
                            _ => false,
                        };
                        if in_slot {
                            SLOT_FRAMES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let note = worker::slot_note(worker::TO_SLOT, slot, body.len());
                            c.out.push_back(Arc::new(Frame::plain(note.to_vec())));
                        } else {
                            c.out.push_back(f);
                        }
                        flush(c);
                    }
                }
                Action::Stop { worker } => {
                    if let Some(c) = self.conn(worker) {
                        c.out
                            .push_back(Arc::new(Frame::plain(worker::stop_frame())));
                        flush(c);
                    }
                }
                Action::Kill { worker } => {
                    if let Some(c) = self.conn(worker) {
                        let _ = c.proc.kill();
                    }
                }
                Action::Fail { unit, failure } => {
                    if let Some((sink, start, n)) = self.units.remove(&unit) {
                        sink.fail(start, n, failure_error(failure, &self.dead));
                    }
                }
                Action::Finished => {}
            }
        }
    }

    /// Take what callers submitted; `true` if that was more than units
    /// (feeds opened or closed, `close`, `terminate`).
    fn take_inbox(&mut self) -> bool {
        self.shared.drain_wake();
        let (opened, subs, closed, close, terminate) = {
            let mut g = self.shared.lock();
            (
                std::mem::take(&mut g.feeds_opened),
                std::mem::take(&mut g.subs),
                std::mem::take(&mut g.feeds_closed),
                g.close,
                g.terminate,
            )
        };
        let control = terminate || close || !opened.is_empty() || !closed.is_empty();
        // A feed refused here refuses its units below.
        for f in opened {
            let _ = self.d.open_feed(f);
        }
        for s in subs {
            let r = match s.feed {
                Some(f) => self.d.submit_fed(f, s.unit, s.frame),
                None => self.d.submit(s.unit, s.frame),
            };
            match r {
                Ok(()) => {
                    self.units.insert(s.unit, (s.sink, s.start, s.n));
                }
                Err(r) => s.sink.fail(s.start, s.n, refused(r)),
            }
        }
        for f in closed {
            self.d.close_feed(f);
        }
        if terminate {
            self.d.terminate();
        } else if close {
            self.d.close();
        }
        control
    }

    /// Handle one frame from worker `w`.
    fn on_frame(&mut self, w: WorkerId, f: &[u8]) -> bool {
        let unit = || {
            f.get(1..9)
                .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
        };
        match f.first() {
            Some(&worker::FROM_READY) => {
                self.d.on_ready(w);
                true
            }
            Some(&worker::FROM_INIT_FAILED) => {
                let m = String::from_utf8_lossy(&f[1..]).into_owned();
                self.d.on_init_failed(w, m);
                true
            }
            Some(&worker::FROM_STARTED) => unit().is_some_and(|u| self.d.on_started(w, u)),
            Some(&worker::FROM_DONE) => match unit() {
                Some(u) if self.d.on_done(w, u, None) => {
                    if let Some((sink, start, n)) = self.units.remove(&u) {
                        sink.deliver(start, n, &f[9..]);
                    }
                    true
                }
                _ => false,
            },
            Some(&worker::FROM_SLOT) => {
                let Some((s, len)) = worker::parse_slot_note(f) else {
                    return false;
                };
                let Some(sl) = self.conn(w).and_then(|c| c.slots.clone()) else {
                    return false;
                };
                // Only the slot of the unit it runs (before reading it).
                if self.d.answer_slot(w) != Some(s) {
                    return false;
                }
                // SAFETY: the worker wrote this answer into output slot `s`
                // before it sent the note being handled, and writes that
                // slot again only for a unit sent after this answer is
                // handled (slot protocol, rule 8; `s` is its running unit's
                // slot, checked above). `body` is dropped before this
                // function returns.
                let Some(body) = (unsafe { sl.read(Side::Output, s, len) }) else {
                    return false;
                };
                let u = match body.get(1..9) {
                    Some(b) if body[0] == worker::FROM_DONE => {
                        u64::from_le_bytes(b.try_into().expect("8 bytes"))
                    }
                    _ => return false,
                };
                if !self.d.on_done(w, u, Some(s)) {
                    return false;
                }
                SLOT_FRAMES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if let Some((sink, start, n)) = self.units.remove(&u) {
                    sink.deliver(start, n, &body[9..]);
                }
                true
            }
            _ => false,
        }
    }

    /// Read everything worker `i` sent; handle complete frames. Marks it dead
    /// at end of stream (or on a read error or a protocol violation).
    fn read_conn(&mut self, i: usize) {
        loop {
            let c = &mut self.conns[i];
            // Read straight into the buffer, growing it (zeroing only the
            // growth, once) to hold the whole frame being received.
            let want = c.filled + frame_need(&c.inbuf[..c.filled]).max(64 * 1024);
            if c.inbuf.len() < want {
                c.inbuf.resize(want, 0);
            }
            let space = c.inbuf.len() - c.filled;
            match (&*c.sock).read(&mut c.inbuf[c.filled..]) {
                Ok(0) => {
                    c.dead = true;
                    break;
                }
                Ok(n) => {
                    c.filled += n;
                    // A short read emptied the socket (a Unix stream read
                    // takes all that is queued, up to the space given): no
                    // second call just to see EAGAIN. More data, or the end
                    // of stream, wakes `poll` again (level-triggered); a
                    // worker that exited wrote everything before, so this
                    // also drains a dead worker's socket.
                    if n < space {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    c.dead = true;
                    break;
                }
            }
        }
        // Complete frames, in order.
        let w = self.conns[i].id;
        let filled = self.conns[i].filled;
        let mut inbuf = std::mem::take(&mut self.conns[i].inbuf);
        let mut at = 0;
        let mut bad = false;
        while let Ok((payload, _)) =
            crate::codec::wire::split_frame(&inbuf[at..filled], FRAME_LIMIT)
        {
            let len = payload.len();
            let ok = self.on_frame(w, &inbuf[at + 4..at + 4 + len]);
            at += 4 + len;
            if !ok {
                bad = true;
                break;
            }
        }
        if let Err(crate::codec::wire::WireError::Oversized { .. }) =
            crate::codec::wire::split_frame(&inbuf[at..filled], FRAME_LIMIT)
        {
            bad = true;
        }
        inbuf.copy_within(at..filled, 0);
        // Do not keep a huge buffer around once a large frame is consumed.
        if filled - at < 64 * 1024 && inbuf.len() > 8 << 20 {
            inbuf.truncate(64 * 1024);
            inbuf.shrink_to_fit();
        }
        let c = &mut self.conns[i];
        c.inbuf = inbuf;
        c.filled = filled - at;
        if bad {
            // A worker that breaks the protocol is killed; its death follows.
            let _ = c.proc.kill();
        }
    }

    /// Worker `i` is dead: reap it and tell the dispatcher.
    fn bury(&mut self, i: usize) {
        let mut c = self.conns.remove(i);
        // End of stream means dead or dying; a worker that closed its socket
        // but lives on is useless and would block the join: kill it.
        let _ = c.proc.kill();
        let code = c.proc.join().ok();
        self.dead.insert(c.id, (c.pid, code));
        {
            let mut g = self.shared.lock();
            g.pids.retain(|&p| p != c.pid);
        }
        self.d.on_died(c.id);
    }

    /// One round on the thread that owns the driver (`build`, before the
    /// dispatcher thread exists): carry out actions, wait for events (at most
    /// `timeout_ms`, -1: forever), handle them.
    pub(crate) fn step(&mut self, timeout_ms: i32) {
        let mut set = Vec::new();
        if !self.prepare(&mut set) {
            return;
        }
        if let Some((rung, ready)) = wait_events(&self.shared, &mut set, timeout_ms) {
            self.handle(rung, &ready);
        }
    }

    /// Carry out the actions; then, unless the dispatcher has finished
    /// (`false`), fill `set` with what to poll.
    fn prepare(&mut self, set: &mut Vec<Polled>) -> bool {
        self.run_actions();
        if self.d.is_finished() {
            return false;
        }
        set.clear();
        set.extend(self.conns.iter().map(|c| Polled {
            id: c.id,
            sock: c.sock.clone(),
            pidfd: c.pidfd.clone(),
            out: !c.out.is_empty(),
        }));
        true
    }

    /// Handle what `poll` reported: the doorbell (`rung`) and, per worker,
    /// its socket's and pidfd's events. A worker started since the poll set
    /// was made is not in `ready` (its events come at the next round).
    fn handle(&mut self, rung: bool, ready: &[Ready]) {
        use crate::sys::io::PollFlags;
        if rung {
            self.take_inbox();
        }
        for &(id, s, p) in ready {
            let Some(i) = self.conns.iter().position(|c| c.id == id) else {
                continue;
            };
            if s.intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR) {
                self.read_conn(i);
            }
            if !p.is_empty() {
                // The process exited: everything it wrote is in the socket now.
                self.read_conn(i);
                self.conns[i].dead = true;
            }
            if s.contains(PollFlags::OUT) {
                flush(&mut self.conns[i]);
            }
            self.run_actions();
        }
        // Bury the dead (after reading all they sent), highest index first.
        for i in (0..self.conns.len()).rev() {
            if self.conns[i].dead {
                self.bury(i);
                self.run_actions();
            }
        }
    }

    /// The dispatcher thread's body: run until finished, then refuse whatever
    /// was submitted meanwhile and wake `join`. The driver lives in
    /// `shared` (put there by `build`); this thread holds its lock while it
    /// works and leaves it while it waits in `poll`, when callers may do the
    /// work (see [`Shared::help`]). When this thread ends, also by unwinding
    /// from a bug, it drops the driver (which then fails whatever is pending:
    /// see its `Drop`).
    pub(crate) fn run(shared: Arc<Shared>) {
        struct Leave<'a>(&'a Shared);
        impl Drop for Leave<'_> {
            fn drop(&mut self) {
                let d = self.0.lock_driver().take();
                drop(d);
            }
        }
        let _leave = Leave(&shared);
        let mut set = Vec::new();
        loop {
            {
                let mut g = shared.lock_driver();
                let Some(d) = g.as_mut() else {
                    return;
                };
                if !d.prepare(&mut set) {
                    d.finish();
                    return;
                }
            }
            let events = wait_events(&shared, &mut set, -1);
            if let Some((rung, ready)) = events {
                let mut g = shared.lock_driver();
                let Some(d) = g.as_mut() else {
                    return;
                };
                d.handle(rung, &ready);
            }
        }
    }

    pub(crate) fn finish(&mut self) {
        self.run_actions();
        let broken = self.d.broken().map(str::to_string);
        let subs = {
            let mut g = self.shared.lock();
            g.finished = true;
            g.broken = broken.clone();
            std::mem::take(&mut g.subs)
        };
        for s in subs {
            let e = match &broken {
                Some(b) => PoolError::InitializerFailed(b.clone()),
                None => PoolError::NotRunning,
            };
            s.sink.fail(s.start, s.n, e);
        }
        // Anything still unresolved (cannot happen once finished; belt and braces).
        for (_, (sink, start, n)) in self.units.drain() {
            sink.fail(start, n, PoolError::Terminated);
        }
        self.shared.finished_cv.notify_all();
    }
}

/// A worker's descriptors in the dispatcher thread's poll set (shared with
/// its `Conn`, so they stay open while the thread polls without the driver's
/// lock), and whether it has output pending.
pub(crate) struct Polled {
    id: WorkerId,
    sock: Arc<UnixStream>,
    pidfd: Option<Arc<OwnedFd>>,
    out: bool,
}

/// What `poll` reported for a worker: its socket's events and its pidfd's.
type Ready = (
    WorkerId,
    crate::sys::io::PollFlags,
    crate::sys::io::PollFlags,
);

/// Wait (at most `timeout_ms`, -1: forever) until the doorbell rings or a
/// worker in `set` has something to read, can take more output, or exits.
/// `None` on a timeout or an interrupted poll; else whether the doorbell rang
/// and each worker's events. Empties `set` (the descriptors then stay open
/// only as long as their `Conn`s).
fn wait_events(
    shared: &Shared,
    set: &mut Vec<Polled>,
    timeout_ms: i32,
) -> Option<(bool, Vec<Ready>)> {
    use crate::sys::io::{PollFd, PollFlags};
    let mut fds = Vec::with_capacity(1 + 2 * set.len());
    fds.push(PollFd::new(&shared.wake, PollFlags::IN));
    for c in set.iter() {
        let mut ev = PollFlags::IN;
        if c.out {
            ev |= PollFlags::OUT;
        }
        fds.push(PollFd::new(&*c.sock, ev));
    }
    for c in set.iter() {
        if let Some(p) = &c.pidfd {
            fds.push(PollFd::new(&**p, PollFlags::IN));
        }
    }
    let timeout = u64::try_from(timeout_ms)
        .ok()
        .map(std::time::Duration::from_millis);
    let got = matches!(crate::sys::io::poll(&mut fds, timeout), Ok(n) if n > 0);
    let result = got.then(|| {
        let rung = !fds[0].revents().is_empty();
        let mut next_pidfd = 1 + set.len();
        let ready = set
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let p = if c.pidfd.is_some() {
                    next_pidfd += 1;
                    fds[next_pidfd - 1].revents()
                } else {
                    PollFlags::empty()
                };
                (c.id, fds[1 + i].revents(), p)
            })
            .collect();
        (rung, ready)
    });
    drop(fds);
    set.clear();
    result
}

/// Bytes still missing from the first frame in `buf` (0 if unknown or complete).
fn frame_need(buf: &[u8]) -> usize {
    match buf.get(..4) {
        Some(h) => {
            let n = u32::from_le_bytes(h.try_into().expect("4 bytes")) as usize;
            (4 + n.min(FRAME_LIMIT)).saturating_sub(buf.len())
        }
        None => 0,
    }
}

/// Socket buffer size asked for each direction of a worker's socketpair: large
/// chunks then cross in a few system calls instead of hundreds of wake-ups.
const SOCK_BUF: usize = 4 << 20;

impl Drop for Driver {
    /// Normally a no-op (everything was resolved and buried). If the
    /// dispatcher thread unwinds from a bug, this still fails every pending
    /// task, refuses further calls and kills the workers: callers get an
    /// error, never a hang.
    fn drop(&mut self) {
        let err = PoolError::DispatcherFailed;
        let subs = {
            let mut g = self.shared.lock();
            g.finished = true;
            g.pids.clear();
            std::mem::take(&mut g.subs)
        };
        for s in subs {
            s.sink.fail(s.start, s.n, err.clone());
        }
        for (_, (sink, start, n)) in self.units.drain() {
            sink.fail(start, n, err.clone());
        }
        for c in &mut self.conns {
            let _ = c.proc.kill();
            let _ = c.proc.join();
        }
        self.shared.finished_cv.notify_all();
    }
}

fn refused(r: Refused) -> PoolError {
    match r {
        Refused::NotRunning | Refused::DuplicateUnit | Refused::BadFeed => PoolError::NotRunning,
        Refused::Broken(m) => PoolError::InitializerFailed(m),
    }
}

/// Write as much of `c`'s pending output as the socket takes.
fn flush(c: &mut Conn) {
    while let Some(f) = c.out.front() {
        let rest = &f[c.out_off..];
        // No SIGPIPE: a dead peer is `Gone` (handled by the death path).
        let n = match crate::sys::io::send_nonblocking(c.sock.as_fd(), rest) {
            Sent::Bytes(n) => n,
            Sent::WouldBlock => return,
            Sent::Gone => {
                // EPIPE/ECONNRESET: the worker is gone; its death is seen by read/pidfd.
                c.out.clear();
                c.out_off = 0;
                return;
            }
        };
        c.out_off += n;
        if c.out_off == f.len() {
            c.out.pop_front();
            c.out_off = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::time::Duration;

    /// A driver with one forked worker, ready (no dispatcher thread).
    fn one_worker() -> Driver {
        let shared = Arc::new(Shared::new(Duration::ZERO).expect("eventfd"));
        let cfg = Config {
            processes: 1,
            maxtasksperchild: None,
            depth: 2,
        };
        let mut d = Driver::new(cfg, shared, None, None, StartMethod::Fork, Duration::ZERO);
        while d.ready_workers() < 1 {
            assert!(d.broken().is_none() && !d.is_finished());
            d.step(-1);
        }
        d
    }

    /// Bad slot notes from a worker are refused (`on_frame` is `false`: the
    /// worker is then killed, as for a corrupt frame), never a panic or a
    /// read out of bounds: a note that does not parse, one while the worker
    /// runs nothing, one naming another slot than its running unit's, one
    /// longer than a slot, one whose slot holds no `Done`. The right note is
    /// taken (and resolves the unit).
    #[test]
    fn bad_slot_notes_from_a_worker_are_refused() {
        std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
        let mut d = one_worker();
        let w = d.conns[0].id;
        let sl = d.conns[0].slots.clone().expect("slots");
        // A Done of unit 5, as a worker writes it, in both output slots.
        let mut done = vec![worker::FROM_DONE];
        done.extend_from_slice(&5u64.to_le_bytes());
        done.extend_from_slice(&[worker::DONE_RESULTS, 0, 0, 0, 0, 0, 0, 0, 0]);
        for s in 0..2 {
            // SAFETY: the worker runs nothing (nothing was sent to it): it
            // touches no slot.
            assert!(unsafe { sl.write(Side::Output, s, &done) });
        }
        let note = |s: usize, len: usize| worker::slot_note(worker::FROM_SLOT, s, len);
        assert!(!d.on_frame(w, &note(0, done.len())[4..]), "nothing running");
        // Unit 5 in flight on the worker, in slot 0 (the dispatcher's state
        // alone: the actions are not carried out, nothing reaches the worker).
        let frame = Arc::new(Frame::plain(vec![1, 0, 0, 0, worker::TO_STOP]));
        d.d.submit(5, frame).expect("running");
        assert_eq!(d.d.answer_slot(w), Some(0));
        assert!(!d.on_frame(w, &note(0, 3)[4..8]), "a short note");
        assert!(!d.on_frame(w, &note(1, done.len())[4..]), "another slot");
        assert!(
            !d.on_frame(w, &note(0, worker::SLOT_SIZE + 1)[4..]),
            "too long"
        );
        // Unit 5's answer but for its tag.
        let mut not_done = done.clone();
        not_done[0] = worker::FROM_STARTED;
        // SAFETY: as above.
        assert!(unsafe { sl.write(Side::Output, 0, &not_done) });
        assert!(!d.on_frame(w, &note(0, done.len())[4..]), "not a Done");
        // SAFETY: as above.
        assert!(unsafe { sl.write(Side::Output, 0, &done) });
        assert!(d.on_frame(w, &note(0, done.len())[4..]), "its own answer");
        assert_eq!(d.d.answer_slot(w), None, "unit 5 answered");
        assert!(!d.on_frame(w, &note(0, done.len())[4..]), "answered twice");
    }
}
