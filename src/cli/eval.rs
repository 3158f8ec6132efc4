//! `bitspike eval`: accuracy (top-1, top-5) and throughput of a checkpoint on a dataset's
//! test split.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Args;

use super::{print_json, EventArgs, GpuArgs, LoaderArgs, ModelArgs};
use bitspike::data;
use bitspike::nn::energy::LayerEnergy;
use bitspike::nn::{param_counts, ModelConfig};
use bitspike::{Pipeline, PipelineOptions};

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
    /// With --energy: draw each layer's firing rate and energy as bars into this PNG.
    #[arg(long, requires = "energy", value_name = "OUT.png")]
    plot: Option<PathBuf>,
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

pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    let options = PipelineOptions {
        adapter: args.gpu.choice(),
        model: args.model.config()?,
        normalization: None,
        batch_size: args.batch_size,
    };
    let mut pipeline = Pipeline::load_with(&args.checkpoint, &options)?;
    let cfg = pipeline.config().clone();
    let options = data::OpenOptions {
        events: args.events.options(cfg.time_steps, pipeline.frames())?,
        folders: args.loader.folders(Some(cfg.image_size)),
    };
    let splits = data::open_with_options(&args.data, &options)?;
    splits.check_classes(cfg.classes, &args.data)?;
    if splits.test.is_empty() {
        anyhow::bail!("{}: the test split is empty", args.data.display());
    }
    // The training statistics stored in the checkpoint, else the data's own.
    if pipeline.normalization().is_none() {
        pipeline.set_normalization(splits.train.normalization()?)?;
    }
    let start = Instant::now();
    let (evaluation, layers) = pipeline
        .evaluate(splits.test, args.loader.workers, args.energy)
        .with_context(|| format!("evaluating on {}", args.data.display()))?;
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
        images: evaluation.samples,
        top1,
        top5,
        images_per_second: evaluation.samples as f64 / start.elapsed().as_secs_f64(),
    };
    if let Some(layers) = &layers {
        print_energy(layers, &cfg, args.json)?;
        if let Some(out) = &args.plot {
            bitspike::plot::energy_bars(layers, out)?;
            eprintln!("wrote {}", out.display());
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

/// The energy report: one line (or JSON object) per layer, then the totals.
fn print_energy(layers: &[LayerEnergy], cfg: &ModelConfig, json: bool) -> anyhow::Result<()> {
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
    let size = param_counts(cfg);
    let (sops, macs, uj) = layers.iter().fold((0.0, 0.0, 0.0), |a, l| {
        if l.spike_driven {
            (a.0 + l.sops, a.1, a.2 + l.energy_uj)
        } else {
            (a.0, a.1 + l.macs, a.2 + l.energy_uj)
        }
    });
    if json {
        for l in layers {
            print_json(l)?;
        }
        return print_json(
            &serde_json::json!({"total_sops": sops, "total_float_macs": macs, "energy_uj": uj}),
        );
    }
    println!(
        "{:<36} {:>8} {:>14} {:>14} {:>10}",
        "layer (per image)", "rate", "MACs", "SOPs", "energy uJ"
    );
    for l in layers {
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
    Ok(())
}
