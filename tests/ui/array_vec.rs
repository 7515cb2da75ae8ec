// A Vec holds a pointer to this process's heap: meaningless in another process.
fn main() {
    let _a = procshare::Array::from_values([vec![1u8]]);
}
