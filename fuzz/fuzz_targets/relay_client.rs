//! The peer's relay client on hostile relay output: the first byte picks the client's state
//! (connecting or open, with an archived frame announced or not) and how the rest is fed
//! (control text, or a binary frame). Nothing may panic, and a frame is accepted only from a
//! handle the relay announced.
#![no_main]

use chrysalis_crypto::SigningKey;
use chrysalis_relay_protocol::{
    take_handle, PROTOCOL_VERSION, RelayClient, RelayState, RoomPeer, ServerMessage,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let key = SigningKey::from_seed(&[1; 32]).unwrap();
    let peer = SigningKey::from_seed(&[2; 32]).unwrap().public_key();
    let mut client = RelayClient::new("room", key.public_key()).unwrap();
    client.opening();
    if mode & 1 == 1 {
        let challenge = ServerMessage::Challenge {
            version: PROTOCOL_VERSION,
            nonce: "00".repeat(32),
        };
        client.handle_text(0, &key, &challenge.to_text());
        let welcome = ServerMessage::Welcome {
            peer: String::new(),
            handle: 0,
            peers: vec![RoomPeer {
                peer: to_hex(&peer),
                handle: 1,
                write: true,
            }],
            write: true,
            // Mode bit 4: one archived frame comes first.
            archive: (mode & 4 == 4).then_some(1),
        };
        client.handle_text(0, &key, &welcome.to_text());
        assert_eq!(client.state(), RelayState::Open);
    }
    if mode & 2 == 2 && client.expects_archived() {
        let archived = client.take_archived(rest);
        assert_eq!(archived.is_some(), rest.len() > 32);
        if let Some((signer, frame)) = archived {
            assert_eq!([&signer[..], frame].concat(), rest);
        }
        assert!(!client.expects_archived(), "one was announced");
        assert_eq!(client.to_archive(b"f", false), Some(vec![3, b'f']));
    } else if mode & 2 == 2 {
        if let Some((from, frame)) = client.handle_binary(rest) {
            assert_eq!((from, take_handle(rest).map(|(h, _)| h)), (peer, Some(1)));
            assert!(!frame.is_empty());
            assert_eq!(client.to_peer(&from, frame).unwrap()[1..], rest[..]);
        }
    } else if let Ok(text) = std::str::from_utf8(rest) {
        client.handle_text(0, &key, text);
        let _ = client.closed(0, u64::from(mode));
        assert!(client.peers().next().is_none());
    }
});

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
