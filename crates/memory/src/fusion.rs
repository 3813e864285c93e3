//! Fusion of near-duplicate beads: beads that say the same thing (vectors of one model at
//! cosine ≥ `similarity` and word sets overlapping by ≥ `overlap`, or without comparable
//! vectors, words overlapping by ≥ `text_only_overlap`) are shown as one, with the provenance
//! of all.
//!
//! Fusion is a pure function of the set of beads: beads are taken in (creation time, id) order
//! and each joins the group of the earliest earlier representative it duplicates, else starts a
//! group. Candidates come from an exact inverted index, so every replica holding the same beads
//! forms the same groups, without any replica signing a merged bead.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::bead::{Bead, BeadId};
use crate::bm25::terms;
use crate::identity::PublicKey;
use crate::vector::{dot, unit};

/// When two beads count as duplicates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FusionConfig {
    /// Least cosine similarity of the two vectors.
    pub similarity: f32,
    /// Least Jaccard overlap of the two word sets, with comparable vectors.
    pub overlap: f32,
    /// Least Jaccard overlap when the vectors cannot be compared.
    pub text_only_overlap: f32,
}

impl Default for FusionConfig {
    fn default() -> Self {
        FusionConfig {
            similarity: 0.95,
            overlap: 0.5,
            text_only_overlap: 0.9,
        }
    }
}

/// A group of duplicates shown as one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fused {
    /// The earliest bead of the group (whose content is shown).
    pub representative: BeadId,
    /// Every bead of the group, earliest first (the representative included).
    pub members: Vec<BeadId>,
    /// The union of the members' tags.
    pub tags: Vec<String>,
    /// The members' authors, distinct.
    pub authors: Vec<PublicKey>,
}

struct Prepared<'a> {
    bead: &'a Bead,
    words: BTreeSet<String>,
    unit: Option<Vec<f32>>,
}

/// Groups `beads` into fused groups (singletons included), ordered by representative.
pub fn fuse<'a>(beads: impl IntoIterator<Item = &'a Bead>, config: &FusionConfig) -> Vec<Fused> {
    let mut ordered: Vec<Prepared<'a>> = beads
        .into_iter()
        .map(|bead| Prepared {
            bead,
            words: terms(&bead.content).into_iter().collect(),
            unit: bead.embedding.as_ref().and_then(|e| unit(&e.vector)),
        })
        .collect();
    ordered.sort_by_key(|p| (p.bead.created, p.bead.id));
    // Representatives by word: the candidates a later bead is compared with.
    let mut by_word: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut group_of: Vec<usize> = Vec::with_capacity(ordered.len());
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for i in 0..ordered.len() {
        let mut candidates: BTreeSet<usize> = BTreeSet::new();
        for word in &ordered[i].words {
            candidates.extend(by_word.get(word.as_str()).into_iter().flatten());
        }
        let found = candidates
            .into_iter()
            .find(|&r| duplicates(&ordered[r], &ordered[i], config));
        match found {
            Some(r) => {
                group_of.push(r);
                groups.entry(r).or_default().push(i);
            }
            None => {
                group_of.push(i);
                groups.insert(i, vec![i]);
                for word in &ordered[i].words {
                    by_word.entry(word.as_str()).or_default().push(i);
                }
            }
        }
    }
    groups
        .into_values()
        .map(|members| {
            let beads: Vec<&Bead> = members.iter().map(|&m| ordered[m].bead).collect();
            let tags: BTreeSet<&String> = beads.iter().flat_map(|b| &b.tags).collect();
            let authors: BTreeSet<PublicKey> = beads.iter().map(|b| b.author).collect();
            Fused {
                representative: beads[0].id,
                members: beads.iter().map(|b| b.id).collect(),
                tags: tags.into_iter().cloned().collect(),
                authors: authors.into_iter().collect(),
            }
        })
        .collect()
}

fn jaccard(a: &BTreeSet<String>, b: &BTreeSet<String>) -> f32 {
    let shared = a.intersection(b).count();
    let union = a.len() + b.len() - shared;
    if union == 0 {
        0.0
    } else {
        shared as f32 / union as f32
    }
}

fn duplicates(a: &Prepared<'_>, b: &Prepared<'_>, config: &FusionConfig) -> bool {
    let overlap = jaccard(&a.words, &b.words);
    let same_space = match (&a.bead.embedding, &b.bead.embedding) {
        (Some(x), Some(y)) => x.model == y.model && x.vector.len() == y.vector.len(),
        _ => false,
    };
    match (&a.unit, &b.unit) {
        (Some(x), Some(y)) if same_space => {
            overlap >= config.overlap && dot(x, y) >= config.similarity
        }
        _ => overlap >= config.text_only_overlap,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bead::{BeadDraft, BeadEmbedding};
    use crate::identity::Identity;
    use chrysalis_crdt::{Hlc, ReplicaId};

    fn bead(who: &Identity, text: &str, vector: Vec<f32>, millis: u64, tag: &str) -> Bead {
        let draft = BeadDraft {
            content: text.into(),
            kind: "note".into(),
            tags: vec![tag.into()],
            embedding: Some(BeadEmbedding {
                model: "m".into(),
                vector,
            }),
        };
        let at = Hlc {
            millis,
            logical: 0,
            replica: ReplicaId(1),
        };
        Bead::create(who, draft, at).unwrap()
    }

    #[test]
    fn near_duplicates_fuse_with_provenance_in_any_arrival_order() {
        let (a, b) = (
            Identity::from_seed(&[1; 32]).unwrap(),
            Identity::from_seed(&[2; 32]).unwrap(),
        );
        let beads = vec![
            bead(
                &a,
                "The meeting with Bob moved to Friday",
                vec![1.0, 0.1, 0.0],
                10,
                "work",
            ),
            bead(
                &b,
                "the meeting with Bob moved to friday!",
                vec![1.0, 0.12, 0.0],
                20,
                "calendar",
            ),
            bead(&b, "Bob likes green tea", vec![0.0, 1.0, 0.0], 15, "people"),
            // Same words, different meaning vector: not fused.
            bead(
                &a,
                "The meeting with Bob moved to Friday",
                vec![0.0, 0.0, 1.0],
                30,
                "work",
            ),
        ];
        let groups = fuse(&beads, &FusionConfig::default());
        assert_eq!(groups.len(), 3);
        let fused = groups.iter().find(|g| g.members.len() == 2).unwrap();
        assert_eq!(fused.representative, beads[0].id);
        assert_eq!(fused.members, vec![beads[0].id, beads[1].id]);
        assert_eq!(fused.tags, vec!["calendar", "work"]);
        assert_eq!(fused.authors.len(), 2);
        let reversed: Vec<&Bead> = beads.iter().rev().collect();
        assert_eq!(fuse(reversed, &FusionConfig::default()), groups);
    }
}
