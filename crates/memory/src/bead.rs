//! Beads: signed, content-addressed memory items.
//!
//! A bead's id is the BLAKE3 hash of its canonical encoding (every field but the signature, in
//! a fixed order, postcard-encoded, tags sorted and distinct); its author signs the id. A bead
//! from a peer is stored only if both check out.

use chrysalis_crdt::Hlc;
use serde::{Deserialize, Serialize};

use crate::MemoryError;
use crate::identity::{Identity, PublicKey, Signature, check, signed_message};

/// A bead id: BLAKE3 of the canonical content.
pub type BeadId = [u8; 32];

/// The largest bead content, in bytes.
pub const MAX_CONTENT: usize = 64 * 1024;
/// The most tags on a bead.
pub const MAX_TAGS: usize = 32;
/// The longest tag, kind or model name, in bytes.
pub const MAX_LABEL: usize = 64;
/// The most dimensions of a bead's embedding.
pub const MAX_DIMS: usize = 4096;

const CANONICAL_VERSION: u8 = 1;

/// An embedding with the model that made it; vectors of different models are never compared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BeadEmbedding {
    /// Model id (`"all-MiniLM-L6-v2"`, …).
    pub model: String,
    /// The vector; its length is the dimension count.
    pub vector: Vec<f32>,
}

/// What an agent wants to remember, before it is signed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BeadDraft {
    /// The text.
    pub content: String,
    /// A free-form kind (`"note"`, `"fact"`, `"observation"`, …).
    pub kind: String,
    /// Labels for filtering (sorted and made distinct on signing).
    pub tags: Vec<String>,
    /// The content's embedding, if one was computed.
    pub embedding: Option<BeadEmbedding>,
}

/// A signed memory item.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Bead {
    /// BLAKE3 of the canonical content.
    pub id: BeadId,
    /// The text.
    pub content: String,
    /// The kind.
    pub kind: String,
    /// Sorted, distinct labels.
    pub tags: Vec<String>,
    /// The embedding, if any.
    pub embedding: Option<BeadEmbedding>,
    /// The author's public key.
    pub author: PublicKey,
    /// When it was made (hybrid logical clock of the author's replica).
    pub created: Hlc,
    /// The author's Ed25519 signature over the id.
    pub signature: Signature,
}

/// Beads are equal when their ids and signatures are: the id covers every other field.
impl PartialEq for Bead {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id && self.signature == other.signature
    }
}
impl Eq for Bead {}
impl PartialOrd for Bead {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Bead {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.id, self.signature).cmp(&(other.id, other.signature))
    }
}

#[derive(Serialize)]
struct Canonical<'a> {
    version: u8,
    content: &'a str,
    kind: &'a str,
    tags: &'a [String],
    embedding: Option<&'a BeadEmbedding>,
    author: &'a PublicKey,
    created: &'a Hlc,
}

/// Sorts and de-duplicates tags and checks every field's limits.
fn normalise(draft: &mut BeadDraft) -> Result<(), MemoryError> {
    draft.tags.sort_unstable();
    draft.tags.dedup();
    check_fields(
        &draft.content,
        &draft.kind,
        &draft.tags,
        draft.embedding.as_ref(),
    )
}

fn check_fields(
    content: &str,
    kind: &str,
    tags: &[String],
    embedding: Option<&BeadEmbedding>,
) -> Result<(), MemoryError> {
    if content.is_empty() || content.len() > MAX_CONTENT {
        return Err(MemoryError::bad_input(
            "content",
            format!("{} bytes; 1 to {MAX_CONTENT} are allowed", content.len()),
        ));
    }
    if kind.is_empty() || kind.len() > MAX_LABEL {
        return Err(MemoryError::bad_input(
            "kind",
            format!("1 to {MAX_LABEL} bytes"),
        ));
    }
    if tags.len() > MAX_TAGS || tags.iter().any(|t| t.is_empty() || t.len() > MAX_LABEL) {
        return Err(MemoryError::bad_input(
            "tags",
            format!("up to {MAX_TAGS} tags of 1 to {MAX_LABEL} bytes"),
        ));
    }
    if !tags.windows(2).all(|w| w[0] < w[1]) {
        return Err(MemoryError::bad_input("tags", "not sorted and distinct"));
    }
    if let Some(e) = embedding {
        if e.model.is_empty() || e.model.len() > MAX_LABEL {
            return Err(MemoryError::bad_input(
                "embedding.model",
                format!("1 to {MAX_LABEL} bytes"),
            ));
        }
        if e.vector.is_empty() || e.vector.len() > MAX_DIMS {
            return Err(MemoryError::bad_input(
                "embedding.vector",
                format!("{} dimensions; 1 to {MAX_DIMS} are allowed", e.vector.len()),
            ));
        }
        if e.vector.iter().any(|x| !x.is_finite()) {
            return Err(MemoryError::bad_input(
                "embedding.vector",
                "a non-finite entry",
            ));
        }
    }
    Ok(())
}

fn id_of(
    content: &str,
    kind: &str,
    tags: &[String],
    embedding: Option<&BeadEmbedding>,
    author: &PublicKey,
    created: &Hlc,
) -> BeadId {
    let canonical = Canonical {
        version: CANONICAL_VERSION,
        content,
        kind,
        tags,
        embedding,
        author,
        created,
    };
    let bytes = postcard::to_allocvec(&canonical).expect("beads encode");
    blake3::keyed_hash(blake3::hash(b"chrysalis bead id v1").as_bytes(), &bytes).into()
}

fn signed_id(id: &BeadId) -> Vec<u8> {
    signed_message("chrysalis bead v1", &[id])
}

impl Bead {
    /// Signs `draft` as `author` at `created`.
    pub fn create(
        author: &Identity,
        mut draft: BeadDraft,
        created: Hlc,
    ) -> Result<Bead, MemoryError> {
        normalise(&mut draft)?;
        let key = author.public_key();
        let id = id_of(
            &draft.content,
            &draft.kind,
            &draft.tags,
            draft.embedding.as_ref(),
            &key,
            &created,
        );
        Ok(Bead {
            id,
            signature: author.sign(&signed_id(&id)),
            content: draft.content,
            kind: draft.kind,
            tags: draft.tags,
            embedding: draft.embedding,
            author: key,
            created,
        })
    }

    /// Checks the fields' limits, that the id is the hash of the content, and the author's
    /// signature.
    pub fn verify(&self) -> Result<(), MemoryError> {
        check_fields(
            &self.content,
            &self.kind,
            &self.tags,
            self.embedding.as_ref(),
        )?;
        let id = id_of(
            &self.content,
            &self.kind,
            &self.tags,
            self.embedding.as_ref(),
            &self.author,
            &self.created,
        );
        if id != self.id {
            return Err(MemoryError::IdMismatch);
        }
        check(&self.author, &signed_id(&self.id), &self.signature, "bead")
    }
}

/// A bead id in hex (for the JS face and logs).
pub fn bead_id_hex(id: &BeadId) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrysalis_crdt::ReplicaId;

    fn draft(content: &str) -> BeadDraft {
        BeadDraft {
            content: content.into(),
            kind: "note".into(),
            tags: vec!["b".into(), "a".into(), "b".into()],
            embedding: Some(BeadEmbedding {
                model: "m".into(),
                vector: vec![0.5, -0.25, 1.0],
            }),
        }
    }

    fn at(millis: u64) -> Hlc {
        Hlc {
            millis,
            logical: 0,
            replica: ReplicaId(1),
        }
    }

    #[test]
    fn beads_are_content_addressed_and_signed() {
        let me = Identity::from_seed(&[7; 32]).unwrap();
        let bead = Bead::create(&me, draft("hello"), at(5)).unwrap();
        bead.verify().unwrap();
        assert_eq!(bead.tags, vec!["a", "b"]);
        let same = Bead::create(&me, draft("hello"), at(5)).unwrap();
        assert_eq!(same.id, bead.id, "deterministic");
        assert_ne!(
            Bead::create(&me, draft("hello"), at(6)).unwrap().id,
            bead.id
        );
        let bytes = postcard::to_allocvec(&bead).unwrap();
        let back: Bead = postcard::from_bytes(&bytes).unwrap();
        back.verify().unwrap();
    }

    #[test]
    fn tampering_is_caught_as_id_mismatch_or_bad_signature() {
        let me = Identity::from_seed(&[7; 32]).unwrap();
        let mallory = Identity::from_seed(&[8; 32]).unwrap();
        let bead = Bead::create(&me, draft("pay alice 5"), at(5)).unwrap();
        let mut edited = bead.clone();
        edited.content = "pay mallory 500".into();
        assert_eq!(edited.verify().unwrap_err().code(), "ID_MISMATCH");
        let mut vector = bead.clone();
        vector.embedding.as_mut().unwrap().vector[0] = 0.75;
        assert_eq!(vector.verify().unwrap_err().code(), "ID_MISMATCH");
        // Re-addressed and re-signed by someone else, but still claiming to be by `me`.
        let mut forged = Bead::create(&mallory, draft("pay mallory 500"), at(5)).unwrap();
        forged.author = me.public_key();
        assert_eq!(forged.verify().unwrap_err().code(), "ID_MISMATCH");
        let mut resigned = bead.clone();
        resigned.signature = mallory.sign(&signed_id(&bead.id));
        assert_eq!(resigned.verify().unwrap_err().code(), "BAD_SIGNATURE");
    }

    #[test]
    fn drafts_out_of_bounds_are_refused() {
        let me = Identity::from_seed(&[7; 32]).unwrap();
        let mut empty = draft("");
        assert_eq!(
            Bead::create(&me, empty.clone(), at(1)).unwrap_err().code(),
            "BAD_INPUT"
        );
        empty.content = "x".repeat(MAX_CONTENT + 1);
        assert!(Bead::create(&me, empty, at(1)).is_err());
        let mut nan = draft("x");
        nan.embedding.as_mut().unwrap().vector[1] = f32::NAN;
        assert!(Bead::create(&me, nan, at(1)).is_err());
        let mut many = draft("x");
        many.tags = (0..=MAX_TAGS).map(|i| format!("t{i}")).collect();
        assert!(Bead::create(&me, many, at(1)).is_err());
    }
}
