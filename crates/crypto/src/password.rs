//! Password hashing with Argon2id. The caller supplies the salt (from its injected random source)
//! and runs these off any async runtime: they are deliberately slow.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// Argon2id cost: memory in KiB, iterations, parallelism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Cost {
    /// OWASP's minimum for Argon2id: 19 MiB, 2 iterations, 1 lane.
    pub const DEFAULT: Cost = Cost {
        memory_kib: 19 * 1024,
        iterations: 2,
        parallelism: 1,
    };
}

fn argon(cost: Cost) -> Option<Argon2<'static>> {
    let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, None).ok()?;
    Some(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes a password into a PHC string (`$argon2id$v=19$m=...`). `None` only for invalid costs.
pub fn hash_password(password: &[u8], salt: &[u8; 16], cost: Cost) -> Option<String> {
    let salt = SaltString::encode_b64(salt).ok()?;
    argon(cost)?
        .hash_password(password, &salt)
        .ok()
        .map(|h| h.to_string())
}

/// Checks a password against a PHC string made by [`hash_password`] (its own cost applies).
pub fn verify_password(password: &[u8], phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    Argon2::default().verify_password(password, &parsed).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_carry_their_cost() {
        let cost = Cost {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        };
        let h = hash_password(b"correct horse battery staple", &[7; 16], cost).unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{h}");
        assert!(verify_password(b"correct horse battery staple", &h));
        assert!(!verify_password(b"correct horse battery stapler", &h));
        assert!(!verify_password(b"x", "not a phc string"));
        let other = hash_password(b"correct horse battery staple", &[8; 16], cost).unwrap();
        assert_ne!(h, other, "salted");
        let default = hash_password(b"pw", &[1; 16], Cost::DEFAULT).unwrap();
        assert!(default.contains("m=19456,t=2,p=1"));
    }
}
