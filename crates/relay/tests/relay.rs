//! The relay over real WebSockets on loopback: authentication, presence, forwarding and
//! signalling, frames pipelined behind the auth answer, refusals that leave other peers
//! unaffected, the health endpoint, graceful shutdown, and a bounded load test that must lose no
//! frame.

mod common;

use std::time::{Duration, Instant};

use chrysalis_relay::RelayConfig;
use chrysalis_relay::protocol::{ServerMessage, TO_EVERYONE};
use common::{
    address, auth, challenge, http_get, join, join_from, key, next_binary, next_control,
    pair_still_works, refused, relay,
};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn peers_authenticate_see_each_other_and_exchange_frames_and_signals() {
    let relay = relay(RelayConfig::default()).await;
    let (ka, kb, kc) = (key(1), key(2), key(3));
    let (mut a, peers) = join(&relay, &ka, "room").await;
    assert!(peers.is_empty());
    let (mut b, peers) = join(&relay, &kb, "room").await;
    assert_eq!(peers, [hex::encode(ka.public_key())]);
    assert_eq!(
        next_control(&mut a).await,
        ServerMessage::PeerJoined {
            peer: hex::encode(kb.public_key())
        }
    );
    // Another room sees nothing of this one.
    let (mut c, peers) = join(&relay, &kc, "elsewhere").await;
    assert!(peers.is_empty());

    a.send(Message::binary([&[TO_EVERYONE][..], b"hello all"].concat()))
        .await
        .unwrap();
    let got = next_binary(&mut b).await;
    assert_eq!(&got[..32], ka.public_key());
    assert_eq!(&got[32..], b"hello all");
    pair_still_works(&mut b, &mut a, &ka).await;

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
    // b is in another room: c's frame must not arrive; a signal from c does not cross rooms.
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
    let got = next_binary(&mut a).await;
    assert_eq!(&got[..32], kb.public_key());
    assert_eq!(got[32..], [7; 1000]);
}

#[tokio::test]
async fn unauthenticated_and_forged_peers_are_refused_without_affecting_others() {
    let relay = relay(RelayConfig::default()).await;
    let (ka, kb) = (key(1), key(2));
    let (mut a, _) = join(&relay, &ka, "room").await;
    let (mut b, _) = join(&relay, &kb, "room").await;
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

    pair_still_works(&mut a, &mut b, &kb).await;
    let refusals = relay.stats().refused.lock().unwrap().clone();
    assert_eq!(refusals.get("AUTH_FAILED"), Some(&3));
    assert_eq!(refusals.get("UNAUTHENTICATED"), Some(&2));
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
    let (mut a, _) = join(&relay, &ka, "room").await;
    let (mut b, _) = join(&relay, &kb, "room").await;
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
    let flood_frames = pair_still_works(&mut a, &mut b, &kb).await;
    assert!(flood_frames <= 300, "{flood_frames} flood frames passed");

    // Connections per peer: a third one for a is refused.
    let (_a2, _) = join(&relay, &ka, "other").await;
    let (mut ws, nonce) = challenge(&relay).await;
    ws.send(auth(&ka, "room", "room", &nonce)).await.unwrap();
    assert_eq!(
        refused(&mut ws).await,
        ("TOO_MANY_CONNECTIONS".into(), Some(1008))
    );
    pair_still_works(&mut a, &mut b, &kb).await;
    pair_still_works(&mut b, &mut a, &ka).await;
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
