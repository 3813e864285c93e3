#![no_main]
//! Decodes arbitrary bytes as a signed sync frame: typed errors only; a frame that verifies
//! is accepted once by a replay guard and refused the second time.
use chrysalis_sync::{room_id, DEFAULT_MAX_FRAME, ReplayGuard, SignedFrame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = SignedFrame::decode(data, DEFAULT_MAX_FRAME, &room_id("")) {
        let frame = frame.into_frame();
        let mut guard = ReplayGuard::new();
        assert!(guard.accept(&frame.sender, frame.seq).is_ok());
        assert!(guard.accept(&frame.sender, frame.seq).is_err());
    }
});
