//! Mixup and CutMix on a normalized batch, as timm's `timm.data.mixup.Mixup` does them:
//! each sample `i` is blended with its mirror `B - 1 - i` (timm's `x.flip(0)`), by a weight
//! `lam ~ Beta(alpha, alpha)` (mixup: a pixel blend; cutmix: a box of the mirror pasted
//! in, `lam` corrected to the area kept), and the targets are the same blend of the two
//! label-smoothed one-hot rows (timm's `mixup_target`).
//!
//! timm draws with NumPy's generator; this draws from [`Rng`], so the same settings give
//! the same distributions, not the same samples.

use crate::error::{Error, Result};
use crate::rng::Rng;

/// Which samples share a mixing weight (timm's `mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MixMode {
    /// One weight and one choice of mixup or cutmix for the whole batch.
    #[default]
    Batch,
    /// A weight per sample.
    Elem,
    /// A weight per mirrored pair (`i`, `B - 1 - i`), both samples mixed with it.
    Pair,
}

impl std::str::FromStr for MixMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "batch" => Ok(Self::Batch),
            "elem" => Ok(Self::Elem),
            "pair" => Ok(Self::Pair),
            _ => Err(Error::InvalidArgument(format!(
                "mixup mode '{s}' is not one of batch, elem, pair"
            ))),
        }
    }
}

/// timm's `Mixup` settings.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Mixup {
    /// Beta(alpha, alpha) of mixup; 0 turns mixup off.
    pub mixup_alpha: f32,
    /// Beta(alpha, alpha) of cutmix; 0 turns cutmix off.
    pub cutmix_alpha: f32,
    /// CutMix box sides as fractions of the image, drawn uniformly in [min, max) instead
    /// of from `lam` (timm's `cutmix_minmax`).
    pub cutmix_minmax: Option<(f32, f32)>,
    /// Probability that a batch (or sample, or pair) is mixed at all.
    pub prob: f32,
    /// With both alphas set, the probability of cutmix rather than mixup.
    pub switch_prob: f32,
    /// How the mode of each batch is chosen.
    pub mode: MixMode,
    /// Mixing stops from this epoch (0-based) on (timm's `mixup_off_epoch`).
    pub off_epoch: Option<usize>,
}

/// How a batch was mixed: sample `i` holds `lam[i]` of itself and `1 - lam[i]` of sample
/// `partner(i)`. Soft targets of any per-sample distribution (labels, a teacher's
/// probabilities) mix the same way, through [`Mix::targets`].
#[derive(Debug, Clone, PartialEq)]
pub struct Mix {
    /// The mixing weight of each sample (1 for an unmixed one).
    pub lam: Vec<f32>,
}

impl Mix {
    /// The batch unmixed.
    pub fn none(batch: usize) -> Self {
        Self {
            lam: vec![1.0; batch],
        }
    }

    /// Sample `i`'s partner: its mirror in the batch.
    pub fn partner(&self, i: usize) -> usize {
        self.lam.len() - 1 - i
    }

    /// Mix per-sample distributions `rows [B, K]`: row `i` becomes `lam_i rows_i +
    /// (1 - lam_i) rows_partner(i)`.
    pub fn targets(&self, rows: &[f32], k: usize) -> Vec<f32> {
        let mut out = vec![0f32; rows.len()];
        for (i, &lam) in self.lam.iter().enumerate() {
            let j = self.partner(i);
            for c in 0..k {
                out[i * k + c] = lam * rows[i * k + c] + (1.0 - lam) * rows[j * k + c];
            }
        }
        out
    }
}

/// Label-smoothed one-hot rows `[B, classes]` (timm's `one_hot` with `off = smoothing /
/// classes`, `on = 1 - smoothing + off`); mixed by [`Mix::targets`] they are timm's
/// `mixup_target`.
pub fn smoothed_one_hot(labels: &[u32], classes: usize, smoothing: f32) -> Vec<f32> {
    let off = smoothing / classes as f32;
    let mut rows = vec![off; labels.len() * classes];
    for (i, &l) in labels.iter().enumerate() {
        rows[i * classes + l as usize] = 1.0 - smoothing + off;
    }
    rows
}

/// A cutmix box: rows `y0..y1`, columns `x0..x1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CutBox {
    /// First row of the box.
    pub y0: usize,
    /// Row past the box.
    pub y1: usize,
    /// First column of the box.
    pub x0: usize,
    /// Column past the box.
    pub x1: usize,
}

impl CutBox {
    fn area(&self) -> usize {
        (self.y1 - self.y0) * (self.x1 - self.x0)
    }
}

/// A draw from Gamma(shape, 1) (Marsaglia and Tsang; shape < 1 by the boost
/// `Gamma(shape + 1) U^(1 / shape)`).
fn gamma(rng: &mut Rng, shape: f64) -> f64 {
    if shape < 1.0 {
        let u = (rng.uniform() as f64).max(1e-12);
        return gamma(rng, shape + 1.0) * u.powf(1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = rng.normal() as f64;
        let v = (1.0 + c * x).powi(3);
        if v <= 0.0 {
            continue;
        }
        let u = (rng.uniform() as f64).max(1e-12);
        if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
            return d * v;
        }
    }
}

/// A draw from Beta(alpha, alpha).
pub fn beta(rng: &mut Rng, alpha: f32) -> f32 {
    let a = gamma(rng, alpha as f64);
    let b = gamma(rng, alpha as f64);
    if a + b == 0.0 {
        return 0.5;
    }
    (a / (a + b)) as f32
}

/// timm's `rand_bbox`: a box of sides `sqrt(1 - lam)` of the image's, centred uniformly,
/// clipped to the image.
fn box_from_lam(h: usize, w: usize, lam: f32, rng: &mut Rng) -> CutBox {
    let ratio = (1.0 - lam as f64).max(0.0).sqrt();
    let (cut_h, cut_w) = ((h as f64 * ratio) as usize, (w as f64 * ratio) as usize);
    let (cy, cx) = (rng.below(h), rng.below(w));
    CutBox {
        y0: cy.saturating_sub(cut_h / 2),
        y1: (cy + cut_h / 2).min(h),
        x0: cx.saturating_sub(cut_w / 2),
        x1: (cx + cut_w / 2).min(w),
    }
}

/// timm's `rand_bbox_minmax`: sides uniform in `[min, max)` of the image's, placed
/// uniformly inside it.
fn box_from_minmax(h: usize, w: usize, (lo, hi): (f32, f32), rng: &mut Rng) -> CutBox {
    let side = |n: usize, rng: &mut Rng| {
        let (a, b) = ((n as f32 * lo) as usize, (n as f32 * hi) as usize);
        a + rng.below(b.saturating_sub(a).max(1))
    };
    let (cut_h, cut_w) = (side(h, rng).min(h), side(w, rng).min(w));
    let y0 = rng.below((h - cut_h).max(1));
    let x0 = rng.below((w - cut_w).max(1));
    CutBox {
        y0,
        y1: y0 + cut_h,
        x0,
        x1: x0 + cut_w,
    }
}

/// The layout of a batch of images: `time_steps` frames of `[batch, channels, h, w]`.
#[derive(Debug, Clone, Copy)]
pub struct BatchShape {
    /// Frames per sample (1 for still images).
    pub time_steps: usize,
    /// Samples in the batch.
    pub batch: usize,
    /// Channels per image.
    pub channels: usize,
    /// Image height.
    pub height: usize,
    /// Image width.
    pub width: usize,
}

impl BatchShape {
    fn sample_plane(&self, t: usize, i: usize, c: usize) -> usize {
        ((t * self.batch + i) * self.channels + c) * self.height * self.width
    }
}

/// One sample's mixing: its weight, and the box when it is cut rather than blended.
#[derive(Debug, Clone, Copy)]
struct Draw {
    lam: f32,
    cut: Option<CutBox>,
}

impl Mixup {
    /// Check the settings (alphas non-negative, probabilities in [0, 1], a sound
    /// `cutmix_minmax`).
    pub fn check(&self) -> Result<()> {
        let bad = |what: String| Err(Error::InvalidArgument(format!("mixup: {what}")));
        if !(self.mixup_alpha >= 0.0 && self.cutmix_alpha >= 0.0) {
            return bad(format!(
                "alphas must be non-negative (mixup {}, cutmix {})",
                self.mixup_alpha, self.cutmix_alpha
            ));
        }
        for (name, p) in [("prob", self.prob), ("switch_prob", self.switch_prob)] {
            if !(0.0..=1.0).contains(&p) {
                return bad(format!("{name} {p} is outside [0, 1]"));
            }
        }
        if let Some((lo, hi)) = self.cutmix_minmax {
            if !(0.0 <= lo && lo < hi && hi <= 1.0) {
                return bad(format!(
                    "cutmix_minmax ({lo}, {hi}) must satisfy 0 <= min < max <= 1"
                ));
            }
        }
        Ok(())
    }

    /// Whether this ever changes a batch.
    pub fn is_active(&self) -> bool {
        self.prob > 0.0 && (self.mixup_alpha > 0.0 || self.cutmix_alpha > 0.0)
    }

    /// Whether batches of `epoch` (0-based) are mixed.
    pub fn active_in(&self, epoch: usize) -> bool {
        self.is_active() && self.off_epoch.is_none_or(|off| epoch < off)
    }

    /// timm's `_params_per_batch` / `_params_per_elem` for one draw: (lam, cutmix?).
    fn draw_lam(&self, rng: &mut Rng) -> (f32, bool) {
        if !(self.is_active() && rng.uniform() < self.prob) {
            return (1.0, false);
        }
        let cutmix = match (self.mixup_alpha > 0.0, self.cutmix_alpha > 0.0) {
            (true, true) => rng.uniform() < self.switch_prob,
            (false, true) => true,
            _ => false,
        };
        let alpha = if cutmix {
            self.cutmix_alpha
        } else {
            self.mixup_alpha
        };
        (beta(rng, alpha), cutmix)
    }

    /// timm's `cutmix_bbox_and_lam` with `correct_lam`: the box, and lam as the area
    /// fraction that stays the sample's own.
    fn draw(&self, shape: &BatchShape, rng: &mut Rng) -> Draw {
        let (lam, cutmix) = self.draw_lam(rng);
        if !cutmix || lam >= 1.0 {
            return Draw { lam, cut: None };
        }
        let (h, w) = (shape.height, shape.width);
        let cut = match self.cutmix_minmax {
            Some(mm) => box_from_minmax(h, w, mm, rng),
            None => box_from_lam(h, w, lam, rng),
        };
        Draw {
            lam: 1.0 - cut.area() as f32 / (h * w) as f32,
            cut: Some(cut),
        }
    }

    /// Mix `images` (normalized, laid out as `shape` says) in place and return how; the
    /// frames of a sample are mixed alike. The caller builds the soft targets from the
    /// returned [`Mix`] ([`Mix::targets`] of [`smoothed_one_hot`] rows).
    pub fn apply(&self, images: &mut [f32], shape: BatchShape, rng: &mut Rng) -> Mix {
        let b = shape.batch;
        let draws: Vec<Draw> = match self.mode {
            MixMode::Batch => vec![self.draw(&shape, rng); b],
            MixMode::Elem => (0..b).map(|_| self.draw(&shape, rng)).collect(),
            MixMode::Pair => {
                let mut d = vec![
                    Draw {
                        lam: 1.0,
                        cut: None
                    };
                    b
                ];
                for i in 0..b / 2 {
                    d[i] = self.draw(&shape, rng);
                    d[b - 1 - i] = d[i];
                }
                d
            }
        };
        // Mixing reads the unmixed partner: work from a copy (timm's `x.clone()`).
        let original = images.to_vec();
        let plane = shape.height * shape.width;
        for (i, d) in draws.iter().enumerate() {
            let j = b - 1 - i;
            if d.lam >= 1.0 || i == j {
                continue;
            }
            for t in 0..shape.time_steps {
                for c in 0..shape.channels {
                    let (to, from) = (shape.sample_plane(t, i, c), shape.sample_plane(t, j, c));
                    let own = &mut images[to..to + plane];
                    let other = &original[from..from + plane];
                    match d.cut {
                        Some(cut) => {
                            for y in cut.y0..cut.y1 {
                                let row = y * shape.width;
                                own[row + cut.x0..row + cut.x1]
                                    .copy_from_slice(&other[row + cut.x0..row + cut.x1]);
                            }
                        }
                        None => {
                            for (v, &o) in own.iter_mut().zip(other) {
                                *v = d.lam * *v + (1.0 - d.lam) * o;
                            }
                        }
                    }
                }
            }
        }
        let mut lam: Vec<f32> = draws.iter().map(|d| d.lam).collect();
        // A sample mixed with itself (the middle of an odd batch) is unchanged.
        if b % 2 == 1 {
            lam[b / 2] = 1.0;
        }
        Mix { lam }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mixup(alpha: f32, cutmix: f32) -> Mixup {
        Mixup {
            mixup_alpha: alpha,
            cutmix_alpha: cutmix,
            cutmix_minmax: None,
            prob: 1.0,
            switch_prob: 0.5,
            mode: MixMode::Batch,
            off_epoch: None,
        }
    }

    fn shape(batch: usize, h: usize, w: usize) -> BatchShape {
        BatchShape {
            time_steps: 1,
            batch,
            channels: 3,
            height: h,
            width: w,
        }
    }

    /// Sample `i`'s pixels all equal `i`: a mix's pixels tell which samples it holds.
    fn constant_images(s: &BatchShape) -> Vec<f32> {
        let n = s.channels * s.height * s.width;
        (0..s.batch)
            .flat_map(|i| std::iter::repeat_n(i as f32, n))
            .collect()
    }

    #[test]
    fn targets_sum_to_one_and_follow_timms_mixup_target() {
        let m = mixup(0.8, 1.0);
        let mut rng = Rng::new(5);
        let s = shape(6, 7, 9);
        let mut x = constant_images(&s);
        let labels = [0u32, 3, 3, 9, 1, 2];
        let mix = m.apply(&mut x, s, &mut rng);
        let q = mix.targets(&smoothed_one_hot(&labels, 10, 0.1), 10);
        for (i, row) in q.chunks(10).enumerate() {
            let sum: f32 = row.iter().sum();
            assert!((sum - 1.0).abs() < 1e-5, "row {i} sums to {sum}");
            // timm: y1 * lam + y2 * (1 - lam), y = one_hot(on 0.91, off 0.01).
            let (lam, j) = (mix.lam[i], 5 - i);
            for (c, &v) in row.iter().enumerate() {
                let y1 = if c == labels[i] as usize { 0.91 } else { 0.01 };
                let y2 = if c == labels[j] as usize { 0.91 } else { 0.01 };
                assert!((v - (y1 * lam + y2 * (1.0 - lam))).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn mixup_blends_each_sample_with_its_mirror() {
        let m = mixup(1.0, 0.0);
        let s = shape(4, 3, 5);
        let mut x = constant_images(&s);
        let mix = m.apply(&mut x, s, &mut Rng::new(9));
        let lam = mix.lam[0];
        assert!(lam > 0.0 && lam < 1.0 && mix.lam.iter().all(|&l| l == lam));
        let n = 3 * 3 * 5;
        for i in 0..4 {
            let want = lam * i as f32 + (1.0 - lam) * (3 - i) as f32;
            assert!(x[i * n..(i + 1) * n]
                .iter()
                .all(|v| (v - want).abs() < 1e-5));
        }
    }

    #[test]
    fn cutmix_pastes_a_box_and_corrects_lam_to_its_area() {
        let m = mixup(0.0, 1.0);
        let s = shape(2, 11, 13);
        for seed in 0..20 {
            let mut x = constant_images(&s);
            let mix = m.apply(&mut x, s, &mut Rng::new(seed));
            let plane = 11 * 13;
            // Sample 0 keeps its own value (0) outside the box, its mirror's (1) inside.
            let from_partner = x[..plane].iter().filter(|&&v| v == 1.0).count();
            let lam = 1.0 - from_partner as f32 / plane as f32;
            assert!((mix.lam[0] - lam).abs() < 1e-6, "seed {seed}");
            // All three channels alike.
            assert_eq!(x[..plane], x[plane..2 * plane]);
        }
    }

    #[test]
    fn cutmix_minmax_bounds_the_box_sides() {
        let m = Mixup {
            cutmix_minmax: Some((0.25, 0.5)),
            ..mixup(0.0, 1.0)
        };
        let s = shape(2, 16, 16);
        for seed in 0..50 {
            let mut x = constant_images(&s);
            let mix = m.apply(&mut x, s, &mut Rng::new(seed));
            let area = (1.0 - mix.lam[0]) * 256.0;
            assert!((16.0..=64.0).contains(&area), "seed {seed}: area {area}");
        }
    }

    #[test]
    fn elem_and_pair_modes_draw_per_sample_and_per_pair() {
        let s = shape(6, 4, 4);
        let elem = Mixup {
            mode: MixMode::Elem,
            ..mixup(1.0, 0.0)
        };
        let mix = elem.apply(&mut constant_images(&s), s, &mut Rng::new(3));
        assert!(mix.lam.windows(2).any(|w| w[0] != w[1]));
        let pair = Mixup {
            mode: MixMode::Pair,
            ..mixup(1.0, 0.0)
        };
        let mut x = constant_images(&s);
        let mix = pair.apply(&mut x, s, &mut Rng::new(3));
        for i in 0..3 {
            assert_eq!(mix.lam[i], mix.lam[5 - i]);
        }
        // Pair mixing conserves each pair's total.
        let n = 3 * 16;
        assert!((x[0] + x[5 * n] - 5.0).abs() < 1e-5);
    }

    #[test]
    fn no_mixing_leaves_the_batch_and_one_hot_targets() {
        let off = Mixup {
            prob: 0.0,
            ..mixup(1.0, 1.0)
        };
        let s = shape(3, 2, 2);
        let mut x = constant_images(&s);
        let mix = off.apply(&mut x, s, &mut Rng::new(1));
        assert_eq!(x, constant_images(&s));
        assert_eq!(mix, Mix::none(3));
        let rows = smoothed_one_hot(&[4, 0, 7], 10, 0.1);
        assert_eq!(mix.targets(&rows, 10), rows);
        let late = Mixup {
            off_epoch: Some(3),
            ..mixup(1.0, 0.0)
        };
        assert!(late.active_in(2) && !late.active_in(3));
    }

    #[test]
    fn an_odd_batchs_middle_sample_stays_itself() {
        let s = shape(5, 2, 2);
        let mut x = constant_images(&s);
        let mix = mixup(1.0, 0.0).apply(&mut x, s, &mut Rng::new(2));
        assert_eq!(mix.lam[2], 1.0);
        assert!(x[2 * 12..3 * 12].iter().all(|&v| v == 2.0));
    }

    #[test]
    fn beta_draws_have_the_right_mean_and_variance() {
        // Beta(a, a): mean 1/2, variance 1 / (4 (2a + 1)).
        let mut rng = Rng::new(11);
        for alpha in [0.2f32, 0.8, 1.0, 3.0] {
            let n = 20_000;
            let v: Vec<f64> = (0..n).map(|_| beta(&mut rng, alpha) as f64).collect();
            let mean = v.iter().sum::<f64>() / n as f64;
            let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
            let want = 1.0 / (4.0 * (2.0 * alpha as f64 + 1.0));
            assert!((mean - 0.5).abs() < 0.01, "alpha {alpha}: mean {mean}");
            assert!(
                (var - want).abs() < 0.1 * want,
                "alpha {alpha}: var {var} vs {want}"
            );
            assert!(v.iter().all(|x| (0.0..=1.0).contains(x)));
        }
    }

    #[test]
    fn bad_settings_are_named() {
        let e = Mixup {
            switch_prob: 1.5,
            ..mixup(1.0, 1.0)
        }
        .check()
        .unwrap_err()
        .to_string();
        assert!(e.contains("switch_prob 1.5"), "{e}");
        let e = Mixup {
            cutmix_minmax: Some((0.6, 0.2)),
            ..mixup(1.0, 1.0)
        }
        .check()
        .unwrap_err()
        .to_string();
        assert!(e.contains("cutmix_minmax"), "{e}");
        assert!("pairs".parse::<MixMode>().is_err());
        mixup(0.8, 1.0).check().unwrap();
    }
}
