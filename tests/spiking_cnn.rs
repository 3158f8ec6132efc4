//! The spiking CNNs (`nn::cnn`) on the GPU against their CPU reference
//! (`reference::spiking_cnn`): logits in training and eval mode, and the backward against
//! finite differences of the replayed surrogate forward, in float, 4-bit ReScaW and Q-SNN
//! weight modes, at small odd sizes.

mod common;

use bitspike::nn::params::CnnParams;
use bitspike::nn::{
    init_state, param_layout, param_specs, CnnConfig, ModelConfig, ParamLayout, ParamStore,
    SpikingCnn, StateDict, WeightMode,
};
use bitspike::reference::model::{ref_params, RefParams, Tape};
use bitspike::reference::spiking_cnn::spiking_cnn_forward;
use bitspike::{GpuContext, Tensor};

use common::gradcheck::{GradCheck, EPS};
use common::{assert_close, ctx, Rng};

const BATCH: usize = 2;

/// `preset` shrunk: VGG convs 5 -> 7 -> 6 on 13x13 (pools after convs 1 and 2: 13 -> 7 ->
/// 4); ResNet stem 5, a block 5 -> 6 -> 5 (identity shortcut), a block 5 -> 7 -> 7 (1x1
/// shortcut), on 11x11 (pools after both blocks: 11 -> 6 -> 3); T 3; 4-bit weights in
/// quantized mode.
fn small(preset: &str, weights: WeightMode) -> ModelConfig {
    let mut cfg = ModelConfig::preset(preset).unwrap();
    let (channels, pools, side) = match preset {
        "spiking-vgg-small" => (vec![5, 7, 6], vec![1, 2], 13),
        "spiking-resnet-small" => (vec![5, 6, 5, 7, 7], vec![2, 4], 11),
        _ => panic!("no small form of {preset}"),
    };
    *cfg.cnn_mut().unwrap() = CnnConfig {
        channels,
        pool_after: pools,
    };
    cfg.image_size = side;
    cfg.time_steps = 3;
    cfg.weights = weights;
    cfg.weight_bits = 4;
    cfg.validate().unwrap();
    cfg
}

/// `cfg`'s parameter layout and its CNN part.
fn layout(cfg: &ModelConfig) -> (ParamLayout, CnnParams) {
    let layout = param_layout(cfg);
    let cnn = layout.cnn().unwrap().clone();
    (layout, cnn)
}

/// The weight, bias, running mean and running var names of every BatchNorm of `cfg`
/// (its convs', then its shortcuts').
fn batch_norms(cfg: &ModelConfig) -> Vec<[String; 4]> {
    let (layout, cnn) = layout(cfg);
    let units = cnn.convs.iter().map(|l| l.unit);
    units
        .chain(cnn.shortcuts.iter().flatten().copied())
        .map(|u| {
            let bn = u.bn;
            [bn.weight, bn.bias, bn.running_mean, bn.running_var]
                .map(|id| layout.name(id).to_string())
        })
        .collect()
}

/// The weight names of every conv of `cfg`, then of its 1x1 shortcuts (a ResNet's).
fn conv_weights(cfg: &ModelConfig) -> Vec<String> {
    let (layout, cnn) = layout(cfg);
    let units = cnn.convs.iter().map(|l| l.unit);
    units
        .chain(cnn.shortcuts.iter().flatten().copied())
        .map(|u| layout.name(u.weight.weight).to_string())
        .collect()
}

/// The head's weight and bias names.
fn head(cfg: &ModelConfig) -> [String; 2] {
    let (layout, cnn) = layout(cfg);
    let bias = cnn.head.bias.expect("the head has a bias");
    [cnn.head.weight, bias].map(|id| layout.name(id).to_string())
}

/// `init_state` with random BN affines and head bias, so that the neurons fire at varied
/// rates and every parameter matters; the binary (Q-SNN) weights of every other channel
/// cubed: heavy tails, which mostly give those channels a power-of-two scale of 1/2
/// (mean |w_hat| < 2^-1/2) where the others' is 1.
fn state(cfg: &ModelConfig, seed: u64) -> StateDict {
    let mut sd = init_state(cfg, seed);
    for spec in param_specs(cfg).into_iter().filter(|s| s.binary) {
        let k = spec.len() / spec.shape[0];
        let t = sd.tensors.get_mut(&spec.name).unwrap();
        for row in t.data.chunks_mut(k).step_by(2) {
            row.iter_mut().for_each(|v| *v = v.powi(3) * 30.0);
        }
    }
    let mut rng = Rng::new(seed + 100);
    for [weight, bias, ..] in batch_norms(cfg) {
        for (name, lo, hi) in [(weight, 0.8, 1.6), (bias, -0.2, 0.6)] {
            let t = sd.tensors.get_mut(&name).unwrap();
            t.data = rng.vec(t.data.len(), lo, hi);
        }
    }
    let head = sd.tensors.get_mut(&head(cfg)[1]).unwrap();
    head.data = rng.vec(head.data.len(), -0.1, 0.1);
    sd
}

fn images(cfg: &ModelConfig, seed: u64) -> Vec<f32> {
    let s = cfg.image_size;
    Rng::new(seed).vec(BATCH * cfg.in_channels * s * s, -1.0, 1.0)
}

fn upload(ctx: &GpuContext, cfg: &ModelConfig, x: &[f32]) -> Tensor {
    let s = cfg.image_size;
    ctx.upload_f32(x, &[BATCH, cfg.in_channels, s, s]).unwrap()
}

/// Rows of the training logits: Q-SNN's are every time step's.
fn train_rows(cfg: &ModelConfig) -> usize {
    match cfg.weights {
        WeightMode::Qsnn => cfg.time_steps * BATCH,
        _ => BATCH,
    }
}

fn f64s(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| v as f64).collect()
}

fn f32s(x: &[f64]) -> Vec<f32> {
    x.iter().map(|&v| v as f32).collect()
}

/// Every neuron layer of the forward `tape` recorded fires, none saturates: the
/// comparison sees every layer.
fn assert_lively(what: &str, cfg: &ModelConfig, tape: &Tape) {
    for i in 0..cfg.cnn().unwrap().channels.len() {
        let s = tape.spikes(i);
        let rate = s.iter().sum::<f64>() / s.len() as f64;
        assert!((0.02..0.8).contains(&rate), "{what}: layer {i} rate {rate}");
    }
}

/// GPU logits vs the reference: a training forward (batch statistics); then an eval
/// forward on the running statistics that 60 more training forwards left (near the batch
/// statistics), each channel's moved off them so that eval differs from training.
fn forward_matches(preset: &str, weights: WeightMode, seed: u64) {
    let ctx = ctx();
    let cfg = small(preset, weights);
    let what = format!("{preset} {weights:?}");
    let sd = state(&cfg, seed);
    let mut store = ParamStore::new(ctx, &cfg, &sd).unwrap();
    let mut model = SpikingCnn::new(&cfg, BATCH).unwrap();
    let x = images(&cfg, seed + 1);
    let (xt, xs) = (upload(ctx, &cfg, &x), f64s(&x));
    let logits = model.forward(ctx, &mut store, &xt, true).unwrap();
    assert_eq!(logits.shape(), &[train_rows(&cfg), cfg.classes]);
    let got = ctx.download_f32(&logits).unwrap();
    let mut tape = Tape::default();
    let want = spiking_cnn_forward(&cfg, &ref_params(&sd), &xs, BATCH, &mut tape);
    assert_lively(&format!("{what} training"), &cfg, &tape);
    assert_close(&format!("{what} training logits"), &got, &f32s(&want), 2e-3);
    for _ in 0..60 {
        model.forward(ctx, &mut store, &xt, true).unwrap();
    }
    let mut sd = store.to_state_dict(ctx).unwrap();
    let mut rng = Rng::new(seed + 3);
    for [.., running_mean, running_var] in batch_norms(&cfg) {
        let var = &mut sd.tensors.get_mut(&running_var).unwrap().data;
        var.iter_mut().for_each(|v| *v *= rng.range(0.7, 1.4));
        let std: Vec<f32> = var.iter().map(|v| v.sqrt()).collect();
        let mean = &mut sd.tensors.get_mut(&running_mean).unwrap().data;
        for (m, s) in mean.iter_mut().zip(std) {
            *m += 0.2 * s * rng.range(-1.0, 1.0);
        }
    }
    let mut store = ParamStore::new(ctx, &cfg, &sd).unwrap();
    let got = ctx
        .download_f32(&model.forward(ctx, &mut store, &xt, false).unwrap())
        .unwrap();
    let mut tape = Tape::default();
    tape.eval = true;
    let want = spiking_cnn_forward(&cfg, &ref_params(&sd), &xs, BATCH, &mut tape);
    assert_lively(&format!("{what} eval"), &cfg, &tape);
    assert_close(&format!("{what} eval logits"), &got, &f32s(&want), 2e-3);
}

/// GPU gradients of `sum logits * r` vs finite differences of the reference's surrogate
/// forward, for every conv (the first, the middle ones, the shortcuts), every BN's weight
/// and bias, and the head.
fn backward_matches(preset: &str, weights: WeightMode, seed: u64) {
    let ctx = ctx();
    let cfg = small(preset, weights);
    let what = format!("{preset} {weights:?}");
    let sd = state(&cfg, seed);
    let mut store = ParamStore::new(ctx, &cfg, &sd).unwrap();
    let mut model = SpikingCnn::new(&cfg, BATCH).unwrap();
    let x = images(&cfg, seed + 1);
    let rows = train_rows(&cfg);
    let r = Rng::new(seed + 2).vec(rows * cfg.classes, -1.0, 1.0);
    model
        .forward(ctx, &mut store, &upload(ctx, &cfg, &x), true)
        .unwrap();
    store.zero_grads(ctx);
    let dlogits = ctx.upload_f32(&r, &[rows, cfg.classes]).unwrap();
    model.backward(ctx, &mut store, &dlogits).unwrap();
    let params = ref_params(&sd);
    let xs = f64s(&x);
    let forward = |p: &RefParams, tape: &mut Tape| spiking_cnn_forward(&cfg, p, &xs, BATCH, tape);
    let mut tape = Tape::default();
    forward(&params, &mut tape);
    let mut names = conv_weights(&cfg);
    for [weight, bias, ..] in batch_norms(&cfg) {
        names.extend([weight, bias]);
    }
    names.extend(head(&cfg));
    let specs = param_specs(&cfg);
    let check = GradCheck {
        what: &what,
        forward: &forward,
        params: &params,
        tape: &tape,
        r: &r,
    };
    for name in &names {
        let g = ctx
            .download_f32(store.grad(store.id(name).unwrap()).unwrap())
            .unwrap();
        assert!(
            g.iter().any(|v| *v != 0.0),
            "{what}: {name}: gradient all zero"
        );
        // ReScaW's straight-through surrogate clamp(w, -gamma, gamma) has kinks at
        // |w| = gamma (the channel's mean |w|).
        let w = &params[name];
        let quantized = specs.iter().any(|s| &s.name == name && s.quant_bits > 0);
        let k = w.len() / specs.iter().find(|s| &s.name == name).unwrap().shape[0];
        let gamma: Vec<f64> = w
            .chunks(k)
            .map(|row| row.iter().map(|v| v.abs()).sum::<f64>() / k as f64)
            .collect();
        let kink = |i: usize| quantized && (w[i].abs() - gamma[i / k]).abs() < 2.0 * EPS;
        check.check(name, &g, 4, &kink);
    }
}

#[test]
fn vgg_float_forward_matches_the_cpu_reference() {
    forward_matches("spiking-vgg-small", WeightMode::Float, 41);
}

#[test]
fn vgg_quantized_forward_matches_the_cpu_reference() {
    forward_matches("spiking-vgg-small", WeightMode::Quantized, 42);
}

#[test]
fn resnet_float_forward_matches_the_cpu_reference() {
    forward_matches("spiking-resnet-small", WeightMode::Float, 43);
}

#[test]
fn resnet_quantized_forward_matches_the_cpu_reference() {
    forward_matches("spiking-resnet-small", WeightMode::Quantized, 44);
}

#[test]
fn vgg_float_backward_matches_finite_differences_of_the_surrogate_forward() {
    backward_matches("spiking-vgg-small", WeightMode::Float, 51);
}

#[test]
fn vgg_quantized_backward_matches_finite_differences_of_the_surrogate_forward() {
    backward_matches("spiking-vgg-small", WeightMode::Quantized, 52);
}

#[test]
fn resnet_float_backward_matches_finite_differences_of_the_surrogate_forward() {
    backward_matches("spiking-resnet-small", WeightMode::Float, 53);
}

#[test]
fn resnet_quantized_backward_matches_finite_differences_of_the_surrogate_forward() {
    backward_matches("spiking-resnet-small", WeightMode::Quantized, 54);
}

#[test]
fn vgg_qsnn_forward_matches_the_cpu_reference() {
    forward_matches("spiking-vgg-small", WeightMode::Qsnn, 45);
}

#[test]
fn resnet_qsnn_forward_matches_the_cpu_reference() {
    forward_matches("spiking-resnet-small", WeightMode::Qsnn, 46);
}

#[test]
fn vgg_qsnn_backward_matches_finite_differences_of_the_surrogate_forward() {
    backward_matches("spiking-vgg-small", WeightMode::Qsnn, 55);
}

#[test]
fn resnet_qsnn_backward_matches_finite_differences_of_the_surrogate_forward() {
    backward_matches("spiking-resnet-small", WeightMode::Qsnn, 56);
}
