//! The parameter inventory of a model: every tensor of the reference implementation's
//! state_dict, by its reference name, with its shape and whether it is binarized. The
//! counts `bitspike info --model` prints and the checkpoint format both come from here.

use serde::Serialize;

use super::config::{Arch, AttentionForm, ModelConfig, WeightMode};
use crate::gpu::words_per_row;

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

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParamSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub role: ParamRole,
    /// Stored as 1-bit signs at inference (binarized conv/linear weights).
    pub binary: bool,
    /// Bits of a ReScaW-quantized weight stored as bit-planes (0: not quantized).
    pub quant_bits: u32,
}

impl ParamSpec {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// SSA_Bin's running threshold Delta per head, `block.{i}.attn.<this>` (the published
/// models give no name: ours).
pub const SSA_BIN_DELTA: &str = "attn_delta";
/// SSA_Bin's running attention shift (the mean of `B V`) per head and feature.
pub const SSA_BIN_SHIFT: &str = "attn_shift";

pub(crate) struct Inventory {
    specs: Vec<ParamSpec>,
    mode: WeightMode,
    bits: u32,
    /// Whether b-bit mode quantizes the first conv and the head too (the CNNs do).
    quantize_ends: bool,
}

/// Q-SNN's first conv and last FC: 8 bits.
pub const QSNN_END_BITS: u32 = 8;

impl Inventory {
    fn push(&mut self, name: String, shape: Vec<usize>, role: ParamRole, binary: bool) {
        self.specs.push(ParamSpec {
            name,
            shape,
            role,
            binary,
            quant_bits: 0,
        });
    }

    /// A conv/linear weight: `binarizable` layers (all but the first conv and the heads)
    /// are binary in binary weight mode; the weight mode says how the others are stored.
    pub(crate) fn weight(&mut self, name: String, shape: Vec<usize>, binarizable: bool) {
        let (binary, quant_bits) = match self.mode {
            WeightMode::Float => (false, 0),
            WeightMode::Binary => (binarizable, 0),
            WeightMode::Quantized if binarizable || self.quantize_ends => (false, self.bits),
            WeightMode::Quantized => (false, 0),
            WeightMode::Qsnn if binarizable => (true, 0),
            WeightMode::Qsnn => (false, QSNN_END_BITS),
        };
        self.push(name, shape, ParamRole::Trainable, binary);
        self.specs.last_mut().expect("just pushed").quant_bits = quant_bits;
    }

    pub(crate) fn bias(&mut self, name: String, n: usize) {
        self.push(name, vec![n], ParamRole::Trainable, false);
    }

    /// What the attention form adds to block `b`'s attention (both families):
    /// BESTformer's learnable `lambda_attn [T, 1, heads, 1, 1]` for the binary map,
    /// SSA_Bin's running threshold `[heads]` and shift `[heads, d]`.
    fn attention_form(&mut self, cfg: &ModelConfig, b: usize) {
        let p = format!("block.{b}.attn");
        match cfg.attention {
            AttentionForm::Binary => self.push(
                format!("{p}.lambda_attn"),
                vec![cfg.time_steps, 1, cfg.heads, 1, 1],
                ParamRole::Trainable,
                false,
            ),
            AttentionForm::SsaBin => {
                self.push(
                    format!("{p}.{SSA_BIN_DELTA}"),
                    vec![cfg.heads],
                    ParamRole::Buffer,
                    false,
                );
                self.push(
                    format!("{p}.{SSA_BIN_SHIFT}"),
                    vec![cfg.heads, cfg.head_dim()],
                    ParamRole::Buffer,
                    false,
                );
            }
            AttentionForm::Ssa | AttentionForm::A2os2a => {}
        }
    }

    /// BatchNorm `prefix.{weight,bias,running_mean,running_var,num_batches_tracked}`.
    pub(crate) fn batch_norm(&mut self, prefix: &str, c: usize) {
        self.push(
            format!("{prefix}.weight"),
            vec![c],
            ParamRole::Trainable,
            false,
        );
        self.push(
            format!("{prefix}.bias"),
            vec![c],
            ParamRole::Trainable,
            false,
        );
        self.push(
            format!("{prefix}.running_mean"),
            vec![c],
            ParamRole::RunningStat,
            false,
        );
        self.push(
            format!("{prefix}.running_var"),
            vec![c],
            ParamRole::RunningStat,
            false,
        );
        self.push(
            format!("{prefix}.num_batches_tracked"),
            vec![],
            ParamRole::BatchCount,
            false,
        );
    }
}

/// Every state_dict entry of the model, in the reference implementation's order.
pub fn param_specs(cfg: &ModelConfig) -> Vec<ParamSpec> {
    let mut inv = Inventory {
        specs: Vec::new(),
        mode: cfg.weights,
        bits: cfg.weight_bits,
        quantize_ends: cfg.is_cnn(),
    };
    let w = cfg.tokenizer_widths();
    let (d, h) = (cfg.dim, cfg.hidden());
    match cfg.arch {
        Arch::Spikformer => {
            // SPS: proj_conv{,1,2,3} + proj_bn{,1,2,3}, then rpe_conv + rpe_bn.
            for (i, suffix) in ["", "1", "2", "3"].iter().enumerate() {
                inv.weight(
                    format!("patch_embed.proj_conv{suffix}.weight"),
                    vec![w[i + 1], w[i], 3, 3],
                    i > 0,
                );
                inv.batch_norm(&format!("patch_embed.proj_bn{suffix}"), w[i + 1]);
            }
            inv.weight("patch_embed.rpe_conv.weight".into(), vec![d, d, 3, 3], true);
            inv.batch_norm("patch_embed.rpe_bn", d);
            for b in 0..cfg.depth {
                for x in ["q", "k", "v"] {
                    inv.weight(
                        format!("block.{b}.attn.{x}_linear.weight"),
                        vec![d, d],
                        true,
                    );
                    inv.bias(format!("block.{b}.attn.{x}_linear.bias"), d);
                    inv.batch_norm(&format!("block.{b}.attn.{x}_bn"), d);
                }
                inv.weight(
                    format!("block.{b}.attn.proj_linear.weight"),
                    vec![d, d],
                    true,
                );
                inv.bias(format!("block.{b}.attn.proj_linear.bias"), d);
                inv.batch_norm(&format!("block.{b}.attn.proj_bn"), d);
                inv.attention_form(cfg, b);
                inv.weight(format!("block.{b}.mlp.fc1_linear.weight"), vec![h, d], true);
                inv.bias(format!("block.{b}.mlp.fc1_linear.bias"), h);
                inv.batch_norm(&format!("block.{b}.mlp.fc1_bn"), h);
                inv.weight(format!("block.{b}.mlp.fc2_linear.weight"), vec![d, h], true);
                inv.bias(format!("block.{b}.mlp.fc2_linear.bias"), d);
                inv.batch_norm(&format!("block.{b}.mlp.fc2_bn"), d);
            }
            inv.weight("head.weight".into(), vec![cfg.classes, d], false);
            inv.bias("head.bias".into(), cfg.classes);
        }
        Arch::Bestformer => {
            // BSPS: a float block0 conv, then four (binary) block{1..4} convs.
            let widths = [w[0], w[1], w[2], w[3], w[4], w[4]];
            for i in 0..5 {
                inv.weight(
                    format!("patch_embed.block{i}_conv.weight"),
                    vec![widths[i + 1], widths[i], 3, 3],
                    i > 0,
                );
                inv.batch_norm(&format!("patch_embed.block{i}_bn"), widths[i + 1]);
            }
            for b in 0..cfg.depth {
                for x in ["q", "k", "v"] {
                    inv.weight(
                        format!("block.{b}.attn.{x}_conv.weight"),
                        vec![d, d, 1],
                        true,
                    );
                    inv.batch_norm(&format!("block.{b}.attn.{x}_bn"), d);
                }
                inv.weight(
                    format!("block.{b}.attn.proj_conv.weight"),
                    vec![d, d, 1],
                    true,
                );
                inv.batch_norm(&format!("block.{b}.attn.proj_bn"), d);
                inv.attention_form(cfg, b);
                inv.weight(
                    format!("block.{b}.mlp.mlp1_conv.weight"),
                    vec![h, d, 1, 1],
                    true,
                );
                inv.batch_norm(&format!("block.{b}.mlp.mlp1_bn"), h);
                inv.weight(
                    format!("block.{b}.mlp.mlp2_conv.weight"),
                    vec![d, h, 1, 1],
                    true,
                );
                inv.batch_norm(&format!("block.{b}.mlp.mlp2_bn"), d);
            }
            for head in ["head", "head2"] {
                inv.weight(format!("{head}.weight"), vec![cfg.classes, d], false);
                inv.bias(format!("{head}.bias"), cfg.classes);
            }
        }
        Arch::SpikingVgg | Arch::SpikingResnet => super::cnn::param_specs(cfg, &mut inv),
    }
    inv.specs
}

/// Parameter counts (trainable tensors only, as `sum(p.numel() for p in
/// model.parameters())` counts them) and storage sizes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParamCounts {
    pub total: usize,
    pub binary: usize,
    pub float: usize,
    /// Bytes of all state (parameters and BN statistics) as f32.
    pub fp32_bytes: usize,
    /// Bytes with binary weights as packed bits (rows padded to 128 bits), b-bit weights
    /// as b such bit-planes plus a scale per row, and the rest (float parameters and BN
    /// statistics) as f32.
    pub packed_bytes: usize,
}

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
