//! Compile-time guarantees, shown with trybuild: only plain data goes into
//! shared memory.

#[test]
fn only_plain_data_in_shared_memory() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/value_string.rs");
    t.compile_fail("ui/array_vec.rs");
    t.compile_fail("ui/value_reference.rs");
    t.compile_fail("ui/pool_capturing_closure.rs");
    t.compile_fail("ui/queue_shared_object.rs");
}
