//! The one bottom layer for the operating system: every system call procshare
//! makes is a small typed function of this module (and its submodules).
//!
//! The binding is [`rustix`] (typed, `io::Result`, no `errno` juggling). Only
//! what rustix does not offer goes through `libc`, each at one place with a
//! `SAFETY` comment and the reason:
//!
//! | call | why not rustix |
//! |---|---|
//! | `fork` | rustix's `kernel_fork` skips glibc's own `fork` bookkeeping (malloc arena locks, stdio locks, `pthread_atfork` handlers): unusable in a process that has a libc |
//! | `pthread_atfork` | a libc facility, not a system call |
//! | `_exit` | rustix's `exit_group` lives in its experimental `runtime` module, documented as not for processes with a libc |
//! | `sysconf(_SC_NPROCESSORS_ONLN)` | a libc computation (it reads `/sys`), what Python's `cpu_count` reports |
//! | `signal(SIGPIPE/SIGINT, SIG_IGN)` | rustix's `kernel_sigaction` is in the `runtime` module too |
//! | `close_range` | no rustix API; a raw `syscall` (libc's wrapper needs glibc 2.34) |
//! | `close` of inherited descriptor numbers (`io::close_inherited`) | rustix's `close` asserts success in debug builds; a number that is not open must be skipped there (it runs in the fork child handler, where a panic aborts) |
//!
//! Outside this module no code names `libc`, `rustix` or `nix`, and the
//! `unsafe` that system calls need lives here (shared-memory pointer `unsafe`
//! stays with the shared-memory code).
//!
//! All of it is crate-internal: none of these functions is public API.
//!
//! Submodules:
//! * [`fork`]: the one `fork` of the crate, with the registry of what a child
//!   resets, and the "forking a multi-threaded process" warning;
//! * [`proc`]: processes: wait status, signals, pidfds, exit, `/proc` reads;
//! * [`io`]: descriptors: poll, eventfd, sockets, `SCM_RIGHTS`, memfd, mappings;
//! * [`thread`]: futexes, thread ids, the library's own helper threads;
//! * [`deathwatch`]: owner-death notification (pidfds, `epoll`, one helper thread).

pub(crate) mod deathwatch;
pub(crate) mod fork;
#[cfg(test)]
pub(crate) mod interrupt;
pub(crate) mod io;
pub(crate) mod mem;
pub(crate) mod posix_shm;
pub(crate) mod proc;
pub(crate) mod process_extra;
pub(crate) mod thread;

/// Fills `buf` from the kernel's random source (`getrandom(2)`, blocking until
/// the pool is initialized). An error means no random bytes: callers must not
/// invent a substitute.
pub(crate) fn getrandom(buf: &mut [u8]) -> std::io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        match rustix::rand::getrandom(&mut buf[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(0) => return Err(std::io::Error::other("getrandom returned no bytes")),
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Writes all of `bytes` to stderr with raw `write(2)` calls: no lock, no
/// allocation. For a forked child's panic report, which must not take std's
/// stderr lock (a thread of the parent may have held it at the fork).
pub(crate) fn write_stderr_raw(mut bytes: &[u8]) {
    // SAFETY: fd 2 is not owned by any Rust object here that could close it
    // during the write; the borrowed descriptor lives only for the calls below.
    let fd = unsafe { rustix::fd::BorrowedFd::borrow_raw(2) };
    while !bytes.is_empty() {
        match rustix::io::write(fd, bytes) {
            Ok(0) => break,
            Ok(n) => bytes = &bytes[n..],
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => break,
        }
    }
}

/// A memory fence. `SeqCst` on x86-64 is a locked no-op on the stack
/// (`lock or $0, (%rsp)`, the Linux kernel's `smp_mb()`), which orders every
/// earlier load and store before every later one as `mfence` does for
/// ordinary (write-back) memory, at about half its cost; every other
/// ordering, and every other target, is `core::sync::atomic::fence`.
#[inline(always)]
pub(crate) fn fence(o: core::sync::atomic::Ordering) {
    #[cfg(target_arch = "x86_64")]
    if o == core::sync::atomic::Ordering::SeqCst {
        // SAFETY: a locked OR of 0 into the word at the stack pointer: it
        // reads and writes back the same value in memory this thread owns
        // (the top of its own stack, which is mapped), changes no register
        // but the flags, and is a full barrier; without `nomem` the compiler
        // also treats it as one.
        unsafe {
            core::arch::asm!("lock or dword ptr [rsp], 0", options(nostack));
        }
        return;
    }
    core::sync::atomic::fence(o)
}

/// Ask for the cache line of `p` in a state this core may write (x86-64's
/// `prefetchw`: the line is fetched and taken from other cores' caches
/// now, so that stores into it later commit without waiting for it). A
/// hint: no effect on any value, never a fault (an address that is not
/// mapped is ignored); elsewhere (and under Miri), nothing.
#[inline(always)]
pub(crate) fn prefetch_write(p: *const u8) {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    // SAFETY: `prefetchw` neither reads nor writes memory as far as the program can
    // tell (it only moves a cache line), does not fault on any address, and
    // changes no register or flag; CPUs without it (before Broadwell) execute
    // it as a no-op.
    unsafe {
        core::arch::asm!("prefetchw [{}]", in(reg) p, options(nostack, preserves_flags, readonly));
    }
    #[cfg(not(all(target_arch = "x86_64", not(miri))))]
    let _ = p;
}

/// A `SeqCst` fence right after a read-modify-write of this thread (see
/// `Platform::fence_after_rmw`): on x86-64 the locked instruction was the
/// barrier (loads are not reordered with locked instructions: Intel SDM
/// vol. 3, "Memory Ordering in P6 and More Recent Processor Families"), so
/// only the compiler is kept from moving accesses across
/// this point; elsewhere, [`fence`].
#[inline(always)]
pub(crate) fn fence_after_rmw() {
    #[cfg(target_arch = "x86_64")]
    {
        core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
    }
    #[cfg(not(target_arch = "x86_64"))]
    fence(core::sync::atomic::Ordering::SeqCst);
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{
        AtomicU32,
        Ordering::{AcqRel, Acquire, Relaxed, Release, SeqCst},
    };

    #[repr(align(64))]
    #[derive(Default)]
    struct Line(AtomicU32);

    #[derive(Default)]
    struct Litmus {
        x: Line,
        y: Line,
        /// A word thread A swaps (its read-modify-write).
        l: Line,
        /// Arrivals at the start of each round (2 per round).
        arrived: Line,
        /// Rounds thread B finished (its load of `x` done).
        b_done: Line,
        r2: Line,
    }

    /// Arrive at round `i`'s start and wait for the other thread (a spin on
    /// a shared counter: both leave within a cache-line transfer).
    fn meet(s: &Litmus, i: u32) {
        s.arrived.0.fetch_add(1, AcqRel);
        while s.arrived.0.load(Acquire) < 2 * (i + 1) {
            core::hint::spin_loop();
        }
    }
    /// A few `pause`s, varied per round and per side so that the two
    /// threads' stores meet at many alignments.
    fn skew(k: u32) {
        for _ in 0..k % 32 {
            core::hint::spin_loop();
        }
    }

    /// The store-buffering litmus test, `rounds` times between two threads:
    /// A stores `x = 1`, runs `a_barrier`, loads `y`; B stores `y = 1`,
    /// `fence(SeqCst)`, loads `x`. Both loads seeing 0 is forbidden when both
    /// barriers are full barriers; returns how many rounds saw it.
    fn store_buffering(rounds: u32, a_barrier: fn(&AtomicU32)) -> u32 {
        let s = Litmus::default();
        std::thread::scope(|sc| {
            sc.spawn(|| {
                for i in 0..rounds {
                    meet(&s, i);
                    skew(i.wrapping_mul(7));
                    s.y.0.store(1, Relaxed);
                    super::fence(SeqCst);
                    s.r2.0.store(s.x.0.load(Relaxed), Relaxed);
                    s.b_done.0.store(i + 1, Release);
                }
            });
            let mut seen = 0;
            for i in 0..rounds {
                meet(&s, i);
                skew(i);
                s.x.0.store(1, Relaxed);
                a_barrier(&s.l.0);
                let r1 = s.y.0.load(Relaxed);
                while s.b_done.0.load(Acquire) != i + 1 {
                    core::hint::spin_loop();
                }
                seen += u32::from(r1 == 0 && s.r2.0.load(Relaxed) == 0);
                s.x.0.store(0, Relaxed);
                s.y.0.store(0, Relaxed);
            }
            seen
        })
    }

    /// What the slot queue's notifier relies on (`Platform::fence_after_rmw`):
    /// a swap followed by `fence_after_rmw` is a full barrier, as
    /// `fence(SeqCst)` is. With a plain store in place of the swap the
    /// forbidden outcome shows up here (the store waits in the store buffer
    /// while the load runs ahead): see `fence_after_rmw`'s docs.
    #[test]
    fn a_swap_then_fence_after_rmw_is_a_full_barrier() {
        let swap = store_buffering(200_000, |l| {
            l.swap(0, Release);
            super::fence_after_rmw();
        });
        let fence = store_buffering(200_000, |_| super::fence(SeqCst));
        assert_eq!(
            (swap, fence),
            (0, 0),
            "store buffering seen (swap + fence_after_rmw, fence(SeqCst))"
        );
    }
}
