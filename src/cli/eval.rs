//! `bitspike eval`: accuracy (top-1, top-5) and throughput of a checkpoint on a dataset's
//! test split.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Args;

use super::{print_json, EventArgs, GpuArgs, LoaderArgs, ModelArgs, FRAMES_KEY};
use bitspike::data::{self, Augment, BatchLoader, Normalization};
use bitspike::nn::energy::EnergyLog;
use bitspike::nn::limits::Run;
use bitspike::nn::{param_counts, Model, ParamStore, StateDict};
use bitspike::train::evaluate;

#[derive(Args)]
pub struct EvalArgs {
    #[command(flatten)]
    gpu: GpuArgs,
    /// A bitspike checkpoint (its config in the metadata), or a plain state_dict with
    /// --model PRESET.
    #[arg(long, alias = "weights")]
    checkpoint: PathBuf,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    events: EventArgs,
    #[command(flatten)]
    loader: LoaderArgs,
    /// Dataset directory (its test split is evaluated).
    #[arg(long, default_value = "assets/mnist-mini")]
    data: PathBuf,
    #[arg(long, default_value_t = 64, value_parser = super::int::positive)]
    batch_size: usize,
    /// Report per-layer firing rates, SOPs and energy (docs/energy.md).
    #[arg(long)]
    energy: bool,
    #[arg(long)]
    json: bool,
}

#[derive(serde::Serialize)]
struct EvalReport {
    checkpoint: String,
    images: usize,
    top1: f64,
    top5: f64,
    images_per_second: f64,
}

/// The frame settings a model trained on event data was trained with.
pub fn stored_frames(
    sd: &StateDict,
    path: &std::path::Path,
) -> anyhow::Result<Option<bitspike::data::events::FrameSettings>> {
    sd.metadata
        .get(FRAMES_KEY)
        .map(|json| {
            serde_json::from_str(json)
                .with_context(|| format!("{}: bad {FRAMES_KEY}", path.display()))
        })
        .transpose()
}

pub fn run(args: EvalArgs) -> anyhow::Result<()> {
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
    let ctx = args.gpu.open()?;
    ctx.check_run(
        &cfg,
        Run::Forward {
            batch: args.batch_size,
        },
    )?;
    let stored = stored_frames(&sd, &args.checkpoint)?;
    let options = data::OpenOptions {
        events: args.events.options(cfg.time_steps, stored.as_ref())?,
        folders: args.loader.folders(Some(cfg.image_size)),
    };
    let splits = data::open_with_options(&args.data, &options)?;
    splits.check_classes(cfg.classes, &args.data)?;
    let test = splits.test;
    if test.is_empty() {
        anyhow::bail!("{}: the test split is empty", args.data.display());
    }
    if (test.channels(), test.height(), test.width())
        != (cfg.in_channels, cfg.image_size, cfg.image_size)
    {
        anyhow::bail!(
            "{} holds {}x{}x{} images but the model expects {}x{}x{}",
            args.data.display(),
            test.channels(),
            test.height(),
            test.width(),
            cfg.in_channels,
            cfg.image_size,
            cfg.image_size
        );
    }
    // The training statistics stored in the checkpoint, else the data's own.
    let norm: Normalization = match sd.metadata.get("data.normalization") {
        Some(json) => serde_json::from_str(json)
            .with_context(|| format!("{}: bad data.normalization", args.checkpoint.display()))?,
        None => splits.train.normalization()?,
    };
    let mut store = ParamStore::new(&ctx, &cfg, &sd)?;
    let mut model = Model::new(&cfg, args.batch_size)?;
    let loader = BatchLoader {
        data: Arc::new(test),
        batch_size: args.batch_size,
        shuffle: false,
        augment: Augment::default(),
        mixup: None,
        norm,
        seed: 0,
        prefetch: 3,
        workers: args.loader.workers,
    };
    if args.energy {
        store.energy = Some(EnergyLog::default());
    }
    let start = Instant::now();
    let evaluation = evaluate(&ctx, &mut model, &mut store, &loader)?;
    let (top1, top5) = (evaluation.top1, evaluation.top5);
    if evaluation.nan_predictions > 0 {
        eprintln!(
            "warning: {} of {} images have NaN logits (counted as wrong): the checkpoint's \
             weights are not all numbers",
            evaluation.nan_predictions, evaluation.samples
        );
    }
    let report = EvalReport {
        checkpoint: args.checkpoint.display().to_string(),
        images: loader.data.len(),
        top1,
        top5,
        images_per_second: loader.data.len() as f64 / start.elapsed().as_secs_f64(),
    };
    if let Some(log) = &store.energy {
        let layers = log.report(&ctx, report.images)?;
        let binary_ops: f64 = layers
            .iter()
            .filter(|l| l.binary_weights)
            .map(|l| l.macs)
            .sum();
        let float_ops: f64 = layers
            .iter()
            .filter(|l| !l.binary_weights)
            .map(|l| l.macs)
            .sum();
        let size = param_counts(&cfg);
        let (sops, macs, uj) = layers.iter().fold((0.0, 0.0, 0.0), |a, l| {
            if l.spike_driven {
                (a.0 + l.sops, a.1, a.2 + l.energy_uj)
            } else {
                (a.0, a.1 + l.macs, a.2 + l.energy_uj)
            }
        });
        if args.json {
            for l in &layers {
                print_json(l)?;
            }
            print_json(
                &serde_json::json!({"total_sops": sops, "total_float_macs": macs, "energy_uj": uj}),
            )?;
        } else {
            println!(
                "{:<36} {:>8} {:>14} {:>14} {:>10}",
                "layer (per image)", "rate", "MACs", "SOPs", "energy uJ"
            );
            for l in &layers {
                println!(
                    "{:<36} {:>8} {:>14.0} {:>14} {:>10.3}",
                    l.layer,
                    if l.spike_driven {
                        format!("{:.4}", l.firing_rate)
                    } else {
                        "real".into()
                    },
                    l.macs,
                    if l.spike_driven {
                        format!("{:.0}", l.sops)
                    } else {
                        "-".into()
                    },
                    l.energy_uj
                );
            }
            println!(
                "total: {:.3} M SOPs (0.9 pJ each), {:.3} M float MACs (4.6 pJ each), {:.3} uJ per image \
                 (conv and linear layers and the attention products Q K^T, A V)",
                sops / 1e6,
                macs / 1e6,
                uj
            );
            println!(
                "operations per image: {:.3} M with 1-bit weights, {:.3} M with float weights; \
                 model size {:.2} MB fp32, {:.2} MB packed",
                binary_ops / 1e6,
                float_ops / 1e6,
                size.fp32_bytes as f64 / 1e6,
                size.packed_bytes as f64 / 1e6
            );
        }
    }
    if args.json {
        print_json(&report)?;
    } else {
        println!(
            "{}: top-1 {:.2}%, top-5 {:.2}% on {} images, {:.1} images/s",
            report.checkpoint,
            100.0 * top1,
            100.0 * top5,
            report.images,
            report.images_per_second
        );
    }
    Ok(())
}
