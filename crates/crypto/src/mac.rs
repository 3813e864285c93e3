//! HMAC-SHA-256 and HKDF-SHA-256 (RFC 2104, RFC 5869).

use hmac::{KeyInit, Mac};

use crate::CryptoError;

/// The most output HKDF-SHA-256 can produce: 255 blocks of 32 bytes.
pub const HKDF_SHA256_MAX_OUTPUT: usize = 255 * 32;

/// HMAC-SHA-256 of `data` under `key` (any key length).
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Checks an HMAC-SHA-256 tag in constant time. A tag shorter than 32 bytes is compared
/// against the same-length prefix (truncated HMAC, RFC 2104 §5); it must be at least 16 bytes.
pub fn hmac_sha256_verify(key: &[u8], data: &[u8], tag: &[u8]) -> Result<bool, CryptoError> {
    if !(16..=32).contains(&tag.len()) {
        return Err(CryptoError::BadLength {
            what: "HMAC-SHA-256 tag",
            expected: "16 to 32".into(),
            actual: tag.len(),
        });
    }
    let full = hmac_sha256(key, data);
    Ok(crate::constant_time_eq(&full[..tag.len()], tag))
}

/// HKDF-SHA-256: extract with `salt` (empty means the RFC's zero salt), expand with `info`
/// into `length` bytes (1 to [`HKDF_SHA256_MAX_OUTPUT`]).
pub fn hkdf_sha256(
    ikm: &[u8],
    salt: &[u8],
    info: &[u8],
    length: usize,
) -> Result<Vec<u8>, CryptoError> {
    if !(1..=HKDF_SHA256_MAX_OUTPUT).contains(&length) {
        return Err(CryptoError::BadLength {
            what: "HKDF-SHA-256 output",
            expected: format!("1 to {HKDF_SHA256_MAX_OUTPUT}"),
            actual: length,
        });
    }
    let salt = (!salt.is_empty()).then_some(salt);
    let hk = hkdf::Hkdf::<sha2::Sha256>::new(salt, ikm);
    let mut okm = vec![0u8; length];
    hk.expand(info, &mut okm)
        .expect("length was checked against the HKDF maximum");
    Ok(okm)
}
