//! CPU reference of the layout changes (ops::layout).

/// Images `[B, C, H * W]` (NCHW) to `[T * B, H * W, C]` (NHWC), the same at every step.
pub fn nchw_to_nhwc_repeat(x: &[f64], b: usize, c: usize, hw: usize, t: usize) -> Vec<f64> {
    let mut one = vec![0.0; x.len()];
    for bi in 0..b {
        for ch in 0..c {
            for px in 0..hw {
                one[(bi * hw + px) * c + ch] = x[(bi * c + ch) * hw + px];
            }
        }
    }
    one.repeat(t)
}

/// `[TB, N, heads * d]` to `[TB, heads, N, d]`.
pub fn split_heads(x: &[f64], tb: usize, n: usize, heads: usize, d: usize) -> Vec<f64> {
    permute_heads(x, tb, n, heads, d, false)
}

/// `[TB, heads, N, d]` to `[TB, N, heads * d]`.
pub fn merge_heads(x: &[f64], tb: usize, n: usize, heads: usize, d: usize) -> Vec<f64> {
    permute_heads(x, tb, n, heads, d, true)
}

fn permute_heads(x: &[f64], tb: usize, n: usize, h: usize, d: usize, merge: bool) -> Vec<f64> {
    let mut y = vec![0.0; x.len()];
    for m in 0..tb {
        for i in 0..n {
            for hh in 0..h {
                for c in 0..d {
                    let tok = ((m * n + i) * h + hh) * d + c;
                    let hf = ((m * h + hh) * n + i) * d + c;
                    if merge {
                        y[tok] = x[hf];
                    } else {
                        y[hf] = x[tok];
                    }
                }
            }
        }
    }
    y
}
