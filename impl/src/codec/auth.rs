//! Mutual HMAC-SHA256 challenge–response, as `multiprocessing.connection` does it.

use crate::codec::wire::{self, WireError};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;
use std::io::{Read, Write};

/// Largest handshake frame accepted.
pub(crate) const HANDSHAKE_LIMIT: usize = 256;

const CHALLENGE: &[u8] = b"#CHALLENGE#";
const WELCOME: &[u8] = b"#WELCOME#";
const FAILURE: &[u8] = b"#FAILURE#";
const DIGEST_TAG: &[u8] = b"{sha256}";
const NONCE_LEN: usize = 32;

/// A shared secret (CPython's `authkey`). Its `Debug` output never shows the bytes.
///
/// Mutual HMAC-SHA256 challenge–response, as `multiprocessing.connection` does it.
///
/// Both sides prove they hold the same [`AuthKey`] without sending it:
///
/// 1. the server sends `#CHALLENGE#{sha256}` + 32 random bytes;
/// 2. the client answers `{sha256}` + HMAC-SHA256(key, challenge body);
/// 3. the server checks it (in constant time) and sends `#WELCOME#` or `#FAILURE#`;
/// 4. the roles swap: the client challenges, the server answers, the client
///    replies `#WELCOME#`/`#FAILURE#`.
///
/// The server challenges first (as CPython's `Listener.accept` does), so a client
/// cannot make the server compute an answer before the client has proven the key
/// (no reflection). Every handshake message travels in a `codec::wire` frame with
/// a small limit (`HANDSHAKE_LIMIT`, 256 bytes): an unauthenticated peer cannot make the
/// server allocate more than that.
///
/// ```
/// # std::env::set_var("PROCSHARE_NO_FORK_WARNING", "1");
/// use procshare::{AuthKey, Manager};
/// let key = AuthKey::random().unwrap();
/// let server = Manager::serve("127.0.0.1:0", key.clone()).unwrap();
/// let client = Manager::connect(server.address().clone(), key).unwrap();
/// client.ping().unwrap();
/// assert!(Manager::connect(server.address().clone(), AuthKey::new("wrong")).is_err());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct AuthKey(Vec<u8>);

impl AuthKey {
    /// A key from arbitrary bytes.
    ///
    /// ```
    /// let k = procshare::AuthKey::new(b"secret");
    /// assert_eq!(k.as_bytes(), b"secret");
    /// ```
    pub fn new(bytes: impl AsRef<[u8]>) -> Self {
        AuthKey(bytes.as_ref().to_vec())
    }

    /// 32 random bytes from the OS (CPython's `os.urandom(32)`).
    ///
    /// If the kernel's random source fails, this is
    /// [`AuthError::NoEntropy`]: a key is never derived from anything
    /// guessable (the time, the pid) instead.
    ///
    /// ```
    /// use procshare::AuthKey;
    /// assert_ne!(AuthKey::random().unwrap(), AuthKey::random().unwrap());
    /// ```
    pub fn random() -> Result<Self, AuthError> {
        let mut b = vec![0u8; 32];
        fill_random(&mut b)?;
        Ok(AuthKey(b))
    }

    /// The key's bytes.
    ///
    /// ```
    /// assert_eq!(procshare::AuthKey::new([1u8]).as_bytes(), [1]);
    /// ```
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for AuthKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthKey(<redacted>)")
    }
}

/// Fills `b` from the kernel's random source. No fallback: without random
/// bytes there is no key and no challenge (a nonce or key made from the time
/// and pid could be guessed by another local user).
fn fill_random(b: &mut [u8]) -> Result<(), AuthError> {
    crate::sys::getrandom(b).map_err(AuthError::NoEntropy)
}

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The peer refused our proof: we do not hold its key (CPython's
    /// `AuthenticationError: digest received was wrong` seen from the client).
    #[error("authentication failed: the peer refused our key")]
    Refused,
    /// The peer's proof was wrong: it does not hold our key.
    #[error("authentication failed: digest received was wrong")]
    WrongDigest,
    /// The peer sent something that is not a handshake message (what was
    /// wrong with the peer's bytes).
    #[error("authentication failed: protocol violation: {0}")]
    Protocol(String),
    /// Framing or I/O failed during the handshake.
    #[error("authentication failed: {0}")]
    Wire(#[from] WireError),
    /// The OS random source failed: no key or challenge nonce can be made
    /// (procshare never falls back to guessable entropy).
    #[error("the OS random source failed: {0}")]
    NoEntropy(#[source] std::io::Error),
}

fn digest(key: &AuthKey, msg: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length: `new_from_slice` cannot fail for it.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    m.update(msg);
    m
}

/// Send a challenge, check the answer, tell the peer the verdict.
/// `Ok(())` only if the peer proved it holds `key`.
///
/// ```
/// # use procshare::internals::*;
/// # use procshare::*;
/// # let (mut a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
/// let t = std::thread::spawn(move || answer_challenge(&mut b, &AuthKey::new("k")));
/// deliver_challenge(&mut a, &AuthKey::new("k")).unwrap();
/// t.join().unwrap().unwrap();
/// ```
pub fn deliver_challenge<S: Read + Write + ?Sized>(
    s: &mut S,
    key: &AuthKey,
) -> Result<(), AuthError> {
    let mut body = Vec::with_capacity(DIGEST_TAG.len() + NONCE_LEN);
    body.extend_from_slice(DIGEST_TAG);
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce)?;
    body.extend_from_slice(&nonce);
    let mut msg = CHALLENGE.to_vec();
    msg.extend_from_slice(&body);
    wire::write_frame_bytes(s, &msg)?;
    let answer = wire::read_frame_bytes(s, HANDSHAKE_LIMIT)?;
    let ok = match answer.strip_prefix(DIGEST_TAG) {
        Some(mac) => digest(key, &body).verify_slice(mac).is_ok(),
        None => false,
    };
    if ok {
        wire::write_frame_bytes(s, WELCOME)?;
        Ok(())
    } else {
        // Best effort: the peer may already be gone.
        let _ = wire::write_frame_bytes(s, FAILURE);
        Err(AuthError::WrongDigest)
    }
}

/// Receive a challenge, answer it with `key`, read the verdict.
///
/// ```
/// # use procshare::internals::*;
/// # use procshare::*;
/// # let (mut a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
/// let t = std::thread::spawn(move || deliver_challenge(&mut b, &AuthKey::new("right")));
/// assert!(matches!(answer_challenge(&mut a, &AuthKey::new("wrong")), Err(AuthError::Refused)));
/// assert!(t.join().unwrap().is_err());
/// ```
pub fn answer_challenge<S: Read + Write + ?Sized>(
    s: &mut S,
    key: &AuthKey,
) -> Result<(), AuthError> {
    let msg = wire::read_frame_bytes(s, HANDSHAKE_LIMIT)?;
    let body = msg
        .strip_prefix(CHALLENGE)
        .ok_or_else(|| AuthError::Protocol("expected a challenge".into()))?;
    if !body.starts_with(DIGEST_TAG) {
        return Err(AuthError::Protocol(
            "unsupported digest (want {sha256})".into(),
        ));
    }
    let mac = digest(key, body).finalize().into_bytes();
    let mut answer = DIGEST_TAG.to_vec();
    answer.extend_from_slice(&mac);
    wire::write_frame_bytes(s, &answer)?;
    let verdict = wire::read_frame_bytes(s, HANDSHAKE_LIMIT)?;
    if verdict == WELCOME {
        Ok(())
    } else if verdict == FAILURE {
        Err(AuthError::Refused)
    } else {
        Err(AuthError::Protocol(
            "expected #WELCOME# or #FAILURE#".into(),
        ))
    }
}

/// The server's side of the mutual handshake: challenge the client, then answer its challenge.
///
/// ```
/// # use procshare::internals::*;
/// # use procshare::*;
/// # let (mut a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
/// let t = std::thread::spawn(move || client_handshake(&mut b, &AuthKey::new("k")));
/// server_handshake(&mut a, &AuthKey::new("k")).unwrap();
/// t.join().unwrap().unwrap();
/// ```
pub fn server_handshake<S: Read + Write + ?Sized>(
    s: &mut S,
    key: &AuthKey,
) -> Result<(), AuthError> {
    deliver_challenge(s, key)?;
    answer_challenge(s, key)
}

/// The client's side of the mutual handshake: answer the server's challenge, then challenge it.
///
/// ```
/// # use procshare::internals::*;
/// # use procshare::*;
/// # let (mut a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
/// let t = std::thread::spawn(move || server_handshake(&mut b, &AuthKey::new("k")));
/// client_handshake(&mut a, &AuthKey::new("k")).unwrap();
/// t.join().unwrap().unwrap();
/// ```
pub fn client_handshake<S: Read + Write + ?Sized>(
    s: &mut S,
    key: &AuthKey,
) -> Result<(), AuthError> {
    answer_challenge(s, key)?;
    deliver_challenge(s, key)
}

/// A `Read + Write` over a fixed input and a discarded output: what the
/// `manager_handshake` fuzz target (and its corpus replay) feeds to
/// [`server_handshake`] to play a hostile client.
///
/// ```
/// use procshare::internals::{server_handshake, ScriptedPeer};
/// use procshare::AuthKey;
/// let mut peer = ScriptedPeer::new(b"\x03\x00\x00\x00abc");
/// assert!(server_handshake(&mut peer, &AuthKey::new("k")).is_err());
/// ```
#[derive(Debug)]
#[cfg_attr(not(any(feature = "internals", feature = "fuzzing")), allow(dead_code))]
pub struct ScriptedPeer<'a> {
    input: &'a [u8],
    /// Everything written to the peer.
    pub output: Vec<u8>,
}

#[cfg_attr(not(any(feature = "internals", feature = "fuzzing")), allow(dead_code))]
impl<'a> ScriptedPeer<'a> {
    /// A peer that will send exactly `input`, then end of stream.
    pub fn new(input: &'a [u8]) -> Self {
        ScriptedPeer {
            input,
            output: Vec::new(),
        }
    }
}

impl Read for ScriptedPeer<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.input.read(buf)
    }
}

impl Write for ScriptedPeer<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    #[test]
    fn wrong_key_both_directions() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        let t = std::thread::spawn(move || server_handshake(&mut b, &AuthKey::new("server")));
        let c = client_handshake(&mut a, &AuthKey::new("client"));
        assert!(matches!(c, Err(AuthError::Refused)), "{c:?}");
        assert!(matches!(t.join().unwrap(), Err(AuthError::WrongDigest)));
    }

    #[test]
    fn server_that_lies_is_caught_by_client() {
        // A fake server that welcomes anyone but cannot answer the client's challenge.
        let (mut a, mut b) = UnixStream::pair().unwrap();
        let t = std::thread::spawn(move || {
            let _ = wire::write_frame_bytes(
                &mut b,
                b"#CHALLENGE#{sha256}0123456789abcdef0123456789abcdef",
            );
            let _ = wire::read_frame_bytes(&mut b, 256);
            let _ = wire::write_frame_bytes(&mut b, WELCOME);
            let _ = wire::read_frame_bytes(&mut b, 256); // client's challenge
            let _ = wire::write_frame_bytes(&mut b, b"{sha256}not-a-mac");
            wire::read_frame_bytes(&mut b, 256)
        });
        let c = client_handshake(&mut a, &AuthKey::new("k"));
        assert!(matches!(c, Err(AuthError::WrongDigest)), "{c:?}");
        assert_eq!(t.join().unwrap().unwrap(), FAILURE);
    }

    #[test]
    fn right_key_both_directions() {
        let (mut a, mut b) = UnixStream::pair().unwrap();
        let t = std::thread::spawn(move || server_handshake(&mut b, &AuthKey::new("k")));
        client_handshake(&mut a, &AuthKey::new("k")).unwrap();
        // The server ends at end of stream if it is still waiting (never hangs).
        drop(a);
        t.join().unwrap().unwrap();
    }

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        wire::write_frame_bytes(&mut f, payload).unwrap();
        f
    }

    /// The nonce of the scripted challenges below, and CPython's answer to it
    /// for the key `k`: `hmac.new(b"k", b"{sha256}" + bytes(range(32)),
    /// "sha256").hexdigest()`.
    const NONCE: [u8; 32] = {
        let mut n = [0u8; 32];
        let mut i = 0;
        while i < 32 {
            n[i] = i as u8;
            i += 1;
        }
        n
    };
    const CPYTHON_ANSWER: &str = "36d1ed1d17535ed7cfbdaf277926e6c8046209bb07b73db423e9d5c0e75de6f0";

    fn challenge(tag: &[u8]) -> Vec<u8> {
        frame(&[CHALLENGE, tag, &NONCE].concat())
    }

    #[test]
    fn the_answer_is_cpythons_and_the_verdict_is_read() {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        for (verdict, expect) in [
            (WELCOME, "ok"),
            (FAILURE, "authentication failed: the peer refused our key"),
            (
                &b"#HELLO#"[..],
                "authentication failed: protocol violation: expected #WELCOME# or #FAILURE#",
            ),
        ] {
            let input = [challenge(DIGEST_TAG), frame(verdict)].concat();
            let mut peer = ScriptedPeer::new(&input);
            let r = answer_challenge(&mut peer, &AuthKey::new("k"));
            assert_eq!(r.map_or_else(|e| e.to_string(), |()| "ok".into()), expect);
            let answer = wire::split_frame(&peer.output, HANDSHAKE_LIMIT).unwrap();
            assert_eq!(answer.1, b"", "one frame written");
            let mac = answer.0.strip_prefix(DIGEST_TAG).expect("{sha256} first");
            assert_eq!(hex(mac), CPYTHON_ANSWER);
        }
    }

    #[test]
    fn a_bad_challenge_is_a_protocol_error_and_is_not_answered() {
        for (input, expect) in [
            (
                frame(b"#HELLO#{sha256}"),
                "authentication failed: protocol violation: expected a challenge",
            ),
            (
                challenge(b"{md5}"),
                "authentication failed: protocol violation: unsupported digest (want {sha256})",
            ),
            (
                // 257 bytes announced, above the handshake's limit.
                vec![1, 1, 0, 0],
                "authentication failed: oversized frame: 257 bytes announced, limit is 256",
            ),
        ] {
            let mut peer = ScriptedPeer::new(&input);
            let e = answer_challenge(&mut peer, &AuthKey::new("k")).unwrap_err();
            assert_eq!(e.to_string(), expect);
            assert_eq!(peer.output, b"");
        }
    }

    #[test]
    fn a_challenge_is_a_fresh_nonce_and_a_wrong_answer_is_refused() {
        // What deliver_challenge sends: `#CHALLENGE#{sha256}` and 32 random bytes.
        let mut sent = Vec::new();
        for _ in 0..2 {
            let mut peer = ScriptedPeer::new(b"");
            let e = deliver_challenge(&mut peer, &AuthKey::new("k")).unwrap_err();
            assert!(matches!(e, AuthError::Wire(WireError::Closed)), "{e:?}");
            let (msg, rest) = wire::split_frame(&peer.output, HANDSHAKE_LIMIT).unwrap();
            assert_eq!(rest, b"");
            let nonce = msg.strip_prefix(b"#CHALLENGE#{sha256}").unwrap();
            assert_eq!(nonce.len(), NONCE_LEN);
            sent.push(nonce.to_vec());
        }
        assert_ne!(sent[0], sent[1], "a fresh nonce per challenge");
        // An answer that is not the digest, or not tagged: `#FAILURE#`.
        for answer in [&[DIGEST_TAG, &[0u8; 32]].concat()[..], b"", b"{sha256}"] {
            let input = frame(answer);
            let mut peer = ScriptedPeer::new(&input);
            let e = deliver_challenge(&mut peer, &AuthKey::new("k")).unwrap_err();
            assert_eq!(
                e.to_string(),
                "authentication failed: digest received was wrong"
            );
            let (_, verdict) = wire::split_frame(&peer.output, HANDSHAKE_LIMIT).unwrap();
            assert_eq!(verdict, frame(FAILURE));
        }
    }

    #[test]
    fn keys_random_redacted_and_as_given() {
        let (a, b) = (AuthKey::random().unwrap(), AuthKey::random().unwrap());
        assert_eq!(a.as_bytes().len(), 32);
        assert_ne!(a, b);
        let k = AuthKey::new("secret");
        assert_eq!(k.as_bytes(), b"secret");
        assert_eq!(format!("{k:?}"), "AuthKey(<redacted>)");
    }
}
