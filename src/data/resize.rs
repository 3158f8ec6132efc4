//! Resizing u8 planar images, and the evaluation transform of timm for images of any
//! size: resize the shorter side to `size / crop_pct`, then take the centre `size`.

use super::Planar;

/// timm's default `crop_pct` (224 of 256).
pub const EVAL_CROP_PCT: f64 = 0.875;

/// `img` resized to `height` x `width` (bilinear, `Triangle`), plane by plane.
pub fn resize(img: &Planar, height: usize, width: usize) -> Planar {
    if (img.height, img.width) == (height, width) {
        return img.clone();
    }
    let mut out = Planar::zeros(img.channels, height, width);
    for c in 0..img.channels {
        let plane =
            image::GrayImage::from_raw(img.width as u32, img.height as u32, img.plane(c).to_vec())
                .expect("a plane holds height x width bytes");
        let scaled = image::imageops::resize(
            &plane,
            width as u32,
            height as u32,
            image::imageops::FilterType::Triangle,
        );
        out.plane_mut(c).copy_from_slice(scaled.as_raw());
    }
    out
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
    fn an_image_of_the_output_size_is_kept() {
        let img = ramp(3, 12, 12);
        assert_eq!(eval_center_crop(&img, 12, 12), img);
        assert_eq!(resize(&img, 12, 12), img);
    }
}
