//! Checks of the manager's objects on Redis: the data scripts answer as the
//! local manager does (the same random operation sequences on
//! `manager::apply` and on the scripts over the model keyspace), the
//! recursive lock keeps mutual exclusion with re-entry, and the manager
//! queue's bounded put never sleeps through room made by a get. Each with
//! its seeded mutant (1208, 1209, 1210) shown caught.

use super::model::{ModelClient, ModelRedis, Options};
use super::objects::run_data_op;
use super::queue::ManagerQueue;
use super::rlock::RLeaseLock;
use super::*;
use crate::manager::{apply, ConnId, Init, Kind, Obj, Op, Step};
use crate::testkit::{fails, fails_with, shuttle_iters, shuttle_runs, Sched};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

type Body<const M: u32> = super::model::ClientBody<M>;

/// A small deterministic generator (xorshift64*), so a failure names its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn idx(&mut self) -> i64 {
        self.below(9) as i64 - 4
    }
    fn item(&mut self) -> Vec<u8> {
        vec![self.below(4) as u8]
    }
    fn items(&mut self) -> Vec<Vec<u8>> {
        (0..self.below(3)).map(|_| self.item()).collect()
    }
}

fn random_op(kind: Kind, r: &mut Rng) -> Op {
    match kind {
        Kind::List => match r.below(19) {
            17 => Op::ListRepeat(r.below(4)),
            18 => Op::ListRepeat(u64::MAX - r.below(2)),
            0 => Op::Append(r.item()),
            1 => Op::Extend(r.items()),
            2 => Op::InsertAt(r.idx(), r.item()),
            3 => Op::Pop(None),
            4 => Op::PopAt(r.idx()),
            5 => Op::Remove(r.item()),
            6 => Op::Index(r.item()),
            7 => Op::Count(r.item()),
            8 => Op::GetAt(r.idx()),
            9 => Op::SetAt(r.idx(), r.item()),
            10 => Op::DeleteAt(r.idx()),
            11 => Op::Reverse,
            12 => Op::GetRange(r.below(5), r.below(5)),
            13 => Op::SetRange(r.below(5), r.below(5), r.items()),
            14 => Op::Len,
            15 => Op::Clear,
            _ => Op::Insert(r.below(6), r.item()),
        },
        Kind::Dict => match r.below(17) {
            13 => Op::DictPopItem,
            14 => Op::DictKeyAfter(
                [None, Some(0), Some(1), Some(3)][r.below(4) as usize],
                r.below(4),
            ),
            15 => Op::DictOr(r.items().into_iter().map(|k| (k, vec![7])).collect()),
            16 => Op::DictFromKeys(r.items(), r.item()),
            0 => Op::DictGet(r.item()),
            1 | 2 => Op::DictInsert(r.item(), r.item()),
            3 => Op::DictRemove(r.item()),
            4 => Op::DictPop(r.item()),
            5 => Op::DictItem(r.item()),
            6 => Op::DictContains(r.item()),
            7 => Op::DictKeys,
            8 => Op::DictValues,
            9 => Op::DictItems,
            10 => Op::DictUpdate(r.items().into_iter().map(|k| (k, vec![9])).collect()),
            11 => Op::DictSetDefault(r.item(), r.item()),
            _ => {
                if r.below(4) == 0 {
                    Op::Clear
                } else {
                    Op::Len
                }
            }
        },
        Kind::Value => match r.below(2) {
            0 => Op::ValueGet,
            _ => Op::ValueSet(r.item()),
        },
        _ => {
            let name = ["a", "b", "c"][r.below(3) as usize].to_string();
            match r.below(5) {
                0 => Op::NsGet(name),
                1 | 2 => Op::NsSet(name, r.item()),
                3 => Op::NsDel(name),
                _ => Op::NsItems,
            }
        }
    }
}

/// The same random sequences on the local manager's object and on the
/// scripts; `Snapshot`'s version aside (each backend counts its own), every
/// answer must be equal. Returns on the first difference by panicking.
fn data_differential(mutant: u32, seeds: u64, len: usize) {
    const CONN: ConnId = 1;
    for seed in 1..=seeds {
        for (kind, init) in [
            (Kind::List, Init::List(vec![])),
            (Kind::Dict, Init::Dict(vec![])),
            (Kind::Value, Init::Value(vec![0])),
            (Kind::Namespace, Init::Namespace),
        ] {
            let mut r = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let mut local = Obj::new(init).expect("a data object");
            let mut db = Db::new();
            db.mutant = mutant;
            let p = "ns:obj:1";
            if kind == Kind::Value {
                run_data_op(&mut db, kind, p, &Op::ValueSet(vec![0]));
            }
            let mut ops = vec![];
            for _ in 0..len {
                let op = random_op(kind, &mut r);
                ops.push(op.clone());
                let want = match apply(&mut local, CONN, op.clone()) {
                    Step::Done(resp, _) => resp,
                    Step::Block => unreachable!("data operations never block"),
                };
                let got = run_data_op(&mut db, kind, p, &op);
                crate::check!(
                    got == want,
                    "seed {seed}: after {ops:?}\nthe Redis scripts answered {got:?}, the local manager {want:?}"
                );
            }
            // The whole state agrees too.
            let all = match kind {
                Kind::List => Op::GetRange(0, u64::MAX),
                Kind::Dict => Op::DictItems,
                Kind::Value => Op::ValueGet,
                _ => Op::NsItems,
            };
            let want = match apply(&mut local, CONN, all.clone()) {
                Step::Done(resp, _) => resp,
                Step::Block => unreachable!(),
            };
            let got = run_data_op(&mut db, kind, p, &all);
            crate::check!(
                got == want,
                "seed {seed}: final states differ: {got:?} vs {want:?}"
            );
        }
    }
}

#[test]
fn data_scripts_answer_as_the_local_manager() {
    data_differential(0, 300, 60);
}

#[test]
fn data_differential_catches_insert_off_by_one() {
    assert!(fails(|| data_differential(
        objects::MUTANT_INSERT_OFF_BY_ONE.0,
        300,
        60
    )));
}

// ------------------------------------------------------ the recursive lock

const RL: &str = "ns:rlock:r";

fn iters() -> usize {
    (shuttle_iters() / 10).max(20)
}

/// Clients acquire twice (the second is a re-entry), check that nobody else
/// is inside, release twice.
fn rlock_run<const M: u32>(sched: Sched, n: usize) -> bool {
    shuttle_runs(sched, iters(), move |died| {
        let r = ModelRedis::<M>::new(Options::default());
        let inside = Arc::new(AtomicUsize::new(0));
        let mut cs: Vec<(Option<u32>, Body<M>)> = vec![];
        for i in 0..n {
            let inside = inside.clone();
            let body: Body<M> = Box::new(move |c: &ModelClient<M>| {
                let l = RLeaseLock::new(RL, &format!("client{i}"), 1000);
                let a = l.acquire(c, None).unwrap().expect("no timeout");
                crate::check!(
                    a.depth == 1,
                    "two holders: a first acquisition answered depth {}",
                    a.depth
                );
                crate::check!(
                    inside.fetch_add(1, SeqCst) == 0,
                    "two holders of the recursive lock"
                );
                let b = l.acquire(c, Some(0)).unwrap();
                crate::check!(
                    b.map(|b| b.depth) == Some(2),
                    "the holder's re-entry answered {b:?}"
                );
                inside.fetch_sub(1, SeqCst);
                crate::check!(l.release(c).unwrap() == Some(1), "first release");
                crate::check!(l.release(c).unwrap() == Some(0), "last release");
                crate::check!(l.release(c).unwrap().is_none(), "a release past the last");
            });
            cs.push((None, body));
        }
        r.run(cs, died);
    })
}

#[test]
fn rlock_mutual_exclusion_with_reentry() {
    rlock_run::<0>(Sched::Random, 3);
    rlock_run::<0>(Sched::Pct, 3);
}

#[test]
fn rlock_catches_reentry_of_another_holder() {
    assert!(fails_with("two holders", || {
        rlock_run::<1209>(Sched::Random, 3);
    }));
}

// ---------------------------------------------------- the manager's queue

const MQ: &str = "ns:queue:q";

/// Two producers put two items each into a queue of `maxsize` 1; one
/// consumer gets four. Every item arrives once, each producer's in order.
fn mq_run<const M: u32>(sched: Sched) -> bool {
    shuttle_runs(sched, iters(), move |died| {
        let r = ModelRedis::<M>::new(Options::default());
        let q = ManagerQueue::new(MQ);
        r.with_db(|db| db.set(q.max_key(), b"1", None, false));
        let got = Arc::new(std::sync::Mutex::new(vec![]));
        let mut cs: Vec<(Option<u32>, Body<M>)> = vec![];
        for p in 0..2u8 {
            let body: Body<M> = Box::new(move |c: &ModelClient<M>| {
                let q = ManagerQueue::new(MQ);
                for i in 0..2u8 {
                    assert!(q.put(c, &[p, i], None).unwrap());
                }
            });
            cs.push((None, body));
        }
        let g = got.clone();
        let consumer: Body<M> = Box::new(move |c: &ModelClient<M>| {
            let q = ManagerQueue::new(MQ);
            for _ in 0..4 {
                let v = q.get(c, None).unwrap().expect("no timeout");
                g.lock().unwrap().push(v);
            }
        });
        cs.push((None, consumer));
        r.run(cs, died);
        let got = got.lock().unwrap().clone();
        for p in 0..2u8 {
            let mine: Vec<u8> = got.iter().filter(|v| v[0] == p).map(|v| v[1]).collect();
            crate::check!(mine == [0, 1], "producer {p}'s items arrived as {mine:?}");
        }
    })
}

#[test]
fn manager_queue_bounded_put_and_get() {
    mq_run::<0>(Sched::Random);
    mq_run::<0>(Sched::Pct);
}

#[test]
fn manager_queue_catches_get_without_room_notice() {
    assert!(fails_with("deadlock", || {
        mq_run::<1210>(Sched::Random);
    }));
}

/// A producer puts three items into a joinable queue and joins it (Python's
/// pattern); two consumers get and mark them done. The join returns only
/// when all three are done.
fn jq_run<const M: u32>(sched: Sched) -> bool {
    shuttle_runs(sched, iters(), move |died| {
        let r = ModelRedis::<M>::new(Options::default());
        let done = Arc::new(AtomicUsize::new(0));
        let mut cs: Vec<(Option<u32>, Body<M>)> = vec![];
        let d = done.clone();
        let producer: Body<M> = Box::new(move |c: &ModelClient<M>| {
            let q = ManagerQueue::new(MQ);
            for i in 0..3u8 {
                assert!(q.put(c, &[i], None).unwrap());
            }
            assert!(q.join(c, None).unwrap());
            let d = d.load(SeqCst);
            crate::check!(d == 3, "join returned with {d} of 3 tasks done");
        });
        cs.push((None, producer));
        for n in [2usize, 1] {
            let done = done.clone();
            let consumer: Body<M> = Box::new(move |c: &ModelClient<M>| {
                let q = ManagerQueue::new(MQ);
                for _ in 0..n {
                    q.get(c, None).unwrap().expect("no timeout");
                    done.fetch_add(1, SeqCst);
                    q.task_done(c).unwrap().expect("a task was unfinished");
                }
            });
            cs.push((None, consumer));
        }
        r.run(cs, died);
    })
}

#[test]
fn joinable_queue_join_waits_for_every_task() {
    jq_run::<0>(Sched::Random);
    jq_run::<0>(Sched::Pct);
}

#[test]
fn joinable_queue_catches_silent_task_done() {
    assert!(fails_with("deadlock", || {
        jq_run::<1211>(Sched::Random);
    }));
}

// ------------------------------------------------------------ the condition

const COND: &str = "ns:condition:c";

/// The manager's condition requests of one client, answered by the Redis
/// condition's steps (the same client sequence, `manager::condition_wait`,
/// the local manager runs).
struct CondClient<'a, const M: u32> {
    c: &'a ModelClient<M>,
    cond: super::condition::Condition,
}

#[derive(Debug)]
#[allow(dead_code)] // shown by the panics' Debug
struct CondError(String);

impl From<crate::manager::ClientError> for CondError {
    fn from(e: crate::manager::ClientError) -> Self {
        CondError(format!("{e:?}"))
    }
}

impl<const M: u32> crate::manager::Requester for CondClient<'_, M> {
    type Error = CondError;
    fn request(&self, op: Op) -> Result<crate::manager::Response, CondError> {
        use crate::manager::Response;
        let e = |e: super::model::ModelError| CondError(format!("{e:?}"));
        match op {
            Op::Acquire(_) => {
                let h = self.cond.lock().acquire(self.c, None).map_err(e)?;
                Ok(Response::Bool(h.is_some()))
            }
            Op::Release => Ok(match self.cond.lock().release(self.c).map_err(e)? {
                Some(_) => Response::Ok,
                None => Response::Err(crate::manager::OpError::NotOwner),
            }),
            op => match self.cond.cond_op(self.c, &op) {
                Some(r) => r.map(|(resp, _)| resp).map_err(e),
                None => Err(CondError(format!("{op:?}"))),
            },
        }
    }
}

/// Two waiters wait under the condition's lock until a flag is set; a
/// notifier sets it under the lock and notifies all. Nobody is inside with
/// another, and both waiters return.
fn cond_run<const M: u32>(sched: Sched) -> bool {
    shuttle_runs(sched, iters(), move |died| {
        use crate::manager::{condition_wait, Requester, Wait};
        let r = ModelRedis::<M>::new(Options::default());
        let inside = Arc::new(AtomicUsize::new(0));
        let flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut cs: Vec<(Option<u32>, Body<M>)> = vec![];
        let enter = |inside: &AtomicUsize| {
            crate::check!(
                inside.fetch_add(1, SeqCst) == 0,
                "two holders of the condition's lock"
            );
        };
        for i in 0..2 {
            let (inside, flag) = (inside.clone(), flag.clone());
            let waiter: Body<M> = Box::new(move |c: &ModelClient<M>| {
                let me = CondClient {
                    c,
                    cond: super::condition::Condition::new(COND, &format!("w{i}"), 1000),
                };
                me.request(Op::Acquire(Wait::Forever)).unwrap();
                enter(&inside);
                while !flag.load(SeqCst) {
                    inside.fetch_sub(1, SeqCst);
                    assert!(condition_wait(&me, Wait::Forever).unwrap());
                    enter(&inside);
                }
                inside.fetch_sub(1, SeqCst);
                me.request(Op::Release).unwrap();
            });
            cs.push((None, waiter));
        }
        let (inside2, flag2) = (inside.clone(), flag.clone());
        let notifier: Body<M> = Box::new(move |c: &ModelClient<M>| {
            let me = CondClient {
                c,
                cond: super::condition::Condition::new(COND, "n", 1000),
            };
            me.request(Op::Acquire(Wait::Forever)).unwrap();
            enter(&inside2);
            flag2.store(true, SeqCst);
            me.request(Op::NotifyAll).unwrap();
            inside2.fetch_sub(1, SeqCst);
            me.request(Op::Release).unwrap();
        });
        cs.push((None, notifier));
        r.run(cs, died);
    })
}

#[test]
fn condition_waiters_wake_and_exclude_each_other() {
    cond_run::<0>(Sched::Random);
    cond_run::<0>(Sched::Pct);
}

#[test]
fn condition_catches_take_of_a_held_lock() {
    assert!(fails_with("two holders", || {
        cond_run::<1212>(Sched::Random);
    }));
}
