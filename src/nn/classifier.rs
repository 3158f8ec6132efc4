//! What training, evaluation and inference need of a model.

use crate::error::Result;
use crate::gpu::{GpuContext, Tensor};

use super::store::ParamStore;

/// What training, evaluation and inference ask of a model: a forward to logits and its backward.
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

/// The prediction of a model with several heads (BESTformer's two, or a Q-SNN's one per
/// time step in training): their average.
pub fn combine_heads(ctx: &GpuContext, heads: &[Tensor]) -> Result<Tensor> {
    match heads {
        [] => Err(crate::Error::InvalidArgument(
            "a model with no heads".into(),
        )),
        [one] => Ok(one.clone()),
        [first, rest @ ..] => {
            let w = 1.0 / heads.len() as f32;
            let sum = crate::ops::scale(ctx, first, w)?;
            for h in rest {
                crate::ops::axpy_into(ctx, &sum, h, w)?;
            }
            Ok(sum)
        }
    }
}

/// The one head gradient of a single-head model.
pub fn one_head(dlogits: &[Tensor]) -> Result<&Tensor> {
    match dlogits {
        [d] => Ok(d),
        d => Err(crate::Error::InvalidArgument(format!(
            "backward of a one-head model got {} head gradients",
            d.len()
        ))),
    }
}
