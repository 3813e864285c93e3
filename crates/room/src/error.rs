//! The one error type of the crate.

use chrysalis_sync::SyncError;

/// Why a room refused a call. [`RoomError::code`] is the stable name the JS face uses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomError {
    /// An argument out of range or malformed (says which and why).
    #[error("{0}")]
    BadArgument(&'static str),
    /// The replication node refused the call.
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// The room was closed.
    #[error("the room was closed")]
    Closed,
    /// No memory of this name is open in the room.
    #[error("no memory of this name is open in the room")]
    UnknownMemory,
    /// Only a council member proposes or endorses.
    #[error("only a member of the memory's council proposes or endorses motions")]
    NotMember,
    /// Not supported yet (says what).
    #[error("{0}")]
    NotSupported(&'static str),
    /// The memory's storage failed a write: it takes no more local changes until reopened.
    #[error("the memory's storage failed a write; reopen the memory")]
    StorageFailed,
    /// The memory refused the call (its error's code and message).
    #[error("{message}")]
    Memory {
        /// The memory error's code.
        code: &'static str,
        /// What was wrong.
        message: String,
    },
}

impl RoomError {
    /// A stable upper-case code for the error kind.
    pub fn code(&self) -> &'static str {
        match self {
            RoomError::BadArgument(_) => "BAD_ARGUMENT",
            RoomError::Sync(error) => error.code(),
            RoomError::Closed => "CLOSED",
            RoomError::UnknownMemory => "UNKNOWN_MEMORY",
            RoomError::NotMember => "NOT_MEMBER",
            RoomError::NotSupported(_) => "NOT_SUPPORTED",
            RoomError::StorageFailed => "STORAGE_FAILED",
            RoomError::Memory { code, .. } => code,
        }
    }
}
