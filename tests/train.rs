//! The training loop end to end on the shipped MNIST subset, with a plain linear
//! classifier standing in for a model: loader, upload, loss, backward, AdamW, schedule,
//! evaluation, and the optimizer state's resume.

mod common;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use bitspike::data::{self, Augment, BatchLoader};
use bitspike::nn::checkpoint::{HostTensor, StateDict};
use bitspike::nn::params::Init;
use bitspike::nn::{Classifier, ModelConfig, ParamRole, ParamSpec, ParamStore};
use bitspike::ops::optim::AdamW;
use bitspike::ops::{linear, linear_backward};
use bitspike::train::{evaluate, CosineSchedule, EpochProgress, Optimizer, Trainer};
use bitspike::{GpuContext, Result, Tensor};

use common::ctx;

/// Logits = images (flattened) W^T + b, stored as the "head" of a spikformer-2-64 store
/// whose other parameters go unused: enough to drive the trainer.
struct LinearProbe {
    input: Option<Tensor>,
}

impl Classifier for LinearProbe {
    fn forward(
        &mut self,
        ctx: &GpuContext,
        store: &mut ParamStore,
        images: &Tensor,
        _train: bool,
    ) -> Result<Vec<Tensor>> {
        let n = images.shape()[0];
        let x = images.reshape(&[n, 784])?;
        self.input = Some(x.clone());
        let w = store.param(store.id("probe.weight").unwrap())?;
        let b = store.param(store.id("probe.bias").unwrap())?;
        Ok(vec![linear(ctx, &x, w, Some(b))?])
    }

    fn backward(
        &mut self,
        ctx: &GpuContext,
        store: &mut ParamStore,
        dlogits: &[Tensor],
    ) -> Result<()> {
        let x = self.input.as_ref().expect("forward ran");
        let (w, dw, db) = (
            store.param(store.id("probe.weight").unwrap())?,
            store.grad(store.id("probe.weight").unwrap())?,
            store.grad(store.id("probe.bias").unwrap())?,
        );
        linear_backward(ctx, x, w, &dlogits[0], dw, Some(db))?;
        Ok(())
    }
}

fn probe_store(ctx: &GpuContext) -> ParamStore {
    let cfg = ModelConfig::preset("spikformer-2-64").unwrap();
    let mut sd = StateDict::default();
    sd.tensors.insert(
        "probe.weight".into(),
        HostTensor {
            shape: vec![10, 784],
            data: vec![0.0; 7840],
        },
    );
    sd.tensors.insert(
        "probe.bias".into(),
        HostTensor {
            shape: vec![10],
            data: vec![0.0; 10],
        },
    );
    let spec = |name: &str, shape: Vec<usize>| ParamSpec {
        name: name.into(),
        shape,
        role: ParamRole::Trainable,
        binary: false,
        quant_bits: 0,
        init: Init::Constant(0.0),
    };
    let specs = vec![
        spec("probe.weight", vec![10, 784]),
        spec("probe.bias", vec![10]),
    ];
    ParamStore::from_specs(ctx, &cfg, specs, &sd).unwrap()
}

fn loaders() -> (BatchLoader, BatchLoader) {
    let s = data::open(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/assets/mnist-mini"
    )))
    .unwrap();
    let norm = s.train.normalization().unwrap();
    let train = BatchLoader {
        data: Arc::new(s.train),
        batch_size: 100,
        shuffle: true,
        augment: Augment::default(),
        norm: norm.clone(),
        seed: 9,
        prefetch: 2,
        workers: 0,
    };
    let test = BatchLoader {
        data: Arc::new(s.test),
        shuffle: false,
        ..train.clone()
    };
    (train, test)
}

fn trainer<'a>(ctx: &'a GpuContext, train: BatchLoader, test: BatchLoader) -> Trainer<'a> {
    let steps = train.batches();
    Trainer {
        ctx,
        loader: train,
        test_loader: test,
        schedule: CosineSchedule {
            lr: 2e-3,
            min_lr: 1e-5,
            warmup_lr: 1e-4,
            warmup_steps: 5,
            total_steps: 2 * steps,
        },
        label_smoothing: 0.1,
        report_every: 10,
        stop: Arc::new(AtomicBool::new(false)),
    }
}

#[test]
fn a_linear_probe_learns_mnist_through_the_trainer() {
    let ctx = ctx();
    let (train, test) = loaders();
    let t = trainer(ctx, train, test.clone());
    let mut store = probe_store(ctx);
    let mut model = LinearProbe { input: None };
    let mut opt = Optimizer::new(
        ctx,
        &store,
        AdamW {
            weight_decay: 0.0,
            ..AdamW::default()
        },
    )
    .unwrap();
    let mut reports = 0;
    let first = t
        .train_epoch(
            EpochProgress::start(0),
            &mut model,
            &mut store,
            &mut opt,
            None,
            |_| reports += 1,
        )
        .unwrap();
    let second = t
        .train_epoch(
            EpochProgress::start(1),
            &mut model,
            &mut store,
            &mut opt,
            None,
            |_| (),
        )
        .unwrap();
    assert_eq!(reports, 5, "50 steps reported every 10");
    assert!(second.loss < first.loss, "{first:?} -> {second:?}");
    let e = evaluate(ctx, &mut model, &mut store, &test).unwrap();
    let (top1, top5) = (e.top1, e.top5);
    assert!(
        top1 > 0.8 && top5 > top1,
        "linear probe on MNIST: top-1 {top1}, top-5 {top5}"
    );
}

#[test]
fn resuming_from_saved_state_gives_the_same_next_loss() {
    let ctx = ctx();
    let (train, test) = loaders();
    let t = trainer(ctx, train, test);
    let run = |epochs: std::ops::Range<usize>, store: &mut ParamStore, opt: &mut Optimizer| {
        let mut last = None;
        for e in epochs {
            last = Some(
                t.train_epoch(
                    EpochProgress::start(e),
                    &mut LinearProbe { input: None },
                    store,
                    opt,
                    None,
                    |_| (),
                )
                .unwrap()
                .loss,
            );
        }
        last.unwrap()
    };
    // Uninterrupted: epochs 0 and 1.
    let mut store = probe_store(ctx);
    let mut opt = Optimizer::new(ctx, &store, AdamW::default()).unwrap();
    let straight = run(0..2, &mut store, &mut opt);
    // Interrupted after epoch 0, saved, reloaded into fresh state, then epoch 1.
    let mut store = probe_store(ctx);
    let mut opt = Optimizer::new(ctx, &store, AdamW::default()).unwrap();
    run(0..1, &mut store, &mut opt);
    let mut sd: StateDict = store.to_state_dict(ctx).unwrap();
    opt.save_into(ctx, &mut sd).unwrap();
    let mut store2 = probe_store(ctx);
    store2.load(ctx, &sd).unwrap();
    let mut opt2 = Optimizer::new(ctx, &store2, AdamW::default()).unwrap();
    opt2.load_from(ctx, &sd).unwrap();
    let resumed = run(1..2, &mut store2, &mut opt2);
    assert_eq!(straight, resumed, "resume reproduces the uninterrupted run");
}
