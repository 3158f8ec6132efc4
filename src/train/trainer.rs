//! One training run: epochs over a dataset with a prefetching loader, the loss of the
//! model's heads (soft targets when the loader mixed the batch; DeiT-style distillation
//! from a live teacher or a table of its logits), gradient accumulation over several
//! batches, AdamW with a cosine schedule, an EMA of the weights, evaluation on the test
//! split after each epoch.
//!
//! Losses and predictions stay on the GPU during an epoch and are read back in bulk
//! every `report_every` steps, so the GPU is not stalled once per step.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::data::{mixup, Batch, BatchLoader, Samples, TeacherLogits};
use crate::error::{Error, Result};
use crate::gpu::{DType, GpuContext, Tensor};
use crate::nn::{combine_heads, Classifier, ParamStore};
use crate::ops::loss::{argmax, cross_entropy, distill_soft, soft_cross_entropy, LossOutput};
use crate::ops::weighted_sum;

use super::parallel::ReplicaLink;
use super::{CosineSchedule, ModelEma, Optimizer};

/// How a teacher supervises the second head (docs/models.md section 3).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Distillation {
    /// CE(out1, argmax teacher(x)).
    Hard,
    /// KL(log_softmax(out1 / tau), log_softmax(teacher / tau)) tau^2.
    Soft {
        /// The temperature.
        tau: f32,
    },
}

/// Where the teacher's logits come from.
pub enum TeacherSource<'a> {
    /// A bitspike model run on each (augmented, mixed) batch.
    Live {
        /// The teacher model.
        model: &'a mut dyn Classifier,
        /// Its weights.
        store: &'a mut ParamStore,
    },
    /// A table of logits of the un-augmented training images, mixed as the batch was.
    Logits(&'a TeacherLogits),
}

/// A teacher and how it supervises.
pub struct Teacher<'a> {
    /// Where its logits come from.
    pub source: TeacherSource<'a>,
    /// Hard or soft distillation.
    pub kind: Distillation,
}

/// What supervises the second head of a step.
enum TeacherTarget {
    /// Logits for `argmax` (hard) or `distill_soft` (soft).
    Logits(Tensor),
    /// Soft target rows for the hard form, from a table under mixing.
    Distribution(Tensor),
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
/// One epoch's figures: a line of `metrics.jsonl` (docs/checkpoint.md).
pub struct EpochReport {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss.
    pub train_loss: f64,
    /// Training accuracy (a fraction).
    pub train_accuracy: f64,
    /// Top-1 test accuracy after the epoch.
    pub test_accuracy: f64,
    /// Top-5 test accuracy after the epoch.
    pub test_top5: f64,
    /// Top-1 test accuracy of the EMA weights, when an EMA is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ema_test_accuracy: Option<f64>,
    /// Training throughput.
    pub images_per_second: f64,
    /// Learning rate at the end of the epoch.
    pub lr: f32,
    /// Wall time of the epoch, evaluation included.
    pub seconds: f64,
}

/// How far an epoch (0-based) got: its steps done and the sums of their figures. An
/// interrupted epoch saves this in its checkpoint, and resumes from it.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochProgress {
    /// The epoch, 0-based.
    pub epoch: usize,
    /// Steps done.
    pub steps_done: usize,
    /// Sum of the losses so far.
    pub loss_sum: f64,
    /// Correct predictions so far.
    pub correct: usize,
    /// Samples seen so far.
    pub seen: usize,
}

impl EpochProgress {
    /// Epoch `epoch`, before its first step.
    pub fn start(epoch: usize) -> Self {
        Self {
            epoch,
            ..Self::default()
        }
    }

    fn add(&mut self, (loss, correct, seen): (f64, usize, usize)) {
        self.loss_sum += loss;
        self.correct += correct;
        self.seen += seen;
    }

    /// Mean loss so far.
    pub fn loss(&self) -> f64 {
        self.loss_sum / self.seen.max(1) as f64
    }

    /// Accuracy so far.
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.seen.max(1) as f64
    }
}

/// What one training epoch measured.
#[derive(Debug, Clone, Copy)]
pub struct EpochOutcome {
    /// Mean training loss.
    pub loss: f64,
    /// Training accuracy.
    pub accuracy: f64,
    /// Images per second of this call (not counting steps done before a resume).
    pub images_per_second: f64,
    /// The stop flag was set: the epoch ended early, after a complete step.
    pub interrupted: bool,
    /// Where the epoch got.
    pub progress: EpochProgress,
    /// Seconds spent reducing over data-parallel replicas (0 with one).
    pub reduce_seconds: f64,
}

/// Progress of the running epoch, for a progress bar.
#[derive(Debug, Clone)]
pub struct StepProgress {
    /// Steps done.
    pub step: usize,
    /// Steps in the epoch.
    pub steps: usize,
    /// Mean loss so far.
    pub loss: f64,
    /// Accuracy so far.
    pub accuracy: f64,
    /// Throughput so far.
    pub images_per_second: f64,
}

/// Runs training epochs: the loss over the heads, accumulation, AdamW on a schedule, an EMA; evaluation is [`evaluate`].
pub struct EpochRunner<'a> {
    /// The GPU.
    pub ctx: &'a GpuContext,
    /// Training batches.
    pub loader: BatchLoader,
    /// Test batches.
    pub test_loader: BatchLoader,
    /// Indexed by optimizer step: `steps.div_ceil(accum_steps)` of them an epoch.
    pub schedule: CosineSchedule,
    /// Label smoothing of the cross-entropy.
    pub label_smoothing: f32,
    /// Batches whose gradients add up before each optimizer step (1: a step per batch).
    /// The epoch's last step takes what is left. Each batch's loss is weighted 1 / this.
    pub accum_steps: usize,
    /// Steps between progress callbacks.
    pub report_every: usize,
    /// Set by Ctrl-C: the epoch stops at the next optimizer step, so that a checkpoint
    /// never holds half an accumulation.
    pub stop: Arc<AtomicBool>,
    /// This replica's group when training data-parallel: `loader` delivers its shard of
    /// each batch, and every update sums the replicas' gradients first.
    pub replicas: Option<ReplicaLink>,
}

/// Per-step results waiting on the GPU: (step index in the epoch, per-row losses,
/// predictions, labels).
type Pending = Vec<(usize, Tensor, Tensor, Vec<u32>)>;

/// The batch on the GPU: images `[B, C, H, W]`, or frames `[T, B, C, H, W]` when the data
/// has several frames per sample, and labels.
fn upload_batch(ctx: &GpuContext, batch: &Batch, data: &Samples) -> Result<(Tensor, Tensor)> {
    let n = batch.len();
    let (c, h, w) = (data.channels(), data.height(), data.width());
    let images = if data.time_steps() > 1 {
        ctx.upload_f32(&batch.images, &[data.time_steps(), n, c, h, w])?
    } else {
        ctx.upload_f32(&batch.images, &[n, c, h, w])?
    };
    let labels = ctx.upload_words(&batch.labels, &[n], DType::U32)?;
    Ok((images, labels))
}

/// Read back the pending steps of epoch `epoch` (0-based) of `steps`: (loss sum,
/// correct, images); a loss that is not a finite number stops training with an error
/// naming its step.
fn drain(
    ctx: &GpuContext,
    pending: &mut Pending,
    epoch: usize,
    steps: usize,
) -> Result<(f64, usize, usize)> {
    let (mut loss, mut correct, mut seen) = (0.0, 0, 0);
    for (step, losses, predicted, labels) in pending.drain(..) {
        let values = ctx.download_f32(&losses)?;
        if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
            return Err(Error::Diverged {
                at: format!("epoch {}, step {} of {steps}", epoch + 1, step + 1),
                what: format!("the training loss is {bad}"),
            });
        }
        loss += values.iter().map(|&v| v as f64).sum::<f64>();
        let p: Vec<u32> = ctx.download_words(&predicted)?;
        correct += p.iter().zip(&labels).filter(|(a, b)| a == b).count();
        seen += labels.len();
    }
    Ok((loss, correct, seen))
}

impl EpochRunner<'_> {
    /// The loss of the heads and their logit gradients, each head's weighted by `scale`
    /// (1 / the accumulation).
    fn head_losses(
        &self,
        heads: &[Tensor],
        batch: &Batch,
        labels: &Tensor,
        teacher: Option<(TeacherTarget, Distillation)>,
        scale: f32,
    ) -> Result<Vec<LossOutput>> {
        let ctx = self.ctx;
        let s = self.label_smoothing;
        // A mixed batch learns timm's soft targets (smoothing folded in); else plain CE.
        let label_loss = |head: &Tensor, weight: f32| match &batch.mix {
            Some(mix) => {
                let classes = head.shape()[1];
                let rows = mixup::smoothed_one_hot(&batch.labels, classes, s);
                let q = ctx.upload_f32(&mix.targets(&rows, classes), head.shape())?;
                soft_cross_entropy(ctx, head, &q, weight)
            }
            None => cross_entropy(ctx, head, labels, s, weight),
        };
        match (heads, teacher) {
            ([], _) => Err(Error::InvalidArgument("a model with no heads".into())),
            // With no teacher every head learns the labels, weighted equally: BESTformer's
            // two (the reference would leave the second untrained, yet evaluates their
            // average), or a Q-SNN's time steps (mean_t CE(out_t, y)).
            (heads, None) => heads
                .iter()
                .map(|h| label_loss(h, scale / heads.len() as f32))
                .collect(),
            ([a, b], Some((target, kind))) => {
                let second = match (target, kind) {
                    (TeacherTarget::Logits(t), Distillation::Hard) => {
                        cross_entropy(ctx, b, &argmax(ctx, &t)?, 0.0, 0.5 * scale)?
                    }
                    (TeacherTarget::Distribution(q), Distillation::Hard) => {
                        soft_cross_entropy(ctx, b, &q, 0.5 * scale)?
                    }
                    (TeacherTarget::Logits(t), Distillation::Soft { tau }) => {
                        distill_soft(ctx, b, &t, tau, 0.5 * scale)?
                    }
                    (TeacherTarget::Distribution(_), Distillation::Soft { .. }) => {
                        unreachable!("soft distillation from a table passes logits")
                    }
                };
                Ok(vec![label_loss(a, 0.5 * scale)?, second])
            }
            (heads, Some(_)) => Err(Error::InvalidArgument(format!(
                "distillation needs a model with two heads; this one has {}",
                heads.len()
            ))),
        }
    }

    /// The teacher's supervision of a batch: a live teacher's logits of the batch as the
    /// model sees it, or a table's rows for the batch's samples, mixed as the batch was.
    fn teacher_target(
        &self,
        teacher: &mut Teacher,
        images: &Tensor,
        batch: &Batch,
    ) -> Result<TeacherTarget> {
        let ctx = self.ctx;
        match &mut teacher.source {
            TeacherSource::Live { model, store } => {
                let out = model.forward(ctx, store, images, false)?;
                Ok(TeacherTarget::Logits(combine_heads(ctx, &out)?))
            }
            TeacherSource::Logits(table) => {
                let shape = [batch.len(), table.classes];
                let unmixed = crate::data::Mix::none(batch.len());
                let mix = batch.mix.as_ref().unwrap_or(&unmixed);
                match teacher.kind {
                    Distillation::Hard if batch.mix.is_none() => Ok(TeacherTarget::Logits(
                        ctx.upload_f32(&table.rows(&batch.samples), &shape)?,
                    )),
                    Distillation::Hard => Ok(TeacherTarget::Distribution(
                        ctx.upload_f32(&table.hard_targets(&batch.samples, mix), &shape)?,
                    )),
                    Distillation::Soft { tau } => Ok(TeacherTarget::Logits(
                        ctx.upload_f32(&table.soft_logits(&batch.samples, mix, tau), &shape)?,
                    )),
                }
            }
        }
    }

    /// Train an epoch from `from` (a whole epoch: `EpochProgress::start(epoch)`);
    /// `on_progress` sees the running figures every `report_every` steps; `ema`, when
    /// given, follows the weights after every optimizer step. When `stop` is set the
    /// epoch ends at the next optimizer step: the GPU is kept at most one batch ahead.
    #[allow(clippy::too_many_arguments)]
    pub fn train_epoch(
        &self,
        from: EpochProgress,
        model: &mut dyn Classifier,
        store: &mut ParamStore,
        optimizer: &mut Optimizer,
        mut teacher: Option<&mut Teacher>,
        mut ema: Option<&mut ModelEma>,
        mut on_progress: impl FnMut(&StepProgress),
    ) -> Result<EpochOutcome> {
        let ctx = self.ctx;
        let epoch = from.epoch;
        let steps = self.loader.batches();
        let accum = self.accum_steps.max(1);
        let start = Instant::now();
        let mut pending: Pending = Vec::new();
        let mut progress = from;
        let seen_before = from.seen;
        let mut in_flight = None;
        let mut interrupted = false;
        // With replicas, stopping is agreed on in each reduction, so that all stop alike.
        let mut stop_agreed = false;
        let mut reduce_seconds = 0.0;
        let batches = self.loader.epoch_from(epoch as u64, from.steps_done);
        for (i, batch) in (from.steps_done..).zip(batches) {
            // Accumulation groups start at multiples of `accum` within the epoch.
            let group_start = i / accum * accum;
            let stop = match self.replicas {
                Some(_) => stop_agreed,
                None => self.stop.load(Ordering::SeqCst),
            };
            if i == group_start && stop {
                interrupted = true;
                break;
            }
            let batch = batch?;
            let group_len = accum.min(steps - group_start);
            // The schedule counts optimizer steps, so that accumulating k batches of B
            // follows the schedule of one batch of k B.
            let update = epoch * steps.div_ceil(accum) + i / accum;
            // A replica's loss is weighted by its share of the batch, so that the summed
            // gradients are those of the whole batch's mean loss. A replica whose share
            // of a small last batch is empty adds zero gradients.
            let share = batch.len() as f32 / self.loader.batch_rows(i).max(1) as f32;
            let computed = if batch.is_empty() {
                None
            } else {
                let (images, labels) = upload_batch(ctx, &batch, &self.loader.data)?;
                let heads = model.forward(ctx, store, &images, true)?;
                let teacher_target = match teacher.as_deref_mut() {
                    Some(t) => Some((self.teacher_target(t, &images, &batch)?, t.kind)),
                    None => None,
                };
                let losses = self.head_losses(
                    &heads,
                    &batch,
                    &labels,
                    teacher_target,
                    share / group_len as f32,
                )?;
                let dlogits: Vec<Tensor> = losses.iter().map(|l| l.dlogits.clone()).collect();
                model.backward(ctx, store, &dlogits)?;
                Some((heads, losses))
            };
            if i + 1 == group_start + group_len {
                if let Some(link) = &self.replicas {
                    let t = Instant::now();
                    stop_agreed = link.reduce(ctx, store, self.stop.load(Ordering::SeqCst))?;
                    reduce_seconds += t.elapsed().as_secs_f64();
                }
                optimizer.step(ctx, store, self.schedule.at(update))?;
                if let Some(ema) = ema.as_deref_mut() {
                    ema.update(ctx, store)?;
                }
            }
            if let Some((heads, losses)) = computed {
                // Report the loss the model minimises: the weighted sum over the heads.
                let weights = vec![1.0 / losses.len() as f32; losses.len()];
                let terms: Vec<(f32, &Tensor)> = weights
                    .iter()
                    .copied()
                    .zip(losses.iter().map(|l| &l.losses))
                    .collect();
                let loss = weighted_sum(ctx, &terms)?;
                let predicted = argmax(ctx, &combine_heads(ctx, &heads)?)?;
                pending.push((i, loss, predicted, batch.labels.clone()));
            }
            progress.steps_done = i + 1;
            // Wait for the batch before this one: the GPU keeps one queued, and a stop
            // never waits behind more than an accumulation group and one batch.
            if let Some(previous) = in_flight.replace(ctx.submit()) {
                ctx.wait_for(previous)?;
            }
            // Every replica drains at the same steps (its figures are summed there).
            let done = i + 1 - from.steps_done;
            if self.report_every == 0 || done.is_multiple_of(self.report_every) || i + 1 == steps {
                progress.add(self.drain_all(ctx, &mut pending, epoch, steps)?);
                on_progress(&StepProgress {
                    step: i + 1,
                    steps,
                    loss: progress.loss(),
                    accuracy: progress.accuracy(),
                    images_per_second: (progress.seen - seen_before) as f64
                        / start.elapsed().as_secs_f64(),
                });
            }
        }
        progress.add(self.drain_all(ctx, &mut pending, epoch, steps)?);
        Ok(EpochOutcome {
            loss: progress.loss(),
            accuracy: progress.accuracy(),
            images_per_second: (progress.seen - seen_before) as f64 / start.elapsed().as_secs_f64(),
            interrupted,
            progress,
            reduce_seconds,
        })
    }

    /// [`drain`], summed over the replicas when there are several.
    fn drain_all(
        &self,
        ctx: &GpuContext,
        pending: &mut Pending,
        epoch: usize,
        steps: usize,
    ) -> Result<(f64, usize, usize)> {
        let mine = drain(ctx, pending, epoch, steps)?;
        match &self.replicas {
            Some(link) => link.sum_figures(mine),
            None => Ok(mine),
        }
    }
}

/// What [`evaluate`] measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    /// Top-1 accuracy.
    pub top1: f64,
    /// Top-5 accuracy.
    pub top5: f64,
    /// Samples whose logits hold a NaN (counted as wrong).
    pub nan_predictions: usize,
    /// Samples evaluated.
    pub samples: usize,
}

/// Whether the logits `row` rank class `label` first and among the first five: a class
/// ranks below each strictly larger logit; a row with a NaN is wrong.
fn top1_top5(row: &[f32], label: usize) -> Result<(bool, bool)> {
    let target = *row.get(label).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "label {label} is outside the model's {} classes",
            row.len()
        ))
    })?;
    if row.iter().any(|v| v.is_nan()) {
        return Ok((false, false));
    }
    let better = row.iter().filter(|&&v| v > target).count();
    Ok((better == 0, better < 5))
}

/// Top-1 and top-5 accuracy of `model` on every batch of `loader`.
pub fn evaluate(
    ctx: &GpuContext,
    model: &mut dyn Classifier,
    store: &mut ParamStore,
    loader: &BatchLoader,
) -> Result<Evaluation> {
    let (mut top1, mut top5, mut nan, mut seen) = (0usize, 0usize, 0usize, 0usize);
    for batch in loader.epoch(0) {
        let batch = batch?;
        let (images, _) = upload_batch(ctx, &batch, &loader.data)?;
        let logits = combine_heads(ctx, &model.forward(ctx, store, &images, false)?)?;
        let classes = logits.shape()[1];
        let values = ctx.download_f32(&logits)?;
        for (row, &label) in values.chunks(classes).zip(&batch.labels) {
            let (first, five) = top1_top5(row, label as usize)?;
            top1 += first as usize;
            top5 += five as usize;
            nan += row.iter().any(|v| v.is_nan()) as usize;
        }
        seen += batch.len();
    }
    Ok(Evaluation {
        top1: top1 as f64 / seen.max(1) as f64,
        top5: top5 as f64 / seen.max(1) as f64,
        nan_predictions: nan,
        samples: seen,
    })
}

#[cfg(test)]
mod tests {
    use super::top1_top5;

    #[test]
    fn a_nan_prediction_is_wrong() {
        assert_eq!(top1_top5(&[0.1, 0.9, 0.3], 1).unwrap(), (true, true));
        assert_eq!(top1_top5(&[0.1, 0.9, 0.3], 0).unwrap(), (false, true));
        // `v > NaN` is false for every v: without the check these would score.
        assert_eq!(top1_top5(&[f32::NAN; 3], 1).unwrap(), (false, false));
        assert_eq!(top1_top5(&[0.1, f32::NAN, 0.3], 2).unwrap(), (false, false));
        assert_eq!(
            top1_top5(&[0.1, f32::INFINITY, 0.3], 1).unwrap(),
            (true, true)
        );
    }

    #[test]
    fn a_label_outside_the_logits_is_an_error() {
        let e = top1_top5(&[0.1, 0.9], 7).unwrap_err().to_string();
        assert!(
            e.contains("label 7 is outside the model's 2 classes"),
            "{e}"
        );
    }
}
