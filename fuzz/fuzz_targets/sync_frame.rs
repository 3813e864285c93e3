#![no_main]
//! Decodes arbitrary bytes as a signed sync frame claimed by the key in its first 32 bytes:
//! typed errors only; a frame that verifies is accepted once by a replay guard and refused the
//! second time. The same bytes as a payload, signed, decode to themselves.
use chrysalis_crypto::SigningKey;
use chrysalis_sync::{room_id, FrameKind, ReplayGuard, SignedFrame, DEFAULT_MAX_FRAME};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some((claimed, bytes)) = data.split_first_chunk::<32>() {
        let _ = SignedFrame::peek_seq(bytes);
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
});
