//! CPU reference of the losses (shaders/loss.wgsl), in f64: per-row losses and the
//! gradient of the weighted batch loss w.r.t. the logits.

fn log_softmax(z: &[f32], scale: f64) -> Vec<f64> {
    let m = z.iter().map(|&v| v as f64 * scale).fold(f64::MIN, f64::max);
    let log_z = m + z
        .iter()
        .map(|&v| (v as f64 * scale - m).exp())
        .sum::<f64>()
        .ln();
    z.iter().map(|&v| v as f64 * scale - log_z).collect()
}

/// Label-smoothed cross-entropy: per-row losses and the logits' gradient.
pub fn cross_entropy(
    logits: &[f32],
    labels: &[u32],
    classes: usize,
    smoothing: f32,
    weight: f32,
) -> (Vec<f32>, Vec<f32>) {
    let rows = labels.len();
    let (mut losses, mut grad) = (Vec::new(), Vec::new());
    for (b, &label) in labels.iter().enumerate() {
        let lp = log_softmax(&logits[b * classes..(b + 1) * classes], 1.0);
        let off = smoothing as f64 / classes as f64;
        let mut l = 0.0;
        for (c, &lpc) in lp.iter().enumerate() {
            let q = if c == label as usize {
                1.0 - smoothing as f64 + off
            } else {
                off
            };
            l -= q * lpc;
            grad.push((weight as f64 * (lpc.exp() - q) / rows as f64) as f32);
        }
        losses.push(l as f32);
    }
    (losses, grad)
}

/// Cross-entropy against soft targets: per-row losses and the logits' gradient.
pub fn soft_cross_entropy(
    logits: &[f32],
    targets: &[f32],
    classes: usize,
    weight: f32,
) -> (Vec<f32>, Vec<f32>) {
    let rows = logits.len() / classes;
    let (mut losses, mut grad) = (Vec::new(), Vec::new());
    for b in 0..rows {
        let lp = log_softmax(&logits[b * classes..(b + 1) * classes], 1.0);
        let q = &targets[b * classes..(b + 1) * classes];
        losses.push(-lp.iter().zip(q).map(|(l, &q)| q as f64 * l).sum::<f64>() as f32);
        grad.extend(
            lp.iter()
                .zip(q)
                .map(|(l, &q)| (weight as f64 * (l.exp() - q as f64) / rows as f64) as f32),
        );
    }
    (losses, grad)
}

/// Soft distillation's KL term: per-row losses and the logits' gradient.
pub fn distill_soft(
    logits: &[f32],
    teacher: &[f32],
    classes: usize,
    tau: f32,
    weight: f32,
) -> (Vec<f32>, Vec<f32>) {
    let rows = logits.len() / classes;
    let norm = 1.0 / (rows * classes) as f64;
    let tau = tau as f64;
    let (mut losses, mut grad) = (Vec::new(), Vec::new());
    for b in 0..rows {
        let ls = log_softmax(&logits[b * classes..(b + 1) * classes], 1.0 / tau);
        let lt = log_softmax(&teacher[b * classes..(b + 1) * classes], 1.0 / tau);
        let l: f64 = ls.iter().zip(&lt).map(|(s, t)| t.exp() * (t - s)).sum();
        losses.push((tau * tau * norm * l) as f32);
        grad.extend(
            ls.iter()
                .zip(&lt)
                .map(|(s, t)| (weight as f64 * tau * norm * (s.exp() - t.exp())) as f32),
        );
    }
    (losses, grad)
}

/// The index of each row's largest logit.
pub fn argmax(logits: &[f32], classes: usize) -> Vec<u32> {
    logits
        .chunks(classes)
        .map(|row| {
            let mut best = 0;
            for (c, &v) in row.iter().enumerate() {
                if v > row[best] {
                    best = c;
                }
            }
            best as u32
        })
        .collect()
}
