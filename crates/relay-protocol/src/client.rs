//! The peer's side of the relay protocol, sans-IO. The pump opens a WebSocket when the client's
//! state says so, calls [`RelayClient::opening`], and hands over every text and binary message
//! and the close; the client answers the challenge, tracks the room's peers, frames what is
//! sent, and schedules the reconnection (exponential backoff with full jitter).
//!
//! The relay is untrusted: a control message longer than [`MAX_CONTROL_MESSAGE`], malformed,
//! out of turn, or naming an invalid peer is ignored; a frame is accepted only from a handle the
//! relay announced in this session (and counts only if its signature verifies under that
//! handle's key, which the sync node checks).

use std::collections::{BTreeMap, BTreeSet};

use chrysalis_crypto::SigningKey;

use crate::{
    ClientMessage, Handle, MAX_ARCHIVED, MAX_ROOM_NAME, PROTOCOL_VERSION, PeerId, ServerMessage,
    TO_ARCHIVE, TO_EVERYONE, TO_EVERYONE_AND_ARCHIVE, TO_PEER, auth_message, parse_peer,
    put_handle, take_handle,
};

/// The first reconnection delay's ceiling (ms).
pub const BACKOFF_MIN_MS: u64 = 250;
/// The longest reconnection delay's ceiling (ms).
pub const BACKOFF_MAX_MS: u64 = 30_000;
/// A session must stay open this long (ms) before the backoff starts again from its first
/// step: a relay that welcomes and closes at once cannot make the client reconnect at 4 Hz.
pub const STABLE_SESSION_MS: u64 = 10_000;
/// The longest control message read from the relay (signalling carries SDP, a few KiB).
pub const MAX_CONTROL_MESSAGE: usize = 64 * 1024;
/// The most peers one relay session may announce (more are ignored).
const MAX_ROOM_PEERS: usize = 4096;

/// Where the client's connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayState {
    /// No socket: open one at `retry_at` (ms; 0 at first).
    Waiting {
        /// When to open the next socket.
        retry_at: u64,
    },
    /// A socket is open and authenticating.
    Connecting,
    /// Authenticated: frames flow.
    Open,
}

/// What the client asks of its runtime, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum RelayEvent {
    /// Send this text message on the socket.
    SendText(String),
    /// Authenticated (the peers already in the room follow as [`RelayEvent::PeerJoined`]).
    Opened,
    /// A peer is reachable through the relay.
    PeerJoined(PeerId),
    /// A peer is no longer reachable through the relay.
    PeerLeft(PeerId),
    /// WebRTC signalling from a peer of the room (opaque to the relay).
    Signal {
        /// The sender.
        from: PeerId,
        /// What it sent.
        data: serde_json::Value,
    },
    /// The relay refused something (it may close the socket next).
    Refused {
        /// Its stable code.
        code: String,
        /// Its explanation.
        message: String,
    },
}

/// One peer's relay session for one room, across reconnections.
#[derive(Debug, Clone)]
pub struct RelayClient {
    room: String,
    me: PeerId,
    state: RelayState,
    attempt: u32,
    /// The room's peers by id and by handle (the same pairs).
    peers: BTreeMap<PeerId, Handle>,
    handles: BTreeMap<Handle, PeerId>,
    /// The room's peers the relay announced as read-only.
    readers: BTreeSet<PeerId>,
    /// Whether this session may write (false when welcomed with a read-only capability).
    write: bool,
    /// The capability presented at each authentication, hex.
    capability: Option<String>,
    /// Whether the relay keeps the room's archive (said in this session's welcome).
    archives: bool,
    /// Archived frames still to come after the welcome.
    archived_left: u32,
    ignored: u64,
    /// When the current session was welcomed.
    opened_at: Option<u64>,
}

impl RelayClient {
    /// A client of `room` (1 to [`MAX_ROOM_NAME`] bytes) for the peer whose key is `me`.
    pub fn new(room: &str, me: PeerId) -> Option<Self> {
        (!room.is_empty() && room.len() <= MAX_ROOM_NAME).then(|| RelayClient {
            room: room.to_owned(),
            me,
            state: RelayState::Waiting { retry_at: 0 },
            attempt: 0,
            peers: BTreeMap::new(),
            handles: BTreeMap::new(),
            readers: BTreeSet::new(),
            write: true,
            capability: None,
            archives: false,
            archived_left: 0,
            ignored: 0,
            opened_at: None,
        })
    }

    /// Where the connection stands.
    pub fn state(&self) -> RelayState {
        self.state
    }

    /// The peers reachable through the relay now.
    pub fn peers(&self) -> impl Iterator<Item = &PeerId> {
        self.peers.keys()
    }

    /// Whether the relay lets this peer write (false after a welcome with a read-only
    /// capability: only digests, requests and heartbeats pass).
    pub fn may_write(&self) -> bool {
        self.write
    }

    /// Whether the relay announced `peer` as able to write (read-only peers are not signalled).
    pub fn peer_may_write(&self, peer: &PeerId) -> bool {
        !self.readers.contains(peer)
    }

    /// The capability (hex, see [`crate::Capability`]) to present from the next authentication
    /// on, or none.
    pub fn set_capability(&mut self, capability: Option<String>) {
        self.capability = capability;
    }

    /// Control messages ignored so far (oversized, malformed, out of turn, bad ids).
    pub fn ignored(&self) -> u64 {
        self.ignored
    }

    /// The pump opened a socket.
    pub fn opening(&mut self) {
        self.state = RelayState::Connecting;
    }

    /// Handles a text message from the relay at `now` (ms); `key` (whose public key is `me`)
    /// answers the challenge.
    pub fn handle_text(&mut self, now: u64, key: &SigningKey, text: &str) -> Vec<RelayEvent> {
        let message = (text.len() <= MAX_CONTROL_MESSAGE)
            .then(|| serde_json::from_str::<ServerMessage>(text).ok())
            .flatten();
        let events = match (message, self.state) {
            (Some(ServerMessage::Challenge { version, nonce }), RelayState::Connecting) => {
                self.answer(key, version, &nonce)
            }
            (
                Some(ServerMessage::Welcome {
                    peers,
                    write,
                    archive,
                    ..
                }),
                RelayState::Connecting,
            ) => {
                self.state = RelayState::Open;
                self.opened_at = Some(now);
                self.write = write;
                self.archives = archive.is_some();
                self.archived_left = archive.unwrap_or(0).min(MAX_ARCHIVED);
                let mut events = vec![RelayEvent::Opened];
                events.extend(
                    peers
                        .iter()
                        .filter_map(|p| self.join(&p.peer, p.handle, p.write)),
                );
                Some(events)
            }
            (
                Some(ServerMessage::PeerJoined {
                    peer,
                    handle,
                    write,
                }),
                RelayState::Open,
            ) => Some(self.join(&peer, handle, write).into_iter().collect()),
            (Some(ServerMessage::PeerLeft { peer }), RelayState::Open) => {
                let peer = parse_peer(&peer).filter(|p| match self.peers.remove(p) {
                    Some(handle) => {
                        self.readers.remove(p);
                        self.handles.remove(&handle).is_some()
                    }
                    None => false,
                });
                Some(peer.map(RelayEvent::PeerLeft).into_iter().collect())
            }
            (Some(ServerMessage::Signal { from, data }), RelayState::Open) => {
                let from = parse_peer(&from).filter(|p| self.peers.contains_key(p));
                from.map(|from| vec![RelayEvent::Signal { from, data }])
            }
            (Some(ServerMessage::Error { code, message }), _) => {
                Some(vec![RelayEvent::Refused { code, message }])
            }
            _ => None,
        };
        events.unwrap_or_else(|| {
            self.ignored += 1;
            Vec::new()
        })
    }

    /// The challenge's answer, or nothing for a version or nonce this client does not speak.
    fn answer(&mut self, key: &SigningKey, version: u32, nonce: &str) -> Option<Vec<RelayEvent>> {
        if version != PROTOCOL_VERSION {
            return Some(vec![RelayEvent::Refused {
                code: "VERSION".into(),
                message: format!(
                    "the relay speaks version {version}, this client {PROTOCOL_VERSION}"
                ),
            }]);
        }
        let nonce: [u8; 32] = hex::decode(nonce).ok()?.try_into().ok()?;
        let auth = ClientMessage::Auth {
            version: PROTOCOL_VERSION,
            room: self.room.clone(),
            peer: hex::encode(self.me),
            signature: hex::encode(key.sign(&auth_message(&nonce, &self.room))),
            capability: self.capability.clone(),
            archive: true,
        };
        Some(vec![RelayEvent::SendText(
            serde_json::to_string(&auth).expect("control messages serialise"),
        )])
    }

    /// A peer the relay announced with its handle and access (a second peer on a taken
    /// handle, or a peer announced twice, is ignored).
    fn join(&mut self, peer: &str, handle: Handle, write: bool) -> Option<RelayEvent> {
        let peer = parse_peer(peer).filter(|p| *p != self.me)?;
        let fresh = self.peers.len() < MAX_ROOM_PEERS
            && !self.peers.contains_key(&peer)
            && !self.handles.contains_key(&handle);
        fresh.then(|| {
            self.peers.insert(peer, handle);
            self.handles.insert(handle, peer);
            if !write {
                self.readers.insert(peer);
            }
            RelayEvent::PeerJoined(peer)
        })
    }

    /// Whether the relay keeps the room's archive (this session's welcome said so): frames
    /// may then go into it with [`RelayClient::to_archive`].
    pub fn archives(&self) -> bool {
        self.archives
    }

    /// Whether the next binary message is one of the archived frames the welcome announced.
    pub fn expects_archived(&self) -> bool {
        self.state == RelayState::Open && self.archived_left > 0
    }

    /// One of the archived frames after the welcome (`signer ‖ frame`): the key the relay
    /// says signed it and the frame, whose signature the sync node checks.
    pub fn take_archived<'a>(&mut self, bytes: &'a [u8]) -> Option<(PeerId, &'a [u8])> {
        if !self.expects_archived() {
            return None;
        }
        self.archived_left -= 1;
        let (signer, frame) = bytes.split_first_chunk::<32>()?;
        (!frame.is_empty()).then_some((*signer, frame))
    }

    /// A binary message from the relay (`handle ‖ frame`): the peer the relay says sent it
    /// and the frame, if the session is open and the handle one the relay announced.
    pub fn handle_binary<'a>(&self, bytes: &'a [u8]) -> Option<(PeerId, &'a [u8])> {
        if self.state != RelayState::Open || self.archived_left > 0 {
            return None;
        }
        let (handle, frame) = take_handle(bytes)?;
        let peer = self.handles.get(&handle)?;
        (!frame.is_empty()).then_some((*peer, frame))
    }

    /// The socket closed (or failed to open) at `now` (ms): every relay peer is lost, and the
    /// next socket opens after a delay drawn from `random` below a ceiling that doubles with
    /// each attempt, from [`BACKOFF_MIN_MS`] to [`BACKOFF_MAX_MS`], and starts again only
    /// after a session that lasted [`STABLE_SESSION_MS`].
    pub fn closed(&mut self, now: u64, random: u64) -> Vec<RelayEvent> {
        if self
            .opened_at
            .take()
            .is_some_and(|at| now.saturating_sub(at) >= STABLE_SESSION_MS)
        {
            self.attempt = 0;
        }
        let ceiling = BACKOFF_MIN_MS
            .saturating_mul(1 << self.attempt.min(16))
            .min(BACKOFF_MAX_MS);
        self.attempt = self.attempt.saturating_add(1);
        self.state = RelayState::Waiting {
            retry_at: now + random % ceiling,
        };
        self.handles.clear();
        self.readers.clear();
        self.write = true;
        self.archives = false;
        self.archived_left = 0;
        std::mem::take(&mut self.peers)
            .into_keys()
            .map(RelayEvent::PeerLeft)
            .collect()
    }

    /// A frame for every peer of the room.
    pub fn to_everyone(frame: &[u8]) -> Vec<u8> {
        [&[TO_EVERYONE][..], frame].concat()
    }

    /// A frame for the room's archive (and for every peer too, if `everyone`), if the relay
    /// keeps one.
    pub fn to_archive(&self, frame: &[u8], everyone: bool) -> Option<Vec<u8>> {
        let header = if everyone {
            TO_EVERYONE_AND_ARCHIVE
        } else {
            TO_ARCHIVE
        };
        self.archives.then(|| [&[header][..], frame].concat())
    }

    /// A frame for one peer, if the relay announced it in this session.
    pub fn to_peer(&self, peer: &PeerId, frame: &[u8]) -> Option<Vec<u8>> {
        let handle = *self.peers.get(peer)?;
        let mut bytes = Vec::with_capacity(6 + frame.len());
        bytes.push(TO_PEER);
        put_handle(&mut bytes, handle);
        bytes.extend_from_slice(frame);
        Some(bytes)
    }

    /// WebRTC signalling for `to`, as the text to send (nothing unless the session is open).
    pub fn signal(&self, to: &PeerId, data: serde_json::Value) -> Option<String> {
        (self.state == RelayState::Open).then(|| {
            serde_json::to_string(&ClientMessage::Signal {
                to: hex::encode(to),
                data,
            })
            .expect("control messages serialise")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RoomPeer;

    fn room_peer(peer: impl AsRef<[u8]>, handle: Handle) -> RoomPeer {
        RoomPeer {
            peer: hex::encode(peer),
            handle,
            write: true,
        }
    }

    fn key(n: u8) -> SigningKey {
        SigningKey::from_seed(&[n; 32]).unwrap()
    }

    fn open_client() -> (RelayClient, SigningKey) {
        let me = key(1);
        let mut client = RelayClient::new("room", me.public_key()).unwrap();
        client.opening();
        let nonce = [9u8; 32];
        let challenge = ServerMessage::Challenge {
            version: PROTOCOL_VERSION,
            nonce: hex::encode(nonce),
        };
        let events = client.handle_text(0, &me, &challenge.to_text());
        let [RelayEvent::SendText(auth)] = &events[..] else {
            panic!("{events:?}");
        };
        let Ok(ClientMessage::Auth {
            version: PROTOCOL_VERSION,
            room,
            peer,
            signature,
            capability: None,
            archive: true,
        }) = serde_json::from_str(auth)
        else {
            panic!("{auth}");
        };
        assert_eq!(
            (room.as_str(), peer),
            ("room", hex::encode(me.public_key()))
        );
        assert!(chrysalis_crypto::ed25519_verify(
            &me.public_key(),
            &auth_message(&nonce, "room"),
            &hex::decode(signature).unwrap()
        ));
        let welcome = ServerMessage::Welcome {
            peer: hex::encode(me.public_key()),
            handle: 0,
            peers: vec![
                room_peer(key(2).public_key(), 2),
                room_peer(me.public_key(), 0),
                RoomPeer {
                    peer: "not hex".into(),
                    handle: 7,
                    write: true,
                },
                room_peer(key(6).public_key(), 2),
            ],
            write: true,
            archive: None,
        };
        let events = client.handle_text(0, &me, &welcome.to_text());
        assert_eq!(
            events,
            vec![
                RelayEvent::Opened,
                RelayEvent::PeerJoined(key(2).public_key())
            ],
            "itself, bad ids and a taken handle are not peers"
        );
        (client, me)
    }

    #[test]
    fn the_client_authenticates_tracks_peers_and_frames() {
        let (mut client, me) = open_client();
        assert_eq!(client.state(), RelayState::Open);
        let (two, three) = (key(2).public_key(), key(3).public_key());
        let joined = ServerMessage::PeerJoined {
            peer: hex::encode(three).to_uppercase(),
            handle: 300,
            write: true,
        };
        assert_eq!(
            client.handle_text(0, &me, &joined.to_text()),
            vec![RelayEvent::PeerJoined(three)]
        );
        assert_eq!(
            client.handle_text(0, &me, &joined.to_text()),
            vec![],
            "once"
        );
        assert_eq!(
            client.handle_binary(b"\x02frame"),
            Some((two, &b"frame"[..]))
        );
        assert_eq!(
            client.handle_binary(b"\xac\x02frame"),
            Some((three, &b"frame"[..])),
            "handle 300 in two bytes"
        );
        assert_eq!(client.handle_binary(b"\x04frame"), None, "unannounced");
        assert_eq!(
            client.handle_binary(b"\x82\x00frame"),
            None,
            "not canonical"
        );
        assert_eq!(client.handle_binary(b"\x02"), None, "no frame");
        assert_eq!(RelayClient::to_everyone(b"f"), [TO_EVERYONE, b'f']);
        assert_eq!(
            client.to_peer(&three, b"f"),
            Some(vec![TO_PEER, 0xac, 2, b'f'])
        );
        assert_eq!(client.to_peer(&key(4).public_key(), b"f"), None);
        let left = ServerMessage::PeerLeft {
            peer: hex::encode(two),
        };
        assert_eq!(
            client.handle_text(0, &me, &left.to_text()),
            vec![RelayEvent::PeerLeft(two)]
        );
        let signal = ServerMessage::Signal {
            from: hex::encode(two),
            data: serde_json::json!({ "kind": "candidate" }),
        };
        assert_eq!(
            client.handle_text(0, &me, &signal.to_text()),
            vec![],
            "not a peer now"
        );
        assert!(client.signal(&three, serde_json::json!(1)).is_some());
    }

    #[test]
    fn the_capability_is_presented_and_read_only_access_is_tracked() {
        let me = key(1);
        let mut client = RelayClient::new("room", me.public_key()).unwrap();
        client.set_capability(Some("c0ffee".into()));
        client.opening();
        let challenge = ServerMessage::Challenge {
            version: PROTOCOL_VERSION,
            nonce: hex::encode([9u8; 32]),
        };
        let [RelayEvent::SendText(auth)] = &client.handle_text(0, &me, &challenge.to_text())[..]
        else {
            panic!("expected the answer");
        };
        let Ok(ClientMessage::Auth { capability, .. }) = serde_json::from_str(auth) else {
            panic!("{auth}");
        };
        assert_eq!(capability.as_deref(), Some("c0ffee"));
        let reader = RoomPeer {
            write: false,
            ..room_peer(key(2).public_key(), 2)
        };
        let welcome = ServerMessage::Welcome {
            peer: String::new(),
            handle: 0,
            peers: vec![reader, room_peer(key(3).public_key(), 3)],
            write: false,
            archive: None,
        };
        client.handle_text(0, &me, &welcome.to_text());
        assert!(!client.may_write());
        assert!(!client.peer_may_write(&key(2).public_key()));
        assert!(client.peer_may_write(&key(3).public_key()));
        let joined = ServerMessage::PeerJoined {
            peer: hex::encode(key(4).public_key()),
            handle: 4,
            write: false,
        };
        client.handle_text(0, &me, &joined.to_text());
        assert!(!client.peer_may_write(&key(4).public_key()));
        client.closed(0, 0);
        assert!(client.may_write(), "until the next welcome says otherwise");
        assert!(client.peer_may_write(&key(2).public_key()));
    }

    #[test]
    fn hostile_control_messages_are_ignored() {
        let (mut client, me) = open_client();
        let before: Vec<PeerId> = client.peers().copied().collect();
        for text in [
            "{".to_string(),
            "x".repeat(MAX_CONTROL_MESSAGE + 1),
            ServerMessage::Challenge {
                version: PROTOCOL_VERSION,
                nonce: hex::encode([1u8; 32]),
            }
            .to_text(), // out of turn: the session is open
            ServerMessage::Welcome {
                peer: String::new(),
                handle: 0,
                peers: vec![room_peer(key(5).public_key(), 5)],
                write: true,
                archive: None,
            }
            .to_text(),
        ] {
            assert_eq!(client.handle_text(0, &me, &text), vec![]);
        }
        assert_eq!(client.ignored(), 4);
        assert_eq!(client.peers().copied().collect::<Vec<_>>(), before);
    }

    #[test]
    fn reconnection_backs_off_with_jitter_and_resets_once_welcomed() {
        let (mut client, _) = open_client();
        let lost = client.closed(1_000, 0);
        assert_eq!(lost, vec![RelayEvent::PeerLeft(key(2).public_key())]);
        assert_eq!(client.state(), RelayState::Waiting { retry_at: 1_000 });
        assert_eq!(client.peers().count(), 0);
        // The ceiling doubles from 500 (the second attempt) and stops at BACKOFF_MAX_MS; a
        // draw is taken modulo the ceiling.
        for ceiling in [500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000] {
            let mut probe = client.clone();
            probe.closed(0, ceiling);
            assert_eq!(probe.state(), RelayState::Waiting { retry_at: 0 });
            client.closed(0, ceiling - 1);
            assert_eq!(
                client.state(),
                RelayState::Waiting {
                    retry_at: ceiling - 1
                }
            );
        }
        // Regression (found attacking the Room): every welcome reset the backoff, so a relay
        // that welcomed and closed at once had the client reconnect within 250 ms forever.
        // Only a session that lasted STABLE_SESSION_MS starts the backoff again.
        let (mut client, me) = open_client();
        let welcome_at = |client: &mut RelayClient, now: u64| {
            client.opening();
            let challenge = ServerMessage::Challenge {
                version: PROTOCOL_VERSION,
                nonce: hex::encode([3u8; 32]),
            };
            client.handle_text(now, &me, &challenge.to_text());
            let welcome = ServerMessage::Welcome {
                peer: String::new(),
                handle: 0,
                peers: vec![],
                write: true,
                archive: None,
            };
            client.handle_text(now, &me, &welcome.to_text());
            assert_eq!(client.state(), RelayState::Open);
        };
        client.closed(100, 249); // the first attempt: ceiling 250
        welcome_at(&mut client, 200);
        client.closed(300, 499);
        assert_eq!(
            client.state(),
            RelayState::Waiting { retry_at: 799 },
            "a short session does not reset: ceiling 500"
        );
        welcome_at(&mut client, 1_000);
        client.closed(1_000 + STABLE_SESSION_MS, 249);
        assert_eq!(
            client.state(),
            RelayState::Waiting {
                retry_at: 1_000 + STABLE_SESSION_MS + 249
            },
            "a lasting session resets: ceiling 250"
        );
    }
}
