//! Password hashes as RabbitMQ's internal database stores them, so that a
//! definitions export from RabbitMQ imports and its users can log in:
//! `base64(salt ++ H(salt ++ utf8 password))` with a 4-byte random salt, where H
//! is named by the user's `hashing_algorithm`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256, Sha512};

/// RabbitMQ's default algorithm (and the one Warren hashes new passwords with).
pub const SHA256: &str = "rabbit_password_hashing_sha256";
/// Also accepted on import: RabbitMQ can be configured to use it.
pub const SHA512: &str = "rabbit_password_hashing_sha512";

/// Salt length RabbitMQ uses.
const SALT_LEN: usize = 4;

/// Why a hash was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    /// An algorithm other than the SHA-2 ones (e.g. RabbitMQ's legacy MD5).
    #[error("unsupported hashing algorithm '{0}'")]
    UnsupportedAlgorithm(String),
    /// Not base64, or too short to hold a salt.
    #[error("invalid password hash")]
    Invalid,
}

/// Whether Warren can check passwords hashed with `algorithm`.
pub fn check_algorithm(algorithm: &str) -> Result<(), HashError> {
    match algorithm {
        SHA256 | SHA512 => Ok(()),
        other => Err(HashError::UnsupportedAlgorithm(other.to_owned())),
    }
}

/// Checks a stored hash's shape: base64 with room for a salt.
pub fn check_hash(hash: &str) -> Result<(), HashError> {
    match STANDARD.decode(hash) {
        Ok(bytes) if bytes.len() > SALT_LEN => Ok(()),
        // RabbitMQ stores an empty hash for a user without a password.
        Ok(bytes) if bytes.is_empty() => Ok(()),
        _ => Err(HashError::Invalid),
    }
}

/// Hashes `password` with a fresh random salt (SHA-256).
pub fn hash_password(password: &str) -> String {
    // A v4 UUID's bytes come from the OS's secure random source; four of them
    // make the salt without pulling in another crate.
    let random = uuid::Uuid::new_v4();
    let mut salt = [0u8; SALT_LEN];
    salt.copy_from_slice(&random.as_bytes()[..SALT_LEN]);
    encode(SHA256, &salt, password)
}

/// Whether `password` matches `hash` made with `algorithm`. An empty hash (a
/// user created without a password) matches nothing.
pub fn verify(algorithm: &str, hash: &str, password: &str) -> bool {
    let Ok(stored) = STANDARD.decode(hash) else {
        return false;
    };
    if stored.len() <= SALT_LEN {
        return false;
    }
    let (salt, digest) = stored.split_at(SALT_LEN);
    let Some(computed) = digest_of(algorithm, salt, password) else {
        return false;
    };
    constant_time_eq(&computed, digest)
}

fn encode(algorithm: &str, salt: &[u8], password: &str) -> String {
    let mut out = salt.to_vec();
    out.extend(digest_of(algorithm, salt, password).unwrap_or_default());
    STANDARD.encode(out)
}

fn digest_of(algorithm: &str, salt: &[u8], password: &str) -> Option<Vec<u8>> {
    match algorithm {
        SHA256 => Some(
            Sha256::new()
                .chain_update(salt)
                .chain_update(password.as_bytes())
                .finalize()
                .to_vec(),
        ),
        SHA512 => Some(
            Sha512::new()
                .chain_update(salt)
                .chain_update(password.as_bytes())
                .finalize()
                .to_vec(),
        ),
        _ => None,
    }
}

/// Compares without stopping at the first difference, so timing tells nothing.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_a_hash_exported_by_rabbitmq() {
        // `guest` as exported by RabbitMQ 3.10.8's /api/definitions.
        let hash = "xoOO5/d1qsLSX2KzSW9SfogWMDTj+9o3renoM4+0Q4zZQuzI";
        assert!(verify(SHA256, hash, "guest"));
        assert!(!verify(SHA256, hash, "guesT"));
        assert!(!verify(SHA512, hash, "guest"));
    }

    #[test]
    fn new_hashes_are_salted_and_verify() {
        let (a, b) = (hash_password("pw"), hash_password("pw"));
        assert_ne!(a, b, "a fresh salt each time");
        assert!(verify(SHA256, &a, "pw") && verify(SHA256, &b, "pw"));
        assert!(!verify(SHA256, &a, "pw2"));
        assert!(check_hash(&a).is_ok());
        assert!(check_hash("not base64!").is_err());
        assert!(!verify(SHA256, "", ""));
    }
}
