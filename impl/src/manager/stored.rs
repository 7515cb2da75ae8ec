//! Proxies stored in managed containers: a value stored by a list, dict,
//! value or namespace proxy that embeds proxies of the same manager is sent
//! as the model's [`Op::Holding`], naming those objects, so that the
//! container holds them while it stores the value (the server's side is
//! `procshare_model::manager::server`'s `Table::store` / `Table::prune`).
//!
//! The embedded proxies are found while the value is encoded: every proxy's
//! `Serialize` calls [`note`], which records its object on this thread while
//! [`enc_holding`] encodes. A Redis manager's proxies are not noted: its
//! objects are not reference counted (its backend answers `Incref`/`Decref`
//! with `Ok` and keeps every object).

use super::client::{enc, Address, Result};
use procshare_model::manager::{ObjId, Op};
use std::cell::RefCell;

thread_local! {
    /// The objects of the proxies serialized by this thread during an
    /// [`enc_holding`] (`None`: none in progress).
    static COLLECTING: RefCell<Option<Vec<(Address, ObjId)>>> = const { RefCell::new(None) };
}

/// Called by every proxy's `Serialize`: if a stored value is being encoded
/// on this thread, remember the proxy's object.
pub(crate) fn note(address: &Address, id: ObjId) {
    let _ = COLLECTING.try_with(|c| {
        if let Some(all) = c.borrow_mut().as_mut() {
            all.push((address.clone(), id));
        }
    });
}

/// `v` encoded, and the objects of the manager at `address` whose proxies
/// it embeds (a proxy of another manager cannot be held by this one's
/// containers: it is encoded, not held).
pub(crate) fn enc_holding<T: serde::Serialize + ?Sized>(
    address: &Address,
    v: &T,
) -> Result<(Vec<u8>, Vec<ObjId>)> {
    let outer = COLLECTING.with(|c| c.replace(Some(Vec::new())));
    let r = enc(v);
    let got = COLLECTING.with(|c| c.replace(outer)).unwrap_or_default();
    let b = r?;
    let mut ids: Vec<ObjId> = got
        .into_iter()
        .filter(|(a, _)| a == address)
        .map(|(_, id)| id)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    Ok((b, ids))
}

/// `op` (which stores one value), holding `ids` if there are any.
pub(crate) fn holding(ids: Vec<ObjId>, op: Op) -> Op {
    if ids.is_empty() {
        op
    } else {
        Op::Holding(ids, Box::new(op))
    }
}
