//! CSRF protection: every POST of the portal carries a `csrf` form field equal to the
//! session's secret (and the sign-in form one equal to its pre-session cookie), compared in
//! constant time. Cookies are SameSite=Strict as well, so a cross-site form post carries no
//! session at all; the token is the second, independent line.

use rand::TryRngCore;

/// 32 random bytes from the operating system, as hex.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .expect("the operating system's random source works");
    hex::encode(bytes)
}

/// Whether `presented` equals `expected`, in time independent of where they differ.
pub fn matches(expected: &str, presented: &str) -> bool {
    let (a, b) = (expected.as_bytes(), presented.as_bytes());
    if a.len() != b.len() || a.is_empty() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_are_random_and_compared_exactly() {
        let (a, b) = (super::random_token(), super::random_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert!(super::matches(&a, &a.clone()));
        assert!(!super::matches(&a, &b));
        assert!(!super::matches(&a, ""));
        assert!(!super::matches("", ""));
    }
}
