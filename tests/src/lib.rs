//! Integration tests and the seed scenarios of procshare.
pub mod corpus;
pub mod scenarios;
pub use scenarios::seed000;
