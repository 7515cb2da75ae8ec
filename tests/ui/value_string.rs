// A String holds a pointer to this process's heap: meaningless in another process.
fn main() {
    let _v = procshare::Value::new(String::from("not plain data"));
}
