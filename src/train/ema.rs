//! An exponential moving average of the model's weights (timm's `ModelEmaV2`): after
//! every optimizer step, `ema = decay ema + (1 - decay) model` for every parameter and
//! running statistic (BatchNorm's means and variances too), batch counts copied. It is
//! evaluated and checkpointed beside the raw weights.

use crate::error::{Error, Result};
use crate::gpu::GpuContext;
use crate::nn::checkpoint::{StateDict, EMA_PREFIX};
use crate::nn::ParamStore;

const DECAY_KEY: &str = "train.ema_decay";

/// An exponential moving average of a model's weights (timm's ModelEmaV2).
pub struct ModelEma {
    /// Weight of the old average per update.
    pub decay: f32,
    store: ParamStore,
    /// The binarized weights lag the latent ones until the next `store`.
    stale: bool,
}

impl ModelEma {
    /// An EMA starting from the model's current weights (`initial`, the state dict the
    /// model's store was built from).
    pub fn new(
        ctx: &GpuContext,
        model: &ParamStore,
        initial: &StateDict,
        decay: f32,
    ) -> Result<Self> {
        if !(0.0..1.0).contains(&decay) {
            return Err(Error::InvalidArgument(format!(
                "EMA decay {decay} is outside [0, 1)"
            )));
        }
        Ok(Self {
            decay,
            store: ParamStore::from_specs(ctx, &model.config, model.specs().to_vec(), initial)?,
            stale: false,
        })
    }

    /// Follow the model after an optimizer step.
    pub fn update(&mut self, ctx: &GpuContext, model: &ParamStore) -> Result<()> {
        self.store.blend_towards(ctx, model, 1.0 - self.decay)?;
        self.stale = true;
        Ok(())
    }

    /// The averaged weights, ready to run (binary layers rebuilt if they lag).
    pub fn store(&mut self, ctx: &GpuContext) -> Result<&mut ParamStore> {
        if self.stale {
            self.store.refresh_binary(ctx)?;
            self.stale = false;
        }
        Ok(&mut self.store)
    }

    /// The averaged weights as a plain state dict (reference names, config metadata).
    pub fn state_dict(&self, ctx: &GpuContext) -> Result<StateDict> {
        self.store.to_state_dict(ctx)
    }

    /// Add the EMA to a training checkpoint: its tensors under [`EMA_PREFIX`], its decay.
    pub fn save_into(&self, ctx: &GpuContext, sd: &mut StateDict) -> Result<()> {
        for (name, t) in self.state_dict(ctx)?.tensors {
            sd.tensors.insert(format!("{EMA_PREFIX}{name}"), t);
        }
        sd.metadata.insert(DECAY_KEY.into(), self.decay.to_string());
        Ok(())
    }

    /// Restore the EMA that `save_into` saved (for `--resume`).
    pub fn load_from(&mut self, ctx: &GpuContext, sd: &StateDict) -> Result<()> {
        let mut own = StateDict::default();
        for (name, t) in &sd.tensors {
            if let Some(n) = name.strip_prefix(EMA_PREFIX) {
                own.tensors.insert(n.to_string(), t.clone());
            }
        }
        if own.tensors.is_empty() {
            return Err(Error::InvalidArgument(
                "the checkpoint holds no EMA of the weights ('ema.*' tensors): it was \
                 trained without --model-ema"
                    .into(),
            ));
        }
        self.store.load(ctx, &own)?;
        self.stale = false;
        Ok(())
    }
}
