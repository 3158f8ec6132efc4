//! The optimizer state of a training run: AdamW moments over the model's flat parameter
//! buffer, and the step count. One `step` = one AdamW dispatch (plus clipping), the
//! binary layers' packed weights rebuilt, gradients zeroed.

use crate::error::{Error, Result};
use crate::gpu::{DType, GpuContext, Tensor};
use crate::nn::checkpoint::{HostTensor, StateDict};
use crate::nn::ParamStore;
use crate::ops::optim::{adamw_step, AdamW};

/// AdamW's state over every trainable parameter.
pub struct Optimizer {
    /// The hyperparameters.
    pub config: AdamW,
    /// First and second moments, the layout of `ParamStore::params`.
    pub moment1: Tensor,
    /// The second moments.
    pub moment2: Tensor,
    /// Steps taken (AdamW's bias correction counts from 1).
    pub steps: u32,
}

const M1: &str = "optimizer.moment1";
const M2: &str = "optimizer.moment2";
const STEPS: &str = "optimizer.steps";

impl Optimizer {
    /// Zero moments for `store`'s parameters.
    pub fn new(ctx: &GpuContext, store: &ParamStore, config: AdamW) -> Result<Self> {
        let len = store.params.len();
        Ok(Self {
            config,
            moment1: ctx.zeros(&[len], DType::F32)?,
            moment2: ctx.zeros(&[len], DType::F32)?,
            steps: 0,
        })
    }

    /// Apply the accumulated gradients with learning rate `lr`.
    pub fn step(&mut self, ctx: &GpuContext, store: &mut ParamStore, lr: f32) -> Result<()> {
        self.steps += 1;
        adamw_step(
            ctx,
            &self.config,
            lr,
            self.steps,
            store.decay_end,
            &store.grads,
            &store.params,
            &self.moment1,
            &self.moment2,
        )?;
        store.refresh_binary(ctx)?;
        store.zero_grads(ctx);
        Ok(())
    }

    /// Add the optimizer state to a checkpoint's tensors.
    pub fn save_into(&self, ctx: &GpuContext, sd: &mut StateDict) -> Result<()> {
        for (name, t) in [(M1, &self.moment1), (M2, &self.moment2)] {
            sd.tensors.insert(
                name.into(),
                HostTensor {
                    shape: t.shape().to_vec(),
                    data: ctx.download_f32(t)?,
                },
            );
        }
        sd.metadata.insert(STEPS.into(), self.steps.to_string());
        Ok(())
    }

    /// Restore the state saved by `save_into` (for `--resume`).
    pub fn load_from(&mut self, ctx: &GpuContext, sd: &StateDict) -> Result<()> {
        for (name, t) in [(M1, &self.moment1), (M2, &self.moment2)] {
            let saved = sd.tensors.get(name).ok_or_else(|| {
                Error::InvalidArgument(format!("the checkpoint has no optimizer state '{name}'"))
            })?;
            ctx.write_words(t, &saved.data)?;
        }
        self.steps = sd
            .metadata
            .get(STEPS)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error::InvalidArgument(format!("the checkpoint has no '{STEPS}'")))?;
        Ok(())
    }
}
