//! Objects of types registered on the server (CPython's
//! `BaseManager.register(typeid, callable)`): the registry of factories, the
//! object cell, and the call step.
//!
//! A registered type is known to the server as a [`CustomObject`]: methods by
//! name over encoded arguments (the typed layer, with its codec, is
//! `procshare`'s `Shared` trait). Each object lives in a cell of its own: a
//! [`ServerSync::Mutex`] that serializes the object's calls (one at a time
//! per object, so the object is `&mut`), taken *without* the server's table
//! lock, so a slow or blocking method holds up only its own object, never
//! the other objects or the built-in operations. (CPython runs each call on
//! the connection's server thread with no lock at all, and relies on the
//! object being thread-safe; in Rust the per-object lock is what gives the
//! method its `&mut self`.)
//!
//! The call step, for `Request::Op(id, Op::Call(method, args))`:
//!
//! 1. under the table lock: find the object and clone its cell (an `Arc`:
//!    a concurrent decref that frees the object leaves the call its cell);
//! 2. the method must be one the type exposes (else `UnknownMethod`);
//! 3. under the object's lock: decode and run ([`CustomObject::call`]:
//!    `BadArgument`, `MethodFailed`); a panic in the method is caught and
//!    answered as `MethodFailed`, and the server keeps serving.
//!
//! Seeded bugs: 760 runs the call under the table lock (a method that waits
//! for another object deadlocks the server); 761 takes the object out of its
//! cell for the call and puts it back after (the lock is not held across the
//! call: a concurrent call on the same object finds it missing).

use super::protocol::*;
use super::server::ServerSync;
use crate::platform::{mutant, Mutant};
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

/// Seeded bug 760: a custom call runs under the server's table lock.
#[doc(hidden)]
pub const MUTANT_CALL_UNDER_TABLE: Mutant = Mutant(760);
/// Seeded bug 761: the object is taken out of its cell for the call (its
/// lock not held across the call), so calls on one object are not serialized.
#[doc(hidden)]
pub const MUTANT_CALL_UNLOCKED: Mutant = Mutant(761);

/// An object of a registered type, as the server sees it.
pub trait CustomObject: Send + 'static {
    /// Run `method` (one of the type's exposed methods) with the encoded
    /// `args`; answer the encoded result, or `BadArgument` (the arguments do
    /// not decode) or `MethodFailed` (the method's error).
    fn call(&mut self, method: &str, args: &[u8]) -> Result<Bytes, OpError>;
}

/// Makes a new object of a registered type.
pub type Factory = Arc<dyn Fn() -> Box<dyn CustomObject> + Send + Sync>;

/// Makes a new object of a registered type from the factory's encoded
/// arguments (`BadArgument` if they do not decode).
pub type ArgsFactory = Arc<dyn Fn(&[u8]) -> Result<Box<dyn CustomObject>, OpError> + Send + Sync>;

/// A registered type's factory: without or with arguments.
#[derive(Clone)]
enum Make {
    Plain(Factory),
    Args(ArgsFactory),
}

/// A registered type: its exposed methods and its factory.
#[derive(Clone)]
struct Entry {
    methods: Arc<[String]>,
    factory: Make,
}

/// The types registered on a server, by name, and the maker of its pools.
#[derive(Clone, Default)]
pub struct Registry {
    types: HashMap<String, Entry>,
    /// Makes `Init::Pool` objects (`None`: this server has no pools).
    pools: Option<super::pool::PoolFactory>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<_> = self.types.keys().collect();
        names.sort();
        f.debug_struct("Registry").field("types", &names).finish()
    }
}

impl Registry {
    /// Register `factory` under `typeid`, exposing `methods` (a later
    /// registration of the same name replaces it, as CPython's).
    pub fn register(&mut self, typeid: &str, methods: &[&str], factory: Factory) {
        self.types.insert(
            typeid.to_string(),
            Entry {
                methods: methods.iter().map(|m| m.to_string()).collect(),
                factory: Make::Plain(factory),
            },
        );
    }

    /// Register `factory`, which takes arguments, under `typeid`, exposing
    /// `methods` (CPython's `register(typeid, callable)` with a callable of
    /// parameters).
    pub fn register_with_args(&mut self, typeid: &str, methods: &[&str], factory: ArgsFactory) {
        self.types.insert(
            typeid.to_string(),
            Entry {
                methods: methods.iter().map(|m| m.to_string()).collect(),
                factory: Make::Args(factory),
            },
        );
    }

    /// Make the server's pools with `factory` ([`super::pool`]).
    pub fn set_pools(&mut self, factory: super::pool::PoolFactory) {
        self.pools = Some(factory);
    }

    /// A new pool of `processes` workers, for the server's table.
    pub(super) fn make_pool<S: ServerSync>(
        &self,
        processes: u64,
    ) -> Result<super::pool::PoolCell, OpError> {
        let f = self
            .pools
            .as_ref()
            .ok_or_else(|| OpError::BadRequest("this manager's server makes no pools".into()))?;
        let runner = catch_unwind(AssertUnwindSafe(|| f(processes))).map_err(|p| {
            OpError::MethodFailed {
                method: "Pool".into(),
                message: panic_message(&*p),
            }
        })??;
        Ok(super::pool::PoolCell::new::<S>(runner))
    }

    /// Is `typeid` registered?
    pub fn contains(&self, typeid: &str) -> bool {
        self.types.contains_key(typeid)
    }

    /// Is no type registered?
    pub fn is_empty(&self) -> bool {
        self.types.is_empty()
    }

    /// The registered names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.types.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// A new object of type `typeid`, for a client that knows it by
    /// `methods`, from the factory's encoded `args` if any (a factory that
    /// takes arguments needs them; one that takes none refuses them).
    pub(super) fn make<S: ServerSync>(
        &self,
        typeid: &str,
        methods: &[String],
        args: Option<&[u8]>,
    ) -> Result<CustomCell, OpError> {
        let e = self
            .types
            .get(typeid)
            .ok_or_else(|| OpError::UnknownType(typeid.to_string()))?;
        if *e.methods != *methods {
            return Err(OpError::TypeMismatch {
                typeid: typeid.to_string(),
                methods: e.methods.to_vec(),
            });
        }
        let factory = format!("{typeid} factory");
        let obj = catch_unwind(AssertUnwindSafe(|| match (&e.factory, args) {
            (Make::Plain(f), None) => Ok(f()),
            (Make::Args(f), Some(a)) => f(a),
            (Make::Plain(_), Some(_)) => Err(OpError::BadArgument {
                method: factory.clone(),
                why: "this factory takes no arguments".into(),
            }),
            (Make::Args(_), None) => Err(OpError::BadArgument {
                method: factory.clone(),
                why: "this factory takes arguments".into(),
            }),
        }))
        .map_err(|p| OpError::MethodFailed {
            method: factory.clone(),
            message: panic_message(&*p),
        })??;
        Ok(CustomCell {
            typeid: typeid.into(),
            methods: e.methods.clone(),
            obj: Arc::new(Locked::<S>(S::mutex(Some(obj)))),
        })
    }
}

/// An object's lock, with the object in it (`None` only while mutant 761
/// has taken it out).
struct Locked<S: ServerSync>(S::Mutex<Option<Box<dyn CustomObject>>>);

impl<S: ServerSync> Drop for Locked<S> {
    /// The object's `Drop` is user code: a panic in it is caught (the
    /// server's thread goes on).
    fn drop(&mut self) {
        let obj = S::with(&self.0, |g| g.take());
        if let Some(o) = obj {
            let _ = catch_unwind(AssertUnwindSafe(move || drop(o)));
        }
    }
}

/// What a cell does for the call step, whatever the server's [`ServerSync`].
trait Cell: Send + Sync {
    fn call(&self, typeid: &str, method: &str, args: &[u8], unlocked: bool) -> Response;
}

impl<S: ServerSync> Cell for Locked<S> {
    fn call(&self, typeid: &str, method: &str, args: &[u8], unlocked: bool) -> Response {
        let run = |o: &mut Box<dyn CustomObject>| match catch_unwind(AssertUnwindSafe(|| {
            o.call(method, args)
        })) {
            Ok(Ok(b)) => Response::Item(b),
            Ok(Err(e)) => Response::Err(e),
            Err(p) => Response::Err(OpError::MethodFailed {
                method: method.to_string(),
                message: panic_message(&*p),
            }),
        };
        if unlocked {
            // Mutant 761: out of the cell, the lock released, for the call.
            let Some(mut o) = S::with(&self.0, |g| g.take()) else {
                return Response::Err(OpError::MethodFailed {
                    method: method.to_string(),
                    message: format!("{typeid} object is busy"),
                });
            };
            let r = run(&mut o);
            S::with(&self.0, |g| *g = Some(o));
            return r;
        }
        S::with(&self.0, |g| match g.as_mut() {
            Some(o) => run(o),
            None => Response::Err(OpError::MethodFailed {
                method: method.to_string(),
                message: format!("{typeid} object is busy"),
            }),
        })
    }
}

/// A registered type's object in the server's table.
#[derive(Clone)]
pub struct CustomCell {
    typeid: Arc<str>,
    methods: Arc<[String]>,
    obj: Arc<dyn Cell>,
}

impl std::fmt::Debug for CustomCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CustomCell({})", self.typeid)
    }
}

impl CustomCell {
    /// The registered name of the object's type.
    pub fn typeid(&self) -> &str {
        &self.typeid
    }
}

/// The call step: run `method` of the object in `cell` (found under the
/// table lock; `under_table` is mutant 760's table lock, held across the
/// call). Never panics.
pub(super) fn call<S: ServerSync>(cell: &CustomCell, method: &str, args: &[u8]) -> Response {
    if !cell.methods.iter().any(|m| m == method) {
        return Response::Err(OpError::UnknownMethod {
            typeid: cell.typeid.to_string(),
            method: method.to_string(),
        });
    }
    cell.obj.call(
        &cell.typeid,
        method,
        args,
        mutant::<S>(MUTANT_CALL_UNLOCKED),
    )
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        format!("panicked: {s}")
    } else if let Some(s) = p.downcast_ref::<String>() {
        format!("panicked: {s}")
    } else {
        "panicked".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manager::{Init, Request, Server, StdSync};

    struct Echo(Bytes);
    impl CustomObject for Echo {
        fn call(&mut self, _method: &str, _args: &[u8]) -> Result<Bytes, OpError> {
            Ok(self.0.clone())
        }
    }

    fn server() -> Server<StdSync> {
        let mut reg = Registry::default();
        // Its arguments: one byte, kept; anything else does not decode.
        reg.register_with_args(
            "echo",
            &["get"],
            Arc::new(|a: &[u8]| match a {
                [x] => Ok(Box::new(Echo(vec![*x])) as Box<dyn CustomObject>),
                _ => Err(OpError::BadArgument {
                    method: "factory".into(),
                    why: "one byte".into(),
                }),
            }),
        );
        reg.register(
            "plain",
            &["get"],
            Arc::new(|| Box::new(Echo(vec![0])) as Box<dyn CustomObject>),
        );
        Server::with_registry(reg)
    }

    fn with(typeid: &str, args: Option<Bytes>) -> Init {
        let methods = vec!["get".to_string()];
        match args {
            None => Init::Custom {
                typeid: typeid.into(),
                methods,
            },
            Some(args) => Init::CustomWith {
                typeid: typeid.into(),
                methods,
                args,
            },
        }
    }

    #[test]
    fn a_factory_with_arguments_gets_each_creation_s_own() {
        let s = server();
        for x in [7u8, 9] {
            let id = match s.handle(1, Request::Create(with("echo", Some(vec![x])))) {
                Response::Created(id, _) => id,
                r => panic!("create answered {r:?}"),
            };
            let r = s.handle(
                1,
                Request::Op(id, crate::manager::Op::Call("get".into(), vec![])),
            );
            assert_eq!(r, Response::Item(vec![x]));
        }
    }

    #[test]
    fn arguments_a_factory_does_not_take_are_refused() {
        let s = server();
        let bad = |init| match s.handle(1, Request::Create(init)) {
            Response::Err(OpError::BadArgument { .. }) => true,
            r => panic!("create answered {r:?}"),
        };
        assert!(bad(with("echo", Some(vec![1, 2]))));
        assert!(bad(with("echo", None)));
        assert!(bad(with("plain", Some(vec![1]))));
        assert_eq!(s.live_objects(), 0);
    }
}
