//! The BroadcastChannel between tabs of one origin: its message format and its presence table.
//!
//! Any script of the origin can post on the channel, so nothing in a message is believed
//! unchecked: a hello or goodbye is a signed, dated presence frame that the sync node checks
//! ([`chrysalis_sync::SyncNode::check_presence`]), and a frame counts only if it verifies under
//! the key the envelope names ([`chrysalis_sync::SyncNode::handle_claimed`]).
//!
//! A message is `kind ‖ from(32) ‖ body`: `HELLO ‖ from ‖ presence`, `BYE ‖ from ‖ presence`,
//! `FRAME ‖ from ‖ frame` (for every tab) or `FRAME_TO ‖ from ‖ peer(32) ‖ frame` (for one tab;
//! the others drop it unread). The channel's name carries the frame version
//! ([`channel_name`]), so tabs of another version never read these messages.

use std::collections::BTreeMap;

use chrysalis_sync::PeerId;

/// How often a tab says hello (ms).
pub const HELLO_INTERVAL_MS: u64 = 2_000;
/// A tab not heard for this long is gone (ms).
pub const PRESENCE_TIMEOUT_MS: u64 = 6_000;
/// Tabs linked over the BroadcastChannel at most (each needs a signed hello).
pub const MAX_BROADCAST_PEERS: usize = 64;
/// Tabs that said goodbye whose last signed time is remembered (the oldest forgotten first),
/// so that their replayed hellos do not bring them back.
pub const MAX_DEPARTED: usize = 256;

const HELLO: u8 = 0;
const BYE: u8 = 1;
const FRAME: u8 = 2;
const FRAME_TO: u8 = 3;

/// The BroadcastChannel of room `room`.
pub fn channel_name(room: &str) -> String {
    format!("chrysalis-sync/v{}:{room}", chrysalis_sync::FRAME_VERSION)
}

/// A BroadcastChannel message, decoded (nothing in it is checked yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// The tab that claims to have signed the body.
    pub from: PeerId,
    /// What it carries.
    pub body: Body<'a>,
}

/// What an [`Envelope`] carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body<'a> {
    /// A presence frame: hello (`leaving` false) or goodbye.
    Presence {
        /// Whether it says goodbye.
        leaving: bool,
        /// The signed presence frame.
        frame: &'a [u8],
    },
    /// A sync frame for every tab, or for the tab `to`.
    Frame {
        /// The one recipient, if any.
        to: Option<PeerId>,
        /// The signed frame.
        frame: &'a [u8],
    },
}

impl<'a> Envelope<'a> {
    /// Decodes a message; `None` for anything that is not one.
    pub fn decode(bytes: &'a [u8]) -> Option<Self> {
        let (&kind, rest) = bytes.split_first()?;
        let (from, body) = split_key(rest)?;
        let body = match kind {
            HELLO | BYE => Body::Presence {
                leaving: kind == BYE,
                frame: body,
            },
            FRAME => Body::Frame {
                to: None,
                frame: body,
            },
            FRAME_TO => {
                let (to, frame) = split_key(body)?;
                Body::Frame {
                    to: Some(to),
                    frame,
                }
            }
            _ => return None,
        };
        Some(Envelope { from, body })
    }

    /// The message's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let (kind, to, frame) = match self.body {
            Body::Presence { leaving, frame } => (if leaving { BYE } else { HELLO }, None, frame),
            Body::Frame { to, frame } => (if to.is_some() { FRAME_TO } else { FRAME }, to, frame),
        };
        let mut bytes = Vec::with_capacity(1 + 64 + frame.len());
        bytes.push(kind);
        bytes.extend_from_slice(&self.from);
        if let Some(to) = to {
            bytes.extend_from_slice(&to);
        }
        bytes.extend_from_slice(frame);
        bytes
    }
}

/// A 32-byte key off the front of `bytes`, and the rest.
fn split_key(bytes: &[u8]) -> Option<(PeerId, &[u8])> {
    let (key, rest) = bytes.split_first_chunk::<32>()?;
    Some((*key, rest))
}

/// The tabs heard on the channel: when each was last heard here, and the signed time of its
/// last announcement. An announcement counts only if it is newer than the tab's last, so a
/// replayed hello or goodbye (however many other signers flood the channel) changes nothing.
#[derive(Debug, Default, Clone)]
pub struct Presence {
    /// Tab → (heard at, here; its last announcement's signed time).
    heard: BTreeMap<PeerId, (u64, u64)>,
    /// Tabs that left → the signed time of their goodbye.
    departed: BTreeMap<PeerId, u64>,
}

impl Presence {
    /// A checked hello from `peer`, signed at `at`, heard at `now`: whether it is a new tab
    /// (then answer with a hello). A replay or an older hello, or a new tab beyond
    /// [`MAX_BROADCAST_PEERS`], is ignored (`None`).
    pub fn hello(&mut self, now: u64, peer: PeerId, at: u64) -> Option<bool> {
        if self.departed.get(&peer).is_some_and(|left| at <= *left) {
            return None;
        }
        let fresh = match self.heard.get(&peer) {
            Some((_, last)) if at <= *last => return None,
            Some(_) => false,
            None if self.heard.len() >= MAX_BROADCAST_PEERS => return None,
            None => true,
        };
        self.departed.remove(&peer);
        self.heard.insert(peer, (now, at));
        Some(fresh)
    }

    /// A checked goodbye signed at `at`: whether the tab was linked (a replayed or older
    /// goodbye is ignored).
    pub fn bye(&mut self, peer: &PeerId, at: u64) -> bool {
        if self.heard.get(peer).is_none_or(|(_, last)| at <= *last) {
            return false;
        }
        self.heard.remove(peer);
        if self.departed.len() >= MAX_DEPARTED
            && let Some(oldest) = self
                .departed
                .iter()
                .min_by_key(|(_, t)| **t)
                .map(|(p, _)| *p)
        {
            self.departed.remove(&oldest);
        }
        self.departed.insert(*peer, at);
        true
    }

    /// Whether `peer` is linked over the channel.
    pub fn contains(&self, peer: &PeerId) -> bool {
        self.heard.contains_key(peer)
    }

    /// Forgets the tabs not heard since `now − PRESENCE_TIMEOUT_MS`; returns them.
    pub fn expire(&mut self, now: u64) -> Vec<PeerId> {
        let gone: Vec<PeerId> = self
            .heard
            .iter()
            .filter(|(_, (heard, _))| now.saturating_sub(*heard) > PRESENCE_TIMEOUT_MS)
            .map(|(peer, _)| *peer)
            .collect();
        for peer in &gone {
            self.heard.remove(peer);
        }
        gone
    }

    /// Forgets every tab; returns them.
    pub fn clear(&mut self) -> Vec<PeerId> {
        std::mem::take(&mut self.heard).into_keys().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip_and_junk_is_refused() {
        let (from, to) = ([3u8; 32], [7u8; 32]);
        for body in [
            Body::Presence {
                leaving: false,
                frame: b"hello",
            },
            Body::Presence {
                leaving: true,
                frame: b"bye",
            },
            Body::Frame {
                to: None,
                frame: b"frame",
            },
            Body::Frame {
                to: Some(to),
                frame: b"frame",
            },
        ] {
            let envelope = Envelope { from, body };
            assert_eq!(Envelope::decode(&envelope.encode()), Some(envelope));
        }
        assert_eq!(Envelope::decode(&[]), None);
        assert_eq!(Envelope::decode(&[9; 40]), None, "an unknown kind");
        assert_eq!(Envelope::decode(&[FRAME; 32]), None, "no sender");
        assert_eq!(
            Envelope::decode(&[FRAME_TO; 60]),
            None,
            "no whole recipient"
        );
    }

    #[test]
    fn presence_is_bounded_and_expires() {
        let mut presence = Presence::default();
        for i in 0..MAX_BROADCAST_PEERS {
            assert_eq!(presence.hello(0, [i as u8; 32], 1), Some(true));
        }
        assert_eq!(presence.hello(0, [255; 32], 1), None, "one tab too many");
        assert_eq!(presence.hello(5_000, [0; 32], 2), Some(false));
        let gone = presence.expire(PRESENCE_TIMEOUT_MS + 1);
        assert_eq!(gone.len(), MAX_BROADCAST_PEERS - 1);
        assert!(presence.contains(&[0; 32]));
        assert!(presence.bye(&[0; 32], 3));
        assert!(!presence.bye(&[0; 32], 4));
    }

    /// Regression (found attacking the Room): the replay guard that refused replayed
    /// announcements could be flushed by 4,096 fresh signers, after which a tab's old goodbye
    /// unlinked it again. Now each tab's last signed time decides.
    #[test]
    fn replayed_and_older_announcements_change_nothing() {
        let mut presence = Presence::default();
        let tab = [1; 32];
        assert_eq!(presence.hello(0, tab, 100), Some(true));
        assert_eq!(presence.hello(1, tab, 100), None, "a replayed hello");
        assert!(
            !presence.bye(&tab, 90),
            "an older goodbye (an earlier life of the tab)"
        );
        assert!(presence.contains(&tab));
        assert_eq!(presence.hello(2, tab, 200), Some(false));
        assert!(presence.bye(&tab, 300));
        assert_eq!(
            presence.hello(3, tab, 200),
            None,
            "a hello from before the goodbye"
        );
        assert!(!presence.contains(&tab));
        assert_eq!(presence.hello(4, tab, 400), Some(true), "the tab came back");
    }
}
