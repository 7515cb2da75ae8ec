//! Pipe over real processes: duplex and one-way, poll and timeouts, a dead
//! peer is end-of-file (never a hang), bad frames are errors.

use procshare_tests::quiet;
use std::time::Duration;

use procshare::PipeError;
use procshare::{Pipe, Process};

#[test]
fn duplex_round_trip_between_processes() {
    quiet();
    let (a, b) = Pipe::<Vec<u32>>::new(true).unwrap();
    // (The child inherits a copy of `a` too, as in Python, so it cannot wait
    // for end-of-file on `b`: it serves a known number of requests.)
    let mut p = Process::new(move || {
        for _ in 0..20 {
            let v = b.recv().unwrap();
            let doubled: Vec<u32> = v.iter().map(|x| x * 2).collect();
            b.send(&doubled).unwrap();
        }
    });
    p.start().unwrap();
    for n in 0..20u32 {
        a.send(&(0..n).collect()).unwrap();
        assert_eq!(a.recv().unwrap(), (0..n).map(|x| x * 2).collect::<Vec<_>>());
    }
    assert_eq!(p.join_timeout(Duration::from_secs(30)).unwrap(), Some(0));
}

#[test]
fn one_way_ends_refuse_the_other_direction() {
    let (r, w) = Pipe::<u8>::new(false).unwrap();
    assert!(matches!(r.send(&1), Err(PipeError::WrongDirection(_))));
    assert!(matches!(w.recv(), Err(PipeError::WrongDirection(_))));
    assert!(!r.poll(Some(Duration::ZERO)).unwrap());
    assert!(matches!(
        r.recv_timeout(Duration::from_millis(5)),
        Err(PipeError::Timeout)
    ));
    w.send(&9).unwrap();
    assert!(r.poll(None).unwrap());
    assert_eq!(r.recv().unwrap(), 9);
}

#[test]
fn a_killed_peer_is_end_of_file_not_a_hang() {
    quiet();
    let (a, b) = Pipe::<u64>::new(true).unwrap();
    let mut p = Process::new(move || {
        b.send(&1).unwrap();
        loop {
            std::thread::park(); // wait to be killed
        }
    });
    p.start().unwrap();
    assert_eq!(a.recv().unwrap(), 1);
    p.kill().unwrap();
    assert_eq!(p.join().unwrap(), -9);
    // The parent still holds its copy of `b`'s socket only if it kept one: it
    // moved `b` into the closure, dropped after start.
    assert!(matches!(a.recv(), Err(PipeError::Closed)));
    assert!(matches!(a.send(&2), Err(PipeError::Closed)));
}

#[test]
fn corrupt_and_truncated_frames_are_errors() {
    let (a, b) = Pipe::<(u32, bool)>::new(true).unwrap();
    a.send_bytes(&[1, 7], 0, None).unwrap(); // bool 7: corrupt
    assert!(matches!(b.recv(), Err(PipeError::Wire(_))));
    a.send_bytes(&[1, 2, 3], 0, None).unwrap(); // trailing bytes
    assert!(matches!(b.recv(), Err(PipeError::Wire(_))));
    a.send(&(3, true)).unwrap(); // still in sync
    assert_eq!(b.recv().unwrap(), (3, true));
    a.send_unframed(&[100, 0, 0, 0, 1, 2]).unwrap(); // 100 bytes announced, 2 sent
    drop(a);
    assert!(matches!(b.recv(), Err(PipeError::Wire(_))));
}
