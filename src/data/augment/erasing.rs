//! Random erasing as timm's `RandomErasing`, on one normalized f32 image `[C, H, W]`
//! (it runs after normalization, so its fills are in normalized units).

use std::str::FromStr;

use super::crop::uniform;
use crate::error::{Error, Result};
use crate::rng::Rng;

/// What an erased box is filled with (timm's `mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EraseMode {
    /// Zero: the dataset mean after normalization.
    #[default]
    Const,
    /// One standard normal value per channel.
    Rand,
    /// A standard normal value per pixel and channel.
    Pixel,
}

impl FromStr for EraseMode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "const" => Ok(EraseMode::Const),
            "rand" => Ok(EraseMode::Rand),
            "pixel" => Ok(EraseMode::Pixel),
            _ => Err(Error::InvalidArgument(format!(
                "random erasing mode '{s}': expected const, rand or pixel"
            ))),
        }
    }
}

/// timm `RandomErasing(probability, min_area, max_area, min_aspect, max_aspect, mode,
/// min_count, max_count)`. timm's `num_splits` (leave the first part of a batch clean,
/// for AugMix-style split batches) is a batch-level option with no meaning per image and
/// is not offered.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct RandomErasing {
    /// Chance that an image gets erased at all.
    pub probability: f32,
    pub mode: EraseMode,
    /// Bounds of the erased fraction of the image (split over the boxes).
    pub min_area: f32,
    pub max_area: f32,
    /// Bounds of a box's height over width; `None` is `1 / min_aspect`.
    pub min_aspect: f32,
    pub max_aspect: Option<f32>,
    /// Boxes per image, drawn uniformly in `[min_count, max_count]`; `None` is
    /// `min_count`.
    pub min_count: usize,
    pub max_count: Option<usize>,
}

impl Default for RandomErasing {
    /// timm's defaults, with the probability 0.5 of its constructor.
    fn default() -> Self {
        Self {
            probability: 0.5,
            mode: EraseMode::Const,
            min_area: 0.02,
            max_area: 1.0 / 3.0,
            min_aspect: 0.3,
            max_aspect: None,
            min_count: 1,
            max_count: None,
        }
    }
}

impl RandomErasing {
    pub fn check(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::InvalidArgument(format!("random erasing: {msg}")));
        if !(0.0..=1.0).contains(&self.probability) {
            return bad(format!("probability {} is not in [0, 1]", self.probability));
        }
        if !(self.min_area > 0.0 && self.min_area <= self.max_area && self.max_area <= 1.0) {
            return bad(format!(
                "area ({}, {}) must satisfy 0 < min <= max <= 1",
                self.min_area, self.max_area
            ));
        }
        let (a0, a1) = self.aspect_range();
        if !(a0 > 0.0 && a0 <= a1 && a1.is_finite()) {
            return bad(format!(
                "aspect ({a0}, {a1}) must satisfy 0 < min <= max"
            ));
        }
        if self.min_count == 0 || self.max_count.is_some_and(|m| m < self.min_count) {
            return bad(format!(
                "count ({}, {:?}) must satisfy 1 <= min <= max",
                self.min_count, self.max_count
            ));
        }
        Ok(())
    }

    fn aspect_range(&self) -> (f32, f32) {
        (
            self.min_aspect,
            self.max_aspect.unwrap_or(1.0 / self.min_aspect),
        )
    }

    /// timm `RandomErasing._erase` on one image `x` of `[channels, height, width]`:
    /// per box, ten tries at a random area and log-uniform aspect; the first box that
    /// fits strictly inside the image is filled.
    pub fn apply(&self, x: &mut [f32], channels: usize, height: usize, width: usize, rng: &mut Rng) {
        assert_eq!(x.len(), channels * height * width, "erasing an image of the wrong size");
        if rng.uniform() as f64 > self.probability as f64 {
            return;
        }
        let area = (height * width) as f64;
        let max_count = self.max_count.unwrap_or(self.min_count);
        let count = if max_count == self.min_count {
            self.min_count
        } else {
            self.min_count + rng.below(max_count - self.min_count + 1)
        };
        let (a0, a1) = self.aspect_range();
        let log_aspect = ((a0 as f64).ln(), (a1 as f64).ln());
        for _ in 0..count {
            for _ in 0..10 {
                let target = uniform(rng, self.min_area as f64, self.max_area as f64) * area
                    / count as f64;
                let aspect = uniform(rng, log_aspect.0, log_aspect.1).exp();
                let h = (target * aspect).sqrt().round_ties_even() as usize;
                let w = (target / aspect).sqrt().round_ties_even() as usize;
                if w < width && h < height {
                    let top = rng.below(height - h + 1);
                    let left = rng.below(width - w + 1);
                    self.fill(x, channels, (height, width), (top, left, h, w), rng);
                    break;
                }
            }
        }
    }

    /// Fill the box (top, left, h, w) of every channel, drawing values channel by
    /// channel, row by row, as torch's `normal_` fills a `(C, h, w)` tensor.
    fn fill(
        &self,
        x: &mut [f32],
        channels: usize,
        (height, width): (usize, usize),
        (top, left, h, w): (usize, usize, usize, usize),
        rng: &mut Rng,
    ) {
        for c in 0..channels {
            let channel_value = match self.mode {
                EraseMode::Const => Some(0.0),
                EraseMode::Rand => Some(rng.normal()),
                EraseMode::Pixel => None,
            };
            let plane = &mut x[c * height * width..(c + 1) * height * width];
            for y in top..top + h {
                for v in &mut plane[y * width + left..y * width + left + w] {
                    *v = channel_value.unwrap_or_else(|| rng.normal());
                }
            }
        }
    }
}

/// Parses `PROB[,MODE[,MAX_COUNT]]`, e.g. `0.25`, `0.25,pixel` or `0.25,pixel,3` (timm's
/// `--reprob`, `--remode`, `--recount`); the rest keeps timm's defaults.
impl FromStr for RandomErasing {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        if parts.len() > 3 {
            return Err(Error::InvalidArgument(format!(
                "random erasing '{s}': expected PROB[,MODE[,MAX_COUNT]]"
            )));
        }
        let probability = parts[0].parse::<f32>().map_err(|_| {
            Error::InvalidArgument(format!("random erasing '{s}': '{}' is not a probability", parts[0]))
        })?;
        let mode = parts.get(1).map_or(Ok(EraseMode::Const), |m| m.parse())?;
        let max_count = match parts.get(2) {
            Some(n) => Some(n.parse::<usize>().map_err(|_| {
                Error::InvalidArgument(format!("random erasing '{s}': '{n}' is not a count"))
            })?),
            None => None,
        };
        let erasing = RandomErasing {
            probability,
            mode,
            max_count,
            ..Default::default()
        };
        erasing.check()?;
        Ok(erasing)
    }
}
