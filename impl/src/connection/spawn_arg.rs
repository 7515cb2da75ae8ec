//! A [`Connection`] as an argument of a spawned or forkserver child: its
//! descriptor travels with `SCM_RIGHTS` (or across the exec), as the shared
//! segments' do; its kind and direction by copy.

use std::os::fd::AsFd;

use super::{Connection, Sock};
use crate::process::spawn::{Exporter, Importer, SpawnArg, SpawnError};

impl<T> SpawnArg for Connection<T> {
    fn export(&self, ex: &mut Exporter) -> Result<(), SpawnError> {
        ex.fd(self.as_fd())?;
        ex.put(&(
            self.inner.sock.kind(),
            self.readable,
            self.writable,
            self.limit as u64,
        ))
    }

    fn import(im: &mut Importer) -> Result<Self, SpawnError> {
        let fd = im.take_fd()?;
        let (kind, readable, writable, limit): (u8, bool, bool, u64) = im.take()?;
        let sock =
            Sock::from_kind(kind, fd).ok_or(SpawnError::BadRequest("unknown connection kind"))?;
        let mut c = Connection::from_sock(sock, readable, writable);
        c.limit = usize::try_from(limit).unwrap_or(usize::MAX);
        Ok(c)
    }
}
