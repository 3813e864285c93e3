//! The one error type of the crate.

/// Why a frame was refused or a call failed. The frame variants are reasons to drop a frame
/// and count it under [`SyncError::code`].
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
    /// Shorter than a header and a signature.
    #[error("truncated frame: {0}")]
    Truncated(&'static str),
    /// A wire version this build does not speak.
    #[error("frame version {0} is not supported")]
    BadVersion(u8),
    /// A frame kind this build does not know.
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
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
    /// A frame claimed by a peer that was disconnected for misbehaving.
    #[error("frame from a banned peer")]
    Banned,
    /// A frame claimed by a signer that is not a connected peer.
    #[error("frame from a signer that is not a connected peer")]
    NotAPeer,
    /// A verified frame whose payload does not decode.
    #[error("bad payload: {0}")]
    BadPayload(String),
    /// A delta that the document refused.
    #[error("bad delta for document {doc:?}: {reason}")]
    BadDelta {
        /// The document.
        doc: String,
        /// What the document said.
        reason: String,
    },
    /// A document this node does not share.
    /// A shared document failed to say its version (a JS document whose method threw).
    #[error("document {doc:?} failed: {reason}")]
    BadDocument {
        /// The document.
        doc: String,
        /// What it said.
        reason: String,
    },

    #[error("unknown document {0:?}")]
    UnknownDocument(String),
    /// A document name already shared, empty or too long.
    #[error("bad document name {name:?}: {reason}")]
    BadDocumentName {
        /// The name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A delta too large for one frame under the configured limit.
    #[error("a delta of {size} bytes does not fit in a frame (limit {limit})")]
    DeltaTooLarge {
        /// The delta's size.
        size: usize,
        /// The frame limit.
        limit: usize,
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
            SyncError::BadSignature => "BAD_SIGNATURE",
            SyncError::Replayed(_) => "REPLAYED",
            SyncError::TooOld { .. } => "TOO_OLD",
            SyncError::Banned => "BANNED",
            SyncError::NotAPeer => "NOT_A_PEER",
            SyncError::BadPayload(_) => "BAD_PAYLOAD",
            SyncError::BadDelta { .. } => "BAD_DELTA",
            SyncError::BadDocument { .. } => "BAD_DOCUMENT",
            SyncError::UnknownDocument(_) => "UNKNOWN_DOCUMENT",
            SyncError::BadDocumentName { .. } => "BAD_DOCUMENT_NAME",
            SyncError::DeltaTooLarge { .. } => "DELTA_TOO_LARGE",
        }
    }
}
