//! The Chrysalis relay: a WebSocket server where peers authenticate with their Ed25519 identity,
//! join rooms, see who else is there, and exchange opaque frames and WebRTC signalling. It never
//! parses CRDT state. Limits on frame size, rate and connections per peer protect one peer from
//! another; `/health` reports what the relay holds. See [`protocol`] for the wire format.

pub mod protocol;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use protocol::{ClientMessage, MAX_ROOM_NAME, ServerMessage, TO_EVERYONE, TO_PEER};

/// A peer's identity: its Ed25519 public key.
pub type PeerId = [u8; 32];

/// Limits and timeouts. `Default` is what the binary uses without flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayConfig {
    /// The largest binary frame a peer may send, header included (bytes).
    pub max_frame: usize,
    /// Sustained frames per second per connection.
    pub rate_per_second: u32,
    /// Frames a connection may send in a burst above the rate.
    pub burst: u32,
    /// Connections one peer id may hold at once (all rooms).
    pub max_connections_per_peer: usize,
    /// Peers in one room.
    pub max_room_peers: usize,
    /// Connections in all.
    pub max_connections: usize,
    /// Time to answer the challenge.
    pub auth_timeout: Duration,
    /// Frames queued for one slow receiver before further frames to it are dropped.
    pub queue: usize,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            max_frame: (1 << 20) + 64,
            rate_per_second: 500,
            burst: 2000,
            max_connections_per_peer: 4,
            max_room_peers: 256,
            max_connections: 10_000,
            auth_timeout: Duration::from_secs(10),
            queue: 8192,
        }
    }
}

/// Counters, shown at `/health`.
#[derive(Debug, Default)]
pub struct RelayStats {
    /// Open, authenticated connections.
    pub connections: AtomicU64,
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
            "connectionsTotal": self.connections_total.load(Ordering::Relaxed),
            "framesForwarded": self.frames_forwarded.load(Ordering::Relaxed),
            "bytesForwarded": self.bytes_forwarded.load(Ordering::Relaxed),
            "refused": *self.refused.lock().expect("stats lock"),
        })
    }
}

/// One connection's outgoing queue.
#[derive(Clone)]
struct Outbox {
    id: u64,
    tx: mpsc::Sender<Message>,
}

#[derive(Default)]
struct Hub {
    /// room → peer → its connections to that room.
    rooms: HashMap<String, HashMap<PeerId, Vec<Outbox>>>,
    /// Connections per peer id over all rooms.
    per_peer: HashMap<PeerId, usize>,
}

struct Relay {
    config: RelayConfig,
    hub: Mutex<Hub>,
    stats: RelayStats,
    next_id: AtomicU64,
    shutdown: watch::Receiver<bool>,
}

/// A running relay: its address, counters, and the handle that stops it.
pub struct RelayHandle {
    /// Where it listens.
    pub addr: SocketAddr,
    relay: Arc<Relay>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RelayHandle {
    /// The relay's counters.
    pub fn stats(&self) -> &RelayStats {
        &self.relay.stats
    }

    /// Graceful shutdown: stops accepting, closes every connection with 1001 (going away) and
    /// waits for the server to finish.
    pub async fn shutdown(self) -> std::io::Result<()> {
        let _ = self.stop.send(true);
        self.task.await.map_err(std::io::Error::other)?
    }
}

/// Starts a relay on `listener` (e.g. `127.0.0.1:0` for tests).
pub fn start(listener: TcpListener, config: RelayConfig) -> std::io::Result<RelayHandle> {
    let addr = listener.local_addr()?;
    let (stop, shutdown) = watch::channel(false);
    let relay = Arc::new(Relay {
        config,
        hub: Mutex::new(Hub::default()),
        stats: RelayStats::default(),
        next_id: AtomicU64::new(1),
        shutdown: shutdown.clone(),
    });
    let app = Router::new()
        .route("/health", get(health))
        .route("/", get(upgrade))
        .route("/ws", get(upgrade))
        .with_state(relay.clone());
    let mut server_stop = shutdown;
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { stopped(&mut server_stop).await })
            .await
    });
    Ok(RelayHandle {
        addr,
        relay,
        stop,
        task,
    })
}

async fn health(State(relay): State<Arc<Relay>>) -> impl IntoResponse {
    let rooms = relay.hub.lock().expect("hub lock").rooms.len();
    (
        [("access-control-allow-origin", "*")],
        Json(relay.stats.to_json(rooms)),
    )
}

async fn upgrade(ws: WebSocketUpgrade, State(relay): State<Arc<Relay>>) -> impl IntoResponse {
    // Twice the frame limit at the WebSocket layer, so an oversized frame reaches the check
    // below and gets a clear error instead of a bare protocol close.
    let limit = relay.config.max_frame.saturating_mul(2);
    ws.max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| connection(relay, socket))
}

fn text(message: &ServerMessage) -> Message {
    Message::Text(Utf8Bytes::from(message.to_text()))
}

fn close(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    }))
}

/// Close codes: policy violation, message too big, going away.
const POLICY: u16 = 1008;
const TOO_BIG: u16 = 1009;
const GOING_AWAY: u16 = 1001;

/// Who an authenticated connection is.
struct Session {
    peer: PeerId,
    room: String,
    outbox: Outbox,
}

async fn connection(relay: Arc<Relay>, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let nonce: [u8; 32] = match chrysalis_crypto::random_array() {
        Ok(n) => n,
        Err(_) => return,
    };
    let challenge = ServerMessage::Challenge {
        version: protocol::PROTOCOL_VERSION,
        nonce: hex::encode(nonce),
    };
    if sink.send(text(&challenge)).await.is_err() {
        return;
    }
    let auth = tokio::time::timeout(relay.config.auth_timeout, stream.next()).await;
    let session = match auth {
        Ok(Some(Ok(message))) => relay.authenticate(&nonce, message),
        Ok(_) => return,
        Err(_) => Err(("AUTH_TIMEOUT", "no answer to the challenge in time".into())),
    };
    let (session, mut rx) = match session {
        Ok(ok) => ok,
        Err((code, message)) => {
            relay.stats.refuse(code);
            let _ = sink.send(text(&ServerMessage::error(code, message))).await;
            let _ = sink.send(close(POLICY, code)).await;
            return;
        }
    };
    let mut shutdown = relay.shutdown.clone();
    // The writer: the outbox to the socket, and a going-away close at shutdown.
    let writer = tokio::spawn(async move {
        loop {
            tokio::select! {
                // Shutdown first: the reader's exit also closes the outbox at that moment.
                biased;
                () = stopped(&mut shutdown) => {
                    let _ = sink.send(close(GOING_AWAY, "relay shutting down")).await;
                    break;
                }
                message = rx.recv() => match message {
                    Some(message) => {
                        let last = matches!(message, Message::Close(_));
                        if sink.send(message).await.is_err() || last {
                            break;
                        }
                    }
                    None => break,
                },
            }
        }
    });
    let mut bucket = TokenBucket::new(relay.config.rate_per_second, relay.config.burst);
    let mut shutdown = relay.shutdown.clone();
    loop {
        let message = tokio::select! {
            message = stream.next() => message,
            () = stopped(&mut shutdown) => break,
        };
        let Some(Ok(message)) = message else { break };
        match relay.handle(&session, &mut bucket, message) {
            Ok(()) => {}
            Err(Refusal::Count(code)) => relay.stats.refuse(code),
            Err(Refusal::Drop(code, message)) => {
                relay.stats.refuse(code);
                let _ = session
                    .outbox
                    .tx
                    .try_send(text(&ServerMessage::error(code, message)));
            }
            Err(Refusal::Close(code, message, close_code)) => {
                relay.stats.refuse(code);
                let _ = session
                    .outbox
                    .tx
                    .try_send(text(&ServerMessage::error(code, message)));
                let _ = session.outbox.tx.try_send(close(close_code, code));
                break;
            }
            Err(Refusal::Closed) => break,
        }
    }
    relay.leave(&session);
    drop(session);
    let _ = writer.await;
}

/// Resolves when the relay is shutting down.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

enum Refusal {
    /// Drop this message and count it (the peer was told already).
    Count(&'static str),
    /// Drop this message and tell the peer.
    Drop(&'static str, String),
    /// Tell the peer and close the connection.
    Close(&'static str, String, u16),
    /// The peer closed.
    Closed,
}

impl Relay {
    fn authenticate(
        &self,
        nonce: &[u8],
        message: Message,
    ) -> Result<(Session, mpsc::Receiver<Message>), (&'static str, String)> {
        let Message::Text(body) = message else {
            return Err((
                "UNAUTHENTICATED",
                "the first message must be the auth answer".into(),
            ));
        };
        let Ok(ClientMessage::Auth {
            room,
            peer,
            signature,
        }) = serde_json::from_str(body.as_str())
        else {
            return Err(("UNAUTHENTICATED", "expected {\"type\":\"auth\",…}".into()));
        };
        if room.is_empty() || room.len() > MAX_ROOM_NAME {
            return Err((
                "BAD_ROOM",
                format!("room names are 1 to {MAX_ROOM_NAME} bytes"),
            ));
        }
        let peer_id = protocol::parse_peer(&peer)
            .ok_or(("AUTH_FAILED", "peer must be 64 hex digits".to_owned()))?;
        let signature = hex::decode(&signature).unwrap_or_default();
        if !chrysalis_crypto::ed25519_verify(
            &peer_id,
            &protocol::auth_message(nonce, &room),
            &signature,
        ) {
            return Err((
                "AUTH_FAILED",
                "the signature does not verify under the peer's key".into(),
            ));
        }
        let (tx, rx) = mpsc::channel(self.config.queue);
        let outbox = Outbox {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            tx,
        };
        let mut hub = self.hub.lock().expect("hub lock");
        let total: usize = hub.per_peer.values().sum();
        if total >= self.config.max_connections {
            return Err((
                "RELAY_FULL",
                "the relay holds its maximum of connections".into(),
            ));
        }
        if hub.per_peer.get(&peer_id).copied().unwrap_or(0) >= self.config.max_connections_per_peer
        {
            return Err((
                "TOO_MANY_CONNECTIONS",
                format!(
                    "at most {} connections per peer",
                    self.config.max_connections_per_peer
                ),
            ));
        }
        let members = hub.rooms.entry(room.clone()).or_default();
        let first = !members.contains_key(&peer_id);
        if first && members.len() >= self.config.max_room_peers {
            return Err((
                "ROOM_FULL",
                format!("at most {} peers per room", self.config.max_room_peers),
            ));
        }
        let peers = members
            .keys()
            .filter(|p| **p != peer_id)
            .map(hex::encode)
            .collect();
        if first {
            let joined = text(&ServerMessage::PeerJoined { peer: peer.clone() });
            for boxes in members.values() {
                for other in boxes {
                    let _ = other.tx.try_send(joined.clone());
                }
            }
        }
        let welcome = text(&ServerMessage::Welcome {
            peer: hex::encode(peer_id),
            peers,
        });
        let _ = outbox.tx.try_send(welcome);
        members.entry(peer_id).or_default().push(outbox.clone());
        *hub.per_peer.entry(peer_id).or_default() += 1;
        self.stats.connections.fetch_add(1, Ordering::Relaxed);
        self.stats.connections_total.fetch_add(1, Ordering::Relaxed);
        Ok((
            Session {
                peer: peer_id,
                room,
                outbox,
            },
            rx,
        ))
    }

    fn handle(
        &self,
        session: &Session,
        bucket: &mut TokenBucket,
        message: Message,
    ) -> Result<(), Refusal> {
        match message {
            Message::Binary(bytes) => {
                if bytes.len() > self.config.max_frame {
                    return Err(Refusal::Close(
                        "OVERSIZED",
                        format!(
                            "frame of {} bytes (limit {})",
                            bytes.len(),
                            self.config.max_frame
                        ),
                        TOO_BIG,
                    ));
                }
                if !bucket.take() {
                    if bucket.refused > u64::from(self.config.burst) * 4 {
                        return Err(Refusal::Close(
                            "RATE_LIMITED",
                            "flooding: connection closed".into(),
                            POLICY,
                        ));
                    }
                    if bucket.refused > 1 {
                        return Err(Refusal::Count("RATE_LIMITED"));
                    }
                    return Err(Refusal::Drop(
                        "RATE_LIMITED",
                        format!(
                            "more than {} frames per second: frames dropped",
                            self.config.rate_per_second
                        ),
                    ));
                }
                let (to, frame) = match bytes.split_first() {
                    Some((&TO_EVERYONE, frame)) => (None, frame),
                    Some((&TO_PEER, rest)) if rest.len() >= 32 => {
                        let (to, frame) = rest.split_at(32);
                        (Some(<PeerId>::try_from(to).expect("32 bytes")), frame)
                    }
                    _ => {
                        return Err(Refusal::Drop(
                            "BAD_FRAME",
                            "binary frames start with 0x00 or 0x01 ‖ peer id".into(),
                        ));
                    }
                };
                let forwarded = Message::Binary([&session.peer[..], frame].concat().into());
                self.forward(session, to, forwarded);
                Ok(())
            }
            Message::Text(body) => {
                if body.len() > self.config.max_frame {
                    return Err(Refusal::Close(
                        "OVERSIZED",
                        "text message too large".into(),
                        TOO_BIG,
                    ));
                }
                if !bucket.take() {
                    return Err(Refusal::Drop("RATE_LIMITED", "signal dropped".into()));
                }
                match serde_json::from_str(body.as_str()) {
                    Ok(ClientMessage::Signal { to, data }) => {
                        let to = protocol::parse_peer(&to).ok_or(Refusal::Drop(
                            "BAD_SIGNAL",
                            "`to` must be 64 hex digits".into(),
                        ))?;
                        let signal = text(&ServerMessage::Signal {
                            from: hex::encode(session.peer),
                            data,
                        });
                        self.forward(session, Some(to), signal);
                        Ok(())
                    }
                    _ => Err(Refusal::Drop(
                        "BAD_MESSAGE",
                        "expected {\"type\":\"signal\",\"to\":…,\"data\":…}".into(),
                    )),
                }
            }
            Message::Close(_) => Err(Refusal::Closed),
            Message::Ping(_) | Message::Pong(_) => Ok(()),
        }
    }

    /// Queues `message` for one peer of the session's room (all its connections) or for all
    /// but the sender. A receiver whose queue is full loses the message (counted).
    fn forward(&self, session: &Session, to: Option<PeerId>, message: Message) {
        let hub = self.hub.lock().expect("hub lock");
        let Some(members) = hub.rooms.get(&session.room) else {
            return;
        };
        let len = match &message {
            Message::Binary(b) => b.len() as u64,
            _ => 0,
        };
        let targets = members
            .iter()
            .filter(|(peer, _)| match to {
                Some(to) => **peer == to,
                None => **peer != session.peer,
            })
            .flat_map(|(_, boxes)| boxes);
        for outbox in targets {
            if outbox.tx.try_send(message.clone()).is_ok() {
                if len > 0 {
                    self.stats.frames_forwarded.fetch_add(1, Ordering::Relaxed);
                    self.stats.bytes_forwarded.fetch_add(len, Ordering::Relaxed);
                }
            } else {
                self.stats.refuse("SLOW_RECEIVER");
            }
        }
    }

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
        if let Some(boxes) = members.get_mut(&session.peer) {
            boxes.retain(|b| b.id != session.outbox.id);
            if boxes.is_empty() {
                members.remove(&session.peer);
                let left = text(&ServerMessage::PeerLeft {
                    peer: hex::encode(session.peer),
                });
                for other in members.values().flatten() {
                    let _ = other.tx.try_send(left.clone());
                }
            }
        }
        if members.is_empty() {
            hub.rooms.remove(&session.room);
        }
        self.stats.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Frames per second with a burst allowance.
struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
    /// Frames refused since the last one allowed.
    refused: u64,
}

impl TokenBucket {
    fn new(rate: u32, burst: u32) -> Self {
        TokenBucket {
            rate: f64::from(rate),
            burst: f64::from(burst),
            tokens: f64::from(burst),
            at: Instant::now(),
            refused: 0,
        }
    }

    fn take(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.at).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.refused = 0;
            true
        } else {
            self.refused += 1;
            false
        }
    }
}
