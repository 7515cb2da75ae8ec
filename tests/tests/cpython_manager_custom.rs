//! CPython 3.11's `_TestMyManager` and `_TestRemoteManager`
//! (`Lib/test/_test_multiprocessing.py`), ported: one test per method, named
//! after it, with CPython's assertions.
//!
//! What does not apply, and why:
//! - `Bar` is CPython's `FooBar` registered again with `exposed=('f', '_h')`.
//!   A Rust type has one method list (its `Shared` impl), so `Bar` is a
//!   newtype over `FooBar` exposing `f` and `_h`.
//! - `hasattr(foo, name)`: a Rust proxy's methods are known at compile time;
//!   the port checks the exposed lists (`Shared::METHODS`), which is what
//!   CPython's proxy types are generated from.
//! - `assertRaises(ValueError, foo.g)`: the server's exception comes back as
//!   `OpError::MethodFailed` carrying the method's error message
//!   ("ValueError"); `RemoteError` (a method that is not exposed) is
//!   `OpError::UnknownMethod`.
//! - `with manager:` (`__enter__` starts an unstarted manager, `__exit__`
//!   shuts it down): a Rust manager is started by its builder and stopped
//!   when dropped, so `test_mymanager_context` is a scope; the exit code is
//!   not readable from a dropped handle, so it checks that the drop stopped
//!   and reaped the server (no process, not even a zombie, has its pid).
//!   `test_mymanager_context_prestarted` uses the handle inside a scope,
//!   then shuts it down and asserts CPython's exact exit code 0.
//! - `_TestRemoteManager` uses the `xmlrpclib` serializer, and checks that
//!   putting `time.sleep` (a function) fails to serialize. Rust values cross
//!   as serde; a function is not `Serialize`, so that `put` does not compile
//!   (the compile-time twin of the run-time error) and is not ported. The
//!   values (`'hello world', None, True, 2.25, 'hallå världen', 'привіт
//!   світ', b'hall\xe5 v\xe4rlden'`) cross as one tuple of the matching Rust
//!   types (the byte string as `Vec<u8>`); CPython's xmlrpclib answer is a
//!   list, so it compares with `result = values[:]`; here the tuple.

// The test's names are CPython's (`foo`, `baz`).
#![allow(clippy::disallowed_names)]

use procshare::{Manager, OpError, Process, Shared, TypedProxy};
use procshare_tests::quiet;
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};

// ---- _TestMyManager --------------------------------------------------------

/// CPython's `FooBar`.
#[derive(Default)]
struct FooBar;

impl FooBar {
    fn f(&self) -> String {
        "f()".into()
    }
    fn g(&self) -> Result<String, String> {
        Err("ValueError".into())
    }
    fn _h(&self) -> String {
        "_h()".into()
    }
}

procshare::shared! {
    /// `MyManager.register('Foo', callable=FooBar)`: the public methods.
    struct FooProxy for FooBar {
        fn f() -> String;
        fn g() -> Result<String, String>;
    }
}

/// `MyManager.register('Bar', callable=FooBar, exposed=('f', '_h'))`.
#[derive(Default)]
struct Bar(FooBar);

impl Bar {
    fn f(&self) -> String {
        self.0.f()
    }
    fn _h(&self) -> String {
        self.0._h()
    }
}

procshare::shared! {
    /// A proxy to a [`Bar`].
    struct BarProxy for Bar {
        fn f() -> String;
        fn _h() -> String;
    }
}

/// CPython's `baz()` generator: `i*i for i in range(10)`.
struct Baz(Box<dyn Iterator<Item = i64> + Send>);

impl Baz {
    fn __next__(&mut self) -> Option<i64> {
        self.0.next()
    }
}

procshare::shared! {
    /// `MyManager.register('baz', callable=baz, proxytype=IteratorProxy)`.
    struct IteratorProxy for Baz {
        fn __next__() -> Option<i64>;
    }
}

impl Iterator for IteratorProxy {
    type Item = i64;
    fn next(&mut self) -> Option<i64> {
        self.__next__().expect("the manager answers")
    }
}

/// CPython's `MyManager`.
fn my_manager() -> Manager {
    Manager::builder()
        .register("Foo", FooBar::default)
        .register("Bar", Bar::default)
        .register("baz", || Baz(Box::new((0..10).map(|i| i * i))))
        .start()
        .unwrap()
}

/// CPython's `_TestMyManager.common`.
fn common(manager: &Manager) {
    let foo: FooProxy = manager.make("Foo").unwrap();
    let bar: BarProxy = manager.make("Bar").unwrap();
    let baz: IteratorProxy = manager.make("baz").unwrap();

    assert_eq!(<FooBar as Shared>::METHODS, ["f", "g"]);
    assert_eq!(<Bar as Shared>::METHODS, ["f", "_h"]);

    assert_eq!(foo.f().unwrap(), "f()");
    let e = foo.g().unwrap_err();
    assert_eq!(
        e.op_error(),
        Some(&OpError::MethodFailed {
            method: "g".into(),
            message: "ValueError".into()
        })
    );
    assert_eq!(foo.proxy().call::<_, String>("f", &()).unwrap(), "f()");
    let e = foo.proxy().call::<_, String>("_h", &()).unwrap_err();
    assert!(
        matches!(e.op_error(), Some(OpError::UnknownMethod { method, .. }) if method == "_h"),
        "{e}"
    );

    assert_eq!(bar.f().unwrap(), "f()");
    assert_eq!(bar._h().unwrap(), "_h()");
    assert_eq!(bar.proxy().call::<_, String>("f", &()).unwrap(), "f()");
    assert_eq!(bar.proxy().call::<_, String>("_h", &()).unwrap(), "_h()");

    assert_eq!(
        baz.collect::<Vec<_>>(),
        (0..10).map(|i| i * i).collect::<Vec<i64>>()
    );
}

#[test]
fn test_mymanager() {
    quiet();
    let mut manager = my_manager();
    common(&manager);
    manager.shutdown().unwrap();
    // CPython allows -SIGTERM (its finalizer's fallback on slow buildbots).
    assert!(
        matches!(manager.exitcode(), Some(0) | Some(-15)),
        "{:?}",
        manager.exitcode()
    );
}

#[test]
fn test_mymanager_context() {
    quiet();
    let pid = {
        let manager = my_manager();
        common(&manager);
        manager.server_pid().unwrap()
    };
    // The drop at the end of the scope stopped the server and reaped it: no
    // process (not even a zombie waiting for its parent) has its pid.
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the server {pid} outlived its manager's scope"
    );
}

#[test]
fn test_mymanager_context_prestarted() {
    quiet();
    let mut manager = my_manager();
    {
        let manager = &manager;
        common(manager);
    }
    manager.shutdown().unwrap();
    assert_eq!(manager.exitcode(), Some(0));
}

// ---- _TestRemoteManager ----------------------------------------------------

/// CPython's module-level `_queue = pyqueue.Queue()`, handed out by
/// `get_queue`: every object the factory makes shares it.
#[derive(Clone, Default)]
struct PyQueue(Arc<(Mutex<VecDeque<Values>>, Condvar)>);

/// `values`: `['hello world', None, True, 2.25, 'hallå världen', 'привіт світ', b'hallå världen']`.
type Values = (String, Option<()>, bool, f64, String, String, Vec<u8>);

fn values() -> Values {
    (
        "hello world".into(),
        None,
        true,
        2.25,
        "hall\u{e5} v\u{e4}rlden".into(),
        "\u{43f}\u{440}\u{438}\u{432}\u{456}\u{442} \u{441}\u{432}\u{456}\u{442}".into(),
        b"hall\xe5 v\xe4rlden".to_vec(),
    )
}

impl PyQueue {
    fn put(&mut self, v: Values) {
        let (q, cv) = &*self.0;
        q.lock().unwrap_or_else(|p| p.into_inner()).push_back(v);
        cv.notify_one();
    }
    fn get(&mut self) -> Values {
        let (q, cv) = &*self.0;
        let mut q = q.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(v) = q.pop_front() {
                return v;
            }
            q = cv.wait(q).unwrap_or_else(|p| p.into_inner());
        }
    }
}

procshare::shared! {
    /// What `manager.get_queue()` returns.
    struct QueueProxy for PyQueue {
        fn put(v: Values);
        fn get() -> Values;
    }
}

#[test]
fn test_remote() {
    quiet();
    let authkey = procshare::AuthKey::random().unwrap();
    // QueueManager: the server, with `get_queue`'s callable.
    let queue = PyQueue::default();
    let manager = Manager::builder()
        .register("get_queue", move || queue.clone())
        .authkey(authkey.clone())
        .serve("127.0.0.1:0")
        .unwrap();
    let address = manager.address().clone();

    // _putter, in another process: QueueManager2 (no callable) connects.
    let (a, k) = (address.clone(), authkey.clone());
    let mut p = Process::new(move || {
        let manager = Manager::builder()
            .register_remote::<PyQueue>("get_queue")
            .authkey(k)
            .connect(a)
            .unwrap();
        let queue: QueueProxy = manager.make("get_queue").unwrap();
        queue.put(values()).unwrap();
    });
    p.set_daemon(true);
    p.start().unwrap();

    let manager2 = Manager::builder()
        .register_remote::<PyQueue>("get_queue")
        .authkey(authkey)
        .connect(address)
        .unwrap();
    let queue: QueueProxy = manager2.make("get_queue").unwrap();
    assert_eq!(queue.get().unwrap(), values());
    assert_eq!(p.join().unwrap(), 0);
    // Make the queue's finalizer run before the server is stopped.
    drop(queue);
}
