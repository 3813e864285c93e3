//! Secure randomness and constant-time comparison.

use subtle::ConstantTimeEq;

use crate::CryptoError;

/// The most bytes [`random_bytes`] hands out in one call (1 MiB).
pub const MAX_RANDOM_BYTES: usize = 1 << 20;

/// Fills `out` from the platform's secure source (`crypto.getRandomValues` in a browser).
pub fn fill_random(out: &mut [u8]) -> Result<(), CryptoError> {
    getrandom::fill(out).map_err(|e| CryptoError::RandomUnavailable(e.to_string()))
}

/// `n` secure random bytes (at most [`MAX_RANDOM_BYTES`]).
pub fn random_bytes(n: usize) -> Result<Vec<u8>, CryptoError> {
    if n > MAX_RANDOM_BYTES {
        return Err(CryptoError::BadLength {
            what: "random output",
            expected: format!("0 to {MAX_RANDOM_BYTES}"),
            actual: n,
        });
    }
    let mut out = vec![0u8; n];
    fill_random(&mut out)?;
    Ok(out)
}

/// A fixed-size array of secure random bytes.
pub fn random_array<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut out = [0u8; N];
    fill_random(&mut out)?;
    Ok(out)
}

/// Compares two byte strings in time that depends only on their lengths.
///
/// Different lengths compare unequal (the lengths themselves are not secret).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_bytes_have_the_asked_length_and_differ() {
        let a = random_bytes(32).unwrap();
        let b = random_bytes(32).unwrap();
        assert_eq!(a.len(), 32);
        assert_ne!(
            a, b,
            "two 256-bit draws collide with negligible probability"
        );
        assert!(random_bytes(0).unwrap().is_empty());
        assert_eq!(
            random_bytes(MAX_RANDOM_BYTES + 1).unwrap_err().code(),
            "BAD_LENGTH"
        );
    }

    #[test]
    fn constant_time_eq_compares_content_and_length() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(constant_time_eq(b"", b""));
    }
}
