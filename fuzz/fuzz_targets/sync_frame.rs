#![no_main]
//! Decodes arbitrary bytes as a signed sync frame claimed by the key in its first 32 bytes, for
//! everyone and at a receiver: typed errors only; a frame that verifies is accepted once by a
//! replay guard and refused the second time. The same bytes as a payload, signed for everyone
//! and addressed to one peer, decode to themselves (the addressed one only at that peer).
use chrysalis_crypto::SigningKey;
use chrysalis_sync::{room_id, FrameKind, ReplayGuard, SignedFrame, DEFAULT_MAX_FRAME};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some((claimed, bytes)) = data.split_first_chunk::<32>() {
        let _ = SignedFrame::peek_seq(bytes);
        let receiver = [9; 32];
        let _ = SignedFrame::decode_at(bytes, DEFAULT_MAX_FRAME, &room_id(""), claimed, Some(&receiver));
        if let Ok(frame) = SignedFrame::decode(bytes, DEFAULT_MAX_FRAME, &room_id(""), claimed) {
            let frame = frame.into_frame();
            let mut guard = ReplayGuard::new();
            assert!(guard.accept(&frame.sender, frame.seq).is_ok());
            assert!(guard.check(&frame.sender, frame.seq).is_err());
            assert!(guard.accept(&frame.sender, frame.seq).is_err());
        }
    }
    let key = SigningKey::from_seed(&[7; 32]).unwrap();
    let seq = data.len() as u64 * 0x9e37_79b9;
    let bytes = SignedFrame::encode(&key, &room_id("fuzz"), FrameKind::Gossip, seq, data);
    assert_eq!(SignedFrame::peek_seq(&bytes), Some(seq));
    let frame = SignedFrame::decode(&bytes, usize::MAX, &room_id("fuzz"), &key.public_key())
        .unwrap()
        .into_frame();
    assert_eq!((frame.seq, frame.payload), (seq, data));
    let to = SigningKey::from_seed(&[8; 32]).unwrap().public_key();
    let bytes = SignedFrame::encode_to(&key, &room_id("fuzz"), &to, FrameKind::Deltas, seq, data);
    let signer = key.public_key();
    let at = |receiver: Option<&[u8; 32]>| {
        SignedFrame::decode_at(&bytes, usize::MAX, &room_id("fuzz"), &signer, receiver).map(|f| f.into_frame())
    };
    let frame = at(Some(&to)).unwrap();
    assert!(frame.addressed);
    assert_eq!((frame.seq, frame.payload), (seq, data));
    assert!(at(Some(&signer)).is_err() && at(None).is_err());
});
