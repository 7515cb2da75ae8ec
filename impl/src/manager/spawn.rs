//! Manager proxies as arguments of spawned and forkserver children.
//!
//! A proxy serializes as a token (address, object id, kind); a process that
//! knows the manager (an endpoint with its auth key) turns the token back into
//! a proxy. A forked child knows its parent's managers; a spawned one (a fresh
//! exec) knows none. So, as CPython pickles a proxy for a child it spawns with
//! the manager's auth key (`authkey` by inheritance, only while
//! `Popen` is spawning), procshare notes the manager of every proxy that is
//! serialized *while a child's arguments are exported* ([`Collect`]), and the
//! start request carries those managers (address, auth key, frame limit)
//! beside the arguments, in the same private payload memfd the arguments
//! travel in (passed by descriptor, never written to a file or the
//! environment). The child makes an endpoint for each ([`install`]) before it
//! decodes its arguments; each proxy decoded then takes a reference of its own
//! on the child's session connection (the same `Incref` a proxy received
//! through a queue takes), so the object outlives the parent's proxy while the
//! child runs, and the child's references go when it exits (by any death,
//! `kill -9` included: its connection closes).
//!
//! The child decodes its arguments before `start` returns (the start-up
//! handshake), and the parent's proxies are alive until then (they are the
//! `Process`'s arguments), so no object can be freed between the export and
//! the child's `Incref`.

use super::client::{Address, Endpoint};
use crate::codec::auth::AuthKey;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::sync::Arc;

/// A manager as a child needs it to turn tokens into proxies.
#[derive(Serialize, Deserialize)]
struct Known {
    address: Address,
    authkey: Vec<u8>,
    limit: u64,
}

thread_local! {
    /// The managers of the proxies serialized by this thread while a child's
    /// arguments are exported (`None`: no export in progress).
    static EXPORTING: RefCell<Option<Vec<Known>>> = const { RefCell::new(None) };
}

/// Called by every proxy's `Serialize`: if a child's arguments are being
/// exported on this thread, remember the proxy's manager (once per address).
pub(crate) fn note(ep: &Endpoint) {
    let _ = EXPORTING.try_with(|e| {
        if let Some(all) = e.borrow_mut().as_mut() {
            if !all.iter().any(|k| k.address == ep.address) {
                all.push(Known {
                    address: ep.address.clone(),
                    authkey: ep.authkey.as_bytes().to_vec(),
                    limit: ep.limit as u64,
                });
            }
        }
    });
}

/// The collection of managers during one export (see the module docs).
/// Dropping it without [`Collect::finish`] (an export that failed) ends it.
pub(crate) struct Collect {
    /// What an enclosing collection had gathered (exports do not nest in
    /// practice; this keeps them correct if they ever do).
    outer: Option<Vec<Known>>,
    active: bool,
}

impl std::fmt::Debug for Collect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collect")
            .field("active", &self.active)
            .finish()
    }
}

impl Collect {
    /// Start noting managers on this thread.
    pub(crate) fn begin() -> Collect {
        let outer = EXPORTING
            .try_with(|e| e.borrow_mut().replace(Vec::new()))
            .ok()
            .flatten();
        Collect {
            outer,
            active: true,
        }
    }

    /// Stop, and the managers noted, encoded (an empty list if none).
    pub(crate) fn finish(mut self) -> Vec<u8> {
        let got = self.end();
        crate::codec::wire::encode(&got).unwrap_or_default()
    }

    fn end(&mut self) -> Vec<Known> {
        self.active = false;
        let outer = self.outer.take();
        EXPORTING
            .try_with(|e| std::mem::replace(&mut *e.borrow_mut(), outer))
            .ok()
            .flatten()
            .unwrap_or_default()
    }
}

impl Drop for Collect {
    fn drop(&mut self) {
        if self.active {
            self.end();
        }
    }
}

/// In a spawned (or forkserver) child, before its arguments are decoded:
/// make the managers the parent noted known here. The returned endpoints must
/// be kept until the arguments are decoded (the proxies then hold them).
/// `bytes` come from the parent (a trusted peer, but checked all the same:
/// malformed bytes are an error message, never a panic).
pub(crate) fn install(bytes: &[u8]) -> Result<Vec<Arc<Endpoint>>, String> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let all: Vec<Known> = crate::codec::wire::decode(bytes)
        .map_err(|e| format!("the managers of the proxy arguments do not decode: {e}"))?;
    let mut eps = Vec::with_capacity(all.len());
    for k in all {
        let ep = match Endpoint::find(&k.address) {
            Some(ep) => ep,
            None => {
                let limit = usize::try_from(k.limit).unwrap_or(usize::MAX);
                let ep = Endpoint::new(k.address, AuthKey::new(k.authkey), limit);
                Endpoint::publish(&ep);
                ep
            }
        };
        eps.push(ep);
    }
    Ok(eps)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A collection shows whether it is still noting managers; one that
    /// noted none finishes with an empty list.
    #[test]
    fn a_collection_shows_its_state_and_finishes_empty() {
        let c = Collect::begin();
        assert_eq!(format!("{c:?}"), "Collect { active: true }");
        let got: Vec<Known> = crate::codec::wire::decode(&c.finish()).unwrap();
        assert!(got.is_empty());
    }
}
