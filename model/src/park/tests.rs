//! What [`park`] and [`sleep`] ask of the platform, step by step, against a
//! probe platform that records every write to the word and every wait (and
//! answers each wait as the test scripts it).
//!
//! The protocols' loom and shuttle checks exercise park through the model
//! platforms, whose waits use neither the owner id nor (outside mutant 1101)
//! the identity they are given, and which cannot see a needless write: these
//! tests pin down what the real platform depends on (written for the
//! cargo-mutants mutants of `park.rs`: each viable one that is not marked
//! equivalent fails at least one of them). Single-threaded; no checker.

use super::*;
use crate::platform::{CellLike, Occupant, Word64, OWNER_MASK};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use core::time::Duration;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::Mutex;

/// The probe platform.
#[derive(Debug)]
struct Probe;

impl Platform for Probe {
    type W32 = Word;
    type W64 = Word64Probe;
    type Cell<T: Send> = Cell<T>;
    type Thread = Probing;
    fn fence(o: core::sync::atomic::Ordering) {
        core::sync::atomic::fence(o)
    }
}

/// A write to the word (loads are not recorded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Write {
    Store(u32),
    Cas(u32, u32),
    Rmw(&'static str, u32),
}

/// A futex word that records its writes.
#[derive(Debug)]
struct Word {
    a: AtomicU32,
    writes: Mutex<Vec<Write>>,
}

impl Word {
    fn log(&self, w: Write) {
        self.writes.lock().unwrap().push(w);
    }
    fn writes(&self) -> Vec<Write> {
        self.writes.lock().unwrap().clone()
    }
}

impl Word32 for Word {
    fn new(v: u32) -> Self {
        Word {
            a: AtomicU32::new(v),
            writes: Mutex::new(Vec::new()),
        }
    }
    fn load(&self, o: Ordering) -> u32 {
        self.a.load(o)
    }
    fn store(&self, v: u32, o: Ordering) {
        self.log(Write::Store(v));
        self.a.store(v, o)
    }
    fn swap(&self, v: u32, o: Ordering) -> u32 {
        self.log(Write::Rmw("swap", v));
        self.a.swap(v, o)
    }
    fn cas(&self, cur: u32, new: u32, s: Ordering, f: Ordering) -> Result<u32, u32> {
        self.log(Write::Cas(cur, new));
        self.a.compare_exchange(cur, new, s, f)
    }
    fn fetch_add(&self, v: u32, o: Ordering) -> u32 {
        self.log(Write::Rmw("add", v));
        self.a.fetch_add(v, o)
    }
    fn fetch_sub(&self, v: u32, o: Ordering) -> u32 {
        self.log(Write::Rmw("sub", v));
        self.a.fetch_sub(v, o)
    }
    fn fetch_or(&self, v: u32, o: Ordering) -> u32 {
        self.log(Write::Rmw("or", v));
        self.a.fetch_or(v, o)
    }
    fn fetch_and(&self, v: u32, o: Ordering) -> u32 {
        self.log(Write::Rmw("and", v));
        self.a.fetch_and(v, o)
    }
}

/// A 64-bit word (the platform needs one; park does not use it).
#[derive(Debug)]
struct Word64Probe(AtomicU64);

impl Word64 for Word64Probe {
    fn new(v: u64) -> Self {
        Word64Probe(AtomicU64::new(v))
    }
    fn load(&self, o: Ordering) -> u64 {
        self.0.load(o)
    }
    fn store(&self, v: u64, o: Ordering) {
        self.0.store(v, o)
    }
    fn swap(&self, v: u64, o: Ordering) -> u64 {
        self.0.swap(v, o)
    }
    fn cas(&self, c: u64, n: u64, s: Ordering, f: Ordering) -> Result<u64, u64> {
        self.0.compare_exchange(c, n, s, f)
    }
    fn fetch_add(&self, v: u64, o: Ordering) -> u64 {
        self.0.fetch_add(v, o)
    }
    fn fetch_sub(&self, v: u64, o: Ordering) -> u64 {
        self.0.fetch_sub(v, o)
    }
}

/// A cell (the platform needs one; park does not use it).
#[derive(Debug)]
struct Cell<T>(Mutex<T>);

impl<T: Send> CellLike<T> for Cell<T> {
    fn new(v: T) -> Self {
        Cell(Mutex::new(v))
    }
    fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(&*self.0.lock().unwrap())
    }
    fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(&mut *self.0.lock().unwrap())
    }
}

/// A wait park asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    /// A plain wait while the word holds `expected`.
    Wait { expected: u32 },
    /// A wait watching `owner` (identity `ident`).
    WaitOwned {
        expected: u32,
        owner: u32,
        ident: u64,
    },
}

/// The probe thread: records the waits; each wait pops the scripted answer
/// and the value the word then holds (as another thread would have left it).
#[derive(Debug)]
struct Probing {
    calls: RefCell<Vec<Call>>,
    script: RefCell<VecDeque<(Woke, u32)>>,
}

impl Probing {
    fn scripted(answers: &[(Woke, u32)]) -> Self {
        Probing {
            calls: RefCell::new(Vec::new()),
            script: RefCell::new(answers.iter().copied().collect()),
        }
    }
    fn answer(&self, w: &Word, call: Call) -> Woke {
        self.calls.borrow_mut().push(call);
        let (woke, then) = self
            .script
            .borrow_mut()
            .pop_front()
            .expect("a wait the test did not script");
        w.a.store(then, Ordering::Relaxed);
        woke
    }
    fn calls(&self) -> Vec<Call> {
        self.calls.borrow().clone()
    }
}

impl Thread for Probing {
    type Word = Word;
    /// Finite?
    type Deadline = bool;
    fn id(&self) -> u32 {
        1
    }
    fn deadline(&self, timeout: Option<Duration>) -> bool {
        timeout.is_some()
    }
    fn expired(&self, d: &bool) -> bool {
        *d
    }
    fn wait(&self, w: &Word, expected: u32, _d: &bool) -> Woke {
        self.answer(w, Call::Wait { expected })
    }
    fn wait_owned(&self, w: &Word, expected: u32, owner: u32, ident: u64, _d: &bool) -> Woke {
        self.answer(
            w,
            Call::WaitOwned {
                expected,
                owner,
                ident,
            },
        )
    }
    fn wake(&self, _w: &Word, _n: u32) -> usize {
        0
    }
    fn identity(&self) -> u64 {
        1
    }
    fn occupant(&self, _owner: u32) -> Occupant {
        Occupant::Unknown
    }
    fn publishing(&self, _w: Option<&Word>) {}
    fn spin(&self, _iteration: u32) -> bool {
        false
    }
    fn crash_point(&self) {}
}

/// A lock word's waiters bit (bit 31), as the mutex's.
const BIT: u32 = 1 << 31;

/// A lock-like condition: done when the word has no owner.
fn free(v: u32) -> Check<u32> {
    if v & OWNER_MASK == 0 {
        Check::Done(v)
    } else {
        Check::Sleep
    }
}

/// A waiter of a lock word held by owner 7 announces itself by a CAS from
/// the value it checked to that value with the bit, sleeps while the word
/// holds the announced value, watching owner 7 (the owner bits of that
/// value; the identity its check gave), and after a wake-up checks the word
/// again.
#[test]
fn a_lock_word_is_announced_by_cas_and_slept_on_watching_its_owner() {
    for (check_ident, ident) in [(None, 0), (Some(99), 99)] {
        let t = Probing::scripted(&[(Woke::Woken, BIT)]);
        let w = Word::new(7);
        let how = Waiters::bit(BIT).owner(OWNER_MASK);
        let r = park::<Probe, _>(
            &t,
            &w,
            how,
            &false,
            7,
            |v| match (free(v), check_ident) {
                (Check::Sleep, Some(i)) => Check::SleepOn(i),
                (c, _) => c,
            },
            |_, _| panic!("no timeout was scripted"),
        );
        assert_eq!(r, BIT, "park returns the check's value");
        assert_eq!(w.writes(), [Write::Cas(7, 7 | BIT)], "the announcement");
        assert_eq!(
            t.calls(),
            [Call::WaitOwned {
                expected: 7 | BIT,
                owner: 7,
                ident
            }],
            "the sleep"
        );
    }
}

/// A word whose bit is already set is not written again; a word without a
/// waiters bit (`Waiters::NONE`) is never written, and is slept on with a
/// plain wait (it records no owner).
#[test]
fn a_word_is_written_only_to_set_a_missing_waiters_bit() {
    let t = Probing::scripted(&[(Woke::Woken, BIT)]);
    let w = Word::new(7 | BIT);
    let r = park::<Probe, _>(
        &t,
        &w,
        Waiters::bit(BIT).owner(OWNER_MASK),
        &false,
        7 | BIT,
        free,
        |_, _| None,
    );
    assert_eq!((r, w.writes()), (BIT, vec![]));
    assert_eq!(
        t.calls(),
        [Call::WaitOwned {
            expected: 7 | BIT,
            owner: 7,
            ident: 0
        }]
    );

    // A counter-like word (a semaphore's, a joinable's `done`): waits while 5.
    let t = Probing::scripted(&[(Woke::Woken, 6)]);
    let w = Word::new(5);
    let r = park::<Probe, _>(
        &t,
        &w,
        Waiters::NONE,
        &false,
        5,
        |v| if v == 5 { Check::Sleep } else { Check::Done(v) },
        |_, _| None,
    );
    assert_eq!(
        (r, w.writes()),
        (6, vec![]),
        "a word without a waiters bit written"
    );
    assert_eq!(t.calls(), [Call::Wait { expected: 5 }]);
}

/// The seeded bug's announcement (`by_store`): a plain store of the value
/// checked with the bit (what the protocols' checks of that bug assume).
#[test]
fn the_seeded_store_announcement_stores_the_value_with_the_bit() {
    let t = Probing::scripted(&[(Woke::Woken, 0)]);
    let w = Word::new(7);
    park::<Probe, _>(
        &t,
        &w,
        Waiters::bit(BIT).by_store(true),
        &false,
        7,
        free,
        |_, _| None,
    );
    assert_eq!(w.writes(), [Write::Store(7 | BIT)]);
    assert_eq!(t.calls(), [Call::Wait { expected: 7 | BIT }]);
}

/// After `TimedOut` park re-reads the word by RMW and hands that value, and
/// whether the deadline passed, to `timed_out`: `None` checks that value
/// (here: sleep again), `Some` ends the wait. After any other return it
/// loads the word and checks it, without asking `timed_out`.
#[test]
fn a_timeout_rereads_the_word_by_rmw_and_asks_the_protocol() {
    for finite in [false, true] {
        let t = Probing::scripted(&[
            (Woke::Woken, 5),
            (Woke::Mismatch, 6),
            (Woke::TimedOut, 7),
            (Woke::TimedOut, 8),
        ]);
        let w = Word::new(5);
        let mut asked = Vec::new();
        let r = park::<Probe, _>(
            &t,
            &w,
            Waiters::NONE,
            &finite,
            5,
            |v| if v < 9 { Check::Sleep } else { Check::Done(0) },
            |v, expired| {
                asked.push((v, expired));
                (v == 8).then_some(v * 10)
            },
        );
        assert_eq!(r, 80);
        assert_eq!(asked, [(7, finite), (8, finite)]);
        assert_eq!(
            w.writes(),
            [Write::Rmw("or", 0), Write::Rmw("or", 0)],
            "the re-reads after a timeout"
        );
        let waits: Vec<_> = [5, 5, 6, 7].map(|e| Call::Wait { expected: e }).into();
        assert_eq!(t.calls(), waits, "each sleep on the value last read");
    }
}

/// [`sleep`] alone: announces as park does and watches the owner of the
/// value it was given (none for a word without owner bits); if the word no
/// longer holds that value it returns `Mismatch` without waiting. It
/// returns the platform's answer.
#[test]
fn sleep_announces_and_watches_the_owner_of_the_value_seen() {
    let how = Waiters::bit(BIT).owner(OWNER_MASK);
    let t = Probing::scripted(&[(Woke::TimedOut, 7 | BIT)]);
    let w = Word::new(7);
    assert_eq!(sleep::<Probe>(&t, &w, 7, how, &true), Woke::TimedOut);
    assert_eq!(w.writes(), [Write::Cas(7, 7 | BIT)]);
    assert_eq!(
        t.calls(),
        [Call::WaitOwned {
            expected: 7 | BIT,
            owner: 7,
            ident: 0
        }]
    );

    // Changed since the caller's check: no wait.
    let t = Probing::scripted(&[]);
    let w = Word::new(8);
    assert_eq!(sleep::<Probe>(&t, &w, 7, how, &false), Woke::Mismatch);
    assert_eq!((w.load(Ordering::Relaxed), t.calls()), (8, vec![]));

    // No owner bits: a plain wait; no waiters bit: no write.
    let t = Probing::scripted(&[(Woke::Woken, 5)]);
    let w = Word::new(5);
    assert_eq!(
        sleep::<Probe>(&t, &w, 5, Waiters::NONE, &false),
        Woke::Woken
    );
    assert_eq!(
        (w.writes(), t.calls()),
        (vec![], vec![Call::Wait { expected: 5 }])
    );
    let t = Probing::scripted(&[(Woke::Woken, 5)]);
    assert_eq!(
        sleep::<Probe>(&t, &w, 5, Waiters::bit(BIT), &false),
        Woke::Woken
    );
    assert_eq!(
        (w.writes(), t.calls()),
        (
            vec![Write::Cas(5, 5 | BIT)],
            vec![Call::Wait { expected: 5 | BIT }]
        )
    );
}
