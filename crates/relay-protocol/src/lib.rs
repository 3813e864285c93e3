//! The relay's wire format, one WebSocket per peer.
//!
//! Control messages are JSON text frames (`type` names them); data are binary frames that the
//! relay never parses beyond a header:
//!
//! - relay → peer on connect: `{"type":"challenge","version":2,"nonce":"<64 hex>"}`;
//! - peer → relay: `{"type":"auth","version":2,"room":"…","peer":"<64 hex public key>",
//!   "signature":"<128 hex>"}`, an Ed25519 signature over [`auth_message`], in one WebSocket
//!   frame of at most [`MAX_AUTH_MESSAGE`] bytes; an answer of another version is refused with
//!   the code `VERSION`;
//! - relay → peer: `{"type":"welcome","peer":"…","handle":n,"peers":[{"peer":"…","handle":n}]}`,
//!   then `peer-joined` (`{"type":"peer-joined","peer":"…","handle":n}`) / `peer-left`
//!   (`{"type":"peer-left","peer":"…"}`) as the room changes. A handle is a small number the
//!   relay gives a peer in a room while it stays there, so frames name peers in a byte or two;
//! - peer → relay, binary: `0x00 ‖ frame` (to everyone in the room) or
//!   `0x01 ‖ handle ‖ frame` (to one peer); relay → peer, binary: `handle ‖ frame`, the handle
//!   of the authenticated sender. A handle is an unsigned LEB128 number of at most 5 bytes;
//! - WebRTC signalling, text: `{"type":"signal","to":"…","data":…}` arrives as
//!   `{"type":"signal","from":"…","data":…}`;
//! - relay → peer: `{"type":"error","code":"…","message":"…"}` before refusing or closing.
//!
//! A relay on Redis may keep each room's recent pushes (`--archive`): a peer that asks for it
//! (`"archive":true` in the auth answer) gets a welcome with `"archive":n` followed by `n`
//! binary messages `signer's key (32) ‖ frame`, and may then send `0x02 ‖ frame` (to everyone
//! and into the archive) or `0x03 ‖ frame` (into the archive only).
//!
//! Rooms may require a [`Capability`]: the auth answer then carries `"capability":"<hex>"`, and
//! a peer whose capability is read-only is announced with `"write":false` (in the welcome, the
//! `peers` list and `peer-joined`); the relay lets it send only what catching up needs
//! ([`read_only_may_send`]) and no signalling.
//!
//! Peers may spell ids in either hex case; the relay always shows them in lower case, so one key
//! is one peer.
//!
//! This crate is the one definition of that format: the relay server (`chrysalis-relay`) and the
//! peers' [`RelayClient`] (sans-IO: the pump opens the socket and hands over what arrives) both
//! use it.

pub mod bus;
mod capability;
mod client;

pub use capability::{
    Access, CAPABILITY_DOMAIN, CAPABILITY_VERSION, Capability, CapabilityRefusal, MAX_CAPABILITY,
    MIN_CAPABILITY,
};
pub use client::{
    BACKOFF_MAX_MS, BACKOFF_MIN_MS, MAX_CONTROL_MESSAGE, RelayClient, RelayEvent, RelayState,
    STABLE_SESSION_MS,
};

use serde::{Deserialize, Serialize};

/// A peer's id: its Ed25519 public key.
pub type PeerId = [u8; 32];

/// The protocol version in the challenge and the auth answer (2: peers named by handles in
/// binary frames; 1 named them by their 32-byte keys).
pub const PROTOCOL_VERSION: u32 = 2;
/// Domain string of the auth signature.
pub const AUTH_DOMAIN: &[u8] = b"chrysalis-relay auth v1";
/// The longest room name, in bytes.
pub const MAX_ROOM_NAME: usize = 128;
/// The largest auth answer, in bytes: a few hundred in practice, under 1 KiB even with a
/// longest room name escaped in JSON. Until a peer is authenticated the relay reads no more.
pub const MAX_AUTH_MESSAGE: usize = 4096;
/// Binary header: to every peer of the room.
pub const TO_EVERYONE: u8 = 0;
/// Binary header: to one peer, whose handle follows.
pub const TO_PEER: u8 = 1;
/// Binary header: to every peer of the room, and into the room's archive (only to a relay
/// whose welcome said it keeps one).
pub const TO_EVERYONE_AND_ARCHIVE: u8 = 2;
/// Binary header: into the room's archive only.
pub const TO_ARCHIVE: u8 = 3;
/// The most archived frames a client takes after a welcome.
pub const MAX_ARCHIVED: u32 = 65_536;

/// A peer's number in a room, given by the relay (see the module docs).
pub type Handle = u32;

/// The signed frame version ([`read_only_may_send`] reads): chrysalis-sync's `FRAME_VERSION`.
pub const SYNC_FRAME_VERSION: u8 = 6;

/// Whether a peer with read-only access may send `frame`: a signed sync frame of
/// [`SYNC_FRAME_VERSION`] whose kind only asks or announces, addressed or not: a digest (2), a
/// request (3) or a heartbeat (5). Pushes, answers with deltas, application messages and
/// frames of other versions are writes. The kind byte is signed and receivers dispatch on it,
/// so a frame labelled a digest cannot carry deltas.
pub fn read_only_may_send(frame: &[u8]) -> bool {
    matches!(frame, [SYNC_FRAME_VERSION, kind, ..] if matches!(kind & 0x7f, 2 | 3 | 5))
}

/// Appends `handle` as unsigned LEB128.
pub fn put_handle(out: &mut Vec<u8>, mut handle: Handle) {
    while handle >= 0x80 {
        out.push((handle as u8 & 0x7f) | 0x80);
        handle >>= 7;
    }
    out.push(handle as u8);
}

/// Reads a handle off the front of `bytes`: the handle and the rest, or `None` for anything
/// but the shortest encoding of a number that fits 32 bits.
pub fn take_handle(bytes: &[u8]) -> Option<(Handle, &[u8])> {
    let mut handle: u64 = 0;
    for (i, &byte) in bytes.iter().enumerate().take(5) {
        handle |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            let canonical = i == 0 || byte != 0;
            return (canonical && handle <= u64::from(Handle::MAX))
                .then(|| (handle as Handle, &bytes[i + 1..]));
        }
    }
    None
}

/// Whether a relay that keeps the room's archive takes `frame` into it: a push (kind 1, for
/// everyone) of [`SYNC_FRAME_VERSION`]; anything else would only cost the joiners.
pub fn archivable(frame: &[u8]) -> bool {
    matches!(frame, [SYNC_FRAME_VERSION, 1, ..])
}

/// A peer of the room as the relay announces it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomPeer {
    /// Its id (hex).
    pub peer: String,
    /// Its handle in the room.
    pub handle: Handle,
    /// Whether it may write (false: its capability is read-only; relays before capabilities
    /// sent nothing, which means true).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub write: bool,
}

fn yes() -> bool {
    true
}

fn is_true(value: &bool) -> bool {
    *value
}

/// What a peer signs to prove it holds the key of the id it claims: the domain, the relay's
/// nonce and the room, so a signature cannot be replayed to another relay session or room.
pub fn auth_message(nonce: &[u8], room: &str) -> Vec<u8> {
    [AUTH_DOMAIN, nonce, room.as_bytes()].concat()
}

/// Control messages from the relay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ServerMessage {
    /// Sent first: sign it.
    Challenge {
        /// [`PROTOCOL_VERSION`].
        version: u32,
        /// 32 random bytes in hex.
        nonce: String,
    },
    /// Authenticated: the peers already in the room.
    Welcome {
        /// The peer's own id, as the relay saw it.
        peer: String,
        /// The peer's own handle.
        handle: Handle,
        /// The others.
        peers: Vec<RoomPeer>,
        /// Whether this session may write (see [`RoomPeer::write`]).
        #[serde(default = "yes", skip_serializing_if = "is_true")]
        write: bool,
        /// Present when the relay keeps the room's archive (and the peer asked for it): how
        /// many archived frames follow, each a binary message `signer's key (32) ‖ frame`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        archive: Option<u32>,
    },
    /// A peer entered the room.
    PeerJoined {
        /// Its id.
        peer: String,
        /// Its handle while it stays.
        handle: Handle,
        /// Whether it may write (see [`RoomPeer::write`]).
        #[serde(default = "yes", skip_serializing_if = "is_true")]
        write: bool,
    },
    /// A peer's last connection to the room closed.
    PeerLeft {
        /// Its id.
        peer: String,
    },
    /// Signalling from another peer.
    Signal {
        /// The sender.
        from: String,
        /// Opaque to the relay.
        data: serde_json::Value,
    },
    /// A refusal.
    Error {
        /// Stable code (`"AUTH_FAILED"`, `"OVERSIZED"`, `"RATE_LIMITED"`, …).
        code: String,
        /// What was wrong.
        message: String,
    },
}

/// Control messages from a peer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ClientMessage {
    /// The answer to the challenge.
    Auth {
        /// [`PROTOCOL_VERSION`] (1 when absent: the first clients sent none).
        #[serde(default = "first_version")]
        version: u32,
        /// The room to join.
        room: String,
        /// The peer's Ed25519 public key, hex.
        peer: String,
        /// Signature over [`auth_message`], hex.
        signature: String,
        /// A [`Capability`] for this room and peer, hex, where the room requires one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        capability: Option<String>,
        /// The peer takes the room's archive after the welcome, if the relay keeps one.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        archive: bool,
    },
    /// Signalling for one peer.
    Signal {
        /// The recipient's id.
        to: String,
        /// Opaque to the relay.
        data: serde_json::Value,
    },
}

impl ServerMessage {
    /// An error message.
    pub fn error(code: &str, message: impl Into<String>) -> Self {
        ServerMessage::Error {
            code: code.to_owned(),
            message: message.into(),
        }
    }

    /// The JSON text.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).expect("control messages serialise")
    }
}

fn first_version() -> u32 {
    1
}

/// A peer id from its hex form.
pub fn parse_peer(hex_id: &str) -> Option<PeerId> {
    let bytes = hex::decode(hex_id).ok()?;
    bytes.try_into().ok()
}
