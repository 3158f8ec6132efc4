//! The attention core both model families share, in every attention form (docs/models.md
//! sections 2-5): the q/k/v branches (weight -> BN -> the form's branch neuron), the
//! form's op (`ops::attention`, behind [`AttentionOp`]), and the attention LIF
//! (v_th = 0.5) whose spikes the family's proj layer reads when the form ends in spikes.
//!
//! A form's own tensors (BESTformer's lambda, SSA_Bin's running threshold and shift) are
//! the block's `AttnParams::form`: learned ones get their gradient from the form's
//! backward, running statistics are updated in place by training forwards only.
//! A form whose output is real-valued (A2OS2A's `(Q K^T) V`) hands it to proj directly,
//! and a binary proj then multiplies by its f32 signs.

use super::config::{ModelConfig, TransformerConfig};
use super::energy::EnergyLog;
use super::layers::{unit_backward, unit_forward_with, Mode, UnitSaved, Weight};
use super::params::{AttnParams, UnitParams};
use super::store::ParamStore;
use crate::error::Result;
use crate::gpu::{GpuContext, Tensor};
use crate::ops::attention::{AttentionOp, FormInputs, FormSaved};
use crate::ops::{self, LifConfig, Neuron};

/// One q/k/v branch: weight -> BN, then the neuron on the BN output.
#[derive(Debug)]
pub struct BranchSaved {
    /// The weight -> BN unit's saved state.
    pub unit: UnitSaved,
    /// What the neuron's backward reads (its membrane H, or ReLU's input).
    pub h: Tensor,
}

/// What [`Attention::backward`] reads.
#[derive(Debug)]
pub struct AttentionSaved {
    /// The query branch.
    pub q: BranchSaved,
    /// The key branch.
    pub k: BranchSaved,
    /// The value branch.
    pub v: BranchSaved,
    /// The form's saved state.
    pub core: Box<dyn FormSaved>,
    /// `[T, B, heads, N, d]` membrane of the attention LIF (none when the form's output
    /// is real-valued).
    pub y_h: Option<Tensor>,
}

impl AttentionSaved {
    /// Bytes kept for backward.
    pub fn bytes(&self) -> u64 {
        let branch = |b: &BranchSaved| b.unit.bytes() + b.h.byte_len();
        branch(&self.q)
            + branch(&self.k)
            + branch(&self.v)
            + self.core.bytes()
            + self.y_h.as_ref().map_or(0, Tensor::byte_len)
    }
}

/// The attention core of one model's blocks.
#[derive(Debug)]
pub struct Attention {
    op: Box<dyn AttentionOp>,
    heads: usize,
    t: usize,
    /// The q/k/v layers' input is spikes (BESTformer's LIF first) or real (Spikformer's
    /// residual stream).
    spike_input: bool,
    /// The attention LIF after the form's op.
    out_lif: Neuron,
}

impl Attention {
    /// The attention of `config`'s blocks; `spike_input` when the q/k/v layers read spikes.
    pub fn new(config: &ModelConfig, t: &TransformerConfig, spike_input: bool) -> Self {
        Self {
            op: t.attention.op(&t.form_setup(config.time_steps)),
            heads: t.heads,
            t: config.time_steps,
            spike_input,
            out_lif: Neuron::Lif(LifConfig {
                v_th: 0.5,
                ..LifConfig::default()
            }),
        }
    }

    fn weight(&self, unit: &UnitParams) -> Weight {
        let w = Weight::linear(unit.weight);
        if self.spike_input {
            w
        } else {
            w.real_input()
        }
    }

    /// The form's running statistics in block `p` (the store's buffers, shared: a
    /// training forward updates them in place), copied: what the forward reads, kept
    /// for a block recomputed in backward.
    pub fn stats_snapshot(
        &self,
        ctx: &GpuContext,
        store: &ParamStore,
        p: &AttnParams,
    ) -> Result<Vec<Tensor>> {
        p.form
            .stats
            .iter()
            .map(|&id| ops::copy(ctx, store.stat(id)?))
            .collect()
    }

    /// The family's proj layer as it reads this attention's output.
    pub fn proj(&self, weight: Weight) -> Weight {
        if self.op.output_is_spikes() {
            weight
        } else {
            weight.real_input()
        }
    }

    /// A block's attention `p` on `x [T, B, N, D]` (the q/k/v layers' input): proj's
    /// input `[T, B, N, D]`, the attention LIF's spikes (or the form's real output).
    /// The form reads `frozen` running statistics when given (a reversible block
    /// recomputed in backward), else the store's, which a [`Mode::Train`] forward
    /// updates.
    pub fn forward(
        &self,
        ctx: &GpuContext,
        store: &ParamStore,
        p: &AttnParams,
        x: &Tensor,
        mode: Mode,
        frozen: Option<&[Tensor]>,
    ) -> Result<(Tensor, AttentionSaved)> {
        let mut qkv = Vec::new();
        let mut saved = Vec::new();
        for (branch, neuron) in [&p.q, &p.k, &p.v].into_iter().zip(self.op.branch_neurons()) {
            let w = self.weight(branch);
            let (z, unit) = unit_forward_with(ctx, store, &w, &branch.bn, None, x, mode)?;
            let (out, h) = neuron.forward(ctx, &z, self.t)?;
            qkv.push(ops::split_heads(ctx, &out, self.heads)?);
            saved.push(BranchSaved { unit, h });
        }
        let (q, k, v) = (&qkv[0], &qkv[1], &qkv[2]);
        let learned = p
            .form
            .learned
            .iter()
            .map(|&id| store.param(id).cloned())
            .collect::<Result<Vec<_>>>()?;
        let stats = match frozen {
            Some(s) => s.to_vec(),
            None => p
                .form
                .stats
                .iter()
                .map(|&id| store.stat(id).cloned())
                .collect::<Result<Vec<_>>>()?,
        };
        let inputs = FormInputs {
            learned: &learned,
            stats: &stats,
            update_stats: mode == Mode::Train && frozen.is_none(),
        };
        let (y, core) = self.op.forward(ctx, q, k, v, &inputs)?;
        if let Some(log) = &store.energy {
            record_products(ctx, log, &p.name, core.as_ref())?;
        }
        if let (Some(trace), Some(map)) = (&store.trace, core.binary_map()) {
            trace.record_map(&p.name, map);
        }
        let (ys, y_h) = if self.op.output_is_spikes() {
            let (ys, y_h) = self.out_lif.forward(ctx, &y, self.t)?;
            (ys, Some(y_h))
        } else {
            (y, None)
        };
        let ys = ops::merge_heads(ctx, &ys)?;
        let mut saved = saved.into_iter();
        let mut next = || saved.next().expect("three branches");
        let acts = AttentionSaved {
            q: next(),
            k: next(),
            v: next(),
            core,
            y_h,
        };
        Ok((ys, acts))
    }

    /// Backward of [`Attention::forward`] for the gradient of its output `dys
    /// [T, B, N, D]`: parameter gradients accumulate into the store; returns dx.
    pub fn backward(
        &self,
        ctx: &GpuContext,
        store: &ParamStore,
        p: &AttnParams,
        a: &AttentionSaved,
        dys: &Tensor,
    ) -> Result<Tensor> {
        let dys = ops::split_heads(ctx, dys, self.heads)?;
        let dy = match &a.y_h {
            Some(y_h) => self.out_lif.backward(ctx, &dys, y_h, self.t)?,
            None => dys,
        };
        let g = a.core.backward(ctx, &dy)?;
        for (&id, d) in p.form.learned.iter().zip(&g.dlearned) {
            ops::axpy_into(ctx, store.grad(id)?, d, 1.0)?;
        }
        let mut dx: Option<Tensor> = None;
        let branches = [(&a.q, g.dq), (&a.k, g.dk), (&a.v, g.dv)];
        for ((branch, neuron), (b, d)) in [&p.q, &p.k, &p.v]
            .into_iter()
            .zip(self.op.branch_neurons())
            .zip(branches)
        {
            let ds = ops::merge_heads(ctx, &d)?;
            let dz = neuron.backward(ctx, &ds, &b.h, self.t)?;
            let w = self.weight(branch);
            let d = unit_backward(ctx, store, &w, &branch.bn, None, &b.unit, &dz, true)?
                .expect("asked for dx");
            match &dx {
                Some(acc) => ops::axpy_into(ctx, acc, &d, 1.0)?,
                None => dx = Some(d),
            }
        }
        Ok(dx.expect("three branches"))
    }
}

/// The energy log's entries of a form's two products (see `ops::attention::Products`),
/// named under the block's attention `name`.
fn record_products(
    ctx: &GpuContext,
    log: &EnergyLog,
    name: &str,
    core: &dyn FormSaved,
) -> Result<()> {
    let p = core.products();
    let first = format!("{name}.{}", p.first);
    log.record(ctx, &first, false, &p.first_input, p.first_macs)?;
    log.record_map(&format!("{name}.{}", p.second), core.rate(), p.second_macs);
    Ok(())
}
