//! `bitspike doctor`: on the adapter at hand, one tiny forward and backward of every model
//! family against the plain-Rust CPU reference. These are the checks the test suite runs
//! on lavapipe, in a form a user can run on a new GPU and report.
//!
//! Each transformer check runs a small model's training forward and eval forward against
//! `reference::model`. It then runs the GPU backward of `sum logits * r` and compares a
//! few gradients with central differences of the reference's surrogate forward. Between
//! them the checks dispatch every kernel family: packing, the binary and f32 matmuls,
//! convolutions, BatchNorm, pooling, LIF neurons, each attention form, weight
//! binarization and quantization, the layout swaps, the elementwise ops, the losses and
//! AdamW.

use crate::error::Result;
use crate::gpu::{DType, GpuContext, Tensor};
use crate::nn::{
    init_state, AttentionForm, Classifier, Model, ModelConfig, ParamStore, WeightMode,
};
use crate::ops::loss::cross_entropy;
use crate::ops::optim::{adamw_step, AdamW};
use crate::reference::model::{
    bestformer_forward, ref_params, spikformer_forward, RefParams, Tape,
};
use crate::rng::Rng;

/// The outcome of one check.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// The kernel families it exercises.
    pub kernels: &'static str,
    /// Whether it matched the reference.
    pub passed: bool,
    /// The largest error found, relative to the check's scale, against `tolerance`.
    pub worst: f64,
    /// The relative difference allowed.
    pub tolerance: f64,
    /// Where the worst error is (empty when nothing was off).
    pub detail: String,
}

/// Batch of every model check.
const BATCH: usize = 2;
/// Relative tolerance of logits (as the model tests use).
const LOGIT_TOLERANCE: f64 = 2e-3;
/// Tolerance of a gradient against finite differences, relative to the largest gradient
/// of its tensor (as the model tests use).
const GRADIENT_TOLERANCE: f64 = 0.03;
/// The step of the central differences.
const EPS: f64 = 1e-4;
/// Training forwards before the eval check (BatchNorm's momentum 0.1: 99.8 % of the way
/// from the initial statistics to the batch's; fewer leave the float models silent).
const EVAL_WARMUP_FORWARDS: usize = 60;

/// The largest of `|got - want| / max(|want|, 1)` over the elements, and its index.
fn worst_relative(got: &[f32], want: &[f64]) -> (f64, usize) {
    got.iter()
        .zip(want)
        .enumerate()
        .map(|(i, (&g, &w))| ((g as f64 - w).abs() / w.abs().max(1.0), i))
        .fold((0.0, 0), |a, b| if b.0 > a.0 { b } else { a })
}

fn check(name: String, kernels: &'static str, worst: f64, tolerance: f64, detail: String) -> Check {
    Check {
        name,
        kernels,
        passed: worst <= tolerance,
        worst,
        tolerance,
        detail,
    }
}

/// A small transformer: 16x16 grey images (4x4 tokens), the given attention and weights.
fn small_transformer(
    preset: &str,
    form: AttentionForm,
    weights: WeightMode,
) -> Result<ModelConfig> {
    let mut cfg = ModelConfig::preset(preset)?;
    cfg.image_size = 16;
    if let Some(t) = cfg.transformer_mut() {
        t.attention = form;
    }
    cfg.weights = weights;
    cfg.validate()?;
    Ok(cfg)
}

fn reference_logits(cfg: &ModelConfig, p: &RefParams, xs: &[f64], tape: &mut Tape) -> Vec<f64> {
    if cfg.kind() == crate::nn::Arch::Spikformer {
        spikformer_forward(cfg, p, xs, BATCH, tape)
    } else {
        let (a, b) = bestformer_forward(cfg, p, xs, BATCH, tape);
        [a, b].concat()
    }
}

fn download_heads(ctx: &GpuContext, heads: &[Tensor]) -> Result<Vec<f32>> {
    let mut out = Vec::new();
    for h in heads {
        out.extend(ctx.download_f32(h)?);
    }
    Ok(out)
}

/// Forward (training and eval) and backward of one small transformer.
fn transformer_checks(ctx: &GpuContext, cfg: &ModelConfig, seed: u64) -> Result<Vec<Check>> {
    let form = cfg
        .transformer()
        .map_or(AttentionForm::Ssa, |t| t.attention);
    let name = format!(
        "{:?} {form:?} attention, {:?} weights",
        cfg.kind(),
        cfg.weights
    );
    let kernels = match cfg.kind() {
        crate::nn::Arch::Spikformer => {
            "conv, norm, lif, pool, matmul / binary_matmul, attention, layout, elementwise"
        }
        _ => "conv, norm, lif, pool, binarize, binary_matmul, attention, reversible, layout",
    };
    let sd = init_state(cfg, seed);
    let mut store = ParamStore::new(ctx, cfg, &sd)?;
    let mut model = Model::new(cfg, BATCH)?;
    let s = cfg.image_size;
    let x = Rng::new(seed + 1).uniform_vec(BATCH * cfg.in_channels * s * s, -1.0, 1.0);
    let xt = ctx.upload_f32(&x, &[BATCH, cfg.in_channels, s, s])?;
    let xs: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let params = ref_params(&sd);
    let mut out = Vec::new();

    let heads = model.forward(ctx, &mut store, &xt, true)?;
    let got = download_heads(ctx, &heads)?;
    let mut tape = Tape::default();
    let want = reference_logits(cfg, &params, &xs, &mut tape);
    out.push(logit_check(
        format!("{name}: training forward"),
        kernels,
        &got,
        &want,
    ));

    // The backward of sum logits * r, then finite differences of the reference at the
    // point its forward recorded.
    let nc = BATCH * cfg.classes;
    let r = Rng::new(seed + 2).uniform_vec(heads.len() * nc, -1.0, 1.0);
    let mut dlogits = Vec::new();
    for c in r.chunks(nc) {
        dlogits.push(ctx.upload_f32(c, &[BATCH, cfg.classes])?);
    }
    store.zero_grads(ctx);
    model.backward(ctx, &mut store, &dlogits)?;
    let names = gradient_names(cfg);
    let (mut worst, mut detail) = (0f64, String::new());
    for name in &names {
        let gpu = ctx.download_f32(store.grad(store.id(name)?)?)?;
        let scale = gpu.iter().fold(0f32, |m, g| m.max(g.abs())).max(1e-6) as f64;
        let mut picks: Vec<usize> = (0..gpu.len()).collect();
        picks.sort_by(|&a, &b| gpu[b].abs().total_cmp(&gpu[a].abs()));
        for &i in picks.iter().take(2) {
            let mut f = [0.0; 2];
            for (k, sign) in [1.0, -1.0].into_iter().enumerate() {
                let mut p = params.clone();
                if let Some(v) = p.get_mut(name.as_str()) {
                    v[i] += sign * EPS;
                }
                let mut t = tape.clone();
                t.rewind_for_replay();
                let logits = reference_logits(cfg, &p, &xs, &mut t);
                f[k] = logits.iter().zip(&r).map(|(l, &r)| l * r as f64).sum();
            }
            let fd = (f[0] - f[1]) / (2.0 * EPS);
            let err = (fd - gpu[i] as f64).abs() / (scale + fd.abs());
            if err > worst {
                worst = err;
                detail = format!(
                    "d/d {name}[{i}]: GPU {}, finite differences {fd:.6}",
                    gpu[i]
                );
            }
        }
    }
    out.push(check(
        format!("{name}: backward ({} gradients)", names.len()),
        kernels,
        worst,
        GRADIENT_TOLERANCE,
        detail,
    ));

    // Eval normalizes with the running statistics: let them move from their initial
    // values towards the batch's, so that eval spikes too and the check sees them.
    for _ in 0..EVAL_WARMUP_FORWARDS {
        model.forward(ctx, &mut store, &xt, true)?;
    }
    let trained = store.to_state_dict(ctx)?;
    let got = download_heads(ctx, &model.forward(ctx, &mut store, &xt, false)?)?;
    let mut tape = Tape::default();
    tape.eval = true;
    let want = reference_logits(cfg, &ref_params(&trained), &xs, &mut tape);
    out.push(logit_check(
        format!("{name}: eval forward"),
        kernels,
        &got,
        &want,
    ));
    Ok(out)
}

/// Logits against the reference's; logits that are all zero fail (no spike reached the
/// head, so the comparison would see nothing).
fn logit_check(name: String, kernels: &'static str, got: &[f32], want: &[f64]) -> Check {
    let (worst, at) = worst_relative(got, want);
    let largest = got.iter().fold(0f32, |m, v| m.max(v.abs()));
    if largest <= 1e-4 {
        return check(
            name,
            kernels,
            f64::INFINITY,
            LOGIT_TOLERANCE,
            "logits all zero".into(),
        );
    }
    check(
        name,
        kernels,
        worst,
        LOGIT_TOLERANCE,
        format!("logit {at}: GPU {}, reference {:.6}", got[at], want[at]),
    )
}

/// The parameters whose gradients a check compares: the attention's, a tokenizer
/// weight, the head.
fn gradient_names(cfg: &ModelConfig) -> Vec<String> {
    let (qkv, tok) = match cfg.kind() {
        crate::nn::Arch::Spikformer => ("_linear", "patch_embed.proj_conv1.weight"),
        _ => ("_conv", "patch_embed.block1_conv.weight"),
    };
    vec![
        format!("block.1.attn.q{qkv}.weight"),
        format!("block.0.attn.v{qkv}.weight"),
        "block.0.attn.proj_bn.bias".into(),
        tok.into(),
        "head.weight".into(),
    ]
}

/// Cross-entropy and one AdamW step against their references.
fn loss_and_optimizer(ctx: &GpuContext) -> Result<Check> {
    let (rows, classes, len) = (5, 7, 301);
    let mut rng = Rng::new(7);
    let z = rng.uniform_vec(rows * classes, -3.0, 3.0);
    let labels: Vec<u32> = (0..rows).map(|i| (i * 3 % classes) as u32).collect();
    let out = cross_entropy(
        ctx,
        &ctx.upload_f32(&z, &[rows, classes])?,
        &ctx.upload_words(&labels, &[rows], DType::U32)?,
        0.1,
        1.0,
    )?;
    let (want_loss, want_grad) =
        crate::reference::loss::cross_entropy(&z, &labels, classes, 0.1, 1.0);
    let f64s = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
    let (mut worst, at) = worst_relative(&ctx.download_f32(&out.losses)?, &f64s(&want_loss));
    let mut detail = format!("cross-entropy loss {at}");
    let (w, at) = worst_relative(&ctx.download_f32(&out.dlogits)?, &f64s(&want_grad));
    if w > worst {
        (worst, detail) = (w, format!("cross-entropy gradient {at}"));
    }
    let opt = AdamW::default();
    let (grad, mut param) = (
        rng.uniform_vec(len, -1.0, 1.0),
        rng.uniform_vec(len, -1.0, 1.0),
    );
    let (mut m1, mut m2) = (vec![0.0; len], vec![0.0; len]);
    let tensors = [&grad, &param, &m1, &m2].map(|v| ctx.upload_f32(v, &[len]));
    let [g, p, t1, t2] = tensors;
    let (g, p, t1, t2) = (g?, p?, t1?, t2?);
    adamw_step(ctx, &opt, 1e-2, 1, 200, &g, &p, &t1, &t2)?;
    crate::reference::optim::adamw_step(&opt, 1e-2, 1, 200, &grad, &mut param, &mut m1, &mut m2);
    let (w, at) = worst_relative(&ctx.download_f32(&p)?, &f64s(&param));
    if w > worst {
        (worst, detail) = (w, format!("AdamW parameter {at}"));
    }
    Ok(check(
        "losses and AdamW".into(),
        "loss, optim",
        worst,
        1e-4,
        detail,
    ))
}

/// Every check, in order.
pub fn run(ctx: &GpuContext) -> Result<Vec<Check>> {
    let mut checks = Vec::new();
    let transformers = [
        ("spikformer-2-64", AttentionForm::Ssa, WeightMode::Float),
        ("spikformer-2-64", AttentionForm::Ssa, WeightMode::Binary),
        ("spikformer-2-64", AttentionForm::SsaBin, WeightMode::Float),
        ("spikformer-2-64", AttentionForm::A2os2a, WeightMode::Float),
        ("bestformer-2-64", AttentionForm::Binary, WeightMode::Binary),
    ];
    for (i, (preset, form, weights)) in transformers.into_iter().enumerate() {
        let cfg = small_transformer(preset, form, weights)?;
        checks.extend(transformer_checks(ctx, &cfg, 40 + 10 * i as u64)?);
    }
    checks.push(loss_and_optimizer(ctx)?);
    Ok(checks)
}
