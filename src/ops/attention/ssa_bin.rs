//! SSA_Bin (MODELS.md section 4): a binary attention map from an adaptive threshold and
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

use super::kernels::{
    bits_product_shifted, pack_spike_rows, pack_transposed, running_update, scale_all,
    score_softmax_surrogate, score_threshold_map, unpack_bits,
};
use super::{AttnShape, MapRate};
use crate::error::Result;
use crate::gpu::{DType, GpuContext, Tensor};
use crate::ops::{matmul, MatmulForm};

#[derive(Debug, Clone, Copy, PartialEq)]
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
    pub q: Tensor, // [T, B, heads, N, d]
    pub k: Tensor, // [T, B, heads, N, d]
    pub v: Tensor, // [T, B, heads, N, d]
    /// Q and K packed along d, `PackedBits [T * B * heads, N, d]`: the operands of the
    /// scores `Q K^T`, which backward recomputes.
    pub score_operands: (Tensor, Tensor),
    /// `B = scores > Delta[h]`, `PackedBits [T * B * heads, N, N]` (bits along the key
    /// axis).
    pub map: Tensor,
    pub kappa: f32,
    /// Fraction of ones in the map (counted by the threshold kernel).
    pub rate: MapRate,
}

impl SsaBinSaved {
    /// Bytes this holds for backward beyond the forward's inputs (Q, K, V are the
    /// caller's tensors, shared, not copied).
    pub fn saved_bytes(&self) -> u64 {
        self.score_operands.0.byte_len() + self.score_operands.1.byte_len() + self.map.byte_len()
    }
}

/// Gradients of [`ssa_bin_forward`]'s inputs, each `[T, B, heads, N, d]`.
#[derive(Debug, Clone)]
pub struct SsaBinGrads {
    pub dq: Tensor,
    pub dk: Tensor,
    pub dv: Tensor,
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
pub fn ssa_bin_backward(
    ctx: &GpuContext,
    dout: &Tensor,
    saved: &SsaBinSaved,
) -> Result<SsaBinGrads> {
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
    Ok(SsaBinGrads {
        dq: dq.reshape(&s.dims())?,
        dk: dk.reshape(&s.dims())?,
        dv: dv.reshape(&s.dims())?,
    })
}
