//! `bitspike plot RUN_DIR...`: the training curves of one or several runs as a PNG.

use std::path::PathBuf;

use clap::Args;

use bitspike::plot::{training_curves, Run};
use bitspike::train::read_metrics;

#[derive(Args)]
pub struct PlotArgs {
    /// Run directories of `bitspike train` (each holds metrics.jsonl); several are drawn
    /// on one chart to compare.
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// The PNG to write (default: training_curves.png in the first run directory).
    #[arg(long, short)]
    out: Option<PathBuf>,
}

pub fn run(args: PlotArgs) -> anyhow::Result<()> {
    let runs = args
        .runs
        .iter()
        .map(|dir| {
            Ok(Run {
                name: dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| dir.display().to_string()),
                epochs: read_metrics(dir)?,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let out = args
        .out
        .unwrap_or_else(|| args.runs[0].join("training_curves.png"));
    training_curves(&runs, &out)?;
    println!("wrote {}", out.display());
    Ok(())
}
