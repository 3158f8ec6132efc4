//! BESTformer's binary attention (MODELS.md section 3): the attention map is itself a
//! spike map, `A = LIF_soft(Q K^T)`, the LIF running over T for every map element
//! (soft reset, v_th = 1, tau = 2, decay_input, detach_reset) in one fused kernel that
//! writes the map packed to bits; then `Y = (A V) * 0.125 * lambda[t, h]` with a
//! learnable lambda `[T, heads]`. The d x d order for large N computes
//! `A = LIF(K^T V)` (`[d, d]` per (t, b, h)) and `Y = Q A * 0.125 * lambda`.
//!
//! Q, K and V are spikes: every product runs on packed bits (AND-popcount), exactly.
//! Backward: Sigmoid(alpha) surrogate with BPTT over T for the map LIF, the products
//! linear (straight through the spikes).

use super::kernels::{
    lambda_grad, lif_map, lif_map_backward, pack_spike_rows, pack_transposed, scale_heads,
    unpack_bits,
};
use super::{AttnShape, MapLif, MapRate};
use crate::error::Result;
use crate::gpu::{DType, GpuContext, Tensor};
use crate::ops::{binary_matmul, matmul, BinaryForm, MatmulForm};

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
    /// The map LIF's input (integer counts), f32. Tokens: `Q K^T`
    /// `[T * B * heads, N, N]`; Features: `(K^T V)^T = V^T K` `[T * B * heads, d, d]`.
    pub scores: Tensor,
    /// The spike map, packed along its last axis. Tokens: `A` `PackedBits
    /// [T * B * heads, N, N]` (bits along the key axis j); Features: `A^T` `PackedBits
    /// [T * B * heads, d, d]` (row = output feature c, bits along a).
    pub map: Tensor,
    /// The unscaled product, Tokens `A V`, Features `Q A`: f32 `[T, B, heads, N, d]`.
    pub product: Tensor,
    pub config: BinaryAttentionConfig,
    /// Fraction of ones in the map (counted by the map kernel).
    pub rate: MapRate,
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
    let spikes = BinaryForm::SpikesSpikes;
    let (scores, map, ones, product) = match config.order {
        MapOrder::Tokens => {
            let qb = pack_spike_rows(ctx, &s.batched(q)?)?;
            let kb = pack_spike_rows(ctx, &s.batched(k)?)?;
            let scores = binary_matmul(ctx, &qb, &kb, None, spikes)?; // [TBH, N, N]
            let (map, ones) = lif_map(ctx, &scores, s.t, &config.lif)?;
            let vt = pack_transposed(ctx, &s.batched(v)?)?; // [TBH, d, N]
            let av = binary_matmul(ctx, &map, &vt, None, spikes)?; // [TBH, N, d]
            (scores, map, ones, av)
        }
        MapOrder::Features => {
            let kt = pack_transposed(ctx, &s.batched(k)?)?; // [TBH, d, N]
            let vt = pack_transposed(ctx, &s.batched(v)?)?; // [TBH, d, N]
            let scores = binary_matmul(ctx, &vt, &kt, None, spikes)?; // [TBH, d(c), d(a)]
            let (map, ones) = lif_map(ctx, &scores, s.t, &config.lif)?;
            let qb = pack_spike_rows(ctx, &s.batched(q)?)?;
            let qa = binary_matmul(ctx, &qb, &map, None, spikes)?; // [TBH, N, d]
            (scores, map, ones, qa)
        }
    };
    let product = product.reshape(&s.dims())?;
    let y = scale_heads(ctx, &product, config.scale, Some(lambda))?;
    let saved = BinaryAttentionSaved {
        q: q.clone(),
        k: k.clone(),
        v: v.clone(),
        lambda: lambda.clone(),
        rate: MapRate::counted(ones, scores.len()),
        scores,
        map,
        product,
        config: *config,
    };
    Ok((y, saved))
}

/// Gradients for the upstream gradient `dy` `[T, B, heads, N, d]`. With
/// `dYs = 0.125 lambda dY`: `d lambda = 0.125 sum dY * product`; Tokens:
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
    let dys = scale_heads(ctx, dy, config.scale, Some(&saved.lambda))?;
    let dlambda = lambda_grad(ctx, dy, &saved.product, config.scale)?;
    let (q, k, v) = (
        s.batched(&saved.q)?,
        s.batched(&saved.k)?,
        s.batched(&saved.v)?,
    );
    let dys = s.batched(&dys)?;
    let (dq, dk, dv) = match config.order {
        MapOrder::Tokens => {
            let da = matmul(ctx, &dys, &v, MatmulForm::ABt)?; // [TBH, N, N]
            let dx = lif_map_backward(ctx, &saved.scores, &da, s.t, &config.lif)?;
            let dq = matmul(ctx, &dx, &k, MatmulForm::AB)?;
            let dk = matmul(ctx, &dx, &q, MatmulForm::AtB)?;
            let a = unpack_bits(ctx, &saved.map)?;
            let dv = matmul(ctx, &a, &dys, MatmulForm::AtB)?;
            (dq, dk, dv)
        }
        MapOrder::Features => {
            let dat = matmul(ctx, &dys, &q, MatmulForm::AtB)?; // [TBH, d(c), d(a)]
            let dxt = lif_map_backward(ctx, &saved.scores, &dat, s.t, &config.lif)?;
            let dk = matmul(ctx, &v, &dxt, MatmulForm::AB)?;
            let dv = matmul(ctx, &k, &dxt, MatmulForm::ABt)?;
            let at = unpack_bits(ctx, &saved.map)?;
            let dq = matmul(ctx, &dys, &at, MatmulForm::AB)?;
            (dq, dk, dv)
        }
    };
    Ok(BinaryAttentionGrads {
        dq: dq.reshape(&s.dims())?,
        dk: dk.reshape(&s.dims())?,
        dv: dv.reshape(&s.dims())?,
        dlambda,
    })
}
