//! Bit packing along the last (reduction) dimension. See shaders/pack.wgsl.

use crate::error::Result;
use crate::gpu::{grid_1d, words_per_row, Access, DType, GpuContext, Kernel, Shader, Tensor};

const PACK: Kernel = Kernel {
    shader: Shader::Pack,
    entry: "pack",
    bindings: &[Access::Read, Access::ReadWrite],
};

/// What a set bit means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackMode {
    /// Spikes {0,1}: bit = x > 0.
    Spikes,
    /// Signs {-1,+1}: bit = x >= 0, so sign(0) is +1 (a zero weight binarizes to +1, as
    /// `torch.sign` would not: it gives 0, which has no 1-bit code).
    Signs,
}

const PACK_VEC4: Kernel = Kernel {
    entry: "pack_vec4",
    ..PACK
};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    k: u32,
    words_per_row: u32,
}

/// Pack an f32 tensor `[..., K]` into `PackedBits [..., K]` (rows of ceil(K/32) words).
pub fn pack_bits(ctx: &GpuContext, x: &Tensor, mode: PackMode) -> Result<Tensor> {
    x.expect("pack_bits", x.shape(), DType::F32)?;
    let k = x.shape().last().copied().unwrap_or(1);
    let rows = x.len().checked_div(k).unwrap_or(0);
    let out = ctx.empty(x.shape(), DType::PackedBits)?;
    let words = rows * words_per_row(k);
    let params = Params {
        rows: super::to_u32("pack_bits", "rows", rows)?,
        k: super::to_u32("pack_bits", "K", k)?,
        words_per_row: words_per_row(k) as u32,
    };
    let signs = if mode == PackMode::Signs { 1.0 } else { 0.0 };
    let kernel = if k.is_multiple_of(4) { PACK_VEC4 } else { PACK };
    ctx.dispatch(
        kernel,
        &[("SIGNS", signs)],
        &[x, &out],
        &params,
        grid_1d(ctx, words.div_ceil(256) as u64)?,
    )?;
    Ok(out)
}
