//! CPU reference of the elementwise helpers (ops::elementwise) in f64.

/// `sum_i c_i x_i`.
pub fn weighted_sum(terms: &[(f64, &[f64])]) -> Vec<f64> {
    let len = terms.first().map_or(0, |t| t.1.len());
    (0..len)
        .map(|i| terms.iter().map(|(c, x)| c * x[i]).sum())
        .collect()
}

/// `y + t (x - y)`.
pub fn lerp(y: &[f64], x: &[f64], t: f64) -> Vec<f64> {
    y.iter().zip(x).map(|(a, b)| a + t * (b - a)).collect()
}

/// `y[.., c] + bias[c]` over a channel-last `[rows, C]`.
pub fn add_bias(y: &[f64], bias: &[f64]) -> Vec<f64> {
    y.iter()
        .enumerate()
        .map(|(i, v)| v + bias[i % bias.len()])
        .collect()
}

/// `max(x, 0)`.
pub fn relu(x: &[f64]) -> Vec<f64> {
    x.iter().map(|v| v.max(0.0)).collect()
}

/// Backward of [`relu`] at its input `x`.
pub fn relu_backward(dy: &[f64], x: &[f64]) -> Vec<f64> {
    dy.iter()
        .zip(x)
        .map(|(g, v)| if *v > 0.0 { *g } else { 0.0 })
        .collect()
}
