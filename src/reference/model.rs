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

use super::conv::{conv3x3, ConvDims};
use super::linear::linear;
use super::norm::batch_norm_train;
use super::pool::{max_pool2d, mean_tokens};
use crate::nn::{Arch, ModelConfig, StateDict};
use crate::ops::attention::AttnShape;
use crate::ops::{BN_EPS, BN_MOMENTUM};

/// The Sigmoid surrogate's alpha of every LIF.
const ALPHA: f64 = 4.0;

/// The parameters in the kernels' layout (3x3 convs `[C_out, 9 C_in]`), by name, f64.
pub type RefParams = HashMap<String, Vec<f64>>;

/// A state dict's trainable tensors as [`RefParams`].
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
    /// Replay the surrogate forward around the recorded calls instead of recording.
    pub replay: bool,
    calls: Vec<(Vec<f64>, Vec<f64>)>,
    pos: usize,
    pools: Vec<Vec<u32>>,
    pool_pos: usize,
}

impl Tape {
    /// Start replaying the recorded calls from the first.
    pub fn rewind_for_replay(&mut self) {
        self.replay = true;
        self.pos = 0;
        self.pool_pos = 0;
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
        let n = x.len() / t;
        let sig = |z: f64| 1.0 / (1.0 + (-ALPHA * z).exp());
        let mut v = vec![0.0; n];
        let mut out = vec![0.0; x.len()];
        let mut hs = vec![0.0; x.len()];
        let base = self.replay.then(|| self.calls[self.pos].clone());
        for step in 0..t {
            for i in 0..n {
                let j = step * n + i;
                let h = v[i] + (x[j] - v[i]) / 2.0;
                let (s, s0) = match &base {
                    None => {
                        let s = if h >= v_th { 1.0 } else { 0.0 };
                        (s, s)
                    }
                    Some((h0, s0)) => (s0[j] + sig(h - v_th) - sig(h0[j] - v_th), s0[j]),
                };
                v[i] = if soft { h - v_th * s0 } else { h * (1.0 - s0) };
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

/// Training-mode BN (batch statistics) of `x [rows, C]`.
fn bn(params: &RefParams, prefix: &str, x: &[f64], c: usize) -> Vec<f64> {
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
    let mut y = vec![0.0; x.len()];
    for m in 0..tb {
        for i in 0..n {
            for hh in 0..h {
                for c in 0..d {
                    let tok = ((m * n + i) * h + hh) * d + c;
                    let hf = ((m * h + hh) * n + i) * d + c;
                    if inverse {
                        y[tok] = x[hf];
                    } else {
                        y[hf] = x[tok];
                    }
                }
            }
        }
    }
    y
}

/// `images [B, C, H, W]` to `[T * B, H, W, C]`.
fn encode(cfg: &ModelConfig, images: &[f64], batch: usize) -> Vec<f64> {
    let (c, s) = (cfg.in_channels, cfg.image_size);
    let mut one = vec![0.0; images.len()];
    for b in 0..batch {
        for ch in 0..c {
            for px in 0..s * s {
                one[(b * s * s + px) * c + ch] = images[(b * c + ch) * s * s + px];
            }
        }
    }
    one.repeat(cfg.time_steps)
}

/// Spikformer's logits `[B, classes]` for `images [B, C, H, W]`, training-mode BN.
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
        let z = conv3x3(
            &x,
            p(params, &format!("patch_embed.proj_conv{suffix}.weight")),
            dims,
        );
        let y = bn(
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
    let z = conv3x3(&x, p(params, "patch_embed.rpe_conv.weight"), dims);
    let r = tape.lif(&bn(params, "patch_embed.rpe_bn", &z, d), t, 1.0, false);
    let mut x = add(&r, &x);
    let n = side * side;
    let (h, hd, hid) = (cfg.heads, cfg.head_dim(), cfg.hidden());
    let shape = AttnShape {
        t,
        b: batch,
        heads: h,
        n,
        d: hd,
    };
    for blk in 0..cfg.depth {
        let a = format!("block.{blk}.attn");
        let mut qkv = Vec::new();
        for name in ["q", "k", "v"] {
            let z = lin(params, &format!("{a}.{name}_linear"), &x, d, d, true);
            let s = tape.lif(&bn(params, &format!("{a}.{name}_bn"), &z, d), t, 1.0, false);
            qkv.push(heads(&s, tb, n, h, hd, false));
        }
        let y = super::attention::ssa_forward(&qkv[0], &qkv[1], &qkv[2], &shape, 0.125).y;
        let ys = heads(&tape.lif(&y, t, 0.5, false), tb, n, h, hd, true);
        let z = lin(params, &format!("{a}.proj_linear"), &ys, d, d, true);
        let o = tape.lif(&bn(params, &format!("{a}.proj_bn"), &z, d), t, 1.0, false);
        x = add(&x, &o);
        let m = format!("block.{blk}.mlp");
        let z = lin(params, &format!("{m}.fc1_linear"), &x, d, hid, true);
        let s = tape.lif(&bn(params, &format!("{m}.fc1_bn"), &z, hid), t, 1.0, false);
        let z = lin(params, &format!("{m}.fc2_linear"), &s, hid, d, true);
        let o = tape.lif(&bn(params, &format!("{m}.fc2_bn"), &z, d), t, 1.0, false);
        x = add(&x, &o);
    }
    let pooled = mean_tokens(&x, t, batch, n, d);
    lin(params, "head", &pooled, d, cfg.classes, true)
}
