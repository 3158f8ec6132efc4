//! A split of an image folder as its list of files, decoded when a sample is read: for
//! folders too large to decode into memory, and for folders whose images differ in size
//! (ImageNet-style), where training crops from each full image.

use std::path::PathBuf;

use super::decode::open_image;
use super::parallel::par_map;
use super::resize::{eval_center_crop, resize};
use super::{ImageDataset, Planar};
use crate::error::Result;

/// How a split's images reach the output size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// Training: read at their own size; the loader brings each to the output size
    /// (resizing, or cropping at random) as it augments it.
    Native,
    /// Evaluation: timm's eval transform ([`eval_center_crop`]).
    CenterCrop,
}

/// Image files with their labels, read as `channels` planes (1: grey, 3: RGB) and
/// brought to `height` x `width`, the output (model) size, as `fit` says.
#[derive(Debug, Clone)]
pub struct FileList {
    /// The image files, one per sample.
    pub files: Vec<PathBuf>,
    /// The label of each file.
    pub labels: Vec<u32>,
    /// Class names, in label order.
    pub classes: Vec<String>,
    /// Channels of the decoded images.
    pub channels: usize,
    /// Height of the prepared images.
    pub height: usize,
    /// Width of the prepared images.
    pub width: usize,
    /// How a decoded image is brought to that size.
    pub fit: Fit,
}

impl FileList {
    /// The number of files.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether there are no files.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Sample `i` decoded: at its own size for [`Fit::Native`], centre-cropped to the
    /// output size for [`Fit::CenterCrop`]. Errors name the file.
    pub fn read(&self, i: usize) -> Result<Planar> {
        let path = &self.files[i];
        let img = Planar::from_image(&open_image(path)?, self.channels);
        Ok(match self.fit {
            Fit::Native => img,
            Fit::CenterCrop => eval_center_crop(&img, self.height, self.width),
        })
    }

    /// Sample `i` at the output size: [`FileList::read`], resized when it is not.
    pub fn read_at_output_size(&self, i: usize) -> Result<Planar> {
        Ok(resize(&self.read(i)?, self.height, self.width))
    }

    /// Every file decoded at the output size into memory, on up to 8 threads.
    pub fn decode_all(&self) -> Result<ImageDataset> {
        let indices: Vec<usize> = (0..self.len()).collect();
        let decoded = par_map(&indices, "image decoding", |&i| {
            Ok(self.read_at_output_size(i)?.data)
        })?;
        let images = decoded.concat();
        Ok(ImageDataset {
            images,
            labels: self.labels.clone(),
            channels: self.channels,
            height: self.height,
            width: self.width,
            time_steps: 1,
            classes: self.classes.clone(),
        })
    }
}
