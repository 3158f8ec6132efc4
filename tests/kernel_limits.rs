//! What each kernel asks of an adapter, checked against wgpu's `Limits::default()` (what
//! every WebGPU implementation offers) and `Limits::downlevel_defaults()` (what wgpu
//! offers on GLES 3.1-class adapters): storage and uniform buffers bound, workgroup size
//! and invocations, and workgroup memory, for every entry point with every override set
//! the host dispatches it with. A kernel over a limit fails here unless `OVER_LIMITS`
//! says what the host does on an adapter that lacks it (docs/portability.md).
//!
//! `cargo test --test kernel_limits -- --nocapture` prints the table.

mod shader_overrides;

use bitspike::gpu::Shader;
use naga::valid::ModuleInfo;
use naga::{AddressSpace, Module};
use shader_overrides::{describe, dispatched_sets, parse, pipeline_module};

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
/// stage. None has a variant with fewer bindings, and the context requests the adapter's
/// own limits, so on such an adapter its bind group layout fails wgpu's validation when
/// the pipeline is first built.
const fn over_downlevel_storage(kernel: &'static str) -> OverLimit {
    OverLimit {
        kernel,
        baseline: Baseline::Downlevel,
        limit: STORAGE,
        host: "Error::Gpu in the kernel's pipeline label (file::entry), with wgpu's \
               message naming the limit and the count",
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

/// What one pipeline (an entry point with one override set) asks of the adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Needs {
    storage_buffers: u32,
    uniform_buffers: u32,
    workgroup_size: [u32; 3],
    workgroup_storage_bytes: u32,
}

impl Needs {
    /// The needs of `entry`, the single entry point of the processed `module`.
    fn of(module: &Module, info: &ModuleInfo, entry: &str) -> Needs {
        let index = module
            .entry_points
            .iter()
            .position(|e| e.name == entry)
            .expect("the processed module keeps its entry point");
        let uses = info.get_entry_point(index);
        let mut needs = Needs {
            workgroup_size: module.entry_points[index].workgroup_size,
            ..Needs::default()
        };
        for (handle, global) in module.global_variables.iter() {
            if uses[handle].is_empty() {
                continue;
            }
            match global.space {
                AddressSpace::Storage { .. } => needs.storage_buffers += 1,
                AddressSpace::Uniform => needs.uniform_buffers += 1,
                // WebGPU counts each workgroup variable rounded up to 16 bytes.
                AddressSpace::WorkGroup => {
                    let bytes = module.types[global.ty].inner.size(module.to_ctx());
                    needs.workgroup_storage_bytes += bytes.next_multiple_of(16);
                }
                _ => {}
            }
        }
        needs
    }

    /// Raise each need of `self` to `other`'s where that is larger.
    fn widen(&mut self, other: &Needs) {
        self.storage_buffers = self.storage_buffers.max(other.storage_buffers);
        self.uniform_buffers = self.uniform_buffers.max(other.uniform_buffers);
        self.workgroup_storage_bytes = self
            .workgroup_storage_bytes
            .max(other.workgroup_storage_bytes);
        if other.invocations() > self.invocations() {
            self.workgroup_size = other.workgroup_size;
        }
    }

    fn invocations(&self) -> u32 {
        self.workgroup_size.iter().product()
    }

    /// The names of the limits `self` exceeds.
    fn over(&self, limits: &wgpu::Limits) -> Vec<&'static str> {
        let checks = [
            (
                self.storage_buffers > limits.max_storage_buffers_per_shader_stage,
                STORAGE,
            ),
            (
                self.uniform_buffers > limits.max_uniform_buffers_per_shader_stage,
                "max_uniform_buffers_per_shader_stage",
            ),
            (
                self.workgroup_storage_bytes > limits.max_compute_workgroup_storage_size,
                "max_compute_workgroup_storage_size",
            ),
            (
                self.invocations() > limits.max_compute_invocations_per_workgroup,
                "max_compute_invocations_per_workgroup",
            ),
            (
                self.workgroup_size[0] > limits.max_compute_workgroup_size_x,
                "max_compute_workgroup_size_x",
            ),
            (
                self.workgroup_size[1] > limits.max_compute_workgroup_size_y,
                "max_compute_workgroup_size_y",
            ),
            (
                self.workgroup_size[2] > limits.max_compute_workgroup_size_z,
                "max_compute_workgroup_size_z",
            ),
        ];
        checks
            .into_iter()
            .filter(|(over, _)| *over)
            .map(|(_, name)| name)
            .collect()
    }
}

#[test]
fn every_kernel_fits_the_default_limits_or_is_documented() {
    let mut undocumented = Vec::new();
    let mut exceeded = Vec::new();
    println!(
        "{:<52} {:>7} {:>7} {:>13} {:>10}  over",
        "kernel", "storage", "uniform", "workgroup", "wg bytes"
    );
    for &shader in Shader::ALL {
        let (module, info) = parse(shader);
        for entry in &module.entry_points {
            let kernel = format!("{}::{}", shader.file_name(), entry.name);
            let mut over: Vec<(Baseline, &str)> = Vec::new();
            // The most the entry point asks for over all its override sets, per limit.
            let mut widest = Needs::default();
            for overrides in dispatched_sets(shader, &module) {
                let (pipeline, pipeline_info) =
                    pipeline_module(&module, &info, &entry.name, &overrides)
                        .unwrap_or_else(|e| panic!("{kernel} ({}): {e}", describe(&overrides)));
                let needs = Needs::of(&pipeline, &pipeline_info, &entry.name);
                widest.widen(&needs);
                for baseline in Baseline::ALL {
                    for limit in needs.over(&baseline.limits()) {
                        if !over.contains(&(baseline, limit)) {
                            over.push((baseline, limit));
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
