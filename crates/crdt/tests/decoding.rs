//! Decoders of untrusted bytes: typed errors, never panics; every encoding round-trips.

use chrysalis_crdt::{
    DagNodes, Encode, EpisodeMemory, GCounter, LWWRegister, MVRegister, MerkleDag, ORSet,
    ORSetDelta, PNCounter, ReplicaId, SkillAccumulator,
};
use proptest::prelude::*;

fn decode_all(bytes: &[u8]) {
    // Each returns a Result; reaching the end without a panic is the property.
    let _ = GCounter::from_bytes(bytes);
    let _ = PNCounter::from_bytes(bytes);
    let _ = ORSet::<String>::from_bytes(bytes);
    let _ = ORSetDelta::<String>::from_bytes(bytes);
    let _ = LWWRegister::<String>::from_bytes(bytes);
    let _ = MVRegister::<String>::from_bytes(bytes);
    let _ = MerkleDag::from_bytes(bytes);
    let _ = SkillAccumulator::from_bytes(bytes);
    let _ = EpisodeMemory::from_bytes(bytes);
    let _ = DagNodes::from_bytes(bytes);
}

fn samples() -> Vec<Vec<u8>> {
    let r = ReplicaId(7);
    let mut set = ORSet::new();
    set.add(r, "a".to_string());
    set.add(r, "b".to_string());
    set.remove(r, &"a".to_string());
    let mut dag = MerkleDag::new();
    dag.append(b"x".to_vec());
    dag.append(b"y".to_vec());
    let mut skills = SkillAccumulator::new();
    skills.raise(r, "rust", 0.5).unwrap();
    let mut episodes = EpisodeMemory::new();
    episodes.record(r, "e1", "met the user", [], 5);
    let mut counter = GCounter::new();
    counter.increment(r, 3);
    let mut lww = LWWRegister::new();
    lww.set(r, "v".to_string(), 9);
    vec![
        set.to_bytes(),
        dag.to_bytes(),
        skills.to_bytes(),
        episodes.to_bytes(),
        counter.to_bytes(),
        lww.to_bytes(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        decode_all(&bytes);
    }

    #[test]
    fn corrupted_encodings_never_panic(which in 0usize..6, index in any::<prop::sample::Index>(), flip in 1u8..=255, cut in any::<bool>()) {
        let mut bytes = samples()[which].clone();
        let i = index.index(bytes.len());
        if cut { bytes.truncate(i) } else { bytes[i] ^= flip }
        decode_all(&bytes);
    }
}

/// Inputs that once crashed a fuzz target (fuzz/regressions/crdt_*/) are replayed forever.
#[test]
fn fuzz_regressions_replay() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions");
    let mut replayed = 0;
    for dir in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        if dir.file_name().to_string_lossy().starts_with("crdt_") {
            for file in std::fs::read_dir(dir.path()).unwrap().flatten() {
                decode_all(&std::fs::read(file.path()).unwrap());
                replayed += 1;
            }
        }
    }
    println!("fuzz regressions replayed: {replayed}");
}

#[test]
fn wrong_tag_version_and_trailing_bytes_are_typed_errors() {
    let mut counter = GCounter::new();
    counter.increment(ReplicaId(1), 2);
    let bytes = counter.to_bytes();
    assert_eq!(GCounter::from_bytes(&bytes).unwrap(), counter);
    let err = PNCounter::from_bytes(&bytes).unwrap_err();
    assert_eq!(err.code(), "BAD_FORMAT");
    assert!(
        err.to_string().contains("type tag 0x01, expected 0x02"),
        "{err}"
    );
    let mut future = bytes.clone();
    future[1] = 9;
    assert!(
        GCounter::from_bytes(&future)
            .unwrap_err()
            .to_string()
            .contains("version 9")
    );
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(
        GCounter::from_bytes(&trailing)
            .unwrap_err()
            .to_string()
            .contains("trailing")
    );
    assert_eq!(GCounter::from_bytes(&[]).unwrap_err().code(), "BAD_FORMAT");
    let huge = vec![0u8; chrysalis_crdt::MAX_ENCODED_LEN + 1];
    assert_eq!(GCounter::from_bytes(&huge).unwrap_err().code(), "TOO_LARGE");
}

#[test]
fn orset_state_invariants_are_checked() {
    let mut set = ORSet::new();
    set.add(ReplicaId(1), "x".to_string());
    set.add(ReplicaId(1), "y".to_string());
    let mut bytes = set.to_bytes();
    // The encoding ends with the context: [1 replica] [index 0] [counter 2] [empty cloud].
    assert_eq!(&bytes[bytes.len() - 4..], &[1, 0, 2, 0]);
    // A state whose live dot (1, 2) is outside its context {1: 1}.
    let at = bytes.len() - 2;
    bytes[at] = 1;
    let err = ORSet::<String>::from_bytes(&bytes).unwrap_err();
    assert_eq!(
        err.to_string(),
        "bad format of ORSet: a live dot outside the causal context"
    );
    // A replica index outside the table.
    let mut bytes = set.to_bytes();
    let at = bytes.len() - 3;
    bytes[at] = 5;
    let err = ORSet::<String>::from_bytes(&bytes).unwrap_err();
    assert_eq!(
        err.to_string(),
        "bad format of ORSet: replica index 5 outside the table"
    );
}

#[test]
fn skill_levels_must_be_finite_and_non_negative() {
    let mut skills = SkillAccumulator::new();
    for bad in [f64::NAN, f64::INFINITY, -0.5] {
        assert_eq!(
            skills.raise(ReplicaId(1), "x", bad).unwrap_err().code(),
            "BAD_VALUE"
        );
    }
    assert!(skills.raise(ReplicaId(1), "x", 0.25).is_ok());
    assert_eq!(skills.level("x"), 0.25);
}
