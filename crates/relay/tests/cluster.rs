//! Three relays sharing rooms through a real `redis-server` on a free loopback port: presence,
//! handles, frames and signals across relays; a relay that shuts down; Redis going away and
//! coming back.

mod common;

use std::time::Duration;

use chrysalis_relay::protocol::{ServerMessage, TO_EVERYONE};
use chrysalis_relay::{RelayConfig, RelayHandle};
use common::*;
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

async fn relays(redis: &RedisServer, n: usize) -> Vec<RelayHandle> {
    let mut relays = Vec::new();
    for _ in 0..n {
        relays.push(
            relay(RelayConfig {
                redis: Some(redis.url.clone()),
                ..RelayConfig::default()
            })
            .await,
        );
    }
    relays
}

/// Joins, retrying while the relay is still reaching Redis at start.
async fn join_retrying(relay: &RelayHandle, n: u32, room: &str) -> (Ws, Admitted) {
    for _ in 0..100 {
        match join_from(relay.addr, HONEST, &key(n), room).await {
            Ok(joined) => return joined,
            Err(code) if code == "REDIS_UNAVAILABLE" => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(code) => panic!("refused: {code}"),
        }
    }
    panic!("the relay never reached Redis");
}

fn peer_hex(n: u32) -> String {
    hex::encode(key(n).public_key())
}

/// The next presence message, skipping frames.
async fn joined(ws: &mut Ws) -> (String, u32) {
    match next_control(ws).await {
        ServerMessage::PeerJoined { peer, handle, .. } => (peer, handle),
        other => panic!("expected peer-joined, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_on_three_relays_see_each_other_and_exchange_frames_and_signals() {
    let redis = RedisServer::start().await;
    let relays = relays(&redis, 3).await;
    let (mut a, joined_a) = join_retrying(&relays[0], 1, "room").await;
    let (mut b, joined_b) = join_retrying(&relays[1], 2, "room").await;
    let (mut c, joined_c) = join_retrying(&relays[2], 3, "room").await;
    // Handles are given once per room across relays; each welcome lists the earlier peers.
    assert!(joined_a.peers.is_empty());
    assert_eq!(joined_b.peers.len(), 1);
    assert_eq!(joined_b.peers[0].peer, peer_hex(1));
    assert_eq!(joined_b.peers[0].handle, joined_a.handle);
    let mut handles: Vec<u32> = joined_c.peers.iter().map(|p| p.handle).collect();
    handles.push(joined_c.handle);
    assert_eq!(handles, [joined_a.handle, joined_b.handle, joined_c.handle]);
    assert_eq!(
        [joined_a.handle, joined_b.handle, joined_c.handle],
        [0, 1, 2]
    );
    assert_eq!(joined(&mut a).await, (peer_hex(2), 1));
    assert_eq!(joined(&mut a).await, (peer_hex(3), 2));
    assert_eq!(joined(&mut b).await, (peer_hex(3), 2));

    // A frame to everyone reaches the other relays' peers, labelled with the sender's handle.
    a.send(Message::binary([&[TO_EVERYONE][..], b"from a"].concat()))
        .await
        .unwrap();
    for ws in [&mut b, &mut c] {
        assert_eq!(from_peer(&next_binary(ws).await), (0, &b"from a"[..]));
    }
    // A frame to one handle reaches that peer only.
    c.send(Message::binary(to_peer(1, b"c to b")))
        .await
        .unwrap();
    assert_eq!(from_peer(&next_binary(&mut b).await), (2, &b"c to b"[..]));
    b.send(Message::binary([&[TO_EVERYONE][..], b"from b"].concat()))
        .await
        .unwrap();
    assert_eq!(
        from_peer(&next_binary(&mut a).await),
        (1, &b"from b"[..]),
        "a got nothing meant for b alone"
    );
    // Signalling crosses relays too.
    let signal = serde_json::json!({"type": "signal", "to": peer_hex(3), "data": {"sdp": "x"}});
    a.send(Message::text(signal.to_string())).await.unwrap();
    assert_eq!(
        next_control(&mut c).await,
        ServerMessage::Signal {
            from: peer_hex(1),
            data: serde_json::json!({"sdp": "x"})
        }
    );
    // b leaves: the others hear it; its handle is not given again.
    drop(b);
    for ws in [&mut a, &mut c] {
        assert_eq!(
            next_control(ws).await,
            ServerMessage::PeerLeft { peer: peer_hex(2) }
        );
    }
    let (_d, joined_d) = join_retrying(&relays[1], 4, "room").await;
    assert_eq!(joined_d.handle, 3);
    assert_eq!(joined(&mut a).await, (peer_hex(4), 3));
    // A relay that shuts down takes its peers with it.
    let mut relays = relays;
    relays.remove(2).shutdown().await.unwrap();
    assert_eq!(
        next_control(&mut a).await,
        ServerMessage::PeerLeft { peer: peer_hex(3) }
    );
    let health = http_get(relays[0].addr, "/health").await;
    assert!(health.contains("\"redis\":\"up\""), "{health}");
    // The same counters for Prometheus: every sample line is `name{labels} value`.
    let metrics = http_get(relays[0].addr, "/metrics").await;
    let (head, body) = metrics.split_once("\r\n\r\n").unwrap();
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        let (name, value) = line.rsplit_once(' ').unwrap();
        assert!(name.starts_with("chrysalis_relay_"), "{line}");
        assert!(value.parse::<f64>().is_ok(), "{line}");
    }
    for sample in [
        "chrysalis_relay_connections 1\n",
        "chrysalis_relay_redis_up 1\n",
        "# TYPE chrysalis_relay_redis_round_trip_seconds summary",
        "chrysalis_relay_redis_round_trip_seconds_count ",
        "chrysalis_relay_frames_received_total 1\n",
    ] {
        assert!(body.contains(sample), "{sample} in {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_going_away_refuses_joins_clearly_and_coming_back_restores_the_rooms() {
    let mut redis = RedisServer::start().await;
    let relays = relays(&redis, 2).await;
    let (mut a, _) = join_retrying(&relays[0], 1, "room").await;
    let (mut b, _) = join_retrying(&relays[1], 2, "room").await;
    assert_eq!(joined(&mut a).await.0, peer_hex(2));
    redis.kill();
    // A join that needs Redis is refused with a code that says to come back later.
    let mut refused_with = String::new();
    for _ in 0..100 {
        match join_from(relays[0].addr, HONEST, &key(3), "elsewhere").await {
            Err(code) => {
                refused_with = code;
                break;
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    assert_eq!(refused_with, "REDIS_UNAVAILABLE");
    let health = http_get(relays[0].addr, "/health").await;
    assert!(health.starts_with("HTTP/1.1 503"), "{health}");
    assert!(health.contains("\"redis\":\"down\""), "{health}");
    // Redis comes back empty on the same port: it lost the rooms, so the relays close their
    // sessions with a code that says to join again, and rejoining works.
    let _redis = RedisServer::start_on(redis.port).await.expect("restarted");
    for ws in [&mut a, &mut b] {
        assert_eq!(refused(ws).await, ("REDIS_RESET".into(), Some(1012)));
    }
    let (mut a, _) = join_retrying(&relays[0], 1, "room").await;
    let (mut b, joined_b) = join_retrying(&relays[1], 2, "room").await;
    assert_eq!(joined_b.peers.len(), 1);
    assert_eq!(joined_b.peers[0].peer, peer_hex(1));
    assert_eq!(joined(&mut a).await.0, peer_hex(2));
    a.send(Message::binary([&[TO_EVERYONE][..], b"after"].concat()))
        .await
        .unwrap();
    assert_eq!(from_peer(&next_binary(&mut b).await).1, b"after");
    let health = http_get(relays[0].addr, "/health").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_relays_peers_leave_their_rooms_and_can_join_through_another() {
    let redis = RedisServer::start().await;
    let mut survivor = RelayProcess::start_with(&["--redis", &redis.url]);
    let mut victim = RelayProcess::start_with(&["--redis", &redis.url]);
    let (mut a, _) = join_room(survivor.addr, 1).await;
    let (_b, joined_b) = join_room(victim.addr, 2).await;
    assert_eq!(joined_b.peers[0].peer, peer_hex(1));
    assert_eq!(joined(&mut a).await.0, peer_hex(2));
    // SIGKILL: the victim tells nobody; its heartbeat stops, and the survivor clears its peers.
    let killed = std::time::Instant::now();
    victim.kill();
    let left = next_control_within(&mut a, Duration::from_secs(20)).await;
    assert_eq!(left, ServerMessage::PeerLeft { peer: peer_hex(2) });
    let took = killed.elapsed();
    assert!(
        took >= Duration::from_secs(6),
        "not before its deadline: {took:?}"
    );
    // The peer joins again through the survivor.
    let (_b, joined_b) = join_room(survivor.addr, 2).await;
    assert_eq!(joined_b.peers[0].peer, peer_hex(1));
    assert_eq!(joined(&mut a).await.0, peer_hex(2));
    let health = http_get(survivor.addr, "/health").await;
    assert!(health.contains("\"redis\":\"up\""), "{health}");
    survivor.stop();
}

/// Joins "room" at a relay process, retrying while it is still reaching Redis.
async fn join_room(addr: std::net::SocketAddr, n: u32) -> (Ws, Admitted) {
    for _ in 0..100 {
        match join_from(addr, HONEST, &key(n), "room").await {
            Ok(joined) => return joined,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    panic!("never admitted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_paused_past_its_deadline_resets_its_sessions_so_its_peers_come_back() {
    let redis = RedisServer::start().await;
    let survivor = RelayProcess::start_with(&["--redis", &redis.url]);
    let paused = RelayProcess::start_with(&["--redis", &redis.url]);
    let (mut a, _) = join_room(survivor.addr, 1).await;
    let (mut b, _) = join_room(paused.addr, 2).await;
    assert_eq!(joined(&mut a).await.0, peer_hex(2));
    // Stopped with its connections open: the survivor takes it for dead and clears its peers.
    paused.signal("STOP");
    let left = next_control_within(&mut a, Duration::from_secs(20)).await;
    paused.signal("CONT");
    assert_eq!(left, ServerMessage::PeerLeft { peer: peer_hex(2) });
    // Back, it finds its deadline passed: its peers were taken out, so their sessions close
    // (1012) and they join again, seen by the others.
    let closed = tokio::time::timeout(Duration::from_secs(10), refused(&mut b)).await;
    assert_eq!(closed.ok(), Some(("REDIS_RESET".into(), Some(1012))));
    let (_b, joined_b) = join_room(paused.addr, 2).await;
    assert_eq!(joined_b.peers[0].peer, peer_hex(1));
    assert_eq!(joined(&mut a).await.0, peer_hex(2));
    // Once: the next beats (every 2 s) find the deadline it set again.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let metrics = http_get(paused.addr, "/metrics").await;
    assert!(
        metrics.contains("chrysalis_relay_heartbeat_lapses_total 1"),
        "{metrics}"
    );
}

/// Joins `room` asking for its archive: the socket, and how many archived frames follow.
async fn join_archived(relay: &RelayHandle, n: u32, room: &str) -> (Ws, Option<u32>) {
    for _ in 0..100 {
        let (mut ws, nonce) = challenge(relay).await;
        let auth = auth(&key(n), room, room, &nonce);
        let mut answer: serde_json::Value = serde_json::from_str(auth.to_text().unwrap()).unwrap();
        answer["archive"] = true.into();
        ws.send(Message::text(answer.to_string())).await.unwrap();
        match next_control(&mut ws).await {
            ServerMessage::Welcome { archive, .. } => return (ws, archive),
            ServerMessage::Error { code, .. } if code == "REDIS_UNAVAILABLE" => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            other => panic!("{other:?}"),
        }
    }
    panic!("never admitted");
}

/// A push as the relay sees it: sync version 6, kind 1, then `body` padded to 100 bytes at
/// least (a signed frame is 74 at least).
fn push(body: &[u8]) -> Vec<u8> {
    let mut frame = [&[6, 1][..], body].concat();
    frame.resize(frame.len().max(100), 0);
    frame
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_joining_an_empty_room_gets_its_archive_within_its_bounds() {
    let redis = RedisServer::start().await;
    let mut relays = Vec::new();
    for _ in 0..2 {
        relays.push(
            relay(RelayConfig {
                redis: Some(redis.url.clone()),
                archive: true,
                archive_max_bytes: 16_000,
                ..RelayConfig::default()
            })
            .await,
        );
    }
    let (mut a, archived) = join_archived(&relays[0], 1, "room").await;
    assert_eq!(archived, Some(0), "the relay keeps an archive; it is empty");
    a.send(Message::binary(
        [&[2][..], &push(b"to all and kept")].concat(),
    ))
    .await
    .unwrap();
    a.send(Message::binary([&[3][..], &push(b"kept only")].concat()))
        .await
        .unwrap();
    // Only pushes are kept, of a signed frame's size to a sixteenth of the bound.
    for refused in [
        [&[6, 2][..], &[0; 98][..]].concat(),
        vec![6, 1, 0],
        [&[6, 1][..], &[0; 1000][..]].concat(),
    ] {
        a.send(Message::binary([&[3][..], &refused].concat()))
            .await
            .unwrap();
        let ServerMessage::Error { code, .. } = next_control(&mut a).await else {
            panic!("expected a refusal");
        };
        assert_eq!(code, "NOT_ARCHIVABLE");
    }
    drop(a);
    // b joins the empty room on the other relay: it gets a's two pushes, signer first.
    let wait_archived = || async {
        for _ in 0..100 {
            let health = http_get(relays[0].addr, "/health").await;
            if health.contains("\"archived\":2") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("not archived");
    };
    wait_archived().await;
    let (mut b, archived) = join_archived(&relays[1], 2, "room").await;
    assert_eq!(archived, Some(2));
    let signer = key(1).public_key();
    for body in [&b"to all and kept"[..], b"kept only"] {
        assert_eq!(
            next_binary(&mut b).await,
            [&signer[..], &push(body)].concat()
        );
    }
    // A peer that does not ask gets no archive.
    let (_c, joined) = join_retrying(&relays[1], 3, "room").await;
    assert_eq!(joined.peers.len(), 1);
    // Past the byte bound (16,000 bytes, 32 + frame each), the oldest go first.
    for i in 0..40u8 {
        b.send(Message::binary([&[3][..], &push(&[i; 398])].concat()))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (mut d, archived) = join_archived(&relays[0], 4, "room").await;
    assert_eq!(archived, Some(37), "37 of 432 bytes fit in 16,000");
    let signer = key(2).public_key();
    for i in 3..40u8 {
        assert_eq!(
            next_binary(&mut d).await,
            [&signer[..], &push(&[i; 398])].concat()
        );
    }
    // Regression (found reviewing the fixes): a stream evicted without its size counter left
    // the counter above the bound, and every later push was trimmed away with the rest.
    let client = redis::Client::open(redis.url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let stream = format!("chr:r:{{{}}}:archive", hex::encode("room"));
    redis::cmd("DEL")
        .arg(&stream)
        .exec_async(&mut conn)
        .await
        .unwrap();
    for i in [1u8, 2] {
        b.send(Message::binary([&[3][..], &push(&[i; 98])].concat()))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_e, archived) = join_archived(&relays[1], 5, "room").await;
    assert_eq!(
        archived,
        Some(1),
        "the first push after the eviction resets the count"
    );
}
