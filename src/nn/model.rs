//! A model of any supported architecture, as the trainer, evaluation and inference see it.

use super::{
    Arch, Bestformer, Classifier, ModelConfig, ParamStore, Reversible, Spikformer, SpikingCnn,
};
use crate::error::Result;
use crate::gpu::{DType, GpuContext, Tensor};

pub enum Model {
    Spikformer(Box<Spikformer>),
    Bestformer(Box<Bestformer>),
    Cnn(Box<SpikingCnn>),
}

impl Model {
    pub fn new(config: &ModelConfig, batch: usize) -> Result<Self> {
        Ok(match config.arch {
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
            Model::Spikformer(m) => Ok(vec![m.forward(ctx, store, images, train)?]),
            Model::Cnn(m) => {
                let logits = m.forward(ctx, store, images, train)?;
                // Q-SNN training: one head per time step, each [B, classes].
                let steps = logits.shape()[0] / m.batch;
                if steps == 1 {
                    return Ok(vec![logits]);
                }
                let len = logits.len() / steps;
                (0..steps)
                    .map(|t| {
                        let head = ctx.empty(&[m.batch, logits.shape()[1]], DType::F32)?;
                        crate::ops::copy_range(ctx, &logits, t * len, &head, 0, len)?;
                        Ok(head)
                    })
                    .collect()
            }
            Model::Bestformer(m) => {
                m.forward(ctx, store, images, train)?;
                let (out0, out1) = m.heads.clone().expect("a forward leaves both heads");
                Ok(vec![out0, out1])
            }
        }
    }

    fn backward(
        &mut self,
        ctx: &GpuContext,
        store: &mut ParamStore,
        dlogits: &[Tensor],
    ) -> Result<()> {
        match (self, dlogits) {
            (Model::Spikformer(m), [d]) => m.backward(ctx, store, d),
            (Model::Cnn(m), [d]) => m.backward(ctx, store, d),
            (Model::Cnn(m), steps) => {
                let [b, classes] = *steps[0].shape() else {
                    return Err(crate::Error::InvalidArgument(
                        "head gradients must be [B, classes]".into(),
                    ));
                };
                let all = ctx.empty(&[steps.len() * b, classes], DType::F32)?;
                for (t, d) in steps.iter().enumerate() {
                    crate::ops::copy_range(ctx, d, 0, &all, t * d.len(), d.len())?;
                }
                m.backward(ctx, store, &all)
            }
            (Model::Bestformer(m), [d0, d1]) => m.backward_heads(ctx, store, d0, d1),
            (_, d) => Err(crate::Error::InvalidArgument(format!(
                "backward got {} head gradients for this model",
                d.len()
            ))),
        }
    }
}
