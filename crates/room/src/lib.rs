//! The agent runtime, sans-IO: a [`Room`] owns everything one agent does in one room — its
//! replication node ([`chrysalis_sync::SyncNode`]), its links (the relay WebSocket, a WebRTC data
//! channel per peer, the BroadcastChannel between tabs), the relay client protocol and presence —
//! and decides every step: which link a frame takes, when to reconnect, who offers a data
//! channel, which tabs are present. Like quinn-proto and str0m, it does no I/O: the pump (the
//! page's or Node's JavaScript) feeds it what happened (a link opened or closed, bytes or text
//! arrived, a timer fired) and carries out what [`Room::poll_output`] returns (open a link, send
//! bytes, hand over signalling, report an event), then calls back at [`Room::timeout`].
//!
//! A room also hosts agent memories ([`Room::open_memory`]): the memory is a replicated
//! document, and the room keeps its journal, snapshots and council log through storage writes
//! the pump makes durable, and runs its council's agreement over the sync layer's application
//! channel.

pub mod broadcast;
mod error;
mod memory;
mod room;

pub use error::RoomError;
pub use memory::{CouncilEvent, MAX_REQUESTED, MOTION_NONCE, MemoryOptions, StorageWrite, Stored};
pub use room::{
    LinkId, LinkKind, MAX_DATA_CHANNEL_MESSAGE, MAX_RELAY_URL, MAX_RELAYS, Output, Room,
    RoomConfig, RoomEvent, Traffic,
};
