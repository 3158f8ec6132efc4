//! Dispatching kernels: building a kernel's pipeline once per (kernel, override
//! constants) into the context's cache, binding tensors and uniforms, and recording the
//! dispatch. The kernels themselves are listed in `gpu::shaders`.

use std::sync::Arc;

use super::cache::{
    BindGroupKey, BoundRange, CachedPipeline, Pending, PipelineKey, UNIFORM_ARENA_BYTES,
};
use super::kernel_needs::KernelNeeds;
use super::shaders::{Access, Constants, Kernel, Shader};
use super::{GpuContext, Tensor};
use crate::error::{Error, Result};

/// Workgroup counts of a 1-D job split over x and y, since one axis holds at most
/// `max_compute_workgroups_per_dimension` groups. Kernels rebuild the linear index as
/// `wid.x + wid.y * num_workgroups.x`.
pub fn grid_1d(ctx: &GpuContext, groups: u64) -> Result<[u32; 3]> {
    let max = ctx.limits.max_compute_workgroups_per_dimension as u64;
    let groups = groups.max(1);
    let x = groups.min(max);
    let y = groups.div_ceil(x);
    if y > max {
        return Err(Error::TooManyWorkgroups {
            op: "grid_1d",
            groups,
            limit: ctx.limits.max_compute_workgroups_per_dimension,
        });
    }
    Ok([x as u32, y as u32, 1])
}

impl GpuContext {
    /// How many pipelines have been built so far (each is built once and reused).
    pub fn cached_pipelines(&self) -> usize {
        self.kernels.pipelines.lock().map(|p| p.len()).unwrap_or(0)
    }

    fn shader_module(&self, shader: Shader) -> Result<Arc<wgpu::ShaderModule>> {
        let mut modules = self
            .kernels
            .modules
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(m) = modules.get(&shader) {
            return Ok(m.clone());
        }
        // Our shaders are trusted and every loop is bounded by a uniform size, so naga's
        // loop-bounding counters (a 64-bit compare per iteration, costly on CPU drivers)
        // are left out; bounds checks on buffer accesses stay on.
        let checks = wgpu::ShaderRuntimeChecks {
            bounds_checks: true,
            force_loop_bounding: false,
            ..wgpu::ShaderRuntimeChecks::checked()
        };
        let module = self.scoped(shader.file_name(), || unsafe {
            self.device.create_shader_module_trusted(
                wgpu::ShaderModuleDescriptor {
                    label: Some(shader.file_name()),
                    source: wgpu::ShaderSource::Wgsl(shader.source().into()),
                },
                checks,
            )
        })?;
        let module = Arc::new(module);
        modules.insert(shader, module.clone());
        Ok(module)
    }

    fn pipeline(&self, key: &PipelineKey, constants: &Constants) -> Result<Arc<CachedPipeline>> {
        let kernel = key.kernel;
        if let Some(p) = self
            .kernels
            .pipelines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
        {
            return Ok(p.clone());
        }
        let label = format!("{}::{}", kernel.shader.file_name(), kernel.entry);
        // Checked up front, for one error naming the kernel, the limit and both values,
        // and for workgroup memory, which wgpu leaves to the driver. The layout binds
        // every listed buffer and the uniform block, whatever the shader uses.
        let needs = KernelNeeds {
            storage_buffers: kernel.bindings.len() as u32,
            uniform_buffers: 1,
            ..KernelNeeds::of_pipeline(kernel.shader, kernel.entry, constants)?
        };
        needs.check_fits(&label, &self.limits, &self.adapter.name)?;
        let module = self.shader_module(kernel.shader)?;
        let mut entries: Vec<wgpu::BindGroupLayoutEntry> = kernel
            .bindings
            .iter()
            .enumerate()
            .map(|(i, access)| wgpu::BindGroupLayoutEntry {
                binding: i as u32,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage {
                        read_only: *access == Access::Read,
                    },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            })
            .collect();
        // The uniform block sits at a dynamic offset in a shared arena.
        entries.push(wgpu::BindGroupLayoutEntry {
            binding: kernel.bindings.len() as u32,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: true,
                min_binding_size: None,
            },
            count: None,
        });
        let cached = self.scoped(&label, || {
            let _turn = self.device_turn();
            let layout = self
                .device
                .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                    label: Some(&label),
                    entries: &entries,
                });
            let pipeline_layout =
                self.device
                    .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                        label: Some(&label),
                        bind_group_layouts: &[Some(&layout)],
                        immediate_size: 0,
                    });
            let pipeline = self
                .device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(&label),
                    layout: Some(&pipeline_layout),
                    module: &module,
                    entry_point: Some(kernel.entry),
                    compilation_options: wgpu::PipelineCompilationOptions {
                        constants,
                        zero_initialize_workgroup_memory: false,
                    },
                    cache: None,
                });
            CachedPipeline { pipeline, layout }
        })?;
        let cached = Arc::new(cached);
        self.kernels
            .pipelines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.clone(), cached.clone());
        Ok(cached)
    }

    /// Record one dispatch of `kernel` on `tensors` (in binding order) with the uniform
    /// block `params`. Nothing runs until the next `flush`/`sync`/download.
    pub fn dispatch<P: bytemuck::Pod>(
        &self,
        kernel: Kernel,
        constants: &Constants,
        tensors: &[&Tensor],
        params: &P,
        workgroups: [u32; 3],
    ) -> Result<()> {
        if tensors.len() != kernel.bindings.len() {
            return Err(Error::InvalidArgument(format!(
                "{}::{} takes {} buffers, got {}",
                kernel.shader.file_name(),
                kernel.entry,
                kernel.bindings.len(),
                tensors.len()
            )));
        }
        let max = self.limits.max_compute_workgroups_per_dimension;
        if let Some(&g) = workgroups.iter().find(|&&g| g > max) {
            return Err(Error::TooManyWorkgroups {
                op: kernel.entry,
                groups: g as u64,
                limit: max,
            });
        }
        if workgroups.contains(&0) {
            return Ok(());
        }
        let key = PipelineKey {
            kernel,
            constants: constants.iter().map(|(n, v)| (*n, v.to_bits())).collect(),
        };
        let cached = self.pipeline(&key, constants)?;
        // Uniform blocks are padded to 16 bytes, the uniform address space's granule.
        let mut block = bytemuck::bytes_of(params).to_vec();
        block.resize(block.len().div_ceil(16).max(1) * 16, 0);
        let started = match &self.profile {
            Some(_) => {
                self.sync()?;
                Some(std::time::Instant::now())
            }
            None => None,
        };
        {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            let (arena, offset) = self.reserve_uniform(&mut pending, &block);
            let ranges = tensors
                .iter()
                .map(|t| BoundRange {
                    buffer: t.buffer().clone(),
                    offset: t.offset_bytes(),
                    size: t.byte_len().max(4),
                })
                .collect();
            let group_key = BindGroupKey {
                pipeline: key,
                ranges,
                arena: arena.clone(),
                block: block.len() as u64,
            };
            let bind_group = self
                .bind_groups
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_make(group_key, || {
                    let mut entries: Vec<wgpu::BindGroupEntry> = tensors
                        .iter()
                        .enumerate()
                        .map(|(i, t)| wgpu::BindGroupEntry {
                            binding: i as u32,
                            resource: t.binding(),
                        })
                        .collect();
                    entries.push(wgpu::BindGroupEntry {
                        binding: tensors.len() as u32,
                        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                            buffer: &arena,
                            offset: 0,
                            size: wgpu::BufferSize::new(block.len() as u64),
                        }),
                    });
                    self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                        label: None,
                        layout: &cached.layout,
                        entries: &entries,
                    })
                });
            let encoder = self.encoder(&mut pending);
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(kernel.entry),
                timestamp_writes: None,
            });
            pass.set_pipeline(&cached.pipeline);
            pass.set_bind_group(0, &*bind_group, &[offset]);
            pass.dispatch_workgroups(workgroups[0], workgroups[1], workgroups[2]);
        }
        if let (Some(profile), Some(started)) = (&self.profile, started) {
            self.sync()?;
            let mut name = format!("{}::{}", kernel.shader.file_name(), kernel.entry);
            if self.profile_detail {
                let words: &[u32] = bytemuck::cast_slice(bytemuck::bytes_of(params));
                name += &format!(" {constants:?} grid {workgroups:?} params {words:?}");
            }
            let mut map = profile.lock().unwrap_or_else(|e| e.into_inner());
            let entry = map.entry(name).or_default();
            entry.0 += 1;
            entry.1 += started.elapsed().as_secs_f64();
        }
        Ok(())
    }

    /// Room for one uniform block in the pending work's arena: the arena and the block's
    /// offset. A full arena is written and a spare (or new) one taken.
    fn reserve_uniform(&self, pending: &mut Pending, block: &[u8]) -> (wgpu::Buffer, u32) {
        let align = self.limits.min_uniform_buffer_offset_alignment as usize;
        let mut offset = pending.bytes.len().div_ceil(align) * align;
        let full = offset + block.len() > UNIFORM_ARENA_BYTES as usize;
        if pending.arena.is_none() || full {
            let _turn = self.device_turn();
            if let Some(arena) = pending.arena.take() {
                self.queue.write_buffer(&arena, 0, &pending.bytes);
                pending.filled.push(arena);
            }
            pending.bytes.clear();
            offset = 0;
            let arena = pending.spare.pop().unwrap_or_else(|| {
                self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("uniform arena"),
                    size: UNIFORM_ARENA_BYTES,
                    usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            });
            pending.arena = Some(arena);
        }
        pending.bytes.resize(offset, 0);
        pending.bytes.extend_from_slice(block);
        let arena = pending.arena.clone().expect("an arena was just set");
        (arena, offset as u32)
    }
}
