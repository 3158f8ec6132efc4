//! Train a preset on a dataset from code, with a callback after every epoch:
//!
//!     cargo run --example train_custom -- assets/mnist-mini runs/custom 2
//!
//! (dataset directory, run directory, epochs). The run directory then holds
//! best.safetensors, which `examples/classify.rs` and `bitspike infer` read.

use bitspike::nn::ModelConfig;
use bitspike::train::EpochReport;
use bitspike::trainer::TrainSummary;
use bitspike::{TrainConfig, Trainer};

/// Train bestformer-2-64 as `args` (data, out, epochs) say; the summary and each
/// epoch's report.
pub fn run(args: &[String]) -> bitspike::Result<(TrainSummary, Vec<EpochReport>)> {
    let arg = |i: usize, default: &str| args.get(i).cloned().unwrap_or_else(|| default.into());
    let mut config = TrainConfig::new(
        ModelConfig::preset("bestformer-2-64")?,
        arg(0, "assets/mnist-mini"),
    );
    config.out = arg(1, "runs/custom").into();
    config.epochs = arg(2, "2").parse().map_err(|_| {
        bitspike::Error::InvalidArgument(format!("epochs '{}' is not a number", arg(2, "2")))
    })?;
    config.batch_size = 16;
    config.lr = 5e-3;
    // Starting over each time keeps the example repeatable.
    config.mode = bitspike::train::RunMode::Overwrite;

    let mut reports = Vec::new();
    let summary = Trainer::new(config)
        .on_epoch(|e| {
            println!(
                "epoch {}: loss {:.4}, train {:.2}%, test {:.2}%, lr {:.2e}",
                e.epoch,
                e.train_loss,
                100.0 * e.train_accuracy,
                100.0 * e.test_accuracy,
                e.lr
            );
            reports.push(e.clone());
        })
        .run()?;
    Ok((summary, reports))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok((summary, _)) => println!(
            "best test accuracy {:.2}%: {}",
            100.0 * summary.best_accuracy,
            summary.best_checkpoint.display()
        ),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
