//! Regressions from a review attacking the Room's memory host (commit 686693a): each failed
//! there. A council whose threshold is below the agreement's f + 1 floor froze its page; a
//! council restarted together dropped its next decisions (slots were the skip key) and could
//! diverge; room "x" with memory "a/b" shared a council scope with room "x/a" and memory "b";
//! a write of a closed memory completing broke every later write.

mod world;

use std::sync::mpsc;
use std::time::Duration;

use chrysalis_memory::Motion;
use chrysalis_room::{CouncilEvent, MemoryOptions, Room, RoomEvent, Stored};
use chrysalis_sync::SyncConfig;
use world::{World, key, memory_options, room_config};

const MEMORY: &str = "memory";

/// Runs `f` on another thread; whether it returned within `secs` (a spinning thread is left
/// behind: the test binary exits when the tests are done).
fn returns_within(secs: u64, f: impl FnOnce() + Send + 'static) -> bool {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    rx.recv_timeout(Duration::from_secs(secs)).is_ok()
}

/// A World of `n` agents over the relay, every one a member of a council of `n` at `threshold`.
fn council_world(n: usize, threshold: usize) -> World {
    let mut world = World::new(7);
    world.storage_delay = 2;
    for _ in 0..n {
        world.add(room_config(true, false, false));
    }
    let council: Vec<[u8; 32]> = (0..n).map(|i| world.id(i)).collect();
    for agent in 0..n {
        world.open_memory(agent, MEMORY, memory_options(council.clone(), threshold));
    }
    world.run(world.now + 1_000);
    world
}

/// `proposer` proposes `motion`; every other member endorses what it is asked to. Returns, per
/// member, whether it reported the motion decided within 30 s.
fn pass(world: &mut World, members: usize, proposer: usize, motion: Motion) -> Vec<bool> {
    let mut seen: Vec<usize> = (0..members).map(|m| world.events[m].len()).collect();
    let value = world.rooms[proposer]
        .propose(world.now, MEMORY, &motion)
        .unwrap();
    world.pump(proposer);
    let mut decided = vec![false; members];
    let end = world.now + 30_000;
    while world.now < end && !decided.iter().all(|d| *d) {
        world.run(world.now + 20);
        for m in 0..members {
            let events: Vec<RoomEvent> = world.events[m][seen[m]..].to_vec();
            seen[m] = world.events[m].len();
            for event in events {
                let RoomEvent::Council { event, .. } = event else {
                    continue;
                };
                match *event {
                    CouncilEvent::Requested { value: v, .. } => {
                        let _ = world.rooms[m].endorse(world.now, MEMORY, &v);
                        world.pump(m);
                    }
                    CouncilEvent::Decided { value: v, .. } if v == value => decided[m] = true,
                    _ => {}
                }
            }
        }
    }
    decided
}

fn thresholds(world: &World, members: usize) -> Vec<usize> {
    (0..members)
        .map(|m| world.rooms[m].memory(MEMORY).unwrap().council().threshold())
        .collect()
}

// ---- 1. agreement_output never ends when the council's k is below the agreement's floor ----

/// A 4-member council accepting beads at 1 approval (a natural setting): `motion_endorsements`
/// is 1, the agreement's floor is f + 1 = 2, `set_order_at` clamps to 2, and
/// `agreement_output` pushes another `set_order_at` forever. `open_memory` never returns.
#[test]
fn opening_a_council_memory_at_threshold_one_returns() {
    let returned = returns_within(20, || {
        let members: Vec<[u8; 32]> = (0..4).map(|i| key(i).public_key()).collect();
        let mut room = Room::new(key(0), room_config(false, false, false), 1_000, 0).unwrap();
        room.open_memory(1_000, MEMORY, memory_options(members, 1), Stored::default())
            .unwrap();
    });
    assert!(returned, "open_memory spins forever in agreement_output");
}

/// The same loop reached by an honest motion: a council of 4 at threshold 2 decides
/// `SetThreshold(1)`; every member that applies it freezes.
#[test]
fn a_decided_threshold_of_one_does_not_freeze_the_council() {
    let returned = returns_within(60, || {
        let mut world = council_world(4, 2);
        let decided = pass(&mut world, 4, 0, Motion::SetThreshold(1));
        assert!(decided.iter().all(|d| *d));
    });
    assert!(returned, "the members froze after deciding SetThreshold(1)");
}

// ---- 2. the council log's `last_seq` skips new slots after the council restarts ----

/// Every member restarts (all tabs closed and opened again): the agreements start again at
/// slot 1, and `decide` drops every slot up to the stored `last_seq`: the next motion is
/// decided by the agreement but never applied nor reported.
#[test]
fn a_council_restarted_together_applies_its_next_motion() {
    let mut world = council_world(4, 2);
    assert_eq!(
        pass(&mut world, 4, 0, Motion::SetThreshold(3)),
        vec![true; 4]
    );
    world.run(world.now + 2_000);
    assert_eq!(thresholds(&world, 4), vec![3; 4]);
    for m in 0..4 {
        world.crash(m);
    }
    for m in 0..4 {
        world.restart(m);
    }
    world.run(world.now + 2_000);
    assert_eq!(
        thresholds(&world, 4),
        vec![3; 4],
        "the log was applied again"
    );
    let decided = pass(&mut world, 4, 1, Motion::SetThreshold(4));
    assert_eq!(
        decided,
        vec![true; 4],
        "the new motion was never reported decided"
    );
    assert_eq!(thresholds(&world, 4), vec![4; 4]);
}

/// The same with one member's last council-log write lost (it crashed right after deciding,
/// as `World::crash` loses unfinished writes): after the council restarts, the new motion
/// lands at slot 1, which that member applies and the others skip. Honest members hold
/// different councils for good.
#[test]
fn members_whose_council_logs_differ_do_not_diverge_after_a_restart() {
    let mut world = council_world(4, 2);
    assert_eq!(
        pass(&mut world, 4, 0, Motion::SetThreshold(3)),
        vec![true; 4]
    );
    world.run(world.now + 2_000);
    // Member 3's council-log write of that slot never completed.
    world.disks[3].stored.get_mut(MEMORY).unwrap().council = None;
    for m in 0..4 {
        world.crash(m);
    }
    for m in 0..4 {
        world.restart(m);
    }
    world.run(world.now + 2_000);
    pass(&mut world, 4, 1, Motion::SetThreshold(4));
    world.run(world.now + 2_000);
    let t = thresholds(&world, 4);
    assert!(
        t.iter().all(|x| *x == t[0]),
        "honest members diverged: thresholds {t:?}"
    );
}

// ---- 3. the agreement scope `room/memory` is ambiguous ----

/// Room "x" memory "a/b" and room "x/a" memory "b" of the same council get the same scope
/// string "x/a/b", hence the same membership id: a member can replay one council's signed
/// requests, votes and decisions into the other (the threat model says they fail there).
#[test]
fn councils_of_different_rooms_and_memories_have_different_scopes() {
    let members: Vec<[u8; 32]> = (0..4).map(|i| key(i).public_key()).collect();
    let config = |room: &str| chrysalis_room::RoomConfig {
        sync: SyncConfig {
            room: room.into(),
            ..SyncConfig::default()
        },
        relays: Vec::new(),
        capability: None,
        webrtc: false,
        broadcast: false,
    };
    let mut one = Room::new(key(0), config("x"), 1_000, 0).unwrap();
    let mut two = Room::new(key(0), config("x/a"), 1_000, 1).unwrap();
    one.open_memory(
        1_000,
        "a/b",
        memory_options(members.clone(), 2),
        Stored::default(),
    )
    .unwrap();
    two.open_memory(1_000, "b", memory_options(members, 2), Stored::default())
        .unwrap();
    assert_ne!(
        one.agreement("a/b").unwrap().membership().id(),
        two.agreement("b").unwrap().membership().id(),
        "two councils share one membership id: their messages count in each other"
    );
}

// ---- 4. a closed memory's write completing ----

/// `close_memory` forgets the writes in flight, but the pump still completes them: `stored`
/// then fails with BAD_ARGUMENT, which in pkg/sync.js throws inside the `#writes` promise chain
/// and rejects it, so no later write of any memory of that node is ever made or acknowledged.
#[test]
fn a_write_of_a_closed_memory_may_still_complete() {
    let mut room = Room::new(key(0), room_config(false, false, false), 1_000, 0).unwrap();
    room.open_memory(1_000, "a", MemoryOptions::default(), Stored::default())
        .unwrap();
    room.open_memory(1_000, "b", MemoryOptions::default(), Stored::default())
        .unwrap();
    let draft = |text: &str| chrysalis_memory::BeadDraft {
        content: text.into(),
        kind: "note".into(),
        tags: Vec::new(),
        embedding: None,
    };
    let (_, first) = room.remember(1_000, "a", draft("one")).unwrap();
    let (_, second) = room.remember(1_000, "b", draft("two")).unwrap();
    assert!(room.close_memory("a"));
    // The pump completes the writes in the order asked.
    assert!(
        room.stored(1_001, first).is_ok(),
        "a forgotten write's completion is an error"
    );
    room.stored(1_002, second).unwrap();
}
