//! Command-line interface: one file per subcommand.

mod bench;
mod info;

use clap::{Args, Parser, Subcommand};

use bitspike::gpu::{AdapterChoice, GpuContext};

#[derive(Parser)]
#[command(
    name = "bitspike",
    version,
    about = "Binary spiking transformers on any GPU"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List GPU adapters and the limits that matter to bitspike.
    Info(info::InfoArgs),
    /// Benchmark kernels: rates and ratios measured in one run.
    Bench(bench::BenchArgs),
}

/// Adapter selection, shared by every subcommand that opens a GPU.
#[derive(Args, Clone, Debug)]
pub struct GpuArgs {
    /// Backend: vulkan, metal, dx12 or gl.
    #[arg(long, env = "WGPU_BACKEND")]
    pub backend: Option<String>,
    /// Use the adapter whose name contains this (case-insensitive).
    #[arg(long = "adapter", env = "WGPU_ADAPTER_NAME")]
    pub adapter_name: Option<String>,
    /// Use only the portable kernels, not the faster subgroup variants.
    #[arg(long)]
    pub portable: bool,
}

impl GpuArgs {
    pub fn choice(&self) -> AdapterChoice {
        AdapterChoice {
            backend: self.backend.clone().filter(|s| !s.is_empty()),
            adapter_name: self.adapter_name.clone().filter(|s| !s.is_empty()),
            portable_kernels: self.portable,
        }
    }

    pub fn open(&self) -> anyhow::Result<GpuContext> {
        Ok(GpuContext::new(&self.choice())?)
    }
}

pub fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Info(args) => info::run(args),
        Command::Bench(args) => bench::run(args),
    }
}

/// Print one JSON object per line.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}
