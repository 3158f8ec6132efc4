//! Whole-model workloads: forward (inference: eval BN) and training-step (forward +
//! backward + AdamW) throughput of the Spikformer and BESTformer presets, by default
//! `spikformer-4-384` and `bestformer-4-384` at batch 32, T = 4. Rates are images per
//! second; `activation_bytes` reports the activations a training forward keeps for
//! backward (flat in depth for the reversible BESTformer).

use super::pseudo_random;
use crate::error::Result;
use crate::gpu::{DType, GpuContext, Tensor};
use crate::nn::limits::Run;
use crate::nn::{init_state, Classifier, Model, ModelConfig, ParamStore, Reversible};
use crate::ops::loss::cross_entropy;
use crate::ops::optim::AdamW;
use crate::train::Optimizer;

/// The presets benchmarked by default.
pub const MODEL_PRESETS: [&str; 2] = ["spikformer-4-384", "bestformer-4-384"];

/// The default batch size.
pub const DEFAULT_BATCH: usize = 32;

/// What one iteration runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelPass {
    /// Eval-mode forward to logits.
    Forward,
    /// Training forward, cross-entropy, backward, AdamW step (and, for binary models,
    /// rebuilding the binary weights).
    TrainStep,
}

impl ModelPass {
    /// The name printed in reports.
    pub fn name(self) -> &'static str {
        match self {
            ModelPass::Forward => "forward",
            ModelPass::TrainStep => "train_step",
        }
    }
}

/// A model with its parameters, optimizer state and one synthetic batch, set up once.
pub struct ModelWorkload {
    /// The model.
    pub config: ModelConfig,
    /// The preset's name, for reports.
    pub preset: String,
    /// Forward or training step.
    pub pass: ModelPass,
    /// Samples per batch.
    pub batch: usize,
    model: Model,
    store: ParamStore,
    optimizer: Optimizer,
    images: Tensor,
    labels: Tensor,
}

impl ModelWorkload {
    /// A preset at `batch`.
    pub fn new(ctx: &GpuContext, preset: &str, batch: usize, pass: ModelPass) -> Result<Self> {
        Self::with_config(ctx, preset, &ModelConfig::preset(preset)?, batch, pass)
    }

    /// Any configuration (`name` labels it).
    pub fn with_config(
        ctx: &GpuContext,
        name: &str,
        config: &ModelConfig,
        batch: usize,
        pass: ModelPass,
    ) -> Result<Self> {
        ctx.check_run(
            config,
            match pass {
                ModelPass::Forward => Run::Forward { batch },
                ModelPass::TrainStep => Run::Train { batch },
            },
        )?;
        let model = Model::new(config, batch)?;
        let store = ParamStore::new(ctx, config, &init_state(config, 1))?;
        let optimizer = Optimizer::new(ctx, &store, AdamW::default())?;
        let s = config.image_size;
        let shape = [batch, config.in_channels, s, s];
        let images =
            ctx.upload_f32(&pseudo_random(shape.iter().product(), 7, -1.0, 1.0), &shape)?;
        let labels: Vec<u32> = (0..batch as u32)
            .map(|i| i % config.classes as u32)
            .collect();
        let labels = ctx.upload_words(&labels, &[batch], DType::U32)?;
        let work = Self {
            config: config.clone(),
            preset: name.to_string(),
            pass,
            batch,
            model,
            store,
            optimizer,
            images,
            labels,
        };
        ctx.sync()?;
        Ok(work)
    }

    /// `preset/pass`, e.g. `bestformer-4-384/train_step`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.preset, self.pass.name())
    }

    /// `BxTxHxW`, e.g. `32x4x32x32`.
    pub fn shape_name(&self) -> String {
        let c = &self.config;
        format!(
            "{}x{}x{}x{}",
            self.batch, c.time_steps, c.image_size, c.image_size
        )
    }

    /// Images per iteration (the batch).
    pub fn images(&self) -> usize {
        self.batch
    }

    /// How a BESTformer's reversible blocks keep their activations.
    pub fn set_reversible(&mut self, mode: Reversible) {
        self.model.set_reversible(mode);
    }

    /// Bytes of activations kept for backward by the last training forward (0 before
    /// the first training iteration, and for `Forward`).
    pub fn activation_bytes(&self) -> u64 {
        self.model.activation_bytes()
    }

    /// Record one iteration; returns the (first head's) logits.
    pub fn run(&mut self, ctx: &GpuContext) -> Result<Tensor> {
        let train = self.pass == ModelPass::TrainStep;
        let heads = self
            .model
            .forward(ctx, &mut self.store, &self.images, train)?;
        if train {
            let weight = 1.0 / heads.len() as f32;
            let dlogits = heads
                .iter()
                .map(|h| Ok(cross_entropy(ctx, h, &self.labels, 0.0, weight)?.dlogits))
                .collect::<Result<Vec<_>>>()?;
            self.model.backward(ctx, &mut self.store, &dlogits)?;
            self.optimizer.step(ctx, &mut self.store, 1e-4)?;
        }
        Ok(heads[0].clone())
    }
}
