//! Every entry point of every registered shader translates with naga to each backend wgpu
//! may run it on: MSL (Metal), HLSL shader model 6 (DX12), SPIR-V (Vulkan) and, for the
//! shaders without subgroup operations, GLSL ES 3.1 (GL / GLES). Each is translated with
//! every override set the host dispatches it with, since overrides size workgroups and
//! arrays. A shader that validates but that some backend rejects fails here, naming the
//! kernel, backend and overrides, instead of at pipeline creation on a user's adapter.
//!
//! `cargo test --test shaders_translate -- --nocapture` prints the count per backend.

mod shader_overrides;

use bitspike::gpu::Shader;
use naga::back::{glsl, hlsl, msl, spv};
use naga::proc::{BoundsCheckPolicies, BoundsCheckPolicy};
use naga::valid::{Capabilities, ModuleInfo, ValidationFlags, Validator};
use naga::{AddressSpace, Module, ShaderStage, StorageAccess};
use shader_overrides::{describe, dispatched_sets, parse};
use std::panic::AssertUnwindSafe;

/// The host's shader runtime checks (gpu::kernels): bounds checks on, no loop bounding,
/// no zeroing of workgroup memory.
const BOUNDS_CHECKS: BoundsCheckPolicies = BoundsCheckPolicies {
    index: BoundsCheckPolicy::Restrict,
    buffer: BoundsCheckPolicy::Restrict,
    image_load: BoundsCheckPolicy::Restrict,
    binding_array: BoundsCheckPolicy::Unchecked,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Msl,
    Hlsl,
    Spirv,
    Glsl,
}

impl Backend {
    const ALL: [Backend; 4] = [Backend::Msl, Backend::Hlsl, Backend::Spirv, Backend::Glsl];

    fn name(self) -> &'static str {
        match self {
            Backend::Msl => "MSL",
            Backend::Hlsl => "HLSL SM 6.0",
            Backend::Spirv => "SPIR-V",
            Backend::Glsl => "GLSL ES 3.1",
        }
    }

    /// GLSL ES has no subgroup operations: the host runs the portable kernels there.
    fn runs(self, subgroups: bool) -> bool {
        self != Backend::Glsl || !subgroups
    }

    /// What the backend's writer supports: wgpu validates a module against no more than
    /// this before translating it (Metal, for one, has no f64).
    fn capabilities(self) -> Capabilities {
        match self {
            Backend::Msl => msl::supported_capabilities(),
            Backend::Hlsl => hlsl::supported_capabilities(),
            Backend::Spirv => spv::supported_capabilities(),
            Backend::Glsl => glsl::supported_capabilities(),
        }
    }

    /// Validate `module` for this backend, then translate its one entry point `entry`. A
    /// writer's panic is an error too, so that it names the kernel like any other.
    fn translate(self, module: &Module, entry: &str, subgroups: bool) -> Result<(), String> {
        let info = Validator::new(ValidationFlags::all(), self.capabilities())
            .validate(module)
            .map_err(|e| format!("validation: {}", error_chain(e.as_inner())))?;
        let write = || match self {
            Backend::Msl => to_msl(module, &info, entry, subgroups),
            Backend::Hlsl => to_hlsl(module, &info, entry),
            Backend::Spirv => to_spirv(module, &info, entry, subgroups),
            Backend::Glsl => to_glsl(module, &info, entry),
        };
        std::panic::catch_unwind(AssertUnwindSafe(write)).unwrap_or_else(|panic| {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
            Err(format!("panicked: {}", message.unwrap_or_default()))
        })
    }
}

/// `error` and each of its sources, as "error: source: ...".
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text += &format!(": {e}");
        source = e.source();
    }
    text
}

/// Metal buffer slots as wgpu-hal assigns them for the host's single bind group: binding
/// i in slot i, then the buffer of runtime-array sizes that bounds checks read.
fn metal_resources(module: &Module) -> msl::EntryPointResources {
    let mut resources = msl::EntryPointResources::default();
    for (_, global) in module.global_variables.iter() {
        let Some(binding) = global.binding else {
            continue;
        };
        let mutable = match global.space {
            AddressSpace::Storage { access } => access.contains(StorageAccess::STORE),
            _ => false,
        };
        let slot = binding.binding as msl::Slot;
        resources.resources.insert(
            binding,
            msl::BindTarget {
                buffer: Some(slot),
                mutable,
                ..Default::default()
            },
        );
        resources.sizes_buffer = Some(resources.sizes_buffer.unwrap_or(0).max(slot + 1));
    }
    resources
}

fn to_msl(module: &Module, info: &ModuleInfo, entry: &str, subgroups: bool) -> Result<(), String> {
    let options = msl::Options {
        // SIMD-group functions need MSL 2.1 (macOS 10.14, iOS 12).
        lang_version: if subgroups { (2, 1) } else { (1, 2) },
        fake_missing_bindings: false,
        per_entry_point_map: [(entry.to_string(), metal_resources(module))].into(),
        bounds_check_policies: BOUNDS_CHECKS,
        zero_initialize_workgroup_memory: false,
        force_loop_bounding: false,
        ..Default::default()
    };
    let pipeline = msl::PipelineOptions {
        entry_point: Some((ShaderStage::Compute, entry.to_string())),
        ..Default::default()
    };
    msl::write_string(module, info, &options, &pipeline)
        .map(drop)
        .map_err(|e| format!("{e}"))
}

fn to_hlsl(module: &Module, info: &ModuleInfo, entry: &str) -> Result<(), String> {
    let options = hlsl::Options {
        // Wave intrinsics, which the subgroup kernels use, start at shader model 6.0.
        shader_model: hlsl::ShaderModel::V6_0,
        restrict_indexing: true,
        zero_initialize_workgroup_memory: false,
        force_loop_bounding: false,
        ..Default::default()
    };
    let pipeline = hlsl::PipelineOptions {
        entry_point: Some((ShaderStage::Compute, entry.to_string())),
    };
    let mut out = String::new();
    hlsl::Writer::new(&mut out, &options, &pipeline)
        .write(module, info, None)
        .map(drop)
        .map_err(|e| format!("{e}"))
}

fn to_spirv(
    module: &Module,
    info: &ModuleInfo,
    entry: &str,
    subgroups: bool,
) -> Result<(), String> {
    let options = spv::Options {
        // Group operations are core from SPIR-V 1.3 (Vulkan 1.1).
        lang_version: if subgroups { (1, 3) } else { (1, 0) },
        bounds_check_policies: BOUNDS_CHECKS,
        zero_initialize_workgroup_memory: spv::ZeroInitializeWorkgroupMemoryMode::None,
        force_loop_bounding: false,
        ..Default::default()
    };
    let pipeline = spv::PipelineOptions {
        shader_stage: ShaderStage::Compute,
        entry_point: entry.to_string(),
    };
    spv::write_vec(module, info, &options, Some(&pipeline))
        .map(drop)
        .map_err(|e| format!("{e}"))
}

fn to_glsl(module: &Module, info: &ModuleInfo, entry: &str) -> Result<(), String> {
    let options = glsl::Options {
        version: glsl::Version::Embedded {
            version: 310,
            is_webgl: false,
        },
        zero_initialize_workgroup_memory: false,
        ..Default::default()
    };
    let pipeline = glsl::PipelineOptions {
        shader_stage: ShaderStage::Compute,
        entry_point: entry.to_string(),
        multiview: None,
    };
    let mut out = String::new();
    glsl::Writer::new(&mut out, module, info, &options, &pipeline, BOUNDS_CHECKS)
        .and_then(|mut writer| writer.write())
        .map(drop)
        .map_err(|e| format!("{e}"))
}

#[test]
fn every_entry_point_translates_to_every_backend() {
    let mut failures = Vec::new();
    let mut entry_points = [0usize; Backend::ALL.len()];
    let mut translations = [0usize; Backend::ALL.len()];
    for &shader in Shader::ALL {
        let parsed = parse(shader);
        let subgroups = parsed.subgroups;
        for entry in &parsed.module.entry_points {
            let kernel = format!("{}::{}", shader.file_name(), entry.name);
            for overrides in dispatched_sets(shader, &parsed.module) {
                let pipeline = match parsed.pipeline(&entry.name, &overrides) {
                    Ok((pipeline, _)) => pipeline,
                    Err(e) => {
                        failures.push(format!(
                            "{kernel} ({}): overrides: {e}",
                            describe(&overrides)
                        ));
                        continue;
                    }
                };
                for (b, backend) in Backend::ALL.into_iter().enumerate() {
                    if !backend.runs(subgroups) {
                        continue;
                    }
                    translations[b] += 1;
                    if let Err(e) = backend.translate(&pipeline, &entry.name, subgroups) {
                        failures.push(format!(
                            "{kernel} -> {} ({}): {e}",
                            backend.name(),
                            describe(&overrides)
                        ));
                    }
                }
            }
            for (b, backend) in Backend::ALL.into_iter().enumerate() {
                entry_points[b] += usize::from(backend.runs(subgroups));
            }
        }
    }
    for (b, backend) in Backend::ALL.into_iter().enumerate() {
        println!(
            "{:<12} {:>3} entry points, {:>4} translations",
            backend.name(),
            entry_points[b],
            translations[b]
        );
    }
    assert!(
        failures.is_empty(),
        "{} translations failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
