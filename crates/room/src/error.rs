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
}

impl RoomError {
    /// A stable upper-case code for the error kind.
    pub fn code(&self) -> &'static str {
        match self {
            RoomError::BadArgument(_) => "BAD_ARGUMENT",
            RoomError::Sync(error) => error.code(),
            RoomError::Closed => "CLOSED",
        }
    }
}
