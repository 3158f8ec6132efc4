//! Spikformer's spiking self-attention (docs/models.md section 2):
//! `Y = (Q K^T) V * scale` per (t, b, head), no softmax. The attention LIF after it
//! (v_th = 0.5) belongs to the model layer. Backward is that of the two linear products
//! (straight through the spikes).

use super::form::{AttentionOp, FormGrads, FormInputs, FormParam, FormSaved, Products};
use super::packed::pack_spike_rows;
use super::{scale_all, AttnShape, MapRate};
use crate::error::Result;
use crate::gpu::{GpuContext, Tensor};
use crate::ops::{binary_matmul, matmul, BinaryForm, LifConfig, MatmulForm, Neuron};

/// Spikformer's fixed scale of the attention output.
pub const SSA_SCALE: f32 = 0.125;

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
    /// Spikes Q `[T, B, heads, N, d]`.
    pub q: Tensor, // [T, B, heads, N, d]
    /// Spikes K `[T, B, heads, N, d]`.
    pub k: Tensor, // [T, B, heads, N, d]
    /// Spikes V `[T, B, heads, N, d]`.
    pub v: Tensor, // [T, B, heads, N, d]
    /// The attention map the product used: `scale * Q K^T`, f32 `[T * B * heads, N, N]`.
    pub scores: Tensor,
    /// The scale of the output.
    pub scale: f32,
    /// Fraction of non-zero scores (counted on the GPU when read).
    pub rate: MapRate,
}

impl FormSaved for SsaSaved {
    fn backward(&self, ctx: &GpuContext, dy: &Tensor) -> Result<FormGrads> {
        ssa_backward(ctx, dy, self)
    }

    fn rate(&self) -> &MapRate {
        &self.rate
    }

    fn bytes(&self) -> u64 {
        [&self.q, &self.k, &self.v, &self.scores]
            .into_iter()
            .map(Tensor::byte_len)
            .sum()
    }

    fn products(&self) -> Products {
        Products::tokens(&self.q)
    }
}

/// SSA as a form: the models' binary scores and [`SSA_SCALE`]; the bench's f32 baseline
/// sets `path` to [`SsaPath::F32`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ssa {
    /// Packed bits or f32 products.
    pub path: SsaPath,
    /// The scale of the output (0.125).
    pub scale: f32,
}

impl Default for Ssa {
    fn default() -> Self {
        Self {
            path: SsaPath::Binary,
            scale: SSA_SCALE,
        }
    }
}

impl AttentionOp for Ssa {
    fn branch_neurons(&self) -> [Neuron; 3] {
        [Neuron::Lif(LifConfig::default()); 3]
    }

    fn output_is_spikes(&self) -> bool {
        true
    }

    fn params(&self) -> Vec<FormParam> {
        Vec::new()
    }

    fn forward(
        &self,
        ctx: &GpuContext,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        inputs: &FormInputs,
    ) -> Result<(Tensor, Box<dyn FormSaved>)> {
        inputs.expect("ssa_forward", &self.params())?;
        let (y, saved) = ssa_forward(ctx, q, k, v, self.scale, self.path)?;
        Ok((y, Box::new(saved)))
    }
}

/// `Y = (Q K^T) V * scale` (Spikformer: [`SSA_SCALE`]) for Q, K, V f32
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
pub fn ssa_backward(ctx: &GpuContext, dy: &Tensor, saved: &SsaSaved) -> Result<FormGrads> {
    let (dq, dk, dv) = product_backward(
        ctx,
        "ssa_backward",
        dy,
        [&saved.q, &saved.k, &saved.v],
        &saved.scores,
        saved.scale,
    )?;
    Ok(FormGrads {
        dq,
        dk,
        dv,
        dlearned: Vec::new(),
    })
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
