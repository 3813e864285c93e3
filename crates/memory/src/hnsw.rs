//! An incremental HNSW index (Malkov and Yashunin, 2016) over unit vectors: insert, remove,
//! approximate top-k by cosine, snapshot and restore.
//!
//! Layer 0 lives in one flat array (`2M` slots per node) for cache-friendly search; upper
//! layers are per node. Levels come from a hash of the seed and the node's number, so the same
//! inserts in the same order build the same graph on every machine. A removed node stays in
//! the graph as a waypoint until removed nodes outnumber live ones; then the index rebuilds
//! itself from the live vectors.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::hash::Hash;

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::MemoryError;
use crate::vector::{Scored, dot, unit};

/// Graph and search parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HnswConfig {
    /// Links per node on upper layers (twice this on layer 0).
    pub m: usize,
    /// Candidates kept while inserting (higher: better graph, slower build).
    pub ef_construction: usize,
    /// Candidates kept while searching (higher: better recall, slower query); at least `k`.
    pub ef_search: usize,
    /// Seeds the level of each node.
    pub seed: u64,
}

impl Default for HnswConfig {
    fn default() -> Self {
        HnswConfig {
            m: 16,
            ef_construction: 100,
            ef_search: 128,
            seed: 0x6368_7279_7361_6c69,
        }
    }
}

impl HnswConfig {
    /// Checks the parameters: `m` from 2 to [`MAX_M`], `ef_construction` at least `m`,
    /// `ef_search` positive.
    pub fn check(&self) -> Result<(), MemoryError> {
        if self.m < 2 || self.m > MAX_M {
            return Err(MemoryError::bad_input("m", format!("2 to {MAX_M}")));
        }
        if self.ef_construction < self.m || self.ef_search == 0 {
            return Err(MemoryError::bad_input(
                "ef",
                "efConstruction must be at least m and efSearch positive",
            ));
        }
        Ok(())
    }
}

/// The largest `m` (a node's layer-0 link count must fit a byte).
pub const MAX_M: usize = 100;

const SNAPSHOT_VERSION: u8 = 1;

/// An approximate nearest-neighbour index from keys to unit vectors.
#[derive(Debug, Clone)]
pub struct Hnsw<K> {
    dims: usize,
    config: HnswConfig,
    /// Each node's key; `None` once removed.
    keys: Vec<Option<K>>,
    nodes: HashMap<K, u32>,
    vectors: Vec<f32>,
    levels: Vec<u8>,
    base: Vec<u32>,
    base_len: Vec<u8>,
    upper: Vec<Vec<Vec<u32>>>,
    entry: Option<u32>,
    removed: usize,
}

#[derive(Serialize, Deserialize)]
struct Snapshot<K> {
    version: u8,
    dims: u32,
    config: HnswConfig,
    keys: Vec<Option<K>>,
    vectors: Vec<f32>,
    levels: Vec<u8>,
    base: Vec<u32>,
    base_len: Vec<u8>,
    upper: Vec<Vec<Vec<u32>>>,
    entry: Option<u32>,
}

/// A distance (1 − cosine) ordered totally, for heaps.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Dist(f32);

impl Eq for Dist {}
impl PartialOrd for Dist {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Dist {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// Which nodes a search has touched: one bit per node.
struct Visited(Vec<u64>);

impl Visited {
    fn new(nodes: usize) -> Self {
        Visited(vec![0; nodes.div_ceil(64)])
    }

    /// Marks `node`; whether it was new.
    fn insert(&mut self, node: u32) -> bool {
        let (word, bit) = (node as usize / 64, 1u64 << (node % 64));
        let fresh = self.0[word] & bit == 0;
        self.0[word] |= bit;
        fresh
    }
}

impl<K: Clone + Eq + Hash + Ord + Serialize + DeserializeOwned> Hnsw<K> {
    /// An empty index of `dims`-dimensional vectors.
    pub fn new(dims: usize, config: HnswConfig) -> Result<Self, MemoryError> {
        if dims == 0 || dims > 65_536 {
            return Err(MemoryError::bad_input("dims", "1 to 65536 dimensions"));
        }
        config.check()?;
        Ok(Hnsw {
            dims,
            config,
            keys: Vec::new(),
            nodes: HashMap::new(),
            vectors: Vec::new(),
            levels: Vec::new(),
            base: Vec::new(),
            base_len: Vec::new(),
            upper: Vec::new(),
            entry: None,
            removed: 0,
        })
    }

    /// Live vectors.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether no vector is live.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The dimension count.
    pub fn dims(&self) -> usize {
        self.dims
    }

    /// The parameters.
    pub fn config(&self) -> &HnswConfig {
        &self.config
    }

    /// Sets how many candidates a search keeps.
    pub fn set_ef_search(&mut self, ef: usize) {
        self.config.ef_search = ef.max(1);
    }

    /// Whether `key` is live.
    pub fn contains(&self, key: &K) -> bool {
        self.nodes.contains_key(key)
    }

    /// The stored (unit) vector of `key`.
    pub fn vector(&self, key: &K) -> Option<&[f32]> {
        self.nodes.get(key).map(|&node| self.vec(node))
    }

    /// Inserts `key` (replacing its vector if present). The vector is scaled to unit length;
    /// a wrong length, a zero vector or a non-finite entry is refused.
    pub fn insert(&mut self, key: K, vector: &[f32]) -> Result<(), MemoryError> {
        if vector.len() != self.dims {
            return Err(MemoryError::EmbeddingMismatch(format!(
                "a {}-dimensional vector for an index of {}",
                vector.len(),
                self.dims
            )));
        }
        let vector = unit(vector).ok_or_else(|| {
            MemoryError::bad_input("vector", "a zero vector or a non-finite entry")
        })?;
        if self.nodes.len() + self.removed >= u32::MAX as usize {
            return Err(MemoryError::bad_input("index", "full"));
        }
        self.remove(&key);
        self.add_node(key, &vector);
        Ok(())
    }

    /// Removes `key`; whether it was live.
    pub fn remove(&mut self, key: &K) -> bool {
        let Some(node) = self.nodes.remove(key) else {
            return false;
        };
        self.keys[node as usize] = None;
        self.removed += 1;
        if self.removed > 64 && self.removed > self.nodes.len() {
            self.rebuild();
        }
        true
    }

    /// The `k` live keys nearest to `query` (best first, score = cosine).
    pub fn search(&self, query: &[f32], k: usize) -> Vec<Scored<K>> {
        self.search_filtered(query, k, self.config.ef_search, |_| true)
    }

    /// The `k` nearest live keys that pass `keep`, keeping `ef` candidates (at least `k`).
    /// A selective filter may return fewer than `k`: the caller can then scan exactly.
    pub fn search_filtered(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        keep: impl Fn(&K) -> bool,
    ) -> Vec<Scored<K>> {
        let (Some(entry), Some(query)) = (self.entry, unit(query)) else {
            return Vec::new();
        };
        if query.len() != self.dims || k == 0 {
            return Vec::new();
        }
        let mut ep = (self.dist(&query, entry), entry);
        for layer in (1..=self.levels[entry as usize] as usize).rev() {
            ep = self.greedy(&query, ep, layer);
        }
        let mut visited = Visited::new(self.keys.len());
        let found = self.search_layer(&query, &[ep], ef.max(k), 0, &mut visited);
        found
            .into_iter()
            .filter_map(|(d, node)| {
                let key = self.keys[node as usize].as_ref()?;
                keep(key).then(|| Scored {
                    key: key.clone(),
                    score: 1.0 - d.0,
                })
            })
            .take(k)
            .collect()
    }

    /// The index as bytes (graph and vectors), for [`Hnsw::restore`].
    pub fn snapshot(&self) -> Vec<u8> {
        let snapshot = Snapshot {
            version: SNAPSHOT_VERSION,
            dims: self.dims as u32,
            config: self.config.clone(),
            keys: self.keys.clone(),
            vectors: self.vectors.clone(),
            levels: self.levels.clone(),
            base: self.base.clone(),
            base_len: self.base_len.clone(),
            upper: self.upper.clone(),
            entry: self.entry,
        };
        postcard::to_allocvec(&snapshot).expect("snapshots encode")
    }

    /// An index from [`Hnsw::snapshot`] bytes; anything inconsistent is an error, not a panic.
    pub fn restore(bytes: &[u8]) -> Result<Self, MemoryError> {
        let bad = |reason: &str| MemoryError::Decode {
            what: "HNSW snapshot",
            reason: reason.into(),
        };
        let s: Snapshot<K> = postcard::from_bytes(bytes).map_err(|e| bad(&e.to_string()))?;
        if s.version != SNAPSHOT_VERSION {
            return Err(bad(&format!("version {}", s.version)));
        }
        let mut index = Hnsw::new(s.dims as usize, s.config)?;
        let n = s.keys.len();
        let m0 = 2 * index.config.m;
        // Products of sizes from the bytes are checked: on 32-bit wasm they overflow.
        let consistent = n.checked_mul(index.dims) == Some(s.vectors.len())
            && s.levels.len() == n
            && n.checked_mul(m0) == Some(s.base.len())
            && s.base_len.len() == n
            && s.upper.len() == n
            && s.base_len.iter().all(|&l| l as usize <= m0)
            && s.base.iter().all(|&x| (x as usize) < n)
            && s.upper.iter().zip(&s.levels).all(|(layers, &level)| {
                layers.len() == level as usize
                    && layers.iter().enumerate().all(|(i, links)| {
                        links
                            .iter()
                            .all(|&x| (x as usize) < n && s.levels[x as usize] as usize > i)
                    })
            })
            && s.entry.is_none_or(|e| (e as usize) < n)
            && (n == 0) == s.entry.is_none();
        if !consistent {
            return Err(bad("inconsistent graph"));
        }
        for (node, key) in s.keys.iter().enumerate() {
            if let Some(key) = key
                && index.nodes.insert(key.clone(), node as u32).is_some()
            {
                return Err(bad("a key held twice"));
            }
        }
        index.removed = n - index.nodes.len();
        index.keys = s.keys;
        index.vectors = s.vectors;
        index.levels = s.levels;
        index.base = s.base;
        index.base_len = s.base_len;
        index.upper = s.upper;
        index.entry = s.entry;
        Ok(index)
    }

    // ---- graph ----

    fn vec(&self, node: u32) -> &[f32] {
        let at = node as usize * self.dims;
        &self.vectors[at..at + self.dims]
    }

    fn dist(&self, query: &[f32], node: u32) -> Dist {
        Dist(1.0 - dot(query, self.vec(node)))
    }

    fn links(&self, node: u32, layer: usize) -> &[u32] {
        if layer == 0 {
            let at = node as usize * 2 * self.config.m;
            &self.base[at..at + self.base_len[node as usize] as usize]
        } else {
            &self.upper[node as usize][layer - 1]
        }
    }

    fn set_links(&mut self, node: u32, layer: usize, links: &[u32]) {
        if layer == 0 {
            let at = node as usize * 2 * self.config.m;
            self.base[at..at + links.len()].copy_from_slice(links);
            self.base_len[node as usize] = links.len() as u8;
        } else {
            self.upper[node as usize][layer - 1] = links.to_vec();
        }
    }

    /// The level of the `node`-th node: geometric with ratio 1/m, from a hash of the seed.
    fn level_for(&self, node: usize) -> u8 {
        let mut x = self.config.seed ^ (node as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^= x >> 31;
        let uniform = ((x >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
        let level = -uniform.ln() / (self.config.m as f64).ln();
        level.min(16.0) as u8
    }

    fn add_node(&mut self, key: K, vector: &[f32]) {
        let node = self.keys.len() as u32;
        let level = self.level_for(node as usize);
        self.keys.push(Some(key.clone()));
        self.nodes.insert(key, node);
        self.vectors.extend_from_slice(vector);
        self.levels.push(level);
        self.base.extend(std::iter::repeat_n(0, 2 * self.config.m));
        self.base_len.push(0);
        self.upper.push(vec![Vec::new(); level as usize]);
        let Some(entry) = self.entry else {
            self.entry = Some(node);
            return;
        };
        let top = self.levels[entry as usize];
        let mut ep = (self.dist(vector, entry), entry);
        for layer in (level as usize + 1..=top as usize).rev() {
            ep = self.greedy(vector, ep, layer);
        }
        let mut eps = vec![ep];
        for layer in (0..=level.min(top) as usize).rev() {
            let mut visited = Visited::new(self.keys.len());
            let found = self.search_layer(
                vector,
                &eps,
                self.config.ef_construction,
                layer,
                &mut visited,
            );
            // A new node links to m neighbours on every layer; layer 0 leaves room (2m) for the
            // links later nodes make back to it.
            let chosen = self.select(&found, self.config.m);
            self.set_links(node, layer, &chosen);
            for &neighbour in &chosen {
                self.link_back(neighbour, node, layer);
            }
            eps = found;
        }
        if level > top {
            self.entry = Some(node);
        }
    }

    fn cap(&self, layer: usize) -> usize {
        if layer == 0 {
            2 * self.config.m
        } else {
            self.config.m
        }
    }

    /// Adds `node` to `neighbour`'s links, pruning them with the heuristic when full.
    fn link_back(&mut self, neighbour: u32, node: u32, layer: usize) {
        let cap = self.cap(layer);
        let mut links = self.links(neighbour, layer).to_vec();
        if links.contains(&node) {
            return;
        }
        links.push(node);
        if links.len() > cap {
            let base = self.vec(neighbour).to_vec();
            let mut scored: Vec<(Dist, u32)> =
                links.iter().map(|&l| (self.dist(&base, l), l)).collect();
            scored.sort_unstable();
            links = self.select(&scored, cap);
        }
        self.set_links(neighbour, layer, &links);
    }

    /// The neighbour-selection heuristic: take candidates nearest first, skipping one that is
    /// closer to an already chosen neighbour than to the base (it is reachable through it).
    fn select(&self, sorted: &[(Dist, u32)], cap: usize) -> Vec<u32> {
        let mut chosen: Vec<u32> = Vec::with_capacity(cap);
        for &(d, candidate) in sorted {
            if chosen.len() == cap {
                break;
            }
            let v = self.vec(candidate);
            if chosen.iter().all(|&c| 1.0 - dot(v, self.vec(c)) > d.0) {
                chosen.push(candidate);
            }
        }
        chosen
    }

    fn greedy(&self, query: &[f32], mut best: (Dist, u32), layer: usize) -> (Dist, u32) {
        loop {
            let mut moved = false;
            for &n in self.links(best.1, layer) {
                let d = self.dist(query, n);
                if d < best.0 {
                    best = (d, n);
                    moved = true;
                }
            }
            if !moved {
                return best;
            }
        }
    }

    /// Best-first search of one layer; returns up to `ef` nodes, nearest first.
    fn search_layer(
        &self,
        query: &[f32],
        entries: &[(Dist, u32)],
        ef: usize,
        layer: usize,
        visited: &mut Visited,
    ) -> Vec<(Dist, u32)> {
        let mut candidates: BinaryHeap<Reverse<(Dist, u32)>> = BinaryHeap::new();
        let mut found: BinaryHeap<(Dist, u32)> = BinaryHeap::new();
        for &(d, n) in entries {
            if visited.insert(n) {
                candidates.push(Reverse((d, n)));
                found.push((d, n));
            }
        }
        while found.len() > ef {
            found.pop();
        }
        while let Some(Reverse((d, node))) = candidates.pop() {
            if found.len() >= ef && found.peek().is_some_and(|w| d > w.0) {
                break;
            }
            for &n in self.links(node, layer) {
                if !visited.insert(n) {
                    continue;
                }
                let dn = self.dist(query, n);
                if found.len() < ef || found.peek().is_some_and(|w| dn < w.0) {
                    candidates.push(Reverse((dn, n)));
                    found.push((dn, n));
                    if found.len() > ef {
                        found.pop();
                    }
                }
            }
        }
        found.into_sorted_vec()
    }

    /// Re-inserts the live vectors (in node order) into a fresh graph.
    fn rebuild(&mut self) {
        let live: Vec<(K, Vec<f32>)> = self
            .keys
            .iter()
            .enumerate()
            .filter_map(|(node, key)| Some((key.clone()?, self.vec(node as u32).to_vec())))
            .collect();
        let mut fresh = Hnsw::new(self.dims, self.config.clone()).expect("same parameters");
        for (key, vector) in live {
            fresh.add_node(key, &vector);
        }
        *self = fresh;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vector::exact_top_k;

    /// Regression: `n * dims` from a crafted snapshot overflowed on 32-bit wasm (65,536 keys
    /// of 65,536 dimensions: 2^32 wraps to 0, matching no vectors at all), so the check passed
    /// and the first search trapped. Sizes are compared with checked products (on 64-bit hosts
    /// the product does not wrap; the wasm build is where this test matters).
    #[test]
    fn a_snapshot_whose_sizes_overflow_is_refused() {
        let n = 1 << 16;
        let config = HnswConfig {
            m: 2,
            ef_construction: 2,
            ..HnswConfig::default()
        };
        let snapshot = Snapshot::<u32> {
            version: SNAPSHOT_VERSION,
            dims: 1 << 16,
            config,
            keys: (0..n as u32).map(Some).collect(),
            vectors: Vec::new(),
            levels: vec![0; n],
            base: vec![0; n * 4],
            base_len: vec![0; n],
            upper: vec![Vec::new(); n],
            entry: Some(0),
        };
        let bytes = postcard::to_allocvec(&snapshot).unwrap();
        assert_eq!(
            Hnsw::<u32>::restore(&bytes).err().map(|e| e.code()),
            Some("DECODE")
        );
    }

    fn random_vectors(n: usize, dims: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                (0..dims)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn finds_exact_neighbours_in_a_small_index_and_forgets_removed_keys() {
        let vectors = random_vectors(500, 16, 1);
        let mut index = Hnsw::new(16, HnswConfig::default()).unwrap();
        for (i, v) in vectors.iter().enumerate() {
            index.insert(i as u32, v).unwrap();
        }
        let query = &vectors[7];
        let top = index.search(query, 5);
        assert_eq!(top[0].key, 7);
        assert!((top[0].score - 1.0).abs() < 1e-5);
        assert!(index.remove(&7));
        assert!(!index.remove(&7));
        assert!(index.search(query, 5).iter().all(|s| s.key != 7));
        assert_eq!(index.len(), 499);
    }

    #[test]
    fn removing_most_keys_rebuilds_and_still_searches() {
        let vectors = random_vectors(400, 8, 2);
        let mut index = Hnsw::new(8, HnswConfig::default()).unwrap();
        for (i, v) in vectors.iter().enumerate() {
            index.insert(i as u32, v).unwrap();
        }
        for i in 0..300u32 {
            index.remove(&i);
        }
        assert!(index.removed <= 64 || index.removed <= index.len());
        let units: Vec<Vec<f32>> = vectors.iter().map(|v| unit(v).unwrap()).collect();
        let live = (300..400u32).map(|i| (i, units[i as usize].as_slice()));
        let exact = exact_top_k(&units[350], live, 10);
        let approx = index.search(&vectors[350], 10);
        let hits = approx
            .iter()
            .filter(|a| exact.iter().any(|e| e.key == a.key))
            .count();
        assert!(hits >= 9, "{hits} of 10");
    }

    #[test]
    fn snapshots_restore_the_same_answers_and_refuse_corruption() {
        let vectors = random_vectors(300, 12, 3);
        let mut index = Hnsw::new(12, HnswConfig::default()).unwrap();
        for (i, v) in vectors.iter().enumerate() {
            index.insert(format!("k{i}"), v).unwrap();
        }
        index.remove(&"k3".to_string());
        let bytes = index.snapshot();
        let restored: Hnsw<String> = Hnsw::restore(&bytes).unwrap();
        assert_eq!(restored.len(), index.len());
        for q in vectors.iter().take(20) {
            assert_eq!(restored.search(q, 10), index.search(q, 10));
        }
        for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
            assert!(Hnsw::<String>::restore(&bytes[..cut]).is_err());
        }
        let mut flipped = bytes.clone();
        let at = flipped.len() - 10;
        flipped[at] ^= 0x7f;
        let _ = Hnsw::<String>::restore(&flipped); // an error or a valid index, never a panic
    }

    #[test]
    fn refuses_wrong_dimensions_and_degenerate_vectors() {
        let mut index: Hnsw<u32> = Hnsw::new(4, HnswConfig::default()).unwrap();
        assert_eq!(
            index.insert(1, &[1.0, 2.0]).unwrap_err().code(),
            "EMBEDDING_MISMATCH"
        );
        assert_eq!(index.insert(1, &[0.0; 4]).unwrap_err().code(), "BAD_INPUT");
        assert!(index.search(&[1.0, 0.0, 0.0, 0.0], 3).is_empty());
    }
}
