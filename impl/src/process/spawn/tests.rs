//! Unit tests of the spawn plumbing.

use super::*;

fn memfd_with(bytes: &[u8]) -> OwnedFd {
    let seg = Segment::create(4096).unwrap();
    let fd = seg.fd().unwrap().try_clone_to_owned().unwrap();
    let f = std::fs::File::from(fd);
    f.set_len(0).unwrap();
    f.write_all_at(bytes, 0).unwrap();
    f.into()
}

fn payload(exe: ExeId, trampoline: i64, function: i64) -> Vec<u8> {
    payload_with(exe, trampoline, function, Vec::new())
}

fn payload_with(exe: ExeId, trampoline: i64, function: i64, managers: Vec<u8>) -> Vec<u8> {
    postcard::to_stdvec(&Payload {
        magic: PAYLOAD_MAGIC,
        exe,
        trampoline,
        function,
        args: Vec::new(),
        fds: 0,
        info: crate::process::me::ChildInfo::for_child("t", false, crate::StartMethod::Spawn),
        managers,
    })
    .unwrap()
}

#[test]
fn a_malformed_manager_list_is_a_decode_error() {
    let (t, f) = offsets();
    let p = payload_with(ExeId::current().unwrap(), t, f, vec![0xff; 7]);
    let r = prepare(memfd_with(&p), Vec::new());
    match r {
        Err(e @ SpawnError::Decode { .. }) => {
            assert!(
                e.to_string().contains("managers of the proxy arguments"),
                "{e}"
            )
        }
        other => panic!("{:?}", other.err()),
    }
}

fn unit((): ()) {}

fn offsets() -> (i64, i64) {
    FnCall { f: unit, args: () }.offsets()
}

#[test]
fn garbage_payload_is_an_error() {
    let r = prepare(memfd_with(b"not a payload"), Vec::new());
    assert!(matches!(r, Err(SpawnError::BadRequest(_))), "{:?}", r.err());
    let mut p = payload(ExeId::current().unwrap(), 0, 0);
    p[0] ^= 1; // the magic
    let r = prepare(memfd_with(&p), Vec::new());
    assert!(matches!(r, Err(SpawnError::BadRequest(_))));
}

#[test]
fn another_binary_is_refused() {
    let mut exe = ExeId::current().unwrap();
    exe.mtime_nsec += 1; // rebuilt in place
    let (t, f) = offsets();
    let r = prepare(memfd_with(&payload(exe, t, f)), Vec::new());
    match r {
        Err(e @ SpawnError::BinaryChanged { .. }) => {
            assert!(e.to_string().contains("rebuilt or replaced"), "{e}")
        }
        other => panic!("{:?}", other.err()),
    }
}

#[test]
fn targets_outside_the_code_are_refused() {
    let exe = ExeId::current().unwrap();
    let (t, f) = offsets();
    for (t, f) in [(t, 1 << 40), (1 << 40, f), (t, -(1 << 40))] {
        let r = prepare(memfd_with(&payload(exe, t, f)), Vec::new());
        assert!(matches!(r, Err(SpawnError::BadRequest(_))), "{:?}", r.err());
    }
    // The genuine offsets pass and the function runs here.
    let (run, info) = prepare(memfd_with(&payload(exe, t, f)), Vec::new()).unwrap();
    assert_eq!((info.name.as_str(), info.daemon), ("t", false));
    run();
    let ino = exe.ino;
    assert!(in_exe_code(anchor_addr(), ino));
    let heap = Box::new(0u8);
    assert!(!in_exe_code(&*heap as *const u8 as usize, ino));
}

/// Export in this process, import back: handles onto the same memory.
fn round_trip<A: SpawnArgs>(a: &A) -> Result<A, SpawnError> {
    let mut ex = Exporter::default();
    a.export_all(&mut ex)?;
    let segments = ex
        .segments
        .iter()
        .map(|s| Segment::attach(s.fd().unwrap().try_clone_to_owned().unwrap()).map(Arc::new))
        .collect::<Result<Vec<_>, _>>()?;
    let mut im = Importer {
        bytes: ex.bytes,
        pos: 0,
        segments,
        fds: Vec::new(),
    };
    let out = A::import_all(&mut im)?;
    im.finish()?;
    Ok(out)
}

#[test]
fn shared_objects_round_trip_onto_the_same_memory() {
    let v = Value::new(5u32).unwrap();
    let q: Queue<String> = Queue::new().unwrap();
    let (v2, q2, s) = round_trip(&(v.clone(), q.clone(), "x".to_string())).unwrap();
    *v2.lock().unwrap() += 1;
    assert_eq!(v.get(), 6);
    q2.put(&s).unwrap();
    assert_eq!(q.get().unwrap(), "x");
    // Values and their locks share one segment: it is sent once.
    let mut ex = Exporter::default();
    (v.clone(), v.clone()).export_all(&mut ex).unwrap();
    assert_eq!(ex.segments.len(), 1);
}

#[test]
fn bad_handles_are_errors() {
    let seg = Arc::new(Segment::create(4096).unwrap());
    let im = |bytes: Vec<u8>| Importer {
        bytes,
        pos: 0,
        segments: vec![seg.clone()],
        fds: Vec::new(),
    };
    let enc = |v: &(u32, u64)| postcard::to_stdvec(v).unwrap();
    // Out of bounds, misaligned, inside the header, unknown segment.
    for (i, off) in [(0, 4096u64), (0, 4093), (0, 65), (0, 8), (1, 64)] {
        let r = im(enc(&(i, off))).shm_box::<core::sync::atomic::AtomicU32>();
        assert!(r.is_err(), "({i}, {off}) accepted");
    }
    assert!(im(enc(&(0, 64)))
        .shm_box::<core::sync::atomic::AtomicU32>()
        .is_ok());
    // Trailing bytes.
    let mut i = im(vec![1, 2]);
    assert_eq!(i.take::<u8>().unwrap(), 1);
    assert!(matches!(i.finish(), Err(SpawnError::Decode { .. })));
    // A queue whose header and chunks disagree.
    let q1: Queue<u8> = Queue::<u8>::builder().capacity_bytes(64).build().unwrap();
    let q2: Queue<u8> = Queue::<u8>::builder().capacity_bytes(128).build().unwrap();
    let mut ex = Exporter::default();
    ex.shm_box(q1.raw().parts().0).unwrap();
    ex.shm_slice(q2.raw().parts().1).unwrap();
    ex.put(&0u64).unwrap();
    let mut i = Importer {
        bytes: ex.bytes,
        pos: 0,
        segments: ex.segments,
        fds: Vec::new(),
    };
    assert!(matches!(
        RawQueue::import(&mut i),
        Err(SpawnError::BadRequest(_))
    ));
}
