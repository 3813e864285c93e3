//! `cosineSimilarity`: comparing embeddings, with the model check that keeps vectors of
//! different models apart.

use chrysalis_embedding::{EmbeddingError, cosine_similarity as cosine};
use js_sys::{Float32Array, Reflect};
use wasm_bindgen::{JsCast, prelude::*};

use crate::error::{CodedError, JsResult, js};

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
