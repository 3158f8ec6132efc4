//! The samples of one split as the loader reads them: decoded into memory once, or a
//! list of image files decoded as each batch is prepared.

use super::files::FileList;
use super::parallel::par_map;
use super::{ChannelMoments, ImageDataset, Normalization, Planar};
use crate::error::Result;

/// The most images a streamed split's normalization is estimated from.
pub const NORMALIZATION_SAMPLES: usize = 1000;

/// One split's samples. Both forms give the same images for the same folder: a decoded
/// folder holds each image as a streamed one would read it, brought to the output size.
#[derive(Debug, Clone)]
pub enum Samples {
    /// In memory (IDX, CIFAR binary, event frames, image folders that fit).
    Decoded(ImageDataset),
    /// Image files, decoded by the loader's workers.
    Files(FileList),
}

impl From<ImageDataset> for Samples {
    fn from(d: ImageDataset) -> Self {
        Samples::Decoded(d)
    }
}

impl Samples {
    /// The number of samples.
    pub fn len(&self) -> usize {
        self.labels().len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The label of each sample.
    pub fn labels(&self) -> &[u32] {
        match self {
            Samples::Decoded(d) => &d.labels,
            Samples::Files(f) => &f.labels,
        }
    }

    /// Class names, in label order.
    pub fn classes(&self) -> &[String] {
        match self {
            Samples::Decoded(d) => &d.classes,
            Samples::Files(f) => &f.classes,
        }
    }

    /// Channels of each sample's image (2 for event frames).
    pub fn channels(&self) -> usize {
        match self {
            Samples::Decoded(d) => d.channels,
            Samples::Files(f) => f.channels,
        }
    }

    /// The output height: every batch's images have it.
    pub fn height(&self) -> usize {
        match self {
            Samples::Decoded(d) => d.height,
            Samples::Files(f) => f.height,
        }
    }

    /// The output width.
    pub fn width(&self) -> usize {
        match self {
            Samples::Decoded(d) => d.width,
            Samples::Files(f) => f.width,
        }
    }

    /// Frames per sample (1 for still images).
    pub fn time_steps(&self) -> usize {
        match self {
            Samples::Decoded(d) => d.time_steps,
            Samples::Files(_) => 1,
        }
    }

    /// The decoded dataset, when the samples are in memory.
    pub fn decoded(&self) -> Option<&ImageDataset> {
        match self {
            Samples::Decoded(d) => Some(d),
            Samples::Files(_) => None,
        }
    }

    /// Sample `i` before augmentation, as `time_steps * channels` planes: at the output
    /// size when decoded, at its own size or centre-cropped when streamed (see
    /// [`super::files::Fit`]). Errors name the file.
    pub fn read(&self, i: usize) -> Result<Planar> {
        match self {
            Samples::Decoded(d) => Ok(Planar::from_vec(
                d.image(i).to_vec(),
                d.time_steps * d.channels,
                d.height,
                d.width,
            )),
            Samples::Files(f) => f.read(i),
        }
    }

    /// Per-channel mean and standard deviation of the pixels: exact for decoded samples;
    /// for files estimated from [`NORMALIZATION_SAMPLES`] images spread evenly over the
    /// split (decoding them all could take as long as an epoch).
    pub fn normalization(&self) -> Result<Normalization> {
        let files = match self {
            Samples::Decoded(d) => return Ok(d.normalization()),
            Samples::Files(f) => f,
        };
        let n = files.len().min(NORMALIZATION_SAMPLES);
        let picks: Vec<usize> = (0..n).map(|k| k * files.len() / n.max(1)).collect();
        let parts = par_map(&picks, "image statistics", |&i| {
            let img = files.read(i)?;
            let mut m = ChannelMoments::new(files.channels);
            for c in 0..img.channels {
                m.add(c, img.plane(c));
            }
            Ok(m)
        })?;
        let mut total = ChannelMoments::new(files.channels);
        for p in &parts {
            total.merge(p);
        }
        Ok(total.normalization())
    }
}
