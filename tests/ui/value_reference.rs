// A reference is an address in this process only.
static X: u32 = 5;
fn main() {
    let _v = procshare::Value::new(&X);
}
