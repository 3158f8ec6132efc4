//! A model's parameters on the GPU: one flat f32 buffer for every trainable tensor (so
//! one AdamW dispatch updates them all), a twin buffer for their gradients, BatchNorm
//! running statistics and other buffers, and the binarized weights of binary layers,
//! rebuilt once after each optimizer step rather than per forward. Every tensor is
//! found by its [`ParamId`] (the models' typed layout); names are for checkpoints.
//!
//! Tensors are kept in the layout the kernels use: 3x3 conv weights `[C_out, 9 C_in]`
//! (PyTorch's `[C_out, C_in, 3, 3]` permuted, see `ops::conv`), 1x1 convs and Conv1d as
//! `[out, in]`; checkpoints convert to and from the reference layout.

use std::collections::HashMap;

use super::checkpoint::{HostTensor, PackedTensor, StateDict, CONFIG_KEY};
use super::config::{ModelConfig, WeightMode};
use super::energy::EnergyLog;
use super::params::{param_specs, BnParams, ParamId, ParamRole, ParamSpec};
use super::trace::Trace;
use crate::error::{Error, Result};
use crate::gpu::{DType, GpuContext, Tensor};
use crate::ops::{self, BinaryWeights, QuantWeights};

/// What the store holds for one spec.
#[derive(Debug)]
enum Entry {
    /// A trainable tensor: its place in the flat buffers and its views there, in the
    /// kernels' shape.
    Trainable {
        offset: usize,
        value: Tensor,
        grad: Tensor,
    },
    /// A running statistic or buffer, updated in place by training forwards.
    Stat(Tensor),
    /// `num_batches_tracked`, counted on the host.
    Count(i64),
}

/// A binary or b-bit weight's derived forms, rebuilt by `refresh_binary`.
#[derive(Debug, Default)]
struct Derived {
    binary: Option<BinaryWeights>,
    /// Q-SNN's power-of-two scale `[C_out]` of a binary weight (Q-SNN weight mode only).
    binary_scale: Option<Tensor>,
    /// The bit-planes of a b-bit weight.
    quant: Option<QuantWeights>,
}

/// A model's tensors on the GPU, found by `ParamId`: the trainable ones in one buffer with their gradients, the running statistics, and the binarized or quantized forms of the weights.
pub struct ParamStore {
    /// The model's config.
    pub config: ModelConfig,
    /// Every trainable parameter, decayed ones first.
    pub params: Tensor,
    /// Their gradients, same layout (accumulated by backward passes, zeroed per step).
    pub grads: Tensor,
    /// Elements `[0, decay_end)` of `params` get weight decay (see `decays`).
    pub decay_end: usize,
    specs: Vec<ParamSpec>,
    entries: Vec<Entry>,
    derived: Vec<Derived>,
    by_name: HashMap<String, ParamId>,
    /// When set, every conv/linear layer records its input for the energy report.
    pub energy: Option<EnergyLog>,
    /// When set, inference forwards keep the layers' inputs and the attention maps.
    pub trace: Option<Trace>,
}

/// The kernels' shape of a reference tensor.
fn kernel_shape(spec: &ParamSpec) -> Vec<usize> {
    match spec.shape[..] {
        [o, i, 3, 3] => vec![o, 9 * i],
        [o, i, 1] | [o, i, 1, 1] => vec![o, i],
        _ => spec.shape.clone(),
    }
}

fn is_conv3x3(spec: &ParamSpec) -> bool {
    matches!(spec.shape[..], [_, _, 3, 3])
}

/// The ±1 values of packed sign bits, `[C_out, K]`.
fn unpack_signs(p: &PackedTensor) -> Vec<f32> {
    let rows = p.shape.first().copied().unwrap_or(0);
    let k: usize = p.shape.iter().skip(1).product();
    let wpr = crate::gpu::words_per_row(k);
    let mut out = Vec::with_capacity(rows * k);
    for r in 0..rows {
        for c in 0..k {
            let bit = p
                .words
                .get(r * wpr + c / 32)
                .map_or(0, |w| (w >> (c % 32)) & 1);
            out.push(if bit == 1 { 1.0 } else { -1.0 });
        }
    }
    out
}

/// timm's rule: weight decay for every tensor of more than one dimension (so neither
/// biases nor BatchNorm's affine parameters).
fn decays(spec: &ParamSpec) -> bool {
    spec.shape.len() > 1
}

/// A trainable tensor's values in the kernels' layout.
fn kernel_values(spec: &ParamSpec, t: &HostTensor) -> Result<Vec<f32>> {
    if is_conv3x3(spec) {
        ops::conv_weight_from_torch(&t.data, spec.shape[0], spec.shape[1])
    } else {
        Ok(t.data.clone())
    }
}

impl ParamStore {
    /// Upload a checked state dict (see `StateDict::check`) for `config`.
    pub fn new(ctx: &GpuContext, config: &ModelConfig, state: &StateDict) -> Result<Self> {
        Self::from_specs(ctx, config, param_specs(config), state)
    }

    /// Upload the tensors `specs` lists (a model's `param_specs`, or any other set).
    pub fn from_specs(
        ctx: &GpuContext,
        config: &ModelConfig,
        specs: Vec<ParamSpec>,
        state: &StateDict,
    ) -> Result<Self> {
        let align = ctx.view_alignment_words();
        let mut trainable: Vec<usize> = (0..specs.len())
            .filter(|&i| specs[i].role == ParamRole::Trainable)
            .collect();
        trainable.sort_by_key(|&i| !decays(&specs[i])); // stable: decayed first, reference order kept
        let mut offsets = vec![None; specs.len()];
        let mut offset = 0;
        let mut decay_end = 0;
        let mut host = Vec::new();
        for i in trainable {
            let spec = &specs[i];
            let data = match state.packed.get(&spec.name) {
                // A deploy export: the signs are the weights (already in kernel layout).
                Some(p) => unpack_signs(p),
                None => kernel_values(spec, tensor_for(state, spec)?)?,
            };
            host.resize(offset, 0.0);
            host.extend_from_slice(&data);
            if decays(spec) {
                decay_end = offset + data.len();
            }
            offsets[i] = Some(offset);
            offset = (offset + data.len()).next_multiple_of(align);
        }
        host.resize(offset.max(1), 0.0);
        let params = ctx.upload_f32(&host, &[host.len()])?;
        let grads = ctx.zeros(&[host.len()], DType::F32)?;
        let mut entries = Vec::with_capacity(specs.len());
        for (spec, offset) in specs.iter().zip(offsets) {
            entries.push(match (spec.role, offset) {
                (ParamRole::Trainable, Some(offset)) => {
                    let shape = kernel_shape(spec);
                    Entry::Trainable {
                        offset,
                        value: params.view(ctx, offset, &shape, DType::F32)?,
                        grad: grads.view(ctx, offset, &shape, DType::F32)?,
                    }
                }
                (ParamRole::BatchCount, _) => Entry::Count(
                    state
                        .tensors
                        .get(&spec.name)
                        .map_or(0, |t| t.data.first().copied().unwrap_or(0.0) as i64),
                ),
                _ => Entry::Stat(ctx.upload_f32(&tensor_for(state, spec)?.data, &spec.shape)?),
            });
        }
        let by_name = specs
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), ParamId::new(i)))
            .collect();
        let mut store = Self {
            config: config.clone(),
            params,
            grads,
            decay_end,
            derived: specs.iter().map(|_| Derived::default()).collect(),
            specs,
            entries,
            by_name,
            energy: None,
            trace: None,
        };
        store.refresh_binary(ctx)?;
        // Exported bits are used as they are (binarizing the ±1 signs again would agree
        // except for a row of all -1, whose standard deviation is 0).
        for (name, p) in &state.packed {
            let Some(&id) = store.by_name.get(name) else {
                continue;
            };
            if let Some(b) = &store.derived[id.index()].binary {
                ctx.write_words(&b.bits, &p.words)?;
                ctx.write_words(&b.signs, &unpack_signs(p))?;
            }
        }
        Ok(store)
    }

    /// The id of the tensor `name` (a reference name).
    pub fn id(&self, name: &str) -> Result<ParamId> {
        self.by_name
            .get(name)
            .copied()
            .ok_or_else(|| Error::InvalidArgument(format!("the model has no tensor '{name}'")))
    }

    /// Every tensor's spec, in the order of their ids.
    pub fn specs(&self) -> &[ParamSpec] {
        &self.specs
    }

    /// The spec of `id`.
    pub fn spec(&self, id: ParamId) -> &ParamSpec {
        &self.specs[id.index()]
    }

    /// The packed sign bits of every binary weight, as computed on the GPU (for a deploy
    /// export: `StateDict::packed`).
    pub fn packed_binary(&self, ctx: &GpuContext) -> Result<Vec<(String, PackedTensor)>> {
        let mut out = Vec::new();
        for (spec, d) in self.specs.iter().zip(&self.derived) {
            if let Some(b) = &d.binary {
                out.push((
                    spec.name.clone(),
                    PackedTensor {
                        shape: spec.shape.clone(),
                        words: ctx.download_words(&b.bits)?,
                    },
                ));
            }
        }
        Ok(out)
    }

    fn trainable(&self, id: ParamId) -> Result<(&Tensor, &Tensor)> {
        match &self.entries[id.index()] {
            Entry::Trainable { value, grad, .. } => Ok((value, grad)),
            _ => Err(Error::InvalidArgument(format!(
                "'{}' is not a trainable parameter",
                self.spec(id).name
            ))),
        }
    }

    /// A parameter, in the kernels' layout.
    pub fn param(&self, id: ParamId) -> Result<&Tensor> {
        Ok(self.trainable(id)?.0)
    }

    /// The gradient of a parameter (same layout), for backward passes to accumulate into.
    pub fn grad(&self, id: ParamId) -> Result<&Tensor> {
        Ok(self.trainable(id)?.1)
    }

    /// A running statistic or buffer (`ParamRole::RunningStat`, `Buffer`), updated in
    /// place by its layer.
    pub fn stat(&self, id: ParamId) -> Result<&Tensor> {
        match &self.entries[id.index()] {
            Entry::Stat(t) => Ok(t),
            _ => Err(Error::InvalidArgument(format!(
                "'{}' is not a running statistic",
                self.spec(id).name
            ))),
        }
    }

    /// Count one training forward of the BatchNorm `bn`.
    pub fn count_batch(&mut self, bn: &BnParams) {
        if let Entry::Count(n) = &mut self.entries[bn.batches_tracked.index()] {
            *n += 1;
        }
    }

    /// Count one training forward of every BatchNorm of the model.
    pub fn count_every_batch_norm(&mut self) {
        for entry in &mut self.entries {
            if let Entry::Count(n) = entry {
                *n += 1;
            }
        }
    }

    /// The binarized form of a binary layer's weight (rebuilt by `refresh_binary`).
    pub fn binary(&self, id: ParamId) -> Option<&BinaryWeights> {
        self.derived[id.index()].binary.as_ref()
    }

    /// Q-SNN's power-of-two scale of a binary weight, when the model has one.
    pub fn binary_scale(&self, id: ParamId) -> Option<&Tensor> {
        self.derived[id.index()].binary_scale.as_ref()
    }

    /// The bit-planes of a b-bit weight (rebuilt by `refresh_binary`).
    pub fn quant(&self, id: ParamId) -> Option<&QuantWeights> {
        self.derived[id.index()].quant.as_ref()
    }

    /// Rebuild every binary layer's signs and packed bits (and Q-SNN scales) and every
    /// b-bit layer's planes from the latent weights: once after each optimizer step.
    pub fn refresh_binary(&mut self, ctx: &GpuContext) -> Result<()> {
        let qsnn = self.config.weights == WeightMode::Qsnn;
        for (i, spec) in self.specs.iter().enumerate() {
            let Entry::Trainable { value: w, .. } = &self.entries[i] else {
                continue;
            };
            let d = &mut self.derived[i];
            if spec.quant_bits > 0 {
                d.quant = Some(ops::rescaw_quantize(ctx, w, spec.quant_bits)?);
            } else if spec.binary {
                let b = ops::binarize_weights(ctx, w)?;
                if qsnn {
                    d.binary_scale = Some(ops::pow2_scale(ctx, w, &b.stats)?);
                }
                d.binary = Some(b);
            }
        }
        Ok(())
    }

    /// Overwrite every parameter and statistic from a state dict (e.g. to resume).
    pub fn load(&mut self, ctx: &GpuContext, state: &StateDict) -> Result<()> {
        for (spec, entry) in self.specs.iter().zip(&mut self.entries) {
            let t = state.tensors.get(&spec.name);
            let need = || {
                t.ok_or_else(|| {
                    Error::InvalidArgument(format!("state dict has no tensor '{}'", spec.name))
                })
            };
            match entry {
                Entry::Trainable { value, .. } => {
                    ctx.write_words(value, &kernel_values(spec, need()?)?)?
                }
                Entry::Stat(s) => ctx.write_words(s, &need()?.data)?,
                Entry::Count(n) => *n = t.and_then(|t| t.data.first()).map_or(0, |&c| c as i64),
            }
        }
        self.refresh_binary(ctx)
    }

    /// Move every parameter and running statistic the fraction `t` of the way towards
    /// `other`'s (a store of the same layout), and take its batch counts: one update of
    /// an exponential moving average of a model (timm's ModelEmaV2, decay `1 - t`). The
    /// binarized forms are left stale: call `refresh_binary` before using this store.
    pub fn blend_towards(&mut self, ctx: &GpuContext, other: &ParamStore, t: f32) -> Result<()> {
        if self.specs != other.specs || self.params.shape() != other.params.shape() {
            return Err(Error::InvalidArgument(
                "blend_towards: the two parameter stores have different layouts".into(),
            ));
        }
        ops::lerp_into(ctx, &self.params, &other.params, t)?;
        for (mine, theirs) in self.entries.iter_mut().zip(&other.entries) {
            match (mine, theirs) {
                (Entry::Stat(a), Entry::Stat(b)) => ops::lerp_into(ctx, a, b, t)?,
                (Entry::Count(a), Entry::Count(b)) => *a = *b,
                _ => {}
            }
        }
        Ok(())
    }

    /// Zero every gradient.
    pub fn zero_grads(&self, ctx: &GpuContext) {
        ctx.fill_zero(&self.grads);
    }

    /// Every running statistic and buffer, one after the other in the order of the
    /// specs (what data-parallel replicas average).
    pub fn download_stats(&self, ctx: &GpuContext) -> Result<Vec<f32>> {
        let mut out = Vec::new();
        for entry in &self.entries {
            if let Entry::Stat(t) = entry {
                out.extend(ctx.download_f32(t)?);
            }
        }
        Ok(out)
    }

    /// Overwrite the running statistics and buffers with `values`, laid out as
    /// [`ParamStore::download_stats`] returns them.
    pub fn write_stats(&self, ctx: &GpuContext, values: &[f32]) -> Result<()> {
        if values.len() != self.stats_len() {
            return Err(Error::Shape {
                op: "write_stats",
                expected: format!("{} values", self.stats_len()),
                got: format!("{}", values.len()),
            });
        }
        let mut rest = values;
        for entry in &self.entries {
            if let Entry::Stat(t) = entry {
                let (head, tail) = rest.split_at(t.len());
                ctx.write_words(t, head)?;
                rest = tail;
            }
        }
        Ok(())
    }

    fn stats_len(&self) -> usize {
        self.entries
            .iter()
            .map(|e| match e {
                Entry::Stat(t) => t.len(),
                _ => 0,
            })
            .sum()
    }

    /// Total trainable elements (without alignment padding).
    pub fn trainable_len(&self) -> usize {
        self.specs
            .iter()
            .filter(|s| s.role == ParamRole::Trainable)
            .map(ParamSpec::len)
            .sum()
    }

    /// Download everything as a state dict with the reference names and layouts, the
    /// config in the metadata.
    pub fn to_state_dict(&self, ctx: &GpuContext) -> Result<StateDict> {
        let mut sd = self.trainable_state_dict(ctx, &self.params)?;
        for (spec, entry) in self.specs.iter().zip(&self.entries) {
            let data = match entry {
                Entry::Trainable { .. } => continue,
                Entry::Stat(t) => ctx.download_f32(t)?,
                Entry::Count(n) => vec![*n as f32],
            };
            sd.tensors.insert(
                spec.name.clone(),
                HostTensor {
                    shape: spec.shape.clone(),
                    data,
                },
            );
        }
        sd.metadata.insert(
            CONFIG_KEY.into(),
            serde_json::to_string(&self.config).expect("a config always serializes"),
        );
        Ok(sd)
    }

    /// Every trainable parameter's gradient (`grads`) by the parameter's reference name,
    /// in the reference layout (conv weights `[C_out, C_in, 3, 3]`), as `to_state_dict`
    /// gives the parameters.
    pub fn grads_state_dict(&self, ctx: &GpuContext) -> Result<StateDict> {
        self.trainable_state_dict(ctx, &self.grads)
    }

    /// The trainable tensors of a flat buffer in `params`' layout, by reference name and
    /// in the reference layout.
    fn trainable_state_dict(&self, ctx: &GpuContext, flat: &Tensor) -> Result<StateDict> {
        let flat = ctx.download_f32(flat)?;
        let mut sd = StateDict::default();
        for (spec, entry) in self.specs.iter().zip(&self.entries) {
            let Entry::Trainable { offset, .. } = entry else {
                continue;
            };
            let data = &flat[*offset..*offset + spec.len()];
            let data = if is_conv3x3(spec) {
                ops::conv_weight_to_torch(data, spec.shape[0], spec.shape[1])?
            } else {
                data.to_vec()
            };
            sd.tensors.insert(
                spec.name.clone(),
                HostTensor {
                    shape: spec.shape.clone(),
                    data,
                },
            );
        }
        Ok(sd)
    }
}

/// The state dict's tensor for `spec`, which must hold exactly the values the model needs.
fn tensor_for<'a>(state: &'a StateDict, spec: &ParamSpec) -> Result<&'a HostTensor> {
    let t = state.tensors.get(&spec.name).ok_or_else(|| {
        Error::InvalidArgument(format!("state dict has no tensor '{}'", spec.name))
    })?;
    if t.data.len() != spec.len() {
        return Err(Error::InvalidArgument(format!(
            "tensor '{}' has {} values, the model needs {:?}",
            spec.name,
            t.data.len(),
            spec.shape
        )));
    }
    Ok(t)
}
