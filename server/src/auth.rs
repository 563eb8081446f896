//! Enrollment codes and device tokens. Both are random secrets shown once;
//! only their SHA-256 is stored, so a copy of the database does not let
//! anyone sync as a device.

use rand::Rng;
use sha2::{Digest, Sha256};

/// Alphabet of enrollment codes: no 0/O, 1/I/L, easy to read aloud and type.
const CODE_ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";

/// A new one-time enrollment code, `XXXX-XXXX-XXXX` (about 59 bits).
pub fn new_enrollment_code() -> String {
    let mut rng = rand::rngs::OsRng;
    let chars: Vec<char> = (0..12).map(|_| CODE_ALPHABET[rng.gen_range(0..CODE_ALPHABET.len())] as char).collect();
    format!(
        "{}-{}-{}",
        chars[..4].iter().collect::<String>(),
        chars[4..8].iter().collect::<String>(),
        chars[8..].iter().collect::<String>()
    )
}

/// Normalize what a user typed (case, spaces, dashes) before hashing.
pub fn normalize_code(code: &str) -> String {
    code.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_uppercase()).collect()
}

/// A new device token: 32 random bytes, hex.
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::rngs::OsRng.r#gen();
    hex::encode(bytes)
}

/// SHA-256 of a secret.
pub fn hash_secret(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_typeable_and_normalize() {
        let c = new_enrollment_code();
        assert_eq!(c.len(), 14);
        assert_eq!(hash_secret(&normalize_code(&c.to_lowercase().replace('-', " "))), hash_secret(&normalize_code(&c)));
        assert_ne!(new_enrollment_code(), c);
        assert_eq!(new_token().len(), 64);
    }
}
