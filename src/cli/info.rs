//! `bitspike info`: every adapter with its backend, type, driver and limits, the kernel
//! variants bitspike runs there and the kernels over its limits.

use clap::Args;

use super::{print_json, GpuArgs, ModelArgs};
use bitspike::gpu::{list_adapters, AdapterReport, KernelPlan};
use bitspike::nn::{param_counts, ModelConfig};
use bitspike::Error;

#[derive(Args)]
pub struct InfoArgs {
    #[command(flatten)]
    gpu: GpuArgs,
    /// Describe this model (config, parameter counts, sizes) instead of the adapters;
    /// needs no GPU.
    #[command(flatten)]
    model: ModelArgs,
    /// One JSON object per adapter (or for the model), one per line.
    #[arg(long)]
    json: bool,
}

fn describe_model(cfg: &ModelConfig, json: bool) -> anyhow::Result<()> {
    let counts = param_counts(cfg);
    if json {
        return print_json(&serde_json::json!({ "config": cfg, "params": counts }));
    }
    let m = |n: usize| format!("{:.2} M", n as f64 / 1e6);
    let mb = |b: usize| format!("{:.2} MB", b as f64 / 1e6);
    if let Some(cnn) = cfg.cnn() {
        println!(
            "{:?}: conv widths {:?}, max-pool after convs {:?}, T {}, {}x{}x{} input, {} classes",
            cfg.kind(),
            cnn.channels,
            cnn.pool_after,
            cfg.time_steps,
            cfg.in_channels,
            cfg.image_size,
            cfg.image_size,
            cfg.classes
        );
        println!(
            "weights {:?} ({} bits when quantized)",
            cfg.weights, cfg.weight_bits
        );
    } else if let Some(t) = cfg.transformer() {
        println!(
            "{:?}: {} blocks, D {}, {} heads, MLP {}, T {}, {}x{}x{} input, {} tokens, {} classes",
            cfg.kind(),
            t.depth,
            t.dim,
            t.heads,
            t.hidden(),
            cfg.time_steps,
            cfg.in_channels,
            cfg.image_size,
            cfg.image_size,
            t.tokens(cfg.image_size),
            cfg.classes
        );
        println!("attention {:?}, weights {:?}", t.attention, cfg.weights);
    }
    println!(
        "parameters: {} total, {} binary, {} float ({} parameters)",
        m(counts.total),
        m(counts.binary),
        m(counts.float),
        counts.total
    );
    println!(
        "size: {} as fp32, {} packed (binary and b-bit weights as bits)",
        mb(counts.fp32_bytes),
        mb(counts.packed_bytes)
    );
    Ok(())
}

fn mib(bytes: u64) -> String {
    format!("{} MiB", bytes >> 20)
}

pub fn run(args: InfoArgs) -> anyhow::Result<()> {
    if let Some(cfg) = args.model.config()? {
        return describe_model(&cfg, args.json);
    }
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
    let plans = KernelPlan::of_each(&adapters, choice.portable_kernels)?;
    for (a, plan) in adapters.iter().zip(&plans) {
        if args.json {
            print_json(&AdapterInfo { adapter: a, plan })?;
        } else {
            describe_adapter(a);
            describe_plan(plan);
        }
    }
    Ok(())
}

/// One line of `info --json`: the adapter and its kernel plan side by side.
#[derive(serde::Serialize)]
struct AdapterInfo<'a> {
    #[serde(flatten)]
    adapter: &'a AdapterReport,
    #[serde(flatten)]
    plan: &'a KernelPlan,
}

fn describe_adapter(a: &AdapterReport) {
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
        "  storage buffers / stage:  {}",
        a.max_storage_buffers_per_shader_stage
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

fn describe_plan(plan: &KernelPlan) {
    match plan.portable_because {
        Some(why) => println!("  kernels:                  portable ({why})"),
        None => println!("  kernels:                  subgroup"),
    }
    println!(
        "  f32 matmul:               {}",
        if plan.f32_matmul == "tiled" {
            "workgroup-memory tiles on large outputs (GPU)"
        } else {
            "register blocking (CPU driver)"
        }
    );
    if plan.over_limits.is_empty() {
        println!("  kernels over its limits:  none");
        return;
    }
    println!("  kernels over its limits:  {}", plan.over_limits.len());
    for o in &plan.over_limits {
        println!(
            "    {}: {}: needs {}, has {}; {}",
            o.kernel, o.limit, o.need, o.have, o.host
        );
    }
}
