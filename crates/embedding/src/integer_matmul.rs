//! Matrix products on the model's int8 weights in integer arithmetic.
//!
//! The file stores each weight matrix as int8 with a scale per output column, and its graph
//! dequantises them to f32 before every `MatMul`; tract folds that into f32 weights (42 MB for
//! MiniLM) and runs f32 kernels. Here the weights stay integers: each row of activations is
//! scaled to 16-bit integers (one scale per row), the products are summed exactly in i32 (wasm's
//! `i32x4.dot_i16x8_s` does eight multiply-adds in one instruction), and the sum is scaled back.
//! Integer sums are exact, so every engine and every machine gets the same bits, as with the
//! plain SIMD f32 kernels.

use std::sync::Arc;

use tract_onnx::pb::{GraphProto, NodeProto};
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

/// The ONNX op the rewrite emits: inputs `x`, the int8 weights `[k, m]`, their scale (`m` or one
/// value) and an optional bias `[m]`.
pub const OP: &str = "ChrysalisIntegerMatMul";

/// Columns one weight block holds: two v128 of i32 sums.
const BLOCK: usize = 8;

/// Largest inner dimension: a row's sum of `k` products of an int8 weight with an activation
/// integer of at least 1 must stay inside i32 (2³¹ / 128).
const MAX_INNER: usize = 1 << 24;

/// Rewrites `MatMul(x, Mul(Cast(q), scale))`, and a following `Add(_, bias)`, into one [`OP`]
/// node when `q` is an int8 initializer `[k, m]` and `scale`/`bias` are f32 initializers.
pub fn integer_matmuls(graph: &mut GraphProto) {
    let initializer = |name: &str| graph.initializer.iter().find(|t| t.name == name);
    let producer = |name: &str| {
        graph
            .node
            .iter()
            .position(|n| n.output.first().is_some_and(|o| o == name))
    };
    let readers = |name: &str| crate::local::readers(graph, name);
    let reader = |name: &str| {
        graph
            .node
            .iter()
            .position(|n| n.input.iter().any(|i| i == name))
    };
    // A Cast to f32 (ONNX type 1) of one value.
    let cast_to_f32 = |n: &NodeProto| {
        n.op_type == "Cast"
            && n.input.len() == 1
            && n.output.len() == 1
            && n.attribute.iter().any(|a| a.name == "to" && a.i == 1)
    };
    let mut rewrites = Vec::new();
    for (at, matmul) in graph.node.iter().enumerate() {
        let [x, weights] = matmul.input.as_slice() else {
            continue;
        };
        if matmul.op_type != "MatMul" || matmul.output.len() != 1 {
            continue;
        }
        let Some(mul_at) = producer(weights) else {
            continue;
        };
        let mul = &graph.node[mul_at];
        let [cast_out, scale] = mul.input.as_slice() else {
            continue;
        };
        let Some(cast_at) = producer(cast_out).filter(|&c| cast_to_f32(&graph.node[c])) else {
            continue;
        };
        let Some(quantized) = initializer(&graph.node[cast_at].input[0]) else {
            continue;
        };
        let (k, m) = match quantized.dims.as_slice() {
            &[k, m] => (k, m),
            _ => continue,
        };
        // One scale, or one per output column: [], [1], [1, 1], [m] or [1, m] (not [m, 1]).
        let scale_ok = initializer(scale).is_some_and(|t| {
            t.data_type == 1
                && (matches!(t.dims.as_slice(), [] | [1] | [1, 1])
                    || t.dims == [m]
                    || t.dims == [1, m])
        });
        if mul.op_type != "Mul"
            || mul.output.len() != 1
            || quantized.data_type != 3 // INT8
            || !scale_ok
            || !(1..=MAX_INNER as i64).contains(&k)
            || m < 1
        {
            continue;
        }
        let mut inputs = vec![x.clone(), quantized.name.clone(), scale.clone()];
        let mut output = matmul.output[0].clone();
        let mut dead = vec![at];
        // A bias [m] added to the product alone joins the op.
        if let (1, Some(add_at)) = (readers(&output), reader(&output)) {
            let add = &graph.node[add_at];
            let bias = add.input.iter().find(|i| **i != output);
            let bias_ok = bias
                .and_then(|b| initializer(b))
                .is_some_and(|t| t.data_type == 1 && t.dims == [m]);
            if add.op_type == "Add" && add.input.len() == 2 && add.output.len() == 1 && bias_ok {
                inputs.push(bias.cloned().unwrap_or_default());
                output = add.output[0].clone();
                dead.push(add_at);
            }
        }
        rewrites.push((at, dead, [mul_at, cast_at], inputs, output));
    }
    let mut dead = Vec::new();
    for (at, gone, [mul_at, cast_at], inputs, output) in rewrites {
        let weights = graph.node[mul_at].output[0].clone();
        graph.node[at] = NodeProto {
            name: format!("{output}__integer"),
            op_type: OP.into(),
            input: inputs,
            output: vec![output],
            ..NodeProto::default()
        };
        dead.extend(gone.into_iter().filter(|&g| g != at));
        // The dequantisation goes when nothing else reads it, and the Cast when only it did.
        if crate::local::readers(graph, &weights) == 0 && !dead.contains(&mul_at) {
            dead.push(mul_at);
            if crate::local::readers(graph, &graph.node[cast_at].output[0]) == 1 {
                dead.push(cast_at);
            }
        }
    }
    let mut at = 0;
    graph.node.retain(|_| {
        at += 1;
        !dead.contains(&(at - 1))
    });
}

/// Registers [`OP`] with the ONNX loader.
pub fn register(onnx: &mut tract_onnx::Onnx) {
    onnx.op_register
        .insert(OP, |_, _| Ok((expand(IntegerMatMulNode), vec![])));
}

#[derive(Debug, Clone)]
struct IntegerMatMulNode;

impl Expansion for IntegerMatMulNode {
    fn name(&self) -> StaticName {
        OP.into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_output_arity(outputs, 1)?;
        ensure!(
            (3..=4).contains(&inputs.len()),
            "{OP} takes x, the weights, their scale and an optional bias"
        );
        s.equals(&outputs[0].datum_type, DatumType::F32)?;
        s.equals(&inputs[0].rank, &outputs[0].rank)?;
        s.equals(&inputs[1].rank, 2)?;
        s.given(&inputs[0].rank, move |s, rank| {
            ensure!(rank >= 1, "{OP}: x has no axis");
            let last = rank as usize - 1;
            for axis in 0..last {
                s.equals(&inputs[0].shape[axis], &outputs[0].shape[axis])?;
            }
            s.equals(&inputs[0].shape[last], &inputs[1].shape[0])?;
            s.equals(&outputs[0].shape[last], &inputs[1].shape[1])
        })
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        let konst = |at: usize| -> TractResult<Arc<Tensor>> {
            model
                .outlet_fact(inputs[at])?
                .konst
                .clone()
                .with_context(|| format!("{OP}: input {at} is not a constant"))
        };
        let quantized = konst(1)?;
        let scale = konst(2)?;
        let bias = if inputs.len() > 3 {
            Some(konst(3)?)
        } else {
            None
        };
        let weights = Weights::new(
            &quantized
                .to_plain_array_view::<i8>()?
                .into_dimensionality()?,
            &scale
                .to_plain_array_view::<f32>()?
                .iter()
                .copied()
                .collect::<Vec<_>>(),
            bias.as_ref()
                .map(|b| {
                    b.to_plain_array_view::<f32>()
                        .map(|v| v.iter().copied().collect())
                })
                .transpose()?,
        )?;
        model.wire_node(
            prefix,
            IntegerMatMul {
                weights: Arc::new(weights),
            },
            &inputs[..1],
        )
    }
}

/// The prepared weights of one product.
#[derive(Debug)]
struct Weights {
    /// Inner dimension as the input has it.
    k_in: usize,
    /// Inner dimension, rounded up to even (the kernel takes two at a time).
    k: usize,
    /// Output columns.
    m: usize,
    /// Largest activation integer: a row's sum of `k` products of it with an int8 stays inside i32.
    limit: f32,
    /// Per block of [`BLOCK`] columns, per pair of inner rows: the 2 × 8 weights of those rows
    /// interleaved by column (`w[2p][c], w[2p + 1][c]`), as i16; padded columns are zero.
    packed: Vec<i16>,
    /// Per column: the weight scale, and the bias (zero when there is none).
    scale: Vec<f32>,
    bias: Vec<f32>,
}

impl Weights {
    fn new(
        quantized: &tract_ndarray::ArrayView2<i8>,
        scale: &[f32],
        bias: Option<Vec<f32>>,
    ) -> TractResult<Self> {
        let (k_in, m) = quantized.dim();
        ensure!(k_in > 0 && m > 0, "{OP}: empty weights");
        ensure!(
            k_in <= MAX_INNER,
            "{OP}: {k_in} weight rows (at most {MAX_INNER})"
        );
        ensure!(
            scale.len() == m || scale.len() == 1,
            "{OP}: {} scales for {m} columns",
            scale.len()
        );
        let k = k_in.next_multiple_of(2);
        let blocks = m.div_ceil(BLOCK);
        let size = blocks
            .checked_mul(k * BLOCK)
            .with_context(|| format!("{OP}: {k_in} × {m} weights"))?;
        let mut packed = vec![0i16; size];
        for row in 0..k_in {
            let (pair, half) = (row / 2, row % 2);
            for col in 0..m {
                let (block, c) = (col / BLOCK, col % BLOCK);
                packed[(block * k / 2 + pair) * 2 * BLOCK + 2 * c + half] =
                    i16::from(quantized[(row, col)]);
            }
        }
        let scale = if scale.len() == 1 {
            vec![scale[0]; m]
        } else {
            scale.to_vec()
        };
        let bias = bias.unwrap_or_else(|| vec![0.0; m]);
        ensure!(
            bias.len() == m,
            "{OP}: {} biases for {m} columns",
            bias.len()
        );
        let limit = (i32::MAX as f64 / (128.0 * k as f64)).min(32767.0).floor() as f32;
        Ok(Weights {
            k_in,
            k,
            m,
            limit,
            packed,
            scale,
            bias,
        })
    }

    /// `rows` rows of `x` (`k_in` wide) times the weights, into `out` (`m` wide).
    fn apply(&self, x: &[f32], k_in: usize, out: &mut [f32]) {
        let rows = x.len() / k_in;
        let mut quantized = vec![0i16; rows * self.k];
        let mut row_scale = vec![0f32; rows];
        for (row, values) in x.chunks_exact(k_in).enumerate() {
            let largest = values.iter().fold(0f32, |acc, v| acc.max(v.abs()));
            if largest > 0.0 && largest.is_finite() {
                let step = largest / self.limit;
                row_scale[row] = step;
                for (q, v) in quantized[row * self.k..].iter_mut().zip(values) {
                    *q = (v / step).round_ties_even().clamp(-self.limit, self.limit) as i16;
                }
            }
        }
        let blocks = self.m.div_ceil(BLOCK);
        let mut sums = vec![0i32; rows * blocks * BLOCK];
        kernel::sums(&self.packed, &quantized, self.k, blocks, &mut sums);
        let width = blocks * BLOCK;
        for row in 0..rows {
            let sums = &sums[row * width..][..self.m];
            let out = &mut out[row * self.m..][..self.m];
            for (col, value) in out.iter_mut().enumerate() {
                *value = sums[col] as f32 * row_scale[row] * self.scale[col] + self.bias[col];
            }
        }
    }
}

/// The typed op: `x [.., k] → [.., m]` in f32 through integer products.
#[derive(Debug, Clone)]
struct IntegerMatMul {
    weights: Arc<Weights>,
}

impl PartialEq for IntegerMatMul {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.weights, &other.weights)
    }
}

impl Eq for IntegerMatMul {}

impl Op for IntegerMatMul {
    fn name(&self) -> StaticName {
        "IntegerMatMul".into()
    }
    op_as_typed_op!();
}

impl EvalOp for IntegerMatMul {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = args_1!(inputs);
        let x = x.cast_to::<f32>()?;
        let k_in = *x.shape().last().context("a scalar input")?;
        ensure!(
            k_in == self.weights.k_in,
            "{OP}: input width {k_in} for {} weight rows",
            self.weights.k_in
        );
        let mut shape: TVec<usize> = x.shape().into();
        *shape.last_mut().unwrap() = self.weights.m;
        let view = x.to_plain_array_view::<f32>()?;
        let x = view.as_slice().context("a non-contiguous input")?;
        let mut out = vec![0f32; shape.iter().product()];
        self.weights.apply(x, k_in, &mut out);
        Ok(tvec![Tensor::from_shape(&shape, &out)?.into_tvalue()])
    }
}

impl TypedOp for IntegerMatMul {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let mut shape = inputs[0].shape.to_tvec();
        let last = shape.last_mut().context("a scalar input")?;
        ensure!(
            last.to_i64()
                .map_or(true, |k| k as usize == self.weights.k_in),
            "{OP}: input width {last} for {} weight rows",
            self.weights.k_in
        );
        *last = self.weights.m.to_dim();
        Ok(tvec![f32::fact(shape)])
    }
    as_op!();
}

/// `sums[row][col] = Σ_i x[row][i] · w[i][col]`, exactly, over `blocks` blocks of columns.
mod kernel {
    use super::BLOCK;

    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    pub fn sums(packed: &[i16], x: &[i16], k: usize, blocks: usize, sums: &mut [i32]) {
        let rows = x.len() / k;
        let width = blocks * BLOCK;
        for block in 0..blocks {
            let w = &packed[block * k * BLOCK..][..k * BLOCK];
            let mut row = 0;
            while row + 4 <= rows {
                tile::<4>(
                    w,
                    &x[row * k..],
                    k,
                    &mut sums[row * width + block * BLOCK..],
                    width,
                );
                row += 4;
            }
            while row < rows {
                tile::<1>(
                    w,
                    &x[row * k..],
                    k,
                    &mut sums[row * width + block * BLOCK..],
                    width,
                );
                row += 1;
            }
        }
    }

    /// `R` rows × 8 columns: per pair of inner rows, one 16-byte weight load per 4 columns and
    /// one `i32x4.dot_i16x8_s` per row and 4 columns (8 multiply-adds).
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    #[inline(always)]
    fn tile<const R: usize>(w: &[i16], x: &[i16], k: usize, out: &mut [i32], width: usize) {
        use std::arch::wasm32::*;
        assert!(w.len() >= k * BLOCK && x.len() >= (R - 1) * k + k);
        assert!(out.len() >= (R - 1) * width + BLOCK);
        let mut lo = [i32x4_splat(0); R];
        let mut hi = [i32x4_splat(0); R];
        let w = w.as_ptr();
        let x = x.as_ptr();
        for pair in 0..k / 2 {
            // SAFETY: the asserts above bound every offset: pair < k/2 and r < R.
            unsafe {
                let w_lo = v128_load(w.add(pair * 2 * BLOCK) as *const v128);
                let w_hi = v128_load(w.add(pair * 2 * BLOCK + BLOCK) as *const v128);
                for r in 0..R {
                    let a = v128_load32_splat(x.add(r * k + 2 * pair) as *const u32);
                    lo[r] = i32x4_add(lo[r], i32x4_dot_i16x8(a, w_lo));
                    hi[r] = i32x4_add(hi[r], i32x4_dot_i16x8(a, w_hi));
                }
            }
        }
        for r in 0..R {
            let at = out[r * width..].as_mut_ptr();
            // SAFETY: out holds 8 values from r * width on (asserted above).
            unsafe {
                v128_store(at as *mut v128, lo[r]);
                v128_store(at.add(4) as *mut v128, hi[r]);
            }
        }
    }

    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    pub fn sums(packed: &[i16], x: &[i16], k: usize, blocks: usize, sums: &mut [i32]) {
        let width = blocks * BLOCK;
        for (row, x) in x.chunks_exact(k).enumerate() {
            for block in 0..blocks {
                let w = &packed[block * k * BLOCK..][..k * BLOCK];
                let mut acc = [0i32; BLOCK];
                for (pair, w) in w.chunks_exact(2 * BLOCK).enumerate() {
                    let (a0, a1) = (i32::from(x[2 * pair]), i32::from(x[2 * pair + 1]));
                    for (c, acc) in acc.iter_mut().enumerate() {
                        *acc += a0 * i32::from(w[2 * c]) + a1 * i32::from(w[2 * c + 1]);
                    }
                }
                sums[row * width + block * BLOCK..][..BLOCK].copy_from_slice(&acc);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The f32 product of the dequantised weights (the graph's own arithmetic), and the sum of
    /// its terms' magnitudes, which the rounding of 16-bit activations is relative to.
    fn reference(
        x: &[f32],
        k: usize,
        q: &[i8],
        m: usize,
        scale: &[f32],
        bias: &[f32],
    ) -> Vec<(f32, f32)> {
        x.chunks(k)
            .flat_map(|row| {
                (0..m).map(move |col| {
                    let terms = (0..k).map(|i| row[i] * (f32::from(q[i * m + col]) * scale[col]));
                    (
                        terms.clone().sum::<f32>() + bias[col],
                        terms.map(f32::abs).sum::<f32>(),
                    )
                })
            })
            .collect()
    }

    #[test]
    fn integer_products_match_the_dequantised_f32_product() {
        let mut seed = 7u32;
        let mut next = || {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        for (rows, k, m) in [(1, 5, 3), (6, 384, 20), (9, 1536, 17)] {
            let q: Vec<i8> = (0..k * m).map(|_| (next() * 255.0) as i8).collect();
            let scale: Vec<f32> = (0..m).map(|_| 0.01 + next().abs() * 0.01).collect();
            let bias: Vec<f32> = (0..m).map(|_| next()).collect();
            let x: Vec<f32> = (0..rows * k).map(|_| next() * 8.0).collect();
            let view = tract_ndarray::ArrayView2::from_shape((k, m), &q).unwrap();
            let weights = Weights::new(&view, &scale, Some(bias.clone())).unwrap();
            let mut out = vec![0f32; rows * m];
            weights.apply(&x, k, &mut out);
            let want = reference(&x, k, &q, m, &scale, &bias);
            for (got, (want, magnitude)) in out.iter().zip(&want) {
                // 16-bit rounding: at most half a step (largest / limit) per term
                assert!(
                    (got - want).abs() <= 1e-4 * magnitude,
                    "{got} vs {want} at {rows}x{k}x{m}"
                );
            }
        }
    }

    #[test]
    fn the_largest_activations_and_weights_stay_inside_i32() {
        let k = 1536;
        let q = vec![-128i8; k];
        let view = tract_ndarray::ArrayView2::from_shape((k, 1), &q).unwrap();
        let weights = Weights::new(&view, &[1.0], None).unwrap();
        let x = vec![-1000f32; k];
        let mut out = [0f32];
        weights.apply(&x, k, &mut out);
        let want = 1000.0 * 128.0 * k as f32;
        assert!((out[0] - want).abs() <= want * 1e-6, "{} vs {want}", out[0]);
    }

    fn node(op: &str, input: &[&str], output: &str, to: Option<i64>) -> NodeProto {
        NodeProto {
            op_type: op.into(),
            input: input.iter().map(|s| s.to_string()).collect(),
            output: vec![output.into()],
            attribute: to
                .map(|to| tract_onnx::pb::AttributeProto {
                    name: "to".into(),
                    i: to,
                    ..Default::default()
                })
                .into_iter()
                .collect(),
            ..NodeProto::default()
        }
    }

    fn tensor(name: &str, data_type: i32, dims: &[i64]) -> tract_onnx::pb::TensorProto {
        tract_onnx::pb::TensorProto {
            name: name.into(),
            data_type,
            dims: dims.to_vec(),
            ..Default::default()
        }
    }

    /// `MatMul(x, Mul(Cast(q), scale)) + bias` with q int8 [4, 4].
    fn exported(scale_dims: &[i64], cast_to: i64) -> GraphProto {
        GraphProto {
            node: vec![
                node("Cast", &["q"], "q_f", Some(cast_to)),
                node("Mul", &["q_f", "scale"], "w", None),
                node("MatMul", &["x", "w"], "xw", None),
                node("Add", &["xw", "bias"], "y", None),
            ],
            initializer: vec![
                tensor("q", 3, &[4, 4]),
                tensor("scale", 1, scale_dims),
                tensor("bias", 1, &[4]),
            ],
            ..GraphProto::default()
        }
    }

    fn ops(graph: &GraphProto) -> Vec<&str> {
        graph.node.iter().map(|n| n.op_type.as_str()).collect()
    }

    #[test]
    fn the_exported_product_and_its_bias_become_one_op() {
        for dims in [&[1, 4][..], &[4], &[]] {
            let mut graph = exported(dims, 1);
            integer_matmuls(&mut graph);
            assert_eq!(ops(&graph), [OP]);
            assert_eq!(graph.node[0].input, ["x", "q", "scale", "bias"]);
            assert_eq!(graph.node[0].output, ["y"]);
        }
    }

    #[test]
    fn products_that_are_not_that_are_left_alone() {
        // a scale per row ([k, 1]), a Cast to another type
        for mut graph in [exported(&[4, 1], 1), exported(&[1, 4], 7)] {
            integer_matmuls(&mut graph);
            assert_eq!(ops(&graph), ["Cast", "Mul", "MatMul", "Add"]);
        }
        // the dequantised weights and the bare product are also graph outputs: both stay
        let mut graph = exported(&[1, 4], 1);
        for name in ["w", "xw"] {
            graph.output.push(tract_onnx::pb::ValueInfoProto {
                name: name.into(),
                ..Default::default()
            });
        }
        integer_matmuls(&mut graph);
        assert_eq!(ops(&graph), ["Cast", "Mul", OP, "Add"]);
        assert_eq!(graph.node[2].output, ["xw"]);
    }

    #[test]
    fn a_zero_row_gives_the_bias() {
        let q = vec![3i8; 4 * 2];
        let view = tract_ndarray::ArrayView2::from_shape((4, 2), &q).unwrap();
        let weights = Weights::new(&view, &[0.5], Some(vec![1.5, -2.0])).unwrap();
        let mut out = [9f32; 2];
        weights.apply(&[0.0; 4], 4, &mut out);
        assert_eq!(out, [1.5, -2.0]);
    }
}
