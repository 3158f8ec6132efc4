//! CPU reference of the pooling ops (ops::pool) in f64.

use crate::ops::max_pool_out;

/// MaxPool2d(3, 2, 1) of `x [images, H, W, C]`: `(y, argmax)` with argmax the index
/// `y * W + x` in the (image, channel) plane, first maximum in window order.
pub fn max_pool2d(x: &[f64], images: usize, h: usize, w: usize, c: usize) -> (Vec<f64>, Vec<u32>) {
    let (ho, wo) = (max_pool_out(h), max_pool_out(w));
    let mut y = Vec::with_capacity(images * ho * wo * c);
    let mut arg = Vec::with_capacity(y.capacity());
    for n in 0..images {
        for oy in 0..ho {
            for ox in 0..wo {
                for ch in 0..c {
                    let mut best: Option<(f64, usize)> = None;
                    for iy in (2 * oy).saturating_sub(1)..(2 * oy + 2).min(h) {
                        for ix in (2 * ox).saturating_sub(1)..(2 * ox + 2).min(w) {
                            let v = x[((n * h + iy) * w + ix) * c + ch];
                            if best.is_none_or(|(b, _)| v > b) {
                                best = Some((v, iy * w + ix));
                            }
                        }
                    }
                    let (v, i) = best.expect("every window holds an input");
                    y.push(v);
                    arg.push(i as u32);
                }
            }
        }
    }
    (y, arg)
}

/// `dx [images, H, W, C]` of [`max_pool2d`]: each output's gradient added at its argmax.
pub fn max_pool2d_backward(
    dy: &[f64],
    argmax: &[u32],
    images: usize,
    h: usize,
    w: usize,
    c: usize,
) -> Vec<f64> {
    let (ho, wo) = (max_pool_out(h), max_pool_out(w));
    let mut dx = vec![0.0; images * h * w * c];
    for n in 0..images {
        for o in 0..ho * wo {
            for ch in 0..c {
                let i = (n * ho * wo + o) * c + ch;
                dx[(n * h * w + argmax[i] as usize) * c + ch] += dy[i];
            }
        }
    }
    dx
}

/// Mean of `x [T, B, N, C]` over T and N: `[B, C]`.
pub fn mean_tokens(x: &[f64], t: usize, b: usize, n: usize, c: usize) -> Vec<f64> {
    let mut y = vec![0.0; b * c];
    for (i, v) in x.iter().enumerate() {
        let bi = (i / (n * c)) % b;
        y[bi * c + i % c] += v / (t * n) as f64;
    }
    y
}

/// `dx [T, B, N, C]` of [`mean_tokens`].
pub fn mean_tokens_backward(dy: &[f64], t: usize, b: usize, n: usize, c: usize) -> Vec<f64> {
    (0..t * b * n * c)
        .map(|i| dy[((i / (n * c)) % b) * c + i % c] / (t * n) as f64)
        .collect()
}
