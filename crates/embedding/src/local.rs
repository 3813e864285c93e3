//! The in-page model: a BERT-style ONNX sentence encoder (all-MiniLM-L6-v2) run by tract, with
//! the HF tokenizer, mean pooling over the attention mask and L2 normalisation.

use std::{cell::RefCell, io::Cursor};

use tokenizers::{Encoding, Tokenizer, TruncationParams};
use tract_onnx::pb::{GraphProto, NodeProto, TensorProto};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::DimLike;

use crate::vector::normalize;
use crate::{EmbeddingError, Encoder};

/// Tokens per text the model sees; longer texts are truncated (the model was trained at 256).
pub const MAX_TOKENS: usize = 256;

/// Padded tokens (rows × longest row) one model run takes at most, unless a single row is longer.
const RUN_TOKENS: usize = 1024;

/// A loaded local encoder: tokenizer plus an optimised tract plan.
pub struct LocalModel {
    tokenizer: Tokenizer,
    /// The plan's run state, kept between runs so its buffers are reused.
    state: RefCell<TypedSimpleState>,
    dims: usize,
    wants_token_types: bool,
}

impl std::fmt::Debug for LocalModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalModel")
            .field("dims", &self.dims)
            .finish_non_exhaustive()
    }
}

impl LocalModel {
    /// Loads an ONNX encoder (`model`) whose output 0 is `last_hidden_state` `[batch, seq, dims]`
    /// and its `tokenizer.json`.
    pub fn load(model: &[u8], tokenizer: &[u8]) -> Result<Self, EmbeddingError> {
        let mut tokenizer = Tokenizer::from_bytes(tokenizer)
            .map_err(|e| EmbeddingError::Tokenizer(e.to_string()))?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..TruncationParams::default()
            }))
            .map_err(|e| EmbeddingError::Tokenizer(e.to_string()))?;
        // The file pads every text to a fixed length; rows are padded per run instead.
        tokenizer.with_padding(None);

        // The file's value_info claims shapes the graph does not produce (a broadcast mask); ignore it.
        let onnx = tract_onnx::onnx().with_ignore_value_info(true);
        let mut proto = onnx
            .proto_model_for_read(&mut Cursor::new(model))
            .map_err(model_error)?;
        let graph = proto
            .graph
            .as_mut()
            .ok_or_else(|| EmbeddingError::Model("the ONNX file has no graph".into()))?;
        gather_before_dequantize(graph);
        let wants_token_types = graph.input.iter().any(|i| i.name == "token_type_ids");
        let typed = onnx
            .model_for_proto_model(&proto)
            .map_err(model_error)?
            .into_optimized()
            .map_err(model_error)?;
        let dims = output_dims(&typed)?;
        let plan = TypedSimplePlan::new(typed).map_err(model_error)?;
        let state = RefCell::new(TypedSimpleState::new(&plan).map_err(model_error)?);
        Ok(LocalModel {
            tokenizer,
            state,
            dims,
            wants_token_types,
        })
    }

    /// Dimensions of the vectors this model produces (384 for MiniLM-L6).
    pub fn dims(&self) -> usize {
        self.dims
    }

    /// How many tokens `text` becomes (after truncation), special tokens included.
    pub fn count_tokens(&self, text: &str) -> Result<usize, EmbeddingError> {
        let encoding = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| EmbeddingError::Tokenizer(e.to_string()))?;
        Ok(encoding.len())
    }

    /// Embeds `texts`: unit-length vectors in order, and the tokens they took. Texts are run
    /// in groups of similar length, so short texts are not padded to the longest of the call.
    pub fn embed_batch(&self, texts: &[&str]) -> Result<(Vec<Vec<f32>>, u64), EmbeddingError> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| EmbeddingError::Tokenizer(e.to_string()))?;
        let mut order: Vec<usize> = (0..encodings.len()).collect();
        order.sort_by_key(|&i| encodings[i].len());
        let mut vectors = vec![Vec::new(); encodings.len()];
        let mut rest = &order[..];
        while !rest.is_empty() {
            // Rows until the padded group reaches RUN_TOKENS (the longest row sets the width).
            let mut rows = 1;
            while rows < rest.len() && (rows + 1) * encodings[rest[rows]].len().max(1) <= RUN_TOKENS
            {
                rows += 1;
            }
            let (group, tail) = rest.split_at(rows);
            let run: Vec<&Encoding> = group.iter().map(|&i| &encodings[i]).collect();
            for (&i, vector) in group.iter().zip(self.run(&run)?) {
                vectors[i] = vector;
            }
            rest = tail;
        }
        let tokens = encodings.iter().map(|e| e.len() as u64).sum();
        Ok((vectors, tokens))
    }

    /// One model run over `encodings`, padded to the longest.
    fn run(&self, encodings: &[&Encoding]) -> Result<Vec<Vec<f32>>, EmbeddingError> {
        let batch = encodings.len();
        let seq = encodings.iter().map(|e| e.len()).max().unwrap_or(0).max(1);
        let mut ids = vec![0i64; batch * seq];
        let mut mask = vec![0i64; batch * seq];
        let mut types = vec![0i64; batch * seq];
        for (row, encoding) in encodings.iter().enumerate() {
            let base = row * seq;
            for (col, ((&id, &m), &t)) in encoding
                .get_ids()
                .iter()
                .zip(encoding.get_attention_mask())
                .zip(encoding.get_type_ids())
                .enumerate()
            {
                ids[base + col] = i64::from(id);
                mask[base + col] = i64::from(m);
                types[base + col] = i64::from(t);
            }
        }
        let shape = [batch, seq];
        let tensor = |data: &[i64]| -> Result<TValue, EmbeddingError> {
            Ok(Tensor::from_shape(&shape, data)
                .map_err(model_error)?
                .into_tvalue())
        };
        let mut inputs: TVec<TValue> = tvec![tensor(&ids)?, tensor(&mask)?];
        if self.wants_token_types {
            inputs.push(tensor(&types)?);
        }
        let outputs = self.state.borrow_mut().run(inputs).map_err(model_error)?;
        let hidden = outputs[0]
            .to_plain_array_view::<f32>()
            .map_err(model_error)?;
        let hidden = hidden
            .into_dimensionality::<tract_ndarray::Ix3>()
            .map_err(|e| EmbeddingError::Model(format!("unexpected output rank: {e}")))?;
        let mut vectors = Vec::with_capacity(batch);
        for row in 0..batch {
            let mut sum = vec![0f32; self.dims];
            let mut count = 0f32;
            for col in (0..seq).filter(|&col| mask[row * seq + col] != 0) {
                count += 1.0;
                let token = hidden.slice(tract_ndarray::s![row, col, ..]);
                sum.iter_mut().zip(token).for_each(|(acc, v)| *acc += *v);
            }
            let scale = 1.0 / count.max(1.0);
            sum.iter_mut().for_each(|v| *v *= scale);
            normalize(&mut sum);
            vectors.push(sum);
        }
        Ok(vectors)
    }
}

impl Encoder for LocalModel {
    fn dims(&self) -> usize {
        self.dims
    }

    fn embed(&self, texts: &[&str]) -> Result<(Vec<Vec<f32>>, u64), EmbeddingError> {
        self.embed_batch(texts)
    }

    fn count_tokens(&self, text: &str) -> Result<u64, EmbeddingError> {
        Ok(LocalModel::count_tokens(self, text)? as u64)
    }
}

fn model_error(error: impl std::fmt::Display) -> EmbeddingError {
    EmbeddingError::Model(format!("{error:#}"))
}

/// The hidden size of output 0, which must be a concrete number.
fn output_dims(model: &TypedModel) -> Result<usize, EmbeddingError> {
    let fact = model.output_fact(0).map_err(model_error)?;
    let last = fact
        .shape
        .iter()
        .last()
        .ok_or_else(|| EmbeddingError::Model("the model's output has no dimensions".into()))?;
    last.to_usize()
        .map_err(|_| EmbeddingError::Model(format!("the output's last dimension is {last}")))
}

/// Rewrites `Gather(Mul(Cast(q), scale), ids)` — an int8 embedding table dequantised as a whole —
/// into `Mul(Cast(Gather(q, ids)), Gather(scale, ids))`, which dequantises only the rows the text
/// uses. tract folds constants only up to a small budget, so without this every run turns the
/// 30522 × 384 word table into floats (47 MB). The result is the same number for number.
pub fn gather_before_dequantize(graph: &mut GraphProto) {
    let initializers: std::collections::HashMap<&str, &TensorProto> = graph
        .initializer
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();
    let producer = |name: &str| {
        graph
            .node
            .iter()
            .position(|n| n.output.iter().any(|o| o == name))
    };
    let mut rewrites = Vec::new();
    for (gather_at, gather) in graph.node.iter().enumerate() {
        if gather.op_type != "Gather" || gather_axis(gather) != 0 || gather.input.len() != 2 {
            continue;
        }
        let Some(mul_at) = producer(&gather.input[0]) else {
            continue;
        };
        let mul = &graph.node[mul_at];
        if mul.op_type != "Mul" || mul.input.len() != 2 {
            continue;
        }
        let Some(cast_at) = producer(&mul.input[0]) else {
            continue;
        };
        let cast = &graph.node[cast_at];
        let (Some(quantized), Some(scale)) = (
            initializers.get(cast.input[0].as_str()),
            initializers.get(mul.input[1].as_str()),
        ) else {
            continue;
        };
        let rows = quantized.dims.first().copied();
        let per_row = scale.dims.len() == 2 && scale.dims[0] > 1;
        let scalar = scale.dims.iter().product::<i64>() == 1;
        if cast.op_type != "Cast" || !(scalar || (per_row && scale.dims.first().copied() == rows)) {
            continue;
        }
        rewrites.push((gather_at, mul_at, cast_at, per_row));
    }
    let mut dead = Vec::new();
    let mut added = Vec::new();
    for (gather_at, mul_at, cast_at, per_row) in rewrites {
        let gather = graph.node[gather_at].clone();
        let mul = &graph.node[mul_at];
        let cast = &graph.node[cast_at];
        let out = &gather.output[0];
        let ids = &gather.input[1];
        let node =
            |op: &str, inputs: Vec<String>, output: String, template: &NodeProto| NodeProto {
                name: format!("{output}__node"),
                op_type: op.to_owned(),
                input: inputs,
                output: vec![output],
                attribute: template.attribute.clone(),
                ..NodeProto::default()
            };
        let rows_q = format!("{out}__rows_q");
        let rows_f = format!("{out}__rows_f");
        let mut replacement = vec![
            node(
                "Gather",
                vec![cast.input[0].clone(), ids.clone()],
                rows_q.clone(),
                &gather,
            ),
            node("Cast", vec![rows_q], rows_f.clone(), cast),
        ];
        let scale_input = if per_row {
            let rows_scale = format!("{out}__rows_scale");
            replacement.push(node(
                "Gather",
                vec![mul.input[1].clone(), ids.clone()],
                rows_scale.clone(),
                &gather,
            ));
            rows_scale
        } else {
            mul.input[1].clone()
        };
        replacement.push(node("Mul", vec![rows_f, scale_input], out.clone(), mul));
        dead.push(gather_at);
        let whole_table = &mul.output[0];
        let other_users = graph
            .node
            .iter()
            .enumerate()
            .any(|(i, n)| i != gather_at && n.input.iter().any(|x| x == whole_table));
        if !other_users {
            dead.extend([mul_at, cast_at]);
        }
        added.push((gather_at, replacement));
    }
    // Put each replacement where its Gather was (the node list is topologically ordered).
    let mut nodes = Vec::with_capacity(graph.node.len() + added.len() * 3);
    for (i, node) in std::mem::take(&mut graph.node).into_iter().enumerate() {
        if let Some((_, replacement)) = added.iter_mut().find(|(at, _)| *at == i) {
            nodes.append(replacement);
        } else if !dead.contains(&i) {
            nodes.push(node);
        }
    }
    graph.node = nodes;
}

fn gather_axis(node: &NodeProto) -> i64 {
    node.attribute
        .iter()
        .find(|a| a.name == "axis")
        .map_or(0, |a| a.i)
}
