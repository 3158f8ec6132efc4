//! CPU reference of the attention forms (ops/attention), in f64 on plain loops, per
//! (t, b, h) matrix. Tensors are flat `[T, B, heads, N, d]` (Q, K, V, Y), maps
//! `[T * B * heads, rows, cols]` laid out as on the GPU (the Features order of binary
//! attention stores `A^T`), binary maps as {0,1} values.
//!
//! Besides forward and backward, each form with a binary map has a *surrogate forward*
//! for gradient checks: the same computation with each step replaced by its surrogate's
//! primitive, in straight-through form `map = hard(base) + smooth(x) - smooth(base)`, so
//! its value at the base point is the real forward's and its derivative there is the
//! surrogate gradient backward computes. Whatever backward detaches (the LIF reset, the
//! other entries of a softmax row) is frozen at the base point.

use crate::ops::attention::{AttnShape, BinaryAttentionConfig, MapLif, MapOrder, SsaBinConfig};

// ---- matrix helpers -----------------------------------------------------------------

/// `a [m, k] b [k, n]`.
fn mm_ab(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for kk in 0..k {
            let x = a[i * k + kk];
            for j in 0..n {
                c[i * n + j] += x * b[kk * n + j];
            }
        }
    }
    c
}

/// `a [m, k] b^T` with `b [n, k]`.
fn mm_abt(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            c[i * n + j] = (0..k).map(|kk| a[i * k + kk] * b[j * k + kk]).sum();
        }
    }
    c
}

/// `a^T b` with `a [k, m]`, `b [k, n]`.
fn mm_atb(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut c = vec![0.0; m * n];
    for kk in 0..k {
        for i in 0..m {
            let x = a[kk * m + i];
            for j in 0..n {
                c[i * n + j] += x * b[kk * n + j];
            }
        }
    }
    c
}

/// Apply `f(map index, matrices of that map...)` to every (t, b, h) and concatenate.
fn per_map(maps: usize, f: impl Fn(usize) -> Vec<f64>) -> Vec<f64> {
    (0..maps).flat_map(f).collect()
}

fn part(x: &[f64], m: usize, size: usize) -> &[f64] {
    &x[m * size..(m + 1) * size]
}

/// (t, h) of map `m` = (t * B + b) * heads + h.
fn t_and_h(s: &AttnShape, m: usize) -> (usize, usize) {
    (m / (s.b * s.heads), m % s.heads)
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Gradients of Q, K and V, each `[T, B, heads, N, d]`.
#[derive(Debug, Clone)]
pub struct QkvGrads {
    /// Gradient of Q.
    pub dq: Vec<f64>,
    /// Gradient of K.
    pub dk: Vec<f64>,
    /// Gradient of V.
    pub dv: Vec<f64>,
}

// ---- SSA and A2OS2A: Y = (scale Q K^T) V ------------------------------------------

/// Output and map of a scores-times-V attention.
#[derive(Debug, Clone)]
pub struct ProductRef {
    /// The output.
    pub y: Vec<f64>,
    /// `scale Q K^T`, `[T * B * heads, N, N]`.
    pub scores: Vec<f64>,
}

/// SSA: `Y = (Q K^T) V * scale`.
pub fn ssa_forward(q: &[f64], k: &[f64], v: &[f64], s: &AttnShape, scale: f64) -> ProductRef {
    let (n, d) = (s.n, s.d);
    let scores = per_map(s.maps(), |m| {
        let mut p = mm_abt(part(q, m, n * d), part(k, m, n * d), n, d, n);
        p.iter_mut().for_each(|x| *x *= scale);
        p
    });
    let y = per_map(s.maps(), |m| {
        mm_ab(part(&scores, m, n * n), part(v, m, n * d), n, n, d)
    });
    ProductRef { y, scores }
}

/// Gradients of [`ssa_forward`] for the upstream gradient `dy`.
pub fn ssa_backward(
    q: &[f64],
    k: &[f64],
    v: &[f64],
    dy: &[f64],
    s: &AttnShape,
    scale: f64,
) -> QkvGrads {
    let (n, d) = (s.n, s.d);
    let fwd = ssa_forward(q, k, v, s, scale);
    let dp = per_map(s.maps(), |m| {
        let mut g = mm_abt(part(dy, m, n * d), part(v, m, n * d), n, d, n);
        g.iter_mut().for_each(|x| *x *= scale);
        g
    });
    QkvGrads {
        dq: per_map(s.maps(), |m| {
            mm_ab(part(&dp, m, n * n), part(k, m, n * d), n, n, d)
        }),
        dk: per_map(s.maps(), |m| {
            mm_atb(part(&dp, m, n * n), part(q, m, n * d), n, n, d)
        }),
        dv: per_map(s.maps(), |m| {
            mm_atb(part(&fwd.scores, m, n * n), part(dy, m, n * d), n, n, d)
        }),
    }
}

/// A2OS2A: `out = (Q K^T) V`.
pub fn a2os2a_forward(q: &[f64], k: &[f64], v: &[f64], s: &AttnShape) -> ProductRef {
    ssa_forward(q, k, v, s, 1.0)
}

/// Gradients of [`a2os2a_forward`].
pub fn a2os2a_backward(q: &[f64], k: &[f64], v: &[f64], dy: &[f64], s: &AttnShape) -> QkvGrads {
    ssa_backward(q, k, v, dy, s, 1.0)
}

// ---- the map LIF over T -------------------------------------------------------------

/// Spikes of the map LIF (decay_input, soft reset) for the scores `x [T, len]` (the GPU's
/// `score_lif_map` computes them from the packed operands in the kernel).
pub fn score_lif_map(x: &[f64], steps: usize, lif: &MapLif) -> Vec<f64> {
    let (tau, v_th) = (lif.tau as f64, lif.v_th as f64);
    let len = x.len() / steps.max(1);
    let mut out = vec![0.0; x.len()];
    for e in 0..len {
        let mut v = 0.0;
        for t in 0..steps {
            let h = v + (x[t * len + e] - v) / tau;
            let s = if h >= v_th { 1.0 } else { 0.0 };
            out[t * len + e] = s;
            v = h - v_th * s;
        }
    }
    out
}

/// BPTT of [`score_lif_map`]: `dL/dX` for `grad_s = dL/dS` (Sigmoid(alpha)
/// surrogate, detached soft reset); the GPU's `score_lif_backward` also folds in the
/// output scale and sums lambda's gradient, which [`binary_attention_backward`] does here.
pub fn score_lif_backward(x: &[f64], grad_s: &[f64], steps: usize, lif: &MapLif) -> Vec<f64> {
    let (tau, v_th, alpha) = (lif.tau as f64, lif.v_th as f64, lif.alpha as f64);
    let len = x.len() / steps.max(1);
    let mut gx = vec![0.0; x.len()];
    for e in 0..len {
        let mut hs = Vec::with_capacity(steps);
        let mut v = 0.0;
        for t in 0..steps {
            let h = v + (x[t * len + e] - v) / tau;
            hs.push(h);
            v = h - if h >= v_th { v_th } else { 0.0 };
        }
        let mut gh = 0.0;
        for t in (0..steps).rev() {
            let sg = sigmoid(alpha * (hs[t] - v_th));
            gh = grad_s[t * len + e] * alpha * sg * (1.0 - sg) + gh * (1.0 - 1.0 / tau);
            gx[t * len + e] = gh / tau;
        }
    }
    gx
}

/// The map LIF with each spike replaced by its surrogate's primitive
/// `sigmoid(alpha (H - v_th))`, the reset using the frozen spikes `reset [T, len]`
/// (detach_reset).
pub fn score_lif_smooth(x: &[f64], reset: &[f64], steps: usize, lif: &MapLif) -> Vec<f64> {
    let (tau, v_th, alpha) = (lif.tau as f64, lif.v_th as f64, lif.alpha as f64);
    let len = x.len() / steps.max(1);
    let mut out = vec![0.0; x.len()];
    for e in 0..len {
        let mut v = 0.0;
        for t in 0..steps {
            let i = t * len + e;
            let h = v + (x[i] - v) / tau;
            out[i] = sigmoid(alpha * (h - v_th));
            v = h - v_th * reset[i];
        }
    }
    out
}

// ---- BESTformer binary attention ----------------------------------------------------

/// Binary attention's output and saved activations (layouts as on the GPU).
#[derive(Debug, Clone)]
pub struct BinaryRef {
    /// The output.
    pub y: Vec<f64>,
    /// Tokens: `Q K^T` `[TBH, N, N]`; Features: `V^T K` `[TBH, d, d]`.
    pub scores: Vec<f64>,
    /// Tokens: `A`; Features: `A^T`; {0,1}.
    pub map: Vec<f64>,
    /// Tokens: `A V`; Features: `Q A`; `[T, B, heads, N, d]`.
    pub product: Vec<f64>,
}

#[derive(Debug, Clone)]
/// Gradients of the binary attention's inputs.
pub struct BinaryGradsRef {
    /// Gradient of Q.
    pub dq: Vec<f64>,
    /// Gradient of K.
    pub dk: Vec<f64>,
    /// Gradient of V.
    pub dv: Vec<f64>,
    /// `[T, heads]`.
    pub dlambda: Vec<f64>,
}

/// (rows, cols) of one map.
fn map_dims(s: &AttnShape, order: MapOrder) -> (usize, usize) {
    match order {
        MapOrder::Tokens => (s.n, s.n),
        MapOrder::Features => (s.d, s.d),
    }
}

fn binary_scores(q: &[f64], k: &[f64], v: &[f64], s: &AttnShape, order: MapOrder) -> Vec<f64> {
    let (n, d) = (s.n, s.d);
    per_map(s.maps(), |m| match order {
        MapOrder::Tokens => mm_abt(part(q, m, n * d), part(k, m, n * d), n, d, n),
        MapOrder::Features => mm_atb(part(v, m, n * d), part(k, m, n * d), d, n, d),
    })
}

/// Product and output for a given map.
#[allow(clippy::too_many_arguments)]
fn binary_output(
    q: &[f64],
    v: &[f64],
    lambda: &[f64],
    s: &AttnShape,
    cfg: &BinaryAttentionConfig,
    scores: Vec<f64>,
    map: Vec<f64>,
) -> BinaryRef {
    let (n, d) = (s.n, s.d);
    let (r, c) = map_dims(s, cfg.order);
    let product = per_map(s.maps(), |m| match cfg.order {
        MapOrder::Tokens => mm_ab(part(&map, m, r * c), part(v, m, n * d), n, n, d),
        MapOrder::Features => mm_abt(part(q, m, n * d), part(&map, m, r * c), n, d, d),
    });
    let y = per_map(s.maps(), |m| {
        let (t, h) = t_and_h(s, m);
        let f = cfg.scale as f64 * lambda[t * s.heads + h];
        part(&product, m, n * d).iter().map(|x| x * f).collect()
    });
    BinaryRef {
        y,
        scores,
        map,
        product,
    }
}

/// `A = LIF(Q K^T)`, `Y = A V * scale * lambda` (Tokens) or `A = LIF(K^T V)`,
/// `Y = Q A * scale * lambda` (Features); lambda `[T, heads]`.
pub fn binary_attention_forward(
    q: &[f64],
    k: &[f64],
    v: &[f64],
    lambda: &[f64],
    s: &AttnShape,
    cfg: &BinaryAttentionConfig,
) -> BinaryRef {
    let scores = binary_scores(q, k, v, s, cfg.order);
    let map = score_lif_map(&scores, s.t, &cfg.lif);
    binary_output(q, v, lambda, s, cfg, scores, map)
}

/// The surrogate forward of [`binary_attention_forward`] around `base` (its value at the base
/// inputs): `map = base.map + smooth(x) - smooth(base.scores)`.
pub fn binary_attention_forward_surrogate(
    q: &[f64],
    k: &[f64],
    v: &[f64],
    lambda: &[f64],
    s: &AttnShape,
    cfg: &BinaryAttentionConfig,
    base: &BinaryRef,
) -> Vec<f64> {
    let scores = binary_scores(q, k, v, s, cfg.order);
    let smooth = score_lif_smooth(&scores, &base.map, s.t, &cfg.lif);
    let smooth0 = score_lif_smooth(&base.scores, &base.map, s.t, &cfg.lif);
    let map = (0..smooth.len())
        .map(|i| base.map[i] + smooth[i] - smooth0[i])
        .collect();
    binary_output(q, v, lambda, s, cfg, scores, map).y
}

/// Gradients of [`binary_attention_forward`] for the upstream gradient `dy`.
pub fn binary_attention_backward(
    q: &[f64],
    k: &[f64],
    v: &[f64],
    lambda: &[f64],
    dy: &[f64],
    s: &AttnShape,
    cfg: &BinaryAttentionConfig,
) -> BinaryGradsRef {
    let (n, d) = (s.n, s.d);
    let (r, c) = map_dims(s, cfg.order);
    let fwd = binary_attention_forward(q, k, v, lambda, s, cfg);
    let scale = cfg.scale as f64;
    let mut dlambda = vec![0.0; s.t * s.heads];
    for m in 0..s.maps() {
        let (t, h) = t_and_h(s, m);
        let dot: f64 = part(dy, m, n * d)
            .iter()
            .zip(part(&fwd.product, m, n * d))
            .map(|(a, b)| a * b)
            .sum();
        dlambda[t * s.heads + h] += scale * dot;
    }
    let dys = per_map(s.maps(), |m| {
        let (t, h) = t_and_h(s, m);
        let f = scale * lambda[t * s.heads + h];
        part(dy, m, n * d).iter().map(|x| x * f).collect()
    });
    let (dq, dk, dv) = match cfg.order {
        MapOrder::Tokens => {
            let da = per_map(s.maps(), |m| {
                mm_abt(part(&dys, m, n * d), part(v, m, n * d), n, d, n)
            });
            let dx = score_lif_backward(&fwd.scores, &da, s.t, &cfg.lif);
            (
                per_map(s.maps(), |m| {
                    mm_ab(part(&dx, m, n * n), part(k, m, n * d), n, n, d)
                }),
                per_map(s.maps(), |m| {
                    mm_atb(part(&dx, m, n * n), part(q, m, n * d), n, n, d)
                }),
                per_map(s.maps(), |m| {
                    mm_atb(part(&fwd.map, m, r * c), part(&dys, m, n * d), n, n, d)
                }),
            )
        }
        MapOrder::Features => {
            let dat = per_map(s.maps(), |m| {
                mm_atb(part(&dys, m, n * d), part(q, m, n * d), d, n, d)
            });
            let dxt = score_lif_backward(&fwd.scores, &dat, s.t, &cfg.lif);
            (
                per_map(s.maps(), |m| {
                    mm_ab(part(&dys, m, n * d), part(&fwd.map, m, r * c), n, d, d)
                }),
                per_map(s.maps(), |m| {
                    mm_ab(part(v, m, n * d), part(&dxt, m, r * c), n, d, d)
                }),
                per_map(s.maps(), |m| {
                    mm_abt(part(k, m, n * d), part(&dxt, m, r * c), n, d, d)
                }),
            )
        }
    };
    BinaryGradsRef {
        dq,
        dk,
        dv,
        dlambda,
    }
}

// ---- SSA_Bin ------------------------------------------------------------------------

/// SSA_Bin's output, saved activations and updated running statistics.
#[derive(Debug, Clone)]
pub struct SsaBinRef {
    /// The output.
    pub y: Vec<f64>,
    /// `Q K^T`, `[TBH, N, N]`.
    pub scores: Vec<f64>,
    /// `scores > Delta[h]`, {0,1}.
    pub map: Vec<f64>,
    /// Delta `[heads]` after the step (unchanged in eval).
    pub delta: Vec<f64>,
    /// The running mean `[heads, d]` after the step (unchanged in eval).
    pub mean: Vec<f64>,
}

fn ssa_bin_output(
    v: &[f64],
    mean: &[f64],
    s: &AttnShape,
    kappa: f64,
    map: &[f64],
) -> (Vec<f64>, Vec<f64>) {
    let (n, d) = (s.n, s.d);
    let bv = per_map(s.maps(), |m| {
        mm_ab(part(map, m, n * n), part(v, m, n * d), n, n, d)
    });
    let y = per_map(s.maps(), |m| {
        let h = m % s.heads;
        part(&bv, m, n * d)
            .iter()
            .enumerate()
            .map(|(i, x)| kappa * x - mean[h * d + i % d])
            .collect()
    });
    (y, bv)
}

/// SSA_Bin's map `B = scores > Delta[h]` of the scores `[T * B * heads, N, N]`, {0,1}.
pub fn score_threshold_map(scores: &[f64], delta: &[f64], s: &AttnShape) -> Vec<f64> {
    let n = s.n;
    scores
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            let h = (i / (n * n)) % s.heads;
            if x > delta[h] {
                1.0
            } else {
                0.0
            }
        })
        .collect()
}

/// `out = kappa (Q K^T > Delta[h]) V - mean[h, e]` with the statistics `delta [heads]`
/// and `mean [heads, d]` of before the step; in training also their updates.
pub fn ssa_bin_forward(
    q: &[f64],
    k: &[f64],
    v: &[f64],
    delta: &[f64],
    mean: &[f64],
    s: &AttnShape,
    cfg: &SsaBinConfig,
) -> SsaBinRef {
    let (n, d) = (s.n, s.d);
    let kappa = cfg.kappa as f64;
    let scores = per_map(s.maps(), |m| {
        mm_abt(part(q, m, n * d), part(k, m, n * d), n, d, n)
    });
    let map = score_threshold_map(&scores, delta, s);
    let (y, bv) = ssa_bin_output(v, mean, s, kappa, &map);
    let (mut delta, mut mean) = (delta.to_vec(), mean.to_vec());
    if cfg.training {
        let mu = cfg.momentum as f64;
        let mut score_sum = vec![0.0; s.heads];
        let mut bv_sum = vec![0.0; s.heads * d];
        for m in 0..s.maps() {
            let h = m % s.heads;
            score_sum[h] += part(&scores, m, n * n).iter().sum::<f64>();
            for (i, x) in part(&bv, m, n * d).iter().enumerate() {
                bv_sum[h * d + i % d] += kappa * x;
            }
        }
        let per_head = (s.t * s.b * n * n).max(1) as f64;
        let per_feature = (s.t * s.b * n).max(1) as f64;
        for (x, sum) in delta.iter_mut().zip(&score_sum) {
            *x = mu * *x + (1.0 - mu) * sum / per_head;
        }
        for (x, sum) in mean.iter_mut().zip(&bv_sum) {
            *x = mu * *x + (1.0 - mu) * sum / per_feature;
        }
    }
    SsaBinRef {
        y,
        scores,
        map,
        delta,
        mean,
    }
}

/// SSA_Bin's surrogate: `grad_s = grad_b p (1 - p)`, `p` the softmax of each row of the
/// scores `[rows, cols]`.
pub fn score_softmax_surrogate(scores: &[f64], grad_b: &[f64], cols: usize) -> Vec<f64> {
    let p = softmax_rows(scores, cols);
    grad_b
        .iter()
        .zip(&p)
        .map(|(g, p)| g * p * (1.0 - p))
        .collect()
}

/// Softmax of each row of `x [rows, cols]`.
fn softmax_rows(x: &[f64], cols: usize) -> Vec<f64> {
    x.chunks(cols)
        .flat_map(|row| {
            let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = row.iter().map(|x| (x - m).exp()).sum();
            row.iter().map(move |x| (x - m).exp() / z)
        })
        .collect()
}

/// Gradients of [`ssa_bin_forward`] (whose result `fwd` holds the map) for the upstream
/// gradient `dy`.
pub fn ssa_bin_backward(
    q: &[f64],
    k: &[f64],
    v: &[f64],
    dy: &[f64],
    s: &AttnShape,
    cfg: &SsaBinConfig,
    fwd: &SsaBinRef,
) -> QkvGrads {
    let (n, d) = (s.n, s.d);
    let kappa = cfg.kappa as f64;
    let dos: Vec<f64> = dy.iter().map(|x| kappa * x).collect();
    let db = per_map(s.maps(), |m| {
        mm_abt(part(&dos, m, n * d), part(v, m, n * d), n, d, n)
    });
    let dx = score_softmax_surrogate(&fwd.scores, &db, n.max(1));
    QkvGrads {
        dq: per_map(s.maps(), |m| {
            mm_ab(part(&dx, m, n * n), part(k, m, n * d), n, n, d)
        }),
        dk: per_map(s.maps(), |m| {
            mm_atb(part(&dx, m, n * n), part(q, m, n * d), n, n, d)
        }),
        dv: per_map(s.maps(), |m| {
            mm_atb(part(&fwd.map, m, n * n), part(&dos, m, n * d), n, n, d)
        }),
    }
}

/// The surrogate forward of [`ssa_bin_forward`] around `base`:
/// `B = base.map + p~(x) - p~(base.scores)` with `p~_ij = e^x_ij / (e^x_ij + R_ij)`,
/// `R_ij = sum_{k != j} e^x0_ik` frozen at the base scores `x0`, so that
/// `dp~_ij / dx_ij = p (1 - p)` and the other entries of the row do not move it.
#[allow(clippy::too_many_arguments)]
pub fn ssa_bin_forward_surrogate(
    q: &[f64],
    k: &[f64],
    v: &[f64],
    mean: &[f64],
    s: &AttnShape,
    cfg: &SsaBinConfig,
    base: &SsaBinRef,
) -> Vec<f64> {
    let (n, d) = (s.n, s.d);
    let scores = per_map(s.maps(), |m| {
        mm_abt(part(q, m, n * d), part(k, m, n * d), n, d, n)
    });
    let smooth = |x: &[f64]| -> Vec<f64> {
        let mut out = vec![0.0; x.len()];
        for (r, row0) in base.scores.chunks(n).enumerate() {
            let m0 = row0.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let z0: f64 = row0.iter().map(|x| (x - m0).exp()).sum();
            for j in 0..n {
                let rest = z0 - (row0[j] - m0).exp();
                let e = (x[r * n + j] - m0).exp();
                out[r * n + j] = e / (e + rest);
            }
        }
        out
    };
    let (p, p0) = (smooth(&scores), smooth(&base.scores));
    let map: Vec<f64> = (0..p.len()).map(|i| base.map[i] + p[i] - p0[i]).collect();
    ssa_bin_output(v, mean, s, cfg.kappa as f64, &map).0
}
