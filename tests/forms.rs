//! Every attention form (ssa | binary | ssa-bin | a2os2a) and weight mode (float |
//! binary) in both model families: parameter inventories, GPU forward vs the CPU
//! reference, backward vs finite differences of the surrogate forward, training smoke
//! runs, and SSA_Bin's running statistics in checkpoints.

mod common;

use bitspike::nn::{
    init_state, param_counts, param_specs, AttentionForm, Classifier, Model, ModelConfig,
    ParamRole, ParamStore, WeightMode,
};
use bitspike::reference::model::{
    bestformer_forward, ref_params, spikformer_forward, RefParams, Tape,
};
use bitspike::{DType, GpuContext, Tensor};
use common::gradcheck::GradCheck;
use common::training::{loss_fell, train_steps};
use common::{assert_close, ctx, Rng};

const FORMS: [AttentionForm; 4] = [
    AttentionForm::Ssa,
    AttentionForm::Binary,
    AttentionForm::SsaBin,
    AttentionForm::A2os2a,
];
const MODES: [WeightMode; 2] = [WeightMode::Float, WeightMode::Binary];

/// A small config of `preset` (16x16 grey images, 4x4 tokens) with the form and mode.
fn config(preset: &str, form: AttentionForm, mode: WeightMode) -> ModelConfig {
    let mut cfg = ModelConfig::preset(preset).unwrap();
    cfg.image_size = 16;
    cfg.transformer_mut().unwrap().attention = form;
    cfg.weights = mode;
    cfg
}

fn images(cfg: &ModelConfig, batch: usize, seed: u64) -> Vec<f32> {
    let s = cfg.image_size;
    Rng::new(seed).vec(batch * cfg.in_channels * s * s, -1.0, 1.0)
}

fn upload(ctx: &GpuContext, cfg: &ModelConfig, x: &[f32], batch: usize) -> Tensor {
    let s = cfg.image_size;
    ctx.upload_f32(x, &[batch, cfg.in_channels, s, s]).unwrap()
}

fn is_spikformer(cfg: &ModelConfig) -> bool {
    cfg.kind() == bitspike::nn::Arch::Spikformer
}

/// The reference's heads, concatenated (Spikformer: its one head).
fn reference(
    cfg: &ModelConfig,
    p: &RefParams,
    xs: &[f64],
    batch: usize,
    tape: &mut Tape,
) -> Vec<f64> {
    if is_spikformer(cfg) {
        spikformer_forward(cfg, p, xs, batch, tape)
    } else {
        let (a, b) = bestformer_forward(cfg, p, xs, batch, tape);
        [a, b].concat()
    }
}

fn download_heads(ctx: &GpuContext, heads: &[Tensor]) -> Vec<f32> {
    heads
        .iter()
        .flat_map(|h| ctx.download_f32(h).unwrap())
        .collect()
}

fn to32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

#[test]
fn every_combination_has_its_parameters() {
    for preset in ["spikformer-4-384", "bestformer-4-384"] {
        for form in FORMS {
            for mode in MODES {
                let cfg = config(preset, form, mode);
                let specs = param_specs(&cfg);
                let has = |suffix: &str| {
                    specs
                        .iter()
                        .any(|s| s.name == format!("block.0.attn.{suffix}"))
                };
                let what = format!("{preset} {form:?} {mode:?}");
                assert_eq!(has("lambda_attn"), form == AttentionForm::Binary, "{what}");
                assert_eq!(has("attn_delta"), form == AttentionForm::SsaBin, "{what}");
                assert_eq!(has("attn_shift"), form == AttentionForm::SsaBin, "{what}");
                let buffers = specs.iter().filter(|s| s.role == ParamRole::Buffer).count();
                let want = if form == AttentionForm::SsaBin {
                    2 * cfg.transformer().unwrap().depth
                } else {
                    0
                };
                assert_eq!(buffers, want, "{what}");
                let c = param_counts(&cfg);
                assert_eq!(c.binary == 0, mode == WeightMode::Float, "{what}");
                if mode == WeightMode::Binary {
                    // All but the first conv and the head(s): well over 99 %.
                    assert!(c.binary as f64 > 0.99 * c.total as f64, "{what}: {c:?}");
                    assert!(c.packed_bytes < c.fp32_bytes / 10, "{what}: {c:?}");
                }
            }
        }
    }
    // The published models' counts are untouched.
    let s = param_counts(&ModelConfig::preset("spikformer-4-384").unwrap());
    let b = param_counts(&ModelConfig::preset("bestformer-4-384").unwrap());
    assert_eq!((s.total as f64 / 1e4).round(), 932.0);
    assert_eq!((b.total as f64 / 1e4).round(), 931.0);
    assert_eq!((b.binary as f64 / 1e4).round(), 928.0);
}

/// A training forward of every (family, form, mode) on the GPU equals the CPU reference;
/// then an eval forward (running statistics, SSA_Bin's frozen threshold and shift as the
/// training forward left them) too.
#[test]
fn every_combination_matches_the_cpu_reference() {
    let ctx = ctx();
    let batch = 2;
    for preset in ["spikformer-2-64", "bestformer-2-64"] {
        for form in FORMS {
            for mode in MODES {
                let cfg = config(preset, form, mode);
                let what = format!("{preset} {form:?} {mode:?}");
                let sd = init_state(&cfg, 31);
                let mut store = ParamStore::new(ctx, &cfg, &sd).unwrap();
                let mut model = Model::new(&cfg, batch).unwrap();
                let x = images(&cfg, batch, 32);
                let xt = upload(ctx, &cfg, &x, batch);
                let xs: Vec<f64> = x.iter().map(|&v| v as f64).collect();
                let got = download_heads(ctx, &model.forward(ctx, &mut store, &xt, true).unwrap());
                assert!(
                    got.iter().any(|v| v.abs() > 1e-4),
                    "{what}: logits all zero"
                );
                let want = reference(&cfg, &ref_params(&sd), &xs, batch, &mut Tape::default());
                assert_close(&format!("{what} train"), &got, &to32(&want), 2e-3);
                // Eval normalizes with the running statistics: let them reach the
                // batch's, so that the float models spike in eval too.
                for _ in 0..60 {
                    model.forward(ctx, &mut store, &xt, true).unwrap();
                }
                let got = download_heads(ctx, &model.forward(ctx, &mut store, &xt, false).unwrap());
                assert!(
                    got.iter().any(|v| v.abs() > 1e-4),
                    "{what}: eval logits all zero"
                );
                let mut tape = Tape::default();
                tape.eval = true;
                let params = ref_params(&store.to_state_dict(ctx).unwrap());
                let want = reference(&cfg, &params, &xs, batch, &mut tape);
                assert_close(&format!("{what} eval"), &got, &to32(&want), 2e-3);
            }
        }
    }
}

/// Whole-model gradient check of one combination on the attention's parameters, a
/// tokenizer weight and the head.
fn gradient_check(cfg: &ModelConfig, seed: u64) {
    let ctx = ctx();
    let batch = 2;
    let attention = cfg.transformer().unwrap().attention;
    let what = format!("{:?} {attention:?} {:?}", cfg.kind(), cfg.weights);
    let sd = init_state(cfg, seed);
    let mut store = ParamStore::new(ctx, cfg, &sd).unwrap();
    let mut model = Model::new(cfg, batch).unwrap();
    let x = images(cfg, batch, seed + 1);
    let heads = model
        .forward(ctx, &mut store, &upload(ctx, cfg, &x, batch), true)
        .unwrap();
    let nc = batch * cfg.classes;
    let r = Rng::new(seed + 2).vec(heads.len() * nc, -1.0, 1.0);
    let d: Vec<Tensor> = r
        .chunks(nc)
        .map(|c| ctx.upload_f32(c, &[batch, cfg.classes]).unwrap())
        .collect();
    store.zero_grads(ctx);
    model.backward(ctx, &mut store, &d).unwrap();
    let params = ref_params(&sd);
    let xs: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let forward = |p: &RefParams, tape: &mut Tape| reference(cfg, p, &xs, batch, tape);
    let mut tape = Tape::default();
    forward(&params, &mut tape);
    let (qkv, tok) = if is_spikformer(cfg) {
        ("_linear", "patch_embed.proj_conv1.weight")
    } else {
        ("_conv", "patch_embed.block1_conv.weight")
    };
    let mut names = vec![
        format!("block.1.attn.q{qkv}.weight"),
        format!("block.1.attn.k{qkv}.weight"),
        format!("block.0.attn.v{qkv}.weight"),
        "block.0.attn.k_bn.bias".to_string(),
        // (proj's weight may see no spikes at initialization: its BN's bias.)
        "block.0.attn.proj_bn.bias".to_string(),
        tok.to_string(),
        "head.weight".to_string(),
    ];
    if attention == AttentionForm::Binary {
        names.push("block.1.attn.lambda_attn".into());
    }
    let check = GradCheck {
        what: &what,
        forward: &forward,
        params: &params,
        tape: &tape,
        r: &r,
    };
    for name in names {
        let g = ctx
            .download_f32(store.grad(store.id(&name).unwrap()).unwrap())
            .unwrap();
        assert!(
            g.iter().any(|v| *v != 0.0),
            "{what}: {name}: gradient all zero"
        );
        check.check(&name, &g, 4, &|_| false);
    }
}

#[test]
fn spikformer_binary_attention_with_binary_weights_gradients() {
    gradient_check(
        &config("spikformer-2-64", AttentionForm::Binary, WeightMode::Binary),
        40,
    );
}

#[test]
fn spikformer_ssa_bin_gradients() {
    gradient_check(
        &config("spikformer-2-64", AttentionForm::SsaBin, WeightMode::Float),
        41,
    );
}

#[test]
fn spikformer_a2os2a_gradients() {
    gradient_check(
        &config("spikformer-2-64", AttentionForm::A2os2a, WeightMode::Float),
        42,
    );
}

#[test]
fn bestformer_ssa_with_float_weights_gradients() {
    gradient_check(
        &config("bestformer-2-64", AttentionForm::Ssa, WeightMode::Float),
        43,
    );
}

#[test]
fn bestformer_ssa_bin_gradients() {
    gradient_check(
        &config("bestformer-2-64", AttentionForm::SsaBin, WeightMode::Binary),
        44,
    );
}

#[test]
fn bestformer_a2os2a_gradients() {
    gradient_check(
        &config("bestformer-2-64", AttentionForm::A2os2a, WeightMode::Binary),
        45,
    );
}

/// 20 training steps on one tiny batch: the loss goes down.
fn train_smoke(cfg: &ModelConfig, lr: f32) {
    let ctx = ctx();
    let batch = 2;
    let mut store = ParamStore::new(ctx, cfg, &init_state(cfg, 51)).unwrap();
    let mut model = Model::new(cfg, batch).unwrap();
    let x = upload(ctx, cfg, &images(cfg, batch, 52), batch);
    let labels = ctx.upload_words(&[3u32, 7], &[batch], DType::U32).unwrap();
    let losses = train_steps(ctx, &mut model, &mut store, (&x, &labels), 20, lr);
    assert!(
        loss_fell(&losses, 0.7),
        "{:?} {:?} {:?}: loss {losses:?}",
        cfg.kind(),
        cfg.transformer().unwrap().attention,
        cfg.weights
    );
}

#[test]
fn new_forms_train_in_spikformer() {
    for form in [
        AttentionForm::Binary,
        AttentionForm::SsaBin,
        AttentionForm::A2os2a,
    ] {
        train_smoke(&config("spikformer-2-64", form, WeightMode::Float), 1e-3);
    }
    train_smoke(
        &config("spikformer-2-64", AttentionForm::Ssa, WeightMode::Binary),
        5e-3,
    );
}

#[test]
fn new_forms_train_in_bestformer() {
    for form in [
        AttentionForm::Ssa,
        AttentionForm::SsaBin,
        AttentionForm::A2os2a,
    ] {
        train_smoke(&config("bestformer-2-64", form, WeightMode::Binary), 5e-3);
    }
    train_smoke(
        &config("bestformer-2-64", AttentionForm::Binary, WeightMode::Float),
        1e-3,
    );
}

/// SSA_Bin's threshold and shift move with training forwards, stay put in eval and in
/// the reversible backward, and round-trip through a checkpoint.
#[test]
fn ssa_bin_statistics_are_checkpoint_state() {
    let ctx = ctx();
    let batch = 2;
    for preset in ["spikformer-2-64", "bestformer-2-64"] {
        let cfg = config(preset, AttentionForm::SsaBin, WeightMode::Binary);
        let sd = init_state(&cfg, 61);
        let mut store = ParamStore::new(ctx, &cfg, &sd).unwrap();
        let mut model = Model::new(&cfg, batch).unwrap();
        let xt = upload(ctx, &cfg, &images(&cfg, batch, 62), batch);
        let names = [
            "block.1.attn.attn_delta".to_string(),
            "block.1.attn.attn_shift".to_string(),
        ];
        let heads = model.forward(ctx, &mut store, &xt, true).unwrap();
        let trained = store.to_state_dict(ctx).unwrap();
        for name in &names {
            assert_ne!(
                trained.tensors[name], sd.tensors[name],
                "{preset}: {name} moved"
            );
        }
        let d: Vec<Tensor> = heads
            .iter()
            .map(|h| ctx.upload_f32(&vec![0.1; h.len()], h.shape()).unwrap())
            .collect();
        model.backward(ctx, &mut store, &d).unwrap();
        let eval = download_heads(ctx, &model.forward(ctx, &mut store, &xt, false).unwrap());
        let after = store.to_state_dict(ctx).unwrap();
        for name in &names {
            assert_eq!(
                after.tensors[name], trained.tensors[name],
                "{preset}: {name} frozen"
            );
        }
        // Through safetensors bytes and back into a fresh store: the same eval logits.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ssa_bin.safetensors");
        after.write(&path).unwrap();
        let loaded = bitspike::nn::StateDict::read(&path).unwrap();
        loaded.check(&cfg, &path).unwrap();
        let mut again = ParamStore::new(ctx, &cfg, &loaded).unwrap();
        let mut fresh = Model::new(&cfg, batch).unwrap();
        let got = download_heads(ctx, &fresh.forward(ctx, &mut again, &xt, false).unwrap());
        assert_eq!(got, eval, "{preset}: eval logits after the round trip");
        // A checkpoint without the statistics is refused, naming the tensor.
        let mut missing = after.clone();
        missing.tensors.remove(&names[0]);
        let err = missing.check(&cfg, &path).unwrap_err().to_string();
        assert!(err.contains(&names[0]), "{err}");
    }
}

/// Patch-16 models (a max-pool in every tokenizer stage): the binary map in the d x d
/// order in Spikformer, and the other forms in BESTformer, vs the CPU reference.
#[test]
fn patch_16_forms_match_the_cpu_reference() {
    let ctx = ctx();
    let batch = 2;
    let cases = [
        ("spikformer-2-64", AttentionForm::Binary, WeightMode::Binary),
        ("bestformer-2-64", AttentionForm::SsaBin, WeightMode::Float),
        ("bestformer-2-64", AttentionForm::A2os2a, WeightMode::Binary),
    ];
    for (preset, form, mode) in cases {
        let mut cfg = config(preset, form, mode);
        cfg.image_size = 32;
        cfg.transformer_mut().unwrap().patch_size = 16;
        let sd = init_state(&cfg, 71);
        let mut store = ParamStore::new(ctx, &cfg, &sd).unwrap();
        let mut model = Model::new(&cfg, batch).unwrap();
        let x = images(&cfg, batch, 72);
        let xt = upload(ctx, &cfg, &x, batch);
        let xs: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let got = download_heads(ctx, &model.forward(ctx, &mut store, &xt, true).unwrap());
        let want = reference(&cfg, &ref_params(&sd), &xs, batch, &mut Tape::default());
        assert_close(
            &format!("{preset} {form:?} {mode:?}"),
            &got,
            &to32(&want),
            2e-3,
        );
    }
}
