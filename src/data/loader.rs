//! A batch loader that prepares batches on a background thread (shuffle, augment,
//! normalize to f32) while the GPU trains on the previous ones.

use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;

use super::{Augment, ImageDataset, Normalization};
use crate::rng::Rng;

/// One batch: images f32 `[B, C, H, W]`, normalized, and their labels.
#[derive(Debug, Clone)]
pub struct Batch {
    pub images: Vec<f32>,
    pub labels: Vec<u32>,
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
    pub fn epoch(&self, epoch: u64) -> Receiver<Batch> {
        let (tx, rx) = sync_channel(self.prefetch.max(1));
        let me = self.clone();
        std::thread::spawn(move || {
            let mut rng = Rng::new(me.seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let mut order: Vec<usize> = (0..me.data.len()).collect();
            if me.shuffle {
                rng.shuffle(&mut order);
            }
            for chunk in order.chunks(me.batch_size.max(1)) {
                if tx.send(me.make_batch(chunk, &mut rng)).is_err() {
                    return;
                }
            }
        });
        rx
    }

    /// Build the batch of the given dataset indices.
    pub fn make_batch(&self, indices: &[usize], rng: &mut Rng) -> Batch {
        let d = &self.data;
        let (c, h, w) = (d.channels, d.height, d.width);
        let n = d.image_len();
        let mut images = Vec::with_capacity(indices.len() * n);
        let mut scratch = vec![0u8; n];
        for &i in indices {
            let src = if self.augment.is_identity() {
                d.image(i)
            } else {
                self.augment.apply(d.image(i), c, h, w, rng, &mut scratch);
                &scratch[..]
            };
            for ch in 0..c {
                let (m, s) = (self.norm.mean[ch], self.norm.std[ch]);
                images.extend(
                    src[ch * h * w..(ch + 1) * h * w]
                        .iter()
                        .map(|&v| (v as f32 / 255.0 - m) / s),
                );
            }
        }
        Batch {
            images,
            labels: indices.iter().map(|&i| d.labels[i]).collect(),
        }
    }
}
