//! `bitspike doctor`: is bitspike right on this GPU? One tiny forward and backward of
//! every model family against the CPU reference, pass or fail per check.

use clap::Args;

use super::{print_json, GpuArgs};

#[derive(Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    gpu: GpuArgs,
    /// One JSON object per check.
    #[arg(long)]
    json: bool,
}

#[derive(serde::Serialize)]
struct Adapter<'a> {
    adapter: &'a str,
    backend: String,
    kernels: &'static str,
}

pub fn run(args: DoctorArgs) -> anyhow::Result<()> {
    let ctx = args.gpu.open()?;
    let adapter = Adapter {
        adapter: &ctx.adapter.name,
        backend: ctx.adapter.backend.to_string(),
        kernels: if ctx.subgroup_kernels {
            "subgroup"
        } else {
            "portable"
        },
    };
    if args.json {
        print_json(&adapter)?;
    } else {
        println!(
            "adapter: {} ({}), {} kernels",
            adapter.adapter, adapter.backend, adapter.kernels
        );
    }
    let checks = bitspike::doctor::run(&ctx)?;
    for c in &checks {
        if args.json {
            print_json(c)?;
        } else {
            println!(
                "{} {}: worst error {:.2e} (tolerance {:.0e}){}",
                if c.passed { "pass" } else { "FAIL" },
                c.name,
                c.worst,
                c.tolerance,
                if c.passed {
                    String::new()
                } else {
                    format!(" at {}; kernels: {}", c.detail, c.kernels)
                }
            );
        }
    }
    let failed = checks.iter().filter(|c| !c.passed).count();
    if failed > 0 {
        anyhow::bail!(
            "{failed} of {} checks failed on {}: please report this output with `bitspike \
             info --json`",
            checks.len(),
            ctx.adapter.name
        );
    }
    if !args.json {
        println!("all {} checks passed", checks.len());
    }
    Ok(())
}
