//! Plain data in shared memory: [`Value`](value::Value) and
//! [`Array`](array::Array), with or without a lock.

pub(crate) mod array;
pub(crate) mod value;
