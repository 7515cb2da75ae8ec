//! Custom types whose factory takes arguments (CPython's
//! `register(typeid, callable)` with a callable of parameters, called as
//! `manager.typeid(*args)`): each creation passes its own, from any process;
//! arguments the factory does not take are a typed error.

use procshare::{Manager, OpError, Process};
use procshare_tests::quiet;

/// A bank account opened with an owner and a balance.
#[derive(Debug)]
pub struct Account {
    owner: String,
    balance: i64,
}

impl Account {
    fn deposit(&mut self, n: i64) -> i64 {
        self.balance += n;
        self.balance
    }
    fn owner(&self) -> String {
        self.owner.clone()
    }
}

procshare::shared! {
    /// A proxy to an [`Account`].
    pub struct AccountProxy for Account {
        fn deposit(n: i64) -> i64;
        fn owner() -> String;
    }
}

fn manager() -> Manager {
    quiet();
    Manager::builder()
        .register_with("Account", |(owner, balance): (String, i64)| Account {
            owner,
            balance,
        })
        .start()
        .unwrap()
}

#[test]
fn each_creation_passes_its_own_arguments_from_any_process() {
    let m = manager();
    let a: AccountProxy = m.make_with("Account", &("ann".to_string(), 10i64)).unwrap();
    let l = m.list::<AccountProxy>().unwrap();
    let l2 = l.clone();
    let (addr, key) = (m.address().clone(), m.authkey().clone());
    let mut p = Process::new(move || {
        // The child's own handle, knowing the type (as a remote client).
        let m2 = Manager::builder()
            .register_remote::<Account>("Account")
            .authkey(key)
            .connect(addr)
            .unwrap();
        let b: AccountProxy = m2.make_with("Account", &("bob".to_string(), 5i64)).unwrap();
        assert_eq!(b.deposit(1).unwrap(), 6);
        l2.append(&b).unwrap();
    });
    p.start().unwrap();
    assert_eq!(p.join().unwrap(), 0);
    assert_eq!(a.deposit(2).unwrap(), 12);
    assert_eq!(a.owner().unwrap(), "ann");
    let b = l.get(0).unwrap();
    assert_eq!(b.owner().unwrap(), "bob");
    assert_eq!(b.deposit(0).unwrap(), 6);
}

#[test]
fn arguments_the_factory_does_not_take_are_refused() {
    let m = manager();
    let e = m
        .make_with::<AccountProxy, _>("Account", &(1u8,))
        .unwrap_err();
    assert!(
        matches!(e.op_error(), Some(OpError::BadArgument { .. })),
        "{e}"
    );
    let e = m.make::<AccountProxy>("Account").unwrap_err();
    assert!(
        matches!(e.op_error(), Some(OpError::BadArgument { .. })),
        "{e}"
    );
    // The server serves on.
    let a: AccountProxy = m.make_with("Account", &("cy".to_string(), 0i64)).unwrap();
    assert_eq!(a.deposit(3).unwrap(), 3);
}
