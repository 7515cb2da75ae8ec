//! Shared memory: segments, and an arena that packs small objects into them.
//!
//! This is shared infrastructure: every procshare object that lives in shared
//! memory (values, arrays, locks, queue rings, pool and manager protocol
//! structs) is placed with [`ShmBox`] or [`ShmSlice`].
//!
//! # Segments
//!
//! A [`Segment`] is a `memfd_create(MFD_CLOEXEC)` file, sized with
//! `ftruncate` and mapped `MAP_SHARED` (through `sys::io`). Nothing is ever created in
//! `/dev/shm` or any file system: the memory goes away with the last mapping
//! (and the last fd), whatever way the processes exit, `kill -9` included. A
//! mapping is inherited by forked children, which is how shared objects reach
//! them (as Python requires, "through inheritance").
//!
//! Every segment starts with a [`SegmentHeader`] (magic, layout version,
//! size). [`Segment::attach`] maps a segment from a file descriptor received
//! from elsewhere and checks the header: a mismatch is a [`ShmError`], never
//! undefined behaviour.
//!
//! # The arena
//!
//! Small objects share pages, as in CPython's `multiprocessing.heap`: blocks
//! are carved out of 1 MiB segments ([`ARENA_SEGMENT_SIZE`]) by a bump pointer,
//! rounded up to 16 bytes, and freed blocks go to a free list per
//! (size, alignment) from which later allocations of the same shape are served.
//! Objects larger than [`LARGE_OBJECT`] get a segment of their own, unmapped
//! when they are freed. So 10,000 `Value<i32>` take a few hundred KiB of one
//! segment, not 10,000 pages. [`arena_stats`] reports what is mapped.
//!
//! The arena's bookkeeping (free lists, bump pointers) is **process-local**
//! memory; only the blocks are shared. Handles ([`ShmBox`], [`ShmSlice`]) are
//! reference-counted process-locally (an `Arc`); the block returns to the free
//! list when the last handle *in the process that allocated it* is dropped.
//!
//! ## Fork
//!
//! A forked child inherits the mappings and a copy of the bookkeeping. If it
//! allocated from that copy it would hand out the same free blocks as its
//! parent, and both would write to them. So a child starts a fresh arena
//! (new segments) on its first allocation, exactly as CPython's `Heap` does
//! when it sees a new pid, and handles it inherited never go back to any free
//! list when the child drops them (they still work while the child holds
//! them). The parent's blocks are therefore only ever recycled by the parent,
//! and only after the parent dropped every handle: keep a handle alive in the
//! parent for as long as children use the object (as with Python's objects).
//!
//! # Safety contract: [`ShmSafe`]
//!
//! Only types that are meaningful in another process's address space may be
//! placed in shared memory: no pointers or references (other processes map the
//! segment at other addresses), no process-local handles, no drop glue. That
//! is the `unsafe` marker trait [`ShmSafe`], implemented here for the integer
//! and float primitives, arrays of them, the platform words and
//! `ShmCell<T: Pod>`, and by each protocol module for its `#[repr(C)]`
//! protocol structs instantiated over [`Shm`](crate::platform::Shm).

pub(crate) mod layout;
pub(crate) mod slots;

use core::mem::{align_of, size_of};
use core::ops::Deref;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::cell::UnsafeCell;
use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use crate::platform::{ShmCell, ShmWord32, ShmWord64};
use crate::sys::fork::generation as fork_generation;
use crate::sys::io::SharedMap;

/// Errors of shared-memory creation and attachment.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShmError {
    /// A system call failed.
    #[error("shared memory: {what} failed: {source}")]
    Os {
        /// Which operation.
        what: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The segment does not start with procshare's magic number.
    #[error("shared memory segment has a bad magic number {found:#018x} (expected {expected:#018x}): not a procshare segment")]
    BadMagic {
        /// What the header holds.
        found: u64,
        /// The segment magic number.
        expected: u64,
    },
    /// The segment was written by a different layout version.
    #[error("shared memory segment has layout version {found}, this build uses {expected}")]
    VersionMismatch {
        /// What the header holds.
        found: u32,
        /// This build's layout version.
        expected: u32,
    },
    /// The header's size disagrees with the object's real size, or is too small.
    #[error("shared memory segment header says {header} bytes but the segment has {actual}")]
    SizeMismatch {
        /// What the header holds.
        header: u64,
        /// The file's size.
        actual: u64,
    },
    /// A requested size overflows.
    #[error("shared memory request of {0} bytes is too large")]
    TooLarge(usize),
    /// An object received from another process does not fit in its segment
    /// (out of bounds or misaligned).
    #[error("shared object of {size} bytes at offset {offset} (alignment {align}) does not fit in a segment of {segment} bytes")]
    BadPlacement {
        /// Offset of the object in the segment.
        offset: u64,
        /// Its size in bytes.
        size: u64,
        /// Its required alignment.
        align: usize,
        /// The segment's size.
        segment: usize,
    },
}

fn os(what: &'static str) -> impl FnOnce(std::io::Error) -> ShmError {
    move |source| ShmError::Os { what, source }
}

/// Magic number at the start of every segment ("PRSHARE" + 1).
pub(crate) const SEGMENT_MAGIC: u64 = 0x5052_5348_4152_4501;
/// Version of the shared-memory layouts of this build. Bump it whenever a
/// `#[repr(C)]` shared struct changes. (2: the layouts of 1; the first version
/// whose fingerprint includes the model's field offsets, see impl/src/layout.rs;
/// 3: the queue ring header's reclaim fields.)
pub(crate) const LAYOUT_VERSION: u32 = 10;
/// Offset of the first usable byte of a segment (the header is padded to a cache line).
pub(crate) const DATA_OFFSET: usize = 64;
/// Size of each small-object arena segment.
pub(crate) const ARENA_SEGMENT_SIZE: usize = 1 << 20;
/// Blocks larger than this get a segment of their own.
pub(crate) const LARGE_OBJECT: usize = 64 << 10;
/// Smallest block granule and default alignment.
const GRANULE: usize = 16;

/// The header at offset 0 of every segment.
///
/// Layout (`#[repr(C)]`, 24 bytes, padded to [`DATA_OFFSET`]):
///
/// | offset | field | meaning |
/// |---|---|---|
/// | 0 | `magic: u64` | [`SEGMENT_MAGIC`] |
/// | 8 | `version: u32` | [`LAYOUT_VERSION`] of the writer |
/// | 12 | `header_size: u32` | [`DATA_OFFSET`] |
/// | 16 | `size: u64` | total size of the segment in bytes, header included |
///
/// Invariant: written once by the creator before the segment is shared; never
/// changed afterwards.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    /// [`SEGMENT_MAGIC`].
    pub magic: u64,
    /// [`LAYOUT_VERSION`].
    pub version: u32,
    /// [`DATA_OFFSET`].
    pub header_size: u32,
    /// Total segment size in bytes.
    pub size: u64,
}

crate::shm::layout::assert_shm_layout!(SegmentHeader {
    size: 24,
    align: 8,
    magic: 0,
    version: 8,
    header_size: 12,
    size: 16,
});

static SEGMENTS_MAPPED: AtomicUsize = AtomicUsize::new(0);
static BYTES_MAPPED: AtomicUsize = AtomicUsize::new(0);

/// A `MAP_SHARED` mapping of a memfd, starting with a `SegmentHeader`.
///
/// ```
/// use procshare::internals::Segment;
/// let seg = Segment::create(4096).unwrap();
/// assert_eq!(seg.len(), 4096);
/// // The fd can be sent elsewhere and attached; the header is checked.
/// let fd = seg.fd().unwrap().try_clone_to_owned().unwrap();
/// let again = Segment::attach(fd).unwrap();
/// assert_eq!(again.len(), 4096);
/// ```
#[derive(Debug)]
pub struct Segment {
    /// Keeps the mapping alive (unmapped on drop); accessed through `ptr` only.
    _map: SharedMap,
    ptr: NonNull<u8>,
    len: usize,
    fd: Option<OwnedFd>,
}

// SAFETY: the mapping is plain memory shared with other processes anyway; all
// access to its contents goes through ShmSafe types (atomics and protocol cells)
// or raw pointers whose users synchronize. `map` is never touched after creation.
unsafe impl Send for Segment {}
// SAFETY: as above.
unsafe impl Sync for Segment {}

impl Segment {
    /// Creates a segment of `size` bytes (header included; at least
    /// [`DATA_OFFSET`]), zero-filled, and keeps its memfd so that it can be
    /// passed to another process ([`Segment::fd`], [`Segment::attach`]).
    pub fn create(size: usize) -> Result<Segment, ShmError> {
        let size = size.max(DATA_OFFSET);
        if size > isize::MAX as usize / 2 {
            return Err(ShmError::TooLarge(size));
        }
        let fd = crate::sys::io::memfd(c"procshare", size as u64).map_err(os("memfd_create"))?;
        // The memfd is ours, sized above and never truncated afterwards, so
        // the mapping stays valid.
        let map = SharedMap::new(fd.as_fd(), size).map_err(os("mmap"))?;
        let header = SegmentHeader {
            magic: SEGMENT_MAGIC,
            version: LAYOUT_VERSION,
            header_size: DATA_OFFSET as u32,
            size: size as u64,
        };
        let ptr = map.ptr();
        // SAFETY: the mapping is at least DATA_OFFSET bytes and page-aligned.
        unsafe { ptr.as_ptr().cast::<SegmentHeader>().write(header) };
        SEGMENTS_MAPPED.fetch_add(1, Ordering::Relaxed);
        BYTES_MAPPED.fetch_add(size, Ordering::Relaxed);
        Ok(Segment {
            _map: map,
            ptr,
            len: size,
            fd: Some(fd),
        })
    }

    /// Maps the segment behind `fd` (received from another process) and checks
    /// its header: magic, layout version, and that the recorded size is the
    /// file's real size.
    pub fn attach(fd: OwnedFd) -> Result<Segment, ShmError> {
        let actual = crate::sys::io::file_size(fd.as_fd()).map_err(os("fstat"))?;
        if actual < DATA_OFFSET as u64 || actual > isize::MAX as u64 / 2 {
            return Err(ShmError::SizeMismatch { header: 0, actual });
        }
        // The header is validated below before anything else is read. A peer
        // that truncates the file afterwards can make accesses fault (SIGBUS);
        // memfds we create are never truncated.
        let map = SharedMap::new(fd.as_fd(), actual as usize).map_err(os("mmap"))?;
        let ptr = map.ptr();
        // SAFETY: the mapping holds at least DATA_OFFSET bytes and is page-aligned.
        let h = unsafe { ptr.as_ptr().cast::<SegmentHeader>().read_volatile() };
        if h.magic != SEGMENT_MAGIC {
            return Err(ShmError::BadMagic {
                found: h.magic,
                expected: SEGMENT_MAGIC,
            });
        }
        if h.version != LAYOUT_VERSION {
            return Err(ShmError::VersionMismatch {
                found: h.version,
                expected: LAYOUT_VERSION,
            });
        }
        if h.size != actual || h.header_size as usize != DATA_OFFSET {
            return Err(ShmError::SizeMismatch {
                header: h.size,
                actual,
            });
        }
        SEGMENTS_MAPPED.fetch_add(1, Ordering::Relaxed);
        BYTES_MAPPED.fetch_add(actual as usize, Ordering::Relaxed);
        Ok(Segment {
            _map: map,
            ptr,
            len: actual as usize,
            fd: Some(fd),
        })
    }

    /// Total size in bytes, header included (never 0: a segment holds at least its header).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// The memfd. Every segment keeps it (arena segments included, one
    /// descriptor per 1 MiB segment and per large object), so that shared
    /// objects can be passed to a spawned process ([`crate::process::spawn`]).
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.fd.as_ref().map(|f| f.as_fd())
    }

    /// Pointer to byte `offset` of the segment (`offset <= len`).
    pub fn ptr_at(&self, offset: usize) -> *mut u8 {
        assert!(offset <= self.len, "offset {offset} past segment end");
        // SAFETY: in bounds of the mapping, checked above.
        unsafe { self.ptr.as_ptr().add(offset) }
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        // The mapping (and the fd, if kept) are released by their own drops.
        SEGMENTS_MAPPED.fetch_sub(1, Ordering::Relaxed);
        BYTES_MAPPED.fetch_sub(self.len, Ordering::Relaxed);
    }
}

/// What this process has mapped (see [`arena_stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "internals"), allow(dead_code))]
pub struct ArenaStats {
    /// Segments currently mapped by this process (arena, large objects, and
    /// explicit [`Segment`]s).
    pub segments: usize,
    /// Their total size in bytes.
    pub mapped_bytes: usize,
    /// Blocks handed out by this process's arena and not yet freed.
    pub live_blocks: usize,
    /// Their total size in bytes (after rounding).
    pub live_bytes: usize,
}

/// Statistics of this process's shared memory.
///
/// ```
/// let before = procshare::internals::arena_stats();
/// let b = procshare::internals::ShmBox::new(7u64).unwrap();
/// assert_eq!(procshare::internals::arena_stats().live_blocks, before.live_blocks + 1);
/// drop(b);
/// assert_eq!(procshare::internals::arena_stats().live_blocks, before.live_blocks);
/// ```
#[cfg_attr(not(feature = "internals"), allow(dead_code))]
pub fn arena_stats() -> ArenaStats {
    let (live_blocks, live_bytes) = with_arena(|a| (a.live_blocks, a.live_bytes));
    ArenaStats {
        segments: SEGMENTS_MAPPED.load(Ordering::Relaxed),
        mapped_bytes: BYTES_MAPPED.load(Ordering::Relaxed),
        live_blocks,
        live_bytes,
    }
}

// ---------------------------------------------------------------------------
// The arena (process-local bookkeeping).

/// Freed blocks of one (size, align): (segment, offset).
type FreeList = Vec<(Arc<Segment>, usize)>;

struct ArenaState {
    /// Fork generation this state belongs to.
    generation: u64,
    /// The segment small blocks are bumped from, and the bump offset.
    current: Option<(Arc<Segment>, usize)>,
    /// Freed small blocks by (size, align).
    free: HashMap<(usize, usize), FreeList>,
    /// Freed small blocks that a running child may still use (it was started
    /// after the block was made): (size, align, segment, offset, born).
    /// Recycled once no child started after `born` runs.
    quarantine: Vec<(usize, usize, Arc<Segment>, usize, u64)>,
    live_blocks: usize,
    live_bytes: usize,
}

impl ArenaState {
    fn new() -> Self {
        ArenaState {
            generation: fork_generation(),
            current: None,
            free: HashMap::new(),
            quarantine: Vec::new(),
            live_blocks: 0,
            live_bytes: 0,
        }
    }
}

/// How many children this process has started (or is starting): a block
/// made before the `n`th start may be used by that child, which has its own
/// mapping of the segment (fork) or attached it (spawn, forkserver), so the
/// block is not recycled while such a child runs. (CPython's heap recycles
/// it at once: a child then sees another object's data.)
static CHILDREN_STARTED: AtomicU64 = AtomicU64::new(0);
/// Starts between [`child_starting`] and [`child_started`]: while one is in
/// progress no freed block is recycled (the child is not yet known to the
/// registry that says which children run).
static STARTS_IN_PROGRESS: AtomicU64 = AtomicU64::new(0);
/// Blocks in quarantine (a hint, read without the arena lock).
static QUARANTINED: AtomicU64 = AtomicU64::new(0);

/// A child is about to be started: returns its sequence number (to give to
/// the registry). Pair with [`child_started`], whatever the outcome.
pub(crate) fn child_starting() -> u64 {
    STARTS_IN_PROGRESS.fetch_add(1, Ordering::AcqRel);
    CHILDREN_STARTED.fetch_add(1, Ordering::AcqRel) + 1
}

/// The start announced by [`child_starting`] is over (the child, if any, is
/// in the registry).
pub(crate) fn child_started() {
    STARTS_IN_PROGRESS.fetch_sub(1, Ordering::AcqRel);
}

/// May a block made when `born` children had been started be recycled now?
/// Not while a child started after it runs, nor while a start is under way.
/// `latest`: the largest sequence number of a running child, if any.
fn recyclable(born: u64, latest: Option<u64>) -> bool {
    latest.map_or(true, |l| l <= born)
}

/// The largest sequence number of a running child (`Some(u64::MAX)` while a
/// start is under way: nothing may be recycled then).
fn latest_running_child() -> Option<u64> {
    if STARTS_IN_PROGRESS.load(Ordering::Acquire) > 0 {
        return Some(u64::MAX);
    }
    crate::process::latest_running_child()
}

struct ArenaCell(UnsafeCell<Option<ArenaState>>);
// SAFETY: the state is only accessed under ARENA_LOCK (see with_arena).
unsafe impl Sync for ArenaCell {}

static ARENA_LOCK: AtomicU32 = AtomicU32::new(0);
static ARENA: ArenaCell = ArenaCell(UnsafeCell::new(None));

/// Run in a forked child (async-signal-safe): the lock may have been held by
/// a thread that does not exist in the child; release it. The state itself is
/// replaced (and leaked, never dropped: it may be mid-update) on next use, when
/// the arena sees a new fork generation.
fn after_fork_child() {
    ARENA_LOCK.store(0, Ordering::Release);
}

/// The arena's entry in the fork registry (see `sys::fork`).
static ARENA_AT_FORK: crate::sys::fork::AtFork = crate::sys::fork::AtFork {
    name: "shared-memory arena lock",
    prepare: None,
    child: after_fork_child,
    around: None,
};

fn with_arena<R>(f: impl FnOnce(&mut ArenaState) -> R) -> R {
    crate::sys::fork::register(&ARENA_AT_FORK);
    while ARENA_LOCK
        .compare_exchange_weak(0, 1, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        std::thread::yield_now();
    }
    struct Unlock;
    impl Drop for Unlock {
        fn drop(&mut self) {
            ARENA_LOCK.store(0, Ordering::Release);
        }
    }
    let _unlock = Unlock;
    // SAFETY: ARENA_LOCK is held, so this is the only reference to the state.
    let slot = unsafe { &mut *ARENA.0.get() };
    let gen = fork_generation();
    if slot.as_ref().is_some_and(|s| s.generation != gen) {
        // A forked child's copy of its parent's bookkeeping: never reuse it
        // (its free blocks are the parent's) and never drop it (another thread
        // may have been mid-update at the fork).
        core::mem::forget(slot.take());
    }
    f(slot.get_or_insert_with(ArenaState::new))
}

/// A block of shared memory handed out by the arena. Freed on drop (in the
/// allocating process only).
#[derive(Debug)]
struct Block {
    seg: Arc<Segment>,
    offset: usize,
    size: usize,
    align: usize,
    generation: u64,
    /// Dedicated (large-object) segment: dropping the block unmaps it.
    dedicated: bool,
    /// How many children this process had started when the block was made
    /// (see [`child_starting`]): a child started later may use the block.
    born: u64,
}

/// The generation of blocks attached from a segment received from another
/// process ([`ShmBox::attach`]): never a real fork generation, so these blocks
/// are never counted nor recycled here (their creator owns them).
const FOREIGN: u64 = u64::MAX;

impl Block {
    /// The segment and the offset in it of `p`, a pointer into this block
    /// (what a spawned process needs to find the object).
    fn placement(&self, p: *const u8) -> (&Arc<Segment>, u64) {
        let seg = &self.seg;
        (seg, (p as usize - seg.ptr_at(0) as usize) as u64)
    }

    /// A handle on `size` bytes at `offset` of a segment received from another
    /// process; checked to lie after the header, inside the segment, aligned.
    fn attach(
        seg: Arc<Segment>,
        offset: u64,
        size: usize,
        align: usize,
    ) -> Result<Block, ShmError> {
        let bad = || ShmError::BadPlacement {
            offset,
            size: size as u64,
            align,
            segment: seg.len(),
        };
        let start = usize::try_from(offset).map_err(|_| bad())?;
        let end = start.checked_add(size).ok_or_else(bad)?;
        if start < DATA_OFFSET || end > seg.len() || (seg.ptr_at(0) as usize + start) % align != 0 {
            return Err(bad());
        }
        Ok(Block {
            seg,
            offset: start,
            size,
            align,
            generation: FOREIGN,
            dedicated: false,
            born: CHILDREN_STARTED.load(Ordering::Acquire),
        })
    }

    fn alloc(size: usize, align: usize) -> Result<Block, ShmError> {
        let align = align.max(GRANULE);
        if !align.is_power_of_two() || align > 4096 {
            return Err(ShmError::TooLarge(align));
        }
        let size = size
            .max(1)
            .checked_next_multiple_of(GRANULE)
            .ok_or(ShmError::TooLarge(size))?;
        if size > LARGE_OBJECT {
            // Page-aligned data: DATA_OFFSET is below a page, so start at 4096.
            let total = size.checked_add(4096).ok_or(ShmError::TooLarge(size))?;
            let seg = Arc::new(Segment::create(total)?);
            let generation = with_arena(|a| {
                a.live_blocks += 1;
                a.live_bytes += size;
                a.generation
            });
            return Ok(Block {
                seg,
                offset: 4096,
                size,
                align,
                generation,
                dedicated: true,
                born: CHILDREN_STARTED.load(Ordering::Acquire),
            });
        }
        // Recycle the quarantined blocks no running child can use any more.
        let latest = (QUARANTINED.load(Ordering::Acquire) > 0).then(latest_running_child);
        with_arena(|a| {
            let generation = a.generation;
            if let Some(latest) = latest {
                let mut i = 0;
                while i < a.quarantine.len() {
                    if recyclable(a.quarantine[i].4, latest) {
                        let (sz, al, seg, off, _) = a.quarantine.swap_remove(i);
                        a.free.entry((sz, al)).or_default().push((seg, off));
                    } else {
                        i += 1;
                    }
                }
                QUARANTINED.store(a.quarantine.len() as u64, Ordering::Release);
            }
            if let Some(list) = a.free.get_mut(&(size, align)) {
                if let Some((seg, offset)) = list.pop() {
                    a.live_blocks += 1;
                    a.live_bytes += size;
                    // Reused blocks hold old data: zero them like fresh memfd pages.
                    // SAFETY: the block is in bounds and owned by nobody now.
                    unsafe { seg.ptr_at(offset).write_bytes(0, size) };
                    return Ok(Block {
                        seg,
                        offset,
                        size,
                        align,
                        generation,
                        dedicated: false,
                        born: CHILDREN_STARTED.load(Ordering::Acquire),
                    });
                }
            }
            let fits = |seg: &Segment, bump: usize| {
                let start = bump.next_multiple_of(align);
                (start + size <= seg.len()).then_some(start)
            };
            let start = match &a.current {
                Some((seg, bump)) => fits(seg, *bump),
                None => None,
            };
            let start = match start {
                Some(s) => s,
                None => {
                    let seg = Arc::new(Segment::create(ARENA_SEGMENT_SIZE)?);
                    a.current = Some((seg, DATA_OFFSET));
                    DATA_OFFSET.next_multiple_of(align)
                }
            };
            let (seg, bump) = a.current.as_mut().expect("current segment");
            *bump = start + size;
            a.live_blocks += 1;
            a.live_bytes += size;
            Ok(Block {
                seg: seg.clone(),
                offset: start,
                size,
                align,
                generation,
                dedicated: false,
                born: CHILDREN_STARTED.load(Ordering::Acquire),
            })
        })
    }

    fn ptr(&self) -> *mut u8 {
        self.seg.ptr_at(self.offset)
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        if self.generation != fork_generation() {
            // Inherited from a parent: the parent owns the block's recycling.
            return;
        }
        let (seg, offset, size, align, dedicated) = (
            self.seg.clone(),
            self.offset,
            self.size,
            self.align,
            self.dedicated,
        );
        // A child started after the block was made may still use it (a
        // dedicated segment is only unmapped here: the child keeps its own
        // mapping, and the memory is never handed out again).
        let born = self.born;
        let risky = !dedicated
            && born < CHILDREN_STARTED.load(Ordering::Acquire)
            && !recyclable(born, latest_running_child());
        with_arena(|a| {
            if a.generation != self.generation {
                return;
            }
            a.live_blocks -= 1;
            a.live_bytes -= size;
            if risky {
                a.quarantine.push((size, align, seg, offset, born));
                QUARANTINED.store(a.quarantine.len() as u64, Ordering::Release);
            } else if !dedicated {
                a.free.entry((size, align)).or_default().push((seg, offset));
            }
        });
    }
}

/// Marker for types that may be placed in shared memory and used from any
/// process that maps it.
///
/// # Safety
///
/// Implement it only for types that
/// * hold no pointers, references or process-local handles (fds, `Arc`, ...):
///   other processes map the memory at other addresses;
/// * have no drop glue (the arena never runs destructors; checked at compile
///   time by [`ShmBox::new`]);
/// * are `#[repr(C)]` or `#[repr(transparent)]` (or primitive) so that their
///   layout is fixed, and are valid for every bit pattern another process may
///   leave in them, or are only mutated through a protocol that keeps them valid;
/// * are `Sync`: every access from several threads/processes is through
///   atomics or protocol-guarded cells.
pub unsafe trait ShmSafe: Sync + Send + 'static {}

macro_rules! shm_safe {
    ($($t:ty),*) => { $(
        // SAFETY: plain data without pointers or drop glue.
        unsafe impl ShmSafe for $t {}
    )* };
}
shm_safe!(u8, u16, u32, u64, u128, i8, i16, i32, i64, i128, f32, f64, ShmWord32, ShmWord64);
shm_safe!(core::sync::atomic::AtomicU8, core::sync::atomic::AtomicU16);
shm_safe!(
    AtomicU32,
    core::sync::atomic::AtomicU64,
    core::sync::atomic::AtomicI32
);
shm_safe!(
    core::sync::atomic::AtomicI64,
    core::sync::atomic::AtomicBool
);
// SAFETY: an array of ShmSafe elements is ShmSafe.
unsafe impl<T: ShmSafe, const N: usize> ShmSafe for [T; N] {}
// SAFETY: Pod data has no pointers (bytemuck::Pod excludes references) and no
// drop glue, and every bit pattern is valid; the cell is transparent.
unsafe impl<T: bytemuck::Pod + Send + 'static> ShmSafe for ShmCell<T> {}

/// One `T` in shared memory, placed by the arena.
///
/// `Clone` gives another handle to the **same** shared memory (like `Arc`).
/// Handles are inherited by forked children and work there. The block is
/// freed when the last handle in the allocating process is dropped; `T`'s
/// destructor never runs (`T: ShmSafe` has none).
///
/// Alignment: up to 4096; the default block alignment is 16.
///
/// ```
/// use procshare::internals::ShmBox;
/// use std::sync::atomic::{AtomicU32, Ordering};
/// let a = ShmBox::new(AtomicU32::new(1)).unwrap();
/// let b = a.clone(); // same memory
/// b.fetch_add(1, Ordering::SeqCst);
/// assert_eq!(a.load(Ordering::SeqCst), 2);
/// ```
///
/// Only `ShmSafe` types are accepted: an `Arc` (a process-local pointer with
/// drop glue) is refused at compile time.
///
/// ```compile_fail
/// let _b = procshare::internals::ShmBox::new(std::sync::Arc::new(1u32));
/// ```
pub struct ShmBox<T: ShmSafe> {
    /// Keeps the block (and its segment) alive.
    block: Arc<Block>,
    /// Where the `T` lives in this process: inside `block`.
    ptr: NonNull<T>,
}

// SAFETY: a ShmBox is a shared reference to a `T: Sync` (ShmSafe requires it)
// plus an `Arc`; the pointer is only used for shared access.
unsafe impl<T: ShmSafe> Send for ShmBox<T> {}
// SAFETY: as above.
unsafe impl<T: ShmSafe> Sync for ShmBox<T> {}

impl<T: ShmSafe> ShmBox<T> {
    /// Allocates a block and moves `value` into it.
    pub fn new(value: T) -> Result<ShmBox<T>, ShmError> {
        Self::new_aligned(value, align_of::<T>())
    }

    /// Like [`ShmBox::new`] with the block aligned to at least `align` (a power
    /// of two up to 4096), e.g. 64 to give a hot object a cache line of its own.
    pub fn new_aligned(value: T, align: usize) -> Result<ShmBox<T>, ShmError> {
        const {
            assert!(
                !core::mem::needs_drop::<T>(),
                "ShmSafe types have no drop glue"
            )
        };
        let align = align.max(align_of::<T>());
        let block = Block::alloc(size_of::<T>(), align)?;
        let ptr = block.ptr().cast::<T>();
        // SAFETY: the block is fresh, at least size_of::<T>() bytes and aligned for T.
        unsafe { ptr.write(value) };
        Ok(ShmBox {
            block: Arc::new(block),
            ptr: NonNull::new(ptr).expect("mapping is non-null"),
        })
    }

    /// A handle to a part of this object (a field of a `#[repr(C)]` struct, an
    /// element of an array), sharing this handle's block: for instance a lock
    /// placed in the same cache line as the data it protects.
    ///
    /// Returns `None` if `f` returns a reference outside this object.
    ///
    /// ```
    /// use procshare::internals::ShmBox;
    /// let pair = ShmBox::new([1u32, 2u32]).unwrap();
    /// let second = pair.project(|p| &p[1]).unwrap();
    /// assert_eq!(*second, 2);
    /// static ELSEWHERE: u32 = 0;
    /// assert!(pair.project(|_| &ELSEWHERE).is_none());
    /// ```
    pub fn project<U: ShmSafe>(&self, f: impl FnOnce(&T) -> &U) -> Option<ShmBox<U>> {
        let u: *const U = f(&**self);
        let start = self.ptr.as_ptr() as usize;
        let end = start + size_of::<T>();
        let (us, ue) = (u as usize, u as usize + size_of::<U>());
        if us < start || ue > end {
            return None;
        }
        Some(ShmBox {
            block: self.block.clone(),
            ptr: NonNull::new(u as *mut U)?,
        })
    }

    /// Where the value lives in this process.
    #[inline(always)]
    pub fn as_ptr(&self) -> *const T {
        self.ptr.as_ptr()
    }

    /// The segment this object lives in and its offset there (what a spawned
    /// process needs to find it: see [`crate::process::spawn`]).
    pub(crate) fn placement(&self) -> (&Arc<Segment>, u64) {
        self.block.placement(self.ptr.as_ptr().cast())
    }

    /// The object at `offset` of `seg`, a segment received from the process
    /// that created it (the inverse of [`ShmBox::placement`]). Bounds and
    /// alignment are checked; the block is never recycled by this process.
    pub(crate) fn attach(seg: Arc<Segment>, offset: u64) -> Result<ShmBox<T>, ShmError> {
        let block = Block::attach(seg, offset, size_of::<T>(), align_of::<T>())?;
        let ptr = NonNull::new(block.ptr().cast::<T>()).expect("mapping is non-null");
        Ok(ShmBox {
            block: Arc::new(block),
            ptr,
        })
    }
}

impl<T: ShmSafe> Clone for ShmBox<T> {
    fn clone(&self) -> Self {
        ShmBox {
            block: self.block.clone(),
            ptr: self.ptr,
        }
    }
}

impl<T: ShmSafe> Deref for ShmBox<T> {
    type Target = T;
    #[inline(always)]
    fn deref(&self) -> &T {
        // SAFETY: initialized in `new` (or a checked part of such a value),
        // aligned, alive while the block is; T is Sync so a shared reference may
        // be used from any thread.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T: ShmSafe + core::fmt::Debug> core::fmt::Debug for ShmBox<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_tuple("ShmBox").field(&**self).finish()
    }
}

/// A fixed-length slice of `T` in shared memory, placed by the arena.
///
/// Same sharing, cloning and freeing rules as [`ShmBox`].
///
/// ```
/// use procshare::internals::ShmSlice;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// let s = ShmSlice::from_fn(4, |i| AtomicU64::new(i as u64)).unwrap();
/// assert_eq!(s.len(), 4);
/// assert_eq!(s[3].load(Ordering::Relaxed), 3);
/// ```
pub struct ShmSlice<T: ShmSafe> {
    block: Arc<Block>,
    ptr: NonNull<T>,
    len: usize,
}

// SAFETY: as for ShmBox: shared access to `T: Sync` elements plus an `Arc`.
unsafe impl<T: ShmSafe> Send for ShmSlice<T> {}
// SAFETY: as above.
unsafe impl<T: ShmSafe> Sync for ShmSlice<T> {}

impl<T: ShmSafe> ShmSlice<T> {
    /// Allocates `len` elements, the `i`th initialized to `f(i)`.
    pub fn from_fn(len: usize, mut f: impl FnMut(usize) -> T) -> Result<ShmSlice<T>, ShmError> {
        const {
            assert!(
                !core::mem::needs_drop::<T>(),
                "ShmSafe types have no drop glue"
            )
        };
        let bytes = size_of::<T>()
            .checked_mul(len)
            .ok_or(ShmError::TooLarge(usize::MAX))?;
        let block = Block::alloc(bytes, align_of::<T>())?;
        let p = block.ptr().cast::<T>();
        for i in 0..len {
            // SAFETY: in bounds of the block (len * size_of::<T>() bytes), aligned.
            unsafe { p.add(i).write(f(i)) };
        }
        Ok(ShmSlice {
            block: Arc::new(block),
            ptr: NonNull::new(p).expect("mapping is non-null"),
            len,
        })
    }

    /// Allocates `len` elements whose bytes are all zero, without writing
    /// them (fresh blocks are zero-filled, reused ones zeroed): a large slice
    /// gets a sparse memfd of its own and holds no memory until written.
    ///
    /// # Safety
    /// All-zero bytes must be a valid `T`.
    pub(crate) unsafe fn zeroed(len: usize) -> Result<ShmSlice<T>, ShmError> {
        const {
            assert!(
                !core::mem::needs_drop::<T>(),
                "ShmSafe types have no drop glue"
            )
        };
        let bytes = size_of::<T>()
            .checked_mul(len)
            .ok_or(ShmError::TooLarge(usize::MAX))?;
        let block = Block::alloc(bytes, align_of::<T>())?;
        let p = block.ptr().cast::<T>();
        Ok(ShmSlice {
            block: Arc::new(block),
            ptr: NonNull::new(p).expect("mapping is non-null"),
            len,
        })
    }

    /// Allocates the elements of an iterator (collected first, so any
    /// iterator will do).
    pub fn from_values<I: IntoIterator<Item = T>>(iter: I) -> Result<ShmSlice<T>, ShmError> {
        let v: Vec<T> = iter.into_iter().collect();
        let len = v.len();
        let mut it = v.into_iter();
        Self::from_fn(len, |_| it.next().expect("exactly len elements"))
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Is it empty?
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Where the first element lives in this process.
    #[inline(always)]
    pub fn as_ptr(&self) -> *const T {
        self.ptr.as_ptr()
    }

    /// The segment the elements live in and the offset of the first (see
    /// [`ShmBox::placement`]).
    pub(crate) fn placement(&self) -> (&Arc<Segment>, u64) {
        self.block.placement(self.ptr.as_ptr().cast())
    }

    /// `len` elements at `offset` of a received segment (see [`ShmBox::attach`]).
    pub(crate) fn attach(
        seg: Arc<Segment>,
        offset: u64,
        len: u64,
    ) -> Result<ShmSlice<T>, ShmError> {
        let too_large = || ShmError::TooLarge(usize::MAX);
        let len = usize::try_from(len).map_err(|_| too_large())?;
        let bytes = size_of::<T>().checked_mul(len).ok_or_else(too_large)?;
        let block = Block::attach(seg, offset, bytes, align_of::<T>())?;
        let ptr = NonNull::new(block.ptr().cast::<T>()).expect("mapping is non-null");
        Ok(ShmSlice {
            block: Arc::new(block),
            ptr,
            len,
        })
    }
}

impl<T: ShmSafe> Clone for ShmSlice<T> {
    fn clone(&self) -> Self {
        ShmSlice {
            block: self.block.clone(),
            ptr: self.ptr,
            len: self.len,
        }
    }
}

impl<T: ShmSafe> Deref for ShmSlice<T> {
    type Target = [T];
    #[inline(always)]
    fn deref(&self) -> &[T] {
        // SAFETY: `len` initialized, aligned elements, alive while the block is.
        unsafe { core::slice::from_raw_parts(self.as_ptr(), self.len) }
    }
}

impl<T: ShmSafe + core::fmt::Debug> core::fmt::Debug for ShmSlice<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_tuple("ShmSlice").field(&&**self).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn small_objects_share_segments() {
        let v: Vec<_> = (0..10_000)
            .map(|i| ShmBox::new(AtomicU32::new(i)).unwrap())
            .collect();
        // 10,000 16-byte blocks: 160 KB, within one or two 1 MiB segments.
        // Counted from the boxes themselves: the arena's global counters
        // (`arena_stats`) move with the tests running in parallel threads.
        let mut segs: Vec<*const Segment> =
            v.iter().map(|b| Arc::as_ptr(b.placement().0)).collect();
        segs.sort();
        segs.dedup();
        assert!(segs.len() <= 2, "{} segments", segs.len());
        for (i, b) in v.iter().enumerate() {
            assert_eq!(b.load(Ordering::Relaxed), i as u32);
        }
    }

    #[test]
    fn freed_blocks_are_reused_and_zeroed() {
        let a = ShmBox::new(0xdead_beef_u64).unwrap();
        let p = a.as_ptr() as usize;
        drop(a);
        // Other tests allocate concurrently; find our block among a few.
        let v: Vec<_> = (0..64).map(|_| ShmBox::new(0u64).unwrap()).collect();
        assert!(v.iter().all(|b| **b == 0));
        let _ = p;
    }

    /// A dropped block goes back to this process's free list: the arena
    /// counts it gone and the next block of its size and alignment is the
    /// same memory. Checked in a forked child, where no other test allocates
    /// or forks meanwhile (a block born before another child started may be
    /// quarantined instead).
    #[test]
    fn a_dropped_block_is_freed_and_reused() {
        let pid = crate::sys::fork::fork(|_| {
            #[repr(C)]
            struct Odd([u64; 13]);
            // SAFETY: plain integers, valid for any bytes.
            unsafe impl ShmSafe for Odd {}
            let before = arena_stats();
            let a = ShmBox::new(Odd([7; 13])).unwrap();
            let p = a.as_ptr() as usize;
            let held = arena_stats();
            drop(a);
            let after = arena_stats();
            let b = ShmBox::new(Odd([0; 13])).unwrap();
            i32::from(held.live_blocks != before.live_blocks + 1)
                | i32::from(after.live_blocks != before.live_blocks) << 1
                | i32::from(after.live_bytes != before.live_bytes) << 2
                | i32::from(b.as_ptr() as usize != p) << 3
        })
        .unwrap();
        assert_eq!(
            crate::sys::proc::wait_child(pid, true).unwrap(),
            Some(0),
            "1: not counted live; 2, 4: not counted freed; 8: not reused"
        );
    }

    #[test]
    fn alignment_and_large() {
        #[repr(C, align(256))]
        struct Big([u8; 256]);
        // SAFETY: plain bytes.
        unsafe impl ShmSafe for Big {}
        let b = ShmBox::new(Big([1; 256])).unwrap();
        assert_eq!(b.as_ptr() as usize % 256, 0);
        let l = ShmSlice::from_fn(100_000, |i| AtomicU64::new(i as u64)).unwrap();
        assert_eq!(l.as_ptr() as usize % 4096, 0);
        assert_eq!(l[99_999].load(Ordering::Relaxed), 99_999);
    }

    #[test]
    fn attach_checks_header() {
        let seg = Segment::create(8192).unwrap();
        let fd = seg.fd().unwrap().try_clone_to_owned().unwrap();
        assert!(Segment::attach(fd).is_ok());
        // Corrupt the magic.
        // SAFETY: in bounds; nobody else uses the segment.
        unsafe { seg.ptr_at(0).write(0) };
        let fd = seg.fd().unwrap().try_clone_to_owned().unwrap();
        assert!(matches!(
            Segment::attach(fd),
            Err(ShmError::BadMagic { .. })
        ));
        // A wrong version.
        let seg = Segment::create(8192).unwrap();
        // SAFETY: version is at offset 8.
        unsafe { seg.ptr_at(8).cast::<u32>().write(99) };
        let fd = seg.fd().unwrap().try_clone_to_owned().unwrap();
        assert!(matches!(
            Segment::attach(fd),
            Err(ShmError::VersionMismatch { found: 99, .. })
        ));
        // A size that disagrees with the file.
        let seg = Segment::create(8192).unwrap();
        // SAFETY: size is at offset 16.
        unsafe { seg.ptr_at(16).cast::<u64>().write(1 << 40) };
        let fd = seg.fd().unwrap().try_clone_to_owned().unwrap();
        assert!(matches!(
            Segment::attach(fd),
            Err(ShmError::SizeMismatch { .. })
        ));
        // A memfd that is not a segment at all.
        let f = crate::sys::io::memfd(c"test", 4096).unwrap();
        assert!(Segment::attach(f).is_err());
    }
}
