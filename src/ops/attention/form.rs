//! The attention forms behind one interface: each form implements [`AttentionOp`] in its
//! own module (`AttentionForm::op`, in `registry`, builds it), whose forward returns the
//! output and a [`FormSaved`] that runs the backward and answers what the model layer,
//! the energy report and the benchmarks ask of a form (firing rate, saved bytes, the two
//! products). The model layer keeps what every form shares: the q/k/v branches and the
//! attention LIF.

use super::{AttnShape, MapRate};
use crate::error::{Error, Result};
use crate::gpu::{GpuContext, Tensor};
use crate::ops::Neuron;

/// What a form needs to know of the model it runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FormSetup {
    /// Time steps T.
    pub time_steps: usize,
    /// Heads.
    pub heads: usize,
    /// Width of a head.
    pub head_dim: usize,
    /// Build maps in the d x d order (the patch-16 models' many tokens); only the binary
    /// map has one.
    pub feature_order: bool,
}

/// How a form's tensor is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormParamKind {
    /// Trained by the optimizer from [`FormGrads::dlearned`].
    Learned,
    /// Updated in place by training forwards, never trained.
    RunningStat,
}

/// A tensor a form adds to each block's attention (`block.{i}.attn.<name>`).
#[derive(Debug, Clone, PartialEq)]
pub struct FormParam {
    /// The name under the block's attention (`block.{i}.attn.<name>`).
    pub name: &'static str,
    /// The shape.
    pub shape: Vec<usize>,
    /// Learned or a running statistic.
    pub kind: FormParamKind,
    /// Every element's initial value.
    pub init: f32,
}

/// The form's own tensors for one forward.
pub struct FormInputs<'a> {
    /// The form's Learned tensors, in `params()` order, shaped as declared.
    pub learned: &'a [Tensor],
    /// Its RunningStat tensors, in `params()` order; updated in place when `update_stats`.
    pub stats: &'a [Tensor],
    /// Update the running statistics (training forwards).
    pub update_stats: bool,
}

impl FormInputs<'_> {
    /// Check that there are as many tensors of each kind as `params` declares.
    pub(super) fn expect(&self, op: &'static str, params: &[FormParam]) -> Result<()> {
        let count = |kind| params.iter().filter(|p| p.kind == kind).count();
        let (learned, stats) = (
            count(FormParamKind::Learned),
            count(FormParamKind::RunningStat),
        );
        if self.learned.len() != learned || self.stats.len() != stats {
            return Err(Error::InvalidArgument(format!(
                "{op}: the form takes {learned} learned and {stats} running-statistic \
                 tensors, got {} and {}",
                self.learned.len(),
                self.stats.len()
            )));
        }
        Ok(())
    }
}

/// Gradients of a form's inputs, freshly written.
pub struct FormGrads {
    /// Gradient of Q.
    pub dq: Tensor,
    /// Gradient of K.
    pub dk: Tensor,
    /// Gradient of V.
    pub dv: Tensor,
    /// Gradients of the Learned tensors, in order, shaped as declared.
    pub dlearned: Vec<Tensor>,
}

/// One attention form's op, built by [`AttentionForm::op`](super::AttentionForm::op).
pub trait AttentionOp: std::fmt::Debug + Send + Sync {
    /// Neurons of the q, k and v branches (A2OS2A: LIF, ReLU, ternary; the others LIF),
    /// with SpikingJelly's default LIF settings.
    fn branch_neurons(&self) -> [Neuron; 3];

    /// Whether the model's attention LIF (v_th 0.5) follows (all but A2OS2A).
    fn output_is_spikes(&self) -> bool;

    /// Extra tensors per block: BESTformer binary map's `lambda_attn` [T, 1, heads, 1, 1]
    /// (Learned, init 1), SSA_Bin's `attn_delta` `[heads]` and `attn_shift` `[heads, d]`
    /// (RunningStat, init 0).
    fn params(&self) -> Vec<FormParam>;

    /// q, k, v f32 `[T, B, heads, N, d]` (spikes / ReLU / ternary per `branch_neurons`):
    /// the output `[T, B, heads, N, d]` and what backward reads.
    fn forward(
        &self,
        ctx: &GpuContext,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        inputs: &FormInputs,
    ) -> Result<(Tensor, Box<dyn FormSaved>)>;
}

/// The energy report's view of the two products of a form: the first (`Q K^T`, or
/// `K^T V` in the d x d order) driven by the spikes of its first operand, the second
/// (`A V`, or `Q A`) by the map's firing rate.
pub struct Products {
    /// The first product's name.
    pub first: &'static str,
    /// The operand whose spikes drive the first product.
    pub first_input: Tensor,
    /// The first product's multiply-accumulates.
    pub first_macs: u64,
    /// The second product's name.
    pub second: &'static str,
    /// The second product's multiply-accumulates.
    pub second_macs: u64,
}

impl Products {
    /// The products of a map in the N x N order (`Q K^T`, then the map times V) for
    /// Q and K `[T, B, heads, N, d]`.
    pub(super) fn tokens(q: &Tensor) -> Self {
        let (maps, n, d) = sizes(q);
        Self {
            first: "qk_product",
            first_input: q.clone(),
            first_macs: maps * n * n * d,
            second: "av_product",
            second_macs: maps * n * n * d,
        }
    }

    /// The products of a map in the d x d order (`K^T V`, then Q times the map).
    pub(super) fn features(k: &Tensor) -> Self {
        let (maps, n, d) = sizes(k);
        Self {
            first: "kv_product",
            first_input: k.clone(),
            first_macs: maps * d * d * n,
            second: "qa_product",
            second_macs: maps * n * d * d,
        }
    }
}

/// `(T * B * heads, N, d)` of a saved Q or K, whose shape the forward checked.
fn sizes(x: &Tensor) -> (u64, u64, u64) {
    let s = AttnShape::of("attention products", x).expect("the forward checked Q, K, V");
    (s.maps() as u64, s.n as u64, s.d as u64)
}

/// What a form's forward keeps for its backward.
pub trait FormSaved: std::fmt::Debug + Send + Sync {
    /// Gradients for the upstream gradient `dy` `[T, B, heads, N, d]`.
    fn backward(&self, ctx: &GpuContext, dy: &Tensor) -> Result<FormGrads>;

    /// Firing rate of the map (fraction of non-zero scores for real-valued maps).
    fn rate(&self) -> &MapRate;

    /// THE one definition of the bytes this form keeps for backward: every activation
    /// the saved state holds, Q, K and V included (shared with the caller, but kept alive
    /// by it); not the model's parameters (lambda), which live anyway.
    fn bytes(&self) -> u64;

    /// The two products, for the energy report.
    fn products(&self) -> Products;

    /// The 1-bit attention map `PackedBits [T * B * heads, N, N]` (query rows, bits along
    /// the keys) of the forms that build one in the N x N order; None for the others.
    fn binary_map(&self) -> Option<&Tensor> {
        None
    }
}
