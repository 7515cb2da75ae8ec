//! Length-prefixed frames and the one serde codec every value crossing a process
//! boundary by copy uses.
//!
//! # Format
//!
//! A frame is a 4-byte little-endian length `n` followed by `n` payload bytes.
//! The payload of a typed frame is the [postcard](https://docs.rs/postcard)
//! encoding of the value (compact, varint integers, no self-description, and no
//! way for a decoder to run code, unlike pickle).
//!
//! Every reader takes a size `limit`: a header announcing more than `limit`
//! bytes is refused with [`WireError::Oversized`] *before* anything is
//! allocated, so a hostile peer cannot make the reader allocate 4 GiB.
//!
//! # Errors
//!
//! * [`WireError::Closed`]: clean end of stream at a frame boundary (the peer closed).
//! * [`WireError::Truncated`]: the stream ended inside a frame.
//! * [`WireError::Oversized`]: the announced length is above the limit.
//! * [`WireError::Corrupt`]: the payload does not decode as the requested type
//!   (postcard's error is its source).
//! * [`WireError::TrailingBytes`]: the value decoded but bytes were left after it.
//! * [`WireError::Encode`]: a value could not be encoded (its `Serialize` failed:
//!   the serializer's own message is kept).
//! * [`WireError::Io`]: any other I/O error.
//!
//! ```
//! use procshare::internals::wire;
//! let mut buf = Vec::new();
//! wire::write_frame(&mut buf, &("hello", 42u32)).unwrap();
//! let v: (String, u32) = wire::read_frame(&mut &buf[..], wire::DEFAULT_LIMIT).unwrap();
//! assert_eq!(v, ("hello".to_string(), 42));
//! // Half a frame is an error, never a hang or a panic.
//! let r = wire::read_frame::<_, (String, u32)>(&mut &buf[..buf.len() - 1], wire::DEFAULT_LIMIT);
//! assert!(matches!(r, Err(wire::WireError::Truncated { .. })));
//! ```

use serde::de::DeserializeOwned;
use serde::Serialize;
use std::io::{self, Read, Write};

/// Size of the length prefix in bytes.
pub const HEADER_LEN: usize = 4;

/// The default frame size limit: 64 MiB.
pub const DEFAULT_LIMIT: usize = 64 << 20;

/// Why a frame could not be read, written, encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The header announces a frame larger than the reader's limit.
    #[error("oversized frame: {len} bytes announced, limit is {limit}")]
    Oversized {
        /// The announced payload length.
        len: u64,
        /// The reader's limit.
        limit: usize,
    },
    /// The stream ended inside a frame.
    #[error("truncated frame: expected {expected} bytes, got {got}")]
    Truncated {
        /// Bytes the frame (header or payload) should have had.
        expected: usize,
        /// Bytes actually received before the end of the stream.
        got: usize,
    },
    /// The payload is not a valid encoding of the requested type (postcard's
    /// error is the source).
    #[error("corrupt frame: {0}")]
    Corrupt(#[source] postcard::Error),
    /// The payload holds a valid value followed by this many more bytes.
    #[error("corrupt frame: {0} trailing bytes after the value")]
    TrailingBytes(usize),
    /// The value could not be encoded: its `Serialize` implementation (or one
    /// of its fields') failed, or it is of a shape postcard cannot encode (a
    /// sequence of unknown length).
    #[error("cannot encode: {message}")]
    Encode {
        /// The serializer's message: the one given to `serde::ser::Error::custom`
        /// by the failing `Serialize` implementation (postcard drops it from its
        /// own error, procshare recovers it), else postcard's.
        message: String,
        /// postcard's error.
        #[source]
        source: postcard::Error,
    },
    /// The peer closed the stream cleanly at a frame boundary.
    #[error("connection closed by peer")]
    Closed,
    /// Any other I/O error.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
}

/// Encode `v` with the codec (postcard).
///
/// ```
/// let b = procshare::internals::wire::encode(&7u8).unwrap();
/// assert_eq!(b, vec![7]);
/// ```
pub fn encode<T: Serialize + ?Sized>(v: &T) -> Result<Vec<u8>, WireError> {
    postcard::to_stdvec(v).map_err(|e| encode_error(v, e))
}

/// The [`WireError::Encode`] for `v`, whose encoding just failed with `e`.
///
/// postcard reports a `Serialize` implementation's `S::Error::custom(msg)` as
/// [`postcard::Error::SerdeSerCustom`], without `msg`. To keep it, `v` is
/// serialized once more (only on this error path) into [`MessageCatcher`], a
/// serializer that writes nothing and whose error keeps the message.
pub(crate) fn encode_error<T: Serialize + ?Sized>(v: &T, e: postcard::Error) -> WireError {
    let caught = match e {
        postcard::Error::SerdeSerCustom => v.serialize(MessageCatcher).err(),
        _ => None,
    };
    WireError::Encode {
        message: caught.map_or_else(|| e.to_string(), |c| c.0),
        source: e,
    }
}

/// Encode `v` with postcard, appending to `buf` (which keeps its allocation:
/// a caller that reuses one buffer allocates nothing per value).
///
/// ```
/// let mut buf = vec![9];
/// procshare::internals::wire::encode_into(&(1u8, "a"), &mut buf).unwrap();
/// assert_eq!(buf, [9, 1, 1, b'a']);
/// ```
pub fn encode_into<T: Serialize + ?Sized>(v: &T, buf: &mut Vec<u8>) -> Result<(), WireError> {
    let b = postcard::to_extend(v, core::mem::take(buf)).map_err(|e| encode_error(v, e))?;
    *buf = b;
    Ok(())
}

/// Encode `v` into `buf` if it fits (`None` if not, or if encoding fails:
/// the caller then encodes with [`encode_into`], which reports the error).
///
/// The bytes are stored one at a time: postcard's own slice output copies
/// each varint, just written a byte at a time into postcard's stack buffer,
/// with `memcpy`, whose wider loads of those fresh byte stores stall on store
/// forwarding (a queue producer spent about 7 % of its time there).
pub(crate) fn encode_small<'b, T: Serialize + ?Sized>(
    v: &T,
    buf: &'b mut [u8],
) -> Option<&'b [u8]> {
    let out = ByteByByte {
        buf: &mut *buf,
        len: 0,
    };
    let n = postcard::serialize_with_flavor(v, out).ok()?;
    Some(&buf[..n])
}

/// [`encode_small`]'s output: `len` bytes of `buf` written.
struct ByteByByte<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl postcard::ser_flavors::Flavor for ByteByByte<'_> {
    type Output = usize;

    #[inline]
    fn try_push(&mut self, b: u8) -> postcard::Result<()> {
        let slot = self
            .buf
            .get_mut(self.len)
            .ok_or(postcard::Error::SerializeBufferFull)?;
        *slot = b;
        self.len += 1;
        Ok(())
    }

    /// All of `data` or nothing: a value too large for the buffer fails at
    /// its first field that does not fit (a 4 KiB byte string, after its
    /// length's varint), not after filling the buffer a byte at a time. The
    /// bytes are still stored one at a time (see above: postcard hands a
    /// varint over as a slice just written to its stack).
    #[inline]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        let end = self.len + data.len();
        let dst = self
            .buf
            .get_mut(self.len..end)
            .ok_or(postcard::Error::SerializeBufferFull)?;
        for (d, b) in dst.iter_mut().zip(data) {
            *d = *b;
        }
        self.len = end;
        Ok(())
    }

    fn finalize(self) -> postcard::Result<usize> {
        Ok(self.len)
    }
}

/// The length of `v`'s encoding (a sizing pass: nothing is written).
pub(crate) fn encoded_len<T: Serialize + ?Sized>(v: &T) -> Result<usize, WireError> {
    postcard::serialize_with_flavor(v, postcard::ser_flavors::Size::default())
        .map_err(|e| encode_error(v, e))
}

/// Encode `v` straight into `sink` (a queue ring's chunks: see
/// [`procshare_model::ring::Message::Written`]). Short writes (varints,
/// small fields) are gathered in a 64-byte stack buffer first; a write of
/// 64 bytes or more (a byte string's body) goes to the sink as it comes, so
/// a large byte string is copied once. Fails with postcard's error, or
/// [`postcard::Error::SerializeBufferFull`] if the sink refuses the bytes.
pub(crate) fn encode_to_sink<T: Serialize + ?Sized>(
    v: &T,
    sink: &mut dyn procshare_model::ring::Sink,
) -> postcard::Result<()> {
    let out = ToSink {
        sink,
        buf: [0; GATHER],
        len: 0,
    };
    postcard::serialize_with_flavor(v, out)
}

/// Bytes [`encode_to_sink`] gathers before writing them to the sink.
const GATHER: usize = 64;

/// [`encode_to_sink`]'s output: `len` bytes of `buf` not yet written.
struct ToSink<'s> {
    sink: &'s mut dyn procshare_model::ring::Sink,
    buf: [u8; GATHER],
    len: usize,
}

impl ToSink<'_> {
    fn flush(&mut self) -> postcard::Result<()> {
        if self.len > 0 && !self.sink.write(&self.buf[..self.len]) {
            return Err(postcard::Error::SerializeBufferFull);
        }
        self.len = 0;
        Ok(())
    }
}

impl postcard::ser_flavors::Flavor for ToSink<'_> {
    type Output = ();

    #[inline]
    fn try_push(&mut self, b: u8) -> postcard::Result<()> {
        if self.len == GATHER {
            self.flush()?;
        }
        self.buf[self.len] = b;
        self.len += 1;
        Ok(())
    }

    #[inline]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        if data.len() <= GATHER - self.len {
            self.buf[self.len..self.len + data.len()].copy_from_slice(data);
            self.len += data.len();
            return Ok(());
        }
        self.flush()?;
        if data.len() >= GATHER {
            return match self.sink.write(data) {
                true => Ok(()),
                false => Err(postcard::Error::SerializeBufferFull),
            };
        }
        self.buf[..data.len()].copy_from_slice(data);
        self.len = data.len();
        Ok(())
    }

    fn finalize(mut self) -> postcard::Result<()> {
        self.flush()
    }
}

/// Decode a whole payload as `T`; trailing bytes are an error.
///
/// ```
/// let v: u8 = procshare::internals::wire::decode(&[7]).unwrap();
/// assert_eq!(v, 7);
/// assert!(procshare::internals::wire::decode::<u8>(&[7, 0]).is_err());
/// ```
pub fn decode<T: DeserializeOwned>(b: &[u8]) -> Result<T, WireError> {
    match postcard::take_from_bytes::<T>(b) {
        Ok((v, [])) => Ok(v),
        Ok((_, rest)) => Err(WireError::TrailingBytes(rest.len())),
        Err(e) => Err(WireError::Corrupt(e)),
    }
}

/// The 4-byte header for a payload of `len` bytes. Fails if `len` does not fit in 32 bits.
fn header(len: usize) -> Result<[u8; HEADER_LEN], WireError> {
    let n = u32::try_from(len).map_err(|_| WireError::Oversized {
        len: len as u64,
        limit: u32::MAX as usize,
    })?;
    Ok(n.to_le_bytes())
}

/// Write one frame holding `payload` (header and payload in one `write_all`).
///
/// ```
/// let mut buf = Vec::new();
/// procshare::internals::wire::write_frame_bytes(&mut buf, b"ab").unwrap();
/// assert_eq!(buf, [2, 0, 0, 0, b'a', b'b']);
/// ```
pub fn write_frame_bytes<W: Write + ?Sized>(w: &mut W, payload: &[u8]) -> Result<(), WireError> {
    let mut buf = Vec::with_capacity(HEADER_LEN + payload.len());
    buf.extend_from_slice(&header(payload.len())?);
    buf.extend_from_slice(payload);
    w.write_all(&buf)?;
    Ok(())
}

/// Encode `v` and write it as one frame.
///
/// ```
/// let mut buf = Vec::new();
/// procshare::internals::wire::write_frame(&mut buf, &1u8).unwrap();
/// assert_eq!(buf, [1, 0, 0, 0, 1]);
/// ```
pub fn write_frame<W: Write + ?Sized, T: Serialize + ?Sized>(
    w: &mut W,
    v: &T,
) -> Result<(), WireError> {
    // Reserve the header in the same buffer: one allocation, one write.
    let mut buf = vec![0u8; HEADER_LEN];
    let mut buf =
        postcard::to_extend(v, std::mem::take(&mut buf)).map_err(|e| encode_error(v, e))?;
    let h = header(buf.len() - HEADER_LEN)?;
    buf[..HEADER_LEN].copy_from_slice(&h);
    w.write_all(&buf)?;
    Ok(())
}

/// Read into `buf` until full or end of stream; returns the bytes read.
fn read_full<R: Read + ?Sized>(r: &mut R, buf: &mut [u8]) -> Result<usize, WireError> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(WireError::Io(e)),
        }
    }
    Ok(got)
}

/// Read one frame's payload; refuses frames above `limit` before allocating.
///
/// ```
/// use procshare::internals::wire::{read_frame_bytes, WireError};
/// let buf = [9u8, 0, 0, 0];
/// assert!(matches!(read_frame_bytes(&mut &buf[..], 8), Err(WireError::Oversized { len: 9, .. })));
/// assert!(matches!(read_frame_bytes(&mut &[][..], 8), Err(WireError::Closed)));
/// ```
pub fn read_frame_bytes<R: Read + ?Sized>(r: &mut R, limit: usize) -> Result<Vec<u8>, WireError> {
    let mut h = [0u8; HEADER_LEN];
    let got = read_full(r, &mut h)?;
    if got == 0 {
        return Err(WireError::Closed);
    }
    if got < HEADER_LEN {
        return Err(WireError::Truncated {
            expected: HEADER_LEN,
            got,
        });
    }
    let len = u32::from_le_bytes(h) as usize;
    if len > limit {
        return Err(WireError::Oversized {
            len: len as u64,
            limit,
        });
    }
    let mut payload = vec![0u8; len];
    let got = read_full(r, &mut payload)?;
    if got < len {
        return Err(WireError::Truncated { expected: len, got });
    }
    Ok(payload)
}

/// Read one frame and decode it as `T`.
///
/// ```
/// let mut buf = Vec::new();
/// procshare::internals::wire::write_frame(&mut buf, &vec![1u16, 2]).unwrap();
/// let v: Vec<u16> = procshare::internals::wire::read_frame(&mut &buf[..], 1024).unwrap();
/// assert_eq!(v, [1, 2]);
/// ```
pub fn read_frame<R: Read + ?Sized, T: DeserializeOwned>(
    r: &mut R,
    limit: usize,
) -> Result<T, WireError> {
    decode(&read_frame_bytes(r, limit)?)
}

/// Encode `v` as one whole frame (header and payload) into `buf`, replacing
/// what it held but keeping its allocation: a caller that reuses one buffer
/// allocates nothing per frame, and writes the frame with one `write_all`.
///
/// ```
/// let mut buf = vec![9, 9];
/// procshare::internals::wire::encode_frame_into(&1u8, &mut buf).unwrap();
/// assert_eq!(buf, [1, 0, 0, 0, 1]);
/// ```
pub fn encode_frame_into<T: Serialize + ?Sized>(v: &T, buf: &mut Vec<u8>) -> Result<(), WireError> {
    buf.clear();
    buf.extend_from_slice(&[0u8; HEADER_LEN]);
    let mut b = postcard::to_extend(v, core::mem::take(buf)).map_err(|e| encode_error(v, e))?;
    let h = header(b.len() - HEADER_LEN);
    let h = match h {
        Ok(h) => h,
        Err(e) => {
            b.clear();
            *buf = b;
            return Err(e);
        }
    };
    b[..HEADER_LEN].copy_from_slice(&h);
    *buf = b;
    Ok(())
}

/// A frame reader that asks the stream for as many bytes as it has (up to
/// its buffer's room) instead of the header and then the payload: a frame
/// that arrived whole is read with one `read` system call, and frames that
/// arrived together (pipelined requests) with one for all. Bytes read beyond
/// a frame are kept for the next [`FrameBuf::read_frame`], so one `FrameBuf`
/// belongs to one stream for that stream's life.
///
/// The errors and the limit are [`read_frame_bytes`]'s: a header announcing
/// more than `limit` bytes is refused before anything is allocated for it.
///
/// ```
/// use procshare::internals::wire::{self, FrameBuf, WireError};
/// let mut bytes = Vec::new();
/// wire::write_frame(&mut bytes, &7u8).unwrap();
/// wire::write_frame(&mut bytes, &"ab").unwrap();
/// let (mut r, mut fb) = (&bytes[..], FrameBuf::new());
/// assert_eq!(fb.read_frame(&mut r, 16).unwrap(), [7]);
/// assert_eq!(fb.read_frame(&mut r, 16).unwrap(), [2, b'a', b'b']);
/// assert!(fb.is_empty());
/// assert!(matches!(fb.read_frame(&mut r, 16), Err(WireError::Closed)));
/// ```
#[derive(Debug, Default)]
pub struct FrameBuf {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl FrameBuf {
    /// Room asked of each `read` (at least; a larger frame grows the buffer
    /// to its size, and the buffer is cut back to this once it is consumed).
    const ROOM: usize = 4096;

    /// An empty reader (allocates on its first read).
    ///
    /// ```
    /// assert!(procshare::internals::wire::FrameBuf::new().is_empty());
    /// ```
    pub fn new() -> FrameBuf {
        FrameBuf::default()
    }

    /// No byte is buffered (every byte read so far was part of a frame
    /// already returned).
    ///
    /// ```
    /// let mut fb = procshare::internals::wire::FrameBuf::new();
    /// let two = [1u8, 0, 0, 0, 5, 1, 0, 0, 0, 6];
    /// assert_eq!(fb.read_frame(&mut &two[..], 8).unwrap(), [5]);
    /// assert!(!fb.is_empty()); // the second frame came with the first
    /// ```
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Read until at least `want` bytes are buffered; `Ok(false)` if the
    /// stream ended first.
    fn fill<R: Read + ?Sized>(&mut self, r: &mut R, want: usize) -> Result<bool, WireError> {
        if self.end - self.start >= want {
            return Ok(true);
        }
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            if self.buf.len() > 16 * Self::ROOM && want <= Self::ROOM {
                // A large frame came and went: give its room back.
                self.buf = Vec::new();
            }
        }
        if self.buf.len() - self.start < want {
            // Move what is buffered to the front; grow if that is not enough.
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            let room = want.max(Self::ROOM);
            if self.buf.len() < room {
                self.buf.resize(room, 0);
            }
        }
        while self.end - self.start < want {
            match r.read(&mut self.buf[self.end..]) {
                Ok(0) => return Ok(false),
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(WireError::Io(e)),
            }
        }
        Ok(true)
    }

    /// Read one frame's payload (valid until the next call).
    ///
    /// ```
    /// use procshare::internals::wire::{FrameBuf, WireError};
    /// let mut fb = FrameBuf::new();
    /// let r = fb.read_frame(&mut &[9u8, 0, 0, 0][..], 8);
    /// assert!(matches!(r, Err(WireError::Oversized { len: 9, .. })));
    /// let mut fb = FrameBuf::new();
    /// let r = fb.read_frame(&mut &[2u8, 0, 0, 0, 1][..], 8);
    /// assert!(matches!(r, Err(WireError::Truncated { expected: 2, got: 1 })));
    /// ```
    pub fn read_frame<R: Read + ?Sized>(
        &mut self,
        r: &mut R,
        limit: usize,
    ) -> Result<&[u8], WireError> {
        if !self.fill(r, HEADER_LEN)? {
            let got = self.end - self.start;
            return Err(if got == 0 {
                WireError::Closed
            } else {
                WireError::Truncated {
                    expected: HEADER_LEN,
                    got,
                }
            });
        }
        let mut h = [0u8; HEADER_LEN];
        h.copy_from_slice(&self.buf[self.start..self.start + HEADER_LEN]);
        let len = u32::from_le_bytes(h) as usize;
        if len > limit {
            return Err(WireError::Oversized {
                len: len as u64,
                limit,
            });
        }
        if !self.fill(r, HEADER_LEN + len)? {
            return Err(WireError::Truncated {
                expected: len,
                got: self.end - self.start - HEADER_LEN,
            });
        }
        let from = self.start + HEADER_LEN;
        self.start = from + len;
        Ok(&self.buf[from..from + len])
    }
}

/// Split the first frame off an in-memory buffer: `(payload, rest)`.
///
/// This is the decoder the fuzz target `wire_frame` drives; it never panics.
///
/// ```
/// let (p, rest) = procshare::internals::wire::split_frame(&[1, 0, 0, 0, 5, 6], 16).unwrap();
/// assert_eq!((p, rest), (&[5u8][..], &[6u8][..]));
/// ```
pub fn split_frame(buf: &[u8], limit: usize) -> Result<(&[u8], &[u8]), WireError> {
    if buf.is_empty() {
        return Err(WireError::Closed);
    }
    if buf.len() < HEADER_LEN {
        return Err(WireError::Truncated {
            expected: HEADER_LEN,
            got: buf.len(),
        });
    }
    let mut h = [0u8; HEADER_LEN];
    h.copy_from_slice(&buf[..HEADER_LEN]);
    let len = u32::from_le_bytes(h) as usize;
    if len > limit {
        return Err(WireError::Oversized {
            len: len as u64,
            limit,
        });
    }
    let body = &buf[HEADER_LEN..];
    if body.len() < len {
        return Err(WireError::Truncated {
            expected: len,
            got: body.len(),
        });
    }
    Ok(body.split_at(len))
}

/// The message of a failed serialization, as [`MessageCatcher`] reports it.
#[derive(Debug)]
struct Caught(String);

impl core::fmt::Display for Caught {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Caught {}

impl serde::ser::Error for Caught {
    fn custom<M: core::fmt::Display>(msg: M) -> Self {
        Caught(msg.to_string())
    }
}

/// A serializer that accepts every serde shape, writes nothing, and fails
/// only where the value's own `Serialize` fails: its error is that failure's
/// message (see [`encode_error`]).
struct MessageCatcher;

macro_rules! catch_leaves {
    ($($f:ident($t:ty)),* $(,)?) => {
        $(fn $f(self, _: $t) -> Result<(), Caught> { Ok(()) })*
    };
}

impl serde::Serializer for MessageCatcher {
    type Ok = ();
    type Error = Caught;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    catch_leaves!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_i128(i128),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_u128(u128),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_unit_struct(&'static str),
    );
    fn serialize_none(self) -> Result<(), Caught> {
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<(), Caught> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Caught> {
        Ok(())
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
    ) -> Result<(), Caught> {
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<(), Caught> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        v: &T,
    ) -> Result<(), Caught> {
        v.serialize(self)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self, Caught> {
        Ok(self)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self, Caught> {
        Ok(self)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self, Caught> {
        Ok(self)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, Caught> {
        Ok(self)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self, Caught> {
        Ok(self)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, Caught> {
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, Caught> {
        Ok(self)
    }
    fn collect_str<T: core::fmt::Display + ?Sized>(self, _: &T) -> Result<(), Caught> {
        Ok(())
    }
}

macro_rules! catch_compound {
    ($($tr:ident :: $f:ident),* $(,)?) => {
        $(impl serde::ser::$tr for MessageCatcher {
            type Ok = ();
            type Error = Caught;
            fn $f<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Caught> {
                v.serialize(MessageCatcher)
            }
            fn end(self) -> Result<(), Caught> {
                Ok(())
            }
        })*
    };
}

catch_compound!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field,
);

macro_rules! catch_fields {
    ($($tr:ident),* $(,)?) => {
        $(impl serde::ser::$tr for MessageCatcher {
            type Ok = ();
            type Error = Caught;
            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                _: &'static str,
                v: &T,
            ) -> Result<(), Caught> {
                v.serialize(MessageCatcher)
            }
            fn end(self) -> Result<(), Caught> {
                Ok(())
            }
        })*
    };
}

catch_fields!(SerializeStruct, SerializeStructVariant);

impl serde::ser::SerializeMap for MessageCatcher {
    type Ok = ();
    type Error = Caught;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> Result<(), Caught> {
        k.serialize(MessageCatcher)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Caught> {
        v.serialize(MessageCatcher)
    }
    fn end(self) -> Result<(), Caught> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, VecDeque};

    /// A sink into a vector, which refuses bytes past `cap` (as a ring's
    /// piece refuses bytes past its announced length).
    struct VecSink {
        out: Vec<u8>,
        cap: usize,
        writes: usize,
    }

    impl procshare_model::ring::Sink for VecSink {
        fn write(&mut self, bytes: &[u8]) -> bool {
            if self.out.len() + bytes.len() > self.cap {
                return false;
            }
            self.out.extend_from_slice(bytes);
            self.writes += 1;
            true
        }
    }

    /// `encode_to_sink` writes what postcard's own encoder writes, whatever
    /// mix of short writes (gathered) and long ones (passed through) the
    /// value makes, `encoded_len` is its length, and a sink that refuses the
    /// bytes makes it fail.
    #[test]
    fn encode_to_sink_is_postcard() {
        fn same<T: Serialize>(v: T) -> usize {
            let want = postcard::to_stdvec(&v).unwrap();
            assert_eq!(encoded_len(&v).unwrap(), want.len());
            let mut sink = VecSink {
                out: Vec::new(),
                cap: usize::MAX,
                writes: 0,
            };
            encode_to_sink(&v, &mut sink).unwrap();
            assert_eq!(sink.out, want);
            if !want.is_empty() {
                let mut short = VecSink {
                    out: Vec::new(),
                    cap: want.len() - 1,
                    writes: 0,
                };
                assert!(
                    encode_to_sink(&v, &mut short).is_err(),
                    "{} bytes",
                    want.len()
                );
            }
            sink.writes
        }
        for n in [0usize, 1, 62, 63, 64, 65, 200, 5000] {
            // A string filling the gather buffer to the byte, then short fields.
            same(("s".repeat(n), 7u8, 300u32, [1u8; 3]));
            same(serde_bytes::ByteBuf::from(vec![n as u8; n]));
            same((
                1u8,
                serde_bytes::ByteBuf::from(vec![2; n]),
                "t".repeat(n % 70),
            ));
            same((0..n as u64).collect::<Vec<u64>>());
        }
        // Short writes are gathered: 1,000 varints in a handful of writes, a
        // long byte string in about one.
        assert!(same(vec![u64::MAX; 1000]) <= 10_000 / 50);
        assert!(same(serde_bytes::ByteBuf::from(vec![0u8; 4096])) <= 3);
    }

    /// `encode_small` writes what postcard's own encoder writes, and nothing
    /// when the value does not fit.
    #[test]
    fn encode_small_is_postcard_or_nothing() {
        fn same<T: Serialize>(v: T) {
            let mut buf = [0u8; 16];
            let want = postcard::to_stdvec(&v).unwrap();
            let got = encode_small(&v, &mut buf).map(<[u8]>::to_vec);
            if want.len() <= 16 {
                assert_eq!(got, Some(want));
            } else {
                assert_eq!(got, None, "{} bytes do not fit in 16", want.len());
            }
        }
        for v in [0u64, 1, 127, 128, 300, 1 << 21, u64::MAX] {
            same(v);
        }
        same(-5i32);
        same((1u8, "abc", [2u16, 60_000]));
        same("fifteen letters");
        same("sixteen letters!");
        same(vec![7u32; 20]);
    }

    /// A value too large for `encode_small`'s buffer fails at its first
    /// field that does not fit, without writing any of it: a 4 KiB byte
    /// string leaves the buffer as it was after its length (the try on the
    /// stack costs a varint, not 64 byte stores, before the queue sizes the
    /// value). Fails if the buffer is filled a byte at a time first.
    #[test]
    fn encode_small_refuses_a_field_that_does_not_fit_whole() {
        let mut buf = [0xAAu8; 64];
        let big = serde_bytes::ByteBuf::from(vec![7u8; 4096]);
        assert_eq!(encode_small(&big, &mut buf), None);
        assert_eq!(buf[..2], [0x80, 0x20], "the length's varint");
        assert!(buf[2..].iter().all(|&b| b == 0xAA), "{:?}", &buf[..8]);
        // A field that fits whole is written whole.
        let mut buf = [0u8; 8];
        let small = (1u8, serde_bytes::ByteBuf::from(vec![9u8; 6]));
        assert_eq!(
            encode_small(&small, &mut buf),
            Some(&[1, 6, 9, 9, 9, 9, 9, 9][..])
        );
    }

    /// A stream that hands out its bytes in the given pieces, one piece (or
    /// what fits of it) per `read`, as a socket does when the peer's writes
    /// arrive apart, with the scripted errors between them (`Interrupted` is
    /// EINTR, which the `Read` contract says to retry). Asking it for 0 bytes
    /// panics: on a socket such a read blocks until data comes.
    struct Pieces(VecDeque<io::Result<Vec<u8>>>);

    impl Read for Pieces {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            assert!(!buf.is_empty(), "a read of 0 bytes (blocks on a socket)");
            match self.0.pop_front() {
                None => Ok(0),
                Some(Err(e)) => Err(e),
                Some(Ok(mut p)) => {
                    let n = p.len().min(buf.len());
                    buf[..n].copy_from_slice(&p[..n]);
                    if n < p.len() {
                        self.0.push_front(Ok(p.split_off(n)));
                    }
                    Ok(n)
                }
            }
        }
    }

    fn pieces<const N: usize>(parts: [io::Result<&[u8]>; N]) -> Pieces {
        Pieces(parts.into_iter().map(|p| p.map(<[u8]>::to_vec)).collect())
    }

    fn one_byte_at_a_time(b: &[u8]) -> Pieces {
        Pieces(b.iter().map(|&x| Ok(vec![x])).collect())
    }

    fn eintr<'a>() -> io::Result<&'a [u8]> {
        Err(io::ErrorKind::Interrupted.into())
    }

    /// A frame of `len` payload bytes `0, 1, 2, ...` (mod 251).
    fn frame_of(len: usize) -> Vec<u8> {
        let mut f = (len as u32).to_le_bytes().to_vec();
        f.extend((0..len).map(|i| (i % 251) as u8));
        f
    }

    #[test]
    fn roundtrip_and_errors() {
        let mut buf = Vec::new();
        write_frame(&mut buf, &vec!["a".to_string(); 3]).unwrap();
        write_frame(&mut buf, &5u64).unwrap();
        let mut r = &buf[..];
        let a: Vec<String> = read_frame(&mut r, 100).unwrap();
        assert_eq!(a.len(), 3);
        let b: u64 = read_frame(&mut r, 100).unwrap();
        assert_eq!(b, 5);
        assert!(matches!(
            read_frame::<_, u64>(&mut r, 100),
            Err(WireError::Closed)
        ));
        // truncated header
        assert!(matches!(
            read_frame_bytes(&mut &[1u8, 0][..], 100),
            Err(WireError::Truncated {
                expected: 4,
                got: 2
            })
        ));
        // corrupt: a bool must be 0 or 1
        let mut c = Vec::new();
        write_frame_bytes(&mut c, &[7]).unwrap();
        assert!(matches!(
            read_frame::<_, bool>(&mut &c[..], 100),
            Err(WireError::Corrupt(_))
        ));
        // trailing bytes
        assert!(matches!(
            decode::<u8>(&[7, 0]),
            Err(WireError::TrailingBytes(1))
        ));
        // huge length refused without allocating
        assert!(matches!(
            read_frame_bytes(&mut &[0xff, 0xff, 0xff, 0xff][..], DEFAULT_LIMIT),
            Err(WireError::Oversized { .. })
        ));
    }

    #[test]
    fn the_default_limit_is_64_mib() {
        let at = (64u32 << 20).to_le_bytes();
        assert!(matches!(
            split_frame(&at, DEFAULT_LIMIT),
            Err(WireError::Truncated { expected, got: 0 }) if expected == 64 << 20
        ));
        let above = ((64u32 << 20) + 1).to_le_bytes();
        assert!(matches!(
            split_frame(&above, DEFAULT_LIMIT),
            Err(WireError::Oversized { len, limit }) if len == (64 << 20) + 1 && limit == 64 << 20
        ));
    }

    #[test]
    fn encodings_are_postcards_and_frames_have_a_le_header() {
        // 300 is the varint [0xac, 0x02]: a value longer than one byte.
        assert_eq!(encode(&300u16).unwrap(), [0xac, 0x02]);
        assert_eq!(encode(&("ab", 1u8)).unwrap(), [2, b'a', b'b', 1]);
        let mut buf = vec![9];
        encode_into(&300u16, &mut buf).unwrap();
        assert_eq!(buf, [9, 0xac, 0x02]);
        let mut w = Vec::new();
        write_frame_bytes(&mut w, b"abc").unwrap();
        assert_eq!(w, [3, 0, 0, 0, b'a', b'b', b'c']);
        let mut w = Vec::new();
        write_frame(&mut w, &300u16).unwrap();
        assert_eq!(w, [2, 0, 0, 0, 0xac, 0x02]);
        let mut buf = vec![9, 9, 9];
        encode_frame_into(&"ab", &mut buf).unwrap();
        assert_eq!(buf, [3, 0, 0, 0, 2, b'a', b'b']);
        assert_eq!(header(0x0102_0304).unwrap(), [4, 3, 2, 1]);
        assert_eq!(header(u32::MAX as usize).unwrap(), [0xff; 4]);
        // A payload of 4 GiB does not fit the header (tested on the header
        // alone: nothing that large is allocated).
        assert!(matches!(
            header(1 << 32),
            Err(WireError::Oversized { len, limit }) if len == 1 << 32 && limit == u32::MAX as usize
        ));
    }

    /// A value whose `Serialize` fails with the message "boom".
    #[derive(PartialEq, Eq, PartialOrd, Ord)]
    struct Failing;

    impl Serialize for Failing {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("boom"))
        }
    }

    #[derive(serde::Serialize)]
    struct Newtype(Failing);
    #[derive(serde::Serialize)]
    struct TupleStruct(u8, Failing);
    #[derive(serde::Serialize)]
    struct Struct {
        a: u8,
        b: Failing,
    }
    #[derive(serde::Serialize)]
    enum Enum {
        Newtype(Failing),
        Tuple(u8, Failing),
        Struct { a: u8, b: Failing },
    }

    /// A sequence of unknown length: postcard refuses it on its own.
    struct UnknownLength;

    impl Serialize for UnknownLength {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            serde::ser::SerializeSeq::end(s.serialize_seq(None)?)
        }
    }

    fn message<T: Serialize + ?Sized>(v: &T) -> String {
        let from = [
            encode(v).err(),
            encode_into(v, &mut Vec::new()).err(),
            write_frame(&mut Vec::new(), v).err(),
            encode_frame_into(v, &mut Vec::new()).err(),
        ];
        let mut messages = from.into_iter().map(|e| match e {
            Some(WireError::Encode { message, .. }) => message,
            other => panic!("not an encode error: {other:?}"),
        });
        let first = messages.next().unwrap();
        assert!(messages.all(|m| m == first));
        first
    }

    #[test]
    fn an_encode_error_keeps_the_serializers_message_in_every_shape() {
        assert_eq!(message(&Failing), "boom");
        assert_eq!(message(&Some(Failing)), "boom");
        assert_eq!(message(&Newtype(Failing)), "boom");
        assert_eq!(message(&Enum::Newtype(Failing)), "boom");
        assert_eq!(message(&vec![Failing]), "boom");
        assert_eq!(message(&(1u8, Failing)), "boom");
        assert_eq!(message(&TupleStruct(1, Failing)), "boom");
        assert_eq!(message(&Enum::Tuple(1, Failing)), "boom");
        assert_eq!(message(&Struct { a: 1, b: Failing }), "boom");
        assert_eq!(message(&Enum::Struct { a: 1, b: Failing }), "boom");
        assert_eq!(message(&BTreeMap::from([(1u8, Failing)])), "boom");
        assert_eq!(message(&BTreeMap::from([(Failing, 1u8)])), "boom");
        // Not a `Serialize`'s own failure: postcard's message.
        assert_eq!(
            message(&UnknownLength),
            postcard::Error::SerializeSeqLengthUnknown.to_string()
        );
        let e = encode(&Failing).unwrap_err();
        assert_eq!(e.to_string(), "cannot encode: boom");
        assert_eq!(Caught("boom".into()).to_string(), "boom");
    }

    #[test]
    fn read_frame_bytes_retries_eintr_and_reads_a_frame_in_pieces() {
        let mut r = pieces([
            Ok(&[3]),
            eintr(),
            Ok(&[0, 0]),
            Ok(&[0, b'a']),
            eintr(),
            Ok(&[b'b', b'c', 2, 0, 0, 0]),
            Ok(b"de"),
        ]);
        assert_eq!(read_frame_bytes(&mut r, 3).unwrap(), b"abc");
        assert_eq!(read_frame_bytes(&mut r, 3).unwrap(), b"de");
        assert!(matches!(
            read_frame_bytes(&mut r, 3),
            Err(WireError::Closed)
        ));
        // An empty payload.
        let mut r = one_byte_at_a_time(&[0, 0, 0, 0]);
        assert_eq!(read_frame_bytes(&mut r, 3).unwrap(), b"");
    }

    #[test]
    fn read_frame_bytes_limit_truncation_and_io_errors() {
        let f = [3, 0, 0, 0, b'a', b'b', b'c'];
        assert_eq!(read_frame_bytes(&mut &f[..], 3).unwrap(), b"abc");
        assert!(matches!(
            read_frame_bytes(&mut &f[..], 2),
            Err(WireError::Oversized { len: 3, limit: 2 })
        ));
        for n in 1..4 {
            assert!(matches!(
                read_frame_bytes(&mut &f[..n], 3),
                Err(WireError::Truncated { expected: 4, got }) if got == n
            ));
        }
        assert!(matches!(
            read_frame_bytes(&mut &f[..6], 3),
            Err(WireError::Truncated {
                expected: 3,
                got: 2
            })
        ));
        // Any other error is the caller's (not retried), whatever follows it.
        let mut r = pieces([Ok(&[3, 0]), Err(io::Error::other("gone")), Ok(&f[2..])]);
        match read_frame_bytes(&mut r, 3) {
            Err(WireError::Io(e)) => assert_eq!(e.to_string(), "gone"),
            other => panic!("{other:?}"),
        }
        let mut r = pieces([Err(io::Error::other("gone")), Ok(&f[..])]);
        assert!(matches!(read_frame_bytes(&mut r, 3), Err(WireError::Io(_))));
    }

    #[test]
    fn split_frame_on_short_exact_and_long_buffers() {
        assert!(matches!(split_frame(&[], 8), Err(WireError::Closed)));
        for n in 1..4 {
            assert!(matches!(
                split_frame(&[2, 0, 0][..n], 8),
                Err(WireError::Truncated { expected: 4, got }) if got == n
            ));
        }
        assert_eq!(split_frame(&[0, 0, 0, 0], 8).unwrap(), (&[][..], &[][..]));
        assert_eq!(
            split_frame(&[0, 0, 0, 0, 9], 8).unwrap(),
            (&[][..], &[9][..])
        );
        let f = [2, 0, 0, 0, b'a', b'b', b'c'];
        assert_eq!(split_frame(&f, 2).unwrap(), (&b"ab"[..], &b"c"[..]));
        assert_eq!(split_frame(&f[..6], 2).unwrap(), (&b"ab"[..], &[][..]));
        assert!(matches!(
            split_frame(&f[..5], 2),
            Err(WireError::Truncated {
                expected: 2,
                got: 1
            })
        ));
        assert!(matches!(
            split_frame(&f, 1),
            Err(WireError::Oversized { len: 2, limit: 1 })
        ));
    }

    #[test]
    fn frame_buf_reads_frames_in_pieces_and_pipelined() {
        let mut all = vec![1, 0, 0, 0, 7];
        all.extend([0, 0, 0, 0]);
        all.extend([3, 0, 0, 0, b'a', b'b', b'c']);
        // One byte per read, with EINTRs.
        let mut r = one_byte_at_a_time(&all);
        r.0.insert(2, Err(io::ErrorKind::Interrupted.into()));
        r.0.insert(12, Err(io::ErrorKind::Interrupted.into()));
        let mut fb = FrameBuf::new();
        assert_eq!(fb.read_frame(&mut r, 3).unwrap(), [7]);
        assert!(fb.is_empty());
        assert_eq!(fb.read_frame(&mut r, 3).unwrap(), []);
        assert_eq!(fb.read_frame(&mut r, 3).unwrap(), b"abc");
        assert!(matches!(fb.read_frame(&mut r, 3), Err(WireError::Closed)));
        // All in one read.
        let mut r = &all[..];
        let mut fb = FrameBuf::new();
        assert_eq!(fb.read_frame(&mut r, 3).unwrap(), [7]);
        assert!(!fb.is_empty());
        assert_eq!(fb.read_frame(&mut r, 3).unwrap(), []);
        assert!(!fb.is_empty());
        assert_eq!(fb.read_frame(&mut r, 3).unwrap(), b"abc");
        assert!(fb.is_empty());
        assert!(matches!(fb.read_frame(&mut r, 3), Err(WireError::Closed)));
        // The next frame's first part comes with this one, its end later.
        let mut r = pieces([Ok(&all[..10]), Ok(&all[10..])]);
        let mut fb = FrameBuf::new();
        assert_eq!(fb.read_frame(&mut r, 3).unwrap(), [7]);
        assert_eq!(fb.read_frame(&mut r, 3).unwrap(), []);
        assert_eq!(fb.read_frame(&mut r, 3).unwrap(), b"abc");
        // A lone empty frame.
        let mut fb = FrameBuf::new();
        assert_eq!(fb.read_frame(&mut &[0u8, 0, 0, 0][..], 3).unwrap(), []);
    }

    #[test]
    fn frame_buf_errors_count_from_the_frame_not_the_buffer() {
        let f1 = [1u8, 0, 0, 0, 7];
        // What follows the first frame arrives apart from it (and is read into
        // the emptied buffer) or with it (and sits behind it in the buffer).
        for (tail, expect) in [(&[3u8, 0, 0, 0, b'a', b'b'][..], (3, 2)), (&[1, 0], (4, 2))] {
            for together in [false, true] {
                let joined = [&f1[..], tail].concat();
                let mut r = if together {
                    pieces([Ok(&joined[..])])
                } else {
                    pieces([Ok(&f1[..]), Ok(tail)])
                };
                let mut fb = FrameBuf::new();
                assert_eq!(fb.read_frame(&mut r, 3).unwrap(), [7]);
                match fb.read_frame(&mut r, 3) {
                    Err(WireError::Truncated { expected, got }) => {
                        assert_eq!((expected, got), expect, "{tail:?}, together: {together}")
                    }
                    other => panic!("{other:?}"),
                }
            }
        }
        let f = [3, 0, 0, 0, b'a', b'b', b'c'];
        assert_eq!(FrameBuf::new().read_frame(&mut &f[..], 3).unwrap(), b"abc");
        assert!(matches!(
            FrameBuf::new().read_frame(&mut &f[..], 2),
            Err(WireError::Oversized { len: 3, limit: 2 })
        ));
        let mut r = pieces([Ok(&[3, 0]), Err(io::Error::other("gone")), Ok(&f[2..])]);
        match FrameBuf::new().read_frame(&mut r, 3) {
            Err(WireError::Io(e)) => assert_eq!(e.to_string(), "gone"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn frame_buf_moves_a_partial_frame_to_the_front_and_grows_for_a_large_one() {
        // The first read fills the 4096-byte buffer: all of a 4004-byte frame
        // and 92 bytes of the next (304 bytes), which must move to the front.
        let mut all = frame_of(4000);
        all.extend(frame_of(300));
        all.extend(frame_of(10_000));
        let mut r = pieces([Ok(&all[..])]);
        let mut fb = FrameBuf::new();
        assert_eq!(fb.read_frame(&mut r, 10_000).unwrap(), &frame_of(4000)[4..]);
        assert_eq!(fb.buf.len(), FrameBuf::ROOM);
        assert_eq!(fb.read_frame(&mut r, 10_000).unwrap(), &frame_of(300)[4..]);
        assert_eq!(
            fb.read_frame(&mut r, 10_000).unwrap(),
            &frame_of(10_000)[4..]
        );
        assert!(matches!(
            fb.read_frame(&mut r, 10_000),
            Err(WireError::Closed)
        ));
    }

    #[test]
    fn frame_buf_gives_back_the_room_of_a_large_frame_only() {
        // (payload of the large frame, buffer length once a small frame follows)
        for (big, kept) in [
            (70_000, FrameBuf::ROOM),   // above 16 rooms: cut back
            (16 * 4096 - 4, 16 * 4096), // exactly 16 rooms: kept
            (5_000, 5_004),             // a little above one room: kept
        ] {
            let mut all = frame_of(big);
            all.extend(frame_of(1));
            let mut r = &all[..];
            let mut fb = FrameBuf::new();
            assert_eq!(fb.read_frame(&mut r, big).unwrap(), &frame_of(big)[4..]);
            assert_eq!(fb.buf.len(), big + 4);
            assert_eq!(fb.read_frame(&mut r, big).unwrap(), [0]);
            assert_eq!(fb.buf.len(), kept, "after a frame of {big}");
        }
    }
}
