//! Plain copy: the bandwidth yardstick that memory-bound kernels are compared with.

use crate::error::Result;
use crate::gpu::{grid_1d, Access, DType, GpuContext, Kernel, Shader, Tensor};

const COPY: Kernel = Kernel {
    shader: Shader::Copy,
    entry: "copy",
    bindings: &[Access::Read, Access::ReadWrite],
};

const PAD_ROWS: Kernel = Kernel {
    shader: Shader::Copy,
    entry: "pad_rows",
    bindings: &[Access::Read, Access::ReadWrite],
};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    len: u32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct PadParams {
    rows: u32,
    cols: u32,
    padded_cols: u32,
}

/// `dst = src` for an f32 tensor, into a new tensor.
pub fn copy(ctx: &GpuContext, src: &Tensor) -> Result<Tensor> {
    src.expect("copy", src.shape(), DType::F32)?;
    let dst = ctx.empty(src.shape(), DType::F32)?;
    let len = super::to_u32("copy", "len", src.len())?;
    ctx.dispatch(
        COPY,
        &[],
        &[src, &dst],
        &Params { len },
        grid_1d(ctx, src.len().div_ceil(256) as u64)?,
    )?;
    Ok(dst)
}

/// The tensor with its last dimension zero-padded to a multiple of `multiple`: the
/// tensor itself when already aligned, else a padded copy `[..., round_up(cols)]`.
pub fn pad_last_dim(ctx: &GpuContext, src: &Tensor, multiple: usize) -> Result<Tensor> {
    src.expect("pad_last_dim", src.shape(), DType::F32)?;
    let cols = src.shape().last().copied().unwrap_or(1);
    if cols % multiple == 0 {
        return Ok(src.clone());
    }
    let padded_cols = cols.next_multiple_of(multiple);
    let rows = src.len() / cols.max(1);
    let mut shape = src.shape().to_vec();
    *shape
        .last_mut()
        .expect("cols % multiple != 0 implies rank >= 1") = padded_cols;
    let dst = ctx.empty(&shape, DType::F32)?;
    let params = PadParams {
        rows: super::to_u32("pad_last_dim", "rows", rows)?,
        cols: super::to_u32("pad_last_dim", "cols", cols)?,
        padded_cols: super::to_u32("pad_last_dim", "padded cols", padded_cols)?,
    };
    super::to_u32("pad_last_dim", "size", rows * padded_cols)?;
    ctx.dispatch(
        PAD_ROWS,
        &[],
        &[src, &dst],
        &params,
        grid_1d(ctx, (rows * padded_cols).div_ceil(256) as u64)?,
    )?;
    Ok(dst)
}
