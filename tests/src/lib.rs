//! Integration tests and the seed scenarios of procshare.
// The examples (`../examples/*.rs`) are modules of this crate and also
// binaries that depend on it: both name it `procshare_tests`.
extern crate self as procshare_tests;

pub mod corpus;
pub mod history;
pub mod scenarios;
pub use scenarios::{say, seed000};

/// Silences procshare's "forking a multi-threaded process" warning for this
/// test process: test binaries run their tests on several threads, so every
/// fork would warn.
pub fn quiet() {
    procshare::set_fork_warning(false);
}
