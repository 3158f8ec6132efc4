//! BESTformer's weight binarization (shaders/binarize.wgsl; CaoHLin/BESTFormer
//! quantized_utils.py, IRConv2d / IRConv1d / IRLinear): per output channel o,
//! `w_hat = (w - mean_o(w)) / std_o(w)` with the unbiased std, `w_b = sign(w_hat)`.
//!
//! One call builds both forms the layers use: the f32 ±1 weights (backward and f32
//! paths) and the same signs packed along the reduction axis (`binary_matmul`). Models
//! rebuild them once after each optimizer step, not per forward.
//!
//! `torch.sign(0) = 0`, but a bit has two values: here `w_hat = 0` (and a channel of equal
//! weights, whose std is 0) binarizes to +1, in the f32 and the packed weights alike.
//! The backward is straight-through from `d w_b` to `d w_hat`, then exact through the
//! normalization: `dw += (1/std) (g - mean(g) - w_hat sum(g w_hat) / (K - 1))`
//! (zero for a channel whose std is 0, where PyTorch would give NaN).

use super::to_u32;
use crate::error::{Error, Result};
use crate::gpu::{grid_1d, words_per_row, Access, DType, GpuContext, Kernel, Shader, Tensor};

/// The per-channel kernels' workgroup size (shaders/binarize.wgsl's `WG`): one SIMD
/// batch on CPU drivers, whose barriers switch between batches; 256 on GPUs.
pub(crate) fn channel_lanes(ctx: &GpuContext) -> [(&'static str, f64); 1] {
    [("WG", if ctx.is_cpu_adapter() { 8.0 } else { 256.0 })]
}

const BINARIZE: Kernel = Kernel {
    shader: Shader::Binarize,
    entry: "binarize",
    bindings: &[
        Access::Read,
        Access::ReadWrite,
        Access::ReadWrite,
        Access::ReadWrite,
    ],
};

const BINARIZE_BACKWARD: Kernel = Kernel {
    shader: Shader::Binarize,
    entry: "binarize_backward",
    bindings: &[Access::Read, Access::Read, Access::Read, Access::ReadWrite],
};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    c_out: u32,
    k: u32,
    words_per_row: u32,
    /// Unused by binarization (shared with the multi-bit quantizer's kernels).
    bits: u32,
}

/// The binarized form of a weight `[C_out, K]`.
#[derive(Debug, Clone)]
pub struct BinaryWeights {
    /// f32 `[C_out, K]`, each ±1.
    pub signs: Tensor,
    /// `PackedBits [C_out, K]`, bit 1 = +1.
    pub bits: Tensor,
    /// f32 `[C_out, 2]`: (mean, unbiased std) per output channel, for the backward.
    pub stats: Tensor,
}

fn dims(op: &'static str, w: &Tensor) -> Result<(usize, usize)> {
    match *w.shape() {
        [c_out, k] if k >= 2 && w.dtype() == DType::F32 => Ok((c_out, k)),
        _ => Err(Error::Shape {
            op,
            expected: "f32 weights [C_out, K] with K >= 2 (conv weights flattened)".into(),
            got: format!("{:?} {:?}", w.dtype(), w.shape()),
        }),
    }
}

fn params(op: &'static str, c_out: usize, k: usize) -> Result<Params> {
    to_u32(op, "weights", c_out * k)?;
    Ok(Params {
        c_out: to_u32(op, "C_out", c_out)?,
        k: to_u32(op, "K", k)?,
        words_per_row: to_u32(op, "words per row", words_per_row(k))?,
        bits: 0,
    })
}

/// Binarize `w [C_out, K]` (a conv weight `[C_out, 9 C_in]` or a linear `[out, in]`).
pub fn binarize_weights(ctx: &GpuContext, w: &Tensor) -> Result<BinaryWeights> {
    const OP: &str = "binarize_weights";
    let (c_out, k) = dims(OP, w)?;
    let out = BinaryWeights {
        signs: ctx.empty(&[c_out, k], DType::F32)?,
        bits: ctx.empty(&[c_out, k], DType::PackedBits)?,
        stats: ctx.empty(&[c_out, 2], DType::F32)?,
    };
    ctx.dispatch(
        BINARIZE,
        &channel_lanes(ctx),
        &[w, &out.signs, &out.bits, &out.stats],
        &params(OP, c_out, k)?,
        grid_1d(ctx, c_out as u64)?,
    )?;
    Ok(out)
}

/// Backward of [`binarize_weights`]: given `g = d w_b [C_out, K]`, `dw += d w` through the
/// straight-through sign and the per-channel normalization (`stats` from the forward).
pub fn binarize_weights_backward(
    ctx: &GpuContext,
    w: &Tensor,
    stats: &Tensor,
    g: &Tensor,
    dw: &Tensor,
) -> Result<()> {
    const OP: &str = "binarize_weights_backward";
    let (c_out, k) = dims(OP, w)?;
    stats.expect(OP, &[c_out, 2], DType::F32)?;
    g.expect(OP, &[c_out, k], DType::F32)?;
    dw.expect(OP, &[c_out, k], DType::F32)?;
    ctx.dispatch(
        BINARIZE_BACKWARD,
        &channel_lanes(ctx),
        &[w, stats, g, dw],
        &params(OP, c_out, k)?,
        grid_1d(ctx, c_out as u64)?,
    )
}
