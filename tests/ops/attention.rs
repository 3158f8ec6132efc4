//! The attention forms (ops/attention) against their CPU references on odd sizes (N and
//! d not multiples of 32, maps wider than 128 bits), with both kernel variants; and the
//! references' backward passes against finite differences of their (surrogate)
//! forwards, in f64.

use bitspike::ops::attention::{
    self, a2os2a_backward, a2os2a_forward, binary_attention_backward, binary_attention_forward,
    ssa_backward, ssa_bin_backward, ssa_bin_forward, ssa_forward, AttnShape, BinaryAttentionConfig,
    MapLif, MapOrder, SsaBinConfig, SsaBinState, SsaPath,
};
use bitspike::ops::PackMode;
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
                let want = cpu::binary_forward(&q, &k, &v, &f64s(&lambda), &s, &cfg);
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
                let want = cpu::binary_backward(&q, &k, &v, &f64s(&lambda), &f64s(&dy), &s, &cfg);
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
    let reset = cpu::lif_map_forward(&x, steps, &lif);
    let grad = cpu::lif_map_backward(&x, &w, steps, &lif);
    check_fd("map LIF", &x, &grad, |xp| {
        weighted(&w, &cpu::lif_map_smooth(xp, &reset, steps, &lif))
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
        let base = cpu::binary_forward(&q, &k, &v, &lambda, &s, &cfg);
        assert_mixed("fd binary", &base.map);
        let g = cpu::binary_backward(&q, &k, &v, &lambda, &w, &s, &cfg);
        let loss = |q: &[f64], k: &[f64], v: &[f64], l: &[f64]| {
            let y = cpu::binary_forward_surrogate(q, k, v, l, &s, &cfg, &base);
            weighted(&w, &y)
        };
        // The surrogate forward's value at the base point is the real forward's.
        close64(
            "surrogate value",
            &cpu::binary_forward_surrogate(&q, &k, &v, &lambda, &s, &cfg, &base),
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
