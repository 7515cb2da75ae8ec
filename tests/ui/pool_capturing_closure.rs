// A pool task is a plain `fn(T) -> R`: the worker finds the same function at
// the same address in its forked copy of the program. A closure that captures
// state (here `offset`) has no such address and is refused at compile time.
fn main() {
    let pool = procshare::Pool::new(1).unwrap();
    let offset = 10;
    let _ = pool.map(move |x: i32| x + offset, 0..3);
}
