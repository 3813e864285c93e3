//! Retrieval quality on random 384-dimensional vectors: HNSW recall@10 against exact search.
//!
//! The vectors are random but clustered like sentence embeddings: one random centre per 100
//! vectors, each vector its centre plus Gaussian noise of the same norm (nearest-neighbour cosine
//! about 0.55). Vectors drawn uniformly from the sphere have no neighbourhood at all (every
//! pair is nearly orthogonal), and any graph index degrades into a slow scan on them: measured
//! in docs/benchmarks.md.

use chrysalis_memory::{Hnsw, HnswConfig, exact_top_k, unit};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

const DIMS: usize = 384;

fn gaussian(rng: &mut ChaCha8Rng) -> f32 {
    let mut uniform = || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    let (u1, u2) = (uniform().max(1e-300), uniform());
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

/// `n` unit vectors around `centres`, with noise of about the centres' norm.
fn clustered(n: usize, centres: &[Vec<f32>], seed: u64) -> Vec<Vec<f32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let scale = 1.0 / (DIMS as f32).sqrt();
    (0..n)
        .map(|_| {
            let centre = &centres[(rng.next_u64() % centres.len() as u64) as usize];
            let v: Vec<f32> = centre
                .iter()
                .map(|x| x + scale * gaussian(&mut rng))
                .collect();
            unit(&v).unwrap()
        })
        .collect()
}

fn recall_at_10(n: usize) -> f64 {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let centres: Vec<Vec<f32>> = (0..n / 100)
        .map(|_| unit(&(0..DIMS).map(|_| gaussian(&mut rng)).collect::<Vec<_>>()).unwrap())
        .collect();
    let data = clustered(n, &centres, 42);
    let queries = clustered(100, &centres, 7);
    let started = std::time::Instant::now();
    let mut index = Hnsw::new(DIMS, HnswConfig::default()).unwrap();
    for (i, v) in data.iter().enumerate() {
        index.insert(i as u32, v).unwrap();
    }
    let built = started.elapsed();
    let started = std::time::Instant::now();
    let approx: Vec<Vec<u32>> = queries
        .iter()
        .map(|q| index.search(q, 10).iter().map(|s| s.key).collect())
        .collect();
    let searched = started.elapsed();
    let mut hits = 0;
    for (q, found) in queries.iter().zip(&approx) {
        let items = data
            .iter()
            .enumerate()
            .map(|(i, v)| (i as u32, v.as_slice()));
        let exact = exact_top_k(q, items, 10);
        hits += exact.iter().filter(|e| found.contains(&e.key)).count();
    }
    let recall = hits as f64 / (10 * queries.len()) as f64;
    println!(
        "{n} × {DIMS}: built in {:.1} s, {:.2} ms per query, recall@10 {recall:.3} (M {}, efConstruction {}, efSearch {})",
        built.as_secs_f64(),
        searched.as_secs_f64() * 1000.0 / queries.len() as f64,
        index.config().m,
        index.config().ef_construction,
        index.config().ef_search
    );
    recall
}

#[test]
fn hnsw_recall_at_10_on_10k_random_vectors() {
    let recall = recall_at_10(10_000);
    assert!(recall >= 0.95, "recall@10 {recall}");
}

#[test]
fn hnsw_recall_at_10_on_100k_random_vectors() {
    let recall = recall_at_10(100_000);
    assert!(recall >= 0.95, "recall@10 {recall}");
}
