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
    let join = |addr, n: u32| async move {
        for _ in 0..100 {
            match join_from(addr, HONEST, &key(n), "room").await {
                Ok(joined) => return joined,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        panic!("never admitted");
    };
    let (mut a, _) = join(survivor.addr, 1).await;
    let (_b, joined_b) = join(victim.addr, 2).await;
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
    let (_b, joined_b) = join(survivor.addr, 2).await;
    assert_eq!(joined_b.peers[0].peer, peer_hex(1));
    assert_eq!(joined(&mut a).await.0, peer_hex(2));
    let health = http_get(survivor.addr, "/health").await;
    assert!(health.contains("\"redis\":\"up\""), "{health}");
    survivor.stop();
}
