//! A Room on hostile link input: the first byte picks the link (the BroadcastChannel, the
//! relay's binary or text messages) and whether the relay session is open; the rest arrives on
//! it. Nothing may panic, and no peer may appear that was not announced or signed.
#![no_main]

use chrysalis_crypto::SigningKey;
use chrysalis_relay_protocol::{PROTOCOL_VERSION, RoomPeer, ServerMessage};
use chrysalis_room::{LinkId, Output, Room, RoomConfig};
use chrysalis_sync::SyncConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let key = SigningKey::from_seed(&[1; 32]).unwrap();
    let config = RoomConfig {
        sync: SyncConfig {
            room: "room".into(),
            ..SyncConfig::default()
        },
        relays: vec!["ws://relay".into()],
        capability: None,
        webrtc: true,
        broadcast: true,
    };
    let mut room = Room::new(key, config, 1_000, 7).unwrap();
    let (mut relay, mut broadcast) = (LinkId(u32::MAX), LinkId(u32::MAX));
    while let Some(output) = room.poll_output() {
        match output {
            Output::OpenRelay { link, .. } => relay = link,
            Output::OpenBroadcast { link, .. } => broadcast = link,
            _ => {}
        }
    }
    room.link_opened(1_000, relay);
    room.link_opened(1_000, broadcast);
    if mode & 4 == 4 {
        let challenge = ServerMessage::Challenge {
            version: PROTOCOL_VERSION,
            nonce: "00".repeat(32),
        };
        room.receive_text(1_000, relay, &challenge.to_text());
        let welcome = ServerMessage::Welcome {
            peer: String::new(),
            handle: 0,
            peers: vec![RoomPeer {
                peer: "02".repeat(32),
                handle: 1, write: true }], write: true, archive: None, };
        room.receive_text(1_000, relay, &welcome.to_text());
    }
    match mode & 3 {
        0 => room.receive(1_000, broadcast, rest),
        1 => room.receive(1_000, relay, rest),
        _ => {
            if let Ok(text) = std::str::from_utf8(rest) {
                room.receive_text(1_000, relay, text);
            }
        }
    }
    room.tick(60_000);
    while room.poll_output().is_some() {}
    // Only the peer the relay announced can be a peer: nothing here is signed by another key.
    assert!(room.peers().all(|(peer, _, _)| peer == [2; 32] || mode & 3 == 2));
});
