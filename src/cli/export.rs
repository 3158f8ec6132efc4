//! `bitspike export --packed OUT`: a deploy checkpoint with every binary weight stored as
//! packed sign bits (u32 words, the packing described in its metadata), about 1/32 of the
//! fp32 size for the binary layers; `infer` and `eval` load it and give the same logits.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::{print_json, GpuArgs, ModelArgs};
use bitspike::nn::checkpoint::CONFIG_KEY;
use bitspike::nn::limits::Run;
use bitspike::nn::{init_state, param_counts, ParamStore, StateDict};

#[derive(Args)]
pub struct ExportArgs {
    #[command(flatten)]
    gpu: GpuArgs,
    /// The checkpoint to export; without it, --model exports a fresh initialisation.
    #[arg(long, alias = "weights")]
    checkpoint: Option<PathBuf>,
    #[command(flatten)]
    model: ModelArgs,
    /// Where to write the packed checkpoint.
    #[arg(long)]
    packed: PathBuf,
    /// Seed of a fresh initialisation.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long)]
    json: bool,
}

pub fn run(args: ExportArgs) -> anyhow::Result<()> {
    let ctx = args.gpu.open()?;
    let (cfg, source) = match &args.checkpoint {
        Some(path) => {
            let sd = StateDict::read(path)?;
            let cfg = match args.model.config()? {
                Some(c) => c,
                None => sd.config(path)?.with_context(|| {
                    format!(
                        "{} carries no model config: pass --model PRESET",
                        path.display()
                    )
                })?,
            };
            ctx.check_run(&cfg, Run::Params)?;
            sd.check(&cfg, path)?;
            (cfg, sd)
        }
        None => {
            let cfg = args
                .model
                .config()?
                .context("pass --checkpoint FILE, or --model PRESET for a fresh model")?;
            ctx.check_run(&cfg, Run::Params)?;
            let sd = init_state(&cfg, args.seed);
            (cfg, sd)
        }
    };
    let store = ParamStore::new(&ctx, &cfg, &source)?;
    let mut out = store.to_state_dict(&ctx)?;
    for (name, packed) in store.packed_binary(&ctx)? {
        out.tensors.remove(&name);
        out.packed.insert(name, packed);
    }
    // Keep what inference needs from the source: normalization and class names.
    for (k, v) in &source.metadata {
        if k.starts_with("data.") {
            out.metadata.insert(k.clone(), v.clone());
        }
    }
    out.metadata.entry(CONFIG_KEY.into()).or_default();
    out.write(&args.packed)?;
    let bytes = std::fs::metadata(&args.packed)
        .with_context(|| format!("cannot stat {}", args.packed.display()))?
        .len();
    let counts = param_counts(&cfg);
    if args.json {
        print_json(&serde_json::json!({
            "packed": args.packed.display().to_string(),
            "bytes": bytes,
            "fp32_bytes": counts.fp32_bytes,
            "binary_tensors": out.packed.len(),
        }))?;
    } else {
        println!(
            "{}: {:.2} MB ({} binary weights packed; fp32 would be {:.2} MB)",
            args.packed.display(),
            bytes as f64 / 1e6,
            out.packed.len(),
            counts.fp32_bytes as f64 / 1e6
        );
    }
    Ok(())
}
