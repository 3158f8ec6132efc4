//! The exactly invertible coupling of BESTformer's reversible blocks: streams held as
//! 64-bit fixed-point counts of 2^-32, so that the backward rebuilds each block's inputs from its
//! outputs bit for bit. See shaders/reversible.wgsl and docs/reversible.md; the CPU
//! reference is `reference::reversible`.
//!
//! Backward: quantization is straight-through, so the gradients are those of the real
//! coupling `out = a + (p + r) / 2` (`da = dout`, `dp = dr = dout / 2`) or `out = a + p`,
//! which the model computes with `weighted_sum`.

use super::to_u32;
use crate::error::Result;
use crate::gpu::{grid_1d, words_per_row, Access, DType, GpuContext, Kernel, Shader, Tensor};

/// Fraction bits of a stream's 64-bit fixed-point counts: a resolution of 2^-32, finer
/// than f32's rounding of any value above 2^-9, over a range of +-2^31.
pub const STREAM_FRACTION_BITS: u32 = 32;

const TO_STREAM: Kernel = Kernel {
    shader: Shader::Reversible,
    entry: "to_stream",
    bindings: &[Access::Read, Access::ReadWrite, Access::ReadWrite],
};

const COUPLE: Kernel = Kernel {
    shader: Shader::Reversible,
    entry: "couple",
    bindings: &[
        Access::Read,
        Access::Read,
        Access::Read,
        Access::ReadWrite,
        Access::ReadWrite,
        Access::ReadWrite,
    ],
};

const UNCOUPLE: Kernel = Kernel {
    shader: Shader::Reversible,
    entry: "uncouple",
    bindings: &[
        Access::Read,
        Access::Read,
        Access::Read,
        Access::Read,
        Access::ReadWrite,
        Access::ReadWrite,
    ],
};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct LenParams {
    len: u32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct RowParams {
    rows: u32,
    k: u32,
    words_per_row: u32,
}

/// One stream of a reversible block: its exact fixed-point counts (`I64`) and their f32
/// values (what the sub-blocks and heads read), of the same shape.
#[derive(Debug, Clone)]
pub struct Stream {
    /// The fixed-point integer part.
    pub fixed: Tensor,
    /// The f32 value.
    pub value: Tensor,
}

impl Stream {
    /// The shape.
    pub fn shape(&self) -> &[usize] {
        self.fixed.shape()
    }

    /// Bytes of both parts.
    pub fn byte_len(&self) -> u64 {
        self.fixed.byte_len() + self.value.byte_len()
    }
}

/// What `couple` adds to the sub-block's output: `p` alone (the first block), or the
/// floor of the mean of `p` and `r`, whose lost bit is kept as a parity bit.
#[derive(Debug, Clone, Copy)]
pub enum Coupling<'a> {
    /// `p` alone (the first block).
    Add,
    /// The floor of the mean of `p` and `r`, with a parity bit (the later blocks).
    Mean {
        /// The other stream of the mean.
        r: &'a Tensor,
    },
}

fn row_params(op: &'static str, shape: &[usize]) -> Result<(RowParams, usize)> {
    let k = shape.last().copied().unwrap_or(1).max(1);
    let rows = shape.iter().product::<usize>() / k;
    let words = rows * words_per_row(k);
    Ok((
        RowParams {
            rows: to_u32(op, "rows", rows)?,
            k: to_u32(op, "K", k)?,
            words_per_row: words_per_row(k) as u32,
        },
        words,
    ))
}

/// A stream holding `x` (f32) rounded to the fixed-point grid.
pub fn to_stream(ctx: &GpuContext, x: &Tensor) -> Result<Stream> {
    const OP: &str = "to_stream";
    x.expect(OP, x.shape(), DType::F32)?;
    let fixed = ctx.empty(x.shape(), DType::I64)?;
    let value = ctx.empty(x.shape(), DType::F32)?;
    let params = LenParams {
        len: to_u32(OP, "len", x.len())?,
    };
    ctx.dispatch(
        TO_STREAM,
        &[],
        &[x, &fixed, &value],
        &params,
        grid_1d(ctx, x.len().div_ceil(256) as u64)?,
    )?;
    Ok(Stream { fixed, value })
}

/// `out = q(a) + p` or `q(a) + floor((p + r) / 2)`, with `a` f32 and `p`, `r` fixed-point
/// counts of one shape `[.., K]`. Returns the output stream and, for `Mean`, the parity
/// bits `(p + r) & 1` (`PackedBits [.., K]`) that [`uncouple`] needs.
pub fn couple(
    ctx: &GpuContext,
    a: &Tensor,
    p: &Tensor,
    coupling: Coupling,
) -> Result<(Stream, Option<Tensor>)> {
    const OP: &str = "couple";
    let shape = a.shape();
    a.expect(OP, shape, DType::F32)?;
    p.expect(OP, shape, DType::I64)?;
    let (halve, r) = match coupling {
        Coupling::Add => (false, p),
        Coupling::Mean { r } => {
            r.expect(OP, shape, DType::I64)?;
            (true, r)
        }
    };
    let out = Stream {
        fixed: ctx.empty(shape, DType::I64)?,
        value: ctx.empty(shape, DType::F32)?,
    };
    // The first block keeps no parity; its binding still needs a buffer.
    let parity_shape: &[usize] = if halve { shape } else { &[1] };
    let parity = ctx.empty(parity_shape, DType::PackedBits)?;
    let (params, words) = row_params(OP, shape)?;
    ctx.dispatch(
        COUPLE,
        &[("HALVE", halve as u32 as f64)],
        &[a, p, r, &out.fixed, &out.value, &parity],
        &params,
        grid_1d(ctx, words.div_ceil(256) as u64)?,
    )?;
    Ok((out, halve.then_some(parity)))
}

/// The inverse of [`couple`]: `p` from its output `out`, the same `a`, and (for `Mean`)
/// `r` and the parity bits: `p = out - q(a)` or `2 (out - q(a)) + parity - r`, exactly.
pub fn uncouple(
    ctx: &GpuContext,
    out: &Tensor,
    a: &Tensor,
    mean: Option<(&Tensor, &Tensor)>,
) -> Result<Stream> {
    const OP: &str = "uncouple";
    let shape = out.shape();
    out.expect(OP, shape, DType::I64)?;
    a.expect(OP, shape, DType::F32)?;
    let (halve, r, parity) = match mean {
        Some((r, parity)) => {
            r.expect(OP, shape, DType::I64)?;
            parity.expect(OP, shape, DType::PackedBits)?;
            (true, r, parity)
        }
        None => (false, out, out),
    };
    let p = Stream {
        fixed: ctx.empty(shape, DType::I64)?,
        value: ctx.empty(shape, DType::F32)?,
    };
    let (params, words) = row_params(OP, shape)?;
    ctx.dispatch(
        UNCOUPLE,
        &[("HALVE", halve as u32 as f64)],
        &[out, a, r, parity, &p.fixed, &p.value],
        &params,
        grid_1d(ctx, words.div_ceil(256) as u64)?,
    )?;
    Ok(p)
}
