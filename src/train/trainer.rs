//! One training run: epochs over a dataset with a prefetching loader, the loss of the
//! model's heads (with DeiT-style distillation from a teacher when one is given), AdamW
//! with a cosine schedule, evaluation on the test split after each epoch.
//!
//! Losses and predictions stay on the GPU during an epoch and are read back in bulk
//! every `report_every` steps, so the GPU is not stalled once per step.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::data::{Batch, BatchLoader, ImageDataset};
use crate::error::{Error, Result};
use crate::gpu::{DType, GpuContext, Tensor};
use crate::nn::{combine_heads, Classifier, ParamStore};
use crate::ops::loss::{argmax, cross_entropy, distill_soft, LossOutput};
use crate::ops::weighted_sum;

use super::{CosineSchedule, Optimizer};

/// How a teacher supervises the second head (MODELS.md section 3).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Distillation {
    /// CE(out1, argmax teacher(x)).
    Hard,
    /// KL(log_softmax(out1 / tau), log_softmax(teacher / tau)) tau^2.
    Soft { tau: f32 },
}

pub struct Teacher<'a> {
    pub model: &'a mut dyn Classifier,
    pub store: &'a mut ParamStore,
    pub kind: Distillation,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct EpochReport {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub test_accuracy: f64,
    pub test_top5: f64,
    pub images_per_second: f64,
    pub lr: f32,
    pub seconds: f64,
}

/// What one training epoch measured.
#[derive(Debug, Clone, Copy)]
pub struct EpochOutcome {
    pub loss: f64,
    pub accuracy: f64,
    pub images_per_second: f64,
    /// The stop flag was set: the epoch ended early, after a complete step.
    pub interrupted: bool,
}

/// Progress of the running epoch, for a progress bar.
#[derive(Debug, Clone)]
pub struct StepProgress {
    pub step: usize,
    pub steps: usize,
    pub loss: f64,
    pub accuracy: f64,
    pub images_per_second: f64,
}

pub struct Trainer<'a> {
    pub ctx: &'a GpuContext,
    pub loader: BatchLoader,
    pub test_loader: BatchLoader,
    pub schedule: CosineSchedule,
    pub label_smoothing: f32,
    pub report_every: usize,
    /// Set by Ctrl-C: the epoch stops at the next step boundary.
    pub stop: Arc<AtomicBool>,
}

/// Per-step results waiting on the GPU: (per-row losses of head 0, predictions, labels).
type Pending = Vec<(Tensor, Tensor, Vec<u32>)>;

/// The batch on the GPU: images `[B, C, H, W]`, or frames `[T, B, C, H, W]` when the data
/// has several frames per sample, and labels.
fn upload_batch(ctx: &GpuContext, batch: &Batch, data: &ImageDataset) -> Result<(Tensor, Tensor)> {
    let n = batch.len();
    let (c, h, w) = (data.channels, data.height, data.width);
    let images = if data.time_steps > 1 {
        ctx.upload_f32(&batch.images, &[data.time_steps, n, c, h, w])?
    } else {
        ctx.upload_f32(&batch.images, &[n, c, h, w])?
    };
    let labels = ctx.upload_words(&batch.labels, &[n], DType::U32)?;
    Ok((images, labels))
}

/// Read back the pending steps: (loss sum, correct, images).
fn drain(ctx: &GpuContext, pending: &mut Pending) -> Result<(f64, usize, usize)> {
    let (mut loss, mut correct, mut seen) = (0.0, 0, 0);
    for (losses, predicted, labels) in pending.drain(..) {
        loss += ctx
            .download_f32(&losses)?
            .iter()
            .map(|&v| v as f64)
            .sum::<f64>();
        let p: Vec<u32> = ctx.download_words(&predicted)?;
        correct += p.iter().zip(&labels).filter(|(a, b)| a == b).count();
        seen += labels.len();
    }
    Ok((loss, correct, seen))
}

impl Trainer<'_> {
    /// The loss of the heads and their logit gradients.
    fn head_losses(
        &self,
        heads: &[Tensor],
        labels: &Tensor,
        teacher_logits: Option<(&Tensor, Distillation)>,
    ) -> Result<Vec<LossOutput>> {
        let ctx = self.ctx;
        let s = self.label_smoothing;
        match (heads, teacher_logits) {
            ([], None) => Err(Error::InvalidArgument("a model with no heads".into())),
            // With no teacher every head learns the labels, weighted equally: BESTformer's
            // two (the reference would leave the second untrained, yet evaluates their
            // average), or a Q-SNN's time steps (mean_t CE(out_t, y)).
            (heads, None) => heads
                .iter()
                .map(|h| cross_entropy(ctx, h, labels, s, 1.0 / heads.len() as f32))
                .collect(),
            ([a, b], Some((t, Distillation::Hard))) => {
                let teacher_labels = argmax(ctx, t)?;
                Ok(vec![
                    cross_entropy(ctx, a, labels, s, 0.5)?,
                    cross_entropy(ctx, b, &teacher_labels, 0.0, 0.5)?,
                ])
            }
            ([a, b], Some((t, Distillation::Soft { tau }))) => Ok(vec![
                cross_entropy(ctx, a, labels, s, 0.5)?,
                distill_soft(ctx, b, t, tau, 0.5)?,
            ]),
            (heads, Some(_)) => Err(Error::InvalidArgument(format!(
                "distillation needs a model with two heads; this one has {}",
                heads.len()
            ))),
        }
    }

    /// Train one epoch; `on_progress` sees the running figures every `report_every`
    /// steps. Stops after the current step when `stop` is set.
    pub fn train_epoch(
        &self,
        epoch: usize,
        model: &mut dyn Classifier,
        store: &mut ParamStore,
        optimizer: &mut Optimizer,
        mut teacher: Option<&mut Teacher>,
        mut on_progress: impl FnMut(&StepProgress),
    ) -> Result<EpochOutcome> {
        let ctx = self.ctx;
        let steps = self.loader.batches();
        let start = Instant::now();
        let mut pending: Pending = Vec::new();
        let (mut loss_sum, mut correct, mut seen) = (0.0, 0, 0);
        let mut interrupted = false;
        for (i, batch) in self.loader.epoch(epoch as u64).iter().enumerate() {
            if self.stop.load(Ordering::SeqCst) {
                interrupted = true;
                break;
            }
            let global_step = epoch * steps + i;
            let (images, labels) = upload_batch(ctx, &batch, &self.loader.data)?;
            let heads = model.forward(ctx, store, &images, true)?;
            let teacher_logits = match teacher.as_deref_mut() {
                Some(t) => {
                    let out = t.model.forward(ctx, t.store, &images, false)?;
                    Some((combine_heads(ctx, &out)?, t.kind))
                }
                None => None,
            };
            let losses = self.head_losses(
                &heads,
                &labels,
                teacher_logits.as_ref().map(|(t, k)| (t, *k)),
            )?;
            let dlogits: Vec<Tensor> = losses.iter().map(|l| l.dlogits.clone()).collect();
            model.backward(ctx, store, &dlogits)?;
            optimizer.step(ctx, store, self.schedule.at(global_step))?;
            // Report the loss the model minimises: the weighted sum over the heads.
            let weights = vec![1.0 / losses.len() as f32; losses.len()];
            let terms: Vec<(f32, &Tensor)> = weights
                .iter()
                .copied()
                .zip(losses.iter().map(|l| &l.losses))
                .collect();
            let loss = weighted_sum(ctx, &terms)?;
            let predicted = argmax(ctx, &combine_heads(ctx, &heads)?)?;
            pending.push((loss, predicted, batch.labels.clone()));
            if pending.len() >= self.report_every || i + 1 == steps {
                let (l, k, n) = drain(ctx, &mut pending)?;
                loss_sum += l;
                correct += k;
                seen += n;
                on_progress(&StepProgress {
                    step: i + 1,
                    steps,
                    loss: loss_sum / seen.max(1) as f64,
                    accuracy: correct as f64 / seen.max(1) as f64,
                    images_per_second: seen as f64 / start.elapsed().as_secs_f64(),
                });
            }
        }
        let (l, k, n) = drain(ctx, &mut pending)?;
        loss_sum += l;
        correct += k;
        seen += n;
        Ok(EpochOutcome {
            loss: loss_sum / seen.max(1) as f64,
            accuracy: correct as f64 / seen.max(1) as f64,
            images_per_second: seen as f64 / start.elapsed().as_secs_f64(),
            interrupted,
        })
    }
}

/// Top-1 and top-5 accuracy of `model` on every batch of `loader`.
pub fn evaluate(
    ctx: &GpuContext,
    model: &mut dyn Classifier,
    store: &mut ParamStore,
    loader: &BatchLoader,
) -> Result<(f64, f64)> {
    let (mut top1, mut top5, mut seen) = (0usize, 0usize, 0usize);
    for batch in loader.epoch(0).iter() {
        let (images, _) = upload_batch(ctx, &batch, &loader.data)?;
        let logits = combine_heads(ctx, &model.forward(ctx, store, &images, false)?)?;
        let classes = logits.shape()[1];
        let values = ctx.download_f32(&logits)?;
        for (row, &label) in values.chunks(classes).zip(&batch.labels) {
            let target = row[label as usize];
            let better = row.iter().filter(|&&v| v > target).count();
            top1 += (better == 0) as usize;
            top5 += (better < 5) as usize;
        }
        seen += batch.len();
    }
    Ok((
        top1 as f64 / seen.max(1) as f64,
        top5 as f64 / seen.max(1) as f64,
    ))
}
