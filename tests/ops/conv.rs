use bitspike::ops::{
    binarize_weights, conv3x3, conv3x3_backward, conv3x3_binary, conv_weight_from_torch,
    conv_weight_to_torch, pack_bits, Conv3x3, ConvInput, PackMode,
};
use bitspike::reference::conv::{self as rconv, ConvDims};
use bitspike::GpuContext;

use crate::common::{assert_exact, contexts, ctx, Rng};
use crate::layers_common::{assert_close64, check_gradient, dot, to64};

const fn dims(images: usize, h: usize, w: usize, c_in: usize, c_out: usize) -> ConvDims {
    ConvDims {
        images,
        h,
        w,
        c_in,
        c_out,
    }
}

const CASES: &[ConvDims] = &[
    dims(3, 7, 7, 3, 6),
    dims(2, 9, 5, 5, 6),
    dims(1, 1, 1, 1, 1),
    dims(2, 4, 6, 8, 12),
];

/// The default plan, and one that forces a chunk per image.
const PLANS: [Conv3x3; 2] = [
    Conv3x3 {
        max_cols_bytes: 128 << 20,
    },
    Conv3x3 { max_cols_bytes: 1 },
];

fn x_shape(d: ConvDims) -> [usize; 4] {
    [d.images, d.h, d.w, d.c_in]
}

fn y_shape(d: ConvDims) -> [usize; 4] {
    [d.images, d.h, d.w, d.c_out]
}

fn x_len(d: ConvDims) -> usize {
    d.images * d.h * d.w * d.c_in
}

fn y_len(d: ConvDims) -> usize {
    d.images * d.h * d.w * d.c_out
}

#[test]
fn conv3x3_forward_matches_reference() {
    for ctx in contexts() {
        let mut rng = Rng::new(11);
        for &d in CASES {
            let x = rng.vec(x_len(d), -1.0, 1.0);
            let w = rng.vec(d.c_out * 9 * d.c_in, -1.0, 1.0);
            let want = rconv::conv3x3(&to64(&x), &to64(&w), d);
            let tx = ctx.upload_f32(&x, &x_shape(d)).unwrap();
            let tw = ctx.upload_f32(&w, &[d.c_out, 9 * d.c_in]).unwrap();
            for plan in PLANS {
                let y = plan.forward(ctx, &tx, &tw).unwrap();
                assert_eq!(y.shape(), &y_shape(d));
                let got = ctx.download_f32(&y).unwrap();
                assert_close64(&format!("conv3x3 {d:?} {plan:?}"), &got, &want, 1e-4);
            }
            let got = ctx.download_f32(&conv3x3(ctx, &tx, &tw).unwrap()).unwrap();
            assert_close64(&format!("conv3x3 {d:?}"), &got, &want, 1e-4);
        }
    }
}

#[test]
fn conv3x3_backward_matches_reference() {
    for (ctx, input) in contexts()
        .into_iter()
        .flat_map(|c| [(c, ConvInput::Real), (c, ConvInput::Spikes)])
    {
        let mut rng = Rng::new(12);
        for &d in CASES {
            let x = match input {
                ConvInput::Real => rng.vec(x_len(d), -1.0, 1.0),
                _ => rng.spikes(x_len(d), 0.3),
            };
            let w = rng.vec(d.c_out * 9 * d.c_in, -1.0, 1.0);
            let dy = rng.vec(y_len(d), -1.0, 1.0);
            let dw0 = rng.vec(w.len(), -1.0, 1.0);
            let (dx_want, dw_ref) = rconv::conv3x3_backward(&to64(&x), &to64(&w), &to64(&dy), d);
            // Parameter gradients accumulate onto what the tensor holds.
            let dw_want: Vec<f64> = dw_ref
                .iter()
                .zip(&dw0)
                .map(|(a, &b)| a + b as f64)
                .collect();
            let tx = ctx.upload_f32(&x, &x_shape(d)).unwrap();
            let tw = ctx.upload_f32(&w, &[d.c_out, 9 * d.c_in]).unwrap();
            let tdy = ctx.upload_f32(&dy, &y_shape(d)).unwrap();
            for plan in PLANS {
                let what = format!("conv3x3 backward {d:?} {plan:?} {input:?}");
                let tdw = ctx.upload_f32(&dw0, &[d.c_out, 9 * d.c_in]).unwrap();
                let dx = plan.backward(ctx, &tx, &tw, &tdy, &tdw, input).unwrap();
                assert_eq!(dx.shape(), &x_shape(d));
                assert_close64(
                    &format!("{what} dx"),
                    &ctx.download_f32(&dx).unwrap(),
                    &dx_want,
                    1e-4,
                );
                assert_close64(
                    &format!("{what} dw"),
                    &ctx.download_f32(&tdw).unwrap(),
                    &dw_want,
                    1e-4,
                );

                let tdw = ctx.upload_f32(&dw0, &[d.c_out, 9 * d.c_in]).unwrap();
                plan.backward_weight(ctx, &tx, &tw, &tdy, &tdw, input)
                    .unwrap();
                assert_close64(
                    &format!("{what} dw only"),
                    &ctx.download_f32(&tdw).unwrap(),
                    &dw_want,
                    1e-4,
                );
                let dx = plan.backward_input(ctx, &tx, &tw, &tdy).unwrap();
                assert_close64(
                    &format!("{what} dx only"),
                    &ctx.download_f32(&dx).unwrap(),
                    &dx_want,
                    1e-4,
                );
            }
            let tdw = ctx.upload_f32(&dw0, &[d.c_out, 9 * d.c_in]).unwrap();
            let dx = conv3x3_backward(ctx, &tx, &tw, &tdy, &tdw, input).unwrap();
            assert_close64(
                "conv3x3_backward dx",
                &ctx.download_f32(&dx).unwrap(),
                &dx_want,
                1e-4,
            );
        }
    }
}

#[test]
fn conv3x3_weight_gradient_from_kept_spike_columns_matches_reference() {
    let ctx = ctx();
    let mut rng = Rng::new(14);
    for &d in CASES {
        let x = rng.spikes(x_len(d), 0.3);
        let w = rng.signs(d.c_out * 9 * d.c_in);
        let dy = rng.vec(y_len(d), -1.0, 1.0);
        let (_, dw_want) = rconv::conv3x3_backward(&to64(&x), &to64(&w), &to64(&dy), d);
        let tx = ctx.upload_f32(&x, &x_shape(d)).unwrap();
        let tw = ctx.upload_f32(&w, &[d.c_out, 9 * d.c_in]).unwrap();
        let w_bits = pack_bits(ctx, &tw, PackMode::Signs).unwrap();
        let tdy = ctx.upload_f32(&dy, &y_shape(d)).unwrap();
        for plan in PLANS {
            let (_, cols) = plan.forward_binary_saved(ctx, &tx, &w_bits).unwrap();
            // Only a forward in one chunk keeps its columns.
            let Some(cols) = cols else {
                assert_eq!(plan.max_cols_bytes, 1, "{d:?}");
                continue;
            };
            let tdw = ctx
                .zeros(&[d.c_out, 9 * d.c_in], bitspike::DType::F32)
                .unwrap();
            let input = ConvInput::SpikeColumns(&cols);
            plan.backward_weight(ctx, &tx, &tw, &tdy, &tdw, input)
                .unwrap();
            assert_close64(
                &format!("dw from kept columns {d:?}"),
                &ctx.download_f32(&tdw).unwrap(),
                &dw_want,
                1e-4,
            );
        }
    }
}

#[test]
fn conv_reference_backward_matches_finite_differences() {
    let mut rng = Rng::new(13);
    for d in [
        dims(2, 4, 3, 2, 3),
        dims(1, 1, 1, 1, 1),
        dims(1, 5, 5, 3, 2),
    ] {
        let x = to64(&rng.vec(x_len(d), -1.0, 1.0));
        let w = to64(&rng.vec(d.c_out * 9 * d.c_in, -1.0, 1.0));
        let r = to64(&rng.vec(y_len(d), -1.0, 1.0));
        let (dx, dw) = rconv::conv3x3_backward(&x, &w, &r, d);
        check_gradient(
            "conv dx",
            &x,
            &dx,
            |x| dot(&rconv::conv3x3(x, &w, d), &r),
            1e-5,
            1e-7,
        );
        check_gradient(
            "conv dw",
            &w,
            &dw,
            |w| dot(&rconv::conv3x3(&x, w, d), &r),
            1e-5,
            1e-7,
        );
    }
}

/// A direct PyTorch-semantics convolution: NCHW input, weight `[C_out, C_in, 3, 3]`.
fn torch_conv(x_nchw: &[f64], w_t: &[f64], d: ConvDims) -> Vec<f64> {
    let (h, w) = (d.h as isize, d.w as isize);
    let mut y = vec![0.0; d.images * d.c_out * d.h * d.w];
    for n in 0..d.images {
        for o in 0..d.c_out {
            for yy in 0..h {
                for xx in 0..w {
                    let mut s = 0.0;
                    for c in 0..d.c_in {
                        for ky in 0..3isize {
                            for kx in 0..3isize {
                                let (sy, sx) = (yy + ky - 1, xx + kx - 1);
                                if sy < 0 || sy >= h || sx < 0 || sx >= w {
                                    continue;
                                }
                                let xi = ((n * d.c_in + c) as isize * h + sy) * w + sx;
                                let wi = ((o * d.c_in + c) * 3 + ky as usize) * 3 + kx as usize;
                                s += x_nchw[xi as usize] * w_t[wi];
                            }
                        }
                    }
                    y[((n * d.c_out + o) as isize * h + yy) as usize * d.w + xx as usize] = s;
                }
            }
        }
    }
    y
}

#[test]
fn torch_weight_layout_maps_to_the_same_convolution() {
    let mut rng = Rng::new(14);
    let d = dims(2, 5, 4, 3, 6);
    let w_t = rng.vec(d.c_out * d.c_in * 9, -1.0, 1.0);
    let x_nhwc = rng.vec(x_len(d), -1.0, 1.0);
    let w = conv_weight_from_torch(&w_t, d.c_out, d.c_in).unwrap();
    assert_eq!(conv_weight_to_torch(&w, d.c_out, d.c_in).unwrap(), w_t);
    // NHWC -> NCHW for the PyTorch-semantics convolution, and its output back.
    let hw = d.h * d.w;
    let nchw = |v: &[f32], c: usize| -> Vec<f64> {
        let mut out = vec![0.0; v.len()];
        for n in 0..d.images {
            for p in 0..hw {
                for ch in 0..c {
                    out[(n * c + ch) * hw + p] = v[(n * hw + p) * c + ch] as f64;
                }
            }
        }
        out
    };
    let ours = rconv::conv3x3(&to64(&x_nhwc), &to64(&w), d);
    let ours_nchw = nchw(&ours.iter().map(|&v| v as f32).collect::<Vec<_>>(), d.c_out);
    let theirs = torch_conv(&nchw(&x_nhwc, d.c_in), &to64(&w_t), d);
    for (i, (a, b)) in ours_nchw.iter().zip(&theirs).enumerate() {
        assert!((a - b).abs() < 1e-5, "index {i}: {a} vs {b}");
    }
    assert!(conv_weight_from_torch(&w_t[1..], d.c_out, d.c_in).is_err());
}

fn binary_conv_case(ctx: &GpuContext, d: ConvDims, rng: &mut Rng) {
    let x = rng.spikes(x_len(d), 0.3);
    let w = rng.signs(d.c_out * 9 * d.c_in);
    let tx = ctx.upload_f32(&x, &x_shape(d)).unwrap();
    let tw = ctx.upload_f32(&w, &[d.c_out, 9 * d.c_in]).unwrap();
    let bits = pack_bits(ctx, &tw, PackMode::Signs).unwrap();
    let f32_conv = ctx.download_f32(&conv3x3(ctx, &tx, &tw).unwrap()).unwrap();
    let want = rconv::conv3x3(&to64(&x), &to64(&w), d);
    for plan in PLANS {
        let y = plan.forward_binary(ctx, &tx, &bits).unwrap();
        assert_eq!(y.shape(), &y_shape(d));
        let got = ctx.download_f32(&y).unwrap();
        // Integer sums: exact on both paths.
        assert_exact(
            &format!("binary conv {d:?} {plan:?} vs f32 conv"),
            &got,
            &f32_conv,
        );
        assert_exact(
            &format!("binary conv {d:?} {plan:?} vs reference"),
            &got,
            &want.iter().map(|&v| v as f32).collect::<Vec<_>>(),
        );
    }
}

#[test]
fn binary_conv_equals_f32_conv_with_sign_weights() {
    for ctx in contexts() {
        let mut rng = Rng::new(15);
        for &d in CASES {
            binary_conv_case(ctx, d, &mut rng);
        }
        // 9 C_in = 45 * 9 = 405 bits: rows of several words and 128-bit groups.
        binary_conv_case(ctx, dims(2, 3, 5, 45, 7), &mut rng);
        // Column words that are whole input words (C_in = 32, 64), and bit ranges that
        // straddle input words (C_in = 33, 70).
        for c_in in [32, 64, 33, 70] {
            binary_conv_case(ctx, dims(2, 3, 4, c_in, 5), &mut rng);
        }
    }
}

#[test]
fn binary_conv_with_binarized_latent_weights() {
    // The model's path: latent f32 weights -> binarize (f32 signs + packed bits) ->
    // binary conv forward; straight-through backward with the f32 signs.
    let ctx = ctx();
    let mut rng = Rng::new(16);
    let d = dims(3, 7, 7, 5, 6);
    let x = rng.spikes(x_len(d), 0.25);
    let latent = rng.vec(d.c_out * 9 * d.c_in, -1.0, 1.0);
    let tx = ctx.upload_f32(&x, &x_shape(d)).unwrap();
    let tl = ctx.upload_f32(&latent, &[d.c_out, 9 * d.c_in]).unwrap();
    let bw = binarize_weights(ctx, &tl).unwrap();
    let signs = ctx.download_f32(&bw.signs).unwrap();
    let got = ctx
        .download_f32(&conv3x3_binary(ctx, &tx, &bw.bits).unwrap())
        .unwrap();
    let want = rconv::conv3x3(&to64(&x), &to64(&signs), d);
    assert_close64("binary conv with binarized weights", &got, &want, 0.0);
    let dy = rng.vec(y_len(d), -1.0, 1.0);
    let tdy = ctx.upload_f32(&dy, &y_shape(d)).unwrap();
    let tdw = ctx
        .zeros(&[d.c_out, 9 * d.c_in], bitspike::DType::F32)
        .unwrap();
    let dx = conv3x3_backward(ctx, &tx, &bw.signs, &tdy, &tdw, ConvInput::Spikes).unwrap();
    let (dx_want, dw_want) = rconv::conv3x3_backward(&to64(&x), &to64(&signs), &to64(&dy), d);
    assert_close64(
        "straight-through dx",
        &ctx.download_f32(&dx).unwrap(),
        &dx_want,
        1e-4,
    );
    assert_close64(
        "straight-through dw",
        &ctx.download_f32(&tdw).unwrap(),
        &dw_want,
        1e-4,
    );
}

#[test]
fn conv3x3_rejects_bad_shapes() {
    let ctx = ctx();
    let x = ctx.zeros(&[1, 4, 4, 3], bitspike::DType::F32).unwrap();
    let w = ctx.zeros(&[6, 26], bitspike::DType::F32).unwrap();
    let err = conv3x3(ctx, &x, &w).unwrap_err();
    assert!(err.to_string().contains("shape mismatch"), "{err}");
    let flat = ctx.zeros(&[16, 3], bitspike::DType::F32).unwrap();
    let w = ctx.zeros(&[6, 27], bitspike::DType::F32).unwrap();
    assert!(conv3x3(ctx, &flat, &w).is_err());
    let err = conv3x3_binary(ctx, &x, &w).unwrap_err();
    assert!(err.to_string().contains("dtype mismatch"), "{err}");
}
