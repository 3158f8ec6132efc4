//! The training loop end to end on the shipped MNIST subset, with a plain linear
//! classifier standing in for a model: loader, upload, loss, backward, AdamW, schedule,
//! evaluation, gradient accumulation, mixup, distillation from a logits table, the EMA,
//! and resuming with all of them.

mod common;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use bitspike::data::augment::{EraseMode, RandomErasing};
use bitspike::data::{self, Augment, BatchLoader, MixMode, Mixup, TeacherLogits};
use bitspike::nn::checkpoint::{HostTensor, StateDict};
use bitspike::nn::params::Init;
use bitspike::nn::{Classifier, ModelConfig, ParamRole, ParamSpec, ParamStore};
use bitspike::ops::optim::AdamW;
use bitspike::ops::{linear, linear_backward};
use bitspike::train::{
    evaluate, CosineSchedule, Distillation, EpochOutcome, EpochProgress, EpochRunner, ModelEma,
    Optimizer, Teacher, TeacherSource,
};
use bitspike::{GpuContext, Result, Tensor};

use common::ctx;

/// Logits = images (flattened) W^T + b, stored as the "head" of a spikformer-2-64 store
/// whose other parameters go unused: enough to drive the trainer. With `heads` 2 it
/// returns the logits twice, as a two-head model for distillation.
struct LinearProbe {
    input: Option<Tensor>,
    heads: usize,
}

impl LinearProbe {
    fn new(heads: usize) -> Self {
        Self { input: None, heads }
    }
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
        (0..self.heads)
            .map(|_| linear(ctx, &x, w, Some(b)))
            .collect()
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
        for dy in dlogits {
            linear_backward(ctx, x, w, dy, dw, Some(db))?;
        }
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
        mixup: None,
        norm: norm.clone(),
        seed: 9,
        prefetch: 2,
        workers: 0,
        shard: bitspike::data::Shard::WHOLE,
    };
    let test = BatchLoader {
        data: Arc::new(s.test),
        shuffle: false,
        ..train.clone()
    };
    (train, test)
}

fn trainer<'a>(ctx: &'a GpuContext, train: BatchLoader, test: BatchLoader) -> EpochRunner<'a> {
    let steps = train.batches();
    EpochRunner {
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
        accum_steps: 1,
        report_every: 10,
        stop: Arc::new(AtomicBool::new(false)),
        replicas: None,
    }
}

#[test]
fn a_linear_probe_learns_mnist_through_the_trainer() {
    let ctx = ctx();
    let (train, test) = loaders();
    let t = trainer(ctx, train, test.clone());
    let mut store = probe_store(ctx);
    let mut model = LinearProbe::new(1);
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
                    &mut LinearProbe::new(1),
                    store,
                    opt,
                    None,
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

#[test]
fn accumulating_two_half_batches_steps_like_one_full_batch() {
    let ctx = ctx();
    let (train, test) = loaders();
    let full = trainer(ctx, train.clone(), test.clone());
    let halves = EpochRunner {
        loader: BatchLoader {
            batch_size: 50,
            ..train
        },
        accum_steps: 2,
        ..trainer(ctx, loaders().0, test)
    };
    let mut weights = Vec::new();
    for t in [&full, &halves] {
        let mut store = probe_store(ctx);
        let mut opt = Optimizer::new(ctx, &store, AdamW::default()).unwrap();
        t.train_epoch(
            EpochProgress::start(0),
            &mut LinearProbe::new(1),
            &mut store,
            &mut opt,
            None,
            None,
            |_| (),
        )
        .unwrap();
        assert_eq!(opt.steps, 50, "one optimizer step per 100 images");
        weights.push(ctx.download_f32(&store.params).unwrap());
    }
    // The same 100 images per step (the order does not depend on the batch size), the
    // mean of two half-batch means: equal up to the order of float sums.
    let worst = weights[0]
        .iter()
        .zip(&weights[1])
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(worst < 1e-4, "largest weight difference {worst}");
    let moved = weights[0].iter().map(|v| v.abs()).fold(0f32, f32::max);
    assert!(moved > 1e-2, "the weights trained ({moved})");
}

/// A teacher-logits table for the training split: random logits, each row's largest at
/// the sample's label with probability 3/4.
fn logits_table(labels: &[u32]) -> TeacherLogits {
    let mut rng = bitspike::rng::Rng::new(77);
    let mut logits = Vec::with_capacity(labels.len() * 10);
    for &l in labels {
        let mut row: Vec<f32> = (0..10).map(|_| rng.normal()).collect();
        if rng.uniform() < 0.75 {
            row[l as usize] += 4.0;
        }
        logits.extend(row);
    }
    TeacherLogits {
        logits,
        samples: labels.len(),
        classes: 10,
    }
}

/// Everything a run keeps across a stop: weights, optimizer, EMA, in one checkpoint.
fn checkpoint(ctx: &GpuContext, store: &ParamStore, opt: &Optimizer, ema: &ModelEma) -> StateDict {
    let mut sd = store.to_state_dict(ctx).unwrap();
    opt.save_into(ctx, &mut sd).unwrap();
    ema.save_into(ctx, &mut sd).unwrap();
    sd
}

#[test]
fn resuming_mid_epoch_with_every_feature_on_gives_the_same_next_loss() {
    let ctx = ctx();
    let (train, test) = loaders();
    let table = logits_table(train.data.labels());
    let train = BatchLoader {
        augment: Augment {
            crop_padding: 2,
            horizontal_flip: true,
            rand_augment: Some("rand-m9-n2-mstd0.5-inc1".parse().unwrap()),
            random_erasing: Some(RandomErasing {
                probability: 0.5,
                mode: EraseMode::Pixel,
                ..RandomErasing::default()
            }),
            ..Augment::default()
        },
        mixup: Some(Mixup {
            mixup_alpha: 0.8,
            cutmix_alpha: 1.0,
            cutmix_minmax: None,
            prob: 0.9,
            switch_prob: 0.5,
            mode: MixMode::Elem,
            off_epoch: None,
        }),
        ..train
    };
    let t = EpochRunner {
        accum_steps: 3,
        report_every: 2,
        ..trainer(ctx, train, test)
    };
    let stop = t.stop.clone();
    let fresh = || {
        let store = probe_store(ctx);
        let opt = Optimizer::new(ctx, &store, AdamW::default()).unwrap();
        let sd = store.to_state_dict(ctx).unwrap();
        let ema = ModelEma::new(ctx, &store, &sd, 0.9).unwrap();
        (store, opt, ema)
    };
    let epoch = |stop_after: Option<usize>,
                 from: EpochProgress,
                 store: &mut ParamStore,
                 opt: &mut Optimizer,
                 ema: &mut ModelEma|
     -> EpochOutcome {
        let mut teacher = Teacher {
            source: TeacherSource::Logits(&table),
            kind: Distillation::Soft { tau: 2.0 },
        };
        t.train_epoch(
            from,
            &mut LinearProbe::new(2),
            store,
            opt,
            Some(&mut teacher),
            Some(ema),
            |p| {
                if Some(p.step) == stop_after {
                    stop.store(true, std::sync::atomic::Ordering::SeqCst);
                }
            },
        )
        .unwrap()
    };

    // Uninterrupted.
    let (mut store, mut opt, mut ema) = fresh();
    let whole = epoch(
        None,
        EpochProgress::start(0),
        &mut store,
        &mut opt,
        &mut ema,
    );
    let want = checkpoint(ctx, &store, &opt, &ema);

    // Stopped after step 8: the epoch ends at the next accumulation boundary (step 9).
    let (mut store, mut opt, mut ema) = fresh();
    let part = epoch(
        Some(8),
        EpochProgress::start(0),
        &mut store,
        &mut opt,
        &mut ema,
    );
    assert!(part.interrupted);
    assert_eq!(
        part.progress.steps_done, 9,
        "stops on a boundary of 3 batches"
    );
    let saved = checkpoint(ctx, &store, &opt, &ema);

    // Resumed into fresh state from the checkpoint alone.
    let (mut store, mut opt, mut ema) = fresh();
    store.load(ctx, &saved).unwrap();
    opt.load_from(ctx, &saved).unwrap();
    ema.load_from(ctx, &saved).unwrap();
    t.stop.store(false, std::sync::atomic::Ordering::SeqCst);
    let rest = epoch(None, part.progress, &mut store, &mut opt, &mut ema);
    assert!(!rest.interrupted);
    assert_eq!(rest.loss, whole.loss, "the epoch's loss, resumed or not");
    assert_eq!(rest.accuracy, whole.accuracy);
    let got = checkpoint(ctx, &store, &opt, &ema);
    for (name, t) in &want.tensors {
        assert_eq!(t.data, got.tensors[name].data, "{name} after the epoch");
    }
    assert!(want.tensors.keys().any(|k| k.starts_with("ema.")));
    // The EMA lags the weights.
    assert_ne!(
        want.tensors["probe.weight"].data,
        want.tensors["ema.probe.weight"].data
    );
}
