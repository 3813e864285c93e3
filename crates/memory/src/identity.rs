//! Agent identity: an Ed25519 key, a short printable id, signed attestations and key rotation.

use chrysalis_crdt::ReplicaId;
use chrysalis_crypto::{SigningKey, blake3_derive_key, ed25519_verify};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::MemoryError;

/// An Ed25519 public key.
pub type PublicKey = [u8; 32];

/// Characters of an agent id: RFC 4648 base32, lower case.
const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// The printable id of the agent whose public key is `key`: 16 base32 characters (80 bits of
/// a BLAKE3 hash of the key), short enough for a UI, long enough not to collide by chance.
pub fn agent_id(key: &PublicKey) -> String {
    let hash = blake3_derive_key("chrysalis agent id v1", key);
    let mut bits: u128 = 0;
    for byte in &hash[..10] {
        bits = (bits << 8) | *byte as u128;
    }
    (0..16)
        .rev()
        .map(|i| BASE32[((bits >> (i * 5)) & 31) as usize] as char)
        .collect()
}

/// The CRDT replica id of the agent whose public key is `key` (64 bits of a hash of the key).
pub fn replica_of(key: &PublicKey) -> ReplicaId {
    let hash = blake3_derive_key("chrysalis replica id v1", key);
    ReplicaId(u64::from_le_bytes(hash[..8].try_into().expect("8 bytes")))
}

/// An Ed25519 signature (serialised as 64 bytes).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Signature(pub [u8; 64]);

impl std::fmt::Debug for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signature({:02x}{:02x}…)", self.0[0], self.0[1])
    }
}

impl Serialize for Signature {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Bytes;
        impl serde::de::Visitor<'_> for Bytes {
            type Value = Signature;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("64 signature bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Signature, E> {
                v.try_into()
                    .map(Signature)
                    .map_err(|_| E::invalid_length(v.len(), &self))
            }
        }
        d.deserialize_bytes(Bytes)
    }
}

/// The bytes an identity signs: a domain, then the parts, each with its length.
pub(crate) fn signed_message(domain: &str, parts: &[&[u8]]) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(domain.len() + 1 + parts.iter().map(|p| p.len() + 8).sum::<usize>());
    out.extend_from_slice(domain.as_bytes());
    out.push(0);
    for part in parts {
        out.extend_from_slice(&(part.len() as u64).to_le_bytes());
        out.extend_from_slice(part);
    }
    out
}

/// Checks `signature` by `signer` over `message`.
pub(crate) fn check(
    signer: &PublicKey,
    message: &[u8],
    signature: &Signature,
    what: &'static str,
) -> Result<(), MemoryError> {
    if ed25519_verify(signer, message, &signature.0) {
        Ok(())
    } else {
        Err(MemoryError::BadSignature(what))
    }
}

/// An agent: its signing key (held by the page's vault), public key and id.
pub struct Identity {
    key: SigningKey,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identity({})", self.id())
    }
}

impl Identity {
    /// A new random identity.
    pub fn generate() -> Result<Self, MemoryError> {
        SigningKey::generate()
            .map(|key| Identity { key })
            .map_err(|e| MemoryError::bad_input("identity", e.to_string()))
    }

    /// The identity of a 32-byte Ed25519 seed.
    pub fn from_seed(seed: &[u8]) -> Result<Self, MemoryError> {
        SigningKey::from_seed(seed)
            .map(|key| Identity { key })
            .map_err(|e| MemoryError::bad_input("seed", e.to_string()))
    }

    /// The seed, for the vault to keep.
    pub fn seed(&self) -> Zeroizing<[u8; 32]> {
        self.key.seed()
    }

    /// A second handle on the same key (for the agreement, which owns its key).
    pub fn signing_key(&self) -> SigningKey {
        SigningKey::from_seed(&*self.key.seed()).expect("a seed of the right length")
    }

    /// The public key.
    pub fn public_key(&self) -> PublicKey {
        self.key.public_key()
    }

    /// The printable id ([`agent_id`]).
    pub fn id(&self) -> String {
        agent_id(&self.public_key())
    }

    pub(crate) fn sign(&self, message: &[u8]) -> Signature {
        Signature(self.key.sign(message))
    }

    /// Signs `statement` at `time` (ms since the epoch).
    pub fn attest(&self, statement: &str, time: u64) -> Attestation {
        let signer = self.public_key();
        let signature = self.sign(&Attestation::message(statement, &signer, time));
        Attestation {
            statement: statement.to_owned(),
            signer,
            time,
            signature,
        }
    }

    /// Hands this identity over to `next`: both keys sign the rotation, the old one to
    /// authorise it, the new one to prove it is held.
    pub fn rotate_to(&self, next: &Identity, time: u64) -> KeyRotation {
        let (old, new) = (self.public_key(), next.public_key());
        let message = KeyRotation::message(&old, &new, time);
        KeyRotation {
            old,
            new,
            time,
            by_old: self.sign(&message),
            by_new: next.sign(&message),
        }
    }
}

/// A statement signed by an agent at a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attestation {
    /// What is attested.
    pub statement: String,
    /// Who signed.
    pub signer: PublicKey,
    /// When (ms since the epoch, the signer's clock).
    pub time: u64,
    /// Ed25519 over the domain, statement, signer and time.
    pub signature: Signature,
}

impl Attestation {
    fn message(statement: &str, signer: &PublicKey, time: u64) -> Vec<u8> {
        signed_message(
            "chrysalis attestation v1",
            &[statement.as_bytes(), signer, &time.to_le_bytes()],
        )
    }

    /// Checks the signature.
    pub fn verify(&self) -> Result<(), MemoryError> {
        let message = Self::message(&self.statement, &self.signer, self.time);
        check(&self.signer, &message, &self.signature, "attestation")
    }
}

/// A key rotation: `old` hands over to `new` at `time`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRotation {
    /// The retiring key.
    pub old: PublicKey,
    /// The key that takes over.
    pub new: PublicKey,
    /// When (ms since the epoch).
    pub time: u64,
    /// The old key's signature (authorises the rotation).
    pub by_old: Signature,
    /// The new key's signature (proves possession).
    pub by_new: Signature,
}

impl KeyRotation {
    fn message(old: &PublicKey, new: &PublicKey, time: u64) -> Vec<u8> {
        signed_message(
            "chrysalis key rotation v1",
            &[old, new, &time.to_le_bytes()],
        )
    }

    /// Checks both signatures.
    pub fn verify(&self) -> Result<(), MemoryError> {
        if self.old == self.new {
            return Err(MemoryError::bad_input(
                "rotation",
                "the new key is the old key",
            ));
        }
        let message = Self::message(&self.old, &self.new, self.time);
        check(&self.old, &message, &self.by_old, "key rotation (old key)")?;
        check(&self.new, &message, &self.by_new, "key rotation (new key)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_short_printable_and_stable() {
        let a = Identity::from_seed(&[1; 32]).unwrap();
        let id = a.id();
        assert_eq!(id.len(), 16);
        assert!(id.bytes().all(|b| BASE32.contains(&b)));
        assert_eq!(id, Identity::from_seed(&[1; 32]).unwrap().id());
        assert_ne!(id, Identity::from_seed(&[2; 32]).unwrap().id());
    }

    #[test]
    fn attestations_verify_and_tampering_is_caught() {
        let a = Identity::from_seed(&[3; 32]).unwrap();
        let att = a.attest("the sky is blue", 1_700_000_000_000);
        att.verify().unwrap();
        let mut lie = att.clone();
        lie.statement = "the sky is green".into();
        assert_eq!(lie.verify().unwrap_err().code(), "BAD_SIGNATURE");
        let mut late = att.clone();
        late.time += 1;
        assert!(late.verify().is_err());
        let bytes = postcard::to_allocvec(&att).unwrap();
        assert_eq!(postcard::from_bytes::<Attestation>(&bytes).unwrap(), att);
    }

    #[test]
    fn rotations_need_both_keys() {
        let (old, new, other) = (
            Identity::from_seed(&[4; 32]).unwrap(),
            Identity::from_seed(&[5; 32]).unwrap(),
            Identity::from_seed(&[6; 32]).unwrap(),
        );
        let rotation = old.rotate_to(&new, 10);
        rotation.verify().unwrap();
        let mut hijack = rotation.clone();
        hijack.new = other.public_key();
        assert!(
            hijack.verify().is_err(),
            "the old signature does not cover another key"
        );
        let mut forged = other.rotate_to(&new, 10);
        forged.old = old.public_key();
        assert!(forged.verify().is_err());
    }
}
