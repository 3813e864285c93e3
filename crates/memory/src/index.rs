//! The local search view of a store: HNSW (or an exact scan) over the beads' vectors, BM25 over
//! their text, filters, and hybrid ranking by reciprocal rank fusion. Derived from the store
//! and updated from its changes; never replicated.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::MemoryError;
use crate::bead::{Bead, BeadId};
use crate::bm25::{Bm25, KeywordHit};
use crate::hnsw::{Hnsw, HnswConfig};
use crate::identity::PublicKey;
use crate::store::{MemoryStore, StoreChange};
use crate::vector::{Scored, exact_top_k, unit};

/// The constant of reciprocal rank fusion: a hit at rank `r` scores `1 / (RRF_K + r)`.
pub const RRF_K: f32 = 60.0;

/// Below this many vectors (or matching beads, under a filter) search is an exact scan.
pub const EXACT_BELOW: usize = 2_000;

/// Which beads a recall may return (every condition must hold; empty lists allow all).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    /// One of these kinds.
    pub kinds: Vec<String>,
    /// Every one of these tags.
    pub tags: Vec<String>,
    /// By one of these authors.
    pub authors: Vec<PublicKey>,
    /// Created at or after (ms since the epoch).
    pub after: Option<u64>,
    /// Created before (ms since the epoch).
    pub before: Option<u64>,
}

impl Filter {
    /// Whether no condition is set.
    pub fn is_empty(&self) -> bool {
        *self == Filter::default()
    }

    fn matches(&self, entry: &Entry) -> bool {
        (self.kinds.is_empty() || self.kinds.contains(&entry.kind))
            && self.tags.iter().all(|t| entry.tags.contains(t))
            && (self.authors.is_empty() || self.authors.contains(&entry.author))
            && self.after.is_none_or(|a| entry.created >= a)
            && self.before.is_none_or(|b| entry.created < b)
    }
}

/// How a recall ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ranking {
    /// By meaning (cosine of embeddings) only.
    Vector,
    /// By keywords (BM25) only.
    Keyword,
    /// Both lists fused by relative score: each scaled to 0–1, the keyword share weighted by
    /// query coverage, averaged. The default: it finds meaning-only and keyword-only queries'
    /// beads alike (tests/hybrid.rs).
    Hybrid,
    /// Both lists fused by reciprocal rank (`1 / (60 + rank)` per list): robust when scores
    /// mean little, but a bead sharing one common word with the query can outrank the nearest
    /// meaning.
    ReciprocalRank,
}

/// A search over the index.
#[derive(Debug, Clone)]
pub struct Query<'a> {
    /// Keywords (for keyword and hybrid ranking).
    pub text: &'a str,
    /// The query's embedding and its model (for vector and hybrid ranking).
    pub embedding: Option<(&'a str, &'a [f32])>,
    /// How many hits.
    pub k: usize,
    /// Which beads qualify.
    pub filter: &'a Filter,
    /// How to rank.
    pub ranking: Ranking,
}

/// One result.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// The bead.
    pub id: BeadId,
    /// The ranking score: cosine (vector), BM25 (keyword) or fused reciprocal rank (hybrid).
    pub score: f32,
    /// Cosine similarity to the query, when the bead was among the vector candidates.
    pub similarity: Option<f32>,
    /// BM25 score, when the bead was among the keyword candidates.
    pub keyword: Option<f32>,
}

impl Hit {
    fn new(id: BeadId) -> Hit {
        Hit {
            id,
            score: 0.0,
            similarity: None,
            keyword: None,
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    kind: String,
    tags: Vec<String>,
    author: PublicKey,
    created: u64,
}

/// The most hits one search returns.
pub const MAX_K: usize = 1000;

/// The search view.
#[derive(Debug, Clone)]
pub struct MemoryIndex {
    config: HnswConfig,
    /// The model and dimension count of the indexed vectors: chosen by the agent (its own
    /// embedding service), never by a peer's bead. Until it is chosen, vectors are not indexed.
    model: Option<(String, usize)>,
    vectors: Option<Hnsw<BeadId>>,
    keywords: Bm25<BeadId>,
    entries: HashMap<BeadId, Entry>,
    /// Beads whose vector was of another model (searchable by keyword only).
    other_model: usize,
}

impl MemoryIndex {
    /// An empty index; vectors go into an HNSW graph with `config`.
    pub fn new(config: HnswConfig) -> Self {
        MemoryIndex {
            config,
            model: None,
            vectors: None,
            keywords: Bm25::new(),
            entries: HashMap::new(),
            other_model: 0,
        }
    }

    /// An index of every bead in `store`, in id order (so every replica builds the same
    /// graph from the same beads), with vectors of `model` (name, dimensions) if one is chosen.
    pub fn build(store: &MemoryStore, config: HnswConfig, model: Option<(String, usize)>) -> Self {
        let mut index = MemoryIndex::new(config);
        index.model = model;
        for bead in store.beads() {
            index.insert(bead);
        }
        index
    }

    /// Chooses the model whose vectors are indexed (the agent's own embedding model); the
    /// index is rebuilt from `store` when this changes it. Beads of other models stay
    /// searchable by keyword.
    pub fn choose_model(&mut self, store: &MemoryStore, model: &str, dims: usize) {
        if self.model() != Some((model, dims)) {
            *self = MemoryIndex::build(store, self.config.clone(), Some((model.to_owned(), dims)));
        }
    }

    /// Applies the store's changes (from [`MemoryStore::take_changes`]).
    pub fn update(&mut self, store: &MemoryStore, changes: &[StoreChange]) {
        for change in changes {
            match change {
                StoreChange::Added(id) => {
                    if let Some(bead) = store.bead(id) {
                        self.insert(bead);
                    }
                }
                StoreChange::Removed(id) => self.remove(id),
                StoreChange::Updated(_) => {}
            }
        }
    }

    /// Indexed beads.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The model and dimensions of the indexed vectors.
    pub fn model(&self) -> Option<(&str, usize)> {
        self.model.as_ref().map(|(m, d)| (m.as_str(), *d))
    }

    /// Beads indexed by keyword only because their vector is of another model (or no model is
    /// chosen yet).
    pub fn other_model(&self) -> usize {
        self.other_model
    }

    /// The vector graph as bytes (to persist and skip a rebuild on the next start).
    pub fn snapshot_vectors(&self) -> Option<Vec<u8>> {
        self.vectors.as_ref().map(Hnsw::snapshot)
    }

    /// An index of `store` with vectors of `model` that takes its vector graph from
    /// `snapshot` when the snapshot holds exactly the store's vectors of that model, and
    /// rebuilds it otherwise.
    pub fn restore(
        store: &MemoryStore,
        config: HnswConfig,
        model: (String, usize),
        snapshot: &[u8],
    ) -> Self {
        let mut index = MemoryIndex::new(config);
        let Ok(graph) = Hnsw::<BeadId>::restore(snapshot) else {
            return MemoryIndex::build(store, index.config, Some(model));
        };
        index.model = Some(model.clone());
        let mut with_vectors = 0;
        for bead in store.beads() {
            index.add_entry(bead);
            if let Some(e) = &bead.embedding {
                if (model.0.as_str(), model.1) == (e.model.as_str(), e.vector.len()) {
                    with_vectors += 1;
                    let same = graph.vector(&bead.id).zip(unit(&e.vector)).is_some_and(
                        |(stored, fresh)| {
                            stored.iter().zip(&fresh).all(|(a, b)| (a - b).abs() < 1e-6)
                        },
                    );
                    if !same {
                        return MemoryIndex::build(store, index.config, Some(model));
                    }
                } else {
                    index.other_model += 1;
                }
            }
        }
        if with_vectors != graph.len() {
            return MemoryIndex::build(store, index.config, Some(model));
        }
        index.vectors = Some(graph);
        index
    }

    fn add_entry(&mut self, bead: &Bead) {
        self.keywords.insert(bead.id, &bead.content);
        self.entries.insert(
            bead.id,
            Entry {
                kind: bead.kind.clone(),
                tags: bead.tags.clone(),
                author: bead.author,
                created: bead.created.millis,
            },
        );
    }

    /// Indexes a bead (its vector only if it is of the index's model).
    pub fn insert(&mut self, bead: &Bead) {
        if self.entries.contains_key(&bead.id) {
            return;
        }
        self.add_entry(bead);
        let Some(e) = &bead.embedding else {
            return;
        };
        let Some((model, dims)) = self.model.clone() else {
            self.other_model += 1;
            return;
        };
        if model != e.model || dims != e.vector.len() {
            self.other_model += 1;
            return;
        }
        let config = self.config.clone();
        let graph = self
            .vectors
            .get_or_insert_with(|| Hnsw::new(dims, config).expect("checked parameters"));
        // A zero vector cannot be compared: the bead stays keyword-only.
        let _ = graph.insert(bead.id, &e.vector);
    }

    /// Removes a bead.
    pub fn remove(&mut self, id: &BeadId) {
        if self.entries.remove(id).is_some() {
            self.keywords.remove(id);
            if let Some(graph) = &mut self.vectors {
                graph.remove(id);
            }
        }
    }

    /// The `k` best beads for `query` (`k` at most [`MAX_K`]).
    pub fn search(&self, query: &Query<'_>) -> Result<Vec<Hit>, MemoryError> {
        if query.k > MAX_K {
            return Err(MemoryError::bad_input("k", format!("at most {MAX_K} hits")));
        }
        if query.k == 0 {
            return Ok(Vec::new());
        }
        let pool = (query.k * 3).max(30);
        let vector_hits = match (query.ranking, query.embedding) {
            (Ranking::Keyword, _) => Vec::new(),
            (_, Some((model, vector))) => {
                self.vector_candidates(model, vector, pool, query.filter)?
            }
            (Ranking::Vector, None) => {
                return Err(MemoryError::bad_input(
                    "query",
                    "vector ranking needs an embedding",
                ));
            }
            (Ranking::Hybrid | Ranking::ReciprocalRank, None) => Vec::new(),
        };
        let keyword_hits = if query.ranking == Ranking::Vector {
            Vec::new()
        } else {
            self.keywords.search(query.text, pool, |id| {
                self.entries
                    .get(id)
                    .is_some_and(|e| query.filter.matches(e))
            })
        };
        let mut hits: Vec<Hit> = match query.ranking {
            Ranking::Vector => vector_hits
                .iter()
                .map(|s| Hit {
                    id: s.key,
                    score: s.score,
                    similarity: Some(s.score),
                    keyword: None,
                })
                .collect(),
            Ranking::Keyword => keyword_hits
                .iter()
                .map(|s| Hit {
                    id: s.key,
                    score: s.score,
                    similarity: None,
                    keyword: Some(s.score),
                })
                .collect(),
            Ranking::Hybrid => relative_score(&vector_hits, &keyword_hits),
            Ranking::ReciprocalRank => reciprocal_rank(&vector_hits, &keyword_hits),
        };
        hits.truncate(query.k);
        Ok(hits)
    }

    fn vector_candidates(
        &self,
        model: &str,
        vector: &[f32],
        pool: usize,
        filter: &Filter,
    ) -> Result<Vec<Scored<BeadId>>, MemoryError> {
        let Some((own_model, dims)) = &self.model else {
            return Ok(Vec::new());
        };
        if own_model != model || *dims != vector.len() {
            return Err(MemoryError::EmbeddingMismatch(format!(
                "a {}-dimensional {model} query against {dims}-dimensional {own_model} memories",
                vector.len()
            )));
        }
        let (Some(graph), Some(query)) = (&self.vectors, unit(vector)) else {
            return Ok(Vec::new());
        };
        let keep = |id: &BeadId| self.entries.get(id).is_some_and(|e| filter.matches(e));
        let exact = |ids: Vec<BeadId>| {
            let items = ids.iter().filter_map(|id| Some((*id, graph.vector(id)?)));
            exact_top_k(&query, items, pool)
        };
        if graph.len() < EXACT_BELOW {
            let ids = self.entries.keys().filter(|id| keep(id)).copied().collect();
            return Ok(exact(ids));
        }
        if !filter.is_empty() {
            let matching: Vec<BeadId> = self
                .entries
                .iter()
                .filter(|(id, e)| filter.matches(e) && graph.contains(id))
                .map(|(id, _)| *id)
                .collect();
            if matching.len() < EXACT_BELOW {
                return Ok(exact(matching));
            }
        }
        let ef = graph.config().ef_search.max(pool);
        Ok(graph.search_filtered(&query, pool, ef, keep))
    }
}

/// Reciprocal rank fusion of a vector list and a keyword list (ties by id): a hit at rank `r`
/// of a list adds `1 / (RRF_K + r)`.
fn reciprocal_rank(vector: &[Scored<BeadId>], keyword: &[KeywordHit<BeadId>]) -> Vec<Hit> {
    fuse(
        vector,
        keyword,
        |rank, _| 1.0 / (RRF_K + rank as f32 + 1.0),
        |rank, _| 1.0 / (RRF_K + rank as f32 + 1.0),
    )
}

/// Relative score fusion: each list's scores scaled to 0–1 over its candidates, the keyword
/// share weighted by how much of the query the bead covers, the two averaged. Unlike rank
/// fusion it keeps how far apart hits are, so one shared common word does not outvote the
/// nearest meaning.
fn relative_score(vector: &[Scored<BeadId>], keyword: &[KeywordHit<BeadId>]) -> Vec<Hit> {
    let scale = |scores: &mut dyn Iterator<Item = f32>| {
        let (lo, hi) = scores.fold((f32::MAX, f32::MIN), |(lo, hi), s| (lo.min(s), hi.max(s)));
        move |s: f32| if hi > lo { (s - lo) / (hi - lo) } else { 1.0 }
    };
    let v = scale(&mut vector.iter().map(|s| s.score));
    let k = scale(&mut keyword.iter().map(|s| s.score));
    fuse(
        vector,
        keyword,
        |_, s| 0.5 * v(s.score),
        |_, s| 0.5 * k(s.score) * s.coverage,
    )
}

/// Sums each bead's shares from the two lists and ranks by the sum (ties by id).
fn fuse(
    vector: &[Scored<BeadId>],
    keyword: &[KeywordHit<BeadId>],
    vector_share: impl Fn(usize, &Scored<BeadId>) -> f32,
    keyword_share: impl Fn(usize, &KeywordHit<BeadId>) -> f32,
) -> Vec<Hit> {
    let mut fused: HashMap<BeadId, Hit> = HashMap::new();
    for (rank, s) in vector.iter().enumerate() {
        let hit = fused.entry(s.key).or_insert_with(|| Hit::new(s.key));
        hit.score += vector_share(rank, s);
        hit.similarity = Some(s.score);
    }
    for (rank, s) in keyword.iter().enumerate() {
        let hit = fused.entry(s.key).or_insert_with(|| Hit::new(s.key));
        hit.score += keyword_share(rank, s);
        hit.keyword = Some(s.score);
    }
    let mut hits: Vec<Hit> = fused.into_values().collect();
    hits.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
    hits
}
