//! Ed25519 signatures (RFC 8032) over `ed25519-dalek`, verified strictly (also in batches).

use ed25519_dalek::{Signature, Signer, VerifyingKey};
use zeroize::Zeroizing;

use crate::{CryptoError, random_array};

/// Length of an Ed25519 seed (secret key) in bytes.
pub const ED25519_SEED_LEN: usize = 32;
/// Length of an Ed25519 public key in bytes.
pub const ED25519_PUBLIC_KEY_LEN: usize = 32;
/// Length of an Ed25519 signature in bytes.
pub const ED25519_SIGNATURE_LEN: usize = 64;

/// An Ed25519 signing key. The secret is zeroized on drop and never printed.
pub struct SigningKey {
    inner: ed25519_dalek::SigningKey,
}

impl SigningKey {
    /// A fresh key from the platform's secure random source.
    pub fn generate() -> Result<Self, CryptoError> {
        let seed = Zeroizing::new(random_array::<ED25519_SEED_LEN>()?);
        Ok(Self::from_seed_array(&seed))
    }

    /// The key whose 32-byte seed is `seed` (RFC 8032's "private key").
    pub fn from_seed(seed: &[u8]) -> Result<Self, CryptoError> {
        let seed: Zeroizing<[u8; ED25519_SEED_LEN]> =
            Zeroizing::new(seed.try_into().map_err(|_| {
                CryptoError::bad_length("Ed25519 seed", ED25519_SEED_LEN, seed.len())
            })?);
        Ok(Self::from_seed_array(&seed))
    }

    fn from_seed_array(seed: &[u8; ED25519_SEED_LEN]) -> Self {
        SigningKey {
            inner: ed25519_dalek::SigningKey::from_bytes(seed),
        }
    }

    /// The 32-byte public key.
    pub fn public_key(&self) -> [u8; ED25519_PUBLIC_KEY_LEN] {
        self.inner.verifying_key().to_bytes()
    }

    /// The 32-byte seed, in a buffer that is zeroized on drop. Handle with care.
    pub fn seed(&self) -> Zeroizing<[u8; ED25519_SEED_LEN]> {
        Zeroizing::new(self.inner.to_bytes())
    }

    /// The 64-byte signature of `message` (deterministic, RFC 8032).
    pub fn sign(&self, message: &[u8]) -> [u8; ED25519_SIGNATURE_LEN] {
        self.inner.sign(message).to_bytes()
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("public_key", &PublicKeyHex(&self.public_key()))
            .finish_non_exhaustive()
    }
}

struct PublicKeyHex<'a>(&'a [u8]);

impl std::fmt::Debug for PublicKeyHex<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// Whether a 32-byte point encoding is canonical: its `y` (the low 255 bits) is below
/// `p = 2^255 - 19`. (`x = 0` with the sign bit set is the other non-canonical form; it only
/// occurs for `y = ±1`, small-order points that are refused anyway.)
fn is_canonical_y(bytes: &[u8; 32]) -> bool {
    let top_all_ones = bytes[31] & 0x7f == 0x7f && bytes[1..31].iter().all(|&b| b == 0xff);
    !(top_all_ones && bytes[0] >= 0xed)
}

/// Parses a public key and signature, rejecting wrong lengths, non-canonical encodings of `A`
/// and `R` and a point `A` that does not decode. `verify_strict` then refuses small-order `A`
/// and `R`, an `R` that does not decode and a non-reduced `S`.
fn parse_strict(public_key: &[u8], signature: &[u8]) -> Option<(VerifyingKey, Signature)> {
    let public_key: &[u8; ED25519_PUBLIC_KEY_LEN] = public_key.try_into().ok()?;
    let signature: &[u8; ED25519_SIGNATURE_LEN] = signature.try_into().ok()?;
    let r: &[u8; 32] = signature[..32].try_into().ok()?;
    // `decompress` reduces `y` modulo p, so canonicity is checked on the bytes.
    if !is_canonical_y(public_key) || !is_canonical_y(r) {
        return None;
    }
    let key = VerifyingKey::from_bytes(public_key).ok()?;
    Some((key, Signature::from_bytes(signature)))
}

/// Strict Ed25519 verification: `true` only for a valid signature by `public_key` on `message`.
/// Rejects non-canonical `S`, non-canonical and small-order `A` and `R`, and wrong lengths
/// (returns `false`, never an error). The equation is the cofactorless `[S]B = R + [k]A`,
/// compared on the encoding of `R`, so an `R` with a torsion component never verifies.
pub fn ed25519_verify(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    parse_strict(public_key, signature)
        .is_some_and(|(key, sig)| key.verify_strict(message, &sig).is_ok())
}

/// Verifies many signatures: `true` exactly when [`ed25519_verify`] accepts every one of them.
///
/// Each signature is verified on its own, stopping at the first invalid one. This is on purpose:
/// a multi-scalar batch equation (`ed25519_dalek::verify_batch`) cannot see a torsion component
/// of `R` or `A` and accepted, depending on its random coefficients, signatures that strict
/// verification refuses, so peers checking the same frames one by one or in batches disagreed.
/// Closing that gap in the batch costs two variable-base scalar multiplications per signature
/// (subgroup checks of `R` and `A`), more than verifying the signature alone.
/// Lists of different lengths give an error.
pub fn ed25519_verify_batch(
    public_keys: &[&[u8]],
    messages: &[&[u8]],
    signatures: &[&[u8]],
) -> Result<bool, CryptoError> {
    if public_keys.len() != messages.len() || signatures.len() != messages.len() {
        return Err(CryptoError::BadParams {
            what: "batch",
            reason: format!(
                "{} public keys, {} messages and {} signatures: the three lists must have the same length",
                public_keys.len(),
                messages.len(),
                signatures.len()
            ),
        });
    }
    Ok(public_keys
        .iter()
        .zip(messages)
        .zip(signatures)
        .all(|((key, message), signature)| ed25519_verify(key, message, signature)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8032_test_1() {
        let seed = hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
        let key = SigningKey::from_seed(&seed).unwrap();
        assert_eq!(
            key.public_key().to_vec(),
            hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
        );
        let sig = key.sign(b"");
        assert_eq!(
            sig.to_vec(),
            hex(
                "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
            )
        );
        assert!(ed25519_verify(&key.public_key(), b"", &sig));
        assert!(!ed25519_verify(&key.public_key(), b"x", &sig));
        assert!(!ed25519_verify(&key.public_key()[..31], b"", &sig));
    }

    #[test]
    fn generated_keys_sign_and_batch_verify() {
        let keys: Vec<SigningKey> = (0..5).map(|_| SigningKey::generate().unwrap()).collect();
        let pks: Vec<[u8; 32]> = keys.iter().map(SigningKey::public_key).collect();
        let msgs: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; i as usize * 10]).collect();
        let sigs: Vec<[u8; 64]> = keys.iter().zip(&msgs).map(|(k, m)| k.sign(m)).collect();
        let pk_refs: Vec<&[u8]> = pks.iter().map(|p| &p[..]).collect();
        let msg_refs: Vec<&[u8]> = msgs.iter().map(|m| &m[..]).collect();
        let mut sig_refs: Vec<&[u8]> = sigs.iter().map(|s| &s[..]).collect();
        assert!(ed25519_verify_batch(&pk_refs, &msg_refs, &sig_refs).unwrap());
        sig_refs.swap(0, 1);
        assert!(!ed25519_verify_batch(&pk_refs, &msg_refs, &sig_refs).unwrap());
        assert_eq!(
            ed25519_verify_batch(&pk_refs[..4], &msg_refs, &sig_refs)
                .unwrap_err()
                .code(),
            "BAD_PARAMS"
        );
        assert!(ed25519_verify_batch(&[], &[], &[]).unwrap());
    }

    /// `y + p` for small `y` is a non-canonical encoding; for some `y` it decodes (reduced
    /// modulo p) to a point of large order, which `VerifyingKey::from_bytes` accepts.
    #[test]
    fn non_canonical_encodings_of_a_and_r_are_refused() {
        let key = SigningKey::from_seed(&[3u8; 32]).unwrap();
        let sig = key.sign(b"m");
        let mut refused = 0;
        for y in 2u8..19 {
            let mut non_canonical = [0xffu8; 32];
            non_canonical[31] = 0x7f;
            non_canonical[0] = 0xed + y;
            let mut canonical = [0u8; 32];
            canonical[0] = y;
            let Some(point) =
                curve25519_dalek::edwards::CompressedEdwardsY(non_canonical).decompress()
            else {
                continue;
            };
            if point.is_small_order() {
                continue;
            }
            assert_eq!(point.compress().0, canonical);
            assert!(parse_strict(&canonical, &sig).is_some(), "y = {y}");
            assert!(
                parse_strict(&non_canonical, &sig).is_none(),
                "A with y = {y} + p"
            );
            let mut r_non_canonical = sig;
            r_non_canonical[..32].copy_from_slice(&non_canonical);
            assert!(
                parse_strict(&key.public_key(), &r_non_canonical).is_none(),
                "R with y = {y} + p"
            );
            refused += 1;
        }
        assert!(refused > 0, "some y + p decodes to a large-order point");
    }

    #[test]
    fn debug_shows_only_the_public_key() {
        let key = SigningKey::from_seed(&[9u8; 32]).unwrap();
        let debug = format!("{key:?}");
        assert!(debug.contains(&format!("{:?}", PublicKeyHex(&key.public_key()))));
        assert!(!debug.contains("0909090909"));
    }

    fn hex(s: &str) -> Vec<u8> {
        ::hex::decode(s).unwrap()
    }
}
