//! A model of any supported architecture, as the trainer, evaluation and inference see it.

use super::bestformer::{Bestformer, Reversible};
use super::classifier::Classifier;
use super::cnn::SpikingCnn;
use super::config::{Arch, ModelConfig};
use super::spikformer::Spikformer;
use super::store::ParamStore;
use crate::error::Result;
use crate::gpu::{GpuContext, Tensor};

/// Any model bitspike runs, built from its config.
pub enum Model {
    /// A Spikformer.
    Spikformer(Box<Spikformer>),
    /// A BESTformer.
    Bestformer(Box<Bestformer>),
    /// A spiking VGG or ResNet.
    Cnn(Box<SpikingCnn>),
}

impl Model {
    /// The model of `config`, with activations sized for batches of `batch`.
    pub fn new(config: &ModelConfig, batch: usize) -> Result<Self> {
        Ok(match config.kind() {
            Arch::Spikformer => Model::Spikformer(Box::new(Spikformer::new(config, batch)?)),
            Arch::Bestformer => Model::Bestformer(Box::new(Bestformer::new(config, batch)?)),
            Arch::SpikingVgg | Arch::SpikingResnet => {
                Model::Cnn(Box::new(SpikingCnn::new(config, batch)?))
            }
        })
    }

    fn config(&self) -> &ModelConfig {
        match self {
            Model::Spikformer(m) => &m.config,
            Model::Bestformer(m) => &m.config,
            Model::Cnn(m) => &m.config,
        }
    }

    fn batch(&self) -> usize {
        match self {
            Model::Spikformer(m) => m.batch,
            Model::Bestformer(m) => m.batch,
            Model::Cnn(m) => m.batch,
        }
    }

    /// Bytes of activations the last training forward kept for backward.
    pub fn activation_bytes(&self) -> u64 {
        match self {
            Model::Spikformer(m) => m.activation_bytes(),
            Model::Bestformer(m) => m.activation_bytes(),
            Model::Cnn(m) => m.activation_bytes(),
        }
    }

    /// How a model with reversible blocks (BESTformer) keeps their activations for
    /// backward; the other models store theirs whatever this says.
    pub fn set_reversible(&mut self, mode: Reversible) {
        if let Model::Bestformer(m) = self {
            m.reversible = mode;
        }
    }

    fn reversible(&self) -> Reversible {
        match self {
            Model::Bestformer(m) => m.reversible,
            _ => Reversible::default(),
        }
    }

    /// Q-SNN's firing-rate regularizer `lambda mean_layers (rate - 0.5)^2` added to the
    /// loss (spiking CNNs only).
    pub fn set_rate_reg(&mut self, lambda: f32) -> Result<()> {
        match self {
            Model::Cnn(m) => {
                m.rate_reg = lambda;
                Ok(())
            }
            _ if lambda == 0.0 => Ok(()),
            _ => Err(crate::Error::InvalidArgument(
                "the firing-rate regularizer is implemented for the spiking CNNs".into(),
            )),
        }
    }
}

impl Classifier for Model {
    fn forward(
        &mut self,
        ctx: &GpuContext,
        store: &mut ParamStore,
        images: &Tensor,
        train: bool,
    ) -> Result<Vec<Tensor>> {
        // A batch of another size (an epoch's last) gets a model sized for it.
        let n = match images.shape() {
            [_, b, _, _, _] => *b, // frames [T, B, C, H, W]
            shape => shape.first().copied().unwrap_or(0),
        };
        if n != self.batch() && n > 0 {
            let rate_reg = match self {
                Model::Cnn(m) => m.rate_reg,
                _ => 0.0,
            };
            let reversible = self.reversible();
            *self = Model::new(&self.config().clone(), n)?;
            self.set_rate_reg(rate_reg)?;
            self.set_reversible(reversible);
        }
        match self {
            Model::Spikformer(m) => Classifier::forward(m.as_mut(), ctx, store, images, train),
            Model::Bestformer(m) => Classifier::forward(m.as_mut(), ctx, store, images, train),
            Model::Cnn(m) => Classifier::forward(m.as_mut(), ctx, store, images, train),
        }
    }

    fn backward(
        &mut self,
        ctx: &GpuContext,
        store: &mut ParamStore,
        dlogits: &[Tensor],
    ) -> Result<()> {
        match self {
            Model::Spikformer(m) => Classifier::backward(m.as_mut(), ctx, store, dlogits),
            Model::Bestformer(m) => Classifier::backward(m.as_mut(), ctx, store, dlogits),
            Model::Cnn(m) => Classifier::backward(m.as_mut(), ctx, store, dlogits),
        }
    }
}
