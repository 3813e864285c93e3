//! What relays that share rooms through Redis tell each other on a room's pub/sub channel: a peer
//! joined or left one relay, a frame or a signal for peers held by another. Flat binary, all
//! integers little-endian:
//!
//! ```text
//! 0   1   version (1)
//! 1   1   kind: 1 joined, 2 left, 3 frame, 4 signal
//! 2   16  origin: the relay that published it
//! 18  …   joined: peer(32) ‖ handle(4) ‖ write(1: 0 or 1)
//!         left:   peer(32)
//!         frame:  sender's handle(4) ‖ to(1: 0 everyone, 1 one peer) ‖ [handle(4)] ‖ frame
//!         signal: from(32) ‖ to(32) ‖ the signal's JSON data
//! ```
//!
//! Redis is trusted like a relay (it could mislabel handles, never forge peers' signed frames),
//! but a message is still decoded into bounded, checked fields and anything else is refused.

use crate::{Handle, PeerId};

/// The bus format's version.
pub const BUS_VERSION: u8 = 1;
/// A relay's id on the bus: random, drawn at start.
pub type RelayId = [u8; 16];
/// Bytes before a message's body.
const HEAD: usize = 18;

/// One message on a room's channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusMessage<'a> {
    /// `peer` holds a connection to the room on the origin relay (its first there).
    Joined {
        /// The peer.
        peer: PeerId,
        /// Its handle in the room (the same on every relay).
        handle: Handle,
        /// Whether it may write.
        write: bool,
    },
    /// `peer`'s last connection to the room on the origin relay closed.
    Left {
        /// The peer.
        peer: PeerId,
    },
    /// A frame a peer of the origin relay sent, for the peers of other relays.
    Frame {
        /// The sender's handle.
        from: Handle,
        /// One peer's handle, or everyone but the sender.
        to: Option<Handle>,
        /// The frame, opaque.
        frame: &'a [u8],
    },
    /// WebRTC signalling between two peers of the room.
    Signal {
        /// The sender.
        from: PeerId,
        /// The recipient.
        to: PeerId,
        /// The JSON data, opaque.
        data: &'a [u8],
    },
}

impl BusMessage<'_> {
    /// The bytes published by relay `origin`.
    pub fn encode(&self, origin: &RelayId) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEAD + 80);
        out.push(BUS_VERSION);
        out.push(match self {
            BusMessage::Joined { .. } => 1,
            BusMessage::Left { .. } => 2,
            BusMessage::Frame { .. } => 3,
            BusMessage::Signal { .. } => 4,
        });
        out.extend_from_slice(origin);
        match self {
            BusMessage::Joined {
                peer,
                handle,
                write,
            } => {
                out.extend_from_slice(peer);
                out.extend_from_slice(&handle.to_le_bytes());
                out.push(u8::from(*write));
            }
            BusMessage::Left { peer } => out.extend_from_slice(peer),
            BusMessage::Frame { from, to, frame } => {
                out.extend_from_slice(&from.to_le_bytes());
                match to {
                    None => out.push(0),
                    Some(to) => {
                        out.push(1);
                        out.extend_from_slice(&to.to_le_bytes());
                    }
                }
                out.extend_from_slice(frame);
            }
            BusMessage::Signal { from, to, data } => {
                out.extend_from_slice(from);
                out.extend_from_slice(to);
                out.extend_from_slice(data);
            }
        }
        out
    }

    /// The origin and the message, or `None` for anything but a well-formed message of this
    /// version no longer than `max` bytes.
    pub fn decode(bytes: &[u8], max: usize) -> Option<(RelayId, BusMessage<'_>)> {
        if bytes.len() < HEAD || bytes.len() > max || bytes[0] != BUS_VERSION {
            return None;
        }
        let origin: RelayId = bytes[2..HEAD].try_into().ok()?;
        let body = &bytes[HEAD..];
        let key = |at: usize| -> Option<PeerId> { body.get(at..at + 32)?.try_into().ok() };
        let number = |at: usize| -> Option<Handle> {
            Some(Handle::from_le_bytes(
                body.get(at..at + 4)?.try_into().ok()?,
            ))
        };
        let message = match bytes[1] {
            1 if body.len() == 37 && body[36] <= 1 => BusMessage::Joined {
                peer: key(0)?,
                handle: number(32)?,
                write: body[36] == 1,
            },
            2 if body.len() == 32 => BusMessage::Left { peer: key(0)? },
            3 => {
                let from = number(0)?;
                let (to, frame) = match body.get(4)? {
                    0 => (None, &body[5..]),
                    1 => (Some(number(5)?), &body[9..]),
                    _ => return None,
                };
                if frame.is_empty() {
                    return None;
                }
                BusMessage::Frame { from, to, frame }
            }
            4 if body.len() > 64 => BusMessage::Signal {
                from: key(0)?,
                to: key(32)?,
                data: &body[64..],
            },
            _ => return None,
        };
        Some((origin, message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_malformed_ones_are_refused() {
        let origin = [7; 16];
        let messages = [
            BusMessage::Joined {
                peer: [1; 32],
                handle: 300,
                write: false,
            },
            BusMessage::Left { peer: [2; 32] },
            BusMessage::Frame {
                from: 3,
                to: None,
                frame: b"frame",
            },
            BusMessage::Frame {
                from: 3,
                to: Some(u32::MAX),
                frame: b"f",
            },
            BusMessage::Signal {
                from: [4; 32],
                to: [5; 32],
                data: b"{}",
            },
        ];
        for message in &messages {
            let bytes = message.encode(&origin);
            assert_eq!(
                BusMessage::decode(&bytes, 1024),
                Some((origin, message.clone()))
            );
            assert_eq!(
                BusMessage::decode(&bytes, bytes.len() - 1),
                None,
                "too long"
            );
            let mut other = bytes.clone();
            other[0] = 2;
            assert_eq!(BusMessage::decode(&other, 1024), None, "another version");
            for cut in HEAD..bytes.len() {
                if let Some((_, shorter)) = BusMessage::decode(&bytes[..cut], 1024) {
                    // Only a frame or a signal may be cut and stay well formed (a shorter body).
                    assert!(matches!(
                        shorter,
                        BusMessage::Frame { .. } | BusMessage::Signal { .. }
                    ));
                }
            }
        }
        let mut joined = messages[0].encode(&origin);
        *joined.last_mut().unwrap() = 2;
        assert_eq!(BusMessage::decode(&joined, 1024), None, "write is 0 or 1");
        let mut kind = messages[1].encode(&origin);
        kind[1] = 9;
        assert_eq!(BusMessage::decode(&kind, 1024), None, "unknown kind");
        let empty = BusMessage::Frame {
            from: 1,
            to: None,
            frame: b"",
        };
        assert_eq!(BusMessage::decode(&empty.encode(&origin), 1024), None);
    }
}
