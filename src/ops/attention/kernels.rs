//! Host side of shaders/attention.wgsl: shape checks, outputs, workgroup counts of the
//! map LIF, the SSA_Bin threshold / shift / running statistics / surrogate, spike
//! packing along either axis, unpacking, per-head scaling and its gradient, and the
//! non-zero count.

use super::MapLif;
use crate::error::{Error, Result};
use crate::gpu::{grid_1d, words_per_row, Access, DType, GpuContext, Kernel, Shader, Tensor};
use crate::ops::to_u32;

const fn kernel(entry: &'static str, bindings: &'static [Access]) -> Kernel {
    Kernel {
        shader: Shader::Attention,
        entry,
        bindings,
    }
}

use Access::{Read as R, ReadWrite as W};

const LIF_MAP: Kernel = kernel("lif_map", &[R, W, W]);
const LIF_MAP_BACKWARD: Kernel = kernel("lif_map_backward", &[R, R, W]);
const THRESHOLD_MAP: Kernel = kernel("threshold_map", &[R, R, W, W, W]);
const SHIFT_MEAN: Kernel = kernel("shift_mean", &[R, R, W, W]);
const RUNNING_UPDATE: Kernel = kernel("running_update", &[R, W]);
const SOFTMAX_SURROGATE: Kernel = kernel("softmax_surrogate", &[R, R, W]);
const PACK_SPIKES: Kernel = kernel("pack_spikes", &[R, W]);
const UNPACK_BITS: Kernel = kernel("unpack_bits", &[R, W]);
const SCALE_HEADS: Kernel = kernel("scale_heads", &[R, R, W]);
const LAMBDA_GRAD: Kernel = kernel("lambda_grad", &[R, R, W]);
const COUNT_NONZERO: Kernel = kernel("count_nonzero", &[R, W]);

/// Invocations (packed words) per workgroup of the map kernels.
const MAP_WG: usize = 64;

fn flag(on: bool) -> f64 {
    if on {
        1.0
    } else {
        0.0
    }
}

/// `[rows, cols]` of the matrices of a `[batch, rows, cols]` tensor.
fn matrix_dims(op: &'static str, x: &Tensor) -> Result<(usize, usize, usize)> {
    match *x.shape() {
        [batch, rows, cols] => Ok((batch, rows, cols)),
        _ => Err(Error::Shape {
            op,
            expected: "[batch, rows, cols]".into(),
            got: format!("{:?}", x.shape()),
        }),
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct LifParams {
    steps: u32,
    maps: u32,
    rows: u32,
    cols: u32,
    wpr: u32,
    groups_per_map: u32,
    tau: f32,
    v_th: f32,
}

/// The map LIF over T: `x` f32 `[T * maps, rows, cols]` (time first) to the packed spike
/// map `PackedBits [T * maps, rows, cols]`, and the U32 `[2]` count of its ones.
pub(crate) fn lif_map(
    ctx: &GpuContext,
    x: &Tensor,
    steps: usize,
    lif: &MapLif,
) -> Result<(Tensor, Tensor)> {
    const OP: &str = "lif_map";
    let (batch, rows, cols) = matrix_dims(OP, x)?;
    x.expect(OP, &[batch, rows, cols], DType::F32)?;
    if steps == 0 || !batch.is_multiple_of(steps) {
        return Err(Error::InvalidArgument(format!(
            "{OP}: {batch} maps do not split into T = {steps} steps"
        )));
    }
    let maps = batch / steps;
    let wpr = words_per_row(cols);
    let groups_per_map = (rows * wpr).div_ceil(MAP_WG);
    let bits = ctx.empty(&[batch, rows, cols], DType::PackedBits)?;
    let ones = ctx.zeros(&[2], DType::U32)?;
    to_u32(OP, "map size", x.len().max(batch * rows * wpr))?;
    let params = LifParams {
        steps: to_u32(OP, "T", steps)?,
        maps: to_u32(OP, "maps", maps)?,
        rows: to_u32(OP, "rows", rows)?,
        cols: to_u32(OP, "cols", cols)?,
        wpr: to_u32(OP, "words per row", wpr)?,
        groups_per_map: to_u32(OP, "groups per map", groups_per_map)?,
        tau: lif.tau,
        v_th: lif.v_th,
    };
    ctx.dispatch(
        LIF_MAP,
        &[],
        &[x, &bits, &ones],
        &params,
        grid_1d(ctx, (maps * groups_per_map) as u64)?,
    )?;
    Ok((bits, ones))
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct LifBackParams {
    steps: u32,
    len: u32,
    tau: f32,
    v_th: f32,
    alpha: f32,
}

/// BPTT of [`lif_map`]: `dL/dX` from the saved inputs `x` and `grad_s = dL/dS`, both f32
/// of one shape with T leading (as `[T * maps, rows, cols]`).
pub(crate) fn lif_map_backward(
    ctx: &GpuContext,
    x: &Tensor,
    grad_s: &Tensor,
    steps: usize,
    lif: &MapLif,
) -> Result<Tensor> {
    const OP: &str = "lif_map_backward";
    x.expect(OP, x.shape(), DType::F32)?;
    grad_s.expect(OP, x.shape(), DType::F32)?;
    if steps == 0 || !x.len().is_multiple_of(steps) {
        return Err(Error::InvalidArgument(format!(
            "{OP}: {} elements do not split into T = {steps} steps",
            x.len()
        )));
    }
    let len = x.len() / steps;
    to_u32(OP, "size", x.len())?;
    let gx = ctx.empty(x.shape(), DType::F32)?;
    let params = LifBackParams {
        steps: to_u32(OP, "T", steps)?,
        len: to_u32(OP, "len", len)?,
        tau: lif.tau,
        v_th: lif.v_th,
        alpha: lif.alpha,
    };
    ctx.dispatch(
        LIF_MAP_BACKWARD,
        &[],
        &[x, grad_s, &gx],
        &params,
        grid_1d(ctx, len.div_ceil(256) as u64)?,
    )?;
    Ok(gx)
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ThresholdParams {
    maps: u32,
    heads: u32,
    rows: u32,
    cols: u32,
    wpr: u32,
    groups_per_map: u32,
}

/// What [`threshold_map`] produces.
pub(crate) struct Thresholded {
    /// `PackedBits [maps, rows, cols]`: `x > delta[h]`.
    pub bits: Tensor,
    /// U32 `[2]`: the number of ones.
    pub ones: Tensor,
    /// U32 `[heads, 2]`: per head, the sum of the (integer) scores, when training.
    pub sums: Option<Tensor>,
}

/// SSA_Bin's map: `x > delta[h]` for scores `x` f32 `[maps, rows, cols]` with
/// `h = map % heads`; when `training`, also the per-head sums of the scores.
pub(crate) fn threshold_map(
    ctx: &GpuContext,
    x: &Tensor,
    delta: &Tensor,
    heads: usize,
    training: bool,
) -> Result<Thresholded> {
    const OP: &str = "threshold_map";
    let (maps, rows, cols) = matrix_dims(OP, x)?;
    x.expect(OP, &[maps, rows, cols], DType::F32)?;
    delta.expect(OP, &[heads], DType::F32)?;
    let wpr = words_per_row(cols);
    let groups_per_map = (rows * wpr).div_ceil(MAP_WG);
    to_u32(OP, "map size", x.len().max(maps * rows * wpr))?;
    let bits = ctx.empty(&[maps, rows, cols], DType::PackedBits)?;
    let ones = ctx.zeros(&[2], DType::U32)?;
    let sums = ctx.zeros(&[if training { heads } else { 1 }, 2], DType::U32)?;
    let params = ThresholdParams {
        maps: to_u32(OP, "maps", maps)?,
        heads: to_u32(OP, "heads", heads)?,
        rows: to_u32(OP, "rows", rows)?,
        cols: to_u32(OP, "cols", cols)?,
        wpr: to_u32(OP, "words per row", wpr)?,
        groups_per_map: to_u32(OP, "groups per map", groups_per_map)?,
    };
    ctx.dispatch(
        THRESHOLD_MAP,
        &[("TRAINING", flag(training))],
        &[x, delta, &bits, &ones, &sums],
        &params,
        grid_1d(ctx, (maps * groups_per_map) as u64)?,
    )?;
    Ok(Thresholded {
        bits,
        ones,
        sums: training.then_some(sums),
    })
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ShiftParams {
    maps: u32,
    heads: u32,
    rows: u32,
    cols: u32,
    kappa: f32,
}

/// SSA_Bin's shift: `out = kappa * bv - mean[h, e]` for `bv` f32 `[maps, rows, cols]`
/// (integer counts) and `mean` f32 `[heads, cols]`; when `training`, also the U32
/// `[heads, cols, 2]` sums of `bv` per (h, e).
pub(crate) fn shift_mean(
    ctx: &GpuContext,
    bv: &Tensor,
    mean: &Tensor,
    heads: usize,
    kappa: f32,
    training: bool,
) -> Result<(Tensor, Option<Tensor>)> {
    const OP: &str = "shift_mean";
    let (maps, rows, cols) = matrix_dims(OP, bv)?;
    bv.expect(OP, &[maps, rows, cols], DType::F32)?;
    mean.expect(OP, &[heads, cols], DType::F32)?;
    to_u32(OP, "size", bv.len())?;
    let out = ctx.empty(bv.shape(), DType::F32)?;
    let sums = ctx.zeros(&[if training { heads * cols } else { 1 }, 2], DType::U32)?;
    let params = ShiftParams {
        maps: to_u32(OP, "maps", maps)?,
        heads: to_u32(OP, "heads", heads)?,
        rows: to_u32(OP, "rows", rows)?,
        cols: to_u32(OP, "cols", cols)?,
        kappa,
    };
    ctx.dispatch(
        SHIFT_MEAN,
        &[("TRAINING", flag(training))],
        &[bv, mean, &out, &sums],
        &params,
        grid_1d(ctx, maps as u64)?,
    )?;
    Ok((out, training.then_some(sums)))
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct UpdateParams {
    len: u32,
    momentum: f32,
    factor: f32,
}

/// `state = momentum * state + (1 - momentum) * factor * sum`, in place, for U32
/// `[len, 2]` (lo, hi) sums and an f32 state of `len` elements.
pub(crate) fn running_update(
    ctx: &GpuContext,
    sums: &Tensor,
    state: &Tensor,
    momentum: f32,
    factor: f32,
) -> Result<()> {
    const OP: &str = "running_update";
    let len = state.len();
    state.expect(OP, state.shape(), DType::F32)?;
    sums.expect(OP, &[len, 2], DType::U32)?;
    let params = UpdateParams {
        len: to_u32(OP, "len", len)?,
        momentum,
        factor,
    };
    ctx.dispatch(
        RUNNING_UPDATE,
        &[],
        &[sums, state],
        &params,
        [to_u32(OP, "groups", len.div_ceil(64))?, 1, 1],
    )
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct SurrogateParams {
    rows: u32,
    cols: u32,
}

/// `grad_x = grad_b * p (1 - p)`, `p = softmax(x)` along the last axis.
pub(crate) fn softmax_surrogate(ctx: &GpuContext, x: &Tensor, grad_b: &Tensor) -> Result<Tensor> {
    const OP: &str = "softmax_surrogate";
    x.expect(OP, x.shape(), DType::F32)?;
    grad_b.expect(OP, x.shape(), DType::F32)?;
    let cols = x.shape().last().copied().unwrap_or(1).max(1);
    let rows = x.len() / cols;
    to_u32(OP, "size", x.len())?;
    let gx = ctx.empty(x.shape(), DType::F32)?;
    let params = SurrogateParams {
        rows: to_u32(OP, "rows", rows)?,
        cols: to_u32(OP, "cols", cols)?,
    };
    ctx.dispatch(
        SOFTMAX_SURROGATE,
        &[],
        &[x, grad_b, &gx],
        &params,
        grid_1d(ctx, rows.div_ceil(64) as u64)?,
    )?;
    Ok(gx)
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct PackParams {
    batch: u32,
    rows: u32,
    bits: u32,
    wpr: u32,
    batch_stride: u32,
    row_stride: u32,
    bit_stride: u32,
}

fn pack_columns(ctx: &GpuContext, x: &Tensor) -> Result<Tensor> {
    let op = "pack_transposed";
    let (batch, r, c) = matrix_dims(op, x)?;
    x.expect(op, &[batch, r, c], DType::F32)?;
    // Output row = input column, bits running down the input's rows.
    let (rows, bits, row_stride, bit_stride) = (c, r, 1, c);
    let wpr = words_per_row(bits);
    let words = batch * rows * wpr;
    to_u32(op, "size", x.len().max(words))?;
    let out = ctx.empty(&[batch, rows, bits], DType::PackedBits)?;
    let params = PackParams {
        batch: to_u32(op, "batch", batch)?,
        rows: to_u32(op, "rows", rows)?,
        bits: to_u32(op, "bits", bits)?,
        wpr: to_u32(op, "words per row", wpr)?,
        batch_stride: to_u32(op, "batch stride", r * c)?,
        row_stride: to_u32(op, "row stride", row_stride)?,
        bit_stride: to_u32(op, "bit stride", bit_stride)?,
    };
    ctx.dispatch(
        PACK_SPIKES,
        &[],
        &[x, &out],
        &params,
        grid_1d(ctx, words.div_ceil(256) as u64)?,
    )?;
    Ok(out)
}

/// Spikes `x` f32 `[batch, R, C]` packed along C: `PackedBits [batch, R, C]`, bit =
/// `x > 0` (pack.wgsl; the strided kernel here serves the transposed packing).
pub fn pack_spike_rows(ctx: &GpuContext, x: &Tensor) -> Result<Tensor> {
    crate::ops::pack_bits(ctx, x, crate::ops::PackMode::Spikes)
}

/// Spikes `x` f32 `[batch, R, C]` packed along R: `PackedBits [batch, C, R]`, bit =
/// `x > 0` (the transposed operand of a binary matmul, e.g. V for `A V`).
pub fn pack_transposed(ctx: &GpuContext, x: &Tensor) -> Result<Tensor> {
    pack_columns(ctx, x)
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct UnpackParams {
    rows: u32,
    cols: u32,
    wpr: u32,
}

/// `PackedBits [..., C]` to the {0,1} f32 tensor `[..., C]` it stands for.
pub fn unpack_bits(ctx: &GpuContext, bits: &Tensor) -> Result<Tensor> {
    const OP: &str = "unpack_bits";
    bits.expect(OP, bits.shape(), DType::PackedBits)?;
    let cols = bits.shape().last().copied().unwrap_or(1).max(1);
    let rows = bits.len() / cols;
    to_u32(OP, "size", bits.len().max(rows * words_per_row(cols)))?;
    let out = ctx.empty(bits.shape(), DType::F32)?;
    let params = UnpackParams {
        rows: to_u32(OP, "rows", rows)?,
        cols: to_u32(OP, "cols", cols)?,
        wpr: to_u32(OP, "words per row", words_per_row(cols))?,
    };
    ctx.dispatch(
        UNPACK_BITS,
        &[],
        &[bits, &out],
        &params,
        grid_1d(ctx, (rows * words_per_row(cols)).div_ceil(256) as u64)?,
    )?;
    Ok(out)
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ScaleParams {
    len: u32,
    inner: u32,
    heads: u32,
    step_len: u32,
    scale: f32,
}

/// `y = x * scale * factor[t, h]` for `x` f32 `[T, B, heads, ...]` and `factor` f32
/// `[T, heads]`, or `y = x * scale` without a factor. `y` has `x`'s shape.
pub(crate) fn scale_heads(
    ctx: &GpuContext,
    x: &Tensor,
    scale: f32,
    factor: Option<&Tensor>,
) -> Result<Tensor> {
    const OP: &str = "scale_heads";
    x.expect(OP, x.shape(), DType::F32)?;
    let s = x.shape();
    if s.len() < 3 {
        return Err(Error::Shape {
            op: OP,
            expected: "[T, B, heads, ...]".into(),
            got: format!("{s:?}"),
        });
    }
    let (t, b, heads) = (s[0], s[1], s[2]);
    if let Some(f) = factor {
        f.expect(OP, &[t, heads], DType::F32)?;
    }
    let inner: usize = s[3..].iter().product();
    to_u32(OP, "size", x.len())?;
    let y = ctx.empty(s, DType::F32)?;
    let has_factor = factor.is_some();
    // A binding must exist even when the kernel does not read it.
    let unused = ctx.empty(&[1], DType::F32)?;
    let factor = factor.unwrap_or(&unused);
    let params = ScaleParams {
        len: to_u32(OP, "len", x.len())?,
        inner: to_u32(OP, "inner", inner.max(1))?,
        heads: to_u32(OP, "heads", heads.max(1))?,
        step_len: to_u32(OP, "step", (b * heads * inner).max(1))?,
        scale,
    };
    ctx.dispatch(
        SCALE_HEADS,
        &[("HAS_FACTOR", flag(has_factor))],
        &[x, factor, &y],
        &params,
        grid_1d(ctx, x.len().div_ceil(256) as u64)?,
    )?;
    Ok(y)
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct LambdaParams {
    batch: u32,
    heads: u32,
    inner: u32,
    scale: f32,
}

/// `out[t, h] = scale * sum_{b, ...} dy * prod` for `dy`, `prod` f32 `[T, B, heads, ...]`:
/// the gradient of a per-(t, head) factor.
pub(crate) fn lambda_grad(
    ctx: &GpuContext,
    dy: &Tensor,
    prod: &Tensor,
    scale: f32,
) -> Result<Tensor> {
    const OP: &str = "lambda_grad";
    dy.expect(OP, dy.shape(), DType::F32)?;
    prod.expect(OP, dy.shape(), DType::F32)?;
    let s = dy.shape();
    if s.len() < 3 {
        return Err(Error::Shape {
            op: OP,
            expected: "[T, B, heads, ...]".into(),
            got: format!("{s:?}"),
        });
    }
    let (t, b, heads) = (s[0], s[1], s[2]);
    let inner: usize = s[3..].iter().product();
    to_u32(OP, "size", dy.len())?;
    let out = ctx.zeros(&[t, heads], DType::F32)?;
    let params = LambdaParams {
        batch: to_u32(OP, "B", b)?,
        heads: to_u32(OP, "heads", heads)?,
        inner: to_u32(OP, "inner", inner)?,
        scale,
    };
    ctx.dispatch(
        LAMBDA_GRAD,
        &[],
        &[dy, prod, &out],
        &params,
        [to_u32(OP, "heads", heads)?, to_u32(OP, "T", t)?, 1],
    )?;
    Ok(out)
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct CountParams {
    len: u32,
}

/// The U32 `[2]` (lo, hi) count of non-zero elements of an f32 tensor.
pub fn count_nonzero(ctx: &GpuContext, x: &Tensor) -> Result<Tensor> {
    const OP: &str = "count_nonzero";
    x.expect(OP, x.shape(), DType::F32)?;
    let count = ctx.zeros(&[2], DType::U32)?;
    let params = CountParams {
        len: to_u32(OP, "len", x.len())?,
    };
    ctx.dispatch(
        COUNT_NONZERO,
        &[],
        &[x, &count],
        &params,
        grid_1d(ctx, x.len().div_ceil(1024) as u64)?,
    )?;
    Ok(count)
}
