//! `bitspike prune`: QP-SNN's structured pruning of a spiking CNN checkpoint (see
//! `nn::prune`); fine-tune the result with `bitspike train --weights FILE`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::{print_json, GpuArgs};
use bitspike::data::{self, Augment, BatchLoader};
use bitspike::nn::limits::Run;
use bitspike::nn::prune::{prune_state, score_kernels};
use bitspike::nn::{param_counts, ParamStore, StateDict};

#[derive(Args)]
pub struct PruneArgs {
    #[command(flatten)]
    gpu: GpuArgs,
    /// A bitspike checkpoint of a spiking CNN (its config in the metadata).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Dataset directory: the first training images score the kernels.
    #[arg(long, default_value = "assets/mnist-mini")]
    data: PathBuf,
    /// Fraction of each prunable layer's kernels to remove.
    #[arg(long, value_parser = super::float::fraction_f64)]
    ratio: f64,
    /// Batches of training images to average the rank scores over.
    #[arg(long, default_value_t = 4, value_parser = super::int::positive)]
    batches: usize,
    #[arg(long, default_value_t = 32, value_parser = super::int::positive)]
    batch_size: usize,
    /// The pruned checkpoint (default: CHECKPOINT with `-pruned` added to its name).
    #[arg(long)]
    out: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

#[derive(serde::Serialize)]
struct LayerReport {
    layer: String,
    kernels: usize,
    kept: usize,
    mean_rank: f64,
}

#[derive(serde::Serialize)]
struct PruneReport {
    out: String,
    layers: Vec<LayerReport>,
    parameters_before: usize,
    parameters_after: usize,
    bytes_before: usize,
    bytes_after: usize,
}

pub fn run(args: PruneArgs) -> anyhow::Result<()> {
    let sd = StateDict::read(&args.checkpoint)?;
    let cfg = sd.config(&args.checkpoint)?.with_context(|| {
        format!(
            "{} carries no model config (prune needs a bitspike checkpoint)",
            args.checkpoint.display()
        )
    })?;
    sd.check(&cfg, &args.checkpoint)?;
    if !cfg.is_cnn() {
        anyhow::bail!(
            "prune works on the spiking CNN presets, not {:?}",
            cfg.kind()
        );
    }
    let ctx = args.gpu.open()?;
    ctx.check_run(
        &cfg,
        Run::Forward {
            batch: args.batch_size,
        },
    )?;
    let splits = data::open(&args.data)?;
    let train = splits.train;
    if (train.channels(), train.height()) != (cfg.in_channels, cfg.image_size) {
        anyhow::bail!(
            "{} holds {}x{} images, the model expects {}x{}",
            args.data.display(),
            train.channels(),
            train.height(),
            cfg.in_channels,
            cfg.image_size
        );
    }
    let norm = match sd.metadata.get("data.normalization") {
        Some(json) => serde_json::from_str(json)
            .with_context(|| format!("{}: bad data.normalization", args.checkpoint.display()))?,
        None => train.normalization()?,
    };
    let loader = BatchLoader {
        data: std::sync::Arc::new(train),
        batch_size: args.batch_size,
        shuffle: false,
        augment: Augment::default(),
        mixup: None,
        norm,
        seed: 0,
        prefetch: 1,
        workers: 1,
        shard: bitspike::data::Shard::WHOLE,
    };
    let mut store = ParamStore::new(&ctx, &cfg, &sd)?;
    let (c, s) = (cfg.in_channels, cfg.image_size);
    let n = loader.data.len().min(args.batches * args.batch_size);
    let mut batches = Vec::new();
    for start in (0..n).step_by(args.batch_size) {
        let idx: Vec<usize> = (start..(start + args.batch_size).min(n)).collect();
        let batch = loader.make_batch(&idx, 0, 0)?;
        batches.push(ctx.upload_f32(&batch.images, &[idx.len(), c, s, s])?);
    }
    let scores = score_kernels(&ctx, &cfg, &mut store, &batches)?;
    let state = store.to_state_dict(&ctx)?;
    let (new_cfg, mut pruned) = prune_state(&cfg, &state, &scores, args.ratio)?;
    for key in ["data.normalization", "data.classes"] {
        if let Some(v) = sd.metadata.get(key) {
            pruned.metadata.insert(key.into(), v.clone());
        }
    }
    let out = args.out.clone().unwrap_or_else(|| {
        let stem = args
            .checkpoint
            .file_stem()
            .map_or("model".into(), |s| s.to_string_lossy().to_string());
        args.checkpoint
            .with_file_name(format!("{stem}-pruned.safetensors"))
    });
    pruned.write(&out)?;
    let layers = bitspike::nn::prune::prunable(&cfg)
        .into_iter()
        .zip(&scores)
        .map(|(l, s)| LayerReport {
            kept: new_cfg.cnn().map_or(0, |c| c.channels[l.index]),
            layer: l.conv,
            kernels: l.c_out,
            mean_rank: s.iter().sum::<f64>() / s.len().max(1) as f64,
        })
        .collect();
    let (before, after) = (param_counts(&cfg), param_counts(&new_cfg));
    let report = PruneReport {
        out: out.display().to_string(),
        layers,
        parameters_before: before.total,
        parameters_after: after.total,
        bytes_before: before.packed_bytes,
        bytes_after: after.packed_bytes,
    };
    if args.json {
        print_json(&report)?;
    } else {
        for l in &report.layers {
            println!(
                "{:<28} {:>4} -> {:>4} kernels (mean rank {:.2})",
                l.layer, l.kernels, l.kept, l.mean_rank
            );
        }
        println!(
            "parameters {} -> {}, stored {} -> {} bytes; wrote {}",
            report.parameters_before,
            report.parameters_after,
            report.bytes_before,
            report.bytes_after,
            report.out
        );
    }
    Ok(())
}
