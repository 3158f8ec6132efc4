//! Layout changes between the models' ops (shaders/layout.wgsl): the loader's NCHW
//! images to the NHWC `[T * B, H, W, C]` the convs read (direct encoding: the same image
//! at every step), and tokens `[T, B, N, D]` to the heads-first `[T, B, heads, N, d]` the
//! attention ops read, and back.

use super::to_u32;
use crate::error::{Error, Result};
use crate::gpu::{grid_1d, Access, DType, GpuContext, Kernel, Shader, Tensor};

const SWAP_AXES: Kernel = Kernel {
    shader: Shader::Layout,
    entry: "swap_axes",
    bindings: &[Access::Read, Access::ReadWrite],
};

const SWAP_AXES_VEC4: Kernel = Kernel {
    entry: "swap_axes_vec4",
    ..SWAP_AXES
};

const TRANSPOSE4: Kernel = Kernel {
    entry: "transpose4",
    ..SWAP_AXES
};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct SwapParams {
    a: u32,
    x: u32,
    y: u32,
    z: u32,
    reps: u32,
}

/// `out[r, a, j, i, z] = x[a, i, j, z]`: x f32 seen as `[a, xs, ys, zs]`, out f32 of
/// `out_shape` (`reps * a * ys * xs * zs` elements).
fn swap_axes(
    ctx: &GpuContext,
    op: &'static str,
    x: &Tensor,
    [a, xs, ys, zs]: [usize; 4],
    reps: usize,
    out_shape: &[usize],
) -> Result<Tensor> {
    if x.dtype() != DType::F32 || x.len() != a * xs * ys * zs {
        return Err(Error::Shape {
            op,
            expected: format!("f32 with {a} x {xs} x {ys} x {zs} elements"),
            got: format!("{:?} {:?}", x.dtype(), x.shape()),
        });
    }
    let out = ctx.empty(out_shape, DType::F32)?;
    // Rows of whole vec4s move 4 values at a time.
    let (kernel, width) = if zs.is_multiple_of(4) {
        (SWAP_AXES_VEC4, 4)
    } else {
        (SWAP_AXES, 1)
    };
    let total = to_u32(op, "elements", reps * x.len() / width)?;
    let params = SwapParams {
        a: to_u32(op, "A", a)?,
        x: to_u32(op, "X", xs)?,
        y: to_u32(op, "Y", ys)?,
        z: to_u32(op, "Z", zs / width)?,
        reps: to_u32(op, "repeats", reps)?,
    };
    ctx.dispatch(
        kernel,
        &[],
        &[x, &out],
        &params,
        grid_1d(ctx, (total as u64).div_ceil(256))?,
    )?;
    Ok(out)
}

/// Images f32 `[B, C, H, W]` (NCHW, as the loader gives them) to NHWC repeated over
/// `t_steps`: `[T * B, H, W, C]`, image `t * B + b` = image b.
pub fn nchw_to_nhwc_repeat(ctx: &GpuContext, x: &Tensor, t_steps: usize) -> Result<Tensor> {
    const OP: &str = "nchw_to_nhwc_repeat";
    let [b, c, h, w] = *x.shape() else {
        return Err(Error::Shape {
            op: OP,
            expected: "[B, C, H, W]".into(),
            got: format!("{:?}", x.shape()),
        });
    };
    swap_axes(
        ctx,
        OP,
        x,
        [b, c, h * w, 1],
        t_steps,
        &[t_steps * b, h, w, c],
    )
}

/// `[batch, rows, cols]` to `[batch, cols, rows]` (4 x 4 blocks at a time when both
/// are multiples of 4).
pub fn transpose_matrices(ctx: &GpuContext, x: &Tensor) -> Result<Tensor> {
    const OP: &str = "transpose_matrices";
    let [batch, rows, cols] = *x.shape() else {
        return Err(Error::Shape {
            op: OP,
            expected: "[batch, rows, cols]".into(),
            got: format!("{:?}", x.shape()),
        });
    };
    if !rows.is_multiple_of(4) || !cols.is_multiple_of(4) || x.dtype() != DType::F32 {
        return swap_axes(ctx, OP, x, [batch, rows, cols, 1], 1, &[batch, cols, rows]);
    }
    let out = ctx.empty(&[batch, cols, rows], DType::F32)?;
    let blocks = to_u32(OP, "elements", x.len())? / 16;
    let params = SwapParams {
        a: to_u32(OP, "batch", batch)?,
        x: to_u32(OP, "rows", rows)?,
        y: to_u32(OP, "columns", cols)?,
        z: 1,
        reps: 1,
    };
    ctx.dispatch(
        TRANSPOSE4,
        &[],
        &[x, &out],
        &params,
        grid_1d(ctx, (blocks as u64).div_ceil(256))?,
    )?;
    Ok(out)
}

/// A model's per-time-step input `[T * B, H, W, C]` (NHWC, image `t * B + b`) from
/// images `[B, C, H, W]`, repeated over the T steps, or from frames `[T, B, C, H, W]`,
/// frame t being the input at step t (event data).
pub fn time_step_inputs(
    ctx: &GpuContext,
    x: &Tensor,
    t_steps: usize,
    [b, c, h, w]: [usize; 4],
) -> Result<Tensor> {
    let shape = x.shape();
    if shape == [b, c, h, w] {
        return nchw_to_nhwc_repeat(ctx, x, t_steps);
    }
    if shape != [t_steps, b, c, h, w] || x.dtype() != crate::DType::F32 {
        return Err(Error::Shape {
            op: "time_step_inputs",
            expected: format!(
                "images [{b}, {c}, {h}, {w}] or frames [{t_steps}, {b}, {c}, {h}, {w}] (f32)"
            ),
            got: format!("{shape:?} {:?}", x.dtype()),
        });
    }
    nchw_to_nhwc_repeat(ctx, &x.reshape(&[t_steps * b, c, h, w])?, 1)
}

/// Tokens `[T, B, N, heads * d]` to `[T, B, heads, N, d]`.
pub fn split_heads(ctx: &GpuContext, x: &Tensor, heads: usize) -> Result<Tensor> {
    const OP: &str = "split_heads";
    let [t, b, n, c] = *x.shape() else {
        return Err(Error::Shape {
            op: OP,
            expected: "[T, B, N, D]".into(),
            got: format!("{:?}", x.shape()),
        });
    };
    if heads == 0 || c % heads != 0 {
        return Err(Error::InvalidArgument(format!(
            "{OP}: width {c} is not divisible by {heads} heads"
        )));
    }
    let d = c / heads;
    swap_axes(ctx, OP, x, [t * b, n, heads, d], 1, &[t, b, heads, n, d])
}

/// `[T, B, heads, N, d]` back to tokens `[T, B, N, heads * d]` (the inverse of
/// [`split_heads`], and its backward; `split_heads` is this one's backward).
pub fn merge_heads(ctx: &GpuContext, x: &Tensor) -> Result<Tensor> {
    const OP: &str = "merge_heads";
    let [t, b, heads, n, d] = *x.shape() else {
        return Err(Error::Shape {
            op: OP,
            expected: "[T, B, heads, N, d]".into(),
            got: format!("{:?}", x.shape()),
        });
    };
    swap_axes(ctx, OP, x, [t * b, heads, n, d], 1, &[t, b, n, heads * d])
}
