//! CPU reference of BESTformer's weight binarization (ops::binarize) in f64.

/// What [`binarize`] returns per weight `[C_out, K]`: the normalized weights `w_hat`,
/// their signs (`sign(0) = +1`), and per channel the mean and unbiased std.
#[derive(Debug, Clone)]
pub struct Binarized {
    /// The standardized weights.
    pub w_hat: Vec<f64>,
    /// Their signs, +-1.
    pub signs: Vec<f64>,
    /// Mean per output channel.
    pub mean: Vec<f64>,
    /// Standard deviation per output channel.
    pub std: Vec<f64>,
}

fn inverse(std: f64) -> f64 {
    if std > 0.0 {
        1.0 / std
    } else {
        0.0
    }
}

/// `w_hat = (w - mean_o) / std_o` (unbiased std), `w_b = sign(w_hat)`.
pub fn binarize(w: &[f64], c_out: usize, k: usize) -> Binarized {
    let mut out = Binarized {
        w_hat: Vec::with_capacity(w.len()),
        signs: Vec::with_capacity(w.len()),
        mean: Vec::with_capacity(c_out),
        std: Vec::with_capacity(c_out),
    };
    for row in w.chunks(k).take(c_out) {
        let mean = row.iter().sum::<f64>() / k as f64;
        let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (k - 1) as f64;
        let std = var.sqrt();
        for v in row {
            let h = (v - mean) * inverse(std);
            out.w_hat.push(h);
            out.signs.push(if h >= 0.0 { 1.0 } else { -1.0 });
        }
        out.mean.push(mean);
        out.std.push(std);
    }
    out
}

/// `dw` for `g = d w_b` through the straight-through sign and the normalization:
/// `(1/std) (g - mean(g) - w_hat sum(g w_hat) / (K - 1))` per channel.
pub fn binarize_backward(w: &[f64], g: &[f64], c_out: usize, k: usize) -> Vec<f64> {
    let b = binarize(w, c_out, k);
    let mut dw = Vec::with_capacity(w.len());
    for o in 0..c_out {
        let gs = &g[o * k..(o + 1) * k];
        let hs = &b.w_hat[o * k..(o + 1) * k];
        let g_mean = gs.iter().sum::<f64>() / k as f64;
        let gh = gs.iter().zip(hs).map(|(g, h)| g * h).sum::<f64>() / (k - 1) as f64;
        let inv = inverse(b.std[o]);
        dw.extend(gs.iter().zip(hs).map(|(g, h)| inv * (g - g_mean - h * gh)));
    }
    dw
}
