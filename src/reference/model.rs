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
    binary_forward, binary_forward_surrogate, ssa_bin_forward, ssa_bin_forward_surrogate,
    BinaryRef, SsaBinRef,
};
use super::binarize::binarize;
use super::conv::{conv3x3, ConvDims};
use super::layout::{merge_heads, nchw_to_nhwc_repeat, split_heads};
use super::linear::linear;
use super::norm::{batch_norm_eval, batch_norm_train};
use super::pool::{max_pool2d, mean_tokens};
use crate::nn::params::{SSA_BIN_DELTA, SSA_BIN_SHIFT};
use crate::nn::{Arch, AttentionForm, ModelConfig, StateDict, WeightMode};
use crate::ops::attention::{AttnShape, BinaryAttentionConfig, MapOrder, SsaBinConfig};
use crate::ops::{BN_EPS, BN_MOMENTUM};

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
            let r = binary_forward(q, k, v, lambda, s, cfg);
            let y = r.y.clone();
            self.attention.push(r);
            return y;
        }
        let base = &self.attention[self.attention_pos];
        self.attention_pos += 1;
        binary_forward_surrogate(q, k, v, lambda, s, cfg, base)
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

/// BN of `x [rows, C]`: batch statistics, or the running ones when `tape.eval`.
fn bn(tape: &Tape, params: &RefParams, prefix: &str, x: &[f64], c: usize) -> Vec<f64> {
    let get = |suffix: &str| p(params, &format!("{prefix}.{suffix}"));
    if tape.eval {
        return batch_norm_eval(
            x,
            c,
            get("weight"),
            get("bias"),
            get("running_mean"),
            get("running_var"),
            BN_EPS as f64,
        );
    }
    let (mut rm, mut rv) = (vec![0.0; c], vec![1.0; c]);
    batch_norm_train(
        x,
        c,
        p(params, &format!("{prefix}.weight")),
        p(params, &format!("{prefix}.bias")),
        &mut rm,
        &mut rv,
        BN_EPS as f64,
        BN_MOMENTUM as f64,
    )
    .y
}

fn lin(params: &RefParams, prefix: &str, x: &[f64], k: usize, out: usize, bias: bool) -> Vec<f64> {
    let b = bias.then(|| p(params, &format!("{prefix}.bias")));
    linear(x, p(params, &format!("{prefix}.weight")), b, k, out)
}

fn add(a: &[f64], b: &[f64]) -> Vec<f64> {
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
fn encode(cfg: &ModelConfig, images: &[f64], batch: usize) -> Vec<f64> {
    let s = cfg.image_size;
    nchw_to_nhwc_repeat(images, batch, cfg.in_channels, s * s, cfg.time_steps)
}

/// Spikformer's logits `[B, classes]` for `images [B, C, H, W]` (BN mode: `tape.eval`).
pub fn spikformer_forward(
    cfg: &ModelConfig,
    params: &RefParams,
    images: &[f64],
    batch: usize,
    tape: &mut Tape,
) -> Vec<f64> {
    assert_eq!(cfg.arch, Arch::Spikformer);
    let t = cfg.time_steps;
    let tb = t * batch;
    let widths = cfg.tokenizer_widths();
    let mut x = encode(cfg, images, batch);
    let mut side = cfg.image_size;
    for i in 0..4 {
        let suffix = ["", "1", "2", "3"][i];
        let dims = ConvDims {
            images: tb,
            h: side,
            w: side,
            c_in: widths[i],
            c_out: widths[i + 1],
        };
        let w = weight(
            cfg,
            params,
            tape,
            &format!("patch_embed.proj_conv{suffix}.weight"),
            widths[i + 1],
            i > 0,
        );
        let z = conv3x3(&x, &w, dims);
        let y = bn(
            tape,
            params,
            &format!("patch_embed.proj_bn{suffix}"),
            &z,
            widths[i + 1],
        );
        x = tape.lif(&y, t, 1.0, false);
        if cfg.stage_pools(i) {
            x = tape.max_pool(&x, tb, side, widths[i + 1]);
            side = (side - 1) / 2 + 1;
        }
    }
    let d = cfg.dim;
    let dims = ConvDims {
        images: tb,
        h: side,
        w: side,
        c_in: d,
        c_out: d,
    };
    let w = weight(cfg, params, tape, "patch_embed.rpe_conv.weight", d, true);
    let z = conv3x3(&x, &w, dims);
    let r = tape.lif(
        &bn(tape, params, "patch_embed.rpe_bn", &z, d),
        t,
        1.0,
        false,
    );
    let mut x = add(&r, &x);
    let n = side * side;
    let hid = cfg.hidden();
    for blk in 0..cfg.depth {
        let a = format!("block.{blk}.attn");
        let ys = attention_core(cfg, params, tape, blk, &x, batch, "_linear", true);
        let z = spik_lin(cfg, params, tape, &format!("{a}.proj_linear"), &ys, d, d);
        let o = tape.lif(
            &bn(tape, params, &format!("{a}.proj_bn"), &z, d),
            t,
            1.0,
            false,
        );
        x = add(&x, &o);
        let m = format!("block.{blk}.mlp");
        let z = spik_lin(cfg, params, tape, &format!("{m}.fc1_linear"), &x, d, hid);
        let s = tape.lif(
            &bn(tape, params, &format!("{m}.fc1_bn"), &z, hid),
            t,
            1.0,
            false,
        );
        let z = spik_lin(cfg, params, tape, &format!("{m}.fc2_linear"), &s, hid, d);
        let o = tape.lif(
            &bn(tape, params, &format!("{m}.fc2_bn"), &z, d),
            t,
            1.0,
            false,
        );
        x = add(&x, &o);
    }
    let pooled = mean_tokens(&x, t, batch, n, d);
    lin(params, "head", &pooled, d, cfg.classes, true)
}

/// The conv/linear weight `name` `[c_out, k]`: binarized (through the tape) when the
/// model's weights are binary and the layer is `binarizable`.
fn weight(
    cfg: &ModelConfig,
    params: &RefParams,
    tape: &mut Tape,
    name: &str,
    c_out: usize,
    binarizable: bool,
) -> Vec<f64> {
    if binarizable && cfg.weights == WeightMode::Binary {
        tape.binary_weight(params, name, c_out)
    } else {
        p(params, name).to_vec()
    }
}

/// A binarizable 1x1 layer (no bias) on rows of `x [rows, k]`: BESTformer's.
fn bin_lin(
    cfg: &ModelConfig,
    params: &RefParams,
    tape: &mut Tape,
    name: &str,
    x: &[f64],
    k: usize,
    out: usize,
) -> Vec<f64> {
    let w = weight(cfg, params, tape, &format!("{name}.weight"), out, true);
    linear(x, &w, None, k, out)
}

/// A binarizable linear layer with bias on rows of `x [rows, k]`: Spikformer's.
fn spik_lin(
    cfg: &ModelConfig,
    params: &RefParams,
    tape: &mut Tape,
    name: &str,
    x: &[f64],
    k: usize,
    out: usize,
) -> Vec<f64> {
    let w = weight(cfg, params, tape, &format!("{name}.weight"), out, true);
    linear(x, &w, Some(p(params, &format!("{name}.bias"))), k, out)
}

/// The attention core of block `blk` on the q/k/v layers' input `x [T, B, N, D]` (see
/// `nn::attention`): q/k/v `{suffix}` layers -> BN -> neuron (A2OS2A: ReLU K, ternary
/// V), the form's attention, the attention LIF (v_th 0.5); returns its spikes
/// `[T, B, N, D]` (A2OS2A: `(Q K^T) V`, which proj reads directly).
#[allow(clippy::too_many_arguments)]
fn attention_core(
    cfg: &ModelConfig,
    params: &RefParams,
    tape: &mut Tape,
    blk: usize,
    x: &[f64],
    batch: usize,
    suffix: &str,
    bias: bool,
) -> Vec<f64> {
    let (t, d, h, hd) = (cfg.time_steps, cfg.dim, cfg.heads, cfg.head_dim());
    let n = cfg.tokens();
    let tb = t * batch;
    let a = format!("block.{blk}.attn");
    let mut qkv = Vec::new();
    for (i, name) in ["q", "k", "v"].into_iter().enumerate() {
        let layer = format!("{a}.{name}{suffix}");
        let z = if bias {
            spik_lin(cfg, params, tape, &layer, x, d, d)
        } else {
            bin_lin(cfg, params, tape, &layer, x, d, d)
        };
        let y = bn(tape, params, &format!("{a}.{name}_bn"), &z, d);
        let out = match (cfg.attention, i) {
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
    let y = match cfg.attention {
        AttentionForm::Ssa => super::attention::ssa_forward(q, k, v, &shape, 0.125).y,
        AttentionForm::Binary => {
            let attn_cfg = BinaryAttentionConfig {
                order: if cfg.patch_size == 16 {
                    MapOrder::Features
                } else {
                    MapOrder::Tokens
                },
                ..BinaryAttentionConfig::default()
            };
            let lambda = p(params, &format!("{a}.lambda_attn")).to_vec();
            tape.binary_attention(q, k, v, &lambda, &shape, &attn_cfg)
        }
        AttentionForm::SsaBin => {
            let delta = p(params, &format!("{a}.{SSA_BIN_DELTA}")).to_vec();
            let mean = p(params, &format!("{a}.{SSA_BIN_SHIFT}")).to_vec();
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

/// BESTformer's attention sub-block on tokens `x [T, B, N, D]`.
fn best_attn(
    cfg: &ModelConfig,
    params: &RefParams,
    tape: &mut Tape,
    blk: usize,
    x: &[f64],
    batch: usize,
) -> Vec<f64> {
    let d = cfg.dim;
    let a = format!("block.{blk}.attn");
    let s = tape.lif(x, cfg.time_steps, 1.0, false);
    let ys = attention_core(cfg, params, tape, blk, &s, batch, "_conv", false);
    let z = bin_lin(cfg, params, tape, &format!("{a}.proj_conv"), &ys, d, d);
    bn(tape, params, &format!("{a}.proj_bn"), &z, d)
}

/// BESTformer's MLP sub-block on tokens `x [T, B, N, D]`.
fn best_mlp(
    cfg: &ModelConfig,
    params: &RefParams,
    tape: &mut Tape,
    blk: usize,
    x: &[f64],
) -> Vec<f64> {
    let (t, d, hid) = (cfg.time_steps, cfg.dim, cfg.hidden());
    let m = format!("block.{blk}.mlp");
    let s = tape.lif(x, t, 1.0, false);
    let z = bin_lin(cfg, params, tape, &format!("{m}.mlp1_conv"), &s, d, hid);
    let y = bn(tape, params, &format!("{m}.mlp1_bn"), &z, hid);
    let s = tape.lif(&y, t, 1.0, false);
    let z = bin_lin(cfg, params, tape, &format!("{m}.mlp2_conv"), &s, hid, d);
    bn(tape, params, &format!("{m}.mlp2_bn"), &z, d)
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
    assert_eq!(cfg.arch, Arch::Bestformer);
    let t = cfg.time_steps;
    let tb = t * batch;
    let w = cfg.tokenizer_widths();
    let widths = [w[0], w[1], w[2], w[3], w[4], w[4]];
    let x = encode(cfg, images, batch);
    let mut side = cfg.image_size;
    let dims = |side: usize, i: usize| ConvDims {
        images: tb,
        h: side,
        w: side,
        c_in: widths[i],
        c_out: widths[i + 1],
    };
    let z = conv3x3(
        &x,
        p(params, "patch_embed.block0_conv.weight"),
        dims(side, 0),
    );
    let mut y = bn(tape, params, "patch_embed.block0_bn", &z, widths[1]);
    for i in 1..5 {
        let mut s = tape.lif(&y, t, 1.0, false);
        if cfg.stage_pools(i - 1) {
            s = tape.max_pool(&s, tb, side, widths[i]);
            side = (side - 1) / 2 + 1;
        }
        let wb = weight(
            cfg,
            params,
            tape,
            &format!("patch_embed.block{i}_conv.weight"),
            widths[i + 1],
            true,
        );
        let z = conv3x3(&s, &wb, dims(side, i));
        y = bn(
            tape,
            params,
            &format!("patch_embed.block{i}_bn"),
            &z,
            widths[i + 1],
        );
    }
    let mut x1 = y;
    let mut x0: Option<Vec<f64>> = None;
    for blk in 0..cfg.depth {
        let a = best_attn(cfg, params, tape, blk, &x1, batch);
        let x2: Vec<f64> = match &x0 {
            Some(x0) => (0..a.len()).map(|i| a[i] + (x0[i] + x1[i]) / 2.0).collect(),
            None => add(&a, &x1),
        };
        let m = best_mlp(cfg, params, tape, blk, &x2);
        let x3: Vec<f64> = (0..m.len()).map(|i| m[i] + (x1[i] + x2[i]) / 2.0).collect();
        x0 = Some(x2);
        x1 = x3;
    }
    let (n, d) = (cfg.tokens(), cfg.dim);
    let x2 = x0.expect("depth >= 1");
    let out0 = lin(
        params,
        "head",
        &mean_tokens(&x2, t, batch, n, d),
        d,
        cfg.classes,
        true,
    );
    let out1 = lin(
        params,
        "head2",
        &mean_tokens(&x1, t, batch, n, d),
        d,
        cfg.classes,
        true,
    );
    (out0, out1)
}
