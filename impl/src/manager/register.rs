//! Custom types on a manager (CPython's `BaseManager.register`): the
//! [`Shared`] trait a type implements to be served, the [`CustomProxy`] that
//! calls its methods from any process, and the [`shared!`](crate::shared)
//! macro that writes both sides from a list of methods.
//!
//! The server side of a call (find the object, check the method, run it under
//! the object's own lock, catch a panic) is the model's
//! [`procshare_model::manager::custom`] step; this module only encodes and
//! decodes.

use super::client::{dec, enc, unexpected, Handle, ManagerError, Result};
use super::proxy::proxy_common;
use super::Manager;
use procshare_model::manager::{CustomObject, Init, Kind, Op, OpError, Request, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::any::TypeId;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;

/// A type whose objects live in a manager's server and are used through
/// proxies from any process (CPython's `BaseManager.register(typeid, callable)`).
///
/// The server runs one call at a time per object (each object has its own
/// lock, so a method gets `&mut self`); calls on different objects, and the
/// manager's built-in objects, run concurrently. A method that blocks
/// (waits for another object's call, as a queue's `get` waits for a `put`)
/// holds up only its own object: share state *between* objects through the
/// factory, as CPython's `register('get_queue', callable=lambda: queue)`
/// does (see `examples/remote_manager.rs`).
///
/// Usually written by [`shared!`](crate::shared); by hand it is a `match` on
/// the method name:
///
/// ```
/// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
/// use procshare::{Call, CustomProxy, Manager, OpError, Reply, Shared};
///
/// #[derive(Default)]
/// struct Counter(i64);
///
/// impl Shared for Counter {
///     const METHODS: &'static [&'static str] = &["add", "get"];
///     fn call(&mut self, call: Call<'_>) -> Result<Reply, OpError> {
///         match call.method() {
///             "add" => {
///                 let (n,): (i64,) = call.args()?;
///                 self.0 += n;
///                 call.reply(&self.0)
///             }
///             "get" => call.reply(&self.0),
///             _ => Err(call.unknown_method()),
///         }
///     }
/// }
///
/// let m = Manager::builder()
///     .register("Counter", Counter::default)
///     .start()
///     .unwrap();
/// let c: CustomProxy<Counter> = m.make("Counter").unwrap();
/// assert_eq!(c.call::<_, i64>("add", &(5i64,)).unwrap(), 5);
/// assert_eq!(c.call::<_, i64>("get", &()).unwrap(), 5);
/// ```
pub trait Shared: Send + 'static {
    /// The methods a proxy may call (CPython's `exposed`); a call of any
    /// other name is refused with [`OpError::UnknownMethod`] before
    /// [`Shared::call`] runs.
    ///
    /// ```
    /// use procshare::{Call, OpError, Reply, Shared};
    /// struct Nothing;
    /// impl Shared for Nothing {
    ///     const METHODS: &'static [&'static str] = &[];
    ///     fn call(&mut self, call: Call<'_>) -> Result<Reply, OpError> {
    ///         Err(call.unknown_method())
    ///     }
    /// }
    /// assert!(Nothing::METHODS.is_empty());
    /// ```
    const METHODS: &'static [&'static str];

    /// Run one call, in the server process: decode its arguments with
    /// [`Call::args`], answer with [`Call::reply`] or fail with
    /// [`Call::fail`] (the message travels back to the caller as
    /// [`OpError::MethodFailed`]). A panic is caught and answered as
    /// `MethodFailed`; the server keeps serving.
    ///
    /// ```
    /// use procshare::{Call, OpError, Reply, Shared};
    /// struct Echo;
    /// impl Shared for Echo {
    ///     const METHODS: &'static [&'static str] = &["echo"];
    ///     fn call(&mut self, call: Call<'_>) -> Result<Reply, OpError> {
    ///         let (s,): (String,) = call.args()?;
    ///         call.reply(&s)
    ///     }
    /// }
    /// # let _ = Echo;
    /// ```
    fn call(&mut self, call: Call<'_>) -> std::result::Result<Reply, OpError>;
}

/// One method call as the server's object receives it: the method's name and
/// its encoded arguments.
///
/// ```
/// use procshare::{Call, OpError, Reply, Shared};
/// struct Adder;
/// impl Shared for Adder {
///     const METHODS: &'static [&'static str] = &["add"];
///     fn call(&mut self, call: Call<'_>) -> Result<Reply, OpError> {
///         let (a, b): (u8, u8) = call.args()?;
///         match a.checked_add(b) {
///             Some(s) => call.reply(&s),
///             None => Err(call.fail("overflow")),
///         }
///     }
/// }
/// # let _ = Adder;
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    method: &'a str,
    args: &'a [u8],
}

impl<'a> Call<'a> {
    /// The method called (one of [`Shared::METHODS`]).
    ///
    /// ```
    /// use procshare::{Call, OpError, Reply, Shared};
    /// struct Name;
    /// impl Shared for Name {
    ///     const METHODS: &'static [&'static str] = &["name"];
    ///     fn call(&mut self, call: Call<'_>) -> Result<Reply, OpError> {
    ///         call.reply(&call.method().to_string())
    ///     }
    /// }
    /// # let _ = Name;
    /// ```
    pub fn method(&self) -> &'a str {
        self.method
    }

    /// The arguments, decoded as `A` (a tuple of the parameters: `()`,
    /// `(x,)`, `(x, y)`, ...); [`OpError::BadArgument`] if they do not decode.
    ///
    /// ```
    /// use procshare::{Call, OpError, Reply, Shared};
    /// struct Greeter;
    /// impl Shared for Greeter {
    ///     const METHODS: &'static [&'static str] = &["greet"];
    ///     fn call(&mut self, call: Call<'_>) -> Result<Reply, OpError> {
    ///         let (who, times): (String, u32) = call.args()?;
    ///         call.reply(&format!("hello {who} x{times}"))
    ///     }
    /// }
    /// # let _ = Greeter;
    /// ```
    pub fn args<A: DeserializeOwned>(&self) -> std::result::Result<A, OpError> {
        crate::codec::wire::decode(self.args).map_err(|e| OpError::BadArgument {
            method: self.method.to_string(),
            why: e.to_string(),
        })
    }

    /// The method's answer, encoded.
    ///
    /// ```
    /// use procshare::{Call, OpError, Reply, Shared};
    /// struct Zero;
    /// impl Shared for Zero {
    ///     const METHODS: &'static [&'static str] = &["zero"];
    ///     fn call(&mut self, call: Call<'_>) -> Result<Reply, OpError> {
    ///         call.reply(&0u8)
    ///     }
    /// }
    /// # let _ = Zero;
    /// ```
    pub fn reply<R: Serialize + ?Sized>(&self, r: &R) -> std::result::Result<Reply, OpError> {
        crate::codec::wire::encode(r)
            .map(Reply)
            .map_err(|e| self.fail(format!("cannot encode the answer: {e}")))
    }

    /// The method failed with `e`: its message travels back to the caller
    /// ([`OpError::MethodFailed`]).
    ///
    /// ```
    /// use procshare::{Call, OpError, Reply, Shared};
    /// struct Picky;
    /// impl Shared for Picky {
    ///     const METHODS: &'static [&'static str] = &["g"];
    ///     fn call(&mut self, call: Call<'_>) -> Result<Reply, OpError> {
    ///         Err(call.fail("g() always fails"))
    ///     }
    /// }
    /// # let _ = Picky;
    /// ```
    pub fn fail(&self, e: impl std::fmt::Display) -> OpError {
        OpError::MethodFailed {
            method: self.method.to_string(),
            message: e.to_string(),
        }
    }

    /// [`OpError::UnknownMethod`] for this call (the server answers it
    /// itself for a name not in [`Shared::METHODS`]; a `match` needs an arm).
    ///
    /// ```
    /// use procshare::{Call, OpError, Reply, Shared};
    /// struct None_;
    /// impl Shared for None_ {
    ///     const METHODS: &'static [&'static str] = &[];
    ///     fn call(&mut self, call: Call<'_>) -> Result<Reply, OpError> {
    ///         Err(call.unknown_method())
    ///     }
    /// }
    /// # let _ = None_;
    /// ```
    pub fn unknown_method(&self) -> OpError {
        OpError::UnknownMethod {
            typeid: String::new(),
            method: self.method.to_string(),
        }
    }
}

/// A method's encoded answer ([`Call::reply`]).
///
/// ```
/// use procshare::{Call, OpError, Reply, Shared};
/// struct One;
/// impl Shared for One {
///     const METHODS: &'static [&'static str] = &["one"];
///     fn call(&mut self, call: Call<'_>) -> Result<Reply, OpError> {
///         let r: Reply = call.reply(&1u8)?;
///         Ok(r)
///     }
/// }
/// # let _ = One;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply(Vec<u8>);

/// A [`Shared`] object as the model's server sees it.
struct Served<T>(T);

impl<T: Shared> CustomObject for Served<T> {
    fn call(&mut self, method: &str, args: &[u8]) -> std::result::Result<Vec<u8>, OpError> {
        self.0.call(Call { method, args }).map(|r| r.0)
    }
}

/// The server's factory for `T`.
pub(crate) fn factory<T: Shared>(
    f: impl Fn() -> T + Send + Sync + 'static,
) -> procshare_model::manager::Factory {
    Arc::new(move || Box::new(Served(f())) as Box<dyn CustomObject>)
}

/// The server's factory for `T` made from arguments `A`.
fn args_factory<T: Shared, A: DeserializeOwned>(
    typeid: &str,
    f: impl Fn(A) -> T + Send + Sync + 'static,
) -> procshare_model::manager::ArgsFactory {
    let method = format!("{typeid} factory");
    Arc::new(move |args: &[u8]| {
        let a: A = crate::codec::wire::decode(args).map_err(|e| OpError::BadArgument {
            method: method.clone(),
            why: e.to_string(),
        })?;
        Ok(Box::new(Served(f(a))) as Box<dyn CustomObject>)
    })
}

impl crate::ManagerBuilder {
    /// [`ManagerBuilder::register`](crate::ManagerBuilder::register) with a
    /// factory that takes arguments (CPython's `register(typeid, callable)`
    /// with a callable of parameters, called as `manager.typeid(*args)`):
    /// each [`Manager::make_with`] passes its own. As with `register`, a
    /// forked server only.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// use procshare::Manager;
    /// pub struct Counter(i64);
    /// impl Counter {
    ///     fn incr(&mut self) -> i64 { self.0 += 1; self.0 }
    /// }
    /// procshare::shared! {
    ///     /// A proxy to a [`Counter`].
    ///     pub struct CounterProxy for Counter { fn incr() -> i64; }
    /// }
    /// let m = Manager::builder()
    ///     .register_with("Counter", |(start,): (i64,)| Counter(start))
    ///     .start()
    ///     .unwrap();
    /// let c: CounterProxy = m.make_with("Counter", &(41i64,)).unwrap();
    /// assert_eq!(c.incr().unwrap(), 42);
    /// ```
    pub fn register_with<T: Shared, A: DeserializeOwned>(
        mut self,
        typeid: &str,
        factory: impl Fn(A) -> T + Send + Sync + 'static,
    ) -> Self {
        self.registry
            .register_with_args(typeid, T::METHODS, args_factory(typeid, factory));
        self.types.add::<T>(typeid);
        self
    }
}

/// The types a [`Manager`] handle knows by name (registered with or
/// without a factory): what [`Manager::make`] checks before asking.
#[derive(Clone, Default)]
pub(crate) struct Types(Arc<HashMap<String, (TypeId, &'static str)>>);

impl Types {
    pub(crate) fn add<T: Shared>(&mut self, typeid: &str) {
        Arc::make_mut(&mut self.0).insert(
            typeid.to_string(),
            (TypeId::of::<T>(), std::any::type_name::<T>()),
        );
    }
}

/// A proxy to an object of a registered type: calls its methods by name
/// (CPython's `BaseProxy._callmethod`). The typed proxy that
/// [`shared!`](crate::shared) writes wraps one.
///
/// `Clone` (clones share one server reference), `Send`, `Sync`, usable in
/// forked children, serializable (as the built-in proxies). The object is
/// freed when the last proxy to it, in any process, is dropped.
///
/// ```
/// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
/// use procshare::{CustomProxy, Manager};
///
/// #[derive(Default)]
/// pub struct Tally(u32);
/// impl Tally {
///     fn bump(&mut self) -> u32 { self.0 += 1; self.0 }
/// }
/// procshare::shared! {
///     /// A proxy to a [`Tally`].
///     pub struct TallyProxy for Tally {
///         fn bump() -> u32;
///     }
/// }
///
/// let m = Manager::builder().register("Tally", Tally::default).start().unwrap();
/// let t: TallyProxy = m.make("Tally").unwrap();
/// assert_eq!(t.bump().unwrap(), 1);
/// // The same call by name, as `_callmethod('bump')`:
/// let raw: &CustomProxy<Tally> = procshare::TypedProxy::proxy(&t);
/// assert_eq!(raw.call::<_, u32>("bump", &()).unwrap(), 2);
/// ```
pub struct CustomProxy<T> {
    h: Handle,
    _t: PhantomData<fn() -> T>,
}

proxy_common!(CustomProxy[T], Kind::Custom);

impl<T: Shared> CustomProxy<T> {
    /// Call `method` with the arguments `args` (a tuple: `&()`, `&(x,)`,
    /// `&(x, y)`, ...) and decode its answer as `R`. Errors:
    /// [`OpError::UnknownMethod`], [`OpError::BadArgument`],
    /// [`OpError::MethodFailed`] (inside [`ManagerError::Op`]), or the
    /// connection's.
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// use procshare::{CustomProxy, Manager, OpError};
    /// #[derive(Default)]
    /// pub struct Box_(Vec<String>);
    /// impl Box_ {
    ///     fn put(&mut self, s: String) { self.0.push(s) }
    ///     fn take(&mut self) -> Result<String, String> { self.0.pop().ok_or("empty".into()) }
    /// }
    /// procshare::shared! {
    ///     /// A proxy to a [`Box_`].
    ///     pub struct BoxProxy for Box_ {
    ///         fn put(s: String);
    ///         fn take() -> Result<String, String>;
    ///     }
    /// }
    /// let m = Manager::builder().register("Box", Box_::default).start().unwrap();
    /// let b: CustomProxy<Box_> = m.make("Box").unwrap();
    /// b.call::<_, ()>("put", &("x".to_string(),)).unwrap();
    /// assert_eq!(b.call::<_, String>("take", &()).unwrap(), "x");
    /// let e = b.call::<_, String>("take", &()).unwrap_err();
    /// assert!(matches!(e.op_error(), Some(OpError::MethodFailed { message, .. }) if message == "empty"));
    /// let e = b.call::<_, ()>("nope", &()).unwrap_err();
    /// assert!(matches!(e.op_error(), Some(OpError::UnknownMethod { .. })));
    /// let e = b.call::<_, ()>("put", &(1u8, 2u8, 3u8)).unwrap_err();
    /// assert!(matches!(e.op_error(), Some(OpError::BadArgument { .. })));
    /// ```
    pub fn call<A: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        method: &str,
        args: &A,
    ) -> Result<R> {
        match self.h.op(Op::Call(method.to_string(), enc(args)?))? {
            Response::Item(b) => dec(&b),
            r => unexpected(r),
        }
    }
}

/// A typed proxy to a registered type: [`CustomProxy`] itself, or the proxy
/// that [`shared!`](crate::shared) writes. [`Manager::make`] returns one.
///
/// ```
/// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
/// use procshare::{Manager, TypedProxy};
/// #[derive(Default)]
/// pub struct Flag(bool);
/// impl Flag {
///     fn set(&mut self) { self.0 = true }
///     fn get(&self) -> bool { self.0 }
/// }
/// procshare::shared! {
///     /// A proxy to a [`Flag`].
///     pub struct FlagProxy for Flag {
///         fn set();
///         fn get() -> bool;
///     }
/// }
/// fn make<P: TypedProxy>(m: &Manager, name: &str) -> P {
///     m.make(name).unwrap()
/// }
/// let m = Manager::builder().register("Flag", Flag::default).start().unwrap();
/// let f: FlagProxy = make(&m, "Flag");
/// f.set().unwrap();
/// assert!(f.get().unwrap());
/// ```
pub trait TypedProxy: Sized {
    /// The type of the object it calls.
    type Object: Shared;
    /// Wrap a proxy.
    ///
    /// ```
    /// use procshare::{CustomProxy, Shared, TypedProxy};
    /// fn wrap<P: TypedProxy>(p: CustomProxy<P::Object>) -> P {
    ///     P::from_proxy(p)
    /// }
    /// # let _ = wrap::<CustomProxy<Never>>;
    /// # struct Never;
    /// # impl Shared for Never {
    /// #     const METHODS: &'static [&'static str] = &[];
    /// #     fn call(&mut self, c: procshare::Call<'_>) -> Result<procshare::Reply, procshare::OpError> { Err(c.unknown_method()) }
    /// # }
    /// ```
    fn from_proxy(p: CustomProxy<Self::Object>) -> Self;
    /// The proxy it wraps (to call a method by name).
    ///
    /// ```
    /// use procshare::{CustomProxy, TypedProxy};
    /// fn by_name<P: TypedProxy>(p: &P) -> &CustomProxy<P::Object> {
    ///     p.proxy()
    /// }
    /// # let _ = by_name::<CustomProxy<Never>>;
    /// # struct Never;
    /// # impl procshare::Shared for Never {
    /// #     const METHODS: &'static [&'static str] = &[];
    /// #     fn call(&mut self, c: procshare::Call<'_>) -> Result<procshare::Reply, procshare::OpError> { Err(c.unknown_method()) }
    /// # }
    /// ```
    fn proxy(&self) -> &CustomProxy<Self::Object>;
}

impl<T: Shared> TypedProxy for CustomProxy<T> {
    type Object = T;
    fn from_proxy(p: CustomProxy<T>) -> Self {
        p
    }
    fn proxy(&self) -> &CustomProxy<T> {
        self
    }
}

impl Manager {
    /// A new object of the type registered as `typeid`, made by the server's
    /// factory (CPython's `manager.typeid()`), and its proxy. The name must
    /// be registered on this handle for `P`'s type (with a factory, or
    /// without one on a client: [`ManagerBuilder::register_remote`](crate::ManagerBuilder::register_remote)),
    /// else [`OpError::UnknownType`] / [`OpError::TypeMismatch`] without a
    /// round trip; the server refuses a name it has no factory for
    /// (`UnknownType`) or whose type exposes other methods (`TypeMismatch`).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// use procshare::{Manager, OpError};
    /// #[derive(Default)]
    /// pub struct Note(String);
    /// impl Note {
    ///     fn write(&mut self, s: String) { self.0 = s }
    ///     fn read(&self) -> String { self.0.clone() }
    /// }
    /// procshare::shared! {
    ///     /// A proxy to a [`Note`].
    ///     pub struct NoteProxy for Note {
    ///         fn write(s: String);
    ///         fn read() -> String;
    ///     }
    /// }
    /// let m = Manager::builder().register("Note", Note::default).start().unwrap();
    /// let n: NoteProxy = m.make("Note").unwrap();
    /// n.write("hi".into()).unwrap();
    /// assert_eq!(n.read().unwrap(), "hi");
    /// let e = m.make::<NoteProxy>("Nope").unwrap_err();
    /// assert_eq!(e.op_error(), Some(&OpError::UnknownType("Nope".into())));
    /// ```
    pub fn make<P: TypedProxy>(&self, typeid: &str) -> Result<P> {
        self.make_init::<P>(typeid, None)
    }

    /// [`Manager::make`] for a type registered with a factory that takes
    /// arguments ([`ManagerBuilder::register_with`](crate::ManagerBuilder::register_with);
    /// CPython's `manager.typeid(*args)`): `args` are the factory's (a
    /// tuple). [`OpError::BadArgument`] if they do not decode as the
    /// factory's parameters (the codec is not self-describing: arguments of
    /// another type that happen to decode are not detected), or if its
    /// factory takes none ([`Manager::make`] then).
    ///
    /// ```
    /// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
    /// use procshare::{Manager, OpError};
    /// pub struct Greeter(String);
    /// impl Greeter {
    ///     fn greet(&self, who: String) -> String { format!("{} {who}", self.0) }
    /// }
    /// procshare::shared! {
    ///     /// A proxy to a [`Greeter`].
    ///     pub struct GreeterProxy for Greeter { fn greet(who: String) -> String; }
    /// }
    /// let m = Manager::builder()
    ///     .register_with("Greeter", |(hello,): (String,)| Greeter(hello))
    ///     .start()
    ///     .unwrap();
    /// let g: GreeterProxy = m.make_with("Greeter", &("hi".to_string(),)).unwrap();
    /// assert_eq!(g.greet("you".into()).unwrap(), "hi you");
    /// let e = m.make::<GreeterProxy>("Greeter").unwrap_err();
    /// assert!(matches!(e.op_error(), Some(OpError::BadArgument { .. })));
    /// let e = m.make_with::<GreeterProxy, _>("Greeter", &()).unwrap_err();
    /// assert!(matches!(e.op_error(), Some(OpError::BadArgument { .. })));
    /// ```
    pub fn make_with<P: TypedProxy, A: Serialize + ?Sized>(
        &self,
        typeid: &str,
        args: &A,
    ) -> Result<P> {
        self.make_init::<P>(typeid, Some(super::client::enc(args)?))
    }

    fn make_init<P: TypedProxy>(&self, typeid: &str, args: Option<Vec<u8>>) -> Result<P> {
        match self.types.0.get(typeid) {
            None => return Err(OpError::UnknownType(typeid.to_string()).into()),
            Some((t, _)) if *t != TypeId::of::<P::Object>() => {
                return Err(OpError::TypeMismatch {
                    typeid: typeid.to_string(),
                    methods: P::Object::METHODS.iter().map(|m| m.to_string()).collect(),
                }
                .into())
            }
            Some(_) => {}
        }
        let methods = P::Object::METHODS.iter().map(|m| m.to_string()).collect();
        let init = match args {
            None => Init::Custom {
                typeid: typeid.to_string(),
                methods,
            },
            Some(args) => Init::CustomWith {
                typeid: typeid.to_string(),
                methods,
                args,
            },
        };
        let h = Handle::create(&self.ep, Request::Create(init))?;
        if h.kind != Kind::Custom {
            return Err(ManagerError::Protocol(format!(
                "create answered a {:?}",
                h.kind
            )));
        }
        Ok(P::from_proxy(CustomProxy::from_handle(h)))
    }
}

/// Define a typed proxy for a type served by a manager: one proxy method per
/// listed method of the type, and the type's [`Shared`] implementation that
/// dispatches to them.
///
/// Each listed method is an inherent method of the type taking `&mut self` or
/// `&self`, with serializable parameters and result. A method declared
/// `-> Result<T, E>` is fallible: its `Err(e)` reaches the caller as
/// [`OpError::MethodFailed`] with `e.to_string()` (`E: Display`); any other
/// return type is the answer as is. The proxy method returns
/// `Result<T, ManagerError>`. The list is the type's
/// [`Shared::METHODS`] (CPython's `exposed`): a method not listed cannot be
/// called.
///
/// A `macro_rules!` rather than a derive: it needs no companion crate and no
/// proc-macro build, and the method list it reads is the exposed list
/// anyway (CPython writes it out too, or takes every public method).
///
/// ```
/// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
/// use procshare::{Manager, OpError};
///
/// #[derive(Default)]
/// pub struct Account { balance: i64 }
///
/// impl Account {
///     fn deposit(&mut self, n: i64) -> i64 { self.balance += n; self.balance }
///     fn withdraw(&mut self, n: i64) -> Result<i64, String> {
///         if n > self.balance { return Err(format!("only {} left", self.balance)); }
///         self.balance -= n;
///         Ok(self.balance)
///     }
///     fn balance(&self) -> i64 { self.balance }
/// }
///
/// procshare::shared! {
///     /// A proxy to an [`Account`] in a manager.
///     pub struct AccountProxy for Account {
///         /// Add `n`; the new balance.
///         fn deposit(n: i64) -> i64;
///         /// Take `n` out, if it is there.
///         fn withdraw(n: i64) -> Result<i64, String>;
///         /// The balance.
///         fn balance() -> i64;
///     }
/// }
///
/// let m = Manager::builder().register("Account", Account::default).start().unwrap();
/// let a: AccountProxy = m.make("Account").unwrap();
/// assert_eq!(a.deposit(10).unwrap(), 10);
/// let e = a.withdraw(11).unwrap_err();
/// assert_eq!(
///     e.op_error(),
///     Some(&OpError::MethodFailed { method: "withdraw".into(), message: "only 10 left".into() })
/// );
/// assert_eq!(a.withdraw(4).unwrap(), 6);
/// assert_eq!(a.balance().unwrap(), 6);
/// ```
#[macro_export]
macro_rules! shared {
    (
        $(#[$pmeta:meta])*
        $pvis:vis struct $proxy:ident for $ty:ty {
            $($body:tt)*
        }
    ) => {
        $crate::__shared_munch! {
            [$(#[$pmeta])* $pvis $proxy $ty]
            []
            $($body)*
        }
    };
}

/// [`shared!`]'s method list, one method at a time: each becomes
/// `{ [attrs] name [params] answer, fallible|infallible }`.
#[doc(hidden)]
#[macro_export]
macro_rules! __shared_munch {
    (
        [$($head:tt)*] [$($done:tt)*]
        $(#[$m:meta])* fn $name:ident ( $($a:ident : $t:ty),* $(,)? ) -> Result<$ok:ty, $err:ty> ;
        $($rest:tt)*
    ) => {
        $crate::__shared_munch! {
            [$($head)*] [$($done)* { [$(#[$m])*] $name [$($a : $t),*] $ok, fallible }]
            $($rest)*
        }
    };
    (
        [$($head:tt)*] [$($done:tt)*]
        $(#[$m:meta])* fn $name:ident ( $($a:ident : $t:ty),* $(,)? ) -> $ok:ty ;
        $($rest:tt)*
    ) => {
        $crate::__shared_munch! {
            [$($head)*] [$($done)* { [$(#[$m])*] $name [$($a : $t),*] $ok, infallible }]
            $($rest)*
        }
    };
    (
        [$($head:tt)*] [$($done:tt)*]
        $(#[$m:meta])* fn $name:ident ( $($a:ident : $t:ty),* $(,)? ) ;
        $($rest:tt)*
    ) => {
        $crate::__shared_munch! {
            [$($head)*] [$($done)* { [$(#[$m])*] $name [$($a : $t),*] (), infallible }]
            $($rest)*
        }
    };
    (
        [$(#[$pmeta:meta])* $pvis:vis $proxy:ident $ty:ty]
        [$({ [$(#[$m:meta])*] $name:ident [$($a:ident : $t:ty),*] $ok:ty, $kind:ident })*]
    ) => {
        $(#[$pmeta])*
        #[derive(Clone, Debug, PartialEq)]
        $pvis struct $proxy($crate::CustomProxy<$ty>);

        const _: () = {
            impl $crate::Shared for $ty {
                const METHODS: &'static [&'static str] = &[$(stringify!($name)),*];
                #[allow(unused_parens, clippy::let_unit_value, clippy::unit_arg)]
                fn call(
                    &mut self,
                    call: $crate::Call<'_>,
                ) -> ::std::result::Result<$crate::Reply, $crate::OpError> {
                    match call.method() {
                        $(
                            stringify!($name) => {
                                let ($($a,)*): ($($t,)*) = call.args()?;
                                $crate::__shared_reply!($kind, call, self.$name($($a),*))
                            }
                        )*
                        _ => ::std::result::Result::Err(call.unknown_method()),
                    }
                }
            }

            impl $proxy {
                $(
                    $(#[$m])*
                    #[allow(missing_docs)]
                    pub fn $name(&self, $($a: $t),*) -> ::std::result::Result<$ok, $crate::ManagerError> {
                        self.0.call(stringify!($name), &($($a,)*))
                    }
                )*
            }

            impl $crate::TypedProxy for $proxy {
                type Object = $ty;
                fn from_proxy(p: $crate::CustomProxy<$ty>) -> Self {
                    $proxy(p)
                }
                fn proxy(&self) -> &$crate::CustomProxy<$ty> {
                    &self.0
                }
            }

            impl $crate::__serde::Serialize for $proxy {
                fn serialize<S: $crate::__serde::Serializer>(
                    &self,
                    s: S,
                ) -> ::std::result::Result<S::Ok, S::Error> {
                    $crate::__serde::Serialize::serialize(&self.0, s)
                }
            }

            impl<'de> $crate::__serde::Deserialize<'de> for $proxy {
                fn deserialize<D: $crate::__serde::Deserializer<'de>>(
                    d: D,
                ) -> ::std::result::Result<Self, D::Error> {
                    <$crate::CustomProxy<$ty> as $crate::__serde::Deserialize<'de>>::deserialize(d).map($proxy)
                }
            }
        };
    };
}

/// [`shared!`]'s answer of one call: a fallible method's `Err` becomes
/// `MethodFailed`.
#[doc(hidden)]
#[macro_export]
macro_rules! __shared_reply {
    (fallible, $call:ident, $e:expr) => {
        match $e {
            ::std::result::Result::Ok(v) => $call.reply(&v),
            ::std::result::Result::Err(e) => ::std::result::Result::Err($call.fail(e)),
        }
    };
    (infallible, $call:ident, $e:expr) => {
        $call.reply(&$e)
    };
}
