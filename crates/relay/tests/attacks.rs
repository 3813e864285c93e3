//! Attacks on the relay's availability, one regression test each: half-open WebSocket
//! handshakes, large first messages, receivers that never read, half-sent HTTP requests, floods
//! of any frame type, throwaway identities filling rooms, and one identity under several
//! spellings. Attackers connect from other loopback addresses than the honest peers (127.0.0.1),
//! as they would from other hosts; every test checks that honest peers are still served.

mod common;

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use chrysalis_relay::RelayConfig;
use chrysalis_relay::protocol::{RoomPeer, ServerMessage, TO_EVERYONE, auth_message};
use common::{
    UPGRADE, address, challenge, count_open, http_get, join, join_from, key, next_control,
    pair_still_works, raise_file_limit, refused, relay, tcp_from, to_peer,
};
use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// `count` connections from `source` that send `request` and then nothing.
async fn stalled(source: Ipv4Addr, count: usize, to: SocketAddr, request: &[u8]) -> Vec<TcpStream> {
    let mut streams = Vec::with_capacity(count);
    for _ in 0..count {
        let mut stream = tcp_from(source, to).await.unwrap();
        // A socket the relay refused may fail the write: it is counted as closed below.
        let _ = stream.write_all(request).await;
        streams.push(stream);
    }
    streams
}

/// Attack 1: WebSocket handshakes that never answer the challenge. One address holds at most
/// its share of unauthenticated sockets (16), many addresses together at most the global cap
/// (1,024; the oldest give way to newcomers), and all close at the auth timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_handshakes_are_capped_per_address_and_in_all_and_time_out() {
    raise_file_limit();
    let timeout = Duration::from_secs(4);
    let relay = relay(RelayConfig {
        auth_timeout: timeout,
        ..RelayConfig::default()
    })
    .await;
    let (ka, kb) = (key(1), key(2));
    let (mut a, joined_a) = join(&relay, &ka, "room").await;
    let (mut b, joined_b) = join(&relay, &kb, "room").await;
    next_control(&mut a).await;

    let mut one = stalled(address(1), 60, relay.addr, UPGRADE).await;
    let held = count_open(&mut one).await;
    assert!(held <= 16, "one address holds {held} half-open handshakes");
    // 70 addresses × 16 = 1,120 handshakes.
    let mut many = Vec::new();
    for n in 0..70 {
        many.extend(stalled(address(100 + n), 16, relay.addr, UPGRADE).await);
    }
    let held = count_open(&mut many).await + count_open(&mut one).await;
    assert!(held <= 1024, "{held} half-open handshakes held in all");
    // Honest peers are served: the pair, and a newcomer despite the full cap.
    pair_still_works(&mut a, &mut b, joined_b.handle).await;
    let (_c, _) = join(&relay, &key(3), "room").await;

    tokio::time::sleep(timeout).await;
    let held = count_open(&mut many).await + count_open(&mut one).await;
    assert_eq!(held, 0, "half-open handshakes outlived the auth timeout");
    pair_still_works(&mut b, &mut a, joined_a.handle).await;
}

/// Attack 2: a first message far larger than an auth answer. It is refused as soon as its
/// header announces the size, not buffered until the auth timeout.
#[tokio::test]
async fn a_large_first_message_is_refused_at_once() {
    let relay = relay(RelayConfig::default()).await;
    // A masked text frame announcing 2 MB; 16 KiB of it, then a stall.
    let (mut ws, _) = challenge(&relay).await;
    let mut frame = vec![0x81, 0x80 | 127];
    frame.extend_from_slice(&2_000_000u64.to_be_bytes());
    frame.extend_from_slice(&[1, 2, 3, 4]);
    frame.extend_from_slice(&[0; 16 * 1024]);
    ws.get_mut().write_all(&frame).await.unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(3), refused(&mut ws))
        .await
        .expect("refused at once, not at the 10 s auth timeout");
    assert_eq!(reply, ("OVERSIZED".into(), Some(1009)));

    // A valid answer padded past the limit is refused too.
    let (mut ws, nonce) = challenge(&relay).await;
    let k = key(1);
    let padded = serde_json::json!({
        "type": "auth", "version": 2, "room": "room", "peer": hex::encode(k.public_key()),
        "signature": hex::encode(k.sign(&auth_message(&nonce, "room"))), "pad": "x".repeat(5000),
    });
    ws.send(Message::text(padded.to_string())).await.unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(3), refused(&mut ws))
        .await
        .expect("refused");
    assert_eq!(reply, ("OVERSIZED".into(), Some(1009)));
    join(&relay, &k, "room").await;
}

/// Attack 3: a peer that never reads what it is sent. Its queue is bounded in bytes (4 MiB);
/// past that the relay closes it instead of buffering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_never_reads_is_closed_instead_of_buffered() {
    const FRAMES: usize = 1024;
    let relay = relay(RelayConfig::default()).await;
    let (ka, kb, ks, kr) = (key(1), key(2), key(3), key(4));
    let (mut a, joined_a) = join(&relay, &ka, "room").await;
    let (mut b, joined_b) = join(&relay, &kb, "room").await;
    let (mut sender, _) = join(&relay, &ks, "room").await;
    let (mut receiver, joined_r) = join(&relay, &kr, "room").await;
    // 32 MiB for the receiver, which does not read: far more than socket buffers and its queue.
    let frame = to_peer(joined_r.handle, &[0; 32 * 1024]);
    for _ in 0..FRAMES {
        sender.send(Message::binary(frame.clone())).await.unwrap();
    }
    let evicted = async {
        while !relay
            .stats()
            .refused
            .lock()
            .unwrap()
            .contains_key("SLOW_RECEIVER")
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), evicted)
        .await
        .expect("the slow receiver is closed");
    // What reached the receiver's socket before that ends well short of what was sent.
    let mut received = 0;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), receiver.next()).await {
            Ok(Some(Ok(Message::Binary(_)))) => received += 1,
            Ok(Some(Ok(Message::Close(_)) | Err(_)) | None) => break,
            Ok(Some(Ok(_))) => {}
            Err(_) => panic!("the receiver is still open after {received} frames"),
        }
    }
    assert!(received < FRAMES, "{received} frames reached the receiver");
    pair_still_works(&mut a, &mut b, joined_b.handle).await;
    pair_still_works(&mut sender, &mut a, joined_a.handle).await;
}

/// Attack 3 with many identities: receivers from one address that never read share one
/// budget, so one address cannot park a full queue in each of its connections. The budget comes
/// back as they close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receivers_from_one_address_that_never_read_share_one_budget() {
    let relay = relay(RelayConfig {
        max_queue_bytes: 64 << 20,
        max_queue_bytes_per_address: 8 << 20,
        ..RelayConfig::default()
    })
    .await;
    let (mut sender, _) = join(&relay, &key(1), "room").await;
    let mut receivers = Vec::new();
    let mut handles = Vec::new();
    for n in 0..4 {
        let (ws, joined) = join_from(relay.addr, address(1), &key(10 + n), "room")
            .await
            .unwrap();
        receivers.push(ws);
        handles.push(joined.handle);
    }
    // 16 MiB for each: within its own bound, past the address's budget.
    for handle in handles {
        let frame = to_peer(handle, &[0; 256 * 1024]);
        for _ in 0..64 {
            sender.send(Message::binary(frame.clone())).await.unwrap();
        }
    }
    let evicted = async {
        while !relay
            .stats()
            .refused
            .lock()
            .unwrap()
            .contains_key("SLOW_RECEIVER")
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), evicted)
        .await
        .expect("receivers past their address's budget are closed");
    drop(receivers);
    // The budget came back: a receiver from that address that reads gets its frames.
    let fresh = key(20);
    let (mut reader, joined) = join_from(relay.addr, address(1), &fresh, "room")
        .await
        .unwrap();
    pair_still_works(&mut sender, &mut reader, joined.handle).await;
}

/// Attack 4: HTTP requests whose headers never end. One address holds at most its share of
/// sockets, and every one is closed at the auth timeout; honest HTTP is served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_http_requests_are_capped_and_time_out() {
    let timeout = Duration::from_secs(2);
    let relay = relay(RelayConfig {
        auth_timeout: timeout,
        ..RelayConfig::default()
    })
    .await;
    let request = b"GET /health HTTP/1.1\r\nHost: x\r\n";
    let mut streams = stalled(address(1), 60, relay.addr, request).await;
    let held = count_open(&mut streams).await;
    assert!(held <= 16, "one address holds {held} half-sent requests");
    let response = http_get(relay.addr, "/health").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    tokio::time::sleep(timeout).await;
    assert_eq!(
        count_open(&mut streams).await,
        0,
        "half-sent requests outlived the timeout"
    );
}

/// Attack 5: floods of binary, text and ping frames, paced so that the bucket refills a little
/// between them. Each is closed with `RATE_LIMITED`; the honest pair is unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floods_of_every_frame_type_are_closed_even_when_paced() {
    let relay = relay(RelayConfig {
        rate_per_second: 100,
        burst: 200,
        ..RelayConfig::default()
    })
    .await;
    let (ka, kb) = (key(1), key(2));
    let (mut a, joined_a) = join(&relay, &ka, "room").await;
    let (mut b, joined_b) = join(&relay, &kb, "room").await;
    let signal = serde_json::json!({ "type": "signal", "to": hex::encode(ka.public_key()),
        "data": "x" });
    let floods = [
        ("binary", Message::binary(vec![TO_EVERYONE, 0xf1])),
        ("text", Message::text(signal.to_string())),
        ("ping", Message::Ping(vec![1].into())),
    ];
    for (n, (kind, message)) in (10..).zip(floods) {
        let (ws, _) = join(&relay, &key(n), "room").await;
        let (mut tx, mut rx) = ws.split();
        // 2,000 frames a second, 20× the rate, for at most 5 s.
        let flood = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            for _ in 0..5000 {
                tick.tick().await;
                for _ in 0..2 {
                    if tx.send(message.clone()).await.is_err() {
                        return;
                    }
                }
            }
        });
        let heard = tokio::time::timeout(Duration::from_secs(6), async {
            let mut codes = BTreeSet::new();
            loop {
                match rx.next().await {
                    Some(Ok(Message::Text(text))) => {
                        if let Ok(ServerMessage::Error { code, .. }) =
                            serde_json::from_str(text.as_str())
                        {
                            codes.insert(code);
                        }
                    }
                    Some(Ok(Message::Close(_)) | Err(_)) | None => return codes,
                    Some(Ok(_)) => {}
                }
            }
        })
        .await;
        flood.abort();
        let codes = heard.unwrap_or_else(|_| panic!("a paced {kind} flood was not closed"));
        assert!(codes.contains("RATE_LIMITED"), "{kind}: {codes:?}");
    }
    pair_still_works(&mut a, &mut b, joined_b.handle).await;
    pair_still_works(&mut b, &mut a, joined_a.handle).await;
}

/// Attack 6: free identities from one address. They get a share of a room (16 connections),
/// not all of it, and a share of the relay (64 connections).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throwaway_identities_from_one_address_cannot_fill_a_room_or_the_relay() {
    let relay = relay(RelayConfig {
        max_room_peers: 32,
        ..RelayConfig::default()
    })
    .await;
    let (ka, kb) = (key(1), key(2));
    let (mut a, _) = join(&relay, &ka, "room").await;
    let (mut b, joined_b) = join(&relay, &kb, "room").await;
    let mut admitted = Vec::new();
    let mut codes = BTreeSet::new();
    for n in 0..40 {
        match join_from(relay.addr, address(1), &key(1000 + n), "room").await {
            Ok((ws, _)) => admitted.push(ws),
            Err(code) => drop(codes.insert(code)),
        }
    }
    assert_eq!(admitted.len(), 16, "one address took {codes:?}");
    assert_eq!(codes, BTreeSet::from(["ADDRESS_LIMIT".to_owned()]));
    join_from(relay.addr, address(2), &key(3), "room")
        .await
        .expect("a peer from another address still gets in");

    let mut elsewhere = Vec::new();
    for n in 0..70 {
        if let Ok((ws, _)) =
            join_from(relay.addr, address(3), &key(2000 + n), &format!("r{n}")).await
        {
            elsewhere.push(ws);
        }
    }
    assert_eq!(elsewhere.len(), 64, "connections from one address");
    pair_still_works(&mut a, &mut b, joined_b.handle).await;
}

/// Attack 7: one identity spelled in upper case. Every peer id the relay shows is lower-case
/// hex, so one key is one peer, whatever its owner typed.
#[tokio::test]
async fn peer_ids_are_shown_in_one_canonical_spelling() {
    let relay = relay(RelayConfig::default()).await;
    let (ka, kb) = (key(1), key(2));
    let (a_hex, b_hex) = (hex::encode(ka.public_key()), hex::encode(kb.public_key()));
    let (mut a, _) = join(&relay, &ka, "room").await;
    let (mut b, nonce) = challenge(&relay).await;
    let answer = serde_json::json!({
        "type": "auth", "version": 2, "room": "room", "peer": b_hex.to_uppercase(),
        "signature": hex::encode(kb.sign(&auth_message(&nonce, "room"))),
    });
    b.send(Message::text(answer.to_string())).await.unwrap();
    assert_eq!(
        next_control(&mut b).await,
        ServerMessage::Welcome {
            peer: b_hex.clone(),
            handle: 1,
            peers: vec![RoomPeer {
                peer: a_hex.clone(),
                handle: 0,
                write: true
            }],
            write: true,
            archive: None,
        }
    );
    assert_eq!(
        next_control(&mut a).await,
        ServerMessage::PeerJoined {
            peer: b_hex.clone(),
            handle: 1,
            write: true
        }
    );
    let signal = serde_json::json!({ "type": "signal", "to": a_hex.to_uppercase(), "data": 1 });
    b.send(Message::text(signal.to_string())).await.unwrap();
    assert_eq!(
        next_control(&mut a).await,
        ServerMessage::Signal {
            from: b_hex.clone(),
            data: serde_json::json!(1)
        }
    );
    b.close(None).await.unwrap();
    assert_eq!(
        next_control(&mut a).await,
        ServerMessage::PeerLeft { peer: b_hex }
    );
}
