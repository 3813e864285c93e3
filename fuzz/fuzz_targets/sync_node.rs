#![no_main]
//! Feeds a `SyncNode` validly signed frames of every kind with arbitrary payloads (the fuzzer
//! cannot forge signatures, so it signs): the payload decoders and the document deltas behind
//! them must refuse bad input with a counted drop, never panic.
use chrysalis_crdt::{GCounter, LWWRegister, ORSet};
use chrysalis_crypto::SigningKey;
use chrysalis_sync::{FrameKind, SignedFrame, SyncConfig, SyncNode, room_id};
use libfuzzer_sys::fuzz_target;

const KINDS: [FrameKind; 6] = [
    FrameKind::Gossip,
    FrameKind::Digest,
    FrameKind::Request,
    FrameKind::Deltas,
    FrameKind::Heartbeat,
    FrameKind::App,
];

fuzz_target!(|data: &[u8]| {
    let Some((kind, payload)) = data.split_first() else {
        return;
    };
    let mut node = SyncNode::new(SigningKey::from_seed(&[1; 32]).unwrap(), SyncConfig::default(), 0, 0);
    node.share(0, "set", Box::new(ORSet::<String>::new())).unwrap();
    node.share(0, "counter", Box::new(GCounter::new())).unwrap();
    node.share(0, "register", Box::new(LWWRegister::<String>::new())).unwrap();
    let peer = SigningKey::from_seed(&[2; 32]).unwrap();
    // A connected peer: frames of signers nobody linked are dropped before their payload.
    node.add_peer(0, peer.public_key());
    let frame = SignedFrame::encode(&peer, &room_id(""), KINDS[usize::from(*kind) % KINDS.len()], 1, payload);
    let out = node.handle_message(1, peer.public_key(), &frame);
    assert!(out.transmits.len() < 64);
});
