//! CPU reference forward (f64) of the models, composed from the layer references: the
//! oracle of the GPU models' forward, and (in its surrogate mode) of their backward by
//! finite differences.
//!
//! Every LIF goes through a [`Tape`]. Recording, it runs the real neuron and keeps each
//! call's membrane H and spikes. Replaying, it runs the *surrogate forward* around those:
//! `S = S0 + sigmoid(alpha (H - v_th)) - sigmoid(alpha (H0 - v_th))` with the reset from
//! the recorded spikes `S0` (detached), so that at the recorded point it has the same
//! value and its exact derivative is the surrogate-gradient BPTT the GPU backward computes.

use std::collections::HashMap;

use super::attention::{
    binary_attention_forward, binary_attention_forward_surrogate, ssa_bin_forward,
    ssa_bin_forward_surrogate, BinaryRef, SsaBinRef,
};
use super::binarize::binarize;
use super::conv::{conv3x3, ConvDims};
use super::layout::{merge_heads, nchw_to_nhwc_repeat, split_heads};
use super::lif::{qsnn_forward, quantize};
use super::linear::linear;
use super::norm::{batch_norm_eval, batch_norm_train};
use super::pool::{max_pool2d, mean_tokens};
use super::quant::{pow2_scale, rescaw, rescaw_surrogate};
use crate::nn::params::{param_layout, AttnParams, BnParams, ParamId, ParamLayout, WeightParams};
use crate::nn::{Arch, AttentionForm, ModelConfig, StateDict, TransformerConfig, WeightMode};
use crate::ops::attention::{AttnShape, BinaryAttentionConfig, MapOrder, SsaBinConfig, SSA_SCALE};
use crate::ops::{QsnnConfig, BN_EPS, BN_MOMENTUM};

/// The Sigmoid surrogate's alpha of every LIF.
const ALPHA: f64 = 4.0;

/// The state dict in the kernels' layout (3x3 convs `[C_out, 9 C_in]`), by name, f64:
/// the parameters and the BN running statistics.
pub type RefParams = HashMap<String, Vec<f64>>;

/// A state dict as [`RefParams`].
pub fn ref_params(sd: &StateDict) -> RefParams {
    sd.tensors
        .iter()
        .map(|(name, t)| {
            let data = match t.shape[..] {
                [o, i, 3, 3] => crate::ops::conv_weight_from_torch(&t.data, o, i)
                    .expect("a conv weight has its shape's values"),
                _ => t.data.clone(),
            };
            (name.clone(), data.iter().map(|&v| v as f64).collect())
        })
        .collect()
}

/// A ReScaW weight at the recorded point: `Q`, `clamp(w, -gamma, gamma)` and `gamma`.
#[derive(Debug, Clone)]
struct RescawPoint {
    q: Vec<f64>,
    clamped: Vec<f64>,
    gamma: Vec<f64>,
}

/// The LIF calls of one forward, recorded or replayed (see the module doc).
#[derive(Debug, Default, Clone)]
pub struct Tape {
    /// BatchNorms normalize with the running statistics (eval) instead of the batch's.
    pub eval: bool,
    /// Replay the surrogate forward around the recorded calls instead of recording.
    pub replay: bool,
    calls: Vec<(Vec<f64>, Vec<f64>)>,
    pos: usize,
    pools: Vec<Vec<u32>>,
    pool_pos: usize,
    /// Binary weights by name: (signs, w_hat) at the recorded point.
    binary: HashMap<String, (Vec<f64>, Vec<f64>)>,
    /// ReScaW weights by name at the recorded point.
    rescaw: HashMap<String, RescawPoint>,
    attention: Vec<BinaryRef>,
    attention_pos: usize,
    ssa_bin: Vec<SsaBinRef>,
    ssa_bin_pos: usize,
}

impl Tape {
    /// Start replaying the recorded calls from the first.
    pub fn rewind_for_replay(&mut self) {
        self.replay = true;
        self.pos = 0;
        self.pool_pos = 0;
        self.attention_pos = 0;
        self.ssa_bin_pos = 0;
    }

    /// The binarized weight `name` `[c_out, k]` of `params`; replaying, the
    /// straight-through surrogate `signs0 + w_hat(w) - w_hat(w0)`.
    pub fn binary_weight(&mut self, params: &RefParams, name: &str, c_out: usize) -> Vec<f64> {
        let w = p(params, name);
        let b = binarize(w, c_out, w.len() / c_out);
        if !self.replay {
            self.binary
                .insert(name.to_string(), (b.signs.clone(), b.w_hat.clone()));
            return b.signs;
        }
        let (s0, h0) = &self.binary[name];
        (0..w.len()).map(|i| s0[i] + b.w_hat[i] - h0[i]).collect()
    }

    /// The ReScaW `bits`-bit weight `name` `[c_out, k]` of `params`, quantized in f32 as
    /// the kernel does; replaying, the straight-through surrogate
    /// `Q0 + clamp(w, -gamma0, gamma0) - clamp(w0, -gamma0, gamma0)` (gamma detached).
    pub fn rescaw_weight(
        &mut self,
        params: &RefParams,
        name: &str,
        c_out: usize,
        bits: u32,
    ) -> Vec<f64> {
        let w = p(params, name);
        let k = w.len() / c_out;
        if !self.replay {
            let w32: Vec<f32> = w.iter().map(|&v| v as f32).collect();
            let r = rescaw(&w32, c_out, k, bits);
            let q: Vec<f64> = r.q.iter().map(|&v| v as f64).collect();
            let gamma: Vec<f64> = r.gamma.iter().map(|&g| g as f64).collect();
            let clamped = rescaw_surrogate(w, &gamma, k);
            let point = RescawPoint {
                q: q.clone(),
                clamped,
                gamma,
            };
            self.rescaw.insert(name.to_string(), point);
            return q;
        }
        let at = &self.rescaw[name];
        let c = rescaw_surrogate(w, &at.gamma, k);
        (0..w.len())
            .map(|i| at.q[i] + c[i] - at.clamped[i])
            .collect()
    }

    /// BESTformer's binary attention; replaying, its surrogate forward around the
    /// recorded call.
    pub fn binary_attention(
        &mut self,
        q: &[f64],
        k: &[f64],
        v: &[f64],
        lambda: &[f64],
        s: &AttnShape,
        cfg: &BinaryAttentionConfig,
    ) -> Vec<f64> {
        if !self.replay {
            let r = binary_attention_forward(q, k, v, lambda, s, cfg);
            let y = r.y.clone();
            self.attention.push(r);
            return y;
        }
        let base = &self.attention[self.attention_pos];
        self.attention_pos += 1;
        binary_attention_forward_surrogate(q, k, v, lambda, s, cfg, base)
    }

    /// SSA_Bin with the running statistics `delta [heads]`, `mean [heads, d]` (as they
    /// were before the step); replaying, its surrogate forward around the recorded call.
    #[allow(clippy::too_many_arguments)]
    pub fn ssa_bin(
        &mut self,
        q: &[f64],
        k: &[f64],
        v: &[f64],
        delta: &[f64],
        mean: &[f64],
        s: &AttnShape,
        cfg: &SsaBinConfig,
    ) -> Vec<f64> {
        if !self.replay {
            let r = ssa_bin_forward(q, k, v, delta, mean, s, cfg);
            let y = r.y.clone();
            self.ssa_bin.push(r);
            return y;
        }
        let base = &self.ssa_bin[self.ssa_bin_pos];
        self.ssa_bin_pos += 1;
        ssa_bin_forward_surrogate(q, k, v, mean, s, cfg, base)
    }

    /// MaxPool2d(3, 2, 1) of `x [images, side, side, c]`; replaying, it gathers at the
    /// recorded argmax (the routing the backward uses) instead of comparing.
    pub fn max_pool(&mut self, x: &[f64], images: usize, side: usize, c: usize) -> Vec<f64> {
        if !self.replay {
            let (y, arg) = max_pool2d(x, images, side, side, c);
            self.pools.push(arg);
            return y;
        }
        let arg = &self.pools[self.pool_pos];
        self.pool_pos += 1;
        let plane = arg.len() / (images * c);
        (0..arg.len())
            .map(|o| {
                let (img, ch) = (o / (plane * c), o % c);
                x[(img * side * side + arg[o] as usize) * c + ch]
            })
            .collect()
    }

    /// Spikes recorded by LIF call `i` (for tests).
    pub fn spikes(&self, i: usize) -> &[f64] {
        &self.calls[i].1
    }

    /// LIF over `x [T, ...]`: tau 2, decay_input, hard reset to 0 (`soft`: `V -= v_th S`),
    /// detach_reset.
    pub fn lif(&mut self, x: &[f64], t: usize, v_th: f64, soft: bool) -> Vec<f64> {
        self.neuron(x, t, v_th, soft, false)
    }

    /// The ternary neuron over `x [T, ...]` (v_th 1, hard reset on a spike of either
    /// sign); replaying, `S = S0 + sig(H - v_th) - sig(H0 - v_th) - (sig(-H - v_th) -
    /// sig(-H0 - v_th))`, whose derivative is the sum of the two steps' surrogates.
    pub fn ternary(&mut self, x: &[f64], t: usize) -> Vec<f64> {
        self.neuron(x, t, 1.0, false, true)
    }

    /// The Q-SNN neuron over `x [T, ...]`, recording in f32 as the kernel runs it
    /// (`reference::lif::qsnn_forward`, so that spikes match); replaying, its surrogate
    /// forward around the recorded call: `S = S0 + Phi(H - v_th) - Phi(H0 - v_th)` with
    /// `Phi'` the triangle surrogate, `M = (1 - S) H`, and the quantized membrane
    /// straight-through, `V = V0 + tanh(M) - tanh(M0)` (the scale detached).
    pub fn qsnn(&mut self, x: &[f64], t: usize, cfg: &QsnnConfig) -> Vec<f64> {
        let f64s = |v: &[f32]| v.iter().map(|&v| v as f64).collect::<Vec<f64>>();
        if !self.replay {
            let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
            let trace = qsnn_forward(cfg, t, &x32);
            let s = f64s(&trace.spikes);
            self.calls.push((f64s(&trace.h), s.clone()));
            return s;
        }
        let (h0, s0) = &self.calls[self.pos];
        self.pos += 1;
        let (decay, v_th, g) = (cfg.decay as f64, cfg.v_th as f64, cfg.gamma as f64);
        let phi = |z: f64| {
            let z = z.clamp(-g, g);
            if z <= 0.0 {
                (z + g).powi(2) / (2.0 * g * g)
            } else {
                1.0 - (g - z).powi(2) / (2.0 * g * g)
            }
        };
        let n = x.len() / t;
        let mut v = vec![0.0; n];
        let mut out = vec![0.0; x.len()];
        for step in 0..t {
            let at = step * n..(step + 1) * n;
            // tanh(M0) and its quantized form V0, as the forward computed them.
            let u0: Vec<f32> = at
                .map(|j| ((1.0 - s0[j] as f32) * h0[j] as f32).tanh())
                .collect();
            let alpha = u0.iter().fold(0f32, |m, u| m.max(u.abs()));
            for (i, vi) in v.iter_mut().enumerate() {
                let j = step * n + i;
                let h = decay * *vi + x[j];
                let s = s0[j] + phi(h - v_th) - phi(h0[j] - v_th);
                let v0 = quantize(u0[i], alpha, cfg.levels()) as f64;
                *vi = v0 + ((1.0 - s) * h).tanh() - u0[i] as f64;
                out[j] = s;
            }
        }
        out
    }

    fn neuron(&mut self, x: &[f64], t: usize, v_th: f64, soft: bool, ternary: bool) -> Vec<f64> {
        let n = x.len() / t;
        let sig = |z: f64| 1.0 / (1.0 + (-ALPHA * z).exp());
        let mut v = vec![0.0; n];
        let mut out = vec![0.0; x.len()];
        let mut hs = vec![0.0; x.len()];
        let base = self.replay.then(|| self.calls[self.pos].clone());
        for step in 0..t {
            for (i, vi) in v.iter_mut().enumerate() {
                let j = step * n + i;
                let h = *vi + (x[j] - *vi) / 2.0;
                let fire = |h: f64| {
                    let up = if h >= v_th { 1.0 } else { 0.0 };
                    let down = if ternary && h <= -v_th { 1.0 } else { 0.0 };
                    up - down
                };
                let smooth = |h: f64| {
                    let down = if ternary { sig(-h - v_th) } else { 0.0 };
                    sig(h - v_th) - down
                };
                let (s, s0) = match &base {
                    None => (fire(h), fire(h)),
                    Some((h0, s0)) => (s0[j] + smooth(h) - smooth(h0[j]), s0[j]),
                };
                *vi = if soft {
                    h - v_th * s0
                } else {
                    h * (1.0 - s0.abs())
                };
                out[j] = s;
                hs[j] = h;
            }
        }
        if self.replay {
            self.pos += 1;
        } else {
            self.calls.push((hs, out.clone()));
        }
        out
    }
}

fn p<'a>(params: &'a RefParams, name: &str) -> &'a [f64] {
    params
        .get(name)
        .unwrap_or_else(|| panic!("no parameter '{name}'"))
}

/// The model's parameters by its typed layout (`nn::params`), so that the reference
/// finds every tensor by the name the specs give it.
pub(crate) struct Params<'a> {
    values: &'a RefParams,
    pub(crate) layout: ParamLayout,
    /// Q-SNN weight mode: binary weights carry a power-of-two scale per channel.
    qsnn: bool,
}

impl<'a> Params<'a> {
    pub(crate) fn new(cfg: &ModelConfig, values: &'a RefParams) -> Self {
        Self {
            values,
            layout: param_layout(cfg),
            qsnn: cfg.weights == WeightMode::Qsnn,
        }
    }

    pub(crate) fn get(&self, id: ParamId) -> &[f64] {
        p(self.values, self.layout.name(id))
    }

    /// BN of `x [rows, C]`: batch statistics, or the running ones when `tape.eval`.
    pub(crate) fn bn(&self, tape: &Tape, bn: &BnParams, x: &[f64], c: usize) -> Vec<f64> {
        let (w, b) = (self.get(bn.weight), self.get(bn.bias));
        if tape.eval {
            let (rm, rv) = (self.get(bn.running_mean), self.get(bn.running_var));
            return batch_norm_eval(x, c, w, b, rm, rv, BN_EPS as f64);
        }
        let (mut rm, mut rv) = (vec![0.0; c], vec![1.0; c]);
        batch_norm_train(
            x,
            c,
            w,
            b,
            &mut rm,
            &mut rv,
            BN_EPS as f64,
            BN_MOMENTUM as f64,
        )
        .y
    }

    /// The conv/linear weight `[c_out, k]` as its spec stores it, through the tape:
    /// float, ReScaW b-bit, or signs (Q-SNN's scaled by a power of two per channel, a
    /// scale piecewise constant in the weights that needs no tape).
    pub(crate) fn weight(&self, tape: &mut Tape, id: ParamId) -> Vec<f64> {
        let spec = self.layout.spec(id);
        let c_out = spec.shape[0];
        if spec.quant_bits > 0 {
            return tape.rescaw_weight(self.values, &spec.name, c_out, spec.quant_bits);
        }
        if !spec.binary {
            return self.get(id).to_vec();
        }
        let signs = tape.binary_weight(self.values, &spec.name, c_out);
        if !self.qsnn {
            return signs;
        }
        let w = self.get(id);
        let k = w.len() / c_out;
        let scale = pow2_scale(w, c_out, k);
        (0..w.len()).map(|i| scale[i / k] * signs[i]).collect()
    }

    /// A linear layer (weights as [`Params::weight`] gives them) on rows of `x [rows, k]`.
    pub(crate) fn linear(
        &self,
        tape: &mut Tape,
        w: &WeightParams,
        x: &[f64],
        k: usize,
        out: usize,
    ) -> Vec<f64> {
        let weight = self.weight(tape, w.weight);
        linear(x, &weight, w.bias.map(|b| self.get(b)), k, out)
    }
}

pub(crate) fn add(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

/// `[T, B, N, heads * d]` to `[T, B, heads, N, d]` (`inverse`: back).
fn heads(x: &[f64], tb: usize, n: usize, h: usize, d: usize, inverse: bool) -> Vec<f64> {
    if inverse {
        merge_heads(x, tb, n, h, d)
    } else {
        split_heads(x, tb, n, h, d)
    }
}

/// `images [B, C, H, W]` to `[T * B, H, W, C]`.
pub(crate) fn encode(cfg: &ModelConfig, images: &[f64], batch: usize) -> Vec<f64> {
    let s = cfg.image_size;
    nchw_to_nhwc_repeat(images, batch, cfg.in_channels, s * s, cfg.time_steps)
}

/// The reference runs only the configs it is written for.
fn sizes(cfg: &ModelConfig, arch: Arch) -> &TransformerConfig {
    assert_eq!(cfg.kind(), arch);
    cfg.transformer().expect("a transformer")
}

/// Spikformer's logits `[B, classes]` for `images [B, C, H, W]` (BN mode: `tape.eval`).
pub fn spikformer_forward(
    cfg: &ModelConfig,
    params: &RefParams,
    images: &[f64],
    batch: usize,
    tape: &mut Tape,
) -> Vec<f64> {
    let tc = sizes(cfg, Arch::Spikformer);
    let ps = Params::new(cfg, params);
    let layout = ps.layout.spikformer().expect("a Spikformer layout").clone();
    let t = cfg.time_steps;
    let tb = t * batch;
    let widths = tc.tokenizer_widths(cfg.in_channels);
    let mut x = encode(cfg, images, batch);
    let mut side = cfg.image_size;
    for (i, stage) in layout.stages.iter().enumerate() {
        let dims = ConvDims {
            images: tb,
            h: side,
            w: side,
            c_in: widths[i],
            c_out: widths[i + 1],
        };
        let w = ps.weight(tape, stage.weight.weight);
        let z = conv3x3(&x, &w, dims);
        let y = ps.bn(tape, &stage.bn, &z, widths[i + 1]);
        x = tape.lif(&y, t, 1.0, false);
        if tc.stage_pools(i) {
            x = tape.max_pool(&x, tb, side, widths[i + 1]);
            side = (side - 1) / 2 + 1;
        }
    }
    let d = tc.dim;
    let dims = ConvDims {
        images: tb,
        h: side,
        w: side,
        c_in: d,
        c_out: d,
    };
    let w = ps.weight(tape, layout.rpe.weight.weight);
    let z = conv3x3(&x, &w, dims);
    let r = tape.lif(&ps.bn(tape, &layout.rpe.bn, &z, d), t, 1.0, false);
    let mut x = add(&r, &x);
    let n = side * side;
    let hid = tc.hidden();
    for blk in &layout.blocks {
        let a = &blk.attn;
        let ys = attention_core(cfg, tc, &ps, tape, a, &x, batch);
        let z = ps.linear(tape, &a.proj.weight, &ys, d, d);
        let o = tape.lif(&ps.bn(tape, &a.proj.bn, &z, d), t, 1.0, false);
        x = add(&x, &o);
        let m = &blk.mlp;
        let z = ps.linear(tape, &m.fc1.weight, &x, d, hid);
        let s = tape.lif(&ps.bn(tape, &m.fc1.bn, &z, hid), t, 1.0, false);
        let z = ps.linear(tape, &m.fc2.weight, &s, hid, d);
        let o = tape.lif(&ps.bn(tape, &m.fc2.bn, &z, d), t, 1.0, false);
        x = add(&x, &o);
    }
    let pooled = mean_tokens(&x, t, batch, n, d);
    ps.linear(tape, &layout.head, &pooled, d, cfg.classes)
}

/// The attention core `a` on the q/k/v layers' input `x [T, B, N, D]` (see
/// `nn::attention`): q/k/v layers -> BN -> neuron (A2OS2A: ReLU K, ternary V), the
/// form's attention, the attention LIF (v_th 0.5); returns its spikes `[T, B, N, D]`
/// (A2OS2A: `(Q K^T) V`, which proj reads directly).
fn attention_core(
    cfg: &ModelConfig,
    tc: &TransformerConfig,
    ps: &Params,
    tape: &mut Tape,
    a: &AttnParams,
    x: &[f64],
    batch: usize,
) -> Vec<f64> {
    let (t, d, h, hd) = (cfg.time_steps, tc.dim, tc.heads, tc.head_dim());
    let n = tc.tokens(cfg.image_size);
    let tb = t * batch;
    let mut qkv = Vec::new();
    for (i, branch) in [&a.q, &a.k, &a.v].into_iter().enumerate() {
        let z = ps.linear(tape, &branch.weight, x, d, d);
        let y = ps.bn(tape, &branch.bn, &z, d);
        let out = match (tc.attention, i) {
            (AttentionForm::A2os2a, 1) => y.iter().map(|v| v.max(0.0)).collect(),
            (AttentionForm::A2os2a, 2) => tape.ternary(&y, t),
            _ => tape.lif(&y, t, 1.0, false),
        };
        qkv.push(heads(&out, tb, n, h, hd, false));
    }
    let (q, k, v) = (&qkv[0], &qkv[1], &qkv[2]);
    let shape = AttnShape {
        t,
        b: batch,
        heads: h,
        n,
        d: hd,
    };
    let y = match tc.attention {
        AttentionForm::Ssa => super::attention::ssa_forward(q, k, v, &shape, SSA_SCALE as f64).y,
        AttentionForm::Binary => {
            let attn_cfg = BinaryAttentionConfig {
                order: if tc.feature_order() {
                    MapOrder::Features
                } else {
                    MapOrder::Tokens
                },
                ..BinaryAttentionConfig::default()
            };
            let lambda = ps.get(a.form.learned[0]).to_vec();
            tape.binary_attention(q, k, v, &lambda, &shape, &attn_cfg)
        }
        AttentionForm::SsaBin => {
            let delta = ps.get(a.form.stats[0]).to_vec();
            let mean = ps.get(a.form.stats[1]).to_vec();
            let config = SsaBinConfig {
                training: !tape.eval,
                ..SsaBinConfig::default()
            };
            tape.ssa_bin(q, k, v, &delta, &mean, &shape, &config)
        }
        // A2OS2A: proj reads (Q K^T) V itself.
        AttentionForm::A2os2a => {
            return heads(
                &super::attention::a2os2a_forward(q, k, v, &shape).y,
                tb,
                n,
                h,
                hd,
                true,
            );
        }
    };
    heads(&tape.lif(&y, t, 0.5, false), tb, n, h, hd, true)
}

/// BESTformer's two heads' logits `(out0, out1)`, each `[B, classes]`, for `images
/// [B, C, H, W]` (BN mode: `tape.eval`).
pub fn bestformer_forward(
    cfg: &ModelConfig,
    params: &RefParams,
    images: &[f64],
    batch: usize,
    tape: &mut Tape,
) -> (Vec<f64>, Vec<f64>) {
    let tc = sizes(cfg, Arch::Bestformer);
    let ps = Params::new(cfg, params);
    let layout = ps.layout.bestformer().expect("a BESTformer layout").clone();
    let t = cfg.time_steps;
    let tb = t * batch;
    let w = tc.tokenizer_widths(cfg.in_channels);
    let widths = [w[0], w[1], w[2], w[3], w[4], w[4]];
    let (d, hid) = (tc.dim, tc.hidden());
    let mut x = encode(cfg, images, batch);
    let mut side = cfg.image_size;
    for (i, stage) in layout.tokenizer.iter().enumerate() {
        if i > 0 {
            x = tape.lif(&x, t, 1.0, false);
            if tc.stage_pools(i - 1) {
                x = tape.max_pool(&x, tb, side, widths[i]);
                side = (side - 1) / 2 + 1;
            }
        }
        let dims = ConvDims {
            images: tb,
            h: side,
            w: side,
            c_in: widths[i],
            c_out: widths[i + 1],
        };
        let z = conv3x3(&x, &ps.weight(tape, stage.weight.weight), dims);
        x = ps.bn(tape, &stage.bn, &z, widths[i + 1]);
    }
    let mut x1 = x;
    let mut x0: Option<Vec<f64>> = None;
    for blk in &layout.blocks {
        // Attention: LIF -> core -> proj -> BN.
        let s = tape.lif(&x1, t, 1.0, false);
        let ys = attention_core(cfg, tc, &ps, tape, &blk.attn, &s, batch);
        let z = ps.linear(tape, &blk.attn.proj.weight, &ys, d, d);
        let a = ps.bn(tape, &blk.attn.proj.bn, &z, d);
        let x2: Vec<f64> = match &x0 {
            Some(x0) => (0..a.len()).map(|i| a[i] + (x0[i] + x1[i]) / 2.0).collect(),
            None => add(&a, &x1),
        };
        // MLP: LIF -> mlp1 -> BN -> LIF -> mlp2 -> BN.
        let mlp = &blk.mlp;
        let s = tape.lif(&x2, t, 1.0, false);
        let z = ps.linear(tape, &mlp.fc1.weight, &s, d, hid);
        let y = ps.bn(tape, &mlp.fc1.bn, &z, hid);
        let s = tape.lif(&y, t, 1.0, false);
        let z = ps.linear(tape, &mlp.fc2.weight, &s, hid, d);
        let m = ps.bn(tape, &mlp.fc2.bn, &z, d);
        let x3: Vec<f64> = (0..m.len()).map(|i| m[i] + (x1[i] + x2[i]) / 2.0).collect();
        x0 = Some(x2);
        x1 = x3;
    }
    let n = tc.tokens(cfg.image_size);
    let x2 = x0.expect("depth >= 1");
    let [head0, head1] = &layout.heads;
    let out0 = ps.linear(
        tape,
        head0,
        &mean_tokens(&x2, t, batch, n, d),
        d,
        cfg.classes,
    );
    let out1 = ps.linear(
        tape,
        head1,
        &mean_tokens(&x1, t, batch, n, d),
        d,
        cfg.classes,
    );
    (out0, out1)
}
