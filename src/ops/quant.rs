//! Multi-bit weights on bit-planes (shaders/binarize.wgsl): QP-SNN's ReScaW quantizer with
//! its straight-through backward, the b-bit matmul and conv computed as b packed sign
//! matmuls (the binary kernels) summed with weights `gamma 2^i / (2 n)`, and Q-SNN's
//! power-of-two scale of binary weights.
//!
//! ReScaW, per output channel: `gamma = mean|W|` (detached), `W~ = clamp(W / gamma, -1,
//! 1)`, `Q = gamma (round((W~ + 1) n) / n - 1)` with `n = (2^b - 1) / 2`. Reading bit i of
//! the code as a sign `s_i`, `Q = gamma / (2 n) sum_i 2^i s_i`, so the quantizer's offset
//! cancels and no zero-point correction term is needed.

use super::binarize::channel_lanes;
use super::{binary_matmul, conv3x3_binary, matmul_f32_bits, to_u32, BinaryForm};
use crate::error::{Error, Result};
use crate::gpu::{grid_1d, words_per_row, Access, DType, GpuContext, Kernel, Shader, Tensor};

const RESCAW: Kernel = Kernel {
    shader: Shader::Binarize,
    entry: "rescaw",
    bindings: &[
        Access::Read,
        Access::ReadWrite,
        Access::ReadWrite,
        Access::ReadWrite,
        Access::ReadWrite,
    ],
};

const RESCAW_BACKWARD: Kernel = Kernel {
    shader: Shader::Binarize,
    entry: "rescaw_backward",
    bindings: &[Access::Read, Access::Read, Access::Read, Access::ReadWrite],
};

const SUM_PLANES: Kernel = Kernel {
    shader: Shader::Binarize,
    entry: "sum_planes",
    bindings: &[Access::Read, Access::Read, Access::ReadWrite],
};

const POW2_SCALE: Kernel = Kernel {
    shader: Shader::Binarize,
    entry: "pow2_scale",
    bindings: &[Access::Read, Access::Read, Access::ReadWrite],
};

/// The largest weight width: the quantizer packs at most 8 planes per word pass.
pub const MAX_WEIGHT_BITS: u32 = 8;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ChannelParams {
    c_out: u32,
    k: u32,
    words_per_row: u32,
    bits: u32,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ElemParams {
    len: u32,
    k: u32,
    c: u32,
    bits: u32,
}

/// The quantized form of a weight `[C_out, K]` with `bits` bits.
#[derive(Debug, Clone)]
pub struct QuantWeights {
    /// Bits per weight.
    pub bits: u32,
    /// f32 `[C_out, K]`: the dequantized weights Q (backward and f32 paths).
    pub q: Tensor,
    /// `PackedBits [bits * C_out, K]`: row `i * C_out + o` is bit i of channel o's codes.
    pub planes: Tensor,
    /// f32 `[bits * C_out]`: `gamma_o 2^i / (2 n)`, the weight of plane i in channel o.
    pub plane_scale: Tensor,
    /// f32 `[C_out]`: `mean |W|` per channel.
    pub gamma: Tensor,
}

fn dims(op: &'static str, w: &Tensor) -> Result<(usize, usize)> {
    match *w.shape() {
        [c_out, k] if w.dtype() == DType::F32 => Ok((c_out, k)),
        _ => Err(Error::Shape {
            op,
            expected: "f32 weights [C_out, K] (conv weights flattened)".into(),
            got: format!("{:?} {:?}", w.dtype(), w.shape()),
        }),
    }
}

fn check_bits(op: &'static str, bits: u32) -> Result<()> {
    if (1..=MAX_WEIGHT_BITS).contains(&bits) {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "{op}: weight bits must be in 1..={MAX_WEIGHT_BITS} (got {bits})"
        )))
    }
}

/// Quantize `w [C_out, K]` to `bits` bits with ReScaW.
pub fn rescaw_quantize(ctx: &GpuContext, w: &Tensor, bits: u32) -> Result<QuantWeights> {
    const OP: &str = "rescaw_quantize";
    check_bits(OP, bits)?;
    let (c_out, k) = dims(OP, w)?;
    let planes_rows = bits as usize * c_out;
    to_u32(OP, "plane words", planes_rows * words_per_row(k))?;
    let out = QuantWeights {
        bits,
        q: ctx.empty(&[c_out, k], DType::F32)?,
        planes: ctx.empty(&[planes_rows, k], DType::PackedBits)?,
        plane_scale: ctx.empty(&[planes_rows], DType::F32)?,
        gamma: ctx.empty(&[c_out], DType::F32)?,
    };
    let params = ChannelParams {
        c_out: to_u32(OP, "C_out", c_out)?,
        k: to_u32(OP, "K", k)?,
        words_per_row: to_u32(OP, "words per row", words_per_row(k))?,
        bits,
    };
    ctx.dispatch(
        RESCAW,
        &channel_lanes(ctx),
        &[w, &out.q, &out.planes, &out.plane_scale, &out.gamma],
        &params,
        grid_1d(ctx, c_out as u64)?,
    )?;
    Ok(out)
}

/// Straight-through backward of [`rescaw_quantize`]: `dw += g` where `|w| <= gamma`.
pub fn rescaw_backward(
    ctx: &GpuContext,
    w: &Tensor,
    gamma: &Tensor,
    g: &Tensor,
    dw: &Tensor,
) -> Result<()> {
    const OP: &str = "rescaw_backward";
    let (c_out, k) = dims(OP, w)?;
    gamma.expect(OP, &[c_out], DType::F32)?;
    g.expect(OP, &[c_out, k], DType::F32)?;
    dw.expect(OP, &[c_out, k], DType::F32)?;
    let len = c_out * k;
    let params = ElemParams {
        len: to_u32(OP, "weights", len)?,
        k: to_u32(OP, "K", k)?,
        c: 0,
        bits: 0,
    };
    ctx.dispatch(
        RESCAW_BACKWARD,
        &[],
        &[w, gamma, g, dw],
        &params,
        grid_1d(ctx, len.div_ceil(256) as u64)?,
    )
}

/// `out[.., o] = sum_i scale[i * C + o] y[.., i * C + o]` for `y [.., planes * C]`.
pub fn sum_planes(ctx: &GpuContext, y: &Tensor, scale: &Tensor, planes: u32) -> Result<Tensor> {
    const OP: &str = "sum_planes";
    let width = y.shape().last().copied().unwrap_or(0);
    let planes_n = planes as usize;
    if y.dtype() != DType::F32 || planes == 0 || !width.is_multiple_of(planes_n) {
        return Err(Error::Shape {
            op: OP,
            expected: format!("f32 [.., {planes} * C]"),
            got: format!("{:?} {:?}", y.dtype(), y.shape()),
        });
    }
    let c = width / planes_n;
    scale.expect(OP, &[width], DType::F32)?;
    let mut shape = y.shape().to_vec();
    *shape.last_mut().expect("checked rank >= 1") = c;
    let out = ctx.empty(&shape, DType::F32)?;
    let len = out.len();
    let params = ElemParams {
        len: to_u32(OP, "outputs", len)?,
        k: 0,
        c: to_u32(OP, "C", c)?,
        bits: planes,
    };
    ctx.dispatch(
        SUM_PLANES,
        &[],
        &[y, scale, &out],
        &params,
        grid_1d(ctx, len.div_ceil(256) as u64)?,
    )?;
    Ok(out)
}

/// The b-bit linear `y = x Q^T` on bit-planes: x is packed spikes `PackedBits [.., in]`
/// (b sign matmuls by AND-popcount) or f32 `[.., in]` (b f32 x sign matmuls); returns
/// f32 `[.., out]`. Its backward is `linear_backward` with `q.q`, then [`rescaw_backward`].
pub fn linear_quant(ctx: &GpuContext, x: &Tensor, w: &QuantWeights) -> Result<Tensor> {
    const OP: &str = "linear_quant";
    let k = x.shape().last().copied().unwrap_or(0);
    let (c_out, wk) = (w.q.shape()[0], w.q.shape()[1]);
    if k != wk || x.shape().len() < 2 {
        return Err(Error::Shape {
            op: OP,
            expected: format!("x [.., {wk}]"),
            got: format!("{:?}", x.shape()),
        });
    }
    let rows = x.len() / k.max(1);
    let flat = x.reshape(&[rows, k])?;
    let y = match x.dtype() {
        DType::PackedBits => binary_matmul(ctx, &flat, &w.planes, None, BinaryForm::SpikesSigns)?,
        DType::F32 => matmul_f32_bits(ctx, &flat, &w.planes, None)?,
        other => {
            return Err(Error::DType {
                op: OP,
                expected: DType::F32,
                got: other,
            })
        }
    };
    let out = sum_planes(ctx, &y, &w.plane_scale, w.bits)?;
    let mut shape = x.shape().to_vec();
    *shape.last_mut().expect("rank >= 2") = c_out;
    out.reshape(&shape)
}

/// The b-bit 3x3 conv on bit-planes: x f32 spikes {0,1} `[images, H, W, C_in]`, one
/// binary conv over all planes (`[.., bits * C_out]`), then the weighted plane sum.
pub fn conv3x3_quant(ctx: &GpuContext, x: &Tensor, w: &QuantWeights) -> Result<Tensor> {
    let y = conv3x3_binary(ctx, x, &w.planes)?;
    sum_planes(ctx, &y, &w.plane_scale, w.bits)
}

/// Q-SNN's binary scale `2^round(log2(mean_o |w_hat|))` per channel `[C_out]`, from the
/// weights and binarize's (mean, std) statistics.
pub fn pow2_scale(ctx: &GpuContext, w: &Tensor, stats: &Tensor) -> Result<Tensor> {
    const OP: &str = "pow2_scale";
    let (c_out, k) = dims(OP, w)?;
    stats.expect(OP, &[c_out, 2], DType::F32)?;
    let out = ctx.empty(&[c_out], DType::F32)?;
    let params = ChannelParams {
        c_out: to_u32(OP, "C_out", c_out)?,
        k: to_u32(OP, "K", k)?,
        words_per_row: 0,
        bits: 1,
    };
    ctx.dispatch(
        POW2_SCALE,
        &channel_lanes(ctx),
        &[w, stats, &out],
        &params,
        grid_1d(ctx, c_out as u64)?,
    )?;
    Ok(out)
}
