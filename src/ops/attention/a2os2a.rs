//! A2OS2A, addition-only spiking self-attention (docs/models.md section 5): binary Q {0,1},
//! non-negative real K (a ReLU output), ternary V {-1,0,+1}; `out = (Q K^T) V`, no
//! softmax, no scale. With Q binary and V ternary every product is an addition or a
//! subtraction; here both products run on the f32 matmul (exact for these values), and
//! backward is that of the two linear products (straight through Q's and V's
//! quantizers, which live upstream).

use super::form::{AttentionOp, FormGrads, FormInputs, FormParam, FormSaved, Products};
use super::ssa::product_backward;
use super::{AttnShape, MapRate};
use crate::error::Result;
use crate::gpu::{GpuContext, Tensor};
use crate::ops::{matmul, LifConfig, MatmulForm, Neuron};

/// A2OS2A as a form (it has no settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct A2os2a;

impl AttentionOp for A2os2a {
    fn branch_neurons(&self) -> [Neuron; 3] {
        let lif = LifConfig::default();
        [Neuron::Lif(lif), Neuron::Relu, Neuron::Ternary(lif)]
    }

    /// Proj reads the real-valued `(Q K^T) V` itself (docs/models.md section 5).
    fn output_is_spikes(&self) -> bool {
        false
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
        inputs.expect("a2os2a_forward", &self.params())?;
        let (out, saved) = a2os2a_forward(ctx, q, k, v)?;
        Ok((out, Box::new(saved)))
    }
}

/// What [`a2os2a_backward`] reads.
#[derive(Debug, Clone)]
pub struct A2os2aSaved {
    /// Spikes Q `[T, B, heads, N, d]`.
    pub q: Tensor, // [T, B, heads, N, d]
    /// Real K `[T, B, heads, N, d]`.
    pub k: Tensor, // [T, B, heads, N, d]
    /// Ternary V `[T, B, heads, N, d]`.
    pub v: Tensor, // [T, B, heads, N, d]
    /// `Q K^T`, f32 `[T * B * heads, N, N]`.
    pub scores: Tensor,
    /// Fraction of non-zero scores (counted on the GPU when read).
    pub rate: MapRate,
}

impl FormSaved for A2os2aSaved {
    fn backward(&self, ctx: &GpuContext, dy: &Tensor) -> Result<FormGrads> {
        a2os2a_backward(ctx, dy, self)
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

/// `out = (Q K^T) V` for Q, K, V f32 `[T, B, heads, N, d]`.
pub fn a2os2a_forward(
    ctx: &GpuContext,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
) -> Result<(Tensor, A2os2aSaved)> {
    const OP: &str = "a2os2a_forward";
    let s = AttnShape::of(OP, q)?;
    s.expect_all(OP, &[k, v])?;
    let scores = matmul(ctx, &s.batched(q)?, &s.batched(k)?, MatmulForm::ABt)?;
    let out = matmul(ctx, &scores, &s.batched(v)?, MatmulForm::AB)?.reshape(&s.dims())?;
    let saved = A2os2aSaved {
        q: q.clone(),
        k: k.clone(),
        v: v.clone(),
        rate: MapRate::non_zero(scores.clone()),
        scores,
    };
    Ok((out, saved))
}

/// `dV = S^T dOut`, `dQ = (dOut V^T) K`, `dK = (dOut V^T)^T Q` with `S = Q K^T`.
pub fn a2os2a_backward(ctx: &GpuContext, dout: &Tensor, saved: &A2os2aSaved) -> Result<FormGrads> {
    let (dq, dk, dv) = product_backward(
        ctx,
        "a2os2a_backward",
        dout,
        [&saved.q, &saved.k, &saved.v],
        &saved.scores,
        1.0,
    )?;
    Ok(FormGrads {
        dq,
        dk,
        dv,
        dlearned: Vec::new(),
    })
}
