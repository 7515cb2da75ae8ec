//! A pool worker's *slots*: fixed-size byte areas in one shared segment,
//! handed between the dispatcher and the worker by the pool's messages.
//!
//! Large unit frames and large answers cross here instead of through the
//! worker's socket (which then carries only a short note naming the slot):
//! the writer copies the frame in once, the reader decodes it in place. No
//! copy into and out of the kernel, no socket buffers to allocate and free.
//!
//! # Layout
//!
//! ```text
//! offset 0                      PAGE                PAGE + depth * size   PAGE + 2 * depth * size
//! | segment header, padding     | input slot 0 .. depth-1 | output slot 0 .. depth-1 |
//! ```
//!
//! Input slot `i` holds a unit frame written by the dispatcher for the
//! worker; output slot `i` an answer written by the worker. Each slot is
//! `size` bytes; a frame lies at the start of its slot; its length travels
//! in the note. The segment is a sparse memfd: a slot holds memory only once
//! written, up to the largest frame it carried.
//!
//! # Invariants
//!
//! Nothing in the segment synchronizes anything: no atomics, no headers
//! written after creation. Who may touch a slot when is the pool's slot
//! protocol, written and checked in `procshare_model::pool` ("Slots", rule
//! 8; shuttle checks with seeded bugs 810 and 811): a slot is written only
//! while its reader cannot be reading it, and read only between the note
//! that hands it over and the reader's answer. The note crosses a socket,
//! whose `send` and `recv` order the writer's stores before the reader's
//! loads. That is why [`Slots::write`] and [`Slots::read`] are `unsafe`:
//! their callers (the pool's dispatcher and worker) state which step of the
//! protocol makes each call sound. Bounds are checked here, always: a slot
//! index or length from a note is bad input, answered with `None`.

use std::os::fd::{BorrowedFd, OwnedFd};

use super::{Segment, ShmError};

/// Where the slots start (a page: the segment's header lies before it).
const SLOTS_AT: usize = 4096;
const _: () = assert!(SLOTS_AT >= super::DATA_OFFSET && SLOTS_AT % 4096 == 0);

/// Which side of a worker's slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// Unit frames, written by the dispatcher, read by the worker.
    Input,
    /// Answers, written by the worker, read by the dispatcher.
    Output,
}

/// `depth` input and `depth` output slots of `size` bytes each, in one
/// shared segment (see the module's documentation).
#[derive(Debug)]
pub(crate) struct Slots {
    seg: Segment,
    depth: usize,
    size: usize,
}

impl Slots {
    /// The segment's size for `depth` slots of `size` bytes on each side.
    fn total(depth: usize, size: usize) -> Option<usize> {
        depth
            .checked_mul(2)?
            .checked_mul(size)?
            .checked_add(SLOTS_AT)
    }

    /// New slots (a sparse memfd: no memory until written).
    pub(crate) fn create(depth: usize, size: usize) -> Result<Slots, ShmError> {
        let total = Slots::total(depth, size).ok_or(ShmError::TooLarge(usize::MAX))?;
        Ok(Slots {
            seg: Segment::create(total)?,
            depth,
            size,
        })
    }

    /// The slots behind `fd` (a spawned worker's), which must be exactly
    /// `depth` slots of `size` bytes on each side.
    pub(crate) fn attach(fd: OwnedFd, depth: usize, size: usize) -> Result<Slots, ShmError> {
        let seg = Segment::attach(fd)?;
        let want = Slots::total(depth, size).ok_or(ShmError::TooLarge(usize::MAX))?;
        if seg.len() != want {
            return Err(ShmError::SizeMismatch {
                header: want as u64,
                actual: seg.len() as u64,
            });
        }
        Ok(Slots { seg, depth, size })
    }

    /// The memfd (to pass to a spawned worker).
    pub(crate) fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.seg.fd()
    }

    /// Slots on each side.
    pub(crate) fn depth(&self) -> usize {
        self.depth
    }

    /// Bytes per slot: the largest frame a slot takes.
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// Offset of slot `i` of `side`, if `i` and `len` fit.
    fn at(&self, side: Side, i: usize, len: usize) -> Option<usize> {
        if i >= self.depth || len > self.size {
            return None;
        }
        let k = match side {
            Side::Input => i,
            Side::Output => self.depth + i,
        };
        Some(SLOTS_AT + k * self.size)
    }

    /// Copy `bytes` to the start of slot `i` of `side`; `false` (nothing
    /// written) if there is no such slot or `bytes` does not fit.
    ///
    /// # Safety
    ///
    /// No process reads or writes that slot's first `bytes.len()` bytes
    /// during the call: the caller holds the slot by the pool's slot protocol
    /// (see the module's documentation).
    pub(crate) unsafe fn write(&self, side: Side, i: usize, bytes: &[u8]) -> bool {
        let Some(at) = self.at(side, i, bytes.len()) else {
            return false;
        };
        // SAFETY: `at + bytes.len()` lies within the mapping (`at` checked
        // the slot and the length); nobody else touches these bytes now (the
        // caller's contract); `bytes` is private memory, so no overlap.
        unsafe {
            core::ptr::copy_nonoverlapping(bytes.as_ptr(), self.seg.ptr_at(at), bytes.len());
        }
        true
    }

    /// The first `len` bytes of slot `i` of `side`; `None` if there is no
    /// such slot or `len` does not fit.
    ///
    /// # Safety
    ///
    /// No process writes that slot while the returned slice lives: the caller
    /// was handed the slot by the pool's slot protocol and keeps the slice no
    /// longer than the protocol lets it read (see the module's
    /// documentation).
    pub(crate) unsafe fn read(&self, side: Side, i: usize, len: usize) -> Option<&[u8]> {
        let at = self.at(side, i, len)?;
        // SAFETY: in bounds of the mapping (checked by `at`), which lives as
        // long as `self`; initialized (memfd pages read as zeros until
        // written); not written while the slice lives (the caller's
        // contract).
        Some(unsafe { core::slice::from_raw_parts(self.seg.ptr_at(at), len) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn slots_are_bounded_separate_and_shared_with_an_attached_copy() {
        let s = Slots::create(2, 8192).unwrap();
        assert_eq!((s.depth(), s.size()), (2, 8192));
        // SAFETY: one thread, no other process: nobody else touches them.
        unsafe {
            assert!(s.write(Side::Input, 1, b"unit"));
            assert!(s.write(Side::Output, 1, b"done"));
            assert!(s.write(Side::Output, 0, &[7; 8192]));
            assert!(!s.write(Side::Input, 2, b"x"), "no slot 2");
            assert!(!s.write(Side::Input, 0, &[0; 8193]), "too long");
            assert_eq!(s.read(Side::Input, 1, 4), Some(&b"unit"[..]));
            assert_eq!(s.read(Side::Output, 1, 4), Some(&b"done"[..]));
            assert_eq!(s.read(Side::Input, 0, 2), Some(&[0, 0][..]));
            assert_eq!(s.read(Side::Output, 2, 1), None);
            assert_eq!(s.read(Side::Output, 0, 8193), None);
        }
        let fd = s.fd().unwrap().as_fd().try_clone_to_owned().unwrap();
        let t = Slots::attach(fd, 2, 8192).unwrap();
        // SAFETY: as above.
        unsafe {
            assert_eq!(t.read(Side::Input, 1, 4), Some(&b"unit"[..]));
            assert!(t.write(Side::Input, 1, b"UNIT"));
            assert_eq!(s.read(Side::Input, 1, 4), Some(&b"UNIT"[..]));
        }
        // Another shape is refused, with the sizes in the error.
        let fd = s.fd().unwrap().as_fd().try_clone_to_owned().unwrap();
        let e = Slots::attach(fd, 2, 4096).unwrap_err();
        assert!(matches!(e, ShmError::SizeMismatch { .. }), "{e}");
    }
}
