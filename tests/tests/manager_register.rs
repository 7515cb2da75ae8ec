//! Custom types on a manager (`Manager::builder().register`, the `shared!`
//! proxies): the docs' remote-manager example as real processes, calls from
//! forked children, typed errors, a server that survives a panicking method,
//! reference counting, and proxies that travel.

use procshare::internals::wire;
use procshare::{AuthKey, CustomProxy, Event, Manager, OpError, Process, TypedProxy, Value};
use procshare_tests::quiet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const GENEROUS: Duration = Duration::from_secs(30);

/// A counter whose `add` reads, yields and writes: a lost update unless
/// the server runs one call at a time on the object.
struct Counter {
    n: i64,
    /// Set when the server drops the object (shared memory, inherited by
    /// the forked server through the factory).
    dropped: Option<Event>,
}

impl Counter {
    fn add(&mut self, k: i64) -> i64 {
        let v = self.n;
        std::thread::yield_now();
        self.n = v + k;
        self.n
    }
    fn get(&self) -> i64 {
        self.n
    }
    fn fail(&mut self, why: String) -> Result<(), String> {
        Err(why)
    }
    fn explode(&mut self) -> i64 {
        panic!("explode() was called")
    }
}

impl Drop for Counter {
    fn drop(&mut self) {
        if let Some(e) = &self.dropped {
            e.set();
        }
    }
}

procshare::shared! {
    /// A proxy to a [`Counter`].
    struct CounterProxy for Counter {
        fn add(k: i64) -> i64;
        fn get() -> i64;
        fn fail(why: String) -> Result<(), String>;
        fn explode() -> i64;
    }
}

/// Another type, for mismatches.
struct Other;
impl Other {
    fn get(&self) -> i64 {
        0
    }
}
procshare::shared! {
    /// A proxy to an [`Other`].
    struct OtherProxy for Other {
        fn get() -> i64;
    }
}

fn counter_manager(dropped: Option<Event>) -> Manager {
    Manager::builder()
        .register("Counter", move || Counter {
            n: 0,
            dropped: dropped.clone(),
        })
        .start()
        .unwrap()
}

/// The docs' "Using a remote manager", run as written: a server process
/// serving `get_queue` on TCP with the key `abracadabra`, a client process
/// that puts `hello`, another that gets it; then a getter that waits for a
/// later put (the get blocks in the server on its own object while the put
/// goes through another).
#[test]
fn remote_manager_example_runs_as_real_processes() {
    /// The server process, killed however the test ends (it serves forever).
    struct Server(std::process::Child);
    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let exe = env!("CARGO_BIN_EXE_remote_manager");
    let mut server = Server(
        Command::new(exe)
            .args(["server", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(server.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("serving on ")
        .unwrap_or_else(|| panic!("server said {line:?}"))
        .to_string();
    let run = |role: &str| {
        Command::new(exe)
            .args([role, &addr])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let put = run("put").wait_with_output().unwrap();
    assert!(put.status.success(), "{put:?}");
    let get = run("get").wait_with_output().unwrap();
    assert!(get.status.success(), "{get:?}");
    assert_eq!(String::from_utf8_lossy(&get.stdout), "hello\n");
    // A getter first (it waits in the server), then a putter.
    let getter = run("get");
    let put = run("put").wait_with_output().unwrap();
    assert!(put.status.success(), "{put:?}");
    let get = getter.wait_with_output().unwrap();
    assert!(get.status.success(), "{get:?}");
    assert_eq!(String::from_utf8_lossy(&get.stdout), "hello\n");
    // serve_forever ends with its process (the guard kills it); the manager
    // server follows it.
    drop(server);
}

#[test]
fn forked_children_call_one_object_serialized() {
    quiet();
    let m = counter_manager(None);
    let c: CounterProxy = m.make("Counter").unwrap();
    let mut kids: Vec<Process> = (0..4)
        .map(|_| {
            let c = c.clone();
            let mut p = Process::new(move || {
                for _ in 0..25 {
                    c.add(1).unwrap();
                }
            });
            p.start().unwrap();
            p
        })
        .collect();
    for k in &mut kids {
        assert_eq!(k.join().unwrap(), 0);
    }
    assert_eq!(c.get().unwrap(), 100);
}

#[test]
fn typed_errors_and_the_server_keeps_serving() {
    quiet();
    let m = Manager::builder()
        .register("Counter", || Counter {
            n: 0,
            dropped: None,
        })
        .register_remote::<Other>("Other")
        .register_remote::<Other>("Counter2")
        .start()
        .unwrap();
    // Unknown to this handle: refused without asking.
    let e = m.make::<CounterProxy>("Nope").unwrap_err();
    assert_eq!(e.op_error(), Some(&OpError::UnknownType("Nope".into())));
    // Known here, not served there.
    let e = m.make::<OtherProxy>("Other").unwrap_err();
    assert_eq!(e.op_error(), Some(&OpError::UnknownType("Other".into())));
    // Registered here for another type.
    let e = m.make::<OtherProxy>("Counter").unwrap_err();
    assert!(
        matches!(e.op_error(), Some(OpError::TypeMismatch { .. })),
        "{e}"
    );
    // A client registered under the server's name with other methods.
    let client = Manager::builder()
        .register_remote::<Other>("Counter")
        .authkey(m.authkey().clone())
        .connect(m.address().clone())
        .unwrap();
    let e = client.make::<OtherProxy>("Counter").unwrap_err();
    assert_eq!(
        e.op_error(),
        Some(&OpError::TypeMismatch {
            typeid: "Counter".into(),
            methods: ["add", "get", "fail", "explode"].map(String::from).to_vec(),
        })
    );

    let c: CounterProxy = m.make("Counter").unwrap();
    let raw = c.proxy();
    let e = raw.call::<_, i64>("nope", &()).unwrap_err();
    assert_eq!(
        e.op_error(),
        Some(&OpError::UnknownMethod {
            typeid: "Counter".into(),
            method: "nope".into()
        })
    );
    let e = raw.call::<_, i64>("add", &("one",)).unwrap_err();
    assert!(
        matches!(e.op_error(), Some(OpError::BadArgument { method, .. }) if method == "add"),
        "{e}"
    );
    let e = c.fail("no luck".into()).unwrap_err();
    assert_eq!(
        e.op_error(),
        Some(&OpError::MethodFailed {
            method: "fail".into(),
            message: "no luck".into()
        })
    );
    assert_eq!(e.to_string(), "method \"fail\" failed: no luck");
    let e = c.explode().unwrap_err();
    assert!(
        matches!(e.op_error(), Some(OpError::MethodFailed { message, .. }) if message.contains("explode() was called")),
        "{e}"
    );
    // The object and the server live on.
    assert_eq!(c.add(2).unwrap(), 2);
    m.ping().unwrap();
    let c2: CounterProxy = m.make("Counter").unwrap();
    assert_eq!(c2.get().unwrap(), 0);
}

#[test]
fn the_last_proxy_dropped_frees_the_object() {
    quiet();
    let dropped = Event::new().unwrap();
    let m = counter_manager(Some(dropped.clone()));
    let c: CounterProxy = m.make("Counter").unwrap();
    let token = wire::encode(&c).unwrap();
    let done = Value::new(0i64).unwrap();
    let d2 = done.clone();
    let c2 = c.clone();
    // A child holds what it inherited while its parent drops everything.
    let parent_dropped = Event::new().unwrap();
    let pd = parent_dropped.clone();
    let mut p = Process::new(move || {
        pd.wait();
        d2.set(c2.add(5).unwrap());
    });
    p.start().unwrap();
    let received: CounterProxy = wire::decode(&token).unwrap();
    drop(c);
    assert!(!dropped.is_set(), "freed while a received proxy holds it");
    drop(received);
    parent_dropped.set();
    assert_eq!(p.join().unwrap(), 0);
    assert_eq!(done.get(), 5);
    // The child was the last holder: its exit freed the object.
    assert!(
        dropped.wait_timeout(GENEROUS),
        "the object outlived every proxy"
    );
    assert!(wire::decode::<CounterProxy>(&token).is_err());
}

#[test]
fn proxies_travel_through_a_managed_queue_and_list() {
    quiet();
    let m = counter_manager(None);
    let c: CounterProxy = m.make("Counter").unwrap();
    let q = m.queue::<CounterProxy>(None).unwrap();
    q.put(&c).unwrap();
    let mut p = Process::new(move || {
        let c = q.get().unwrap();
        c.add(3).unwrap();
    });
    p.start().unwrap();
    assert_eq!(p.join().unwrap(), 0);
    assert_eq!(c.get().unwrap(), 3);
    let l = m.list::<CustomProxy<Counter>>().unwrap();
    l.append(c.proxy()).unwrap();
    let back = l.get(0).unwrap();
    assert_eq!(back.call::<_, i64>("get", &()).unwrap(), 3);
    // A proxy to a built-in object does not read back as a custom one.
    let v = m.list::<u8>().unwrap();
    let token = wire::encode(&v).unwrap();
    assert!(wire::decode::<CounterProxy>(&token).is_err());
}

#[test]
fn a_remote_client_over_tcp_with_register_remote() {
    quiet();
    let key = AuthKey::new("abracadabra");
    let server = Manager::builder()
        .register("Counter", || Counter {
            n: 10,
            dropped: None,
        })
        .authkey(key.clone())
        .serve("127.0.0.1:0")
        .unwrap();
    let addr = server.address().clone();
    let mut p = Process::new(move || {
        let m = Manager::builder()
            .register_remote::<Counter>("Counter")
            .authkey(key)
            .connect(addr)
            .unwrap();
        let c: CounterProxy = m.make("Counter").unwrap();
        assert_eq!(c.add(1).unwrap(), 11);
    });
    p.start().unwrap();
    assert_eq!(p.join().unwrap(), 0);
}

/// A queue shared by every object its factory makes (the docs' `lambda:
/// queue`), that counts the `get`s waiting in it.
#[derive(Clone, Default)]
struct Mailbox(std::sync::Arc<(std::sync::Mutex<Letters>, std::sync::Condvar)>);

/// The letters, and how many `get`s wait for one.
type Letters = (Vec<String>, usize);

impl Mailbox {
    fn put(&mut self, s: String) {
        let (m, cv) = &*self.0;
        m.lock().unwrap().0.push(s);
        cv.notify_all();
    }
    fn get(&mut self) -> String {
        let (m, cv) = &*self.0;
        let mut g = m.lock().unwrap();
        g.1 += 1;
        loop {
            if let Some(s) = g.0.pop() {
                g.1 -= 1;
                return s;
            }
            g = cv.wait(g).unwrap();
        }
    }
    fn waiting(&self) -> usize {
        self.0 .0.lock().unwrap().1
    }
}

procshare::shared! {
    /// A proxy to a [`Mailbox`].
    struct MailboxProxy for Mailbox {
        fn put(s: String);
        fn get() -> String;
        fn waiting() -> usize;
    }
}

/// A child's `get` waits in the server (on its own object); meanwhile the
/// parent's calls on other objects, built-in operations and the `put` that
/// releases it go through.
#[test]
fn a_blocked_call_holds_up_only_its_object() {
    quiet();
    let mailbox = Mailbox::default();
    let m = Manager::builder()
        .register("mailbox", move || mailbox.clone())
        .start()
        .unwrap();
    let mine: MailboxProxy = m.make("mailbox").unwrap();
    let theirs: MailboxProxy = m.make("mailbox").unwrap();
    let got = m.value(String::new()).unwrap();
    let g2 = got.clone();
    let mut p = Process::new(move || {
        g2.set(&theirs.get().unwrap()).unwrap();
    });
    p.start().unwrap();
    // Until the child's get waits in the server: each `waiting` is a call on
    // another object of the same factory, answered while that get waits.
    let deadline = std::time::Instant::now() + GENEROUS;
    while mine.waiting().unwrap() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the child's get never arrived"
        );
        std::thread::yield_now();
    }
    let l = m.list_from([1u8]).unwrap();
    assert_eq!(l.len().unwrap(), 1);
    mine.put("hello".into()).unwrap();
    assert_eq!(p.join().unwrap(), 0);
    assert_eq!(got.get().unwrap(), "hello");
    assert_eq!(mine.waiting().unwrap(), 0);
}

/// Factories are closures only a forked server inherits: a builder with
/// registered types refuses spawn and forkserver (start and serve alike)
/// with an error naming the types, and starts nothing; with fork (or a
/// client's `register_remote` only, which has no factory) it starts.
#[test]
fn registered_types_need_a_forked_server() {
    quiet();
    for method in [
        procshare::StartMethod::Spawn,
        procshare::StartMethod::ForkServer,
    ] {
        let builder = || {
            Manager::builder()
                .start_method(method)
                .register("Counter", || Counter {
                    n: 0,
                    dropped: None,
                })
        };
        for e in [
            builder().start().unwrap_err(),
            builder().serve("127.0.0.1:0").unwrap_err(),
        ] {
            let msg = e.to_string();
            assert!(
                msg.contains("(Counter)") && msg.contains("needs the fork start method"),
                "{method:?}: {msg}"
            );
        }
        // A client's registration (no factory) is no reason to refuse.
        let mut m = Manager::builder()
            .start_method(method)
            .register_remote::<Counter>("Counter")
            .start()
            .unwrap();
        m.ping().unwrap();
        // A spawned server's exit code is kept too.
        m.shutdown().unwrap();
        assert_eq!(m.exitcode(), Some(0), "{method:?}");
    }
    let m = Manager::builder()
        .start_method(procshare::StartMethod::Fork)
        .register("Counter", || Counter {
            n: 0,
            dropped: None,
        })
        .start()
        .unwrap();
    let c: CounterProxy = m.make("Counter").unwrap();
    assert_eq!(c.add(2).unwrap(), 2);
}
