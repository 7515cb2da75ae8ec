//! Integration tests and the seed scenarios of procshare.
/// Seed 000's two programs (a plain list; a manager list). If a
/// `scenarios` module is added, move this to `scenarios/mod.rs` as `pub mod seed000;`.
#[path = "scenarios/seed000.rs"]
pub mod seed000;
