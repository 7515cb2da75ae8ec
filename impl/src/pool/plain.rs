//! Plain values as fixed-width bytes: the pool's fast encoding of task
//! arguments and results.
//!
//! A value whose serialization is only numbers, `bool`s and `char`s (a
//! primitive, or a tuple, array, struct or newtype of them: a `Pod`-like
//! value) is written as each scalar's little-endian bytes, one after the
//! other, with no tag and no length: a `u64` is its 8 bytes. A chunk of a
//! `map` over such items then costs a store per item instead of postcard's
//! varint loop (the pool's profile: the varint passes were half of a
//! `map`'s instructions, on both sides of the socket).
//!
//! Which values take this path is found at run time by serde itself, without
//! any type test (nothing `'static`, no specialization): [`Out::put_plain`]
//! tries [`PlainSer`], which refuses anything with a length or a tag
//! (strings, bytes, sequences, maps, options, enums); a refused value is
//! written with postcard instead, and so is every value after it in the same
//! frame. A frame says how many of its values are plain (the first ones), so
//! the reader decodes those with [`PlainDe`] and the rest with postcard. Like
//! postcard, the encoding is not self-describing: the reader calls the same
//! `Deserialize` the writer's `Serialize` mirrors (`deserialize_any` is an
//! error, as with postcard). Bad bytes are an error, never a panic.
//!
//! Plain values are larger than postcard's varints (a `u64` below 2^21 takes
//! 8 bytes instead of 3); they cross a socket, where a few more bytes cost
//! far less than a varint pass per value on each side.

use serde::de::{self, DeserializeSeed, SeqAccess, Visitor};
use serde::ser::{self, Impossible, Serialize};

use super::worker::Out;

/// A value is not plain (it holds a length or a tag), or plain bytes do not
/// decode. Carries no message: the callers fall back to postcard, or report
/// their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NotPlain;

impl core::fmt::Display for NotPlain {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("not a plain value, or plain bytes that do not decode")
    }
}

impl std::error::Error for NotPlain {}

impl ser::Error for NotPlain {
    fn custom<T: core::fmt::Display>(_: T) -> Self {
        NotPlain
    }
}

impl de::Error for NotPlain {
    fn custom<T: core::fmt::Display>(_: T) -> Self {
        NotPlain
    }
}

impl Out<'_> {
    /// Append `v` as plain bytes; `false` (nothing appended) if `v` is not
    /// plain: the caller writes it with postcard instead.
    #[inline]
    pub(crate) fn put_plain<T: Serialize + ?Sized>(&mut self, v: &T) -> bool {
        let mark = self.pos();
        if v.serialize(PlainSer(self)).is_ok() {
            return true;
        }
        self.rewind(mark);
        false
    }
}

/// The serializer behind [`Out::put_plain`].
pub(crate) struct PlainSer<'x, 'a>(&'x mut Out<'a>);

macro_rules! scalar {
    ($($f:ident $t:ty;)*) => {
        $(
            #[inline]
            fn $f(self, v: $t) -> Result<(), NotPlain> {
                self.0.array(v.to_le_bytes());
                Ok(())
            }
        )*
    };
}

macro_rules! refuse {
    ($($f:ident($($a:ty),*) -> $r:ty;)*) => {
        $(
            fn $f(self, $(_: $a),*) -> Result<$r, NotPlain> {
                Err(NotPlain)
            }
        )*
    };
}

impl<'x, 'a> ser::Serializer for PlainSer<'x, 'a> {
    type Ok = ();
    type Error = NotPlain;
    type SerializeSeq = Impossible<(), NotPlain>;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Impossible<(), NotPlain>;
    type SerializeMap = Impossible<(), NotPlain>;
    type SerializeStruct = Self;
    type SerializeStructVariant = Impossible<(), NotPlain>;

    scalar! {
        serialize_i8 i8; serialize_i16 i16; serialize_i32 i32; serialize_i64 i64;
        serialize_i128 i128;
        serialize_u8 u8; serialize_u16 u16; serialize_u32 u32; serialize_u64 u64;
        serialize_u128 u128;
        serialize_f32 f32; serialize_f64 f64;
    }

    #[inline]
    fn serialize_bool(self, v: bool) -> Result<(), NotPlain> {
        self.0.array([u8::from(v)]);
        Ok(())
    }

    #[inline]
    fn serialize_char(self, v: char) -> Result<(), NotPlain> {
        self.0.array(u32::from(v).to_le_bytes());
        Ok(())
    }

    fn serialize_unit(self) -> Result<(), NotPlain> {
        Ok(())
    }

    fn serialize_unit_struct(self, _: &'static str) -> Result<(), NotPlain> {
        Ok(())
    }

    #[inline]
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<(), NotPlain> {
        v.serialize(self)
    }

    fn serialize_tuple(self, _: usize) -> Result<Self, NotPlain> {
        Ok(self)
    }

    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self, NotPlain> {
        Ok(self)
    }

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, NotPlain> {
        Ok(self)
    }

    refuse! {
        serialize_str(&str) -> ();
        serialize_bytes(&[u8]) -> ();
        serialize_none() -> ();
        serialize_unit_variant(&'static str, u32, &'static str) -> ();
        serialize_seq(Option<usize>) -> Impossible<(), NotPlain>;
        serialize_map(Option<usize>) -> Impossible<(), NotPlain>;
        serialize_tuple_variant(&'static str, u32, &'static str, usize)
            -> Impossible<(), NotPlain>;
        serialize_struct_variant(&'static str, u32, &'static str, usize)
            -> Impossible<(), NotPlain>;
    }

    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<(), NotPlain> {
        Err(NotPlain)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), NotPlain> {
        Err(NotPlain)
    }

    fn collect_str<T: core::fmt::Display + ?Sized>(self, _: &T) -> Result<(), NotPlain> {
        Err(NotPlain)
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

impl ser::SerializeTuple for PlainSer<'_, '_> {
    type Ok = ();
    type Error = NotPlain;
    #[inline]
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), NotPlain> {
        v.serialize(PlainSer(&mut *self.0))
    }
    fn end(self) -> Result<(), NotPlain> {
        Ok(())
    }
}

impl ser::SerializeTupleStruct for PlainSer<'_, '_> {
    type Ok = ();
    type Error = NotPlain;
    #[inline]
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), NotPlain> {
        v.serialize(PlainSer(&mut *self.0))
    }
    fn end(self) -> Result<(), NotPlain> {
        Ok(())
    }
}

impl ser::SerializeStruct for PlainSer<'_, '_> {
    type Ok = ();
    type Error = NotPlain;
    #[inline]
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        _: &'static str,
        v: &T,
    ) -> Result<(), NotPlain> {
        v.serialize(PlainSer(&mut *self.0))
    }
    fn end(self) -> Result<(), NotPlain> {
        Ok(())
    }
}

/// Reads plain values (see the module documentation) from a byte slice.
#[derive(Clone)]
pub(crate) struct PlainDe<'b> {
    buf: &'b [u8],
    pos: usize,
}

impl<'b> PlainDe<'b> {
    pub(crate) fn new(buf: &'b [u8]) -> PlainDe<'b> {
        PlainDe { buf, pos: 0 }
    }

    /// The bytes not read yet.
    pub(crate) fn rest(&self) -> &'b [u8] {
        &self.buf[self.pos..]
    }

    #[inline]
    fn take<const N: usize>(&mut self) -> Result<[u8; N], NotPlain> {
        let end = self.pos.checked_add(N).ok_or(NotPlain)?;
        let b = self.buf.get(self.pos..end).ok_or(NotPlain)?;
        self.pos = end;
        Ok(b.try_into().expect("N bytes"))
    }
}

macro_rules! read_scalar {
    ($($f:ident $t:ty, $visit:ident;)*) => {
        $(
            #[inline]
            fn $f<V: Visitor<'de>>(self, v: V) -> Result<V::Value, NotPlain> {
                let b = self.take::<{ core::mem::size_of::<$t>() }>()?;
                v.$visit(<$t>::from_le_bytes(b))
            }
        )*
    };
}

macro_rules! read_refused {
    ($($f:ident;)*) => {
        $(
            fn $f<V: Visitor<'de>>(self, _: V) -> Result<V::Value, NotPlain> {
                Err(NotPlain)
            }
        )*
    };
}

impl<'de> de::Deserializer<'de> for &mut PlainDe<'de> {
    type Error = NotPlain;

    read_scalar! {
        deserialize_i8 i8, visit_i8; deserialize_i16 i16, visit_i16;
        deserialize_i32 i32, visit_i32; deserialize_i64 i64, visit_i64;
        deserialize_i128 i128, visit_i128;
        deserialize_u8 u8, visit_u8; deserialize_u16 u16, visit_u16;
        deserialize_u32 u32, visit_u32; deserialize_u64 u64, visit_u64;
        deserialize_u128 u128, visit_u128;
        deserialize_f32 f32, visit_f32; deserialize_f64 f64, visit_f64;
    }

    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, NotPlain> {
        match self.take::<1>()? {
            [0] => v.visit_bool(false),
            [1] => v.visit_bool(true),
            _ => Err(NotPlain),
        }
    }

    fn deserialize_char<V: Visitor<'de>>(self, v: V) -> Result<V::Value, NotPlain> {
        let c = char::from_u32(u32::from_le_bytes(self.take::<4>()?)).ok_or(NotPlain)?;
        v.visit_char(c)
    }

    fn deserialize_unit<V: Visitor<'de>>(self, v: V) -> Result<V::Value, NotPlain> {
        v.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        v: V,
    ) -> Result<V::Value, NotPlain> {
        v.visit_unit()
    }

    #[inline]
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        v: V,
    ) -> Result<V::Value, NotPlain> {
        v.visit_newtype_struct(self)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, v: V) -> Result<V::Value, NotPlain> {
        v.visit_seq(Fields {
            de: self,
            left: len,
        })
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        len: usize,
        v: V,
    ) -> Result<V::Value, NotPlain> {
        v.visit_seq(Fields {
            de: self,
            left: len,
        })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, NotPlain> {
        v.visit_seq(Fields {
            de: self,
            left: fields.len(),
        })
    }

    read_refused! {
        deserialize_any; deserialize_str; deserialize_string; deserialize_bytes;
        deserialize_byte_buf; deserialize_option; deserialize_seq; deserialize_map;
        deserialize_identifier; deserialize_ignored_any;
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, NotPlain> {
        Err(NotPlain)
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

/// The fields of a tuple or struct, read one after the other.
struct Fields<'x, 'de> {
    de: &'x mut PlainDe<'de>,
    left: usize,
}

impl<'de> SeqAccess<'de> for Fields<'_, 'de> {
    type Error = NotPlain;

    #[inline]
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, NotPlain> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.de).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::DeserializeOwned;
    use serde::{Deserialize, Serialize};

    fn plain<T: Serialize>(v: &T) -> Option<Vec<u8>> {
        let mut buf = Vec::new();
        let mut out = Out::at(&mut buf, 0);
        let ok = out.put_plain(v);
        drop(out);
        ok.then_some(buf)
    }

    fn back<T: DeserializeOwned>(b: &[u8]) -> Result<T, NotPlain> {
        let mut de = PlainDe::new(b);
        let v = T::deserialize(&mut de)?;
        if !de.rest().is_empty() {
            return Err(NotPlain);
        }
        Ok(v)
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone, Copy)]
    struct Point {
        x: f64,
        y: i32,
        tag: char,
        on: bool,
        unit: (),
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Wrap(u16);

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Pair(u8, i16);

    #[test]
    fn scalars_are_their_little_endian_bytes() {
        assert_eq!(
            plain(&0x0102_0304_0506_0708u64).unwrap(),
            0x0102_0304_0506_0708u64.to_le_bytes()
        );
        assert_eq!(plain(&-2i32).unwrap(), (-2i32).to_le_bytes());
        assert_eq!(plain(&true).unwrap(), [1]);
        assert_eq!(plain(&'é').unwrap(), u32::from('é').to_le_bytes());
        assert_eq!(plain(&(1u8, 2u16)).unwrap(), [1, 2, 0]);
        assert_eq!(plain(&[3u32; 2]).unwrap(), [3, 0, 0, 0, 3, 0, 0, 0]);
        assert_eq!(plain(&Wrap(5)).unwrap(), [5, 0]);
        assert_eq!(plain(&Pair(1, -2)).unwrap(), [1, 0xfe, 0xff]);
    }

    #[test]
    fn plain_values_round_trip() {
        let p = Point {
            x: -1.5,
            y: 7,
            tag: 'z',
            on: true,
            unit: (),
        };
        assert_eq!(back::<Point>(&plain(&p).unwrap()), Ok(p));
        assert_eq!(back::<u128>(&plain(&u128::MAX).unwrap()), Ok(u128::MAX));
        assert_eq!(
            back::<(i8, f32, [u64; 3])>(&plain(&(-1i8, 0.5f32, [1u64, 2, 3])).unwrap()),
            Ok((-1, 0.5, [1, 2, 3]))
        );
        assert_eq!(back::<Wrap>(&plain(&Wrap(9)).unwrap()), Ok(Wrap(9)));
        assert_eq!(back::<Pair>(&[1, 0xfe, 0xff]), Ok(Pair(1, -2)));
    }

    #[test]
    fn values_with_a_length_or_a_tag_are_refused_and_nothing_is_written() {
        assert_eq!(plain(&"abc"), None);
        assert_eq!(plain(&String::from("abc")), None);
        assert_eq!(plain(&vec![1u8]), None);
        assert_eq!(plain(&Some(1u8)), None);
        assert_eq!(plain(&None::<u8>), None);
        assert_eq!(plain(&Ok::<u8, u8>(1)), None);
        // Refused after its first field: the field's bytes are taken back.
        assert_eq!(plain(&(1u64, "x")), None);
        let mut buf = Vec::new();
        let mut out = Out::at(&mut buf, 0);
        assert!(out.put_plain(&1u8));
        assert!(!out.put_plain(&(2u64, vec![3u8])));
        assert_eq!(out.pos(), 1);
        drop(out);
        assert_eq!(buf, [1]);
    }

    /// Plain for even values; refuses the plain serializer for odd ones
    /// (postcard takes them): a type whose values switch a frame from plain
    /// bytes to postcard part-way.
    #[derive(Debug, PartialEq, Clone, Copy)]
    struct Odd(u32);

    impl Serialize for Odd {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            if self.0 % 2 == 1 && std::any::type_name::<S>().contains("PlainSer") {
                return Err(serde::ser::Error::custom("odd"));
            }
            s.serialize_u32(self.0)
        }
    }

    impl<'de> Deserialize<'de> for Odd {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            u32::deserialize(d).map(Odd)
        }
    }

    fn same(x: Odd) -> Odd {
        if x.0 == 10 {
            panic!("ten");
        }
        x
    }

    /// A unit frame for `items`, run by the worker's trampoline over `same`,
    /// its `Done` body decoded by the parent: (the frame's plain count, the
    /// body's `k` and `p`, each task's result).
    #[allow(clippy::type_complexity)]
    fn through_a_worker(items: &[Odd]) -> (u32, (u32, u32), Vec<Result<Odd, String>>) {
        use super::super::job::{decode, Results};
        use super::super::worker::{tramp1, unit_frame, DONE_HEADER};
        let u32_at = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
        let f: fn(Odd) -> Odd = same;
        let mut frame = vec![0xAA; 3]; // a recycled buffer: its bytes are slack
        let n = unit_frame(
            &mut frame,
            7,
            tramp1::<Odd, Odd>,
            f as usize,
            items.iter().copied(),
            items.len(),
            8,
        )
        .unwrap();
        assert_eq!(n, items.len());
        let end = 4 + u32_at(&frame, 0) as usize;
        let args = &frame[4 + 25..end];
        assert_eq!(u32_at(args, 0) as usize, n);
        let mut out = vec![0x55; 4096]; // slack from an earlier, larger unit
        tramp1::<Odd, Odd>(f as usize, args, &mut out);
        let done = 4 + u32_at(&out, 0) as usize;
        let body = &out[DONE_HEADER..done];
        let (k, p) = (u32_at(body, 1), u32_at(body, 5));
        let each = match decode::<Odd>(0, n, body).0 {
            Results::Values(v) => v.map(Ok).collect(),
            Results::Each(v) => v.map(|r| r.map_err(|e| e.to_string())).collect(),
            Results::Failed { err, .. } => panic!("the unit failed: {err}"),
        };
        (u32_at(args, 4), (k, p), each)
    }

    #[test]
    fn a_frame_switches_from_plain_bytes_to_postcard_at_the_first_value_that_is_not_plain() {
        let v = |xs: &[u32]| xs.iter().map(|&x| Odd(x)).collect::<Vec<_>>();
        // All plain.
        let (p, kp, each) = through_a_worker(&v(&[0, 2, 4]));
        assert_eq!((p, kp), (3, (3, 3)));
        assert_eq!(each, v(&[0, 2, 4]).into_iter().map(Ok).collect::<Vec<_>>());
        // Plain up to 5 (arguments and results alike), postcard from there.
        let items = v(&[0, 2, 4, 5, 6, 7, 8]);
        let (p, kp, each) = through_a_worker(&items);
        assert_eq!((p, kp), (3, (7, 3)));
        assert_eq!(each, items.iter().copied().map(Ok).collect::<Vec<_>>());
        // A task that panics ends the successful prefix (k) where it is.
        let (p, kp, each) = through_a_worker(&v(&[2, 4, 10, 6]));
        assert_eq!((p, kp), (4, (2, 2)));
        assert_eq!(each[..2], [Ok(Odd(2)), Ok(Odd(4))]);
        assert!(
            each[2].as_ref().is_err_and(|e| e.contains("ten")),
            "{:?}",
            each[2]
        );
        assert_eq!(each[3], Ok(Odd(6)));
        // Not plain from the first value on.
        let (p, kp, each) = through_a_worker(&v(&[1, 3]));
        assert_eq!((p, kp), (0, (2, 0)));
        assert_eq!(each, [Ok(Odd(1)), Ok(Odd(3))]);
    }

    /// A plain argument whose result is not plain: the results switch to
    /// postcard at that task, the arguments stay plain, and no task runs
    /// twice or is skipped.
    #[test]
    fn results_switch_to_postcard_at_the_first_result_that_is_not_plain() {
        use super::super::job::{decode, Results};
        use super::super::worker::{tramp1, unit_frame, DONE_HEADER};
        use std::sync::atomic::{AtomicU32, Ordering};
        static CALLS: AtomicU32 = AtomicU32::new(0);
        fn halve(x: u32) -> Odd {
            CALLS.fetch_add(1, Ordering::Relaxed);
            Odd(x / 2)
        }
        let u32_at = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
        let f: fn(u32) -> Odd = halve;
        let items = [0u32, 4, 8, 6, 12, 2, 10];
        let mut frame = Vec::new();
        let n = unit_frame(
            &mut frame,
            1,
            tramp1::<u32, Odd>,
            f as usize,
            items.iter().copied(),
            items.len(),
            4,
        )
        .unwrap();
        let args = &frame[4 + 25..4 + u32_at(&frame, 0) as usize];
        assert_eq!(
            (u32_at(args, 0), u32_at(args, 4)),
            (7, 7),
            "all arguments plain"
        );
        let mut out = Vec::new();
        tramp1::<u32, Odd>(f as usize, args, &mut out);
        assert_eq!(CALLS.load(Ordering::Relaxed), 7, "each task ran once");
        let body = &out[DONE_HEADER..4 + u32_at(&out, 0) as usize];
        // 6 / 2 = 3 is the first odd result: plain up to it, postcard from it.
        assert_eq!((u32_at(body, 1), u32_at(body, 5)), (7, 3));
        match decode::<Odd>(0, n, body).0 {
            Results::Values(v) => assert_eq!(
                v.collect::<Vec<_>>(),
                items.map(|x| Odd(x / 2)),
                "every result, in order"
            ),
            _ => panic!("a task failed"),
        }
    }

    #[test]
    fn every_cut_or_flipped_byte_of_a_unit_or_its_results_is_an_error_not_a_panic() {
        use super::super::job::{decode, Results};
        use super::super::worker::{tramp1, unit_frame, DONE_HEADER};
        let f: fn(Odd) -> Odd = same;
        let items = [0, 2, 5, 6].map(Odd);
        let mut frame = Vec::new();
        let n = unit_frame(
            &mut frame,
            1,
            tramp1::<Odd, Odd>,
            f as usize,
            items.iter().copied(),
            4,
            8,
        )
        .unwrap();
        let args = frame[4 + 25..].to_vec();
        let mut out = Vec::new();
        tramp1::<Odd, Odd>(f as usize, &args, &mut out);
        let body_of = |out: &[u8]| {
            let end = 4 + u32::from_le_bytes(out[..4].try_into().unwrap()) as usize;
            out[DONE_HEADER..end].to_vec()
        };
        let body = body_of(&out);
        let mut bodies: Vec<Vec<u8>> = (0..body.len()).map(|i| body[..i].to_vec()).collect();
        let mut argss: Vec<Vec<u8>> = (0..args.len()).map(|i| args[..i].to_vec()).collect();
        assert_eq!(
            u32::from_le_bytes(args[..4].try_into().unwrap()) as usize,
            n
        );
        for i in 0..body.len() {
            let mut b = body.clone();
            b[i] ^= 0xFF;
            bodies.push(b.clone());
            // Followed by more bytes (a body is decoded from a slice of a
            // longer buffer): a count that is too large must not read them.
            b.extend_from_slice(&[0; 64]);
            bodies.push(b);
        }
        // Not the count (bytes 0..4): a unit frame comes from the pool's own
        // parent, and a worker runs as many tasks as it says.
        for i in 4..args.len() {
            let mut a = args.clone();
            a[i] ^= 0xFF;
            argss.push(a);
        }
        for b in &bodies {
            // Whatever it decodes to, it has one result per task, or the unit failed.
            match decode::<Odd>(0, n, b).0 {
                Results::Values(v) => assert_eq!(v.len(), n, "{b:?}"),
                Results::Each(v) => assert_eq!(v.len(), n, "{b:?}"),
                Results::Failed { left, .. } => assert_eq!(left, n, "{b:?}"),
            }
        }
        for a in &argss {
            // A worker given bad arguments answers a body the parent decodes.
            let mut out = Vec::new();
            tramp1::<Odd, Odd>(f as usize, a, &mut out);
            let _ = decode::<Odd>(0, n, &body_of(&out));
        }
    }

    #[test]
    fn bad_bytes_are_an_error_not_a_panic() {
        assert_eq!(back::<u64>(&[1, 2, 3]), Err(NotPlain));
        assert_eq!(back::<bool>(&[2]), Err(NotPlain));
        assert_eq!(back::<char>(&0xD800u32.to_le_bytes()), Err(NotPlain));
        assert_eq!(back::<String>(&[0, 0]), Err(NotPlain));
        assert_eq!(back::<Option<u8>>(&[1, 1]), Err(NotPlain));
        assert_eq!(back::<Point>(&[0; 10]), Err(NotPlain));
    }

    #[test]
    fn false_trailing_bytes_and_the_message() {
        assert_eq!(back::<bool>(&[0]), Ok(false));
        assert_eq!(back::<bool>(&[1]), Ok(true));
        // A value followed by more bytes: `rest` is what is left.
        let mut de = PlainDe::new(&[7, 8, 9]);
        assert_eq!(u8::deserialize(&mut de), Ok(7));
        assert_eq!(de.rest(), [8, 9]);
        assert_eq!(back::<u8>(&[7, 8]), Err(NotPlain));
        assert_eq!(
            NotPlain.to_string(),
            "not a plain value, or plain bytes that do not decode"
        );
    }

    #[test]
    fn a_type_that_asks_is_told_the_format_is_not_human_readable() {
        // An address serializes as its octets in a compact format, as text in a
        // human-readable one (text is not plain).
        let a = std::net::Ipv4Addr::new(1, 2, 3, 4);
        assert_eq!(plain(&a).unwrap(), [1, 2, 3, 4]);
        assert_eq!(back::<std::net::Ipv4Addr>(&[1, 2, 3, 4]), Ok(a));
        // What serializes through `collect_str` (Display) is text.
        assert_eq!(plain(&format_args!("{}", 1)), None);
    }

    /// The fields' `size_hint` before each read, and whether a read past the
    /// last field gives `None`.
    struct Hints(Vec<Option<usize>>, bool);

    impl<'de> Deserialize<'de> for Hints {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Hints;
                fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                    f.write_str("two u8")
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Hints, A::Error> {
                    let mut hints = vec![s.size_hint()];
                    for _ in 0..2 {
                        s.next_element::<u8>()?;
                        hints.push(s.size_hint());
                    }
                    Ok(Hints(hints, s.next_element::<u8>()?.is_none()))
                }
            }
            d.deserialize_tuple(2, V)
        }
    }

    #[test]
    fn a_tuple_counts_down_its_fields_and_ends_after_the_last() {
        let Hints(hints, ended) = back::<Hints>(&[1, 2]).unwrap();
        assert_eq!(hints, [Some(2), Some(1), Some(0)]);
        assert!(ended);
    }
}
