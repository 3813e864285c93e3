//! Vectors that know their model: the seed's compile-time dimension safety, checked at run time.

use crate::EmbeddingError;

/// An embedding with the model that made it.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding {
    /// Model id (`"all-MiniLM-L6-v2"`, `"text-embedding-3-small"`, …).
    pub model: String,
    /// The vector; its length is the dimension count.
    pub vector: Vec<f32>,
}

impl Embedding {
    /// Dimensions of the vector.
    pub fn dims(&self) -> usize {
        self.vector.len()
    }

    /// Cosine similarity with `other`; an error when the models or dimensions differ.
    pub fn cosine(&self, other: &Embedding) -> Result<f32, EmbeddingError> {
        if self.model != other.model {
            return Err(EmbeddingError::ModelMismatch {
                left: self.model.clone(),
                right: other.model.clone(),
            });
        }
        cosine_similarity(&self.vector, &other.vector)
    }
}

/// Cosine similarity of two vectors of equal length (0 when either is all zeros).
pub fn cosine_similarity(a: &[f32], b: &[f32]) -> Result<f32, EmbeddingError> {
    if a.len() != b.len() {
        return Err(EmbeddingError::DimensionMismatch {
            left: a.len(),
            right: b.len(),
        });
    }
    let (mut dot, mut aa, mut bb) = (0f32, 0f32, 0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        aa += x * x;
        bb += y * y;
    }
    let norm = (aa * bb).sqrt();
    Ok(if norm == 0.0 { 0.0 } else { dot / norm })
}

/// Scales `v` to unit length (leaves a zero vector alone).
pub fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_of_known_vectors() {
        assert_eq!(cosine_similarity(&[1.0, 0.0], &[0.0, 1.0]).unwrap(), 0.0);
        assert!((cosine_similarity(&[1.0, 2.0], &[2.0, 4.0]).unwrap() - 1.0).abs() < 1e-6);
        assert_eq!(cosine_similarity(&[0.0, 0.0], &[1.0, 1.0]).unwrap(), 0.0);
        assert_eq!(
            cosine_similarity(&[1.0], &[1.0, 2.0]),
            Err(EmbeddingError::DimensionMismatch { left: 1, right: 2 })
        );
    }

    #[test]
    fn embeddings_of_different_models_do_not_compare() {
        let a = Embedding {
            model: "a".into(),
            vector: vec![1.0],
        };
        let b = Embedding {
            model: "b".into(),
            vector: vec![1.0],
        };
        assert_eq!(a.cosine(&b).unwrap_err().code(), "MODEL_MISMATCH");
        assert_eq!(a.cosine(&a.clone()).unwrap(), 1.0);
    }

    #[test]
    fn normalize_makes_unit_length() {
        let mut v = vec![3.0, 4.0];
        normalize(&mut v);
        assert_eq!(v, vec![0.6, 0.8]);
    }
}
