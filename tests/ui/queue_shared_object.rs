// A shared object cannot be put on a queue or sent through a pipe: it is not
// `Serialize` (CPython: RuntimeError: Synchronized objects should only be
// shared between processes through inheritance).
use procshare::Lock;
use procshare::{Pipe, Queue, Value};

fn main() {
    let q: Queue<Value<u32>> = Queue::new().unwrap();
    q.put(&Value::new(1).unwrap()).unwrap();
    let (a, _b) = Pipe::<Lock>::new(true).unwrap();
    a.send(&Lock::new().unwrap()).unwrap();
    let qq: Queue<Queue<u8>> = Queue::new().unwrap();
    qq.put(&Queue::new().unwrap()).unwrap();
}
