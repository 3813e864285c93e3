#![no_main]
//! Feeds arbitrary bytes to an agreement replica as messages (and fires its timers): messages
//! are counted as received and refused or handled, never a panic.
use chrysalis_crypto::SigningKey;
use chrysalis_memory::{Agreement, AgreementConfig, Membership};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let keys: Vec<SigningKey> = (1..=4u8)
        .map(|i| SigningKey::from_seed(&[i; 32]).unwrap())
        .collect();
    let members = Membership::new(keys.iter().map(|k| k.public_key()).collect()).unwrap();
    let me = SigningKey::from_seed(&[1; 32]).unwrap();
    let mut agent = Agreement::new(me, members, AgreementConfig::default(), 0).unwrap();
    for (i, chunk) in data.split(|b| *b == 0xff).enumerate() {
        agent.handle_message(i as u64 * 10, chunk);
    }
    agent.handle_tick(60_000);
    assert_eq!(agent.stats().received, data.split(|b| *b == 0xff).count() as u64);
});
