//! The [`Room`] state machine: links, routing, the relay client, presence, and the sync node.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use chrysalis_crypto::SigningKey;
use chrysalis_relay_protocol::{RelayClient, RelayEvent, RelayState};
use chrysalis_sync::{
    Document, Event, Output as SyncOutput, PeerId, PeerInfo, Recipient, SyncConfig, SyncNode,
};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use crate::RoomError;
use crate::broadcast::{Body, Envelope, HELLO_INTERVAL_MS, Presence, channel_name};
use crate::memory::{CouncilEvent, Host, StorageWrite};
use chrysalis_memory::MemoryChange;

/// Frames above this go through the relay rather than a data channel (SCTP message limits).
pub const MAX_DATA_CHANNEL_MESSAGE: usize = 200_000;
/// Data channels at most (a browser caps its peer connections).
pub const MAX_DATA_CHANNELS: usize = 64;
/// Data channels still opening at most.
pub const MAX_OPENING_DATA_CHANNELS: usize = 8;
/// A data channel not open after this long is closed (ms).
pub const DATA_CHANNEL_OPEN_TIMEOUT_MS: u64 = 30_000;
/// The most relay URLs a room takes.
pub const MAX_RELAYS: usize = 16;
/// The longest relay URL, in bytes.
pub const MAX_RELAY_URL: usize = 2048;

/// A link the room asked its pump to open (ids are never reused within a room).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinkId(pub u32);

/// What a link is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LinkKind {
    /// The relay's WebSocket (every relay peer of the room over one link).
    Relay,
    /// A WebRTC data channel to one peer.
    WebRtc,
    /// The BroadcastChannel between tabs of one origin.
    Broadcast,
}

impl LinkKind {
    /// Its name in events and statistics: `"relay"`, `"webrtc"` or `"broadcast"`.
    pub fn name(self) -> &'static str {
        match self {
            LinkKind::Relay => "relay",
            LinkKind::WebRtc => "webrtc",
            LinkKind::Broadcast => "broadcast",
        }
    }
}

/// Which links a room uses, and its replication settings (`sync.room` is the room's name).
#[derive(Debug, Clone, Default)]
pub struct RoomConfig {
    /// The replication node's settings; `room` names the room (1 to 128 bytes).
    pub sync: SyncConfig,
    /// The relays' WebSocket URLs (`ws://` or `wss://`, at most [`MAX_RELAYS`]); none: no
    /// relay. The room starts at one drawn at random and moves to the next whenever its socket
    /// closes, so peers spread over the relays and leave one that goes away.
    pub relays: Vec<String>,
    /// A capability (hex, from the room's issuer) presented to the relays, where the room
    /// requires one.
    pub capability: Option<String>,
    /// Open WebRTC data channels to relay peers (needs the relay for signalling).
    pub webrtc: bool,
    /// Use the BroadcastChannel between tabs.
    pub broadcast: bool,
}

/// What the pump must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Open a WebSocket to the relay at `url` as `link`; report [`Room::link_opened`] or
    /// [`Room::link_closed`].
    OpenRelay {
        /// The link.
        link: LinkId,
        /// One of [`RoomConfig::relays`].
        url: String,
    },
    /// Open a peer connection with a data channel to `peer` as `link` (`initiator`: this side
    /// creates the channel and the offer); pass its local signalling to
    /// [`Room::local_signal`].
    OpenDataChannel {
        /// The link.
        link: LinkId,
        /// The peer.
        peer: PeerId,
        /// Whether this side offers.
        initiator: bool,
    },
    /// Open the BroadcastChannel `name` as `link` (it is open at once: report it).
    OpenBroadcast {
        /// The link.
        link: LinkId,
        /// The channel's name.
        name: String,
    },
    /// Close the link (and report nothing more about it).
    Close {
        /// The link.
        link: LinkId,
    },
    /// Send `bytes` on the link (binary).
    Send {
        /// The link.
        link: LinkId,
        /// What to send.
        bytes: Vec<u8>,
    },
    /// Send `text` on the link (the relay's control messages).
    SendText {
        /// The link.
        link: LinkId,
        /// What to send.
        text: String,
    },
    /// Give the peer's signalling to the data channel link's peer connection.
    Signal {
        /// The link.
        link: LinkId,
        /// The peer's description or candidate.
        data: serde_json::Value,
    },
    /// Make `write` of memory `memory` durable, then report [`Room::stored`] with `id`
    /// (writes complete in the order asked).
    Store {
        /// The memory.
        memory: String,
        /// The write's id.
        id: u64,
        /// What to write.
        write: StorageWrite,
    },
    /// Tell the application.
    Event(RoomEvent),
}

/// What the application hears about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomEvent {
    /// A document took in a peer's delta and grew.
    Changed {
        /// The document.
        doc: String,
        /// The peer the delta came from.
        from: PeerId,
    },
    /// A peer became reachable (its first link).
    PeerJoined {
        /// The peer.
        peer: PeerId,
        /// Over which link.
        via: LinkKind,
    },
    /// A peer's last link went.
    PeerLeft {
        /// The peer.
        peer: PeerId,
        /// The last link.
        via: LinkKind,
    },
    /// A link's state changed: `"connecting"`, `"open"`, `"reconnecting"`, `"closed"` or
    /// `"error"` (with the relay's refusal).
    ConnectionState {
        /// Which kind of link.
        transport: LinkKind,
        /// Its state.
        state: &'static str,
        /// The peer of a data channel.
        peer: Option<PeerId>,
        /// The relay's refusal: code and message.
        refusal: Option<(String, String)>,
    },
    /// A peer misbehaved until it was banned (its data channel is closed).
    PeerBanned {
        /// The peer.
        peer: PeerId,
        /// The code of its last offence.
        reason: &'static str,
    },
    /// A hosted memory changed (a local change is reported once its write completed).
    Memory {
        /// The memory.
        memory: String,
        /// What changed.
        change: MemoryChange,
    },
    /// A local change's write completed and the change went to peers.
    Saved {
        /// The memory.
        memory: String,
        /// The write's id (what the change's call returned).
        write: u64,
    },
    /// A hosted memory's storage failed a write: that write and every one after it are not
    /// acknowledged, its later writes are not asked for, and it refuses local changes
    /// (`STORAGE_FAILED`) until it is reopened from what storage holds.
    StorageFailed {
        /// The memory.
        memory: String,
        /// The storage's error code (`STORAGE` when it gave none).
        code: String,
        /// What the storage said.
        message: String,
    },
    /// A memory's council agreement did something.
    Council {
        /// The memory.
        memory: String,
        /// What (boxed: a motion may carry a key rotation).
        event: Box<CouncilEvent>,
    },
}

/// Frames and bytes one kind of link carried.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Frames sent.
    pub frames_sent: u64,
    /// Bytes sent.
    pub bytes_sent: u64,
    /// Frames received.
    pub frames_received: u64,
    /// Bytes received.
    pub bytes_received: u64,
}

#[derive(Debug, Clone, Copy)]
struct Link {
    kind: LinkKind,
    /// The peer of a data channel.
    peer: Option<PeerId>,
    open: bool,
    /// When the room asked for it.
    since: u64,
}

/// One agent in one room. See the crate docs.
pub struct Room {
    pub(crate) sync: SyncNode,
    pub(crate) key: SigningKey,
    pub(crate) id: PeerId,
    pub(crate) name: String,
    webrtc: bool,
    pub(crate) rng: ChaCha8Rng,
    next_link: u32,
    links: BTreeMap<LinkId, Link>,
    /// The relay client and the link of its current socket, if any.
    relay: Option<(RelayClient, Option<LinkId>)>,
    /// The relays' URLs, and the index of the one the next socket opens to.
    relay_urls: Vec<String>,
    next_relay: usize,
    data_channels: BTreeMap<PeerId, LinkId>,
    broadcast: Option<LinkId>,
    presence: Presence,
    next_hello: u64,
    /// Each reachable peer's links.
    routes: BTreeMap<PeerId, BTreeSet<LinkKind>>,
    traffic: BTreeMap<LinkKind, Traffic>,
    pub(crate) out: VecDeque<Output>,
    closed: bool,
    /// Hosted memories' policy state, by name.
    pub(crate) memories: BTreeMap<String, Host>,
    /// Application messages received, for [`Room::after`]: (channel, signer, bytes).
    pub(crate) inbox: VecDeque<(String, PeerId, Vec<u8>)>,
    pub(crate) next_write: u64,
    /// Writes of memories closed before they completed: their completion changes nothing.
    pub(crate) forgotten_writes: BTreeSet<u64>,
}

impl Room {
    /// The room of `config.sync.room` for the agent whose key is `key`, at `now` (ms); `seed`
    /// drives its random choices (gossip targets, reconnection jitter). Its first outputs open
    /// the links the configuration asks for.
    pub fn new(
        key: SigningKey,
        config: RoomConfig,
        now: u64,
        seed: u64,
    ) -> Result<Self, RoomError> {
        let name = config.sync.room.clone();
        if name.is_empty() || name.len() > chrysalis_relay_protocol::MAX_ROOM_NAME {
            return Err(RoomError::BadArgument("a room name is 1 to 128 bytes"));
        }
        if config.webrtc && config.relays.is_empty() {
            return Err(RoomError::BadArgument(
                "WebRTC needs the relay for signalling",
            ));
        }
        let url_ok = |url: &String| {
            url.len() <= MAX_RELAY_URL && (url.starts_with("ws://") || url.starts_with("wss://"))
        };
        if config.relays.len() > MAX_RELAYS || !config.relays.iter().all(url_ok) {
            return Err(RoomError::BadArgument(
                "relays are at most 16 ws:// or wss:// URLs of at most 2,048 bytes",
            ));
        }
        let id = key.public_key();
        let sync_key = SigningKey::from_seed(&*key.seed()).expect("a key's own seed");
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let sync = SyncNode::new(sync_key, config.sync, now, rng.next_u64());
        let relay = (!config.relays.is_empty()).then(|| {
            let mut client = RelayClient::new(&name, id).expect("checked above");
            client.set_capability(config.capability);
            (client, None)
        });
        let next_relay = (rng.next_u64() % config.relays.len().max(1) as u64) as usize;
        let mut room = Room {
            sync,
            key,
            id,
            name,
            webrtc: config.webrtc,
            rng,
            next_link: 0,
            links: BTreeMap::new(),
            relay,
            relay_urls: config.relays,
            next_relay,
            data_channels: BTreeMap::new(),
            broadcast: None,
            presence: Presence::default(),
            next_hello: u64::MAX,
            routes: BTreeMap::new(),
            traffic: BTreeMap::new(),
            out: VecDeque::new(),
            closed: false,
            memories: BTreeMap::new(),
            inbox: VecDeque::new(),
            next_write: 1,
            forgotten_writes: BTreeSet::new(),
        };
        if room.relay.is_some() {
            room.connect_relay(now);
        }
        if config.broadcast {
            let link = room.new_link(now, LinkKind::Broadcast, None);
            room.broadcast = Some(link);
            let name = channel_name(&room.name);
            room.out.push_back(Output::OpenBroadcast { link, name });
        }
        Ok(room)
    }

    /// This agent's peer id (its public key).
    pub fn id(&self) -> PeerId {
        self.id
    }

    /// The room's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The replication node (documents, peers, statistics).
    pub fn sync(&self) -> &SyncNode {
        &self.sync
    }

    /// A shared document as its concrete type, to change it (then call
    /// [`Room::local_change`] with the delta).
    pub fn document_mut<T: Document + 'static>(&mut self, name: &str) -> Option<&mut T> {
        self.sync.document_mut(name)
    }

    /// The reachable peers, with what the node knows of them and their links.
    pub fn peers(&self) -> impl Iterator<Item = (PeerId, PeerInfo, Vec<LinkKind>)> + '_ {
        self.sync.peers().map(|(peer, info)| {
            let via = self
                .routes
                .get(&peer)
                .map(|kinds| kinds.iter().copied().collect())
                .unwrap_or_default();
            (peer, info, via)
        })
    }

    /// Frames and bytes per kind of link.
    pub fn traffic(&self, kind: LinkKind) -> Traffic {
        self.traffic.get(&kind).copied().unwrap_or_default()
    }

    /// Each data channel's peer and whether it is open.
    pub fn data_channels(&self) -> impl Iterator<Item = (PeerId, bool)> + '_ {
        self.data_channels
            .iter()
            .map(|(peer, link)| (*peer, self.links.get(link).is_some_and(|l| l.open)))
    }

    /// The relay connection's state (`None` without a relay).
    pub fn relay_state(&self) -> Option<RelayState> {
        self.relay.as_ref().map(|(client, _)| client.state())
    }

    /// Starts replicating `doc` as `name`.
    pub fn share(&mut self, now: u64, name: &str, doc: Box<dyn Document>) -> Result<(), RoomError> {
        self.check_open()?;
        let out = self.sync.share(now, name, doc)?;
        self.absorb(out);
        Ok(())
    }

    /// Stops replicating `name`; returns the document.
    pub fn unshare(&mut self, name: &str) -> Option<Box<dyn Document>> {
        self.sync.unshare(name)
    }

    /// Sends `delta`, the delta of a change just made to the local replica of `doc`.
    pub fn local_change(&mut self, now: u64, doc: &str, delta: Vec<u8>) -> Result<(), RoomError> {
        self.check_open()?;
        let out = self.sync.local_change(now, doc, delta)?;
        self.absorb(out);
        Ok(())
    }

    /// The pump opened `link`.
    pub fn link_opened(&mut self, now: u64, link: LinkId) {
        let Some(state) = self.links.get_mut(&link) else {
            return;
        };
        if self.closed || state.open {
            return;
        }
        state.open = true;
        let (kind, peer) = (state.kind, state.peer);
        match kind {
            LinkKind::Relay => {
                if let Some((client, _)) = &mut self.relay {
                    client.opening();
                }
            }
            LinkKind::WebRtc => {
                let peer = peer.expect("a data channel has a peer");
                self.event_state(LinkKind::WebRtc, "open", Some(peer));
                self.link(now, peer, LinkKind::WebRtc);
            }
            LinkKind::Broadcast => {
                self.event_state(LinkKind::Broadcast, "open", None);
                self.hello(now, false);
            }
        }
    }

    /// `link` closed (or failed to open). A relay link is reopened after a backoff; a data
    /// channel is not (the smaller id offers again when the relay announces the peer anew).
    pub fn link_closed(&mut self, now: u64, link: LinkId) {
        let Some(state) = self.links.remove(&link) else {
            return;
        };
        match state.kind {
            LinkKind::Relay => {
                let Some((client, current)) = &mut self.relay else {
                    return;
                };
                if *current != Some(link) {
                    return;
                }
                *current = None;
                self.sync.set_archiving(false);
                // The next socket tries the next relay: this one may be gone.
                self.next_relay = (self.next_relay + 1) % self.relay_urls.len();
                let random = self.rng.next_u64();
                let lost = client.closed(now, random);
                for event in lost {
                    if let RelayEvent::PeerLeft(peer) = event {
                        self.unlink(peer, LinkKind::Relay);
                    }
                }
                if !self.closed {
                    self.event_state(LinkKind::Relay, "reconnecting", None);
                }
            }
            LinkKind::WebRtc => {
                let peer = state.peer.expect("a data channel has a peer");
                if self.data_channels.get(&peer) == Some(&link) {
                    self.data_channels.remove(&peer);
                }
                if state.open {
                    self.unlink(peer, LinkKind::WebRtc);
                    self.event_state(LinkKind::WebRtc, "closed", Some(peer));
                }
            }
            LinkKind::Broadcast => {
                self.broadcast = None;
                self.next_hello = u64::MAX;
                for peer in self.presence.clear() {
                    self.unlink(peer, LinkKind::Broadcast);
                }
                self.event_state(LinkKind::Broadcast, "closed", None);
            }
        }
    }

    /// Binary bytes arrived on `link`.
    pub fn receive(&mut self, now: u64, link: LinkId, bytes: &[u8]) {
        let Some(state) = self.links.get(&link).copied() else {
            return;
        };
        if self.closed || !state.open {
            return;
        }
        self.count_received(state.kind, bytes.len());
        self.receive_on(now, state, bytes);
        self.after(now);
    }

    fn receive_on(&mut self, now: u64, link: Link, bytes: &[u8]) {
        match link.kind {
            LinkKind::Relay => {
                let Some((client, _)) = &mut self.relay else {
                    return;
                };
                // The archive's frames come first after the welcome: pushes of peers that may
                // be gone, taken only if they verify under the signer the relay names.
                if client.expects_archived() {
                    if let Some((signer, frame)) = client.take_archived(bytes) {
                        let out = self.sync.handle_archived(signer, frame);
                        self.absorb(out);
                    }
                    return;
                }
                // The relay names the sender, but it may lie: a frame counts only if it verifies
                // under that peer's key, and one that does not is scored against nobody (an
                // honest peer cannot be banned by frames the relay made up or relabelled).
                if let Some((peer, frame)) = client.handle_binary(bytes) {
                    let out = self.sync.handle_claimed(now, peer, frame);
                    self.absorb(out);
                }
            }
            LinkKind::WebRtc => {
                // Its signalling went through the relay, unsigned: the same rule.
                let Some(peer) = link.peer else {
                    return;
                };
                let out = self.sync.handle_claimed(now, peer, bytes);
                self.absorb(out);
            }
            LinkKind::Broadcast => self.receive_broadcast(now, bytes),
        }
    }

    fn receive_broadcast(&mut self, now: u64, bytes: &[u8]) {
        let Some(Envelope { from, body }) = Envelope::decode(bytes) else {
            return;
        };
        match body {
            Body::Presence { frame, .. } => {
                // The signed flag, not the envelope's kind, says whether it is a goodbye.
                let Some((peer, leaving, at)) = self.sync.check_presence(now, &from, frame) else {
                    return;
                };
                if leaving {
                    if self.presence.bye(&peer, at) {
                        self.unlink(peer, LinkKind::Broadcast);
                    }
                } else if self.presence.hello(now, peer, at) == Some(true) {
                    self.link(now, peer, LinkKind::Broadcast);
                    self.hello(now, false);
                }
            }
            Body::Frame { to, frame } if to.is_none_or(|to| to == self.id) => {
                let out = self.sync.handle_claimed(now, from, frame);
                self.absorb(out);
            }
            Body::Frame { .. } => {}
        }
    }

    /// A text message arrived on `link` (the relay's control messages).
    pub fn receive_text(&mut self, now: u64, link: LinkId, text: &str) {
        let Some((client, current)) = &mut self.relay else {
            return;
        };
        if self.closed || *current != Some(link) {
            return;
        }
        let events = client.handle_text(now, &self.key, text);
        for event in events {
            match event {
                RelayEvent::SendText(text) => self.out.push_back(Output::SendText { link, text }),
                RelayEvent::Opened => {
                    let archives = self.relay_client().is_some_and(RelayClient::archives);
                    self.sync.set_archiving(archives);
                    self.event_state(LinkKind::Relay, "open", None);
                }
                RelayEvent::PeerJoined(peer) => {
                    self.link(now, peer, LinkKind::Relay);
                    // One side offers: the smaller id, so two peers never both do; a read-only
                    // side has no signalling (a channel would bypass the relay's check).
                    let writers = self
                        .relay_client()
                        .is_some_and(|c| c.may_write() && c.peer_may_write(&peer));
                    if self.webrtc
                        && writers
                        && self.id < peer
                        && !self.data_channels.contains_key(&peer)
                    {
                        self.open_data_channel(now, peer, true);
                    }
                }
                RelayEvent::PeerLeft(peer) => {
                    self.unlink(peer, LinkKind::Relay);
                    // An open channel outlives the relay; one still opening needs its signalling.
                    self.close_data_channel(&peer, true);
                }
                RelayEvent::Signal { from, data } => {
                    // Only the peer whose role is to offer (the smaller id) may start a channel.
                    let link = match self.data_channels.get(&from) {
                        Some(link) => Some(*link),
                        None if self.webrtc && from < self.id => {
                            self.open_data_channel(now, from, false)
                        }
                        None => None,
                    };
                    if let Some(link) = link {
                        self.out.push_back(Output::Signal { link, data });
                    }
                }
                RelayEvent::Refused { code, message } => {
                    self.out
                        .push_back(Output::Event(RoomEvent::ConnectionState {
                            transport: LinkKind::Relay,
                            state: "error",
                            peer: None,
                            refusal: Some((code, message)),
                        }));
                }
            }
        }
    }

    /// The data channel `link`'s peer connection produced signalling (its description or a
    /// candidate) for the peer: it goes through the relay.
    pub fn local_signal(&mut self, link: LinkId, data: serde_json::Value) {
        let Some(peer) = self.links.get(&link).and_then(|l| l.peer) else {
            return;
        };
        let Some((client, Some(relay))) = &self.relay else {
            return;
        };
        if let Some(text) = client.signal(&peer, data) {
            let link = *relay;
            self.out.push_back(Output::SendText { link, text });
        }
    }

    /// Timers: replication (flushes, anti-entropy, heartbeats), the relay's reconnection, and
    /// the BroadcastChannel's hellos and timeouts.
    pub fn tick(&mut self, now: u64) {
        if self.closed {
            return;
        }
        let out = self.sync.handle_tick(now);
        self.absorb(out);
        self.tick_agreements(now);
        if let Some((client, None)) = &self.relay
            && matches!(client.state(), RelayState::Waiting { retry_at } if retry_at <= now)
        {
            self.connect_relay(now);
        }
        let stalled: Vec<PeerId> = self
            .data_channels
            .iter()
            .filter(|(_, link)| {
                self.links.get(link).is_some_and(|l| {
                    !l.open && now.saturating_sub(l.since) > DATA_CHANNEL_OPEN_TIMEOUT_MS
                })
            })
            .map(|(peer, _)| *peer)
            .collect();
        for peer in stalled {
            self.close_data_channel(&peer, true);
        }
        if now >= self.next_hello {
            self.hello(now, false);
            for peer in self.presence.expire(now) {
                self.unlink(peer, LinkKind::Broadcast);
            }
        }
    }

    /// When to call [`Room::tick`] next (ms; never once closed).
    pub fn timeout(&self) -> u64 {
        if self.closed {
            return u64::MAX;
        }
        let mut at = self.sync.wake_at().min(self.next_hello);
        for host in self.memories.values() {
            at = at.min(host.wake_at());
        }
        if let Some((client, None)) = &self.relay
            && let RelayState::Waiting { retry_at } = client.state()
        {
            at = at.min(retry_at);
        }
        at
    }

    /// The next thing the pump must do, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// Leaves the room: a goodbye to the tabs, then every link closes.
    pub fn close(&mut self, now: u64) {
        if self.closed {
            return;
        }
        // Changes queued in this task still go out.
        let out = self.sync.flush_changes(now);
        self.absorb(out);
        if self.broadcast.is_some_and(|link| self.links[&link].open) {
            self.hello(now, true);
        }
        self.closed = true;
        let links: Vec<LinkId> = self.links.keys().copied().collect();
        for link in links {
            self.out.push_back(Output::Close { link });
        }
        self.links.clear();
    }

    // ---- internals ----

    pub(crate) fn check_open(&self) -> Result<(), RoomError> {
        if self.closed {
            Err(RoomError::Closed)
        } else {
            Ok(())
        }
    }

    fn new_link(&mut self, now: u64, kind: LinkKind, peer: Option<PeerId>) -> LinkId {
        let link = LinkId(self.next_link);
        self.next_link = self.next_link.wrapping_add(1);
        self.links.insert(
            link,
            Link {
                kind,
                peer,
                open: false,
                since: now,
            },
        );
        link
    }

    fn connect_relay(&mut self, now: u64) {
        let link = self.new_link(now, LinkKind::Relay, None);
        if let Some((_, current)) = &mut self.relay {
            *current = Some(link);
        }
        let url = self.relay_urls[self.next_relay].clone();
        self.out.push_back(Output::OpenRelay { link, url });
        self.event_state(LinkKind::Relay, "connecting", None);
    }

    /// Asks for a data channel to `peer`, within [`MAX_DATA_CHANNELS`] and
    /// [`MAX_OPENING_DATA_CHANNELS`].
    fn open_data_channel(&mut self, now: u64, peer: PeerId, initiator: bool) -> Option<LinkId> {
        let opening = self
            .data_channels
            .values()
            .filter(|l| self.links.get(l).is_some_and(|l| !l.open))
            .count();
        if self.data_channels.len() >= MAX_DATA_CHANNELS || opening >= MAX_OPENING_DATA_CHANNELS {
            return None;
        }
        let link = self.new_link(now, LinkKind::WebRtc, Some(peer));
        self.data_channels.insert(peer, link);
        self.out.push_back(Output::OpenDataChannel {
            link,
            peer,
            initiator,
        });
        Some(link)
    }

    /// Closes `peer`'s data channel (if `unopened_only`, only one still opening).
    fn close_data_channel(&mut self, peer: &PeerId, unopened_only: bool) {
        let Some(&link) = self.data_channels.get(peer) else {
            return;
        };
        let open = self.links.get(&link).is_some_and(|l| l.open);
        if unopened_only && open {
            return;
        }
        self.data_channels.remove(peer);
        self.links.remove(&link);
        self.out.push_back(Output::Close { link });
        if open {
            self.unlink(*peer, LinkKind::WebRtc);
        }
    }

    /// Posts a signed hello (or goodbye) on the BroadcastChannel.
    fn hello(&mut self, now: u64, leaving: bool) {
        let Some(link) = self.broadcast else {
            return;
        };
        let frame = self.sync.presence(now, leaving);
        let bytes = Envelope {
            from: self.id,
            body: Body::Presence {
                leaving,
                frame: &frame,
            },
        }
        .encode();
        self.send(LinkKind::Broadcast, link, bytes);
        self.next_hello = now + HELLO_INTERVAL_MS;
    }

    fn event_state(&mut self, transport: LinkKind, state: &'static str, peer: Option<PeerId>) {
        self.out
            .push_back(Output::Event(RoomEvent::ConnectionState {
                transport,
                state,
                peer,
                refusal: None,
            }));
    }

    /// `peer` is reachable over `kind`; its first link makes it a peer of the sync node.
    fn link(&mut self, now: u64, peer: PeerId, kind: LinkKind) {
        if peer == self.id {
            return;
        }
        let kinds = self.routes.entry(peer).or_default();
        let fresh = kinds.is_empty();
        kinds.insert(kind);
        if fresh {
            let out = self.sync.add_peer(now, peer);
            self.out
                .push_back(Output::Event(RoomEvent::PeerJoined { peer, via: kind }));
            self.absorb(out);
        }
    }

    fn unlink(&mut self, peer: PeerId, kind: LinkKind) {
        let Some(kinds) = self.routes.get_mut(&peer) else {
            return;
        };
        if !kinds.remove(&kind) {
            return;
        }
        if kinds.is_empty() {
            self.routes.remove(&peer);
            self.sync.remove_peer(&peer);
            self.out
                .push_back(Output::Event(RoomEvent::PeerLeft { peer, via: kind }));
        }
    }

    /// Routes the sync node's frames and reports its events.
    pub(crate) fn absorb(&mut self, out: SyncOutput) {
        for transmit in out.transmits {
            match transmit.to {
                Recipient::Peer(peer) => self.send_to(peer, transmit.bytes),
                Recipient::Everyone => self.send_to_everyone(transmit.bytes, transmit.archive),
                Recipient::Archive => self.send_to_archive(&transmit.bytes),
            }
        }
        for event in out.events {
            match event {
                Event::Changed { doc, from } => {
                    self.out
                        .push_back(Output::Event(RoomEvent::Changed { doc, from }));
                }
                Event::App {
                    channel,
                    from,
                    bytes,
                } => self.inbox.push_back((channel, from, bytes)),
                Event::PeerBanned { peer, reason } => {
                    self.close_data_channel(&peer, false);
                    self.out
                        .push_back(Output::Event(RoomEvent::PeerBanned { peer, reason }));
                }
            }
        }
    }

    /// The open relay link, if the relay session is authenticated.
    fn relay_link(&self) -> Option<LinkId> {
        match &self.relay {
            Some((client, Some(link))) if client.state() == RelayState::Open => Some(*link),
            _ => None,
        }
    }

    fn relay_client(&self) -> Option<&RelayClient> {
        self.relay.as_ref().map(|(client, _)| client)
    }

    /// The open relay link, if the relay lets this agent send `frame` there (a read-only
    /// capability passes only what catching up needs; the rest would be refused).
    fn relay_link_for(&self, frame: &[u8]) -> Option<LinkId> {
        let may =
            |c: &RelayClient| c.may_write() || chrysalis_relay_protocol::read_only_may_send(frame);
        self.relay_link()
            .filter(|_| self.relay_client().is_some_and(may))
    }

    /// The relay URL the next socket opens to (`None` without a relay).
    pub fn relay_url(&self) -> Option<&str> {
        self.relay
            .as_ref()
            .map(|_| self.relay_urls[self.next_relay].as_str())
    }

    /// Whether the relay lets this agent write (false while its capability is read-only).
    pub fn may_write(&self) -> bool {
        self.relay_client().is_none_or(RelayClient::may_write)
    }

    /// The capability to present from the next relay socket on (a fresh one before the
    /// current expires), or none.
    pub fn set_capability(&mut self, capability: Option<String>) {
        if let Some((client, _)) = &mut self.relay {
            client.set_capability(capability);
        }
    }

    /// Sends over `peer`'s open data channel if the frame fits one.
    fn send_direct(&mut self, peer: &PeerId, bytes: &[u8]) -> bool {
        let Some(&link) = self.data_channels.get(peer) else {
            return false;
        };
        if !self.links.get(&link).is_some_and(|l| l.open) || bytes.len() > MAX_DATA_CHANNEL_MESSAGE
        {
            return false;
        }
        self.send(LinkKind::WebRtc, link, bytes.to_vec());
        true
    }

    /// One peer: its data channel, else the relay, else the BroadcastChannel.
    fn send_to(&mut self, peer: PeerId, bytes: Vec<u8>) {
        if self.send_direct(&peer, &bytes) {
            return;
        }
        // A tab of this origin is reached locally even when the relay also announces it: the
        // relay could drop what it carries.
        let kinds = self.routes.get(&peer).cloned().unwrap_or_default();
        if let Some(link) = self
            .broadcast
            .filter(|_| kinds.contains(&LinkKind::Broadcast))
        {
            let envelope = Envelope {
                from: self.id,
                body: Body::Frame {
                    to: Some(peer),
                    frame: &bytes,
                },
            };
            self.send(LinkKind::Broadcast, link, envelope.encode());
        } else if let Some((relay, bytes)) = self
            .relay_link_for(&bytes)
            .filter(|_| kinds.contains(&LinkKind::Relay))
            .and_then(|relay| Some((relay, self.relay_client()?.to_peer(&peer, &bytes)?)))
        {
            self.send(LinkKind::Relay, relay, bytes);
        }
    }

    /// Every peer: data channels where open; one BroadcastChannel message for the tabs; the
    /// relay for the rest of its peers (one frame to everyone when none of them got it another
    /// way).
    fn send_to_everyone(&mut self, bytes: Vec<u8>, archive: bool) {
        let relay = self.relay_link_for(&bytes);
        let archives = archive && self.relay_client().is_some_and(RelayClient::archives);
        let mut via_relay = Vec::new();
        let mut via_broadcast = false;
        let mut relay_peers = 0;
        let routes: Vec<(PeerId, BTreeSet<LinkKind>)> =
            self.routes.iter().map(|(p, k)| (*p, k.clone())).collect();
        for (peer, kinds) in routes {
            let by_relay = kinds.contains(&LinkKind::Relay);
            relay_peers += usize::from(by_relay);
            if self.send_direct(&peer, &bytes) {
                continue;
            }
            if self.broadcast.is_some() && kinds.contains(&LinkKind::Broadcast) {
                via_broadcast = true;
            } else if relay.is_some() && by_relay {
                via_relay.push(peer);
            }
        }
        if let Some(relay) = relay {
            if !via_relay.is_empty() && via_relay.len() == relay_peers {
                let framed = match archives {
                    true => self.relay_client().and_then(|c| c.to_archive(&bytes, true)),
                    false => None,
                };
                let framed = framed.unwrap_or_else(|| RelayClient::to_everyone(&bytes));
                self.send(LinkKind::Relay, relay, framed);
            } else {
                if archives {
                    self.send_to_archive(&bytes);
                }
                for peer in via_relay {
                    if let Some(bytes) = self.relay_client().and_then(|c| c.to_peer(&peer, &bytes))
                    {
                        self.send(LinkKind::Relay, relay, bytes);
                    }
                }
            }
        }
        if let Some(link) = self.broadcast.filter(|_| via_broadcast) {
            let envelope = Envelope {
                from: self.id,
                body: Body::Frame {
                    to: None,
                    frame: &bytes,
                },
            };
            self.send(LinkKind::Broadcast, link, envelope.encode());
        }
    }

    /// Into the room's archive at the relay, if it keeps one (and lets this agent write).
    fn send_to_archive(&mut self, bytes: &[u8]) {
        let Some(relay) = self.relay_link_for(bytes) else {
            return;
        };
        if let Some(framed) = self.relay_client().and_then(|c| c.to_archive(bytes, false)) {
            self.send(LinkKind::Relay, relay, framed);
        }
    }

    fn send(&mut self, kind: LinkKind, link: LinkId, bytes: Vec<u8>) {
        let traffic = self.traffic.entry(kind).or_default();
        traffic.frames_sent += 1;
        traffic.bytes_sent += bytes.len() as u64;
        self.out.push_back(Output::Send { link, bytes });
    }

    fn count_received(&mut self, kind: LinkKind, len: usize) {
        let traffic = self.traffic.entry(kind).or_default();
        traffic.frames_received += 1;
        traffic.bytes_received += len as u64;
    }
}
