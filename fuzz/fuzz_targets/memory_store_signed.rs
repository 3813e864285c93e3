#![no_main]
//! Structure-aware: deltas a hostile peer could build around validly signed entries — fuzzed
//! records signed by Mallory (or by Alice, as a relay replaying her key's work would), at fuzzed
//! event numbers, with fuzzed context claims on every replica — fed to Bob's store holding
//! Alice's beads. Bob never loses a bead of Alice's unless a forget Alice signed removed it.
use std::collections::{BTreeMap, BTreeSet};

use chrysalis_crdt::{CausalContext, Dot, Encode, ORSetDelta};
use chrysalis_memory::identity::replica_of;
use chrysalis_memory::{BeadDraft, BeadId, Entry, Identity, MemoryStore, Record};
use chrysalis_sync::Document;
use libfuzzer_sys::fuzz_target;

fn draft(text: &str) -> BeadDraft {
    BeadDraft {
        content: text.into(),
        kind: "note".into(),
        tags: vec![],
        embedding: None,
    }
}

fuzz_target!(|data: &[u8]| {
    let alice = Identity::from_seed(&[1; 32]).unwrap();
    let mallory = Identity::from_seed(&[9; 32]).unwrap();
    let mut a = MemoryStore::new(&alice.public_key());
    let mut bob = MemoryStore::new(&Identity::from_seed(&[2; 32]).unwrap().public_key());
    let mut alices: Vec<BeadId> = Vec::new();
    for i in 0..3 {
        let (bead, delta) = a.remember(&alice, draft(&format!("bead {i}")), i).unwrap();
        bob.apply(&delta).unwrap();
        alices.push(bead.id);
    }
    let replicas = [
        replica_of(&alice.public_key()),
        replica_of(&mallory.public_key()),
    ];
    let mut forgotten: BTreeSet<BeadId> = BTreeSet::new();
    for chunk in data.split(|b| *b == 0xff) {
        let [op, seq, claims_len, rest @ ..] = chunk else {
            continue;
        };
        let claims_len = (*claims_len as usize % 8).min(rest.len() / 3);
        let (claims, body) = rest.split_at(claims_len * 3);
        let mut ctx = CausalContext::default();
        for c in claims.chunks(3) {
            let counter = match c[2] {
                0 => u64::MAX,
                n => u64::from(u16::from_le_bytes([c[1], n])),
            };
            let replica = replicas[c[0] as usize % 2];
            ctx.insert(Dot { replica, counter: counter.max(1) });
        }
        let mut entries = BTreeMap::new();
        if op % 3 != 0
            && let Ok(record) = postcard::from_bytes::<Record>(body)
        {
            let signer = if op % 3 == 1 { &mallory } else { &alice };
            let entry = Entry::new(signer, record, u64::from(*seq).max(1));
            ctx.insert(entry.dot());
            entries.insert(entry.clone(), BTreeSet::from([entry.dot()]));
        }
        let Ok(delta) = ORSetDelta::from_parts(entries, BTreeSet::new(), ctx) else {
            continue;
        };
        let signed_forgets: Vec<BeadId> = delta
            .elements()
            .filter_map(|e| match &e.record {
                Record::Forget(f) if f.author == alice.public_key() && e.verify().is_ok() => {
                    Some(f.bead)
                }
                _ => None,
            })
            .collect();
        if bob.apply(&delta.to_bytes()).is_ok() {
            forgotten.extend(signed_forgets);
        }
        for id in &alices {
            assert!(
                bob.bead(id).is_some() || forgotten.contains(id),
                "Bob lost one of Alice's beads she never forgot"
            );
        }
    }
});
