//! `map` for plain-old-data: items and results cross as their bytes.
//!
//! [`Pool::map_pod`](super::Pool::map_pod) takes a slice of
//! [`bytemuck::Pod`] items and a function to a `Pod` result. A unit's frame
//! is the usual unit header, then `n:u32 n:u32` (the count, twice: all `n`
//! arguments are "plain") and the chunk's bytes as they lie in memory; the
//! worker's [`tramp_pod`] reads each item with an unaligned load, calls the
//! function and writes the result's bytes. Its `Done` body has the usual
//! shape (see [`super::worker`]): `DONE_RESULTS`, `k:u32 k:u32`, then the `k`
//! results' bytes; if task `k < n` panicked, one postcard
//! `Result::<(), TaskFailure>::Err` follows and the chunk's later tasks did
//! not run (a chunk stops at its first exception, as CPython's does: its
//! `mapstar` is `list(map(func, args))`). [`decode_pod_into`] reads that
//! back: tasks `k..n` fail with the panic.
//!
//! No serde pass per item: copying the bytes is all the encoding there is.
//! Both ends run the same executable (forked, or spawned and checked at
//! start), so a type's size and layout are the same on both.

use std::panic::{catch_unwind, AssertUnwindSafe};

use bytemuck::Pod;
use serde::Deserialize;

use procshare_model::pool::UnitId;

use super::job::{done_counts, unit_failed, Decoded, Results};
use super::worker::{Out, TaskFailure, Tramp, DONE_FAILED, DONE_HEADER, DONE_RESULTS, FRAME_LIMIT};
use super::PoolError;
use crate::codec::wire::WireError;

/// The worker's trampoline for `fn(T) -> R` over `Pod` items (see the
/// module's docs for the formats). Bad arguments (a length that is not `n`
/// items) fail the whole unit with a message, never a panic.
pub(crate) fn tramp_pod<T: Pod, R: Pod>(func: usize, data: &[u8], out: &mut Vec<u8>) {
    // SAFETY: `func` was produced by `func as usize` from an `fn(T) -> R` in
    // the parent (`Pool::map_pod_async`), paired with this very
    // instantiation of the trampoline, and sent over the pool's private
    // socketpair as its offset in this executable (the worker runs the same
    // file: a fork, or a spawned child that checked the binary's identity at
    // start), resolved back by `recv`: the address is that function.
    let f: fn(T) -> R = unsafe { std::mem::transmute::<usize, fn(T) -> R>(func) };
    let mut o = Out::at(out, DONE_HEADER);
    run_pod(&mut o, data, f);
    let end = o.keep();
    let len = u32::try_from(end - 4).unwrap_or(u32::MAX);
    out[..4].copy_from_slice(&len.to_le_bytes());
}

/// The unit frame of `n` items whose bytes are `bytes` for `tramp`
/// (`tramp_pod::<T, R>`) and `func`, into `buf` (a recycled buffer: it may
/// stay longer than the frame, whose header tells its length). A frame above
/// the workers' limit is refused.
pub(crate) fn unit_frame(
    buf: &mut Vec<u8>,
    unit: UnitId,
    tramp: Tramp,
    func: usize,
    bytes: &[u8],
    n: usize,
) -> Result<(), WireError> {
    let n = u32::try_from(n).map_err(|_| WireError::Oversized {
        len: n as u64,
        limit: u32::MAX as usize,
    })?;
    let mut out = Out::at(buf, 0);
    super::worker::unit_header(&mut out, unit, tramp, func);
    out.bytes(&n.to_le_bytes());
    out.bytes(&n.to_le_bytes());
    out.bytes(bytes);
    let len = out.pos() - 4;
    if len > FRAME_LIMIT {
        return Err(WireError::Oversized {
            len: len as u64,
            limit: FRAME_LIMIT,
        });
    }
    out.patch(0, &(len as u32).to_le_bytes());
    out.keep();
    Ok(())
}

/// The arguments of a unit: `n:u32 n:u32` then `n` items' bytes; `None` if
/// `data` is anything else.
fn pod_args<T: Pod>(data: &[u8]) -> Option<(usize, &[u8])> {
    let n = u32::from_le_bytes(data.get(..4)?.try_into().ok()?) as usize;
    let p = u32::from_le_bytes(data.get(4..8)?.try_into().ok()?) as usize;
    let bytes = data.get(8..)?;
    (p == n && n.checked_mul(size_of::<T>())? == bytes.len()).then_some((n, bytes))
}

/// The `Done` body (status byte onwards) of `f` over `data`, into `o`.
fn run_pod<T: Pod, R: Pod>(o: &mut Out<'_>, data: &[u8], f: fn(T) -> R) {
    let Some((n, bytes)) = pod_args::<T>(data) else {
        o.bytes(&[DONE_FAILED]);
        o.bytes(
            format!(
                "cannot decode the task arguments: {} bytes are not a count and {} items",
                data.len(),
                core::any::type_name::<T>()
            )
            .as_bytes(),
        );
        return;
    };
    o.bytes(&[DONE_RESULTS]);
    let k_at = o.pos();
    o.bytes(&(n as u32).to_le_bytes());
    o.bytes(&(n as u32).to_le_bytes());
    let (ts, rs) = (size_of::<T>(), size_of::<R>());
    let item = |i: usize| -> T {
        match ts {
            0 => T::zeroed(),
            s => bytemuck::pod_read_unaligned(&bytes[i * s..(i + 1) * s]),
        }
    };
    // The results are written in place, each with a fixed-size copy.
    let at = o.pos();
    // No overflow: `n < 2^32`, and a result of `2^32` bytes or more could not
    // be returned by `f` on a thread's stack at all.
    let room = n * rs;
    let mut failed = None;
    {
        let dst = o.space(room);
        for i in 0..n {
            let x = item(i);
            match catch_unwind(AssertUnwindSafe(|| f(x))) {
                Ok(r) => dst[i * rs..(i + 1) * rs].copy_from_slice(bytemuck::bytes_of(&r)),
                Err(p) => {
                    failed = Some((i, crate::panic_message(&*p)));
                    break;
                }
            }
        }
    }
    if let Some((i, msg)) = failed {
        // Task `i` panicked: the results before it, then its failure.
        o.rewind(at + i * rs);
        let k = (i as u32).to_le_bytes();
        o.patch(k_at, &k);
        o.patch(k_at + 4, &k);
        let e: Result<(), TaskFailure> = Err(TaskFailure::Panicked(msg));
        // A message too large for a frame would be refused later; a failing
        // `put` leaves nothing, which reads back as a truncated body (the
        // unit fails with a decode error).
        let _ = o.put(&e);
    }
}

/// Decode a `Done` body of [`tramp_pod`] for `n` tasks from job index
/// `start`: `None` after appending the `n` values to `vals` if every task
/// succeeded; otherwise `vals` is left as it was and each task's result, and
/// the first failure, are returned. Never panics on bad input: what does not
/// decode is a [`PoolError::Decode`] for the tasks concerned.
pub(crate) fn decode_pod_into<R: Pod>(
    start: usize,
    n: usize,
    body: &[u8],
    vals: &mut Vec<R>,
) -> Option<Decoded<R>> {
    let (k, p, after) = match done_counts(start, n, body) {
        Ok(c) => c,
        Err(failed) => return Some(failed),
    };
    let size = size_of::<R>();
    // `k` results' bytes; then, if a task failed, its failure.
    let raw = match k.checked_mul(size).and_then(|b| after.get(..b)) {
        Some(raw) if k <= n && p == k && (k == n) == (after.len() == raw.len()) => raw,
        _ => {
            return Some(unit_failed(
                start,
                n,
                format!(
                    "{k} results ({p} plain, {} bytes) for {n} tasks of {}",
                    after.len(),
                    core::any::type_name::<R>()
                ),
            ))
        }
    };
    let old = vals.len();
    match size {
        0 => vals.resize(old + k, R::zeroed()),
        s => vals.extend(raw.chunks_exact(s).map(bytemuck::pod_read_unaligned::<R>)),
    }
    if k == n {
        return None;
    }
    // Task `k` panicked; the chunk's later tasks did not run.
    let mut de = postcard::Deserializer::from_bytes(&after[raw.len()..]);
    let err = match <Result<(), TaskFailure>>::deserialize(&mut de) {
        Ok(Err(TaskFailure::Panicked(m))) => PoolError::TaskPanicked(m),
        Ok(Err(TaskFailure::Unserializable(m))) => PoolError::Serialize(m),
        Ok(Err(TaskFailure::BadArgument(m))) => PoolError::decode(m),
        Ok(Ok(())) => PoolError::decode(format!("task {k} of {n} has no result")),
        Err(e) => PoolError::decode(format!("task {k}'s failure does not decode: {e}")),
    };
    let mut each: Vec<Result<R, PoolError>> = Vec::with_capacity(n);
    each.extend(vals.drain(old..).map(Ok));
    each.extend((k..n).map(|_| Err(err.clone())));
    Some((Results::Each(each.into_iter()), Some((start + k, err))))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`decode_pod_into`] into a vector of its own.
    fn decode_pod<R: Pod>(start: usize, n: usize, body: &[u8]) -> Decoded<R> {
        let mut vals = Vec::new();
        match decode_pod_into(start, n, body, &mut vals) {
            None => (Results::Values(vals.into_iter()), None),
            Some(r) => r,
        }
    }

    fn inc(x: u32) -> u32 {
        x + 1
    }

    fn boom_at_3(x: u32) -> u32 {
        assert!(x != 3, "three");
        x
    }

    fn args(items: &[u32]) -> Vec<u8> {
        let n = (items.len() as u32).to_le_bytes();
        let mut d = [n, n].concat();
        d.extend_from_slice(bytemuck::cast_slice(items));
        d
    }

    /// What the worker writes for `f` over `data` (the `Done` body).
    fn body(f: fn(u32) -> u32, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        tramp_pod::<u32, u32>(f as usize, data, &mut out);
        let len = u32::from_le_bytes(out[..4].try_into().unwrap()) as usize;
        out[DONE_HEADER..4 + len].to_vec()
    }

    fn values(r: Decoded<u32>) -> Vec<Result<u32, PoolError>> {
        match r.0 {
            Results::Values(v) => v.map(Ok).collect(),
            Results::Each(v) => v.collect(),
            Results::Failed { err, left } => vec![Err(err); left],
        }
    }

    #[test]
    fn items_and_results_cross_as_bytes() {
        let b = body(inc, &args(&[1, 2, 0xffff_fffe]));
        let mut want = vec![DONE_RESULTS, 3, 0, 0, 0, 3, 0, 0, 0];
        want.extend_from_slice(bytemuck::cast_slice(&[2u32, 3, 0xffff_ffff]));
        assert_eq!(b, want);
        let mut vals = vec![7u32];
        assert!(decode_pod_into(10, 3, &b, &mut vals).is_none());
        assert_eq!(vals, [7, 2, 3, 0xffff_ffff]);
        assert!(decode_pod_into::<u32>(0, 0, &body(inc, &args(&[])), &mut vals).is_none());
        assert_eq!(vals.len(), 4);
    }

    #[test]
    fn a_unit_frame_is_what_the_worker_reads() {
        use crate::process::spawn::fn_at;
        let items = [5u32, 6, 7];
        let mut buf = vec![0xee; 100]; // a recycled buffer: longer, not zeroed
        let tramp: Tramp = tramp_pod::<u32, u32>;
        unit_frame(
            &mut buf,
            42,
            tramp,
            inc as fn(u32) -> u32 as usize,
            bytemuck::cast_slice(&items),
            3,
        )
        .unwrap();
        // The worker's reading (`SockIo::recv`, then the trampoline on the
        // payload from `UNIT_DATA` on).
        let len = u32::from_le_bytes(buf[..4].try_into().unwrap()) as usize;
        let f = &buf[4..4 + len];
        let u64_at = |at: usize| u64::from_le_bytes(f[at..at + 8].try_into().unwrap());
        assert_eq!(f[0], super::super::worker::TO_UNIT);
        assert_eq!(u64_at(1), 42);
        assert_eq!(fn_at(u64_at(9) as i64), tramp as usize);
        assert_eq!(fn_at(u64_at(17) as i64), inc as fn(u32) -> u32 as usize);
        let data = &f[super::super::worker::UNIT_DATA..];
        assert_eq!(data, args(&items));
        let mut out = Vec::new();
        tramp(fn_at(u64_at(17) as i64), data, &mut out);
        let n = u32::from_le_bytes(out[..4].try_into().unwrap()) as usize;
        let mut vals = Vec::new();
        assert!(decode_pod_into::<u32>(0, 3, &out[DONE_HEADER..4 + n], &mut vals).is_none());
        assert_eq!(vals, [6, 7, 8]);
        // A frame of exactly the workers' limit passes, one byte more is refused.
        let header = super::super::worker::UNIT_DATA + 8;
        let most = vec![0u8; FRAME_LIMIT - header];
        assert!(unit_frame(&mut buf, 1, tramp, 0, &most, most.len()).is_ok());
        let len = u32::from_le_bytes(buf[..4].try_into().unwrap()) as usize;
        assert_eq!(len, FRAME_LIMIT);
        let over = vec![0u8; FRAME_LIMIT - header + 1];
        assert!(matches!(
            unit_frame(&mut buf, 1, tramp, 0, &over, over.len()),
            Err(WireError::Oversized { len, .. }) if len == FRAME_LIMIT as u64 + 1
        ));
    }

    #[test]
    fn a_panic_fails_its_task_and_the_rest_of_the_chunk() {
        let b = body(boom_at_3, &args(&[1, 2, 3, 4]));
        let mut vals = vec![9u32];
        let r = decode_pod_into(100, 4, &b, &mut vals).expect("a failure");
        assert_eq!(vals, [9], "vals untouched when a task failed");
        let first = r.1.clone();
        let each = values(r);
        let three = PoolError::TaskPanicked("three".into());
        assert_eq!(each, [Ok(1), Ok(2), Err(three.clone()), Err(three.clone())]);
        assert_eq!(first, Some((102, three)));
    }

    #[test]
    fn bad_arguments_fail_the_unit_with_a_message() {
        // 5 bytes for one u32; a count that disagrees with its copy.
        for data in [
            vec![1, 0, 0, 0, 1, 0, 0, 0, 9, 9, 9, 9, 9],
            vec![1, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4],
            vec![1, 0],
        ] {
            let b = body(inc, &data);
            assert_eq!(b[0], DONE_FAILED);
            let (r, first) = decode_pod::<u32>(5, 1, &b);
            let Some((5, PoolError::Decode { what, .. })) = first else {
                panic!("a decode error for task 5, got {first:?}");
            };
            assert!(
                what.starts_with("cannot decode the task arguments"),
                "{what}"
            );
            assert_eq!(values((r, None)).len(), 1);
        }
    }

    #[test]
    fn bad_result_bodies_are_decode_errors() {
        let good = body(inc, &args(&[1, 2]));
        let mut bad = vec![
            vec![],
            vec![7, 0, 0, 0, 0, 0, 0, 0, 0],
            good[..good.len() - 1].to_vec(),
            [&good[..], &[0]].concat(),
        ];
        // A status that is neither: refused even with a well-formed rest.
        let mut status = good.clone();
        status[0] = 7;
        bad.push(status);
        // More results than tasks; a plain count that differs.
        let mut more = good.clone();
        more[1] = 3;
        bad.push(more);
        let mut p = good.clone();
        p[5] = 1;
        bad.push(p);
        for b in bad {
            let mut vals = Vec::new();
            let r = decode_pod_into::<u32>(0, 2, &b, &mut vals);
            assert!(
                matches!(r, Some((_, Some((0, PoolError::Decode { .. }))))),
                "{b:?}: {:?}",
                r.map(|r| r.1)
            );
            assert!(vals.is_empty());
        }
    }

    #[test]
    fn a_unit_of_nothing_that_failed_has_no_first_failure() {
        let mut vals = vec![1u32];
        let r = decode_pod_into::<u32>(3, 0, &[DONE_FAILED], &mut vals).expect("failed");
        assert!(r.1.is_none(), "no task, no first failure: {:?}", r.1);
        assert!(values(r).is_empty());
        assert_eq!(vals, [1]);
    }

    #[test]
    fn zero_sized_items_and_results() {
        fn unit(_: ()) {}
        let n = 3u32.to_le_bytes();
        let mut out = Vec::new();
        tramp_pod::<(), ()>(unit as fn(()) as usize, &[n, n].concat(), &mut out);
        let len = u32::from_le_bytes(out[..4].try_into().unwrap()) as usize;
        let mut vals = Vec::new();
        assert!(decode_pod_into::<()>(0, 3, &out[DONE_HEADER..4 + len], &mut vals).is_none());
        assert_eq!(vals.len(), 3);
    }
}
