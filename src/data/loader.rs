//! A batch loader that prepares batches on worker threads (read or decode, augment,
//! normalize to f32) while the GPU trains on the previous ones, and delivers them in
//! order through a bounded queue.
//!
//! Batches are bit-identical whatever the number of workers: the order of an epoch is
//! fixed by (seed, epoch), each batch has its own seed from (seed, epoch, batch index),
//! and each sample its own generator from the batch seed and its place in the batch.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::mixup::{BatchShape, Mix, Mixup};
use super::ordered::Ordered;
use super::{Augment, Normalization, Samples};
use crate::error::Result;
use crate::rng::Rng;

/// One batch: images f32 `[B, C, H, W]` (or, for frame data, `[T, B, C, H, W]`: the
/// input of each time step), normalized, and their labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Normalized images `[B, C, H, W]` (or frames `[T, B, C, H, W]`), flat.
    pub images: Vec<f32>,
    /// The label of each sample.
    pub labels: Vec<u32>,
    /// The dataset index of each sample (rows of a teacher-logits table).
    pub samples: Vec<usize>,
    /// How mixup or cutmix mixed the batch; None when it was not.
    pub mix: Option<Mix>,
}

impl Batch {
    /// Samples in the batch.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// The batches of an epoch, in order; an error (a file that cannot be decoded) ends
/// them. Dropping it stops the workers.
pub type Batches = Ordered<Batch>;

#[derive(Debug, Clone)]
/// Batches of a dataset, prepared on worker threads: shuffled, augmented, normalized and mixed as configured, in an order fixed by the seed.
pub struct BatchLoader {
    /// The samples.
    pub data: Arc<Samples>,
    /// Samples per batch (the last batch takes what is left).
    pub batch_size: usize,
    /// Shuffle every epoch (training).
    pub shuffle: bool,
    /// Per-image augmentation.
    pub augment: Augment,
    /// Mixup / cutmix of each batch after normalization (training only).
    pub mixup: Option<Mixup>,
    /// The normalization applied after augmentation.
    pub norm: Normalization,
    /// Seed of the order and of the augmentations.
    pub seed: u64,
    /// Batches prepared ahead of the consumer, ready or in preparation (at least one
    /// per worker).
    pub prefetch: usize,
    /// Threads preparing batches; 0: one per core.
    pub workers: usize,
    /// The part of each batch this loader delivers (a data-parallel replica's share).
    pub shard: Shard,
}

/// Part `index` of `count` equal parts of every batch (the last part of a batch that
/// does not divide takes less): the rows a data-parallel replica trains on. Each sample
/// is augmented as in the whole batch; mixup mixes within the part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// Which part, `0..count`.
    pub index: usize,
    /// Parts of a batch.
    pub count: usize,
}

impl Shard {
    /// The whole batch.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// The rows of a batch of `rows` that this part takes.
    pub fn rows(&self, rows: usize) -> std::ops::Range<usize> {
        let per = rows.div_ceil(self.count.max(1));
        (self.index * per).min(rows)..((self.index + 1) * per).min(rows)
    }
}

/// The seed of batch `b` of the epoch whose seed is `epoch_seed`.
fn batch_seed(epoch_seed: u64, b: usize) -> u64 {
    epoch_seed ^ (b as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03)
}

/// The seed of the `k`-th sample of the batch whose seed is `batch_seed`.
fn sample_seed(batch_seed: u64, k: usize) -> u64 {
    Rng::new(batch_seed ^ (k as u64 + 1).wrapping_mul(0xA24B_AED4_963E_E407)).next_u64()
}

/// The seed of the mixing of the batch whose seed is `batch_seed` (a stream apart from
/// its samples').
fn mix_seed(batch_seed: u64) -> u64 {
    Rng::new(batch_seed ^ 0x6A09_E667_F3BC_C909).next_u64()
}

impl BatchLoader {
    /// Number of batches per epoch (the last one may be smaller).
    pub fn batches(&self) -> usize {
        self.data.len().div_ceil(self.batch_size.max(1))
    }

    /// Samples in batch `b` of an epoch, over all shards.
    pub fn batch_rows(&self, b: usize) -> usize {
        let size = self.batch_size.max(1);
        self.data.len().saturating_sub(b * size).min(size)
    }

    /// The worker threads an epoch runs on.
    pub fn worker_count(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    /// The batches of one epoch, in an order fixed by (seed, epoch), prepared on the
    /// worker threads.
    pub fn epoch(&self, epoch: u64) -> Batches {
        self.epoch_from(epoch, 0)
    }

    /// The batches of `epoch` from batch `first` on: the same batches, augmented alike,
    /// as the whole epoch's (each batch's augmentation has its own seed), so that an
    /// interrupted epoch resumes exactly.
    pub fn epoch_from(&self, epoch: u64, first: usize) -> Batches {
        let epoch_seed = self.seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut order: Vec<usize> = (0..self.data.len()).collect();
        if self.shuffle {
            Rng::new(epoch_seed).shuffle(&mut order);
        }
        let me = self.clone();
        let size = self.batch_size.max(1);
        let batches = self.batches();
        Ordered::spawn(
            first.min(batches)..batches,
            self.worker_count(),
            self.prefetch,
            move |b, stop: &AtomicBool| {
                let whole = &order[b * size..((b + 1) * size).min(order.len())];
                let part = me.shard.rows(whole.len());
                let seed = batch_seed(epoch_seed, b);
                let batch =
                    me.build_batch(&whole[part.clone()], part.start, epoch as usize, seed, stop);
                // A batch cut short by `stop` is not delivered.
                (!stop.load(Ordering::SeqCst)).then_some(batch)
            },
        )
    }

    /// The batch of the given dataset indices in `epoch`, augmented from `seed` (the
    /// same seed and indices give the same batch). Augmentation crops and flips all of a
    /// sample's frames alike, random erasing runs on the normalized sample, and mixup
    /// on the normalized batch.
    pub fn make_batch(&self, indices: &[usize], epoch: usize, seed: u64) -> Result<Batch> {
        self.build_batch(indices, 0, epoch, seed, &AtomicBool::new(false))
    }

    /// [`BatchLoader::make_batch`] of the rows from `first_row` on of a batch, returning
    /// early (with a partial batch, to be discarded) once `stop` is set.
    fn build_batch(
        &self,
        indices: &[usize],
        first_row: usize,
        epoch: usize,
        seed: u64,
        stop: &AtomicBool,
    ) -> Result<Batch> {
        let d = &self.data;
        let (t_steps, c) = (d.time_steps(), d.channels());
        let (h, w) = (d.height(), d.width());
        let (plane, b) = (h * w, indices.len());
        let frame = c * plane;
        let mut images = vec![0f32; b * t_steps * frame];
        let mut sample = vec![0f32; t_steps * frame];
        for (k, &i) in indices.iter().enumerate() {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let mut rng = Rng::new(sample_seed(seed, first_row + k));
            let img = self.augment.apply_u8(&d.read(i)?, h, w, &mut rng);
            for (p, (o, v)) in sample
                .chunks_mut(plane)
                .zip(img.data.chunks(plane))
                .enumerate()
            {
                let (m, s) = (self.norm.mean[p % c], self.norm.std[p % c]);
                o.iter_mut()
                    .zip(v)
                    .for_each(|(o, &v)| *o = (v as f32 / 255.0 - m) / s);
            }
            self.augment
                .apply_normalized(&mut sample, t_steps * c, h, w, &mut rng);
            for t in 0..t_steps {
                let to = (t * b + k) * frame;
                images[to..to + frame].copy_from_slice(&sample[t * frame..(t + 1) * frame]);
            }
        }
        let mix = self.mixup.as_ref().filter(|m| m.active_in(epoch)).map(|m| {
            let shape = BatchShape {
                time_steps: t_steps,
                batch: b,
                channels: c,
                height: h,
                width: w,
            };
            m.apply(&mut images, shape, &mut Rng::new(mix_seed(seed)))
        });
        Ok(Batch {
            images,
            labels: indices.iter().map(|&i| d.labels()[i]).collect(),
            samples: indices.to_vec(),
            mix,
        })
    }
}
