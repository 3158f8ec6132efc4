//! What each kernel asks of an adapter, checked against wgpu's `Limits::default()` (what
//! every WebGPU implementation offers) and `Limits::downlevel_defaults()` (what wgpu
//! offers on GLES 3.1-class adapters): storage and uniform buffers bound, workgroup size
//! and invocations, and workgroup memory, for every entry point with every override set
//! the host dispatches it with. A kernel over a limit fails here unless `OVER_LIMITS`
//! says what the host does on an adapter that lacks it (docs/portability.md). The needs
//! are `bitspike::gpu::KernelNeeds`, which the host checks before it builds a pipeline
//! and `bitspike info` reports per adapter.
//!
//! `cargo test --test kernel_limits -- --nocapture` prints the table.

mod shader_overrides;

use bitspike::gpu::{KernelNeeds, Shader};
use shader_overrides::{describe, dispatched_sets, parse};

/// The two sets of limits a kernel is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Baseline {
    WebGpu,
    Downlevel,
}

impl Baseline {
    const ALL: [Baseline; 2] = [Baseline::WebGpu, Baseline::Downlevel];

    fn limits(self) -> wgpu::Limits {
        match self {
            Baseline::WebGpu => wgpu::Limits::default(),
            Baseline::Downlevel => wgpu::Limits::downlevel_defaults(),
        }
    }
}

/// A kernel over one of a baseline's limits, with what the host does on an adapter
/// that lacks it.
struct OverLimit {
    kernel: &'static str,
    baseline: Baseline,
    limit: &'static str,
    host: &'static str,
}

const STORAGE: &str = "max_storage_buffers_per_shader_stage";

/// A kernel binding 5 or 6 storage buffers, where GLES 3.1 guarantees 4 per compute
/// stage. None has a variant with fewer bindings, so on such an adapter the host's check
/// before building its pipeline fails.
const fn over_downlevel_storage(kernel: &'static str) -> OverLimit {
    OverLimit {
        kernel,
        baseline: Baseline::Downlevel,
        limit: STORAGE,
        host: "Error::KernelOverLimit when its pipeline is first built, naming the kernel \
               (file::entry), the limit, its need and the adapter's value",
    }
}

/// Every kernel over a baseline's limits (docs/portability.md).
const OVER_LIMITS: &[OverLimit] = &[
    over_downlevel_storage("lif.wgsl::qsnn_step"),
    over_downlevel_storage("optim.wgsl::adamw"),
    over_downlevel_storage("norm.wgsl::bn_stats_finish"),
    over_downlevel_storage("norm.wgsl::bn_affine"),
    over_downlevel_storage("norm.wgsl::bn_backward_finish"),
    over_downlevel_storage("binarize.wgsl::rescaw"),
    over_downlevel_storage("attention.wgsl::score_lif_backward"),
    over_downlevel_storage("attention.wgsl::score_lif_backward_vec4"),
    over_downlevel_storage("attention.wgsl::score_threshold_map"),
    over_downlevel_storage("attention.wgsl::bits_product"),
    over_downlevel_storage("attention.wgsl::bits_product_vec4"),
    over_downlevel_storage("reversible.wgsl::couple"),
    over_downlevel_storage("reversible.wgsl::uncouple"),
];

#[test]
fn every_kernel_fits_the_default_limits_or_is_documented() {
    let mut undocumented = Vec::new();
    let mut exceeded = Vec::new();
    println!(
        "{:<52} {:>7} {:>7} {:>13} {:>10}  over",
        "kernel", "storage", "uniform", "workgroup", "wg bytes"
    );
    for &shader in Shader::ALL {
        let parsed = parse(shader);
        let module = &parsed.module;
        for entry in &module.entry_points {
            let kernel = format!("{}::{}", shader.file_name(), entry.name);
            let mut over: Vec<(Baseline, &str)> = Vec::new();
            // The most the entry point asks for over all its override sets, per limit.
            let mut widest = KernelNeeds::default();
            for overrides in dispatched_sets(shader, module) {
                let needs = KernelNeeds::of_pipeline(shader, &entry.name, &overrides)
                    .unwrap_or_else(|e| panic!("{kernel} ({}): {e}", describe(&overrides)));
                widest.widen(&needs);
                for baseline in Baseline::ALL {
                    for shortfall in needs.shortfalls(&baseline.limits()) {
                        if !over.contains(&(baseline, shortfall.limit)) {
                            over.push((baseline, shortfall.limit));
                        }
                    }
                }
            }
            let size = widest.workgroup_size.map(|s| s.to_string()).join("x");
            let over_text: Vec<String> = over
                .iter()
                .map(|(baseline, limit)| format!("{baseline:?}: {limit}"))
                .collect();
            println!(
                "{kernel:<52} {:>7} {:>7} {size:>13} {:>10}  {}",
                widest.storage_buffers,
                widest.uniform_buffers,
                widest.workgroup_storage_bytes,
                over_text.join(", ")
            );
            for (baseline, limit) in over {
                exceeded.push((kernel.clone(), baseline, limit));
                match OVER_LIMITS
                    .iter()
                    .find(|o| o.kernel == kernel && o.baseline == baseline && o.limit == limit)
                {
                    Some(documented) => println!("{:<52} host: {}", "", documented.host),
                    None => undocumented.push(format!("{kernel}: over {baseline:?} {limit}")),
                }
            }
        }
    }
    let stale: Vec<String> = OVER_LIMITS
        .iter()
        .filter(|o| {
            !exceeded.iter().any(|(kernel, baseline, limit)| {
                kernel == o.kernel && *baseline == o.baseline && *limit == o.limit
            })
        })
        .map(|o| format!("{}: {:?} {}", o.kernel, o.baseline, o.limit))
        .collect();
    assert!(
        undocumented.is_empty(),
        "kernels over the default limits without a word on what the host does \
         (add them to OVER_LIMITS and docs/portability.md):\n{}",
        undocumented.join("\n")
    );
    assert!(
        stale.is_empty(),
        "OVER_LIMITS lists kernels that now fit:\n{}",
        stale.join("\n")
    );
}
