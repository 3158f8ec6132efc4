//! The plots are real pictures of their data: PNGs of the stated size, mostly white with
//! drawn content, whose pixels change with the data (more runs, higher rates and
//! different attention maps draw more of their colour), and bad input is an error.

use std::path::Path;

use bitspike::nn::energy::LayerEnergy;
use bitspike::nn::AttentionMaps;
use bitspike::plot::explain::{attention_maps, spike_raster, Picture, Raster};
use bitspike::plot::{energy_bars, training_curves, Run, PALETTE};
use bitspike::train::EpochReport;

fn read(path: &Path) -> image::RgbImage {
    image::open(path).expect("a PNG").to_rgb8()
}

/// Pixels within 40 (per channel) of `c`.
fn count_near(img: &image::RgbImage, c: [u8; 3]) -> usize {
    img.pixels()
        .filter(|p| (0..3).all(|i| (p[i] as i32 - c[i] as i32).abs() < 40))
        .count()
}

fn non_white(img: &image::RgbImage) -> usize {
    img.pixels().filter(|p| p.0 != [255, 255, 255]).count()
}

fn rgb(c: plotters::style::RGBColor) -> [u8; 3] {
    [c.0, c.1, c.2]
}

fn run(name: &str, epochs: usize, start: f64) -> Run {
    Run {
        name: name.into(),
        epochs: (1..=epochs)
            .map(|e| EpochReport {
                epoch: e,
                train_loss: 2.0 / e as f64,
                train_accuracy: start + 0.05 * e as f64,
                test_accuracy: start + 0.04 * e as f64,
                test_top5: 0.9,
                ema_test_accuracy: None,
                images_per_second: 10.0,
                lr: 1e-3 / e as f32,
                seconds: 1.0,
            })
            .collect(),
    }
}

#[test]
fn training_curves_draw_every_run_in_its_colour() {
    let dir = tempfile::tempdir().unwrap();
    let one = dir.path().join("one.png");
    let two = dir.path().join("two.png");
    training_curves(&[run("a", 5, 0.5)], &one).unwrap();
    training_curves(&[run("a", 5, 0.5), run("b", 3, 0.3)], &two).unwrap();
    let (one, two) = (read(&one), read(&two));
    assert_eq!(one.dimensions(), (800, 500));
    let total = (800 * 500) as usize;
    assert!(
        non_white(&one) > total / 50,
        "almost blank: {}",
        non_white(&one)
    );
    assert!(
        non_white(&one) < total / 2,
        "mostly ink: {}",
        non_white(&one)
    );
    let (first, second) = (rgb(PALETTE[0]), rgb(PALETTE[1]));
    assert!(count_near(&one, first) > 500);
    assert!(
        count_near(&one, second) < 50,
        "a second run's colour with one run"
    );
    assert!(
        count_near(&two, second) > 300,
        "the second run is not drawn"
    );
}

#[test]
fn training_curves_refuse_runs_without_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let err = training_curves(&[run("a", 0, 0.5)], &dir.path().join("x.png")).unwrap_err();
    assert!(err.to_string().contains("no epochs"), "{err}");
    assert!(!dir.path().join("x.png").exists());
}

fn layers(rate: f64) -> Vec<LayerEnergy> {
    (0..12)
        .map(|i| LayerEnergy {
            layer: format!("block.{i}.mlp.fc1"),
            binary_weights: i > 0,
            firing_rate: if i == 0 { 1.0 } else { rate },
            spike_driven: i > 0,
            macs: 1e6,
            sops: rate * 1e6,
            energy_uj: 0.9e-6 * rate * 1e6,
        })
        .collect()
}

#[test]
fn energy_bars_grow_with_the_firing_rates() {
    let dir = tempfile::tempdir().unwrap();
    let (low, high) = (dir.path().join("low.png"), dir.path().join("high.png"));
    energy_bars(&layers(0.1), &low).unwrap();
    energy_bars(&layers(0.6), &high).unwrap();
    let (low, high) = (read(&low), read(&high));
    assert_eq!(low.width(), 900);
    assert!(low.height() >= 300);
    let blue = rgb(PALETTE[0]);
    // The rate panel's bars lengthen six-fold; the energy panel's are scaled to the
    // largest, so the blue area grows, but less than six-fold.
    let (b_low, b_high) = (count_near(&low, blue), count_near(&high, blue));
    assert!(b_low > 1000, "{b_low}");
    assert!(b_high * 10 > b_low * 13, "{b_low} -> {b_high}");
    // The real-valued first layer is grey.
    assert!(count_near(&low, [150, 150, 150]) > 500);
    assert!(energy_bars(&[], &dir.path().join("none.png")).is_err());
}

#[test]
fn attention_maps_tint_the_keys_that_are_attended() {
    let dir = tempfile::tempdir().unwrap();
    let picture = Picture {
        size: 8,
        pixels: vec![[128, 128, 128]; 64],
    };
    // T = 2, B = 1, 2 heads, N = 4 tokens (a 2x2 grid): every query attends to key 0 at
    // t = 1 in head 0; nothing else.
    let mut bits = vec![0u8; 2 * 2 * 16];
    for i in 0..4 {
        bits[(2 * 16) + i * 4] = 1;
    }
    let maps = AttentionMaps {
        block: "block.0.attn".into(),
        time_steps: 2,
        batch: 1,
        heads: 2,
        tokens: 4,
        bits,
    };
    let out = dir.path().join("maps.png");
    attention_maps(&maps, 0, &picture, &out).unwrap();
    let img = read(&out);
    // Bright yellow where the attended key lies, and nowhere else.
    let yellow = count_near(&img, [255, 255, 0]);
    assert!(yellow > 500, "{yellow}");
    let empty = AttentionMaps {
        bits: vec![0; 64],
        ..maps.clone()
    };
    attention_maps(&empty, 0, &picture, &out).unwrap();
    assert_eq!(count_near(&read(&out), [255, 255, 0]), 0);
    let odd = AttentionMaps {
        tokens: 3,
        bits: vec![0; 2 * 2 * 9],
        ..maps
    };
    assert!(attention_maps(&odd, 0, &picture, &out).is_err());
}

#[test]
fn the_raster_marks_each_spike() {
    let dir = tempfile::tempdir().unwrap();
    // T = 3, B = 2: sample 1 spikes in neuron 5 at every step, sample 0 never.
    let mut x = vec![0f32; 3 * 2 * 10];
    for t in 0..3 {
        x[(t * 2 + 1) * 10 + 5] = 1.0;
    }
    let dark = [20, 20, 60];
    let out = dir.path().join("raster.png");
    spike_raster(&Raster::of_layer("l", &x, 3, 2, 0).unwrap(), 10, &out).unwrap();
    let quiet = count_near(&read(&out), dark);
    let raster = Raster::of_layer("l", &x, 3, 2, 1).unwrap();
    assert_eq!(raster.rate(0), 0.1);
    spike_raster(&raster, 10, &out).unwrap();
    let img = read(&out);
    assert_eq!(img.dimensions(), (800, 500));
    assert!(
        count_near(&img, dark) > quiet + 3000,
        "{quiet} -> {}",
        count_near(&img, dark)
    );
    assert!(Raster::of_layer("l", &x, 4, 2, 0).is_err());
}
