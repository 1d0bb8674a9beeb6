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
    hmac_sha256_raw(key.expose(), data)
}

/// HMAC-SHA-256 under a key of any length (the construction [`hmac_sha256`] uses; tested with
/// the RFC 4231 vectors).
fn hmac_sha256_raw(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so construction cannot fail.
    let mut mac = match <HmacSha256 as Mac>::new_from_slice(key) {
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

/// The salt of every key Strongroom derives.
const HKDF_SALT: &[u8] = b"strongroom/hkdf/v1";

/// Derives a 32-byte subkey from `ikm` with HKDF-SHA-256, bound to `info`.
pub fn derive_key(ikm: &Key32, info: &[u8]) -> Key32 {
    let mut out = [0u8; KEY_LEN];
    hkdf_sha256(HKDF_SALT, ikm.expose(), info, &mut out);
    Key32::from_bytes(out)
}

/// HKDF-SHA-256 (RFC 5869) filling `out` (at most 255 × 32 bytes; tested with its vectors).
fn hkdf_sha256(salt: &[u8], ikm: &[u8], info: &[u8], out: &mut [u8]) {
    let hk = hkdf::Hkdf::<Sha256>::new(Some(salt), ikm);
    if hk.expand(info, out).is_err() {
        // expand only fails when asking for more than 255 * 32 bytes.
        std::process::abort()
    }
}

/// Compares two byte strings in time that depends only on their lengths (`subtle`, whose
/// comparison the optimiser cannot turn into an early exit).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

/// Whether `needle` equals any of `haystack`, comparing with every element in constant time
/// (no early exit reveals which one matched, or how many were compared).
pub fn ct_contains(haystack: &[[u8; 32]], needle: &[u8; 32]) -> bool {
    use subtle::ConstantTimeEq;
    haystack
        .iter()
        .fold(subtle::Choice::from(0), |found, h| found | h.ct_eq(needle))
        .into()
}

/// Lower-case hexadecimal encoding.
pub fn hex(bytes: &[u8]) -> String {
    data_encoding::HEXLOWER.encode(bytes)
}

/// Decodes lower- or upper-case hexadecimal; `None` on odd length or a non-hex character.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    data_encoding::HEXLOWER_PERMISSIVE.decode(s.as_bytes()).ok()
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
    fn rfc4231_hmac_sha256_vectors() {
        // Test cases 1, 2, 3, 4, 6 and 7 of RFC 4231 (HMAC-SHA-256 outputs).
        let cases: [(Vec<u8>, Vec<u8>, &str); 6] = [
            (vec![0x0b; 20], b"Hi There".to_vec(), "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
            (b"Jefe".to_vec(), b"what do ya want for nothing?".to_vec(), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
            (vec![0xaa; 20], vec![0xdd; 50], "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
            ((1..=25).collect(), vec![0xcd; 50], "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
            (vec![0xaa; 131], b"Test Using Larger Than Block-Size Key - Hash Key First".to_vec(), "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
            (vec![0xaa; 131], b"This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.".to_vec(), "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
        ];
        for (key, data, expected) in cases {
            assert_eq!(hex(&hmac_sha256_raw(&key, &data)), expected);
        }
    }

    #[test]
    fn rfc5869_hkdf_sha256_vectors() {
        // Test cases 1, 2 and 3 of RFC 5869.
        let case1 = (
            vec![0x0b; 22],
            unhex("000102030405060708090a0b0c").unwrap(),
            unhex("f0f1f2f3f4f5f6f7f8f9").unwrap(),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
        );
        let case2 = (
            (0x00..=0x4f).collect::<Vec<u8>>(),
            (0x60..=0xaf).collect::<Vec<u8>>(),
            (0xb0..=0xff).collect::<Vec<u8>>(),
            "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87",
        );
        let case3 = (
            vec![0x0b; 22],
            vec![],
            vec![],
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
        );
        for (ikm, salt, info, expected) in [case1, case2, case3] {
            let mut out = vec![0u8; expected.len() / 2];
            hkdf_sha256(&salt, &ikm, &info, &mut out);
            assert_eq!(hex(&out), expected);
        }
    }

    #[test]
    fn ct_contains_finds_any_element() {
        let set = [[1u8; 32], [2; 32], [3; 32]];
        assert!(ct_contains(&set, &[3; 32]));
        assert!(ct_contains(&set, &[1; 32]));
        assert!(!ct_contains(&set, &[4; 32]));
        assert!(!ct_contains(&[], &[1; 32]));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        #[test]
        fn hex_round_trips_and_never_panics(bytes: Vec<u8>, text in ".{0,80}") {
            proptest::prop_assert_eq!(unhex(&hex(&bytes)), Some(bytes.clone()));
            proptest::prop_assert_eq!(unhex(&hex(&bytes).to_uppercase()), Some(bytes));
            let _ = unhex(&text);
        }
    }

    #[test]
    fn ct_eq_behaves() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }
}
