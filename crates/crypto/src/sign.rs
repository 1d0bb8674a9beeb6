//! Ed25519 signatures for audit checkpoints.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::Key32;

/// The public key of a signing seed.
pub fn public_key(seed: &Key32) -> [u8; 32] {
    SigningKey::from_bytes(seed.expose())
        .verifying_key()
        .to_bytes()
}

/// Signs `message` with the key of `seed`.
pub fn sign(seed: &Key32, message: &[u8]) -> [u8; 64] {
    SigningKey::from_bytes(seed.expose())
        .sign(message)
        .to_bytes()
}

/// Checks a signature made by [`sign`] (strict verification: no malleable signatures).
pub fn verify(public_key: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
    let Ok(key) = VerifyingKey::from_bytes(public_key) else {
        return false;
    };
    key.verify_strict(message, &Signature::from_bytes(signature))
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{hex, unhex};

    #[test]
    fn rfc8032_test_1() {
        let seed = Key32::from_slice(
            &unhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60").unwrap(),
        )
        .unwrap();
        assert_eq!(
            hex(&public_key(&seed)),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        let sig = sign(&seed, b"");
        assert_eq!(
            hex(&sig),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
        assert!(verify(&public_key(&seed), b"", &sig));
        assert!(!verify(&public_key(&seed), b"x", &sig));
        let mut bad = sig;
        bad[0] ^= 1;
        assert!(!verify(&public_key(&seed), b"", &bad));
    }
}
