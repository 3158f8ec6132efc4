//! `bitspike info`: every adapter with its backend, type, driver and limits.

use clap::Args;

use super::{print_json, GpuArgs};
use bitspike::gpu::list_adapters;
use bitspike::Error;

#[derive(Args)]
pub struct InfoArgs {
    #[command(flatten)]
    gpu: GpuArgs,
    /// One JSON object per adapter, one per line.
    #[arg(long)]
    json: bool,
}

fn mib(bytes: u64) -> String {
    format!("{} MiB", bytes >> 20)
}

pub fn run(args: InfoArgs) -> anyhow::Result<()> {
    let choice = args.gpu.choice();
    let adapters = list_adapters(&choice)?;
    if adapters.is_empty() {
        return Err(Error::NoAdapter {
            filter: match (&choice.backend, &choice.adapter_name) {
                (None, None) => String::new(),
                (b, n) => format!(
                    " matching{}{}",
                    b.as_ref()
                        .map(|b| format!(" backend '{b}'"))
                        .unwrap_or_default(),
                    n.as_ref()
                        .map(|n| format!(" name '{n}'"))
                        .unwrap_or_default()
                ),
            },
        }
        .into());
    }
    for a in &adapters {
        if args.json {
            print_json(a)?;
            continue;
        }
        println!("{} ({}, {})", a.name, a.backend, a.device_type);
        println!("  driver:                   {} {}", a.driver, a.driver_info);
        println!(
            "  max storage binding:      {}",
            mib(a.max_storage_buffer_binding_size)
        );
        println!("  max buffer:               {}", mib(a.max_buffer_size));
        println!(
            "  workgroup storage:        {} KiB",
            a.max_compute_workgroup_storage_size / 1024
        );
        println!(
            "  invocations / workgroup:  {}",
            a.max_compute_invocations_per_workgroup
        );
        println!(
            "  workgroups / dimension:   {}",
            a.max_compute_workgroups_per_dimension
        );
        println!(
            "  subgroups:                {}",
            if a.subgroups {
                format!(
                    "yes (size {}..{})",
                    a.subgroup_min_size, a.subgroup_max_size
                )
            } else {
                "no".into()
            }
        );
    }
    Ok(())
}
