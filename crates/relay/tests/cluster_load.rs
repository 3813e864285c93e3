//! Load on relays that share rooms through Redis, against one relay alone: authenticated
//! connections in rooms of 10, peer `i` on relay `i mod 3`, each sending one frame a second to its
//! room for a few seconds. Every frame must reach every other peer of its room (zero loss between
//! connected peers); the test measures forwarding latency (p50, p99) and the relays' resident
//! memory per connection.
//!
//! Bounded: `CHRYSALIS_LOAD_CONNECTIONS` connections (300 by default, what the test command runs;
//! `scripts/bench.sh relay` runs 3,000 in release), `CHRYSALIS_LOAD_SECONDS` seconds of sending
//! (5 by default), and a hard deadline. With `CHRYSALIS_LOAD_REPORT=path` the results are written
//! there as JSON (for docs/benchmarks.md).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrysalis_relay::protocol::TO_EVERYONE;
use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

/// Peers per room.
const ROOM: usize = 10;
/// Clients per source address (within the relays' per-address limits).
const PER_ADDRESS: usize = 10;
/// The whole run may not take longer than this.
const DEADLINE: Duration = Duration::from_secs(240);

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What one run measured.
struct Measured {
    connections: usize,
    rooms: usize,
    relays: usize,
    seconds: usize,
    sent: u64,
    received: u64,
    expected: u64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    connect_s: f64,
    rss_per_connection_kib: f64,
    rss_total_mib: f64,
}

impl Measured {
    fn json(&self, label: &str) -> serde_json::Value {
        serde_json::json!({
            "label": label,
            "connections": self.connections,
            "rooms": self.rooms,
            "relays": self.relays,
            "seconds": self.seconds,
            "framesPerSecond": self.sent as f64 / self.seconds as f64,
            "sent": self.sent,
            "received": self.received,
            "expected": self.expected,
            "lost": self.expected.saturating_sub(self.received),
            "p50Ms": self.p50_ms,
            "p99Ms": self.p99_ms,
            "maxMs": self.max_ms,
            "connectSeconds": self.connect_s,
            "rssPerConnectionKiB": self.rss_per_connection_kib,
            "rssTotalMiB": self.rss_total_mib,
        })
    }
}

/// Connects `n` peers over `relays`, waits until every peer sees its room, has each send one
/// frame a second for `seconds`, and counts what arrives.
async fn run(relays: &[RelayProcess], n: usize, seconds: usize) -> Measured {
    let rooms = n / ROOM;
    let idle: u64 = relays.iter().map(|r| r.memory().0).sum();
    let started = Instant::now();
    let mut sockets = Vec::with_capacity(n);
    for i in 0..n {
        let relay = &relays[i % relays.len()];
        let source = address((i / PER_ADDRESS) as u32);
        let room = format!("load-{}", i / ROOM);
        let joined = loop {
            match join_from(relay.addr, source, &key(i as u32), &room).await {
                Ok(joined) => break joined,
                Err(code) if code == "REDIS_UNAVAILABLE" => {
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
                Err(code) => panic!("peer {i} refused: {code}"),
            }
        };
        sockets.push(joined);
    }
    // Everyone sees the nine others: the earlier ones in its welcome, the later ones announced.
    let mut ready = Vec::with_capacity(n);
    for (i, (mut ws, admitted)) in sockets.into_iter().enumerate() {
        let later = ROOM - 1 - admitted.peers.len();
        for _ in 0..later {
            let message = next_control_within(&mut ws, Duration::from_secs(30)).await;
            assert!(
                matches!(
                    message,
                    chrysalis_relay::protocol::ServerMessage::PeerJoined { .. }
                ),
                "peer {i}: {message:?}"
            );
        }
        ready.push(ws);
    }
    let connect_s = started.elapsed().as_secs_f64();
    let loaded: u64 = relays.iter().map(|r| r.memory().0).sum();

    let clock = Instant::now();
    let received = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(std::sync::Mutex::new(Vec::with_capacity(
        n * seconds * ROOM,
    )));
    let mut tasks = Vec::new();
    for (i, ws) in ready.into_iter().enumerate() {
        let (mut sink, mut stream) = ws.split();
        let (received, latencies) = (received.clone(), latencies.clone());
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            while let Some(Ok(message)) = stream.next().await {
                if let Message::Binary(bytes) = message {
                    let (_, frame) = from_peer(&bytes);
                    let sent = u64::from_le_bytes(frame[8..16].try_into().unwrap());
                    let now = clock.elapsed().as_micros() as u64;
                    mine.push(now.saturating_sub(sent) as u32);
                    received.fetch_add(1, Ordering::Relaxed);
                }
            }
            latencies.lock().unwrap().extend(mine);
        }));
        tasks.push(tokio::spawn(async move {
            // Spread over the second: peer i sends at i/n of it.
            let phase = Duration::from_micros((i as u64 * 1_000_000) / n as u64);
            let mut tick = tokio::time::interval_at(
                tokio::time::Instant::now() + phase,
                Duration::from_secs(1),
            );
            for seq in 0..seconds as u32 {
                tick.tick().await;
                let at = clock.elapsed().as_micros() as u64;
                let mut frame = vec![TO_EVERYONE];
                frame.extend_from_slice(&(i as u32).to_le_bytes());
                frame.extend_from_slice(&seq.to_le_bytes());
                frame.extend_from_slice(&at.to_le_bytes());
                frame.resize(1 + 64, 0);
                sink.send(Message::binary(frame)).await.unwrap();
            }
            tokio::time::sleep(Duration::from_secs(3)).await;
            let _ = sink.close().await;
        }));
    }
    let sent = (n * seconds) as u64;
    let expected = sent * (ROOM as u64 - 1);
    for task in tasks {
        task.await.unwrap();
    }
    let mut latencies = std::mem::take(&mut *latencies.lock().unwrap());
    latencies.sort_unstable();
    let quantile = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q) as usize)
            .map_or(f64::NAN, |us| f64::from(*us) / 1000.0)
    };
    Measured {
        connections: n,
        rooms,
        relays: relays.len(),
        seconds,
        sent,
        received: received.load(Ordering::Relaxed),
        expected,
        p50_ms: quantile(0.5),
        p99_ms: quantile(0.99),
        max_ms: quantile(1.0),
        connect_s,
        rss_per_connection_kib: loaded.saturating_sub(idle) as f64 / n as f64,
        rss_total_mib: loaded as f64 / 1024.0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_connections_over_three_relays_on_redis_lose_no_frame() {
    raise_file_limit();
    let n = setting("CHRYSALIS_LOAD_CONNECTIONS", 300) / ROOM * ROOM;
    let seconds = setting("CHRYSALIS_LOAD_SECONDS", 5);
    let result = tokio::time::timeout(DEADLINE, async {
        let redis = RedisServer::start().await;
        let relays: Vec<RelayProcess> = (0..3)
            .map(|_| RelayProcess::start_with(&["--redis", &redis.url]))
            .collect();
        let clustered = run(&relays, n, seconds).await;
        drop(relays);
        let alone = run(&[RelayProcess::start()], n, seconds).await;
        (clustered, alone)
    })
    .await
    .expect("the load test ends within its deadline");
    let (clustered, alone) = result;
    let report = serde_json::json!({
        "clustered": clustered.json("3 relays on Redis"),
        "alone": alone.json("1 relay, no Redis"),
    });
    println!("{report:#}");
    if let Ok(path) = std::env::var("CHRYSALIS_LOAD_REPORT") {
        std::fs::write(path, format!("{report:#}")).unwrap();
    }
    for run in [&clustered, &alone] {
        assert_eq!(
            run.received, run.expected,
            "no frame lost between connected peers"
        );
    }
}

/// A stream entry as XREAD returns it: its id and its fields and values.
type StreamEntry = (String, Vec<Vec<u8>>);

/// Latency percentiles (ms) of `samples` in µs.
fn percentiles(mut samples: Vec<u64>) -> (f64, f64) {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
    (at(0.5), at(0.99))
}

/// Why live frames cross relays by pub/sub and not streams: 3,000 messages of 1 KiB a second
/// over 300 rooms, one publisher and one reader, each way; latency from publish to read and
/// what Redis holds afterwards. Run by `scripts/bench.sh relay` (`--ignored`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn pub_sub_against_streams_for_live_frames() {
    let redis = RedisServer::start().await;
    let client = redis::Client::open(redis.url.as_str()).unwrap();
    let rooms = 300;
    let (count, payload) = (3_000, 1024);
    let clock = Instant::now();
    let message = |i: usize| {
        let mut bytes = (clock.elapsed().as_micros() as u64).to_le_bytes().to_vec();
        bytes.resize(payload, i as u8);
        bytes
    };
    let memory = |mut conn: redis::aio::MultiplexedConnection| async move {
        let info: String = redis::cmd("INFO")
            .arg("memory")
            .query_async(&mut conn)
            .await
            .unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .unwrap()
            .trim()
            .parse::<u64>()
            .unwrap()
    };
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let before = memory(conn.clone()).await;

    // Pub/sub: subscribe to every room's channel, then publish a message every 1/3,000 s.
    let (mut sink, mut stream) = client.get_async_pubsub().await.unwrap().split();
    for room in 0..rooms {
        sink.subscribe(format!("room:{room}")).await.unwrap();
    }
    let reader = tokio::spawn(async move {
        let mut latencies = Vec::with_capacity(count);
        while latencies.len() < count {
            let message = stream.next().await.unwrap();
            let sent = u64::from_le_bytes(message.get_payload_bytes()[..8].try_into().unwrap());
            latencies.push(clock.elapsed().as_micros() as u64 - sent);
        }
        latencies
    });
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / count as u64));
    for i in 0..count {
        tick.tick().await;
        redis::cmd("PUBLISH")
            .arg(format!("room:{}", i % rooms))
            .arg(message(i))
            .exec_async(&mut conn)
            .await
            .unwrap();
    }
    let pubsub = percentiles(reader.await.unwrap());
    let pubsub_memory = memory(conn.clone()).await.saturating_sub(before);

    // Streams: XADD to every room's stream; one reader blocks on all 300 with XREAD.
    let mut reader_conn = client.get_multiplexed_async_connection().await.unwrap();
    let reader = tokio::spawn(async move {
        let mut last: Vec<String> = vec!["0-0".into(); rooms];
        let mut latencies = Vec::with_capacity(count);
        while latencies.len() < count {
            let mut read = redis::cmd("XREAD");
            read.arg("BLOCK")
                .arg(100)
                .arg("COUNT")
                .arg(1000)
                .arg("STREAMS");
            for room in 0..rooms {
                read.arg(format!("log:{room}"));
            }
            read.arg(&last);
            let answer: Option<Vec<(String, Vec<StreamEntry>)>> =
                read.query_async(&mut reader_conn).await.unwrap();
            for (key, entries) in answer.unwrap_or_default() {
                let room: usize = key["log:".len()..].parse().unwrap();
                for (id, fields) in entries {
                    let sent = u64::from_le_bytes(fields[1][..8].try_into().unwrap());
                    latencies.push(clock.elapsed().as_micros() as u64 - sent);
                    last[room] = id;
                }
            }
        }
        latencies
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / count as u64));
    for i in 0..count {
        tick.tick().await;
        redis::cmd("XADD")
            .arg(format!("log:{}", i % rooms))
            .arg("*")
            .arg("m")
            .arg(message(i))
            .exec_async(&mut conn)
            .await
            .unwrap();
    }
    let streams = percentiles(reader.await.unwrap());
    let streams_memory = memory(conn.clone()).await.saturating_sub(before);
    let report = serde_json::json!({
        "messages": count, "payload": payload, "rooms": rooms,
        "pubsub": { "p50Ms": pubsub.0, "p99Ms": pubsub.1, "heldBytes": pubsub_memory },
        "streams": { "p50Ms": streams.0, "p99Ms": streams.1, "heldBytes": streams_memory },
    });
    println!("{report:#}");
    if let Ok(path) = std::env::var("CHRYSALIS_BUS_REPORT") {
        std::fs::write(path, format!("{report:#}")).unwrap();
    }
}
