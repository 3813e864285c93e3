//! The signed frame: `version ‖ kind ‖ seq ‖ payload ‖ signature`.
//!
//! The sequence number is little-endian; the payload runs to the signature, the last 64 bytes (a
//! frame is one transport message). The frame does not name its signer: the link does (the
//! relay's handle of the sending peer, a data channel's peer, a BroadcastChannel envelope), and
//! the receiver checks the signature against that claimed key. A false claim fails the check,
//! so a relay that relabels frames only drops them. The signature is Ed25519 over a domain
//! string and a BLAKE3 digest (keyed by that domain) of the room's id, the signer's key and
//! every byte before it, so a frame cannot be re-labelled as another kind, sender or sequence,
//! nor replayed into another room (the room is not on the wire). A frame sent to one peer is
//! *addressed* (the kind byte's high bit): its digest covers the recipient's key too, so a relay
//! cannot hand it to anyone else (a `Deltas` answer is computed against its recipient's digest:
//! applied by another peer it would erase what that peer holds and the sender did not send).
//! The digest is streamed over
//! the frame where it lies, so checking a frame copies none of it, and a decoded frame borrows
//! its payload from the received bytes.

use chrysalis_crypto::{ED25519_SIGNATURE_LEN, SigningKey, ed25519_verify};

use crate::SyncError;

/// The wire version of this build (6: digests and requests name a random ask that answers
/// echo; 5 matched answers by sequence number; 4 let a relay hand frames to one peer to another;
/// 3 carried the signer's 32-byte key and a payload length in every frame).
pub const FRAME_VERSION: u8 = 6;
/// Default largest frame a node accepts (1 MiB).
pub const DEFAULT_MAX_FRAME: usize = 1 << 20;
/// Header and signature bytes around the payload.
pub const FRAME_OVERHEAD: usize = HEADER + ED25519_SIGNATURE_LEN;
const HEADER: usize = 1 + 1 + 8;
const DOMAIN: &str = "chrysalis-sync frame v6";
/// The kind byte's flag for a frame addressed to one peer.
const ADDRESSED: u8 = 0x80;

/// A peer's identity: its Ed25519 public key.
pub type PeerId = [u8; 32];

/// A room as frames are bound to it: a BLAKE3 hash of its name ([`room_id`]).
pub type RoomId = [u8; 32];

/// The id of the room called `name`.
pub fn room_id(name: &str) -> RoomId {
    blake3::derive_key("chrysalis-sync room v1", name.as_bytes())
}

/// What a frame carries; the protocol layer gives each its payload format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameKind {
    /// Fresh deltas pushed to a few peers.
    Gossip,
    /// A summary of what the sender has (anti-entropy).
    Digest,
    /// A request for what the sender lacks.
    Request,
    /// Deltas answering a request.
    Deltas,
    /// Liveness and presence.
    Heartbeat,
    /// An application's message on a named channel (say a council's agreement), to one peer
    /// or to everyone; never stored nor forwarded.
    App,
}

impl FrameKind {
    fn to_byte(self) -> u8 {
        match self {
            FrameKind::Gossip => 1,
            FrameKind::Digest => 2,
            FrameKind::Request => 3,
            FrameKind::Deltas => 4,
            FrameKind::Heartbeat => 5,
            FrameKind::App => 6,
        }
    }

    fn from_byte(byte: u8) -> Result<Self, SyncError> {
        Ok(match byte {
            1 => FrameKind::Gossip,
            2 => FrameKind::Digest,
            3 => FrameKind::Request,
            4 => FrameKind::Deltas,
            5 => FrameKind::Heartbeat,
            6 => FrameKind::App,
            other => return Err(SyncError::UnknownKind(other)),
        })
    }
}

/// The content of a frame after verification, borrowing its payload from the received bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// What the payload is.
    pub kind: FrameKind,
    /// The signer's public key (the key the signature verified under).
    pub sender: PeerId,
    /// Whether the frame was addressed to the receiver alone (see [`SignedFrame::encode_to`]).
    pub addressed: bool,
    /// The sender's sequence number, increasing per sender. A node that restarts without its
    /// state should start above its old numbers (e.g. from the clock in microseconds), or peers
    /// refuse its frames as replays until they forget it.
    pub seq: u64,
    /// Opaque to this layer.
    pub payload: &'a [u8],
}

/// A frame whose signature has been checked: only [`SignedFrame::decode`] makes one from bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedFrame<'a> {
    frame: Frame<'a>,
}

impl<'a> SignedFrame<'a> {
    /// Signs `kind`, `seq` and `payload` as the holder of `key` in `room`, for whoever
    /// receives it; returns the wire bytes.
    pub fn encode(
        key: &SigningKey,
        room: &RoomId,
        kind: FrameKind,
        seq: u64,
        payload: &[u8],
    ) -> Vec<u8> {
        Self::sign(key, room, None, kind, seq, payload)
    }

    /// As [`SignedFrame::encode`], for peer `to` alone: it verifies nowhere else.
    pub fn encode_to(
        key: &SigningKey,
        room: &RoomId,
        to: &PeerId,
        kind: FrameKind,
        seq: u64,
        payload: &[u8],
    ) -> Vec<u8> {
        Self::sign(key, room, Some(to), kind, seq, payload)
    }

    fn sign(
        key: &SigningKey,
        room: &RoomId,
        to: Option<&PeerId>,
        kind: FrameKind,
        seq: u64,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(FRAME_OVERHEAD + payload.len());
        bytes.push(FRAME_VERSION);
        bytes.push(kind.to_byte() | if to.is_some() { ADDRESSED } else { 0 });
        bytes.extend_from_slice(&seq.to_le_bytes());
        bytes.extend_from_slice(payload);
        let signature = key.sign(&signed_digest(room, &key.public_key(), to, &bytes));
        bytes.extend_from_slice(&signature);
        bytes
    }

    /// The sequence number of what looks like a frame of this version, before any check of its
    /// signature: a receiver drops a replay unverified (nothing is believed from it but that
    /// the claimed signer's window already holds it).
    pub fn peek_seq(bytes: &[u8]) -> Option<u64> {
        match bytes {
            [FRAME_VERSION, _, seq @ ..] if bytes.len() >= FRAME_OVERHEAD => {
                Some(u64::from_le_bytes(seq.get(..8)?.try_into().ok()?))
            }
            _ => None,
        }
    }

    /// Checks size, version, kind and the signature of `bytes` as a frame that `sender` signed
    /// in `room` for everyone; `max` bounds the whole frame before anything is read. An
    /// addressed frame fails here: see [`SignedFrame::decode_at`].
    pub fn decode(
        bytes: &'a [u8],
        max: usize,
        room: &RoomId,
        sender: &PeerId,
    ) -> Result<Self, SyncError> {
        Self::decode_at(bytes, max, room, sender, None)
    }

    /// As [`SignedFrame::decode`] at peer `receiver` (when given), which also accepts a frame
    /// `sender` addressed to `receiver`.
    pub fn decode_at(
        bytes: &'a [u8],
        max: usize,
        room: &RoomId,
        sender: &PeerId,
        receiver: Option<&PeerId>,
    ) -> Result<Self, SyncError> {
        if bytes.len() > max {
            return Err(SyncError::Oversized {
                size: bytes.len(),
                limit: max,
            });
        }
        if let Some(&version) = bytes.first()
            && version != FRAME_VERSION
        {
            return Err(SyncError::BadVersion(version));
        }
        if bytes.len() < HEADER {
            return Err(SyncError::Truncated("header"));
        }
        if bytes.len() < FRAME_OVERHEAD {
            return Err(SyncError::Truncated("signature"));
        }
        let addressed = bytes[1] & ADDRESSED != 0;
        let kind = FrameKind::from_byte(bytes[1] & !ADDRESSED)?;
        let to = match (addressed, receiver) {
            (false, _) => None,
            (true, Some(receiver)) => Some(receiver),
            (true, None) => return Err(SyncError::BadSignature),
        };
        let seq = u64::from_le_bytes(
            bytes[2..HEADER]
                .try_into()
                .map_err(|_| SyncError::Truncated("seq"))?,
        );
        let (signed, signature) = bytes.split_at(bytes.len() - ED25519_SIGNATURE_LEN);
        if !ed25519_verify(sender, &signed_digest(room, sender, to, signed), signature) {
            return Err(SyncError::BadSignature);
        }
        Ok(SignedFrame {
            frame: Frame {
                kind,
                sender: *sender,
                addressed,
                seq,
                payload: &signed[HEADER..],
            },
        })
    }

    /// The verified content.
    pub fn frame(&self) -> &Frame<'a> {
        &self.frame
    }

    /// The verified content, taken.
    pub fn into_frame(self) -> Frame<'a> {
        self.frame
    }
}

/// What the signature covers: the domain string, then the domain-keyed BLAKE3 digest of the
/// room, the signer's key, the recipient's key if the frame is addressed, and the signed bytes
/// (hashed where they lie). The domain stays in the
/// signed message itself, so a signature the same key made over some other 32 bytes (an
/// application signing a peer's challenge with its identity) is never a frame's.
fn signed_digest(
    room: &RoomId,
    signer: &PeerId,
    to: Option<&PeerId>,
    header_and_payload: &[u8],
) -> [u8; DOMAIN.len() + 32] {
    let mut hasher = blake3::Hasher::new_derive_key(DOMAIN);
    hasher.update(room);
    hasher.update(signer);
    if let Some(to) = to {
        hasher.update(to);
    }
    hasher.update(header_and_payload);
    let mut message = [0; DOMAIN.len() + 32];
    message[..DOMAIN.len()].copy_from_slice(DOMAIN.as_bytes());
    message[DOMAIN.len()..].copy_from_slice(hasher.finalize().as_bytes());
    message
}
