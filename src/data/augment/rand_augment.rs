//! RandAugment as timm's `rand_augment_transform(config_str, hparams)`: the policy
//! string, the op lists `_RAND_TRANSFORMS` / `_RAND_INCREASING_TRANSFORMS`, the
//! magnitude-to-argument maps `LEVEL_TO_ARG`, and `AugmentOp` / `RandAugment.__call__`.

use std::fmt;
use std::str::FromStr;

use super::color;
use super::geometry::{affine_bilinear, rotation, Affine};
use crate::data::Planar;
use crate::error::{Error, Result};
use crate::rng::Rng;

/// timm's `_LEVEL_DENOM`: magnitude 10 is an op's full strength.
const LEVEL_DENOM: f64 = 10.0;
/// timm's `translate_pct` hparam default: translations up to 45% of the side.
const TRANSLATE_PCT: f64 = 0.45;

/// A parsed RandAugment policy; it keeps the string it came from, which is how it
/// prints and serializes.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RandAugment {
    policy: String,
    /// `m`: the magnitude, 0..10 (default 10).
    pub magnitude: u32,
    /// `n`: ops applied per image, drawn with replacement (default 2).
    pub num_ops: usize,
    /// `p`: probability that each drawn op is applied (default 0.5).
    pub prob: f64,
    /// `mstd`: standard deviation of gaussian noise on the magnitude; infinite (from any
    /// value over 100) draws the magnitude uniformly in [0, m].
    pub magnitude_std: f64,
    /// `mmax`: the upper clamp of the noisy magnitude (default 10; 0 also means 10, as
    /// timm's `magnitude_max or _LEVEL_DENOM`).
    pub magnitude_max: Option<u32>,
    /// `inc1`: use the ops whose severity increases with the magnitude.
    pub increasing: bool,
}

impl RandAugment {
    /// The ops this policy draws from.
    pub fn ops(&self) -> &'static [Op] {
        if self.increasing {
            &Op::INCREASING
        } else {
            &Op::STANDARD
        }
    }

    /// timm `RandAugment.__call__`: `n` ops drawn with replacement, each applied with
    /// probability `p` at a (noisy) magnitude. `fill` is the colour uncovered by the
    /// geometric ops (timm's `img_mean` hparam), one value per channel.
    pub fn apply(&self, img: &mut Planar, fill: &[u8], rng: &mut Rng) {
        let ops = self.ops();
        let picks: Vec<Op> = (0..self.num_ops)
            .map(|_| ops[rng.below(ops.len())])
            .collect();
        for op in picks {
            if self.prob < 1.0 && (rng.uniform() as f64) > self.prob {
                continue;
            }
            let magnitude = self.sample_magnitude(rng);
            let arg = op.level_to_arg(magnitude, rng);
            op.apply(img, arg, fill);
        }
    }

    /// timm `AugmentOp.__call__`'s magnitude: noise, then the clamp to [0, mmax].
    fn sample_magnitude(&self, rng: &mut Rng) -> f64 {
        let m = self.magnitude as f64;
        let noisy = if self.magnitude_std == f64::INFINITY {
            m * rng.uniform() as f64
        } else if self.magnitude_std > 0.0 {
            m + self.magnitude_std * rng.normal() as f64
        } else {
            m
        };
        let upper = match self.magnitude_max {
            Some(mmax) if mmax > 0 => mmax as f64,
            _ => LEVEL_DENOM,
        };
        noisy.min(upper).max(0.0)
    }
}

impl FromStr for RandAugment {
    type Err = Error;

    /// timm's grammar: `rand` then `-`-separated `KEYVALUE` sections in any order, the
    /// key being the letters before the first digit: `m` (int), `n` (int), `p` (float),
    /// `mstd` (float), `mmax` (int), `inc` (0/1). Deviations: timm skips a section
    /// without a digit and asserts on an unknown key; both are errors here. The `t`
    /// (transform set: `weights`, `3a`, `3aw`) and the old `w` sections are refused.
    fn from_str(policy: &str) -> Result<Self> {
        let bad = |msg: String| Error::InvalidArgument(format!("RandAugment '{policy}': {msg}"));
        let mut sections = policy.split('-');
        if sections.next() != Some("rand") {
            return Err(bad("a RandAugment policy starts with 'rand'".into()));
        }
        let mut ra = RandAugment {
            policy: policy.to_string(),
            magnitude: LEVEL_DENOM as u32,
            num_ops: 2,
            prob: 0.5,
            magnitude_std: 0.0,
            magnitude_max: None,
            increasing: false,
        };
        for section in sections {
            if section.starts_with('t') || section.starts_with('w') {
                return Err(bad(format!(
                    "'{section}': weighted or named transform sets are not supported; \
                     only the standard and the increasing (inc1) op lists are"
                )));
            }
            let split = section.find(|c: char| c.is_ascii_digit());
            let (key, value) = section.split_at(split.ok_or_else(|| {
                bad(format!("'{section}' has no value (expected e.g. m9, n2, mstd0.5)"))
            })?);
            let int = || {
                value
                    .parse::<u32>()
                    .map_err(|_| bad(format!("'{section}': '{value}' is not an integer")))
            };
            let float = || {
                value
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| bad(format!("'{section}': '{value}' is not a number")))
            };
            match key {
                "m" => ra.magnitude = int()?,
                "n" => ra.num_ops = int()? as usize,
                "p" => ra.prob = float()?,
                "mstd" => {
                    let std = float()?;
                    ra.magnitude_std = if std > 100.0 { f64::INFINITY } else { std };
                }
                "mmax" => ra.magnitude_max = Some(int()?),
                "inc" => ra.increasing = int()? != 0,
                _ => {
                    return Err(bad(format!(
                        "unknown section '{section}' (known keys: m, n, p, mstd, mmax, inc)"
                    )))
                }
            }
        }
        if !(0.0..=1.0).contains(&ra.prob) {
            return Err(bad(format!("p = {} is not a probability", ra.prob)));
        }
        Ok(ra)
    }
}

impl fmt::Display for RandAugment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.policy)
    }
}

impl TryFrom<String> for RandAugment {
    type Error = Error;

    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<RandAugment> for String {
    fn from(ra: RandAugment) -> String {
        ra.policy
    }
}

/// One RandAugment op, named as in timm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    AutoContrast,
    Equalize,
    Invert,
    Rotate,
    Posterize,
    PosterizeIncreasing,
    Solarize,
    SolarizeIncreasing,
    SolarizeAdd,
    Color,
    ColorIncreasing,
    Contrast,
    ContrastIncreasing,
    Brightness,
    BrightnessIncreasing,
    Sharpness,
    SharpnessIncreasing,
    ShearX,
    ShearY,
    TranslateXRel,
    TranslateYRel,
}

impl Op {
    /// timm `_RAND_TRANSFORMS`.
    pub const STANDARD: [Op; 15] = [
        Op::AutoContrast,
        Op::Equalize,
        Op::Invert,
        Op::Rotate,
        Op::Posterize,
        Op::Solarize,
        Op::SolarizeAdd,
        Op::Color,
        Op::Contrast,
        Op::Brightness,
        Op::Sharpness,
        Op::ShearX,
        Op::ShearY,
        Op::TranslateXRel,
        Op::TranslateYRel,
    ];

    /// timm `_RAND_INCREASING_TRANSFORMS`.
    pub const INCREASING: [Op; 15] = [
        Op::AutoContrast,
        Op::Equalize,
        Op::Invert,
        Op::Rotate,
        Op::PosterizeIncreasing,
        Op::SolarizeIncreasing,
        Op::SolarizeAdd,
        Op::ColorIncreasing,
        Op::ContrastIncreasing,
        Op::BrightnessIncreasing,
        Op::SharpnessIncreasing,
        Op::ShearX,
        Op::ShearY,
        Op::TranslateXRel,
        Op::TranslateYRel,
    ];

    /// timm's `LEVEL_TO_ARG[name](magnitude, hparams)`; the signed ones are negated
    /// with probability 1/2 (`_randomly_negate`). `None` for the ops without argument.
    pub fn level_to_arg(self, magnitude: f64, rng: &mut Rng) -> Option<f64> {
        let level = magnitude / LEVEL_DENOM;
        let mut negate = |v: f64| if rng.uniform() > 0.5 { -v } else { v };
        let posterize = (level * 4.0).trunc();
        let solarize = (level * 256.0).trunc().min(256.0);
        let arg = match self {
            Op::AutoContrast | Op::Equalize | Op::Invert => return None,
            Op::Rotate => negate(level * 30.0),
            Op::Posterize => posterize,
            Op::PosterizeIncreasing => 4.0 - posterize,
            Op::Solarize => solarize,
            Op::SolarizeIncreasing => 256.0 - solarize,
            Op::SolarizeAdd => (level * 110.0).trunc().min(128.0),
            Op::Color | Op::Contrast | Op::Brightness | Op::Sharpness => level * 1.8 + 0.1,
            Op::ColorIncreasing
            | Op::ContrastIncreasing
            | Op::BrightnessIncreasing
            | Op::SharpnessIncreasing => (1.0 + negate(level * 0.9)).max(0.1),
            Op::ShearX | Op::ShearY => negate(level * 0.3),
            Op::TranslateXRel | Op::TranslateYRel => negate(level * TRANSLATE_PCT),
        };
        Some(arg)
    }

    /// Apply the op with its argument (timm's op functions in `auto_augment.py`).
    pub fn apply(self, img: &mut Planar, arg: Option<f64>, fill: &[u8]) {
        let a = arg.unwrap_or(0.0);
        let affine = |img: &mut Planar, m: Affine| *img = affine_bilinear(img, &m, fill);
        match self {
            Op::AutoContrast => color::autocontrast(img),
            Op::Equalize => color::equalize(img),
            Op::Invert => color::invert(img),
            Op::Rotate => {
                let m = rotation(a, img.height, img.width);
                affine(img, m)
            }
            Op::Posterize | Op::PosterizeIncreasing => color::posterize(img, a as u32),
            Op::Solarize | Op::SolarizeIncreasing => color::solarize(img, a as u32),
            Op::SolarizeAdd => color::solarize_add(img, a as u32, 128),
            Op::Color | Op::ColorIncreasing => color::enhance_color(img, a),
            Op::Contrast | Op::ContrastIncreasing => color::enhance_contrast(img, a),
            Op::Brightness | Op::BrightnessIncreasing => color::enhance_brightness(img, a),
            Op::Sharpness | Op::SharpnessIncreasing => color::enhance_sharpness(img, a),
            Op::ShearX => affine(img, [1.0, a, 0.0, 0.0, 1.0, 0.0]),
            Op::ShearY => affine(img, [1.0, 0.0, 0.0, a, 1.0, 0.0]),
            Op::TranslateXRel => {
                let m = [1.0, 0.0, a * img.width as f64, 0.0, 1.0, 0.0];
                affine(img, m)
            }
            Op::TranslateYRel => {
                let m = [1.0, 0.0, 0.0, 0.0, 1.0, a * img.height as f64];
                affine(img, m)
            }
        }
    }

    /// timm's name of the op.
    pub fn name(self) -> &'static str {
        match self {
            Op::AutoContrast => "AutoContrast",
            Op::Equalize => "Equalize",
            Op::Invert => "Invert",
            Op::Rotate => "Rotate",
            Op::Posterize => "Posterize",
            Op::PosterizeIncreasing => "PosterizeIncreasing",
            Op::Solarize => "Solarize",
            Op::SolarizeIncreasing => "SolarizeIncreasing",
            Op::SolarizeAdd => "SolarizeAdd",
            Op::Color => "Color",
            Op::ColorIncreasing => "ColorIncreasing",
            Op::Contrast => "Contrast",
            Op::ContrastIncreasing => "ContrastIncreasing",
            Op::Brightness => "Brightness",
            Op::BrightnessIncreasing => "BrightnessIncreasing",
            Op::Sharpness => "Sharpness",
            Op::SharpnessIncreasing => "SharpnessIncreasing",
            Op::ShearX => "ShearX",
            Op::ShearY => "ShearY",
            Op::TranslateXRel => "TranslateXRel",
            Op::TranslateYRel => "TranslateYRel",
        }
    }
}
