//! CPU reference of AdamW with global-norm clipping (shaders/optim.wgsl), in f64.

use crate::ops::optim::AdamW;

/// One step, in place, as `ops::optim::adamw_step`.
#[allow(clippy::too_many_arguments)]
pub fn adamw_step(
    opt: &AdamW,
    lr: f32,
    step: u32,
    decay_end: usize,
    grad: &[f32],
    param: &mut [f32],
    m1: &mut [f32],
    m2: &mut [f32],
) {
    let norm = grad
        .iter()
        .map(|&g| g as f64 * g as f64)
        .sum::<f64>()
        .sqrt();
    let scale = opt
        .max_grad_norm
        .map_or(1.0, |max| (max as f64 / (norm + 1e-6)).min(1.0));
    let (b1, b2, lr) = (opt.beta1 as f64, opt.beta2 as f64, lr as f64);
    let c1 = 1.0 - b1.powi(step as i32);
    let c2 = 1.0 - b2.powi(step as i32);
    for i in 0..param.len() {
        let g = grad[i] as f64 * scale;
        let mut p = param[i] as f64;
        if i < decay_end {
            p *= 1.0 - lr * opt.weight_decay as f64;
        }
        let m = b1 * m1[i] as f64 + (1.0 - b1) * g;
        let v = b2 * m2[i] as f64 + (1.0 - b2) * g * g;
        m1[i] = m as f32;
        m2[i] = v as f32;
        param[i] = (p - lr * (m / c1) / ((v / c2).sqrt() + opt.eps as f64)) as f32;
    }
}
