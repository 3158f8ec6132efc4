//! Random erasing as timm's `RandomErasing`, on one normalized f32 image `[C, H, W]`
//! (it runs after normalization, so its fills are in normalized units).

use std::str::FromStr;

use super::uniform;
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
    /// What fills an erased box.
    pub mode: EraseMode,
    /// Bounds of the erased fraction of the image (split over the boxes).
    pub min_area: f32,
    /// The largest box, as a fraction of the image's area.
    pub max_area: f32,
    /// Bounds of a box's height over width; `None` is `1 / min_aspect`.
    pub min_aspect: f32,
    /// The largest aspect ratio (None: the reciprocal of the smallest).
    pub max_aspect: Option<f32>,
    /// Boxes per image, drawn uniformly in `[min_count, max_count]`; `None` is
    /// `min_count`.
    pub min_count: usize,
    /// The most boxes per image (None: one).
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
    /// An error unless every setting is in its range.
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
            return bad(format!("aspect ({a0}, {a1}) must satisfy 0 < min <= max"));
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
    pub fn apply(
        &self,
        x: &mut [f32],
        channels: usize,
        height: usize,
        width: usize,
        rng: &mut Rng,
    ) {
        assert_eq!(
            x.len(),
            channels * height * width,
            "erasing an image of the wrong size"
        );
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
                let target =
                    uniform(rng, self.min_area as f64, self.max_area as f64) * area / count as f64;
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
            Error::InvalidArgument(format!(
                "random erasing '{s}': '{}' is not a probability",
                parts[0]
            ))
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

#[cfg(test)]
mod tests {
    use super::*;

    const MARK: f32 = 7.0;

    fn erase(re: &RandomErasing, c: usize, h: usize, w: usize, seed: u64) -> Vec<f32> {
        let mut x = vec![MARK; c * h * w];
        re.apply(&mut x, c, h, w, &mut Rng::new(seed));
        x
    }

    /// The bounding box of the changed values of plane 0.
    fn erased_box(x: &[f32], h: usize, w: usize) -> Option<(usize, usize, usize, usize)> {
        let changed: Vec<(usize, usize)> = (0..h * w)
            .filter(|&i| x[i] != MARK)
            .map(|i| (i / w, i % w))
            .collect();
        let (y0, y1) = (
            changed.iter().map(|p| p.0).min()?,
            changed.iter().map(|p| p.0).max()?,
        );
        let (x0, x1) = (
            changed.iter().map(|p| p.1).min()?,
            changed.iter().map(|p| p.1).max()?,
        );
        assert_eq!(
            changed.len(),
            (y1 - y0 + 1) * (x1 - x0 + 1),
            "one solid box"
        );
        Some((y0, x0, y1 - y0 + 1, x1 - x0 + 1))
    }

    #[test]
    fn probability_zero_and_one() {
        let never = RandomErasing {
            probability: 0.0,
            ..Default::default()
        };
        let always = RandomErasing {
            probability: 1.0,
            ..Default::default()
        };
        for seed in 0..50 {
            assert!(erase(&never, 3, 24, 31, seed).iter().all(|&v| v == MARK));
            assert!(erase(&always, 3, 24, 31, seed).iter().any(|&v| v != MARK));
        }
    }

    #[test]
    fn boxes_keep_area_and_aspect_bounds() {
        let re = RandomErasing {
            probability: 1.0,
            ..Default::default()
        };
        let (h, w) = (40, 50);
        for seed in 0..300 {
            let x = erase(&re, 2, h, w, seed);
            let (_, _, bh, bw) = erased_box(&x, h, w).unwrap();
            let (bh, bw) = (bh as f64, bw as f64);
            let area = (h * w) as f64;
            // Rounded sides: the bounds hold up to half a pixel a side.
            assert!((bh + 0.5) * (bw + 0.5) >= 0.02 * area);
            assert!((bh - 0.5) * (bw - 0.5) <= area / 3.0);
            assert!((bh + 0.5) / (bw - 0.5) >= 0.3 && (bh - 0.5) / (bw + 0.5) <= 1.0 / 0.3);
            // Const mode erases every channel to 0, the same box.
            assert!(x.iter().all(|&v| v == MARK || v == 0.0));
            assert_eq!(x[..h * w], x[h * w..]);
        }
    }

    #[test]
    fn fill_modes() {
        let (h, w) = (20, 20);
        let base = RandomErasing {
            probability: 1.0,
            ..Default::default()
        };
        let rand = RandomErasing {
            mode: EraseMode::Rand,
            ..base
        };
        let x = erase(&rand, 3, h, w, 5);
        for c in 0..3 {
            let erased: Vec<f32> = x[c * h * w..(c + 1) * h * w]
                .iter()
                .copied()
                .filter(|&v| v != MARK)
                .collect();
            assert!(
                erased.windows(2).all(|p| p[0] == p[1]),
                "one value per channel"
            );
        }
        let pixel = RandomErasing {
            mode: EraseMode::Pixel,
            ..base
        };
        let x = erase(&pixel, 3, h, w, 5);
        let erased: Vec<f32> = x.iter().copied().filter(|&v| v != MARK).collect();
        assert!(erased.len() > 3 && erased.windows(2).any(|p| p[0] != p[1]));
        // A fixed box in const mode is zero exactly there (timm `img[:, t:t+h, l:l+w] = 0`).
        let mut x = vec![MARK; 2 * 4 * 5];
        base.fill(&mut x, 2, (4, 5), (1, 2, 2, 3), &mut Rng::new(0));
        let plane: Vec<f32> = [
            [7., 7., 7., 7., 7.],
            [7., 7., 0., 0., 0.],
            [7., 7., 0., 0., 0.],
            [7., 7., 7., 7., 7.],
        ]
        .concat();
        assert_eq!(x, [plane.clone(), plane].concat());
    }

    #[test]
    fn counts_split_the_area_and_seeds_repeat() {
        let re = RandomErasing {
            probability: 1.0,
            min_count: 2,
            max_count: Some(4),
            ..Default::default()
        };
        assert_eq!(erase(&re, 1, 30, 30, 8), erase(&re, 1, 30, 30, 8));
        for seed in 0..100 {
            let erased = erase(&re, 1, 30, 30, seed)
                .iter()
                .filter(|&&v| v == 0.0)
                .count();
            assert!(erased as f64 <= 900.0 / 3.0 + 4.0 * 31.0, "{erased}");
        }
    }

    #[test]
    fn parses_and_checks() {
        let re: RandomErasing = "0.25,pixel,3".parse().unwrap();
        assert_eq!(
            (re.probability, re.mode, re.max_count),
            (0.25, EraseMode::Pixel, Some(3))
        );
        assert_eq!(
            "0.25".parse::<RandomErasing>().unwrap().mode,
            EraseMode::Const
        );
        let err = "0.25,noise"
            .parse::<RandomErasing>()
            .unwrap_err()
            .to_string();
        assert!(err.contains("'noise'"), "{err}");
        assert!("1.5".parse::<RandomErasing>().is_err());
        assert!("0.5,const,0".parse::<RandomErasing>().is_err());
        let bad_area = RandomErasing {
            min_area: 0.5,
            max_area: 0.1,
            ..Default::default()
        };
        assert!(bad_area.check().is_err());
    }
}
