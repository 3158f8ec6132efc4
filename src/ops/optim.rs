//! AdamW over a flat parameter buffer with optional global-norm gradient clipping
//! (shaders/optim.wgsl). The clip scale stays on the GPU: no readback per step.

use super::to_u32;
use crate::error::{Error, Result};
use crate::gpu::{grid_1d, Access, DType, GpuContext, Kernel, Shader, Tensor};

const SUM_SQUARES: Kernel = Kernel {
    shader: Shader::Optim,
    entry: "sum_squares",
    bindings: &[Access::Read, Access::ReadWrite],
};

const CLIP_SCALE: Kernel = Kernel {
    shader: Shader::Optim,
    entry: "clip_scale",
    bindings: &[Access::Read, Access::ReadWrite],
};

const ADAMW: Kernel = Kernel {
    shader: Shader::Optim,
    entry: "adamw",
    bindings: &[
        Access::Read,
        Access::Read,
        Access::ReadWrite,
        Access::ReadWrite,
        Access::ReadWrite,
    ],
};

/// Elements one `sum_squares` workgroup reduces.
const SUM_CHUNK: usize = 1024;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct SumParams {
    len: u32,
    partials: u32,
    max_norm: f32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct AdamParams {
    len: u32,
    decay_end: u32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    bias_correction1: f32,
    bias_correction2: f32,
}

/// AdamW hyper-parameters (PyTorch defaults but for the weight decay, which the
/// Spikformer recipe sets to 0.06).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamW {
    /// Decay of the first moment.
    pub beta1: f32,
    /// Decay of the second moment.
    pub beta2: f32,
    /// Added to the second moment's root.
    pub eps: f32,
    /// Decoupled weight decay.
    pub weight_decay: f32,
    /// Clip the global gradient norm to this (None: no clipping).
    pub max_grad_norm: Option<f32>,
}

impl Default for AdamW {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.06,
            max_grad_norm: None,
        }
    }
}

/// The clip scale `min(1, max_norm / (||grad|| + 1e-6))` as a one-element tensor.
pub fn clip_scale(ctx: &GpuContext, grad: &Tensor, max_norm: f32) -> Result<Tensor> {
    const OP: &str = "clip_scale";
    grad.expect(OP, grad.shape(), DType::F32)?;
    let len = grad.len();
    let groups = len.div_ceil(SUM_CHUNK).max(1);
    let partials = ctx.empty(&[groups], DType::F32)?;
    let params = SumParams {
        len: to_u32(OP, "len", len)?,
        partials: to_u32(OP, "partials", groups)?,
        max_norm,
    };
    ctx.dispatch(
        SUM_SQUARES,
        &[],
        &[grad, &partials],
        &params,
        grid_1d(ctx, groups as u64)?,
    )?;
    let scale = ctx.empty(&[1], DType::F32)?;
    ctx.dispatch(CLIP_SCALE, &[], &[&partials, &scale], &params, [1, 1, 1])?;
    Ok(scale)
}

/// One AdamW step (`step` counts from 1) on `param`, `moment1`, `moment2` in place,
/// from `grad`; elements `[0, decay_end)` get weight decay.
#[allow(clippy::too_many_arguments)]
pub fn adamw_step(
    ctx: &GpuContext,
    opt: &AdamW,
    lr: f32,
    step: u32,
    decay_end: usize,
    grad: &Tensor,
    param: &Tensor,
    moment1: &Tensor,
    moment2: &Tensor,
) -> Result<()> {
    const OP: &str = "adamw_step";
    let len = param.len();
    for t in [grad, param, moment1, moment2] {
        t.expect(OP, &[len], DType::F32)?;
    }
    if step == 0 || decay_end > len {
        return Err(Error::InvalidArgument(format!(
            "{OP}: step {step} (counts from 1), decay_end {decay_end} of {len}"
        )));
    }
    // Without clipping nothing is uploaded per step: the kernel skips the scale binding.
    let scale = match opt.max_grad_norm {
        Some(max_norm) => clip_scale(ctx, grad, max_norm)?,
        None => grad.clone(),
    };
    let params = AdamParams {
        len: to_u32(OP, "len", len)?,
        decay_end: to_u32(OP, "decay_end", decay_end)?,
        lr,
        beta1: opt.beta1,
        beta2: opt.beta2,
        eps: opt.eps,
        weight_decay: opt.weight_decay,
        bias_correction1: 1.0 - opt.beta1.powi(step as i32),
        bias_correction2: 1.0 - opt.beta2.powi(step as i32),
    };
    let clip = if opt.max_grad_norm.is_some() {
        1.0
    } else {
        0.0
    };
    ctx.dispatch(
        ADAMW,
        &[("CLIP", clip)],
        &[grad, &scale, param, moment1, moment2],
        &params,
        grid_1d(ctx, len.div_ceil(256) as u64)?,
    )
}
