//! BESTformer's binary attention (docs/models.md section 3): the attention map is itself a
//! spike map, `A = LIF_soft(Q K^T)`, the LIF running over T for every map element
//! (soft reset, v_th = 1, tau = 2, decay_input, detach_reset) in one fused kernel that
//! writes the map packed to bits; then `Y = (A V) * 0.125 * lambda[t, h]` with a
//! learnable lambda `[T, heads]`. The d x d order for large N computes
//! `A = LIF(K^T V)` (`[d, d]` per (t, b, h)) and `Y = Q A * 0.125 * lambda`.
//!
//! Q, K and V are spikes: every product runs on packed bits (AND-popcount), exactly. The
//! map kernel computes the scores from the packed operands and runs the LIF on them in
//! registers, so the f32 scores are never stored; the output kernel multiplies the packed
//! map with the packed spikes and applies `0.125 * lambda`. Backward: Sigmoid(alpha)
//! surrogate with BPTT over T for the map LIF (the scores recomputed from the packed
//! operands), the products linear (straight through the spikes).

use super::form::{
    AttentionOp, FormGrads, FormInputs, FormParam, FormParamKind, FormSaved, FormSetup, Products,
};
use super::packed::{
    bits_product, factor_dims, kernel, map_grid, pack_spike_rows, pack_transposed, score_dims,
    score_words, unpack, ProductOutput, SCORE_WG,
};
use super::{AttnShape, MapRate};
use crate::error::{Error, Result};
use crate::gpu::{grid_1d, Access, DType, GpuContext, Kernel, Tensor};
use crate::ops::{matmul, to_u32, LifConfig, MatmulForm, Neuron};

/// The learnable lambda's name in each block's attention (`block.{i}.attn.<this>`).
pub const BINARY_LAMBDA: &str = "lambda_attn";

/// The LIF neuron run over T on every attention-map element (BESTformer's `LIF_soft`):
/// decay_input (`H = V + (X - V) / tau`), fire at `H >= v_th`, soft reset
/// (`V = H - v_th S`), detach_reset, and the Sigmoid(alpha) surrogate in backward.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MapLif {
    /// Membrane time constant.
    pub tau: f32,
    /// Firing threshold.
    pub v_th: f32,
    /// Sharpness of the Sigmoid surrogate.
    pub alpha: f32,
}

impl Default for MapLif {
    /// BESTformer's attention LIF: tau = 2, v_th = 1, Sigmoid surrogate with alpha = 4.
    fn default() -> Self {
        Self {
            tau: 2.0,
            v_th: 1.0,
            alpha: 4.0,
        }
    }
}

/// Which map is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapOrder {
    /// `A = LIF(Q K^T)`, `[N, N]` per (t, b, h); `Y = A V` (CIFAR).
    Tokens,
    /// `A = LIF(K^T V)`, `[d, d]` per (t, b, h); `Y = Q A` (ImageNet, large N).
    Features,
}

#[derive(Debug, Clone, Copy, PartialEq)]
/// Settings of the binary attention op.
pub struct BinaryAttentionConfig {
    /// N x N or d x d map.
    pub order: MapOrder,
    /// The map's neuron.
    pub lif: MapLif,
    /// The fixed scale in front of lambda (0.125).
    pub scale: f32,
}

impl Default for BinaryAttentionConfig {
    fn default() -> Self {
        Self {
            order: MapOrder::Tokens,
            lif: MapLif::default(),
            scale: 0.125,
        }
    }
}

/// What [`binary_attention_backward`] reads.
#[derive(Debug, Clone)]
pub struct BinaryAttentionSaved {
    /// Spikes Q `[T, B, heads, N, d]`.
    pub q: Tensor, // [T, B, heads, N, d]
    /// Spikes K `[T, B, heads, N, d]`.
    pub k: Tensor, // [T, B, heads, N, d]
    /// Spikes V `[T, B, heads, N, d]`.
    pub v: Tensor, // [T, B, heads, N, d]
    /// Lambda `[T, heads]`.
    pub lambda: Tensor, // [T, heads]
    /// The packed operands of the map LIF's input `S = X Y^T` (integer counts), which
    /// backward recomputes. Tokens: `X = Q`, `Y = K`, `PackedBits [T * B * heads, N, d]`
    /// (`S = Q K^T`); Features: `X = V^T`, `Y = K^T`, `PackedBits [T * B * heads, d, N]`
    /// (`S = (K^T V)^T`).
    pub score_operands: (Tensor, Tensor),
    /// The spike map, packed along its last axis. Tokens: `A` `PackedBits
    /// [T * B * heads, N, N]` (bits along the key axis j); Features: `A^T` `PackedBits
    /// [T * B * heads, d, d]` (row = output feature c, bits along a).
    pub map: Tensor,
    /// The settings of the forward.
    pub config: BinaryAttentionConfig,
    /// Fraction of ones in the map (counted by the map kernel).
    pub rate: MapRate,
}

impl FormSaved for BinaryAttentionSaved {
    /// `dlearned`: lambda's gradient, shaped as the model declares lambda.
    fn backward(&self, ctx: &GpuContext, dy: &Tensor) -> Result<FormGrads> {
        let g = binary_attention_backward(ctx, dy, self)?;
        let (t, heads) = (g.dlambda.shape()[0], g.dlambda.shape()[1]);
        Ok(FormGrads {
            dq: g.dq,
            dk: g.dk,
            dv: g.dv,
            dlearned: vec![g.dlambda.reshape(&lambda_shape(t, heads))?],
        })
    }

    fn rate(&self) -> &MapRate {
        &self.rate
    }

    fn bytes(&self) -> u64 {
        let (x, y) = &self.score_operands;
        [&self.q, &self.k, &self.v, x, y, &self.map]
            .into_iter()
            .map(Tensor::byte_len)
            .sum()
    }

    fn binary_map(&self) -> Option<&Tensor> {
        (self.config.order == MapOrder::Tokens).then_some(&self.map)
    }

    fn products(&self) -> Products {
        match self.config.order {
            MapOrder::Tokens => Products::tokens(&self.q),
            MapOrder::Features => Products::features(&self.k),
        }
    }
}

/// Gradients of [`binary_attention_forward`]'s inputs.
#[derive(Debug, Clone)]
pub struct BinaryAttentionGrads {
    /// Gradient of Q.
    pub dq: Tensor, // [T, B, heads, N, d]
    /// Gradient of K.
    pub dk: Tensor, // [T, B, heads, N, d]
    /// Gradient of V.
    pub dv: Tensor, // [T, B, heads, N, d]
    /// Gradient of lambda.
    pub dlambda: Tensor, // [T, heads]
}

/// Binary attention as a form, for a model's T and heads (lambda `[T, 1, heads, 1, 1]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BinaryAttention {
    /// Time steps T.
    pub time_steps: usize,
    /// Heads.
    pub heads: usize,
    /// The op's settings.
    pub config: BinaryAttentionConfig,
}

impl BinaryAttention {
    /// BESTformer's settings, the map in the d x d order when `setup.feature_order`.
    pub fn new(setup: &FormSetup) -> Self {
        let order = if setup.feature_order {
            MapOrder::Features
        } else {
            MapOrder::Tokens
        };
        Self {
            time_steps: setup.time_steps,
            heads: setup.heads,
            config: BinaryAttentionConfig {
                order,
                ..BinaryAttentionConfig::default()
            },
        }
    }
}

/// The model's shape of lambda, `[T, 1, heads, 1, 1]` (the reference's broadcast).
fn lambda_shape(t: usize, heads: usize) -> Vec<usize> {
    vec![t, 1, heads, 1, 1]
}

impl AttentionOp for BinaryAttention {
    fn branch_neurons(&self) -> [Neuron; 3] {
        [Neuron::Lif(LifConfig::default()); 3]
    }

    fn output_is_spikes(&self) -> bool {
        true
    }

    fn params(&self) -> Vec<FormParam> {
        vec![FormParam {
            name: BINARY_LAMBDA,
            shape: lambda_shape(self.time_steps, self.heads),
            kind: FormParamKind::Learned,
            init: 1.0,
        }]
    }

    fn forward(
        &self,
        ctx: &GpuContext,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        inputs: &FormInputs,
    ) -> Result<(Tensor, Box<dyn FormSaved>)> {
        inputs.expect("binary_attention_forward", &self.params())?;
        let lambda = inputs.learned[0].reshape(&[self.time_steps, self.heads])?;
        let (y, saved) = binary_attention_forward(ctx, q, k, v, &lambda, &self.config)?;
        Ok((y, Box::new(saved)))
    }
}

/// Binary attention on spikes Q, K, V f32 `[T, B, heads, N, d]` ({0,1}; a bit is
/// `x > 0`) with `lambda` f32 `[T, heads]`. Returns Y `[T, B, heads, N, d]`.
pub fn binary_attention_forward(
    ctx: &GpuContext,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    lambda: &Tensor,
    config: &BinaryAttentionConfig,
) -> Result<(Tensor, BinaryAttentionSaved)> {
    const OP: &str = "binary_attention_forward";
    let s = AttnShape::of(OP, q)?;
    s.expect_all(OP, &[k, v])?;
    lambda.expect(OP, &[s.t, s.heads], DType::F32)?;
    let (xb, yb) = match config.order {
        MapOrder::Tokens => (
            pack_spike_rows(ctx, &s.batched(q)?)?, // Q [TBH, N, d]
            pack_spike_rows(ctx, &s.batched(k)?)?, // K [TBH, N, d]
        ),
        MapOrder::Features => (
            pack_transposed(ctx, &s.batched(v)?)?, // V^T [TBH, d(c), N]
            pack_transposed(ctx, &s.batched(k)?)?, // K^T [TBH, d(a), N]
        ),
    };
    let (map, ones) = score_lif_map(ctx, &xb, &yb, s.t, &config.lif)?;
    let y = match config.order {
        MapOrder::Tokens => {
            // A V: the rows of A against the rows of V^T.
            let vt = pack_transposed(ctx, &s.batched(v)?)?; // [TBH, d, N]
            bits_product_scaled(ctx, &map, &vt, lambda, config.scale)?
        }
        MapOrder::Features => {
            // Q A: the rows of Q against the rows of A^T.
            let qb = pack_spike_rows(ctx, &s.batched(q)?)?; // [TBH, N, d]
            bits_product_scaled(ctx, &qb, &map, lambda, config.scale)?
        }
    };
    let elements = map.len();
    let saved = BinaryAttentionSaved {
        q: q.clone(),
        k: k.clone(),
        v: v.clone(),
        lambda: lambda.clone(),
        rate: MapRate::counted(ones, elements),
        score_operands: (xb, yb),
        map,
        config: *config,
    };
    Ok((y.reshape(&s.dims())?, saved))
}

/// Gradients for the upstream gradient `dy` `[T, B, heads, N, d]`. With
/// `dYs = 0.125 lambda dY`: `d lambda = 0.125 sum dY * product`, which is
/// `0.125 sum A * (dY V^T)` (Features: `0.125 sum A^T * (dY^T Q)`), summed by the map
/// LIF's backward from the unscaled dA it reads; Tokens:
/// `dA = dYs V^T`, `dV = A^T dYs`, `dX = LIF'(dA)`, `dQ = dX K`, `dK = dX^T Q`;
/// Features: `dA^T = dYs^T Q`, `dQ = dYs A^T`, `dX^T = LIF'(dA^T)`, `dK = V dX^T`,
/// `dV = K dX`.
pub fn binary_attention_backward(
    ctx: &GpuContext,
    dy: &Tensor,
    saved: &BinaryAttentionSaved,
) -> Result<BinaryAttentionGrads> {
    const OP: &str = "binary_attention_backward";
    let s = AttnShape::of(OP, &saved.q)?;
    s.expect_all(OP, &[dy])?;
    let config = &saved.config;
    let (q, k, v) = (
        s.batched(&saved.q)?,
        s.batched(&saved.k)?,
        s.batched(&saved.v)?,
    );
    let dy = s.batched(dy)?;
    // The output scale 0.125 * lambda[t, h] is folded into the map LIF's backward and
    // into the unpacked map rather than applied to dY in a pass of its own.
    let out_scale = (&saved.lambda, config.scale);
    let (x, y) = &saved.score_operands;
    let (dq, dk, dv, dlambda) = match config.order {
        MapOrder::Tokens => {
            let da = matmul(ctx, &dy, &v, MatmulForm::ABt)?; // [TBH, N, N], unscaled
            let (dx, dlambda) = score_lif_backward(ctx, x, y, &da, out_scale, &config.lif)?;
            let dq = matmul(ctx, &dx, &k, MatmulForm::AB)?;
            let dk = matmul(ctx, &dx, &q, MatmulForm::AtB)?;
            let a = unpack_scaled(ctx, &saved.map, out_scale.0, out_scale.1)?;
            let dv = matmul(ctx, &a, &dy, MatmulForm::AtB)?;
            (dq, dk, dv, dlambda)
        }
        MapOrder::Features => {
            let dat = matmul(ctx, &dy, &q, MatmulForm::AtB)?; // [TBH, d(c), d(a)], unscaled
            let (dxt, dlambda) = score_lif_backward(ctx, x, y, &dat, out_scale, &config.lif)?;
            let dk = matmul(ctx, &v, &dxt, MatmulForm::AB)?;
            let dv = matmul(ctx, &k, &dxt, MatmulForm::ABt)?;
            let at = unpack_scaled(ctx, &saved.map, out_scale.0, out_scale.1)?;
            let dq = matmul(ctx, &dy, &at, MatmulForm::AB)?;
            (dq, dk, dv, dlambda)
        }
    };
    Ok(BinaryAttentionGrads {
        dq: dq.reshape(&s.dims())?,
        dk: dk.reshape(&s.dims())?,
        dv: dv.reshape(&s.dims())?,
        dlambda,
    })
}

// ---- the map kernels -----------------------------------------------------------------

use Access::{Read as R, ReadWrite as W};

const SCORE_LIF_MAP: Kernel = kernel("score_lif_map", &[R, R, W, W]);
const SCORE_LIF_BACKWARD: Kernel = kernel("score_lif_backward", &[R, R, R, R, W, W]);
const SCORE_LIF_BACKWARD_VEC4: Kernel = kernel("score_lif_backward_vec4", &[R, R, R, R, W, W]);
const LAMBDA_GRAD: Kernel = kernel("lambda_grad", &[R, W]);

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ScoreLifParams {
    steps: u32,
    maps: u32,
    rows: u32,
    cols: u32,
    chunks: u32,
    wpr: u32,
    words: u32,
    groups: u32,
    tau: f32,
    v_th: f32,
}

/// The binary map `A = LIF over T of X Y^T` for spikes packed along the contracted axis,
/// `x` `PackedBits [T * maps, rows, k]` and `y` `PackedBits [T * maps, cols, k]` (time
/// first): the packed map `PackedBits [T * maps, rows, cols]` and the U32 `[2]` count of
/// its ones. The scores are computed in the kernel and never stored.
fn score_lif_map(
    ctx: &GpuContext,
    x: &Tensor,
    y: &Tensor,
    steps: usize,
    lif: &MapLif,
) -> Result<(Tensor, Tensor)> {
    const OP: &str = "score_lif_map";
    let (batch, rows, cols, chunks) = score_dims(OP, x, y)?;
    if steps == 0 || !batch.is_multiple_of(steps) {
        return Err(Error::InvalidArgument(format!(
            "{OP}: {batch} maps do not split into T = {steps} steps"
        )));
    }
    let maps = batch / steps;
    let (wpr, words, groups) = map_grid(rows, cols);
    let bits = ctx.empty(&[batch, rows, cols], DType::PackedBits)?;
    let ones = ctx.zeros(&[2], DType::U32)?;
    let params = ScoreLifParams {
        steps: to_u32(OP, "T", steps)?,
        maps: to_u32(OP, "maps", maps)?,
        rows: to_u32(OP, "rows", rows)?,
        cols: to_u32(OP, "cols", cols)?,
        chunks: to_u32(OP, "chunks", chunks)?,
        wpr: to_u32(OP, "words per row", wpr)?,
        words: to_u32(OP, "words", words)?,
        groups: to_u32(OP, "row groups", groups)?,
        tau: lif.tau,
        v_th: lif.v_th,
    };
    ctx.dispatch(
        SCORE_LIF_MAP,
        &[("SCORE_WORDS", score_words(x))],
        &[x, y, &bits, &ones],
        &params,
        grid_1d(ctx, (maps * words * groups).div_ceil(SCORE_WG) as u64)?,
    )?;
    Ok((bits, ones))
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ScoreLifBackParams {
    steps: u32,
    maps: u32,
    rows: u32,
    cols: u32,
    chunks: u32,
    words: u32,
    groups: u32,
    heads: u32,
    scale: f32,
    tau: f32,
    v_th: f32,
    alpha: f32,
}

/// BPTT of [`score_lif_map`]: `dL/dS` f32 `[T * maps, rows, cols]` from the same packed
/// operands (the scores are recomputed) and `grad_a` of that shape, `dL/dA` up to the
/// output scale of the map's product: `dL/dA = scale * factor[t, h] * grad_a` with
/// `factor` f32 `[T, heads]`. Also returns the gradient of `factor`, f32 `[T, heads]`:
/// `scale * sum A grad_a` over the maps of (t, h).
fn score_lif_backward(
    ctx: &GpuContext,
    x: &Tensor,
    y: &Tensor,
    grad_a: &Tensor,
    (factor, scale): (&Tensor, f32),
    lif: &MapLif,
) -> Result<(Tensor, Tensor)> {
    const OP: &str = "score_lif_backward";
    let (batch, rows, cols, chunks) = score_dims(OP, x, y)?;
    grad_a.expect(OP, &[batch, rows, cols], DType::F32)?;
    let (steps, heads) = factor_dims(OP, factor, batch)?;
    let maps = batch / steps;
    let (_, words, groups) = map_grid(rows, cols);
    let gs = ctx.empty(&[batch, rows, cols], DType::F32)?;
    // The factor's gradient, per invocation: [T, B, heads, words * groups].
    let shares = ctx.empty(&[steps, maps / heads, heads, words * groups], DType::F32)?;
    let params = ScoreLifBackParams {
        steps: to_u32(OP, "T", steps)?,
        maps: to_u32(OP, "maps", maps)?,
        rows: to_u32(OP, "rows", rows)?,
        cols: to_u32(OP, "cols", cols)?,
        chunks: to_u32(OP, "chunks", chunks)?,
        words: to_u32(OP, "words", words)?,
        groups: to_u32(OP, "row groups", groups)?,
        heads: to_u32(OP, "heads", heads)?,
        scale,
        tau: lif.tau,
        v_th: lif.v_th,
        alpha: lif.alpha,
    };
    let kernel = if cols.is_multiple_of(4) {
        SCORE_LIF_BACKWARD_VEC4
    } else {
        SCORE_LIF_BACKWARD
    };
    ctx.dispatch(
        kernel,
        &[("SCORE_WORDS", score_words(x))],
        &[x, y, factor, grad_a, &gs, &shares],
        &params,
        grid_1d(ctx, (maps * words * groups).div_ceil(SCORE_WG) as u64)?,
    )?;
    Ok((gs, lambda_grad(ctx, &shares, scale)?))
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct LambdaParams {
    batch: u32,
    heads: u32,
    inner: u32,
    scale: f32,
}

/// `out[t, h] = scale * sum_{b, ...} part[t, b, h, ...]` for partial sums `part` f32
/// `[T, B, heads, ...]`: the gradient of a per-(t, head) factor.
fn lambda_grad(ctx: &GpuContext, part: &Tensor, scale: f32) -> Result<Tensor> {
    const OP: &str = "lambda_grad";
    part.expect(OP, part.shape(), DType::F32)?;
    let s = part.shape();
    if s.len() < 3 {
        return Err(Error::Shape {
            op: OP,
            expected: "[T, B, heads, ...]".into(),
            got: format!("{s:?}"),
        });
    }
    let (t, b, heads) = (s[0], s[1], s[2]);
    let inner: usize = s[3..].iter().product();
    to_u32(OP, "size", part.len())?;
    let out = ctx.zeros(&[t, heads], DType::F32)?;
    let params = LambdaParams {
        batch: to_u32(OP, "B", b)?,
        heads: to_u32(OP, "heads", heads)?,
        inner: to_u32(OP, "inner", inner)?,
        scale,
    };
    ctx.dispatch(
        LAMBDA_GRAD,
        &[],
        &[part, &out],
        &params,
        [to_u32(OP, "heads", heads)?, to_u32(OP, "T", t)?, 1],
    )?;
    Ok(out)
}

/// BESTformer's output from the packed map: `y = scale * factor[t, h] * X Y^T` (A V or
/// Q A) for `x` `PackedBits [T * maps, rows, k]`, `y_bits` `PackedBits [T * maps, cols,
/// k]` and `factor` f32 `[T, heads]`: f32 `[T * maps, rows, cols]`.
fn bits_product_scaled(
    ctx: &GpuContext,
    x: &Tensor,
    y_bits: &Tensor,
    factor: &Tensor,
    scale: f32,
) -> Result<Tensor> {
    Ok(bits_product(ctx, x, y_bits, ProductOutput::Scaled { factor, scale })?.0)
}

/// A packed binary map `PackedBits [T * B * heads, R, C]` to f32 with its ones as
/// `scale * factor[t, h]` (`factor` f32 `[T, heads]`): the map with the output scale of
/// its product folded in.
fn unpack_scaled(ctx: &GpuContext, bits: &Tensor, factor: &Tensor, scale: f32) -> Result<Tensor> {
    unpack(ctx, bits, Some((factor, scale)))
}
