//! What crosses a process boundary by copy: the wire format (length-prefixed
//! postcard frames with a size limit) and the mutual HMAC handshake.

pub(crate) mod auth;
pub mod wire;
