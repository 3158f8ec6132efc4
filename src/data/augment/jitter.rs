//! Colour jitter as torchvision `ColorJitter(brightness, contrast, saturation, hue)` on
//! PIL images: the four adjustments in a random order, each factor drawn uniformly.

use std::str::FromStr;

use super::color;
use super::{parse_floats, uniform};
use crate::data::Planar;
use crate::error::{Error, Result};
use crate::rng::Rng;

/// The strengths: brightness, contrast and saturation factors are drawn from
/// `[max(0, 1 - v), 1 + v]`, the hue shift from `[-hue, hue]` (at most 0.5); 0 turns
/// an adjustment off.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ColorJitter {
    /// Brightness factor range: 1 +- this.
    pub brightness: f32,
    /// Contrast factor range: 1 +- this.
    pub contrast: f32,
    /// Saturation factor range: 1 +- this.
    pub saturation: f32,
    /// Hue shift range: +- this, in turns (at most 0.5).
    pub hue: f32,
}

impl ColorJitter {
    /// An error unless every factor is in its range.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn jitter(s: &str) -> ColorJitter {
        s.parse().unwrap()
    }

    #[test]
    fn parses_timms_forms() {
        assert_eq!(jitter("0.4"), jitter("0.4,0.4,0.4,0"));
        assert_eq!(jitter("0.1,0.2,0.3").hue, 0.0);
        assert_eq!(jitter("0.1,0.2,0.3,0.05").hue, 0.05);
        let err = "0.1,zz".parse::<ColorJitter>().unwrap_err().to_string();
        assert!(err.contains("'zz'"), "{err}");
        assert!("0.1,0.2".parse::<ColorJitter>().is_err());
        assert!("0,0,0,0.6".parse::<ColorJitter>().is_err());
        assert!("-0.1".parse::<ColorJitter>().is_err());
    }

    #[test]
    fn factors_stay_in_range() {
        // A flat grey image: brightness scales it by [0.6, 1.4], contrast leaves a flat
        // image flat, saturation and hue leave grey alone.
        let mut rng = Rng::new(2);
        let cj = jitter("0.4,0.4,0.4,0.5");
        let mut seen = (255u8, 0u8);
        for _ in 0..300 {
            let mut img = Planar::from_vec(vec![100; 3 * 4 * 5], 3, 4, 5);
            cj.apply(&mut img, &mut rng);
            let v = img.data[0];
            assert!(img.data.iter().all(|&x| x == v), "flat stays flat");
            assert!((59..=140).contains(&v), "{v}");
            seen = (seen.0.min(v), seen.1.max(v));
        }
        assert!(seen.0 < 70 && seen.1 > 130, "{seen:?}");
    }

    #[test]
    fn off_is_identity_and_draws_are_seeded() {
        let img = Planar::from_vec(
            (0..3 * 7 * 5).map(|i| (i * 7 % 256) as u8).collect(),
            3,
            7,
            5,
        );
        let mut out = img.clone();
        ColorJitter::default().apply(&mut out, &mut Rng::new(0));
        assert_eq!(out, img);
        let cj = jitter("0.4,0.4,0.4,0.1");
        let run = |seed| {
            let mut out = img.clone();
            cj.apply(&mut out, &mut Rng::new(seed));
            out
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
        // Grey images take brightness and contrast only.
        let grey = Planar::from_vec(vec![50, 200, 120, 90], 1, 2, 2);
        let mut out = grey.clone();
        jitter("0,0,0.9,0.5").apply(&mut out, &mut Rng::new(1));
        assert_eq!(out, grey);
    }
}
