//! Training steps as the EpochRunner runs them (its loss over the heads, `train::Optimizer`),
//! for tests that train a model a few steps on one batch.

use bitspike::nn::{Classifier, ParamStore};
use bitspike::ops::loss::cross_entropy;
use bitspike::ops::optim::AdamW;
use bitspike::train::Optimizer;
use bitspike::{GpuContext, Tensor};

/// One training step's loss and logit gradients as the EpochRunner computes them without a
/// teacher: every head learns the labels, weighted equally.
pub fn head_losses(ctx: &GpuContext, heads: &[Tensor], labels: &Tensor) -> (f64, Vec<Tensor>) {
    let w = 1.0 / heads.len() as f32;
    let mut loss = 0.0;
    let mut dlogits = Vec::new();
    for h in heads {
        let out = cross_entropy(ctx, h, labels, 0.0, w).expect("cross_entropy");
        let rows = ctx.download_f32(&out.losses).expect("download");
        loss += w as f64 * rows.iter().map(|&l| l as f64).sum::<f64>() / rows.len() as f64;
        dlogits.push(out.dlogits);
    }
    (loss, dlogits)
}

/// `steps` training steps of `model` on `images` with `labels` (forward, the heads' loss,
/// backward, an AdamW step at `lr`); returns each step's loss.
pub fn train_steps(
    ctx: &GpuContext,
    model: &mut dyn Classifier,
    store: &mut ParamStore,
    (images, labels): (&Tensor, &Tensor),
    steps: usize,
    lr: f32,
) -> Vec<f64> {
    let mut optimizer = Optimizer::new(ctx, store, AdamW::default()).expect("optimizer");
    store.zero_grads(ctx);
    (0..steps)
        .map(|_| {
            let heads = model.forward(ctx, store, images, true).expect("forward");
            let (loss, dlogits) = head_losses(ctx, &heads, labels);
            model.backward(ctx, store, &dlogits).expect("backward");
            optimizer.step(ctx, store, lr).expect("step");
            loss
        })
        .collect()
}

/// Whether the mean loss of the last three steps is below `fraction` of the first three's.
pub fn loss_fell(losses: &[f64], fraction: f64) -> bool {
    let n = losses.len();
    let first = losses[..3].iter().sum::<f64>() / 3.0;
    let last = losses[n - 3..].iter().sum::<f64>() / 3.0;
    last < fraction * first
}
