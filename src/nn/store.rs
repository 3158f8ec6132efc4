//! A model's parameters on the GPU: one flat f32 buffer for every trainable tensor (so
//! one AdamW dispatch updates them all), a twin buffer for their gradients, BatchNorm
//! running statistics, and the binarized weights of binary layers, rebuilt once after
//! each optimizer step rather than per forward.
//!
//! Tensors are kept in the layout the kernels use: 3x3 conv weights `[C_out, 9 C_in]`
//! (PyTorch's `[C_out, C_in, 3, 3]` permuted, see `ops::conv`), 1x1 convs and Conv1d as
//! `[out, in]`; checkpoints convert to and from the reference layout.

use std::collections::HashMap;

use super::checkpoint::{HostTensor, PackedTensor, StateDict, CONFIG_KEY};
use super::config::{ModelConfig, WeightMode};
use super::params::{param_specs, ParamRole, ParamSpec};
use crate::error::{Error, Result};
use crate::gpu::{DType, GpuContext, Tensor};
use crate::ops::{self, BinaryWeights, QuantWeights};

/// Where one trainable tensor lives in the flat buffers.
#[derive(Debug, Clone)]
struct Slot {
    offset: usize,
    /// The kernels' shape.
    shape: Vec<usize>,
    spec: ParamSpec,
}

pub struct ParamStore {
    pub config: ModelConfig,
    /// Every trainable parameter, decayed ones first.
    pub params: Tensor,
    /// Their gradients, same layout (accumulated by backward passes, zeroed per step).
    pub grads: Tensor,
    /// Elements `[0, decay_end)` of `params` get weight decay (timm's rule: not biases,
    /// not 1-D tensors).
    pub decay_end: usize,
    slots: HashMap<String, Slot>,
    /// Running mean/var by BN prefix (`block.0.attn.q_bn`).
    running: HashMap<String, (Tensor, Tensor)>,
    /// `num_batches_tracked` by BN prefix, counted on the host.
    batches_tracked: HashMap<String, i64>,
    /// Other running statistics (SSA_Bin's threshold and shift) by name, updated in place
    /// by training forwards.
    buffers: HashMap<String, Tensor>,
    binary: HashMap<String, BinaryWeights>,
    /// Q-SNN's power-of-two scale `[C_out]` of each binary weight (Q-SNN weight mode only).
    binary_scale: HashMap<String, Tensor>,
    /// The bit-planes of each b-bit weight, rebuilt with the binary ones.
    quant: HashMap<String, QuantWeights>,
    /// When set, every conv/linear layer records its input for the energy report.
    pub energy: Option<super::energy::EnergyLog>,
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

fn decays(spec: &ParamSpec) -> bool {
    spec.shape.len() > 1 && !spec.name.ends_with(".bias")
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
        let mut trainable: Vec<&ParamSpec> = specs
            .iter()
            .filter(|s| s.role == ParamRole::Trainable)
            .collect();
        trainable.sort_by_key(|s| !decays(s)); // stable: decayed first, reference order kept
        let mut slots = HashMap::new();
        let mut offset = 0;
        let mut decay_end = 0;
        let mut host = Vec::new();
        for spec in trainable {
            let data = if let Some(p) = state.packed.get(&spec.name) {
                // A deploy export: the signs are the weights (already in kernel layout).
                unpack_signs(p)
            } else {
                let t = tensor_for(state, spec)?;
                if is_conv3x3(spec) {
                    ops::conv_weight_from_torch(&t.data, spec.shape[0], spec.shape[1])?
                } else {
                    t.data.clone()
                }
            };
            host.resize(offset, 0.0);
            host.extend_from_slice(&data);
            if decays(spec) {
                decay_end = offset + data.len();
            }
            slots.insert(
                spec.name.clone(),
                Slot {
                    offset,
                    shape: kernel_shape(spec),
                    spec: spec.clone(),
                },
            );
            offset = (offset + data.len()).next_multiple_of(align);
        }
        host.resize(offset.max(1), 0.0);
        let params = ctx.upload_f32(&host, &[host.len()])?;
        let grads = ctx.zeros(&[host.len()], DType::F32)?;
        let mut running = HashMap::new();
        let mut batches_tracked = HashMap::new();
        for spec in specs.iter().filter(|s| s.name.ends_with(".running_mean")) {
            let prefix = spec.name.trim_end_matches(".running_mean").to_string();
            let get = |suffix: &str| {
                let name = format!("{prefix}.{suffix}");
                state
                    .tensors
                    .get(&name)
                    .map(|t| t.data.clone())
                    .ok_or_else(|| {
                        Error::InvalidArgument(format!("state dict has no tensor '{name}'"))
                    })
            };
            let mean = ctx.upload_f32(&get("running_mean")?, &spec.shape)?;
            let var = ctx.upload_f32(&get("running_var")?, &spec.shape)?;
            let count = get("num_batches_tracked").map_or(0, |v| v[0] as i64);
            running.insert(prefix.clone(), (mean, var));
            batches_tracked.insert(prefix, count);
        }
        let mut buffers = HashMap::new();
        for spec in specs.iter().filter(|s| s.role == ParamRole::Buffer) {
            let t = tensor_for(state, spec)?;
            buffers.insert(spec.name.clone(), ctx.upload_f32(&t.data, &spec.shape)?);
        }
        let mut store = Self {
            config: config.clone(),
            params,
            grads,
            decay_end,
            slots,
            running,
            batches_tracked,
            buffers,
            binary: HashMap::new(),
            binary_scale: HashMap::new(),
            quant: HashMap::new(),
            energy: None,
        };
        store.refresh_binary(ctx)?;
        // Exported bits are used as they are (binarizing the ±1 signs again would agree
        // except for a row of all -1, whose standard deviation is 0).
        for (name, p) in &state.packed {
            if let Some(b) = store.binary.get_mut(name) {
                ctx.write_words(&b.bits, &p.words)?;
                ctx.write_words(&b.signs, &unpack_signs(p))?;
            }
        }
        Ok(store)
    }

    /// The packed sign bits of every binary weight, as computed on the GPU (for a deploy
    /// export: `StateDict::packed`).
    pub fn packed_binary(&self, ctx: &GpuContext) -> Result<Vec<(String, PackedTensor)>> {
        let mut out = Vec::new();
        for s in self.slots.values().filter(|s| s.spec.binary) {
            let words: Vec<u32> = ctx.download_words(&self.binary(&s.spec.name)?.bits)?;
            out.push((
                s.spec.name.clone(),
                PackedTensor {
                    shape: s.spec.shape.clone(),
                    words,
                },
            ));
        }
        Ok(out)
    }

    fn slot(&self, name: &str) -> Result<&Slot> {
        self.slots
            .get(name)
            .ok_or_else(|| Error::InvalidArgument(format!("the model has no parameter '{name}'")))
    }

    /// A parameter, in the kernels' layout.
    pub fn param(&self, ctx: &GpuContext, name: &str) -> Result<Tensor> {
        let s = self.slot(name)?;
        self.params.view(ctx, s.offset, &s.shape, DType::F32)
    }

    /// The gradient of a parameter (same layout), for backward passes to accumulate into.
    pub fn grad(&self, ctx: &GpuContext, name: &str) -> Result<Tensor> {
        let s = self.slot(name)?;
        self.grads.view(ctx, s.offset, &s.shape, DType::F32)
    }

    /// Running mean and var of the BatchNorm `prefix`.
    pub fn running(&self, prefix: &str) -> Result<&(Tensor, Tensor)> {
        self.running
            .get(prefix)
            .ok_or_else(|| Error::InvalidArgument(format!("the model has no BatchNorm '{prefix}'")))
    }

    /// A running-statistics buffer (`ParamRole::Buffer`), updated in place by its layer.
    pub fn buffer(&self, name: &str) -> Result<&Tensor> {
        self.buffers
            .get(name)
            .ok_or_else(|| Error::InvalidArgument(format!("the model has no buffer '{name}'")))
    }

    /// Count one training forward of the BatchNorm `prefix`.
    pub fn count_batch(&mut self, prefix: &str) {
        *self.batches_tracked.entry(prefix.to_string()).or_default() += 1;
    }

    /// The binarized form of a binary layer's weight (rebuilt by `refresh_binary`).
    pub fn binary(&self, name: &str) -> Result<&BinaryWeights> {
        self.binary
            .get(name)
            .ok_or_else(|| Error::InvalidArgument(format!("'{name}' is not a binary weight")))
    }

    /// Q-SNN's power-of-two scale of a binary weight, when the model has one.
    pub fn binary_scale(&self, name: &str) -> Option<&Tensor> {
        self.binary_scale.get(name)
    }

    /// The bit-planes of a b-bit weight (rebuilt by `refresh_binary`).
    pub fn quant(&self, name: &str) -> Option<&QuantWeights> {
        self.quant.get(name)
    }

    /// Rebuild every binary layer's signs and packed bits (and Q-SNN scales) and every
    /// b-bit layer's planes from the latent weights: once after each optimizer step.
    pub fn refresh_binary(&mut self, ctx: &GpuContext) -> Result<()> {
        let specs: Vec<ParamSpec> = self
            .slots
            .values()
            .filter(|s| s.spec.binary || s.spec.quant_bits > 0)
            .map(|s| s.spec.clone())
            .collect();
        for spec in specs {
            let w = self.param(ctx, &spec.name)?;
            if spec.quant_bits > 0 {
                let q = ops::rescaw_quantize(ctx, &w, spec.quant_bits)?;
                self.quant.insert(spec.name, q);
                continue;
            }
            let b = ops::binarize_weights(ctx, &w)?;
            if self.config.weights == WeightMode::Qsnn {
                let scale = ops::pow2_scale(ctx, &w, &b.stats)?;
                self.binary_scale.insert(spec.name.clone(), scale);
            }
            self.binary.insert(spec.name, b);
        }
        Ok(())
    }

    /// Overwrite every parameter and statistic from a state dict (e.g. to resume).
    pub fn load(&mut self, ctx: &GpuContext, state: &StateDict) -> Result<()> {
        let get = |name: &str| {
            state
                .tensors
                .get(name)
                .ok_or_else(|| Error::InvalidArgument(format!("state dict has no tensor '{name}'")))
        };
        for s in self.slots.values() {
            let t = get(&s.spec.name)?;
            let data = if is_conv3x3(&s.spec) {
                ops::conv_weight_from_torch(&t.data, s.spec.shape[0], s.spec.shape[1])?
            } else {
                t.data.clone()
            };
            let view = self.params.view(ctx, s.offset, &s.shape, DType::F32)?;
            ctx.write_words(&view, &data)?;
        }
        for (prefix, (mean, var)) in &self.running {
            ctx.write_words(mean, &get(&format!("{prefix}.running_mean"))?.data)?;
            ctx.write_words(var, &get(&format!("{prefix}.running_var"))?.data)?;
            let count =
                get(&format!("{prefix}.num_batches_tracked")).map_or(0, |t| t.data[0] as i64);
            self.batches_tracked.insert(prefix.clone(), count);
        }
        for (name, t) in &self.buffers {
            ctx.write_words(t, &get(name)?.data)?;
        }
        self.refresh_binary(ctx)
    }

    pub fn zero_grads(&self, ctx: &GpuContext) {
        ctx.fill_zero(&self.grads);
    }

    /// Total trainable elements (without alignment padding).
    pub fn trainable_len(&self) -> usize {
        self.slots.values().map(|s| s.spec.len()).sum()
    }

    /// Download everything as a state dict with the reference names and layouts, the
    /// config in the metadata.
    pub fn to_state_dict(&self, ctx: &GpuContext) -> Result<StateDict> {
        let mut sd = self.trainable_state_dict(ctx, &self.params)?;
        for (prefix, (mean, var)) in &self.running {
            let c = mean.len();
            for (suffix, t) in [("running_mean", mean), ("running_var", var)] {
                sd.tensors.insert(
                    format!("{prefix}.{suffix}"),
                    HostTensor {
                        shape: vec![c],
                        data: ctx.download_f32(t)?,
                    },
                );
            }
            sd.tensors.insert(
                format!("{prefix}.num_batches_tracked"),
                HostTensor {
                    shape: vec![],
                    data: vec![self.batches_tracked.get(prefix).copied().unwrap_or(0) as f32],
                },
            );
        }
        for (name, t) in &self.buffers {
            sd.tensors.insert(
                name.clone(),
                HostTensor {
                    shape: t.shape().to_vec(),
                    data: ctx.download_f32(t)?,
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
        for s in self.slots.values() {
            let data = &flat[s.offset..s.offset + s.spec.len()];
            let data = if is_conv3x3(&s.spec) {
                ops::conv_weight_to_torch(data, s.spec.shape[0], s.spec.shape[1])?
            } else {
                data.to_vec()
            };
            sd.tensors.insert(
                s.spec.name.clone(),
                HostTensor {
                    shape: s.spec.shape.clone(),
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
