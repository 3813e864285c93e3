//! The relay over real WebSockets on loopback: authentication, presence, forwarding and
//! signalling, frames pipelined behind the auth answer, refusals that leave other peers
//! unaffected, the health endpoint, graceful shutdown, and a bounded load test that must lose no
//! frame.

mod common;

use std::time::{Duration, Instant};

use chrysalis_relay::RelayConfig;
use chrysalis_relay::protocol::{RoomPeer, ServerMessage, TO_EVERYONE, TO_PEER, auth_message};
use common::{
    address, auth, challenge, from_peer, http_get, join, join_from, key, next_binary, next_control,
    pair_still_works, refused, relay, to_peer,
};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn peers_authenticate_see_each_other_and_exchange_frames_and_signals() {
    let relay = relay(RelayConfig::default()).await;
    let (ka, kb, kc) = (key(1), key(2), key(3));
    // Handles follow join order: the first peer of a room is 0, the next 1.
    let (mut a, joined) = join(&relay, &ka, "room").await;
    assert_eq!(joined.handle, 0);
    assert!(joined.peers.is_empty());
    let (mut b, joined) = join(&relay, &kb, "room").await;
    assert_eq!(joined.handle, 1);
    assert_eq!(
        joined.peers,
        [RoomPeer {
            peer: hex::encode(ka.public_key()),
            handle: 0,
            write: true
        }]
    );
    assert_eq!(
        next_control(&mut a).await,
        ServerMessage::PeerJoined {
            peer: hex::encode(kb.public_key()),
            handle: 1,
            write: true
        }
    );
    // Another room sees nothing of this one, and numbers its peers itself.
    let (mut c, joined) = join(&relay, &kc, "elsewhere").await;
    assert_eq!(joined.handle, 0);
    assert!(joined.peers.is_empty());

    a.send(Message::binary([&[TO_EVERYONE][..], b"hello all"].concat()))
        .await
        .unwrap();
    let got = next_binary(&mut b).await;
    assert_eq!(
        from_peer(&got),
        (0, &b"hello all"[..]),
        "a's handle, a's frame"
    );
    pair_still_works(&mut b, &mut a, 0).await;

    let signal = serde_json::json!({ "type": "signal", "to": hex::encode(kb.public_key()),
        "data": { "sdp": "offer" } });
    a.send(Message::text(signal.to_string())).await.unwrap();
    assert_eq!(
        next_control(&mut b).await,
        ServerMessage::Signal {
            from: hex::encode(ka.public_key()),
            data: serde_json::json!({ "sdp": "offer" })
        }
    );
    a.close(None).await.unwrap();
    assert_eq!(
        next_control(&mut b).await,
        ServerMessage::PeerLeft {
            peer: hex::encode(ka.public_key())
        }
    );
    c.send(Message::binary([&[TO_EVERYONE][..], b"x"].concat()))
        .await
        .unwrap();
    // b's handle in its room means nobody in c's.
    c.send(Message::binary(to_peer(1, b"x"))).await.unwrap();
    // b is in another room: c's frames must not arrive; a signal from c does not cross rooms.
    let quiet = tokio::time::timeout(Duration::from_millis(300), b.next()).await;
    assert!(quiet.is_err(), "a frame crossed rooms: {quiet:?}");
}

/// The answer and a frame in one write: the relay reads past the answer while it authenticates,
/// and what it read goes on to the frame phase.
#[tokio::test]
async fn a_frame_right_behind_the_auth_answer_is_not_lost() {
    let relay = relay(RelayConfig::default()).await;
    let (ka, kb) = (key(1), key(2));
    let (mut a, _) = join(&relay, &ka, "room").await;
    let (mut b, nonce) = challenge(&relay).await;
    b.feed(auth(&kb, "room", "room", &nonce)).await.unwrap();
    b.feed(Message::binary([&[TO_EVERYONE][..], &[7; 1000]].concat()))
        .await
        .unwrap();
    b.flush().await.unwrap();
    // a hears of b, with its handle, before b's frame.
    let ServerMessage::PeerJoined { peer, handle, .. } = next_control(&mut a).await else {
        panic!("expected b to join");
    };
    assert_eq!((peer, handle), (hex::encode(kb.public_key()), 1));
    let got = next_binary(&mut a).await;
    assert_eq!(from_peer(&got), (handle, &[7; 1000][..]));
}

#[tokio::test]
async fn unauthenticated_and_forged_peers_are_refused_without_affecting_others() {
    let relay = relay(RelayConfig::default()).await;
    let (ka, kb) = (key(1), key(2));
    let (mut a, _) = join(&relay, &ka, "room").await;
    let (mut b, joined_b) = join(&relay, &kb, "room").await;
    next_control(&mut a).await; // b joined

    // Data before authenticating.
    let (mut ws, _) = challenge(&relay).await;
    ws.send(Message::binary(vec![TO_EVERYONE, 1, 2, 3]))
        .await
        .unwrap();
    assert_eq!(
        refused(&mut ws).await,
        ("UNAUTHENTICATED".into(), Some(1008))
    );
    // Claiming a's identity without its key.
    let (mut ws, nonce) = challenge(&relay).await;
    let mut forged = auth(&key(66), "room", "room", &nonce);
    if let Message::Text(text) = &forged {
        let fake = text.as_str().replace(
            &hex::encode(key(66).public_key()),
            &hex::encode(ka.public_key()),
        );
        forged = Message::text(fake);
    }
    ws.send(forged).await.unwrap();
    assert_eq!(refused(&mut ws).await, ("AUTH_FAILED".into(), Some(1008)));
    // A signature made for another room.
    let (mut ws, nonce) = challenge(&relay).await;
    ws.send(auth(&key(5), "room", "other", &nonce))
        .await
        .unwrap();
    assert_eq!(refused(&mut ws).await, ("AUTH_FAILED".into(), Some(1008)));
    // A signature replayed from an earlier challenge.
    let (_old, old_nonce) = challenge(&relay).await;
    let (mut ws, _) = challenge(&relay).await;
    ws.send(auth(&key(5), "room", "room", &old_nonce))
        .await
        .unwrap();
    assert_eq!(refused(&mut ws).await, ("AUTH_FAILED".into(), Some(1008)));
    // Garbage.
    let (mut ws, _) = challenge(&relay).await;
    ws.send(Message::text("{not json")).await.unwrap();
    assert_eq!(
        refused(&mut ws).await,
        ("UNAUTHENTICATED".into(), Some(1008))
    );

    pair_still_works(&mut a, &mut b, joined_b.handle).await;
    let refusals = relay.stats().refused.lock().unwrap().clone();
    assert_eq!(refusals.get("AUTH_FAILED"), Some(&3));
    assert_eq!(refusals.get("UNAUTHENTICATED"), Some(&2));
}

/// A version-1 client (its answer names no version) is told to upgrade instead of admitted,
/// as is a client of a version this relay does not know. The answers are otherwise valid; the
/// refusals take no handle, and the peer already in the room hears nothing of them.
#[tokio::test]
async fn clients_of_another_protocol_version_are_refused_without_affecting_others() {
    let relay = relay(RelayConfig::default()).await;
    let (ka, kb) = (key(1), key(2));
    let (mut a, _) = join(&relay, &ka, "room").await;
    for version in [None, Some(1), Some(3)] {
        let (mut ws, nonce) = challenge(&relay).await;
        let mut answer = serde_json::json!({
            "type": "auth", "room": "room", "peer": hex::encode(kb.public_key()),
            "signature": hex::encode(kb.sign(&auth_message(&nonce, "room"))),
        });
        if let Some(version) = version {
            answer["version"] = version.into();
        }
        ws.send(Message::text(answer.to_string())).await.unwrap();
        assert_eq!(
            refused(&mut ws).await,
            ("VERSION".into(), Some(1008)),
            "version {version:?}"
        );
    }
    // The same key in version 2 gets in, with the next handle; a heard of no one before it.
    let (mut b, joined_b) = join(&relay, &kb, "room").await;
    assert_eq!(joined_b.handle, 1, "a refused connection takes no handle");
    assert_eq!(
        next_control(&mut a).await,
        ServerMessage::PeerJoined {
            peer: hex::encode(kb.public_key()),
            handle: 1,
            write: true
        }
    );
    pair_still_works(&mut a, &mut b, 1).await;
    pair_still_works(&mut b, &mut a, 0).await;
    let refusals = relay.stats().refused.lock().unwrap().clone();
    assert_eq!(refusals.get("VERSION"), Some(&3));
}

/// A frame to a handle nobody holds (never given, or given to a peer that left) reaches nobody,
/// and its sender is neither told nor closed; a malformed handle is a `BAD_FRAME`. A peer keeps
/// its handle while it has a connection in the room; one that left frees nothing else: its
/// handle goes to no one while the room exists, the others keep theirs, and the next joiner
/// (even the same key again) gets a new number.
#[tokio::test]
async fn frames_to_unheld_handles_reach_nobody_and_handles_are_not_reused() {
    let relay = relay(RelayConfig::default()).await;
    let (ka, kb, kc, kd) = (key(1), key(2), key(3), key(4));
    let (mut a, _) = join(&relay, &ka, "room").await;
    let (mut b, _) = join(&relay, &kb, "room").await;
    let (mut c, _) = join(&relay, &kc, "room").await;
    next_control(&mut a).await; // b joined (1)
    next_control(&mut a).await; // c joined (2)

    for handle in [3, 7, 300, u32::MAX] {
        a.send(Message::binary(to_peer(handle, b"lost")))
            .await
            .unwrap();
    }
    a.send(Message::binary([&[TO_EVERYONE][..], b"after"].concat()))
        .await
        .unwrap();
    for ws in [&mut b, &mut c] {
        assert_eq!(from_peer(&next_binary(ws).await), (0, &b"after"[..]));
    }
    // The very next message a gets is b's frame: no error came before it.
    b.send(Message::binary(to_peer(0, b"back"))).await.unwrap();
    match tokio::time::timeout(Duration::from_secs(10), a.next()).await {
        Ok(Some(Ok(Message::Binary(got)))) => assert_eq!(from_peer(&got), (1, &b"back"[..])),
        other => panic!("expected b's frame, got {other:?}"),
    }

    // No handle, a cut one, one spelled long (1, b's, with a zero byte: not the shortest
    // form), one past 32 bits, and an unknown header.
    let malformed: [&[u8]; 5] = [
        &[TO_PEER],
        &[TO_PEER, 0x81],
        &[TO_PEER, 0x81, 0x00, b'x'],
        &[TO_PEER, 0xff, 0xff, 0xff, 0xff, 0x1f, b'x'],
        &[2, 0, b'x'],
    ];
    for message in malformed {
        a.send(Message::binary(message.to_vec())).await.unwrap();
        let ServerMessage::Error { code, .. } = next_control(&mut a).await else {
            panic!("expected an error for {message:?}");
        };
        assert_eq!(code, "BAD_FRAME", "{message:?}");
    }
    pair_still_works(&mut a, &mut b, 1).await;

    // A second connection of c: the same handle, and nobody hears of it coming or going.
    let (mut c2, joined) = join(&relay, &kc, "room").await;
    assert_eq!(joined.handle, 2);
    c2.close(None).await.unwrap();
    let closed = async { while let Some(Ok(_)) = c2.next().await {} };
    tokio::time::timeout(Duration::from_secs(10), closed)
        .await
        .expect("c's second connection closes");

    b.close(None).await.unwrap();
    assert_eq!(
        next_control(&mut a).await,
        ServerMessage::PeerLeft {
            peer: hex::encode(kb.public_key())
        }
    );
    let (mut d, joined) = join(&relay, &kd, "room").await;
    assert_eq!(joined.handle, 3, "b's handle is not given again");
    let held: Vec<_> = joined.peers.iter().map(|p| p.handle).collect();
    assert_eq!(held, [0, 2], "a and c keep theirs");
    assert_eq!(
        next_control(&mut a).await,
        ServerMessage::PeerJoined {
            peer: hex::encode(kd.public_key()),
            handle: 3,
            write: true
        }
    );
    // b's old handle reaches nobody; c is still 2.
    a.send(Message::binary(to_peer(1, b"stale"))).await.unwrap();
    a.send(Message::binary([&[TO_EVERYONE][..], b"after"].concat()))
        .await
        .unwrap();
    for ws in [&mut c, &mut d] {
        assert_eq!(from_peer(&next_binary(ws).await), (0, &b"after"[..]));
    }
    pair_still_works(&mut d, &mut c, 2).await;
    pair_still_works(&mut c, &mut a, 0).await;
    // b again: a new number, and the first event a hears since d (c's second connection
    // came and went unannounced).
    let (_b, joined) = join(&relay, &kb, "room").await;
    assert_eq!(joined.handle, 4);
    assert_eq!(
        next_control(&mut a).await,
        ServerMessage::PeerJoined {
            peer: hex::encode(kb.public_key()),
            handle: 4,
            write: true
        }
    );
    // The four lost frames and the stale one are counted.
    let response = http_get(relay.addr, "/health").await;
    let body: serde_json::Value =
        serde_json::from_str(response.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["refused"]["UNKNOWN_HANDLE"], 5, "{body}");
}

#[tokio::test]
async fn oversized_frames_floods_and_extra_connections_are_refused_without_affecting_others() {
    let config = RelayConfig {
        max_frame: 64 * 1024,
        rate_per_second: 100,
        burst: 200,
        max_connections_per_peer: 2,
        ..RelayConfig::default()
    };
    let relay = relay(config).await;
    let (ka, kb, km) = (key(1), key(2), key(9));
    let (mut a, joined_a) = join(&relay, &ka, "room").await;
    let (mut b, joined_b) = join(&relay, &kb, "room").await;
    next_control(&mut a).await;

    let (mut big, _) = join(&relay, &km, "room").await;
    big.send(Message::binary(vec![TO_EVERYONE; 64 * 1024 + 1]))
        .await
        .unwrap();
    assert_eq!(refused(&mut big).await, ("OVERSIZED".into(), Some(1009)));

    // A flood: far past the burst, as fast as the socket takes it.
    let (mut flood, _) = join(&relay, &km, "room").await;
    let sent = tokio::spawn(async move {
        for _ in 0..5000 {
            if flood
                .send(Message::binary(vec![TO_EVERYONE, 0xf1]))
                .await
                .is_err()
            {
                break;
            }
        }
        refused(&mut flood).await
    });
    // The flooder hears RATE_LIMITED and is disconnected (its close frame may be lost to a TCP
    // reset: the relay closes while the flood is still unread in its buffers).
    let (code, _) = sent.await.unwrap();
    assert_eq!(code, "RATE_LIMITED");
    assert!(relay.stats().refused.lock().unwrap()["RATE_LIMITED"] >= 800);
    // What the relay let through before the bucket emptied: at most the burst plus the rate.
    let flood_frames = pair_still_works(&mut a, &mut b, joined_b.handle).await;
    assert!(flood_frames <= 300, "{flood_frames} flood frames passed");

    // Connections per peer: a third one for a is refused.
    let (_a2, _) = join(&relay, &ka, "other").await;
    let (mut ws, nonce) = challenge(&relay).await;
    ws.send(auth(&ka, "room", "room", &nonce)).await.unwrap();
    assert_eq!(
        refused(&mut ws).await,
        ("TOO_MANY_CONNECTIONS".into(), Some(1008))
    );
    pair_still_works(&mut a, &mut b, joined_b.handle).await;
    pair_still_works(&mut b, &mut a, joined_a.handle).await;
}

#[tokio::test]
async fn health_reports_and_shutdown_is_graceful() {
    let relay = relay(RelayConfig::default()).await;
    let (mut a, _) = join(&relay, &key(1), "room").await;
    let response = http_get(relay.addr, "/health").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let body: serde_json::Value =
        serde_json::from_str(response.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["connections"], 1);
    assert_eq!(body["rooms"], 1);
    let addr = relay.addr;
    tokio::time::timeout(Duration::from_secs(10), relay.shutdown())
        .await
        .expect("shutdown within 10 s")
        .unwrap();
    assert_eq!(refused(&mut a).await.1, Some(1001), "going away");
    assert!(TcpStream::connect(addr).await.is_err(), "still listening");
}

/// 200 connections in 10 rooms of 20, each from its own loopback address; each peer sends 50
/// frames to its room. Every receiver must get every frame of every other peer of its room:
/// zero loss.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_test_holds_connections_and_loses_no_frame() {
    const ROOMS: u32 = 10;
    const PER_ROOM: u32 = 20;
    const FRAMES: u32 = 50;
    let relay = relay(RelayConfig::default()).await;
    let started = Instant::now();
    let mut sockets = Vec::new();
    for r in 0..ROOMS {
        for p in 0..PER_ROOM {
            // Each peer from its own address, as from its own host: one address has a share
            // of a room and of the relay.
            let source = address(r * PER_ROOM + p);
            let (ws, _) = join_from(relay.addr, source, &key(r * 1000 + p), &format!("room-{r}"))
                .await
                .unwrap();
            sockets.push(ws);
        }
    }
    let connected = relay
        .stats()
        .connections
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(connected, u64::from(ROOMS * PER_ROOM));
    let expected = FRAMES * (PER_ROOM - 1);
    let send_start = Instant::now();
    let mut tasks = Vec::new();
    for (i, ws) in sockets.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let (mut tx, mut rx) = ws.split();
            let sender = tokio::spawn(async move {
                for n in 0..FRAMES {
                    let mut frame = vec![TO_EVERYONE];
                    frame.extend_from_slice(&(i as u32).to_le_bytes());
                    frame.extend_from_slice(&n.to_le_bytes());
                    frame.extend_from_slice(&[0u8; 100]);
                    tx.send(Message::binary(frame)).await.unwrap();
                }
                tx
            });
            let mut received = 0;
            while received < expected {
                match tokio::time::timeout(Duration::from_secs(30), rx.next()).await {
                    Ok(Some(Ok(Message::Binary(_)))) => received += 1,
                    Ok(Some(Ok(_))) => {}
                    _ => break,
                }
            }
            let _tx = sender.await.unwrap();
            received
        }));
    }
    let mut total = 0;
    for task in tasks {
        let received = task.await.unwrap();
        assert_eq!(received, expected, "a receiver lost frames");
        total += received;
    }
    let seconds = send_start.elapsed().as_secs_f64();
    println!(
        "relay load test: {connected} connections held, {total} frames delivered in {seconds:.2} s \
         ({:.0} frames/s), 0 lost; setup {:.2} s",
        f64::from(total) / seconds,
        (send_start - started).as_secs_f64()
    );
    assert!(relay.stats().refused.lock().unwrap().is_empty());
}
