//! The system calls of procshare, through one binding crate (rustix). Every
//! `unsafe` block that talks to the kernel lives under this module.

pub(crate) mod posix_shm;
