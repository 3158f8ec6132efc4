//! What a kernel asks of an adapter, read from its shader with naga: the storage and
//! uniform buffers it uses, its workgroup size and its workgroup memory; and which of an
//! adapter's limits those exceed.

use naga::AddressSpace;

use super::dispatched_overrides::override_sets;
use super::naga_shaders::parsed;
use super::shaders::Shader;
use crate::error::{Error, Result};

/// What one pipeline (or, widened, an entry point over its override sets) asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct KernelNeeds {
    /// Storage buffers bound (per shader stage).
    pub storage_buffers: u32,
    /// Uniform buffers bound (per shader stage).
    pub uniform_buffers: u32,
    /// `@workgroup_size`, with its override constants applied.
    pub workgroup_size: [u32; 3],
    /// Bytes of `var<workgroup>`, each variable rounded up to 16 as WebGPU counts them.
    pub workgroup_storage_bytes: u32,
}

/// One entry point of a registered shader with the most it asks for.
#[derive(Debug, Clone)]
pub struct EntryNeeds {
    /// The shader file.
    pub shader: Shader,
    /// The entry point's name.
    pub entry: String,
    /// The most it asks for over its override sets.
    pub needs: KernelNeeds,
}

impl EntryNeeds {
    /// `file::entry`, as pipeline labels and errors name it.
    pub fn kernel(&self) -> String {
        format!("{}::{}", self.shader.file_name(), self.entry)
    }
}

/// Every entry point of every shader in `Shader::ALL`, widest over its override sets.
pub fn every_entry_point() -> Result<Vec<EntryNeeds>> {
    let mut all = Vec::new();
    for &shader in Shader::ALL {
        for entry in &parsed(shader)?.module.entry_points {
            all.push(EntryNeeds {
                shader,
                entry: entry.name.clone(),
                needs: KernelNeeds::widest(shader, &entry.name)?,
            });
        }
    }
    Ok(all)
}

/// One limit a kernel exceeds: the limit's name in `wgpu::Limits`, the kernel's need and
/// the adapter's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortfall {
    /// The `wgpu::Limits` field.
    pub limit: &'static str,
    /// What the kernel needs.
    pub need: u64,
    /// What the adapter allows.
    pub have: u64,
}

impl KernelNeeds {
    /// The needs of the pipeline of `shader`'s entry point `entry` with `constants`.
    pub fn of_pipeline(shader: Shader, entry: &str, constants: &[(&str, f64)]) -> Result<Self> {
        let kernel = || format!("{}::{entry}", shader.file_name());
        let (module, info) = parsed(shader)?
            .pipeline(entry, constants)
            .map_err(|message| Error::Shader {
                shader: kernel(),
                message,
            })?;
        let index = module
            .entry_points
            .iter()
            .position(|e| e.name == entry)
            .ok_or_else(|| Error::Shader {
                shader: kernel(),
                message: "no such entry point".into(),
            })?;
        let uses = info.get_entry_point(index);
        let mut needs = KernelNeeds {
            workgroup_size: module.entry_points[index].workgroup_size,
            ..KernelNeeds::default()
        };
        for (handle, global) in module.global_variables.iter() {
            if uses[handle].is_empty() {
                continue;
            }
            match global.space {
                AddressSpace::Storage { .. } => needs.storage_buffers += 1,
                AddressSpace::Uniform => needs.uniform_buffers += 1,
                AddressSpace::WorkGroup => {
                    let bytes = module.types[global.ty].inner.size(module.to_ctx());
                    needs.workgroup_storage_bytes += bytes.next_multiple_of(16);
                }
                _ => {}
            }
        }
        Ok(needs)
    }

    /// The most `entry` asks for, per limit, over the override sets the host dispatches
    /// `shader` with.
    pub fn widest(shader: Shader, entry: &str) -> Result<Self> {
        let mut widest = KernelNeeds::default();
        for overrides in override_sets(shader) {
            widest.widen(&Self::of_pipeline(shader, entry, &overrides)?);
        }
        Ok(widest)
    }

    /// Raise each need of `self` to `other`'s where that is larger.
    pub fn widen(&mut self, other: &KernelNeeds) {
        self.storage_buffers = self.storage_buffers.max(other.storage_buffers);
        self.uniform_buffers = self.uniform_buffers.max(other.uniform_buffers);
        self.workgroup_storage_bytes = self
            .workgroup_storage_bytes
            .max(other.workgroup_storage_bytes);
        if other.invocations() > self.invocations() {
            self.workgroup_size = other.workgroup_size;
        }
    }

    /// Invocations per workgroup.
    pub fn invocations(&self) -> u32 {
        self.workgroup_size.iter().product()
    }

    /// Each limit of `limits` that `self` exceeds.
    pub fn shortfalls(&self, limits: &wgpu::Limits) -> Vec<Shortfall> {
        let [x, y, z] = self.workgroup_size;
        [
            (
                "max_storage_buffers_per_shader_stage",
                self.storage_buffers,
                limits.max_storage_buffers_per_shader_stage,
            ),
            (
                "max_uniform_buffers_per_shader_stage",
                self.uniform_buffers,
                limits.max_uniform_buffers_per_shader_stage,
            ),
            (
                "max_compute_workgroup_storage_size",
                self.workgroup_storage_bytes,
                limits.max_compute_workgroup_storage_size,
            ),
            (
                "max_compute_invocations_per_workgroup",
                self.invocations(),
                limits.max_compute_invocations_per_workgroup,
            ),
            (
                "max_compute_workgroup_size_x",
                x,
                limits.max_compute_workgroup_size_x,
            ),
            (
                "max_compute_workgroup_size_y",
                y,
                limits.max_compute_workgroup_size_y,
            ),
            (
                "max_compute_workgroup_size_z",
                z,
                limits.max_compute_workgroup_size_z,
            ),
        ]
        .into_iter()
        .filter(|(_, need, have)| need > have)
        .map(|(limit, need, have)| Shortfall {
            limit,
            need: need.into(),
            have: have.into(),
        })
        .collect()
    }

    /// `Ok` when `self` fits `limits`, else the error naming `kernel`, the first limit it
    /// exceeds, the need and `adapter`'s value.
    pub fn check_fits(&self, kernel: &str, limits: &wgpu::Limits, adapter: &str) -> Result<()> {
        match self.shortfalls(limits).into_iter().next() {
            None => Ok(()),
            Some(s) => Err(Error::KernelOverLimit {
                kernel: kernel.to_string(),
                limit: s.limit,
                need: s.need,
                have: s.have,
                adapter: adapter.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kernel_over_a_limit_is_an_error_naming_kernel_limit_need_and_value() {
        let kernel = "norm.wgsl::bn_backward_finish";
        let needs = KernelNeeds::of_pipeline(Shader::Norm, "bn_backward_finish", &[]).unwrap();
        assert_eq!(needs.storage_buffers, 6);
        let gles = wgpu::Limits::downlevel_defaults();
        let err = needs
            .check_fits(kernel, &gles, "a GLES 3.1 adapter")
            .unwrap_err();
        let Error::KernelOverLimit {
            limit, need, have, ..
        } = &err
        else {
            panic!("expected KernelOverLimit, got {err:?}");
        };
        assert_eq!(
            (*limit, *need, *have),
            ("max_storage_buffers_per_shader_stage", 6, 4)
        );
        let text = err.to_string();
        for part in [
            kernel,
            "max_storage_buffers_per_shader_stage",
            "6",
            "4",
            "GLES",
        ] {
            assert!(text.contains(part), "'{part}' missing in: {text}");
        }
        assert!(needs
            .check_fits(kernel, &wgpu::Limits::default(), "any")
            .is_ok());
    }

    #[test]
    fn workgroup_memory_and_override_sized_workgroups_are_read_from_the_shader() {
        let tiled = KernelNeeds::of_pipeline(Shader::MatmulTiled, "matmul_tiled", &[]).unwrap();
        assert_eq!(tiled.workgroup_storage_bytes, 8192);
        let small = wgpu::Limits {
            max_compute_workgroup_storage_size: 4096,
            ..wgpu::Limits::default()
        };
        assert_eq!(
            tiled.shortfalls(&small),
            [Shortfall {
                limit: "max_compute_workgroup_storage_size",
                need: 8192,
                have: 4096
            }]
        );
        let lanes = |wg| {
            KernelNeeds::of_pipeline(Shader::Binarize, "binarize", &[("WG", wg)])
                .unwrap()
                .workgroup_size[0]
        };
        assert_eq!((lanes(8.0), lanes(256.0)), (8, 256));
    }
}
