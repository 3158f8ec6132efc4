//! `bitspike infer`: run a checkpoint on image files, or on event recordings with a model
//! trained on event data, and print each input's top-k classes.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::{print_json, EventArgs, GpuArgs, ModelArgs};
use bitspike::data::events::{self, FrameSettings};
use bitspike::data::Normalization;
use bitspike::{Pipeline, PipelineOptions};

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
    /// Write pictures of what the model does with the one input file into this
    /// directory: the input, a spike raster of a layer over T and, for the binary
    /// attention forms, each block's attention maps per head and time step.
    #[arg(long, value_name = "OUT_DIR")]
    explain: Option<PathBuf>,
    /// The layer of the spike raster (--explain): a weight name without `.weight`, as
    /// the energy report lists them (default: the first block's first MLP layer).
    #[arg(long, requires = "explain")]
    layer: Option<String>,
}

pub fn run(args: InferArgs) -> anyhow::Result<()> {
    let normalization = if !args.mean.is_empty() || !args.std.is_empty() {
        Some(Normalization {
            mean: args.mean.clone(),
            std: args.std.clone(),
        })
    } else {
        None
    };
    let options = PipelineOptions {
        adapter: args.gpu.choice(),
        model: args.model.config()?,
        normalization,
        batch_size: args.batch_size.max(1),
    };
    let mut pipeline = Pipeline::load_with(&args.checkpoint, &options)?;
    // A model trained on events bins event files as it was trained, unless told otherwise.
    if let Some(stored) = pipeline.frames().copied() {
        let o = args.events.options(stored.time_steps, Some(&stored))?;
        let settings = FrameSettings {
            time_steps: stored.time_steps,
            split_by: o.split_by,
            sensor: o.sensor.unwrap_or(stored.sensor),
            size: o.size.unwrap_or(stored.size),
        };
        if settings.size != pipeline.config().image_size {
            anyhow::bail!(
                "--frame-size {} does not match the model's input size {}",
                settings.size,
                pipeline.config().image_size
            );
        }
        pipeline.set_frames(settings)?;
    }
    let paths = input_files(&args.images, pipeline.frames().is_some())?;
    if let Some(dir) = &args.explain {
        let [path] = &paths[..] else {
            anyhow::bail!("--explain takes one input file, got {}", paths.len());
        };
        return super::explain::run(&mut pipeline, path, dir, args.layer.as_deref());
    }
    // Decode everything first: a bad file is reported, the others still run.
    let mut inputs = Vec::new();
    let mut failures = Vec::new();
    for path in &paths {
        match pipeline.read_input(path) {
            Ok(x) => inputs.push((path.clone(), x)),
            Err(e) => failures.push(format!("{e:#}")),
        }
    }
    let values: Vec<Vec<f32>> = inputs.iter().map(|(_, x)| x.clone()).collect();
    let logits = pipeline.logits(&values)?;
    for ((path, _), row) in inputs.iter().zip(&logits) {
        let top = match pipeline.top_k(row, args.topk) {
            Ok(top) => top,
            Err(e) => {
                failures.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        if args.json {
            print_json(&serde_json::json!({
                "path": path.display().to_string(),
                "topk": top,
                "logits": row,
            }))?;
        } else {
            let best: Vec<String> = top
                .iter()
                .map(|p| format!("{} {:.1}%", p.class, 100.0 * p.probability))
                .collect();
            println!("{}: {}", path.display(), best.join(", "));
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

/// The input files: each path, with a directory standing for the files directly inside
/// it that the model takes: event recordings for a model trained on events (`takes_events`), else
/// images.
fn input_files(args: &[PathBuf], takes_events: bool) -> anyhow::Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for path in args {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("{}: cannot list", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| match takes_events {
                    true => events::is_event_file(p),
                    false => p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                        ["png", "jpg", "jpeg", "bmp", "gif", "webp"]
                            .contains(&e.to_ascii_lowercase().as_str())
                    }),
                })
                .collect();
            if found.is_empty() {
                let what = if takes_events {
                    "event recordings"
                } else {
                    "images"
                };
                anyhow::bail!("{}: the directory holds no {what}", path.display());
            }
            found.sort();
            paths.extend(found);
        } else {
            paths.push(path.clone());
        }
    }
    Ok(paths)
}
