//! The attention core both model families share, in every attention form (MODELS.md
//! sections 2-5): the q/k/v branches (weight -> BN -> neuron), the attention op of the
//! form, and the attention LIF (v_th = 0.5) whose spikes the family's proj layer reads.
//!
//! Branch neurons: LIF spikes for Q, K and V, except A2OS2A's `K = ReLU(BN(W_K x))`
//! (non-negative real) and `V` ternary spikes {-1, 0, +1}. Attention op by form:
//! - SSA: `(Q K^T) V * 0.125`;
//! - binary (BESTformer): `LIF_soft(Q K^T) V * 0.125 * lambda` (the d x d order
//!   `Q LIF_soft(K^T V)` for patch-16 models, N = 196 tokens), lambda `lambda_attn`;
//! - SSA_Bin: `(Q K^T > Delta) V - shift`, Delta and the shift running statistics kept
//!   as store buffers (`attn_delta`, `attn_shift`), updated by training forwards only;
//! - A2OS2A: `(Q K^T) V`, no scale.
//!
//! SSA, the binary map and SSA_Bin (its `LIF_out`) end in the attention LIF, so proj sees
//! spikes and its binary weights run on packed bits; A2OS2A hands proj the real-valued
//! `(Q K^T) V` (MODELS.md section 5: "then proj conv + BN"), and a binary proj then
//! multiplies by its f32 signs.

use super::config::{AttentionForm, ModelConfig, TransformerConfig};
use super::layers::{self, unit_backward, unit_forward_with, Mode, UnitSaved, Weight};
use super::params::{AttnParams, UnitParams};
use super::store::ParamStore;
use crate::error::Result;
use crate::gpu::{GpuContext, Tensor};
use crate::ops::attention::{
    self, BinaryAttentionConfig, MapOrder, MapRate, SsaBinConfig, SsaBinState, SsaPath,
};
use crate::ops::{self, LifConfig, LifOutputs};

/// SSA's fixed scale.
pub const SSA_SCALE: f32 = 0.125;

/// A branch's neuron after its BN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Neuron {
    Lif,
    Relu,
    Ternary,
}

/// One q/k/v branch: weight -> BN, then the neuron on the BN output.
#[derive(Debug, Clone)]
pub struct BranchSaved {
    pub unit: UnitSaved,
    /// The neuron's membrane H (LIF, ternary) or input (ReLU).
    pub h: Tensor,
}

/// The attention op's saved activations, by form.
#[derive(Debug, Clone)]
pub enum CoreSaved {
    Ssa(attention::SsaSaved),
    Binary(attention::BinaryAttentionSaved),
    SsaBin(attention::SsaBinSaved),
    A2os2a(attention::A2os2aSaved),
}

impl CoreSaved {
    /// The firing rate of the attention map (the fraction of non-zero scores for the
    /// real-valued maps).
    pub fn rate(&self) -> &MapRate {
        match self {
            CoreSaved::Ssa(s) => &s.rate,
            CoreSaved::Binary(s) => &s.rate,
            CoreSaved::SsaBin(s) => &s.rate,
            CoreSaved::A2os2a(s) => &s.rate,
        }
    }

    fn bytes(&self) -> u64 {
        let all: Vec<&Tensor> = match self {
            CoreSaved::Ssa(s) => vec![&s.q, &s.k, &s.v, &s.scores],
            CoreSaved::Binary(s) => {
                let (x, y) = &s.score_operands;
                vec![&s.q, &s.k, &s.v, x, y, &s.map]
            }
            CoreSaved::SsaBin(s) => {
                let (x, y) = &s.score_operands;
                vec![&s.q, &s.k, &s.v, x, y, &s.map]
            }
            CoreSaved::A2os2a(s) => vec![&s.q, &s.k, &s.v, &s.scores],
        };
        all.into_iter().map(Tensor::byte_len).sum()
    }
}

/// What [`Attention::backward`] reads.
#[derive(Debug, Clone)]
pub struct AttentionSaved {
    pub q: BranchSaved,
    pub k: BranchSaved,
    pub v: BranchSaved,
    pub core: CoreSaved,
    /// `[T, B, heads, N, d]` membrane of the attention LIF (none for A2OS2A).
    pub y_h: Option<Tensor>,
}

impl AttentionSaved {
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
#[derive(Debug, Clone)]
pub struct Attention {
    pub form: AttentionForm,
    heads: usize,
    t: usize,
    /// The q/k/v layers' input is spikes (BESTformer's LIF first) or real (Spikformer's
    /// residual stream).
    spike_input: bool,
    lif: LifConfig,
    out_lif: LifConfig,
    binary: BinaryAttentionConfig,
}

impl Attention {
    pub fn new(config: &ModelConfig, t: &TransformerConfig, spike_input: bool) -> Self {
        // Large token counts (patch-16 models) build the binary map in the d x d order.
        let order = if t.feature_order() {
            MapOrder::Features
        } else {
            MapOrder::Tokens
        };
        Self {
            form: t.attention,
            heads: t.heads,
            t: config.time_steps,
            spike_input,
            lif: LifConfig::default(),
            out_lif: LifConfig {
                v_th: 0.5,
                ..LifConfig::default()
            },
            binary: BinaryAttentionConfig {
                order,
                ..BinaryAttentionConfig::default()
            },
        }
    }

    fn neurons(&self) -> [Neuron; 3] {
        match self.form {
            AttentionForm::A2os2a => [Neuron::Lif, Neuron::Relu, Neuron::Ternary],
            _ => [Neuron::Lif; 3],
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

    /// SSA_Bin's running statistics of a block (the store's buffers, shared: a training
    /// forward updates them in place).
    pub fn ssa_bin_state(&self, store: &ParamStore, p: &AttnParams) -> Result<SsaBinState> {
        let stat = |i: usize| -> Result<Tensor> {
            let id = p.form.stats.get(i).ok_or_else(|| {
                crate::Error::InvalidArgument(format!("'{}' has no SSA_Bin statistics", p.name))
            })?;
            Ok(store.stat(*id)?.clone())
        };
        Ok(SsaBinState {
            delta: stat(0)?,
            mean: stat(1)?,
        })
    }

    fn lambda(&self, store: &ParamStore, p: &AttnParams, grad: bool) -> Result<Tensor> {
        let id =
            *p.form.learned.first().ok_or_else(|| {
                crate::Error::InvalidArgument(format!("'{}' has no lambda", p.name))
            })?;
        let t = if grad {
            store.grad(id)?
        } else {
            store.param(id)?
        };
        t.reshape(&[self.t, self.heads])
    }

    /// Whether the output is the attention LIF's spikes (every form but A2OS2A).
    pub fn output_is_spikes(&self) -> bool {
        self.form != AttentionForm::A2os2a
    }

    /// The family's proj layer as it reads this attention's output.
    pub fn proj(&self, weight: Weight) -> Weight {
        if self.output_is_spikes() {
            weight
        } else {
            weight.real_input()
        }
    }

    /// A block's attention `p` on `x [T, B, N, D]` (the q/k/v layers' input): proj's
    /// input `[T, B, N, D]`, the attention LIF's spikes (A2OS2A: `(Q K^T) V` itself).
    /// SSA_Bin reads `frozen` statistics when given (a reversible block recomputed in
    /// backward), else the store's, which a [`Mode::Train`] forward updates.
    pub fn forward(
        &self,
        ctx: &GpuContext,
        store: &ParamStore,
        p: &AttnParams,
        x: &Tensor,
        mode: Mode,
        frozen: Option<&SsaBinState>,
    ) -> Result<(Tensor, AttentionSaved)> {
        let mut qkv = Vec::new();
        let mut saved = Vec::new();
        for (branch, neuron) in [&p.q, &p.k, &p.v].into_iter().zip(self.neurons()) {
            let w = self.weight(branch);
            let (z, unit) = unit_forward_with(ctx, store, &w, &branch.bn, None, x, mode)?;
            let (out, h) = match neuron {
                Neuron::Lif => layers::lif_forward(ctx, &z, self.t, &self.lif)?,
                Neuron::Relu => (ops::relu(ctx, &z)?, z),
                Neuron::Ternary => {
                    let flat = z.reshape(&[self.t, z.len() / self.t])?;
                    let f = ops::ternary_forward(ctx, &flat, self.t, &self.lif, LifOutputs::TRAIN)?;
                    let s = f.spikes.expect("TRAIN asks for spikes");
                    let h = f.h.expect("TRAIN asks for H");
                    (s.reshape(z.shape())?, h.reshape(z.shape())?)
                }
            };
            qkv.push(ops::split_heads(ctx, &out, self.heads)?);
            saved.push(BranchSaved { unit, h });
        }
        let (q, k, v) = (&qkv[0], &qkv[1], &qkv[2]);
        let (y, core) = match self.form {
            AttentionForm::Ssa => {
                let (y, s) = attention::ssa_forward(ctx, q, k, v, SSA_SCALE, SsaPath::Binary)?;
                (y, CoreSaved::Ssa(s))
            }
            AttentionForm::Binary => {
                let lambda = self.lambda(store, p, false)?;
                let (y, s) =
                    attention::binary_attention_forward(ctx, q, k, v, &lambda, &self.binary)?;
                (y, CoreSaved::Binary(s))
            }
            AttentionForm::SsaBin => {
                let state = match frozen {
                    Some(s) => s.clone(),
                    None => self.ssa_bin_state(store, p)?,
                };
                let config = SsaBinConfig {
                    training: mode == Mode::Train && frozen.is_none(),
                    ..SsaBinConfig::default()
                };
                let (y, s) = attention::ssa_bin_forward(ctx, q, k, v, &state, &config)?;
                (y, CoreSaved::SsaBin(s))
            }
            AttentionForm::A2os2a => {
                let (y, s) = attention::a2os2a_forward(ctx, q, k, v)?;
                (y, CoreSaved::A2os2a(s))
            }
        };
        if let Some(log) = &store.energy {
            self.record_products(ctx, log, &p.name, q, k, &core)?;
        }
        let (ys, y_h) = if self.output_is_spikes() {
            let (ys, y_h) = layers::lif_forward(ctx, &y, self.t, &self.out_lif)?;
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

    /// The energy log's entries of the two attention products: the first (`Q K^T`, or
    /// `K^T V` in the d x d order) driven by the spikes of its first operand, the second
    /// (`A V`, or `Q A`) by the map's firing rate.
    fn record_products(
        &self,
        ctx: &GpuContext,
        log: &super::energy::EnergyLog,
        p: &str,
        q: &Tensor,
        k: &Tensor,
        core: &CoreSaved,
    ) -> Result<()> {
        let s = attention::AttnShape::of("attention energy", q)?;
        let (maps, n, d) = (s.maps() as u64, s.n as u64, s.d as u64);
        let features = matches!(core, CoreSaved::Binary(b) if b.config.order == MapOrder::Features);
        if features {
            log.record(ctx, &format!("{p}.kv_product"), false, k, maps * d * d * n)?;
            log.record_map(&format!("{p}.qa_product"), core.rate(), maps * n * d * d);
        } else {
            log.record(ctx, &format!("{p}.qk_product"), false, q, maps * n * n * d)?;
            log.record_map(&format!("{p}.av_product"), core.rate(), maps * n * n * d);
        }
        Ok(())
    }

    /// Backward of [`Attention::forward`] for the gradient of its output spikes `dys
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
            Some(y_h) => layers::lif_backward(ctx, &dys, y_h, self.t, &self.out_lif)?,
            None => dys,
        };
        let (dq, dk, dv) = match &a.core {
            CoreSaved::Ssa(s) => {
                let g = attention::ssa_backward(ctx, &dy, s)?;
                (g.dq, g.dk, g.dv)
            }
            CoreSaved::Binary(s) => {
                let g = attention::binary_attention_backward(ctx, &dy, s)?;
                ops::axpy_into(ctx, &self.lambda(store, p, true)?, &g.dlambda, 1.0)?;
                (g.dq, g.dk, g.dv)
            }
            CoreSaved::SsaBin(s) => {
                let g = attention::ssa_bin_backward(ctx, &dy, s)?;
                (g.dq, g.dk, g.dv)
            }
            CoreSaved::A2os2a(s) => {
                let g = attention::a2os2a_backward(ctx, &dy, s)?;
                (g.dq, g.dk, g.dv)
            }
        };
        let mut dx: Option<Tensor> = None;
        let branches = [(&a.q, dq), (&a.k, dk), (&a.v, dv)];
        for ((branch, neuron), (b, d)) in [&p.q, &p.k, &p.v]
            .into_iter()
            .zip(self.neurons())
            .zip(branches)
        {
            let ds = ops::merge_heads(ctx, &d)?;
            let dz = match neuron {
                Neuron::Lif => layers::lif_backward(ctx, &ds, &b.h, self.t, &self.lif)?,
                Neuron::Relu => ops::relu_backward(ctx, &ds, &b.h)?,
                Neuron::Ternary => {
                    let flat = [self.t, ds.len() / self.t];
                    ops::ternary_backward(
                        ctx,
                        &ds.reshape(&flat)?,
                        &b.h.reshape(&flat)?,
                        self.t,
                        &self.lif,
                    )?
                    .reshape(ds.shape())?
                }
            };
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
