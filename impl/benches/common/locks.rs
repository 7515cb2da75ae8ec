//! Lock throughput: two processes incrementing one counter under a lock —
//! procshare's `Value<i64>`, glibc's robust process-shared `pthread_mutex_t`
//! in a shared mapping — beside `std::sync::Mutex` between two threads.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use procshare::internals::ShmBox;
use procshare::{Process, Value};

/// Increments/s of two threads doing `n` increments each of a `Mutex<i64>`.
pub(crate) fn std_mutex(n: u64) -> f64 {
    let m = Arc::new(Mutex::new(0i64));
    let t0 = Instant::now();
    let hs: Vec<_> = (0..2)
        .map(|_| {
            let m = m.clone();
            std::thread::spawn(move || {
                for _ in 0..n {
                    *m.lock().unwrap() += 1;
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    let dt = t0.elapsed();
    assert_eq!(*m.lock().unwrap(), 2 * n as i64);
    (2 * n) as f64 / dt.as_secs_f64()
}

/// Increments/s of two child processes each running `work` (which does `n`
/// increments), timed from a common start line: both children check in, then
/// spin until this process says go, so that the timed part has both working.
fn two_processes(n: u64, work: impl Fn() + Clone + Send + 'static) -> f64 {
    let ready = ShmBox::new(AtomicU32::new(0)).unwrap();
    let go = ShmBox::new(AtomicU32::new(0)).unwrap();
    let mut ps: Vec<_> = (0..2)
        .map(|_| {
            let (work, go, ready) = (work.clone(), go.clone(), ready.clone());
            Process::new(move || {
                ready.fetch_add(1, Ordering::AcqRel);
                while go.load(Ordering::Acquire) == 0 {
                    std::hint::spin_loop();
                }
                work();
            })
        })
        .collect();
    for p in &mut ps {
        p.start().unwrap();
    }
    while ready.load(Ordering::Acquire) < 2 {
        std::thread::yield_now();
    }
    let t0 = Instant::now();
    go.store(1, Ordering::Release);
    for p in &mut ps {
        assert_eq!(p.join().unwrap(), 0);
    }
    (2 * n) as f64 / t0.elapsed().as_secs_f64()
}

/// Increments/s of two processes doing `n` increments each of `make()`'s
/// `Value<i64>` under its lock.
pub(crate) fn value(n: u64, make: impl Fn() -> Value<i64>) -> f64 {
    let v = make();
    let r = two_processes(n, {
        let v = v.clone();
        move || {
            for _ in 0..n {
                *v.lock().unwrap() += 1;
            }
        }
    });
    assert_eq!(v.get(), 2 * n as i64);
    r
}

/// A robust, process-shared glibc mutex and the counter it guards, in an
/// anonymous shared mapping.
#[repr(C)]
struct Robust {
    m: libc::pthread_mutex_t,
    count: i64,
}

/// The mapping's address, passed to the children (a raw pointer is not `Send`).
#[derive(Clone, Copy)]
struct Addr(usize);

impl Addr {
    fn get(self) -> *mut Robust {
        self.0 as *mut Robust
    }
}

/// Increments/s of two processes doing `n` increments each of a counter
/// under glibc's robust process-shared `pthread_mutex_t` (what C programs use
/// to survive an owner's death), via the libc crate.
pub(crate) fn robust_pthread(n: u64) -> f64 {
    let size = std::mem::size_of::<Robust>();
    // SAFETY: a fresh anonymous shared mapping; checked below.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED);
    let r = p.cast::<Robust>();
    // SAFETY: `r` points at `size` writable bytes, zeroed by mmap; the
    // attribute object lives on this stack frame until destroyed.
    unsafe {
        let mut a: libc::pthread_mutexattr_t = std::mem::zeroed();
        assert_eq!(libc::pthread_mutexattr_init(&mut a), 0);
        assert_eq!(
            libc::pthread_mutexattr_setpshared(&mut a, libc::PTHREAD_PROCESS_SHARED),
            0
        );
        assert_eq!(
            libc::pthread_mutexattr_setrobust(&mut a, libc::PTHREAD_MUTEX_ROBUST),
            0
        );
        assert_eq!(libc::pthread_mutex_init(&mut (*r).m, &a), 0);
        libc::pthread_mutexattr_destroy(&mut a);
    }
    let addr = Addr(r as usize);
    let rate = two_processes(n, move || {
        let r = addr.get();
        for _ in 0..n {
            // SAFETY: the mapping is shared with this child and outlives it;
            // the counter is touched only under the initialized mutex.
            unsafe {
                let e = libc::pthread_mutex_lock(&mut (*r).m);
                assert!(e == 0 || e == libc::EOWNERDEAD);
                (*r).count += 1;
                libc::pthread_mutex_unlock(&mut (*r).m);
            }
        }
    });
    // SAFETY: both children have exited; the mapping is ours to read and unmap.
    unsafe {
        assert_eq!((*r).count, 2 * n as i64);
        libc::pthread_mutex_destroy(&mut (*r).m);
        libc::munmap(p, size);
    }
    rate
}
