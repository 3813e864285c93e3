#![no_main]
//! Decodes arbitrary bytes as a ORSetDelta: a typed error or a value whose encoding round-trips.
//! Then plays the bytes as edits of three replicas (adds, removes, merges, catch-up deltas):
//! their deltas joined in one pass equal them joined one by one, and apply as each in turn.
use chrysalis_crdt::{Crdt, DeltaCrdt, DeltaJoin, Encode, ORSet, ReplicaId};
use libfuzzer_sys::fuzz_target;

type Decoded = chrysalis_crdt::ORSetDelta<String>;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = Decoded::from_bytes(data) {
        let again = Decoded::from_bytes(&value.to_bytes()).expect("a decoded value re-encodes");
        assert_eq!(again.to_bytes(), value.to_bytes());
    }
    let mut replicas: [ORSet<u8>; 3] = Default::default();
    let start = replicas[0].clone();
    let mut deltas = Vec::new();
    for pair in data.chunks_exact(2) {
        let (op, element) = (pair[0], pair[1] % 8);
        let at = usize::from(op % 3);
        let replica = ReplicaId(u64::from(op % 3));
        match (op / 3) % 4 {
            0 => deltas.push(replicas[at].add(replica, element)),
            1 => deltas.extend(replicas[at].remove(replica, &element)),
            2 => {
                let from = replicas[(at + 1) % 3].clone();
                replicas[at].merge(&from);
            }
            _ => deltas.push(replicas[at].delta_since(&start.version_vector())),
        }
    }
    let mut one_by_one = deltas.clone().into_iter();
    let Some(mut folded) = one_by_one.next() else {
        return;
    };
    one_by_one.for_each(|delta| folded.join_delta(delta));
    let joined = DeltaJoin::join_all(deltas.clone()).expect("deltas to join");
    assert_eq!(joined, folded);
    let (mut each, mut once) = (start.clone(), start);
    deltas.iter().for_each(|delta| each.apply_delta(delta));
    once.apply_delta(&joined);
    assert_eq!(once, each);
});
