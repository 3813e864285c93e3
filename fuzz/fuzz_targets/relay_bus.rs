//! What relays read from a room's Redis channel: any bytes. Nothing may panic, and a message
//! that decodes is exactly the bytes its origin would publish for it.
#![no_main]

use chrysalis_relay_protocol::bus::BusMessage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some((origin, message)) = BusMessage::decode(data, 1 << 16) {
        assert_eq!(message.encode(&origin), data);
    }
});
