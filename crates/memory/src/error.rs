//! The one error type of the crate.

/// Why a memory operation was refused. [`MemoryError::code`] is the stable name the JS face
/// and the statistics use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemoryError {
    /// An argument out of range or malformed (names which and why).
    #[error("{what}: {reason}")]
    BadInput {
        /// The argument.
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Bytes that do not decode as what they claim to be.
    #[error("cannot decode {what}: {reason}")]
    Decode {
        /// What was being decoded.
        what: &'static str,
        /// The decoder's complaint.
        reason: String,
    },
    /// A signature that does not verify under the claimed signer's key.
    #[error("bad signature on {0}")]
    BadSignature(&'static str),
    /// A bead whose id is not the hash of its content.
    #[error("bead id does not match its content")]
    IdMismatch,
    /// Vectors of different models or dimensions compared or mixed in one index.
    #[error("embedding mismatch: {0}")]
    EmbeddingMismatch(String),
    /// A signer outside the current membership.
    #[error("not a member: {0}")]
    NotMember(String),
    /// An operation only a record's author may do.
    #[error("not the author: {0}")]
    NotAuthor(&'static str),
    /// A decided motion that fewer members endorsed than the council's threshold.
    #[error("endorsed by {have} members; the council needs {need}")]
    NotEndorsed {
        /// Distinct members who endorsed it.
        have: usize,
        /// The council's threshold.
        need: usize,
    },
}

impl MemoryError {
    /// A stable upper-case code for the error kind.
    pub fn code(&self) -> &'static str {
        match self {
            MemoryError::BadInput { .. } => "BAD_INPUT",
            MemoryError::Decode { .. } => "DECODE",
            MemoryError::BadSignature(_) => "BAD_SIGNATURE",
            MemoryError::IdMismatch => "ID_MISMATCH",
            MemoryError::EmbeddingMismatch(_) => "EMBEDDING_MISMATCH",
            MemoryError::NotMember(_) => "NOT_MEMBER",
            MemoryError::NotAuthor(_) => "NOT_AUTHOR",
            MemoryError::NotEndorsed { .. } => "NOT_ENDORSED",
        }
    }

    pub(crate) fn bad_input(what: &'static str, reason: impl Into<String>) -> Self {
        MemoryError::BadInput {
            what,
            reason: reason.into(),
        }
    }
}
