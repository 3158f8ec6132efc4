use bitspike::ops::{
    add, add_avg, add_avg_backward, add_backward, add_bias_into, axpy_into, copy_range, lerp_into,
    relu, relu_backward, scale, weighted_sum,
};
use bitspike::reference::elementwise as rew;
use bitspike::DType;

use crate::common::{contexts, ctx, Rng};
use crate::layers_common::{assert_close64, to64};

const LENS: &[usize] = &[1, 257, 1000];

#[test]
fn weighted_sums_match_reference() {
    for ctx in contexts() {
        let mut rng = Rng::new(51);
        for &len in LENS {
            let a = rng.vec(len, -1.0, 1.0);
            let b = rng.vec(len, -1.0, 1.0);
            let c = rng.vec(len, -1.0, 1.0);
            let shape = [len];
            let (ta, tb, tc) = (
                ctx.upload_f32(&a, &shape).unwrap(),
                ctx.upload_f32(&b, &shape).unwrap(),
                ctx.upload_f32(&c, &shape).unwrap(),
            );
            let (a6, b6, c6) = (to64(&a), to64(&b), to64(&c));
            let cases = [
                (
                    "add",
                    add(ctx, &ta, &tb).unwrap(),
                    rew::weighted_sum(&[(1.0, &a6), (1.0, &b6)]),
                ),
                (
                    "add_avg",
                    add_avg(ctx, &ta, &tb, &tc).unwrap(),
                    rew::weighted_sum(&[(1.0, &a6), (0.5, &b6), (0.5, &c6)]),
                ),
                (
                    "scale",
                    scale(ctx, &ta, -3.0).unwrap(),
                    rew::weighted_sum(&[(-3.0, &a6)]),
                ),
                (
                    "reversible inverse",
                    weighted_sum(ctx, &[(2.0, &ta), (-2.0, &tb), (-1.0, &tc)]).unwrap(),
                    rew::weighted_sum(&[(2.0, &a6), (-2.0, &b6), (-1.0, &c6)]),
                ),
            ];
            for (what, got, want) in cases {
                assert_eq!(got.shape(), &shape);
                assert_close64(
                    &format!("{what} {len}"),
                    &ctx.download_f32(&got).unwrap(),
                    &want,
                    1e-6,
                );
            }
            let (da, d_bc) = add_avg_backward(ctx, &tc).unwrap();
            assert_close64(
                "add_avg backward da",
                &ctx.download_f32(&da).unwrap(),
                &c6,
                0.0,
            );
            let half: Vec<f64> = c6.iter().map(|v| v / 2.0).collect();
            assert_close64(
                "add_avg backward db",
                &ctx.download_f32(&d_bc).unwrap(),
                &half,
                0.0,
            );
            let (da, db) = add_backward(&tc);
            assert_eq!(ctx.download_f32(&da).unwrap(), c);
            assert_eq!(ctx.download_f32(&db).unwrap(), c);
        }
    }
}

#[test]
fn axpy_lerp_bias_and_copy_range_match_reference() {
    for ctx in contexts() {
        let mut rng = Rng::new(52);
        for &(rows, ch) in &[(1usize, 1usize), (37, 6), (100, 70)] {
            let y = rng.vec(rows * ch, -1.0, 1.0);
            let x = rng.vec(rows * ch, -1.0, 1.0);
            let bias = rng.vec(ch, -1.0, 1.0);
            let ty = ctx.upload_f32(&y, &[rows, ch]).unwrap();
            let tx = ctx.upload_f32(&x, &[rows, ch]).unwrap();
            axpy_into(ctx, &ty, &tx, 0.25).unwrap();
            let want = rew::weighted_sum(&[(1.0, &to64(&y)), (0.25, &to64(&x))]);
            assert_close64("axpy", &ctx.download_f32(&ty).unwrap(), &want, 1e-6);
            let ema = ctx.upload_f32(&y, &[rows, ch]).unwrap();
            lerp_into(ctx, &ema, &tx, 0.3).unwrap();
            let lerped = rew::lerp(&to64(&y), &to64(&x), 0.3);
            assert_close64("lerp", &ctx.download_f32(&ema).unwrap(), &lerped, 1e-6);
            let tb = ctx.upload_f32(&bias, &[ch]).unwrap();
            add_bias_into(ctx, &ty, &tb).unwrap();
            let want = rew::add_bias(&want, &to64(&bias));
            assert_close64("add_bias", &ctx.download_f32(&ty).unwrap(), &want, 1e-6);

            // Copy the middle third of x into the last third of a zero tensor.
            let len = rows * ch / 3;
            let dst = ctx.zeros(&[rows * ch], DType::F32).unwrap();
            copy_range(ctx, &tx, len, &dst, rows * ch - len, len).unwrap();
            let mut want = vec![0.0; rows * ch];
            want[rows * ch - len..].copy_from_slice(&x[len..2 * len]);
            assert_eq!(ctx.download_f32(&dst).unwrap(), want);
        }
    }
}

#[test]
fn elementwise_ops_reject_bad_arguments() {
    let ctx = ctx();
    let a = ctx.zeros(&[4], DType::F32).unwrap();
    let b = ctx.zeros(&[5], DType::F32).unwrap();
    assert!(add(ctx, &a, &b).is_err());
    assert!(weighted_sum(ctx, &[]).is_err());
    assert!(weighted_sum(ctx, &[(1.0, &a); 4]).is_err());
    assert!(axpy_into(ctx, &a, &a, 1.0).is_err());
    assert!(lerp_into(ctx, &a, &a, 0.5).is_err());
    assert!(lerp_into(ctx, &a, &b, 0.5).is_err());
    assert!(add_bias_into(ctx, &a, &b).is_err());
    assert!(copy_range(ctx, &a, 2, &b, 0, 3).is_err());
    assert!(copy_range(ctx, &a, 0, &a, 1, 2).is_err());
}

#[test]
fn relu_and_its_backward_match_reference() {
    for ctx in contexts() {
        let mut rng = Rng::new(57);
        for &len in LENS {
            let x = rng.vec(len, -1.0, 1.0);
            let dy = rng.vec(len, -1.0, 1.0);
            let tx = ctx.upload_f32(&x, &[len]).unwrap();
            let tdy = ctx.upload_f32(&dy, &[len]).unwrap();
            let y = relu(ctx, &tx).unwrap();
            assert_close64(
                &format!("relu {len}"),
                &ctx.download_f32(&y).unwrap(),
                &rew::relu(&to64(&x)),
                0.0,
            );
            let dx = relu_backward(ctx, &tdy, &tx).unwrap();
            assert_close64(
                &format!("relu_backward {len}"),
                &ctx.download_f32(&dx).unwrap(),
                &rew::relu_backward(&to64(&dy), &to64(&x)),
                0.0,
            );
            assert!(relu_backward(ctx, &tdy, &y.reshape(&[1, len]).unwrap()).is_err());
        }
    }
}
