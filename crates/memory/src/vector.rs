//! Vector arithmetic for retrieval: a dot product with sixteen lanes (wasm SIMD on wasm32,
//! auto-vectorised elsewhere), unit scaling, and exact top-k.

/// The dot product of two vectors of equal length (the shorter length when they differ).
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "wasm32")]
    {
        dot_simd128(a, b)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        dot_lanes(a, b)
    }
}

/// Sixteen independent accumulators (four SIMD registers on hosts that have them, so the adds
/// do not wait on each other); LLVM vectorises the inner loop.
#[cfg(not(target_arch = "wasm32"))]
#[inline]
fn dot_lanes(a: &[f32], b: &[f32]) -> f32 {
    let len = a.len().min(b.len());
    let (a, b) = (&a[..len], &b[..len]);
    let mut acc = [0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for lane in 0..16 {
            acc[lane] += x[lane] * y[lane];
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

/// Four f32x4 accumulators over chunks of 16. Enabled per function, whatever the build's flags:
/// the modules already need simd128 (blake3's `wasm32_simd`), and every engine that runs them has it.
#[cfg(target_arch = "wasm32")]
#[target_feature(enable = "simd128")]
fn dot_simd128(a: &[f32], b: &[f32]) -> f32 {
    use core::arch::wasm32::*;
    let len = a.len().min(b.len());
    let (a, b) = (&a[..len], &b[..len]);
    let mut acc = [f32x4_splat(0.0); 4];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for (i, sum) in acc.iter_mut().enumerate() {
            // SAFETY: each chunk holds 16 f32s and v128_load reads 4 at offset 4·i < 16;
            // wasm loads need no alignment.
            unsafe {
                let xv = v128_load(x.as_ptr().add(4 * i) as *const v128);
                let yv = v128_load(y.as_ptr().add(4 * i) as *const v128);
                *sum = f32x4_add(*sum, f32x4_mul(xv, yv));
            }
        }
    }
    let s = f32x4_add(f32x4_add(acc[0], acc[1]), f32x4_add(acc[2], acc[3]));
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    f32x4_extract_lane::<0>(s)
        + f32x4_extract_lane::<1>(s)
        + f32x4_extract_lane::<2>(s)
        + f32x4_extract_lane::<3>(s)
        + tail
}

/// `v` scaled to unit length; `None` for a zero vector or one with a non-finite entry.
pub fn unit(v: &[f32]) -> Option<Vec<f32>> {
    if v.iter().any(|x| !x.is_finite()) {
        return None;
    }
    let norm = dot(v, v).sqrt();
    (norm > 0.0).then(|| v.iter().map(|x| x / norm).collect())
}

/// A search result: an item and its similarity (cosine, for unit vectors) to the query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored<K> {
    /// The item.
    pub key: K,
    /// Higher is closer.
    pub score: f32,
}

/// The `k` items of `items` most similar to `query` (unit vectors; ties by key order), best
/// first.
pub fn exact_top_k<'a, K: Copy + Ord + 'a>(
    query: &[f32],
    items: impl IntoIterator<Item = (K, &'a [f32])>,
    k: usize,
) -> Vec<Scored<K>> {
    let mut best: Vec<Scored<K>> = Vec::with_capacity(k + 1);
    for (key, vector) in items {
        let score = dot(query, vector);
        if best.len() == k && best.last().is_some_and(|w| !better(score, key, w)) {
            continue;
        }
        let at = best.partition_point(|s| better(s.score, s.key, &Scored { key, score }));
        best.insert(at, Scored { key, score });
        best.truncate(k);
    }
    best
}

/// Whether (score, key) ranks before `other`: higher score, then lower key.
fn better<K: Ord>(score: f32, key: K, other: &Scored<K>) -> bool {
    score > other.score || (score == other.score && key < other.key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_a_plain_sum_for_every_length() {
        for len in 0..40 {
            let a: Vec<f32> = (0..len).map(|i| i as f32 * 0.5 - 3.0).collect();
            let b: Vec<f32> = (0..len).map(|i| 1.0 - i as f32 * 0.25).collect();
            let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot(&a, &b) - plain).abs() < 1e-3, "len {len}");
        }
    }

    #[test]
    fn unit_refuses_zero_and_non_finite_vectors() {
        assert_eq!(unit(&[0.0, 0.0]), None);
        assert_eq!(unit(&[f32::NAN, 1.0]), None);
        let u = unit(&[3.0, 4.0]).unwrap();
        assert!((u[0] - 0.6).abs() < 1e-6 && (u[1] - 0.8).abs() < 1e-6);
    }

    #[test]
    fn exact_top_k_ranks_by_score_then_key() {
        let vs = [[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [1.0, 0.0]];
        let items = vs.iter().enumerate().map(|(i, v)| (i, v.as_slice()));
        let top = exact_top_k(&[1.0, 0.0], items, 3);
        let keys: Vec<usize> = top.iter().map(|s| s.key).collect();
        assert_eq!(keys, vec![0, 3, 2]);
        assert!((top[2].score - 0.6).abs() < 1e-6);
    }
}
