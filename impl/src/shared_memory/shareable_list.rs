//! [`ShareableList`]: CPython's `multiprocessing.shared_memory.ShareableList`,
//! byte for byte.
//!
//! The block holds, in native byte order (CPython's `struct` native mode):
//! - 8 bytes: the number of items `N` (`q`);
//! - `(N + 1) × 8` bytes: each item's offset from the start of the data area,
//!   and the data area's end (`q`);
//! - the data area: each item in its slot, packed by its `struct` format;
//! - `N × 8` bytes: each item's `struct` format, NUL-padded (`8s`);
//! - `N` bytes: each item's back-transform code (`b`): 0 for `int`, `float`
//!   and `bool`, 1 for `str`, 2 for `bytes`, 3 for `None`.
//!
//! Formats: `q` (`int`), `d` (`float`), `xxxxxxx?` (`bool`), `xxxxxx?x`
//! (`None`), `<n>s` (`str` as UTF-8, `bytes`), where a `str`/`bytes` slot is
//! `8 × (len / 8 + 1)` bytes, fixed when the list is made. As in CPython,
//! trailing NUL bytes of a `str`/`bytes` value are lost (the slot is
//! NUL-padded and read back with `rstrip(b'\0')`).

use std::fmt;

use super::{Result, SharedMemory, SharedMemoryError};

/// One value of a [`ShareableList`]: the types CPython's `ShareableList`
/// stores.
///
/// ```
/// use procshare::Item;
///
/// assert_eq!(Item::from(42), Item::Int(42));
/// assert_eq!(Item::from("howdy"), Item::Str("howdy".into()));
/// assert_eq!(Item::from(&b"HoWdY"[..]), Item::Bytes(b"HoWdY".to_vec()));
/// assert_eq!(Item::None.to_string(), "None");
/// assert_eq!(Item::from(true).to_string(), "True");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// Python `int` (64-bit, `q`).
    Int(i64),
    /// Python `float` (`d`).
    Float(f64),
    /// Python `bool`.
    Bool(bool),
    /// Python `str` (UTF-8).
    Str(String),
    /// Python `bytes`.
    Bytes(Vec<u8>),
    /// Python `None`.
    None,
}

impl From<i64> for Item {
    fn from(v: i64) -> Item {
        Item::Int(v)
    }
}
impl From<i32> for Item {
    fn from(v: i32) -> Item {
        Item::Int(v.into())
    }
}
impl From<f64> for Item {
    fn from(v: f64) -> Item {
        Item::Float(v)
    }
}
impl From<bool> for Item {
    fn from(v: bool) -> Item {
        Item::Bool(v)
    }
}
impl From<&str> for Item {
    fn from(v: &str) -> Item {
        Item::Str(v.to_string())
    }
}
impl From<String> for Item {
    fn from(v: String) -> Item {
        Item::Str(v)
    }
}
impl From<&[u8]> for Item {
    fn from(v: &[u8]) -> Item {
        Item::Bytes(v.to_vec())
    }
}
impl From<Vec<u8>> for Item {
    fn from(v: Vec<u8>) -> Item {
        Item::Bytes(v)
    }
}

fn py_str_repr(s: &str) -> String {
    let q = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::new();
    out.push(q);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == q => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(q);
    out
}

fn py_bytes_repr(b: &[u8]) -> String {
    let q = if b.contains(&b'\'') && !b.contains(&b'"') {
        b'"'
    } else {
        b'\''
    };
    let mut out = String::from("b");
    out.push(q as char);
    for &c in b {
        match c {
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            c if c == q => {
                out.push('\\');
                out.push(c as char);
            }
            0x20..=0x7e => out.push(c as char),
            c => out.push_str(&format!("\\x{c:02x}")),
        }
    }
    out.push(q as char);
    out
}

impl fmt::Display for Item {
    /// As Python's `repr` of the value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Item::Int(v) => write!(f, "{v}"),
            Item::Float(v) if v.is_nan() => write!(f, "nan"),
            Item::Float(v) if v.is_infinite() => {
                write!(f, "{}", if *v > 0.0 { "inf" } else { "-inf" })
            }
            Item::Float(v) => write!(f, "{v:?}"),
            Item::Bool(v) => write!(f, "{}", if *v { "True" } else { "False" }),
            Item::Str(s) => write!(f, "{}", py_str_repr(s)),
            Item::Bytes(b) => write!(f, "{}", py_bytes_repr(b)),
            Item::None => write!(f, "None"),
        }
    }
}

impl Item {
    /// Python's `==` between two values: numbers compare by value across
    /// `int`, `float` and `bool` (`1 == 1.0 == True`), `str` never equals
    /// `bytes`, `nan` equals nothing. [`ShareableList::count`] and
    /// [`ShareableList::index`] use it, as CPython's do.
    ///
    /// ```
    /// use procshare::Item;
    ///
    /// assert!(Item::Int(1).py_eq(&Item::Bool(true)));
    /// assert!(Item::Float(2.0).py_eq(&Item::Int(2)));
    /// assert!(!Item::from("a").py_eq(&Item::from(&b"a"[..])));
    /// assert!(!Item::Float(f64::NAN).py_eq(&Item::Float(f64::NAN)));
    /// ```
    pub fn py_eq(&self, other: &Item) -> bool {
        fn num(i: &Item) -> Option<Result<i64, f64>> {
            match i {
                Item::Int(v) => Some(Ok(*v)),
                Item::Bool(b) => Some(Ok(*b as i64)),
                Item::Float(f) => Some(Err(*f)),
                _ => None,
            }
        }
        match (num(self), num(other)) {
            (Some(Ok(a)), Some(Ok(b))) => a == b,
            (Some(Ok(a)), Some(Err(b))) | (Some(Err(b)), Some(Ok(a))) => {
                // Exact comparison, as Python's int/float ==.
                b.fract() == 0.0
                    && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&b)
                    && b as i64 == a
            }
            (Some(Err(a)), Some(Err(b))) => a == b,
            (None, None) => self == other,
            _ => false,
        }
    }

    /// The `struct` format CPython stores for this value in a slot of
    /// `slot` bytes (used for a new list: `slot` is the value's own).
    fn format(&self, slot: usize) -> String {
        match self {
            Item::Int(_) => "q".into(),
            Item::Float(_) => "d".into(),
            Item::Bool(_) => "xxxxxxx?".into(),
            Item::None => "xxxxxx?x".into(),
            Item::Str(_) | Item::Bytes(_) => format!("{slot}s"),
        }
    }

    fn code(&self) -> u8 {
        match self {
            Item::Str(_) => 1,
            Item::Bytes(_) => 2,
            Item::None => 3,
            _ => 0,
        }
    }

    /// The slot size CPython allocates for this value in a new list:
    /// `8 × (len / 8 + 1)`, where CPython's `len` of a `str` counts
    /// characters, not UTF-8 bytes. Where the UTF-8 bytes do not fit that
    /// slot (CPython then silently truncates the value, possibly inside a
    /// character), the slot is sized by bytes instead.
    fn slot(&self) -> usize {
        match self {
            Item::Str(s) => {
                let by_chars = 8 * (s.chars().count() / 8 + 1);
                if s.len() <= by_chars {
                    by_chars
                } else {
                    8 * (s.len() / 8 + 1)
                }
            }
            Item::Bytes(b) => 8 * (b.len() / 8 + 1),
            _ => 8,
        }
    }

    fn text(&self) -> Option<&[u8]> {
        match self {
            Item::Str(s) => Some(s.as_bytes()),
            Item::Bytes(b) => Some(b),
            _ => None,
        }
    }
}

/// A fixed-length list of [`Item`]s in a [`SharedMemory`] block, in CPython's
/// exact layout: a Python process attaches with `ShareableList(name=...)` and
/// reads and writes the same list.
///
/// The block holds, in native byte order (CPython's `struct` native mode):
/// - 8 bytes: the number of items `N` (`q`);
/// - `(N + 1) × 8` bytes: each item's offset from the start of the data area,
///   and the data area's end (`q`);
/// - the data area: each item in its slot, packed by its `struct` format;
/// - `N × 8` bytes: each item's `struct` format, NUL-padded (`8s`);
/// - `N` bytes: each item's back-transform code (`b`): 0 for `int`, `float`
///   and `bool`, 1 for `str`, 2 for `bytes`, 3 for `None`.
///
/// Formats: `q` (`int`), `d` (`float`), `xxxxxxx?` (`bool`), `xxxxxx?x`
/// (`None`), `<n>s` (`str` as UTF-8, `bytes`), where a `str`/`bytes` slot is
/// `8 × (len / 8 + 1)` bytes, fixed when the list is made. As in CPython,
/// trailing NUL bytes of a `str`/`bytes` value are lost (the slot is
/// NUL-padded and read back with `rstrip(b'\0')`).
///
/// One difference, where CPython loses data: CPython sizes a new `str`'s slot
/// by its number of *characters*, and silently truncates UTF-8 bytes that do
/// not fit (`ShareableList(['é' * 10])` reads back 8 `é`); here such a slot
/// is sized by bytes (Python reads it whole: the slot size is in the block).
///
/// ```
/// use procshare::{Item, ShareableList};
///
/// let sl = ShareableList::create(None, &[
///     Item::from("howdy"), Item::from(&b"HoWdY"[..]), Item::Float(-273.154),
///     Item::Int(100), Item::None, Item::Bool(true), Item::Int(42),
/// ]).unwrap();
/// assert_eq!(sl.format().unwrap(), "8s8sdqxxxxxx?xxxxxxxx?q");
/// let other = ShareableList::attach(sl.shm().name()).unwrap();
/// other.set(3, Item::from("some")).unwrap();
/// assert_eq!(sl.get(3).unwrap(), Item::from("some"));
/// assert_eq!(sl.count(&Item::Int(42)).unwrap(), 1);
/// sl.shm().unlink().unwrap();
/// ```
pub struct ShareableList {
    shm: SharedMemory,
    len: usize,
    offsets: Vec<usize>,
}

impl fmt::Debug for ShareableList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for ShareableList {
    /// As Python's `repr`: `ShareableList([...], name='psm_…')`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ShareableList([")?;
        for i in 0..self.len {
            if i > 0 {
                write!(f, ", ")?;
            }
            match self.get(i) {
                Ok(v) => write!(f, "{v}")?,
                Err(_) => write!(f, "<corrupt>")?,
            }
        }
        write!(f, "], name='{}')", self.shm.name())
    }
}

impl ShareableList {
    /// A new list of `items` in a new tracked block named `name` (or a random
    /// `psm_…` name) (Python: `ShareableList(sequence, name=name)`).
    ///
    /// ```
    /// use procshare::{Item, ShareableList};
    ///
    /// let empty = ShareableList::create(None, &[]).unwrap();
    /// assert_eq!(empty.len(), 0);
    /// assert_eq!(empty.shm().size(), 16);
    /// empty.shm().unlink().unwrap();
    /// ```
    pub fn create(name: Option<&str>, items: &[Item]) -> Result<ShareableList> {
        Self::create_impl(name, items, true)
    }

    /// As [`ShareableList::create`], in an untracked block.
    ///
    /// ```
    /// use procshare::{Item, ShareableList};
    ///
    /// let sl = ShareableList::create_untracked(None, &[Item::Int(7)]).unwrap();
    /// assert!(!sl.shm().is_tracked());
    /// sl.shm().unlink().unwrap();
    /// ```
    pub fn create_untracked(name: Option<&str>, items: &[Item]) -> Result<ShareableList> {
        Self::create_impl(name, items, false)
    }

    fn create_impl(name: Option<&str>, items: &[Item], track: bool) -> Result<ShareableList> {
        let n = items.len();
        let mut offsets = Vec::with_capacity(n + 1);
        offsets.push(0usize);
        for it in items {
            offsets.push(offsets.last().expect("non-empty") + it.slot());
        }
        let data = *offsets.last().expect("non-empty");
        let size = 8 * (n + 2) + data + 8 * n + n;
        let shm = if track {
            SharedMemory::create(name, size)?
        } else {
            SharedMemory::create_untracked(name, size)?
        };
        let sl = ShareableList {
            shm,
            len: n,
            offsets,
        };
        let mut head = Vec::with_capacity(8 * (n + 2));
        head.extend_from_slice(&(n as i64).to_ne_bytes());
        for o in &sl.offsets {
            head.extend_from_slice(&(*o as i64).to_ne_bytes());
        }
        sl.shm.write(0, &head);
        for (i, it) in items.iter().enumerate() {
            let fmt = it.format(it.slot());
            sl.write_meta(i, &fmt, it.code());
            sl.pack(sl.data_start() + sl.offsets[i], &fmt, it);
        }
        Ok(sl)
    }

    /// Attaches to the list in block `name` (Python: `ShareableList(name=name)`),
    /// as a tracked user if the block is tracked. The layout is checked:
    /// a block that does not hold a list is [`SharedMemoryError::Corrupt`].
    ///
    /// ```
    /// use procshare::{Item, ShareableList, SharedMemory, SharedMemoryError};
    ///
    /// let sl = ShareableList::create(None, &[Item::Int(1), Item::Int(2)]).unwrap();
    /// let again = ShareableList::attach(sl.shm().name()).unwrap();
    /// assert_eq!(again.to_vec().unwrap(), [Item::Int(1), Item::Int(2)]);
    /// sl.shm().unlink().unwrap();
    ///
    /// let junk = SharedMemory::create(None, 8).unwrap();
    /// junk.write(0, &5i64.to_ne_bytes());
    /// assert!(matches!(ShareableList::attach(junk.name()), Err(SharedMemoryError::Corrupt { .. })));
    /// junk.unlink().unwrap();
    /// ```
    pub fn attach(name: &str) -> Result<ShareableList> {
        Self::from_shared_memory(SharedMemory::attach(name)?)
    }

    /// The list held in an attached block (its layout checked).
    ///
    /// ```
    /// use procshare::{Item, ShareableList, SharedMemory};
    ///
    /// let sl = ShareableList::create(None, &[Item::None]).unwrap();
    /// let shm = SharedMemory::attach_untracked(sl.shm().name()).unwrap();
    /// let view = ShareableList::from_shared_memory(shm).unwrap();
    /// assert_eq!(view.get(0).unwrap(), Item::None);
    /// sl.shm().unlink().unwrap();
    /// ```
    pub fn from_shared_memory(shm: SharedMemory) -> Result<ShareableList> {
        let corrupt = |reason: String| SharedMemoryError::Corrupt {
            name: shm.name().to_string(),
            reason,
        };
        let size = shm.size();
        if size < 16 {
            return Err(corrupt(format!(
                "a block of {size} bytes cannot hold a list"
            )));
        }
        let n = read_i64(&shm, 0);
        let max = (size - 16) / 17;
        let n = usize::try_from(n)
            .ok()
            .filter(|&n| n <= max)
            .ok_or_else(|| {
                corrupt(format!(
                    "item count {n} does not fit a block of {size} bytes"
                ))
            })?;
        let mut offsets = Vec::with_capacity(n + 1);
        for i in 0..=n {
            let o = read_i64(&shm, 8 * (i + 1));
            let o = usize::try_from(o)
                .ok()
                .filter(|&o| o <= size)
                .ok_or_else(|| corrupt(format!("offset {o} of item {i}")))?;
            if offsets.last().is_some_and(|&prev| o < prev) {
                return Err(corrupt(format!("offsets decrease at item {i}")));
            }
            offsets.push(o);
        }
        let need = 8 * (n + 2) + offsets[n] + 9 * n;
        if need > size {
            return Err(corrupt(format!(
                "the layout needs {need} bytes, the block has {size}"
            )));
        }
        Ok(ShareableList {
            shm,
            len: n,
            offsets,
        })
    }

    /// The block holding the list (Python: `sl.shm`).
    ///
    /// ```
    /// use procshare::{Item, ShareableList};
    ///
    /// let sl = ShareableList::create(None, &[Item::Int(1)]).unwrap();
    /// assert!(sl.shm().name().starts_with("psm_"));
    /// sl.shm().unlink().unwrap();
    /// ```
    pub fn shm(&self) -> &SharedMemory {
        &self.shm
    }

    /// The number of items (fixed).
    ///
    /// ```
    /// use procshare::{Item, ShareableList};
    ///
    /// let sl = ShareableList::create(None, &[Item::Int(1), Item::None]).unwrap();
    /// assert_eq!(sl.len(), 2);
    /// sl.shm().unlink().unwrap();
    /// ```
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the list has no item.
    ///
    /// ```
    /// use procshare::ShareableList;
    ///
    /// let sl = ShareableList::create(None, &[]).unwrap();
    /// assert!(sl.is_empty());
    /// sl.shm().unlink().unwrap();
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn data_start(&self) -> usize {
        8 * (self.len + 2)
    }

    fn formats_start(&self) -> usize {
        self.data_start() + self.offsets[self.len]
    }

    fn codes_start(&self) -> usize {
        self.formats_start() + 8 * self.len
    }

    fn corrupt(&self, reason: String) -> SharedMemoryError {
        SharedMemoryError::Corrupt {
            name: self.shm.name().to_string(),
            reason,
        }
    }

    fn check_index(&self, index: usize) -> Result<()> {
        if index >= self.len {
            return Err(SharedMemoryError::IndexOutOfRange {
                index,
                len: self.len,
            });
        }
        Ok(())
    }

    fn format_at(&self, i: usize) -> Result<String> {
        let mut b = [0u8; 8];
        self.shm.read(self.formats_start() + 8 * i, &mut b);
        let end = b.iter().rposition(|&c| c != 0).map_or(0, |p| p + 1);
        String::from_utf8(b[..end].to_vec())
            .map_err(|_| self.corrupt(format!("format of item {i} is not text")))
    }

    fn write_meta(&self, i: usize, fmt: &str, code: u8) {
        let mut b = [0u8; 8];
        b[..fmt.len()].copy_from_slice(fmt.as_bytes());
        self.shm.write(self.formats_start() + 8 * i, &b);
        self.shm.write(self.codes_start() + i, &[code]);
    }

    /// `struct.pack_into(fmt, buf, off, value)` for the formats a list uses.
    fn pack(&self, off: usize, fmt: &str, it: &Item) {
        let bytes: Vec<u8> = match (fmt, it) {
            ("q", Item::Int(v)) => v.to_ne_bytes().to_vec(),
            ("d", Item::Float(v)) => v.to_ne_bytes().to_vec(),
            ("xxxxxxx?", Item::Bool(v)) => [0, 0, 0, 0, 0, 0, 0, *v as u8].to_vec(),
            ("xxxxxx?x", _) => [0u8; 8].to_vec(),
            (f, it) => {
                let n: usize = f
                    .trim_end_matches('s')
                    .parse()
                    .expect("an 's' format we made");
                let mut b = it.text().expect("text for an 's' format").to_vec();
                b.resize(n, 0); // struct's 's' truncates or NUL-pads to n
                b
            }
        };
        self.shm.write(off, &bytes);
    }

    /// Item `index` (Python: `sl[index]`).
    ///
    /// ```
    /// use procshare::{Item, ShareableList, SharedMemoryError};
    ///
    /// let sl = ShareableList::create(None, &[Item::Float(0.5)]).unwrap();
    /// assert_eq!(sl.get(0).unwrap(), Item::Float(0.5));
    /// assert!(matches!(sl.get(1), Err(SharedMemoryError::IndexOutOfRange { .. })));
    /// sl.shm().unlink().unwrap();
    /// ```
    pub fn get(&self, index: usize) -> Result<Item> {
        self.check_index(index)?;
        let fmt = self.format_at(index)?;
        let mut code = [0u8; 1];
        self.shm.read(self.codes_start() + index, &mut code);
        let off = self.data_start() + self.offsets[index];
        let width = match fmt.as_str() {
            "q" | "d" | "xxxxxxx?" | "xxxxxx?x" => 8,
            f => f
                .strip_suffix('s')
                .and_then(|n| n.parse::<usize>().ok())
                .ok_or_else(|| self.corrupt(format!("unknown format {fmt:?} of item {index}")))?,
        };
        if off.checked_add(width).map_or(true, |e| e > self.shm.size()) {
            return Err(self.corrupt(format!("item {index} runs past the block")));
        }
        let mut raw = vec![0u8; width];
        self.shm.read(off, &mut raw);
        let word = || i64::from_ne_bytes(raw[..8].try_into().expect("8 bytes"));
        let text = || {
            let end = raw.iter().rposition(|&c| c != 0).map_or(0, |p| p + 1);
            raw[..end].to_vec()
        };
        let is_text = fmt.ends_with('s');
        match (code[0], fmt.as_str()) {
            (3, _) => Ok(Item::None),
            (0, "q") => Ok(Item::Int(word())),
            (0, "d") => Ok(Item::Float(f64::from_bits(word() as u64))),
            (0, "xxxxxxx?") => Ok(Item::Bool(raw[7] != 0)),
            (0, "xxxxxx?x") => Ok(Item::Bool(raw[6] != 0)),
            (1, _) if is_text => String::from_utf8(text())
                .map(Item::Str)
                .map_err(|_| self.corrupt(format!("item {index} is not UTF-8"))),
            (2, _) if is_text => Ok(Item::Bytes(text())),
            (c, f) => Err(self.corrupt(format!("code {c} with format {f:?} at item {index}"))),
        }
    }

    /// Sets item `index` (Python: `sl[index] = value`). The type may change;
    /// a `str`/`bytes` must fit the item's slot
    /// ([`SharedMemoryError::ItemTooLong`] otherwise, and nothing is written).
    ///
    /// ```
    /// use procshare::{Item, ShareableList, SharedMemoryError};
    ///
    /// let sl = ShareableList::create(None, &[Item::None]).unwrap();
    /// sl.set(0, Item::from("some")).unwrap();
    /// assert_eq!(sl.get(0).unwrap(), Item::from("some"));
    /// assert!(matches!(sl.set(0, Item::from("far too many")), Err(SharedMemoryError::ItemTooLong { .. })));
    /// assert_eq!(sl.get(0).unwrap(), Item::from("some"));
    /// sl.shm().unlink().unwrap();
    /// ```
    pub fn set(&self, index: usize, value: Item) -> Result<()> {
        self.check_index(index)?;
        let item_off = self.offsets[index];
        let off = self.data_start() + item_off;
        let current = self.format_at(index)?;
        let fmt = match value.text() {
            None => value.format(8),
            Some(t) => {
                let allocated = self.offsets[index + 1] - item_off;
                if t.len() > allocated {
                    return Err(SharedMemoryError::ItemTooLong {
                        index,
                        needed: t.len(),
                        capacity: allocated,
                    });
                }
                let ok_current = current
                    .strip_suffix('s')
                    .and_then(|n| n.parse::<usize>().ok())
                    .is_some_and(|n| n <= allocated);
                if ok_current {
                    current
                } else {
                    format!("{allocated}s")
                }
            }
        };
        self.write_meta(index, &fmt, value.code());
        self.pack(off, &fmt, &value);
        Ok(())
    }

    /// All items, in order (Python: `list(sl)`).
    ///
    /// ```
    /// use procshare::{Item, ShareableList};
    ///
    /// let sl = ShareableList::create(None, &[Item::Bool(false), Item::Int(-1)]).unwrap();
    /// assert_eq!(sl.to_vec().unwrap(), [Item::Bool(false), Item::Int(-1)]);
    /// sl.shm().unlink().unwrap();
    /// ```
    pub fn to_vec(&self) -> Result<Vec<Item>> {
        (0..self.len).map(|i| self.get(i)).collect()
    }

    /// The `struct` formats of all items, concatenated (Python: `sl.format`).
    ///
    /// ```
    /// use procshare::{Item, ShareableList};
    ///
    /// let sl = ShareableList::create(None, &[Item::Int(1), Item::from("abc")]).unwrap();
    /// assert_eq!(sl.format().unwrap(), "q8s");
    /// sl.shm().unlink().unwrap();
    /// ```
    pub fn format(&self) -> Result<String> {
        (0..self.len).map(|i| self.format_at(i)).collect()
    }

    /// How many items equal `value` (Python's `==`: see [`Item::py_eq`]).
    ///
    /// ```
    /// use procshare::{Item, ShareableList};
    ///
    /// let sl = ShareableList::create(None, &[Item::Int(1), Item::Bool(true), Item::Float(1.0)]).unwrap();
    /// assert_eq!(sl.count(&Item::Int(1)).unwrap(), 3);
    /// sl.shm().unlink().unwrap();
    /// ```
    pub fn count(&self, value: &Item) -> Result<usize> {
        let mut n = 0;
        for i in 0..self.len {
            if self.get(i)?.py_eq(value) {
                n += 1;
            }
        }
        Ok(n)
    }

    /// The first index of `value` ([`SharedMemoryError::NotInList`] if absent).
    ///
    /// ```
    /// use procshare::{Item, ShareableList, SharedMemoryError};
    ///
    /// let sl = ShareableList::create(None, &[Item::from("100"), Item::Int(100)]).unwrap();
    /// assert_eq!(sl.index(&Item::Int(100)).unwrap(), 1);
    /// let e = sl.index(&Item::from("x")).unwrap_err();
    /// assert_eq!(e.to_string(), "'x' not in this container");
    /// sl.shm().unlink().unwrap();
    /// ```
    pub fn index(&self, value: &Item) -> Result<usize> {
        for i in 0..self.len {
            if self.get(i)?.py_eq(value) {
                return Ok(i);
            }
        }
        Err(SharedMemoryError::NotInList {
            value: value.to_string(),
        })
    }
}

fn read_i64(shm: &SharedMemory, off: usize) -> i64 {
    let mut b = [0u8; 8];
    shm.read(off, &mut b);
    i64::from_ne_bytes(b)
}
