//! Training-time augmentation on u8 channel-planar images: random crop with zero
//! padding and horizontal flip (as the reference training scripts use for CIFAR).

use crate::rng::Rng;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Augment {
    /// Pad by this many pixels, then crop back to the original size at a random offset.
    pub crop_padding: usize,
    /// Mirror left-right with probability 1/2.
    pub horizontal_flip: bool,
}

impl Augment {
    pub fn is_identity(&self) -> bool {
        self.crop_padding == 0 && !self.horizontal_flip
    }

    /// Augment one image `[C, H, W]` into `out`.
    pub fn apply(&self, img: &[u8], c: usize, h: usize, w: usize, rng: &mut Rng, out: &mut [u8]) {
        let p = self.crop_padding as isize;
        let (dy, dx) = if p > 0 {
            (
                rng.below(2 * p as usize + 1) as isize - p,
                rng.below(2 * p as usize + 1) as isize - p,
            )
        } else {
            (0, 0)
        };
        let flip = self.horizontal_flip && rng.next_u64() & 1 == 1;
        for ch in 0..c {
            for y in 0..h {
                for x in 0..w {
                    let sx = if flip { w - 1 - x } else { x } as isize + dx;
                    let sy = y as isize + dy;
                    let v = if sy >= 0 && sy < h as isize && sx >= 0 && sx < w as isize {
                        img[ch * h * w + sy as usize * w + sx as usize]
                    } else {
                        0
                    };
                    out[ch * h * w + y * w + x] = v;
                }
            }
        }
    }
}
