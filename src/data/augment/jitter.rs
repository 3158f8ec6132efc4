//! Colour jitter as torchvision `ColorJitter(brightness, contrast, saturation, hue)` on
//! PIL images: the four adjustments in a random order, each factor drawn uniformly.

use std::str::FromStr;

use super::color;
use super::crop::{parse_floats, uniform};
use crate::data::Planar;
use crate::error::{Error, Result};
use crate::rng::Rng;

/// The strengths: brightness, contrast and saturation factors are drawn from
/// `[max(0, 1 - v), 1 + v]`, the hue shift from `[-hue, hue]` (at most 0.5); 0 turns
/// an adjustment off.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ColorJitter {
    pub brightness: f32,
    pub contrast: f32,
    pub saturation: f32,
    pub hue: f32,
}

impl ColorJitter {
    pub fn check(&self) -> Result<()> {
        for (name, v) in [
            ("brightness", self.brightness),
            ("contrast", self.contrast),
            ("saturation", self.saturation),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(Error::InvalidArgument(format!(
                    "colour jitter {name} = {v} must be a finite number >= 0"
                )));
            }
        }
        if !(0.0..=0.5).contains(&self.hue) {
            return Err(Error::InvalidArgument(format!(
                "colour jitter hue = {} must be in [0, 0.5]",
                self.hue
            )));
        }
        Ok(())
    }

    /// torchvision `ColorJitter.forward`: a random order (`randperm(4)`), then the
    /// factors, then the adjustments (`adjust_brightness` / `_contrast` / `_saturation`
    /// are PIL's ImageEnhance, `adjust_hue` the HSV shift).
    pub fn apply(&self, img: &mut Planar, rng: &mut Rng) {
        let mut order = [0usize, 1, 2, 3];
        rng.shuffle(&mut order);
        let factor = |rng: &mut Rng, v: f32| {
            (v > 0.0).then(|| uniform(rng, (1.0 - v as f64).max(0.0), 1.0 + v as f64))
        };
        let brightness = factor(rng, self.brightness);
        let contrast = factor(rng, self.contrast);
        let saturation = factor(rng, self.saturation);
        let hue = (self.hue > 0.0).then(|| uniform(rng, -self.hue as f64, self.hue as f64));
        for step in order {
            match (step, brightness, contrast, saturation, hue) {
                (0, Some(f), ..) => color::enhance_brightness(img, f),
                (1, _, Some(f), ..) => color::enhance_contrast(img, f),
                (2, _, _, Some(f), _) => color::enhance_color(img, f),
                (3, .., Some(h)) => color::adjust_hue(img, h),
                _ => {}
            }
        }
    }
}

/// Parses timm's `--color-jitter` forms: one number for brightness, contrast and
/// saturation alike (no hue), or three or four comma-separated numbers.
impl FromStr for ColorJitter {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let v = parse_floats(s, "colour jitter")?;
        let (b, c, sat, hue) = match v[..] {
            [x] => (x, x, x, 0.0),
            [b, c, sat] => (b, c, sat, 0.0),
            [b, c, sat, hue] => (b, c, sat, hue),
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "colour jitter '{s}': expected 1, 3 or 4 numbers \
                     (brightness, contrast, saturation[, hue])"
                )))
            }
        };
        let jitter = ColorJitter {
            brightness: b,
            contrast: c,
            saturation: sat,
            hue,
        };
        jitter.check()?;
        Ok(jitter)
    }
}
