//! Merkle DAG and conflict resolver tests.

use chrysalis_crdt::{
    Claim, ConflictResolver, ConflictType, Crdt, CrdtError, DagNode, Encode, Hlc, MVRegister,
    MerkleDag, NodeHash, ReplicaId, Resolution, ResolutionStrategy, VersionVector,
};
use proptest::prelude::*;

fn dags(ops: &[(u8, u8)]) -> Vec<MerkleDag> {
    let mut dags = vec![MerkleDag::new(), MerkleDag::new(), MerkleDag::new()];
    for (i, (who, what)) in ops.iter().enumerate() {
        let who = usize::from(who % 3);
        if what % 4 == 0 {
            let from = dags[usize::from(what / 4) % 3].clone();
            dags[who].merge(&from);
        } else {
            dags[who].append(format!("op {i} by {who}").into_bytes());
        }
    }
    dags
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn dag_merge_is_a_join_and_missing_ships_exactly_the_gap(ops in proptest::collection::vec((any::<u8>(), any::<u8>()), 0..40)) {
        let d = dags(&ops);
        let merged = |x: &MerkleDag, y: &MerkleDag| { let mut o = x.clone(); o.merge(y); o };
        prop_assert_eq!(merged(&d[0], &d[1]), merged(&d[1], &d[0]));
        prop_assert_eq!(merged(&merged(&d[0], &d[1]), &d[2]), merged(&d[0], &merged(&d[1], &d[2])));
        prop_assert_eq!(merged(&d[0], &d[0]), d[0].clone());

        // `missing` gives a peer what it lacks, in an order it can insert; exactly that when
        // every head of the peer is known here (unknown heads say nothing about their history).
        let mut peer = d[1].clone();
        let heads_known = peer.heads().iter().all(|h| d[0].contains(h));
        let gap = d[0].missing(&peer.heads());
        for (hash, node) in &gap {
            prop_assert!(!heads_known || !peer.contains(hash));
            peer.insert(*hash, node.clone()).unwrap();
        }
        prop_assert_eq!(&peer, &merged(&d[1], &d[0]));
        prop_assert!(d[0].missing(&d[0].heads()).is_empty());

        // The topological order puts parents first and is the same on every replica.
        let all = merged(&merged(&d[0], &d[1]), &d[2]);
        let order = all.topological_order();
        prop_assert_eq!(&order, &merged(&merged(&d[2], &d[1]), &d[0]).topological_order());
        for (i, hash) in order.iter().enumerate() {
            for parent in &all.get(hash).unwrap().parents {
                prop_assert!(order[..i].contains(parent));
            }
        }
        prop_assert_eq!(MerkleDag::from_bytes(&all.to_bytes()).unwrap(), all);
    }
}

#[test]
fn dag_rejects_forged_and_orphan_nodes() {
    let mut dag = MerkleDag::new();
    let root = dag.append(b"root".to_vec());
    let child = DagNode::new([root], b"child".to_vec());
    let mut forged = child.clone();
    forged.payload = b"evil".to_vec();
    let err = dag.insert(child.hash(), forged).unwrap_err();
    assert_eq!(err.code(), "HASH_MISMATCH");
    let orphan = DagNode::new([NodeHash([9; 32])], b"orphan".to_vec());
    assert!(matches!(
        dag.insert(orphan.hash(), orphan),
        Err(CrdtError::MissingParents { missing: 1, .. })
    ));
    dag.insert(child.hash(), child.clone()).unwrap();
    dag.insert(child.hash(), child.clone()).unwrap();
    assert_eq!(dag.heads(), vec![child.hash()]);
    assert_eq!(dag.len(), 2);
    let unsorted = DagNode {
        parents: vec![NodeHash([2; 32]), NodeHash([1; 32])],
        payload: vec![],
    };
    assert_eq!(
        dag.insert(unsorted.hash(), unsorted).unwrap_err().code(),
        "BAD_FORMAT"
    );
}

fn claim(value: &str, millis: u64, replica: u64) -> Claim<String> {
    Claim {
        value: value.into(),
        at: Hlc {
            millis,
            logical: 0,
            replica: ReplicaId(replica),
        },
        clock: None,
    }
}

#[test]
fn detection_classifies_conflicts() {
    let resolver = ConflictResolver::<String>::default();
    assert!(
        resolver
            .detect("k", vec![claim("a", 1, 1), claim("a", 2, 2)])
            .is_none(),
        "agreeing claims"
    );
    let conflict = resolver
        .detect("k", vec![claim("b", 2, 2), claim("a", 1, 1)])
        .unwrap();
    assert_eq!(conflict.kind, ConflictType::DirectContradiction);
    assert_eq!(
        conflict.claims[0].value, "a",
        "canonical order by timestamp"
    );

    let vv = |pairs: &[(u64, u64)]| {
        pairs
            .iter()
            .map(|(r, c)| (ReplicaId(*r), *c))
            .collect::<VersionVector>()
    };
    let mut first = claim("old", 1, 1);
    first.clock = Some(vv(&[(1, 1)]));
    let mut second = claim("new", 2, 2);
    second.clock = Some(vv(&[(1, 1), (2, 1)]));
    let mut resolver = ConflictResolver::new(ResolutionStrategy::ManualReview);
    let ordered = resolver.detect("k", vec![second, first]).unwrap();
    assert_eq!(ordered.kind, ConflictType::CausalOrdering);
    assert_eq!(
        resolver.resolve(ordered),
        (
            ConflictType::CausalOrdering,
            Resolution::Resolved("new".to_string())
        )
    );

    let mut checked = ConflictResolver::<String>::default();
    checked.set_consistency_check(|a, b| a.len() == b.len());
    let inconsistent = checked
        .detect("k", vec![claim("x", 1, 1), claim("yy", 2, 2)])
        .unwrap();
    assert_eq!(inconsistent.kind, ConflictType::SemanticInconsistency);
}

#[test]
fn every_strategy_is_deterministic() {
    let claims = || {
        vec![
            claim("b", 3, 1),
            claim("a", 1, 2),
            claim("b", 2, 3),
            claim("c", 4, 1),
        ]
    };
    let resolve = |strategy| {
        let mut resolver = ConflictResolver::<String>::new(strategy);
        resolver.set_semantic_merge(|values: &[&String]| {
            Some(
                values
                    .iter()
                    .map(|v| v.as_str())
                    .collect::<Vec<_>>()
                    .join("+"),
            )
        });
        let conflict = resolver.detect("k", claims()).unwrap();
        let mut reversed = claims();
        reversed.reverse();
        assert_eq!(
            resolver.detect("k", reversed).unwrap(),
            conflict,
            "detection ignores claim order"
        );
        resolver.resolve(conflict).1
    };
    assert_eq!(
        resolve(ResolutionStrategy::LastWriterWins),
        Resolution::Resolved("c".into())
    );
    assert_eq!(
        resolve(ResolutionStrategy::FirstWriterWins),
        Resolution::Resolved("a".into())
    );
    assert_eq!(
        resolve(ResolutionStrategy::MajorityVote),
        Resolution::Resolved("b".into())
    );
    assert_eq!(
        resolve(ResolutionStrategy::SemanticMerge),
        Resolution::Resolved("a+b+b+c".into())
    );
    assert_eq!(
        resolve(ResolutionStrategy::ManualReview),
        Resolution::Queued(0)
    );
}

#[test]
fn failed_semantic_merge_becomes_a_merge_failure() {
    let mut resolver = ConflictResolver::<String>::new(ResolutionStrategy::SemanticMerge);
    resolver.set_semantic_merge(|_| None);
    resolver.set_strategy(ConflictType::MergeFailure, ResolutionStrategy::ManualReview);
    let conflict = resolver
        .detect("k", vec![claim("a", 1, 1), claim("b", 2, 2)])
        .unwrap();
    assert_eq!(
        resolver.resolve(conflict),
        (ConflictType::MergeFailure, Resolution::Queued(0))
    );
    assert_eq!(resolver.review_queue()[0].kind, ConflictType::MergeFailure);
    assert_eq!(resolver.take_reviewed(0).unwrap().key, "k");
    assert!(resolver.review_queue().is_empty());
}

#[test]
fn register_siblings_are_detected() {
    let mut a = MVRegister::new();
    let mut b = MVRegister::new();
    a.set(ReplicaId(1), "left".to_string());
    b.set(ReplicaId(2), "right".to_string());
    a.merge(&b);
    let resolver = ConflictResolver::<String>::new(ResolutionStrategy::LastWriterWins);
    let conflict = resolver.detect_in_register("title", &a).unwrap();
    assert_eq!(conflict.kind, ConflictType::DirectContradiction);
    assert_eq!(conflict.claims.len(), 2);
}
