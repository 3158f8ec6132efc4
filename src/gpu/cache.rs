//! What a context keeps between ops: the compiled shader modules and pipelines, built
//! once per (kernel, override constants), and the pool of free buffers by size class.
//! Plain data here; `gpu::kernels` and `gpu::tensor` fill and drain them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use super::shaders::{Kernel, Shader};

#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct PipelineKey {
    pub(crate) kernel: Kernel,
    pub(crate) constants: Vec<(&'static str, u64)>,
}

pub(crate) struct CachedPipeline {
    pub(crate) pipeline: wgpu::ComputePipeline,
    pub(crate) layout: wgpu::BindGroupLayout,
}

#[derive(Default)]
pub(crate) struct PipelineCache {
    pub(crate) modules: Mutex<HashMap<Shader, Arc<wgpu::ShaderModule>>>,
    pub(crate) pipelines: Mutex<HashMap<PipelineKey, Arc<CachedPipeline>>>,
}

/// Buffers are pooled by size class so that repeated steps reuse allocations; a class is
/// the size rounded up to an eighth of its power of two (at most 12.5 % waste).
pub(crate) fn size_class(bytes: u64) -> u64 {
    let bytes = bytes.max(256);
    let granule = (bytes.next_power_of_two() / 16).max(256);
    bytes.div_ceil(granule) * granule
}

#[derive(Default)]
pub(crate) struct BufferPool {
    pub(crate) free: Arc<Mutex<HashMap<u64, Vec<wgpu::Buffer>>>>,
}

/// A buffer that goes back to its pool when the last tensor using it is dropped.
pub(crate) struct PooledBuffer {
    pub(crate) buffer: Option<wgpu::Buffer>,
    pub(crate) class: u64,
    pub(crate) pool: Weak<Mutex<HashMap<u64, Vec<wgpu::Buffer>>>>,
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        if let (Some(buffer), Some(pool)) = (self.buffer.take(), self.pool.upgrade()) {
            let mut free = pool.lock().unwrap_or_else(|p| p.into_inner());
            free.entry(self.class).or_default().push(buffer);
        }
    }
}
