//! One image in memory as the loader and the augmentations handle it: u8,
//! channel-planar `[C, H, W]` (grey: C = 1, RGB: C = 3; event frames: T x 2 planes).

/// A u8 channel-planar image `[C, H, W]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planar {
    /// Pixels, channel after channel.
    pub data: Vec<u8>,
    /// Channels.
    pub channels: usize,
    /// Height.
    pub height: usize,
    /// Width.
    pub width: usize,
}

impl Planar {
    /// An all-zero image.
    pub fn zeros(channels: usize, height: usize, width: usize) -> Self {
        Self {
            data: vec![0; channels * height * width],
            channels,
            height,
            width,
        }
    }

    /// Wrap `data`, which must hold `channels * height * width` bytes.
    pub fn from_vec(data: Vec<u8>, channels: usize, height: usize, width: usize) -> Self {
        assert_eq!(
            data.len(),
            channels * height * width,
            "planar image data of the wrong length"
        );
        Self {
            data,
            channels,
            height,
            width,
        }
    }

    /// A decoded image as grey (`channels` 1) or RGB (`channels` 3) planes.
    pub fn from_image(img: &image::DynamicImage, channels: usize) -> Self {
        let (height, width) = (img.height() as usize, img.width() as usize);
        let plane = height * width;
        let mut out = Self::zeros(channels, height, width);
        if channels == 1 {
            out.data.copy_from_slice(img.to_luma8().as_raw());
        } else {
            for (i, px) in img.to_rgb8().pixels().enumerate() {
                for c in 0..3 {
                    out.data[c * plane + i] = px[c];
                }
            }
        }
        out
    }

    /// Pixels per channel.
    pub fn plane_len(&self) -> usize {
        self.height * self.width
    }

    /// Channel `c`'s pixels.
    pub fn plane(&self, c: usize) -> &[u8] {
        let n = self.plane_len();
        &self.data[c * n..(c + 1) * n]
    }

    /// Channel `c`'s pixels, writable.
    pub fn plane_mut(&mut self, c: usize) -> &mut [u8] {
        let n = self.plane_len();
        &mut self.data[c * n..(c + 1) * n]
    }
}
