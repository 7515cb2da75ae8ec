//! The manager's connections read a frame that arrived whole with one `read`
//! system call (not the header and then the payload), and frames that
//! arrived together (pipelined requests) with one `read` for all: the
//! reader both sides of a manager connection use (`wire::FrameBuf`), over a
//! real unix socket pair, its `read` calls counted.

use procshare::internals::wire::{self, FrameBuf, WireError};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

/// A real socket whose `read` calls are counted.
struct Counted {
    s: UnixStream,
    reads: usize,
}

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.reads += 1;
        self.s.read(buf)
    }
}

#[test]
fn a_whole_frame_is_one_read_and_pipelined_frames_share_one() {
    let (mut a, b) = UnixStream::pair().unwrap();
    let mut r = Counted { s: b, reads: 0 };
    let mut fb = FrameBuf::new();
    let mut out = Vec::new();
    // Request/answer: each frame written with one write, read with one read.
    for i in 0..100u64 {
        wire::encode_frame_into(&(i, vec![7u8; 20]), &mut out).unwrap();
        a.write_all(&out).unwrap();
        let p = fb.read_frame(&mut r, 1 << 20).unwrap();
        assert_eq!(
            wire::decode::<(u64, Vec<u8>)>(p).unwrap(),
            (i, vec![7u8; 20])
        );
        assert!(fb.is_empty());
    }
    assert_eq!(r.reads, 100, "one read per frame");
    // 64 frames written together: one read brings them all.
    let mut all = Vec::new();
    for i in 0..64u64 {
        wire::write_frame(&mut all, &i).unwrap();
    }
    a.write_all(&all).unwrap();
    for i in 0..64u64 {
        let p = fb.read_frame(&mut r, 1 << 20).unwrap();
        assert_eq!(wire::decode::<u64>(p).unwrap(), i);
    }
    assert_eq!(r.reads, 101, "one read for 64 pipelined frames");
    // A frame larger than the reader's room still comes whole; the end of
    // the stream inside a frame is an error, at a boundary a clean close.
    wire::encode_frame_into(&vec![1u8; 100_000], &mut out).unwrap();
    a.write_all(&out).unwrap();
    a.write_all(&out[..10]).unwrap();
    drop(a);
    let p = fb.read_frame(&mut r, 1 << 20).unwrap();
    assert_eq!(wire::decode::<Vec<u8>>(p).unwrap(), vec![1u8; 100_000]);
    assert!(matches!(
        fb.read_frame(&mut r, 1 << 20),
        Err(WireError::Truncated { got: 6, .. })
    ));
    let (mut a, b) = UnixStream::pair().unwrap();
    let mut r = Counted { s: b, reads: 0 };
    wire::write_frame(&mut a, &1u8).unwrap();
    drop(a);
    let mut fb = FrameBuf::new();
    assert_eq!(fb.read_frame(&mut r, 8).unwrap(), [1]);
    assert!(matches!(fb.read_frame(&mut r, 8), Err(WireError::Closed)));
}
