//! Named shared memory (`procshare::shared_memory`): CPython 3.11's
//! `_TestSharedMemory` (Lib/test/_test_multiprocessing.py) ported method by
//! method, and the lifetime of tracked blocks under `kill -9` of their users.
//! The interop with a real `python3` is in `shared_memory_python.rs`.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use procshare::{Event, Queue};
use procshare::{Item, ShareableList, SharedMemory, SharedMemoryError, SharedMemoryManager};
use procshare::{Process, StartMethod};

fn new_name(prefix: &str) -> String {
    // As CPython's _new_shm_name: a pid in the name so parallel runs differ.
    format!("{prefix}{}", std::process::id())
}

/// The next message, or a failed test (not a hang) if none comes within a
/// minute (a child died early).
fn recv(q: &Queue<String>) -> String {
    q.get_timeout(std::time::Duration::from_secs(60))
        .expect("no message from the child within a minute")
}

/// Starts `target` under spawn with a fresh report queue and a never-set
/// event (what keeps the child alive until it is killed). Returns the event
/// first, so that a caller's `let (_never, p, q)` drops it last: its shared
/// memory is not reused while the child still waits on it.
fn spawn_reporter(target: fn((Queue<String>, Event))) -> (Event, Child, Queue<String>) {
    procshare_tests::quiet();
    let (q, never) = (Queue::<String>::new().unwrap(), Event::new().unwrap());
    let mut p = Child(
        Process::with_target(target, (q.clone(), never.clone())).start_method(StartMethod::Spawn),
    );
    p.0.start().unwrap();
    (never, p, q)
}

/// Kills the child when the test ends, pass or fail, so that a failed test
/// leaves no process behind (which would hold the test's output open).
struct Child(Process);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.join();
    }
}

fn exists(name: &str) -> bool {
    Path::new("/dev/shm").join(name).exists()
}

/// Waits until `/dev/shm/<name>` is removed, by inotify (no sleep, no
/// polling loop); fails the test if it is still there after a minute.
fn wait_gone(name: &str) {
    // SAFETY: plain system calls on descriptors this function owns.
    let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
    assert!(
        fd >= 0,
        "inotify_init1: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: `fd` was just returned by the kernel and is owned here only.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: a NUL-terminated path literal.
    let w =
        unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c"/dev/shm".as_ptr(), libc::IN_DELETE) };
    assert!(
        w >= 0,
        "inotify_add_watch: {}",
        std::io::Error::last_os_error()
    );
    let mut buf = [0u8; 4096];
    while exists(name) {
        let mut p = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut p, 1, 60_000) };
        assert!(
            r != 0,
            "/dev/shm/{name} is still there a minute after its users died"
        );
        // SAFETY: reads into a live buffer of its length.
        unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    }
}

// ---------------------------------------------------------------------------
// CPython's _TestSharedMemory, one test per method.

/// _TestSharedMemory.test_shared_memory_basics
#[test]
fn test_shared_memory_basics() {
    let name_tsmb = new_name("test01_tsmb");
    let sms = SharedMemory::create(Some(&name_tsmb), 512).unwrap();

    // Verify attributes are readable.
    assert_eq!(sms.name(), name_tsmb);
    assert!(sms.size() >= 512);
    assert!(sms.to_vec().len() >= sms.size());

    // Verify __repr__
    assert!(sms.to_string().contains(sms.name()));
    assert!(sms.to_string().contains(&sms.size().to_string()));

    // Modify contents of shared memory segment through memoryview.
    sms.write(0, &[42]);
    assert_eq!(sms.to_vec()[0], 42);

    // Attach to existing shared memory segment.
    let also_sms = SharedMemory::attach(&name_tsmb).unwrap();
    assert_eq!(also_sms.to_vec()[0], 42);
    also_sms.close();

    // (Attaching with a new size, a negative size, and attaching without a
    // name cannot be expressed: `attach` takes no size, sizes are `usize`,
    // the name is not optional.)

    // Posix Shared Memory can only be unlinked once.
    let name_dblunlink = new_name("test01_dblunlink");
    let sms_uno = SharedMemory::create(Some(&name_dblunlink), 5000).unwrap();
    assert!(sms_uno.size() >= 5000);
    let sms_duo = SharedMemory::attach(&name_dblunlink).unwrap();
    sms_duo.unlink().unwrap(); // First shm_unlink() call.
    sms_duo.close();
    assert!(matches!(
        sms_uno.unlink(), // A second shm_unlink() call is bad.
        Err(SharedMemoryError::NotFound { .. })
    ));
    sms_uno.close();

    // Attempting to create a new shared memory segment with a name that is
    // already in use triggers an exception.
    assert!(matches!(
        SharedMemory::create(Some(&name_tsmb), 512),
        Err(SharedMemoryError::AlreadyExists { .. })
    ));

    // Attempting to attach to an existing shared memory segment when no
    // segment exists with the supplied name triggers an exception.
    assert!(matches!(
        SharedMemory::attach("test01_notthere"),
        Err(SharedMemoryError::NotFound { .. })
    ));

    sms.unlink().unwrap();
    sms.close();
}

/// _TestSharedMemory.test_shared_memory_recreate (CPython mocks
/// `_make_filename` to return a taken name first; here: random names are
/// CPython's shape and two creations never share one).
#[test]
fn test_shared_memory_recreate() {
    let shm1 = SharedMemory::create(None, 1).unwrap();
    let shm2 = SharedMemory::create(None, 1).unwrap();
    for s in [&shm1, &shm2] {
        assert!(s.name().starts_with("psm_"), "{}", s.name());
        assert_eq!(s.name().len(), 12); // "/psm_" + 8 hex: CPython's 14-char limit
        assert!(s.name()[4..].bytes().all(|b| b.is_ascii_hexdigit()));
    }
    assert_ne!(shm1.name(), shm2.name());
    shm1.unlink().unwrap();
    shm2.unlink().unwrap();
}

/// _TestSharedMemory.test_invalid_shared_memory_cration (negative sizes are
/// not representable: `usize`).
#[test]
fn test_invalid_shared_memory_cration() {
    // Test creating a shared memory segment with size 0
    let e = SharedMemory::create(None, 0).unwrap_err();
    assert!(matches!(e, SharedMemoryError::ZeroSize));
    assert_eq!(
        e.to_string(),
        "'size' must be a positive number different from zero"
    );
    // And with a named one (nothing is left behind).
    let name = new_name("test_zero_size");
    assert!(matches!(
        SharedMemory::create(Some(&name), 0),
        Err(SharedMemoryError::ZeroSize)
    ));
    assert!(!exists(&name));
}

/// Names: CPython passes them to `shm_open`, which refuses these (EINVAL).
#[test]
fn invalid_names_are_clear_errors() {
    for bad in ["", "a/b", ".", "..", "nul\0byte"] {
        let e = SharedMemory::create(Some(bad), 8).unwrap_err();
        assert!(
            matches!(e, SharedMemoryError::InvalidName { .. }),
            "{bad:?}: {e}"
        );
        assert!(matches!(
            SharedMemory::attach(bad),
            Err(SharedMemoryError::InvalidName { .. })
        ));
    }
    let long = "x".repeat(256);
    let e = SharedMemory::create(Some(&long), 8).unwrap_err();
    assert!(e.to_string().contains("longer than 255 bytes"), "{e}");
    let ok = "y".repeat(255);
    let s = SharedMemory::create(Some(&ok), 8).unwrap();
    s.unlink().unwrap();
}

/// _TestSharedMemory.test_shared_memory_pickle_unpickle (a pickled
/// SharedMemory is its name: unpickling attaches by name).
#[test]
fn test_shared_memory_pickle_unpickle() {
    let sms = SharedMemory::create(None, 512).unwrap();
    sms.write(0, b"pickle");

    let sms2 = SharedMemory::attach(sms.name()).unwrap();
    assert_eq!(sms.name(), sms2.name());
    assert_eq!(&sms.to_vec()[..6], b"pickle");
    assert_eq!(&sms2.to_vec()[..6], b"pickle");

    // Test that unpickled version is still the same SharedMemory
    sms.write(0, b"newval");
    assert_eq!(&sms.to_vec()[..6], b"newval");
    assert_eq!(&sms2.to_vec()[..6], b"newval");

    sms2.write(0, b"oldval");
    assert_eq!(&sms.to_vec()[..6], b"oldval");
    assert_eq!(&sms2.to_vec()[..6], b"oldval");
    sms.unlink().unwrap();
}

/// _TestSharedMemory.test_shared_memory_pickle_unpickle_dead_object
#[test]
fn test_shared_memory_pickle_unpickle_dead_object() {
    let sms = SharedMemory::create(None, 512).unwrap();
    sms.write(0, b"pickle");
    let name = sms.name().to_string();
    sms.unlink().unwrap();
    sms.close();
    assert!(matches!(
        SharedMemory::attach(&name),
        Err(SharedMemoryError::NotFound { .. })
    ));
}

fn attach_existing_shmem_then_write((name, data): (String, Vec<u8>)) {
    let local_sms = SharedMemory::attach(&name).unwrap();
    local_sms.write(0, &data);
    local_sms.close();
}

/// _TestSharedMemory.test_shared_memory_across_processes
#[test]
fn test_shared_memory_across_processes() {
    procshare_tests::quiet();
    let sms = SharedMemory::create(None, 512).unwrap();
    for (method, data) in [
        (StartMethod::Spawn, b"howdy"),
        (StartMethod::Fork, b"HELLO"),
    ] {
        let mut p = Process::with_target(
            attach_existing_shmem_then_write,
            (sms.name().to_string(), data.to_vec()),
        )
        .start_method(method);
        p.start().unwrap();
        assert_eq!(p.join().unwrap(), 0);
        assert_eq!(&sms.to_vec()[..5], data);
    }
    sms.unlink().unwrap();
}

/// _TestSharedMemory.test_shared_memory_SharedMemoryServer_ignores_sigint
#[test]
fn test_shared_memory_shared_memory_server_ignores_sigint() {
    let mut smm = SharedMemoryManager::new();
    smm.start().unwrap();
    let ints: Vec<Item> = (0..10).map(Item::Int).collect();
    // make sure the manager works properly at the beginning
    let _sl = smm.shareable_list(&ints).unwrap();
    // CPython's server ignores SIGINT (a Ctrl-C at the terminal reaches the
    // whole foreground process group). Here the server is in a session of
    // its own, so a Ctrl-C never reaches it (a SIGINT sent to it by pid still
    // stops it: procshare has no signal-disposition call).
    let pid = smm.pid().unwrap() as i32;
    // SAFETY: getsid/getpgid on pids.
    unsafe {
        assert_eq!(libc::getsid(pid), pid);
        assert_ne!(libc::getpgid(pid), libc::getpgid(0));
    }
    let _sl2 = smm.shareable_list(&ints).unwrap();
    smm.shutdown().unwrap();
}

/// _TestSharedMemory.test_shared_memory_SharedMemoryManager_basics
#[test]
fn test_shared_memory_shared_memory_manager_basics() {
    let mut smm1 = SharedMemoryManager::new();
    assert!(matches!(
        smm1.shared_memory(9), // Fails if SharedMemoryServer not started
        Err(SharedMemoryError::ManagerNotRunning(_))
    ));
    smm1.start().unwrap();
    let lol: Vec<ShareableList> = (5..10)
        .map(|i| {
            let items: Vec<Item> = (0..i).map(Item::Int).collect();
            smm1.shareable_list(&items).unwrap()
        })
        .collect();
    let lom: Vec<SharedMemory> = (32..128)
        .step_by(16)
        .map(|j| smm1.shared_memory(j).unwrap())
        .collect();
    let doppleganger_list0 = ShareableList::attach(lol[0].shm().name()).unwrap();
    assert_eq!(doppleganger_list0.len(), 5);
    let doppleganger_shm0 = SharedMemory::attach(lom[0].name()).unwrap();
    assert!(doppleganger_shm0.size() >= 32);
    let held_name = lom[0].name().to_string();
    smm1.shutdown().unwrap();
    // No longer there to be attached to again.
    assert!(matches!(
        SharedMemory::attach(&held_name),
        Err(SharedMemoryError::NotFound { .. })
    ));

    let held_name = {
        let mut smm2 = SharedMemoryManager::new();
        smm2.start().unwrap();
        let sl = smm2.shareable_list(&[Item::from("howdy")]).unwrap();
        let _shm = smm2.shared_memory(128).unwrap();
        sl.shm().name().to_string()
    }; // dropped: `with SharedMemoryManager() as smm2:`
    assert!(matches!(
        ShareableList::attach(&held_name),
        Err(SharedMemoryError::NotFound { .. })
    ));
}

/// _TestSharedMemory.test_shared_memory_ShareableList_basics
#[test]
fn test_shared_memory_shareable_list_basics() {
    let sl = ShareableList::create(
        None,
        &[
            Item::from("howdy"),
            Item::from(&b"HoWdY"[..]),
            Item::Float(-273.154),
            Item::Int(100),
            Item::None,
            Item::Bool(true),
            Item::Int(42),
        ],
    )
    .unwrap();

    // Verify __repr__
    let repr = sl.to_string();
    assert!(repr.contains(sl.shm().name()));
    assert!(
        repr.contains("['howdy', b'HoWdY', -273.154, 100, None, True, 42]"),
        "{repr}"
    );

    // Index Out of Range (get)
    assert!(matches!(
        sl.get(7),
        Err(SharedMemoryError::IndexOutOfRange { index: 7, len: 7 })
    ));
    // Index Out of Range (set)
    assert!(matches!(
        sl.set(7, Item::Int(2)),
        Err(SharedMemoryError::IndexOutOfRange { .. })
    ));

    // Assign value without format change (str -> str)
    let current_format = sl.format().unwrap();
    sl.set(0, Item::from("howdy")).unwrap();
    assert_eq!(current_format, sl.format().unwrap());

    // Verify attributes are readable.
    assert_eq!(sl.format().unwrap(), "8s8sdqxxxxxx?xxxxxxxx?q");

    // Exercise len().
    assert_eq!(sl.len(), 7);

    // Exercise index().
    assert!(matches!(
        sl.index(&Item::from("100")),
        Err(SharedMemoryError::NotInList { .. })
    ));
    assert_eq!(sl.index(&Item::Int(100)).unwrap(), 3);

    // Exercise retrieving individual values.
    assert_eq!(sl.get(0).unwrap(), Item::from("howdy"));
    assert_eq!(sl.get(sl.len() - 2).unwrap(), Item::Bool(true));

    // Exercise iterability.
    assert_eq!(
        sl.to_vec().unwrap(),
        [
            Item::from("howdy"),
            Item::from(&b"HoWdY"[..]),
            Item::Float(-273.154),
            Item::Int(100),
            Item::None,
            Item::Bool(true),
            Item::Int(42),
        ]
    );

    // Exercise modifying individual values.
    sl.set(3, Item::Int(42)).unwrap();
    assert_eq!(sl.get(3).unwrap(), Item::Int(42));
    sl.set(4, Item::from("some")).unwrap(); // Change type at a given position.
    assert_eq!(sl.get(4).unwrap(), Item::from("some"));
    assert_eq!(sl.format().unwrap(), "8s8sdq8sxxxxxxx?q");
    let e = sl.set(4, Item::from("far too many")).unwrap_err();
    assert!(e.to_string().contains("exceeds available storage"), "{e}");
    assert_eq!(sl.get(4).unwrap(), Item::from("some"));
    sl.set(0, Item::from("encodés")).unwrap(); // Exactly 8 bytes of UTF-8 data
    assert_eq!(sl.get(0).unwrap(), Item::from("encodés"));
    assert_eq!(sl.get(1).unwrap(), Item::from(&b"HoWdY"[..])); // no spillage
    let e = sl.set(0, Item::from("encodées")).unwrap_err(); // Exactly 9 bytes of UTF-8 data
    assert!(e.to_string().contains("exceeds available storage"), "{e}");
    assert_eq!(sl.get(1).unwrap(), Item::from(&b"HoWdY"[..]));
    let e = sl.set(1, Item::from(&b"123456789"[..])).unwrap_err();
    assert!(e.to_string().contains("exceeds available storage"), "{e}");
    assert_eq!(sl.get(1).unwrap(), Item::from(&b"HoWdY"[..]));

    // Exercise count().
    assert_eq!(sl.count(&Item::Int(42)).unwrap(), 2);
    assert_eq!(sl.count(&Item::from(&b"HoWdY"[..])).unwrap(), 1);
    assert_eq!(sl.count(&Item::from(&b"adios"[..])).unwrap(), 0);

    // Exercise creating a duplicate.
    let name_duplicate = new_name("test03_duplicate");
    let sl_copy = ShareableList::create(Some(&name_duplicate), &sl.to_vec().unwrap()).unwrap();
    assert_ne!(sl.shm().name(), sl_copy.shm().name());
    assert_eq!(name_duplicate, sl_copy.shm().name());
    assert_eq!(sl.to_vec().unwrap(), sl_copy.to_vec().unwrap());
    // (CPython copies the formats too: its copy stores 'some' in a 8-byte
    // slot made for it, as here.)
    assert_eq!(sl.format().unwrap(), sl_copy.format().unwrap());
    sl_copy.set(6, Item::Int(77)).unwrap();
    assert_eq!(sl_copy.get(6).unwrap(), Item::Int(77));
    assert_ne!(sl.get(6).unwrap(), Item::Int(77));
    sl_copy.shm().unlink().unwrap();

    // Obtain a second handle on the same ShareableList.
    let sl_tethered = ShareableList::attach(sl.shm().name()).unwrap();
    assert_eq!(sl.shm().name(), sl_tethered.shm().name());
    sl_tethered.set(6, Item::Int(880)).unwrap();
    assert_eq!(sl.get(6).unwrap(), Item::Int(880));
    sl.shm().unlink().unwrap();

    // Exercise creating an empty ShareableList.
    let empty_sl = ShareableList::create(None, &[]).unwrap();
    assert_eq!(empty_sl.len(), 0);
    assert_eq!(empty_sl.format().unwrap(), "");
    assert_eq!(empty_sl.count(&Item::from("any")).unwrap(), 0);
    assert!(matches!(
        empty_sl.index(&Item::None),
        Err(SharedMemoryError::NotInList { .. })
    ));
    empty_sl.shm().unlink().unwrap();
}

/// _TestSharedMemory.test_shared_memory_ShareableList_pickling (a pickled
/// list is its name: unpickling attaches).
#[test]
fn test_shared_memory_shareable_list_pickling() {
    let ints: Vec<Item> = (0..10).map(Item::Int).collect();
    let sl = ShareableList::create(None, &ints).unwrap();
    let deserialized_sl = ShareableList::attach(sl.shm().name()).unwrap();
    assert_eq!(deserialized_sl.get(9).unwrap(), Item::Int(9));

    deserialized_sl.set(4, Item::from("changed")).unwrap();
    assert_eq!(sl.get(4).unwrap(), Item::from("changed"));
    sl.set(3, Item::from("newvalue")).unwrap();
    assert_eq!(deserialized_sl.get(3).unwrap(), Item::from("newvalue"));
    sl.shm().unlink().unwrap();
}

/// _TestSharedMemory.test_shared_memory_ShareableList_pickling_dead_object
#[test]
fn test_shared_memory_shareable_list_pickling_dead_object() {
    let ints: Vec<Item> = (0..10).map(Item::Int).collect();
    let sl = ShareableList::create(None, &ints).unwrap();
    let name = sl.shm().name().to_string();
    sl.shm().unlink().unwrap();
    drop(sl);
    assert!(matches!(
        ShareableList::attach(&name),
        Err(SharedMemoryError::NotFound { .. })
    ));
}

fn create_and_wait((q, never): (Queue<String>, Event)) {
    let sm = SharedMemory::create(None, 10).unwrap();
    sm.write(0, b"from child");
    q.put(&sm.name().to_string()).unwrap();
    never.wait();
}

/// _TestSharedMemory.test_shared_memory_cleaned_after_process_termination:
/// a process holding a block is terminated; the block must not leak (and,
/// better than CPython, no "leaked shared_memory objects" warning is due).
#[test]
fn test_shared_memory_cleaned_after_process_termination() {
    let (_never, mut p, q) = spawn_reporter(create_and_wait);
    let name = recv(&q);
    assert!(exists(&name));
    p.0.terminate().unwrap();
    assert_eq!(p.0.join().unwrap(), -libc::SIGTERM);
    wait_gone(&name);
    assert!(matches!(
        SharedMemory::attach(&name),
        Err(SharedMemoryError::NotFound { .. })
    ));
}

// ---------------------------------------------------------------------------
// Tracked blocks under kill -9.

/// An attacher: attaches `name` (tracked), says so, then on `go` checks that
/// the creator's bytes are still readable through its mapping and writes its
/// own (after the name may be gone), then says so again and waits forever.
fn attacher((name, q, go, never): (String, Queue<String>, Event, Event)) {
    let shm = SharedMemory::attach(&name).unwrap();
    assert!(shm.is_tracked());
    q.put(&"attached".to_string()).unwrap();
    go.wait();
    let mut before = [0u8; 10];
    shm.read(0, &mut before);
    shm.write(0, b"attacher!!");
    let mut after = [0u8; 10];
    shm.read(0, &mut after);
    let report = if &before == b"from child" && &after == b"attacher!!" {
        "mapping ok".to_string()
    } else {
        format!("mapping bad: {before:?} then {after:?}")
    };
    q.put(&report).unwrap();
    never.wait();
}

/// A tracked attach and exit: once it returns, the tracker has handled every
/// exit that happened before it (it accepts a registration in the same poll
/// round as, or after, the exits it was woken for).
fn probe((name,): (String,)) {
    let shm = SharedMemory::attach(&name).unwrap();
    assert!(shm.is_tracked());
}

fn run_probe(name: &str) {
    let mut p = Process::with_target(probe, (name.to_string(),)).start_method(StartMethod::Spawn);
    p.start().unwrap();
    assert_eq!(p.join().unwrap(), 0);
}

struct Scene {
    q: Queue<String>,
    go: Event,
    creator: Child,
    attacher: Child,
    name: String,
}

fn scene() -> Scene {
    procshare_tests::quiet();
    let (q, never, go) = (
        Queue::<String>::new().unwrap(),
        Event::new().unwrap(),
        Event::new().unwrap(),
    );
    let mut creator = Process::with_target(create_and_wait, (q.clone(), never.clone()))
        .start_method(StartMethod::Spawn);
    creator.start().unwrap();
    let name = recv(&q);
    let mut attacher = Process::with_target(
        attacher,
        (name.clone(), q.clone(), go.clone(), never.clone()),
    )
    .start_method(StartMethod::Spawn);
    attacher.start().unwrap();
    assert_eq!(recv(&q), "attached");
    Scene {
        q,
        go,
        creator: Child(creator),
        attacher: Child(attacher),
        name,
    }
}

/// kill -9 of the creator: the name stays while the tracked attacher runs,
/// its mapping stays valid, and the name goes when the attacher dies too.
#[test]
fn kill9_creator_keeps_block_while_attacher_runs() {
    let mut s = scene();
    s.creator.0.kill().unwrap();
    assert_eq!(s.creator.0.join().unwrap(), -9);
    run_probe(&s.name); // the tracker has seen the creator's death
    assert!(exists(&s.name), "unlinked while a tracked attacher runs");
    s.go.set();
    assert_eq!(recv(&s.q), "mapping ok");
    assert!(exists(&s.name));
    s.attacher.0.kill().unwrap();
    assert_eq!(s.attacher.0.join().unwrap(), -9);
    wait_gone(&s.name);
}

/// kill -9 of an attacher: the creator's block stays, and goes when the
/// creator dies.
#[test]
fn kill9_attacher_then_creator() {
    let mut s = scene();
    s.attacher.0.kill().unwrap();
    assert_eq!(s.attacher.0.join().unwrap(), -9);
    run_probe(&s.name);
    assert!(exists(&s.name), "unlinked while its creator runs");
    s.creator.0.kill().unwrap();
    assert_eq!(s.creator.0.join().unwrap(), -9);
    wait_gone(&s.name);
}

/// kill -9 of all users at once: nothing is left in /dev/shm.
#[test]
fn kill9_all_users_leaves_nothing() {
    let mut s = scene();
    s.attacher.0.kill().unwrap();
    s.creator.0.kill().unwrap();
    assert_eq!(s.attacher.0.join().unwrap(), -9);
    assert_eq!(s.creator.0.join().unwrap(), -9);
    wait_gone(&s.name);
}

fn create_untracked_and_wait((q, never): (Queue<String>, Event)) {
    let sm = SharedMemory::create_untracked(None, 10).unwrap();
    q.put(&sm.name().to_string()).unwrap();
    never.wait();
}

/// Untracked: the name outlives a kill -9 of its creator, until unlinked.
#[test]
fn untracked_block_survives_its_creator() {
    let (_never, mut p, q) = spawn_reporter(create_untracked_and_wait);
    let name = recv(&q);
    p.0.kill().unwrap();
    assert_eq!(p.0.join().unwrap(), -9);
    run_probe_untracked(&name);
    assert!(exists(&name));
    SharedMemory::attach_untracked(&name)
        .unwrap()
        .unlink()
        .unwrap();
    assert!(!exists(&name));
}

fn run_probe_untracked(name: &str) {
    let shm = SharedMemory::attach(name).unwrap();
    assert!(!shm.is_tracked(), "an untracked block has no tracker");
}

fn manager_owner((q, never): (Queue<String>, Event)) {
    let mut smm = SharedMemoryManager::new();
    smm.start().unwrap();
    let shm = smm.shared_memory(64).unwrap();
    let sl = smm.shareable_list(&[Item::Int(1)]).unwrap();
    q.put(&shm.name().to_string()).unwrap();
    q.put(&sl.shm().name().to_string()).unwrap();
    never.wait();
}

/// A SharedMemoryManager's blocks are unlinked when its owner is killed
/// with `kill -9` (the server watches the owner by pidfd).
#[test]
fn manager_unlinks_its_blocks_when_its_owner_is_killed() {
    let (_never, mut p, q) = spawn_reporter(manager_owner);
    let (a, b) = (recv(&q), recv(&q));
    assert!(exists(&a) && exists(&b));
    p.0.kill().unwrap();
    assert_eq!(p.0.join().unwrap(), -9);
    wait_gone(&a);
    wait_gone(&b);
}
