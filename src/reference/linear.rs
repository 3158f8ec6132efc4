//! CPU reference of the linear layer (ops::linear) in f64: `y = x W^T + b` with
//! `x [rows, in]`, `W [out, in]`, `b [out]`.

/// `y [rows, out]`.
pub fn linear(x: &[f64], w: &[f64], b: Option<&[f64]>, k: usize, out: usize) -> Vec<f64> {
    let rows = x.len() / k.max(1);
    let mut y = vec![0.0; rows * out];
    for r in 0..rows {
        for o in 0..out {
            let dot: f64 = (0..k).map(|i| x[r * k + i] * w[o * k + i]).sum();
            y[r * out + o] = dot + b.map_or(0.0, |b| b[o]);
        }
    }
    y
}

/// `(dx, dw, db)` of [`linear`] for the output gradient `dy`.
pub fn linear_backward(
    x: &[f64],
    w: &[f64],
    dy: &[f64],
    k: usize,
    out: usize,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let rows = x.len() / k.max(1);
    let mut dx = vec![0.0; x.len()];
    let mut dw = vec![0.0; w.len()];
    let mut db = vec![0.0; out];
    for r in 0..rows {
        for o in 0..out {
            let g = dy[r * out + o];
            db[o] += g;
            for i in 0..k {
                dx[r * k + i] += g * w[o * k + i];
                dw[o * k + i] += g * x[r * k + i];
            }
        }
    }
    (dx, dw, db)
}
