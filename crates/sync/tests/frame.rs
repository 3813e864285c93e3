//! Frames: round trips, every single-byte corruption refused, a frame counts only under its
//! signer's key, arbitrary bytes never panic, the size bound checked first, and the replay
//! window.

use chrysalis_crypto::SigningKey;
use chrysalis_sync::{
    DEFAULT_MAX_FRAME, FRAME_OVERHEAD, FRAME_VERSION, FrameKind, MAX_REMEMBERED_SENDERS,
    REPLAY_WINDOW, ReplayGuard, SignedFrame, SyncError, room_id,
};
use proptest::prelude::*;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_seed(&[seed; 32]).unwrap()
}

/// Decodes `bytes` as signed by `signer` in the room named "".
fn decode<'a>(bytes: &'a [u8], signer: &SigningKey) -> Result<SignedFrame<'a>, SyncError> {
    SignedFrame::decode(bytes, DEFAULT_MAX_FRAME, &room_id(""), &signer.public_key())
}

#[test]
fn a_frame_round_trips_under_its_signers_key() {
    let alice = key(1);
    let bytes = SignedFrame::encode(&alice, &room_id(""), FrameKind::Gossip, 42, b"delta bytes");
    assert_eq!(bytes.len(), FRAME_OVERHEAD + 11);
    assert_eq!(FRAME_OVERHEAD, 74, "version, kind, sequence and signature");
    assert_eq!(SignedFrame::peek_seq(&bytes), Some(42));
    let frame = decode(&bytes, &alice).unwrap().into_frame();
    assert_eq!(frame.kind, FrameKind::Gossip);
    assert_eq!(frame.sender, alice.public_key());
    assert_eq!(frame.seq, 42);
    assert_eq!(frame.payload, b"delta bytes");
    let empty = SignedFrame::encode(&alice, &room_id(""), FrameKind::Heartbeat, 0, b"");
    assert!(decode(&empty, &alice).unwrap().frame().payload.is_empty());
}

#[test]
fn forged_relabelled_oversized_and_malformed_frames_are_refused_with_their_reason() {
    let (alice, mallory) = (key(1), key(2));
    let good = SignedFrame::encode(&alice, &room_id(""), FrameKind::Deltas, 7, b"payload");
    let code = |bytes: &[u8]| decode(bytes, &alice).unwrap_err().code();
    // Mallory's frame claimed as Alice's (the link names the signer): it does not verify.
    let forged = SignedFrame::encode(&mallory, &room_id(""), FrameKind::Deltas, 7, b"payload");
    assert_eq!(code(&forged), "BAD_SIGNATURE");
    // Alice's frame claimed as Mallory's, by a relay relabelling it: neither.
    assert_eq!(decode(&good, &mallory).unwrap_err().code(), "BAD_SIGNATURE");
    // Re-labelling the kind or the sequence, or cutting the payload, breaks the signature.
    let mut relabelled = good.clone();
    relabelled[1] = 1;
    assert_eq!(code(&relabelled), "BAD_SIGNATURE");
    let mut resequenced = good.clone();
    resequenced[2] ^= 1;
    assert_eq!(code(&resequenced), "BAD_SIGNATURE");
    let cut = [&good[..12], &good[good.len() - 64..]].concat();
    assert_eq!(code(&cut), "BAD_SIGNATURE");
    assert_eq!(code(&[good.as_slice(), b"x"].concat()), "BAD_SIGNATURE");
    let mut version = good.clone();
    version[0] = 3; // the version whose frames named their signer
    assert_eq!(code(&version), "BAD_VERSION");
    assert_eq!(SignedFrame::peek_seq(&version), None);
    let mut kind = good.clone();
    kind[1] = 99;
    assert_eq!(code(&kind), "UNKNOWN_KIND");
    assert_eq!(code(&good[..5]), "TRUNCATED");
    assert_eq!(code(&good[..FRAME_OVERHEAD - 1]), "TRUNCATED");
    assert_eq!(
        SignedFrame::decode(&good, good.len() - 1, &room_id(""), &alice.public_key()),
        Err(SyncError::Oversized {
            size: good.len(),
            limit: good.len() - 1
        })
    );
}

#[test]
fn the_replay_guard_accepts_each_sequence_once_within_its_window() {
    let (a, b) = ([1u8; 32], [2u8; 32]);
    let mut guard = ReplayGuard::new();
    guard.accept(&a, 10).unwrap();
    assert_eq!(guard.accept(&a, 10), Err(SyncError::Replayed(10)));
    guard.accept(&b, 10).unwrap(); // senders are independent
    guard.accept(&a, 12).unwrap();
    guard.accept(&a, 11).unwrap(); // late but new: reordering is fine
    assert_eq!(guard.accept(&a, 11).unwrap_err().code(), "REPLAYED");
    guard.accept(&a, 12 + REPLAY_WINDOW).unwrap();
    assert_eq!(guard.accept(&a, 12).unwrap_err().code(), "TOO_OLD");
    guard.accept(&a, 13).unwrap(); // the oldest number still inside the window
}

/// Regression: a peer's replay window was forgotten when it left, so its old frames replayed
/// once it rejoined. Windows now outlive connections, bounded by the least recently heard.
#[test]
fn the_replay_guard_remembers_senders_within_its_bound() {
    let mut guard = ReplayGuard::new();
    let a = [1u8; 32];
    guard.accept(&a, 500).unwrap();
    for i in 0..MAX_REMEMBERED_SENDERS as u32 - 1 {
        let mut other = [0u8; 32];
        other[..4].copy_from_slice(&(i + 10).to_le_bytes());
        guard.accept(&other, 1).unwrap();
    }
    assert_eq!(guard.accept(&a, 500).unwrap_err().code(), "REPLAYED");
    assert_eq!(guard.len(), MAX_REMEMBERED_SENDERS);
    // One more sender: the least recently heard is forgotten, never more than the bound.
    guard.accept(&[0xee; 32], 1).unwrap();
    assert_eq!(guard.len(), MAX_REMEMBERED_SENDERS);
}

/// Regression: a frame of room A was accepted in room B.
#[test]
fn a_frame_of_one_room_is_refused_in_another() {
    let alice = key(1);
    let bytes = SignedFrame::encode(&alice, &room_id("room A"), FrameKind::Gossip, 1, b"delta");
    let id = alice.public_key();
    assert!(SignedFrame::decode(&bytes, DEFAULT_MAX_FRAME, &room_id("room A"), &id).is_ok());
    assert_eq!(
        SignedFrame::decode(&bytes, DEFAULT_MAX_FRAME, &room_id("room B"), &id),
        Err(SyncError::BadSignature)
    );
}

/// Regression (review of version 3): the signature covered the bare 32-byte digest, so any
/// signature the identity key made over 32 bytes (an application answering a challenge with it)
/// was a frame of the attacker's choosing. The domain is in the signed message itself.
#[test]
fn a_signature_over_the_bare_digest_is_not_a_frame() {
    let victim = key(5);
    let room = room_id("room");
    let mut signed = vec![FRAME_VERSION, 1];
    signed.extend_from_slice(&(1u64 << 40).to_le_bytes());
    signed.extend_from_slice(b"written by mallory");
    let mut hasher = blake3::Hasher::new_derive_key("chrysalis-sync frame v4");
    hasher.update(&room);
    hasher.update(&victim.public_key());
    hasher.update(&signed);
    // The oracle: the victim signs 32 bytes someone handed it.
    let signature = victim.sign(hasher.finalize().as_bytes());
    let forged = [signed, signature.to_vec()].concat();
    assert_eq!(
        SignedFrame::decode(&forged, DEFAULT_MAX_FRAME, &room, &victim.public_key()),
        Err(SyncError::BadSignature)
    );
}

proptest! {
    #[test]
    fn any_single_byte_change_is_refused(
        payload in proptest::collection::vec(any::<u8>(), 0..200),
        seq in any::<u64>(),
        at in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let bytes = SignedFrame::encode(&key(3), &room_id(""), FrameKind::Digest, seq, &payload);
        let mut corrupt = bytes.clone();
        let i = at.index(corrupt.len());
        corrupt[i] ^= flip;
        prop_assert!(decode(&corrupt, &key(3)).is_err());
        prop_assert_eq!(decode(&bytes, &key(3)).unwrap().frame().seq, seq);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = decode(&bytes, &key(3));
        let _ = SignedFrame::peek_seq(&bytes);
    }

    #[test]
    fn the_guard_matches_a_model_of_accepted_sequences(seqs in proptest::collection::vec(0u64..400, 1..300)) {
        let sender = [9u8; 32];
        let mut guard = ReplayGuard::new();
        let mut accepted = std::collections::BTreeSet::new();
        let mut newest: Option<u64> = None;
        for seq in seqs {
            let result = guard.accept(&sender, seq);
            let too_old = newest.is_some_and(|n| seq + REPLAY_WINDOW <= n);
            if accepted.contains(&seq) && !too_old {
                prop_assert_eq!(result, Err(SyncError::Replayed(seq)));
            } else if too_old {
                prop_assert_eq!(result.unwrap_err().code(), "TOO_OLD");
            } else {
                prop_assert_eq!(result, Ok(()));
                accepted.insert(seq);
                newest = Some(newest.map_or(seq, |n| n.max(seq)));
            }
        }
    }
}

#[test]
fn an_addressed_frame_verifies_only_at_its_recipient() {
    let (alice, bob, carol) = (key(1), key(2), key(3));
    let room = room_id("");
    let (b, c) = (bob.public_key(), carol.public_key());
    let bytes = SignedFrame::encode_to(&alice, &room, &b, FrameKind::Deltas, 9, b"for bob");
    assert_eq!(
        bytes.len(),
        FRAME_OVERHEAD + 7,
        "the recipient is not on the wire"
    );
    fn at<'a>(
        bytes: &'a [u8],
        signer: &SigningKey,
        receiver: Option<&[u8; 32]>,
    ) -> Result<SignedFrame<'a>, SyncError> {
        let room = room_id("");
        SignedFrame::decode_at(
            bytes,
            DEFAULT_MAX_FRAME,
            &room,
            &signer.public_key(),
            receiver,
        )
    }
    let frame = at(&bytes, &alice, Some(&b)).unwrap().into_frame();
    assert!(frame.addressed);
    assert_eq!(
        (frame.kind, frame.seq, frame.payload),
        (FrameKind::Deltas, 9, &b"for bob"[..])
    );
    // Handed to Carol, or read as a frame for everyone, or with its flag cleared: refused.
    assert_eq!(
        at(&bytes, &alice, Some(&c)).unwrap_err().code(),
        "BAD_SIGNATURE"
    );
    assert_eq!(decode(&bytes, &alice).unwrap_err().code(), "BAD_SIGNATURE");
    let mut unflagged = bytes.clone();
    unflagged[1] &= 0x7f;
    assert_eq!(
        at(&unflagged, &alice, Some(&b)).unwrap_err().code(),
        "BAD_SIGNATURE"
    );
    // A frame for everyone verifies at any receiver, and says it was not addressed.
    let everyone = SignedFrame::encode(&alice, &room, FrameKind::Gossip, 10, b"all");
    assert!(!at(&everyone, &alice, Some(&c)).unwrap().frame().addressed);
    let mut flagged = everyone.clone();
    flagged[1] |= 0x80;
    assert_eq!(
        at(&flagged, &alice, Some(&c)).unwrap_err().code(),
        "BAD_SIGNATURE"
    );
}
