//! The spiking neurons (shaders/lif.wgsl) against their CPU reference: forward spikes
//! identical, backward within tolerance, for every reset/detach/surrogate combination; the
//! reference backward against finite differences of a smooth forward; a hand-computed
//! spike train; the time layout check; the benchmark workloads at a tiny size.

use std::f64::consts::PI;

use bitspike::bench::lif::{CopyWorkload, LifKernel, LifWorkload};
use bitspike::dtype::storage_words;
use bitspike::ops::{
    lif_backward, lif_forward, lif_forward_affine, lif_forward_with, qsnn_backward, qsnn_forward,
    ternary_backward, ternary_forward, threshold_backward, threshold_forward, FiringFn, LifConfig,
    LifOutputs, PackKernel, PackMode, QsnnConfig, Surrogate, ThresholdConfig,
};
use bitspike::reference::{self, lif::Trace};
use bitspike::{DType, Error, GpuContext, Tensor};

use crate::common::{assert_close, assert_exact, ctx, Rng};

/// Every reset (hard to 0, hard to -0.25, soft) x detach x surrogate x decay_input, with
/// v_th = 0.8 and tau = 2.5 so that no factor of the formulas is 1 or a power of two.
fn all_configs() -> Vec<LifConfig> {
    let mut out = Vec::new();
    for v_reset in [Some(0.0), Some(-0.25), None] {
        for detach_reset in [true, false] {
            for surrogate in [Surrogate::SIGMOID, Surrogate::ATAN] {
                for decay_input in [true, false] {
                    out.push(LifConfig {
                        tau: 2.5,
                        v_th: 0.8,
                        v_reset,
                        detach_reset,
                        surrogate,
                        decay_input,
                    });
                }
            }
        }
    }
    out
}

/// Forward settings (detach and surrogate only matter in backward), including a tau whose
/// inverse is not a power of two.
fn forward_configs() -> Vec<LifConfig> {
    let base = LifConfig::default();
    vec![
        base,
        LifConfig {
            v_reset: None,
            ..base
        },
        LifConfig {
            decay_input: false,
            ..base
        },
        LifConfig {
            tau: 3.0,
            v_th: 0.5,
            v_reset: Some(-0.25),
            ..base
        },
        LifConfig {
            tau: 1.7,
            v_th: 0.8,
            v_reset: None,
            decay_input: false,
            ..base
        },
        LifConfig {
            tau: 2.5,
            v_th: 1.2,
            v_reset: Some(0.3),
            decay_input: false,
            ..base
        },
    ]
}

fn upload(x: &[f32], shape: &[usize]) -> Tensor {
    ctx().upload_f32(x, shape).unwrap()
}

fn download(t: &Option<Tensor>) -> Vec<f32> {
    ctx()
        .download_f32(t.as_ref().expect("output asked for"))
        .unwrap()
}

fn check_lif_forward(t: usize, dims: &[usize], cfg: &LifConfig, seed: u64) {
    let len: usize = dims.iter().product::<usize>() * t;
    let x = Rng::new(seed).vec(len, -1.0, 3.0);
    let mut shape = vec![t];
    shape.extend_from_slice(dims);
    let got = lif_forward(ctx(), &upload(&x, &shape), t, cfg, LifOutputs::TRAIN).unwrap();
    let want = reference::lif::lif_forward(cfg, t, &x);
    let what = format!("lif T={t} {dims:?} {cfg:?}");
    assert_exact(
        &format!("{what}: spikes"),
        &download(&got.spikes),
        &want.spikes,
    );
    // H within rounding: GPU compilers may contract the charge into an FMA (seen on an
    // H100: one ulp apart), which is also why the inputs are random, not tied to v_th.
    assert_close(&format!("{what}: H"), &download(&got.h), &want.h, 1e-6);
    let rate = want.spikes.iter().sum::<f32>() / len as f32;
    assert!(rate > 0.05 && rate < 0.95, "{what}: firing rate {rate}");
}

#[test]
fn lif_forward_matches_reference_exactly_on_odd_sizes() {
    for (c, cfg) in forward_configs().iter().enumerate() {
        for (i, &(t, ref dims)) in [(4, vec![37, 97]), (1, vec![3, 33]), (16, vec![1000])]
            .iter()
            .enumerate()
        {
            check_lif_forward(t, dims, cfg, (10 * c + i) as u64);
        }
    }
}

/// T = 4, tau = 2, v_th = 1, hard reset to 0, constant input 1.5 (all values exact in f32):
///   t = 0: H = 0 + (1.5 - 0) / 2        = 0.75   no spike, V = 0.75
///   t = 1: H = 0.75 + (1.5 - 0.75) / 2  = 1.125  spike,    V = 0
///   t = 2: H = 0 + (1.5 - 0) / 2        = 0.75   no spike, V = 0.75
///   t = 3: H = 0.75 + 0.75 / 2          = 1.125  spike,    V = 0
/// spikes [0, 1, 0, 1]. With the soft reset (V -= v_th on a spike):
///   H = 0.75 (V 0.75), 1.125 spike (V 0.125), 0.125 + 1.375 / 2 = 0.8125 (V 0.8125),
///   0.8125 + 0.6875 / 2 = 1.15625 spike: spikes [0, 1, 0, 1] again.
#[test]
fn lif_forward_of_a_normalized_input_matches_reference() {
    // The neuron reads x * scale + shift per channel (a BatchNorm folded in): spikes as
    // the reference's on the normalized input, for channels a multiple of 4 on odd rows.
    for (c, cfg) in forward_configs().iter().enumerate() {
        for &(t, rows, ch) in &[(4, 37, 12), (1, 3, 4), (3, 101, 8)] {
            let mut rng = Rng::new(40 + c as u64);
            let x = rng.vec(t * rows * ch, -2.0, 2.0);
            let scale = rng.vec(ch, 0.5, 1.5);
            let shift = rng.vec(ch, -0.5, 1.5);
            let coef: Vec<f32> = scale.iter().chain(&shift).copied().collect();
            let y: Vec<f32> = x
                .iter()
                .enumerate()
                .map(|(i, v)| v * scale[i % ch] + shift[i % ch])
                .collect();
            let got = lif_forward_affine(
                ctx(),
                &upload(&x, &[t, rows, ch]),
                &upload(&coef, &[2, ch]),
                t,
                cfg,
                LifOutputs::TRAIN,
            )
            .unwrap();
            let want = reference::lif::lif_forward(cfg, t, &y);
            let what = format!("normalized lif T={t} [{rows}, {ch}] {cfg:?}");
            assert_exact(
                &format!("{what}: spikes"),
                &download(&got.spikes),
                &want.spikes,
            );
            assert_close(&format!("{what}: H"), &download(&got.h), &want.h, 1e-5);
        }
    }
    // Channels not a multiple of 4, and packed outputs, are refused.
    let err = lif_forward_affine(
        ctx(),
        &upload(&[0.0; 12], &[2, 2, 3]),
        &upload(&[0.0; 6], &[2, 3]),
        2,
        &LifConfig::default(),
        LifOutputs::TRAIN,
    )
    .unwrap_err();
    assert!(err.to_string().contains("multiple of 4"), "{err}");
}

#[test]
fn lif_hand_computed_constant_input() {
    let x = [1.5f32; 4];
    for (cfg, h) in [
        (LifConfig::default(), [0.75, 1.125, 0.75, 1.125]),
        (
            LifConfig {
                v_reset: None,
                ..LifConfig::default()
            },
            [0.75, 1.125, 0.8125, 1.15625],
        ),
    ] {
        let spikes = [0.0, 1.0, 0.0, 1.0];
        let want = reference::lif::lif_forward(&cfg, 4, &x);
        assert_eq!(
            want,
            Trace {
                spikes: spikes.to_vec(),
                h: h.to_vec()
            },
            "reference"
        );
        for pack in [PackKernel::PerWord, PackKernel::Cooperative] {
            let x = upload(&x, &[4, 1]);
            let got = lif_forward_with(ctx(), &x, 4, &cfg, LifOutputs::ALL, pack).unwrap();
            assert_exact("gpu spikes", &download(&got.spikes), &spikes);
            assert_exact("gpu H", &download(&got.h), &h);
            let words: Vec<u32> = ctx().download_words(got.packed.as_ref().unwrap()).unwrap();
            // One 128-bit group (a word and three zero padding words) per step.
            assert_eq!(
                words,
                vec![0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0],
                "{pack:?}: one group per step"
            );
        }
    }
    // Input 2: H0 = 0 + (2 - 0) / 2 = 1.0 = v_th exactly, which fires (H >= v_th); then
    // V = 0 and the same again: spikes [1, 1, 1].
    let cfg = LifConfig::default();
    let x = [2.0f32; 3];
    let want = Trace {
        spikes: vec![1.0; 3],
        h: vec![1.0; 3],
    };
    assert_eq!(
        reference::lif::lif_forward(&cfg, 3, &x),
        want,
        "reference at v_th"
    );
    for outputs in [LifOutputs::TRAIN, LifOutputs::ALL] {
        let got = lif_forward(ctx(), &upload(&x, &[3, 1]), 3, &cfg, outputs).unwrap();
        assert_exact("gpu spikes at v_th", &download(&got.spikes), &want.spikes);
    }
}

/// Leave garbage-filled buffers the size of a forward's outputs in `ctx`'s pool, so that
/// an element a kernel fails to write shows up as garbage rather than as the result of an
/// earlier, identical run left in a reused buffer.
fn poison_pool(ctx: &GpuContext, shape: &[usize]) {
    let words = storage_words(shape, DType::F32).max(1);
    let packed = storage_words(shape, DType::PackedBits).max(1);
    let garbage = [
        ctx.upload_words(&vec![f32::NAN; words], &[words], DType::F32),
        ctx.upload_words(&vec![f32::NAN; words], &[words], DType::F32),
        ctx.upload_words(&vec![0xDEAD_BEEFu32; packed], &[packed], DType::U32),
    ];
    drop(garbage);
}

#[test]
fn lif_packed_output_matches_packed_reference_spikes() {
    // A context of its own: no other test takes the poisoned buffers from its pool.
    let ctx = &GpuContext::from_env().unwrap();
    let cfg = LifConfig::default();
    let cases: [(usize, &[usize]); 9] = [
        (1, &[1]),
        (3, &[5, 31]),
        (4, &[37, 97]),
        (2, &[2, 3, 64]),
        (33, &[4, 33]), // 4 chunks of 8 steps and 1 more in the cooperative kernel
        (16, &[1000]),
        (5, &[9, 32]),
        (2, &[300, 1]),
        (3, &[70, 6]), // several rows per word slot, quads cut by the row end
    ];
    for (i, &(t, dims)) in cases.iter().enumerate() {
        let features = *dims.last().unwrap();
        let len = t * dims.iter().product::<usize>();
        let x = Rng::new(50 + i as u64).vec(len, -1.0, 3.0);
        let mut shape = vec![t];
        shape.extend_from_slice(dims);
        let want = reference::lif::lif_forward(&cfg, t, &x);
        let want_bits = reference::pack::pack_bits(&want.spikes, features, PackMode::Spikes);
        let outputs_and_kernels = [
            LifOutputs::ALL,
            LifOutputs::TRAIN_PACKED,
            LifOutputs::INFER_PACKED,
        ]
        .into_iter()
        .flat_map(|o| [(o, PackKernel::PerWord), (o, PackKernel::Cooperative)]);
        for (outputs, pack) in outputs_and_kernels {
            let what = format!("packed T={t} {dims:?} {outputs:?} {pack:?}");
            let xt = ctx.upload_f32(&x, &shape).unwrap();
            poison_pool(ctx, &shape);
            let got = lif_forward_with(ctx, &xt, t, &cfg, outputs, pack).unwrap();
            let packed = got.packed.as_ref().unwrap();
            assert_eq!(packed.dtype(), DType::PackedBits);
            assert_eq!(packed.shape(), &shape[..]);
            let words: Vec<u32> = ctx.download_words(packed).unwrap();
            assert_exact(&format!("{what}: words"), &words, &want_bits);
            assert_eq!(got.spikes.is_some(), outputs.spikes, "{what}");
            assert_eq!(got.h.is_some(), outputs.h, "{what}");
            if let Some(spikes) = &got.spikes {
                let spikes = ctx.download_f32(spikes).unwrap();
                assert_exact(&format!("{what}: spikes"), &spikes, &want.spikes);
            }
            if let Some(h) = &got.h {
                let h = ctx.download_f32(h).unwrap();
                assert_exact(&format!("{what}: H"), &h, &want.h);
            }
        }
    }
}

#[test]
fn lif_inference_outputs_without_h() {
    let cfg = LifConfig::default();
    let x = Rng::new(3).vec(3 * 50, -1.0, 3.0);
    let outputs = LifOutputs {
        spikes: true,
        h: false,
        packed: false,
    };
    let got = lif_forward(ctx(), &upload(&x, &[3, 50]), 3, &cfg, outputs).unwrap();
    assert!(got.h.is_none() && got.packed.is_none());
    let want = reference::lif::lif_forward(&cfg, 3, &x);
    assert_exact("spikes", &download(&got.spikes), &want.spikes);
    let none = LifOutputs {
        spikes: false,
        h: false,
        packed: false,
    };
    let err = lif_forward(ctx(), &upload(&x, &[3, 50]), 3, &cfg, none).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
}

/// Random upstream gradients and the forward's H, through both backwards.
fn check_backward(firing: FiringFn, cfg: &LifConfig, t: usize, dims: &[usize], seed: u64) {
    let len = t * dims.iter().product::<usize>();
    let mut rng = Rng::new(seed);
    let x = rng.vec(len, -1.0, 3.0);
    let grad_s = rng.vec(len, -1.0, 1.0);
    let mut shape = vec![t];
    shape.extend_from_slice(dims);
    let ctx = ctx();
    let (fwd, bwd): (fn(_, _, _, _, _) -> _, fn(_, _, _, _, _) -> _) = match firing {
        FiringFn::Lif => (lif_forward, lif_backward),
        FiringFn::Ternary => (ternary_forward, ternary_backward),
    };
    let got = fwd(ctx, &upload(&x, &shape), t, cfg, LifOutputs::TRAIN).unwrap();
    let h = got.h.unwrap();
    let grad_x = bwd(ctx, &upload(&grad_s, &shape), &h, t, cfg).unwrap();
    let h = ctx.download_f32(&h).unwrap();
    let want = match firing {
        FiringFn::Lif => reference::lif::lif_backward(cfg, t, &grad_s, &h),
        FiringFn::Ternary => reference::lif::ternary_backward(cfg, t, &grad_s, &h),
    };
    let got = ctx.download_f32(&grad_x).unwrap();
    assert_close(&format!("{firing:?} backward {cfg:?}"), &got, &want, 1e-5);
    assert!(
        want.iter().any(|g| g.abs() > 1e-3),
        "gradients are not all ~0"
    );
}

#[test]
fn lif_backward_matches_reference_for_every_combination() {
    for (i, cfg) in all_configs().iter().enumerate() {
        check_backward(FiringFn::Lif, cfg, 5, &[7, 45], 200 + i as u64);
    }
    check_backward(FiringFn::Lif, &LifConfig::default(), 1, &[1000], 1);
    check_backward(FiringFn::Lif, &LifConfig::default(), 16, &[37, 97], 2);
    let odd_tau = LifConfig {
        tau: 3.0,
        v_th: 0.5,
        surrogate: Surrogate::ATan { alpha: 3.0 },
        ..LifConfig::default()
    };
    check_backward(FiringFn::Lif, &odd_tau, 4, &[33], 3);
}

// ---- gradient check of the reference backward against a smooth forward (f64) ----

/// The primitive of the surrogate derivative: the smooth stand-in for the Heaviside step.
fn primitive(s: Surrogate, x: f64) -> f64 {
    match s {
        Surrogate::Sigmoid { alpha } => 1.0 / (1.0 + (-(alpha as f64) * x).exp()),
        Surrogate::ATan { alpha } => (PI / 2.0 * alpha as f64 * x).atan() / PI + 0.5,
    }
}

/// H, smooth spikes S and smooth spike magnitudes |S| of a smooth forward.
struct Smooth {
    h: Vec<f64>,
    s: Vec<f64>,
    a: Vec<f64>,
}

/// The neuron with each Heaviside step replaced by the surrogate's primitive: its exact
/// derivative is the surrogate backward. With `detach_reset` the reset reads `frozen`'s
/// S and |S| (those of the unperturbed input), so no gradient flows through the reset, as
/// with SpikingJelly's `spike.detach()`.
fn smooth_forward(
    cfg: &LifConfig,
    firing: FiringFn,
    t: usize,
    x: &[f64],
    frozen: Option<&Smooth>,
) -> Smooth {
    let n = x.len() / t;
    let (k, v_th) = (1.0 / cfg.tau as f64, cfg.v_th as f64);
    let v_reset = cfg.v_reset.map(|v| v as f64);
    let v0 = v_reset.unwrap_or(0.0);
    let mut out = Smooth {
        h: vec![0.0; x.len()],
        s: vec![0.0; x.len()],
        a: vec![0.0; x.len()],
    };
    for i in 0..n {
        let mut v = v0;
        for step in 0..t {
            let at = step * n + i;
            let h = if cfg.decay_input {
                v + (x[at] - (v - v0)) * k
            } else {
                v - (v - v0) * k + x[at]
            };
            let up = primitive(cfg.surrogate, h - v_th);
            let (s, a) = match firing {
                FiringFn::Lif => (up, up),
                FiringFn::Ternary => {
                    let down = primitive(cfg.surrogate, -(h + v_th));
                    (up - down, up + down)
                }
            };
            let (s_r, a_r) = match (cfg.detach_reset, frozen) {
                (true, Some(f)) => (f.s[at], f.a[at]),
                _ => (s, a),
            };
            v = match v_reset {
                Some(vr) => h * (1.0 - a_r) + vr * a_r,
                None => h - v_th * s_r,
            };
            out.h[at] = h;
            out.s[at] = s;
            out.a[at] = a;
        }
    }
    out
}

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// Central differences of L = sum(w * S) against `backward` at every input element.
fn gradient_check(
    what: &str,
    x: &[f64],
    w: &[f64],
    loss: impl Fn(&[f64]) -> f64,
    analytic: &[f32],
) {
    let eps = 1e-5;
    let mut fd = Vec::with_capacity(x.len());
    for i in 0..x.len() {
        let mut xp = x.to_vec();
        xp[i] += eps;
        let mut xm = x.to_vec();
        xm[i] -= eps;
        fd.push(((loss(&xp) - loss(&xm)) / (2.0 * eps)) as f32);
    }
    assert!(w.len() == x.len());
    assert_close(what, analytic, &fd, 2e-4);
    assert!(
        fd.iter().any(|g| g.abs() > 1e-2),
        "{what}: gradients are not all ~0"
    );
}

fn check_smooth_gradient(firing: FiringFn, cfg: &LifConfig, seed: u64) {
    let (t, n) = (6, 4);
    let mut rng = Rng::new(seed);
    let x: Vec<f64> = rng
        .vec(t * n, -1.0, 3.0)
        .iter()
        .map(|&v| v as f64)
        .collect();
    let w: Vec<f64> = rng
        .vec(t * n, -1.0, 1.0)
        .iter()
        .map(|&v| v as f64)
        .collect();
    let base = smooth_forward(cfg, firing, t, &x, None);
    let loss = |xs: &[f64]| -> f64 {
        let f = smooth_forward(cfg, firing, t, xs, Some(&base));
        f.s.iter().zip(&w).map(|(s, w)| s * w).sum()
    };
    let analytic = reference::lif::backward_with_reset(
        cfg,
        firing,
        t,
        &f32s(&w),
        &f32s(&base.h),
        &f32s(&base.a),
    );
    gradient_check(&format!("{firing:?} {cfg:?}"), &x, &w, loss, &analytic);
}

#[test]
fn lif_reference_backward_is_the_derivative_of_the_smooth_forward() {
    for (i, cfg) in all_configs().iter().enumerate() {
        check_smooth_gradient(FiringFn::Lif, cfg, 300 + i as u64);
        check_smooth_gradient(FiringFn::Ternary, cfg, 400 + i as u64);
    }
}

// ---- the time layout ----

#[test]
fn time_folded_into_the_batch_is_a_shape_error() {
    let ctx = ctx();
    let cfg = LifConfig::default();
    let (t, b, n) = (4, 2, 5);
    let x = vec![0.5; t * b * n];
    // [T*B, N] where [T, B, N] is meant: not silently run as 8 time steps.
    let folded = upload(&x, &[t * b, n]);
    let err = lif_forward(ctx, &folded, t, &cfg, LifOutputs::TRAIN).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Shape {
                op: "lif_forward",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("[8, 5]"), "{err}");
    // Rank 1: no neuron dimension.
    let err = lif_forward(ctx, &upload(&x[..t], &[t]), t, &cfg, LifOutputs::TRAIN).unwrap_err();
    assert!(matches!(err, Error::Shape { .. }), "{err}");
    // T = 0.
    let err = lif_forward(ctx, &folded, 0, &cfg, LifOutputs::TRAIN).unwrap_err();
    assert!(matches!(err, Error::Shape { .. }), "{err}");
    // The same checks guard every backward and the other neurons.
    let good = upload(&x, &[t, b, n]);
    let fwd = lif_forward(ctx, &good, t, &cfg, LifOutputs::TRAIN).unwrap();
    let h = fwd.h.unwrap();
    assert!(matches!(
        lif_backward(ctx, &folded, &h, t, &cfg).unwrap_err(),
        Error::Shape {
            op: "lif_backward",
            ..
        }
    ));
    let h_folded = h.reshape(&[t * b, n]).unwrap();
    assert!(matches!(
        lif_backward(ctx, &good, &h_folded, t, &cfg).unwrap_err(),
        Error::Shape {
            op: "lif_backward",
            ..
        }
    ));
    assert!(matches!(
        ternary_forward(ctx, &folded, t, &cfg, LifOutputs::TRAIN).unwrap_err(),
        Error::Shape { .. }
    ));
    assert!(matches!(
        qsnn_forward(ctx, &folded, t, &QsnnConfig::default()).unwrap_err(),
        Error::Shape { .. }
    ));
    assert!(matches!(
        qsnn_backward(ctx, &folded, &folded, t, &QsnnConfig::default()).unwrap_err(),
        Error::Shape { .. }
    ));
    // And the right layout works.
    assert!(lif_backward(ctx, &good, &h, t, &cfg).is_ok());
}

#[test]
fn bad_settings_and_dtypes_are_errors() {
    let ctx = ctx();
    let x = upload(&[0.5; 8], &[2, 4]);
    let bad = LifConfig {
        tau: 0.0,
        ..LifConfig::default()
    };
    assert!(matches!(
        lif_forward(ctx, &x, 2, &bad, LifOutputs::TRAIN).unwrap_err(),
        Error::InvalidArgument(_)
    ));
    let bits = ctx.zeros(&[2, 4], DType::PackedBits).unwrap();
    assert!(matches!(
        lif_forward(ctx, &bits, 2, &LifConfig::default(), LifOutputs::TRAIN).unwrap_err(),
        Error::DType { .. }
    ));
    let q = QsnnConfig {
        bits: 1,
        ..QsnnConfig::default()
    };
    assert!(matches!(
        qsnn_forward(ctx, &x, 2, &q).unwrap_err(),
        Error::InvalidArgument(_)
    ));
}

// ---- the ternary neuron ----

#[test]
fn ternary_forward_matches_reference() {
    let mut configs = forward_configs();
    configs.push(LifConfig {
        v_reset: Some(0.0),
        v_th: 0.5,
        ..LifConfig::default()
    });
    for (i, cfg) in configs.iter().enumerate() {
        for &(t, ref dims) in &[(4, vec![37, 97]), (1, vec![3, 33]), (16, vec![1000])] {
            let len = t * dims.iter().product::<usize>();
            let x = Rng::new(500 + i as u64).vec(len, -3.0, 3.0);
            let mut shape = vec![t];
            shape.extend_from_slice(dims);
            let got =
                ternary_forward(ctx(), &upload(&x, &shape), t, cfg, LifOutputs::TRAIN).unwrap();
            let want = reference::lif::ternary_forward(cfg, t, &x);
            let what = format!("ternary T={t} {dims:?} {cfg:?}");
            assert_exact(
                &format!("{what}: spikes"),
                &download(&got.spikes),
                &want.spikes,
            );
            // Within rounding, as in check_lif_forward (FMA contraction on GPUs).
            assert_close(&format!("{what}: H"), &download(&got.h), &want.h, 1e-6);
            for v in [-1.0, 0.0, 1.0] {
                assert!(want.spikes.contains(&v), "{what}: no spike {v}");
            }
        }
    }
}

/// Hand case: T = 4, tau = 2, v_th = 1, hard reset to 0, input -2.5, 0.5, 2.5, -2:
///   H = -1.25 (spike -1, V = 0), 0.25 (no spike, V = 0.25), 0.25 + 2.25 / 2 = 1.375 (+1,
///   V = 0), -1 = -v_th exactly (spike -1: H <= -v_th).
#[test]
fn ternary_hand_computed() {
    let cfg = LifConfig::default();
    let x = [-2.5, 0.5, 2.5, -2.0];
    let want = Trace {
        spikes: vec![-1.0, 0.0, 1.0, -1.0],
        h: vec![-1.25, 0.25, 1.375, -1.0],
    };
    assert_eq!(reference::lif::ternary_forward(&cfg, 4, &x), want);
    let got = ternary_forward(ctx(), &upload(&x, &[4, 1]), 4, &cfg, LifOutputs::TRAIN).unwrap();
    assert_exact("spikes", &download(&got.spikes), &want.spikes);
    assert_exact("H", &download(&got.h), &want.h);
}

#[test]
fn ternary_backward_matches_reference_for_every_combination() {
    for (i, cfg) in all_configs().iter().enumerate() {
        check_backward(FiringFn::Ternary, cfg, 5, &[7, 45], 600 + i as u64);
    }
}

#[test]
fn ternary_spikes_are_not_packable() {
    let x = upload(&[0.5; 8], &[2, 4]);
    let err = ternary_forward(ctx(), &x, 2, &LifConfig::default(), LifOutputs::ALL).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
}

// ---- the stateless threshold ----

#[test]
fn threshold_matches_reference() {
    let ctx = ctx();
    for (i, &(ref shape, v_th, surrogate)) in [
        (vec![4, 37, 97], 1.0, Surrogate::SIGMOID),
        (vec![1000], 0.5, Surrogate::ATAN),
        (vec![3, 8, 33], 0.0, Surrogate::Sigmoid { alpha: 2.0 }),
    ]
    .iter()
    .enumerate()
    {
        let cfg = ThresholdConfig { v_th, surrogate };
        let len = shape.iter().product::<usize>();
        let features = *shape.last().unwrap();
        let mut rng = Rng::new(700 + i as u64);
        // Whole and half numbers hit the threshold exactly: x = v_th fires.
        let x: Vec<f32> = rng
            .vec(len, -2.0, 3.0)
            .iter()
            .map(|v| {
                if v.abs() < 0.3 {
                    (v * 10.0).round() / 2.0
                } else {
                    *v
                }
            })
            .collect();
        let xt = upload(&x, shape);
        let got = threshold_forward(ctx, &xt, &cfg, LifOutputs::ALL).unwrap();
        let want = reference::lif::threshold_forward(&cfg, &x);
        let what = format!("threshold {shape:?} {cfg:?}");
        assert_exact(&what, &download(&got.spikes), &want);
        let words: Vec<u32> = ctx.download_words(got.packed.as_ref().unwrap()).unwrap();
        let want_bits = reference::pack::pack_bits(&want, features, PackMode::Spikes);
        assert_exact(&format!("{what}: packed"), &words, &want_bits);
        // Its saved "H" is the input itself.
        assert_exact(&format!("{what}: h"), &download(&got.h), &x);
        let grad_s = rng.vec(len, -1.0, 1.0);
        let grad_x = threshold_backward(ctx, &upload(&grad_s, shape), &xt, &cfg).unwrap();
        let want_grad = reference::lif::threshold_backward(&cfg, &grad_s, &x);
        assert_close(&what, &ctx.download_f32(&grad_x).unwrap(), &want_grad, 1e-5);
    }
    // x = v_th fires; just below does not.
    let cfg = ThresholdConfig::default();
    let x = upload(&[1.0, 0.999_999_9, 2.0, -1.0], &[4]);
    let got = threshold_forward(ctx, &x, &cfg, LifOutputs::TRAIN).unwrap();
    assert_exact("edge", &download(&got.spikes), &[1.0, 0.0, 1.0, 0.0]);
}

// ---- the Q-SNN neuron ----

#[test]
fn qsnn_forward_and_backward_match_reference() {
    let ctx = ctx();
    for (i, &(t, ref dims, bits)) in [
        (4, vec![37, 97], 8),
        (1, vec![3, 33], 8),
        (16, vec![1000], 4),
        (6, vec![2, 300], 2),
    ]
    .iter()
    .enumerate()
    {
        let cfg = QsnnConfig {
            bits,
            ..QsnnConfig::default()
        };
        let len = t * dims.iter().product::<usize>();
        let mut rng = Rng::new(800 + i as u64);
        let x = rng.vec(len, -1.0, 2.0);
        let mut shape = vec![t];
        shape.extend_from_slice(dims);
        let got = qsnn_forward(ctx, &upload(&x, &shape), t, &cfg).unwrap();
        let want = reference::lif::qsnn_forward(&cfg, t, &x);
        let what = format!("qsnn T={t} {dims:?} {bits} bits");
        // tanh may differ by an ulp between the driver and Rust: H within tolerance, and
        // the spikes, which only an exact tie could flip, identical.
        assert_exact(
            &format!("{what}: spikes"),
            &ctx.download_f32(&got.spikes).unwrap(),
            &want.spikes,
        );
        assert_close(
            &format!("{what}: H"),
            &ctx.download_f32(&got.h).unwrap(),
            &want.h,
            1e-5,
        );
        let grad_s = rng.vec(len, -1.0, 1.0);
        let grad_x = qsnn_backward(ctx, &upload(&grad_s, &shape), &got.h, t, &cfg).unwrap();
        let h = ctx.download_f32(&got.h).unwrap();
        let want_grad = reference::lif::qsnn_backward(&cfg, t, &grad_s, &h);
        assert_close(
            &format!("{what}: grad"),
            &ctx.download_f32(&grad_x).unwrap(),
            &want_grad,
            1e-5,
        );
        assert!(
            want_grad.iter().any(|g| g.abs() > 1e-3),
            "{what}: gradients all ~0"
        );
    }
}

/// Hand case of the quantized membrane, 2 neurons, T = 2, inputs [0.5, 0.2] then
/// [0.9, 0.91]. Step 0: H = x, no spike, U = tanh(H) = [0.46211716, 0.19737533], the
/// scale alpha = 0.46211716. With 2 bits (1 level): Vq = [alpha, round(0.427) alpha = 0],
/// so H1 = [0.5 alpha + 0.9, 0.91] = [1.1310586, 0.91]: spikes [1, 0]. With 8 bits (127
/// levels): Vq[1] = round(54.24) alpha / 127 = 0.19649076, H1[1] = 1.0082454: spikes
/// [1, 1]. The quantized membrane decides the second spike.
#[test]
fn qsnn_hand_computed_quantization() {
    let x = [0.5, 0.2, 0.9, 0.91];
    for (bits, h1, spikes1) in [
        (2, [1.1310586, 0.91], [1.0, 0.0]),
        (8, [1.1310586, 1.0082454], [1.0, 1.0]),
    ] {
        let cfg = QsnnConfig {
            bits,
            ..QsnnConfig::default()
        };
        let want_h = [0.5, 0.2, h1[0], h1[1]];
        let want_s = [0.0, 0.0, spikes1[0], spikes1[1]];
        let r = reference::lif::qsnn_forward(&cfg, 2, &x);
        assert_exact(
            &format!("{bits} bits: reference spikes"),
            &r.spikes,
            &want_s,
        );
        assert_close(&format!("{bits} bits: reference H"), &r.h, &want_h, 1e-6);
        let got = qsnn_forward(ctx(), &upload(&x, &[2, 2]), 2, &cfg).unwrap();
        assert_exact(
            &format!("{bits} bits: spikes"),
            &ctx().download_f32(&got.spikes).unwrap(),
            &want_s,
        );
        assert_close(
            &format!("{bits} bits: H"),
            &ctx().download_f32(&got.h).unwrap(),
            &want_h,
            1e-6,
        );
    }
    // The Q-SNN neuron fires strictly above v_th: H = 1 does not fire, 1.5 does.
    let cfg = QsnnConfig::default();
    let got = qsnn_forward(ctx(), &upload(&[1.0, 1.5], &[1, 2]), 1, &cfg).unwrap();
    assert_exact(
        "strict",
        &ctx().download_f32(&got.spikes).unwrap(),
        &[0.0, 1.0],
    );
    assert_exact(
        "strict ref",
        &reference::lif::qsnn_forward(&cfg, 1, &[1.0, 1.5]).spikes,
        &[0.0, 1.0],
    );
    // A layer whose membranes are all 0 (scale 0) quantizes to 0, not NaN.
    let cfg = QsnnConfig::default();
    let got = qsnn_forward(ctx(), &upload(&[0.0; 6], &[3, 2]), 3, &cfg).unwrap();
    assert_exact("zeros", &ctx().download_f32(&got.h).unwrap(), &[0.0; 6]);
}

/// The triangle surrogate's primitive (a piecewise quadratic step).
fn triangle_primitive(x: f64, gamma: f64) -> f64 {
    if x <= -gamma {
        0.0
    } else if x < 0.0 {
        (x + gamma).powi(2) / (2.0 * gamma * gamma)
    } else if x < gamma {
        1.0 - (gamma - x).powi(2) / (2.0 * gamma * gamma)
    } else {
        1.0
    }
}

#[test]
fn qsnn_reference_backward_is_the_derivative_of_the_smooth_forward() {
    // Smooth Q-SNN: the step becomes the triangle's primitive, and the straight-through
    // rounding the identity, so Vq = alpha clamp(U / alpha) = U = tanh(M).
    for (i, gamma) in [1.0f32, 0.7].iter().enumerate() {
        let cfg = QsnnConfig {
            gamma: *gamma,
            ..QsnnConfig::default()
        };
        let (t, n) = (6, 5);
        let mut rng = Rng::new(900 + i as u64);
        let x: Vec<f64> = rng
            .vec(t * n, -0.5, 2.0)
            .iter()
            .map(|&v| v as f64)
            .collect();
        let w: Vec<f64> = rng
            .vec(t * n, -1.0, 1.0)
            .iter()
            .map(|&v| v as f64)
            .collect();
        let smooth = |xs: &[f64]| -> (Vec<f64>, Vec<f64>) {
            let (mut h, mut s) = (vec![0.0; xs.len()], vec![0.0; xs.len()]);
            for j in 0..n {
                let mut v = 0.0f64;
                for step in 0..t {
                    let at = step * n + j;
                    h[at] = v * cfg.decay as f64 + xs[at];
                    s[at] = triangle_primitive(h[at] - cfg.v_th as f64, cfg.gamma as f64);
                    v = ((1.0 - s[at]) * h[at]).tanh();
                }
            }
            (h, s)
        };
        let (h, s) = smooth(&x);
        let loss = |xs: &[f64]| smooth(xs).1.iter().zip(&w).map(|(s, w)| s * w).sum::<f64>();
        let analytic =
            reference::lif::qsnn_backward_with_spikes(&cfg, t, &f32s(&w), &f32s(&h), &f32s(&s));
        gradient_check(&format!("qsnn gamma {gamma}"), &x, &w, loss, &analytic);
    }
}

// ---- benchmark workloads ----

#[test]
fn bench_workloads_run_at_a_tiny_size() {
    let ctx = ctx();
    for kernel in LifKernel::ALL {
        let w = LifWorkload::new(ctx, kernel, 2, 3, 40).unwrap();
        assert!(w.bytes() > 0.0);
        w.run(ctx).unwrap();
        let copy = CopyWorkload::matching(ctx, &w).unwrap();
        assert!(
            (copy.bytes() - w.bytes()).abs() <= 8.0,
            "{kernel:?}: {} vs {}",
            copy.bytes(),
            w.bytes()
        );
        copy.run(ctx).unwrap();
        ctx.sync().unwrap();
    }
    let forward = LifWorkload::new(ctx, LifKernel::Forward, 2, 3, 40).unwrap();
    assert_eq!(forward.bytes(), (12 * 2 * 3 * 40) as f64);
    assert_eq!(forward.shape(), "2x3x40");
}
