use bitspike::ops::{
    max_pool2d, max_pool2d_backward, max_pool_out, mean_tokens, mean_tokens_backward,
};
use bitspike::reference::pool as rpool;
use bitspike::DType;

use crate::common::{assert_exact, contexts, ctx, Rng};
use crate::layers_common::{assert_close64, check_gradient, dot, to64};

/// (images, H, W, C)
const CASES: &[(usize, usize, usize, usize)] = &[
    (3, 7, 7, 5),
    (2, 9, 8, 3),
    (1, 1, 1, 1),
    (2, 2, 3, 6),
    (1, 32, 32, 4),
    // C a multiple of 4 (the vec4 kernels) on odd sizes.
    (2, 7, 5, 8),
];

#[test]
fn max_pool_output_size_matches_pytorch() {
    // floor((n + 2 * 1 - 3) / 2) + 1
    for (n, want) in [
        (1, 1),
        (2, 1),
        (3, 2),
        (7, 4),
        (8, 4),
        (9, 5),
        (32, 16),
        (16, 8),
    ] {
        assert_eq!(max_pool_out(n), want, "n = {n}");
    }
}

fn check_pool(values: impl Fn(&mut Rng, usize) -> Vec<f32>, seed: u64) {
    for ctx in contexts() {
        let mut rng = Rng::new(seed);
        for &(n, h, w, c) in CASES {
            let x = values(&mut rng, n * h * w * c);
            let (y_want, arg_want) = rpool::max_pool2d(&to64(&x), n, h, w, c);
            let tx = ctx.upload_f32(&x, &[n, h, w, c]).unwrap();
            let (y, arg) = max_pool2d(ctx, &tx).unwrap();
            let out_shape = [n, max_pool_out(h), max_pool_out(w), c];
            assert_eq!(y.shape(), &out_shape);
            assert_eq!(arg.shape(), &out_shape);
            assert_eq!(arg.dtype(), DType::U32);
            let what = format!("max pool {n}x{h}x{w}x{c}");
            assert_close64(
                &format!("{what} y"),
                &ctx.download_f32(&y).unwrap(),
                &y_want,
                0.0,
            );
            let got_arg: Vec<u32> = ctx.download_words(&arg).unwrap();
            assert_exact(&format!("{what} argmax"), &got_arg, &arg_want);

            let dy = rng.vec(y_want.len(), -1.0, 1.0);
            let dx_want = rpool::max_pool2d_backward(&to64(&dy), &arg_want, n, h, w, c);
            let tdy = ctx.upload_f32(&dy, &out_shape).unwrap();
            let dx = max_pool2d_backward(ctx, &tdy, &arg, &[n, h, w, c]).unwrap();
            assert_eq!(dx.shape(), &[n, h, w, c]);
            assert_close64(
                &format!("{what} dx"),
                &ctx.download_f32(&dx).unwrap(),
                &dx_want,
                1e-6,
            );
        }
    }
}

#[test]
fn max_pool_matches_reference_on_distinct_values() {
    check_pool(|rng, len| rng.vec(len, -1.0, 1.0), 41);
}

#[test]
fn max_pool_ties_go_to_the_first_maximum() {
    // Spikes (after a LIF) tie everywhere; negative inputs check that padding never wins.
    check_pool(|rng, len| rng.spikes(len, 0.3), 42);
    check_pool(
        |rng, len| rng.spikes(len, 0.5).iter().map(|v| v - 1.0).collect(),
        43,
    );
    let ctx = ctx();
    let x = ctx.upload_f32(&[0.0; 9], &[1, 3, 3, 1]).unwrap();
    let (_, arg) = max_pool2d(ctx, &x).unwrap();
    // Windows of outputs (0,0) (0,1) (1,0) (1,1) start at inputs 0, 1, 3, 4.
    assert_eq!(ctx.download_words::<u32>(&arg).unwrap(), vec![0, 1, 3, 4]);
}

#[test]
fn max_pool_reference_backward_matches_finite_differences() {
    let mut rng = Rng::new(44);
    let (n, h, w, c) = (2, 5, 4, 3);
    let x = to64(&rng.vec(n * h * w * c, -1.0, 1.0));
    let (y, arg) = rpool::max_pool2d(&x, n, h, w, c);
    let r = to64(&rng.vec(y.len(), -1.0, 1.0));
    let dx = rpool::max_pool2d_backward(&r, &arg, n, h, w, c);
    check_gradient(
        "max pool dx",
        &x,
        &dx,
        |v| dot(&rpool::max_pool2d(v, n, h, w, c).0, &r),
        1e-7,
        1e-6,
    );
}

#[test]
fn mean_tokens_forward_and_backward_match_reference() {
    for ctx in contexts() {
        let mut rng = Rng::new(45);
        for (t, b, n, c) in [(4, 3, 64, 6), (1, 1, 1, 1), (2, 5, 7, 130)] {
            let x = rng.vec(t * b * n * c, -1.0, 1.0);
            let tx = ctx.upload_f32(&x, &[t, b, n, c]).unwrap();
            let y = mean_tokens(ctx, &tx).unwrap();
            assert_eq!(y.shape(), &[b, c]);
            let what = format!("mean tokens {t}x{b}x{n}x{c}");
            let want = rpool::mean_tokens(&to64(&x), t, b, n, c);
            assert_close64(&what, &ctx.download_f32(&y).unwrap(), &want, 1e-5);
            let dy = rng.vec(b * c, -1.0, 1.0);
            let tdy = ctx.upload_f32(&dy, &[b, c]).unwrap();
            let dx = mean_tokens_backward(ctx, &tdy, &[t, b, n, c]).unwrap();
            assert_eq!(dx.shape(), &[t, b, n, c]);
            let want = rpool::mean_tokens_backward(&to64(&dy), t, b, n, c);
            assert_close64(
                &format!("{what} backward"),
                &ctx.download_f32(&dx).unwrap(),
                &want,
                1e-6,
            );
        }
    }
}

#[test]
fn mean_tokens_reference_backward_matches_finite_differences() {
    let mut rng = Rng::new(46);
    let (t, b, n, c) = (2, 3, 4, 5);
    let x = to64(&rng.vec(t * b * n * c, -1.0, 1.0));
    let r = to64(&rng.vec(b * c, -1.0, 1.0));
    let dx = rpool::mean_tokens_backward(&r, t, b, n, c);
    check_gradient(
        "mean tokens dx",
        &x,
        &dx,
        |v| dot(&rpool::mean_tokens(v, t, b, n, c), &r),
        1e-5,
        1e-8,
    );
}

#[test]
fn pools_reject_wrong_ranks() {
    let ctx = ctx();
    let x = ctx.zeros(&[4, 4, 3], DType::F32).unwrap();
    assert!(max_pool2d(ctx, &x).is_err());
    assert!(mean_tokens(ctx, &x).is_err());
    let dy = ctx.zeros(&[1, 2, 2, 3], DType::F32).unwrap();
    let arg = ctx.zeros(&[1, 2, 2, 3], DType::U32).unwrap();
    assert!(max_pool2d_backward(ctx, &dy, &arg, &[1, 5, 5, 3]).is_err());
    assert!(max_pool2d_backward(ctx, &dy, &arg, &[1, 4, 4, 3]).is_ok());
}
