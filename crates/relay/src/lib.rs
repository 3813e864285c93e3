//! The Chrysalis relay: a WebSocket server where peers authenticate with their Ed25519 identity,
//! join rooms, see who else is there, and exchange opaque frames and WebRTC signalling. It never
//! parses CRDT state.
//!
//! The relay is internet-facing and its peers do not trust it (they sign their own frames), so its
//! job is availability with bounded resources against anyone who can open sockets, hold free
//! identities, or misbehave after authenticating. Every limit is a [`RelayConfig`] field:
//! unauthenticated sockets in all and per address (the oldest gives way to a newcomer at the
//! global cap), the time from accept to authentication, the size of the HTTP request and of the
//! auth answer, the frame size, a rate on every kind of message, each receiver's queue in bytes
//! (and all queues of one address together), and authenticated connections per peer, per
//! address, per room and address, per room, and in all. `/health` reports what the relay holds. See [`protocol`] for the wire format.

mod admission;
mod cluster;
mod http;
mod metrics;
/// The wire format (its own crate, shared with the agent runtime's client).
pub use chrysalis_relay_protocol as protocol;
mod socket;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use admission::{Ticket, Usage};
use protocol::bus::{BusMessage, RelayId};
use protocol::{
    Access, Capability, ClientMessage, Handle, MAX_ROOM_NAME, PROTOCOL_VERSION, RoomPeer,
    ServerMessage, TO_ARCHIVE, TO_EVERYONE, TO_EVERYONE_AND_ARCHIVE, TO_PEER,
};
use socket::Outbox;

/// A peer's identity: its Ed25519 public key.
pub type PeerId = [u8; 32];

/// Limits and timeouts. `Default` is what the binary uses without flags. An address is an IPv4
/// address or an IPv6 /64 (what one host or customer is given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayConfig {
    /// Issuers whose [`protocol::Capability`] tokens this relay accepts.
    pub trusted_issuers: Vec<PeerId>,
    /// Rooms whose names start with one of these need a capability (`""`: every room).
    pub capability_rooms: Vec<String>,
    /// A Redis (`redis://…`) shared with other relays: they then share rooms. None: this
    /// relay alone holds its rooms, in memory.
    pub redis: Option<String>,
    /// Keep each room's recent pushes in Redis and hand them to joining peers (needs `redis`).
    pub archive: bool,
    /// How long an archived push is kept.
    pub archive_max_age: Duration,
    /// The most bytes of archived pushes kept per room (at most half of `max_queue_bytes`: the
    /// hand-off goes through the joiner's queue).
    pub archive_max_bytes: usize,
    /// The largest message a peer may send once authenticated, header included (bytes).
    pub max_frame: usize,
    /// Sustained messages per second per connection (binary, text and ping alike).
    pub rate_per_second: u32,
    /// Messages a connection may send in a burst above the rate.
    pub burst: u32,
    /// Connections one peer id may hold at once (all rooms).
    pub max_connections_per_peer: usize,
    /// Peers in one room.
    pub max_room_peers: usize,
    /// Authenticated connections in all.
    pub max_connections: usize,
    /// Authenticated connections from one address.
    pub max_connections_per_address: usize,
    /// Connections to one room from one address, so that one address cannot fill a room.
    pub max_room_connections_per_address: usize,
    /// Sockets not yet authenticated, in all; at the cap a new socket closes the oldest.
    pub max_pending: usize,
    /// Sockets not yet authenticated from one address; beyond it new ones are closed at once.
    pub max_pending_per_address: usize,
    /// Time from accepting a socket to its authentication; a plain HTTP connection is closed then.
    pub auth_timeout: Duration,
    /// Bytes queued for one receiver; a receiver that falls further behind is closed.
    pub max_queue_bytes: usize,
    /// Bytes queued for all receivers of one address; past it, the receiver pushed to is closed.
    pub max_queue_bytes_per_address: usize,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            trusted_issuers: Vec::new(),
            capability_rooms: Vec::new(),
            redis: None,
            archive: false,
            archive_max_age: Duration::from_secs(3600),
            archive_max_bytes: 2 << 20,
            max_frame: (1 << 20) + 64,
            rate_per_second: 500,
            burst: 2000,
            max_connections_per_peer: 4,
            max_room_peers: 256,
            max_connections: 10_000,
            max_connections_per_address: 64,
            max_room_connections_per_address: 16,
            max_pending: 1024,
            max_pending_per_address: 16,
            auth_timeout: Duration::from_secs(10),
            max_queue_bytes: 4 << 20,
            max_queue_bytes_per_address: 16 << 20,
        }
    }
}

/// The prefix of the relays' keys and channels in Redis.
pub(crate) const REDIS_PREFIX: &str = "chr";

/// Counters, shown at `/health`.
#[derive(Debug, Default)]
pub struct RelayStats {
    /// Redis calls answered (scripts and publishing pipelines), and their time in all (µs).
    pub redis_calls: AtomicU64,
    /// See `redis_calls`.
    pub redis_micros: AtomicU64,
    /// Connections to Redis lost.
    pub redis_reconnects: AtomicU64,
    /// Messages read from the rooms' channels.
    pub redis_received: AtomicU64,
    /// Rooms cleared of a dead relay's peers by this relay.
    pub reaped: AtomicU64,
    /// Heartbeats that found this relay's deadline passed while it stayed connected.
    pub lapses: AtomicU64,
    /// Pushes appended to rooms' archives.
    pub archived: AtomicU64,
    /// Open, authenticated connections.
    pub connections: AtomicU64,
    /// Open sockets not yet authenticated.
    pub pending: AtomicU64,
    /// Authenticated connections since start.
    pub connections_total: AtomicU64,
    /// Binary frames received from peers.
    pub frames_received: AtomicU64,
    /// Their bytes.
    pub bytes_received: AtomicU64,
    /// Binary frames delivered to a receiver's queue.
    pub frames_forwarded: AtomicU64,
    /// Their bytes.
    pub bytes_forwarded: AtomicU64,
    /// Refusals by code.
    pub refused: Mutex<BTreeMap<&'static str, u64>>,
}

impl RelayStats {
    fn refuse(&self, code: &'static str) {
        self.refuse_many(code, 1);
    }

    fn refuse_many(&self, code: &'static str, count: u64) {
        *self
            .refused
            .lock()
            .expect("stats lock")
            .entry(code)
            .or_default() += count;
    }

    fn redis_round_trip(&self, took: Duration) {
        self.redis_calls.fetch_add(1, Ordering::Relaxed);
        self.redis_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// The `/health` body.
    pub fn to_json(&self, rooms: usize) -> serde_json::Value {
        serde_json::json!({
            "status": "ok",
            "rooms": rooms,
            "connections": self.connections.load(Ordering::Relaxed),
            "pending": self.pending.load(Ordering::Relaxed),
            "connectionsTotal": self.connections_total.load(Ordering::Relaxed),
            "framesForwarded": self.frames_forwarded.load(Ordering::Relaxed),
            "bytesForwarded": self.bytes_forwarded.load(Ordering::Relaxed),
            "refused": *self.refused.lock().expect("stats lock"),
        })
    }
}

/// One room: its peers' connections and handles, and how many connections come from each
/// address.
#[derive(Default)]
struct Room {
    peers: HashMap<PeerId, Vec<Outbox>>,
    per_address: HashMap<IpAddr, usize>,
    /// Each peer's handle while it has a connection here, and the peer of each handle.
    handles: HashMap<PeerId, Handle>,
    by_handle: HashMap<Handle, PeerId>,
    next_handle: Handle,
    /// Read-only connections per peer (a peer with any is not signalled: a data channel would
    /// pass the relay's check).
    readers: HashMap<PeerId, usize>,
    /// In a cluster: the peers other relays hold, which relays, and whether they may write.
    remote: HashMap<PeerId, Remote>,
    /// In a cluster: whether the room's snapshot from Redis is applied; until then presence
    /// events are kept in `buffered` (in order) and applied after it.
    synced: bool,
    buffered: Vec<(RelayId, BusMessage<'static>)>,
    /// In a cluster: connections admitted or being admitted here; the room stays subscribed
    /// while there are any.
    interest: usize,
    /// In a cluster: connections of each peer waiting for Redis to admit them.
    pending: HashMap<PeerId, usize>,
}

/// A peer of the room held by other relays.
struct Remote {
    relays: HashSet<RelayId>,
    write: bool,
}

impl Room {
    /// Whether `peer` is in the room (here or, in a cluster, on another relay).
    fn present(&self, peer: &PeerId) -> bool {
        self.handles.contains_key(peer)
    }

    /// Whether `peer` may write (no read-only connection here or elsewhere).
    fn may_write(&self, peer: &PeerId) -> bool {
        !self.readers.contains_key(peer) && self.remote.get(peer).is_none_or(|r| r.write)
    }

    /// Records `peer` under the handle Redis gave it (a cluster); returns it.
    fn hold(&mut self, peer: PeerId, handle: Handle) -> Handle {
        if let Some(old) = self.handles.insert(peer, handle)
            && old != handle
        {
            self.by_handle.remove(&old);
        }
        self.by_handle.insert(handle, peer);
        handle
    }

    /// Tells this relay's peers of the room `message`.
    fn tell(&self, message: &Message) {
        for outbox in self.peers.values().flatten() {
            outbox.push(message.clone());
        }
    }

    /// Applies another relay's presence change (`Joined` or `Left`), telling this relay's
    /// peers when a peer arrives in the room or leaves it.
    fn apply(&mut self, origin: RelayId, event: BusMessage<'static>) {
        match event {
            BusMessage::Joined {
                peer,
                handle,
                write,
            } => {
                let first = !self.present(&peer);
                let remote = self.remote.entry(peer).or_insert(Remote {
                    relays: HashSet::new(),
                    write,
                });
                remote.relays.insert(origin);
                remote.write &= write;
                if first {
                    self.hold(peer, handle);
                    self.tell(&text(&ServerMessage::PeerJoined {
                        peer: hex::encode(peer),
                        handle,
                        write,
                    }));
                }
            }
            BusMessage::Left { peer } => {
                let Some(remote) = self.remote.get_mut(&peer) else {
                    return;
                };
                remote.relays.remove(&origin);
                if remote.relays.is_empty() {
                    self.remote.remove(&peer);
                    self.forget(&peer);
                }
            }
            // Frames and signals are delivered, not applied.
            BusMessage::Frame { .. } | BusMessage::Signal { .. } => {}
        }
    }

    /// Drops `peer`'s handle and tells this relay's peers it left, unless it is still held
    /// here or elsewhere.
    fn forget(&mut self, peer: &PeerId) {
        if self.peers.contains_key(peer) || self.remote.contains_key(peer) {
            return;
        }
        if let Some(handle) = self.handles.remove(peer) {
            if self.by_handle.get(&handle) == Some(peer) {
                self.by_handle.remove(&handle);
            }
            self.tell(&text(&ServerMessage::PeerLeft {
                peer: hex::encode(peer),
            }));
        }
    }

    /// `peer`'s handle, given at its first connection (the next number no peer holds).
    fn handle_of(&mut self, peer: PeerId) -> Handle {
        if let Some(handle) = self.handles.get(&peer) {
            return *handle;
        }
        while self.by_handle.contains_key(&self.next_handle) {
            self.next_handle = self.next_handle.wrapping_add(1);
        }
        let handle = self.next_handle;
        self.next_handle = self.next_handle.wrapping_add(1);
        self.handles.insert(peer, handle);
        self.by_handle.insert(handle, peer);
        handle
    }
}

#[derive(Default)]
struct Hub {
    rooms: HashMap<String, Room>,
    /// Connections per peer id over all rooms.
    per_peer: HashMap<PeerId, usize>,
    /// Open sockets per address; an address leaves the map with its last socket.
    per_address: HashMap<IpAddr, Usage>,
    /// Unauthenticated sockets, oldest first: dropping one's sender closes it.
    pending: BTreeMap<u64, watch::Sender<()>>,
    /// Bumped when Redis lost the rooms and they were dropped here: a session of an older
    /// generation touches no room.
    generation: u64,
    /// The connections that presented each capability (by id), to close if it is revoked.
    by_token: HashMap<[u8; 16], Vec<Outbox>>,
    /// Capabilities revoked lately, oldest first: a join that Redis admitted before the
    /// revocation but that registers after its announcement is refused here.
    revoked: VecDeque<(Instant, [u8; 16])>,
}

/// How long a revocation is remembered for joins under way (longer than a join and its
/// archive read may take).
const REVOKED_KEPT: Duration = Duration::from_secs(60);
/// Revocations remembered at most (announced by whoever may write to Redis, not by peers).
const REVOKED_MAX: usize = 4096;

struct Relay {
    config: RelayConfig,
    hub: Mutex<Hub>,
    stats: RelayStats,
    next_id: AtomicU64,
    shutdown: watch::Receiver<bool>,
    /// Woken whenever a socket closes, for a shutdown that waits for the last.
    closed: Notify,
    /// Rooms shared with other relays through Redis (`RelayConfig::redis`).
    cluster: Option<cluster::Cluster>,
}

/// A running relay: its address, counters, and the handle that stops it.
pub struct RelayHandle {
    /// Where it listens.
    pub addr: SocketAddr,
    relay: Arc<Relay>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl RelayHandle {
    /// The relay's counters.
    pub fn stats(&self) -> &RelayStats {
        &self.relay.stats
    }

    /// Graceful shutdown: stops accepting, closes every connection with 1001 (going away) and
    /// waits until every socket is closed.
    pub async fn shutdown(self) -> std::io::Result<()> {
        let _ = self.stop.send(true);
        self.task.await.map_err(std::io::Error::other)?;
        loop {
            let closed = self.relay.closed.notified();
            if self
                .relay
                .hub
                .lock()
                .expect("hub lock")
                .per_address
                .is_empty()
            {
                break;
            }
            closed.await;
        }
        // The other relays hear that this one's peers left.
        if let Some(cluster) = &self.relay.cluster {
            let (done, flushed) = tokio::sync::oneshot::channel();
            cluster.command(cluster::Command::Flush { done });
            let _ = tokio::time::timeout(cluster::JOIN_TIMEOUT, flushed).await;
        }
        Ok(())
    }
}

/// Revokes capability `id` until `until` (Unix seconds) in the relays' Redis at `url`.
pub async fn revoke_capability(url: &str, id: [u8; 16], until: u64) -> Result<(), String> {
    cluster::revoke(url, id, until)
        .await
        .map_err(|e| e.to_string())
}

/// Starts a relay on `listener` (e.g. `127.0.0.1:0` for tests).
pub fn start(listener: TcpListener, config: RelayConfig) -> std::io::Result<RelayHandle> {
    let addr = listener.local_addr()?;
    let (stop, shutdown) = watch::channel(false);
    let cluster = match &config.redis {
        Some(_) => Some(cluster::Cluster::new(REDIS_PREFIX)?),
        None => None,
    };
    let redis = config.redis.clone();
    let relay = Arc::new(Relay {
        config,
        hub: Mutex::default(),
        stats: RelayStats::default(),
        next_id: AtomicU64::new(1),
        shutdown,
        closed: Notify::new(),
        cluster,
    });
    if let Some(url) = redis {
        cluster::Cluster::run(&relay, url);
    }
    let task = tokio::spawn(http::accept(relay.clone(), listener));
    Ok(RelayHandle {
        addr,
        relay,
        stop,
        task,
    })
}

fn text(message: &ServerMessage) -> Message {
    Message::text(message.to_text())
}

fn close(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code: code.into(),
        reason: reason.into(),
    }))
}

/// Close codes: going away, policy violation, message too big, try again later, service restart.
const GOING_AWAY: u16 = 1001;
const POLICY: u16 = 1008;
const TOO_BIG: u16 = 1009;
const TRY_AGAIN_LATER: u16 = 1013;
const SERVICE_RESTART: u16 = 1012;

/// Seconds since the Unix epoch.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Resolves when the relay is shutting down.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

/// Who an authenticated connection is.
struct Session {
    peer: PeerId,
    /// The peer's handle in the room.
    handle: Handle,
    room: String,
    address: IpAddr,
    outbox: Outbox,
    /// False for a read-only capability.
    write: bool,
    /// When its capability expires (Unix seconds), if it presented one.
    expires_at: Option<u64>,
    /// Its capability's id, if it presented one.
    token: Option<[u8; 16]>,
    /// The hub's generation it joined in.
    generation: u64,
}

/// A verified auth answer.
#[derive(Clone)]
struct Answer {
    room: String,
    peer: PeerId,
    /// False for a read-only capability.
    write: bool,
    /// When its capability expires (Unix seconds), if it presented one.
    expires_at: Option<u64>,
    /// Its capability's id, if it presented one.
    token: Option<[u8; 16]>,
    /// It takes the room's archive (it asked, and this relay keeps one).
    archive: bool,
}

/// The end of a connection: what the peer is told, and the close code.
struct Closing {
    code: &'static str,
    message: String,
    close: u16,
}

impl Closing {
    /// A policy violation.
    fn policy(code: &'static str, message: impl Into<String>) -> Self {
        Closing {
            code,
            message: message.into(),
            close: POLICY,
        }
    }

    /// The error message and the close frame.
    fn messages(&self) -> [Message; 2] {
        [
            text(&ServerMessage::error(self.code, self.message.clone())),
            close(self.close, self.code),
        ]
    }
}

enum Refusal {
    /// Drop this message and count it (the peer was told already).
    Count(&'static str),
    /// Drop this message and tell the peer.
    Drop(&'static str, String),
    /// Tell the peer and close the connection.
    Close(Closing),
    /// The peer closed.
    Closed,
}

impl Relay {
    /// Checks an auth answer and admits its peer to the room within the limits (through
    /// Redis in a cluster, which gives the handle).
    async fn authenticate(
        &self,
        nonce: &[u8],
        answer: &str,
        ticket: &mut Ticket,
    ) -> Result<(Session, mpsc::UnboundedReceiver<Message>), Closing> {
        let answer = self.check_answer(nonce, answer)?;
        let Some(cluster) = &self.cluster else {
            return self.register(answer, None, None, ticket, 0);
        };
        let (joining, generation) = {
            let mut hub = self.hub.lock().expect("hub lock");
            self.refusal(&hub, &answer, ticket.address)?;
            let generation = hub.generation;
            let members = hub.rooms.entry(answer.room.clone()).or_default();
            members.interest += 1;
            *members.pending.entry(answer.peer).or_default() += 1;
            // Even for a peer already here: the script is idempotent and says which handle
            // Redis holds for it (its other connection may close meanwhile).
            let (reply, joined) = tokio::sync::oneshot::channel();
            cluster.command(cluster::Command::Join {
                room: answer.room.clone(),
                peer: answer.peer,
                write: answer.write,
                token: answer.token,
                generation,
                reply,
            });
            (joined, generation)
        };
        let joined = match tokio::time::timeout(cluster::JOIN_TIMEOUT, joining).await {
            Ok(Ok(Ok((handle, _)))) => Ok(Some(handle)),
            Ok(Ok(Err(code))) => Err(code),
            _ => Err("REDIS_UNAVAILABLE"),
        };
        let archived = match (&joined, answer.archive) {
            (Ok(_), true) => Some(
                cluster
                    .read_archive(&answer.room, &self.config, self.config.max_queue_bytes / 2)
                    .await,
            ),
            _ => None,
        };
        let registered = joined
            .map_err(|code| match code {
                "ROOM_FULL" => Closing::policy(
                    code,
                    format!("at most {} peers per room", self.config.max_room_peers),
                ),
                "CAPABILITY_REVOKED" => Closing::policy(code, "the capability was revoked"),
                _ => Closing {
                    code,
                    message: "the relay cannot reach its Redis: try again later".into(),
                    close: TRY_AGAIN_LATER,
                },
            })
            .and_then(|handle| self.register(answer.clone(), handle, archived, ticket, generation));
        let mut hub = self.hub.lock().expect("hub lock");
        if hub.generation != generation {
            return registered;
        }
        let members = hub.rooms.entry(answer.room.clone()).or_default();
        if let Some(count) = members.pending.get_mut(&answer.peer) {
            *count -= 1;
            if *count == 0 {
                members.pending.remove(&answer.peer);
            }
        }
        if registered.is_err() {
            members.interest -= 1;
            self.release(&mut hub, &answer.room, &answer.peer);
        }
        registered
    }

    /// A verified auth answer: its room and peer, and what its capability allows.
    fn check_answer(&self, nonce: &[u8], answer: &str) -> Result<Answer, Closing> {
        let Ok(ClientMessage::Auth {
            version,
            room,
            peer,
            signature,
            capability,
            archive,
        }) = serde_json::from_str(answer)
        else {
            return Err(Closing::policy(
                "UNAUTHENTICATED",
                "expected {\"type\":\"auth\",…}",
            ));
        };
        if version != PROTOCOL_VERSION {
            return Err(Closing::policy(
                "VERSION",
                format!(
                    "this relay speaks protocol version {PROTOCOL_VERSION}, the client {version}: \
                     upgrade the client"
                ),
            ));
        }
        if room.is_empty() || room.len() > MAX_ROOM_NAME {
            return Err(Closing::policy(
                "BAD_ROOM",
                format!("room names are 1 to {MAX_ROOM_NAME} bytes"),
            ));
        }
        let peer = protocol::parse_peer(&peer)
            .ok_or_else(|| Closing::policy("AUTH_FAILED", "peer must be 64 hex digits"))?;
        let signature = hex::decode(&signature).unwrap_or_default();
        if !chrysalis_crypto::ed25519_verify(
            &peer,
            &protocol::auth_message(nonce, &room),
            &signature,
        ) {
            return Err(Closing::policy(
                "AUTH_FAILED",
                "the signature does not verify under the peer's key",
            ));
        }
        let config = &self.config;
        let capability = match capability {
            Some(token) => Some(
                Capability::check(&token, &config.trusted_issuers, &room, &peer, unix_now())
                    .map_err(|refusal| Closing::policy(refusal.code, refusal.message))?,
            ),
            None if config.capability_rooms.iter().any(|p| room.starts_with(p)) => {
                return Err(Closing::policy(
                    "CAPABILITY_REQUIRED",
                    "this room requires a capability from an issuer the relay trusts",
                ));
            }
            None => None,
        };
        let write = capability
            .as_ref()
            .is_none_or(|c| c.access == Access::ReadWrite);
        Ok(Answer {
            room,
            peer,
            write,
            token: capability.as_ref().map(|c| c.id),
            expires_at: capability.map(|c| c.expires_at),
            archive: archive && self.config.archive && self.cluster.is_some(),
        })
    }

    /// Why the relay's limits refuse `answer` from `address` now, if they do.
    fn refusal(&self, hub: &Hub, answer: &Answer, address: IpAddr) -> Result<(), Closing> {
        let config = &self.config;
        let (room, peer) = (&answer.room, answer.peer);
        let members = hub.rooms.get(room);
        let first = members.is_none_or(|m| !m.present(&peer));
        let refusal = if self.stats.connections.load(Ordering::Relaxed) as usize
            >= config.max_connections
        {
            Some(("RELAY_FULL", config.max_connections, "connections in all"))
        } else if hub.per_peer.get(&peer).copied().unwrap_or(0) >= config.max_connections_per_peer {
            Some((
                "TOO_MANY_CONNECTIONS",
                config.max_connections_per_peer,
                "connections per peer",
            ))
        } else if hub
            .per_address
            .get(&address)
            .is_some_and(|u| u.connections >= config.max_connections_per_address)
        {
            Some((
                "ADDRESS_LIMIT",
                config.max_connections_per_address,
                "connections from one address",
            ))
        } else if members
            .and_then(|m| m.per_address.get(&address))
            .is_some_and(|n| *n >= config.max_room_connections_per_address)
        {
            Some((
                "ADDRESS_LIMIT",
                config.max_room_connections_per_address,
                "connections to one room from one address",
            ))
        } else if first && members.map_or(0, |m| m.handles.len()) >= config.max_room_peers {
            Some(("ROOM_FULL", config.max_room_peers, "peers per room"))
        } else {
            None
        };
        match refusal {
            Some((code, limit, what)) => {
                Err(Closing::policy(code, format!("at most {limit} {what}")))
            }
            None => Ok(()),
        }
    }

    /// Admits a checked answer within the limits: the session and its queue. `handle` is the
    /// one Redis gave (a cluster), else the room gives one.
    fn register(
        &self,
        answer: Answer,
        handle: Option<Handle>,
        archived: Option<Vec<(PeerId, Vec<u8>)>>,
        ticket: &mut Ticket,
        generation: u64,
    ) -> Result<(Session, mpsc::UnboundedReceiver<Message>), Closing> {
        let config = &self.config;
        let mut hub = self.hub.lock().expect("hub lock");
        if hub.generation != generation {
            return Err(Closing {
                code: "REDIS_RESET",
                message: "the relay's place in Redis was lost: join again".into(),
                close: TRY_AGAIN_LATER,
            });
        }
        self.refusal(&hub, &answer, ticket.address)?;
        if let Some(token) = &answer.token
            && hub.revoked.iter().any(|(_, id)| id == token)
        {
            return Err(Closing::policy(
                "CAPABILITY_REVOKED",
                "the capability was revoked",
            ));
        }
        let Answer {
            room,
            peer,
            write,
            expires_at,
            token,
            archive,
        } = answer;
        let first = hub.rooms.get(&room).is_none_or(|m| !m.present(&peer));
        let (outbox, rx) = Outbox::new(
            self.next_id.fetch_add(1, Ordering::Relaxed),
            config.max_queue_bytes,
            hub.per_address[&ticket.address].queued.clone(),
        );
        ticket.authenticated(&mut hub);
        *hub.per_peer.entry(peer).or_default() += 1;
        let members = hub.rooms.entry(room.clone()).or_default();
        *members.per_address.entry(ticket.address).or_default() += 1;
        if !write {
            *members.readers.entry(peer).or_default() += 1;
        }
        let id = hex::encode(peer);
        let handle = match handle {
            Some(handle) => members.hold(peer, handle),
            None => members.handle_of(peer),
        };
        let mut peers: Vec<RoomPeer> = members
            .handles
            .iter()
            .filter(|(p, _)| **p != peer)
            .map(|(p, handle)| RoomPeer {
                peer: hex::encode(p),
                handle: *handle,
                write: members.may_write(p),
            })
            .collect();
        peers.sort_by_key(|p| p.handle);
        if first {
            let joined = text(&ServerMessage::PeerJoined {
                peer: id.clone(),
                handle,
                write,
            });
            for other in members.peers.values().flatten() {
                other.push(joined.clone());
            }
        }
        let archived = archived.filter(|_| archive);
        outbox.push(text(&ServerMessage::Welcome {
            peer: id,
            handle,
            peers,
            write,
            archive: archived.as_ref().map(|a| a.len() as u32),
        }));
        // The hand-off goes out before any live frame (the room's lock is held).
        for (signer, frame) in archived.into_iter().flatten() {
            outbox.push(Message::Binary([&signer[..], &frame].concat().into()));
        }
        members.peers.entry(peer).or_default().push(outbox.clone());
        if let Some(token) = token {
            hub.by_token.entry(token).or_default().push(outbox.clone());
        }
        self.stats.connections_total.fetch_add(1, Ordering::Relaxed);
        let session = Session {
            peer,
            handle,
            room,
            address: ticket.address,
            outbox,
            write,
            expires_at,
            token,
            generation,
        };
        Ok((session, rx))
    }

    /// Applies the rate limit to any message, then forwards frames and signals.
    fn handle(
        &self,
        session: &Session,
        bucket: &mut TokenBucket,
        message: Message,
    ) -> Result<(), Refusal> {
        if let Message::Close(_) = message {
            return Err(Refusal::Closed);
        }
        self.limit(bucket)?;
        match message {
            Message::Binary(bytes) => {
                self.stats.frames_received.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .bytes_received
                    .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                let archiving = self.config.archive && self.cluster.is_some();
                let (to, frame, archive) = match bytes.split_first() {
                    Some((&TO_EVERYONE, frame)) => (Some(To::Everyone), frame, false),
                    Some((&TO_PEER, rest)) => match protocol::take_handle(rest) {
                        Some((to, frame)) => (Some(To::Handle(to)), frame, false),
                        None => return Err(bad_frame()),
                    },
                    Some((&TO_EVERYONE_AND_ARCHIVE, frame)) if archiving => {
                        (Some(To::Everyone), frame, true)
                    }
                    Some((&TO_ARCHIVE, frame)) if archiving => (None, frame, true),
                    _ => return Err(bad_frame()),
                };
                if !session.write && !protocol::read_only_may_send(frame) {
                    return Err(Refusal::Drop(
                        "READ_ONLY",
                        "a read-only capability sends digests, requests and heartbeats only".into(),
                    ));
                }
                if archive {
                    let largest = self.config.archive_max_bytes / 16;
                    if !protocol::archivable(frame)
                        || frame.len() < MIN_SIGNED_FRAME
                        || frame.len() > largest
                    {
                        return Err(Refusal::Drop(
                            "NOT_ARCHIVABLE",
                            format!(
                                "the archive keeps pushes (sync frames of kind 1) of \
                                 {MIN_SIGNED_FRAME} to {largest} bytes"
                            ),
                        ));
                    }
                    self.cluster().archive(&session.room, &session.peer, frame);
                }
                let Some(to) = to else {
                    return Ok(());
                };
                let mut forwarded = Vec::with_capacity(5 + frame.len());
                protocol::put_handle(&mut forwarded, session.handle);
                forwarded.extend_from_slice(frame);
                let bus = BusMessage::Frame {
                    from: session.handle,
                    to: match to {
                        To::Handle(handle) => Some(handle),
                        _ => None,
                    },
                    frame,
                };
                self.forward(session, to, Message::Binary(forwarded.into()), bus);
                Ok(())
            }
            Message::Text(body) => match serde_json::from_str(body.as_str()) {
                Ok(ClientMessage::Signal { to, data }) => {
                    let to = protocol::parse_peer(&to).ok_or(Refusal::Drop(
                        "BAD_SIGNAL",
                        "`to` must be 64 hex digits".into(),
                    ))?;
                    if !session.write || self.reads_only(&session.room, &to) {
                        // A data channel would carry what the relay refuses.
                        return Err(Refusal::Drop(
                            "READ_ONLY",
                            "no signalling to or from a read-only peer".into(),
                        ));
                    }
                    let bytes = serde_json::to_vec(&data).expect("JSON values serialise");
                    let bus = BusMessage::Signal {
                        from: session.peer,
                        to,
                        data: &bytes,
                    };
                    let signal = text(&ServerMessage::Signal {
                        from: hex::encode(session.peer),
                        data,
                    });
                    self.forward(session, To::Peer(to), signal, bus);
                    Ok(())
                }
                _ => Err(Refusal::Drop(
                    "BAD_MESSAGE",
                    "expected {\"type\":\"signal\",\"to\":…,\"data\":…}".into(),
                )),
            },
            // Pings and pongs: the socket answers pings itself.
            _ => Ok(()),
        }
    }

    /// The rate limit: the first refusal in a window is told, the next are counted, and more
    /// than four bursts' worth in a window close the connection.
    fn limit(&self, bucket: &mut TokenBucket) -> Result<(), Refusal> {
        if bucket.take() {
            return Ok(());
        }
        if bucket.refused > u64::from(self.config.burst) * 4 {
            Err(Refusal::Close(Closing::policy(
                "RATE_LIMITED",
                "flooding: connection closed",
            )))
        } else if bucket.refused > 1 {
            Err(Refusal::Count("RATE_LIMITED"))
        } else {
            Err(Refusal::Drop(
                "RATE_LIMITED",
                format!(
                    "more than {} messages per second: messages dropped",
                    self.config.rate_per_second
                ),
            ))
        }
    }

    /// Queues `message` for a peer of the session's room (all its connections) or for all but
    /// the sender. A receiver whose queue would pass its bound is closed instead. In a cluster,
    /// `bus` goes to the other relays when the recipients include peers they hold.
    fn forward(&self, session: &Session, to: To, message: Message, bus: BusMessage<'_>) {
        let hub = self.hub.lock().expect("hub lock");
        let Some(members) = hub
            .rooms
            .get(&session.room)
            .filter(|_| hub.generation == session.generation)
        else {
            return;
        };
        let to = match to {
            To::Everyone => None,
            To::Peer(peer) => Some(peer),
            To::Handle(handle) => match members.by_handle.get(&handle) {
                Some(peer) => Some(*peer),
                None => {
                    // Its peer left (or never was): the frame reaches nobody, counted.
                    self.stats.refuse("UNKNOWN_HANDLE");
                    return;
                }
            },
        };
        let targets = members
            .peers
            .iter()
            .filter(|(peer, _)| match to {
                Some(to) => **peer == to,
                None => **peer != session.peer,
            })
            .flat_map(|(_, boxes)| boxes);
        self.deliver(targets, &message);
        let elsewhere = match to {
            None => !members.remote.is_empty(),
            Some(to) => !members.peers.contains_key(&to) && members.remote.contains_key(&to),
        };
        if elsewhere && let Some(cluster) = &self.cluster {
            cluster.publish(&session.room, &bus);
        }
    }

    /// Whether `peer` holds a read-only connection to `room`.
    fn reads_only(&self, room: &str, peer: &PeerId) -> bool {
        let hub = self.hub.lock().expect("hub lock");
        hub.rooms.get(room).is_some_and(|m| !m.may_write(peer))
    }

    /// Removes a closing connection from its room and tells the others if its peer left.
    fn leave(&self, session: &Session) {
        let mut hub = self.hub.lock().expect("hub lock");
        if let Some(token) = session.token
            && let Some(boxes) = hub.by_token.get_mut(&token)
        {
            boxes.retain(|b| b.id != session.outbox.id);
            if boxes.is_empty() {
                hub.by_token.remove(&token);
            }
        }
        if let Some(count) = hub.per_peer.get_mut(&session.peer) {
            *count -= 1;
            if *count == 0 {
                hub.per_peer.remove(&session.peer);
            }
        }
        if hub.generation != session.generation {
            return;
        }
        let Some(members) = hub.rooms.get_mut(&session.room) else {
            return;
        };
        if let Some(count) = members.per_address.get_mut(&session.address) {
            *count -= 1;
            if *count == 0 {
                members.per_address.remove(&session.address);
            }
        }
        if !session.write
            && let Some(count) = members.readers.get_mut(&session.peer)
        {
            *count -= 1;
            if *count == 0 {
                members.readers.remove(&session.peer);
            }
        }
        if let Some(boxes) = members.peers.get_mut(&session.peer) {
            boxes.retain(|b| b.id != session.outbox.id);
            if boxes.is_empty() {
                members.peers.remove(&session.peer);
                members.forget(&session.peer);
            }
        }
        if self.cluster.is_some() {
            members.interest -= 1;
        }
        self.release(&mut hub, &session.room, &session.peer);
    }

    /// After a connection of `peer` to `room` closed or failed to open: in a cluster, Redis
    /// hears when this relay holds the peer no more; the room goes (and its subscription) when
    /// nobody here is in it or joining it.
    fn release(&self, hub: &mut Hub, room: &str, peer: &PeerId) {
        let Some(members) = hub.rooms.get_mut(room) else {
            return;
        };
        let Some(cluster) = &self.cluster else {
            if members.peers.is_empty() {
                hub.rooms.remove(room);
            }
            return;
        };
        if !members.peers.contains_key(peer) && !members.pending.contains_key(peer) {
            cluster.command(cluster::Command::Leave {
                room: room.to_owned(),
                peer: *peer,
            });
        }
        if members.interest == 0 {
            hub.rooms.remove(room);
            cluster.command(cluster::Command::Unsubscribe {
                room: room.to_owned(),
            });
        }
    }

    /// `/health`: whether the relay can admit peers (false while its Redis is away), and the
    /// counters.
    fn health(&self) -> (bool, serde_json::Value) {
        let rooms = self.hub.lock().expect("hub lock").rooms.len();
        let mut body = self.stats.to_json(rooms);
        let (healthy, redis) = match &self.cluster {
            None => (true, "off"),
            Some(cluster) if cluster.up.load(Ordering::Relaxed) => (true, "up"),
            Some(_) => (false, "down"),
        };
        body["redis"] = redis.into();
        if let Some(cluster) = &self.cluster {
            body["relayId"] = hex::encode(cluster.id).into();
            body["status"] = if healthy { "ok" } else { "redis-down" }.into();
            let calls = self.stats.redis_calls.load(Ordering::Relaxed);
            body["redisCalls"] = calls.into();
            body["redisMicrosAverage"] =
                (self.stats.redis_micros.load(Ordering::Relaxed) / calls.max(1)).into();
            body["redisReconnects"] = self.stats.redis_reconnects.load(Ordering::Relaxed).into();
            body["redisReceived"] = self.stats.redis_received.load(Ordering::Relaxed).into();
            body["archived"] = self.stats.archived.load(Ordering::Relaxed).into();
        }
        (healthy, body)
    }

    /// Redis lost what it held (it restarted empty): every session here closes with
    /// `REDIS_RESET` (1012), so that its peer joins again and gets handles Redis knows.
    fn reset_sessions(&self) {
        let mut hub = self.hub.lock().expect("hub lock");
        let closing = Closing {
            code: "REDIS_RESET",
            message: "the relay's place in Redis was lost: join again".into(),
            close: SERVICE_RESTART,
        };
        for outbox in hub.rooms.values().flat_map(|m| m.peers.values().flatten()) {
            outbox.end(&closing);
        }
        hub.rooms.clear();
        hub.generation += 1;
    }

    /// The clustered relay's Redis side.
    fn cluster(&self) -> &cluster::Cluster {
        self.cluster.as_ref().expect("a clustered relay")
    }

    /// Capability `id` was revoked: the sessions that presented it close (1008
    /// `CAPABILITY_REVOKED`).
    fn revoke(&self, id: &[u8; 16]) {
        let mut hub = self.hub.lock().expect("hub lock");
        let closing = Closing::policy("CAPABILITY_REVOKED", "the capability was revoked");
        for outbox in hub.by_token.get(id).into_iter().flatten() {
            outbox.end(&closing);
        }
        let now = Instant::now();
        while hub.revoked.front().is_some_and(|(at, _)| {
            now.duration_since(*at) > REVOKED_KEPT || hub.revoked.len() >= REVOKED_MAX
        }) {
            hub.revoked.pop_front();
        }
        hub.revoked.push_back((now, *id));
        self.stats.refuse("CAPABILITY_REVOKED");
    }

    /// The hub's generation (bumped by each reset).
    fn generation(&self) -> u64 {
        self.hub.lock().expect("hub lock").generation
    }

    /// Redis was lost: every room's mirror waits for a new snapshot.
    fn unsync_rooms(&self) {
        let mut hub = self.hub.lock().expect("hub lock");
        for members in hub.rooms.values_mut() {
            members.synced = false;
        }
    }

    /// Whether a connection here is in `room` or joining it.
    fn room_wanted(&self, room: &str) -> bool {
        let hub = self.hub.lock().expect("hub lock");
        hub.rooms.get(room).is_some_and(|m| m.interest > 0)
    }

    /// Whether `room`'s mirror of other relays' peers is built (or nobody here wants it).
    fn room_synced(&self, room: &str) -> bool {
        let hub = self.hub.lock().expect("hub lock");
        hub.rooms.get(room).is_none_or(|m| m.synced)
    }

    /// Builds `room`'s mirror from a snapshot of its presence in Redis, then applies what
    /// arrived meanwhile; this relay's peers hear who arrived and who left.
    fn apply_snapshot(&self, room: &str, rows: Vec<(String, String, Vec<String>)>) {
        let me = self.cluster().id;
        let mut hub = self.hub.lock().expect("hub lock");
        let Some(members) = hub.rooms.get_mut(room) else {
            return;
        };
        let mut fresh = HashMap::new();
        let mut handles = Vec::new();
        for (peer, handle, write, holders) in rows.iter().filter_map(cluster::snapshot_row) {
            let relays: HashSet<RelayId> = holders.into_iter().filter(|h| *h != me).collect();
            if !relays.is_empty() {
                fresh.insert(peer, Remote { relays, write });
                handles.push((peer, handle, write));
            }
        }
        let old = std::mem::replace(&mut members.remote, fresh);
        for peer in old.keys() {
            members.forget(peer);
        }
        for (peer, handle, write) in handles {
            if !members.present(&peer) {
                members.hold(peer, handle);
                members.tell(&text(&ServerMessage::PeerJoined {
                    peer: hex::encode(peer),
                    handle,
                    write,
                }));
            }
        }
        for (origin, event) in std::mem::take(&mut members.buffered) {
            members.apply(origin, event);
        }
        members.synced = true;
    }

    /// A message another relay published on `room`'s channel.
    fn apply_bus(&self, room: &str, origin: RelayId, message: BusMessage<'_>) {
        // A signal's JSON is read before the lock is taken.
        let signal = match &message {
            BusMessage::Signal { from, data, .. } => match cluster::signal_text(from, data) {
                Some(signal) => Some(signal),
                None => return self.stats.refuse("BAD_BUS_MESSAGE"),
            },
            _ => None,
        };
        let mut hub = self.hub.lock().expect("hub lock");
        let Some(members) = hub.rooms.get_mut(room) else {
            return;
        };
        let event = match message {
            BusMessage::Joined {
                peer,
                handle,
                write,
            } => BusMessage::Joined {
                peer,
                handle,
                write,
            },
            BusMessage::Left { peer } => BusMessage::Left { peer },
            BusMessage::Frame { from, to, frame } => {
                let mut forwarded = Vec::with_capacity(5 + frame.len());
                protocol::put_handle(&mut forwarded, from);
                forwarded.extend_from_slice(frame);
                let message = Message::Binary(forwarded.into());
                let sender = members.by_handle.get(&from).copied();
                let targets: Vec<&Outbox> = match to {
                    None => members
                        .peers
                        .iter()
                        .filter(|(p, _)| Some(**p) != sender)
                        .flat_map(|(_, boxes)| boxes)
                        .collect(),
                    Some(to) => members
                        .by_handle
                        .get(&to)
                        .and_then(|p| members.peers.get(p))
                        .into_iter()
                        .flatten()
                        .collect(),
                };
                self.deliver(targets, &message);
                return;
            }
            BusMessage::Signal { to, .. } => {
                if let (Some(boxes), Some(signal)) = (members.peers.get(&to), signal) {
                    for outbox in boxes {
                        outbox.push(signal.clone());
                    }
                }
                return;
            }
        };
        if members.synced {
            members.apply(origin, event);
        } else if members.buffered.len() < MAX_BUFFERED_EVENTS {
            members.buffered.push((origin, event));
        } else {
            self.stats.refuse("BUS_BACKLOG");
        }
    }

    /// Queues `message` for each of `targets`, counting binary frames.
    fn deliver<'a>(&self, targets: impl IntoIterator<Item = &'a Outbox>, message: &Message) {
        let len = match message {
            Message::Binary(b) => b.len() as u64,
            _ => 0,
        };
        for outbox in targets {
            if outbox.push(message.clone()) && len > 0 {
                self.stats.frames_forwarded.fetch_add(1, Ordering::Relaxed);
                self.stats.bytes_forwarded.fetch_add(len, Ordering::Relaxed);
            }
        }
    }
}

/// The shortest signed sync frame (header and signature): nothing shorter is archived.
const MIN_SIGNED_FRAME: usize = 10 + 64;

/// Presence events kept for a room while its snapshot is on its way.
const MAX_BUFFERED_EVENTS: usize = 4096;

/// Whom a forwarded message is for.
enum To {
    /// Every peer of the room but the sender.
    Everyone,
    /// The peer of this key.
    Peer(PeerId),
    /// The peer of this handle (nobody, if nobody holds it).
    Handle(Handle),
}

fn bad_frame() -> Refusal {
    Refusal::Drop(
        "BAD_FRAME",
        "binary frames start with 0x00, 0x01 ‖ a peer's handle, or (to a relay that keeps an \
         archive) 0x02 or 0x03"
            .into(),
    )
}

/// Refusals are counted over windows of this length; refilling tokens does not clear them, so
/// a flood paced to the refill still adds up.
const FLOOD_WINDOW: Duration = Duration::from_secs(10);

/// Messages per second with a burst allowance.
struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
    /// Start of the current refusal window.
    window: Instant,
    /// Messages refused in the current window.
    refused: u64,
}

impl TokenBucket {
    fn new(rate: u32, burst: u32) -> Self {
        let now = Instant::now();
        TokenBucket {
            rate: f64::from(rate),
            burst: f64::from(burst),
            tokens: f64::from(burst),
            at: now,
            window: now,
            refused: 0,
        }
    }

    fn take(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.at).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.burst);
        self.at = now;
        if now.duration_since(self.window) >= FLOOD_WINDOW {
            self.window = now;
            self.refused = 0;
        }
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            self.refused += 1;
            false
        }
    }
}
