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
}

impl CryptoError {
    /// The stable machine-readable code of this error (`"BAD_LENGTH"`, …).
    pub fn code(&self) -> &'static str {
        match self {
            CryptoError::BadLength { .. } => "BAD_LENGTH",
            CryptoError::UnknownAlgorithm { .. } => "UNKNOWN_ALGORITHM",
        }
    }
}
