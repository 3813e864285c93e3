//! The replication protocol of Chrysalis, sans-IO: it takes bytes and time and returns bytes to
//! send, so that transports only move bytes and simulations can drive many nodes in one test.
//!
//! - Every message between peers is a versioned, size-bounded envelope signed by the sender's
//!   Ed25519 identity ([`SignedFrame`]); a [`ReplayGuard`] refuses a frame seen before or too old
//!   to judge. Frames that fail are dropped, counted and scored against the peer, never trusted.
//! - A [`SyncNode`] holds named [`Document`]s (any delta-state CRDT), pushes fresh deltas to a
//!   bounded fan-out of peers, and runs periodic anti-entropy (digest of version vectors →
//!   request → the deltas the other side lacks), so a peer that was away catches up with only
//!   what it is missing. Peers that misbehave are scored down and banned.

mod document;
mod error;
mod frame;
mod message;
mod node;
mod replay;

pub use document::Document;
pub use error::SyncError;
pub use frame::{
    DEFAULT_MAX_FRAME, FRAME_OVERHEAD, FRAME_VERSION, Frame, FrameKind, PeerId, RoomId,
    SignedFrame, room_id,
};
pub use message::{MAX_DOC_NAME, MAX_DOCS_PER_FRAME};
pub use node::{
    Event, MAX_PEERS, MAX_SCORE, Output, PRESENCE_SKEW_MS, PeerInfo, Recipient, Stats, SyncConfig,
    SyncNode, Transmit,
};
pub use replay::{MAX_REMEMBERED_SENDERS, REPLAY_WINDOW, ReplayGuard};

/// The first 8 bytes of a peer id in hex: enough to tell peers apart in logs and the UI.
pub fn short_id(peer: &PeerId) -> String {
    peer[..8].iter().map(|b| format!("{b:02x}")).collect()
}
