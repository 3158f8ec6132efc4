//! Pooling on channel-last tensors (shaders/pool.wgsl): the tokenizer's
//! MaxPool2d(kernel 3, stride 2, padding 1) on images `[images, H, W, C]`, and the head's
//! mean over tokens and time steps `[T, B, N, C] -> [B, C]`.

use super::to_u32;
use crate::error::{Error, Result};
use crate::gpu::{grid_1d, Access, DType, GpuContext, Kernel, Shader, Tensor};

const MAX_POOL: Kernel = Kernel {
    shader: Shader::Pool,
    entry: "max_pool",
    bindings: &[Access::Read, Access::ReadWrite, Access::ReadWrite],
};

const MAX_POOL_BACKWARD: Kernel = Kernel {
    shader: Shader::Pool,
    entry: "max_pool_backward",
    bindings: &[Access::Read, Access::Read, Access::ReadWrite],
};

/// The vec4 kernels (C a multiple of 4): 4 channels per invocation.
const MAX_POOL_VEC4: Kernel = Kernel {
    entry: "max_pool_vec4",
    ..MAX_POOL
};

const MAX_POOL_BACKWARD_VEC4: Kernel = Kernel {
    entry: "max_pool_backward_vec4",
    ..MAX_POOL_BACKWARD
};

/// The kernel for `c` channels, and the channels each invocation takes.
fn by_channels(c: usize, scalar: Kernel, vec4: Kernel) -> (Kernel, usize) {
    if c.is_multiple_of(4) {
        (vec4, 4)
    } else {
        (scalar, 1)
    }
}

const MEAN_TOKENS: Kernel = Kernel {
    shader: Shader::Pool,
    entry: "mean_tokens",
    bindings: &[Access::Read, Access::ReadWrite],
};

const MEAN_TOKENS_BACKWARD: Kernel = Kernel {
    shader: Shader::Pool,
    entry: "mean_tokens_backward",
    bindings: &[Access::Read, Access::ReadWrite],
};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    h: u32,
    w: u32,
    c: u32,
    ho: u32,
    wo: u32,
    total: u32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct MeanParams {
    t: u32,
    b: u32,
    n: u32,
    c: u32,
    total: u32,
}

/// Output size of MaxPool2d(3, 2, 1) along an axis of `n`: `(n - 1) / 2 + 1`.
pub fn max_pool_out(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        (n - 1) / 2 + 1
    }
}

fn image_dims(op: &'static str, x: &Tensor) -> Result<[usize; 4]> {
    x.expect(op, x.shape(), DType::F32)?;
    match *x.shape() {
        [n, h, w, c] => Ok([n, h, w, c]),
        _ => Err(Error::Shape {
            op,
            expected: "images [images, H, W, C]".into(),
            got: format!("{:?}", x.shape()),
        }),
    }
}

/// The kernels' parameters, counting channels (and `total`) in units of `width`.
fn pool_params(
    op: &'static str,
    [_, h, w, c]: [usize; 4],
    total: usize,
    width: usize,
) -> Result<Params> {
    Ok(Params {
        h: to_u32(op, "H", h)?,
        w: to_u32(op, "W", w)?,
        c: to_u32(op, "C", c / width)?,
        ho: to_u32(op, "Ho", max_pool_out(h))?,
        wo: to_u32(op, "Wo", max_pool_out(w))?,
        total: to_u32(op, "elements", total / width)?,
    })
}

/// MaxPool2d(kernel 3, stride 2, padding 1) of `x [images, H, W, C]`: returns
/// `(y, argmax)`, both `[images, Ho, Wo, C]` with `Ho = (H - 1) / 2 + 1`; `argmax` (U32)
/// is PyTorch's `return_indices`: `y * W + x` of the chosen input in its plane. Ties go
/// to the first maximum in window order (row by row).
pub fn max_pool2d(ctx: &GpuContext, x: &Tensor) -> Result<(Tensor, Tensor)> {
    const OP: &str = "max_pool2d";
    let dims @ [n, h, w, c] = image_dims(OP, x)?;
    let shape = [n, max_pool_out(h), max_pool_out(w), c];
    let total = shape.iter().product::<usize>();
    let y = ctx.empty(&shape, DType::F32)?;
    let argmax = ctx.empty(&shape, DType::U32)?;
    to_u32(OP, "input size", x.len())?;
    let (kernel, width) = by_channels(c, MAX_POOL, MAX_POOL_VEC4);
    ctx.dispatch(
        kernel,
        &[],
        &[x, &y, &argmax],
        &pool_params(OP, dims, total, width)?,
        grid_1d(ctx, (total / width).div_ceil(256) as u64)?,
    )?;
    Ok((y, argmax))
}

/// Backward of [`max_pool2d`]: `dx [images, H, W, C]` (`input_shape`) gets each output's
/// gradient at its argmax (a deterministic gather, no atomics).
pub fn max_pool2d_backward(
    ctx: &GpuContext,
    dy: &Tensor,
    argmax: &Tensor,
    input_shape: &[usize],
) -> Result<Tensor> {
    const OP: &str = "max_pool2d_backward";
    let &[n, h, w, c] = input_shape else {
        return Err(Error::Shape {
            op: OP,
            expected: "input shape [images, H, W, C]".into(),
            got: format!("{input_shape:?}"),
        });
    };
    let shape = [n, max_pool_out(h), max_pool_out(w), c];
    dy.expect(OP, &shape, DType::F32)?;
    argmax.expect(OP, &shape, DType::U32)?;
    let dx = ctx.empty(input_shape, DType::F32)?;
    let total = dx.len();
    let (kernel, width) = by_channels(c, MAX_POOL_BACKWARD, MAX_POOL_BACKWARD_VEC4);
    ctx.dispatch(
        kernel,
        &[],
        &[dy, argmax, &dx],
        &pool_params(OP, [n, h, w, c], total, width)?,
        grid_1d(ctx, (total / width).div_ceil(256) as u64)?,
    )?;
    Ok(dx)
}

fn token_dims(op: &'static str, shape: &[usize]) -> Result<[usize; 4]> {
    match *shape {
        [t, b, n, c] => Ok([t, b, n, c]),
        _ => Err(Error::Shape {
            op,
            expected: "tokens [T, B, N, C]".into(),
            got: format!("{shape:?}"),
        }),
    }
}

fn mean_params(op: &'static str, [t, b, n, c]: [usize; 4], total: usize) -> Result<MeanParams> {
    to_u32(op, "tokens", t * b * n * c)?;
    Ok(MeanParams {
        t: to_u32(op, "T", t)?,
        b: to_u32(op, "B", b)?,
        n: to_u32(op, "N", n)?,
        c: to_u32(op, "C", c)?,
        total: to_u32(op, "elements", total)?,
    })
}

/// The head's input: the mean of `x [T, B, N, C]` over T and N, `[B, C]`.
pub fn mean_tokens(ctx: &GpuContext, x: &Tensor) -> Result<Tensor> {
    const OP: &str = "mean_tokens";
    x.expect(OP, x.shape(), DType::F32)?;
    let dims @ [_, b, _, c] = token_dims(OP, x.shape())?;
    let y = ctx.empty(&[b, c], DType::F32)?;
    ctx.dispatch(
        MEAN_TOKENS,
        &[],
        &[x, &y],
        &mean_params(OP, dims, b * c)?,
        grid_1d(ctx, (b * c).div_ceil(256) as u64)?,
    )?;
    Ok(y)
}

/// Backward of [`mean_tokens`]: `dx [T, B, N, C] = dy [B, C] / (T N)` broadcast.
pub fn mean_tokens_backward(ctx: &GpuContext, dy: &Tensor, x_shape: &[usize]) -> Result<Tensor> {
    const OP: &str = "mean_tokens_backward";
    let dims @ [_, b, _, c] = token_dims(OP, x_shape)?;
    dy.expect(OP, &[b, c], DType::F32)?;
    let dx = ctx.empty(x_shape, DType::F32)?;
    let total = dx.len();
    ctx.dispatch(
        MEAN_TOKENS_BACKWARD,
        &[],
        &[dy, &dx],
        &mean_params(OP, dims, total)?,
        grid_1d(ctx, total.div_ceil(256) as u64)?,
    )?;
    Ok(dx)
}
