//! Spikformer's spiking self-attention (MODELS.md section 2):
//! `Y = (Q K^T) V * scale` per (t, b, head), no softmax. The attention LIF after it
//! (v_th = 0.5) belongs to the model layer. Backward is that of the two linear products
//! (straight through the spikes).

use super::kernels::{pack_spike_rows, scale_all};
use super::{AttnShape, MapRate};
use crate::error::Result;
use crate::gpu::{GpuContext, Tensor};
use crate::ops::{binary_matmul, matmul, BinaryForm, MatmulForm};

/// How the scores `Q K^T` are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SsaPath {
    /// Q and K packed along d, AND-popcount (`binary_matmul`, spikes x spikes): exact
    /// integer counts for {0,1} spikes (a bit is `x > 0`).
    Binary,
    /// The f32 matmul on Q and K as given: the baseline.
    F32,
}

/// What [`ssa_backward`] reads.
#[derive(Debug, Clone)]
pub struct SsaSaved {
    pub q: Tensor, // [T, B, heads, N, d]
    pub k: Tensor, // [T, B, heads, N, d]
    pub v: Tensor, // [T, B, heads, N, d]
    /// The attention map the product used: `scale * Q K^T`, f32 `[T * B * heads, N, N]`.
    pub scores: Tensor,
    pub scale: f32,
    /// Fraction of non-zero scores (counted on the GPU when read).
    pub rate: MapRate,
}

impl SsaSaved {
    /// Bytes this holds for backward beyond the forward's inputs (Q, K, V are the
    /// caller's tensors, shared, not copied).
    pub fn saved_bytes(&self) -> u64 {
        self.scores.byte_len()
    }
}

/// Gradients of [`ssa_forward`]'s inputs, each `[T, B, heads, N, d]`.
#[derive(Debug, Clone)]
pub struct SsaGrads {
    pub dq: Tensor,
    pub dk: Tensor,
    pub dv: Tensor,
}

/// `Y = (Q K^T) V * scale` (Spikformer: scale = 0.125) for Q, K, V f32
/// `[T, B, heads, N, d]`; returns Y `[T, B, heads, N, d]` and what backward needs.
pub fn ssa_forward(
    ctx: &GpuContext,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: f32,
    path: SsaPath,
) -> Result<(Tensor, SsaSaved)> {
    const OP: &str = "ssa_forward";
    let s = AttnShape::of(OP, q)?;
    s.expect_all(OP, &[k, v])?;
    let scores = match path {
        SsaPath::Binary => {
            let qb = pack_spike_rows(ctx, &s.batched(q)?)?;
            let kb = pack_spike_rows(ctx, &s.batched(k)?)?;
            // The per-column scale of the binary matmul applies `scale` for free.
            let cols = ctx.upload_f32(&vec![scale; s.n], &[s.n])?;
            binary_matmul(ctx, &qb, &kb, Some(&cols), BinaryForm::SpikesSpikes)?
        }
        SsaPath::F32 => {
            let qs = if scale == 1.0 {
                q.clone()
            } else {
                scale_all(ctx, q, scale)?
            };
            matmul(ctx, &s.batched(&qs)?, &s.batched(k)?, MatmulForm::ABt)?
        }
    };
    let y = matmul(ctx, &scores, &s.batched(v)?, MatmulForm::AB)?.reshape(&s.dims())?;
    let saved = SsaSaved {
        q: q.clone(),
        k: k.clone(),
        v: v.clone(),
        rate: MapRate::non_zero(scores.clone()),
        scores,
        scale,
    };
    Ok((y, saved))
}

/// Gradients of `Y = P V`, `P = scale Q K^T`, for the upstream gradient `dy`
/// `[T, B, heads, N, d]`: `dV = P^T dY`, `dQ = scale (dY V^T) K`,
/// `dK = scale (dY V^T)^T Q`.
pub fn ssa_backward(ctx: &GpuContext, dy: &Tensor, saved: &SsaSaved) -> Result<SsaGrads> {
    let (dq, dk, dv) = product_backward(
        ctx,
        "ssa_backward",
        dy,
        [&saved.q, &saved.k, &saved.v],
        &saved.scores,
        saved.scale,
    )?;
    Ok(SsaGrads { dq, dk, dv })
}

/// `(dQ, dK, dV)` of `Y = P V`, `P = scale Q K^T` (saved as `scores`), all treated as
/// real-valued products.
pub(super) fn product_backward(
    ctx: &GpuContext,
    op: &'static str,
    dy: &Tensor,
    [q, k, v]: [&Tensor; 3],
    scores: &Tensor,
    scale: f32,
) -> Result<(Tensor, Tensor, Tensor)> {
    let s = AttnShape::of(op, q)?;
    s.expect_all(op, &[k, v, dy])?;
    scores.expect(op, &[s.maps(), s.n, s.n], crate::DType::F32)?;
    let dys = if scale == 1.0 {
        dy.clone()
    } else {
        scale_all(ctx, dy, scale)?
    };
    let (q, k, v) = (s.batched(q)?, s.batched(k)?, s.batched(v)?);
    let dys = s.batched(&dys)?;
    // scale * dP = (scale dY) V^T, [T*B*heads, N, N]
    let dp = matmul(ctx, &dys, &v, MatmulForm::ABt)?;
    let dq = matmul(ctx, &dp, &k, MatmulForm::AB)?;
    let dk = matmul(ctx, &dp, &q, MatmulForm::AtB)?;
    let dv = matmul(ctx, scores, &s.batched(dy)?, MatmulForm::AtB)?;
    Ok((
        dq.reshape(&s.dims())?,
        dk.reshape(&s.dims())?,
        dv.reshape(&s.dims())?,
    ))
}
