//! CPU reference of the f32 matmul forms (shaders/matmul.wgsl), accumulating in f64.

use crate::ops::MatmulForm;

/// `op(a) op(b)` for one matrix pair; `m, n, k` are the sizes of the product.
pub fn matmul(a: &[f32], b: &[f32], m: usize, n: usize, k: usize, form: MatmulForm) -> Vec<f32> {
    let a_at = |i: usize, kk: usize| match form {
        MatmulForm::AtB | MatmulForm::AtBt => a[kk * m + i],
        _ => a[i * k + kk],
    };
    let b_at = |kk: usize, j: usize| match form {
        MatmulForm::ABt | MatmulForm::AtBt => b[j * k + kk],
        _ => b[kk * n + j],
    };
    let mut c = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let s: f64 = (0..k)
                .map(|kk| a_at(i, kk) as f64 * b_at(kk, j) as f64)
                .sum();
            c[i * n + j] = s as f32;
        }
    }
    c
}
