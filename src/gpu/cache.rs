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

/// Bytes of one uniform arena: every dispatch's uniform block goes into one of these at
/// an aligned offset (bound with a dynamic offset), instead of a buffer of its own.
pub(crate) const UNIFORM_ARENA_BYTES: u64 = 64 << 10;

/// What is recorded but not yet submitted: the command encoder, and the uniform blocks
/// of its dispatches, staged in `bytes` for the arena `buffer` and written to it by one
/// `write_buffer` when the arena fills or the work is submitted.
#[derive(Default)]
pub(crate) struct Pending {
    pub(crate) encoder: Option<wgpu::CommandEncoder>,
    pub(crate) arena: Option<wgpu::Buffer>,
    pub(crate) bytes: Vec<u8>,
    /// Arenas written for the pending encoder (each holds its blocks until submit).
    pub(crate) filled: Vec<wgpu::Buffer>,
    /// Arenas free for the next blocks: a write to one lands before the submission that
    /// follows it, after every earlier submission's reads, so they recycle at submit.
    pub(crate) spare: Vec<wgpu::Buffer>,
}

/// One binding of a bind group: a buffer range.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct BoundRange {
    pub(crate) buffer: wgpu::Buffer,
    pub(crate) offset: u64,
    pub(crate) size: u64,
}

/// A bind group by what it binds: the pipeline's layout (its pipeline key), the tensors'
/// ranges and the uniform arena with the block size.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct BindGroupKey {
    pub(crate) pipeline: PipelineKey,
    pub(crate) ranges: Vec<BoundRange>,
    pub(crate) arena: wgpu::Buffer,
    pub(crate) block: u64,
}

/// Bind groups kept across steps (a training step binds the same pooled buffers every
/// time), in two generations of at most [`BIND_GROUP_GENERATION`] groups: a full
/// generation retires the older one, so a group unused for that long is dropped with
/// the buffers it holds.
#[derive(Default)]
pub(crate) struct BindGroupCache {
    pub(crate) current: HashMap<BindGroupKey, Arc<wgpu::BindGroup>>,
    pub(crate) previous: HashMap<BindGroupKey, Arc<wgpu::BindGroup>>,
}

impl BindGroupCache {
    /// The group for `key`, made by `make` when neither generation has it.
    pub(crate) fn get_or_make(
        &mut self,
        key: BindGroupKey,
        make: impl FnOnce() -> wgpu::BindGroup,
    ) -> Arc<wgpu::BindGroup> {
        if let Some(group) = self.current.get(&key) {
            return group.clone();
        }
        let group = match self.previous.remove(&key) {
            Some(group) => group,
            None => Arc::new(make()),
        };
        if self.current.len() >= BIND_GROUP_GENERATION {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(key, group.clone());
        group
    }
}

/// Bind groups per generation: a few training steps' worth (one binds about 500).
pub(crate) const BIND_GROUP_GENERATION: usize = 4096;
