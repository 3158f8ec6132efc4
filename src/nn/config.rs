//! Model configurations and the named presets.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Which published architecture the block structure follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Arch {
    /// Spikformer (ZK-Zhou/spikformer): SPS tokenizer with rpe, pre-activation
    /// `x + SSA(x)`, `x + MLP(x)` blocks with LIFs after each BN, one head.
    Spikformer,
    /// BESTformer (CaoHLin/BESTFormer): BSPS tokenizer, LIF-first sub-blocks, reversible
    /// two-stream blocks, two heads.
    Bestformer,
    /// A VGG-style spiking CNN (conv-BN-LIF stages with max-pools, as evaluated by Q-SNN
    /// and QP-SNN), see `nn::cnn`.
    SpikingVgg,
    /// A ResNet-style spiking CNN (a stem, then basic blocks of two conv-BN with a
    /// shortcut), see `nn::cnn`.
    SpikingResnet,
}

/// The attention form of every block (MODELS.md sections 2-5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum AttentionForm {
    /// Spikformer's SSA: (Q K^T) V * 0.125.
    Ssa,
    /// BESTformer's binary map: LIF_soft(Q K^T) V * 0.125 * lambda.
    Binary,
    /// SSA_Bin: thresholded map with attention shift.
    SsaBin,
    /// A2OS2A: binary Q, ReLU K, ternary V.
    A2os2a,
}

/// Whether the binarizable layers keep float weights or use 1-bit or b-bit weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum WeightMode {
    Float,
    /// BESTformer's sign weights (no scale); first conv and heads float.
    Binary,
    /// QP-SNN's ReScaW `weight_bits`-bit weights in every conv and linear layer.
    Quantized,
    /// Q-SNN: sign weights with a power-of-two scale, 8-bit (ReScaW) first conv and head,
    /// and the Q-SNN neuron with its 8-bit membrane. CNN presets only.
    Qsnn,
}

fn default_weight_bits() -> u32 {
    4
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub arch: Arch,
    /// Transformer blocks.
    pub depth: usize,
    /// Embedding width D.
    pub dim: usize,
    pub heads: usize,
    /// MLP hidden width = mlp_ratio * D.
    pub mlp_ratio: usize,
    /// Time steps T.
    pub time_steps: usize,
    pub in_channels: usize,
    /// Input height and width (square).
    pub image_size: usize,
    /// Total downsampling of the tokenizer (4: two max-pools, 16: four).
    pub patch_size: usize,
    pub classes: usize,
    pub attention: AttentionForm,
    pub weights: WeightMode,
    /// Bits of the quantized weights (`WeightMode::Quantized`), 1..=8.
    #[serde(default = "default_weight_bits")]
    pub weight_bits: u32,
    /// A spiking CNN's conv widths, one per conv layer (empty: the preset's; pruning
    /// narrows them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<usize>,
    /// A spiking CNN's convs followed by a max-pool (3, 2, 1), by index.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pool_after: Vec<usize>,
}

/// Every preset name with a one-line description.
pub const PRESETS: &[(&str, &str)] = &[
    (
        "spikformer-4-384",
        "Spikformer, 4 blocks, D 384, 12 heads, T 4, 32x32 RGB (CIFAR)",
    ),
    (
        "bestformer-4-384",
        "BESTformer, 4 blocks, D 384, 8 heads, T 4, 32x32 RGB (CIFAR)",
    ),
    (
        "spikformer-8-512",
        "Spikformer, 8 blocks, D 512, 8 heads, T 4, 224x224 RGB (ImageNet)",
    ),
    (
        "bestformer-8-512",
        "BESTformer, 8 blocks, D 512, 8 heads, T 4, 224x224 RGB (ImageNet)",
    ),
    (
        "spikformer-2-64",
        "small Spikformer, 2 blocks, D 64, 4 heads, T 4, 28x28 grey (MNIST)",
    ),
    (
        "bestformer-2-64",
        "small BESTformer, 2 blocks, D 64, 4 heads, T 4, 28x28 grey (MNIST)",
    ),
    (
        "spiking-vgg11",
        "spiking VGG-11 (64..512 channels, 8 convs), T 4, 32x32 RGB (CIFAR)",
    ),
    (
        "spiking-resnet19",
        "spiking ResNet-19 (128..512 channels, 3 stages), T 4, 32x32 RGB (CIFAR)",
    ),
    (
        "spiking-vgg-small",
        "small spiking VGG (16-32-32 channels, 3 convs), T 4, 28x28 grey (MNIST)",
    ),
    (
        "spiking-resnet-small",
        "small spiking ResNet (16-16-32 channels, 2 blocks), T 4, 28x28 grey (MNIST)",
    ),
];

impl ModelConfig {
    /// The configuration a preset names.
    pub fn preset(name: &str) -> Result<Self> {
        if let Some(cnn) = super::cnn::preset(name) {
            return Ok(cnn);
        }
        let (arch, depth, dim) = match name {
            "spikformer-4-384" => (Arch::Spikformer, 4, 384),
            "bestformer-4-384" => (Arch::Bestformer, 4, 384),
            "spikformer-8-512" => (Arch::Spikformer, 8, 512),
            "bestformer-8-512" => (Arch::Bestformer, 8, 512),
            "spikformer-2-64" => (Arch::Spikformer, 2, 64),
            "bestformer-2-64" => (Arch::Bestformer, 2, 64),
            other => {
                let names: Vec<&str> = PRESETS.iter().map(|(n, _)| *n).collect();
                return Err(Error::InvalidArgument(format!(
                    "unknown model preset '{other}' (known: {})",
                    names.join(", ")
                )));
            }
        };
        let (image_size, patch_size, in_channels, classes) = match dim {
            384 => (32, 4, 3, 10),
            512 => (224, 16, 3, 1000),
            _ => (28, 4, 1, 10),
        };
        let heads = match (arch, dim) {
            (Arch::Spikformer, 384) => 12,
            (_, 64) => 4,
            _ => 8,
        };
        let (attention, weights) = match arch {
            Arch::Bestformer => (AttentionForm::Binary, WeightMode::Binary),
            _ => (AttentionForm::Ssa, WeightMode::Float),
        };
        Ok(Self {
            arch,
            depth,
            dim,
            heads,
            mlp_ratio: 4,
            time_steps: 4,
            in_channels,
            image_size,
            patch_size,
            classes,
            attention,
            weights,
            weight_bits: default_weight_bits(),
            channels: Vec::new(),
            pool_after: Vec::new(),
        })
    }

    /// Whether the architecture is one of the spiking CNNs (`nn::cnn`).
    pub fn is_cnn(&self) -> bool {
        matches!(self.arch, Arch::SpikingVgg | Arch::SpikingResnet)
    }

    /// Check every size lies in its allowed range ([`super::limits`]) and the sizes fit
    /// together.
    pub fn validate(&self) -> Result<()> {
        super::limits::check_config_ranges(self)?;
        let bad = |m: String| Err(Error::InvalidArgument(m));
        if !(1..=crate::ops::MAX_WEIGHT_BITS).contains(&self.weight_bits) {
            return bad(format!(
                "weight bits {} must be in 1..={}",
                self.weight_bits,
                crate::ops::MAX_WEIGHT_BITS
            ));
        }
        if self.is_cnn() {
            return super::cnn::validate(self);
        }
        if self.weights == WeightMode::Qsnn {
            return bad("Q-SNN weights are for the spiking CNN presets".into());
        }
        if !self.dim.is_multiple_of(8) || self.dim == 0 {
            return bad(format!("dim {} must be a positive multiple of 8", self.dim));
        }
        if self.heads == 0 || !self.dim.is_multiple_of(self.heads) {
            return bad(format!(
                "dim {} is not divisible by {} heads",
                self.dim, self.heads
            ));
        }
        if !matches!(self.patch_size, 4 | 16) || !self.image_size.is_multiple_of(self.patch_size) {
            return bad(format!(
                "image size {} with patch size {}: the tokenizer downsamples by 4 (two \
                 max-pools) or 16 (four), and the image size must be a multiple of it",
                self.image_size, self.patch_size
            ));
        }
        if self.time_steps == 0 || self.depth == 0 || self.classes == 0 || self.in_channels == 0 {
            return bad("time steps, depth, classes and input channels must be positive".into());
        }
        Ok(())
    }

    /// Tokens per image after the tokenizer.
    pub fn tokens(&self) -> usize {
        let side = self.image_size / self.patch_size;
        side * side
    }

    pub fn head_dim(&self) -> usize {
        self.dim / self.heads
    }

    pub fn hidden(&self) -> usize {
        self.mlp_ratio * self.dim
    }

    /// Tokenizer conv widths: in -> D/8 -> D/4 -> D/2 -> D (-> D for the last stage).
    pub fn tokenizer_widths(&self) -> [usize; 5] {
        let d = self.dim;
        [self.in_channels, d / 8, d / 4, d / 2, d]
    }

    /// Whether tokenizer stage `i` (0..4) ends with (Spikformer) or starts with
    /// (BESTformer) a max-pool: the last log2(patch_size) stages.
    pub fn stage_pools(&self, stage: usize) -> bool {
        let pools = self.patch_size.trailing_zeros() as usize;
        stage >= 4 - pools
    }
}
