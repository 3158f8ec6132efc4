//! The named model presets.

use super::config::{
    Arch, ArchConfig, AttentionForm, CnnConfig, ModelConfig, TransformerConfig, WeightMode,
    DEFAULT_WEIGHT_BITS,
};
use crate::error::{Error, Result};

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
        "spikformer-2-256",
        "Spikformer for event data, 2 blocks, D 256, 16 heads, T 16, 128x128 frames of 2 \
         polarities (CIFAR10-DVS)",
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

/// `(name, arch, channels, pool_after, in_channels, image_size, classes)` of each CNN
/// preset.
type CnnPreset = (
    &'static str,
    Arch,
    &'static [usize],
    &'static [usize],
    usize,
    usize,
    usize,
);

const CNN_PRESETS: &[CnnPreset] = &[
    (
        "spiking-vgg11",
        Arch::SpikingVgg,
        &[64, 128, 256, 256, 512, 512, 512, 512],
        &[0, 1, 3, 5],
        3,
        32,
        10,
    ),
    (
        "spiking-resnet19",
        Arch::SpikingResnet,
        &[
            128, 128, 128, 128, 128, 128, 128, 256, 256, 256, 256, 256, 256, 512, 512, 512, 512,
        ],
        &[6, 12],
        3,
        32,
        10,
    ),
    (
        "spiking-vgg-small",
        Arch::SpikingVgg,
        &[32, 64, 128],
        &[1, 2],
        1,
        28,
        10,
    ),
    (
        "spiking-resnet-small",
        Arch::SpikingResnet,
        &[16, 16, 16, 32, 32],
        &[2, 4],
        1,
        28,
        10,
    ),
];

impl ModelConfig {
    /// The configuration a preset names.
    pub fn preset(name: &str) -> Result<Self> {
        if let Some(cnn) = cnn_preset(name) {
            return Ok(cnn);
        }
        let (arch, depth, dim) = match name {
            "spikformer-4-384" => (Arch::Spikformer, 4, 384),
            "bestformer-4-384" => (Arch::Bestformer, 4, 384),
            "spikformer-8-512" => (Arch::Spikformer, 8, 512),
            "bestformer-8-512" => (Arch::Bestformer, 8, 512),
            "spikformer-2-64" => (Arch::Spikformer, 2, 64),
            "bestformer-2-64" => (Arch::Bestformer, 2, 64),
            "spikformer-2-256" => (Arch::Spikformer, 2, 256),
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
            256 => (128, 16, 2, 10),
            _ => (28, 4, 1, 10),
        };
        let heads = match (arch, dim) {
            (Arch::Spikformer, 384) => 12,
            (_, 64) => 4,
            (_, 256) => 16,
            _ => 8,
        };
        let (attention, weights) = match arch {
            Arch::Bestformer => (AttentionForm::Binary, WeightMode::Binary),
            _ => (AttentionForm::Ssa, WeightMode::Float),
        };
        let t = TransformerConfig {
            depth,
            dim,
            heads,
            mlp_ratio: 4,
            patch_size,
            attention,
        };
        Ok(Self {
            // The event-data model integrates 16 frames (Spikformer's CIFAR10-DVS setting).
            time_steps: if dim == 256 { 16 } else { 4 },
            in_channels,
            image_size,
            classes,
            weights,
            weight_bits: DEFAULT_WEIGHT_BITS,
            arch: match arch {
                Arch::Bestformer => ArchConfig::Bestformer(t),
                _ => ArchConfig::Spikformer(t),
            },
        })
    }
}

/// The configuration of a CNN preset (None for other names).
fn cnn_preset(name: &str) -> Option<ModelConfig> {
    let &(_, arch, channels, pools, in_channels, image_size, classes) =
        CNN_PRESETS.iter().find(|p| p.0 == name)?;
    let cnn = CnnConfig {
        channels: channels.to_vec(),
        pool_after: pools.to_vec(),
    };
    Some(ModelConfig {
        time_steps: 4,
        in_channels,
        image_size,
        classes,
        weights: WeightMode::Float,
        weight_bits: DEFAULT_WEIGHT_BITS,
        arch: match arch {
            Arch::SpikingResnet => ArchConfig::SpikingResnet(cnn),
            _ => ArchConfig::SpikingVgg(cnn),
        },
    })
}
