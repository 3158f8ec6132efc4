//! The attention forms (ops/attention) against their CPU references on odd sizes (N and
//! d not multiples of 32, maps wider than 128 bits), with both kernel variants; and the
//! references' backward passes against finite differences of their (surrogate)
//! forwards, in f64.

use bitspike::ops::attention::{
    self, a2os2a_backward, a2os2a_forward, binary_attention_backward, binary_attention_forward,
    ssa_backward, ssa_bin_backward, ssa_bin_forward, ssa_forward, AttentionForm, AttnShape,
    BinaryAttentionConfig, FormInputs, FormParam, FormParamKind, FormSetup, MapLif, MapOrder,
    SsaBinConfig, SsaBinState, SsaPath, SSA_SCALE,
};
use bitspike::ops::{LifConfig, Neuron, PackMode};
use bitspike::reference::attention as cpu;
use bitspike::{DType, Error, GpuContext, Tensor};

use crate::common::{assert_close, assert_exact, contexts, ctx, Rng};

/// (T, B, heads, N, d): the odd sizes every GPU form is checked on, N and d past one
/// 64-row / 64-column workgroup of the map kernels and past one 128-bit packed chunk.
const SHAPES: &[(usize, usize, usize, usize, usize)] = &[
    (2, 2, 3, 37, 19),
    (1, 1, 1, 1, 1),
    (3, 1, 2, 70, 33),
    (2, 1, 1, 130, 5),
    (2, 2, 1, 9, 131),
    // d a multiple of 4: the 4-column transposed packing, and the vec4 variants of the
    // products and of the Features map's backward.
    (2, 1, 2, 37, 12),
    // N a multiple of 4 (the vec4 variants of the Tokens map's and SSA_Bin's backward),
    // over two 128-bit chunks.
    (2, 1, 2, 132, 20),
];

fn shape((t, b, heads, n, d): (usize, usize, usize, usize, usize)) -> AttnShape {
    AttnShape { t, b, heads, n, d }
}

fn f64s(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| v as f64).collect()
}

fn f32s(x: &[f64]) -> Vec<f32> {
    x.iter().map(|&v| v as f32).collect()
}

/// Q, K, V as host values and GPU tensors.
struct Qkv {
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    tq: Tensor,
    tk: Tensor,
    tv: Tensor,
}

impl Qkv {
    fn new(ctx: &GpuContext, s: &AttnShape, q: Vec<f32>, k: Vec<f32>, v: Vec<f32>) -> Self {
        let up = |x: &[f32]| ctx.upload_f32(x, &s.dims()).unwrap();
        Self {
            tq: up(&q),
            tk: up(&k),
            tv: up(&v),
            q,
            k,
            v,
        }
    }

    /// Spikes at `rate`, capped so that the expected score over d stays about 2: wider
    /// heads would otherwise fill the thresholded maps with ones.
    fn spikes(ctx: &GpuContext, s: &AttnShape, rng: &mut Rng, rate: f32) -> Self {
        let rate = rate.min((2.0 / s.d as f32).sqrt());
        let len = s.dims().iter().product();
        let q = rng.spikes(len, rate);
        let k = rng.spikes(len, rate);
        let v = rng.spikes(len, rate);
        Self::new(ctx, s, q, k, v)
    }

    fn host(&self) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        (f64s(&self.q), f64s(&self.k), f64s(&self.v))
    }
}

fn download(ctx: &GpuContext, t: &Tensor) -> Vec<f64> {
    f64s(&ctx.download_f32(t).unwrap())
}

/// A packed map as its {0,1} values, after checking its words (padding included) against
/// the packing of `want`.
fn download_map(ctx: &GpuContext, t: &Tensor, want: &[f64]) -> Vec<f64> {
    assert_eq!(t.dtype(), DType::PackedBits);
    let cols = *t.shape().last().unwrap();
    let rows = t.len() / cols;
    let words: Vec<u32> = ctx.download_words(t).unwrap();
    let want_words = bitspike::reference::pack::pack_bits(&f32s(want), cols, PackMode::Spikes);
    assert_exact("packed map words", &words, &want_words);
    f64s(&bitspike::reference::pack::unpack_bits(
        &words,
        rows,
        cols,
        PackMode::Spikes,
    ))
}

fn close(what: &str, got: &[f64], want: &[f64], eps: f32) {
    assert_close(what, &f32s(got), &f32s(want), eps);
}

fn close64(what: &str, got: &[f64], want: &[f64], eps: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= eps * (1.0 + w.abs()),
            "{what}: index {i}: got {g}, want {w}"
        );
    }
}

fn fraction(x: &[f64], on: impl Fn(f64) -> bool) -> f64 {
    x.iter().filter(|&&v| on(v)).count() as f64 / x.len().max(1) as f64
}

/// A map that is all zeros or all ones tests nothing: insist on both where there is room.
fn assert_mixed(what: &str, map: &[f64]) {
    if map.len() >= 64 {
        let r = fraction(map, |v| v != 0.0);
        assert!(r > 0.0 && r < 1.0, "{what}: degenerate map (rate {r})");
    }
}

// ---- SSA ------------------------------------------------------------------------------

#[test]
fn ssa_forward_matches_reference_on_both_paths() {
    for ctx in contexts() {
        let mut rng = Rng::new(21);
        for &dims in SHAPES {
            let s = shape(dims);
            let x = Qkv::spikes(ctx, &s, &mut rng, 0.4);
            let (q, k, v) = x.host();
            let want = cpu::ssa_forward(&q, &k, &v, &s, 0.125);
            for path in [SsaPath::Binary, SsaPath::F32] {
                let what = format!("ssa {path:?} {dims:?}");
                let (y, saved) = ssa_forward(ctx, &x.tq, &x.tk, &x.tv, 0.125, path).unwrap();
                assert_eq!(y.shape(), &s.dims());
                close(&what, &download(ctx, &y), &want.y, 1e-5);
                close(&what, &download(ctx, &saved.scores), &want.scores, 1e-6);
                let rate = saved.rate.read(ctx).unwrap();
                assert_eq!(rate, fraction(&want.scores, |v| v != 0.0), "{what}: rate");
            }
        }
    }
}

#[test]
fn ssa_backward_matches_reference() {
    for ctx in contexts() {
        let mut rng = Rng::new(22);
        for &dims in SHAPES {
            let s = shape(dims);
            let x = Qkv::spikes(ctx, &s, &mut rng, 0.4);
            let (q, k, v) = x.host();
            let dy = rng.vec(q.len(), -1.0, 1.0);
            let tdy = ctx.upload_f32(&dy, &s.dims()).unwrap();
            let want = cpu::ssa_backward(&q, &k, &v, &f64s(&dy), &s, 0.125);
            for path in [SsaPath::Binary, SsaPath::F32] {
                let what = format!("ssa backward {path:?} {dims:?}");
                let (_, saved) = ssa_forward(ctx, &x.tq, &x.tk, &x.tv, 0.125, path).unwrap();
                let g = ssa_backward(ctx, &tdy, &saved).unwrap();
                close(&format!("{what} dq"), &download(ctx, &g.dq), &want.dq, 1e-4);
                close(&format!("{what} dk"), &download(ctx, &g.dk), &want.dk, 1e-4);
                close(&format!("{what} dv"), &download(ctx, &g.dv), &want.dv, 1e-4);
            }
        }
    }
}

// ---- A2OS2A ---------------------------------------------------------------------------

#[test]
fn a2os2a_forward_and_backward_match_reference() {
    for ctx in contexts() {
        let mut rng = Rng::new(23);
        for &dims in SHAPES {
            let s = shape(dims);
            let len = s.dims().iter().product();
            let q = rng.spikes(len, 0.4);
            // ReLU output: non-negative with exact zeros.
            let k = rng.vec(len, -1.0, 2.0).iter().map(|x| x.max(0.0)).collect();
            let v = (0..len)
                .map(|_| [-1.0, 0.0, 1.0][rng.next_u64() as usize % 3])
                .collect();
            let x = Qkv::new(ctx, &s, q, k, v);
            let (q, k, v) = x.host();
            let what = format!("a2os2a {dims:?}");
            let want = cpu::a2os2a_forward(&q, &k, &v, &s);
            let (out, saved) = a2os2a_forward(ctx, &x.tq, &x.tk, &x.tv).unwrap();
            close(&what, &download(ctx, &out), &want.y, 1e-4);
            close(&what, &download(ctx, &saved.scores), &want.scores, 1e-5);
            let rate = saved.rate.read(ctx).unwrap();
            let want_rate = fraction(&want.scores, |v| v != 0.0);
            assert!(
                (rate - want_rate).abs() < 1e-12,
                "{what}: rate {rate} vs {want_rate}"
            );

            let dy = rng.vec(len, -1.0, 1.0);
            let g = a2os2a_backward(ctx, &ctx.upload_f32(&dy, &s.dims()).unwrap(), &saved).unwrap();
            let want = cpu::a2os2a_backward(&q, &k, &v, &f64s(&dy), &s);
            close(&format!("{what} dq"), &download(ctx, &g.dq), &want.dq, 1e-4);
            close(&format!("{what} dk"), &download(ctx, &g.dk), &want.dk, 1e-4);
            close(&format!("{what} dv"), &download(ctx, &g.dv), &want.dv, 1e-4);
        }
    }
}

// ---- BESTformer binary attention -------------------------------------------------------

fn binary_config(order: MapOrder) -> BinaryAttentionConfig {
    BinaryAttentionConfig {
        order,
        ..Default::default()
    }
}

#[test]
fn binary_attention_forward_matches_reference_in_both_orders() {
    for ctx in contexts() {
        let mut rng = Rng::new(24);
        for order in [MapOrder::Tokens, MapOrder::Features] {
            for &dims in SHAPES {
                let s = shape(dims);
                let what = format!("binary {order:?} {dims:?}");
                // Sparser spikes for the d x d map, which sums over N.
                let rate = if order == MapOrder::Tokens { 0.3 } else { 0.15 };
                let x = Qkv::spikes(ctx, &s, &mut rng, rate);
                let lambda = rng.vec(s.t * s.heads, 0.5, 1.5);
                let tl = ctx.upload_f32(&lambda, &[s.t, s.heads]).unwrap();
                let cfg = binary_config(order);
                let (y, saved) =
                    binary_attention_forward(ctx, &x.tq, &x.tk, &x.tv, &tl, &cfg).unwrap();
                let (q, k, v) = x.host();
                let want = cpu::binary_attention_forward(&q, &k, &v, &f64s(&lambda), &s, &cfg);
                let map = download_map(ctx, &saved.map, &want.map);
                assert_exact(&format!("{what} map"), &map, &want.map);
                assert_mixed(&what, &map);
                close(&format!("{what} y"), &download(ctx, &y), &want.y, 1e-6);
                let rate = saved.rate.read(ctx).unwrap();
                assert_eq!(rate, fraction(&want.map, |v| v != 0.0), "{what}: rate");
            }
        }
    }
}

#[test]
fn binary_attention_backward_matches_reference_in_both_orders() {
    for ctx in contexts() {
        let mut rng = Rng::new(25);
        for order in [MapOrder::Tokens, MapOrder::Features] {
            for &dims in SHAPES {
                let s = shape(dims);
                let what = format!("binary backward {order:?} {dims:?}");
                let rate = if order == MapOrder::Tokens { 0.3 } else { 0.15 };
                let x = Qkv::spikes(ctx, &s, &mut rng, rate);
                let lambda = rng.vec(s.t * s.heads, 0.5, 1.5);
                let tl = ctx.upload_f32(&lambda, &[s.t, s.heads]).unwrap();
                let dy = rng.vec(x.q.len(), -1.0, 1.0);
                let cfg = binary_config(order);
                let (_, saved) =
                    binary_attention_forward(ctx, &x.tq, &x.tk, &x.tv, &tl, &cfg).unwrap();
                let g = binary_attention_backward(
                    ctx,
                    &ctx.upload_f32(&dy, &s.dims()).unwrap(),
                    &saved,
                )
                .unwrap();
                let (q, k, v) = x.host();
                let want = cpu::binary_attention_backward(
                    &q,
                    &k,
                    &v,
                    &f64s(&lambda),
                    &f64s(&dy),
                    &s,
                    &cfg,
                );
                close(&format!("{what} dq"), &download(ctx, &g.dq), &want.dq, 1e-4);
                close(&format!("{what} dk"), &download(ctx, &g.dk), &want.dk, 1e-4);
                close(&format!("{what} dv"), &download(ctx, &g.dv), &want.dv, 1e-4);
                assert_eq!(g.dlambda.shape(), &[s.t, s.heads]);
                close(
                    &format!("{what} dlambda"),
                    &download(ctx, &g.dlambda),
                    &want.dlambda,
                    1e-4,
                );
            }
        }
    }
}

// ---- SSA_Bin ------------------------------------------------------------------------

/// A state with per-head thresholds that no integer score equals, and a non-zero mean.
fn ssa_bin_state(
    ctx: &GpuContext,
    s: &AttnShape,
    rng: &mut Rng,
) -> (SsaBinState, Vec<f64>, Vec<f64>) {
    let delta: Vec<f32> = (0..s.heads).map(|h| 0.6 + 1.3 * h as f32).collect();
    let mean = rng.vec(s.heads * s.d, -0.5, 0.5);
    let state = SsaBinState {
        delta: ctx.upload_f32(&delta, &[s.heads]).unwrap(),
        mean: ctx.upload_f32(&mean, &[s.heads, s.d]).unwrap(),
    };
    (state, f64s(&delta), f64s(&mean))
}

#[test]
fn ssa_bin_forward_matches_reference_in_training_and_eval() {
    for ctx in contexts() {
        let mut rng = Rng::new(26);
        for training in [true, false] {
            for &dims in SHAPES {
                let s = shape(dims);
                let what = format!("ssa_bin training={training} {dims:?}");
                let x = Qkv::spikes(ctx, &s, &mut rng, 0.3);
                let (state, delta, mean) = ssa_bin_state(ctx, &s, &mut rng);
                let cfg = SsaBinConfig {
                    kappa: 1.5,
                    training,
                    ..Default::default()
                };
                let (out, saved) = ssa_bin_forward(ctx, &x.tq, &x.tk, &x.tv, &state, &cfg).unwrap();
                let (q, k, v) = x.host();
                let want = cpu::ssa_bin_forward(&q, &k, &v, &delta, &mean, &s, &cfg);
                let map = download_map(ctx, &saved.map, &want.map);
                assert_exact(&format!("{what} map"), &map, &want.map);
                assert_mixed(&what, &map);
                close(&format!("{what} out"), &download(ctx, &out), &want.y, 1e-5);
                let rate = saved.rate.read(ctx).unwrap();
                assert_eq!(rate, fraction(&want.map, |v| v != 0.0), "{what}: rate");
                // The statistics after the step: updated in training, frozen in eval.
                close(
                    &format!("{what} delta"),
                    &download(ctx, &state.delta),
                    &want.delta,
                    1e-5,
                );
                close(
                    &format!("{what} mean"),
                    &download(ctx, &state.mean),
                    &want.mean,
                    1e-5,
                );
                if training {
                    assert!(want.delta != delta, "{what}: training moves Delta");
                } else {
                    assert_eq!(want.delta, delta, "{what}: eval freezes Delta");
                }
            }
        }
    }
}

#[test]
fn ssa_bin_backward_matches_reference() {
    for ctx in contexts() {
        let mut rng = Rng::new(27);
        for &dims in SHAPES {
            let s = shape(dims);
            let what = format!("ssa_bin backward {dims:?}");
            let x = Qkv::spikes(ctx, &s, &mut rng, 0.3);
            let (state, delta, mean) = ssa_bin_state(ctx, &s, &mut rng);
            let cfg = SsaBinConfig {
                kappa: 1.5,
                ..Default::default()
            };
            let (_, saved) = ssa_bin_forward(ctx, &x.tq, &x.tk, &x.tv, &state, &cfg).unwrap();
            let dy = rng.vec(x.q.len(), -1.0, 1.0);
            let g =
                ssa_bin_backward(ctx, &ctx.upload_f32(&dy, &s.dims()).unwrap(), &saved).unwrap();
            let (q, k, v) = x.host();
            let fwd = cpu::ssa_bin_forward(&q, &k, &v, &delta, &mean, &s, &cfg);
            let want = cpu::ssa_bin_backward(&q, &k, &v, &f64s(&dy), &s, &cfg, &fwd);
            close(&format!("{what} dq"), &download(ctx, &g.dq), &want.dq, 1e-4);
            close(&format!("{what} dk"), &download(ctx, &g.dk), &want.dk, 1e-4);
            close(&format!("{what} dv"), &download(ctx, &g.dv), &want.dv, 1e-4);
        }
    }
}

// ---- helpers and errors ----------------------------------------------------------------

#[test]
fn spike_packing_both_ways_and_unpack_match_reference() {
    for ctx in contexts() {
        let mut rng = Rng::new(28);
        for (batch, rows, cols) in [
            (1, 1, 1),
            (3, 37, 19),
            (2, 130, 5),
            (1, 5, 200),
            (2, 36, 44),
        ] {
            let x = rng.spikes(batch * rows * cols, 0.5);
            let tx = ctx.upload_f32(&x, &[batch, rows, cols]).unwrap();
            let bits = attention::pack_transposed(ctx, &tx).unwrap();
            assert_eq!(bits.shape(), &[batch, cols, rows]);
            let mut xt = vec![0f32; x.len()];
            for b in 0..batch {
                for r in 0..rows {
                    for c in 0..cols {
                        xt[(b * cols + c) * rows + r] = x[(b * rows + r) * cols + c];
                    }
                }
            }
            let want = bitspike::reference::pack::pack_bits(&xt, rows, PackMode::Spikes);
            let got: Vec<u32> = ctx.download_words(&bits).unwrap();
            assert_exact(
                &format!("pack_transposed {batch}x{rows}x{cols}"),
                &got,
                &want,
            );
            let rows_bits = attention::pack_spike_rows(ctx, &tx).unwrap();
            assert_eq!(rows_bits.shape(), &[batch, rows, cols]);
            let got: Vec<u32> = ctx.download_words(&rows_bits).unwrap();
            let want = bitspike::reference::pack::pack_bits(&x, cols, PackMode::Spikes);
            assert_exact(
                &format!("pack_spike_rows {batch}x{rows}x{cols}"),
                &got,
                &want,
            );
            let back = ctx
                .download_f32(&attention::unpack_bits(ctx, &bits).unwrap())
                .unwrap();
            assert_exact(&format!("unpack {batch}x{rows}x{cols}"), &back, &xt);
        }
    }
}

#[test]
fn attention_rejects_mismatched_shapes() {
    let ctx = ctx();
    let q = ctx.zeros(&[2, 1, 3, 5, 4], DType::F32).unwrap();
    let k = ctx.zeros(&[2, 1, 3, 6, 4], DType::F32).unwrap();
    let err = ssa_forward(ctx, &q, &k, &q, 0.125, SsaPath::Binary).unwrap_err();
    assert!(matches!(err, Error::Shape { .. }), "{err}");
    let lambda = ctx.zeros(&[2, 2], DType::F32).unwrap();
    let err = binary_attention_forward(ctx, &q, &q, &q, &lambda, &Default::default()).unwrap_err();
    assert!(matches!(err, Error::Shape { .. }), "{err}");
    let flat = ctx.zeros(&[30, 4], DType::F32).unwrap();
    let err = a2os2a_forward(ctx, &flat, &flat, &flat).unwrap_err();
    assert!(matches!(err, Error::Shape { .. }), "{err}");
    let state = SsaBinState::new(ctx, 3, 5, 0.0).unwrap();
    let err = ssa_bin_forward(ctx, &q, &q, &q, &state, &Default::default()).unwrap_err();
    assert!(matches!(err, Error::Shape { .. }), "{err}");
}

// ---- reference gradients against finite differences (CPU, f64) ----------------------

/// Tiny sizes for the finite-difference checks.
const FD_SHAPE: (usize, usize, usize, usize, usize) = (3, 1, 2, 5, 3);
const FD_EPS: f64 = 1e-6;

/// `sum(w * f(x))`.
fn weighted(w: &[f64], y: &[f64]) -> f64 {
    w.iter().zip(y).map(|(a, b)| a * b).sum()
}

/// Central differences of the scalar `loss` w.r.t. every element of `x`, against the
/// analytic gradient `grad`.
fn check_fd(what: &str, x: &[f64], grad: &[f64], loss: impl Fn(&[f64]) -> f64) {
    assert_eq!(x.len(), grad.len(), "{what}: length");
    let mut nontrivial = 0;
    for i in 0..x.len() {
        let mut xp = x.to_vec();
        xp[i] += FD_EPS;
        let mut xm = x.to_vec();
        xm[i] -= FD_EPS;
        let fd = (loss(&xp) - loss(&xm)) / (2.0 * FD_EPS);
        let tol = 1e-6 + 1e-5 * fd.abs().max(grad[i].abs());
        assert!(
            (fd - grad[i]).abs() <= tol,
            "{what}: index {i}: finite difference {fd}, backward {}",
            grad[i]
        );
        if grad[i].abs() > 1e-4 {
            nontrivial += 1;
        }
    }
    assert!(nontrivial > 0, "{what}: every gradient is zero");
}

fn spikes64(rng: &mut Rng, n: usize, rate: f32) -> Vec<f64> {
    f64s(&rng.spikes(n, rate))
}

#[test]
fn reference_map_lif_backward_matches_finite_differences() {
    let mut rng = Rng::new(31);
    let lif = MapLif::default();
    let (steps, len) = (4, 50);
    let x = f64s(&rng.vec(steps * len, -1.0, 3.0));
    let w = f64s(&rng.vec(steps * len, -1.0, 1.0));
    let reset = cpu::score_lif_map(&x, steps, &lif);
    let grad = cpu::score_lif_backward(&x, &w, steps, &lif);
    check_fd("map LIF", &x, &grad, |xp| {
        weighted(&w, &cpu::score_lif_smooth(xp, &reset, steps, &lif))
    });
}

#[test]
fn reference_ssa_and_a2os2a_backward_match_finite_differences() {
    let mut rng = Rng::new(32);
    let s = shape(FD_SHAPE);
    let len = s.dims().iter().product();
    let (q, k, v) = (
        f64s(&rng.vec(len, -1.0, 1.0)),
        f64s(&rng.vec(len, -1.0, 1.0)),
        f64s(&rng.vec(len, -1.0, 1.0)),
    );
    let w = f64s(&rng.vec(len, -1.0, 1.0));
    for scale in [0.125, 1.0] {
        let g = if scale == 1.0 {
            cpu::a2os2a_backward(&q, &k, &v, &w, &s)
        } else {
            cpu::ssa_backward(&q, &k, &v, &w, &s, scale)
        };
        let loss =
            |q: &[f64], k: &[f64], v: &[f64]| weighted(&w, &cpu::ssa_forward(q, k, v, &s, scale).y);
        check_fd("ssa dq", &q, &g.dq, |x| loss(x, &k, &v));
        check_fd("ssa dk", &k, &g.dk, |x| loss(&q, x, &v));
        check_fd("ssa dv", &v, &g.dv, |x| loss(&q, &k, x));
    }
}

#[test]
fn reference_binary_attention_backward_matches_finite_differences() {
    let mut rng = Rng::new(33);
    let s = shape(FD_SHAPE);
    let len = s.dims().iter().product();
    for order in [MapOrder::Tokens, MapOrder::Features] {
        let cfg = binary_config(order);
        let (q, k, v) = (
            spikes64(&mut rng, len, 0.6),
            spikes64(&mut rng, len, 0.6),
            spikes64(&mut rng, len, 0.6),
        );
        let lambda = f64s(&rng.vec(s.t * s.heads, 0.5, 1.5));
        let w = f64s(&rng.vec(len, -1.0, 1.0));
        let base = cpu::binary_attention_forward(&q, &k, &v, &lambda, &s, &cfg);
        assert_mixed("fd binary", &base.map);
        let g = cpu::binary_attention_backward(&q, &k, &v, &lambda, &w, &s, &cfg);
        let loss = |q: &[f64], k: &[f64], v: &[f64], l: &[f64]| {
            let y = cpu::binary_attention_forward_surrogate(q, k, v, l, &s, &cfg, &base);
            weighted(&w, &y)
        };
        // The surrogate forward's value at the base point is the real forward's.
        close64(
            "surrogate value",
            &cpu::binary_attention_forward_surrogate(&q, &k, &v, &lambda, &s, &cfg, &base),
            &base.y,
            1e-12,
        );
        let what = format!("binary {order:?}");
        check_fd(&format!("{what} dq"), &q, &g.dq, |x| {
            loss(x, &k, &v, &lambda)
        });
        check_fd(&format!("{what} dk"), &k, &g.dk, |x| {
            loss(&q, x, &v, &lambda)
        });
        check_fd(&format!("{what} dv"), &v, &g.dv, |x| {
            loss(&q, &k, x, &lambda)
        });
        check_fd(&format!("{what} dlambda"), &lambda, &g.dlambda, |x| {
            loss(&q, &k, &v, x)
        });
    }
}

#[test]
fn reference_ssa_bin_backward_matches_finite_differences() {
    let mut rng = Rng::new(34);
    let s = shape(FD_SHAPE);
    let len = s.dims().iter().product();
    let (q, k, v) = (
        spikes64(&mut rng, len, 0.6),
        spikes64(&mut rng, len, 0.6),
        spikes64(&mut rng, len, 0.6),
    );
    let delta = vec![0.7, 1.4];
    let mean = f64s(&rng.vec(s.heads * s.d, -0.5, 0.5));
    let w = f64s(&rng.vec(len, -1.0, 1.0));
    let cfg = SsaBinConfig {
        kappa: 1.5,
        ..Default::default()
    };
    let base = cpu::ssa_bin_forward(&q, &k, &v, &delta, &mean, &s, &cfg);
    assert_mixed("fd ssa_bin", &base.map);
    let g = cpu::ssa_bin_backward(&q, &k, &v, &w, &s, &cfg, &base);
    let loss = |q: &[f64], k: &[f64], v: &[f64]| {
        weighted(
            &w,
            &cpu::ssa_bin_forward_surrogate(q, k, v, &mean, &s, &cfg, &base),
        )
    };
    close64(
        "surrogate value",
        &cpu::ssa_bin_forward_surrogate(&q, &k, &v, &mean, &s, &cfg, &base),
        &base.y,
        1e-12,
    );
    check_fd("ssa_bin dq", &q, &g.dq, |x| loss(x, &k, &v));
    check_fd("ssa_bin dk", &k, &g.dk, |x| loss(&q, x, &v));
    check_fd("ssa_bin dv", &v, &g.dv, |x| loss(&q, &k, x));
}

// ---- the forms behind AttentionOp -----------------------------------------------------

/// (T, B, heads, N, d) of the form checks: odd everywhere, and d a multiple of 4 (the
/// vec4 kernel variants).
const FORM_SHAPES: &[(usize, usize, usize, usize, usize)] = &[(3, 2, 2, 13, 7), (2, 1, 3, 37, 12)];

/// Every op the registry builds: each form, the binary map in both orders.
fn form_setups(s: &AttnShape) -> Vec<(AttentionForm, FormSetup)> {
    let setup = |feature_order| FormSetup {
        time_steps: s.t,
        heads: s.heads,
        head_dim: s.d,
        feature_order,
    };
    let mut all: Vec<_> = AttentionForm::ALL.map(|f| (f, setup(false))).to_vec();
    all.push((AttentionForm::Binary, setup(true)));
    all
}

fn bits(ctx: &GpuContext, t: &Tensor) -> Vec<u32> {
    ctx.download_f32(t)
        .unwrap()
        .iter()
        .map(|x| x.to_bits())
        .collect()
}

/// Bit-exact equality of two f32 tensors (shapes included) that are not all zeros.
fn assert_same(ctx: &GpuContext, what: &str, got: &Tensor, want: &Tensor) {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    let want = bits(ctx, want);
    assert!(
        want.iter().any(|&b| f32::from_bits(b) != 0.0),
        "{what}: all zeros, which tests nothing"
    );
    assert_exact(what, &bits(ctx, got), &want);
}

/// Q, K and V as the branch neurons give them: spikes, a ReLU output, ternary values.
fn branch_values(rng: &mut Rng, neuron: Neuron, len: usize) -> Vec<f32> {
    match neuron {
        Neuron::Lif(_) => rng.spikes(len, 0.3),
        Neuron::Relu => rng.vec(len, -1.0, 2.0).iter().map(|x| x.max(0.0)).collect(),
        Neuron::Ternary(_) => (0..len)
            .map(|_| [-1.0, 0.0, 1.0][rng.next_u64() as usize % 3])
            .collect(),
        other => panic!("no attention branch ends in {other:?}"),
    }
}

/// A form tensor's test values: lambda in [0.5, 1.5], per-head thresholds that no integer
/// score equals, a non-zero shift.
fn form_values(rng: &mut Rng, p: &FormParam) -> Vec<f32> {
    let len = p.shape.iter().product();
    match p.name {
        "attn_delta" => (0..len).map(|h| 0.6 + 1.3 * h as f32).collect(),
        "attn_shift" => rng.vec(len, -0.5, 0.5),
        _ => rng.vec(len, 0.5, 1.5),
    }
}

/// What the direct functions give for a form: the output, dq, dk, dv and the learned
/// tensors' gradients, the map's firing rate and the bytes of every tensor the saved
/// state holds.
struct Direct {
    y: Tensor,
    grads: Vec<Tensor>,
    rate: f64,
    bytes: u64,
}

#[allow(clippy::too_many_arguments)]
fn direct(
    ctx: &GpuContext,
    form: AttentionForm,
    setup: &FormSetup,
    [q, k, v]: [&Tensor; 3],
    dy: &Tensor,
    learned: &[Tensor],
    stats: &[Tensor],
    update_stats: bool,
) -> Direct {
    let held = |ts: &[&Tensor]| ts.iter().map(|t| t.byte_len()).sum::<u64>();
    match form {
        AttentionForm::Ssa => {
            let (y, s) = ssa_forward(ctx, q, k, v, SSA_SCALE, SsaPath::Binary).unwrap();
            let g = ssa_backward(ctx, dy, &s).unwrap();
            Direct {
                y,
                grads: vec![g.dq, g.dk, g.dv],
                rate: s.rate.read(ctx).unwrap(),
                bytes: held(&[&s.q, &s.k, &s.v, &s.scores]),
            }
        }
        AttentionForm::Binary => {
            let lambda = learned[0]
                .reshape(&[setup.time_steps, setup.heads])
                .unwrap();
            let cfg = binary_config(if setup.feature_order {
                MapOrder::Features
            } else {
                MapOrder::Tokens
            });
            let (y, s) = binary_attention_forward(ctx, q, k, v, &lambda, &cfg).unwrap();
            let g = binary_attention_backward(ctx, dy, &s).unwrap();
            let (x, z) = &s.score_operands;
            Direct {
                y,
                grads: vec![g.dq, g.dk, g.dv, g.dlambda],
                rate: s.rate.read(ctx).unwrap(),
                bytes: held(&[&s.q, &s.k, &s.v, x, z, &s.map]),
            }
        }
        AttentionForm::SsaBin => {
            let state = SsaBinState {
                delta: stats[0].clone(),
                mean: stats[1].clone(),
            };
            let cfg = SsaBinConfig {
                training: update_stats,
                ..Default::default()
            };
            let (y, s) = ssa_bin_forward(ctx, q, k, v, &state, &cfg).unwrap();
            let g = ssa_bin_backward(ctx, dy, &s).unwrap();
            let (x, z) = &s.score_operands;
            Direct {
                y,
                grads: vec![g.dq, g.dk, g.dv],
                rate: s.rate.read(ctx).unwrap(),
                bytes: held(&[&s.q, &s.k, &s.v, x, z, &s.map]),
            }
        }
        AttentionForm::A2os2a => {
            let (y, s) = a2os2a_forward(ctx, q, k, v).unwrap();
            let g = a2os2a_backward(ctx, dy, &s).unwrap();
            Direct {
                y,
                grads: vec![g.dq, g.dk, g.dv],
                rate: s.rate.read(ctx).unwrap(),
                bytes: held(&[&s.q, &s.k, &s.v, &s.scores]),
            }
        }
    }
}

/// Each form through `AttentionForm::op` and `FormSaved::backward` gives bit for bit what
/// its direct functions give (SSA_Bin in training and eval, its statistics updated alike),
/// and its saved state counts the bytes of every tensor it holds.
#[test]
fn every_form_through_its_op_matches_its_direct_functions() {
    let ctx = ctx();
    let mut rng = Rng::new(41);
    for &dims in FORM_SHAPES {
        let s = shape(dims);
        let len = s.dims().iter().product();
        for (form, setup) in form_setups(&s) {
            for update_stats in [false, true] {
                let what = format!("{form:?} {setup:?} update_stats={update_stats} {dims:?}");
                let op = form.op(&setup);
                let [q, k, v] = op.branch_neurons().map(|n| {
                    ctx.upload_f32(&branch_values(&mut rng, n, len), &s.dims())
                        .unwrap()
                });
                let dy = ctx.upload_f32(&rng.vec(len, -1.0, 1.0), &s.dims()).unwrap();
                let params = op.params();
                let values: Vec<Vec<f32>> =
                    params.iter().map(|p| form_values(&mut rng, p)).collect();
                // Two copies of each tensor: the running statistics move in place.
                let upload = |kind: FormParamKind| -> Vec<Tensor> {
                    params
                        .iter()
                        .zip(&values)
                        .filter(|(p, _)| p.kind == kind)
                        .map(|(p, x)| ctx.upload_f32(x, &p.shape).unwrap())
                        .collect()
                };
                let (learned, stats) = (
                    upload(FormParamKind::Learned),
                    upload(FormParamKind::RunningStat),
                );
                let want_stats = upload(FormParamKind::RunningStat);
                let inputs = FormInputs {
                    learned: &learned,
                    stats: &stats,
                    update_stats,
                };
                let (y, saved) = op.forward(ctx, &q, &k, &v, &inputs).unwrap();
                let g = saved.backward(ctx, &dy).unwrap();
                let want = direct(
                    ctx,
                    form,
                    &setup,
                    [&q, &k, &v],
                    &dy,
                    &learned,
                    &want_stats,
                    update_stats,
                );

                assert_same(ctx, &format!("{what} y"), &y, &want.y);
                let got = [&g.dq, &g.dk, &g.dv];
                for (name, (got, want)) in ["dq", "dk", "dv"]
                    .iter()
                    .zip(got.into_iter().zip(&want.grads))
                {
                    assert_same(ctx, &format!("{what} {name}"), got, want);
                }
                assert_eq!(g.dlearned.len(), learned.len(), "{what}: dlearned");
                for ((d, p), want) in g.dlearned.iter().zip(&params).zip(&want.grads[3..]) {
                    assert_eq!(d.shape(), &p.shape[..], "{what}: d{} as declared", p.name);
                    assert_same(
                        ctx,
                        &format!("{what} d{}", p.name),
                        &d.reshape(want.shape()).unwrap(),
                        want,
                    );
                }
                for (got, want) in stats.iter().zip(&want_stats) {
                    assert_exact(
                        &format!("{what} statistics"),
                        &bits(ctx, got),
                        &bits(ctx, want),
                    );
                }
                assert_eq!(saved.rate().read(ctx).unwrap(), want.rate, "{what}: rate");
                assert_eq!(saved.bytes(), want.bytes, "{what}: bytes");
            }
        }
    }
}

/// `bytes()` by hand at (3, 2, 2, 13, 7): Q, K, V in f32, then f32 N x N scores or packed
/// rows of 4 words (the d x d order: V^T and K^T packed along N, the map along d).
#[test]
fn form_saved_bytes_count_q_k_v_and_the_map() {
    let ctx = ctx();
    let mut rng = Rng::new(42);
    let s = shape((3, 2, 2, 13, 7));
    let (maps, n, d) = (s.maps() as u64, s.n as u64, s.d as u64);
    let qkv = 3 * maps * n * d * 4;
    let row = 4 * 4; // a packed row of up to 128 bits
    for (form, setup) in form_setups(&s) {
        let op = form.op(&setup);
        let x = Qkv::spikes(ctx, &s, &mut rng, 0.3);
        let tensors: Vec<Tensor> = op
            .params()
            .iter()
            .map(|p| ctx.upload_f32(&form_values(&mut rng, p), &p.shape).unwrap())
            .collect();
        let (learned, stats) = tensors.split_at(usize::from(form == AttentionForm::Binary));
        let inputs = FormInputs {
            learned,
            stats,
            update_stats: false,
        };
        let (_, saved) = op.forward(ctx, &x.tq, &x.tk, &x.tv, &inputs).unwrap();
        let want = match (form, setup.feature_order) {
            (AttentionForm::Ssa | AttentionForm::A2os2a, _) => qkv + maps * n * n * 4,
            (_, false) => qkv + 3 * maps * n * row,
            (_, true) => qkv + 2 * maps * d * row + maps * d * row,
        };
        assert_eq!(saved.bytes(), want, "{form:?} {setup:?}");
    }
}

/// The forms' tensors are the model inventory's (names, shapes, kinds, order and initial
/// values, in both families and in the patch-16 d x d order), and as docs/models.md gives them.
#[test]
fn form_params_are_the_model_inventory() {
    use bitspike::nn::{init_state, param_specs, ModelConfig, ParamRole};
    for preset in ["spikformer-2-64", "bestformer-2-64", "bestformer-8-512"] {
        for form in AttentionForm::ALL {
            let mut cfg = ModelConfig::preset(preset).unwrap();
            let tc = cfg.transformer_mut().unwrap();
            tc.attention = form;
            let tc = *tc;
            let setup = FormSetup {
                time_steps: cfg.time_steps,
                heads: tc.heads,
                head_dim: tc.head_dim(),
                feature_order: tc.patch_size == 16,
            };
            let what = format!("{preset} {form:?}");
            let params = form.op(&setup).params();
            let (t, h, d) = (cfg.time_steps, tc.heads, tc.head_dim());
            let stat = |name, shape| FormParam {
                name,
                shape,
                kind: FormParamKind::RunningStat,
                init: 0.0,
            };
            let literal = match form {
                AttentionForm::Binary => vec![FormParam {
                    name: "lambda_attn",
                    shape: vec![t, 1, h, 1, 1],
                    kind: FormParamKind::Learned,
                    init: 1.0,
                }],
                AttentionForm::SsaBin => {
                    vec![stat("attn_delta", vec![h]), stat("attn_shift", vec![h, d])]
                }
                AttentionForm::Ssa | AttentionForm::A2os2a => vec![],
            };
            assert_eq!(params, literal, "{what}");
            let state = init_state(&cfg, 1);
            for block in 0..tc.depth {
                let prefix = format!("block.{block}.attn.");
                // The form's tensors are the attention's only names without a sub-layer.
                let inventory: Vec<_> = param_specs(&cfg)
                    .into_iter()
                    .filter(|p| {
                        p.name
                            .strip_prefix(&prefix)
                            .is_some_and(|n| !n.contains('.'))
                    })
                    .collect();
                assert_eq!(inventory.len(), params.len(), "{what}: {inventory:?}");
                for (spec, p) in inventory.iter().zip(&params) {
                    assert_eq!(spec.name, format!("{prefix}{}", p.name), "{what}");
                    assert_eq!(spec.shape, p.shape, "{what}: {}", p.name);
                    let kind = match spec.role {
                        ParamRole::Trainable => FormParamKind::Learned,
                        ParamRole::Buffer => FormParamKind::RunningStat,
                        other => panic!("{what}: {} is a {other:?}", spec.name),
                    };
                    assert_eq!(kind, p.kind, "{what}: {}", p.name);
                    let init = &state.tensors[&spec.name].data;
                    assert!(
                        init.iter().all(|&x| x == p.init),
                        "{what}: {} starts at {}",
                        p.name,
                        p.init
                    );
                }
            }
        }
    }
}

/// The branch neurons and the attention LIF as the model layer uses them today, and the
/// two products as the energy report records them.
#[test]
fn form_neurons_outputs_and_products() {
    let ctx = ctx();
    let mut rng = Rng::new(43);
    let s = shape((3, 2, 2, 13, 7));
    let (maps, n, d) = (s.maps() as u64, s.n as u64, s.d as u64);
    let lif = Neuron::Lif(LifConfig::default());
    for (form, setup) in form_setups(&s) {
        let what = format!("{form:?} {setup:?}");
        let op = form.op(&setup);
        let a2os2a = form == AttentionForm::A2os2a;
        let want = if a2os2a {
            [lif, Neuron::Relu, Neuron::Ternary(LifConfig::default())]
        } else {
            [lif; 3]
        };
        assert_eq!(op.branch_neurons(), want, "{what}");
        assert_eq!(op.output_is_spikes(), !a2os2a, "{what}");

        let x = Qkv::spikes(ctx, &s, &mut rng, 0.3);
        let tensors: Vec<Tensor> = op
            .params()
            .iter()
            .map(|p| ctx.upload_f32(&form_values(&mut rng, p), &p.shape).unwrap())
            .collect();
        let (learned, stats) = tensors.split_at(usize::from(form == AttentionForm::Binary));
        let inputs = FormInputs {
            learned,
            stats,
            update_stats: false,
        };
        let (_, saved) = op.forward(ctx, &x.tq, &x.tk, &x.tv, &inputs).unwrap();
        let p = saved.products();
        let (first, input, second, macs) = if setup.feature_order && form == AttentionForm::Binary {
            ("kv_product", &x.tk, "qa_product", maps * d * d * n)
        } else {
            ("qk_product", &x.tq, "av_product", maps * n * n * d)
        };
        assert_eq!((p.first, p.second), (first, second), "{what}");
        assert_eq!((p.first_macs, p.second_macs), (macs, macs), "{what}");
        assert_same(ctx, &format!("{what} first input"), &p.first_input, input);
    }
}

/// The op refuses a wrong number of form tensors instead of indexing past them.
#[test]
fn form_op_rejects_missing_tensors() {
    let ctx = ctx();
    let s = shape((2, 1, 2, 5, 4));
    let q = ctx.zeros(&s.dims(), DType::F32).unwrap();
    for (form, setup) in form_setups(&s) {
        let extra = [ctx.zeros(&[1], DType::F32).unwrap()];
        let given: &[Tensor] = if form.op(&setup).params().is_empty() {
            &extra
        } else {
            &[]
        };
        let inputs = FormInputs {
            learned: given,
            stats: given,
            update_stats: false,
        };
        let err = form
            .op(&setup)
            .forward(ctx, &q, &q, &q, &inputs)
            .unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{form:?}: {err}");
    }
}

// ---- bench workloads ---------------------------------------------------------------

#[test]
fn attention_bench_workloads_run_on_a_tiny_shape() {
    use bitspike::bench::attention::{AttentionKernel, AttentionPass, AttentionWorkload};
    let ctx = ctx();
    for kernel in AttentionKernel::ALL {
        for pass in AttentionPass::ALL {
            let work = AttentionWorkload::new(ctx, kernel, pass, (2, 2, 3, 9, 5)).unwrap();
            assert!(work.macs() > 0.0);
            assert_eq!(work.shape_name(), "2x2x3x9x5");
            work.run(ctx).unwrap();
            ctx.sync()
                .unwrap_or_else(|e| panic!("{}: {e}", work.name()));
        }
    }
    // A shape whose f32 maps exceed the binding limit is refused when set up.
    let n = ((ctx.limits.max_storage_buffer_binding_size / 4) as f64).sqrt() as usize + 1;
    let shape = (1, 1, 1, n, 1);
    let err = AttentionWorkload::new(ctx, AttentionKernel::Ssa, AttentionPass::Forward, shape);
    assert!(matches!(err, Err(Error::BufferTooLarge { .. })));
}
