//! `examples/remote_manager.rs` as a binary of this crate, so that
//! `tests/tests/manager_register.rs` can run it as real processes
//! (`CARGO_BIN_EXE_remote_manager`, built before the tests).

#[path = "../../../examples/remote_manager.rs"]
mod remote_manager;

fn main() -> Result<(), procshare::ManagerError> {
    remote_manager::main()
}
