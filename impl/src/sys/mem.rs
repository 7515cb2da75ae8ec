//! Memory held by shared-memory files: giving pages back while the file
//! stays mapped (`fallocate(PUNCH_HOLE)`), and measuring what a file holds
//! (`fstat`'s `st_blocks`). Used by the queue ring, which reserves a large
//! sparse memfd and gives consumed pages back (see `procshare_model::ring`,
//! "Reclaiming memory").

use std::io;
use std::os::fd::BorrowedFd;

/// Gives back the memory of `len` bytes at `offset` of the file behind `fd`
/// (a memfd): they read as zeros afterwards and hold no memory until written
/// again; the file keeps its size, and every mapping of it stays valid.
/// Only whole pages inside the range are freed (the rest is zeroed).
pub(crate) fn punch_hole(fd: BorrowedFd<'_>, offset: u64, len: u64) -> io::Result<()> {
    use rustix::fs::FallocateFlags;
    loop {
        match rustix::fs::fallocate(
            fd,
            FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
            offset,
            len,
        ) {
            Err(rustix::io::Errno::INTR) => continue,
            r => return Ok(r?),
        }
    }
}

/// The memory the file behind `fd` holds, in bytes (`st_blocks * 512`).
pub(crate) fn allocated_bytes(fd: BorrowedFd<'_>) -> io::Result<u64> {
    Ok(rustix::fs::fstat(fd)?.st_blocks as u64 * 512)
}
