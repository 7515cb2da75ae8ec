//! procshare's errors: every family converts into `procshare::Error` with `?`,
//! a serializer's own message survives to the caller, and a decoding error
//! keeps the codec's error as its source.

use std::error::Error as _;

use procshare::internals::wire::{self, WireError};
use procshare::AuthError;
use procshare::IndexError;
use procshare::PipeError;
use procshare::ProcessError;
use procshare::QueueError;
use procshare::ShmError;
use procshare::SpawnError;
use procshare::SyncError;
use procshare::{Address, AddressError, Manager, ManagerError};
use procshare::{Error, Lock, Pipe, Process, Queue, SharedMemoryError};
use procshare::{Pool, PoolError};
use procshare_tests::quiet;
use serde::{Deserialize, Serialize, Serializer};

/// `e`'s message and every source's, outermost first.
fn chain(e: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut out = vec![e.to_string()];
    let mut s = e.source();
    while let Some(c) = s {
        out.push(c.to_string());
        s = c.source();
    }
    out
}

/// Compile-level: `?` turns `E` into `procshare::Error`.
fn via_question_mark<E>(e: E) -> Result<(), Error>
where
    Error: From<E>,
{
    Err(e)?;
    Ok(())
}

#[test]
fn question_mark_converts_every_family() {
    // Each family's error type, through `?` (a missing `From` does not compile).
    let _ = via_question_mark::<QueueError>;
    let _ = via_question_mark::<PipeError>;
    let _ = via_question_mark::<PoolError>;
    let _ = via_question_mark::<ManagerError>;
    let _ = via_question_mark::<AddressError>;
    let _ = via_question_mark::<ProcessError>;
    let _ = via_question_mark::<SpawnError>;
    let _ = via_question_mark::<SyncError>;
    let _ = via_question_mark::<IndexError>;
    let _ = via_question_mark::<ShmError>;
    let _ = via_question_mark::<SharedMemoryError>;
    let _ = via_question_mark::<AuthError>;
    let _ = via_question_mark::<WireError>;

    // And at run time: real errors of a queue, a pool, a manager, a lock, a
    // process and an address, in one function returning `procshare::Error`.
    quiet();
    fn run() -> Result<(), Error> {
        let q: Queue<u8> = Queue::new()?;
        let e = q.try_get().map(drop).map_err(Error::from).unwrap_err();
        assert!(matches!(e, Error::Queue(QueueError::Empty)), "{e:?}");

        let e = Pool::builder().processes(0).build().map(drop);
        let e = e.map_err(Error::from).unwrap_err();
        assert!(matches!(e, Error::Pool(PoolError::NoProcesses)), "{e:?}");

        let m = Manager::start()?;
        let l = m.list::<u8>()?;
        let e = l.get(3).map(drop).map_err(Error::from).unwrap_err();
        assert!(matches!(e, Error::Manager(ManagerError::Op(_))), "{e:?}");

        let lock = Lock::new()?;
        let e = lock.release().map_err(Error::from).unwrap_err();
        assert!(
            matches!(e, Error::Sync(SyncError::ReleaseUnlocked)),
            "{e:?}"
        );
        assert_eq!(e.to_string(), "release unlocked lock");

        let e = Process::new(|| {}).join().map(drop).map_err(Error::from);
        assert!(matches!(
            e,
            Err(Error::Process(ProcessError::NotStarted(_)))
        ));

        let e = "no port here"
            .parse::<Address>()
            .map(drop)
            .map_err(Error::from);
        let e = e.unwrap_err();
        assert!(matches!(e, Error::Address(_)), "{e:?}");
        // `transparent`: the family error's source is the crate error's.
        assert!(e.source().is_some(), "{e:?}");
        Ok(())
    }
    run().unwrap();
}

/// A value whose `Serialize` fails with its own message.
#[derive(Debug, Deserialize)]
struct Refuses(u8);

impl Serialize for Refuses {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("my message"))
    }
}

/// A value whose failing field is nested inside a struct, a vector and an option.
#[derive(Debug, Serialize)]
struct Nested {
    a: u32,
    inner: Vec<Option<Refuses>>,
}

fn assert_has_message(e: &(dyn std::error::Error + 'static)) {
    let c = chain(e);
    assert!(
        c.iter().any(|m| m.contains("my message")),
        "the serializer's message is lost: {c:?}"
    );
}

#[test]
fn a_serializers_message_survives_wire() {
    assert_has_message(&wire::encode(&Refuses(1)).unwrap_err());
    let nested = Nested {
        a: 1,
        inner: vec![None, Some(Refuses(2))],
    };
    let e = wire::encode(&nested).unwrap_err();
    assert!(matches!(e, WireError::Encode { .. }), "{e:?}");
    assert_has_message(&e);
    // postcard's own error stays the source.
    assert!(e.source().is_some());
}

#[test]
fn a_serializers_message_survives_a_queue_and_a_pipe() {
    let q: Queue<Refuses> = Queue::new().unwrap();
    let e = q.put(&Refuses(1)).unwrap_err();
    assert!(matches!(e, QueueError::Encode(_)), "{e:?}");
    assert_has_message(&Error::from(e));

    let (_a, b) = Pipe::<Refuses>::new(false).unwrap();
    assert_has_message(&Error::from(b.send(&Refuses(1)).unwrap_err()));
}

fn take_refuses(r: Refuses) -> u8 {
    r.0
}

fn make_refuses(x: u8) -> Refuses {
    Refuses(x)
}

#[test]
fn a_serializers_message_survives_a_pool() {
    quiet();
    let pool = Pool::new(1).unwrap();
    // An argument: encoded in this process.
    let e = pool.apply(take_refuses, Refuses(1)).unwrap_err();
    assert!(matches!(e, PoolError::Encode(_)), "{e:?}");
    assert_has_message(&Error::from(e));
    // A result: encoded in the worker, which sends its message back.
    let e = pool.apply(make_refuses, 1).unwrap_err();
    assert!(matches!(e, PoolError::Serialize(_)), "{e:?}");
    assert_has_message(&Error::from(e));
    pool.close().unwrap();
    pool.join().unwrap();
}

#[test]
fn a_serializers_message_survives_a_manager() {
    quiet();
    let m = Manager::start().unwrap();
    let l = m.list::<Refuses>().unwrap();
    let e = l.append(Refuses(1)).unwrap_err();
    assert!(matches!(e, ManagerError::Encode(_)), "{e:?}");
    assert_has_message(&Error::from(e));
}

#[test]
fn a_corrupt_frame_keeps_the_decoders_error_as_its_source() {
    // A bool must be 0 or 1.
    let mut frame = Vec::new();
    wire::write_frame_bytes(&mut frame, &[7]).unwrap();
    let e = wire::read_frame::<_, bool>(&mut &frame[..], wire::DEFAULT_LIMIT).unwrap_err();
    assert!(matches!(e, WireError::Corrupt(_)), "{e:?}");
    assert!(e.source().is_some(), "{e:?}");
    // Through the crate error too (`transparent` forwards the source).
    let e = Error::from(wire::decode::<bool>(&[7]).unwrap_err());
    assert!(e.source().is_some(), "{e:?}");
    // Trailing bytes have no codec error, but are still an error.
    assert!(matches!(
        wire::decode::<u8>(&[7, 0]),
        Err(WireError::TrailingBytes(1))
    ));
}
