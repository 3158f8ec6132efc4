//! CPU reference forward (f64) of the spiking CNNs (`nn::cnn`), composed from the layer
//! references like [`super::model`]'s transformers, every LIF, max-pool and quantized
//! weight going through its [`Tape`]: the oracle of `SpikingCnn`'s forward and, replayed
//! as the surrogate forward, of its backward by finite differences.
//!
//! - VGG: conv3x3-BN-LIF per conv, a max-pool (3, 2, 1) after the convs `pool_after`
//!   lists;
//! - ResNet: a stem conv-BN-LIF, then basic blocks `s1 = LIF(BN1(conv1(x)))`,
//!   `out = LIF(BN2(conv2(s1)) + shortcut(x))`, the shortcut the identity or, where the
//!   width changes, a 1x1 conv + BN; a pool after the stem or a block's output neuron;
//! - images encoded directly (repeated over T), the head `Linear(sum_{H,W} mean_T s)`.
//!
//! Weights (docs/models.md section 6): float; QP-SNN's ReScaW `weight_bits`-bit in every conv,
//! shortcut and the head, the first conv included; or Q-SNN's: sign weights with a
//! power-of-two scale per channel, the first conv and the head 8-bit ReScaW, and the
//! Q-SNN neuron, whose training logits are those of every time step.

use super::conv::{conv3x3, ConvDims};
use super::model::{add, encode, Params, RefParams, Tape};
use super::pool::mean_tokens;
use crate::nn::params::ConvLayer;
use crate::nn::{ModelConfig, WeightMode};
use crate::ops::{max_pool_out, QsnnConfig};

/// conv -> BN (+ `residual`) -> neuron (-> pool) on `x [T * B, side, side, c_in]`;
/// returns the output and moves `side` past the pool.
fn unit(
    cfg: &ModelConfig,
    ps: &Params,
    tape: &mut Tape,
    layer: &ConvLayer,
    (x, tb): (&[f64], usize),
    side: &mut usize,
    residual: Option<&[f64]>,
) -> Vec<f64> {
    let w = ps.weight(tape, layer.unit.weight.weight);
    let dims = ConvDims {
        images: tb,
        h: *side,
        w: *side,
        c_in: layer.c_in,
        c_out: layer.c_out,
    };
    let z = conv3x3(x, &w, dims);
    let mut y = ps.bn(tape, &layer.unit.bn, &z, layer.c_out);
    if let Some(r) = residual {
        y = add(&y, r);
    }
    let s = match cfg.weights {
        WeightMode::Qsnn => tape.qsnn(&y, cfg.time_steps, &QsnnConfig::default()),
        _ => tape.lif(&y, cfg.time_steps, 1.0, false),
    };
    if !layer.pool {
        return s;
    }
    let out = tape.max_pool(&s, tb, *side, layer.c_out);
    *side = max_pool_out(*side);
    out
}

/// A spiking CNN's logits `[B, classes]` for `images [B, C, H, W]` (BN mode:
/// `tape.eval`); Q-SNN's in training, every time step's `[T * B, classes]`.
pub fn spiking_cnn_forward(
    cfg: &ModelConfig,
    params: &RefParams,
    images: &[f64],
    batch: usize,
    tape: &mut Tape,
) -> Vec<f64> {
    let ps = Params::new(cfg, params);
    let layout = ps.layout.cnn().expect("a spiking CNN").clone();
    let t = cfg.time_steps;
    let tb = t * batch;
    let convs = &layout.convs;
    let mut side = cfg.image_size;
    let mut x = encode(cfg, images, batch); // [T * B, H, W, C_in]
    if layout.shortcuts.is_empty() {
        for layer in convs {
            x = unit(cfg, &ps, tape, layer, (&x, tb), &mut side, None);
        }
    } else {
        // ResNet: the stem, then per block conv1, conv2 with the shortcut added.
        x = unit(cfg, &ps, tape, &convs[0], (&x, tb), &mut side, None);
        for (j, shortcut) in layout.shortcuts.iter().enumerate() {
            let (conv1, conv2) = (&convs[1 + 2 * j], &convs[2 + 2 * j]);
            let s1 = unit(cfg, &ps, tape, conv1, (&x, tb), &mut side, None);
            let residual = match shortcut {
                Some(sc) => {
                    let (c_in, c_out) = (conv1.c_in, conv2.c_out);
                    let z = ps.linear(tape, &sc.weight, &x, c_in, c_out);
                    ps.bn(tape, &sc.bn, &z, c_out)
                }
                None => x,
            };
            x = unit(cfg, &ps, tape, conv2, (&s1, tb), &mut side, Some(&residual));
        }
    }
    let c = convs.last().expect("a CNN has convs").c_out;
    let n = side * side;
    // Spike counts summed over the map, averaged over T (Q-SNN training: of each step).
    let (steps, rows) = match cfg.weights {
        WeightMode::Qsnn if !tape.eval => (1, tb),
        _ => (t, batch),
    };
    let pooled: Vec<f64> = mean_tokens(&x, steps, rows, n, c)
        .iter()
        .map(|v| v * n as f64)
        .collect();
    ps.linear(tape, &layout.head, &pooled, c, cfg.classes)
}
