use bitspike::ops::{channel_sum_into, BatchNorm};
use bitspike::reference::norm as rnorm;
use bitspike::{DType, GpuContext, Tensor};

use crate::common::{contexts, ctx, Rng};
use crate::layers_common::{assert_close64, check_gradient, dot, to64};

/// (rows, C, offset added to x): rows not a multiple of the 256-wide workgroups, several
/// row groups, C below and above the 64-channel block, and a large mean (accuracy of
/// the variance).
const CASES: &[(usize, usize, f32)] = &[
    (1000, 6, 0.0),
    (37, 70, 0.0),
    (2, 1, 0.0),
    (3000, 5, 100.0),
    (513, 130, -3.0),
    // C a multiple of 4 (the vec4 kernels), with more than 64 vec4 channels in the last.
    (999, 8, 0.0),
    (4001, 4, 50.0),
    (301, 300, 1.0),
];

#[test]
fn channel_sum_matches_reference() {
    for ctx in contexts() {
        let mut rng = Rng::new(31);
        for &(rows, c, off) in CASES.iter().chain(&[(20000, 3, 0.0)]) {
            let x: Vec<f32> = rng
                .vec(rows * c, -1.0, 1.0)
                .iter()
                .map(|v| v + off)
                .collect();
            let want = rnorm::channel_sum(&to64(&x), c);
            let tx = ctx.upload_f32(&x, &[rows, c]).unwrap();
            let init = rng.vec(c, -1.0, 1.0);
            let out = ctx.upload_f32(&init, &[c]).unwrap();
            channel_sum_into(ctx, &tx, &out, false).unwrap();
            let what = format!("channel sum {rows}x{c}");
            let tol = 1e-4 * (1.0 + off.abs());
            assert_close64(&what, &ctx.download_f32(&out).unwrap(), &want, tol);
            channel_sum_into(ctx, &tx, &out, true).unwrap();
            let twice: Vec<f64> = want.iter().map(|v| 2.0 * v).collect();
            assert_close64(
                &format!("{what} accumulated"),
                &ctx.download_f32(&out).unwrap(),
                &twice,
                tol,
            );
        }
    }
}

struct Layer {
    weight: Vec<f32>,
    bias: Vec<f32>,
    running_mean: Vec<f32>,
    running_var: Vec<f32>,
}

struct GpuLayer {
    weight: Tensor,
    bias: Tensor,
    running_mean: Tensor,
    running_var: Tensor,
}

impl Layer {
    fn random(rng: &mut Rng, c: usize) -> Self {
        Layer {
            weight: rng.vec(c, 0.5, 1.5),
            bias: rng.vec(c, -0.5, 0.5),
            running_mean: rng.vec(c, -0.2, 0.2),
            running_var: rng.vec(c, 0.5, 2.0),
        }
    }

    fn upload(&self, ctx: &GpuContext) -> GpuLayer {
        let c = self.weight.len();
        let up = |v: &[f32]| ctx.upload_f32(v, &[c]).unwrap();
        GpuLayer {
            weight: up(&self.weight),
            bias: up(&self.bias),
            running_mean: up(&self.running_mean),
            running_var: up(&self.running_var),
        }
    }
}

impl GpuLayer {
    fn bn(&self) -> BatchNorm<'_> {
        BatchNorm::new(
            &self.weight,
            &self.bias,
            &self.running_mean,
            &self.running_var,
        )
    }
}

fn input(rng: &mut Rng, rows: usize, c: usize, off: f32) -> Vec<f32> {
    rng.vec(rows * c, -2.0, 2.0)
        .iter()
        .map(|v| v + off)
        .collect()
}

#[test]
fn batch_norm_train_matches_reference_and_updates_running_stats() {
    for ctx in contexts() {
        let mut rng = Rng::new(32);
        for &(rows, c, off) in CASES {
            let layer = Layer::random(&mut rng, c);
            let x = input(&mut rng, rows, c, off);
            let mut rm = to64(&layer.running_mean);
            let mut rv = to64(&layer.running_var);
            let want = rnorm::batch_norm_train(
                &to64(&x),
                c,
                &to64(&layer.weight),
                &to64(&layer.bias),
                &mut rm,
                &mut rv,
                1e-5,
                0.1,
            );
            let g = layer.upload(ctx);
            // Tokens [T, B, N, C]: every leading axis is a row.
            let tx = ctx.upload_f32(&x, &[1, rows, 1, c]).unwrap();
            let (y, stats) = g.bn().forward_train(ctx, &tx).unwrap();
            assert_eq!(y.shape(), tx.shape());
            assert_eq!(stats.shape(), &[2, c]);
            let what = format!("bn train {rows}x{c}+{off}");
            assert_close64(
                &format!("{what} y"),
                &ctx.download_f32(&y).unwrap(),
                &want.y,
                2e-4,
            );
            let s = ctx.download_f32(&stats).unwrap();
            assert_close64(
                &format!("{what} mean"),
                &s[..c],
                &want.mean,
                1e-5 * (1.0 + off.abs()),
            );
            assert_close64(&format!("{what} inv_std"), &s[c..], &want.inv_std, 2e-4);
            assert_close64(
                &format!("{what} running mean"),
                &ctx.download_f32(&g.running_mean).unwrap(),
                &rm,
                1e-5 * (1.0 + off.abs()),
            );
            assert_close64(
                &format!("{what} running var"),
                &ctx.download_f32(&g.running_var).unwrap(),
                &rv,
                2e-4,
            );
        }
    }
}

#[test]
fn batch_norm_eval_uses_running_stats() {
    for ctx in contexts() {
        let mut rng = Rng::new(33);
        for &(rows, c, off) in CASES {
            let layer = Layer::random(&mut rng, c);
            let x = input(&mut rng, rows, c, off);
            let want = rnorm::batch_norm_eval(
                &to64(&x),
                c,
                &to64(&layer.weight),
                &to64(&layer.bias),
                &to64(&layer.running_mean),
                &to64(&layer.running_var),
                1e-5,
            );
            let g = layer.upload(ctx);
            let tx = ctx.upload_f32(&x, &[rows, c]).unwrap();
            let y = g.bn().forward_eval(ctx, &tx).unwrap();
            let tol = 1e-4 * (1.0 + off.abs());
            assert_close64(
                &format!("bn eval {rows}x{c}"),
                &ctx.download_f32(&y).unwrap(),
                &want,
                tol,
            );
            // Eval leaves the running statistics alone.
            assert_eq!(ctx.download_f32(&g.running_var).unwrap(), layer.running_var);
            assert_eq!(
                ctx.download_f32(&g.running_mean).unwrap(),
                layer.running_mean
            );
        }
    }
}

#[test]
fn batch_norm_backward_matches_reference() {
    for ctx in contexts() {
        let mut rng = Rng::new(34);
        for &(rows, c, off) in CASES {
            let layer = Layer::random(&mut rng, c);
            let x = input(&mut rng, rows, c, off);
            let dy = rng.vec(rows * c, -1.0, 1.0);
            let (mut rm, mut rv) = (to64(&layer.running_mean), to64(&layer.running_var));
            let w64 = to64(&layer.weight);
            let fwd = rnorm::batch_norm_train(
                &to64(&x),
                c,
                &w64,
                &to64(&layer.bias),
                &mut rm,
                &mut rv,
                1e-5,
                0.1,
            );
            let (dx, dweight, dbias) =
                rnorm::batch_norm_backward(&to64(&x), &to64(&dy), c, &w64, &fwd.mean, &fwd.inv_std);
            let g = layer.upload(ctx);
            let tx = ctx.upload_f32(&x, &[rows, c]).unwrap();
            let (_, stats) = g.bn().forward_train(ctx, &tx).unwrap();
            let tdy = ctx.upload_f32(&dy, &[rows, c]).unwrap();
            let dw0 = rng.vec(c, -1.0, 1.0);
            let db0 = rng.vec(c, -1.0, 1.0);
            let tdw = ctx.upload_f32(&dw0, &[c]).unwrap();
            let tdb = ctx.upload_f32(&db0, &[c]).unwrap();
            let tdx = g.bn().backward(ctx, &tx, &tdy, &stats, &tdw, &tdb).unwrap();
            let what = format!("bn backward {rows}x{c}+{off}");
            // dx is a difference of O(1) terms; its scale is weight * inv_std.
            assert_close64(
                &format!("{what} dx"),
                &ctx.download_f32(&tdx).unwrap(),
                &dx,
                5e-4,
            );
            let acc = |g: &[f64], g0: &[f32]| -> Vec<f64> {
                g.iter().zip(g0).map(|(a, &b)| a + b as f64).collect()
            };
            let tol = 2e-4 * (rows as f32).sqrt();
            assert_close64(
                &format!("{what} dweight"),
                &ctx.download_f32(&tdw).unwrap(),
                &acc(&dweight, &dw0),
                tol,
            );
            assert_close64(
                &format!("{what} dbias"),
                &ctx.download_f32(&tdb).unwrap(),
                &acc(&dbias, &db0),
                tol,
            );
        }
    }
}

#[test]
fn batch_norm_reference_backward_matches_finite_differences() {
    let mut rng = Rng::new(35);
    for (rows, c) in [(7, 3), (2, 1), (16, 2)] {
        let x = to64(&rng.vec(rows * c, -2.0, 2.0));
        let weight = to64(&rng.vec(c, 0.5, 1.5));
        let bias = to64(&rng.vec(c, -0.5, 0.5));
        let r = to64(&rng.vec(rows * c, -1.0, 1.0));
        let loss = |x: &[f64], w: &[f64], b: &[f64]| {
            let (mut rm, mut rv) = (vec![0.0; c], vec![1.0; c]);
            dot(
                &rnorm::batch_norm_train(x, c, w, b, &mut rm, &mut rv, 1e-5, 0.1).y,
                &r,
            )
        };
        let (mut rm, mut rv) = (vec![0.0; c], vec![1.0; c]);
        let fwd = rnorm::batch_norm_train(&x, c, &weight, &bias, &mut rm, &mut rv, 1e-5, 0.1);
        let (dx, dw, db) = rnorm::batch_norm_backward(&x, &r, c, &weight, &fwd.mean, &fwd.inv_std);
        let what = format!("bn {rows}x{c}");
        check_gradient(
            &format!("{what} dx"),
            &x,
            &dx,
            |v| loss(v, &weight, &bias),
            1e-6,
            1e-6,
        );
        check_gradient(
            &format!("{what} dweight"),
            &weight,
            &dw,
            |v| loss(&x, v, &bias),
            1e-6,
            1e-6,
        );
        check_gradient(
            &format!("{what} dbias"),
            &bias,
            &db,
            |v| loss(&x, &weight, v),
            1e-6,
            1e-6,
        );
    }
}

#[test]
fn batch_norm_training_needs_two_rows_and_matching_shapes() {
    let ctx = ctx();
    let mut rng = Rng::new(36);
    let g = Layer::random(&mut rng, 4).upload(ctx);
    let one = ctx.zeros(&[1, 4], DType::F32).unwrap();
    let err = g.bn().forward_train(ctx, &one).unwrap_err();
    assert!(err.to_string().contains("more than one value"), "{err}");
    assert!(g.bn().forward_eval(ctx, &one).is_ok());
    let wrong = ctx.zeros(&[8, 5], DType::F32).unwrap();
    let err = g.bn().forward_train(ctx, &wrong).unwrap_err();
    assert!(err.to_string().contains("shape mismatch"), "{err}");
}
