//! Learning-rate schedule: linear warm-up from `warmup_lr` to `lr`, then cosine decay to
//! `min_lr` (timm's CosineLRScheduler as the reference recipes use it, per step).

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
/// Linear warm-up, then a cosine from `lr` to `min_lr`, indexed by optimizer step.
pub struct CosineSchedule {
    /// Peak learning rate.
    pub lr: f32,
    /// Final learning rate.
    pub min_lr: f32,
    /// Where the warm-up starts.
    pub warmup_lr: f32,
    /// Steps of warm-up.
    pub warmup_steps: usize,
    /// Steps of warm-up and cosine; later steps stay at `min_lr`.
    pub total_steps: usize,
}

impl CosineSchedule {
    /// The learning rate at `step` (0-based).
    pub fn at(&self, step: usize) -> f32 {
        if step < self.warmup_steps {
            let f = step as f32 / self.warmup_steps as f32;
            return self.warmup_lr + (self.lr - self.warmup_lr) * f;
        }
        let span = self.total_steps.saturating_sub(self.warmup_steps).max(1);
        let f = ((step - self.warmup_steps) as f32 / span as f32).min(1.0);
        self.min_lr + 0.5 * (self.lr - self.min_lr) * (1.0 + (std::f32::consts::PI * f).cos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warms_up_linearly_then_decays_by_cosine() {
        let s = CosineSchedule {
            lr: 1e-3,
            min_lr: 1e-5,
            warmup_lr: 1e-6,
            warmup_steps: 10,
            total_steps: 110,
        };
        assert!((s.at(0) - 1e-6).abs() < 1e-9);
        assert!((s.at(5) - (1e-6 + 0.5 * (1e-3 - 1e-6))).abs() < 1e-8);
        assert!((s.at(10) - 1e-3).abs() < 1e-8);
        assert!((s.at(60) - (1e-5 + 0.5 * (1e-3 - 1e-5))).abs() < 1e-7);
        assert!((s.at(110) - 1e-5).abs() < 1e-8);
        assert!((s.at(500) - 1e-5).abs() < 1e-8, "stays at the floor");
        for step in 10..110 {
            assert!(s.at(step + 1) <= s.at(step));
        }
    }
}
