//! Interop with CPython's own `multiprocessing.shared_memory`: a real
//! `python3` attaches to blocks and lists made in Rust and the other way
//! round. Without `python3` these tests fail, saying so.
//!
//! CPython 3.11 registers every block it *attaches* with its resource
//! tracker, which would unlink the Rust block when the Python process exits
//! (gh-82300): the Python side unregisters after attaching, as a Python
//! program sharing a block with Rust does.

use std::io::Write;
use std::process::{Command, Stdio};

use procshare::{Item, ShareableList, SharedMemory};
use proptest::prelude::*;

/// Runs `python3 -c script` with `stdin`, returns its standard output; fails
/// the test with Python's standard error if it fails.
fn python(script: &str, stdin: &str) -> String {
    let child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "python3 is not installed (not on PATH): these interop tests need CPython 3.8+ \
             (CI has it)"
        ),
        Err(e) => panic!("cannot start python3: {e}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python3 failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// For the property tests, where a Python process does nothing but read or
/// write lists: Python's resource tracker is switched off (it is a process
/// of its own, whose start costs more than the test's work).
const NO_PY_TRACKER: &str = r#"
resource_tracker.register = lambda name, rtype: None
resource_tracker.unregister = lambda name, rtype: None
"#;

const PRELUDE: &str = r#"
import sys, struct
from multiprocessing import shared_memory, resource_tracker
def attach(name):
    shm = shared_memory.SharedMemory(name=name)
    resource_tracker.unregister(shm._name, "shared_memory")
    return shm
def attach_list(name):
    sl = shared_memory.ShareableList(name=name)
    resource_tracker.unregister(sl.shm._name, "shared_memory")
    return sl
def keep(shm):
    # a block this process created outlives it
    resource_tracker.unregister(shm._name, "shared_memory")
def enc(v):
    if v is None: return "n"
    if isinstance(v, bool): return "b1" if v else "b0"
    if isinstance(v, int): return "i%d" % v
    if isinstance(v, float): return "f" + struct.pack("<d", v).hex()
    if isinstance(v, str): return "s" + v.encode("utf8").hex()
    if isinstance(v, bytes): return "y" + v.hex()
    raise TypeError(type(v))
def dec(t):
    k, r = t[0], t[1:]
    if k == "n": return None
    if k == "b": return r == "1"
    if k == "i": return int(r)
    if k == "f": return struct.unpack("<d", bytes.fromhex(r))[0]
    if k == "s": return bytes.fromhex(r).decode("utf8")
    if k == "y": return bytes.fromhex(r)
    raise ValueError(t)
"#;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// The test's text encoding of a value (the same as the Python `enc`).
fn enc(v: &Item) -> String {
    match v {
        Item::None => "n".into(),
        Item::Bool(b) => format!("b{}", *b as u8),
        Item::Int(i) => format!("i{i}"),
        Item::Float(f) => format!("f{}", hex(&f.to_le_bytes())),
        Item::Str(s) => format!("s{}", hex(s.as_bytes())),
        Item::Bytes(b) => format!("y{}", hex(b)),
    }
}

fn dec(t: &str) -> Item {
    let (k, r) = t.split_at(1);
    match k {
        "n" => Item::None,
        "b" => Item::Bool(r == "1"),
        "i" => Item::Int(r.parse().unwrap()),
        "f" => Item::Float(f64::from_le_bytes(unhex(r).try_into().unwrap())),
        "s" => Item::Str(String::from_utf8(unhex(r)).unwrap()),
        "y" => Item::Bytes(unhex(r)),
        _ => panic!("bad token {t}"),
    }
}

fn enc_list(items: &[Item]) -> String {
    items.iter().map(enc).collect::<Vec<_>>().join(",")
}

fn dec_list(line: &str) -> Vec<Item> {
    if line.is_empty() {
        return Vec::new();
    }
    line.split(',').map(dec).collect()
}

fn basics() -> Vec<Item> {
    vec![
        Item::from("howdy"),
        Item::from(&b"HoWdY"[..]),
        Item::Float(-273.154),
        Item::Int(100),
        Item::None,
        Item::Bool(true),
        Item::Int(42),
    ]
}

#[test]
fn rust_block_python_attaches_reads_and_writes() {
    let shm = SharedMemory::create(None, 64).unwrap();
    shm.write(0, b"from rust");
    let out = python(
        &format!(
            "{PRELUDE}
shm = attach({name:?})
assert shm.size == 64, shm.size
assert bytes(shm.buf[:9]) == b'from rust', bytes(shm.buf[:9])
shm.buf[16:27] = b'from python'
shm.close()
print('ok')",
            name = shm.name()
        ),
        "",
    );
    assert_eq!(out.trim(), "ok");
    let mut b = [0u8; 11];
    shm.read(16, &mut b);
    assert_eq!(&b, b"from python");
    assert!(std::path::Path::new("/dev/shm").join(shm.name()).exists());
    shm.unlink().unwrap();
}

#[test]
fn python_block_rust_attaches_reads_and_writes() {
    let out = python(
        &format!(
            "{PRELUDE}
shm = shared_memory.SharedMemory(create=True, size=100)
keep(shm)
shm.buf[:11] = b'from python'
print(shm.name)"
        ),
        "",
    );
    let name = out.trim();
    let _cleanup = Unlink(vec![name.to_string()]);
    assert!(name.starts_with("psm_"), "{name}");
    let shm = SharedMemory::attach(name).unwrap();
    assert!(
        !shm.is_tracked(),
        "Python's blocks have no procshare tracker"
    );
    assert_eq!(shm.size(), 100);
    let mut b = [0u8; 11];
    shm.read(0, &mut b);
    assert_eq!(&b, b"from python");
    shm.write(50, b"from rust");
    let out = python(
        &format!(
            "{PRELUDE}
shm = attach({name:?})
print(bytes(shm.buf[50:59]).decode())"
        ),
        "",
    );
    assert_eq!(out.trim(), "from rust");
    shm.unlink().unwrap();
}

#[test]
fn rust_list_python_reads_and_writes() {
    let sl = ShareableList::create(None, &basics()).unwrap();
    let out = python(
        &format!(
            "{PRELUDE}
sl = attach_list({name:?})
assert list(sl) == ['howdy', b'HoWdY', -273.154, 100, None, True, 42], list(sl)
assert sl.format == '8s8sdqxxxxxx?xxxxxxxx?q', sl.format
sl[3] = 'some'
sl[0] = b'bytes!'
sl[6] = -1.5
sl[2] = False
sl[1] = None
print(sl.format)",
            name = sl.shm().name()
        ),
        "",
    );
    assert_eq!(out.trim(), "8sxxxxxx?xxxxxxxx?8sxxxxxx?xxxxxxxx?d");
    assert_eq!(sl.format().unwrap(), out.trim());
    assert_eq!(
        sl.to_vec().unwrap(),
        [
            Item::from(&b"bytes!"[..]),
            Item::None,
            Item::Bool(false),
            Item::from("some"),
            Item::None,
            Item::Bool(true),
            Item::Float(-1.5),
        ]
    );
    sl.shm().unlink().unwrap();
}

#[test]
fn python_list_rust_reads_and_writes() {
    let out = python(
        &format!(
            "{PRELUDE}
sl = shared_memory.ShareableList(['howdy', b'HoWdY', -273.154, 100, None, True, 42, 'encodés'])
keep(sl.shm)
print(sl.shm.name)"
        ),
        "",
    );
    let name = out.trim();
    let _cleanup = Unlink(vec![name.to_string()]);
    let sl = ShareableList::attach(name).unwrap();
    let mut want = basics();
    want.push(Item::from("encodés"));
    assert_eq!(sl.to_vec().unwrap(), want);
    assert_eq!(sl.format().unwrap(), "8s8sdqxxxxxx?xxxxxxxx?q8s");
    sl.set(0, Item::Int(-7)).unwrap();
    sl.set(4, Item::from(&b"12345678"[..])).unwrap();
    let e = sl.set(7, Item::from("encodées")).unwrap_err();
    assert!(e.to_string().contains("exceeds available storage"), "{e}");
    let out = python(
        &format!(
            "{PRELUDE}
sl = attach_list({name:?})
print(repr(list(sl)))
print(sl.format)"
        ),
        "",
    );
    assert_eq!(
        out,
        "[-7, b'HoWdY', -273.154, 100, b'12345678', True, 42, 'encodés']\nq8sdq8sxxxxxxx?q8s\n"
    );
    sl.shm().unlink().unwrap();
}

#[test]
fn f64_block_as_memoryview_cast_d() {
    let n = 1000;
    let shm = SharedMemory::create(None, 8 * n).unwrap();
    let v = shm.view::<f64>();
    for i in 0..n {
        v.set(i, i as f64 * 0.5);
    }
    let out = python(
        &format!(
            "{PRELUDE}
shm = attach({name:?})
m = shm.buf.cast('d')
print(len(m), sum(m))
for i in range(len(m)):
    m[i] = -m[i] * 2
m.release()
shm.close()",
            name = shm.name()
        ),
        "",
    );
    let want_sum: f64 = (0..n).map(|i| i as f64 * 0.5).sum();
    assert_eq!(out.trim(), format!("{n} {want_sum:?}"));
    let got = v.to_vec();
    for (i, x) in got.iter().enumerate() {
        assert_eq!(*x, -(i as f64), "element {i}");
    }
    shm.unlink().unwrap();
}

// ---------------------------------------------------------------------------
// proptest: random lists, Rust -> Python and Python -> Rust, many lists per
// Python process (a python3 start costs tens of milliseconds).

fn text_fits_cpython(s: &str) -> bool {
    // CPython sizes a str's slot by characters and truncates the UTF-8 bytes
    // that do not fit: keep to strings it stores whole.
    s.len() <= 8 * (s.chars().count() / 8 + 1)
}

fn item() -> impl Strategy<Value = Item> {
    prop_oneof![
        any::<i64>().prop_map(Item::Int),
        any::<f64>()
            .prop_filter("nan", |f| !f.is_nan())
            .prop_map(Item::Float),
        any::<bool>().prop_map(Item::Bool),
        Just(Item::None),
        // Trailing NULs are stripped on read, in CPython as here.
        "[a-zA-Z0-9 éü€\u{1F600}\\\\'\"\n]{0,20}"
            .prop_filter("fits CPython's slot", |s| text_fits_cpython(s))
            .prop_map(Item::Str),
        proptest::collection::vec(any::<u8>(), 0..20).prop_map(|mut b| {
            while b.last() == Some(&0) {
                b.pop();
            }
            Item::Bytes(b)
        }),
    ]
}

/// Unlinks the named blocks when dropped: a failing case (and each of
/// proptest's shrinking runs) leaves nothing in /dev/shm.
struct Unlink(Vec<String>);

impl Drop for Unlink {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = std::fs::remove_file(std::path::Path::new("/dev/shm").join(n));
        }
    }
}

fn lists() -> impl Strategy<Value = Vec<Vec<Item>>> {
    proptest::collection::vec(proptest::collection::vec(item(), 0..8), 1..32)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    #[test]
    fn random_lists_written_by_rust_read_by_python(batch in lists()) {
        let made: Vec<ShareableList> = batch
            .iter()
            // Untracked: this test is about the layout (a tracked create also
            // starts a tracker process).
            .map(|items| ShareableList::create_untracked(None, items).unwrap())
            .collect();
        let _cleanup = Unlink(made.iter().map(|l| l.shm().name().to_string()).collect());
        let names: String = made.iter().map(|l| format!("{}\n", l.shm().name())).collect();
        let out = python(
            &format!(
                "{PRELUDE}{NO_PY_TRACKER}
for line in sys.stdin:
    sl = attach_list(line.strip())
    print(','.join(enc(v) for v in sl))
    sl.shm.close()"
            ),
            &names,
        );
        let got: Vec<&str> = out.lines().collect();
        prop_assert_eq!(got.len(), batch.len());
        for (items, line) in batch.iter().zip(&got) {
            prop_assert_eq!(enc_list(items), *line);
        }
    }

    #[test]
    fn random_lists_written_by_python_read_by_rust(batch in lists()) {
        let input: String = batch.iter().map(|l| format!("{}\n", enc_list(l))).collect();
        let out = python(
            &format!(
                "{PRELUDE}{NO_PY_TRACKER}
for line in sys.stdin:
    line = line.rstrip('\\n')
    items = [dec(t) for t in line.split(',')] if line else []
    sl = shared_memory.ShareableList(items)
    keep(sl.shm)
    print(sl.shm.name)
    sl.shm.close()"
            ),
            &input,
        );
        let names: Vec<&str> = out.lines().collect();
        let _cleanup = Unlink(names.iter().map(|n| n.to_string()).collect());
        prop_assert_eq!(names.len(), batch.len());
        for (items, name) in batch.iter().zip(&names) {
            let sl = ShareableList::attach(name).unwrap();
            let got = sl.to_vec().unwrap();
            prop_assert_eq!(enc_list(&got), enc_list(items));
            prop_assert_eq!(dec_list(&enc_list(&got)).len(), items.len());
        }
    }
}
