//! The 256-bit key type: zeroised on drop, redacted in `Debug`.

use zeroize::{Zeroize, ZeroizeOnDrop};

/// Length of every symmetric key in bytes.
pub const KEY_LEN: usize = 32;

/// A 256-bit secret key. Its bytes are wiped when it is dropped and never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Key32([u8; KEY_LEN]);

impl Key32 {
    /// Wraps raw key bytes (taken from a CSPRNG or an unwrapped envelope).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// Builds a key from a slice, which must be exactly 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        let arr: [u8; KEY_LEN] = bytes.try_into().ok()?;
        Some(Self(arr))
    }

    /// The raw bytes, for the cipher. Never log or serialise them.
    pub fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl std::fmt::Debug for Key32 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key32([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let k = Key32::from_bytes([0x41; 32]);
        let s = format!("{k:?}");
        assert_eq!(s, "Key32([redacted])");
        assert!(Key32::from_slice(&[0; 31]).is_none());
    }
}
