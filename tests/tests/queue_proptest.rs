//! Property test of `Queue` over real processes (issue #3): random sequences
//! of put / put_timeout / try_put from 1–3 producer processes and get /
//! get_timeout / try_get in the parent and in 0–1 consumer child, over a
//! small ring, with message sizes from 0 bytes to three times the ring.
//!
//! Each producer records exactly which of its messages were accepted (`Ok`);
//! a `Full` from `try_put` or `put_timeout` means "not sent" (a timed-out
//! streamed message is abandoned and must never be delivered). Properties:
//! every sent message is received exactly once, whole (its body is a function
//! of producer and sequence number), each consumer sees each producer's
//! messages in that producer's order, the union per producer equals the
//! producer's `VecDeque` model of sent messages, and nothing else arrives.

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use procshare::QueueError;
use procshare::{Process, Queue};
use proptest::prelude::*;

/// Ring size in bytes (small, so that big messages are streamed).
const RING: usize = 256;
/// Hang guard: far beyond any honest run.
const GENEROUS: Duration = Duration::from_secs(60);

/// (producer, sequence number, body).
type Msg = (u8, u32, Vec<u8>);
/// What a consumer reports: (producer, sequence number, body length, body
/// was right for that length).
type Got = Vec<(u8, u32, usize, bool)>;

#[derive(Debug, Clone, Copy)]
enum PutOp {
    Put,
    PutTimeout(u8),
    TryPut,
}

#[derive(Debug, Clone, Copy)]
enum GetOp {
    GetTimeout(u8),
    TryGet,
}

fn body(producer: u8, seq: u32, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u32)
                .wrapping_mul(131)
                .wrapping_add(seq.wrapping_mul(7))
                .wrapping_add(u32::from(producer) * 59) as u8
        })
        .collect()
}

fn body_ok(m: &Msg) -> bool {
    m.2 == body(m.0, m.1, m.2.len())
}

fn put_op() -> impl Strategy<Value = PutOp> {
    prop_oneof![
        2 => Just(PutOp::Put),
        1 => (0u8..3).prop_map(PutOp::PutTimeout),
        1 => Just(PutOp::TryPut),
    ]
}

fn get_op() -> impl Strategy<Value = GetOp> {
    prop_oneof![(0u8..3).prop_map(GetOp::GetTimeout), Just(GetOp::TryGet),]
}

/// One producer's plan: (operation, message size) per message.
fn plan() -> impl Strategy<Value = Vec<(PutOp, usize)>> {
    prop::collection::vec((put_op(), 0usize..=3 * RING), 0..24)
}

/// Kills the children still running if the parent fails half-way, so that a
/// failing case does not leave processes blocked on the queue.
struct Kids(Vec<Process>);

impl Drop for Kids {
    fn drop(&mut self) {
        for p in &self.0 {
            if p.is_alive() {
                let _ = p.kill();
            }
        }
        for p in &mut self.0 {
            let _ = p.join();
        }
    }
}

fn run(plans: Vec<Vec<(PutOp, usize)>>, gets: Vec<GetOp>, consumer_child: bool) {
    std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    let q: Queue<Msg> = Queue::<Msg>::builder()
        .capacity_bytes(RING)
        .build()
        .unwrap();
    // Producer reports: (producer, sequence numbers of the messages sent).
    let reports: Queue<(u8, Vec<u32>)> = Queue::new().unwrap();
    // Consumer child report.
    let results: Queue<Got> = Queue::new().unwrap();
    let mut kids = Kids(Vec::new());

    for (id, plan) in plans.iter().enumerate() {
        let id = id as u8;
        let (q, reports, plan) = (q.clone(), reports.clone(), plan.clone());
        let mut p = Process::new(move || {
            let mut sent = Vec::new();
            for (seq, &(op, len)) in plan.iter().enumerate() {
                let seq = seq as u32;
                let m: Msg = (id, seq, body(id, seq, len));
                let r = match op {
                    PutOp::Put => q.put(&m),
                    PutOp::PutTimeout(ms) => q.put_timeout(&m, Duration::from_millis(ms.into())),
                    PutOp::TryPut => q.try_put(&m),
                };
                match r {
                    Ok(()) => sent.push(seq),
                    Err(QueueError::Full) if !matches!(op, PutOp::Put) => {}
                    // Larger than the ring: only a waiting put streams it.
                    Err(QueueError::NeverFits { .. }) if matches!(op, PutOp::TryPut) => {}
                    Err(e) => panic!("producer {id}: {op:?} of {len} bytes: {e}"),
                }
            }
            reports.put(&(id, sent)).unwrap();
        });
        p.start().unwrap();
        kids.0.push(p);
    }
    if consumer_child {
        let (q, results) = (q.clone(), results.clone());
        let mut p = Process::new(move || {
            let mut got: Got = Vec::new();
            loop {
                match q.get() {
                    Ok(m) => got.push((m.0, m.1, m.2.len(), body_ok(&m))),
                    Err(QueueError::ShutDown) => break,
                    Err(e) => panic!("consumer child: get: {e}"),
                }
            }
            results.put(&got).unwrap();
        });
        p.start().unwrap();
        kids.0.push(p);
    }

    // The parent consumes until every producer has reported (all its puts
    // are over, so its sent messages are in the ring or already taken), then
    // closes the queue and drains what is left.
    let start = Instant::now();
    let mut mine: Vec<Msg> = Vec::new();
    let mut sent: Vec<Option<Vec<u32>>> = vec![None; plans.len()];
    let mut reported = 0;
    let mut i = 0usize;
    while reported < plans.len() {
        assert!(
            start.elapsed() < GENEROUS,
            "hang guard: only {reported} of {} producers reported after {GENEROUS:?}",
            plans.len()
        );
        let r = match gets[i % gets.len()] {
            GetOp::GetTimeout(ms) => q.get_timeout(Duration::from_millis(ms.into())),
            GetOp::TryGet => q.try_get(),
        };
        i += 1;
        match r {
            Ok(m) => mine.push(m),
            Err(QueueError::Empty) => std::thread::yield_now(),
            Err(e) => panic!("parent get: {e}"),
        }
        match reports.try_get() {
            Ok((id, s)) => {
                assert!(sent[id as usize].is_none(), "producer {id} reported twice");
                sent[id as usize] = Some(s);
                reported += 1;
            }
            Err(QueueError::Empty) => {}
            Err(e) => panic!("reports: {e}"),
        }
    }
    q.shutdown();
    loop {
        match q.get_timeout(GENEROUS) {
            Ok(m) => mine.push(m),
            Err(QueueError::ShutDown) => break,
            Err(e) => panic!("parent drain after shutdown: {e}"),
        }
    }
    let mut per_consumer: Vec<Got> = vec![mine
        .iter()
        .map(|m| (m.0, m.1, m.2.len(), body_ok(m)))
        .collect()];
    if consumer_child {
        let got = results
            .get_timeout(GENEROUS)
            .expect("hang guard: the consumer child never reported");
        per_consumer.push(got);
    }
    for (k, p) in kids.0.iter_mut().enumerate() {
        assert_eq!(p.join().unwrap(), 0, "child {k} failed");
    }

    // Checks.
    let mut received: Vec<BTreeSet<u32>> = vec![BTreeSet::new(); plans.len()];
    for (c, got) in per_consumer.iter().enumerate() {
        let mut last: Vec<Option<u32>> = vec![None; plans.len()];
        for &(p, seq, len, ok) in got {
            assert!(
                (p as usize) < plans.len(),
                "consumer {c}: unknown producer {p}"
            );
            let want = plans[p as usize].get(seq as usize).map(|&(_, l)| l);
            assert_eq!(
                Some(len),
                want,
                "consumer {c}: message ({p}, {seq}) has the wrong length"
            );
            assert!(ok, "consumer {c}: message ({p}, {seq}) arrived corrupted");
            if let Some(prev) = last[p as usize] {
                assert!(
                    seq > prev,
                    "consumer {c}: producer {p}'s order broken: {seq} after {prev}"
                );
            }
            last[p as usize] = Some(seq);
            assert!(
                received[p as usize].insert(seq),
                "message ({p}, {seq}) received twice"
            );
        }
    }
    for (p, s) in sent.into_iter().enumerate() {
        let model: VecDeque<u32> = s.unwrap().into_iter().collect();
        let got: VecDeque<u32> = received[p].iter().copied().collect();
        assert_eq!(got, model, "producer {p}: received != sent");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn queue_between_processes_equals_per_producer_model(
        plans in prop::collection::vec(plan(), 1..=3),
        // At least one `get_timeout`: `try_get` only takes a message that is
        // complete in the ring, so a parent polling with `try_get` alone never
        // receives a message larger than the ring (its producer blocks for
        // ever; documented, see the report of issue #3).
        first_ms in 0u8..3,
        more_gets in prop::collection::vec(get_op(), 0..8),
        consumer_child in any::<bool>(),
    ) {
        let mut gets = vec![GetOp::GetTimeout(first_ms)];
        gets.extend(more_gets);
        run(plans, gets, consumer_child);
    }
}
