//! Whole rooms over in-memory links (see `world`): the relay, WebRTC data channels and the
//! BroadcastChannel carry a shared counter.

mod world;

use chrysalis_relay_protocol::RelayState;
use chrysalis_room::{LinkKind, RoomEvent};
use world::World;

#[test]
fn three_rooms_converge_through_the_relay_and_a_late_one_catches_up() {
    let mut world = World::new(1);
    let agents: Vec<usize> = (0..3).map(|_| world.join(true, false, false)).collect();
    world.run(world.now + 100);
    for &a in &agents {
        assert_eq!(world.rooms[a].relay_state(), Some(RelayState::Open));
        assert_eq!(world.peers_via(a).len(), 2);
        world.increment(a);
    }
    world.run(world.now + 100);
    for &a in &agents {
        assert_eq!(world.value(a), 3, "agent {a}");
    }
    // Changes to every peer over the relay are one frame to everyone, sent at the next tick
    // (the end of the page's task): two changes, one frame.
    let sent = world.rooms[0].traffic(LinkKind::Relay).frames_sent;
    world.increment(0);
    world.increment(0);
    assert_eq!(world.rooms[0].traffic(LinkKind::Relay).frames_sent, sent);
    world.run(world.now);
    assert_eq!(
        world.rooms[0].traffic(LinkKind::Relay).frames_sent,
        sent + 1
    );
    let late = world.join(true, false, false);
    world.run(world.now + 2_000);
    assert_eq!(world.value(late), 5, "the late room caught up");
    assert!(world.events[1].iter().any(
        |e| matches!(e, RoomEvent::PeerJoined { peer, via: LinkKind::Relay } if *peer == world.id(late))
    ));
}

#[test]
fn data_channels_carry_the_room_while_the_relay_is_down_and_the_relay_comes_back() {
    let mut world = World::new(1);
    let (a, b) = (world.join(true, true, false), world.join(true, true, false));
    world.run(world.now + 100);
    for (agent, other) in [(a, b), (b, a)] {
        assert_eq!(
            world.peers_via(agent),
            vec![(other, vec![LinkKind::Relay, LinkKind::WebRtc])]
        );
    }
    world.increment(a);
    world.run(world.now + 100);
    assert_eq!(world.value(b), 1);
    assert!(
        world.rooms[a].traffic(LinkKind::WebRtc).frames_sent > 0,
        "direct first"
    );
    let relayed = world.rooms[a].traffic(LinkKind::Relay).frames_sent;

    world.stop_relay();
    world.run(world.now + 100);
    assert!(matches!(
        world.rooms[a].relay_state(),
        Some(RelayState::Waiting { .. })
    ));
    world.increment(b);
    world.run(world.now + 100);
    assert_eq!(world.value(a), 2, "replicated over the data channel alone");
    assert_eq!(world.rooms[a].traffic(LinkKind::Relay).frames_sent, relayed);

    // Reconnection attempts back off while the relay is down, then succeed when it is up.
    world.run(world.now + 5_000);
    let attempts = world.events[a]
        .iter()
        .filter(|e| {
            matches!(
                e,
                RoomEvent::ConnectionState {
                    transport: LinkKind::Relay,
                    state: "connecting",
                    ..
                }
            )
        })
        .count();
    assert!((3..=12).contains(&attempts), "{attempts} attempts in 5 s");
    world.relay_up = true;
    world.run(world.now + 40_000);
    assert_eq!(world.rooms[a].relay_state(), Some(RelayState::Open));
    assert_eq!(
        world.peers_via(a),
        vec![(b, vec![LinkKind::Relay, LinkKind::WebRtc])]
    );
}

#[test]
fn tabs_find_each_other_over_the_broadcast_channel_and_leave_with_a_goodbye() {
    let mut world = World::new(1);
    let (a, b, c) = (
        world.join(false, false, true),
        world.join(false, false, true),
        world.join(false, false, true),
    );
    world.run(world.now + 100);
    assert_eq!(world.peers_via(a).len(), 2);
    world.increment(c);
    world.run(world.now + 100);
    assert_eq!((world.value(a), world.value(b)), (1, 1));
    // Junk and a replayed hello on the channel change nothing.
    let link = *world.endpoints[a].keys().next().unwrap();
    world.rooms[a].receive(world.now, link, &[9, 9, 9]);
    world.rooms[a].receive(world.now, link, &[]);
    assert_eq!(world.peers_via(a).len(), 2);
    // C leaves: its goodbye unlinks it at once.
    world.rooms[c].close(world.now);
    world.pump(c);
    world.run(world.now + 10);
    assert_eq!(world.peers_via(a), vec![(b, vec![LinkKind::Broadcast])]);
    assert!(world.events[a].iter().any(
        |e| matches!(e, RoomEvent::PeerLeft { peer, via: LinkKind::Broadcast } if *peer == world.id(c))
    ));
    // A tab that stops saying hello times out.
    let silent = world.endpoints[b].keys().copied().collect::<Vec<_>>();
    for link in silent {
        world.endpoints[b].remove(&link);
    }
    world.run(world.now + 10_000);
    assert!(world.peers_via(a).is_empty());
}

/// A memory whose storage fails a write stops there: that write and the ones queued after it
/// are neither acknowledged nor sent nor carried out, it refuses local changes until reopened,
/// and the room around it goes on (the policy used to be a flag in the JS pump).
#[test]
fn a_failed_storage_write_stops_its_memory_and_nothing_after_it_is_acknowledged() {
    const MEMORY: &str = "memory";
    let mut world = World::new(3);
    world.storage_delay = 50;
    let (a, b) = (
        world.add(world::room_config(true, false, false)),
        world.add(world::room_config(true, false, false)),
    );
    let council = vec![world.id(a)];
    for agent in [a, b] {
        world.open_memory(agent, MEMORY, world::memory_options(council.clone(), 1));
    }
    world.run(world.now + 500);
    world.remember(a, MEMORY, "kept");
    world.run(world.now + 500);
    assert_eq!(world.acknowledged[a].len(), 1);
    // The disk fills up while three more writes wait.
    world.failing_storage.insert(a);
    for text in ["lost 1", "lost 2", "lost 3"] {
        world.remember(a, MEMORY, text);
    }
    world.run(world.now + 1_000);
    assert_eq!(world.acknowledged[a].len(), 1, "nothing after the failure");
    let failures: Vec<&RoomEvent> = world.events[a]
        .iter()
        .filter(|e| matches!(e, RoomEvent::StorageFailed { .. }))
        .collect();
    assert_eq!(failures.len(), 1, "{failures:?}");
    let journal = &world.disks[a].stored[MEMORY].journal;
    let draft = chrysalis_memory::BeadDraft {
        content: "refused".into(),
        kind: "note".into(),
        tags: Vec::new(),
        embedding: None,
    };
    let refused = world.rooms[a].remember(world.now, MEMORY, draft);
    assert_eq!(refused.unwrap_err().code(), "STORAGE_FAILED");
    let motion = chrysalis_memory::Motion::SetThreshold(1);
    let refused = world.rooms[a].propose(world.now, MEMORY, &motion);
    assert_eq!(refused.unwrap_err().code(), "STORAGE_FAILED");
    // The disk works again, but the memory stays stopped until reopened: no write is asked
    // (one asked would land now). Peer b never heard the unsaved beads; the room still
    // replicates b's.
    world.failing_storage.remove(&a);
    let before = journal.len();
    world.remember(b, MEMORY, "from b");
    world.run(world.now + 1_000);
    let memory = world.rooms[a].memory(MEMORY).unwrap();
    assert!(memory.store().beads().any(|bead| bead.content == "from b"));
    let on_b: Vec<String> = world.rooms[b]
        .memory(MEMORY)
        .unwrap()
        .store()
        .beads()
        .map(|bead| bead.content.clone())
        .collect();
    assert!(!on_b.iter().any(|c| c.starts_with("lost")), "{on_b:?}");
    assert_eq!(
        world.disks[a].stored[MEMORY].journal.len(),
        before,
        "no write asked"
    );
    assert_eq!(
        world.rooms[a].journal(MEMORY).unwrap().1,
        0,
        "no write in flight"
    );
    let failures = world.events[a]
        .iter()
        .filter(|e| matches!(e, RoomEvent::StorageFailed { .. }))
        .count();
    assert_eq!(failures, 1);
}

/// The relay filters a read-only peer's frames by their cleartext header, without the sync
/// crate: its allow-list must agree with the frame kinds this build signs.
#[test]
fn the_relays_read_only_filter_passes_exactly_what_catching_up_sends() {
    use chrysalis_sync::{FRAME_VERSION, FrameKind, SignedFrame, room_id};
    assert_eq!(chrysalis_relay_protocol::SYNC_FRAME_VERSION, FRAME_VERSION);
    let key = chrysalis_crypto::SigningKey::from_seed(&[1; 32]).unwrap();
    let (room, to) = (room_id("room"), [2; 32]);
    for (kind, catching_up) in [
        (FrameKind::Gossip, false),
        (FrameKind::Digest, true),
        (FrameKind::Request, true),
        (FrameKind::Deltas, false),
        (FrameKind::Heartbeat, true),
        (FrameKind::App, false),
    ] {
        let everyone = SignedFrame::encode(&key, &room, kind, 1, b"payload");
        let addressed = SignedFrame::encode_to(&key, &room, &to, kind, 1, b"payload");
        for frame in [everyone, addressed] {
            assert_eq!(
                chrysalis_relay_protocol::read_only_may_send(&frame),
                catching_up,
                "{kind:?}"
            );
        }
    }
}
