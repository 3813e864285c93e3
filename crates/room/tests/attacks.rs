//! Regressions found by attacking one honest Room by hand (the test plays the relay, a room
//! peer or another script of the origin): each failed before the Room scored only verified
//! signers, bounded its data channels, kept tabs' presence by signed time, preferred the
//! BroadcastChannel for tabs, and reset the relay backoff only after a lasting session.

use chrysalis_crypto::SigningKey;
use chrysalis_relay_protocol::{PROTOCOL_VERSION, RelayState, RoomPeer, ServerMessage};
use chrysalis_room::broadcast::{Body, Envelope};
use chrysalis_room::{LinkId, LinkKind, Output, Room, RoomEvent};
use chrysalis_sync::{MAX_PEERS, PeerId, SyncNode};
use world::room_config;

mod world;

fn key(seed: u32) -> SigningKey {
    let mut s = [7u8; 32];
    s[..4].copy_from_slice(&seed.to_le_bytes());
    SigningKey::from_seed(&s).unwrap()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The relay's welcome of `me` to a room holding `peers`, each with its place in the list plus 1
/// as its handle.
fn welcome(me: &PeerId, peers: &[PeerId]) -> String {
    let peers = peers.iter().enumerate();
    ServerMessage::Welcome {
        peer: hex(me),
        handle: 0,
        peers: peers
            .map(|(i, p)| RoomPeer {
                peer: hex(p),
                handle: i as u32 + 1,
                write: true,
            })
            .collect(),
        write: true,
        archive: None,
    }
    .to_text()
}

fn joined(peer: &PeerId, handle: u32) -> String {
    ServerMessage::PeerJoined {
        peer: hex(peer),
        handle,
        write: true,
    }
    .to_text()
}

/// A hello (or goodbye) `frame` posted on the BroadcastChannel as `from`'s.
fn presence(from: PeerId, leaving: bool, frame: &[u8]) -> Vec<u8> {
    let body = Body::Presence { leaving, frame };
    Envelope { from, body }.encode()
}

fn drain(room: &mut Room) -> Vec<Output> {
    std::iter::from_fn(|| room.poll_output()).collect()
}

/// Victim (a key whose id starts low, so it offers to high ids) with an open relay session
/// announcing `peers`; returns the room and its relay link and broadcast link.
fn victim(
    webrtc: bool,
    broadcast: bool,
    peers: &[PeerId],
) -> (Room, LinkId, Option<LinkId>, Vec<Output>) {
    let mut seed = 0;
    let key = loop {
        let k = key(1_000_000 + seed);
        if k.public_key()[0] < 0x10 {
            break k;
        }
        seed += 1;
    };
    let now = 1_000;
    let mut room = Room::new(key, room_config(true, webrtc, broadcast), now, 1).unwrap();
    let mut relay = None;
    let mut bc = None;
    for o in drain(&mut room) {
        match o {
            Output::OpenRelay { link, .. } => relay = Some(link),
            Output::OpenBroadcast { link, .. } => bc = Some(link),
            _ => {}
        }
    }
    let relay = relay.unwrap();
    room.link_opened(now, relay);
    if let Some(bc) = bc {
        room.link_opened(now, bc);
    }
    let challenge = ServerMessage::Challenge {
        version: PROTOCOL_VERSION,
        nonce: hex(&[3u8; 32]),
    };
    room.receive_text(now, relay, &challenge.to_text());
    room.receive_text(now, relay, &welcome(&room.id(), peers));
    assert_eq!(room.relay_state(), Some(RelayState::Open));
    let out = drain(&mut room);
    (room, relay, bc, out)
}

fn banned(out: &[Output], peer: &PeerId) -> bool {
    out.iter()
        .any(|o| matches!(o, Output::Event(RoomEvent::PeerBanned { peer: p, .. }) if p == peer))
}

/// The relay writes an honest peer's handle in front of junk: the honest peer is banned.
#[test]
fn the_relay_cannot_get_an_honest_peer_banned() {
    let honest = key(2);
    let b = honest.public_key();
    let (mut room, relay, _, _) = victim(false, false, &[b]);
    let mut out = Vec::new();
    for _ in 0..4 {
        room.receive(1_000, relay, &[&[1u8][..], b"not a frame at all"].concat());
        out.extend(drain(&mut room));
    }
    let stats = room.sync().stats().drops.clone();
    eprintln!("drops: {stats:?}");
    assert!(
        !banned(&out, &b) && room.sync().banned(1_000).next().is_none(),
        "4 x 50 bytes from the relay banned the honest peer B for 60 s"
    );
}

/// Same, with B's own genuine frame relayed under C's handle: C was scored SENDER_MISMATCH (50).
#[test]
fn the_relay_cannot_misattribute_a_genuine_frame() {
    let (kb, kc) = (key(2), key(3));
    let (b, c) = (kb.public_key(), kc.public_key());
    let mut node_b = SyncNode::new(kb, room_config(true, false, false).sync, 1_000, 9);
    let (mut room, relay, _, _) = victim(false, false, &[b, c]);
    let mut out = Vec::new();
    for _ in 0..2 {
        let frame = node_b.add_peer(1_000, room.id()).transmits.remove(0).bytes;
        room.receive(1_000, relay, &[&[2u8][..], &frame].concat());
        out.extend(drain(&mut room));
    }
    assert!(
        !banned(&out, &c),
        "two of B's genuine frames labelled C banned honest C"
    );
}

/// Peers that join and leave (or signal once) each leave a data channel the Room never closes.
#[test]
fn pending_data_channels_are_bounded() {
    let (mut room, relay, _, _) = victim(true, false, &[]);
    let mut opened = 0;
    for i in 0..3_000u32 {
        let mut peer = [0xffu8; 32];
        peer[..4].copy_from_slice(&i.to_be_bytes());
        peer[0] = 0xff;
        let p = hex(&peer);
        room.receive_text(1_000, relay, &joined(&peer, 1_000 + i));
        if i % 2 == 0 {
            // also through a signal (any id order): {"data": 1} makes the JS pump neither
            // answer nor fail, so the RTCPeerConnection stays in "new" forever
            let s = format!(r#"{{"type":"signal","from":"{p}","data":1}}"#);
            room.receive_text(1_000, relay, &s);
        }
        room.receive_text(1_000, relay, &ServerMessage::PeerLeft { peer: p }.to_text());
        opened += drain(&mut room)
            .iter()
            .filter(|o| matches!(o, Output::OpenDataChannel { .. }))
            .count();
    }
    room.tick(1_000_000);
    let closes = drain(&mut room)
        .iter()
        .filter(|o| matches!(o, Output::Close { .. }))
        .count();
    let pending = room.data_channels().count();
    eprintln!("opened {opened} peer connections, {pending} still held, {closes} closed later");
    assert!(
        pending <= 256,
        "{pending} RTCPeerConnections held for peers long gone"
    );
}

/// A script of the origin posts frames signed by throwaway keys (no hello): each becomes a
/// sync peer with no route that never leaves; at MAX_PEERS no real peer can join any more.
#[test]
fn unrouted_broadcast_signers_do_not_fill_the_peer_table() {
    let (mut room, relay, bc, _) = victim(false, true, &[]);
    let bc = bc.unwrap();
    let me = room.id();
    for i in 0..MAX_PEERS as u32 {
        let mut phantom = SyncNode::new(
            key(10_000 + i),
            room_config(true, false, false).sync,
            1_000,
            0,
        );
        let frame = phantom.add_peer(1_000, me).transmits.remove(0).bytes;
        let body = Body::Frame {
            to: None,
            frame: &frame,
        };
        let env = Envelope {
            from: phantom.id(),
            body,
        }
        .encode();
        room.receive(1_000, bc, &env);
    }
    drain(&mut room);
    let unrouted = room.peers().filter(|(_, _, via)| via.is_empty()).count();
    // Every heartbeat interval the room signs one frame per phantom (sent nowhere).
    let before = room.sync().stats().frames_sent;
    room.tick(10_000);
    drain(&mut room);
    let signed = room.sync().stats().frames_sent - before;
    eprintln!("{unrouted} peers without a link; one tick signed {signed} frames");
    // A real peer now joins through the relay.
    let honest = key(2).public_key();
    room.receive_text(10_000, relay, &joined(&honest, 5_000));
    drain(&mut room);
    assert!(
        room.sync().peers().any(|(p, _)| p == honest),
        "{unrouted} phantom signers locked the real peer out (TOO_MANY_PEERS)"
    );
}

/// The relay claims a tab that is present only on the BroadcastChannel: frames for that tab
/// now go to the relay (which drops them) instead of the local channel.
#[test]
fn the_relay_cannot_divert_a_local_tab() {
    let (mut room, relay, bc, _) = victim(false, true, &[]);
    let bc = bc.unwrap();
    let tab_key = key(5);
    let tab = tab_key.public_key();
    let mut tab_node = SyncNode::new(tab_key, room_config(true, false, false).sync, 1_000, 0);
    let hello = tab_node.presence(1_000, false);
    room.receive(1_000, bc, &presence(tab, false, &hello));
    drain(&mut room);
    room.receive_text(1_000, relay, &joined(&tab, 7));
    let out = drain(&mut room);
    let (to_relay, to_bc) = out.iter().fold((0, 0), |(r, b), o| match o {
        Output::Send { link, .. } if *link == relay => (r + 1, b),
        Output::Send { link, .. } if *link == bc => (r, b + 1),
        _ => (r, b),
    });
    // anti-entropy to the tab
    let mut later = (0, 0);
    for t in 1..20 {
        room.tick(1_000 + t * 1_000);
        let hello = tab_node.presence(1_000 + t * 1_000, false);
        room.receive(1_000 + t * 1_000, bc, &presence(tab, false, &hello));
        for o in drain(&mut room) {
            if let Output::Send { link, bytes } = o {
                if link == relay && bytes[..2] == [1, 7] {
                    later.0 += 1
                } else if link == bc && bytes[0] == 3 {
                    later.1 += 1
                }
            }
        }
    }
    eprintln!(
        "after claim: {to_relay} via relay, {to_bc} via broadcast; later to the tab: {later:?} (relay, broadcast)"
    );
    let _ = LinkKind::Relay;
    assert!(
        later.1 > 0,
        "every frame for a local tab now goes through the relay"
    );
}

/// Control: without the relay's claim the tab is reached over the channel.
#[test]
fn control_a_local_tab_is_reached_over_the_channel() {
    let (mut room, relay, bc, _) = victim(false, true, &[]);
    let bc = bc.unwrap();
    let tab_key = key(5);
    let tab = tab_key.public_key();
    let mut tab_node = SyncNode::new(tab_key, room_config(true, false, false).sync, 1_000, 0);
    let mut later = (0, 0);
    for t in 0..20 {
        let hello = tab_node.presence(1_000 + t * 1_000, false);
        room.receive(1_000 + t * 1_000, bc, &presence(tab, false, &hello));
        room.tick(1_000 + t * 1_000);
        for o in drain(&mut room) {
            if let Output::Send { link, bytes } = o {
                if link == relay {
                    later.0 += 1
                } else if link == bc && bytes[0] == 3 {
                    later.1 += 1
                }
            }
        }
    }
    eprintln!("control: {later:?}");
    assert!(later.1 > 0);
}

/// A relay that welcomes with 700 peers (under 64 KiB) and closes at once: the backoff is
/// reset by each welcome, so the room reconnects within 250 ms and signs a digest per peer
/// every time.
#[test]
fn a_relay_welcome_close_loop_costs_the_room_little() {
    let peers: Vec<PeerId> = (0..700u32)
        .map(|i| {
            let mut p = [0x80u8; 32];
            p[..4].copy_from_slice(&i.to_be_bytes());
            p[0] = 0x80;
            p
        })
        .collect();
    let (mut room, mut relay, _, _) = victim(false, false, &peers);
    let welcome = welcome(&[0; 32], &peers);
    assert!(welcome.len() < 64 * 1024, "{}", welcome.len());
    let mut now = 1_000u64;
    let before = room.sync().stats().frames_sent;
    let mut cycles = 0;
    while now < 11_000 {
        room.link_closed(now, relay);
        drain(&mut room);
        relay = loop {
            now = room.timeout().max(now);
            room.tick(now);
            if let Some(l) = drain(&mut room).into_iter().find_map(|o| match o {
                Output::OpenRelay { link, .. } => Some(link),
                _ => None,
            }) {
                break l;
            }
        };
        room.link_opened(now, relay);
        room.receive_text(
            now,
            relay,
            &ServerMessage::Challenge {
                version: PROTOCOL_VERSION,
                nonce: hex(&[3u8; 32]),
            }
            .to_text(),
        );
        room.receive_text(now, relay, &welcome);
        drain(&mut room);
        cycles += 1;
    }
    let signed = room.sync().stats().frames_sent - before;
    eprintln!(
        "10 s: {cycles} reconnections, {signed} frames signed ({} per s)",
        signed / 10
    );
    assert!(cycles < 20, "{cycles} reconnections in 10 s");
}

/// A script evicts the replay guard (4,096 fresh-key hellos: check_presence has no per-peer
/// cap before ReplayGuard::accept), then replays a reloaded tab's old goodbye.
#[test]
fn an_old_goodbye_cannot_be_replayed_after_flooding_the_replay_guard() {
    for flood in [false, true] {
        let (mut room, _, bc, _) = victim(false, true, &[]);
        let bc = bc.unwrap();
        let post = |room: &mut Room, now: u64, from: PeerId, leaving: bool, frame: &[u8]| {
            room.receive(now, bc, &presence(from, leaving, frame));
            drain(room)
        };
        let tk = key(5);
        let t = tk.public_key();
        let mut old = SyncNode::new(key(5), room_config(true, false, false).sync, 1_000, 0);
        let h = old.presence(1_000, false);
        post(&mut room, 1_000, t, false, &h);
        let bye = old.presence(1_500, true);
        post(&mut room, 1_500, t, true, &bye);
        let mut reloaded = SyncNode::new(tk, room_config(true, false, false).sync, 2_000, 0);
        let h = reloaded.presence(2_000, false);
        post(&mut room, 2_000, t, false, &h);
        assert!(
            room.peers()
                .any(|(p, _, via)| p == t && via == vec![LinkKind::Broadcast])
        );
        if flood {
            for i in 0..4_096u32 {
                let mut n = SyncNode::new(
                    key(50_000 + i),
                    room_config(true, false, false).sync,
                    2_100,
                    0,
                );
                let f = n.presence(2_100, false);
                post(&mut room, 2_100, n.id(), false, &f);
            }
        }
        let out = post(&mut room, 2_200, t, true, &bye);
        let left = out
            .iter()
            .any(|o| matches!(o, Output::Event(RoomEvent::PeerLeft { peer, .. }) if *peer == t));
        eprintln!("flood {flood}: replayed goodbye unlinked the live tab: {left}");
        assert!(
            !left,
            "flood {flood}: a replayed goodbye unlinked a live tab"
        );
    }
}
