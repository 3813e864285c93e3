//! The Room's relays: it spreads over several, moves on when its own goes away, presents its
//! capability, and with read-only access sends the relay only what catching up needs.

use chrysalis_crdt::{Encode, GCounter, ReplicaId};
use chrysalis_crypto::SigningKey;
use chrysalis_relay_protocol::{
    ClientMessage, PROTOCOL_VERSION, RelayState, RoomPeer, ServerMessage,
};
use chrysalis_room::{LinkId, Output, Room, RoomConfig};
use chrysalis_sync::SyncConfig;

const RELAYS: [&str; 3] = ["ws://a:1/", "ws://b:2/", "wss://c/"];

fn key(n: u8) -> SigningKey {
    SigningKey::from_seed(&[n; 32]).unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn config(relays: &[&str], capability: Option<&str>, webrtc: bool) -> RoomConfig {
    RoomConfig {
        sync: SyncConfig {
            room: "room".into(),
            ..SyncConfig::default()
        },
        relays: relays.iter().map(|r| r.to_string()).collect(),
        capability: capability.map(str::to_owned),
        webrtc,
        broadcast: false,
    }
}

fn drain(room: &mut Room) -> Vec<Output> {
    std::iter::from_fn(|| room.poll_output()).collect()
}

/// The relay socket the room asks for next (ticking until it does): its link and URL.
fn next_socket(room: &mut Room, now: &mut u64) -> (LinkId, String) {
    for _ in 0..100 {
        let asked = drain(room).into_iter().find_map(|o| match o {
            Output::OpenRelay { link, url } => Some((link, url)),
            _ => None,
        });
        if let Some(asked) = asked {
            return asked;
        }
        *now = room.timeout().max(*now);
        room.tick(*now);
    }
    panic!("the room never asked for a relay socket");
}

#[test]
fn rooms_spread_over_their_relays_and_move_on_when_theirs_goes_away() {
    // The first relay is drawn from the room's seed: a hundred rooms use all three.
    let mut first = std::collections::BTreeMap::<String, usize>::new();
    for seed in 0..100 {
        let mut room = Room::new(key(1), config(&RELAYS, None, false), 0, seed).unwrap();
        *first.entry(next_socket(&mut room, &mut 0).1).or_default() += 1;
    }
    assert_eq!(first.len(), 3, "{first:?}");
    assert!(first.values().all(|n| *n >= 15), "{first:?}");

    // Each closed socket (refused, or lost after a session) moves to the next URL, round.
    let mut now = 1_000;
    let mut room = Room::new(key(1), config(&RELAYS, None, false), now, 7).unwrap();
    let (mut link, url) = next_socket(&mut room, &mut now);
    let start = RELAYS.iter().position(|r| *r == url).unwrap();
    assert_eq!(room.relay_url(), Some(url.as_str()));
    for step in 1..=6 {
        room.link_closed(now, link);
        let (next, url) = next_socket(&mut room, &mut now);
        assert_eq!(url, RELAYS[(start + step) % 3], "step {step}");
        link = next;
    }

    // Bad lists are refused.
    for relays in [
        &["http://a/"][..],
        &["ws://a/", ""][..],
        &["ws://a/"; 17][..],
    ] {
        assert!(Room::new(key(1), config(relays, None, false), 0, 1).is_err());
    }
    let long = format!("ws://{}", "a".repeat(2048));
    assert!(Room::new(key(1), config(&[&long], None, false), 0, 1).is_err());
    assert!(
        Room::new(key(1), config(&[], None, true), 0, 1).is_err(),
        "WebRTC needs a relay"
    );
}

/// A room whose relay session is open, welcomed with `write` access, with one peer announced
/// with `peer_write`: the room, its relay link and the time.
fn welcomed(write: bool, peer_write: bool, webrtc: bool) -> (Room, LinkId, u64) {
    welcomed_with(write, Some(peer_write), webrtc, None)
}

/// As [`welcomed`], with the peer (`None`: the room is empty) and the welcome's archive count.
fn welcomed_with(
    write: bool,
    peer_write: Option<bool>,
    webrtc: bool,
    archive: Option<u32>,
) -> (Room, LinkId, u64) {
    let mut now = 1_000;
    // The room's id sorts below its peer's, so it would offer the peer a data channel.
    let (me, peer) = if key(1).public_key() < key(2).public_key() {
        (1, 2)
    } else {
        (2, 1)
    };
    let mut room = Room::new(key(me), config(&RELAYS, Some("c0ffee"), webrtc), now, 1).unwrap();
    let mut counter = GCounter::new();
    counter.increment(ReplicaId(9), 1);
    room.share(now, "count", Box::new(counter)).unwrap();
    let (link, _) = next_socket(&mut room, &mut now);
    room.link_opened(now, link);
    let challenge = ServerMessage::Challenge {
        version: PROTOCOL_VERSION,
        nonce: hex(&[3; 32]),
    };
    room.receive_text(now, link, &challenge.to_text());
    let answer = drain(&mut room)
        .into_iter()
        .find_map(|o| match o {
            Output::SendText { text, .. } => Some(text),
            _ => None,
        })
        .expect("the auth answer");
    let Ok(ClientMessage::Auth { capability, .. }) = serde_json::from_str(&answer) else {
        panic!("{answer}");
    };
    assert_eq!(
        capability.as_deref(),
        Some("c0ffee"),
        "the capability is presented"
    );
    let welcome = ServerMessage::Welcome {
        peer: hex(&key(me).public_key()),
        handle: 0,
        peers: peer_write
            .map(|write| RoomPeer {
                peer: hex(&key(peer).public_key()),
                handle: 1,
                write,
            })
            .into_iter()
            .collect(),
        write,
        archive,
    };
    room.receive_text(now, link, &welcome.to_text());
    assert_eq!(room.relay_state(), Some(RelayState::Open));
    (room, link, now)
}

/// The kinds of the signed frames the room sent on `link` (the byte after the version, the
/// address flag cleared), and whether it asked for a data channel.
fn sent(outputs: &[Output], link: LinkId) -> (Vec<u8>, bool) {
    let kinds = outputs
        .iter()
        .filter_map(|o| match o {
            Output::Send { link: l, bytes } if *l == link => {
                // `TO_EVERYONE ‖ frame` or `TO_PEER ‖ handle(1 byte here) ‖ frame`.
                let frame = if bytes[0] == 0 {
                    &bytes[1..]
                } else {
                    &bytes[2..]
                };
                Some(frame[1] & 0x7f)
            }
            _ => None,
        })
        .collect();
    let channel = outputs
        .iter()
        .any(|o| matches!(o, Output::OpenDataChannel { .. }));
    (kinds, channel)
}

/// Makes a change and runs the room for two anti-entropy intervals: what it sent.
fn change_and_run(room: &mut Room, link: LinkId, mut now: u64, welcomed: Vec<Output>) -> Vec<u8> {
    let counter: &mut GCounter = room.document_mut("count").unwrap();
    let delta = counter.increment(ReplicaId(1), 1).to_bytes();
    room.local_change(now, "count", delta).unwrap();
    let mut outputs = welcomed;
    let until = now + 12_000;
    while now < until {
        now = room.timeout().clamp(now + 1, until);
        room.tick(now);
        outputs.extend(drain(room));
    }
    let (kinds, _) = sent(&outputs, link);
    kinds
}

#[test]
fn a_read_only_room_sends_the_relay_only_what_catching_up_needs_and_opens_no_channel() {
    let (mut room, link, now) = welcomed(false, true, true);
    assert!(!room.may_write());
    let outputs = drain(&mut room);
    let (_, channel) = sent(&outputs, link);
    assert!(!channel, "no data channel from a read-only room");
    let kinds = change_and_run(&mut room, link, now, outputs);
    assert!(kinds.contains(&2), "digests go out: {kinds:?}");
    assert!(
        kinds.iter().all(|k| [2, 3, 5].contains(k)),
        "nothing but digests, requests and heartbeats: {kinds:?}"
    );

    // The same room with write access pushes its change.
    let (mut room, link, now) = welcomed(true, true, false);
    assert!(room.may_write());
    let outputs = drain(&mut room);
    assert!(change_and_run(&mut room, link, now, outputs).contains(&1));

    // A writer opens no data channel to a read-only peer.
    let (mut room, link, _) = welcomed(true, false, true);
    assert!(!sent(&drain(&mut room), link).1);
    let (mut room, link, _) = welcomed(true, true, true);
    assert!(sent(&drain(&mut room), link).1, "but does to a writer");
}

#[test]
fn a_room_alone_archives_its_pushes_and_a_joiner_applies_the_archive_it_is_handed() {
    // Alone in a room whose relay keeps an archive: a change goes into it (0x03 ‖ frame).
    let (mut room, link, now) = welcomed_with(true, None, false, Some(0));
    let outputs = drain(&mut room);
    let counter: &mut GCounter = room.document_mut("count").unwrap();
    let delta = counter.increment(ReplicaId(1), 5).to_bytes();
    room.local_change(now, "count", delta).unwrap();
    room.tick(room.timeout());
    let archived: Vec<Vec<u8>> = outputs
        .into_iter()
        .chain(drain(&mut room))
        .filter_map(|o| match o {
            Output::Send { link: l, bytes } if l == link && bytes[0] == 3 => {
                Some(bytes[1..].to_vec())
            }
            _ => None,
        })
        .collect();
    let [frame] = &archived[..] else {
        panic!("one push into the archive: {archived:?}");
    };
    assert_eq!(&frame[..2], &[6, 1], "a push");
    let signer = room.id();

    // A later joiner is handed it after the welcome, and applies it; what follows is live.
    let mut joiner = Room::new(key(9), config(&RELAYS, None, false), now, 3).unwrap();
    let mut counter = GCounter::new();
    counter.increment(ReplicaId(9), 1);
    joiner.share(now, "count", Box::new(counter)).unwrap();
    let mut t = now;
    let (link, _) = next_socket(&mut joiner, &mut t);
    joiner.link_opened(t, link);
    let challenge = ServerMessage::Challenge {
        version: PROTOCOL_VERSION,
        nonce: hex(&[3; 32]),
    };
    joiner.receive_text(t, link, &challenge.to_text());
    let welcome = ServerMessage::Welcome {
        peer: hex(&key(9).public_key()),
        handle: 0,
        peers: vec![],
        write: true,
        archive: Some(2),
    };
    joiner.receive_text(t, link, &welcome.to_text());
    let forged = [&[7u8; 32][..], frame].concat();
    joiner.receive(t, link, &forged);
    joiner.receive(t, link, &[&signer[..], frame].concat());
    let value = |room: &Room| {
        let doc: &dyn std::any::Any = room.sync().document("count").unwrap();
        doc.downcast_ref::<GCounter>().unwrap().value()
    };
    assert_eq!(
        value(&joiner),
        6,
        "the archived push applied, the forged one not"
    );
    assert_eq!(joiner.sync().stats().archived_applied, 1);
    assert_eq!(joiner.sync().stats().dropped(), 1);
}
