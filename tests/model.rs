//! Models on the GPU: the parameter store, and the models' forward and backward.

mod common;

use bitspike::nn::{init_state, ModelConfig, ParamStore};
use bitspike::ops;

use common::ctx;

#[test]
fn store_round_trips_the_state_dict_in_reference_layout() {
    let ctx = ctx();
    for preset in ["spikformer-2-64", "bestformer-2-64"] {
        let cfg = ModelConfig::preset(preset).unwrap();
        let sd = init_state(&cfg, 3);
        let store = ParamStore::new(ctx, &cfg, &sd).unwrap();
        let back = store.to_state_dict(ctx).unwrap();
        for (name, t) in &sd.tensors {
            assert_eq!(&back.tensors[name], t, "{preset}: {name}");
        }
        assert_eq!(back.metadata, sd.metadata);
        assert_eq!(
            store.trainable_len(),
            bitspike::nn::param_counts(&cfg).total
        );
    }
}

#[test]
fn store_keeps_kernel_layouts_binary_weights_and_the_decay_split() {
    let ctx = ctx();
    let cfg = ModelConfig::preset("bestformer-2-64").unwrap();
    let sd = init_state(&cfg, 4);
    let store = ParamStore::new(ctx, &cfg, &sd).unwrap();
    let name = "patch_embed.block1_conv.weight";
    let w = store.param(store.id(name).unwrap()).unwrap();
    assert_eq!(w.shape(), &[16, 9 * 8]);
    let want = ops::conv_weight_from_torch(&sd.tensors[name].data, 16, 8).unwrap();
    assert_eq!(ctx.download_f32(w).unwrap(), want);
    assert_eq!(
        store
            .param(store.id("block.0.attn.q_conv.weight").unwrap())
            .unwrap()
            .shape(),
        &[64, 64]
    );
    let b = store
        .binary(store.id("block.0.mlp.mlp1_conv.weight").unwrap())
        .unwrap();
    assert_eq!(b.bits.shape(), &[256, 64]);
    assert!(
        store
            .binary(store.id("patch_embed.block0_conv.weight").unwrap())
            .is_none(),
        "the first conv stays float"
    );
    // Decayed tensors (matrices) come first; biases and BN parameters after decay_end.
    let all = ctx.download_f32(&store.params).unwrap();
    assert!(store.decay_end < all.len());
    let head_bias = store.param(store.id("head.bias").unwrap()).unwrap();
    assert!(head_bias.offset_bytes() / 4 >= store.decay_end as u64);
    assert!((w.offset_bytes() / 4) < store.decay_end as u64);
}

#[test]
fn optimizer_steps_refresh_binary_weights_and_round_trip_its_state() {
    use bitspike::ops::optim::AdamW;
    use bitspike::train::Optimizer;
    let ctx = ctx();
    let cfg = ModelConfig::preset("bestformer-2-64").unwrap();
    let mut store = ParamStore::new(ctx, &cfg, &init_state(&cfg, 5)).unwrap();
    let name = "block.0.attn.q_conv.weight";
    let bits_before: Vec<u32> = ctx
        .download_words(&store.binary(store.id(name).unwrap()).unwrap().bits)
        .unwrap();
    // A gradient that pushes every weight of the layer the same way flips signs.
    let g = store.grad(store.id(name).unwrap()).unwrap();
    ctx.write_words(g, &vec![1.0f32; g.len()]).unwrap();
    let mut opt = Optimizer::new(ctx, &store, AdamW::default()).unwrap();
    for _ in 0..3 {
        let g = store.grad(store.id(name).unwrap()).unwrap();
        ctx.write_words(
            g,
            &(0..g.len())
                .map(|i| if i % 2 == 0 { 1.0f32 } else { -1.0 })
                .collect::<Vec<_>>(),
        )
        .unwrap();
        opt.step(ctx, &mut store, 0.5).unwrap();
    }
    let bits_after: Vec<u32> = ctx
        .download_words(&store.binary(store.id(name).unwrap()).unwrap().bits)
        .unwrap();
    assert_ne!(
        bits_before, bits_after,
        "packed weights follow the optimizer"
    );
    assert!(
        ctx.download_f32(&store.grads)
            .unwrap()
            .iter()
            .all(|&v| v == 0.0),
        "grads zeroed"
    );
    let mut sd = store.to_state_dict(ctx).unwrap();
    opt.save_into(ctx, &mut sd).unwrap();
    let mut again = Optimizer::new(ctx, &store, AdamW::default()).unwrap();
    again.load_from(ctx, &sd).unwrap();
    assert_eq!(again.steps, 3);
    assert_eq!(
        ctx.download_f32(&again.moment2).unwrap(),
        ctx.download_f32(&opt.moment2).unwrap()
    );
}
// ---- Models: GPU forward vs the CPU reference, backward vs finite differences ----------

use bitspike::nn::Classifier;
use bitspike::nn::Spikformer;
use bitspike::reference::model::{ref_params, RefParams, Tape};
use bitspike::{DType, GpuContext, Tensor};
use common::gradcheck::GradCheck;
use common::training::{loss_fell, train_steps};
use common::{assert_close, assert_exact, Rng};

/// A small model config for tests: 16x16 grey images (4x4 tokens after the tokenizer).
fn small(preset: &str) -> ModelConfig {
    let mut cfg = ModelConfig::preset(preset).unwrap();
    cfg.image_size = 16;
    cfg
}

fn images(cfg: &ModelConfig, batch: usize, seed: u64) -> Vec<f32> {
    let s = cfg.image_size;
    Rng::new(seed).vec(batch * cfg.in_channels * s * s, -1.0, 1.0)
}

fn upload_images(ctx: &GpuContext, cfg: &ModelConfig, x: &[f32], batch: usize) -> Tensor {
    let s = cfg.image_size;
    ctx.upload_f32(x, &[batch, cfg.in_channels, s, s]).unwrap()
}

/// Index `i` of a store gradient.
fn grad_at(ctx: &GpuContext, store: &ParamStore, name: &str) -> Vec<f32> {
    ctx.download_f32(store.grad(store.id(name).unwrap()).unwrap())
        .unwrap()
}

#[test]
fn spikformer_forward_matches_the_cpu_reference() {
    let ctx = ctx();
    let cfg = small("spikformer-2-64");
    let batch = 2;
    let sd = init_state(&cfg, 11);
    let mut store = ParamStore::new(ctx, &cfg, &sd).unwrap();
    let mut model = Spikformer::new(&cfg, batch).unwrap();
    let x = images(&cfg, batch, 5);
    let logits = model
        .forward(ctx, &mut store, &upload_images(ctx, &cfg, &x, batch), true)
        .unwrap();
    assert_eq!(logits.shape(), &[batch, cfg.classes]);
    let got = ctx.download_f32(&logits).unwrap();
    let xs: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let want = bitspike::reference::model::spikformer_forward(
        &cfg,
        &ref_params(&sd),
        &xs,
        batch,
        &mut Tape::default(),
    );
    let want: Vec<f32> = want.iter().map(|&v| v as f32).collect();
    assert!(
        got.iter().any(|v| v.abs() > 1e-4),
        "logits all zero: {got:?}"
    );
    assert_close("spikformer logits", &got, &want, 2e-3);
}

#[test]
fn spikformer_backward_matches_finite_differences_of_the_surrogate_forward() {
    let ctx = ctx();
    let cfg = small("spikformer-2-64");
    let batch = 2;
    let sd = init_state(&cfg, 12);
    let mut store = ParamStore::new(ctx, &cfg, &sd).unwrap();
    let mut model = Spikformer::new(&cfg, batch).unwrap();
    let x = images(&cfg, batch, 6);
    let r = Rng::new(9).vec(batch * cfg.classes, -1.0, 1.0);
    model
        .forward(ctx, &mut store, &upload_images(ctx, &cfg, &x, batch), true)
        .unwrap();
    store.zero_grads(ctx);
    let dlogits = ctx.upload_f32(&r, &[batch, cfg.classes]).unwrap();
    model.backward(ctx, &store, &dlogits).unwrap();
    let params = ref_params(&sd);
    let xs: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let forward = |p: &RefParams, tape: &mut Tape| {
        bitspike::reference::model::spikformer_forward(&cfg, p, &xs, batch, tape)
    };
    let mut tape = Tape::default();
    forward(&params, &mut tape);
    let check = GradCheck {
        what: "spikformer",
        forward: &forward,
        params: &params,
        tape: &tape,
        r: &r,
    };
    for name in [
        "head.weight",
        "head.bias",
        "block.1.mlp.fc2_linear.weight",
        "block.1.mlp.fc1_bn.bias",
        "block.1.attn.proj_bn.bias",
        "block.1.attn.k_linear.weight",
        "block.0.attn.v_linear.weight",
        "block.0.attn.q_bn.weight",
        "patch_embed.rpe_conv.weight",
        "patch_embed.proj_bn2.bias",
        "patch_embed.proj_conv1.weight",
        "patch_embed.proj_conv.weight",
    ] {
        let g = grad_at(ctx, &store, name);
        assert!(g.iter().any(|v| *v != 0.0), "{name}: gradient all zero");
        check.check(name, &g, 4, &|_| false);
    }
}

/// Both models' training forward and backward.
/// 20 training steps on one tiny batch: the loss goes down.
fn train_smoke(preset: &str, lr: f32, model: &mut dyn Classifier) {
    let ctx = ctx();
    let cfg = small(preset);
    let batch = 2;
    let mut store = ParamStore::new(ctx, &cfg, &init_state(&cfg, 21)).unwrap();
    let x = upload_images(ctx, &cfg, &images(&cfg, batch, 22), batch);
    let labels = ctx.upload_words(&[3u32, 7], &[batch], DType::U32).unwrap();
    let losses = train_steps(ctx, model, &mut store, (&x, &labels), 20, lr);
    assert!(loss_fell(&losses, 0.7), "{preset}: loss {losses:?}");
}

#[test]
fn spikformer_training_steps_lower_the_loss() {
    let cfg = small("spikformer-2-64");
    let mut model = Spikformer::new(&cfg, 2).unwrap();
    train_smoke("spikformer-2-64", 1e-3, &mut model);
}

use bitspike::nn::{Bestformer, Reversible};

fn best_ref(
    cfg: &ModelConfig,
    p: &RefParams,
    xs: &[f64],
    batch: usize,
    tape: &mut Tape,
) -> (Vec<f64>, Vec<f64>) {
    bitspike::reference::model::bestformer_forward(cfg, p, xs, batch, tape)
}

#[test]
fn bestformer_forward_matches_the_cpu_reference() {
    let ctx = ctx();
    let cfg = small("bestformer-2-64");
    let batch = 2;
    let sd = init_state(&cfg, 13);
    let mut store = ParamStore::new(ctx, &cfg, &sd).unwrap();
    let mut model = Bestformer::new(&cfg, batch).unwrap();
    let x = images(&cfg, batch, 7);
    let logits = model
        .forward(ctx, &mut store, &upload_images(ctx, &cfg, &x, batch), true)
        .unwrap();
    let xs: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let (w0, w1) = best_ref(&cfg, &ref_params(&sd), &xs, batch, &mut Tape::default());
    let (h0, h1) = model.heads.clone().unwrap();
    let f = |v: &[f64]| v.iter().map(|&v| v as f32).collect::<Vec<f32>>();
    let got0 = ctx.download_f32(&h0).unwrap();
    assert!(
        got0.iter().any(|v| v.abs() > 1e-4),
        "logits all zero: {got0:?}"
    );
    assert_close("bestformer head", &got0, &f(&w0), 2e-3);
    assert_close(
        "bestformer head2",
        &ctx.download_f32(&h1).unwrap(),
        &f(&w1),
        2e-3,
    );
    let avg: Vec<f64> = w0.iter().zip(&w1).map(|(a, b)| (a + b) / 2.0).collect();
    assert_close(
        "bestformer logits",
        &ctx.download_f32(&logits).unwrap(),
        &f(&avg),
        2e-3,
    );
}

#[test]
fn bestformer_backward_matches_finite_differences_of_the_surrogate_forward() {
    let ctx = ctx();
    let cfg = small("bestformer-2-64");
    let batch = 2;
    let sd = init_state(&cfg, 14);
    let mut store = ParamStore::new(ctx, &cfg, &sd).unwrap();
    let mut model = Bestformer::new(&cfg, batch).unwrap();
    let x = images(&cfg, batch, 8);
    // Different weights on the two heads: out0 * r0 + out1 * r1.
    let r = Rng::new(10).vec(2 * batch * cfg.classes, -1.0, 1.0);
    let nc = batch * cfg.classes;
    model
        .forward(ctx, &mut store, &upload_images(ctx, &cfg, &x, batch), true)
        .unwrap();
    store.zero_grads(ctx);
    let d0 = ctx.upload_f32(&r[..nc], &[batch, cfg.classes]).unwrap();
    let d1 = ctx.upload_f32(&r[nc..], &[batch, cfg.classes]).unwrap();
    model.backward_heads(ctx, &store, &d0, &d1).unwrap();
    let params = ref_params(&sd);
    let xs: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let forward = |p: &RefParams, tape: &mut Tape| {
        let (a, b) = best_ref(&cfg, p, &xs, batch, tape);
        [a, b].concat()
    };
    let mut tape = Tape::default();
    forward(&params, &mut tape);
    let check = GradCheck {
        what: "bestformer",
        forward: &forward,
        params: &params,
        tape: &tape,
        r: &r,
    };
    for name in [
        "head.weight",
        "head2.bias",
        "block.1.mlp.mlp2_conv.weight",
        "block.1.mlp.mlp1_bn.weight",
        "block.1.attn.lambda_attn",
        "block.1.attn.q_conv.weight",
        "block.0.attn.v_bn.bias",
        "block.0.attn.proj_bn.bias",
        "block.0.mlp.mlp1_conv.weight",
        "patch_embed.block4_conv.weight",
        "patch_embed.block2_bn.weight",
        "patch_embed.block1_conv.weight",
        "patch_embed.block0_conv.weight",
    ] {
        let g = grad_at(ctx, &store, name);
        assert!(g.iter().any(|v| *v != 0.0), "{name}: gradient all zero");
        check.check(name, &g, 4, &|_| false);
    }
}

/// `batch` digits of the shipped MNIST subset, normalized as training does, zero-padded
/// to 32 x 32 and repeated over 3 channels: real images at CIFAR's geometry.
fn mnist_digits_rgb32(batch: usize) -> Vec<f32> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("assets/mnist-mini/t10k-images-idx3-ubyte.gz");
    let (pixels, _, h, w) = bitspike::data::idx::read_images(&path).unwrap();
    let norm = |p: u8| (p as f32 / 255.0 - 0.1307) / 0.3081;
    let mut out = Vec::new();
    for img in pixels.chunks(h * w).take(batch) {
        let plane: Vec<f32> = (0..32 * 32usize)
            .map(|i| {
                let (y, x) = (i / 32, i % 32);
                match (y.checked_sub(2), x.checked_sub(2)) {
                    (Some(y), Some(x)) if y < h && x < w => norm(img[y * w + x]),
                    _ => norm(0),
                }
            })
            .collect();
        for _ in 0..3 {
            out.extend_from_slice(&plane);
        }
    }
    out
}

/// At the size where a float rebuild of the reversible blocks went wrong
/// (bestformer-4-384, batch 8, real images): the recompute backward rebuilds every
/// block's inputs bit for bit, and its gradients equal, bit for bit, those of storing
/// every activation.
#[test]
fn bestformer_rebuilds_every_block_input_bit_for_bit() {
    let ctx = ctx();
    let cfg = ModelConfig::preset("bestformer-4-384").unwrap();
    let batch = 8;
    let sd = init_state(&cfg, 21);
    let x = ctx
        .upload_f32(&mnist_digits_rgb32(batch), &[batch, 3, 32, 32])
        .unwrap();
    let r = Rng::new(22).vec(batch * cfg.classes, -1.0, 1.0);
    let dlogits = ctx.upload_f32(&r, &[batch, cfg.classes]).unwrap();
    let mut grads = Vec::new();
    for mode in [Reversible::Store, Reversible::Recompute] {
        let mut store = ParamStore::new(ctx, &cfg, &sd).unwrap();
        let mut model = Bestformer::new(&cfg, batch).unwrap();
        model.reversible = mode;
        model.forward(ctx, &mut store, &x, true).unwrap();
        if mode == Reversible::Store {
            let stored = model.stored_block_inputs().unwrap();
            let rebuilt = model.rebuild_block_inputs(ctx, &store).unwrap();
            assert_eq!(rebuilt.len(), cfg.transformer().unwrap().depth);
            let words = |t: &Tensor| ctx.download_words::<i64>(t).unwrap();
            for (blk, ((s0, s1), (r0, r1))) in stored.iter().zip(&rebuilt).enumerate() {
                assert_exact(&format!("block {blk} x1"), &words(r1), &words(s1));
                assert_eq!(s0.is_some(), blk > 0);
                if let (Some(s0), Some(r0)) = (s0, r0) {
                    assert_exact(&format!("block {blk} x0"), &words(r0), &words(s0));
                }
            }
        } else {
            assert!(model.stored_block_inputs().is_none());
        }
        store.zero_grads(ctx);
        model.backward(ctx, &store, &dlogits).unwrap();
        grads.push(ctx.download_f32(&store.grads).unwrap());
    }
    assert!(grads[0].iter().any(|&g| g != 0.0));
    assert_exact("gradients, recompute vs store", &grads[1], &grads[0]);
}

#[test]
fn bestformer_training_steps_lower_the_loss() {
    let cfg = small("bestformer-2-64");
    let mut model = Bestformer::new(&cfg, 2).unwrap();
    train_smoke("bestformer-2-64", 5e-3, &mut model);
}

/// Bytes of activations kept for backward at depth 2, 4, 8: growing for Spikformer and
/// for BESTformer storing its blocks, flat for the reversible BESTformer but for its
/// parity bits (two bits per stream value and block).
#[test]
fn activation_memory_is_flat_in_depth_for_the_reversible_model() {
    let ctx = ctx();
    let batch = 2;
    let mut rows = Vec::new();
    for depth in [2, 4, 8] {
        let mut sc = small("spikformer-2-64");
        sc.transformer_mut().unwrap().depth = depth;
        let mut bc = small("bestformer-2-64");
        bc.transformer_mut().unwrap().depth = depth;
        let x = upload_images(ctx, &sc, &images(&sc, batch, 1), batch);
        let mut st = ParamStore::new(ctx, &sc, &init_state(&sc, 1)).unwrap();
        let mut sm = Spikformer::new(&sc, batch).unwrap();
        sm.forward(ctx, &mut st, &x, true).unwrap();
        let mut bytes = [sm.activation_bytes(), 0, 0];
        for (mode, b) in [Reversible::Recompute, Reversible::Store]
            .into_iter()
            .zip(&mut bytes[1..])
        {
            let mut bt = ParamStore::new(ctx, &bc, &init_state(&bc, 1)).unwrap();
            let mut bm = Bestformer::new(&bc, batch).unwrap();
            bm.reversible = mode;
            bm.forward(ctx, &mut bt, &x, true).unwrap();
            *b = bm.activation_bytes();
        }
        println!(
            "depth {depth}: spikformer {} bytes, bestformer recompute {} bytes, store {} bytes",
            bytes[0], bytes[1], bytes[2]
        );
        rows.push(bytes);
    }
    // One parity row of 64 bits (4 words) per token per coupling; two couplings a block.
    let cfg = small("bestformer-2-64");
    let tokens = 4 * batch * cfg.transformer().unwrap().tokens(cfg.image_size);
    let parity_per_block = 2 * tokens as u64 * 16;
    assert!(
        rows[0][0] < rows[1][0] && rows[1][0] < rows[2][0],
        "{rows:?}"
    );
    assert_eq!(rows[1][1] - rows[0][1], 2 * parity_per_block, "{rows:?}");
    assert_eq!(rows[2][1] - rows[1][1], 4 * parity_per_block, "{rows:?}");
    assert!(
        rows[2][2] - rows[1][2] > 40 * (rows[2][1] - rows[1][1]),
        "{rows:?}"
    );
    assert!(rows[2][1] < rows[2][0], "{rows:?}");
}

#[test]
fn model_workloads_run_a_training_step_and_a_forward() {
    use bitspike::bench::model::{ModelPass, ModelWorkload};
    let ctx = ctx();
    for preset in ["spikformer-2-64", "bestformer-2-64"] {
        let cfg = small(preset);
        let mut train =
            ModelWorkload::with_config(ctx, preset, &cfg, 2, ModelPass::TrainStep).unwrap();
        assert_eq!(train.activation_bytes(), 0);
        let before = ctx.download_f32(&train.run(ctx).unwrap()).unwrap();
        assert!(train.activation_bytes() > 0);
        let after = ctx.download_f32(&train.run(ctx).unwrap()).unwrap();
        assert_ne!(before, after, "{preset}: the step changed nothing");
        assert_eq!(train.images(), 2);
        let mut fwd = ModelWorkload::with_config(ctx, preset, &cfg, 2, ModelPass::Forward).unwrap();
        let logits = fwd.run(ctx).unwrap();
        assert_eq!(logits.shape(), &[2, cfg.classes]);
        assert!(ctx
            .download_f32(&logits)
            .unwrap()
            .iter()
            .all(|v| v.is_finite()));
    }
}

#[test]
fn layout_ops_encode_images_and_split_and_merge_heads() {
    let ctx = ctx();
    let (t, b, c, h, w) = (3, 2, 3, 4, 5);
    let x = Rng::new(4).vec(b * c * h * w, -1.0, 1.0);
    let got =
        ops::nchw_to_nhwc_repeat(ctx, &ctx.upload_f32(&x, &[b, c, h, w]).unwrap(), t).unwrap();
    assert_eq!(got.shape(), &[t * b, h, w, c]);
    let got = ctx.download_f32(&got).unwrap();
    let xs: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    let want: Vec<f32> = bitspike::reference::layout::nchw_to_nhwc_repeat(&xs, b, c, h * w, t)
        .iter()
        .map(|&v| v as f32)
        .collect();
    common::assert_exact("nhwc", &got, &want);
    // d a multiple of 4 (vec4 moves) and not.
    for (seed, n, heads, d) in [(5, 5, 3, 4), (6, 7, 2, 3)] {
        let y = Rng::new(seed).vec(t * b * n * heads * d, -1.0, 1.0);
        let yt = ctx.upload_f32(&y, &[t, b, n, heads * d]).unwrap();
        let split = ops::split_heads(ctx, &yt, heads).unwrap();
        assert_eq!(split.shape(), &[t, b, heads, n, d]);
        let ys: Vec<f64> = y.iter().map(|&v| v as f64).collect();
        let want: Vec<f32> = bitspike::reference::layout::split_heads(&ys, t * b, n, heads, d)
            .iter()
            .map(|&v| v as f32)
            .collect();
        common::assert_exact("split", &ctx.download_f32(&split).unwrap(), &want);
        let back = ops::merge_heads(ctx, &split).unwrap();
        assert_eq!(back.shape(), &[t, b, n, heads * d]);
        common::assert_exact("merge(split(y))", &ctx.download_f32(&back).unwrap(), &y);
    }
}

/// The ImageNet tokenizer (a max-pool in every stage) and BESTformer's d x d map order,
/// at a small size: 32x32 images, patch 16, 2x2 tokens.
#[test]
fn patch_16_models_match_the_cpu_reference() {
    let ctx = ctx();
    let batch = 2;
    for preset in ["spikformer-2-64", "bestformer-2-64"] {
        let mut cfg = small(preset);
        cfg.image_size = 32;
        cfg.transformer_mut().unwrap().patch_size = 16;
        let sd = init_state(&cfg, 16);
        let mut store = ParamStore::new(ctx, &cfg, &sd).unwrap();
        let x = images(&cfg, batch, 17);
        let xt = upload_images(ctx, &cfg, &x, batch);
        let xs: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let params = ref_params(&sd);
        let mut tape = Tape::default();
        let (got, want) = if preset.starts_with("spik") {
            let mut m = Spikformer::new(&cfg, batch).unwrap();
            let got = m.forward(ctx, &mut store, &xt, true).unwrap();
            let want = bitspike::reference::model::spikformer_forward(
                &cfg, &params, &xs, batch, &mut tape,
            );
            (got, want)
        } else {
            let mut m = Bestformer::new(&cfg, batch).unwrap();
            let got = m.forward(ctx, &mut store, &xt, true).unwrap();
            let (a, b) = best_ref(&cfg, &params, &xs, batch, &mut tape);
            (got, a.iter().zip(&b).map(|(a, b)| (a + b) / 2.0).collect())
        };
        let want: Vec<f32> = want.iter().map(|&v| v as f32).collect();
        assert_close(preset, &ctx.download_f32(&got).unwrap(), &want, 2e-3);
    }
}

/// The reversible backward recomputes the blocks with batch statistics but leaves the
/// running statistics and batch counts as the one training forward set them.
#[test]
fn bestformer_backward_leaves_the_running_statistics_alone() {
    let ctx = ctx();
    let cfg = small("bestformer-2-64");
    let batch = 2;
    let sd = init_state(&cfg, 18);
    let mut store = ParamStore::new(ctx, &cfg, &sd).unwrap();
    let mut model = Bestformer::new(&cfg, batch).unwrap();
    let x = upload_images(ctx, &cfg, &images(&cfg, batch, 19), batch);
    model.forward(ctx, &mut store, &x, true).unwrap();
    let after_forward = store.to_state_dict(ctx).unwrap();
    let d = ctx
        .upload_f32(&vec![0.1; batch * cfg.classes], &[batch, cfg.classes])
        .unwrap();
    model.backward(ctx, &store, &d).unwrap();
    let after_backward = store.to_state_dict(ctx).unwrap();
    let name = "block.1.mlp.mlp1_bn.running_mean";
    assert_ne!(
        after_forward.tensors[name], sd.tensors[name],
        "the forward moved it"
    );
    assert_eq!(
        after_forward.tensors["block.1.mlp.mlp1_bn.num_batches_tracked"].data,
        vec![1.0]
    );
    for (k, t) in &after_forward.tensors {
        assert_eq!(&after_backward.tensors[k], t, "{k}");
    }
}

/// Same seed, same steps: identical losses (no atomics in the models' kernels).
#[test]
fn training_is_deterministic() {
    let ctx = ctx();
    let cfg = small("bestformer-2-64");
    let batch = 2;
    let run = || {
        let mut store = ParamStore::new(ctx, &cfg, &init_state(&cfg, 23)).unwrap();
        let mut model = Bestformer::new(&cfg, batch).unwrap();
        let x = upload_images(ctx, &cfg, &images(&cfg, batch, 24), batch);
        let labels = ctx.upload_words(&[1u32, 2], &[batch], DType::U32).unwrap();
        let losses = train_steps(ctx, &mut model, &mut store, (&x, &labels), 3, 1e-3);
        (losses, ctx.download_f32(&store.params).unwrap())
    };
    let (a, pa) = run();
    let (b, pb) = run();
    assert_eq!(a, b);
    assert!(pa == pb, "parameters differ after identical runs");
}

/// Eval forwards (BN on the running statistics that 40 training forwards left, near the
/// batch statistics at momentum 0.1) match the CPU reference on the same state.
#[test]
fn eval_forwards_match_the_cpu_reference() {
    let ctx = ctx();
    let batch = 2;
    for preset in ["spikformer-2-64", "bestformer-2-64"] {
        let cfg = small(preset);
        let mut store = ParamStore::new(ctx, &cfg, &init_state(&cfg, 25)).unwrap();
        let x = images(&cfg, batch, 26);
        let xt = upload_images(ctx, &cfg, &x, batch);
        let xs: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let mut tape = Tape::default();
        tape.eval = true;
        let (got, want) = if preset.starts_with("spik") {
            let mut m = Spikformer::new(&cfg, batch).unwrap();
            for _ in 0..40 {
                m.forward(ctx, &mut store, &xt, true).unwrap();
            }
            let got = m.forward(ctx, &mut store, &xt, false).unwrap();
            let params = ref_params(&store.to_state_dict(ctx).unwrap());
            let want = bitspike::reference::model::spikformer_forward(
                &cfg, &params, &xs, batch, &mut tape,
            );
            (got, want)
        } else {
            let mut m = Bestformer::new(&cfg, batch).unwrap();
            for _ in 0..40 {
                m.forward(ctx, &mut store, &xt, true).unwrap();
            }
            let got = m.forward(ctx, &mut store, &xt, false).unwrap();
            let params = ref_params(&store.to_state_dict(ctx).unwrap());
            let (a, b) = best_ref(&cfg, &params, &xs, batch, &mut tape);
            (got, a.iter().zip(&b).map(|(a, b)| (a + b) / 2.0).collect())
        };
        let got = ctx.download_f32(&got).unwrap();
        assert!(
            got.iter().any(|v| v.abs() > 1e-4),
            "{preset}: {got:?} vs {want:?}"
        );
        let want: Vec<f32> = want.iter().map(|&v| v as f32).collect();
        assert_close(preset, &got, &want, 2e-3);
    }
}

// ---- Spiking CNNs (Q-SNN, QP-SNN): weight modes, training, rate regularizer, pruning ----

use bitspike::nn::prune::{self, kept_kernels, matrix_rank, prune_state, singular_values};
use bitspike::nn::{SpikingCnn, WeightMode};

fn cnn(preset: &str, weights: WeightMode) -> ModelConfig {
    let mut cfg = small(preset);
    cfg.weights = weights;
    cfg
}

/// 20 AdamW steps on one tiny batch of a spiking CNN: the loss goes down. Returns the
/// firing rates of the last forward.
fn cnn_train_smoke(cfg: &ModelConfig, rate_reg: f32) -> Vec<f32> {
    let ctx = ctx();
    let batch = 2;
    let mut store = ParamStore::new(ctx, cfg, &init_state(cfg, 31)).unwrap();
    let mut model = SpikingCnn::new(cfg, batch).unwrap();
    model.rate_reg = rate_reg;
    let x = upload_images(ctx, cfg, &images(cfg, batch, 32), batch);
    let labels = ctx.upload_words(&[3u32, 7], &[batch], DType::U32).unwrap();
    // Q-SNN trains on the logits of every time step: each head learns the labels.
    let losses = train_steps(ctx, &mut model, &mut store, (&x, &labels), 20, 5e-3);
    assert!(loss_fell(&losses, 0.8), "{cfg:?}: loss {losses:?}");
    model.rates.clone()
}

#[test]
fn spiking_cnns_train_in_every_weight_mode() {
    for preset in ["spiking-vgg-small", "spiking-resnet-small"] {
        for mode in [WeightMode::Float, WeightMode::Quantized, WeightMode::Qsnn] {
            cnn_train_smoke(&cnn(preset, mode), 0.0);
        }
    }
}

/// Q-SNN's loss is mean_t CE(out_t, y): in training the model gives one head per time
/// step, their average is the prediction, and their gradients reach the shared head.
#[test]
fn qsnn_trains_on_the_logits_of_every_time_step() {
    use bitspike::nn::{combine_heads, Model};
    let ctx = ctx();
    let cfg = cnn("spiking-vgg-small", WeightMode::Qsnn);
    let batch = 2;
    let mut store = ParamStore::new(ctx, &cfg, &init_state(&cfg, 9)).unwrap();
    let mut model = Model::new(&cfg, batch).unwrap();
    let x = upload_images(ctx, &cfg, &images(&cfg, batch, 4), batch);
    let heads = model.forward(ctx, &mut store, &x, true).unwrap();
    assert_eq!(heads.len(), cfg.time_steps);
    let per_step: Vec<Vec<f32>> = heads.iter().map(|h| ctx.download_f32(h).unwrap()).collect();
    assert!(heads.iter().all(|h| h.shape() == [batch, cfg.classes]));
    assert!(
        per_step.windows(2).any(|p| p[0] != p[1]),
        "the time steps' logits differ: {per_step:?}"
    );
    let mean = ctx
        .download_f32(&combine_heads(ctx, &heads).unwrap())
        .unwrap();
    let want: Vec<f32> = (0..mean.len())
        .map(|i| per_step.iter().map(|l| l[i]).sum::<f32>() / cfg.time_steps as f32)
        .collect();
    assert_close("mean of the steps", &mean, &want, 1e-5);
    // Gradient r_t at step t: the head bias gradient is the sum of every step's rows.
    store.zero_grads(ctx);
    let mut rng = Rng::new(3);
    let grads: Vec<Vec<f32>> = (0..cfg.time_steps)
        .map(|_| rng.vec(batch * cfg.classes, -1.0, 1.0))
        .collect();
    let uploaded: Vec<Tensor> = grads
        .iter()
        .map(|g| ctx.upload_f32(g, &[batch, cfg.classes]).unwrap())
        .collect();
    model.backward(ctx, &mut store, &uploaded).unwrap();
    let got = grad_at(ctx, &store, "head.bias");
    let want: Vec<f32> = (0..cfg.classes)
        .map(|c| {
            grads
                .iter()
                .flat_map(|g| g.chunks(cfg.classes))
                .map(|row| row[c])
                .sum()
        })
        .collect();
    assert_close("head.bias gradient", &got, &want, 1e-4);
    // Evaluation predicts from the time-averaged output: one head.
    assert_eq!(model.forward(ctx, &mut store, &x, false).unwrap().len(), 1);
}

#[test]
fn rate_regularizer_reports_every_layer_rate() {
    let cfg = cnn("spiking-resnet-small", WeightMode::Qsnn);
    let rates = cnn_train_smoke(&cfg, 5e-3);
    assert_eq!(rates.len(), cfg.cnn().unwrap().channels.len());
    assert!(rates.iter().all(|r| (0.0..=1.0).contains(r)), "{rates:?}");
}

#[test]
fn cnn_weight_modes_store_planes_signs_and_scales() {
    let ctx = ctx();
    let mut cfg = cnn("spiking-vgg-small", WeightMode::Quantized);
    cfg.weight_bits = 3;
    let store = ParamStore::new(ctx, &cfg, &init_state(&cfg, 5)).unwrap();
    for name in [
        "features.0.conv.weight",
        "features.1.conv.weight",
        "head.weight",
    ] {
        let q = store
            .quant(store.id(name).unwrap())
            .expect("every layer is b-bit");
        assert_eq!(q.bits, 3, "{name}");
        assert_eq!(q.planes.shape()[0], 3 * q.q.shape()[0]);
    }
    let cfg = cnn("spiking-resnet-small", WeightMode::Qsnn);
    let store = ParamStore::new(ctx, &cfg, &init_state(&cfg, 5)).unwrap();
    assert_eq!(
        store
            .quant(store.id("stem.conv.weight").unwrap())
            .unwrap()
            .bits,
        8
    );
    assert_eq!(
        store.quant(store.id("head.weight").unwrap()).unwrap().bits,
        8
    );
    let inner = "blocks.1.conv1.weight";
    assert!(
        store.binary(store.id(inner).unwrap()).is_some()
            && store.quant(store.id(inner).unwrap()).is_none()
    );
    let scale = ctx
        .download_f32(store.binary_scale(store.id(inner).unwrap()).unwrap())
        .unwrap();
    assert!(scale.iter().all(|s| s.log2().fract() == 0.0), "{scale:?}");
    let sizes = bitspike::nn::param_counts(&cfg);
    assert!(sizes.packed_bytes < sizes.fp32_bytes / 4);
}

#[test]
fn singular_values_and_ranks_of_known_matrices() {
    // diag(3, 2, 1) with its rows permuted.
    let m = [0.0, 2.0, 0.0, 0.0, 0.0, 1.0, 3.0, 0.0, 0.0];
    let sv = singular_values(&m, 3, 3);
    for (got, want) in sv.iter().zip([3.0, 2.0, 1.0]) {
        assert!((got - want).abs() < 1e-12, "{sv:?}");
    }
    let u = [1.0, -2.0, 0.5, 3.0, 0.25];
    let v = [0.5, 1.0, -1.0, 2.0, 0.0, 0.75, 1.5];
    let outer: Vec<f64> = u
        .iter()
        .flat_map(|a| v.iter().map(move |b| a * b))
        .collect();
    assert_eq!(matrix_rank(&outer, 5, 7), 1);
    assert_eq!(matrix_rank(&[0.0; 12], 3, 4), 0);
    // Two equal rows and a third independent: rank 2.
    let m = [1.0, 0.5, 0.25, 1.0, 0.5, 0.25, 0.0, 0.75, 0.5];
    assert_eq!(matrix_rank(&m, 3, 3), 2);
    let mut rng = common::Rng::new(7);
    let r: Vec<f64> = rng.vec(24, -1.0, 1.0).iter().map(|&x| x as f64).collect();
    assert_eq!(matrix_rank(&r, 6, 4), 4);
    assert_eq!(matrix_rank(&r, 4, 6), 4);
}

#[test]
fn rank_scores_average_time_steps_per_image_and_channel() {
    // T = 2, B = 1, 2 x 2 maps, 2 channels. Channel 0 fires on the diagonal at both steps
    // (rank 2); channel 1 fires in the first row at t = 0 only (rank 1).
    let (t, b, h, w, c) = (2, 1, 2, 2, 2);
    let mut s = vec![0f32; t * b * h * w * c];
    for ti in 0..t {
        s[((ti * h) * w) * c] = 1.0; // (0, 0)
        s[((ti * h + 1) * w + 1) * c] = 1.0; // (1, 1)
    }
    s[1] = 1.0; // t 0, (0, 0), channel 1
    s[c + 1] = 1.0; // t 0, (0, 1), channel 1
    let mut scores = vec![0.0; c];
    prune::add_rank_scores(&s, [t, b, h, w, c], &mut scores).unwrap();
    assert_eq!(scores, vec![2.0, 1.0]);
    assert!(prune::add_rank_scores(&s, [t, b, h, w, 3], &mut scores).is_err());
}

#[test]
fn pruning_removes_exactly_the_lowest_ranked_kernels_and_the_model_runs() {
    let ctx = ctx();
    assert_eq!(kept_kernels(&[3.0, 1.0, 2.0, 1.0], 0.5), vec![0, 2]);
    assert_eq!(kept_kernels(&[1.0, 1.0], 0.99), vec![1]);
    for preset in ["spiking-vgg-small", "spiking-resnet-small"] {
        let cfg = cnn(preset, WeightMode::Quantized);
        let sd = init_state(&cfg, 9);
        let layers = prune::prunable(&cfg);
        // Scores that rank each layer's kernels by a pseudo-random order.
        let scores: Vec<Vec<f64>> = layers
            .iter()
            .map(|l| {
                (0..l.c_out)
                    .map(|k| ((k * 7 + 3) % l.c_out) as f64)
                    .collect()
            })
            .collect();
        let (pcfg, psd) = prune_state(&cfg, &sd, &scores, 0.5).unwrap();
        for (layer, s) in layers.iter().zip(&scores) {
            let (i, consumer) = (layer.index, &layer.consumer);
            let keep = kept_kernels(s, 0.5);
            assert_eq!(keep.len(), layer.c_out - layer.c_out / 2, "{preset} {i}");
            assert_eq!(pcfg.cnn().unwrap().channels[i], keep.len());
            // Every removed kernel scores below every kept one.
            let min_kept = keep.iter().map(|&k| s[k]).fold(f64::MAX, f64::min);
            for k in (0..layer.c_out).filter(|k| !keep.contains(k)) {
                assert!(s[k] < min_kept, "{preset}: kernel {k} removed");
            }
            // Its rows are the kept kernels (over the inputs a pruned producer kept).
            let (w0, w1) = (&sd.tensors[&layer.conv], &psd.tensors[&layer.conv]);
            let inputs: Vec<usize> = layers
                .iter()
                .zip(&scores)
                .find(|(l, _)| l.consumer == layer.conv)
                .map_or((0..layer.c_in).collect(), |(_, s)| kept_kernels(s, 0.5));
            let per = w0.data.len() / layer.c_out;
            let mut r1 = w1.data.chunks(inputs.len() * 9);
            for &k in &keep {
                let want: Vec<f32> = inputs
                    .iter()
                    .flat_map(|&c| w0.data[k * per + c * 9..k * per + c * 9 + 9].to_vec())
                    .collect();
                assert_eq!(r1.next().unwrap(), &want[..], "{}: kernel {k}", layer.conv);
            }
            let bn = &layer.bn[3]; // running_var
            assert_eq!(psd.tensors[bn].shape, vec![keep.len()]);
            let (n0, n1) = (&sd.tensors[consumer], &psd.tensors[consumer]);
            assert_eq!(n1.shape[1], keep.len(), "{consumer}");
            let inner: usize = n0.shape[2..].iter().product();
            // The consumer's first row, itself pruned when the consumer is a pruned conv.
            let row = layers
                .iter()
                .zip(&scores)
                .find(|(l, _)| &l.conv == consumer)
                .map_or(0, |(_, s)| kept_kernels(s, 0.5)[0]);
            let (cols0, cols1) = (n0.shape[1] * inner, n1.shape[1] * inner);
            for (col, &k) in keep.iter().enumerate() {
                assert_eq!(
                    n1.data[col * inner..(col + 1) * inner],
                    n0.data[row * cols0 + k * inner..row * cols0 + (k + 1) * inner],
                    "{consumer}: input {k}"
                );
            }
            assert_eq!(n1.data.len(), n1.shape[0] * cols1);
        }
        psd.check(&pcfg, std::path::Path::new("pruned")).unwrap();
        assert!(bitspike::nn::param_counts(&pcfg).total < bitspike::nn::param_counts(&cfg).total);
        let mut store = ParamStore::new(ctx, &pcfg, &psd).unwrap();
        let x = upload_images(ctx, &pcfg, &images(&pcfg, 3, 10), 3);
        let got = prune::score_kernels(ctx, &pcfg, &mut store, std::slice::from_ref(&x)).unwrap();
        for (l, s) in prune::prunable(&pcfg).iter().zip(&got) {
            assert_eq!(s.len(), l.c_out);
            assert!(s.iter().all(|v| (0.0..=16.0).contains(v)), "{s:?}");
        }
        let mut model = SpikingCnn::new(&pcfg, 3).unwrap();
        let logits = model.forward(ctx, &mut store, &x, false).unwrap();
        assert_eq!(logits.shape(), &[3, pcfg.classes]);
        assert!(ctx
            .download_f32(&logits)
            .unwrap()
            .iter()
            .all(|v| v.is_finite()));
    }
}
