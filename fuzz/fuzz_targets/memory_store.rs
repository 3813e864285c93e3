#![no_main]
//! Feeds arbitrary bytes to the memory store as a peer's delta and as a saved state: typed
//! errors only, and a refused delta leaves the store exactly as it was.
use chrysalis_memory::{Identity, MemoryStore};
use chrysalis_sync::Document;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let me = Identity::from_seed(&[1; 32]).unwrap();
    let mut store = MemoryStore::new(&me.public_key());
    let before = store.version();
    if store.apply(data).is_err() {
        assert_eq!(store.version(), before);
        assert!(store.is_empty());
    }
    let _ = MemoryStore::from_bytes(&me.public_key(), data);
});
