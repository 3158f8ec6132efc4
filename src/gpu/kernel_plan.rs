//! Which kernels the host runs on an adapter, decided from its description alone (no
//! device is opened): the subgroup or the portable variants, tiled or register-blocked
//! f32 matmuls, and every kernel whose needs exceed the adapter's limits, with what the
//! host does there. `bitspike info` prints it per adapter.

use super::context::AdapterReport;
use super::kernel_needs::EntryNeeds;
use crate::error::Result;

/// The kernel variants an adapter gets and the kernels over its limits.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KernelPlan {
    /// `subgroup` or `portable`.
    pub kernels: &'static str,
    /// Why the portable kernels, when they run.
    pub portable_because: Option<&'static str>,
    /// `tiled` (workgroup-memory tiles on large outputs, for GPUs) or `registers`
    /// (register blocking, for CPU drivers).
    pub f32_matmul: &'static str,
    /// The kernels over this adapter's limits, and what the host does about each.
    pub over_limits: Vec<OverLimit>,
}

/// A kernel whose need exceeds the adapter: the limit (a `wgpu::Limits` field, or
/// `subgroups`), the need, the adapter's value, and what the host does about it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OverLimit {
    /// The kernel, `file::entry`.
    pub kernel: String,
    /// The `wgpu::Limits` field, or `subgroups`.
    pub limit: String,
    /// What the kernel needs.
    pub need: String,
    /// What the adapter has.
    pub have: String,
    /// What the host does: the portable variant it runs, or the error it returns.
    pub host: String,
}

impl KernelPlan {
    /// The plan for `adapter` over `kernels` (`kernel_needs::every_entry_point`), with
    /// the portable kernels if `portable_requested`.
    pub fn of(adapter: &AdapterReport, kernels: &[EntryNeeds], portable_requested: bool) -> Self {
        let portable_because = adapter.portable_reason(portable_requested);
        let mut over_limits = Vec::new();
        for k in kernels {
            if let Some(portable) = k.shader.portable_variant() {
                if portable_because.is_some() {
                    // Never run here, so their other needs do not matter; a requested
                    // fallback is no limit.
                    if !portable_requested {
                        over_limits.push(OverLimit {
                            kernel: k.kernel(),
                            limit: "subgroups".into(),
                            need: "one fixed size of at least 8".into(),
                            have: if adapter.subgroups {
                                format!(
                                    "sizes {}..{}",
                                    adapter.subgroup_min_size, adapter.subgroup_max_size
                                )
                            } else {
                                "none".into()
                            },
                            host: format!("runs the portable {} instead", portable.file_name()),
                        });
                    }
                    continue;
                }
            }
            for s in k.needs.shortfalls(&adapter.limits) {
                over_limits.push(OverLimit {
                    kernel: k.kernel(),
                    limit: s.limit.into(),
                    need: s.need.to_string(),
                    have: s.have.to_string(),
                    host: "Error::KernelOverLimit when an op first needs it: no variant fits"
                        .into(),
                });
            }
        }
        Self {
            kernels: if portable_because.is_some() {
                "portable"
            } else {
                "subgroup"
            },
            portable_because,
            f32_matmul: if adapter.is_cpu() {
                "registers"
            } else {
                "tiled"
            },
            over_limits,
        }
    }

    /// The plan of every adapter in `adapters`, reading the kernels' needs once.
    pub fn of_each(adapters: &[AdapterReport], portable_requested: bool) -> Result<Vec<Self>> {
        let kernels = super::kernel_needs::every_entry_point()?;
        Ok(adapters
            .iter()
            .map(|a| Self::of(a, &kernels, portable_requested))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::kernel_needs::every_entry_point;

    /// A GPU adapter with `limits`, with or without subgroups of size 32.
    fn adapter(limits: wgpu::Limits, subgroups: bool) -> AdapterReport {
        AdapterReport {
            name: "test".into(),
            backend: "gl".into(),
            device_type: format!("{:?}", wgpu::DeviceType::DiscreteGpu),
            driver: String::new(),
            driver_info: String::new(),
            max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
            max_buffer_size: limits.max_buffer_size,
            max_compute_workgroup_storage_size: limits.max_compute_workgroup_storage_size,
            max_compute_invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
            max_compute_workgroups_per_dimension: limits.max_compute_workgroups_per_dimension,
            max_storage_buffers_per_shader_stage: limits.max_storage_buffers_per_shader_stage,
            subgroups,
            subgroup_min_size: 32,
            subgroup_max_size: 32,
            limits,
        }
    }

    #[test]
    fn a_gles_minimum_adapter_gets_portable_kernels_and_errors_for_the_wide_ones() {
        let kernels = every_entry_point().unwrap();
        let plan = KernelPlan::of(
            &adapter(wgpu::Limits::downlevel_defaults(), false),
            &kernels,
            false,
        );
        assert_eq!((plan.kernels, plan.f32_matmul), ("portable", "tiled"));
        let subgroup: Vec<&OverLimit> = plan
            .over_limits
            .iter()
            .filter(|o| o.limit == "subgroups")
            .collect();
        let subgroup_kernels = kernels
            .iter()
            .filter(|k| k.shader.portable_variant().is_some())
            .count();
        assert_eq!(subgroup.len(), subgroup_kernels);
        assert!(subgroup.iter().all(|o| o.host.contains("portable")));
        let storage: Vec<&OverLimit> = plan
            .over_limits
            .iter()
            .filter(|o| o.limit == "max_storage_buffers_per_shader_stage")
            .collect();
        assert_eq!(storage.len(), 13, "{storage:#?}");
        let finish = storage
            .iter()
            .find(|o| o.kernel == "norm.wgsl::bn_backward_finish")
            .expect("bn_backward_finish binds 6 storage buffers");
        assert_eq!((finish.need.as_str(), finish.have.as_str()), ("6", "4"));
        assert!(finish.host.contains("KernelOverLimit"));
        assert_eq!(plan.over_limits.len(), subgroup.len() + storage.len());
    }

    #[test]
    fn a_webgpu_adapter_with_subgroups_runs_every_kernel() {
        let kernels = every_entry_point().unwrap();
        let gpu = adapter(wgpu::Limits::default(), true);
        let plan = KernelPlan::of(&gpu, &kernels, false);
        assert_eq!(plan.kernels, "subgroup");
        assert!(plan.over_limits.is_empty(), "{:#?}", plan.over_limits);
        let portable = KernelPlan::of(&gpu, &kernels, true);
        assert_eq!(portable.kernels, "portable");
        assert!(
            portable.over_limits.is_empty(),
            "{:#?}",
            portable.over_limits
        );
    }
}
