//! Gradient checks of a GPU backward against central finite differences of the CPU
//! reference's surrogate forward (`reference::model::Tape` replayed around the recorded
//! point), on the scalar `sum logits * r`.

use bitspike::reference::model::{RefParams, Tape};

use super::Rng;

/// The step of the central differences.
pub const EPS: f64 = 1e-4;

/// `sum logits * r` of a reference forward.
pub fn dot(logits: &[f64], r: &[f32]) -> f64 {
    logits.iter().zip(r).map(|(l, &r)| l * r as f64).sum()
}

/// What one model's checks share: the reference forward, its parameters, the recorded
/// tape and the logits' weights `r`.
pub struct GradCheck<'a> {
    pub what: &'a str,
    pub forward: &'a dyn Fn(&RefParams, &mut Tape) -> Vec<f64>,
    pub params: &'a RefParams,
    pub tape: &'a Tape,
    pub r: &'a [f32],
}

impl GradCheck<'_> {
    /// The GPU gradient `gpu` of parameter `name` at `picks` indices (the largest half
    /// first, informative, then random ones) against finite differences; indices where
    /// `kink` says the surrogate has a corner within `EPS` are never picked.
    pub fn check(&self, name: &str, gpu: &[f32], picks: usize, kink: &dyn Fn(usize) -> bool) {
        let len = self.params[name].len();
        let mut rng = Rng::new(len as u64);
        let mut order: Vec<usize> = (0..len).filter(|&i| !kink(i)).collect();
        order.sort_by(|&a, &b| gpu[b].abs().total_cmp(&gpu[a].abs()));
        let mut idx: Vec<usize> = order.iter().take(picks / 2).copied().collect();
        while idx.len() < picks.min(order.len()) {
            let i = (rng.next_u64() % len as u64) as usize;
            if !kink(i) {
                idx.push(i);
            }
        }
        let scale = gpu.iter().fold(0f32, |m, g| m.max(g.abs())).max(1e-6);
        for i in idx {
            let mut f = [0.0; 2];
            for (k, sign) in [1.0, -1.0].iter().enumerate() {
                let mut p = self.params.clone();
                p.get_mut(name).expect("a parameter of the model")[i] += sign * EPS;
                let mut t = self.tape.clone();
                t.rewind_for_replay();
                f[k] = dot(&(self.forward)(&p, &mut t), self.r);
            }
            let fd = ((f[0] - f[1]) / (2.0 * EPS)) as f32;
            let g = gpu[i];
            assert!(
                (fd - g).abs() <= 0.03 * scale + 0.03 * fd.abs(),
                "{}: d/d {name}[{i}]: GPU {g}, finite differences {fd} (largest |grad| {scale})",
                self.what
            );
        }
    }
}
