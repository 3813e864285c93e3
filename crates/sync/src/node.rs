//! [`SyncNode`]: push gossip of fresh deltas and periodic anti-entropy, sans-IO.
//!
//! The node never reads a clock or a socket. Each call takes the time (`now`, milliseconds) and
//! returns an [`Output`]: frames to send, events for the application, and when to call
//! [`SyncNode::handle_tick`] next. Transports move the bytes and tell the node which peers are
//! reachable ([`SyncNode::add_peer`], [`SyncNode::remove_peer`]).

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};

use chrysalis_crdt::{Encode, VersionVector};
use chrysalis_crypto::SigningKey;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use crate::message::{self, AppMessage, DocList, Gossip};
use crate::{
    Document, FRAME_OVERHEAD, FrameKind, PeerId, ReplayGuard, RoomId, SignedFrame, SyncError,
    room_id,
};

/// The most peers a node tracks (scores included); frames from further new peers are dropped.
pub const MAX_PEERS: usize = 1024;
/// The highest score good behaviour earns; misbehaviour is paid from it.
pub const MAX_SCORE: i32 = 20;
/// Postcard overhead of one `(name, bytes)` entry beyond the name and bytes (two length prefixes).
const ENTRY_OVERHEAD: usize = 2 * 5;

/// Tuning of a [`SyncNode`]. `Default` suits a page in a room of a few to a few dozen peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncConfig {
    /// The room's name: every frame's signature covers it, so a frame of one room is refused
    /// in every other.
    pub room: String,
    /// How many peers receive a forwarded push (gossipsub's degree) in rooms too large to
    /// broadcast to.
    pub fanout: usize,
    /// With at most this many connected peers, a local change is one frame to
    /// [`Recipient::Everyone`] and is not forwarded; above it, it goes to `fanout` peers and is
    /// forwarded `gossip_hops` times.
    pub broadcast_limit: usize,
    /// How many times a pushed delta is forwarded onwards when the sender could not reach
    /// every peer itself.
    pub gossip_hops: u8,
    /// Local changes go out together, in one signed frame with one delta per document, at the
    /// first tick this many milliseconds after the first of them. With 0 that tick is due at
    /// once: the changes made before the host ticks (a page's pump ticks at the end of the
    /// task) go out together.
    pub flush_delay_ms: u64,
    /// Milliseconds between anti-entropy rounds.
    pub anti_entropy_interval_ms: u64,
    /// How many random peers get a digest each anti-entropy round.
    pub anti_entropy_peers: usize,
    /// A peer that was sent nothing for this long gets a heartbeat.
    pub heartbeat_interval_ms: u64,
    /// The largest frame sent or accepted, in bytes.
    pub max_frame: usize,
    /// A peer whose score falls to this is banned: its frames are dropped, and the application
    /// is told to disconnect it.
    pub ban_threshold: i32,
    /// How long a ban lasts, in milliseconds.
    pub ban_duration_ms: u64,
}

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            room: String::new(),
            fanout: 6,
            broadcast_limit: 64,
            gossip_hops: 3,
            flush_delay_ms: 0,
            anti_entropy_interval_ms: 1000,
            anti_entropy_peers: 2,
            heartbeat_interval_ms: 5000,
            max_frame: crate::DEFAULT_MAX_FRAME,
            ban_threshold: -100,
            ban_duration_ms: 60_000,
        }
    }
}

/// Who a frame is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recipient {
    /// One peer.
    Peer(PeerId),
    /// Every connected peer: one signed frame that a relay or a broadcast medium fans out,
    /// instead of one frame per peer.
    Everyone,
    /// Nobody now: the room's archive at a relay that keeps one, for peers that join later
    /// (a push signed for everyone, made only while [`SyncNode::set_archiving`] is on).
    Archive,
}

/// Bytes to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Who they are for.
    pub to: Recipient,
    /// A signed frame.
    pub bytes: Vec<u8>,
    /// Whether a relay that keeps the room's archive should keep it too: this node's own
    /// pushes, signed for everyone (peers that join later apply them with
    /// [`SyncNode::handle_archived`]).
    pub archive: bool,
}

/// What the application hears about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A document took in a peer's delta and grew.
    Changed {
        /// The document.
        doc: String,
        /// The peer the delta came from (not necessarily its author).
        from: PeerId,
    },
    /// A connected peer's message on an application channel ([`SyncNode::send_app`]), its
    /// signature verified and never seen before.
    App {
        /// The channel.
        channel: String,
        /// The signer (a connected peer).
        from: PeerId,
        /// The message.
        bytes: Vec<u8>,
    },
    /// A peer misbehaved until its score reached the ban threshold: disconnect it.
    PeerBanned {
        /// The peer.
        peer: PeerId,
        /// The code of the last offence.
        reason: &'static str,
    },
}

/// What one call produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// Frames to send.
    pub transmits: Vec<Transmit>,
    /// Events for the application.
    pub events: Vec<Event>,
    /// Call [`SyncNode::handle_tick`] at this time (milliseconds) or soon after.
    pub wake_at: u64,
}

/// Counters of traffic and of dropped frames by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames handed to transports.
    pub frames_sent: u64,
    /// Bytes handed to transports.
    pub bytes_sent: u64,
    /// Frames received, accepted or not.
    pub frames_received: u64,
    /// Bytes received, accepted or not.
    pub bytes_received: u64,
    /// Deltas that made a document grow.
    pub deltas_applied: u64,
    /// Frames from a relay's archive whose deltas were applied.
    pub archived_applied: u64,
    /// Dropped frames (and deltas) by [`SyncError::code`].
    pub drops: BTreeMap<&'static str, u64>,
}

impl Stats {
    /// All drops, whatever the reason.
    pub fn dropped(&self) -> u64 {
        self.drops.values().sum()
    }
}

/// What the node knows of a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerInfo {
    /// Good frames raise it (up to [`MAX_SCORE`]), bad ones lower it.
    pub score: i32,
    /// When the last valid frame came from it (milliseconds), if one did.
    pub last_heard: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
struct Peer {
    info: PeerInfo,
    /// Connected: a target for pushes and digests. Peers known only by their offences are not.
    active: bool,
    last_sent: u64,
    /// Bytes of anti-entropy replies this peer may still ask for, and when it was last
    /// refilled: what one digest can make this node send is bounded.
    reply_credit: u64,
    refilled_at: u64,
    /// The latest asks (digests and requests) sent to this peer: only their answers apply.
    asks: [u64; ASKS_KEPT],
    next_ask: usize,
}

/// How many asks per peer are remembered: a node asks a peer about once per anti-entropy round.
const ASKS_KEPT: usize = 32;

/// The first payload byte of a presence announcement.
const PRESENCE: u8 = 0x50;
/// How far from the receiver's clock a presence announcement may be dated (ms).
pub const PRESENCE_SKEW_MS: u64 = 60_000;

/// Anti-entropy reply bytes a peer earns per anti-entropy interval, in frames.
const REPLY_FRAMES_PER_INTERVAL: u64 = 2;
/// The most reply credit a peer holds, in frames.
const REPLY_FRAMES_BURST: u64 = 8;

/// One replica of a set of named documents, replicating with its peers. See the module docs.
pub struct SyncNode {
    key: SigningKey,
    id: PeerId,
    config: SyncConfig,
    rng: ChaCha8Rng,
    seq: u64,
    docs: BTreeMap<String, Box<dyn Document>>,
    /// Local deltas waiting for the flush delay to pass.
    pending: Vec<(String, Vec<u8>)>,
    flush_at: Option<u64>,
    peers: BTreeMap<PeerId, Peer>,
    banned: BTreeMap<PeerId, u64>,
    replay: ReplayGuard,
    room: RoomId,
    stats: Stats,
    /// When the next anti-entropy round is due (it may wait for pushes to settle).
    anti_entropy_due: u64,
    /// When a pushed delta last made a document grow.
    push_grew_at: Option<u64>,
    /// Whether pushes sent to a few peers also go to the archive (see [`Recipient::Archive`]).
    archiving: bool,
}

impl SyncNode {
    /// A node signing as `key`. Sequence numbers start at `now × 1000`, so a node that
    /// restarts without its state (and a clock that moved on) is not taken for a replayer;
    /// `seed` drives the random choice of peers.
    pub fn new(key: SigningKey, config: SyncConfig, now: u64, seed: u64) -> Self {
        SyncNode {
            id: key.public_key(),
            key,
            room: room_id(&config.room),
            config,
            rng: ChaCha8Rng::seed_from_u64(seed),
            seq: now.saturating_mul(1000),
            docs: BTreeMap::new(),
            pending: Vec::new(),
            flush_at: None,
            peers: BTreeMap::new(),
            banned: BTreeMap::new(),
            replay: ReplayGuard::new(),
            stats: Stats::default(),
            anti_entropy_due: now,
            push_grew_at: None,
            archiving: false,
        }
    }

    /// This node's identity (its public key).
    pub fn id(&self) -> PeerId {
        self.id
    }

    /// The configuration.
    pub fn config(&self) -> &SyncConfig {
        &self.config
    }

    /// Starts replicating `doc` as `name`, and asks every peer for what it has of it.
    pub fn share(
        &mut self,
        now: u64,
        name: &str,
        doc: Box<dyn Document>,
    ) -> Result<Output, SyncError> {
        message::check_name(name).map_err(|_| SyncError::BadDocumentName {
            name: name.chars().take(message::MAX_DOC_NAME).collect(),
            reason: "names are 1 to 128 bytes",
        })?;
        if self.docs.contains_key(name) {
            return Err(SyncError::BadDocumentName {
                name: name.to_owned(),
                reason: "already shared",
            });
        }
        let version = doc
            .version()
            .map_err(|reason| SyncError::BadDocument {
                doc: name.to_owned(),
                reason,
            })?
            .to_bytes();
        self.docs.insert(name.to_owned(), doc);
        let mut out = self.output();
        let list = vec![(name.to_owned(), version)];
        for peer in self.active_peers() {
            self.send_list(&mut out, now, peer, FrameKind::Digest, list.clone());
        }
        out.wake_at = self.wake_at();
        Ok(out)
    }

    /// Stops replicating `name`; returns the document.
    pub fn unshare(&mut self, name: &str) -> Option<Box<dyn Document>> {
        self.pending.retain(|(doc, _)| doc != name);
        // Answers to earlier asks were computed against this document's version: a document
        // shared again under the name must not take them.
        for peer in self.peers.values_mut() {
            peer.asks = [0; ASKS_KEPT];
        }
        self.docs.remove(name)
    }

    /// The names of the shared documents.
    pub fn documents(&self) -> impl Iterator<Item = &str> {
        self.docs.keys().map(String::as_str)
    }

    /// A shared document.
    pub fn document(&self, name: &str) -> Option<&dyn Document> {
        self.docs.get(name).map(|doc| &**doc)
    }

    /// A shared document as its concrete type, to change it (then call
    /// [`local_change`](Self::local_change) with the delta).
    pub fn document_mut<T: Document + 'static>(&mut self, name: &str) -> Option<&mut T> {
        let doc: &mut dyn Any = &mut **self.docs.get_mut(name)?;
        doc.downcast_mut()
    }

    /// Queues `delta`, the delta of a change just made to the local replica of `doc`, for the
    /// next flush ([`SyncConfig::flush_delay_ms`]; [`SyncNode::wake_at`] says when).
    pub fn local_change(
        &mut self,
        now: u64,
        doc: &str,
        delta: Vec<u8>,
    ) -> Result<Output, SyncError> {
        if !self.docs.contains_key(doc) {
            return Err(SyncError::UnknownDocument(doc.to_owned()));
        }
        let limit = self.max_payload();
        if delta.len() + doc.len() + ENTRY_OVERHEAD > limit {
            return Err(SyncError::DeltaTooLarge {
                size: delta.len(),
                limit,
            });
        }
        self.pending.push((doc.to_owned(), delta));
        if self.flush_at.is_none() {
            self.flush_at = Some(now + self.config.flush_delay_ms);
        }
        Ok(self.output())
    }

    /// Sends the queued local changes now, whatever the flush delay (a host about to stop, or
    /// one that coalesces changes itself).
    pub fn flush_changes(&mut self, now: u64) -> Output {
        let mut out = self.output();
        self.flush(&mut out, now);
        out.wake_at = self.wake_at();
        out
    }

    /// Sends `bytes` on application channel `channel` (1 to [`MAX_DOC_NAME`](crate::MAX_DOC_NAME)
    /// bytes) as one signed frame, to each of `to` (connected or not: the transport drops what
    /// it cannot route), or to every connected peer when `to` is `None`. The message is neither
    /// stored nor forwarded: the application retransmits what must arrive.
    pub fn send_app(
        &mut self,
        now: u64,
        to: Option<&[PeerId]>,
        channel: &str,
        bytes: Vec<u8>,
    ) -> Result<Output, SyncError> {
        message::check_name(channel)?;
        let limit = self.max_payload();
        if bytes.len() + channel.len() + ENTRY_OVERHEAD > limit {
            return Err(SyncError::DeltaTooLarge {
                size: bytes.len(),
                limit,
            });
        }
        let payload = message::encode(&AppMessage {
            channel,
            bytes: &bytes,
        });
        let mut out = self.output();
        match to {
            None => self.send_to(&mut out, now, Recipient::Everyone, FrameKind::App, &payload),
            Some(peers) => {
                let peers: Vec<PeerId> = peers.iter().filter(|p| **p != self.id).copied().collect();
                if !peers.is_empty() {
                    // One signature for every recipient: the same frame, addressed to none of
                    // them, goes to each.
                    self.seq += 1;
                    let kind = FrameKind::App;
                    let bytes =
                        SignedFrame::encode(&self.key, &self.room, kind, self.seq, &payload);
                    for peer in peers {
                        self.transmit(&mut out, now, Recipient::Peer(peer), bytes.clone());
                    }
                }
            }
        }
        out.wake_at = self.wake_at();
        Ok(out)
    }

    /// A peer became reachable: it gets a digest at once, so the two catch up.
    pub fn add_peer(&mut self, now: u64, peer: PeerId) -> Output {
        let mut out = self.output();
        if peer == self.id || self.is_banned(now, &peer) {
            return out;
        }
        if !self.peers.contains_key(&peer) && self.peers.len() >= MAX_PEERS {
            return out;
        }
        self.peers
            .entry(peer)
            .or_insert_with(|| new_peer(true))
            .active = true;
        let digest = self.digest();
        self.send_list(&mut out, now, peer, FrameKind::Digest, digest);
        out.wake_at = self.wake_at();
        out
    }

    /// A peer went away. Its replay window is kept (its old frames stay replays if it comes
    /// back); its score is kept while it is banned.
    pub fn remove_peer(&mut self, peer: &PeerId) {
        self.peers.remove(peer);
    }

    /// The connected peers, with what the node knows of them.
    pub fn peers(&self) -> impl Iterator<Item = (PeerId, PeerInfo)> + '_ {
        self.peers
            .iter()
            .filter(|(_, p)| p.active)
            .map(|(id, p)| (*id, p.info))
    }

    /// The peers banned at `now`, until when.
    pub fn banned(&self, now: u64) -> impl Iterator<Item = (PeerId, u64)> + '_ {
        self.banned
            .iter()
            .filter(move |(_, until)| now < **until)
            .map(|(id, until)| (*id, *until))
    }

    /// Traffic and drop counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// When [`handle_tick`](Self::handle_tick) wants to run next.
    pub fn wake_at(&self) -> u64 {
        let mut at = self.anti_entropy_at();
        if let Some(flush) = self.flush_at {
            at = at.min(flush);
        }
        at
    }

    /// Timers: flushes delayed changes, runs an anti-entropy round when due, sends heartbeats
    /// to idle peers and lifts expired bans.
    pub fn handle_tick(&mut self, now: u64) -> Output {
        let mut out = self.output();
        if self.flush_at.is_some_and(|at| now >= at) {
            self.flush(&mut out, now);
        }
        if now >= self.anti_entropy_at() {
            self.anti_entropy_due = now + self.config.anti_entropy_interval_ms;
            let digest = self.digest();
            for peer in self.choose_peers(None, self.config.anti_entropy_peers) {
                self.send_list(&mut out, now, peer, FrameKind::Digest, digest.clone());
            }
            let quiet = self.config.heartbeat_interval_ms;
            let idle: Vec<PeerId> = self
                .peers
                .iter()
                .filter(|(_, p)| p.active && now.saturating_sub(p.last_sent) >= quiet)
                .map(|(id, _)| *id)
                .collect();
            for peer in idle {
                self.send(&mut out, now, peer, FrameKind::Heartbeat, &[]);
            }
            self.banned.retain(|_, until| *until > now);
        }
        out.wake_at = self.wake_at();
        out
    }

    /// When the next anti-entropy round runs: when due, unless pushes are still making the
    /// state grow. While they arrive, a digest's answer would mostly repeat what is already on
    /// its way (measured: the 8-page batched benchmark sent 87 to 221 kB, as rounds fell), so
    /// the round waits until no push has grown a document for a quarter interval, one interval
    /// at most: a stream of pushes cannot hold anti-entropy off.
    fn anti_entropy_at(&self) -> u64 {
        let interval = self.config.anti_entropy_interval_ms;
        let settled = self
            .push_grew_at
            .map_or(0, |at| at.saturating_add(interval / 4));
        let latest = self.anti_entropy_due.saturating_add(interval);
        self.anti_entropy_due.max(settled.min(latest))
    }

    /// A frame from `from`, a peer its transport authenticated. Any failure is dropped,
    /// counted and scored against `from` (but a frame of another wire version, which says
    /// nothing bad of its sender); nothing a peer sends can make this panic.
    pub fn handle_message(&mut self, now: u64, from: PeerId, bytes: &[u8]) -> Output {
        self.handle(now, from, bytes, true)
    }

    /// A frame whose signer only the link claims to be `claimed` (a relay's handle, a data
    /// channel whose signalling was unsigned, a BroadcastChannel envelope any script can
    /// write): it counts as `claimed`'s only if its signature verifies under that key, and a
    /// frame that does not is dropped and counted without scoring anyone, since anyone could
    /// have made the claim. A verified frame's faults are scored against its signer.
    pub fn handle_claimed(&mut self, now: u64, claimed: PeerId, bytes: &[u8]) -> Output {
        self.handle(now, claimed, bytes, false)
    }

    fn handle(&mut self, now: u64, from: PeerId, bytes: &[u8], scored: bool) -> Output {
        let mut out = self.output();
        self.stats.frames_received += 1;
        self.stats.bytes_received += bytes.len() as u64;
        match self.verify(now, &from, bytes) {
            Ok(frame) => {
                if let Err(error) = self.receive_frame(&mut out, now, from, frame) {
                    self.punish(&mut out, now, from, &error);
                }
            }
            Err(error) if scored => self.punish(&mut out, now, from, &error),
            Err(error) => self.count_drop(error.code()),
        }
        out.wake_at = self.wake_at();
        out
    }

    /// The frame `bytes` as `sender`'s, checked cheapest first: a banned or unknown sender and
    /// a replay (by the sequence number it claims) cost no signature check.
    fn verify<'a>(
        &self,
        now: u64,
        sender: &PeerId,
        bytes: &'a [u8],
    ) -> Result<crate::Frame<'a>, SyncError> {
        if self.is_banned(now, sender) {
            return Err(SyncError::Banned);
        }
        if !self.peers.get(sender).is_some_and(|p| p.active) {
            return Err(SyncError::NotAPeer);
        }
        if let Some(seq) = SignedFrame::peek_seq(bytes) {
            self.replay.check(sender, seq)?;
        }
        let me = Some(&self.id);
        let frame = SignedFrame::decode_at(bytes, self.config.max_frame, &self.room, sender, me)?;
        Ok(frame.into_frame())
    }

    /// A signed presence announcement (`leaving`: a goodbye) for a medium that does not
    /// authenticate its senders, such as a BroadcastChannel: see [`SyncNode::check_presence`].
    pub fn presence(&mut self, now: u64, leaving: bool) -> Vec<u8> {
        self.seq += 1;
        let mut payload = vec![PRESENCE, u8::from(leaving)];
        payload.extend_from_slice(&now.to_le_bytes());
        SignedFrame::encode(
            &self.key,
            &self.room,
            FrameKind::Heartbeat,
            self.seq,
            &payload,
        )
    }

    /// A presence announcement claimed by `claimed`: `(peer, leaving, at)` when its signature
    /// verifies under that key in this room and it was made (`at`, the signer's clock) within
    /// [`PRESENCE_SKEW_MS`] of `now`, so no script can say goodbye for another peer. Replays within the skew are the
    /// caller's to refuse: accept only an announcement newer than the signer's last (the
    /// Room's presence table does), which no flood of other signers can make it forget.
    pub fn check_presence(
        &self,
        now: u64,
        claimed: &PeerId,
        bytes: &[u8],
    ) -> Option<(PeerId, bool, u64)> {
        let frame =
            SignedFrame::decode(bytes, 64 + crate::FRAME_OVERHEAD, &self.room, claimed).ok()?;
        let frame = frame.into_frame();
        let [PRESENCE, leaving @ (0 | 1), time @ ..] = frame.payload else {
            return None;
        };
        let at = u64::from_le_bytes(time.try_into().ok()?);
        if frame.kind != FrameKind::Heartbeat
            || frame.sender == self.id
            || at.abs_diff(now) > PRESENCE_SKEW_MS
        {
            return None;
        }
        Some((frame.sender, *leaving == 1, at))
    }

    /// A frame whose signature verified, from `from` (its signer).
    fn receive_frame(
        &mut self,
        out: &mut Output,
        now: u64,
        from: PeerId,
        frame: crate::Frame<'_>,
    ) -> Result<(), SyncError> {
        // `verify` refused a banned sender and one not linked (keys are free: a signer nobody
        // linked must not take a place in the peer table, nor cost a replay window).
        self.replay.accept(&frame.sender, frame.seq)?;
        let Some(peer) = self.peers.get_mut(&from) else {
            return Err(SyncError::NotAPeer);
        };
        peer.info.last_heard = Some(now);
        peer.info.score = (peer.info.score + 1).min(MAX_SCORE);
        match frame.kind {
            FrameKind::Gossip => {
                let gossip = Gossip::decode(frame.payload)?;
                let fresh = self.apply_all(out, from, gossip.deltas.docs)?;
                if fresh.is_empty() {
                    return Ok(());
                }
                self.push_grew_at = Some(now);
                if gossip.hops > 0 {
                    let forward = Gossip {
                        hops: gossip.hops - 1,
                        deltas: DocList {
                            answers: 0,
                            docs: fresh,
                        },
                    };
                    let payload = message::encode(&forward);
                    for peer in self.choose_peers(Some(from), self.config.fanout) {
                        self.send(out, now, peer, FrameKind::Gossip, &payload);
                    }
                }
            }
            FrameKind::Digest | FrameKind::Request | FrameKind::Deltas if !frame.addressed => {
                // Honest nodes address these to one peer: an answer is computed against its
                // asker's version, and only the asker may apply it.
                return Err(SyncError::BadPayload(
                    "a digest, request or reply for everyone".into(),
                ));
            }
            FrameKind::Digest | FrameKind::Request => {
                let list = DocList::decode(frame.payload)?;
                let (deltas, wanted) = self.compare(&list)?;
                let deltas = self.within_reply_credit(now, from, deltas);
                self.send_reply(out, now, from, list.answers, deltas);
                if frame.kind == FrameKind::Digest {
                    self.send_list(out, now, from, FrameKind::Request, wanted);
                }
            }
            FrameKind::Deltas => {
                let list = DocList::decode(frame.payload)?;
                let asked = self
                    .peers
                    .get(&from)
                    .is_some_and(|peer| list.answers != 0 && peer.asks.contains(&list.answers));
                if !asked {
                    // Not an answer to an ask of this instance (an earlier incarnation's, one
                    // before the document was shared again, another instance's of this key):
                    // its "the asker has these" assumptions may not hold here, so applying it
                    // could lose data. Said of nobody: a relay can redirect answers.
                    self.count_drop("UNASKED_REPLY");
                    return Ok(());
                }
                self.apply_all(out, from, list.docs)?;
            }
            FrameKind::Heartbeat => {}
            FrameKind::App => {
                let message = AppMessage::decode(frame.payload)?;
                out.events.push(Event::App {
                    channel: message.channel.to_owned(),
                    from,
                    bytes: message.bytes.to_vec(),
                });
            }
        }
        Ok(())
    }

    /// Applies each delta; returns those that made a document grow (to forward). Deltas of
    /// documents not shared here are skipped and counted; a bad delta stops the frame.
    fn apply_all<'a>(
        &mut self,
        out: &mut Output,
        from: PeerId,
        deltas: Vec<(&'a str, &'a [u8])>,
    ) -> Result<Vec<(&'a str, &'a [u8])>, SyncError> {
        let mut fresh = Vec::new();
        for (name, delta) in deltas {
            let Some(doc) = self.docs.get_mut(name) else {
                self.count_drop("UNKNOWN_DOCUMENT");
                continue;
            };
            let grew = doc.apply(delta).map_err(|reason| SyncError::BadDelta {
                doc: name.to_owned(),
                reason,
            })?;
            if grew {
                self.stats.deltas_applied += 1;
                out.events.push(Event::Changed {
                    doc: name.to_owned(),
                    from,
                });
                fresh.push((name, delta));
            }
        }
        Ok(fresh)
    }

    /// The replies to `from` that its reply credit pays for (refilled by
    /// `REPLY_FRAMES_PER_INTERVAL` frames per anti-entropy interval, up to
    /// `REPLY_FRAMES_BURST`); the rest is dropped and counted, and comes in a later round.
    fn within_reply_credit(
        &mut self,
        now: u64,
        from: PeerId,
        deltas: Vec<(String, Vec<u8>)>,
    ) -> Vec<(String, Vec<u8>)> {
        let frame = self.config.max_frame as u64;
        let interval = self.config.anti_entropy_interval_ms.max(1);
        let burst = REPLY_FRAMES_BURST * frame;
        let peer = self.peers.entry(from).or_insert_with(|| new_peer(true));
        let earned =
            now.saturating_sub(peer.refilled_at) * REPLY_FRAMES_PER_INTERVAL * frame / interval;
        peer.reply_credit = peer.reply_credit.saturating_add(earned).min(burst);
        peer.refilled_at = now;
        let mut kept = Vec::new();
        let mut over = false;
        for (name, delta) in deltas {
            let cost = (name.len() + delta.len() + ENTRY_OVERHEAD) as u64;
            if cost <= peer.reply_credit {
                peer.reply_credit -= cost;
                kept.push((name, delta));
            } else {
                over = true;
            }
        }
        if over {
            self.count_drop("REPLY_BUDGET");
        }
        kept
    }

    /// For a peer's digest: the deltas it lacks, and our versions of the documents where it
    /// has events we lack (a request). A document named twice is answered once.
    #[allow(clippy::type_complexity)]
    fn compare(
        &self,
        list: &DocList<'_>,
    ) -> Result<(Vec<(String, Vec<u8>)>, Vec<(String, Vec<u8>)>), SyncError> {
        let mut deltas = Vec::new();
        let mut wanted = Vec::new();
        let mut named = BTreeSet::new();
        for &(name, version) in &list.docs {
            let Some(doc) = self.docs.get(name) else {
                continue;
            };
            if !named.insert(name) {
                continue;
            }
            let theirs = VersionVector::from_bytes(version)
                .map_err(|e| SyncError::BadPayload(e.to_string()))?;
            if let Some(delta) = doc.delta_since(&theirs) {
                deltas.push((name.to_owned(), delta));
            }
            let Ok(mine) = doc.version() else {
                continue;
            };
            if theirs.iter().any(|(replica, n)| n > mine.get(replica)) {
                wanted.push((name.to_owned(), mine.to_bytes()));
            }
        }
        Ok((deltas, wanted))
    }

    fn flush(&mut self, out: &mut Output, now: u64) {
        self.flush_at = None;
        let pending = std::mem::take(&mut self.pending);
        if pending.is_empty() {
            return;
        }
        let broadcast = self.active_peers().len() <= self.config.broadcast_limit;
        let targets = if broadcast {
            vec![Recipient::Everyone]
        } else {
            let peers = self.choose_peers(None, self.config.fanout);
            peers.into_iter().map(Recipient::Peer).collect()
        };
        let hops = if broadcast {
            0
        } else {
            self.config.gossip_hops
        };
        let pending = self.join_pending(pending);
        for chunk in self.chunks(pending) {
            let payload = message::encode(&Gossip {
                hops,
                deltas: DocList::of(0, &chunk),
            });
            for to in &targets {
                self.send_to(out, now, *to, FrameKind::Gossip, &payload);
            }
            if broadcast {
                if let Some(sent) = out.transmits.last_mut() {
                    sent.archive = true;
                }
            } else if self.archiving {
                let archived = message::encode(&Gossip {
                    hops: 0,
                    deltas: DocList::of(0, &chunk),
                });
                self.send_to(out, now, Recipient::Archive, FrameKind::Gossip, &archived);
                if let Some(sent) = out.transmits.last_mut() {
                    sent.archive = true;
                }
            }
        }
    }

    /// Whether pushes this node sends to a few peers (past `broadcast_limit`) are also signed
    /// for the archive of a relay that keeps one (pushes to everyone always are marked).
    pub fn set_archiving(&mut self, on: bool) {
        self.archiving = on;
    }

    /// A frame from a relay's archive of the room, signed by `signer` (who need not be
    /// connected): its signature must verify for this room and for everyone, and only a push
    /// is taken. Its deltas are applied (joins are idempotent, so a frame seen before changes
    /// nothing) and nothing else: it is not forwarded, answered or scored, costs no peer
    /// table entry and no replay window. A frame that fails is counted as a drop.
    pub fn handle_archived(&mut self, signer: PeerId, bytes: &[u8]) -> Output {
        let mut out = self.output();
        self.stats.frames_received += 1;
        self.stats.bytes_received += bytes.len() as u64;
        let applied =
            SignedFrame::decode_at(bytes, self.config.max_frame, &self.room, &signer, None)
                .map(SignedFrame::into_frame)
                .and_then(|frame| match frame.kind {
                    FrameKind::Gossip if !frame.addressed && signer != self.id => {
                        let gossip = Gossip::decode(frame.payload)?;
                        self.apply_all(&mut out, signer, gossip.deltas.docs)
                            .map(|_| ())
                    }
                    _ => Err(SyncError::BadPayload("an archived frame is a push".into())),
                });
        match applied {
            Ok(()) => self.stats.archived_applied += 1,
            Err(error) => self.count_drop(error.code()),
        }
        out.wake_at = self.wake_at();
        out
    }

    /// The pending deltas with each document's joined (in the order documents were first
    /// changed).
    fn join_pending(&self, pending: Vec<(String, Vec<u8>)>) -> Vec<(String, Vec<u8>)> {
        let mut index: BTreeMap<String, usize> = BTreeMap::new();
        let mut by_doc: Vec<(String, Vec<Vec<u8>>)> = Vec::new();
        for (name, delta) in pending {
            let at = *index.entry(name.clone()).or_insert_with(|| {
                by_doc.push((name, Vec::new()));
                by_doc.len() - 1
            });
            by_doc[at].1.push(delta);
        }
        let mut joined = Vec::new();
        for (name, deltas) in by_doc {
            // Deltas too big together for one frame go as they are, in several.
            let size: usize = deltas
                .iter()
                .map(|d| d.len() + name.len() + ENTRY_OVERHEAD)
                .sum();
            let deltas = match self.docs.get(&name) {
                Some(doc) if deltas.len() > 1 && size <= self.max_payload() => {
                    doc.join_deltas(deltas)
                }
                _ => deltas,
            };
            joined.extend(deltas.into_iter().map(|delta| (name.clone(), delta)));
        }
        joined
    }

    /// Every document's version, for a digest (a document that cannot say is left out and
    /// counted as `BAD_DOCUMENT`).
    fn digest(&mut self) -> Vec<(String, Vec<u8>)> {
        let mut list = Vec::new();
        let mut bad = 0;
        for (name, doc) in &self.docs {
            match doc.version() {
                Ok(version) => list.push((name.clone(), version.to_bytes())),
                Err(_) => bad += 1,
            }
        }
        if bad > 0 {
            *self.stats.drops.entry("BAD_DOCUMENT").or_default() += bad;
        }
        list
    }

    /// Sends `entries` as a digest or request to `to`: one or more frames, each under the frame
    /// limit, naming a fresh random ask that `to`'s answers must echo.
    fn send_list(
        &mut self,
        out: &mut Output,
        now: u64,
        to: PeerId,
        kind: FrameKind,
        entries: Vec<(String, Vec<u8>)>,
    ) {
        if entries.is_empty() && kind != FrameKind::Digest {
            return;
        }
        let ask = self.rng.next_u64() | 1;
        if let Some(peer) = self.peers.get_mut(&to) {
            peer.asks[peer.next_ask % ASKS_KEPT] = ask;
            peer.next_ask = peer.next_ask.wrapping_add(1);
        }
        self.send_chunks(out, now, to, kind, ask, entries);
    }

    /// Sends `deltas` to `to` as the answer to its ask `ask`.
    fn send_reply(
        &mut self,
        out: &mut Output,
        now: u64,
        to: PeerId,
        ask: u64,
        deltas: Vec<(String, Vec<u8>)>,
    ) {
        if !deltas.is_empty() {
            self.send_chunks(out, now, to, FrameKind::Deltas, ask, deltas);
        }
    }

    /// `entries` as frames of `kind` naming `ask`, each under the frame limit.
    fn send_chunks(
        &mut self,
        out: &mut Output,
        now: u64,
        to: PeerId,
        kind: FrameKind,
        ask: u64,
        entries: Vec<(String, Vec<u8>)>,
    ) {
        for chunk in self.chunks(entries) {
            let payload = message::encode(&DocList::of(ask, &chunk));
            self.send(out, now, to, kind, &payload);
        }
    }

    /// Splits entries into lists that each fit one frame; an entry too large alone is dropped
    /// and counted (local changes are refused before that point).
    fn chunks(&mut self, entries: Vec<(String, Vec<u8>)>) -> Vec<Vec<(String, Vec<u8>)>> {
        let limit = self.max_payload();
        let mut chunks = vec![Vec::new()];
        let mut size = 0;
        for entry in entries {
            let entry_size = entry.0.len() + entry.1.len() + ENTRY_OVERHEAD;
            if entry_size > limit {
                self.count_drop("DELTA_TOO_LARGE");
                continue;
            }
            let full = chunks.last().is_some_and(|c: &Vec<_>| {
                size + entry_size > limit || c.len() == message::MAX_DOCS_PER_FRAME
            });
            if full {
                chunks.push(Vec::new());
                size = 0;
            }
            size += entry_size;
            chunks.last_mut().expect("never empty").push(entry);
        }
        chunks
    }

    fn send(&mut self, out: &mut Output, now: u64, to: PeerId, kind: FrameKind, payload: &[u8]) {
        self.send_to(out, now, Recipient::Peer(to), kind, payload);
    }

    fn send_to(
        &mut self,
        out: &mut Output,
        now: u64,
        to: Recipient,
        kind: FrameKind,
        payload: &[u8],
    ) {
        self.seq += 1;
        // A frame for one peer is bound to it (a relay cannot hand it to another).
        let bytes = match to {
            Recipient::Everyone | Recipient::Archive => {
                SignedFrame::encode(&self.key, &self.room, kind, self.seq, payload)
            }
            Recipient::Peer(peer) => {
                SignedFrame::encode_to(&self.key, &self.room, &peer, kind, self.seq, payload)
            }
        };
        self.transmit(out, now, to, bytes);
    }

    /// Hands signed `bytes` to the transports for `to`.
    fn transmit(&mut self, out: &mut Output, now: u64, to: Recipient, bytes: Vec<u8>) {
        self.stats.frames_sent += 1;
        self.stats.bytes_sent += bytes.len() as u64;
        for (id, peer) in self.peers.iter_mut() {
            if to == Recipient::Everyone || to == Recipient::Peer(*id) {
                peer.last_sent = now;
            }
        }
        out.transmits.push(Transmit {
            to,
            bytes,
            archive: false,
        });
    }

    /// Up to `count` active peers, at random, never `except`.
    fn choose_peers(&mut self, except: Option<PeerId>, count: usize) -> Vec<PeerId> {
        let mut candidates: Vec<PeerId> = self
            .active_peers()
            .into_iter()
            .filter(|p| Some(*p) != except)
            .collect();
        let k = count.min(candidates.len());
        for i in 0..k {
            let j = i + (self.rng.next_u64() % (candidates.len() - i) as u64) as usize;
            candidates.swap(i, j);
        }
        candidates.truncate(k);
        candidates
    }

    fn active_peers(&self) -> Vec<PeerId> {
        self.peers
            .iter()
            .filter(|(_, p)| p.active)
            .map(|(id, _)| *id)
            .collect()
    }

    fn is_banned(&self, now: u64, peer: &PeerId) -> bool {
        self.banned.get(peer).is_some_and(|until| now < *until)
    }

    fn count_drop(&mut self, code: &'static str) {
        *self.stats.drops.entry(code).or_default() += 1;
    }

    /// Counts the drop and lowers `from`'s score by what the offence says about it; bans it
    /// at the threshold. Replays cost nothing (anyone who relays frames can replay them);
    /// forgery costs much.
    fn punish(&mut self, out: &mut Output, now: u64, from: PeerId, error: &SyncError) {
        let code = error.code();
        self.count_drop(code);
        let cost = match error {
            // A replay may come from whoever relays the signer's frames (the relay, another
            // script on a BroadcastChannel): it costs the signer nothing.
            SyncError::Banned
            | SyncError::NotAPeer
            | SyncError::Replayed(_)
            | SyncError::TooOld { .. }
            // Another wire version: a peer not yet (or no longer) upgraded, not a bad one.
            | SyncError::BadVersion(_) => return,
            _ => 25,
        };
        // Only peers in the table are scored: a claimed sender outside it gains no entry.
        let Some(peer) = self.peers.get_mut(&from) else {
            return;
        };
        peer.info.score = peer.info.score.saturating_sub(cost);
        if peer.info.score <= self.config.ban_threshold {
            self.peers.remove(&from);
            self.banned.insert(from, now + self.config.ban_duration_ms);
            out.events.push(Event::PeerBanned {
                peer: from,
                reason: code,
            });
        }
    }

    fn max_payload(&self) -> usize {
        self.config.max_frame.saturating_sub(FRAME_OVERHEAD + 16)
    }

    fn output(&self) -> Output {
        Output {
            wake_at: self.wake_at(),
            ..Output::default()
        }
    }
}

fn new_peer(active: bool) -> Peer {
    Peer {
        info: PeerInfo {
            score: 0,
            last_heard: None,
        },
        active,
        last_sent: 0,
        reply_credit: u64::MAX,
        refilled_at: 0,
        asks: [0; ASKS_KEPT],
        next_ask: 0,
    }
}

impl std::fmt::Debug for SyncNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncNode")
            .field("id", &crate::short_id(&self.id))
            .field("documents", &self.docs.keys().collect::<BTreeSet<_>>())
            .field("peers", &self.peers.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}
