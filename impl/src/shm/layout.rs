//! The shared-memory layouts this build compiles, checked at compile time and
//! tied to [`LAYOUT_VERSION`].
//!
//! Two checks, both `const` (a violation fails the build):
//!
//! 1. Beside each `#[repr(C)]` struct placed in shared memory (at its
//!    `unsafe impl ShmSafe`, or beside the struct where impl owns it),
//!    [`assert_shm_layout!`] states its size, alignment and (where the fields
//!    are visible from impl) field offsets: the numbers of its doc table.
//!    The model's protocol structs keep their fields private; each publishes
//!    its field offsets instead (`OFFSETS`, computed in the model with
//!    `offset_of!`), and [`assert_model_offsets!`] here states them: the
//!    offsets of the struct's doc table, every field of it.
//! 2. [`FINGERPRINT`], a 32-bit FNV-1a hash of the sizes, alignments and
//!    offsets of all of them (as compiled) and of the layout constants, must
//!    be the one [`RECORDED`] for the current [`LAYOUT_VERSION`]. A change of
//!    any shared layout that does not bump the version (and record the new
//!    fingerprint) fails the build with a message saying so; the new
//!    fingerprint is shown by the error that follows it (`expected an array
//!    with a size of <recorded>, found one with a size of <new>`).
//!
//! Segments carry `LAYOUT_VERSION` in their header and [`Segment::attach`]
//! refuses another one, so a process of an older build never reads a newer
//! layout.
//!
//! [`Segment::attach`]: crate::shm::Segment::attach

// Rust 1.80 (the MSRV) does not count a use inside a `const _` item, so it
// would call the fingerprint machinery dead code; newer compilers do.
#![allow(dead_code)]

use core::mem::{align_of, offset_of, size_of};

use procshare_model::barrier::RawBarrier;
use procshare_model::condition::RawCondition;
use procshare_model::event::RawEvent;
use procshare_model::joinable::Tasks;
use procshare_model::mutex::RawMutex;
use procshare_model::ring::{Chunk, RingHeader, CHUNK, PIECE_HEADER};
use procshare_model::rlock::RawRLock;
use procshare_model::semaphore::RawSemaphore;
use procshare_model::slot_queue::{Slot, SlotHeader};

use crate::data::value::Colocated;
use crate::platform::{Shm, ShmCell, ShmWord32, ShmWord64};
use crate::shm::{SegmentHeader, DATA_OFFSET, LAYOUT_VERSION, SEGMENT_MAGIC};

/// Asserts at compile time that a shared struct has the documented size,
/// alignment and field offsets:
/// `assert_shm_layout!(Type { size: 8, align: 4, field_a: 0, field_b: 4 });`
macro_rules! assert_shm_layout {
    ($t:ty { size: $size:expr, align: $align:expr $(, $field:ident: $off:expr)* $(,)? }) => {
        const _: () = {
            assert!(
                ::core::mem::size_of::<$t>() == $size,
                concat!(
                    "the size of shared struct `", stringify!($t), "` is not the documented ",
                    stringify!($size), ": update its doc table and this assert, ",
                    "then bump LAYOUT_VERSION (see impl/src/layout.rs)"
                )
            );
            assert!(
                ::core::mem::align_of::<$t>() == $align,
                concat!(
                    "the alignment of shared struct `", stringify!($t), "` is not the documented ",
                    stringify!($align), ": update its doc table and this assert, ",
                    "then bump LAYOUT_VERSION (see impl/src/layout.rs)"
                )
            );
            $(
                assert!(
                    ::core::mem::offset_of!($t, $field) == $off,
                    concat!(
                        "field `", stringify!($field), "` of shared struct `", stringify!($t),
                        "` is not at the documented offset ", stringify!($off),
                        ": update its doc table and this assert, ",
                        "then bump LAYOUT_VERSION (see impl/src/layout.rs)"
                    )
                );
            )*
        };
    };
}
pub(crate) use assert_shm_layout;

// The platform's words and cells, the fields of every protocol struct
// (impl/src/platform.rs): an atomic of their width, a cell as its content.
assert_shm_layout!(ShmWord32 { size: 4, align: 4 });
assert_shm_layout!(ShmWord64 { size: 8, align: 8 });
assert_shm_layout!(ShmCell<u64> { size: 8, align: 8 });
assert_shm_layout!(ShmCell<Chunk> { size: CHUNK, align: 1 });

/// Is `a == b`? (`str` equality is not `const` on the MSRV.)
const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The offset of field `name` in a model struct's `OFFSETS` table.
const fn offset_in(table: &[(&str, usize)], name: &str) -> Option<usize> {
    let mut i = 0;
    while i < table.len() {
        if str_eq(table[i].0, name) {
            return Some(table[i].1);
        }
        i += 1;
    }
    None
}

/// Asserts at compile time that a protocol struct of the model has its
/// fields at the offsets of its doc table: its `OFFSETS` table (computed in
/// the model with `offset_of!`, over the real platform) lists exactly these
/// fields, at these offsets:
/// `assert_model_offsets!(RawBarrier<Shm> { state: 0, parties: 4 });`
macro_rules! assert_model_offsets {
    ($t:ty { $($field:ident: $off:expr),+ $(,)? }) => {
        const _: () = {
            assert!(
                <$t>::OFFSETS.len() == [$(stringify!($field)),+].len(),
                concat!(
                    "the field table (OFFSETS) of shared struct `", stringify!($t),
                    "` does not list exactly the documented fields: update its doc table ",
                    "and this assert, then bump LAYOUT_VERSION (see impl/src/layout.rs)"
                )
            );
            $(
                assert!(
                    matches!(offset_in(<$t>::OFFSETS, stringify!($field)), Some(o) if o == $off),
                    concat!(
                        "field `", stringify!($field), "` of shared struct `", stringify!($t),
                        "` is not at the documented offset ", stringify!($off),
                        ": update its doc table and this assert, ",
                        "then bump LAYOUT_VERSION (see impl/src/layout.rs)"
                    )
                );
            )+
        };
    };
}

// The model's protocol structs over the real platform: the offsets of their
// doc tables (model/src/<protocol>.rs, "Layout").
assert_model_offsets!(RawMutex<Shm> { word: 0, ident: 8 });
assert_model_offsets!(RawRLock<Shm> { mutex: 0, count: 16 });
assert_model_offsets!(RawSemaphore<Shm> { value: 0, waiters: 4, bound: 8 });
assert_model_offsets!(RawEvent<Shm> { state: 0 });
assert_model_offsets!(RawBarrier<Shm> { state: 0, parties: 4 });
assert_model_offsets!(Tasks<Shm> { done: 0 });
assert_model_offsets!(RawCondition<Shm> { state: 0, seq: 8, spare: 12 });
assert_model_offsets!(SlotHeader<Shm> {
    tail: 0,
    head: 64,
    not_empty: 128,
    not_full: 192,
    closed: 256,
    slots: 264,
    pace: 320,
});
assert_model_offsets!(Slot<Shm, u64> { lock: 0, seq: 16, value: 24 });
assert_model_offsets!(RingHeader<Shm> {
    prod: 0,
    head_seen: 16,
    tail_own: 24,
    resynced: 32,
    dirty: 40,
    tail: 64,
    not_empty: 72,
    cons: 128,
    tail_seen: 144,
    pace: 152,
    head: 192,
    not_full: 200,
    closed: 256,
    capacity: 320,
    max_items: 328,
    reclaim_shift: 332,
    reclaimed: 336,
});

/// The field offsets of the model's protocol structs (their `OFFSETS`
/// tables), hashed into the fingerprint after [`LAYOUT`] (the offsets, in
/// table order: a field that moves changes it, a renamed one does not).
/// Add a line here for a new protocol struct.
const MODEL_OFFSETS: &[&[(&str, usize)]] = &[
    RawMutex::<Shm>::OFFSETS,
    RawRLock::<Shm>::OFFSETS,
    RawSemaphore::<Shm>::OFFSETS,
    RawEvent::<Shm>::OFFSETS,
    RawBarrier::<Shm>::OFFSETS,
    Tasks::<Shm>::OFFSETS,
    RingHeader::<Shm>::OFFSETS,
    RawCondition::<Shm>::OFFSETS,
    SlotHeader::<Shm>::OFFSETS,
    Slot::<Shm, u64>::OFFSETS,
];

/// Every number that fixes a shared layout, as this build compiles it:
/// `(size, align, offsets...)` of each struct placed in shared memory, and
/// the layout constants. Add a line here for a new shared struct.
const LAYOUT: &[usize] = &[
    // The segment header (impl/src/shm.rs) and the segment constants.
    size_of::<SegmentHeader>(),
    align_of::<SegmentHeader>(),
    offset_of!(SegmentHeader, magic),
    offset_of!(SegmentHeader, version),
    offset_of!(SegmentHeader, header_size),
    offset_of!(SegmentHeader, size),
    DATA_OFFSET,
    SEGMENT_MAGIC as usize,
    // The platform's words and cells (the fields of every protocol struct).
    size_of::<ShmWord32>(),
    align_of::<ShmWord32>(),
    size_of::<ShmWord64>(),
    align_of::<ShmWord64>(),
    size_of::<ShmCell<u64>>(),
    align_of::<ShmCell<u64>>(),
    // The model's protocol structs over the real platform.
    size_of::<RawMutex<Shm>>(),
    align_of::<RawMutex<Shm>>(),
    size_of::<RawRLock<Shm>>(),
    align_of::<RawRLock<Shm>>(),
    size_of::<RawSemaphore<Shm>>(),
    align_of::<RawSemaphore<Shm>>(),
    size_of::<RawEvent<Shm>>(),
    align_of::<RawEvent<Shm>>(),
    size_of::<RawBarrier<Shm>>(),
    align_of::<RawBarrier<Shm>>(),
    size_of::<Tasks<Shm>>(),
    align_of::<Tasks<Shm>>(),
    size_of::<RingHeader<Shm>>(),
    align_of::<RingHeader<Shm>>(),
    size_of::<RawCondition<Shm>>(),
    align_of::<RawCondition<Shm>>(),
    size_of::<SlotHeader<Shm>>(),
    align_of::<SlotHeader<Shm>>(),
    size_of::<Slot<Shm, u64>>(),
    align_of::<Slot<Shm, u64>>(),
    size_of::<ShmCell<Chunk>>(),
    align_of::<ShmCell<Chunk>>(),
    CHUNK,
    PIECE_HEADER,
    // A Value's block (impl/src/value.rs), for data of each alignment class.
    size_of::<Colocated<u8>>(),
    align_of::<Colocated<u8>>(),
    offset_of!(Colocated<u8>, lock),
    offset_of!(Colocated<u8>, data),
    size_of::<Colocated<u64>>(),
    offset_of!(Colocated<u64>, data),
    size_of::<Colocated<u128>>(),
    align_of::<Colocated<u128>>(),
    offset_of!(Colocated<u128>, data),
];

/// One step of 32-bit FNV-1a: hash the little-endian bytes of `w` (as a `u64`).
const fn fnv1a(mut h: u32, w: usize) -> u32 {
    let bytes = (w as u64).to_le_bytes();
    let mut j = 0;
    while j < bytes.len() {
        h ^= bytes[j] as u32;
        h = h.wrapping_mul(0x0100_0193);
        j += 1;
    }
    h
}

/// 32-bit FNV-1a over `words`, then over the offsets of each of `tables`.
const fn fingerprint(words: &[usize], tables: &[&[(&str, usize)]]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    let mut i = 0;
    while i < words.len() {
        h = fnv1a(h, words[i]);
        i += 1;
    }
    let mut t = 0;
    while t < tables.len() {
        let mut i = 0;
        while i < tables[t].len() {
            h = fnv1a(h, tables[t][i].1);
            i += 1;
        }
        t += 1;
    }
    h
}

/// The fingerprint of the shared layouts of this build ([`LAYOUT`] and
/// [`MODEL_OFFSETS`] hashed).
pub(crate) const FINGERPRINT: u32 = fingerprint(LAYOUT, MODEL_OFFSETS);

/// `(LAYOUT_VERSION, FINGERPRINT)` of every layout version: append a line when
/// you bump the version.
///
/// Version 2 is the first whose fingerprint includes the model structs' field
/// offsets ([`MODEL_OFFSETS`]); its layouts are those of version 1 (the check
/// became stricter, the bytes in shared memory did not move).
///
/// Version 3: the queue ring's header gained `reclaim_shift` and `reclaimed`
/// (reclaiming consumed memory), in what was padding of its last line; the
/// shared-memory `Condition` (`RawCondition`) is new.
///
/// Version 4: every robust lock (`RawMutex`, and so `RawRLock`, a `Value`'s
/// lock and the queue ring's `prod`/`cons`) records its holder's 64-bit
/// identity beside its word (16 bytes, align 8); the ring's `head_seen` and
/// `tail_seen` move to 16 and 144, a `Value`'s data to 24 (32 for 16-aligned
/// data).
///
/// Version 5: the queue ring's protocol gained the wrap marker (a piece of
/// flags `WRAP`: a reclaiming ring's producer goes on at the next lap's
/// kept start); the bytes did not move, a version-4 consumer would call the
/// marker corrupt.
///
/// Version 6: the slot queue (`PodQueue`: `SlotHeader`, `Slot`) is new.
///
/// Version 7: the queue ring's producers keep their own copy of `tail`
/// (`tail_own`, 24) and a consumer's resynchronisation request (`resynced`,
/// 32) in what was padding of their line; its event counters are bumped only
/// when a waiter announced itself (a version-6 waiter, which does not look
/// again after announcing, could sleep through a version-7 notification).
///
/// Version 8: the queue ring's consumers keep their pace (`pace`, 152) in
/// what was padding of their line (a hint: a version-7 consumer, which reads
/// no pace, would only look at `tail` more often).
///
/// Version 9: the slot queue's header gained a last line, the consumers'
/// `pace` (320; the header is 384 bytes).
///
/// Version 10: the queue ring's producers keep where the last piece they
/// started writing ends (`dirty`, 40) in what was padding of their line, and
/// do not wrap early while it lies ahead of `tail` (a version-9 producer,
/// which neither stores nor reads it, would only wrap over a failed writer's
/// chunks, leaving them allocated, as version 9 did).
pub(crate) const RECORDED: &[(u32, u32)] = &[
    (1, 0xd871_f7ab),
    (2, 0xddc9_8cb4),
    (3, 0x9a12_7824),
    (4, 0xb898_a324),
    (5, 0xb898_a324),
    (6, 0xc167_de3b),
    (7, 0xa072_ecb3),
    (8, 0x2fe9_691b),
    (9, 0x30dd_a250),
    (10, 0x291b_4b58),
];

/// The fingerprint recorded for `version`, if any.
const fn recorded(version: u32) -> Option<u32> {
    let mut i = 0;
    while i < RECORDED.len() {
        if RECORDED[i].0 == version {
            return Some(RECORDED[i].1);
        }
        i += 1;
    }
    None
}

const _: () = match recorded(LAYOUT_VERSION) {
    Some(fp) if fp == FINGERPRINT => {}
    Some(_) => panic!(
        "a shared-memory layout changed but LAYOUT_VERSION did not: bump LAYOUT_VERSION \
         in impl/src/shm.rs and append (new version, new fingerprint) to RECORDED in \
         impl/src/layout.rs; the new fingerprint is the `found` array size of the next error"
    ),
    None => panic!(
        "LAYOUT_VERSION has no recorded fingerprint: append (LAYOUT_VERSION, fingerprint) \
         to RECORDED in impl/src/layout.rs; the fingerprint is the `found` array size of \
         the next error"
    ),
};

/// Shows the fingerprint when it differs from the recorded one: the compiler
/// reports `expected an array with a size of <recorded>, found one with a
/// size of <FINGERPRINT>`.
const _: [(); match recorded(LAYOUT_VERSION) {
    Some(fp) => fp as usize,
    None => 0,
}] = [(); FINGERPRINT as usize];

#[cfg(test)]
mod tests {
    #[test]
    fn fingerprint_is_recorded() {
        assert_eq!(
            super::recorded(super::LAYOUT_VERSION),
            Some(super::FINGERPRINT)
        );
        println!(
            "layout version {} fingerprint {:#010x}",
            super::LAYOUT_VERSION,
            super::FINGERPRINT
        );
    }

    /// The lookups behind the build-time checks, on what those checks never
    /// ask (a name or version that is not there): `None`, not a read past the end.
    #[test]
    fn lookups_of_a_missing_name_or_version_are_none() {
        let table = [("word", 0), ("ident", 8)];
        assert_eq!(super::offset_in(&table, "ident"), Some(8));
        assert_eq!(super::offset_in(&table, "iden"), None);
        assert_eq!(super::offset_in(&[], "word"), None);
        assert_eq!(
            super::recorded(super::LAYOUT_VERSION),
            Some(super::FINGERPRINT)
        );
        assert_eq!(super::recorded(0), None);
        assert_eq!(super::recorded(u32::MAX), None);
        assert!(super::str_eq("ab", "ab"));
        assert!(!super::str_eq("ab", "ac"));
        assert!(!super::str_eq("ab", "abc"));
    }
}
