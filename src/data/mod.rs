//! Datasets and loaders: MNIST-style IDX files, CIFAR-10/100 binary batches, and image
//! folders, all read into one in-memory form, and a prefetching batch loader.

pub mod augment;
pub mod cifar;
pub mod folder;
pub mod idx;
pub mod loader;

use std::path::Path;

use crate::error::{Error, Result};

pub use augment::Augment;
pub use loader::{Batch, BatchLoader};

/// Images in memory as u8, channel-planar `[N, C, H, W]`, with their labels.
#[derive(Debug, Clone)]
pub struct ImageDataset {
    pub images: Vec<u8>,
    pub labels: Vec<u32>,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub classes: Vec<String>,
}

impl ImageDataset {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.image_len();
        &self.images[i * n..(i + 1) * n]
    }

    /// Per-channel mean and standard deviation of the pixels, in [0, 1] units.
    pub fn normalization(&self) -> Normalization {
        let plane = self.height * self.width;
        let mut mean = Vec::with_capacity(self.channels);
        let mut std = Vec::with_capacity(self.channels);
        for c in 0..self.channels {
            let (mut s, mut s2, mut n) = (0f64, 0f64, 0f64);
            for i in 0..self.len() {
                for &v in &self.image(i)[c * plane..(c + 1) * plane] {
                    let x = v as f64 / 255.0;
                    s += x;
                    s2 += x * x;
                    n += 1.0;
                }
            }
            let m = s / n.max(1.0);
            mean.push(m as f32);
            std.push(((s2 / n.max(1.0) - m * m).max(1e-12)).sqrt() as f32);
        }
        Normalization { mean, std }
    }
}

/// Per-channel normalization `(x / 255 - mean) / std`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Normalization {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

/// A training and a test split of one dataset.
#[derive(Debug, Clone)]
pub struct Splits {
    pub train: ImageDataset,
    pub test: ImageDataset,
    /// What was found at the path, for messages.
    pub format: &'static str,
}

/// Open a dataset directory, recognising its layout:
/// - IDX: `train-images-idx3-ubyte[.gz]`, `train-labels-idx1-ubyte[.gz]`,
///   `t10k-images-idx3-ubyte[.gz]`, `t10k-labels-idx1-ubyte[.gz]` (MNIST, Fashion-MNIST);
/// - CIFAR-10 binary: `data_batch_{1..5}.bin` + `test_batch.bin` (also inside
///   `cifar-10-batches-bin/`); CIFAR-100 binary: `train.bin` + `test.bin`;
/// - image folders: `train/<class>/*.png|jpg|bmp` and `test/<class>/...`.
pub fn open(path: &Path) -> Result<Splits> {
    if !path.is_dir() {
        return Err(Error::data(path, "is not a dataset directory"));
    }
    if let Some(s) = idx::open_dir(path)? {
        return Ok(s);
    }
    if let Some(s) = cifar::open_dir(path)? {
        return Ok(s);
    }
    if let Some(s) = folder::open_dir(path)? {
        return Ok(s);
    }
    Err(Error::data(
        path,
        "no dataset found: expected MNIST-style IDX files, CIFAR binary batches, or \
         train/ and test/ folders with one subfolder per class",
    ))
}
