//! Classification losses and their logit gradients (shaders/loss.wgsl): cross-entropy
//! with label smoothing or with soft targets (mixup, cutmix), DeiT soft distillation, and argmax (hard distillation labels).
//! Per-row losses stay on the GPU; callers download them only when they report.

use super::to_u32;
use crate::error::{Error, Result};
use crate::gpu::{Access, DType, GpuContext, Kernel, Shader, Tensor};

const CROSS_ENTROPY: Kernel = Kernel {
    shader: Shader::Loss,
    entry: "cross_entropy",
    bindings: &[
        Access::Read,
        Access::Read,
        Access::ReadWrite,
        Access::ReadWrite,
    ],
};

const SOFT_CROSS_ENTROPY: Kernel = Kernel {
    shader: Shader::Loss,
    entry: "soft_cross_entropy",
    bindings: &[
        Access::Read,
        Access::Read,
        Access::ReadWrite,
        Access::ReadWrite,
    ],
};

const DISTILL_SOFT: Kernel = Kernel {
    shader: Shader::Loss,
    entry: "distill_soft",
    bindings: &[
        Access::Read,
        Access::Read,
        Access::ReadWrite,
        Access::ReadWrite,
    ],
};

const ARGMAX: Kernel = Kernel {
    shader: Shader::Loss,
    entry: "argmax",
    bindings: &[Access::Read, Access::ReadWrite],
};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    classes: u32,
    smoothing: f32,
    weight: f32,
    tau: f32,
}

/// Per-row losses `[B]` and the gradient of the (weighted, batch-mean) loss w.r.t. the
/// logits `[B, C]`.
pub struct LossOutput {
    /// The loss of each row `[B]`.
    pub losses: Tensor,
    /// The logits' gradient `[B, classes]`.
    pub dlogits: Tensor,
}

fn rows_classes(op: &'static str, logits: &Tensor) -> Result<(usize, usize)> {
    match *logits.shape() {
        [b, c] if logits.dtype() == DType::F32 && c > 0 => Ok((b, c)),
        _ => Err(Error::Shape {
            op,
            expected: "f32 logits [batch, classes]".into(),
            got: format!("{:?} {:?}", logits.dtype(), logits.shape()),
        }),
    }
}

fn run(
    ctx: &GpuContext,
    kernel: Kernel,
    logits: &Tensor,
    target: &Tensor,
    params: Params,
) -> Result<LossOutput> {
    let (b, c) = (params.rows as usize, params.classes as usize);
    let losses = ctx.empty(&[b], DType::F32)?;
    let dlogits = ctx.empty(&[b, c], DType::F32)?;
    ctx.dispatch(
        kernel,
        &[],
        &[logits, target, &losses, &dlogits],
        &params,
        [to_u32(kernel.entry, "row groups", b.div_ceil(64))?, 1, 1],
    )?;
    Ok(LossOutput { losses, dlogits })
}

/// Cross-entropy of `logits [B, C]` against `labels` (u32 `[B]`) with label smoothing;
/// the gradient is scaled by `weight`.
pub fn cross_entropy(
    ctx: &GpuContext,
    logits: &Tensor,
    labels: &Tensor,
    smoothing: f32,
    weight: f32,
) -> Result<LossOutput> {
    const OP: &str = "cross_entropy";
    let (b, c) = rows_classes(OP, logits)?;
    labels.expect(OP, &[b], DType::U32)?;
    if !(0.0..1.0).contains(&smoothing) {
        return Err(Error::InvalidArgument(format!(
            "{OP}: label smoothing {smoothing} outside [0, 1)"
        )));
    }
    let params = Params {
        rows: to_u32(OP, "rows", b)?,
        classes: to_u32(OP, "classes", c)?,
        smoothing,
        weight,
        tau: 1.0,
    };
    run(ctx, CROSS_ENTROPY, logits, labels, params)
}

/// Cross-entropy of `logits [B, C]` against soft `targets` (f32 `[B, C]`, each row a
/// distribution: timm's SoftTargetCrossEntropy, as mixup and cutmix use it); the
/// gradient is scaled by `weight`.
pub fn soft_cross_entropy(
    ctx: &GpuContext,
    logits: &Tensor,
    targets: &Tensor,
    weight: f32,
) -> Result<LossOutput> {
    const OP: &str = "soft_cross_entropy";
    let (b, c) = rows_classes(OP, logits)?;
    targets.expect(OP, &[b, c], DType::F32)?;
    let params = Params {
        rows: to_u32(OP, "rows", b)?,
        classes: to_u32(OP, "classes", c)?,
        smoothing: 0.0,
        weight,
        tau: 1.0,
    };
    run(ctx, SOFT_CROSS_ENTROPY, logits, targets, params)
}

/// DeiT soft distillation of `logits` towards `teacher` logits (same shape) at
/// temperature `tau`; the gradient is scaled by `weight`.
pub fn distill_soft(
    ctx: &GpuContext,
    logits: &Tensor,
    teacher: &Tensor,
    tau: f32,
    weight: f32,
) -> Result<LossOutput> {
    const OP: &str = "distill_soft";
    let (b, c) = rows_classes(OP, logits)?;
    teacher.expect(OP, &[b, c], DType::F32)?;
    if tau <= 0.0 {
        return Err(Error::InvalidArgument(format!(
            "{OP}: temperature {tau} must be positive"
        )));
    }
    let params = Params {
        rows: to_u32(OP, "rows", b)?,
        classes: to_u32(OP, "classes", c)?,
        smoothing: 0.0,
        weight,
        tau,
    };
    run(ctx, DISTILL_SOFT, logits, teacher, params)
}

/// Index of the largest logit of each row, u32 `[B]` (the first on ties).
pub fn argmax(ctx: &GpuContext, logits: &Tensor) -> Result<Tensor> {
    const OP: &str = "argmax";
    let (b, c) = rows_classes(OP, logits)?;
    let out = ctx.empty(&[b], DType::U32)?;
    let params = Params {
        rows: to_u32(OP, "rows", b)?,
        classes: to_u32(OP, "classes", c)?,
        smoothing: 0.0,
        weight: 0.0,
        tau: 1.0,
    };
    ctx.dispatch(
        ARGMAX,
        &[],
        &[logits, &out],
        &params,
        [to_u32(OP, "row groups", b.div_ceil(64))?, 1, 1],
    )?;
    Ok(out)
}
