//! CPU reference of BatchNorm over channel-last `[rows, C]` (ops::norm), in f64, with
//! PyTorch's semantics (biased variance to normalize, unbiased for the running update).

/// Column sums of `x [rows, C]`.
pub fn channel_sum(x: &[f64], c: usize) -> Vec<f64> {
    let mut s = vec![0.0; c];
    for (i, v) in x.iter().enumerate() {
        s[i % c] += v;
    }
    s
}

/// What the training forward returns: `y`, the batch `mean`, the biased variance
/// `var`, and `inv_std = 1 / sqrt(var + eps)`.
#[derive(Debug, Clone)]
pub struct BnTrain {
    /// The output.
    pub y: Vec<f64>,
    /// Mean per channel.
    pub mean: Vec<f64>,
    /// Variance per channel.
    pub var: Vec<f64>,
    /// 1 / sqrt(var + eps) per channel.
    pub inv_std: Vec<f64>,
}

/// Training forward of `x [rows, C]`; moves `running_mean` / `running_var` in place:
/// `running = (1 - momentum) running + momentum batch` (unbiased variance).
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_train(
    x: &[f64],
    c: usize,
    weight: &[f64],
    bias: &[f64],
    running_mean: &mut [f64],
    running_var: &mut [f64],
    eps: f64,
    momentum: f64,
) -> BnTrain {
    let rows = x.len() / c;
    let n = rows as f64;
    let mean: Vec<f64> = channel_sum(x, c).iter().map(|s| s / n).collect();
    let mut var = vec![0.0; c];
    for (i, v) in x.iter().enumerate() {
        var[i % c] += (v - mean[i % c]).powi(2) / n;
    }
    let inv_std: Vec<f64> = var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
    let y = x
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let ch = i % c;
            (v - mean[ch]) * inv_std[ch] * weight[ch] + bias[ch]
        })
        .collect();
    for ch in 0..c {
        running_mean[ch] = (1.0 - momentum) * running_mean[ch] + momentum * mean[ch];
        running_var[ch] = (1.0 - momentum) * running_var[ch] + momentum * var[ch] * n / (n - 1.0);
    }
    BnTrain {
        y,
        mean,
        var,
        inv_std,
    }
}

/// Eval forward: normalizes with the running statistics.
pub fn batch_norm_eval(
    x: &[f64],
    c: usize,
    weight: &[f64],
    bias: &[f64],
    running_mean: &[f64],
    running_var: &[f64],
    eps: f64,
) -> Vec<f64> {
    x.iter()
        .enumerate()
        .map(|(i, v)| {
            let ch = i % c;
            (v - running_mean[ch]) / (running_var[ch] + eps).sqrt() * weight[ch] + bias[ch]
        })
        .collect()
}

/// `(dx, dweight, dbias)` of [`batch_norm_train`] (batch statistics) for `dy`.
pub fn batch_norm_backward(
    x: &[f64],
    dy: &[f64],
    c: usize,
    weight: &[f64],
    mean: &[f64],
    inv_std: &[f64],
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let n = (x.len() / c) as f64;
    let xhat = |i: usize| (x[i] - mean[i % c]) * inv_std[i % c];
    let mut dweight = vec![0.0; c];
    let mut dbias = vec![0.0; c];
    for i in 0..x.len() {
        dweight[i % c] += dy[i] * xhat(i);
        dbias[i % c] += dy[i];
    }
    let dx = (0..x.len())
        .map(|i| {
            let ch = i % c;
            weight[ch] * inv_std[ch] * (dy[i] - dbias[ch] / n - xhat(i) * dweight[ch] / n)
        })
        .collect();
    (dx, dweight, dbias)
}
