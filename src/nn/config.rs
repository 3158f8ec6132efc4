//! Model configurations: plain data, the fields every model has plus the architecture's
//! own ([`ArchConfig`]), the allowed range of every size, and the checks that a config
//! is sound. The named presets are `nn::presets`'.
//!
//! On disk (a checkpoint's metadata) a config keeps its flat form, `{"arch":
//! "spikformer", "depth": 4, ...}`, which older checkpoints carry too.

use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
pub use crate::ops::attention::AttentionForm;
use crate::ops::attention::FormSetup;
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

/// Whether the binarizable layers keep float weights or use 1-bit or b-bit weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum WeightMode {
    /// Full-precision weights.
    Float,
    /// BESTformer's sign weights (no scale); first conv and heads float.
    Binary,
    /// QP-SNN's ReScaW `weight_bits`-bit weights in every conv and linear layer.
    Quantized,
    /// Q-SNN: sign weights with a power-of-two scale, 8-bit (ReScaW) first conv and head,
    /// and the Q-SNN neuron with its 8-bit membrane. CNN presets only.
    Qsnn,
}

/// Bits of quantized weights unless a config says otherwise.
pub const DEFAULT_WEIGHT_BITS: u32 = 4;

/// The sizes of a spiking transformer (Spikformer or BESTformer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransformerConfig {
    /// Transformer blocks.
    pub depth: usize,
    /// Embedding width D.
    pub dim: usize,
    /// Attention heads.
    pub heads: usize,
    /// MLP hidden width = mlp_ratio * D.
    pub mlp_ratio: usize,
    /// Total downsampling of the tokenizer (4: two max-pools, 16: four).
    pub patch_size: usize,
    /// The attention form of every block.
    pub attention: AttentionForm,
}

impl TransformerConfig {
    /// Width of one head, D / heads.
    pub fn head_dim(&self) -> usize {
        self.dim / self.heads
    }

    /// Width of the MLP's hidden layer.
    pub fn hidden(&self) -> usize {
        self.mlp_ratio * self.dim
    }

    /// Tokens per image of side `image_size` after the tokenizer.
    pub fn tokens(&self, image_size: usize) -> usize {
        let side = image_size / self.patch_size;
        side * side
    }

    /// Tokenizer conv widths: in -> D/8 -> D/4 -> D/2 -> D (-> D for the last stage).
    pub fn tokenizer_widths(&self, in_channels: usize) -> [usize; 5] {
        let d = self.dim;
        [in_channels, d / 8, d / 4, d / 2, d]
    }

    /// Whether tokenizer stage `i` (0..4) ends with (Spikformer) or starts with
    /// (BESTformer) a max-pool: the last log2(patch_size) stages.
    pub fn stage_pools(&self, stage: usize) -> bool {
        let pools = self.patch_size.trailing_zeros() as usize;
        stage >= 4 - pools
    }

    /// Whether the binary map is built in the d x d order (patch-16 models, N = 196).
    pub fn feature_order(&self) -> bool {
        self.patch_size == 16
    }

    /// What the attention form's op needs to know of the model.
    pub fn form_setup(&self, time_steps: usize) -> FormSetup {
        FormSetup {
            time_steps,
            heads: self.heads,
            head_dim: self.head_dim(),
            feature_order: self.feature_order(),
        }
    }
}

/// The layers of a spiking CNN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CnnConfig {
    /// Conv widths, one per conv layer (a ResNet's: the stem, then two per block);
    /// pruning narrows them.
    pub channels: Vec<usize>,
    /// The convs followed by a max-pool (3, 2, 1), by index.
    pub pool_after: Vec<usize>,
}

impl CnnConfig {
    /// Width of the last conv (the head's input).
    pub fn last_width(&self) -> usize {
        self.channels.last().copied().unwrap_or(0)
    }
}

/// What is particular to each architecture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArchConfig {
    /// Spikformer (docs/models.md section 2).
    Spikformer(TransformerConfig),
    /// BESTformer (docs/models.md section 3).
    Bestformer(TransformerConfig),
    /// Spiking VGG (docs/models.md section 6).
    SpikingVgg(CnnConfig),
    /// Spiking ResNet (docs/models.md section 6).
    SpikingResnet(CnnConfig),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "FlatConfig", from = "FlatConfig")]
/// A model: the fields every architecture has, and the architecture's own.
pub struct ModelConfig {
    /// Time steps T.
    pub time_steps: usize,
    /// Channels of the input (1 grey, 3 RGB, 2 event polarities).
    pub in_channels: usize,
    /// Input height and width (square).
    pub image_size: usize,
    /// Output classes.
    pub classes: usize,
    /// Float, binary, b-bit or Q-SNN weights.
    pub weights: WeightMode,
    /// Bits of the quantized weights (`WeightMode::Quantized`), 1..=8.
    pub weight_bits: u32,
    /// The architecture and its sizes.
    pub arch: ArchConfig,
}

impl ModelConfig {
    /// Which architecture this is.
    pub fn kind(&self) -> Arch {
        match self.arch {
            ArchConfig::Spikformer(_) => Arch::Spikformer,
            ArchConfig::Bestformer(_) => Arch::Bestformer,
            ArchConfig::SpikingVgg(_) => Arch::SpikingVgg,
            ArchConfig::SpikingResnet(_) => Arch::SpikingResnet,
        }
    }

    /// Whether the architecture is one of the spiking CNNs (`nn::cnn`).
    pub fn is_cnn(&self) -> bool {
        self.cnn().is_some()
    }

    /// A transformer's sizes (None for a CNN).
    pub fn transformer(&self) -> Option<&TransformerConfig> {
        match &self.arch {
            ArchConfig::Spikformer(t) | ArchConfig::Bestformer(t) => Some(t),
            _ => None,
        }
    }

    /// The transformer part, writable.
    pub fn transformer_mut(&mut self) -> Option<&mut TransformerConfig> {
        match &mut self.arch {
            ArchConfig::Spikformer(t) | ArchConfig::Bestformer(t) => Some(t),
            _ => None,
        }
    }

    /// A CNN's layers (None for a transformer).
    pub fn cnn(&self) -> Option<&CnnConfig> {
        match &self.arch {
            ArchConfig::SpikingVgg(c) | ArchConfig::SpikingResnet(c) => Some(c),
            _ => None,
        }
    }

    /// The CNN part, writable.
    pub fn cnn_mut(&mut self) -> Option<&mut CnnConfig> {
        match &mut self.arch {
            ArchConfig::SpikingVgg(c) | ArchConfig::SpikingResnet(c) => Some(c),
            _ => None,
        }
    }

    /// Check every size lies in its allowed range and the sizes fit together.
    pub fn validate(&self) -> Result<()> {
        check_range("image_size", self.image_size, &IMAGE_SIZE)?;
        check_range("in_channels", self.in_channels, &IN_CHANNELS)?;
        check_range("classes", self.classes, &CLASSES)?;
        check_range("time_steps", self.time_steps, &TIME_STEPS)?;
        if !(1..=crate::ops::MAX_WEIGHT_BITS).contains(&self.weight_bits) {
            return invalid(format!(
                "weight bits {} must be in 1..={}",
                self.weight_bits,
                crate::ops::MAX_WEIGHT_BITS
            ));
        }
        match &self.arch {
            ArchConfig::Spikformer(t) | ArchConfig::Bestformer(t) => self.validate_transformer(t),
            ArchConfig::SpikingVgg(c) | ArchConfig::SpikingResnet(c) => self.validate_cnn(c),
        }
    }

    fn validate_transformer(&self, t: &TransformerConfig) -> Result<()> {
        check_range("dim", t.dim, &DIM)?;
        check_range("depth", t.depth, &DEPTH)?;
        check_range("heads", t.heads, &HEADS)?;
        check_range("mlp_ratio", t.mlp_ratio, &MLP_RATIO)?;
        if self.weights == WeightMode::Qsnn {
            return invalid("Q-SNN weights are for the spiking CNN presets".into());
        }
        if !t.dim.is_multiple_of(8) || t.dim == 0 {
            return invalid(format!("dim {} must be a positive multiple of 8", t.dim));
        }
        if t.heads == 0 || !t.dim.is_multiple_of(t.heads) {
            return invalid(format!(
                "dim {} is not divisible by {} heads",
                t.dim, t.heads
            ));
        }
        if !matches!(t.patch_size, 4 | 16) || !self.image_size.is_multiple_of(t.patch_size) {
            return invalid(format!(
                "image size {} with patch size {}: the tokenizer downsamples by 4 (two \
                 max-pools) or 16 (four), and the image size must be a multiple of it",
                self.image_size, t.patch_size
            ));
        }
        if self.time_steps == 0 || t.depth == 0 || self.classes == 0 || self.in_channels == 0 {
            return invalid(
                "time steps, depth, classes and input channels must be positive".into(),
            );
        }
        Ok(())
    }

    fn validate_cnn(&self, cnn: &CnnConfig) -> Result<()> {
        let c = &cnn.channels;
        check_range("channels (conv layers)", c.len(), &CNN_LAYERS)?;
        for (i, &w) in c.iter().enumerate() {
            check_range(&format!("channels[{i}]"), w, &CNN_CHANNELS)?;
        }
        check_range("pool_after (pools)", cnn.pool_after.len(), &(0..=c.len()))?;
        let resnet = self.kind() == Arch::SpikingResnet;
        if c.is_empty() || c.contains(&0) {
            return invalid(format!("CNN channels {c:?} must be non-empty and positive"));
        }
        if resnet && c.len() % 2 != 1 {
            return invalid(format!(
                "ResNet channels {c:?}: a stem, then two convs per block (an odd count)"
            ));
        }
        if cnn.pool_after.iter().any(|&i| i >= c.len())
            || (resnet && cnn.pool_after.iter().any(|i| i % 2 == 1))
        {
            return invalid(format!(
                "pool_after {:?} must name convs (a ResNet's stem or a block's conv2)",
                cnn.pool_after
            ));
        }
        let mut side = self.image_size;
        for _ in &cnn.pool_after {
            side = crate::ops::max_pool_out(side);
        }
        if self.time_steps == 0 || self.classes == 0 || self.in_channels == 0 || side == 0 {
            return invalid(
                "time steps, classes, input channels and image size must be positive".into(),
            );
        }
        if self.weights == WeightMode::Binary {
            return invalid("the CNNs take float, quantized or qsnn weights".into());
        }
        Ok(())
    }
}

fn invalid(message: String) -> Result<()> {
    Err(Error::InvalidArgument(message))
}

/// Input height and width (also the side of event frames).
pub const IMAGE_SIZE: RangeInclusive<usize> = 1..=1024;
/// Input channels (also of event frames: 2 polarities).
pub const IN_CHANNELS: RangeInclusive<usize> = 1..=256;
/// Allowed output classes.
pub const CLASSES: RangeInclusive<usize> = 1..=65_536;
/// Allowed embedding widths.
pub const DIM: RangeInclusive<usize> = 8..=4096;
/// Allowed numbers of blocks.
pub const DEPTH: RangeInclusive<usize> = 1..=64;
/// Allowed numbers of heads.
pub const HEADS: RangeInclusive<usize> = 1..=64;
/// Time steps T (also the frames per event recording).
pub const TIME_STEPS: RangeInclusive<usize> = 1..=256;
/// Allowed MLP width ratios.
pub const MLP_RATIO: RangeInclusive<usize> = 1..=16;
/// A spiking CNN's conv layers, and the width of each.
pub const CNN_LAYERS: RangeInclusive<usize> = 1..=64;
/// Allowed conv widths.
pub const CNN_CHANNELS: RangeInclusive<usize> = 1..=4096;

/// `Ok` when `value` lies in `range`, else an error naming the field, the value and the
/// range.
pub fn check_range(field: &str, value: usize, range: &RangeInclusive<usize>) -> Result<()> {
    if range.contains(&value) {
        return Ok(());
    }
    Err(Error::OutOfRange {
        field: field.into(),
        value: value.to_string(),
        allowed: format!("{}..={}", range.start(), range.end()),
    })
}

fn default_weight_bits() -> u32 {
    DEFAULT_WEIGHT_BITS
}

/// The on-disk form: every architecture's fields side by side (a CNN's transformer
/// fields hold its depth and last width, and the rest ones).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct FlatConfig {
    arch: Arch,
    depth: usize,
    dim: usize,
    heads: usize,
    mlp_ratio: usize,
    time_steps: usize,
    in_channels: usize,
    image_size: usize,
    patch_size: usize,
    classes: usize,
    attention: AttentionForm,
    weights: WeightMode,
    #[serde(default = "default_weight_bits")]
    weight_bits: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    channels: Vec<usize>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pool_after: Vec<usize>,
}

impl From<ModelConfig> for FlatConfig {
    fn from(c: ModelConfig) -> Self {
        let kind = c.kind();
        let (t, cnn) = match c.arch {
            ArchConfig::Spikformer(t) | ArchConfig::Bestformer(t) => (t, None),
            ArchConfig::SpikingVgg(cnn) | ArchConfig::SpikingResnet(cnn) => {
                let t = TransformerConfig {
                    depth: cnn.channels.len(),
                    dim: cnn.last_width(),
                    heads: 1,
                    mlp_ratio: 1,
                    patch_size: 1,
                    attention: AttentionForm::Ssa,
                };
                (t, Some(cnn))
            }
        };
        let cnn = cnn.unwrap_or(CnnConfig {
            channels: Vec::new(),
            pool_after: Vec::new(),
        });
        FlatConfig {
            arch: kind,
            depth: t.depth,
            dim: t.dim,
            heads: t.heads,
            mlp_ratio: t.mlp_ratio,
            time_steps: c.time_steps,
            in_channels: c.in_channels,
            image_size: c.image_size,
            patch_size: t.patch_size,
            classes: c.classes,
            attention: t.attention,
            weights: c.weights,
            weight_bits: c.weight_bits,
            channels: cnn.channels,
            pool_after: cnn.pool_after,
        }
    }
}

impl From<FlatConfig> for ModelConfig {
    fn from(f: FlatConfig) -> Self {
        let t = TransformerConfig {
            depth: f.depth,
            dim: f.dim,
            heads: f.heads,
            mlp_ratio: f.mlp_ratio,
            patch_size: f.patch_size,
            attention: f.attention,
        };
        let cnn = || CnnConfig {
            channels: f.channels.clone(),
            pool_after: f.pool_after.clone(),
        };
        let arch = match f.arch {
            Arch::Spikformer => ArchConfig::Spikformer(t),
            Arch::Bestformer => ArchConfig::Bestformer(t),
            Arch::SpikingVgg => ArchConfig::SpikingVgg(cnn()),
            Arch::SpikingResnet => ArchConfig::SpikingResnet(cnn()),
        };
        ModelConfig {
            time_steps: f.time_steps,
            in_channels: f.in_channels,
            image_size: f.image_size,
            classes: f.classes,
            weights: f.weights,
            weight_bits: f.weight_bits,
            arch,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checkpoints written before the config had its per-architecture parts carry this
    /// flat form, and new ones must write it unchanged.
    #[test]
    fn configs_keep_their_flat_on_disk_form() {
        let flat = [
            r#"{"arch":"spikformer","depth":2,"dim":64,"heads":4,"mlp_ratio":4,"time_steps":4,"in_channels":1,"image_size":28,"patch_size":4,"classes":10,"attention":"ssa","weights":"float","weight_bits":4}"#,
            r#"{"arch":"spiking-resnet","depth":5,"dim":32,"heads":1,"mlp_ratio":1,"time_steps":4,"in_channels":1,"image_size":28,"patch_size":1,"classes":10,"attention":"ssa","weights":"float","weight_bits":4,"channels":[16,16,16,32,32],"pool_after":[2,4]}"#,
        ];
        for (name, json) in ["spikformer-2-64", "spiking-resnet-small"].iter().zip(flat) {
            let cfg = ModelConfig::preset(name).unwrap();
            assert_eq!(serde_json::to_string(&cfg).unwrap(), json, "{name}");
            assert_eq!(
                serde_json::from_str::<ModelConfig>(json).unwrap(),
                cfg,
                "{name}"
            );
        }
    }
}
