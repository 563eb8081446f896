//! Web passwords: argon2id with a random salt, stored as a PHC string.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::RngCore;

/// Shortest password accepted.
pub const MIN_LEN: usize = 10;

/// Hashing a password failed (argon2 refused its input).
#[derive(Debug, thiserror::Error)]
#[error("cannot hash the password: {0}")]
pub struct HashError(String);

/// Hash a password (argon2id, default parameters, 16-byte random salt).
pub fn hash(password: &str) -> Result<String, HashError> {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| HashError(format!("salt: {e}")))?;
    let h = Argon2::default().hash_password(password.as_bytes(), &salt).map_err(|e| HashError(e.to_string()))?;
    Ok(h.to_string())
}

/// Whether `password` matches the stored PHC string (false if it is unreadable).
pub fn verify(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(h) => Argon2::default().verify_password(password.as_bytes(), &h).is_ok(),
        Err(_) => false,
    }
}

/// Passwords seen most often in breach corpora (English and Chinese
/// users), lower-cased; NIST SP 800-63B §5.1.1.2 asks that none be accepted.
const COMMON: &[&str] = &[
    "password",
    "password1",
    "password12",
    "password123",
    "passw0rd",
    "p@ssw0rd",
    "p@ssword",
    "qwerty123",
    "qwertyuiop",
    "qwerty1234",
    "1q2w3e4r5t",
    "1qaz2wsx3edc",
    "1qaz2wsx",
    "zaq12wsx",
    "qazwsxedc",
    "qazwsxedcrfv",
    "asdfghjkl",
    "asdfghjkl1",
    "zxcvbnm123",
    "iloveyou",
    "iloveyou1",
    "woaini1314",
    "woaini520",
    "woaiwojia",
    "5201314520",
    "1314520520",
    "abc123456",
    "abcd123456",
    "abc1234567",
    "a123456789",
    "a1234567890",
    "123456789a",
    "1234567890a",
    "123456abc",
    "123456789q",
    "aa123456789",
    "admin12345",
    "admin123456",
    "administrator",
    "welcome123",
    "welcome1",
    "letmein123",
    "sunshine1",
    "football1",
    "baseball1",
    "princess1",
    "dragon1234",
    "monkey1234",
    "trustno1",
    "superman1",
    "iloveu1314",
    "zhang123456",
    "wang123456",
    "li123456789",
    "liu123456",
    "chen123456",
    "huang123456",
    "zhao123456",
    "123456qwerty",
    "qwerty123456",
    "woshishui",
    "woainima",
    "1234qwer",
    "qwer1234",
    "asdf1234",
    "zxcv1234",
    "1234abcd",
    "abcd1234",
    "changeme",
    "changeme1",
    "gridsync",
    "gridsync1",
    "gridsync123",
    "liangdang",
    "liangdang1",
    "liangdang123",
];

/// Check a new password for user `user_id`: at least [`MIN_LEN`] characters,
/// at most 1,024 bytes, and not guessable: not on the list of common
/// passwords, not one character repeated or a short pattern repeated
/// (`abcabcabca`), not a run of the keyboard or the alphabet (`1234567890`,
/// `qwertyuiop`), not the user's id. The reason is in Chinese, for the form.
pub fn check_new_for(password: &str, user_id: &str) -> Result<(), String> {
    if password.chars().count() < MIN_LEN {
        return Err(format!("密码至少{MIN_LEN}个字符"));
    }
    if password.len() > 1024 {
        return Err("密码不能超过1024字节".into());
    }
    let lower = password.to_lowercase();
    if COMMON.contains(&lower.as_str()) {
        return Err("这是常见密码，容易被猜中，请换一个".into());
    }
    let chars: Vec<char> = lower.chars().collect();
    for period in 1..=4 {
        if chars.len() > period && (period..chars.len()).all(|i| chars[i] == chars[i - period]) {
            return Err("密码不能是重复的字符或片段".into());
        }
    }
    const RUNS: [&str; 6] = [
        "01234567890123456789",
        "09876543210987654321",
        "abcdefghijklmnopqrstuvwxyz",
        "zyxwvutsrqponmlkjihgfedcba",
        "qwertyuiopasdfghjklzxcvbnm",
        "1qaz2wsx3edc4rfv5tgb6yhn7ujm",
    ];
    if RUNS.iter().any(|r| r.contains(lower.as_str())) {
        return Err("密码不能是连续的数字、字母或键盘顺序".into());
    }
    let id = user_id.trim().to_lowercase();
    if !id.is_empty() && (lower.contains(&id) || id.contains(lower.as_str())) {
        return Err("密码不能包含账号".into());
    }
    Ok(())
}

/// [`check_new_for`] without a user id.
pub fn check_new(password: &str) -> Result<(), String> {
    check_new_for(password, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_differ() {
        let a = hash("correct horse battery").unwrap();
        let b = hash("correct horse battery").unwrap();
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b, "salted");
        assert!(verify("correct horse battery", &a));
        assert!(!verify("wrong horse battery", &a));
        assert!(!verify("x", "not a hash"));
        assert!(check_new("short").is_err());
        assert!(check_new("long enough pw").is_ok());
    }

    #[test]
    fn guessable_passwords_are_refused_with_the_reason() {
        for (pw, why) in [
            ("1234567890", "连续"),
            ("0987654321", "连续"),
            ("qwertyuiop", "常见"),
            ("Password123", "常见"),
            ("aaaaaaaaaaaa", "重复"),
            ("abcabcabcabc", "重复"),
            ("1212121212", "重复"),
            ("woaini1314", "常见"),
            ("tc-t01-1-secret", "账号"),
        ] {
            let err = check_new_for(pw, "tc-t01-1").unwrap_err();
            assert!(err.contains(why), "{pw}: {err}");
        }
        assert_eq!(check_new_for("两当县城关镇2026冬", "tc-t01-1"), Ok(()));
        assert_eq!(check_new_for("river-stone-lamp-7", "tc-t01-1"), Ok(()));
    }
}
