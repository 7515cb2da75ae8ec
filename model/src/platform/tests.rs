//! The defaults of [`Thread`]'s provided methods, which the shipped platform
//! (`procshare::platform::ShmThread`) relies on and the model platforms
//! override: no protocol check reaches them, so they are checked here on a
//! thread that overrides nothing.

use super::*;
use core::sync::atomic::AtomicU32;
use std::cell::RefCell;

/// A plain word.
#[derive(Debug)]
struct Word(AtomicU32);

impl Word32 for Word {
    fn new(v: u32) -> Self {
        Word(AtomicU32::new(v))
    }
    fn load(&self, o: Ordering) -> u32 {
        self.0.load(o)
    }
    fn store(&self, v: u32, o: Ordering) {
        self.0.store(v, o)
    }
    fn swap(&self, v: u32, o: Ordering) -> u32 {
        self.0.swap(v, o)
    }
    fn cas(&self, cur: u32, new: u32, s: Ordering, f: Ordering) -> Result<u32, u32> {
        self.0.compare_exchange(cur, new, s, f)
    }
    fn fetch_add(&self, v: u32, o: Ordering) -> u32 {
        self.0.fetch_add(v, o)
    }
    fn fetch_sub(&self, v: u32, o: Ordering) -> u32 {
        self.0.fetch_sub(v, o)
    }
    fn fetch_or(&self, v: u32, o: Ordering) -> u32 {
        self.0.fetch_or(v, o)
    }
    fn fetch_and(&self, v: u32, o: Ordering) -> u32 {
        self.0.fetch_and(v, o)
    }
}

/// A thread that implements only the required methods: owner 1 is nobody,
/// owner 2 the thread with identity 22, any other owner unknown. Its waits
/// are recorded (expected value, deadline) and return `Woken`.
#[derive(Debug, Default)]
struct Plain {
    waits: RefCell<Vec<(u32, u8)>>,
}

impl Thread for Plain {
    type Word = Word;
    type Deadline = u8;
    fn id(&self) -> u32 {
        3
    }
    fn deadline(&self, _timeout: Option<Duration>) -> u8 {
        0
    }
    fn expired(&self, _d: &u8) -> bool {
        false
    }
    fn wait(&self, _w: &Word, expected: u32, d: &u8) -> Woke {
        self.waits.borrow_mut().push((expected, *d));
        Woke::Woken
    }
    fn wake(&self, _w: &Word, _n: u32) -> usize {
        0
    }
    fn identity(&self) -> u64 {
        33
    }
    fn occupant(&self, owner: u32) -> Occupant {
        match owner {
            1 => Occupant::Nobody,
            2 => Occupant::Is(22),
            _ => Occupant::Unknown,
        }
    }
    fn publishing(&self, _w: Option<&Word>) {}
    fn spin(&self, _iteration: u32) -> bool {
        false
    }
    fn crash_point(&self) {}
}

/// `is_alive` asks `occupant`: nobody is dead; a known or an unknown
/// occupant is taken for alive.
#[test]
fn is_alive_is_an_occupant_other_than_nobody() {
    let t = Plain::default();
    assert!(!t.is_alive(1));
    assert!(t.is_alive(2));
    assert!(t.is_alive(4));
}

/// A platform that does not know says an owner id may have been reused
/// (protocols then compare identities: `false` would let them skip it).
#[test]
fn an_owner_id_may_have_been_reused_by_default() {
    let t = Plain::default();
    assert!(t.id_reused(1));
    assert!(t.id_reused(2));
}

/// Without death notification, the waits that watch an owner are plain waits.
#[test]
fn watching_waits_are_plain_waits_by_default() {
    let t = Plain::default();
    let w = Word::new(5);
    assert_eq!(t.wait_owned(&w, 5, 2, 22, &7), Woke::Woken);
    assert_eq!(t.wait_owned_unnotified(&w, 6, 2, 22, &8), Woke::Woken);
    assert_eq!(*t.waits.borrow(), [(5, 7), (6, 8)]);
}

/// `mutant` is on for exactly the mutant its choice selects.
#[test]
fn mutant_selects_one_seeded_bug() {
    assert!(!mutant::<WithMutant<0>>(Mutant(801)));
    assert!(mutant::<WithMutant<801>>(Mutant(801)));
    assert!(!mutant::<WithMutant<801>>(Mutant(802)));
}
