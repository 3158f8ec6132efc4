//! Every neuron a layer can end in, behind one forward / backward pair: the LIF, ternary
//! and Q-SNN neurons of `ops::lif` (stateful over T), the stateless threshold, and ReLU
//! (A2OS2A's K branch). CPU oracles: `reference::lif` and `reference::elementwise`.
//!
//! Layers hold activations with T leading, folded into the rows or not (`[T * B, N, D]`,
//! `[T, B, N, D]`, ...): the stateful neurons see them as `[T, len / T]`, the time-major
//! shape their kernels check, and return tensors shaped like the input.

use super::lif::{
    lif_backward, lif_forward, lif_forward_affine, qsnn_backward, qsnn_forward, ternary_backward,
    ternary_forward, threshold_backward, threshold_forward, LifConfig, LifOutputs, QsnnConfig,
    ThresholdConfig,
};
use super::{relu, relu_backward};
use crate::error::Result;
use crate::gpu::{GpuContext, Tensor};

/// A layer's neuron and its settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Neuron {
    /// Spikes {0, 1} (SpikingJelly's MultiStepLIFNode).
    Lif(LifConfig),
    /// Spikes {-1, 0, +1}, LIF charge, reset on either spike.
    Ternary(LifConfig),
    /// Q-SNN's neuron with its b-bit membrane.
    Qsnn(QsnnConfig),
    /// `S = x >= v_th`, no state (T is not read).
    Threshold(ThresholdConfig),
    /// `max(x, 0)`, no state (T is not read).
    Relu,
}

impl Neuron {
    /// The output of `x [T * .., ..]` (spikes, or ReLU's values), shaped like `x`, and
    /// what [`Neuron::backward`] reads: the membrane H for the stateful neurons, `x`
    /// itself (the same buffer) for the stateless ones.
    pub fn forward(
        &self,
        ctx: &GpuContext,
        x: &Tensor,
        t_steps: usize,
    ) -> Result<(Tensor, Tensor)> {
        let time_major = || x.reshape(&[t_steps, x.len() / t_steps.max(1)]);
        let (out, saved) = match self {
            Neuron::Lif(cfg) => {
                let f = lif_forward(ctx, &time_major()?, t_steps, cfg, LifOutputs::TRAIN)?;
                (f.spikes, f.h)
            }
            Neuron::Ternary(cfg) => {
                let f = ternary_forward(ctx, &time_major()?, t_steps, cfg, LifOutputs::TRAIN)?;
                (f.spikes, f.h)
            }
            Neuron::Qsnn(cfg) => {
                let f = qsnn_forward(ctx, &time_major()?, t_steps, cfg)?;
                (Some(f.spikes), Some(f.h))
            }
            Neuron::Threshold(cfg) => {
                let f = threshold_forward(ctx, x, cfg, LifOutputs::TRAIN)?;
                (f.spikes, f.h)
            }
            Neuron::Relu => (Some(relu(ctx, x)?), Some(x.clone())),
        };
        let out = out.expect("TRAIN asks for the output");
        let saved = saved.expect("TRAIN asks for what backward reads");
        Ok((out.reshape(x.shape())?, saved.reshape(x.shape())?))
    }

    /// [`Neuron::forward`] of a BatchNorm's output `x coef[0] + coef[1]` (per channel,
    /// `coef [2, C]`), normalized as the neuron reads x: the LIF on channels a multiple of
    /// 4. `None` where this neuron or shape has no such kernel (the caller normalizes
    /// first).
    pub fn forward_normalized(
        &self,
        ctx: &GpuContext,
        x: &Tensor,
        coef: &Tensor,
        t_steps: usize,
    ) -> Result<Option<(Tensor, Tensor)>> {
        let Neuron::Lif(cfg) = self else {
            return Ok(None);
        };
        // Time-major [T, rows, C]: whole rows of channels in each step, C a multiple of 4.
        let c = x.shape().last().copied().unwrap_or(0);
        let per_step = x.len().checked_div(t_steps).unwrap_or(0);
        let fits = c > 0
            && c.is_multiple_of(4)
            && per_step * t_steps == x.len()
            && per_step.is_multiple_of(c);
        if !fits {
            return Ok(None);
        }
        let rows = per_step / c;
        let f = lif_forward_affine(
            ctx,
            &x.reshape(&[t_steps, rows, c])?,
            coef,
            t_steps,
            cfg,
            LifOutputs::TRAIN,
        )?;
        let out = f.spikes.expect("TRAIN asks for the spikes");
        let h = f.h.expect("TRAIN asks for H");
        Ok(Some((out.reshape(x.shape())?, h.reshape(x.shape())?)))
    }

    /// The input's gradient from the output's `d_out` and the `saved` tensor of
    /// [`Neuron::forward`], shaped like `d_out`.
    pub fn backward(
        &self,
        ctx: &GpuContext,
        d_out: &Tensor,
        saved: &Tensor,
        t_steps: usize,
    ) -> Result<Tensor> {
        let time_major = [t_steps, d_out.len() / t_steps.max(1)];
        let flat = || -> Result<(Tensor, Tensor)> {
            Ok((d_out.reshape(&time_major)?, saved.reshape(&time_major)?))
        };
        let dx = match self {
            Neuron::Lif(cfg) => {
                let (ds, h) = flat()?;
                lif_backward(ctx, &ds, &h, t_steps, cfg)?
            }
            Neuron::Ternary(cfg) => {
                let (ds, h) = flat()?;
                ternary_backward(ctx, &ds, &h, t_steps, cfg)?
            }
            Neuron::Qsnn(cfg) => {
                let (ds, h) = flat()?;
                qsnn_backward(ctx, &ds, &h, t_steps, cfg)?
            }
            Neuron::Threshold(cfg) => threshold_backward(ctx, d_out, saved, cfg)?,
            Neuron::Relu => relu_backward(ctx, d_out, saved)?,
        };
        dx.reshape(d_out.shape())
    }
}
