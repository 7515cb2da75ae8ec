//! [`ManagerBuilder`]: a manager with custom types registered before its
//! server starts (CPython's `BaseManager.register` on a manager class).

use super::client::Result;
use super::register::{Shared, Types};
use super::Manager;
use crate::codec::auth::AuthKey;
use procshare_model::manager::Registry;

/// How to make a [`Manager`] that serves (or, as a client, knows) custom
/// types: register each type under a name (CPython's `typeid`), then start,
/// serve or connect.
///
/// ```
/// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
/// use procshare::{AuthKey, Manager};
/// #[derive(Default)]
/// pub struct Counter(i64);
/// impl Counter {
///     fn incr(&mut self) -> i64 { self.0 += 1; self.0 }
/// }
/// procshare::shared! {
///     /// A proxy to a [`Counter`].
///     pub struct CounterProxy for Counter {
///         fn incr() -> i64;
///     }
/// }
/// // The server, on TCP, with the factory:
/// let key = AuthKey::new("abracadabra");
/// let server = Manager::builder()
///     .register("Counter", Counter::default)
///     .authkey(key.clone())
///     .serve("127.0.0.1:0")
///     .unwrap();
/// // A client: the same name, no factory (`register('Counter')`).
/// let client = Manager::builder()
///     .register_remote::<Counter>("Counter")
///     .authkey(key)
///     .connect(server.address().clone())
///     .unwrap();
/// let c: CounterProxy = client.make("Counter").unwrap();
/// assert_eq!(c.incr().unwrap(), 1);
/// ```
#[must_use]
#[derive(Default)]
pub struct ManagerBuilder {
    registry: Registry,
    types: Types,
    authkey: Option<AuthKey>,
}

impl std::fmt::Debug for ManagerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagerBuilder")
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

impl Manager {
    /// A [`ManagerBuilder`], to register custom types before the server starts.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// let m = procshare::Manager::builder().start().unwrap();
    /// m.ping().unwrap();
    /// ```
    pub fn builder() -> ManagerBuilder {
        ManagerBuilder::default()
    }
}

impl ManagerBuilder {
    /// Serve type `T` under `typeid`: [`Manager::make`] asks the server
    /// for a new object, which `factory` makes in the server process
    /// (CPython's `register(typeid, callable)`). The factory is inherited by
    /// the forked server: it may capture anything (an `Arc` shared by the
    /// objects it makes, as `lambda: queue` shares one queue). A later
    /// registration of the same name replaces the earlier one.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// use procshare::Manager;
    /// pub struct Greeter(String);
    /// impl Greeter {
    ///     fn greet(&self, who: String) -> String { format!("{} {who}", self.0) }
    /// }
    /// procshare::shared! {
    ///     /// A proxy to a [`Greeter`].
    ///     pub struct GreeterProxy for Greeter {
    ///         fn greet(who: String) -> String;
    ///     }
    /// }
    /// let m = Manager::builder()
    ///     .register("Greeter", || Greeter("hello".into()))
    ///     .start()
    ///     .unwrap();
    /// let g: GreeterProxy = m.make("Greeter").unwrap();
    /// assert_eq!(g.greet("world".into()).unwrap(), "hello world");
    /// ```
    pub fn register<T: Shared>(
        mut self,
        typeid: &str,
        factory: impl Fn() -> T + Send + Sync + 'static,
    ) -> Self {
        self.registry
            .register(typeid, T::METHODS, super::register::factory(factory));
        self.types.add::<T>(typeid);
        self
    }

    /// Know type `T` under `typeid` without serving it: for a client of a
    /// remote server that registered it with a factory (CPython's
    /// `register('get_queue')` on the client's manager class).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// use procshare::{Manager, OpError};
    /// #[derive(Default)]
    /// pub struct Unit;
    /// impl Unit { fn ping(&self) -> u8 { 1 } }
    /// procshare::shared! {
    ///     /// A proxy to a [`Unit`].
    ///     pub struct UnitProxy for Unit { fn ping() -> u8; }
    /// }
    /// // A server that does not serve `Unit`: the client's create is refused.
    /// let m = Manager::builder().register_remote::<Unit>("Unit").start().unwrap();
    /// let e = m.make::<UnitProxy>("Unit").unwrap_err();
    /// assert_eq!(e.op_error(), Some(&OpError::UnknownType("Unit".into())));
    /// ```
    pub fn register_remote<T: Shared>(mut self, typeid: &str) -> Self {
        self.types.add::<T>(typeid);
        self
    }

    /// The auth key of the server to start or join (default for
    /// [`ManagerBuilder::start`] and [`ManagerBuilder::serve`]: a random
    /// one; [`ManagerBuilder::connect`] needs it).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// use procshare::{AuthKey, Manager};
    /// let m = Manager::builder().authkey(AuthKey::new("k")).start().unwrap();
    /// assert_eq!(m.authkey(), &AuthKey::new("k"));
    /// ```
    pub fn authkey(mut self, key: AuthKey) -> Self {
        self.authkey = Some(key);
        self
    }

    fn key(&mut self) -> Result<AuthKey> {
        match self.authkey.take() {
            Some(k) => Ok(k),
            None => Ok(AuthKey::random()?),
        }
    }

    /// Start the server on a unix socket in a private directory ([`Manager::start`]).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// let m = procshare::Manager::builder().start().unwrap();
    /// assert!(m.server_pid().is_some());
    /// ```
    pub fn start(mut self) -> Result<Manager> {
        let key = self.key()?;
        let mut m = Manager::start_registered(key, self.registry)?;
        m.types = self.types;
        Ok(m)
    }

    /// Start the server on a TCP address ([`Manager::serve`]).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// use procshare::{AuthKey, Manager};
    /// let m = Manager::builder().authkey(AuthKey::new("k")).serve("127.0.0.1:0").unwrap();
    /// assert!(matches!(m.address(), procshare::Address::Tcp(_)));
    /// ```
    pub fn serve(mut self, addr: impl std::net::ToSocketAddrs) -> Result<Manager> {
        let key = self.key()?;
        let mut m = Manager::serve_registered(addr, key, self.registry)?;
        m.types = self.types;
        Ok(m)
    }

    /// Join a running server with the auth key given to
    /// [`ManagerBuilder::authkey`] ([`Manager::connect`]); the types
    /// registered here (with or without a factory: the server's are what
    /// count) are the ones [`Manager::make`] accepts.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// use procshare::Manager;
    /// let s = Manager::start().unwrap();
    /// let c = Manager::builder()
    ///     .authkey(s.authkey().clone())
    ///     .connect(s.address().clone())
    ///     .unwrap();
    /// c.ping().unwrap();
    /// assert!(Manager::builder().connect(s.address().clone()).is_err()); // no key
    /// ```
    pub fn connect<A>(self, addr: A) -> Result<Manager>
    where
        A: TryInto<super::Address>,
        super::ManagerError: From<A::Error>,
    {
        let key = self.authkey.ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "connecting to a manager needs its auth key (ManagerBuilder::authkey)",
            )
        })?;
        let mut m = Manager::connect(addr, key)?;
        m.types = self.types;
        Ok(m)
    }
}
