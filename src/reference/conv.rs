//! CPU reference of the 3x3 convolution (ops::conv): a direct convolution in f64 on
//! NHWC images `[images, H, W, C_in]` with weights `[C_out, 9 C_in]`, column
//! `(ky * 3 + kx) * C_in + c` (PyTorch's `[C_out, C_in, 3, 3]` permuted).

/// Sizes of a 3x3 stride-1 pad-1 convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvDims {
    /// Images (T x B).
    pub images: usize,
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
    /// Input channels.
    pub c_in: usize,
    /// Output channels.
    pub c_out: usize,
}

impl ConvDims {
    /// Calls `f(out_index, in_index, weight_index)` for every product of the convolution:
    /// `y[out] += x[in] * w[weight]` (padding taps skipped).
    fn for_each_tap(&self, mut f: impl FnMut(usize, usize, usize)) {
        let (h, w, ci, co) = (self.h, self.w, self.c_in, self.c_out);
        for n in 0..self.images {
            for y in 0..h {
                for x in 0..w {
                    for ky in 0..3 {
                        for kx in 0..3 {
                            let (sy, sx) = (y + ky, x + kx); // shifted by +1
                            if sy < 1 || sy > h || sx < 1 || sx > w {
                                continue;
                            }
                            let src = ((n * h + sy - 1) * w + sx - 1) * ci;
                            let dst = ((n * h + y) * w + x) * co;
                            for o in 0..co {
                                for c in 0..ci {
                                    f(dst + o, src + c, (o * 9 + ky * 3 + kx) * ci + c);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `y [images, H, W, C_out]`.
pub fn conv3x3(x: &[f64], w: &[f64], d: ConvDims) -> Vec<f64> {
    let mut y = vec![0.0; d.images * d.h * d.w * d.c_out];
    d.for_each_tap(|o, i, k| y[o] += x[i] * w[k]);
    y
}

/// `(dx, dw)` of [`conv3x3`] for the output gradient `dy`.
pub fn conv3x3_backward(x: &[f64], w: &[f64], dy: &[f64], d: ConvDims) -> (Vec<f64>, Vec<f64>) {
    let mut dx = vec![0.0; x.len()];
    let mut dw = vec![0.0; w.len()];
    d.for_each_tap(|o, i, k| {
        dx[i] += dy[o] * w[k];
        dw[k] += dy[o] * x[i];
    });
    (dx, dw)
}
