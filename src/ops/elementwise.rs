//! Elementwise helpers between the big kernels (shaders/elementwise.wgsl): residual adds,
//! the reversible blocks' scaled adds, gradient accumulation, moving averages, bias rows,
//! range copies, ReLU.
//!
//! Backward passes: `y = a + b` gives `da = db = dy`; `y = a + (b + c) / 2` gives
//! `da = dy`, `db = dc = dy / 2` ([`add_avg_backward`]); where a gradient meets another
//! on a residual path, [`axpy_into`] accumulates it.

use super::to_u32;
use crate::error::{Error, Result};
use crate::gpu::{grid_1d, Access, DType, GpuContext, Kernel, Shader, Tensor};

const WEIGHTED_SUM: Kernel = Kernel {
    shader: Shader::Elementwise,
    entry: "weighted_sum",
    bindings: &[Access::Read, Access::Read, Access::Read, Access::ReadWrite],
};

const AXPY: Kernel = Kernel {
    shader: Shader::Elementwise,
    entry: "axpy",
    bindings: &[Access::Read, Access::ReadWrite],
};

const LERP: Kernel = Kernel {
    shader: Shader::Elementwise,
    entry: "lerp",
    bindings: &[Access::Read, Access::ReadWrite],
};

const ADD_BIAS: Kernel = Kernel {
    shader: Shader::Elementwise,
    entry: "add_bias",
    bindings: &[Access::Read, Access::ReadWrite],
};

const RELU: Kernel = Kernel {
    shader: Shader::Elementwise,
    entry: "relu",
    bindings: &[Access::Read, Access::ReadWrite],
};

const RELU_BACKWARD: Kernel = Kernel {
    shader: Shader::Elementwise,
    entry: "relu_backward",
    bindings: &[Access::Read, Access::Read, Access::ReadWrite],
};

const COPY_RANGE: Kernel = Kernel {
    shader: Shader::Elementwise,
    entry: "copy_range",
    bindings: &[Access::Read, Access::ReadWrite],
};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct SumParams {
    len: u32,
    c0: f32,
    c1: f32,
    c2: f32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct AxpyParams {
    len: u32,
    alpha: f32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct BiasParams {
    len: u32,
    channels: u32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ReluParams {
    len: u32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct RangeParams {
    len: u32,
    src_offset: u32,
    dst_offset: u32,
}

fn elements(ctx: &GpuContext, len: usize) -> Result<[u32; 3]> {
    grid_1d(ctx, len.div_ceil(256) as u64)
}

/// `sum_i c_i x_i` over one to three f32 tensors of the same shape, into a new tensor.
pub fn weighted_sum(ctx: &GpuContext, terms: &[(f32, &Tensor)]) -> Result<Tensor> {
    const OP: &str = "weighted_sum";
    let Some(&(_, first)) = terms.first() else {
        return Err(Error::InvalidArgument(format!("{OP}: no terms")));
    };
    if terms.len() > 3 {
        return Err(Error::InvalidArgument(format!(
            "{OP}: at most 3 terms, got {}",
            terms.len()
        )));
    }
    for (_, t) in terms {
        t.expect(OP, first.shape(), DType::F32)?;
    }
    let out = ctx.empty(first.shape(), DType::F32)?;
    let coef = |i: usize| terms.get(i).map_or(0.0, |t| t.0);
    let tensor = |i: usize| terms.get(i).map_or(first, |t| t.1);
    let params = SumParams {
        len: to_u32(OP, "len", first.len())?,
        c0: coef(0),
        c1: coef(1),
        c2: coef(2),
    };
    ctx.dispatch(
        WEIGHTED_SUM,
        &[("TERMS", terms.len() as f64)],
        &[tensor(0), tensor(1), tensor(2), &out],
        &params,
        elements(ctx, first.len())?,
    )?;
    Ok(out)
}

/// Residual add `a + b`.
pub fn add(ctx: &GpuContext, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    weighted_sum(ctx, &[(1.0, a), (1.0, b)])
}

/// The reversible blocks' mix `a + (b + c) / 2`.
pub fn add_avg(ctx: &GpuContext, a: &Tensor, b: &Tensor, c: &Tensor) -> Result<Tensor> {
    weighted_sum(ctx, &[(1.0, a), (0.5, b), (0.5, c)])
}

/// `alpha x` into a new tensor.
pub fn scale(ctx: &GpuContext, x: &Tensor, alpha: f32) -> Result<Tensor> {
    weighted_sum(ctx, &[(alpha, x)])
}

/// Backward of [`add`]: `(da, db) = (dy, dy)` (the same tensor twice, no copy).
pub fn add_backward(dy: &Tensor) -> (Tensor, Tensor) {
    (dy.clone(), dy.clone())
}

/// Backward of [`add_avg`]: `(da, d_bc)` with `da = dy` (shared, no copy) and
/// `db = dc = d_bc = dy / 2`.
pub fn add_avg_backward(ctx: &GpuContext, dy: &Tensor) -> Result<(Tensor, Tensor)> {
    Ok((dy.clone(), scale(ctx, dy, 0.5)?))
}

/// `y += alpha x` in place (gradient accumulation).
pub fn axpy_into(ctx: &GpuContext, y: &Tensor, x: &Tensor, alpha: f32) -> Result<()> {
    const OP: &str = "axpy_into";
    y.expect(OP, y.shape(), DType::F32)?;
    x.expect(OP, y.shape(), DType::F32)?;
    if std::ptr::eq(x.buffer(), y.buffer()) {
        return Err(Error::InvalidArgument(format!(
            "{OP}: x and y share a buffer (use scale for y *= 1 + alpha)"
        )));
    }
    let params = AxpyParams {
        len: to_u32(OP, "len", y.len())?,
        alpha,
    };
    ctx.dispatch(AXPY, &[], &[x, y], &params, elements(ctx, y.len())?)
}

/// `y += t (x - y)` in place: `y` moves the fraction `t` of the way to `x` (an
/// exponential moving average with decay `1 - t`).
pub fn lerp_into(ctx: &GpuContext, y: &Tensor, x: &Tensor, t: f32) -> Result<()> {
    const OP: &str = "lerp_into";
    y.expect(OP, y.shape(), DType::F32)?;
    x.expect(OP, y.shape(), DType::F32)?;
    if std::ptr::eq(x.buffer(), y.buffer()) {
        return Err(Error::InvalidArgument(format!(
            "{OP}: x and y share a buffer"
        )));
    }
    let params = AxpyParams {
        len: to_u32(OP, "len", y.len())?,
        alpha: t,
    };
    ctx.dispatch(LERP, &[], &[x, y], &params, elements(ctx, y.len())?)
}

/// `y[.., c] += bias[c]` in place over a channel-last f32 tensor `[.., C]`.
pub fn add_bias_into(ctx: &GpuContext, y: &Tensor, bias: &Tensor) -> Result<()> {
    const OP: &str = "add_bias_into";
    y.expect(OP, y.shape(), DType::F32)?;
    let channels = y.shape().last().copied().unwrap_or(1);
    bias.expect(OP, &[channels], DType::F32)?;
    let params = BiasParams {
        len: to_u32(OP, "len", y.len())?,
        channels: to_u32(OP, "channels", channels.max(1))?,
    };
    ctx.dispatch(ADD_BIAS, &[], &[bias, y], &params, elements(ctx, y.len())?)
}

/// `max(x, 0)` into a new tensor.
pub fn relu(ctx: &GpuContext, x: &Tensor) -> Result<Tensor> {
    const OP: &str = "relu";
    x.expect(OP, x.shape(), DType::F32)?;
    let out = ctx.empty(x.shape(), DType::F32)?;
    let params = ReluParams {
        len: to_u32(OP, "len", x.len())?,
    };
    ctx.dispatch(RELU, &[], &[x, &out], &params, elements(ctx, x.len())?)?;
    Ok(out)
}

/// Backward of [`relu`] at its input `x`: `dy` where `x > 0`, else 0.
pub fn relu_backward(ctx: &GpuContext, dy: &Tensor, x: &Tensor) -> Result<Tensor> {
    const OP: &str = "relu_backward";
    x.expect(OP, x.shape(), DType::F32)?;
    dy.expect(OP, x.shape(), DType::F32)?;
    let dx = ctx.empty(x.shape(), DType::F32)?;
    let params = ReluParams {
        len: to_u32(OP, "len", x.len())?,
    };
    ctx.dispatch(
        RELU_BACKWARD,
        &[],
        &[dy, x, &dx],
        &params,
        elements(ctx, x.len())?,
    )?;
    Ok(dx)
}

/// `dst[dst_offset .. + len] = src[src_offset .. + len]` (f32 elements, flat indices).
pub fn copy_range(
    ctx: &GpuContext,
    src: &Tensor,
    src_offset: usize,
    dst: &Tensor,
    dst_offset: usize,
    len: usize,
) -> Result<()> {
    const OP: &str = "copy_range";
    src.expect(OP, src.shape(), DType::F32)?;
    dst.expect(OP, dst.shape(), DType::F32)?;
    if src_offset + len > src.len() || dst_offset + len > dst.len() {
        return Err(Error::Shape {
            op: OP,
            expected: format!(
                "ranges {src_offset}..{} of src and {dst_offset}..{} of dst in bounds",
                src_offset + len,
                dst_offset + len
            ),
            got: format!("{:?} and {:?}", src.shape(), dst.shape()),
        });
    }
    if std::ptr::eq(src.buffer(), dst.buffer()) {
        return Err(Error::InvalidArgument(format!(
            "{OP}: src and dst share a buffer"
        )));
    }
    let params = RangeParams {
        len: to_u32(OP, "len", len)?,
        src_offset: to_u32(OP, "src offset", src_offset)?,
        dst_offset: to_u32(OP, "dst offset", dst_offset)?,
    };
    ctx.dispatch(COPY_RANGE, &[], &[src, dst], &params, elements(ctx, len)?)
}
