//! LRU cache of embeddings keyed by BLAKE3(model variant ‖ text).

use std::num::NonZeroUsize;

use chrysalis_crypto::{HashAlgorithm, Hasher};
use lru::LruCache;

/// A bounded cache of vectors; the key binds the exact model variant, so vectors never cross models.
pub struct EmbeddingCache {
    entries: Option<LruCache<[u8; 32], Vec<f32>>>,
}

impl EmbeddingCache {
    /// A cache of at most `capacity` vectors (0 turns caching off).
    pub fn new(capacity: usize) -> Self {
        EmbeddingCache {
            entries: NonZeroUsize::new(capacity).map(LruCache::new),
        }
    }

    /// The key of `text` under `variant` (model id, dimensions and options).
    pub fn key(variant: &str, text: &str) -> [u8; 32] {
        let mut hasher = Hasher::new(HashAlgorithm::Blake3);
        hasher
            .update(&(variant.len() as u64).to_le_bytes())
            .update(variant.as_bytes())
            .update(text.as_bytes());
        let mut key = [0u8; 32];
        key.copy_from_slice(&hasher.finalize());
        key
    }

    /// The cached vector for `key`, marked as recently used.
    pub fn get(&mut self, key: &[u8; 32]) -> Option<Vec<f32>> {
        self.entries.as_mut()?.get(key).cloned()
    }

    /// Stores `vector` under `key`, evicting the least recently used entry when full.
    pub fn put(&mut self, key: [u8; 32], vector: Vec<f32>) {
        if let Some(entries) = self.entries.as_mut() {
            entries.put(key, vector);
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.as_ref().map_or(0, LruCache::len)
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used_and_separates_variants() {
        let mut cache = EmbeddingCache::new(2);
        let (a, b, c) = (
            EmbeddingCache::key("m", "a"),
            EmbeddingCache::key("m", "b"),
            EmbeddingCache::key("m", "c"),
        );
        assert_ne!(
            EmbeddingCache::key("m1", "a"),
            EmbeddingCache::key("m", "1a")
        );
        cache.put(a, vec![1.0]);
        cache.put(b, vec![2.0]);
        assert_eq!(cache.get(&a), Some(vec![1.0]));
        cache.put(c, vec![3.0]);
        assert_eq!(cache.get(&b), None);
        assert_eq!(cache.len(), 2);
        let mut off = EmbeddingCache::new(0);
        off.put(a, vec![1.0]);
        assert!(off.get(&a).is_none() && off.is_empty());
    }
}
