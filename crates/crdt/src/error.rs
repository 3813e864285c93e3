//! The one error type of this crate.

/// Everything that can go wrong in `chrysalis-crdt`, mostly when decoding untrusted bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrdtError {
    /// The bytes are not an encoding of the expected type, are of an unknown version, are
    /// truncated, or break an invariant of the type.
    #[error("bad format of {what}: {reason}")]
    BadFormat {
        /// The type being decoded.
        what: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// An input is larger than the decoder accepts.
    #[error("{what} is {actual} bytes; the limit is {limit}")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// Its size.
        actual: usize,
        /// The limit.
        limit: usize,
    },
    /// A Merkle DAG node whose hash does not match its content.
    #[error("node hash mismatch: claimed {claimed}, content hashes to {actual}")]
    HashMismatch {
        /// The hash the node was sent under (hex).
        claimed: String,
        /// The hash of its canonical encoding (hex).
        actual: String,
    },
    /// A Merkle DAG node whose parents are not in the DAG yet.
    #[error("node {node} has {missing} parent(s) not in the DAG")]
    MissingParents {
        /// The node (hex).
        node: String,
        /// How many parents are missing.
        missing: usize,
    },
    /// A value that the operation does not accept (e.g. a NaN skill level).
    #[error("bad value: {0}")]
    BadValue(String),
}

impl CrdtError {
    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            CrdtError::BadFormat { .. } => "BAD_FORMAT",
            CrdtError::TooLarge { .. } => "TOO_LARGE",
            CrdtError::HashMismatch { .. } => "HASH_MISMATCH",
            CrdtError::MissingParents { .. } => "MISSING_PARENTS",
            CrdtError::BadValue(_) => "BAD_VALUE",
        }
    }

    pub(crate) fn bad_format(what: &'static str, reason: impl Into<String>) -> Self {
        CrdtError::BadFormat {
            what,
            reason: reason.into(),
        }
    }
}
