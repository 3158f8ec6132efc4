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

/// Python's `random.uniform(a, b)`.
fn uniform(rng: &mut Rng, a: f64, b: f64) -> f64 {
    a + (b - a) * rng.uniform() as f64
}

/// Comma-separated numbers, naming the bad one.
fn parse_floats(s: &str, what: &str) -> Result<Vec<f32>> {
    s.split(',')
        .map(|t| {
            t.trim()
                .parse::<f32>()
                .map_err(|_| Error::InvalidArgument(format!("{what} '{s}': '{t}' is not a number")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(c: usize, h: usize, w: usize) -> Planar {
        let data = (0..c * h * w).map(|i| (i * 37 % 251) as u8).collect();
        Planar::from_vec(data, c, h, w)
    }

    fn imagenet_style() -> Augment {
        Augment {
            horizontal_flip: true,
            random_resized_crop: Some(ResizedCrop::default()),
            rand_augment: Some("rand-m9-n2-mstd0.5-inc1".parse().unwrap()),
            random_erasing: Some("0.25,pixel".parse().unwrap()),
            fill: Some(fill_from_mean(&[0.485, 0.456, 0.406])),
            ..Augment::default()
        }
    }

    #[test]
    fn identity_leaves_pixels_alone() {
        let aug = Augment::default();
        assert!(aug.is_identity());
        let img = image(3, 11, 13);
        assert_eq!(aug.apply_u8(&img, 11, 13, &mut Rng::new(0)), img);
        let mut x = vec![0.5f32; 3 * 11 * 13];
        aug.apply_normalized(&mut x, 3, 11, 13, &mut Rng::new(0));
        assert!(x.iter().all(|&v| v == 0.5));
        assert!(!imagenet_style().is_identity());
    }

    #[test]
    fn the_pipeline_repeats_per_seed_at_odd_sizes() {
        let aug = imagenet_style();
        aug.check(3).unwrap();
        let img = image(3, 37, 23);
        let run = |seed| aug.apply_u8(&img, 15, 9, &mut Rng::new(seed));
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
        assert_eq!((run(1).channels, run(1).height, run(1).width), (3, 15, 9));
        let grey = image(1, 9, 7);
        let out = aug.apply_u8(&grey, 5, 3, &mut Rng::new(3));
        assert_eq!((out.channels, out.height, out.width), (1, 5, 3));
    }

    #[test]
    fn without_a_random_resized_crop_other_sizes_are_resized() {
        let aug = Augment {
            crop_padding: 2,
            ..Augment::default()
        };
        let out = aug.apply_u8(&image(2, 20, 30), 8, 12, &mut Rng::new(0));
        assert_eq!((out.channels, out.height, out.width), (2, 8, 12));
    }

    #[test]
    fn rand_augment_turns_colour_jitter_off() {
        // `rand-n0` draws no op; the jitter that would change the image must not run.
        let img = image(3, 6, 7);
        let jitter_only = Augment {
            color_jitter: Some("0.9".parse().unwrap()),
            ..Augment::default()
        };
        let both = Augment {
            rand_augment: Some("rand-n0".parse().unwrap()),
            ..jitter_only.clone()
        };
        assert_ne!(jitter_only.apply_u8(&img, 6, 7, &mut Rng::new(0)), img);
        assert_eq!(both.apply_u8(&img, 6, 7, &mut Rng::new(0)), img);
    }

    #[test]
    fn check_rejects_colour_ops_on_event_frames_and_bad_settings() {
        let frames = Augment {
            horizontal_flip: true,
            crop_padding: 2,
            random_erasing: Some(RandomErasing::default()),
            ..Augment::default()
        };
        frames.check(8).unwrap();
        let err = imagenet_style().check(8).unwrap_err().to_string();
        assert!(
            err.contains("RandAugment") && err.contains("8 channel"),
            "{err}"
        );
        let jitter = Augment {
            color_jitter: Some(ColorJitter::default()),
            ..Augment::default()
        };
        assert!(jitter
            .check(2)
            .unwrap_err()
            .to_string()
            .contains("colour jitter"));
        jitter.check(1).unwrap();
        assert!(Augment::default().check(0).is_err());
        let both_crops = Augment {
            crop_padding: 4,
            ..imagenet_style()
        };
        assert!(both_crops.check(3).is_err());
        let bad = Augment {
            random_erasing: Some(RandomErasing {
                probability: 2.0,
                ..Default::default()
            }),
            ..Augment::default()
        };
        assert!(bad.check(3).is_err());
    }

    #[test]
    fn recipes_round_trip_and_old_ones_still_read() {
        let aug = imagenet_style();
        let json = serde_json::to_string(&aug).unwrap();
        assert!(json.contains("\"rand-m9-n2-mstd0.5-inc1\""), "{json}");
        assert_eq!(serde_json::from_str::<Augment>(&json).unwrap(), aug);
        let old: Augment =
            serde_json::from_str(r#"{"crop_padding":4,"horizontal_flip":true}"#).unwrap();
        assert_eq!(
            old,
            Augment {
                crop_padding: 4,
                horizontal_flip: true,
                ..Augment::default()
            }
        );
    }

    #[test]
    fn fill_is_timms_rounded_mean() {
        // timm's img_mean for the ImageNet mean.
        assert_eq!(fill_from_mean(&[0.485, 0.456, 0.406]), [124, 116, 104]);
        assert_eq!(fill_from_mean(&[0.1307]), [33; 3]);
        let grey = Augment::default().fill_for(1);
        assert_eq!(grey, vec![128]);
    }
}
