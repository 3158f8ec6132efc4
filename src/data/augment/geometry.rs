//! Resampling as Pillow does it, so that crops and geometric ops match timm's pixel for
//! pixel: `Image.resize(.., BILINEAR)` (the convolution resampler of libImaging's
//! Resample.c, triangle filter widened when downscaling, 22-bit fixed point) and
//! `Image.transform(.., AFFINE, .., BILINEAR, fillcolor)` (Geometry.c's generic
//! transform with its bilinear sampler), which `rotate`, `shear_*` and `translate_*`
//! use. Each channel plane is resampled alike, as PIL does for the bands of a pixel.

use crate::data::Planar;

/// Fixed-point fraction bits of PIL's 8-bit resampler (`PRECISION_BITS`).
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// The taps of one output sample: the first input index and fixed-point weights.
struct Taps {
    first: usize,
    weights: Vec<i64>,
}

/// PIL `precompute_coeffs` + `normalize_coeffs_8bpc` for the bilinear filter.
fn taps(in_size: usize, out_size: usize) -> Vec<Taps> {
    let scale = in_size as f64 / out_size as f64;
    let filter_scale = scale.max(1.0);
    let support = filter_scale; // the triangle filter's support is 1
    (0..out_size)
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            // C's (int) truncation; both ends are clamped into the image.
            let first = ((center - support + 0.5) as i64).max(0);
            let end = ((center + support + 0.5) as i64).min(in_size as i64);
            let raw: Vec<f64> = (first..end)
                .map(|x| triangle((x as f64 - center + 0.5) / filter_scale))
                .collect();
            let total: f64 = raw.iter().sum();
            let weights = raw
                .iter()
                .map(|&w| {
                    let w = if total != 0.0 { w / total } else { w };
                    (0.5 + w * (1u64 << PRECISION_BITS) as f64) as i64
                })
                .collect();
            Taps {
                first: first as usize,
                weights,
            }
        })
        .collect()
}

fn triangle(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

/// One fixed-point dot product, rounded and clipped as PIL's `clip8`.
fn convolve(taps: &Taps, sample: impl Fn(usize) -> u8) -> u8 {
    let mut acc = 1i64 << (PRECISION_BITS - 1);
    for (k, &w) in taps.weights.iter().enumerate() {
        acc += sample(taps.first + k) as i64 * w;
    }
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// PIL `Image.resize((out_w, out_h), Resampling.BILINEAR)`: a horizontal pass, then a
/// vertical one, each skipped when that size does not change.
pub fn resize_bilinear(img: &Planar, out_h: usize, out_w: usize) -> Planar {
    let mut cur = img.clone();
    if cur.width != out_w {
        let taps = taps(cur.width, out_w);
        let mut next = Planar::zeros(cur.channels, cur.height, out_w);
        for c in 0..cur.channels {
            let (src, dst) = (cur.plane(c), next.plane_mut(c));
            for y in 0..cur.height {
                let row = &src[y * cur.width..(y + 1) * cur.width];
                for (x, t) in taps.iter().enumerate() {
                    dst[y * out_w + x] = convolve(t, |i| row[i]);
                }
            }
        }
        cur = next;
    }
    if cur.height != out_h {
        let taps = taps(cur.height, out_h);
        let w = cur.width;
        let mut next = Planar::zeros(cur.channels, out_h, w);
        for c in 0..cur.channels {
            let (src, dst) = (cur.plane(c), next.plane_mut(c));
            for (y, t) in taps.iter().enumerate() {
                for x in 0..w {
                    dst[y * w + x] = convolve(t, |i| src[i * w + x]);
                }
            }
        }
        cur = next;
    }
    cur
}

/// An affine map from output pixel centres to input coordinates, PIL's `(a, b, c, d, e,
/// f)`: input `x = a x' + b y' + c`, `y = d x' + e y' + f`.
pub type Affine = [f64; 6];

/// The matrix of `Image.rotate(degrees)` about the centre, without expanding: PIL's
/// own construction, cosines and sines rounded to 15 decimals.
pub fn rotation(degrees: f64, height: usize, width: usize) -> Affine {
    let angle = -degrees.rem_euclid(360.0).to_radians();
    let round15 = |v: f64| format!("{v:.15}").parse::<f64>().unwrap_or(v);
    let (cos, sin) = (round15(angle.cos()), round15(angle.sin()));
    let neg_sin = round15(-angle.sin());
    let (cx, cy) = (width as f64 / 2.0, height as f64 / 2.0);
    [
        cos,
        sin,
        cos * -cx + sin * -cy + 0.0 + cx,
        neg_sin,
        cos,
        neg_sin * -cx + cos * -cy + 0.0 + cy,
    ]
}

/// PIL `Image.transform(size, AFFINE, matrix, BILINEAR, fillcolor=fill)`: samples
/// whose centre maps outside the input take `fill` (one value per channel), the others
/// are bilinear in double precision with edge clamping, truncated to u8.
pub fn affine_bilinear(img: &Planar, m: &Affine, fill: &[u8]) -> Planar {
    let (h, w) = (img.height, img.width);
    let mut out = Planar::zeros(img.channels, h, w);
    for y in 0..h {
        for x in 0..w {
            let (xo, yo) = (x as f64 + 0.5, y as f64 + 0.5);
            let xin = m[0] * xo + m[1] * yo + m[2];
            let yin = m[3] * xo + m[4] * yo + m[5];
            let at = y * w + x;
            if !(xin >= 0.0 && xin < w as f64 && yin >= 0.0 && yin < h as f64) {
                for c in 0..img.channels {
                    out.data[c * h * w + at] = fill[c.min(fill.len() - 1)];
                }
                continue;
            }
            let (xs, ys) = (xin - 0.5, yin - 0.5);
            let (xi, yi) = (xs.floor() as i64, ys.floor() as i64);
            let (dx, dy) = (xs - xi as f64, ys - yi as f64);
            let clip = |v: i64, n: usize| v.clamp(0, n as i64 - 1) as usize;
            let (x0, x1, y0) = (clip(xi, w), clip(xi + 1, w), clip(yi, h));
            let next_row = (yi + 1 < h as i64).then_some((yi + 1) as usize);
            for c in 0..img.channels {
                let p = img.plane(c);
                let lerp_row = |r: usize| {
                    let (a, b) = (p[r * w + x0] as f64, p[r * w + x1] as f64);
                    a + (b - a) * dx
                };
                let top = lerp_row(y0);
                let bottom = next_row.map_or(top, lerp_row);
                out.data[c * h * w + at] = (top + (bottom - top) * dy) as u8;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_resampling() {
        // Doubling [0, 100] bilinearly: the centres fall at -1/4, 1/4, 3/4, 5/4 of the
        // input, clamped at the ends: 0, 25, 75, 100.
        let img = Planar::from_vec(vec![0, 100], 1, 1, 2);
        assert_eq!(resize_bilinear(&img, 1, 4).data, vec![0, 25, 75, 100]);
        // Halving widens the triangle to two pixels each side: weights 3:3:1 over
        // (10, 30, 50) give 24.3, and 1:3:3 over (30, 50, 70) give 55.7, rounded.
        let img = Planar::from_vec(vec![10, 30, 50, 70], 1, 1, 4);
        assert_eq!(resize_bilinear(&img, 1, 2).data, vec![24, 56]);
        // A translation by a whole pixel shifts and fills the uncovered column.
        let img = Planar::from_vec(vec![1, 2, 3, 4, 5, 6], 1, 2, 3);
        let m = [1.0, 0.0, 1.0, 0.0, 1.0, 0.0];
        assert_eq!(affine_bilinear(&img, &m, &[9]).data, vec![2, 3, 9, 5, 6, 9]);
    }
}
