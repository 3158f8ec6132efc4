//! The geometric first stage: random-resized crop (ImageNet style) or a zero-padded
//! random crop (CIFAR style), and the horizontal flip.

use std::str::FromStr;

use super::geometry::resize_bilinear;
use super::{parse_floats, uniform};
use crate::data::Planar;
use crate::error::{Error, Result};
use crate::rng::Rng;

/// timm `RandomResizedCropAndInterpolation`: a crop of random area (a fraction `scale`
/// of the image) and aspect ratio (`ratio`, width over height, drawn log-uniformly),
/// resized to the output size.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ResizedCrop {
    /// The range of the crop's area, as fractions of the image's.
    pub scale: (f32, f32),
    /// The range of the crop's aspect ratio (width / height).
    pub ratio: (f32, f32),
}

impl Default for ResizedCrop {
    /// timm's ImageNet defaults: scale (0.08, 1), ratio (3/4, 4/3).
    fn default() -> Self {
        Self {
            scale: (0.08, 1.0),
            ratio: (3.0 / 4.0, 4.0 / 3.0),
        }
    }
}

/// A crop box: top row, left column, height, width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropBox {
    /// First row of the crop.
    pub top: usize,
    /// First column of the crop.
    pub left: usize,
    /// Rows of the crop.
    pub height: usize,
    /// Columns of the crop.
    pub width: usize,
}

impl ResizedCrop {
    /// An error unless the ranges are ordered, positive and finite.
    pub fn check(&self) -> Result<()> {
        let (s0, s1) = self.scale;
        let (r0, r1) = self.ratio;
        if !(s0 > 0.0 && s0 <= s1 && s1 <= 1.0) {
            return Err(Error::InvalidArgument(format!(
                "random-resized-crop scale ({s0}, {s1}) must satisfy 0 < min <= max <= 1"
            )));
        }
        if !(r0 > 0.0 && r0 <= r1 && r1.is_finite()) {
            return Err(Error::InvalidArgument(format!(
                "random-resized-crop ratio ({r0}, {r1}) must satisfy 0 < min <= max"
            )));
        }
        Ok(())
    }

    /// timm `RandomResizedCropAndInterpolation.get_params`: ten tries at a random box
    /// inside the image, then the centre crop with the aspect ratio clamped into range.
    /// Deviation: a try whose side rounds to 0 pixels also fails (timm would pass an
    /// empty crop to PIL, which rejects it; only images of a few pixels get there).
    pub fn params(&self, height: usize, width: usize, rng: &mut Rng) -> CropBox {
        let area = (height * width) as f64;
        let (s0, s1) = (self.scale.0 as f64, self.scale.1 as f64);
        let log_ratio = ((self.ratio.0 as f64).ln(), (self.ratio.1 as f64).ln());
        for _ in 0..10 {
            let target_area = uniform(rng, s0, s1) * area;
            let aspect = uniform(rng, log_ratio.0, log_ratio.1).exp();
            let w = (target_area * aspect).sqrt().round_ties_even() as usize;
            let h = (target_area / aspect).sqrt().round_ties_even() as usize;
            if (1..=width).contains(&w) && (1..=height).contains(&h) {
                let top = rng.below(height - h + 1);
                let left = rng.below(width - w + 1);
                return CropBox {
                    top,
                    left,
                    height: h,
                    width: w,
                };
            }
        }
        self.fallback(height, width)
    }

    /// The centre crop timm falls back to.
    pub fn fallback(&self, height: usize, width: usize) -> CropBox {
        let in_ratio = width as f64 / height as f64;
        let (r0, r1) = (self.ratio.0 as f64, self.ratio.1 as f64);
        let (h, w) = if in_ratio < r0 {
            ((width as f64 / r0).round_ties_even() as usize, width)
        } else if in_ratio > r1 {
            (height, (height as f64 * r1).round_ties_even() as usize)
        } else {
            (height, width)
        };
        // At least a pixel (a steep ratio range can round a side to 0), at most the image.
        let (h, w) = (h.max(1).min(height), w.max(1).min(width));
        CropBox {
            top: (height - h) / 2,
            left: (width - w) / 2,
            height: h,
            width: w,
        }
    }

    /// Crop `img` at random and resize the crop to `out_h` x `out_w` (bilinear).
    pub fn apply(&self, img: &Planar, out_h: usize, out_w: usize, rng: &mut Rng) -> Planar {
        let b = self.params(img.height, img.width, rng);
        resize_bilinear(&crop(img, b), out_h, out_w)
    }
}

/// Parses `MIN,MAX` (the scale, default ratio) or `MIN,MAX,RATIO_MIN,RATIO_MAX`.
impl FromStr for ResizedCrop {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let v = parse_floats(s, "random-resized-crop")?;
        let rrc = match v[..] {
            [s0, s1] => ResizedCrop {
                scale: (s0, s1),
                ..Default::default()
            },
            [s0, s1, r0, r1] => ResizedCrop {
                scale: (s0, s1),
                ratio: (r0, r1),
            },
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "random-resized-crop '{s}': expected SCALE_MIN,SCALE_MAX or \
                     SCALE_MIN,SCALE_MAX,RATIO_MIN,RATIO_MAX"
                )))
            }
        };
        rrc.check()?;
        Ok(rrc)
    }
}

/// The box `b` of `img`.
pub fn crop(img: &Planar, b: CropBox) -> Planar {
    let mut out = Planar::zeros(img.channels, b.height, b.width);
    for c in 0..img.channels {
        let (src, dst) = (img.plane(c), out.plane_mut(c));
        for y in 0..b.height {
            let from = (b.top + y) * img.width + b.left;
            dst[y * b.width..(y + 1) * b.width].copy_from_slice(&src[from..from + b.width]);
        }
    }
    out
}

/// Pad by `padding` zero pixels on every side, then crop back to the image's size at a
/// random offset (torchvision `RandomCrop(size, padding)`).
pub fn pad_crop(img: Planar, padding: usize, rng: &mut Rng) -> Planar {
    if padding == 0 {
        return img;
    }
    let p = padding as isize;
    let dy = rng.below(2 * padding + 1) as isize - p;
    let dx = rng.below(2 * padding + 1) as isize - p;
    let (h, w) = (img.height as isize, img.width as isize);
    let mut out = Planar::zeros(img.channels, img.height, img.width);
    for c in 0..img.channels {
        let (src, dst) = (img.plane(c), out.plane_mut(c));
        for y in 0..h {
            for x in 0..w {
                let (sy, sx) = (y + dy, x + dx);
                if (0..h).contains(&sy) && (0..w).contains(&sx) {
                    dst[(y * w + x) as usize] = src[(sy * w + sx) as usize];
                }
            }
        }
    }
    out
}

/// Mirror left-right in place.
pub fn hflip(img: &mut Planar) {
    let w = img.width;
    for row in img.data.chunks_mut(w.max(1)) {
        row.reverse();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::augment::fixture::check_op;

    #[test]
    fn random_boxes_stay_within_scale_and_ratio() {
        let rrc = ResizedCrop::default();
        let (h, w) = (37, 53);
        let mut rng = Rng::new(9);
        for _ in 0..2000 {
            let b = rrc.params(h, w, &mut rng);
            assert!(b.top + b.height <= h && b.left + b.width <= w, "{b:?}");
            // Each side is rounded, so area and ratio hold up to half a pixel a side.
            let (bh, bw) = (b.height as f64, b.width as f64);
            let area = (h * w) as f64;
            assert!((bh + 0.5) * (bw + 0.5) >= 0.08 * area, "{b:?} too small");
            assert!((bh - 0.5) * (bw - 0.5) <= area, "{b:?} too large");
            if (b.height, b.width) != (h, w) {
                assert!((bw + 0.5) / (bh - 0.5) >= 0.75, "{b:?} too narrow");
                assert!((bw - 0.5) / (bh + 0.5) <= 4.0 / 3.0, "{b:?} too wide");
            }
        }
    }

    #[test]
    fn impossible_boxes_fall_back_to_the_clamped_centre_crop() {
        // The whole area at any allowed ratio does not fit a 10x40 image.
        let rrc = ResizedCrop {
            scale: (1.0, 1.0),
            ..Default::default()
        };
        let mut rng = Rng::new(1);
        let wide = CropBox {
            top: 0,
            left: 13, // (40 - round(10 * 4/3)) / 2
            height: 10,
            width: 13,
        };
        assert_eq!(rrc.params(10, 40, &mut rng), wide);
        let tall = CropBox {
            top: 13,
            left: 0,
            height: 13, // round(10 / (3/4))
            width: 10,
        };
        assert_eq!(rrc.params(40, 10, &mut rng), tall);
        let whole = CropBox {
            top: 0,
            left: 0,
            height: 12,
            width: 13,
        };
        assert_eq!(rrc.fallback(12, 13), whole);
        // A ratio range that rounds the fallback's height to 0 still keeps a row.
        let steep = ResizedCrop {
            scale: (1.0, 1.0),
            ratio: (3.0, 4.0),
        };
        assert_eq!(steep.fallback(5, 1).height, 1);
    }

    #[test]
    fn resized_crops_reach_the_output_size_from_any_size() {
        let mut rng = Rng::new(4);
        let rrc = ResizedCrop::default();
        for (h, w) in [(0, 0), (1, 1), (2, 7), (37, 23), (5, 300)] {
            let img = Planar::from_vec((0..3 * h * w).map(|i| i as u8).collect(), 3, h, w);
            let out = rrc.apply(&img, 11, 13, &mut rng);
            assert_eq!((out.channels, out.height, out.width), (3, 11, 13));
        }
    }

    #[test]
    fn parses_scale_and_ratio() {
        let rrc: ResizedCrop = "0.35,1".parse().unwrap();
        assert_eq!(rrc.scale, (0.35, 1.0));
        assert_eq!(rrc.ratio, ResizedCrop::default().ratio);
        let rrc: ResizedCrop = "0.08, 1, 0.5, 2".parse().unwrap();
        assert_eq!(rrc.ratio, (0.5, 2.0));
        let err = "0.08,x".parse::<ResizedCrop>().unwrap_err().to_string();
        assert!(err.contains("'x'"), "{err}");
        assert!("0.08".parse::<ResizedCrop>().is_err());
        assert!("0.9,0.2".parse::<ResizedCrop>().is_err());
        assert!("0,1".parse::<ResizedCrop>().is_err());
    }

    #[test]
    fn pad_crop_shifts_in_zeros_and_flip_mirrors() {
        let img = Planar::from_vec((1..=12).collect(), 2, 2, 3);
        let mut rng = Rng::new(0);
        let mut shifted = false;
        for _ in 0..30 {
            let out = pad_crop(img.clone(), 1, &mut rng);
            // The kept pixels are the input's, in order, per plane; the rest are zero.
            let kept: Vec<u8> = out.data.iter().copied().filter(|&v| v != 0).collect();
            assert!(kept.windows(2).all(|p| p[0] < p[1]));
            shifted |= out != img;
        }
        assert!(shifted);
        let mut img = img;
        hflip(&mut img);
        assert_eq!(img.data, vec![3, 2, 1, 6, 5, 4, 9, 8, 7, 12, 11, 10]);
    }

    /// Integer fixed-point arithmetic as PIL's: exact.
    #[test]
    fn crop_and_resize_match_torchvision() {
        check_op("resized_crop", |image, a| {
            let b = CropBox {
                top: a[0] as usize,
                left: a[1] as usize,
                height: a[2] as usize,
                width: a[3] as usize,
            };
            resize_bilinear(&crop(&image.planar(), b), a[4] as usize, a[5] as usize)
        });
    }
}
