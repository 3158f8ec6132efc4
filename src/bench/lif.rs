//! LIF workloads: the fused neuron is memory-bound, so it is measured in bytes moved
//! (GB/s) and compared with a plain copy moving the same number of bytes.
//!
//! Bytes counted per element of `[T, rows, features]` (4 bytes per f32):
//! - forward: read X, write S, write H = 12;
//! - forward, packed spikes only (inference into a binary matmul), by either packing
//!   kernel (`ops::lif::PackKernel`): read X = 4, plus the packed words written;
//! - forward + backward: the forward's 12, then read grad_S, read H, write grad_X = 12.

use super::pseudo_random;
use crate::error::{Error, Result};
use crate::gpu::{words_per_row, GpuContext, Tensor};
use crate::ops::{self, LifConfig, LifOutputs, PackKernel};

/// The LIF variants `bitspike bench lif` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifKernel {
    /// f32 spikes and H (training forward).
    Forward,
    /// Packed spikes only (inference forward), one invocation per word.
    ForwardPackedPerWord,
    /// Packed spikes only (inference forward), the cooperative kernel.
    ForwardPackedCooperative,
    /// Training forward, then BPTT.
    ForwardBackward,
}

impl LifKernel {
    /// Every timed kernel.
    pub const ALL: [LifKernel; 4] = [
        LifKernel::Forward,
        LifKernel::ForwardPackedPerWord,
        LifKernel::ForwardPackedCooperative,
        LifKernel::ForwardBackward,
    ];

    /// The name printed in reports.
    pub fn name(self) -> &'static str {
        match self {
            LifKernel::Forward => "lif_forward",
            LifKernel::ForwardPackedPerWord => "lif_packed_per_word",
            LifKernel::ForwardPackedCooperative => "lif_packed_cooperative",
            LifKernel::ForwardBackward => "lif_forward_backward",
        }
    }
}

/// The models' shapes: T = 4 over 8192 tokens (batch 128 x 64) with 384 and 1536
/// features, and T = 16 (event data) with 384.
pub const MODEL_SHAPES: [(usize, usize, usize); 3] =
    [(4, 8192, 384), (4, 8192, 1536), (16, 8192, 384)];

/// Operands of one (kernel, T, rows, features), uploaded once.
pub struct LifWorkload {
    /// The neuron kernel timed.
    pub kernel: LifKernel,
    /// Time steps T.
    pub t: usize,
    /// Rows of neurons per step.
    pub rows: usize,
    /// Features per row (the packing dimension).
    pub features: usize,
    cfg: LifConfig,
    x: Tensor,
    grad: Tensor,
}

impl LifWorkload {
    /// The workload's inputs, uploaded.
    pub fn new(
        ctx: &GpuContext,
        kernel: LifKernel,
        t: usize,
        rows: usize,
        features: usize,
    ) -> Result<Self> {
        let len = t * rows * features;
        let shape = [t, rows, features];
        // Inputs in [-1, 3): about a third of the neurons fire at each step.
        let x = ctx.upload_f32(&pseudo_random(len, 1, -1.0, 3.0), &shape)?;
        let grad = ctx.upload_f32(&pseudo_random(len, 2, -1.0, 1.0), &shape)?;
        ctx.sync()?;
        Ok(Self {
            kernel,
            t,
            rows,
            features,
            cfg: LifConfig::default(),
            x,
            grad,
        })
    }

    /// Neuron updates per run (T x rows x features).
    pub fn elements(&self) -> usize {
        self.t * self.rows * self.features
    }

    /// Bytes one `run` reads and writes (see the module doc).
    pub fn bytes(&self) -> f64 {
        let n = self.elements() as f64;
        match self.kernel {
            LifKernel::Forward => 12.0 * n,
            LifKernel::ForwardPackedPerWord | LifKernel::ForwardPackedCooperative => {
                4.0 * n + 4.0 * (self.t * self.rows * words_per_row(self.features)) as f64
            }
            LifKernel::ForwardBackward => 24.0 * n,
        }
    }

    /// The shape, as printed.
    pub fn shape(&self) -> String {
        format!("{}x{}x{}", self.t, self.rows, self.features)
    }

    fn packed(&self, ctx: &GpuContext, pack: PackKernel) -> Result<()> {
        let outputs = LifOutputs::INFER_PACKED;
        ops::lif_forward_with(ctx, &self.x, self.t, &self.cfg, outputs, pack).map(drop)
    }

    /// Record one iteration (outputs go back to the pool when dropped).
    pub fn run(&self, ctx: &GpuContext) -> Result<()> {
        match self.kernel {
            LifKernel::Forward => {
                ops::lif_forward(ctx, &self.x, self.t, &self.cfg, LifOutputs::TRAIN).map(drop)
            }
            LifKernel::ForwardPackedPerWord => self.packed(ctx, PackKernel::PerWord),
            LifKernel::ForwardPackedCooperative => self.packed(ctx, PackKernel::Cooperative),
            LifKernel::ForwardBackward => {
                let fwd = ops::lif_forward(ctx, &self.x, self.t, &self.cfg, LifOutputs::TRAIN)?;
                let h = fwd.h.ok_or_else(|| {
                    Error::InvalidArgument("lif bench: the training forward returned no H".into())
                })?;
                ops::lif_backward(ctx, &self.grad, &h, self.t, &self.cfg).map(drop)
            }
        }
    }
}

/// A plain copy moving (about) the same bytes as another workload: `bytes / 8` floats,
/// each read once and written once; capped at the largest buffer the device binds (the
/// rate, not the size, is compared, and copies that large run at their full rate).
pub struct CopyWorkload {
    src: Tensor,
}

impl CopyWorkload {
    /// A copy of `bytes` bytes, the memory-bandwidth baseline.
    pub fn new(ctx: &GpuContext, bytes: f64) -> Result<Self> {
        let max_len = (ctx.limits.max_storage_buffer_binding_size / 4) as usize;
        let len = ((bytes / 8.0).round() as usize).clamp(1, max_len);
        let src = ctx.upload_f32(&pseudo_random(len, 3, -1.0, 1.0), &[len])?;
        ctx.sync()?;
        Ok(Self { src })
    }

    /// The copy that moves the bytes of `w`.
    pub fn matching(ctx: &GpuContext, w: &LifWorkload) -> Result<Self> {
        Self::new(ctx, w.bytes())
    }

    /// Bytes moved per run (read and written).
    pub fn bytes(&self) -> f64 {
        8.0 * self.src.len() as f64
    }

    /// The size, as printed.
    pub fn shape(&self) -> String {
        format!("{}", self.src.len())
    }

    /// Record one copy.
    pub fn run(&self, ctx: &GpuContext) -> Result<()> {
        ops::copy(ctx, &self.src).map(drop)
    }
}
