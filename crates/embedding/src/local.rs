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

/// Whether [`LocalModel::load`] runs the products with int8 weights in integers: on wasm32 with
/// simd128, where `i32x4.dot_i16x8_s` makes them faster than f32 ones. Natively its portable
/// loop is about 8× slower than tract's f32 kernels.
pub const INTEGER_PRODUCTS: bool = cfg!(all(target_arch = "wasm32", target_feature = "simd128"));

/// A loaded local encoder: tokenizer plus an optimised tract plan for one text at a time.
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
    /// and its `tokenizer.json`. On wasm32 with simd128 the products with int8 weights run in
    /// integers ([`INTEGER_PRODUCTS`]); elsewhere tract's f32 kernels are faster.
    pub fn load(model: &[u8], tokenizer: &[u8]) -> Result<Self, EmbeddingError> {
        Self::load_with(model, tokenizer, INTEGER_PRODUCTS)
    }

    /// [`LocalModel::load`], choosing whether products with int8 weights run in integers.
    pub fn load_with(
        model: &[u8],
        tokenizer: &[u8],
        integer_products: bool,
    ) -> Result<Self, EmbeddingError> {
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
        let mut onnx = tract_onnx::onnx().with_ignore_value_info(true);
        if integer_products {
            crate::integer_matmul::register(&mut onnx);
        }
        let mut proto = onnx
            .proto_model_for_read(&mut Cursor::new(model))
            .map_err(model_error)?;
        let graph = proto
            .graph
            .as_mut()
            .ok_or_else(|| EmbeddingError::Model("the ONNX file has no graph".into()))?;
        gather_before_dequantize(graph);
        fuse_gelu(graph);
        if integer_products {
            crate::integer_matmul::integer_matmuls(graph);
        }
        let wants_token_types = graph.input.iter().any(|i| i.name == "token_type_ids");
        let typed = one_row(
            onnx.model_for_proto_model(&proto)
                .map_err(model_error)?
                .into_typed()
                .map_err(model_error)?,
        )?
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

    /// Embeds `texts`: unit-length vectors in order, and the tokens they took. Each text is one
    /// model run, so none is padded to another's length.
    pub fn embed_batch(&self, texts: &[&str]) -> Result<(Vec<Vec<f32>>, u64), EmbeddingError> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| EmbeddingError::Tokenizer(e.to_string()))?;
        let vectors = encodings
            .iter()
            .map(|encoding| self.run(encoding))
            .collect::<Result<_, _>>()?;
        let tokens = encodings.iter().map(|e| e.len() as u64).sum();
        Ok((vectors, tokens))
    }

    /// One model run over one text's tokens: mean of its token vectors, unit length.
    fn run(&self, encoding: &Encoding) -> Result<Vec<f32>, EmbeddingError> {
        // No tokens (a tokenizer without special tokens, an empty text): nothing to average.
        if encoding.is_empty() {
            return Ok(vec![0.0; self.dims]);
        }
        let seq = encoding.len();
        let column = |values: &[u32]| -> Result<TValue, EmbeddingError> {
            let data: Vec<i64> = values.iter().map(|&v| i64::from(v)).collect();
            Ok(Tensor::from_shape(&[1, seq], &data)
                .map_err(model_error)?
                .into_tvalue())
        };
        let mut inputs: TVec<TValue> = tvec![
            column(encoding.get_ids())?,
            column(encoding.get_attention_mask())?
        ];
        if self.wants_token_types {
            inputs.push(column(encoding.get_type_ids())?);
        }
        let outputs = self.state.borrow_mut().run(inputs).map_err(model_error)?;
        let hidden = outputs[0]
            .to_plain_array_view::<f32>()
            .map_err(model_error)?;
        let hidden = hidden
            .into_dimensionality::<tract_ndarray::Ix3>()
            .map_err(|e| EmbeddingError::Model(format!("unexpected output rank: {e}")))?;
        let row = hidden
            .outer_iter()
            .next()
            .ok_or_else(|| EmbeddingError::Model("the model returned no row".into()))?;
        let mut sum = vec![0f32; self.dims];
        for token in row.outer_iter() {
            sum.iter_mut().zip(token).for_each(|(acc, v)| *acc += *v);
        }
        let scale = 1.0 / seq as f32;
        sum.iter_mut().for_each(|v| *v *= scale);
        normalize(&mut sum);
        Ok(sum)
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

/// Fixes the model's batch axis at one row and states that a text has at least one token. With
/// two free symbols tract cannot prove a tensor big enough for its one-pass element-wise kernels
/// (it keeps ~100 broadcasting Add/Mul nodes on a slow generic path); with one it can, and a run
/// takes about 20% less time. Batches gain nothing from rows run together once those nodes are
/// fast, and one row needs no padding.
fn one_row(model: TypedModel) -> Result<TypedModel, EmbeddingError> {
    let batch = model.symbols.sym("batch");
    model
        .symbols
        .add_assertion("sequence >= 1")
        .map_err(model_error)?;
    let fixed = [(batch, TDim::Val(1))].into_iter().collect();
    model.set_symbols(&fixed).map_err(model_error)
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
        if gather.op_type != "Gather"
            || gather_axis(gather) != 0
            || gather.input.len() != 2
            || gather.output.len() != 1
        {
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
            cast.input
                .first()
                .and_then(|q| initializers.get(q.as_str())),
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

/// How many node inputs and graph outputs read the value `name`.
pub(crate) fn readers(graph: &GraphProto, name: &str) -> usize {
    let inputs = graph
        .node
        .iter()
        .flat_map(|n| &n.input)
        .filter(|i| *i == name)
        .count();
    inputs + graph.output.iter().filter(|o| o.name == name).count()
}

fn gather_axis(node: &NodeProto) -> i64 {
    node.attribute
        .iter()
        .find(|a| a.name == "axis")
        .map_or(0, |a| a.i)
}

/// Replaces the exact GELU the exporter spelled out — `x * (0.5 * (1 + erf(x / √2)))` — with one
/// ONNX `Gelu` node. tract recognises its own expansion of that node and runs it as one pass
/// (`GeluExact`); the exporter's order of the multiplications hides it from that rule, and the
/// five separate element-wise nodes cost about 15% of a run. Multiplying by 0.5 is exact, so the
/// two orders give the same numbers; only the erf kernel differs from the unfused graph's.
pub fn fuse_gelu(graph: &mut GraphProto) {
    let scalar = |name: &str| -> Option<f32> {
        let t = graph.initializer.iter().find(|t| t.name == name)?;
        // a scalar or one value: a constant of higher rank would broadcast x to it
        if t.dims.len() > 1 || t.dims.iter().any(|&d| d != 1) || t.data_type != 1 {
            return None;
        }
        match (t.float_data.first(), t.raw_data.get(..4)) {
            (Some(&v), _) => Some(v),
            (None, Some(raw)) => Some(f32::from_le_bytes(raw.try_into().ok()?)),
            _ => None,
        }
    };
    let is_const = |name: &str, want: f32| scalar(name).is_some_and(|v| v == want);
    let producer = |name: &str| {
        graph
            .node
            .iter()
            .position(|n| n.output.first().is_some_and(|o| o == name))
    };
    let users = |name: &str| readers(graph, name);
    // other operand of a two-input node, given one of them
    let other = |node: &NodeProto, known: &str| -> Option<String> {
        match node.input.as_slice() {
            [a, b] if a == known => Some(b.clone()),
            [a, b] if b == known => Some(a.clone()),
            _ => None,
        }
    };
    let mut fused = Vec::new();
    for (erf_at, erf) in graph.node.iter().enumerate() {
        if erf.op_type != "Erf" || erf.input.len() != 1 || erf.output.len() != 1 {
            continue;
        }
        let Some(div_at) = producer(&erf.input[0]) else {
            continue;
        };
        let div = &graph.node[div_at];
        let [x, root_two] = div.input.as_slice() else {
            continue;
        };
        if div.op_type != "Div" || !is_const(root_two, std::f32::consts::SQRT_2) {
            continue;
        }
        // each of the chain's inner values must feed only the next step
        let step = |from: &str, op: &str, constant: f32| -> Option<usize> {
            if users(from) != 1 {
                return None;
            }
            let at = graph
                .node
                .iter()
                .position(|n| n.input.iter().any(|i| i == from))?;
            let n = &graph.node[at];
            (n.op_type == op && n.output.len() == 1 && is_const(&other(n, from)?, constant))
                .then_some(at)
        };
        let Some(add_at) = step(&erf.output[0], "Add", 1.0) else {
            continue;
        };
        let Some(half_at) = step(&graph.node[add_at].output[0], "Mul", 0.5) else {
            continue;
        };
        let half_out = &graph.node[half_at].output[0];
        if users(&erf.input[0]) != 1 || users(half_out) != 1 {
            continue;
        }
        let Some(out_at) = graph
            .node
            .iter()
            .position(|n| n.input.iter().any(|i| i == half_out))
        else {
            continue;
        };
        let out = &graph.node[out_at];
        if out.op_type != "Mul"
            || out.output.len() != 1
            || other(out, half_out).as_deref() != Some(x.as_str())
        {
            continue;
        }
        fused.push((
            div_at,
            [erf_at, add_at, half_at, out_at],
            x.clone(),
            out.output[0].clone(),
        ));
    }
    let mut dead = Vec::new();
    for (div_at, chain, x, y) in fused {
        graph.node[div_at] = NodeProto {
            name: format!("{y}__gelu"),
            op_type: "Gelu".into(),
            input: vec![x],
            output: vec![y],
            ..NodeProto::default()
        };
        dead.extend(chain);
    }
    let mut at = 0;
    graph.node.retain(|_| {
        at += 1;
        !dead.contains(&(at - 1))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(op: &str, input: &[&str], output: &str) -> NodeProto {
        NodeProto {
            op_type: op.into(),
            input: input.iter().map(|s| s.to_string()).collect(),
            output: vec![output.into()],
            ..NodeProto::default()
        }
    }

    fn scalar(name: &str, value: f32) -> TensorProto {
        TensorProto {
            name: name.into(),
            data_type: 1,
            float_data: vec![value],
            ..TensorProto::default()
        }
    }

    /// The exporter's chain: `h * (0.5 * (1 + erf(h / √2)))`, then a consumer of the result.
    fn exported(half: f32) -> GraphProto {
        GraphProto {
            node: vec![
                node("MatMul", &["in", "w"], "h"),
                node("Div", &["h", "root_two"], "scaled"),
                node("Erf", &["scaled"], "erf"),
                node("Add", &["erf", "one"], "one_plus"),
                node("Mul", &["half", "one_plus"], "halved"),
                node("Mul", &["h", "halved"], "gelu"),
                node("MatMul", &["gelu", "w2"], "out"),
            ],
            initializer: vec![
                scalar("root_two", std::f32::consts::SQRT_2),
                scalar("one", 1.0),
                scalar("half", half),
            ],
            ..GraphProto::default()
        }
    }

    fn ops(graph: &GraphProto) -> Vec<&str> {
        graph.node.iter().map(|n| n.op_type.as_str()).collect()
    }

    #[test]
    fn the_exported_gelu_becomes_one_node() {
        let mut graph = exported(0.5);
        fuse_gelu(&mut graph);
        assert_eq!(ops(&graph), ["MatMul", "Gelu", "MatMul"]);
        assert_eq!(graph.node[1].input, ["h"]);
        assert_eq!(graph.node[1].output, ["gelu"]);
    }

    #[test]
    fn a_chain_that_is_not_gelu_is_left_alone() {
        let mut graph = exported(0.4);
        fuse_gelu(&mut graph);
        assert_eq!(ops(&graph), ops(&exported(0.4)));

        // An inner value read elsewhere must survive, so nothing is fused.
        let mut graph = exported(0.5);
        graph
            .node
            .push(node("Add", &["one_plus", "one"], "elsewhere"));
        let before = ops(&graph).len();
        fuse_gelu(&mut graph);
        assert_eq!(ops(&graph).len(), before);
        assert!(!ops(&graph).contains(&"Gelu"));

        // Nor when an inner value is one of the graph's outputs.
        let mut graph = exported(0.5);
        graph.output.push(tract_onnx::pb::ValueInfoProto {
            name: "erf".into(),
            ..Default::default()
        });
        fuse_gelu(&mut graph);
        assert!(!ops(&graph).contains(&"Gelu"));
    }
}
