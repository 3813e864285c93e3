//! The replication protocol of Chrysalis, sans-IO: it takes bytes and time and returns bytes to
//! send, so that transports only move bytes and simulations can drive many nodes in one test.
//!
//! This first layer is the frame: every message between peers is a versioned, size-bounded
//! envelope signed by the sender's Ed25519 identity ([`Frame`]), and a [`ReplayGuard`] refuses a
//! frame seen before or too old to judge. Frames that fail are dropped and counted, never trusted.

mod error;
mod frame;
mod replay;

pub use error::SyncError;
pub use frame::{
    DEFAULT_MAX_FRAME, FRAME_OVERHEAD, FRAME_VERSION, Frame, FrameKind, PeerId, SignedFrame,
};
pub use replay::{REPLAY_WINDOW, ReplayGuard};
