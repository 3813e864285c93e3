//! Comparing and searching embeddings: `cosineSimilarity`, with the model check that keeps
//! vectors of different models apart, and `VectorIndex`, an HNSW index over the page's own
//! vectors.

use chrysalis_embedding::{EmbeddingError, cosine_similarity as cosine};
use chrysalis_memory::{Hnsw, HnswConfig, MemoryError};
use js_sys::{Float32Array, Reflect, Uint32Array};
use wasm_bindgen::{JsCast, prelude::*};

use crate::error::{CodedError, JsResult, js};
use crate::input::{object, usize_option};

fn vector(value: &JsValue, what: &str) -> Result<(Vec<f32>, Option<String>), CodedError> {
    let array = value
        .dyn_ref::<Float32Array>()
        .ok_or_else(|| CodedError::bad_argument(format!("{what} must be a Float32Array")))?;
    let model = Reflect::get(value, &"model".into())
        .ok()
        .and_then(|m| m.as_string());
    Ok((array.to_vec(), model))
}

/// Cosine similarity of two vectors. Vectors from `EmbeddingService` carry `model`; comparing
/// two of different models (or of different lengths) is an error, never a meaningless number.
///
/// @throws {Error} `code: "MODEL_MISMATCH"`, `"DIMENSION_MISMATCH"` or `"BAD_ARGUMENT"`.
#[wasm_bindgen(js_name = cosineSimilarity)]
pub fn cosine_similarity(
    #[wasm_bindgen(unchecked_param_type = "Float32Array")] a: JsValue,
    #[wasm_bindgen(unchecked_param_type = "Float32Array")] b: JsValue,
) -> JsResult<f32> {
    let (a, model_a) = vector(&a, "a")?;
    let (b, model_b) = vector(&b, "b")?;
    if let (Some(left), Some(right)) = (model_a, model_b)
        && left != right
    {
        return Err(js(EmbeddingError::ModelMismatch { left, right }));
    }
    cosine(&a, &b).map_err(js)
}

/// HNSW parameters from the options `m`, `efConstruction` and `efSearch` (defaults for absent
/// ones), checked.
pub(crate) fn hnsw_config(options: &JsValue) -> JsResult<HnswConfig> {
    let d = HnswConfig::default();
    let config = HnswConfig {
        m: usize_option(options, "m", d.m).map_err(js)?,
        ef_construction: usize_option(options, "efConstruction", d.ef_construction).map_err(js)?,
        ef_search: usize_option(options, "efSearch", d.ef_search).map_err(js)?,
        seed: d.seed,
    };
    config.check().map_err(js)?;
    Ok(config)
}

#[wasm_bindgen(typescript_custom_section)]
const VECTOR_INDEX_TS: &str = r#"
/** Options of a {@link VectorIndex}. */
export interface VectorIndexOptions {
  /** Links per node (default 16, at most 100): more links, better recall, more memory. */
  m?: number;
  /** Candidates kept while inserting (default 100): higher builds slower and finds better links. */
  efConstruction?: number;
  /** Candidates kept while searching (default 128, at least k): higher is slower and more exact. */
  efSearch?: number;
}
/** The nearest keys to a query, best first; `scores[i]` is the cosine similarity of `keys[i]`. */
export interface VectorMatches {
  keys: Uint32Array;
  scores: Float32Array;
}
"#;

/// An approximate nearest-neighbour index (HNSW) of vectors of one length under cosine
/// similarity, keyed by integers the page chooses (e.g. row numbers of its own table). Vectors
/// are stored scaled to unit length. `MemorySystem` uses the same index for beads.
#[wasm_bindgen]
pub struct VectorIndex {
    index: Hnsw<u32>,
}

#[wasm_bindgen]
impl VectorIndex {
    /// An empty index of `dims`-long vectors.
    ///
    /// @throws {Error} `code: "BAD_INPUT"` for `dims` outside 1–65536 or bad options.
    #[wasm_bindgen(constructor)]
    pub fn new(
        dims: usize,
        #[wasm_bindgen(unchecked_param_type = "VectorIndexOptions | undefined")] options: JsValue,
    ) -> JsResult<VectorIndex> {
        Ok(VectorIndex {
            index: Hnsw::new(dims, hnsw_config(&options)?).map_err(js)?,
        })
    }

    /// Adds `vector` under `key`, replacing the key's previous vector.
    ///
    /// @throws {Error} `code: "EMBEDDING_MISMATCH"` for a vector of another length, `"BAD_INPUT"`
    /// for a zero vector or a non-finite entry.
    pub fn add(&mut self, key: u32, vector: &[f32]) -> JsResult<()> {
        self.index.insert(key, vector).map_err(js)
    }

    /// Adds `keys.length` vectors given end to end in `vectors` (`keys.length × dims` numbers),
    /// in one call. On an error the vectors before the bad one stay added.
    ///
    /// @throws {Error} `code: "BAD_ARGUMENT"` when the lengths disagree; as {@link VectorIndex.add}.
    #[wasm_bindgen(js_name = addMany)]
    pub fn add_many(&mut self, keys: &[u32], vectors: &[f32]) -> JsResult<()> {
        let dims = self.index.dims();
        if vectors.len() != keys.len() * dims {
            return Err(js(CodedError::bad_argument(format!(
                "{} keys need {} numbers, not {}",
                keys.len(),
                keys.len() * dims,
                vectors.len()
            ))));
        }
        for (&key, vector) in keys.iter().zip(vectors.chunks_exact(dims)) {
            self.index.insert(key, vector).map_err(js)?;
        }
        Ok(())
    }

    /// Removes `key`; whether it was present.
    pub fn remove(&mut self, key: u32) -> bool {
        self.index.remove(&key)
    }

    /// Whether `key` is present.
    pub fn has(&self, key: u32) -> bool {
        self.index.contains(&key)
    }

    /// The `k` keys nearest to `query` by cosine similarity, best first (fewer when the index
    /// holds fewer).
    ///
    /// @throws {Error} `code: "EMBEDDING_MISMATCH"` for a query of another length.
    #[wasm_bindgen(unchecked_return_type = "VectorMatches")]
    pub fn search(&self, query: &[f32], k: usize) -> JsResult<JsValue> {
        if query.len() != self.index.dims() {
            return Err(js(MemoryError::EmbeddingMismatch(format!(
                "a {}-dimensional query for an index of {}",
                query.len(),
                self.index.dims()
            ))));
        }
        let found = self.index.search(query, k);
        let keys: Vec<u32> = found.iter().map(|s| s.key).collect();
        let scores: Vec<f32> = found.iter().map(|s| s.score).collect();
        Ok(object(&[
            ("keys", Uint32Array::from(&keys[..]).into()),
            ("scores", Float32Array::from(&scores[..]).into()),
        ]))
    }

    /// How many vectors the index holds.
    #[wasm_bindgen(getter)]
    pub fn size(&self) -> usize {
        self.index.len()
    }

    /// The vector length.
    #[wasm_bindgen(getter)]
    pub fn dims(&self) -> usize {
        self.index.dims()
    }

    /// Candidates kept while searching.
    #[wasm_bindgen(getter, js_name = efSearch)]
    pub fn ef_search(&self) -> usize {
        self.index.config().ef_search
    }

    /// Sets the candidates kept while searching (at least 1; a search keeps at least `k`).
    #[wasm_bindgen(setter, js_name = efSearch)]
    pub fn set_ef_search(&mut self, ef: usize) {
        self.index.set_ef_search(ef);
    }

    /// The whole index (graph and vectors) as bytes, for {@link VectorIndex.fromBytes}: a page
    /// can keep it in IndexedDB instead of rebuilding.
    #[wasm_bindgen(js_name = toBytes)]
    pub fn to_bytes(&self) -> Vec<u8> {
        self.index.snapshot()
    }

    /// An index from {@link VectorIndex.toBytes}.
    ///
    /// @throws {Error} `code: "DECODE"` for bytes that are not a consistent index.
    #[wasm_bindgen(js_name = fromBytes)]
    pub fn from_bytes(bytes: &[u8]) -> JsResult<VectorIndex> {
        Ok(VectorIndex {
            index: Hnsw::restore(bytes).map_err(js)?,
        })
    }
}
