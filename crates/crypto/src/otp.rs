//! One-time passwords: HOTP (RFC 4226) and TOTP (RFC 6238) with HMAC-SHA-1, 6 digits, and the
//! base32 encoding (RFC 4648) authenticator apps use for secrets.

use hmac::{Hmac, Mac};
use sha1::Sha1;

/// Digits of a code.
pub const DIGITS: u32 = 6;
/// Seconds per TOTP step.
pub const STEP_SECONDS: i64 = 30;

/// The HOTP value of `counter` under `secret`, as a zero-padded 6-digit string.
pub fn hotp(secret: &[u8], counter: u64) -> String {
    let mut mac = match <Hmac<Sha1> as Mac>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => std::process::abort(), // HMAC takes keys of any length
    };
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = (digest[19] & 0x0f) as usize;
    let bin = (u32::from(digest[offset] & 0x7f) << 24)
        | (u32::from(digest[offset + 1]) << 16)
        | (u32::from(digest[offset + 2]) << 8)
        | u32::from(digest[offset + 3]);
    format!("{:06}", bin % 10u32.pow(DIGITS))
}

/// The TOTP step of a Unix time in milliseconds.
pub fn step_at(unix_ms: i64) -> i64 {
    unix_ms.div_euclid(1000).div_euclid(STEP_SECONDS)
}

/// The TOTP code of a step.
pub fn totp(secret: &[u8], step: i64) -> String {
    hotp(secret, step.max(0) as u64)
}

/// The step within `now_step ± window` whose code equals `code`, compared in constant time.
pub fn matching_step(secret: &[u8], code: &str, now_step: i64, window: i64) -> Option<i64> {
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut found = None;
    for step in (now_step - window)..=(now_step + window) {
        if crate::ct_eq(totp(secret, step).as_bytes(), code.as_bytes()) {
            found = Some(step);
        }
    }
    found
}

/// RFC 4648 base32 without padding.
pub fn base32(bytes: &[u8]) -> String {
    data_encoding::BASE32_NOPAD.encode(bytes)
}

/// Decodes RFC 4648 base32 (upper or lower case, padding optional); `None` if it is not.
pub fn base32_decode(s: &str) -> Option<Vec<u8>> {
    data_encoding::BASE32_NOPAD
        .decode(s.trim_end_matches('=').to_ascii_uppercase().as_bytes())
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4226_appendix_d_vectors() {
        let secret = b"12345678901234567890";
        let expected = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (i, e) in expected.iter().enumerate() {
            assert_eq!(hotp(secret, i as u64), *e);
        }
    }

    #[test]
    fn rfc6238_sha1_vectors() {
        // RFC 6238 appendix B, SHA-1, truncated to 6 digits.
        let secret = b"12345678901234567890";
        for (t, code) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
        ] {
            assert_eq!(totp(secret, step_at(t * 1000)), code, "t={t}");
        }
    }

    #[test]
    fn window_and_format() {
        let secret = b"12345678901234567890";
        let now = step_at(1_111_111_109_000);
        let code = totp(secret, now - 1);
        assert_eq!(matching_step(secret, &code, now, 1), Some(now - 1));
        assert_eq!(
            matching_step(secret, &code, now + 1, 1),
            None,
            "two steps ago is outside ±1"
        );
        assert_eq!(matching_step(secret, "12345", now, 1), None);
        assert_eq!(matching_step(secret, "abcdef", now, 1), None);
    }

    #[test]
    fn base32_rfc4648_vectors() {
        assert_eq!(base32(b""), "");
        assert_eq!(base32(b"f"), "MY");
        assert_eq!(base32(b"fo"), "MZXQ");
        assert_eq!(base32(b"foo"), "MZXW6");
        assert_eq!(base32(b"foob"), "MZXW6YQ");
        assert_eq!(base32(b"fooba"), "MZXW6YTB");
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        for v in [&b""[..], b"f", b"foob", b"foobar", &[0xff; 20]] {
            assert_eq!(base32_decode(&base32(v)).unwrap(), v);
        }
        assert_eq!(base32_decode("mzxw6ytboi======").unwrap(), b"foobar");
        assert!(base32_decode("MZ1").is_none());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        #[test]
        fn base32_round_trips_and_never_panics(bytes: Vec<u8>, text in ".{0,80}") {
            let encoded = base32(&bytes);
            proptest::prop_assert_eq!(base32_decode(&encoded), Some(bytes.clone()));
            proptest::prop_assert_eq!(base32_decode(&encoded.to_lowercase()), Some(bytes));
            let _ = base32_decode(&text);
        }
    }
}
