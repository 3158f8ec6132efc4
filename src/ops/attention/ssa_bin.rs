//! SSA_Bin (docs/models.md section 4): a binary attention map from an adaptive threshold and
//! an attention shift,
//!   `out = kappa * B(Q K^T, Delta) V - mean`,   `B(x) = (x > Delta[h])` (bits),
//! the output LIF being the model layer's.
//!
//! Running statistics ([`SsaBinState`], frozen in eval):
//! - `Delta` `[heads]`: the running mean (momentum mu) of the mean score of each head,
//!   `Delta[h] = mu Delta[h] + (1 - mu) mean_{t, b, i, j} (Q K^T)[t, b, h, i, j]`;
//! - `mean` `[heads, d]`: per head and feature, the running mean of the product,
//!   `mean[h, e] = mu mean[h, e] + (1 - mu) mean_{t, b, i} (kappa B V)[t, b, h, i, e]`.
//!
//! The map kernel computes the scores `Q K^T` from packed Q and K and thresholds them in
//! registers (the f32 scores are never stored; backward recomputes them from the packed
//! operands), and the output kernel multiplies the packed map with packed V and applies
//! the shift. The kernels that consume a statistic also accumulate this step's sums, so a training
//! step uses the statistics as they were before it and the update takes effect from the
//! next step (with mu = 0.99 a one-step lag changes nothing material, and it saves a pass
//! over the N x N scores). Both statistics are buffers, not parameters: no gradient flows
//! into or through them, so the shift is a constant in backward. Backward through B uses
//! the softmax-derived surrogate `dB_ij / dx_ij = p_ij (1 - p_ij)`,
//! `p = softmax(x_i.)` over the key axis; the products are linear.

use super::form::{
    AttentionOp, FormGrads, FormInputs, FormParam, FormParamKind, FormSaved, FormSetup, Products,
};
use super::packed::{
    bits_product, flag, kernel, map_grid, pack_spike_rows, pack_transposed, score_dims,
    score_words, unpack_bits, ProductOutput, SCORE_WG, TILE_ROWS,
};
use super::{scale_all, AttnShape, MapRate};
use crate::error::Result;
use crate::gpu::{grid_1d, Access, DType, GpuContext, Kernel, Tensor};
use crate::ops::{matmul, to_u32, LifConfig, MatmulForm, Neuron};

/// The running threshold Delta per head, `block.{i}.attn.<this>` (the published models
/// give no name: ours).
pub const SSA_BIN_DELTA: &str = "attn_delta";
/// The running attention shift (the mean of `B V`) per head and feature.
pub const SSA_BIN_SHIFT: &str = "attn_shift";

#[derive(Debug, Clone, Copy, PartialEq)]
/// Settings of the SSA_Bin op.
pub struct SsaBinConfig {
    /// Output scale of the binary map (1).
    pub kappa: f32,
    /// Momentum of both running statistics (0.99).
    pub momentum: f32,
    /// Update the running statistics (training) or keep them frozen (eval).
    pub training: bool,
}

impl Default for SsaBinConfig {
    fn default() -> Self {
        Self {
            kappa: 1.0,
            momentum: 0.99,
            training: true,
        }
    }
}

/// The running statistics of one SSA_Bin layer, updated in place on the GPU by training
/// forwards.
#[derive(Debug, Clone)]
pub struct SsaBinState {
    /// The threshold Delta per head, f32 `[heads]`.
    pub delta: Tensor,
    /// The running mean of `kappa B V` per head and feature, f32 `[heads, d]`.
    pub mean: Tensor,
}

impl SsaBinState {
    /// Delta = `delta_init` for every head, mean = 0.
    pub fn new(ctx: &GpuContext, heads: usize, d: usize, delta_init: f32) -> Result<Self> {
        Ok(Self {
            delta: ctx.upload_f32(&vec![delta_init; heads], &[heads])?,
            mean: ctx.zeros(&[heads, d], DType::F32)?,
        })
    }
}

/// What [`ssa_bin_backward`] reads.
#[derive(Debug, Clone)]
pub struct SsaBinSaved {
    /// Spikes Q `[T, B, heads, N, d]`.
    pub q: Tensor, // [T, B, heads, N, d]
    /// Spikes K `[T, B, heads, N, d]`.
    pub k: Tensor, // [T, B, heads, N, d]
    /// Spikes V `[T, B, heads, N, d]`.
    pub v: Tensor, // [T, B, heads, N, d]
    /// Q and K packed along d, `PackedBits [T * B * heads, N, d]`: the operands of the
    /// scores `Q K^T`, which backward recomputes.
    pub score_operands: (Tensor, Tensor),
    /// `B = scores > Delta[h]`, `PackedBits [T * B * heads, N, N]` (bits along the key
    /// axis).
    pub map: Tensor,
    /// The map's scale.
    pub kappa: f32,
    /// Fraction of ones in the map (counted by the threshold kernel).
    pub rate: MapRate,
}

impl FormSaved for SsaBinSaved {
    fn backward(&self, ctx: &GpuContext, dy: &Tensor) -> Result<FormGrads> {
        ssa_bin_backward(ctx, dy, self)
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

    fn products(&self) -> Products {
        Products::tokens(&self.q)
    }

    fn binary_map(&self) -> Option<&Tensor> {
        Some(&self.map)
    }
}

/// SSA_Bin as a form, for a model's heads and head width, with the default kappa and
/// momentum; `FormInputs::update_stats` says whether the statistics move (training).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SsaBin {
    /// Heads.
    pub heads: usize,
    /// Width of a head.
    pub head_dim: usize,
}

impl SsaBin {
    /// SSA_Bin for `setup`'s heads and head width.
    pub fn new(setup: &FormSetup) -> Self {
        Self {
            heads: setup.heads,
            head_dim: setup.head_dim,
        }
    }
}

impl AttentionOp for SsaBin {
    fn branch_neurons(&self) -> [Neuron; 3] {
        [Neuron::Lif(LifConfig::default()); 3]
    }

    /// SSA_Bin's `LIF_out` is the model's attention LIF.
    fn output_is_spikes(&self) -> bool {
        true
    }

    /// Delta, then the shift (the state's `delta`, `mean`).
    fn params(&self) -> Vec<FormParam> {
        let stat = |name, shape| FormParam {
            name,
            shape,
            kind: FormParamKind::RunningStat,
            init: 0.0,
        };
        vec![
            stat(SSA_BIN_DELTA, vec![self.heads]),
            stat(SSA_BIN_SHIFT, vec![self.heads, self.head_dim]),
        ]
    }

    fn forward(
        &self,
        ctx: &GpuContext,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        inputs: &FormInputs,
    ) -> Result<(Tensor, Box<dyn FormSaved>)> {
        inputs.expect("ssa_bin_forward", &self.params())?;
        let state = SsaBinState {
            delta: inputs.stats[0].clone(),
            mean: inputs.stats[1].clone(),
        };
        let config = SsaBinConfig {
            training: inputs.update_stats,
            ..SsaBinConfig::default()
        };
        let (y, saved) = ssa_bin_forward(ctx, q, k, v, &state, &config)?;
        Ok((y, Box::new(saved)))
    }
}

/// SSA_Bin on spikes Q, K, V f32 `[T, B, heads, N, d]` (a bit is `x > 0`), with the
/// layer's running statistics `state` (updated in place when `config.training`).
/// Returns `kappa B V - mean`, f32 `[T, B, heads, N, d]`.
pub fn ssa_bin_forward(
    ctx: &GpuContext,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    state: &SsaBinState,
    config: &SsaBinConfig,
) -> Result<(Tensor, SsaBinSaved)> {
    const OP: &str = "ssa_bin_forward";
    let s = AttnShape::of(OP, q)?;
    s.expect_all(OP, &[k, v])?;
    state.delta.expect(OP, &[s.heads], DType::F32)?;
    state.mean.expect(OP, &[s.heads, s.d], DType::F32)?;
    let qb = pack_spike_rows(ctx, &s.batched(q)?)?; // [TBH, N, d]
    let kb = pack_spike_rows(ctx, &s.batched(k)?)?;
    let map = score_threshold_map(ctx, &qb, &kb, &state.delta, s.heads, config.training)?;
    let vt = pack_transposed(ctx, &s.batched(v)?)?; // [TBH, d, N]
    let (out, mean_sums) = bits_product_shifted(
        ctx,
        &map.bits,
        &vt,
        &state.mean,
        config.kappa,
        config.training,
    )?;
    if let (Some(score_sums), Some(mean_sums)) = (&map.sums, &mean_sums) {
        let per_head = (s.t * s.b * s.n * s.n).max(1) as f32;
        running_update(
            ctx,
            score_sums,
            &state.delta,
            config.momentum,
            1.0 / per_head,
        )?;
        let per_feature = (s.t * s.b * s.n).max(1) as f32;
        running_update(
            ctx,
            mean_sums,
            &state.mean,
            config.momentum,
            config.kappa / per_feature,
        )?;
    }
    let saved = SsaBinSaved {
        q: q.clone(),
        k: k.clone(),
        v: v.clone(),
        rate: MapRate::counted(map.ones, map.bits.len()),
        score_operands: (qb, kb),
        map: map.bits,
        kappa: config.kappa,
    };
    Ok((out.reshape(&s.dims())?, saved))
}

/// Gradients for the upstream gradient `dout` `[T, B, heads, N, d]`:
/// `dV = kappa B^T dOut`, `dB = kappa dOut V^T`, `dX = dB p (1 - p)`, `dQ = dX K`,
/// `dK = dX^T Q`.
pub fn ssa_bin_backward(ctx: &GpuContext, dout: &Tensor, saved: &SsaBinSaved) -> Result<FormGrads> {
    const OP: &str = "ssa_bin_backward";
    let s = AttnShape::of(OP, &saved.q)?;
    s.expect_all(OP, &[dout])?;
    let dos = if saved.kappa == 1.0 {
        dout.clone()
    } else {
        scale_all(ctx, dout, saved.kappa)?
    };
    let (q, k, v) = (
        s.batched(&saved.q)?,
        s.batched(&saved.k)?,
        s.batched(&saved.v)?,
    );
    let dos = s.batched(&dos)?;
    let db = matmul(ctx, &dos, &v, MatmulForm::ABt)?; // [TBH, N, N]
    let (qb, kb) = &saved.score_operands;
    let dx = score_softmax_surrogate(ctx, qb, kb, &db)?;
    let dq = matmul(ctx, &dx, &k, MatmulForm::AB)?;
    let dk = matmul(ctx, &dx, &q, MatmulForm::AtB)?;
    let b = unpack_bits(ctx, &saved.map)?;
    let dv = matmul(ctx, &b, &dos, MatmulForm::AtB)?;
    Ok(FormGrads {
        dq: dq.reshape(&s.dims())?,
        dk: dk.reshape(&s.dims())?,
        dv: dv.reshape(&s.dims())?,
        dlearned: Vec::new(),
    })
}

// ---- the map kernels -----------------------------------------------------------------

use Access::{Read as R, ReadWrite as W};

const SCORE_THRESHOLD_MAP: Kernel = kernel("score_threshold_map", &[R, R, R, W, W, W]);
const SCORE_SOFTMAX_SURROGATE: Kernel = kernel("score_softmax_surrogate", &[R, R, R, W]);
const SCORE_SOFTMAX_SURROGATE_VEC4: Kernel = kernel("score_softmax_surrogate_vec4", &[R, R, R, W]);
const RUNNING_UPDATE: Kernel = kernel("running_update", &[R, W]);

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ScoreThresholdParams {
    maps: u32,
    heads: u32,
    rows: u32,
    cols: u32,
    chunks: u32,
    wpr: u32,
    words: u32,
    groups: u32,
}

/// What [`score_threshold_map`] produces.
struct Thresholded {
    /// `PackedBits [maps, rows, cols]`: `X Y^T > delta[h]`.
    bits: Tensor,
    /// U32 `[2]`: the number of ones.
    ones: Tensor,
    /// U32 `[heads, 2]`: per head, the sum of the (integer) scores, when training.
    sums: Option<Tensor>,
}

/// SSA_Bin's map: `X Y^T > delta[h]` for packed operands `x` `PackedBits [maps, rows, k]`
/// and `y` `PackedBits [maps, cols, k]` with `h = map % heads`; when `training`, also
/// the per-head sums of the scores. The scores are computed in the kernel.
fn score_threshold_map(
    ctx: &GpuContext,
    x: &Tensor,
    y: &Tensor,
    delta: &Tensor,
    heads: usize,
    training: bool,
) -> Result<Thresholded> {
    const OP: &str = "score_threshold_map";
    let (maps, rows, cols, chunks) = score_dims(OP, x, y)?;
    delta.expect(OP, &[heads], DType::F32)?;
    let (wpr, words, groups) = map_grid(rows, cols);
    let bits = ctx.empty(&[maps, rows, cols], DType::PackedBits)?;
    let ones = ctx.zeros(&[2], DType::U32)?;
    let sums = ctx.zeros(&[if training { heads } else { 1 }, 2], DType::U32)?;
    let params = ScoreThresholdParams {
        maps: to_u32(OP, "maps", maps)?,
        heads: to_u32(OP, "heads", heads)?,
        rows: to_u32(OP, "rows", rows)?,
        cols: to_u32(OP, "cols", cols)?,
        chunks: to_u32(OP, "chunks", chunks)?,
        wpr: to_u32(OP, "words per row", wpr)?,
        words: to_u32(OP, "words", words)?,
        groups: to_u32(OP, "row groups", groups)?,
    };
    ctx.dispatch(
        SCORE_THRESHOLD_MAP,
        &[
            ("TRAINING", flag(training)),
            ("SCORE_WORDS", score_words(x)),
        ],
        &[x, y, delta, &bits, &ones, &sums],
        &params,
        grid_1d(ctx, (maps * words * groups).div_ceil(SCORE_WG) as u64)?,
    )?;
    Ok(Thresholded {
        bits,
        ones,
        sums: training.then_some(sums),
    })
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ScoreSoftmaxParams {
    maps: u32,
    rows: u32,
    cols: u32,
    chunks: u32,
    groups: u32,
}

/// SSA_Bin's surrogate: `grad_s = grad_b * p (1 - p)`, `p = softmax(X Y^T)` along the
/// key axis, for the packed operands of the scores and `grad_b` f32
/// `[maps, rows, cols]`.
fn score_softmax_surrogate(
    ctx: &GpuContext,
    x: &Tensor,
    y: &Tensor,
    grad_b: &Tensor,
) -> Result<Tensor> {
    const OP: &str = "score_softmax_surrogate";
    let (maps, rows, cols, chunks) = score_dims(OP, x, y)?;
    grad_b.expect(OP, &[maps, rows, cols], DType::F32)?;
    let gs = ctx.empty(&[maps, rows, cols], DType::F32)?;
    // An invocation per row group.
    let groups = rows.div_ceil(TILE_ROWS);
    let params = ScoreSoftmaxParams {
        maps: to_u32(OP, "maps", maps)?,
        rows: to_u32(OP, "rows", rows)?,
        cols: to_u32(OP, "cols", cols)?,
        chunks: to_u32(OP, "chunks", chunks)?,
        groups: to_u32(OP, "row groups", groups)?,
    };
    let kernel = if cols.is_multiple_of(4) {
        SCORE_SOFTMAX_SURROGATE_VEC4
    } else {
        SCORE_SOFTMAX_SURROGATE
    };
    ctx.dispatch(
        kernel,
        &[("SCORE_WORDS", score_words(x))],
        &[x, y, grad_b, &gs],
        &params,
        grid_1d(ctx, (maps * groups).div_ceil(SCORE_WG) as u64)?,
    )?;
    Ok(gs)
}

/// SSA_Bin's output from the packed map: `out = kappa * X Y^T - mean[h, c]` (B V) for
/// `x` `PackedBits [maps, rows, k]`, `y_bits` `PackedBits [maps, cols, k]` and `mean`
/// f32 `[heads, cols]`; when `training`, also the U32 `[heads, cols, 2]` sums of
/// `X Y^T` per (h, c).
fn bits_product_shifted(
    ctx: &GpuContext,
    x: &Tensor,
    y_bits: &Tensor,
    mean: &Tensor,
    kappa: f32,
    training: bool,
) -> Result<(Tensor, Option<Tensor>)> {
    bits_product(
        ctx,
        x,
        y_bits,
        ProductOutput::Shifted {
            mean,
            kappa,
            training,
        },
    )
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct UpdateParams {
    len: u32,
    momentum: f32,
    factor: f32,
}

/// `state = momentum * state + (1 - momentum) * factor * sum`, in place, for U32
/// `[len, 2]` (lo, hi) sums and an f32 state of `len` elements.
fn running_update(
    ctx: &GpuContext,
    sums: &Tensor,
    state: &Tensor,
    momentum: f32,
    factor: f32,
) -> Result<()> {
    const OP: &str = "running_update";
    let len = state.len();
    state.expect(OP, state.shape(), DType::F32)?;
    sums.expect(OP, &[len, 2], DType::U32)?;
    let params = UpdateParams {
        len: to_u32(OP, "len", len)?,
        momentum,
        factor,
    };
    ctx.dispatch(
        RUNNING_UPDATE,
        &[],
        &[sums, state],
        &params,
        [to_u32(OP, "groups", len.div_ceil(64))?, 1, 1],
    )
}
