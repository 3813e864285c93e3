//! The one error type of the crate.

/// Why a frame was refused. Every variant is a reason to drop the frame and count it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    /// Larger than the receiver's limit (checked before anything is read).
    #[error("frame of {size} bytes exceeds the limit of {limit}")]
    Oversized {
        /// Bytes received.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Shorter than its header says.
    #[error("truncated frame: {0}")]
    Truncated(&'static str),
    /// A wire version this build does not speak.
    #[error("frame version {0} is not supported")]
    BadVersion(u8),
    /// A frame kind this build does not know.
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    /// Bytes after the signature.
    #[error("{0} bytes after the end of the frame")]
    TrailingBytes(usize),
    /// The signature does not verify under the sender's key.
    #[error("bad signature")]
    BadSignature,
    /// A sequence number already accepted from this sender.
    #[error("replayed frame (sequence {0})")]
    Replayed(u64),
    /// A sequence number below the replay window: it cannot be told from a replay.
    #[error("frame too old (sequence {seq}, newest {newest})")]
    TooOld {
        /// The frame's sequence number.
        seq: u64,
        /// The newest sequence number accepted from the sender.
        newest: u64,
    },
}

impl SyncError {
    /// The stable code (`"OVERSIZED"`, `"BAD_SIGNATURE"`, …), also the key of drop counters.
    pub fn code(&self) -> &'static str {
        match self {
            SyncError::Oversized { .. } => "OVERSIZED",
            SyncError::Truncated(_) => "TRUNCATED",
            SyncError::BadVersion(_) => "BAD_VERSION",
            SyncError::UnknownKind(_) => "UNKNOWN_KIND",
            SyncError::TrailingBytes(_) => "TRAILING_BYTES",
            SyncError::BadSignature => "BAD_SIGNATURE",
            SyncError::Replayed(_) => "REPLAYED",
            SyncError::TooOld { .. } => "TOO_OLD",
        }
    }
}
