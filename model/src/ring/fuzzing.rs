//! The queue-ring check harness, shared by the loom/shuttle checks and the
//! `queue_protocol` fuzz target: model producers and consumers run a
//! [`Spec`](crate::ring::fuzzing::Spec) under a schedule that the fuzz input chooses (a shuttle
//! [`Scheduler`](shuttle::scheduler::Scheduler) fed by the input bytes).

use super::*;
use crate::platform::CellLike;
use std::collections::BTreeSet;
use std::sync::Mutex as StdMutex;

/// The bytes of producer `p`'s message number `seq`, `len` bytes long (>= 2).
pub fn message(p: u8, seq: u8, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len);
    v.push(p);
    v.push(seq);
    for i in 2..len {
        v.push((p as usize * 31 + seq as usize * 7 + i) as u8);
    }
    v
}

/// A ring with its storage, as the checks share it between model threads.
pub struct Q<P: Platform> {
    h: RingHeader<P>,
    slots: Vec<P::Cell<Chunk>>,
}

impl<P: Platform> core::fmt::Debug for Q<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Q").finish_non_exhaustive()
    }
}

impl<P: Platform> Q<P> {
    /// A ring of `cap` chunks and item bound `max_items`.
    pub fn new(cap: u64, max_items: u32) -> Self {
        Self::with_header(RingHeader::new(cap, max_items))
    }

    /// A ring over header `h` (with as many chunks as it says).
    pub fn with_header(h: RingHeader<P>) -> Self {
        let n = h.capacity();
        Q {
            h,
            slots: (0..n).map(|_| P::Cell::new([0u8; CHUNK])).collect(),
        }
    }
    /// The ring over this storage.
    pub fn ring(&self) -> Ring<'_, P> {
        Ring::new(&self.h, &self.slots).expect("consistent ring")
    }
}

/// What one model execution does.
#[derive(Clone, Debug)]
pub struct Spec {
    /// Ring capacity in chunks.
    pub cap: u64,
    /// Item bound (0: none).
    pub max_items: u32,
    /// Per producer: the sizes of its messages, in order.
    pub producers: Vec<Vec<usize>>,
    /// Number of consumers.
    pub consumers: u32,
    /// Which thread dies at which crash point: (thread index, k). Producers
    /// are 0.., consumers follow.
    pub crash: Option<(usize, u32)>,
    /// Mix timed and non-blocking operations in (op i of a thread is: 0 blocking,
    /// 1 timed, 2 try, by `i % 3`); otherwise all block.
    pub mixed: bool,
    /// The n-th wait of the first consumer returns spuriously.
    pub spurious: Option<u32>,
    /// The ring reclaims memory in units of `2^reclaim` chunks (0: never).
    pub reclaim: u32,
    /// Producers put every message that fits one piece through a writer
    /// ([`Message::Written`]), after a writer that fails half-way (which
    /// must publish nothing) for every odd-numbered one; consumers take
    /// every message with [`Ring::get_view`] (in place when it lies in one
    /// stretch).
    pub written: bool,
}

/// What the threads report, checked at the end.
#[derive(Debug, Default)]
pub struct Log {
    /// Messages put successfully: (producer, seq).
    pub put_ok: BTreeSet<(u8, u8)>,
    /// Messages delivered.
    pub got: BTreeSet<(u8, u8)>,
    /// Which producers / consumers died.
    pub dead_producers: BTreeSet<u8>,
    /// How many consumers died.
    pub dead_consumers: u32,
}

/// Lock a std mutex, ignoring poison.
pub fn lock<T>(m: &StdMutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Check a delivered message and record it.
pub fn received(log: &StdMutex<Log>, spec: &Spec, last: &mut [Option<u8>], m: &[u8]) {
    crate::check!(m.len() >= 2, "torn message: {} bytes", m.len());
    let (p, seq) = (m[0], m[1]);
    crate::check!(
        (p as usize) < spec.producers.len() && (seq as usize) < spec.producers[p as usize].len(),
        "torn message: unknown producer/seq {p}/{seq}"
    );
    let want = message(p, seq, spec.producers[p as usize][seq as usize]);
    crate::check!(
        m == &want[..],
        "torn or partial message from {p}/{seq}: {} bytes, want {}",
        m.len(),
        want.len()
    );
    if let Some(prev) = last[p as usize] {
        crate::check!(
            prev < seq,
            "reordered or duplicated: {p}/{seq} after {p}/{prev}"
        );
    }
    last[p as usize] = Some(seq);
    crate::check!(
        lock(log).got.insert((p, seq)),
        "duplicated message {p}/{seq}"
    );
}

fn op_wait(spec: &Spec, i: usize) -> Wait {
    if !spec.mixed {
        return Wait::For(None);
    }
    match i % 3 {
        0 => Wait::For(None),
        1 => Wait::For(Some(Duration::from_millis(1))),
        _ => Wait::No,
    }
}

/// The producer body: put each message, record the successful ones.
pub fn producer<P: Platform>(q: &Q<P>, t: &P::Thread, spec: &Spec, p: usize, log: &StdMutex<Log>) {
    let r = q.ring();
    for (seq, &len) in spec.producers[p].iter().enumerate() {
        let m = message(p as u8, seq as u8, len);
        let w = op_wait(spec, seq);
        let one_piece = len <= r.max_single_piece();
        if spec.written && one_piece && seq % 2 == 1 {
            // A writer that gives up half-way: nothing may be published.
            let mut give_up = |s: &mut dyn Sink| {
                let _ = s.write(&m[..len / 2]);
                false
            };
            let msg = Message::Written {
                len,
                write: &mut give_up,
            };
            match r.put_message(t, msg, w) {
                Err(RingError::Unwritten | RingError::Full) => {}
                other => crate::testkit::violation(&format!(
                    "a writer that failed: {other:?}, not Unwritten"
                )),
            }
        }
        let mut write = |s: &mut dyn Sink| {
            // In two parts, as an encoder writes a length and then a body.
            let (a, b) = m.split_at(len / 3);
            s.write(a) && s.write(b)
        };
        let msg = if spec.written && one_piece {
            Message::Written {
                len,
                write: &mut write,
            }
        } else {
            Message::Bytes(&m)
        };
        match r.put_message(t, msg, w) {
            Ok(()) => {
                lock(log).put_ok.insert((p as u8, seq as u8));
            }
            Err(RingError::Full) => crate::check!(
                spec.mixed || spec.max_items > 0,
                "blocking put returned Full"
            ),
            Err(e) => crate::testkit::violation(&format!("put failed: {e:?}")),
        }
    }
}

/// The consumer body: get until `Closed`.
pub fn consumer<P: Platform>(q: &Q<P>, t: &P::Thread, spec: &Spec, log: &StdMutex<Log>) {
    let r = q.ring();
    let mut last = vec![None; spec.producers.len()];
    let mut buf = Vec::new();
    let mut i = 0;
    loop {
        // A consumer's first two gets are timed and non-blocking (in mixed
        // mode), the rest block: the model's time does not pass, so an
        // endless poll would be an endless execution.
        let w = if i < 2 {
            op_wait(spec, i + 1)
        } else {
            Wait::For(None)
        };
        i += 1;
        let got = if spec.written {
            // Checked once the `get` returned: a consumer that dies after
            // reading but before freeing delivered nothing (the next one
            // reads the message again).
            r.get_view(t, &mut buf, w, usize::MAX, |m| m.to_vec())
                .map(|m| received(log, spec, &mut last, &m))
        } else {
            r.get(t, &mut buf, w)
                .map(|()| received(log, spec, &mut last, &buf))
        };
        match got {
            Ok(()) => {}
            Err(RingError::Closed) => return,
            Err(RingError::Empty) => {
                crate::check!(w != Wait::For(None), "blocking get returned Empty")
            }
            Err(e) => crate::testkit::violation(&format!("get failed: {e:?}")),
        }
    }
}

/// The final accounting, after every thread ended.
pub fn account(spec: &Spec, log: &Log) {
    let mut lost = 0;
    for p in &log.put_ok {
        if !log.got.contains(p) {
            lost += 1;
        }
    }
    for g in &log.got {
        // A dead producer's last message may be delivered without its `put`
        // having returned; anything else delivered must have been put.
        crate::check!(
            log.put_ok.contains(g) || log.dead_producers.contains(&g.0),
            "delivered {g:?} that no put accepted"
        );
    }
    crate::check!(
        lost <= log.dead_consumers,
        "lost {lost} messages with {} consumer deaths (put {:?}, got {:?}, spec {spec:?})",
        log.dead_consumers,
        log.put_ok,
        log.got
    );
}

/// One execution of `spec` under a checker (the module's `run`, `world`,
/// `ModelThread`, `spawn`). A macro because loom and shuttle have the same
/// API under different paths.
#[doc(hidden)]
#[macro_export]
macro_rules! __ring_body {
    ($checker:ident, $plat:ident, $M:ty, $spec:expr, $died:expr) => {{
        use std::sync::atomic::Ordering::{AcqRel, SeqCst};
        use std::sync::{Arc, Mutex as StdMutex};
        use $crate::ring::fuzzing::{account, consumer, lock, producer, Log, Spec, Q};
        use $crate::$plat::{run, world, ModelThread};
        let spec: Spec = $spec;
        let world = world();
        let q = Arc::new(Q::<_>::with_header(
            $crate::ring::RingHeader::new(spec.cap, spec.max_items).with_reclaim(spec.reclaim),
        ));
        let log = Arc::new(StdMutex::new(Log::default()));
        let nprod = spec.producers.len();
        // A checker atomic: "every producer is done" must synchronize with
        // the producers' puts (it does in a real program, too).
        let live = Arc::new($checker::sync::atomic::AtomicU32::new(nprod as u32));
        let mut hs = Vec::new();
        for p in 0..nprod {
            let (q, log, world, spec, live) = (
                q.clone(),
                log.clone(),
                world.clone(),
                spec.clone(),
                live.clone(),
            );
            hs.push($checker::thread::spawn(move || {
                let crash = spec.crash.filter(|c| c.0 == p).map(|c| c.1);
                let t = ModelThread::new(&world, 1 + p as u32).crash_at(crash);
                let q: &Q<$M> = &q;
                let died = run(&t, |t| producer(q, t, &spec, p, &log));
                if died {
                    lock(&log).dead_producers.insert(p as u8);
                }
                // The last producer to finish (a supervisor, once every producer
                // is done) closes the queue so that consumers end.
                if live.fetch_sub(1, AcqRel) == 1 {
                    let closer = ModelThread::new(&world, 40);
                    q.ring().close(&closer);
                }
                died
            }));
        }
        for c in 0..spec.consumers as usize {
            let (q, log, world, spec) = (q.clone(), log.clone(), world.clone(), spec.clone());
            hs.push($checker::thread::spawn(move || {
                let crash = spec.crash.filter(|x| x.0 == nprod + c).map(|x| x.1);
                let t = ModelThread::new(&world, 20 + c as u32)
                    .crash_at(crash)
                    .spurious_at(if c == 0 { spec.spurious } else { None });
                let q: &Q<$M> = &q;
                let died = run(&t, |t| consumer(q, t, &spec, &log));
                if died {
                    lock(&log).dead_consumers += 1;
                }
                died
            }));
        }
        let mut any = false;
        for h in hs {
            any |= h.join().unwrap();
        }
        if any {
            $died.store(true, SeqCst);
        }
        account(&spec, &lock(&log));
    }};
}

pub use crate::__ring_body as body;

/// A shuttle scheduler whose every choice is the next input byte (modulo
/// the number of runnable tasks); when the input runs out it rotates
/// through the runnable tasks. One execution.
#[derive(Debug)]
pub struct ByteScheduler {
    data: Vec<u8>,
    pos: usize,
    started: bool,
}

impl ByteScheduler {
    /// A scheduler for one execution driven by `data`.
    pub fn new(data: &[u8]) -> Self {
        ByteScheduler {
            data: data.to_vec(),
            pos: 0,
            started: false,
        }
    }
}

impl shuttle::scheduler::Scheduler for ByteScheduler {
    fn new_execution(&mut self) -> Option<shuttle::scheduler::Schedule> {
        if self.started {
            return None;
        }
        self.started = true;
        Some(shuttle::scheduler::Schedule::new(0))
    }

    fn next_task(
        &mut self,
        runnable: &[&shuttle::scheduler::Task],
        _current: Option<shuttle::scheduler::TaskId>,
        _yielding: bool,
    ) -> Option<shuttle::scheduler::TaskId> {
        let i = match self.data.get(self.pos) {
            Some(&b) => b as usize,
            None => self.pos,
        };
        self.pos += 1;
        Some(runnable[i % runnable.len()].id())
    }

    fn next_u64(&mut self) -> u64 {
        self.pos as u64
    }
}

/// Decode a [`Spec`] from the first bytes of a fuzz input; the rest is the schedule.
pub fn spec_from_bytes(data: &[u8]) -> (Spec, &[u8]) {
    let mut used = 0usize;
    let mut next = || {
        used += 1;
        data.get(used - 1).copied().unwrap_or(0)
    };
    let cap = 1 + (next() % 8) as u64;
    let max_items = (next() % 4) as u32;
    let nprod = 1 + (next() % 3) as usize;
    let consumers = 1 + (next() % 2) as u32;
    let ring_bytes = cap as usize * CHUNK;
    let producers = (0..nprod)
        .map(|_| {
            let n = (next() % 4) as usize;
            (0..n)
                // 2 bytes up to about three times the ring.
                .map(|_| 2 + (next() as usize * 3 * ring_bytes) / 255)
                .collect()
        })
        .collect();
    let flags = next();
    let mixed = flags & 1 != 0;
    let crash = if flags & 2 != 0 {
        let who = next() as usize % (nprod + consumers as usize);
        Some((who, 1 + (next() % 24) as u32))
    } else {
        None
    };
    // A consumer that dies must leave one that lives: with none left, a
    // producer blocked on a full ring waits forever, as it should.
    let consumers = match crash {
        Some((who, _)) if who >= nprod => consumers.max(2),
        _ => consumers,
    };
    let rest = data.get(used.min(data.len())..).unwrap_or(&[]);
    (
        Spec {
            cap,
            max_items,
            producers,
            consumers,
            crash,
            mixed,
            spurious: None,
            // A unit of 2 chunks (off for rings of fewer than 4).
            reclaim: ((flags >> 2) & 1) as u32,
            written: flags & 8 != 0,
        },
        rest,
    )
}

/// The `queue_protocol` fuzz target: the input chooses the producers'
/// messages, the consumers, the operation kinds, a death, and the schedule.
/// Panics (a check failed, or a deadlock) on a protocol bug.
pub fn queue_protocol(data: &[u8]) {
    let (spec, sched) = spec_from_bytes(data);
    let died = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let runner = shuttle::Runner::new(ByteScheduler::new(sched), shuttle::Config::new());
    runner.run(move || {
        body!(
            shuttle,
            shuttle_platform,
            crate::shuttle_platform::Shuttle<0>,
            spec.clone(),
            died
        )
    });
}
