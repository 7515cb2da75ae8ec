//! "Using a remote manager", from the `multiprocessing` documentation, in Rust.
//!
//! One process serves a queue; clients on other machines (here: other
//! processes) connect with the address and the auth key, and put and get.
//!
//! ```text
//! cargo run --example remote_manager -- server            # serves on 0.0.0.0:50000
//! cargo run --example remote_manager -- put 127.0.0.1:50000
//! cargo run --example remote_manager -- get 127.0.0.1:50000   # prints hello
//! ```
//!
//! The server prints `serving on ADDRESS` once clients can connect (give it
//! `127.0.0.1:0` to pick a free port). The Python it follows:
//!
//! ```python
//! # server
//! queue = Queue()
//! class QueueManager(BaseManager): pass
//! QueueManager.register('get_queue', callable=lambda: queue)
//! m = QueueManager(address=('', 50000), authkey=b'abracadabra')
//! m.get_server().serve_forever()
//! # a client that puts
//! class QueueManager(BaseManager): pass
//! QueueManager.register('get_queue')
//! m = QueueManager(address=('foo.bar.org', 50000), authkey=b'abracadabra')
//! m.connect()
//! m.get_queue().put('hello')
//! # another that gets
//! ... m.get_queue().get()   # 'hello'
//! ```

use procshare::{AuthKey, Manager};
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};

/// Python's `queue.Queue`: every object the factory makes shares it, as
/// `lambda: queue` hands out the one queue.
#[derive(Clone, Default)]
struct SharedQueue(Arc<(Mutex<VecDeque<String>>, Condvar)>);

impl SharedQueue {
    fn put(&mut self, item: String) {
        let (q, cv) = &*self.0;
        q.lock().unwrap_or_else(|p| p.into_inner()).push_back(item);
        cv.notify_one();
    }

    fn get(&mut self) -> String {
        let (q, cv) = &*self.0;
        let mut q = q.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(item) = q.pop_front() {
                return item;
            }
            q = cv.wait(q).unwrap_or_else(|p| p.into_inner());
        }
    }
}

procshare::shared! {
    /// A proxy to the server's queue (what `m.get_queue()` returns).
    struct RemoteQueue for SharedQueue {
        /// Put an item.
        fn put(item: String);
        /// Take the next item, waiting for one.
        fn get() -> String;
    }
}

fn authkey() -> AuthKey {
    AuthKey::new("abracadabra")
}

/// The role given by the first argument: `server`, `put` or `get`.
pub(crate) fn main() -> Result<(), procshare::ManagerError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let role = args.first().map(String::as_str).unwrap_or("server");
    match role {
        "server" => {
            let addr = args.get(1).map(String::as_str).unwrap_or("0.0.0.0:50000");
            let queue = SharedQueue::default();
            let m = Manager::builder()
                .register("get_queue", move || queue.clone())
                .authkey(authkey())
                .serve(addr)?;
            println!("serving on {}", m.address());
            // serve_forever: the server process serves until this one ends.
            loop {
                std::thread::park();
            }
        }
        "put" | "get" => {
            let addr = args.get(1).map(String::as_str).unwrap_or("127.0.0.1:50000");
            let m = Manager::builder()
                .register_remote::<SharedQueue>("get_queue")
                .authkey(authkey())
                .connect(addr)?;
            let queue: RemoteQueue = m.make("get_queue")?;
            if role == "put" {
                queue.put("hello".to_string())?;
            } else {
                println!("{}", queue.get()?);
            }
            Ok(())
        }
        other => {
            eprintln!("usage: remote_manager server|put|get [ADDRESS] (not {other:?})");
            std::process::exit(2);
        }
    }
}
