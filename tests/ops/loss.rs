use bitspike::ops::loss::{argmax, cross_entropy, distill_soft, soft_cross_entropy};
use bitspike::reference;
use bitspike::DType;

use crate::common::{assert_close, ctx, Rng};

#[test]
fn cross_entropy_with_smoothing_matches_reference() {
    let ctx = ctx();
    let mut rng = Rng::new(31);
    for &(b, c) in &[(1, 1), (37, 10), (130, 100)] {
        let z = rng.vec(b * c, -4.0, 4.0);
        let labels: Vec<u32> = (0..b).map(|i| (i * 7 % c) as u32).collect();
        let tz = ctx.upload_f32(&z, &[b, c]).unwrap();
        let tl = ctx.upload_words(&labels, &[b], DType::U32).unwrap();
        for smoothing in [0.0, 0.1] {
            let out = cross_entropy(ctx, &tz, &tl, smoothing, 0.5).unwrap();
            let (l, g) = reference::loss::cross_entropy(&z, &labels, c, smoothing, 0.5);
            assert_close("ce loss", &ctx.download_f32(&out.losses).unwrap(), &l, 1e-4);
            assert_close(
                "ce grad",
                &ctx.download_f32(&out.dlogits).unwrap(),
                &g,
                1e-5,
            );
        }
    }
}

#[test]
fn cross_entropy_gradient_is_the_derivative_of_the_loss() {
    // Finite differences of the reference's mean loss against its gradient.
    let (c, smoothing) = (5, 0.1);
    let z: Vec<f32> = vec![0.3, -1.2, 2.0, 0.5, -0.1, 1.0, 0.0, -2.0, 0.7, 0.2];
    let labels = [2u32, 4];
    let mean = |z: &[f32]| {
        let (l, _) = reference::loss::cross_entropy(z, &labels, c, smoothing, 1.0);
        l.iter().map(|&v| v as f64).sum::<f64>() / 2.0
    };
    let (_, g) = reference::loss::cross_entropy(&z, &labels, c, smoothing, 1.0);
    for i in 0..z.len() {
        let (mut up, mut down) = (z.clone(), z.clone());
        up[i] += 1e-3;
        down[i] -= 1e-3;
        let fd = (mean(&up) - mean(&down)) / 2e-3;
        assert!(
            (fd - g[i] as f64).abs() < 1e-4,
            "index {i}: fd {fd}, grad {}",
            g[i]
        );
    }
}

#[test]
fn soft_target_cross_entropy_matches_reference_and_one_hot_targets() {
    let ctx = ctx();
    let mut rng = Rng::new(34);
    for &(b, c) in &[(1, 1), (23, 10), (67, 100)] {
        let z = rng.vec(b * c, -4.0, 4.0);
        // Mixup's targets: two smoothed one-hot rows mixed with a weight lam.
        let (smoothing, lam) = (0.1f32, 0.7f32);
        let off = smoothing / c as f32;
        let mut q = vec![lam * off + (1.0 - lam) * off; b * c];
        let labels: Vec<u32> = (0..b).map(|i| (i * 3 % c) as u32).collect();
        for (i, &l) in labels.iter().enumerate() {
            let other = labels[b - 1 - i] as usize;
            q[i * c + l as usize] += lam * (1.0 - smoothing);
            q[i * c + other] += (1.0 - lam) * (1.0 - smoothing);
        }
        let tz = ctx.upload_f32(&z, &[b, c]).unwrap();
        let tq = ctx.upload_f32(&q, &[b, c]).unwrap();
        let out = soft_cross_entropy(ctx, &tz, &tq, 0.5).unwrap();
        let (l, g) = reference::loss::soft_cross_entropy(&z, &q, c, 0.5);
        assert_close(
            "soft ce loss",
            &ctx.download_f32(&out.losses).unwrap(),
            &l,
            1e-4,
        );
        assert_close(
            "soft ce grad",
            &ctx.download_f32(&out.dlogits).unwrap(),
            &g,
            1e-5,
        );
        // With lam = 1 the targets are the label-smoothed one-hot rows: plain CE.
        let mut one_hot = vec![off; b * c];
        for (i, &l) in labels.iter().enumerate() {
            one_hot[i * c + l as usize] += 1.0 - smoothing;
        }
        let soft =
            soft_cross_entropy(ctx, &tz, &ctx.upload_f32(&one_hot, &[b, c]).unwrap(), 1.0).unwrap();
        let tl = ctx.upload_words(&labels, &[b], DType::U32).unwrap();
        let hard = cross_entropy(ctx, &tz, &tl, smoothing, 1.0).unwrap();
        assert_close(
            "one-hot soft ce = ce",
            &ctx.download_f32(&soft.losses).unwrap(),
            &ctx.download_f32(&hard.losses).unwrap(),
            1e-4,
        );
    }
    let tz = ctx.upload_f32(&[0.0; 6], &[2, 3]).unwrap();
    let bad = ctx.upload_f32(&[0.0; 6], &[3, 2]).unwrap();
    assert!(soft_cross_entropy(ctx, &tz, &bad, 1.0).is_err());
}

#[test]
fn soft_target_cross_entropy_gradient_is_the_derivative_of_the_loss() {
    let c = 4;
    let z: Vec<f32> = vec![0.3, -1.2, 2.0, 0.5, -0.1, 1.0, 0.0, -2.0];
    let q: Vec<f32> = vec![0.1, 0.6, 0.2, 0.1, 0.25, 0.25, 0.4, 0.1];
    let mean = |z: &[f32]| {
        let (l, _) = reference::loss::soft_cross_entropy(z, &q, c, 1.0);
        l.iter().map(|&v| v as f64).sum::<f64>() / 2.0
    };
    let (_, g) = reference::loss::soft_cross_entropy(&z, &q, c, 1.0);
    for i in 0..z.len() {
        let (mut up, mut down) = (z.clone(), z.clone());
        up[i] += 1e-3;
        down[i] -= 1e-3;
        let fd = (mean(&up) - mean(&down)) / 2e-3;
        assert!(
            (fd - g[i] as f64).abs() < 1e-4,
            "index {i}: fd {fd}, grad {}",
            g[i]
        );
    }
}

#[test]
fn soft_distillation_matches_reference_and_vanishes_on_the_teacher() {
    let ctx = ctx();
    let mut rng = Rng::new(32);
    let (b, c) = (19, 10);
    let z = rng.vec(b * c, -3.0, 3.0);
    let t = rng.vec(b * c, -3.0, 3.0);
    let tz = ctx.upload_f32(&z, &[b, c]).unwrap();
    let tt = ctx.upload_f32(&t, &[b, c]).unwrap();
    let out = distill_soft(ctx, &tz, &tt, 3.0, 0.5).unwrap();
    let (l, g) = reference::loss::distill_soft(&z, &t, c, 3.0, 0.5);
    assert_close("kd loss", &ctx.download_f32(&out.losses).unwrap(), &l, 1e-4);
    assert_close(
        "kd grad",
        &ctx.download_f32(&out.dlogits).unwrap(),
        &g,
        1e-5,
    );
    let same = distill_soft(ctx, &tt, &tt, 3.0, 1.0).unwrap();
    assert!(ctx
        .download_f32(&same.losses)
        .unwrap()
        .iter()
        .all(|v| v.abs() < 1e-6));
}

#[test]
fn argmax_matches_reference_and_checks_shapes() {
    let ctx = ctx();
    let z = Rng::new(33).vec(77 * 13, -1.0, 1.0);
    let got: Vec<u32> = ctx
        .download_words(&argmax(ctx, &ctx.upload_f32(&z, &[77, 13]).unwrap()).unwrap())
        .unwrap();
    assert_eq!(got, reference::loss::argmax(&z, 13));
    let flat = ctx.upload_f32(&z, &[77 * 13]).unwrap();
    assert!(argmax(ctx, &flat)
        .unwrap_err()
        .to_string()
        .contains("logits [batch, classes]"));
}
