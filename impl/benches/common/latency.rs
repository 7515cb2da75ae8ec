//! Round-trip latency between two processes (an echo child and this process)
//! through two `Queue`s, a duplex `Pipe` and the manager (`ping`), beside a
//! unix-socket ping-pong and crossbeam between two threads. With `gap`, this
//! process sleeps that long before each round trip, so that the echo side has
//! stopped spinning and sleeps in the kernel: the round trip then includes a
//! wake-up (futex, or the socket's wait queue).

use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use procshare::internals::wire;
use procshare::{Manager, Pipe, Process, Queue};

/// The median of `n` timed calls of `trip(i)`, each after `gap` (if any).
fn timed(n: u64, gap: Option<Duration>, mut trip: impl FnMut(u64)) -> Duration {
    let mut ts = Vec::with_capacity(n as usize);
    for i in 0..n {
        if let Some(g) = gap {
            std::thread::sleep(g);
        }
        let t = Instant::now();
        trip(i);
        ts.push(t.elapsed());
    }
    super::median(&ts)
}

/// Through two `Queue<u64>`s: put on one, the child echoes onto the other.
pub(crate) fn queues(n: u64, gap: Option<Duration>) -> Duration {
    let (a, b) = (Queue::<u64>::new().unwrap(), Queue::<u64>::new().unwrap());
    let mut p = Process::new({
        let (a, b) = (a.clone(), b.clone());
        move || loop {
            let x = a.get().unwrap();
            if x == u64::MAX {
                return;
            }
            b.put(&x).unwrap();
        }
    });
    p.start().unwrap();
    let d = timed(n, gap, |i| {
        a.put(&i).unwrap();
        assert_eq!(b.get().unwrap(), i);
    });
    a.put(&u64::MAX).unwrap();
    p.join().unwrap();
    d
}

/// Through a duplex `Pipe` (`Connection<u64>`).
pub(crate) fn pipe(n: u64, gap: Option<Duration>) -> Duration {
    let (c, d) = Pipe::<u64>::new(true).unwrap();
    let mut p = Process::new(move || loop {
        let x = d.recv().unwrap();
        if x == u64::MAX {
            return;
        }
        d.send(&x).unwrap();
    });
    p.start().unwrap();
    let r = timed(n, gap, |i| {
        c.send(&i).unwrap();
        assert_eq!(c.recv().unwrap(), i);
    });
    c.send(&u64::MAX).unwrap();
    p.join().unwrap();
    r
}

/// A manager `ping` (request and reply through the server process).
pub(crate) fn manager(n: u64, gap: Option<Duration>) -> Duration {
    let m = Manager::start().unwrap();
    m.ping().unwrap();
    timed(n, gap, |_| m.ping().unwrap())
}

/// The reference: an 8-byte frame over a unix stream socket to an echo child.
pub(crate) fn unix(n: u64, gap: Option<Duration>) -> Duration {
    let (mut a, b) = UnixStream::pair().unwrap();
    let mut e = super::manager::echo(b);
    let d = timed(n, gap, |i| {
        wire::write_frame_bytes(&mut a, &i.to_le_bytes()).unwrap();
        wire::read_frame_bytes(&mut a, 64).unwrap();
    });
    wire::write_frame_bytes(&mut a, &[]).unwrap();
    e.join().unwrap();
    d
}

/// The in-process reference: two `crossbeam_channel::bounded(1)` between two threads.
pub(crate) fn crossbeam(n: u64, gap: Option<Duration>) -> Duration {
    let (s1, r1) = crossbeam_channel::bounded::<u64>(1);
    let (s2, r2) = crossbeam_channel::bounded::<u64>(1);
    let h = std::thread::spawn(move || {
        while let Ok(x) = r1.recv() {
            s2.send(x).unwrap();
        }
    });
    let d = timed(n, gap, |i| {
        s1.send(i).unwrap();
        assert_eq!(r2.recv().unwrap(), i);
    });
    drop(s1);
    h.join().unwrap();
    d
}
