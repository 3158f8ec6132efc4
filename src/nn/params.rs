//! The parameter inventory of a model: every tensor of the reference implementation's
//! state_dict, by its reference name, with its shape and whether it is binarized, and
//! the typed layout the models run on ([`ModelParams`]: one struct per block holding a
//! [`ParamId`] per tensor). The reference names are written here and nowhere else; the
//! counts `bitspike info --model` prints and the checkpoint format both come from here.

use serde::Serialize;

use super::config::{ArchConfig, CnnConfig, ModelConfig, TransformerConfig, WeightMode};
use crate::gpu::words_per_row;
use crate::ops::attention::FormParamKind;

/// What a state_dict entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ParamRole {
    /// A learned tensor (a torch `Parameter`).
    Trainable,
    /// BatchNorm running statistics (a buffer: saved, not trained by the optimizer).
    RunningStat,
    /// BatchNorm's `num_batches_tracked`, an int64 scalar.
    BatchCount,
    /// Another running statistic kept with the model (SSA_Bin's threshold and shift):
    /// saved, updated by training forwards, never trained.
    Buffer,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
/// One state_dict tensor: its reference name, PyTorch shape, role and initialization.
pub struct ParamSpec {
    /// The reference (PyTorch) name.
    pub name: String,
    /// The PyTorch shape.
    pub shape: Vec<usize>,
    /// Trained, a running statistic, or a counter.
    pub role: ParamRole,
    /// Stored as 1-bit signs at inference (binarized conv/linear weights).
    pub binary: bool,
    /// Bits of a ReScaW-quantized weight stored as bit-planes (0: not quantized).
    pub quant_bits: u32,
    /// How `init_state` fills it.
    pub init: Init,
}

/// A fresh model's values of a tensor (timm's and PyTorch's defaults).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum Init {
    /// Every element this value (BN weight 1, biases 0, running var 1, lambda 1, ...).
    Constant(f32),
    /// normal(0, 0.02): linear layers and heads (timm's trunc_normal_, whose truncation
    /// at +-2 a 0.02-wide normal never reaches).
    Normal002,
    /// PyTorch's conv default, uniform(+-1 / sqrt(fan_in)).
    FanInUniform,
}

impl ParamSpec {
    /// Elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether it has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One state_dict entry of a model: its index in the model's [`ParamLayout::specs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParamId(usize);

impl ParamId {
    pub(crate) fn new(index: usize) -> Self {
        Self(index)
    }

    /// The position in the specs.
    pub fn index(self) -> usize {
        self.0
    }
}

/// A conv or linear layer's weight and optional bias.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeightParams {
    /// The weight.
    pub weight: ParamId,
    /// The bias, if any.
    pub bias: Option<ParamId>,
}

/// A BatchNorm's affine parameters and running statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BnParams {
    /// Scale gamma.
    pub weight: ParamId,
    /// Shift beta.
    pub bias: ParamId,
    /// Running mean.
    pub running_mean: ParamId,
    /// Running variance.
    pub running_var: ParamId,
    /// Batches seen (PyTorch's num_batches_tracked).
    pub batches_tracked: ParamId,
}

/// A weight layer followed by its BatchNorm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnitParams {
    /// The weight.
    pub weight: WeightParams,
    /// The BatchNorm after it.
    pub bn: BnParams,
}

/// The tensors an attention form adds to a block (see `ops::attention::form`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FormParams {
    /// Learned (BESTformer's lambda), in the form's order.
    pub learned: Vec<ParamId>,
    /// Running statistics (SSA_Bin's threshold and shift), in the form's order.
    pub stats: Vec<ParamId>,
}

/// A block's attention: the q, k, v branches, the form's own tensors and proj.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttnParams {
    /// The module's reference name (`block.{i}.attn`), which the energy report's
    /// entries for the attention products extend.
    pub name: String,
    /// The query layer.
    pub q: UnitParams,
    /// The key layer.
    pub k: UnitParams,
    /// The value layer.
    pub v: UnitParams,
    /// The form's own tensors.
    pub form: FormParams,
    /// The output projection.
    pub proj: UnitParams,
}

/// A block's MLP (Spikformer's fc1/fc2, BESTformer's mlp1/mlp2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MlpParams {
    /// The first MLP layer (D -> hidden).
    pub fc1: UnitParams,
    /// The second MLP layer (hidden -> D).
    pub fc2: UnitParams,
}

#[derive(Debug, Clone, PartialEq, Eq)]
/// One transformer block's tensors.
pub struct BlockParams {
    /// The attention.
    pub attn: AttnParams,
    /// The MLP.
    pub mlp: MlpParams,
}

/// Spikformer: the SPS stages, rpe, the blocks and the head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpikformerParams {
    /// The tokenizer's four conv stages.
    pub stages: Vec<UnitParams>,
    /// The relative position embedding.
    pub rpe: UnitParams,
    /// The blocks.
    pub blocks: Vec<BlockParams>,
    /// The classifier.
    pub head: WeightParams,
}

/// BESTformer: the BSPS blocks (block0 float), the blocks and both heads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BestformerParams {
    /// The tokenizer's five conv stages.
    pub tokenizer: Vec<UnitParams>,
    /// The blocks.
    pub blocks: Vec<BlockParams>,
    /// The two classifiers (head, head2).
    pub heads: [WeightParams; 2],
}

/// One conv of a spiking CNN, in forward order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvLayer {
    /// The conv and its BatchNorm.
    pub unit: UnitParams,
    /// Input channels.
    pub c_in: usize,
    /// Output channels.
    pub c_out: usize,
    /// Max-pool after its neuron (a ResNet conv2: after the block's output neuron).
    pub pool: bool,
    /// Its output channels can be pruned (they feed only the next conv or the head).
    pub prunable: bool,
}

/// A spiking CNN: its convs in forward order (a ResNet's: the stem, then conv1, conv2
/// per block), each ResNet block's 1x1 shortcut where the width changes, the head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CnnParams {
    /// The convs, in order.
    pub convs: Vec<ConvLayer>,
    /// One per ResNet block (empty for a VGG).
    pub shortcuts: Vec<Option<UnitParams>>,
    /// The classifier.
    pub head: WeightParams,
}

/// The typed parameters of any model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelParams {
    /// A Spikformer's tensors.
    Spikformer(SpikformerParams),
    /// A BESTformer's tensors.
    Bestformer(BestformerParams),
    /// A spiking CNN's tensors.
    Cnn(CnnParams),
}

/// Every state_dict entry of a model, in the reference implementation's order, and the
/// typed handles into them.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamLayout {
    /// Every tensor's spec, in state_dict order.
    pub specs: Vec<ParamSpec>,
    /// The typed handles the model uses.
    pub model: ModelParams,
}

impl ParamLayout {
    /// The spec of `id`.
    pub fn spec(&self, id: ParamId) -> &ParamSpec {
        &self.specs[id.0]
    }

    /// The reference name of `id`.
    pub fn name(&self, id: ParamId) -> &str {
        &self.specs[id.0].name
    }

    /// The Spikformer layout, if it is one.
    pub fn spikformer(&self) -> Option<&SpikformerParams> {
        match &self.model {
            ModelParams::Spikformer(p) => Some(p),
            _ => None,
        }
    }

    /// The BESTformer layout, if it is one.
    pub fn bestformer(&self) -> Option<&BestformerParams> {
        match &self.model {
            ModelParams::Bestformer(p) => Some(p),
            _ => None,
        }
    }

    /// The CNN layout, if it is one.
    pub fn cnn(&self) -> Option<&CnnParams> {
        match &self.model {
            ModelParams::Cnn(p) => Some(p),
            _ => None,
        }
    }
}

/// Builds the spec list and hands out the ids.
struct Inventory {
    specs: Vec<ParamSpec>,
    mode: WeightMode,
    bits: u32,
    /// Whether b-bit mode quantizes the first conv and the head too (the CNNs do).
    quantize_ends: bool,
}

/// Q-SNN's first conv and last FC: 8 bits.
pub const QSNN_END_BITS: u32 = 8;

impl Inventory {
    fn push(&mut self, name: String, shape: Vec<usize>, role: ParamRole, init: Init) -> ParamId {
        self.specs.push(ParamSpec {
            name,
            shape,
            role,
            binary: false,
            quant_bits: 0,
            init,
        });
        ParamId(self.specs.len() - 1)
    }

    /// A conv/linear weight `{prefix}.weight` (and `{prefix}.bias` when `bias`):
    /// `binarizable` layers (all but the first conv and the heads) are binary in binary
    /// weight mode; the weight mode says how the others are stored. `normal`: linear
    /// layers' init, else a conv's.
    fn weight(
        &mut self,
        prefix: &str,
        shape: Vec<usize>,
        binarizable: bool,
        bias: bool,
        normal: bool,
    ) -> WeightParams {
        let (binary, quant_bits) = match self.mode {
            WeightMode::Float => (false, 0),
            WeightMode::Binary => (binarizable, 0),
            WeightMode::Quantized if binarizable || self.quantize_ends => (false, self.bits),
            WeightMode::Quantized => (false, 0),
            WeightMode::Qsnn if binarizable => (true, 0),
            WeightMode::Qsnn => (false, QSNN_END_BITS),
        };
        let out = shape[0];
        let init = if normal {
            Init::Normal002
        } else {
            Init::FanInUniform
        };
        let weight = self.push(
            format!("{prefix}.weight"),
            shape,
            ParamRole::Trainable,
            init,
        );
        let spec = &mut self.specs[weight.0];
        spec.binary = binary;
        spec.quant_bits = quant_bits;
        let bias = bias.then(|| {
            self.push(
                format!("{prefix}.bias"),
                vec![out],
                ParamRole::Trainable,
                Init::Constant(0.0),
            )
        });
        WeightParams { weight, bias }
    }

    /// A 3x3 conv `{prefix}.weight` `[c_out, c_in, 3, 3]`, no bias.
    fn conv3x3(
        &mut self,
        prefix: &str,
        c_in: usize,
        c_out: usize,
        binarizable: bool,
    ) -> WeightParams {
        self.weight(prefix, vec![c_out, c_in, 3, 3], binarizable, false, false)
    }

    /// BatchNorm `prefix.{weight,bias,running_mean,running_var,num_batches_tracked}`.
    fn batch_norm(&mut self, prefix: &str, c: usize) -> BnParams {
        let trainable = ParamRole::Trainable;
        BnParams {
            weight: self.push(
                format!("{prefix}.weight"),
                vec![c],
                trainable,
                Init::Constant(1.0),
            ),
            bias: self.push(
                format!("{prefix}.bias"),
                vec![c],
                trainable,
                Init::Constant(0.0),
            ),
            running_mean: self.push(
                format!("{prefix}.running_mean"),
                vec![c],
                ParamRole::RunningStat,
                Init::Constant(0.0),
            ),
            running_var: self.push(
                format!("{prefix}.running_var"),
                vec![c],
                ParamRole::RunningStat,
                Init::Constant(1.0),
            ),
            batches_tracked: self.push(
                format!("{prefix}.num_batches_tracked"),
                vec![],
                ParamRole::BatchCount,
                Init::Constant(0.0),
            ),
        }
    }

    /// What the attention form adds to the block attention `prefix` (both families):
    /// the tensors the form's op declares.
    fn attention_form(
        &mut self,
        prefix: &str,
        t: &TransformerConfig,
        time_steps: usize,
    ) -> FormParams {
        let mut form = FormParams::default();
        for p in t.attention.op(&t.form_setup(time_steps)).params() {
            let name = format!("{prefix}.{}", p.name);
            match p.kind {
                FormParamKind::Learned => form.learned.push(self.push(
                    name,
                    p.shape,
                    ParamRole::Trainable,
                    Init::Constant(p.init),
                )),
                FormParamKind::RunningStat => form.stats.push(self.push(
                    name,
                    p.shape,
                    ParamRole::Buffer,
                    Init::Constant(p.init),
                )),
            }
        }
        form
    }
}

/// Every state_dict entry of the model, in the reference implementation's order.
pub fn param_specs(cfg: &ModelConfig) -> Vec<ParamSpec> {
    param_layout(cfg).specs
}

/// The specs and the typed handles of `cfg`'s model.
pub fn param_layout(cfg: &ModelConfig) -> ParamLayout {
    let mut inv = Inventory {
        specs: Vec::new(),
        mode: cfg.weights,
        bits: cfg.weight_bits,
        quantize_ends: cfg.is_cnn(),
    };
    let model = match &cfg.arch {
        ArchConfig::Spikformer(t) => ModelParams::Spikformer(spikformer(&mut inv, cfg, t)),
        ArchConfig::Bestformer(t) => ModelParams::Bestformer(bestformer(&mut inv, cfg, t)),
        ArchConfig::SpikingVgg(c) => ModelParams::Cnn(vgg(&mut inv, cfg, c)),
        ArchConfig::SpikingResnet(c) => ModelParams::Cnn(resnet(&mut inv, cfg, c)),
    };
    ParamLayout {
        specs: inv.specs,
        model,
    }
}

fn spikformer(inv: &mut Inventory, cfg: &ModelConfig, t: &TransformerConfig) -> SpikformerParams {
    let w = t.tokenizer_widths(cfg.in_channels);
    let d = t.dim;
    // SPS: proj_conv{,1,2,3} + proj_bn{,1,2,3}, then rpe_conv + rpe_bn.
    let stages = ["", "1", "2", "3"]
        .iter()
        .enumerate()
        .map(|(i, suffix)| UnitParams {
            weight: inv.conv3x3(
                &format!("patch_embed.proj_conv{suffix}"),
                w[i],
                w[i + 1],
                i > 0,
            ),
            bn: inv.batch_norm(&format!("patch_embed.proj_bn{suffix}"), w[i + 1]),
        })
        .collect();
    let rpe = UnitParams {
        weight: inv.conv3x3("patch_embed.rpe_conv", d, d, true),
        bn: inv.batch_norm("patch_embed.rpe_bn", d),
    };
    // Linear layers with bias: `{name}_linear`, `[out, in]`.
    let linear_bn = |inv: &mut Inventory, prefix: &str, name: &str, shape: Vec<usize>| {
        let o = shape[0];
        UnitParams {
            weight: inv.weight(&format!("{prefix}.{name}_linear"), shape, true, true, true),
            bn: inv.batch_norm(&format!("{prefix}.{name}_bn"), o),
        }
    };
    let blocks = transformer_blocks(inv, cfg, t, &linear_bn, ["fc1", "fc2"], [&[], &[]]);
    let head = inv.weight("head", vec![cfg.classes, d], false, true, true);
    SpikformerParams {
        stages,
        rpe,
        blocks,
        head,
    }
}

/// Makes one weight -> BN unit: `(inventory, module prefix, layer name, weight shape)`.
type UnitBuilder = dyn Fn(&mut Inventory, &str, &str, Vec<usize>) -> UnitParams;

/// A transformer's blocks: q, k, v, proj, the form's tensors, then the MLP's two layers
/// (named `mlp_names`), each made by `unit(inv, prefix, name, shape)` from its
/// `[out, in]` followed by the family's trailing kernel dims (attention's, MLP's).
fn transformer_blocks(
    inv: &mut Inventory,
    cfg: &ModelConfig,
    t: &TransformerConfig,
    unit: &UnitBuilder,
    mlp_names: [&str; 2],
    [attn_dims, mlp_dims]: [&[usize]; 2],
) -> Vec<BlockParams> {
    let (d, h) = (t.dim, t.hidden());
    let shape = |o: usize, i: usize, dims: &[usize]| [&[o, i][..], dims].concat();
    (0..t.depth)
        .map(|b| {
            let p = format!("block.{b}.attn");
            let attn =
                |inv: &mut Inventory, name: &str| unit(inv, &p, name, shape(d, d, attn_dims));
            let (q, k, v) = (attn(inv, "q"), attn(inv, "k"), attn(inv, "v"));
            let proj = attn(inv, "proj");
            let form = inv.attention_form(&p, t, cfg.time_steps);
            let m = format!("block.{b}.mlp");
            let fc1 = unit(inv, &m, mlp_names[0], shape(h, d, mlp_dims));
            let fc2 = unit(inv, &m, mlp_names[1], shape(d, h, mlp_dims));
            BlockParams {
                attn: AttnParams {
                    name: p,
                    q,
                    k,
                    v,
                    form,
                    proj,
                },
                mlp: MlpParams { fc1, fc2 },
            }
        })
        .collect()
}

fn bestformer(inv: &mut Inventory, cfg: &ModelConfig, t: &TransformerConfig) -> BestformerParams {
    let w = t.tokenizer_widths(cfg.in_channels);
    let d = t.dim;
    // BSPS: a float block0 conv, then four (binary) block{1..4} convs.
    let widths = [w[0], w[1], w[2], w[3], w[4], w[4]];
    let tokenizer = (0..5)
        .map(|i| UnitParams {
            weight: inv.conv3x3(
                &format!("patch_embed.block{i}_conv"),
                widths[i],
                widths[i + 1],
                i > 0,
            ),
            bn: inv.batch_norm(&format!("patch_embed.block{i}_bn"), widths[i + 1]),
        })
        .collect();
    // Conv1d (q/k/v/proj: [out, in, 1]) and Conv2d 1x1 (mlp: [out, in, 1, 1]) weights.
    let conv_bn = |inv: &mut Inventory, prefix: &str, name: &str, shape: Vec<usize>| {
        let o = shape[0];
        UnitParams {
            weight: inv.weight(&format!("{prefix}.{name}_conv"), shape, true, false, false),
            bn: inv.batch_norm(&format!("{prefix}.{name}_bn"), o),
        }
    };
    let blocks = transformer_blocks(inv, cfg, t, &conv_bn, ["mlp1", "mlp2"], [&[1], &[1, 1]]);
    let heads =
        ["head", "head2"].map(|name| inv.weight(name, vec![cfg.classes, d], false, true, true));
    BestformerParams {
        tokenizer,
        blocks,
        heads,
    }
}

fn cnn_head(inv: &mut Inventory, cfg: &ModelConfig, c: &CnnConfig) -> WeightParams {
    inv.weight("head", vec![cfg.classes, c.last_width()], false, true, true)
}

fn vgg(inv: &mut Inventory, cfg: &ModelConfig, c: &CnnConfig) -> CnnParams {
    let convs = (0..c.channels.len())
        .map(|i| {
            let c_in = if i == 0 {
                cfg.in_channels
            } else {
                c.channels[i - 1]
            };
            let c_out = c.channels[i];
            ConvLayer {
                unit: UnitParams {
                    weight: inv.conv3x3(&format!("features.{i}.conv"), c_in, c_out, i > 0),
                    bn: inv.batch_norm(&format!("features.{i}.bn"), c_out),
                },
                c_in,
                c_out,
                pool: c.pool_after.contains(&i),
                prunable: true,
            }
        })
        .collect();
    CnnParams {
        convs,
        shortcuts: Vec::new(),
        head: cnn_head(inv, cfg, c),
    }
}

fn resnet(inv: &mut Inventory, cfg: &ModelConfig, c: &CnnConfig) -> CnnParams {
    let ch = &c.channels;
    let pool = |i: usize| c.pool_after.contains(&i);
    let mut convs = vec![ConvLayer {
        unit: UnitParams {
            weight: inv.conv3x3("stem.conv", cfg.in_channels, ch[0], false),
            bn: inv.batch_norm("stem.bn", ch[0]),
        },
        c_in: cfg.in_channels,
        c_out: ch[0],
        pool: pool(0),
        prunable: false,
    }];
    let mut shortcuts = Vec::new();
    for j in 0..(ch.len() - 1) / 2 {
        let (i1, i2) = (1 + 2 * j, 2 + 2 * j);
        let c_in = ch[i1 - 1];
        convs.push(ConvLayer {
            unit: UnitParams {
                weight: inv.conv3x3(&format!("blocks.{j}.conv1"), c_in, ch[i1], true),
                bn: inv.batch_norm(&format!("blocks.{j}.bn1"), ch[i1]),
            },
            c_in,
            c_out: ch[i1],
            pool: false,
            prunable: true,
        });
        convs.push(ConvLayer {
            unit: UnitParams {
                weight: inv.conv3x3(&format!("blocks.{j}.conv2"), ch[i1], ch[i2], true),
                bn: inv.batch_norm(&format!("blocks.{j}.bn2"), ch[i2]),
            },
            c_in: ch[i1],
            c_out: ch[i2],
            pool: pool(i2),
            prunable: false,
        });
        shortcuts.push((c_in != ch[i2]).then(|| UnitParams {
            weight: inv.weight(
                &format!("blocks.{j}.shortcut"),
                vec![ch[i2], c_in, 1, 1],
                true,
                false,
                false,
            ),
            bn: inv.batch_norm(&format!("blocks.{j}.shortcut_bn"), ch[i2]),
        }));
    }
    CnnParams {
        convs,
        shortcuts,
        head: cnn_head(inv, cfg, c),
    }
}

/// Parameter counts (trainable tensors only, as `sum(p.numel() for p in
/// model.parameters())` counts them) and storage sizes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParamCounts {
    /// Parameters in all.
    pub total: usize,
    /// Parameters stored as 1-bit (or b-bit) weights.
    pub binary: usize,
    /// Parameters kept in float.
    pub float: usize,
    /// Bytes of all state (parameters and BN statistics) as f32.
    pub fp32_bytes: usize,
    /// Bytes with binary weights as packed bits (rows padded to 128 bits), b-bit weights
    /// as b such bit-planes plus a scale per row, and the rest (float parameters and BN
    /// statistics) as f32.
    pub packed_bytes: usize,
}

/// The parameter counts and sizes of `cfg`.
pub fn param_counts(cfg: &ModelConfig) -> ParamCounts {
    let specs = param_specs(cfg);
    let trainable = specs.iter().filter(|s| s.role == ParamRole::Trainable);
    let total: usize = trainable.clone().map(ParamSpec::len).sum();
    let binary: usize = trainable.filter(|s| s.binary).map(ParamSpec::len).sum();
    let stored = specs.iter().filter(|s| s.role != ParamRole::BatchCount);
    let fp32_bytes = 4 * stored.clone().map(ParamSpec::len).sum::<usize>();
    let packed_bytes = stored
        .map(|s| {
            let k = s.len() / s.shape.first().copied().unwrap_or(1).max(1);
            if s.binary {
                4 * s.shape[0] * words_per_row(k)
            } else if s.quant_bits > 0 {
                // The bit-planes plus one f32 gamma per output channel.
                4 * s.shape[0] * (s.quant_bits as usize * words_per_row(k) + 1)
            } else {
                4 * s.len()
            }
        })
        .sum();
    ParamCounts {
        total,
        binary,
        float: total - binary,
        fp32_bytes,
        packed_bytes,
    }
}
