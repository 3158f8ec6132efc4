//! Linear layers, which are also the 1x1 convolutions on channel-last tensors:
//! `y = x W^T + b` over the last axis, with PyTorch's weight layout `W [out, in]`.
//! Built from `matmul` / `binary_matmul`, `add_bias_into` and the channel sums of
//! `norm` (for the bias gradient).

use super::{
    add_bias_into, binary_matmul, channel_sum_into, matmul, matmul_f32_bits, matmul_into,
    spike_weight_grad_into, BinaryForm, MatmulForm,
};
use crate::error::{Error, Result};
use crate::gpu::{DType, GpuContext, Tensor};

/// `(rows, in, out)` of `x [.., in]` and `w [out, in]` of the given dtypes.
fn dims(
    op: &'static str,
    x: &Tensor,
    x_dtype: DType,
    w: &Tensor,
    w_dtype: DType,
) -> Result<(usize, usize, usize)> {
    let Some(&k) = x.shape().last() else {
        return Err(Error::Shape {
            op,
            expected: "x [.., in]".into(),
            got: "a scalar".into(),
        });
    };
    x.expect(op, x.shape(), x_dtype)?;
    let out = w.shape().first().copied().unwrap_or(0);
    w.expect(op, &[out, k], w_dtype)?;
    Ok((x.len().checked_div(k).unwrap_or(0), k, out))
}

fn out_shape(x: &Tensor, out: usize) -> Vec<usize> {
    let mut shape = x.shape().to_vec();
    if let Some(last) = shape.last_mut() {
        *last = out;
    }
    shape
}

fn finish(ctx: &GpuContext, y: Tensor, shape: &[usize], b: Option<&Tensor>) -> Result<Tensor> {
    let y = y.reshape(shape)?;
    if let Some(b) = b {
        add_bias_into(ctx, &y, b)?;
    }
    Ok(y)
}

/// `y = x W^T (+ b)`: x f32 `[.., in]`, w f32 `[out, in]`, b f32 `[out]`; y `[.., out]`.
pub fn linear(ctx: &GpuContext, x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let (rows, k, out) = dims("linear", x, DType::F32, w, DType::F32)?;
    let y = matmul(ctx, &x.reshape(&[rows, k])?, w, MatmulForm::ABt)?;
    finish(ctx, y, &out_shape(x, out), b)
}

/// The binary linear: x packed spikes `PackedBits [.., in]` (see `pack_bits`), w packed
/// signs `PackedBits [out, in]`, optional f32 bias; y f32 `[.., out]`. Its backward is
/// [`linear_backward`] with the f32 spikes and the f32 sign weights (straight-through).
pub fn linear_binary(
    ctx: &GpuContext,
    x_bits: &Tensor,
    w_bits: &Tensor,
    b: Option<&Tensor>,
) -> Result<Tensor> {
    let (rows, k, out) = dims(
        "linear_binary",
        x_bits,
        DType::PackedBits,
        w_bits,
        DType::PackedBits,
    )?;
    let y = binary_matmul(
        ctx,
        &x_bits.reshape(&[rows, k])?,
        w_bits,
        None,
        BinaryForm::SpikesSigns,
    )?;
    finish(ctx, y, &out_shape(x_bits, out), b)
}

/// Backward of [`linear`]: `dw += dy^T x`, `db += sum_rows dy` (when given), and returns
/// `dx = dy W` `[.., in]`.
pub fn linear_backward(
    ctx: &GpuContext,
    x: &Tensor,
    w: &Tensor,
    dy: &Tensor,
    dw: &Tensor,
    db: Option<&Tensor>,
) -> Result<Tensor> {
    const OP: &str = "linear_backward";
    let (rows, k, out) = dims(OP, x, DType::F32, w, DType::F32)?;
    dy.expect(OP, &out_shape(x, out), DType::F32)?;
    dw.expect(OP, w.shape(), DType::F32)?;
    let x2 = x.reshape(&[rows, k])?;
    let dy2 = dy.reshape(&[rows, out])?;
    matmul_into(ctx, &dy2, &x2, dw, MatmulForm::AtB, true)?;
    if let Some(db) = db {
        channel_sum_into(ctx, &dy2, db, true)?;
    }
    matmul(ctx, &dy2, w, MatmulForm::AB)?.reshape(x.shape())
}

/// Backward of a linear layer fed spikes, from the spikes the forward packed
/// (`x_bits`, `PackedBits [.., in]`): `dw += dy^T x` by masked sums of dy's rows,
/// `db += sum_rows dy` (when given), and returns `dx = dy W` `[.., in]` when `need_dx`.
/// A binary layer passes its signs transposed and packed (`w_t_bits`, `PackedBits
/// [in, out]`): dx then multiplies dy by packed bits rather than the f32 signs `w`.
#[allow(clippy::too_many_arguments)]
pub fn linear_backward_spikes(
    ctx: &GpuContext,
    x_bits: &Tensor,
    w: &Tensor,
    w_t_bits: Option<&Tensor>,
    dy: &Tensor,
    dw: &Tensor,
    db: Option<&Tensor>,
    need_dx: bool,
) -> Result<Option<Tensor>> {
    const OP: &str = "linear_backward_spikes";
    let (rows, k, out) = dims(OP, x_bits, DType::PackedBits, w, DType::F32)?;
    dy.expect(OP, &out_shape(x_bits, out), DType::F32)?;
    dw.expect(OP, w.shape(), DType::F32)?;
    let dy2 = dy.reshape(&[rows, out])?;
    spike_weight_grad_into(ctx, &dy2, &x_bits.reshape(&[rows, k])?, dw, true)?;
    if let Some(db) = db {
        channel_sum_into(ctx, &dy2, db, true)?;
    }
    if !need_dx {
        return Ok(None);
    }
    let dx = match w_t_bits {
        Some(bits) => {
            bits.expect(OP, &[k, out], DType::PackedBits)?;
            matmul_f32_bits(ctx, &dy2, bits, None)?
        }
        None => matmul(ctx, &dy2, w, MatmulForm::AB)?,
    };
    Ok(Some(dx.reshape(x_bits.shape())?))
}
