//! `bitspike infer`: run a checkpoint on image files, or on event recordings with a model
//! trained on event data, and print each input's top-k classes.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

use super::{print_json, EventArgs, GpuArgs, ModelArgs};
use bitspike::data::events::{self, FrameSettings};
use bitspike::data::Normalization;
use bitspike::nn::limits::Run;
use bitspike::nn::{combine_heads, Classifier, Model, ModelConfig, ParamStore, StateDict};

#[derive(Args)]
pub struct InferArgs {
    #[command(flatten)]
    gpu: GpuArgs,
    /// A bitspike checkpoint, or a plain state_dict with --model PRESET.
    #[arg(long, alias = "weights")]
    checkpoint: PathBuf,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    events: EventArgs,
    /// Image files (PNG, JPEG, BMP, GIF, WebP) or event files (N-MNIST .bin/.bs2, AEDAT,
    /// .npy/.npz) for a model trained on events, or directories of them.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// Classes to print per image.
    #[arg(long, default_value_t = 5, value_parser = super::int::whole)]
    topk: usize,
    /// Per-channel normalization mean (comma-separated), for checkpoints that carry none.
    #[arg(long, value_delimiter = ',', value_parser = super::float::finite)]
    mean: Vec<f32>,
    #[arg(long, value_delimiter = ',', value_parser = super::float::positive)]
    std: Vec<f32>,
    #[arg(long, default_value_t = 32, value_parser = super::int::positive)]
    batch_size: usize,
    /// One JSON object per image: path, top-k (class, probability) and the raw logits.
    #[arg(long)]
    json: bool,
}

/// The image as the model's input: grey or RGB, resized so the short side fits, centre
/// cropped, channel-planar in [0, 1] units normalized.
fn load_image(path: &Path, cfg: &ModelConfig, norm: &Normalization) -> anyhow::Result<Vec<f32>> {
    let img = bitspike::data::decode::open_image(path)?;
    let s = cfg.image_size as u32;
    let img = img.resize_to_fill(s, s, image::imageops::FilterType::Triangle);
    let plane = (s * s) as usize;
    let mut out = vec![0f32; cfg.in_channels * plane];
    if cfg.in_channels == 1 {
        for (i, p) in img.to_luma8().pixels().enumerate() {
            out[i] = (p[0] as f32 / 255.0 - norm.mean[0]) / norm.std[0];
        }
    } else {
        for (i, p) in img.to_rgb8().pixels().enumerate() {
            for c in 0..cfg.in_channels.min(3) {
                out[c * plane + i] = (p[c] as f32 / 255.0 - norm.mean[c]) / norm.std[c];
            }
        }
    }
    Ok(out)
}

/// An event recording as the model's input: frames `[T, 2, S, S]`, normalized.
fn load_events(
    path: &Path,
    frames: &FrameSettings,
    norm: &Normalization,
) -> anyhow::Result<Vec<f32>> {
    let ev = events::read(path)?;
    let plane = frames.size * frames.size;
    Ok(events::frames::integrate_u8(&ev, frames)
        .chunks(plane)
        .enumerate()
        .flat_map(|(i, p)| {
            let c = i % events::frames::POLARITIES;
            let (m, s) = (norm.mean[c], norm.std[c]);
            p.iter().map(move |&v| (v as f32 / 255.0 - m) / s)
        })
        .collect())
}

/// Class probabilities of logits `z`: a NaN logit gets probability 0 (it ranks last),
/// infinities count as the largest finite values; None when every logit is NaN.
fn softmax(z: &[f32]) -> Option<Vec<f32>> {
    if z.iter().all(|v| v.is_nan()) {
        return None;
    }
    let z: Vec<f32> = z
        .iter()
        .map(|&v| {
            if v.is_nan() {
                f32::NEG_INFINITY
            } else {
                v.clamp(-f32::MAX, f32::MAX)
            }
        })
        .collect();
    let m = z.iter().copied().fold(f32::MIN, f32::max);
    let e: Vec<f32> = z.iter().map(|v| (v - m).exp()).collect();
    let s: f32 = e.iter().sum();
    Some(e.iter().map(|v| v / s).collect())
}

pub fn run(args: InferArgs) -> anyhow::Result<()> {
    let sd = StateDict::read(&args.checkpoint)?;
    let cfg = match args.model.config()? {
        Some(cfg) => cfg,
        None => sd.config(&args.checkpoint)?.with_context(|| {
            format!(
                "{} carries no model config: pass --model PRESET",
                args.checkpoint.display()
            )
        })?,
    };
    sd.check(&cfg, &args.checkpoint)?;
    let norm = if !args.mean.is_empty() || !args.std.is_empty() {
        Normalization {
            mean: args.mean.clone(),
            std: args.std.clone(),
        }
    } else if let Some(json) = sd.metadata.get("data.normalization") {
        serde_json::from_str(json)
            .with_context(|| format!("{}: bad data.normalization", args.checkpoint.display()))?
    } else {
        anyhow::bail!(
            "{} carries no normalization statistics: pass --mean and --std (one value per \
             input channel)",
            args.checkpoint.display()
        );
    };
    if norm.mean.len() != cfg.in_channels || norm.std.len() != cfg.in_channels {
        anyhow::bail!("--mean and --std need {} values each", cfg.in_channels);
    }
    // A model trained on events bins event files as it was trained.
    let frames = match super::eval::stored_frames(&sd, &args.checkpoint)? {
        Some(stored) => {
            let o = args.events.options(cfg.time_steps, Some(&stored))?;
            let settings = FrameSettings {
                time_steps: cfg.time_steps,
                split_by: o.split_by,
                sensor: o.sensor.unwrap_or(stored.sensor),
                size: o.size.unwrap_or(stored.size),
            };
            if settings.size != cfg.image_size {
                anyhow::bail!(
                    "--frame-size {} does not match the model's input size {}",
                    settings.size,
                    cfg.image_size
                );
            }
            Some(settings)
        }
        None => None,
    };
    let classes: Vec<String> = sd
        .metadata
        .get("data.classes")
        .and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or_else(|| (0..cfg.classes).map(|c| c.to_string()).collect());

    // Directories stand for the image files directly inside them.
    let mut paths = Vec::new();
    for path in &args.images {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("{}: cannot list", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    events::is_event_file(p)
                        || p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                            ["png", "jpg", "jpeg", "bmp", "gif", "webp"]
                                .contains(&e.to_ascii_lowercase().as_str())
                        })
                })
                .collect();
            if found.is_empty() {
                anyhow::bail!("{}: the directory holds no images", path.display());
            }
            found.sort();
            paths.extend(found);
        } else {
            paths.push(path.clone());
        }
    }
    // The run's buffers against the adapter's limits before any input is decoded.
    let batch = args.batch_size.max(1);
    let ctx = args.gpu.open()?;
    ctx.check_run(&cfg, Run::Forward { batch })?;
    // Decode everything first: a bad file is reported, the others still run.
    let mut inputs = Vec::new();
    let mut failures = Vec::new();
    for path in &paths {
        let input = match &frames {
            Some(f) if events::is_event_file(path) => load_events(path, f, &norm),
            Some(_) => Err(anyhow::anyhow!(
                "{}: the model was trained on event data and takes event files",
                path.display()
            )),
            None => load_image(path, &cfg, &norm),
        };
        match input {
            Ok(x) => inputs.push((path.clone(), x)),
            Err(e) => failures.push(format!("{e:#}")),
        }
    }
    if !inputs.is_empty() {
        let mut store = ParamStore::new(&ctx, &cfg, &sd)?;
        let mut model = Model::new(&cfg, batch)?;
        let s = cfg.image_size;
        for chunk in inputs.chunks(batch) {
            let images = match &frames {
                // Frames [T, B, C, S, S]: step t of every input, then the next step.
                Some(f) => {
                    let step = cfg.in_channels * s * s;
                    let flat: Vec<f32> = (0..f.time_steps)
                        .flat_map(|t| {
                            chunk
                                .iter()
                                .flat_map(move |(_, x)| x[t * step..(t + 1) * step].iter().copied())
                        })
                        .collect();
                    ctx.upload_f32(&flat, &[f.time_steps, chunk.len(), cfg.in_channels, s, s])?
                }
                None => {
                    let flat: Vec<f32> =
                        chunk.iter().flat_map(|(_, x)| x.iter().copied()).collect();
                    ctx.upload_f32(&flat, &[chunk.len(), cfg.in_channels, s, s])?
                }
            };
            let logits = combine_heads(&ctx, &model.forward(&ctx, &mut store, &images, false)?)?;
            let values = ctx.download_f32(&logits)?;
            for ((path, _), row) in chunk.iter().zip(values.chunks(cfg.classes)) {
                let Some(p) = softmax(row) else {
                    failures.push(format!(
                        "{}: the model's logits are all NaN (its weights are not numbers?)",
                        path.display()
                    ));
                    continue;
                };
                let mut order: Vec<usize> = (0..row.len()).collect();
                order.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
                order.truncate(args.topk.max(1));
                let name = |c: usize| classes.get(c).cloned().unwrap_or_else(|| c.to_string());
                if args.json {
                    print_json(&serde_json::json!({
                        "path": path.display().to_string(),
                        "topk": order.iter().map(|&c| serde_json::json!({"class": name(c), "index": c, "probability": p[c]})).collect::<Vec<_>>(),
                        "logits": row,
                    }))?;
                } else {
                    let best: Vec<String> = order
                        .iter()
                        .map(|&c| format!("{} {:.1}%", name(c), 100.0 * p[c]))
                        .collect();
                    println!("{}: {}", path.display(), best.join(", "));
                }
            }
        }
    }
    if !failures.is_empty() {
        anyhow::bail!(
            "{} of {} images could not be read: {}",
            failures.len(),
            paths.len(),
            failures.join("; ")
        );
    }
    Ok(())
}
