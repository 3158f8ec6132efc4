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
    let w = store.param(ctx, name).unwrap();
    assert_eq!(w.shape(), &[16, 9 * 8]);
    let want = ops::conv_weight_from_torch(&sd.tensors[name].data, 16, 8).unwrap();
    assert_eq!(ctx.download_f32(&w).unwrap(), want);
    assert_eq!(
        store
            .param(ctx, "block.0.attn.q_conv.weight")
            .unwrap()
            .shape(),
        &[64, 64]
    );
    let b = store.binary("block.0.mlp.mlp1_conv.weight").unwrap();
    assert_eq!(b.bits.shape(), &[256, 64]);
    assert!(
        store.binary("patch_embed.block0_conv.weight").is_err(),
        "the first conv stays float"
    );
    // Decayed tensors (matrices) come first; biases and BN parameters after decay_end.
    let all = ctx.download_f32(&store.params).unwrap();
    assert!(store.decay_end < all.len());
    let head_bias = store.param(ctx, "head.bias").unwrap();
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
        .download_words(&store.binary(name).unwrap().bits)
        .unwrap();
    // A gradient that pushes every weight of the layer the same way flips signs.
    let g = store.grad(ctx, name).unwrap();
    ctx.write_words(&g, &vec![1.0f32; g.len()]).unwrap();
    let mut opt = Optimizer::new(ctx, &store, AdamW::default()).unwrap();
    for _ in 0..3 {
        let g = store.grad(ctx, name).unwrap();
        ctx.write_words(
            &g,
            &(0..g.len())
                .map(|i| if i % 2 == 0 { 1.0f32 } else { -1.0 })
                .collect::<Vec<_>>(),
        )
        .unwrap();
        opt.step(ctx, &mut store, 0.5).unwrap();
    }
    let bits_after: Vec<u32> = ctx
        .download_words(&store.binary(name).unwrap().bits)
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
