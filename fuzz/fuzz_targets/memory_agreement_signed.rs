#![no_main]
//! Structure-aware: arbitrary bodies of every message kind, each framed and validly signed by a
//! member of the council (as a hostile member would send them), fed to an agreement replica
//! between timer ticks. The signature check passes, so the flat decoders and every handler see
//! the fuzzed bodies: refused or handled, never a panic, and the replica's state stays bounded.
use chrysalis_crypto::SigningKey;
use chrysalis_memory::byzantine::{MAX_PENDING_PER_MEMBER, sign_raw};
use chrysalis_memory::{Agreement, AgreementConfig, Membership};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let keys: Vec<SigningKey> = (1..=4u8)
        .map(|i| SigningKey::from_seed(&[i; 32]).unwrap())
        .collect();
    let members = Membership::new(keys.iter().map(|k| k.public_key()).collect())
        .unwrap()
        .within("fuzz/room");
    let me = SigningKey::from_seed(&[1; 32]).unwrap();
    let mut agent = Agreement::new(me, members.clone(), AgreementConfig::default(), 0).unwrap();
    // Chunks: kind, sender (1..=3), body.
    for (i, chunk) in data.split(|b| *b == 0xff).enumerate() {
        let [kind, sender, body @ ..] = chunk else {
            continue;
        };
        let key = &keys[1 + *sender as usize % 3];
        let bytes = sign_raw(&members, key, kind % 10, body).unwrap();
        agent.handle_message(i as u64 * 100, &bytes);
        if i % 8 == 7 {
            agent.handle_tick(i as u64 * 100);
        }
    }
    agent.handle_tick(600_000);
    assert!(agent.pending() <= 4 * MAX_PENDING_PER_MEMBER);
});
