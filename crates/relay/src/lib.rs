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
mod http;
/// The wire format (its own crate, shared with the agent runtime's client).
pub use chrysalis_relay_protocol as protocol;
mod socket;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use admission::{Ticket, Usage};
use protocol::{
    Access, Capability, ClientMessage, Handle, MAX_ROOM_NAME, PROTOCOL_VERSION, RoomPeer,
    ServerMessage, TO_EVERYONE, TO_PEER,
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

/// Counters, shown at `/health`.
#[derive(Debug, Default)]
pub struct RelayStats {
    /// Open, authenticated connections.
    pub connections: AtomicU64,
    /// Open sockets not yet authenticated.
    pub pending: AtomicU64,
    /// Authenticated connections since start.
    pub connections_total: AtomicU64,
    /// Binary frames delivered to a receiver's queue.
    pub frames_forwarded: AtomicU64,
    /// Their bytes.
    pub bytes_forwarded: AtomicU64,
    /// Refusals by code.
    pub refused: Mutex<BTreeMap<&'static str, u64>>,
}

impl RelayStats {
    fn refuse(&self, code: &'static str) {
        *self
            .refused
            .lock()
            .expect("stats lock")
            .entry(code)
            .or_default() += 1;
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
}

impl Room {
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
}

struct Relay {
    config: RelayConfig,
    hub: Mutex<Hub>,
    stats: RelayStats,
    next_id: AtomicU64,
    shutdown: watch::Receiver<bool>,
    /// Woken whenever a socket closes, for a shutdown that waits for the last.
    closed: Notify,
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
                return Ok(());
            }
            closed.await;
        }
    }
}

/// Starts a relay on `listener` (e.g. `127.0.0.1:0` for tests).
pub fn start(listener: TcpListener, config: RelayConfig) -> std::io::Result<RelayHandle> {
    let addr = listener.local_addr()?;
    let (stop, shutdown) = watch::channel(false);
    let relay = Arc::new(Relay {
        config,
        hub: Mutex::default(),
        stats: RelayStats::default(),
        next_id: AtomicU64::new(1),
        shutdown,
        closed: Notify::new(),
    });
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

/// Close codes: going away, policy violation, message too big, try again later.
const GOING_AWAY: u16 = 1001;
const POLICY: u16 = 1008;
const TOO_BIG: u16 = 1009;
const TRY_AGAIN_LATER: u16 = 1013;

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
    /// Checks an auth answer and admits its peer to the room within the limits.
    fn authenticate(
        &self,
        nonce: &[u8],
        answer: &str,
        ticket: &mut Ticket,
    ) -> Result<(Session, mpsc::UnboundedReceiver<Message>), Closing> {
        let Ok(ClientMessage::Auth {
            version,
            room,
            peer,
            signature,
            capability,
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
        let mut hub = self.hub.lock().expect("hub lock");
        let members = hub.rooms.get(&room);
        let first = members.is_none_or(|m| !m.peers.contains_key(&peer));
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
            .get(&ticket.address)
            .is_some_and(|u| u.connections >= config.max_connections_per_address)
        {
            Some((
                "ADDRESS_LIMIT",
                config.max_connections_per_address,
                "connections from one address",
            ))
        } else if members
            .and_then(|m| m.per_address.get(&ticket.address))
            .is_some_and(|n| *n >= config.max_room_connections_per_address)
        {
            Some((
                "ADDRESS_LIMIT",
                config.max_room_connections_per_address,
                "connections to one room from one address",
            ))
        } else if first && members.map_or(0, |m| m.peers.len()) >= config.max_room_peers {
            Some(("ROOM_FULL", config.max_room_peers, "peers per room"))
        } else {
            None
        };
        if let Some((code, limit, what)) = refusal {
            return Err(Closing::policy(code, format!("at most {limit} {what}")));
        }
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
        let handle = members.handle_of(peer);
        let mut peers: Vec<RoomPeer> = members
            .peers
            .keys()
            .filter(|p| **p != peer)
            .map(|p| RoomPeer {
                peer: hex::encode(p),
                handle: members.handles[p],
                write: !members.readers.contains_key(p),
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
        outbox.push(text(&ServerMessage::Welcome {
            peer: id,
            handle,
            peers,
            write,
        }));
        members.peers.entry(peer).or_default().push(outbox.clone());
        self.stats.connections_total.fetch_add(1, Ordering::Relaxed);
        let session = Session {
            peer,
            handle,
            room,
            address: ticket.address,
            outbox,
            write,
            expires_at: capability.map(|c| c.expires_at),
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
                let (to, frame) = match bytes.split_first() {
                    Some((&TO_EVERYONE, frame)) => (To::Everyone, frame),
                    Some((&TO_PEER, rest)) => match protocol::take_handle(rest) {
                        Some((to, frame)) => (To::Handle(to), frame),
                        None => return Err(bad_frame()),
                    },
                    _ => return Err(bad_frame()),
                };
                if !session.write && !protocol::read_only_may_send(frame) {
                    return Err(Refusal::Drop(
                        "READ_ONLY",
                        "a read-only capability sends digests, requests and heartbeats only".into(),
                    ));
                }
                let mut forwarded = Vec::with_capacity(5 + frame.len());
                protocol::put_handle(&mut forwarded, session.handle);
                forwarded.extend_from_slice(frame);
                self.forward(session, to, Message::Binary(forwarded.into()));
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
                    let signal = text(&ServerMessage::Signal {
                        from: hex::encode(session.peer),
                        data,
                    });
                    self.forward(session, To::Peer(to), signal);
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
    /// the sender. A receiver whose queue would pass its bound is closed instead.
    fn forward(&self, session: &Session, to: To, message: Message) {
        let hub = self.hub.lock().expect("hub lock");
        let Some(members) = hub.rooms.get(&session.room) else {
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
        let len = match &message {
            Message::Binary(b) => b.len() as u64,
            _ => 0,
        };
        let targets = members
            .peers
            .iter()
            .filter(|(peer, _)| match to {
                Some(to) => **peer == to,
                None => **peer != session.peer,
            })
            .flat_map(|(_, boxes)| boxes);
        for outbox in targets {
            if outbox.push(message.clone()) && len > 0 {
                self.stats.frames_forwarded.fetch_add(1, Ordering::Relaxed);
                self.stats.bytes_forwarded.fetch_add(len, Ordering::Relaxed);
            }
        }
    }

    /// Whether `peer` holds a read-only connection to `room`.
    fn reads_only(&self, room: &str, peer: &PeerId) -> bool {
        let hub = self.hub.lock().expect("hub lock");
        hub.rooms
            .get(room)
            .is_some_and(|m| m.readers.contains_key(peer))
    }

    /// Removes a closing connection from its room and tells the others if its peer left.
    fn leave(&self, session: &Session) {
        let mut hub = self.hub.lock().expect("hub lock");
        if let Some(count) = hub.per_peer.get_mut(&session.peer) {
            *count -= 1;
            if *count == 0 {
                hub.per_peer.remove(&session.peer);
            }
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
                if let Some(handle) = members.handles.remove(&session.peer) {
                    members.by_handle.remove(&handle);
                }
                let left = text(&ServerMessage::PeerLeft {
                    peer: hex::encode(session.peer),
                });
                for other in members.peers.values().flatten() {
                    other.push(left.clone());
                }
            }
        }
        if members.peers.is_empty() {
            hub.rooms.remove(&session.room);
        }
    }
}

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
        "binary frames start with 0x00, or 0x01 ‖ a peer's handle".into(),
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
