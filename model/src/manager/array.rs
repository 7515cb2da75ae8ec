//! The manager's array (`manager.Array(typecode, sequence)`): a fixed-type
//! sequence whose proxy offers `len`, indexing (negative indices count from
//! the end) and Python slices (`a[i:j]`, `a[i:j:k]`, their assignment), as
//! CPython's `ArrayProxy` over an `array.array`.
//!
//! What each operation does is [`apply`]; Python's slice arithmetic
//! (`slice.indices`) is [`indices`], checked against a table CPython 3.11
//! printed, with a seeded mutant (720) the table catches.

use super::protocol::{Bytes, OpError, Response};
use crate::platform::{mutant, Mutant, Seeded};
use serde::{Deserialize, Serialize};

/// Seeded bug 720: a negative slice bound below `-len` is not clamped to the
/// start (`a[-9:2]` of five items is taken from index 0 in Python; the
/// mutant yields an empty slice).
#[doc(hidden)]
pub const MUTANT_SLICE_NO_CLAMP: Mutant = Mutant(720);

/// An operation on an array.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum ArrayOp {
    /// The number of items.
    Len,
    /// The item at an index (`-1`: the last).
    Get(i64),
    /// Replace the item at an index.
    Set(i64, Bytes),
    /// The items of a slice, Python's `a[start:stop:step]` (`None`: omitted).
    GetSlice(Slice),
    /// Assign a slice: with step 1 (or omitted) any number of items replaces
    /// the slice (the array grows or shrinks, as `array.array`'s does); an
    /// extended slice takes exactly as many items as it selects.
    SetSlice(Slice, Vec<Bytes>),
}

/// Python's `slice(start, stop, step)`.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Slice {
    /// First index (`None`: from the start, or the end for a negative step).
    pub start: Option<i64>,
    /// Index to stop before (`None`: to the end, or the start for a negative step).
    pub stop: Option<i64>,
    /// Step (`None`: 1; 0 is an error).
    pub step: Option<i64>,
}

/// Python's `slice.indices(len)`: the resolved `(start, stop, step)` and the
/// number of items the slice selects. `Err` for a zero step.
pub fn indices<S: Seeded>(s: Slice, len: usize) -> Result<(i64, i64, i64, usize), OpError> {
    let len = i64::try_from(len).unwrap_or(i64::MAX);
    let step = s.step.unwrap_or(1);
    if step == 0 {
        return Err(OpError::BadRequest("slice step cannot be zero".into()));
    }
    let (lower, upper) = if step < 0 { (-1, len - 1) } else { (0, len) };
    let resolve = |x: Option<i64>, default: i64| match x {
        None => default,
        Some(i) if i < 0 => {
            let j = i.saturating_add(len);
            if j < lower && !mutant::<S>(MUTANT_SLICE_NO_CLAMP) {
                lower
            } else {
                j
            }
        }
        Some(i) => i.min(upper),
    };
    let start = resolve(s.start, if step < 0 { upper } else { lower });
    let stop = resolve(s.stop, if step < 0 { lower } else { upper });
    let n = if step > 0 && start < stop {
        (stop - start - 1) / step + 1
    } else if step < 0 && stop < start {
        (start - stop - 1) / (-step) + 1
    } else {
        0
    };
    Ok((start, stop, step, n as usize))
}

/// Python's index `i` (negative: from the end) within `0..len`.
fn at(i: i64, len: usize) -> Option<usize> {
    let len = i64::try_from(len).ok()?;
    let j = if i < 0 { i.checked_add(len)? } else { i };
    (0..len).contains(&j).then_some(j as usize)
}

fn out_of_range(index: i64, len: usize) -> Response {
    Response::Err(OpError::SignedIndexOutOfRange {
        index,
        len: len as u64,
    })
}

/// Apply `op` to the array's items; `(answer, changed)`. Never panics; on
/// error the array is unchanged.
pub fn apply<S: Seeded>(v: &mut Vec<Bytes>, op: ArrayOp) -> (Response, bool) {
    match op {
        ArrayOp::Len => (Response::Usize(v.len() as u64), false),
        ArrayOp::Get(i) => match at(i, v.len()) {
            Some(j) => (Response::Item(v[j].clone()), false),
            None => (out_of_range(i, v.len()), false),
        },
        ArrayOp::Set(i, x) => match at(i, v.len()) {
            Some(j) => {
                v[j] = x;
                (Response::Ok, true)
            }
            None => (out_of_range(i, v.len()), false),
        },
        ArrayOp::GetSlice(s) => match indices::<S>(s, v.len()) {
            Ok((start, _, step, n)) => {
                let items = (0..n as i64)
                    .map(|k| v[(start + k * step) as usize].clone())
                    .collect();
                (Response::Items(items), false)
            }
            Err(e) => (Response::Err(e), false),
        },
        ArrayOp::SetSlice(s, xs) => match indices::<S>(s, v.len()) {
            Ok((start, stop, 1, _)) => {
                let start = start as usize;
                let stop = (stop as usize).max(start);
                v.splice(start..stop, xs);
                (Response::Ok, true)
            }
            Ok((start, _, step, n)) => {
                if xs.len() != n {
                    return (
                        Response::Err(OpError::BadRequest(format!(
                            "attempt to assign array of size {} to extended slice of size {n}",
                            xs.len()
                        ))),
                        false,
                    );
                }
                for (k, x) in xs.into_iter().enumerate() {
                    v[(start + k as i64 * step) as usize] = x;
                }
                (Response::Ok, true)
            }
            Err(e) => (Response::Err(e), false),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::WithMutant;

    type Real = WithMutant<0>;
    type Mut720 = WithMutant<720>;

    /// `(start, stop, step, list(range(5))[start:stop:step])`.
    type Case = (Option<i64>, Option<i64>, Option<i64>, &'static [i64]);

    /// `list(range(5))[start:stop:step]`, as CPython 3.11 prints it.
    #[rustfmt::skip]
    const PYTHON: &[Case] = &[
        (None, None, None, &[0, 1, 2, 3, 4]),
        (None, Some(-7), None, &[]),
        (None, Some(-2), None, &[0, 1, 2]),
        (None, Some(0), None, &[]),
        (None, Some(2), None, &[0, 1]),
        (None, Some(5), None, &[0, 1, 2, 3, 4]),
        (None, Some(9), None, &[0, 1, 2, 3, 4]),
        (Some(-7), None, None, &[0, 1, 2, 3, 4]),
        (Some(-7), Some(-7), None, &[]),
        (Some(-7), Some(-2), None, &[0, 1, 2]),
        (Some(-7), Some(0), None, &[]),
        (Some(-7), Some(2), None, &[0, 1]),
        (Some(-7), Some(5), None, &[0, 1, 2, 3, 4]),
        (Some(-7), Some(9), None, &[0, 1, 2, 3, 4]),
        (Some(-2), None, None, &[3, 4]),
        (Some(-2), Some(-7), None, &[]),
        (Some(-2), Some(-2), None, &[]),
        (Some(-2), Some(0), None, &[]),
        (Some(-2), Some(2), None, &[]),
        (Some(-2), Some(5), None, &[3, 4]),
        (Some(-2), Some(9), None, &[3, 4]),
        (Some(0), None, None, &[0, 1, 2, 3, 4]),
        (Some(0), Some(-7), None, &[]),
        (Some(0), Some(-2), None, &[0, 1, 2]),
        (Some(0), Some(0), None, &[]),
        (Some(0), Some(2), None, &[0, 1]),
        (Some(0), Some(5), None, &[0, 1, 2, 3, 4]),
        (Some(0), Some(9), None, &[0, 1, 2, 3, 4]),
        (Some(2), None, None, &[2, 3, 4]),
        (Some(2), Some(-7), None, &[]),
        (Some(2), Some(-2), None, &[2]),
        (Some(2), Some(0), None, &[]),
        (Some(2), Some(2), None, &[]),
        (Some(2), Some(5), None, &[2, 3, 4]),
        (Some(2), Some(9), None, &[2, 3, 4]),
        (Some(5), None, None, &[]),
        (Some(5), Some(-7), None, &[]),
        (Some(5), Some(-2), None, &[]),
        (Some(5), Some(0), None, &[]),
        (Some(5), Some(2), None, &[]),
        (Some(5), Some(5), None, &[]),
        (Some(5), Some(9), None, &[]),
        (Some(9), None, None, &[]),
        (Some(9), Some(-7), None, &[]),
        (Some(9), Some(-2), None, &[]),
        (Some(9), Some(0), None, &[]),
        (Some(9), Some(2), None, &[]),
        (Some(9), Some(5), None, &[]),
        (Some(9), Some(9), None, &[]),
        (None, None, Some(2), &[0, 2, 4]),
        (None, Some(-7), Some(2), &[]),
        (None, Some(-2), Some(2), &[0, 2]),
        (None, Some(0), Some(2), &[]),
        (None, Some(2), Some(2), &[0]),
        (None, Some(5), Some(2), &[0, 2, 4]),
        (None, Some(9), Some(2), &[0, 2, 4]),
        (Some(-7), None, Some(2), &[0, 2, 4]),
        (Some(-7), Some(-7), Some(2), &[]),
        (Some(-7), Some(-2), Some(2), &[0, 2]),
        (Some(-7), Some(0), Some(2), &[]),
        (Some(-7), Some(2), Some(2), &[0]),
        (Some(-7), Some(5), Some(2), &[0, 2, 4]),
        (Some(-7), Some(9), Some(2), &[0, 2, 4]),
        (Some(-2), None, Some(2), &[3]),
        (Some(-2), Some(-7), Some(2), &[]),
        (Some(-2), Some(-2), Some(2), &[]),
        (Some(-2), Some(0), Some(2), &[]),
        (Some(-2), Some(2), Some(2), &[]),
        (Some(-2), Some(5), Some(2), &[3]),
        (Some(-2), Some(9), Some(2), &[3]),
        (Some(0), None, Some(2), &[0, 2, 4]),
        (Some(0), Some(-7), Some(2), &[]),
        (Some(0), Some(-2), Some(2), &[0, 2]),
        (Some(0), Some(0), Some(2), &[]),
        (Some(0), Some(2), Some(2), &[0]),
        (Some(0), Some(5), Some(2), &[0, 2, 4]),
        (Some(0), Some(9), Some(2), &[0, 2, 4]),
        (Some(2), None, Some(2), &[2, 4]),
        (Some(2), Some(-7), Some(2), &[]),
        (Some(2), Some(-2), Some(2), &[2]),
        (Some(2), Some(0), Some(2), &[]),
        (Some(2), Some(2), Some(2), &[]),
        (Some(2), Some(5), Some(2), &[2, 4]),
        (Some(2), Some(9), Some(2), &[2, 4]),
        (Some(5), None, Some(2), &[]),
        (Some(5), Some(-7), Some(2), &[]),
        (Some(5), Some(-2), Some(2), &[]),
        (Some(5), Some(0), Some(2), &[]),
        (Some(5), Some(2), Some(2), &[]),
        (Some(5), Some(5), Some(2), &[]),
        (Some(5), Some(9), Some(2), &[]),
        (Some(9), None, Some(2), &[]),
        (Some(9), Some(-7), Some(2), &[]),
        (Some(9), Some(-2), Some(2), &[]),
        (Some(9), Some(0), Some(2), &[]),
        (Some(9), Some(2), Some(2), &[]),
        (Some(9), Some(5), Some(2), &[]),
        (Some(9), Some(9), Some(2), &[]),
        (None, None, Some(-1), &[4, 3, 2, 1, 0]),
        (None, Some(-7), Some(-1), &[4, 3, 2, 1, 0]),
        (None, Some(-2), Some(-1), &[4]),
        (None, Some(0), Some(-1), &[4, 3, 2, 1]),
        (None, Some(2), Some(-1), &[4, 3]),
        (None, Some(5), Some(-1), &[]),
        (None, Some(9), Some(-1), &[]),
        (Some(-7), None, Some(-1), &[]),
        (Some(-7), Some(-7), Some(-1), &[]),
        (Some(-7), Some(-2), Some(-1), &[]),
        (Some(-7), Some(0), Some(-1), &[]),
        (Some(-7), Some(2), Some(-1), &[]),
        (Some(-7), Some(5), Some(-1), &[]),
        (Some(-7), Some(9), Some(-1), &[]),
        (Some(-2), None, Some(-1), &[3, 2, 1, 0]),
        (Some(-2), Some(-7), Some(-1), &[3, 2, 1, 0]),
        (Some(-2), Some(-2), Some(-1), &[]),
        (Some(-2), Some(0), Some(-1), &[3, 2, 1]),
        (Some(-2), Some(2), Some(-1), &[3]),
        (Some(-2), Some(5), Some(-1), &[]),
        (Some(-2), Some(9), Some(-1), &[]),
        (Some(0), None, Some(-1), &[0]),
        (Some(0), Some(-7), Some(-1), &[0]),
        (Some(0), Some(-2), Some(-1), &[]),
        (Some(0), Some(0), Some(-1), &[]),
        (Some(0), Some(2), Some(-1), &[]),
        (Some(0), Some(5), Some(-1), &[]),
        (Some(0), Some(9), Some(-1), &[]),
        (Some(2), None, Some(-1), &[2, 1, 0]),
        (Some(2), Some(-7), Some(-1), &[2, 1, 0]),
        (Some(2), Some(-2), Some(-1), &[]),
        (Some(2), Some(0), Some(-1), &[2, 1]),
        (Some(2), Some(2), Some(-1), &[]),
        (Some(2), Some(5), Some(-1), &[]),
        (Some(2), Some(9), Some(-1), &[]),
        (Some(5), None, Some(-1), &[4, 3, 2, 1, 0]),
        (Some(5), Some(-7), Some(-1), &[4, 3, 2, 1, 0]),
        (Some(5), Some(-2), Some(-1), &[4]),
        (Some(5), Some(0), Some(-1), &[4, 3, 2, 1]),
        (Some(5), Some(2), Some(-1), &[4, 3]),
        (Some(5), Some(5), Some(-1), &[]),
        (Some(5), Some(9), Some(-1), &[]),
        (Some(9), None, Some(-1), &[4, 3, 2, 1, 0]),
        (Some(9), Some(-7), Some(-1), &[4, 3, 2, 1, 0]),
        (Some(9), Some(-2), Some(-1), &[4]),
        (Some(9), Some(0), Some(-1), &[4, 3, 2, 1]),
        (Some(9), Some(2), Some(-1), &[4, 3]),
        (Some(9), Some(5), Some(-1), &[]),
        (Some(9), Some(9), Some(-1), &[]),
        (None, None, Some(-2), &[4, 2, 0]),
        (None, Some(-7), Some(-2), &[4, 2, 0]),
        (None, Some(-2), Some(-2), &[4]),
        (None, Some(0), Some(-2), &[4, 2]),
        (None, Some(2), Some(-2), &[4]),
        (None, Some(5), Some(-2), &[]),
        (None, Some(9), Some(-2), &[]),
        (Some(-7), None, Some(-2), &[]),
        (Some(-7), Some(-7), Some(-2), &[]),
        (Some(-7), Some(-2), Some(-2), &[]),
        (Some(-7), Some(0), Some(-2), &[]),
        (Some(-7), Some(2), Some(-2), &[]),
        (Some(-7), Some(5), Some(-2), &[]),
        (Some(-7), Some(9), Some(-2), &[]),
        (Some(-2), None, Some(-2), &[3, 1]),
        (Some(-2), Some(-7), Some(-2), &[3, 1]),
        (Some(-2), Some(-2), Some(-2), &[]),
        (Some(-2), Some(0), Some(-2), &[3, 1]),
        (Some(-2), Some(2), Some(-2), &[3]),
        (Some(-2), Some(5), Some(-2), &[]),
        (Some(-2), Some(9), Some(-2), &[]),
        (Some(0), None, Some(-2), &[0]),
        (Some(0), Some(-7), Some(-2), &[0]),
        (Some(0), Some(-2), Some(-2), &[]),
        (Some(0), Some(0), Some(-2), &[]),
        (Some(0), Some(2), Some(-2), &[]),
        (Some(0), Some(5), Some(-2), &[]),
        (Some(0), Some(9), Some(-2), &[]),
        (Some(2), None, Some(-2), &[2, 0]),
        (Some(2), Some(-7), Some(-2), &[2, 0]),
        (Some(2), Some(-2), Some(-2), &[]),
        (Some(2), Some(0), Some(-2), &[2]),
        (Some(2), Some(2), Some(-2), &[]),
        (Some(2), Some(5), Some(-2), &[]),
        (Some(2), Some(9), Some(-2), &[]),
        (Some(5), None, Some(-2), &[4, 2, 0]),
        (Some(5), Some(-7), Some(-2), &[4, 2, 0]),
        (Some(5), Some(-2), Some(-2), &[4]),
        (Some(5), Some(0), Some(-2), &[4, 2]),
        (Some(5), Some(2), Some(-2), &[4]),
        (Some(5), Some(5), Some(-2), &[]),
        (Some(5), Some(9), Some(-2), &[]),
        (Some(9), None, Some(-2), &[4, 2, 0]),
        (Some(9), Some(-7), Some(-2), &[4, 2, 0]),
        (Some(9), Some(-2), Some(-2), &[4]),
        (Some(9), Some(0), Some(-2), &[4, 2]),
        (Some(9), Some(2), Some(-2), &[4]),
        (Some(9), Some(5), Some(-2), &[]),
        (Some(9), Some(9), Some(-2), &[])
    ];

    fn slice_of<S: Seeded>(start: Option<i64>, stop: Option<i64>, step: Option<i64>) -> Vec<i64> {
        let mut v: Vec<Bytes> = (0..5u8).map(|x| vec![x]).collect();
        match apply::<S>(&mut v, ArrayOp::GetSlice(Slice { start, stop, step })) {
            (Response::Items(items), false) => items.iter().map(|b| b[0] as i64).collect(),
            other => panic!("{other:?}"),
        }
    }

    fn matches_python<S: Seeded>() {
        for &(start, stop, step, want) in PYTHON {
            assert_eq!(
                slice_of::<S>(start, stop, step),
                want,
                "[{start:?}:{stop:?}:{step:?}]"
            );
        }
    }

    #[test]
    fn slices_are_pythons() {
        matches_python::<Real>();
    }

    #[test]
    fn mutant_720_slice_no_clamp_is_caught() {
        assert!(std::panic::catch_unwind(matches_python::<Mut720>).is_err());
    }

    fn assign(s: Slice, xs: &[u8]) -> Result<Vec<u8>, OpError> {
        let mut v: Vec<Bytes> = (0..5u8).map(|x| vec![x]).collect();
        let xs = xs.iter().map(|x| vec![*x]).collect();
        match apply::<Real>(&mut v, ArrayOp::SetSlice(s, xs)) {
            (Response::Ok, true) => Ok(v.iter().map(|b| b[0]).collect()),
            (Response::Err(e), false) => {
                assert_eq!(v.len(), 5, "an error changed the array");
                Err(e)
            }
            other => panic!("{other:?}"),
        }
    }

    fn sl(start: Option<i64>, stop: Option<i64>, step: Option<i64>) -> Slice {
        Slice { start, stop, step }
    }

    /// Slice assignment of an `array.array('i', range(5))`, as CPython 3.11 does it.
    #[test]
    fn slice_assignment_is_pythons() {
        assert_eq!(
            assign(sl(Some(1), Some(3), None), &[9]),
            Ok(vec![0, 9, 3, 4])
        );
        assert_eq!(
            assign(sl(Some(3), Some(1), None), &[7, 8]),
            Ok(vec![0, 1, 2, 7, 8, 3, 4])
        );
        assert_eq!(assign(sl(Some(-2), None, None), &[]), Ok(vec![0, 1, 2]));
        assert_eq!(
            assign(sl(None, None, Some(2)), &[7, 8, 9]),
            Ok(vec![7, 1, 8, 3, 9])
        );
        assert_eq!(
            assign(sl(None, None, Some(-1)), &[9, 8, 7, 6, 5]),
            Ok(vec![5, 6, 7, 8, 9])
        );
        assert_eq!(
            assign(sl(Some(-9), Some(2), None), &[1]),
            Ok(vec![1, 2, 3, 4])
        );
        assert_eq!(
            assign(sl(None, None, Some(2)), &[7]),
            Err(OpError::BadRequest(
                "attempt to assign array of size 1 to extended slice of size 3".into()
            ))
        );
        assert_eq!(
            assign(sl(Some(0), Some(5), Some(0)), &[1]),
            Err(OpError::BadRequest("slice step cannot be zero".into()))
        );
    }

    #[test]
    fn indexing_is_pythons() {
        let mut v: Vec<Bytes> = (0..3u8).map(|x| vec![x]).collect();
        assert_eq!(
            apply::<Real>(&mut v, ArrayOp::Get(-1)).0,
            Response::Item(vec![2])
        );
        assert_eq!(
            apply::<Real>(&mut v, ArrayOp::Set(-3, vec![9])).0,
            Response::Ok
        );
        assert_eq!(v[0], vec![9]);
        assert_eq!(apply::<Real>(&mut v, ArrayOp::Get(3)).0, out_of_range(3, 3));
        assert_eq!(
            apply::<Real>(&mut v, ArrayOp::Get(-4)).0,
            out_of_range(-4, 3)
        );
        assert_eq!(apply::<Real>(&mut v, ArrayOp::Len).0, Response::Usize(3));
    }
}
