// ShmBox only takes ShmSafe types: an Arc is a process-local pointer with drop glue.
fn main() {
    let _b = procshare::shm::ShmBox::new(std::sync::Arc::new(1u32));
}
