//! Host side of the parts of shaders/attention.wgsl that several forms share: the
//! geometry of scores on packed operands (checked sizes, workgroup counts), the packed
//! map x spikes product (BESTformer's scaled output and SSA_Bin's shifted one), spike
//! packing along either axis and unpacking. What one form alone dispatches lives in that
//! form's module.

use crate::error::{Error, Result};
use crate::gpu::{grid_1d, words_per_row, Access, DType, GpuContext, Kernel, Shader, Tensor};
use crate::ops::to_u32;

/// A kernel of shaders/attention.wgsl.
pub(super) const fn kernel(entry: &'static str, bindings: &'static [Access]) -> Kernel {
    Kernel {
        shader: Shader::Attention,
        entry,
        bindings,
    }
}

use Access::{Read as R, ReadWrite as W};

const BITS_PRODUCT: Kernel = kernel("bits_product", &[R, R, R, W, W]);
const BITS_PRODUCT_VEC4: Kernel = kernel("bits_product_vec4", &[R, R, R, W, W]);
const PACK_SPIKES: Kernel = kernel("pack_spikes", &[R, W]);
const PACK_COLUMNS4: Kernel = kernel("pack_columns4", &[R, W]);
const UNPACK_BITS: Kernel = kernel("unpack_bits", &[R, R, W]);
const UNPACK_BITS_VEC4: Kernel = kernel("unpack_bits_vec4", &[R, R, W]);

/// Invocations per workgroup of the score and product kernels.
pub(super) const SCORE_WG: usize = 64;

/// Rows per invocation of the score kernels (the rows of a 4 x 4 score tile).
pub(super) const TILE_ROWS: usize = 4;

/// The invocations of the map kernels for `[rows, cols]` maps, one per (map, word of
/// 32 columns, group of `TILE_ROWS` rows): words per packed row, words holding columns,
/// row groups.
pub(super) fn map_grid(rows: usize, cols: usize) -> (usize, usize, usize) {
    (
        words_per_row(cols),
        cols.div_ceil(32),
        rows.div_ceil(TILE_ROWS),
    )
}

/// The value of a boolean override constant.
pub(super) fn flag(on: bool) -> f64 {
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
pub(super) fn score_dims(
    op: &'static str,
    x: &Tensor,
    y: &Tensor,
) -> Result<(usize, usize, usize, usize)> {
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
pub(super) fn score_words(x: &Tensor) -> f64 {
    match x.shape().last().copied().unwrap_or(128) {
        0..=32 => 1.0,
        33..=64 => 2.0,
        _ => 4.0,
    }
}

/// `(T, heads)` of a per-(t, head) factor f32 `[T, heads]` for `maps` (t, b, h) maps.
pub(super) fn factor_dims(
    op: &'static str,
    factor: &Tensor,
    maps: usize,
) -> Result<(usize, usize)> {
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
pub(super) enum ProductOutput<'a> {
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
pub(super) fn bits_product(
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

/// `PackedBits [..., C]` to f32: the {0,1} values it stands for, or with a `factor`
/// (`(factor, scale)`, factor f32 `[T, heads]`, bits `[T * B * heads, R, C]`) its ones
/// as `scale * factor[t, h]`.
pub(super) fn unpack(
    ctx: &GpuContext,
    bits: &Tensor,
    factor: Option<(&Tensor, f32)>,
) -> Result<Tensor> {
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
