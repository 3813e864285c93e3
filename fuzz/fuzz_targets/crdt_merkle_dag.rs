#![no_main]
//! Decodes arbitrary bytes as a MerkleDag: a typed error or a value whose encoding round-trips.
use chrysalis_crdt::Encode;
use libfuzzer_sys::fuzz_target;

type Decoded = chrysalis_crdt::MerkleDag;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = Decoded::from_bytes(data) {
        let again = Decoded::from_bytes(&value.to_bytes()).expect("a decoded value re-encodes");
        assert_eq!(again.to_bytes(), value.to_bytes());
    }
});
