//! The pipe moved to [`crate::connection`] (a module per primitive); this
//! re-export keeps the queue module's and the crate's old paths working.

pub use crate::connection::{Connection, Pipe, PipeError};
