//! Whole-model workloads: forward (inference: eval BN) and training-step (forward +
//! backward + AdamW) throughput of the Spikformer and BESTformer presets, by default
//! `spikformer-4-384` and `bestformer-4-384` at batch 32, T = 4. Rates are images per
//! second; `activation_bytes` reports the activations a training forward keeps for
//! backward (flat in depth for the reversible BESTformer).

use std::cell::Cell;

use crate::error::Result;
use crate::gpu::{DType, GpuContext, Tensor};
use crate::nn::{init_state, Arch, Bestformer, ModelConfig, ParamStore, Spikformer};
use crate::ops::{self, optim::AdamW};

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
    pub fn name(self) -> &'static str {
        match self {
            ModelPass::Forward => "forward",
            ModelPass::TrainStep => "train_step",
        }
    }
}

enum Model {
    Spikformer(Box<Spikformer>),
    Bestformer(Box<Bestformer>),
}

/// A model with its parameters, optimizer state and one synthetic batch, set up once.
pub struct ModelWorkload {
    pub config: ModelConfig,
    pub preset: String,
    pub pass: ModelPass,
    pub batch: usize,
    model: Model,
    store: ParamStore,
    images: Tensor,
    labels: Tensor,
    moment1: Tensor,
    moment2: Tensor,
    opt: AdamW,
    step: Cell<u32>,
}

/// Cheap hashed values in [-1, 1).
fn hashed(len: usize, seed: u32) -> Vec<f32> {
    (0..len as u32)
        .map(|i| {
            let h = (i ^ seed.wrapping_mul(0x2545_F491))
                .wrapping_mul(0x9E37_79B1)
                .rotate_left(13)
                .wrapping_mul(0x85EB_CA77);
            (h >> 8) as f32 / (1u32 << 23) as f32 - 1.0
        })
        .collect()
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
        let model = match config.arch {
            Arch::Spikformer => Model::Spikformer(Box::new(Spikformer::new(config, batch)?)),
            Arch::Bestformer => Model::Bestformer(Box::new(Bestformer::new(config, batch)?)),
        };
        let store = ParamStore::new(ctx, config, &init_state(config, 1))?;
        let s = config.image_size;
        let shape = [batch, config.in_channels, s, s];
        let images = ctx.upload_f32(&hashed(shape.iter().product(), 7), &shape)?;
        let labels: Vec<u32> = (0..batch as u32)
            .map(|i| i % config.classes as u32)
            .collect();
        let labels = ctx.upload_words(&labels, &[batch], DType::U32)?;
        let len = store.params.len();
        let work = Self {
            config: config.clone(),
            preset: name.to_string(),
            pass,
            batch,
            model,
            store,
            images,
            labels,
            moment1: ctx.zeros(&[len], DType::F32)?,
            moment2: ctx.zeros(&[len], DType::F32)?,
            opt: AdamW::default(),
            step: Cell::new(0),
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

    /// Bytes of activations kept for backward by the last training forward (0 before
    /// the first training iteration, and for `Forward`).
    pub fn activation_bytes(&self) -> u64 {
        match &self.model {
            Model::Spikformer(m) => m.activation_bytes(),
            Model::Bestformer(m) => m.activation_bytes(),
        }
    }

    /// The model's logits for the workload's batch (eval or training forward).
    fn forward(&mut self, ctx: &GpuContext, train: bool) -> Result<Tensor> {
        match &mut self.model {
            Model::Spikformer(m) => m.forward(ctx, &mut self.store, &self.images, train),
            Model::Bestformer(m) => m.forward(ctx, &mut self.store, &self.images, train),
        }
    }

    /// Record one iteration; returns the logits.
    pub fn run(&mut self, ctx: &GpuContext) -> Result<Tensor> {
        if self.pass == ModelPass::Forward {
            return self.forward(ctx, false);
        }
        self.store.zero_grads(ctx);
        let logits = self.forward(ctx, true)?;
        let scale = 1.0 / self.batch as f32;
        let loss = ops::loss::cross_entropy(ctx, &logits, &self.labels, 0.0, scale)?;
        match &self.model {
            Model::Spikformer(m) => m.backward(ctx, &self.store, &loss.dlogits)?,
            Model::Bestformer(m) => m.backward(ctx, &self.store, &loss.dlogits)?,
        }
        let step = self.step.get() + 1;
        self.step.set(step);
        ops::optim::adamw_step(
            ctx,
            &self.opt,
            1e-4,
            step,
            self.store.decay_end,
            &self.store.grads,
            &self.store.params,
            &self.moment1,
            &self.moment2,
        )?;
        self.store.refresh_binary(ctx)?;
        Ok(logits)
    }
}
