//! Manager throughput beside its transport's limit: echo pairs over unix
//! stream sockets (the manager's framing), and processes calling a managed list.

use std::os::unix::net::UnixStream;
use std::time::Instant;

use procshare::internals::wire;
use procshare::{Manager, Process};

/// A child process echoing the frames it reads on `b` until an empty frame
/// (other processes hold copies of the client's end, so end-of-stream would
/// never come).
pub(crate) fn echo(b: UnixStream) -> Process {
    let mut echo = Process::new(move || {
        let mut b = b;
        while let Ok(p) = wire::read_frame_bytes(&mut b, 64) {
            if p.is_empty() || wire::write_frame_bytes(&mut b, &p).is_err() {
                break;
            }
        }
    });
    echo.start().unwrap();
    echo
}

/// Round trips/s of `pairs` concurrent client/echo process pairs over unix
/// stream sockets, 8-byte payloads, `rounds` round trips per pair.
pub(crate) fn ping_pong(pairs: usize, rounds: usize) -> f64 {
    let mut echoes = Vec::new();
    let mut clients = Vec::new();
    for _ in 0..pairs {
        let (a, b) = UnixStream::pair().unwrap();
        echoes.push(echo(b));
        clients.push(a);
    }
    let go = Manager::start().unwrap();
    let ev = go.event().unwrap();
    let mut procs: Vec<Process> = clients
        .into_iter()
        .map(|mut a| {
            let ev = ev.clone();
            let mut p = Process::new(move || {
                ev.wait().unwrap();
                for i in 0..rounds as u64 {
                    wire::write_frame_bytes(&mut a, &i.to_le_bytes()).unwrap();
                    wire::read_frame_bytes(&mut a, 64).unwrap();
                }
                wire::write_frame_bytes(&mut a, &[]).unwrap();
            });
            p.start().unwrap();
            p
        })
        .collect();
    let t = Instant::now();
    ev.set().unwrap();
    for p in &mut procs {
        assert_eq!(p.join().unwrap(), 0);
    }
    let dt = t.elapsed().as_secs_f64();
    for e in &mut echoes {
        e.join().unwrap();
    }
    (pairs * rounds) as f64 / dt
}

/// What each client process does in [`managed`].
#[derive(Clone, Copy)]
pub(crate) enum Mode {
    /// `ping`, one at a time.
    Ping,
    /// `append`, one at a time.
    Append,
    /// `extend` in batches of this many.
    Extend(usize),
    /// `append_pipelined` (windows of 64).
    Pipelined,
}

/// Ops/s of `procs` processes doing `per` operations each on one managed list.
pub(crate) fn managed(procs: usize, per: usize, mode: Mode) -> f64 {
    let m = Manager::start().unwrap();
    let l = m.list::<u64>().unwrap();
    let go = m.event().unwrap();
    let ready = m.queue::<u8>(None).unwrap();
    let mut ps: Vec<Process> = (0..procs)
        .map(|w| {
            let (l, go, ready, m_addr, key) = (
                l.clone(),
                go.clone(),
                ready.clone(),
                m.address().clone(),
                m.authkey().clone(),
            );
            let mut p = Process::new(move || {
                let pinger = Manager::connect(m_addr, key).unwrap();
                // Warm the connection before the clock starts.
                l.len().unwrap();
                ready.put(0).unwrap();
                go.wait().unwrap();
                let base = (w as u64) << 32;
                match mode {
                    Mode::Ping => (0..per).for_each(|_| pinger.ping().unwrap()),
                    Mode::Append => (0..per as u64).for_each(|i| l.append(base + i).unwrap()),
                    Mode::Extend(b) => {
                        for c in (0..per as u64).collect::<Vec<_>>().chunks(b) {
                            l.extend(c.iter().map(|i| base + i)).unwrap();
                        }
                    }
                    Mode::Pipelined => l
                        .append_pipelined((0..per as u64).map(|i| base + i))
                        .unwrap(),
                }
                std::mem::forget(pinger);
            });
            p.start().unwrap();
            p
        })
        .collect();
    for _ in 0..procs {
        ready.get().unwrap();
    }
    let t = Instant::now();
    go.set().unwrap();
    for p in &mut ps {
        assert_eq!(p.join().unwrap(), 0);
    }
    let dt = t.elapsed().as_secs_f64();
    if !matches!(mode, Mode::Ping) {
        assert_eq!(l.len().unwrap(), procs * per);
    }
    (procs * per) as f64 / dt
}
