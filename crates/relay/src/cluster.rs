//! Relays that share rooms through Redis (`--redis`). Each relay holds only its own
//! connections; Redis holds who is in each room (a hash of peers and their handles, and per peer
//! the set of relays holding it), changed only by Lua scripts so that a handle is given once per
//! room across relays; each room has a pub/sub channel on which relays announce their peers'
//! arrivals and departures and pass frames and signals for peers held elsewhere.
//!
//! Why pub/sub and not streams: live frames need one hop and no storage (a frame nobody is
//! subscribed for has nobody to reach), and what pub/sub may lose when a subscriber falls behind
//! or Redis blips is repaired by the peers' anti-entropy, as on a lossy link.
//!
//! Order: everything a relay asks of Redis about presence (subscribe, snapshot, join, leave) goes
//! through one task in the order the relay's own state changed, so Redis never says a peer left a
//! relay that still holds it. A room's mirror of other relays' peers is built from a snapshot
//! taken after subscribing; events that arrive before the snapshot is applied are buffered and
//! applied after it (they are idempotent set operations on (peer, relay)).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::{MultiplexedConnection, PubSubSink};
use tokio::sync::{mpsc, oneshot, watch};

use crate::protocol::bus::{BusMessage, RelayId};
use crate::protocol::{Handle, PeerId};
use crate::{Relay, text};

/// How long a join may wait for Redis before it is refused.
pub(crate) const JOIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Frames queued for publishing; past it they are dropped (and counted).
const PUBLISH_QUEUE: usize = 16_384;
/// Bytes queued for publishing; past it frames are dropped (and counted).
const PUBLISH_BYTES: usize = 64 << 20;
/// Messages published in one pipeline at most.
const PUBLISH_BATCH: usize = 256;
/// The longest wait between attempts to reach Redis.
const RECONNECT_MAX: Duration = Duration::from_secs(2);
/// How often a relay renews its heartbeat and looks for dead relays.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(2);
/// A relay whose heartbeat is this old is dead: its peers are taken out of their rooms.
const RELAY_DEADLINE: Duration = Duration::from_secs(10);
/// Rooms of a dead relay cleared per heartbeat and relay at most.
const REAP_ROOMS: usize = 64;
/// How long an empty room's handle counter is kept: a handle is not given again within it, so
/// an old peer's departure can never be taken for a new peer's.
const HANDLES_KEPT: Duration = Duration::from_secs(24 * 3600);

const JOIN: &str = r"
if ARGV[6] ~= '' and redis.call('ZSCORE', KEYS[5], ARGV[6]) then return {'revoked', 0} end
local value = redis.call('HGET', KEYS[1], ARGV[1])
if not value then
  if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[4]) then return {'', 0} end
  local handle = redis.call('HINCRBY', KEYS[2], 'next', 1) - 1
  redis.call('PERSIST', KEYS[2])
  value = handle .. ',' .. ARGV[3]
  redis.call('HSET', KEYS[1], ARGV[1], value)
end
redis.call('SADD', KEYS[4], ARGV[5])
return {value, redis.call('SADD', KEYS[3], ARGV[2])}
";

/// Renews this relay's heartbeat (KEYS[1] the relays' deadlines, ARGV[1] its id, ARGV[2] the
/// deadline's distance in ms), on Redis's clock, and forgets revocations of capabilities that
/// have expired anyway (KEYS[2]). Returns 1 if the previous deadline still held, 0 if it had
/// passed or was gone (a reaper may have taken this relay's peers out of their rooms).
const HEARTBEAT: &str = r"
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local previous = redis.call('ZSCORE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[1], ms + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', tonumber(now[1]))
if previous and tonumber(previous) >= ms then return 1 end
return 0
";

/// Takes out of their rooms the peers of one relay whose heartbeat stopped (killed, cut off),
/// or of relay ARGV[3] if given (itself, after a reconnection), at most ARGV[2] rooms a call,
/// telling each room's channel they left; forgets the relay once it holds no room. KEYS[1]:
/// the relays' deadlines; ARGV[1]: the key prefix. Returns how many rooms it cleared.
const REAP: &str = r"
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local relay = ARGV[3]
if relay == '' then
  local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ms, 'LIMIT', 0, 1)
  if #dead == 0 then return 0 end
  relay = dead[1]
end
local function unhex(h) return (h:gsub('..', function(c) return string.char(tonumber(c, 16)) end)) end
local rooms_key = ARGV[1] .. ':relay:' .. relay .. ':rooms'
local rooms = redis.call('SPOP', rooms_key, tonumber(ARGV[2]))
for _, room in ipairs(rooms) do
  local tag = ARGV[1] .. ':r:{' .. room .. '}'
  for _, peer in ipairs(redis.call('HKEYS', tag .. ':peers')) do
    local holders = tag .. ':at:' .. peer
    if redis.call('SREM', holders, relay) == 1 then
      if redis.call('SCARD', holders) == 0 then redis.call('HDEL', tag .. ':peers', peer) end
      redis.call('PUBLISH', tag, string.char(1, 2) .. unhex(relay) .. unhex(peer))
    end
  end
  if redis.call('HLEN', tag .. ':peers') == 0 then redis.call('PEXPIRE', tag .. ':meta', ARGV[4]) end
end
if redis.call('SCARD', rooms_key) == 0 then redis.call('ZREM', KEYS[1], relay) end
return #rooms
";

const LEAVE: &str = r"
redis.call('SREM', KEYS[3], ARGV[2])
if redis.call('SCARD', KEYS[3]) == 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  if redis.call('HLEN', KEYS[1]) == 0 then redis.call('PEXPIRE', KEYS[2], ARGV[3]) end
end
return 1
";

/// Appends a push to a room's archive (KEYS[1] the stream, KEYS[2] its size in bytes; ARGV:
/// signer, frame, the age bound in ms, the byte bound), drops the oldest entries until the
/// archive is within its byte bound (the relay archives frames of 74 bytes to a sixteenth of
/// the bound, so one call drops a few) and, past the age bound, up to 256 more, 4,096 at most a
/// call whatever another relay's bound left; then lets both keys expire with the age bound. An
/// empty stream resets the size (it may have been evicted alone).
const ARCHIVE: &str = r"
redis.call('XADD', KEYS[1], '*', 's', ARGV[1], 'f', ARGV[2])
local total = redis.call('INCRBY', KEYS[2], #ARGV[1] + #ARGV[2])
local now = redis.call('TIME')
local cutoff = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - tonumber(ARGV[3])
local aged = 0
for i = 1, 4096 do
  local oldest = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
  if #oldest == 0 then
    redis.call('SET', KEYS[2], 0)
    break
  end
  local id = oldest[1][1]
  local old = tonumber(string.match(id, '^(%d+)')) < cutoff
  if total <= tonumber(ARGV[4]) and (not old or aged >= 256) then break end
  if old then aged = aged + 1 end
  local fields = oldest[1][2]
  redis.call('XDEL', KEYS[1], id)
  total = redis.call('DECRBY', KEYS[2], #fields[2] + #fields[4])
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return total
";

/// Entries read from an archive per command (newest first, so that other commands interleave).
const ARCHIVE_CHUNK: usize = 256;

const SNAPSHOT: &str = r"
local out = {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  table.insert(out, {all[i], all[i + 1], redis.call('SMEMBERS', ARGV[1] .. all[i])})
end
return out
";

/// What the presence task does, in order.
pub(crate) enum Command {
    /// Subscribe to the room if needed, then register the peer: its handle, or a refusal code.
    Join {
        room: String,
        peer: PeerId,
        write: bool,
        /// The id of the capability it presented, checked against the revoked ones.
        token: Option<[u8; 16]>,
        /// The relay's generation when it was asked: a join asked before a reset is refused.
        generation: u64,
        reply: oneshot::Sender<Result<(Handle, bool), &'static str>>,
    },
    /// The peer's last connection to the room on this relay closed.
    Leave { room: String, peer: PeerId },
    /// Nobody on this relay is in the room any more.
    Unsubscribe { room: String },
    /// Everything asked before is done (or Redis is away): for a shutdown that tells the
    /// other relays its peers left.
    Flush { done: oneshot::Sender<()> },
}

/// This relay's side of the cluster.
pub(crate) struct Cluster {
    /// This relay's id on the bus.
    pub(crate) id: RelayId,
    prefix: String,
    commands: mpsc::UnboundedSender<Command>,
    publish: mpsc::Sender<Outgoing>,
    /// The current connection to Redis, if any (for reading archives).
    connection: watch::Receiver<Option<MultiplexedConnection>>,
    /// Whether Redis answered last time.
    pub(crate) up: AtomicBool,
    /// Frames dropped because the publish queue was full.
    pub(crate) publish_dropped: AtomicU64,
    /// Bytes in the publish queue.
    queued: Arc<std::sync::atomic::AtomicUsize>,
    receivers: Mutex<Option<Receivers>>,
}

type Mutex<T> = std::sync::Mutex<T>;

struct Receivers {
    commands: mpsc::UnboundedReceiver<Command>,
    publish: mpsc::Receiver<Outgoing>,
    connection: watch::Sender<Option<MultiplexedConnection>>,
}

impl Outgoing {
    /// What it holds, in bytes.
    fn size(&self) -> usize {
        match self {
            Outgoing::Publish { channel, bytes } => channel.len() + bytes.len(),
            Outgoing::Archive { room, frame, .. } => room.len() + 32 + frame.len(),
        }
    }
}

/// What the publishing task sends.
enum Outgoing {
    /// A message on a room's channel.
    Publish { channel: String, bytes: Vec<u8> },
    /// A push into a room's archive.
    Archive {
        room: String,
        signer: PeerId,
        frame: Vec<u8>,
    },
}

/// A room's keys: its hash of peers, its counter, and the prefix of its peers' holder sets.
struct Keys {
    peers: String,
    meta: String,
    holders: String,
    channel: String,
}

impl Cluster {
    /// The cluster side of a relay whose Redis is at `url` (tasks start with [`Cluster::run`]).
    pub(crate) fn new(prefix: &str) -> std::io::Result<Self> {
        let id = chrysalis_crypto::random_array().map_err(std::io::Error::other)?;
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let (publish, publish_rx) = mpsc::channel(PUBLISH_QUEUE);
        let (connection_tx, connection) = watch::channel(None);
        Ok(Cluster {
            id,
            prefix: prefix.to_owned(),
            commands,
            publish,
            connection,
            up: AtomicBool::new(false),
            publish_dropped: AtomicU64::new(0),
            queued: Arc::default(),
            receivers: Mutex::new(Some(Receivers {
                commands: commands_rx,
                publish: publish_rx,
                connection: connection_tx,
            })),
        })
    }

    fn keys(&self, room: &str) -> Keys {
        let tag = format!("{}:r:{{{}}}", self.prefix, hex::encode(room));
        Keys {
            peers: format!("{tag}:peers"),
            meta: format!("{tag}:meta"),
            holders: format!("{tag}:at:"),
            channel: tag,
        }
    }

    /// The set of rooms this relay holds peers in (for the reaper, should it die).
    fn rooms_of_relay(&self) -> String {
        format!("{}:relay:{}:rooms", self.prefix, hex::encode(self.id))
    }

    /// Revoked capabilities: id (hex) → until when (Unix seconds).
    fn revoked_key(&self) -> String {
        format!("{}:revoked", self.prefix)
    }

    /// The channel on which revocations are announced (the id, 16 bytes).
    fn revocations_channel(&self) -> String {
        format!("{}:revocations", self.prefix)
    }

    /// The relays' heartbeat deadlines.
    fn relays_key(&self) -> String {
        format!("{}:relays", self.prefix)
    }

    /// The room a channel is for.
    fn room_of(&self, channel: &str) -> Option<String> {
        let inner = channel
            .strip_prefix(&self.prefix)?
            .strip_prefix(":r:{")?
            .strip_suffix('}')?;
        String::from_utf8(hex::decode(inner).ok()?).ok()
    }

    /// Queues a presence command (in the order of the caller's state changes).
    pub(crate) fn command(&self, command: Command) {
        let _ = self.commands.send(command);
    }

    /// Publishes `message` on `room`'s channel, or drops it if the queue is full.
    pub(crate) fn publish(&self, room: &str, message: &BusMessage<'_>) {
        let outgoing = Outgoing::Publish {
            channel: self.keys(room).channel,
            bytes: message.encode(&self.id),
        };
        self.queue(outgoing);
    }

    /// Queues `outgoing` within the queue's count and bytes, or drops and counts it.
    fn queue(&self, outgoing: Outgoing) {
        let size = outgoing.size();
        let within = self.queued.fetch_add(size, Ordering::Relaxed) + size <= PUBLISH_BYTES;
        if !within || self.publish.try_send(outgoing).is_err() {
            self.queued.fetch_sub(size, Ordering::Relaxed);
            self.publish_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Queues `frame`, a push `signer` sent, for `room`'s archive (dropped if the queue is
    /// full: the archive may lose, never forge).
    pub(crate) fn archive(&self, room: &str, signer: &PeerId, frame: &[u8]) {
        let outgoing = Outgoing::Archive {
            room: room.to_owned(),
            signer: *signer,
            frame: frame.to_vec(),
        };
        self.queue(outgoing);
    }

    /// `room`'s archive within the age bound, newest last, as many of the newest as fit in
    /// `budget` bytes: (signer, frame) pairs. Empty if Redis is away (the archive may lose).
    pub(crate) async fn read_archive(
        &self,
        room: &str,
        config: &crate::RelayConfig,
        budget: usize,
    ) -> Vec<(PeerId, Vec<u8>)> {
        let Some(mut conn) = self.connection.borrow().clone() else {
            return Vec::new();
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let oldest = format!(
            "{}-0",
            now.saturating_sub(config.archive_max_age.as_millis() as u64)
        );
        let key = self.archive_key(room);
        let mut kept: Vec<(PeerId, Vec<u8>)> = Vec::new();
        let (mut bytes, mut before) = (0, "+".to_owned());
        'read: while kept.len() < crate::protocol::MAX_ARCHIVED as usize {
            let mut read = redis::cmd("XREVRANGE");
            read.arg(&key)
                .arg(&before)
                .arg(&oldest)
                .arg("COUNT")
                .arg(ARCHIVE_CHUNK);
            let chunk = read.query_async::<Vec<(String, Vec<Vec<u8>>)>>(&mut conn);
            let Ok(Ok(entries)) = tokio::time::timeout(JOIN_TIMEOUT, chunk).await else {
                break;
            };
            let last = entries.len() < ARCHIVE_CHUNK;
            for (id, mut fields) in entries {
                before = format!("({id}");
                let (Some(frame), Some(signer)) = (fields.pop(), fields.get(1)) else {
                    continue;
                };
                let Ok(signer) = PeerId::try_from(signer.as_slice()) else {
                    continue;
                };
                bytes += 32 + frame.len() + 64;
                if bytes > budget || kept.len() == crate::protocol::MAX_ARCHIVED as usize {
                    break 'read;
                }
                kept.push((signer, frame));
            }
            if last {
                break;
            }
        }
        kept.reverse();
        kept
    }

    /// The stream of `room`'s archive (its size is beside it, `…:size`).
    fn archive_key(&self, room: &str) -> String {
        format!("{}:archive", self.keys(room).channel)
    }

    /// Starts the presence, publishing and receiving tasks for Redis at `url`.
    pub(crate) fn run(relay: &Arc<Relay>, url: String) {
        let cluster = relay.cluster.as_ref().expect("a clustered relay");
        let Some(receivers) = cluster.receivers.lock().expect("cluster lock").take() else {
            return;
        };
        tokio::spawn(publisher(
            Arc::downgrade(relay),
            receivers.publish,
            cluster.connection.clone(),
        ));
        tokio::spawn(presence(
            Arc::downgrade(relay),
            url,
            receivers.commands,
            receivers.connection,
        ));
    }
}

/// Publishes queued frames in pipelines, on the connection the presence task made.
async fn publisher(
    relay: Weak<Relay>,
    mut queue: mpsc::Receiver<Outgoing>,
    mut connection: watch::Receiver<Option<MultiplexedConnection>>,
) {
    let mut batch = Vec::with_capacity(PUBLISH_BATCH);
    while queue.recv_many(&mut batch, PUBLISH_BATCH).await > 0 {
        let Some(relay) = relay.upgrade() else {
            return;
        };
        let size: usize = batch.iter().map(Outgoing::size).sum();
        relay.cluster().queued.fetch_sub(size, Ordering::Relaxed);
        let conn = connection.borrow_and_update().clone();
        let Some(mut conn) = conn else {
            // Redis is down: what would have been published is lost, as on a lossy link.
            relay
                .stats
                .refuse_many("REDIS_UNAVAILABLE", batch.len() as u64);
            batch.clear();
            continue;
        };
        let mut pipe = redis::pipe();
        for outgoing in batch.drain(..) {
            match outgoing {
                Outgoing::Publish { channel, bytes } => {
                    pipe.publish(channel, bytes).ignore();
                }
                Outgoing::Archive {
                    room,
                    signer,
                    frame,
                } => {
                    let cluster = relay.cluster();
                    let key = cluster.archive_key(&room);
                    let appended = redis::Script::new(ARCHIVE)
                        .key(&key)
                        .key(format!("{key}:size"))
                        .arg(&signer[..])
                        .arg(frame)
                        .arg(relay.config.archive_max_age.as_millis() as u64)
                        .arg(relay.config.archive_max_bytes)
                        .invoke_async::<i64>(&mut conn)
                        .await;
                    match appended {
                        Ok(_) => {
                            relay.stats.archived.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => relay.stats.refuse("REDIS_UNAVAILABLE"),
                    }
                }
            }
        }
        if pipe.is_empty() {
            continue;
        }
        let started = std::time::Instant::now();
        match pipe.query_async::<()>(&mut conn).await {
            Ok(()) => relay.stats.redis_round_trip(started.elapsed()),
            Err(_) => relay.stats.refuse("REDIS_UNAVAILABLE"),
        }
    }
}

/// The presence task: connects (and reconnects) to Redis, subscribes to rooms, runs the
/// presence scripts in order, and starts the task that reads the channels.
async fn presence(
    relay: Weak<Relay>,
    url: String,
    mut commands: mpsc::UnboundedReceiver<Command>,
    connection_tx: watch::Sender<Option<MultiplexedConnection>>,
) {
    let mut delay = Duration::from_millis(50);
    let mut connected_before = false;
    loop {
        let Some(strong) = relay.upgrade() else {
            return;
        };
        let connected = connect(&url).await;
        let Ok((conn, publishing, sink, stream)) = connected else {
            strong.cluster().up.store(false, Ordering::Relaxed);
            drop(strong);
            // Refuse what waits while Redis is away.
            let sleep = tokio::time::sleep(delay);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    () = &mut sleep => break,
                    command = commands.recv() => match command {
                        Some(Command::Join { reply, .. }) => {
                            let _ = reply.send(Err("REDIS_UNAVAILABLE"));
                        }
                        Some(Command::Flush { done }) => {
                            let _ = done.send(());
                        }
                        Some(_) => {}
                        None => return,
                    },
                }
            }
            delay = (delay * 2).min(RECONNECT_MAX);
            continue;
        };
        delay = Duration::from_millis(50);
        let mut conn = conn;
        // Whatever Redis says of this relay's peers may be stale now (leaves lost while it was
        // away, a reaper that took them out, a restart that lost or restored old data): after a
        // reconnection the relay takes its peers out of every room itself, and closes its
        // sessions (1012 `REDIS_RESET`) so that they join again, with handles Redis knows.
        if connected_before {
            let cleared = reap_self(&mut conn, strong.cluster()).await;
            if cleared.is_err() {
                drop(strong);
                tokio::time::sleep(delay).await;
                continue;
            }
            strong.reset_sessions();
        }
        connected_before = true;
        let mut sink = sink;
        if sink
            .subscribe(strong.cluster().revocations_channel())
            .await
            .is_err()
        {
            drop(strong);
            tokio::time::sleep(delay).await;
            continue;
        }
        let (lost_tx, mut lost) = oneshot::channel::<()>();
        tokio::spawn(reader(relay.clone(), stream, lost_tx));
        let _ = connection_tx.send(Some(publishing));
        strong.cluster().up.store(true, Ordering::Relaxed);
        let mut session = Session {
            conn,
            sink,
            subscribed: HashSet::new(),
        };
        drop(strong);
        let mut healthy = true;
        let mut beat = tokio::time::interval(HEARTBEAT_EVERY);
        // The first beat on a connection may find an old deadline passed: the reconnection
        // above already cleared what it could have left.
        let mut beating = false;
        while healthy {
            let command = tokio::select! {
                command = commands.recv() => command,
                _ = &mut lost => break,
                _ = beat.tick() => {
                    healthy = match session.heartbeat(&relay).await {
                        Ok(on_time) if on_time || !beating => true,
                        Ok(_) => session.lapsed(&relay).await.is_ok(),
                        Err(_) => false,
                    };
                    beating = true;
                    continue;
                }
            };
            let Some(command) = command else {
                return;
            };
            healthy = match command {
                Command::Join {
                    room,
                    peer,
                    write,
                    token,
                    generation,
                    reply,
                } => {
                    let current = relay.upgrade().map(|r| r.generation());
                    let joined = match current == Some(generation) {
                        true => session.join(&relay, &room, peer, write, token).await,
                        false => Err("REDIS_RESET"),
                    };
                    let healthy = !matches!(joined, Err("REDIS_UNAVAILABLE"));
                    let _ = reply.send(joined);
                    healthy
                }
                Command::Leave { room, peer } => session.leave(&relay, &room, peer).await.is_ok(),
                Command::Unsubscribe { room } => session.unsubscribe(&relay, &room).await.is_ok(),
                Command::Flush { done } => {
                    let _ = done.send(());
                    true
                }
            };
        }
        let _ = connection_tx.send(None);
        if let Some(strong) = relay.upgrade() {
            strong.cluster().up.store(false, Ordering::Relaxed);
            strong
                .stats
                .redis_reconnects
                .fetch_add(1, Ordering::Relaxed);
            strong.unsync_rooms();
        }
    }
}

/// Takes this relay's peers out of every room it was recorded in (after a reconnection).
async fn reap_self(conn: &mut MultiplexedConnection, cluster: &Cluster) -> redis::RedisResult<()> {
    loop {
        let cleared: i64 = redis::Script::new(REAP)
            .key(cluster.relays_key())
            .arg(&cluster.prefix)
            .arg(REAP_ROOMS)
            .arg(hex::encode(cluster.id))
            .arg(HANDLES_KEPT.as_millis() as u64)
            .invoke_async(conn)
            .await?;
        if cleared == 0 {
            return Ok(());
        }
    }
}

/// Renews this relay's heartbeat; says whether its previous deadline still held.
async fn renew(conn: &mut MultiplexedConnection, relay: &Relay) -> redis::RedisResult<bool> {
    let cluster = relay.cluster();
    let started = std::time::Instant::now();
    let on_time: i64 = redis::Script::new(HEARTBEAT)
        .key(cluster.relays_key())
        .key(cluster.revoked_key())
        .arg(hex::encode(cluster.id))
        .arg(RELAY_DEADLINE.as_millis() as u64)
        .invoke_async(conn)
        .await?;
    relay.stats.redis_round_trip(started.elapsed());
    Ok(on_time == 1)
}

/// Presence's connection, the publisher's (frames never wait behind presence, nor presence
/// behind frames), and the subscription.
type Connected = (
    MultiplexedConnection,
    MultiplexedConnection,
    PubSubSink,
    redis::aio::PubSubStream,
);

async fn connect(url: &str) -> redis::RedisResult<Connected> {
    let client = redis::Client::open(url)?;
    // Presence waits for replies behind published frames: longer than the 500 ms default.
    let config = redis::AsyncConnectionConfig::new().set_response_timeout(Some(JOIN_TIMEOUT));
    let conn = tokio::time::timeout(
        JOIN_TIMEOUT,
        client.get_multiplexed_async_connection_with_config(&config),
    )
    .await
    .map_err(|_| redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut)))??;
    let pubsub = tokio::time::timeout(JOIN_TIMEOUT, client.get_async_pubsub())
        .await
        .map_err(|_| {
            redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut))
        })??;
    let (sink, stream) = pubsub.split();
    let publishing = tokio::time::timeout(JOIN_TIMEOUT, client.get_multiplexed_async_connection())
        .await
        .map_err(|_| {
            redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut))
        })??;
    Ok((conn, publishing, sink, stream))
}

/// One connection to Redis and the rooms subscribed on it.
struct Session {
    conn: MultiplexedConnection,
    sink: PubSubSink,
    /// Rooms subscribed to on this connection.
    subscribed: HashSet<String>,
}

impl Session {
    async fn join(
        &mut self,
        relay: &Weak<Relay>,
        room: &str,
        peer: PeerId,
        write: bool,
        token: Option<[u8; 16]>,
    ) -> Result<(Handle, bool), &'static str> {
        let unavailable = |_| "REDIS_UNAVAILABLE";
        let Some(strong) = relay.upgrade() else {
            return Err("REDIS_UNAVAILABLE");
        };
        let cluster = strong.cluster();
        let keys = cluster.keys(room);
        if !self.subscribed.contains(room) {
            self.sink
                .subscribe(&keys.channel)
                .await
                .map_err(unavailable)?;
            self.subscribed.insert(room.to_owned());
        }
        if !strong.room_synced(room) {
            let started = std::time::Instant::now();
            let snapshot: Vec<(String, String, Vec<String>)> = redis::Script::new(SNAPSHOT)
                .key(&keys.peers)
                .arg(&keys.holders)
                .invoke_async(&mut self.conn)
                .await
                .map_err(unavailable)?;
            strong.stats.redis_round_trip(started.elapsed());
            strong.apply_snapshot(room, snapshot);
        }
        let started = std::time::Instant::now();
        let (value, added): (String, i64) = redis::Script::new(JOIN)
            .key(&keys.peers)
            .key(&keys.meta)
            .key(format!("{}{}", keys.holders, hex::encode(peer)))
            .key(cluster.rooms_of_relay())
            .key(cluster.revoked_key())
            .arg(hex::encode(peer))
            .arg(hex::encode(cluster.id))
            .arg(u8::from(write))
            .arg(strong.config.max_room_peers)
            .arg(hex::encode(room))
            .arg(token.map(hex::encode).unwrap_or_default())
            .invoke_async(&mut self.conn)
            .await
            .map_err(unavailable)?;
        strong.stats.redis_round_trip(started.elapsed());
        if value == "revoked" {
            return Err("CAPABILITY_REVOKED");
        }
        let Some((handle, write)) = parse_value(&value) else {
            return Err("ROOM_FULL");
        };
        if added == 1 {
            let joined = BusMessage::Joined {
                peer,
                handle,
                write,
            };
            let bytes = joined.encode(&cluster.id);
            redis::cmd("PUBLISH")
                .arg(&keys.channel)
                .arg(bytes)
                .exec_async(&mut self.conn)
                .await
                .map_err(unavailable)?;
        }
        Ok((handle, write))
    }

    async fn leave(
        &mut self,
        relay: &Weak<Relay>,
        room: &str,
        peer: PeerId,
    ) -> redis::RedisResult<()> {
        let Some(strong) = relay.upgrade() else {
            return Ok(());
        };
        let cluster = strong.cluster();
        let keys = cluster.keys(room);
        let started = std::time::Instant::now();
        redis::Script::new(LEAVE)
            .key(&keys.peers)
            .key(&keys.meta)
            .key(format!("{}{}", keys.holders, hex::encode(peer)))
            .arg(hex::encode(peer))
            .arg(hex::encode(cluster.id))
            .arg(HANDLES_KEPT.as_millis() as u64)
            .invoke_async::<i64>(&mut self.conn)
            .await?;
        strong.stats.redis_round_trip(started.elapsed());
        let left = BusMessage::Left { peer }.encode(&cluster.id);
        redis::cmd("PUBLISH")
            .arg(&keys.channel)
            .arg(left)
            .exec_async(&mut self.conn)
            .await
    }

    async fn unsubscribe(&mut self, relay: &Weak<Relay>, room: &str) -> redis::RedisResult<()> {
        let Some(strong) = relay.upgrade() else {
            return Ok(());
        };
        // A join may have come back to the room since it asked.
        if !strong.room_wanted(room) && self.subscribed.remove(room) {
            let cluster = strong.cluster();
            self.sink.unsubscribe(cluster.keys(room).channel).await?;
            redis::cmd("SREM")
                .arg(cluster.rooms_of_relay())
                .arg(hex::encode(room))
                .exec_async(&mut self.conn)
                .await?;
        }
        Ok(())
    }

    /// Renews this relay's heartbeat, then clears what one dead relay left, if any. Says
    /// whether the previous deadline still held.
    async fn heartbeat(&mut self, relay: &Weak<Relay>) -> redis::RedisResult<bool> {
        let Some(strong) = relay.upgrade() else {
            return Ok(true);
        };
        let cluster = strong.cluster();
        let on_time = renew(&mut self.conn, &strong).await?;
        let cleared: i64 = redis::Script::new(REAP)
            .key(cluster.relays_key())
            .arg(&cluster.prefix)
            .arg(REAP_ROOMS)
            .arg("")
            .arg(HANDLES_KEPT.as_millis() as u64)
            .invoke_async(&mut self.conn)
            .await?;
        if cleared > 0 {
            strong
                .stats
                .reaped
                .fetch_add(cleared as u64, Ordering::Relaxed);
        }
        Ok(on_time)
    }

    /// This relay missed its deadline while connected (paused, starved): other relays may have
    /// taken its peers out of their rooms. As after a reconnection, it takes them out itself,
    /// closes their sessions (1012 `REDIS_RESET`) so that they join again, and leaves the rooms'
    /// channels until a join comes back.
    async fn lapsed(&mut self, relay: &Weak<Relay>) -> redis::RedisResult<()> {
        let Some(strong) = relay.upgrade() else {
            return Ok(());
        };
        let cluster = strong.cluster();
        reap_self(&mut self.conn, cluster).await?;
        // Clearing its last room forgot its deadline: set again, the next beat is on time.
        renew(&mut self.conn, &strong).await?;
        strong.reset_sessions();
        strong.stats.lapses.fetch_add(1, Ordering::Relaxed);
        for room in std::mem::take(&mut self.subscribed) {
            self.sink.unsubscribe(cluster.keys(&room).channel).await?;
        }
        Ok(())
    }
}

/// `handle,write` as the join script stores it.
fn parse_value(value: &str) -> Option<(Handle, bool)> {
    let (handle, write) = value.split_once(',')?;
    Some((handle.parse().ok()?, write == "1"))
}

/// Reads the subscribed channels until the connection is lost.
async fn reader(
    relay: Weak<Relay>,
    mut stream: redis::aio::PubSubStream,
    lost: oneshot::Sender<()>,
) {
    while let Some(message) = stream.next().await {
        let Some(relay) = relay.upgrade() else {
            return;
        };
        let cluster = relay.cluster();
        relay.stats.redis_received.fetch_add(1, Ordering::Relaxed);
        if message.get_channel_name() == cluster.revocations_channel() {
            if let Ok(id) = <[u8; 16]>::try_from(message.get_payload_bytes()) {
                relay.revoke(&id);
            }
            continue;
        }
        let Some(room) = cluster.room_of(message.get_channel_name()) else {
            continue;
        };
        let max = relay.config.max_frame + 128;
        match BusMessage::decode(message.get_payload_bytes(), max) {
            Some((origin, message)) if origin != cluster.id => {
                relay.apply_bus(&room, origin, message)
            }
            Some(_) => {}
            None => relay.stats.refuse("BAD_BUS_MESSAGE"),
        }
    }
    let _ = lost.send(());
}

/// A snapshot row's peer, handle, write flag and holders.
pub(crate) fn snapshot_row(
    row: &(String, String, Vec<String>),
) -> Option<(PeerId, Handle, bool, Vec<RelayId>)> {
    let peer = crate::protocol::parse_peer(&row.0)?;
    let (handle, write) = parse_value(&row.1)?;
    let holders = row
        .2
        .iter()
        .filter_map(|h| hex::decode(h).ok()?.try_into().ok())
        .collect();
    Some((peer, handle, write, holders))
}

/// The text a local peer gets for a signal relayed from another relay.
pub(crate) fn signal_text(
    from: &PeerId,
    data: &[u8],
) -> Option<tokio_tungstenite::tungstenite::Message> {
    let data = serde_json::from_slice(data).ok()?;
    Some(text(&crate::protocol::ServerMessage::Signal {
        from: hex::encode(from),
        data,
    }))
}

/// Revokes capability `id` until `until` (Unix seconds, its expiry) in the Redis at `url`:
/// relays refuse it from then on and close the sessions that presented it.
pub async fn revoke(url: &str, id: [u8; 16], until: u64) -> redis::RedisResult<()> {
    let cluster = Cluster::new(crate::REDIS_PREFIX).map_err(redis::RedisError::from)?;
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    redis::pipe()
        .cmd("ZADD")
        .arg(cluster.revoked_key())
        .arg("GT")
        .arg(until)
        .arg(hex::encode(id))
        .ignore()
        .cmd("PUBLISH")
        .arg(cluster.revocations_channel())
        .arg(&id[..])
        .ignore()
        .query_async(&mut conn)
        .await
}
