//! Shuttle checks of the Redis protocols over the model store, and proof that
//! each seeded mutant (12xx) is caught.
//!
//! Each check runs several clients against one [`ModelRedis`], then reads the
//! server's log of scripts (their order is the linearization: Redis runs
//! scripts one at a time) and checks the protocol's properties over it.
//! Deaths at every crash point and a pause (every lease runs out) before
//! every script are enumerated.

use super::barrier::{Barrier, Passage};
use super::lock::{fenced_set, LeaseLock};
use super::model::{Entry, ModelClient, ModelRedis, Options};
use super::queue::ReliableQueue;
use super::semaphore::Semaphore;
use super::*;
use crate::testkit::{every_crash_point, fails, fails_with, shuttle_iters, shuttle_runs, Sched};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

const LEASE: u64 = 30;
const PAUSE: u64 = 100;

type Body<const M: u32> = super::model::ClientBody<M>;

/// Iterations per enumerated crash point or pause (a tenth of the usual).
fn iters() -> usize {
    (shuttle_iters() / 10).max(20)
}

fn int_of(r: &Resp, i: usize) -> i64 {
    match r {
        Resp::Array(v) => v.get(i).and_then(Resp::int).unwrap_or(-99),
        r => r.int().unwrap_or(-99),
    }
}

// ---------------------------------------------------------------- the lock

const LOCK: &str = "ns:lock:l";
const RESOURCE: &str = "ns:resource";

/// Which of the lock's properties a check asserts.
#[derive(Clone, Copy, PartialEq)]
enum LockProps {
    All,
    FencingOnly,
}

/// The lock's properties over the log:
/// * an acquisition succeeds only when no other acquisition holds an
///   unexpired lease ("two holders within one lease");
/// * `owner_died` is reported iff the previous acquisition was not released;
/// * renew and release succeed iff the caller's acquisition still holds the
///   lock (the latest one, unreleased, its lease not run out);
/// * accepted fenced writes come from acquisitions in acquisition order (a
///   paused holder's late write is rejected: "stale write accepted").
fn check_lock_log(log: &[Entry], props: LockProps) {
    struct Acq {
        client: u32,
        token: i64,
        lease_end: u64,
        released: bool,
    }
    let mut acqs: Vec<Acq> = vec![];
    let mut mine: std::collections::BTreeMap<u32, usize> = Default::default();
    let mut last_write: Option<usize> = None;
    let all = props == LockProps::All;
    for e in log {
        let Ok(reply) = &e.reply else {
            crate::testkit::violation(&format!("script {} failed: {:?}", e.script, e.reply))
        };
        let valid = |acqs: &Vec<Acq>, i: usize| {
            i != usize::MAX && i + 1 == acqs.len() && !acqs[i].released && acqs[i].lease_end > e.now
        };
        match e.script {
            "lock_acquire" if int_of(reply, 0) == 1 => {
                if let Some(prev) = acqs.last() {
                    crate::check!(
                        !all || prev.released || prev.lease_end <= e.now,
                        "two holders within one lease: client {} acquired at {} while client {} held until {}",
                        e.client, e.now, prev.client, prev.lease_end
                    );
                    crate::check!(
                        !all || (int_of(reply, 2) == 1) != prev.released,
                        "owner_died was {} after an acquisition released={}",
                        int_of(reply, 2),
                        prev.released
                    );
                }
                acqs.push(Acq {
                    client: e.client,
                    token: int_of(reply, 1),
                    lease_end: e.now + LEASE,
                    released: false,
                });
                mine.insert(e.client, acqs.len() - 1);
            }
            "lock_renew" | "lock_release" => {
                // The acquisition is named by its token (the client's latest
                // one with it: tokens repeat only under mutant 1201).
                let t = parse_int(&e.args[0]).unwrap_or(-1);
                let i = acqs
                    .iter()
                    .rposition(|a| a.token == t && a.client == e.client)
                    .unwrap_or(usize::MAX);
                let ok = valid(&acqs, i);
                crate::check!(
                    !all || (reply == &Resp::Int(1)) == ok,
                    "{} by client {} answered {:?}, but its acquisition holds the lock: {}",
                    e.script,
                    e.client,
                    reply,
                    ok
                );
                if reply == &Resp::Int(1) && i != usize::MAX {
                    if e.script == "lock_renew" {
                        acqs[i].lease_end = e.now + LEASE;
                    } else {
                        acqs[i].released = true;
                    }
                }
            }
            "fenced_set" if reply == &Resp::Int(1) => {
                let i = mine[&e.client];
                if let Some(w) = last_write {
                    crate::check!(
                        i >= w,
                        "stale write accepted: acquisition {i} (client {}) wrote after acquisition {w}",
                        e.client
                    );
                }
                last_write = Some(i);
            }
            _ => {}
        }
    }
}

/// A client that takes the lock `rounds` times: acquire, a fenced write,
/// renew, another fenced write, release (it stops writing once renew says the
/// lease ran out, as the holder's renewer would tell it).
fn lock_client<const M: u32>(rounds: usize) -> Body<M> {
    Box::new(move |c: &ModelClient<M>| {
        let l = LeaseLock::new(LOCK, LEASE);
        for _ in 0..rounds {
            let h = l.acquire(c, None).unwrap().expect("no timeout");
            fenced_set(c, RESOURCE, h.token, b"x").unwrap();
            if l.renew(c, h.token).unwrap() {
                fenced_set(c, RESOURCE, h.token, b"y").unwrap();
            }
            l.release(c, h.token).unwrap();
        }
    })
}

/// Like [`lock_client`], but a write after a pause goes ahead without asking
/// the renewer (a paused holder does not know it was paused): only the token
/// protects the resource.
fn paused_writer<const M: u32>(rounds: usize) -> Body<M> {
    Box::new(move |c: &ModelClient<M>| {
        let l = LeaseLock::new(LOCK, LEASE);
        for _ in 0..rounds {
            let h = l.acquire(c, None).unwrap().expect("no timeout");
            fenced_set(c, RESOURCE, h.token, b"x").unwrap();
            fenced_set(c, RESOURCE, h.token, b"y").unwrap();
            l.release(c, h.token).unwrap();
        }
    })
}

fn lock_run<const M: u32>(
    sched: Sched,
    opts: Options,
    crash: Option<u32>,
    props: LockProps,
    clients: fn() -> Vec<Body<M>>,
) -> bool {
    let iters = iters();
    shuttle_runs(sched, iters, move |died| {
        let r = ModelRedis::<M>::new(opts);
        let mut cs: Vec<(Option<u32>, Body<M>)> = vec![];
        for (i, b) in clients().into_iter().enumerate() {
            cs.push((if i == 0 { crash } else { None }, b));
        }
        r.run(cs, died);
        if opts.jump_at.is_some() && r.jumped() {
            died.store(true, SeqCst);
        }
        check_lock_log(&r.log(), props);
    })
}

fn three_lockers<const M: u32>() -> Vec<Body<M>> {
    vec![lock_client(2), lock_client(2), lock_client(1)]
}

fn lockers_with_paused_writer<const M: u32>() -> Vec<Body<M>> {
    vec![paused_writer(2), lock_client(1), lock_client(1)]
}

fn two_lockers<const M: u32>() -> Vec<Body<M>> {
    vec![lock_client(1), lock_client(1)]
}

/// No time passes: every waiter is woken by a release's notification.
fn lock_no_time<const M: u32>(sched: Sched, clients: fn() -> Vec<Body<M>>) {
    lock_run::<M>(sched, Options::default(), None, LockProps::All, clients);
}

/// A client dies at every crash point; time passes while all sleep, so its
/// lease runs out and the others go on (the next acquirer told `owner_died`).
fn lock_deaths<const M: u32>() -> u32 {
    every_crash_point(|k| {
        let opts = Options {
            clock: true,
            ..Options::default()
        };
        lock_run::<M>(
            Sched::Random,
            opts,
            Some(k),
            LockProps::All,
            three_lockers::<M>,
        )
    })
}

/// Every lease runs out before the k-th script, for every k.
fn lock_pauses<const M: u32>(props: LockProps, clients: fn() -> Vec<Body<M>>) -> u32 {
    every_crash_point(|k| {
        let opts = Options {
            clock: true,
            jump_at: Some(k as u64),
            jump_ms: PAUSE,
        };
        lock_run::<M>(Sched::Random, opts, None, props, clients)
    })
}

#[test]
fn lock_no_time_random_and_pct() {
    lock_no_time::<0>(Sched::Random, three_lockers::<0>);
    lock_no_time::<0>(Sched::Pct, three_lockers::<0>);
    lock_no_time::<0>(Sched::Random, two_lockers::<0>);
}

#[test]
fn lock_holder_dies_at_every_crash_point() {
    let n = lock_deaths::<0>();
    assert!(n >= 20, "only {n} crash points");
}

#[test]
fn lock_lease_runs_out_before_every_step() {
    let n = lock_pauses::<0>(LockProps::All, three_lockers::<0>);
    assert!(n >= 15, "only {n} steps");
    lock_pauses::<0>(LockProps::All, lockers_with_paused_writer::<0>);
}

/// The scenario of the issue, step by step: a holder paused past its lease;
/// the next acquirer is told the owner died and gets a larger token; the
/// paused holder's late write, renew and release are all refused.
#[test]
fn lock_paused_holder_is_fenced_off() {
    shuttle::check_random(
        || {
            let r = ModelRedis::<0>::new(Options::default());
            let l = LeaseLock::new(LOCK, LEASE);
            let body: Body<0> = Box::new(move |c| {
                let a = l.acquire(c, Some(0)).unwrap().unwrap();
                assert!(!a.owner_died);
                assert!(fenced_set(c, RESOURCE, a.token, b"a1").unwrap());
                // What a pause is to the server: time passes, nothing renews.
                c.pause(LEASE + 1);
                let b = l.acquire(c, Some(0)).unwrap().unwrap();
                assert!(b.owner_died && b.token > a.token);
                assert!(fenced_set(c, RESOURCE, b.token, b"b1").unwrap());
                assert!(!fenced_set(c, RESOURCE, a.token, b"a2").unwrap());
                assert!(!l.renew(c, a.token).unwrap());
                assert!(!l.release(c, a.token).unwrap());
                assert!(l.release(c, b.token).unwrap());
                let c2 = l.acquire(c, Some(0)).unwrap().unwrap();
                assert!(!c2.owner_died && c2.token > b.token);
            });
            r.run(vec![(None, body)], &AtomicBool::new(false));
            check_lock_log(&r.log(), LockProps::All);
        },
        1,
    );
}

#[test]
fn lock_catches_missing_fencing() {
    // 1201: with every holder given the same token, a paused holder's late
    // write is accepted after the next holder's.
    assert!(fails_with("stale write accepted", || {
        lock_pauses::<1201>(LockProps::FencingOnly, lockers_with_paused_writer::<1201>);
    }));
}

#[test]
fn lock_catches_release_of_another_holders_lease() {
    assert!(fails_with("lock_release by client", || {
        lock_pauses::<1202>(LockProps::All, three_lockers::<1202>);
    }));
}

#[test]
fn lock_catches_lost_notification() {
    // 1203: without time passing, a waiter whose notification was lost sleeps for ever.
    assert!(fails_with("deadlock", || lock_no_time::<1203>(
        Sched::Random,
        two_lockers::<1203>
    )));
}

// ----------------------------------------------------------- the semaphore

const SEM: &str = "ns:sem:s";

fn sem_run<const M: u32>(
    value: u64,
    clients: usize,
    rounds: usize,
    opts: Options,
    crash: Option<u32>,
) -> bool {
    shuttle_runs(Sched::Random, iters(), move |died| {
        let r = ModelRedis::<M>::new(opts);
        let inside = Arc::new(AtomicUsize::new(0));
        let mut cs: Vec<(Option<u32>, Body<M>)> = vec![];
        for i in 0..clients {
            let inside = inside.clone();
            let body: Body<M> = Box::new(move |c| {
                let s = Semaphore::new(SEM, LEASE);
                s.create(c, value).unwrap();
                for _ in 0..rounds {
                    let p = s.acquire(c, None).unwrap().expect("no timeout");
                    // Leaving the section by dying counts as leaving it.
                    struct In<'a>(&'a AtomicUsize);
                    impl Drop for In<'_> {
                        fn drop(&mut self) {
                            self.0.fetch_sub(1, SeqCst);
                        }
                    }
                    let n = inside.fetch_add(1, SeqCst) + 1;
                    let held = In(&inside);
                    crate::check!(n as u64 <= value, "{n} holders of {value} permits");
                    s.renew(c, p.token).unwrap();
                    drop(held);
                    s.release(c, p.token).unwrap();
                }
            });
            cs.push((if i == 0 { crash } else { None }, body));
        }
        r.run(cs, died);
        // Every permit is free or held: none lost, none made.
        let (free, held) = r.with_db(|db| {
            let free = db.get_int(&format!("{SEM}:value")).unwrap().unwrap_or(0);
            let held = db.zcard(&format!("{SEM}:holders")).unwrap();
            (free, held)
        });
        crate::check!(
            free + held == value as i64,
            "{free} free + {held} held permits of {value}"
        );
    })
}

#[test]
fn semaphore_no_time() {
    sem_run::<0>(2, 4, 2, Options::default(), None);
}

#[test]
fn semaphore_holder_dies_at_every_crash_point() {
    let n = every_crash_point(|k| {
        sem_run::<0>(
            1,
            3,
            1,
            Options {
                clock: true,
                ..Options::default()
            },
            Some(k),
        )
    });
    assert!(n >= 8, "only {n} crash points");
}

#[test]
fn semaphore_catches_lost_permit() {
    // 1205: the dead holder's permit is reaped but not given back: the
    // others wait for ever (or the count is off).
    assert!(fails(|| {
        every_crash_point(|k| {
            sem_run::<1205>(
                1,
                3,
                1,
                Options {
                    clock: true,
                    ..Options::default()
                },
                Some(k),
            )
        });
    }));
}

// --------------------------------------------------------------- the event

const EV: &str = "ns:event:e";

/// Three waiters and a setter (maybe dying at its k-th crash point). A
/// waiter returns `true` iff the set ran; nobody hangs.
fn event_run<const M: u32>(opts: Options, crash: Option<u32>, timeout: Option<u64>) -> bool {
    shuttle_runs(Sched::Random, iters(), move |died| {
        let r = ModelRedis::<M>::new(opts);
        let results = Arc::new(std::sync::Mutex::new(vec![]));
        let mut cs: Vec<(Option<u32>, Body<M>)> = vec![];
        let setter: Body<M> = Box::new(|c| super::event::Event::new(EV).set(c).unwrap());
        cs.push((crash, setter));
        for _ in 0..3 {
            let results = results.clone();
            let body: Body<M> = Box::new(move |c| {
                let woke = super::event::Event::new(EV).wait(c, timeout).unwrap();
                results.lock().unwrap().push(woke);
            });
            cs.push((None, body));
        }
        r.run(cs, died);
        let set = r.log().iter().any(|e| e.script == "event_set");
        let res = results.lock().unwrap().clone();
        crate::check!(
            res.iter().all(|&w| w == set),
            "waiters returned {res:?}, the set ran: {set}"
        );
    })
}

#[test]
fn event_no_time() {
    event_run::<0>(Options::default(), None, None);
}

#[test]
fn event_setter_dies_at_every_crash_point() {
    let n = every_crash_point(|k| {
        event_run::<0>(
            Options {
                clock: true,
                ..Options::default()
            },
            Some(k),
            Some(50),
        )
    });
    assert!(n >= 2, "only {n} crash points");
}

#[test]
fn event_catches_set_without_notification() {
    assert!(fails_with("deadlock", || {
        event_run::<1207>(Options::default(), None, None);
    }));
}

// ------------------------------------------------------------- the barrier

const BAR: &str = "ns:barrier:b";

/// Three parties wait once each (timeout 50), one maybe dying at its k-th
/// crash point, the clock maybe jumping before the j-th script. Every party
/// of the generation that returns agrees (all passed, with distinct indices,
/// or all broken); all pass when nobody died and no time jumped.
fn barrier_run<const M: u32>(opts: Options, crash: Option<u32>) -> bool {
    shuttle_runs(Sched::Random, iters(), move |died| {
        let r = ModelRedis::<M>::new(opts);
        let results = Arc::new(std::sync::Mutex::new(vec![]));
        let mut cs: Vec<(Option<u32>, Body<M>)> = vec![];
        for i in 0..3 {
            let results = results.clone();
            let body: Body<M> = Box::new(move |c| {
                let b = Barrier::new(BAR, 3);
                let p = b.wait(c, Some(50)).unwrap();
                results.lock().unwrap().push(p);
            });
            cs.push((if i == 0 { crash } else { None }, body));
        }
        r.run(cs, died);
        let jumped = r.jumped();
        if opts.jump_at.is_some() && jumped {
            died.store(true, SeqCst);
        }
        let res = results.lock().unwrap().clone();
        let passed: Vec<u64> = res
            .iter()
            .filter_map(|p| match p {
                Passage::Passed(i) => Some(*i),
                Passage::Broken => None,
            })
            .collect();
        crate::check!(
            passed.is_empty() || passed.len() == res.len(),
            "the parties of one generation disagree: {res:?}"
        );
        let mut sorted = passed.clone();
        sorted.sort();
        sorted.dedup();
        crate::check!(
            sorted.len() == passed.len(),
            "two parties with one index: {res:?}"
        );
        if crash.is_none() && !jumped {
            crate::check!(passed.len() == 3, "nobody died, yet: {res:?}");
        }
    })
}

#[test]
fn barrier_no_time() {
    barrier_run::<0>(Options::default(), None);
}

#[test]
fn barrier_party_dies_at_every_crash_point() {
    let n = every_crash_point(|k| {
        barrier_run::<0>(
            Options {
                clock: true,
                ..Options::default()
            },
            Some(k),
        )
    });
    assert!(n >= 4, "only {n} crash points");
}

#[test]
fn barrier_timeout_before_every_step() {
    every_crash_point(|k| {
        barrier_run::<0>(
            Options {
                clock: true,
                jump_at: Some(k as u64),
                jump_ms: PAUSE,
            },
            None,
        )
    });
}

#[test]
fn barrier_catches_timeout_without_break() {
    assert!(fails_with("disagree", || {
        every_crash_point(|k| {
            barrier_run::<1206>(
                Options {
                    clock: true,
                    jump_at: Some(k as u64),
                    jump_ms: PAUSE,
                },
                None,
            )
        });
    }));
}

// --------------------------------------------------------------- the queue

const QUEUE: &str = "ns:queue:q";
const ITEMS: u8 = 3;

/// A producer puts 3 items; two consumers take and ack (consumer 1 maybe
/// dying at its k-th crash point, the clock maybe jumping before the j-th
/// script). Every item is acked exactly once ("lost" otherwise): at least
/// once delivery, with a late ack of a redelivered item refused.
fn queue_run<const M: u32>(opts: Options, crash: Option<u32>) -> bool {
    shuttle_runs(Sched::Random, iters(), move |died| {
        let r = ModelRedis::<M>::new(opts);
        let acked = Arc::new(std::sync::Mutex::new(vec![0u32; ITEMS as usize]));
        let mut cs: Vec<(Option<u32>, Body<M>)> = vec![];
        for who in 1..=2 {
            let acked = acked.clone();
            let body: Body<M> = Box::new(move |c| {
                let q = ReliableQueue::new(QUEUE, &format!("c{who}"), LEASE);
                for _ in 0..12 {
                    if acked.lock().unwrap().iter().all(|&n| n > 0) {
                        break;
                    }
                    let Some(t) = q.take(c, Some(1000)).unwrap() else {
                        continue;
                    };
                    if q.ack(c, &t.item).unwrap() {
                        acked.lock().unwrap()[t.item[0] as usize] += 1;
                    }
                }
            });
            cs.push((if who == 1 { crash } else { None }, body));
        }
        let producer: Body<M> = Box::new(|c| {
            let q = ReliableQueue::new(QUEUE, "producer", LEASE);
            for i in 0..ITEMS {
                q.put(c, &[i]).unwrap();
            }
        });
        cs.push((None, producer));
        r.run(cs, died);
        if opts.jump_at.is_some() && r.jumped() {
            died.store(true, SeqCst);
        }
        // Acks as the server ran them (a consumer may die after its ack ran).
        let mut acks = vec![0u32; ITEMS as usize];
        for e in r.log() {
            if e.script == "queue_ack" && e.reply == Ok(Resp::Int(1)) {
                acks[e.args[1][0] as usize] += 1;
            }
        }
        crate::check!(
            acks.iter().all(|&n| n == 1),
            "an item was lost or acked twice: acks per item {acks:?}"
        );
    })
}

#[test]
fn queue_no_time() {
    queue_run::<0>(
        Options {
            clock: true,
            ..Options::default()
        },
        None,
    );
}

#[test]
fn queue_consumer_dies_at_every_crash_point() {
    let n = every_crash_point(|k| {
        queue_run::<0>(
            Options {
                clock: true,
                ..Options::default()
            },
            Some(k),
        )
    });
    assert!(n >= 8, "only {n} crash points");
}

#[test]
fn queue_lease_runs_out_before_every_step() {
    every_crash_point(|k| {
        queue_run::<0>(
            Options {
                clock: true,
                jump_at: Some(k as u64),
                jump_ms: PAUSE,
            },
            None,
        )
    });
}

#[test]
fn queue_catches_take_without_processing_list() {
    assert!(fails_with("lost", || {
        every_crash_point(|k| {
            queue_run::<1204>(
                Options {
                    clock: true,
                    ..Options::default()
                },
                Some(k),
            )
        });
    }));
}

// -------------------------------------------------------- bad keys, decoding

#[test]
fn wrong_type_and_missing_keys_are_errors() {
    let mut db = Db::new();
    db.rpush("ns:lock:l:lease", b"x").unwrap();
    let l = LeaseLock::new(LOCK, LEASE);
    // A list where the lease should be: it has no expiry.
    assert_eq!(
        l.acquire_call().run_on(&mut db),
        Err(ScriptError::Corrupt("ns:lock:l:lease".into()))
    );
    let s = Semaphore::new(SEM, LEASE);
    assert_eq!(
        s.acquire_call().run_on(&mut db),
        Err(ScriptError::Missing(format!("{SEM}:value")))
    );
    db.rpush(&format!("{SEM}:value"), b"x").unwrap();
    assert!(matches!(
        s.acquire_call().run_on(&mut db),
        Err(ScriptError::WrongType(_))
    ));
    db.set(&format!("{SEM}:value"), b"nope", None, false);
    assert!(matches!(
        s.acquire_call().run_on(&mut db),
        Err(ScriptError::NotInteger(_))
    ));
}
