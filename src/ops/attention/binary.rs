//! BESTformer's binary attention (MODELS.md section 3): the attention map is itself a
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

use super::kernels::{
    bits_product_scaled, pack_spike_rows, pack_transposed, score_lif_backward, score_lif_map,
    unpack_scaled,
};
use super::{AttnShape, MapLif, MapRate};
use crate::error::Result;
use crate::gpu::{DType, GpuContext, Tensor};
use crate::ops::{matmul, MatmulForm};

/// Which map is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapOrder {
    /// `A = LIF(Q K^T)`, `[N, N]` per (t, b, h); `Y = A V` (CIFAR).
    Tokens,
    /// `A = LIF(K^T V)`, `[d, d]` per (t, b, h); `Y = Q A` (ImageNet, large N).
    Features,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BinaryAttentionConfig {
    pub order: MapOrder,
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
    pub q: Tensor,      // [T, B, heads, N, d]
    pub k: Tensor,      // [T, B, heads, N, d]
    pub v: Tensor,      // [T, B, heads, N, d]
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
    pub config: BinaryAttentionConfig,
    /// Fraction of ones in the map (counted by the map kernel).
    pub rate: MapRate,
}

impl BinaryAttentionSaved {
    /// Bytes this holds for backward beyond the forward's inputs (Q, K, V, lambda are the
    /// caller's tensors, shared, not copied).
    pub fn saved_bytes(&self) -> u64 {
        self.score_operands.0.byte_len() + self.score_operands.1.byte_len() + self.map.byte_len()
    }
}

/// Gradients of [`binary_attention_forward`]'s inputs.
#[derive(Debug, Clone)]
pub struct BinaryAttentionGrads {
    pub dq: Tensor,      // [T, B, heads, N, d]
    pub dk: Tensor,      // [T, B, heads, N, d]
    pub dv: Tensor,      // [T, B, heads, N, d]
    pub dlambda: Tensor, // [T, heads]
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
