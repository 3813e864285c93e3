//! A Room opening a memory from hostile storage: the first two bytes split the rest into a
//! snapshot, a council log and journal entries (storage another script of the origin could have
//! written). Opening may refuse with an error, never panic; an opened memory must then take a
//! local write and a tick.
#![no_main]

use chrysalis_crypto::SigningKey;
use chrysalis_memory::BeadDraft;
use chrysalis_room::{MemoryOptions, Room, RoomConfig, Stored};
use chrysalis_sync::SyncConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [a, b, rest @ ..] = data else {
        return;
    };
    let (snapshot, rest) = rest.split_at((*a as usize * 8).min(rest.len()));
    let (council, journal) = rest.split_at((*b as usize * 4).min(rest.len()));
    let stored = Stored {
        snapshot: (!snapshot.is_empty()).then(|| snapshot.to_vec()),
        journal: journal.chunks(64).map(<[u8]>::to_vec).collect(),
        council: (!council.is_empty()).then(|| council.to_vec()),
    };
    let key = SigningKey::from_seed(&[1; 32]).unwrap();
    let config = RoomConfig {
        sync: SyncConfig {
            room: "room".into(),
            ..SyncConfig::default()
        },
        ..RoomConfig::default()
    };
    let mut room = Room::new(key, config, 1_000, 7).unwrap();
    if room.open_memory(1_000, "memory", MemoryOptions::default(), stored).is_ok() {
        let draft = BeadDraft {
            content: "a note".into(),
            kind: "note".into(),
            tags: Vec::new(),
            embedding: None,
        };
        room.remember(1_000, "memory", draft).unwrap();
        room.tick(5_000);
    }
    while room.poll_output().is_some() {}
});
