//! CPython 3.11's `TestInitializers` (`Lib/test/_test_multiprocessing.py`),
//! the manager part, ported: `test_manager_initializer`. (`test_pool_initializer`
//! is ported in `cpython_pool.rs`.)
//!
//! ```python
//! def initializer(ns):
//!     ns.test += 1
//!
//! class TestInitializers(unittest.TestCase):
//!     def setUp(self):
//!         self.mgr = multiprocessing.Manager()
//!         self.ns = self.mgr.Namespace()
//!         self.ns.test = 0
//!
//!     def tearDown(self):
//!         self.mgr.shutdown()
//!         self.mgr.join()
//!
//!     def test_manager_initializer(self):
//!         m = multiprocessing.managers.SyncManager()
//!         self.assertRaises(TypeError, m.start, 1)
//!         m.start(initializer, (self.ns,))
//!         self.assertEqual(self.ns.test, 1)
//!         m.shutdown()
//!         m.join()
//! ```
//!
//! `assertRaises(TypeError, m.start, 1)` (an initializer that is not
//! callable) is a compile error here: `initializer` takes a `fn(A)`. The
//! initializer receives a proxy to *another* manager's namespace, so it also
//! runs under spawn and forkserver (the proxy crosses as an argument of the
//! server's start, see `manager_start_methods.rs`).

use procshare::{Manager, NamespaceProxy, StartMethod};
use procshare_tests::quiet;

fn initializer((ns,): (NamespaceProxy,)) {
    let test: i64 = ns.get("test").unwrap();
    ns.set("test", &(test + 1)).unwrap();
}

struct TestInitializers {
    mgr: Manager,
    ns: NamespaceProxy,
}

impl TestInitializers {
    fn set_up() -> Self {
        quiet();
        let mgr = Manager::start().unwrap();
        let ns = mgr.namespace().unwrap();
        ns.set("test", &0i64).unwrap();
        TestInitializers { mgr, ns }
    }

    fn tear_down(mut self) {
        self.mgr.shutdown().unwrap();
    }

    fn manager_initializer(&self, method: StartMethod) {
        let mut m = Manager::builder()
            .start_method(method)
            .initializer(initializer, (self.ns.clone(),))
            .start()
            .unwrap();
        assert_eq!(self.ns.get::<i64>("test").unwrap(), 1, "{method}");
        m.shutdown().unwrap();
    }
}

#[test]
fn test_manager_initializer() {
    let t = TestInitializers::set_up();
    t.manager_initializer(StartMethod::Fork);
    t.tear_down();
}

#[test]
fn test_manager_initializer_spawn() {
    let t = TestInitializers::set_up();
    t.manager_initializer(StartMethod::Spawn);
    t.tear_down();
}

#[test]
fn test_manager_initializer_forkserver() {
    let t = TestInitializers::set_up();
    t.manager_initializer(StartMethod::ForkServer);
    t.tear_down();
}
