//! Resizing u8 planar images, and the evaluation transform of timm for images of any
//! size: resize the shorter side to `size / crop_pct`, then take the centre `size`.

use super::Planar;

/// timm's default `crop_pct` (224 of 256).
pub const EVAL_CROP_PCT: f64 = 0.875;

/// `img` resized to `height` x `width`: bilinear, antialiased when shrinking (the
/// triangle filter widened to the span of input pixels per output pixel, as Pillow's
/// and the image crate's `Triangle`), in fixed point, one axis after the other.
pub fn resize(img: &Planar, height: usize, width: usize) -> Planar {
    if (img.height, img.width) == (height, width) {
        return img.clone();
    }
    let mut out = Planar::zeros(img.channels, height, width);
    let across = Taps::new(img.width, width);
    let down = Taps::new(img.height, height);
    let mut rows = vec![0u8; img.height * width];
    for c in 0..img.channels {
        across.apply_rows(img.plane(c), img.width, &mut rows);
        down.apply_columns(&rows, width, out.plane_mut(c));
    }
    out
}

/// Fractional bits of the fixed-point filter weights: a u8 times weights summing to
/// `1 << WEIGHT_BITS` stays below `i32::MAX`.
const WEIGHT_BITS: u32 = 22;

/// The filter of one axis, `from` samples to `to`: for output `i`, the inputs
/// `first[i]..first[i] + weights(i).len()` and their weights, summing to `1 << WEIGHT_BITS`.
struct Taps {
    first: Vec<usize>,
    count: Vec<usize>,
    /// `stride` weights per output, the first `count[i]` used.
    weights: Vec<i32>,
    stride: usize,
    /// The same size: the axis is copied.
    identity: bool,
}

impl Taps {
    fn new(from: usize, to: usize) -> Self {
        let scale = from as f64 / to as f64;
        let widen = scale.max(1.0);
        let stride = 2 * widen.ceil() as usize + 1;
        let (mut first, mut count) = (Vec::with_capacity(to), Vec::with_capacity(to));
        let mut weights = vec![0i32; to * stride];
        for i in 0..to {
            let center = (i as f64 + 0.5) * scale;
            let lo = (center - widen + 0.5).floor().max(0.0) as usize;
            let hi = ((center + widen + 0.5).floor() as usize).min(from);
            let tri: Vec<f64> = (lo..hi)
                .map(|j| (1.0 - ((j as f64 + 0.5 - center) / widen).abs()).max(0.0))
                .collect();
            let total: f64 = tri.iter().sum();
            let row = &mut weights[i * stride..][..tri.len()];
            for (w, t) in row.iter_mut().zip(&tri) {
                *w = (t / total * (1u32 << WEIGHT_BITS) as f64).round() as i32;
            }
            // Exactly one in fixed point, so that a flat image stays flat.
            let short = (1i32 << WEIGHT_BITS) - row.iter().sum::<i32>();
            if let Some(max) = row.iter_mut().max() {
                *max += short;
            }
            first.push(lo);
            count.push(tri.len());
        }
        Self {
            first,
            count,
            weights,
            stride,
            identity: from == to,
        }
    }

    fn weights(&self, i: usize) -> &[i32] {
        &self.weights[i * self.stride..][..self.count[i]]
    }

    fn to_u8(acc: i32) -> u8 {
        ((acc + (1 << (WEIGHT_BITS - 1))) >> WEIGHT_BITS).clamp(0, 255) as u8
    }

    /// Filter each row of `src` (rows of `width`) into `out` (rows of the output width).
    fn apply_rows(&self, src: &[u8], width: usize, out: &mut [u8]) {
        if self.identity {
            out.copy_from_slice(src);
            return;
        }
        let to = self.first.len();
        for (row, dst) in src.chunks_exact(width).zip(out.chunks_exact_mut(to)) {
            for (i, o) in dst.iter_mut().enumerate() {
                let inputs = &row[self.first[i]..];
                let acc: i32 = self
                    .weights(i)
                    .iter()
                    .zip(inputs)
                    .map(|(&w, &v)| w * v as i32)
                    .sum();
                *o = Self::to_u8(acc);
            }
        }
    }

    /// Filter the columns of `src` (rows of `width`) into `out`'s rows.
    fn apply_columns(&self, src: &[u8], width: usize, out: &mut [u8]) {
        if self.identity {
            out.copy_from_slice(src);
            return;
        }
        let mut acc = vec![0i32; width];
        for (i, dst) in out.chunks_exact_mut(width).enumerate() {
            acc.fill(0);
            for (k, &w) in self.weights(i).iter().enumerate() {
                let row = &src[(self.first[i] + k) * width..][..width];
                for (a, &v) in acc.iter_mut().zip(row) {
                    *a += w * v as i32;
                }
            }
            for (o, &a) in dst.iter_mut().zip(&acc) {
                *o = Self::to_u8(a);
            }
        }
    }
}

/// The `height` x `width` window of `img` at (`top`, `left`).
pub fn crop(img: &Planar, top: usize, left: usize, height: usize, width: usize) -> Planar {
    let mut out = Planar::zeros(img.channels, height, width);
    for c in 0..img.channels {
        let (src, dst) = (img.plane(c), out.plane_mut(c));
        for y in 0..height {
            let from = (top + y) * img.width + left;
            dst[y * width..(y + 1) * width].copy_from_slice(&src[from..from + width]);
        }
    }
    out
}

/// timm's eval transform to `height` x `width`: unchanged when `img` has that size
/// already (crop_pct 1); else resize to `floor(size / EVAL_CROP_PCT)` (the shorter side,
/// keeping the aspect ratio, for a square output; both sides otherwise) and crop the
/// centre, offsets rounded half to even as torchvision's `CenterCrop` does.
pub fn eval_center_crop(img: &Planar, height: usize, width: usize) -> Planar {
    if (img.height, img.width) == (height, width) {
        return img.clone();
    }
    let scaled = |side: usize| (side as f64 / EVAL_CROP_PCT).floor() as usize;
    let (h, w) = if height == width {
        // torchvision's Resize(int): the shorter side to the size, the longer truncated.
        let size = scaled(height);
        if img.width <= img.height {
            (size * img.height / img.width, size)
        } else {
            (size, size * img.width / img.height)
        }
    } else {
        (scaled(height), scaled(width))
    };
    let resized = resize(img, h, w);
    let offset = |from: usize, to: usize| ((from - to) as f64 / 2.0).round_ties_even() as usize;
    crop(&resized, offset(h, height), offset(w, width), height, width)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(channels: usize, height: usize, width: usize) -> Planar {
        let data = (0..channels * height * width)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        Planar::from_vec(data, channels, height, width)
    }

    #[test]
    fn a_wide_image_is_scaled_by_its_height_and_cropped_in_the_middle() {
        // 20 high, 40 wide, to 16x16: shorter side 16 / 0.875 -> 18, so 18 x 36, then
        // the centre 16 x 16 at (1, 10).
        let img = ramp(3, 20, 40);
        let out = eval_center_crop(&img, 16, 16);
        assert_eq!((out.channels, out.height, out.width), (3, 16, 16));
        assert_eq!(out, crop(&resize(&img, 18, 36), 1, 10, 16, 16));
    }

    #[test]
    fn a_tall_image_is_scaled_by_its_width() {
        // 30 wide, 45 high, to 8x8: 9 x 13 (13.5 truncated), centre at (2, 0): (13 - 8) / 2
        // = 2.5 rounds to 2.
        let img = ramp(1, 45, 30);
        let out = eval_center_crop(&img, 8, 8);
        assert_eq!(out, crop(&resize(&img, 13, 9), 2, 0, 8, 8));
    }

    #[test]
    fn resizing_is_within_one_level_of_the_image_crates_triangle_filter() {
        for (h, w, to_h, to_w) in [
            (20, 40, 18, 36),
            (45, 30, 13, 9),
            (7, 5, 16, 11),
            (32, 32, 224, 100),
        ] {
            let img = ramp(1, h, w);
            let gray = image::GrayImage::from_raw(w as u32, h as u32, img.data.clone()).unwrap();
            let want = image::imageops::resize(
                &gray,
                to_w as u32,
                to_h as u32,
                image::imageops::FilterType::Triangle,
            );
            let got = resize(&img, to_h, to_w);
            let worst = got
                .data
                .iter()
                .zip(want.as_raw())
                .map(|(&a, &b)| (a as i32 - b as i32).abs())
                .max()
                .unwrap();
            assert!(worst <= 1, "{h}x{w} -> {to_h}x{to_w}: off by {worst}");
        }
    }

    #[test]
    fn a_flat_image_stays_flat() {
        let img = Planar::from_vec(vec![255; 2 * 37 * 23], 2, 37, 23);
        let out = resize(&img, 11, 50);
        assert!(out.data.iter().all(|&v| v == 255));
    }

    #[test]
    fn an_image_of_the_output_size_is_kept() {
        let img = ramp(3, 12, 12);
        assert_eq!(eval_center_crop(&img, 12, 12), img);
        assert_eq!(resize(&img, 12, 12), img);
    }
}
