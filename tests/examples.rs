//! Each example in examples/ runs on the shipped assets: `train_custom` trains on a slice
//! of assets/mnist-mini, `classify` reads its checkpoint and the sample PNGs, `events`
//! bins and classifies the shipped N-MNIST recording. The examples' `run` functions are
//! compiled in here from their files, so the test runs the code `cargo run --example`
//! runs.

mod common;

#[allow(dead_code)]
#[path = "../examples/classify.rs"]
mod classify;
#[allow(dead_code)]
#[path = "../examples/events.rs"]
mod events;
#[allow(dead_code)]
#[path = "../examples/train_custom.rs"]
mod train_custom;

use std::path::Path;

use bitspike::data::events::{FrameSettings, SplitBy};
use bitspike::data::Normalization;
use bitspike::nn::{init_state, ModelConfig};

fn repo(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(path)
        .display()
        .to_string()
}

fn samples() -> Vec<String> {
    ["0-label-7", "1-label-2", "2-label-1"]
        .iter()
        .map(|s| repo(&format!("assets/samples/mnist-test-{s}.png")))
        .collect()
}

#[test]
fn train_custom_then_classify_the_sample_images() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    common::cli::tiny_mnist(&data, 48, 16);
    let out = dir.path().join("run");
    let args = [
        data.display().to_string(),
        out.display().to_string(),
        "2".into(),
    ];
    let (summary, reports) = train_custom::run(&args).unwrap();
    assert_eq!(reports.len(), 2, "one callback per epoch");
    assert_eq!(reports.iter().map(|r| r.epoch).collect::<Vec<_>>(), [1, 2]);
    let log = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 2, "{log}");
    assert!(summary.best_checkpoint.is_file());
    assert!(summary.interrupted.is_none());

    let mut args = vec![summary.best_checkpoint.display().to_string()];
    args.extend(samples());
    args.extend(["--top".to_string(), "4".to_string()]);
    let results = classify::run(&args).unwrap();
    assert_eq!(results.len(), 3);
    for (path, top) in &results {
        assert_eq!(top.len(), 4, "{path}");
        assert!(
            top.windows(2).all(|w| w[0].probability >= w[1].probability),
            "{path}: not sorted: {top:?}"
        );
        let sum: f32 = top.iter().map(|p| p.probability).sum();
        assert!(sum > 0.0 && sum <= 1.0 + 1e-5, "{path}: {sum}");
        // The class names are the dataset's digits, as training stored them.
        for p in top {
            assert_eq!(p.class, p.index.to_string());
        }
    }
    // The batched forward agrees with one image at a time.
    let mut model = bitspike::Pipeline::load(&summary.best_checkpoint).unwrap();
    let img = image::open(&samples()[1]).unwrap();
    let one = model.classify(&img, 4).unwrap();
    for (a, b) in one.iter().zip(&results[1].1) {
        assert_eq!(a.index, b.index);
        assert!((a.probability - b.probability).abs() < 1e-5);
    }
}

#[test]
fn classify_refuses_a_missing_checkpoint_and_bad_arguments() {
    let err = classify::run(&["/nonexistent.safetensors".into(), samples()[0].clone()])
        .expect_err("a missing checkpoint is an error");
    assert!(
        err.to_string().contains("/nonexistent.safetensors"),
        "{err}"
    );
    let err = classify::run(&[]).expect_err("no arguments is an error");
    assert!(err.to_string().contains("usage"), "{err}");
}

#[test]
fn events_bins_and_classifies_the_shipped_recording() {
    let dir = tempfile::tempdir().unwrap();
    // An (untrained) event model: T = 4 frames of 2 polarities, 16x16.
    let mut cfg = ModelConfig::preset("bestformer-2-64").unwrap();
    cfg.in_channels = 2;
    cfg.image_size = 16;
    cfg.time_steps = 4;
    cfg.validate().unwrap();
    let mut sd = init_state(&cfg, 1);
    let frames = FrameSettings {
        time_steps: 4,
        split_by: SplitBy::Number,
        sensor: (34, 34),
        size: 16,
    };
    sd.metadata.insert(
        "data.frames".into(),
        serde_json::to_string(&frames).unwrap(),
    );
    let norm = Normalization {
        mean: vec![0.05, 0.05],
        std: vec![0.2, 0.2],
    };
    sd.metadata.insert(
        "data.normalization".into(),
        serde_json::to_string(&norm).unwrap(),
    );
    let checkpoint = dir.path().join("events.safetensors");
    sd.write(&checkpoint).unwrap();

    let file = repo("assets/samples/nmnist-test-0-label-7.bin");
    let found = events::run(&[checkpoint.display().to_string(), file.clone()]).unwrap();
    // 5 bytes per event in the file.
    let bytes = std::fs::metadata(&file).unwrap().len() as usize;
    assert_eq!(found.events, bytes / 5);
    assert_eq!(found.per_frame.len(), 4);
    assert_eq!(found.per_frame.iter().sum::<u64>(), found.events as u64);
    // Split by event count (SpikingJelly): n / T events a frame, the rest in the last.
    let share = (found.events / 4) as u64;
    assert_eq!(found.per_frame[..3], [share; 3], "{:?}", found.per_frame);
    assert_eq!(found.top.len(), 3);
    assert!(found
        .top
        .windows(2)
        .all(|w| w[0].probability >= w[1].probability));

    // An image model takes no event files.
    let image_model = dir.path().join("image.safetensors");
    let mut sd = init_state(&ModelConfig::preset("bestformer-2-64").unwrap(), 1);
    sd.metadata.insert(
        "data.normalization".into(),
        r#"{"mean":[0.1],"std":[0.3]}"#.into(),
    );
    sd.write(&image_model).unwrap();
    let err = events::run(&[image_model.display().to_string(), file])
        .err()
        .expect("an image model refuses event files");
    assert!(err.to_string().contains("not on event data"), "{err}");
}
