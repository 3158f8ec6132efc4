//! Training-time augmentation, in the order of timm's `transforms_imagenet_train`:
//! the primary geometric step (random-resized crop, or the zero-padded random crop),
//! the horizontal flip, RandAugment or else colour jitter (all on u8 planar images, as
//! timm runs them on PIL images), then, after the loader normalizes, random erasing.
//! See docs/augmentations.md for each op and where it deviates from timm.

mod color;
mod crop;
mod erasing;
mod geometry;
mod jitter;
mod rand_augment;

#[cfg(test)]
mod fixture;

pub use crop::{CropBox, ResizedCrop};
pub use erasing::{EraseMode, RandomErasing};
pub use jitter::ColorJitter;
pub use rand_augment::{Op, RandAugment};

use crate::data::Planar;
use crate::error::{Error, Result};
use crate::rng::Rng;

/// timm's `_FILL`: the grey the geometric RandAugment ops uncover when no dataset mean
/// is given.
const DEFAULT_FILL: [u8; 3] = [128; 3];

/// The augmentation of one training image. Every part is off by default; a recipe
/// written before a field existed still reads.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Augment {
    /// Pad by this many zero pixels, then crop back to the size at a random offset (the
    /// CIFAR-style crop; unused when `random_resized_crop` is set).
    pub crop_padding: usize,
    /// Mirror left-right with probability 1/2.
    pub horizontal_flip: bool,
    /// ImageNet-style random-resized crop to the output size.
    pub random_resized_crop: Option<ResizedCrop>,
    /// RandAugment policy (e.g. `rand-m9-n2-mstd0.5`).
    pub rand_augment: Option<RandAugment>,
    /// Colour jitter; as in timm it only runs when `rand_augment` is off.
    pub color_jitter: Option<ColorJitter>,
    /// Random erasing of the normalized image.
    pub random_erasing: Option<RandomErasing>,
    /// The colour that rotate, shear and translate uncover (timm's `img_mean` hparam);
    /// `None` is timm's grey 128. See [`fill_from_mean`].
    pub fill: Option<[u8; 3]>,
}

/// timm's `img_mean` hparam from the normalization mean (in [0, 1] units): each channel
/// `min(255, round(255 * mean))`; a grey mean fills all three.
pub fn fill_from_mean(mean: &[f32]) -> [u8; 3] {
    let byte = |m: f32| (255.0 * m as f64).round_ties_even().clamp(0.0, 255.0) as u8;
    match mean {
        [r, g, b, ..] => [byte(*r), byte(*g), byte(*b)],
        [m, ..] => [byte(*m); 3],
        [] => DEFAULT_FILL,
    }
}

impl Augment {
    /// Reject settings out of range and colour ops on data that is neither grey nor RGB
    /// (event frames: `T * 2` planes take only crops, flips and erasing).
    pub fn check(&self, channels: usize) -> Result<()> {
        if channels == 0 {
            return Err(Error::InvalidArgument(
                "augmenting images of 0 channels".into(),
            ));
        }
        let colour = match (&self.rand_augment, &self.color_jitter) {
            (Some(_), _) => Some("RandAugment"),
            (None, Some(_)) => Some("colour jitter"),
            (None, None) => None,
        };
        if let Some(what) = colour.filter(|_| channels != 1 && channels != 3) {
            return Err(Error::InvalidArgument(format!(
                "{what} works on grey (1 channel) or RGB (3 channel) images, not on \
                 {channels} channel planes; event frames take only crops, flips and \
                 random erasing"
            )));
        }
        if self.random_resized_crop.is_some() && self.crop_padding > 0 {
            return Err(Error::InvalidArgument(
                "a random-resized crop and a padded crop (crop_padding) are alternatives; \
                 set one"
                    .into(),
            ));
        }
        if let Some(rrc) = &self.random_resized_crop {
            rrc.check()?;
        }
        if let Some(jitter) = &self.color_jitter {
            jitter.check()?;
        }
        if let Some(erasing) = &self.random_erasing {
            erasing.check()?;
        }
        Ok(())
    }

    /// Nothing random happens: `apply_u8` only resizes (when the sizes differ) and
    /// `apply_normalized` does nothing.
    pub fn is_identity(&self) -> bool {
        self.crop_padding == 0
            && !self.horizontal_flip
            && self.random_resized_crop.is_none()
            && self.rand_augment.is_none()
            && self.color_jitter.is_none()
            && self.random_erasing.is_none()
    }

    /// The u8 stages of one image of any size, giving an `out_h` x `out_w` image: the
    /// random-resized crop (or, without it, a bilinear resize when the sizes differ and
    /// the padded crop), the flip, then RandAugment or else colour jitter.
    pub fn apply_u8(&self, img: &Planar, out_h: usize, out_w: usize, rng: &mut Rng) -> Planar {
        let mut out = match &self.random_resized_crop {
            Some(rrc) => rrc.apply(img, out_h, out_w, rng),
            None => {
                let sized = if (img.height, img.width) == (out_h, out_w) {
                    img.clone()
                } else {
                    geometry::resize_bilinear(img, out_h, out_w)
                };
                crop::pad_crop(sized, self.crop_padding, rng)
            }
        };
        if self.horizontal_flip && rng.next_u64() & 1 == 1 {
            crop::hflip(&mut out);
        }
        if let Some(ra) = &self.rand_augment {
            let fill = self.fill_for(out.channels);
            ra.apply(&mut out, &fill, rng);
        } else if let Some(jitter) = &self.color_jitter {
            jitter.apply(&mut out, rng);
        }
        out
    }

    /// The stage after normalization, on one f32 image `[channels, height, width]`:
    /// random erasing.
    pub fn apply_normalized(
        &self,
        x: &mut [f32],
        channels: usize,
        height: usize,
        width: usize,
        rng: &mut Rng,
    ) {
        if let Some(erasing) = &self.random_erasing {
            erasing.apply(x, channels, height, width, rng);
        }
    }

    fn fill_for(&self, channels: usize) -> Vec<u8> {
        let fill = self.fill.unwrap_or(DEFAULT_FILL);
        if channels == 3 {
            fill.to_vec()
        } else {
            vec![fill[0]]
        }
    }
}
