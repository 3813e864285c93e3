//! The replicated store: replication through real `SyncNode`s, refusal of forged beads from a
//! hostile peer, persistence, last-writer-wins metadata, k-of-n acceptance and the council.

use chrysalis_crdt::{Encode, Hlc, ORSet};
use chrysalis_memory::{
    Acceptance, Bead, BeadDraft, BeadEmbedding, Council, Entry, Filter, HnswConfig, Identity,
    MemoryIndex, MemoryStore, Motion, Query, Ranking, Record, StoreChange,
};
use chrysalis_sync::{Document, Event, Output, Recipient, SyncConfig, SyncNode};

const DOC: &str = "memory";

fn identity(seed: u8) -> Identity {
    Identity::from_seed(&[seed; 32]).unwrap()
}

fn draft(text: &str, vector: [f32; 3]) -> BeadDraft {
    BeadDraft {
        content: text.into(),
        kind: "note".into(),
        tags: vec!["test".into()],
        embedding: Some(BeadEmbedding {
            model: "toy".into(),
            vector: vector.to_vec(),
        }),
    }
}

struct Agent {
    me: Identity,
    node: SyncNode,
}

impl Agent {
    fn new(seed: u8) -> Agent {
        let me = identity(seed);
        let mut node = SyncNode::new(me.signing_key(), SyncConfig::default(), 0, seed.into());
        let store = MemoryStore::new(&me.public_key());
        node.share(0, DOC, Box::new(store)).unwrap();
        Agent { me, node }
    }

    fn store(&mut self) -> &mut MemoryStore {
        self.node.document_mut(DOC).unwrap()
    }

    fn remember(&mut self, now: u64, text: &str, vector: [f32; 3]) -> (Bead, Output) {
        let me = Identity::from_seed(&*self.me.seed()).unwrap();
        let (bead, delta) = self
            .store()
            .remember(&me, draft(text, vector), now)
            .unwrap();
        self.node.local_change(now, DOC, delta).unwrap();
        (bead, self.node.flush_changes(now))
    }
}

/// Delivers `out` from `from` to `to` and back until both are quiet; returns `to`'s events.
fn exchange(now: u64, first: Output, from: &mut Agent, to: &mut Agent) -> Vec<Event> {
    let mut events = Vec::new();
    let (mut pending, mut sender_is_from) = (first, true);
    for _ in 0..20 {
        if pending.transmits.is_empty() {
            break;
        }
        let (src, dst) = if sender_is_from {
            (&mut *from, &mut *to)
        } else {
            (&mut *to, &mut *from)
        };
        let mut next = Output::default();
        for t in &pending.transmits {
            if t.to == Recipient::Everyone || t.to == Recipient::Peer(dst.node.id()) {
                let o = dst.node.handle_message(now, src.node.id(), &t.bytes);
                if sender_is_from {
                    events.extend(o.events.clone());
                }
                next.transmits.extend(o.transmits);
            }
        }
        pending = next;
        sender_is_from = !sender_is_from;
    }
    events
}

/// Links two agents (each a peer of the other: only connected peers' frames count), then
/// exchanges their first digests.
fn connect(a: &mut Agent, b: &mut Agent) {
    let hello_a = a.node.add_peer(0, b.node.id());
    let hello_b = b.node.add_peer(0, a.node.id());
    exchange(0, hello_a, a, b);
    exchange(0, hello_b, b, a);
}

#[test]
fn beads_replicate_through_sync_nodes_and_forgetting_replicates_too() {
    let (mut a, mut b) = (Agent::new(1), Agent::new(2));
    connect(&mut a, &mut b);
    let (bead, out) = a.remember(10, "Alice prefers tea", [1.0, 0.0, 0.0]);
    let events = exchange(10, out, &mut a, &mut b);
    assert!(matches!(&events[..], [Event::Changed { doc, .. }] if doc == DOC));
    let got = b.store().bead(&bead.id).cloned().expect("replicated");
    assert_eq!(got.content, "Alice prefers tea");
    assert_eq!(b.store().take_changes(), vec![StoreChange::Added(bead.id)]);

    let forget = a.store().forget(&identity(1), &bead.id, 11).unwrap();
    a.node.local_change(11, DOC, forget).unwrap();
    let out = a.node.flush_changes(11);
    exchange(11, out, &mut a, &mut b);
    assert!(b.store().bead(&bead.id).is_none());
    assert_eq!(
        b.store().take_changes(),
        vec![StoreChange::Removed(bead.id)]
    );
}

#[test]
fn a_memory_bigger_than_a_frame_reaches_a_new_peer_in_parts() {
    let (mut a, mut b) = (Agent::new(1), Agent::new(2));
    let me = identity(1);
    let vector: Vec<f32> = (0..384).map(|i| (i as f32 * 0.37).sin()).collect();
    for i in 0..1200 {
        let mut d = draft(
            &format!("note {i}: the relay keeps frames under one mebibyte"),
            [0.0; 3],
        );
        d.embedding.as_mut().unwrap().vector = vector.iter().map(|x| x + i as f32 * 1e-3).collect();
        a.store().remember(&me, d, i).unwrap();
    }
    let whole = a.store().to_bytes().len();
    assert!(
        whole > 2 * SyncConfig::default().max_frame,
        "the memory is {whole} bytes"
    );
    connect(&mut a, &mut b);
    let mut rounds = 1;
    let mut now = 0;
    while b.store().len() < 1200 {
        assert!(
            rounds < 20,
            "{} of 1200 beads after {rounds} rounds",
            b.store().len()
        );
        now += 60_000;
        let out = b.node.handle_tick(now);
        exchange(now, out, &mut b, &mut a);
        rounds += 1;
    }
    assert!(rounds >= 3, "{whole} bytes arrived in {rounds} rounds");
    assert_eq!(a.node.stats().dropped(), 0);
    assert_eq!(b.node.stats().dropped(), 0);
    assert_eq!(b.store().version(), a.store().version());
}

/// A hostile peer's delta: one record, in an entry Mallory signs as event 1 of the record's
/// signer's replica, built by hand into an OR-Set of its own.
fn hostile_delta(mallory: &Identity, record: Record) -> Vec<u8> {
    let entry = Entry::new(mallory, record, 1);
    let mut set = ORSet::new();
    set.add(entry.dot().replica, entry).to_bytes()
}

#[test]
fn forged_beads_from_a_hostile_peer_are_refused_counted_and_never_stored() {
    let alice = identity(1);
    let mallory = identity(9);
    let mut store = MemoryStore::new(&identity(2).public_key());
    let at = Hlc::default();
    let genuine = Bead::create(&alice, draft("pay Bob 5", [0.0, 1.0, 0.0]), at).unwrap();

    // Content changed after signing: the id no longer matches.
    let mut edited = genuine.clone();
    edited.content = "pay Mallory 500".into();
    let err = store
        .apply(&hostile_delta(&mallory, Record::Bead(edited)))
        .unwrap_err();
    assert!(err.contains("does not match"), "{err}");

    // Re-addressed to the new content, but signed by Mallory while claiming Alice wrote it.
    let mut forged = Bead::create(&mallory, draft("pay Mallory 500", [0.0, 1.0, 0.0]), at).unwrap();
    forged.author = alice.public_key();
    forged.id = Bead::create(&alice, draft("pay Mallory 500", [0.0, 1.0, 0.0]), at)
        .unwrap()
        .id;
    let err = store
        .apply(&hostile_delta(&mallory, Record::Bead(forged)))
        .unwrap_err();
    assert!(err.contains("bad signature"), "{err}");

    assert!(store.apply(b"\x00garbage").is_err());
    assert!(store.is_empty(), "nothing forged was stored");
    let rejected = store.rejected();
    assert_eq!(rejected.get("ID_MISMATCH"), Some(&1));
    assert_eq!(rejected.get("BAD_SIGNATURE"), Some(&1));
    assert_eq!(rejected.get("DECODE"), Some(&1));

    // The genuine bead in an entry only Alice may sign: refused from Mallory, accepted from
    // anyone who relays Alice's own entry.
    let err = store
        .apply(&hostile_delta(&mallory, Record::Bead(genuine.clone())))
        .unwrap_err();
    assert!(err.contains("bad signature on store entry"), "{err}");
    assert!(
        store
            .apply(&hostile_delta(&alice, Record::Bead(genuine.clone())))
            .unwrap()
    );
    assert_eq!(store.bead(&genuine.id).unwrap().content, "pay Bob 5");
}

#[test]
fn a_hostile_sync_peer_is_scored_down_for_forged_beads() {
    let (mut a, mut b) = (Agent::new(1), Agent::new(2));
    connect(&mut a, &mut b);
    let mallory = identity(9);
    let mut edited = Bead::create(&mallory, draft("x", [1.0, 1.0, 0.0]), Hlc::default()).unwrap();
    edited.content = "y".into();
    // Agent A's node signs the frame: a peer in good standing relays a forgery.
    a.node
        .local_change(5, DOC, hostile_delta(&mallory, Record::Bead(edited)))
        .unwrap();
    let out = a.node.flush_changes(5);
    exchange(5, out, &mut a, &mut b);
    assert!(b.store().is_empty());
    assert_eq!(b.store().rejected().get("ID_MISMATCH"), Some(&1));
    let (_, peer) = b.node.peers().find(|(id, _)| *id == a.node.id()).unwrap();
    assert!(peer.score < 0, "score {}", peer.score);
}

#[test]
fn the_store_survives_a_reload_and_refuses_a_tampered_file() {
    let me = identity(1);
    let mut store = MemoryStore::new(&me.public_key());
    let (first, _) = store
        .remember(&me, draft("one", [1.0, 0.0, 0.0]), 1)
        .unwrap();
    let (second, _) = store
        .remember(&me, draft("two", [0.0, 1.0, 0.0]), 1)
        .unwrap();
    store.set_meta(&me, &second.id, true, 80, 2).unwrap();
    store.approve(&me, &first.id, 3).unwrap();
    store.forget(&me, &first.id, 4).unwrap();
    let bytes = store.to_bytes();
    let reloaded = MemoryStore::from_bytes(&me.public_key(), &bytes).unwrap();
    assert_eq!(reloaded.len(), 1);
    assert_eq!(reloaded.bead(&second.id).unwrap().content, "two");
    assert!(reloaded.meta(&second.id).unwrap().pinned);
    assert!(reloaded.bead(&first.id).is_none());
    assert_eq!(reloaded.version(), store.version());

    let at = bytes.windows(3).position(|w| w == b"two").unwrap();
    let mut tampered = bytes.clone();
    tampered[at] = b'T';
    assert_eq!(
        MemoryStore::from_bytes(&me.public_key(), &tampered)
            .unwrap_err()
            .code(),
        "ID_MISMATCH"
    );
}

#[test]
fn concurrent_metadata_converges_to_the_latest_write() {
    let (alice, bob) = (identity(1), identity(2));
    let mut a = MemoryStore::new(&alice.public_key());
    let (bead, delta) = a.remember(&alice, draft("x", [1.0, 0.0, 0.0]), 1).unwrap();
    let mut b = MemoryStore::new(&bob.public_key());
    b.apply(&delta).unwrap();
    let from_a = a.set_meta(&alice, &bead.id, true, 10, 5).unwrap();
    let from_b = b.set_meta(&bob, &bead.id, false, 90, 7).unwrap();
    for d in &from_b {
        a.apply(d).unwrap();
    }
    for d in &from_a {
        b.apply(d).unwrap();
    }
    assert_eq!(a.meta(&bead.id), b.meta(&bead.id));
    assert_eq!(a.meta(&bead.id).unwrap().importance, 90, "the later write");
    assert_eq!(a.version(), b.version());
}

#[test]
fn beads_are_accepted_at_k_member_approvals_and_the_council_changes_by_motion() {
    let (alice, bob, carol, outsider) = (identity(1), identity(2), identity(3), identity(4));
    let mut store = MemoryStore::new(&alice.public_key());
    let (bead, added) = store
        .remember(&alice, draft("fact", [1.0, 0.0, 0.0]), 1)
        .unwrap();
    let members = [alice.public_key(), bob.public_key(), carol.public_key()];
    let mut council = Council::new(members, 2).unwrap();
    // Another agent approves in its own store; its delta reaches Alice's.
    let approve_as = |who: &Identity, store: &mut MemoryStore| {
        let mut theirs = MemoryStore::new(&who.public_key());
        theirs.apply(&added).unwrap();
        let delta = theirs.approve(who, &bead.id, 2).unwrap().unwrap();
        store.apply(&delta).unwrap();
    };

    store.approve(&alice, &bead.id, 2).unwrap();
    approve_as(&outsider, &mut store);
    assert_eq!(
        store.approve(&bob, &bead.id, 2).unwrap_err().code(),
        "NOT_AUTHOR",
        "a store writes only its owner's records"
    );
    assert_eq!(
        council.acceptance(&store, &bead.id),
        Acceptance::Pending { have: 1, need: 2 },
        "an outsider's approval does not count"
    );
    assert_eq!(
        store.approve(&alice, &bead.id, 3).unwrap(),
        None,
        "approving twice adds nothing"
    );
    approve_as(&bob, &mut store);
    assert!(matches!(
        council.acceptance(&store, &bead.id),
        Acceptance::Accepted { .. }
    ));

    // A motion applies only with `k` distinct member endorsements (outsiders do not count).
    let (a, b, c) = (alice.public_key(), bob.public_key(), carol.public_key());
    let raise = Motion::from_bytes(&Motion::SetThreshold(3).to_bytes()).unwrap();
    for endorsers in [vec![a], vec![a, a], vec![a, outsider.public_key()]] {
        assert_eq!(
            council.apply(&raise, &endorsers).unwrap_err().code(),
            "NOT_ENDORSED"
        );
    }
    council.apply(&raise, &[a, b]).unwrap();
    assert_eq!(
        council.acceptance(&store, &bead.id),
        Acceptance::Pending { have: 2, need: 3 }
    );

    // Bob rotates his key: his old approval no longer counts, the new key's does.
    let bob2 = identity(5);
    council
        .apply(&Motion::Rotate(bob.rotate_to(&bob2, 4)), &[a, b, c])
        .unwrap();
    assert_eq!(
        council.acceptance(&store, &bead.id),
        Acceptance::Pending { have: 1, need: 3 }
    );
    approve_as(&bob2, &mut store);
    approve_as(&carol, &mut store);
    assert!(
        matches!(council.acceptance(&store, &bead.id), Acceptance::Accepted { approvers } if approvers.len() == 3)
    );

    // Motions that would break the council change nothing.
    let all = [a, bob2.public_key(), c];
    assert_eq!(
        council
            .apply(&Motion::SetThreshold(3), &[a, b, c])
            .unwrap_err()
            .code(),
        "NOT_ENDORSED",
        "a rotated-out key no longer endorses"
    );
    assert!(council.apply(&Motion::SetThreshold(4), &all).is_err());
    let forged = Motion::Rotate(outsider.rotate_to(&identity(6), 6));
    assert!(council.apply(&forged, &all).is_err());
    assert_eq!(council.applied(), 2);
    assert_eq!(
        council.epoch(),
        1,
        "only the rotation changed the membership"
    );

    // Admitting a member again changes nothing; removing one starts a new epoch.
    council.apply(&Motion::Admit(c), &all).unwrap();
    assert_eq!(council.epoch(), 1);
    council.apply(&Motion::Remove(c), &all).unwrap();
    assert_eq!((council.epoch(), council.threshold()), (2, 2));
}

#[test]
fn the_index_follows_the_store_and_filters() {
    let (alice, bob) = (identity(1), identity(2));
    let mut store = MemoryStore::new(&alice.public_key());
    let (tea, _) = store
        .remember(
            &alice,
            draft("Alice drinks green tea", [1.0, 0.1, 0.0]),
            1_000,
        )
        .unwrap();
    let (code, _) = store
        .remember(&alice, draft("The build uses Rust", [0.0, 1.0, 0.0]), 2_000)
        .unwrap();
    let mut other = draft("Bob drinks coffee", [0.9, 0.2, 0.1]);
    other.kind = "fact".into();
    let (coffee, delta) = MemoryStore::new(&bob.public_key())
        .remember(&bob, other, 3_000)
        .unwrap();
    store.apply(&delta).unwrap();
    let mut index = MemoryIndex::new(HnswConfig::default());
    let changes = store.take_changes();
    index.update(&store, &changes);
    assert_eq!(index.len(), 3);
    assert_eq!(
        index.other_model(),
        3,
        "no vector counts before a model is chosen"
    );
    index.choose_model(&store, "toy", 3);
    assert_eq!(index.other_model(), 0);

    let everything = Filter::default();
    // The ids of the best beads for a query (text, toy embedding) under `filter`.
    let ids = |index: &MemoryIndex, text, vector: Option<[f32; 3]>, filter, ranking| {
        let query = Query {
            text,
            embedding: vector.as_ref().map(|v| ("toy", &v[..])),
            k: 3,
            filter,
            ranking,
        };
        let hits = index.search(&query).unwrap();
        hits.iter().map(|h| h.id).collect::<Vec<_>>()
    };
    let east = Some([1.0, 0.0, 0.0]);
    assert_eq!(
        ids(&index, "", east, &everything, Ranking::Vector)[0],
        tea.id
    );
    let facts = Filter {
        kinds: vec!["fact".into()],
        ..Filter::default()
    };
    assert_eq!(
        ids(&index, "", east, &facts, Ranking::Vector),
        vec![coffee.id]
    );
    let by_bob = Filter {
        authors: vec![bob.public_key()],
        ..Filter::default()
    };
    assert!(ids(&index, "tea", None, &by_bob, Ranking::Keyword).is_empty());
    let early = Filter {
        before: Some(1_500),
        ..Filter::default()
    };
    assert_eq!(
        ids(&index, "drinks", None, &early, Ranking::Keyword),
        vec![tea.id]
    );
    let hybrid = index
        .search(&Query {
            text: "rust",
            embedding: Some(("toy", &[0.0, 1.0, 0.0][..])),
            k: 3,
            filter: &everything,
            ranking: Ranking::Hybrid,
        })
        .unwrap();
    assert_eq!(hybrid[0].id, code.id);
    assert!(hybrid[0].keyword.is_some() && hybrid[0].similarity.is_some());
    let wrong_model = index.search(&Query {
        text: "",
        embedding: Some(("other", &[1.0, 0.0, 0.0][..])),
        k: 3,
        filter: &everything,
        ranking: Ranking::Vector,
    });
    assert_eq!(wrong_model.unwrap_err().code(), "EMBEDDING_MISMATCH");

    store.forget(&alice, &tea.id, 9).unwrap();
    let changes = store.take_changes();
    index.update(&store, &changes);
    let snapshot = index.snapshot_vectors().unwrap();
    let restored =
        MemoryIndex::restore(&store, HnswConfig::default(), ("toy".into(), 3), &snapshot);
    for i in [&index, &restored] {
        assert_eq!(
            ids(i, "", east, &everything, Ranking::Vector),
            vec![coffee.id, code.id]
        );
    }
}

/// Regression: the first bead indexed fixed the index's model, so a peer's bead claiming model
/// "x" with one dimension, whose id sorted first, made every later recall fail with
/// `EMBEDDING_MISMATCH`. The agent chooses the model; a bead of another model is found by
/// keyword only.
#[test]
fn a_peers_bead_of_another_model_does_not_poison_recall() {
    let (alice, mallory) = (identity(1), identity(9));
    let mut store = MemoryStore::new(&alice.public_key());
    let mut theirs = MemoryStore::new(&mallory.public_key());
    let mut poison = draft("poison", [0.0; 3]);
    poison.embedding = Some(BeadEmbedding {
        model: "x".into(),
        vector: vec![1.0],
    });
    let (_, delta) = theirs.remember(&mallory, poison, 1).unwrap();
    store.apply(&delta).unwrap();
    let (tea, _) = store
        .remember(&alice, draft("Alice drinks tea", [1.0, 0.0, 0.0]), 2)
        .unwrap();
    let mut index = MemoryIndex::new(HnswConfig::default());
    index.update(&store, &store.clone().take_changes());
    index.choose_model(&store, "toy", 3);
    let everything = Filter::default();
    let query = |k| Query {
        text: "tea",
        embedding: Some(("toy", &[1.0, 0.0, 0.0][..])),
        k,
        filter: &everything,
        ranking: Ranking::Hybrid,
    };
    let hits = index.search(&query(5)).unwrap();
    assert_eq!(hits[0].id, tea.id);
    assert_eq!(index.other_model(), 1);
    // Regression: recall({ k: 1e8 }) trapped the page.
    assert_eq!(
        index.search(&query(100_000_000)).unwrap_err().code(),
        "BAD_INPUT"
    );
}
