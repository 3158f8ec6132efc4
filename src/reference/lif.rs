//! CPU reference of the spiking neurons (shaders/lif.wgsl): the same f32 operations in the
//! same order as the kernels, so that spikes match exactly. Tensors are flat `[T, n]`
//! slices, time first.

use crate::ops::lif::{FiringFn, LifConfig, QsnnConfig, Surrogate, ThresholdConfig};

/// Spikes and the membrane before firing, both `[T, n]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    /// The spikes.
    pub spikes: Vec<f32>,
    /// The membrane H before reset.
    pub h: Vec<f32>,
}

/// The surrogate derivative `g(x)`.
pub fn surrogate_grad(surrogate: Surrogate, x: f32) -> f32 {
    match surrogate {
        Surrogate::Sigmoid { alpha } => {
            let sg = 1.0 / (1.0 + (-alpha * x).exp());
            alpha * sg * (1.0 - sg)
        }
        Surrogate::ATan { alpha } => {
            let z = std::f32::consts::FRAC_PI_2 * alpha * x;
            alpha / (2.0 * (1.0 + z * z))
        }
    }
}

/// The charge `V -> H` (both `decay_input` forms; `v_reset` is 0 for the soft reset).
pub fn charge(cfg: &LifConfig, v: f32, x: f32) -> f32 {
    let (k, v_reset) = (cfg.k(), cfg.v_reset_or_zero());
    if cfg.decay_input {
        v + (x - (v - v_reset)) * k
    } else {
        v - (v - v_reset) * k + x
    }
}

/// The Heaviside step of the firing function `firing`.
pub fn fire(firing: FiringFn, v_th: f32, h: f32) -> f32 {
    match firing {
        FiringFn::Lif => {
            if h >= v_th {
                1.0
            } else {
                0.0
            }
        }
        FiringFn::Ternary => {
            if h >= v_th {
                1.0
            } else if h <= -v_th {
                -1.0
            } else {
                0.0
            }
        }
    }
}

fn split_time(op: &str, t: usize, len: usize) -> usize {
    assert!(
        t > 0 && len.is_multiple_of(t),
        "{op}: {len} elements are not T = {t} steps"
    );
    len / t
}

fn forward(cfg: &LifConfig, firing: FiringFn, t: usize, x: &[f32]) -> Trace {
    let n = split_time("forward", t, x.len());
    let mut spikes = vec![0.0; x.len()];
    let mut h = vec![0.0; x.len()];
    for i in 0..n {
        let mut v = cfg.v_reset_or_zero();
        for step in 0..t {
            let at = step * n + i;
            let hv = charge(cfg, v, x[at]);
            let s = fire(firing, cfg.v_th, hv);
            v = match cfg.v_reset {
                Some(v_reset) if s != 0.0 => v_reset,
                Some(_) => hv,
                None => hv - cfg.v_th * s,
            };
            spikes[at] = s;
            h[at] = hv;
        }
    }
    Trace { spikes, h }
}

/// Multi-step LIF forward of `x [T, n]` (SpikingJelly MultiStepLIFNode).
pub fn lif_forward(cfg: &LifConfig, t: usize, x: &[f32]) -> Trace {
    forward(cfg, FiringFn::Lif, t, x)
}

/// Forward of the ternary neuron (-1/0/+1 spikes, reset on either).
pub fn ternary_forward(cfg: &LifConfig, t: usize, x: &[f32]) -> Trace {
    forward(cfg, FiringFn::Ternary, t, x)
}

/// BPTT of a LIF-charged neuron from `grad_spikes [T, n]` and the saved `h [T, n]`, with
/// `reset [T, n]` the spike magnitude |S| that drove each hard reset in the forward. The
/// real neurons have `reset = |fire(H)|` (`lif_backward`, `ternary_backward`); a gradient
/// check passes the smooth magnitude of a smooth forward instead, whose exact derivative
/// this then is. `dS/dH` and `d|S|/dH` are the surrogate's (see lif.wgsl).
pub fn backward_with_reset(
    cfg: &LifConfig,
    firing: FiringFn,
    t: usize,
    grad_spikes: &[f32],
    h: &[f32],
    reset: &[f32],
) -> Vec<f32> {
    let n = split_time("backward", t, h.len());
    assert_eq!(grad_spikes.len(), h.len());
    assert_eq!(reset.len(), h.len());
    let k = cfg.k();
    let mut grad_x = vec![0.0; h.len()];
    for i in 0..n {
        let mut grad_h = 0.0f32; // dL/dH[t+1]
        for step in (0..t).rev() {
            let at = step * n + i;
            let hv = h[at];
            let up = surrogate_grad(cfg.surrogate, hv - cfg.v_th);
            let (gs, ga) = match firing {
                FiringFn::Lif => (up, up),
                FiringFn::Ternary => {
                    let down = surrogate_grad(cfg.surrogate, -(hv + cfg.v_th));
                    (up + down, up - down)
                }
            };
            let a = reset[at];
            let g_vh = match (cfg.v_reset, cfg.detach_reset) {
                (Some(_), true) => 1.0 - a,
                (None, true) => 1.0,
                (Some(v_reset), false) => 1.0 - a + (v_reset - hv) * ga,
                (None, false) => 1.0 - cfg.v_th * gs,
            };
            let grad_v = 0.0; // no loss term reads V[t] directly
            grad_h = grad_spikes[at] * gs + (grad_v + grad_h * (1.0 - k)) * g_vh;
            grad_x[at] = if cfg.decay_input { grad_h * k } else { grad_h };
        }
    }
    grad_x
}

fn backward(
    cfg: &LifConfig,
    firing: FiringFn,
    t: usize,
    grad_spikes: &[f32],
    h: &[f32],
) -> Vec<f32> {
    let reset: Vec<f32> = h
        .iter()
        .map(|&hv| fire(firing, cfg.v_th, hv).abs())
        .collect();
    backward_with_reset(cfg, firing, t, grad_spikes, h, &reset)
}

/// BPTT of the LIF neuron (spikes recomputed from H, as the kernel does).
pub fn lif_backward(cfg: &LifConfig, t: usize, grad_spikes: &[f32], h: &[f32]) -> Vec<f32> {
    backward(cfg, FiringFn::Lif, t, grad_spikes, h)
}

/// BPTT of the ternary neuron.
pub fn ternary_backward(cfg: &LifConfig, t: usize, grad_spikes: &[f32], h: &[f32]) -> Vec<f32> {
    backward(cfg, FiringFn::Ternary, t, grad_spikes, h)
}

/// The stateless threshold `S = x >= v_th`.
pub fn threshold_forward(cfg: &ThresholdConfig, x: &[f32]) -> Vec<f32> {
    x.iter()
        .map(|&v| fire(FiringFn::Lif, cfg.v_th, v))
        .collect()
}

/// Backward of the threshold: `grad_x = grad_s g(x - v_th)`.
pub fn threshold_backward(cfg: &ThresholdConfig, grad_spikes: &[f32], x: &[f32]) -> Vec<f32> {
    assert_eq!(grad_spikes.len(), x.len());
    grad_spikes
        .iter()
        .zip(x)
        .map(|(&g, &v)| g * surrogate_grad(cfg.surrogate, v - cfg.v_th))
        .collect()
}

/// The b-bit membrane of Q-SNN: `round(clamp(u / alpha, -1, 1) levels) alpha / levels`,
/// rounding half to even (torch.round), 0 where the scale `alpha` is 0.
pub fn quantize(u: f32, alpha: f32, levels: f32) -> f32 {
    if alpha.is_nan() || alpha <= 0.0 {
        return 0.0;
    }
    ((u / alpha).clamp(-1.0, 1.0) * levels).round_ties_even() * alpha / levels
}

/// Forward of the Q-SNN neuron on `x [T, n]`, the quantization scale of each step being
/// the maximum of |tanh(M)| over all n neurons.
pub fn qsnn_forward(cfg: &QsnnConfig, t: usize, x: &[f32]) -> Trace {
    let n = split_time("qsnn_forward", t, x.len());
    let levels = cfg.levels();
    let mut spikes = vec![0.0; x.len()];
    let mut h = vec![0.0; x.len()];
    let mut u = vec![0.0f32; n]; // tanh(M[t-1])
    let mut alpha = 0.0f32;
    for step in 0..t {
        let mut next_alpha = 0.0f32;
        for (i, ui) in u.iter_mut().enumerate() {
            let at = step * n + i;
            let v = if step == 0 {
                0.0
            } else {
                quantize(*ui, alpha, levels)
            };
            let hv = v * cfg.decay + x[at];
            let fired = hv > cfg.v_th;
            *ui = (if fired { 0.0 } else { hv }).tanh();
            next_alpha = next_alpha.max(ui.abs());
            spikes[at] = if fired { 1.0 } else { 0.0 };
            h[at] = hv;
        }
        alpha = next_alpha;
    }
    Trace { spikes, h }
}

/// BPTT of the Q-SNN neuron given the spikes of the forward: `{0, 1}` for the real neuron
/// (`qsnn_backward`), or the smooth spikes of a smooth forward in a gradient check.
pub fn qsnn_backward_with_spikes(
    cfg: &QsnnConfig,
    t: usize,
    grad_spikes: &[f32],
    h: &[f32],
    spikes: &[f32],
) -> Vec<f32> {
    let n = split_time("qsnn_backward", t, h.len());
    assert_eq!(grad_spikes.len(), h.len());
    assert_eq!(spikes.len(), h.len());
    let inv_gamma = 1.0 / cfg.gamma;
    let mut grad_x = vec![0.0; h.len()];
    for i in 0..n {
        let mut grad_h = 0.0f32; // dL/dH[t+1]
        for step in (0..t).rev() {
            let at = step * n + i;
            let (hv, s) = (h[at], spikes[at]);
            let g = inv_gamma * inv_gamma * (cfg.gamma - (hv - cfg.v_th).abs()).max(0.0);
            let u = ((1.0 - s) * hv).tanh();
            let grad_m = grad_h * cfg.decay * (1.0 - u * u);
            grad_h = grad_spikes[at] * g + grad_m * ((1.0 - s) - hv * g);
            grad_x[at] = grad_h;
        }
    }
    grad_x
}

/// BPTT of the Q-SNN neuron (spikes recomputed from H).
pub fn qsnn_backward(cfg: &QsnnConfig, t: usize, grad_spikes: &[f32], h: &[f32]) -> Vec<f32> {
    let spikes: Vec<f32> = h
        .iter()
        .map(|&hv| if hv > cfg.v_th { 1.0 } else { 0.0 })
        .collect();
    qsnn_backward_with_spikes(cfg, t, grad_spikes, h, &spikes)
}
