//! `SyncNode` one behaviour at a time: pushes, catch-up with only what is missing, refusals and
//! scoring, stale replies after a restart, and the errors of the local API.

use chrysalis_crdt::{Encode, GCounter, ORSet, ReplicaId};
use chrysalis_crypto::SigningKey;
use chrysalis_sync::{
    Event, FrameKind, Output, Recipient, SignedFrame, SyncConfig, SyncError, SyncNode, room_id,
};

fn node(seed: u8, now: u64) -> SyncNode {
    instance(seed, now, seed.into())
}

/// A node with key `seed` and its own random choices (`rng`): another instance of that key.
fn instance(seed: u8, now: u64, rng: u64) -> SyncNode {
    let key = SigningKey::from_seed(&[seed; 32]).unwrap();
    let mut node = SyncNode::new(key, SyncConfig::default(), now, rng);
    node.share(now, "set", Box::new(ORSet::<String>::new()))
        .unwrap();
    node
}

/// Delivers every frame of `out` that is for `to` (directly or to everyone); returns its output.
fn deliver(now: u64, out: &Output, from: &SyncNode, to: &mut SyncNode) -> Output {
    let mut all = Output::default();
    for t in &out.transmits {
        if t.to == Recipient::Everyone || t.to == Recipient::Peer(to.id()) {
            let o = to.handle_message(now, from.id(), &t.bytes);
            all.transmits.extend(o.transmits);
            all.events.extend(o.events);
        }
    }
    all
}

/// Exchanges frames between two nodes until both are quiet; returns the frame kinds sent.
fn settle(now: u64, a: &mut SyncNode, b: &mut SyncNode, first: Output) -> Vec<FrameKind> {
    let mut kinds = Vec::new();
    let (mut from_a, mut from_b) = (first, Output::default());
    while !from_a.transmits.is_empty() || !from_b.transmits.is_empty() {
        let signed = |out: &Output, by: &SyncNode, to: &SyncNode| {
            let (id, to) = (by.id(), to.id());
            let kinds: Vec<FrameKind> = out
                .transmits
                .iter()
                .map(|t| {
                    let frame =
                        SignedFrame::decode_at(&t.bytes, usize::MAX, &room_id(""), &id, Some(&to));
                    frame.unwrap().frame().kind
                })
                .collect();
            kinds
        };
        kinds.extend(signed(&from_a, a, b));
        kinds.extend(signed(&from_b, b, a));
        let next_b = deliver(now, &from_a, a, b);
        let next_a = deliver(now, &from_b, b, a);
        (from_a, from_b) = (next_a, next_b);
    }
    kinds
}

fn add(node: &mut SyncNode, now: u64, element: &str) -> Output {
    let replica = ReplicaId(u64::from(node.id()[0]));
    let set: &mut ORSet<String> = node.document_mut("set").unwrap();
    let delta = set.add(replica, element.to_owned()).to_bytes();
    let queued = node.local_change(now, "set", delta).unwrap();
    assert!(queued.transmits.is_empty(), "sent at the next flush");
    node.flush_changes(now)
}

fn elements(node: &SyncNode) -> Vec<String> {
    let any: &dyn std::any::Any = node.document("set").unwrap();
    let set: &ORSet<String> = any.downcast_ref().unwrap();
    set.iter().cloned().collect()
}

#[test]
fn a_local_change_is_one_broadcast_frame_and_the_peer_reports_it() {
    let (mut a, mut b) = (node(1, 0), node(2, 0));
    let hello = a.add_peer(0, b.id());
    settle(0, &mut a, &mut b, hello);
    b.add_peer(0, a.id());
    let out = add(&mut a, 1, "milk");
    assert_eq!(out.transmits.len(), 1);
    assert_eq!(out.transmits[0].to, Recipient::Everyone);
    let heard = deliver(1, &out, &a, &mut b);
    assert_eq!(
        heard.events,
        vec![Event::Changed {
            doc: "set".into(),
            from: a.id()
        }]
    );
    assert_eq!(elements(&b), ["milk"]);
    assert!(
        heard.transmits.is_empty(),
        "a broadcast push is not forwarded"
    );
}

#[test]
fn a_peer_that_was_away_catches_up_with_only_what_it_lacks() {
    let (mut a, mut b) = (node(1, 0), node(2, 0));
    for i in 0..50 {
        add(&mut a, 1, &format!("old {i}"));
    }
    let hello = a.add_peer(2, b.id());
    b.add_peer(2, a.id());
    let kinds = settle(2, &mut a, &mut b, hello);
    assert!(kinds.contains(&FrameKind::Deltas));
    assert_eq!(elements(&b).len(), 50);
    // Away: b misses three changes; the next digest brings exactly those.
    for i in 0..3 {
        add(&mut a, 3, &format!("new {i}"));
    }
    let before = a.stats().bytes_sent;
    let round = a.handle_tick(10_000);
    let kinds = settle(10_000, &mut a, &mut b, round);
    assert_eq!(elements(&b).len(), 53);
    assert!(kinds.contains(&FrameKind::Deltas), "{kinds:?}");
    let catch_up = a.stats().bytes_sent - before;
    // The three new elements and the context, not the 50 old ones again.
    assert!(catch_up < 1200, "catch-up cost {catch_up} bytes");
    // In sync: the next round is a digest each way and nothing else.
    let round = a.handle_tick(20_000);
    let kinds = settle(20_000, &mut a, &mut b, round);
    assert!(kinds.iter().all(|k| *k == FrameKind::Digest), "{kinds:?}");
}

/// Whether `out` holds a digest (the frames `by` addressed to `to`, decoded).
fn sends_digest(out: &Output, by: &SyncNode, to: &SyncNode) -> bool {
    out.transmits.iter().any(|t| {
        SignedFrame::decode_at(&t.bytes, usize::MAX, &room_id(""), &by.id(), Some(&to.id()))
            .is_ok_and(|f| f.frame().kind == FrameKind::Digest)
    })
}

#[test]
fn anti_entropy_waits_while_pushes_arrive_but_not_forever() {
    let (mut a, mut b) = (node(1, 0), node(2, 0));
    let hello = a.add_peer(0, b.id());
    b.add_peer(0, a.id());
    settle(0, &mut a, &mut b, hello);
    assert!(sends_digest(&b.handle_tick(0), &b, &a), "the first round");
    // A push grows b's state at 900: the round due at 1000 waits for a quiet 250 ms.
    deliver(900, &add(&mut a, 900, "milk"), &a, &mut b);
    assert!(!sends_digest(&b.handle_tick(1000), &b, &a));
    assert_eq!(b.wake_at(), 1150);
    assert!(sends_digest(&b.handle_tick(1150), &b, &a));
    // A push every 100 ms from then on: the round due at 2150 runs at 3150 anyway.
    for t in (1200..3150).step_by(100) {
        deliver(t, &add(&mut a, t, &format!("egg {t}")), &a, &mut b);
        assert!(!sends_digest(&b.handle_tick(t), &b, &a), "at {t}");
    }
    assert_eq!(b.wake_at(), 3150);
    assert!(sends_digest(&b.handle_tick(3150), &b, &a));
}

#[test]
fn forged_frames_are_dropped_scored_and_end_in_a_ban() {
    let (mut a, mut b) = (node(1, 0), node(2, 0));
    let mallory = SigningKey::from_seed(&[9; 32]).unwrap();
    let mallory_id = mallory.public_key();
    b.add_peer(0, mallory_id);
    b.add_peer(0, a.id());
    // Signed by a, sent by mallory over a link that authenticates her: refused, nothing
    // applied.
    let out = add(&mut a, 1, "x");
    let o = b.handle_message(1, mallory_id, &out.transmits[0].bytes);
    assert!(o.events.is_empty());
    assert_eq!(b.stats().drops.get("BAD_SIGNATURE"), Some(&1));
    assert!(elements(&b).is_empty());
    // Garbage until banned.
    let mut banned = None;
    for seq in 0..10 {
        let bad = SignedFrame::encode(&mallory, &room_id(""), FrameKind::Gossip, seq, b"\xff\xff");
        for event in b.handle_message(2, mallory_id, &bad).events {
            banned = Some(event);
        }
    }
    assert_eq!(
        banned,
        Some(Event::PeerBanned {
            peer: mallory_id,
            reason: "BAD_PAYLOAD"
        })
    );
    assert!(b.banned(3).any(|(p, _)| p == mallory_id));
    let dropped_as_banned = b.stats().drops.get("BANNED").copied().unwrap_or(0);
    let valid = SignedFrame::encode(&mallory, &room_id(""), FrameKind::Heartbeat, 100, b"");
    b.handle_message(3, mallory_id, &valid);
    assert_eq!(b.stats().drops["BANNED"], dropped_as_banned + 1);
    // The ban lifts after its duration.
    b.handle_tick(70_000);
    assert!(b.banned(70_000).next().is_none());
    // Honest a is unaffected: its frames still count.
    let out = add(&mut a, 2, "y");
    deliver(4, &out, &a, &mut b);
    assert_eq!(elements(&b), ["y"]);
}

#[test]
fn a_duplicated_frame_is_refused_as_a_replay_at_no_cost_to_its_signer() {
    let (mut a, mut b) = (node(1, 0), node(2, 0));
    b.add_peer(0, a.id());
    let out = add(&mut a, 1, "x");
    deliver(1, &out, &a, &mut b);
    // Regression: each replay cost the signer a point, so whoever could replay its frames (a
    // relay, a script on a BroadcastChannel) could get an honest peer banned.
    for _ in 0..200 {
        deliver(1, &out, &a, &mut b);
    }
    assert_eq!(b.stats().drops.get("REPLAYED"), Some(&200));
    let score = b.peers().find(|(p, _)| *p == a.id()).unwrap().1.score;
    assert_eq!(score, 1, "+1 for the frame, nothing for the replays");
}

/// a holds "old", which b took; a adds "new" and answers b's next digest at 10 s: the answer
/// (returned) carries "new" and leaves "old" out, its context covering it.
fn answer_without_old(a: &mut SyncNode, b: &mut SyncNode) -> Output {
    add(a, 1, "old");
    let hello = a.add_peer(2, b.id());
    b.add_peer(2, a.id());
    settle(2, a, b, hello);
    add(a, 3, "new");
    let digest = b.handle_tick(10_000);
    deliver(10_000, &digest, b, a)
}

#[test]
fn a_reply_handed_to_another_peer_is_dropped() {
    // a's answer to b's digest leaves out what b holds ("old") but its context covers it:
    // applied by c, which lacks "old", it marked "old" seen, and c never took it, not even
    // from a later sync with a (frame version 4). Addressed to b, it is dropped at c, counted
    // against nobody.
    let (mut a, mut b, mut c) = (node(1, 0), node(2, 0), node(3, 0));
    let reply = answer_without_old(&mut a, &mut b);
    let deltas: Vec<&[u8]> = reply
        .transmits
        .iter()
        .filter(|t| t.to == Recipient::Peer(b.id()))
        .map(|t| t.bytes.as_slice())
        .collect();
    assert!(!deltas.is_empty());
    c.add_peer(10_000, a.id());
    a.add_peer(10_000, c.id());
    for bytes in deltas {
        c.handle_claimed(10_000, a.id(), bytes);
    }
    assert!(elements(&c).is_empty());
    assert_eq!(c.stats().drops.get("BAD_SIGNATURE"), Some(&1));
    assert!(c.peers().all(|(_, info)| info.score >= 0));
    let hello = c.handle_tick(20_000);
    settle(20_000, &mut c, &mut a, hello);
    assert_eq!(elements(&c), ["new", "old"]);
}

#[test]
fn replies_to_a_previous_incarnation_are_not_applied() {
    let (mut a, mut b) = (node(1, 0), node(2, 0));
    add(&mut a, 1, "kept");
    // b digests a, then restarts without its state before the reply arrives.
    let digest = b.add_peer(1, a.id());
    a.add_peer(1, b.id());
    let reply = deliver(1, &digest, &b, &mut a);
    let mut reborn = instance(2, 5, 1002);
    reborn.add_peer(5, a.id());
    deliver(5, &reply, &a, &mut reborn);
    assert_eq!(reborn.stats().drops.get("UNASKED_REPLY"), Some(&1));
    // Its own digest brings everything.
    let hello = reborn.add_peer(6, a.id());
    settle(6, &mut reborn, &mut a, hello);
    assert_eq!(elements(&reborn), ["kept"]);
}

#[test]
fn a_reply_is_applied_only_by_the_instance_that_asked() {
    // b and its twin hold one key (two tabs of one identity). a's answer to b's digest leaves
    // out what b holds ("old"); the twin lacks "old", so applying it would lose "old" there
    // (frame version 5 let it). The answer names b's random ask, which the twin never made.
    let (mut a, mut b, mut twin) = (node(1, 0), node(2, 0), instance(2, 0, 1002));
    let reply = answer_without_old(&mut a, &mut b);
    twin.add_peer(10_000, a.id());
    let before = twin
        .stats()
        .drops
        .get("UNASKED_REPLY")
        .copied()
        .unwrap_or(0);
    deliver(10_000, &reply, &a, &mut twin);
    assert!(elements(&twin).is_empty());
    assert!(twin.stats().drops["UNASKED_REPLY"] > before);
    assert!(twin.peers().all(|(_, info)| info.score >= 0));
    // b, which asked, takes it.
    deliver(10_000, &reply, &a, &mut b);
    assert_eq!(elements(&b), ["new", "old"]);
}

#[test]
fn a_reply_to_a_document_shared_again_is_not_applied() {
    let (mut a, mut b) = (node(1, 0), node(2, 0));
    add(&mut a, 1, "kept");
    b.add_peer(1, a.id());
    a.add_peer(1, b.id());
    let digest = b.handle_tick(10_000);
    let reply = deliver(10_000, &digest, &b, &mut a);
    // b stops sharing "set" and shares a fresh one before the answer arrives.
    b.unshare("set");
    b.share(10_001, "set", Box::new(ORSet::<String>::new()))
        .unwrap();
    deliver(10_001, &reply, &a, &mut b);
    assert!(elements(&b).is_empty());
    assert!(b.stats().drops.contains_key("UNASKED_REPLY"));
    let hello = b.handle_tick(20_000);
    settle(20_000, &mut b, &mut a, hello);
    assert_eq!(elements(&b), ["kept"]);
}

#[test]
fn digests_requests_and_replies_must_be_addressed() {
    // Only an asker may apply an answer: one signed for everyone is refused and scored.
    let (a, mut b) = (node(1, 0), node(2, 0));
    b.add_peer(0, a.id());
    let key = SigningKey::from_seed(&[1; 32]).unwrap();
    for (seq, kind) in [FrameKind::Digest, FrameKind::Request, FrameKind::Deltas]
        .into_iter()
        .enumerate()
    {
        let payload = [1, 0]; // answers 1, no documents
        let frame = SignedFrame::encode(&key, &room_id(""), kind, 100 + seq as u64, &payload);
        let out = b.handle_message(1, a.id(), &frame);
        assert!(out.transmits.is_empty(), "{kind:?} answered");
    }
    assert_eq!(b.stats().drops.get("BAD_PAYLOAD"), Some(&3));
    assert!(b.peers().any(|(p, info)| p == a.id() && info.score < 0));
}

#[test]
fn the_local_api_names_bad_calls() {
    let mut a = node(1, 0);
    let err = |r: Result<Output, SyncError>| r.unwrap_err().code();
    assert_eq!(
        err(a.share(0, "set", Box::new(GCounter::new()))),
        "BAD_DOCUMENT_NAME"
    );
    assert_eq!(
        err(a.share(0, "", Box::new(GCounter::new()))),
        "BAD_DOCUMENT_NAME"
    );
    assert_eq!(
        err(a.share(0, &"n".repeat(129), Box::new(GCounter::new()))),
        "BAD_DOCUMENT_NAME"
    );
    assert_eq!(err(a.local_change(0, "nope", vec![1])), "UNKNOWN_DOCUMENT");
    assert_eq!(
        err(a.local_change(0, "set", vec![0; 2 << 20])),
        "DELTA_TOO_LARGE"
    );
    assert!(a.document_mut::<GCounter>("set").is_none(), "wrong type");
    assert!(a.unshare("set").is_some());
    assert_eq!(a.documents().count(), 0);
}

/// Regression: a digest naming one document 600 times with an empty version vector (6 KB)
/// made a node sign and send 21.6 MB of replies, unpenalised. A document is answered once per
/// digest, and what one peer's digests make a node send is bounded per anti-entropy interval.
#[test]
fn digests_cannot_amplify_into_megabytes_of_replies() {
    let mut a = node(1, 0);
    for i in 0..2000 {
        add(
            &mut a,
            0,
            &format!("element number {i}, with a little padding"),
        );
    }
    let mallory = SigningKey::from_seed(&[9; 32]).unwrap();
    a.add_peer(0, mallory.public_key());
    let empty = chrysalis_crdt::VersionVector::new().to_bytes();
    let docs = vec![("set".to_string(), empty); 600];
    let payload = postcard::to_allocvec(&(0u64, docs)).unwrap();
    assert!(payload.len() < 8 * 1024);
    let mut sent = 0;
    for seq in 1..=200 {
        let frame = SignedFrame::encode_to(
            &mallory,
            &room_id(""),
            &a.id(),
            FrameKind::Digest,
            seq,
            &payload,
        );
        let out = a.handle_message(1, mallory.public_key(), &frame);
        sent += out.transmits.iter().map(|t| t.bytes.len()).sum::<usize>();
    }
    let whole = a
        .document("set")
        .unwrap()
        .delta_since(&chrysalis_crdt::VersionVector::new())
        .unwrap()
        .len();
    let burst = 8 * SyncConfig::default().max_frame;
    assert!(whole * 200 > burst, "the test asks for more than the bound");
    assert!(
        sent <= burst + 200 * 1024,
        "{sent} bytes sent for 200 digests of {} bytes",
        payload.len()
    );
    assert!(
        a.stats().drops.contains_key("REPLY_BUDGET"),
        "{:?}",
        a.stats().drops
    );
}

/// Regression: over a BroadcastChannel any script of the origin posts frames naming any
/// sender, and a forged one was scored against the peer it named (a script could get an
/// honest peer banned). A claimed frame counts as the claimed signer's only when the signature
/// verifies under that key; a bad one costs nobody's score.
#[test]
fn claimed_frames_are_their_signers_or_nobodys() {
    let (mut a, mut b) = (node(1, 0), node(2, 0));
    let hello = a.add_peer(0, b.id());
    settle(0, &mut a, &mut b, hello);
    let victim = b.id();
    let mallory = SigningKey::from_seed(&[9; 32]).unwrap();
    for seq in 1..=50u64 {
        let forged = SignedFrame::encode(&mallory, &room_id(""), FrameKind::Heartbeat, seq, b"");
        a.handle_claimed(1, victim, &forged);
    }
    let (_, peer) = a.peers().find(|(id, _)| *id == victim).unwrap();
    assert!(
        peer.score >= 0,
        "the named peer was not scored: {}",
        peer.score
    );
    assert_eq!(a.stats().drops.get("BAD_SIGNATURE"), Some(&50));
    // B's own frame, claimed as B's, counts as B's; claimed again, it is a replay dropped
    // before its signature is checked.
    let out = add(&mut b, 2, "from b");
    for t in &out.transmits {
        a.handle_claimed(2, victim, &t.bytes);
        a.handle_claimed(2, victim, &t.bytes);
    }
    assert_eq!(elements(&a), vec!["from b".to_string()]);
    assert_eq!(a.stats().drops.get("REPLAYED"), Some(&1));
}

/// Regression: over a BroadcastChannel any script could post `bye` for another peer or replay
/// its hello. Presence is signed and fresh, and says when it was made, so that the Room's
/// presence table refuses a replay (one not newer than the signer's last: see
/// `crates/room/src/broadcast.rs`).
#[test]
fn presence_is_signed_and_fresh() {
    let (a, mut b) = (node(1, 0), node(2, 0));
    let id = b.id();
    let hello = b.presence(10_000, false);
    assert_eq!(
        a.check_presence(10_500, &id, &hello),
        Some((id, false, 10_000))
    );
    let bye = b.presence(11_000, true);
    let other = SigningKey::from_seed(&[7; 32]).unwrap().public_key();
    assert_eq!(
        a.check_presence(11_000, &other, &bye),
        None,
        "b's bye claimed as another's"
    );
    let mallory = SyncNode::new(
        SigningKey::from_seed(&[7; 32]).unwrap(),
        SyncConfig::default(),
        0,
        7,
    )
    .presence(11_000, true);
    assert_eq!(
        a.check_presence(11_000, &id, &mallory),
        None,
        "a bye in b's name"
    );
    assert_eq!(
        a.check_presence(11_000 + 2 * chrysalis_sync::PRESENCE_SKEW_MS, &id, &bye),
        None
    );
    assert_eq!(
        a.check_presence(11_100, &id, &bye),
        Some((id, true, 11_000))
    );
    let elsewhere = {
        let key = SigningKey::from_seed(&[2; 32]).unwrap();
        let config = SyncConfig {
            room: "another room".into(),
            ..SyncConfig::default()
        };
        SyncNode::new(key, config, 0, 2).presence(12_000, false)
    };
    assert_eq!(
        a.check_presence(12_000, &id, &elsewhere),
        None,
        "another room's hello"
    );
}

/// Regression (found attacking the Room): a frame signed by any fresh key, posted on the
/// BroadcastChannel with no hello, made its signer an active peer; 1,024 of them filled the
/// table, locked real peers out and cost a heartbeat each per tick. Only connected peers'
/// frames count now, and scoring never adds an entry.
#[test]
fn frames_of_signers_that_are_not_peers_take_no_place() {
    let mut a = node(1, 0);
    for i in 0..1_100u32 {
        let mut seed = [9u8; 32];
        seed[..4].copy_from_slice(&i.to_le_bytes());
        let key = SigningKey::from_seed(&seed).unwrap();
        let frame = SignedFrame::encode(&key, &room_id(""), FrameKind::Heartbeat, 1, b"");
        a.handle_claimed(1, key.public_key(), &frame);
        a.handle_message(1, key.public_key(), b"junk claimed by anyone");
    }
    assert_eq!(a.peers().count(), 0);
    assert_eq!(a.stats().drops.get("NOT_A_PEER"), Some(&2_200));
    let real = node(2, 0);
    let out = a.add_peer(2, real.id());
    assert_eq!(out.transmits.len(), 1, "a real peer still gets its digest");
    assert_eq!(a.peers().count(), 1);
}

#[test]
fn a_push_kept_in_a_relays_archive_catches_up_a_node_that_never_met_its_author() {
    let (mut a, mut b) = (node(1, 0), node(2, 0));
    let hello = a.add_peer(0, b.id());
    settle(0, &mut a, &mut b, hello);
    let out = add(&mut a, 1, "milk");
    let [pushed] = &out.transmits[..] else {
        panic!("{out:?}");
    };
    assert_eq!(
        (pushed.to, pushed.archive),
        (Recipient::Everyone, true),
        "a push to everyone is marked for the archive"
    );
    // c joins later, when a is gone: the relay hands it a's frame.
    let mut c = node(3, 10);
    let heard = c.handle_archived(a.id(), &pushed.bytes);
    assert!(heard.transmits.is_empty(), "not forwarded, not answered");
    assert_eq!(elements(&c), ["milk"]);
    assert_eq!(c.stats().archived_applied, 1);
    assert_eq!(
        c.peers().count(),
        0,
        "no peer table entry for an archived signer"
    );
    // Again: a frame seen before changes nothing and is not refused.
    c.handle_archived(a.id(), &pushed.bytes);
    assert_eq!((c.stats().archived_applied, c.stats().dropped()), (2, 0));
    // Under another signer, tampered, addressed, or not a push: dropped, counted.
    let mut tampered = pushed.bytes.clone();
    tampered[12] ^= 1;
    let addressed = SignedFrame::encode_to(
        &SigningKey::from_seed(&[1; 32]).unwrap(),
        &room_id(""),
        &c.id(),
        FrameKind::Gossip,
        99,
        &[0, 0],
    );
    let digest = SignedFrame::encode(
        &SigningKey::from_seed(&[1; 32]).unwrap(),
        &room_id(""),
        FrameKind::Digest,
        100,
        &[0, 0],
    );
    for (signer, bytes) in [
        (b.id(), &pushed.bytes),
        (a.id(), &tampered),
        (a.id(), &addressed),
        (a.id(), &digest),
    ] {
        c.handle_archived(signer, bytes);
    }
    assert_eq!(c.stats().dropped(), 4, "{:?}", c.stats().drops);
    assert_eq!(elements(&c), ["milk"]);
}

#[test]
fn pushes_to_a_few_peers_are_signed_once_more_for_the_archive_only_while_archiving() {
    let config = SyncConfig {
        broadcast_limit: 1,
        ..SyncConfig::default()
    };
    let key = SigningKey::from_seed(&[1; 32]).unwrap();
    let mut a = SyncNode::new(key, config, 0, 1);
    a.share(0, "set", Box::new(ORSet::<String>::new())).unwrap();
    let (mut b, mut c) = (node(2, 0), node(3, 0));
    for other in [&mut b, &mut c] {
        let hello = a.add_peer(0, other.id());
        settle(0, &mut a, other, hello);
    }
    let archived = |out: &Output| {
        out.transmits
            .iter()
            .filter(|t| t.to == Recipient::Archive)
            .count()
    };
    assert_eq!(archived(&add(&mut a, 1, "x")), 0);
    a.set_archiving(true);
    let out = add(&mut a, 2, "y");
    assert_eq!(archived(&out), 1);
    assert!(
        out.transmits
            .iter()
            .all(|t| t.archive == (t.to == Recipient::Archive))
    );
    let frame = &out.transmits.iter().find(|t| t.archive).unwrap().bytes;
    let mut d = node(4, 0);
    d.handle_archived(a.id(), frame);
    assert_eq!(elements(&d), ["y"]);
}
