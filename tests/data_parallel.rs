//! Data-parallel training: two replicas on one adapter, each on half of every batch,
//! follow the same loss curve and reach the same weights as one replica that
//! accumulates the two halves. BN statistics are per replica (as in PyTorch DDP), which
//! is what the accumulating run computes too: each half is normalized by its own
//! statistics.

mod common;

use bitspike::nn::StateDict;
use bitspike::train::parallel::Devices;
use bitspike::train::RunMode;
use bitspike::{TrainConfig, Trainer};
use common::cli::{small_config, tiny_mnist};

/// Optimizer steps compared (the acceptance's 20).
const STEPS: usize = 20;
/// The global batch.
const BATCH: usize = 16;

/// Trains one epoch of `STEPS` updates of `BATCH` images on `devices`, each update made
/// of `accum` batches; the mean training loss after each update and the last checkpoint.
fn run(dir: &std::path::Path, devices: &str, accum: usize) -> (Vec<f64>, StateDict, usize) {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    tiny_mnist(&data, STEPS * BATCH, 32);
    let mut config = TrainConfig::new(small_config(28, 1), &data);
    config.out = dir.join(format!("run-{devices}-{accum}"));
    config.mode = RunMode::Overwrite;
    config.epochs = 1;
    config.batch_size = BATCH / accum;
    config.accum_steps = accum;
    config.report_every = accum;
    config.lr = 5e-3;
    config.warmup_epochs = 0.0;
    config.workers = 1;
    config.devices = devices.parse::<Devices>().unwrap();
    let mut curve = Vec::new();
    let summary = Trainer::new(config)
        .on_step(|s| curve.push(s.loss))
        .run()
        .unwrap();
    assert!(summary.leader);
    let last = StateDict::read(&summary.last_checkpoint).unwrap();
    (curve, last, summary.replicas)
}

/// A linear layer's bias that feeds a BN: the BN subtracts it again, so its gradient is
/// rounding noise that AdamW's normalization magnifies to full-size steps. Its value is
/// irrelevant to the model's output; every other tensor is compared.
fn cancelled_by_bn(name: &str, state: &StateDict) -> bool {
    let Some(stem) = name.strip_suffix("_linear.bias") else {
        return false;
    };
    state
        .tensors
        .contains_key(&format!("{stem}_bn.running_mean"))
}

#[test]
fn two_replicas_match_one_replica_accumulating_the_same_batches() {
    let dir = tempfile::tempdir().unwrap();
    let (one, one_state, one_replicas) = run(dir.path(), "0", 2);
    let (two, two_state, two_replicas) = run(dir.path(), "0,0", 1);
    assert_eq!((one_replicas, two_replicas), (1, 2));
    assert_eq!(one.len(), STEPS, "one loss per update: {one:?}");
    assert_eq!(two.len(), STEPS, "one loss per update: {two:?}");
    // Per-update losses, recovered from the running means.
    let per_update = |curve: &[f64]| -> Vec<f64> {
        (0..curve.len())
            .map(|k| (k + 1) as f64 * curve[k] - k as f64 * if k > 0 { curve[k - 1] } else { 0.0 })
            .collect()
    };
    for (step, (a, b)) in per_update(&one).iter().zip(&per_update(&two)).enumerate() {
        assert!(
            (a - b).abs() <= 1e-3 * a.abs().max(1.0),
            "loss of update {}: one replica {a}, two replicas {b}",
            step + 1
        );
    }

    // The weights moved, so that agreeing weights are not untouched ones.
    let init = bitspike::nn::init_state(&small_config(28, 1), 0);
    let moved = init
        .tensors
        .iter()
        .filter(|(name, t)| {
            let b = &two_state.tensors[*name];
            t.data
                .iter()
                .zip(&b.data)
                .any(|(x, y)| (x - y).abs() > 1e-3)
        })
        .count();
    assert!(
        moved > 10,
        "only {moved} tensors moved from their initial values"
    );

    let mut compared = 0;
    for (name, a) in &one_state.tensors {
        // AdamW's moments are compared too (the cancelled biases' moments are ~0 in both).
        if cancelled_by_bn(name, &one_state) {
            continue;
        }
        // Running statistics differ by design: accumulating moves them twice per update
        // (once per half), two replicas once each, averaged. They only serve evaluation.
        if name.ends_with(".running_mean") || name.ends_with(".running_var") {
            continue;
        }
        if name.ends_with(".num_batches_tracked") {
            assert_eq!(
                a.data,
                [(2 * STEPS) as f32],
                "{name}: one replica, two halves per update"
            );
            assert_eq!(
                two_state.tensors[name].data,
                [STEPS as f32],
                "{name}: each replica"
            );
            continue;
        }
        let b = &two_state.tensors[name];
        assert_eq!(a.shape, b.shape, "{name}");
        for (i, (x, y)) in a.data.iter().zip(&b.data).enumerate() {
            assert!(
                (x - y).abs() <= 1e-4 * x.abs().max(1.0),
                "{name}[{i}]: one replica {x}, two replicas {y}"
            );
        }
        compared += 1;
    }
    assert!(compared > 20, "only {compared} tensors compared");
    assert_eq!(
        one_state.metadata.get("train.replicas").map(String::as_str),
        Some("1")
    );
    assert_eq!(
        two_state.metadata.get("train.replicas").map(String::as_str),
        Some("2")
    );
}
