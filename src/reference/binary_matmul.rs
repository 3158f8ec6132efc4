//! CPU reference of the packed binary matmul forms, on the values the bits stand for
//! (so a test of pack + kernel checks the whole meaning, not the bit tricks twice).

/// `out[m, n] = scale[n] * sum_k a[m, k] b[n, k]` for one matrix pair, where `a` and `b`
/// hold the unpacked values ({0,1} spikes, {-1,+1} signs, or real activations).
pub fn dot_rows(
    a: &[f32],
    b: &[f32],
    scale: Option<&[f32]>,
    m: usize,
    n: usize,
    k: usize,
) -> Vec<f32> {
    let mut out = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let s: f64 = (0..k)
                .map(|kk| a[i * k + kk] as f64 * b[j * k + kk] as f64)
                .sum();
            out[i * n + j] = s as f32 * scale.map_or(1.0, |s| s[j]);
        }
    }
    out
}

/// `dw[o, k] = sum_m dy[m, o] x[m, k]`: the weight gradient `dY^T X` of a layer with
/// input `x [M, K]` (spikes, as values) and output gradient `dy [M, O]`.
pub fn spike_weight_grad(dy: &[f32], x: &[f32], m: usize, o: usize, k: usize) -> Vec<f32> {
    let mut dw = vec![0f32; o * k];
    for oo in 0..o {
        for kk in 0..k {
            let s: f64 = (0..m)
                .map(|r| dy[r * o + oo] as f64 * x[r * k + kk] as f64)
                .sum();
            dw[oo * k + kk] = s as f32;
        }
    }
    dw
}
