//! Arguments: how a spawned child's arguments are exported and imported (values
//! by copy, shared objects by handle), and the target function found by its
//! offset.

use super::*;

// ---------------------------------------------------------------------------
// Arguments.

/// What a spawned child's arguments are encoded into (see [`SpawnArg`]).
#[derive(Debug, Default)]
pub struct Exporter {
    pub(super) bytes: Vec<u8>,
    pub(super) segments: Vec<Arc<Segment>>,
    /// Plain descriptors (sockets), passed after the segments' memfds.
    pub(super) fds: Vec<OwnedFd>,
}

impl Exporter {
    /// Appends a value by copy (postcard).
    pub fn put<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), SpawnError> {
        let bytes = core::mem::take(&mut self.bytes);
        self.bytes = postcard::to_extend(value, bytes)
            .map_err(|e| SpawnError::Encode(crate::codec::wire::encode_error(value, e)))?;
        Ok(())
    }

    /// Appends an argument (by copy or as a shared handle).
    pub fn arg<A: SpawnArg>(&mut self, a: &A) -> Result<(), SpawnError> {
        a.export(self)
    }

    /// Appends a descriptor (a socket, e.g. a `Connection`'s): the child gets
    /// its own copy of it (`SCM_RIGHTS`, or kept across the exec), taken back
    /// with [`Importer::take_fd`].
    pub fn fd(&mut self, fd: BorrowedFd<'_>) -> Result<(), SpawnError> {
        let dup = fd.try_clone_to_owned().map_err(os_err("dup"))?;
        self.fds.push(dup);
        self.put(&((self.fds.len() - 1) as u32))
    }

    fn segment(&mut self, seg: &Arc<Segment>) -> Result<u32, SpawnError> {
        let i = match self.segments.iter().position(|s| Arc::ptr_eq(s, seg)) {
            Some(i) => i,
            None => {
                if seg.fd().is_none() {
                    return Err(SpawnError::BadRequest("a shared segment has no descriptor"));
                }
                self.segments.push(seg.clone());
                self.segments.len() - 1
            }
        };
        Ok(i as u32)
    }

    pub(crate) fn shm_box<T: ShmSafe>(&mut self, b: &ShmBox<T>) -> Result<(), SpawnError> {
        let (seg, off) = b.placement();
        let i = self.segment(seg)?;
        self.put(&(i, off))
    }

    pub(crate) fn shm_slice<T: ShmSafe>(&mut self, s: &ShmSlice<T>) -> Result<(), SpawnError> {
        let (seg, off) = s.placement();
        let i = self.segment(seg)?;
        self.put(&(i, off, s.len() as u64))
    }
}

/// What a spawned child decodes its arguments from (see [`SpawnArg`]).
#[derive(Debug)]
pub struct Importer {
    pub(super) bytes: Vec<u8>,
    pub(super) pos: usize,
    pub(super) segments: Vec<Arc<Segment>>,
    /// The plain descriptors sent by [`Exporter::fd`] (each taken once).
    pub(super) fds: Vec<Option<OwnedFd>>,
}

impl Importer {
    /// Takes a value sent by [`Exporter::put`].
    pub fn take<T: DeserializeOwned>(&mut self) -> Result<T, SpawnError> {
        let rest = self.bytes.get(self.pos..).unwrap_or_default();
        let (v, left) = postcard::take_from_bytes::<T>(rest).map_err(|e| SpawnError::Decode {
            what: format!("{e} (at byte {})", self.pos),
            source: Some(e),
        })?;
        self.pos = self.bytes.len() - left.len();
        Ok(v)
    }

    /// Takes an argument sent by [`Exporter::arg`].
    pub fn take_arg<A: SpawnArg>(&mut self) -> Result<A, SpawnError> {
        A::import(self)
    }

    /// Takes a descriptor sent by [`Exporter::fd`].
    pub fn take_fd(&mut self) -> Result<OwnedFd, SpawnError> {
        let i: u32 = self.take()?;
        self.fds
            .get_mut(i as usize)
            .and_then(Option::take)
            .ok_or(SpawnError::BadRequest(
                "an argument names a descriptor that was not sent (or twice)",
            ))
    }

    fn segment(&self, i: u32) -> Result<Arc<Segment>, SpawnError> {
        self.segments
            .get(i as usize)
            .cloned()
            .ok_or(SpawnError::BadRequest(
                "a shared object names a segment that was not sent",
            ))
    }

    pub(crate) fn shm_box<T: ShmSafe>(&mut self) -> Result<ShmBox<T>, SpawnError> {
        let (i, off): (u32, u64) = self.take()?;
        Ok(ShmBox::attach(self.segment(i)?, off)?)
    }

    pub(crate) fn shm_slice<T: ShmSafe>(&mut self) -> Result<ShmSlice<T>, SpawnError> {
        let (i, off, len): (u32, u64, u64) = self.take()?;
        Ok(ShmSlice::attach(self.segment(i)?, off, len)?)
    }

    pub(super) fn finish(&self) -> Result<(), SpawnError> {
        if self.pos != self.bytes.len() {
            return Err(SpawnError::Decode {
                what: format!(
                    "{} bytes left over after the arguments",
                    self.bytes.len() - self.pos
                ),
                source: None,
            });
        }
        Ok(())
    }
}

/// One argument of a spawned child: a serde value (by copy), or a shared
/// object (a handle onto the same shared memory).
///
/// Implemented for every `T: Serialize + DeserializeOwned` and for the shared
/// types. Implement it for a struct of your own that holds shared objects by
/// exporting and importing its fields in order:
///
/// ```
/// use procshare::{Exporter, Importer, SpawnArg, SpawnError};
/// use procshare::{Lock, Value};
/// struct Counter { n: Value<u32>, lock: Lock, label: String }
/// impl SpawnArg for Counter {
///     fn export(&self, ex: &mut Exporter) -> Result<(), SpawnError> {
///         ex.arg(&self.n)?;
///         ex.arg(&self.lock)?;
///         ex.put(&self.label)
///     }
///     fn import(im: &mut Importer) -> Result<Self, SpawnError> {
///         Ok(Counter { n: im.take_arg()?, lock: im.take_arg()?, label: im.take()? })
///     }
/// }
/// ```
pub trait SpawnArg: Sized {
    /// Encodes `self` for the child.
    fn export(&self, ex: &mut Exporter) -> Result<(), SpawnError>;
    /// Decodes it in the child.
    fn import(im: &mut Importer) -> Result<Self, SpawnError>;
}

impl<T: Serialize + DeserializeOwned> SpawnArg for T {
    fn export(&self, ex: &mut Exporter) -> Result<(), SpawnError> {
        ex.put(self)
    }
    fn import(im: &mut Importer) -> Result<Self, SpawnError> {
        im.take()
    }
}

/// The arguments of a spawned child: a flat tuple of up to 12 [`SpawnArg`]s.
/// A single argument is a 1-tuple: `(x,)`.
///
/// Tuples nested inside it are plain serde values: they may not hold shared
/// objects (a tuple cannot be both a serde value and a tuple of handles;
/// write a [`SpawnArg`] struct instead, or flatten the tuple).
///
/// ```
/// use procshare::{Process, StartMethod};
/// use procshare::{Event, Lock};
/// fn child((lock, done, label, n): (Lock, Event, String, u8)) {
///     let _g = lock.lock().unwrap();
///     assert_eq!((label.as_str(), n), ("job", 3));
///     done.set();
/// }
/// let (lock, done) = (Lock::new().unwrap(), Event::new().unwrap());
/// let args = (lock.clone(), done.clone(), "job".to_string(), 3u8);
/// let mut p = Process::with_target(child, args).start_method(StartMethod::ForkServer);
/// p.start().unwrap();
/// assert_eq!(p.join().unwrap(), 0);
/// assert!(done.is_set());
/// ```
pub trait SpawnArgs: Sized + Send + 'static {
    /// Encodes every argument, in order.
    fn export_all(&self, ex: &mut Exporter) -> Result<(), SpawnError>;
    /// Decodes them in the child.
    fn import_all(im: &mut Importer) -> Result<Self, SpawnError>;
}

macro_rules! spawn_args_tuple {
    ($($n:ident),*) => {
        impl<$($n: SpawnArg + Send + 'static),*> SpawnArgs for ($($n,)*) {
            #[allow(non_snake_case, unused_variables)]
            fn export_all(&self, ex: &mut Exporter) -> Result<(), SpawnError> {
                let ($($n,)*) = self;
                $( $n.export(ex)?; )*
                Ok(())
            }
            #[allow(unused_variables)]
            fn import_all(im: &mut Importer) -> Result<Self, SpawnError> {
                Ok(($($n::import(im)?,)*))
            }
        }
    };
}
spawn_args_tuple!();
spawn_args_tuple!(A);
spawn_args_tuple!(A, B);
spawn_args_tuple!(A, B, C);
spawn_args_tuple!(A, B, C, D);
spawn_args_tuple!(A, B, C, D, E);
spawn_args_tuple!(A, B, C, D, E, F);
spawn_args_tuple!(A, B, C, D, E, F, G);
spawn_args_tuple!(A, B, C, D, E, F, G, H);
spawn_args_tuple!(A, B, C, D, E, F, G, H, I);
spawn_args_tuple!(A, B, C, D, E, F, G, H, I, J);
spawn_args_tuple!(A, B, C, D, E, F, G, H, I, J, K);
spawn_args_tuple!(A, B, C, D, E, F, G, H, I, J, K, L);

// The shared types: handles onto shared memory.

macro_rules! spawn_arg_box {
    ($($t:ty),*) => { $(
        impl SpawnArg for $t {
            fn export(&self, ex: &mut Exporter) -> Result<(), SpawnError> {
                ex.shm_box(&self.raw)
            }
            fn import(im: &mut Importer) -> Result<Self, SpawnError> {
                Ok(Self { raw: im.shm_box()? })
            }
        }
    )* };
}
spawn_arg_box!(Lock, RLock, Semaphore, BoundedSemaphore, Event);

impl SpawnArg for Barrier {
    fn export(&self, ex: &mut Exporter) -> Result<(), SpawnError> {
        ex.shm_box(&self.raw)?;
        // The action, a plain function, crosses like a target: by its offset.
        ex.put(&self.action.map(|f| offset_of(f as usize)))?;
        ex.put(&self.default_timeout)
    }
    fn import(im: &mut Importer) -> Result<Self, SpawnError> {
        let raw = im.shm_box()?;
        let action = match im.take::<Option<i64>>()? {
            None => None,
            Some(off) => {
                let addr = anchor_addr().wrapping_add(off as usize);
                if !in_exe_code(addr, ExeId::current()?.ino) {
                    return Err(SpawnError::BadRequest(
                        "barrier action outside the binary's code",
                    ));
                }
                // SAFETY: the parent took this offset from a `fn()` of this
                // binary (the child checked it runs the same file) and the
                // address lies in the binary's code.
                Some(unsafe { core::mem::transmute::<usize, fn()>(addr) })
            }
        };
        let default_timeout = im.take::<Option<core::time::Duration>>()?;
        Ok(Barrier {
            raw,
            action,
            default_timeout,
        })
    }
}

impl SpawnArg for AnyLock {
    fn export(&self, ex: &mut Exporter) -> Result<(), SpawnError> {
        match self {
            AnyLock::Lock(l) => {
                ex.put(&0u8)?;
                l.export(ex)
            }
            AnyLock::RLock(l) => {
                ex.put(&1u8)?;
                l.export(ex)
            }
        }
    }
    fn import(im: &mut Importer) -> Result<Self, SpawnError> {
        match im.take::<u8>()? {
            0 => Ok(AnyLock::Lock(Lock::import(im)?)),
            1 => Ok(AnyLock::RLock(RLock::import(im)?)),
            _ => Err(SpawnError::BadRequest("unknown lock kind")),
        }
    }
}

impl<T: Pod + Send> SpawnArg for RawValue<T> {
    fn export(&self, ex: &mut Exporter) -> Result<(), SpawnError> {
        ex.shm_box(&self.cell)
    }
    fn import(im: &mut Importer) -> Result<Self, SpawnError> {
        Ok(RawValue {
            cell: im.shm_box()?,
        })
    }
}

impl<T: Pod + Send> SpawnArg for Value<T> {
    fn export(&self, ex: &mut Exporter) -> Result<(), SpawnError> {
        self.raw.export(ex)?;
        self.lock.export(ex)
    }
    fn import(im: &mut Importer) -> Result<Self, SpawnError> {
        Ok(Value {
            raw: RawValue::import(im)?,
            lock: crate::data::value::data_lock(AnyLock::import(im)?).ok_or(
                SpawnError::BadRequest("the lock of a Value or Array is not an RLock"),
            )?,
            guard_owner: GuardOwner::default(),
        })
    }
}

impl<T: Pod + Send> SpawnArg for RawArray<T> {
    fn export(&self, ex: &mut Exporter) -> Result<(), SpawnError> {
        ex.shm_slice(&self.cells)
    }
    fn import(im: &mut Importer) -> Result<Self, SpawnError> {
        Ok(RawArray {
            cells: im.shm_slice()?,
        })
    }
}

impl<T: Pod + Send> SpawnArg for Array<T> {
    fn export(&self, ex: &mut Exporter) -> Result<(), SpawnError> {
        self.raw.export(ex)?;
        self.lock.export(ex)
    }
    fn import(im: &mut Importer) -> Result<Self, SpawnError> {
        Ok(Array {
            raw: RawArray::import(im)?,
            lock: crate::data::value::data_lock(AnyLock::import(im)?).ok_or(
                SpawnError::BadRequest("the lock of a Value or Array is not an RLock"),
            )?,
            guard_owner: GuardOwner::default(),
        })
    }
}

impl SpawnArg for RawQueue {
    fn export(&self, ex: &mut Exporter) -> Result<(), SpawnError> {
        let (hdr, slots, limit) = self.parts();
        ex.shm_box(hdr)?;
        ex.shm_slice(slots)?;
        ex.put(&(limit as u64))
    }
    fn import(im: &mut Importer) -> Result<Self, SpawnError> {
        let hdr = im.shm_box()?;
        let slots = im.shm_slice()?;
        let limit = usize::try_from(im.take::<u64>()?).unwrap_or(usize::MAX);
        RawQueue::from_parts(hdr, slots, limit).ok_or(SpawnError::BadRequest(
            "queue ring header disagrees with its chunks",
        ))
    }
}

impl<T> SpawnArg for Queue<T> {
    fn export(&self, ex: &mut Exporter) -> Result<(), SpawnError> {
        self.raw().export(ex)
    }
    fn import(im: &mut Importer) -> Result<Self, SpawnError> {
        Ok(RawQueue::import(im)?.typed())
    }
}

impl<T: Pod + Send + Sync> SpawnArg for PodQueue<T> {
    fn export(&self, ex: &mut Exporter) -> Result<(), SpawnError> {
        let (hdr, slots) = self.parts();
        ex.shm_box(hdr)?;
        ex.shm_slice(slots)
    }
    fn import(im: &mut Importer) -> Result<Self, SpawnError> {
        let hdr = im.shm_box()?;
        let slots = im.shm_slice()?;
        PodQueue::from_parts(hdr, slots).ok_or(SpawnError::BadRequest(
            "pod queue header disagrees with its slots",
        ))
    }
}

impl<T> SpawnArg for SimpleQueue<T> {
    fn export(&self, ex: &mut Exporter) -> Result<(), SpawnError> {
        self.q.export(ex)
    }
    fn import(im: &mut Importer) -> Result<Self, SpawnError> {
        Ok(SimpleQueue {
            q: Queue::import(im)?,
        })
    }
}

impl<T> SpawnArg for JoinableQueue<T> {
    fn export(&self, ex: &mut Exporter) -> Result<(), SpawnError> {
        self.q.export(ex)?;
        ex.shm_box(&self.unfinished)
    }
    fn import(im: &mut Importer) -> Result<Self, SpawnError> {
        Ok(JoinableQueue {
            q: Queue::import(im)?,
            unfinished: im.shm_box()?,
        })
    }
}

// ---------------------------------------------------------------------------
// Targets: a function and its arguments.

/// The anchor function offsets are measured from.
#[inline(never)]
pub(super) extern "C" fn anchor() {}

pub(super) fn anchor_addr() -> usize {
    anchor as *const () as usize
}

pub(super) fn offset_of(addr: usize) -> i64 {
    addr.wrapping_sub(anchor_addr()) as i64
}

pub(super) type Trampoline = fn(&mut Importer, usize) -> Result<Box<dyn FnOnce()>, SpawnError>;

pub(super) fn trampoline<A: SpawnArgs>(
    im: &mut Importer,
    f: usize,
) -> Result<Box<dyn FnOnce()>, SpawnError> {
    let args = A::import_all(im)
        .and_then(|a| im.finish().map(|()| a))
        .map_err(|e| match e {
            SpawnError::Decode { what, source } => SpawnError::Decode {
                what: format!("{what}, arguments {}", core::any::type_name::<A>()),
                source,
            },
            e => e,
        })?;
    // SAFETY: `f` is the address of a `fn(A)` of this binary: the parent took
    // it from a `fn(A)` and paired it with this very trampoline::<A>; the child
    // checked that it runs the same file and that `f` lies in its code.
    let f = unsafe { core::mem::transmute::<usize, fn(A)>(f) };
    Ok(Box::new(move || f(args)))
}

/// A function target (what `Process::with_target` stores).
pub(crate) trait FnTarget: Send {
    /// Runs it here (fork start method).
    fn run(self: Box<Self>);
    /// Encodes the arguments.
    fn export(&self, ex: &mut Exporter) -> Result<(), SpawnError>;
    /// (trampoline offset, function offset).
    fn offsets(&self) -> (i64, i64);
}

pub(crate) struct FnCall<A> {
    pub(crate) f: fn(A),
    pub(crate) args: A,
}

impl<A: SpawnArgs> FnTarget for FnCall<A> {
    fn run(self: Box<Self>) {
        (self.f)(self.args)
    }
    fn export(&self, ex: &mut Exporter) -> Result<(), SpawnError> {
        self.args.export_all(ex)
    }
    fn offsets(&self) -> (i64, i64) {
        let t: Trampoline = trampoline::<A>;
        (offset_of(t as usize), offset_of(self.f as usize))
    }
}

/// The offset of the function at `addr` against this binary's anchor: the
/// same in every process running this executable (see the module docs).
/// Used by the pool to name its task functions in any start method.
pub(crate) fn fn_offset(addr: usize) -> i64 {
    offset_of(addr)
}

/// The address, in this process, of the function at offset `off` (taken by
/// [`fn_offset`] in a process running the same executable). No check: for a
/// peer that is trusted (the pool's private socketpair). See
/// [`checked_fn_at`].
pub(crate) fn fn_at(off: i64) -> usize {
    anchor_addr().wrapping_add(off as usize)
}

/// [`fn_at`], checked to lie in this binary's code.
pub(crate) fn checked_fn_at(off: i64) -> Result<usize, SpawnError> {
    let addr = fn_at(off);
    if !in_exe_code(addr, ExeId::current()?.ino) {
        return Err(SpawnError::BadRequest(
            "a function outside the binary's code",
        ));
    }
    Ok(addr)
}
