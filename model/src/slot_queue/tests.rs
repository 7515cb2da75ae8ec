//! loom and shuttle checks of the slot queue, and proof that each seeded
//! mutant (13xx) is caught.
//!
//! Each value is `producer << 8 | seq`: a consumer checks on receipt that it
//! names a put that exists, that each producer's sequence numbers rise (no
//! duplicate, no reordering), and at the end that nothing a `put` accepted is
//! missing, except the one value a dead consumer was taking.

use super::*;
use crate::testkit::{
    every_crash_point, fails_with, fails_with_any, shuttle_iters, shuttle_runs, Sched,
};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex as StdMutex};

/// A slot queue's storage, for the checks.
struct Q<P: Platform> {
    h: SlotHeader<P>,
    slots: Vec<Slot<P, u64>>,
}

impl<P: Platform> Q<P> {
    fn new(n: u64) -> Self {
        let h = SlotHeader::new(n);
        let slots = (0..h.slots()).map(|i| Slot::new(i, 0)).collect();
        Q { h, slots }
    }
    fn q(&self) -> SlotQueue<'_, P, u64> {
        SlotQueue::new(&self.h, &self.slots).expect("consistent queue")
    }
}

/// What one execution does.
#[derive(Debug, Clone)]
struct Spec {
    slots: u64,
    /// Per producer: how many values it puts.
    producers: Vec<u8>,
    consumers: u32,
    /// (thread index, crash step): producers are 0.., consumers follow.
    crash: Option<(usize, u32)>,
    /// Timed and non-blocking operations mixed in (op i: `i % 3`).
    mixed: bool,
}

#[derive(Debug, Default)]
struct Log {
    put_ok: BTreeSet<u64>,
    got: BTreeSet<u64>,
    dead_producers: BTreeSet<u64>,
    dead_consumers: u32,
}

fn lock<T>(m: &StdMutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
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

fn producer<P: Platform>(q: &Q<P>, t: &P::Thread, spec: &Spec, p: usize, log: &StdMutex<Log>) {
    for seq in 0..spec.producers[p] {
        let v = (p as u64) << 8 | seq as u64;
        match q.q().put(t, v, op_wait(spec, seq as usize)) {
            Ok(()) => {
                lock(log).put_ok.insert(v);
            }
            Err(RingError::Full) => crate::check!(spec.mixed, "blocking put returned Full"),
            Err(e) => crate::testkit::violation(&format!("put failed: {e:?}")),
        }
    }
}

fn consumer<P: Platform>(q: &Q<P>, t: &P::Thread, spec: &Spec, log: &StdMutex<Log>) {
    let mut last: Vec<Option<u64>> = vec![None; spec.producers.len()];
    let mut i = 0;
    loop {
        // The first two gets may be timed or non-blocking, the rest block
        // (model time does not pass: an endless poll is an endless execution).
        let w = if i < 2 {
            op_wait(spec, i + 1)
        } else {
            Wait::For(None)
        };
        i += 1;
        match q.q().get(t, w) {
            Ok(v) => {
                let (p, seq) = ((v >> 8) as usize, v & 0xff);
                crate::check!(
                    p < spec.producers.len() && seq < spec.producers[p] as u64,
                    "a value nobody put: {v:#x}"
                );
                if let Some(prev) = last[p] {
                    crate::check!(prev < seq, "reordered or duplicated: {v:#x} after {prev}");
                }
                last[p] = Some(seq);
                crate::check!(lock(log).got.insert(v), "duplicated value {v:#x}");
            }
            Err(RingError::Closed) => return,
            Err(RingError::Empty) => {
                crate::check!(w != Wait::For(None), "blocking get returned Empty")
            }
            Err(e) => crate::testkit::violation(&format!("get failed: {e:?}")),
        }
    }
}

fn account(spec: &Spec, log: &Log) {
    let lost = log.put_ok.iter().filter(|v| !log.got.contains(v)).count() as u32;
    for g in &log.got {
        crate::check!(
            log.put_ok.contains(g) || log.dead_producers.contains(&(g >> 8)),
            "delivered {g:#x} that no put accepted"
        );
    }
    crate::check!(
        lost <= log.dead_consumers,
        "lost {lost} values with {} consumer deaths (put {:?}, got {:?}, spec {spec:?})",
        log.dead_consumers,
        log.put_ok,
        log.got
    );
}

/// One execution of `spec` (loom and shuttle have the same API under
/// different paths).
macro_rules! body {
    ($checker:ident, $plat:ident, $M:ty, $spec:expr, $died:expr) => {{
        use std::sync::atomic::Ordering::AcqRel;
        use $crate::$plat::{run, world, ModelThread};
        let spec: Spec = $spec;
        let world = world();
        let q = Arc::new(Q::<$M>::new(spec.slots));
        let log = Arc::new(StdMutex::new(Log::default()));
        let nprod = spec.producers.len();
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
                let died = run(&t, |t| producer(&q, t, &spec, p, &log));
                if died {
                    lock(&log).dead_producers.insert(p as u64);
                }
                // The last producer to end closes the queue so consumers end.
                if live.fetch_sub(1, AcqRel) == 1 {
                    q.q().close(&ModelThread::new(&world, 40));
                }
                died
            }));
        }
        for c in 0..spec.consumers as usize {
            let (q, log, world, spec) = (q.clone(), log.clone(), world.clone(), spec.clone());
            hs.push($checker::thread::spawn(move || {
                let crash = spec.crash.filter(|x| x.0 == nprod + c).map(|x| x.1);
                let t = ModelThread::new(&world, 20 + c as u32).crash_at(crash);
                let died = run(&t, |t| consumer(&q, t, &spec, &log));
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

/// A `tail` hint overwritten ahead before a producer puts two values
/// (position 0 free, the hint at 1): the first lands at 1, the second (the
/// hint at 2 meets slot 0 free for 0: no fit) starts again from `head` and
/// lands at 0, while the consumer, finding slot 0 free behind the hint, may
/// pass it. Both values come out once (in either order: the foreign write
/// broke the order); `Corrupt` is reported on the way.
macro_rules! corrupt_tail_body {
    ($checker:ident, $plat:ident, $M:ty) => {{
        use $crate::$plat::{world, ModelThread};
        let world = world();
        let q = Arc::new(Q::<$M>::new(2));
        q.h.tail.0.store(1, Relaxed);
        let h = {
            let (q, world) = (q.clone(), world.clone());
            $checker::thread::spawn(move || {
                let t = ModelThread::new(&world, 1).spins(0).foreign_writes();
                for v in [5, 6] {
                    q.q().put(&t, v, Wait::For(None)).unwrap();
                }
            })
        };
        let t = ModelThread::new(&world, 2).spins(0).foreign_writes();
        let mut got = Vec::new();
        while got.len() < 2 {
            match q.q().get(&t, Wait::For(None)) {
                Ok(v) => got.push(v),
                Err(RingError::Corrupt(_)) => {}
                Err(e) => crate::testkit::violation(&format!("get failed: {e:?}")),
            }
        }
        got.sort_unstable();
        crate::check!(got == [5, 6], "got {got:?}");
        h.join().unwrap();
    }};
}

mod loom_checks {
    use super::*;
    use crate::loom_platform::Loom;

    pub(super) fn check<const M: u32>(spec: Spec, bound: Option<usize>) -> bool {
        let died = Arc::new(AtomicBool::new(false));
        let d = died.clone();
        crate::testkit::loom(bound).check(move || {
            body!(loom, loom_platform, Loom<M>, spec.clone(), d);
        });
        died.load(SeqCst)
    }

    pub(super) fn spsc(n: u8) -> Spec {
        Spec {
            slots: 2,
            producers: vec![n],
            consumers: 1,
            crash: None,
            mixed: false,
        }
    }

    /// One producer, one consumer: one value (preemption bound 3), and three
    /// through two slots, so that the queue fills and both sides sleep
    /// (bound 2).
    #[test]
    fn loom_spsc() {
        check::<0>(spsc(1), Some(3));
        check::<0>(spsc(3), Some(2));
    }

    /// Two producers race for the slots, one consumer. Bound 2.
    #[test]
    fn loom_two_producers() {
        let s = Spec {
            slots: 2,
            producers: vec![2, 1],
            consumers: 1,
            crash: None,
            mixed: false,
        };
        check::<0>(s, Some(1));
    }

    /// One producer, two consumers race for three values (bound 1): the
    /// run that found the `Relaxed` hints of the first version (1301) in a
    /// fraction of a second. The correct protocol takes minutes here, so
    /// `cargo test` runs the two-consumer checks under shuttle
    /// (`shuttle_random_mpmc`) and this one with
    /// `PROCSHARE_LOOM_SLOW=1`.
    #[test]
    fn loom_two_consumers() {
        if std::env::var_os("PROCSHARE_LOOM_SLOW").is_some() {
            check::<0>(two_consumers(), Some(1));
        }
    }

    pub(super) fn two_consumers() -> Spec {
        Spec {
            slots: 2,
            producers: vec![3],
            consumers: 2,
            crash: None,
            mixed: false,
        }
    }

    /// Timed and non-blocking puts and gets (a finite deadline has always
    /// passed in model time). Bound 2.
    #[test]
    fn loom_timeouts_and_try() {
        let mut s = spsc(3);
        s.mixed = true;
        check::<0>(s, Some(2));
    }

    /// Close wakes two consumers asleep on an empty queue, and two producers
    /// asleep on a full one. Bound 3.
    #[test]
    fn loom_close_wakes_everyone() {
        close_wakes::<0>();
    }

    pub(super) fn close_wakes<const M: u32>() {
        use crate::loom_platform::{world, ModelThread};
        crate::testkit::loom(Some(3)).check(|| {
            let world = world();
            let q = Arc::new(Q::<Loom<M>>::new(2));
            let hs: Vec<_> = (0..2u32)
                .map(|i| {
                    let (q, world) = (q.clone(), world.clone());
                    loom::thread::spawn(move || {
                        let t = ModelThread::new(&world, 10 + i);
                        let r = q.q().get(&t, Wait::For(None));
                        crate::check!(r == Err(RingError::Closed), "get after close: {r:?}");
                    })
                })
                .collect();
            q.q().close(&ModelThread::new(&world, 1));
            for h in hs {
                h.join().unwrap();
            }
        });
        crate::testkit::loom(Some(3)).check(|| {
            let world = world();
            let q = Arc::new(Q::<Loom<M>>::new(2));
            let t0 = ModelThread::new(&world, 1);
            for v in [1, 2] {
                q.q().put(&t0, v, Wait::No).unwrap(); // now full
            }
            let hs: Vec<_> = (0..2u32)
                .map(|i| {
                    let (q, world) = (q.clone(), world.clone());
                    loom::thread::spawn(move || {
                        let t = ModelThread::new(&world, 10 + i);
                        let r = q.q().put(&t, 3, Wait::For(None));
                        crate::check!(r == Err(RingError::Closed), "put after close: {r:?}");
                    })
                })
                .collect();
            q.q().close(&t0);
            for h in hs {
                h.join().unwrap();
            }
            // What was in the queue is still delivered, then Closed.
            for v in [1, 2] {
                assert_eq!(q.q().get(&t0, Wait::For(None)), Ok(v));
            }
            assert_eq!(q.q().get(&t0, Wait::For(None)), Err(RingError::Closed));
        });
    }

    /// One of two producers dies at every crash point of its `put`; the
    /// other producer (which may have to take over the slot the dead one
    /// held) and the consumer go on. Bound 1. (Two values from the first
    /// producer take several minutes here; `shuttle_deaths_at_every_crash_point`
    /// runs three from each of two producers, with two consumers.)
    pub(super) fn producer_crash<const M: u32>() -> u32 {
        every_crash_point(|k| {
            let s = Spec {
                slots: 2,
                producers: vec![1, 1],
                consumers: 1,
                crash: Some((0, k)),
                mixed: false,
            };
            check::<M>(s, Some(1))
        })
    }

    /// A consumer dies at every crash point while it takes the two values
    /// a producer puts (both running; two slots, so the producer never
    /// waits for a dead consumer); then a second consumer drains the
    /// queue alone, taking over the slot the dead one held. Nothing is
    /// delivered twice or out of order, and at most the value in the dead
    /// one's hands is missing. Bound 2.
    pub(super) fn consumer_crash<const M: u32>() -> u32 {
        use crate::loom_platform::{run, world, ModelThread};
        every_crash_point(|k| {
            let died = Arc::new(AtomicBool::new(false));
            let d = died.clone();
            crate::testkit::loom(Some(2)).check(move || {
                let world = world();
                let q = Arc::new(Q::<Loom<M>>::new(2));
                let got = Arc::new(StdMutex::new(Vec::new()));
                let p = {
                    let (q, world) = (q.clone(), world.clone());
                    loom::thread::spawn(move || {
                        let t = ModelThread::new(&world, 1);
                        for v in 0..2 {
                            q.q().put(&t, v, Wait::For(None)).unwrap();
                        }
                    })
                };
                let c = {
                    let (q, world, got) = (q.clone(), world.clone(), got.clone());
                    loom::thread::spawn(move || {
                        let t = ModelThread::new(&world, 20).crash_at(Some(k));
                        run(&t, |t| {
                            for _ in 0..2 {
                                let v = q.q().get(t, Wait::For(None)).unwrap();
                                lock(&got).push(v);
                            }
                        })
                    })
                };
                p.join().unwrap();
                let dead = c.join().unwrap();
                if dead {
                    d.store(true, SeqCst);
                }
                let t = ModelThread::new(&world, 21);
                loop {
                    match q.q().get(&t, Wait::No) {
                        Ok(v) => lock(&got).push(v),
                        Err(RingError::Empty) => break,
                        Err(e) => crate::testkit::violation(&format!("drain: {e:?}")),
                    }
                }
                let got = lock(&got).clone();
                crate::check!(
                    got.windows(2).all(|w| w[0] < w[1]),
                    "reordered or duplicated: {got:?}"
                );
                let missing = 2 - got.len();
                crate::check!(
                    missing <= dead as usize,
                    "lost {missing} values with dead = {dead}: got {got:?}"
                );
            });
            died.load(SeqCst)
        })
    }

    #[test]
    fn loom_producer_dies_at_every_crash_point() {
        let n = producer_crash::<0>();
        assert!(n >= 6, "only {n} crash points");
    }

    #[test]
    fn loom_consumer_dies_at_every_crash_point() {
        let n = consumer_crash::<0>();
        assert!(n >= 6, "only {n} crash points");
    }

    #[test]
    fn loom_catches_1301_relaxed_hints() {
        assert!(fails_with("slot sequence", || {
            check::<{ MUTANT_RELAXED_HINTS.0 }>(two_consumers(), Some(1));
        }));
    }

    #[test]
    fn loom_catches_1302_no_recheck() {
        assert!(fails_with("lost", || {
            let s = Spec {
                slots: 2,
                producers: vec![1, 1],
                consumers: 1,
                crash: None,
                mixed: false,
            };
            check::<{ MUTANT_NO_RECHECK.0 }>(s, Some(2));
        }));
    }

    /// One value handed over, and nothing after it: the consumer must be
    /// woken by the `put` (in the queue runs above, `close` wakes everyone
    /// at the end, which would hide a lost wake-up). Bound 3.
    #[test]
    fn loom_one_handoff() {
        one_handoff::<0>();
    }

    pub(super) fn one_handoff<const M: u32>() {
        use crate::loom_platform::{world, ModelThread};
        crate::testkit::loom(Some(3)).check(|| {
            let world = world();
            let q = Arc::new(Q::<Loom<M>>::new(2));
            let h = {
                let (q, world) = (q.clone(), world.clone());
                loom::thread::spawn(move || {
                    let t = ModelThread::new(&world, 1).spins(0);
                    q.q().put(&t, 5, Wait::For(None)).unwrap();
                })
            };
            let t = ModelThread::new(&world, 2).spins(0);
            assert_eq!(q.q().get(&t, Wait::For(None)), Ok(5));
            h.join().unwrap();
        });
    }

    #[test]
    fn loom_catches_1303_no_notify_fence() {
        assert!(fails_with(
            "deadlock",
            one_handoff::<{ MUTANT_NO_NOTIFY_FENCE.0 }>
        ));
    }

    #[test]
    fn loom_catches_1305_pass_locked() {
        assert!(fails_with("foreign write in a sound run", || {
            check::<{ MUTANT_PASS_LOCKED.0 }>(spsc(2), Some(2));
        }));
    }

    /// [`corrupt_tail_body`] under every interleaving (bound 2).
    pub(super) fn corrupt_tail<const M: u32>() {
        crate::testkit::loom(Some(2)).check(|| {
            corrupt_tail_body!(loom, loom_platform, Loom<M>);
        });
    }

    #[test]
    fn loom_a_corrupt_tail_hint_loses_nothing() {
        corrupt_tail::<0>();
    }

    #[test]
    fn loom_catches_1307_pass_without_recheck() {
        assert!(fails_with(
            "deadlock",
            corrupt_tail::<{ MUTANT_PASS_WITHOUT_RECHECK.0 }>
        ));
    }

    /// The checks for an overwritten hint never fire in a sound run: a
    /// producer that looked at `head` without looking at its slot again
    /// would take a slot emptied meanwhile for a value left behind.
    #[test]
    fn loom_catches_1308_stale_head_check() {
        assert!(fails_with("foreign write in a sound run", || {
            check::<{ MUTANT_STALE_HEAD_CHECK.0 }>(spsc(3), Some(2));
        }));
    }

    #[test]
    fn loom_catches_1306_close_no_wake() {
        assert!(fails_with(
            "deadlock",
            close_wakes::<{ MUTANT_CLOSE_NO_WAKE.0 }>
        ));
    }
}

/// Positions far from 0 (a queue that ran for long): the signed distances
/// between `seq` and a position stay right across the wrap of `u64`.
#[test]
fn positions_wrap_around() {
    use crate::shuttle_platform::{world, ModelThread, Shuttle};
    shuttle::check_random(
        || {
            let world = world();
            let t = ModelThread::new(&world, 1);
            let q = Q::<Shuttle>::new(4);
            let start = u64::MAX - 5;
            for (i, s) in q.slots.iter().enumerate() {
                // Slot i is free for the first position ≡ i from `start` on.
                let p = (0..4u64)
                    .map(|k| start.wrapping_add(k))
                    .find(|p| p & 3 == i as u64);
                s.seq.store(p.unwrap(), Relaxed);
            }
            q.h.tail.0.store(start, Relaxed);
            q.h.head.0.store(start, Relaxed);
            for round in 0..3u64 {
                for v in 0..4 {
                    q.q().put(&t, round * 10 + v, Wait::No).unwrap();
                }
                assert_eq!(q.q().put(&t, 99, Wait::No), Err(RingError::Full));
                for v in 0..4 {
                    assert_eq!(q.q().get(&t, Wait::No), Ok(round * 10 + v));
                }
                assert_eq!(q.q().get(&t, Wait::No), Err(RingError::Empty));
            }
        },
        1,
    );
}

/// The header's field offsets name the layout table's fields in its order,
/// each inside the header. (The table's numbers hold for the real
/// platform's words, which impl's layout check compares with it; a model
/// platform's words are larger.)
#[test]
fn the_header_offsets_follow_the_layout_table() {
    use crate::shuttle_platform::Shuttle;
    let names: Vec<_> = SlotHeader::<Shuttle>::OFFSETS.iter().map(|o| o.0).collect();
    assert_eq!(
        names,
        [
            "tail",
            "head",
            "not_empty",
            "not_full",
            "closed",
            "slots",
            "pace"
        ]
    );
    let at: Vec<_> = SlotHeader::<Shuttle>::OFFSETS.iter().map(|o| o.1).collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "not in order: {at:?}");
    let size = core::mem::size_of::<SlotHeader<Shuttle>>();
    assert!(
        at[5] + 8 <= size,
        "slots at {} past the header ({size})",
        at[5]
    );
}

/// `len` and `is_empty` follow the hints: values put and not yet taken,
/// never more than the slots; `Debug` shows the header's fields.
#[test]
fn len_is_empty_and_debug_follow_the_hints() {
    use crate::shuttle_platform::{world, ModelThread, Shuttle};
    shuttle::check_random(
        || {
            let world = world();
            let t = ModelThread::new(&world, 1).foreign_writes();
            let q = Q::<Shuttle>::new(4);
            assert_eq!((q.q().len(), q.q().is_empty()), (0, true));
            q.q().put(&t, 1, Wait::No).unwrap();
            q.q().put(&t, 2, Wait::No).unwrap();
            assert_eq!((q.q().len(), q.q().is_empty()), (2, false));
            assert_eq!(
                format!("{:?}", q.h),
                "SlotHeader { slots: 4, tail: 2, head: 0, closed: 0 }"
            );
            let slot = format!("{:?}", q.slots[1]);
            assert!(
                slot.starts_with("Slot { lock: ") && slot.ends_with(", seq: 2, .. }"),
                "{slot}"
            );
            assert_eq!(q.q().get(&t, Wait::No), Ok(1));
            assert_eq!((q.q().len(), q.q().is_empty()), (1, false));
            assert_eq!(q.q().get(&t, Wait::No), Ok(2));
            assert_eq!((q.q().len(), q.q().is_empty()), (0, true));
            // Hints another process overwrote: clamped to 0..=slots.
            q.h.tail.0.store(100, Relaxed);
            assert_eq!(q.q().len(), 4);
            q.h.tail.0.store(0, Relaxed);
            assert_eq!((q.q().len(), q.q().is_empty()), (0, true));
        },
        1,
    );
}

/// A consumer that passes a free slot behind the `tail` hint moves the hint
/// back to just past that slot when it was more than a lap ahead, and
/// leaves a hint less than a lap ahead as it is (the producers' next walk
/// passes it).
#[test]
fn a_tail_hint_laps_ahead_is_moved_back() {
    use crate::shuttle_platform::{world, ModelThread, Shuttle};
    shuttle::check_random(
        || {
            let world = world();
            let t = ModelThread::new(&world, 1).foreign_writes();
            for (hint, after) in [(100, 1), (3, 3)] {
                let q = Q::<Shuttle>::new(4);
                q.h.tail.0.store(hint, Relaxed);
                assert!(matches!(
                    q.q().get(&t, Wait::No),
                    Err(RingError::Corrupt(_))
                ));
                assert_eq!(q.h.head.0.load(Relaxed), 1, "tail hint {hint}");
                assert_eq!(q.h.tail.0.load(Relaxed), after, "tail hint {hint}");
            }
        },
        1,
    );
}

/// A timed `get` of an empty queue, and a timed `put` into a full one, by a
/// thread that spins before it sleeps: each spins its bounded number of
/// rounds, then sleeps until its deadline and reports `Empty` / `Full`.
#[test]
fn timed_operations_spin_then_time_out() {
    use crate::shuttle_platform::{world, ModelThread, Shuttle};
    shuttle::check_random(
        || {
            let world = world();
            let t = ModelThread::new(&world, 1).spins(3);
            let q = Q::<Shuttle>::new(2);
            let soon = Wait::For(Some(Duration::from_millis(1)));
            assert_eq!(q.q().get(&t, soon), Err(RingError::Empty));
            q.q().put(&t, 1, Wait::No).unwrap();
            q.q().put(&t, 2, Wait::No).unwrap();
            assert_eq!(q.q().put(&t, 3, soon), Err(RingError::Full));
            assert_eq!(q.q().get(&t, soon), Ok(1));
        },
        1,
    );
}

/// `with_len` sizes the queue by the slice alone: a header whose `slots`
/// field another process overwrote does not change it (`new` refuses the
/// pair).
#[test]
fn with_len_ignores_the_shared_slot_count() {
    use crate::shuttle_platform::Shuttle;
    shuttle::check_random(
        || {
            let q = Q::<Shuttle>::new(4);
            let mut h = SlotHeader::<Shuttle>::new(4);
            h.closed.0.slots = 999;
            assert!(SlotQueue::new(&h, &q.slots).is_none());
            assert_eq!(SlotQueue::with_len(&h, &q.slots).unwrap().mask, 3);
            assert!(SlotQueue::with_len(&h, &q.slots[..3]).is_none());
            assert!(SlotQueue::with_len(&h, &q.slots[..1]).is_none());
        },
        1,
    );
}

/// Foreign writes to a slot's `seq` are reported as `Corrupt`, and the
/// queue goes on.
#[test]
fn a_corrupt_sequence_is_reported_and_skipped() {
    use crate::shuttle_platform::{world, ModelThread, Shuttle};
    shuttle::check_random(
        || {
            let world = world();
            let t = ModelThread::new(&world, 1).foreign_writes();
            let q = Q::<Shuttle>::new(4);
            q.q().put(&t, 7, Wait::No).unwrap();
            // Between "holds position 0" (1) and "free for position 4" (4).
            q.slots[0].seq.store(3, Relaxed);
            assert!(matches!(
                q.q().get(&t, Wait::No),
                Err(RingError::Corrupt(_))
            ));
            q.q().put(&t, 8, Wait::No).unwrap();
            assert_eq!(q.q().get(&t, Wait::No), Ok(8));
            // A sequence overwritten far ahead: the jump it invites leads to
            // slots that do not fit, so both sides walk again from the other
            // side's hint and pass that slot as taken; nothing is lost.
            q.slots[2].seq.store((1 << 40) + 2, Relaxed);
            q.q().put(&t, 9, Wait::No).unwrap();
            q.q().put(&t, 10, Wait::No).unwrap();
            assert_eq!(q.q().get(&t, Wait::No), Ok(9));
            assert_eq!(q.q().get(&t, Wait::No), Ok(10));
            // A sequence overwritten behind: the producer that meets it,
            // having started again from the `head` hint, frees the slot for
            // itself and reports it.
            q.slots[1].seq.store(1, Relaxed);
            assert!(matches!(
                q.q().put(&t, 11, Wait::No),
                Err(RingError::Corrupt(_))
            ));
            q.q().put(&t, 12, Wait::No).unwrap();
            assert_eq!(q.q().get(&t, Wait::No), Ok(12));
            assert_eq!(q.q().get(&t, Wait::No), Err(RingError::Empty));
        },
        1,
    );
}

/// A storage whose every slot is free for the position `start + i`, with
/// both hints at `hints` (far behind, when `hints` is well below `start`).
fn at_positions(n: u64, start: u64, hints: u64) -> Q<crate::shuttle_platform::Shuttle> {
    let q = Q::<crate::shuttle_platform::Shuttle>::new(n);
    for (i, s) in q.slots.iter().enumerate() {
        let p: Option<u64> = (0..n).map(|k| start + k).find(|p| p % n == i as u64);
        s.seq.store(p.unwrap(), Relaxed);
    }
    q.h.tail.0.store(hints, Relaxed);
    q.h.head.0.store(hints, Relaxed);
    q
}

/// Hints far behind the slots (a process preempted for long between its
/// unlock and its hint store, or a foreign write): a `put` and a `get` jump
/// to the lap the slots name instead of walking there one position at a
/// time (2^40 positions here: the walk would not end).
#[test]
fn hints_far_behind_are_jumped() {
    use crate::shuttle_platform::{world, ModelThread};
    shuttle::check_random(
        || {
            let world = world();
            let t = ModelThread::new(&world, 1).foreign_writes();
            let q = at_positions(4, 1 << 40, 3);
            for v in 0..3 {
                q.q().put(&t, v, Wait::No).unwrap();
            }
            q.h.tail.0.store(3, Relaxed);
            q.h.head.0.store(3, Relaxed);
            for v in 0..3 {
                assert_eq!(q.q().get(&t, Wait::No), Ok(v));
            }
            assert_eq!(q.q().get(&t, Wait::No), Err(RingError::Empty));
            assert_eq!(q.h.head.0.load(Relaxed), (1 << 40) + 3);
        },
        1,
    );
}

/// A walk started again (a producer's from the `head` hint, a consumer's
/// from the `tail` hint less a lap, after a slot that did not fit) goes two
/// laps at most, without jumps: with every `seq` overwritten a lap far
/// ahead, a producer stops at the position two laps and one past where it
/// started, frees that slot for itself and reports it (before the limit,
/// this walk stepped towards positions 2^40 away).
#[test]
fn a_restarted_walk_goes_two_laps_at_most() {
    use crate::shuttle_platform::{world, ModelThread};
    shuttle::check_random(
        || {
            let world = world();
            let t = ModelThread::new(&world, 1).foreign_writes();
            let q = at_positions(4, 1 << 40, 0);
            // Slot 2 (for 2^40 + 2) does not fit this hint: walk again from 0.
            q.h.tail.0.store((1 << 40) + 10, Relaxed);
            assert!(matches!(
                q.q().put(&t, 7, Wait::No),
                Err(RingError::Corrupt(_))
            ));
            let seqs: Vec<u64> = q.slots.iter().map(|s| s.seq.load(Relaxed)).collect();
            assert_eq!(seqs, [1 << 40, 9, (1 << 40) + 2, (1 << 40) + 3]);
            // A consumer's, from the `tail` hint less a lap, likewise: every
            // slot says "emptied" a lap far ahead; it passes the slot two
            // laps and one on (emptied for its next lap) and reports it.
            let q = at_positions(4, (1 << 40) + 4, 4);
            q.h.head.0.store((1 << 40) + 100, Relaxed);
            assert!(matches!(
                q.q().get(&t, Wait::No),
                Err(RingError::Corrupt(_))
            ));
            let seqs: Vec<u64> = q.slots.iter().map(|s| s.seq.load(Relaxed)).collect();
            assert_eq!(seqs, [(1 << 40) + 4, 13, (1 << 40) + 6, (1 << 40) + 7]);
            assert_eq!(q.h.head.0.load(Relaxed), 10);
        },
        1,
    );
}

/// A `tail` hint overwritten far ahead of the queue: the next `put` starts
/// again from the `head` hint and puts at the right position (before, it
/// "repaired" the slot at the bogus position: a value there was lost).
#[test]
fn a_tail_hint_far_ahead_loses_nothing() {
    use crate::shuttle_platform::{world, ModelThread};
    shuttle::check_random(
        || {
            let world = world();
            let t = ModelThread::new(&world, 1).foreign_writes();
            let q = Q::<crate::shuttle_platform::Shuttle>::new(4);
            q.q().put(&t, 1, Wait::No).unwrap();
            q.q().put(&t, 2, Wait::No).unwrap();
            q.h.tail.0.store(1 << 40, Relaxed);
            q.q().put(&t, 3, Wait::No).unwrap();
            for v in 1..=3 {
                assert_eq!(q.q().get(&t, Wait::No), Ok(v));
            }
            assert_eq!(q.q().get(&t, Wait::No), Err(RingError::Empty));
        },
        1,
    );
}

/// A `tail` hint overwritten a little ahead (positions 0 and 1 free, the
/// hint at 2): producers fill from 2 on, and the consumers, who find slot 0
/// free, would wait there forever. A consumer that finds its slot free
/// behind the `tail` hint passes it (reporting `Corrupt`), so every value
/// comes out.
#[test]
fn a_tail_hint_a_little_ahead_strands_nothing() {
    use crate::shuttle_platform::{world, ModelThread};
    shuttle::check_random(
        || {
            let world = world();
            let t = ModelThread::new(&world, 1).foreign_writes();
            let q = Q::<crate::shuttle_platform::Shuttle>::new(4);
            q.h.tail.0.store(2, Relaxed);
            q.q().put(&t, 10, Wait::No).unwrap();
            q.q().put(&t, 11, Wait::No).unwrap();
            let mut got = Vec::new();
            let mut corrupt = 0;
            for _ in 0..6 {
                match q.q().get(&t, Wait::No) {
                    Ok(v) => got.push(v),
                    Err(RingError::Corrupt(_)) => corrupt += 1,
                    Err(e) => assert_eq!(e, RingError::Empty),
                }
            }
            assert_eq!(got, [10, 11]);
            assert_eq!(corrupt, 2);
            // And the queue goes on, all four slots usable.
            for v in 0..4 {
                q.q().put(&t, v, Wait::No).unwrap();
            }
            for v in 0..4 {
                assert_eq!(q.q().get(&t, Wait::No), Ok(v));
            }
        },
        1,
    );
}

/// A `head` hint overwritten ahead of a value (the hint at 1 while position
/// 0 holds one): consumers start after it, and once the producers come
/// round to its slot the queue would stay full forever. A producer that
/// finds the queue full behind the `head` hint moves the hint back
/// (reporting `Corrupt`), so every value comes out.
#[test]
fn a_head_hint_ahead_strands_nothing() {
    use crate::shuttle_platform::{world, ModelThread};
    shuttle::check_random(
        || {
            let world = world();
            let t = ModelThread::new(&world, 1).foreign_writes();
            let q = Q::<crate::shuttle_platform::Shuttle>::new(4);
            q.q().put(&t, 1, Wait::No).unwrap();
            q.q().put(&t, 2, Wait::No).unwrap();
            q.h.head.0.store(1, Relaxed);
            assert_eq!(q.q().get(&t, Wait::No), Ok(2));
            q.q().put(&t, 3, Wait::No).unwrap();
            q.q().put(&t, 4, Wait::No).unwrap();
            // Position 4's slot still holds position 0 (value 1).
            assert!(matches!(
                q.q().put(&t, 5, Wait::No),
                Err(RingError::Corrupt(_))
            ));
            let mut got = Vec::new();
            while let Ok(v) = q.q().get(&t, Wait::No) {
                got.push(v);
            }
            assert_eq!(got, [1, 3, 4]);
            for v in 5..=8 {
                q.q().put(&t, v, Wait::No).unwrap();
            }
            for v in 5..=8 {
                assert_eq!(q.q().get(&t, Wait::No), Ok(v));
            }
        },
        1,
    );
}

mod shuttle_checks {
    use super::*;
    use crate::shuttle_platform::Shuttle;

    fn runs<const M: u32>(sched: Sched, spec: Spec) -> bool {
        shuttle_runs(sched, shuttle_iters(), move |d| {
            body!(shuttle, shuttle_platform, Shuttle<M>, spec.clone(), d);
        })
    }

    fn mpmc(mixed: bool, crash: Option<(usize, u32)>) -> Spec {
        Spec {
            slots: 2,
            producers: vec![3, 3],
            consumers: 2,
            crash,
            mixed,
        }
    }

    #[test]
    fn shuttle_random_mpmc() {
        runs::<0>(Sched::Random, mpmc(false, None));
        runs::<0>(Sched::Random, mpmc(true, None));
    }

    #[test]
    fn shuttle_pct_mpmc() {
        runs::<0>(Sched::Pct, mpmc(false, None));
    }

    /// Each of the four threads dies at every crash point (random and PCT
    /// schedules around it).
    #[test]
    fn shuttle_deaths_at_every_crash_point() {
        for who in 0..4 {
            let n = every_crash_point(|k| {
                runs::<0>(Sched::Random, mpmc(false, Some((who, k))))
                    | runs::<0>(Sched::Pct, mpmc(true, Some((who, k))))
            });
            assert!(n >= 4, "thread {who}: only {n} crash points");
        }
    }

    #[test]
    fn shuttle_catches_1302_no_recheck() {
        assert!(fails_with("", || {
            runs::<{ MUTANT_NO_RECHECK.0 }>(Sched::Random, mpmc(false, None));
        }));
    }

    /// A producer that took over a dead producer's slot and passed it:
    /// the consumers stop at the free slot and wait there forever, or (the
    /// recovery from foreign writes meeting a state no sound run reaches)
    /// a thread reports a foreign write: shuttle's message for a panic in a
    /// task is "test panicked in task".
    fn corrupt_tail<const M: u32>(sched: Sched) {
        shuttle_runs(sched, shuttle_iters(), |_| {
            corrupt_tail_body!(shuttle, shuttle_platform, Shuttle<M>)
        });
    }

    #[test]
    fn shuttle_a_corrupt_tail_hint_loses_nothing() {
        corrupt_tail::<0>(Sched::Random);
        corrupt_tail::<0>(Sched::Pct);
    }

    /// A free slot passed without looking again under its lock: the value a
    /// producer put there meanwhile is lost, and the consumer waits for it.
    #[test]
    fn shuttle_catches_1307_pass_without_recheck() {
        assert!(fails_with("deadlock", || {
            corrupt_tail::<{ MUTANT_PASS_WITHOUT_RECHECK.0 }>(Sched::Pct)
        }));
    }

    #[test]
    fn shuttle_catches_1304_pass_recovered() {
        assert!(fails_with_any(&["deadlock", "panicked in task"], || {
            every_crash_point(|k| {
                runs::<{ MUTANT_PASS_RECOVERED.0 }>(Sched::Random, mpmc(false, Some((0, k))))
            });
        }));
    }

    #[test]
    fn shuttle_catches_1305_pass_locked() {
        assert!(fails_with("", || {
            runs::<{ MUTANT_PASS_LOCKED.0 }>(Sched::Random, mpmc(false, None));
        }));
    }
}

/// The slot queue's consumers pace themselves as the ring's (see
/// [`crate::testkit::check_pacing`]; the lingering consumer looks whether the
/// next slot is published to tell a batch).
fn pacing<const M: u32>() {
    use crate::shuttle_platform::Shuttle;
    crate::testkit::check_pacing(
        || Q::<Shuttle<M>>::new(8),
        |q, t| q.q().put(t, 7, Wait::No).unwrap(),
        |q, t| assert_eq!(q.q().get(t, Wait::For(None)), Ok(7)),
        |q| q.h.pace.0.load(Relaxed),
    );
}

#[test]
fn a_dense_stream_makes_the_consumers_linger_and_a_sparse_one_does_not() {
    pacing::<0>();
}

#[test]
fn catches_1309_never_linger() {
    assert!(fails_with("assertion", pacing::<{ MUTANT_NEVER_LINGER.0 }>));
}

#[test]
fn catches_1310_lazy_without_batch() {
    assert!(fails_with(
        "assertion",
        pacing::<{ MUTANT_LAZY_WITHOUT_BATCH.0 }>
    ));
}
