//! Host side of shaders/attention.wgsl: shape checks, outputs, workgroup counts of the
//! maps built from packed scores (the map LIF and its backward, SSA_Bin's threshold and
//! surrogate), the packed map x spikes products, the running statistics, spike packing
//! along either axis, unpacking, scaling, the per-head scale's gradient, and the non-zero
//! count.

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

const SCORE_LIF_MAP: Kernel = kernel("score_lif_map", &[R, R, W, W]);
const SCORE_LIF_BACKWARD: Kernel = kernel("score_lif_backward", &[R, R, R, R, W, W]);
const SCORE_LIF_BACKWARD_VEC4: Kernel = kernel("score_lif_backward_vec4", &[R, R, R, R, W, W]);
const SCORE_THRESHOLD_MAP: Kernel = kernel("score_threshold_map", &[R, R, R, W, W, W]);
const SCORE_SOFTMAX_SURROGATE: Kernel = kernel("score_softmax_surrogate", &[R, R, R, W]);
const SCORE_SOFTMAX_SURROGATE_VEC4: Kernel = kernel("score_softmax_surrogate_vec4", &[R, R, R, W]);
const BITS_PRODUCT: Kernel = kernel("bits_product", &[R, R, R, W, W]);
const BITS_PRODUCT_VEC4: Kernel = kernel("bits_product_vec4", &[R, R, R, W, W]);
const RUNNING_UPDATE: Kernel = kernel("running_update", &[R, W]);
const PACK_SPIKES: Kernel = kernel("pack_spikes", &[R, W]);
const PACK_COLUMNS4: Kernel = kernel("pack_columns4", &[R, W]);
const UNPACK_BITS: Kernel = kernel("unpack_bits", &[R, R, W]);
const UNPACK_BITS_VEC4: Kernel = kernel("unpack_bits_vec4", &[R, R, W]);
const SCALE_ALL: Kernel = kernel("scale_all", &[R, W]);
const LAMBDA_GRAD: Kernel = kernel("lambda_grad", &[R, W]);
const COUNT_NONZERO: Kernel = kernel("count_nonzero", &[R, W]);

/// Invocations per workgroup of the score and product kernels.
const SCORE_WG: usize = 64;

/// Rows per invocation of the score kernels (the rows of a 4 x 4 score tile).
const TILE_ROWS: usize = 4;

/// The invocations of the map kernels for `[rows, cols]` maps, one per (map, word of
/// 32 columns, group of `TILE_ROWS` rows): words per packed row, words holding columns,
/// row groups.
fn map_grid(rows: usize, cols: usize) -> (usize, usize, usize) {
    (
        words_per_row(cols),
        cols.div_ceil(32),
        rows.div_ceil(TILE_ROWS),
    )
}

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

/// The sizes of the scores `S = X Y^T` of packed operands `x` `PackedBits [maps, rows, k]`
/// and `y` `PackedBits [maps, cols, k]`: `(maps, rows, cols, vec4 chunks per row)`.
fn score_dims(op: &'static str, x: &Tensor, y: &Tensor) -> Result<(usize, usize, usize, usize)> {
    let (maps, rows, k) = matrix_dims(op, x)?;
    x.expect(op, &[maps, rows, k], DType::PackedBits)?;
    let (_, cols, _) = matrix_dims(op, y)?;
    y.expect(op, &[maps, cols, k], DType::PackedBits)?;
    if maps == 0 || rows == 0 || cols == 0 || k == 0 {
        return Err(Error::InvalidArgument(format!(
            "{op}: empty scores [{maps}, {rows}, {cols}] over {k} bits"
        )));
    }
    to_u32(op, "operand size", maps * rows.max(cols) * words_per_row(k))?;
    to_u32(op, "map size", maps * rows * cols.max(words_per_row(cols)))?;
    Ok((maps, rows, cols, words_per_row(k) / 4))
}

/// The `SCORE_WORDS` override of the kernels reading packed operands of `k` bits: the
/// words of chunk 0 that can hold bits.
fn score_words(x: &Tensor) -> f64 {
    match x.shape().last().copied().unwrap_or(128) {
        0..=32 => 1.0,
        33..=64 => 2.0,
        _ => 4.0,
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ScoreLifParams {
    steps: u32,
    maps: u32,
    rows: u32,
    cols: u32,
    chunks: u32,
    wpr: u32,
    words: u32,
    groups: u32,
    tau: f32,
    v_th: f32,
}

/// The binary map `A = LIF over T of X Y^T` for spikes packed along the contracted axis,
/// `x` `PackedBits [T * maps, rows, k]` and `y` `PackedBits [T * maps, cols, k]` (time
/// first): the packed map `PackedBits [T * maps, rows, cols]` and the U32 `[2]` count of
/// its ones. The scores are computed in the kernel and never stored.
pub(crate) fn score_lif_map(
    ctx: &GpuContext,
    x: &Tensor,
    y: &Tensor,
    steps: usize,
    lif: &MapLif,
) -> Result<(Tensor, Tensor)> {
    const OP: &str = "score_lif_map";
    let (batch, rows, cols, chunks) = score_dims(OP, x, y)?;
    if steps == 0 || !batch.is_multiple_of(steps) {
        return Err(Error::InvalidArgument(format!(
            "{OP}: {batch} maps do not split into T = {steps} steps"
        )));
    }
    let maps = batch / steps;
    let (wpr, words, groups) = map_grid(rows, cols);
    let bits = ctx.empty(&[batch, rows, cols], DType::PackedBits)?;
    let ones = ctx.zeros(&[2], DType::U32)?;
    let params = ScoreLifParams {
        steps: to_u32(OP, "T", steps)?,
        maps: to_u32(OP, "maps", maps)?,
        rows: to_u32(OP, "rows", rows)?,
        cols: to_u32(OP, "cols", cols)?,
        chunks: to_u32(OP, "chunks", chunks)?,
        wpr: to_u32(OP, "words per row", wpr)?,
        words: to_u32(OP, "words", words)?,
        groups: to_u32(OP, "row groups", groups)?,
        tau: lif.tau,
        v_th: lif.v_th,
    };
    ctx.dispatch(
        SCORE_LIF_MAP,
        &[("SCORE_WORDS", score_words(x))],
        &[x, y, &bits, &ones],
        &params,
        grid_1d(ctx, (maps * words * groups).div_ceil(SCORE_WG) as u64)?,
    )?;
    Ok((bits, ones))
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ScoreLifBackParams {
    steps: u32,
    maps: u32,
    rows: u32,
    cols: u32,
    chunks: u32,
    words: u32,
    groups: u32,
    heads: u32,
    scale: f32,
    tau: f32,
    v_th: f32,
    alpha: f32,
}

/// BPTT of [`score_lif_map`]: `dL/dS` f32 `[T * maps, rows, cols]` from the same packed
/// operands (the scores are recomputed) and `grad_a` of that shape, `dL/dA` up to the
/// output scale of the map's product: `dL/dA = scale * factor[t, h] * grad_a` with
/// `factor` f32 `[T, heads]`. Also returns the gradient of `factor`, f32 `[T, heads]`:
/// `scale * sum A grad_a` over the maps of (t, h).
pub(crate) fn score_lif_backward(
    ctx: &GpuContext,
    x: &Tensor,
    y: &Tensor,
    grad_a: &Tensor,
    (factor, scale): (&Tensor, f32),
    lif: &MapLif,
) -> Result<(Tensor, Tensor)> {
    const OP: &str = "score_lif_backward";
    let (batch, rows, cols, chunks) = score_dims(OP, x, y)?;
    grad_a.expect(OP, &[batch, rows, cols], DType::F32)?;
    let (steps, heads) = factor_dims(OP, factor, batch)?;
    let maps = batch / steps;
    let (_, words, groups) = map_grid(rows, cols);
    let gs = ctx.empty(&[batch, rows, cols], DType::F32)?;
    // The factor's gradient, per invocation: [T, B, heads, words * groups].
    let shares = ctx.empty(&[steps, maps / heads, heads, words * groups], DType::F32)?;
    let params = ScoreLifBackParams {
        steps: to_u32(OP, "T", steps)?,
        maps: to_u32(OP, "maps", maps)?,
        rows: to_u32(OP, "rows", rows)?,
        cols: to_u32(OP, "cols", cols)?,
        chunks: to_u32(OP, "chunks", chunks)?,
        words: to_u32(OP, "words", words)?,
        groups: to_u32(OP, "row groups", groups)?,
        heads: to_u32(OP, "heads", heads)?,
        scale,
        tau: lif.tau,
        v_th: lif.v_th,
        alpha: lif.alpha,
    };
    let kernel = if cols.is_multiple_of(4) {
        SCORE_LIF_BACKWARD_VEC4
    } else {
        SCORE_LIF_BACKWARD
    };
    ctx.dispatch(
        kernel,
        &[("SCORE_WORDS", score_words(x))],
        &[x, y, factor, grad_a, &gs, &shares],
        &params,
        grid_1d(ctx, (maps * words * groups).div_ceil(SCORE_WG) as u64)?,
    )?;
    Ok((gs, lambda_grad(ctx, &shares, scale)?))
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ScoreThresholdParams {
    maps: u32,
    heads: u32,
    rows: u32,
    cols: u32,
    chunks: u32,
    wpr: u32,
    words: u32,
    groups: u32,
}

/// What [`score_threshold_map`] produces.
pub(crate) struct Thresholded {
    /// `PackedBits [maps, rows, cols]`: `X Y^T > delta[h]`.
    pub bits: Tensor,
    /// U32 `[2]`: the number of ones.
    pub ones: Tensor,
    /// U32 `[heads, 2]`: per head, the sum of the (integer) scores, when training.
    pub sums: Option<Tensor>,
}

/// SSA_Bin's map: `X Y^T > delta[h]` for packed operands `x` `PackedBits [maps, rows, k]`
/// and `y` `PackedBits [maps, cols, k]` with `h = map % heads`; when `training`, also
/// the per-head sums of the scores. The scores are computed in the kernel.
pub(crate) fn score_threshold_map(
    ctx: &GpuContext,
    x: &Tensor,
    y: &Tensor,
    delta: &Tensor,
    heads: usize,
    training: bool,
) -> Result<Thresholded> {
    const OP: &str = "score_threshold_map";
    let (maps, rows, cols, chunks) = score_dims(OP, x, y)?;
    delta.expect(OP, &[heads], DType::F32)?;
    let (wpr, words, groups) = map_grid(rows, cols);
    let bits = ctx.empty(&[maps, rows, cols], DType::PackedBits)?;
    let ones = ctx.zeros(&[2], DType::U32)?;
    let sums = ctx.zeros(&[if training { heads } else { 1 }, 2], DType::U32)?;
    let params = ScoreThresholdParams {
        maps: to_u32(OP, "maps", maps)?,
        heads: to_u32(OP, "heads", heads)?,
        rows: to_u32(OP, "rows", rows)?,
        cols: to_u32(OP, "cols", cols)?,
        chunks: to_u32(OP, "chunks", chunks)?,
        wpr: to_u32(OP, "words per row", wpr)?,
        words: to_u32(OP, "words", words)?,
        groups: to_u32(OP, "row groups", groups)?,
    };
    ctx.dispatch(
        SCORE_THRESHOLD_MAP,
        &[
            ("TRAINING", flag(training)),
            ("SCORE_WORDS", score_words(x)),
        ],
        &[x, y, delta, &bits, &ones, &sums],
        &params,
        grid_1d(ctx, (maps * words * groups).div_ceil(SCORE_WG) as u64)?,
    )?;
    Ok(Thresholded {
        bits,
        ones,
        sums: training.then_some(sums),
    })
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ScoreSoftmaxParams {
    maps: u32,
    rows: u32,
    cols: u32,
    chunks: u32,
    groups: u32,
}

/// SSA_Bin's surrogate: `grad_s = grad_b * p (1 - p)`, `p = softmax(X Y^T)` along the
/// key axis, for the packed operands of the scores and `grad_b` f32
/// `[maps, rows, cols]`.
pub(crate) fn score_softmax_surrogate(
    ctx: &GpuContext,
    x: &Tensor,
    y: &Tensor,
    grad_b: &Tensor,
) -> Result<Tensor> {
    const OP: &str = "score_softmax_surrogate";
    let (maps, rows, cols, chunks) = score_dims(OP, x, y)?;
    grad_b.expect(OP, &[maps, rows, cols], DType::F32)?;
    let gs = ctx.empty(&[maps, rows, cols], DType::F32)?;
    // An invocation per row group.
    let groups = rows.div_ceil(TILE_ROWS);
    let params = ScoreSoftmaxParams {
        maps: to_u32(OP, "maps", maps)?,
        rows: to_u32(OP, "rows", rows)?,
        cols: to_u32(OP, "cols", cols)?,
        chunks: to_u32(OP, "chunks", chunks)?,
        groups: to_u32(OP, "row groups", groups)?,
    };
    let kernel = if cols.is_multiple_of(4) {
        SCORE_SOFTMAX_SURROGATE_VEC4
    } else {
        SCORE_SOFTMAX_SURROGATE
    };
    ctx.dispatch(
        kernel,
        &[("SCORE_WORDS", score_words(x))],
        &[x, y, grad_b, &gs],
        &params,
        grid_1d(ctx, (maps * groups).div_ceil(SCORE_WG) as u64)?,
    )?;
    Ok(gs)
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ProductParams {
    maps: u32,
    maps_per_step: u32,
    heads: u32,
    rows: u32,
    cols: u32,
    chunks: u32,
    quads: u32,
    scale: f32,
}

/// The output transform of a packed product `P = X Y^T`.
enum ProductOutput<'a> {
    /// `y = scale * factor[t, h] * P` (`factor` f32 `[T, heads]`).
    Scaled { factor: &'a Tensor, scale: f32 },
    /// `y = kappa * P - mean[h, c]` (`mean` f32 `[heads, cols]`); when `training`, also
    /// the U32 `[heads, cols, 2]` sums of P per (h, c).
    Shifted {
        mean: &'a Tensor,
        kappa: f32,
        training: bool,
    },
}

/// `P = X Y^T` over `[maps, rows, cols]` for `x` `PackedBits [maps, rows, k]` and `y_bits`
/// `PackedBits [maps, cols, k]`, `h = map % heads`, with `output`'s transform: returns
/// y and, shifted and training, the sums.
fn bits_product(
    ctx: &GpuContext,
    x: &Tensor,
    y_bits: &Tensor,
    output: ProductOutput,
) -> Result<(Tensor, Option<Tensor>)> {
    const OP: &str = "bits_product";
    let (maps, rows, cols, chunks) = score_dims(OP, x, y_bits)?;
    let (coef, scale, maps_per_step, heads) = match output {
        ProductOutput::Scaled { factor, scale } => {
            let (steps, heads) = factor_dims(OP, factor, maps)?;
            (factor, scale, maps / steps, heads)
        }
        ProductOutput::Shifted { mean, kappa, .. } => {
            let heads = mean.shape().first().copied().unwrap_or(0);
            mean.expect(OP, &[heads, cols], DType::F32)?;
            if heads == 0 || !maps.is_multiple_of(heads) {
                return Err(Error::InvalidArgument(format!(
                    "{OP}: {maps} maps do not split into {heads} heads"
                )));
            }
            (mean, kappa, maps, heads)
        }
    };
    let quads = cols.div_ceil(4);
    let params = ProductParams {
        maps: to_u32(OP, "maps", maps)?,
        maps_per_step: to_u32(OP, "maps per step", maps_per_step)?,
        heads: to_u32(OP, "heads", heads)?,
        rows: to_u32(OP, "rows", rows)?,
        cols: to_u32(OP, "cols", cols)?,
        chunks: to_u32(OP, "chunks", chunks)?,
        quads: to_u32(OP, "quads", quads)?,
        scale,
    };
    let dims = [maps, rows, cols];
    let out = ctx.empty(&dims, DType::F32)?;
    let (shifted, training) = match output {
        ProductOutput::Scaled { .. } => (false, false),
        ProductOutput::Shifted { training, .. } => (true, training),
    };
    let sums = ctx.zeros(&[if training { heads * cols } else { 1 }, 2], DType::U32)?;
    let kernel = if cols.is_multiple_of(4) {
        BITS_PRODUCT_VEC4
    } else {
        BITS_PRODUCT
    };
    ctx.dispatch(
        kernel,
        &[
            ("SHIFTED", flag(shifted)),
            ("TRAINING", flag(training)),
            ("SCORE_WORDS", score_words(x)),
        ],
        &[x, y_bits, coef, &out, &sums],
        &params,
        grid_1d(ctx, (maps * quads).div_ceil(SCORE_WG) as u64)?,
    )?;
    Ok((out, training.then_some(sums)))
}

/// BESTformer's output from the packed map: `y = scale * factor[t, h] * X Y^T` (A V or
/// Q A) for `x` `PackedBits [T * maps, rows, k]`, `y_bits` `PackedBits [T * maps, cols,
/// k]` and `factor` f32 `[T, heads]`: f32 `[T * maps, rows, cols]`.
pub(crate) fn bits_product_scaled(
    ctx: &GpuContext,
    x: &Tensor,
    y_bits: &Tensor,
    factor: &Tensor,
    scale: f32,
) -> Result<Tensor> {
    Ok(bits_product(ctx, x, y_bits, ProductOutput::Scaled { factor, scale })?.0)
}

/// SSA_Bin's output from the packed map: `out = kappa * X Y^T - mean[h, c]` (B V) for
/// `x` `PackedBits [maps, rows, k]`, `y_bits` `PackedBits [maps, cols, k]` and `mean`
/// f32 `[heads, cols]`; when `training`, also the U32 `[heads, cols, 2]` sums of
/// `X Y^T` per (h, c).
pub(crate) fn bits_product_shifted(
    ctx: &GpuContext,
    x: &Tensor,
    y_bits: &Tensor,
    mean: &Tensor,
    kappa: f32,
    training: bool,
) -> Result<(Tensor, Option<Tensor>)> {
    bits_product(
        ctx,
        x,
        y_bits,
        ProductOutput::Shifted {
            mean,
            kappa,
            training,
        },
    )
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
    // C a multiple of 4: an invocation per 4 columns' word.
    let (kernel, invocations) = if c.is_multiple_of(4) {
        (PACK_COLUMNS4, words / 4)
    } else {
        (PACK_SPIKES, words)
    };
    ctx.dispatch(
        kernel,
        &[],
        &[x, &out],
        &params,
        grid_1d(ctx, invocations.div_ceil(256) as u64)?,
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
    rows_per_map: u32,
    maps_per_step: u32,
    heads: u32,
    scale: f32,
}

/// `PackedBits [..., C]` to the {0,1} f32 tensor `[..., C]` it stands for.
pub fn unpack_bits(ctx: &GpuContext, bits: &Tensor) -> Result<Tensor> {
    unpack(ctx, bits, None)
}

/// A packed binary map `PackedBits [T * B * heads, R, C]` to f32 with its ones as
/// `scale * factor[t, h]` (`factor` f32 `[T, heads]`): the map with the output scale of
/// its product folded in.
pub(crate) fn unpack_scaled(
    ctx: &GpuContext,
    bits: &Tensor,
    factor: &Tensor,
    scale: f32,
) -> Result<Tensor> {
    unpack(ctx, bits, Some((factor, scale)))
}

fn unpack(ctx: &GpuContext, bits: &Tensor, factor: Option<(&Tensor, f32)>) -> Result<Tensor> {
    const OP: &str = "unpack_bits";
    bits.expect(OP, bits.shape(), DType::PackedBits)?;
    let cols = bits.shape().last().copied().unwrap_or(1).max(1);
    let rows = bits.len() / cols;
    to_u32(OP, "size", bits.len().max(rows * words_per_row(cols)))?;
    let unused;
    let (factor_tensor, rows_per_map, maps_per_step, heads, scale) = match factor {
        Some((f, scale)) => {
            let (maps, rows_per_map, _) = matrix_dims(OP, bits)?;
            let (steps, heads) = factor_dims(OP, f, maps)?;
            (f, rows_per_map, maps / steps, heads, scale)
        }
        None => {
            // A binding must exist even when the kernel does not read it.
            unused = ctx.empty(&[1], DType::F32)?;
            (&unused, 1, 1, 1, 1.0)
        }
    };
    let out = ctx.empty(bits.shape(), DType::F32)?;
    let params = UnpackParams {
        rows: to_u32(OP, "rows", rows)?,
        cols: to_u32(OP, "cols", cols)?,
        wpr: to_u32(OP, "words per row", words_per_row(cols))?,
        rows_per_map: to_u32(OP, "rows per map", rows_per_map.max(1))?,
        maps_per_step: to_u32(OP, "maps per step", maps_per_step.max(1))?,
        heads: to_u32(OP, "heads", heads)?,
        scale,
    };
    let kernel = if cols.is_multiple_of(4) {
        UNPACK_BITS_VEC4
    } else {
        UNPACK_BITS
    };
    ctx.dispatch(
        kernel,
        &[("HAS_FACTOR", flag(factor.is_some()))],
        &[bits, factor_tensor, &out],
        &params,
        grid_1d(ctx, (rows * words_per_row(cols)).div_ceil(256) as u64)?,
    )?;
    Ok(out)
}

/// `(T, heads)` of a per-(t, head) factor f32 `[T, heads]` for `maps` (t, b, h) maps.
fn factor_dims(op: &'static str, factor: &Tensor, maps: usize) -> Result<(usize, usize)> {
    let (steps, heads) = match *factor.shape() {
        [t, h] => (t, h),
        _ => (0, 0),
    };
    factor.expect(op, &[steps, heads], DType::F32)?;
    if steps == 0 || heads == 0 || !maps.is_multiple_of(steps * heads) {
        return Err(Error::InvalidArgument(format!(
            "{op}: {maps} maps do not split into T = {steps} steps of {heads} heads"
        )));
    }
    Ok((steps, heads))
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ScaleParams {
    len: u32,
    scale: f32,
}

/// `y = x * scale` for an f32 `x`; `y` has `x`'s shape.
pub(crate) fn scale_all(ctx: &GpuContext, x: &Tensor, scale: f32) -> Result<Tensor> {
    const OP: &str = "scale_all";
    x.expect(OP, x.shape(), DType::F32)?;
    let y = ctx.empty(x.shape(), DType::F32)?;
    let params = ScaleParams {
        len: to_u32(OP, "len", x.len())?,
        scale,
    };
    ctx.dispatch(
        SCALE_ALL,
        &[],
        &[x, &y],
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

/// `out[t, h] = scale * sum_{b, ...} part[t, b, h, ...]` for partial sums `part` f32
/// `[T, B, heads, ...]`: the gradient of a per-(t, head) factor.
fn lambda_grad(ctx: &GpuContext, part: &Tensor, scale: f32) -> Result<Tensor> {
    const OP: &str = "lambda_grad";
    part.expect(OP, part.shape(), DType::F32)?;
    let s = part.shape();
    if s.len() < 3 {
        return Err(Error::Shape {
            op: OP,
            expected: "[T, B, heads, ...]".into(),
            got: format!("{s:?}"),
        });
    }
    let (t, b, heads) = (s[0], s[1], s[2]);
    let inner: usize = s[3..].iter().product();
    to_u32(OP, "size", part.len())?;
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
        &[part, &out],
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
