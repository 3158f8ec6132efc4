//! Pixel-value ops exactly as Pillow computes them, shared by RandAugment and colour
//! jitter: the `ImageOps` lookup tables (autocontrast, equalize, posterize, solarize,
//! invert), the `ImageEnhance` blends (Color, Contrast, Brightness, Sharpness) and the
//! HSV round trip of torchvision's `adjust_hue`.
//!
//! A 3-channel image is PIL's "RGB"; any other channel count is a stack of "L" (grey)
//! planes, for which the colour-only ops (Color, hue) change nothing, as in PIL.

use crate::data::Planar;

/// Apply one lookup table per channel, built from that channel's histogram (PIL builds
/// the autocontrast and equalize tables band by band).
fn map_each_channel(img: &mut Planar, lut_for: impl Fn(&[u32; 256]) -> [u8; 256]) {
    for c in 0..img.channels {
        let plane = img.plane_mut(c);
        let lut = lut_for(&histogram(plane));
        plane.iter_mut().for_each(|v| *v = lut[*v as usize]);
    }
}

/// Apply the same value map to every channel (`Image.point` with one table per band).
fn map_values(img: &mut Planar, f: impl Fn(u8) -> u8) {
    let lut: [u8; 256] = std::array::from_fn(|i| f(i as u8));
    img.data.iter_mut().for_each(|v| *v = lut[*v as usize]);
}

fn histogram(plane: &[u8]) -> [u32; 256] {
    let mut h = [0u32; 256];
    plane.iter().for_each(|&v| h[v as usize] += 1);
    h
}

fn identity_lut() -> [u8; 256] {
    std::array::from_fn(|i| i as u8)
}

/// `ImageOps.autocontrast(img)` (no cutoff): stretch each channel's [min, max] to
/// [0, 255], truncating as Python's `int()` does.
pub fn autocontrast(img: &mut Planar) {
    map_each_channel(img, |h| {
        let lo = h.iter().position(|&n| n > 0);
        let hi = h.iter().rposition(|&n| n > 0);
        match (lo, hi) {
            (Some(lo), Some(hi)) if hi > lo => {
                let scale = 255.0 / (hi - lo) as f64;
                let offset = -(lo as f64) * scale;
                std::array::from_fn(|i| (i as f64 * scale + offset).clamp(0.0, 255.0) as u8)
            }
            _ => identity_lut(),
        }
    });
}

/// `ImageOps.equalize(img)`: each channel's cumulative histogram as the map, with PIL's
/// integer step `(total - count of the last used value) // 255`.
pub fn equalize(img: &mut Planar) {
    map_each_channel(img, |h| {
        let used: Vec<u64> = h.iter().filter(|&&n| n > 0).map(|&n| n as u64).collect();
        let step = match used.last() {
            Some(&last) if used.len() > 1 => (used.iter().sum::<u64>() - last) / 255,
            _ => 0,
        };
        if step == 0 {
            return identity_lut();
        }
        let mut n = step / 2;
        std::array::from_fn(|i| {
            // Entries past the largest value present are never looked up; clamp them.
            let v = (n / step).min(255) as u8;
            n += h[i] as u64;
            v
        })
    });
}

/// `ImageOps.invert`.
pub fn invert(img: &mut Planar) {
    map_values(img, |v| 255 - v);
}

/// `ImageOps.posterize(img, bits)`: keep the `bits` high bits. As timm, 8 bits or more
/// leave the image alone; 0 bits clears it, as Pillow before 11 did (newer Pillow
/// refuses 0, which timm's Posterize asks for below magnitude 2.5).
pub fn posterize(img: &mut Planar, bits: u32) {
    if bits >= 8 {
        return;
    }
    let mask = !((1u32 << (8 - bits)) - 1) as u8;
    map_values(img, |v| v & mask);
}

/// `ImageOps.solarize(img, threshold)`: invert the values at or above `threshold`.
pub fn solarize(img: &mut Planar, threshold: u32) {
    map_values(img, |v| if (v as u32) < threshold { v } else { 255 - v });
}

/// timm `solarize_add(img, add, thresh=128)`: add to the values below `threshold`,
/// saturating at 255.
pub fn solarize_add(img: &mut Planar, add: u32, threshold: u32) {
    map_values(img, |v| {
        if (v as u32) < threshold {
            (v as u32 + add).min(255) as u8
        } else {
            v
        }
    });
}

/// PIL's RGB to "L" conversion (ITU-R 601-2 luma in 16.16 fixed point).
fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((r as u32 * 19595 + g as u32 * 38470 + b as u32 * 7471 + 0x8000) >> 16) as u8
}

/// The grey version of an RGB image, as one plane.
fn grey_plane(img: &Planar) -> Vec<u8> {
    let (r, g, b) = (img.plane(0), img.plane(1), img.plane(2));
    (0..img.plane_len())
        .map(|i| luma(r[i], g[i], b[i]))
        .collect()
}

/// `Image.blend(degenerate, img, factor)` in place on `img`: PIL computes it in single
/// precision and truncates, clipping to 0..255 when extrapolating.
fn blend_from(img: &mut [u8], degenerate: impl Fn(usize) -> u8, factor: f64) {
    let alpha = factor as f32;
    for (i, v) in img.iter_mut().enumerate() {
        let d = degenerate(i) as f32;
        // `as u8` truncates and saturates, which is PIL's clip-then-truncate.
        *v = (d + alpha * (*v as f32 - d)) as u8;
    }
}

/// `ImageEnhance.Color(img).enhance(factor)`: blend with the grey image.
pub fn enhance_color(img: &mut Planar, factor: f64) {
    if img.channels != 3 {
        return; // an "L" image is its own grey version
    }
    let grey = grey_plane(img);
    for c in 0..3 {
        blend_from(img.plane_mut(c), |i| grey[i], factor);
    }
}

/// `ImageEnhance.Contrast(img).enhance(factor)`: blend with the mean grey level,
/// rounded half up as PIL's `int(mean + 0.5)`.
pub fn enhance_contrast(img: &mut Planar, factor: f64) {
    if img.channels == 3 {
        let mean = mean_level(&grey_plane(img));
        blend_from(&mut img.data, |_| mean, factor);
    } else {
        for c in 0..img.channels {
            let mean = mean_level(img.plane(c));
            blend_from(img.plane_mut(c), |_| mean, factor);
        }
    }
}

fn mean_level(plane: &[u8]) -> u8 {
    let sum: u64 = plane.iter().map(|&v| v as u64).sum();
    (sum as f64 / plane.len().max(1) as f64 + 0.5) as u8
}

/// `ImageEnhance.Brightness(img).enhance(factor)`: blend with black.
pub fn enhance_brightness(img: &mut Planar, factor: f64) {
    blend_from(&mut img.data, |_| 0, factor);
}

/// `ImageEnhance.Sharpness(img).enhance(factor)`: blend with `ImageFilter.SMOOTH`.
pub fn enhance_sharpness(img: &mut Planar, factor: f64) {
    for c in 0..img.channels {
        let (h, w) = (img.height, img.width);
        let smooth = smooth_3x3(img.plane(c), h, w);
        blend_from(img.plane_mut(c), |i| smooth[i], factor);
    }
}

/// PIL's `ImageFilter.SMOOTH` (kernel 1 1 1 / 1 5 1 / 1 1 1 over 13): single-precision
/// sums in PIL's order, rounded by adding 0.5 and truncating; the border rows and
/// columns are copied, and an image under 3x3 is returned as is.
fn smooth_3x3(plane: &[u8], h: usize, w: usize) -> Vec<u8> {
    let mut out = plane.to_vec();
    if h < 3 || w < 3 {
        return out;
    }
    let (side, centre) = ((1.0f64 / 13.0) as f32, (5.0f64 / 13.0) as f32);
    let px = |y: usize, x: usize| plane[y * w + x] as f32;
    let row =
        |y: usize, x: usize, mid: f32| px(y, x - 1) * side + px(y, x) * mid + px(y, x + 1) * side;
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            let mut s = 0.5f32;
            s += row(y + 1, x, side);
            s += row(y, x, centre);
            s += row(y - 1, x, side);
            out[y * w + x] = s as u8;
        }
    }
    out
}

/// torchvision `adjust_hue(img, hue_factor)` on a PIL image: through PIL's HSV, the hue
/// byte shifted by `int(hue_factor * 255)` with wrap-around. Grey images are unchanged.
pub fn adjust_hue(img: &mut Planar, hue_factor: f64) {
    if img.channels != 3 {
        return;
    }
    let shift = (hue_factor * 255.0) as i32 as u8;
    let n = img.plane_len();
    for i in 0..n {
        let (r, g, b) = (img.data[i], img.data[n + i], img.data[2 * n + i]);
        let (h, s, v) = rgb_to_hsv(r, g, b);
        let (r, g, b) = hsv_to_rgb(h.wrapping_add(shift), s, v);
        img.data[i] = r;
        img.data[n + i] = g;
        img.data[2 * n + i] = b;
    }
}

/// PIL's `rgb2hsv_row`, keeping its mix of single and double precision.
fn rgb_to_hsv(r: u8, g: u8, b: u8) -> (u8, u8, u8) {
    let (maxc, minc) = (r.max(g).max(b), r.min(g).min(b));
    if maxc == minc {
        return (0, 0, maxc);
    }
    let cr = (maxc - minc) as f32;
    let s = cr / maxc as f32;
    let rc = (maxc - r) as f32 / cr;
    let gc = (maxc - g) as f32 / cr;
    let bc = (maxc - b) as f32 / cr;
    let h: f32 = if r == maxc {
        bc - gc
    } else if g == maxc {
        (2.0 + rc as f64 - bc as f64) as f32
    } else {
        (4.0 + gc as f64 - rc as f64) as f32
    };
    let h = ((h as f64 / 6.0 + 1.0) % 1.0) as f32;
    let byte = |x: f32| ((x as f64 * 255.0) as i32).clamp(0, 255) as u8;
    (byte(h), byte(s), maxc)
}

/// PIL's `hsv2rgb`, keeping its mix of single and double precision and C's `round`
/// (half away from zero).
fn hsv_to_rgb(h: u8, s: u8, v: u8) -> (u8, u8, u8) {
    if s == 0 {
        return (v, v, v);
    }
    let sector = (h as f32 as f64 * 6.0 / 255.0).floor() as i32;
    let f = (h as f32 as f64 * 6.0 / 255.0 - sector as f32 as f64) as f32;
    let fs = (s as f32 as f64 / 255.0) as f32;
    let vf = v as f32 as f64;
    let byte = |x: f64| (x.round() as i32).clamp(0, 255) as u8;
    let p = byte(vf * (1.0 - fs as f64));
    let q = byte(vf * (1.0 - (fs * f) as f64));
    let t = byte(vf * (1.0 - fs as f64 * (1.0 - f as f64)));
    match sector % 6 {
        0 => (v, t, p),
        1 => (q, v, p),
        2 => (p, v, t),
        3 => (p, q, v),
        4 => (t, p, v),
        _ => (v, p, q),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::augment::fixture::check_op;

    /// torchvision's functional colour ops on PIL images (timm's ops are checked in
    /// rand_augment). Exact: integer and single-precision steps in PIL's order.
    fn exact(op: &str, f: impl Fn(&mut Planar, &[f64])) {
        check_op(op, |image, args| {
            let mut img = image.planar();
            f(&mut img, args);
            img
        });
    }

    #[test]
    fn torchvision_colour_adjustments_match() {
        exact("adjust_brightness", |img, a| enhance_brightness(img, a[0]));
        exact("adjust_contrast", |img, a| enhance_contrast(img, a[0]));
        exact("adjust_saturation", |img, a| enhance_color(img, a[0]));
        exact("adjust_hue", |img, a| adjust_hue(img, a[0]));
    }

    #[test]
    fn hand_computed_values() {
        // One RGB pixel: PIL's luma of (200, 100, 50) is 124 (0.299, 0.587, 0.114).
        assert_eq!(luma(200, 100, 50), 124);
        let mut img = Planar::from_vec(vec![200, 100, 50], 3, 1, 1);
        enhance_color(&mut img, 0.5); // halfway to grey, truncated
        assert_eq!(img.data, vec![162, 112, 87]);
        // Posterize to 2 bits keeps 0b1100_0000; solarize at 128 inverts 200.
        let mut g = Planar::from_vec(vec![0, 127, 128, 200, 255], 1, 1, 5);
        posterize(&mut g, 2);
        assert_eq!(g.data, vec![0, 64, 128, 192, 192]);
        solarize(&mut g, 128);
        assert_eq!(g.data, vec![0, 64, 127, 63, 63]);
        // A flat image has nothing to stretch or equalize.
        let mut flat = Planar::from_vec(vec![77; 6], 1, 2, 3);
        autocontrast(&mut flat);
        equalize(&mut flat);
        assert_eq!(flat.data, vec![77; 6]);
        // Pure red turned by a third of the hue circle (85 of 255) is green.
        let mut red = Planar::from_vec(vec![255, 0, 0], 3, 1, 1);
        adjust_hue(&mut red, 1.0 / 3.0);
        assert_eq!(red.data, vec![0, 255, 0]);
    }
}
