//! Proxies stored in managed containers: a value stored by a list, dict,
//! value or namespace proxy that embeds proxies of the same manager is sent
//! as the model's [`Op::Holding`], naming those objects (a store of many
//! values, `extend`, `update`, `list_from`, `dict_from`:
//! [`Op::HoldingEach`], naming each value's), so that the
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

/// Each of `it` encoded with [`enc_holding`]: the encoded values, and the
/// objects each embeds proxies to (one list per value).
#[allow(clippy::type_complexity)]
pub(crate) fn enc_each<T: serde::Serialize + ?Sized, B: std::borrow::Borrow<T>>(
    address: &Address,
    it: impl IntoIterator<Item = B>,
) -> Result<(Vec<Vec<u8>>, Vec<Vec<ObjId>>)> {
    let mut bytes = Vec::new();
    let mut each = Vec::new();
    for x in it {
        let (b, ids) = enc_holding(address, x.borrow())?;
        bytes.push(b);
        each.push(ids);
    }
    Ok((bytes, each))
}

/// Does any of `each` name an object (is [`holding_each`] needed)?
pub(crate) fn holds_any(each: &[Vec<ObjId>]) -> bool {
    each.iter().any(|ids| !ids.is_empty())
}

/// `op` (which stores one value per entry of `each`, in order), holding
/// each value's objects if any value embeds a proxy.
pub(crate) fn holding_each(each: Vec<Vec<ObjId>>, op: Op) -> Op {
    if holds_any(&each) {
        Op::HoldingEach(each, Box::new(op))
    } else {
        op
    }
}

/// Pairs encoded, each value with [`enc_holding`] (a key's proxies are
/// not held: keys are compared by their encoding and rarely proxies): the
/// encoded pairs, and the objects each value embeds proxies to.
#[allow(clippy::type_complexity)]
pub(crate) fn enc_pairs_holding<K, V, BK, BV>(
    address: &Address,
    it: impl IntoIterator<Item = (BK, BV)>,
) -> Result<(Vec<(Vec<u8>, Vec<u8>)>, Vec<Vec<ObjId>>)>
where
    K: serde::Serialize,
    V: serde::Serialize,
    BK: std::borrow::Borrow<K>,
    BV: std::borrow::Borrow<V>,
{
    let mut pairs = Vec::new();
    let mut each = Vec::new();
    for (k, v) in it {
        let (b, ids) = enc_holding(address, v.borrow())?;
        pairs.push((enc(k.borrow())?, b));
        each.push(ids);
    }
    Ok((pairs, each))
}
