use bitspike::ops::{
    binarize_weights, conv3x3_quant, linear_quant, pack_bits, pow2_scale, rescaw_backward,
    rescaw_quantize, sum_planes, PackMode,
};
use bitspike::reference::{binary_matmul as rbm, conv as rconv, quant as rq};
use bitspike::DType;

use crate::common::{assert_close, contexts, ctx, Rng};
use crate::layers_common::{assert_close64, check_gradient, dot, to64};

/// (C_out, K): one past a word, conv fan-ins, several workgroup strides.
const CASES: &[(usize, usize)] = &[(5, 33), (3, 27), (7, 129), (2, 300), (1, 1)];

/// The GPU's quantization of `w` against the reference at the GPU's own gamma: codes agree
/// except within rounding of a code boundary.
fn check_quantizer(ctx: &bitspike::GpuContext, w: &[f32], c_out: usize, k: usize, bits: u32) {
    let what = format!("rescaw {c_out}x{k} b{bits}");
    let tw = ctx.upload_f32(w, &[c_out, k]).unwrap();
    let q = rescaw_quantize(ctx, &tw, bits).unwrap();
    assert_eq!(q.planes.shape(), &[bits as usize * c_out, k]);
    assert_eq!(q.planes.dtype(), DType::PackedBits);
    let want = rq::rescaw(w, c_out, k, bits);
    let gamma = ctx.download_f32(&q.gamma).unwrap();
    assert_close(&format!("{what} gamma"), &gamma, &want.gamma, 1e-5);
    let got_q = ctx.download_f32(&q.q).unwrap();
    // Codes from the planes, read back bit by bit.
    let planes: Vec<u32> = ctx.download_words(&q.planes).unwrap();
    let signs =
        bitspike::reference::pack::unpack_bits(&planes, bits as usize * c_out, k, PackMode::Signs);
    for o in 0..c_out {
        for j in 0..k {
            let i = o * k + j;
            let code: u32 = (0..bits as usize)
                .map(|b| u32::from(signs[(b * c_out + o) * k + j] > 0.0) << b)
                .sum();
            let (want_code, x) = rq::code_of(w[i], gamma[o], bits);
            if (x - x.floor() - 0.5).abs() > 1e-3 {
                assert_eq!(code, want_code, "{what}: code {i} (w {}, x {x})", w[i]);
            }
            let deq = rq::dequantize(code, gamma[o], bits);
            assert!(
                (got_q[i] - deq).abs() <= 1e-5,
                "{what}: Q {i} is not its code"
            );
        }
    }
    let scale = ctx.download_f32(&q.plane_scale).unwrap();
    assert_close(
        &format!("{what} plane scales"),
        &scale,
        &rq::plane_scale(&gamma, bits),
        1e-6,
    );
}

#[test]
fn rescaw_matches_reference_for_every_width() {
    for ctx in contexts() {
        let mut rng = Rng::new(91);
        for bits in 1..=8 {
            for &(c_out, k) in CASES {
                let w = rng.vec(c_out * k, -1.0, 1.0);
                check_quantizer(ctx, &w, c_out, k, bits);
            }
        }
    }
}

#[test]
fn rescaw_known_values() {
    let ctx = ctx();
    // gamma = mean|w| = 1; 2 bits: n = 1.5, codes round((clamp(w) + 1) 1.5).
    let w = [-1.5, -0.5, 0.5, 1.5, 0.0, 0.0, 0.0, 0.0];
    let tw = ctx.upload_f32(&w, &[2, 4]).unwrap();
    let q = rescaw_quantize(ctx, &tw, 2).unwrap();
    let got = ctx.download_f32(&q.q).unwrap();
    // Codes 0, 1 (0.75), 2 (2.25), 3: Q = -1, -1/3, 1/3, 1. A zero channel quantizes to 0
    // (code round(1.5) = 2, gamma 0).
    let want = [-1.0, -1.0 / 3.0, 1.0 / 3.0, 1.0, 0.0, 0.0, 0.0, 0.0];
    assert_close("rescaw 2-bit", &got, &want, 1e-6);
    assert!(rescaw_quantize(ctx, &tw, 0).is_err());
    assert!(rescaw_quantize(ctx, &tw, 9).is_err());
}

#[test]
fn rescaw_backward_matches_reference() {
    for ctx in contexts() {
        let mut rng = Rng::new(92);
        for &(c_out, k) in CASES {
            let w = rng.vec(c_out * k, -1.5, 1.5);
            let g = rng.vec(c_out * k, -1.0, 1.0);
            let dw0 = rng.vec(c_out * k, -1.0, 1.0);
            let tw = ctx.upload_f32(&w, &[c_out, k]).unwrap();
            let q = rescaw_quantize(ctx, &tw, 4).unwrap();
            let gamma = to64(&ctx.download_f32(&q.gamma).unwrap());
            let want: Vec<f64> = rq::rescaw_backward(&to64(&w), &gamma, &to64(&g), k)
                .iter()
                .zip(&dw0)
                .map(|(a, &b)| a + b as f64)
                .collect();
            let tg = ctx.upload_f32(&g, &[c_out, k]).unwrap();
            let tdw = ctx.upload_f32(&dw0, &[c_out, k]).unwrap();
            rescaw_backward(ctx, &tw, &q.gamma, &tg, &tdw).unwrap();
            let what = format!("rescaw backward {c_out}x{k}");
            assert_close64(&what, &ctx.download_f32(&tdw).unwrap(), &want, 1e-6);
        }
    }
}

#[test]
fn rescaw_reference_backward_matches_finite_differences() {
    // Straight-through round with gamma detached: the backward is the exact gradient of
    // <g, clamp(w, -gamma, gamma)> (away from the clamp's two kinks).
    let mut rng = Rng::new(93);
    let (c_out, k) = (3, 11);
    let w = to64(&rng.vec(c_out * k, -1.5, 1.5));
    let g = to64(&rng.vec(c_out * k, -1.0, 1.0));
    let gamma: Vec<f64> = w
        .chunks(k)
        .map(|r| r.iter().map(|v| v.abs()).sum::<f64>() / k as f64)
        .collect();
    let smooth: Vec<f64> = w
        .iter()
        .enumerate()
        .map(|(i, v)| {
            if (v.abs() - gamma[i / k]).abs() < 1e-3 {
                v + 0.01
            } else {
                *v
            }
        })
        .collect();
    let dw = rq::rescaw_backward(&smooth, &gamma, &g, k);
    assert!(dw.contains(&0.0) && dw.iter().any(|v| *v != 0.0));
    check_gradient(
        "rescaw",
        &smooth,
        &dw,
        |v| dot(&rq::rescaw_surrogate(v, &gamma, k), &g),
        1e-6,
        1e-6,
    );
}

#[test]
fn sum_planes_matches_reference() {
    for ctx in contexts() {
        let mut rng = Rng::new(94);
        for (rows, c, planes) in [(7, 5, 3), (1, 1, 1), (33, 17, 8)] {
            let y = rng.vec(rows * planes * c, -4.0, 4.0);
            let s = rng.vec(planes * c, -1.0, 1.0);
            let ty = ctx.upload_f32(&y, &[rows, planes * c]).unwrap();
            let ts = ctx.upload_f32(&s, &[planes * c]).unwrap();
            let got = sum_planes(ctx, &ty, &ts, planes as u32).unwrap();
            assert_eq!(got.shape(), &[rows, c]);
            let want = rq::sum_planes(&y, &s, rows, c, planes);
            assert_close("sum_planes", &ctx.download_f32(&got).unwrap(), &want, 1e-5);
        }
        let ty = ctx.zeros(&[2, 7], DType::F32).unwrap();
        let ts = ctx.zeros(&[7], DType::F32).unwrap();
        assert!(sum_planes(ctx, &ty, &ts, 2).is_err());
    }
}

/// The b-bit linear on bit-planes equals x Q^T with the dequantized weights.
#[test]
fn linear_quant_matches_dequantized_matmul() {
    for ctx in contexts() {
        let mut rng = Rng::new(95);
        for bits in [1, 2, 4, 8] {
            for (m, k, n) in [(37, 97, 53), (1, 1, 1), (5, 200, 3), (9, 129, 31)] {
                let w = rng.vec(n * k, -1.0, 1.0);
                let tw = ctx.upload_f32(&w, &[n, k]).unwrap();
                let q = rescaw_quantize(ctx, &tw, bits).unwrap();
                let deq = ctx.download_f32(&q.q).unwrap();
                let what = format!("linear_quant b{bits} {m}x{k}x{n}");
                // Spikes, packed: AND-popcount planes.
                let s = rng.spikes(m * k, 0.3);
                let ts = ctx.upload_f32(&s, &[m, k]).unwrap();
                let sb = pack_bits(ctx, &ts, PackMode::Spikes).unwrap();
                let got = linear_quant(ctx, &sb, &q).unwrap();
                assert_eq!(got.shape(), &[m, n]);
                let want = rbm::dot_rows(&s, &deq, None, m, n, k);
                assert_close(
                    &format!("{what} spikes"),
                    &ctx.download_f32(&got).unwrap(),
                    &want,
                    1e-4,
                );
                // f32 activations, batched leading axes.
                let x = rng.vec(m * k, -1.0, 1.0);
                let tx = ctx.upload_f32(&x, &[1, m, k]).unwrap();
                let got = linear_quant(ctx, &tx, &q).unwrap();
                assert_eq!(got.shape(), &[1, m, n]);
                let want = rbm::dot_rows(&x, &deq, None, m, n, k);
                assert_close(
                    &format!("{what} f32"),
                    &ctx.download_f32(&got).unwrap(),
                    &want,
                    1e-4,
                );
            }
        }
    }
}

#[test]
fn conv3x3_quant_matches_dequantized_conv() {
    for ctx in contexts() {
        let mut rng = Rng::new(96);
        for bits in [1, 2, 4, 8] {
            let (images, h, w_, c_in, c_out) = (3, 5, 7, 3, 5);
            let k = 9 * c_in;
            let w = rng.vec(c_out * k, -1.0, 1.0);
            let tw = ctx.upload_f32(&w, &[c_out, k]).unwrap();
            let q = rescaw_quantize(ctx, &tw, bits).unwrap();
            let deq = ctx.download_f32(&q.q).unwrap();
            let x = rng.spikes(images * h * w_ * c_in, 0.4);
            let tx = ctx.upload_f32(&x, &[images, h, w_, c_in]).unwrap();
            let got = conv3x3_quant(ctx, &tx, &q).unwrap();
            assert_eq!(got.shape(), &[images, h, w_, c_out]);
            let want = rconv::conv3x3(
                &to64(&x),
                &to64(&deq),
                rconv::ConvDims {
                    images,
                    h,
                    w: w_,
                    c_in,
                    c_out,
                },
            );
            assert_close64(
                &format!("conv3x3_quant b{bits}"),
                &ctx.download_f32(&got).unwrap(),
                &want,
                1e-4,
            );
        }
    }
}

#[test]
fn pow2_scale_matches_reference() {
    for ctx in contexts() {
        let mut rng = Rng::new(97);
        // (K = 2 is left out: its mean |w_hat| is 2^-0.5, a rounding tie.)
        for &(c_out, k) in &[(5, 33), (3, 300), (2, 5)] {
            let w = rng.vec(c_out * k, -1.0, 1.0);
            let tw = ctx.upload_f32(&w, &[c_out, k]).unwrap();
            let b = binarize_weights(ctx, &tw).unwrap();
            let s = pow2_scale(ctx, &tw, &b.stats).unwrap();
            let want = rq::pow2_scale(&to64(&w), c_out, k);
            assert_close64("pow2_scale", &ctx.download_f32(&s).unwrap(), &want, 0.0);
        }
    }
}
