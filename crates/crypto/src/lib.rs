//! Strongroom's cryptography: AEAD envelopes, key wrapping, key derivation and keyed hashes.
//!
//! This crate is pure: it performs no I/O and draws no randomness of its own. Callers pass in
//! nonces and fresh key material from their injected random source, which keeps every function
//! deterministic and testable. Byte layouts are documented in `docs/crypto.md`.

mod envelope;
mod key;
pub mod merkle;
pub mod otp;
pub mod password;
pub mod sign;

pub use envelope::{key_version, open, seal, Aad, EnvelopeError, ENVELOPE_OVERHEAD, NONCE_LEN};
pub use key::{Key32, KEY_LEN};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// SHA-256 over several parts, hashed in order with no separators (callers frame their input).
pub fn sha256_parts(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// HMAC-SHA-256 of `data` under `key`: the blind index of a normalised value.
pub fn hmac_sha256(key: &Key32, data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so construction cannot fail for a 32-byte key.
    let mut mac = match <HmacSha256 as Mac>::new_from_slice(key.expose()) {
        Ok(m) => m,
        Err(_) => unreachable_hmac(),
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

#[cold]
fn unreachable_hmac() -> ! {
    // hmac's `new_from_slice` only fails for block ciphers with fixed key sizes, never for SHA-256.
    std::process::abort()
}

/// Derives a 32-byte subkey from `ikm` with HKDF-SHA-256, bound to `info`.
pub fn derive_key(ikm: &Key32, info: &[u8]) -> Key32 {
    let hk = hkdf::Hkdf::<Sha256>::new(Some(b"strongroom/hkdf/v1"), ikm.expose());
    let mut out = [0u8; KEY_LEN];
    if hk.expand(info, &mut out).is_err() {
        // expand only fails when asking for more than 255 * 32 bytes.
        std::process::abort()
    }
    Key32::from_bytes(out)
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    diff == 0
}

/// Lower-case hexadecimal encoding.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 0x0f) as usize] as char);
    }
    s
}

/// Decodes lower- or upper-case hexadecimal; `None` on odd length or a non-hex character.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    bytes
        .chunks_exact(2)
        .map(|pair| Some((nibble(pair[0])? << 4) | nibble(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        let data = [0u8, 1, 0x7f, 0x80, 0xff];
        assert_eq!(hex(&data), "00017f80ff");
        assert_eq!(unhex("00017F80ff").unwrap(), data);
        assert!(unhex("0").is_none());
        assert!(unhex("zz").is_none());
    }

    #[test]
    fn hmac_is_keyed_and_exact() {
        let key = Key32::from_bytes([0x0b; 32]);
        let a = hmac_sha256(&key, b"Hi There");
        let b = hmac_sha256(&key, b"Hi There");
        let c = hmac_sha256(&Key32::from_bytes([0x0c; 32]), b"Hi There");
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, hmac_sha256(&key, b"Hi there"));
    }

    #[test]
    fn sha256_known_vector() {
        assert_eq!(
            hex(&sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn derived_keys_depend_on_info_and_ikm() {
        let k = Key32::from_bytes([7; 32]);
        let a = derive_key(&k, b"blind-index|people|email");
        let b = derive_key(&k, b"blind-index|people|phone");
        let c = derive_key(&Key32::from_bytes([8; 32]), b"blind-index|people|email");
        assert_ne!(a.expose(), b.expose());
        assert_ne!(a.expose(), c.expose());
        assert_eq!(
            a.expose(),
            derive_key(&k, b"blind-index|people|email").expose()
        );
    }

    #[test]
    fn ct_eq_behaves() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }
}
