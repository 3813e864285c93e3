//! BM25 keyword search (Robertson–Spärck Jones weights, `k1 = 1.2`, `b = 0.75`) over an
//! incremental inverted index.
//!
//! Text is split on anything that is not a letter or digit, lower-cased, stripped of a few
//! English stop words and of a plural `s`, so "Cats" finds "cat".

use std::collections::HashMap;
use std::hash::Hash;

const K1: f32 = 1.2;
const B: f32 = 0.75;

const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "has", "in", "is", "it", "its",
    "of", "on", "or", "that", "the", "this", "to", "was", "were", "will", "with",
];

/// The terms of `text`, in order (repeats kept).
pub fn terms(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut w = w.to_lowercase();
            if w.len() > 3 && w.ends_with('s') && !w.ends_with("ss") {
                w.pop();
            }
            w
        })
        .filter(|w| !STOP_WORDS.contains(&w.as_str()))
        .collect()
}

/// A keyword match.
#[derive(Debug, Clone, PartialEq)]
pub struct KeywordHit<K> {
    /// The document.
    pub key: K,
    /// Its BM25 score.
    pub score: f32,
    /// The share of the query's weight (IDF) among the terms the document holds: 1 when it
    /// holds every query term, small when it shares one common word.
    pub coverage: f32,
}

/// A document: its key, length in terms, and each distinct term with its frequency.
type Doc<K> = (K, u32, Vec<(String, u32)>);

/// An inverted index of documents by key.
#[derive(Debug, Clone)]
pub struct Bm25<K> {
    /// Term → (document number, term frequency).
    postings: HashMap<String, Vec<(u32, u32)>>,
    /// Document number → (key, length in terms, each distinct term with its frequency);
    /// `None` once removed.
    docs: Vec<Option<Doc<K>>>,
    numbers: HashMap<K, u32>,
    total_len: u64,
}

impl<K> Default for Bm25<K> {
    fn default() -> Self {
        Bm25 {
            postings: HashMap::new(),
            docs: Vec::new(),
            numbers: HashMap::new(),
            total_len: 0,
        }
    }
}

impl<K: Clone + Eq + Hash + Ord> Bm25<K> {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Documents indexed.
    pub fn len(&self) -> usize {
        self.numbers.len()
    }

    /// Whether no document is indexed.
    pub fn is_empty(&self) -> bool {
        self.numbers.is_empty()
    }

    /// Indexes `text` under `key` (replacing an earlier text).
    pub fn insert(&mut self, key: K, text: &str) {
        self.remove(&key);
        let words = terms(text);
        let mut counts: HashMap<String, u32> = HashMap::new();
        for w in &words {
            *counts.entry(w.clone()).or_default() += 1;
        }
        let mut distinct: Vec<(String, u32)> = counts.into_iter().collect();
        distinct.sort_unstable();
        self.add(key, words.len() as u32, distinct);
    }

    fn add(&mut self, key: K, len: u32, distinct: Vec<(String, u32)>) {
        let number = self.docs.len() as u32;
        for (term, tf) in &distinct {
            self.postings
                .entry(term.clone())
                .or_default()
                .push((number, *tf));
        }
        self.total_len += len as u64;
        self.docs.push(Some((key.clone(), len, distinct)));
        self.numbers.insert(key, number);
    }

    /// Removes `key`'s document; whether it was indexed.
    pub fn remove(&mut self, key: &K) -> bool {
        let Some(number) = self.numbers.remove(key) else {
            return false;
        };
        if let Some((_, len, distinct)) = self.docs[number as usize].take() {
            self.total_len -= len as u64;
            for (term, _) in distinct {
                if let Some(list) = self.postings.get_mut(&term) {
                    list.retain(|(n, _)| *n != number);
                    if list.is_empty() {
                        self.postings.remove(&term);
                    }
                }
            }
        }
        if self.docs.len() > 64 && self.docs.len() > 2 * self.numbers.len() {
            self.compact();
        }
        true
    }

    /// The `k` best documents for `query` that pass `keep` (best first; documents sharing no
    /// term with the query are not returned).
    pub fn search(&self, query: &str, k: usize, keep: impl Fn(&K) -> bool) -> Vec<KeywordHit<K>> {
        let n = self.len() as f32;
        if n == 0.0 || k == 0 {
            return Vec::new();
        }
        let average = (self.total_len as f32 / n).max(1.0);
        let mut query_terms = terms(query);
        query_terms.sort_unstable();
        query_terms.dedup();
        // (score, idf of the query terms the document holds)
        let mut scores: HashMap<u32, (f32, f32)> = HashMap::new();
        let mut query_idf = 0.0;
        for term in &query_terms {
            let list = self.postings.get(term).map_or(&[][..], Vec::as_slice);
            let df = list.len() as f32;
            let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
            query_idf += idf;
            for &(number, tf) in list {
                let len = self.docs[number as usize].as_ref().map_or(0, |d| d.1) as f32;
                let tf = tf as f32;
                let weight = tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * len / average));
                let entry = scores.entry(number).or_default();
                entry.0 += idf * weight;
                entry.1 += idf;
            }
        }
        let mut hits: Vec<KeywordHit<K>> = scores
            .into_iter()
            .filter_map(|(number, (score, held))| {
                let (key, _, _) = self.docs[number as usize].as_ref()?;
                keep(key).then(|| KeywordHit {
                    key: key.clone(),
                    score,
                    coverage: held / query_idf,
                })
            })
            .collect();
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.key.cmp(&b.key)));
        hits.truncate(k);
        hits
    }

    /// Renumbers the live documents, dropping the removed ones' slots.
    fn compact(&mut self) {
        let mut fresh = Bm25::new();
        for (key, len, distinct) in std::mem::take(&mut self.docs).into_iter().flatten() {
            fresh.add(key, len, distinct);
        }
        *self = fresh;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_are_lowercased_and_stripped() {
        assert_eq!(
            terms("The Cats sat on the glass-table, 2024!"),
            vec!["cat", "sat", "glass", "table", "2024"]
        );
    }

    #[test]
    fn rare_terms_outrank_common_ones_and_removed_documents_vanish() {
        let mut index = Bm25::new();
        index.insert(1, "the quick brown fox");
        index.insert(2, "the lazy brown dog");
        index.insert(3, "a brown cow in a brown field");
        let hits = index.search("fox brown", 3, |_| true);
        assert_eq!(hits[0].key, 1, "the rare term wins");
        assert_eq!(hits.len(), 3);
        assert!(index.remove(&1));
        assert!(index.search("fox", 3, |_| true).is_empty());
        assert_eq!(index.search("brown", 3, |k| *k != 3)[0].key, 2);
    }

    #[test]
    fn compaction_keeps_every_live_document_searchable() {
        let mut index = Bm25::new();
        for i in 0..200u32 {
            index.insert(i, &format!("note {i} about topic{}", i % 7));
        }
        for i in 0..150u32 {
            index.remove(&i);
        }
        assert!(index.docs.len() < 200, "compacted");
        assert_eq!(index.len(), 50);
        let hits = index.search("topic3", 100, |_| true);
        let expected = (150..200u32).filter(|i| i % 7 == 3).count();
        assert_eq!(hits.len(), expected);
        assert_eq!(index.search("175", 1, |_| true)[0].key, 175);
    }
}
