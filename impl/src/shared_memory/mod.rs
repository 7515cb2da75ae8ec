//! Named shared memory, as CPython's `multiprocessing.shared_memory`: a block
//! that unrelated processes attach to *by name*, in Rust or in Python.

mod manager;
mod shareable_list;
mod tracker;

pub use manager::SharedMemoryManager;
pub use shareable_list::{Item, ShareableList};

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::os::fd::AsFd;

use bytemuck::Pod;

use crate::sys::posix_shm::{self as sys, FileId, Mapping};

/// The errors of named shared memory ([`SharedMemory`], [`ShareableList`],
/// [`SharedMemoryManager`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SharedMemoryError {
    /// The name is not a valid POSIX shared-memory name (Python: `OSError`
    /// `EINVAL`).
    #[error("invalid shared memory name {name:?}: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No block has this name (Python: `FileNotFoundError`).
    #[error("no shared memory block named {name:?}")]
    NotFound {
        /// The name.
        name: String,
        /// The OS error (`ENOENT`).
        #[source]
        source: io::Error,
    },
    /// A block of this name already exists (Python: `FileExistsError`).
    #[error("a shared memory block named {name:?} already exists")]
    AlreadyExists {
        /// The name.
        name: String,
        /// The OS error (`EEXIST`).
        #[source]
        source: io::Error,
    },
    /// A block of size 0 was asked for (Python: `ValueError`).
    #[error("'size' must be a positive number different from zero")]
    ZeroSize,
    /// A system call failed.
    #[error("{what} failed for shared memory block {name:?}")]
    Os {
        /// Which call.
        what: &'static str,
        /// The block's name.
        name: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The block's tracker process could not be started or reached.
    #[error("the tracker of shared memory block {name:?}: {what}")]
    Tracker {
        /// The block's name.
        name: String,
        /// What failed.
        what: String,
        /// The OS error, if one.
        #[source]
        source: Option<io::Error>,
    },
    /// An index past the end of a [`ShareableList`] (Python: `IndexError`).
    #[error("index {index} out of range (the list has {len} items)")]
    IndexOutOfRange {
        /// The index given.
        index: usize,
        /// The list's length.
        len: usize,
    },
    /// A `str`/`bytes` longer than its [`ShareableList`] slot (Python:
    /// `ValueError: bytes/str item exceeds available storage`).
    #[error("bytes/str item exceeds available storage: {needed} bytes for a slot of {capacity} at index {index}")]
    ItemTooLong {
        /// The index.
        index: usize,
        /// The encoded length of the value.
        needed: usize,
        /// The slot's size.
        capacity: usize,
    },
    /// [`ShareableList::index`] of an absent value (Python: `ValueError: … not
    /// in this container`).
    #[error("{value} not in this container")]
    NotInList {
        /// The value, as Python's `repr` shows it.
        value: String,
    },
    /// The block does not hold a valid `ShareableList` (another process wrote
    /// garbage, or it is not a list at all).
    #[error("corrupt ShareableList in block {name:?}: {reason}")]
    Corrupt {
        /// The block's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A [`SharedMemoryManager`] used before `start` or after `shutdown`
    /// (Python: `ValueError` / `ProcessError`).
    #[error("the SharedMemoryManager is not running ({0})")]
    ManagerNotRunning(&'static str),
    /// The [`SharedMemoryManager`]'s server failed or went away.
    #[error("the SharedMemoryManager server: {what}")]
    Manager {
        /// What failed.
        what: String,
        /// The OS error, if one.
        #[source]
        source: Option<io::Error>,
    },
}

/// The result type of this module.
pub(crate) type Result<T, E = SharedMemoryError> = std::result::Result<T, E>;

/// Checks a block name (see the module docs, "Names").
fn validate_name(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(SharedMemoryError::InvalidName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > 255 {
        return bad("longer than 255 bytes");
    }
    if name.contains('/') {
        return bad("contains '/'");
    }
    if name.contains('\0') {
        return bad("contains a NUL byte");
    }
    if name == "." || name == ".." {
        return bad("'.' and '..' are not names");
    }
    Ok(())
}

/// A random name as CPython's `_make_filename`: `psm_` and 8 hex digits.
fn random_name() -> Result<String> {
    let mut b = [0u8; 4];
    crate::sys::getrandom(&mut b).map_err(|source| SharedMemoryError::Os {
        what: "getrandom",
        name: String::new(),
        source,
    })?;
    Ok(format!(
        "psm_{:02x}{:02x}{:02x}{:02x}",
        b[0], b[1], b[2], b[3]
    ))
}

fn os<'a>(what: &'static str, name: &'a str) -> impl FnOnce(io::Error) -> SharedMemoryError + 'a {
    move |source| SharedMemoryError::Os {
        what,
        name: name.to_string(),
        source,
    }
}

/// A named shared-memory block (CPython's `multiprocessing.shared_memory.SharedMemory`).
///
/// See the type docs above for names, the soundness of access, and
/// tracking.
///
/// ```
/// use procshare::SharedMemory;
///
/// let shm = SharedMemory::create(None, 512).unwrap();
/// assert!(shm.name().starts_with("psm_"));
/// assert_eq!(shm.size(), 512);
/// shm.write(0, &[42]);
/// let also = SharedMemory::attach(shm.name()).unwrap();
/// let mut b = [0u8];
/// also.read(0, &mut b);
/// assert_eq!(b[0], 42);
/// shm.unlink().unwrap();
/// ```
///
/// Named shared memory, as CPython's `multiprocessing.shared_memory`: a block
/// that unrelated processes attach to *by name*, in Rust or in Python.
///
/// ```
/// use procshare::SharedMemory;
///
/// let a = SharedMemory::create(None, 64).unwrap(); // a random `psm_…` name
/// a.write(0, b"howdy");
/// let b = SharedMemory::attach(a.name()).unwrap(); // any process, by name
/// let mut got = [0u8; 5];
/// b.read(0, &mut got);
/// assert_eq!(&got, b"howdy");
/// a.unlink().unwrap(); // remove the name (the mappings stay valid)
/// ```
///
/// In Python, the same block is `SharedMemory(name=...)`:
///
/// ```python
/// from multiprocessing import shared_memory
/// shm = shared_memory.SharedMemory(name="psm_1234abcd")
/// print(bytes(shm.buf[:5]))
/// ```
///
/// # Names
///
/// A name is what CPython's `SharedMemory.name` shows: no leading `/`. The
/// object is `shm_open("/" + name)`, i.e. the file `/dev/shm/<name>`, exactly
/// CPython's. Names must be non-empty, at most 255 bytes, contain no `/` and
/// no NUL, and not be `.` or `..` ([`SharedMemoryError::InvalidName`]). A
/// block created without a name gets `psm_` and 8 random hex digits, as
/// CPython's `_make_filename`. Attaching a missing name is
/// [`SharedMemoryError::NotFound`] (Python: `FileNotFoundError`), creating an
/// existing one [`SharedMemoryError::AlreadyExists`] (`FileExistsError`), and a
/// size of 0 [`SharedMemoryError::ZeroSize`] (`ValueError`).
///
/// # Soundness: several processes write the same bytes
///
/// Any process (a Python one included) may write any byte of the block at any
/// time; no lock protects it. Rust references (`&[u8]`, `&mut [u8]`) promise
/// that nobody else writes (or, for `&mut`, reads) the bytes they cover, which
/// this crate cannot know. So the safe API never hands out a reference into
/// the block:
///
/// - [`SharedMemory::read`] / [`SharedMemory::write`] copy bytes in and out
///   with relaxed atomic loads and stores (8 bytes at a time at 8-aligned
///   addresses, else one byte at a time): a concurrent writer makes the copy
///   torn (as in Python), never undefined behaviour; an aligned 8-byte value
///   (an `f64`, an `i64`) is never torn.
/// - [`SharedMemory::view`] gives `Array`-like typed access ([`PodView`]: `get`,
///   `set`, `to_vec`, `copy_from_slice`) to a block as a slice of a
///   [`Pod`] type, by the same atomic copies.
/// - [`SharedMemory::as_slice`], [`SharedMemory::as_mut_slice`] and
///   [`SharedMemory::as_slice_of`] give real slices, for speed, and are
///   `unsafe`: the caller promises that no process writes the block (and, for
///   `as_mut_slice`, reads it) while the slice lives — for instance because a
///   procshare [`Lock`](crate::Lock) or a protocol of the program orders the
///   accesses.
/// - [`SharedMemory::as_ptr`] gives the raw base address.
///
/// Closing is dropping (or [`SharedMemory::close`], which consumes the value):
/// views borrow the `SharedMemory`, so no access outlives the mapping.
///
/// # Lifetime and leaks: the tracker
///
/// A block made by [`SharedMemory::create`] is *tracked* (CPython 3.13's
/// `track=True`, the default): its name is removed when the last tracked user
/// has exited — the creator and every process that attached it with
/// [`SharedMemory::attach`] — however they exit, `kill -9` included, and never
/// while one of them still runs (CPython's resource tracker removes a block
/// that another process still uses: gh-82300). A block made by
/// [`SharedMemory::create_untracked`] keeps its name until someone calls
/// [`SharedMemory::unlink`] (CPython's `track=False`), as do blocks made by
/// Python, which procshare does not track.
///
/// How: `create` starts a small tracker process for the block (this very
/// binary, re-executed; it leaves the session with `setsid`, so a Ctrl-C to the
/// terminal does not stop it). The tracker holds a pidfd of each tracked user
/// and sleeps in `poll` on them and on a unix socket bound to an abstract
/// address derived from the block's name, device and inode. A tracked
/// `attach` connects there and sends a pidfd of itself (`SCM_RIGHTS`) and
/// waits for the acknowledgement before it returns; a pidfd names one process
/// for good (no pid reuse). When every pidfd has reported its process's exit,
/// the tracker closes its socket, checks that the name still refers to *its*
/// block (same device and inode: a block re-created under the same name is
/// not removed) and removes it, then exits. [`SharedMemory::unlink`] tells the
/// tracker, which then exits at once. Tracking is per process, for the
/// process's whole life (as CPython's tracker): dropping a tracked
/// `SharedMemory` unmaps it but does not end the tracking.
///
/// There is no protocol over shared memory here (the block's bytes are all
/// the user's, in CPython's layout; the tracker's state is a list of pidfds
/// in one single-threaded process), so this module has no model-checked step:
/// its only concurrency is the kernel's ordering of a registration against the
/// tracker's decision, and that decision is taken by one thread that accepts
/// every pending registration before it looks at the exits (a registration
/// that arrives after the decision finds the socket closed and the attach
/// proceeds untracked, on a block whose name is going away).
///
/// The tracker needs this crate's code in the executable (`/proc/self/exe`),
/// as the `spawn` start method does; `create` fails with
/// [`SharedMemoryError::Tracker`] otherwise (use `create_untracked` there).
///
/// # Python's own tracker
///
/// CPython 3.11 registers every `SharedMemory` it *attaches* with its resource
/// tracker, which unlinks the block when that Python process exits (and warns
/// of a leak). A Python program that attaches a block made in Rust and should
/// not remove it calls
/// `resource_tracker.unregister(shm._name, "shared_memory")` after attaching
/// (on 3.13+: `SharedMemory(name, track=False)`).
pub struct SharedMemory {
    name: String,
    map: Mapping,
    id: FileId,
    tracked: bool,
}

impl fmt::Debug for SharedMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SharedMemory({:?}, size={})", self.name, self.size())
    }
}

impl fmt::Display for SharedMemory {
    /// As Python's `repr`: `SharedMemory('psm_…', size=512)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SharedMemory('{}', size={})", self.name, self.size())
    }
}

impl SharedMemory {
    /// Creates a new block of `size` bytes (zero-filled), named `name` or a
    /// random `psm_…` name, *tracked*: its name is removed once the creator
    /// and every tracked attacher have exited (see the module docs).
    ///
    /// ```
    /// use procshare::{SharedMemory, SharedMemoryError};
    ///
    /// let name = format!("doc_create_{}", std::process::id());
    /// let shm = SharedMemory::create(Some(&name), 100).unwrap();
    /// assert_eq!(shm.name(), name);
    /// assert!(shm.is_tracked());
    /// assert!(matches!(
    ///     SharedMemory::create(Some(&name), 100),
    ///     Err(SharedMemoryError::AlreadyExists { .. })
    /// ));
    /// assert!(matches!(SharedMemory::create(None, 0), Err(SharedMemoryError::ZeroSize)));
    /// shm.unlink().unwrap();
    /// ```
    pub fn create(name: Option<&str>, size: usize) -> Result<SharedMemory> {
        Self::create_impl(name, size, true)
    }

    /// As [`SharedMemory::create`], untracked: the name stays until someone
    /// calls [`SharedMemory::unlink`] (CPython's `track=False`).
    ///
    /// ```
    /// use procshare::SharedMemory;
    ///
    /// let shm = SharedMemory::create_untracked(None, 10).unwrap();
    /// assert!(!shm.is_tracked());
    /// shm.unlink().unwrap();
    /// ```
    pub fn create_untracked(name: Option<&str>, size: usize) -> Result<SharedMemory> {
        Self::create_impl(name, size, false)
    }

    fn create_impl(name: Option<&str>, size: usize, track: bool) -> Result<SharedMemory> {
        if size == 0 {
            return Err(SharedMemoryError::ZeroSize);
        }
        if let Some(n) = name {
            validate_name(n)?;
        }
        let (name, fd) = loop {
            let n = match name {
                Some(n) => n.to_string(),
                None => random_name()?,
            };
            let path = sys::shm_path(&n).expect("validated: no NUL");
            match sys::shm_create_excl(&path) {
                Ok(fd) => break (n, fd),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    if name.is_none() {
                        continue;
                    }
                    return Err(SharedMemoryError::AlreadyExists { name: n, source: e });
                }
                Err(e) => return Err(os("shm_open", &n)(e)),
            }
        };
        let path = sys::shm_path(&name).expect("validated");
        let undo = |e: SharedMemoryError| {
            let _ = sys::shm_unlink(&path);
            e
        };
        sys::ftruncate(fd.as_fd(), size as u64).map_err(|e| undo(os("ftruncate", &name)(e)))?;
        let id = sys::fstat(fd.as_fd()).map_err(|e| undo(os("fstat", &name)(e)))?;
        let map = Mapping::map_shared(fd.as_fd(), id.size as usize)
            .map_err(|e| undo(os("mmap", &name)(e)))?;
        if track {
            tracker::start(&name, id).map_err(undo)?;
        }
        Ok(SharedMemory {
            name,
            map,
            id,
            tracked: track,
        })
    }

    /// Attaches to the existing block `name` (Python: `SharedMemory(name)`),
    /// its size being the block's. If the block is tracked, this process
    /// becomes one of its tracked users: the name stays while it runs.
    ///
    /// ```
    /// use procshare::{SharedMemory, SharedMemoryError};
    ///
    /// assert!(matches!(
    ///     SharedMemory::attach("procshare_doc_not_there"),
    ///     Err(SharedMemoryError::NotFound { .. })
    /// ));
    /// assert!(matches!(
    ///     SharedMemory::attach("a/b"),
    ///     Err(SharedMemoryError::InvalidName { .. })
    /// ));
    /// ```
    pub fn attach(name: &str) -> Result<SharedMemory> {
        Self::attach_impl(name, true)
    }

    /// As [`SharedMemory::attach`], without registering with the block's
    /// tracker: this process does not keep the name alive.
    ///
    /// ```
    /// use procshare::SharedMemory;
    ///
    /// let a = SharedMemory::create(None, 8).unwrap();
    /// let b = SharedMemory::attach_untracked(a.name()).unwrap();
    /// assert!(!b.is_tracked());
    /// assert_eq!(b.size(), 8);
    /// a.unlink().unwrap();
    /// ```
    pub fn attach_untracked(name: &str) -> Result<SharedMemory> {
        Self::attach_impl(name, false)
    }

    fn attach_impl(name: &str, track: bool) -> Result<SharedMemory> {
        validate_name(name)?;
        let path = sys::shm_path(name).expect("validated: no NUL");
        let fd = sys::shm_open_existing(&path, true).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                SharedMemoryError::NotFound {
                    name: name.to_string(),
                    source: e,
                }
            } else {
                os("shm_open", name)(e)
            }
        })?;
        let id = sys::fstat(fd.as_fd()).map_err(os("fstat", name))?;
        let len = usize::try_from(id.size).map_err(|_| SharedMemoryError::Os {
            what: "mmap",
            name: name.to_string(),
            source: io::Error::other("size does not fit in memory"),
        })?;
        let map = Mapping::map_shared(fd.as_fd(), len).map_err(os("mmap", name))?;
        let tracked = track && tracker::register(name, id);
        Ok(SharedMemory {
            name: name.to_string(),
            map,
            id,
            tracked,
        })
    }

    /// The block's name, without the leading `/` (as Python's `name`).
    ///
    /// ```
    /// let shm = procshare::SharedMemory::create(None, 1).unwrap();
    /// assert_eq!(shm.name().len(), 12); // psm_ + 8 hex digits
    /// shm.unlink().unwrap();
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The block's size in bytes (the object's size when it was mapped here).
    ///
    /// ```
    /// let shm = procshare::SharedMemory::create(None, 5000).unwrap();
    /// assert_eq!(shm.size(), 5000);
    /// shm.unlink().unwrap();
    /// ```
    pub fn size(&self) -> usize {
        self.map.len()
    }

    /// Whether this process is a tracked user of the block (see the module docs).
    ///
    /// ```
    /// let shm = procshare::SharedMemory::create(None, 1).unwrap();
    /// assert!(shm.is_tracked());
    /// shm.unlink().unwrap();
    /// ```
    pub fn is_tracked(&self) -> bool {
        self.tracked
    }

    /// Copies `buf.len()` bytes at `offset` into `buf` (atomic byte copies:
    /// see the module docs). Panics if the range is outside the block, as
    /// slice indexing does.
    ///
    /// ```
    /// let shm = procshare::SharedMemory::create(None, 16).unwrap();
    /// shm.write(4, b"abc");
    /// let mut out = [0u8; 5];
    /// shm.read(3, &mut out);
    /// assert_eq!(&out, b"\0abc\0");
    /// shm.unlink().unwrap();
    /// ```
    pub fn read(&self, offset: usize, buf: &mut [u8]) {
        self.map.read(offset, buf)
    }

    /// Copies `data` into the block at `offset` (atomic byte copies). Panics
    /// if the range is outside the block.
    ///
    /// ```
    /// let shm = procshare::SharedMemory::create(None, 4).unwrap();
    /// shm.write(0, b"HELLO"[..4].as_ref());
    /// assert_eq!(shm.to_vec(), b"HELL");
    /// shm.unlink().unwrap();
    /// ```
    pub fn write(&self, offset: usize, data: &[u8]) {
        self.map.write(offset, data)
    }

    /// A copy of the whole block (Python: `bytes(shm.buf)`).
    ///
    /// ```
    /// let shm = procshare::SharedMemory::create(None, 3).unwrap();
    /// assert_eq!(shm.to_vec(), vec![0, 0, 0]);
    /// shm.unlink().unwrap();
    /// ```
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.size()];
        self.map.read(0, &mut v);
        v
    }

    /// The base address of the mapping (page-aligned). Valid while `self`
    /// lives; see the module docs for what accesses through it are sound.
    ///
    /// ```
    /// let shm = procshare::SharedMemory::create(None, 8).unwrap();
    /// assert_eq!(shm.as_ptr() as usize % 4096, 0);
    /// shm.unlink().unwrap();
    /// ```
    pub fn as_ptr(&self) -> *mut u8 {
        self.map.ptr()
    }

    /// The block as a byte slice.
    ///
    /// # Safety
    /// While the slice lives, no process (this one included, through another
    /// `SharedMemory` or [`SharedMemory::write`]) may write the block.
    ///
    /// ```
    /// let shm = procshare::SharedMemory::create(None, 4).unwrap();
    /// shm.write(0, b"abcd");
    /// // SAFETY: no other process knows this block; nothing writes it meanwhile.
    /// assert_eq!(unsafe { shm.as_slice() }, b"abcd");
    /// shm.unlink().unwrap();
    /// ```
    pub unsafe fn as_slice(&self) -> &[u8] {
        // SAFETY: the caller's contract is `Mapping::bytes`'s.
        unsafe { self.map.bytes() }
    }

    /// The block as a mutable byte slice.
    ///
    /// # Safety
    /// While the slice lives, no process (this one included) may read or
    /// write the block other than through it.
    ///
    /// ```
    /// let mut shm = procshare::SharedMemory::create(None, 4).unwrap();
    /// // SAFETY: no other process knows this block.
    /// unsafe { shm.as_mut_slice() }.copy_from_slice(b"wxyz");
    /// assert_eq!(shm.to_vec(), b"wxyz");
    /// shm.unlink().unwrap();
    /// ```
    pub unsafe fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: the caller's contract is `Mapping::bytes_mut`'s; `&mut self`
        // excludes accesses through this value meanwhile.
        unsafe { self.map.bytes_mut() }
    }

    /// The block as a slice of `T` (its first `size / size_of::<T>()` elements).
    ///
    /// # Safety
    /// As [`SharedMemory::as_slice`]: no process writes the block while the
    /// slice lives.
    ///
    /// ```
    /// let shm = procshare::SharedMemory::create(None, 16).unwrap();
    /// shm.view::<f64>().set(1, 2.5);
    /// // SAFETY: nothing writes the block meanwhile.
    /// assert_eq!(unsafe { shm.as_slice_of::<f64>() }, &[0.0, 2.5]);
    /// shm.unlink().unwrap();
    /// ```
    pub unsafe fn as_slice_of<T: Pod>(&self) -> &[T] {
        let n = self.view_len::<T>();
        // SAFETY: caller's contract as `as_slice`.
        let bytes = unsafe { self.map.bytes() };
        // The mapping is page-aligned (or a dangling 8-aligned pointer when
        // empty), and Pod's alignment is at most a page.
        bytemuck::cast_slice(&bytes[..n * std::mem::size_of::<T>()])
    }

    fn view_len<T>(&self) -> usize {
        match std::mem::size_of::<T>() {
            0 => 0,
            s => self.size() / s,
        }
    }

    /// The block as an array of `T` with safe, `Array`-like element access by
    /// atomic copies (Python: `shm.buf.cast('d')` for `f64`). Its length is
    /// `size / size_of::<T>()`.
    ///
    /// ```
    /// use procshare::SharedMemory;
    ///
    /// let a = SharedMemory::create(None, 8 * 1000).unwrap();
    /// let v = a.view::<f64>();
    /// assert_eq!(v.len(), 1000);
    /// v.set(999, 0.5);
    /// let b = SharedMemory::attach(a.name()).unwrap();
    /// assert_eq!(b.view::<f64>().get(999), 0.5);
    /// a.unlink().unwrap();
    /// ```
    pub fn view<T: Pod>(&self) -> PodView<'_, T> {
        PodView {
            shm: self,
            len: self.view_len::<T>(),
            _t: PhantomData,
        }
    }

    /// Removes the block's name (Python: `unlink()`): later attaches fail
    /// with `NotFound`; mappings stay valid until closed. A second `unlink`
    /// is `NotFound` (Python: `FileNotFoundError`). If the block has a
    /// tracker, it is told and exits.
    ///
    /// ```
    /// use procshare::{SharedMemory, SharedMemoryError};
    ///
    /// let shm = SharedMemory::create(None, 8).unwrap();
    /// shm.unlink().unwrap();
    /// shm.write(0, b"still ok"); // the mapping lives on
    /// assert!(matches!(shm.unlink(), Err(SharedMemoryError::NotFound { .. })));
    /// ```
    pub fn unlink(&self) -> Result<()> {
        let path = sys::shm_path(&self.name).expect("validated");
        sys::shm_unlink(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                SharedMemoryError::NotFound {
                    name: self.name.clone(),
                    source: e,
                }
            } else {
                os("shm_unlink", &self.name)(e)
            }
        })?;
        tracker::notify_unlinked(&self.name, self.id);
        Ok(())
    }

    /// Unmaps the block in this process (Python: `close()`); the same as
    /// dropping it. The name stays (see [`SharedMemory::unlink`]).
    ///
    /// ```
    /// let shm = procshare::SharedMemory::create(None, 8).unwrap();
    /// let name = shm.name().to_string();
    /// shm.close();
    /// let again = procshare::SharedMemory::attach(&name).unwrap();
    /// again.unlink().unwrap();
    /// ```
    pub fn close(self) {
        drop(self)
    }
}

/// A [`SharedMemory`] block seen as an array of `T` (see
/// [`SharedMemory::view`]): every access is an atomic copy, so another
/// process writing meanwhile may tear a value wider than 8 bytes or not
/// 8-aligned (as in Python), never cause undefined behaviour.
///
/// ```
/// let shm = procshare::SharedMemory::create(None, 32).unwrap();
/// let v = shm.view::<u32>();
/// v.copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
/// assert_eq!(v.to_vec(), [1, 2, 3, 4, 5, 6, 7, 8]);
/// shm.unlink().unwrap();
/// ```
#[derive(Debug, Clone, Copy)]
pub struct PodView<'a, T> {
    shm: &'a SharedMemory,
    len: usize,
    _t: PhantomData<fn() -> T>,
}

impl<T: Pod> PodView<'_, T> {
    /// The number of elements.
    ///
    /// ```
    /// let shm = procshare::SharedMemory::create(None, 17).unwrap();
    /// assert_eq!(shm.view::<u64>().len(), 2);
    /// shm.unlink().unwrap();
    /// ```
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there is no element.
    ///
    /// ```
    /// let shm = procshare::SharedMemory::create(None, 7).unwrap();
    /// assert!(shm.view::<u64>().is_empty());
    /// shm.unlink().unwrap();
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Element `i`. Panics if `i >= len()`.
    ///
    /// ```
    /// let shm = procshare::SharedMemory::create(None, 8).unwrap();
    /// assert_eq!(shm.view::<i32>().get(1), 0);
    /// shm.unlink().unwrap();
    /// ```
    pub fn get(&self, i: usize) -> T {
        assert!(
            i < self.len,
            "index {i} out of range for a view of {}",
            self.len
        );
        let mut v = T::zeroed();
        self.shm
            .map
            .read(i * std::mem::size_of::<T>(), bytemuck::bytes_of_mut(&mut v));
        v
    }

    /// Sets element `i`. Panics if `i >= len()`.
    ///
    /// ```
    /// let shm = procshare::SharedMemory::create(None, 8).unwrap();
    /// shm.view::<f64>().set(0, -1.5);
    /// assert_eq!(shm.view::<f64>().get(0), -1.5);
    /// shm.unlink().unwrap();
    /// ```
    pub fn set(&self, i: usize, v: T) {
        assert!(
            i < self.len,
            "index {i} out of range for a view of {}",
            self.len
        );
        self.shm
            .map
            .write(i * std::mem::size_of::<T>(), bytemuck::bytes_of(&v));
    }

    /// A copy of all elements.
    ///
    /// ```
    /// let shm = procshare::SharedMemory::create(None, 4).unwrap();
    /// assert_eq!(shm.view::<u16>().to_vec(), [0, 0]);
    /// shm.unlink().unwrap();
    /// ```
    pub fn to_vec(&self) -> Vec<T> {
        let mut v = vec![T::zeroed(); self.len];
        self.shm.map.read(0, bytemuck::cast_slice_mut(&mut v));
        v
    }

    /// Writes `src` to the first `src.len()` elements. Panics if it is longer
    /// than the view.
    ///
    /// ```
    /// let shm = procshare::SharedMemory::create(None, 16).unwrap();
    /// shm.view::<f64>().copy_from_slice(&[1.0, 2.0]);
    /// assert_eq!(shm.view::<f64>().to_vec(), [1.0, 2.0]);
    /// shm.unlink().unwrap();
    /// ```
    pub fn copy_from_slice(&self, src: &[T]) {
        assert!(
            src.len() <= self.len,
            "{} elements into a view of {}",
            src.len(),
            self.len
        );
        self.shm.map.write(0, bytemuck::cast_slice(src));
    }
}
