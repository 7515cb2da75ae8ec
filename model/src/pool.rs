//! The process pool's dispatch protocol: which unit of work goes to which
//! worker, what happens when a worker finishes, dies, is recycled or the pool
//! shuts down — and the worker's side of it.
//!
//! # Shape
//!
//! A pool has one *dispatcher* (a thread of the parent process in `procshare`)
//! and `processes` *workers* (forked processes). Each worker has a private
//! duplex channel to the dispatcher (a socketpair in `procshare`): units of work
//! go out, results come back, and the channel's end of stream (or the worker's
//! pidfd) tells the dispatcher at once that the worker died. A *unit* is what
//! CPython calls a task: one `apply` call or one chunk of a `map`.
//!
//! This module holds the two state machines, free of any I/O:
//!
//! * [`Dispatcher`]: fed with [`Dispatcher::submit`], [`Dispatcher::on_ready`],
//!   [`Dispatcher::on_done`], [`Dispatcher::on_died`], [`Dispatcher::close`],
//!   [`Dispatcher::terminate`]; it answers with [`Action`]s (spawn a worker,
//!   send a unit, send the stop sentinel, kill, fail a unit, finished) that the
//!   driver carries out with its transport. `procshare::pool` drives it with
//!   `poll(2)` over sockets and pidfds; the checks in `pool/tests.rs` drive the
//!   very same code with shuttle threads and channels.
//! * [`worker_main`]: the worker's loop over a [`WorkerIo`] transport.
//!
//! # Protocol
//!
//! 1. A new worker runs its initializer *before reading anything*, then sends
//!    [`FromWorker::Ready`] (or [`FromWorker::InitFailed`] and exits).
//! 2. The dispatcher sends units only to `Ready` workers, at most
//!    [`Config::depth`] at a time (prefetch: the next unit is already in the
//!    worker's socket when it finishes the current one). A worker runs its units
//!    in the order received and answers each with one [`FromWorker::Done`].
//! 3. Before running a unit's first task the worker sends
//!    [`FromWorker::Started`]. When a worker dies, the unit it reported started
//!    and did not answer is the one it was running: that unit fails with
//!    [`Failure::WorkerDied`] (it may have had side effects; it is never
//!    retried); the others in flight on it, which it never started, go back to
//!    the front of the queue in their order. (Without the `Started` report, a
//!    worker killed between two units failed a unit it never ran: the shuttle
//!    check found exactly that.) A replacement
//!    is spawned (new process, initializer runs again).
//! 4. `maxtasksperchild = m`: a worker is sent at most `m` units (CPython counts a
//!    chunk as one task, and so does this). When it has answered all of them it
//!    is sent the stop sentinel ([`ToWorker::Stop`]), exits, and is replaced.
//! 5. `close`: no new units; once the queue is empty each idle worker gets the
//!    sentinel. `terminate`: every queued or in-flight unit fails with
//!    [`Failure::Terminated`] and every live worker is killed. The dispatcher is
//!    [`Action::Finished`] once it is closed or terminated, the queue is empty
//!    and every worker it spawned has died.
//! 6. *Feeds* (`imap` over an iterator read as results come): a caller opens
//!    a feed ([`Dispatcher::open_feed`]) while the pool runs, submits its units
//!    one by one ([`Dispatcher::submit_fed`]) and closes it at the end of its
//!    input ([`Dispatcher::close_feed`]). An open feed keeps a closed pool
//!    alive: `close` refuses new work, but the units of a feed opened before
//!    it are still accepted and run, and the workers stop (and the pool
//!    finishes) only once every feed is closed and its units are done — as
//!    CPython's `close` lets an `imap` submitted before it run to the end.
//!    `terminate` and a broken pool refuse them.
//! 7. An initializer that fails (panics, or its worker dies before `Ready`)
//!    *breaks* the pool: queued units fail with [`Failure::InitFailed`], nothing
//!    is respawned, [`Dispatcher::submit`] is refused. CPython respawns such a
//!    worker forever and its callers hang.
//!
//! # Slots
//!
//! A worker's transport may carry a unit's bytes, and the worker's answer,
//! outside its channel: in shared memory, in one of `depth` fixed *input
//! slots* and `depth` *output slots* per worker, with only a short note on
//! the channel (`procshare` does so for large chunks: no copy through the
//! kernel, and the reader decodes in place). Nothing but the protocol keeps
//! a slot's writer and its reader apart, so the protocol decides who may
//! touch which slot when:
//!
//! 8. The dispatcher gives the `k`-th unit it sends to a worker slot
//!    `k % depth` ([`Action::Send`]); the worker answers a unit that came in
//!    slot `s` in output slot `s` ([`FromWorker::Done`]), never another, and
//!    reads a unit's input slot only between receiving it and sending its
//!    `Done`. The dispatcher reads an answer's output slot while it handles
//!    that `Done`, before it sends anything more to that worker.
//!
//! Why that is enough: with at most `depth` units in flight on a worker, the
//! dispatcher sends unit `k + depth` (reusing input slot `s`) only after it
//! handled unit `k`'s `Done`, which the worker sent after its last read of
//! unit `k`'s input; and the worker writes output slot `s` again only for
//! unit `k + depth`, which it received after the dispatcher had read unit
//! `k`'s answer. A slot is never written while its reader may still read
//! it, whatever runs in between (the dispatcher's [`Dispatcher::on_done`]
//! also refuses an answer that names another slot than its unit's). A
//! worker's slots die with it: a replacement gets new ones.
//!
//! # Invariants (checked by shuttle in `pool/tests.rs`)
//!
//! * every submitted unit is resolved exactly once: delivered (its worker
//!   answered `Done`) or failed — `WorkerDied` only if the worker that died had
//!   started it;
//! * no task runs twice, and none runs on a worker before that worker's
//!   initializer finished;
//! * no worker runs more than `maxtasksperchild` units;
//! * after `close`, the pool finishes (no deadlock, no lost unit), and every
//!   unit of a feed opened before the `close` runs;
//! * a slot is never overwritten while its reader may read it: a worker
//!   reads its own unit's bytes in its input slot, and the dispatcher reads
//!   the answer's bytes in the output slot the `Done` names.
//!
//! These are checked with shuttle, not loom: the protocol has no atomics (the
//! dispatcher is one thread and talks to each worker by messages over its own
//! channel; the slots, the only memory it shares, change hands by those
//! messages, whose send and receive order the writer's bytes before the
//! reader's), so there is no memory ordering for loom to explore, while the
//! interleavings of many workers' messages, deaths and replacements — more
//! threads than loom's limit of 5 once a replacement is spawned — are what
//! shuttle's random and PCT schedulers explore. A worker is killed at every
//! step it can reach ([`crate::testkit::every_crash_point`]), and every
//! seeded mutant 801–811 is shown caught for the right reason
//! ([`crate::testkit::fails_with`]).

use crate::platform::{mutant, Mutant, WithMutant};
use std::collections::VecDeque;

/// A worker that dies before reporting `Ready` (killed, or its initializer
/// exited the process) is replaced; after this many such deaths in a row the
/// pool is broken instead of respawning forever.
pub const MAX_STARTUP_DEATHS: u32 = 3;

/// A unit's id (chosen by the submitter; unique among live units).
pub type UnitId = u64;
/// A worker's id (assigned by the dispatcher, never reused).
pub type WorkerId = u64;

/// Seeded bug: a dead worker's running unit is silently dropped (never resolved).
#[doc(hidden)]
pub const MUTANT_DROP_ON_DEATH: Mutant = Mutant(801);
/// Seeded bug: a dead worker's running unit is re-queued (its tasks may run twice).
#[doc(hidden)]
pub const MUTANT_RETRY_RUNNING: Mutant = Mutant(802);
/// Seeded bug: the worker runs its initializer lazily, after its first unit.
#[doc(hidden)]
pub const MUTANT_LATE_INIT: Mutant = Mutant(803);
/// Seeded bug: a dead worker is not replaced.
#[doc(hidden)]
pub const MUTANT_NO_REPLACE: Mutant = Mutant(804);
/// Seeded bug: every unit in flight on a dead worker fails, also those it never started.
#[doc(hidden)]
pub const MUTANT_FAIL_PREFETCHED: Mutant = Mutant(805);
/// Seeded bug: the pool reports finished once the queue is empty, without
/// waiting for the units in flight and the workers' exits.
#[doc(hidden)]
pub const MUTANT_EARLY_FINISH: Mutant = Mutant(806);
/// Seeded bug: off-by-one in `maxtasksperchild` (a worker gets one unit too many).
#[doc(hidden)]
pub const MUTANT_MAXTASKS_OFF_BY_ONE: Mutant = Mutant(807);
/// Seeded bug: a dead worker's first unit in flight is failed even when the
/// worker never reported it started (the bug the shuttle check found in the
/// first version of this protocol, which had no `Started` report).
#[doc(hidden)]
pub const MUTANT_FAIL_UNSTARTED_FRONT: Mutant = Mutant(808);

/// Seeded bug: `close` ignores the open feeds (the workers stop and the pool
/// finishes while an `imap` opened before the `close` still submits units).
#[doc(hidden)]
pub const MUTANT_CLOSE_IGNORES_FEEDS: Mutant = Mutant(809);

/// Seeded bug: every unit gets input slot 0 (the dispatcher overwrites a
/// prefetched unit's bytes, or those of the unit the worker runs).
#[doc(hidden)]
pub const MUTANT_ONE_INPUT_SLOT: Mutant = Mutant(810);
/// Seeded bug: the worker answers every slotted unit in output slot 0 (it
/// overwrites an answer the dispatcher has not read yet).
#[doc(hidden)]
pub const MUTANT_ONE_OUTPUT_SLOT: Mutant = Mutant(811);

/// A feed's id (chosen by the caller; unique among open feeds).
pub type FeedId = u64;

/// The pool's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Number of workers (at least 1).
    pub processes: usize,
    /// Recycle a worker after this many units (`None`: never).
    pub maxtasksperchild: Option<u64>,
    /// Units in flight per worker (1: none prefetched). At least 1.
    pub depth: usize,
}

/// Why a unit failed without a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The worker running it died (killed, crashed, exited) before answering.
    WorkerDied {
        /// The dead worker.
        worker: WorkerId,
    },
    /// A worker's initializer failed; the pool is broken.
    InitFailed(String),
    /// The pool was terminated before the unit finished.
    Terminated,
}

/// What the driver must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start worker `worker` (it runs its initializer, then reports).
    Spawn {
        /// The new worker's id.
        worker: WorkerId,
    },
    /// Send unit `unit` (its payload: [`Dispatcher::payload`]) to `worker`.
    Send {
        /// To whom.
        worker: WorkerId,
        /// Which unit.
        unit: UnitId,
        /// The unit's *slot* on that worker (see "Slots" in the module
        /// documentation): the transport may carry the unit's bytes in the
        /// worker's input slot `slot`, and the worker its answer in its
        /// output slot `slot`.
        slot: usize,
    },
    /// Send the stop sentinel to `worker` (it exits after its units).
    Stop {
        /// To whom.
        worker: WorkerId,
    },
    /// Kill `worker` at once (terminate).
    Kill {
        /// Whom.
        worker: WorkerId,
    },
    /// Resolve `unit` with this failure (its payload is released).
    Fail {
        /// Which unit.
        unit: UnitId,
        /// Why.
        failure: Failure,
    },
    /// Everything is done: every worker died, nothing is queued. Last action.
    Finished,
}

/// A submission was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// After `close` or `terminate` (CPython: `ValueError: Pool not running`).
    NotRunning,
    /// A worker's initializer failed.
    Broken(String),
    /// The unit id is already in use.
    DuplicateUnit,
    /// The feed id is already open (open), or not open (submit).
    BadFeed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WState {
    /// Spawned; its initializer has not reported yet.
    Starting,
    /// Initialized; may be sent units.
    Ready,
    /// Sent the stop sentinel (or killed); waiting for its death.
    Stopping,
}

#[derive(Debug)]
struct Worker {
    id: WorkerId,
    state: WState,
    /// Units sent and not answered, with their slots, in the order sent
    /// (the front is running).
    inflight: VecDeque<(UnitId, usize)>,
    /// Units ever sent (for `maxtasksperchild`).
    sent: u64,
    /// The front of `inflight` was reported started.
    running: bool,
}

/// The dispatcher state machine (see the module documentation).
///
/// `P` is a unit's payload, kept until the unit is resolved so that a unit a
/// dead worker never started can be sent again. `M` selects a seeded mutant,
/// `Mutant(M)` (0: the correct protocol; the shipped pool uses 0), read
/// with `mutant::<WithMutant<M>>` as every protocol reads its platform's.
#[derive(Debug)]
pub struct Dispatcher<P, const M: u32 = 0> {
    cfg: Config,
    /// Live workers (spawned and not yet dead), in spawn order.
    workers: Vec<Worker>,
    next_worker: WorkerId,
    /// Units waiting for a worker, in order.
    queue: VecDeque<UnitId>,
    /// Open feeds.
    feeds: std::collections::HashSet<FeedId>,
    /// Payloads of unresolved units.
    payloads: std::collections::HashMap<UnitId, P>,
    closed: bool,
    terminated: bool,
    broken: Option<String>,
    /// Workers that died before `Ready` since the last `Ready`.
    startup_deaths: u32,
    finished: bool,
    actions: VecDeque<Action>,
}

impl<P, const M: u32> Dispatcher<P, M> {
    /// A dispatcher; its first actions spawn the workers. `processes` and `depth`
    /// are raised to at least 1 (the caller validates user input).
    pub fn new(mut cfg: Config) -> Self {
        cfg.processes = cfg.processes.max(1);
        cfg.depth = cfg.depth.max(1);
        let mut d = Dispatcher {
            cfg,
            workers: Vec::new(),
            next_worker: 1,
            queue: VecDeque::new(),
            feeds: Default::default(),
            payloads: Default::default(),
            closed: false,
            terminated: false,
            broken: None,
            startup_deaths: 0,
            finished: false,
            actions: VecDeque::new(),
        };
        d.pump();
        d
    }

    /// The next action to carry out, if any.
    pub fn next_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The payload of an unresolved unit (for [`Action::Send`]).
    pub fn payload(&self, unit: UnitId) -> Option<&P> {
        self.payloads.get(&unit)
    }

    /// Is the pool accepting units?
    pub fn is_running(&self) -> bool {
        !self.closed && !self.terminated && self.broken.is_none()
    }

    /// Has [`Action::Finished`] been issued?
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The failure message if an initializer failed.
    pub fn broken(&self) -> Option<&str> {
        self.broken.as_deref()
    }

    /// Number of workers currently alive from the dispatcher's point of view.
    pub fn live_workers(&self) -> usize {
        self.workers.len()
    }

    /// Number of workers that reported `Ready` and are not stopping.
    pub fn ready_workers(&self) -> usize {
        self.workers
            .iter()
            .filter(|w| w.state == WState::Ready)
            .count()
    }

    /// Units submitted and not yet resolved.
    pub fn pending(&self) -> usize {
        self.payloads.len()
    }

    /// Queue a unit.
    pub fn submit(&mut self, unit: UnitId, payload: P) -> Result<(), Refused> {
        if let Some(b) = &self.broken {
            return Err(Refused::Broken(b.clone()));
        }
        if self.closed || self.terminated {
            return Err(Refused::NotRunning);
        }
        if self.payloads.contains_key(&unit) {
            return Err(Refused::DuplicateUnit);
        }
        self.payloads.insert(unit, payload);
        self.queue.push_back(unit);
        self.pump();
        Ok(())
    }

    /// Open feed `feed` (see the module documentation, step 6): refused after
    /// `close`, `terminate` or a failed initializer.
    pub fn open_feed(&mut self, feed: FeedId) -> Result<(), Refused> {
        if let Some(b) = &self.broken {
            return Err(Refused::Broken(b.clone()));
        }
        if self.closed || self.terminated {
            return Err(Refused::NotRunning);
        }
        if !self.feeds.insert(feed) {
            return Err(Refused::BadFeed);
        }
        Ok(())
    }

    /// Queue a unit of the open feed `feed`: accepted after `close` while the
    /// feed is open; refused after `terminate` or a failed initializer.
    pub fn submit_fed(&mut self, feed: FeedId, unit: UnitId, payload: P) -> Result<(), Refused> {
        if let Some(b) = &self.broken {
            return Err(Refused::Broken(b.clone()));
        }
        if self.terminated {
            return Err(Refused::NotRunning);
        }
        if !self.feeds.contains(&feed) {
            return Err(Refused::BadFeed);
        }
        if self.payloads.contains_key(&unit) {
            return Err(Refused::DuplicateUnit);
        }
        self.payloads.insert(unit, payload);
        self.queue.push_back(unit);
        self.pump();
        Ok(())
    }

    /// Feed `feed` has no more units (its units already queued still run).
    pub fn close_feed(&mut self, feed: FeedId) {
        self.feeds.remove(&feed);
        self.pump();
    }

    fn find(&mut self, w: WorkerId) -> Option<&mut Worker> {
        self.workers.iter_mut().find(|x| x.id == w)
    }

    /// Worker `w`'s initializer finished.
    pub fn on_ready(&mut self, w: WorkerId) {
        if let Some(x) = self.find(w) {
            if x.state == WState::Starting {
                x.state = WState::Ready;
            }
        }
        self.startup_deaths = 0;
        self.pump();
    }

    /// Worker `w`'s initializer failed with `msg`: the pool is broken. The
    /// worker exits by itself ([`Dispatcher::on_died`] follows).
    pub fn on_init_failed(&mut self, w: WorkerId, msg: String) {
        if let Some(x) = self.find(w) {
            x.state = WState::Stopping;
        }
        self.break_pool(msg);
        self.pump();
    }

    fn break_pool(&mut self, msg: String) {
        if self.broken.is_some() || self.terminated {
            return;
        }
        self.broken = Some(msg.clone());
        while let Some(u) = self.queue.pop_front() {
            self.fail(u, Failure::InitFailed(msg.clone()));
        }
    }

    fn fail(&mut self, unit: UnitId, failure: Failure) {
        if self.payloads.remove(&unit).is_some() {
            self.actions.push_back(Action::Fail { unit, failure });
        }
    }

    /// Worker `w` answered unit `unit`, in output slot `slot` (`None`: not
    /// in a slot). Returns `true` when the driver must deliver the results
    /// (exactly once per unit); `false` means the answer does not match what
    /// `w` was running, or names another slot than the unit's (a protocol
    /// violation: the driver should kill that worker).
    pub fn on_done(&mut self, w: WorkerId, unit: UnitId, slot: Option<usize>) -> bool {
        let ok = match self.find(w) {
            Some(x)
                if x.inflight
                    .front()
                    .is_some_and(|&(u, s)| u == unit && slot.map_or(true, |t| t == s)) =>
            {
                x.inflight.pop_front();
                x.running = false;
                true
            }
            _ => false,
        };
        if ok {
            self.payloads.remove(&unit);
        }
        self.pump();
        ok
    }

    /// The output slot worker `w` may answer in now: that of the unit it
    /// runs (the front of its units in flight), if it has any. A driver that
    /// reads answers in place checks a note's slot against it before
    /// reading.
    pub fn answer_slot(&self, w: WorkerId) -> Option<usize> {
        self.workers
            .iter()
            .find(|x| x.id == w)
            .and_then(|x| x.inflight.front())
            .map(|&(_, s)| s)
    }

    /// Worker `w` reports that it starts unit `unit` (sent before the unit's
    /// first task runs). Returns `false` on a protocol violation (not the
    /// unit expected next).
    pub fn on_started(&mut self, w: WorkerId, unit: UnitId) -> bool {
        match self.find(w) {
            Some(x) if x.inflight.front().map(|f| f.0) == Some(unit) && !x.running => {
                x.running = true;
                true
            }
            // Terminated: its units were already failed.
            Some(x) if x.state == WState::Stopping && x.inflight.is_empty() => true,
            _ => false,
        }
    }

    /// Worker `w` died (end of stream on its channel, or its pidfd fired, after
    /// everything it sent was read).
    pub fn on_died(&mut self, w: WorkerId) {
        let Some(i) = self.workers.iter().position(|x| x.id == w) else {
            return;
        };
        let x = self.workers.remove(i);
        if x.state == WState::Starting && !self.terminated {
            self.startup_deaths += 1;
            if self.startup_deaths > MAX_STARTUP_DEATHS {
                self.break_pool(format!(
                    "{} workers in a row died while running their initializer",
                    self.startup_deaths
                ));
            }
        }
        let mut inflight: VecDeque<UnitId> = x.inflight.into_iter().map(|(u, _)| u).collect();
        if mutant::<WithMutant<M>>(MUTANT_FAIL_PREFETCHED) {
            while let Some(u) = inflight.pop_front() {
                self.fail(u, Failure::WorkerDied { worker: w });
            }
        }
        // The unit it reported started is the one it was running: it fails
        // (it may have had side effects) and is never retried.
        if x.running || mutant::<WithMutant<M>>(MUTANT_FAIL_UNSTARTED_FRONT) {
            if let Some(running) = inflight.pop_front() {
                if mutant::<WithMutant<M>>(MUTANT_DROP_ON_DEATH) {
                    self.payloads.remove(&running);
                } else if mutant::<WithMutant<M>>(MUTANT_RETRY_RUNNING) {
                    inflight.push_front(running);
                } else {
                    self.fail(running, Failure::WorkerDied { worker: w });
                }
            }
        }
        // Never started: back to the front of the queue, in order.
        while let Some(u) = inflight.pop_back() {
            if self.terminated || self.broken.is_some() {
                let f = match &self.broken {
                    Some(b) if !self.terminated => Failure::InitFailed(b.clone()),
                    _ => Failure::Terminated,
                };
                self.fail(u, f);
            } else {
                self.queue.push_front(u);
            }
        }
        self.pump();
    }

    /// No more units (CPython's `close()`); the workers stop once the queue is drained.
    pub fn close(&mut self) {
        self.closed = true;
        self.pump();
    }

    /// Fail every unresolved unit and kill every worker (CPython's `terminate()`).
    pub fn terminate(&mut self) {
        if self.terminated {
            return;
        }
        self.terminated = true;
        self.closed = true;
        while let Some(u) = self.queue.pop_front() {
            self.fail(u, Failure::Terminated);
        }
        let mut kills = Vec::new();
        let mut fails = Vec::new();
        for x in &mut self.workers {
            fails.extend(x.inflight.drain(..).map(|(u, _)| u));
            x.state = WState::Stopping;
            kills.push(x.id);
        }
        for u in fails {
            self.fail(u, Failure::Terminated);
        }
        for w in kills {
            self.actions.push_back(Action::Kill { worker: w });
        }
        self.pump();
    }

    fn spawn(&mut self) {
        let id = self.next_worker;
        self.next_worker += 1;
        self.workers.push(Worker {
            id,
            state: WState::Starting,
            inflight: VecDeque::new(),
            sent: 0,
            running: false,
        });
        self.actions.push_back(Action::Spawn { worker: id });
    }

    /// Mutant 804 spawns only the initial workers.
    fn may_spawn(&self) -> bool {
        !mutant::<WithMutant<M>>(MUTANT_NO_REPLACE) || self.next_worker <= self.cfg.processes as u64
    }

    /// Bring the pool to its next stable state (after every event).
    fn pump(&mut self) {
        if self.finished {
            return;
        }
        let stopping = self.terminated || self.broken.is_some();
        // An open feed may still submit units: a closed pool keeps its workers.
        let feeding =
            !self.feeds.is_empty() && !mutant::<WithMutant<M>>(MUTANT_CLOSE_IGNORES_FEEDS);
        let max = self.cfg.maxtasksperchild.map(|m| {
            if mutant::<WithMutant<M>>(MUTANT_MAXTASKS_OFF_BY_ONE) {
                m + 1
            } else {
                m
            }
        });
        if !stopping {
            // Replace dead and recycled workers while there is (or may come) work.
            let live = self
                .workers
                .iter()
                .filter(|x| x.state != WState::Stopping)
                .count();
            let want = if self.closed && self.queue.is_empty() && !feeding {
                0
            } else {
                self.cfg.processes
            };
            let mut live = live;
            while live < want && self.may_spawn() {
                self.spawn();
                live += 1;
            }
            // Hand out queued units, one per worker per round (balance), up to `depth`.
            let may_send =
                |x: &Worker| x.state == WState::Ready && max.map_or(true, |m| x.sent < m);
            for round in 1..=self.cfg.depth {
                for x in self.workers.iter_mut() {
                    if self.queue.is_empty() {
                        break;
                    }
                    if may_send(x) && x.inflight.len() < round {
                        let u = self.queue.pop_front().expect("not empty");
                        // The `sent`-th unit takes slot `sent % depth`: with at
                        // most `depth` in flight, the unit that last had it
                        // was answered (see "Slots").
                        let slot = if mutant::<WithMutant<M>>(MUTANT_ONE_INPUT_SLOT) {
                            0
                        } else {
                            (x.sent % self.cfg.depth as u64) as usize
                        };
                        x.inflight.push_back((u, slot));
                        x.sent += 1;
                        self.actions.push_back(Action::Send {
                            worker: x.id,
                            unit: u,
                            slot,
                        });
                    }
                }
            }
            // Recycle workers that used up their units; stop idle ones after close.
            let drained = self.closed && self.queue.is_empty() && !feeding;
            for x in self.workers.iter_mut() {
                let used_up = max.is_some_and(|m| x.sent >= m);
                if x.state == WState::Ready && x.inflight.is_empty() && (used_up || drained) {
                    x.state = WState::Stopping;
                    self.actions.push_back(Action::Stop { worker: x.id });
                }
            }
            // A recycled worker leaves a gap: fill it now (not at its death) so
            // that the pool keeps its size while the old one exits.
            let live = self
                .workers
                .iter()
                .filter(|x| x.state != WState::Stopping)
                .count();
            let mut live = live;
            while live < want && self.may_spawn() {
                self.spawn();
                live += 1;
            }
        } else {
            // Broken: idle workers are told to stop; busy ones finish their units.
            for x in self.workers.iter_mut() {
                if x.state != WState::Stopping && x.inflight.is_empty() {
                    x.state = WState::Stopping;
                    self.actions.push_back(Action::Stop { worker: x.id });
                }
            }
        }
        if ((self.closed && (!feeding || self.terminated)) || self.broken.is_some())
            && self.queue.is_empty()
            && (self.workers.is_empty() || mutant::<WithMutant<M>>(MUTANT_EARLY_FINISH))
        {
            self.finished = true;
            self.actions.push_back(Action::Finished);
        }
    }
}

/// A message to a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToWorker<P> {
    /// Run this unit and answer [`FromWorker::Done`].
    Unit {
        /// Its id.
        unit: UnitId,
        /// Its slot ([`Action::Send`]), if its bytes came in the worker's
        /// input slot (`None`: inline, on the channel).
        slot: Option<usize>,
        /// Its payload.
        payload: P,
    },
    /// The stop sentinel: exit.
    Stop,
}

/// A message from a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FromWorker<R> {
    /// The initializer finished; units may be sent.
    Ready,
    /// The initializer failed (its panic message); the worker exits.
    InitFailed(String),
    /// The worker starts unit `unit` (sent before its first task runs).
    Started {
        /// Which unit.
        unit: UnitId,
    },
    /// Unit `unit` finished with these results (per-task successes or errors).
    Done {
        /// Which unit.
        unit: UnitId,
        /// The output slot the worker may write the results in: the unit's
        /// own slot, if it came in one (`None`: the results go inline).
        slot: Option<usize>,
        /// Its results.
        results: R,
    },
}

/// A worker's transport to its dispatcher.
pub trait WorkerIo {
    /// A unit's payload.
    type Payload;
    /// A unit's results.
    type Results;
    /// The next message; `None` when the dispatcher is gone (end of stream) or
    /// the message is unreadable (the worker then exits).
    fn recv(&mut self) -> Option<ToWorker<Self::Payload>>;
    /// Send a message; `false` when the dispatcher is gone.
    fn send(&mut self, m: FromWorker<Self::Results>) -> bool;
}

/// How a worker's loop ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerExit {
    /// It received the stop sentinel.
    Stopped,
    /// Its dispatcher went away.
    Orphaned,
    /// Its initializer failed.
    InitFailed,
}

/// A worker's life: initializer first, then units in order until the sentinel.
///
/// `init` returns the initializer's panic message on failure; `run` runs one
/// unit and returns its results (it catches per-task panics itself).
pub fn worker_main<Io: WorkerIo, const M: u32>(
    io: &mut Io,
    init: impl FnOnce() -> Result<(), String>,
    mut run: impl FnMut(UnitId, Io::Payload) -> Io::Results,
) -> WorkerExit {
    let mut init = Some(init);
    if !mutant::<WithMutant<M>>(MUTANT_LATE_INIT) {
        if let Err(msg) = (init.take().expect("once"))() {
            io.send(FromWorker::InitFailed(msg));
            return WorkerExit::InitFailed;
        }
    }
    if !io.send(FromWorker::Ready) {
        return WorkerExit::Orphaned;
    }
    loop {
        match io.recv() {
            None => return WorkerExit::Orphaned,
            Some(ToWorker::Stop) => return WorkerExit::Stopped,
            Some(ToWorker::Unit {
                unit,
                slot,
                payload,
            }) => {
                if !io.send(FromWorker::Started { unit }) {
                    return WorkerExit::Orphaned;
                }
                let results = run(unit, payload);
                if let Some(f) = init.take() {
                    // Mutant 803 only: the initializer runs after the first unit.
                    let _ = f();
                }
                // The answer goes in the unit's own slot, never another
                // (see "Slots").
                let slot = if mutant::<WithMutant<M>>(MUTANT_ONE_OUTPUT_SLOT) {
                    slot.map(|_| 0)
                } else {
                    slot
                };
                if !io.send(FromWorker::Done {
                    unit,
                    slot,
                    results,
                }) {
                    return WorkerExit::Orphaned;
                }
            }
        }
    }
}

#[cfg(all(test, feature = "checkers"))]
mod tests;
