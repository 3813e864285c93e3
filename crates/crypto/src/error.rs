//! The one error type of this crate.

/// Everything that can go wrong in `chrysalis-crypto`.
///
/// Each variant has a stable [`code`](CryptoError::code) that the JS edge exposes as
/// `error.code`; messages name the bad input but never include secret bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// An input had the wrong length.
    #[error("{what} must be {expected} bytes, got {actual}")]
    BadLength {
        /// Which input (e.g. "BLAKE3 key").
        what: &'static str,
        /// What was expected, in words (e.g. "32" or "1 to 65536").
        expected: String,
        /// The length that was given.
        actual: usize,
    },
    /// An algorithm name was not recognised.
    #[error("unknown algorithm {name:?}; expected one of {expected}")]
    UnknownAlgorithm {
        /// The name that was given.
        name: String,
        /// The accepted names, comma separated.
        expected: &'static str,
    },
    /// A provider name was not recognised.
    #[error(
        "unknown provider {name:?}; expected one of openai, anthropic, nomic, cohere, google, unknown"
    )]
    UnknownProvider {
        /// The name that was given.
        name: String,
    },
    /// A parameter was out of its allowed range (e.g. scrypt's `logN`).
    #[error("bad parameter {what}: {reason}")]
    BadParams {
        /// Which parameter.
        what: &'static str,
        /// Why it was rejected.
        reason: String,
    },
    /// Bytes or text that should have had a structure did not (PEM, DER, a key encoding, …).
    #[error("bad format of {what}: {reason}")]
    BadFormat {
        /// What was being decoded.
        what: &'static str,
        /// What was wrong with it.
        reason: String,
    },
    /// Authenticated decryption failed: wrong key, nonce or AAD, or tampered data.
    #[error("authentication failed: wrong key, nonce or associated data, or the data was modified")]
    AuthFailed,
    /// The platform's secure random source failed.
    #[error("secure random number generator unavailable: {0}")]
    RandomUnavailable(String),
}

impl CryptoError {
    /// The stable machine-readable code of this error (`"BAD_LENGTH"`, …).
    pub fn code(&self) -> &'static str {
        match self {
            CryptoError::BadLength { .. } => "BAD_LENGTH",
            CryptoError::UnknownAlgorithm { .. } => "UNKNOWN_ALGORITHM",
            CryptoError::UnknownProvider { .. } => "UNKNOWN_PROVIDER",
            CryptoError::BadParams { .. } => "BAD_PARAMS",
            CryptoError::BadFormat { .. } => "BAD_FORMAT",
            CryptoError::AuthFailed => "AUTH_FAILED",
            CryptoError::RandomUnavailable(_) => "RANDOM_UNAVAILABLE",
        }
    }

    /// Shorthand for a [`CryptoError::BadLength`] with one exact expected length.
    pub(crate) fn bad_length(what: &'static str, expected: usize, actual: usize) -> Self {
        CryptoError::BadLength {
            what,
            expected: expected.to_string(),
            actual,
        }
    }
}
