//! Rooms that require a capability: who gets in, what a read-only peer may send, and a live
//! session closed when its capability expires.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrysalis_relay::RelayConfig;
use chrysalis_relay::protocol::{Access, Capability, MAX_CAPABILITY, ServerMessage, TO_EVERYONE};
use common::*;
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A relay that trusts `key(100)` and requires a capability in rooms named `team-…`.
async fn guarded_relay() -> chrysalis_relay::RelayHandle {
    relay(RelayConfig {
        trusted_issuers: vec![key(100).public_key()],
        capability_rooms: vec!["team-".into()],
        ..RelayConfig::default()
    })
    .await
}

/// A capability from `key(issuer)` for `key(peer)` in `room`.
fn token(issuer: u32, peer: u32, room: &str, access: Access, expires_at: u64) -> String {
    let peer = key(peer).public_key();
    Capability::issue(&key(issuer), room, &peer, access, expires_at, [peer[0]; 16]).unwrap()
}

/// A signed-frame header of sync version 6 and `kind`, and a body the relay does not read.
fn frame(kind: u8) -> Vec<u8> {
    [&[TO_EVERYONE, 6, kind][..], &[0; 72]].concat()
}

#[tokio::test]
async fn rooms_that_require_a_capability_admit_only_its_holder_until_it_expires() {
    let relay = guarded_relay().await;
    let later = now() + 3600;
    let join = |peer: u32, room: &'static str, capability: Option<String>| {
        let addr = relay.addr;
        async move {
            join_with(addr, HONEST, &key(peer), room, capability.as_deref())
                .await
                .map(|(_, admitted)| admitted.write)
        }
    };
    assert_eq!(
        join(1, "team-a", None).await,
        Err("CAPABILITY_REQUIRED".into())
    );
    for (capability, code) in [
        (
            token(101, 1, "team-a", Access::ReadWrite, later),
            "CAPABILITY_INVALID",
        ),
        (
            token(100, 1, "team-b", Access::ReadWrite, later),
            "CAPABILITY_INVALID",
        ),
        (
            token(100, 2, "team-a", Access::ReadWrite, later),
            "CAPABILITY_INVALID",
        ),
        (
            token(100, 1, "team-a", Access::ReadWrite, now() - 1),
            "CAPABILITY_EXPIRED",
        ),
        ("00".repeat(MAX_CAPABILITY + 1), "CAPABILITY_INVALID"),
        ("not hex".into(), "CAPABILITY_INVALID"),
    ] {
        assert_eq!(join(1, "team-a", Some(capability)).await, Err(code.into()));
    }
    // Too long for the auth answer: the relay reads no more than its bound.
    let (mut ws, nonce) = challenge(&relay).await;
    let huge = "00".repeat(4096);
    ws.send(auth_with(&key(1), "team-a", "team-a", &nonce, Some(&huge)))
        .await
        .unwrap();
    assert_eq!(refused(&mut ws).await, ("OVERSIZED".into(), Some(1009)));

    assert_eq!(
        join(
            1,
            "team-a",
            Some(token(100, 1, "team-a", Access::ReadWrite, later))
        )
        .await,
        Ok(true)
    );
    assert_eq!(
        join(
            2,
            "team-a",
            Some(token(100, 2, "team-a", Access::Read, later))
        )
        .await,
        Ok(false)
    );
    assert_eq!(
        join(3, "open", None).await,
        Ok(true),
        "other rooms stay open"
    );
    let response = http_get(relay.addr, "/health").await;
    for count in [
        "\"CAPABILITY_REQUIRED\":1",
        "\"CAPABILITY_INVALID\":5",
        "\"CAPABILITY_EXPIRED\":1",
    ] {
        assert!(response.contains(count), "{count} in {response}");
    }
}

#[tokio::test]
async fn a_read_only_peer_catches_up_but_its_writes_and_signals_reach_nobody() {
    let relay = guarded_relay().await;
    let later = now() + 3600;
    let writer_token = token(100, 1, "team-a", Access::ReadWrite, later);
    let (mut writer, _) = join_with(relay.addr, HONEST, &key(1), "team-a", Some(&writer_token))
        .await
        .unwrap();
    let reader_token = token(100, 2, "team-a", Access::Read, later);
    let (mut reader, joined) =
        join_with(relay.addr, HONEST, &key(2), "team-a", Some(&reader_token))
            .await
            .unwrap();
    assert!(!joined.write);
    assert!(joined.peers[0].write, "the writer is announced as one");
    let ServerMessage::PeerJoined { write, handle, .. } = next_control(&mut writer).await else {
        panic!("expected the reader to join");
    };
    assert!(!write, "the reader is announced read-only");

    // Pushes (1), answers (4), app messages (6), addressed pushes and other versions are
    // refused, each with an error to the reader.
    for bytes in [frame(1), frame(4), frame(6), frame(0x81), {
        let mut other = frame(2);
        other[1] = 5;
        other
    }] {
        reader.send(Message::binary(bytes)).await.unwrap();
    }
    let ServerMessage::Error { code, .. } = next_control(&mut reader).await else {
        panic!("expected a refusal");
    };
    assert_eq!(code, "READ_ONLY");
    // Digests (2), requests (3), heartbeats (5), addressed or not, pass: the writer gets
    // exactly these, in order.
    for kind in [2, 3, 5, 0x82] {
        reader.send(Message::binary(frame(kind))).await.unwrap();
    }
    for kind in [2, 3, 5, 0x82] {
        let message = next_binary(&mut writer).await;
        assert_eq!(from_peer(&message), (handle, &frame(kind)[1..]));
    }
    // No signalling either way: a data channel would bypass the relay.
    let signal = |to: u32| {
        Message::text(
            serde_json::json!({"type": "signal", "to": hex::encode(key(to).public_key()), "data": 1})
                .to_string(),
        )
    };
    reader.send(signal(1)).await.unwrap();
    writer.send(signal(2)).await.unwrap();
    for ws in [&mut reader, &mut writer] {
        let ServerMessage::Error { code, .. } = next_control(ws).await else {
            panic!("expected a refusal");
        };
        assert_eq!(code, "READ_ONLY");
    }
    // The writer's frames reach the reader.
    writer.send(Message::binary(frame(1))).await.unwrap();
    assert_eq!(from_peer(&next_binary(&mut reader).await).1, &frame(1)[1..]);
    let response = http_get(relay.addr, "/health").await;
    assert!(response.contains("\"READ_ONLY\":7"), "{response}");
}

#[tokio::test]
async fn a_live_session_closes_when_its_capability_expires() {
    let relay = guarded_relay().await;
    let expires_at = now() + 2;
    let capability = token(100, 1, "team-a", Access::ReadWrite, expires_at);
    let (mut ws, _) = join_with(relay.addr, HONEST, &key(1), "team-a", Some(&capability))
        .await
        .unwrap();
    let (other, _) = join(&relay, &key(3), "open").await;
    let start = Instant::now();
    assert_eq!(
        refused(&mut ws).await,
        ("CAPABILITY_EXPIRED".into(), Some(1008))
    );
    assert!(now() >= expires_at, "not before it expired");
    assert!(start.elapsed() < Duration::from_secs(4));
    let health = http_get(relay.addr, "/health").await;
    assert!(
        health.contains("\"connections\":1,"),
        "the other stays: {health}"
    );
    drop(other);
}

#[test]
fn the_relay_binary_makes_issuer_keys_and_issues_capabilities() {
    let relay = env!("CARGO_BIN_EXE_chrysalis-relay");
    let dir = std::env::temp_dir().join(format!("chrysalis-capability-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let seed = dir.join("issuer.seed");
    let _ = std::fs::remove_file(&seed);
    let run = |args: &[&str]| {
        std::process::Command::new(relay)
            .args(args)
            .output()
            .unwrap()
    };
    let keygen = run(&["capability", "keygen", "--out", seed.to_str().unwrap()]);
    assert!(keygen.status.success(), "{keygen:?}");
    let issuer =
        chrysalis_relay::protocol::parse_peer(String::from_utf8(keygen.stdout).unwrap().trim())
            .expect("the issuer's public key");
    let mode = std::os::unix::fs::PermissionsExt::mode(&seed.metadata().unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "the seed is private");
    let again = run(&["capability", "keygen", "--out", seed.to_str().unwrap()]);
    assert!(
        !again.status.success(),
        "an existing seed is never overwritten"
    );

    let peer = hex::encode(key(1).public_key());
    let issue = |access: &str| {
        run(&[
            "capability",
            "issue",
            "--issuer-seed-file",
            seed.to_str().unwrap(),
            "--room",
            "team-a",
            "--peer",
            &peer,
            "--access",
            access,
            "--ttl",
            "60",
        ])
    };
    let issued = issue("read");
    assert!(issued.status.success(), "{issued:?}");
    let token = String::from_utf8(issued.stdout).unwrap();
    let held = Capability::check(
        token.trim(),
        &[issuer],
        "team-a",
        &key(1).public_key(),
        now(),
    )
    .unwrap();
    assert_eq!(held.access, Access::Read);
    assert!((now() + 55..=now() + 60).contains(&held.expires_at));
    let bad = issue("admin");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("read or write"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_capability_closes_its_sessions_on_every_relay_and_is_refused_after() {
    let redis = RedisServer::start().await;
    let mut relays = Vec::new();
    for _ in 0..2 {
        relays.push(
            relay(RelayConfig {
                trusted_issuers: vec![key(100).public_key()],
                capability_rooms: vec!["team-".into()],
                redis: Some(redis.url.clone()),
                ..RelayConfig::default()
            })
            .await,
        );
    }
    let later = now() + 3600;
    let (one, two) = (
        token(100, 1, "team-a", Access::ReadWrite, later),
        token(100, 2, "team-a", Access::ReadWrite, later),
    );
    let join = |relay: usize, n: u32, capability: String| {
        let addr = relays[relay].addr;
        async move {
            for _ in 0..100 {
                match join_with(addr, HONEST, &key(n), "team-a", Some(&capability)).await {
                    Err(code) if code == "REDIS_UNAVAILABLE" => {
                        tokio::time::sleep(Duration::from_millis(50)).await
                    }
                    other => return other,
                }
            }
            panic!("never reached Redis");
        }
    };
    let (mut a, _) = join(0, 1, one.clone()).await.unwrap();
    let (mut b, _) = join(1, 2, two).await.unwrap();
    assert!(matches!(
        next_control(&mut a).await,
        ServerMessage::PeerJoined { .. }
    ));
    // The application revokes peer 1's capability (its id is what `issue` printed).
    let id = hex::encode([key(1).public_key()[0]; 16]);
    let revoked = std::process::Command::new(env!("CARGO_BIN_EXE_chrysalis-relay"))
        .args(["capability", "revoke", "--redis", &redis.url, "--id", &id])
        .args(["--until", &later.to_string()])
        .output()
        .unwrap();
    assert!(revoked.status.success(), "{revoked:?}");
    assert_eq!(
        refused(&mut a).await,
        ("CAPABILITY_REVOKED".into(), Some(1008))
    );
    assert_eq!(
        next_control(&mut b).await,
        ServerMessage::PeerLeft {
            peer: hex::encode(key(1).public_key())
        }
    );
    // Refused from then on, on any relay; others are unaffected.
    for relay in [0, 1] {
        assert_eq!(
            join(relay, 1, one.clone()).await.err().as_deref(),
            Some("CAPABILITY_REVOKED")
        );
    }
    let health = http_get(relays[1].addr, "/health").await;
    assert!(health.contains("\"connections\":1,"), "{health}");
    // A join that Redis admitted before a revocation but that registers after its announcement
    // (its archive read under way) is refused by what each relay remembers: shown with the
    // announcement alone, which Redis's revoked set does not hold.
    let three = token(100, 3, "team-a", Access::ReadWrite, later);
    let client = redis::Client::open(redis.url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("PUBLISH")
        .arg("chr:revocations")
        .arg(&[key(3).public_key()[0]; 16][..])
        .exec_async(&mut conn)
        .await
        .unwrap();
    for relay in [0, 1] {
        let mut refused = false;
        for _ in 0..100 {
            match join(relay, 3, three.clone()).await {
                Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                Err(code) => {
                    assert_eq!(code, "CAPABILITY_REVOKED");
                    refused = true;
                    break;
                }
            }
        }
        assert!(
            refused,
            "relay {relay} admitted a capability announced as revoked"
        );
    }
}
