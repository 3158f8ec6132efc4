//! What training, evaluation and inference need of a model.

use crate::error::Result;
use crate::gpu::{GpuContext, Tensor};

use super::ParamStore;

pub trait Classifier {
    /// Logits `[B, classes]` of each head for images `[B, C, H, W]` (normalized f32),
    /// or frames `[T, B, C, H, W]` giving the input of each time step.
    /// Training mode uses batch statistics, updates BatchNorm running statistics and
    /// keeps what `backward` needs; evaluation mode uses the running statistics.
    fn forward(
        &mut self,
        ctx: &GpuContext,
        store: &mut ParamStore,
        images: &Tensor,
        train: bool,
    ) -> Result<Vec<Tensor>>;

    /// Accumulate parameter gradients into `store.grads` from each head's logit
    /// gradient, after a training-mode `forward`.
    fn backward(
        &mut self,
        ctx: &GpuContext,
        store: &mut ParamStore,
        dlogits: &[Tensor],
    ) -> Result<()>;
}

/// The prediction of a model with several heads: their average (BESTformer's evaluation).
pub fn combine_heads(ctx: &GpuContext, heads: &[Tensor]) -> Result<Tensor> {
    match heads {
        [one] => Ok(one.clone()),
        [a, b] => crate::ops::weighted_sum(ctx, &[(0.5, a), (0.5, b)]),
        _ => Err(crate::Error::InvalidArgument(format!(
            "a model with {} heads",
            heads.len()
        ))),
    }
}
