//! The layer pairs the models are built from, each a forward that returns its output and
//! what its backward reads, and a backward that accumulates (`+=`) parameter gradients
//! into the store and returns (overwrites) the input's gradient:
//! - weight ops: a 3x3 conv or a linear (1x1 conv), float, binary or b-bit by the store
//!   (a binary layer's forward reads the packed signs, its backward goes through the f32
//!   signs, straight-through, then `binarize_weights_backward` into the latent grad; a
//!   b-bit layer's forward runs on its bit-planes, its backward through the dequantized
//!   weights, then `rescaw_backward`; Q-SNN's binary layers scale each output channel);
//! - BatchNorm over every leading axis (T folded in);
//! - weight -> BN (-> a neuron, `ops::Neuron`) units.

use super::params::{BnParams, ParamId, WeightParams};
use super::store::ParamStore;
use crate::error::Result;
use crate::gpu::{GpuContext, Tensor};
use crate::ops::{self, BatchNorm, ConvInput, Neuron, PackMode};

/// A weight op's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightOp {
    /// 3x3 conv, stride 1, padding 1, on NHWC images `[images, H, W, C]`.
    Conv3x3,
    /// `y = x W^T (+ b)` on `[.., in]`.
    Linear,
}

/// One conv/linear layer: its weight (and bias) in the store.
#[derive(Debug, Clone, Copy)]
pub struct Weight {
    /// Conv 3x3 or linear.
    pub op: WeightOp,
    /// The weight tensor.
    pub weight: ParamId,
    /// The bias, if the layer has one.
    pub bias: Option<ParamId>,
    /// The input is spikes {0,1}, so a binary weight can run on packed bits and the
    /// weight gradient is a masked sum over them; a layer fed real values (the image,
    /// Spikformer's residual stream) multiplies by its f32 weights or signs.
    pub spike_input: bool,
}

impl Weight {
    /// A 3x3 conv (padding 1) of the weight `p`, fed spikes.
    pub fn conv(p: WeightParams) -> Self {
        Self {
            op: WeightOp::Conv3x3,
            weight: p.weight,
            bias: p.bias,
            spike_input: true,
        }
    }

    /// A linear layer (or 1x1 conv) of the weight `p`, fed spikes.
    pub fn linear(p: WeightParams) -> Self {
        Self {
            op: WeightOp::Linear,
            weight: p.weight,
            bias: p.bias,
            spike_input: true,
        }
    }

    /// The same layer fed real values instead of spikes.
    pub fn real_input(self) -> Self {
        Self {
            spike_input: false,
            ..self
        }
    }

    /// `y = W x (+ b)`; binary when the store binarizes this weight (x must then be
    /// spikes {0,1}).
    pub fn forward(&self, ctx: &GpuContext, store: &ParamStore, x: &Tensor) -> Result<Tensor> {
        Ok(self.forward_saved(ctx, store, x)?.0)
    }

    /// [`Weight::forward`], also returning the spikes it packed, for
    /// [`Weight::backward`] to reuse: a binary linear's `PackedBits [rows, in]`, a
    /// binary conv's columns `PackedBits [pixels, 9 C_in]` (when they fit one chunk).
    pub fn forward_saved(
        &self,
        ctx: &GpuContext,
        store: &ParamStore,
        x: &Tensor,
    ) -> Result<(Tensor, Option<Tensor>)> {
        if let Some(log) = &store.energy {
            let w = store.param(self.weight)?;
            let (out, k) = (w.shape()[0], w.shape()[1]); // [C_out, 9 C_in] or [out, in]
            let rows = match self.op {
                WeightOp::Conv3x3 => x.len() / (k / 9).max(1),
                WeightOp::Linear => x.len() / k.max(1),
            };
            let binary = store.binary(self.weight).is_some();
            let name = &store.spec(self.weight).name;
            log.record(ctx, name, binary, x, (rows * k * out) as u64)?;
        }
        if let Some(trace) = &store.trace {
            let name = &store.spec(self.weight).name;
            trace.record_input(name.strip_suffix(".weight").unwrap_or(name), x);
        }
        let bias = match self.bias {
            Some(b) => Some(store.param(b)?),
            None => None,
        };
        if let Some(q) = store.quant(self.weight) {
            let y = match (self.op, self.spike_input) {
                (WeightOp::Conv3x3, false) => ops::conv3x3(ctx, x, &q.q),
                (WeightOp::Conv3x3, true) => ops::conv3x3_quant(ctx, x, q),
                (WeightOp::Linear, spikes) => {
                    let x = if spikes {
                        ops::pack_bits(ctx, x, PackMode::Spikes)?
                    } else {
                        x.clone()
                    };
                    let y = ops::linear_quant(ctx, &x, q)?;
                    if let Some(b) = bias {
                        ops::add_bias_into(ctx, &y, b)?;
                    }
                    Ok(y)
                }
            };
            return Ok((y?, None));
        }
        let (y, x_bits) = match store.binary(self.weight) {
            Some(bw) if self.spike_input => match self.op {
                WeightOp::Conv3x3 => {
                    ops::Conv3x3::default().forward_binary_saved(ctx, x, &bw.bits)?
                }
                WeightOp::Linear => {
                    let xb = ops::pack_bits(ctx, x, PackMode::Spikes)?;
                    (ops::linear_binary(ctx, &xb, &bw.bits, bias)?, Some(xb))
                }
            },
            binary => {
                let w = match binary {
                    Some(bw) => &bw.signs,
                    None => store.param(self.weight)?,
                };
                let y = match self.op {
                    WeightOp::Conv3x3 => ops::conv3x3(ctx, x, w),
                    WeightOp::Linear => ops::linear(ctx, x, w, bias),
                }?;
                (y, None)
            }
        };
        // Q-SNN's binary layers: y = s_o (x . sign(w_hat)), one scale per output channel.
        let y = match store.binary_scale(self.weight) {
            Some(scale) => ops::sum_planes(ctx, &y, scale, 1)?,
            None => y,
        };
        Ok((y, x_bits))
    }

    /// Backward of [`Weight::forward`] at input `x`: `dW += ..`, `db += ..`; returns dx
    /// when `need_dx` (a first layer's input needs none). `x_bits`: the packed spikes
    /// [`Weight::forward_saved`] returned, if kept.
    pub fn backward(
        &self,
        ctx: &GpuContext,
        store: &ParamStore,
        x: &Tensor,
        x_bits: Option<&Tensor>,
        dy: &Tensor,
        need_dx: bool,
    ) -> Result<Option<Tensor>> {
        let latent = store.param(self.weight)?;
        let dlatent = store.grad(self.weight)?;
        let binary = store.binary(self.weight);
        let quant = store.quant(self.weight);
        // Binary and b-bit: the op's weight is the f32 signs or the dequantized weights,
        // its gradient a scratch buffer.
        let (w, dw) = match (binary, quant) {
            (Some(bw), _) => (bw.signs.clone(), ctx.zeros(latent.shape(), latent.dtype())?),
            (None, Some(q)) => (q.q.clone(), ctx.zeros(latent.shape(), latent.dtype())?),
            (None, None) => (latent.clone(), dlatent.clone()),
        };
        // Q-SNN's scale is a constant per output channel: scale dy by it.
        let dy = &match store.binary_scale(self.weight) {
            Some(scale) => ops::sum_planes(ctx, dy, scale, 1)?,
            None => dy.clone(),
        };
        let dx = match self.op {
            WeightOp::Conv3x3 => {
                let conv = ops::Conv3x3::default();
                let input = match (self.spike_input, x_bits) {
                    (true, Some(cols)) => ConvInput::SpikeColumns(cols),
                    (true, None) => ConvInput::Spikes,
                    (false, _) => ConvInput::Real,
                };
                if need_dx {
                    Some(conv.backward(ctx, x, &w, dy, &dw, input)?)
                } else {
                    conv.backward_weight(ctx, x, &w, dy, &dw, input)?;
                    None
                }
            }
            WeightOp::Linear => {
                let db = match self.bias {
                    Some(b) => Some(store.grad(b)?),
                    None => None,
                };
                if self.spike_input {
                    let packed;
                    let x_bits = match x_bits {
                        Some(bits) => bits,
                        None => {
                            packed = ops::pack_bits(ctx, x, PackMode::Spikes)?;
                            &packed
                        }
                    };
                    // A binary layer's dx multiplies by its signs packed along `out`.
                    let signs_t = match binary {
                        Some(bw) if need_dx => {
                            let o = bw.signs.shape().first().copied().unwrap_or(0);
                            let i = bw.signs.len().checked_div(o).unwrap_or(0);
                            let t = ops::transpose_matrices(ctx, &bw.signs.reshape(&[1, o, i])?)?;
                            Some(ops::pack_bits(ctx, &t.reshape(&[i, o])?, PackMode::Signs)?)
                        }
                        _ => None,
                    };
                    ops::linear_backward_spikes(
                        ctx,
                        x_bits,
                        &w,
                        signs_t.as_ref(),
                        dy,
                        &dw,
                        db,
                        need_dx,
                    )?
                } else {
                    let dx = ops::linear_backward(ctx, x, &w, dy, &dw, db)?;
                    need_dx.then_some(dx)
                }
            }
        };
        if let Some(bw) = binary {
            ops::binarize_weights_backward(ctx, latent, &bw.stats, &dw, dlatent)?;
        } else if let Some(q) = quant {
            ops::rescaw_backward(ctx, latent, &q.gamma, &dw, dlatent)?;
        }
        Ok(dx)
    }
}

/// BatchNorm `bn` (weight, bias, running statistics) over `x [.., C]`.
/// Returns `(y, stats)`; stats (for backward) only when training.
pub fn bn_forward(
    ctx: &GpuContext,
    store: &mut ParamStore,
    bn: &BnParams,
    x: &Tensor,
    train: bool,
) -> Result<(Tensor, Option<Tensor>)> {
    let out = bn_forward_with(ctx, store, bn, x, Mode::of(train))?;
    if train {
        store.count_batch(bn);
    }
    Ok(out)
}

/// How a forward runs its BatchNorms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Batch statistics, running statistics updated, activations kept.
    Train,
    /// Running statistics.
    Eval,
    /// Batch statistics without touching the running ones: a reversible block's forward
    /// recomputed in backward.
    Recompute,
}

impl Mode {
    /// Training or evaluation mode.
    pub fn of(train: bool) -> Self {
        if train {
            Mode::Train
        } else {
            Mode::Eval
        }
    }
}

/// [`bn_forward`] in any [`Mode`], never counting the batch.
pub fn bn_forward_with(
    ctx: &GpuContext,
    store: &ParamStore,
    bn: &BnParams,
    x: &Tensor,
    mode: Mode,
) -> Result<(Tensor, Option<Tensor>)> {
    let (coef, stats) = bn_coefficients(ctx, store, bn, x, mode)?;
    Ok((
        batch_norm(store, bn)?.apply_coefficients(ctx, x, &coef)?,
        stats,
    ))
}

/// BatchNorm `bn`'s per-channel (scale, shift) `[2, C]` for `x` in `mode`, and the batch
/// stats for backward (training modes); the running statistics as [`bn_forward_with`].
fn bn_coefficients(
    ctx: &GpuContext,
    store: &ParamStore,
    bn: &BnParams,
    x: &Tensor,
    mode: Mode,
) -> Result<(Tensor, Option<Tensor>)> {
    let mut bn = batch_norm(store, bn)?;
    match mode {
        Mode::Eval => Ok((bn.coefficients_eval(ctx, x)?, None)),
        Mode::Train | Mode::Recompute => {
            if mode == Mode::Recompute {
                bn.momentum = 0.0;
            }
            let (coef, stats) = bn.coefficients_train(ctx, x)?;
            Ok((coef, Some(stats)))
        }
    }
}

/// Backward of a training [`bn_forward`] at input `x` with its `stats`.
pub fn bn_backward(
    ctx: &GpuContext,
    store: &ParamStore,
    bn: &BnParams,
    x: &Tensor,
    stats: Option<&Tensor>,
    dy: &Tensor,
) -> Result<Tensor> {
    let stats = stats.ok_or_else(|| {
        crate::Error::InvalidArgument(format!(
            "backward of BatchNorm '{}' needs a training forward",
            store.spec(bn.weight).name
        ))
    })?;
    let dw = store.grad(bn.weight)?;
    let db = store.grad(bn.bias)?;
    // The op refuses dweight and dbias in one buffer (the store's flat grads): the bias
    // gradient goes through a scratch tensor.
    let db_scratch = ctx.zeros(db.shape(), db.dtype())?;
    let dx = batch_norm(store, bn)?.backward(ctx, x, dy, stats, dw, &db_scratch)?;
    ops::axpy_into(ctx, db, &db_scratch, 1.0)?;
    Ok(dx)
}

/// The BatchNorm op over the store's tensors of `bn`.
fn batch_norm<'a>(store: &'a ParamStore, bn: &BnParams) -> Result<BatchNorm<'a>> {
    Ok(BatchNorm::new(
        store.param(bn.weight)?,
        store.param(bn.bias)?,
        store.stat(bn.running_mean)?,
        store.stat(bn.running_var)?,
    ))
}

/// Weight op -> BN (-> a neuron when one is given): Spikformer's unit.
#[derive(Debug, Clone)]
pub struct UnitSaved {
    /// The weight op's input.
    pub x: Tensor,
    /// The spikes the weight op packed of it (see [`Weight::forward_saved`]).
    pub x_bits: Option<Tensor>,
    /// The weight op's output (BN's input).
    pub z: Tensor,
    /// BN's (mean, inv_std) `[2, C]` (training only).
    pub stats: Option<Tensor>,
    /// What the neuron's backward reads (when the unit ends with one).
    pub h: Option<Tensor>,
}

impl UnitSaved {
    /// Bytes kept for backward.
    pub fn bytes(&self) -> u64 {
        [
            Some(&self.x),
            self.x_bits.as_ref(),
            Some(&self.z),
            self.stats.as_ref(),
            self.h.as_ref(),
        ]
        .into_iter()
        .flatten()
        .map(Tensor::byte_len)
        .sum()
    }
}

/// Forward of weight -> BN `bn` (-> neuron): returns the output (spikes with a neuron, BN's
/// output without) and what backward reads.
pub fn unit_forward(
    ctx: &GpuContext,
    store: &mut ParamStore,
    weight: &Weight,
    bn: &BnParams,
    neuron: Option<(&Neuron, usize)>,
    x: &Tensor,
    train: bool,
) -> Result<(Tensor, UnitSaved)> {
    let out = unit_forward_with(ctx, store, weight, bn, neuron, x, Mode::of(train))?;
    if train {
        store.count_batch(bn);
    }
    Ok(out)
}

/// [`unit_forward`] in any [`Mode`], never counting the batch.
#[allow(clippy::too_many_arguments)]
pub fn unit_forward_with(
    ctx: &GpuContext,
    store: &ParamStore,
    weight: &Weight,
    bn: &BnParams,
    neuron: Option<(&Neuron, usize)>,
    x: &Tensor,
    mode: Mode,
) -> Result<(Tensor, UnitSaved)> {
    let (z, x_bits) = weight.forward_saved(ctx, store, x)?;
    // Eval keeps nothing for a backward.
    let x_bits = x_bits.filter(|_| mode != Mode::Eval);
    // BN's normalization goes into the neuron's read of z where a fused kernel exists.
    let (coef, stats) = bn_coefficients(ctx, store, bn, &z, mode)?;
    let fused = match neuron {
        Some((n, t)) => n.forward_normalized(ctx, &z, &coef, t)?,
        None => None,
    };
    let (out, h) = match (fused, neuron) {
        (Some((s, h)), _) => (s, Some(h)),
        (None, Some((n, t))) => {
            let y = batch_norm(store, bn)?.apply_coefficients(ctx, &z, &coef)?;
            let (s, h) = n.forward(ctx, &y, t)?;
            (s, Some(h))
        }
        (None, None) => (
            batch_norm(store, bn)?.apply_coefficients(ctx, &z, &coef)?,
            None,
        ),
    };
    let saved = UnitSaved {
        x: x.clone(),
        x_bits,
        z,
        stats,
        h,
    };
    Ok((out, saved))
}

/// Backward of [`unit_forward`]: returns dx when `need_dx`.
#[allow(clippy::too_many_arguments)]
pub fn unit_backward(
    ctx: &GpuContext,
    store: &ParamStore,
    weight: &Weight,
    bn: &BnParams,
    neuron: Option<(&Neuron, usize)>,
    saved: &UnitSaved,
    dout: &Tensor,
    need_dx: bool,
) -> Result<Option<Tensor>> {
    let dy = match (neuron, &saved.h) {
        (Some((n, t)), Some(h)) => n.backward(ctx, dout, h, t)?,
        _ => dout.clone(),
    };
    let dz = bn_backward(ctx, store, bn, &saved.z, saved.stats.as_ref(), &dy)?;
    weight.backward(ctx, store, &saved.x, saved.x_bits.as_ref(), &dz, need_dx)
}
