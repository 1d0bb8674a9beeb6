//! AES-256-GCM envelopes: a versioned header, a random nonce, and the sealed bytes.
//!
//! Layout (see `docs/crypto.md`):
//! `version (1 byte, = 1) | key_version (u32 big-endian) | nonce (12 bytes) | ciphertext | tag (16 bytes)`.
//! The header is authenticated too: it is prepended to the caller's associated data, so
//! changing the key version or the format byte makes the envelope fail to open.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};

use crate::Key32;

/// Length of the random nonce.
pub const NONCE_LEN: usize = 12;
const VERSION: u8 = 1;
const HEADER_LEN: usize = 1 + 4 + NONCE_LEN;
const TAG_LEN: usize = 16;
/// Bytes an envelope adds to its plaintext.
pub const ENVELOPE_OVERHEAD: usize = HEADER_LEN + TAG_LEN;

/// Why an envelope did not open. Deliberately coarse: it never says anything about the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvelopeError {
    /// Too short, or an unknown format version.
    Malformed,
    /// The key, the associated data or the bytes do not match: tampered, moved, or the wrong key.
    Unauthentic,
}

impl std::fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EnvelopeError::Malformed => f.write_str("malformed envelope"),
            EnvelopeError::Unauthentic => f.write_str("envelope failed authentication"),
        }
    }
}

impl std::error::Error for EnvelopeError {}

/// Associated data built from length-prefixed parts, so `("ab","c")` and `("a","bc")` differ.
#[derive(Default, Clone)]
pub struct Aad(Vec<u8>);

impl Aad {
    /// Starts associated data under a domain label (what kind of object is sealed).
    pub fn new(domain: &str) -> Self {
        Self::default().part(domain.as_bytes())
    }

    /// Appends one part.
    pub fn part(mut self, bytes: &[u8]) -> Self {
        self.0
            .extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        self.0.extend_from_slice(bytes);
        self
    }

    /// Appends a string part.
    pub fn str(self, s: &str) -> Self {
        self.part(s.as_bytes())
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

fn full_aad(header: &[u8], aad: &Aad) -> Vec<u8> {
    let mut v = Vec::with_capacity(header.len() + aad.0.len());
    v.extend_from_slice(header);
    v.extend_from_slice(&aad.0);
    v
}

/// Seals `plaintext` under `key` with a caller-supplied random `nonce`.
pub fn seal(
    key: &Key32,
    key_version: u32,
    nonce: [u8; NONCE_LEN],
    aad: &Aad,
    plaintext: &[u8],
) -> Vec<u8> {
    let mut header = [0u8; HEADER_LEN];
    header[0] = VERSION;
    header[1..5].copy_from_slice(&key_version.to_be_bytes());
    header[5..].copy_from_slice(&nonce);
    let cipher = Aes256Gcm::new(key.expose().into());
    let msg = Payload {
        msg: plaintext,
        aad: &full_aad(&header, aad),
    };
    // AES-GCM encryption fails only for plaintexts over 64 GiB, far above any body limit.
    let sealed = match cipher.encrypt(Nonce::from_slice(&nonce), msg) {
        Ok(ct) => ct,
        Err(_) => std::process::abort(),
    };
    let mut out = Vec::with_capacity(HEADER_LEN + sealed.len());
    out.extend_from_slice(&header);
    out.extend_from_slice(&sealed);
    out
}

/// Reads the key version from an envelope's header without opening it.
pub fn key_version(envelope: &[u8]) -> Result<u32, EnvelopeError> {
    if envelope.len() < ENVELOPE_OVERHEAD || envelope[0] != VERSION {
        return Err(EnvelopeError::Malformed);
    }
    let mut v = [0u8; 4];
    v.copy_from_slice(&envelope[1..5]);
    Ok(u32::from_be_bytes(v))
}

/// Opens an envelope sealed by [`seal`] with the same key and associated data. The plaintext
/// (a field value, an unwrapped key) is wiped from memory when it is dropped.
pub fn open(
    key: &Key32,
    aad: &Aad,
    envelope: &[u8],
) -> Result<zeroize::Zeroizing<Vec<u8>>, EnvelopeError> {
    key_version(envelope)?;
    let (header, sealed) = envelope.split_at(HEADER_LEN);
    let cipher = Aes256Gcm::new(key.expose().into());
    let msg = Payload {
        msg: sealed,
        aad: &full_aad(header, aad),
    };
    cipher
        .decrypt(Nonce::from_slice(&header[5..]), msg)
        .map(zeroize::Zeroizing::new)
        .map_err(|_| EnvelopeError::Unauthentic)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> Key32 {
        Key32::from_bytes([b; 32])
    }

    #[test]
    fn round_trip() {
        let aad = Aad::new("field")
            .str("t1")
            .str("people")
            .str("r1")
            .str("email");
        let env = seal(&key(1), 3, [9; 12], &aad, b"ada@example.com");
        assert_eq!(env.len(), b"ada@example.com".len() + ENVELOPE_OVERHEAD);
        assert_eq!(key_version(&env).unwrap(), 3);
        assert_eq!(
            open(&key(1), &aad, &env).unwrap().as_slice(),
            b"ada@example.com"
        );
    }

    #[test]
    fn any_change_fails() {
        let aad = Aad::new("field").str("t1").str("r1");
        let env = seal(&key(1), 1, [9; 12], &aad, b"secret");
        assert_eq!(
            open(&key(2), &aad, &env),
            Err(EnvelopeError::Unauthentic),
            "wrong key"
        );
        let other = Aad::new("field").str("t1").str("r2");
        assert_eq!(open(&key(1), &other, &env), Err(EnvelopeError::Unauthentic));
        // Length prefixes keep part boundaries: ("t1","r1") is not ("t1r","1").
        let shifted = Aad::new("field").str("t1r").str("1");
        assert_eq!(
            open(&key(1), &shifted, &env),
            Err(EnvelopeError::Unauthentic)
        );
        for i in 0..env.len() {
            let mut bad = env.clone();
            bad[i] ^= 0x01;
            assert!(open(&key(1), &aad, &bad).is_err(), "flipped byte {i}");
        }
        assert_eq!(
            open(&key(1), &aad, &env[..10]),
            Err(EnvelopeError::Malformed)
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Whatever is sealed opens only with the same key and the same associated data, and
        /// no changed byte, cut or random input opens (or panics).
        #[test]
        fn envelopes_open_only_intact_and_in_their_place(
            plaintext in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            parts in proptest::collection::vec(".{0,12}", 0..4),
            other in ".{0,12}",
            nonce in proptest::prelude::any::<[u8; NONCE_LEN]>(),
            version in proptest::prelude::any::<u32>(),
            pos in proptest::prelude::any::<usize>(),
            bit in 0u8..8,
            junk in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..120),
        ) {
            let aad = parts.iter().fold(Aad::new("field"), |a, p| a.str(p));
            let env = seal(&key(1), version, nonce, &aad, &plaintext);
            proptest::prop_assert_eq!(key_version(&env).unwrap(), version);
            proptest::prop_assert_eq!(&open(&key(1), &aad, &env).unwrap()[..], &plaintext[..]);
            proptest::prop_assert!(open(&key(2), &aad, &env).is_err());
            // Associated data is length-prefixed: moving text between parts changes it too.
            let moved = parts.iter().fold(Aad::new("field"), |a, p| a.str(p)).str(&other);
            proptest::prop_assert!(open(&key(1), &moved, &env).is_err());
            let mut flipped = env.clone();
            let at = pos % flipped.len();
            flipped[at] ^= 1 << bit;
            proptest::prop_assert!(open(&key(1), &aad, &flipped).is_err());
            proptest::prop_assert!(open(&key(1), &aad, &env[..env.len() - 1]).is_err());
            proptest::prop_assert!(open(&key(1), &aad, &junk).is_err());
            let _ = key_version(&junk);
        }
    }
}
