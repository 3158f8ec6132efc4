//! A batch loader that prepares batches on a background thread (shuffle, augment,
//! normalize to f32) while the GPU trains on the previous ones.

use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;

use super::mixup::{BatchShape, Mix, Mixup};
use super::{Augment, ImageDataset, Normalization, Planar};
use crate::error::Result;
use crate::rng::Rng;

/// One batch: images f32 `[B, C, H, W]` (or, for frame data, `[T, B, C, H, W]`: the
/// input of each time step), normalized, and their labels.
#[derive(Debug, Clone)]
pub struct Batch {
    pub images: Vec<f32>,
    pub labels: Vec<u32>,
    /// The dataset index of each sample (rows of a teacher-logits table).
    pub samples: Vec<usize>,
    /// How mixup or cutmix mixed the batch; None when it was not.
    pub mix: Option<Mix>,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

#[derive(Debug, Clone)]
pub struct BatchLoader {
    pub data: Arc<ImageDataset>,
    pub batch_size: usize,
    pub shuffle: bool,
    pub augment: Augment,
    /// Mixup / cutmix of each batch after normalization (training only).
    pub mixup: Option<Mixup>,
    pub norm: Normalization,
    pub seed: u64,
    /// Batches prepared ahead of the consumer.
    pub prefetch: usize,
}

impl BatchLoader {
    /// Number of batches per epoch (the last one may be smaller).
    pub fn batches(&self) -> usize {
        self.data.len().div_ceil(self.batch_size.max(1))
    }

    /// The batches of one epoch, in an order fixed by (seed, epoch), prepared on a
    /// background thread. Dropping the iterator stops the thread.
    pub fn epoch(&self, epoch: u64) -> Receiver<Result<Batch>> {
        self.epoch_from(epoch, 0)
    }

    /// The batches of `epoch` from batch `first` on: the same batches, augmented alike,
    /// as the whole epoch's (each batch's augmentation has its own seed), so that an
    /// interrupted epoch resumes exactly.
    pub fn epoch_from(&self, epoch: u64, first: usize) -> Receiver<Result<Batch>> {
        let (tx, rx) = sync_channel(self.prefetch.max(1));
        let me = self.clone();
        std::thread::spawn(move || {
            let epoch_seed = me.seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let mut order: Vec<usize> = (0..me.data.len()).collect();
            if me.shuffle {
                Rng::new(epoch_seed).shuffle(&mut order);
            }
            for (b, chunk) in order.chunks(me.batch_size.max(1)).enumerate().skip(first) {
                let batch_seed = epoch_seed ^ (b as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03);
                let batch = me.make_batch(chunk, epoch as usize, &mut Rng::new(batch_seed));
                if tx.send(Ok(batch)).is_err() {
                    return;
                }
            }
        });
        rx
    }

    /// Build the batch of the given dataset indices in `epoch`. Augmentation crops and
    /// flips all of a sample's frames alike; random erasing runs on the normalized
    /// sample; mixup mixes the normalized batch, a sample's frames alike.
    pub fn make_batch(&self, indices: &[usize], epoch: usize, rng: &mut Rng) -> Batch {
        let d = &self.data;
        let (t_steps, c, h, w) = (d.time_steps, d.channels, d.height, d.width);
        let (plane, b) = (h * w, indices.len());
        let mut images = vec![0f32; b * d.image_len()];
        let mut sample = vec![0f32; d.image_len()];
        for (k, &i) in indices.iter().enumerate() {
            let augmented;
            let src = if self.augment.is_identity() {
                d.image(i)
            } else {
                let img = Planar::from_vec(d.image(i).to_vec(), t_steps * c, h, w);
                augmented = self.augment.apply_u8(&img, h, w, rng);
                &augmented.data[..]
            };
            for (p, (o, v)) in sample.chunks_mut(plane).zip(src.chunks(plane)).enumerate() {
                let (m, s) = (self.norm.mean[p % c], self.norm.std[p % c]);
                o.iter_mut()
                    .zip(v)
                    .for_each(|(o, &v)| *o = (v as f32 / 255.0 - m) / s);
            }
            self.augment
                .apply_normalized(&mut sample, t_steps * c, h, w, rng);
            for t in 0..t_steps {
                let to = (t * b + k) * c * plane;
                images[to..to + c * plane]
                    .copy_from_slice(&sample[t * c * plane..(t + 1) * c * plane]);
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
            m.apply(&mut images, shape, rng)
        });
        Batch {
            images,
            labels: indices.iter().map(|&i| d.labels[i]).collect(),
            samples: indices.to_vec(),
            mix,
        }
    }
}
