//! Plain copy: the bandwidth yardstick that memory-bound kernels are compared with.

use crate::error::Result;
use crate::gpu::{grid_1d, Access, DType, GpuContext, Kernel, Shader, Tensor};

const COPY: Kernel = Kernel {
    shader: Shader::Copy,
    entry: "copy",
    bindings: &[Access::Read, Access::ReadWrite],
};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    len: u32,
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
