//! Batch and single Ed25519 verification agree on every input, including signatures crafted with
//! torsion: `R' = r·B + T` or `A' = a·B + T` for a small-order point `T`, with `s` computed so
//! that the prime-order part of the equation holds (the cases that a cofactorless batch equation
//! with its random coefficients accepts some of the time while strict single verification
//! refuses them).

use chrysalis_crypto::{SigningKey, ed25519_verify, ed25519_verify_batch};
use curve25519_dalek::{constants::EIGHT_TORSION, edwards::EdwardsPoint, scalar::Scalar};
use proptest::prelude::*;
use sha2::{Digest, Sha512};

/// A scalar derived from `label` and `seed`.
fn scalar(label: &[u8], seed: u64) -> Scalar {
    let wide: [u8; 64] = Sha512::new()
        .chain_update(label)
        .chain_update(seed.to_le_bytes())
        .finalize()
        .into();
    Scalar::from_bytes_mod_order_wide(&wide)
}

/// A signature on `message` whose `R` carries `EIGHT_TORSION[r_torsion]` and whose key carries
/// `EIGHT_TORSION[a_torsion]`; `s = r + k·a` with `k = H(R ‖ A ‖ M)` over the published bytes.
fn crafted(seed: u64, r_torsion: usize, a_torsion: usize, message: &[u8]) -> ([u8; 32], [u8; 64]) {
    let a = scalar(b"a", seed);
    let r = scalar(b"r", seed);
    let public = (EdwardsPoint::mul_base(&a) + EIGHT_TORSION[a_torsion]).compress();
    let big_r = (EdwardsPoint::mul_base(&r) + EIGHT_TORSION[r_torsion]).compress();
    let k: [u8; 64] = Sha512::new()
        .chain_update(big_r.as_bytes())
        .chain_update(public.as_bytes())
        .chain_update(message)
        .finalize()
        .into();
    let s = r + Scalar::from_bytes_mod_order_wide(&k) * a;
    let mut signature = [0u8; 64];
    signature[..32].copy_from_slice(big_r.as_bytes());
    signature[32..].copy_from_slice(s.as_bytes());
    (public.to_bytes(), signature)
}

#[derive(Clone)]
struct Item {
    key: [u8; 32],
    message: Vec<u8>,
    signature: [u8; 64],
}

fn single(item: &Item) -> bool {
    ed25519_verify(&item.key, &item.message, &item.signature)
}

fn batch(items: &[Item]) -> bool {
    let keys: Vec<&[u8]> = items.iter().map(|i| &i.key[..]).collect();
    let messages: Vec<&[u8]> = items.iter().map(|i| &i.message[..]).collect();
    let signatures: Vec<&[u8]> = items.iter().map(|i| &i.signature[..]).collect();
    ed25519_verify_batch(&keys, &messages, &signatures).unwrap()
}

fn item(seed: u64, r_torsion: usize, a_torsion: usize) -> Item {
    let message = format!("message {seed}").into_bytes();
    let (key, signature) = crafted(seed, r_torsion, a_torsion, &message);
    Item {
        key,
        message,
        signature,
    }
}

fn honest(seed: u8) -> Item {
    let key = SigningKey::from_seed(&[seed; 32]).unwrap();
    let message = vec![seed; usize::from(seed)];
    Item {
        key: key.public_key(),
        signature: key.sign(&message),
        message,
    }
}

#[test]
fn the_crafting_is_right_without_torsion() {
    for seed in 0..20 {
        let clean = item(seed, 0, 0);
        assert!(single(&clean) && batch(&[clean]), "seed {seed}");
    }
}

/// 200 signatures with a torsioned `R` (every non-zero torsion point), each alone in a batch:
/// the batch answer must be the single answer (strict verification refuses all of them).
#[test]
fn torsioned_r_is_refused_by_batch_as_by_single() {
    let mut disagreements = Vec::new();
    for seed in 0..200u64 {
        let torsion = 1 + (seed % 7) as usize;
        let crafted = item(seed, torsion, 0);
        assert!(
            !single(&crafted),
            "strict verification refuses R + T (seed {seed})"
        );
        if batch(std::slice::from_ref(&crafted)) {
            disagreements.push(seed);
        }
    }
    assert!(
        disagreements.is_empty(),
        "batch accepted {} of 200 torsioned-R signatures that single refuses: seeds {disagreements:?}",
        disagreements.len()
    );
}

/// Keys with a torsion component: single verification accepts such a signature only when
/// `k·T` happens to vanish; batch must give the same answer every time.
#[test]
fn torsioned_keys_get_the_same_answer_from_batch_and_single() {
    for seed in 0..200u64 {
        let torsion = 1 + (seed % 7) as usize;
        let crafted = item(seed, 0, torsion);
        assert_eq!(
            batch(std::slice::from_ref(&crafted)),
            single(&crafted),
            "seed {seed}, torsion {torsion}"
        );
    }
}

/// Malformed encodings of `R` and `A`: small order, non-canonical, not on the curve.
#[test]
fn bad_encodings_get_the_same_answer_from_batch_and_single() {
    let base = honest(7);
    let mut cases = Vec::new();
    // The identity, a point of order 2, and y = p (a non-canonical encoding of y = 0) and
    // y = p + 1 (of the identity).
    let mut p_plus_1 = [0xffu8; 32];
    p_plus_1[0] = 0xee;
    p_plus_1[31] = 0x7f;
    let mut p_bytes = p_plus_1;
    p_bytes[0] = 0xed;
    let small_order: Vec<[u8; 32]> = EIGHT_TORSION.iter().map(|t| t.compress().0).collect();
    for bad in small_order
        .iter()
        .copied()
        .chain([p_bytes, p_plus_1, [0xff; 32]])
    {
        let mut r_bad = base.clone();
        r_bad.signature[..32].copy_from_slice(&bad);
        cases.push(r_bad);
        cases.push(Item {
            key: bad,
            message: base.message.clone(),
            signature: base.signature,
        });
    }
    for case in &cases {
        assert!(!single(case));
        assert!(!batch(std::slice::from_ref(case)));
        assert!(!batch(&[honest(1), case.clone(), honest(2)]));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Random mixes of honest, torsioned-R, torsioned-key and altered signatures: a batch is
    /// valid exactly when every one of its signatures is.
    #[test]
    fn batch_equals_all_single(
        specs in proptest::collection::vec((any::<u64>(), 0usize..8, 0usize..8, 0u8..4), 1..8)
    ) {
        let items: Vec<Item> = specs
            .iter()
            .map(|&(seed, r_torsion, a_torsion, alter)| {
                let mut it = item(seed, r_torsion, a_torsion);
                match alter {
                    1 => it.message.push(0),
                    2 => it.signature[40] ^= 1,
                    _ => {}
                }
                it
            })
            .collect();
        let expected = items.iter().all(single);
        prop_assert_eq!(batch(&items), expected);
    }
}
