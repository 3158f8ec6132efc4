//! Datasets and loaders: MNIST-style IDX files, CIFAR-10/100 binary batches, image
//! folders and event-camera recordings (binned into frames), read into one in-memory
//! form, or, for image folders, kept as file lists decoded while loading ([`Samples`]);
//! a multi-threaded, prefetching batch loader; mixup and cutmix; tables of teacher
//! logits.

pub mod augment;
pub mod cifar;
pub mod decode;
pub mod events;
pub mod files;
pub mod folder;
pub mod idx;
pub mod loader;
pub mod mixup;
pub mod ordered;
pub mod parallel;
pub mod planar;
pub mod resize;
pub mod samples;
pub mod teacher_logits;

use std::path::Path;

use crate::error::{Error, Result};

pub use augment::Augment;
pub use files::{FileList, Fit};
pub use folder::{FolderOptions, Load};
pub use loader::{Batch, BatchLoader, Batches, Shard};
pub use mixup::{Mix, MixMode, Mixup};
pub use planar::Planar;
pub use samples::Samples;
pub use teacher_logits::TeacherLogits;

/// Images in memory as u8, channel-planar `[N, C, H, W]`, with their labels; or, for
/// event data, T frames per sample `[N, T, C, H, W]` (event counts saturated at 255).
#[derive(Debug, Clone)]
pub struct ImageDataset {
    /// Every image's pixels, channel-planar, one image after another.
    pub images: Vec<u8>,
    /// The label of each image.
    pub labels: Vec<u32>,
    /// Channels per image.
    pub channels: usize,
    /// Image height.
    pub height: usize,
    /// Image width.
    pub width: usize,
    /// Frames per sample: 1 for still images (the model repeats them over its T).
    pub time_steps: usize,
    /// Class names, in label order.
    pub classes: Vec<String>,
}

impl ImageDataset {
    /// The number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Values per sample (all its frames).
    pub fn image_len(&self) -> usize {
        self.time_steps * self.channels * self.height * self.width
    }

    /// Image `i`'s pixels `[C, H, W]`.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.image_len();
        &self.images[i * n..(i + 1) * n]
    }

    /// Per-channel mean and standard deviation of the pixels, in [0, 1] units.
    pub fn normalization(&self) -> Normalization {
        let plane = self.height * self.width;
        let mut moments = ChannelMoments::new(self.channels);
        for i in 0..self.len() {
            for t in 0..self.time_steps {
                for c in 0..self.channels {
                    let at = (t * self.channels + c) * plane;
                    moments.add(c, &self.image(i)[at..at + plane]);
                }
            }
        }
        moments.normalization()
    }
}

/// Running per-channel sums of pixel values and their squares, in [0, 1] units.
#[derive(Debug, Clone)]
pub struct ChannelMoments {
    sums: Vec<(f64, f64, f64)>,
}

impl ChannelMoments {
    /// Empty sums for `channels` channels.
    pub fn new(channels: usize) -> Self {
        Self {
            sums: vec![(0.0, 0.0, 0.0); channels],
        }
    }

    /// Count the pixels of one plane of channel `c`.
    pub fn add(&mut self, c: usize, plane: &[u8]) {
        let (s, s2, n) = &mut self.sums[c];
        for &v in plane {
            let x = v as f64 / 255.0;
            *s += x;
            *s2 += x * x;
        }
        *n += plane.len() as f64;
    }

    /// Add another part's sums.
    pub fn merge(&mut self, other: &ChannelMoments) {
        for (a, b) in self.sums.iter_mut().zip(&other.sums) {
            *a = (a.0 + b.0, a.1 + b.1, a.2 + b.2);
        }
    }

    /// The mean and standard deviation per channel, in [0, 1] units.
    pub fn normalization(&self) -> Normalization {
        let (mean, std) = self
            .sums
            .iter()
            .map(|&(s, s2, n)| {
                let m = s / n.max(1.0);
                (
                    m as f32,
                    ((s2 / n.max(1.0) - m * m).max(1e-12)).sqrt() as f32,
                )
            })
            .unzip();
        Normalization { mean, std }
    }
}

/// Per-channel normalization `(x / 255 - mean) / std`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Normalization {
    /// Per-channel mean, in [0, 1] units.
    pub mean: Vec<f32>,
    /// Per-channel standard deviation, in [0, 1] units.
    pub std: Vec<f32>,
}

/// A training and a test split of one dataset.
#[derive(Debug, Clone)]
pub struct Splits {
    /// The training split.
    pub train: Samples,
    /// The test split.
    pub test: Samples,
    /// What was found at the path, for messages.
    pub format: &'static str,
    /// How event data was binned into frames; None for still images.
    pub frames: Option<events::FrameSettings>,
}

impl Splits {
    /// Check that the data fits a model of `classes` classes before anything trains or
    /// evaluates on it: every label of both splits below `classes` (the error names the
    /// dataset `path`, the split, the sample's index and its label), and no more classes
    /// than the model has.
    pub fn check_classes(&self, classes: usize, path: &Path) -> Result<()> {
        for (split, data) in [("train", &self.train), ("test", &self.test)] {
            let bad = data
                .labels()
                .iter()
                .enumerate()
                .find(|(_, &l)| l as usize >= classes);
            if let Some((i, &label)) = bad {
                let name = data
                    .classes()
                    .get(label as usize)
                    .filter(|n| **n != label.to_string())
                    .map(|n| format!(" (class '{n}')"))
                    .unwrap_or_default();
                return Err(Error::data(
                    path,
                    format!(
                        "{} {split} split, sample {i}: label {label}{name} is outside the \
                         model's {classes} classes (0..={})",
                        self.format,
                        classes.saturating_sub(1)
                    ),
                ));
            }
        }
        let found = self.train.classes().len().max(self.test.classes().len());
        if found > classes {
            return Err(Error::data(
                path,
                format!(
                    "{} with {found} classes, but the model has {classes} (--classes)",
                    self.format
                ),
            ));
        }
        Ok(())
    }
}

/// Open a dataset directory, recognising its layout:
/// - IDX: `train-images-idx3-ubyte[.gz]`, `train-labels-idx1-ubyte[.gz]`,
///   `t10k-images-idx3-ubyte[.gz]`, `t10k-labels-idx1-ubyte[.gz]` (MNIST, Fashion-MNIST);
/// - CIFAR-10 binary: `data_batch_{1..5}.bin` + `test_batch.bin` (also inside
///   `cifar-10-batches-bin/`); CIFAR-100 binary: `train.bin` + `test.bin`;
/// - image folders: `train/<class>/*.png|jpg|bmp` and `test/<class>/...`, decoded into
///   memory or streamed as [`folder::open_dir`] decides;
/// - event recordings in the layouts of [`events::dataset`], binned with default options.
pub fn open(path: &Path) -> Result<Splits> {
    open_with(path, &events::dataset::EventOptions::default())
}

/// [`open`], binning event data as `events` says.
pub fn open_with(path: &Path, events: &events::dataset::EventOptions) -> Result<Splits> {
    open_with_options(
        path,
        &OpenOptions {
            events: events.clone(),
            folders: FolderOptions::default(),
        },
    )
}

/// How [`open_with_options`] reads what it finds.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// Binning of event recordings.
    pub events: events::dataset::EventOptions,
    /// Image folders: output size, in memory or streamed.
    pub folders: FolderOptions,
}

/// [`open`] with the options for event data and image folders.
pub fn open_with_options(path: &Path, options: &OpenOptions) -> Result<Splits> {
    let splits = find_and_open(path, options)?;
    for (split, data) in [("train", &splits.train), ("test", &splits.test)] {
        if data.is_empty() {
            return Err(Error::data(
                path,
                format!("{}: the {split} split holds no samples", splits.format),
            ));
        }
    }
    Ok(splits)
}

fn find_and_open(path: &Path, options: &OpenOptions) -> Result<Splits> {
    if !path.is_dir() {
        return Err(Error::data(path, "is not a dataset directory"));
    }
    if let Some(s) = idx::open_dir(path)? {
        return Ok(s);
    }
    if let Some(s) = cifar::open_dir(path)? {
        return Ok(s);
    }
    if let Some(s) = events::dataset::open_dir(path, &options.events)? {
        return Ok(s);
    }
    if let Some(s) = folder::open_dir(path, &options.folders)? {
        return Ok(s);
    }
    Err(Error::data(
        path,
        "no dataset found: expected MNIST-style IDX files, CIFAR binary batches, \
         train/ and test/ folders with one subfolder per class, or event recordings \
         (Train/ and Test/ class folders, samples/ with label files, or class folders)",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(labels: Vec<u32>, classes: usize) -> ImageDataset {
        ImageDataset {
            images: vec![0; labels.len()],
            labels,
            channels: 1,
            height: 1,
            width: 1,
            time_steps: 1,
            classes: (0..classes).map(|c| format!("c{c}")).collect(),
        }
    }

    fn splits(train: ImageDataset, test: ImageDataset) -> Splits {
        Splits {
            train: train.into(),
            test: test.into(),
            format: "IDX (MNIST-style)",
            frames: None,
        }
    }

    #[test]
    fn labels_outside_the_models_classes_name_split_sample_and_label() {
        let path = Path::new("/data/mnist");
        let ok = splits(split(vec![0, 9, 3], 10), split(vec![1, 2], 10));
        ok.check_classes(10, path).unwrap();
        ok.check_classes(12, path).unwrap();
        let bad = splits(split(vec![0, 9, 3], 10), split(vec![1, 200], 201));
        let e = bad.check_classes(10, path).unwrap_err().to_string();
        assert!(
            e.starts_with("/data/mnist: ")
                && e.contains("test split, sample 1: label 200 (class 'c200')")
                && e.contains("10 classes (0..=9)"),
            "{e}"
        );
        let e = bad.check_classes(0, path).unwrap_err().to_string();
        assert!(e.contains("train split, sample 0: label 0"), "{e}");
    }

    #[test]
    fn more_classes_than_the_model_is_an_error() {
        let path = Path::new("/data/folders");
        let twelve = splits(split(vec![0, 1], 12), split(vec![2], 12));
        let e = twelve.check_classes(10, path).unwrap_err().to_string();
        assert!(e.contains("with 12 classes, but the model has 10"), "{e}");
    }
}
